//! The driver loop: socket, clock and timers around a [`Membership`].

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::channels::local_channel::{LocalReceiver, LocalSender};
use glommio::net::UdpSocket;

use super::error::GossipError;
use super::resolve::{seed_candidates, Resolver};
use super::state::{key, ChangeEvent, ChangeQueue, DownKind, Shared, TimerQueue};
use crate::error::MembershipError;
use crate::member::Member;
use crate::membership::{Datagram, Effects, MemberChange, DATAGRAM_BYTES_MAX};

/// Names cached by the resolver.
const RESOLVER_ENTRIES_MAX: usize = 1_024;
/// Longest the loop sleeps when nothing is scheduled (bounds a missed wake-up).
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// Pause after a socket receive error, so a persistent one cannot spin a core.
const RECV_ERROR_BACKOFF: Duration = Duration::from_millis(10);
/// Send failures are logged at most this often.
const SEND_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the handle asks of the driver task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// `Shared::pending_load` holds a new value.
    LoadChanged,
    /// Leave gracefully, then stop.
    Leave,
}

/// Settings the loop reads, copied from `GossipConfig` at start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) node_id: u32,
    pub(crate) seeds: Vec<String>,
    pub(crate) advertise_addr: String,
    pub(crate) local_addr: SocketAddr,
    pub(crate) join_retry_initial: Duration,
    pub(crate) join_retry_max: Duration,
    pub(crate) load_announce_interval_min: Duration,
    pub(crate) leave_send_count: u8,
    pub(crate) leave_resend_interval: Duration,
    pub(crate) log_to_stderr: bool,
}

/// The driver task's state. Created and spawned by [`GossipDriver::start`];
/// control it through the returned `GossipHandle`.
#[derive(Debug)]
pub struct GossipDriver {
    pub(crate) shared: Rc<RefCell<Shared>>,
    pub(crate) socket: Rc<UdpSocket>,
    pub(crate) inbound: LocalReceiver<Vec<u8>>,
    pub(crate) inbound_tx: Option<LocalSender<Vec<u8>>>,
    pub(crate) commands: LocalReceiver<Command>,
    pub(crate) changes: ChangeQueue,
    pub(crate) timers: TimerQueue,
    pub(crate) resolver: Resolver,
    pub(crate) clock: Instant,
    pub(crate) settings: Settings,
    pub(crate) join_next_at: Option<Duration>,
    pub(crate) join_delay: Duration,
    pub(crate) load_next_at: Duration,
    pub(crate) send_error_logged_at: Option<Duration>,
}

enum Event {
    Command(Option<Command>),
    Datagram(Option<Vec<u8>>),
    Tick,
}

impl GossipDriver {
    pub(crate) fn new_resolver() -> Resolver {
        Resolver::new(RESOLVER_ENTRIES_MAX)
    }

    fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    fn log(&self, message: std::fmt::Arguments<'_>) {
        if self.settings.log_to_stderr {
            eprintln!("sprawl: gossip[node {}]: {message}", self.settings.node_id);
        }
    }

