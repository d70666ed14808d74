//! Per-partition log configuration.

/// Compression codec applied to a batch's records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Records stored as encoded; reads are zero-copy down to the value bytes.
    #[default]
    None,
    /// zstd at `level`; a batch that does not shrink is stored uncompressed instead.
    Zstd { level: i32 },
}

/// How a segment's pages are faulted in, a window at a time (see
/// [`LogConfig::prefault_window_bytes`]): at creation by its [`crate::SegmentJob`], then ahead of
/// the write position by [`crate::PrefaultJob`]s.
///
/// `Write` maps each page writable and dirty, so the appends that follow take no page fault until
/// writeback write-protects the page again (a flush does, for every dirty page of the file). The
/// price is that the next fdatasync also writes the zero pages of the window beyond the data: at
/// most one window per flush. `Read` maps the pages read-only: no extra writeback, but the first
/// write to each page faults (`do_wp_page`, `page_mkwrite`) on the append path.
/// `docs/benchmarks/prefault.md` measures both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefault {
    /// MADV_POPULATE_WRITE (falls back to touching each page on kernels without it).
    #[default]
    Write,
    /// MADV_POPULATE_READ: pages are in the page cache and mapped, first write per page faults.
    Read,
}

/// Capacity of the per-partition hot ring (see [`crate::ring`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Bytes of batches the ring may hold (also charged to the node budget when one is attached).
    pub bytes_max: u64,
    /// Number of batches the ring may hold; `0` disables the ring.
    pub entries_max: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            bytes_max: 4 << 20,
            entries_max: 1024,
        }
    }
}

/// Configuration of one partition log. Every field is validated by [`LogConfig::validate`] on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Length of a segment file; a segment rolls when the next batch would not fit. The file is
    /// sparse: disk blocks are allocated `prefault_window_bytes` at a time ahead of the writes.
    pub segment_bytes_max: u64,
    /// Roll the active segment once its first append is this old.
    pub segment_ms_max: Option<u64>,
    /// Add a sparse index entry after at least this many bytes of batches.
    pub index_interval_bytes: u32,
    /// Delete sealed segments whose newest timestamp is older than this.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the log is bigger than this.
    pub retention_bytes: Option<u64>,
    /// TTL applied to records appended with `ttl_ms == 0`.
    pub default_ttl_ms: Option<u64>,
    /// Topic is compacted: [`crate::PartitionLog::compaction_job`] keeps the latest record per key.
    pub compacted: bool,
    /// Codec for newly appended batches (reads handle every codec regardless).
    pub compression: Compression,
    /// Largest encoded batch accepted by `append`.
    pub batch_bytes_max: u32,
    /// Hot ring capacity.
    pub ring: RingConfig,
    /// How segment pages are faulted in ahead of the appends.
    pub prefault: Prefault,
    /// Bytes of a segment allocated (fallocate) and prefaulted at a time: a new segment gets its
    /// first window when it is created, and [`crate::PartitionLog::prefault_job`] extends the
    /// frontier by about a window once the write position is within half a window of it. Also
    /// the most disk a segment claims before it holds data. A multiple of 4096.
    pub prefault_window_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 64 << 20,
            segment_ms_max: None,
            index_interval_bytes: 4096,
            retention_ms: None,
            retention_bytes: None,
            default_ttl_ms: None,
            compacted: false,
            compression: Compression::None,
            batch_bytes_max: 8 << 20,
            ring: RingConfig::default(),
            prefault: Prefault::default(),
            prefault_window_bytes: PREFAULT_WINDOW_BYTES_DEFAULT,
        }
    }
}

/// Largest `batch_bytes_max` a log accepts (64 MiB), so also the largest batch ever written and
/// the most a reader allocates for one batch.
pub const BATCH_BYTES_LIMIT: u32 = 64 << 20;

/// Default `prefault_window_bytes` (1 MiB; see `docs/benchmarks/prefault.md`).
pub const PREFAULT_WINDOW_BYTES_DEFAULT: u64 = 1 << 20;

/// Smallest accepted `segment_bytes_max`: one page.
pub const SEGMENT_BYTES_MIN: u64 = 4096;
/// Largest accepted `segment_bytes_max`: positions in the offset index are u32.
pub const SEGMENT_BYTES_LIMIT: u64 = u32::MAX as u64;

impl LogConfig {
    /// Checks the limits this crate relies on; the error names the field.
    pub fn validate(&self) -> Result<(), crate::StorageError> {
        let bad = |field: &'static str, reason: &'static str| {
            Err(crate::StorageError::InvalidConfig { field, reason })
        };
        if self.segment_bytes_max < SEGMENT_BYTES_MIN
            || self.segment_bytes_max > SEGMENT_BYTES_LIMIT
        {
            return bad("segment_bytes_max", "must be within 4 KiB ..= 4 GiB - 1");
        }
        if self.prefault_window_bytes < SEGMENT_BYTES_MIN
            || self.prefault_window_bytes > SEGMENT_BYTES_LIMIT
            || !self.prefault_window_bytes.is_multiple_of(SEGMENT_BYTES_MIN)
        {
            return bad(
                "prefault_window_bytes",
                "must be a multiple of 4 KiB within 4 KiB ..= 4 GiB - 1",
            );
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "must be > 0");
        }
        if (self.batch_bytes_max as usize)
            < crate::format::BATCH_HEADER_BYTES + crate::format::RECORD_PREFIX_BYTES
        {
            return bad("batch_bytes_max", "too small to hold one empty record");
        }
        if self.batch_bytes_max > BATCH_BYTES_LIMIT {
            return bad("batch_bytes_max", "must be at most 64 MiB");
        }
        if let Compression::Zstd { level } = self.compression {
            if !(1..=22).contains(&level) {
                return bad("compression", "zstd level must be within 1..=22");
            }
        }
        Ok(())
    }

    /// The window actually used: `prefault_window_bytes`, at most one segment.
    pub fn effective_prefault_window_bytes(&self) -> u64 {
        self.prefault_window_bytes.min(self.segment_bytes_max)
    }

    /// Largest batch that can be appended: bounded by `batch_bytes_max` and by what fits in a segment.
    pub fn effective_batch_bytes_max(&self) -> u64 {
        u64::from(self.batch_bytes_max)
            .min(self.segment_bytes_max - crate::format::SEGMENT_HEADER_BYTES as u64)
    }
}
