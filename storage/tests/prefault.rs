//! Segments reserved and prefaulted a window at a time (`LogConfig::prefault_window_bytes`):
//! what a new segment claims, how the frontier moves (background `PrefaultJob`s, inline reserves
//! as the fallback), that a job racing a seal cannot grow the trimmed file, what prefaulting does
//! to page faults on the append path, and crash consistency with the frontier moving between
//! steps.

mod fault_support;

use std::os::unix::fs::MetadataExt;

use fault_support::{seeds, verify_crash, Model, Rng, SeedGuard, Tally, Workload};
use storage::{Io, LogConfig, PartitionLog, Prefault, Record};

const WINDOW: u64 = 64 << 10;

fn config(prefault: Prefault) -> LogConfig {
    LogConfig {
        segment_bytes_max: 1 << 20,
        prefault_window_bytes: WINDOW,
        prefault,
        ..LogConfig::default()
    }
}

fn rec(value: &[u8]) -> Record<'_> {
    Record {
        key: None,
        value,
        headers: &[],
        timestamp_ms: 1_000,
        ttl_ms: 0,
    }
}

fn prepare(log: &mut PartitionLog) {
    let job = log.prepare_segment_job().expect("a segment job is due");
    let seg = job.run().expect("prepare");
    log.install_prepared(seg);
}

/// Runs every due prefault job to completion (as the engine does after an append).
fn prefault_due(log: &mut PartitionLog) -> u64 {
    let mut jobs = 0;
    while let Some(job) = log.prefault_job() {
        let done = job.run().expect("prefault job");
        log.complete_prefault(done);
        jobs += 1;
    }
    jobs
}

fn segment_files(dir: &std::path::Path) -> Vec<std::fs::Metadata> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| (e.file_name(), e.metadata().expect("stat")))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.into_iter().map(|(_, m)| m).collect()
}

#[test]
fn a_new_segment_claims_one_window_not_the_whole_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(Prefault::Read);
    let (mut log, _) = PartitionLog::open(dir.path(), cfg.clone()).expect("open");
    assert!(!log.has_active_segment());
    prepare(&mut log);
    log.append(&[rec(b"first")], None, 1_000).expect("append");
    assert!(log.has_active_segment());
    let stats = log.stats();
    assert_eq!(stats.sync_fallbacks, 0, "the prepared segment was used");
    assert_eq!(stats.bytes_on_disk, WINDOW);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    // Full length (recovery scans to it), but sparse: only the window has blocks.
    assert_eq!(files[0].len(), cfg.segment_bytes_max);
    let claimed = files[0].blocks() * 512;
    assert!(
        claimed <= WINDOW + 16 * 4096,
        "a new segment claimed {claimed} bytes for a {WINDOW}-byte window"
    );
}

#[test]
fn jobs_keep_the_frontier_ahead_and_inline_reserves_cover_a_lagging_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(Prefault::Write);
    let (mut log, _) = PartitionLog::open(dir.path(), cfg.clone()).expect("open");
    prepare(&mut log);
    let value = vec![7u8; 1000];
    // With jobs run after every append, no append reserves inline.
    let mut jobs = 0;
    for _ in 0..400 {
        log.append(&[rec(&value)], None, 1_000).expect("append");
        jobs += prefault_due(&mut log);
    }
    let stats = log.stats();
    assert_eq!(stats.inline_reserves, 0);
    assert_eq!(stats.prefaults, jobs);
    assert!(jobs >= 400 * 1000 / WINDOW, "only {jobs} jobs for 400 KB");
    // Ahead of the writes by at most about a window.
    assert!(stats.bytes_on_disk >= stats.data_bytes + 128);
    assert!(stats.bytes_on_disk <= stats.data_bytes + 128 + WINDOW + 4096);

    // Without jobs, appends reserve what they need inline (counted) and keep working.
    for _ in 0..200 {
        log.append(&[rec(&value)], None, 1_000).expect("append");
    }
    let lagging = log.stats();
    assert!(lagging.inline_reserves > 0);
    assert!(
        lagging.inline_reserves <= 200 * 1100 / (WINDOW / 2) + 1,
        "{} inline reserves: one per half window, not per append",
        lagging.inline_reserves
    );
    // Once due, a job covers a window past the write position.
    let job = loop {
        if let Some(job) = log.prefault_job() {
            break job;
        }
        log.append(&[rec(&value)], None, 1_000).expect("append");
    };
    let lagging = log.stats();
    let range = job.range();
    assert!(range.end >= lagging.data_bytes + 128 + WINDOW - 4096);
    log.complete_prefault(job.run().expect("run"));
    assert!(
        log.prefault_job().is_none(),
        "the frontier is a window ahead"
    );

    // Everything reads back across rolls and a reopen.
    let end = log.end_offset();
    log.close().expect("close");
    let (log, report) = PartitionLog::open(dir.path(), cfg).expect("reopen");
    assert_eq!((log.end_offset(), report.tail_cut), (end, None));
    let read = log.read(end - 1, 4096).expect("read");
    let records = read.batches[0].records(end - 1, 1_000).expect("records");
    assert_eq!(&records[0].value[..], &value[..]);
}

