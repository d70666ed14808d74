//! What a node does: metadata, crashes and restarts, produce, fetches and their answers.

use cluster::{
    BatchSpan, BecomeLeaderError, FetchAnswer, FetchRefusal, FetchReply, FollowerState,
    LeaderEpochs, LeaderInit, LeaderState, LocalLog, Verdict,
};

use super::net::{Envelope, Msg, Rec, CONTROLLER};
use super::world::{
    Meta, Role, World, BATCH_RECORDS_MAX, FETCH_RECORDS_MAX, FETCH_TIMEOUT_TICKS, NODES,
    PROPOSAL_RESEND_TICKS,
};

impl World {
    pub(super) fn become_leader(
        &mut self,
        i: usize,
        local: LocalLog,
        meta: &Meta,
    ) -> Result<(), String> {
        let init = LeaderInit {
            node_id: self.nodes[i].id,
            leader_epoch: meta.epoch,
            replicas: NODES.to_vec(),
            in_sync: meta.isr.clone(),
            isr_version: meta.isr_version,
        };
        let id = self.nodes[i].id;
        // A new leader first makes its whole log durable.
        let mut local = local;
        self.nodes[i].disk.durable = self.nodes[i].disk.log.len();
        local.durable_offset = local.log_end_offset;
        let l = match LeaderState::new(init, local.clone(), self.config, self.now_ms()) {
            Ok(l) => l,
            Err(BecomeLeaderError::EpochNotNew { .. }) => {
                // Restarted before the controller noticed, and metadata still names this node at
                // the epoch it led before the crash: wait for a new election.
                let f =
                    FollowerState::new(id, None, meta.epoch, local).map_err(|e| e.to_string())?;
                self.nodes[i].role = Role::Follower(f);
                self.stats.refused_old_epoch += 1;
                return self.controller_on_leader_restart(id);
            }
            Err(e) => fail!("node {id} cannot lead: {e}"),
        };
        self.event(format_args!(
            "node {id} leads at {} (log {}, durable {}, hw {}, epochs {:?})",
            meta.epoch,
            l.local().log_end_offset,
            l.local().durable_offset,
            l.high_watermark(),
            l.local().epochs.entries()
        ));
        if !self.led.insert(meta.epoch) {
            fail!(
                "node {id} leads at epoch {}, which was led before",
                meta.epoch
            );
        }
        self.nodes[i].role = Role::Leader(l);
        self.nodes[i].persist_epochs()?;
        self.check_leader_holds_history(i)
    }

    pub(super) fn apply_meta(&mut self, i: usize, meta: Meta) -> Result<(), String> {
        if meta.version <= self.nodes[i].meta_version || !self.nodes[i].up() {
            return Ok(());
        }
        self.nodes[i].meta_version = meta.version;
        let id = self.nodes[i].id;
        let role = std::mem::replace(&mut self.nodes[i].role, Role::Down { until: 0 });
        match role {
            Role::Down { .. } => unreachable!("checked up above"),
            Role::Follower(mut f) => {
                if meta.leader == Some(id) && meta.epoch > f.leader_epoch() {
                    self.become_leader(i, f.into_local(), &meta)?;
                } else {
                    if f.on_leader_change(meta.leader, meta.epoch) {
                        self.nodes[i].fetch_sent_at = None;
                    }
                    self.nodes[i].role = Role::Follower(f);
                }
            }
            Role::Leader(mut l) => {
                if meta.epoch == l.leader_epoch() {
                    l.on_isr_committed(meta.epoch, meta.isr_version, &meta.isr)
                        .map_err(|e| format!("node {id}: {e}"))?;
                    self.nodes[i].role = Role::Leader(l);
                } else if meta.epoch < l.leader_epoch() {
                    self.nodes[i].role = Role::Leader(l);
                } else if meta.leader == Some(id) {
                    self.become_leader(i, l.into_local(), &meta)?;
                } else {
                    let f = FollowerState::new(id, meta.leader, meta.epoch, l.into_local())
                        .map_err(|e| e.to_string())?;
                    self.nodes[i].role = Role::Follower(f);
                    self.nodes[i].fetch_sent_at = None;
                }
            }
        }
        Ok(())
    }

    pub(super) fn recover_local(&self, i: usize) -> Result<LocalLog, String> {
        let disk = &self.nodes[i].disk;
        let mut epochs = LeaderEpochs::decode(&disk.epochs_file)
            .map_err(|e| format!("node {}: {e}", self.nodes[i].id))?;
        epochs.recover_to(disk.log.len() as u64);
        for (o, rec) in disk.log.iter().enumerate() {
            if epochs.epoch_of(o as u64) != Some(rec.epoch) {
                fail!(
                    "node {}: recovered epochs say {:?} wrote offset {o}, the log says {}",
                    self.nodes[i].id,
                    epochs.epoch_of(o as u64),
                    rec.epoch
                );
            }
        }
        let len = disk.log.len() as u64;
        Ok(LocalLog {
            log_start_offset: 0,
            log_end_offset: len,
            durable_offset: len,
            high_watermark: 0,
            epochs,
        })
    }

