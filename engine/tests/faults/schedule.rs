//! The seeded fault schedule and how each fault is carried out on the cluster.

use super::*;

/// One fault of the schedule (see the table in `docs/fault-tests.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fault {
    Kill,
    Isolate,
    DropFrom,
    DropTo,
    Cut,
    Lossy,
    LastStanding,
}

/// `kills` kills, `partitions` network partitions (a quarter of each kind), one lossy period and
/// one "last replica standing", shuffled (Fisher-Yates).
pub(crate) fn schedule(rng: &mut Rng, kills: usize, partitions: usize) -> Vec<Fault> {
    let kinds = [Fault::Isolate, Fault::DropFrom, Fault::DropTo, Fault::Cut];
    let mut faults = vec![Fault::Kill; kills];
    faults.extend((0..partitions).map(|i| kinds[i % kinds.len()]));
    faults.extend([Fault::Lossy, Fault::LastStanding]);
    for i in (1..faults.len()).rev() {
        faults.swap(i, rng.below(i as u64 + 1) as usize);
    }
    faults
}

/// A kill of a partition's leader: `at` in history time, `victim` a node id.
#[derive(Debug)]
pub(crate) struct LeaderKill {
    pub(crate) partition: u32,
    pub(crate) at: Duration,
    pub(crate) victim: u32,
    pub(crate) controller_leader: bool,
    pub(crate) restart_after: Duration,
}

/// When a network fault's rules were in place (history time), so that a failover can be told
/// apart from one that overlapped another fault.
#[derive(Debug)]
pub(crate) struct NetFault {
    pub(crate) kind: Fault,
    /// Which nodes: `3` (isolated), `1->3` (packets from 1 to 3 dropped), `1<->3` (both ways),
    /// `all` (lossy), `1 and 2` (both isolated: last replica standing).
    pub(crate) nodes: String,
    pub(crate) from: Duration,
    pub(crate) to: Duration,
}

impl NetFault {
    /// Whether the fault's window meets `[at, at + long]`.
    pub(crate) fn overlaps(&self, at: Duration, long: Duration) -> bool {
        self.from <= at + long && self.to >= at
    }
}

/// The metadata controllers' Raft leader as some node other than index `not` sees it.
pub(crate) fn controller_leader(c: &NsCluster, not: usize) -> Option<u64> {
    (0..c.len()).filter(|i| *i != not).find_map(|i| {
        let (_, body) = c.get(i, "/cluster")?;
        let doc: Value = serde_json::from_str(&body).ok()?;
        doc["controller"]["leader_id"]
            .as_u64()
            .filter(|id| *id != 0)
    })
}

/// Panics naming the node when a fault rule could not be installed.
fn must<E: std::fmt::Display>(r: Result<(), E>, what: &str, i: usize) {
    if let Err(e) = r {
        panic!("{what} node {}: {e}", i + 1);
    }
}

/// A run of the schedule: the cluster, the PRNG and what the faults recorded.
pub(crate) struct Run {
    pub(crate) c: NsCluster,
    pub(crate) rng: Rng,
    pub(crate) shared: Arc<Shared>,
    pub(crate) leader_kills: Vec<LeaderKill>,
    /// "Last replica standing" windows, history time.
    pub(crate) no_majority: Vec<(Duration, Duration)>,
    pub(crate) net_faults: Vec<NetFault>,
    pub(crate) done: BTreeMap<Fault, u64>,
    pub(crate) in_sync_timeouts: Vec<String>,
}

impl Run {
    pub(crate) fn start(&mut self, i: usize) {
        if let Err(e) = self.c.start(i) {
            panic!("restart of node {} failed: {e}", i + 1);
        }
    }

    pub(crate) fn hold(&mut self, lo_ms: u64, hi_ms: u64) {
        std::thread::sleep(self.rng.millis(lo_ms, hi_ms));
    }

    fn node(&mut self) -> usize {
        self.rng.below(self.c.len() as u64) as usize
    }

