//! Consumer-group bodies (api 18 FindCoordinator to 22 LeaveGroup) and the membership fields
//! OffsetCommit carries from v[`ApiKey::OFFSET_COMMIT_MEMBER_VERSION`] on. Every list is capped
//! ([`GroupTopic::TOPICS_MAX`] topics, [`GroupTopic::PARTITIONS_MAX`] partitions per topic):
//! a larger count is malformed when decoding (checked before anything is allocated) and refused
//! when encoding.

use super::error::EncodeError;
use super::request::Request;
use super::response::Response;
use super::types::{ApiKey, ErrorCode, GroupTopic};
use super::wire::{FieldError, ReadResult, Reader, WriteResult, Writer};
use super::Malformed;

/// Encoded size of one partition id.
const PARTITION_ID_BYTES: usize = 4;
/// Minimum encoded size of one topic name (an empty `str`).
const TOPIC_NAME_BYTES_MIN: usize = 2;

/// Writes `topics: list<str>` (JoinGroup), refusing more than [`GroupTopic::TOPICS_MAX`].
pub(crate) fn write_topic_names(w: &mut Writer<'_>, topics: &[&str]) -> WriteResult {
    w.capped_count("topics", topics.len(), GroupTopic::TOPICS_MAX)?;
    for topic in topics {
        w.str("topics", topic)?;
    }
    Ok(())
}

fn read_topic_names<'a>(r: &mut Reader<'a>) -> ReadResult<Vec<&'a str>> {
    r.capped_list(
        "topics",
        GroupTopic::TOPICS_MAX,
        TOPIC_NAME_BYTES_MIN,
        |r| r.str("topics"),
    )
}

/// Writes `list<GroupTopic>` (`topic str, partitions list<u32>` each) under the name `field`,
/// refusing more than [`GroupTopic::TOPICS_MAX`] topics or [`GroupTopic::PARTITIONS_MAX`]
/// partitions in one topic.
pub(crate) fn write_group_topics(
    w: &mut Writer<'_>,
    field: &'static str,
    topics: &[GroupTopic<'_>],
) -> WriteResult {
    w.capped_count(field, topics.len(), GroupTopic::TOPICS_MAX)?;
    for t in topics {
        w.str(field, t.topic)?;
        w.capped_count("partitions", t.partitions.len(), GroupTopic::PARTITIONS_MAX)?;
        for partition in &t.partitions {
            w.u32(*partition);
        }
    }
    Ok(())
}

fn read_group_topics<'a>(
    r: &mut Reader<'a>,
    field: &'static str,
) -> ReadResult<Vec<GroupTopic<'a>>> {
    r.capped_list(
        field,
        GroupTopic::TOPICS_MAX,
        GroupTopic::WIRE_BYTES_MIN,
        |r| {
            Ok(GroupTopic {
                topic: r.str(field)?,
                partitions: r.capped_list(
                    "partitions",
                    GroupTopic::PARTITIONS_MAX,
                    PARTITION_ID_BYTES,
                    |r| r.u32("partitions"),
                )?,
            })
        },
    )
}

/// Writes the OffsetCommit membership fields in the layout of `version`: `member_id str,
/// generation u32` from [`ApiKey::OFFSET_COMMIT_MEMBER_VERSION`] on, nothing below. A member id
/// or generation set in an older frame is an error, never silently dropped.
pub(crate) fn write_commit_member(
    w: &mut Writer<'_>,
    version: u16,
    member_id: &str,
    generation: u32,
) -> WriteResult {
    if version >= ApiKey::OFFSET_COMMIT_MEMBER_VERSION {
        w.str("member_id", member_id)?;
        w.u32(generation);
        return Ok(());
    }
    let field = if !member_id.is_empty() {
        "member_id"
    } else if generation != 0 {
        "generation"
    } else {
        return Ok(());
    };
    Err(EncodeError::FieldNeedsVersion {
        api: ApiKey::OffsetCommit,
        version,
        field,
        required_version: ApiKey::OFFSET_COMMIT_MEMBER_VERSION,
    })
}

/// Decodes an OffsetCommit request body: `consumer str, topic str, partition u32, offset u64`,
/// then from v1 on `member_id str, generation u32` (`""` and `0` below).
pub(crate) fn read_offset_commit<'a>(r: &mut Reader<'a>, version: u16) -> ReadResult<Request<'a>> {
    let consumer = r.str("consumer")?;
    let topic = r.str("topic")?;
    let partition = r.u32("partition")?;
    let offset = r.u64("offset")?;
    let (member_id, generation) = if version >= ApiKey::OFFSET_COMMIT_MEMBER_VERSION {
        (r.str("member_id")?, r.u32("generation")?)
    } else {
        ("", 0)
    };
    Ok(Request::OffsetCommit {
        consumer,
        topic,
        partition,
        offset,
        member_id,
        generation,
    })
}

/// The caller asked a group decoder for another api's body.
fn not_a_group_api(api: ApiKey) -> FieldError {
    FieldError {
        field: "api_key",
        reason: Malformed::InvalidValue {
            value: i64::from(api as u16),
        },
    }
}

/// Decodes the request body of a group api (18 to 22); any other api is an invalid api key here.
pub(crate) fn read_request<'a>(api: ApiKey, r: &mut Reader<'a>) -> ReadResult<Request<'a>> {
    Ok(match api {
        ApiKey::FindCoordinator => Request::FindCoordinator {
            group: r.str("group")?,
        },
        ApiKey::JoinGroup => Request::JoinGroup {
            group: r.str("group")?,
            member_id: r.str("member_id")?,
            topics: read_topic_names(r)?,
            assignor: r.str("assignor")?,
            session_timeout_ms: r.u32("session_timeout_ms")?,
        },
        ApiKey::SyncGroup => Request::SyncGroup {
            group: r.str("group")?,
            member_id: r.str("member_id")?,
            generation: r.u32("generation")?,
            owned: read_group_topics(r, "owned")?,
        },
        ApiKey::Heartbeat => Request::Heartbeat {
            group: r.str("group")?,
            member_id: r.str("member_id")?,
            generation: r.u32("generation")?,
        },
        ApiKey::LeaveGroup => Request::LeaveGroup {
            group: r.str("group")?,
            member_id: r.str("member_id")?,
        },
        other => return Err(not_a_group_api(other)),
    })
}

/// Decodes the answer of a group api (18 to 22) after its common head; any other api is an
/// invalid api key here.
pub(crate) fn read_response<'a>(
    api: ApiKey,
    r: &mut Reader<'a>,
    error: ErrorCode,
    message: &'a str,
) -> ReadResult<Response<'a>> {
    Ok(match api {
        ApiKey::FindCoordinator => Response::FindCoordinator {
            error,
            message,
            node_id: r.u32("node_id")?,
            addr: r.str("addr")?,
        },
        ApiKey::JoinGroup => Response::JoinGroup {
            error,
            message,
            member_id: r.str("member_id")?,
            generation: r.u32("generation")?,
        },
        ApiKey::SyncGroup => Response::SyncGroup {
            error,
            message,
            generation: r.u32("generation")?,
            assigned: read_group_topics(r, "assigned")?,
        },
        ApiKey::Heartbeat => Response::Heartbeat { error, message },
        ApiKey::LeaveGroup => Response::LeaveGroup { error, message },
        other => return Err(not_a_group_api(other)),
    })
}
