//! Properties of the consumer-group coordinator and its assignors over generated inputs
//! (proptest, 256+ cases each): ownership never overlaps, members that keep syncing converge on
//! their targets, the sticky assignor is balanced and moves little, the range assignor hands out
//! contiguous ranges.

use std::collections::{BTreeMap, BTreeSet};

use cluster::group::{
    assign_range, assign_sticky, Assignments, Assignor, Beat, Group, GroupError, Subscriptions, Tp,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

const MEMBER_IDS: [&str; 5] = ["m0", "m1", "m2", "m3", "m4"];
const TOPICS: [&str; 3] = ["t0", "t1", "t2"];

fn topic_set(mask: u8) -> BTreeSet<String> {
    TOPICS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, t)| t.to_string())
        .collect()
}

fn counts_map(counts: &[u32]) -> BTreeMap<String, u32> {
    TOPICS
        .iter()
        .zip(counts)
        .map(|(t, &c)| (t.to_string(), c))
        .collect()
}

/// One event the coordinator sees.
#[derive(Debug, Clone)]
enum Op {
    Join {
        m: usize,
        topics: u8,
        session_timeout_ms: u32,
    },
    /// Sync reporting what the client was last given, or (with `keep`) only the partitions
    /// whose index bit is set: the client stopped the others. `junk` adds a partition it was
    /// never given to the report.
    Sync {
        m: usize,
        keep: Option<u16>,
        junk: Option<(usize, u32)>,
    },
    Heartbeat {
        m: usize,
    },
    Leave {
        m: usize,
    },
    Advance {
        ms: u64,
    },
    Expire,
    SetTopics {
        counts: [u32; 3],
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..5usize, 0..8u8, 1_000..4_000u32)
            .prop_map(|(m, topics, session_timeout_ms)| Op::Join { m, topics, session_timeout_ms }),
        5 => (0..5usize, option::of(any::<u16>()), option::weighted(0.1, (0..3usize, 0..8u32)))
            .prop_map(|(m, keep, junk)| Op::Sync { m, keep, junk }),
        2 => (0..5usize).prop_map(|m| Op::Heartbeat { m }),
        1 => (0..5usize).prop_map(|m| Op::Leave { m }),
        2 => (0..2_500u64).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Expire),
        2 => proptest::array::uniform3(0..7u32).prop_map(|counts| Op::SetTopics { counts }),
    ]
}

/// What a well-behaved client believes and consumes.
#[derive(Debug, Clone, Default)]
struct Client {
    joined: bool,
    generation: u32,
    /// The last sync answer.
    assigned: BTreeSet<Tp>,
    /// What it reads: `assigned` plus revoked partitions it is still finishing (stopping and
    /// committing) until its next sync.
    consuming: BTreeSet<Tp>,
}

struct Sim {
    group: Group,
    assignor: Assignor,
    clients: Vec<Client>,
    counts: [u32; 3],
    now_ms: u64,
}

impl Sim {
    fn new(assignor: Assignor) -> Self {
        Self {
            group: Group::new("g"),
            assignor,
            clients: vec![Client::default(); MEMBER_IDS.len()],
            counts: [0; 3],
            now_ms: 0,
        }
    }

    fn owned_by_others(&self, member: &str) -> BTreeSet<Tp> {
        self.group
            .members()
            .into_iter()
            .filter(|i| i.id != member)
            .flat_map(|i| i.owned)
            .collect()
    }

    /// The client lost its membership: it stops consuming everything.
    fn drop_client(&mut self, m: usize) {
        self.clients[m] = Client::default();
    }

