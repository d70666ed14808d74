//! `sprawl topic create|list|describe|delete`.

use argh::FromArgs;
use net::codec::TopicConfig;

use super::{connect, parse_output, Output, DEFAULT_BROKER};

#[derive(FromArgs, Debug)]
/// Manage topics.
#[argh(subcommand, name = "topic")]
pub struct TopicArgs {
    #[argh(subcommand)]
    pub command: TopicCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum TopicCommand {
    Create(CreateArgs),
    List(ListArgs),
    Describe(DescribeArgs),
    Delete(DeleteArgs),
}

#[derive(FromArgs, Debug)]
/// Create a topic.
#[argh(subcommand, name = "create")]
pub struct CreateArgs {
    /// topic name (ASCII letters, digits, '.', '_', '-')
    #[argh(positional)]
    pub name: String,
    /// number of partitions
    #[argh(option)]
    pub partitions: u32,
    /// delete data older than this many milliseconds (default: keep)
    #[argh(option)]
    pub retention_ms: Option<u64>,
    /// keep at most this many bytes per partition (default: no limit)
    #[argh(option)]
    pub retention_bytes: Option<u64>,
    /// segment file size in bytes (default 64 MiB)
    #[argh(option)]
    pub segment_bytes: Option<u64>,
    /// time-to-live applied to records sent without one, ms
    #[argh(option)]
    pub default_ttl_ms: Option<u64>,
    /// keep only the latest record per key
    #[argh(switch)]
    pub compacted: bool,
    /// cold tier: upload sealed segments to the object store once their newest record is this many ms old (node needs --s3-endpoint)
    #[argh(option)]
    pub tier_after_ms: Option<u64>,
    /// cold tier: keep at most this many bytes of sealed segments per partition on local disk; older ones are uploaded, then deleted locally (node needs --s3-endpoint)
    #[argh(option)]
    pub local_retention_bytes: Option<u64>,
    /// replicas per partition (default 1; above 1 needs a cluster started with --controllers)
    #[argh(option)]
    pub replication_factor: Option<u16>,
    /// in-sync replicas (the leader counts) an acks=all write needs (default min(2, replication factor))
    #[argh(option)]
    pub min_insync: Option<u16>,
    /// broker address (default 127.0.0.1:7070)
    #[argh(option, default = "DEFAULT_BROKER.to_string()")]
    pub broker: String,
}

#[derive(FromArgs, Debug)]
/// List topics.
#[argh(subcommand, name = "list")]
pub struct ListArgs {
    /// broker address (default 127.0.0.1:7070)
    #[argh(option, default = "DEFAULT_BROKER.to_string()")]
    pub broker: String,
    /// output format: text or json
    #[argh(option, default = "Output::Text", from_str_fn(parse_output))]
    pub output: Output,
}

#[derive(FromArgs, Debug)]
/// Describe a topic: settings and per-partition offsets.
#[argh(subcommand, name = "describe")]
pub struct DescribeArgs {
    /// topic name
    #[argh(positional)]
    pub name: String,
    /// broker address (default 127.0.0.1:7070)
    #[argh(option, default = "DEFAULT_BROKER.to_string()")]
    pub broker: String,
    /// output format: text or json
    #[argh(option, default = "Output::Text", from_str_fn(parse_output))]
    pub output: Output,
}

#[derive(FromArgs, Debug)]
/// Delete a topic and all its data.
#[argh(subcommand, name = "delete")]
pub struct DeleteArgs {
    /// topic name
    #[argh(positional)]
    pub name: String,
    /// broker address (default 127.0.0.1:7070)
    #[argh(option, default = "DEFAULT_BROKER.to_string()")]
    pub broker: String,
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

pub fn run(a: TopicArgs) -> Result<(), String> {
    match a.command {
        TopicCommand::Create(c) => {
            let mut client = connect(&c.broker).map_err(|e| e.to_string())?;
            let config = TopicConfig {
                partitions: c.partitions,
                retention_ms: c.retention_ms,
                retention_bytes: c.retention_bytes,
                segment_bytes: c.segment_bytes,
                compacted: c.compacted,
                default_ttl_ms: c.default_ttl_ms,
                tier_after_ms: c.tier_after_ms,
                local_retention_bytes: c.local_retention_bytes,
                replication_factor: c.replication_factor,
                min_insync: c.min_insync,
            };
            let id = client
                .create_topic(&c.name, &config)
                .map_err(|e| e.to_string())?;
            println!(
                "created topic {} ({} partition{}, id {id:016x})",
                c.name,
                c.partitions,
                if c.partitions == 1 { "" } else { "s" }
            );
            Ok(())
        }
        TopicCommand::List(l) => {
            let mut client = connect(&l.broker).map_err(|e| e.to_string())?;
            let topics = client.list_topics().map_err(|e| e.to_string())?;
            match l.output {
                Output::Json => {
                    let v: Vec<_> = topics
                        .iter()
                        .map(|t| {
                            serde_json::json!({
                                "name": t.name,
                                "topic_id": format!("{:016x}", t.topic_id),
                                "partitions": t.partitions,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(v));
                }
                Output::Text => {
                    if topics.is_empty() {
                        println!(
                            "no topics; create one with `sprawl topic create NAME --partitions N`"
                        );
                    }
                    for t in topics {
                        println!("{}\t{} partitions", t.name, t.partitions);
                    }
                }
            }
            Ok(())
        }
        TopicCommand::Describe(d) => {
            let mut client = connect(&d.broker).map_err(|e| e.to_string())?;
            let t = client.describe_topic(&d.name).map_err(|e| e.to_string())?;
            match d.output {
                Output::Json => {
                    let parts: Vec<_> = t
                        .partitions
                        .iter()
                        .map(crate::http::rest::partition_json)
                        .collect();
                    let c = &t.config;
                    println!(
                        "{}",
                        serde_json::json!({
                            "name": t.name,
                            "topic_id": format!("{:016x}", t.topic_id),
                            "partitions": c.partitions,
                            "retention_ms": c.retention_ms,
                            "retention_bytes": c.retention_bytes,
                            "segment_bytes": c.segment_bytes,
                            "compacted": c.compacted,
                            "default_ttl_ms": c.default_ttl_ms,
                            "tier_after_ms": c.tier_after_ms,
                            "local_retention_bytes": c.local_retention_bytes,
                            "partition_state": parts,
                        })
                    );
                }
                Output::Text => {
                    let c = &t.config;
                    println!(
                        "topic {} id {:016x}: {} partitions, retention_ms {}, retention_bytes {}, segment_bytes {}, compacted {}, default_ttl_ms {}",
                        t.name,
                        t.topic_id,
                        c.partitions,
                        opt(c.retention_ms),
                        opt(c.retention_bytes),
                        opt(c.segment_bytes),
                        c.compacted,
                        opt(c.default_ttl_ms)
                    );
                    let tiered = c.tier_after_ms.is_some() || c.local_retention_bytes.is_some();
                    if tiered {
                        println!(
                            "cold tier: tier_after_ms {}, local_retention_bytes {} (retention applies to the remote log)",
                            opt(c.tier_after_ms),
                            opt(c.local_retention_bytes)
                        );
                        println!("partition\tshard\tremote_start\tlocal_start\tend\tdurable\tbytes_local\tbytes_remote\tremote_segments");
                    } else {
                        println!("partition\tshard\tstart\tend\tdurable\tbytes_on_disk");
                    }
                    for p in &t.partitions {
                        let (start, end, durable) =
                            (p.start_offset, p.end_offset, p.durable_offset);
                        match (tiered, p.remote) {
                            (false, _) => println!(
                                "{}\t{}\t{start}\t{end}\t{durable}\t{}",
                                p.partition, p.shard, p.bytes_on_disk
                            ),
                            (true, Some(r)) => println!(
                                "{}\t{}\t{}\t{}\t{end}\t{durable}\t{}\t{}\t{}",
                                p.partition,
                                p.shard,
                                r.remote_start_offset,
                                r.local_start_offset,
                                p.bytes_on_disk,
                                r.remote_data_bytes,
                                r.remote_segments
                            ),
                            // Tier not opened yet (store down or manifest not loaded).
                            (true, None) => println!(
                                "{}\t{}\t?\t{start}\t{end}\t{durable}\t{}\t?\t?",
                                p.partition, p.shard, p.bytes_on_disk
                            ),
                        }
                    }
                }
            }
            Ok(())
        }
        TopicCommand::Delete(d) => {
            let mut client = connect(&d.broker).map_err(|e| e.to_string())?;
            client.delete_topic(&d.name).map_err(|e| e.to_string())?;
            println!("deleted topic {}", d.name);
            Ok(())
        }
    }
}
