//! The UDP driver: [`Membership`] on a real glommio socket and clock.
//!
//! [`GossipDriver::start`] binds the gossip socket and spawns one task on the
//! current glommio executor. That task feeds received datagrams and expired
//! timers into the membership with a monotonic clock, sends the datagrams the
//! effects ask for, keeps the timers in a bounded queue, joins through the
//! seeds (retrying with a doubling delay until one answers, and again if every
//! member is lost), and re-announces the load summary at a bounded rate. The
//! returned [`GossipHandle`] reads the member list and counters, sets the load,
//! hands out the bounded [`ChangeEvent`] queue and leaves gracefully.
//!
//! Seeds are `host:port` strings. foca only accepts an announce addressed to
//! the exact string the receiver advertises, so each seed is announced to as
//! written and as each `ip:port` it resolves to; a seed that resolves to this
//! node is skipped, so every node can be given the same seed list.
//!
//! Down members are classified: [`DownKind::Left`] when the down arrived
//! without a prior suspicion in this node's view (a graceful leave gossips the
//! node down directly), [`DownKind::Failed`] when it followed an unrefuted
//! suspicion. This is a best-effort reading of foca's single "down" state: a
//! node that leaves while suspected is reported failed, and a peer that missed
//! every suspicion update of a failed node reports it left.
//!
//! Everything here is `!Send` and lives on the executor that started it; share
//! the member list with other shards by copying [`GossipHandle::members`].
//!
//! Two nodes on one executor (a real deployment runs one per process):
//!
//! ```
//! use std::time::Duration;
//! use gossip::{DownKind, GossipConfig, GossipDriver, MemberChange, MemberState};
//!
//! let ex = glommio::LocalExecutorBuilder::default()
//!     .io_memory(256 << 10) // gossip needs little; keep `ulimit -l` for the shards
//!     .make()?;
//! ex.run(async {
//!     let mut config = GossipConfig::new(1, "127.0.0.1:0".parse()?);
//!     config.log_to_stderr = false;
//!     let a = GossipDriver::start(config)?;
//!
//!     let mut config = GossipConfig::new(2, "127.0.0.1:0".parse()?);
//!     config.seeds = vec![a.advertise_addr().to_owned()]; // `--seeds`
//!     config.client_addr = "127.0.0.1:7070".to_owned();
//!     config.log_to_stderr = false;
//!     let b = GossipDriver::start(config)?;
//!
//!     let changes = a.changes().expect("first call");
//!     let Some(event) = changes.recv().await else { panic!("driver stopped") };
//!     let MemberChange::Up(member) = event.change else { panic!("{event:?}") };
//!     assert_eq!(member.client_addr(), "127.0.0.1:7070");
//!
//!     // b is part of the cluster once a answered it.
//!     let b_changes = b.changes().expect("first call");
//!     while b_changes.recv().await.expect("running").change != MemberChange::Active {}
//!     b.leave().await?;
//!     loop {
//!         let event = changes.recv().await.expect("driver running");
//!         if let MemberChange::Down(_) = event.change {
//!             assert_eq!(event.down_kind, Some(DownKind::Left));
//!             break;
//!         }
//!     }
//!     assert_eq!(a.members()[0].state, MemberState::Down(DownKind::Left));
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod error;
mod resolve;
mod run;
mod state;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::UdpSocket;
use glommio::Task;

pub use config::{parse_seed_list, GossipConfig, GOSSIP_PORT_DEFAULT};
pub use error::GossipError;
pub use run::GossipDriver;
pub use state::{ChangeEvent, ChangeReceiver, DownKind, GossipStats, MemberState, MemberStatus};

use crate::member::{Member, MemberSpec};
use crate::membership::Membership;
use run::{Command, Settings};
use state::{ChangeQueue, Shared, TimerQueue};

/// Commands in flight from the handle to the driver (a load doorbell and a leave).
const COMMAND_QUEUE_MAX: usize = 4;

impl GossipDriver {
    /// Binds the gossip socket and starts the driver on the current glommio
    /// executor. Joining starts at once when seeds are configured.
    ///
    /// Errors leave nothing running. Panics when called outside a glommio
    /// executor (like `glommio::spawn_local`).
    pub fn start(config: GossipConfig) -> Result<GossipHandle, GossipError> {
        config.validate()?;
        let socket = bind(config.bind_addr)?;
        let local_addr = socket.local_addr().map_err(|err| GossipError::Bind {
            addr: config.bind_addr,
            source: err.into(),
        })?;
        let advertise_addr = match &config.advertise_addr {
            Some(addr) => addr.clone(),
            None if local_addr.ip().is_unspecified() => {
                return Err(GossipError::AdvertiseUnspecified { bound: local_addr })
            }
            None => local_addr.to_string(),
        };
        let identity = Member::new(MemberSpec {
            node_id: config.node_id,
            incarnation: config.incarnation,
            client_addr: &config.client_addr,
            http_addr: &config.http_addr,
            gossip_addr: &advertise_addr,
            shard_count: config.shard_count,
            load_msgs_per_s: config.load_msgs_per_s,
        })
        .map_err(|source| GossipError::InvalidIdentity { source })?;
        let membership = Membership::new(identity, config.membership.clone(), config.rng_seed);
        let shared = Rc::new(RefCell::new(Shared::new(membership)));
        let (commands_tx, commands) = local_channel::new_bounded(COMMAND_QUEUE_MAX);
        let (inbound_tx, inbound) = local_channel::new_bounded(config.inbound_queue_datagrams_max);
        let changes = ChangeQueue::new(config.changes_capacity);
        let change_receiver = changes.receiver();
        let change_queue = changes.clone();
        let join_retry_initial = Duration::from_millis(config.join_retry_initial_ms);
        let driver = GossipDriver {
            shared: shared.clone(),
            socket: Rc::new(socket),
            inbound,
            inbound_tx: Some(inbound_tx),
            commands,
            changes,
            timers: TimerQueue::new(config.timers_max),
            resolver: GossipDriver::new_resolver(),
            clock: Instant::now(),
            settings: Settings {
                node_id: config.node_id,
                seeds: config.seeds.clone(),
                advertise_addr: advertise_addr.clone(),
                local_addr,
                join_retry_initial,
                join_retry_max: Duration::from_millis(config.join_retry_max_ms),
                load_announce_interval_min: Duration::from_millis(
                    config.load_announce_interval_ms_min,
                ),
                leave_send_count: config.leave_send_count,
                leave_resend_interval: Duration::from_millis(config.leave_resend_interval_ms),
                log_to_stderr: config.log_to_stderr,
            },
            join_next_at: None,
            join_delay: join_retry_initial,
            load_next_at: Duration::ZERO,
            send_error_logged_at: None,
        };
        let task = glommio::spawn_local(driver.run());
        Ok(GossipHandle {
            shared,
            commands: commands_tx,
            task: Some(task),
            local_addr,
            advertise_addr,
            changes: RefCell::new(Some(change_receiver)),
            change_queue,
        })
    }
}

