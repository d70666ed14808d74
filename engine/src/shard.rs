//! One shard: its partitions, its copy of the routing table (the catalog plus the placement rule),
//! and the calls it makes to and answers from other shards over glommio's channel mesh.
//!
//! Placement: partition `p` of a topic with id `t` is owned by shard `(t mod n + p) mod n` for `n`
//! shards, so every shard computes the same owner from the catalog it holds without asking. The
//! catalog carries a version; a shard ignores a catalog older than the one it has.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Senders};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::sync::Semaphore;
use glommio::timer::sleep;

use crate::catalog::{Catalog, TopicMeta};
use crate::config::ServeConfig;
use crate::metrics::ShardMetrics;
use crate::notify::Notify;
use crate::partition::Partition;

/// Calls one shard may have outstanding to all others.
const CALLS_INFLIGHT_MAX: u64 = 4096;
/// Share of host memory the hot rings leave free: they shrink when less than this is available.
const RING_HOST_RESERVE_RATIO: f64 = 0.10;
/// How long shutdown waits for connections to finish their in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a shard needs to start, handed over from the main thread.
pub struct ShardContext {
    pub id: usize,
    pub shards: usize,
    pub config: ServeConfig,
    pub catalog: Arc<Catalog>,
    pub shutdown: Arc<AtomicBool>,
    pub ready: mpsc::Sender<Result<usize, String>>,
    pub mesh: MeshBuilder<MeshMsg, Full>,
    /// Node-wide memory budget shared by every partition's hot ring.
    pub ring_budget: Arc<storage::MemoryBudget>,
    /// This shard's HTTP listener (SO_REUSEPORT, like the client port).
    pub http_fd: Option<i32>,
    /// The bound HTTP address (advertised in gossip).
    pub http_addr: Option<std::net::SocketAddr>,
    /// Where shard 0 reports the bound gossip address, before it says it is ready.
    pub gossip_bound: Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
    /// The metadata controller thread, when this node is one of `--controllers`.
    pub controller: Option<crate::controller::Controller>,
    /// The object store of the cold tier, when configured (`--s3-endpoint`).
    pub cold: Option<Arc<crate::cold::ColdTier>>,
    /// The newest cluster metadata the node has seen (shared by its shards).
    pub meta: Arc<crate::metadata::MetaCache>,
}

/// Partitions moved away from their default shard, with a version so that a shard ignores an
/// older table than the one it holds. Kept in memory: after a restart placement starts from the
/// default rule again (moves are load-balancing decisions, not configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    pub version: u64,
    pub overrides: std::collections::BTreeMap<(u64, u32), usize>,
}

/// A message between shards.
#[derive(Debug)]
pub enum MeshMsg {
    Call { call_id: u64, body: CallBody },
    Reply { call_id: u64, body: ReplyBody },
}

/// Work one shard asks another to do.
#[derive(Debug)]
pub enum CallBody {
    /// A client request frame for a partition (or admin work) the target owns; the reply is the
    /// encoded response frame, or `None` when the request expects no reply.
    Frame(Bytes),
    /// Read records from a partition the target owns.
    Read(crate::handlers::ReadArgs),
    /// Adopt this catalog: open newly owned partitions, close those of deleted topics.
    ApplyCatalog(Arc<Catalog>),
    /// Describe the partitions of a topic that the target owns.
    PartitionInfo { topic_id: u64 },
    /// Histograms and counters for the HTTP port (`window_s`: the interval view, or totals).
    Stats { window_s: Option<u64> },
    /// Counters of this shard and its partitions (for the analytics shard).
    Metrics,
    /// Move a partition between shards (run on shard 0, which holds the admin lock).
    Move {
        topic: String,
        partition: u32,
        to: usize,
    },
    /// An analytics view (run on shard 0, where the analytics shard lives).
    Analytics(crate::http::AnalyticsView),
    /// Give up ownership of a partition (flush and close it) ahead of a move.
    Release { topic_id: u64, partition: u32 },
    /// Adopt this routing table: open partitions it moves here, then route by it.
    ApplyRouting(Arc<Routing>),
    /// Records this shard has taken in since it started (the gossip load summary).
    RecordsIn,
    /// The `GET /cluster` document (run on shard 0, where gossip lives).
    ClusterView,
    /// The gossip lines of `/metrics` (run on shard 0).
    ClusterPrometheus,
    /// The consumer groups this shard coordinates, as `GET /groups` shows them.
    Groups,
}

