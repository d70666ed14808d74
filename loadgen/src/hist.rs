//! Latency recording: HDR histograms in microseconds, per-thread recorders that publish to a
//! shared interval accumulator, and the percentile summary used by the table and the report.
//!
//! A latency is always "completion time minus the time the operation was *meant* to start".
//! In a closed loop that is the actual send time; in an open loop it is the scheduled send time,
//! so a stall that delays later sends is charged to every operation it delayed (coordinated
//! omission correction, see docs/loadgen.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// Largest latency a histogram holds: 60 s. Larger values are clamped and counted as clipped.
pub const LATENCY_US_MAX: u64 = 60_000_000;

/// Nanoseconds since the Unix epoch, from a monotonic clock anchored once per process, so
/// timestamps taken on different threads compare exactly and never go backwards.
pub fn now_ns() -> u64 {
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    let (instant, epoch_ns) = ANCHOR.get_or_init(|| {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        (Instant::now(), since_epoch)
    });
    epoch_ns + instant.elapsed().as_nanos() as u64
}

/// An empty latency histogram: 1 us .. 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("constant bounds are valid")
}

/// Records `count` operations that took `end_ns - start_ns`; clamps into the histogram range and
/// returns true when the value had to be clipped at [`LATENCY_US_MAX`].
pub fn record_latency(hist: &mut Histogram<u64>, start_ns: u64, end_ns: u64, count: u64) -> bool {
    let micros = end_ns.saturating_sub(start_ns) / 1_000;
    let clipped = micros > LATENCY_US_MAX;
    let value = micros.clamp(1, LATENCY_US_MAX);
    // In range by construction, so this cannot fail.
    let _ = hist.record_n(value, count);
    clipped
}

/// Which latency a sample belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Produce request (intended) send time -> acknowledgement received.
    ProduceAck,
    /// Producer's send timestamp carried in the record -> consumer received it.
    EndToEnd,
}

/// Counters shared by all threads, cumulative since start (warm-up included unless named
/// `measured_`). Relaxed atomics: they are statistics, read after the threads are joined.
#[derive(Debug, Default)]
pub struct Counters {
    pub records_sent: AtomicU64,
    pub records_acked: AtomicU64,
    pub bytes_acked: AtomicU64,
    pub measured_records_acked: AtomicU64,
    pub measured_bytes_acked: AtomicU64,
    /// When the last record sent inside the window was acknowledged (ns since the epoch).
    pub last_measured_ack_ns: AtomicU64,
    pub records_failed: AtomicU64,
    /// Open loop: scheduled records never sent because the target fell too far behind.
    pub records_unsent: AtomicU64,
    /// Resends of batches (see [`crate::driver::Ack::resends`]).
    pub batches_resent: AtomicU64,
    /// Answered batches that may be stored twice (see [`crate::driver::Ack::maybe_twice`]).
    pub batches_maybe_twice: AtomicU64,
    pub records_consumed: AtomicU64,
    pub measured_records_consumed: AtomicU64,
    pub measured_bytes_consumed: AtomicU64,
    pub latency_clipped: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn raise_to(counter: &AtomicU64, n: u64) {
        counter.fetch_max(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Interval accumulators the collector drains once per interval, plus the counters.
pub struct Shared {
    produce: Mutex<Histogram<u64>>,
    end_to_end: Mutex<Histogram<u64>>,
    pub counters: Counters,
    /// The first batch the server refused, for the report (later ones are only counted).
    first_refusal: Mutex<Option<String>>,
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            produce: Mutex::new(new_histogram()),
            end_to_end: Mutex::new(new_histogram()),
            counters: Counters::default(),
            first_refusal: Mutex::new(None),
        }
    }

    /// Keeps `message` if it is the first refusal seen.
    pub fn note_refusal(&self, message: String) {
        let mut slot = self.first_refusal.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(message);
    }

    pub fn first_refusal(&self) -> Option<String> {
        self.first_refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn slot(&self, metric: Metric) -> &Mutex<Histogram<u64>> {
        match metric {
            Metric::ProduceAck => &self.produce,
            Metric::EndToEnd => &self.end_to_end,
        }
    }

    /// Adds `local` into the interval accumulator and empties `local`.
    pub fn publish(&self, metric: Metric, local: &mut Histogram<u64>) {
        if local.is_empty() {
            return;
        }
        let mut shared = self.slot(metric).lock().unwrap_or_else(|e| e.into_inner());
        // Same bounds on both sides, so adding cannot fail.
        let _ = shared.add(&*local);
        drop(shared);
        local.reset();
    }

    /// Moves the interval accumulated so far into `into` (which must be empty) and leaves an
    /// empty accumulator behind.
    pub fn take_interval(&self, metric: Metric, into: &mut Histogram<u64>) {
        let mut shared = self.slot(metric).lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *shared, into);
    }
}

/// A thread's own histogram for one metric, published to [`Shared`] every
/// [`LocalRecorder::PUBLISH_INTERVAL_NS`] so the hot path never takes a lock.
pub struct LocalRecorder {
    metric: Metric,
    hist: Histogram<u64>,
    last_publish_ns: u64,
    clipped: u64,
}

impl LocalRecorder {
    pub const PUBLISH_INTERVAL_NS: u64 = 50_000_000;