#[test]
fn a_job_that_loses_the_race_with_the_seal_does_not_grow_the_trimmed_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(Prefault::Read);
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).expect("open");
    prepare(&mut log);
    let value = vec![1u8; 40_000];
    log.append(&[rec(&value)], None, 1_000).expect("append");
    let job = log.prefault_job().expect("a job is due");
    // The segment is sealed (truncation seals the cut one) and trimmed before the job runs.
    log.append(&[rec(b"second")], None, 1_000).expect("append");
    log.truncate_to(1).expect("truncate");
    let trimmed = segment_files(dir.path())[0].len();
    assert!(
        trimmed < 50_000,
        "the sealed segment was trimmed to {trimmed}"
    );
    let done = job.run().expect("run");
    assert_eq!(
        done.allocated, None,
        "a job on a trimmed segment does nothing"
    );
    log.complete_prefault(done);
    assert_eq!(segment_files(dir.path())[0].len(), trimmed);
    assert_eq!(
        segment_files(dir.path())[0].blocks() * 512,
        trimmed.next_multiple_of(4096)
    );
}

fn minor_faults() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_THREAD counts this thread only.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: initialized by the successful call above.
    unsafe { usage.assume_init() }.ru_minflt as u64
}

/// Minor faults taken by this thread while appending `pages` pages of 1 KiB records into a
/// window that a job prefaulted in `mode`, after a flush.
fn append_faults(mode: Prefault) -> (u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        prefault_window_bytes: 256 << 10,
        ..config(mode)
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).expect("open");
    prepare(&mut log);
    let value = vec![3u8; 1000];
    log.append(&[rec(&value)], None, 1_000).expect("append");
    let done = log.begin_flush().expect("flush").run().expect("fdatasync");
    log.complete_flush(done);
    // Warm the append path's own allocations, then move the frontier a window ahead.
    for _ in 0..8 {
        log.append(&[rec(&value)], None, 1_000).expect("append");
    }
    let job = log.prefault_job();
    let job = job.unwrap_or_else(|| {
        // Not yet within half a window: append to it.
        loop {
            log.append(&[rec(&value)], None, 1_000).expect("append");
            if let Some(j) = log.prefault_job() {
                break j;
            }
        }
    });
    let range = job.range();
    log.complete_prefault(job.run().expect("prefault"));
    // The pages before the new range were prefaulted at creation and written back by the flush;
    // measure only appends into the range the job just prefaulted.
    let write_pos = |log: &PartitionLog| log.stats().data_bytes + 128;
    while write_pos(&log) < range.start {
        log.append(&[rec(&value)], None, 1_000).expect("append");
    }
    let start = write_pos(&log);
    let appends = (range.end - start) / 1100;
    let before = minor_faults();
    for _ in 0..appends {
        log.append(&[rec(&value)], None, 1_000).expect("append");
    }
    let faults = minor_faults() - before;
    assert_eq!(log.stats().inline_reserves, 0, "stayed inside the window");
    (faults, (range.end - start) / 4096)
}

