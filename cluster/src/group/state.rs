//! One consumer group's coordinator state: members, their targets, and who owns what.
//!
//! The protocol and its reasons are in the module docs of [`crate::group`]. The invariant kept
//! here: the `owned` sets of the members are pairwise disjoint, and `owners` indexes exactly
//! them. A partition enters a member's `owned` only in [`Group::sync`], and only if no other
//! member owns it; it leaves when the member reports it no longer consumes it, leaves, or
//! expires.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    cut, Assignments, Assignor, GroupError, Subscriptions, Tp, GROUP_PARTITIONS_MAX, MEMBERS_MAX,
    NAME_BYTES_MAX, SESSION_TIMEOUT_MS_MAX, SESSION_TIMEOUT_MS_MIN, TOPICS_PER_MEMBER_MAX,
};

/// The answer to a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The member's id (as given).
    pub member_id: String,
    /// The group's generation after the join; pass it to `sync` and `heartbeat`.
    pub generation: u32,
}

/// The answer to a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The group's current generation; pass it to later heartbeats.
    pub generation: u32,
    /// The partitions the member may consume now. Anything it consumes that is not in here
    /// must be stopped (and its offsets committed), then reported by syncing again.
    pub assigned: BTreeSet<Tp>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Nothing changed for this member: keep consuming.
    Stable,
    /// The generation moved on, a sync would now answer something else, or the member still
    /// holds a revoked partition: sync again, reporting what it still consumes.
    SyncNeeded,
}

/// A member, as shown by status output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Member id.
    pub id: String,
    /// Subscribed topics.
    pub topics: BTreeSet<String>,
    /// Its session timeout.
    pub session_timeout_ms: u32,
    /// What the assignor wants it to consume.
    pub target: BTreeSet<Tp>,
    /// What it may still be consuming, as far as the coordinator knows.
    pub owned: BTreeSet<Tp>,
    /// What its last sync answered.
    pub assigned: BTreeSet<Tp>,
    /// When the coordinator last heard from it.
    pub last_seen_ms: u64,
}

#[derive(Debug, Clone)]
struct Member {
    topics: BTreeSet<String>,
    session_timeout_ms: u32,
    last_seen_ms: u64,
    target: BTreeSet<Tp>,
    owned: BTreeSet<Tp>,
    assigned: BTreeSet<Tp>,
}

impl Member {
    fn deadline_ms(&self) -> u64 {
        self.last_seen_ms
            .saturating_add(u64::from(self.session_timeout_ms))
    }

    fn touch(&mut self, now_ms: u64) {
        // A clock stepping back must not shorten a session.
        self.last_seen_ms = self.last_seen_ms.max(now_ms);
    }
}

/// One consumer group's coordinator state machine.
#[derive(Debug, Clone)]
pub struct Group {
    name: String,
    /// Set by the first member; cleared when the group empties.
    assignor: Option<Assignor>,
    generation: u32,
    members: BTreeMap<String, Member>,
    /// Partition counts of the subscribed topics, as last given to [`Group::set_topics`].
    topics: BTreeMap<String, u32>,
    /// Partition → the member whose `owned` holds it.
    owners: BTreeMap<Tp, String>,
}

impl Group {
    /// An empty group at generation 0.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            assignor: None,
            generation: 0,
            members: BTreeMap::new(),
            topics: BTreeMap::new(),
            owners: BTreeMap::new(),
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current generation; it goes up whenever the target assignment is recomputed.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The group's assignor (`None` while it has no members).
    pub fn assignor(&self) -> Option<Assignor> {
        self.assignor
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member, in id order.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.members
            .iter()
            .map(|(id, m)| MemberInfo {
                id: id.clone(),
                topics: m.topics.clone(),
                session_timeout_ms: m.session_timeout_ms,
                target: m.target.clone(),
                owned: m.owned.clone(),
                assigned: m.assigned.clone(),
                last_seen_ms: m.last_seen_ms,
            })
            .collect()
    }

