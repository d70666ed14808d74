//! Decisions: move a partition to a cooler shard, recommend a split, recommend scale-out ahead of predicted
//! saturation, and scale-in only on measured (never forecast) low load.
//!
//! Anti-flapping is structural: a partition moves at most once per `move_cooldown_s`, never back to the shard
//! it left within `no_return_s`, and only when the move strictly lowers the busiest shard's load.

use std::collections::HashMap;

use crate::config::DecisionConfig;
use crate::keys::SeededState;

/// One shard of the placement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardInfo {
    /// Shard id.
    pub shard: u32,
    /// Node that hosts the shard.
    pub node: u32,
    /// Messages per second the shard can absorb.
    pub capacity_msgs_per_s: f64,
}

/// Which partition lives on which shard, and what the shards can take. Supplied by the engine each tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    /// All shards.
    pub shards: Vec<ShardInfo>,
    /// `(partition, shard)` pairs.
    pub assignment: Vec<(u32, u32)>,
}

/// An action the engine may take (or, in `advise` mode, report).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Move `partition` from `from_shard` to `to_shard`.
    Move {
        /// Partition to move.
        partition: u32,
        /// Current shard.
        from_shard: u32,
        /// Target shard (the coolest that lowers the maximum load).
        to_shard: u32,
        /// True when the target is on another node (a placement hint for the controller).
        cross_node: bool,
        /// Smoothed partition rate used for the decision.
        rate_msgs_per_s: f64,
    },
    /// The partition cannot be fixed by moving it: split it (at `split_key` if a hot key is known).
    Split {
        /// Partition to split.
        partition: u32,
        /// Its smoothed rate.
        rate_msgs_per_s: f64,
        /// Heaviest key of the last window, a natural split point.
        split_key: Option<u64>,
    },
    /// Add capacity: the cluster load is forecast (or measured) to reach saturation.
    ScaleOut {
        /// Load forecast `lead_s` ahead (or the measured load when `predicted` is false).
        load_msgs_per_s: f64,
        /// Current total capacity.
        capacity_msgs_per_s: f64,
        /// Forecast lead in seconds (0 when reactive).
        lead_s: f64,
        /// True when triggered by the forecast, false when by the measured load.
        predicted: bool,
    },
    /// In a cluster: this node leads `partition` and is the busiest node; `to_node`, an in-sync
    /// replica, should lead it instead (a hint for the controller, see [`crate::lead`]).
    Lead {
        /// Partition (analyzer id).
        partition: u32,
        /// This node, its leader now.
        from_node: u32,
        /// The in-sync replica asked to lead.
        to_node: u32,
        /// Smoothed partition rate used for the decision.
        rate_msgs_per_s: f64,
    },
    /// Capacity could be removed: measured load stayed low for `scale_in_after_s`. Never from a forecast.
    ScaleIn {
        /// Measured load.
        load_msgs_per_s: f64,
        /// Current total capacity.
        capacity_msgs_per_s: f64,
    },
}

#[derive(Debug, Clone, Copy)]
struct MoveRecord {
    t_s: u64,
    from_shard: u32,
}

/// Decision state: move history, split history, and the cluster-load forecaster.
#[derive(Debug, Clone)]
pub struct Decider {
    moves: HashMap<u32, MoveRecord, SeededState>,
    splits: HashMap<u32, u64, SeededState>,
    cluster_level: f64,
    cluster_trend: f64,
    cluster_steps: u64,
    out_votes: u32,
    measured_votes: u32,
    last_scale_out_s: Option<u64>,
    low_since_s: Option<u64>,
    last_scale_in_s: Option<u64>,
    loads: Vec<f64>,
    shard_index: Vec<u32>,
}

/// What the decider needs to know about one partition this tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionLoad {
    /// Smoothed msgs/s.
    pub rate_msgs_per_s: f64,
    /// Seconds it has been hot without a break (None when not hot).
    pub hot_for_s: Option<u64>,
    /// Heaviest key of the last window, if keys are tracked.
    pub top_key: Option<u64>,
}

const CLUSTER_ALPHA: f64 = 0.05;
const CLUSTER_BETA: f64 = 0.002;
/// Shard ids below this are looked up through a dense index; larger ids by a linear search.
const SHARD_INDEX_MAX: usize = 4096;
/// A hot partition that stays hot this long is recommended for a split.
const SPLIT_AFTER_HOT_S: u64 = 30;

impl Decider {
    /// Empty state; `seed` keys the internal hash maps.
    pub fn new(seed: u64) -> Self {
        Decider {
            moves: HashMap::with_hasher(SeededState::new(seed ^ 0xdec1)),
            splits: HashMap::with_hasher(SeededState::new(seed ^ 0x5b17)),
            cluster_level: 0.0,
            cluster_trend: 0.0,
            cluster_steps: 0,
            out_votes: 0,
            measured_votes: 0,
            last_scale_out_s: None,
            low_since_s: None,
            last_scale_in_s: None,
            loads: Vec::new(),
            shard_index: Vec::new(),
        }
    }

