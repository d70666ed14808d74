//! The object store seam: the few blocking operations the cold tier needs, behind a trait so the
//! tier logic does not know about HTTP. [`crate::cold::S3Store`] is the real implementation.

use crate::cold::error::StoreError;

/// One object as listed or HEADed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size_bytes: u64,
}

/// A part of a multipart upload as the store acknowledged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    /// 1-based, as in S3.
    pub part_number: u32,
    pub etag: String,
}

/// Blocking access to one bucket. Implementations are shared by every partition's uploads and
/// readers, hence `Send + Sync`; every call may block for up to the store's request timeout and
/// must never be made on a reactor thread.
///
/// Semantics the tier relies on: a `put` or a completed multipart upload is atomic (readers see
/// the old object, nothing, or the whole new one); `delete` of a missing key succeeds; `get_range`
/// returns exactly the requested bytes or an error.
pub trait ObjectStore: Send + Sync {
    /// Writes a whole object in one request.
    fn put(&self, key: &str, body: &[u8]) -> Result<(), StoreError>;
    /// Starts a multipart upload; returns its upload id.
    fn multipart_begin(&self, key: &str) -> Result<String, StoreError>;
    /// Uploads one part (every part but the last must be at least [`ObjectStore::part_bytes_min`]).
    fn multipart_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: &[u8],
    ) -> Result<UploadedPart, StoreError>;
    /// Completes a multipart upload: the object appears atomically.
    fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), StoreError>;
    /// Aborts a multipart upload and frees its parts (missing upload ids succeed).
    fn multipart_abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError>;
    /// Reads `len` bytes at `start`. `len` bounds the allocation; a shorter answer is an error.
    fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StoreError>;
    /// Size of an object, `None` if it does not exist.
    fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError>;
    /// Every object whose key starts with `prefix`, at most `limit` of them (more is an error).
    fn list(&self, prefix: &str, limit: usize) -> Result<Vec<ObjectMeta>, StoreError>;
    /// Deletes an object; deleting a missing one succeeds (idempotent).
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Smallest part the store accepts for every part but the last (5 MiB on AWS S3).
    fn part_bytes_min(&self) -> u64 {
        5 << 20
    }
}

/// Uploads `body` as a multipart object in parts of `part_bytes` (the last one may be shorter);
/// returns the number of parts.
/// On any failure the upload is aborted (best effort) and the error of the failed step returned:
/// a torn multipart upload never becomes visible as an object.
pub fn put_multipart(
    store: &dyn ObjectStore,
    key: &str,
    body: &[u8],
    part_bytes: u64,
) -> Result<u32, StoreError> {
    let part_len = usize::try_from(part_bytes.max(1)).unwrap_or(usize::MAX);
    let upload_id = store.multipart_begin(key)?;
    let mut parts = Vec::with_capacity(body.len().div_ceil(part_len));
    let result = (|| {
        for (i, chunk) in body.chunks(part_len).enumerate() {
            let part_number = u32::try_from(i + 1).map_err(|_| StoreError::Config {
                reason: format!("object {key} needs more than u32::MAX parts"),
            })?;
            parts.push(store.multipart_part(key, &upload_id, part_number, chunk)?);
        }
        store.multipart_complete(key, &upload_id, &parts)
    })();
    match result {
        Ok(()) => Ok(parts.len() as u32),
        Err(e) => {
            // The upload id is useless now; aborting frees the parts. If the abort fails too the
            // store's own lifecycle (AbortIncompleteMultipartUpload) or a later reconcile cleans up.
            let _ = store.multipart_abort(key, &upload_id);
            Err(e)
        }
    }
}