    /// The earliest time a member's session runs out (call [`Group::expire`] then), if any.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.members.values().map(Member::deadline_ms).min()
    }

    /// Adds the member `member_id` (the engine generates ids for new members), or refreshes it
    /// if it is known; a new member or a changed subscription or assignor starts a new
    /// generation. The group's assignor is the first member's; another member asking for a
    /// different one is refused.
    ///
    /// Errors: [`GroupError::InvalidMemberId`], [`GroupError::InvalidSessionTimeout`],
    /// [`GroupError::TooManyTopics`], [`GroupError::InvalidTopicName`],
    /// [`GroupError::InconsistentAssignor`], [`GroupError::GroupFull`].
    pub fn join(
        &mut self,
        member_id: &str,
        topics: BTreeSet<String>,
        assignor: Assignor,
        session_timeout_ms: u32,
        now_ms: u64,
    ) -> Result<Joined, GroupError> {
        if member_id.is_empty() || member_id.len() > NAME_BYTES_MAX {
            return Err(GroupError::InvalidMemberId {
                member_id: cut(member_id),
                bytes_max: NAME_BYTES_MAX,
            });
        }
        if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(&session_timeout_ms) {
            return Err(GroupError::InvalidSessionTimeout {
                ms: session_timeout_ms,
                min: SESSION_TIMEOUT_MS_MIN,
                max: SESSION_TIMEOUT_MS_MAX,
            });
        }
        if topics.len() > TOPICS_PER_MEMBER_MAX {
            return Err(GroupError::TooManyTopics {
                count: topics.len(),
                max: TOPICS_PER_MEMBER_MAX,
            });
        }
        if let Some(bad) = topics
            .iter()
            .find(|t| t.is_empty() || t.len() > NAME_BYTES_MAX)
        {
            return Err(GroupError::InvalidTopicName {
                name: cut(bad),
                bytes_max: NAME_BYTES_MAX,
            });
        }
        let others = self.members.keys().any(|id| id != member_id);
        if let Some(group_assignor) = self.assignor {
            if group_assignor != assignor && others {
                return Err(GroupError::InconsistentAssignor {
                    group_assignor,
                    requested: assignor,
                });
            }
        }
        let known = self.members.contains_key(member_id);
        if !known && self.members.len() >= MEMBERS_MAX {
            return Err(GroupError::GroupFull { max: MEMBERS_MAX });
        }
        let mut changed = self.assignor != Some(assignor);
        self.assignor = Some(assignor);
        match self.members.get_mut(member_id) {
            Some(m) => {
                m.session_timeout_ms = session_timeout_ms;
                m.touch(now_ms);
                if m.topics != topics {
                    m.topics = topics;
                    changed = true;
                }
            }
            None => {
                self.members.insert(
                    member_id.to_string(),
                    Member {
                        topics,
                        session_timeout_ms,
                        last_seen_ms: now_ms,
                        target: BTreeSet::new(),
                        owned: BTreeSet::new(),
                        assigned: BTreeSet::new(),
                    },
                );
                changed = true;
            }
        }
        if changed {
            self.recompute();
        }
        Ok(Joined {
            member_id: member_id.to_string(),
            generation: self.generation,
        })
    }

    /// Sets the partition counts of the topics the members subscribe to (the engine passes them
    /// from metadata; entries for topics nobody subscribes to are ignored, and a subscribed
    /// topic missing here is not assigned). Starts a new generation if a count changed.
    ///
    /// Errors: [`GroupError::TooManyPartitions`] if the subscribed topics have more than
    /// [`GROUP_PARTITIONS_MAX`] partitions; the previous counts stay in force.
    pub fn set_topics(&mut self, topics: BTreeMap<String, u32>) -> Result<(), GroupError> {
        let subscribed = self.subscribed_topics();
        let topics: BTreeMap<String, u32> = topics
            .into_iter()
            .filter(|(t, _)| subscribed.contains(t.as_str()))
            .collect();
        let total: u64 = topics.values().map(|&c| u64::from(c)).sum();
        if total > GROUP_PARTITIONS_MAX {
            return Err(GroupError::TooManyPartitions {
                total,
                max: GROUP_PARTITIONS_MAX,
            });
        }
        if topics != self.topics {
            self.topics = topics;
            self.recompute();
        }
        Ok(())
    }

    /// The member reports `owned`, the partitions it still consumes, and learns what it may
    /// consume now (`assigned`: its target minus what other members still own).
    ///
    /// The coordinator then counts as the member's: what it reported among what it could still
    /// hold, plus `assigned`. A partition it reports but is not assigned has been revoked: the
    /// member must stop consuming it, commit, and sync again without it; until then nobody
    /// else gets it. A partition it reports but never held (or held by a previous session) is
    /// ignored. An older generation is accepted (it is how a member catches up); the answer
    /// carries the current one. The caller bounds the decoded report (a member never holds more
    /// than [`GROUP_PARTITIONS_MAX`] partitions); this costs O(report + target) set operations.
    ///
    /// Errors: [`GroupError::UnknownMember`]; [`GroupError::IllegalGeneration`] for a
    /// generation newer than the group's.
    pub fn sync(
        &mut self,
        member_id: &str,
        generation: u32,
        owned: BTreeSet<Tp>,
        now_ms: u64,
    ) -> Result<Synced, GroupError> {
        self.check_member(member_id, generation)?;
        let Some(m) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMember {
                member_id: member_id.to_string(),
            });
        };
        m.touch(now_ms);
        let released: Vec<Tp> = m.owned.difference(&owned).cloned().collect();
        for tp in &released {
            m.owned.remove(tp);
            self.owners.remove(tp);
        }
        let assigned = self.grantable(member_id);
        if let Some(m) = self.members.get_mut(member_id) {
            for tp in &assigned {
                if m.owned.insert(tp.clone()) {
                    self.owners.insert(tp.clone(), member_id.to_string());
                }
            }
            m.assigned = assigned.clone();
        }
        Ok(Synced {
            generation: self.generation,
            assigned,
        })
    }

    /// Refreshes the member's session and says whether it should sync: when its generation is
    /// not the current one, when a sync would now answer something else than last time
    /// (a partition was revoked from it, or one it waits for was released), or when it still
    /// owns a partition it was not last assigned (its last report kept a revoked partition).
    ///
    /// Errors: [`GroupError::UnknownMember`]; [`GroupError::IllegalGeneration`] for a
    /// generation newer than the group's.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        generation: u32,
        now_ms: u64,
    ) -> Result<Beat, GroupError> {
        self.check_member(member_id, generation)?;
        let Some(m) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMember {
                member_id: member_id.to_string(),
            });
        };
        m.touch(now_ms);
        if generation != self.generation {
            return Ok(Beat::SyncNeeded);
        }
        let would = self.grantable(member_id);
        // A member still holding a partition outside its assignment (revoked, or gone with a
        // shrunk topic) is reminded to report it stopped: until it does, nobody else gets it.
        let same = self
            .members
            .get(member_id)
            .is_some_and(|m| m.assigned == would && m.owned == m.assigned);
        Ok(if same { Beat::Stable } else { Beat::SyncNeeded })
    }

    /// Removes the member; its partitions are free for others at once, and a new generation
    /// starts.
    ///
    /// Errors: [`GroupError::UnknownMember`].
    pub fn leave(&mut self, member_id: &str) -> Result<(), GroupError> {
        if !self.remove(member_id) {
            return Err(GroupError::UnknownMember {
                member_id: member_id.to_string(),
            });
        }
        self.recompute();
        Ok(())
    }

    /// Removes every member whose session ran out (`now_ms >= last contact + session timeout`)
    /// and returns their ids; if there were any, a new generation starts.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.deadline_ms() <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.remove(id);
        }
        if !gone.is_empty() {
            self.recompute();
        }
        gone
    }

    /// Fences an offset commit for `tp`: the member must be in the group, and either at the
    /// current generation or still owning `tp` (so a member finishing a revoked partition may
    /// commit it before syncing).
    ///
    /// Errors: [`GroupError::UnknownMember`], [`GroupError::IllegalGeneration`].
    pub fn check_commit(
        &self,
        member_id: &str,
        generation: u32,
        tp: &Tp,
    ) -> Result<(), GroupError> {
        let Some(m) = self.members.get(member_id) else {
            return Err(GroupError::UnknownMember {
                member_id: member_id.to_string(),
            });
        };
        if generation == self.generation || m.owned.contains(tp) {
            Ok(())
        } else {
            Err(GroupError::IllegalGeneration {
                member_id: member_id.to_string(),
                expected: self.generation,
                got: generation,
            })
        }
    }

    fn check_member(&self, member_id: &str, generation: u32) -> Result<(), GroupError> {
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMember {
                member_id: member_id.to_string(),
            });
        }
        if generation > self.generation {
            return Err(GroupError::IllegalGeneration {
                member_id: member_id.to_string(),
                expected: self.generation,
                got: generation,
            });
        }
        Ok(())
    }

    /// The member's target minus what other members own.
    fn grantable(&self, member_id: &str) -> BTreeSet<Tp> {
        let Some(m) = self.members.get(member_id) else {
            return BTreeSet::new();
        };
        m.target
            .iter()
            .filter(|tp| self.owners.get(*tp).is_none_or(|o| o == member_id))
            .cloned()
            .collect()
    }

    /// Drops a member and its ownership; false if it was not there.
    fn remove(&mut self, member_id: &str) -> bool {
        let Some(m) = self.members.remove(member_id) else {
            return false;
        };
        for tp in &m.owned {
            self.owners.remove(tp);
        }
        true
    }

    fn subscribed_topics(&self) -> BTreeSet<&str> {
        self.members
            .values()
            .flat_map(|m| m.topics.iter().map(String::as_str))
            .collect()
    }

    /// Recomputes every member's target and starts a new generation.
    fn recompute(&mut self) {
        if self.members.is_empty() {
            self.assignor = None;
        }
        let subscribed: BTreeSet<String> = self
            .subscribed_topics()
            .into_iter()
            .map(str::to_string)
            .collect();
        // Counts of topics nobody subscribes to any more are dropped, so they stay bounded.
        self.topics.retain(|t, _| subscribed.contains(t));
        let subscriptions: Subscriptions = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        let previous: Assignments = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.target.clone()))
            .collect();
        let mut targets = match self.assignor {
            Some(a) => a.assign(&subscriptions, &self.topics, &previous),
            None => Assignments::new(),
        };
        for (id, m) in &mut self.members {
            m.target = targets.remove(id).unwrap_or_default();
        }
        // Wrapping to 1 after u32::MAX keeps 0 meaning "never computed".
        self.generation = self.generation.checked_add(1).unwrap_or(1);
    }
}
