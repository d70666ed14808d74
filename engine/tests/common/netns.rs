//! Network namespaces for black-box fault tests: one namespace per node, each joined to a bridge
//! in the root namespace by a veth pair, and nftables rules inside a node's namespace to cut it
//! off fully, one way, or lossily.
//!
//! Names carry the test process id (`spr<pid>n1`, bridge `spr<pid>br`) and the subnet
//! `10.77.<k>.0/24` is picked from it (skipping subnets in use), so parallel runs do not clash.
//! The test process stays in the root namespace and reaches nodes through the bridge
//! (`10.77.<k>.254`). [`NetLab`]'s `Drop` kills the processes it started, then deletes the
//! namespaces, the veth pairs and the bridge, also when the test panics; node processes also get
//! `SIGKILL` when the thread that started them exits (`PR_SET_PDEATHSIG`), so a killed test
//! leaves no node running.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// nftables table every fault rule lives in (deleted as a whole by [`NetLab::heal`]).
const TABLE: &str = "sprawl_fault";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("could not run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("no free subnet 10.77.x.0/24 for this run")]
    NoSubnet,
}

/// Why the fault tests cannot run here, or `None` when they can (root, `ip` and `nft` present).
pub fn unavailable_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (network namespaces and nftables need it)".into());
    }
    for (tool, args) in [("ip", &["-V"][..]), ("nft", &["--version"][..])] {
        match Command::new(tool).args(args).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Some(format!(
                    "`{tool}` does not work: {}",
                    String::from_utf8_lossy(&o.stderr)
                ))
            }
            Err(e) => return Some(format!("`{tool}` is not installed ({e})")),
        }
    }
    None
}

/// Runs `program args`, failing with its stderr when it exits non-zero.
fn run(program: &str, args: &[&str]) -> Result<String, LabError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `nft -f -` inside namespace `ns` with `script` on stdin.
fn nft(ns: &str, script: &str) -> Result<(), LabError> {
    let command = format!("ip netns exec {ns} nft -f - <<< {script:?}");
    let spawn_err = |source| LabError::Spawn {
        command: command.clone(),
        source,
    };
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        return Err(LabError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// True when a process with this id exists.
fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a name of the form `spr<pid><suffix>`.
fn owner_pid(name: &str, suffix_start: char) -> Option<u32> {
    let rest = name.strip_prefix("spr")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = &rest[digits.len()..];
    if digits.is_empty() || !after.starts_with(suffix_start) {
        return None;
    }
    digits.parse().ok()
}

/// Deletes namespaces and bridges of earlier runs whose test process is gone and that hold no
/// process any more (left behind when a run was killed before its `Drop`).
fn remove_stale() {
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let stale = owner_pid(ns, 'n').is_some_and(|pid| !pid_alive(pid));
            let empty = run("ip", &["netns", "pids", ns]).is_ok_and(|p| p.trim().is_empty());
            if stale && empty {
                let _ = run("ip", &["netns", "del", ns]);
            }
        }
    }
    if let Ok(links) = run("ip", &["-o", "link", "show", "type", "bridge"]) {
        for line in links.lines() {
            let name = line.split(':').nth(1).map(str::trim).unwrap_or("");
            if name.ends_with("br") && owner_pid(name, 'b').is_some_and(|pid| !pid_alive(pid)) {
                let _ = run("ip", &["link", "del", name]);
            }
        }
    }
}

/// A bridge, one namespace per node, and the processes started in them.
pub struct NetLab {
    tag: String,
    subnet: u8,
    bridge: Option<String>,
    namespaces: Vec<String>,
    veths: Vec<String>,
    children: Vec<Option<Child>>,
}

