//! raft-rs [`Storage`] backed by two files: `raft.snap` (latest snapshot,
//! replaced atomically) and `raft.log` (append-only CRC32C-framed records).
//!
//! Durability rules the node relies on:
//! - a hard state record is written before the entries of the same Ready, so
//!   any surviving prefix of the file has a term at least that of its entries;
//! - appends are volatile until [`DiskStorage::sync`]; the node syncs before it
//!   releases any message that raft-rs says needs persistence;
//! - the snapshot file is replaced before the log is rewritten without the
//!   entries it covers, so a crash in between loses nothing.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError as RaftStorageError};

use crate::backend::Backend;
use crate::error::StorageError;
use crate::logfile::{
    decode_record, decode_snapshot_file, encode_record, encode_snapshot_file, Decoded, Record,
    LOG_FILE, SNAPSHOT_FILE, SNAPSHOT_FILE_BYTES_MAX,
};

/// A durable Raft log over a [`Backend`].
#[derive(Debug)]
pub struct DiskStorage<B: Backend> {
    backend: B,
    hard_state: HardState,
    written_hard_state: HardState,
    snapshot: Snapshot,
    /// Entries `snapshot.index + 1 ..= last_index`, contiguous.
    entries: Vec<Entry>,
    boot: u64,
    log_file_bytes: u64,
    log_file_bytes_max: u64,
    unsynced: bool,
}

fn corrupt(file: &str, offset: u64) -> impl FnOnce(crate::error::CodecError) -> StorageError + '_ {
    move |source| StorageError::Corrupt {
        file: file.to_owned(),
        offset,
        source,
    }
}

impl<B: Backend> DiskStorage<B> {
    /// Opens the files in `backend`, or bootstraps an empty log whose snapshot
    /// at index 0 holds `voters` and `initial_data`. Torn tails are cut, the
    /// boot counter goes up by one and the log file is rewritten compactly.
    pub fn open(
        mut backend: B,
        voters: &[u64],
        initial_data: &[u8],
        log_file_bytes_max: u64,
    ) -> Result<Self, StorageError> {
        let snapshot = match backend.read(SNAPSHOT_FILE, SNAPSHOT_FILE_BYTES_MAX as u64)? {
            Some(bytes) => decode_snapshot_file(&bytes).map_err(corrupt(SNAPSHOT_FILE, 0))?,
            None => {
                let mut snap = Snapshot {
                    data: initial_data.to_vec(),
                    ..Snapshot::default()
                };
                snap.mut_metadata()
                    .set_conf_state(ConfState::from((voters.to_vec(), Vec::<u64>::new())));
                let bytes = encode_snapshot_file(&snap).map_err(corrupt(SNAPSHOT_FILE, 0))?;
                backend.replace(SNAPSHOT_FILE, &bytes)?;
                snap
            }
        };
        let mut stored = snapshot.get_metadata().get_conf_state().voters.clone();
        let mut configured = voters.to_vec();
        stored.sort_unstable();
        configured.sort_unstable();
        if stored != configured {
            return Err(StorageError::VotersMismatch { stored, configured });
        }
        let mut me = Self {
            backend,
            hard_state: HardState::default(),
            written_hard_state: HardState::default(),
            snapshot,
            entries: Vec::new(),
            boot: 0,
            log_file_bytes: 0,
            log_file_bytes_max,
            unsynced: false,
        };
        me.replay()?;
        me.boot += 1;
        me.rewrite_log()?;
        Ok(me)
    }

