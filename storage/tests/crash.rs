//! Crash consistency: a seeded workload is snapshotted after every operation (the snapshot is what a
//! crash would leave if the kernel had written back everything), then each snapshot is damaged the
//! way a crash or a bad device can damage the part that was not yet fdatasync'd: truncated at an
//! arbitrary byte or a 512-byte sector boundary, bits flipped, the tail zeroed, garbage appended.
//! Reopening must never fail or panic, every batch written before the damage point must come back
//! byte-exact (so every flushed batch does), and nothing after it may.

mod common;

use std::path::Path;

use common::small_config;
use storage::{PartitionLog, Record};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// One batch as laid out in a snapshot.
#[derive(Clone, Debug)]
struct Laid {
    file: usize,
    pos: u64,
    len: u64,
    base: u64,
    next: u64,
}

struct Snapshot {
    files: Vec<(String, Vec<u8>)>,
    /// Indices into `files` of the segment files, in sequence order.
    segs: Vec<usize>,
    batches: Vec<Laid>,
    durable_offset: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn snapshot(dir: &Path, log: &PartitionLog) -> Snapshot {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let files: Vec<(String, Vec<u8>)> = names
        .into_iter()
        .map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap()))
        .collect();
    let mut segs = Vec::new();
    let mut batches = Vec::new();
    for (i, (name, bytes)) in files.iter().enumerate() {
        if !name.ends_with(".seg") || bytes[10] == 0 {
            continue; // prepared segments hold no batches
        }
        segs.push(i);
        let mut expected = u64_at(bytes, 24);
        let data_end = if bytes[10] == 2 {
            128 + u64_at(bytes, 40)
        } else {
            bytes.len() as u64
        };
        let mut pos = 128u64;
        while pos + 64 <= data_end {
            let len = u64::from(u32_at(bytes, pos as usize));
            if len < 64 || u64_at(bytes, pos as usize + 8) != expected {
                break;
            }
            let next = expected + u64::from(u32_at(bytes, pos as usize + 48));
            batches.push(Laid {
                file: i,
                pos,
                len,
                base: expected,
                next,
            });
            expected = next;
            pos += len;
        }
    }
    // The layout walk agrees with what the log serves.
    let served = common::raw_batches(log, 0);
    assert_eq!(served.len(), batches.len());
    for ((base, bytes), b) in served.iter().zip(&batches) {
        let f = &files[b.file].1;
        assert_eq!(
            (*base, &bytes[..]),
            (b.base, &f[b.pos as usize..(b.pos + b.len) as usize])
        );
    }
    Snapshot {
        files,
        segs,
        batches,
        durable_offset: log.durable_offset(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncate(u64),
    FlipBit(u64, u8),
    ZeroFrom(u64),
    AppendGarbage(u64, u64),
}

/// Damages segment `seg` (index into `files`) of a copy of `snap` and checks recovery.
fn check_state(snap: &Snapshot, seg_file: usize, damage: Damage, rng: &mut Rng) -> bool {
    let dir = common::fast_tempdir();
    let mut files = snap.files.clone();
    let bytes = &mut files[seg_file].1;
    let cut = match damage {
        Damage::Truncate(p) => {
            bytes.truncate(p as usize);
            p
        }
        Damage::FlipBit(p, bit) => {
            bytes[p as usize] ^= 1 << bit;
            p
        }
        Damage::ZeroFrom(p) => {
            bytes[p as usize..].fill(0);
            p
        }
        Damage::AppendGarbage(p, n) => {
            for i in p..(p + n).min(bytes.len() as u64) {
                bytes[i as usize] = rng.next() as u8;
            }
            p
        }
    };
    for (name, b) in &files {
        std::fs::write(dir.path().join(name), b).unwrap();
    }
    // Survivors: every batch in earlier segments, and batches of the damaged segment that end at or
    // before the damage point (a header hit loses the whole segment).
    let seg_rank = snap.segs.iter().position(|&f| f == seg_file).unwrap();
    // Damage past the segment's last batch loses nothing (a sealed header bounds the scan; an
    // active segment's garbage tail is zeroed); damage inside it loses that batch and everything after.
    let data_end = snap
        .batches
        .iter()
        .filter(|b| b.file == seg_file)
        .map(|b| b.pos + b.len)
        .max()
        .unwrap_or(128);
    let hit = cut < 128 || cut < data_end;
    let expected: Vec<&Laid> = snap
        .batches
        .iter()
        .filter(|b| {
            let rank = snap.segs.iter().position(|&f| f == b.file).unwrap();
            !hit || rank < seg_rank || (rank == seg_rank && cut >= 128 && b.pos + b.len <= cut)
        })
        .collect();
    let (mut log, report) = PartitionLog::open(dir.path(), small_config()).unwrap_or_else(|e| {
        panic!(
            "recovery failed after {damage:?} in {}: {e}",
            files[seg_file].0
        )
    });
    let got = common::raw_batches(&log, 0);
    assert_eq!(
        got.len(),
        expected.len(),
        "after {damage:?} in {}: {report:?}",
        files[seg_file].0
    );
    for ((base, bytes), want) in got.iter().zip(&expected) {
        let f = &snap.files[want.file].1;
        assert_eq!(*base, want.base);
        assert_eq!(
            &bytes[..],
            &f[want.pos as usize..(want.pos + want.len) as usize],
            "batch {base} differs"
        );
    }
    let end = expected.last().map_or(log.start_offset(), |b| b.next);
    assert_eq!(log.end_offset(), end);
    assert!(end >= snap.durable_offset, "a flushed batch was lost");
    assert_eq!(log.durable_offset(), end);
    // The recovered log takes appends, and a second recovery changes nothing.
    let rec = Record {
        key: None,
        value: b"after",
        headers: &[],
        timestamp_ms: 0,
        ttl_ms: 0,
    };
    log.append(&[rec], None, 0).unwrap();
    let again = common::raw_batches(&log, 0);
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(report.tail_cut, None);
    assert_eq!(common::raw_batches(&log, 0), again);
    true
}

fn sector_or_byte(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        return lo;
    }
    if rng.below(2) == 0 {
        let first = lo.div_ceil(512);
        let last = hi / 512;
        if last >= first {
            return (first + rng.below(last - first + 1)) * 512;
        }
    }
    lo + rng.below(hi - lo + 1)
}

