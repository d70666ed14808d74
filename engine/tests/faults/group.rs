//! Group consumption under faults: the members (3, or `SPRAWL_FAULTS_GROUP_MEMBERS`) of one
//! consumer group share the topic's partitions through the group's coordinator, following the
//! member protocol of `docs/consumer-groups.md` with `ClusterClient`: join, sync, start each
//! assigned partition at the group's committed offset, commit after every non-empty poll,
//! heartbeat every third of the session, sync again on `REBALANCE_IN_PROGRESS` (stopping and
//! committing what is no longer assigned), and rejoin from scratch on `UNKNOWN_MEMBER` /
//! `ILLEGAL_GENERATION` or after a whole session without an answer from the coordinator. Every
//! start, poll and acknowledged commit goes into the history (`GroupStart`, `GroupPoll`,
//! `GroupCommit`) for `group_check`.

use super::*;

/// The consumer group the members share.
pub(crate) const GROUP: &str = "faults-group";
/// Members of [`GROUP`] unless `SPRAWL_FAULTS_GROUP_MEMBERS` says otherwise (0: no group).
const GROUP_MEMBERS_DEFAULT: u64 = 3;
const GROUP_MEMBERS_MAX: u64 = 16;
const ASSIGNOR: &str = "cooperative-sticky";
const SESSION_TIMEOUT_MS: u32 = 6_000;
/// Long-poll wait of a member's fetch: short, so one member serves several partitions and
/// still heartbeats in time.
const GROUP_FETCH_WAIT_MS: u32 = 100;
/// Syncs in a row while partitions are being handed over, before polling again.
const SYNC_ROUNDS_MAX: u32 = 4;
/// Tries of the commit of a revoked partition's position before it is handed on regardless
/// (its next owner then reads some records again).
const REVOKE_COMMIT_TRIES: u32 = 3;

/// What the test thread and the members share about the group.
pub(crate) struct GroupShared {
    /// Member threads, each with its own client (0: no group consumption, no group checks).
    pub(crate) members: u32,
    /// Per partition: members stop once the group's polls reached here (set at the end).
    pub(crate) until: Vec<AtomicU64>,
    /// Per partition: the furthest position any member's poll reached.
    pub(crate) reached: Vec<AtomicU64>,
    /// Members stop when this passes (set at the end).
    pub(crate) deadline: Mutex<Option<Instant>>,
    pub(crate) joins: AtomicU64,
    /// `REBALANCE_IN_PROGRESS` answers (to heartbeats and commits).
    pub(crate) rebalances: AtomicU64,
    /// Partitions a sync took away from a member.
    pub(crate) revocations: AtomicU64,
    /// `UNKNOWN_MEMBER` / `ILLEGAL_GENERATION` answers: the member stopped and joined again.
    pub(crate) fenced: AtomicU64,
    /// Whole sessions without an answer from the coordinator: the member stopped and rejoined.
    pub(crate) sessions_lost: AtomicU64,
    /// Commits the coordinator refused (`UNKNOWN_MEMBER` / `ILLEGAL_GENERATION`).
    pub(crate) commit_refusals: AtomicU64,
}

impl GroupShared {
    /// `SPRAWL_FAULTS_GROUP_MEMBERS` members (default 3, at most 16).
    pub(crate) fn from_env() -> GroupShared {
        let members = env_u64("SPRAWL_FAULTS_GROUP_MEMBERS", GROUP_MEMBERS_DEFAULT);
        let per_partition = |v: u64| (0..PARTITIONS).map(|_| AtomicU64::new(v)).collect();
        GroupShared {
            members: members.min(GROUP_MEMBERS_MAX) as u32,
            until: per_partition(u64::MAX),
            reached: per_partition(0),
            deadline: Mutex::new(None),
            joins: AtomicU64::new(0),
            rebalances: AtomicU64::new(0),
            revocations: AtomicU64::new(0),
            fenced: AtomicU64::new(0),
            sessions_lost: AtomicU64::new(0),
            commit_refusals: AtomicU64::new(0),
        }
    }

    /// The group polled every partition up to its `until` (or there is no group).
    pub(crate) fn caught_up(&self) -> bool {
        self.members == 0
            || (0..PARTITIONS as usize).all(|p| {
                self.reached[p].load(Ordering::Relaxed) >= self.until[p].load(Ordering::Relaxed)
            })
    }