impl NetLab {
    /// Creates the bridge and `nodes` namespaces with their links up and addresses set.
    pub fn new(nodes: usize) -> Result<NetLab, LabError> {
        remove_stale();
        let pid = std::process::id();
        let in_use = run("ip", &["-4", "-o", "addr", "show"])?;
        let subnet = (0..200u32)
            .map(|i| ((pid + i) % 200 + 20) as u8)
            .find(|k| !in_use.contains(&format!("10.77.{k}.")))
            .ok_or(LabError::NoSubnet)?;
        let mut lab = NetLab {
            tag: format!("spr{pid}"),
            subnet,
            bridge: None,
            namespaces: Vec::new(),
            veths: Vec::new(),
            children: (0..nodes).map(|_| None).collect(),
        };
        let bridge = format!("{}br", lab.tag);
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        lab.bridge = Some(bridge.clone());
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", lab.gateway()),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for i in 0..nodes {
            let ns = format!("{}n{}", lab.tag, i + 1);
            run("ip", &["netns", "add", &ns])?;
            lab.namespaces.push(ns.clone());
            let host_end = format!("{}h{}", lab.tag, i + 1);
            let node_end = format!("{}p{}", lab.tag, i + 1);
            run(
                "ip",
                &[
                    "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
                ],
            )?;
            lab.veths.push(host_end.clone());
            run("ip", &["link", "set", &node_end, "netns", &ns])?;
            run("ip", &["link", "set", &host_end, "master", &bridge])?;
            run("ip", &["link", "set", &host_end, "up"])?;
            let addr = format!("{}/24", lab.ip(i));
            for args in [
                &["addr", "add", &addr, "dev", &node_end][..],
                &["link", "set", &node_end, "up"],
                &["link", "set", "lo", "up"],
            ] {
                let mut full = vec!["netns", "exec", &ns, "ip"];
                full.extend_from_slice(args);
                run("ip", &full)?;
            }
        }
        Ok(lab)
    }

    /// How many node namespaces there are.
    pub fn len(&self) -> usize {
        self.namespaces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }

    /// Node `i`'s address (0-based: `10.77.<k>.<i + 1>`).
    pub fn ip(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, i + 1)
    }

    /// The bridge's address in the root namespace.
    pub fn gateway(&self) -> String {
        format!("10.77.{}.254", self.subnet)
    }

    /// Node `i`'s namespace name.
    pub fn namespace(&self, i: usize) -> &str {
        &self.namespaces[i]
    }

    /// Starts `program args` inside node `i`'s namespace with stdout and stderr appended to
    /// `log`. A process still running there is killed first.
    pub fn spawn(
        &mut self,
        i: usize,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<u32, LabError> {
        self.kill9(i);
        let command = format!("ip netns exec {} {}", self.namespaces[i], program.display());
        let spawn_err = |source| LabError::Spawn {
            command: command.clone(),
            source,
        };
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(spawn_err)?;
        let err = out.try_clone().map_err(spawn_err)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.namespaces[i]])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
        // parent; it runs in the forked child before exec (`ip netns exec` then execs the node,
        // which keeps the setting).
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(spawn_err)?;
        let pid = child.id();
        self.children[i] = Some(child);
        Ok(pid)
    }

    /// True while the process started for node `i` runs.
    pub fn running(&mut self, i: usize) -> bool {
        match self.children[i].as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The exit status of node `i`'s process if it has exited on its own.
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.children[i]
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// `kill -9` node `i`'s process (`ip netns exec` execs it, so this is the node itself) and
    /// reaps it.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Installs `rules` (nft rule bodies, each for chain `input` or `output`) in node `i`'s
    /// namespace, adding to what is there.
    fn add_rules(&self, i: usize, rules: &[(&str, String)]) -> Result<(), LabError> {
        let mut script = format!(
            "add table inet {TABLE}\n\
             add chain inet {TABLE} input {{ type filter hook input priority 0; policy accept; }}\n\
             add chain inet {TABLE} output {{ type filter hook output priority 0; policy accept; }}\n"
        );
        for (chain, rule) in rules {
            script.push_str(&format!("add rule inet {TABLE} {chain} {rule}\n"));
        }
        nft(&self.namespaces[i], &script)
    }

    /// Node `i` neither receives nor sends anything but loopback traffic.
    pub fn isolate(&self, i: usize) -> Result<(), LabError> {
        self.add_rules(
            i,
            &[
                ("input", "iifname != \"lo\" drop".into()),
                ("output", "oifname != \"lo\" drop".into()),
            ],
        )
    }

    /// Node `i` drops every packet that comes from node `peer` (it still sends to it).
    pub fn drop_from(&self, i: usize, peer: usize) -> Result<(), LabError> {
        self.add_rules(i, &[("input", format!("ip saddr {} drop", self.ip(peer)))])
    }

    /// Node `i` drops every packet it would send to node `peer` (it still receives from it).
    pub fn drop_to(&self, i: usize, peer: usize) -> Result<(), LabError> {
        self.add_rules(i, &[("output", format!("ip daddr {} drop", self.ip(peer)))])
    }

    /// Node `i` drops about `percent`% (1-99; nft refuses 100) of the packets it receives
    /// (loopback excepted).
    pub fn lossy(&self, i: usize, percent: u8) -> Result<(), LabError> {
        self.add_rules(
            i,
            &[(
                "input",
                format!("iifname != \"lo\" numgen random mod 100 < {percent} drop"),
            )],
        )
    }

    /// Removes every fault rule of node `i`.
    pub fn heal(&self, i: usize) -> Result<(), LabError> {
        // Adding first makes the delete succeed whether or not a rule was installed.
        nft(
            &self.namespaces[i],
            &format!("add table inet {TABLE}\ndelete table inet {TABLE}\n"),
        )
    }

    /// Removes every fault rule of every node.
    pub fn heal_all(&self) -> Result<(), LabError> {
        (0..self.len()).try_for_each(|i| self.heal(i))
    }

    /// The fault rules installed in node `i`'s namespace (`nft list ruleset`).
    pub fn rules(&self, i: usize) -> Result<String, LabError> {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.namespaces[i],
                "nft",
                "list",
                "ruleset",
            ],
        )
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill9(i);
        }
        for ns in &self.namespaces {
            let _ = run("ip", &["netns", "del", ns]);
        }
        for veth in &self.veths {
            // Usually gone with its peer's namespace already.
            let _ = run("ip", &["link", "del", veth]);
        }
        if let Some(bridge) = &self.bridge {
            let _ = run("ip", &["link", "del", bridge]);
        }
    }
}

