//! Seeded traffic scenarios with exact ground truth: the noise-free rate is kept beside the noisy counts.

use crate::rng::Rng;

/// Partition capacity used by every scenario (msgs/s).
pub const CAPACITY_MSGS_PER_S: f64 = 10_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Burst,
    Stall,
    HotStep,
    HotRamp60,
    HotRamp300,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Burst => "burst",
            EventKind::Stall => "stall",
            EventKind::HotStep => "hot_step",
            EventKind::HotRamp60 => "hot_ramp_60s",
            EventKind::HotRamp300 => "hot_ramp_300s",
        }
    }

    pub fn is_hot(self) -> bool {
        matches!(
            self,
            EventKind::HotStep | EventKind::HotRamp60 | EventKind::HotRamp300
        )
    }
}

/// A ground-truth event on one partition.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub partition: u32,
    pub kind: EventKind,
    pub onset_s: u64,
    pub end_s: u64,
    /// First second the noise-free rate is above capacity (hot events only).
    pub cross_s: Option<u64>,
}

/// A multiplicative change of some partitions' rate: ramps from 1 to `factor` over `ramp_s`, holds, then
/// returns to 1 over `ramp_s` (instantly for a step).
#[derive(Debug, Clone)]
struct Modifier {
    partitions: Vec<u32>,
    start_s: u64,
    ramp_s: u64,
    hold_s: u64,
    factor: f64,
}

impl Modifier {
    fn at(&self, t: u64) -> f64 {
        if t < self.start_s {
            return 1.0;
        }
        let dt = t - self.start_s;
        let up = self.ramp_s;
        if dt < up {
            return 1.0 + (self.factor - 1.0) * (dt + 1) as f64 / up as f64;
        }
        if dt < up + self.hold_s {
            return self.factor;
        }
        let down = dt - up - self.hold_s;
        let down_s = self.ramp_s.min(30);
        if down < down_s {
            return self.factor + (1.0 - self.factor) * (down + 1) as f64 / down_s as f64;
        }
        1.0
    }
}

pub struct Scenario {
    pub name: &'static str,
    pub partitions: u32,
    pub duration_s: u64,
    /// Noise-free rate, `[partition][second]`.
    pub truth: Vec<Vec<f32>>,
    /// Noisy counts, `[partition][second]`.
    pub counts: Vec<Vec<f32>>,
    pub events: Vec<Event>,
}

struct Builder {
    name: &'static str,
    base: Vec<f64>,
    diurnal_amp: f64,
    diurnal_phase: f64,
    drift: Vec<f64>,
    skew_amp: f64,
    mods: Vec<Modifier>,
    events: Vec<Event>,
    duration_s: u64,
}

impl Builder {
    fn new(
        name: &'static str,
        rng: &mut Rng,
        partitions: u32,
        lo: f64,
        hi: f64,
        duration_s: u64,
    ) -> Self {
        let base = (0..partitions)
            .map(|_| (rng.range(lo.ln(), hi.ln())).exp())
            .collect();
        let drift = (0..partitions).map(|_| rng.range(-0.2, 0.2)).collect();
        Builder {
            name,
            base,
            diurnal_amp: 0.3,
            diurnal_phase: rng.range(0.0, 1.0),
            drift,
            skew_amp: 0.0,
            mods: Vec::new(),
            events: Vec::new(),
            duration_s,
        }
    }

    fn smooth_rate(&self, p: u32, t: u64) -> f64 {
        let day = 86_400.0;
        let tf = t as f64;
        let diurnal = 1.0
            + self.diurnal_amp
                * (2.0 * std::f64::consts::PI * (tf / day + self.diurnal_phase)).sin();
        let drift = 1.0 + self.drift[p as usize] * tf / self.duration_s as f64;
        let skew = (self.skew_amp
            * (2.0 * std::f64::consts::PI * tf / 7200.0 + p as f64 * 0.7).sin())
        .exp();
        self.base[p as usize] * diurnal * drift * skew
    }

    fn rate(&self, p: u32, t: u64) -> f64 {
        let mut r = self.smooth_rate(p, t);
        for m in &self.mods {
            if m.partitions.contains(&p) {
                r *= m.at(t);
            }
        }
        r
    }

    fn build(self, rng: &mut Rng) -> Scenario {
        let n = self.base.len() as u32;
        let mut truth = Vec::with_capacity(n as usize);
        let mut counts = Vec::with_capacity(n as usize);
        for p in 0..n {
            let tr: Vec<f32> = (0..self.duration_s)
                .map(|t| self.rate(p, t) as f32)
                .collect();
            let c: Vec<f32> = tr
                .iter()
                .map(|&r| {
                    let jitter = (1.0 + 0.01 * rng.normal()).max(0.0);
                    rng.poisson(r as f64 * jitter) as f32
                })
                .collect();
            truth.push(tr);
            counts.push(c);
        }
        let mut events = self.events;
        for e in events.iter_mut().filter(|e| e.kind.is_hot()) {
            let row = &truth[e.partition as usize];
            e.cross_s =
                (e.onset_s..e.end_s).find(|&t| row[t as usize] as f64 > CAPACITY_MSGS_PER_S);
        }
        Scenario {
            name: self.name,
            partitions: n,
            duration_s: self.duration_s,
            truth,
            counts,
            events,
        }
    }
}

/// Diurnal cycle with per-partition drift; no events.
pub fn diurnal(rng: &mut Rng, duration_s: u64) -> Scenario {
    Builder::new("diurnal_drift", rng, 32, 500.0, 5000.0, duration_s).build(rng)
}