    fn replay(&mut self) -> Result<(), StorageError> {
        let read_max = self.log_file_bytes_max.saturating_mul(4);
        let Some(buf) = self.backend.read(LOG_FILE, read_max)? else {
            self.hard_state.commit = self.snapshot_index();
            self.hard_state.term = self.snapshot.get_metadata().term;
            return Ok(());
        };
        let snap_index = self.snapshot_index();
        let snap_term = self.snapshot.get_metadata().term;
        // Entries from a branch that the snapshot contradicts are discarded.
        let mut diverged = false;
        let mut off = 0usize;
        while off < buf.len() {
            let (rec, used) =
                match decode_record(&buf[off..]).map_err(corrupt(LOG_FILE, off as u64))? {
                    Decoded::Record(rec, used) => (rec, used),
                    Decoded::Torn => break,
                };
            match rec {
                Record::Boot(n) => self.boot = n,
                Record::HardState(hs) => self.hard_state = hs,
                // An entry at or below the snapshot overwrote everything after
                // it; entries that follow count only once a record at the
                // snapshot index shows this branch agrees with the snapshot.
                Record::Entry(e) if e.index <= snap_index => {
                    diverged = e.index < snap_index || e.term != snap_term;
                    self.entries.clear();
                }
                Record::Entry(_) if diverged => {}
                Record::Entry(e) => {
                    let last = self.last_index_inner();
                    if e.index > last + 1 {
                        return Err(StorageError::Corrupt {
                            file: LOG_FILE.to_owned(),
                            offset: off as u64,
                            source: crate::error::CodecError::Inconsistent {
                                what: "log",
                                reason: "gap between entries",
                            },
                        });
                    }
                    self.entries.truncate((e.index - snap_index - 1) as usize);
                    self.entries.push(e);
                }
            }
            off += used;
        }
        let last = self.last_index_inner();
        let last_term = self.entries.last().map_or(snap_term, |e| e.term);
        let hs = &mut self.hard_state;
        hs.commit = hs.commit.clamp(snap_index, last);
        if hs.term < last_term {
            hs.term = last_term;
            hs.vote = 0;
        }
        Ok(())
    }

