//! The producer and consumer loops, one thread per connection. Everything they need is allocated
//! before the clock starts; the measured loop builds batches from preallocated buffers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::{Config, Pace};
use crate::driver::{ConsumerConn, Delivered, DriverError, OutRecord, ProducerConn};
use crate::hist::{now_ns, Counters, LocalRecorder, Metric, Shared};
use crate::rng::{key_bytes, KeyChooser, Pcg32};
use crate::verify::{LedgerSink, ProducerLedger, Stamp};

/// The run's time line, in nanoseconds since the Unix epoch (see [`now_ns`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub start_ns: u64,
    pub measure_start_ns: u64,
    pub measure_end_ns: u64,
}

impl Schedule {
    pub fn new(start_ns: u64, warmup_ms: u64, duration_ms: u64) -> Self {
        let measure_start_ns = start_ns + warmup_ms * 1_000_000;
        Schedule {
            start_ns,
            measure_start_ns,
            measure_end_ns: measure_start_ns + duration_ms * 1_000_000,
        }
    }

    pub fn measures(&self, ts_ns: u64) -> bool {
        (self.measure_start_ns..self.measure_end_ns).contains(&ts_ns)
    }
}

/// How long producers wait for the last acknowledgements after the measured window.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Open loop: how long after the window producers keep working off a backlog of scheduled sends.
const BACKLOG_LIMIT_NS: u64 = 10_000_000_000;
/// The longest single wait for an acknowledgement while the window is full.
const ACK_WAIT: Duration = Duration::from_millis(200);
/// Open loop: sleep (rather than spin) when the next send is further away than this.
const SPIN_BELOW_NS: u64 = 200_000;

struct InFlight {
    intended_ns: u64,
    records: u32,
    bytes: u64,
    /// First sequence number of the batch (stamped runs).
    first_seq: u64,
}

/// The per-thread part of a producer's plan.
pub struct ProducerSpec<'a> {
    pub index: u32,
    pub config: &'a Config,
    pub schedule: Schedule,
    pub shared: &'a Shared,
    /// Stamped runs (`config.stamp_sequences`) leave the producer's ledger here.
    pub ledgers: &'a LedgerSink,
}

