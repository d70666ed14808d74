//! `sprawl serve`: resolve the configuration and run a node until SIGTERM.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use argh::FromArgs;

use crate::config::{resolve, Overrides};
use crate::runtime::{serve, write_ports_json};

#[derive(FromArgs, Debug)]
/// Run a Sprawl node. Flags override SPRAWL_* environment variables, which override --config.
#[argh(subcommand, name = "serve")]
pub struct ServeArgs {
    /// data directory (default ./sprawl-data; env SPRAWL_DATA_DIR)
    #[argh(option)]
    pub data_dir: Option<PathBuf>,
    /// address to bind (default 127.0.0.1; use 0.0.0.0 to accept remote clients; env SPRAWL_BIND)
    #[argh(option)]
    pub bind: Option<String>,
    /// client port (default 7070; 0 picks a free one; env SPRAWL_PORT)
    #[argh(option)]
    pub port: Option<u16>,
    /// HTTP port: REST API, WebSocket, web page, /health, /stats, /metrics (default 8080; 0 picks a free one; env SPRAWL_HTTP_PORT)
    #[argh(option)]
    pub http_port: Option<u16>,
    /// number of shards, one pinned core each (default: all available cores; env SPRAWL_SHARDS)
    #[argh(option)]
    pub shards: Option<usize>,
    /// node id (default 0; env SPRAWL_NODE_ID)
    #[argh(option)]
    pub node_id: Option<u32>,
    /// microseconds an idle shard spins before parking (default 0 with one shard, 50 with more;
    /// env SPRAWL_SPIN_BEFORE_PARK_US)
    #[argh(option)]
    pub spin_before_park_us: Option<u64>,
    /// microseconds a shard whose only connection has nothing in flight spins on that socket for
    /// the next request before parking (default 50; 0 = never; env SPRAWL_SPIN_READ_US)
    #[argh(option)]
    pub spin_read_us: Option<u64>,
    /// background fdatasync interval for acks=leader data, ms (default 1000; env SPRAWL_FLUSH_INTERVAL_MS)
    #[argh(option)]
    pub flush_interval_ms: Option<u64>,
    /// analytics shard: off, advise (forecasts and decisions shown, not applied) or act (moves hot partitions between shards; default; env SPRAWL_ANALYTICS)
    #[argh(option)]
    pub analytics: Option<String>,
    /// TOML configuration file (env SPRAWL_CONFIG)
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// join a cluster through these gossip addresses, HOST:PORT,... (this node's own may be listed; env SPRAWL_CLUSTER_SEEDS)
    #[argh(option)]
    pub seeds: Option<String>,
    /// UDP port for cluster gossip (default 7946; 0 picks a free one; env SPRAWL_GOSSIP_PORT)
    #[argh(option)]
    pub gossip_port: Option<u16>,
    /// host other nodes use to reach this one (default: --bind; required with --bind 0.0.0.0; env SPRAWL_ADVERTISE)
    #[argh(option)]
    pub advertise: Option<String>,
    /// metadata controllers (Raft voters, 3 or 5), ID@HOST:PORT,... with client-port addresses; every node gets the same list (env SPRAWL_CONTROLLERS)
    #[argh(option)]
    pub controllers: Option<String>,
    /// object store of the cold tier, http://HOST:PORT of an S3-compatible server (AWS S3, MinIO, Ceph, Garage); off when unset (env SPRAWL_S3_ENDPOINT)
    #[argh(option)]
    pub s3_endpoint: Option<String>,
    /// bucket of the cold tier; must exist (env SPRAWL_S3_BUCKET)
    #[argh(option)]
    pub s3_bucket: Option<String>,
    /// signing region of the bucket (default us-east-1; env SPRAWL_S3_REGION)
    #[argh(option)]
    pub s3_region: Option<String>,
    /// access key id for the object store (env SPRAWL_S3_ACCESS_KEY)
    #[argh(option)]
    pub s3_access_key: Option<String>,
    /// secret key for the object store; prefer the environment, flags show in `ps` (env SPRAWL_S3_SECRET_KEY)
    #[argh(option)]
    pub s3_secret_key: Option<String>,
}

pub fn run(a: ServeArgs) -> Result<(), String> {
    let flags = Overrides {
        data_dir: a.data_dir,
        bind: a.bind,
        port: a.port,
        http_port: a.http_port,
        shards: a.shards,
        node_id: a.node_id,
        spin_before_park_us: a.spin_before_park_us,
        spin_read_us: a.spin_read_us,
        flush_interval_ms: a.flush_interval_ms,
        analytics: a.analytics,
        config: a.config,
        seeds: a.seeds,
        gossip_port: a.gossip_port,
        advertise: a.advertise,
        controllers: a.controllers,
        s3: crate::config::ColdOverrides {
            endpoint: a.s3_endpoint,
            bucket: a.s3_bucket,
            region: a.s3_region,
            access_key: a.s3_access_key,
            secret_key: a.s3_secret_key,
        },
    };
    let env: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SPRAWL_"))
        .collect();
    let cfg = resolve(&flags, &env).map_err(|e| e.to_string())?;
    let data_dir = cfg.data_dir.clone();
    let shards = cfg.shards;
    let shutdown = Arc::new(AtomicBool::new(false));
    let stop = shutdown.clone();
    let mut ports_error = None;
    serve(cfg, shutdown, |bound| {
        let http = bound
            .http
            .map_or_else(String::new, |h| format!(", http://{h}"));
        println!(
            "sprawl {} serving: client {}{http} ({} shard{}), data in {}",
            env!("CARGO_PKG_VERSION"),
            bound.client,
            shards,
            if shards == 1 { "" } else { "s" },
            data_dir.display()
        );
        if let Err(e) = write_ports_json(&data_dir, bound) {
            // Tools find the node through ports.json: without it, stop rather than run unseen.
            ports_error = Some(format!(
                "cannot write {}/ports.json: {e}",
                data_dir.display()
            ));
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = ports_error {
        return Err(e);
    }
    println!("sprawl: stopped cleanly (all partitions flushed)");
    Ok(())
}
