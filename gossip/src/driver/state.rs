//! State of the driver: what it shares with its handle (membership, down
//! kinds, counters), the bounded timer and change queues, and the public views.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::member::Member;
use crate::membership::{MemberChange, Membership, Timer};

/// How a member that is down got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DownKind {
    /// It left gracefully (its own leave, or a down we saw without a prior suspicion).
    Left,
    /// Failure detection declared it down after an unrefuted suspicion.
    Failed,
}

/// State of a member in this node's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe round; declared down unless it refutes in time.
    Suspect,
    /// Down, see [`DownKind`].
    Down(DownKind),
}

/// One member with its metadata (id, addresses, shards, load) and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// Identity and metadata.
    pub member: Member,
    /// Current state.
    pub state: MemberState,
}

/// A membership change for the engine, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// What changed.
    pub change: MemberChange,
    /// For [`MemberChange::Down`]: whether the member left or failed.
    pub down_kind: Option<DownKind>,
    /// When, on the driver's monotonic clock (time since start).
    pub at: Duration,
}

/// Counters and gauges of one driver, a plain value for Prometheus export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Datagrams received (including bad ones).
    pub datagrams_in_total: u64,
    /// Datagrams sent.
    pub datagrams_out_total: u64,
    /// Bytes received.
    pub bytes_in_total: u64,
    /// Bytes sent.
    pub bytes_out_total: u64,
    /// Datagrams dropped because they could not be decoded or were oversized.
    pub decode_errors_total: u64,
    /// Well-formed datagrams foca refused (stale identity, from ourselves...).
    pub rejected_datagrams_total: u64,
    /// Sends that failed (socket error or unresolvable destination).
    pub send_errors_total: u64,
    /// Socket receive errors.
    pub recv_errors_total: u64,
    /// Timers dropped because the timer queue was full.
    pub timers_dropped_total: u64,
    /// Change events dropped because the consumer lagged.
    pub changes_dropped_total: u64,
    /// Join attempts (announce rounds to the seeds).
    pub join_attempts_total: u64,
    /// Suspicions refuted before their deadline (loss or stalls; see `Membership`).
    pub refuted_suspicions_total: u64,
    /// Members currently alive (excluding this node).
    pub members_alive: u64,
    /// Members currently suspect.
    pub members_suspect: u64,
    /// Members that left gracefully, still remembered.
    pub members_left: u64,
    /// Members declared down by failure detection, still remembered.
    pub members_failed: u64,
}

/// A member identity without allocation: node ids are cluster-unique and a
/// node changes incarnation whenever its identity changes.
pub(crate) type MemberKey = (u32, u32);

pub(crate) fn key(member: &Member) -> MemberKey {
    (member.node_id(), member.incarnation())
}

/// State shared by the driver task and its handle (same executor, never
/// borrowed across an `.await`).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) membership: Membership,
    /// Why each remembered down member is down.
    pub(crate) down_kinds: HashMap<MemberKey, DownKind>,
    /// Members suspect as of the last call into `membership`.
    pub(crate) suspected: HashSet<MemberKey>,
    pub(crate) stats: GossipStats,
    pub(crate) pending_load: Option<f32>,
    pub(crate) joined: bool,
}

impl Shared {
    pub(crate) fn new(membership: Membership) -> Self {
        Self {
            membership,
            down_kinds: HashMap::new(),
            suspected: HashSet::new(),
            stats: GossipStats::default(),
            pending_load: None,
            joined: false,
        }
    }

    pub(crate) fn member_statuses(&self) -> Vec<MemberStatus> {
        self.membership
            .members()
            .into_iter()
            .map(|(member, state)| {
                let state = match state {
                    foca::State::Alive => MemberState::Alive,
                    foca::State::Suspect => MemberState::Suspect,
                    foca::State::Down => MemberState::Down(
                        self.down_kinds
                            .get(&key(&member))
                            .copied()
                            .unwrap_or(DownKind::Failed),
                    ),
                };
                MemberStatus { member, state }
            })
            .collect()
    }

    pub(crate) fn stats(&self) -> GossipStats {
        let mut stats = self.stats;
        stats.refuted_suspicions_total = self.membership.refuted_suspicions_total();
        for status in self.member_statuses() {
            match status.state {
                MemberState::Alive => stats.members_alive += 1,
                MemberState::Suspect => stats.members_suspect += 1,
                MemberState::Down(DownKind::Left) => stats.members_left += 1,
                MemberState::Down(DownKind::Failed) => stats.members_failed += 1,
            }
        }
        stats
    }

    /// Re-reads suspicions and forgets down kinds of members foca dropped.
    pub(crate) fn refresh(&mut self) {
        self.suspected.clear();
        let mut down = HashSet::new();
        for (member, state) in self.membership.members() {
            match state {
                foca::State::Suspect => {
                    self.suspected.insert(key(&member));
                }
                foca::State::Down => {
                    down.insert(key(&member));
                }
                foca::State::Alive => {}
            }
        }
        self.down_kinds.retain(|k, _| down.contains(k));
    }
}

