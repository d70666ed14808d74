//! Node configuration: defaults, overridden by an optional TOML file, overridden by `SPRAWL_*`
//! environment variables, overridden by command-line flags.
//!
//! Every value is validated here, once, with an error that names the setting and says what to do,
//! so the runtime never starts half-configured.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod cluster;
mod cold;
pub use cluster::{ClusterConfig, DEFAULT_GOSSIP_PORT};
pub use cold::{ColdConfig, ColdOverrides, DEFAULT_S3_REGION};

/// Default client (binary protocol) port.
pub const DEFAULT_PORT: u16 = 7070;
/// Default HTTP stats port.
pub const DEFAULT_HTTP_PORT: u16 = 8080;
/// Default of [`ServeConfig::spin_read_us`].
pub const DEFAULT_SPIN_READ_US: u64 = 50;
/// Largest accepted [`ServeConfig::spin_read_us`].
pub const SPIN_READ_US_MAX: u64 = 100_000;

/// A configuration error: which setting, where it came from, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value could not be parsed or is out of range.
    #[error("invalid {setting} {value:?} (from {source_name}): {reason}")]
    Invalid {
        setting: &'static str,
        value: String,
        source_name: String,
        reason: String,
    },
    /// The TOML file could not be read or parsed.
    #[error("cannot use config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// The fully resolved configuration of one `sprawl serve` process.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Where topics, the catalog and `ports.json` live.
    pub data_dir: PathBuf,
    /// Address the listeners bind to.
    pub bind: IpAddr,
    /// Client port; 0 picks a free one.
    pub port: u16,
    /// HTTP stats port; 0 picks a free one.
    pub http_port: u16,
    /// Number of shards (one pinned reactor each).
    pub shards: usize,
    /// This node's id (reported in metadata).
    pub node_id: u32,
    /// How long an idle reactor spins before parking, in microseconds (0 = park at once); `None`
    /// = [`ServeConfig::effective_spin_before_park_us`] decides from the shard count.
    pub spin_before_park_us: Option<u64>,
    /// How long a shard whose only connection has nothing in flight spins on that socket for the
    /// next request before parking, in microseconds (0 = never; see [`crate::spin_read`]).
    pub spin_read_us: u64,
    /// Background fdatasync interval for data not already synced for `acks=all`.
    pub flush_interval_ms: u64,
    /// Largest accepted frame after the handshake.
    pub frame_bytes_max: u32,
    /// Requests one connection may have in flight before the server stops reading it.
    pub conn_inflight_max: u32,
    /// Request bytes one shard may hold in flight (all connections) before it stops reading.
    pub shard_inflight_bytes_max: u64,
    /// Default segment size for topics that do not set one.
    pub segment_bytes_default: u64,
    /// Memory all partitions' hot rings may use together (shrunk under host memory pressure).
    pub ring_memory_bytes_max: u64,
    /// How long a frame's body may take to arrive after its length prefix; then the connection is
    /// closed and its budget returned.
    pub frame_read_timeout_ms: u64,
    /// An HTTP connection that moves no byte for this long is closed (slow-loris guard).
    pub http_idle_timeout_ms: u64,
    /// Client connections one shard serves at once; beyond it a new connection's first request
    /// is answered THROTTLED with a retry-after (hard overload) and the connection closed.
    pub connections_per_shard_max: usize,
    /// What the analytics shard may do: off, advise (compute and show) or act (move partitions).
    pub analytics: crate::analytics_shard::Mode,
    /// Messages per second one shard is taken to handle, for the analytics shard's balance and
    /// scale-out decisions. Set it from a `loadgen` run on your hardware.
    pub analytics_shard_capacity_msgs_per_s: f64,
    /// Messages per second above which one partition counts as hot.
    pub analytics_partition_capacity_msgs_per_s: f64,
    /// Length of the hot-key window, seconds (keys are reported per completed window).
    pub analytics_key_window_s: u64,
    /// Gossip seeds, gossip port and advertised host; `enabled` when any was given.
    pub cluster: ClusterConfig,
    /// The object store of the cold tier; disabled without `--s3-endpoint`.
    pub cold: ColdConfig,
}

