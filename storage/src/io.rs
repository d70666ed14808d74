//! The I/O seam: every call that changes what is on disk goes through [`Io`].
//!
//! Two backends: [`Io::Real`] calls the kernel directly, and [`Io::Fault`] routes the same calls
//! through a [`crate::fault::FaultDisk`] that models what a crash, a failed `fdatasync` or a full
//! disk would do to them. The seam is an enum, not a trait object or a type parameter: the calls it
//! covers are the blocking ones (create, fallocate, fdatasync, rename, unlink, index and checkpoint
//! writes), where one predictable branch is free, and the append path is not among them at all:
//! an append is a memcpy into the segment mapping, identical for both backends, because the fault
//! backend maps real files and works out at a crash which bytes were never synced by comparing
//! them with its image of the medium. So the real backend costs no copy, no virtual call and no
//! type parameter on any public type.
//!
//! Reads (`read_dir`, `metadata`, reading index and checkpoint files, mapping) are not part of the
//! seam: both backends keep the real directory equal to what a live process would see.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::fault::FaultDisk;

/// Marker file left in a log directory when an fdatasync failed. After such a failure Linux may
/// have marked the dirty pages clean without writing them, while the page cache still holds their
/// contents: a reopen in the same boot would read them, keep them and call them durable. Recovery
/// therefore writes every page after the checkpoint again before syncing when it finds the
/// marker, then removes it.
pub(crate) const SYNC_FAILED_FILE: &str = "sync-failed";

/// Where a log's file-system calls go. [`crate::PartitionLog::open`] uses [`Io::Real`];
/// [`crate::PartitionLog::open_with`] takes either.
#[derive(Debug, Clone, Default)]
pub enum Io {
    /// The kernel: `fallocate`, `fdatasync`, `rename`, ... as they are.
    #[default]
    Real,
    /// A simulated disk with crash images, failing syncs and a capacity (tests).
    Fault(FaultDisk),
}

impl Io {
    /// Creates a new file (it must not exist) open for reading and writing.
    pub(crate) fn create_new(&self, path: &Path) -> std::io::Result<File> {
        match self {
            Io::Real => OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path),
            Io::Fault(d) => d.create_new(path),
        }
    }

    /// Reserves disk blocks for `[offset, offset + len_bytes)` of `file`, which must lie within
    /// its length (fallocate with `FALLOC_FL_KEEP_SIZE`: the length never changes, so a range a
    /// concurrent trim cut off could not grow the file again). After it, writes to the range
    /// through a mapping cannot fail for lack of space (a SIGBUS). On a file system without
    /// fallocate the range stays sparse and this succeeds, as `set_len` would have.
    pub(crate) fn allocate_range(
        &self,
        path: &Path,
        file: &File,
        offset: u64,
        len_bytes: u64,
    ) -> std::io::Result<()> {
        let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(len_bytes)) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "range exceeds off_t",
            ));
        };
        match self {
            Io::Real => {
                // SAFETY: plain syscall on an fd we own; no memory is passed.
                let rc = unsafe {
                    libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, off, len)
                };
                if rc == 0 {
                    return Ok(());
                }
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EOPNOTSUPP) {
                    Ok(())
                } else {
                    Err(err)
                }
            }
            // The fault disk charges a file's whole length against its capacity when the length
            // is set, and a reservation changes neither contents nor length: nothing to record.
            // It does check the bounds, so a test catches a reservation past the end.
            Io::Fault(_) => {
                let file_len = file.metadata()?.len();
                if offset
                    .checked_add(len_bytes)
                    .is_none_or(|end| end > file_len)
                {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "allocation [{offset}, +{len_bytes}) past the end of {} ({file_len} bytes)",
                            path.display()
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Changes the length of `file` (trims the preallocation of a sealed segment).
    pub(crate) fn set_len(&self, path: &Path, file: &File, len_bytes: u64) -> std::io::Result<()> {
        match self {
            Io::Real => file.set_len(len_bytes),
            Io::Fault(d) => d.set_len(path, file, len_bytes),
        }
    }

    /// fdatasync: makes the file's data (including dirty pages of its mappings) and size durable.
    /// A failure leaves a [`SYNC_FAILED_FILE`] marker next to the file (see there).
    pub(crate) fn sync_data(&self, path: &Path, file: &File) -> std::io::Result<()> {
        let result = match self {
            Io::Real => file.sync_data(),
            Io::Fault(d) => d.sync_file(path, file),
        };
        self.mark_if_failed(path, result)
    }

    /// fsync: like `sync_data`, plus every inode field (used once, for a new segment's size).
    pub(crate) fn sync_all(&self, path: &Path, file: &File) -> std::io::Result<()> {
        let result = match self {
            Io::Real => file.sync_all(),
            Io::Fault(d) => d.sync_file(path, file),
        };
        self.mark_if_failed(path, result)
    }

    fn mark_if_failed(&self, path: &Path, result: std::io::Result<()>) -> std::io::Result<()> {
        if result.is_err() {
            if let Some(dir) = path.parent() {
                // Best effort, and deliberately not synced: the marker only matters while the
                // page cache that lost the pages lives, i.e. until the next reboot.
                let _ = self.write_file(&dir.join(SYNC_FAILED_FILE), &[]);
            }
        }
        result
    }

    /// Tells the backend that recovery wrote every page of `file` again (through its mapping,
    /// with the bytes already there). The kernel sees those writes; the fault disk, which finds
    /// writes by comparing contents, cannot, so it is told.
    pub(crate) fn note_rewritten(&self, path: &Path, file: &File) -> std::io::Result<()> {
        match self {
            Io::Real => Ok(()),
            Io::Fault(d) => d.note_rewritten(path, file),
        }
    }

    /// fsync of a directory: makes its entries (creations, renames, unlinks) durable.
    pub(crate) fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        match self {
            Io::Real => File::open(dir).and_then(|d| d.sync_all()),
            Io::Fault(d) => d.sync_dir(dir),
        }
    }

    /// Creates or truncates `path` and writes `parts` back to back (not synced). Returns the open
    /// file (readable and writable) for the caller to sync.
    pub(crate) fn write_file(&self, path: &Path, parts: &[&[u8]]) -> std::io::Result<File> {
        match self {
            Io::Real => {
                let mut f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(path)?;
                for p in parts {
                    std::io::Write::write_all(&mut f, p)?;
                }
                Ok(f)
            }
            Io::Fault(d) => d.write_file(path, parts),
        }
    }

    /// Writes `bytes` at `offset` of `path`, creating the file if needed (not synced).
    pub(crate) fn write_at(&self, path: &Path, bytes: &[u8], offset: u64) -> std::io::Result<File> {
        match self {
            Io::Real => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)?;
                f.write_all_at(bytes, offset)?;
                Ok(f)
            }
            Io::Fault(d) => d.write_at(path, bytes, offset),
        }
    }

    pub(crate) fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        match self {
            Io::Real => std::fs::rename(from, to),
            Io::Fault(d) => d.rename(from, to),
        }
    }

    pub(crate) fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        match self {
            Io::Real => std::fs::remove_file(path),
            Io::Fault(d) => d.remove_file(path),
        }
    }
}
