//! Group requests on the coordinator shard: decoded into owned [`GroupRequest`]s, answered as
//! frames.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use bytes::Bytes;
use cluster::group::{Beat, Tp};
use net::codec::{ErrorCode, FrameHeader, GroupTopic, Limits, Request, Response};

use super::handle::handle;
use crate::handlers::{encode_error, encode_response, Failure, LocalFut};
use crate::shard::Shard;

/// A group request, owned, for the coordinator shard.
pub(super) enum GroupRequest {
    Join {
        group: String,
        member_id: String,
        topics: BTreeSet<String>,
        assignor: String,
        session_timeout_ms: u32,
    },
    Sync {
        group: String,
        member_id: String,
        generation: u32,
        owned: BTreeSet<Tp>,
    },
    Heartbeat {
        group: String,
        member_id: String,
        generation: u32,
    },
    Leave {
        group: String,
        member_id: String,
    },
    Commit {
        group: String,
        member_id: String,
        generation: u32,
        tp: Tp,
        offset: u64,
    },
    FetchOffset {
        group: String,
        tp: Tp,
    },
}

pub(super) enum GroupAnswer {
    Joined {
        member_id: String,
        generation: u32,
    },
    Synced {
        generation: u32,
        assigned: BTreeSet<Tp>,
    },
    Beat(Beat),
    Done,
    Offset(Option<u64>),
}

/// Handles a group request (or a coordinator-bound offset request) on the coordinator shard.
pub fn start_frame(
    shard: &Rc<Shard>,
    header: FrameHeader,
    req: &Request<'_>,
) -> LocalFut<Option<Bytes>> {
    let limits = crate::handlers::limits(shard);
    let owned_tps = |list: &[GroupTopic<'_>]| -> BTreeSet<Tp> {
        list.iter()
            .flat_map(|t| t.partitions.iter().map(|p| Tp::new(t.topic, *p)))
            .collect()
    };
    if let Request::SyncGroup { owned, .. } = req {
        let reported: usize = owned.iter().map(|t| t.partitions.len()).sum();
        if reported as u64 > cluster::group::GROUP_PARTITIONS_MAX {
            let f = Failure::new(
                ErrorCode::InvalidRequest,
                format!(
                    "a sync reports {reported} owned partitions; a group has at most {}",
                    cluster::group::GROUP_PARTITIONS_MAX
                ),
            );
            return Box::pin(std::future::ready(Some(encode_error(
                header, &f, 0, &limits,
            ))));
        }
    }
    let request = match req {
        Request::JoinGroup {
            group,
            member_id,
            topics,
            assignor,
            session_timeout_ms,
        } => GroupRequest::Join {
            group: group.to_string(),
            member_id: member_id.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            assignor: assignor.to_string(),
            session_timeout_ms: *session_timeout_ms,
        },
        Request::SyncGroup {
            group,
            member_id,
            generation,
            owned,
        } => GroupRequest::Sync {
            group: group.to_string(),
            member_id: member_id.to_string(),
            generation: *generation,
            owned: owned_tps(owned),
        },
        Request::Heartbeat {
            group,
            member_id,
            generation,
        } => GroupRequest::Heartbeat {
            group: group.to_string(),
            member_id: member_id.to_string(),
            generation: *generation,
        },
        Request::LeaveGroup { group, member_id } => GroupRequest::Leave {
            group: group.to_string(),
            member_id: member_id.to_string(),
        },
        Request::OffsetCommit {
            consumer,
            topic,
            partition,
            offset,
            member_id,
            generation,
        } => GroupRequest::Commit {
            group: consumer.to_string(),
            member_id: member_id.to_string(),
            generation: *generation,
            tp: Tp::new(topic, *partition),
            offset: *offset,
        },
        Request::OffsetFetch {
            consumer,
            topic,
            partition,
        } => GroupRequest::FetchOffset {
            group: consumer.to_string(),
            tp: Tp::new(topic, *partition),
        },
        _ => {
            let f = Failure::new(ErrorCode::Internal, "not a group request");
            return Box::pin(std::future::ready(Some(encode_error(
                header, &f, 0, &limits,
            ))));
        }
    };
    let shard = shard.clone();
    Box::pin(async move {
        let api = header.api_key;
        Some(match handle(&shard, request).await {
            Ok(answer) => encode_answer(header, api, answer, &limits),
            Err(f) => encode_error(header, &f, 0, &limits),
        })
    })
}

fn encode_answer(header: FrameHeader, api: u16, answer: GroupAnswer, limits: &Limits) -> Bytes {
    let none = ErrorCode::None;
    match answer {
        GroupAnswer::Joined {
            member_id,
            generation,
        } => encode_response(
            header,
            Response::JoinGroup {
                error: none,
                message: "",
                member_id: &member_id,
                generation,
            },
            limits,
        ),
        GroupAnswer::Synced {
            generation,
            assigned,
        } => {
            let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
            for tp in &assigned {
                by_topic.entry(&tp.topic).or_default().push(tp.partition);
            }
            encode_response(
                header,
                Response::SyncGroup {
                    error: none,
                    message: "",
                    generation,
                    assigned: by_topic
                        .into_iter()
                        .map(|(topic, partitions)| GroupTopic { topic, partitions })
                        .collect(),
                },
                limits,
            )
        }
        GroupAnswer::Offset(offset) => encode_response(
            header,
            Response::OffsetFetch {
                error: none,
                message: "",
                offset,
            },
            limits,
        ),
        GroupAnswer::Beat(_) | GroupAnswer::Done => {
            let response = match net::codec::ApiKey::from_u16(api) {
                Some(net::codec::ApiKey::Heartbeat) => Response::Heartbeat {
                    error: none,
                    message: "",
                },
                Some(net::codec::ApiKey::LeaveGroup) => Response::LeaveGroup {
                    error: none,
                    message: "",
                },
                _ => Response::OffsetCommit {
                    error: none,
                    message: "",
                },
            };
            encode_response(header, response, limits)
        }
    }
}
