//! Assignors: which member of a group should consume which partition.
//!
//! Both are pure functions of the members' subscriptions and the topics' partition counts (plus,
//! for the sticky one, the previous assignment), deterministic because every map is ordered and
//! ties are broken by member id and partition order. The cost of both is proportional to the
//! number of partitions of the subscribed topics; [`crate::group::Group`] bounds that by
//! [`crate::group::GROUP_PARTITIONS_MAX`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{cut, GroupError};

/// Member id → the topics it subscribes to.
pub type Subscriptions = BTreeMap<String, BTreeSet<String>>;
/// Member id → the partitions it is (to be) given.
pub type Assignments = BTreeMap<String, BTreeSet<Tp>>;

/// One topic-partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tp {
    /// Topic name.
    pub topic: String,
    /// Partition index within the topic.
    pub partition: u32,
}

impl Tp {
    /// The partition `partition` of `topic`.
    pub fn new(topic: &str, partition: u32) -> Self {
        Self {
            topic: topic.to_string(),
            partition,
        }
    }
}

impl fmt::Display for Tp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// How a group spreads partitions over its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Assignor {
    /// Kafka's range assignor ([`assign_range`]): per topic, contiguous ranges in member-id order.
    /// Simple and predictable, but ignores the previous assignment, so a rebalance may move many
    /// partitions, and members sorting first get the extra partition of every topic.
    Range,
    /// Balanced and sticky ([`crate::group::assign_sticky`]): as even as the subscriptions
    /// allow, and a partition only moves when its owner left, unsubscribed, or has too many.
    CooperativeSticky,
}

impl Assignor {
    /// Every assignor, in the order of their names in error messages.
    pub const ALL: [Assignor; 2] = [Assignor::Range, Assignor::CooperativeSticky];

    /// The assignor named `name` (`"range"` or `"cooperative-sticky"`, as Kafka names them).
    pub fn parse(name: &str) -> Result<Self, GroupError> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| GroupError::UnknownAssignor { name: cut(name) })
    }

    /// The assignor's protocol name.
    pub fn name(&self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The target assignment for `members` over `topics`; `previous` is only used by
    /// [`Assignor::CooperativeSticky`].
    pub fn assign(
        &self,
        members: &Subscriptions,
        topics: &BTreeMap<String, u32>,
        previous: &Assignments,
    ) -> Assignments {
        match self {
            Assignor::Range => assign_range(members, topics),
            Assignor::CooperativeSticky => super::assign_sticky(members, topics, previous),
        }
    }
}

impl fmt::Display for Assignor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Kafka's range assignor. For each topic, the members subscribed to it are sorted by id and the
/// partitions split into contiguous ranges, the first `count % n` members getting one extra.
///
/// Every member appears in the result, possibly with an empty set. A subscribed topic missing
/// from `topics` (or with 0 partitions) is not assigned.
///
/// ```
/// use cluster::group::{assign_range, Tp};
/// use std::collections::{BTreeMap, BTreeSet};
///
/// let t: BTreeSet<String> = ["t".to_string()].into();
/// let members = BTreeMap::from([("a".to_string(), t.clone()), ("b".to_string(), t)]);
/// let out = assign_range(&members, &BTreeMap::from([("t".to_string(), 5)]));
/// assert_eq!(out["a"], (0..3).map(|p| Tp::new("t", p)).collect());
/// assert_eq!(out["b"], (3..5).map(|p| Tp::new("t", p)).collect());
/// ```
pub fn assign_range(members: &Subscriptions, topics: &BTreeMap<String, u32>) -> Assignments {
    let mut out: Assignments = members
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (topic, &count) in topics {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, subscribed)| subscribed.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len() as u64;
        let per = u64::from(count) / n;
        let extra = u64::from(count) % n;
        for (i, member) in subscribers.into_iter().enumerate() {
            let i = i as u64;
            let start = i * per + i.min(extra);
            let len = per + u64::from(i < extra);
            let set = out.entry(member.clone()).or_default();
            // start + len <= count <= u32::MAX, so every index fits in u32.
            for p in start..start + len {
                set.insert(Tp {
                    topic: topic.clone(),
                    partition: p as u32,
                });
            }
        }
    }
    out
}
