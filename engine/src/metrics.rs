//! Per-shard counters. Plain `Cell`s: a shard only ever touches its own.
//!
//! These are the raw numbers the stats port and the analytics shard will read; the hot path pays
//! one add per request or batch, never a lock.

use std::cell::Cell;

/// Counters of one shard since start.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    pub produce_requests: Cell<u64>,
    pub records_in: Cell<u64>,
    pub bytes_in: Cell<u64>,
    pub fetch_requests: Cell<u64>,
    pub records_out: Cell<u64>,
    pub forwarded_calls: Cell<u64>,
    pub throttled: Cell<u64>,
    pub errors: Cell<u64>,
    pub connections_accepted: Cell<u64>,
    pub connections_rejected: Cell<u64>,
    /// Times a connection stopped reading because a budget was spent.
    pub backpressure_waits: Cell<u64>,
    /// Socket reads that got their bytes while the reader spun (`crate::spin_read`), and spins
    /// that ended without any (the reader then parked as usual).
    pub spin_reads: Cell<u64>,
    pub spin_misses: Cell<u64>,
    /// Consumer groups coordinated by this shard: joins answered.
    pub group_joins: Cell<u64>,
    /// Group generation changes (a member came or went, partitions were added).
    pub group_rebalances: Cell<u64>,
    /// Members dropped because their session expired.
    pub group_members_expired: Cell<u64>,
    /// Offset commits taken, and refused as fenced (unknown member, old generation).
    pub group_commits: Cell<u64>,
    pub group_commits_fenced: Cell<u64>,
}

/// Adds `n` to a counter.
pub fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

/// Counters of one shard and its partitions, sendable to the shard serving HTTP.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub shard: usize,
    pub counters: Vec<(&'static str, u64)>,
    pub connections_open: u64,
    /// Bytes of written frame buffers the shard keeps for reuse (`crate::frame_pool`).
    pub frame_pool_bytes: u64,
    pub partitions: Vec<PartitionMetrics>,
}

/// Per-partition numbers for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct PartitionMetrics {
    pub topic: String,
    pub partition: u32,
    pub records_in: u64,
    pub bytes_in: u64,
    pub records_out: u64,
    pub bytes_out: u64,
    pub end_offset: u64,
    pub durable_offset: u64,
    pub segments: u64,
    pub bytes_on_disk: u64,
    pub flushes: u64,
    pub ring_hits: u64,
    pub ring_misses: u64,
    pub ring_bytes: u64,
    /// Segments created on the request path because none was prepared in time (blocking work on
    /// the reactor: the first segment of a partition, or a roll that outran preparation).
    pub sync_fallbacks: u64,
    /// Disk reservations an append made itself because the prefault job lagged (one fallocate on
    /// the reactor each).
    pub inline_reserves: u64,
    /// Prefault windows reserved and faulted in by background jobs.
    pub prefaults: u64,
    /// Segment rolls.
    pub rolls: u64,
    /// End offset minus the lowest committed offset of any named consumer (`None`: no consumer).
    pub lag_msgs: Option<u64>,
    /// Sampled `(key hash, weight)` pairs since the last collection (see `Partition::sample_keys`).
    pub key_sample: Vec<(u64, u64)>,
    /// Cold-tier counters of a tiered partition whose manifest is loaded.
    pub tier: Option<storage::cold::TierStats>,
    /// Replication state of a partition of a replicated topic.
    pub replica: Option<crate::replication::ReplicaStats>,
}

impl ShardMetrics {
    /// Name and value of every counter (Prometheus names without the `sprawl_` prefix).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("produce_requests_total", self.produce_requests.get()),
            ("fetch_requests_total", self.fetch_requests.get()),
            ("shard_records_in_total", self.records_in.get()),
            ("shard_bytes_in_total", self.bytes_in.get()),
            ("shard_records_out_total", self.records_out.get()),
            ("forwarded_calls_total", self.forwarded_calls.get()),
            ("throttled_total", self.throttled.get()),
            ("errors_total", self.errors.get()),
            (
                "connections_accepted_total",
                self.connections_accepted.get(),
            ),
            (
                "connections_rejected_total",
                self.connections_rejected.get(),
            ),
            ("backpressure_waits_total", self.backpressure_waits.get()),
            ("spin_reads_total", self.spin_reads.get()),
            ("spin_misses_total", self.spin_misses.get()),
            ("group_joins_total", self.group_joins.get()),
            ("group_rebalances_total", self.group_rebalances.get()),
            (
                "group_members_expired_total",
                self.group_members_expired.get(),
            ),
            ("group_commits_total", self.group_commits.get()),
            (
                "group_commits_fenced_total",
                self.group_commits_fenced.get(),
            ),
        ]
    }
}

/// A Prometheus family of per-partition values: metric name (without `sprawl_`), `gauge` or
/// `counter`, and how to read the value from a partition's stats.
pub type PartitionFamily<S> = (&'static str, &'static str, fn(&S) -> u64);

/// Writes one Prometheus family per field, one sample per partition of `parts` (`(topic,
/// partition, stats)`), labelled with the node, topic and partition.
pub fn render_partition_families<S>(
    out: &mut String,
    node: u32,
    fields: &[PartitionFamily<S>],
    parts: &[(&str, u32, &S)],
) {
    use std::fmt::Write as _;
    for (name, kind, get) in fields {
        let _ = writeln!(out, "# TYPE sprawl_{name} {kind}");
        for (topic, partition, s) in parts {
            let _ = writeln!(
                out,
                "sprawl_{name}{{node=\"{node}\",topic=\"{topic}\",partition=\"{partition}\"}} {}",
                get(s)
            );
        }
    }
}
