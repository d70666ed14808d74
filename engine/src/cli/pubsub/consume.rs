//! The consumer behind `sprawl sub`: one push subscription per partition, each at the
//! partition's leader, with credit-based flow control.
//!
//! Subscriptions to partitions led by the same node share one connection. A subscription is
//! moved (unsubscribed, then subscribed again at the next offset not yet printed) when its
//! connection fails, when the server ends it with a retriable error, or when the routing table,
//! reloaded every [`LEADER_CHECK`], names another leader node for its partition (a deposed leader
//! that stays up only stalls its subscriptions). Records below the next offset are skipped, so a
//! move never prints a record twice. A partition that cannot be subscribed again for
//! [`RETRY_FOR`] ends the command with an error naming it and the last error.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

use base64::Engine as _;
use net::client::{Client, ClientError, ClusterClient, PushBatch, Record};
use net::codec::{message_id, ErrorCode};

use super::{breaks_connection, retriable, RETRY_FOR};
use crate::cli::{connect, Output};

mod member;
pub(super) use member::GroupMember;

/// Records a subscription may receive before it is granted more.
const SUB_CREDITS: u32 = 1000;
/// How often the routing table is reloaded to notice leadership changes.
const LEADER_CHECK: Duration = Duration::from_secs(2);
/// How long one connection is waited on for a push when there is only one.
const POLL_ONE: Duration = Duration::from_secs(1);
/// How long each connection is waited on for a push when there are several.
const POLL_SLICE: Duration = Duration::from_millis(10);
/// Batches taken from one connection in a row before the others get a turn.
const STREAK_MAX: u32 = 64;
/// The first wait before subscribing again; doubles up to [`RESUBSCRIBE_BACKOFF_MAX`].
const RESUBSCRIBE_BACKOFF_FIRST: Duration = Duration::from_millis(50);
const RESUBSCRIBE_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What the consumer prints and commits.
pub(super) struct ConsumerSettings {
    pub topic: String,
    pub topic_id: u64,
    pub group: Option<String>,
    pub count: Option<u64>,
    pub output: Output,
}

/// Why a partition has no subscription right now, since when, and when to try again.
struct Failing {
    since: Instant,
    last: String,
    backoff: Duration,
    retry_at: Instant,
}

struct PartState {
    /// The next offset to print.
    next_offset: u64,
    /// Where it is subscribed, while it is.
    sub: Option<Sub>,
    /// Set while unsubscribed after a failure.
    failing: Option<Failing>,
    /// The group's offset to commit, while its leader has not taken it.
    commit: Option<PendingCommit>,
}

impl PartState {
    fn starting_at(next_offset: u64) -> Self {
        PartState {
            next_offset,
            sub: None,
            failing: None,
            commit: None,
        }
    }
}

/// An offset commit the partition's leader has not taken yet (retried every [`LEADER_CHECK`]
/// and before exiting; a newer commit replaces it).
struct PendingCommit {
    offset: u64,
    since: Instant,
    last: String,
}

/// A partition's subscription: the leader's node id and address, and the subscription id there.
struct Sub {
    node_id: u32,
    addr: String,
    id: u32,
}

/// One connection to a leader and the subscriptions on it (id -> partition).
struct Conn {
    client: Client,
    subs: HashMap<u32, u32>,
}

pub(super) struct Consumer {
    cluster: ClusterClient,
    settings: ConsumerSettings,
    parts: BTreeMap<u32, PartState>,
    /// Leader address -> connection; only addresses with at least one subscription.
    conns: BTreeMap<String, Conn>,
    /// Which connection is waited on next, and how many batches it gave in a row.
    cursor: usize,
    streak: u32,
    next_check: Instant,
    printed: u64,
    /// Membership of `--group` when the group assigns the partitions.
    member: Option<GroupMember>,
}

