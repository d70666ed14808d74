//! `sprawl sub --group G` as a member of consumer group G: the coordinator decides which
//! partitions this consumer reads (protocol in `docs/consumer-groups.md`).
//!
//! The member joins, syncs to learn its partitions, consumes only those, and heartbeats every
//! [`GroupMember::beat_interval`]. When the coordinator answers REBALANCE_IN_PROGRESS it syncs
//! again, reporting what it still consumes; partitions missing from the answer are stopped and
//! their offsets committed first, then it syncs once more so the coordinator can hand them on.
//! UNKNOWN_MEMBER or ILLEGAL_GENERATION (the session expired, or the coordinator moved and
//! forgot it) stop every partition and rejoin. A member that cannot reach its coordinator for
//! its whole session timeout stops consuming too: by then the group has given its partitions
//! to others.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use net::client::ClientError;
use net::codec::ErrorCode;

use super::{Consumer, PartState};
use crate::cli::pubsub::{retriable, RETRY_FOR};

/// Syncs in a row while partitions are being handed over, before waiting for the next beat.
const SYNC_ROUNDS_MAX: u32 = 4;

/// This consumer's membership in its group.
pub(in crate::cli::pubsub) struct GroupMember {
    pub group: String,
    pub assignor: String,
    pub session_timeout_ms: u32,
    /// Empty until joined (and again after the coordinator forgot the member).
    member_id: String,
    generation: u32,
    next_beat: Instant,
    sync_needed: bool,
    /// When the coordinator was last reached, to stop consuming once the session must have
    /// expired.
    last_contact: Instant,
    /// Where a newly assigned partition without a committed offset starts: partition -> offset.
    default_starts: std::collections::HashMap<u32, u64>,
    /// Since when joining has failed: joining for [`RETRY_FOR`] without success ends the
    /// command.
    join_failing: Option<Instant>,
}

impl GroupMember {
    pub fn new(
        group: String,
        assignor: String,
        session_timeout_ms: u32,
        default_starts: impl IntoIterator<Item = (u32, u64)>,
    ) -> Self {
        GroupMember {
            group,
            assignor,
            session_timeout_ms,
            member_id: String::new(),
            generation: 0,
            next_beat: Instant::now(),
            sync_needed: true,
            last_contact: Instant::now(),
            default_starts: default_starts.into_iter().collect(),
            join_failing: None,
        }
    }

    /// A third of the session timeout, so two beats may be lost before it expires.
    fn beat_interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.session_timeout_ms / 3).max(100))
    }

    /// The member id and generation to commit with (empty before joining).
    pub fn fencing(&self) -> (&str, u32) {
        (&self.member_id, self.generation)
    }

    /// Forgets the membership: the next round joins again.
    pub fn forget(&mut self) {
        self.member_id.clear();
        self.generation = 0;
        self.sync_needed = true;
    }
}

/// True for the answers that mean the coordinator no longer knows this member as it is.
pub(in crate::cli::pubsub) fn fenced(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Server {
            code: ErrorCode::UnknownMember | ErrorCode::IllegalGeneration,
            ..
        }
    )
}

impl Consumer {
    /// Joins, heartbeats and syncs as due; adjusts the partitions consumed to the assignment.
    pub(super) fn maintain_membership(&mut self) -> Result<(), String> {
        let Some(m) = self.member.as_mut() else {
            return Ok(());
        };
        if m.last_contact.elapsed() > Duration::from_millis(u64::from(m.session_timeout_ms)) {
            let why = format!(
                "no answer from the coordinator of group {} for its {} ms session",
                m.group, m.session_timeout_ms
            );
            m.forget();
            m.last_contact = Instant::now();
            self.stop_all(&why);
        }
        let Some(m) = self.member.as_mut() else {
            return Ok(());
        };
        if m.member_id.is_empty() {
            let topic = self.settings.topic.clone();
            match self.cluster.join_group(
                &m.group,
                "",
                &[topic.as_str()],
                &m.assignor,
                m.session_timeout_ms,
            ) {
                Ok((id, generation)) => {
                    m.member_id = id;
                    m.generation = generation;
                    m.sync_needed = true;
                    m.last_contact = Instant::now();
                    m.join_failing = None;
                }
                Err(e) if retriable(&e) => {
                    let since = *m.join_failing.get_or_insert_with(Instant::now);
                    if since.elapsed() > RETRY_FOR {
                        return Err(format!(
                            "could not join group {} for {} s; last error: {e}",
                            m.group,
                            RETRY_FOR.as_secs()
                        ));
                    }
                    return Ok(());
                }
                Err(e) => return Err(format!("joining group {}: {e}", m.group)),
            }
        }
        if !self.member.as_ref().is_some_and(|m| m.sync_needed)
            && self
                .member
                .as_ref()
                .is_some_and(|m| Instant::now() >= m.next_beat)
        {
            self.beat()?;
        }
        for _ in 0..SYNC_ROUNDS_MAX {
            if !self.member.as_ref().is_some_and(|m| m.sync_needed) {
                break;
            }
            self.sync()?;
        }
        Ok(())
    }

