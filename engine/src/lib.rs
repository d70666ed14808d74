//! `engine`: the Sprawl node and the `sprawl` command line.
//!
//! A node is a set of shards, one pinned glommio executor per core. Each shard accepts clients on
//! the same port (SO_REUSEPORT), owns a slice of the partitions (placement is a pure function of
//! the topic id, the partition and the shard count, so every shard routes without asking), and
//! forwards requests for partitions it does not own across glommio's channel mesh. Appends are
//! synchronous memcpys into mapped segments (the `storage` crate); fdatasync, segment preparation,
//! retention and compaction rewrites run on a blocking pool and come back as completions;
//! segments are reserved and prefaulted a window at a time ahead of the write position, on the
//! shard's idle-priority [`background`] thread. Known exceptions
//! that still block a reactor: an append that outruns its prefault job reserves inline (one
//! fallocate), a segment created inline is counted in
//! `sprawl_partition_sync_segment_creations_total`, and installing a compaction renames files. Backpressure is budget-based: a connection that has spent its in-flight budget is
//! simply not read until replies go out. A shard whose one active connection sends a request at a
//! time spins on that socket between requests instead of parking ([`spin_read`]).
//!
//! Cluster membership (gossip, `membership`), the Raft metadata controllers (`controller`), the
//! metadata every node follows (`metadata`) and partition replication (`replication`) run in the
//! node, as do consumer group coordinators (`groups`); what it deliberately does not do (yet):
//! forward data requests between nodes (clients go to the leader), move replicas onto joining
//! nodes.
//! `docs/cluster.md` says what exists.
//!
//! Modules: [`config`] (flags > env > TOML), [`runtime`] (executors, limits, signals), [`shard`]
//! (routing, mesh calls), [`conn`] (one connection), [`spin_read`] (its spin for the next request), [`handlers`] (requests on the owning shard),
//! [`follow`] (following a partition for pushes and streams), [`admin`] (topic create/delete),
//! [`moves`] (live partition moves), [`analytics_shard`], [`analytics_lead`] and [`host`] (the
//! analytics shard, its leadership hand-overs in a cluster, its host readings), [`http`] (REST, WebSocket, events, stats, web page), [`stats`] (latency
//! histograms), [`partition`] (log + group commit + offsets), [`catalog`] (topic metadata file),
//! [`groups`] (consumer group coordinators), [`cli`] (the `sprawl` command).
//!
//! ```
//! // Placement is deterministic: every shard computes the same owner.
//! assert_eq!(engine::shard::owner_of(7, 0, 2), engine::shard::owner_of(7, 0, 2));
//! assert!(engine::shard::owner_of(7, 3, 2) < 2);
//! ```

pub mod admin;
pub mod analytics_lead;
pub mod analytics_shard;
pub mod background;
pub mod catalog;
pub mod cli;
pub mod cold;
pub mod config;
pub mod conn;
pub mod controller;
pub mod follow;
pub mod frame_pool;
pub mod groups;
pub mod handlers;
pub mod host;
pub mod http;
pub mod membership;
pub mod metadata;
pub mod metrics;
pub mod moves;
pub mod notify;
pub mod offsets;
pub mod partition;
pub mod peer;
pub mod replication;
pub mod runtime;
pub mod shard;
pub mod spin_read;
pub mod stats;
pub mod tiering;