    /// Crashes node `i`, losing its unsynced suffix. `noticed`: down long enough for the
    /// controller to react; otherwise it is back within a few ticks and the controller never
    /// learns of it (a restart faster than `leader_down_grace_ms`).
    pub(super) fn crash(&mut self, i: usize, noticed: bool) -> Result<(), String> {
        let id = self.nodes[i].id;
        let until = if noticed {
            self.now + self.rng.between(5, 60)
        } else {
            self.now + self.rng.between(1, 4)
        };
        let n = &mut self.nodes[i];
        n.disk.log.truncate(n.disk.durable);
        n.role = Role::Down { until };
        n.meta_inbox.clear();
        n.fetch_sent_at = None;
        self.pending_acks.retain(|p| p.0 != id);
        self.stats.crashes += 1;
        self.mix(0xC4A5 + u64::from(id));
        self.event(format_args!(
            "crash {id} (noticed {noticed}), keeps {} records",
            self.nodes[i].disk.log.len()
        ));
        // What a restart would find must already be consistent.
        self.recover_local(i)?;
        if noticed {
            self.controller_on_crash(id)?;
        }
        Ok(())
    }

    pub(super) fn restart(&mut self, i: usize) -> Result<(), String> {
        let local = self.recover_local(i)?;
        let id = self.nodes[i].id;
        self.nodes[i].role =
            Role::Follower(FollowerState::new(id, None, 0, local).map_err(|e| e.to_string())?);
        self.nodes[i].meta_version = 0;
        self.mix(0x5747 + u64::from(id));
        self.event(format_args!(
            "restart {id} with {} records",
            self.nodes[i].disk.log.len()
        ));
        if self.meta.leader.is_none() && self.elect_leader(None)? {
            self.broadcast();
        }
        let meta = self.meta.clone();
        self.apply_meta(i, meta)
    }

    pub(super) fn sync(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.disk.durable = n.disk.log.len();
        let d = n.disk.durable as u64;
        match &mut n.role {
            Role::Down { .. } => {}
            Role::Follower(f) => f.on_durable(d),
            Role::Leader(l) => {
                l.on_durable(d);
            }
        }
    }

