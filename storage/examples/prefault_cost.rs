//! Measures what segment creation and prefaulting cost, for `docs/benchmarks/prefault.md`.
//!
//! ```sh
//! CARGO_TARGET_DIR=... cargo run --release -p storage --example prefault_cost -- DIR [REPS]
//! ```
//!
//! `DIR` should be on the file system the server uses (a tmpfs hides the disk). For each layout
//! (whole segment populated at creation as before, or one window with jobs keeping the frontier
//! ahead) it reports the inline creation of a log's first segment (the `sync_fallbacks` path on
//! the reactor), the blocking work of the jobs, and appends of 1 KiB records through a 64 MiB
//! segment with a group commit every 4 MiB: wall time of the appends alone and the minor faults
//! they took (this thread, `getrusage`), in total and after the first 8 MiB (warm: the hot
//! ring full and its memory reused). Each flush rewarms the pages past the data (`FlushJob`).

use std::time::{Duration, Instant};

use storage::{LogConfig, PartitionLog, Prefault, Record};

const SEGMENT_BYTES: u64 = 64 << 20;
const FLUSH_EVERY_BYTES: u64 = 4 << 20;
const WARM_AFTER_BYTES: u64 = 8 << 20;

fn minor_faults() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_THREAD counts this thread only.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: initialized by the successful call above.
    unsafe { usage.assume_init() }.ru_minflt as u64
}

struct Layout {
    name: &'static str,
    prefault: Prefault,
    window_bytes: u64,
}

#[derive(Default)]
struct Run {
    create_inline: Duration,
    jobs: Duration,
    job_count: u64,
    appends: Duration,
    append_faults: u64,
    /// Of `append_faults`, those after the first `WARM_AFTER_BYTES` (the hot ring is full and its
    /// memory reused; the segment's index has grown past its first allocations).
    warm_append_faults: u64,
    flushes: Duration,
    inline_reserves: u64,
    claimed_after_first_append: u64,
}

fn run(dir: &std::path::Path, layout: &Layout) -> Run {
    let config = LogConfig {
        segment_bytes_max: SEGMENT_BYTES,
        prefault: layout.prefault,
        prefault_window_bytes: layout.window_bytes,
        ..LogConfig::default()
    };
    let (mut log, _) = PartitionLog::open(dir, config).expect("open");
    let value = vec![0x5au8; 1024];
    let rec = Record {
        key: None,
        value: &value,
        headers: &[],
        timestamp_ms: 1,
        ttl_ms: 0,
    };
    let mut r = Run::default();
    // First append of a new partition: the segment is created inline.
    let t = Instant::now();
    log.append(&[rec], None, 1).expect("append");
    r.create_inline = t.elapsed();
    r.claimed_after_first_append = log.stats().bytes_on_disk;
    let mut since_flush = 0;
    let batch_bytes = 64 + 36 + 1024;
    let appends = (SEGMENT_BYTES - 4096) / batch_bytes;
    for i in 0..appends {
        let faults = minor_faults();
        let t = Instant::now();
        log.append(&[rec], None, 1).expect("append");
        r.appends += t.elapsed();
        let taken = minor_faults() - faults;
        r.append_faults += taken;
        if i * batch_bytes >= WARM_AFTER_BYTES {
            r.warm_append_faults += taken;
        }
        let t = Instant::now();
        while let Some(job) = log.prefault_job() {
            let done = job.run().expect("prefault");
            log.complete_prefault(done);
            r.job_count += 1;
        }
        r.jobs += t.elapsed();
        since_flush += batch_bytes;
        if since_flush >= FLUSH_EVERY_BYTES {
            since_flush = 0;
            let t = Instant::now();
            let done = log.begin_flush().expect("flush").run().expect("fdatasync");
            log.complete_flush(done);
            r.flushes += t.elapsed();
        }
    }
    r.inline_reserves = log.stats().inline_reserves;
    log.close().expect("close");
    r
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base = std::path::PathBuf::from(args.next().expect("usage: prefault_cost DIR [REPS]"));
    let reps: usize = args.next().map_or(3, |r| r.parse().expect("REPS"));
    let layouts = [
        Layout {
            name: "whole segment, POPULATE_READ (before)",
            prefault: Prefault::Read,
            window_bytes: SEGMENT_BYTES,
        },
        Layout {
            name: "1 MiB windows, POPULATE_READ",
            prefault: Prefault::Read,
            window_bytes: 1 << 20,
        },
        Layout {
            name: "1 MiB windows, POPULATE_WRITE (engine now)",
            prefault: Prefault::Write,
            window_bytes: 1 << 20,
        },
        Layout {
            name: "4 MiB windows, POPULATE_WRITE",
            prefault: Prefault::Write,
            window_bytes: 4 << 20,
        },
    ];
    println!(
        "| layout | rep | first segment inline (ms) | claimed after 1st append (MiB) | jobs (count, ms) | appends of 64 MiB (ms) | minor faults in appends | of them after the first 8 MiB | inline reserves | flushes, 16 x 4 MiB (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for rep in 0..reps {
        for (i, layout) in layouts.iter().enumerate() {
            let dir = base.join(format!("rep{rep}-layout{i}"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let r = run(&dir, layout);
            std::fs::remove_dir_all(&dir).expect("cleanup");
            println!(
                "| {} | {} | {:.2} | {:.1} | {}, {:.1} | {:.1} | {} | {} | {} | {:.1} |",
                layout.name,
                rep,
                r.create_inline.as_secs_f64() * 1e3,
                r.claimed_after_first_append as f64 / (1 << 20) as f64,
                r.job_count,
                r.jobs.as_secs_f64() * 1e3,
                r.appends.as_secs_f64() * 1e3,
                r.append_faults,
                r.warm_append_faults,
                r.inline_reserves,
                r.flushes.as_secs_f64() * 1e3,
            );
        }
    }
}
