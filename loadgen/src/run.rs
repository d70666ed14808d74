//! One run: open the connections, start the threads, collect one interval per second (progress
//! line, HDR interval log, latency-over-time points), join, and return the results.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use crate::config::Config;
use crate::driver::{DriverError, Target};
use crate::hist::{new_histogram, now_ns, Counters, LatencySummary, Metric, Shared};
use crate::verify::{LedgerSink, ProducerLedger};
use crate::workers::{run_consumer, run_producer, ProducerSpec, Schedule};

/// Collection interval.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// How long consumers may lag behind the last acknowledged record before the run ends anyway.
pub const CONSUMER_GRACE: Duration = Duration::from_secs(5);

/// One point of the latency-over-time series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IntervalPoint {
    /// Seconds since the measured window started (the end of the interval).
    pub at_s: f64,
    pub produce: LatencySummary,
    pub end_to_end: LatencySummary,
    /// Acknowledged records per second in this interval.
    pub acked_per_s: f64,
}

/// Everything a run measured.
pub struct RunResult {
    pub schedule: Schedule,
    /// Seconds the rates divide by: the window, or until its last acknowledgement if later.
    pub measured_s: f64,
    pub produce: Histogram<u64>,
    pub end_to_end: Histogram<u64>,
    pub records_sent: u64,
    pub records_acked: u64,
    /// Value bytes of `records_acked`.
    pub bytes_acked: u64,
    pub records_failed: u64,
    pub records_unsent: u64,
    /// Resends of batches (Sprawl: after NOT_LEADER, NOT_ENOUGH_REPLICAS, a broken connection).
    pub batches_resent: u64,
    /// Answered batches an earlier send of which may have been written too.
    pub batches_maybe_twice: u64,
    pub records_consumed: u64,
    pub measured_records_acked: u64,
    pub measured_bytes_acked: u64,
    pub measured_records_consumed: u64,
    pub measured_bytes_consumed: u64,
    pub latency_clipped: u64,
    pub timeline: Vec<IntervalPoint>,
    /// Errors that ended a producer or consumer thread early.
    pub thread_errors: Vec<String>,
    /// The first batch the server refused (all refused batches count in `records_failed`).
    pub first_refusal: Option<String>,
    /// Each producer's ledger when records were stamped (`config.stamp_sequences`), else empty.
    pub ledgers: Vec<ProducerLedger>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("opening producer {index}: {source}")]
    OpenProducer { index: u32, source: DriverError },
    #[error("opening consumer {index}: {source}")]
    OpenConsumer { index: u32, source: DriverError },
    #[error("writing the HDR log {path}: {reason}")]
    HdrLog { path: String, reason: String },
}

/// Partitions of consumer `index` out of `consumers` (round robin).
pub fn consumer_partitions(index: u32, consumers: u32, partitions: u32) -> Vec<u32> {
    (0..partitions).filter(|p| p % consumers == index).collect()
}