/// Client, HTTP and gossip ports of every node (each node has its own namespace and address).
pub const CLIENT_PORT: u16 = 7070;
pub const HTTP_PORT: u16 = 8080;
pub const GOSSIP_PORT: u16 = 7946;

/// `sprawl serve` nodes in a [`NetLab`]: node `i` has id `i + 1`, address [`NetLab::ip`], data
/// in `<root>/n<i+1>` and its stdout/stderr appended to `<root>/n<i+1>/node.log` across restarts.
/// Every node is a metadata controller and lists every node's gossip address as a seed.
pub struct NsCluster {
    pub lab: NetLab,
    root: std::path::PathBuf,
    binary: std::path::PathBuf,
}

impl NsCluster {
    pub fn new(lab: NetLab, root: &Path, binary: &Path) -> NsCluster {
        NsCluster {
            lab,
            root: root.to_path_buf(),
            binary: binary.to_path_buf(),
        }
    }

    pub fn len(&self) -> usize {
        self.lab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lab.is_empty()
    }

    /// Node `i`'s client address.
    pub fn addr(&self, i: usize) -> String {
        format!("{}:{CLIENT_PORT}", self.lab.ip(i))
    }

    /// Every node's client address.
    pub fn addrs(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.addr(i)).collect()
    }

    pub fn dir(&self, i: usize) -> std::path::PathBuf {
        self.root.join(format!("n{}", i + 1))
    }

    pub fn log_path(&self, i: usize) -> std::path::PathBuf {
        self.dir(i).join("node.log")
    }

    /// Starts node `i` (killing a process still running for it) and waits up to 60 s until it
    /// serves (`ports.json` written); the error carries the end of its log.
    pub fn start(&mut self, i: usize) -> Result<Duration, String> {
        let started = std::time::Instant::now();
        let dir = self.dir(i);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ports = dir.join("ports.json");
        let _ = std::fs::remove_file(&ports);
        let controllers: Vec<String> = (0..self.len())
            .map(|j| format!("{}@{}", j + 1, self.addr(j)))
            .collect();
        let seeds: Vec<String> = (0..self.len())
            .map(|j| format!("{}:{GOSSIP_PORT}", self.lab.ip(j)))
            .collect();
        let args: Vec<String> = [
            "serve",
            "--node-id",
            &(i + 1).to_string(),
            "--bind",
            &self.lab.ip(i),
            "--port",
            &CLIENT_PORT.to_string(),
            "--http-port",
            &HTTP_PORT.to_string(),
            "--gossip-port",
            &GOSSIP_PORT.to_string(),
            "--controllers",
            &controllers.join(","),
            "--seeds",
            &seeds.join(","),
            "--shards",
            "1",
            "--flush-interval-ms",
            "200",
            "--data-dir",
            &dir.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = self.log_path(i);
        if let Ok(mut f) = File::options().create(true).append(true).open(&log) {
            let _ = writeln!(f, "==== test: starting node {} ====", i + 1);
        }
        self.lab
            .spawn(i, &self.binary, &args, &log)
            .map_err(|e| e.to_string())?;
        let deadline = started + Duration::from_secs(60);
        loop {
            if ports.exists() {
                return Ok(started.elapsed());
            }
            if let Some(status) = self.lab.exited(i) {
                return Err(format!(
                    "node {} exited during start-up with {status}:\n{}",
                    i + 1,
                    self.log_tail(i, 30)
                ));
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "node {} not ready in 60 s:\n{}",
                    i + 1,
                    self.log_tail(i, 30)
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `kill -9` node `i`.
    pub fn kill9(&mut self, i: usize) {
        self.lab.kill9(i);
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `GET path` on node `i`'s HTTP port with short timeouts; `None` when it does not answer.
    pub fn get(&self, i: usize, path: &str) -> Option<(u16, String)> {
        use std::io::Read;
        let addr: std::net::SocketAddr = format!("{}:{HTTP_PORT}", self.lab.ip(i)).parse().ok()?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(800)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        s.set_write_timeout(Some(Duration::from_secs(3))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    }

    /// Node `i`'s gauge `sprawl_<name>{...,topic="<topic>",partition="<p>"}`, if it reports one.
    pub fn partition_metric(&self, i: usize, name: &str, topic: &str, p: u32) -> Option<u64> {
        let (code, text) = self.get(i, "/metrics")?;
        if code != 200 {
            return None;
        }
        let prefix = format!("sprawl_{name}{{");
        let labels = format!("topic=\"{topic}\",partition=\"{p}\"}}");
        text.lines()
            .find(|l| l.starts_with(&prefix) && l.contains(&labels))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}