    /// Runs until a leave completes or the handle is dropped (which cancels it).
    pub(crate) async fn run(mut self) -> Result<(), GossipError> {
        let Some(inbound_tx) = self.inbound_tx.take() else {
            return Err(GossipError::Stopped);
        };
        // Dropped (hence cancelled) when this loop returns.
        let _receiver = glommio::spawn_local(receive_loop(
            self.socket.clone(),
            inbound_tx,
            self.shared.clone(),
        ));
        if !self.settings.seeds.is_empty() {
            self.join_next_at = Some(Duration::ZERO);
        } else {
            self.log(format_args!(
                "no seeds: waiting for other nodes to join via {}",
                self.settings.advertise_addr
            ));
        }
        loop {
            self.fire_due_timers().await;
            self.maybe_join().await;
            self.maybe_announce_load().await;
            let event = {
                let sleep_for = self.next_wake().saturating_sub(self.now());
                let command = async { Event::Command(self.commands.recv().await) };
                let datagram = async { Event::Datagram(self.inbound.recv().await) };
                let tick = async {
                    glommio::timer::sleep(sleep_for).await;
                    Event::Tick
                };
                future::or(command, future::or(datagram, tick)).await
            };
            match event {
                Event::Command(Some(Command::LoadChanged)) | Event::Tick => {}
                Event::Command(Some(Command::Leave)) => return self.leave().await,
                // The handle is gone (it cancels this task when dropped, so this
                // is only reached mid-drop), or the receiver task ended.
                Event::Command(None) | Event::Datagram(None) => {
                    self.changes.close();
                    return Err(GossipError::Stopped);
                }
                Event::Datagram(Some(bytes)) => self.on_datagram(&bytes).await,
            }
        }
    }

    fn next_wake(&self) -> Duration {
        let mut wake = self.now().saturating_add(IDLE_WAKE);
        if let Some(due) = self.timers.next_due() {
            wake = wake.min(due);
        }
        if let Some(at) = self.join_next_at {
            wake = wake.min(at);
        }
        if self.shared.borrow().pending_load.is_some() {
            wake = wake.min(self.load_next_at);
        }
        wake
    }

    async fn fire_due_timers(&mut self) {
        let now = self.now();
        while let Some(timer) = self.timers.pop_due(now) {
            let result = self.shared.borrow_mut().membership.handle_timer(timer, now);
            match result {
                Ok(effects) => self.apply(effects, now).await,
                Err(err) => self.log(format_args!("timer: {err}")),
            }
        }
    }

    async fn on_datagram(&mut self, bytes: &[u8]) {
        let now = self.now();
        let result = self
            .shared
            .borrow_mut()
            .membership
            .handle_datagram(bytes, now);
        match result {
            Ok(effects) => self.apply(effects, now).await,
            Err(MembershipError::Foca { source, .. }) => {
                let mut shared = self.shared.borrow_mut();
                match source {
                    foca::Error::MalformedPacket
                    | foca::Error::DataTooBig
                    | foca::Error::Decode(_) => shared.stats.decode_errors_total += 1,
                    _ => shared.stats.rejected_datagrams_total += 1,
                }
            }
        }
    }

    /// Carries out one call's effects: changes first (classified against the
    /// suspicions seen before the call), then timers, then datagrams.
    async fn apply(&mut self, effects: Effects, now: Duration) {
        let Effects {
            datagrams,
            timers,
            changes,
        } = effects;
        for change in changes {
            self.on_change(change, now);
        }
        self.shared.borrow_mut().refresh();
        for request in timers {
            if self.timers.push(request.due, request.timer).is_err() {
                self.shared.borrow_mut().stats.timers_dropped_total += 1;
                self.log(format_args!(
                    "timer queue full ({} timers); a timer was dropped",
                    self.timers.len()
                ));
            }
        }
        self.send_all(&datagrams, now).await;
    }

