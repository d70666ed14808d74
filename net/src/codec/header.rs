//! The fixed 14-byte frame header and the size limits applied to it.
//!
//! The byte positions used by the encoder and decoder are derived from [`WireHeader`], a `repr(C)`
//! struct made only of byte arrays (alignment 1, so no padding). The `const` assertions below pin
//! its size and every offset at compile time: changing the header layout without changing
//! `docs/protocol.md` and the golden vectors fails the build, not a customer.

use std::mem::{offset_of, size_of};

/// Wire image of the header. Never instantiated; it exists so the layout is written down once.
#[repr(C)]
#[allow(dead_code)]
struct WireHeader {
    length: [u8; 4],
    api_key: [u8; 2],
    api_version: [u8; 2],
    correlation_id: [u8; 4],
    flags: [u8; 2],
}

/// Size in bytes of the fixed header, including the length field.
pub const HEADER_BYTES: usize = size_of::<WireHeader>();
/// Size in bytes of the `length` field that starts every frame.
pub const LENGTH_FIELD_BYTES: usize = size_of::<[u8; 4]>();
/// Smallest legal value of the `length` field: the rest of the header with an empty body.
pub const LENGTH_MIN: u32 = (HEADER_BYTES - LENGTH_FIELD_BYTES) as u32;

pub(crate) const API_KEY_AT: usize = offset_of!(WireHeader, api_key);
pub(crate) const API_VERSION_AT: usize = offset_of!(WireHeader, api_version);
pub(crate) const CORRELATION_ID_AT: usize = offset_of!(WireHeader, correlation_id);
pub(crate) const FLAGS_AT: usize = offset_of!(WireHeader, flags);

const _: () = assert!(HEADER_BYTES == 14);
const _: () = assert!(std::mem::align_of::<WireHeader>() == 1);
const _: () = assert!(offset_of!(WireHeader, length) == 0);
const _: () = assert!(API_KEY_AT == 4);
const _: () = assert!(API_VERSION_AT == 6);
const _: () = assert!(CORRELATION_ID_AT == 8);
const _: () = assert!(FLAGS_AT == 12);
const _: () = assert!(LENGTH_MIN == 10);

/// `flags` bit 0: the frame travels server -> client (a response or a push).
pub const FLAG_RESPONSE: u16 = 1 << 0;
/// `flags` bit 1: the body is the generic error body ([`crate::codec::Response::Error`]),
/// whatever the api key. Only valid together with [`FLAG_RESPONSE`].
pub const FLAG_ERROR: u16 = 1 << 1;
/// Every flag bit this version of the protocol defines; any other bit set is a malformed frame.
pub const FLAGS_KNOWN: u16 = FLAG_RESPONSE | FLAG_ERROR;

/// The decoded fixed header of a frame (without the length field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// Raw api key; kept raw so an unknown key can still be echoed in an error response.
    pub api_key: u16,
    pub api_version: u16,
    /// Chosen by the client, echoed in the response; for push frames, the subscription id.
    pub correlation_id: u32,
    pub flags: u16,
}

impl FrameHeader {
    /// True when [`FLAG_RESPONSE`] is set.
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    /// True when [`FLAG_ERROR`] is set.
    pub fn is_error(&self) -> bool {
        self.flags & FLAG_ERROR != 0
    }
}

/// Frame size limits applied by [`crate::codec::decode`] and [`crate::codec::encode`].
///
/// `frame_bytes_max` bounds the `length` field (the bytes after it), and is checked as soon as the
/// first four bytes are available, before anything is allocated or read further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub frame_bytes_max: u32,
}

impl Limits {
    /// Default bound of a frame after the handshake: 8 MiB.
    pub const FRAME_BYTES_MAX_DEFAULT: u32 = 8 * 1024 * 1024;
    /// Bound a server applies before the `ApiVersions` handshake: 512 KiB.
    pub const FRAME_BYTES_MAX_PRE_HANDSHAKE: u32 = 512 * 1024;

    /// Limits for a connection that has completed the handshake.
    pub const fn new(frame_bytes_max: u32) -> Self {
        Self { frame_bytes_max }
    }

    /// Limits for a connection that has not completed the handshake yet.
    pub const fn pre_handshake() -> Self {
        Self::new(Self::FRAME_BYTES_MAX_PRE_HANDSHAKE)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(Self::FRAME_BYTES_MAX_DEFAULT)
    }
}
