//! Command-line flags and their validated form.

use std::path::PathBuf;

use argh::FromArgs;

use crate::rng::{KeyDist, SizeDist};

/// Which system is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    Sprawl,
    Redis,
    Nats,
    Kafka,
    /// A Sprawl node through its HTTP REST API (for HTTP vs native comparisons).
    Http,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Sprawl => "sprawl",
            TargetKind::Redis => "redis",
            TargetKind::Nats => "nats",
            TargetKind::Kafka => "kafka",
            TargetKind::Http => "http",
        }
    }

    pub fn default_broker(self) -> &'static str {
        match self {
            TargetKind::Sprawl => "127.0.0.1:7070",
            TargetKind::Redis => "127.0.0.1:6379",
            TargetKind::Nats => "127.0.0.1:4222",
            TargetKind::Kafka => "127.0.0.1:9092",
            TargetKind::Http => "127.0.0.1:8080",
        }
    }
}

/// When a produce is acknowledged (mapped per target, see docs/loadgen.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckLevel {
    None,
    Leader,
    All,
}

impl AckLevel {
    pub fn name(self) -> &'static str {
        match self {
            AckLevel::None => "none",
            AckLevel::Leader => "leader",
            AckLevel::All => "all",
        }
    }
}

/// Where consumers start reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumeFrom {
    /// Only records produced after the consumer started (end-to-end latency).
    Latest,
    /// From the start of the log (replay throughput).
    Earliest,
}

/// How sends are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Keep `window` batches in flight per producer; latency from the actual send time.
    Closed,
    /// `rate_per_s` records per second over all producers; latency from the scheduled send time.
    Open { rate_per_s: f64 },
}

#[derive(FromArgs, Debug, Clone, PartialEq)]
/// Sprawl load generator: drives Sprawl (or Redis Streams, NATS JetStream, Kafka) with producers and
/// consumers, records produce->ack and end-to-end latency in HDR histograms, prints a table and
/// writes JSON reports, HDR interval logs and SVG plots.
pub struct Args {
    /// system to drive: sprawl, redis, nats or kafka (default sprawl)
    #[argh(option, default = "String::from(\"sprawl\")")]
    pub target: String,
    /// HOST:PORT of the target (default: the target's usual local port)
    #[argh(option)]
    pub broker: Option<String>,
    /// topic (Redis: stream-name prefix, NATS: stream and subject prefix) (default loadgen)
    #[argh(option, default = "String::from(\"loadgen\")")]
    pub topic: String,
    /// partitions to spread batches over (default 1)
    #[argh(option, default = "1")]
    pub partitions: u32,
    /// create the topic first (an existing topic is an error on Sprawl)
    #[argh(switch)]
    pub create_topic: bool,
    /// copies of each partition when --create-topic makes a Sprawl topic (default: the server's, 1)
    #[argh(option)]
    pub replication_factor: Option<u16>,
    /// in-sync copies an acks=all produce needs, for --create-topic on Sprawl (default: the
    /// server's, min(2, replication factor))
    #[argh(option)]
    pub min_insync: Option<u16>,
    /// producer connections, one thread each (default 1)
    #[argh(option, default = "1")]
    pub producers: u32,
    /// consumer connections, one thread each; partitions are split between them (default 0)
    #[argh(option, default = "0")]
    pub consumers: u32,
    /// where consumers start: latest or earliest (default latest)
    #[argh(option, default = "String::from(\"latest\")")]
    pub consume_from: String,
    /// record keys: none, uniform or zipf (default none)
    #[argh(option, default = "String::from(\"none\")")]
    pub keys: String,
    /// number of distinct keys (default 1000)
    #[argh(option, default = "1000")]
    pub key_space: u64,
    /// exponent of --keys zipf (default 1.0)
    #[argh(option, default = "1.0")]
    pub zipf_s: f64,
    /// record value size in bytes (default 1024)
    #[argh(option, default = "1024")]
    pub size: u32,
    /// value size distribution instead of --size: uniform:MIN:MAX
    #[argh(option)]
    pub size_dist: Option<String>,
    /// produce batches in flight per producer (closed loop; also the cap in open loop) (default 64)
    #[argh(option, default = "64")]
    pub window: u32,
    /// open loop: records per second over all producers, latency corrected for coordinated omission
    #[argh(option)]
    pub rate: Option<f64>,
    /// records per produce request (default 1)
    #[argh(option, default = "1")]
    pub batch: u32,
    /// seconds run before measuring (default 1)
    #[argh(option, default = "1.0")]
    pub warmup_secs: f64,
    /// seconds measured (default 10; 5 with --spawn)
    #[argh(option)]
    pub duration_secs: Option<f64>,
    /// acknowledgement level: none, leader or all (default leader)
    #[argh(option, default = "String::from(\"leader\")")]
    pub acks: String,
    /// seed of every random choice (default 1)
    #[argh(option, default = "1")]
    pub seed: u64,
    /// wait for replies by spinning on the socket (non-blocking reads in a loop) instead of
    /// sleeping in read(): takes the client's wake-up (~55 us here) out of latency measurements,
    /// at the price of a busy core; applies to every target alike
    #[argh(switch)]
    pub busy_poll: bool,
    /// write a JSON report (configuration, machine, versions, results) to this file
    #[argh(option)]
    pub report: Option<PathBuf>,
    /// write an HDR histogram interval log (one interval per second) to this file
    #[argh(option)]
    pub hdr_log: Option<PathBuf>,
    /// write SVG plots (percentile spectrum, latency over time) into this directory
    #[argh(option)]
    pub plot_dir: Option<PathBuf>,
    /// start a local `sprawl serve` in a temporary directory, create the topic, drive it, stop it
    #[argh(switch)]
    pub spawn: bool,
    /// sprawl binary for --spawn (default: `sprawl` next to this executable)
    #[argh(option)]
    pub sprawl_bin: Option<PathBuf>,
    /// server process to account CPU time and RSS for (default: the --spawn node)
    #[argh(option)]
    pub server_pid: Option<u32>,
    /// shards of the node started by --spawn (default 1)
    #[argh(option, default = "1")]
    pub spawn_shards: u32,
    /// stamp every record with its producer and sequence number and, after the run, read the
    /// topic back and check it: no lost, duplicated or reordered record (result in the report)
    #[argh(switch)]
    pub verify: bool,
    /// stamp records (as --verify) and write the producers' ledger to this file after the run
    #[argh(option)]
    pub seq_ledger: Option<PathBuf>,
    /// produce nothing: check --topic on --broker against this ledger (from --seq-ledger)
    #[argh(option)]
    pub verify_ledger: Option<PathBuf>,
}

