//! The UDP driver with real sockets on 127.0.0.1: each node runs on its own
//! glommio executor thread. Assertions wait for outcomes with generous
//! deadlines; the only fixed waits are the observation windows in which
//! nothing may go wrong (loss, pause).

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use gossip::{
    ChangeEvent, DownKind, GossipConfig, GossipDriver, GossipError, GossipStats, Member,
    MemberChange, MemberState, MemberStatus, Membership, SplitMix64,
};

/// Registered I/O memory per test executor: small, so a dozen executors fit an
/// 8 MiB `ulimit -l` (gossip datagrams need a few KiB).
const IO_MEMORY_BYTES: usize = 256 << 10;
/// How often a node thread publishes its view for the test thread.
const VIEW_PUBLISH: Duration = Duration::from_millis(50);
/// Deadline for a fresh cluster to converge (join retries start at 200 ms).
const CONVERGE_MAX: Duration = Duration::from_secs(30);
/// Crash-detection bound of the recommended config, the same as the
/// simulation states: probe cycle + 12 s suspicion + dissemination.
const CRASH_DETECTION_MAX: Duration = Duration::from_secs(25);

enum Cmd {
    Pause(Duration),
    Kill,
    Leave,
    SetLoad(f32),
}

#[derive(Default)]
struct View {
    members: Vec<MemberStatus>,
    events: Vec<ChangeEvent>,
    stats: GossipStats,
    identity: Option<Member>,
    /// Node ids this node ever saw as suspect.
    seen_suspect: HashSet<u32>,
    leave_result: Option<Result<(), String>>,
}

struct Node {
    node_id: u32,
    advertise: String,
    local_addr: SocketAddr,
    cmd: mpsc::Sender<Cmd>,
    view: Arc<Mutex<View>>,
    thread: Option<ExecutorJoinHandle<()>>,
}

fn config(node_id: u32, seeds: Vec<String>) -> GossipConfig {
    let mut config = GossipConfig::new(node_id, "127.0.0.1:0".parse().expect("addr"));
    config.incarnation = 1;
    config.client_addr = format!("127.0.0.1:{}", 7000 + node_id);
    config.http_addr = format!("127.0.0.1:{}", 8000 + node_id);
    config.shard_count = 2;
    config.load_msgs_per_s = node_id as f32;
    config.seeds = seeds;
    config.rng_seed = u64::from(node_id) * 7919;
    config.join_retry_initial_ms = 200;
    config.join_retry_max_ms = 2_000;
    config.load_announce_interval_ms_min = 500;
    config
}

impl Node {
    fn start(config: GossipConfig) -> Node {
        let node_id = config.node_id;
        let view = Arc::new(Mutex::new(View::default()));
        let (cmd, commands) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let shared_view = view.clone();
        let thread = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("gossip-{node_id}"))
            .io_memory(IO_MEMORY_BYTES)
            .spawn(move || async move {
                let handle = match GossipDriver::start(config) {
                    Ok(handle) => handle,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((
                    handle.advertise_addr().to_owned(),
                    handle.local_addr(),
                )));
                let changes = handle.changes().expect("first call hands out the queue");
                assert!(handle.changes().is_none());
                loop {
                    {
                        let mut view = shared_view.lock().expect("view lock");
                        view.members = handle.members();
                        view.stats = handle.stats();
                        view.identity = Some(handle.identity());
                        while let Some(event) = changes.try_recv() {
                            view.events.push(event);
                        }
                        let suspects: Vec<u32> = view
                            .members
                            .iter()
                            .filter(|m| m.state == MemberState::Suspect)
                            .map(|m| m.member.node_id())
                            .collect();
                        view.seen_suspect.extend(suspects);
                    }
                    match commands.try_recv() {
                        // Blocks the whole executor, like SIGSTOP: datagrams
                        // queue in the kernel, timers fire late.
                        Ok(Cmd::Pause(duration)) => std::thread::sleep(duration),
                        // Returning drops the handle: the driver stops without a leave.
                        Ok(Cmd::Kill) | Err(mpsc::TryRecvError::Disconnected) => return,
                        Ok(Cmd::Leave) => {
                            let result = handle.leave().await.map_err(|e| e.to_string());
                            shared_view.lock().expect("view lock").leave_result = Some(result);
                            return;
                        }
                        Ok(Cmd::SetLoad(load)) => handle.set_load(load).expect("valid load"),
                        Err(mpsc::TryRecvError::Empty) => {}
                    }
                    glommio::timer::sleep(VIEW_PUBLISH).await;
                }
            })
            .expect("start executor");
        let (advertise, local_addr) = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("node reports start")
            .expect("driver starts");
        Node {
            node_id,
            advertise,
            local_addr,
            cmd,
            view,
            thread: Some(thread),
        }
    }

    fn send(&self, cmd: Cmd) {
        self.cmd.send(cmd).expect("node thread running");
    }

    fn stop(&mut self, cmd: Cmd) {
        self.send(cmd);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("node thread exits cleanly");
        }
    }

    fn view<T>(&self, f: impl FnOnce(&View) -> T) -> T {
        f(&self.view.lock().expect("view lock"))
    }

    fn state_of(&self, node_id: u32) -> Option<MemberState> {
        self.view(|v| {
            v.members
                .iter()
                .find(|m| m.member.node_id() == node_id)
                .map(|m| m.state)
        })
    }

    fn alive_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.view(|v| {
            v.members
                .iter()
                .filter(|m| m.state != MemberState::Down(DownKind::Left))
                .filter(|m| m.state != MemberState::Down(DownKind::Failed))
                .map(|m| m.member.node_id())
                .collect()
        });
        ids.sort_unstable();
        ids
    }

    /// Every `Down` this node reported, and self-incidents (declared down).
    fn downs(&self) -> Vec<(u32, Option<DownKind>)> {
        self.view(|v| {
            v.events
                .iter()
                .filter_map(|e| match &e.change {
                    MemberChange::Down(m) => Some((m.node_id(), e.down_kind)),
                    MemberChange::Rejoined(_) | MemberChange::Defunct => Some((self.node_id, None)),
                    _ => None,
                })
                .collect()
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.cmd.send(Cmd::Kill);
            let _ = thread.join();
        }
    }
}

fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if cond() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

fn converged(nodes: &[&Node]) -> bool {
    nodes.iter().all(|n| {
        let mut expected: Vec<u32> = nodes
            .iter()
            .map(|o| o.node_id)
            .filter(|&id| id != n.node_id)
            .collect();
        expected.sort_unstable();
        n.alive_ids() == expected
    })
}

/// A free UDP port on 127.0.0.1 (released before use; the race is harmless here).
fn free_port() -> u16 {
    let probe = StdUdpSocket::bind("127.0.0.1:0").expect("bind probe");
    probe.local_addr().expect("probe addr").port()
}

#[test]
fn three_nodes_converge_share_metadata_and_see_a_leave_as_left() {
    // Node 1 is given only itself as seed (skipped: it waits for others).
    let port1 = free_port();
    let mut first = config(1, vec![format!("127.0.0.1:{port1}")]);
    first.bind_addr = format!("127.0.0.1:{port1}").parse().expect("addr");
    let n1 = Node::start(first);
    let n2 = Node::start(config(2, vec![n1.advertise.clone()]));
    // A name seed: announced as written and as the 127.0.0.1 address it resolves to.
    let mut n3 = Node::start(config(
        3,
        vec![format!("localhost:{port1}"), n2.advertise.clone()],
    ));
    wait_until("convergence", CONVERGE_MAX, || converged(&[&n1, &n2, &n3]));
    assert_eq!(n1.view(|v| v.stats.join_attempts_total), 0);

    let seen = n1.view(|v| {
        v.members
            .iter()
            .find(|m| m.member.node_id() == 3)
            .map(|m| m.member.clone())
            .expect("node 3 known")
    });
    assert_eq!(seen.client_addr(), "127.0.0.1:7003");
    assert_eq!(seen.http_addr(), "127.0.0.1:8003");
    assert_eq!(seen.gossip_addr(), n3.advertise);
    assert_eq!(seen.shard_count(), 2);
    assert_eq!(seen.load_msgs_per_s(), 3.0);

    // Garbage is counted and dropped; the node keeps working.
    let garbage = StdUdpSocket::bind("127.0.0.1:0").expect("bind");
    let bad: [&[u8]; 4] = [&[], &[1, 2, 3], &[0xFF; 40], &[1; 2_000]];
    for datagram in bad {
        garbage
            .send_to(datagram, &n2.advertise)
            .expect("send garbage");
    }
    wait_until("garbage counted", Duration::from_secs(10), || {
        n2.view(|v| v.stats.decode_errors_total) >= bad.len() as u64
    });

    // A load update reaches every peer as new metadata of the same node.
    n2.send(Cmd::SetLoad(1234.5));
    wait_until("load update seen", Duration::from_secs(20), || {
        [&n1, &n3].iter().all(|n| {
            n.view(|v| {
                v.members.iter().any(|m| {
                    m.member.node_id() == 2
                        && m.state == MemberState::Alive
                        && m.member.load_msgs_per_s() == 1234.5
                })
            })
        })
    });
    // The node's own view is republished every 50 ms, so peers on loopback
    // can see the update before the test thread sees n2's new identity.
    wait_until("own identity renewed", Duration::from_secs(5), || {
        n2.view(|v| v.identity.as_ref().map(|m| m.incarnation())) == Some(2)
    });

    n3.stop(Cmd::Leave);
    assert_eq!(n3.view(|v| v.leave_result.clone()), Some(Ok(())));
    wait_until("leave seen as left", Duration::from_secs(10), || {
        [&n1, &n2]
            .iter()
            .all(|n| n.state_of(3) == Some(MemberState::Down(DownKind::Left)))
    });
    for n in [&n1, &n2] {
        assert_eq!(
            n.downs(),
            vec![(3, Some(DownKind::Left))],
            "node {}",
            n.node_id
        );
        assert_eq!(n.alive_ids().len(), 1);
        let stats = n.view(|v| v.stats);
        assert!(stats.datagrams_in_total > 0 && stats.datagrams_out_total > 0);
        assert_eq!((stats.members_left, stats.members_failed), (1, 0));
    }
}

