//! A fault-injecting disk for crash-consistency tests, behind [`crate::Io::Fault`].
//!
//! The model, per file (inode) of one partition directory:
//! - **Two images.** The real file is the page cache: what the process wrote, visible to every
//!   reader at once (mappings included). Next to it the disk keeps its own image of the *medium*:
//!   what a successful `fdatasync` copied there. Appends need no hook: whatever differs between
//!   the two images at a crash is exactly what was written and never synced.
//! - **A crash** ([`CrashState::materialize`]) keeps the medium and, for every 4 KiB page that
//!   differs, chooses by seed: dropped (old contents), written back (new contents) or torn (each
//!   512-byte sector old or new; a sector is the unit the device writes atomically). Optionally
//!   one bit is flipped in a written-back sector that held no durable data before. A file whose
//!   length changed ends at the old or the new length.
//! - **Directory entries** (create, rename, unlink) are durable only after an fsync of the
//!   directory. At a crash a seeded prefix of the operations since the last directory sync
//!   survives (metadata journals commit in order); a file whose unlink is lost comes back with
//!   the contents it had.
//! - **A failed `fdatasync`** ([`FaultDisk::fail_sync`]) returns EIO and writes nothing; like
//!   Linux, it also forgets that the pages were dirty: pages not written again afterwards never
//!   reach the medium, not even through a later successful sync.
//! - **A capacity** ([`FaultDisk::set_capacity_bytes`]): creating a file, growing one (fallocate,
//!   writes) past it fails with ENOSPC.
//!
//! Not modelled: writeback of intermediate states (a page reaches the medium either as last
//! synced or as it is at the crash), read errors, and loss or damage of synced data.
//!
//! ```
//! use storage::fault::{CrashOptions, FaultDisk};
//! use storage::{Io, LogConfig, PartitionLog, Record};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let disk = FaultDisk::new(dir.path()).unwrap();
//! let config = LogConfig { segment_bytes_max: 4096, ..LogConfig::default() };
//! let io = Io::Fault(disk.clone());
//! let (mut log, _) = PartitionLog::open_with(dir.path(), config.clone(), io).unwrap();
//! let rec = Record { key: None, value: b"flushed", headers: &[], timestamp_ms: 1, ttl_ms: 0 };
//! log.append(&[rec], None, 1).unwrap();
//! let done = log.begin_flush().unwrap().run().unwrap();
//! log.complete_flush(done);
//! log.append(&[Record { value: b"never synced", ..rec }], None, 2).unwrap();
//!
//! // Power loss now; build what it may leave in another directory and recover that.
//! let after = tempfile::tempdir().unwrap();
//! let crash = disk.crash_state().unwrap();
//! crash.materialize(42, after.path(), CrashOptions::default()).unwrap();
//! let (log, _) = PartitionLog::open(after.path(), config).unwrap();
//! assert!(log.end_offset() >= 1, "the flushed batch survives");
//! let first = log.read(0, 4096).unwrap().batches[0].records(0, 0).unwrap();
//! assert_eq!(&first[0].value[..], b"flushed");
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::crash::{CrashInode, DirOp};
pub use crate::crash::{CrashOptions, CrashState, CrashSummary};

/// Crash states kept by capture mode before further ones are dropped (and counted).
pub const CAPTURES_MAX: usize = 16_384;

/// A simulated disk for one directory. Cheap to clone (shared state); `Send + Sync` so that jobs
/// can run on other threads.
#[derive(Clone)]
pub struct FaultDisk {
    state: Arc<Mutex<DiskState>>,
}

impl std::fmt::Debug for FaultDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("FaultDisk")
            .field("dir", &s.dir)
            .field("files", &s.names.len())
            .field("syncs", &s.syncs)
            .finish_non_exhaustive()
    }
}

struct Inode {
    ino: u64,
    /// The medium: what the last successful sync wrote.
    disk: Vec<u8>,
    /// Contents at a failed sync: pages still equal to it are clean to the kernel and lost.
    lost: Option<Vec<u8>>,
    /// Contents when the last name went away (the inode can reappear if the unlink is lost).
    detached: Option<Vec<u8>>,
}