    /// Cluster-load forecast `lead_s` ahead (Holt, undamped).
    pub fn cluster_forecast(&self, lead_s: f64) -> f64 {
        self.cluster_level + self.cluster_trend * lead_s
    }

    /// Runs one decision round.
    pub fn decide(
        &mut self,
        cfg: &DecisionConfig,
        now_s: u64,
        placement: &Placement,
        load_of: &dyn Fn(u32) -> PartitionLoad,
        out: &mut Vec<Decision>,
    ) {
        if placement.shards.is_empty() {
            return;
        }
        // Shard ids are small and dense in practice: index them once per round instead of per partition.
        let mut index = std::mem::take(&mut self.shard_index);
        index.clear();
        for (i, sh) in placement.shards.iter().enumerate() {
            let id = sh.shard as usize;
            if id < SHARD_INDEX_MAX {
                if index.len() <= id {
                    index.resize(id + 1, u32::MAX);
                }
                index[id] = i as u32;
            }
        }
        let shard_idx = |id: u32| match index.get(id as usize) {
            Some(&i) if i != u32::MAX => Some(i as usize),
            Some(_) => None,
            None => placement.shards.iter().position(|s| s.shard == id),
        };
        self.loads.clear();
        self.loads.resize(placement.shards.len(), 0.0);
        let mut total = 0.0;
        for &(p, s) in &placement.assignment {
            let l = load_of(p);
            let i = shard_idx(s);
            if let Some(i) = i {
                self.loads[i] += l.rate_msgs_per_s;
            }
            total += l.rate_msgs_per_s;
            let cap = i.map_or(f64::INFINITY, |i| placement.shards[i].capacity_msgs_per_s);
            self.maybe_split(cfg, now_s, p, cap, &l, out);
        }
        self.shard_index = index;
        let capacity: f64 = placement.shards.iter().map(|s| s.capacity_msgs_per_s).sum();
        self.scale(cfg, now_s, total, capacity, out);
        self.rebalance(cfg, now_s, placement, load_of, out);
    }

    fn maybe_split(
        &mut self,
        cfg: &DecisionConfig,
        now_s: u64,
        partition: u32,
        shard_capacity_msgs_per_s: f64,
        l: &PartitionLoad,
        out: &mut Vec<Decision>,
    ) {
        let cap = shard_capacity_msgs_per_s;
        let too_big = l.rate_msgs_per_s > cfg.split_frac * cap;
        let hot_long = l.hot_for_s.is_some_and(|s| s >= SPLIT_AFTER_HOT_S);
        if !(too_big || hot_long) {
            return;
        }
        if let Some(&t) = self.splits.get(&partition) {
            if now_s < t + cfg.split_cooldown_s {
                return;
            }
        }
        self.splits.insert(partition, now_s);
        out.push(Decision::Split {
            partition,
            rate_msgs_per_s: l.rate_msgs_per_s,
            split_key: l.top_key,
        });
    }

    fn scale(
        &mut self,
        cfg: &DecisionConfig,
        now_s: u64,
        total: f64,
        capacity: f64,
        out: &mut Vec<Decision>,
    ) {
        if self.cluster_steps == 0 {
            self.cluster_level = total;
            self.cluster_trend = 0.0;
        } else {
            let prev = self.cluster_level;
            self.cluster_level =
                CLUSTER_ALPHA * total + (1.0 - CLUSTER_ALPHA) * (prev + self.cluster_trend);
            self.cluster_trend = CLUSTER_BETA * (self.cluster_level - prev)
                + (1.0 - CLUSTER_BETA) * self.cluster_trend;
        }
        self.cluster_steps += 1;
        if capacity <= 0.0 {
            return;
        }
        let bar = cfg.scale_out_frac * capacity;
        let forecast = self.cluster_forecast(cfg.scale_lead_s);
        // The trend needs a few hundred samples before its projection means anything.
        let trusted = self.cluster_steps >= 300;
        self.out_votes = if trusted && forecast >= bar {
            self.out_votes + 1
        } else {
            0
        };
        self.measured_votes = if total >= bar {
            self.measured_votes + 1
        } else {
            0
        };
        let cooled = self
            .last_scale_out_s
            .is_none_or(|t| now_s >= t + cfg.scale_cooldown_s);
        if cooled && self.out_votes >= cfg.scale_out_confirm_ticks {
            self.last_scale_out_s = Some(now_s);
            out.push(Decision::ScaleOut {
                load_msgs_per_s: forecast,
                capacity_msgs_per_s: capacity,
                lead_s: cfg.scale_lead_s,
                predicted: true,
            });
        } else if cooled && self.measured_votes >= cfg.scale_out_confirm_ticks {
            self.last_scale_out_s = Some(now_s);
            out.push(Decision::ScaleOut {
                load_msgs_per_s: total,
                capacity_msgs_per_s: capacity,
                lead_s: 0.0,
                predicted: false,
            });
        }
        // Scale-in: measured load only, sustained, and never right after a scale-out.
        if total < cfg.scale_in_frac * capacity {
            let since = *self.low_since_s.get_or_insert(now_s);
            let quiet_out = self
                .last_scale_out_s
                .is_none_or(|t| now_s >= t + cfg.scale_in_after_s);
            let quiet_in = self
                .last_scale_in_s
                .is_none_or(|t| now_s >= t + cfg.scale_in_after_s);
            if now_s >= since + cfg.scale_in_after_s && quiet_out && quiet_in {
                self.last_scale_in_s = Some(now_s);
                out.push(Decision::ScaleIn {
                    load_msgs_per_s: total,
                    capacity_msgs_per_s: capacity,
                });
            }
        } else {
            self.low_since_s = None;
        }
    }

