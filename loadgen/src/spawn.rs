//! `--spawn`: a local `sprawl serve --port 0 --http-port 0` in a temporary data directory, stopped
//! with SIGTERM. [`SpawnedNode::start_with`] starts one on a given port with extra flags (a
//! cluster member: `--node-id`, `--controllers`, `--seeds`, `--gossip-port`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the node may take to write `ports.json`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the node may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("no sprawl binary at {path} (build it with `cargo build -p engine --bin sprawl`, or pass --sprawl-bin PATH)")]
    NoBinary { path: PathBuf },
    #[error("cannot create a temporary data directory: {0}")]
    TempDir(std::io::Error),
    #[error("cannot start {path}: {source}")]
    Start {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sprawl exited during start-up ({status}); its output:\n{output}")]
    ExitedEarly { status: String, output: String },
    #[error("sprawl wrote no usable {path} within {timeout_s} s")]
    NoPorts { path: PathBuf, timeout_s: u64 },
    #[error("stopping sprawl (pid {pid}): {reason}")]
    Stop { pid: u32, reason: String },
}

/// A running node; stop it with [`SpawnedNode::stop`] (dropping it kills it).
pub struct SpawnedNode {
    child: Option<Child>,
    pub client_addr: String,
    /// The node's HTTP port (`ports.json` "http").
    pub http_addr: String,
    pub binary: PathBuf,
    pub data_dir: tempfile::TempDir,
    pub shards: u32,
}

/// `sprawl` next to the running executable (cargo puts both binaries in `target/<profile>/`).
pub fn default_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("sprawl"))
}

impl SpawnedNode {
    pub fn start(binary: &Path, shards: u32) -> Result<Self, SpawnError> {
        Self::start_with(binary, shards, 0, &[])
    }

    /// A node on client port `port` (0 = any free one) with `extra` flags after the usual ones.
    pub fn start_with(
        binary: &Path,
        shards: u32,
        port: u16,
        extra: &[String],
    ) -> Result<Self, SpawnError> {
        if !binary.is_file() {
            return Err(SpawnError::NoBinary {
                path: binary.to_owned(),
            });
        }
        let data_dir = tempfile::Builder::new()
            .prefix("loadgen-sprawl-")
            .tempdir()
            .map_err(SpawnError::TempDir)?;
        let log_path = data_dir.path().join("sprawl.log");
        let log = std::fs::File::create(&log_path).map_err(SpawnError::TempDir)?;
        let log_err = log.try_clone().map_err(SpawnError::TempDir)?;
        let child = Command::new(binary)
            .arg("serve")
            .args([
                "--port",
                &port.to_string(),
                "--http-port",
                "0",
                "--shards",
                &shards.to_string(),
            ])
            .arg("--data-dir")
            .arg(data_dir.path().join("data"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| SpawnError::Start {
                path: binary.to_owned(),
                source,
            })?;
        let mut node = SpawnedNode {
            child: Some(child),
            client_addr: String::new(),
            http_addr: String::new(),
            binary: binary.to_owned(),
            data_dir,
            shards,
        };
        let ports = node.data_dir.path().join("data").join("ports.json");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some((client, http)) = read_addrs(&ports) {
                node.client_addr = client;
                node.http_addr = http;
                return Ok(node);
            }
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    node.child = None;
                    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
                    let tail: Vec<&str> = output.lines().rev().take(20).collect();
                    let output = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
                    return Err(SpawnError::ExitedEarly {
                        status: status.to_string(),
                        output,
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(SpawnError::NoPorts {
                    path: ports,
                    timeout_s: START_TIMEOUT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A field of the node's `ports.json` (e.g. "gossip"), once written.
    pub fn port_file_field(&self, field: &str) -> Option<String> {
        let path = self.data_dir.path().join("data").join("ports.json");
        let text = std::fs::read_to_string(path).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(value.get(field)?.as_str()?.to_owned())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then waits for a clean exit (killing the node after [`STOP_TIMEOUT`]).
    pub fn stop(mut self) -> Result<(), SpawnError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        let stop_error = |reason: String| SpawnError::Stop { pid, reason };
        let raw_pid = libc::pid_t::try_from(pid).map_err(|e| stop_error(e.to_string()))?;
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; `raw_pid` is our own
        // child, not yet reaped (we hold its `Child`), so the pid cannot have been reused.
        let rc = unsafe { libc::kill(raw_pid, libc::SIGTERM) };
        if rc != 0 {
            return Err(stop_error(std::io::Error::last_os_error().to_string()));
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(stop_error(format!("exited with {status}"))),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(stop_error(format!(
                        "still running {} s after SIGTERM; killed",
                        STOP_TIMEOUT.as_secs()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(stop_error(e.to_string())),
            }
        }
    }
}

impl Drop for SpawnedNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `client` and `http` addresses in a `ports.json`, once the file is complete.
fn read_addrs(path: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let client = value.get("client")?.as_str()?.to_owned();
    let http = value.get("http")?.as_str()?.to_owned();
    Some((client, http))
}