#[test]
fn killed_node_is_declared_failed_within_the_bound() {
    let n1 = Node::start(config(11, vec![]));
    let n2 = Node::start(config(12, vec![n1.advertise.clone()]));
    let mut n3 = Node::start(config(13, vec![n1.advertise.clone()]));
    wait_until("convergence", CONVERGE_MAX, || converged(&[&n1, &n2, &n3]));
    let killed_at = Instant::now();
    n3.stop(Cmd::Kill);
    let detected_after = wait_until("crash detected", CRASH_DETECTION_MAX, || {
        [&n1, &n2]
            .iter()
            .all(|n| n.state_of(13) == Some(MemberState::Down(DownKind::Failed)))
    });
    // Failure needs an unrefuted suspicion: never faster than its timeout
    // (less 2 s, in case a probe missed by a loaded machine just before the
    // kill had already started one).
    let suspicion = Membership::recommended_config().suspect_to_down_after;
    assert!(
        detected_after + Duration::from_secs(2) >= suspicion,
        "declared down after {detected_after:?}, before the {suspicion:?} suspicion timeout"
    );
    assert!(killed_at.elapsed() >= detected_after);
    for n in [&n1, &n2] {
        assert_eq!(n.downs(), vec![(13, Some(DownKind::Failed))]);
        assert!(n.view(|v| v.seen_suspect.contains(&13)));
        assert_eq!(n.view(|v| v.stats.members_failed), 1);
    }
}

