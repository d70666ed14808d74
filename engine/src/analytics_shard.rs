//! The analytics shard: once a second it samples every partition, shard and the host, feeds the
//! `analytics` crate's [`Analyzer`], keeps its recent output for the stats port, and, in `act`
//! mode, carries out partition moves between shards and, in a cluster, asks the controller to
//! hand the leadership of a partition to a cooler node (`crate::analytics_lead`).
//!
//! It runs on shard 0 in a task queue with a small share of the CPU, so it yields to requests.
//! Its inputs are the per-partition counters the request path already keeps (one add per batch)
//! and sysinfo readings taken on the blocking pool. With `--analytics off` none of this runs, and
//! nothing else depends on it.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use analytics::hot::HotKind;
use analytics::{
    Analyzer, Anomaly, Config, Decision, HotEvent, Placement, Sample, SeriesId, SeriesKind,
    ShardInfo, TickOutput,
};

use crate::host::HostSampler;
use crate::metrics::MetricsSnapshot;
use crate::shard::{CallBody, ReplyBody, Shard};

/// Events of each kind kept for `/analytics/...`.
const EVENTS_KEPT: usize = 256;
/// Fixed seed: the analyzer's internal hashing is reproducible from run to run.
const ANALYZER_SEED: u64 = 0x5eed_5b1a_0001;

/// What the analytics shard may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not started.
    Off,
    /// Forecasts, detections and decisions are computed and shown, never carried out.
    Advise,
    /// Partition moves between this node's shards are carried out.
    Act,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "off" => Ok(Mode::Off),
            "advise" => Ok(Mode::Advise),
            "act" => Ok(Mode::Act),
            other => Err(format!("must be off, advise or act, not {other:?}")),
        }
    }
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Advise => "advise",
            Mode::Act => "act",
        }
    }
}

/// A decision and what became of it.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub t_s: u64,
    pub decision: Decision,
    /// Topic and partition of a move or split.
    pub target: Option<(String, u32)>,
    /// "advised", "applied", or "failed: why".
    pub outcome: String,
}

/// Recent output, bounded.
#[derive(Debug, Default)]
pub struct Recent {
    pub last_tick: Option<TickOutput>,
    pub hot: VecDeque<HotEvent>,
    pub anomalies: VecDeque<Anomaly>,
    pub decisions: VecDeque<DecisionRecord>,
    pub ticks: u64,
    /// CPU time of the last tick's analysis (not the sampling), microseconds.
    pub tick_us_last: u64,
    pub tick_us_max: u64,
}

fn push_bounded<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() == EVENTS_KEPT {
        q.pop_front();
    }
    q.push_back(v);
}

#[derive(Debug, Clone, Copy)]
struct Prev {
    at: Instant,
    records_in: u64,
    bytes_in: u64,
    records_out: u64,
}

/// State of the analytics shard (lives on shard 0).
pub struct AnalyticsShard {
    pub mode: Mode,
    pub analyzer: RefCell<Analyzer>,
    /// (topic id, partition) <-> analyzer entity id.
    ids: RefCell<HashMap<(u64, u32), u32>>,
    pub names: RefCell<Vec<(String, u32)>>,
    prev: RefCell<HashMap<(u64, u32), Prev>>,
    host: RefCell<Option<HostSampler>>,
    pub recent: RefCell<Recent>,
    /// Leader of each cluster partition at the last tick (`crate::analytics_lead`).
    pub leaders: RefCell<HashMap<(String, u32), u64>>,
}