impl ServeConfig {
    /// How long an idle reactor spins before parking: the configured value, else 0 with one shard
    /// and 50 us with more. Spinning pays off only for cross-shard traffic, which glommio's spin
    /// loop polls in memory (a parked shard needs an eventfd wake-up); network completions do not
    /// arrive faster while it spins: one shard, `loadgen --window 1 --busy-poll`, 1 KiB, pinned,
    /// p50 16 us parked at once against 37 us spinning 50 or 1000 us (three rounds each,
    /// `docs/decisions.md`).
    pub fn effective_spin_before_park_us(&self) -> u64 {
        match self.spin_before_park_us {
            Some(us) => us,
            None if self.shards <= 1 => 0,
            None => 50,
        }
    }

    /// The defaults a new user gets with a bare `sprawl serve`.
    pub fn defaults() -> Self {
        ServeConfig {
            data_dir: PathBuf::from("sprawl-data"),
            bind: IpAddr::from([127, 0, 0, 1]),
            port: DEFAULT_PORT,
            http_port: DEFAULT_HTTP_PORT,
            shards: available_cores(),
            node_id: 0,
            spin_before_park_us: None,
            spin_read_us: DEFAULT_SPIN_READ_US,
            flush_interval_ms: 1000,
            frame_bytes_max: 8 << 20,
            conn_inflight_max: 256,
            shard_inflight_bytes_max: 256 << 20,
            segment_bytes_default: 64 << 20,
            ring_memory_bytes_max: 256 << 20,
            frame_read_timeout_ms: 30_000,
            connections_per_shard_max: 10_000,
            http_idle_timeout_ms: 60_000,
            analytics: crate::analytics_shard::Mode::Act,
            analytics_shard_capacity_msgs_per_s: 200_000.0,
            analytics_partition_capacity_msgs_per_s: 100_000.0,
            analytics_key_window_s: 60,
            cluster: ClusterConfig::default(),
            cold: ColdConfig::default(),
        }
    }
}

/// Number of cores this process may run on.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Settings given on the command line; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub bind: Option<String>,
    pub port: Option<u16>,
    pub http_port: Option<u16>,
    pub shards: Option<usize>,
    pub node_id: Option<u32>,
    pub spin_before_park_us: Option<u64>,
    pub spin_read_us: Option<u64>,
    pub flush_interval_ms: Option<u64>,
    pub analytics: Option<String>,
    pub config: Option<PathBuf>,
    pub seeds: Option<String>,
    pub gossip_port: Option<u16>,
    pub advertise: Option<String>,
    pub controllers: Option<String>,
    pub s3: ColdOverrides,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    bind: Option<String>,
    port: Option<u16>,
    http_port: Option<u16>,
    shards: Option<usize>,
    node_id: Option<u32>,
    spin_before_park_us: Option<u64>,
    spin_read_us: Option<u64>,
    flush_interval_ms: Option<u64>,
    frame_bytes_max: Option<u32>,
    conn_inflight_max: Option<u32>,
    shard_inflight_bytes_max: Option<u64>,
    segment_bytes_default: Option<u64>,
    ring_memory_bytes_max: Option<u64>,
    frame_read_timeout_ms: Option<u64>,
    connections_per_shard_max: Option<usize>,
    http_idle_timeout_ms: Option<u64>,
    analytics: Option<String>,
    analytics_shard_capacity_msgs_per_s: Option<f64>,
    analytics_partition_capacity_msgs_per_s: Option<f64>,
    analytics_key_window_s: Option<u64>,
    seeds: Option<Vec<String>>,
    gossip_port: Option<u16>,
    advertise: Option<String>,
    controllers: Option<Vec<String>>,
    node_loss_grace_ms: Option<u64>,
    s3_endpoint: Option<String>,
    s3_bucket: Option<String>,
    s3_region: Option<String>,
    s3_access_key: Option<String>,
    s3_secret_key: Option<String>,
    s3_cache_bytes: Option<u64>,
    s3_threads: Option<usize>,
    s3_request_timeout_ms: Option<u64>,
}

/// Resolves the configuration from flags, the given environment and the optional TOML file.
///
/// The environment is passed in (not read here) so tests can drive every layer.
pub fn resolve(
    flags: &Overrides,
    env: &HashMap<String, String>,
) -> Result<ServeConfig, ConfigError> {
    let mut cfg = ServeConfig::defaults();
    let config_path = flags
        .config
        .clone()
        .or_else(|| env.get("SPRAWL_CONFIG").map(PathBuf::from));
    if let Some(path) = config_path {
        apply_file(&mut cfg, &path)?;
    }
    apply_env(&mut cfg, env)?;
    apply_flags(&mut cfg, flags)?;
    validate(&cfg)?;
    Ok(cfg)
}

