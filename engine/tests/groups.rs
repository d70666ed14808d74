//! Consumer groups against real `sprawl` processes: the coordinator's protocol over real sockets
//! on one node (assignment split, safe hand-over, fencing, session expiry, leave), `sprawl sub
//! --group` members sharing a topic and taking over a killed member's partitions with nothing
//! lost, and, on three nodes, committed offsets surviving a kill -9 of the coordinator.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{Node, BIN};
use net::client::{ClientConfig, ClientError, ClusterClient};
use net::codec::{ErrorCode, TopicConfig};
use serde_json::Value;

const TOPIC: &str = "shared";

fn code_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Server { code, .. }) => code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

fn partitions_of(assigned: &[(String, Vec<u32>)]) -> BTreeSet<u32> {
    assigned
        .iter()
        .filter(|(t, _)| t == TOPIC)
        .flat_map(|(_, ps)| ps.iter().copied())
        .collect()
}

fn owned(ps: &BTreeSet<u32>) -> Vec<(String, Vec<u32>)> {
    vec![(TOPIC.to_string(), ps.iter().copied().collect())]
}

#[test]
fn members_split_partitions_hand_them_over_safely_and_lose_them_when_their_session_expires() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), common::shards());
    let mut a = node.client();
    let mut b = node.client();
    let config = TopicConfig {
        partitions: 4,
        ..TopicConfig::default()
    };
    a.create_topic(TOPIC, &config).unwrap();
    let values: Vec<&[u8]> = vec![b"r"; 10];
    a.produce(
        TOPIC,
        0,
        net::codec::Acks::All,
        None,
        &common::records(&values),
    )
    .unwrap();

    // Unknown topics and assignors are refused with what to do.
    let e = code_of(a.join_group("g", "", &["nope"], "range", 10_000));
    assert_eq!(e, ErrorCode::UnknownTopic);
    let e = code_of(a.join_group("g", "", &[TOPIC], "round-robin", 10_000));
    assert_eq!(e, ErrorCode::InvalidRequest);

    let sticky = "cooperative-sticky";
    let (ma, gen) = a.join_group("g", "", &[TOPIC], sticky, 1_000).unwrap();
    let (gen_a, got) = a.sync_group("g", &ma, gen, &[]).unwrap();
    let mut a_owns = partitions_of(&got);
    assert_eq!(a_owns, BTreeSet::from([0, 1, 2, 3]));
    a.commit_offset_member("g", TOPIC, 0, 5, &ma, gen_a)
        .unwrap();

    // B joins: nothing is handed to it while A still owns everything.
    let (mb, gen) = b.join_group("g", "", &[TOPIC], sticky, 10_000).unwrap();
    assert_ne!(ma, mb);
    let (_, got) = b.sync_group("g", &mb, gen, &[]).unwrap();
    assert!(partitions_of(&got).is_empty(), "{got:?}");

    // A is told to sync, gives up two partitions, reports it, and B gets exactly those.
    let e = code_of(a.heartbeat("g", &ma, gen_a));
    assert_eq!(e, ErrorCode::RebalanceInProgress);
    let (gen_now, got) = a.sync_group("g", &ma, gen_a, &owned(&a_owns)).unwrap();
    let kept = partitions_of(&got);
    assert_eq!(kept.len(), 2, "{got:?}");
    a_owns = kept;
    let (_, got) = a.sync_group("g", &ma, gen_now, &owned(&a_owns)).unwrap();
    assert_eq!(partitions_of(&got), a_owns);
    let e = code_of(b.heartbeat("g", &mb, gen_now));
    assert_eq!(e, ErrorCode::RebalanceInProgress);
    let (gen_b, got) = b.sync_group("g", &mb, gen_now, &[]).unwrap();
    let b_owns = partitions_of(&got);
    assert_eq!(b_owns.len(), 2);
    assert!(a_owns.is_disjoint(&b_owns));

    // The stats port shows the group, its members and what each was given.
    let (code, body) = common::http_get(&node.http, "/groups");
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    let groups = doc["coordinated_here"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{doc}");
    assert_eq!(groups[0]["group"], "g");
    assert_eq!(groups[0]["assignor"], "cooperative-sticky");
    let shown: BTreeMap<String, usize> = groups[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let id = m["id"].as_str().unwrap().to_string();
            (id, m["assigned"].as_array().unwrap().len())
        })
        .collect();
    assert_eq!(shown, BTreeMap::from([(ma.clone(), 2), (mb.clone(), 2)]));
    b.heartbeat("g", &mb, gen_b).unwrap();

    // A commit from a generation A no longer holds, for a partition B owns, is fenced.
    let theirs = *b_owns.iter().next().unwrap();
    let e = code_of(a.commit_offset_member("g", TOPIC, theirs, 9, &ma, gen_a));
    assert_eq!(e, ErrorCode::IllegalGeneration);
    let e = code_of(a.commit_offset_member("g", TOPIC, 0, 9, "stranger", gen_b));
    assert_eq!(e, ErrorCode::UnknownMember);

    // A stops heartbeating: after its 1 s session B is told to sync and gets everything.
    let deadline = Instant::now() + Duration::from_secs(20);
    let gen_b = loop {
        std::thread::sleep(Duration::from_millis(200));
        match b.heartbeat("g", &mb, gen_b) {
            Ok(()) => assert!(Instant::now() < deadline, "A's session never expired"),
            Err(e) => {
                assert_eq!(code_of::<()>(Err(e)), ErrorCode::RebalanceInProgress);
                break b.sync_group("g", &mb, gen_b, &owned(&b_owns)).unwrap().0;
            }
        }
    };
    let (_, got) = b.sync_group("g", &mb, gen_b, &owned(&b_owns)).unwrap();
    assert_eq!(partitions_of(&got), BTreeSet::from([0, 1, 2, 3]));
    let e = code_of(a.heartbeat("g", &ma, gen_now));
    assert_eq!(e, ErrorCode::UnknownMember);

    // The commit made as a member is where the group resumes; B leaves and is gone.
    assert_eq!(b.fetch_offset("g", TOPIC, 0).unwrap(), Some(5));
    b.leave_group("g", &mb).unwrap();
    let e = code_of(b.heartbeat("g", &mb, gen_b));
    assert_eq!(e, ErrorCode::UnknownMember);

    // The stats port counts what happened (summed over shards).
    let (code, text) = common::http_get(&node.http, "/metrics");
    assert_eq!(code, 200);
    let total = |name: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("sprawl_{name}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(total("group_joins_total"), 2);
    assert_eq!(total("group_members_expired_total"), 1);
    assert_eq!(total("group_commits_total"), 1);
    assert_eq!(total("group_commits_fenced_total"), 2);
    assert!(total("group_rebalances_total") >= 3);
}

