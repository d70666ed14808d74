//! The checker of group consumption: from the history's `GroupStart` / `GroupPoll` /
//! `GroupCommit` events and the final reads it proves that the group never went back behind an
//! acknowledged commit, that its members together read every record of the final log
//! (at-least-once), and that every record a member polled is the one the log holds there.
//! Records read more than once (re-delivery after a rebalance) are counted, not gated.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::common::history::{parse_value, Event, PartitionRead, Report, ValueId};

/// Gate names of [`check_group`], each declared (listed with 0) in every report.
pub(crate) const GROUP_GATES: [&str; 3] = [
    "group_commit_backwards",
    "group_missed_records",
    "group_polls_inconsistent",
];

/// The highest commit of a partition acknowledged so far: `(offset, member, acked_at)`.
type Highest = (u64, u32, Duration);

/// Per partition: acknowledgement times in order, each with the highest commit acknowledged up
/// to then.
fn commits_by_partition(events: &[Event]) -> HashMap<u32, Vec<(Duration, Highest)>> {
    let mut acked: HashMap<u32, Vec<(Duration, u64, u32)>> = HashMap::new();
    for e in events {
        if let Event::GroupCommit {
            at,
            member,
            partition,
            offset,
            ..
        } = e
        {
            acked
                .entry(*partition)
                .or_default()
                .push((*at, *offset, *member));
        }
    }
    acked
        .into_iter()
        .map(|(p, mut list)| {
            list.sort_by_key(|(at, _, _)| *at);
            let mut highest: Option<Highest> = None;
            let prefix = list
                .into_iter()
                .map(|(at, offset, member)| {
                    let h = match highest {
                        Some(h) if h.0 >= offset => h,
                        _ => (offset, member, at),
                    };
                    highest = Some(h);
                    (at, h)
                })
                .collect();
            (p, prefix)
        })
        .collect()
}

/// Checks the group's events against the final reads (`finals[p]` = every record of `p`).
pub(crate) fn check_group(events: &[Event], finals: &BTreeMap<u32, PartitionRead>) -> Report {
    let mut r = Report::default();
    for g in GROUP_GATES {
        r.gate(g);
    }

    // A start must not be below a commit acknowledged strictly before the start was asked for.
    let commits = commits_by_partition(events);
    // Starts asked after some commit of their partition was acknowledged (compared with it).
    let (mut starts, mut starts_after_commits) = (0u64, 0u64);
    for e in events {
        let Event::GroupStart {
            at,
            invoked_at,
            member,
            partition,
            offset,
        } = e
        else {
            continue;
        };
        starts += 1;
        let Some(list) = commits.get(partition) else {
            continue;
        };
        let before = list.partition_point(|(acked, _)| acked < invoked_at);
        let Some((_, (highest, by, acked))) = before.checked_sub(1).map(|i| list[i]) else {
            continue;
        };
        starts_after_commits += 1;
        if offset.unwrap_or(0) < highest {
            r.violation(
                "group_commit_backwards",
                format!(
                    "member {member} p{partition}: start asked at {invoked_at:?} (answered {at:?}) is {offset:?}, but member {by} had a commit of {highest} acknowledged by {acked:?}"
                ),
            );
        }
    }

    // Polls: each continues where the member's previous poll of the partition (or its start)
    // ended, with consecutive offsets, and every value is the final log's value there.
    let final_at: HashMap<(u32, u64), Option<ValueId>> = finals
        .iter()
        .flat_map(|(p, recs)| recs.iter().map(move |(o, v)| ((*p, *o), parse_value(v))))
        .collect();
    let mut next_from: HashMap<(u32, u32), u64> = HashMap::new();
    let mut times_polled: HashMap<(u32, u64), u64> = HashMap::new();
    let (mut polls, mut polled) = (0u64, 0u64);
    for e in events {
        match e {
            Event::GroupStart {
                member,
                partition,
                offset,
                ..
            } => {
                next_from.insert((*member, *partition), offset.unwrap_or(0));
            }
            Event::GroupPoll {
                at,
                member,
                partition,
                from,
                records,
            } => {
                polls += 1;
                let key = (*member, *partition);
                match next_from.get(&key) {
                    Some(want) if want == from => {}
                    want => r.violation(
                        "group_polls_inconsistent",
                        format!("member {member} p{partition} at {at:?}: polled from {from}, its start or previous poll ended at {want:?}"),
                    ),
                }
                let mut expect = *from;
                for (o, id) in records {
                    polled += 1;
                    *times_polled.entry((*partition, *o)).or_default() += 1;
                    if *o != expect {
                        r.violation(
                            "group_polls_inconsistent",
                            format!("member {member} p{partition} at {at:?}: got offset {o} where {expect} was next"),
                        );
                    }
                    expect = o + 1;
                    let in_log = final_at.get(&(*partition, *o));
                    if id.is_none() || in_log != Some(id) {
                        r.violation(
                            "group_polls_inconsistent",
                            format!("member {member} polled {id:x?} at p{partition}@{o} at {at:?}; the final log has {in_log:x?}"),
                        );
                    }
                }
                next_from.insert(key, expect);
            }
            _ => {}
        }
    }

    // At-least-once: every offset of the final log was polled by some member.
    for (p, recs) in finals {
        let missed: Vec<u64> = recs
            .iter()
            .map(|(o, _)| *o)
            .filter(|o| !times_polled.contains_key(&(*p, *o)))
            .collect();
        for (lo, hi) in ranges(&missed) {
            r.violation(
                "group_missed_records",
                format!(
                    "p{p}: offsets {lo}..={hi} ({} records) never polled by the group",
                    hi - lo + 1
                ),
            );
            // The gate counts records; the example names the whole run once.
            *r.gates.entry("group_missed_records").or_default() += hi - lo;
        }
    }

    let count = |pred: fn(&Event) -> bool| events.iter().filter(|e| pred(e)).count() as u64;
    r.stats.insert("group_starts", starts);
    r.stats
        .insert("group_starts_after_commits", starts_after_commits);
    r.stats.insert("group_polls", polls);
    r.stats.insert("group_polled_records", polled);
    r.stats.insert(
        "group_redelivered_records",
        times_polled.values().map(|n| n - 1).sum(),
    );
    r.stats.insert(
        "group_commits",
        count(|e| matches!(e, Event::GroupCommit { .. })),
    );
    r
}

