//! Crash images of a [`crate::fault::FaultDisk`]: what a power loss at one moment may leave.

use std::collections::BTreeMap;
use std::path::Path;

/// Page size of the kernel's dirty tracking: writeback and "clean after a failed sync" are per page.
pub(crate) const PAGE_BYTES: usize = 4096;
/// Unit the device writes atomically: a torn write is torn at these boundaries.
pub(crate) const SECTOR_BYTES: usize = 512;

/// A directory operation not yet made durable by a directory sync.
#[derive(Debug, Clone)]
pub(crate) enum DirOp {
    Link {
        name: String,
        uid: usize,
    },
    Rename {
        from: String,
        to: String,
        uid: usize,
    },
    Unlink {
        name: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct CrashInode {
    pub disk: Vec<u8>,
    pub current: Vec<u8>,
    pub lost: Option<Vec<u8>>,
}

/// Everything needed to build the directories a crash at one moment can leave: the medium image
/// and the page-cache contents of every file that can survive, and the directory state.
#[derive(Debug, Clone)]
pub struct CrashState {
    /// Number of disk operations done when the state was taken.
    pub op: u64,
    pub(crate) inodes: BTreeMap<usize, CrashInode>,
    pub(crate) durable: BTreeMap<String, usize>,
    pub(crate) dir_ops: Vec<DirOp>,
}

/// Which kinds of damage a crash may do besides dropping unsynced pages and directory entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashOptions {
    /// A dirty page may be torn: each 512-byte sector old or new.
    pub tear_pages: bool,
    /// A written-back sector that held no durable data may get one bit flipped (1 in 8).
    pub flip_bits: bool,
}

impl Default for CrashOptions {
    fn default() -> Self {
        CrashOptions {
            tear_pages: true,
            flip_bits: true,
        }
    }
}

/// What one materialized crash did (for failure messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashSummary {
    pub seed: u64,
    pub files: u64,
    /// Directory operations since the last directory sync, and how many of them survived.
    pub dir_ops_pending: u64,
    pub dir_ops_kept: u64,
    pub pages_dropped: u64,
    pub pages_written: u64,
    pub pages_torn: u64,
    /// Dirty pages that a failed sync had marked clean (always lost).
    pub pages_lost_to_failed_sync: u64,
    pub bits_flipped: u64,
    /// Files whose length at the crash is the synced one rather than the current one.
    pub lengths_reverted: u64,
}

/// SplitMix64: small, seedable, good enough to pick crash outcomes.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// `b[range]`, zero-padded where `b` is shorter.
fn padded(b: &[u8], start: usize, end: usize) -> Vec<u8> {
    let mut out = vec![0u8; end - start];
    if start < b.len() {
        let n = b.len().min(end) - start;
        out[..n].copy_from_slice(&b[start..start + n]);
    }
    out
}

/// True if page `[start, end)` of `current` is one the kernel no longer considers dirty because a
/// sync failed after its last write.
fn lost_page(lost: Option<&[u8]>, current: &[u8], start: usize, end: usize) -> bool {
    lost.is_some_and(|l| padded(l, start, end) == padded(current, start, end))
}

/// The medium after a successful sync of `current`: everything, except pages a failed sync made
/// clean (and that were not written since), which keep what the medium had.
pub(crate) fn written_back(disk: &[u8], current: &[u8], lost: Option<&[u8]>) -> Vec<u8> {
    let mut out = current.to_vec();
    if lost.is_some() {
        let mut start = 0;
        while start < out.len() {
            let end = (start + PAGE_BYTES).min(out.len());
            if lost_page(lost, current, start, end) {
                out[start..end].copy_from_slice(&padded(disk, start, end));
            }
            start = end;
        }
    }
    out
}

impl CrashState {
    /// Writes into the (empty, existing) directory `into` what a crash at this moment could leave,
    /// chosen by `seed`. The same seed always gives the same files.
    pub fn materialize(
        &self,
        seed: u64,
        into: &Path,
        options: CrashOptions,
    ) -> std::io::Result<CrashSummary> {
        let mut rng = Rng::new(seed);
        let mut summary = CrashSummary {
            seed,
            dir_ops_pending: self.dir_ops.len() as u64,
            ..CrashSummary::default()
        };
        let kept = rng.below(self.dir_ops.len() as u64 + 1) as usize;
        summary.dir_ops_kept = kept as u64;
        let mut names = self.durable.clone();
        for op in &self.dir_ops[..kept] {
            match op {
                DirOp::Link { name, uid } => {
                    names.insert(name.clone(), *uid);
                }
                DirOp::Rename { from, to, uid } => {
                    names.remove(from);
                    names.insert(to.clone(), *uid);
                }
                DirOp::Unlink { name } => {
                    names.remove(name);
                }
            }
        }
        for (name, uid) in &names {
            let inode = self.inodes.get(uid).ok_or_else(|| {
                std::io::Error::other(format!("crash state lacks the inode of {name}"))
            })?;
            let bytes = crash_contents(inode, &mut rng, options, &mut summary);
            std::fs::write(into.join(name), bytes)?;
            summary.files += 1;
        }
        Ok(summary)
    }
}