#[test]
fn recovery_survives_torn_and_corrupt_tails() {
    let mut rng = Rng(0x5eed_cafe);
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), small_config()).unwrap();
    let mut states = 0;
    for op in 0..60u64 {
        let n = 1 + rng.below(4) as usize;
        let values: Vec<Vec<u8>> = (0..n)
            .map(|i| common::value(op * 8 + i as u64, rng.below(700) as usize))
            .collect();
        let recs: Vec<Record<'_>> = values
            .iter()
            .map(|v| Record {
                key: Some(b"key"),
                value: v,
                headers: &[],
                timestamp_ms: op as i64,
                ttl_ms: 0,
            })
            .collect();
        log.append(&recs, None, op as i64).unwrap();
        if rng.below(4) == 0 {
            common::flush(&mut log);
        }
        if rng.below(3) == 0 {
            if let Some(job) = log.prepare_segment_job() {
                log.install_prepared(job.run().unwrap());
            }
        }
        let snap = snapshot(dir.path(), &log);
        // Where the non-durable region starts: the first batch at or past durable_offset.
        let first_nd = snap
            .batches
            .iter()
            .position(|b| b.base >= snap.durable_offset);
        let (seg_file, lo) = match first_nd {
            Some(i) => (snap.batches[i].file, snap.batches[i].pos),
            None => {
                let last = snap.batches.last().unwrap();
                (last.file, last.pos + last.len)
            }
        };
        let seg_len = snap.files[seg_file].1.len() as u64;
        let data_end = snap
            .batches
            .iter()
            .filter(|b| b.file == seg_file)
            .map(|b| b.pos + b.len)
            .max()
            .unwrap_or(128);
        for _ in 0..5 {
            let damage = match rng.below(4) {
                0 => Damage::Truncate(sector_or_byte(&mut rng, lo, seg_len)),
                1 if data_end > lo => {
                    Damage::FlipBit(lo + rng.below(data_end - lo), rng.below(8) as u8)
                }
                1 if seg_len > lo => {
                    Damage::FlipBit(lo + rng.below(seg_len - lo), rng.below(8) as u8)
                }
                1 => Damage::Truncate(lo),
                2 => Damage::ZeroFrom(sector_or_byte(&mut rng, lo, seg_len)),
                _ => {
                    let at = data_end.max(lo);
                    Damage::AppendGarbage(at, 1 + rng.below(600))
                }
            };
            states += u32::from(check_state(&snap, seg_file, damage, &mut rng));
        }
        // A later segment that holds no flushed data can lose anything, even its header.
        if let Some(&later) = snap.segs.iter().find(|&&f| f > seg_file) {
            let len = snap.files[later].1.len() as u64;
            let damage = Damage::Truncate(sector_or_byte(&mut rng, 0, len));
            states += u32::from(check_state(&snap, later, damage, &mut rng));
        }
    }
    assert!(states >= 300, "only {states} crash states checked");
    log.close().unwrap();
}

