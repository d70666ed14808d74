//! Cold tier throughput next to a plain rust-s3 probe, same S3 server, same run, interleaved.
//!
//! Writes real sealed segments with `storage::PartitionLog` (1 KiB records, incompressible and
//! compressible values), then per repetition and payload measures, alternating which side goes
//! first:
//! - upload: `PartitionTier` (read + verify + zstd + PUT/multipart + manifest) with N uploads in
//!   flight vs rust-s3 `put_object` / `put_multipart` of the raw segment bytes with N workers;
//! - read-through: `RemoteReader::read` over the whole remote log with a cold, then a warm
//!   `ChunkCache`, vs rust-s3 `get_object_range` of the same ranges of the tier's objects and of
//!   the same batches in the probe's uncompressed copies.
//!
//! Every pass records wall time, CPU seconds of this process and of the server process, requests
//! and bytes; the JSON report (`--report`) is summarized by `benches/cold/summarize.py` into
//! `docs/benchmarks/cold-tier.md`. Started by `benches/cold/run.sh`, which also starts the server.
//! It does not start servers itself, retry failed requests, or judge the numbers.

mod counting;
mod cpu;
mod data;
#[cfg(test)]
mod e2e_tests;
mod error;
mod read;
mod sys;
mod upload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use argh::FromArgs;
use s3::creds::Credentials;
use s3::{Bucket, Region};
use serde_json::{json, Value};
use storage::cold::{ObjectStore, S3Config, S3Store, TierConfig, TierPolicy};

use counting::CountingStore;
use data::Payload;
use error::BenchError;
use read::Read;
use upload::{Probe, Upload};

#[derive(FromArgs)]
/// Cold tier upload and read-through throughput next to a plain rust-s3 PUT/GET probe.
struct Args {
    /// S3 endpoint, http://host:port
    #[argh(option)]
    endpoint: String,
    /// signing region
    #[argh(option, default = "String::from(\"eu-west-1\")")]
    region: String,
    /// bucket name prefix (the process id is appended; the bucket is created)
    #[argh(option, default = "String::from(\"sprawl-coldbench\")")]
    bucket: String,
    /// access key
    #[argh(option, default = "String::from(\"coldbench\")")]
    access_key: String,
    /// secret key
    #[argh(option, default = "String::from(\"coldbench-secret\")")]
    secret_key: String,
    /// pid of the S3 server process, for its CPU time
    #[argh(option)]
    server_pid: Option<u32>,
    /// label of the S3 server in the report (e.g. "moto 5.2.1")
    #[argh(option, default = "String::from(\"unnamed\")")]
    server: String,
    /// segment size in MiB
    #[argh(option, default = "16")]
    segment_mib: u64,
    /// sealed segments per payload
    #[argh(option, default = "8")]
    segments: usize,
    /// repetitions
    #[argh(option, default = "3")]
    reps: u32,
    /// uploads in flight to compare, comma separated
    #[argh(option, default = "String::from(\"1,4\")")]
    in_flight: String,
    /// objects at least this big (MiB) go up as multipart, for the tier and the probe
    #[argh(option, default = "8")]
    multipart_threshold_mib: u64,
    /// multipart part size in MiB
    #[argh(option, default = "8")]
    part_mib: u64,
    /// bytes per remote read call (one consumer fetch), KiB
    #[argh(option, default = "1024")]
    fetch_kib: u32,
    /// quiet gate: wait for the 1-minute load average to drop below this
    #[argh(option, default = "1.0")]
    quiet_load: f64,
    /// quiet gate: longest wait in seconds
    #[argh(option, default = "20")]
    quiet_wait_s: u64,
    /// directory for the segment files (a temporary directory inside it is used)
    #[argh(option)]
    work_dir: Option<PathBuf>,
    /// JSON report path
    #[argh(option)]
    report: PathBuf,
    /// the command line that started the run, recorded in the report
    #[argh(option, default = "String::new()")]
    command: String,
}

const MB: f64 = 1e6;

fn mb_per_s(bytes: u64, wall_s: f64) -> f64 {
    bytes as f64 / MB / wall_s
}

