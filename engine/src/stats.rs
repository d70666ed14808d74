//! Latency histograms of one shard: produce (receive -> ack), fetch (receive -> reply), end-to-end
//! (record timestamp -> delivery) and fsync, in microseconds, since start and in 10-second buckets
//! for the last minute. The HTTP port merges them across shards on request.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use hdrhistogram::Histogram;

/// Width of one interval bucket.
pub const BUCKET_S: u64 = 10;
/// Buckets kept: the interval view reaches back `BUCKET_S * BUCKETS_KEPT` seconds.
pub const BUCKETS_KEPT: usize = 6;
/// Largest latency recorded (one hour); larger values are clamped to it.
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Topics with their own produce histogram per shard; beyond this they share "_other".
const TOPICS_TRACKED_MAX: usize = 1024;
/// The key the topics beyond `TOPICS_TRACKED_MAX` share.
const OTHER_TOPICS: &str = "_other";

/// The recorded operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Produce,
    Fetch,
    EndToEnd,
    Fsync,
    /// An `acks=all` produce to a replicated partition: from the leader's fdatasync to the
    /// in-sync replicas having it on disk (below the high watermark).
    Replicate,
}

impl Op {
    pub const ALL: [Op; 5] = [
        Op::Produce,
        Op::Fetch,
        Op::EndToEnd,
        Op::Fsync,
        Op::Replicate,
    ];

    /// Name used in `/stats`, `/stats/hdr?metric=` and Prometheus.
    pub fn name(self) -> &'static str {
        match self {
            Op::Produce => "produce",
            Op::Fetch => "fetch",
            Op::EndToEnd => "e2e",
            Op::Fsync => "fsync",
            Op::Replicate => "replicate",
        }
    }

    pub fn from_name(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.name() == s)
    }
}

/// A fresh histogram with the project's settings (3 significant digits, 1 us .. 1 h, growing).
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_max(LATENCY_US_MAX, 3)
        .unwrap_or_else(|e| unreachable!("static histogram bounds are valid: {e}"));
    h.auto(true);
    h
}

/// Since-start histogram plus the last minute in buckets.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    pub total: Histogram<u64>,
    buckets: VecDeque<(u64, Histogram<u64>)>,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        LatencyWindow {
            total: new_histogram(),
            buckets: VecDeque::with_capacity(BUCKETS_KEPT + 1),
        }
    }
}

impl LatencyWindow {
    /// Records one latency at wall-clock second `now_s`.
    pub fn record(&mut self, latency_us: u64, now_s: u64) {
        let v = latency_us.clamp(1, LATENCY_US_MAX);
        self.total.saturating_record(v);
        let bucket = now_s / BUCKET_S;
        if self.buckets.back().is_none_or(|(b, _)| *b != bucket) {
            if self.buckets.len() == BUCKETS_KEPT {
                self.buckets.pop_front();
            }
            self.buckets.push_back((bucket, new_histogram()));
        }
        if let Some((_, h)) = self.buckets.back_mut() {
            h.saturating_record(v);
        }
    }

    /// The total, or the buckets covering the last `window_s` seconds (rounded up to buckets).
    pub fn view(&self, window_s: Option<u64>, now_s: u64) -> Histogram<u64> {
        let Some(w) = window_s else {
            return self.total.clone();
        };
        let oldest = (now_s.saturating_sub(w)) / BUCKET_S;
        let mut out = new_histogram();
        for (b, h) in &self.buckets {
            if *b >= oldest {
                // Same settings on both sides: adding cannot fail.
                let _ = out.add(h);
            }
        }
        out
    }
}

/// The histograms of one shard. Recording is a few adds into preallocated buckets.
#[derive(Debug, Default)]
pub struct ShardStats {
    ops: RefCell<HashMap<Op, LatencyWindow>>,
    /// Keyed by shared names, so that a request can carry its topic's key to where its latency
    /// is recorded without copying the name ([`ShardStats::topic_key`]).
    topics: RefCell<HashMap<Rc<str>, LatencyWindow>>,
}

