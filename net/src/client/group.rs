//! Consumer-group calls on one connection: finding a group's coordinator, joining, syncing,
//! heartbeats, leaving, and offset commits as a group member (OffsetCommit v1).
//!
//! Every group call is refused locally with [`ClientError::ApiUnsupported`] (nothing is sent)
//! against a server that does not list its api. A coordinator's refusal is
//! [`ClientError::Server`] with its code; the group codes are `NOT_COORDINATOR` (find the
//! coordinator again), `UNKNOWN_MEMBER` (rejoin with an empty member id),
//! `REBALANCE_IN_PROGRESS` (call SyncGroup) and `ILLEGAL_GENERATION` (rejoin, then sync).

use super::types::{GroupAssignment, Reply};
use super::{Client, ClientError};
use crate::codec::{ApiKey, GroupTopic, Request};

impl Client {
    /// Which node coordinates `group`: its node id and client address (`HOST:PORT`; empty when
    /// the answering node does not know the address).
    pub fn find_coordinator(&mut self, group: &str) -> Result<(u32, String), ClientError> {
        self.require(ApiKey::FindCoordinator)?;
        match self.call(Request::FindCoordinator { group }, "find coordinator", 0)? {
            Reply::FindCoordinator(node_id, addr) => Ok((node_id, addr)),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    /// Joins `group` (send it to the group's coordinator) subscribed to `topics` (at most
    /// [`GroupTopic::TOPICS_MAX`], else [`ClientError::Encode`] and nothing is sent). An empty
    /// `member_id` joins as a new member. Returns the member id to use from now on and the
    /// generation joined.
    pub fn join_group(
        &mut self,
        group: &str,
        member_id: &str,
        topics: &[&str],
        assignor: &str,
        session_timeout_ms: u32,
    ) -> Result<(String, u32), ClientError> {
        self.require(ApiKey::JoinGroup)?;
        let request = Request::JoinGroup {
            group,
            member_id,
            topics: topics.to_vec(),
            assignor,
            session_timeout_ms,
        };
        match self.call(request, "join group", 0)? {
            Reply::JoinGroup(member_id, generation) => Ok((member_id, generation)),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    /// Reports the partitions the member owns now, `(topic, partitions)` per topic, and returns
    /// the generation and the member's assignment in it, in the same form. At most
    /// [`GroupTopic::TOPICS_MAX`] topics and [`GroupTopic::PARTITIONS_MAX`] partitions per
    /// topic, else [`ClientError::Encode`] and nothing is sent.
    pub fn sync_group(
        &mut self,
        group: &str,
        member_id: &str,
        generation: u32,
        owned: &[(String, Vec<u32>)],
    ) -> Result<(u32, GroupAssignment), ClientError> {
        self.require(ApiKey::SyncGroup)?;
        let request = Request::SyncGroup {
            group,
            member_id,
            generation,
            owned: owned
                .iter()
                .map(|(topic, partitions)| GroupTopic {
                    topic,
                    partitions: partitions.clone(),
                })
                .collect(),
        };
        match self.call(request, "sync group", 0)? {
            Reply::SyncGroup(generation, assigned) => Ok((generation, assigned)),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    /// Tells the coordinator the member is alive. `REBALANCE_IN_PROGRESS` comes back as
    /// [`ClientError::Server`] with [`crate::codec::ErrorCode::RebalanceInProgress`]: call
    /// [`Client::sync_group`].
    pub fn heartbeat(
        &mut self,
        group: &str,
        member_id: &str,
        generation: u32,
    ) -> Result<(), ClientError> {
        self.require(ApiKey::Heartbeat)?;
        let request = Request::Heartbeat {
            group,
            member_id,
            generation,
        };
        self.call(request, "heartbeat", 0).map(drop)
    }

    /// Leaves `group`; the coordinator reassigns the member's partitions at once.
    pub fn leave_group(&mut self, group: &str, member_id: &str) -> Result<(), ClientError> {
        self.require(ApiKey::LeaveGroup)?;
        let request = Request::LeaveGroup { group, member_id };
        self.call(request, "leave group", 0).map(drop)
    }

    /// Commits `offset` (the next offset to consume) for `consumer` (the group) as the group
    /// member `member_id` of `generation`, so the coordinator can refuse a commit from a member
    /// that lost the partition (`UNKNOWN_MEMBER`, `ILLEGAL_GENERATION`). An empty `member_id`
    /// with generation 0 is a commit outside membership, as [`Client::commit_offset`].
    ///
    /// The member id and generation need OffsetCommit
    /// v[`ApiKey::OFFSET_COMMIT_MEMBER_VERSION`]; against a server that speaks only v0 the call
    /// fails with [`ClientError::GroupMembershipUnsupported`] and sends nothing, rather than
    /// commit without the membership check that was asked for.
    pub fn commit_offset_member(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: u32,
        offset: u64,
        member_id: &str,
        generation: u32,
    ) -> Result<(), ClientError> {
        let version = self.api_version(ApiKey::OffsetCommit);
        let membership = !member_id.is_empty() || generation != 0;
        if membership && version < ApiKey::OFFSET_COMMIT_MEMBER_VERSION {
            return Err(ClientError::GroupMembershipUnsupported {
                addr: self.addr().to_owned(),
                negotiated_version: version,
                required_version: ApiKey::OFFSET_COMMIT_MEMBER_VERSION,
            });
        }
        let request = Request::OffsetCommit {
            consumer,
            topic,
            partition,
            offset,
            member_id,
            generation,
        };
        self.call(request, "offset commit", 0).map(drop)
    }
}