/// The validated configuration of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub target: TargetKind,
    pub broker: String,
    pub topic: String,
    pub partitions: u32,
    pub create_topic: bool,
    /// Topic creation on Sprawl: replication factor and min-insync (`None` = server default).
    pub replication_factor: Option<u16>,
    pub min_insync: Option<u16>,
    pub producers: u32,
    pub consumers: u32,
    pub consume_from: ConsumeFrom,
    pub keys: KeyDist,
    pub size: SizeDist,
    pub window: u32,
    pub pace: Pace,
    pub batch: u32,
    pub warmup_ms: u64,
    pub duration_ms: u64,
    pub acks: AckLevel,
    pub seed: u64,
    /// Records carry a sequence stamp (`--verify`, `--seq-ledger`); see [`crate::verify`].
    pub stamp_sequences: bool,
    /// Replies are awaited by spinning (`--busy-poll`, [`crate::driver::conn::set_busy_poll`]).
    pub busy_poll: bool,
}

/// A flag value that makes no sense.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid --{flag} {value:?}: {reason}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Upper bounds that keep one run's memory bounded.
pub const PRODUCERS_MAX: u32 = 1_024;
pub const WINDOW_MAX: u32 = 65_536;
pub const BATCH_MAX: u32 = 100_000;
pub const VALUE_BYTES_MAX: u32 = 4 * 1024 * 1024;
pub const PARTITIONS_MAX: u32 = 65_536;

fn bad(flag: &'static str, value: impl ToString, reason: &'static str) -> ConfigError {
    ConfigError {
        flag,
        value: value.to_string(),
        reason,
    }
}

fn seconds_to_ms(flag: &'static str, secs: f64) -> Result<u64, ConfigError> {
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(bad(flag, secs, "must be between 0 and 86400 seconds"));
    }
    Ok((secs * 1000.0).round() as u64)
}

