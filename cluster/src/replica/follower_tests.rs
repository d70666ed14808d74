//! Known-answer tests of the follower's rules.

use super::*;

fn follower(end: u64, history: &[(u32, u64)]) -> FollowerState {
    let epochs = LeaderEpochs::from_entries(
        history
            .iter()
            .map(|&(epoch, start_offset)| EpochEntry {
                epoch,
                start_offset,
            })
            .collect(),
    )
    .unwrap();
    let local = LocalLog {
        log_start_offset: 0,
        log_end_offset: end,
        durable_offset: end,
        high_watermark: 0,
        epochs,
    };
    FollowerState::new(2, Some(1), 9, local).unwrap()
}

fn answer(f: &FollowerState, reply: FetchReply) -> FetchAnswer {
    let req = f.next_fetch().unwrap();
    FetchAnswer {
        leader_epoch: req.leader_epoch,
        fetch_offset: req.fetch_offset,
        last_fetched_epoch: req.last_fetched_epoch,
        reply,
    }
}

fn span(epoch: u32, base_offset: u64, next_offset: u64) -> BatchSpan {
    BatchSpan {
        epoch,
        base_offset,
        next_offset,
    }
}

#[test]
fn next_fetch_names_the_position_and_the_last_epoch() {
    let f = follower(8, &[(1, 0), (2, 5)]);
    assert_eq!(
        f.next_fetch(),
        Some(FetchRequest {
            replica: 2,
            leader_epoch: 9,
            fetch_offset: 8,
            last_fetched_epoch: Some(2),
            durable_offset: 8
        })
    );
    let mut f = f;
    assert!(f.on_leader_change(Some(2), 10), "this node now leads");
    assert_eq!(f.next_fetch(), None);
    assert!(f.on_leader_change(None, 11));
    assert_eq!(f.next_fetch(), None);
    assert!(
        !f.on_leader_change(Some(1), 10),
        "older metadata is ignored"
    );
    assert_eq!(f.leader_epoch(), 11);
}

#[test]
fn records_are_appended_with_their_epochs_and_the_watermark_is_clamped() {
    let mut f = follower(8, &[(1, 0), (2, 5)]);
    let a = answer(&f, FetchReply::Records { high_watermark: 30 });
    let batches = [span(2, 8, 10), span(7, 10, 12), span(9, 12, 13)];
    assert_eq!(
        f.on_answer(&a, &batches),
        Ok(Verdict::Append {
            epochs_changed: true
        })
    );
    assert_eq!(f.local().log_end_offset, 13);
    assert_eq!(f.local().high_watermark, 13, "never past the own log end");
    assert_eq!(
        f.local().epochs.entries(),
        &[
            EpochEntry {
                epoch: 1,
                start_offset: 0
            },
            EpochEntry {
                epoch: 2,
                start_offset: 5
            },
            EpochEntry {
                epoch: 7,
                start_offset: 10
            },
            EpochEntry {
                epoch: 9,
                start_offset: 12
            },
        ]
    );
    // The same answer again (a duplicate) finds the follower elsewhere.
    assert_eq!(
        f.on_answer(&a, &batches),
        Ok(Verdict::Ignore(IgnoreReason::StalePosition))
    );
    // An empty answer with a lower watermark changes nothing but is accepted.
    let a = answer(&f, FetchReply::Records { high_watermark: 4 });
    assert_eq!(
        f.on_answer(&a, &[span(9, 13, 14)]),
        Ok(Verdict::Append {
            epochs_changed: false
        })
    );
    assert_eq!(
        f.local().high_watermark,
        13,
        "the watermark never goes back"
    );
    f.on_durable(99);
    assert_eq!(
        f.local().durable_offset,
        14,
        "durable is capped at the log end"
    );
}

#[test]
fn answers_from_other_epochs_are_ignored() {
    let mut f = follower(8, &[(1, 0)]);
    let mut a = answer(&f, FetchReply::Records { high_watermark: 8 });
    a.leader_epoch = 8;
    assert_eq!(
        f.on_answer(&a, &[span(8, 8, 9)]),
        Ok(Verdict::Ignore(IgnoreReason::OtherLeaderEpoch {
            answer_epoch: 8,
            leader_epoch: 9
        }))
    );
    assert_eq!(f.local().log_end_offset, 8);
}

