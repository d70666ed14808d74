//! Known-answer tests of the leader's rules.

use super::*;

fn epochs(pairs: &[(u32, u64)]) -> LeaderEpochs {
    LeaderEpochs::from_entries(
        pairs
            .iter()
            .map(|&(epoch, start_offset)| EpochEntry {
                epoch,
                start_offset,
            })
            .collect(),
    )
    .unwrap()
}

fn local(end: u64, durable: u64, history: &[(u32, u64)]) -> LocalLog {
    LocalLog {
        log_start_offset: 0,
        log_end_offset: end,
        durable_offset: durable,
        high_watermark: 0,
        epochs: epochs(history),
    }
}

fn init(epoch: u32, in_sync: &[u32]) -> LeaderInit {
    LeaderInit {
        node_id: 1,
        leader_epoch: epoch,
        replicas: vec![1, 2, 3],
        in_sync: in_sync.to_vec(),
        isr_version: 7,
    }
}

fn config() -> LeaderConfig {
    LeaderConfig {
        replica_lag_max_ms: 100,
        min_insync: 2,
    }
}

/// Leader 1 at epoch 5 over epochs 1 at 0 and 3 at 10, log end 20, all durable.
fn leader() -> LeaderState {
    LeaderState::new(
        init(5, &[1, 2, 3]),
        local(20, 20, &[(1, 0), (3, 10)]),
        config(),
        0,
    )
    .unwrap()
}

fn fetch(replica: u32, offset: u64, last: Option<u32>, durable: u64) -> FetchRequest {
    FetchRequest {
        replica,
        leader_epoch: 5,
        fetch_offset: offset,
        last_fetched_epoch: last,
        durable_offset: durable,
    }
}

fn reply(l: &mut LeaderState, req: FetchRequest, now_ms: u64) -> Result<FetchReply, FetchRefusal> {
    l.on_fetch(&req, now_ms).map(|a| {
        assert_eq!(
            (a.leader_epoch, a.fetch_offset, a.last_fetched_epoch),
            (5, req.fetch_offset, req.last_fetched_epoch),
            "answers echo the request"
        );
        a.reply
    })
}

#[test]
fn becoming_leader_starts_the_epoch_at_the_log_end() {
    let l = leader();
    assert_eq!(l.local().epochs, epochs(&[(1, 0), (3, 10), (5, 20)]));
    assert_eq!(l.epoch_start_offset(), 20);
    assert_eq!(l.high_watermark(), 0);
    let err = LeaderState::new(
        init(3, &[1]),
        local(20, 20, &[(1, 0), (3, 10)]),
        config(),
        0,
    );
    assert_eq!(
        err.unwrap_err(),
        BecomeLeaderError::EpochNotNew {
            epoch: 3,
            latest: 3
        }
    );
    let err = LeaderState::new(init(5, &[2, 3]), local(0, 0, &[]), config(), 0);
    assert_eq!(
        err.unwrap_err(),
        BecomeLeaderError::Membership(MembershipError::LeaderMissing {
            leader: 1,
            what: "in-sync set"
        })
    );
    let err = LeaderState::new(init(5, &[1, 4]), local(0, 0, &[]), config(), 0);
    assert_eq!(
        err.unwrap_err(),
        BecomeLeaderError::Membership(MembershipError::NotReplica { node_id: 4 })
    );
    let mut bad = local(5, 9, &[(1, 0)]);
    bad.high_watermark = 3;
    assert!(matches!(
        LeaderState::new(init(5, &[1]), bad, config(), 0),
        Err(BecomeLeaderError::LocalLog(LocalLogError::Offsets { .. }))
    ));
}

#[test]
fn a_new_leader_must_have_its_whole_log_on_disk() {
    let mut l = local(20, 12, &[(1, 0)]);
    l.high_watermark = 18;
    assert_eq!(
        LeaderState::new(init(2, &[1]), l.clone(), config(), 0).unwrap_err(),
        BecomeLeaderError::NotDurable {
            durable_offset: 12,
            log_end_offset: 20
        }
    );
    l.durable_offset = 20;
    let l = LeaderState::new(init(2, &[1]), l, config(), 0).unwrap();
    assert_eq!(l.high_watermark(), 18, "it keeps the watermark it learned");
}

#[test]
fn divergence_follows_the_epoch_history() {
    let mut l = leader();
    let div = |epoch, end_offset| Ok(FetchReply::Diverging { epoch, end_offset });
    // Epoch 2 is unknown here: the floor epoch 1 ends at 10.
    assert_eq!(reply(&mut l, fetch(2, 15, Some(2), 0), 0), div(1, 10));
    // Epoch 3 ends at 20 (where 5 starts), so offset 22 in epoch 3 diverges.
    assert_eq!(reply(&mut l, fetch(2, 22, Some(3), 0), 0), div(3, 20));
    // Ahead of the leader in its own epoch: back to its log end.
    assert_eq!(reply(&mut l, fetch(2, 25, Some(5), 0), 0), div(5, 20));
    // An epoch above every known one.
    assert_eq!(reply(&mut l, fetch(2, 25, Some(9), 0), 0), div(5, 20));
    // Matching positions get records.
    assert!(matches!(
        reply(&mut l, fetch(2, 12, Some(3), 0), 0),
        Ok(FetchReply::Records { .. })
    ));
    assert!(matches!(
        reply(&mut l, fetch(3, 0, None, 0), 0),
        Ok(FetchReply::Records { .. })
    ));
}