    /// The client keeps consuming `keep` (a subset of its last answer), stops the rest, and
    /// reports `keep` plus `junk`.
    fn sync(
        &mut self,
        m: usize,
        keep: BTreeSet<Tp>,
        junk: Option<Tp>,
    ) -> Result<(), TestCaseError> {
        let id = MEMBER_IDS[m];
        self.clients[m].consuming = keep.clone();
        let mut report = keep.clone();
        report.extend(junk);
        match self
            .group
            .sync(id, self.clients[m].generation, report, self.now_ms)
        {
            Ok(s) => {
                let others = self.owned_by_others(id);
                prop_assert!(
                    s.assigned.is_disjoint(&others),
                    "{id} was given {:?} owned by others",
                    s.assigned.intersection(&others).collect::<Vec<_>>()
                );
                // Revoked partitions (kept but not assigned) are read until the next sync.
                self.clients[m].consuming = keep.union(&s.assigned).cloned().collect();
                self.clients[m].assigned = s.assigned;
                self.clients[m].generation = s.generation;
            }
            Err(GroupError::UnknownMember { .. }) if !self.clients[m].joined => self.drop_client(m),
            Err(e) => return Err(TestCaseError::fail(format!("sync {id}: {e}"))),
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Join {
                m,
                topics,
                session_timeout_ms,
            } => {
                let id = MEMBER_IDS[m];
                let j = self
                    .group
                    .join(
                        id,
                        topic_set(topics),
                        self.assignor,
                        session_timeout_ms,
                        self.now_ms,
                    )
                    .map_err(|e| TestCaseError::fail(format!("join {id}: {e}")))?;
                self.clients[m].joined = true;
                self.clients[m].generation = j.generation;
            }
            Op::Sync { m, keep, junk } => {
                let assigned = &self.clients[m].assigned;
                let report: BTreeSet<Tp> = match keep {
                    None => assigned.clone(),
                    Some(bits) => assigned
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| bits & (1 << (i % 16)) != 0)
                        .map(|(_, tp)| tp.clone())
                        .collect(),
                };
                let junk = junk.map(|(t, p)| Tp::new(TOPICS[t], p));
                self.sync(m, report, junk)?;
            }
            Op::Heartbeat { m } => {
                let id = MEMBER_IDS[m];
                match self
                    .group
                    .heartbeat(id, self.clients[m].generation, self.now_ms)
                {
                    Ok(_) => prop_assert!(self.clients[m].joined),
                    Err(GroupError::UnknownMember { .. }) => {
                        prop_assert!(!self.clients[m].joined);
                        self.drop_client(m);
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("heartbeat {id}: {e}"))),
                }
            }
            Op::Leave { m } => {
                let left = self.group.leave(MEMBER_IDS[m]).is_ok();
                prop_assert_eq!(left, self.clients[m].joined);
                self.drop_client(m);
            }
            Op::Advance { ms } => self.now_ms += ms,
            Op::Expire => {
                for id in self.group.expire(self.now_ms) {
                    let m = MEMBER_IDS.iter().position(|x| *x == id).expect("known id");
                    self.drop_client(m);
                }
            }
            Op::SetTopics { counts } => {
                self.counts = counts;
                self.group
                    .set_topics(counts_map(&counts))
                    .map_err(|e| TestCaseError::fail(format!("set_topics: {e}")))?;
            }
        }
        Ok(())
    }

    /// Owned sets are pairwise disjoint, and every client consumes only what it owns.
    fn check_safety(&self) -> Result<(), TestCaseError> {
        let members = self.group.members();
        let mut seen: BTreeMap<&Tp, &str> = BTreeMap::new();
        for i in &members {
            for tp in &i.owned {
                if let Some(other) = seen.insert(tp, &i.id) {
                    return Err(TestCaseError::fail(format!(
                        "{tp} owned by {other} and {}",
                        i.id
                    )));
                }
            }
        }
        for (m, c) in self.clients.iter().enumerate() {
            let info = members.iter().find(|i| i.id == MEMBER_IDS[m]);
            prop_assert_eq!(info.is_some(), c.joined, "{} membership", MEMBER_IDS[m]);
            if let Some(info) = info {
                prop_assert!(
                    c.consuming.is_subset(&info.owned),
                    "{} consumes {:?} but owns only {:?}",
                    info.id,
                    c.consuming,
                    info.owned
                );
            } else {
                prop_assert!(c.consuming.is_empty());
            }
        }
        Ok(())
    }
}

