//! Properties of the replication bookkeeping over generated logs (proptest, 1,000 cases each).

use cluster::{
    BatchSpan, EpochEntry, FetchReply, FetchRequest, FollowerState, LeaderConfig, LeaderEpochs,
    LeaderInit, LeaderState, LocalLog, Verdict, LEADER_EPOCHS_FILE_BYTES_MAX,
};
use proptest::prelude::*;

/// A model log: the epoch of each offset (non-decreasing).
fn history_of(log: &[u32]) -> LeaderEpochs {
    let mut h = LeaderEpochs::new();
    for (o, &e) in log.iter().enumerate() {
        h.assign(e, o as u64).unwrap();
    }
    h
}

/// Non-decreasing epochs from `first` on, `len` records, runs of 1..=4.
fn epoch_log(first: u32, len: usize) -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::vec((0u32..3, 1usize..=4), 0..=len).prop_map(move |runs| {
        let mut epoch = first;
        let mut log = Vec::new();
        for (step, n) in runs {
            epoch += step;
            log.extend(std::iter::repeat_n(epoch, n));
        }
        log
    })
}

fn local(log: &[u32]) -> LocalLog {
    LocalLog {
        log_start_offset: 0,
        log_end_offset: log.len() as u64,
        durable_offset: log.len() as u64,
        high_watermark: 0,
        epochs: history_of(log),
    }
}

/// A model log of (epoch, payload) records.
type Log = Vec<(u32, u64)>;

/// (epoch, payload) logs of a leader and a follower: `shared` in common, then each its own tail.
/// Tail epochs are lifted above the shared ones, the leader's even and the follower's odd, since
/// two leaders never share an epoch.
fn diverged(shared: &[u32], leader_tail: &[u32], follower_tail: &[u32]) -> (Log, Log) {
    let base = shared.last().copied().unwrap_or(1);
    let lift = |tail: &[u32], parity: u32| -> Vec<(u32, u64)> {
        tail.iter()
            .enumerate()
            .map(|(i, e)| (2 * (base + e + 1) + parity, 1000 + i as u64))
            .collect()
    };
    let common: Vec<(u32, u64)> = shared
        .iter()
        .enumerate()
        .map(|(i, e)| (*e, i as u64))
        .collect();
    let mut leader = common.clone();
    let mut follower = common;
    leader.extend(lift(leader_tail, 0));
    follower.extend(lift(follower_tail, 1));
    (leader, follower)
}

fn epochs_of(log: &[(u32, u64)]) -> Vec<u32> {
    log.iter().map(|r| r.0).collect()
}

