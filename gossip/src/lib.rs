//! SWIM cluster membership for Sprawl: who is in the cluster, who is alive, and
//! how to reach them.
//!
//! [`Membership`] wraps [`foca`] as a pure state machine: received datagrams and
//! expired timers go in together with the current time, and [`Effects`] come
//! out (datagrams to send, timers to schedule, membership changes). Each node's
//! identity is a [`Member`]: node id, incarnation, advertised client / HTTP /
//! gossip addresses, shard count and a load summary, spread with every update.
//! Datagrams use a hand-written little-endian codec ([`codec`]), no serde; every
//! length is bounded and checked before anything is allocated.
//!
//! [`driver`] puts a [`Membership`] on the network: [`GossipDriver::start`]
//! binds a glommio UDP socket on the current executor and runs one task that
//! feeds datagrams and expired timers in with a monotonic clock, sends what the
//! effects ask for, joins through `host:port` seeds (retrying with backoff),
//! re-announces the load summary and leaves gracefully. Its [`GossipHandle`]
//! gives the member list with metadata and state (alive, suspect, left, failed),
//! a bounded queue of [`ChangeEvent`]s, and counters ([`GossipStats`]).
//!
//! What this crate deliberately does not do:
//! - no I/O in [`Membership`]: no sockets, no clock reads and no ambient
//!   randomness; `now` and a seed are passed in. This is what lets
//!   `tests/simulation.rs` run five nodes with loss, delay and pauses
//!   deterministically on a virtual clock. Only [`driver`] touches sockets, and
//!   `tests/udp.rs` runs it on real UDP sockets (loss, pause, crash, leave);
//! - no engine wiring: the `sprawl serve` flags (`--seeds`, `--gossip-port`,
//!   `--advertise`) and sharing the member list with other shards belong to the
//!   engine;
//! - no consensus: membership is eventually consistent and advisory. Topic and
//!   partition metadata go through the Raft log, never through gossip;
//! - no placement: who leads what is decided elsewhere from the live set.
//!
//! Timings are chosen in [`Membership::recommended_config`] (why: see there).
//!
//! ```
//! use std::time::Duration;
//! use gossip::{Member, MemberChange, MemberSpec, Membership};
//!
//! let spec = |node_id, gossip_addr| MemberSpec {
//!     node_id,
//!     incarnation: 1,
//!     client_addr: "127.0.0.1:7070",
//!     http_addr: "127.0.0.1:8080",
//!     gossip_addr,
//!     shard_count: 4,
//!     load_msgs_per_s: 0.0,
//! };
//! let config = Membership::recommended_config();
//! let mut a = Membership::new(Member::new(spec(1, "127.0.0.1:7946"))?, config.clone(), 1);
//! let mut b = Membership::new(Member::new(spec(2, "127.0.0.2:7946"))?, config, 2);
//!
//! // b knows a only by its gossip address (`--seeds 127.0.0.1:7946`).
//! let now = Duration::ZERO;
//! let announce = b.join(&[Member::seed("127.0.0.1:7946")?], now)?;
//! assert_eq!(announce.datagrams[0].to.gossip_addr(), "127.0.0.1:7946");
//!
//! // Deliver by hand what a UDP socket would carry.
//! let feed = a.handle_datagram(&announce.datagrams[0].bytes, now)?;
//! assert!(feed.changes.contains(&MemberChange::Up(b.identity().clone())));
//! let joined = b.handle_datagram(&feed.datagrams[0].bytes, now)?;
//! assert!(joined.changes.contains(&MemberChange::Active));
//! assert!(!joined.timers.is_empty()); // probing and gossip start now
//! assert_eq!(b.active_members(), vec![a.identity().clone()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod driver;
mod error;
mod member;
mod membership;
mod rng;

pub use codec::{WireCodec, WIRE_VERSION};
pub use driver::{
    parse_seed_list, ChangeEvent, ChangeReceiver, DownKind, GossipConfig, GossipDriver,
    GossipError, GossipHandle, GossipStats, MemberState, MemberStatus, GOSSIP_PORT_DEFAULT,
};
pub use error::{CodecError, MembershipError};
pub use foca::{Config, State};
pub use member::{
    Member, MemberAddr, MemberSpec, ADDR_BYTES_MAX, MEMBER_BYTES_MAX, MEMBER_FIXED_BYTES,
    SEED_NODE_ID,
};
pub use membership::{
    Datagram, Effects, MemberChange, Membership, Timer, TimerRequest, DATAGRAM_BYTES_MAX,
};
pub use rng::SplitMix64;