fn apply_file(cfg: &mut ServeConfig, path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let src = format!("config file {}", path.display());
    if let Some(v) = file.data_dir {
        cfg.data_dir = v;
    }
    if let Some(v) = file.bind {
        cfg.bind = parse_ip(&v, &src)?;
    }
    set(&mut cfg.port, file.port);
    set(&mut cfg.http_port, file.http_port);
    set(&mut cfg.shards, file.shards);
    set(&mut cfg.node_id, file.node_id);
    set(
        &mut cfg.spin_before_park_us,
        file.spin_before_park_us.map(Some),
    );
    set(&mut cfg.spin_read_us, file.spin_read_us);
    set(&mut cfg.flush_interval_ms, file.flush_interval_ms);
    set(&mut cfg.frame_bytes_max, file.frame_bytes_max);
    set(&mut cfg.conn_inflight_max, file.conn_inflight_max);
    set(
        &mut cfg.shard_inflight_bytes_max,
        file.shard_inflight_bytes_max,
    );
    set(&mut cfg.segment_bytes_default, file.segment_bytes_default);
    set(&mut cfg.ring_memory_bytes_max, file.ring_memory_bytes_max);
    set(&mut cfg.frame_read_timeout_ms, file.frame_read_timeout_ms);
    set(
        &mut cfg.connections_per_shard_max,
        file.connections_per_shard_max,
    );
    set(&mut cfg.http_idle_timeout_ms, file.http_idle_timeout_ms);
    if let Some(v) = file.analytics {
        cfg.analytics = parse_mode(&v, &src)?;
    }
    set(
        &mut cfg.analytics_shard_capacity_msgs_per_s,
        file.analytics_shard_capacity_msgs_per_s,
    );
    set(
        &mut cfg.analytics_partition_capacity_msgs_per_s,
        file.analytics_partition_capacity_msgs_per_s,
    );
    set(&mut cfg.analytics_key_window_s, file.analytics_key_window_s);
    if let Some(v) = file.seeds {
        cfg.cluster.set_seed_list(&v, &src)?;
    }
    if let Some(v) = file.gossip_port {
        cfg.cluster.set_gossip_port(v);
    }
    if let Some(v) = file.advertise {
        cfg.cluster.set_advertise(&v, &src)?;
    }
    if let Some(v) = file.controllers {
        cfg.cluster.set_controller_list(&v, &src)?;
    }
    set(&mut cfg.cluster.node_loss_grace_ms, file.node_loss_grace_ms);
    cfg.cold.apply(&ColdOverrides {
        endpoint: file.s3_endpoint,
        bucket: file.s3_bucket,
        region: file.s3_region,
        access_key: file.s3_access_key,
        secret_key: file.s3_secret_key,
    });
    set(&mut cfg.cold.cache_bytes, file.s3_cache_bytes);
    set(&mut cfg.cold.threads, file.s3_threads);
    set(&mut cfg.cold.request_timeout_ms, file.s3_request_timeout_ms);
    Ok(())
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn apply_env(cfg: &mut ServeConfig, env: &HashMap<String, String>) -> Result<(), ConfigError> {
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty());
    if let Some(v) = get("SPRAWL_DATA_DIR") {
        cfg.data_dir = PathBuf::from(v);
    }
    if let Some(v) = get("SPRAWL_ANALYTICS") {
        cfg.analytics = parse_mode(v, "environment variable SPRAWL_ANALYTICS")?;
    }
    if let Some(v) = get("SPRAWL_BIND") {
        cfg.bind = parse_ip(v, "SPRAWL_BIND")?;
    }
    env_num(&mut cfg.port, get("SPRAWL_PORT"), "port", "SPRAWL_PORT")?;
    env_num(
        &mut cfg.http_port,
        get("SPRAWL_HTTP_PORT"),
        "http-port",
        "SPRAWL_HTTP_PORT",
    )?;
    env_num(
        &mut cfg.shards,
        get("SPRAWL_SHARDS"),
        "shards",
        "SPRAWL_SHARDS",
    )?;
    env_num(
        &mut cfg.node_id,
        get("SPRAWL_NODE_ID"),
        "node-id",
        "SPRAWL_NODE_ID",
    )?;
    if let Some(v) = get("SPRAWL_SPIN_BEFORE_PARK_US") {
        let mut us = 0u64;
        env_num(
            &mut us,
            Some(v),
            "spin-before-park-us",
            "SPRAWL_SPIN_BEFORE_PARK_US",
        )?;
        cfg.spin_before_park_us = Some(us);
    }
    env_num(
        &mut cfg.spin_read_us,
        get("SPRAWL_SPIN_READ_US"),
        "spin-read-us",
        "SPRAWL_SPIN_READ_US",
    )?;
    env_num(
        &mut cfg.flush_interval_ms,
        get("SPRAWL_FLUSH_INTERVAL_MS"),
        "flush-interval-ms",
        "SPRAWL_FLUSH_INTERVAL_MS",
    )?;
    if let Some(v) = get("SPRAWL_CLUSTER_SEEDS") {
        cfg.cluster
            .set_seeds(v, "environment variable SPRAWL_CLUSTER_SEEDS")?;
    }
    if let Some(v) = get("SPRAWL_GOSSIP_PORT") {
        let mut port = cfg.cluster.gossip_port;
        env_num(&mut port, Some(v), "gossip-port", "SPRAWL_GOSSIP_PORT")?;
        cfg.cluster.set_gossip_port(port);
    }
    if let Some(v) = get("SPRAWL_ADVERTISE") {
        cfg.cluster
            .set_advertise(v, "environment variable SPRAWL_ADVERTISE")?;
    }
    if let Some(v) = get("SPRAWL_CONTROLLERS") {
        cfg.cluster
            .set_controllers(v, "environment variable SPRAWL_CONTROLLERS")?;
    }
    cfg.cold
        .apply(&ColdOverrides::from_env(|k| get(k).cloned()));
    Ok(())
}

