//! The replicated metadata log of a Sprawl cluster: topics, partition
//! replicas, partition leaders with their epochs, in-sync sets, consumer-group
//! coordinators and registered nodes, kept identical on 3 or 5 controller nodes
//! by Raft.
//!
//! Consensus is [raft-rs](raft) (`RawNode`, prost codec), with **PreVote** and
//! **CheckQuorum** on, so a node cut off from the majority cannot raise the
//! term and depose a healthy leader when it comes back. This crate adds what
//! raft-rs leaves to its user:
//! - [`MetadataState`] and [`Command`]: a deterministic state machine. A
//!   command that breaks a rule (unknown topic, leader epoch going backwards,
//!   stale in-sync set version, in-sync set not a subset of the replicas, ...)
//!   is refused with a typed [`CommandError`] on every replica alike, so
//!   refusals never make replicas diverge. Every accepted command bumps
//!   [`MetadataState::version`]; caches elsewhere ignore versions older than
//!   the one they hold. Each partition's in-sync set carries its own
//!   [`PartitionState::isr_version`], which fences in-sync proposals.
//! - [`DiskStorage`]: raft-rs's `Storage` over two files, an append-only
//!   `raft.log` (CRC32C per record, torn tails cut on open) and `raft.snap`
//!   (replaced atomically). Log compaction snapshots the state every
//!   `snapshot_every_entries` applied entries.
//! - [`MetaNode`]: the driving loop. `tick`, `step`, `propose`, then `drain`
//!   returns messages to send (safe to send: what they promise is fsynced),
//!   applied entries and what was persisted.
//!
//! Formats (commands, state snapshots, both files) are little-endian and
//! fixed-width, specified in `docs/metadata-format.md`; every length is
//! checked against a limit before anything is allocated.
//!
//! What this crate deliberately does not do:
//! - no sockets, timers or clock reads: the engine delivers [`Outgoing`]
//!   bytes, calls [`MetaNode::tick`] on its timer (every 100 ms with
//!   [`MetaConfig::new`]'s defaults) and passes a seed for election jitter.
//!   That is what lets `tests/simulation.rs` run 3 and 5 nodes with drops,
//!   duplicates, reordering, partitions and crashes on a virtual clock;
//! - no ambient randomness: raft-rs's own `thread_rng` timeout draw is pinned
//!   to a constant and the spread comes from the seeded jitter instead;
//! - no membership changes: the voter set is fixed when the log is created;
//! - no forwarding: only the leader accepts proposals ([`ProposeError::NotLeader`]
//!   names it), the engine forwards;
//! - no placement policy: which replicas or leader to choose is decided by the
//!   caller; this crate only validates and orders the decisions;
//! - no engine wiring yet.
//!
//! A single-voter group elects itself, accepts a proposal and applies it:
//!
//! ```
//! use meta::{Command, MemBackend, MetaConfig, MetaNode, Role};
//!
//! let mut node = MetaNode::open(MetaConfig::new(1, vec![1], 42), MemBackend::new())?;
//! for _ in 0..100 {
//!     if node.status().role == Role::Leader {
//!         break;
//!     }
//!     node.tick();
//!     while node.has_ready() {
//!         node.drain()?;
//!     }
//! }
//! assert_eq!(node.status().role, Role::Leader);
//!
//! let id = node.propose(&Command::RegisterNode {
//!     node_id: 1,
//!     client_addr: "127.0.0.1:7070".into(),
//! })?;
//! let mut applied = Vec::new();
//! while node.has_ready() {
//!     let out = node.drain()?;
//!     assert!(out.messages.is_empty()); // nobody to send to
//!     applied.extend(out.applied);
//! }
//! assert_eq!(applied.len(), 1);
//! assert_eq!(applied[0].proposal, Some(id));
//! assert_eq!(applied[0].outcome, Ok(1)); // state version 1
//! assert_eq!(node.state().nodes[&1].client_addr, "127.0.0.1:7070");
//!
//! // Refused commands are applied as refusals: the version does not move.
//! node.propose(&Command::DeleteTopic { name: "nope".into() })?;
//! let out = node.drain()?;
//! assert!(out.applied[0].outcome.is_err());
//! assert_eq!(node.state().version, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
mod codec;
pub mod command;
mod config;
mod error;
pub mod logfile;
mod node;
pub mod snapshot;
pub mod state;
mod storage;

pub use backend::{Backend, DirBackend, MemBackend};
pub use command::Command;
pub use config::MetaConfig;
pub use error::{CodecError, CommandError, MetaError, ProposeError, StorageError};
pub use node::{
    Applied, MetaNode, MetaStatus, Outgoing, Output, Persisted, ProposalId, Role, PROPOSAL_ID_BYTES,
};
pub use state::{MetadataState, NodeInfo, PartitionState, TopicState};
pub use storage::DiskStorage;
