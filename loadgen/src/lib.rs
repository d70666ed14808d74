//! `loadgen`: the Sprawl load generator, as a library behind the `loadgen` binary.
//!
//! Producers (one blocking thread and connection each) send batches closed-loop (`--window`
//! batches in flight) or open-loop (`--rate` records per second, latency measured from the
//! *scheduled* send time, which corrects for coordinated omission). Consumers read the same
//! topic and measure end-to-end latency from a send timestamp carried in every record. Latency
//! goes into HDR histograms in microseconds; a collector thread turns them into a live progress
//! line, an HDR interval log, a JSON report and SVG plots. The same generator drives Sprawl and
//! its peers (Redis Streams, NATS JetStream, Kafka) through the small traits in [`driver`].
//!
//! Against a Sprawl cluster, `--broker` is any one node: producers send each partition's batches
//! to its leader (Metadata v1) over one socket per leader, and resend a batch answered
//! `NOT_LEADER` / `NOT_ENOUGH_REPLICAS` or stranded by a broken connection (counted as resends in
//! the report; without an idempotent producer identity such a resend can store a batch twice,
//! which `--verify` tells apart); consumers and the checker read each partition from its leader.
//!
//! What it deliberately does not do: retry batches refused for any other reason (a failure is
//! counted, not hidden), reconnect to peers other than Sprawl, coordinate several loadgen
//! processes, or depend on any workspace crate but `net`.
//!
//! ```
//! use loadgen::hist::{new_histogram, record_latency, LatencySummary};
//! use loadgen::rng::{Pcg32, Zipf};
//!
//! // Open loop: a send scheduled at t = 1 ms that went out late and was acknowledged at
//! // t = 3.5 ms counts 2.5 ms, however late it was actually sent.
//! let mut hist = new_histogram();
//! record_latency(&mut hist, 1_000_000, 3_500_000, 1);
//! assert!(hist.equivalent(LatencySummary::of(&hist).max_us, 2_500));
//!
//! // Deterministic key skew from a seed.
//! let zipf = Zipf::new(1_000, 1.0);
//! let (mut a, mut b) = (Pcg32::new(7, 0), Pcg32::new(7, 0));
//! assert_eq!(zipf.sample(&mut a), zipf.sample(&mut b));
//! ```

pub mod checker;
pub mod cli;
pub mod config;
pub mod driver;
pub mod hist;
pub mod plot;
pub mod procstat;
pub mod report;
pub mod rng;
pub mod run;
pub mod spawn;
pub mod verify;
pub mod verify_cli;
pub mod workers;
