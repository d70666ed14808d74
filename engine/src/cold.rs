//! The node's cold tier: one object-store client, one read cache and one pool of threads shared by
//! every shard. Uploads, manifest writes and range reads block for as long as the network takes,
//! so they run here and not on a shard's blocking pool, where they would queue the group-commit
//! fdatasyncs behind them. What each partition does with them is in [`crate::tiering`].
//!
//! The pool's queue is bounded ([`JOBS_QUEUED_MAX`]): a shard that finds it full waits
//! (asynchronously) for room, which slows tiering and remote reads, never appends.
//!
//! Start-up: the store is checked once ([`storage::cold::S3Store::check`]: list, put, delete). A
//! store that does not answer or refuses the credentials is reported on stderr and in `/metrics`
//! (`sprawl_cold_store_up 0`); the node serves its local data, tiers nothing and re-checks every
//! [`RECHECK_INTERVAL`] until the store answers. Nothing local is deleted while it is down.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use storage::cold::{ChunkCache, ObjectStore, S3Store};

use crate::config::ColdConfig;

/// Jobs waiting for a cold-tier thread, node-wide.
pub const JOBS_QUEUED_MAX: usize = 256;
/// How often a store that failed its check is tried again.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

/// Counters of remote reads (per-partition tier counters live in `PartitionTier`).
#[derive(Debug, Default)]
pub struct ColdMetrics {
    pub remote_reads: AtomicU64,
    pub remote_read_errors: AtomicU64,
    pub remote_read_bytes: AtomicU64,
    pub store_checks_failed: AtomicU64,
}

/// The object store, read cache and worker threads of this node.
pub struct ColdTier {
    store: Arc<S3Store>,
    pub cache: Arc<ChunkCache>,
    jobs: flume::Sender<Job>,
    up: AtomicBool,
    /// A check is running (shards wait for it rather than start their own).
    checking: AtomicBool,
    /// Last check failure, and when the next check is due.
    status: Mutex<(Option<String>, Instant)>,
    pub metrics: ColdMetrics,
    describe: String,
}

impl std::fmt::Debug for ColdTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdTier")
            .field("store", &self.describe)
            .field("up", &self.is_up())
            .finish()
    }
}

/// The pool stopped (the node is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the cold tier's threads have stopped (node shutting down)")]
pub struct PoolStopped;

impl ColdTier {
    /// Builds the client and starts the threads; performs no I/O. `Ok(None)` when no store is
    /// configured.
    pub fn start(cfg: &ColdConfig) -> Result<Option<Arc<ColdTier>>, String> {
        let Some(s3) = cfg.s3_config() else {
            return Ok(None);
        };
        let describe = format!("{} bucket {}", s3.endpoint, s3.bucket);
        let store = S3Store::new(s3).map_err(|e| format!("cold tier ({describe}): {e}"))?;
        let (tx, rx) = flume::bounded::<Job>(JOBS_QUEUED_MAX);
        for i in 0..cfg.threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("cold-{i}"))
                .spawn(move || {
                    // Ends when every sender is gone (the node dropped its ColdTier).
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
                .map_err(|e| format!("cannot start cold-tier thread {i}: {e}"))?;
        }
        Ok(Some(Arc::new(ColdTier {
            store: Arc::new(store),
            cache: Arc::new(ChunkCache::new(cfg.cache_bytes)),
            jobs: tx,
            up: AtomicBool::new(false),
            checking: AtomicBool::new(false),
            status: Mutex::new((None, Instant::now())),
            metrics: ColdMetrics::default(),
            describe,
        })))
    }

    /// The store as the tier library takes it.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// `http://host:port bucket NAME`, for messages.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// True once a check passed. Tiering waits for it; reads are tried regardless.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The last check's error while the store is down.
    pub fn last_error(&self) -> Option<String> {
        self.status.lock().ok().and_then(|s| s.0.clone())
    }

    /// Checks the store (blocking; call through [`ColdTier::run`]) and records the outcome.
    fn check_blocking(&self) -> Result<(), String> {
        let result = self
            .store
            .check()
            .map_err(|e| format!("object store {} is not usable: {e}", self.describe));
        self.up.store(result.is_ok(), Ordering::Release);
        if let Ok(mut s) = self.status.lock() {
            s.0 = result.as_ref().err().cloned();
            s.1 = Instant::now() + RECHECK_INTERVAL;
        }
        if result.is_err() {
            self.metrics
                .store_checks_failed
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Checks the store when it is down and a check is due; returns whether it is up. Prints
    /// the outcome when it changes.
    /// A shard that finds a check running waits for its outcome.
    pub async fn ensure_up(self: &Arc<Self>) -> bool {
        if self.is_up() {
            return true;
        }
        let due = self.status.lock().map_or(true, |s| Instant::now() >= s.1);
        if !due {
            return false;
        }
        if self
            .checking
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            while self.checking.load(Ordering::Acquire) {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            return self.is_up();
        }
        // Released however this future ends (a caller's timeout may drop it mid-check).
        struct Claim<'a>(&'a AtomicBool);
        impl Drop for Claim<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _claim = Claim(&self.checking);
        let before = self.last_error();
        let me = self.clone();
        match self.run(move || me.check_blocking()).await {
            Ok(Ok(())) => {
                eprintln!("sprawl: cold tier: {} answers; tiering on", self.describe);
                true
            }
            Ok(Err(e)) => {
                if before.as_deref() != Some(e.as_str()) {
                    eprintln!(
                        "sprawl: cold tier: {e}; serving local data, tiering paused (retried every {} s)",
                        RECHECK_INTERVAL.as_secs()
                    );
                }
                false
            }
            Err(PoolStopped) => false,
        }
    }

    /// Runs `f` on a cold-tier thread and waits for its result without blocking the reactor.
    /// Waits for room when the queue is full.
    pub async fn run<F, R>(&self, f: F) -> Result<R, PoolStopped>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = flume::bounded::<R>(1);
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send_async(job).await.map_err(|_| PoolStopped)?;
        rx.recv_async().await.map_err(|_| PoolStopped)
    }
}

impl ColdTier {
    /// Node-wide cold-tier lines of `/metrics`.
    pub fn render_metrics(&self, out: &mut String, node: u32) {
        use std::fmt::Write as _;
        let m = &self.metrics;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let lines: [(&str, &str, u64); 8] = [
            ("cold_store_up", "gauge", u64::from(self.is_up())),
            (
                "cold_store_checks_failed_total",
                "counter",
                get(&m.store_checks_failed),
            ),
            ("cold_remote_reads_total", "counter", get(&m.remote_reads)),
            (
                "cold_remote_read_errors_total",
                "counter",
                get(&m.remote_read_errors),
            ),
            (
                "cold_remote_read_bytes_total",
                "counter",
                get(&m.remote_read_bytes),
            ),
            ("cold_cache_bytes", "gauge", self.cache.bytes()),
            ("cold_cache_hits_total", "counter", self.cache.hits()),
            ("cold_cache_misses_total", "counter", self.cache.misses()),
        ];
        for (name, kind, v) in lines {
            let _ = writeln!(out, "# TYPE sprawl_{name} {kind}");
            let _ = writeln!(out, "sprawl_{name}{{node=\"{node}\"}} {v}");
        }
    }
}
