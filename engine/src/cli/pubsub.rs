//! `sprawl pub` and `sprawl sub`, against one node or any node(s) of a cluster.
//!
//! Both load the routing table (Metadata) from the first `--broker` address that answers and
//! send each partition's traffic to its leader; a single node leads everything itself.
//!
//! `pub` is an idempotent producer: it picks a random producer id, numbers its batches per
//! partition, pipelines them to the leaders, and after a retriable failure (`NOT_LEADER`,
//! `NOT_ENOUGH_REPLICAS`, a lost connection, ...) reloads the routing table and resends
//! everything not yet acknowledged in order; the server drops the copies it already has, so a
//! retry never duplicates. `sub` uses push subscriptions with credit-based flow control, one per
//! partition at its leader, and follows leadership changes from the next offset not printed.

mod consume;
mod produce;

use std::io::BufRead;
use std::time::Duration;

use argh::FromArgs;
use net::client::{ClientConfig, ClientError, ClusterClient};
use net::codec::{Acks, ErrorCode};

use super::{parse_output, Output, DEFAULT_BROKER};
use consume::{Consumer, ConsumerSettings, GroupMember};
use produce::{Producer, ProducerSettings};

/// Records per produce batch when reading stdin.
const BATCH_RECORDS_MAX: usize = 512;
/// Payload bytes per produce batch when reading stdin.
const BATCH_BYTES_MAX: usize = 512 << 10;
/// How long `pub` keeps retrying after a retriable failure, and how long `sub` keeps trying to
/// subscribe a partition again, before giving up with an error naming the partition.
const RETRY_FOR: Duration = Duration::from_secs(30);

fn parse_acks(v: &str) -> Result<Acks, String> {
    match v {
        "none" => Ok(Acks::None),
        "leader" => Ok(Acks::Leader),
        "all" => Ok(Acks::All),
        other => Err(format!("--acks must be none, leader or all, not {other:?}")),
    }
}

#[derive(FromArgs, Debug)]
/// Publish records: MESSAGE, or one record per line of standard input.
#[argh(subcommand, name = "pub")]
pub struct PubArgs {
    /// topic to publish to
    #[argh(option)]
    pub topic: String,
    /// record key (also picks the partition: crc32c(key) mod partitions)
    #[argh(option)]
    pub key: Option<String>,
    /// partition (default: by key, else round-robin per batch)
    #[argh(option)]
    pub partition: Option<u32>,
    /// durability to wait for: none, leader or all (default all: fdatasync'd)
    #[argh(option, default = "Acks::All", from_str_fn(parse_acks))]
    pub acks: Acks,
    /// time-to-live of each record, ms (default: the topic's)
    #[argh(option, default = "0")]
    pub ttl_ms: u32,
    /// output: text (a summary on stderr) or json (one object per acknowledged record)
    #[argh(option, default = "Output::Text", from_str_fn(parse_output))]
    pub output: Output,
    /// broker address, or a comma-separated list of bootstrap nodes of a cluster: each
    /// partition is reached at its leader whichever node is given (default 127.0.0.1:7070)
    #[argh(option, default = "DEFAULT_BROKER.to_string()")]
    pub broker: String,
    /// the message; without it, each line of standard input is one record
    #[argh(positional)]
    pub message: Option<String>,
}

#[derive(FromArgs, Debug)]
/// Consume records and print them.
#[argh(subcommand, name = "sub")]
pub struct SubArgs {
    /// topic to consume
    #[argh(option)]
    pub topic: String,
    /// one partition (default: all)
    #[argh(option)]
    pub partition: Option<u32>,
    /// start at the oldest record (default: only new records, or the group's committed offset)
    #[argh(switch)]
    pub from_beginning: bool,
    /// start at this offset
    #[argh(option)]
    pub offset: Option<u64>,
    /// consumer group: without --partition, join it and consume the partitions its coordinator
    /// assigns (shared with the group's other members); resume from the group's committed
    /// offsets and commit as records are printed
    #[argh(option)]
    pub group: Option<String>,
    /// how the group shares partitions: cooperative-sticky (default) or range
    #[argh(option, default = "String::from(\"cooperative-sticky\")")]
    pub assignor: String,
    /// group session timeout in milliseconds: a member not heard from for this long loses its
    /// partitions (default 10000)
    #[argh(option, default = "10_000")]
    pub session_timeout_ms: u32,
    /// exit after this many records
    #[argh(option)]
    pub count: Option<u64>,
    /// output: raw (values, one per line) or json (one object per record)
    #[argh(option, default = "Output::Text", from_str_fn(parse_output))]
    pub output: Output,
    /// broker address, or a comma-separated list of bootstrap nodes of a cluster: each
    /// partition is reached at its leader whichever node is given (default 127.0.0.1:7070)
    #[argh(option, default = "DEFAULT_BROKER.to_string()")]
    pub broker: String,
}

