//! Unit tests of the controller's topic changes, placement, failover and re-election.

use super::*;

#[test]
fn settings_round_trip_through_the_metadata_config() {
    let s = crate::catalog::TopicSettings {
        retention_ms: Some(5),
        retention_bytes: None,
        segment_bytes: Some(1 << 20),
        compacted: true,
        default_ttl_ms: None,
        tier_after_ms: Some(0),
        local_retention_bytes: Some(7),
    };
    let map: BTreeMap<String, String> = settings_to_config(&s).into_iter().collect();
    assert_eq!(config_to_settings(&map).unwrap(), s);
    let mut bad = map.clone();
    bad.insert("retention_ms".into(), "x".into());
    assert!(config_to_settings(&bad)
        .unwrap_err()
        .contains("retention_ms"));
}

fn state_with_topic(rf: u16, partitions: u32) -> MetadataState {
    test_state(3, rf, partitions, 0)
}

/// Nodes `1..=nodes` registered and topic `t` (`partitions`, `rf`) created, then placed and led
/// over nodes `1..=placed_on` (not placed for 0). Shared with the reassignment and move tests.
pub(in crate::controller) fn test_state(
    nodes: u64,
    rf: u16,
    partitions: u32,
    placed_on: u64,
) -> MetadataState {
    let mut s = MetadataState::default();
    for id in 1..=nodes {
        s.apply(&Command::RegisterNode {
            node_id: id,
            client_addr: format!("h{id}:7070"),
        })
        .unwrap();
    }
    s.apply(&Command::CreateTopic {
        name: "t".into(),
        partitions,
        replication_factor: rf,
        min_insync: 1,
        config: vec![],
    })
    .unwrap();
    if placed_on > 0 {
        let on: BTreeSet<u64> = (1..=placed_on).collect();
        let mut topics = Topics::default();
        for _ in 0..2 {
            for c in topics.placements(&s, &on, &on) {
                s.apply(&c).unwrap();
            }
        }
    }
    s
}

#[test]
fn placement_assigns_then_elects_on_live_nodes_only() {
    let mut s = state_with_topic(1, 8);
    let mut topics = Topics::default();
    let live: BTreeSet<u64> = [1, 2].into_iter().collect();
    let assign = topics.placements(&s, &live, &live);
    assert_eq!(assign.len(), 8);
    for c in &assign {
        let Command::AssignReplicas { replicas, .. } = c else {
            panic!("{c:?}")
        };
        assert!(replicas.len() == 1 && live.contains(&replicas[0]), "{c:?}");
        s.apply(c).unwrap();
    }
    // Proposed and not committed: nothing is proposed again before the retry interval.
    let fresh = state_with_topic(1, 8);
    assert!(topics.placements(&fresh, &live, &live).is_empty());
    // Committed: the partitions' state moved on, so the leaders are elected at once.
    let elect = topics.placements(&s, &live, &live);
    assert_eq!(elect.len(), 8);
    for c in &elect {
        s.apply(c).unwrap();
    }
    assert!(s.topics["t"].partitions.iter().all(|p| p.leader != 0));
    topics.placing.clear();
    assert!(topics.placements(&s, &live, &live).is_empty());
}

#[test]
fn a_dead_leader_is_replaced_by_a_live_in_sync_replica_then_leaves_the_set() {
    let mut s = state_with_topic(3, 1);
    let mut topics = Topics::default();
    let all: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
    for c in topics.placements(&s, &all, &all) {
        s.apply(&c).unwrap();
    }
    for c in topics.placements(&s, &all, &all) {
        s.apply(&c).unwrap();
    }
    let p = s.topics["t"].partitions[0].clone();
    assert!(p.leader != 0 && p.in_sync.len() == 3, "{p:?}");
    assert!(topics.placements(&s, &all, &all).is_empty());

    // The leader's node is gone: the next in-sync live replica leads at a higher epoch.
    let live: BTreeSet<u64> = all.iter().copied().filter(|n| *n != p.leader).collect();
    let elect = topics.placements(&s, &live, &live);
    let [Command::SetLeader {
        leader,
        leader_epoch,
        ..
    }] = elect.as_slice()
    else {
        panic!("{elect:?}")
    };
    assert!(live.contains(leader) && *leader_epoch == p.leader_epoch + 1);
    s.apply(&elect[0]).unwrap();
    // Then the failed leader leaves the in-sync set, fenced by the new epoch and the version,
    // even while gossip only suspects it (present, not live).
    let shrink = topics.placements(&s, &live, &all);
    let [Command::SetInSync {
        in_sync,
        isr_version,
        ..
    }] = shrink.as_slice()
    else {
        panic!("{shrink:?}")
    };
    assert_eq!(in_sync.iter().copied().collect::<BTreeSet<_>>(), live);
    assert_eq!(*isr_version, Some(s.topics["t"].partitions[0].isr_version));
    s.apply(&shrink[0]).unwrap();
    assert!(topics.placements(&s, &live, &live).is_empty());

    // Never an unclean election: with no live in-sync replica the partition waits.
    let only_dead: BTreeSet<u64> = [p.leader].into_iter().collect();
    assert!(topics.placements(&s, &only_dead, &only_dead).is_empty());
}

