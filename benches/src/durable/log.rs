//! Measurement B: a fresh default-config `storage::PartitionLog` appended to non-stop, with
//! group commit and the segment and prefault jobs on worker threads, as the engine drives it
//! (`engine/src/partition.rs`: a flush whenever none runs, `prepare_next_segment` after every
//! append).

use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use benches::fixtures::{storage_records, BENCH_TIMESTAMP_MS};
use storage::{
    FlushDone, FlushJob, LogConfig, PartitionLog, PrefaultDone, PrefaultJob, PreparedSegment,
    SegmentJob, StorageError,
};

use super::sys::thread_minor_faults;
use super::{io_err, storage_err, DurableError, Settings};

/// Why the log measurement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `settings.duration` elapsed.
    Deadline,
    /// `bytes_max` bytes were appended and all of them became durable.
    BytesMax,
}

/// Result of one log measurement. Byte counts are stored batch bytes (header and record
/// prefixes included), derived from offsets: every batch has the same size.
#[derive(Debug, Clone, PartialEq)]
pub struct LogResult {
    pub stop: Stop,
    pub elapsed_s: f64,
    /// Bytes below the durable offset when the measurement stopped: the throughput's numerator.
    pub durable_bytes: u64,
    pub appended_bytes: u64,
    /// Appended but not yet durable when the measurement stopped.
    pub backlog_bytes: u64,
    pub appends: u64,
    /// Flushes completed within the measurement, their mean and longest run time.
    pub flushes: u64,
    pub flush_ms_mean: f64,
    pub flush_ms_max: f64,
    /// Times the appender waited because `backlog_bytes_max` was reached.
    pub backlog_waits: u64,
    /// Minor faults of the appender thread during the measurement (`None`: /proc unreadable).
    pub minor_faults: Option<u64>,
    pub inline_reserves: u64,
    pub sync_fallbacks: u64,
    pub prefaults: u64,
    pub rolls: u64,
}

impl LogResult {
    pub fn durable_mb_per_s(&self) -> f64 {
        self.durable_bytes as f64 / 1e6 / self.elapsed_s
    }
    pub fn bytes_per_flush(&self) -> f64 {
        self.durable_bytes as f64 / self.flushes.max(1) as f64
    }
}

/// The blocking work the engine sends to its blocking pool besides flushes.
enum Background {
    Segment(SegmentJob),
    Prefault(PrefaultJob),
}

enum BackgroundDone {
    Segment(Result<PreparedSegment, StorageError>),
    Prefault(Result<PrefaultDone, StorageError>),
}

type FlushOutcome = (Result<FlushDone, StorageError>, Duration);

/// The appender's side of the two worker threads and what it knows about their work.
struct Workers {
    flush_tx: SyncSender<FlushJob>,
    flush_rx: Receiver<FlushOutcome>,
    jobs_tx: SyncSender<Background>,
    jobs_rx: Receiver<BackgroundDone>,
    flush_running: bool,
    segment_running: bool,
    prefault_running: bool,
    flushes: u64,
    flush_time: Duration,
    flush_max: Duration,
}

impl Workers {
    fn apply_flush(
        &mut self,
        log: &mut PartitionLog,
        (result, took): FlushOutcome,
    ) -> Result<(), DurableError> {
        self.flush_running = false;
        match result {
            Ok(done) => log.complete_flush(done),
            Err(e) => {
                log.flush_failed();
                return Err(storage_err("flush", log.dir())(e));
            }
        }
        self.flushes += 1;
        self.flush_time += took;
        self.flush_max = self.flush_max.max(took);
        Ok(())
    }

    fn apply_background(
        &mut self,
        log: &mut PartitionLog,
        done: BackgroundDone,
    ) -> Result<(), DurableError> {
        match &done {
            BackgroundDone::Segment(_) => self.segment_running = false,
            BackgroundDone::Prefault(_) => self.prefault_running = false,
        }
        match done {
            BackgroundDone::Segment(Ok(seg)) => log.install_prepared(seg),
            BackgroundDone::Segment(Err(e)) => {
                log.prepare_failed();
                return Err(storage_err("prepare a segment", log.dir())(e));
            }
            BackgroundDone::Prefault(Ok(done)) => log.complete_prefault(done),
            BackgroundDone::Prefault(Err(e)) => {
                log.prefault_failed();
                return Err(storage_err("prefault", log.dir())(e));
            }
        }
        Ok(())
    }

