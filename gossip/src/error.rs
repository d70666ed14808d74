//! Typed errors of the gossip crate.

/// A datagram or a member could not be encoded or decoded.
///
/// Decoding errors leave the membership state untouched: the datagram is dropped.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The input ended before `field` was complete.
    #[error("truncated {field}: need {needed} bytes, {available} available")]
    Truncated {
        /// Field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// An address is longer than the wire allows.
    #[error("{field} is {len} bytes, limit {max}")]
    AddrTooLong {
        /// Which address.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An address is not UTF-8.
    #[error("{field} is not UTF-8")]
    InvalidUtf8 {
        /// Which address.
        field: &'static str,
    },
    /// The load summary is NaN, infinite or negative.
    #[error("load_msgs_per_s is not a finite rate >= 0 (bits {bits:#010x})")]
    InvalidLoad {
        /// The raw f32 bits.
        bits: u32,
    },
    /// The node id is reserved for address-only seeds.
    #[error("node id {node_id} is reserved for address-only seeds")]
    ReservedNodeId {
        /// The rejected id.
        node_id: u32,
    },
    /// The datagram was written by another wire version.
    #[error("wire version {found}, expected {expected}")]
    WrongVersion {
        /// Version byte read.
        found: u8,
        /// Version this build speaks.
        expected: u8,
    },
    /// Unknown message tag.
    #[error("unknown message tag {tag}")]
    UnknownMessage {
        /// Tag byte read.
        tag: u8,
    },
    /// Unknown member state tag.
    #[error("unknown member state {tag}")]
    UnknownState {
        /// Tag byte read.
        tag: u8,
    },
    /// The output buffer cannot hold the item; nothing was written.
    #[error("output full: need {needed} bytes, {available} free")]
    BufferFull {
        /// Bytes the item needs.
        needed: usize,
        /// Bytes free in the buffer.
        available: usize,
    },
}

/// An operation on [`crate::Membership`] failed.
///
/// Effects produced before the failure are kept and returned by the next call,
/// so no timer is ever lost; the membership state is still valid.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// foca refused the operation or the datagram (malformed, too big, from ourselves...).
    #[error("{operation} failed: {source}")]
    Foca {
        /// What was being done.
        operation: &'static str,
        /// foca's error.
        #[source]
        source: foca::Error,
    },
}