/// The contents of one file after the crash.
fn crash_contents(
    inode: &CrashInode,
    rng: &mut Rng,
    options: CrashOptions,
    summary: &mut CrashSummary,
) -> Vec<u8> {
    let (disk, current) = (&inode.disk, &inode.current);
    let len = if disk.len() == current.len() || rng.below(2) == 0 {
        current.len()
    } else {
        summary.lengths_reverted += 1;
        disk.len()
    };
    let mut out = vec![0u8; len];
    let mut start = 0;
    while start < len {
        let end = (start + PAGE_BYTES).min(len);
        let old = padded(disk, start, end);
        let new = padded(current, start, end);
        if old == new {
            out[start..end].copy_from_slice(&new);
        } else if lost_page(inode.lost.as_deref(), current, start, end) {
            summary.pages_lost_to_failed_sync += 1;
            out[start..end].copy_from_slice(&old);
        } else {
            let mode = rng.below(if options.tear_pages { 3 } else { 2 });
            match mode {
                0 => summary.pages_dropped += 1,
                1 => summary.pages_written += 1,
                _ => summary.pages_torn += 1,
            }
            let mut s = 0;
            while s < end - start {
                let e = (s + SECTOR_BYTES).min(end - start);
                let take_new = match mode {
                    0 => false,
                    1 => true,
                    _ => rng.below(2) == 0,
                };
                let sector = &mut out[start + s..start + e];
                if take_new {
                    sector.copy_from_slice(&new[s..e]);
                    let fresh = old[s..e].iter().all(|&b| b == 0) && old[s..e] != new[s..e];
                    if options.flip_bits && fresh && rng.below(8) == 0 {
                        let bit = rng.below(((e - s) * 8) as u64) as usize;
                        sector[bit / 8] ^= 1 << (bit % 8);
                        summary.bits_flipped += 1;
                    }
                } else {
                    sector.copy_from_slice(&old[s..e]);
                }
                s = e;
            }
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_back_keeps_pages_a_failed_sync_made_clean() {
        let disk = vec![1u8; 2 * PAGE_BYTES];
        let mut current = vec![2u8; 2 * PAGE_BYTES];
        let lost = current.clone();
        // Page 1 is written again after the failure: it is dirty again and gets written.
        current[PAGE_BYTES] = 3;
        let out = written_back(&disk, &current, Some(&lost));
        assert_eq!(&out[..PAGE_BYTES], &disk[..PAGE_BYTES]);
        assert_eq!(&out[PAGE_BYTES..], &current[PAGE_BYTES..]);
        assert_eq!(written_back(&disk, &current, None), current);
    }

    #[test]
    fn crash_contents_mix_whole_sectors_of_old_and_new() {
        let inode = CrashInode {
            disk: vec![0u8; 3 * PAGE_BYTES],
            current: vec![0xAB; 3 * PAGE_BYTES],
            lost: None,
        };
        for seed in 0..64 {
            let mut summary = CrashSummary::default();
            let out = crash_contents(
                &inode,
                &mut Rng::new(seed),
                CrashOptions {
                    tear_pages: true,
                    flip_bits: false,
                },
                &mut summary,
            );
            assert_eq!(out.len(), 3 * PAGE_BYTES);
            for sector in out.chunks(SECTOR_BYTES) {
                let all_old = sector.iter().all(|&b| b == 0);
                let all_new = sector.iter().all(|&b| b == 0xAB);
                assert!(all_old || all_new, "seed {seed}: a sector was split");
            }
            assert_eq!(
                summary.pages_dropped + summary.pages_written + summary.pages_torn,
                3
            );
        }
    }

    #[test]
    fn flips_only_hit_sectors_without_durable_data() {
        let mut disk = vec![0u8; PAGE_BYTES];
        disk[..SECTOR_BYTES].fill(7);
        let mut current = disk.clone();
        current[..SECTOR_BYTES].fill(9);
        current[SECTOR_BYTES..].fill(5);
        let inode = CrashInode {
            disk,
            current,
            lost: None,
        };
        let mut flipped = 0;
        for seed in 0..256 {
            let mut summary = CrashSummary::default();
            let out = crash_contents(
                &inode,
                &mut Rng::new(seed),
                CrashOptions::default(),
                &mut summary,
            );
            let first = &out[..SECTOR_BYTES];
            assert!(first.iter().all(|&b| b == 7) || first.iter().all(|&b| b == 9));
            flipped += summary.bits_flipped;
        }
        assert!(flipped > 0, "no seed flipped a bit in 256 crashes");
    }
}
