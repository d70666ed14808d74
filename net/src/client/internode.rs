//! Calls between cluster nodes (and the tools that inspect them): Raft messages and metadata
//! fetches. A client application never needs them.

use super::types::{MetaFetchReply, Reply};
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
        if !self.server_supports(ApiKey::MetaFetch) {
            return Err(ClientError::ApiUnsupported {
                addr: self.addr().to_owned(),
                api: ApiKey::MetaFetch,
            });
        }
        match self.call(Request::MetaFetch { since_version }, "metadata fetch", 0)? {
            Reply::MetaFetch(reply) => Ok(reply),
            other => unreachable!("call() checked the api: {other:?}"),
        }
    }
}