/// Timers due on the driver's monotonic clock, at most `len_max` of them.
#[derive(Debug)]
pub(crate) struct TimerQueue {
    entries: BTreeMap<(Duration, u64), Timer>,
    next_seq: u64,
    len_max: usize,
}

impl TimerQueue {
    pub(crate) fn new(len_max: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            next_seq: 0,
            len_max,
        }
    }

    /// Queues `timer`; gives it back when the queue is full.
    pub(crate) fn push(&mut self, due: Duration, timer: Timer) -> Result<(), Timer> {
        if self.entries.len() >= self.len_max {
            return Err(timer);
        }
        self.entries.insert((due, self.next_seq), timer);
        self.next_seq += 1;
        Ok(())
    }

    /// Earliest due time, if any timer is queued.
    pub(crate) fn next_due(&self) -> Option<Duration> {
        self.entries.keys().next().map(|(due, _)| *due)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<Timer> {
        let entry = self.entries.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove())
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[derive(Debug)]
struct ChangeQueueInner {
    items: VecDeque<ChangeEvent>,
    capacity: usize,
    waker: Option<Waker>,
    closed: bool,
}

/// Producer side of the bounded change queue (owned by the driver).
#[derive(Debug, Clone)]
pub(crate) struct ChangeQueue(Rc<RefCell<ChangeQueueInner>>);

impl ChangeQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self(Rc::new(RefCell::new(ChangeQueueInner {
            items: VecDeque::with_capacity(capacity.min(64)),
            capacity,
            waker: None,
            closed: false,
        })))
    }

    /// Queues an event; false (and nothing queued) when full.
    pub(crate) fn push(&self, event: ChangeEvent) -> bool {
        let waker = {
            let mut inner = self.0.borrow_mut();
            if inner.items.len() >= inner.capacity {
                return false;
            }
            inner.items.push_back(event);
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// No more events will come (the driver stopped); wakes the receiver.
    pub(crate) fn close(&self) {
        let waker = {
            let mut inner = self.0.borrow_mut();
            inner.closed = true;
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub(crate) fn receiver(&self) -> ChangeReceiver {
        ChangeReceiver(self.0.clone())
    }
}

/// Consumer side of the bounded [`ChangeEvent`] queue; use it on the executor
/// that runs the driver.
#[derive(Debug)]
pub struct ChangeReceiver(Rc<RefCell<ChangeQueueInner>>);

impl ChangeReceiver {
    /// The next event, waiting for one; `None` once the driver has stopped and
    /// every queued event was taken.
    pub async fn recv(&self) -> Option<ChangeEvent> {
        poll_fn(|cx| {
            let mut inner = self.0.borrow_mut();
            if let Some(event) = inner.items.pop_front() {
                return Poll::Ready(Some(event));
            }
            if inner.closed {
                return Poll::Ready(None);
            }
            inner.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&self) -> Option<ChangeEvent> {
        self.0.borrow_mut().items.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at_ms: u64) -> ChangeEvent {
        ChangeEvent {
            change: MemberChange::Idle,
            down_kind: None,
            at: Duration::from_millis(at_ms),
        }
    }

    #[test]
    fn timer_queue_orders_by_due_and_is_bounded() {
        let mut queue = TimerQueue::new(2);
        let late = Duration::from_millis(20);
        let early = Duration::from_millis(10);
        assert!(queue.push(late, Timer::ProbeRandomMember(1)).is_ok());
        assert!(queue.push(early, Timer::ProbeRandomMember(2)).is_ok());
        assert_eq!(
            queue.push(early, Timer::ProbeRandomMember(3)),
            Err(Timer::ProbeRandomMember(3))
        );
        assert_eq!(queue.next_due(), Some(early));
        assert_eq!(queue.pop_due(Duration::from_millis(5)), None);
        assert_eq!(
            queue.pop_due(Duration::from_millis(25)),
            Some(Timer::ProbeRandomMember(2))
        );
        assert_eq!(
            queue.pop_due(Duration::from_millis(25)),
            Some(Timer::ProbeRandomMember(1))
        );
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn change_queue_drops_when_full_and_ends_when_closed() {
        let queue = ChangeQueue::new(2);
        let rx = queue.receiver();
        assert!(queue.push(event(1)));
        assert!(queue.push(event(2)));
        assert!(!queue.push(event(3)));
        assert_eq!(rx.try_recv(), Some(event(1)));
        queue.close();
        assert_eq!(
            futures_lite::future::block_on(rx.recv()),
            Some(event(2)),
            "queued events outlive the close"
        );
        assert_eq!(futures_lite::future::block_on(rx.recv()), None);
    }
}
