//! Object-store settings of the cold tier: `--s3-endpoint`, `--s3-bucket`, `--s3-region`,
//! `--s3-access-key`, `--s3-secret-key` (and `SPRAWL_S3_*`, file keys `s3_*`).
//!
//! Without an endpoint the node has no cold tier: topics with tiering settings are refused at
//! creation with a message saying what to configure. With one, the bucket and both keys are
//! required. Reachability and credentials are checked at start-up by `crate::cold`, which keeps
//! the node serving its local data when the store does not answer.

use storage::cold::S3Config;

use super::ConfigError;

/// Region used when none is given (MinIO, Ceph and Garage accept any name).
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// Resolved object-store settings.
#[derive(Clone, PartialEq, Eq)]
pub struct ColdConfig {
    /// `http://host:port` of the S3-compatible store; `None` = no cold tier.
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: String,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// Bytes of decompressed remote chunks cached for reads below the local start, node-wide.
    pub cache_bytes: u64,
    /// Threads running uploads, manifest writes and remote reads, node-wide.
    pub threads: usize,
    /// Timeout of one object-store request once connected.
    pub request_timeout_ms: u64,
}

impl std::fmt::Debug for ColdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdConfig")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("cache_bytes", &self.cache_bytes)
            .field("threads", &self.threads)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

impl Default for ColdConfig {
    fn default() -> Self {
        ColdConfig {
            endpoint: None,
            bucket: None,
            region: DEFAULT_S3_REGION.to_string(),
            access_key: None,
            secret_key: None,
            cache_bytes: 256 << 20,
            threads: 4,
            request_timeout_ms: 30_000,
        }
    }
}

/// The settings as given by one source (file, environment or flags); `None` = not given.
#[derive(Debug, Default, Clone)]
pub struct ColdOverrides {
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

impl ColdOverrides {
    /// `SPRAWL_S3_ENDPOINT`, `SPRAWL_S3_BUCKET`, `SPRAWL_S3_REGION`, `SPRAWL_S3_ACCESS_KEY`,
    /// `SPRAWL_S3_SECRET_KEY` (empty values count as unset).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> ColdOverrides {
        ColdOverrides {
            endpoint: get("SPRAWL_S3_ENDPOINT"),
            bucket: get("SPRAWL_S3_BUCKET"),
            region: get("SPRAWL_S3_REGION"),
            access_key: get("SPRAWL_S3_ACCESS_KEY"),
            secret_key: get("SPRAWL_S3_SECRET_KEY"),
        }
    }
}

impl ColdConfig {
    /// True when an object store is configured.
    pub fn enabled(&self) -> bool {
        self.endpoint.is_some()
    }

    /// Layers `o` over the current values.
    pub(super) fn apply(&mut self, o: &ColdOverrides) {
        let trimmed = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string());
        if let Some(v) = trimmed(&o.endpoint) {
            self.endpoint = Some(v.trim_end_matches('/').to_string());
        }
        if let Some(v) = trimmed(&o.bucket) {
            self.bucket = Some(v);
        }
        if let Some(v) = trimmed(&o.region) {
            self.region = v;
        }
        if let Some(v) = trimmed(&o.access_key) {
            self.access_key = Some(v);
        }
        // S3 secrets never contain whitespace: trimming keeps a stray newline (a secret read
        // from a file into the environment) from breaking every signature.
        if let Some(v) = trimmed(&o.secret_key) {
            self.secret_key = Some(v);
        }
    }

    /// Checks the combination: nothing given, or endpoint, bucket and both keys.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let given = [
            ("s3-endpoint", self.endpoint.is_some()),
            ("s3-bucket", self.bucket.is_some()),
            ("s3-access-key", self.access_key.is_some()),
            ("s3-secret-key", self.secret_key.is_some()),
        ];
        if given.iter().all(|(_, g)| !g) {
            return Ok(());
        }
        if let Some((missing, _)) = given.iter().find(|(_, g)| !g) {
            return Err(invalid(
                missing,
                "(not set)",
                format!(
                    "the cold tier needs --s3-endpoint, --s3-bucket, --s3-access-key and \
                     --s3-secret-key together (or SPRAWL_S3_*); --{missing} is missing"
                ),
            ));
        }
        let endpoint = self.endpoint.as_deref().unwrap_or_default();
        if endpoint.starts_with("https://") {
            return Err(invalid(
                "s3-endpoint",
                endpoint,
                "HTTPS endpoints need rust-s3's TLS support, which this build does not include; \
                 use an http:// endpoint (for example a local TLS-terminating gateway)"
                    .into(),
            ));
        }
        let host = endpoint.strip_prefix("http://").unwrap_or_default();
        if host.is_empty() || host.contains('/') {
            return Err(invalid(
                "s3-endpoint",
                endpoint,
                "expected http://HOST[:PORT] with no path (the bucket goes in --s3-bucket)".into(),
            ));
        }
        let bucket = self.bucket.as_deref().unwrap_or_default();
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(invalid(
                "s3-bucket",
                bucket,
                "bucket names are 3 to 63 lowercase letters, digits, '-' and '.', starting and \
                 ending with a letter or digit"
                    .into(),
            ));
        }
        if self.region.is_empty() {
            return Err(invalid("s3-region", "", "must not be empty".into()));
        }
        Ok(())
    }

    /// The store client settings, when configured.
    pub fn s3_config(&self) -> Option<S3Config> {
        let mut c = S3Config::new(
            self.endpoint.as_deref()?,
            &self.region,
            self.bucket.as_deref()?,
            self.access_key.as_deref()?,
            self.secret_key.as_deref()?,
        );
        c.request_timeout_ms = self.request_timeout_ms;
        Some(c)
    }
}

fn invalid(setting: &'static str, value: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        setting,
        value: value.to_string(),
        source_name: "resolved configuration".into(),
        reason,
    }
}