/// A `sprawl sub --group` process whose printed records arrive on a channel as
/// `(partition, value)`.
struct Member {
    child: Child,
    lines: mpsc::Receiver<(u32, String)>,
    seen: Vec<(u32, String)>,
}

impl Member {
    fn start(broker: &str, group: &str) -> Member {
        let mut child = Command::new(BIN)
            .args([
                "sub",
                "--topic",
                TOPIC,
                "--group",
                group,
                "--from-beginning",
                "--output",
                "json",
                "--session-timeout-ms",
                "2000",
                "--broker",
                broker,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line).unwrap();
                let p = v["partition"].as_u64().unwrap() as u32;
                let value = v["value"].as_str().unwrap().to_string();
                if tx.send((p, value)).is_err() {
                    return;
                }
            }
        });
        Member {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Ok(x) = self.lines.try_recv() {
            self.seen.push(x);
        }
    }

    fn partitions(&self) -> BTreeSet<u32> {
        self.seen.iter().map(|(p, _)| *p).collect()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publish(node: &Node, round: &str, per_partition: u32) -> BTreeSet<String> {
    let mut c = node.client();
    let mut all = BTreeSet::new();
    for p in 0..4u32 {
        for i in 0..per_partition {
            let v = format!("{round}-p{p}-{i}");
            let recs = common::records(&[v.as_bytes()]);
            c.produce(TOPIC, p, net::codec::Acks::All, None, &recs)
                .unwrap();
            all.insert(v);
        }
    }
    all
}

/// Waits until the members together printed every value of `want`.
fn wait_printed(members: &mut [&mut Member], want: &BTreeSet<String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut got = BTreeSet::new();
        for m in members.iter_mut() {
            m.drain();
            got.extend(m.seen.iter().map(|(_, v)| v.clone()));
        }
        let missing: Vec<&String> = want.difference(&got).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} records never printed, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sub_group_members_share_partitions_and_a_killed_members_partitions_are_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_in(dir.path(), common::shards());
    let config = TopicConfig {
        partitions: 4,
        ..TopicConfig::default()
    };
    node.client().create_topic(TOPIC, &config).unwrap();
    let mut one = Member::start(&node.addr, "printers");
    let mut two = Member::start(&node.addr, "printers");
    // Both join and the assignment settles (two sessions of 2 s at most) before data arrives.
    std::thread::sleep(Duration::from_secs(4));

    let first = publish(&node, "first", 25);
    wait_printed(&mut [&mut one, &mut two], &first, "both members running");
    let (p1, p2) = (one.partitions(), two.partitions());
    assert!(
        !p1.is_empty() && !p2.is_empty() && p1.is_disjoint(&p2),
        "members did not split the partitions: {p1:?} / {p2:?}"
    );

    // kill -9 one member: after its session the other takes its partitions over from the
    // group's committed offsets, and nothing published is missing.
    drop(one);
    let second = publish(&node, "second", 25);
    wait_printed(&mut [&mut two], &second, "after a member was killed");
    assert_eq!(two.partitions(), BTreeSet::from([0, 1, 2, 3]));
}