pub fn run(
    config: &Config,
    target: &dyn Target,
    hdr_log: Option<&Path>,
) -> Result<RunResult, RunError> {
    let mut consumers = Vec::new();
    for index in 0..config.consumers.min(config.partitions) {
        let partitions = consumer_partitions(index, config.consumers, config.partitions);
        let conn = target
            .open_consumer(&partitions, config.consume_from)
            .map_err(|source| RunError::OpenConsumer { index, source })?;
        consumers.push(conn);
    }
    let mut producers = Vec::new();
    for index in 0..config.producers {
        let conn = target
            .open_producer(index)
            .map_err(|source| RunError::OpenProducer { index, source })?;
        producers.push(conn);
    }
    let shared = Shared::new();
    let ledgers = LedgerSink::default();
    let schedule = Schedule::new(now_ns(), config.warmup_ms, config.duration_ms);
    let producers_running = AtomicUsize::new(producers.len());
    let stop_consumers = AtomicBool::new(false);
    let mut log_file = match hdr_log {
        Some(path) => Some(BufWriter::new(File::create(path).map_err(|e| {
            RunError::HdrLog {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        })?)),
        None => None,
    };

    let result = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (index, mut conn) in producers.into_iter().enumerate() {
            let spec = ProducerSpec {
                index: index as u32,
                config,
                schedule,
                shared: &shared,
                ledgers: &ledgers,
            };
            let running = &producers_running;
            handles.push(scope.spawn(move || {
                let result = run_producer(conn.as_mut(), &spec);
                running.fetch_sub(1, Ordering::Relaxed);
                result.map_err(|e| format!("producer {index}: {e}"))
            }));
        }
        for (index, mut conn) in consumers.into_iter().enumerate() {
            let (shared, stop) = (&shared, &stop_consumers);
            handles.push(scope.spawn(move || {
                run_consumer(conn.as_mut(), schedule, shared, stop)
                    .map_err(|e| format!("consumer {index}: {e}"))
            }));
        }
        let collected = collect(
            config,
            schedule,
            &shared,
            &producers_running,
            &stop_consumers,
            log_file.as_mut(),
        );
        stop_consumers.store(true, Ordering::Relaxed);
        let thread_errors: Vec<String> = handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("a worker thread panicked".to_owned()),
            })
            .collect();
        let (produce, end_to_end, timeline) = collected.map_err(|reason| RunError::HdrLog {
            path: hdr_log.map(|p| p.display().to_string()).unwrap_or_default(),
            reason,
        })?;
        let c = &shared.counters;
        Ok(RunResult {
            schedule,
            // Throughput divides by the time it took to get the window's records acknowledged:
            // the window, or longer when acknowledgements (or an open loop's backlog) trail it.
            measured_s: (config.duration_ms as f64 / 1000.0).max(
                Counters::get(&c.last_measured_ack_ns).saturating_sub(schedule.measure_start_ns)
                    as f64
                    / 1e9,
            ),
            produce,
            end_to_end,
            records_sent: Counters::get(&c.records_sent),
            records_acked: Counters::get(&c.records_acked),
            bytes_acked: Counters::get(&c.bytes_acked),
            records_failed: Counters::get(&c.records_failed),
            records_unsent: Counters::get(&c.records_unsent),
            batches_resent: Counters::get(&c.batches_resent),
            batches_maybe_twice: Counters::get(&c.batches_maybe_twice),
            records_consumed: Counters::get(&c.records_consumed),
            measured_records_acked: Counters::get(&c.measured_records_acked),
            measured_bytes_acked: Counters::get(&c.measured_bytes_acked),
            measured_records_consumed: Counters::get(&c.measured_records_consumed),
            measured_bytes_consumed: Counters::get(&c.measured_bytes_consumed),
            latency_clipped: Counters::get(&c.latency_clipped),
            timeline,
            thread_errors,
            first_refusal: shared.first_refusal(),
            ledgers: ledgers.take(),
        })
    })?;
    if let Some(file) = log_file.as_mut() {
        file.flush().map_err(|e| RunError::HdrLog {
            path: hdr_log.map(|p| p.display().to_string()).unwrap_or_default(),
            reason: e.to_string(),
        })?;
    }
    Ok(result)
}

type Collected = (Histogram<u64>, Histogram<u64>, Vec<IntervalPoint>);