/// Forwards datagrams to `target`, dropping a seeded 10% of them.
struct LossyForwarder {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl LossyForwarder {
    fn start(seed: u64, loss: f64) -> Self {
        let socket = StdUdpSocket::bind("127.0.0.1:0").expect("bind forwarder");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("forwarder addr");
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let (t, s, f, d) = (
            target.clone(),
            stop.clone(),
            forwarded.clone(),
            dropped.clone(),
        );
        let thread = std::thread::spawn(move || {
            let mut rng = SplitMix64::new(seed);
            let mut buf = [0u8; 2_048];
            while !s.load(Ordering::Relaxed) {
                let Ok((len, _)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Some(to) = *t.lock().expect("target lock") else {
                    continue;
                };
                if rng.next_f64() < loss {
                    d.fetch_add(1, Ordering::Relaxed);
                } else if socket.send_to(&buf[..len], to).is_ok() {
                    f.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            addr,
            target,
            stop,
            forwarded,
            dropped,
            thread: Some(thread),
        }
    }
}

impl Drop for LossyForwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Length of the lossy run after convergence.
const LOSS_RUN: Duration = Duration::from_secs(15);

#[test]
fn ten_percent_loss_declares_nobody_down() {
    // Every node advertises its forwarder, so every datagram crosses one lossy hop.
    let forwarders: Vec<LossyForwarder> = (0..3)
        .map(|i| LossyForwarder::start(0x5EED + i, 0.10))
        .collect();
    let seed = forwarders[0].addr.to_string();
    let nodes: Vec<Node> = forwarders
        .iter()
        .enumerate()
        .map(|(i, forwarder)| {
            let seeds = if i == 0 { vec![] } else { vec![seed.clone()] };
            let mut c = config(21 + i as u32, seeds);
            c.advertise_addr = Some(forwarder.addr.to_string());
            let node = Node::start(c);
            *forwarder.target.lock().expect("target lock") = Some(node.local_addr);
            node
        })
        .collect();
    let all: Vec<&Node> = nodes.iter().collect();
    wait_until("convergence under loss", CONVERGE_MAX, || converged(&all));
    let run_start = Instant::now();
    while run_start.elapsed() < LOSS_RUN {
        for n in &nodes {
            assert_eq!(
                n.downs(),
                vec![],
                "node {} saw a down under loss",
                n.node_id
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Suspicions may be pending at any instant; none may have turned into a down.
    assert!(converged(&all), "views changed under loss");
    for n in &nodes {
        assert_eq!(n.downs(), vec![], "node {}", n.node_id);
    }
    let dropped: u64 = forwarders
        .iter()
        .map(|f| f.dropped.load(Ordering::Relaxed))
        .sum();
    let forwarded: u64 = forwarders
        .iter()
        .map(|f| f.forwarded.load(Ordering::Relaxed))
        .sum();
    let ratio = dropped as f64 / (dropped + forwarded) as f64;
    assert!(
        forwarded > 100 && (0.03..0.18).contains(&ratio),
        "the network must really drop ~10%: {dropped} dropped, {forwarded} forwarded"
    );
}

/// A paused node is suspected within ~2 s at most and a down would follow the
/// 12 s suspicion timeout: watching 18 s from the pause covers it.
const PAUSE_WATCH: Duration = Duration::from_secs(18);

#[test]
fn five_second_pause_is_not_declared_down() {
    let n1 = Node::start(config(41, vec![]));
    let n2 = Node::start(config(42, vec![n1.advertise.clone()]));
    let n3 = Node::start(config(43, vec![n1.advertise.clone()]));
    let all = [&n1, &n2, &n3];
    wait_until("convergence", CONVERGE_MAX, || converged(&all));
    let paused_at = Instant::now();
    n2.send(Cmd::Pause(Duration::from_secs(5)));
    while paused_at.elapsed() < PAUSE_WATCH {
        for n in all {
            assert_eq!(n.downs(), vec![], "node {} during the pause", n.node_id);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The pause was long enough to be noticed: this exercises refutation.
    assert!(
        [&n1, &n3]
            .iter()
            .any(|n| n.view(|v| v.seen_suspect.contains(&42))),
        "nobody suspected the paused node"
    );
    wait_until(
        "paused node seen alive again",
        Duration::from_secs(10),
        || {
            [&n1, &n3]
                .iter()
                .all(|n| n.state_of(42) == Some(MemberState::Alive))
        },
    );
    for n in all {
        assert_eq!(n.downs(), vec![], "node {}", n.node_id);
    }
}

#[test]
fn port_in_use_is_reported_and_nothing_starts() {
    let holder = StdUdpSocket::bind("127.0.0.1:0").expect("bind holder");
    let addr = holder.local_addr().expect("holder addr");
    let result = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .spawn(move || async move {
            let mut c = config(31, vec![]);
            c.bind_addr = addr;
            let port_in_use = matches!(
                GossipDriver::start(c),
                Err(GossipError::PortInUse { addr: a }) if a == addr
            );
            let mut c = config(32, vec!["no-port".to_owned()]);
            c.bind_addr = "127.0.0.1:0".parse().expect("addr");
            let bad_seed = matches!(GossipDriver::start(c), Err(GossipError::InvalidSeed { .. }));
            let mut c = config(33, vec![]);
            c.bind_addr = "0.0.0.0:0".parse().expect("addr");
            let unspecified = matches!(
                GossipDriver::start(c),
                Err(GossipError::AdvertiseUnspecified { .. })
            );
            (port_in_use, bad_seed, unspecified)
        })
        .expect("start executor")
        .join()
        .expect("executor thread");
    assert_eq!(result, (true, true, true));
}

#[test]
fn unresolvable_seed_is_retried_and_leave_still_works() {
    let (attempts, joined, left) = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .spawn(|| async {
            let mut c = config(51, vec!["unresolvable.invalid:7946".to_owned()]);
            c.log_to_stderr = false;
            let handle = GossipDriver::start(c).expect("start");
            let before = Instant::now();
            while handle.stats().join_attempts_total < 3
                && before.elapsed() < Duration::from_secs(20)
            {
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            let attempts = handle.stats().join_attempts_total;
            let joined = handle.is_joined();
            (attempts, joined, handle.leave().await.is_ok())
        })
        .expect("start executor")
        .join()
        .expect("executor thread");
    assert!(attempts >= 3, "join retried: {attempts}");
    assert!(!joined);
    assert!(left, "leaving before joining is fine");
}
