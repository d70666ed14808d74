//! The cooperative-sticky assignor: balanced as the subscriptions allow, moving as little as
//! possible.
//!
//! Three steps:
//! 1. **Keep**: every previous owner keeps its partitions, as long as it is still a member, still
//!    subscribes to the topic and the partition still exists (a partition claimed by two previous
//!    owners stays with the first by member id).
//! 2. **Place**: the partitions nobody kept go, topic by topic (topics with the fewest
//!    subscribers first, as they have the fewest choices), to the least loaded subscriber.
//! 3. **Balance**: while some member `s` can pass a partition, directly or along a chain of
//!    members (`s` gives a partition of topic `t1` to `m1`, which gives one of `t2` to `m2`, ...,
//!    each receiver subscribed to the topic it receives), to a member with at least two fewer
//!    partitions than `s`, do so, starting from the most loaded. Each shift lowers the sum of
//!    squared loads, so this ends; when it has, no member can lose a partition to a less loaded
//!    one without raising another, which with identical subscriptions means loads differ by at
//!    most one. A shift moves one partition per link, preferring partitions that go back to
//!    their previous owner, then partitions the giver did not have before this round.
//!
//! Only partitions of departed, unsubscribed or overloaded members move: after one member joins a
//! balanced group with identical subscriptions, only the new member receives partitions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Assignments, Subscriptions, Tp};

/// The balanced, sticky assignment of `topics` over `members`, given the `previous` assignment
/// (which may name departed members, unsubscribed topics or vanished partitions; those entries
/// are ignored).
///
/// Every partition of a subscribed topic goes to exactly one subscribed member; every member
/// appears in the result. A subscribed topic missing from `topics` is not assigned.
///
/// ```
/// use cluster::group::{assign_sticky, Tp};
/// use std::collections::{BTreeMap, BTreeSet};
///
/// let t: BTreeSet<String> = ["t".to_string()].into();
/// let topics = BTreeMap::from([("t".to_string(), 6)]);
/// let two = BTreeMap::from([("a".to_string(), t.clone()), ("b".to_string(), t.clone())]);
/// let before = assign_sticky(&two, &topics, &BTreeMap::new());
/// let mut three = two.clone();
/// three.insert("c".to_string(), t);
/// let after = assign_sticky(&three, &topics, &before);
/// assert!(after["a"].is_subset(&before["a"]) && after["b"].is_subset(&before["b"]));
/// assert_eq!(after["c"].len(), 2);
/// ```
pub fn assign_sticky(
    members: &Subscriptions,
    topics: &BTreeMap<String, u32>,
    previous: &Assignments,
) -> Assignments {
    let mut solver = Solver::new(members, topics, previous);
    solver.keep_previous();
    solver.place_unassigned();
    solver.balance();
    solver
        .out
        .into_iter()
        .map(|(m, set)| (m.to_string(), set))
        .collect()
}

/// How many of the least loaded members [`Solver::find_direct`] looks at before searching.
const DIRECT_TRIES: usize = 8;

/// One link of a shift: `from` gives a partition of `topic` to `to`.
struct Link<'a> {
    from: &'a str,
    to: &'a str,
    topic: &'a str,
}

struct Solver<'a> {
    members: &'a Subscriptions,
    topics: &'a BTreeMap<String, u32>,
    previous: &'a Assignments,
    /// Assignable topics (at least one partition and one subscriber) → subscribers in id order.
    subscribers: BTreeMap<&'a str, Vec<&'a str>>,
    out: BTreeMap<&'a str, BTreeSet<Tp>>,
    /// `(partitions held, member)` for every member, kept in step with `out`.
    load: BTreeSet<(usize, &'a str)>,
    /// The partitions in `out` that were not their holder's before, so a link can find one to
    /// pass on without scanning everything the giver holds.
    fresh: BTreeMap<&'a str, BTreeSet<Tp>>,
}

/// The partitions of `topic` in `set`.
fn of_topic<'s>(set: &'s BTreeSet<Tp>, topic: &str) -> impl DoubleEndedIterator<Item = &'s Tp> {
    set.range(Tp::new(topic, 0)..=Tp::new(topic, u32::MAX))
}

impl<'a> Solver<'a> {
    fn new(
        members: &'a Subscriptions,
        topics: &'a BTreeMap<String, u32>,
        previous: &'a Assignments,
    ) -> Self {
        let mut subscribers: BTreeMap<&'a str, Vec<&'a str>> = BTreeMap::new();
        for (m, subscribed) in members {
            for t in subscribed {
                if topics.get(t).is_some_and(|&count| count > 0) {
                    subscribers.entry(t.as_str()).or_default().push(m.as_str());
                }
            }
        }
        Self {
            members,
            topics,
            previous,
            subscribers,
            out: members
                .keys()
                .map(|m| (m.as_str(), BTreeSet::new()))
                .collect(),
            load: members.keys().map(|m| (0, m.as_str())).collect(),
            fresh: BTreeMap::new(),
        }
    }

    fn count(&self, member: &str) -> usize {
        self.out.get(member).map_or(0, BTreeSet::len)
    }

    /// Moves `tp` from `from` (if any) to `to`, keeping `load` and `fresh` in step.
    fn give(&mut self, tp: Tp, from: Option<&'a str>, to: &'a str) {
        if let Some(from) = from {
            let before = self.count(from);
            if let Some(set) = self.out.get_mut(from) {
                set.remove(&tp);
            }
            if let Some(set) = self.fresh.get_mut(from) {
                set.remove(&tp);
            }
            self.load.remove(&(before, from));
            self.load.insert((self.count(from), from));
        }
        if !self.previous.get(to).is_some_and(|p| p.contains(&tp)) {
            self.fresh.entry(to).or_default().insert(tp.clone());
        }
        let before = self.count(to);
        self.out.entry(to).or_default().insert(tp);
        self.load.remove(&(before, to));
        self.load.insert((self.count(to), to));
    }

