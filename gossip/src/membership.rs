//! [`Membership`]: foca driven by events in, effects out.

use core::num::{NonZeroU8, NonZeroUsize};
use core::time::Duration;

use bytes::Bytes;
use foca::{Foca, NoCustomBroadcast, Notification, PeriodicParams, Runtime, State};

use crate::codec::WireCodec;
use crate::error::MembershipError;
use crate::member::Member;
use crate::rng::SplitMix64;

/// A foca timer for our identity type; hand it back to [`Membership::handle_timer`].
pub type Timer = foca::Timer<Member>;

/// Largest datagram produced or accepted, in bytes (below a 1500-byte Ethernet MTU
/// minus IP/UDP headers, per RFC 8085).
pub const DATAGRAM_BYTES_MAX: usize = 1400;

/// One datagram to send to `to.gossip_addr()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Destination member (a address-only seed during join).
    pub to: Member,
    /// Encoded foca packet, at most [`DATAGRAM_BYTES_MAX`] bytes.
    pub bytes: Bytes,
}

/// A timer to deliver back after `delay` (equivalently at `due`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRequest {
    /// The event to hand to [`Membership::handle_timer`].
    pub timer: Timer,
    /// Delay requested by foca.
    pub delay: Duration,
    /// `now + delay` on the caller's clock (the `now` passed with the call).
    pub due: Duration,
}

/// A membership change observed by this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// A member became active (joined, or rejoined under a new identity).
    Up(Member),
    /// An active member was declared down, by failure detection or because it left.
    Down(Member),
    /// A node replaced its identity (`from` and `to` share the gossip address).
    Renamed {
        /// Previous identity.
        from: Member,
        /// Identity now in use.
        to: Member,
    },
    /// This node is known by at least one active member.
    Active,
    /// Every known member has left or been declared down.
    Idle,
    /// This node was declared down and could not renew its identity.
    Defunct,
    /// This node was declared down and rejoined with a renewed identity.
    Rejoined(Member),
}

/// Everything a call asks the caller to do, in the order foca produced it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Datagrams to send.
    pub datagrams: Vec<Datagram>,
    /// Timers to schedule; every one must be delivered eventually.
    pub timers: Vec<TimerRequest>,
    /// Membership changes seen during the call.
    pub changes: Vec<MemberChange>,
}

impl Effects {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty() && self.timers.is_empty() && self.changes.is_empty()
    }
}

/// foca `Runtime` that only records; drained after every call.
#[derive(Debug, Default)]
struct Recorder {
    datagrams: Vec<Datagram>,
    timers: Vec<(Timer, Duration)>,
    changes: Vec<MemberChange>,
}

impl Runtime<Member> for Recorder {
    fn notify(&mut self, notification: Notification<'_, Member>) {
        let change = match notification {
            Notification::MemberUp(m) => MemberChange::Up(m.clone()),
            Notification::MemberDown(m) => MemberChange::Down(m.clone()),
            Notification::Rename(from, to) => MemberChange::Renamed {
                from: from.clone(),
                to: to.clone(),
            },
            Notification::Active => MemberChange::Active,
            Notification::Idle => MemberChange::Idle,
            Notification::Defunct => MemberChange::Defunct,
            Notification::Rejoin(m) => MemberChange::Rejoined(m.clone()),
        };
        self.changes.push(change);
    }

    fn send_to(&mut self, to: Member, data: &[u8]) {
        self.datagrams.push(Datagram {
            to,
            bytes: Bytes::copy_from_slice(data),
        });
    }

    fn submit_after(&mut self, event: Timer, after: Duration) {
        self.timers.push((event, after));
    }
}

/// SWIM membership of one node, without I/O, clocks or ambient randomness.
///
/// Feed it received datagrams and expired timers with the current time; carry
/// out the returned [`Effects`]. The same seed and the same inputs give the same
/// outputs.
pub struct Membership {
    foca: Foca<Member, WireCodec, SplitMix64, NoCustomBroadcast>,
    recorder: Recorder,
    refuted_suspicions_total: u64,
    /// The timer token of foca's latest timer; see [`Membership::rearm_suspicions`].
    timer_token: Option<foca::TimerToken>,
    suspect_to_down_after: Duration,
}

impl core::fmt::Debug for Membership {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Membership")
            .field("identity", self.foca.identity())
            .field("active_members", &self.foca.num_members())
            .finish()
    }
}

