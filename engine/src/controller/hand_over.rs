//! Leadership hand-overs a partition leader asks for (AlterInSync v1 with an empty set and a
//! `successor`): the analytics shard of the busiest node names a cooler in-sync replica to
//! lead one of its partitions (`docs/analytics-shard.md`). The controller treats it as a hint:
//! it commits the successor as leader at the next epoch only when the metadata still agrees
//! (the asker leads at the epoch it names, the successor is another live in-sync replica) and
//! the partition's hand-over history allows it, so hints can never make leadership flap:
//! - at most one hand-over of a partition per `move_cooldown_s` (30 minutes by default);
//! - never back to the node it was handed away from within `no_return_s` (2 hours).
//!
//! The history lives in the controller leader's memory: a new controller leader starts with an
//! empty one (hints are rare, and each node's analytics shard keeps its own cooldowns too).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use meta::{Command, MetadataState};

/// Hand-overs remembered at most; the oldest is forgotten first beyond it.
pub const HISTORY_MAX: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct Past {
    at: Instant,
    from: u64,
}

/// Recent hand-overs per partition.
#[derive(Debug)]
pub struct HandOvers {
    cooldown: Duration,
    no_return: Duration,
    past: HashMap<(String, u32), Past>,
}

impl HandOvers {
    /// The analytics decision settings' cooldowns (`move_cooldown_s`, `no_return_s`).
    pub fn new(cooldown: Duration, no_return: Duration) -> Self {
        HandOvers {
            cooldown,
            no_return,
            past: HashMap::new(),
        }
    }

    /// With the defaults of [`analytics::Config`].
    pub fn with_analytics_defaults() -> Self {
        let d = analytics::Config::default().decision;
        HandOvers::new(
            Duration::from_secs(d.move_cooldown_s),
            Duration::from_secs(d.no_return_s),
        )
    }

    /// The `SetLeader` that hands `topic`/`partition` from `asker` (leading at `leader_epoch`)
    /// to `successor`, or why not. Records the hand-over when it returns a command.
    #[allow(clippy::too_many_arguments)]
    pub fn command(
        &mut self,
        state: &MetadataState,
        live: &BTreeSet<u64>,
        topic: &str,
        partition: u32,
        asker: u64,
        leader_epoch: u32,
        successor: u64,
        now: Instant,
    ) -> Result<Command, String> {
        let ps = super::topics::led_by(state, topic, partition, asker, leader_epoch, "hand-over")?;
        if successor == asker {
            return Err(format!(
                "hand-over of {topic}/{partition} to its own leader {asker}"
            ));
        }
        if !ps.in_sync.contains(&successor) {
            return Err(format!(
                "node {successor} is not in the in-sync set {:?} of {topic}/{partition}; only an \
                 in-sync replica can lead",
                ps.in_sync
            ));
        }
        if !live.contains(&successor) {
            return Err(format!(
                "node {successor} is not live (down or suspected); {topic}/{partition} stays with \
                 node {asker}"
            ));
        }
        let key = (topic.to_string(), partition);
        if let Some(p) = self.past.get(&key) {
            let since = now.saturating_duration_since(p.at);
            if since < self.cooldown {
                return Err(format!(
                    "{topic}/{partition} was handed over {} s ago; at most one hand-over per {} s",
                    since.as_secs(),
                    self.cooldown.as_secs()
                ));
            }
            if p.from == successor && since < self.no_return {
                return Err(format!(
                    "{topic}/{partition} left node {successor} {} s ago; it does not return \
                     within {} s (no flapping)",
                    since.as_secs(),
                    self.no_return.as_secs()
                ));
            }
        }
        if self.past.len() >= HISTORY_MAX && !self.past.contains_key(&key) {
            let oldest = self
                .past
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.past.remove(&k);
            }
        }
        self.past.insert(
            key,
            Past {
                at: now,
                from: asker,
            },
        );
        Ok(Command::SetLeader {
            topic: topic.to_string(),
            partition,
            leader: successor,
            leader_epoch: leader_epoch + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::topics::tests::test_state;

    fn live(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn hands_over_to_a_live_in_sync_replica_once_per_cooldown_and_never_straight_back() {
        let s = test_state(3, 3, 1, 3);
        let p = s.topics["t"].partitions[0].clone();
        let (leader, epoch) = (p.leader, p.leader_epoch);
        let other = *p.in_sync.iter().find(|n| **n != leader).expect("rf 3");
        let third = *p
            .in_sync
            .iter()
            .find(|n| **n != leader && **n != other)
            .expect("rf 3");
        let all = live(&[1, 2, 3]);
        let mut h = HandOvers::new(Duration::from_secs(1800), Duration::from_secs(7200));
        let t0 = Instant::now();
        // Stale asker or epoch, itself, not live: refused, nothing recorded.
        let stale = h.command(&s, &all, "t", 0, other, epoch, third, t0);
        assert!(stale.unwrap_err().contains("stale"));
        let old = h.command(&s, &all, "t", 0, leader, epoch + 1, other, t0);
        assert!(old.unwrap_err().contains("stale"));
        let own = h.command(&s, &all, "t", 0, leader, epoch, leader, t0);
        assert!(own.unwrap_err().contains("own leader"));
        let down = h.command(
            &s,
            &live(&[leader, third]),
            "t",
            0,
            leader,
            epoch,
            other,
            t0,
        );
        assert!(down.unwrap_err().contains("not live"));
        assert!(h
            .command(&s, &all, "t", 9, leader, epoch, other, t0)
            .is_err());
        // Accepted: the successor at the next epoch.
        let cmd = h
            .command(&s, &all, "t", 0, leader, epoch, other, t0)
            .unwrap();
        assert_eq!(
            cmd,
            Command::SetLeader {
                topic: "t".into(),
                partition: 0,
                leader: other,
                leader_epoch: epoch + 1
            }
        );
        // Once committed the successor leads; asking again within the cooldown is refused.
        let mut after = s.clone();
        let q = &mut after.topics.get_mut("t").unwrap().partitions[0];
        q.leader = other;
        q.leader_epoch = epoch + 1;
        let soon = t0 + Duration::from_secs(60);
        let again = h.command(&after, &all, "t", 0, other, epoch + 1, third, soon);
        assert!(again.unwrap_err().contains("at most one hand-over"));
        // After the cooldown: to a third node yes, back to where it came from not yet.
        let later = t0 + Duration::from_secs(1900);
        let back = h.command(&after, &all, "t", 0, other, epoch + 1, leader, later);
        assert!(back.unwrap_err().contains("no flapping"));
        assert!(h
            .command(&after, &all, "t", 0, other, epoch + 1, third, later)
            .is_ok());
    }

    #[test]
    fn not_in_sync_is_refused() {
        let mut s = test_state(3, 3, 1, 3);
        let p = &mut s.topics.get_mut("t").unwrap().partitions[0];
        let leader = p.leader;
        let out = *p.replicas.iter().find(|n| **n != leader).expect("rf 3");
        p.in_sync.retain(|n| *n != out);
        let epoch = p.leader_epoch;
        let mut h = HandOvers::with_analytics_defaults();
        let r = h.command(
            &s,
            &live(&[1, 2, 3]),
            "t",
            0,
            leader,
            epoch,
            out,
            Instant::now(),
        );
        assert!(r.unwrap_err().contains("not in the in-sync set"));
    }
}