fn env_num<T: std::str::FromStr>(
    slot: &mut T,
    value: Option<&String>,
    setting: &'static str,
    var: &str,
) -> Result<(), ConfigError>
where
    T::Err: std::fmt::Display,
{
    if let Some(v) = value {
        *slot = v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            setting,
            value: v.clone(),
            source_name: format!("environment variable {var}"),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

fn apply_flags(cfg: &mut ServeConfig, f: &Overrides) -> Result<(), ConfigError> {
    if let Some(v) = &f.data_dir {
        cfg.data_dir = v.clone();
    }
    if let Some(v) = &f.bind {
        cfg.bind = parse_ip(v, "--bind")?;
    }
    set(&mut cfg.port, f.port);
    set(&mut cfg.http_port, f.http_port);
    set(&mut cfg.shards, f.shards);
    set(&mut cfg.node_id, f.node_id);
    set(
        &mut cfg.spin_before_park_us,
        f.spin_before_park_us.map(Some),
    );
    set(&mut cfg.spin_read_us, f.spin_read_us);
    set(&mut cfg.flush_interval_ms, f.flush_interval_ms);
    if let Some(v) = &f.analytics {
        cfg.analytics = parse_mode(v, "--analytics")?;
    }
    if let Some(v) = &f.seeds {
        cfg.cluster.set_seeds(v, "--seeds")?;
    }
    if let Some(v) = f.gossip_port {
        cfg.cluster.set_gossip_port(v);
    }
    if let Some(v) = &f.advertise {
        cfg.cluster.set_advertise(v, "--advertise")?;
    }
    if let Some(v) = &f.controllers {
        cfg.cluster.set_controllers(v, "--controllers")?;
    }
    cfg.cold.apply(&f.s3);
    Ok(())
}

fn parse_mode(v: &str, src: &str) -> Result<crate::analytics_shard::Mode, ConfigError> {
    v.trim().parse().map_err(|reason| ConfigError::Invalid {
        setting: "analytics",
        value: v.to_string(),
        source_name: src.to_string(),
        reason,
    })
}

fn parse_ip(v: &str, src: &str) -> Result<IpAddr, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Invalid {
        setting: "bind",
        value: v.to_string(),
        source_name: src.to_string(),
        reason: "expected an IP address such as 127.0.0.1 or 0.0.0.0".into(),
    })
}