/// Topic-wide bursts (steps and 60 s ramps) on 4 topics of 8 partitions, staying below capacity.
pub fn bursts(rng: &mut Rng, duration_s: u64) -> Scenario {
    let mut b = Builder::new("topic_bursts", rng, 32, 300.0, 3000.0, duration_s);
    let mut t = 900;
    let mut i = 0u64;
    while t + 600 < duration_s {
        let topic = rng.below(4) as u32;
        let parts: Vec<u32> = (topic * 8..topic * 8 + 8).collect();
        let ramp_s = if i.is_multiple_of(2) { 0 } else { 60 };
        let factor = rng.range(1.6, 2.4);
        let hold_s = 300;
        for &p in &parts {
            b.events.push(Event {
                partition: p,
                kind: EventKind::Burst,
                onset_s: t,
                end_s: t + ramp_s + hold_s + 30,
                cross_s: None,
            });
        }
        b.mods.push(Modifier {
            partitions: parts,
            start_s: t,
            ramp_s,
            hold_s,
            factor,
        });
        t += 900;
        i += 1;
    }
    b.build(rng)
}

/// One partition at a time turns hot: step, 60 s ramp or 300 s ramp to 1.5 x capacity.
pub fn hot(rng: &mut Rng, duration_s: u64) -> Scenario {
    let mut b = Builder::new("hot_partition", rng, 24, 1000.0, 4000.0, duration_s);
    b.diurnal_amp = 0.1;
    let mut t = 600;
    let mut i = 0u64;
    while t + 700 < duration_s {
        let p = (i * 7 % 24) as u32;
        let (kind, ramp_s) = match i % 3 {
            0 => (EventKind::HotStep, 0),
            1 => (EventKind::HotRamp60, 60),
            _ => (EventKind::HotRamp300, 300),
        };
        let factor = 1.5 * CAPACITY_MSGS_PER_S / b.smooth_rate(p, t);
        let hold_s = 300;
        b.events.push(Event {
            partition: p,
            kind,
            onset_s: t,
            end_s: t + ramp_s + hold_s + 30,
            cross_s: None,
        });
        b.mods.push(Modifier {
            partitions: vec![p],
            start_s: t,
            ramp_s,
            hold_s,
            factor,
        });
        t += 600;
        i += 1;
    }
    b.build(rng)
}

/// Slow skew drift between partitions plus stalls (rate drops to zero for 2-5 minutes).
pub fn skew_stalls(rng: &mut Rng, duration_s: u64) -> Scenario {
    let mut b = Builder::new("skew_drift_stalls", rng, 32, 1000.0, 3000.0, duration_s);
    b.skew_amp = 0.5;
    let mut t = 900;
    while t + 600 < duration_s {
        let p = rng.below(32) as u32;
        let hold_s = 120 + rng.below(180);
        b.events.push(Event {
            partition: p,
            kind: EventKind::Stall,
            onset_s: t,
            end_s: t + hold_s + 1,
            cross_s: None,
        });
        b.mods.push(Modifier {
            partitions: vec![p],
            start_s: t,
            ramp_s: 0,
            hold_s,
            factor: 0.0,
        });
        t += 900;
    }
    b.build(rng)
}

/// Low-rate sparse topics: 0.05 to 10 msgs/s.
pub fn sparse(rng: &mut Rng, duration_s: u64) -> Scenario {
    Builder::new("sparse_low_rate", rng, 32, 0.05, 10.0, duration_s).build(rng)
}

/// Partitions for the rebalance test: wide spread of sizes, and "imbalance episodes" where every
/// partition on one shard gets 2.5 x busier (from then on).
pub struct RebalanceScenario {
    pub scenario: Scenario,
    pub episodes_s: Vec<u64>,
}

/// `placement_of(p)` at the episode time decides which partitions are hit, so this returns the base
/// scenario and the episode times; the replay applies the episodes itself.
pub fn rebalance(rng: &mut Rng, duration_s: u64) -> RebalanceScenario {
    let mut b = Builder::new("rebalance", rng, 64, 200.0, 2000.0, duration_s);
    b.diurnal_amp = 0.05;
    let episodes_s = (1..)
        .map(|k| k * 1800 - 1200)
        .take_while(|t| t + 900 < duration_s)
        .collect();
    RebalanceScenario {
        scenario: b.build(rng),
        episodes_s,
    }
}

/// Cluster load rising from 30% to 90% of capacity along a diurnal half-cycle (`day_s / 2`).
pub fn diurnal_ramp(rng: &mut Rng, duration_s: u64, capacity_total: f64, day_s: f64) -> Scenario {
    let mut b = Builder::new("diurnal_ramp", rng, 16, 1.0, 2.0, duration_s);
    let sum: f64 = b.base.iter().sum();
    for v in b.base.iter_mut() {
        *v *= capacity_total / sum;
    }
    b.drift.iter_mut().for_each(|d| *d = 0.0);
    b.diurnal_amp = 0.0;
    let day = day_s;
    let mut truth = Vec::new();
    let mut counts = Vec::new();
    for p in 0..16u32 {
        let tr: Vec<f32> = (0..duration_s)
            .map(|t| {
                let phase = (1.0 - (2.0 * std::f64::consts::PI * t as f64 / day).cos()) / 2.0;
                (b.base[p as usize] * (0.3 + 0.6 * phase)) as f32
            })
            .collect();
        let c = tr.iter().map(|&r| rng.poisson(r as f64) as f32).collect();
        truth.push(tr);
        counts.push(c);
    }
    Scenario {
        name: "diurnal_ramp",
        partitions: 16,
        duration_s,
        truth,
        counts,
        events: Vec::new(),
    }
}
