//! Typed codec errors. Decoding errors say whether the byte stream is still usable.

use super::header::FrameHeader;
use super::types::{ApiKey, ErrorCode};

/// Why a frame body (or header field) could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("needs {needed_bytes} bytes but only {remaining_bytes} remain in the frame")]
    Truncated {
        needed_bytes: u64,
        remaining_bytes: usize,
    },
    #[error("count {count} cannot fit in the {remaining_bytes} bytes that remain in the frame")]
    CountTooLarge { count: u64, remaining_bytes: usize },
    /// A list longer than the protocol allows for that field, whatever the frame size.
    #[error("count {count} exceeds the limit of {limit} entries")]
    CountAboveLimit { count: u64, limit: u64 },
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("value {value} is not one of the allowed values")]
    InvalidValue { value: i64 },
    #[error("{count} unexpected bytes after the end of the body")]
    TrailingBytes { count: usize },
    /// A list or blob that must be empty because another field is present (a ReplicaFetch
    /// answer with `diverging` carries no batches).
    #[error(
        "holds {count} entries or bytes, but must be empty when `{because_present}` is present"
    )]
    MustBeEmpty {
        count: u64,
        because_present: &'static str,
    },
}

/// A frame could not be decoded.
///
/// Variants carrying `header` and `frame_bytes` leave the stream in sync: the caller may skip
/// `frame_bytes` bytes and answer with a [`crate::codec::Response::Error`] built from
/// [`CodecError::error_code`]. The other variants mean the stream cannot be trusted any more:
/// answer if you like, then close the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The length prefix exceeds the configured limit. Stream unusable.
    #[error("frame length {length_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    FrameTooLarge { length_bytes: u32, limit_bytes: u32 },
    /// The length prefix is shorter than the fixed header. Stream unusable.
    #[error("frame length {length_bytes} bytes is shorter than the {minimum_bytes}-byte header")]
    FrameTooShort {
        length_bytes: u32,
        minimum_bytes: u32,
    },
    /// A request with an api key this codec does not know. Stream still in sync.
    #[error("unknown api key {} (correlation id {})", header.api_key, header.correlation_id)]
    UnknownApi {
        header: FrameHeader,
        frame_bytes: usize,
    },
    /// A known api at a version this codec does not implement. Stream still in sync.
    #[error(
        "api key {} version {} is not supported (supported {supported_min}..={supported_max})",
        header.api_key,
        header.api_version
    )]
    UnsupportedVersion {
        header: FrameHeader,
        frame_bytes: usize,
        supported_min: u16,
        supported_max: u16,
    },
    /// A field of the header or body is invalid. Stream still in sync.
    #[error("malformed field `{field}` in api key {} frame: {reason}", header.api_key)]
    Malformed {
        header: FrameHeader,
        frame_bytes: usize,
        field: &'static str,
        reason: Malformed,
    },
}

impl CodecError {
    /// The error code a server sends back for this failure.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            CodecError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            CodecError::FrameTooShort { .. } | CodecError::Malformed { .. } => {
                ErrorCode::InvalidRequest
            }
            CodecError::UnknownApi { .. } => ErrorCode::UnknownApi,
            CodecError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
        }
    }

    /// The header of the offending frame and its total size, when the stream is still in sync.
    pub fn skippable(&self) -> Option<(FrameHeader, usize)> {
        match self {
            CodecError::FrameTooLarge { .. } | CodecError::FrameTooShort { .. } => None,
            CodecError::UnknownApi {
                header,
                frame_bytes,
            }
            | CodecError::UnsupportedVersion {
                header,
                frame_bytes,
                ..
            }
            | CodecError::Malformed {
                header,
                frame_bytes,
                ..
            } => Some((*header, *frame_bytes)),
        }
    }
}

/// A frame could not be encoded. The destination buffer is left as it was before the call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("string `{field}` is {length_bytes} bytes; the limit is {limit_bytes}")]
    StringTooLong {
        field: &'static str,
        length_bytes: usize,
        limit_bytes: usize,
    },
    #[error("byte field `{field}` is {length_bytes} bytes; the limit is {limit_bytes}")]
    BytesTooLong {
        field: &'static str,
        length_bytes: usize,
        limit_bytes: usize,
    },
    #[error("list `{field}` has {count} entries; the limit is {limit}")]
    CountTooLarge {
        field: &'static str,
        count: usize,
        limit: usize,
    },
    #[error("encoded frame length {length_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    FrameTooLarge {
        length_bytes: usize,
        limit_bytes: u32,
    },
    #[error("header says {header_api_key} (flags {header_flags:#06x}) but the body is {body_api_key} (flags {body_flags:#06x})")]
    HeaderMismatch {
        header_api_key: u16,
        header_flags: u16,
        body_api_key: u16,
        body_flags: u16,
    },
    /// The header names a version of the api that this codec has no layout for.
    #[error(
        "{} version {version} is not implemented (supported {supported_min}..={supported_max})",
        api.name()
    )]
    UnsupportedVersion {
        api: ApiKey,
        version: u16,
        supported_min: u16,
        supported_max: u16,
    },
    /// The body sets a field that the frame's version has no room for. Nothing is dropped
    /// silently: send the frame at `required_version` or later, or leave the field unset.
    #[error(
        "`{field}` is set, but {} v{version} cannot carry it: it needs v{required_version} or later",
        api.name()
    )]
    FieldNeedsVersion {
        api: ApiKey,
        version: u16,
        field: &'static str,
        required_version: u16,
    },
    /// The body sets a list or blob that must be empty while another field is set (a
    /// ReplicaFetch answer with `diverging` carries no batches and no batch epochs).
    #[error(
        "`{field}` holds {count} entries or bytes, but {} requires it empty when `{because_present}` is set",
        api.name()
    )]
    MustBeEmpty {
        api: ApiKey,
        field: &'static str,
        count: usize,
        because_present: &'static str,
    },
}