impl Args {
    /// Checks every flag and resolves defaults. `--spawn` changes the default duration to 5 s.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let target = match self.target.as_str() {
            "sprawl" => TargetKind::Sprawl,
            "redis" => TargetKind::Redis,
            "nats" => TargetKind::Nats,
            "kafka" => TargetKind::Kafka,
            "http" => TargetKind::Http,
            other => {
                return Err(bad(
                    "target",
                    other,
                    "expected sprawl, http, redis, nats or kafka",
                ))
            }
        };
        if self.spawn && !matches!(target, TargetKind::Sprawl | TargetKind::Http) {
            return Err(bad(
                "target",
                &self.target,
                "--spawn starts a Sprawl node only",
            ));
        }
        if !(1..=PARTITIONS_MAX).contains(&self.partitions) {
            return Err(bad("partitions", self.partitions, "must be 1..=65536"));
        }
        if self.producers > PRODUCERS_MAX || self.consumers > PRODUCERS_MAX {
            return Err(bad(
                "producers",
                self.producers,
                "at most 1024 producers and consumers",
            ));
        }
        if self.producers == 0 && self.consumers == 0 {
            return Err(bad(
                "producers",
                0,
                "nothing to do without producers or consumers",
            ));
        }
        let consume_from = match self.consume_from.as_str() {
            "latest" => ConsumeFrom::Latest,
            "earliest" => ConsumeFrom::Earliest,
            other => return Err(bad("consume-from", other, "expected latest or earliest")),
        };
        if !(1..=u64::from(u32::MAX)).contains(&self.key_space) {
            return Err(bad("key-space", self.key_space, "must be 1..=4294967295"));
        }
        let keys = match self.keys.as_str() {
            "none" => KeyDist::None,
            "uniform" => KeyDist::Uniform {
                key_space: self.key_space,
            },
            "zipf" => {
                if !(self.zipf_s > 0.0 && self.zipf_s <= 10.0) {
                    return Err(bad("zipf-s", self.zipf_s, "must be in (0, 10]"));
                }
                KeyDist::Zipf {
                    key_space: self.key_space,
                    s: self.zipf_s,
                }
            }
            other => return Err(bad("keys", other, "expected none, uniform or zipf")),
        };
        if keys != KeyDist::None && self.key_space < u64::from(self.partitions) {
            return Err(bad(
                "key-space",
                self.key_space,
                "needs at least one key per partition",
            ));
        }
        let size = match &self.size_dist {
            None => SizeDist::Fixed { bytes: self.size },
            Some(spec) => parse_size_dist(spec)?,
        };
        if size.max_bytes() > VALUE_BYTES_MAX {
            return Err(bad("size", size.max_bytes(), "values are limited to 4 MiB"));
        }
        if !(1..=WINDOW_MAX).contains(&self.window) {
            return Err(bad("window", self.window, "must be 1..=65536"));
        }
        if !(1..=BATCH_MAX).contains(&self.batch) {
            return Err(bad("batch", self.batch, "must be 1..=100000"));
        }
        let pace = match self.rate {
            None => Pace::Closed,
            Some(rate) if rate > 0.0 && rate.is_finite() => Pace::Open { rate_per_s: rate },
            Some(rate) => return Err(bad("rate", rate, "must be a positive number")),
        };
        let acks = match self.acks.as_str() {
            "none" => AckLevel::None,
            "leader" => AckLevel::Leader,
            "all" => AckLevel::All,
            other => return Err(bad("acks", other, "expected none, leader or all")),
        };
        let default_duration_secs = if self.spawn { 5.0 } else { 10.0 };
        let duration_ms = seconds_to_ms(
            "duration-secs",
            self.duration_secs.unwrap_or(default_duration_secs),
        )?;
        if duration_ms == 0 {
            return Err(bad("duration-secs", 0, "must be above zero"));
        }
        if self.topic.is_empty() || self.topic.len() > 200 {
            return Err(bad("topic", &self.topic, "must be 1..=200 bytes"));
        }
        if self.replication_factor.is_some() || self.min_insync.is_some() {
            if !matches!(target, TargetKind::Sprawl | TargetKind::Http) {
                return Err(bad(
                    "replication-factor",
                    target.name(),
                    "--replication-factor and --min-insync apply to Sprawl topics",
                ));
            }
            if self.replication_factor == Some(0) {
                return Err(bad("replication-factor", 0, "must be at least 1"));
            }
            if self.min_insync == Some(0) {
                return Err(bad("min-insync", 0, "must be at least 1"));
            }
            if let (Some(rf), Some(min)) = (self.replication_factor, self.min_insync) {
                if min > rf {
                    return Err(bad(
                        "min-insync",
                        min,
                        "must not exceed --replication-factor",
                    ));
                }
            }
        }
        let stamp_sequences = self.verify || self.seq_ledger.is_some();
        if stamp_sequences {
            let smallest = match size {
                SizeDist::Fixed { bytes } => bytes,
                SizeDist::Uniform { min_bytes, .. } => min_bytes,
            };
            if (smallest as usize) < crate::verify::STAMP_BYTES {
                return Err(bad(
                    "size",
                    smallest,
                    "--verify and --seq-ledger need values of at least 20 bytes",
                ));
            }
            if acks == AckLevel::None || !matches!(target, TargetKind::Sprawl) {
                return Err(bad(
                    "verify",
                    target.name(),
                    "--verify and --seq-ledger need --target sprawl with acknowledgements",
                ));
            }
        }
        Ok(Config {
            target,
            broker: self
                .broker
                .clone()
                .unwrap_or_else(|| target.default_broker().to_owned()),
            topic: self.topic.clone(),
            partitions: self.partitions,
            create_topic: self.create_topic || self.spawn,
            replication_factor: self.replication_factor,
            min_insync: self.min_insync,
            producers: self.producers,
            consumers: self.consumers,
            consume_from,
            keys,
            size,
            window: self.window,
            pace,
            batch: self.batch,
            warmup_ms: seconds_to_ms("warmup-secs", self.warmup_secs)?,
            duration_ms,
            acks,
            seed: self.seed,
            stamp_sequences,
            busy_poll: self.busy_poll,
        })
    }
}

