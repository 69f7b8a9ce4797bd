//! Test support (feature `testing`): a real `nats-server` with JetStream,
//! spawned on a free loopback port with its store in a temporary directory,
//! killed when dropped. It can be stopped and restarted on the same port and
//! store to test outages. [`NatsCluster`] runs several of them as one
//! JetStream cluster (routes between them, a store per node), for tests of
//! replicated buckets surviving the loss of a node.
//!
//! The binary is `$KEYFED_NATS_SERVER`, else `target/pyvenv/bin/nats-server`
//! in this workspace (installed by `scripts/test`), else
//! `/tmp/probe-venv/bin/nats-server`. Versions before 2.10 cannot host the
//! key-value buckets and are refused (Debian's `/usr/sbin/nats-server` is
//! 2.9).

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Environment variable naming the nats-server binary.
pub const NATS_SERVER_ENV: &str = "KEYFED_NATS_SERVER";

/// Oldest usable server version (key-value support in async-nats).
const MIN_VERSION: (u32, u32) = (2, 10);

/// How long a started server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

const HINT: &str = "run scripts/test, which installs nats-server";

fn candidates() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(path) = std::env::var_os(NATS_SERVER_ENV) {
        paths.push(PathBuf::from(path));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    paths.push(workspace.join("target/pyvenv/bin/nats-server"));
    paths.push(PathBuf::from("/tmp/probe-venv/bin/nats-server"));
    paths
}

/// The nats-server binary to use, checked to be recent enough.
pub fn nats_server_binary() -> io::Result<PathBuf> {
    let Some(binary) = candidates().into_iter().find(|p| p.is_file()) else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no nats-server found (looked at ${NATS_SERVER_ENV}, {:?}): {HINT}",
                candidates()
            ),
        ));
    };
    let output = Command::new(&binary).arg("--version").output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = parse_version(&text).ok_or_else(|| {
        io::Error::other(format!("{}: unreadable version {text:?}", binary.display()))
    })?;
    if version < MIN_VERSION {
        return Err(io::Error::other(format!(
            "{} is nats-server {}.{}, older than {}.{}: {HINT}",
            binary.display(),
            version.0,
            version.1,
            MIN_VERSION.0,
            MIN_VERSION.1
        )));
    }
    Ok(binary)
}

/// (major, minor) from `nats-server: v2.15.1`.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let (_, version) = text.trim().rsplit_once('v')?;
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A loopback port that was free a moment ago (the one helper of its
/// kind: the test harnesses use it too).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A nats-server child process with JetStream, killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// The `authorization` block in force, if any.
    authorization: Option<String>,
    /// Its place in a [`NatsCluster`], if it is in one.
    node: Option<ClusterNode>,
}

/// What a cluster member adds to its config.
#[derive(Debug, Clone)]
struct ClusterNode {
    /// `server_name` (JetStream clustering needs one per node).
    name: String,
    /// The port routes from the other nodes connect to.
    cluster_port: u16,
    /// The monitoring port (`/healthz`, `/jsz`).
    monitor_port: u16,
    /// Every node's cluster port, this one's included (nats-server skips
    /// the route to itself).
    routes: Vec<u16>,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts
    /// connections.
    pub fn start() -> io::Result<Self> {
        Self::start_with(None)
    }

    /// Starts a server enforcing `authorization` (a nats-server
    /// `authorization { … }` block, e.g. from
    /// [`crate::nats::access::authorization_conf`]).
    pub fn start_with_authorization(authorization: String) -> io::Result<Self> {
        Self::start_with(Some(authorization))
    }

    /// Starts a server with `fragment` added to its config (a `tls { … }`
    /// block, say).
    pub fn start_with_config(fragment: String) -> io::Result<Self> {
        Self::start_with(Some(fragment))
    }