    /// Applies every finished job without waiting.
    fn poll(&mut self, log: &mut PartitionLog) -> Result<(), DurableError> {
        while let Ok(outcome) = self.flush_rx.try_recv() {
            self.apply_flush(log, outcome)?;
        }
        while let Ok(done) = self.jobs_rx.try_recv() {
            self.apply_background(log, done)?;
        }
        Ok(())
    }

    /// Waits up to `timeout` for the running flush and applies it.
    fn wait_flush(
        &mut self,
        log: &mut PartitionLog,
        timeout: Duration,
    ) -> Result<(), DurableError> {
        match self.flush_rx.recv_timeout(timeout) {
            Ok(outcome) => self.apply_flush(log, outcome),
            Err(RecvTimeoutError::Timeout) => Ok(()),
            Err(RecvTimeoutError::Disconnected) => {
                Err(DurableError::WorkerGone { thread: "flush" })
            }
        }
    }

    /// Group commit: starts a flush of everything appended so far unless one is running.
    fn start_flush(&mut self, log: &mut PartitionLog) -> Result<(), DurableError> {
        if self.flush_running {
            return Ok(());
        }
        if let Some(job) = log.begin_flush() {
            self.flush_tx
                .send(job)
                .map_err(|_| DurableError::WorkerGone { thread: "flush" })?;
            self.flush_running = true;
        }
        Ok(())
    }

    /// What the engine does after every append (`Partition::prepare_next_segment`): move the
    /// prefaulted frontier ahead, prepare the next segment.
    fn start_background(&mut self, log: &mut PartitionLog) -> Result<(), DurableError> {
        let gone = |_| DurableError::WorkerGone { thread: "job" };
        if !self.prefault_running {
            if let Some(job) = log.prefault_job() {
                self.jobs_tx.send(Background::Prefault(job)).map_err(gone)?;
                self.prefault_running = true;
            }
        }
        if !self.segment_running {
            if let Some(job) = log.prepare_segment_job() {
                self.jobs_tx.send(Background::Segment(job)).map_err(gone)?;
                self.segment_running = true;
            }
        }
        Ok(())
    }

    /// Waits for every job in flight (their results are applied, not counted).
    fn drain(&mut self, log: &mut PartitionLog) -> Result<(), DurableError> {
        while self.flush_running {
            self.wait_flush(log, Duration::from_secs(1))?;
        }
        while self.segment_running || self.prefault_running {
            let done = self
                .jobs_rx
                .recv()
                .map_err(|_| DurableError::WorkerGone { thread: "job" })?;
            self.apply_background(log, done)?;
        }
        Ok(())
    }
}

/// Appends `settings.workload` batches to a fresh default-config log in a temporary directory
/// inside `dir` from the calling thread, with group commit running on a flush thread and segment
/// and prefault jobs on a job thread, until `settings.duration` elapses or `bytes_max` bytes
/// are appended and durable. The log is closed and removed afterwards.
pub fn run_log(dir: &Path, settings: &Settings) -> Result<LogResult, DurableError> {
    let work = tempfile::Builder::new()
        .prefix("log-")
        .tempdir_in(dir)
        .map_err(io_err("create a temporary directory in", dir))?;
    let (mut log, _report) = PartitionLog::open(work.path(), LogConfig::default())
        .map_err(storage_err("open", work.path()))?;
    // The engine prepares a reopened partition's segment as it opens; do it before the clock
    // starts so the first append does not create one inline.
    if let Some(job) = log.prepare_segment_job() {
        let seg = job
            .run()
            .map_err(storage_err("prepare a segment", work.path()))?;
        log.install_prepared(seg);
    }
    let (flush_tx, flush_jobs) = mpsc::sync_channel::<FlushJob>(1);
    let (flush_out, flush_rx) = mpsc::sync_channel::<FlushOutcome>(1);
    // At most one segment job and one prefault job are in flight.
    let (jobs_tx, jobs_in) = mpsc::sync_channel::<Background>(2);
    let (jobs_out, jobs_rx) = mpsc::sync_channel::<BackgroundDone>(2);
    let result = std::thread::scope(|scope| {
        scope.spawn(move || {
            for job in flush_jobs {
                let started = Instant::now();
                let result = job.run();
                if flush_out.send((result, started.elapsed())).is_err() {
                    break;
                }
            }
        });
        scope.spawn(move || {
            for job in jobs_in {
                let done = match job {
                    Background::Segment(j) => BackgroundDone::Segment(j.run()),
                    Background::Prefault(j) => BackgroundDone::Prefault(j.run()),
                };
                if jobs_out.send(done).is_err() {
                    break;
                }
            }
        });
        let mut workers = Workers {
            flush_tx,
            flush_rx,
            jobs_tx,
            jobs_rx,
            flush_running: false,
            segment_running: false,
            prefault_running: false,
            flushes: 0,
            flush_time: Duration::ZERO,
            flush_max: Duration::ZERO,
        };
        let measured = append_loop(&mut log, &mut workers, settings);
        let drained = workers.drain(&mut log);
        // Dropping `workers` closes the job channels: both threads end.
        drop(workers);
        let measured = measured?;
        drained.map(|()| measured)
    })?;
    log.close().map_err(storage_err("close", work.path()))?;
    let path = work.path().to_path_buf();
    work.close().map_err(io_err("remove", &path))?;
    Ok(result)
}

