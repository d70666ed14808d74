//! The simulated cluster: nodes, disks, network, fault injection and the
//! safety checks that run after every step. Scenarios are in `scenarios.rs`.

use std::collections::{BTreeMap, VecDeque};

use meta::{Command, MemBackend, MetaConfig, MetaNode, Outgoing, ProposalId, Role};

mod scenarios;

/// Steps of simulated time per raft tick (one step ~ 10 ms, one tick ~ 100 ms).
pub const STEPS_PER_TICK: u64 = 10;

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

struct Packet {
    deliver_at: u64,
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

#[derive(Clone, Copy)]
struct Faults {
    drop_per_mille: u64,
    dup_per_mille: u64,
    latency_steps_max: u64,
}

pub struct Sim {
    rng: Rng,
    n: usize,
    now: u64,
    nodes: Vec<Option<MetaNode<MemBackend>>>,
    disks: Vec<MemBackend>,
    phase: Vec<u64>,
    paused_until: Vec<u64>,
    down_until: Vec<u64>,
    /// `blocked[from][to]`: messages on that link are lost.
    blocked: Vec<Vec<bool>>,
    heal_at: u64,
    net: VecDeque<Packet>,
    faults: Faults,
    /// Index -> (term, command bytes) of the first node that applied it.
    applied_log: BTreeMap<u64, (u64, Option<Command>)>,
    leaders: BTreeMap<u64, u64>,
    pending: BTreeMap<ProposalId, (usize, String)>,
    /// Acknowledged topic name -> index at which its proposer saw it applied.
    acked: BTreeMap<String, u64>,
    next_op: u64,
    trace: u64,
    stats: Stats,
}

/// What a run exercised, summed over seeds and printed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub crashes: u64,
    pub partitions: u64,
    pub pauses: u64,
    pub elections: u64,
    pub snapshots_installed: u64,
    pub compactions: u64,
    pub acked: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.crashes += o.crashes;
        self.partitions += o.partitions;
        self.pauses += o.pauses;
        self.elections += o.elections;
        self.snapshots_installed += o.snapshots_installed;
        self.compactions += o.compactions;
        self.acked += o.acked;
    }
}

fn config(id: u64, n: usize, seed: u64) -> MetaConfig {
    let mut c = MetaConfig::new(id, (1..=n as u64).collect(), seed);
    c.snapshot_every_entries = 16;
    c.unapplied_entries_max = 32;
    c.log_file_bytes_max = 4096;
    c.append_bytes_max = 2048;
    c.inflight_messages_max = 8;
    c
}

impl Sim {
    /// The trace hash (equal for equal runs) and what the run exercised.
    pub fn finish(mut self) -> (u64, Stats) {
        self.stats.acked = self.acked.len() as u64;
        (self.trace, self.stats)
    }

    pub fn new(seed: u64, n: usize) -> Self {
        let mut rng = Rng(seed);
        let disks: Vec<MemBackend> = (0..n).map(|_| MemBackend::new()).collect();
        let nodes = (0..n)
            .map(|i| {
                let node_seed = rng.next();
                Some(MetaNode::open(config(i as u64 + 1, n, node_seed), disks[i].clone()).unwrap())
            })
            .collect();
        let phase = (0..n).map(|_| rng.below(STEPS_PER_TICK)).collect();
        let faults = Faults {
            drop_per_mille: rng.below(150),
            dup_per_mille: rng.below(80),
            latency_steps_max: 1 + rng.below(12),
        };
        Self {
            rng,
            n,
            now: 0,
            nodes,
            disks,
            phase,
            paused_until: vec![0; n],
            down_until: vec![0; n],
            blocked: vec![vec![false; n]; n],
            heal_at: u64::MAX,
            net: VecDeque::new(),
            faults,
            applied_log: BTreeMap::new(),
            leaders: BTreeMap::new(),
            pending: BTreeMap::new(),
            acked: BTreeMap::new(),
            next_op: 0,
            trace: 0xCBF2_9CE4_8422_2325,
            stats: Stats::default(),
        }
    }

