//! The routing table a [`super::ClusterClient`] keeps: which node leads each partition, and where
//! each node listens, built from one Metadata reply.

use std::collections::{BTreeMap, HashMap};

use crate::client::{ClientError, ClusterMetadata};
use crate::codec::PartitionMetadata;

/// Who serves a partition, as the metadata says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionLeader {
    /// The metadata carried no placement (a v0 server, or a node that knows none): the node that
    /// answered the Metadata request serves the partition.
    AnsweringNode,
    /// `node_id` leads the partition since `leader_epoch`.
    Node { node_id: u32, leader_epoch: u32 },
    /// The partition has no leader right now (placement with leader 0 in a cluster).
    NoLeader { leader_epoch: u32 },
}

impl PartitionLeader {
    /// The leader epoch, when the metadata carried a placement.
    pub fn leader_epoch(&self) -> Option<u32> {
        match self {
            PartitionLeader::AnsweringNode => None,
            PartitionLeader::Node { leader_epoch, .. }
            | PartitionLeader::NoLeader { leader_epoch } => Some(*leader_epoch),
        }
    }
}

/// One topic's routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRoute {
    pub topic_id: u64,
    /// Partition id -> its leader.
    pub partitions: BTreeMap<u32, PartitionLeader>,
}

/// Where a request for one partition goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// Send it to `addr` (node `node_id`).
    Leader { node_id: u32, addr: &'a str },
    /// The metadata names no reachable leader (`leader_node_id` 0 = none at all).
    NoLeader { leader_node_id: u32 },
    /// The metadata does not list the topic or the partition.
    Unknown,
}

/// A snapshot of the cluster's routing table (see [`super::ClusterClient::metadata`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    /// The address the Metadata reply came from.
    source_addr: String,
    /// The node id that answered (`ClusterMetadata::node_id`).
    source_node_id: u32,
    /// Node id -> client address; at most `brokers_max` entries.
    brokers: BTreeMap<u32, String>,
    topics: HashMap<String, TopicRoute>,
}

impl ClusterView {
    /// Builds the table from a Metadata reply received from `source_addr`. Fails with
    /// [`ClientError::TooManyBrokers`] when the reply lists more than `brokers_max` brokers.
    pub(crate) fn from_metadata(
        metadata: &ClusterMetadata,
        source_addr: &str,
        brokers_max: usize,
    ) -> Result<Self, ClientError> {
        if metadata.brokers.len() > brokers_max {
            return Err(ClientError::TooManyBrokers {
                addr: source_addr.to_owned(),
                brokers: metadata.brokers.len(),
                limit: brokers_max,
            });
        }
        // Node ids start at 1 in a cluster; a lone node may be node 0 and then names itself
        // (leader 0) as the leader of everything.
        let lone_node_zero = metadata.node_id == 0
            && metadata.brokers.len() <= 1
            && metadata.brokers.iter().all(|b| b.node_id == 0);
        let leader_of = |p: &PartitionMetadata| match &p.placement {
            None => PartitionLeader::AnsweringNode,
            Some(placement) if placement.leader != 0 || lone_node_zero => PartitionLeader::Node {
                node_id: placement.leader,
                leader_epoch: placement.leader_epoch,
            },
            Some(placement) => PartitionLeader::NoLeader {
                leader_epoch: placement.leader_epoch,
            },
        };
        let topics = metadata
            .topics
            .iter()
            .map(|t| {
                let partitions = t.partitions.iter().map(|p| (p.partition, leader_of(p)));
                let route = TopicRoute {
                    topic_id: t.topic_id,
                    partitions: partitions.collect(),
                };
                (t.name.clone(), route)
            })
            .collect();
        Ok(ClusterView {
            source_addr: source_addr.to_owned(),
            source_node_id: metadata.node_id,
            brokers: metadata
                .brokers
                .iter()
                .map(|b| (b.node_id, b.client_address.clone()))
                .collect(),
            topics,
        })
    }

