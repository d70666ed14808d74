//! Known-answer tests for the assignors and the group state machine.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn subs(topics: &[&str]) -> BTreeSet<String> {
    topics.iter().map(|t| t.to_string()).collect()
}

fn members(list: &[(&str, &[&str])]) -> Subscriptions {
    list.iter().map(|(m, t)| (m.to_string(), subs(t))).collect()
}

fn counts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(t, c)| (t.to_string(), *c)).collect()
}

fn tps(topic: &str, parts: &[u32]) -> BTreeSet<Tp> {
    parts.iter().map(|&p| Tp::new(topic, p)).collect()
}

fn union(a: BTreeSet<Tp>, b: BTreeSet<Tp>) -> BTreeSet<Tp> {
    a.union(&b).cloned().collect()
}

#[test]
fn assignor_names_round_trip_and_unknown_names_are_refused() {
    for a in Assignor::ALL {
        assert_eq!(Assignor::parse(a.name()), Ok(a));
    }
    let err = Assignor::parse("roundrobin").unwrap_err();
    assert_eq!(
        err,
        GroupError::UnknownAssignor {
            name: "roundrobin".into()
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("\"range\"") && msg.contains("\"cooperative-sticky\""),
        "{msg}"
    );
    let long = "x".repeat(1000);
    match Assignor::parse(&long) {
        Err(GroupError::UnknownAssignor { name }) => assert_eq!(name.len(), NAME_BYTES_MAX),
        other => panic!("{other:?}"),
    }
}

#[test]
fn range_splits_five_partitions_three_and_two() {
    let m = members(&[("a", &["t"]), ("b", &["t"])]);
    let out = assign_range(&m, &counts(&[("t", 5)]));
    assert_eq!(out["a"], tps("t", &[0, 1, 2]));
    assert_eq!(out["b"], tps("t", &[3, 4]));
}

#[test]
fn range_works_per_topic_over_that_topic_subscribers() {
    let m = members(&[("a", &["x", "y"]), ("b", &["y"]), ("c", &["nothing-here"])]);
    let out = assign_range(&m, &counts(&[("x", 3), ("y", 3), ("unsubscribed", 9)]));
    assert_eq!(out["a"], union(tps("x", &[0, 1, 2]), tps("y", &[0, 1])));
    assert_eq!(out["b"], tps("y", &[2]));
    assert_eq!(
        out["c"],
        BTreeSet::new(),
        "every member appears, even with nothing"
    );
    assert_eq!(out.len(), 3);
}

#[test]
fn sticky_from_scratch_alternates_by_load_then_id() {
    let m = members(&[("a", &["t"]), ("b", &["t"])]);
    let out = assign_sticky(&m, &counts(&[("t", 6)]), &Assignments::new());
    assert_eq!(out["a"], tps("t", &[0, 2, 4]));
    assert_eq!(out["b"], tps("t", &[1, 3, 5]));
}

#[test]
fn sticky_third_member_takes_one_from_each_and_nothing_else_moves() {
    let two = members(&[("a", &["t"]), ("b", &["t"])]);
    let topics = counts(&[("t", 6)]);
    let before = assign_sticky(&two, &topics, &Assignments::new());
    let three = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
    let after = assign_sticky(&three, &topics, &before);
    assert_eq!(after["a"], tps("t", &[0, 2]));
    assert_eq!(after["b"], tps("t", &[1, 3]));
    assert_eq!(after["c"], tps("t", &[4, 5]));
}

#[test]
fn sticky_keeps_survivors_and_spreads_a_departed_members_partitions() {
    let topics = counts(&[("t", 9)]);
    let prev: Assignments = [
        ("a".to_string(), tps("t", &[0, 1, 2])),
        ("b".to_string(), tps("t", &[3, 4, 5])),
        ("gone".to_string(), tps("t", &[6, 7, 8])),
    ]
    .into();
    let out = assign_sticky(&members(&[("a", &["t"]), ("b", &["t"])]), &topics, &prev);
    assert!(out["a"].is_superset(&prev["a"]) && out["b"].is_superset(&prev["b"]));
    assert_eq!(out["a"].len() + out["b"].len(), 9);
    assert!(out["a"].len().abs_diff(out["b"].len()) <= 1);
    assert!(!out.contains_key("gone"));
}

#[test]
fn sticky_moves_partitions_of_an_unsubscribed_topic() {
    let topics = counts(&[("x", 2), ("y", 2)]);
    let prev: Assignments = [
        ("a".to_string(), union(tps("x", &[0, 1]), tps("y", &[0, 1]))),
        ("b".to_string(), BTreeSet::new()),
    ]
    .into();
    let m = members(&[("a", &["x"]), ("b", &["x", "y"])]);
    let out = assign_sticky(&m, &topics, &prev);
    assert_eq!(
        out["a"],
        tps("x", &[0, 1]),
        "a keeps x: two each is balanced"
    );
    assert_eq!(out["b"], tps("y", &[0, 1]));
}

#[test]
fn sticky_balances_along_a_chain_of_members() {
    // a can only take x, c only y; b both. Balance needs a → b (an x) and b → c (a y).
    let m = members(&[("a", &["x"]), ("b", &["x", "y"]), ("c", &["y"])]);
    let topics = counts(&[("x", 3), ("y", 3)]);
    let prev: Assignments = [
        ("a".to_string(), tps("x", &[0, 1, 2])),
        ("b".to_string(), tps("y", &[0, 1])),
        ("c".to_string(), tps("y", &[2])),
    ]
    .into();
    let out = assign_sticky(&m, &topics, &prev);
    assert_eq!(out["a"], tps("x", &[0, 1]));
    assert_eq!(out["b"], union(tps("x", &[2]), tps("y", &[0])));
    assert_eq!(out["c"], tps("y", &[1, 2]));
}

#[test]
fn sticky_gives_a_doubly_claimed_partition_to_the_first_claimant() {
    let m = members(&[("a", &["t"]), ("b", &["t"])]);
    let prev: Assignments = [
        ("a".to_string(), tps("t", &[0])),
        ("b".to_string(), tps("t", &[0, 1])),
    ]
    .into();
    let out = assign_sticky(&m, &counts(&[("t", 2)]), &prev);
    assert_eq!(out["a"], tps("t", &[0]));
    assert_eq!(out["b"], tps("t", &[1]));
}

#[test]
fn sticky_drops_vanished_partitions_and_missing_topics() {
    let m = members(&[("a", &["t", "missing"])]);
    let prev: Assignments = [(
        "a".to_string(),
        union(tps("t", &[0, 5]), tps("missing", &[0])),
    )]
    .into();
    let out = assign_sticky(&m, &counts(&[("t", 2)]), &prev);
    assert_eq!(out["a"], tps("t", &[0, 1]));
}

fn t(topics: &[&str]) -> BTreeSet<String> {
    subs(topics)
}

const SESSION_MS: u32 = 10_000;

#[test]
fn join_validates_its_inputs() {
    let mut g = Group::new("g");
    let sticky = Assignor::CooperativeSticky;
    assert_eq!(
        g.join("a", t(&["x"]), sticky, 999, 0),
        Err(GroupError::InvalidSessionTimeout {
            ms: 999,
            min: 1000,
            max: 300_000
        })
    );
    assert!(matches!(
        g.join("a", t(&["x"]), sticky, 300_001, 0),
        Err(GroupError::InvalidSessionTimeout { .. })
    ));
    let many: BTreeSet<String> = (0..257).map(|i| format!("t{i}")).collect();
    assert_eq!(
        g.join("a", many, sticky, SESSION_MS, 0),
        Err(GroupError::TooManyTopics {
            count: 257,
            max: 256
        })
    );
    assert!(matches!(
        g.join("", t(&["x"]), sticky, SESSION_MS, 0),
        Err(GroupError::InvalidMemberId { .. })
    ));
    assert!(matches!(
        g.join("a", t(&[""]), sticky, SESSION_MS, 0),
        Err(GroupError::InvalidTopicName { .. })
    ));
    assert!(
        g.is_empty() && g.generation() == 0,
        "refused joins change nothing"
    );
    g.join("a", t(&["x"]), sticky, SESSION_MS, 0).unwrap();
    assert_eq!(
        g.join("b", t(&["x"]), Assignor::Range, SESSION_MS, 0),
        Err(GroupError::InconsistentAssignor {
            group_assignor: sticky,
            requested: Assignor::Range
        })
    );
    assert_eq!(g.assignor(), Some(sticky));
}

#[test]
fn a_full_group_refuses_new_members_but_not_known_ones() {
    let mut g = Group::new("g");
    for i in 0..MEMBERS_MAX {
        g.join(
            &format!("m{i}"),
            BTreeSet::new(),
            Assignor::Range,
            SESSION_MS,
            0,
        )
        .unwrap();
    }
    assert_eq!(
        g.join("one-more", BTreeSet::new(), Assignor::Range, SESSION_MS, 0),
        Err(GroupError::GroupFull { max: MEMBERS_MAX })
    );
    let generation = g.generation();
    let again = g
        .join("m0", BTreeSet::new(), Assignor::Range, SESSION_MS, 5)
        .unwrap();
    assert_eq!(
        again.generation, generation,
        "a refresh with the same subscription keeps the generation"
    );
}

#[test]
fn revoke_before_reassign_with_commit_fencing() {
    let mut g = Group::new("g");
    g.join("a", t(&["x"]), Assignor::Range, SESSION_MS, 0)
        .unwrap();
    g.set_topics(counts(&[("x", 4)])).unwrap();
    let gen1 = g.generation();
    let a1 = g.sync("a", gen1, BTreeSet::new(), 0).unwrap();
    assert_eq!(a1.assigned, tps("x", &[0, 1, 2, 3]));
    assert_eq!(g.heartbeat("a", gen1, 1).unwrap(), Beat::Stable);

    let gen2 = g
        .join("b", t(&["x"]), Assignor::Range, SESSION_MS, 2)
        .unwrap()
        .generation;
    assert!(gen2 > gen1);
    // b's target is x2, x3, but a still owns them.
    assert_eq!(
        g.sync("b", gen2, BTreeSet::new(), 3).unwrap().assigned,
        BTreeSet::new()
    );
    assert_eq!(g.heartbeat("b", gen2, 3).unwrap(), Beat::Stable);
    assert_eq!(g.heartbeat("a", gen1, 4).unwrap(), Beat::SyncNeeded);
    // A stale generation is how a catches up; a newer one is refused.
    assert!(matches!(
        g.sync("a", gen2 + 1, a1.assigned.clone(), 5),
        Err(GroupError::IllegalGeneration { .. })
    ));
    let a2 = g.sync("a", gen1, a1.assigned.clone(), 5).unwrap();
    assert_eq!(
        (a2.generation, a2.assigned.clone()),
        (gen2, tps("x", &[0, 1]))
    );
    assert_eq!(
        g.heartbeat("a", gen2, 5).unwrap(),
        Beat::SyncNeeded,
        "a still holds the revoked x2 and x3"
    );
    // a still owns x3 until it reports it stopped: it may commit it even with its old generation.
    assert_eq!(g.check_commit("a", gen1, &Tp::new("x", 3)), Ok(()));
    assert!(matches!(
        g.check_commit("a", gen1 - 1, &Tp::new("y", 0)),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert_eq!(
        g.heartbeat("b", gen2, 6).unwrap(),
        Beat::Stable,
        "nothing released yet"
    );

    let a3 = g.sync("a", gen2, a2.assigned.clone(), 7).unwrap();
    assert_eq!(a3.assigned, tps("x", &[0, 1]));
    assert!(matches!(
        g.check_commit("a", gen1, &Tp::new("x", 3)),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert_eq!(
        g.heartbeat("b", gen2, 8).unwrap(),
        Beat::SyncNeeded,
        "x2 and x3 were released"
    );
    let b = g.sync("b", gen2, BTreeSet::new(), 9).unwrap();
    assert_eq!(b.assigned, tps("x", &[2, 3]));
    let info = g.members();
    assert_eq!(info[0].owned, tps("x", &[0, 1]));
    assert_eq!(info[1].owned, tps("x", &[2, 3]));
    assert_eq!(info[1].target, info[1].owned);
}

#[test]
fn reporting_partitions_never_given_does_not_grab_them() {
    let mut g = Group::new("g");
    g.join("a", t(&["x"]), Assignor::Range, SESSION_MS, 0)
        .unwrap();
    g.join("b", t(&["x"]), Assignor::Range, SESSION_MS, 0)
        .unwrap();
    g.set_topics(counts(&[("x", 2)])).unwrap();
    let gen = g.generation();
    let a = g.sync("a", gen, tps("x", &[0, 1]), 0).unwrap();
    assert_eq!(a.assigned, tps("x", &[0]));
    let b = g.sync("b", gen, BTreeSet::new(), 0).unwrap();
    assert_eq!(b.assigned, tps("x", &[1]), "a's claim on x1 was ignored");
}

/// Found by `tests/group_props.rs`: a member whose topic shrank away under it, and whose later
/// sync kept reporting the vanished partition, was told `Stable` for ever and kept owning it.
#[test]
fn a_member_keeping_a_revoked_partition_is_told_to_sync_until_it_lets_go() {
    let mut g = Group::new("g");
    g.join("a", t(&["x"]), Assignor::Range, SESSION_MS, 0)
        .unwrap();
    g.set_topics(counts(&[("x", 1)])).unwrap();
    let gen = g.generation();
    assert_eq!(
        g.sync("a", gen, BTreeSet::new(), 0).unwrap().assigned,
        tps("x", &[0])
    );
    g.set_topics(counts(&[("x", 0)])).unwrap();
    let gen = g.generation();
    assert_eq!(g.heartbeat("a", gen, 1).unwrap(), Beat::SyncNeeded);
    for now in 2..4 {
        // The report keeps x0: a is still finishing it (or misreports); it stays a's.
        let s = g.sync("a", gen, tps("x", &[0]), now).unwrap();
        assert!(s.assigned.is_empty());
        assert_eq!(g.members()[0].owned, tps("x", &[0]));
        assert_eq!(g.heartbeat("a", gen, now).unwrap(), Beat::SyncNeeded);
    }
    g.sync("a", gen, BTreeSet::new(), 4).unwrap();
    assert!(g.members()[0].owned.is_empty());
    assert_eq!(g.heartbeat("a", gen, 5).unwrap(), Beat::Stable);
}

#[test]
fn unknown_members_are_told_so() {
    let mut g = Group::new("g");
    let err = GroupError::UnknownMember {
        member_id: "z".into(),
    };
    assert_eq!(g.sync("z", 0, BTreeSet::new(), 0), Err(err.clone()));
    assert_eq!(g.heartbeat("z", 0, 0), Err(err.clone()));
    assert_eq!(g.leave("z"), Err(err.clone()));
    assert_eq!(g.check_commit("z", 0, &Tp::new("x", 0)), Err(err));
}

#[test]
fn sessions_expire_at_their_deadline_and_free_partitions() {
    let mut g = Group::new("g");
    g.join("a", t(&["x"]), Assignor::CooperativeSticky, 1_000, 100)
        .unwrap();
    g.join("b", t(&["x"]), Assignor::CooperativeSticky, 5_000, 100)
        .unwrap();
    g.set_topics(counts(&[("x", 2)])).unwrap();
    let gen = g.generation();
    g.sync("a", gen, BTreeSet::new(), 200).unwrap();
    g.sync("b", gen, BTreeSet::new(), 200).unwrap();
    assert_eq!(g.next_deadline_ms(), Some(1_200));
    assert!(g.expire(1_199).is_empty());
    assert_eq!(g.heartbeat("b", gen, 1_000).unwrap(), Beat::Stable);
    assert_eq!(g.expire(1_200), vec!["a".to_string()]);
    assert!(g.generation() > gen);
    assert_eq!(g.next_deadline_ms(), Some(6_000));
    let b = g.sync("b", gen, tps("x", &[1]), 1_300).unwrap();
    assert_eq!(b.assigned, tps("x", &[0, 1]));
    g.leave("b").unwrap();
    assert!(g.is_empty());
    assert_eq!(g.assignor(), None, "an empty group forgets its assignor");
    assert_eq!(g.next_deadline_ms(), None);
    g.join("c", t(&["x"]), Assignor::Range, SESSION_MS, 2_000)
        .unwrap();
    assert_eq!(g.assignor(), Some(Assignor::Range));
}

#[test]
fn set_topics_recomputes_only_on_change_and_bounds_partitions() {
    let mut g = Group::new("g");
    g.join("a", t(&["x"]), Assignor::Range, SESSION_MS, 0)
        .unwrap();
    g.set_topics(counts(&[("x", 2), ("ignored", 7)])).unwrap();
    let gen = g.generation();
    g.set_topics(counts(&[("x", 2)])).unwrap();
    assert_eq!(g.generation(), gen, "same counts: same generation");
    let too_many = u32::try_from(GROUP_PARTITIONS_MAX + 1).unwrap();
    assert_eq!(
        g.set_topics(counts(&[("x", too_many)])),
        Err(GroupError::TooManyPartitions {
            total: GROUP_PARTITIONS_MAX + 1,
            max: GROUP_PARTITIONS_MAX
        })
    );
    assert_eq!(g.generation(), gen);
    g.set_topics(counts(&[("x", 3)])).unwrap();
    assert!(g.generation() > gen);
    assert_eq!(g.members()[0].target, tps("x", &[0, 1, 2]));
}

#[test]
fn a_new_subscription_moves_partitions_through_revocation() {
    let mut g = Group::new("g");
    g.join("a", t(&["x"]), Assignor::CooperativeSticky, SESSION_MS, 0)
        .unwrap();
    g.set_topics(counts(&[("x", 2), ("y", 2)])).unwrap();
    let a = g.sync("a", g.generation(), BTreeSet::new(), 0).unwrap();
    assert_eq!(a.assigned, tps("x", &[0, 1]));
    g.join("a", t(&["y"]), Assignor::CooperativeSticky, SESSION_MS, 1)
        .unwrap();
    g.set_topics(counts(&[("x", 2), ("y", 2)])).unwrap();
    let a = g.sync("a", g.generation(), a.assigned, 2).unwrap();
    assert_eq!(a.assigned, tps("y", &[0, 1]));
    assert_eq!(
        g.members()[0].owned,
        union(tps("x", &[0, 1]), tps("y", &[0, 1])),
        "x not yet reported stopped"
    );
    g.sync("a", g.generation(), a.assigned, 3).unwrap();
    assert_eq!(g.members()[0].owned, tps("y", &[0, 1]));
}

#[test]
fn sticky_links_of_a_chain_pass_on_partitions_they_did_not_have_before() {
    // Placement gives c y0 and b y1, so b holds y1 (new) and y2 (before). a passes x3 to b,
    // b passes a y to c: y1, not its old y2, although y2 is the higher index.
    let m = members(&[("a", &["x"]), ("b", &["x", "y"]), ("c", &["y"])]);
    let topics = counts(&[("x", 4), ("y", 3)]);
    let prev: Assignments = [
        ("a".to_string(), tps("x", &[0, 1, 2, 3])),
        ("b".to_string(), tps("y", &[2])),
    ]
    .into();
    let out = assign_sticky(&m, &topics, &prev);
    assert_eq!(out["a"], tps("x", &[0, 1, 2]));
    assert_eq!(out["b"], union(tps("x", &[3]), tps("y", &[2])));
    assert_eq!(out["c"], tps("y", &[0, 1]));
}

#[test]
fn sticky_moves_a_partition_back_to_its_other_previous_claimant_first() {
    // t0 was claimed by both; a keeps it at first, and it is the one a gives up to b.
    let m = members(&[("a", &["t"]), ("b", &["t"])]);
    let prev: Assignments = [
        ("a".to_string(), tps("t", &[0, 1, 2, 3])),
        ("b".to_string(), tps("t", &[0])),
    ]
    .into();
    let out = assign_sticky(&m, &counts(&[("t", 4)]), &prev);
    assert_eq!(out["a"], tps("t", &[1, 2]));
    assert_eq!(out["b"], tps("t", &[0, 3]));
}

#[test]
fn a_lone_member_may_switch_assignor_and_newer_generations_are_refused() {
    let mut g = Group::new("g");
    let first = g
        .join("a", t(&["x"]), Assignor::Range, SESSION_MS, 0)
        .unwrap();
    let again = g
        .join("a", t(&["x"]), Assignor::CooperativeSticky, SESSION_MS, 0)
        .unwrap();
    assert_eq!(g.assignor(), Some(Assignor::CooperativeSticky));
    assert!(
        again.generation > first.generation,
        "a new assignor recomputes"
    );
    assert_eq!(
        g.heartbeat("a", again.generation + 1, 0),
        Err(GroupError::IllegalGeneration {
            member_id: "a".into(),
            expected: again.generation,
            got: again.generation + 1,
        })
    );
    assert_eq!(g.heartbeat("a", first.generation, 0), Ok(Beat::SyncNeeded));
}