    fn beat(&mut self) -> Result<(), String> {
        let Some(m) = self.member.as_mut() else {
            return Ok(());
        };
        let result = self.cluster.heartbeat(&m.group, &m.member_id, m.generation);
        m.next_beat = Instant::now() + m.beat_interval();
        match result {
            Ok(()) => {
                m.last_contact = Instant::now();
                Ok(())
            }
            Err(ClientError::Server {
                code: ErrorCode::RebalanceInProgress,
                ..
            }) => {
                m.last_contact = Instant::now();
                m.sync_needed = true;
                Ok(())
            }
            Err(e) if fenced(&e) => {
                let why = format!("group {}: {e}", m.group);
                m.forget();
                self.stop_all(&why);
                Ok(())
            }
            Err(e) if retriable(&e) => Ok(()),
            Err(e) => Err(format!("heartbeat to group {}: {e}", m.group)),
        }
    }

    /// One sync: reports what is consumed, stops what is no longer assigned (committing it
    /// first), starts what is newly assigned.
    fn sync(&mut self) -> Result<(), String> {
        let topic = self.settings.topic.clone();
        let owned: Vec<u32> = self.parts.keys().copied().collect();
        let Some(m) = self.member.as_mut() else {
            return Ok(());
        };
        let report = if owned.is_empty() {
            Vec::new()
        } else {
            vec![(topic.clone(), owned.clone())]
        };
        let result = self
            .cluster
            .sync_group(&m.group, &m.member_id, m.generation, &report);
        let (generation, assigned) = match result {
            Ok(answer) => answer,
            Err(e) if fenced(&e) => {
                let why = format!("group {}: {e}", m.group);
                m.forget();
                self.stop_all(&why);
                return Ok(());
            }
            Err(e) if retriable(&e) => {
                m.next_beat = Instant::now() + m.beat_interval();
                return Ok(());
            }
            Err(e) => return Err(format!("sync with group {}: {e}", m.group)),
        };
        m.generation = generation;
        m.last_contact = Instant::now();
        m.next_beat = Instant::now() + m.beat_interval();
        let assigned: BTreeSet<u32> = assigned
            .into_iter()
            .filter(|(t, _)| *t == topic)
            .flat_map(|(_, ps)| ps)
            .collect();
        let revoked: Vec<u32> = owned
            .iter()
            .copied()
            .filter(|p| !assigned.contains(p))
            .collect();
        for p in &revoked {
            self.revoke(*p)?;
        }
        if self.member.as_ref().is_none_or(|m| m.member_id.is_empty()) {
            // A commit was refused meanwhile: everything stopped and the member joins again.
            return Ok(());
        }
        let added: Vec<u32> = assigned
            .iter()
            .copied()
            .filter(|p| !self.parts.contains_key(p))
            .collect();
        for p in added {
            let start = self.start_of(p)?;
            self.parts.insert(p, PartState::starting_at(start));
        }
        // Handing revoked partitions on needs the coordinator to hear they are stopped.
        if let Some(m) = self.member.as_mut() {
            m.sync_needed = !revoked.is_empty();
        }
        Ok(())
    }

    /// Where a newly assigned partition starts: the group's committed offset, else the default.
    fn start_of(&mut self, p: u32) -> Result<u64, String> {
        let topic = self.settings.topic.clone();
        let Some(m) = self.member.as_ref() else {
            return Ok(0);
        };
        let group = m.group.clone();
        let default = m.default_starts.get(&p).copied().unwrap_or(0);
        match self.cluster.fetch_offset(&group, &topic, p) {
            Ok(committed) => Ok(committed.unwrap_or(default)),
            Err(e) => Err(format!(
                "partition {topic}/{p}: reading group {group}'s committed offset: {e}"
            )),
        }
    }

    /// Stops consuming `p`: ends its subscription and commits where it got to.
    fn revoke(&mut self, p: u32) -> Result<(), String> {
        self.unsubscribe(p);
        let next = self.parts.get(&p).map(|s| s.next_offset);
        if let Some(next) = next {
            self.commit(p, next)?;
        }
        self.parts.remove(&p);
        Ok(())
    }

    /// Stops every partition without committing (the coordinator would refuse the commits).
    pub(super) fn stop_all(&mut self, why: &str) {
        let parts: Vec<u32> = self.parts.keys().copied().collect();
        if !parts.is_empty() {
            eprintln!("sprawl sub: stopping partitions {parts:?}: {why}; joining the group again");
        }
        for p in parts {
            self.unsubscribe(p);
            self.parts.remove(&p);
        }
    }

    /// Leaves the group (best effort: the session expires otherwise).
    pub(super) fn leave(&mut self) {
        if let Some(m) = self.member.as_ref() {
            if !m.member_id.is_empty() {
                let _ = self.cluster.leave_group(&m.group, &m.member_id);
            }
        }
    }
}
