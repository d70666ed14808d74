//! A fake server for client tests: a thread that accepts one connection and answers requests
//! through a closure, speaking the codec over a real socket.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

use bytes::BytesMut;
use net::client::ClientConfig;
use net::codec::{
    decode, encode, ApiKey, ApiVersionRange, Body, Decoded, ErrorCode, Frame, FrameHeader, Limits,
    RecordView, Request, Response,
};

pub fn bytes_of(frame: &Frame<'_>) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(frame, &mut buf, &Limits::default()).expect("test frames encode");
    buf.to_vec()
}

pub fn versions_reply(
    correlation_id: u32,
    produce_range: (u16, u16),
    frame_bytes_max: u32,
) -> Vec<u8> {
    versions_reply_with(
        correlation_id,
        &[(ApiKey::Produce, produce_range)],
        frame_bytes_max,
    )
}

/// An `ApiVersions` reply listing every api at the codec's own range, except the `overrides`.
pub fn versions_reply_with(
    correlation_id: u32,
    overrides: &[(ApiKey, (u16, u16))],
    frame_bytes_max: u32,
) -> Vec<u8> {
    let versions = ApiKey::ALL
        .iter()
        .map(|api| {
            let (min_version, max_version) = overrides
                .iter()
                .find(|(overridden, _)| overridden == api)
                .map_or_else(|| api.supported_versions(), |(_, range)| *range);
            ApiVersionRange {
                api_key: *api as u16,
                min_version,
                max_version,
            }
        })
        .collect();
    bytes_of(&Frame::response(
        correlation_id,
        Response::ApiVersions {
            error: ErrorCode::None,
            message: "",
            versions,
            server_version: "fake 0.0.1",
            frame_bytes_max,
        },
    ))
}

/// An `ApiVersions` reply listing every api at the codec's own range except `missing`, which
/// the fake server does not implement at all.
pub fn versions_reply_without(correlation_id: u32, missing: &[ApiKey]) -> Vec<u8> {
    let versions = ApiKey::ALL
        .iter()
        .filter(|api| !missing.contains(api))
        .map(|api| {
            let (min_version, max_version) = api.supported_versions();
            ApiVersionRange {
                api_key: *api as u16,
                min_version,
                max_version,
            }
        })
        .collect();
    bytes_of(&Frame::response(
        correlation_id,
        Response::ApiVersions {
            error: ErrorCode::None,
            message: "",
            versions,
            server_version: "fake 0.0.1",
            frame_bytes_max: Limits::FRAME_BYTES_MAX_DEFAULT,
        },
    ))
}

/// Accepts one connection; answers the handshake itself (every api at the codec's own versions,
/// 8 MiB frames) and hands every other request to `handler`, writing whatever byte strings it
/// returns.
pub fn serve<H>(handler: H) -> (String, JoinHandle<()>)
where
    H: FnMut(u32, &Request<'_>) -> Vec<Vec<u8>> + Send + 'static,
{
    serve_with_handshake(
        |cid| versions_reply_with(cid, &[], Limits::FRAME_BYTES_MAX_DEFAULT),
        handler,
    )
}

pub fn serve_with_handshake<V, H>(handshake: V, mut handler: H) -> (String, JoinHandle<()>)
where
    V: FnMut(u32) -> Vec<u8> + Send + 'static,
    H: FnMut(u32, &Request<'_>) -> Vec<Vec<u8>> + Send + 'static,
{
    serve_with_headers(handshake, move |header, request| {
        handler(header.correlation_id, request)
    })
}

/// Like [`serve_with_handshake`], but the handler also sees each request's header (its version).
pub fn serve_with_headers<V, H>(mut handshake: V, mut handler: H) -> (String, JoinHandle<()>)
where
    V: FnMut(u32) -> Vec<u8> + Send + 'static,
    H: FnMut(FrameHeader, &Request<'_>) -> Vec<Vec<u8>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr").to_string();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            loop {
                let (out, used) =
                    match decode(&buf, &Limits::default()).expect("client frames decode") {
                        Decoded::Incomplete { .. } => break,
                        Decoded::Frame(frame, used) => {
                            let Body::Request(request) = &frame.body else {
                                panic!("client sent a response")
                            };
                            let cid = frame.header.correlation_id;
                            let out = match request {
                                Request::ApiVersions { .. } => vec![handshake(cid)],
                                other => handler(frame.header, other),
                            };
                            (out, used)
                        }
                    };
                buf.drain(..used);
                for bytes in out {
                    if stream.write_all(&bytes).is_err() {
                        return;
                    }
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    (addr, handle)
}

pub fn client_config() -> ClientConfig {
    ClientConfig {
        request_timeout_ms: 5_000,
        ..ClientConfig::default()
    }
}

pub fn ok_produce(cid: u32, partition: u32, base_offset: u64, record_count: u32) -> Vec<u8> {
    bytes_of(&Frame::response(
        cid,
        Response::Produce {
            error: ErrorCode::None,
            message: "",
            topic_id: 0xa3,
            partition,
            base_offset,
            record_count,
            duplicate: false,
            durable: true,
        },
    ))
}

pub fn record(value: &[u8]) -> RecordView<'_> {
    RecordView {
        key: None,
        value,
        headers: vec![],
        timestamp_ms: 1,
        ttl_ms: 0,
    }
}
