//! Request bodies (client -> server). Layouts are specified in docs/protocol.md.

use super::group::{
    read_offset_commit, read_request as read_group_request, write_commit_member,
    write_group_topics, write_topic_names,
};
use super::in_sync::{read_request as read_alter_in_sync, write_nodes, write_successor};
use super::topic::{read_topic_config, write_topic_config};
use super::types::{Acks, ApiKey, GroupTopic, ProducerIdent, RecordView, TopicConfig};
use super::wire::{FieldError, ReadResult, Reader, WriteResult, Writer};
use super::Malformed;

/// Minimum encoded size of one produced record: timestamp, ttl, key length, value length,
/// header count.
pub(crate) const RECORD_BYTES_MIN: usize = 8 + 4 + 4 + 4 + 4;

/// A decoded request, borrowing strings and payloads from the input buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    ApiVersions {
        client_name: &'a str,
    },
    Metadata {
        /// `None` = every topic.
        topics: Option<Vec<&'a str>>,
    },
    CreateTopic {
        name: &'a str,
        config: TopicConfig,
    },
    DeleteTopic {
        name: &'a str,
    },
    DescribeTopic {
        name: &'a str,
    },
    ListTopics,
    Produce {
        topic: &'a str,
        partition: u32,
        acks: Acks,
        producer: Option<ProducerIdent>,
        records: Vec<RecordView<'a>>,
    },
    Fetch {
        topic: &'a str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait_ms: u32,
    },
    Subscribe {
        topic: &'a str,
        partition: u32,
        offset: u64,
        /// Records the server may push before it needs more credit.
        credits: u32,
    },
    Credit {
        subscription_id: u32,
        credits: u32,
    },
    Unsubscribe {
        subscription_id: u32,
    },
    OffsetCommit {
        consumer: &'a str,
        topic: &'a str,
        partition: u32,
        offset: u64,
        /// The committing group member (from v1 on, [`ApiKey::OFFSET_COMMIT_MEMBER_VERSION`]);
        /// `""` = a commit outside group membership (always `""` at v0).
        member_id: &'a str,
        /// The member's generation (from v1 on); `0` with an empty `member_id`.
        generation: u32,
    },
    OffsetFetch {
        consumer: &'a str,
        topic: &'a str,
        partition: u32,
    },
    /// A Raft message from one metadata controller to another (internode).
    Raft {
        from_node: u32,
        to_node: u32,
        /// The raft-rs message, prost-encoded; opaque to this codec.
        message: &'a [u8],
    },
    /// Asks a metadata controller for its cluster metadata (internode and tools).
    MetaFetch {
        /// The metadata version the asker already holds; the reply carries the state only
        /// when the controller's version is newer (0 = the asker holds nothing).
        since_version: u64,
    },
    /// A follower replica fetching a partition's stored batches from its leader (internode).
    ReplicaFetch {
        topic: &'a str,
        partition: u32,
        /// The follower's node id.
        replica: u32,
        /// The leader epoch the follower believes is current.
        leader_epoch: u32,
        /// The follower's log end: the next offset it needs.
        fetch_offset: u64,
        /// The epoch that wrote the follower's last batch; `None` when its log is empty.
        last_fetched_epoch: Option<u32>,
        /// Every offset below this is fdatasync'd on the follower.
        durable_offset: u64,
        /// About how many bytes of batches to return (at least one whole batch if one exists).
        max_bytes: u32,
        /// How long the leader may hold the request when it has nothing new (long poll).
        max_wait_ms: u32,
    },
    /// A partition leader asking the metadata controller to commit a new in-sync replica set
    /// for the partition (internode).
    AlterInSync {
        topic: &'a str,
        partition: u32,
        /// The asking leader's node id.
        leader: u32,
        /// The leader epoch the asking leader leads in.
        leader_epoch: u32,
        /// The in-sync set version the leader last saw; the controller commits only on top of
        /// that version.
        isr_version: u32,
        /// The in-sync set to commit (node ids, the leader included); at most
        /// [`crate::codec::PartitionPlacement::NODES_MAX`] entries. Empty: the leader asks for
        /// a new election instead.
        in_sync: Vec<u32>,
        /// With an empty `in_sync`: the in-sync replica the leader asks to lead next (a
        /// leadership hand-over), `0` to let the controller pick. From
        /// [`crate::codec::ApiKey::ALTER_IN_SYNC_SUCCESSOR_VERSION`] on; `0` below it.
        successor: u32,
    },
    /// Which node coordinates `group` (consumer groups).
    FindCoordinator {
        group: &'a str,
    },
    /// A member joins `group`, or rejoins it after a rebalance.
    JoinGroup {
        group: &'a str,
        /// `""` = a new member (the coordinator assigns an id).
        member_id: &'a str,
        /// The topics the member subscribes to; at most [`GroupTopic::TOPICS_MAX`].
        topics: Vec<&'a str>,
        /// The partition assignor the member wants (e.g. `"range"`).
        assignor: &'a str,
        /// The coordinator removes the member after this long without a heartbeat.
        session_timeout_ms: u32,
    },
    /// A member of `generation` reports the partitions it owns and learns its assignment.
    SyncGroup {
        group: &'a str,
        member_id: &'a str,
        generation: u32,
        /// What the member owns now; at most [`GroupTopic::TOPICS_MAX`] topics.
        owned: Vec<GroupTopic<'a>>,
    },
    /// A member of `generation` says it is alive.
    Heartbeat {
        group: &'a str,
        member_id: &'a str,
        generation: u32,
    },
    /// A member leaves `group` (its partitions are reassigned at once).
    LeaveGroup {
        group: &'a str,
        member_id: &'a str,
    },
}

