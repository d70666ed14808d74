//! [`MetaNode`]: raft-rs's `RawNode` plus the metadata state machine and its
//! durable storage, driven by the engine's ticks and received messages.

use raft::eraftpb::{Entry, EntryType, Message, MessageType};
use raft::{RawNode, SnapshotStatus, StateRole};

use crate::backend::Backend;
use crate::codec::{Reader, Writer};
use crate::command::Command;
use crate::config::MetaConfig;
use crate::error::{CodecError, CommandError, MetaError, ProposeError, StorageError};
use crate::logfile::SNAPSHOT_FILE;
use crate::state::MetadataState;
use crate::storage::DiskStorage;

/// Identifies a proposal so the proposer can match it to its applied entry.
/// Unique across restarts because `boot` counts the openings of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId {
    /// Node that proposed.
    pub node_id: u64,
    /// That node's boot counter when it proposed.
    pub boot: u64,
    /// Sequence number within the boot, from 0.
    pub seq: u64,
}

/// Encoded size of a [`ProposalId`] (the entry context).
pub const PROPOSAL_ID_BYTES: usize = 24;

impl ProposalId {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(PROPOSAL_ID_BYTES);
        w.u64(self.node_id);
        w.u64(self.boot);
        w.u64(self.seq);
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        let id = Self {
            node_id: r.u64("proposal node")?,
            boot: r.u64("proposal boot")?,
            seq: r.u64("proposal seq")?,
        };
        r.finish("proposal id")?;
        Ok(id)
    }
}

/// A raft message to deliver to node `to`, protobuf-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Destination node id.
    pub to: u64,
    /// `eraftpb.Message` bytes; feed them to the destination's [`MetaNode::step`].
    pub bytes: Vec<u8>,
}

/// A committed log entry applied to the [`MetadataState`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Raft log index.
    pub index: u64,
    /// Term of the entry.
    pub term: u64,
    /// Who proposed it, if the proposer attached an id.
    pub proposal: Option<ProposalId>,
    /// The command (`None` if it did not decode).
    pub command: Option<Command>,
    /// New state version, or why the command was refused (state unchanged).
    pub outcome: Result<u64, CommandError>,
}

/// What one [`MetaNode::drain`] wrote to disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persisted {
    /// Entries appended to the log file.
    pub entries: u64,
    /// Whether a hard state (term, vote, commit) record was written.
    pub hard_state: bool,
    /// Index of a snapshot installed from the leader, if any.
    pub installed_snapshot: Option<u64>,
    /// Index of a local snapshot taken for compaction, if any.
    pub compacted_to: Option<u64>,
    /// Whether the log file was fsynced (before `messages` were released).
    pub synced: bool,
}

/// Effects of one [`MetaNode::drain`]: send `messages` (already safe to send:
/// everything they depend on is durable), report `applied` to the proposers.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Raft messages for peers, in order.
    pub messages: Vec<Outgoing>,
    /// Entries applied, in log order.
    pub applied: Vec<Applied>,
    /// What was persisted.
    pub persisted: Persisted,
}

/// Role of a node in the current term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Following a leader, or waiting for one.
    Follower,
    /// Asking for pre-votes; its term has not moved.
    PreCandidate,
    /// Campaigning in a new term.
    Candidate,
    /// Leading the term; accepts proposals.
    Leader,
}

/// A snapshot of a node's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaStatus {
    /// This node.
    pub node_id: u64,
    /// Current term.
    pub term: u64,
    /// Role in that term.
    pub role: Role,
    /// Known leader, 0 if none.
    pub leader_id: u64,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Highest index applied to the state.
    pub applied_index: u64,
    /// Index covered by the latest snapshot.
    pub snapshot_index: u64,
    /// Version of the applied state.
    pub version: u64,
}

/// SplitMix64: the election-jitter source, seeded by the engine.
#[derive(Debug, Clone)]
struct Jitter(u64);