/// One single-record batch per offset from `from` on.
fn spans_from(log: &[(u32, u64)], from: usize) -> Vec<BatchSpan> {
    (from..log.len())
        .map(|o| BatchSpan {
            epoch: log[o].0,
            base_offset: o as u64,
            next_offset: o as u64 + 1,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn file_round_trips_and_rejects_any_flipped_byte(log in epoch_log(0, 60), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let h = history_of(&log);
        let bytes = h.encode();
        prop_assert!(bytes.len() <= LEADER_EPOCHS_FILE_BYTES_MAX);
        prop_assert_eq!(LeaderEpochs::decode(&bytes), Ok(h));
        let mut bad = bytes.clone();
        bad[at.index(bytes.len())] ^= 1 << bit;
        prop_assert!(LeaderEpochs::decode(&bad).is_err());
        prop_assert!(LeaderEpochs::decode(&bytes[..at.index(bytes.len())]).is_err());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = LeaderEpochs::decode(&bytes);
    }

    /// `end_offset_for` against a brute-force reading of the model log.
    #[test]
    fn end_offset_for_matches_the_model(log in epoch_log(1, 60), asked in 0u32..40) {
        let h = history_of(&log);
        let end = log.len() as u64;
        let got = h.end_offset_for(asked, end);
        let latest = log.last().copied();
        let floor = log.iter().copied().filter(|e| *e <= asked).max();
        let next_start = log.iter().position(|e| *e > asked).map(|o| o as u64);
        let expected = match (latest, next_start) {
            (None, _) => None,
            (Some(l), _) if l == asked => Some((asked, end)),
            (Some(_), None) => None,
            (Some(_), Some(s)) => Some((floor.unwrap_or(asked), s)),
        };
        prop_assert_eq!(got.map(|e| (e.epoch, e.end_offset)), expected);
    }

    /// A leader and a follower that share a prefix and then diverged (epochs of their suffixes
    /// came from different leaders) converge by fetching: the follower ends with the leader's
    /// log and never cuts the shared prefix.
    #[test]
    fn a_diverged_follower_converges_without_cutting_the_shared_prefix(
        shared in epoch_log(1, 30),
        leader_tail in epoch_log(0, 30),
        follower_tail in epoch_log(0, 30),
    ) {
        let (leader_log, mut follower_log) = diverged(&shared, &leader_tail, &follower_tail);
        let top = leader_log.iter().chain(&follower_log).map(|r| r.0).max().unwrap_or(0);
        let init = LeaderInit {
            node_id: 1,
            leader_epoch: top + 1,
            replicas: vec![1, 2],
            in_sync: vec![1],
            isr_version: 0,
        };
        let mut leader =
            LeaderState::new(init, local(&epochs_of(&leader_log)), LeaderConfig::default(), 0)
                .unwrap();
        let mut follower =
            FollowerState::new(2, Some(1), top + 1, local(&epochs_of(&follower_log))).unwrap();
        for round in 1.. {
            prop_assert!(round < 200, "no convergence");
            let req: FetchRequest = follower.next_fetch().unwrap();
            let answer = leader.on_fetch(&req, round).unwrap();
            let from = answer.fetch_offset as usize;
            let spans = match answer.reply {
                FetchReply::Records { .. } => spans_from(&leader_log, from),
                FetchReply::Diverging { .. } => Vec::new(),
            };
            match follower.on_answer(&answer, &spans).unwrap() {
                Verdict::Append { .. } => {
                    follower_log.truncate(from);
                    follower_log.extend_from_slice(&leader_log[from..]);
                    break;
                }
                Verdict::Truncate { offset } => {
                    prop_assert!(offset as usize >= shared.len(), "cut the shared prefix at {}", offset);
                    follower_log.truncate(offset as usize);
                }
                Verdict::Ignore(why) => prop_assert!(false, "ignored a fresh answer: {:?}", why),
            }
        }
        prop_assert_eq!(&follower_log, &leader_log);
        prop_assert_eq!(&follower.local().epochs, &history_of(&epochs_of(&leader_log)));
    }

    /// Whatever followers report, in any order: the high watermark never decreases, never passes
    /// the leader's durable offset, and `acks=all` is only ever satisfied below it.
    #[test]
    fn high_watermark_is_monotonic_and_bounds_acks(events in proptest::collection::vec((0u8..5, 0u64..60, 0u64..60), 1..80)) {
        let init = LeaderInit { node_id: 1, leader_epoch: 1, replicas: vec![1, 2, 3], in_sync: vec![1, 2, 3], isr_version: 0 };
        let config = LeaderConfig { replica_lag_max_ms: 20, min_insync: 2 };
        let mut l = LeaderState::new(init, LocalLog::empty(), config, 0).unwrap();
        let (mut end, mut durable, mut now, mut version) = (0u64, 0u64, 0u64, 0u32);
        let mut prev_hw = 0;
        for (kind, a, b) in events {
            now += 7;
            match kind {
                0 => { end += a % 10; l.on_append(end); }
                1 => { durable = (durable + a % 10).min(end); l.on_durable(durable); }
                2 | 3 => {
                    let offset = a.min(end);
                    let req = FetchRequest { replica: u32::from(kind), leader_epoch: 1, fetch_offset: offset,
                        last_fetched_epoch: (offset > 0).then_some(1), durable_offset: b };
                    l.on_fetch(&req, now).unwrap();
                }
                _ => {
                    if let Some(change) = l.poll_isr_change(now) {
                        prop_assert!(change.in_sync.contains(&1));
                        if b % 2 == 0 {
                            version += 1;
                            prop_assert_eq!(l.on_isr_committed(1, version, &change.in_sync), Ok(true));
                        } else {
                            // A refusing controller commits the same set at a new version.
                            version += 1;
                            let same = l.in_sync().to_vec();
                            prop_assert_eq!(l.on_isr_committed(1, version, &same), Ok(true));
                            prop_assert!(l.pending_isr_change().is_none());
                        }
                    }
                }
            }
            let hw = l.high_watermark();
            prop_assert!(hw >= prev_hw);
            prop_assert!(hw <= durable);
            for o in 0..end {
                if l.acks_all_satisfied(o) {
                    prop_assert!(o < hw && o < durable);
                }
            }
            prev_hw = hw;
        }
    }

    /// Appending epochs in any valid order keeps the history strictly increasing and `epoch_of`
    /// right for every offset.
    #[test]
    fn history_tracks_the_epoch_of_every_offset(log in epoch_log(0, 80), cut in any::<prop::sample::Index>()) {
        let mut h = history_of(&log);
        for pair in h.entries().windows(2) {
            prop_assert!(pair[0].epoch < pair[1].epoch && pair[0].start_offset < pair[1].start_offset);
        }
        for (o, e) in log.iter().enumerate() {
            prop_assert_eq!(h.epoch_of(o as u64), Some(*e));
        }
        if !log.is_empty() {
            let at = cut.index(log.len());
            h.truncate_to(at as u64);
            prop_assert_eq!(&h, &history_of(&log[..at]));
            let mut from_start = history_of(&log);
            from_start.truncate_from_start(at as u64);
            prop_assert_eq!(from_start.entries().first().copied(), Some(EpochEntry { epoch: log[at], start_offset: at as u64 }));
            for (o, e) in log.iter().enumerate().skip(at) {
                prop_assert_eq!(from_start.epoch_of(o as u64), Some(*e));
            }
        }
    }
}