/// Binds the UDP socket. glommio sets `SO_REUSEPORT`, which would let a second
/// node on this host share a fixed port silently (each getting part of the
/// datagrams); a plain bind first detects any holder of the port.
fn bind(addr: SocketAddr) -> Result<UdpSocket, GossipError> {
    if addr.port() != 0 {
        match std::net::UdpSocket::bind(addr) {
            Ok(probe) => drop(probe),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(GossipError::PortInUse { addr })
            }
            Err(source) => return Err(GossipError::Bind { addr, source }),
        }
    }
    UdpSocket::bind(addr).map_err(|err| GossipError::Bind {
        addr,
        source: err.into(),
    })
}

/// Control of a running driver, on the executor that started it.
///
/// Dropping the handle stops the driver at once without telling anyone (peers
/// then detect the failure); call [`GossipHandle::leave`] to leave gracefully.
#[derive(Debug)]
pub struct GossipHandle {
    shared: Rc<RefCell<Shared>>,
    commands: LocalSender<Command>,
    task: Option<Task<Result<(), GossipError>>>,
    local_addr: SocketAddr,
    advertise_addr: String,
    changes: RefCell<Option<ChangeReceiver>>,
    change_queue: ChangeQueue,
}

impl Drop for GossipHandle {
    /// Cancels the driver (if still running) and ends the change queue, so a
    /// task waiting in [`ChangeReceiver::recv`] sees `None`.
    fn drop(&mut self) {
        drop(self.task.take());
        self.change_queue.close();
    }
}

impl GossipHandle {
    /// Address the UDP socket is bound to (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Address peers send to (what seeds should name).
    pub fn advertise_addr(&self) -> &str {
        &self.advertise_addr
    }

    /// This node's current identity and metadata (its incarnation grows with
    /// every load re-announcement).
    pub fn identity(&self) -> Member {
        self.shared.borrow().membership.identity().clone()
    }

    /// Every member this node knows except itself, with metadata and state
    /// (down members are kept for foca's `remove_down_after`).
    pub fn members(&self) -> Vec<MemberStatus> {
        self.shared.borrow().member_statuses()
    }

    /// Alive and suspect members except this node.
    pub fn active_members(&self) -> Vec<Member> {
        self.shared.borrow().membership.active_members()
    }

    /// True once a seed or member answered and until every member is lost.
    pub fn is_joined(&self) -> bool {
        self.shared.borrow().joined
    }

    /// Publishes a new load summary. Re-announcements are rate limited
    /// (`load_announce_interval_ms_min`); the latest value wins.
    pub fn set_load(&self, load_msgs_per_s: f32) -> Result<(), GossipError> {
        if !load_msgs_per_s.is_finite() || load_msgs_per_s < 0.0 {
            return Err(GossipError::InvalidLoad { load_msgs_per_s });
        }
        self.shared.borrow_mut().pending_load = Some(load_msgs_per_s);
        // A doorbell: a full queue already holds a wake-up for the driver.
        match self.commands.try_send(Command::LoadChanged) {
            Ok(()) => Ok(()),
            Err(glommio::GlommioError::WouldBlock(_)) => Ok(()),
            Err(_) => Err(GossipError::Stopped),
        }
    }

    /// The queue of membership changes, the first time it is asked for
    /// (`None` afterwards). Events beyond `changes_capacity` are dropped and
    /// counted when it is not drained; [`GossipHandle::members`] stays exact.
    pub fn changes(&self) -> Option<ChangeReceiver> {
        self.changes.borrow_mut().take()
    }

    /// Counters and member gauges.
    pub fn stats(&self) -> GossipStats {
        self.shared.borrow().stats()
    }

    /// Leaves gracefully: peers are told this node is down (it appears as
    /// [`DownKind::Left`] to them), the datagrams are sent, then the socket is
    /// closed. Returns once the driver has stopped.
    pub async fn leave(mut self) -> Result<(), GossipError> {
        let task = self.task.take().ok_or(GossipError::Stopped)?;
        self.commands
            .send(Command::Leave)
            .await
            .map_err(|_| GossipError::Stopped)?;
        task.await
    }
}
