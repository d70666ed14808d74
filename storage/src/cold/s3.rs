//! [`ObjectStore`] over rust-s3's blocking (`sync`) client: path-style requests to a custom endpoint
//! (MinIO, Ceph, Garage, AWS), a per-request timeout, and S3 error documents mapped to typed
//! [`StoreError`]s that say what to fix.

use std::time::Duration;

use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, BucketConfiguration, Region};

use crate::cold::error::StoreError;
use crate::cold::store::{ObjectMeta, ObjectStore, UploadedPart};

const CONTENT_TYPE: &str = "application/octet-stream";
/// Key written and deleted by [`S3Store::check`] to prove write access.
pub const CHECK_KEY: &str = "_sprawl/startup-check";
/// Longest excerpt of an error body kept in a [`StoreError`].
const BODY_EXCERPT_BYTES: usize = 512;

/// Where and how to reach the bucket. `Debug` redacts the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http://host:port`. HTTPS is refused: it needs rust-s3's `sync-rustls-tls` feature, which
    /// this build does not enable.
    pub endpoint: String,
    /// Signing region. Any name the store accepts; AWS needs the bucket's real region.
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// Timeout of every call once its TCP connection is up (send and receive); the connect itself
    /// has attohttpc's fixed 30 s timeout, which rust-s3 does not expose.
    pub request_timeout_ms: u64,
    /// Smallest non-final multipart part the store accepts (5 MiB on AWS S3 and MinIO).
    pub part_bytes_min: u64,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("part_bytes_min", &self.part_bytes_min)
            .finish()
    }
}

impl S3Config {
    /// A config with the defaults for the optional fields (30 s timeout, 5 MiB parts).
    pub fn new(
        endpoint: &str,
        region: &str,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Self {
        S3Config {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region: region.to_string(),
            bucket: bucket.to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            request_timeout_ms: 30_000,
            part_bytes_min: 5 << 20,
        }
    }
}

/// The rust-s3 implementation of [`ObjectStore`]. Cheap to share (`Arc<S3Store>`): every call
/// opens its own HTTP request, so concurrent uploads and reads do not serialize.
pub struct S3Store {
    bucket: Box<Bucket>,
    config: S3Config,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("config", &self.config)
            .finish()
    }
}