mod garbage {
    use super::*;
    use proptest::prelude::*;
    use storage::format::{SegmentHeader, SegmentState, SEGMENT_HEADER_BYTES};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        /// Recovery never panics, whatever a segment file, an index file or the checkpoint holds:
        /// it opens (cutting what does not verify) or returns a typed error.
        #[test]
        fn recovery_never_panics_on_garbage(
            sealed in any::<bool>(),
            data_bytes in 0u64..5000,
            next_offset in 0u64..50,
            tail in prop::collection::vec(any::<u8>(), 0..3000),
            index in prop::collection::vec(any::<u8>(), 0..100),
            checkpoint in prop::option::of(0u64..50),
        ) {
            let dir = common::fast_tempdir();
            let header = SegmentHeader {
                state: if sealed { SegmentState::Sealed } else { SegmentState::Active },
                seq: 0,
                base_offset: 0,
                created_ms: 0,
                data_bytes,
                next_offset,
                max_timestamp_ms: 0,
                max_expires_at_ms: 0,
                batch_count: 3,
            };
            let mut file = vec![0u8; SEGMENT_HEADER_BYTES];
            header.encode(&mut file);
            // A real batch first, so that some cases get past the first header check.
            let (mut log, _) = PartitionLog::open(dir.path(), small_config()).unwrap();
            log.append(&[Record { key: None, value: b"seed", headers: &[], timestamp_ms: 0, ttl_ms: 0 }], None, 0).unwrap();
            let seed = common::raw_batches(&log, 0).remove(0).1;
            drop(log);
            for name in std::fs::read_dir(dir.path()).unwrap() {
                std::fs::remove_file(name.unwrap().path()).unwrap();
            }
            file.extend_from_slice(&seed);
            file.extend_from_slice(&tail);
            std::fs::write(dir.path().join(format!("{:020}.seg", 0)), &file).unwrap();
            std::fs::write(dir.path().join(format!("{:020}.index", 0)), &index).unwrap();
            if let Some(c) = checkpoint {
                let mut b = [0u8; storage::format::CHECKPOINT_BYTES];
                storage::format::encode_checkpoint(c, &mut b);
                std::fs::write(dir.path().join("checkpoint"), b).unwrap();
            }
            if let Ok((log, _)) = PartitionLog::open(dir.path(), small_config()) {
                // Whatever survived must be readable without panics.
                let mut at = log.start_offset();
                while at < log.end_offset() {
                    let Ok(r) = log.read(at, 1 << 20) else { break };
                    for b in &r.batches {
                        let _ = b.records(0, 0);
                    }
                    at = r.next_offset;
                }
            }
        }
    }
}