    /// Two distinct nodes.
    fn pair(&mut self) -> (usize, usize) {
        let n = self.c.len();
        let a = self.node();
        let b = (a + 1 + self.rng.below(n as u64 - 1) as usize) % n;
        (a, b)
    }

    fn heal(&self, i: usize) {
        must(self.c.lab.heal(i), "heal", i);
    }

    /// Records a network fault whose rules were in place from `from` until now.
    fn record(&mut self, kind: Fault, nodes: String, from: Duration) {
        let to = self.shared.history.now();
        self.net_faults.push(NetFault {
            kind,
            nodes,
            from,
            to,
        });
    }

    /// Holds a network fault installed at `from` for 3-8 s, heals `nodes`, records its window.
    fn hold_and_heal(&mut self, kind: Fault, label: String, from: Duration, nodes: &[usize]) {
        self.hold(3_000, 8_000);
        for i in nodes {
            self.heal(*i);
        }
        self.record(kind, label, from);
    }

    /// Carries out one fault and waits until it has ended (nodes healed and running again).
    pub(crate) fn apply(&mut self, f: Fault) {
        match f {
            Fault::Kill => {
                let victim = self.node();
                let led = leaders(&self.c, &BTreeSet::new());
                let controller_leader =
                    controller_leader(&self.c, victim) == Some(victim as u64 + 1);
                let restart_after = self.rng.millis(0, 3_000);
                self.c.kill9(victim);
                let at = self.shared.history.now();
                for (partition, leader) in led {
                    if leader == victim {
                        self.leader_kills.push(LeaderKill {
                            partition,
                            at,
                            victim: victim as u32 + 1,
                            controller_leader,
                            restart_after,
                        });
                    }
                }
                std::thread::sleep(restart_after);
                self.start(victim);
            }
            Fault::Isolate => {
                let v = self.node();
                must(self.c.lab.isolate(v), "isolate", v);
                let from = self.shared.history.now();
                self.hold_and_heal(f, format!("{}", v + 1), from, &[v]);
            }
            Fault::DropFrom => {
                let (a, b) = self.pair();
                must(self.c.lab.drop_from(a, b), "drop-from on", a);
                let from = self.shared.history.now();
                self.hold_and_heal(f, format!("{}->{}", b + 1, a + 1), from, &[a]);
            }
            Fault::DropTo => {
                let (a, b) = self.pair();
                must(self.c.lab.drop_to(a, b), "drop-to on", a);
                let from = self.shared.history.now();
                self.hold_and_heal(f, format!("{}->{}", a + 1, b + 1), from, &[a]);
            }
            Fault::Cut => {
                let (a, b) = self.pair();
                must(self.c.lab.drop_from(a, b), "cut on", a);
                must(self.c.lab.drop_from(b, a), "cut on", b);
                let from = self.shared.history.now();
                self.hold_and_heal(f, format!("{}<->{}", a + 1, b + 1), from, &[a, b]);
            }
            Fault::Lossy => {
                for i in 0..self.c.len() {
                    must(self.c.lab.lossy(i, 10), "lossy on", i);
                }
                let from = self.shared.history.now();
                std::thread::sleep(Duration::from_secs(10));
                for i in 0..self.c.len() {
                    self.heal(i);
                }
                self.record(f, "all".into(), from);
            }
            Fault::LastStanding => {
                let third = self.node();
                let two: Vec<usize> = (0..self.c.len()).filter(|i| *i != third).collect();
                for i in &two {
                    must(self.c.lab.isolate(*i), "isolate", *i);
                }
                let from = self.shared.history.now();
                std::thread::sleep(Duration::from_secs(5));
                self.c.kill9(third);
                std::thread::sleep(Duration::from_secs(1));
                // The window ends before the heal: from then on a majority may form again.
                let to = self.shared.history.now();
                for i in &two {
                    self.heal(*i);
                }
                self.no_majority.push((from, to));
                self.record(f, format!("{} and {}", two[0] + 1, two[1] + 1), from);
                self.hold(1_000, 3_000);
                self.start(third);
            }
        }
        *self.done.entry(f).or_default() += 1;
    }
}