impl Request<'_> {
    pub fn api_key(&self) -> ApiKey {
        match self {
            Request::ApiVersions { .. } => ApiKey::ApiVersions,
            Request::Metadata { .. } => ApiKey::Metadata,
            Request::CreateTopic { .. } => ApiKey::CreateTopic,
            Request::DeleteTopic { .. } => ApiKey::DeleteTopic,
            Request::DescribeTopic { .. } => ApiKey::DescribeTopic,
            Request::ListTopics => ApiKey::ListTopics,
            Request::Produce { .. } => ApiKey::Produce,
            Request::Fetch { .. } => ApiKey::Fetch,
            Request::Subscribe { .. } => ApiKey::Subscribe,
            Request::Credit { .. } => ApiKey::Credit,
            Request::Unsubscribe { .. } => ApiKey::Unsubscribe,
            Request::OffsetCommit { .. } => ApiKey::OffsetCommit,
            Request::OffsetFetch { .. } => ApiKey::OffsetFetch,
            Request::Raft { .. } => ApiKey::Raft,
            Request::MetaFetch { .. } => ApiKey::MetaFetch,
            Request::ReplicaFetch { .. } => ApiKey::ReplicaFetch,
            Request::AlterInSync { .. } => ApiKey::AlterInSync,
            Request::FindCoordinator { .. } => ApiKey::FindCoordinator,
            Request::JoinGroup { .. } => ApiKey::JoinGroup,
            Request::SyncGroup { .. } => ApiKey::SyncGroup,
            Request::Heartbeat { .. } => ApiKey::Heartbeat,
            Request::LeaveGroup { .. } => ApiKey::LeaveGroup,
        }
    }

    /// True when the server sends no reply (produce with `acks = none`).
    pub fn expects_reply(&self) -> bool {
        !matches!(
            self,
            Request::Produce {
                acks: Acks::None,
                ..
            }
        )
    }

    /// Writes the body in the layout of `version` (a version [`ApiKey::supported_versions`]
    /// lists; the caller checked it).
    pub(crate) fn write(&self, version: u16, w: &mut Writer<'_>) -> WriteResult {
        match self {
            Request::ApiVersions { client_name } => w.str("client_name", client_name)?,
            Request::Metadata { topics } => {
                w.opt_count("topics", topics.as_ref().map(Vec::len))?;
                for t in topics.iter().flatten() {
                    w.str("topics", t)?;
                }
            }
            Request::CreateTopic { name, config } => {
                w.str("name", name)?;
                write_topic_config(w, config, ApiKey::CreateTopic, version)?;
            }
            Request::DeleteTopic { name } | Request::DescribeTopic { name } => {
                w.str("name", name)?
            }
            Request::ListTopics => {}
            Request::Produce {
                topic,
                partition,
                acks,
                producer,
                records,
            } => {
                w.str("topic", topic)?;
                w.u32(*partition);
                w.u8(*acks as u8);
                match producer {
                    Some(p) => {
                        w.u8(1);
                        w.u64(p.producer_id);
                        w.u16(p.epoch);
                        w.u32(p.base_sequence);
                    }
                    None => w.u8(0),
                }
                w.count("records", records.len())?;
                for r in records {
                    w.i64(r.timestamp_ms);
                    w.u32(r.ttl_ms);
                    w.opt_bytes("key", r.key)?;
                    w.bytes("value", r.value)?;
                    w.headers("headers", &r.headers)?;
                }
            }
            Request::Fetch {
                topic,
                partition,
                offset,
                max_bytes,
                max_wait_ms,
            } => {
                w.str("topic", topic)?;
                w.u32(*partition);
                w.u64(*offset);
                w.u32(*max_bytes);
                w.u32(*max_wait_ms);
            }
            Request::Subscribe {
                topic,
                partition,
                offset,
                credits,
            } => {
                w.str("topic", topic)?;
                w.u32(*partition);
                w.u64(*offset);
                w.u32(*credits);
            }
            Request::Credit {
                subscription_id,
                credits,
            } => {
                w.u32(*subscription_id);
                w.u32(*credits);
            }
            Request::Unsubscribe { subscription_id } => w.u32(*subscription_id),
            Request::OffsetCommit {
                consumer,
                topic,
                partition,
                offset,
                member_id,
                generation,
            } => {
                w.str("consumer", consumer)?;
                w.str("topic", topic)?;
                w.u32(*partition);
                w.u64(*offset);
                write_commit_member(w, version, member_id, *generation)?;
            }
            Request::OffsetFetch {
                consumer,
                topic,
                partition,
            } => {
                w.str("consumer", consumer)?;
                w.str("topic", topic)?;
                w.u32(*partition);
            }
            Request::Raft {
                from_node,
                to_node,
                message,
            } => {
                w.u32(*from_node);
                w.u32(*to_node);
                w.bytes("message", message)?;
            }
            Request::MetaFetch { since_version } => w.u64(*since_version),
            Request::ReplicaFetch {
                topic,
                partition,
                replica,
                leader_epoch,
                fetch_offset,
                last_fetched_epoch,
                durable_offset,
                max_bytes,
                max_wait_ms,
            } => {
                w.str("topic", topic)?;
                w.u32(*partition);
                w.u32(*replica);
                w.u32(*leader_epoch);
                w.u64(*fetch_offset);
                w.opt_u32(*last_fetched_epoch);
                w.u64(*durable_offset);
                w.u32(*max_bytes);
                w.u32(*max_wait_ms);
            }
            Request::AlterInSync {
                topic,
                partition,
                leader,
                leader_epoch,
                isr_version,
                in_sync,
                successor,
            } => {
                w.str("topic", topic)?;
                w.u32(*partition);
                w.u32(*leader);
                w.u32(*leader_epoch);
                w.u32(*isr_version);
                write_nodes(w, in_sync)?;
                write_successor(w, version, *successor)?;
            }
            Request::FindCoordinator { group } => w.str("group", group)?,
            Request::JoinGroup {
                group,
                member_id,
                topics,
                assignor,
                session_timeout_ms,
            } => {
                w.str("group", group)?;
                w.str("member_id", member_id)?;
                write_topic_names(w, topics)?;
                w.str("assignor", assignor)?;
                w.u32(*session_timeout_ms);
            }
            Request::SyncGroup {
                group,
                member_id,
                generation,
                owned,
            } => {
                w.str("group", group)?;
                w.str("member_id", member_id)?;
                w.u32(*generation);
                write_group_topics(w, "owned", owned)?;
            }
            Request::Heartbeat {
                group,
                member_id,
                generation,
            } => {
                w.str("group", group)?;
                w.str("member_id", member_id)?;
                w.u32(*generation);
            }
            Request::LeaveGroup { group, member_id } => {
                w.str("group", group)?;
                w.str("member_id", member_id)?;
            }
        }
        Ok(())
    }

    /// Decodes a request body of a known api at a supported `version`.
    pub(crate) fn read<'a>(
        api: ApiKey,
        version: u16,
        r: &mut Reader<'a>,
    ) -> ReadResult<Request<'a>> {
        Ok(match api {
            ApiKey::ApiVersions => Request::ApiVersions {
                client_name: r.str("client_name")?,
            },
            ApiKey::Metadata => Request::Metadata {
                topics: r.opt_list("topics", 2, |r| r.str("topics"))?,
            },
            ApiKey::CreateTopic => Request::CreateTopic {
                name: r.str("name")?,
                config: read_topic_config(r, version)?,
            },
            ApiKey::DeleteTopic => Request::DeleteTopic {
                name: r.str("name")?,
            },
            ApiKey::DescribeTopic => Request::DescribeTopic {
                name: r.str("name")?,
            },
            ApiKey::ListTopics => Request::ListTopics,
            // v0 and v1 share one layout (v1 only widens the answer's error codes).
            ApiKey::Produce => {
                let topic = r.str("topic")?;
                let partition = r.u32("partition")?;
                let raw_acks = r.u8("acks")?;
                let acks = Acks::from_u8(raw_acks).ok_or(FieldError {
                    field: "acks",
                    reason: Malformed::InvalidValue {
                        value: i64::from(raw_acks),
                    },
                })?;
                let producer = if r.bool("producer")? {
                    Some(ProducerIdent {
                        producer_id: r.u64("producer_id")?,
                        epoch: r.u16("epoch")?,
                        base_sequence: r.u32("base_sequence")?,
                    })
                } else {
                    None
                };
                let records = r.list("records", RECORD_BYTES_MIN, |r| {
                    Ok(RecordView {
                        timestamp_ms: r.i64("timestamp_ms")?,
                        ttl_ms: r.u32("ttl_ms")?,
                        key: r.opt_bytes("key")?,
                        value: r.bytes("value")?,
                        headers: r.headers("headers")?,
                    })
                })?;
                Request::Produce {
                    topic,
                    partition,
                    acks,
                    producer,
                    records,
                }
            }
            ApiKey::Fetch => Request::Fetch {
                topic: r.str("topic")?,
                partition: r.u32("partition")?,
                offset: r.u64("offset")?,
                max_bytes: r.u32("max_bytes")?,
                max_wait_ms: r.u32("max_wait_ms")?,
            },
            ApiKey::Subscribe => Request::Subscribe {
                topic: r.str("topic")?,
                partition: r.u32("partition")?,
                offset: r.u64("offset")?,
                credits: r.u32("credits")?,
            },
            ApiKey::Credit => Request::Credit {
                subscription_id: r.u32("subscription_id")?,
                credits: r.u32("credits")?,
            },
            ApiKey::Unsubscribe => Request::Unsubscribe {
                subscription_id: r.u32("subscription_id")?,
            },
            ApiKey::OffsetCommit => read_offset_commit(r, version)?,
            ApiKey::OffsetFetch => Request::OffsetFetch {
                consumer: r.str("consumer")?,
                topic: r.str("topic")?,
                partition: r.u32("partition")?,
            },
            ApiKey::Raft => Request::Raft {
                from_node: r.u32("from_node")?,
                to_node: r.u32("to_node")?,
                message: r.bytes("message")?,
            },
            ApiKey::MetaFetch => Request::MetaFetch {
                since_version: r.u64("since_version")?,
            },
            ApiKey::ReplicaFetch => Request::ReplicaFetch {
                topic: r.str("topic")?,
                partition: r.u32("partition")?,
                replica: r.u32("replica")?,
                leader_epoch: r.u32("leader_epoch")?,
                fetch_offset: r.u64("fetch_offset")?,
                last_fetched_epoch: r.opt_u32("last_fetched_epoch")?,
                durable_offset: r.u64("durable_offset")?,
                max_bytes: r.u32("max_bytes")?,
                max_wait_ms: r.u32("max_wait_ms")?,
            },
            ApiKey::AlterInSync => read_alter_in_sync(r, version)?,
            ApiKey::FindCoordinator
            | ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup => read_group_request(api, r)?,
            ApiKey::Push => {
                // Push only travels server -> client; as a request it is an unknown api.
                return Err(FieldError {
                    field: "api_key",
                    reason: Malformed::InvalidValue {
                        value: ApiKey::Push as i64,
                    },
                });
            }
        })
    }
}