struct DiskState {
    dir: PathBuf,
    inodes: Vec<Inode>,
    /// Real inode number of each linked file -> index into `inodes`.
    live: HashMap<u64, usize>,
    /// Current directory entries.
    names: BTreeMap<String, usize>,
    /// Entries as of the last directory sync.
    durable: BTreeMap<String, usize>,
    dir_ops: Vec<DirOp>,
    syncs: u64,
    failing_syncs: BTreeSet<u64>,
    capacity_bytes: Option<u64>,
    ops: u64,
    capture: bool,
    captures: Vec<CrashState>,
    captures_dropped: u64,
}

fn os_error(code: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(code)
}

/// Reads a whole file through an open handle (mapped writes included: same page cache).
fn read_handle(file: &File) -> std::io::Result<Vec<u8>> {
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| std::io::Error::other("file larger than memory"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

impl FaultDisk {
    /// Simulates the disk under `dir` (which must exist). Files already there count as durable.
    pub fn new(dir: &Path) -> std::io::Result<FaultDisk> {
        let mut s = DiskState {
            dir: dir.to_path_buf(),
            inodes: Vec::new(),
            live: HashMap::new(),
            names: BTreeMap::new(),
            durable: BTreeMap::new(),
            dir_ops: Vec::new(),
            syncs: 0,
            failing_syncs: BTreeSet::new(),
            capacity_bytes: None,
            ops: 0,
            capture: false,
            captures: Vec::new(),
            captures_dropped: 0,
        };
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let bytes = std::fs::read(entry.path())?;
            let uid = s.add_inode(entry.metadata()?.ino(), bytes);
            s.names.insert(name.clone(), uid);
            s.durable.insert(name, uid);
        }
        Ok(FaultDisk {
            state: Arc::new(Mutex::new(s)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A test that panicked while holding the lock leaves consistent-enough state to report.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes file sync number `n` (0-based, counting every file sync since `new`) fail with EIO.
    pub fn fail_sync(&self, n: u64) {
        self.lock().failing_syncs.insert(n);
    }

    /// File syncs attempted so far (failed ones included).
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Mutating operations done so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Limits the sum of the file lengths in the directory; `None` = unlimited.
    pub fn set_capacity_bytes(&self, capacity_bytes: Option<u64>) {
        self.lock().capacity_bytes = capacity_bytes;
    }

    /// Sum of the current file lengths in the directory.
    pub fn used_bytes(&self) -> std::io::Result<u64> {
        self.lock().used_bytes()
    }

    /// In capture mode every mutating operation records the crash state right after it.
    pub fn set_capture(&self, on: bool) {
        self.lock().capture = on;
    }

    /// Records the crash state now (e.g. after appends, which are not disk operations).
    pub fn capture_now(&self) -> std::io::Result<()> {
        let mut s = self.lock();
        s.push_capture()
    }

    /// Crash states recorded so far, oldest first; clears the list.
    pub fn take_captures(&self) -> Vec<CrashState> {
        std::mem::take(&mut self.lock().captures)
    }

    /// Number of crash states recorded so far (not yet taken).
    pub fn captures_len(&self) -> usize {
        self.lock().captures.len()
    }

    /// Captures refused because [`CAPTURES_MAX`] were held.
    pub fn captures_dropped(&self) -> u64 {
        self.lock().captures_dropped
    }

    /// What a crash right now could leave behind (see [`CrashState::materialize`]).
    pub fn crash_state(&self) -> std::io::Result<CrashState> {
        self.lock().snapshot()
    }

    pub(crate) fn create_new(&self, path: &Path) -> std::io::Result<File> {
        let mut s = self.lock();
        let name = s.name_of(path)?;
        s.check_room(0)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let uid = s.add_inode(file.metadata()?.ino(), Vec::new());
        s.link(name, uid);
        s.done()?;
        Ok(file)
    }

    pub(crate) fn set_len(&self, path: &Path, file: &File, len_bytes: u64) -> std::io::Result<()> {
        let mut s = self.lock();
        s.name_of(path)?;
        let current = file.metadata()?.len();
        if len_bytes > current {
            s.check_room(len_bytes - current)?;
        }
        file.set_len(len_bytes)?;
        s.done()
    }

    pub(crate) fn sync_file(&self, path: &Path, file: &File) -> std::io::Result<()> {
        let mut s = self.lock();
        s.name_of(path)?;
        let meta = file.metadata()?;
        let uid = s.uid_of_handle(meta.ino(), meta.nlink());
        let n = s.syncs;
        s.syncs += 1;
        let contents = read_handle(file)?;
        if s.failing_syncs.contains(&n) {
            s.inodes[uid].lost = Some(contents);
            s.done()?;
            return Err(os_error(libc::EIO));
        }
        let inode = &mut s.inodes[uid];
        inode.disk = crate::crash::written_back(&inode.disk, &contents, inode.lost.as_deref());
        s.done()
    }

    pub(crate) fn note_rewritten(&self, path: &Path, file: &File) -> std::io::Result<()> {
        let mut s = self.lock();
        s.name_of(path)?;
        let meta = file.metadata()?;
        let uid = s.uid_of_handle(meta.ino(), meta.nlink());
        // Every page was written again: none of them is "clean but never written" any more.
        s.inodes[uid].lost = None;
        s.done()
    }

    pub(crate) fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        let mut s = self.lock();
        if dir != s.dir {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not the simulated directory", dir.display()),
            ));
        }
        s.durable = s.names.clone();
        s.dir_ops.clear();
        s.done()
    }

    pub(crate) fn write_file(&self, path: &Path, parts: &[&[u8]]) -> std::io::Result<File> {
        let mut s = self.lock();
        let name = s.name_of(path)?;
        let existing = s.names.get(&name).copied();
        if existing.is_none() {
            s.check_room(0)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        if existing.is_none() {
            let uid = s.add_inode(file.metadata()?.ino(), Vec::new());
            s.link(name, uid);
        }
        let total: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let result = s.check_room(total).and_then(|()| {
            parts
                .iter()
                .try_for_each(|p| std::io::Write::write_all(&mut file, p))
        });
        s.done()?;
        result.map(|()| file)
    }

    pub(crate) fn write_at(&self, path: &Path, bytes: &[u8], offset: u64) -> std::io::Result<File> {
        let mut s = self.lock();
        let name = s.name_of(path)?;
        let existing = s.names.get(&name).copied();
        if existing.is_none() {
            s.check_room(0)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if existing.is_none() {
            let uid = s.add_inode(file.metadata()?.ino(), Vec::new());
            s.link(name, uid);
        }
        let current = file.metadata()?.len();
        let end = offset + bytes.len() as u64;
        let result = s
            .check_room(end.saturating_sub(current))
            .and_then(|()| file.write_all_at(bytes, offset));
        s.done()?;
        result.map(|()| file)
    }

    pub(crate) fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let mut s = self.lock();
        let from_name = s.name_of(from)?;
        let to_name = s.name_of(to)?;
        let Some(&uid) = s.names.get(&from_name) else {
            return Err(os_error(libc::ENOENT));
        };
        if let Some(&replaced) = s.names.get(&to_name) {
            s.detach(replaced, to)?;
        }
        std::fs::rename(from, to)?;
        s.names.remove(&from_name);
        s.names.insert(to_name.clone(), uid);
        s.dir_ops.push(DirOp::Rename {
            from: from_name,
            to: to_name,
            uid,
        });
        s.done()
    }

    pub(crate) fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        let mut s = self.lock();
        let name = s.name_of(path)?;
        let Some(&uid) = s.names.get(&name) else {
            return std::fs::remove_file(path);
        };
        s.detach(uid, path)?;
        std::fs::remove_file(path)?;
        s.names.remove(&name);
        s.dir_ops.push(DirOp::Unlink { name });
        s.done()
    }
}

impl DiskState {
    fn add_inode(&mut self, ino: u64, disk: Vec<u8>) -> usize {
        self.inodes.push(Inode {
            ino,
            disk,
            lost: None,
            detached: None,
        });
        let uid = self.inodes.len() - 1;
        self.live.insert(ino, uid);
        uid
    }

    fn link(&mut self, name: String, uid: usize) {
        self.names.insert(name.clone(), uid);
        self.dir_ops.push(DirOp::Link { name, uid });
    }

    /// The inode behind an open handle: a linked one by inode number, else the newest unlinked
    /// one with that number (numbers are reused after unlink).
    fn uid_of_handle(&mut self, ino: u64, nlink: u64) -> usize {
        if nlink > 0 {
            if let Some(&uid) = self.live.get(&ino) {
                return uid;
            }
        } else if let Some(uid) = self
            .inodes
            .iter()
            .rposition(|i| i.ino == ino && i.detached.is_some())
        {
            return uid;
        }
        self.add_inode(ino, Vec::new())
    }

    /// Remembers the contents of an inode losing its last name.
    fn detach(&mut self, uid: usize, path: &Path) -> std::io::Result<()> {
        let contents = std::fs::read(path)?;
        let inode = &mut self.inodes[uid];
        inode.detached = Some(contents);
        let ino = inode.ino;
        if self.live.get(&ino) == Some(&uid) {
            self.live.remove(&ino);
        }
        Ok(())
    }

    fn name_of(&self, path: &Path) -> std::io::Result<String> {
        let outside = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is outside the simulated directory", path.display()),
            )
        };
        if path.parent() != Some(self.dir.as_path()) {
            return Err(outside());
        }
        path.file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .ok_or_else(outside)
    }

    fn used_bytes(&self) -> std::io::Result<u64> {
        let mut used = 0;
        for name in self.names.keys() {
            used += std::fs::metadata(self.dir.join(name))?.len();
        }
        Ok(used)
    }

    /// ENOSPC unless `more_bytes` fit; creating a file (`0`) needs at least one free byte.
    fn check_room(&self, more_bytes: u64) -> std::io::Result<()> {
        let Some(capacity) = self.capacity_bytes else {
            return Ok(());
        };
        let used = self.used_bytes()?;
        if used + more_bytes > capacity || (more_bytes == 0 && used >= capacity) {
            return Err(os_error(libc::ENOSPC));
        }
        Ok(())
    }

    /// Counts a finished operation and records a crash state in capture mode.
    fn done(&mut self) -> std::io::Result<()> {
        self.ops += 1;
        if self.capture {
            self.push_capture()?;
        }
        Ok(())
    }

    fn push_capture(&mut self) -> std::io::Result<()> {
        if self.captures.len() >= CAPTURES_MAX {
            self.captures_dropped += 1;
            return Ok(());
        }
        let snap = self.snapshot()?;
        self.captures.push(snap);
        Ok(())
    }

    fn snapshot(&self) -> std::io::Result<CrashState> {
        let mut wanted: BTreeSet<usize> = self.durable.values().copied().collect();
        for op in &self.dir_ops {
            match op {
                DirOp::Link { uid, .. } | DirOp::Rename { uid, .. } => {
                    wanted.insert(*uid);
                }
                DirOp::Unlink { .. } => {}
            }
        }
        let mut linked: HashMap<usize, &str> = HashMap::new();
        for (name, uid) in &self.names {
            linked.insert(*uid, name);
        }
        let mut inodes = BTreeMap::new();
        for uid in wanted {
            let inode = &self.inodes[uid];
            let current = match linked.get(&uid) {
                Some(name) => std::fs::read(self.dir.join(name))?,
                None => inode.detached.clone().unwrap_or_else(|| inode.disk.clone()),
            };
            inodes.insert(
                uid,
                CrashInode {
                    disk: inode.disk.clone(),
                    current,
                    lost: inode.lost.clone(),
                },
            );
        }
        Ok(CrashState {
            op: self.ops,
            inodes,
            durable: self.durable.clone(),
            dir_ops: self.dir_ops.clone(),
        })
    }
}

#[cfg(test)]
#[path = "fault_tests.rs"]
mod tests;