fn random_u64() -> u64 {
    crate::catalog::new_topic_id()
}

/// True when the request may succeed if sent again, possibly elsewhere after a metadata refresh.
fn retriable(e: &ClientError) -> bool {
    match e {
        ClientError::Io { .. }
        | ClientError::Closed { .. }
        | ClientError::Connect { .. }
        | ClientError::Timeout { .. }
        | ClientError::NoLeader { .. }
        | ClientError::PushQueueFull { .. } => true,
        ClientError::Server { code, .. } => {
            code.is_retriable() || *code == ErrorCode::OutOfOrderSequence
        }
        _ => false,
    }
}

/// True when the connection that produced `e` must not be used again: it is broken, the server
/// closes it, a late reply may still arrive on it, or pushes were dropped from it.
fn breaks_connection(e: &ClientError) -> bool {
    match e {
        ClientError::Server { code, .. } => {
            matches!(code, ErrorCode::Throttled | ErrorCode::ShuttingDown)
        }
        ClientError::Io { .. }
        | ClientError::Closed { .. }
        | ClientError::Timeout { .. }
        | ClientError::Protocol { .. }
        | ClientError::UnexpectedReply { .. }
        | ClientError::BadReply { .. }
        | ClientError::UnknownCorrelation { .. }
        | ClientError::PushQueueFull { .. } => true,
        _ => false,
    }
}

/// The addresses of a comma-separated `--broker` list, blanks dropped.
fn bootstrap_addrs(broker: &str) -> Vec<&str> {
    broker
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect()
}

