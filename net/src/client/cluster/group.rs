//! Consumer-group routing: a group's requests, and the offsets a consumer (group) commits and
//! fetches, go to the group's **coordinator**, found with FindCoordinator on any node and cached
//! per group. On `NOT_COORDINATOR`, a coordinator that cannot be reached, or an answer that names
//! none yet, the cached coordinator is forgotten and the request is retried with the same
//! backoff and retry budget as leader routing ([`super::RoutingConfig`]); an answer naming a
//! node without an address the routing table knows also reloads the table.
//!
//! `REBALANCE_IN_PROGRESS`, `UNKNOWN_MEMBER` and `ILLEGAL_GENERATION` are returned to the
//! caller, never retried: they call for the member to sync or rejoin.

use std::time::Duration;

use super::retry::{classify, drops_connection, Backoff, Decision, Resend, Stage};
use super::ClusterClient;
use crate::client::{Client, ClientError, GroupAssignment};
use crate::codec::ApiKey;

/// Groups whose coordinator is remembered; at the limit an arbitrary entry is forgotten.
pub(crate) const COORDINATORS_MAX: usize = 1_024;

impl ClusterClient {
    /// The connection to `group`'s coordinator, for calls this type does not route. The
    /// coordinator is asked of any node (FindCoordinator) unless cached; a discovery or a
    /// connection that fails is retried per [`super::RoutingConfig`], forgetting the cached
    /// coordinator first. A `NOT_COORDINATOR` answer to a call made on the returned client is
    /// the caller's to handle: call [`ClusterClient::forget_coordinator`] and ask again.
    pub fn coordinator_client(&mut self, group: &str) -> Result<&mut Client, ClientError> {
        let addr = self.on_coordinator(group, Resend::Safe, None, |client| {
            Ok(client.addr().to_owned())
        })?;
        self.connection(&addr)
    }

    /// The cached coordinator of `group`: its node id and address.
    pub fn coordinator_of(&self, group: &str) -> Option<(u32, &str)> {
        self.coordinators
            .get(group)
            .map(|(node_id, addr)| (*node_id, addr.as_str()))
    }

    /// Forgets the cached coordinator of `group`; the next group call asks again.
    pub fn forget_coordinator(&mut self, group: &str) {
        self.coordinators.remove(group);
    }

    /// [`Client::join_group`] on the group's coordinator. A join with an empty `member_id` is
    /// not resent after its outcome became unknown (a lost answer would leave a second new
    /// member behind until its session expires); a rejoin with a member id is.
    pub fn join_group(
        &mut self,
        group: &str,
        member_id: &str,
        topics: &[&str],
        assignor: &str,
        session_timeout_ms: u32,
    ) -> Result<(String, u32), ClientError> {
        let resend = if member_id.is_empty() {
            Resend::OnlyIfRefused
        } else {
            Resend::Safe
        };
        self.on_coordinator(group, resend, None, |client| {
            client.join_group(group, member_id, topics, assignor, session_timeout_ms)
        })
    }

    /// [`Client::sync_group`] on the group's coordinator.
    pub fn sync_group(
        &mut self,
        group: &str,
        member_id: &str,
        generation: u32,
        owned: &[(String, Vec<u32>)],
    ) -> Result<(u32, GroupAssignment), ClientError> {
        self.on_coordinator(group, Resend::Safe, None, |client| {
            client.sync_group(group, member_id, generation, owned)
        })
    }

    /// [`Client::heartbeat`] on the group's coordinator; `REBALANCE_IN_PROGRESS` is returned
    /// (as [`ClientError::Server`]) for the caller to call [`ClusterClient::sync_group`].
    pub fn heartbeat(
        &mut self,
        group: &str,
        member_id: &str,
        generation: u32,
    ) -> Result<(), ClientError> {
        self.on_coordinator(group, Resend::Safe, None, |client| {
            client.heartbeat(group, member_id, generation)
        })
    }

    /// [`Client::leave_group`] on the group's coordinator.
    pub fn leave_group(&mut self, group: &str, member_id: &str) -> Result<(), ClientError> {
        self.on_coordinator(group, Resend::Safe, None, |client| {
            client.leave_group(group, member_id)
        })
    }

    /// [`Client::commit_offset_member`] on the coordinator of `consumer` (the group), which
    /// stores the group's offsets (setting an offset twice is harmless, so it is retried like a
    /// read). A member commit needs a cluster with groups: against servers without
    /// FindCoordinator it fails with [`ClientError::ApiUnsupported`] (no leader fallback).
    pub fn commit_offset_member(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: u32,
        offset: u64,
        member_id: &str,
        generation: u32,
    ) -> Result<(), ClientError> {
        self.on_coordinator(consumer, Resend::Safe, Some((topic, partition)), |client| {
            client.commit_offset_member(consumer, topic, partition, offset, member_id, generation)
        })
    }

