//! Properties of rendezvous placement over generated clusters (proptest, 1,000 cases each).

use cluster::{replicas, Candidate};
use proptest::prelude::*;

fn cluster(ids: &[u32]) -> Vec<Candidate> {
    ids.iter().copied().map(Candidate::new).collect()
}

/// 1..=12 distinct node ids.
fn node_ids() -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::btree_set(1u32..10_000, 1..=12).prop_map(|s| s.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn replicas_are_distinct_members(ids in node_ids(), topic in any::<u64>(), p in 0u32..4096, rf in 1usize..=7) {
        let c = cluster(&ids);
        match replicas(topic, p, rf, &c) {
            Ok(r) => {
                prop_assert_eq!(r.len(), rf);
                for (i, n) in r.iter().enumerate() {
                    prop_assert!(ids.contains(n));
                    prop_assert!(!r[..i].contains(n));
                }
            }
            Err(_) => prop_assert!(rf > ids.len()),
        }
    }

    /// Removing a node changes only the partitions that had it, and those keep the others in
    /// their relative order (the replacement comes last).
    #[test]
    fn removing_a_node_disturbs_only_its_partitions(ids in node_ids(), topic in any::<u64>(), p in 0u32..4096, rf in 1usize..=4, victim in any::<prop::sample::Index>()) {
        prop_assume!(ids.len() > rf);
        let before = replicas(topic, p, rf, &cluster(&ids)).unwrap();
        let gone = ids[victim.index(ids.len())];
        let rest: Vec<u32> = ids.iter().copied().filter(|n| *n != gone).collect();
        let after = replicas(topic, p, rf, &cluster(&rest)).unwrap();
        if before.contains(&gone) {
            let kept: Vec<u32> = before.iter().copied().filter(|n| *n != gone).collect();
            prop_assert_eq!(&after[..rf - 1], &kept[..]);
            prop_assert!(!before.contains(&after[rf - 1]));
        } else {
            prop_assert_eq!(after, before);
        }
    }

    /// Adding a node only ever gives replicas to the new node.
    #[test]
    fn adding_a_node_takes_replicas_only_for_itself(ids in node_ids(), topic in any::<u64>(), p in 0u32..4096, rf in 1usize..=4) {
        prop_assume!(ids.len() >= rf);
        let new = 20_000;
        let before = replicas(topic, p, rf, &cluster(&ids)).unwrap();
        let mut more = ids.clone();
        more.push(new);
        let after = replicas(topic, p, rf, &cluster(&more)).unwrap();
        for n in &after {
            prop_assert!(*n == new || before.contains(n));
        }
    }
}

#[test]
fn equal_nodes_get_balanced_replicas_and_leaders() {
    let ids = [1, 2, 3, 4, 5];
    let c = cluster(&ids);
    let (mut held, mut led) = ([0usize; 6], [0usize; 6]);
    let partitions = 3000;
    for p in 0..partitions {
        let r = replicas(0xfeed, p, 3, &c).unwrap();
        led[r[0] as usize] += 1;
        for n in r {
            held[n as usize] += 1;
        }
    }
    let mean_held = 3.0 * f64::from(partitions) / 5.0;
    let mean_led = f64::from(partitions) / 5.0;
    for n in ids {
        let h = held[n as usize] as f64;
        let l = led[n as usize] as f64;
        assert!(
            (h / mean_held - 1.0).abs() < 0.05,
            "node {n} holds {h}, mean {mean_held}"
        );
        assert!(
            (l / mean_led - 1.0).abs() < 0.10,
            "node {n} leads {l}, mean {mean_led}"
        );
    }
}

#[test]
fn weights_shift_the_share_in_proportion() {
    let mut c = cluster(&[1, 2, 3]);
    c[2].weight = 2.0; // node 3: twice the capacity -> half of all single replicas
    let mut held = [0u32; 4];
    let partitions = 8000;
    for p in 0..partitions {
        held[replicas(77, p, 1, &c).unwrap()[0] as usize] += 1;
    }
    let share = f64::from(held[3]) / f64::from(partitions);
    assert!((share - 0.5).abs() < 0.03, "node 3 share {share}");
}