    pub(super) fn produce(&mut self) {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| matches!(self.nodes[i].role, Role::Leader(_)))
            .collect();
        if leaders.is_empty() {
            return;
        }
        let i = leaders[self.rng.below(leaders.len() as u64) as usize];
        let count = self.rng.between(1, 3);
        let n = &mut self.nodes[i];
        let Role::Leader(l) = &mut n.role else {
            return;
        };
        if l.check_min_insync().is_err() {
            self.stats.not_enough_replicas += 1;
            return;
        }
        let epoch = l.leader_epoch();
        for _ in 0..count {
            let rec = Rec {
                epoch,
                payload: self.next_payload,
            };
            self.next_payload += 1;
            let offset = n.disk.log.len() as u64;
            n.disk.log.push(rec);
            self.pending_acks.push((n.id, epoch, offset, rec));
            self.stats.produced += 1;
        }
        l.on_append(n.disk.log.len() as u64);
    }

    pub(super) fn read_batches(log: &[Rec], from: u64) -> Vec<(BatchSpan, Vec<Rec>)> {
        let end = log.len().min(from as usize + FETCH_RECORDS_MAX);
        let mut out: Vec<(BatchSpan, Vec<Rec>)> = Vec::new();
        for (o, &rec) in log.iter().enumerate().take(end).skip(from as usize) {
            match out.last_mut() {
                Some((span, recs)) if span.epoch == rec.epoch && recs.len() < BATCH_RECORDS_MAX => {
                    span.next_offset += 1;
                    recs.push(rec);
                }
                _ => out.push((
                    BatchSpan {
                        epoch: rec.epoch,
                        base_offset: o as u64,
                        next_offset: o as u64 + 1,
                    },
                    vec![rec],
                )),
            }
        }
        out
    }

    pub(super) fn deliver(&mut self, env: Envelope) -> Result<(), String> {
        self.mix(env.deliver_at);
        self.mix(env.seq);
        if env.to == CONTROLLER {
            if let Msg::Propose(change) = env.msg {
                self.controller_on_proposal(env.from, change);
            }
            return Ok(());
        }
        let i = Self::idx(env.to);
        let now_ms = self.now_ms();
        let id = self.nodes[i].id;
        match env.msg {
            Msg::Fetch(req) => {
                let Role::Leader(l) = &mut self.nodes[i].role else {
                    return Ok(());
                };
                match l.on_fetch(&req, now_ms) {
                    Ok(answer) => {
                        if self.verbose {
                            eprintln!(
                                "[{:>5}] {id} answers {req:?} with {:?}",
                                self.now, answer.reply
                            );
                        }
                        let batches = match answer.reply {
                            FetchReply::Records { .. } => {
                                Self::read_batches(&self.nodes[i].disk.log, answer.fetch_offset)
                            }
                            FetchReply::Diverging { .. } => Vec::new(),
                        };
                        let now = self.now;
                        self.net.send(
                            &mut self.rng,
                            now,
                            id,
                            env.from,
                            Msg::Answer { answer, batches },
                        );
                    }
                    Err(
                        FetchRefusal::FencedLeaderEpoch { .. }
                        | FetchRefusal::UnknownLeaderEpoch { .. },
                    ) => {}
                    Err(e) => fail!("leader {id} refused {req:?}: {e}"),
                }
            }
            Msg::Answer { answer, batches } => self.on_answer(i, &answer, batches)?,
            Msg::Propose(_) => fail!("proposal sent to node {id}"),
        }
        Ok(())
    }

    pub(super) fn on_answer(
        &mut self,
        i: usize,
        answer: &FetchAnswer,
        batches: Vec<(BatchSpan, Vec<Rec>)>,
    ) -> Result<(), String> {
        // The leader that answered, if it still leads at that epoch: a truncation may only cut
        // records that differ from what it holds at the same offsets.
        let answered_by = self.nodes.iter().position(
            |n| matches!(&n.role, Role::Leader(l) if l.leader_epoch() == answer.leader_epoch),
        );
        let leader_log = answered_by.map(|j| self.nodes[j].disk.log.clone());
        let n = &mut self.nodes[i];
        let Role::Follower(f) = &mut n.role else {
            return Ok(());
        };
        let spans: Vec<BatchSpan> = batches.iter().map(|b| b.0).collect();
        let verdict = f
            .on_answer(answer, &spans)
            .map_err(|e| format!("node {}: bad answer {answer:?}: {e}", n.id))?;
        match verdict {
            Verdict::Append { epochs_changed } => {
                if n.disk.log.len() as u64 != answer.fetch_offset {
                    fail!(
                        "node {}: appended at {} but log ends at {}",
                        n.id,
                        answer.fetch_offset,
                        n.disk.log.len()
                    );
                }
                if epochs_changed {
                    n.persist_epochs()?;
                }
                for (_, recs) in batches {
                    n.disk.log.extend(recs);
                }
                n.fetch_sent_at = None;
            }
            Verdict::Truncate { offset } => {
                if self.verbose {
                    eprintln!(
                        "[{:>5}] node {} truncates {} -> {offset} ({answer:?})",
                        self.now,
                        n.id,
                        n.disk.log.len()
                    );
                }
                let cut = offset as usize..n.disk.log.len();
                if let Some(ll) = &leader_log {
                    if let Some(o) = cut.clone().find(|&o| ll.get(o) == Some(&n.disk.log[o])) {
                        fail!(
                            "node {} truncated to {offset}, cutting {:?} at {o} which the leader holds too",
                            n.id,
                            n.disk.log[o]
                        );
                    }
                }
                n.disk.log.truncate(offset as usize);
                n.disk.durable = n.disk.durable.min(offset as usize);
                n.persist_epochs()?;
                n.fetch_sent_at = None;
                self.stats.truncations += 1;
            }
            Verdict::Ignore(_) => {}
        }
        Ok(())
    }

    pub(super) fn node_actions(&mut self) {
        let now = self.now;
        let now_ms = self.now_ms();
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up() {
                continue;
            }
            if self.rng.chance(self.rates.sync) {
                self.sync(i);
            }
            let id = self.nodes[i].id;
            let n = &mut self.nodes[i];
            match &mut n.role {
                Role::Down { .. } => {}
                Role::Follower(f) => {
                    let idle = n
                        .fetch_sent_at
                        .is_none_or(|t| now >= t + FETCH_TIMEOUT_TICKS);
                    if let (true, Some(req), Some(leader)) = (idle, f.next_fetch(), f.leader()) {
                        n.fetch_sent_at = Some(now);
                        self.net
                            .send(&mut self.rng, now, id, leader, Msg::Fetch(req));
                    }
                }
                Role::Leader(l) => {
                    let change = match l.poll_isr_change(now_ms) {
                        Some(c) => Some(c),
                        None if now >= n.proposal_sent_at + PROPOSAL_RESEND_TICKS => {
                            l.pending_isr_change().cloned()
                        }
                        None => None,
                    };
                    if let Some(c) = change {
                        n.proposal_sent_at = now;
                        self.net
                            .send(&mut self.rng, now, id, CONTROLLER, Msg::Propose(c));
                    }
                }
            }
        }
    }
}
