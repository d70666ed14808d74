//! Shared test helpers: proptest strategies and a fixed sample of every frame kind.
#![allow(dead_code)]

pub mod fake_server;
pub mod groups;
pub mod replica_fetch;
pub mod replication;
pub mod samples;
pub mod strategies;

use bytes::BytesMut;
use net::codec::{decode, encode, Decoded, Frame, Limits};

/// Encodes with default limits and returns the bytes.
pub fn encode_frame(frame: &Frame<'_>) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let written = encode(frame, &mut buf, &Limits::default()).expect("sample frames encode");
    assert_eq!(written, buf.len());
    buf.to_vec()
}

/// Decodes exactly one complete frame from `bytes`.
pub fn decode_one(bytes: &[u8]) -> Frame<'_> {
    match decode(bytes, &Limits::default()) {
        Ok(Decoded::Frame(frame, used)) => {
            assert_eq!(used, bytes.len(), "frame must use every byte");
            frame
        }
        other => panic!("expected a frame, got {other:?}"),
    }
}
