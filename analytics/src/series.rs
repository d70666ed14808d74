//! Series identities and the samples the engine feeds in.

/// What a series measures. The kind decides its configuration (history length, forecasting, season search).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeriesKind {
    /// Messages appended to one partition per second (entity = partition id).
    PartitionMsgsPerS,
    /// Bytes appended to one partition per second (entity = partition id).
    PartitionBytesPerS,
    /// Consumer lag of one partition in messages (entity = partition id).
    ConsumerLagMsgs,
    /// Fetch requests served by one partition per second (entity = partition id).
    FetchPerS,
    /// Messages handled by one shard per second (entity = shard id).
    ShardMsgsPerS,
    /// Host CPU utilisation in percent (entity = node id).
    HostCpuPct,
    /// Host memory in use, bytes (entity = node id).
    HostMemBytes,
    /// Host disk I/O, bytes per second (entity = node id).
    HostDiskBytesPerS,
    /// Host network I/O, bytes per second (entity = node id).
    HostNetBytesPerS,
    /// Any other series (used for replaying external data such as NAB).
    Generic,
}

impl SeriesKind {
    /// Every kind, for iteration in tables.
    pub const ALL: [SeriesKind; 10] = [
        SeriesKind::PartitionMsgsPerS,
        SeriesKind::PartitionBytesPerS,
        SeriesKind::ConsumerLagMsgs,
        SeriesKind::FetchPerS,
        SeriesKind::ShardMsgsPerS,
        SeriesKind::HostCpuPct,
        SeriesKind::HostMemBytes,
        SeriesKind::HostDiskBytesPerS,
        SeriesKind::HostNetBytesPerS,
        SeriesKind::Generic,
    ];

    /// True for the per-partition kinds (the ones counted in the per-partition state budget).
    pub fn is_partition(self) -> bool {
        matches!(
            self,
            SeriesKind::PartitionMsgsPerS
                | SeriesKind::PartitionBytesPerS
                | SeriesKind::ConsumerLagMsgs
                | SeriesKind::FetchPerS
        )
    }

    /// Stable lower-case name used in reports and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            SeriesKind::PartitionMsgsPerS => "partition_msgs_per_s",
            SeriesKind::PartitionBytesPerS => "partition_bytes_per_s",
            SeriesKind::ConsumerLagMsgs => "consumer_lag_msgs",
            SeriesKind::FetchPerS => "fetch_per_s",
            SeriesKind::ShardMsgsPerS => "shard_msgs_per_s",
            SeriesKind::HostCpuPct => "host_cpu_pct",
            SeriesKind::HostMemBytes => "host_mem_bytes",
            SeriesKind::HostDiskBytesPerS => "host_disk_bytes_per_s",
            SeriesKind::HostNetBytesPerS => "host_net_bytes_per_s",
            SeriesKind::Generic => "generic",
        }
    }
}

/// One series: a kind plus the id of the partition, shard or node it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesId {
    /// What is measured.
    pub kind: SeriesKind,
    /// Partition, shard or node id, depending on `kind`.
    pub entity: u32,
}

impl SeriesId {
    /// Shorthand constructor.
    pub fn new(kind: SeriesKind, entity: u32) -> Self {
        SeriesId { kind, entity }
    }
}

/// One measurement, normally taken once per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The series measured.
    pub series: SeriesId,
    /// Measurement time in seconds (any epoch; only differences matter).
    pub t_s: u64,
    /// The measured value, in the unit named by the series kind.
    pub value: f64,
}