fn assignor() -> impl Strategy<Value = Assignor> {
    prop_oneof![Just(Assignor::Range), Just(Assignor::CooperativeSticky)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// At every step, no partition is owned twice and every answer avoids others' partitions.
    #[test]
    fn ownership_never_overlaps(a in assignor(), ops in vec(op(), 1..60)) {
        let mut sim = Sim::new(a);
        for op in &ops {
            sim.apply(op)?;
            sim.check_safety()?;
        }
    }

    /// After any history, members following the protocol (sync when a heartbeat says so, and
    /// again after finishing revoked partitions, reporting what they were given) end up owning
    /// exactly their targets, which cover every subscribed partition once.
    #[test]
    fn syncing_members_converge_on_their_targets(a in assignor(), ops in vec(op(), 1..60)) {
        let mut sim = Sim::new(a);
        for op in &ops {
            sim.apply(op)?;
        }
        // The engine passes fresh counts after joins; do so once more, then sync in rounds.
        let counts = counts_map(&sim.counts);
        sim.group.set_topics(counts).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for _round in 0..4 {
            for (m, id) in MEMBER_IDS.iter().enumerate() {
                let c = &sim.clients[m];
                if !c.joined {
                    continue;
                }
                let finishing_revoked = c.consuming != c.assigned;
                let beat = sim.group.heartbeat(id, c.generation, sim.now_ms);
                if finishing_revoked || beat == Ok(Beat::SyncNeeded) {
                    sim.sync(m, sim.clients[m].assigned.clone(), None)?;
                    sim.check_safety()?;
                } else {
                    prop_assert_eq!(beat, Ok(Beat::Stable));
                }
            }
        }
        let members = sim.group.members();
        let subscribed: BTreeSet<&String> = members.iter().flat_map(|i| &i.topics).collect();
        let expected: BTreeSet<Tp> = TOPICS
            .iter()
            .zip(sim.counts)
            .filter(|(t, _)| subscribed.contains(&t.to_string()))
            .flat_map(|(t, c)| (0..c).map(move |p| Tp::new(t, p)))
            .collect();
        let mut owned_total = 0;
        for i in &members {
            prop_assert_eq!(&i.owned, &i.target, "{} owns its target", i.id);
            prop_assert!(i.target.iter().all(|tp| i.topics.contains(&tp.topic)));
            owned_total += i.owned.len();
        }
        let owned: BTreeSet<Tp> = members.iter().flat_map(|i| i.owned.clone()).collect();
        prop_assert_eq!(owned_total, owned.len(), "no partition owned twice");
        prop_assert_eq!(owned, expected);
        for (c, id) in sim.clients.iter().zip(MEMBER_IDS) {
            if c.joined {
                prop_assert_eq!(&c.consuming, &c.assigned);
                let beat = sim.group.heartbeat(id, c.generation, sim.now_ms);
                prop_assert_eq!(beat, Ok(Beat::Stable));
            }
        }
    }
}

fn identical(n: usize, topics: &BTreeMap<String, u32>) -> Subscriptions {
    let all: BTreeSet<String> = topics.keys().cloned().collect();
    (0..n).map(|i| (format!("m{i:02}"), all.clone())).collect()
}

fn loads(a: &Assignments) -> (usize, usize) {
    let min = a.values().map(BTreeSet::len).min().unwrap_or(0);
    let max = a.values().map(BTreeSet::len).max().unwrap_or(0);
    (min, max)
}

/// Every partition of a subscribed topic goes to exactly one member subscribed to it.
fn check_valid(
    members: &Subscriptions,
    topics: &BTreeMap<String, u32>,
    out: &Assignments,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        out.keys().collect::<Vec<_>>(),
        members.keys().collect::<Vec<_>>()
    );
    let mut seen = BTreeSet::new();
    for (m, set) in out {
        for tp in set {
            prop_assert!(
                members[m].contains(&tp.topic),
                "{} got unsubscribed {}",
                m,
                tp
            );
            prop_assert!(seen.insert(tp.clone()), "{} assigned twice", tp);
        }
    }
    let expected: BTreeSet<Tp> = topics
        .iter()
        .filter(|(t, _)| members.values().any(|s| s.contains(*t)))
        .flat_map(|(t, &c)| (0..c).map(move |p| Tp::new(t, p)))
        .collect();
    prop_assert_eq!(seen, expected);
    Ok(())
}