    fn on_change(&mut self, change: MemberChange, now: Duration) {
        let mut down_kind = None;
        match &change {
            MemberChange::Down(member) => {
                let mut shared = self.shared.borrow_mut();
                let kind = if shared.suspected.contains(&key(member)) {
                    DownKind::Failed
                } else {
                    DownKind::Left
                };
                shared.down_kinds.insert(key(member), kind);
                drop(shared);
                down_kind = Some(kind);
                self.log(format_args!(
                    "node {} ({}) is down: {}",
                    member.node_id(),
                    member.gossip_addr(),
                    if kind == DownKind::Left {
                        "left"
                    } else {
                        "failed"
                    }
                ));
            }
            MemberChange::Up(member) => self.log(format_args!(
                "node {} ({}) is up",
                member.node_id(),
                member.gossip_addr()
            )),
            MemberChange::Active => {
                let mut shared = self.shared.borrow_mut();
                let first = !shared.joined;
                shared.joined = true;
                let members = shared.membership.active_members().len();
                drop(shared);
                self.join_next_at = None;
                if first {
                    self.log(format_args!(
                        "joined the cluster ({members} other member(s) known)"
                    ));
                }
            }
            MemberChange::Idle => {
                self.shared.borrow_mut().joined = false;
                if !self.settings.seeds.is_empty() {
                    self.join_delay = self.settings.join_retry_initial;
                    self.join_next_at = Some(now.saturating_add(self.join_delay));
                    self.log(format_args!(
                        "no live member left; joining again via the seeds"
                    ));
                }
            }
            MemberChange::Rejoined(member) => self.log(format_args!(
                "this node was declared down; rejoined as incarnation {}",
                member.incarnation()
            )),
            MemberChange::Defunct => {
                self.shared.borrow_mut().joined = false;
            }
            MemberChange::Renamed { .. } => {}
        }
        let event = ChangeEvent {
            change,
            down_kind,
            at: now,
        };
        if !self.changes.push(event) {
            self.shared.borrow_mut().stats.changes_dropped_total += 1;
        }
    }

    async fn send_all(&mut self, datagrams: &[Datagram], now: Duration) {
        for datagram in datagrams {
            let to = datagram.to.gossip_addr();
            let sent = match self.resolver.resolve(to, now).await {
                Ok(addrs) => self
                    .socket
                    .send_to(&datagram.bytes, addrs[0])
                    .await
                    .map_err(|err| err.to_string()),
                Err(reason) => Err(format!("cannot resolve: {reason}")),
            };
            let mut shared = self.shared.borrow_mut();
            match sent {
                Ok(bytes) => {
                    shared.stats.datagrams_out_total += 1;
                    shared.stats.bytes_out_total += bytes as u64;
                }
                Err(reason) => {
                    shared.stats.send_errors_total += 1;
                    drop(shared);
                    let quiet = self
                        .send_error_logged_at
                        .is_some_and(|at| now.saturating_sub(at) < SEND_ERROR_LOG_INTERVAL);
                    if !quiet {
                        self.send_error_logged_at = Some(now);
                        self.log(format_args!("send to {to} failed: {reason}"));
                    }
                }
            }
        }
    }

    /// Announces to the seeds when due and not yet part of a cluster.
    async fn maybe_join(&mut self) {
        let now = self.now();
        match self.join_next_at {
            Some(at) if at <= now => {}
            _ => return,
        }
        if self.shared.borrow().joined {
            self.join_next_at = None;
            return;
        }
        let own = self.own_addrs(now).await;
        let mut targets = Vec::new();
        let mut unresolved = 0usize;
        let mut only_self = true;
        for seed in self.settings.seeds.clone() {
            if seed == self.settings.advertise_addr {
                continue;
            }
            match self.resolver.resolve(&seed, now).await {
                Ok(addrs) if addrs.iter().any(|a| own.contains(a)) => {}
                Ok(addrs) => {
                    only_self = false;
                    targets.extend(seed_candidates(&seed, &addrs));
                }
                Err(reason) => {
                    only_self = false;
                    unresolved += 1;
                    self.log(format_args!("cannot resolve seed {seed}: {reason}"));
                }
            }
        }
        if only_self {
            self.join_next_at = None;
            self.log(format_args!(
                "every seed is this node: waiting for others to join via {}",
                self.settings.advertise_addr
            ));
            return;
        }
        let seeds: Vec<Member> = targets
            .iter()
            .filter_map(|target| Member::seed(target).ok())
            .collect();
        let attempt = {
            let mut shared = self.shared.borrow_mut();
            shared.stats.join_attempts_total += 1;
            shared.stats.join_attempts_total
        };
        let next_in = self.join_delay;
        self.join_next_at = Some(now.saturating_add(next_in));
        self.join_delay = self
            .join_delay
            .saturating_mul(2)
            .min(self.settings.join_retry_max);
        let unresolved = if unresolved > 0 {
            format!(", {unresolved} seed(s) unresolved")
        } else {
            String::new()
        };
        self.log(format_args!(
            "join attempt {attempt} via {targets:?}{unresolved}; next in {} ms unless a seed answers",
            next_in.as_millis()
        ));
        if seeds.is_empty() {
            return;
        }
        let result = self.shared.borrow_mut().membership.join(&seeds, now);
        match result {
            Ok(effects) => self.apply(effects, now).await,
            Err(err) => self.log(format_args!("join: {err}")),
        }
    }

