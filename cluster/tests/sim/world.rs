//! Three replicas of one partition, a controller and a faulty network, on a virtual clock.
//!
//! The model log of a node is a `Vec<Rec>` (offset = index) with a durable prefix; a crash cuts
//! the log to that prefix and reloads the epoch history from the persisted `leader-epochs` bytes.
//! The controller elects with `cluster::elect` from the in-sync set, removes crashed nodes from
//! the in-sync set (never the last one), commits a leader's in-sync proposals when their epoch and
//! version are current, and publishes metadata that reaches each node after a random delay.

use std::collections::BTreeMap;

use cluster::{elect, Election, FollowerState, LeaderConfig, LeaderEpochs, LeaderState, LocalLog};

use super::net::{Cut, Faults, Isolation, Net, Rec};
use super::rng::Rng;

pub const NODES: [u32; 3] = [1, 2, 3];
pub(super) const TICK_MS: u64 = 10;
pub(super) const FETCH_RECORDS_MAX: usize = 8;
pub(super) const BATCH_RECORDS_MAX: usize = 3;
pub(super) const FETCH_TIMEOUT_TICKS: u64 = 6;
pub(super) const PROPOSAL_RESEND_TICKS: u64 = 10;
pub(super) const CHECK_EVERY_TICKS: u64 = 16;

#[derive(Debug, Clone)]
pub struct Meta {
    pub version: u64,
    pub leader: Option<u32>,
    pub epoch: u32,
    pub isr: Vec<u32>,
    pub isr_version: u32,
}

pub(super) struct Disk {
    pub(super) log: Vec<Rec>,
    pub(super) durable: usize,
    pub(super) epochs_file: Vec<u8>,
}

pub(super) enum Role {
    Down { until: u64 },
    Follower(FollowerState),
    Leader(LeaderState),
}

pub(super) struct Node {
    pub(super) id: u32,
    pub(super) disk: Disk,
    pub(super) role: Role,
    pub(super) meta_version: u64,
    pub(super) meta_inbox: Vec<(u64, Meta)>,
    pub(super) fetch_sent_at: Option<u64>,
    pub(super) proposal_sent_at: u64,
}

impl Node {
    pub(super) fn up(&self) -> bool {
        !matches!(self.role, Role::Down { .. })
    }

    pub(super) fn local(&self) -> Option<&LocalLog> {
        match &self.role {
            Role::Down { .. } => None,
            Role::Follower(f) => Some(f.local()),
            Role::Leader(l) => Some(l.local()),
        }
    }

    pub(super) fn persist_epochs(&mut self) -> Result<(), String> {
        let Some(local) = self.local() else {
            return Ok(());
        };
        let bytes = local.epochs.encode();
        let back = LeaderEpochs::decode(&bytes).map_err(|e| format!("epochs file: {e}"))?;
        if back != local.epochs {
            return Err(format!("node {}: epochs file did not round-trip", self.id));
        }
        self.disk.epochs_file = bytes;
        Ok(())
    }
}

/// How often each fault happens, in per mille per tick; drawn per seed so seeds differ in kind,
/// not only in order.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rates {
    pub(super) crash: u64,
    pub(super) quick_crash: u64,
    pub(super) leader_move: u64,
    pub(super) isolate: u64,
    pub(super) sync: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub produced: u64,
    pub acked: u64,
    pub observed: u64,
    pub elections: u64,
    pub crashes: u64,
    pub truncations: u64,
    pub not_enough_replicas: u64,
    pub isr_commits: u64,
    pub refused_old_epoch: u64,
}

pub struct World {
    pub(super) rng: Rng,
    pub(super) net: Net,
    pub(super) now: u64,
    pub(super) nodes: Vec<Node>,
    pub(super) meta: Meta,
    pub(super) config: LeaderConfig,
    pub(super) rates: Rates,
    pub(super) chaos: bool,
    pub(super) acked: BTreeMap<u64, Rec>,
    pub(super) observed: Vec<Rec>,
    pub(super) pending_acks: Vec<(u32, u32, u64, Rec)>,
    pub(super) hw_seen: BTreeMap<(u32, u32), u64>,
    /// Epochs some node has led at: none may be led twice.
    pub(super) led: std::collections::BTreeSet<u32>,
    pub(super) next_payload: u64,
    pub(super) trace: u64,
    /// `REPLICA_SIM_TRACE=1`: print every event to stderr.
    pub(super) verbose: bool,
    pub stats: Stats,
}