    fn finished(&self) -> bool {
        self.caught_up()
            || self
                .deadline
                .lock()
                .unwrap()
                .is_some_and(|d| Instant::now() > d)
    }

    /// The counters as `name value` pairs, for the summary.
    pub(crate) fn summary(&self) -> String {
        [
            ("joins", &self.joins),
            ("rebalances", &self.rebalances),
            ("revocations", &self.revocations),
            ("fenced", &self.fenced),
            ("sessions_lost", &self.sessions_lost),
            ("commit_refusals", &self.commit_refusals),
        ]
        .iter()
        .map(|(name, n)| format!("{name} {}", n.load(Ordering::Relaxed)))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// How a call ended, as the member protocol needs to know it.
enum Outcome<T> {
    Done(T),
    /// `REBALANCE_IN_PROGRESS`: sync again.
    Rebalance,
    /// `UNKNOWN_MEMBER` / `ILLEGAL_GENERATION`: stop everything and join again.
    Fenced,
    /// Anything else (connection, timeout, `NOT_COORDINATOR`, `NOT_LEADER` ...): retry later.
    Failed,
}

/// One member's state.
struct Member<'a> {
    shared: &'a Shared,
    index: u32,
    client: Option<ClusterClient>,
    failures: u32,
    /// Empty until joined, and again once the member lost its place.
    member_id: String,
    generation: u32,
    /// Assigned partitions and the next offset to fetch (`None` until the start is known).
    owned: BTreeMap<u32, Option<u64>>,
    sync_needed: bool,
    next_beat: Instant,
    /// When the coordinator last answered a group call.
    last_contact: Instant,
}

/// One member of [`GROUP`] (`index` names it in the history), until the group has polled every
/// partition up to `group.until` or the group deadline passed; then it leaves.
pub(crate) fn group_member_loop(shared: &Shared, index: u32) {
    let mut m = Member {
        shared,
        index,
        client: None,
        failures: 0,
        member_id: String::new(),
        generation: 0,
        owned: BTreeMap::new(),
        sync_needed: true,
        next_beat: Instant::now(),
        last_contact: Instant::now(),
    };
    let session = Duration::from_millis(u64::from(SESSION_TIMEOUT_MS));
    while !shared.group.finished() {
        if m.last_contact.elapsed() > session {
            if !m.member_id.is_empty() {
                bump(&shared.group.sessions_lost);
                m.lose_place();
            }
            m.last_contact = Instant::now();
        }
        if m.member_id.is_empty() {
            m.join();
            continue;
        }
        if m.sync_needed {
            for _ in 0..SYNC_ROUNDS_MAX {
                if !m.sync_needed || m.member_id.is_empty() || !m.sync() {
                    break;
                }
            }
        } else if Instant::now() >= m.next_beat {
            m.beat();
        }
        m.start_pending();
        if !m.poll_round() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    m.leave();
}

impl Member<'_> {
    fn beat_interval() -> Duration {
        Duration::from_millis(u64::from(SESSION_TIMEOUT_MS / 3))
    }

    /// Runs `op` with the client, the member id and the generation. `coordinator`: an answer
    /// (any but a failure) proves the coordinator knows of the member's session.
    fn call<T>(
        &mut self,
        what: &str,
        coordinator: bool,
        op: impl FnOnce(&mut ClusterClient, &str, u32) -> Result<T, ClientError>,
    ) -> Outcome<T> {
        if self.failures >= FAILURES_BEFORE_RECONNECT {
            self.client = None;
            self.failures = 0;
        }
        if self.client.is_none() {
            self.client = connect(&self.shared.addrs);
        }
        let Some(c) = self.client.as_mut() else {
            self.shared.count_kind(what, "Connect");
            std::thread::sleep(Duration::from_millis(200));
            return Outcome::Failed;
        };
        let result = op(c, &self.member_id, self.generation);
        let outcome = match result {
            Ok(v) => Outcome::Done(v),
            Err(e) => match e.code() {
                Some(ErrorCode::RebalanceInProgress) => Outcome::Rebalance,
                Some(ErrorCode::UnknownMember | ErrorCode::IllegalGeneration) => Outcome::Fenced,
                _ => {
                    self.shared.count_error(what, &e);
                    self.failures += 1;
                    std::thread::sleep(Duration::from_millis(100));
                    return Outcome::Failed;
                }
            },
        };
        self.failures = 0;
        if coordinator {
            self.last_contact = Instant::now();
        }
        outcome
    }

    /// Stops every partition without committing (the coordinator would refuse the commits) and
    /// forgets the membership: the next round joins with an empty member id.
    fn lose_place(&mut self) {
        self.owned.clear();
        self.member_id.clear();
        self.generation = 0;
        self.sync_needed = true;
    }

    fn fenced(&mut self) {
        bump(&self.shared.group.fenced);
        self.lose_place();
    }

    fn join(&mut self) {
        let joined = self.call("group join", true, |c, _, _| {
            c.join_group(GROUP, "", &[TOPIC], ASSIGNOR, SESSION_TIMEOUT_MS)
        });
        if let Outcome::Done((id, generation)) = joined {
            bump(&self.shared.group.joins);
            self.member_id = id;
            self.generation = generation;
            self.sync_needed = true;
            self.owned.clear();
        }
    }

    fn beat(&mut self) {
        self.next_beat = Instant::now() + Self::beat_interval();
        match self.call("group heartbeat", true, |c, id, generation| {
            c.heartbeat(GROUP, id, generation)
        }) {
            Outcome::Done(()) | Outcome::Failed => {}
            Outcome::Rebalance => {
                bump(&self.shared.group.rebalances);
                self.sync_needed = true;
            }
            Outcome::Fenced => self.fenced(),
        }
    }

    /// One sync reporting what the member consumes; stops (and commits) what is no longer
    /// assigned, adds what is newly assigned. False when the sync failed.
    fn sync(&mut self) -> bool {
        let owned: Vec<u32> = self.owned.keys().copied().collect();
        let report = if owned.is_empty() {
            Vec::new()
        } else {
            vec![(TOPIC.to_string(), owned.clone())]
        };
        self.next_beat = Instant::now() + Self::beat_interval();
        let assigned = match self.call("group sync", true, |c, id, generation| {
            c.sync_group(GROUP, id, generation, &report)
        }) {
            Outcome::Done((generation, assigned)) => {
                self.generation = generation;
                assigned
            }
            Outcome::Rebalance => return true,
            Outcome::Fenced => {
                self.fenced();
                return true;
            }
            Outcome::Failed => return false,
        };
        let assigned: BTreeSet<u32> = assigned
            .into_iter()
            .filter(|(t, _)| t == TOPIC)
            .flat_map(|(_, ps)| ps)
            .collect();
        let revoked: Vec<u32> = owned
            .iter()
            .copied()
            .filter(|p| !assigned.contains(p))
            .collect();
        for p in &revoked {
            bump(&self.shared.group.revocations);
            if let Some(Some(next)) = self.owned.remove(p) {
                for _ in 0..REVOKE_COMMIT_TRIES {
                    match self.commit(*p, next) {
                        Outcome::Failed => continue,
                        Outcome::Fenced => return true,
                        Outcome::Done(()) | Outcome::Rebalance => break,
                    }
                }
            }
        }
        for p in assigned {
            self.owned.entry(p).or_insert(None);
        }
        // Handing revoked partitions on needs the coordinator to hear they are stopped.
        self.sync_needed = !revoked.is_empty();
        true
    }

    /// Commits `next` for partition `p` as this member, logging it once acknowledged.
    fn commit(&mut self, p: u32, next: u64) -> Outcome<()> {
        let shared = self.shared;
        let h = &shared.history;
        let invoked_at = h.now();
        let outcome = self.call("group commit", true, |c, id, generation| {
            c.commit_offset_member(GROUP, TOPIC, p, next, id, generation)
        });
        match outcome {
            Outcome::Done(()) => h.log(Event::GroupCommit {
                at: h.now(),
                invoked_at,
                member: self.index,
                partition: p,
                offset: next,
            }),
            Outcome::Rebalance => {
                bump(&self.shared.group.rebalances);
                self.sync_needed = true;
            }
            Outcome::Fenced => {
                bump(&self.shared.group.commit_refusals);
                self.fenced();
            }
            Outcome::Failed => {}
        }
        outcome
    }

    /// Asks the group's committed offset of every assigned partition whose start is unknown.
    fn start_pending(&mut self) {
        let pending: Vec<u32> = self
            .owned
            .iter()
            .filter(|(_, next)| next.is_none())
            .map(|(p, _)| *p)
            .collect();
        let shared = self.shared;
        let h = &shared.history;
        for p in pending {
            let invoked_at = h.now();
            let answer = self.call("group fetch_offset", false, |c, _, _| {
                c.fetch_offset(GROUP, TOPIC, p)
            });
            if let Outcome::Done(offset) = answer {
                h.log(Event::GroupStart {
                    at: h.now(),
                    invoked_at,
                    member: self.index,
                    partition: p,
                    offset,
                });
                self.owned.insert(p, Some(offset.unwrap_or(0)));
            }
        }
    }

    /// One fetch of every started partition, each non-empty one logged and committed. False
    /// when there was nothing to fetch.
    fn poll_round(&mut self) -> bool {
        let started: Vec<(u32, u64)> = self
            .owned
            .iter()
            .filter_map(|(p, next)| next.map(|n| (*p, n)))
            .collect();
        let shared = self.shared;
        let h = &shared.history;
        for (p, from) in &started {
            if self.member_id.is_empty() || self.owned.get(p) != Some(&Some(*from)) {
                // Fenced, or the partition moved, while an earlier one was polled.
                continue;
            }
            let fetched = self.call("group fetch", false, |c, _, _| {
                c.fetch(TOPIC, *p, *from, FETCH_BYTES_MAX, GROUP_FETCH_WAIT_MS)
            });
            let Outcome::Done(f) = fetched else {
                continue;
            };
            let Some(last) = f.records.last().map(|r| r.offset) else {
                continue;
            };
            h.log(Event::GroupPoll {
                at: h.now(),
                member: self.index,
                partition: *p,
                from: *from,
                records: f
                    .records
                    .iter()
                    .map(|r| (r.offset, history::parse_value(&r.value)))
                    .collect(),
            });
            let next = last + 1;
            self.owned.insert(*p, Some(next));
            shared.group.reached[*p as usize].fetch_max(next, Ordering::Relaxed);
            self.commit(*p, next);
        }
        !started.is_empty()
    }

    /// Leaves the group (best effort: its session expires otherwise).
    fn leave(&mut self) {
        if let (Some(c), false) = (self.client.as_mut(), self.member_id.is_empty()) {
            let _ = c.leave_group(GROUP, &self.member_id);
        }
    }
}

/// One line about the group's run: its members, what the protocol went through, what was read.
pub(crate) fn group_summary(group: &GroupShared, report: &Report) -> String {
    if group.members == 0 {
        return "no group consumption (SPRAWL_FAULTS_GROUP_MEMBERS=0)".into();
    }
    let stat = |name: &str| report.stats.get(name).copied().unwrap_or(0);
    format!(
        "group {GROUP}: {} members ({ASSIGNOR}, session {SESSION_TIMEOUT_MS} ms): {}; {} starts, {} commits, {} polls, {} records polled, {} redelivered (duplicates across members, allowed)",
        group.members,
        group.summary(),
        stat("group_starts"),
        stat("group_commits"),
        stat("group_polls"),
        stat("group_polled_records"),
        stat("group_redelivered_records"),
    )
}

/// After the content check (every node killed and restarted in turn, so the offsets partitions
/// changed leaders too): the group's committed offset of every partition, logged as a start of
/// member number `members` (the test thread) so `group_commit_backwards` compares it with every
/// acknowledged commit. Returns the partitions whose offset could not be read within `limit`.
pub(crate) fn read_final_group_offsets(shared: &Shared, limit: Duration) -> Vec<u32> {
    let h = &shared.history;
    let deadline = Instant::now() + limit;
    let mut client: Option<ClusterClient> = None;
    let mut unread = Vec::new();
    for p in 0..PARTITIONS {
        loop {
            if client.is_none() {
                client = connect(&shared.addrs);
            }
            let invoked_at = h.now();
            match client.as_mut().map(|c| c.fetch_offset(GROUP, TOPIC, p)) {
                Some(Ok(offset)) => {
                    h.log(Event::GroupStart {
                        at: h.now(),
                        invoked_at,
                        member: shared.group.members,
                        partition: p,
                        offset,
                    });
                    break;
                }
                Some(Err(e)) => {
                    shared.count_error("final group fetch_offset", &e);
                    client = None;
                }
                None => shared.count_kind("final group fetch_offset", "Connect"),
            }
            if Instant::now() > deadline {
                unread.push(p);
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    unread
}