/// Sorted offsets as inclusive runs of consecutive values.
fn ranges(sorted: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for o in sorted {
        match out.last_mut() {
            Some((_, hi)) if *hi + 1 == *o => *hi = *o,
            _ => out.push((*o, *o)),
        }
    }
    out
}

/// A clean group history passes (a re-delivery is counted, a start racing a commit is not a
/// regression); a bad one counts each kind of group violation.
#[test]
fn group_checker_counts_regressions_gaps_and_inconsistent_polls() {
    use super::common::history::{value, value_id};
    let ms = Duration::from_millis;
    let id = |s: u64| Some(value_id(1, s));
    let finals = BTreeMap::from([(0, (0..8).map(|s| (s, value(1, s, 64))).collect())]);
    let start = |member, invoked: u64, offset| Event::GroupStart {
        at: ms(invoked + 10),
        invoked_at: ms(invoked),
        member,
        partition: 0,
        offset,
    };
    let poll = |member, from, records| Event::GroupPoll {
        at: ms(1_000),
        member,
        partition: 0,
        from,
        records,
    };
    let commit = |invoked: u64, at: u64, offset| Event::GroupCommit {
        at: ms(at),
        invoked_at: ms(invoked),
        member: 0,
        partition: 0,
        offset,
    };
    let head = vec![
        start(0, 900, None),
        poll(0, 0, vec![(0, id(0)), (1, id(1)), (2, id(2))]),
        commit(1_050, 1_100, 2),
        commit(1_250, 1_350, 3),
    ];

    // Member 1's start was asked while the commit of 3 was in flight: 2 is a fine answer, and
    // offset 2 is read twice.
    let mut clean = head.clone();
    clean.extend([
        start(1, 1_300, Some(2)),
        poll(1, 2, (2..8).map(|s| (s, id(s))).collect()),
    ]);
    let r = check_group(&clean, &finals);
    assert_eq!(r.failed(), 0, "{}", r.render());
    assert_eq!(r.stats["group_redelivered_records"], 1);
    assert_eq!(r.stats["group_commits"], 2);
    assert_eq!(r.stats["group_starts_after_commits"], 1);

    // Asked after the commit of 3 was acknowledged, the start is 2: backwards. Offset 3 has a
    // value the log does not have there, the next poll skips 4, and 4, 6, 7 are never read.
    let mut bad = head;
    bad.extend([
        start(1, 1_400, Some(2)),
        poll(1, 2, vec![(2, id(2)), (3, id(9))]),
        poll(1, 5, vec![(5, id(5))]),
    ]);
    let r = check_group(&bad, &finals);
    let want: BTreeMap<&str, u64> = BTreeMap::from([
        ("group_commit_backwards", 1),
        ("group_missed_records", 3),
        ("group_polls_inconsistent", 2),
    ]);
    assert_eq!(r.gates, want, "{}", r.render());
    assert_eq!(r.examples["group_missed_records"].len(), 2);
}