#[test]
fn write_prefault_takes_the_page_faults_off_the_append_path() {
    let (write_faults, pages) = append_faults(Prefault::Write);
    let (read_faults, _) = append_faults(Prefault::Read);
    eprintln!("{pages} pages: {write_faults} faults after MADV_POPULATE_WRITE, {read_faults} after MADV_POPULATE_READ");
    // Read-populated pages fault once each on their first write; write-populated ones do not.
    assert!(
        read_faults >= pages * 3 / 4,
        "{read_faults} faults for {pages} read-populated pages"
    );
    assert!(
        write_faults <= pages / 8,
        "{write_faults} faults for {pages} write-populated pages"
    );
}

/// Steady appends with a group commit between bursts, as the engine runs them. Once the hot ring
/// is full (its entries' heap memory is reused from then on), the rewarm (`FlushJob` module doc)
/// has the pages past the data writable again after every flush, so the appends take no faults:
/// 0 for 400 pages when this test was written, against 470 without the rewarm (every page
/// between the data and the frontier, and the partly written page, write-protected by each
/// flush), and 7 with the rewarm but the index still growing on the shard.
#[test]
fn a_flush_rewarms_the_pages_past_the_data() {
    flush_rewarms(false);
}

/// The same with the rewarm taken out of the flush job and run after `complete_flush`, as the
/// engine does (on its idle-priority background thread): the appends still take no faults.
#[test]
fn a_rewarm_run_after_the_flush_completes_warms_the_same_pages() {
    flush_rewarms(true);
}

fn flush_rewarms(separately: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        segment_bytes_max: 8 << 20,
        prefault_window_bytes: 256 << 10,
        ..config(Prefault::Write)
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).expect("open");
    prepare(&mut log);
    let value = vec![9u8; 1000];
    let burst = 40; // ~44 KB, 10-11 pages, between two flushes
    let (mut faults, mut pages, mut rewarmed) = (0, 0, 0);
    for round in 0..120 {
        let start = log.stats().data_bytes;
        let before = minor_faults();
        for _ in 0..burst {
            log.append(&[rec(&value)], None, 1_000).expect("append");
        }
        let taken = minor_faults() - before;
        prefault_due(&mut log);
        let mut job = log.begin_flush().expect("a flush is due");
        if let Some(bytes) = job.rewarm_bytes() {
            rewarmed += bytes;
        }
        let rewarm = if separately { job.take_rewarm() } else { None };
        if separately {
            assert_eq!(job.rewarm_bytes(), None, "taken out of the job");
        }
        log.complete_flush(job.run().expect("fdatasync"));
        if let Some(r) = rewarm {
            r.run();
        }
        if round >= 80 {
            faults += taken;
            pages += (log.stats().data_bytes - start) / 4096;
        }
    }
    assert_eq!(log.stats().inline_reserves, 0, "stayed inside the frontier");
    eprintln!(
        "{faults} faults appending {pages} pages across 40 flushes; {rewarmed} bytes rewarmed"
    );
    assert!(rewarmed > 0, "no flush rewarmed anything");
    assert!(
        faults <= 2,
        "{faults} faults for {pages} pages appended after flushes"
    );
}

/// Flushes back to back (the next begun as the last completes, appends only while one runs) do not
/// rewarm: the next writeback would clean the pages again before the appends reach them.
#[test]
fn back_to_back_flushes_do_not_rewarm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _) = PartitionLog::open(dir.path(), config(Prefault::Write)).expect("open");
    prepare(&mut log);
    let value = vec![5u8; 1000];
    log.append(&[rec(&value)], None, 1_000).expect("append");
    let first = log.begin_flush().expect("flush");
    assert!(first.rewarm_bytes().is_some(), "the first flush rewarms");
    for _ in 0..3 {
        log.append(&[rec(&value)], None, 1_000)
            .expect("append while flushing");
    }
    log.complete_flush(first.run().expect("fdatasync"));
    let second = log.begin_flush().expect("flush");
    assert_eq!(second.rewarm_bytes(), None, "begun as the first completed");
    log.append(&[rec(&value)], None, 1_000)
        .expect("append while flushing");
    log.complete_flush(second.run().expect("fdatasync"));
    log.append(&[rec(&value)], None, 1_000)
        .expect("append between flushes");
    let third = log.begin_flush().expect("flush");
    assert_eq!(
        third.rewarm_bytes(),
        Some(4096),
        "appends since the last completion: the two last appends' bytes, at least a page"
    );
}

