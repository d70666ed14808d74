//! Who leads a partition after its leader is gone (`docs/cluster.md`, Elections).
//!
//! The controller picks the first replica, in assignment order, that is both alive and in the
//! in-sync set: the in-sync set holds every batch acknowledged with `acks=all`, so electing from
//! it loses none of them. When no in-sync replica is alive the partition stays offline, unless its
//! topic opted into unclean election, which may lose acknowledged data and says so.

/// The outcome of an election for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// `node_id` leads at `epoch` (the previous epoch + 1); nothing acknowledged is lost.
    Clean {
        /// The new leader.
        node_id: u32,
        /// Its leader epoch.
        epoch: u32,
    },
    /// No live in-sync replica; `node_id` (not in sync) leads at `epoch` because the topic allows
    /// unclean election. Records acknowledged after it fell out of sync are lost.
    Unclean {
        /// The new leader (was not in sync).
        node_id: u32,
        /// Its leader epoch.
        epoch: u32,
    },
    /// No eligible replica is alive: the partition is offline until one returns.
    Offline,
}

/// Elects a leader for a partition whose assignment is `replicas` (preferred leader first) and
/// whose in-sync set is `isr`, at `current_epoch`. `alive` says whether a node is up; the current
/// leader is not excluded by itself, so this also answers "keep the leader" when it is alive and
/// first in order.
pub fn elect(
    replicas: &[u32],
    isr: &[u32],
    current_epoch: u32,
    alive: impl Fn(u32) -> bool,
    unclean_allowed: bool,
) -> Election {
    let epoch = current_epoch.saturating_add(1);
    if let Some(&node_id) = replicas.iter().find(|n| isr.contains(n) && alive(**n)) {
        return Election::Clean { node_id, epoch };
    }
    if unclean_allowed {
        if let Some(&node_id) = replicas.iter().find(|n| alive(**n)) {
            return Election::Unclean { node_id, epoch };
        }
    }
    Election::Offline
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_live_in_sync_replica_in_assignment_order() {
        let up = |n: u32| n != 1;
        assert_eq!(
            elect(&[1, 2, 3], &[1, 3, 2], 4, up, false),
            Election::Clean {
                node_id: 2,
                epoch: 5
            }
        );
    }

    #[test]
    fn out_of_sync_replicas_never_win_a_clean_election() {
        let up = |n: u32| n == 3;
        assert_eq!(elect(&[1, 2, 3], &[1, 2], 0, up, false), Election::Offline);
        assert_eq!(
            elect(&[1, 2, 3], &[1, 2], 0, up, true),
            Election::Unclean {
                node_id: 3,
                epoch: 1
            }
        );
    }

    #[test]
    fn nobody_alive_is_offline_even_when_unclean_is_allowed() {
        assert_eq!(
            elect(&[1, 2], &[1, 2], 9, |_| false, true),
            Election::Offline
        );
    }
}