impl Consumer {
    /// A consumer of `starts` (partition -> first offset to print); nothing is subscribed yet.
    pub fn new(
        cluster: ClusterClient,
        settings: ConsumerSettings,
        starts: impl IntoIterator<Item = (u32, u64)>,
    ) -> Self {
        let parts = starts
            .into_iter()
            .map(|(p, next_offset)| (p, PartState::starting_at(next_offset)))
            .collect();
        Consumer {
            cluster,
            settings,
            parts,
            conns: BTreeMap::new(),
            cursor: 0,
            streak: 0,
            next_check: Instant::now() + LEADER_CHECK,
            printed: 0,
            member: None,
        }
    }

    /// A consumer whose partitions the group `member` belongs to assigns.
    pub fn in_group(
        cluster: ClusterClient,
        settings: ConsumerSettings,
        member: GroupMember,
    ) -> Self {
        let mut c = Consumer::new(cluster, settings, []);
        c.member = Some(member);
        c
    }

    /// Subscribes to every partition and prints records until `count` is reached (or forever).
    pub fn run(&mut self) -> Result<(), String> {
        let mut out = std::io::stdout().lock();
        loop {
            if self.settings.count.is_some_and(|c| self.printed >= c) {
                let finished = self.finish_commits();
                self.leave();
                return finished;
            }
            self.maintain_membership()?;
            self.maintain()?;
            if let Some((addr, batch)) = self.next_batch() {
                self.deliver(&addr, batch, &mut out)?;
            }
        }
    }

    /// Reloads the routing table when due, moves subscriptions whose partition has another
    /// leader now, and subscribes the partitions that have none and are due.
    fn maintain(&mut self) -> Result<(), String> {
        let now = Instant::now();
        let check = now >= self.next_check;
        let due = self.due_now();
        if !check && due.is_empty() {
            return Ok(());
        }
        // The first subscriptions go where the routing table loaded at connect says.
        let first_time = self
            .parts
            .values()
            .all(|s| s.sub.is_none() && s.failing.is_none());
        if check || !first_time {
            self.next_check = now + LEADER_CHECK;
            if let Err(e) = self.cluster.refresh_metadata() {
                // The old table stays; the partitions due are tried again after their backoff.
                for p in &due {
                    self.record_failure(*p, e.to_string());
                }
                return self.check_limits();
            }
        }
        if check {
            self.retry_commits()?;
            self.move_to_leaders();
        }
        for p in self.due_now() {
            match self.subscribe(p) {
                Ok(()) => {
                    if let Some(s) = self.parts.get_mut(&p) {
                        s.failing = None;
                    }
                }
                Err(e) if retriable(&e) => self.record_failure(p, e.to_string()),
                Err(e) => return Err(format!("partition {}/{p}: {e}", self.settings.topic)),
            }
        }
        self.check_limits()
    }

    fn due_now(&self) -> Vec<u32> {
        let now = Instant::now();
        self.parts
            .iter()
            .filter(|(_, s)| {
                s.sub.is_none() && s.failing.as_ref().is_none_or(|f| f.retry_at <= now)
            })
            .map(|(p, _)| *p)
            .collect()
    }

    /// Ends every subscription whose partition the routing table now says another node leads.
    fn move_to_leaders(&mut self) {
        let topic = self.settings.topic.clone();
        let stale: Vec<(u32, String, u32)> = self
            .parts
            .iter()
            .filter_map(|(p, s)| {
                let sub = s.sub.as_ref()?;
                // No leader known right now: keep what there is until one is.
                let (leader, _) = self.cluster.leader_of(&topic, *p)?;
                (leader != sub.node_id).then(|| (*p, sub.addr.clone(), sub.id))
            })
            .collect();
        for (p, addr, _) in stale {
            let reason = format!("leadership moved away from the node at {addr}");
            self.unsubscribe(p);
            self.record_failure(p, reason);
            if let Some(f) = self.parts.get_mut(&p).and_then(|s| s.failing.as_mut()) {
                // Nothing is wrong with the new leader: go there at once.
                f.retry_at = Instant::now();
            }
        }
        self.conns.retain(|_, c| !c.subs.is_empty());
    }