impl std::fmt::Debug for AnalyticsShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsShard")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl AnalyticsShard {
    pub fn new(mode: Mode, config: Config) -> Result<AnalyticsShard, String> {
        let analyzer = Analyzer::new(config, ANALYZER_SEED).map_err(|e| e.to_string())?;
        Ok(AnalyticsShard {
            mode,
            analyzer: RefCell::new(analyzer),
            ids: RefCell::new(HashMap::new()),
            names: RefCell::new(Vec::new()),
            prev: RefCell::new(HashMap::new()),
            host: RefCell::new(None),
            recent: RefCell::new(Recent::default()),
            leaders: RefCell::new(HashMap::new()),
        })
    }

    /// The analyzer id of a partition, assigned on first sight.
    pub fn entity(&self, topic: &str, topic_id: u64, partition: u32) -> u32 {
        let mut ids = self.ids.borrow_mut();
        if let Some(e) = ids.get(&(topic_id, partition)) {
            return *e;
        }
        let mut names = self.names.borrow_mut();
        let e = names.len() as u32;
        names.push((topic.to_string(), partition));
        ids.insert((topic_id, partition), e);
        e
    }

    /// Topic and partition of an analyzer entity.
    pub fn name_of(&self, entity: u32) -> Option<(String, u32)> {
        self.names.borrow().get(entity as usize).cloned()
    }

    fn observe(&self, kind: SeriesKind, entity: u32, t_s: u64, value: f64) {
        let sample = Sample {
            series: SeriesId::new(kind, entity),
            t_s,
            value,
        };
        // A refused sample (too many series, non-finite) is dropped: analytics is advisory.
        let _ = self.analyzer.borrow_mut().observe(sample);
    }
}

/// Starts the analytics loop on this shard (shard 0) in a low-share task queue.
pub fn spawn(shard: &Rc<Shard>, analytics: Rc<AnalyticsShard>) {
    let tq = glommio::executor().create_task_queue(
        glommio::Shares::Static(50),
        glommio::Latency::NotImportant,
        "analytics",
    );
    let shard = shard.clone();
    let fut = async move {
        let sampler = crate::runtime::blocking(HostSampler::new).await;
        *analytics.host.borrow_mut() = sampler;
        while !shard.stopping.get() {
            glommio::timer::sleep(Duration::from_secs(1)).await;
            if shard.stopping.get() {
                break;
            }
            tick(&shard, &analytics).await;
        }
    };
    match glommio::spawn_local_into(fut, tq) {
        Ok(t) => {
            t.detach();
        }
        Err(e) => eprintln!("sprawl: analytics shard not started: {e}"),
    }
}

/// Counters of every shard.
async fn gather(shard: &Rc<Shard>) -> Vec<MetricsSnapshot> {
    let mut out = vec![crate::handlers::local_stats_taking_keys(shard, Some(1), true).1];
    for s in (0..shard.shards).filter(|&s| s != shard.id) {
        if let Some(ReplyBody::Metrics(m)) = shard.call(s, CallBody::Metrics).await {
            out.push(*m);
        }
    }
    out
}

