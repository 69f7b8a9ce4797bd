//! The Python clients the real-client tests drive: the `openstack` CLI and
//! keystonemiddleware, installed by `scripts/test` into a virtualenv whose
//! path it exports as `KEYFED_PYVENV`.
//!
//! Nothing here skips silently: without the virtualenv a test fails and says
//! how to get it.

use anyhow::{bail, Context};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// How long one `openstack` command may take (it starts a Python
/// interpreter, discovers the API and authenticates on every call).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// The virtualenv holding the pinned Python clients.
#[derive(Clone, Debug)]
pub struct PyVenv {
    root: PathBuf,
}

impl PyVenv {
    /// Finds the virtualenv named by `KEYFED_PYVENV`.
    pub fn locate() -> anyhow::Result<Self> {
        let Some(root) = std::env::var_os("KEYFED_PYVENV") else {
            bail!(
                "KEYFED_PYVENV is not set: run scripts/test, which installs the Python clients \
                 (openstack CLI, keystonemiddleware) and exports it"
            );
        };
        let venv = Self {
            root: PathBuf::from(root),
        };
        for tool in ["python", "openstack"] {
            let path = venv.bin(tool);
            if !path.is_file() {
                bail!(
                    "{} is missing (KEYFED_PYVENV={}): run scripts/test, which installs the \
                     Python clients",
                    path.display(),
                    venv.root.display()
                );
            }
        }
        Ok(venv)
    }

    /// A program in the virtualenv's `bin/`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.root.join("bin").join(name)
    }

    /// The virtualenv's Python interpreter.
    pub fn python(&self) -> PathBuf {
        self.bin("python")
    }
}

/// The `openstack` CLI, authenticating with a fixed set of `OS_*` variables.
#[derive(Clone, Debug)]
pub struct OpenStack {
    program: PathBuf,
    env: Vec<(String, String)>,
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl OpenStack {
    /// A CLI using exactly `env` for its `OS_*` settings (inherited `OS_*`
    /// variables are removed so the developer's own cloud never leaks in).
    pub fn new(env: Vec<(String, String)>) -> anyhow::Result<Self> {
        Ok(Self {
            program: PyVenv::locate()?.bin("openstack"),
            env,
        })
    }

    /// Runs `openstack ARGS`, whatever its exit status.
    pub async fn output(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut command = tokio::process::Command::new(&self.program);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("OS_") {
                command.env_remove(key);
            }
        }
        command
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", self.program.display()))?;
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| {
                format!(
                    "`openstack {}` did not finish within {COMMAND_TIMEOUT:?}",
                    shown(args)
                )
            })??;
        Ok(Output {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `openstack ARGS` and returns its standard output; a non-zero exit
    /// is an error carrying what the command printed.
    pub async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.output(args).await?;
        if !out.success {
            bail!(
                "`openstack {}` failed\n--- stderr:\n{}\n--- stdout:\n{}",
                shown(args),
                out.stderr.trim_end(),
                out.stdout.trim_end()
            );
        }
        Ok(out.stdout)
    }

    /// Runs `openstack ARGS -f json` and parses what it printed.
    pub async fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-f", "json"]);
        let stdout = self.run(&all).await?;
        serde_json::from_str(&stdout).with_context(|| {
            format!(
                "`openstack {}` printed something that is not JSON:\n{stdout}",
                shown(&all)
            )
        })
    }

    /// Runs `openstack ARGS`, which must fail; returns its standard error.
    pub async fn fails(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.output(args).await?;
        if out.success {
            bail!(
                "`openstack {}` succeeded but should have failed; it printed:\n{}",
                shown(args),
                out.stdout.trim_end()
            );
        }
        Ok(out.stderr)
    }
}

/// The arguments as a command line, with password values masked.
fn shown(args: &[&str]) -> String {
    let mut masked = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for arg in args {
        if hide_next {
            masked.push("***");
        } else {
            masked.push(arg);
        }
        hide_next = arg.ends_with("password");
    }
    masked.join(" ")
}

/// Reads a file for an error message, tolerating its absence.
pub fn tail_of(path: &Path, max_bytes: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max_bytes);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// `tests/python/protected_app.py`: a WSGI service behind
/// keystonemiddleware's `auth_token`, with a service user of domain
/// `Default` (by default the bootstrap admin). Killed on drop.
pub struct ProtectedService {
    /// Base URL of the service, e.g. `http://127.0.0.1:40125`.
    pub url: String,
    log: PathBuf,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl ProtectedService {
    /// How long the service may take to start listening.
    const START_TIMEOUT: Duration = Duration::from_secs(60);

    /// Starts the service in front of the identity server at `identity_url`
    /// (unversioned base URL), with the bootstrap admin (project `admin`) as
    /// its service user, and waits until it listens.
    pub async fn start(identity_url: &str, service_password: &str) -> anyhow::Result<Self> {
        Self::start_as(identity_url, "admin", service_password, "admin").await
    }

    /// [`ProtectedService::start`] with another service user, authenticating
    /// on `project` (both of domain `Default`).
    pub async fn start_as(
        identity_url: &str,
        user: &str,
        password: &str,
        project: &str,
    ) -> anyhow::Result<Self> {
        use tokio::io::AsyncBufReadExt;

        let venv = PyVenv::locate()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/protected_app.py");
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("protected_app.log");
        let mut child = tokio::process::Command::new(venv.python())
            .arg(&script)
            .arg(identity_url)
            .arg("0")
            .env("KEYFED_SERVICE_USER", user)
            .env("KEYFED_SERVICE_PROJECT", project)
            .env("KEYFED_SERVICE_PASSWORD", password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", script.display()))?;
        let stdout = child.stdout.take().context("protected_app.py stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Self::START_TIMEOUT, lines.next_line()).await;
        let url = match first {
            Ok(Ok(Some(line))) => line
                .strip_prefix("listening on ")
                .map(str::to_owned)
                .with_context(|| format!("protected_app.py printed {line:?}"))?,
            other => bail!(
                "protected_app.py did not start listening ({other:?}); its log:\n{}",
                tail_of(&log, 8000)
            ),
        };
        Ok(Self {
            url,
            log,
            _child: child,
            _dir: dir,
        })
    }

    /// The end of the service's log (auth_token logs at DEBUG), for failure
    /// messages.
    pub fn log_tail(&self) -> String {
        tail_of(&self.log, 8000)
    }
}
