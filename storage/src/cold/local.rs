//! The local side: which sealed segments a log can hand to the tier, and the deletion of local
//! copies the tier has confirmed ([`LocalDeletion`] tokens exist only for those).

use std::path::{Path, PathBuf};

use crate::cold::error::ColdError;
use crate::format::{SegmentHeader, SegmentState, SEGMENT_HEADER_BYTES};
use crate::log::PartitionLog;
use crate::segment::{offset_index_path, segment_path, time_index_path, Segment};

/// A sealed, checkpointed local segment: what the tier uploads and may later release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSegment {
    pub seq: u64,
    pub path: PathBuf,
    pub base_offset: u64,
    pub next_offset: u64,
    pub data_bytes: u64,
    pub max_timestamp_ms: i64,
    /// CRC of the sealed header: identifies this version of the file (compaction rewrites it).
    pub header_crc32c: u32,
}

impl LocalSegment {
    /// Reads the description from a sealed segment file's header.
    pub fn from_file(path: &Path) -> Result<LocalSegment, ColdError> {
        use std::io::Read;
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut b))
            .map_err(|e| ColdError::io(path, "read segment header", e))?;
        let h = SegmentHeader::decode(&b).map_err(|r| ColdError::BadLocalSegment {
            path: path.to_path_buf(),
            position: 0,
            reason: r.to_string(),
        })?;
        if h.state != SegmentState::Sealed {
            return Err(ColdError::BadLocalSegment {
                path: path.to_path_buf(),
                position: 0,
                reason: "segment is not sealed".into(),
            });
        }
        Ok(LocalSegment {
            seq: h.seq,
            path: path.to_path_buf(),
            base_offset: h.base_offset,
            next_offset: h.next_offset,
            data_bytes: h.data_bytes,
            max_timestamp_ms: h.max_timestamp_ms,
            header_crc32c: h.crc32c(),
        })
    }

    fn of(seg: &Segment) -> LocalSegment {
        LocalSegment {
            seq: seg.seq,
            path: seg.path.clone(),
            base_offset: seg.base_offset(),
            next_offset: seg.next_offset,
            data_bytes: seg.data_bytes(),
            max_timestamp_ms: seg.max_timestamp_ms,
            header_crc32c: seg.header.crc32c(),
        }
    }
}

/// Why the tier allows a local segment to be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionReason {
    /// Its offsets are in uploaded objects listed by a confirmed manifest, and the local
    /// retention policy wants it gone.
    Tiered,
    /// Its offsets are below the remote retention horizon: past retention everywhere.
    PastRemoteRetention,
}

/// "Safe to delete local segment `seq`": made only by [`crate::cold::PartitionTier`] once the
/// segment's upload and the manifest listing it are both confirmed (or its offsets are past
/// remote retention). The fields are private so no other code can forge one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDeletion {
    pub(crate) seq: u64,
    pub(crate) base_offset: u64,
    pub(crate) next_offset: u64,
    pub(crate) reason: DeletionReason,
}

impl LocalDeletion {
    pub fn seq(&self) -> u64 {
        self.seq
    }
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }
    pub fn reason(&self) -> DeletionReason {
        self.reason
    }
}

/// Unlinks released segments (`Send`: run it on a blocking thread). Readers holding `Bytes` of
/// them keep their mappings.
pub struct ReleaseJob {
    dir: PathBuf,
    segments: Vec<Segment>,
}

impl std::fmt::Debug for ReleaseJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seqs: Vec<u64> = self.segments.iter().map(|s| s.seq).collect();
        f.debug_struct("ReleaseJob")
            .field("dir", &self.dir)
            .field("seqs", &seqs)
            .finish()
    }
}

impl ReleaseJob {
    /// Unlinks each segment and its index files, then fsyncs the directory. Returns the seqs.
    pub fn run(self) -> Result<Vec<u64>, ColdError> {
        let mut seqs = Vec::with_capacity(self.segments.len());
        for seg in &self.segments {
            for p in [
                segment_path(&self.dir, seg.seq),
                offset_index_path(&self.dir, seg.seq),
                time_index_path(&self.dir, seg.seq),
            ] {
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ColdError::io(&p, "unlink released segment", e)),
                }
            }
            seqs.push(seg.seq);
        }
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ColdError::io(&self.dir, "fsync directory", e))?;
        Ok(seqs)
    }
}

impl PartitionLog {
    /// Sealed segments whose every batch is below the checkpoint (synced and indexed), oldest
    /// first: what the cold tier may upload.
    pub fn tierable_segments(&self) -> Vec<LocalSegment> {
        self.segments
            .iter()
            .take_while(|s| s.is_sealed() && s.next_offset <= self.checkpoint_offset)
            .filter(|s| !s.is_empty())
            .map(LocalSegment::of)
            .collect()
    }

    /// Detaches the oldest segments named by `deletions` (a prefix of the log, matched by seq and
    /// offsets; anything else is ignored) and returns the job that unlinks them. The newest
    /// segment always stays. Reads below the new start offset must go to the remote tier.
    pub fn release_tiered(&mut self, deletions: &[LocalDeletion]) -> Option<ReleaseJob> {
        let mut detached = Vec::new();
        for d in deletions {
            let Some(seg) = self.segments.first() else {
                break;
            };
            let matches = seg.seq == d.seq
                && seg.base_offset() == d.base_offset
                && seg.next_offset == d.next_offset
                && seg.is_sealed()
                && seg.next_offset <= self.checkpoint_offset;
            if !matches || self.segments.len() < 2 {
                break;
            }
            detached.push(self.segments.remove(0));
            self.start_offset = self.segments[0].base_offset();
        }
        if detached.is_empty() {
            return None;
        }
        self.ring.discard_below(self.start_offset);
        Some(ReleaseJob {
            dir: self.dir.clone(),
            segments: detached,
        })
    }
}