/// The answer to a [`CallBody`].
#[derive(Debug)]
pub enum ReplyBody {
    Frame(Option<Bytes>),
    Read(crate::handlers::ReadReply),
    Done(Result<(), String>),
    Info(Vec<net::codec::PartitionInfo>),
    Stats(Box<(crate::stats::StatsSnapshot, crate::metrics::MetricsSnapshot)>),
    Metrics(Box<crate::metrics::MetricsSnapshot>),
    Moved(Result<crate::moves::MoveOutcome, crate::handlers::Failure>),
    /// `None`: the analytics shard is off.
    Analytics(Option<crate::http::AnalyticsReply>),
    Count(u64),
    Json(serde_json::Value),
    Text(String),
}

/// A call sent to another shard whose answer has not been awaited yet.
pub struct PendingCall {
    rx: local_channel::LocalReceiver<ReplyBody>,
    _permit: glommio::sync::StaticPermit,
}

impl PendingCall {
    /// Waits for the answer; `None` if the other shard went away.
    pub async fn wait(self) -> Option<ReplyBody> {
        self.rx.recv().await
    }
}

/// State of one shard. Lives in an `Rc` on its own executor only.
pub struct Shard {
    pub id: usize,
    pub shards: usize,
    pub config: ServeConfig,
    pub catalog: RefCell<Arc<Catalog>>,
    pub routing: RefCell<Arc<Routing>>,
    pub partitions: RefCell<HashMap<(u64, u32), Rc<Partition>>>,
    senders: Senders<MeshMsg>,
    pending: RefCell<HashMap<u64, LocalSender<ReplyBody>>>,
    next_call: Cell<u64>,
    call_permits: Rc<Semaphore>,
    /// Request bytes read from sockets and not yet answered, across this shard's connections.
    pub inflight_bytes: Rc<Semaphore>,
    /// Serialises catalog changes (used on shard 0, the catalog owner).
    pub admin_lock: Semaphore,
    pub stopping: Cell<bool>,
    /// Bumped when `stopping` is set.
    pub stop_notify: Notify,
    pub connections: Cell<usize>,
    pub connections_changed: Notify,
    /// Ids for connections (from 1), and which of them may spin on its socket.
    pub next_conn_id: Cell<u64>,
    pub spin_gate: crate::spin_read::SpinGate,
    pub next_subscription: Cell<u32>,
    /// Round-robin counter for REST publishes without key or partition.
    pub http_round_robin: Cell<u32>,
    pub metrics: ShardMetrics,
    pub client_addr: RefCell<String>,
    pub ring_budget: Arc<storage::MemoryBudget>,
    pub stats: Rc<crate::stats::ShardStats>,
    /// The analytics shard's state (shard 0, unless `--analytics off`).
    pub analytics: RefCell<Option<Rc<crate::analytics_shard::AnalyticsShard>>>,
    /// The metadata controller, when this node is one of `--controllers` (every shard holds a
    /// handle: any of them may receive a Raft frame).
    pub controller: Option<crate::controller::Controller>,
    /// Cluster membership (shard 0 of a node started with cluster settings).
    pub gossip: RefCell<Option<gossip::GossipHandle>>,
    /// The node's cold tier (object store, read cache, threads), when configured.
    pub cold: Option<Arc<crate::cold::ColdTier>>,
    /// The newest cluster metadata the node has seen (shared by its shards).
    pub meta: Arc<crate::metadata::MetaCache>,
    /// Shard 0's connection to a controller for metadata fetches (non-controller nodes), and
    /// which controller to try next when it fails.
    pub meta_conn: RefCell<Option<Rc<crate::peer::PeerConn>>>,
    pub meta_next: Cell<usize>,
    /// The last metadata problem reported, so a persisting one is logged once.
    pub meta_fetch_error: RefCell<Option<String>>,
    /// Connections to partition leaders, by client address, shared by this shard's follower
    /// fetch loops (`crate::replication::follower`).
    pub replica_conns: RefCell<HashMap<String, Rc<crate::peer::PeerConn>>>,
    /// Consumer groups this shard coordinates (`crate::groups`).
    pub groups: crate::groups::Coordinator,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("id", &self.id).finish()
    }
}