    /// Ends `p`'s subscription, if it has one (pushes still on the way for it are ignored).
    fn unsubscribe(&mut self, p: u32) {
        let Some(sub) = self.parts.get_mut(&p).and_then(|s| s.sub.take()) else {
            return;
        };
        if let Some(conn) = self.conns.get_mut(&sub.addr) {
            conn.subs.remove(&sub.id);
            if let Err(e) = conn.client.unsubscribe(sub.id) {
                if breaks_connection(&e) {
                    self.drop_conn(&sub.addr, &e.to_string());
                }
            }
        }
        self.conns.retain(|_, c| !c.subs.is_empty());
    }

    /// Subscribes `p` at its leader from its next offset.
    fn subscribe(&mut self, p: u32) -> Result<(), ClientError> {
        let topic = self.settings.topic.clone();
        let Some((node_id, addr)) = self.cluster.leader_of(&topic, p) else {
            return Err(ClientError::NoLeader {
                topic,
                partition: p,
                leader_node_id: 0,
            });
        };
        let addr = addr.to_owned();
        let offset = self.parts.get(&p).map_or(0, |s| s.next_offset);
        if !self.conns.contains_key(&addr) {
            let client = connect(&addr)?;
            let conn = Conn {
                client,
                subs: HashMap::new(),
            };
            self.conns.insert(addr.clone(), conn);
        }
        let Some(conn) = self.conns.get_mut(&addr) else {
            unreachable!("inserted above")
        };
        match conn.client.subscribe(&topic, p, offset, SUB_CREDITS) {
            Ok(id) => {
                conn.subs.insert(id, p);
                if let Some(s) = self.parts.get_mut(&p) {
                    s.sub = Some(Sub { node_id, addr, id });
                }
                Ok(())
            }
            Err(e) => {
                if breaks_connection(&e) {
                    self.drop_conn(&addr, &e.to_string());
                } else if conn.subs.is_empty() {
                    self.conns.remove(&addr);
                }
                Err(e)
            }
        }
    }

    /// Commits `offset` (the next to consume) of `p` for the group, if there is one. A
    /// retriable failure leaves it pending; others end the command.
    fn commit(&mut self, p: u32, offset: u64) -> Result<(), String> {
        let Some(group) = &self.settings.group else {
            return Ok(());
        };
        let topic = &self.settings.topic;
        let result = match &self.member {
            Some(m) => {
                let (member_id, generation) = m.fencing();
                self.cluster
                    .commit_offset_member(group, topic, p, offset, member_id, generation)
            }
            None => self.cluster.commit_offset(group, topic, p, offset),
        };
        if let (Some(m), Err(e)) = (self.member.as_mut(), &result) {
            if member::fenced(e) {
                // The group gave the partition to another member: it commits from now on.
                let why = format!("commit of {topic}/{p} refused: {e}");
                m.forget();
                self.stop_all(&why);
                return Ok(());
            }
        }
        let Some(state) = self.parts.get_mut(&p) else {
            return Ok(());
        };
        match result {
            Ok(()) => {
                state.commit = None;
                Ok(())
            }
            Err(e) if retriable(&e) => {
                let since = state.commit.as_ref().map_or_else(Instant::now, |c| c.since);
                let last = e.to_string();
                state.commit = Some(PendingCommit {
                    offset,
                    since,
                    last,
                });
                Ok(())
            }
            Err(e) => Err(format!("partition {topic}/{p}: {e}")),
        }
    }