#[test]
fn malformed_batches_are_refused_without_changing_anything() {
    let mut f = follower(8, &[(1, 0), (2, 5)]);
    let a = answer(&f, FetchReply::Records { high_watermark: 8 });
    assert_eq!(
        f.on_answer(&a, &[span(2, 9, 10)]),
        Err(AnswerError::NotContiguous {
            index: 0,
            base_offset: 9,
            next_offset: 10,
            expected: 8
        })
    );
    assert_eq!(
        f.on_answer(&a, &[span(2, 8, 9), span(10, 9, 10)]),
        Err(AnswerError::BatchEpoch {
            index: 1,
            epoch: 10,
            min: 2,
            leader_epoch: 9
        })
    );
    assert_eq!(
        f.on_answer(&a, &[span(3, 8, 9), span(2, 9, 10)]),
        Err(AnswerError::BatchEpoch {
            index: 1,
            epoch: 2,
            min: 3,
            leader_epoch: 9
        })
    );
    assert!(matches!(
        f.on_answer(&a, &[span(3, 8, 8)]),
        Err(AnswerError::NotContiguous { .. })
    ));
    assert_eq!(f.local().log_end_offset, 8);
    assert_eq!(f.local().epochs.latest_epoch(), Some(2));
}

#[test]
fn diverging_truncates_to_the_earlier_of_both_epoch_ends() {
    // The follower has epoch 2 from 5 to 8 that the leader never had; the leader's epoch 1 runs
    // to 10. The cut is where the follower's own epoch 1 ends: 5, not 8.
    let mut f = follower(8, &[(1, 0), (2, 5)]);
    let a = answer(
        &f,
        FetchReply::Diverging {
            epoch: 1,
            end_offset: 10,
        },
    );
    assert_eq!(f.on_answer(&a, &[]), Ok(Verdict::Truncate { offset: 5 }));
    assert_eq!(f.local().epochs.latest_epoch(), Some(1));
    assert_eq!(f.local().durable_offset, 5);

    // Both have epoch 3; the leader's ends at 12, the follower's at 15.
    let mut f = follower(20, &[(1, 0), (3, 10), (4, 15)]);
    let a = answer(
        &f,
        FetchReply::Diverging {
            epoch: 3,
            end_offset: 12,
        },
    );
    assert_eq!(f.on_answer(&a, &[]), Ok(Verdict::Truncate { offset: 12 }));
    assert_eq!(f.local().epochs.latest_epoch(), Some(3));

    // The follower never saw epoch 2: it cuts to where its next epoch (3) starts and asks again.
    let mut f = follower(20, &[(1, 0), (3, 10)]);
    let a = answer(
        &f,
        FetchReply::Diverging {
            epoch: 2,
            end_offset: 14,
        },
    );
    assert_eq!(f.on_answer(&a, &[]), Ok(Verdict::Truncate { offset: 10 }));
    assert_eq!(f.next_fetch().unwrap().last_fetched_epoch, Some(1));

    // An empty latest epoch (a deposed leader that wrote nothing) is dropped at the same offset.
    let mut f = follower(10, &[(1, 0), (4, 10)]);
    let a = answer(
        &f,
        FetchReply::Diverging {
            epoch: 1,
            end_offset: 30,
        },
    );
    assert_eq!(f.on_answer(&a, &[]), Ok(Verdict::Truncate { offset: 10 }));
    assert_eq!(f.local().epochs.latest_epoch(), Some(1));
}

#[test]
fn truncation_below_the_log_start_is_refused() {
    let mut local = follower(20, &[(1, 0), (3, 10)]).into_local();
    local.log_start_offset = 12;
    local.epochs.truncate_from_start(12);
    let mut f = FollowerState::new(2, Some(1), 9, local).unwrap();
    let a = answer(
        &f,
        FetchReply::Diverging {
            epoch: 3,
            end_offset: 11,
        },
    );
    assert_eq!(
        f.on_answer(&a, &[]),
        Err(AnswerError::BelowLogStart {
            offset: 11,
            log_start_offset: 12
        })
    );
}

#[test]
fn a_log_without_covering_epochs_is_refused() {
    let local = LocalLog {
        log_start_offset: 0,
        log_end_offset: 5,
        durable_offset: 5,
        high_watermark: 9,
        epochs: LeaderEpochs::new(),
    };
    assert_eq!(
        FollowerState::new(2, None, 0, local).unwrap_err(),
        LocalLogError::EpochsDoNotCover {
            log_start_offset: 0,
            log_end_offset: 5
        }
    );
}