#[test]
fn refusals_are_typed() {
    let mut l = leader();
    assert_eq!(
        reply(&mut l, fetch(4, 0, None, 0), 0),
        Err(FetchRefusal::NotReplica { replica: 4 })
    );
    assert_eq!(
        reply(&mut l, fetch(1, 0, None, 0), 0),
        Err(FetchRefusal::NotReplica { replica: 1 })
    );
    let mut stale = fetch(2, 0, None, 0);
    stale.leader_epoch = 4;
    assert_eq!(
        l.on_fetch(&stale, 0),
        Err(FetchRefusal::FencedLeaderEpoch {
            request_epoch: 4,
            leader_epoch: 5
        })
    );
    stale.leader_epoch = 6;
    assert_eq!(
        l.on_fetch(&stale, 0),
        Err(FetchRefusal::UnknownLeaderEpoch {
            request_epoch: 6,
            leader_epoch: 5
        })
    );
    assert_eq!(
        reply(&mut l, fetch(2, 3, None, 0), 0),
        Err(FetchRefusal::NoLastFetchedEpoch {
            fetch_offset: 3,
            log_start_offset: 0
        })
    );
    assert!(l.on_log_start(12));
    assert_eq!(l.local().epochs, epochs(&[(3, 12), (5, 20)]));
    assert_eq!(
        reply(&mut l, fetch(2, 0, None, 0), 0),
        Err(FetchRefusal::OffsetOutOfRange {
            fetch_offset: 0,
            log_start_offset: 12,
            log_end_offset: 20
        })
    );
    assert_eq!(
        l.follower(2).unwrap().log_end_offset,
        None,
        "refusals record nothing"
    );
}

#[test]
fn high_watermark_is_the_lowest_durable_offset_in_sync_and_never_goes_back() {
    let mut l = leader();
    l.on_append(30);
    assert_eq!(l.on_durable(28), 0, "followers have not reported yet");
    reply(&mut l, fetch(2, 30, Some(5), 25), 1).unwrap();
    assert_eq!(l.high_watermark(), 0);
    let r = reply(&mut l, fetch(3, 26, Some(5), 22), 1).unwrap();
    assert_eq!(r, FetchReply::Records { high_watermark: 22 });
    // A delayed, older fetch reports less: the watermark stays.
    reply(&mut l, fetch(3, 21, Some(5), 18), 2).unwrap();
    assert_eq!(l.high_watermark(), 22);
    // Durable offsets are capped at the fetch offset.
    reply(&mut l, fetch(3, 27, Some(5), 99), 3).unwrap();
    assert_eq!(l.follower(3).unwrap().durable_offset, 27);
    assert_eq!(l.high_watermark(), 25);
    assert_eq!(l.on_durable(30), 25);
}

#[test]
fn acks_all_needs_the_leader_enough_replicas_and_the_high_watermark() {
    let mut l = leader();
    l.on_append(30);
    reply(&mut l, fetch(2, 30, Some(5), 30), 1).unwrap();
    reply(&mut l, fetch(3, 30, Some(5), 24), 1).unwrap();
    assert!(!l.acks_all_satisfied(20), "the leader has not synced");
    l.on_durable(30);
    assert_eq!(l.high_watermark(), 24);
    assert!(l.acks_all_satisfied(23));
    // Durable on leader and replica 2 (min_insync 2) but not on in-sync replica 3, which the
    // controller could elect: not yet.
    assert!(!l.acks_all_satisfied(24));
    assert!(l.check_min_insync().is_ok());
}

