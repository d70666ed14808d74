//! Probe A, the hardware: 1 MiB appended (memcpy into a mapping, or pwrite), then fdatasync,
//! repeated, in a reserved file on the same file system as the log.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use super::{io_err, DurableError, Settings};

/// One probe step: this many bytes are written, then fdatasync'd.
pub const PROBE_CHUNK_BYTES: u64 = 1 << 20;
/// `MADV_POPULATE_WRITE` (Linux 5.14+), the advice `storage` prefaults segments with.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// How the probe writes its 1 MiB steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// memcpy into a `MAP_SHARED` mapping, each step's pages write-populated first (untimed), as
    /// the log's segments are: the probe the target is judged against.
    Mmap,
    /// `pwrite` of the step from a buffer.
    Pwrite,
}

impl ProbeKind {
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Mmap => "mmap",
            ProbeKind::Pwrite => "pwrite",
        }
    }
}

/// Result of one probe measurement.
#[derive(Debug, Clone, Copy)]
pub struct ProbeResult {
    pub kind: ProbeKind,
    /// Bytes written and fdatasync'd.
    pub bytes: u64,
    /// Time spent in the timed part of each step (the copy or pwrite, and the fdatasync).
    pub timed_s: f64,
    /// Wall time of the measurement, untimed populates included.
    pub wall_s: f64,
    pub syncs: u64,
    pub step_ms_max: f64,
    /// Untimed `MADV_POPULATE_WRITE` of the steps (`mmap` only).
    pub populate_s: f64,
}

impl ProbeResult {
    pub fn durable_mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.timed_s
    }
}

/// Reserves `[0, len_bytes)` of `file` (fallocate, keeping its size), as the log reserves its
/// segments: the blocks are allocated and unwritten, so the first sync of each also records it.
fn reserve(path: &Path, file: &File, len_bytes: u64) -> Result<(), DurableError> {
    let len = i64::try_from(len_bytes).map_err(|_| DurableError::Arg {
        flag: "bytes-max",
        reason: format!("{len_bytes} does not fit in off_t"),
    })?;
    // SAFETY: a plain syscall on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len) };
    if rc != 0 {
        return Err(io_err("fallocate", path)(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Write-populates `[at, at + len)` of `map` (page-aligned, inside the mapping).
fn populate_write(path: &Path, map: &MmapRaw, at: u64, len: u64) -> Result<(), DurableError> {
    assert!(at.is_multiple_of(4096) && at + len <= map.len() as u64);
    // SAFETY: the range is page-aligned and inside our own mapping (checked above);
    // MADV_POPULATE_WRITE faults the pages in writable without changing their contents.
    let rc = unsafe {
        libc::madvise(
            map.as_mut_ptr().add(at as usize).cast(),
            len as usize,
            MADV_POPULATE_WRITE,
        )
    };
    if rc != 0 {
        return Err(io_err("madvise(MADV_POPULATE_WRITE)", path)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Writes 1 MiB steps, each followed by fdatasync, into a fresh reserved file in a temporary
/// directory inside `dir` until the timed part reaches `settings.duration` or `bytes_max` bytes
/// are written. The file is removed afterwards.
pub fn run_probe(
    dir: &Path,
    kind: ProbeKind,
    settings: &Settings,
) -> Result<ProbeResult, DurableError> {
    let work = tempfile::Builder::new()
        .prefix("probe-")
        .tempdir_in(dir)
        .map_err(io_err("create a temporary directory in", dir))?;
    let path = work.path().join("probe");
    let file_bytes = settings
        .bytes_max
        .next_multiple_of(PROBE_CHUNK_BYTES)
        .max(PROBE_CHUNK_BYTES);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err("create", &path))?;
    file.set_len(file_bytes)
        .map_err(io_err("ftruncate", &path))?;
    reserve(&path, &file, file_bytes)?;
    file.sync_all().map_err(io_err("fsync", &path))?;
    let map = match kind {
        ProbeKind::Mmap => Some(
            MmapOptions::new()
                .len(file_bytes as usize)
                .map_raw(&file)
                .map_err(io_err("mmap", &path))?,
        ),
        ProbeKind::Pwrite => None,
    };
    let chunk: Vec<u8> = (0..PROBE_CHUNK_BYTES)
        .map(|i| (i.wrapping_mul(7) ^ (i >> 12)) as u8)
        .collect();
    let wall = Instant::now();
    let mut timed = Duration::ZERO;
    let mut step_max = Duration::ZERO;
    let mut populate = Duration::ZERO;
    let mut at = 0u64;
    while timed < settings.duration && at + PROBE_CHUNK_BYTES <= file_bytes {
        if let Some(map) = &map {
            let started = Instant::now();
            populate_write(&path, map, at, PROBE_CHUNK_BYTES)?;
            populate += started.elapsed();
        }
        let started = Instant::now();
        match &map {
            // SAFETY: `at + PROBE_CHUNK_BYTES <= file_bytes == map.len()` (loop condition), the
            // mapping is writable, only this thread uses it, and the range is reserved on disk
            // (fallocate above), so the stores cannot fault for lack of space.
            Some(map) => unsafe {
                std::ptr::copy_nonoverlapping(
                    chunk.as_ptr(),
                    map.as_mut_ptr().add(at as usize),
                    chunk.len(),
                );
            },
            None => file
                .write_all_at(&chunk, at)
                .map_err(io_err("pwrite", &path))?,
        }
        file.sync_data().map_err(io_err("fdatasync", &path))?;
        let took = started.elapsed();
        timed += took;
        step_max = step_max.max(took);
        at += PROBE_CHUNK_BYTES;
    }
    let wall_s = wall.elapsed().as_secs_f64();
    drop(map);
    drop(file);
    work.close().map_err(io_err("remove", &path))?;
    Ok(ProbeResult {
        kind,
        bytes: at,
        timed_s: timed.as_secs_f64(),
        wall_s,
        syncs: at / PROBE_CHUNK_BYTES,
        step_ms_max: step_max.as_secs_f64() * 1e3,
        populate_s: populate.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use benches::fixtures::Workload;

    #[test]
    fn probes_write_and_sync_whole_steps_and_remove_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            duration: Duration::from_secs(60),
            bytes_max: 3 << 20,
            backlog_bytes_max: 1 << 20,
            workload: Workload::new(16, 1024),
        };
        for kind in [ProbeKind::Mmap, ProbeKind::Pwrite] {
            let p = run_probe(dir.path(), kind, &settings).unwrap();
            assert_eq!((p.kind, p.bytes, p.syncs), (kind, 3 << 20, 3));
            assert!(p.timed_s > 0.0 && p.wall_s >= p.timed_s);
            assert_eq!(p.populate_s > 0.0, kind == ProbeKind::Mmap);
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