/// The segment's in-memory index grows into room a `PrefaultJob` allocated and touched off the
/// shard, so pushing entries takes no page fault either. With an entry per batch (interval below
/// the batch size) the 4 MiB of 1 KiB appends measured add ~3,800 entries, ~45 KiB of index: 1
/// fault there when this test was written, 48 with the index growing on the shard.
#[test]
fn the_index_grows_off_the_append_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        segment_bytes_max: 8 << 20,
        prefault_window_bytes: 256 << 10,
        index_interval_bytes: 64,
        ..config(Prefault::Write)
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).expect("open");
    prepare(&mut log);
    let value = vec![4u8; 1000];
    let mut faults = 0;
    let mut appends = 0u64;
    while log.stats().data_bytes < 6 << 20 {
        let before = minor_faults();
        log.append(&[rec(&value)], None, 1_000).expect("append");
        let taken = minor_faults() - before;
        appends += 1;
        // Past 2 MiB the ring is full (1,024 entries) and reuses its memory.
        if log.stats().data_bytes > 2 << 20 {
            faults += taken;
        }
        prefault_due(&mut log);
    }
    assert_eq!(log.stats().inline_reserves, 0, "stayed inside the frontier");
    assert_eq!(log.stats().segments, 1, "one segment");
    eprintln!("{faults} faults in {appends} appends with an index entry each");
    assert!(
        faults <= 2,
        "{faults} faults: the index grew on the append path"
    );
}

/// The crash property of `crash_fault.rs` with segments of several windows and the frontier moved
/// by jobs between steps (and left behind, so appends reserve inline, on other steps).
#[test]
fn crash_states_with_a_moving_frontier_keep_flushed_batches() {
    let mut tally = Tally::default();
    let (mut prefaults, mut inline_reserves) = (0, 0);
    for seed in seeds(16, 7) {
        let mut guard = SeedGuard {
            test: "crash_states_with_a_moving_frontier_keep_flushed_batches",
            seed,
            steps: Vec::new(),
        };
        let mut w = Workload::new(seed);
        w.config.segment_bytes_max = 4 * 4096;
        w.config.prefault_window_bytes = 4096;
        drop(w.log.take());
        let (log, _) =
            PartitionLog::open_with(w.dir.path(), w.config.clone(), Io::Fault(w.disk.clone()))
                .expect("reopen with small windows");
        w.log = Some(log);
        w.disk.set_capture(true);
        let mut crash_rng = Rng(seed ^ 0xF00D);
        for _ in 0..40 {
            let before = w.model.clone();
            let stats_before = w.log().stats();
            let step = w.pick_step();
            guard.steps.push(step);
            w.run(step)
                .unwrap_or_else(|e| panic!("{step:?} failed without injected faults: {e}"));
            // Sometimes the job runs before the next append, sometimes the appends outrun it.
            if crash_rng.below(3) == 0 {
                prefault_due(w.log());
            }
            let stats = w.log().stats();
            if stats.appends >= stats_before.appends {
                prefaults += stats.prefaults - stats_before.prefaults;
                inline_reserves += stats.inline_reserves - stats_before.inline_reserves;
            }
            w.disk.capture_now().expect("capture");
            let captures = w.disk.take_captures();
            let last = captures.len() - 1;
            for (i, state) in captures.iter().enumerate() {
                let models: Vec<&Model> = if i == last {
                    vec![&w.model]
                } else {
                    vec![&before, &w.model]
                };
                tally.merge(verify_crash(
                    state,
                    crash_rng.next(),
                    &w.config,
                    &models,
                    u32::from(crash_rng.below(4) == 0),
                ));
            }
        }
    }
    eprintln!("{tally:?}; {prefaults} prefault jobs, {inline_reserves} inline reserves");
    if std::env::var("SPRAWL_FAULT_SEED").is_err() {
        assert!(tally.states >= 200, "too few crash states: {tally:?}");
        // Both ways of moving the frontier really happened.
        assert!(prefaults > 0 && inline_reserves > 0);
    }
}
