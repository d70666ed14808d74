//! The metadata controller of a node named in `--controllers`: a Raft replica of the cluster
//! metadata (crate `meta`) on its own thread, so that Raft's fsyncs never block a reactor.
//!
//! - Inbound Raft messages arrive as `Raft` frames on any shard's client port and are handed to the
//!   controller thread through a bounded queue ([`Controller::deliver`]); when it is full the
//!   message is dropped and counted (Raft retransmits).
//! - Outbound messages go to each peer controller through one sender thread per peer, each with a
//!   bounded queue and one blocking protocol connection (`net::client`), reconnected with a delay
//!   after a failure; a message for an unreachable peer is dropped, never queued without bound.
//! - The thread ticks Raft every 100 ms. While it leads, it registers every live member that gossip
//!   reports (`RegisterNode`), so the metadata lists the cluster's nodes and their client addresses.
//! - [`Controller::view`] is the latest published status and metadata summary, for `/cluster`.
//!
//! - Topic changes from this node's shards ([`Controller::change`]) are proposed while it leads;
//!   the leader places partitions and elects their leaders ([`topics`]) and answers once committed.
//! - [`ControllerView::state`] is the committed metadata, which the node's topics follow
//!   (`crate::metadata`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use meta::{Command, DirBackend, MetaConfig, MetaNode, MetadataState, ProposeError, Role};

mod hand_over;
mod reassign;
mod rebalance;
mod topics;
pub use topics::{
    config_to_settings, settings_to_config, ChangeOutcome, TopicChange, PROPOSAL_TIMEOUT,
};

/// Raft's tick (the `meta` defaults assume 100 ms: elections after 0.6-1.2 s).
const TICK: Duration = Duration::from_millis(100);
/// Inbound queue of the controller thread (Raft messages and member lists).
const INBOX_MAX: usize = 4096;
/// Outbound queue per peer.
const PEER_QUEUE_MAX: usize = 1024;
/// After a failed connect, messages to that peer are dropped for this long before trying again.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// A member is registered again at most this often while the leader waits for the commit.
const REGISTER_RETRY: Duration = Duration::from_secs(2);
/// How long a member gossip suspects keeps its place in in-sync sets: long enough for a
/// healthy node to refute a suspicion (a few hundred ms), short enough that `acks=all` writes
/// waiting on a dead follower resume soon.
const SUSPECT_GRACE: Duration = Duration::from_millis(750);

enum Input {
    Step(Vec<u8>),
    Members(Vec<(u64, String)>, Vec<u64>),
    Change(TopicChange, flume::Sender<ChangeOutcome>),
    Stop,
}

/// What `/cluster` shows of the controller.
#[derive(Debug, Clone, Default)]
pub struct ControllerView {
    pub node_id: u64,
    pub voters: Vec<u64>,
    pub role: &'static str,
    pub term: u64,
    pub leader_id: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub version: u64,
    pub nodes: Vec<(u64, String)>,
    pub topics: usize,
    /// The last storage error the controller recovered from by reopening, if any.
    pub last_error: Option<String>,
    /// The committed metadata (replaced, never mutated, when its version moves).
    pub state: Arc<MetadataState>,
}

/// Counters of the controller and its peer senders.
#[derive(Debug, Default)]
pub struct ControllerCounters {
    pub inbound_dropped_total: AtomicU64,
    pub inbound_invalid_total: AtomicU64,
    pub sent_total: AtomicU64,
    pub send_errors_total: AtomicU64,
    pub outbound_dropped_total: AtomicU64,
    pub proposals_total: AtomicU64,
}

/// Handle to the controller thread, shared by every shard.
#[derive(Clone)]
pub struct Controller {
    node_id: u64,
    inbox: SyncSender<Input>,
    view: Arc<Mutex<Arc<ControllerView>>>,
    pub counters: Arc<ControllerCounters>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("node_id", &self.node_id)
            .finish()
    }
}