    /// [`Client::commit_offset`] on the coordinator of `consumer`. Against servers that do not
    /// implement FindCoordinator (no groups, so no coordinator), on the partition's leader, as
    /// before groups existed.
    pub fn commit_offset(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), ClientError> {
        let on_coordinator =
            self.on_coordinator(consumer, Resend::Safe, Some((topic, partition)), |client| {
                client.commit_offset(consumer, topic, partition, offset)
            });
        match on_coordinator {
            Err(e) if without_coordinators(&e) => {
                self.on_leader(topic, partition, Resend::Safe, |client| {
                    client.commit_offset(consumer, topic, partition, offset)
                })
            }
            other => other,
        }
    }

    /// [`Client::fetch_offset`] on the coordinator of `consumer` (on the partition's leader
    /// against servers without FindCoordinator, like [`ClusterClient::commit_offset`]).
    pub fn fetch_offset(
        &mut self,
        consumer: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, ClientError> {
        let on_coordinator =
            self.on_coordinator(consumer, Resend::Safe, Some((topic, partition)), |client| {
                client.fetch_offset(consumer, topic, partition)
            });
        match on_coordinator {
            Err(e) if without_coordinators(&e) => {
                self.on_leader(topic, partition, Resend::Safe, |client| {
                    client.fetch_offset(consumer, topic, partition)
                })
            }
            other => other,
        }
    }

    /// Runs `op` on `group`'s coordinator, retrying per the module docs. `partition` names the
    /// partition an offset call is about: `UNKNOWN_TOPIC` / `UNKNOWN_PARTITION` for it are
    /// retried as metadata lag under the same rule as leader routing.
    fn on_coordinator<T>(
        &mut self,
        group: &str,
        resend: Resend,
        partition: Option<(&str, u32)>,
        mut op: impl FnMut(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut backoff = Backoff::new(&self.routing);
        let mut retries_left = self.routing.retries;
        loop {
            let (error, stage) = match self.coordinator_attempt(group, &mut op) {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let decision = classify(&error, stage, resend);
            let retry = match decision {
                Decision::GiveUp => false,
                Decision::IfPartitionExists => partition.is_some_and(|(topic, partition)| {
                    self.created_recently(topic) || self.view.contains_partition(topic, partition)
                }),
                Decision::Refresh | Decision::Wait { .. } => true,
            };
            if !retry || retries_left == 0 {
                return Err(error);
            }
            retries_left -= 1;
            let mut wait_ms = backoff.next_ms();
            if let Decision::Wait { retry_after_ms } = decision {
                wait_ms = wait_ms.max(retry_after_ms);
            }
            std::thread::sleep(Duration::from_millis(wait_ms));
            if !matches!(decision, Decision::Wait { .. }) {
                self.coordinators.remove(group);
            }
            if matches!(error, ClientError::NoCoordinator { node_id, .. } if node_id != 0) {
                // The answer named a node the routing table has no address for: reload it. A
                // failed load keeps the old table.
                let _ = self.refresh();
            }
        }
    }

    /// One try of `op` on `group`'s coordinator (found first if not cached).
    fn coordinator_attempt<T>(
        &mut self,
        group: &str,
        op: &mut impl FnMut(&mut Client) -> Result<T, ClientError>,
    ) -> Result<T, (ClientError, Stage)> {
        let addr = self
            .coordinator_addr(group)
            .map_err(|e| (e, Stage::NotSent))?;
        let client = self.connection(&addr).map_err(|e| (e, Stage::NotSent))?;
        op(client).map_err(|e| {
            if drops_connection(&e) {
                self.connections.remove(&addr);
            }
            (e, Stage::Sent)
        })
    }

    /// The cached coordinator address of `group`, or the one FindCoordinator (on any node that
    /// answers) names now. An answer without an address is resolved through the routing table;
    /// one that stays without an address is [`ClientError::NoCoordinator`].
    fn coordinator_addr(&mut self, group: &str) -> Result<String, ClientError> {
        if let Some((_, addr)) = self.coordinators.get(group) {
            return Ok(addr.clone());
        }
        let (node_id, addr) = self.on_any_node(Resend::Safe, |c| c.find_coordinator(group))?;
        // An address in the answer is used as is (a lone node may be node 0). Without one, the
        // routing table's address of the node; node 0 in a cluster means "none right now".
        let addr = if !addr.is_empty() {
            addr
        } else if node_id == self.view.source_node_id() {
            self.view.source_addr().to_owned()
        } else {
            self.view
                .brokers()
                .get(&node_id)
                .cloned()
                .unwrap_or_default()
        };
        if addr.is_empty() {
            return Err(ClientError::NoCoordinator {
                group: group.to_owned(),
                node_id,
            });
        }
        if self.coordinators.len() >= COORDINATORS_MAX {
            if let Some(victim) = self.coordinators.keys().next().cloned() {
                self.coordinators.remove(&victim);
            }
        }
        self.coordinators
            .insert(group.to_owned(), (node_id, addr.clone()));
        Ok(addr)
    }
}

/// True when the cluster answered that it has no FindCoordinator at all (a server from before
/// consumer groups): offsets then live with the partition's leader.
fn without_coordinators(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::ApiUnsupported {
            api: ApiKey::FindCoordinator,
            ..
        }
    )
}