impl Jitter {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (((z >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// One replica of the metadata log. See the crate docs for the driving loop.
pub struct MetaNode<B: Backend> {
    raw: RawNode<DiskStorage<B>>,
    config: MetaConfig,
    state: MetadataState,
    applied_index: u64,
    next_seq: u64,
    jitter: Jitter,
    jitter_ticks_left: u32,
    seen: (u64, StateRole),
}

impl<B: Backend> std::fmt::Debug for MetaNode<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaNode")
            .field("status", &self.status())
            .finish()
    }
}

fn role_of(r: StateRole) -> Role {
    match r {
        StateRole::Follower => Role::Follower,
        StateRole::PreCandidate => Role::PreCandidate,
        StateRole::Candidate => Role::Candidate,
        StateRole::Leader => Role::Leader,
    }
}

impl<B: Backend> MetaNode<B> {
    /// Opens (or bootstraps) the replica whose files are in `backend` and
    /// restores the state from the latest snapshot; committed entries after it
    /// are applied again by the first drains.
    pub fn open(config: MetaConfig, backend: B) -> Result<Self, MetaError> {
        config.validate()?;
        let empty = MetadataState::default()
            .encode()
            .map_err(MetaError::BadSnapshot)?;
        let storage =
            DiskStorage::open(backend, &config.voters, &empty, config.log_file_bytes_max)?;
        let snap = storage.latest_snapshot();
        let state = MetadataState::decode(&snap.data).map_err(|source| StorageError::Corrupt {
            file: SNAPSHOT_FILE.to_owned(),
            offset: 0,
            source,
        })?;
        let applied_index = snap.get_metadata().index;
        let election = config.election_ticks as usize;
        let raft_config = raft::Config {
            id: config.node_id,
            election_tick: election,
            heartbeat_tick: config.heartbeat_ticks as usize,
            applied: applied_index,
            max_size_per_msg: config.append_bytes_max,
            max_inflight_msgs: config.inflight_messages_max as usize,
            check_quorum: true,
            pre_vote: true,
            // raft-rs would draw its timeout from `thread_rng` within
            // [min, max); a one-tick range makes that draw constant, and
            // `Jitter` supplies the spread deterministically instead.
            min_election_tick: election,
            max_election_tick: election + 1,
            max_committed_size_per_ready: config.committed_bytes_per_ready_max,
            ..raft::Config::default()
        };
        raft_config.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&raft_config, storage, &logger)?;
        let seen = (raw.raft.term, raw.raft.state);
        let mut jitter = Jitter(config.seed ^ config.node_id.rotate_left(32));
        let jitter_ticks_left = jitter.below(config.election_ticks);
        Ok(Self {
            raw,
            config,
            state,
            applied_index,
            next_seq: 0,
            jitter,
            jitter_ticks_left,
            seen,
        })
    }

    /// The applied metadata.
    pub fn state(&self) -> &MetadataState {
        &self.state
    }

    /// Term, role, leader and progress.
    pub fn status(&self) -> MetaStatus {
        let r = &self.raw.raft;
        MetaStatus {
            node_id: self.config.node_id,
            term: r.term,
            role: role_of(r.state),
            leader_id: r.leader_id,
            commit_index: r.raft_log.committed,
            applied_index: self.applied_index,
            snapshot_index: self.raw.store().snapshot_index(),
            version: self.state.version,
        }
    }

    /// Whether [`MetaNode::drain`] has work (call it until this is false).
    pub fn has_ready(&self) -> bool {
        self.raw.has_ready()
    }

    /// Advances the logical clock by one tick.
    pub fn tick(&mut self) {
        if self.jitter_ticks_left > 0 && self.raw.raft.state != StateRole::Leader {
            self.jitter_ticks_left -= 1;
            return;
        }
        self.raw.tick();
        self.observe_role();
    }

    /// Redraws the election jitter whenever the term or role changes.
    fn observe_role(&mut self) {
        let now = (self.raw.raft.term, self.raw.raft.state);
        if now != self.seen {
            self.seen = now;
            self.jitter_ticks_left = if now.1 == StateRole::Leader {
                0
            } else {
                self.jitter.below(self.config.election_ticks)
            };
        }
    }

    /// Feeds a message received from a peer.
    pub fn step(&mut self, bytes: &[u8]) -> Result<(), MetaError> {
        if bytes.len() as u64 > self.config.message_bytes_max {
            return Err(MetaError::MessageTooLarge {
                bytes: bytes.len() as u64,
                max: self.config.message_bytes_max,
            });
        }
        let msg = <Message as prost::Message>::decode(bytes)?;
        if msg.to != self.config.node_id || !self.config.voters.contains(&msg.from) {
            return Err(MetaError::Misrouted {
                from: msg.from,
                to: msg.to,
                node_id: self.config.node_id,
            });
        }
        let result = self.raw.step(msg);
        self.observe_role();
        result.map_err(MetaError::from)
    }

    /// Tells raft that `node_id` could not be reached (it backs off).
    pub fn report_unreachable(&mut self, node_id: u64) {
        self.raw.report_unreachable(node_id);
    }

    /// Proposes a command. Only the leader accepts; the command is replicated
    /// and shows up in [`Output::applied`] with the returned id once
    /// committed, or never (leadership lost): retry on the new leader.
    pub fn propose(&mut self, cmd: &Command) -> Result<ProposalId, ProposeError> {
        if self.raw.raft.state != StateRole::Leader {
            return Err(ProposeError::NotLeader {
                leader_id: self.raw.raft.leader_id,
            });
        }
        let data = cmd.encode()?;
        if data.len() > self.config.proposal_bytes_max as usize {
            return Err(ProposeError::TooLarge {
                bytes: data.len() as u64,
                max: u64::from(self.config.proposal_bytes_max),
            });
        }
        let unapplied = self.raw.raft.raft_log.last_index() - self.applied_index;
        if unapplied >= self.config.unapplied_entries_max {
            return Err(ProposeError::Backpressure {
                entries: unapplied,
                max: self.config.unapplied_entries_max,
            });
        }
        let id = ProposalId {
            node_id: self.config.node_id,
            boot: self.raw.store().boot(),
            seq: self.next_seq,
        };
        self.raw.propose(id.encode(), data)?;
        self.next_seq += 1;
        Ok(id)
    }

    /// Processes one raft Ready: persists (and fsyncs when raft requires it)
    /// before returning the messages that depend on it, applies committed
    /// entries, and compacts the log when due.
    pub fn drain(&mut self) -> Result<Output, MetaError> {
        let mut out = Output::default();
        if !self.raw.has_ready() {
            return Ok(out);
        }
        let mut snapshots_sent = Vec::new();
        let mut rd = self.raw.ready();
        encode_messages(rd.take_messages(), &mut out.messages, &mut snapshots_sent);
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            let state = MetadataState::decode(&snap.data).map_err(MetaError::BadSnapshot)?;
            self.raw.mut_store().apply_snapshot(&snap)?;
            self.state = state;
            self.applied_index = snap.get_metadata().index;
            out.persisted.installed_snapshot = Some(self.applied_index);
        }
        self.apply(rd.take_committed_entries(), &mut out.applied);
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state(hs)?;
            out.persisted.hard_state = true;
        }
        if !rd.entries().is_empty() {
            self.raw.mut_store().append(rd.entries())?;
            out.persisted.entries = rd.entries().len() as u64;
        }
        if rd.must_sync() || out.persisted.entries > 0 {
            out.persisted.synced = self.raw.mut_store().sync()?;
        }
        encode_messages(
            rd.take_persisted_messages(),
            &mut out.messages,
            &mut snapshots_sent,
        );
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        encode_messages(
            light.take_messages(),
            &mut out.messages,
            &mut snapshots_sent,
        );
        self.apply(light.take_committed_entries(), &mut out.applied);
        self.raw.advance_apply_to(self.applied_index);
        if self.applied_index - self.raw.store().snapshot_index()
            >= self.config.snapshot_every_entries
        {
            let data = self.state.encode().map_err(MetaError::BadSnapshot)?;
            self.raw.mut_store().compact(self.applied_index, data)?;
            out.persisted.compacted_to = Some(self.applied_index);
        }
        self.raw.mut_store().maybe_rewrite()?;
        // The engine sends bytes without delivery reports. Reporting each
        // snapshot as sent lets raft-rs probe the follower again after a
        // heartbeat: if the snapshot was lost, the probe finds the follower
        // still behind and a new snapshot goes out, instead of the follower's
        // progress staying paused forever.
        for to in snapshots_sent {
            self.raw.report_snapshot(to, SnapshotStatus::Finish);
        }
        self.observe_role();
        Ok(out)
    }

    fn apply(&mut self, entries: Vec<Entry>, applied: &mut Vec<Applied>) {
        for e in entries {
            if e.index <= self.applied_index {
                continue;
            }
            assert_eq!(
                e.index,
                self.applied_index + 1,
                "committed entries skip an index"
            );
            self.applied_index = e.index;
            // Empty entries are the no-ops a new leader appends; membership
            // changes are never proposed (the voter set is fixed).
            if e.data.is_empty() || e.get_entry_type() != EntryType::EntryNormal {
                continue;
            }
            let proposal = ProposalId::decode(&e.context).ok();
            let (command, outcome) = match Command::decode(&e.data) {
                Ok(cmd) => {
                    let outcome = self.state.apply(&cmd);
                    (Some(cmd), outcome)
                }
                Err(source) => {
                    self.state.rejected += 1;
                    (None, Err(CommandError::Undecodable { source }))
                }
            };
            applied.push(Applied {
                index: e.index,
                term: e.term,
                proposal,
                command,
                outcome,
            });
        }
    }
}

fn encode_messages(msgs: Vec<Message>, out: &mut Vec<Outgoing>, snapshots_sent: &mut Vec<u64>) {
    for m in msgs {
        if m.get_msg_type() == MessageType::MsgSnapshot {
            snapshots_sent.push(m.to);
        }
        out.push(Outgoing {
            to: m.to,
            bytes: prost::Message::encode_to_vec(&m),
        });
    }
}