/// Wall-clock seconds since the Unix epoch.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ShardStats {
    pub fn record(&self, op: Op, latency_us: u64) {
        self.ops
            .borrow_mut()
            .entry(op)
            .or_default()
            .record(latency_us, now_s());
    }

    /// The key `topic`'s produce latencies are recorded under: its own name while fewer than
    /// `TOPICS_TRACKED_MAX` topics are tracked, else `_other`. A clone of the stored key when the
    /// topic is known (no allocation per request).
    pub fn topic_key(&self, topic: &str) -> Rc<str> {
        let mut topics = self.topics.borrow_mut();
        let name = if topics.contains_key(topic) || topics.len() < TOPICS_TRACKED_MAX {
            topic
        } else {
            OTHER_TOPICS
        };
        if let Some((key, _)) = topics.get_key_value(name) {
            return Rc::clone(key);
        }
        let key: Rc<str> = Rc::from(name);
        topics.insert(Rc::clone(&key), LatencyWindow::default());
        key
    }

    /// Records a produce latency for the shard and for its topic.
    pub fn record_produce(&self, topic: &str, latency_us: u64) {
        let key = self.topic_key(topic);
        self.record_produce_keyed(&key, latency_us);
    }

    /// [`ShardStats::record_produce`] with a key from [`ShardStats::topic_key`].
    pub fn record_produce_keyed(&self, key: &Rc<str>, latency_us: u64) {
        let now = now_s();
        self.ops
            .borrow_mut()
            .entry(Op::Produce)
            .or_default()
            .record(latency_us, now);
        self.topics
            .borrow_mut()
            .entry(Rc::clone(key))
            .or_default()
            .record(latency_us, now);
    }

    /// Copies the histograms (total or the last `window_s`) for the HTTP port.
    pub fn snapshot(&self, shard: usize, window_s: Option<u64>) -> StatsSnapshot {
        let now = now_s();
        let ops = Op::ALL
            .iter()
            .map(|op| {
                let h = self
                    .ops
                    .borrow()
                    .get(op)
                    .map_or_else(new_histogram, |w| w.view(window_s, now));
                (*op, h)
            })
            .collect();
        let topics = self
            .topics
            .borrow()
            .iter()
            .map(|(t, w)| (t.to_string(), w.view(window_s, now)))
            .collect();
        StatsSnapshot { shard, ops, topics }
    }
}

/// Histograms of one shard, sendable to another shard.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    pub shard: usize,
    pub ops: Vec<(Op, Histogram<u64>)>,
    /// Produce latency per topic.
    pub topics: Vec<(String, Histogram<u64>)>,
}

/// Percentiles of a histogram as JSON (microseconds).
pub fn summary(h: &Histogram<u64>, seconds: Option<u64>) -> serde_json::Value {
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    let mut v = serde_json::json!({
        "count": h.len(),
        "latency_us_p50": q(0.50),
        "latency_us_p90": q(0.90),
        "latency_us_p99": q(0.99),
        "latency_us_p999": q(0.999),
        "latency_us_p9999": q(0.9999),
        "latency_us_max": if h.is_empty() { 0 } else { h.max() },
    });
    if let Some(s) = seconds.filter(|s| *s > 0) {
        v["rate_per_s"] = serde_json::json!(h.len() as f64 / s as f64);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_view_forgets_old_buckets() {
        let mut w = LatencyWindow::default();
        for i in 0..100 {
            w.record(100 + i, 1_000);
        }
        w.record(5_000, 1_000 + 30);
        assert_eq!(w.total.len(), 101);
        assert_eq!(
            w.view(Some(10), 1_000 + 35).len(),
            1,
            "only the recent bucket"
        );
        assert_eq!(w.view(Some(60), 1_000 + 35).len(), 101);
        // After more than a minute of buckets the oldest are dropped.
        for s in 1..=7 {
            w.record(1, 1_000 + s * BUCKET_S + 40);
        }
        assert!(w.view(Some(3600), 1_200).len() <= BUCKETS_KEPT as u64 + 1);
        assert_eq!(w.total.len(), 108, "the total keeps everything");
    }

    #[test]
    fn topics_past_the_limit_share_one_key_and_known_keys_are_shared() {
        let stats = ShardStats::default();
        let first = stats.topic_key("orders");
        assert!(
            Rc::ptr_eq(&first, &stats.topic_key("orders")),
            "no new key per request"
        );
        stats.record_produce_keyed(&first, 10);
        stats.record_produce("orders", 20);
        for i in 1..TOPICS_TRACKED_MAX {
            stats.record_produce(&format!("t{i}"), 5);
        }
        let other = stats.topic_key("one-too-many");
        assert_eq!(&*other, OTHER_TOPICS);
        assert!(
            Rc::ptr_eq(&other, &stats.topic_key("yet-another")),
            "the shared key of late topics is not allocated per request either"
        );
        stats.record_produce("another", 7);
        let snap = stats.snapshot(0, None);
        let count = |name: &str| {
            snap.topics
                .iter()
                .find(|(t, _)| t == name)
                .map_or(0, |(_, h)| h.len())
        };
        assert_eq!(count("orders"), 2);
        assert_eq!(
            count(OTHER_TOPICS),
            1,
            "both late topics under _other, one recorded"
        );
        assert_eq!(snap.topics.len(), TOPICS_TRACKED_MAX + 1);
        let produce = snap.ops.iter().find(|(op, _)| *op == Op::Produce).unwrap();
        assert_eq!(produce.1.len() as usize, 2 + (TOPICS_TRACKED_MAX - 1) + 1);
    }

    #[test]
    fn summary_reports_percentiles() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let s = summary(&h, Some(10));
        assert_eq!(s["count"], 1000);
        let p50 = s["latency_us_p50"].as_u64().unwrap();
        assert!((495..=505).contains(&p50), "{p50}");
        assert_eq!(s["latency_us_max"], 1000);
        assert_eq!(s["rate_per_s"], 100.0);
        assert_eq!(Op::from_name("e2e"), Some(Op::EndToEnd));
    }
}