#[test]
fn lagging_followers_leave_and_caught_up_ones_join_through_the_controller() {
    let mut l = leader();
    l.on_append(30);
    l.on_durable(30);
    reply(&mut l, fetch(2, 30, Some(5), 30), 50).unwrap();
    reply(&mut l, fetch(3, 20, Some(5), 20), 50).unwrap();
    assert_eq!(l.poll_isr_change(100), None, "nobody lags yet");
    // Replica 3 has not reached the log end since the start (0 ms); at 101 ms it lags.
    let shrink = l.poll_isr_change(101).unwrap();
    assert_eq!(
        shrink,
        IsrChange {
            leader_epoch: 5,
            isr_version: 7,
            in_sync: vec![1, 2]
        }
    );
    assert_eq!(l.poll_isr_change(102), None, "one proposal at a time");
    assert_eq!(l.pending_isr_change(), Some(&shrink));
    assert_eq!(l.high_watermark(), 20, "until committed, 3 still counts");
    assert_eq!(l.on_isr_committed(5, 7, &[1, 2]), Ok(false), "old version");
    assert_eq!(l.on_isr_committed(5, 8, &[1, 2]), Ok(true));
    assert_eq!(l.pending_isr_change(), None);
    assert_eq!(l.high_watermark(), 30);
    assert_eq!(l.check_min_insync(), Ok(()), "leader and replica 2 are two");
    // Replica 3 catches up on disk and joins.
    reply(&mut l, fetch(3, 30, Some(5), 30), 150).unwrap();
    let grow = l.poll_isr_change(150).unwrap();
    assert_eq!(grow.in_sync, vec![1, 2, 3]);
    assert_eq!(grow.isr_version, 8);
    // The controller removed replica 2 meanwhile (version 9): the join proposal is stale and
    // ends; the next poll proposes afresh from the committed set.
    assert_eq!(l.on_isr_committed(5, 9, &[1]), Ok(true));
    assert_eq!(l.pending_isr_change(), None);
    assert_eq!(l.poll_isr_change(150).unwrap().in_sync, vec![1, 2, 3]);
    assert_eq!(
        l.on_isr_committed(4, 10, &[1]),
        Err(IsrCommitError::OtherEpoch {
            committed_epoch: 4,
            leader_epoch: 5
        })
    );
    assert_eq!(
        l.on_isr_committed(5, 10, &[2]),
        Err(IsrCommitError::Membership(MembershipError::LeaderMissing {
            leader: 1,
            what: "in-sync set"
        }))
    );
}

#[test]
fn a_follower_behind_the_high_watermark_on_disk_does_not_join() {
    let mut l = LeaderState::new(init(5, &[1, 2]), local(20, 20, &[(1, 0)]), config(), 0).unwrap();
    reply(&mut l, fetch(2, 20, Some(5), 20), 10).unwrap();
    assert_eq!(l.high_watermark(), 20);
    // Replica 3 has every record but only 15 on disk.
    reply(&mut l, fetch(3, 20, Some(5), 15), 10).unwrap();
    assert_eq!(l.poll_isr_change(10), None);
    reply(&mut l, fetch(3, 20, Some(5), 20), 11).unwrap();
    assert_eq!(l.poll_isr_change(11).unwrap().in_sync, vec![1, 2, 3]);
}

#[test]
fn a_pending_join_holds_the_high_watermark_at_the_joiner() {
    let mut l = LeaderState::new(init(5, &[1, 2]), local(20, 20, &[(1, 0)]), config(), 0).unwrap();
    reply(&mut l, fetch(2, 20, Some(5), 20), 10).unwrap();
    reply(&mut l, fetch(3, 20, Some(5), 20), 10).unwrap();
    assert_eq!(l.poll_isr_change(10).unwrap().in_sync, vec![1, 2, 3]);
    l.on_append(40);
    l.on_durable(40);
    reply(&mut l, fetch(2, 40, Some(5), 40), 20).unwrap();
    assert_eq!(l.high_watermark(), 20, "replica 3 may already be in sync");
    reply(&mut l, fetch(3, 40, Some(5), 35), 20).unwrap();
    assert_eq!(l.high_watermark(), 35);
}

#[test]
fn steady_fetching_under_steady_produce_stays_in_sync() {
    let mut l = leader();
    let mut end = 20;
    // Every 60 ms the leader grows by 10 and the follower fetches what it had last time.
    for step in 1..20u64 {
        let behind = end;
        end += 10;
        l.on_append(end);
        reply(&mut l, fetch(2, behind, Some(5), behind), step * 60).unwrap();
        reply(&mut l, fetch(3, behind, Some(5), behind), step * 60).unwrap();
        assert_eq!(l.poll_isr_change(step * 60), None, "step {step}");
    }
}

#[test]
fn not_enough_replicas_counts_the_smaller_of_committed_and_pending() {
    let mut l = LeaderState::new(init(5, &[1, 2]), local(0, 0, &[]), config(), 0).unwrap();
    assert_eq!(l.check_min_insync(), Ok(()));
    let shrink = l.poll_isr_change(101).unwrap();
    assert_eq!(shrink.in_sync, vec![1]);
    assert_eq!(
        l.check_min_insync(),
        Err(NotEnoughReplicas {
            in_sync: 1,
            min_insync: 2
        })
    );
}

#[test]
fn a_joiner_needs_this_epochs_start_on_disk_even_above_the_high_watermark() {
    // Leader at epoch 5 from offset 20, having learned a high watermark of only 12.
    let mut start = local(20, 20, &[(1, 0)]);
    start.high_watermark = 12;
    let mut l = LeaderState::new(init(5, &[1, 2]), start, config(), 0).unwrap();
    assert_eq!(l.high_watermark(), 12);
    // Replica 3 has offsets up to 18 on disk: above the watermark, below the epoch start, where
    // the previous leader may have acknowledged records.
    reply(&mut l, fetch(3, 20, Some(1), 18), 10).unwrap();
    assert_eq!(l.poll_isr_change(10), None);
    reply(&mut l, fetch(3, 20, Some(1), 20), 11).unwrap();
    assert_eq!(l.poll_isr_change(11).unwrap().in_sync, vec![1, 2, 3]);
}
