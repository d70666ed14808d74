//! Typed errors of the cold tier: what the object store answered, and what the tier made of it.

use std::path::PathBuf;

/// An object store operation failed. Every variant names the endpoint and bucket so a log line is
/// enough to act on; none of them leaves local data in a worse state (uploads are retried, local
/// segments are kept until an upload and its manifest are confirmed).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No TCP connection or no answer within the timeout: the node keeps serving local data and
    /// retries later. Check `--s3-endpoint` and that the store is up and reachable from this host.
    #[error("object store {endpoint} (bucket {bucket}) is unreachable during {op}: {reason}; check --s3-endpoint / SPRAWL_S3_ENDPOINT and that the store is up")]
    Unreachable {
        endpoint: String,
        bucket: String,
        op: &'static str,
        reason: String,
    },
    /// The store rejected the access key or the signature. Retrying will not help.
    #[error("object store {endpoint} rejected the credentials for bucket {bucket} during {op} ({code}); check --s3-access-key / --s3-secret-key (SPRAWL_S3_ACCESS_KEY / SPRAWL_S3_SECRET_KEY) and --s3-region")]
    BadCredentials {
        endpoint: String,
        bucket: String,
        op: &'static str,
        code: String,
    },
    /// The credentials are valid but lack a permission on the bucket.
    #[error("object store {endpoint} denied {op} on bucket {bucket} ({code}); grant the key s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on it")]
    AccessDenied {
        endpoint: String,
        bucket: String,
        op: &'static str,
        code: String,
    },
    /// The bucket does not exist. Sprawl does not create buckets: create it out of band.
    #[error("bucket {bucket} does not exist on {endpoint}; create it (e.g. `aws s3 mb s3://{bucket} --endpoint-url {endpoint}`) or fix --s3-bucket / SPRAWL_S3_BUCKET")]
    NoSuchBucket { endpoint: String, bucket: String },
    /// The object does not exist (a GET or HEAD of a missing key).
    #[error("object {key} not found in bucket {bucket}")]
    NotFound { bucket: String, key: String },
    /// The store answered with an HTTP error status (5xx are transient and retried by the tier).
    #[error("object store {endpoint} answered HTTP {status} to {op} of {key}: {body}")]
    Http {
        endpoint: String,
        key: String,
        op: &'static str,
        status: u16,
        body: String,
    },
    /// The answer was well-formed HTTP but not what the request asked for (a short range read,
    /// a body over the caller's limit): treated like a transient failure.
    #[error("object store {endpoint}: bad answer to {op} of {key}: {reason}")]
    BadResponse {
        endpoint: String,
        key: String,
        op: &'static str,
        reason: String,
    },
    /// The client could not be built from the configuration (bad endpoint URL, region...).
    #[error("invalid object store configuration: {reason}")]
    Config { reason: String },
}

impl StoreError {
    /// True when retrying the same request later can succeed (network, timeouts, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } | StoreError::BadResponse { .. } => true,
            StoreError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

/// Errors of the cold tier ([`crate::cold::PartitionTier`], [`crate::cold::RemoteReader`]).
#[derive(Debug, thiserror::Error)]
pub enum ColdError {
    /// The object store failed; see [`StoreError::is_transient`]. The tier state is unchanged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local file could not be read. The tier state is unchanged.
    #[error("{op} {path}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A local segment failed verification before upload (header, framing or batch CRC). It is
    /// not uploaded; the local log's own recovery decides what to do with it.
    #[error("local segment {path} is not uploadable at byte {position}: {reason}")]
    BadLocalSegment {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// An object or the manifest read back from the store failed verification (CRC, framing,
    /// bounds). Nothing is trusted from it; a damaged manifest stops the tier from opening.
    #[error("corrupt remote object {key}: {reason}")]
    CorruptObject { key: String, reason: String },
    /// The offset is not held by the remote tier (below its start or at/after its end).
    #[error("offset {offset} is not in the remote tier [{start}, {end})")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },
    /// A configuration or policy value is out of range.
    #[error("invalid cold tier config `{field}`: {reason}")]
    InvalidConfig {
        field: &'static str,
        reason: &'static str,
    },
    /// A completion was handed back that the tier did not start (wrong partition, or already
    /// completed). The tier state is unchanged.
    #[error("unexpected completion for segment base offset {base_offset}: {reason}")]
    UnexpectedCompletion {
        base_offset: u64,
        reason: &'static str,
    },
}

impl ColdError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        ColdError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    pub(crate) fn corrupt(key: &str, reason: impl Into<String>) -> Self {
        ColdError::CorruptObject {
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    /// True when the same operation can succeed if retried later.
    pub fn is_transient(&self) -> bool {
        matches!(self, ColdError::Store(e) if e.is_transient())
    }
}