/// Connects to the first address of the comma-separated `broker` list that answers and loads
/// the routing table from it.
fn connect_cluster(broker: &str) -> Result<ClusterClient, String> {
    let bootstrap = bootstrap_addrs(broker);
    let config = ClientConfig {
        client_name: format!("sprawl-cli/{}", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    ClusterClient::connect(&bootstrap, config).map_err(|e| e.to_string())
}

pub fn run_pub(a: PubArgs) -> Result<(), String> {
    let cluster = connect_cluster(&a.broker)?;
    let partitions = cluster
        .metadata()
        .topic(&a.topic)
        .map(|t| t.partitions.len() as u32)
        .ok_or_else(|| {
            format!(
                "topic {:?} does not exist; create it with `sprawl topic create {} --partitions N`",
                a.topic, a.topic
            )
        })?;
    if let Some(p) = a.partition {
        if p >= partitions {
            return Err(format!(
                "--partition {p} does not exist: topic {} has partitions 0..{partitions}",
                a.topic
            ));
        }
    }
    let key = a.key.map(String::into_bytes);
    let fixed = a
        .partition
        .or_else(|| key.as_ref().map(|k| crc32c::crc32c(k) % partitions));
    let settings = ProducerSettings {
        topic: a.topic,
        key,
        acks: a.acks,
        ttl_ms: a.ttl_ms,
        output: a.output,
    };
    let mut p = Producer::new(cluster, settings, random_u64());
    let mut rr = (random_u64() % u64::from(partitions)) as u32;
    let mut next_partition = || {
        fixed.unwrap_or_else(|| {
            rr = (rr + 1) % partitions;
            rr
        })
    };
    if let Some(m) = a.message {
        p.publish(next_partition(), vec![m.into_bytes()])?;
    } else {
        let mut reader = std::io::BufReader::with_capacity(256 << 10, std::io::stdin().lock());
        loop {
            let mut batch = Vec::new();
            let mut bytes = 0;
            loop {
                let mut line = Vec::new();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| format!("reading standard input: {e}"))?;
                if n == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                bytes += line.len();
                batch.push(line);
                // Batch only what is already buffered, so interactive lines go out at once.
                let more_buffered = reader.buffer().contains(&b'\n');
                if !more_buffered || batch.len() >= BATCH_RECORDS_MAX || bytes >= BATCH_BYTES_MAX {
                    break;
                }
            }
            if batch.is_empty() {
                break;
            }
            p.publish(next_partition(), batch)?;
        }
    }
    p.finish()?;
    let settings = p.settings();
    if settings.output == Output::Text {
        eprintln!(
            "published {} record{} to {} (acks={})",
            p.acked_records,
            if p.acked_records == 1 { "" } else { "s" },
            settings.topic,
            match settings.acks {
                Acks::None => "none, not confirmed",
                Acks::Leader => "leader",
                Acks::All => "all",
            }
        );
    }
    Ok(())
}

pub fn run_sub(a: SubArgs) -> Result<(), String> {
    if a.from_beginning && a.offset.is_some() {
        return Err("use either --from-beginning or --offset, not both".into());
    }
    let mut cluster = connect_cluster(&a.broker)?;
    let info = cluster
        .describe_topic(&a.topic)
        .map_err(|e| e.to_string())?;
    let partitions: Vec<_> = match a.partition {
        Some(p) => {
            let part = info
                .partitions
                .iter()
                .find(|x| x.partition == p)
                .ok_or_else(|| {
                    format!(
                        "--partition {p} does not exist: topic {} has partitions 0..{}",
                        a.topic, info.config.partitions
                    )
                })?;
            vec![*part]
        }
        None => info.partitions.clone(),
    };
    if let (Some(group), None) = (&a.group, a.partition) {
        if a.offset.is_some() {
            return Err(
                "--offset needs --partition: a group member consumes the partitions its group \
                 assigns, from the group's committed offsets"
                    .into(),
            );
        }
        cluster::group::Assignor::parse(&a.assignor).map_err(|e| e.to_string())?;
        let defaults = partitions.iter().map(|part| {
            let start = if a.from_beginning {
                part.start_offset
            } else {
                part.end_offset
            };
            (part.partition, start)
        });
        let member = GroupMember::new(
            group.clone(),
            a.assignor.clone(),
            a.session_timeout_ms,
            defaults,
        );
        return Consumer::in_group(cluster, consumer_settings(a, info.topic_id), member).run();
    }
    let mut starts = Vec::with_capacity(partitions.len());
    for part in &partitions {
        let committed = match &a.group {
            Some(g) => cluster
                .fetch_offset(g, &a.topic, part.partition)
                .map_err(|e| format!("partition {}/{}: {e}", a.topic, part.partition))?,
            None => None,
        };
        let start = a.offset.or(committed).unwrap_or(if a.from_beginning {
            part.start_offset
        } else {
            part.end_offset
        });
        starts.push((part.partition, start));
    }
    Consumer::new(cluster, consumer_settings(a, info.topic_id), starts).run()
}

fn consumer_settings(a: SubArgs, topic_id: u64) -> ConsumerSettings {
    ConsumerSettings {
        topic: a.topic,
        topic_id,
        group: a.group,
        count: a.count,
        output: a.output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: ErrorCode) -> ClientError {
        ClientError::Server {
            code,
            message: String::new(),
            retry_after_ms: None,
        }
    }

    #[test]
    fn broker_lists_split_on_commas_and_drop_blanks() {
        assert_eq!(bootstrap_addrs("127.0.0.1:7070"), ["127.0.0.1:7070"]);
        assert_eq!(bootstrap_addrs(" a:1, b:2,,c:3 ,"), ["a:1", "b:2", "c:3"]);
        assert!(bootstrap_addrs(" , ").is_empty());
    }

    #[test]
    fn leadership_and_replica_refusals_are_retried_other_refusals_are_not() {
        for code in [
            ErrorCode::NotLeader,
            ErrorCode::NotEnoughReplicas,
            ErrorCode::Timeout,
            ErrorCode::ShuttingDown,
            ErrorCode::OutOfOrderSequence,
        ] {
            assert!(retriable(&server(code)), "{code}");
        }
        for code in [
            ErrorCode::UnknownTopic,
            ErrorCode::InvalidRequest,
            ErrorCode::OffsetOutOfRange,
            ErrorCode::DuplicateSequence,
        ] {
            assert!(!retriable(&server(code)), "{code}");
        }
        let no_leader = ClientError::NoLeader {
            topic: "t".into(),
            partition: 3,
            leader_node_id: 0,
        };
        assert!(retriable(&no_leader));
        assert!(!breaks_connection(&no_leader));
    }

    #[test]
    fn only_broken_or_desynchronised_connections_are_dropped() {
        let closed = ClientError::Closed {
            addr: "127.0.0.1:1".into(),
        };
        let queue_full = ClientError::PushQueueFull {
            queued: 1024,
            limit: 1024,
        };
        assert!(breaks_connection(&closed));
        assert!(breaks_connection(&queue_full));
        assert!(breaks_connection(&server(ErrorCode::ShuttingDown)));
        assert!(!breaks_connection(&server(ErrorCode::NotLeader)));
        assert!(!breaks_connection(&server(ErrorCode::UnknownSubscription)));
    }
}
