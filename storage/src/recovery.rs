//! Opening a log: crash recovery.
//!
//! The `checkpoint` file names an offset below which every batch lives in a sealed segment that was
//! fdatasync'd together with its index files. Those segments are trusted: their header gives their
//! extent and their index is loaded (or rebuilt by a CRC-verifying scan if missing or damaged; a
//! failure there is [`StorageError::Corrupt`], because that data was durable). Every later segment is
//! scanned batch by batch (framing, offset continuity, CRC32C); the first invalid batch is the torn
//! tail: the log is cut there, at a batch boundary, and later segments are removed. A flushed batch
//! can only be behind a cut if the device lost synced data. The first segment must start at or
//! below a valid checkpoint (the start only moves up to it); one starting later lost its
//! predecessor and is a tail too, so the recovered log is always a prefix of what was appended.

use std::path::{Path, PathBuf};

use crate::config::LogConfig;
use crate::error::StorageError;
use crate::format::{
    decode_checkpoint, BatchHeader, SegmentState, BATCH_HEADER_BYTES, CHECKPOINT_BYTES,
    SEGMENT_HEADER_BYTES,
};
use crate::index::{load_index_files, remove_index_files, IndexOwner};
use crate::io::{Io, SYNC_FAILED_FILE};
use crate::jobs::{write_checkpoint, SealWork, CHECKPOINT_FILE};
use crate::log::{Counters, PartitionLog};
use crate::producer::{ProducerInfo, ProducerStates};
use crate::ring::HotRing;
use crate::segment::{header_is_zero, read_header, segment_path, sync_dir, Segment};

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub checkpoint_offset: u64,
    /// Segments trusted through the checkpoint (header + index files).
    pub segments_trusted: u64,
    /// Segments scanned batch by batch with CRC verification.
    pub segments_scanned: u64,
    pub batches_scanned: u64,
    /// Index files rebuilt because they were missing or failed verification.
    pub indexes_rebuilt: u64,
    /// An fdatasync had failed since the last clean open (its marker was found): every page after
    /// the checkpoint was written again before being synced.
    pub rewrote_after_failed_sync: bool,
    /// Where the torn or corrupt tail was cut, with the reason, if anything was cut.
    pub tail_cut: Option<TailCut>,
    /// Files removed: unused prepared segments and segments after a cut.
    pub files_removed: Vec<PathBuf>,
    pub start_offset: u64,
    pub end_offset: u64,
}

/// A cut of the log's tail made by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailCut {
    pub path: PathBuf,
    pub position: u64,
    pub offset: u64,
    pub reason: String,
}

/// Scans batches from the header to `limit`, verifying each; stops at the first invalid one and
/// returns why (`None` if the scan reached `limit` exactly).
fn scan(
    seg: &mut Segment,
    limit: u64,
    interval: u32,
    report: &mut RecoveryReport,
) -> Option<&'static str> {
    let mut pos = SEGMENT_HEADER_BYTES as u64;
    while pos < limit {
        if pos + BATCH_HEADER_BYTES as u64 > limit {
            return Some("truncated batch header");
        }
        let h = match BatchHeader::decode(seg.view(pos, BATCH_HEADER_BYTES)) {
            Ok(h) => h,
            Err(reason) => return Some(reason),
        };
        if h.base_offset != seg.next_offset {
            return Some("batch offset does not follow the previous batch");
        }
        if pos + u64::from(h.batch_bytes) > limit {
            return Some("batch extends past the end of the segment");
        }
        if h.base_offset
            .checked_add(u64::from(h.record_count))
            .is_none()
            || h.last_offset() - seg.base_offset() >= u64::from(u32::MAX)
        {
            return Some("batch offsets overflow the segment");
        }
        if !h.verify_crc(seg.view(pos, h.batch_bytes as usize)) {
            return Some("batch checksum mismatch");
        }
        seg.note_batch(pos, &h, interval);
        report.batches_scanned += 1;
        pos += u64::from(h.batch_bytes);
    }
    None
}

fn remove(io: &Io, path: &Path, report: &mut RecoveryReport) -> Result<(), StorageError> {
    io.remove_file(path)
        .map_err(|e| StorageError::io(path, "unlink", e))?;
    report.files_removed.push(path.to_path_buf());
    Ok(())
}