    /// Addresses that reach this node: the bound one and the advertised one.
    async fn own_addrs(&mut self, now: Duration) -> Vec<SocketAddr> {
        let mut own = vec![self.settings.local_addr];
        let advertise = self.settings.advertise_addr.clone();
        if let Ok(addrs) = self.resolver.resolve(&advertise, now).await {
            own.extend(addrs);
        }
        own
    }

    /// Publishes the latest requested load, at most once per interval.
    async fn maybe_announce_load(&mut self) {
        let now = self.now();
        if now < self.load_next_at {
            return;
        }
        let Some(load) = self.shared.borrow_mut().pending_load.take() else {
            return;
        };
        let result = {
            let mut shared = self.shared.borrow_mut();
            if shared.membership.identity().load_msgs_per_s().to_bits() == load.to_bits() {
                return;
            }
            shared.membership.set_load(load, now)
        };
        self.load_next_at = now.saturating_add(self.settings.load_announce_interval_min);
        match result {
            Ok(Some(effects)) => self.apply(effects, now).await,
            Ok(None) => self.log(format_args!(
                "load {load} not announced: incarnation exhausted (restart with a higher one)"
            )),
            Err(err) => self.log(format_args!("load announce: {err}")),
        }
    }

    /// Tells a few members this node leaves, repeating the datagrams once or
    /// more (duplicates are idempotent) so one lost copy does not turn a leave
    /// into a failure detection.
    async fn leave(mut self) -> Result<(), GossipError> {
        let now = self.now();
        let result = self.shared.borrow_mut().membership.leave(now);
        let effects = match result {
            Ok(effects) => effects,
            Err(source) => {
                self.changes.close();
                return Err(GossipError::Leave { source });
            }
        };
        for change in effects.changes {
            self.on_change(change, now);
        }
        for round in 0..self.settings.leave_send_count {
            if round > 0 {
                glommio::timer::sleep(self.settings.leave_resend_interval).await;
            }
            self.send_all(&effects.datagrams, now).await;
        }
        self.log(format_args!(
            "left the cluster (told {} member(s))",
            effects.datagrams.len()
        ));
        self.changes.close();
        Ok(())
    }
}

/// Reads datagrams into the bounded inbound queue. A separate task so that a
/// receive is never cancelled mid-flight by the main loop's select.
async fn receive_loop(
    socket: Rc<UdpSocket>,
    inbound: LocalSender<Vec<u8>>,
    shared: Rc<RefCell<Shared>>,
) {
    // One byte more than the largest valid datagram detects truncation.
    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX + 1];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, _from)) => {
                {
                    let mut shared = shared.borrow_mut();
                    shared.stats.datagrams_in_total += 1;
                    shared.stats.bytes_in_total += len as u64;
                    if len > DATAGRAM_BYTES_MAX {
                        shared.stats.decode_errors_total += 1;
                        continue;
                    }
                }
                if inbound.send(buf[..len].to_vec()).await.is_err() {
                    return;
                }
            }
            Err(_) => {
                shared.borrow_mut().stats.recv_errors_total += 1;
                glommio::timer::sleep(RECV_ERROR_BACKOFF).await;
            }
        }
    }
}