fn validate(cfg: &ServeConfig) -> Result<(), ConfigError> {
    let invalid = |setting: &'static str, value: String, reason: &str| ConfigError::Invalid {
        setting,
        value,
        source_name: "resolved configuration".into(),
        reason: reason.into(),
    };
    let cores = available_cores();
    if cfg.shards == 0 || cfg.shards > cores {
        return Err(invalid(
            "shards",
            cfg.shards.to_string(),
            &format!("must be between 1 and the {cores} cores this process may use"),
        ));
    }
    if cfg.port != 0 && cfg.port == cfg.http_port {
        return Err(invalid(
            "http-port",
            cfg.http_port.to_string(),
            "must differ from --port",
        ));
    }
    if cfg.spin_read_us > SPIN_READ_US_MAX {
        return Err(invalid(
            "spin-read-us",
            cfg.spin_read_us.to_string(),
            &format!(
                "must be at most {SPIN_READ_US_MAX} (a spin holds the shard's core; 0 turns it off)"
            ),
        ));
    }
    if cfg.frame_bytes_max < 64 << 10 || cfg.frame_bytes_max > 64 << 20 {
        return Err(invalid(
            "frame_bytes_max",
            cfg.frame_bytes_max.to_string(),
            "must be between 64 KiB and 64 MiB",
        ));
    }
    if cfg.conn_inflight_max == 0 || cfg.conn_inflight_max > 65_536 {
        return Err(invalid(
            "conn_inflight_max",
            cfg.conn_inflight_max.to_string(),
            "must be between 1 and 65536",
        ));
    }
    if cfg.shard_inflight_bytes_max < u64::from(cfg.frame_bytes_max) {
        return Err(invalid(
            "shard_inflight_bytes_max",
            cfg.shard_inflight_bytes_max.to_string(),
            "must be at least frame_bytes_max, or one large frame could never be read",
        ));
    }
    if cfg.segment_bytes_default < 1 << 20 {
        return Err(invalid(
            "segment_bytes_default",
            cfg.segment_bytes_default.to_string(),
            "must be at least 1 MiB",
        ));
    }
    for (name, v) in [
        (
            "analytics_shard_capacity_msgs_per_s",
            cfg.analytics_shard_capacity_msgs_per_s,
        ),
        (
            "analytics_partition_capacity_msgs_per_s",
            cfg.analytics_partition_capacity_msgs_per_s,
        ),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(invalid(name, v.to_string(), "must be a positive number"));
        }
    }
    if cfg.analytics_key_window_s == 0 || cfg.analytics_key_window_s > 86_400 {
        return Err(invalid(
            "analytics_key_window_s",
            cfg.analytics_key_window_s.to_string(),
            "must be between 1 and 86400",
        ));
    }
    if cfg.connections_per_shard_max == 0 || cfg.connections_per_shard_max > 1_000_000 {
        return Err(invalid(
            "connections_per_shard_max",
            cfg.connections_per_shard_max.to_string(),
            "must be between 1 and 1000000",
        ));
    }
    if cfg.http_idle_timeout_ms < 100 {
        return Err(invalid(
            "http_idle_timeout_ms",
            cfg.http_idle_timeout_ms.to_string(),
            "must be at least 100",
        ));
    }
    if cfg.frame_read_timeout_ms < 100 {
        return Err(invalid(
            "frame_read_timeout_ms",
            cfg.frame_read_timeout_ms.to_string(),
            "must be at least 100",
        ));
    }
    if cfg.flush_interval_ms == 0 {
        return Err(invalid(
            "flush-interval-ms",
            "0".into(),
            "must be at least 1 (acks=all requests are synced immediately regardless)",
        ));
    }
    if !(1 << 20..=64 << 30).contains(&cfg.cold.cache_bytes) {
        return Err(invalid(
            "s3_cache_bytes",
            cfg.cold.cache_bytes.to_string(),
            "must be between 1 MiB and 64 GiB",
        ));
    }
    if !(1..=64).contains(&cfg.cold.threads) {
        return Err(invalid(
            "s3_threads",
            cfg.cold.threads.to_string(),
            "must be between 1 and 64",
        ));
    }
    if !(1_000..=600_000).contains(&cfg.cold.request_timeout_ms) {
        return Err(invalid(
            "s3_request_timeout_ms",
            cfg.cold.request_timeout_ms.to_string(),
            "must be between 1000 and 600000",
        ));
    }
    cfg.cold.validate()?;
    cfg.cluster.validate(cfg.node_id, cfg.bind)
}

#[cfg(test)]
mod tests;