fn list_segment_seqs(io: &Io, dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, "read_dir", e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, "read_dir", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if crate::compaction::is_compaction_leftover(name) {
            let path = entry.path();
            io.remove_file(&path)
                .map_err(|e| StorageError::io(&path, "unlink", e))?;
            continue;
        }
        if let Some(stem) = name.strip_suffix(".seg") {
            if let Ok(seq) = stem.parse::<u64>() {
                seqs.push(seq);
            }
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// The checkpoint offset, and whether it can be relied on to bound the log's start (see
/// `PartitionLog::open_with`).
fn read_checkpoint(dir: &Path) -> Result<(u64, bool), StorageError> {
    let path = dir.join(CHECKPOINT_FILE);
    match std::fs::read(&path) {
        Ok(b) if b.len() == CHECKPOINT_BYTES && decode_checkpoint(&b).is_some() => {
            Ok((decode_checkpoint(&b).unwrap_or(0), true))
        }
        // Created but never written back (a crash between the creation and its sync): the
        // same as no checkpoint at all.
        Ok(b) if b.iter().all(|&x| x == 0) => Ok((0, true)),
        // A damaged or foreign checkpoint only costs a longer scan.
        Ok(_) => Ok((0, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((0, true)),
        Err(e) => Err(StorageError::io(&path, "read checkpoint", e)),
    }
}

/// Loads a segment the checkpoint vouches for.
fn load_trusted(
    io: &Io,
    dir: &Path,
    seg: &mut Segment,
    interval: u32,
    report: &mut RecoveryReport,
) -> Result<(), StorageError> {
    let h = seg.header;
    let end = SEGMENT_HEADER_BYTES as u64 + h.data_bytes;
    if end > seg.capacity() {
        return Err(StorageError::corrupt(
            &seg.path,
            40,
            "sealed data length exceeds the file",
        ));
    }
    let owner = IndexOwner {
        seq: seg.seq,
        segment_header_crc32c: h.crc32c(),
    };
    let index = load_index_files(dir, owner, h.batch_count).filter(|(o, _)| {
        (h.batch_count == 0 && o.is_empty())
            || o.first().is_some_and(|e| {
                e.relative_offset == 0 && e.position as usize == SEGMENT_HEADER_BYTES
            }) && o.iter().all(|e| u64::from(e.position) < end)
    });
    match index {
        Some((offsets, times)) => {
            seg.offset_index = offsets;
            seg.time_index = times;
            seg.time_index_trust = crate::segment::TIME_INDEX_UNCHECKED.into();
            seg.write_pos = end;
            seg.high_water = end;
            seg.next_offset = h.next_offset;
            seg.max_timestamp_ms = h.max_timestamp_ms;
            seg.max_expires_at_ms = h.max_expires_at_ms;
            seg.batch_count = h.batch_count;
            report.segments_trusted += 1;
        }
        None => {
            if let Some(reason) = scan(seg, end, interval, report) {
                return Err(StorageError::corrupt(&seg.path, seg.write_pos, reason));
            }
            if seg.next_offset != h.next_offset {
                return Err(StorageError::corrupt(
                    &seg.path,
                    48,
                    "sealed next offset differs from the batches",
                ));
            }
            SealWork::of(seg).run(io, dir)?;
            report.indexes_rebuilt += 1;
            report.segments_scanned += 1;
        }
    }
    Ok(())
}

impl PartitionLog {
    /// Opens (creating if absent) the log in `dir`, running crash recovery. Blocking.
    pub fn open(
        dir: &Path,
        config: LogConfig,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        PartitionLog::open_with(dir, config, Io::Real)
    }

    /// [`PartitionLog::open`] with an explicit I/O backend: every later disk operation of the log
    /// and of its jobs goes through `io` ([`Io::Fault`] in crash tests).
    pub fn open_with(
        dir: &Path,
        config: LogConfig,
        io: Io,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        config.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, "create_dir_all", e))?;
        let (checkpoint_offset, checkpoint_valid) = read_checkpoint(dir)?;
        let mut report = RecoveryReport {
            checkpoint_offset,
            ..Default::default()
        };
        let checkpoint = report.checkpoint_offset;
        let interval = config.index_interval_bytes;
        let seqs = list_segment_seqs(&io, dir)?;
        let next_seq = seqs.last().map_or(0, |s| s + 1);
        let mut segments: Vec<Segment> = Vec::new();
        let mut cut = false;
        let mut orphans = Vec::new();
        for seq in seqs {
            let path = segment_path(dir, seq);
            if cut {
                remove(&io, &path, &mut report)?;
                remove_index_files(&io, dir, seq)?;
                continue;
            }
            let expected = segments.last().map_or(0, |s| s.next_offset);
            let len = std::fs::metadata(&path)
                .map_err(|e| StorageError::io(&path, "stat", e))?
                .len();
            let opened = if len >= SEGMENT_HEADER_BYTES as u64 {
                let (file, map) = Segment::open_file(&path)?;
                let header = read_header(&map);
                Some((file, map, header))
            } else {
                None
            };
            let header = opened
                .as_ref()
                .map_or(Err("file shorter than the segment header"), |o| o.2);
            // A file whose header was never written (a prepare interrupted by a crash, possibly
            // followed by segments created synchronously) was never part of the chain: set it
            // aside; the continuity check of the next segment decides whether anything is missing.
            let never_initialized = match &opened {
                None => true,
                Some((_, map, _)) => header.is_err() && header_is_zero(map),
            };
            let header = match header {
                Ok(h) if h.state == SegmentState::Prepared => {
                    orphans.push((path, seq));
                    continue;
                }
                Err(_) if never_initialized => {
                    orphans.push((path, seq));
                    continue;
                }
                // The log's start only moves (retention, truncation) up to the checkpoint, so a
                // first segment starting after a valid checkpoint lost its predecessor (an
                // active segment whose header never reached the disk): nothing from it on was
                // ever flushed, and keeping it would leave a gap at the start of the log.
                Ok(h)
                    if h.seq == seq
                        && (h.base_offset == expected && !segments.is_empty()
                            || segments.is_empty()
                                && (h.base_offset <= checkpoint || !checkpoint_valid)) =>
                {
                    h
                }
                Ok(_) | Err(_) => {
                    let reason = match header {
                        Err(r) => r,
                        Ok(h) if segments.is_empty() && h.seq == seq => {
                            "first segment starts after the checkpoint: its predecessor is missing"
                        }
                        Ok(_) => "segment header does not continue the previous segment",
                    };
                    if expected < checkpoint || (segments.is_empty() && checkpoint > 0) {
                        return Err(StorageError::corrupt(&path, 0, reason));
                    }
                    report.tail_cut = Some(TailCut {
                        path: path.clone(),
                        position: 0,
                        offset: expected,
                        reason: reason.into(),
                    });
                    remove(&io, &path, &mut report)?;
                    remove_index_files(&io, dir, seq)?;
                    cut = true;
                    continue;
                }
            };
            let (file, map, _) = opened.expect("a decoded header implies an opened file");
            let mut seg = Segment::from_parts(path.clone(), file, map, header);
            let trusted = header.state == SegmentState::Sealed && header.next_offset <= checkpoint;
            if trusted {
                load_trusted(&io, dir, &mut seg, interval, &mut report)?;
                segments.push(seg);
                continue;
            }
            report.segments_scanned += 1;
            let limit = match header.state {
                SegmentState::Sealed => {
                    (SEGMENT_HEADER_BYTES as u64 + header.data_bytes).min(seg.capacity())
                }
                _ => seg.capacity(),
            };
            let stop = scan(&mut seg, limit, interval, &mut report);
            let sealed_short =
                header.state == SegmentState::Sealed && seg.next_offset != header.next_offset;
            if stop.is_some() || sealed_short {
                // Garbage (torn or unflushed) past the last valid batch: make the segment the tail.
                let had_garbage = seg.zero_tail(seg.write_pos);
                if had_garbage || sealed_short {
                    report.tail_cut = Some(TailCut {
                        path: path.clone(),
                        position: seg.write_pos,
                        offset: seg.next_offset,
                        reason: stop
                            .unwrap_or("sealed segment shorter than its header says")
                            .into(),
                    });
                    cut = true;
                }
                if had_garbage {
                    io.sync_data(&path, &seg.file)
                        .map_err(|e| StorageError::io(&path, "fdatasync", e))?;
                }
                if seg.is_sealed() {
                    seg.header.state = SegmentState::Active;
                    seg.store_header();
                }
            }
            segments.push(seg);
        }
        let chain_end = segments.last().map_or(0, |s| s.next_offset);
        if chain_end < checkpoint {
            let path = orphans
                .first()
                .map_or_else(|| dir.to_path_buf(), |(p, _)| p.clone());
            return Err(StorageError::corrupt(
                path,
                0,
                format!("segments end at offset {chain_end}, below the checkpoint {checkpoint}"),
            ));
        }
        for (path, seq) in &orphans {
            remove(&io, path, &mut report)?;
            remove_index_files(&io, dir, *seq)?;
        }
        if cut || !orphans.is_empty() {
            sync_dir(&io, dir)?;
        }

        // After a failed fdatasync the page cache may hold pages the kernel marked clean without
        // writing them: write everything after the checkpoint again so the syncs below cover it.
        let marker = dir.join(SYNC_FAILED_FILE);
        report.rewrote_after_failed_sync = marker.exists();
        if report.rewrote_after_failed_sync {
            for seg in segments
                .iter_mut()
                .filter(|s| !(s.is_sealed() && s.header.next_offset <= checkpoint))
            {
                seg.rewrite_pages(&io)?;
            }
        }
        // Every segment but the last is sealed; the last stays active unless it was sealed on close.
        let mut pending = Vec::new();
        let last = segments.len().saturating_sub(1);
        for (i, seg) in segments.iter_mut().enumerate() {
            let trusted = seg.is_sealed() && seg.header.next_offset <= checkpoint;
            if trusted {
                continue;
            }
            if i < last || seg.is_sealed() {
                seg.seal();
                pending.push(SealWork::of(seg));
            }
        }
        // Make what recovery kept durable now, so that `durable_offset == end_offset` is true.
        let mut checkpoint_offset = checkpoint;
        for work in &pending {
            work.run(&io, dir)?;
            checkpoint_offset = work.next_offset;
        }
        if let Some(active) = segments.last().filter(|s| !s.is_sealed()) {
            io.sync_data(&active.path, &active.file)
                .map_err(|e| StorageError::io(&active.path, "fdatasync", e))?;
        }
        if checkpoint_offset != checkpoint {
            write_checkpoint(&io, dir, checkpoint_offset)?;
        }
        if report.rewrote_after_failed_sync {
            io.remove_file(&marker)
                .map_err(|e| StorageError::io(&marker, "unlink", e))?;
        }

        let mut producers = ProducerStates::default();
        rebuild_producers(&segments, &mut producers)?;
        let start_offset = segments.first().map_or(0, |s| s.base_offset());
        let end_offset = segments.last().map_or(0, |s| s.next_offset);
        report.start_offset = start_offset;
        report.end_offset = end_offset;
        let ring = HotRing::new(config.ring);
        let log = PartitionLog {
            io,
            dir: dir.to_path_buf(),
            config,
            segments,
            start_offset,
            end_offset,
            durable_offset: end_offset,
            checkpoint_offset,
            next_seq,
            prepared: None,
            prepare_in_flight: false,
            prefault_in_flight: false,
            flush_in_flight: false,
            generation: 0,
            pending_seals: Vec::new(),
            producers,
            ring,
            scratch: Vec::new(),
            fenced: false,
            compaction_in_flight: false,
            compacted_through: 0,
            last_flush_pos: None,
            appends_at_flush_complete: None,
            counters: Counters::default(),
        };
        Ok((log, report))
    }

    /// Rebuilds idempotent-producer state from batch headers (after open and after truncation).
    pub(crate) fn rebuild_producer_state(&mut self) -> Result<(), StorageError> {
        self.producers.clear();
        rebuild_producers(&self.segments, &mut self.producers)
    }
}

/// Walks batch headers (no CRC: recovery or the checkpoint already vouched for them) and replays the
/// idempotent ones into `producers`.
fn rebuild_producers(
    segments: &[Segment],
    producers: &mut ProducerStates,
) -> Result<(), StorageError> {
    for seg in segments {
        let mut pos = SEGMENT_HEADER_BYTES as u64;
        while pos < seg.write_pos {
            let h = seg.batch_header_at(pos)?;
            if h.producer_id != crate::format::NO_PRODUCER_ID {
                let p = ProducerInfo {
                    producer_id: h.producer_id,
                    epoch: h.producer_epoch,
                    base_sequence: h.base_sequence,
                };
                producers.record(&p, h.record_count, h.base_offset, h.last_offset());
            }
            pos += u64::from(h.batch_bytes);
        }
    }
    Ok(())
}