impl Membership {
    /// Timings for a small LAN cluster that must ride out 10% packet loss and a
    /// 5 s stall of a peer without declaring anyone dead.
    ///
    /// - `probe_period` 500 ms, `probe_rtt` 300 ms, 3 indirect probes: one probe
    ///   round (direct or via any of 3 helpers) fails under 10% independent loss
    ///   with probability about 0.19 * 0.34^3 ~= 0.8%, so suspicions are rare
    ///   (with fewer members there are fewer helpers: with 3 nodes, one, ~6%).
    ///   The period sets how fast a crashed node is suspected, which is when the
    ///   controller moves leadership off it: with 1 s, suspicion took 1.1-4.1 s
    ///   on 3 loopback nodes; with 500 ms, 0.6-2.0 s (`engine/tests/failover.rs`).
    /// - `suspect_to_down_after` 12 s: a stalled peer is suspected at the
    ///   earliest ~0.5 s into its stall; after a 5 s stall it still has ~8 s to hear
    ///   the suspicion (gossip every 200 ms to 3 members, plus probes) and refute
    ///   it, which it does within a few hundred ms even at 10% loss.
    ///   The cost: a crashed node is declared down ~12.5-15 s after it stops
    ///   (one probe cycle to be picked + 12 s + dissemination).
    /// - `max_transmissions` 10: each update rides on 10 packets so it reaches
    ///   everyone despite loss (foca's LAN default would give 3 for 5 nodes).
    /// - periodic gossip 200 ms x 3 members, periodic announce every 10 s to one
    ///   member (heals missed joins), announce to down members every 30 s
    ///   (heals partitions; with `notify_down_members` a wrongly-downed node
    ///   learns it and renews its incarnation).
    pub fn recommended_config() -> foca::Config {
        let mut config = foca::Config::simple();
        config.probe_period = Duration::from_millis(500);
        config.probe_rtt = Duration::from_millis(300);
        config.num_indirect_probes = NonZeroUsize::MIN.saturating_add(2);
        config.max_transmissions = NonZeroU8::MIN.saturating_add(9);
        config.suspect_to_down_after = Duration::from_secs(12);
        config.remove_down_after = Some(Duration::from_secs(24 * 60 * 60));
        config.max_packet_size = NonZeroUsize::MIN.saturating_add(DATAGRAM_BYTES_MAX - 1);
        config.notify_down_members = true;
        config.periodic_gossip = Some(PeriodicParams {
            frequency: Duration::from_millis(200),
            num_members: NonZeroUsize::MIN.saturating_add(2),
        });
        config.periodic_announce = Some(PeriodicParams {
            frequency: Duration::from_secs(10),
            num_members: NonZeroUsize::MIN,
        });
        config.periodic_announce_to_down_members = Some(PeriodicParams {
            frequency: Duration::from_secs(30),
            num_members: NonZeroUsize::MIN.saturating_add(1),
        });
        config
    }

    /// A node with `identity`, not yet part of any cluster; call [`Membership::join`].
    pub fn new(identity: Member, config: foca::Config, seed: u64) -> Self {
        let suspect_to_down_after = config.suspect_to_down_after;
        Self {
            foca: Foca::new(identity, config, SplitMix64::new(seed), WireCodec),
            recorder: Recorder::default(),
            refuted_suspicions_total: 0,
            timer_token: None,
            suspect_to_down_after,
        }
    }

    /// The identity in use (it changes after a renewal or [`Membership::set_load`]).
    pub fn identity(&self) -> &Member {
        self.foca.identity()
    }