impl S3Store {
    /// Builds the client; performs no I/O (see [`S3Store::check`]).
    ///
    /// rust-s3's own retry loop is switched off (process-wide: `s3::set_retries(0)`), because it
    /// sleeps whole seconds on the calling thread; the tier retries failed uploads on its next
    /// pass and readers retry on their next fetch.
    pub fn new(config: S3Config) -> Result<S3Store, StoreError> {
        if config.endpoint.starts_with("https://") {
            // rust-s3 is built with `sync` only (no TLS stack in the tree yet): say so at
            // start-up instead of failing every request later.
            return Err(StoreError::Config {
                reason: format!(
                    "endpoint {:?}: HTTPS needs rust-s3's `sync-rustls-tls` feature, which this \
                     build does not enable; use an http:// endpoint (a local gateway) or rebuild",
                    config.endpoint
                ),
            });
        }
        if !config.endpoint.starts_with("http://") {
            return Err(StoreError::Config {
                reason: format!("endpoint {:?} must start with http://", config.endpoint),
            });
        }
        if config.request_timeout_ms == 0 {
            return Err(StoreError::Config {
                reason: "request_timeout_ms must be > 0".into(),
            });
        }
        s3::set_retries(0);
        let region = Region::Custom {
            region: config.region.clone(),
            endpoint: config.endpoint.clone(),
        };
        let creds = Credentials::new(
            Some(&config.access_key),
            Some(&config.secret_key),
            None,
            None,
            None,
        )
        .map_err(|e| StoreError::Config {
            reason: format!("credentials: {e}"),
        })?;
        let bucket = Bucket::new(&config.bucket, region, creds)
            .map_err(|e| StoreError::Config {
                reason: format!("bucket {}: {e}", config.bucket),
            })?
            .with_path_style()
            .with_request_timeout(Duration::from_millis(config.request_timeout_ms))
            .map_err(|e| StoreError::Config {
                reason: format!("timeout: {e}"),
            })?;
        Ok(S3Store { bucket, config })
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// Start-up check: lists the bucket (reachability, credentials, bucket existence), then writes
    /// and deletes [`CHECK_KEY`] (write and delete permission). The error says which of these
    /// failed and what to change; a node that gets one keeps serving its local data.
    pub fn check(&self) -> Result<(), StoreError> {
        self.list_page("", None, 1, "check: list")?;
        self.put(CHECK_KEY, b"sprawl")?;
        self.delete(CHECK_KEY)
    }

    /// Creates the bucket (development and tests: production buckets are made by the operator).
    /// Avoid the region name `us-east-1` with strict servers: rust-s3 sends it as a
    /// LocationConstraint, which S3 rejects for that region.
    pub fn create_bucket(&self) -> Result<(), StoreError> {
        let creds = self
            .bucket
            .credentials()
            .map_err(|e| self.map(e, "create bucket", ""))?;
        Bucket::create_with_path_style(
            &self.config.bucket,
            self.bucket.region.clone(),
            creds,
            BucketConfiguration::default(),
        )
        .map_err(|e| self.map(e, "create bucket", ""))?;
        Ok(())
    }

    fn list_page(
        &self,
        prefix: &str,
        token: Option<String>,
        max_keys: usize,
        op: &'static str,
    ) -> Result<s3::serde_types::ListBucketResult, StoreError> {
        let (page, _) = self
            .bucket
            .list_page(prefix.to_string(), None, token, None, Some(max_keys))
            .map_err(|e| self.map(e, op, prefix))?;
        Ok(page)
    }

    /// Maps a rust-s3 error to a typed one. S3 error documents carry a `<Code>`; HEAD answers
    /// carry none, so a 404 there is "not found" and a 403 "access denied".
    fn map(&self, e: S3Error, op: &'static str, key: &str) -> StoreError {
        let endpoint = self.config.endpoint.clone();
        let bucket = self.config.bucket.clone();
        match e {
            S3Error::HttpFailWithBody(status, body) => {
                let code = xml_code(&body).unwrap_or_default();
                match code.as_str() {
                    "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "InvalidToken"
                    | "ExpiredToken"
                    | "AuthorizationHeaderMalformed"
                    | "InvalidSecurity" => StoreError::BadCredentials {
                        endpoint,
                        bucket,
                        op,
                        code,
                    },
                    "AccessDenied" | "AllAccessDisabled" => StoreError::AccessDenied {
                        endpoint,
                        bucket,
                        op,
                        code,
                    },
                    "NoSuchBucket" => StoreError::NoSuchBucket { endpoint, bucket },
                    "NoSuchKey" => StoreError::NotFound {
                        bucket,
                        key: key.to_string(),
                    },
                    "" if status == 404 => StoreError::NotFound {
                        bucket,
                        key: key.to_string(),
                    },
                    "" if status == 403 => StoreError::AccessDenied {
                        endpoint,
                        bucket,
                        op,
                        code: "HTTP 403 without an error document".into(),
                    },
                    _ => StoreError::Http {
                        endpoint,
                        key: key.to_string(),
                        op,
                        status,
                        body: excerpt(&body),
                    },
                }
            }
            S3Error::Atto(err) => StoreError::Unreachable {
                endpoint,
                bucket,
                op,
                reason: err.to_string(),
            },
            S3Error::Io(err) => StoreError::Unreachable {
                endpoint,
                bucket,
                op,
                reason: err.to_string(),
            },
            S3Error::Credentials(err) => StoreError::Config {
                reason: format!("credentials: {err}"),
            },
            S3Error::Region(err) => StoreError::Config {
                reason: format!("region: {err}"),
            },
            S3Error::UrlParse(err) => StoreError::Config {
                reason: format!("endpoint URL: {err}"),
            },
            other => StoreError::BadResponse {
                endpoint,
                key: key.to_string(),
                op,
                reason: other.to_string(),
            },
        }
    }
}

fn xml_code(body: &str) -> Option<String> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].trim().to_string())
}

