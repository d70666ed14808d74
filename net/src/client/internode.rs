//! Calls between cluster nodes (and the tools that inspect them): Raft messages, metadata
//! fetches, replica fetches and in-sync set changes. A client application never needs them.

use super::types::{
    AlterInSyncReply, AlterInSyncRequest, MetaFetchReply, ReplicaFetchReply, ReplicaFetchRequest,
    Reply,
};
use super::{Client, ClientError};
use crate::codec::{ApiKey, Request};

impl Client {
    /// Delivers one Raft message to the metadata controller `to_node` (internode use).
    pub fn raft(
        &mut self,
        from_node: u32,
        to_node: u32,
        message: &[u8],
    ) -> Result<(), ClientError> {
        let request = Request::Raft {
            from_node,
            to_node,
            message,
        };
        self.call(request, "raft message", 0).map(drop)
    }

    /// Fetches the cluster metadata the server's metadata controller holds. The state comes
    /// back only when the controller's version is newer than `since_version` (pass 0 to always
    /// get it); otherwise [`MetaFetchReply::state`] is empty and only the version and the leader
    /// are reported.
    ///
    /// Against a server that does not list MetaFetch in its handshake the call fails with
    /// [`ClientError::ApiUnsupported`] and sends nothing.
    pub fn meta_fetch(&mut self, since_version: u64) -> Result<MetaFetchReply, ClientError> {
        self.require(ApiKey::MetaFetch)?;
        match self.call(Request::MetaFetch { since_version }, "metadata fetch", 0)? {
            Reply::MetaFetch(reply) => Ok(reply),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    /// Fetches a partition's stored batches from its leader, as the follower replica
    /// `req.replica` (internode use). The leader may hold the request up to `req.max_wait_ms`
    /// when it has nothing new, so the call waits that much longer than the request timeout.
    ///
    /// A refusal (not the leader, a stale or newer epoch, an offset outside the leader's log)
    /// is [`ClientError::Server`] with the leader's code. A reply that does not echo the
    /// request's `fetch_offset` and `last_fetched_epoch` is [`ClientError::BadReply`]. Against
    /// a server that does not list ReplicaFetch in its handshake the call fails with
    /// [`ClientError::ApiUnsupported`] and sends nothing.
    pub fn replica_fetch(
        &mut self,
        req: &ReplicaFetchRequest,
    ) -> Result<ReplicaFetchReply, ClientError> {
        self.require(ApiKey::ReplicaFetch)?;
        let request = Request::ReplicaFetch {
            topic: &req.topic,
            partition: req.partition,
            replica: req.replica,
            leader_epoch: req.leader_epoch,
            fetch_offset: req.fetch_offset,
            last_fetched_epoch: req.last_fetched_epoch,
            durable_offset: req.durable_offset,
            max_bytes: req.max_bytes,
            max_wait_ms: req.max_wait_ms,
        };
        let reply = match self.call(request, "replica fetch", u64::from(req.max_wait_ms))? {
            Reply::ReplicaFetch(reply) => reply,
            other => unreachable!("call() checked the api: {other:?}"),
        };
        if (reply.fetch_offset, reply.last_fetched_epoch)
            != (req.fetch_offset, req.last_fetched_epoch)
        {
            return Err(ClientError::BadReply {
                addr: self.addr().to_owned(),
                // The call above was the last request sent on this connection.
                correlation_id: self.next_correlation_id.wrapping_sub(1),
                reason: "ReplicaFetch reply does not echo the request's fetch_offset and \
                         last_fetched_epoch",
            });
        }
        Ok(reply)
    }

    /// Asks the metadata controller to commit a new in-sync replica set for a partition, as its
    /// leader `req.leader` in `req.leader_epoch` (internode use). The controller commits only on
    /// top of the in-sync set version `req.isr_version`; the reply names the version and the set
    /// it committed.
    ///
    /// A refusal is [`ClientError::Server`] with the controller's code: `NOT_LEADER` (this
    /// controller does not lead the metadata; the message names the leader's address when
    /// known), `INVALID_REQUEST` (a stale leader epoch or in-sync set version; the message says
    /// which), `UNKNOWN_TOPIC` / `UNKNOWN_PARTITION`, or `TIMEOUT` (not committed in time; the
    /// change may still be committed). More than
    /// [`crate::codec::PartitionPlacement::NODES_MAX`] node ids fail with
    /// [`ClientError::Encode`]; against a server that does not list AlterInSync in its
    /// handshake the call fails with [`ClientError::ApiUnsupported`]. Either way nothing is
    /// sent.
    pub fn alter_in_sync(
        &mut self,
        req: &AlterInSyncRequest,
    ) -> Result<AlterInSyncReply, ClientError> {
        self.require(ApiKey::AlterInSync)?;
        let request = Request::AlterInSync {
            topic: &req.topic,
            partition: req.partition,
            leader: req.leader,
            leader_epoch: req.leader_epoch,
            isr_version: req.isr_version,
            in_sync: req.in_sync.clone(),
            successor: req.successor,
        };
        match self.call(request, "in-sync set change", 0)? {
            Reply::AlterInSync(reply) => Ok(reply),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }

    /// Fails with [`ClientError::ApiUnsupported`] unless the server listed `api`.
    pub(super) fn require(&self, api: ApiKey) -> Result<(), ClientError> {
        if self.server_supports(api) {
            Ok(())
        } else {
            Err(ClientError::ApiUnsupported {
                addr: self.addr().to_owned(),
                api,
            })
        }
    }
}