    /// Replaces the authorization block and makes the server reload it
    /// (`SIGHUP`), as an operator adding an identity would.
    pub fn reload_authorization(&mut self, authorization: String) -> io::Result<()> {
        self.authorization = Some(authorization);
        self.write_config()?;
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args(["-HUP", &child.id().to_string()])
                .status()?;
            if !status.success() {
                return Err(io::Error::other("signalling nats-server to reload failed"));
            }
        }
        // The reload is asynchronous; give the server a moment.
        thread::sleep(Duration::from_millis(200));
        Ok(())
    }

    fn start_with(authorization: Option<String>) -> io::Result<Self> {
        let binary = nats_server_binary()?;
        let mut last_error = None;
        // The free port may be taken again before the server binds it.
        for _ in 0..5 {
            let mut server = NatsServer {
                binary: binary.clone(),
                port: free_port()?,
                dir: tempfile::Builder::new().prefix("keyfed-nats").tempdir()?,
                child: None,
                authorization: authorization.clone(),
                node: None,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("nats-server did not start")))
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (the store stays for [`NatsServer::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                // The old socket may linger for a moment.
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
                Err(error) => return Err(error),
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.conf")
    }

    /// Writes the server's config file: listen address, JetStream store and
    /// the authorization block, if any.
    fn write_config(&self) -> io::Result<()> {
        let store = self.dir.path().join("jetstream");
        let mut text = format!(
            "listen: \"127.0.0.1:{}\"\njetstream {{ store_dir: {:?} }}\n{}\n",
            self.port,
            store.display().to_string(),
            self.authorization.as_deref().unwrap_or_default()
        );
        if let Some(node) = &self.node {
            let routes: Vec<String> = node
                .routes
                .iter()
                .map(|port| format!("\"nats-route://127.0.0.1:{port}\""))
                .collect();
            text.push_str(&format!(
                "server_name: {:?}\nhttp: \"127.0.0.1:{}\"\n\
                 cluster {{\n  name: \"keyfed-test\"\n  listen: \"127.0.0.1:{}\"\n  routes: [{}]\n}}\n",
                node.name,
                node.monitor_port,
                node.cluster_port,
                routes.join(", ")
            ));
        }
        std::fs::write(self.config_path(), text)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        self.write_config()?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                    let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                    return Err(io::Error::other(format!(
                        "nats-server on port {} exited with {status}: {tail}",
                        self.port
                    )));
                }
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nats-server on port {} did not start listening", self.port),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Several nats-servers forming one JetStream cluster on loopback, each
/// with its own store and the same authorization block; killed on drop.
/// Nodes can be killed and restarted one at a time.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

/// How long a new cluster may take to elect its JetStream meta leader.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(30);

impl NatsCluster {
    /// Starts `size` nodes (`n0` …) enforcing `authorization` (if any) and
    /// waits until JetStream is usable on every one of them.
    pub fn start(size: usize, authorization: Option<String>) -> io::Result<Self> {
        assert!(size >= 1, "a cluster needs a node");
        let binary = nats_server_binary()?;
        let mut last_error = None;
        // A free port may be taken again before its node binds it.
        for _ in 0..3 {
            let ports = (0..size * 3)
                .map(|_| free_port())
                .collect::<io::Result<Vec<u16>>>()?;
            let routes: Vec<u16> = ports[size..2 * size].to_vec();
            let mut cluster = NatsCluster { nodes: Vec::new() };
            let started = (0..size).try_for_each(|i| {
                let mut server = NatsServer {
                    binary: binary.clone(),
                    port: ports[i],
                    dir: tempfile::Builder::new().prefix("keyfed-nats").tempdir()?,
                    child: None,
                    authorization: authorization.clone(),
                    // One node is a plain server, not a cluster of one.
                    node: (size > 1).then(|| ClusterNode {
                        name: format!("n{i}"),
                        cluster_port: routes[i],
                        monitor_port: ports[2 * size + i],
                        routes: routes.clone(),
                    }),
                };
                server.spawn()?;
                cluster.nodes.push(server);
                Ok::<(), io::Error>(())
            });
            match started.and_then(|()| cluster.wait_healthy(CLUSTER_READY_TIMEOUT)) {
                Ok(()) => return Ok(cluster),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("the NATS cluster did not start")))
    }

    /// Every node's client URL, comma separated (a directory `url`).
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(NatsServer::url).collect();
        urls.join(",")
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node (never: [`NatsCluster::start`]
    /// needs one).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s `server_name`.
    pub fn node_name(&self, i: usize) -> String {
        format!("n{i}")
    }

    /// Kills node `i` (SIGKILL; its store stays).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].stop();
    }

    /// Kills every node.
    pub fn kill_all(&mut self) {
        self.nodes.iter_mut().for_each(NatsServer::stop);
    }

    /// Starts node `i` again on its ports and store (it rejoins the
    /// cluster and catches up from the others).
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        self.nodes[i].restart()
    }

    /// Starts every node that is down again.
    pub fn restart_all(&mut self) -> io::Result<()> {
        for node in &mut self.nodes {
            if node.child.is_none() {
                node.restart()?;
            }
        }
        Ok(())
    }

    /// Replaces every node's authorization block and reloads it.
    pub fn reload_authorization(&mut self, authorization: String) -> io::Result<()> {
        for node in &mut self.nodes {
            node.reload_authorization(authorization.clone())?;
        }
        Ok(())
    }

    /// `GET path` on node `i`'s monitoring port (`/healthz`, `/jsz?…`):
    /// the status code and the body.
    pub fn monitor(&self, i: usize, path: &str) -> io::Result<(u16, String)> {
        use std::io::{Read, Write};
        let node = self.nodes[i]
            .node
            .as_ref()
            .ok_or_else(|| io::Error::other("a single server has no monitoring port here"))?;
        let mut stream = TcpStream::connect(("127.0.0.1", node.monitor_port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no status line in {answer:?}")))?;
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Waits until every running node reports itself healthy (`/healthz`:
    /// JetStream enabled, a meta leader known, its streams current).
    pub fn wait_healthy(&self, limit: Duration) -> io::Result<()> {
        let deadline = Instant::now() + limit;
        for (i, node) in self.nodes.iter().enumerate() {
            if node.child.is_none() || node.node.is_none() {
                continue;
            }
            loop {
                match self.monitor(i, "/healthz") {
                    Ok((200, _)) => break,
                    answer if Instant::now() >= deadline => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("NATS node n{i} not healthy after {limit:?}: {answer:?}"),
                        ));
                    }
                    _ => thread::sleep(Duration::from_millis(100)),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_parsed() {
        assert_eq!(parse_version("nats-server: v2.15.1\n"), Some((2, 15)));
        assert_eq!(parse_version("nats-server: v2.9.10"), Some((2, 9)));
        assert!(parse_version("garbage").is_none());
    }
}
