//! Runtime bootstrap: locked-memory check, one pinned glommio executor per shard, the channel mesh
//! between them, listeners, signals, readiness and `ports.json`.
//!
//! This module and `shard`/`conn` are the only places that touch glommio types, so the runtime can
//! be swapped or simulated later without touching storage or protocol logic.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement, PoolPlacement};

use crate::catalog::{Catalog, CatalogError};
use crate::config::ServeConfig;
use crate::shard::{self, MeshMsg, ShardContext};

/// Locked memory glommio needs per executor besides `io_memory` (rings, bookkeeping).
const LOCKED_BYTES_PER_SHARD_OVERHEAD: u64 = 512 << 10;
/// glommio refuses to start with less registered I/O memory than this.
const IO_MEMORY_MIN: u64 = 512 << 10;
/// glommio's own default, used when the limit allows it.
const IO_MEMORY_DEFAULT: u64 = 10 << 20;
/// How long a port must keep accepting connections before it is reported as in use.
const PORT_PROBE_GRACE: Duration = Duration::from_secs(2);
/// Capacity of each shard-to-shard channel.
const MESH_CHANNEL_CAPACITY: usize = 1024;

/// Why a node could not start or stopped abnormally. Each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("locked-memory limit (ulimit -l) is {limit_kib} KiB but {shards} shard(s) need at least {need_kib} KiB; raise it (`ulimit -l {suggest_kib}`, or LimitMEMLOCK= in a systemd unit, or --ulimit memlock= for containers) or use fewer --shards")]
    MemlockTooLow {
        limit_kib: u64,
        need_kib: u64,
        suggest_kib: u64,
        shards: usize,
    },
    #[error("{flag} {addr}: the port is already in use (is another sprawl running?); pick another with {flag} PORT, or {flag} 0 for any free port")]
    PortInUse {
        flag: &'static str,
        addr: SocketAddr,
    },
    #[error("cannot bind {flag} {addr}: {source}")]
    Bind {
        flag: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("data directory {path}: {op}: {source}")]
    DataDir {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("data directory {path} is in use by another sprawl process (lock file {path}/LOCK); stop it or choose another --data-dir")]
    DataDirLocked { path: PathBuf },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("shard {shard} failed: {reason}")]
    Shard { shard: usize, reason: String },
    #[error("metadata controller: {0}")]
    Controller(String),
    #[error("cold tier: {0}")]
    ColdTier(String),
}

/// Runs a blocking closure on the shard's blocking thread pool.
pub async fn blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    glommio::executor().spawn_blocking(f).await
}

/// The CPUs this process may run on (respects `taskset`).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most size_of::<cpu_set_t>() bytes.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 means this thread; the pointer and size describe `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return (0..crate::config::available_cores()).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i < CPU_SETSIZE, the bound CPU_ISSET requires.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Returns the RLIMIT_MEMLOCK soft limit in bytes (`None` = unlimited).
pub fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(lim.rlim_cur)
}

/// Chooses `io_memory` per shard so that all shards fit the locked-memory limit.
pub fn io_memory_per_shard(limit: Option<u64>, shards: usize) -> Result<usize, ServeError> {
    let Some(limit) = limit else {
        return Ok(IO_MEMORY_DEFAULT as usize);
    };
    let n = shards as u64;
    let need = n * (IO_MEMORY_MIN + LOCKED_BYTES_PER_SHARD_OVERHEAD);
    if limit < need {
        return Err(ServeError::MemlockTooLow {
            limit_kib: limit >> 10,
            need_kib: need >> 10,
            suggest_kib: (n * (IO_MEMORY_DEFAULT + LOCKED_BYTES_PER_SHARD_OVERHEAD)) >> 10,
            shards,
        });
    }
    let per = (limit / n).saturating_sub(LOCKED_BYTES_PER_SHARD_OVERHEAD);
    Ok(per.min(IO_MEMORY_DEFAULT) as usize)
}