    fn keep_previous(&mut self) {
        let mut claimed: BTreeSet<&Tp> = BTreeSet::new();
        for (m, prev) in self.previous {
            let Some((m, subscribed)) = self.members.get_key_value(m.as_str()) else {
                continue;
            };
            for tp in prev {
                let exists = self
                    .topics
                    .get(&tp.topic)
                    .is_some_and(|&c| tp.partition < c);
                if exists && subscribed.contains(&tp.topic) && claimed.insert(tp) {
                    self.give(tp.clone(), None, m.as_str());
                }
            }
        }
    }

    fn place_unassigned(&mut self) {
        let held: BTreeSet<Tp> = self.out.values().flatten().cloned().collect();
        let mut order: Vec<(usize, &'a str)> = self
            .subscribers
            .iter()
            .map(|(t, subs)| (subs.len(), *t))
            .collect();
        order.sort_unstable();
        for (_, topic) in order {
            let count = self.topics.get(topic).copied().unwrap_or(0);
            let Some(subs) = self.subscribers.get(topic) else {
                continue;
            };
            // This topic's subscribers by load, so each partition costs O(log subscribers).
            let mut local: BTreeSet<(usize, &'a str)> =
                subs.iter().map(|&m| (self.count(m), m)).collect();
            for p in 0..count {
                let tp = Tp::new(topic, p);
                if held.contains(&tp) {
                    continue;
                }
                let Some((load, m)) = local.pop_first() else {
                    break;
                };
                self.give(tp, None, m);
                local.insert((load + 1, m));
            }
        }
    }

    fn balance(&mut self) {
        loop {
            let Some(&(min, _)) = self.load.first() else {
                return;
            };
            let mut found = None;
            for &(count, source) in self.load.iter().rev() {
                if count < min + 2 {
                    break;
                }
                let direct = self.find_direct(source, count).map(|link| vec![link]);
                if let Some(path) = direct.or_else(|| self.find_shift(source, count, min)) {
                    found = Some(path);
                    break;
                }
            }
            let Some(path) = found else {
                return;
            };
            for link in path {
                self.shift(link);
            }
        }
    }

    /// A direct link from `source` (holding `count`) to one of the [`DIRECT_TRIES`] least loaded
    /// members, if one of them holds at most `count - 2` and subscribes to a topic `source`
    /// holds a partition of. With identical subscriptions this always succeeds, which keeps a
    /// large rebalance at a logarithmic cost per moved partition instead of a search.
    fn find_direct(&self, source: &'a str, count: usize) -> Option<Link<'a>> {
        let held = self.out.get(source)?;
        for &(load, to) in self.load.iter().take(DIRECT_TRIES) {
            if load + 2 > count {
                return None;
            }
            let Some(subscribed) = self.members.get(to) else {
                continue;
            };
            if let Some(topic) = subscribed
                .iter()
                .find(|t| of_topic(held, t).next().is_some())
            {
                return Some(Link {
                    from: source,
                    to,
                    topic: topic.as_str(),
                });
            }
        }
        None
    }

    /// A chain from `source` (holding `count`) to the least loaded member it can reach that holds
    /// at most `count - 2`, found breadth-first in member-id order; `None` if there is none.
    fn find_shift(&self, source: &'a str, count: usize, min: usize) -> Option<Vec<Link<'a>>> {
        let mut parent: BTreeMap<&'a str, (&'a str, &'a str)> = BTreeMap::new();
        let mut visited: BTreeSet<&'a str> = BTreeSet::from([source]);
        let mut expanded: BTreeSet<&'a str> = BTreeSet::new();
        let mut queue = VecDeque::from([source]);
        let mut best: Option<(usize, &'a str)> = None;
        'search: while let Some(u) = queue.pop_front() {
            let (Some(subscribed), Some(held)) = (self.members.get(u), self.out.get(u)) else {
                continue;
            };
            for t in subscribed {
                let t = t.as_str();
                if expanded.contains(t) || of_topic(held, t).next().is_none() {
                    continue;
                }
                let Some(subs) = self.subscribers.get(t) else {
                    continue;
                };
                expanded.insert(t);
                for &v in subs {
                    if !visited.insert(v) {
                        continue;
                    }
                    parent.insert(v, (u, t));
                    queue.push_back(v);
                    let load = self.count(v);
                    if load + 2 <= count && best.is_none_or(|b| (load, v) < b) {
                        best = Some((load, v));
                        if load == min {
                            break 'search;
                        }
                    }
                }
            }
        }
        let (_, mut to) = best?;
        let mut path = Vec::new();
        while to != source {
            let &(from, topic) = parent.get(to)?;
            path.push(Link { from, to, topic });
            to = from;
        }
        Some(path)
    }

    /// Moves one partition of `link.topic` from `link.from` to `link.to`: preferably one that
    /// `to` had before, then one `from` did not have before, then the highest index.
    fn shift(&mut self, link: Link<'a>) {
        let Some(held) = self.out.get(link.from) else {
            return;
        };
        let going_home = self.previous.get(link.to).and_then(|prev| {
            of_topic(prev, link.topic)
                .rev()
                .find(|tp| held.contains(*tp))
        });
        let fresh = self
            .fresh
            .get(link.from)
            .and_then(|f| of_topic(f, link.topic).next_back());
        let chosen = going_home
            .or(fresh)
            .or_else(|| of_topic(held, link.topic).next_back())
            .cloned();
        if let Some(tp) = chosen {
            self.give(tp, Some(link.from), link.to);
        }
    }
}