    pub fn new(metric: Metric) -> Self {
        LocalRecorder {
            metric,
            hist: new_histogram(),
            last_publish_ns: now_ns(),
            clipped: 0,
        }
    }

    pub fn record(&mut self, start_ns: u64, end_ns: u64, count: u64) {
        if record_latency(&mut self.hist, start_ns, end_ns, count) {
            self.clipped += count;
        }
    }

    /// Publishes when the interval has passed (`now_ns` is the caller's current time).
    pub fn maybe_publish(&mut self, shared: &Shared, now_ns: u64) {
        if now_ns.saturating_sub(self.last_publish_ns) >= Self::PUBLISH_INTERVAL_NS {
            self.publish(shared, now_ns);
        }
    }

    pub fn publish(&mut self, shared: &Shared, now_ns: u64) {
        shared.publish(self.metric, &mut self.hist);
        if self.clipped > 0 {
            Counters::add(&shared.counters.latency_clipped, self.clipped);
            self.clipped = 0;
        }
        self.last_publish_ns = now_ns;
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub p9999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    pub fn of(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: hist.len(),
            min_us: hist.min(),
            mean_us: hist.mean(),
            p50_us: hist.value_at_quantile(0.5),
            p90_us: hist.value_at_quantile(0.9),
            p99_us: hist.value_at_quantile(0.99),
            p999_us: hist.value_at_quantile(0.999),
            p9999_us: hist.value_at_quantile(0.9999),
            max_us: hist.max(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "min_us": self.min_us,
            "mean_us": (self.mean_us * 10.0).round() / 10.0,
            "p50_us": self.p50_us,
            "p90_us": self.p90_us,
            "p99_us": self.p99_us,
            "p99_9_us": self.p999_us,
            "p99_99_us": self.p9999_us,
            "max_us": self.max_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_microseconds_and_clamps() {
        let mut h = new_histogram();
        assert!(!record_latency(&mut h, 1_000, 251_000, 3));
        assert!(!record_latency(&mut h, 5_000, 5_100, 1)); // 100 ns rounds up to 1 us
        assert!(record_latency(&mut h, 0, 120_000_000_000, 1)); // 120 s clipped
        assert!(!record_latency(&mut h, 10, 5, 1)); // clock skew: never negative
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 6);
        assert_eq!(s.min_us, 1);
        assert!(h.equivalent(s.p50_us, 250));
        assert!(h.equivalent(s.max_us, LATENCY_US_MAX));
    }

    #[test]
    fn open_loop_latency_counts_from_the_intended_time() {
        // A server stall of 100 ms at a schedule of one send per 1 ms: the ten sends scheduled
        // during the stall are sent late; measured from their intended time they show the wait,
        // measured from the actual send time they would all look fast.
        let interval_ns = 1_000_000;
        let stall_end_ns = 100_000_000;
        let mut corrected = new_histogram();
        let mut naive = new_histogram();
        for i in 0..200u64 {
            let intended = i * interval_ns;
            let actual_send = intended.max(stall_end_ns);
            let ack = actual_send + 50_000; // 50 us service time
            record_latency(&mut corrected, intended, ack, 1);
            record_latency(&mut naive, actual_send, ack, 1);
        }
        let c = LatencySummary::of(&corrected);
        let n = LatencySummary::of(&naive);
        assert_eq!(n.max_us, 50);
        assert!(corrected.equivalent(c.max_us, 100_050));
        assert!(c.p50_us >= 50 && c.p90_us > 10_000, "{c:?}");
        assert!(corrected.equivalent(c.p99_us, 98_050), "{c:?}");
    }

    #[test]
    fn local_recorders_publish_into_the_shared_interval() {
        let shared = Shared::new();
        let mut a = LocalRecorder::new(Metric::ProduceAck);
        let mut b = LocalRecorder::new(Metric::ProduceAck);
        a.record(0, 2_000_000, 10);
        b.record(0, 3_000_000, 5);
        a.maybe_publish(&shared, 0); // interval not over: nothing published
        let mut taken = new_histogram();
        shared.take_interval(Metric::ProduceAck, &mut taken);
        assert!(taken.is_empty());
        a.publish(&shared, 1);
        b.publish(&shared, 1);
        shared.take_interval(Metric::ProduceAck, &mut taken);
        assert_eq!(taken.len(), 15);
        assert!(taken.equivalent(taken.max(), 3_000));
        let mut again = new_histogram();
        shared.take_interval(Metric::ProduceAck, &mut again);
        assert!(again.is_empty());
    }
}
