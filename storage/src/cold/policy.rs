//! Tiering and retention policies as plain data, and the pure decisions made from them.

use crate::cold::error::ColdError;
use crate::cold::local::LocalSegment;
use crate::cold::manifest::Manifest;

/// When sealed segments move to the object store and when copies are deleted. Plain data: the
/// engine builds it from topic config (`--tier-after-ms`, `--local-retention-bytes`, ...).
///
/// Local copies are deleted only once uploaded *and* listed in a confirmed manifest, oldest first;
/// with both `local_retention_*` unset they stay until remote retention removes their offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TierPolicy {
    /// Upload a sealed segment once its newest record is this old.
    pub tier_after_ms: Option<u64>,
    /// Keep at most this many bytes of sealed segments locally: older ones are uploaded, then
    /// deleted locally once confirmed.
    pub local_retention_bytes: Option<u64>,
    /// Delete local copies (after upload) whose newest record is older than this.
    pub local_retention_ms: Option<u64>,
    /// Delete remote segments whose newest record is older than this.
    pub remote_retention_ms: Option<u64>,
    /// Delete the oldest remote segment while the rest of the remote log (uncompressed bytes)
    /// would still hold at least this much (the local log's `retention_bytes` rule).
    pub remote_retention_bytes: Option<u64>,
}

impl TierPolicy {
    pub fn validate(&self) -> Result<(), ColdError> {
        let bad = |field, reason| Err(ColdError::InvalidConfig { field, reason });
        if self.local_retention_bytes == Some(0) {
            return bad(
                "local_retention_bytes",
                "must be > 0 (unset it to keep everything)",
            );
        }
        if self.remote_retention_bytes == Some(0) {
            return bad(
                "remote_retention_bytes",
                "must be > 0 (unset it to keep everything)",
            );
        }
        Ok(())
    }

    /// Newest-record age test: `max_timestamp_ms` older than `now_ms - limit_ms`.
    fn older_than(max_timestamp_ms: i64, now_ms: i64, limit_ms: Option<u64>) -> bool {
        limit_ms.is_some_and(|l| {
            max_timestamp_ms < now_ms.saturating_sub(i64::try_from(l).unwrap_or(i64::MAX))
        })
    }

    /// Which of `local` (sealed, oldest first) the policy wants remote, as a count of the oldest
    /// ones. A prefix, so the remote log stays contiguous.
    pub fn upload_prefix(&self, local: &[LocalSegment], now_ms: i64) -> usize {
        let mut remaining: u64 = local.iter().map(|s| s.data_bytes).sum();
        let mut n = 0;
        for s in local {
            let by_bytes = self.local_retention_bytes.is_some_and(|l| remaining > l);
            let by_age = Self::older_than(s.max_timestamp_ms, now_ms, self.tier_after_ms)
                || Self::older_than(s.max_timestamp_ms, now_ms, self.local_retention_ms);
            if !(by_bytes || by_age) {
                break;
            }
            remaining -= s.data_bytes;
            n += 1;
        }
        n
    }

    /// Whether the policy wants local segment `s` gone, given `remaining` local bytes with it.
    pub fn wants_local_deleted(&self, s: &LocalSegment, remaining: u64, now_ms: i64) -> bool {
        self.local_retention_bytes.is_some_and(|l| remaining > l)
            || Self::older_than(s.max_timestamp_ms, now_ms, self.local_retention_ms)
    }

    /// How many of the oldest manifest entries are past remote retention.
    pub fn remote_expired_prefix(&self, m: &Manifest, now_ms: i64) -> usize {
        let mut total = m.remote_data_bytes();
        let mut n = 0;
        for e in &m.entries {
            let by_age = Self::older_than(e.max_timestamp_ms, now_ms, self.remote_retention_ms);
            let by_bytes = self
                .remote_retention_bytes
                .is_some_and(|l| total - e.data_bytes >= l);
            if !(by_age || by_bytes) {
                break;
            }
            total -= e.data_bytes;
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cold::manifest::RemoteSegment;

    fn seg(base: u64, bytes: u64, ts: i64) -> LocalSegment {
        LocalSegment {
            seq: base,
            path: std::path::PathBuf::new(),
            base_offset: base,
            next_offset: base + 10,
            data_bytes: bytes,
            max_timestamp_ms: ts,
            header_crc32c: 0,
        }
    }

    #[test]
    fn uploads_by_age_or_bytes_as_a_prefix() {
        let local = [seg(0, 100, 1_000), seg(10, 100, 5_000), seg(20, 100, 1_000)];
        let age = TierPolicy {
            tier_after_ms: Some(2_000),
            ..TierPolicy::default()
        };
        // The third segment is old too, but the second is not: the prefix stops there.
        assert_eq!(age.upload_prefix(&local, 4_000), 1);
        assert_eq!(age.upload_prefix(&local, 8_000), 3);
        let bytes = TierPolicy {
            local_retention_bytes: Some(150),
            ..TierPolicy::default()
        };
        assert_eq!(bytes.upload_prefix(&local, 0), 2);
        assert_eq!(TierPolicy::default().upload_prefix(&local, i64::MAX), 0);
    }

    #[test]
    fn remote_retention_by_time_and_size() {
        let e = |base: u64, ts: i64| RemoteSegment {
            base_offset: base,
            next_offset: base + 10,
            seq: 0,
            segment_header_crc32c: 0,
            footer_bytes: 0,
            object_bytes: 32,
            data_bytes: 100,
            max_timestamp_ms: ts,
            uploaded_ms: 0,
        };
        let m = Manifest {
            entries: vec![e(0, 10), e(10, 20), e(20, 30)],
            ..Manifest::default()
        };
        let time = TierPolicy {
            remote_retention_ms: Some(15),
            ..TierPolicy::default()
        };
        assert_eq!(time.remote_expired_prefix(&m, 30), 1);
        let size = TierPolicy {
            remote_retention_bytes: Some(150),
            ..TierPolicy::default()
        };
        // Like local retention: a segment goes only if what remains is still >= the limit.
        assert_eq!(size.remote_expired_prefix(&m, 0), 1);
        let size = TierPolicy {
            remote_retention_bytes: Some(100),
            ..TierPolicy::default()
        };
        assert_eq!(size.remote_expired_prefix(&m, 0), 2);
        assert_eq!(TierPolicy::default().remote_expired_prefix(&m, i64::MAX), 0);
    }
}