    /// Keeps `older`'s entry for every partition of the same topic (same id) where `older`
    /// saw a higher leader epoch than this reply carries: a lagging node's answer never moves a
    /// partition back to a former leader. The kept leader's address is carried over when this
    /// reply lacks it and `brokers_max` leaves room.
    pub(crate) fn keep_newer_epochs(&mut self, older: &ClusterView, brokers_max: usize) {
        for (name, route) in &mut self.topics {
            let Some(old_route) = older.topics.get(name) else {
                continue;
            };
            if old_route.topic_id != route.topic_id {
                continue;
            }
            for (partition, leader) in &mut route.partitions {
                let Some(old_leader) = old_route.partitions.get(partition) else {
                    continue;
                };
                let (Some(old_epoch), Some(new_epoch)) =
                    (old_leader.leader_epoch(), leader.leader_epoch())
                else {
                    continue;
                };
                if old_epoch <= new_epoch {
                    continue;
                }
                *leader = *old_leader;
                if let PartitionLeader::Node { node_id, .. } = old_leader {
                    let known = self.brokers.contains_key(node_id);
                    if let (false, Some(addr)) = (known, older.node_addr(*node_id)) {
                        if self.brokers.len() < brokers_max {
                            self.brokers.insert(*node_id, addr.to_owned());
                        }
                    }
                }
            }
        }
    }

    /// The address the routing table was loaded from.
    pub fn source_addr(&self) -> &str {
        &self.source_addr
    }

    /// The node id that answered the Metadata request.
    pub fn source_node_id(&self) -> u32 {
        self.source_node_id
    }

    /// Node id -> client address of every broker the metadata lists.
    pub fn brokers(&self) -> &BTreeMap<u32, String> {
        &self.brokers
    }

    pub fn topic(&self, name: &str) -> Option<&TopicRoute> {
        self.topics.get(name)
    }

    pub fn topics(&self) -> impl Iterator<Item = (&str, &TopicRoute)> {
        self.topics
            .iter()
            .map(|(name, route)| (name.as_str(), route))
    }

    /// The node a request for `topic`/`partition` goes to and its address; `None` when the
    /// metadata does not list the partition or names no reachable leader for it.
    pub fn leader_of(&self, topic: &str, partition: u32) -> Option<(u32, &str)> {
        match self.route(topic, partition) {
            Route::Leader { node_id, addr } => Some((node_id, addr)),
            Route::NoLeader { .. } | Route::Unknown => None,
        }
    }

    pub(crate) fn contains_partition(&self, topic: &str, partition: u32) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|t| t.partitions.contains_key(&partition))
    }

    pub(crate) fn remove_topic(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    /// True when `addr` is the source or a listed broker's address.
    pub(crate) fn has_addr(&self, addr: &str) -> bool {
        self.source_addr == addr || self.brokers.values().any(|a| a == addr)
    }

    /// The address of `node_id`: the connection the metadata came over for the answering node
    /// (it is known to work), otherwise the address the metadata lists.
    fn node_addr(&self, node_id: u32) -> Option<&str> {
        if node_id == self.source_node_id {
            return Some(&self.source_addr);
        }
        self.brokers.get(&node_id).map(String::as_str)
    }

    pub(crate) fn route(&self, topic: &str, partition: u32) -> Route<'_> {
        let leader = self
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(&partition));
        match leader {
            None => Route::Unknown,
            Some(PartitionLeader::AnsweringNode) => Route::Leader {
                node_id: self.source_node_id,
                addr: &self.source_addr,
            },
            Some(PartitionLeader::Node { node_id, .. }) => match self.node_addr(*node_id) {
                Some(addr) => Route::Leader {
                    node_id: *node_id,
                    addr,
                },
                None => Route::NoLeader {
                    leader_node_id: *node_id,
                },
            },
            Some(PartitionLeader::NoLeader { .. }) => Route::NoLeader { leader_node_id: 0 },
        }
    }
}