    /// Retries the pending commits; fails when one has been pending for [`RETRY_FOR`].
    fn retry_commits(&mut self) -> Result<(), String> {
        let pending: Vec<(u32, u64)> = self
            .parts
            .iter()
            .filter_map(|(p, s)| Some((*p, s.commit.as_ref()?.offset)))
            .collect();
        for (p, offset) in pending {
            self.commit(p, offset)?;
            if let Some(c) = self.parts.get(&p).and_then(|s| s.commit.as_ref()) {
                if c.since.elapsed() > RETRY_FOR {
                    return Err(self.commit_failure(p, c));
                }
            }
        }
        Ok(())
    }

    /// Tries the pending commits once more before exiting; fails if one is still refused.
    fn finish_commits(&mut self) -> Result<(), String> {
        self.retry_commits()?;
        match self
            .parts
            .iter()
            .find_map(|(p, s)| Some((*p, s.commit.as_ref()?)))
        {
            Some((p, c)) => Err(self.commit_failure(p, c)),
            None => Ok(()),
        }
    }

    fn commit_failure(&self, p: u32, c: &PendingCommit) -> String {
        format!(
            "partition {}/{p}: offset {} not committed for group {} after {} s; last error: {}",
            self.settings.topic,
            c.offset,
            self.settings.group.as_deref().unwrap_or_default(),
            c.since.elapsed().as_secs(),
            c.last
        )
    }

    /// Notes that `p` has no subscription because of `reason`, and when to try again.
    fn record_failure(&mut self, p: u32, reason: String) {
        let Some(s) = self.parts.get_mut(&p) else {
            return;
        };
        let now = Instant::now();
        match &mut s.failing {
            Some(f) => {
                f.last = reason;
                f.retry_at = now + f.backoff;
                f.backoff = (f.backoff * 2).min(RESUBSCRIBE_BACKOFF_MAX);
            }
            None => {
                s.failing = Some(Failing {
                    since: now,
                    last: reason,
                    backoff: RESUBSCRIBE_BACKOFF_FIRST,
                    retry_at: now,
                });
            }
        }
    }

    /// Fails when a partition has been without a subscription for longer than [`RETRY_FOR`].
    fn check_limits(&self) -> Result<(), String> {
        for (p, s) in &self.parts {
            if let (None, Some(f)) = (&s.sub, &s.failing) {
                if f.since.elapsed() > RETRY_FOR {
                    return Err(format!(
                        "partition {}/{p}: no leader could be subscribed at for {} s; last error: {}",
                        self.settings.topic,
                        RETRY_FOR.as_secs(),
                        f.last
                    ));
                }
            }
        }
        Ok(())
    }

    /// Closes the connection to `addr`; its partitions are subscribed again at their leaders.
    fn drop_conn(&mut self, addr: &str, reason: &str) {
        let Some(conn) = self.conns.remove(addr) else {
            return;
        };
        for p in conn.subs.into_values() {
            if let Some(s) = self.parts.get_mut(&p) {
                s.sub = None;
            }
            self.record_failure(p, format!("{addr}: {reason}"));
        }
    }

    /// The next pushed batch of any connection, with the connection's address; `None` when
    /// nothing arrived within a short wait (or a connection failed: its partitions are then
    /// due to be subscribed again).
    fn next_batch(&mut self) -> Option<(String, PushBatch)> {
        let n = self.conns.len();
        if n == 0 {
            std::thread::sleep(RESUBSCRIBE_BACKOFF_FIRST);
            return None;
        }
        let wait = if n == 1 { POLL_ONE } else { POLL_SLICE };
        for _ in 0..n {
            let (addr, conn) = self.conns.iter_mut().nth(self.cursor % n)?;
            let addr = addr.clone();
            match conn.client.next_push(wait) {
                Ok(Some(batch)) => {
                    self.streak += 1;
                    if self.streak >= STREAK_MAX {
                        self.cursor = self.cursor.wrapping_add(1);
                        self.streak = 0;
                    }
                    return Some((addr, batch));
                }
                Ok(None) => {
                    self.cursor = self.cursor.wrapping_add(1);
                    self.streak = 0;
                }
                Err(e) => {
                    // Includes a full push queue: the subscriptions have a gap and start again
                    // from the next offset.
                    self.drop_conn(&addr, &e.to_string());
                    return None;
                }
            }
        }
        None
    }