fn topic_counts() -> impl Strategy<Value = BTreeMap<String, u32>> {
    vec(0..13u32, 1..=4).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, c)| (format!("t{i}"), c))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// With identical subscriptions the sticky assignor is balanced, and a new member takes only
    /// its share, from the others, who keep the rest.
    #[test]
    fn sticky_new_member_moves_only_its_share(n in 1..7usize, topics in topic_counts()) {
        let before_members = identical(n, &topics);
        let before = assign_sticky(&before_members, &topics, &Assignments::new());
        check_valid(&before_members, &topics, &before)?;
        let (min, max) = loads(&before);
        prop_assert!(max - min <= 1, "unbalanced {:?}", before);

        let after_members = identical(n + 1, &topics);
        let after = assign_sticky(&after_members, &topics, &before);
        check_valid(&after_members, &topics, &after)?;
        let (min, max) = loads(&after);
        prop_assert!(max - min <= 1);
        let total: usize = topics.values().map(|&c| c as usize).sum();
        let newcomer = format!("m{n:02}");
        let moved: usize = before.iter().map(|(m, set)| set.difference(&after[m]).count()).sum();
        prop_assert!(moved <= total.div_ceil(n + 1), "moved {} of {}", moved, total);
        for (m, set) in &before {
            prop_assert!(after[m].is_subset(set), "{} gained partitions", m);
        }
        prop_assert_eq!(after[&newcomer].len(), moved);
    }

    /// With any subscriptions and any previous assignment: valid, no member could pass a
    /// partition to a subscriber holding two fewer, idempotent, and with identical
    /// subscriptions every member keeps its previous partitions up to its fair share.
    #[test]
    fn sticky_is_valid_locally_balanced_and_sticky(
        masks in vec(0..16u8, 1..7),
        topics in topic_counts(),
        owners in vec(0..9usize, 60),
    ) {
        let names: Vec<String> = topics.keys().cloned().collect();
        let members: Subscriptions = masks
            .iter()
            .enumerate()
            .map(|(i, mask)| {
                let subscribed = names.iter().enumerate().filter(|(j, _)| mask & (1 << j) != 0);
                (format!("m{i}"), subscribed.map(|(_, t)| t.clone()).collect())
            })
            .collect();
        // A previous assignment naming present and departed members.
        let mut previous = Assignments::new();
        let all: Vec<Tp> =
            topics.iter().flat_map(|(t, &c)| (0..c).map(move |p| Tp::new(t, p))).collect();
        for (tp, &o) in all.iter().zip(owners.iter().cycle()) {
            previous.entry(format!("m{o}")).or_default().insert(tp.clone());
        }
        let out = assign_sticky(&members, &topics, &previous);
        check_valid(&members, &topics, &out)?;
        for (a, held) in &out {
            for (b, subscribed) in &members {
                let passable = held.iter().any(|tp| subscribed.contains(&tp.topic));
                prop_assert!(
                    !passable || held.len() < out[b].len() + 2,
                    "{} holds {} and could pass one to {} holding {}",
                    a, held.len(), b, out[b].len()
                );
            }
        }
        prop_assert_eq!(&assign_sticky(&members, &topics, &out), &out);

        let same = identical(masks.len(), &topics);
        let out = assign_sticky(&same, &topics, &previous);
        let share = all.len() / masks.len();
        for (m, set) in &out {
            let had = previous.get(m).map_or(0, BTreeSet::len);
            let kept = previous.get(m).map_or(0, |p| p.intersection(set).count());
            prop_assert!(kept >= had.min(share), "{} had {} kept {} share {}", m, had, kept, share);
        }
    }

    /// Range: per topic, subscribers in id order get contiguous, ordered ranges whose sizes
    /// differ by at most one, larger first.
    #[test]
    fn range_hands_out_contiguous_ranges(masks in vec(0..16u8, 1..7), topics in topic_counts()) {
        let names: Vec<String> = topics.keys().cloned().collect();
        let members: Subscriptions = masks
            .iter()
            .enumerate()
            .map(|(i, mask)| {
                let subscribed = names.iter().enumerate().filter(|(j, _)| mask & (1 << j) != 0);
                (format!("m{i}"), subscribed.map(|(_, t)| t.clone()).collect())
            })
            .collect();
        let out = assign_range(&members, &topics);
        check_valid(&members, &topics, &out)?;
        for t in topics.keys() {
            let mut next = 0u32;
            let mut sizes = Vec::new();
            for (m, subscribed) in &members {
                if !subscribed.contains(t) {
                    continue;
                }
                let parts: Vec<u32> =
                    out[m].iter().filter(|tp| &tp.topic == t).map(|tp| tp.partition).collect();
                let range: Vec<u32> = (next..next + parts.len() as u32).collect();
                prop_assert_eq!(&parts, &range, "{} on {} is not the next contiguous range", m, t);
                next += parts.len() as u32;
                sizes.push(parts.len());
            }
            prop_assert!(sizes.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1), "{:?}", sizes);
        }
    }
}