#[test]
fn committed_offsets_survive_a_kill_of_the_coordinator_node() {
    let root = tempfile::tempdir().unwrap();
    let mut c = Cluster::new(root.path(), 3, 3);
    let (mut nodes, addrs) = c.start_registered(3);
    let config = TopicConfig {
        partitions: 2,
        replication_factor: Some(3),
        ..TopicConfig::default()
    };
    let bootstrap: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let mut cc = ClusterClient::connect(&bootstrap, ClientConfig::default()).unwrap();
    cc.create_topic(TOPIC, &config).unwrap();

    // The first group call creates the offsets topic; the client retries until it leads.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (member, gen) = loop {
        match cc.join_group("g", "", &[TOPIC], "range", 10_000) {
            Ok(j) => break j,
            Err(e) => {
                assert!(Instant::now() < deadline, "no coordinator: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    let (gen, got) = cc.sync_group("g", &member, gen, &[]).unwrap();
    assert_eq!(partitions_of(&got), BTreeSet::from([0, 1]));
    let want: BTreeMap<u32, u64> = BTreeMap::from([(0, 7), (1, 3)]);
    for (p, o) in &want {
        cc.commit_offset_member("g", TOPIC, *p, *o, &member, gen)
            .unwrap();
    }
    let (coordinator, _) = cc.coordinator_of("g").unwrap();

    // kill -9 the coordinator's node: another replica of its offsets partition takes over and
    // serves every acknowledged commit.
    nodes[coordinator as usize - 1].take().unwrap().kill9();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (p, o) in &want {
        loop {
            match cc.fetch_offset("g", TOPIC, *p) {
                Ok(got) => {
                    assert_eq!(got, Some(*o), "partition {p}");
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "offsets unreadable: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
    let (moved_to, _) = cc.coordinator_of("g").unwrap();
    assert_ne!(moved_to, coordinator);

    // The new coordinator does not know the member: it rejoins and gets both partitions.
    let e = cc.heartbeat("g", &member, gen);
    assert!(
        matches!(
            e,
            Err(ClientError::Server {
                code: ErrorCode::UnknownMember,
                ..
            })
        ),
        "{e:?}"
    );
    let (member, gen) = cc.join_group("g", "", &[TOPIC], "range", 10_000).unwrap();
    let (_, got) = cc.sync_group("g", &member, gen, &[]).unwrap();
    assert_eq!(partitions_of(&got), BTreeSet::from([0, 1]));
}