/// Runs one producer until the measured window ends and its acknowledgements are in.
pub fn run_producer(
    conn: &mut dyn ProducerConn,
    spec: &ProducerSpec<'_>,
) -> Result<(), DriverError> {
    let config = spec.config;
    let counters = &spec.shared.counters;
    let batch = config.batch as usize;
    let mut rng = Pcg32::new(config.seed, 2 * u64::from(spec.index) + 1);
    let mut keys = KeyChooser::new(config.keys.clone(), config.partitions, spec.index);
    let mut payload = vec![0u8; config.size.max_bytes() as usize];
    rng.fill(&mut payload);
    let mut key_indexes = vec![0u64; batch];
    let mut key_buffers = vec![[0u8; 21]; batch];
    let mut sizes = vec![0u32; batch];
    let mut in_flight: HashMap<u64, InFlight> = HashMap::with_capacity(2 * config.window as usize);
    // Stamped runs write each record's value into its own buffer: payload plus sequence stamp.
    let mut ledger = config
        .stamp_sequences
        .then(|| ProducerLedger::new(spec.index));
    let stamped_len = if ledger.is_some() { batch } else { 0 };
    let mut stamped = vec![payload.clone(); stamped_len];
    let mut recorder = LocalRecorder::new(Metric::ProduceAck);
    let schedule = spec.schedule;
    let interval_ns = match config.pace {
        Pace::Closed => 0,
        Pace::Open { rate_per_s } => {
            let per_producer = rate_per_s / f64::from(config.producers);
            ((f64::from(config.batch) / per_producer) * 1e9).max(1.0) as u64
        }
    };
    // Producers of an open loop are staggered across one interval so they do not send in bursts.
    let mut next_send_ns = schedule.start_ns
        + interval_ns * u64::from(spec.index) / u64::from(config.producers.max(1));

    let handle_ack = |conn: &mut dyn ProducerConn,
                      timeout: Duration,
                      in_flight: &mut HashMap<u64, InFlight>,
                      recorder: &mut LocalRecorder,
                      ledger: &mut Option<ProducerLedger>|
     -> Result<bool, DriverError> {
        let Some(ack) = conn.recv_ack(timeout)? else {
            return Ok(false);
        };
        let now = now_ns();
        let Some(sent) = in_flight.remove(&ack.token) else {
            return Err(DriverError::Protocol {
                target: "loadgen",
                addr: String::new(),
                reason: format!("acknowledgement for token {} not in flight", ack.token),
            });
        };
        if ack.resends > 0 {
            Counters::add(&counters.batches_resent, u64::from(ack.resends));
            if ack.maybe_twice {
                Counters::add(&counters.batches_maybe_twice, 1);
            }
            if let Some(l) = ledger.as_mut() {
                l.note_resent(sent.first_seq, sent.records, ack.maybe_twice);
            }
        }
        match ack.outcome {
            Ok(()) => {
                Counters::add(&counters.records_acked, u64::from(sent.records));
                Counters::add(&counters.bytes_acked, sent.bytes);
                if schedule.measures(sent.intended_ns) {
                    recorder.record(sent.intended_ns, now, u64::from(sent.records));
                    Counters::add(&counters.measured_records_acked, u64::from(sent.records));
                    Counters::add(&counters.measured_bytes_acked, sent.bytes);
                    Counters::raise_to(&counters.last_measured_ack_ns, now);
                }
            }
            Err(message) => {
                Counters::add(&counters.records_failed, u64::from(sent.records));
                if let Some(l) = ledger.as_mut() {
                    if ack.maybe_twice {
                        // An earlier send of the batch may have been written.
                        l.doubt(sent.first_seq, sent.records);
                    } else {
                        l.refusal(sent.first_seq, sent.records, &message);
                    }
                }
                spec.shared.note_refusal(message);
            }
        }
        Ok(true)
    };

    let outcome = loop {
        let now = now_ns();
        recorder.maybe_publish(spec.shared, now);
        let window_open = in_flight.len() < config.window as usize;
        let intended_ns = match config.pace {
            Pace::Closed if now >= schedule.measure_end_ns => break Ok(()),
            Pace::Closed if window_open => now,
            Pace::Open { .. } if next_send_ns >= schedule.measure_end_ns => break Ok(()),
            Pace::Open { .. } if now >= schedule.measure_end_ns + BACKLOG_LIMIT_NS => {
                // The target fell so far behind the schedule that the backlog is abandoned.
                let behind = (schedule.measure_end_ns - next_send_ns).div_ceil(interval_ns);
                Counters::add(&counters.records_unsent, behind * u64::from(config.batch));
                break Ok(());
            }
            Pace::Open { .. } if window_open && now >= next_send_ns => {
                let intended = next_send_ns;
                next_send_ns += interval_ns;
                intended
            }
            Pace::Open { .. } if window_open && in_flight.is_empty() => {
                let wait_ns = next_send_ns - now;
                if wait_ns > SPIN_BELOW_NS {
                    std::thread::sleep(Duration::from_nanos(wait_ns - SPIN_BELOW_NS / 2));
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            Pace::Open { .. } if window_open => {
                let wait = Duration::from_nanos(next_send_ns - now);
                if let Err(e) = handle_ack(conn, wait, &mut in_flight, &mut recorder, &mut ledger) {
                    break Err(e);
                }
                continue;
            }
            _ => {
                if let Err(e) =
                    handle_ack(conn, ACK_WAIT, &mut in_flight, &mut recorder, &mut ledger)
                {
                    break Err(e);
                }
                continue;
            }
        };
        let partition = keys.choose(&mut rng, &mut key_indexes);
        for size in sizes.iter_mut() {
            *size = config.size.sample(&mut rng);
        }
        let has_keys = keys.has_keys();
        let send_ts_ns = intended_ns;
        let mut bytes = 0u64;
        let first_seq = match ledger.as_mut() {
            Some(l) => {
                let first = l.next_seqs(config.batch);
                for (i, value) in stamped.iter_mut().enumerate() {
                    let stamp = Stamp {
                        producer: spec.index,
                        seq: first + i as u64,
                        partition,
                    };
                    // Sizes are validated to hold a stamp when stamping is on.
                    stamp.write(value);
                }
                first
            }
            None => 0,
        };
        let mut records = Vec::with_capacity(batch);
        for (i, ((key_buf, &key_index), &size)) in key_buffers
            .iter_mut()
            .zip(&key_indexes)
            .zip(&sizes)
            .enumerate()
        {
            bytes += u64::from(size);
            let value = stamped.get(i).map_or(&payload[..], |v| &v[..]);
            records.push(OutRecord {
                key: has_keys.then(|| key_bytes(key_index, key_buf)),
                value: &value[..size as usize],
                send_ts_ns,
            });
        }
        let token = match conn.send(partition, &records) {
            Ok(token) => token,
            Err(e) => {
                // Part of the batch may have reached the server.
                if let Some(l) = ledger.as_mut() {
                    l.doubt(first_seq, config.batch);
                }
                break Err(e);
            }
        };
        Counters::add(&counters.records_sent, u64::from(config.batch));
        match token {
            Some(token) => {
                in_flight.insert(
                    token,
                    InFlight {
                        intended_ns,
                        records: config.batch,
                        bytes,
                        first_seq,
                    },
                );
            }
            None => {
                // No acknowledgement will come: the batch counts as done once written.
                Counters::add(&counters.records_acked, u64::from(config.batch));
                Counters::add(&counters.bytes_acked, bytes);
                if schedule.measures(intended_ns) {
                    Counters::add(&counters.measured_records_acked, u64::from(config.batch));
                    Counters::add(&counters.measured_bytes_acked, bytes);
                    Counters::raise_to(&counters.last_measured_ack_ns, now_ns());
                }
            }
        }
    };

    let drain_deadline = now_ns() + DRAIN_TIMEOUT.as_nanos() as u64;
    let mut result = outcome;
    while result.is_ok() && !in_flight.is_empty() {
        let now = now_ns();
        if now >= drain_deadline {
            break;
        }
        let wait = Duration::from_nanos(drain_deadline - now).min(ACK_WAIT);
        if let Err(e) = handle_ack(conn, wait, &mut in_flight, &mut recorder, &mut ledger) {
            result = Err(e);
        }
    }
    let lost: u64 = in_flight.values().map(|f| u64::from(f.records)).sum();
    Counters::add(&counters.records_failed, lost);
    if let Some(mut l) = ledger {
        let mut unanswered: Vec<(u64, u32)> = in_flight
            .values()
            .map(|f| (f.first_seq, f.records))
            .collect();
        unanswered.sort_unstable();
        for (first, count) in unanswered {
            l.doubt(first, count);
        }
        spec.ledgers.push(l);
    }
    recorder.publish(spec.shared, now_ns());
    result
}

/// Runs one consumer until `stop` is set.
pub fn run_consumer(
    conn: &mut dyn ConsumerConn,
    schedule: Schedule,
    shared: &Shared,
    stop: &AtomicBool,
) -> Result<(), DriverError> {
    let counters = &shared.counters;
    let mut recorder = LocalRecorder::new(Metric::EndToEnd);
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let mut on_record = |d: Delivered| {
            let now = now_ns();
            Counters::add(&counters.records_consumed, 1);
            if schedule.measures(now) {
                Counters::add(&counters.measured_records_consumed, 1);
                Counters::add(&counters.measured_bytes_consumed, d.value_bytes);
            }
            if let Some(ts) = d.send_ts_ns {
                if schedule.measures(ts) {
                    recorder.record(ts, now, 1);
                }
            }
        };
        if let Err(e) = conn.poll(Duration::from_millis(50), &mut on_record) {
            break Err(e);
        }
        recorder.maybe_publish(shared, now_ns());
    };
    recorder.publish(shared, now_ns());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_window_is_half_open() {
        let s = Schedule::new(1_000, 2, 3);
        assert_eq!(s.measure_start_ns, 2_001_000);
        assert_eq!(s.measure_end_ns, 5_001_000);
        assert!(!s.measures(2_000_999));
        assert!(s.measures(2_001_000));
        assert!(!s.measures(5_001_000));
    }
}