    fn mix(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.trace = (self.trace ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
        }
    }

    fn send(&mut self, from: usize, msgs: Vec<Outgoing>) {
        for m in msgs {
            let to = m.to as usize - 1;
            if self.rng.chance(self.faults.drop_per_mille) {
                continue;
            }
            let copies = if self.rng.chance(self.faults.dup_per_mille) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let deliver_at = self.now + 1 + self.rng.below(self.faults.latency_steps_max);
                self.net.push_back(Packet {
                    deliver_at,
                    from,
                    to,
                    bytes: m.bytes.clone(),
                });
            }
        }
    }

    /// Drains node `i` until it has nothing ready, checking what it applied.
    fn drain(&mut self, i: usize) -> Result<(), String> {
        for _ in 0..64 {
            let Some(node) = self.nodes[i].as_mut() else {
                return Ok(());
            };
            if !node.has_ready() {
                return Ok(());
            }
            let out = node
                .drain()
                .map_err(|e| format!("node {} drain: {e}", i + 1))?;
            self.stats.snapshots_installed += u64::from(out.persisted.installed_snapshot.is_some());
            self.stats.compactions += u64::from(out.persisted.compacted_to.is_some());
            for a in &out.applied {
                self.mix(a.index ^ (a.term << 40) ^ ((i as u64) << 60));
                match self.applied_log.get(&a.index) {
                    Some((term, cmd)) if (*term, cmd) != (a.term, &a.command) => {
                        return Err(format!(
                            "node {} applied {:?} at index {} term {}, another node applied {cmd:?} term {term}",
                            i + 1,
                            a.command,
                            a.index,
                            a.term
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.applied_log
                            .insert(a.index, (a.term, a.command.clone()));
                    }
                }
                if let Some(id) = a.proposal.filter(|id| id.node_id == i as u64 + 1) {
                    if let Some((_, name)) = self.pending.remove(&id) {
                        if a.outcome.is_ok() {
                            self.acked.insert(name, a.index);
                        }
                    }
                }
            }
            self.send(i, out.messages);
        }
        Err(format!("node {} still has work after 64 drains", i + 1))
    }

    fn check_leaders(&mut self) -> Result<(), String> {
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(node) = node else { continue };
            let st = node.status();
            if st.role == Role::Leader {
                let id = i as u64 + 1;
                if let Some(&other) = self.leaders.get(&st.term) {
                    if other != id {
                        return Err(format!("two leaders in term {}: {other} and {id}", st.term));
                    }
                } else {
                    self.stats.elections += 1;
                }
                self.leaders.insert(st.term, id);
            }
        }
        Ok(())
    }

    fn campaigning(&self) -> bool {
        self.nodes
            .iter()
            .flatten()
            .any(|n| n.status().role == Role::Candidate)
    }

    fn leader(&self) -> Option<usize> {
        (0..self.n).find(|&i| {
            self.nodes[i]
                .as_ref()
                .is_some_and(|n| n.status().role == Role::Leader)
                && self.paused_until[i] <= self.now
        })
    }

    fn propose(&mut self) {
        let target = match self.leader() {
            Some(l) if !self.rng.chance(150) => l,
            _ => self.rng.below(self.n as u64) as usize,
        };
        let k = self.next_op;
        self.next_op += 1;
        let roll = self.rng.below(100);
        let (cmd, name) = if roll < 85 {
            let name = format!("c{k}");
            let cmd = Command::CreateTopic {
                name: name.clone(),
                partitions: 1,
                replication_factor: 1,
                min_insync: 1,
                config: vec![],
            };
            (cmd, Some(name))
        } else if roll < 95 {
            (
                Command::DeleteTopic {
                    name: format!("missing{k}"),
                },
                None,
            )
        } else {
            let cmd = Command::RegisterNode {
                node_id: k % 50 + 1,
                client_addr: format!("10.1.0.{}:7070", k % 50),
            };
            (cmd, None)
        };
        if self.paused_until[target] > self.now {
            return;
        }
        let Some(node) = self.nodes[target].as_mut() else {
            return;
        };
        if let Ok(id) = node.propose(&cmd) {
            if let Some(name) = name {
                self.pending.insert(id, (target, name));
            }
        }
    }

    fn restart(&mut self, i: usize) -> Result<(), String> {
        let seed = self.rng.next();
        let node = MetaNode::open(config(i as u64 + 1, self.n, seed), self.disks[i].clone())
            .map_err(|e| format!("node {} reopen: {e}", i + 1))?;
        self.nodes[i] = Some(node);
        Ok(())
    }

    fn heal(&mut self) {
        for row in &mut self.blocked {
            row.iter_mut().for_each(|b| *b = false);
        }
        self.heal_at = u64::MAX;
    }

    fn inject_fault(&mut self) {
        let i = match self.leader() {
            Some(l) if self.rng.chance(300) => l,
            _ => self.rng.below(self.n as u64) as usize,
        };
        let duration = STEPS_PER_TICK * (5 + self.rng.below(40));
        match self.rng.below(7) {
            0 | 6 if self.nodes[i].is_some() => {
                // Power loss: everything unsynced is gone, or a torn prefix
                // stays. Half the time the node is back within a tick (kill -9
                // and restart), which is when a forgotten vote would show.
                self.nodes[i] = None;
                self.stats.crashes += 1;
                let keep = if self.rng.chance(500) {
                    0
                } else {
                    self.rng.below(300)
                };
                self.disks[i].crash(keep);
                let down = if self.rng.chance(500) {
                    1 + self.rng.below(STEPS_PER_TICK)
                } else {
                    duration
                };
                self.down_until[i] = self.now + down;
            }
            1 => {
                self.paused_until[i] = self.now + duration;
                self.stats.pauses += 1;
            }
            2 => {
                // Isolate one node both ways.
                for j in 0..self.n {
                    self.blocked[i][j] = j != i;
                    self.blocked[j][i] = j != i;
                }
                self.heal_at = self.now + duration;
            }
            3 => {
                // One-way: `i` hears nobody, or nobody hears `i`.
                let inbound = self.rng.chance(500);
                for j in (0..self.n).filter(|&j| j != i) {
                    if inbound {
                        self.blocked[j][i] = true;
                    } else {
                        self.blocked[i][j] = true;
                    }
                }
                self.heal_at = self.now + duration;
            }
            4 => {
                // Random split into two sides.
                let side: Vec<bool> = (0..self.n).map(|_| self.rng.chance(500)).collect();
                for a in 0..self.n {
                    for b in 0..self.n {
                        self.blocked[a][b] = side[a] != side[b];
                    }
                }
                self.heal_at = self.now + duration;
            }
            _ => self.heal(),
        }
        self.stats.partitions += u64::from(self.heal_at != u64::MAX);
    }

    /// One step of virtual time: deliveries, ticks, drains, safety checks.
    fn step(&mut self) -> Result<(), String> {
        self.now += 1;
        if self.now >= self.heal_at {
            self.heal();
        }
        for i in 0..self.n {
            if self.nodes[i].is_none() && self.down_until[i] <= self.now {
                self.restart(i)?;
            }
        }
        let mut later = VecDeque::with_capacity(self.net.len());
        while let Some(p) = self.net.pop_front() {
            if p.deliver_at > self.now || self.paused_until[p.to] > self.now {
                later.push_back(p);
                continue;
            }
            if self.blocked[p.from][p.to] {
                continue;
            }
            self.mix(p.bytes.len() as u64 ^ ((p.to as u64) << 32));
            let Some(node) = self.nodes[p.to].as_mut() else {
                continue;
            };
            // Stale or duplicate messages may be refused; that is not a failure.
            let _ = node.step(&p.bytes);
            self.drain(p.to)?;
        }
        self.net = later;
        for i in 0..self.n {
            if self.paused_until[i] > self.now || self.now % STEPS_PER_TICK != self.phase[i] {
                continue;
            }
            if let Some(node) = self.nodes[i].as_mut() {
                node.tick();
                self.drain(i)?;
            }
        }
        self.check_leaders()
    }
}