async fn tick(shard: &Rc<Shard>, a: &Rc<AnalyticsShard>) {
    let snaps = gather(shard).await;
    let t_s = crate::stats::now_s();
    let now = Instant::now();
    let catalog = shard.catalog.borrow().clone();
    let mut shard_rates = vec![0.0f64; shard.shards];
    let mut assignment = Vec::new();
    for m in &snaps {
        for p in &m.partitions {
            let Some(topic_id) = catalog.topics.get(&p.topic).map(|t| t.topic_id) else {
                continue;
            };
            let e = a.entity(&p.topic, topic_id, p.partition);
            assignment.push((e, m.shard as u32));
            if !p.key_sample.is_empty() {
                a.analyzer.borrow_mut().observe_keys(e, t_s, &p.key_sample);
            }
            if let Some(lag) = p.lag_msgs {
                a.observe(SeriesKind::ConsumerLagMsgs, e, t_s, lag as f64);
            }
            let cur = Prev {
                at: now,
                records_in: p.records_in,
                bytes_in: p.bytes_in,
                records_out: p.records_out,
            };
            let prev = a.prev.borrow_mut().insert((topic_id, p.partition), cur);
            let Some(prev) = prev else { continue };
            // Counters restart when a partition moves to another shard: skip that interval.
            if cur.records_in < prev.records_in || cur.records_out < prev.records_out {
                continue;
            }
            let dt = now.duration_since(prev.at).as_secs_f64().max(1e-3);
            let msgs = (cur.records_in - prev.records_in) as f64 / dt;
            if let Some(r) = shard_rates.get_mut(m.shard) {
                *r += msgs;
            }
            a.observe(SeriesKind::PartitionMsgsPerS, e, t_s, msgs);
            let bytes = cur.bytes_in.saturating_sub(prev.bytes_in) as f64 / dt;
            a.observe(SeriesKind::PartitionBytesPerS, e, t_s, bytes);
            let fetched = (cur.records_out - prev.records_out) as f64 / dt;
            a.observe(SeriesKind::FetchPerS, e, t_s, fetched);
        }
    }
    for (s, rate) in shard_rates.iter().enumerate() {
        a.observe(SeriesKind::ShardMsgsPerS, s as u32, t_s, *rate);
    }
    let sampler = a.host.borrow_mut().take();
    if let Some(mut h) = sampler {
        let (h, sample) = crate::runtime::blocking(move || {
            let s = h.sample();
            (h, s)
        })
        .await;
        *a.host.borrow_mut() = Some(h);
        a.observe(SeriesKind::HostCpuPct, 0, t_s, sample.cpu_pct);
        a.observe(SeriesKind::HostMemBytes, 0, t_s, sample.mem_used_bytes);
        if let Some(v) = sample.disk_bytes_per_s {
            a.observe(SeriesKind::HostDiskBytesPerS, 0, t_s, v);
        }
        if let Some(v) = sample.net_bytes_per_s {
            a.observe(SeriesKind::HostNetBytesPerS, 0, t_s, v);
        }
    }
    let placement = Placement {
        shards: (0..shard.shards)
            .map(|s| ShardInfo {
                shard: s as u32,
                node: shard.config.node_id,
                capacity_msgs_per_s: shard.config.analytics_shard_capacity_msgs_per_s,
            })
            .collect(),
        assignment,
    };
    let started = Instant::now();
    let out = a.analyzer.borrow_mut().tick(t_s, Some(&placement));
    let tick_us = started.elapsed().as_micros() as u64;
    let mut records = Vec::new();
    {
        let mut r = a.recent.borrow_mut();
        r.ticks += 1;
        r.tick_us_last = tick_us;
        r.tick_us_max = r.tick_us_max.max(tick_us);
        for h in &out.hot {
            push_bounded(&mut r.hot, *h);
        }
        for x in &out.anomalies {
            push_bounded(&mut r.anomalies, *x);
        }
        for d in &out.decisions {
            let target = match d {
                Decision::Move { partition, .. } | Decision::Split { partition, .. } => {
                    a.name_of(*partition)
                }
                _ => None,
            };
            records.push(DecisionRecord {
                t_s,
                decision: *d,
                target,
                outcome: "advised".into(),
            });
        }
        r.last_tick = Some(out);
    }
    for mut rec in records {
        if let (
            Mode::Act,
            Decision::Move {
                to_shard,
                cross_node: false,
                ..
            },
            Some((topic, p)),
        ) = (a.mode, rec.decision, rec.target.clone())
        {
            rec.outcome =
                match crate::moves::move_partition(shard, &topic, p, to_shard as usize).await {
                    Ok(_) => "applied".into(),
                    Err(f) => format!("failed: {}", f.message),
                };
        }
        push_bounded(&mut a.recent.borrow_mut().decisions, rec);
    }
    let local: Vec<u32> = placement.assignment.iter().map(|(e, _)| *e).collect();
    if let Some(rec) = crate::analytics_lead::tick(shard, a, t_s, &local).await {
        push_bounded(&mut a.recent.borrow_mut().decisions, rec);
    }
}

/// JSON name of a hot event kind.
pub fn hot_kind(k: &HotKind) -> (&'static str, Option<f64>) {
    match k {
        HotKind::Warning { eta_s } => ("warning", Some(*eta_s)),
        HotKind::Hot => ("hot", None),
        HotKind::Cleared => ("cleared", None),
    }
}