fn excerpt(body: &str) -> String {
    let mut end = body.len().min(BODY_EXCERPT_BYTES);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

impl ObjectStore for S3Store {
    fn put(&self, key: &str, body: &[u8]) -> Result<(), StoreError> {
        self.bucket
            .put_object_with_content_type(key, body, CONTENT_TYPE)
            .map_err(|e| self.map(e, "put", key))?;
        Ok(())
    }

    fn multipart_begin(&self, key: &str) -> Result<String, StoreError> {
        let r = self
            .bucket
            .initiate_multipart_upload(key, CONTENT_TYPE)
            .map_err(|e| self.map(e, "multipart begin", key))?;
        Ok(r.upload_id)
    }

    fn multipart_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: &[u8],
    ) -> Result<UploadedPart, StoreError> {
        let part = self
            .bucket
            .put_multipart_chunk(body, key, part_number, upload_id, CONTENT_TYPE)
            .map_err(|e| self.map(e, "multipart part", key))?;
        Ok(UploadedPart {
            part_number: part.part_number,
            etag: part.etag,
        })
    }

    fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), StoreError> {
        let parts = parts
            .iter()
            .map(|p| s3::serde_types::Part {
                part_number: p.part_number,
                etag: p.etag.clone(),
            })
            .collect();
        match self.bucket.complete_multipart_upload(key, upload_id, parts) {
            Ok(_) => Ok(()),
            // rust-s3 accepts only the root element `CompleteMultipartUploadResult` in a 200
            // answer (S3 can report a failed completion inside a 200); moto and some other
            // servers name it `CompleteMultipartUploadResponse`. A 200 without an `<Error>`
            // that carries the new object's ETag is a completed upload.
            Err(S3Error::HttpFailWithBody(200, body))
                if !body.contains("<Error>")
                    && body.contains("<CompleteMultipartUpload")
                    && body.contains("<ETag>") =>
            {
                Ok(())
            }
            Err(e) => Err(self.map(e, "multipart complete", key)),
        }
    }

    fn multipart_abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        match self.bucket.abort_upload(key, upload_id) {
            Ok(()) => Ok(()),
            Err(e) => match self.map(e, "multipart abort", key) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let r = self
            .bucket
            .get_object_range(key, start, Some(start + len - 1))
            .map_err(|e| self.map(e, "get range", key))?;
        let body = r.as_slice();
        if body.len() as u64 != len {
            return Err(StoreError::BadResponse {
                endpoint: self.config.endpoint.clone(),
                key: key.to_string(),
                op: "get range",
                reason: format!(
                    "asked for {len} bytes at {start}, got {} (HTTP {})",
                    body.len(),
                    r.status_code()
                ),
            });
        }
        Ok(body.to_vec())
    }

    fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        match self.bucket.head_object(key) {
            Ok((h, _)) => {
                let size = h
                    .content_length
                    .and_then(|l| u64::try_from(l).ok())
                    .ok_or_else(|| StoreError::BadResponse {
                        endpoint: self.config.endpoint.clone(),
                        key: key.to_string(),
                        op: "head",
                        reason: "no Content-Length".into(),
                    })?;
                Ok(Some(ObjectMeta {
                    key: key.to_string(),
                    size_bytes: size,
                }))
            }
            Err(e) => match self.map(e, "head", key) {
                StoreError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    fn list(&self, prefix: &str, limit: usize) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self.list_page(prefix, token, 1000, "list")?;
            for o in page.contents {
                if out.len() == limit {
                    return Err(StoreError::BadResponse {
                        endpoint: self.config.endpoint.clone(),
                        key: prefix.to_string(),
                        op: "list",
                        reason: format!("more than {limit} objects under the prefix"),
                    });
                }
                out.push(ObjectMeta {
                    key: o.key,
                    size_bytes: o.size,
                });
            }
            token = page.next_continuation_token;
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.bucket.delete_object(key) {
            Ok(_) => Ok(()),
            Err(e) => match self.map(e, "delete", key) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    fn part_bytes_min(&self) -> u64 {
        self.config.part_bytes_min
    }
}