fn parse_size_dist(spec: &str) -> Result<SizeDist, ConfigError> {
    let mut parts = spec.split(':');
    let (Some("uniform"), Some(min), Some(max), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("size-dist", spec, "expected uniform:MIN:MAX"));
    };
    let (Ok(min_bytes), Ok(max_bytes)) = (min.parse::<u32>(), max.parse::<u32>()) else {
        return Err(bad("size-dist", spec, "MIN and MAX must be byte counts"));
    };
    if min_bytes > max_bytes {
        return Err(bad("size-dist", spec, "MIN must not exceed MAX"));
    }
    Ok(SizeDist::Uniform {
        min_bytes,
        max_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Result<Config, String> {
        let a = Args::from_args(&["loadgen"], line).map_err(|e| e.output)?;
        a.to_config().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = args(&[]).unwrap();
        assert_eq!(c.target, TargetKind::Sprawl);
        assert_eq!(c.broker, "127.0.0.1:7070");
        assert_eq!(c.pace, Pace::Closed);
        assert_eq!(c.size, SizeDist::Fixed { bytes: 1024 });
        assert_eq!(c.duration_ms, 10_000);
        assert_eq!(c.acks, AckLevel::Leader);
        assert_eq!((c.replication_factor, c.min_insync), (None, None));
        let replicated = args(&["--replication-factor", "3", "--min-insync", "2"]).unwrap();
        assert_eq!(
            (replicated.replication_factor, replicated.min_insync),
            (Some(3), Some(2))
        );
        let spawn = args(&["--spawn"]).unwrap();
        assert_eq!(spawn.duration_ms, 5_000);
        assert!(spawn.create_topic);
    }

    #[test]
    fn parses_distributions_and_open_loop() {
        let c = args(&[
            "--target",
            "redis",
            "--keys",
            "zipf",
            "--zipf-s",
            "1.2",
            "--key-space",
            "50",
            "--size-dist",
            "uniform:10:200",
            "--rate",
            "5000",
            "--acks",
            "all",
            "--warmup-secs",
            "0.5",
            "--duration-secs",
            "2",
        ])
        .unwrap();
        assert_eq!(c.broker, "127.0.0.1:6379");
        assert_eq!(
            c.keys,
            KeyDist::Zipf {
                key_space: 50,
                s: 1.2
            }
        );
        assert_eq!(
            c.size,
            SizeDist::Uniform {
                min_bytes: 10,
                max_bytes: 200
            }
        );
        assert_eq!(c.pace, Pace::Open { rate_per_s: 5000.0 });
        assert_eq!((c.warmup_ms, c.duration_ms), (500, 2_000));
    }

    #[test]
    fn verify_needs_room_for_a_stamp_and_acknowledgements() {
        assert!(!args(&[]).unwrap().stamp_sequences);
        assert!(args(&["--verify"]).unwrap().stamp_sequences);
        assert!(args(&["--seq-ledger", "l.json"]).unwrap().stamp_sequences);
        assert!(args(&["--verify", "--size", "19"]).is_err());
        assert!(args(&["--verify", "--size-dist", "uniform:8:64"]).is_err());
        assert!(args(&["--verify", "--acks", "none"]).is_err());
        assert!(args(&["--verify", "--target", "redis"]).is_err());
    }

    #[test]
    fn rejects_nonsense() {
        for bad_line in [
            &["--target", "kafkaa"][..],
            &["--size-dist", "uniform:9:3"],
            &["--size-dist", "normal:1:2"],
            &["--rate", "0"],
            &["--window", "0"],
            &["--keys", "zipf", "--key-space", "2", "--partitions", "4"],
            &["--producers", "0"],
            &["--duration-secs", "0"],
            &["--spawn", "--target", "nats"],
            &["--replication-factor", "0"],
            &["--replication-factor", "2", "--min-insync", "3"],
            &["--target", "redis", "--replication-factor", "3"],
        ] {
            assert!(args(bad_line).is_err(), "{bad_line:?} accepted");
        }
    }
}
