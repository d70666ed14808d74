//! An [`ObjectStore`] that forwards to the real `S3Store` and counts requests and body bytes, so the
//! report can say how many requests and bytes the tier sent for the same work as the probe.

use std::sync::atomic::{AtomicU64, Ordering};

use storage::cold::{ObjectMeta, ObjectStore, S3Store, StoreError, UploadedPart};

#[derive(Debug)]
pub struct CountingStore {
    inner: S3Store,
    requests: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

/// Requests and body bytes counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub requests: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Traffic {
    pub fn minus(self, earlier: Traffic) -> Traffic {
        Traffic {
            requests: self.requests - earlier.requests,
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
        }
    }
}

impl CountingStore {
    pub fn new(inner: S3Store) -> CountingStore {
        CountingStore {
            inner,
            requests: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
        }
    }

    pub fn traffic(&self) -> Traffic {
        Traffic {
            requests: self.requests.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
        }
    }

    fn count(&self, sent: usize, received: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(sent as u64, Ordering::Relaxed);
        self.bytes_received
            .fetch_add(received as u64, Ordering::Relaxed);
    }
}

impl ObjectStore for CountingStore {
    fn put(&self, key: &str, body: &[u8]) -> Result<(), StoreError> {
        self.count(body.len(), 0);
        self.inner.put(key, body)
    }
    fn multipart_begin(&self, key: &str) -> Result<String, StoreError> {
        self.count(0, 0);
        self.inner.multipart_begin(key)
    }
    fn multipart_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: &[u8],
    ) -> Result<UploadedPart, StoreError> {
        self.count(body.len(), 0);
        self.inner.multipart_part(key, upload_id, part_number, body)
    }
    fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), StoreError> {
        self.count(0, 0);
        self.inner.multipart_complete(key, upload_id, parts)
    }
    fn multipart_abort(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.count(0, 0);
        self.inner.multipart_abort(key, upload_id)
    }
    fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let body = self.inner.get_range(key, start, len)?;
        self.count(0, body.len());
        Ok(body)
    }
    fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.count(0, 0);
        self.inner.head(key)
    }
    fn list(&self, prefix: &str, limit: usize) -> Result<Vec<ObjectMeta>, StoreError> {
        self.count(0, 0);
        self.inner.list(prefix, limit)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.count(0, 0);
        self.inner.delete(key)
    }
    fn part_bytes_min(&self) -> u64 {
        self.inner.part_bytes_min()
    }
}