    /// Prints `batch` (skipping records already printed), commits and grants more credit.
    fn deliver(
        &mut self,
        addr: &str,
        batch: PushBatch,
        out: &mut impl Write,
    ) -> Result<(), String> {
        let PushBatch {
            subscription_id,
            records,
            ended,
            ..
        } = batch;
        let topic = self.settings.topic.clone();
        let Some(&partition) = self
            .conns
            .get(addr)
            .and_then(|c| c.subs.get(&subscription_id))
        else {
            return Ok(());
        };
        if let Some((code, message)) = ended {
            if !code.is_retriable() {
                return Err(format!(
                    "subscription to {topic}/{partition} ended: {code}: {message}"
                ));
            }
            if let Some(conn) = self.conns.get_mut(addr) {
                conn.subs.remove(&subscription_id);
            }
            if let Some(s) = self.parts.get_mut(&partition) {
                s.sub = None;
            }
            self.record_failure(partition, format!("{addr}: {code}: {message}"));
            self.conns.retain(|_, c| !c.subs.is_empty());
            return Ok(());
        }
        let Some(state) = self.parts.get_mut(&partition) else {
            return Ok(());
        };
        let mut last = None;
        let mut consumed = 0u32;
        for r in &records {
            if self.settings.count.is_some_and(|c| self.printed >= c) {
                break;
            }
            consumed += 1;
            if r.offset < state.next_offset {
                continue;
            }
            print_record(out, &self.settings, partition, r);
            self.printed += 1;
            last = Some(r.offset);
            state.next_offset = r.offset + 1;
        }
        let _ = out.flush();
        if let Some(off) = last {
            self.commit(partition, off + 1)?;
        }
        if consumed == 0 {
            return Ok(());
        }
        let Some(conn) = self.conns.get_mut(addr) else {
            return Ok(());
        };
        match conn.client.credit(subscription_id, consumed) {
            Ok(()) => Ok(()),
            Err(e) if breaks_connection(&e) => {
                self.drop_conn(addr, &e.to_string());
                Ok(())
            }
            Err(ClientError::Server {
                code: ErrorCode::UnknownSubscription,
                message,
                ..
            }) => {
                // Ended by the server; its reason, if any, is still on the way and ignored:
                // subscribing again meets it.
                conn.subs.remove(&subscription_id);
                if let Some(s) = self.parts.get_mut(&partition) {
                    s.sub = None;
                }
                self.record_failure(partition, format!("{addr}: {message}"));
                self.conns.retain(|_, c| !c.subs.is_empty());
                Ok(())
            }
            Err(e) => Err(format!("partition {topic}/{partition}: {e}")),
        }
    }
}

fn text_or_base64(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            true,
        ),
    }
}

fn print_record(out: &mut impl Write, settings: &ConsumerSettings, partition: u32, r: &Record) {
    match settings.output {
        Output::Text => {
            let _ = out.write_all(&r.value);
            let _ = out.write_all(b"\n");
        }
        Output::Json => {
            let (value, b64) = text_or_base64(&r.value);
            let mut obj = serde_json::json!({
                "topic": settings.topic,
                "partition": partition,
                "offset": r.offset,
                "id": message_id(settings.topic_id, partition, r.offset),
                "key": r.key.as_deref().map(|k| text_or_base64(k).0),
                "value": value,
                "timestamp": r.timestamp_ms,
            });
            if b64 {
                obj["encoding"] = "base64".into();
            }
            if r.key.as_deref().is_some_and(|k| text_or_base64(k).1) {
                obj["key_encoding"] = "base64".into();
            }
            let _ = writeln!(out, "{obj}");
        }
    }
}
