//! Child processes of the cluster: locating the `keyfed` binary, free
//! ports, and one process whose output goes to a log file.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The environment variable naming the `keyfed` binary to run.
pub const KEYFED_BIN_ENV: &str = "KEYFED_BIN";

/// How long a process may take to answer `/readyz` with 200.
pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of each log shown when something fails.
const TAIL_LINES: usize = 40;

/// The `keyfed` binary: `$KEYFED_BIN`, else `target/<profile>/keyfed` next
/// to the running test executable (which lives in `target/<profile>/deps`).
pub fn keyfed_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(KEYFED_BIN_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{KEYFED_BIN_ENV}={} is not a file", path.display());
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut dir = exe
        .parent()
        .context("the test executable has no directory")?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().context("deps/ has no parent")?;
    }
    let binary = dir.join(format!("keyfed{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        bail!(
            "the keyfed binary is missing: expected {} — build it with `cargo build --bin keyfed` \
             (scripts/test does so before the suite) or set {KEYFED_BIN_ENV}",
            binary.display()
        );
    }
    // A binary older than the test executable may predate the server code
    // under test: say so (shown only if the test fails).
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(bin), Some(test)) = (modified(&binary), modified(&exe)) {
        if bin < test {
            eprintln!(
                "note: {} is older than this test executable; after changing server code, \
                 rebuild it with `cargo build --bin keyfed` (scripts/test does)",
                binary.display()
            );
        }
    }
    Ok(binary)
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(keyfed_directory::testing::free_port()?)
}

/// The last `lines` lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// One child process whose output goes to a log file; killed on drop.
pub(super) struct Process {
    pub(super) name: String,
    pub(super) program: PathBuf,
    pub(super) args: Vec<OsString>,
    pub(super) log: PathBuf,
    pub(super) child: Option<Child>,
    pub(super) starts: u32,
    /// Extra environment variables.
    pub(super) env: Vec<(String, String)>,
}

impl Process {
    pub(super) fn new(name: &str, program: &Path, args: &[&str], dir: &Path) -> Self {
        Self {
            name: name.to_owned(),
            program: program.to_owned(),
            args: args.iter().map(OsString::from).collect(),
            log: dir.join(format!("{name}.log")),
            child: None,
            starts: 0,
            env: Vec::new(),
        }
    }

    pub(super) fn spawn(&mut self) -> anyhow::Result<()> {
        self.kill();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        self.starts += 1;
        writeln!(
            log,
            "==== keyfed-tests: {} start #{} ====",
            self.name, self.starts
        )?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .env("NO_COLOR", "1")
            // An error's message, not a backtrace, ends the log (panics
            // still print theirs under RUST_BACKTRACE).
            .env("RUST_LIB_BACKTRACE", "0")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {} for {}", self.program.display(), self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// The exit status, if the process has ended.
    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kills the process (SIGKILL: no graceful shutdown) and reaps it.
    pub(super) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (a `kill -s` name: `STOP`, `CONT`) to the process.
    pub(super) fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let child = self.child.as_ref().context("the process is not running")?;
        let status = Command::new("kill")
            .args(["-s", signal, &child.id().to_string()])
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -s {signal} failed: {status}");
        Ok(())
    }

    /// The whole log so far.
    pub(super) fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub(super) fn tail(&self) -> String {
        tail(&self.log, TAIL_LINES)
    }

    /// Waits until `GET {url}/readyz` answers 200; fails early if the
    /// process exits, and shows the log's tail either way.
    pub(super) async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        url: &str,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                self.child = None;
                bail!(
                    "{} exited during start-up ({status}); its log ends:\n{}",
                    self.name,
                    self.tail()
                );
            }
            let answer = http.get(format!("{url}/readyz")).send().await;
            if matches!(&answer, Ok(r) if r.status() == reqwest::StatusCode::OK) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} at {url} did not answer /readyz with 200 within {READY_TIMEOUT:?} \
                     (last answer: {answer:?}); its log ends:\n{}",
                    self.name,
                    self.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