    /// Announces this node to `seeds` (real members or [`Member::seed`] address-only seeds).
    ///
    /// foca schedules its probe and gossip timers once a seed answers (the
    /// [`MemberChange::Active`] change). Announcements are datagrams and may be
    /// lost: the caller repeats `join` every few seconds until it sees `Active`.
    pub fn join(&mut self, seeds: &[Member], now: Duration) -> Result<Effects, MembershipError> {
        for seed in seeds {
            self.foca
                .announce(seed.clone(), &mut self.recorder)
                .map_err(|source| MembershipError::Foca {
                    operation: "announce",
                    source,
                })?;
        }
        Ok(self.drain(now))
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(
        &mut self,
        bytes: &[u8],
        now: Duration,
    ) -> Result<Effects, MembershipError> {
        self.foca
            .handle_data(bytes, &mut self.recorder)
            .map_err(|source| MembershipError::Foca {
                operation: "handle_data",
                source,
            })?;
        Ok(self.drain(now))
    }

    /// Feeds one expired timer (from an earlier [`TimerRequest`]).
    pub fn handle_timer(
        &mut self,
        timer: Timer,
        now: Duration,
    ) -> Result<Effects, MembershipError> {
        if self.is_refuted_suspicion(&timer) {
            self.refuted_suspicions_total += 1;
            return Ok(self.drain(now));
        }
        self.foca
            .handle_timer(timer, &mut self.recorder)
            .map_err(|source| MembershipError::Foca {
                operation: "handle_timer",
                source,
            })?;
        Ok(self.drain(now))
    }

    /// Gracefully leaves: tells a few members this node is down, then goes quiet.
    pub fn leave(&mut self, now: Duration) -> Result<Effects, MembershipError> {
        self.foca
            .leave_cluster(&mut self.recorder)
            .map_err(|source| MembershipError::Foca {
                operation: "leave_cluster",
                source,
            })?;
        Ok(self.drain(now))
    }

    /// Publishes a new load summary by switching to the next incarnation.
    ///
    /// Identity changes are gossiped like any update, so call this at most every
    /// few seconds (the previous identity is announced down and renamed away).
    /// Returns `Ok(None)` when the rate is invalid or the incarnation is exhausted.
    pub fn set_load(
        &mut self,
        load_msgs_per_s: f32,
        now: Duration,
    ) -> Result<Option<Effects>, MembershipError> {
        let Some(next) = self.foca.identity().with_load(load_msgs_per_s) else {
            return Ok(None);
        };
        self.foca
            .change_identity(next, &mut self.recorder)
            .map_err(|source| MembershipError::Foca {
                operation: "change_identity",
                source,
            })?;
        Ok(Some(self.drain(now)))
    }

    /// Every member this node knows, with its state (down members included until
    /// `remove_down_after`); excludes this node itself.
    pub fn members(&self) -> Vec<(Member, State)> {
        self.foca
            .iter_membership_state()
            .map(|m| (m.id().clone(), m.state()))
            .collect()
    }

    /// Suspicions this node raised or learned that were refuted before their
    /// deadline (a health signal: a steady rate means loss or stalls).
    pub fn refuted_suspicions_total(&self) -> u64 {
        self.refuted_suspicions_total
    }

    /// Active (alive or suspect) members, excluding this node.
    pub fn active_members(&self) -> Vec<Member> {
        self.foca.iter_members().map(|m| m.id().clone()).collect()
    }

    /// True for a `ChangeSuspectToDown` whose suspicion no longer stands.
    ///
    /// foca 2.0.0 applies this timer only if the member is still at the suspected
    /// incarnation, but with `notify_down_members` it sends `TurnUndead` to the
    /// member even when that check fails. The member, alive and already refuted,
    /// then believes it was declared down and renews its identity: one spurious
    /// rejoin per refuted suspicion (seen in `tests/simulation.rs` under 10%
    /// loss). Dropping stale timers here keeps foca's behaviour for real
    /// suspicions and removes the spurious message.
    fn is_refuted_suspicion(&self, timer: &Timer) -> bool {
        let Timer::ChangeSuspectToDown {
            member_id,
            incarnation,
            ..
        } = timer
        else {
            return false;
        };
        let still_suspect = self.foca.iter_membership_state().any(|m| {
            m.id() == member_id && m.incarnation() == *incarnation && m.state() == State::Suspect
        });
        !still_suspect
    }

    /// foca drops every pending timer when it renews this node's identity, goes idle or rejoins
    /// (it moves to a new timer token), including the suspect-to-down timers of members it
    /// suspects. A suspicion that then never reaches its subject (its piggyback transmissions were
    /// spent while the two were cut off) would stay forever: the subject never refutes it and no
    /// timer ends it. Seen after healed network partitions: the isolated node declared the others
    /// down, they renewed their identities and lost their timers on it, and kept it `Suspect`
    /// (`tests/simulation.rs`, isolation test). So on every token change every member still
    /// suspected gets a fresh timer under the new token: it is declared down after the usual
    /// delay unless it refutes, and the down notice makes it rejoin.
    fn rearm_suspicions(&mut self) {
        let token = self
            .recorder
            .timers
            .iter()
            .rev()
            .find_map(|(t, _)| match t {
                Timer::ProbeRandomMember(token)
                | Timer::PeriodicAnnounce(token)
                | Timer::PeriodicAnnounceDown(token)
                | Timer::PeriodicGossip(token)
                | Timer::SendIndirectProbe { token, .. }
                | Timer::ChangeSuspectToDown { token, .. } => Some(*token),
                Timer::RemoveDown(_) => None,
            });
        let Some(token) = token else {
            return;
        };
        let changed = self.timer_token.is_some_and(|t| t != token);
        self.timer_token = Some(token);
        if !changed {
            return;
        }
        let delay = self.suspect_to_down_after;
        let rearmed: Vec<(Timer, Duration)> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Suspect)
            .map(|m| {
                let timer = Timer::ChangeSuspectToDown {
                    member_id: m.id().clone(),
                    incarnation: m.incarnation(),
                    token,
                };
                (timer, delay)
            })
            .collect();
        self.recorder.timers.extend(rearmed);
    }

    fn drain(&mut self, now: Duration) -> Effects {
        self.rearm_suspicions();
        let timers = self
            .recorder
            .timers
            .drain(..)
            .map(|(timer, delay)| TimerRequest {
                due: now.saturating_add(delay),
                timer,
                delay,
            })
            .collect();
        Effects {
            datagrams: core::mem::take(&mut self.recorder.datagrams),
            timers,
            changes: core::mem::take(&mut self.recorder.changes),
        }
    }
}
