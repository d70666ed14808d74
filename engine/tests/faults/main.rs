//! Black-box fault test: three real nodes, each in its own network namespace, a topic of three
//! partitions (replication factor 3, min-insync 2), idempotent `acks=all` producers, tailing
//! consumers and the members of a consumer group running throughout a seeded schedule of kill -9
//! / restart cycles, full, one-way and pairwise network partitions (nftables), a lossy period and
//! the "last replica standing" case (two nodes cut off, then the remaining one killed).
//! Everything goes into a history that `common::history` (and `group_check` for the group's
//! starts, polls and commits) checks at the end, after healing, together with every replica's
//! log end and high watermark and a byte-for-byte re-read of every partition from other
//! replicas.
//!
//! `docs/fault-tests.md` explains the gates and how to run it. Needs root, `ip` and `nft`;
//! without them it prints "skipped: ..." and passes, unless `SPRAWL_FAULTS_REQUIRED=1`.

#[path = "../common/mod.rs"]
mod common;
mod group;
mod group_check;
mod observe;
mod schedule;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::history::{self, Event, History, PartitionRead, Report};
use common::netns::{self, NetLab, NsCluster};
use net::client::{ClientConfig, ClientError, ClusterClient, RoutingConfig};
use net::codec::{Acks, ErrorCode, ProducerIdent, RecordView, TopicConfig};
use serde_json::Value;

const TOPIC: &str = "faults";
const PARTITIONS: u32 = 3;
const NODES: usize = 3;
const BATCH_RECORDS: u32 = 8;
const VALUE_BYTES: usize = 128;

use group::*;
use observe::*;
use schedule::*;
use workload::*;

fn skip_or_fail(reason: &str) {
    if std::env::var("SPRAWL_FAULTS_REQUIRED").as_deref() == Ok("1") {
        panic!("SPRAWL_FAULTS_REQUIRED=1 but the fault test cannot run: {reason}");
    }
    eprintln!("skipped: {reason} (set SPRAWL_FAULTS_REQUIRED=1 to fail instead)");
}

fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Waits for the metadata leader to register every node, then creates the topic.
fn create_topic(c: &NsCluster) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = c.get(0, "/cluster").is_some_and(|(_, body)| {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            v["controller"]["leader_id"].as_u64().unwrap_or(0) != 0
                && v["controller"]["nodes"].as_array().map_or(0, Vec::len) == NODES
        });
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no controller leader with {NODES} nodes in 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let config = TopicConfig {
        partitions: PARTITIONS,
        replication_factor: Some(3),
        min_insync: Some(2),
        ..TopicConfig::default()
    };
    let mut last = None;
    while Instant::now() < deadline + Duration::from_secs(30) {
        match connect(&c.addrs()).map(|mut cc| cc.create_topic(TOPIC, &config)) {
            Some(Ok(_)) => return,
            Some(Err(e)) if e.code() == Some(ErrorCode::TopicExists) => return,
            other => last = Some(format!("{other:?}")),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("could not create the topic: {last:?}");
}

/// Isolating a node makes its client port unreachable; healing makes it reachable again.
fn check_fault_injection(c: &NsCluster) {
    let addr: std::net::SocketAddr = c.addr(0).parse().unwrap();
    let reachable =
        || std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok();
    assert!(reachable(), "node 1 unreachable before any fault");
    c.lab.isolate(0).expect("isolate node 1");
    assert!(
        !reachable(),
        "node 1 still reachable while isolated:\n{:?}",
        c.lab.rules(0)
    );
    c.lab.heal(0).expect("heal node 1");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !reachable() {
        assert!(Instant::now() < deadline, "node 1 unreachable after heal");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The end of a run: heal, stop writing, check the history, the replicas and failover times.
fn finish(
    run: &mut Run,
    producers: Vec<std::thread::JoinHandle<()>>,
    members: Vec<std::thread::JoinHandle<()>>,
) -> (Report, Failovers) {
    let shared = run.shared.clone();
    run.c.lab.heal_all().expect("remove fault rules");
    for i in 0..NODES {
        if !run.c.lab.running(i) {
            run.start(i);
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    shared.stop_producers.store(true, Ordering::Relaxed);
    for p in producers {
        p.join().expect("producer thread");
    }
    let healed = Instant::now();
    let mut extra = Report::default();
    for g in [
        "in_sync_not_restored",
        "final_read_failed",
        "replica_divergence",
        "replica_content_mismatch",
        "consumers_behind",
        "failover_over_60s",
    ] {
        extra.gate(g);
    }
    for what in &run.in_sync_timeouts {
        extra.violation("in_sync_not_restored", what.clone());
    }
    if !wait_in_sync(&run.c, Duration::from_secs(90)) {
        extra.violation(
            "in_sync_not_restored",
            format!("90 s after heal:\n    {}", views(&run.c)),
        );
    }
    let addrs = run.c.addrs();
    let mut finals: BTreeMap<u32, PartitionRead> = BTreeMap::new();
    let mut served: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for p in 0..PARTITIONS {
        match read_partition(&addrs, p, None, Duration::from_secs(60)) {
            Some((recs, by)) => {
                served.entry(p).or_default().extend(by);
                finals.insert(p, recs);
            }
            None => {
                extra.violation("final_read_failed", format!("p{p} not readable in 60 s"));
                finals.insert(p, Vec::new());
            }
        }
    }
    let ends: BTreeMap<u32, u64> = finals
        .iter()
        .map(|(p, r)| (*p, r.last().map_or(0, |(o, _)| o + 1)))
        .collect();
    for bad in replicas_converged(&run.c, &ends, Duration::from_secs(30)) {
        extra.violation("replica_divergence", bad);
    }

    // Consumers and the group catch up to the final end (every acknowledged record read within
    // 60 s of heal).
    *shared.consumer_deadline.lock().unwrap() = Some(healed + Duration::from_secs(60));
    *shared.group.deadline.lock().unwrap() = Some(healed + Duration::from_secs(60));
    for (p, end) in &ends {
        shared.consume_until[*p as usize].store(*end, Ordering::Relaxed);
        shared.group.until[*p as usize].store(*end, Ordering::Relaxed);
    }
    let events_wait = Instant::now() + Duration::from_secs(70);
    while ((0..PARTITIONS as usize)
        .any(|p| shared.consumed[p].load(Ordering::Relaxed) < ends[&(p as u32)])
        || !shared.group.caught_up())
        && Instant::now() < events_wait
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The members are done (or out of time: stop them) before the content check kills nodes.
    *shared.group.deadline.lock().unwrap() = Some(Instant::now());
    for m in members {
        m.join().expect("group member thread");
    }
    for (p, end) in &ends {
        let got = shared.consumed[*p as usize].load(Ordering::Relaxed);
        if got < *end {
            extra.violation(
                "consumers_behind",
                format!("p{p}: consumer at {got}, log ends at {end}"),
            );
        }
    }

    // Content of other replicas: kill each node in turn, re-read every partition from whoever
    // leads it then, compare byte for byte, restart the node.
    for k in 0..NODES {
        run.c.kill9(k);
        let others: Vec<String> = (0..NODES)
            .filter(|i| *i != k)
            .map(|i| run.c.addr(i))
            .collect();
        for p in 0..PARTITIONS {
            let want = &finals[&p];
            match read_partition(&others, p, Some(want.len()), Duration::from_secs(60)) {
                Some((recs, by)) if recs == *want => {
                    served.entry(p).or_default().extend(by);
                }
                Some((recs, by)) => {
                    let first = recs.iter().zip(want).position(|(a, b)| a != b);
                    extra.violation(
                        "replica_content_mismatch",
                        format!(
                            "p{p} from node {by:?} with node {} down: {} records vs {}, first difference at index {first:?}",
                            k + 1,
                            recs.len(),
                            want.len()
                        ),
                    );
                }
                None => extra.violation(
                    "replica_content_mismatch",
                    format!("p{p} not readable in 60 s with node {} down", k + 1),
                ),
            }
        }
        run.start(k);
        if !wait_in_sync(&run.c, Duration::from_secs(60)) {
            extra.violation(
                "in_sync_not_restored",
                format!("after the content check of node {}", k + 1),
            );
        }
    }

    if shared.group.members > 0 {
        for p in read_final_group_offsets(&shared, Duration::from_secs(60)) {
            extra.violation(
                "final_read_failed",
                format!("the group's committed offset of p{p} not readable in 60 s"),
            );
        }
    }

    let events = shared.history.events();
    let mut report = history::check(&events, &finals, &run.no_majority);
    if shared.group.members > 0 {
        let group = group_check::check_group(&events, &finals);
        report.gates.extend(group.gates);
        report.examples.extend(group.examples);
        report.stats.extend(group.stats);
    }
    let mut failovers = Vec::new();
    for k in &run.leader_kills {
        match history::failover_time(&events, k.partition, k.at, k.victim) {
            Some(d) if d <= Duration::from_secs(60) => failovers.push((d, k)),
            other => extra.violation(
                "failover_over_60s",
                format!("{k:?}: next ack after {other:?}"),
            ),
        }
    }
    failovers.sort_by_key(|(d, _)| *d);
    let mut out = Failovers::default();
    for (d, k) in failovers {
        let during: Vec<String> = run
            .net_faults
            .iter()
            .filter(|f| f.overlaps(k.at, d))
            .map(|f| format!("{:?} {} from {:.1?}", f.kind, f.nodes, f.from))
            .collect();
        eprintln!(
            "faults: failover {d:.2?}: p{} leader node {} killed at {:.1?}{}, restarted {:.1?} later{}",
            k.partition,
            k.victim,
            k.at,
            if k.controller_leader { " (also the controller leader)" } else { "" },
            k.restart_after,
            if during.is_empty() {
                String::new()
            } else {
                format!("; network fault meanwhile: {}", during.join(", "))
            }
        );
        out.all.push(d);
        if during.is_empty() {
            out.kill_only.push(d);
        }
    }
    report.gates.extend(extra.gates);
    report.examples.extend(extra.examples);
    for (p, nodes) in &served {
        report.stats.insert(
            [
                "replicas_compared_p0",
                "replicas_compared_p1",
                "replicas_compared_p2",
            ][*p as usize],
            nodes.len() as u64,
        );
    }
    (report, out)
}

/// Failover times after leader kills, sorted: all of them, and those during which no network
/// fault was in place (the goal's "on the majority side" case).
#[derive(Default)]
struct Failovers {
    all: Vec<Duration>,
    kill_only: Vec<Duration>,
}

/// `N samples: p50 .. p99 .. max ..` of sorted durations.
fn summary(sorted: &[Duration]) -> String {
    match sorted.last() {
        None => "0 samples".into(),
        Some(max) => format!(
            "{} samples: p50 {:.2?} p99 {:.2?} max {max:.2?}",
            sorted.len(),
            percentile(sorted, 50),
            percentile(sorted, 99),
        ),
    }
}

#[test]
fn acked_records_survive_kills_partitions_and_packet_loss() {
    if let Some(reason) = netns::unavailable_reason() {
        return skip_or_fail(&reason);
    }
    let lab = match NetLab::new(NODES) {
        Ok(lab) => lab,
        Err(e) => return skip_or_fail(&format!("cannot set up network namespaces: {e}")),
    };
    let seed = env_u64("SPRAWL_FAULTS_SEED", 0x5EED_F417);
    let kills = env_u64("SPRAWL_FAULTS_KILLS", 30) as usize;
    let net_faults = env_u64("SPRAWL_FAULTS_PARTITIONS", 10) as usize;
    let root = tempfile::Builder::new()
        .prefix("sprawl-faults-")
        .tempdir()
        .unwrap()
        .keep();
    eprintln!(
        "faults: seed {seed} (SPRAWL_FAULTS_SEED={seed}), {kills} kills, {net_faults} network partitions, nodes {}, data and node logs in {}",
        (0..NODES).map(|i| lab.ip(i)).collect::<Vec<_>>().join(" "),
        root.display()
    );
    let mut c = NsCluster::new(lab, &root, std::path::Path::new(common::BIN));
    for i in 0..NODES {
        if let Err(e) = c.start(i) {
            panic!("{e}");
        }
    }
    check_fault_injection(&c);
    create_topic(&c);
    assert!(
        wait_in_sync(&c, Duration::from_secs(60)),
        "topic not fully in sync: {:?}",
        partitions(&c, &BTreeSet::new())
    );

    let shared = Arc::new(Shared {
        history: History::new(),
        addrs: c.addrs(),
        stop_producers: AtomicBool::new(false),
        consume_until: (0..PARTITIONS).map(|_| AtomicU64::new(u64::MAX)).collect(),
        consumer_deadline: Mutex::new(None),
        consumed: (0..PARTITIONS).map(|_| AtomicU64::new(0)).collect(),
        errors: Mutex::new(BTreeMap::new()),
        group: GroupShared::from_env(),
    });
    let producers: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            let s = shared.clone();
            std::thread::spawn(move || produce_loop(&s, p))
        })
        .collect();
    let consumers: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            let s = shared.clone();
            std::thread::spawn(move || consume_loop(&s, p, p))
        })
        .collect();
    let members: Vec<_> = (0..shared.group.members)
        .map(|m| {
            let s = shared.clone();
            std::thread::spawn(move || group_member_loop(&s, m))
        })
        .collect();

    let mut rng = Rng(seed);
    let faults = schedule(&mut rng, kills, net_faults);
    let mut run = Run {
        c,
        rng,
        shared: shared.clone(),
        leader_kills: Vec::new(),
        no_majority: Vec::new(),
        net_faults: Vec::new(),
        done: BTreeMap::new(),
        in_sync_timeouts: Vec::new(),
    };
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    for (n, fault) in faults.iter().enumerate() {
        if !wait_in_sync(&run.c, Duration::from_secs(30)) {
            let previous = n.checked_sub(1).map(|i| faults[i]);
            let what = format!(
                "[{:>6.1} s] in-sync sets not full 30 s after {previous:?} ended:\n    {}",
                started.elapsed().as_secs_f64(),
                views(&run.c)
            );
            eprintln!("faults: {what}");
            run.in_sync_timeouts.push(what);
        }
        run.hold(200, 1_200);
        eprintln!(
            "faults: [{:>6.1} s] {n:>2} {fault:?}",
            started.elapsed().as_secs_f64()
        );
        run.apply(*fault);
    }
    let schedule_time = started.elapsed();
    let (report, failovers) = finish(&mut run, producers, members);
    for h in consumers {
        h.join().expect("consumer thread");
    }

    eprintln!(
        "faults: schedule took {schedule_time:.1?}, whole run {:.1?}",
        started.elapsed()
    );
    eprintln!(
        "faults: done {:?}; waits for a full in-sync set that timed out (30 s): {}",
        run.done,
        run.in_sync_timeouts.len()
    );
    eprintln!(
        "faults: client errors (retried) {:?}",
        shared.errors.lock().unwrap()
    );
    if failovers.all.is_empty() {
        eprintln!("faults: no leader was killed");
    } else {
        eprintln!(
            "faults: failover after kill -9 of a leader (first acks=all write to the partition), {}; \
             of them with no network fault meanwhile, {}",
            summary(&failovers.all),
            summary(&failovers.kill_only)
        );
    }
    eprintln!("faults: {}", group_summary(&shared.group, &report));
    let acked = report.stats.get("acked_records").copied().unwrap_or(0);
    eprintln!(
        "faults: {acked} acknowledged records ({:.0}/s over the schedule)\n{}",
        acked as f64 / schedule_time.as_secs_f64(),
        report.render()
    );
    if report.failed() > 0 {
        for i in 0..NODES {
            eprintln!(
                "---- node {} log tail ----\n{}",
                i + 1,
                run.c.log_tail(i, 40)
            );
        }
        panic!(
            "fault test found {} violations (seed {seed}); data and logs kept in {}",
            report.failed(),
            root.display()
        );
    }
    drop(run);
    if std::env::var("SPRAWL_FAULTS_KEEP").as_deref() == Ok("1") {
        eprintln!(
            "faults: SPRAWL_FAULTS_KEEP=1: data and logs kept in {}",
            root.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&root);
    }
}

/// The checker counts each kind of violation once where a history has exactly one of each,
/// and nothing on a clean history.
#[test]
fn checker_counts_each_kind_of_violation() {
    let ms = Duration::from_millis;
    let v = |s: u64| history::value(1, s, 64);
    let id = |s: u64| history::value_id(1, s);
    let invoke = Event::Invoke {
        at: ms(1_000),
        writer: 1,
        partition: 0,
        first_seq: 0,
        count: 4,
    };
    let ack = |invoked: u64, at: u64| Event::Ok {
        at: ms(at),
        invoked_at: ms(invoked),
        writer: 1,
        partition: 0,
        first_seq: 0,
        count: 4,
        base_offset: 0,
        duplicate: false,
        leader: Some(1),
    };
    let poll = |from: u64, records: Vec<(u64, Option<u64>)>| Event::Poll {
        at: ms(2_500),
        consumer: 0,
        partition: 0,
        from,
        records,
    };

    let clean_final: PartitionRead = (0..4).map(|s| (s, v(s))).collect();
    let clean = vec![
        invoke.clone(),
        ack(1_000, 1_200),
        poll(0, vec![(0, Some(id(0))), (1, Some(id(1)))]),
        poll(2, vec![(2, Some(id(2))), (3, Some(id(3)))]),
    ];
    let r = history::check(
        &clean,
        &BTreeMap::from([(0, clean_final)]),
        &[(ms(2_000), ms(3_000))],
    );
    assert_eq!(r.failed(), 0, "{}", r.render());
    assert_eq!(r.stats["acked_records"], 4);

    // Offset 3 holds s1 again: s3 is lost, s1 duplicated, offset 3 has two values. One poll
    // skips an offset, the next starts elsewhere and sees an unknown value the log does not
    // have. The ack came inside a window without majority.
    let bad_final: PartitionRead = vec![(0, v(0)), (1, v(1)), (2, v(2)), (3, v(1))];
    let bad = vec![
        invoke,
        ack(1_500, 2_000),
        poll(0, vec![(0, Some(id(0))), (2, Some(id(2)))]),
        poll(5, vec![(5, None)]),
    ];
    let r = history::check(
        &bad,
        &BTreeMap::from([(0, bad_final)]),
        &[(ms(1_000), ms(3_000))],
    );
    let want: BTreeMap<&str, u64> = BTreeMap::from([
        ("lost_acked", 1),
        ("duplicates", 1),
        ("inconsistent_offsets", 1),
        ("non_monotonic_polls", 2),
        ("unexpected_values", 1),
        ("phantom_reads", 1),
        ("acked_without_majority", 1),
    ]);
    assert_eq!(r.gates, want, "{}", r.render());

    let corrupt = {
        let mut c = v(2);
        c[40] ^= 0x20;
        c
    };
    assert_eq!(history::parse_value(&v(9)), Some(id(9)));
    assert_eq!(history::parse_value(&corrupt), None);
}