#[test]
fn a_leader_that_cannot_lead_at_its_epoch_gets_a_new_election() {
    let mut s = state_with_topic(3, 1);
    let mut topics = Topics::default();
    let all: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
    for _ in 0..2 {
        for c in topics.placements(&s, &all, &all) {
            s.apply(&c).unwrap();
        }
    }
    let p = s.topics["t"].partitions[0].clone();
    let (asker, epoch) = (p.leader, p.leader_epoch);
    // Stale: another node, or another epoch.
    let other = p.replicas.iter().copied().find(|n| *n != asker).unwrap();
    assert!(reelection(&s, &all, "t", 0, other, epoch).is_err());
    assert!(reelection(&s, &all, "t", 0, asker, epoch + 1).is_err());
    assert!(reelection(&s, &all, "t", 1, asker, epoch).is_err());
    // Another live in-sync replica takes over at the next epoch.
    let cmd = reelection(&s, &all, "t", 0, asker, epoch).unwrap();
    let Command::SetLeader {
        leader,
        leader_epoch,
        ..
    } = &cmd
    else {
        panic!("{cmd:?}")
    };
    assert!(*leader != asker && p.in_sync.contains(leader));
    assert_eq!(*leader_epoch, epoch + 1);
    s.apply(&cmd).unwrap();
    // Alone in sync: the asker itself is elected again, at a new epoch.
    let mut alone = state_with_topic(3, 1);
    for _ in 0..2 {
        for c in Topics::default().placements(&alone, &all, &all) {
            alone.apply(&c).unwrap();
        }
    }
    let q = alone.topics["t"].partitions[0].clone();
    alone
        .apply(&Command::SetInSync {
            topic: "t".into(),
            partition: 0,
            leader_epoch: q.leader_epoch,
            isr_version: Some(q.isr_version),
            in_sync: vec![q.leader],
        })
        .unwrap();
    let cmd = reelection(&alone, &all, "t", 0, q.leader, q.leader_epoch).unwrap();
    assert!(
        matches!(cmd, Command::SetLeader { leader, leader_epoch, .. }
            if leader == q.leader && leader_epoch == q.leader_epoch + 1),
        "{cmd:?}"
    );
}

#[test]
fn too_few_live_nodes_leave_partitions_unplaced() {
    let s = state_with_topic(3, 2);
    let mut topics = Topics::default();
    let live: BTreeSet<u64> = [1, 2].into_iter().collect();
    assert!(topics.placements(&s, &live, &live).is_empty());
}

#[test]
fn pending_changes_resolve_on_commit_refusal_leadership_and_deadline() {
    let s = state_with_topic(1, 1);
    let mut topics = Topics::default();
    let (tx, rx) = flume::bounded(4);
    let pending = |name: &str, deadline| Pending {
        change: TopicChange::Delete { name: name.into() },
        proposal: None,
        deadline,
        reply: tx.clone(),
    };
    let later = Instant::now() + Duration::from_secs(60);
    topics.pending.push(pending("gone", later));
    topics.pending.push(pending("t", later));
    topics.pending.push(pending("t", Instant::now()));
    topics.resolve(&[], &s, None);
    assert_eq!(rx.try_recv().unwrap(), ChangeOutcome::Deleted);
    assert!(matches!(
        rx.try_recv().unwrap(),
        ChangeOutcome::TimedOut { .. }
    ));
    assert_eq!(topics.pending.len(), 1);
    topics.resolve(&[], &s, Some((2, Some("h2:7070".into()))));
    assert_eq!(
        rx.try_recv().unwrap(),
        ChangeOutcome::NotLeader {
            leader_id: 2,
            leader_addr: Some("h2:7070".into())
        }
    );
    assert!(topics.pending.is_empty());
}

#[test]
fn a_follower_its_leader_adds_back_stays_until_gossip_loses_it_anew() {
    let mut s = test_state(3, 3, 1, 3);
    let mut topics = Topics::default();
    let all: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
    let p = s.topics["t"].partitions[0].clone();
    assert!(p.leader != 0 && p.in_sync.len() == 3, "{p:?}");
    let follower = *p.replicas.iter().find(|n| **n != p.leader).unwrap();
    let others: BTreeSet<u64> = all.iter().copied().filter(|n| *n != follower).collect();

    // Gossip loses the follower (cut off, then suspected past the grace, or declared down): the
    // controller drops it from the in-sync set.
    let drop = topics.placements(&s, &others, &others);
    let [Command::SetInSync { in_sync, .. }] = drop.as_slice() else {
        panic!("{drop:?}")
    };
    assert_eq!(in_sync.iter().copied().collect::<BTreeSet<_>>(), others);
    s.apply(&drop[0]).unwrap();

    // The partition heals but gossip still has the follower suspected (it never heard of the
    // suspicion, so it cannot refute it). It fetches and catches up, and its leader adds it back.
    let p = s.topics["t"].partitions[0].clone();
    let add = TopicChange::InSync {
        topic: "t".into(),
        partition: 0,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        isr_version: p.isr_version,
        in_sync: p.replicas.clone(),
        successor: 0,
    };
    topics.vouch(&add, &s, Instant::now() + Duration::from_millis(1));
    s.apply(&command_for(&add, &s, &others).unwrap()).unwrap();
    assert_eq!(s.topics["t"].partitions[0].in_sync.len(), 3);
    // The controller does not take it out again on gossip's stale word.
    assert!(topics.placements(&s, &others, &others).is_empty());
    topics.placing.clear();
    assert!(topics.placements(&s, &others, &others).is_empty());

    // Gossip sees it live again, then loses it anew (a real failure): it leaves the set.
    assert!(topics.placements(&s, &all, &all).is_empty());
    let drop = topics.placements(&s, &others, &others);
    let [Command::SetInSync { in_sync, .. }] = drop.as_slice() else {
        panic!("{drop:?}")
    };
    assert_eq!(in_sync.iter().copied().collect::<BTreeSet<_>>(), others);
}
