//! Errors of the UDP driver.

use std::net::SocketAddr;

use crate::error::{CodecError, MembershipError};

/// Starting, configuring or stopping the gossip driver failed.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    /// The gossip port is held by another socket (another node on this host?).
    /// Nothing was started.
    #[error("gossip address {addr}: the UDP port is already in use (is another sprawl running?); pick another gossip port, or port 0 for any free port")]
    PortInUse {
        /// Address we tried to bind.
        addr: SocketAddr,
    },
    /// The UDP socket could not be bound. Nothing was started.
    #[error("cannot bind the gossip socket at {addr}: {source}")]
    Bind {
        /// Address we tried to bind.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The socket is bound to a wildcard address and no advertised address was
    /// given, so peers would not know where to send. Nothing was started.
    #[error("the gossip socket is bound to {bound}, which peers cannot reach; set an advertised address (host:port)")]
    AdvertiseUnspecified {
        /// The bound wildcard address.
        bound: SocketAddr,
    },
    /// This node's metadata is not valid (address too long, reserved node id,
    /// invalid load). Nothing was started.
    #[error("invalid node metadata: {source}")]
    InvalidIdentity {
        /// What was wrong.
        #[source]
        source: CodecError,
    },
    /// A seed is not of the form `host:port` or is too long. Nothing was started.
    #[error("invalid seed {seed:?}: {reason}")]
    InvalidSeed {
        /// The seed as given.
        seed: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A configuration value is out of range. Nothing was started.
    #[error("invalid gossip config: {field} {reason}")]
    InvalidConfig {
        /// The offending field of `GossipConfig`.
        field: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A load summary is NaN, infinite or negative; the previous one stays published.
    #[error("load_msgs_per_s {load_msgs_per_s} is not a finite rate >= 0")]
    InvalidLoad {
        /// The refused value.
        load_msgs_per_s: f32,
    },
    /// foca refused the graceful leave; the socket was closed anyway, so peers
    /// will declare this node down by failure detection instead.
    #[error("graceful leave failed: {source}")]
    Leave {
        /// foca's refusal.
        #[source]
        source: MembershipError,
    },
    /// The driver task is no longer running (it was cancelled, or already left).
    #[error("the gossip driver is not running")]
    Stopped,
}
