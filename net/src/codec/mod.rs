//! The pure Sprawl frame codec: no I/O, no async, no runtime types.
//!
//! [`decode`] looks at a byte slice and returns either a complete [`Frame`] borrowing from it plus
//! the number of bytes it used, or [`Decoded::Incomplete`] saying how many more bytes are needed at
//! least. The length prefix is checked against [`Limits`] as soon as its four bytes are present, so
//! a reader never grows its buffer for a frame it will reject. [`encode`] appends a frame to a
//! `BytesMut`. The byte layout is specified in `docs/protocol.md` and pinned by the golden vectors
//! in `net/tests/golden/`.

mod error;
mod fetched;
mod group;
mod header;
mod in_sync;
mod placement;
mod replica;
mod request;
mod response;
mod topic;
mod types;
mod wire;

use bytes::{BufMut, BytesMut};

pub use error::{CodecError, EncodeError, Malformed};
pub use header::{
    FrameHeader, Limits, FLAGS_KNOWN, FLAG_ERROR, FLAG_RESPONSE, HEADER_BYTES, LENGTH_FIELD_BYTES,
    LENGTH_MIN,
};
pub use request::Request;
pub use response::Response;
pub use types::{
    message_id, parse_message_id, Acks, ApiKey, ApiVersionRange, BatchEpoch, Broker,
    DivergingEpoch, ErrorCode, FetchedRecordView, GroupTopic, PartitionInfo, PartitionMetadata,
    PartitionPlacement, ProducerIdent, RecordView, RemoteTierInfo, TopicConfig, TopicDescription,
    TopicMetadata, TopicSummary, GROUP_TOPICS_MAX,
};

use header::{API_KEY_AT, API_VERSION_AT, CORRELATION_ID_AT, FLAGS_AT};
use wire::{FieldError, Reader, Writer};

/// The body of a frame: which one is decided by the header's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    Request(Request<'a>),
    Response(Response<'a>),
}

/// One complete frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    pub body: Body<'a>,
}

impl<'a> Frame<'a> {
    /// A request at the api's current (newest) version.
    pub fn request(correlation_id: u32, request: Request<'a>) -> Self {
        let version = request.api_key().current_version();
        Frame::request_at(correlation_id, version, request)
    }

    /// A request at `api_version`, e.g. the version a client negotiated with its server.
    /// [`encode`] fails if the codec has no layout for that version or the body sets a field the
    /// version cannot carry.
    pub fn request_at(correlation_id: u32, api_version: u16, request: Request<'a>) -> Self {
        Frame {
            header: FrameHeader {
                api_key: request.api_key() as u16,
                api_version,
                correlation_id,
                flags: 0,
            },
            body: Body::Request(request),
        }
    }

    /// An api-specific response (or a push) at the api's current (newest) version. A server
    /// answering a request uses [`Frame::response_at`] with the request's version instead. For
    /// [`Response::Error`], prefer [`Frame::error`], which echoes the request's api key.
    pub fn response(correlation_id: u32, response: Response<'a>) -> Self {
        let version = response.api_key().map_or(0, ApiKey::current_version);
        Frame::response_at(correlation_id, version, response)
    }

    /// An api-specific response at `api_version`: a server echoes the version of the request it
    /// answers, so an old client gets the layout it asked for. [`encode`] fails, rather than
    /// drop anything, if the body sets a field that version cannot carry.
    pub fn response_at(correlation_id: u32, api_version: u16, response: Response<'a>) -> Self {
        let (api_key, flags) = match response.api_key() {
            Some(api) => (api as u16, FLAG_RESPONSE),
            None => (0, FLAG_RESPONSE | FLAG_ERROR),
        };
        Frame {
            header: FrameHeader {
                api_key,
                api_version,
                correlation_id,
                flags,
            },
            body: Body::Response(response),
        }
    }

    /// The generic error answer to a request whose header is `request` (which may carry an
    /// unknown api key or version: they are echoed unchanged).
    pub fn error(
        request: FrameHeader,
        error: ErrorCode,
        message: &'a str,
        retry_after_ms: u32,
    ) -> Self {
        Frame {
            header: FrameHeader {
                api_key: request.api_key,
                api_version: request.api_version,
                correlation_id: request.correlation_id,
                flags: FLAG_RESPONSE | FLAG_ERROR,
            },
            body: Body::Response(Response::Error {
                error,
                message,
                retry_after_ms,
            }),
        }
    }
}

/// Result of a successful [`decode`] call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A frame and the number of input bytes it used (length field included).
    Frame(Frame<'a>, usize),
    /// The input holds no complete frame yet; at least `needed` more bytes are required.
    /// (With fewer than 4 bytes the length is unknown, so `needed` only completes the prefix.)
    Incomplete { needed: usize },
}