fn upload_json(rep: u32, payload: Payload, side: &str, in_flight: u32, u: &Upload) -> Value {
    json!({
        "rep": rep, "payload": payload.name(), "phase": "upload", "side": side,
        "in_flight": in_flight, "wall_s": u.spent.wall_s, "client_cpu_s": u.spent.client_cpu_s,
        "server_cpu_s": u.spent.server_cpu_s, "segments": u.segments, "raw_bytes": u.raw_bytes,
        "wire_bytes": u.wire_bytes, "requests": u.requests,
        "mb_per_s": mb_per_s(u.raw_bytes, u.spent.wall_s),
        "segments_per_s": u.segments as f64 / u.spent.wall_s,
    })
}

fn read_json(rep: u32, payload: Payload, side: &str, r: &Read) -> Value {
    json!({
        "rep": rep, "payload": payload.name(), "phase": "read", "side": side, "in_flight": 1,
        "wall_s": r.spent.wall_s, "client_cpu_s": r.spent.client_cpu_s,
        "server_cpu_s": r.spent.server_cpu_s, "raw_bytes": r.raw_bytes,
        "wire_bytes": r.wire_bytes, "requests": r.requests, "cache_hits": r.cache_hits,
        "cache_misses": r.cache_misses, "mb_per_s": mb_per_s(r.raw_bytes, r.spent.wall_s),
    })
}

fn cpu_json(rep: u32, payload: Payload, side: &str, c: &cpu::CpuPass) -> Value {
    json!({
        "rep": rep, "payload": payload.name(), "phase": "cpu", "side": side, "in_flight": 1,
        "wall_s": c.spent.wall_s, "client_cpu_s": c.spent.client_cpu_s, "server_cpu_s": null,
        "raw_bytes": c.raw_bytes, "object_bytes": c.object_bytes,
        "mb_per_s": mb_per_s(c.raw_bytes, c.spent.wall_s),
    })
}

fn log_sample(v: &Value) {
    eprintln!(
        "  {:<14} {:<6} {:<12} in_flight={} {:>8.1} MB/s  wall {:.2}s  cpu {:.2}s  server cpu {}",
        v["payload"].as_str().unwrap_or(""),
        v["phase"].as_str().unwrap_or(""),
        v["side"].as_str().unwrap_or(""),
        v["in_flight"],
        v["mb_per_s"].as_f64().unwrap_or(f64::NAN),
        v["wall_s"].as_f64().unwrap_or(f64::NAN),
        v["client_cpu_s"].as_f64().unwrap_or(f64::NAN),
        v["server_cpu_s"]
            .as_f64()
            .map_or("n/a".to_string(), |s| format!("{s:.2}s")),
    );
}

fn parse_in_flight(list: &str) -> Result<Vec<u32>, BenchError> {
    let bad = |reason: String| BenchError::Arg {
        flag: "in-flight",
        reason,
    };
    let values: Vec<u32> = list
        .split(',')
        .map(|s| s.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("{list:?}: {e}")))?;
    if values.is_empty() || values.iter().any(|v| !(1..=64).contains(v)) {
        return Err(bad(format!("{list:?}: each value must be within 1..=64")));
    }
    Ok(values)
}

/// The clients: the tier's `S3Store` (counted) and the probe's plain rust-s3 `Bucket`.
fn clients(args: &Args, bucket: &str) -> Result<(Arc<CountingStore>, Probe), BenchError> {
    let config = S3Config::new(
        &args.endpoint,
        &args.region,
        bucket,
        &args.access_key,
        &args.secret_key,
    );
    let store_err = |phase| BenchError::store(phase, "");
    let tier_store = S3Store::new(config.clone()).map_err(store_err("client"))?;
    tier_store
        .create_bucket()
        .map_err(store_err("create bucket"))?;
    let probe_err = |e: s3::error::S3Error| BenchError::Probe {
        op: "client",
        key: String::new(),
        reason: e.to_string(),
    };
    let creds = Credentials::new(
        Some(&args.access_key),
        Some(&args.secret_key),
        None,
        None,
        None,
    )
    .map_err(|e| probe_err(e.into()))?;
    let region = Region::Custom {
        region: args.region.clone(),
        endpoint: config.endpoint.clone(),
    };
    let plain = Bucket::new(bucket, region, creds)
        .map_err(probe_err)?
        .with_path_style()
        .with_request_timeout(Duration::from_millis(config.request_timeout_ms))
        .map_err(probe_err)?;
    let probe = Probe {
        bucket: plain,
        store: S3Store::new(config).map_err(store_err("client"))?,
    };
    Ok((Arc::new(CountingStore::new(tier_store)), probe))
}