/// Binds `shards` SO_REUSEPORT listeners on one port.
///
/// SO_REUSEPORT would let a second node of the same user silently share a port, so a port is first
/// probed with a connect: if anything accepts, the port is taken. (A plain bind probe would also
/// refuse ports still held by connections of a killed node in FIN-WAIT, blocking a restart.)
fn bind_shared(
    addr: SocketAddr,
    shards: usize,
    flag: &'static str,
) -> Result<(SocketAddr, Vec<i32>), ServeError> {
    if addr.port() != 0 {
        let mut target = addr;
        if target.ip().is_unspecified() {
            target.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        // A node killed a moment ago can still accept for a while: io_uring tears down its
        // requests (which hold the listening socket) asynchronously after the process is gone.
        // So a port counts as taken only if it keeps accepting for PORT_PROBE_GRACE.
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect_timeout(&target, Duration::from_millis(500)).is_ok() {
            if started.elapsed() >= PORT_PROBE_GRACE {
                return Err(ServeError::PortInUse { flag, addr });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut bound = addr;
    let mut fds = Vec::with_capacity(shards);
    for _ in 0..shards {
        let err = |source| ServeError::Bind {
            flag,
            addr: bound,
            source,
        };
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(bound),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .map_err(err)?;
        sock.set_reuse_address(true).map_err(err)?;
        sock.set_reuse_port(true).map_err(err)?;
        sock.set_nonblocking(true).map_err(err)?;
        match sock.bind(&bound.into()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                for fd in fds {
                    // SAFETY: descriptors created above and not handed out yet.
                    drop(unsafe { StdListener::from_raw_fd(fd) });
                }
                return Err(ServeError::PortInUse { flag, addr: bound });
            }
            Err(e) => return Err(err(e)),
        }
        sock.listen(1024).map_err(err)?;
        // With port 0 the first socket picks the port; the others join it.
        bound = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or_else(|| err(std::io::Error::other("no local address after bind")))?;
        fds.push(sock.into_raw_fd());
    }
    Ok((bound, fds))
}

/// Holds `<data-dir>/LOCK` with an exclusive flock for the life of the process.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, ServeError> {
    let path = dir.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ServeError::DataDir {
            path: path.clone(),
            op: "open lock file",
            source,
        })?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(ServeError::DataDirLocked {
            path: dir.to_path_buf(),
        });
    }
    Ok(f)
}

/// What the node reports once every shard is serving.
#[derive(Debug, Clone)]
pub struct Bound {
    pub client: SocketAddr,
    pub http: Option<SocketAddr>,
    /// The gossip (UDP) address, when the node is in a cluster.
    pub gossip: Option<SocketAddr>,
}