    fn rebalance(
        &mut self,
        cfg: &DecisionConfig,
        now_s: u64,
        placement: &Placement,
        load_of: &dyn Fn(u32) -> PartitionLoad,
        out: &mut Vec<Decision>,
    ) {
        let n = placement.shards.len();
        if n < 2 {
            return;
        }
        for _ in 0..cfg.moves_per_tick_max {
            let util = |i: usize, loads: &[f64]| {
                loads[i] / placement.shards[i].capacity_msgs_per_s.max(1e-9)
            };
            let mean_util = (0..n).map(|i| util(i, &self.loads)).sum::<f64>() / n as f64;
            let busiest = (0..n)
                .max_by(|a, b| util(*a, &self.loads).total_cmp(&util(*b, &self.loads)))
                .unwrap_or(0);
            let busy_util = util(busiest, &self.loads);
            if busy_util <= cfg.imbalance_ratio * mean_util || busy_util < cfg.min_busy_frac {
                return;
            }
            let from = placement.shards[busiest];
            // Candidate targets: same node first, then any node.
            let coolest_on = |same_node: bool, loads: &[f64]| {
                (0..n)
                    .filter(|&i| {
                        i != busiest && (!same_node || placement.shards[i].node == from.node)
                    })
                    .min_by(|a, b| util(*a, loads).total_cmp(&util(*b, loads)))
            };
            let mut best: Option<(u32, usize, f64, f64)> = None;
            for same_node in [true, false] {
                let Some(target) = coolest_on(same_node, &self.loads) else {
                    continue;
                };
                let to = placement.shards[target];
                let cap_from = from.capacity_msgs_per_s.max(1e-9);
                let cap_to = to.capacity_msgs_per_s.max(1e-9);
                for &(p, s) in &placement.assignment {
                    if s != from.shard || !self.may_move(cfg, now_s, p, to.shard) {
                        continue;
                    }
                    let r = load_of(p).rate_msgs_per_s;
                    if r <= 0.0 {
                        continue;
                    }
                    let new_max = ((self.loads[busiest] - r) / cap_from)
                        .max((self.loads[target] + r) / cap_to);
                    if new_max < busy_util * 0.999 && best.is_none_or(|b| new_max < b.2 - 1e-12) {
                        best = Some((p, target, new_max, r));
                    }
                }
                // Prefer a same-node move whenever one brings the busiest shard under the trigger.
                if let Some(b) = best {
                    if same_node && b.2 <= cfg.imbalance_ratio * mean_util {
                        break;
                    }
                }
            }
            let Some((p, target, _, r)) = best else {
                return;
            };
            let to = placement.shards[target];
            self.loads[busiest] -= r;
            self.loads[target] += r;
            self.moves.insert(
                p,
                MoveRecord {
                    t_s: now_s,
                    from_shard: from.shard,
                },
            );
            out.push(Decision::Move {
                partition: p,
                from_shard: from.shard,
                to_shard: to.shard,
                cross_node: to.node != from.node,
                rate_msgs_per_s: r,
            });
        }
    }

