//! `net`: the Sprawl wire protocol.
//!
//! Two parts with a hard line between them:
//! - [`codec`] is pure: it turns bytes into frames and frames into bytes, and nothing else. No
//!   sockets, no async, no runtime types, so the engine (on glommio), the blocking [`client`],
//!   the fuzzer and SDK authors in other languages all share one definition of the format,
//!   specified in `docs/protocol.md` and pinned by golden vectors in `net/tests/golden/`.
//! - [`client`] is a small blocking client over `std::net::TcpStream` for the `sprawl` CLI,
//!   tests and the load generator, with pipelined produce.
//!
//! What this crate deliberately does not do: serve requests (the engine uses the codec
//! directly), retry on its own in [`client::Client`] (callers decide;
//! [`codec::ErrorCode::is_retriable`] helps; only [`client::ClusterClient`] retries, and only
//! where resending cannot duplicate data), pick partitions, or depend on any other workspace
//! crate.
//!
//! ```
//! use bytes::BytesMut;
//! use net::codec::{decode, encode, Body, Decoded, Frame, Limits, Request};
//!
//! let limits = Limits::default();
//! let mut buf = BytesMut::new();
//! let request = Request::DescribeTopic { name: "orders" };
//! encode(&Frame::request(7, request.clone()), &mut buf, &limits)?;
//!
//! // A reader that has only part of the frame is told how much more to read.
//! assert_eq!(decode(&buf[..3], &limits)?, Decoded::Incomplete { needed: 1 });
//!
//! match decode(&buf, &limits)? {
//!     Decoded::Frame(frame, used) => {
//!         assert_eq!(used, buf.len());
//!         assert_eq!(frame.header.correlation_id, 7);
//!         assert_eq!(frame.body, Body::Request(request));
//!     }
//!     Decoded::Incomplete { .. } => unreachable!("the whole frame is present"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod client;
pub mod codec;