impl World {
    pub fn new(seed: u64) -> Result<Self, String> {
        let mut rng = Rng::new(seed);
        let faults = Faults {
            drop_per_mille: rng.between(0, 150),
            dup_per_mille: rng.between(0, 100),
            delay_ticks_max: rng.between(1, 8),
        };
        // Even seeds use one fixed mix of faults; odd seeds draw their own.
        let rates = if seed.is_multiple_of(2) {
            Rates {
                crash: 6,
                quick_crash: 4,
                leader_move: 4,
                isolate: 4,
                sync: 200,
            }
        } else {
            Rates {
                crash: rng.between(1, 12),
                quick_crash: rng.between(0, 8),
                leader_move: rng.between(0, 8),
                isolate: rng.between(0, 8),
                sync: rng.between(50, 400),
            }
        };
        let empty = LeaderEpochs::new().encode();
        let nodes = NODES
            .iter()
            .map(|&id| {
                Ok(Node {
                    id,
                    disk: Disk {
                        log: Vec::new(),
                        durable: 0,
                        epochs_file: empty.clone(),
                    },
                    role: Role::Follower(
                        FollowerState::new(id, None, 0, LocalLog::empty())
                            .map_err(|e| e.to_string())?,
                    ),
                    meta_version: 0,
                    meta_inbox: Vec::new(),
                    fetch_sent_at: None,
                    proposal_sent_at: 0,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut w = Self {
            rng,
            net: Net::new(faults),
            now: 0,
            nodes,
            meta: Meta {
                version: 0,
                leader: None,
                epoch: 0,
                isr: NODES.to_vec(),
                isr_version: 0,
            },
            rates,
            config: LeaderConfig {
                replica_lag_max_ms: 300,
                min_insync: 2,
            },
            chaos: true,
            acked: BTreeMap::new(),
            observed: Vec::new(),
            pending_acks: Vec::new(),
            hw_seen: BTreeMap::new(),
            led: std::collections::BTreeSet::new(),
            next_payload: 1,
            trace: 0xcbf2_9ce4_8422_2325,
            verbose: std::env::var_os("REPLICA_SIM_TRACE").is_some(),
            stats: Stats::default(),
        };
        if w.elect_leader(None)? {
            w.broadcast();
        }
        Ok(w)
    }

    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    pub(super) fn mix(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.trace ^= u64::from(b);
            self.trace = self.trace.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub(super) fn event(&self, what: std::fmt::Arguments<'_>) {
        if self.verbose {
            eprintln!("[{:>5}] {what}", self.now);
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.now * TICK_MS
    }

    pub(super) fn idx(id: u32) -> usize {
        (id - 1) as usize
    }

    // ---------------------------------------------------------------- controller

    pub(super) fn broadcast(&mut self) {
        self.meta.version += 1;
        for i in 0..self.nodes.len() {
            if self.nodes[i].up() {
                let at = self.now + self.rng.between(0, 8);
                self.nodes[i].meta_inbox.push((at, self.meta.clone()));
            }
        }
    }

    /// Elects from the in-sync set; `avoid` moves leadership away from a live leader (and then
    /// "offline" means "keep the current one").
    pub(super) fn elect_leader(&mut self, avoid: Option<u32>) -> Result<bool, String> {
        let alive: Vec<bool> = self.nodes.iter().map(Node::up).collect();
        let e = elect(
            &NODES,
            &self.meta.isr,
            self.meta.epoch,
            |n| alive[Self::idx(n)] && Some(n) != avoid,
            false,
        );
        self.mix(0xE1EC);
        match e {
            Election::Clean { node_id, epoch } => {
                self.event(format_args!(
                    "elect {node_id} at epoch {epoch}, isr {:?}",
                    self.meta.isr
                ));
                self.meta.leader = Some(node_id);
                self.meta.epoch = epoch;
                self.stats.elections += 1;
                Ok(true)
            }
            Election::Unclean { .. } => fail!("unclean election without opting in"),
            Election::Offline if avoid.is_none() => {
                let changed = self.meta.leader.is_some();
                self.meta.leader = None;
                Ok(changed)
            }
            Election::Offline => Ok(false),
        }
    }

    pub(super) fn controller_on_crash(&mut self, id: u32) -> Result<(), String> {
        let mut changed = false;
        if self.meta.isr.contains(&id) && self.meta.isr.len() > 1 {
            self.meta.isr.retain(|n| *n != id);
            self.meta.isr_version += 1;
            self.event(format_args!(
                "controller drops crashed {id}: isr {:?} v{}",
                self.meta.isr, self.meta.isr_version
            ));
            changed = true;
        }
        if self.meta.leader == Some(id) {
            self.elect_leader(None)?;
            changed = true;
        }
        if changed {
            self.broadcast();
        }
        Ok(())
    }

    /// A node that metadata names as leader came back from a crash the controller did not see
    /// and refused to lead again at its old epoch: elect anew (it may win again, at a new epoch).
    pub(super) fn controller_on_leader_restart(&mut self, id: u32) -> Result<(), String> {
        if self.meta.leader == Some(id) && self.elect_leader(None)? {
            self.broadcast();
        }
        Ok(())
    }

    pub(super) fn controller_on_proposal(&mut self, from: u32, change: cluster::IsrChange) {
        let added_down = change
            .in_sync
            .iter()
            .any(|n| !self.meta.isr.contains(n) && !self.nodes[Self::idx(*n)].up());
        let ok = self.meta.leader == Some(from)
            && change.leader_epoch == self.meta.epoch
            && change.isr_version == self.meta.isr_version
            && change.in_sync.contains(&from)
            && change.in_sync.iter().all(|n| NODES.contains(n))
            && !added_down;
        if ok {
            self.event(format_args!(
                "commit isr {:?} v{} from {from}",
                change.in_sync,
                self.meta.isr_version + 1
            ));
            self.meta.isr = change.in_sync;
            self.meta.isr_version += 1;
            self.stats.isr_commits += 1;
            self.broadcast();
        } else if change.leader_epoch == self.meta.epoch
            && change.isr_version == self.meta.isr_version
        {
            // Refusing a proposal that is still current: commit the same set at a new version,
            // or a duplicate of the proposal could commit later. Stale proposals are dropped.
            self.meta.isr_version += 1;
            self.event(format_args!(
                "refuse {:?} from {from}: isr stays {:?} at v{}",
                change.in_sync, self.meta.isr, self.meta.isr_version
            ));
            self.broadcast();
        }
    }

    pub fn tick(&mut self) -> Result<(), String> {
        self.now += 1;
        let now = self.now;
        for i in 0..self.nodes.len() {
            if matches!(self.nodes[i].role, Role::Down { until } if until <= now) {
                self.restart(i)?;
            }
        }
        for i in 0..self.nodes.len() {
            let inbox = std::mem::take(&mut self.nodes[i].meta_inbox);
            let (due, later): (Vec<_>, Vec<_>) = inbox.into_iter().partition(|m| m.0 <= now);
            self.nodes[i].meta_inbox = later;
            for (_, meta) in due {
                self.apply_meta(i, meta)?;
            }
        }
        for env in self.net.due(now) {
            self.deliver(env)?;
        }
        if self.chaos {
            if self.rng.chance(self.rates.crash) {
                let i = self.rng.below(3) as usize;
                if self.nodes[i].up() {
                    self.crash(i, true)?;
                }
            }
            if self.rng.chance(self.rates.quick_crash) {
                let i = self.rng.below(3) as usize;
                if self.nodes[i].up() {
                    self.crash(i, false)?;
                }
            }
            if self.rng.chance(self.rates.leader_move) {
                if let Some(l) = self.meta.leader {
                    if self.elect_leader(Some(l))? {
                        self.broadcast();
                    }
                }
            }
            if self.rng.chance(self.rates.isolate)
                && self.net.isolated.is_none_or(|i| i.until <= now)
            {
                let node = NODES[self.rng.below(3) as usize];
                let cut = [Cut::Both, Cut::Outbound, Cut::Inbound][self.rng.below(3) as usize];
                let until = now + self.rng.between(10, 80);
                self.event(format_args!("isolate {node} ({cut:?}) until {until}"));
                self.net.isolated = Some(Isolation { node, until, cut });
            }
            if self.rng.chance(450) {
                self.produce();
            }
        }
        self.node_actions();
        self.settle_acks()?;
        if self.rng.chance(100) {
            self.consume()?;
        }
        self.check_watermarks()?;
        if now.is_multiple_of(CHECK_EVERY_TICKS) {
            self.check_replicas()?;
            if let Some(l) = self.meta.leader {
                let i = Self::idx(l);
                if matches!(&self.nodes[i].role, Role::Leader(s) if s.leader_epoch() == self.meta.epoch)
                {
                    self.check_leader_holds_history(i)?;
                }
            }
        }
        Ok(())
    }

    /// Ends the faults: every node back, a clean network, no more crashes or produce.
    pub fn heal(&mut self) {
        self.chaos = false;
        self.net.faults = Faults {
            drop_per_mille: 0,
            dup_per_mille: 0,
            delay_ticks_max: 2,
        };
        self.net.isolated = None;
        for n in &mut self.nodes {
            if let Role::Down { until } = &mut n.role {
                *until = self.now + 1;
            }
        }
    }

    /// All replicas hold the leader's whole log on disk and the leader's high watermark covers it.
    pub fn converged(&self) -> bool {
        let Some(leader) = self.meta.leader else {
            return false;
        };
        let ln = &self.nodes[Self::idx(leader)];
        let Role::Leader(l) = &ln.role else {
            return false;
        };
        l.leader_epoch() == self.meta.epoch
            && l.high_watermark() == ln.disk.log.len() as u64
            && self
                .nodes
                .iter()
                .all(|n| n.up() && n.disk.log == ln.disk.log && n.disk.durable == n.disk.log.len())
    }

    /// After convergence: every acknowledged and every consumed record is in the final log.
    pub fn final_check(&mut self) -> Result<(), String> {
        let leader = self.meta.leader.ok_or("no leader after heal")?;
        let i = Self::idx(leader);
        self.check_leader_holds_history(i)?;
        self.check_replicas()?;
        let log = self.nodes[i].disk.log.clone();
        for rec in &log {
            self.mix(rec.payload);
        }
        Ok(())
    }
}