fn append_loop(
    log: &mut PartitionLog,
    workers: &mut Workers,
    settings: &Settings,
) -> Result<LogResult, DurableError> {
    let workload = settings.workload;
    let batch_bytes = workload.stored_batch_bytes();
    let records_per_batch = u64::from(workload.records);
    let bytes_of = |offsets: u64| offsets / records_per_batch * batch_bytes;
    let values = workload.values();
    let records = storage_records(&values);
    let dir = log.dir().to_path_buf();
    let faults_before = thread_minor_faults();
    let start = Instant::now();
    let deadline = start + settings.duration;
    let mut backlog_waits = 0u64;
    let stop = loop {
        workers.poll(log)?;
        workers.start_flush(log)?;
        let now = Instant::now();
        if now >= deadline {
            break Stop::Deadline;
        }
        let (durable, end) = (log.durable_offset(), log.end_offset());
        if bytes_of(end) >= settings.bytes_max {
            if durable == end {
                break Stop::BytesMax;
            }
            workers.wait_flush(log, deadline - now)?;
            continue;
        }
        if bytes_of(end - durable) >= settings.backlog_bytes_max {
            backlog_waits += 1;
            workers.wait_flush(log, deadline - now)?;
            continue;
        }
        let now_ms = BENCH_TIMESTAMP_MS + (now - start).as_millis() as i64;
        log.append(&records, None, now_ms)
            .map_err(storage_err("append", &dir))?;
        workers.start_background(log)?;
    };
    let elapsed_s = start.elapsed().as_secs_f64();
    let faults_after = thread_minor_faults();
    let (durable, end) = (log.durable_offset(), log.end_offset());
    let stats = log.stats();
    if stats.appended_bytes != bytes_of(end) {
        return Err(DurableError::Mismatch {
            stored_bytes: stats.appended_bytes,
            predicted_bytes: bytes_of(end),
        });
    }
    let flushes = workers.flushes;
    Ok(LogResult {
        stop,
        elapsed_s,
        durable_bytes: bytes_of(durable),
        appended_bytes: bytes_of(end),
        backlog_bytes: bytes_of(end - durable),
        appends: stats.appends,
        flushes,
        flush_ms_mean: workers.flush_time.as_secs_f64() * 1e3 / flushes.max(1) as f64,
        flush_ms_max: workers.flush_max.as_secs_f64() * 1e3,
        backlog_waits,
        minor_faults: faults_after.zip(faults_before).map(|(a, b)| a - b),
        inline_reserves: stats.inline_reserves,
        sync_fallbacks: stats.sync_fallbacks,
        prefaults: stats.prefaults,
        rolls: stats.rolls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use benches::fixtures::Workload;

    #[test]
    fn log_counts_only_durable_bytes_and_stops_at_bytes_max() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            duration: Duration::from_secs(60),
            bytes_max: 4 << 20,
            backlog_bytes_max: 1 << 20,
            workload: Workload::new(16, 1024),
        };
        let r = run_log(dir.path(), &settings).unwrap();
        let batch = settings.workload.stored_batch_bytes();
        assert_eq!(r.stop, Stop::BytesMax);
        // Stopped at the first batch boundary at or past bytes_max, all of it durable.
        assert_eq!(r.appended_bytes, (4u64 << 20).div_ceil(batch) * batch);
        assert_eq!((r.durable_bytes, r.backlog_bytes), (r.appended_bytes, 0));
        assert_eq!(r.appends * batch, r.appended_bytes);
        // Each flush covers at most the 1 MiB cap and the batch that crossed it.
        assert!(r.flushes >= 4, "{} flushes for 4 MiB", r.flushes);
        assert_eq!(r.sync_fallbacks, 0, "the first segment was prepared");
        assert!(r.minor_faults.is_some());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