    fn may_move(&self, cfg: &DecisionConfig, now_s: u64, partition: u32, to_shard: u32) -> bool {
        match self.moves.get(&partition) {
            None => true,
            Some(m) => {
                let since = now_s.saturating_sub(m.t_s);
                since >= cfg.move_cooldown_s
                    && !(m.from_shard == to_shard && since < cfg.no_return_s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn placement(assign: &[(u32, u32)]) -> Placement {
        Placement {
            shards: (0..4)
                .map(|s| ShardInfo {
                    shard: s,
                    node: 0,
                    capacity_msgs_per_s: 10_000.0,
                })
                .collect(),
            assignment: assign.to_vec(),
        }
    }

    fn load(rates: &HashMap<u32, f64>) -> impl Fn(u32) -> PartitionLoad + '_ {
        move |p| PartitionLoad {
            rate_msgs_per_s: rates.get(&p).copied().unwrap_or(0.0),
            hot_for_s: None,
            top_key: None,
        }
    }

    #[test]
    fn moves_until_balanced_and_never_moves_back() {
        let cfg = Config::default().decision;
        let mut d = Decider::new(1);
        // Shard 0 holds four 1,000 msgs/s partitions, the others one each.
        let mut assign: Vec<(u32, u32)> =
            vec![(0, 0), (1, 0), (2, 0), (3, 0), (4, 1), (5, 2), (6, 3)];
        let rates: HashMap<u32, f64> = (0..7).map(|p| (p, 1000.0)).collect();
        let mut moves = Vec::new();
        for t in 0..7200u64 {
            let mut out = Vec::new();
            d.decide(&cfg, t, &placement(&assign), &load(&rates), &mut out);
            for dec in out {
                if let Decision::Move {
                    partition,
                    to_shard,
                    ..
                } = dec
                {
                    moves.push((t, partition, to_shard));
                    for a in assign.iter_mut().filter(|a| a.0 == partition) {
                        a.1 = to_shard;
                    }
                }
            }
        }
        assert_eq!(moves.len(), 2, "{moves:?}");
        assert!(moves.iter().all(|m| m.0 == 0));
        let mut per_shard = [0; 4];
        for a in &assign {
            per_shard[a.1 as usize] += 1;
        }
        assert_eq!(per_shard.iter().max(), Some(&2));
    }

    #[test]
    fn cooldown_blocks_a_second_move_of_the_same_partition() {
        let cfg = Config::default().decision;
        let mut d = Decider::new(1);
        assert!(d.may_move(&cfg, 0, 9, 1));
        d.moves.insert(
            9,
            MoveRecord {
                t_s: 0,
                from_shard: 1,
            },
        );
        assert!(!d.may_move(&cfg, 1799, 9, 2));
        assert!(d.may_move(&cfg, 1800, 9, 2));
        assert!(
            !d.may_move(&cfg, 1800, 9, 1),
            "moving back within no_return_s is a flap"
        );
        assert!(d.may_move(&cfg, 7200, 9, 1));
    }

    #[test]
    fn scale_out_ahead_on_a_ramp_and_never_scale_in_on_a_forecast() {
        let cfg = Config::default().decision;
        let mut d = Decider::new(1);
        let p = Placement {
            shards: vec![ShardInfo {
                shard: 0,
                node: 0,
                capacity_msgs_per_s: 100_000.0,
            }],
            assignment: vec![(0, 0)],
        };
        // Load ramps 20 msgs/s per second from 40,000: crosses 80,000 at t = 2,000.
        let mut first = None;
        for t in 0..2000u64 {
            let rates: HashMap<u32, f64> = [(0, 40_000.0 + 20.0 * t as f64)].into();
            let mut out = Vec::new();
            d.decide(&cfg, t, &p, &load(&rates), &mut out);
            for dec in out {
                assert!(!matches!(dec, Decision::ScaleIn { .. }));
                if matches!(
                    dec,
                    Decision::ScaleOut {
                        predicted: true,
                        ..
                    }
                ) && first.is_none()
                {
                    first = Some(t);
                }
            }
        }
        let t = first.expect("scale-out recommended");
        assert!(t + 300 <= 2000, "recommended at {t}");
    }

    #[test]
    fn oversized_partition_gets_one_split_per_cooldown() {
        let cfg = Config::default().decision;
        let mut d = Decider::new(1);
        let p = placement(&[(0, 0), (1, 1)]);
        let load = |pid: u32| PartitionLoad {
            rate_msgs_per_s: if pid == 0 { 8_000.0 } else { 100.0 },
            hot_for_s: None,
            top_key: Some(77),
        };
        let mut splits = Vec::new();
        for t in 0..4000u64 {
            let mut out = Vec::new();
            d.decide(&cfg, t, &p, &load, &mut out);
            for dec in out {
                if let Decision::Split {
                    partition,
                    split_key,
                    ..
                } = dec
                {
                    splits.push((t, partition, split_key));
                }
            }
        }
        // 8,000 msgs/s is above 0.7 x 10,000: split at once, again only after the 1,800 s cooldown.
        assert_eq!(
            splits,
            vec![(0, 0, Some(77)), (1800, 0, Some(77)), (3600, 0, Some(77))]
        );
    }
}