/// Starts a node and blocks until it has shut down (SIGTERM/SIGINT, or `shutdown` set).
/// `on_ready` is called once every shard serves.
pub fn serve(
    cfg: ServeConfig,
    shutdown: Arc<AtomicBool>,
    on_ready: impl FnOnce(&Bound),
) -> Result<(), ServeError> {
    let io_memory = io_memory_per_shard(memlock_limit(), cfg.shards)?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| ServeError::DataDir {
        path: cfg.data_dir.clone(),
        op: "create",
        source,
    })?;
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let catalog = Catalog::load(&cfg.data_dir)?;
    let controller = start_controller(&cfg)?;
    let cold = crate::cold::ColdTier::start(&cfg.cold).map_err(ServeError::ColdTier)?;
    let meta_cache = Arc::new(crate::metadata::MetaCache::default());
    let (client_addr, client_fds) =
        bind_shared(SocketAddr::new(cfg.bind, cfg.port), cfg.shards, "--port")?;
    let (http_addr, http_fds) = bind_shared(
        SocketAddr::new(cfg.bind, cfg.http_port),
        cfg.shards,
        "--http-port",
    )?;
    let mut http_fds = http_fds.into_iter();
    let cpus = allowed_cpus();
    let mesh = MeshBuilder::<MeshMsg, _>::full(cfg.shards, MESH_CHANNEL_CAPACITY);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, String>>();
    let catalog = Arc::new(catalog);
    let ring_budget = storage::MemoryBudget::new(cfg.ring_memory_bytes_max);
    let gossip_bound = Arc::new(std::sync::Mutex::new(None));
    let mut handles = Vec::with_capacity(cfg.shards);
    for (id, fd) in client_fds.into_iter().enumerate() {
        let cpu = cpus[id % cpus.len()];
        let ctx = ShardContext {
            id,
            shards: cfg.shards,
            config: cfg.clone(),
            catalog: catalog.clone(),
            shutdown: shutdown.clone(),
            ready: ready_tx.clone(),
            mesh: mesh.clone(),
            ring_budget: ring_budget.clone(),
            http_fd: http_fds.next(),
            http_addr: Some(http_addr),
            gossip_bound: gossip_bound.clone(),
            controller: controller.clone(),
            cold: cold.clone(),
            meta: meta_cache.clone(),
        };
        // Started here, outside the executor, so the thread is not pinned to the shard's core.
        let background = match crate::background::Background::start(id) {
            Ok(bg) => Some(bg),
            Err(e) => {
                eprintln!(
                    "sprawl: shard {id}: no background thread ({e}); its background work runs \
                     on the blocking pool"
                );
                None
            }
        };
        let builder = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("shard-{id}"))
            .io_memory(io_memory)
            .spin_before_park(Duration::from_micros(cfg.effective_spin_before_park_us()))
            .blocking_thread_pool_placement(PoolPlacement::Unbound(2));
        let handle = builder
            .spawn(move || async move {
                if let Some(bg) = background {
                    crate::background::install(bg);
                }
                // SAFETY: `fd` is a listening socket created by bind_shared and owned by this shard alone.
                let listener = unsafe { glommio::net::TcpListener::from_raw_fd(fd) };
                shard::run(ctx, listener).await
            })
            .map_err(|e| ServeError::Shard {
                shard: id,
                reason: format!("cannot start executor: {e}"),
            })?;
        handles.push(handle);
    }
    drop(ready_tx);
    install_signal_handler(shutdown.clone());
    let mut ready = 0;
    let mut startup_error = None;
    while ready < cfg.shards {
        match ready_rx.recv() {
            Ok(Ok(_)) => ready += 1,
            Ok(Err(e)) => {
                startup_error = Some(e);
                shutdown.store(true, Ordering::SeqCst);
                break;
            }
            Err(_) => break,
        }
    }
    if ready == cfg.shards {
        on_ready(&Bound {
            client: client_addr,
            http: Some(http_addr),
            gossip: gossip_bound.lock().ok().and_then(|g| *g),
        });
    }
    let mut first_err = startup_error.map(|reason| ServeError::Shard { shard: 0, reason });
    for (id, h) in handles.into_iter().enumerate() {
        let res = h.join();
        let err = match res {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(reason),
            Err(e) => Some(format!("executor error: {e}")),
        };
        if let (Some(reason), None) = (err, &first_err) {
            first_err = Some(ServeError::Shard { shard: id, reason });
        }
    }
    if let Some(c) = controller {
        c.stop();
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Starts the metadata controller thread when this node is one of `--controllers`.
fn start_controller(
    cfg: &ServeConfig,
) -> Result<Option<crate::controller::Controller>, ServeError> {
    if !cfg.cluster.is_controller(cfg.node_id) {
        return Ok(None);
    }
    crate::controller::Controller::start(
        u64::from(cfg.node_id),
        &cfg.cluster.controllers,
        cfg.data_dir.join("meta"),
        u64::from(cfg.frame_bytes_max),
        std::time::Duration::from_millis(cfg.cluster.node_loss_grace_ms),
    )
    .map(Some)
    .map_err(ServeError::Controller)
}

fn install_signal_handler(shutdown: Arc<AtomicBool>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(mut signals) => {
            std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    if signals.forever().next().is_some() {
                        shutdown.store(true, Ordering::SeqCst);
                    }
                })
                .map(drop)
                .unwrap_or_else(|e| eprintln!("sprawl: no signal thread ({e}); stop with kill -9"));
        }
        Err(e) => eprintln!("sprawl: cannot install SIGTERM handler ({e}); stop with kill -9"),
    }
}

/// Writes `<data-dir>/ports.json` atomically.
pub fn write_ports_json(data_dir: &Path, bound: &Bound) -> std::io::Result<()> {
    let http = bound
        .http
        .map_or_else(|| "null".to_string(), |a| format!("\"{a}\""));
    let gossip = bound
        .gossip
        .map_or_else(|| "null".to_string(), |a| format!("\"{a}\""));
    let text = format!(
        "{{\"client\": \"{}\", \"http\": {}, \"gossip\": {}}}\n",
        bound.client, http, gossip
    );
    let tmp = data_dir.join("ports.json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, data_dir.join("ports.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_memory_fits_the_limit() {
        let eight_mib = 8 << 20;
        let per = io_memory_per_shard(Some(eight_mib), 2).unwrap() as u64;
        assert!(2 * (per + LOCKED_BYTES_PER_SHARD_OVERHEAD) <= eight_mib);
        assert!(per >= IO_MEMORY_MIN);
        assert_eq!(
            io_memory_per_shard(None, 4).unwrap() as u64,
            IO_MEMORY_DEFAULT
        );
        let err = io_memory_per_shard(Some(1 << 20), 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ulimit -l") && err.contains("--shards"),
            "{err}"
        );
    }

    #[test]
    fn taken_port_is_reported_with_its_flag() {
        let holder = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        let err = bind_shared(addr, 2, "--port").unwrap_err().to_string();
        assert!(err.contains("--port") && err.contains("in use"), "{err}");
    }

    #[test]
    fn port_zero_binds_one_port_for_all_shards() {
        let (addr, fds) = bind_shared("127.0.0.1:0".parse().unwrap(), 2, "--port").unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(fds.len(), 2);
        for fd in fds {
            // SAFETY: we own these descriptors.
            drop(unsafe { StdListener::from_raw_fd(fd) });
        }
    }
}