impl Controller {
    /// Opens the Raft log in `dir` and starts the controller thread. `voters` are
    /// `(node id, client address)`; this node must be one of them.
    pub fn start(
        node_id: u64,
        voters: &[(u64, String)],
        dir: PathBuf,
        message_bytes_max: u64,
        node_loss_grace: Duration,
    ) -> Result<Controller, String> {
        let ids: Vec<u64> = voters.iter().map(|(id, _)| *id).collect();
        let mut config = MetaConfig::new(node_id, ids.clone(), seed(node_id));
        config.message_bytes_max = message_bytes_max;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let node = open_node(&config, &dir)?;
        let counters = Arc::new(ControllerCounters::default());
        let mut peers = BTreeMap::new();
        for (id, addr) in voters.iter().filter(|(id, _)| *id != node_id) {
            peers.insert(
                *id,
                PeerSender::start(node_id, *id, addr.clone(), counters.clone())?,
            );
        }
        let (inbox, rx) = mpsc::sync_channel(INBOX_MAX);
        let view = Arc::new(Mutex::new(Arc::new(ControllerView {
            node_id,
            voters: ids,
            ..ControllerView::default()
        })));
        let mut run = Run {
            node,
            config,
            dir: dir.clone(),
            peers,
            view: view.clone(),
            counters: counters.clone(),
            members: Vec::new(),
            suspect: BTreeMap::new(),
            registering: BTreeMap::new(),
            last_error: None,
            topics: topics::Topics::default(),
            reassign: reassign::Reassigner::new(node_loss_grace),
            rebalance: rebalance::Rebalancer::default(),
            hand_overs: hand_over::HandOvers::with_analytics_defaults(),
        };
        let thread = std::thread::Builder::new()
            .name("controller".into())
            .spawn(move || run.run(rx))
            .map_err(|e| format!("cannot start the controller thread: {e}"))?;
        Ok(Controller {
            node_id,
            inbox,
            view,
            counters,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Hands a received Raft message to the controller; drops it when the queue is full.
    pub fn deliver(&self, message: &[u8]) {
        match self.inbox.try_send(Input::Step(message.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters
                    .inbound_dropped_total
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The live members (id, client address) the leader should register, and the members gossip
    /// suspects (not answering for a moment, not declared down).
    pub fn set_members(&self, members: Vec<(u64, String)>, suspect: Vec<u64>) {
        let _ = self.inbox.try_send(Input::Members(members, suspect));
    }

    /// Asks the controller for a topic change and waits for the outcome (at most
    /// [`PROPOSAL_TIMEOUT`] after it was proposed).
    pub async fn change(&self, change: TopicChange) -> ChangeOutcome {
        let (tx, rx) = flume::bounded(1);
        if self.inbox.try_send(Input::Change(change, tx)).is_err() {
            return ChangeOutcome::Refused {
                message: "the metadata controller is overloaded or stopping; retry".into(),
            };
        }
        rx.recv_async()
            .await
            .unwrap_or_else(|_| ChangeOutcome::Refused {
                message: "the metadata controller stopped before answering; retry".into(),
            })
    }

    /// This controller's node id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The latest status and metadata summary.
    pub fn view(&self) -> Arc<ControllerView> {
        self.view
            .lock()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Stops the thread (it finishes the Raft work in hand) and waits for it.
    pub fn stop(&self) {
        let _ = self.inbox.send(Input::Stop);
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

fn open_node(config: &MetaConfig, dir: &std::path::Path) -> Result<MetaNode<DirBackend>, String> {
    let backend =
        DirBackend::open(dir).map_err(|e| format!("metadata log in {}: {e}", dir.display()))?;
    MetaNode::open(config.clone(), backend)
        .map_err(|e| format!("metadata log in {}: {e}", dir.display()))
}

/// Election jitter seed: differs per node and per boot (no ambient randomness inside `meta`).
fn seed(node_id: u64) -> u64 {
    let boot = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    boot ^ node_id.rotate_left(32) ^ u64::from(std::process::id())
}

struct Run {
    node: MetaNode<DirBackend>,
    config: MetaConfig,
    dir: PathBuf,
    peers: BTreeMap<u64, PeerSender>,
    view: Arc<Mutex<Arc<ControllerView>>>,
    counters: Arc<ControllerCounters>,
    members: Vec<(u64, String)>,
    /// Members gossip suspects, and since when: not live (leadership moves away from them at
    /// once), and for [`SUSPECT_GRACE`] not gone either (they keep their place in in-sync sets);
    /// after that they leave in-sync sets, so `acks=all` stops waiting for a dead follower.
    suspect: BTreeMap<u64, Instant>,
    /// Members whose registration was proposed, and when (retried after REGISTER_RETRY).
    registering: BTreeMap<u64, Instant>,
    last_error: Option<String>,
    topics: topics::Topics,
    reassign: reassign::Reassigner,
    rebalance: rebalance::Rebalancer,
    hand_overs: hand_over::HandOvers,
}

impl Run {
    fn run(&mut self, rx: Receiver<Input>) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Input::Step(bytes)) => {
                    if self.node.step(&bytes).is_err() {
                        self.counters
                            .inbound_invalid_total
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Input::Members(m, suspect)) => {
                    self.members = m;
                    let now = Instant::now();
                    let was = std::mem::take(&mut self.suspect);
                    self.suspect = suspect
                        .into_iter()
                        .map(|id| (id, was.get(&id).copied().unwrap_or(now)))
                        .collect();
                }
                Ok(Input::Change(change, reply)) => self.change(change, reply),
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= next_tick {
                self.node.tick();
                next_tick += TICK;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + TICK;
                }
                self.register_members();
                self.place_partitions();
                // Deadlines and lost leadership, also when nothing is applied.
                self.resolve_changes(&[]);
            }
            if let Err(e) = self.drain() {
                // A storage error leaves the in-memory node unusable: reopen from disk (what was
                // synced is all a restart would have).
                eprintln!("sprawl: controller: {e}; reopening the metadata log");
                self.last_error = Some(e);
                match open_node(&self.config, &self.dir) {
                    Ok(n) => self.node = n,
                    Err(e) => {
                        eprintln!("sprawl: controller: cannot reopen: {e}; controller stopped");
                        self.last_error = Some(e);
                        self.publish();
                        break;
                    }
                }
            }
        }
    }

    fn drain(&mut self) -> Result<(), String> {
        let mut changed = false;
        while self.node.has_ready() {
            let out = self.node.drain().map_err(|e| e.to_string())?;
            for m in out.messages {
                if let Some(p) = self.peers.get(&m.to) {
                    p.send(m.bytes, &self.counters);
                }
            }
            for a in &out.applied {
                if let Some(Command::RegisterNode { node_id, .. }) = &a.command {
                    self.registering.remove(node_id);
                }
            }
            if !out.applied.is_empty() {
                self.resolve_changes(&out.applied);
            }
            changed = true;
        }
        let status = self.node.status();
        let v = self.view.lock().map(|v| v.clone()).ok();
        let stale = v.is_none_or(|v| {
            v.term != status.term
                || v.leader_id != status.leader_id
                || v.commit_index != status.commit_index
                || v.applied_index != status.applied_index
                || v.role != role_name(status.role)
        });
        if changed || stale {
            self.publish();
        }
        Ok(())
    }

    /// While leading: propose `RegisterNode` for live members the metadata lacks or lists with
    /// another address (this node included).
    fn register_members(&mut self) {
        if self.node.status().role != Role::Leader {
            return;
        }
        let now = Instant::now();
        for (id, addr) in self.members.clone() {
            let known = self
                .node
                .state()
                .nodes
                .get(&id)
                .map(|n| n.client_addr.as_str());
            if known == Some(addr.as_str()) {
                continue;
            }
            if self
                .registering
                .get(&id)
                .is_some_and(|at| now.duration_since(*at) < REGISTER_RETRY)
            {
                continue;
            }
            let cmd = Command::RegisterNode {
                node_id: id,
                client_addr: addr,
            };
            if self.node.propose(&cmd).is_ok() {
                self.counters
                    .proposals_total
                    .fetch_add(1, Ordering::Relaxed);
                self.registering.insert(id, now);
            }
        }
    }

    /// The leader that pending changes should go to instead, or `None` while this node leads.
    fn not_leading(&self) -> Option<(u64, Option<String>)> {
        let s = self.node.status();
        (s.role != Role::Leader).then(|| {
            let addr = self
                .node
                .state()
                .nodes
                .get(&s.leader_id)
                .map(|n| n.client_addr.clone());
            (s.leader_id, addr)
        })
    }

    fn resolve_changes(&mut self, applied: &[meta::Applied]) {
        if self.topics.pending.is_empty() {
            return;
        }
        let leading = self.not_leading();
        self.topics.resolve(applied, self.node.state(), leading);
    }

    fn change(&mut self, change: TopicChange, reply: flume::Sender<ChangeOutcome>) {
        if let Some((leader_id, leader_addr)) = self.not_leading() {
            let _ = reply.try_send(ChangeOutcome::NotLeader {
                leader_id,
                leader_addr,
            });
            return;
        }
        if self.topics.pending.len() >= topics::PENDING_MAX {
            let _ = reply.try_send(ChangeOutcome::Refused {
                message: format!(
                    "{} topic changes are already waiting for the metadata log; retry",
                    topics::PENDING_MAX
                ),
            });
            return;
        }
        let live: std::collections::BTreeSet<u64> =
            self.members.iter().map(|(id, _)| *id).collect();
        let cmd = match &change {
            TopicChange::InSync {
                topic,
                partition,
                leader,
                leader_epoch,
                in_sync,
                successor,
                ..
            } if in_sync.is_empty() && *successor != 0 => self.hand_overs.command(
                self.node.state(),
                &live,
                topic,
                *partition,
                *leader,
                *leader_epoch,
                *successor,
                Instant::now(),
            ),
            _ => topics::command_for(&change, self.node.state(), &live),
        };
        let cmd = match cmd {
            Ok(cmd) => cmd,
            Err(message) => {
                let _ = reply.try_send(ChangeOutcome::Refused { message });
                return;
            }
        };
        match self.node.propose(&cmd) {
            Ok(id) => {
                self.counters
                    .proposals_total
                    .fetch_add(1, Ordering::Relaxed);
                self.topics
                    .vouch(&change, self.node.state(), Instant::now());
                self.topics.pending.push(topics::Pending {
                    change,
                    proposal: Some(id),
                    deadline: Instant::now() + PROPOSAL_TIMEOUT,
                    reply,
                });
            }
            Err(ProposeError::NotLeader { leader_id }) => {
                let leader_addr = self
                    .node
                    .state()
                    .nodes
                    .get(&leader_id)
                    .map(|n| n.client_addr.clone());
                let _ = reply.try_send(ChangeOutcome::NotLeader {
                    leader_id,
                    leader_addr,
                });
            }
            Err(e) => {
                let _ = reply.try_send(ChangeOutcome::Refused {
                    message: format!("the metadata log refused the change: {e}"),
                });
            }
        }
    }

    /// While leading: assign replicas to unplaced partitions and elect leaders where none is.
    fn place_partitions(&mut self) {
        if self.node.status().role != Role::Leader {
            return;
        }
        let live: std::collections::BTreeSet<u64> =
            self.members.iter().map(|(id, _)| *id).collect();
        let now = Instant::now();
        let present: std::collections::BTreeSet<u64> = self
            .suspect
            .iter()
            .filter(|(_, since)| now.duration_since(**since) < SUSPECT_GRACE)
            .map(|(id, _)| *id)
            .chain(live.iter().copied())
            .collect();
        let mut cmds = self.topics.placements(self.node.state(), &live, &present);
        cmds.extend(
            self.reassign
                .pass(self.node.state(), &live, &present, Instant::now()),
        );
        if cmds.is_empty() {
            // Moves onto joined nodes only while nothing more urgent is being done.
            cmds = self.rebalance.pass(self.node.state(), &live, now);
        }
        for cmd in cmds {
            if self.node.propose(&cmd).is_err() {
                break;
            }
            self.counters
                .proposals_total
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn publish(&self) {
        let s = self.node.status();
        let state = self.node.state();
        let previous = self.view.lock().map(|v| v.state.clone()).ok();
        let shared = match previous {
            Some(p) if p.version == state.version => p,
            _ => Arc::new(state.clone()),
        };
        let view = ControllerView {
            node_id: s.node_id,
            voters: self.config.voters.clone(),
            role: role_name(s.role),
            term: s.term,
            leader_id: s.leader_id,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            version: state.version,
            nodes: state
                .nodes
                .iter()
                .map(|(id, n)| (*id, n.client_addr.clone()))
                .collect(),
            topics: state.topics.len(),
            last_error: self.last_error.clone(),
            state: shared,
        };
        if let Ok(mut v) = self.view.lock() {
            *v = Arc::new(view);
        }
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// One peer controller: a thread with a bounded queue and a blocking protocol connection.
struct PeerSender {
    queue: SyncSender<Vec<u8>>,
}

impl PeerSender {
    fn start(
        from: u64,
        to: u64,
        addr: String,
        counters: Arc<ControllerCounters>,
    ) -> Result<PeerSender, String> {
        let (queue, rx) = mpsc::sync_channel::<Vec<u8>>(PEER_QUEUE_MAX);
        std::thread::Builder::new()
            .name(format!("raft-peer-{to}"))
            .spawn(move || peer_loop(from, to, &addr, &rx, &counters))
            .map_err(|e| format!("cannot start the sender thread for controller {to}: {e}"))?;
        Ok(PeerSender { queue })
    }

    fn send(&self, bytes: Vec<u8>, counters: &ControllerCounters) {
        if self.queue.try_send(bytes).is_err() {
            counters
                .outbound_dropped_total
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn peer_loop(
    from: u64,
    to: u64,
    addr: &str,
    rx: &Receiver<Vec<u8>>,
    counters: &ControllerCounters,
) {
    let (Ok(from32), Ok(to32)) = (u32::try_from(from), u32::try_from(to)) else {
        return;
    };
    let config = net::client::ClientConfig {
        client_name: format!("sprawl-controller/{from}"),
        connect_timeout_ms: 1_000,
        request_timeout_ms: 2_000,
        ..net::client::ClientConfig::default()
    };
    let mut client: Option<net::client::Client> = None;
    let mut retry_at = Instant::now();
    let mut logged_down = false;
    // The loop ends when the controller drops its sender (shutdown).
    while let Ok(bytes) = rx.recv() {
        if client.is_none() {
            if Instant::now() < retry_at {
                counters
                    .outbound_dropped_total
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match net::client::Client::connect(addr, config.clone()) {
                Ok(c) => {
                    if logged_down {
                        eprintln!("sprawl: controller: reached controller {to} at {addr} again");
                    }
                    logged_down = false;
                    client = Some(c);
                }
                Err(e) => {
                    if !logged_down {
                        eprintln!(
                            "sprawl: controller: cannot reach controller {to} at {addr}: {e}"
                        );
                        logged_down = true;
                    }
                    retry_at = Instant::now() + RECONNECT_DELAY;
                    counters.send_errors_total.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        if let Some(c) = client.as_mut() {
            match c.raft(from32, to32, &bytes) {
                Ok(()) => {
                    counters.sent_total.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.send_errors_total.fetch_add(1, Ordering::Relaxed);
                    client = None;
                    retry_at = Instant::now() + RECONNECT_DELAY;
                }
            }
        }
    }
}