    /// Writes `raft.log` from memory (boot, hard state, entries) and replaces
    /// the old file atomically.
    fn rewrite_log(&mut self) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        let enc =
            |rec: &Record, buf: &mut Vec<u8>| encode_record(rec, buf).map_err(corrupt(LOG_FILE, 0));
        enc(&Record::Boot(self.boot), &mut buf)?;
        enc(&Record::HardState(self.hard_state.clone()), &mut buf)?;
        for e in &self.entries {
            enc(&Record::Entry(e.clone()), &mut buf)?;
        }
        self.backend.replace(LOG_FILE, &buf)?;
        self.log_file_bytes = buf.len() as u64;
        self.written_hard_state = self.hard_state.clone();
        self.unsynced = false;
        Ok(())
    }

    fn write(&mut self, rec: &Record) -> Result<(), StorageError> {
        let mut buf = Vec::with_capacity(64);
        encode_record(rec, &mut buf).map_err(corrupt(LOG_FILE, self.log_file_bytes))?;
        self.backend.append(LOG_FILE, &buf)?;
        self.log_file_bytes += buf.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    fn last_index_inner(&self) -> u64 {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    /// Index covered by the latest snapshot.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// The latest snapshot (its data is an encoded [`crate::MetadataState`]).
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The hard state as last set (synced or not).
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// How many times these files have been opened.
    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// Entries held in memory (and in the log file).
    pub fn entry_count(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Records a new hard state (written before entries of the same Ready).
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<(), StorageError> {
        self.hard_state = hs.clone();
        if self.written_hard_state != *hs {
            self.write(&Record::HardState(hs.clone()))?;
            self.written_hard_state = hs.clone();
        }
        Ok(())
    }

    /// Records a commit index learned after a Ready was persisted.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), StorageError> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(&hs)
    }

    /// Appends entries, first dropping any conflicting suffix (in memory; the
    /// file keeps the old records and replay applies the same overwrite).
    ///
    /// # Panics
    /// If raft-rs hands over entries that overwrite the snapshot or leave a gap:
    /// a broken invariant of the driver, not a disk fault.
    pub fn append(&mut self, ents: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = ents.first() else {
            return Ok(());
        };
        let snap_index = self.snapshot_index();
        assert!(
            first.index > snap_index,
            "append at {} overwrites the snapshot at {snap_index}",
            first.index
        );
        assert!(
            first.index <= self.last_index_inner() + 1,
            "append at {} leaves a gap after {}",
            first.index,
            self.last_index_inner()
        );
        for e in ents {
            self.write(&Record::Entry(e.clone()))?;
        }
        self.entries
            .truncate((first.index - snap_index - 1) as usize);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// Makes everything written so far durable.
    pub fn sync(&mut self) -> Result<bool, StorageError> {
        if !self.unsynced {
            return Ok(false);
        }
        self.backend.sync(LOG_FILE)?;
        self.unsynced = false;
        Ok(true)
    }

    /// Installs a snapshot received from the leader: replaces `raft.snap`,
    /// drops every entry and rewrites the log.
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<(), StorageError> {
        let meta = snap.get_metadata();
        let bytes = encode_snapshot_file(snap).map_err(corrupt(SNAPSHOT_FILE, 0))?;
        self.backend.replace(SNAPSHOT_FILE, &bytes)?;
        self.snapshot = snap.clone();
        self.entries.clear();
        self.hard_state.commit = meta.index;
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.rewrite_log()
    }

    /// Takes a snapshot at `index` (already applied) with the state encoded in
    /// `data`, then forgets the entries it covers.
    ///
    /// # Panics
    /// If `index` is not in the log.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), StorageError> {
        let snap_index = self.snapshot_index();
        if index <= snap_index {
            return Ok(());
        }
        let term = self
            .term(index)
            .unwrap_or_else(|e| panic!("compact to {index}: {e}"));
        let mut snap = Snapshot {
            data,
            ..Snapshot::default()
        };
        let conf = self.snapshot.get_metadata().get_conf_state().clone();
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(conf);
        let bytes = encode_snapshot_file(&snap).map_err(corrupt(SNAPSHOT_FILE, 0))?;
        self.backend.replace(SNAPSHOT_FILE, &bytes)?;
        self.entries.drain(..(index - snap_index) as usize);
        self.snapshot = snap;
        self.rewrite_log()
    }

    /// Rewrites the log if appends (mostly hard-state records) made it larger
    /// than `log_file_bytes_max`.
    pub fn maybe_rewrite(&mut self) -> Result<bool, StorageError> {
        if self.log_file_bytes <= self.log_file_bytes_max {
            return Ok(false);
        }
        self.rewrite_log()?;
        Ok(true)
    }
}

impl<B: Backend> Storage for DiskStorage<B> {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.snapshot.get_metadata().get_conf_state().clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let snap_index = self.snapshot_index();
        if low <= snap_index {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        if high > self.last_index_inner() + 1 {
            return Err(raft::Error::Store(RaftStorageError::Unavailable));
        }
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let lo = (low - snap_index - 1) as usize;
        let hi = (high - snap_index - 1) as usize;
        let mut out = Vec::with_capacity(hi - lo);
        let mut size = 0u64;
        for e in &self.entries[lo..hi] {
            size += prost::Message::encoded_len(e) as u64;
            // Always at least one entry, like raft-rs's own limit_size.
            if !out.is_empty() && size > max_size {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let snap = self.snapshot.get_metadata();
        if idx == snap.index {
            return Ok(snap.term);
        }
        if idx < snap.index {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        match self.entries.get((idx - snap.index - 1) as usize) {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(RaftStorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index_inner())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot_index() < request_index {
            return Err(raft::Error::Store(
                RaftStorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemBackend;

    const VOTERS: [u64; 3] = [1, 2, 3];

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8],
            ..Entry::default()
        }
    }

    fn open(disk: &MemBackend) -> DiskStorage<MemBackend> {
        DiskStorage::open(disk.clone(), &VOTERS, b"empty", 1 << 20).unwrap()
    }

    /// Entries 1..=10 in term 1, synced, then the process stops.
    fn ten_entries(disk: &MemBackend) {
        let mut s = open(disk);
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 0,
        };
        s.set_hard_state(&hs).unwrap();
        s.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>())
            .unwrap();
        s.set_commit(8).unwrap();
        s.sync().unwrap();
    }

    /// What a crash between replacing `raft.snap` and rewriting `raft.log`
    /// leaves behind.
    fn replace_snapshot_only(disk: &MemBackend, index: u64, term: u64) {
        let mut snap = Snapshot {
            data: b"state".to_vec(),
            ..Snapshot::default()
        };
        snap.mut_metadata().index = index;
        snap.mut_metadata().term = term;
        snap.mut_metadata()
            .set_conf_state(ConfState::from((VOTERS.to_vec(), Vec::<u64>::new())));
        let mut b = disk.clone();
        b.replace(SNAPSHOT_FILE, &encode_snapshot_file(&snap).unwrap())
            .unwrap();
    }

    #[test]
    fn reopen_restores_entries_hard_state_and_boot() {
        let disk = MemBackend::new();
        ten_entries(&disk);
        let s = open(&disk);
        assert_eq!(s.boot(), 2);
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (1, 10));
        assert_eq!(s.hard_state().commit, 8);
        assert_eq!(s.hard_state().vote, 1);
        let got = s
            .entries(3, 6, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(got, (3..6).map(|i| entry(i, 1)).collect::<Vec<_>>());
        assert_eq!(s.term(10).unwrap(), 1);
        assert!(s.term(11).is_err());
    }

    #[test]
    fn an_overwritten_suffix_stays_overwritten_after_reopen() {
        let disk = MemBackend::new();
        ten_entries(&disk);
        let mut s = open(&disk);
        // A new leader in term 2 replaces entries from 9 on.
        s.set_hard_state(&HardState {
            term: 2,
            vote: 3,
            commit: 8,
        })
        .unwrap();
        s.append(&[entry(9, 2)]).unwrap();
        s.sync().unwrap();
        drop(s);
        disk.crash(0);
        let s = open(&disk);
        assert_eq!(s.last_index().unwrap(), 9);
        assert_eq!(s.term(9).unwrap(), 2);
        assert_eq!(s.hard_state().vote, 3);
    }

    #[test]
    fn crash_after_snapshot_replace_keeps_entries_that_agree() {
        let disk = MemBackend::new();
        ten_entries(&disk);
        replace_snapshot_only(&disk, 7, 1);
        let s = open(&disk);
        assert_eq!(s.first_index().unwrap(), 8);
        assert_eq!(s.last_index().unwrap(), 10);
        assert_eq!(s.term(7).unwrap(), 1);
        assert!(s.hard_state().commit >= 7);
    }

    #[test]
    fn crash_after_snapshot_replace_drops_a_contradicted_branch() {
        let disk = MemBackend::new();
        ten_entries(&disk);
        replace_snapshot_only(&disk, 7, 2);
        let s = open(&disk);
        assert_eq!((s.first_index().unwrap(), s.last_index().unwrap()), (8, 7));
        assert_eq!(s.hard_state().term, 2, "term raised to the snapshot's");
        assert_eq!(s.hard_state().commit, 7);
    }

    #[test]
    fn compaction_keeps_the_tail_and_reopens() {
        let disk = MemBackend::new();
        ten_entries(&disk);
        let mut s = open(&disk);
        s.compact(6, b"six".to_vec()).unwrap();
        assert_eq!(s.entry_count(), 4);
        assert!(matches!(
            s.entries(5, 7, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(RaftStorageError::Compacted))
        ));
        drop(s);
        let s = open(&disk);
        assert_eq!(s.snapshot_index(), 6);
        assert_eq!(s.latest_snapshot().data, b"six");
        assert_eq!(s.term(6).unwrap(), 1);
        assert_eq!(s.last_index().unwrap(), 10);
    }

    #[test]
    fn unsynced_appends_are_lost_and_synced_ones_kept() {
        let disk = MemBackend::new();
        ten_entries(&disk);
        let mut s = open(&disk);
        s.append(&[entry(11, 1)]).unwrap();
        drop(s);
        disk.crash(0);
        assert_eq!(open(&disk).last_index().unwrap(), 10);
    }
}