/// Decodes the first frame in `buf`.
///
/// Never panics and never allocates more than the frame's own size justifies: lists are only
/// allocated after their count was checked against the bytes left in the frame.
pub fn decode<'a>(buf: &'a [u8], limits: &Limits) -> Result<Decoded<'a>, CodecError> {
    let Some(prefix) = buf.first_chunk::<LENGTH_FIELD_BYTES>() else {
        return Ok(Decoded::Incomplete {
            needed: LENGTH_FIELD_BYTES - buf.len(),
        });
    };
    let length_bytes = u32::from_le_bytes(*prefix);
    if length_bytes > limits.frame_bytes_max {
        return Err(CodecError::FrameTooLarge {
            length_bytes,
            limit_bytes: limits.frame_bytes_max,
        });
    }
    if length_bytes < LENGTH_MIN {
        return Err(CodecError::FrameTooShort {
            length_bytes,
            minimum_bytes: LENGTH_MIN,
        });
    }
    // u32 always fits usize on the 32/64-bit targets we build for.
    let frame_bytes = LENGTH_FIELD_BYTES + length_bytes as usize;
    if buf.len() < frame_bytes {
        return Ok(Decoded::Incomplete {
            needed: frame_bytes - buf.len(),
        });
    }
    let frame = &buf[..frame_bytes];
    let u16_at = |at: usize| u16::from_le_bytes([frame[at], frame[at + 1]]);
    let header = FrameHeader {
        api_key: u16_at(API_KEY_AT),
        api_version: u16_at(API_VERSION_AT),
        correlation_id: u32::from_le_bytes([
            frame[CORRELATION_ID_AT],
            frame[CORRELATION_ID_AT + 1],
            frame[CORRELATION_ID_AT + 2],
            frame[CORRELATION_ID_AT + 3],
        ]),
        flags: u16_at(FLAGS_AT),
    };
    let malformed = |e: FieldError| CodecError::Malformed {
        header,
        frame_bytes,
        field: e.field,
        reason: e.reason,
    };
    if header.flags & !FLAGS_KNOWN != 0 || (header.is_error() && !header.is_response()) {
        return Err(malformed(FieldError {
            field: "flags",
            reason: Malformed::InvalidValue {
                value: i64::from(header.flags),
            },
        }));
    }
    let mut reader = Reader::new(&frame[HEADER_BYTES..]);
    let body = if header.is_error() {
        // The generic error body never changes layout, so any api key and version decode.
        Body::Response(Response::read(None, header.api_version, &mut reader).map_err(malformed)?)
    } else {
        let api = ApiKey::from_u16(header.api_key)
            .filter(|api| header.is_response() || *api != ApiKey::Push)
            .ok_or(CodecError::UnknownApi {
                header,
                frame_bytes,
            })?;
        let (supported_min, supported_max) = api.supported_versions();
        if !(supported_min..=supported_max).contains(&header.api_version) {
            return Err(CodecError::UnsupportedVersion {
                header,
                frame_bytes,
                supported_min,
                supported_max,
            });
        }
        let version = header.api_version;
        if header.is_response() {
            Body::Response(Response::read(Some(api), version, &mut reader).map_err(malformed)?)
        } else {
            Body::Request(Request::read(api, version, &mut reader).map_err(malformed)?)
        }
    };
    reader.finish().map_err(malformed)?;
    Ok(Decoded::Frame(Frame { header, body }, frame_bytes))
}

/// Appends `frame` to `dst` and returns the number of bytes written (length field included).
///
/// The body is written in the layout of `frame.header.api_version`. Fails, leaving `dst`
/// unchanged, when a string, blob or list does not fit its length field, when the header
/// disagrees with the body, when the codec has no layout for the header's version, when the body
/// sets a field that version cannot carry ([`EncodeError::FieldNeedsVersion`]), or when the frame
/// would exceed `limits`.
pub fn encode(
    frame: &Frame<'_>,
    dst: &mut BytesMut,
    limits: &Limits,
) -> Result<usize, EncodeError> {
    check_header(frame)?;
    let start = dst.len();
    let result = encode_unchecked(frame, dst, start, limits);
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

fn encode_unchecked(
    frame: &Frame<'_>,
    dst: &mut BytesMut,
    start: usize,
    limits: &Limits,
) -> Result<usize, EncodeError> {
    let h = &frame.header;
    dst.put_u32_le(0);
    dst.put_u16_le(h.api_key);
    dst.put_u16_le(h.api_version);
    dst.put_u32_le(h.correlation_id);
    dst.put_u16_le(h.flags);
    let mut w = Writer { buf: dst };
    match &frame.body {
        Body::Request(r) => r.write(h.api_version, &mut w)?,
        Body::Response(r) => r.write(h.api_version, &mut w)?,
    }
    let frame_bytes = dst.len() - start;
    let length_bytes = frame_bytes - LENGTH_FIELD_BYTES;
    let length = u32::try_from(length_bytes)
        .ok()
        .filter(|l| *l <= limits.frame_bytes_max)
        .ok_or(EncodeError::FrameTooLarge {
            length_bytes,
            limit_bytes: limits.frame_bytes_max,
        })?;
    dst[start..start + LENGTH_FIELD_BYTES].copy_from_slice(&length.to_le_bytes());
    Ok(frame_bytes)
}

fn check_header(frame: &Frame<'_>) -> Result<(), EncodeError> {
    let h = &frame.header;
    let (body_api, body_flags) = match &frame.body {
        Body::Request(r) => (Some(r.api_key()), 0),
        Body::Response(r) => match r.api_key() {
            Some(api) => (Some(api), FLAG_RESPONSE),
            None => (None, FLAG_RESPONSE | FLAG_ERROR),
        },
    };
    let body_api_key = body_api.map_or(h.api_key, |api| api as u16);
    if h.api_key != body_api_key || h.flags != body_flags {
        return Err(EncodeError::HeaderMismatch {
            header_api_key: h.api_key,
            header_flags: h.flags,
            body_api_key,
            body_flags,
        });
    }
    // The generic error body has one layout for every version; any other body needs one the
    // codec implements, or the decoder would reject what the encoder wrote.
    if let Some(api) = body_api {
        let (supported_min, supported_max) = api.supported_versions();
        if !(supported_min..=supported_max).contains(&h.api_version) {
            return Err(EncodeError::UnsupportedVersion {
                api,
                version: h.api_version,
                supported_min,
                supported_max,
            });
        }
    }
    Ok(())
}