/// The shard owning partition `partition` of topic `topic_id` among `shards` shards.
pub fn owner_of(topic_id: u64, partition: u32, shards: usize) -> usize {
    let n = shards as u64;
    ((topic_id % n + u64::from(partition) % n) % n) as usize
}

impl Shard {
    /// The shard that owns a partition under the current catalog.
    pub fn owner(&self, topic_id: u64, partition: u32) -> usize {
        self.owner_under(&self.routing.borrow(), topic_id, partition)
    }

    /// The owner under a given routing table (overrides first, then the default rule).
    pub fn owner_under(&self, routing: &Routing, topic_id: u64, partition: u32) -> usize {
        routing
            .overrides
            .get(&(topic_id, partition))
            .copied()
            .filter(|s| *s < self.shards)
            .unwrap_or_else(|| owner_of(topic_id, partition, self.shards))
    }

    /// Looks a topic up in this shard's catalog copy.
    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.catalog.borrow().topics.get(name).cloned()
    }

    /// A partition this shard owns and has open.
    pub fn partition(&self, topic_id: u64, partition: u32) -> Option<Rc<Partition>> {
        self.partitions
            .borrow()
            .get(&(topic_id, partition))
            .cloned()
    }

    /// Completes once the shard starts stopping.
    pub async fn stopped(&self) {
        let seen = self.stop_notify.generation();
        if !self.stopping.get() {
            self.stop_notify.changed_since(seen).await;
        }
    }

    /// The next accepted connection, or `None` once the shard stops.
    pub async fn accept_or_stop(
        &self,
        listener: &glommio::net::TcpListener,
    ) -> Option<std::io::Result<glommio::net::TcpStream>> {
        futures_lite::future::or(
            async { Some(listener.accept().await.map_err(std::io::Error::from)) },
            async {
                self.stopped().await;
                None
            },
        )
        .await
    }

    /// Sends `body` to shard `to` and waits for its answer. `None` if the target is gone
    /// (shutting down).
    pub async fn call(&self, to: usize, body: CallBody) -> Option<ReplyBody> {
        self.send_call(to, body).await?.wait().await
    }

    /// Sends `body` to shard `to`; the answer arrives through the returned handle. Awaiting the
    /// send (not the answer) keeps the order of calls from one task, and bounds them.
    pub async fn send_call(&self, to: usize, body: CallBody) -> Option<PendingCall> {
        let permit = self
            .call_permits
            .clone()
            .acquire_static_permit(1)
            .await
            .ok()?;
        let call_id = self.next_call.get();
        self.next_call.set(call_id + 1);
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(call_id, tx);
        if self
            .senders
            .send_to(to, MeshMsg::Call { call_id, body })
            .await
            .is_err()
        {
            self.pending.borrow_mut().remove(&call_id);
            return None;
        }
        Some(PendingCall {
            rx,
            _permit: permit,
        })
    }

    fn deliver_reply(&self, call_id: u64, body: ReplyBody) {
        if let Some(tx) = self.pending.borrow_mut().remove(&call_id) {
            // The waiter may have gone away (connection closed); dropping the reply is fine.
            let _ = tx.try_send(body);
        }
    }

    /// Applies a catalog: opens partitions this shard now owns, closes those of deleted topics.
    pub async fn apply_catalog(self: &Rc<Self>, catalog: Arc<Catalog>) -> Result<(), String> {
        if catalog.version < self.catalog.borrow().version {
            return Ok(());
        }
        *self.catalog.borrow_mut() = catalog.clone();
        let live: std::collections::HashSet<u64> =
            catalog.topics.values().map(|t| t.topic_id).collect();
        let gone: Vec<Rc<Partition>> = self
            .partitions
            .borrow()
            .iter()
            .filter(|((tid, _), _)| !live.contains(tid))
            .map(|(_, p)| p.clone())
            .collect();
        for p in gone {
            self.partitions.borrow_mut().remove(&(p.topic_id, p.index));
            p.close().await;
        }
        let routing = self.routing.borrow().clone();
        self.open_owned(&catalog, &routing).await
    }

    /// Opens every partition of `catalog` that `routing` gives to this shard and is not open yet.
    async fn open_owned(&self, catalog: &Catalog, routing: &Routing) -> Result<(), String> {
        let mut errors = Vec::new();
        for t in catalog.topics.values() {
            for p in 0..t.partitions {
                if self.owner_under(routing, t.topic_id, p) != self.id
                    || self.partitions.borrow().contains_key(&(t.topic_id, p))
                {
                    continue;
                }
                let dir = t.dir(&self.config.data_dir).join(p.to_string());
                let cfg = crate::handlers::log_config(&self.config, t);
                let budget = self.ring_budget.clone();
                let stats = self.stats.clone();
                match Partition::open(t.name.clone(), t.topic_id, p, dir, cfg, budget, stats).await
                {
                    Ok(part) => {
                        if self.cold.is_some() && crate::tiering::is_tiered(t) {
                            let tier = crate::tiering::tier_config(t, p);
                            let _ = part.cold.set(crate::tiering::PartitionCold::new(tier));
                        }
                        self.partitions.borrow_mut().insert((t.topic_id, p), part);
                    }
                    Err(e) => errors.push(format!("{}/{p}: {e}", t.name)),
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("cannot open partitions: {}", errors.join("; ")))
        }
    }

    /// Adopts a newer routing table: partitions it brings here are opened before requests are
    /// routed by it; partitions it takes away must have been released already (closed if not).
    pub async fn apply_routing(self: &Rc<Self>, routing: Arc<Routing>) -> Result<(), String> {
        if routing.version <= self.routing.borrow().version {
            return Ok(());
        }
        let catalog = self.catalog.borrow().clone();
        let opened = self.open_owned(&catalog, &routing).await;
        let gone: Vec<Rc<Partition>> = self
            .partitions
            .borrow()
            .values()
            .filter(|p| self.owner_under(&routing, p.topic_id, p.index) != self.id)
            .cloned()
            .collect();
        for p in gone {
            self.partitions.borrow_mut().remove(&(p.topic_id, p.index));
            p.close().await;
        }
        *self.routing.borrow_mut() = routing;
        opened
    }

    /// Flushes and closes a partition this shard owns, ahead of a move. Requests for it get
    /// `NOT_LEADER` (retriable) until the new routing table arrives.
    pub async fn release(&self, topic_id: u64, partition: u32) -> Result<(), String> {
        let p = self
            .partitions
            .borrow_mut()
            .remove(&(topic_id, partition))
            .ok_or_else(|| format!("shard {} does not own partition {partition}", self.id))?;
        p.close().await;
        Ok(())
    }

    /// Applies `catalog` on every shard (this one included) and waits for all of them.
    pub async fn broadcast_catalog(self: &Rc<Self>, catalog: Arc<Catalog>) -> Result<(), String> {
        let mut errors = Vec::new();
        for s in 0..self.shards {
            let res = if s == self.id {
                self.apply_catalog(catalog.clone()).await
            } else {
                match self.call(s, CallBody::ApplyCatalog(catalog.clone())).await {
                    Some(ReplyBody::Done(r)) => r,
                    Some(other) => Err(format!("unexpected reply {other:?}")),
                    None => Err(format!("shard {s} is shutting down")),
                }
            };
            if let Err(e) = res {
                errors.push(format!("shard {s}: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Runs a shard until shutdown: joins the mesh, opens its partitions, serves connections, then
/// drains, flushes and closes.
pub async fn run(ctx: ShardContext, listener: glommio::net::TcpListener) -> Result<(), String> {
    let ready = ctx.ready.clone();
    let result = run_inner(ctx, listener).await;
    if let Err(e) = &result {
        let _ = ready.send(Err(e.clone()));
    }
    result
}

async fn run_inner(ctx: ShardContext, listener: glommio::net::TcpListener) -> Result<(), String> {
    let (senders, mut receivers) = ctx
        .mesh
        .join()
        .await
        .map_err(|e| format!("cannot join the shard mesh: {e}"))?;
    let shard = Rc::new(Shard {
        id: ctx.id,
        shards: ctx.shards,
        config: ctx.config.clone(),
        catalog: RefCell::new(Arc::new(Catalog::default())),
        routing: RefCell::new(Arc::new(Routing::default())),
        partitions: RefCell::new(HashMap::new()),
        senders,
        pending: RefCell::new(HashMap::new()),
        next_call: Cell::new(0),
        call_permits: Rc::new(Semaphore::new(CALLS_INFLIGHT_MAX)),
        inflight_bytes: Rc::new(Semaphore::new(ctx.config.shard_inflight_bytes_max)),
        admin_lock: Semaphore::new(1),
        stopping: Cell::new(false),
        stop_notify: Notify::default(),
        connections: Cell::new(0),
        connections_changed: Notify::default(),
        next_conn_id: Cell::new(1),
        spin_gate: crate::spin_read::SpinGate::default(),
        next_subscription: Cell::new(1),
        http_round_robin: Cell::new(0),
        metrics: ShardMetrics::default(),
        ring_budget: ctx.ring_budget.clone(),
        stats: Rc::new(crate::stats::ShardStats::default()),
        analytics: RefCell::new(None),
        gossip: RefCell::new(None),
        controller: ctx.controller.clone(),
        cold: ctx.cold.clone(),
        meta: ctx.meta.clone(),
        meta_conn: RefCell::new(None),
        meta_next: Cell::new(0),
        meta_fetch_error: RefCell::new(None),
        replica_conns: RefCell::new(HashMap::new()),
        groups: crate::groups::Coordinator::default(),
        client_addr: RefCell::new(
            listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
        ),
    });
    shard.apply_catalog(ctx.catalog.clone()).await?;
    if let Some(cold) = shard.cold.clone() {
        crate::tiering::open_at_start(&shard, &cold, TIER_OPEN_AT_START_MAX).await;
    }
    // Serve calls from other shards only once our partitions are open; calls queue until then.
    for (peer, stream) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move { serve_peer(shard, peer, stream).await }).detach();
    }
    spawn_background(&shard);
    crate::metadata::spawn_follower(&shard);
    crate::replication::spawn_reconciler(&shard);
    crate::groups::spawn_expiry(&shard);
    if shard.id == 0 && shard.config.analytics != crate::analytics_shard::Mode::Off {
        let mut config = analytics::Config::default();
        config.hot.partition_capacity_msgs_per_s =
            shard.config.analytics_partition_capacity_msgs_per_s;
        config.keys.window_s = shard.config.analytics_key_window_s;
        let a = Rc::new(crate::analytics_shard::AnalyticsShard::new(
            shard.config.analytics,
            config,
        )?);
        *shard.analytics.borrow_mut() = Some(a.clone());
        crate::analytics_shard::spawn(&shard, a);
    }
    let gossip = crate::membership::start(&shard, ctx.http_addr)?;
    if let Ok(mut slot) = ctx.gossip_bound.lock() {
        *slot = slot.or(gossip);
    }
    if let Some(fd) = ctx.http_fd {
        use std::os::fd::FromRawFd;
        // SAFETY: a listening socket created by the runtime for this shard alone.
        let http = unsafe { glommio::net::TcpListener::from_raw_fd(fd) };
        glommio::spawn_local(crate::http::serve(shard.clone(), http)).detach();
    }
    let _ = ctx.ready.send(Ok(ctx.id));

    let stop = {
        let shard = shard.clone();
        let flag = ctx.shutdown.clone();
        async move {
            while !flag.load(Ordering::SeqCst) {
                sleep(Duration::from_millis(20)).await;
            }
            shard.stopping.set(true);
            shard.stop_notify.notify_all();
        }
    };
    let stop_task = glommio::spawn_local(stop);
    loop {
        match shard.accept_or_stop(&listener).await {
            None => break,
            Some(Ok(stream)) => {
                let shard = shard.clone();
                glommio::spawn_local(async move { crate::conn::serve(shard, stream).await })
                    .detach();
            }
            Some(Err(e)) => {
                eprintln!("sprawl: shard {}: accept failed: {e}", shard.id);
                sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stop_task.await;
    drop(listener);
    crate::membership::leave(&shard).await;
    // Drain: connections stop reading new requests and finish the ones in flight.
    let _ = glommio::timer::timeout(DRAIN_TIMEOUT, async {
        while shard.connections.get() > 0 {
            let seen = shard.connections_changed.generation();
            if shard.connections.get() == 0 {
                break;
            }
            shard.connections_changed.changed_since(seen).await;
        }
        Ok(())
    })
    .await;
    let parts: Vec<Rc<Partition>> = shard.partitions.borrow().values().cloned().collect();
    for p in parts {
        p.close().await;
    }
    Ok(())
}

async fn serve_peer(
    shard: Rc<Shard>,
    peer: usize,
    stream: glommio::channels::shared_channel::ConnectedReceiver<MeshMsg>,
) {
    while let Some(msg) = stream.recv().await {
        match msg {
            MeshMsg::Reply { call_id, body } => shard.deliver_reply(call_id, body),
            MeshMsg::Call { call_id, body } => {
                // The synchronous part (appends) runs here, in arrival order; the rest is spawned.
                let fut = crate::handlers::start_call(&shard, body);
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let body = fut.await;
                    let _ = shard
                        .senders
                        .send_to(peer, MeshMsg::Reply { call_id, body })
                        .await;
                })
                .detach();
            }
        }
    }
}

fn spawn_background(shard: &Rc<Shard>) {
    let flusher = shard.clone();
    glommio::spawn_local(async move {
        let every = Duration::from_millis(flusher.config.flush_interval_ms);
        while !flusher.stopping.get() {
            sleep(every).await;
            let parts: Vec<Rc<Partition>> = flusher.partitions.borrow().values().cloned().collect();
            for p in parts {
                p.flush().await;
            }
        }
    })
    .detach();
    let ringer = shard.clone();
    glommio::spawn_local(async move {
        while !ringer.stopping.get() {
            sleep(Duration::from_secs(2)).await;
            if ringer.id == 0 {
                // Shrink the ring budget when the host runs short of memory (sysinfo reads /proc).
                if let Some(host) = crate::runtime::blocking(storage::read_host_memory).await {
                    let base = ringer.config.ring_memory_bytes_max;
                    ringer
                        .ring_budget
                        .adjust_to_host(host, base, RING_HOST_RESERVE_RATIO);
                }
            }
            if ringer.ring_budget.over_limit_bytes() > 0 {
                let parts: Vec<Rc<Partition>> =
                    ringer.partitions.borrow().values().cloned().collect();
                for p in parts {
                    p.log.borrow_mut().trim_ring();
                }
            }
        }
    })
    .detach();
    let cleaner = shard.clone();
    glommio::spawn_local(async move {
        while !cleaner.stopping.get() {
            sleep(Duration::from_secs(5)).await;
            let parts: Vec<Rc<Partition>> = cleaner.partitions.borrow().values().cloned().collect();
            let now = crate::handlers::now_ms();
            let catalog = cleaner.catalog.borrow().clone();
            for p in parts {
                if p.closed.get() {
                    continue;
                }
                // Retention: segments are detached here (cheap), unlinked and unmapped on the
                // blocking pool. Never for a tiered topic: its local segments go only through the
                // cold tier, after their upload is confirmed (also while the store is down or
                // not configured).
                let tiered = catalog
                    .topics
                    .get(&p.topic)
                    .is_some_and(crate::tiering::is_tiered);
                let job = if tiered {
                    None
                } else {
                    p.log.borrow_mut().retention_job(now)
                };
                if let Some(job) = job {
                    if let Err(e) = crate::runtime::blocking(move || job.run()).await {
                        eprintln!("sprawl: retention on {}/{} failed: {e}", p.topic, p.index);
                    }
                }
                // Key compaction of sealed segments, for compacted topics: the rewrite runs on
                // the blocking pool, the swap back here.
                let bound = crate::replication::compaction_bound(&cleaner, &p);
                let job = p.log.borrow_mut().compaction_job_below(now, bound);
                if let Some(job) = job {
                    let done = crate::runtime::blocking(move || job.run()).await;
                    let installed = match done {
                        Ok(done) if !p.closed.get() => {
                            p.log.borrow_mut().install_compaction(done).map(drop)
                        }
                        Ok(_) => Ok(()),
                        Err(e) => {
                            p.log.borrow_mut().compaction_failed();
                            Err(e)
                        }
                    };
                    if let Err(e) = installed {
                        eprintln!(
                            "sprawl: compaction of {}/{} failed (will retry): {e}",
                            p.topic, p.index
                        );
                    }
                }
                glommio::yield_if_needed().await;
            }
        }
    })
    .detach();
    if let Some(cold) = shard.cold.clone() {
        let tierer = shard.clone();
        glommio::spawn_local(async move {
            while !tierer.stopping.get() {
                sleep(TIER_PASS_INTERVAL).await;
                let parts: Vec<Rc<Partition>> = tierer
                    .partitions
                    .borrow()
                    .values()
                    .filter(|p| p.cold.get().is_some())
                    .cloned()
                    .collect();
                if parts.is_empty() && tierer.id == 0 {
                    // Nothing tiered: keep re-checking a store that is down, so the node's log
                    // and /metrics say when it answers again.
                    cold.ensure_up().await;
                }
                let now = crate::handlers::now_ms();
                for p in parts {
                    // One task per partition: a slow upload of one does not hold up the others.
                    let cold = cold.clone();
                    glommio::spawn_local(async move { crate::tiering::pass(&p, &cold, now).await })
                        .detach();
                }
            }
        })
        .detach();
    }
}

/// How often each tiered partition is looked at (upload, manifest, local release).
const TIER_PASS_INTERVAL: Duration = Duration::from_secs(1);
/// How long a starting shard waits for the object store to load its tiered partitions'
/// manifests before it serves anyway (then they load in the background).
const TIER_OPEN_AT_START_MAX: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::owner_of;

    #[test]
    fn placement_spreads_partitions_over_shards() {
        let mut counts = [0usize; 4];
        for p in 0..16 {
            counts[owner_of(0xdead_beef, p, 4)] += 1;
        }
        assert_eq!(counts, [4, 4, 4, 4]);
        assert_eq!(
            owner_of(u64::MAX, u32::MAX, 3),
            owner_of(u64::MAX, u32::MAX, 3)
        );
        for p in 0..10 {
            assert_eq!(owner_of(12345, p, 1), 0);
        }
    }
}