/// Deletes every object under `prefix` (untimed, keeps the server's memory flat).
fn clean(store: &S3Store, prefix: &str) -> Result<(), BenchError> {
    for o in store
        .list(prefix, 100_000)
        .map_err(BenchError::store("cleanup list", prefix))?
    {
        store
            .delete(&o.key)
            .map_err(BenchError::store("cleanup delete", &o.key))?;
    }
    Ok(())
}

fn run(args: &Args) -> Result<Value, BenchError> {
    let in_flight = parse_in_flight(&args.in_flight)?;
    if args.segments == 0 || args.segment_mib == 0 || args.reps == 0 || args.fetch_kib == 0 {
        return Err(BenchError::Arg {
            flag: "segments/segment-mib/reps/fetch-kib",
            reason: "must be > 0".into(),
        });
    }
    let bucket = format!("{}-{}", args.bucket, std::process::id());
    let (store, probe) = clients(args, &bucket)?;
    let pid = args.server_pid;
    let base = args.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("coldbench-")
        .tempdir_in(&base)
        .map_err(BenchError::io("create work dir in", &base))?;
    let machine_before = sys::machine_facts();
    let multipart = (args.multipart_threshold_mib << 20, args.part_mib << 20);

    let mut logs = Vec::new();
    for p in Payload::ALL {
        let dir = work.path().join(p.name());
        std::fs::create_dir_all(&dir).map_err(BenchError::io("create", &dir))?;
        let (log, segs) = data::write_segments(&dir, p, args.segment_mib << 20, args.segments)?;
        eprintln!(
            "{}: {} sealed segments, {} raw bytes",
            p.name(),
            segs.len(),
            upload::segment_bytes(&segs)
        );
        logs.push((p, log, segs));
    }

    let mut samples = Vec::new();
    let mut reps = Vec::new();
    for rep in 1..=args.reps {
        let (load, waited_s) =
            sys::quiet_gate(args.quiet_load, Duration::from_secs(args.quiet_wait_s));
        let psi_cpu = sys::pressure_some_avg10("cpu");
        let psi_io = sys::pressure_some_avg10("io");
        eprintln!(
            "rep {rep}: load1 {load:.2} (waited {waited_s:.0}s), psi cpu {psi_cpu} io {psi_io}"
        );
        reps.push(json!({"rep": rep, "load1": load, "waited_s": waited_s,
                         "psi_cpu_some_avg10": psi_cpu, "psi_io_some_avg10": psi_io}));
        let tier_first = rep % 2 == 1;
        for (p, _log, segs) in &logs {
            let root = format!("r{rep}/{}", p.name());
            let mut last_tier = None;
            let mut last_probe_prefix = String::new();
            for &n in &in_flight {
                let tier_prefix = format!("{root}/tier-c{n}");
                let probe_prefix = format!("{root}/probe-c{n}");
                for side in if tier_first { [0, 1] } else { [1, 0] } {
                    let sample = if side == 0 {
                        let config = TierConfig {
                            policy: TierPolicy {
                                tier_after_ms: Some(0),
                                ..TierPolicy::default()
                            },
                            multipart_threshold_bytes: multipart.0,
                            multipart_part_bytes: multipart.1,
                            uploads_in_flight_max: n,
                            ..TierConfig::new(&tier_prefix)
                        };
                        let (tier, u) = upload::tier_upload(&store, config, segs, pid)?;
                        last_tier = Some((tier, tier_prefix.clone()));
                        upload_json(rep, *p, "tier", n, &u)
                    } else {
                        let u = upload::probe_upload(
                            &probe,
                            &probe_prefix,
                            segs,
                            n as usize,
                            multipart,
                            pid,
                        )?;
                        last_probe_prefix = probe_prefix.clone();
                        upload_json(rep, *p, "probe", n, &u)
                    };
                    log_sample(&sample);
                    samples.push(sample);
                }
            }
            // The same work without the network: is the tier CPU-bound?
            let (built, objects) = cpu::build_all(segs, &TierConfig::new("cpu-only"))?;
            let sample = cpu_json(rep, *p, "build_object", &built);
            log_sample(&sample);
            samples.push(sample);
            let Some((tier, tier_prefix)) = last_tier else {
                return Err(BenchError::Arg {
                    flag: "in-flight",
                    reason: "no tier upload ran".into(),
                });
            };
            let manifest = tier.manifest().clone();
            let object_bytes = manifest.remote_object_bytes();
            let ranges = read::ranges(&store, &manifest, &tier_prefix, |b| {
                format!("{last_probe_prefix}/{b:020}.seg")
            })?;
            let (reader, cache) = read::fresh_reader(&tier, ranges.raw_bytes + (64 << 20));
            let fetch = args.fetch_kib.saturating_mul(1024);
            let tier_pass = |side: &str| -> Result<Value, BenchError> {
                let r = read::tier_read(&reader, &cache, &store, fetch, pid)?;
                BenchError::check("bytes read through the tier", ranges.raw_bytes, r.raw_bytes)?;
                Ok(read_json(rep, *p, side, &r))
            };
            let probe_pass = |side: &str, rs: &[read::Range]| -> Result<Value, BenchError> {
                let r = read::probe_read(&probe.bucket, rs, ranges.raw_bytes, pid)?;
                Ok(read_json(rep, *p, side, &r))
            };
            let mut reads = Vec::new();
            if tier_first {
                reads.push(tier_pass("tier_cold")?);
                reads.push(tier_pass("tier_warm")?);
                reads.push(probe_pass("probe_ranges", &ranges.tier_objects)?);
                reads.push(probe_pass("probe_raw", &ranges.raw_copies)?);
            } else {
                reads.push(probe_pass("probe_ranges", &ranges.tier_objects)?);
                reads.push(probe_pass("probe_raw", &ranges.raw_copies)?);
                reads.push(tier_pass("tier_cold")?);
                reads.push(tier_pass("tier_warm")?);
            }
            let data_bytes = segs.iter().map(|s| s.data_bytes).sum();
            reads.push(cpu_json(
                rep,
                *p,
                "decode_chunks",
                &cpu::decode_all(&objects, data_bytes)?,
            ));
            drop(objects);
            for mut r in reads {
                if r.get("object_bytes").is_none() {
                    r["object_bytes"] = json!(object_bytes);
                }
                log_sample(&r);
                samples.push(r);
            }
            drop(cache);
            clean(&probe.store, &root)?;
        }
    }
    let payloads: Vec<Value> = logs
        .iter()
        .map(|(p, _, segs)| {
            json!({"payload": p.name(), "segments": segs.len(),
                   "raw_bytes": upload::segment_bytes(segs)})
        })
        .collect();
    Ok(json!({
        "benchmark": "cold-tier",
        "command": args.command,
        "server": args.server,
        "endpoint": args.endpoint,
        "config": {
            "segment_bytes_max": args.segment_mib << 20, "segments": args.segments,
            "reps": args.reps, "in_flight": in_flight, "record_value_bytes": data::RECORD_VALUE_BYTES,
            "records_per_batch": data::RECORDS_PER_BATCH,
            "multipart_threshold_bytes": multipart.0, "multipart_part_bytes": multipart.1,
            "fetch_max_bytes": args.fetch_kib.saturating_mul(1024),
            "chunk_raw_bytes": TierConfig::new("x").chunk_raw_bytes,
            "zstd_level": TierConfig::new("x").zstd_level,
        },
        "payloads": payloads,
        "machine_before": machine_before,
        "machine_after": sys::machine_facts(),
        "reps": reps,
        "samples": samples,
    }))
}

fn main() -> std::process::ExitCode {
    let args: Args = argh::from_env();
    match run(&args) {
        Ok(report) => {
            let text = serde_json::to_string_pretty(&report).unwrap_or_default();
            match std::fs::write(&args.report, text + "\n") {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cold_tier: writing {}: {e}", args.report.display());
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("cold_tier: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