/// The collector loop on the calling thread. Returns when producers are done and consumers have
/// caught up (or [`CONSUMER_GRACE`] passed), or at the end of the window without producers.
fn collect(
    config: &Config,
    schedule: Schedule,
    shared: &Shared,
    producers_running: &AtomicUsize,
    stop_consumers: &AtomicBool,
    log_file: Option<&mut BufWriter<File>>,
) -> Result<Collected, String> {
    let progress = std::io::stderr().is_terminal();
    let mut serializer = V2DeflateSerializer::new();
    let base_time = UNIX_EPOCH + Duration::from_nanos(schedule.measure_start_ns);
    let mut log = match log_file {
        Some(file) => Some(
            IntervalLogWriterBuilder::new()
                .add_comment(&format!("loadgen {} latency in microseconds; tags: produce (send->ack), e2e (send->consume)", env!("CARGO_PKG_VERSION")))
                .with_start_time(UNIX_EPOCH + Duration::from_nanos(schedule.start_ns))
                .with_base_time(base_time)
                .begin_log_with(file, &mut serializer)
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let mut total_produce = new_histogram();
    let mut total_e2e = new_histogram();
    let mut interval_produce = new_histogram();
    let mut interval_e2e = new_histogram();
    let mut timeline = Vec::new();
    let mut last_tick_ns = schedule.start_ns;
    let mut last_acked = 0u64;
    let mut producers_done_at: Option<u64> = None;
    let counters = &shared.counters;
    loop {
        let next_tick_ns = last_tick_ns + INTERVAL.as_nanos() as u64;
        // Sleep in small steps so the end is noticed promptly.
        let now = now_ns();
        if now < next_tick_ns {
            std::thread::sleep(
                Duration::from_nanos(next_tick_ns - now).min(Duration::from_millis(20)),
            );
        }
        let now = now_ns();
        let producing = producers_running.load(Ordering::Relaxed) > 0;
        if !producing && producers_done_at.is_none() {
            producers_done_at = Some(now);
        }
        let finished = if config.producers == 0 {
            now >= schedule.measure_end_ns
        } else if producing {
            false
        } else if config.consumers == 0 {
            true
        } else {
            let caught_up =
                Counters::get(&counters.records_consumed) >= Counters::get(&counters.records_acked);
            let grace_over =
                producers_done_at.is_some_and(|t| now >= t + CONSUMER_GRACE.as_nanos() as u64);
            caught_up || grace_over
        };
        if finished {
            stop_consumers.store(true, Ordering::Relaxed);
        }
        if now < next_tick_ns && !finished {
            continue;
        }
        // Consumers publish on their next poll (within 50 ms): give them that before the last take.
        if finished && config.consumers > 0 {
            std::thread::sleep(Duration::from_millis(120));
        }
        shared.take_interval(Metric::ProduceAck, &mut interval_produce);
        shared.take_interval(Metric::EndToEnd, &mut interval_e2e);
        let acked = Counters::get(&counters.records_acked);
        let elapsed_s = (now - last_tick_ns) as f64 / 1e9;
        let acked_per_s = (acked - last_acked) as f64 / elapsed_s.max(1e-9);
        if now > schedule.measure_start_ns
            && (!interval_produce.is_empty() || !interval_e2e.is_empty())
        {
            let start =
                Duration::from_nanos(last_tick_ns.saturating_sub(schedule.measure_start_ns));
            let length = Duration::from_nanos(now - last_tick_ns.max(schedule.measure_start_ns));
            if let Some(log) = log.as_mut() {
                for (hist, tag) in [(&interval_produce, "produce"), (&interval_e2e, "e2e")] {
                    if !hist.is_empty() {
                        log.write_histogram(hist, start, length, Tag::new(tag))
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
            timeline.push(IntervalPoint {
                at_s: (now - schedule.measure_start_ns) as f64 / 1e9,
                produce: LatencySummary::of(&interval_produce),
                end_to_end: LatencySummary::of(&interval_e2e),
                acked_per_s,
            });
        }
        if progress {
            let phase = if now < schedule.measure_start_ns {
                " (warm-up)"
            } else {
                ""
            };
            let p99 = if interval_produce.is_empty() {
                interval_e2e.value_at_quantile(0.99)
            } else {
                interval_produce.value_at_quantile(0.99)
            };
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r[{:>6.1}s] {:>10.0} msg/s  p99 {:>8} us  consumed {:>10}  errors {}{}\x1b[K",
                (now - schedule.start_ns) as f64 / 1e9,
                acked_per_s,
                p99,
                Counters::get(&counters.records_consumed),
                Counters::get(&counters.records_failed),
                phase
            );
            let _ = err.flush();
        }
        // Same bounds everywhere, so adding cannot fail.
        let _ = total_produce.add(&interval_produce);
        let _ = total_e2e.add(&interval_e2e);
        interval_produce.reset();
        interval_e2e.reset();
        last_acked = acked;
        last_tick_ns = now;
        if finished {
            break;
        }
    }
    if progress {
        let _ = writeln!(std::io::stderr());
    }
    drop(log);
    Ok((total_produce, total_e2e, timeline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_split_round_robin() {
        assert_eq!(consumer_partitions(0, 2, 5), [0, 2, 4]);
        assert_eq!(consumer_partitions(1, 2, 5), [1, 3]);
        assert_eq!(consumer_partitions(0, 1, 3), [0, 1, 2]);
    }
}
