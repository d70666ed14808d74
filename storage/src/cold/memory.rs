//! An in-process [`ObjectStore`] with S3's semantics for the calls the tier makes: for examples,
//! the engine's deterministic simulation and unit tests. The real-server tests use S3 (moto).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::cold::error::StoreError;
use crate::cold::store::{ObjectMeta, ObjectStore, UploadedPart};

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Vec<u8>>,
    uploads: HashMap<String, (String, BTreeMap<u32, Vec<u8>>)>,
    next_upload: u64,
}

/// Objects in a map behind a mutex. Bucket name `memory`.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("objects", &self.lock().objects.len())
            .finish()
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn not_found(key: &str) -> StoreError {
        StoreError::NotFound {
            bucket: "memory".into(),
            key: key.to_string(),
        }
    }

    /// Number of multipart uploads begun and neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.lock().uploads.len()
    }
}

impl ObjectStore for MemoryStore {
    fn put(&self, key: &str, body: &[u8]) -> Result<(), StoreError> {
        self.lock().objects.insert(key.to_string(), body.to_vec());
        Ok(())
    }

    fn multipart_begin(&self, key: &str) -> Result<String, StoreError> {
        let mut s = self.lock();
        s.next_upload += 1;
        let id = format!("upload-{}", s.next_upload);
        s.uploads
            .insert(id.clone(), (key.to_string(), BTreeMap::new()));
        Ok(id)
    }

    fn multipart_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: &[u8],
    ) -> Result<UploadedPart, StoreError> {
        let mut s = self.lock();
        let (_, parts) = s
            .uploads
            .get_mut(upload_id)
            .ok_or_else(|| Self::not_found(key))?;
        parts.insert(part_number, body.to_vec());
        Ok(UploadedPart {
            part_number,
            etag: format!("{:08x}", crc32c::crc32c(body)),
        })
    }

    fn multipart_complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        let (k, stored) = s
            .uploads
            .remove(upload_id)
            .ok_or_else(|| Self::not_found(key))?;
        let mut body = Vec::new();
        for p in parts {
            let part = stored
                .get(&p.part_number)
                .ok_or_else(|| Self::not_found(key))?;
            body.extend_from_slice(part);
        }
        s.objects.insert(k, body);
        Ok(())
    }

    fn multipart_abort(&self, _key: &str, upload_id: &str) -> Result<(), StoreError> {
        self.lock().uploads.remove(upload_id);
        Ok(())
    }

    fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, StoreError> {
        let s = self.lock();
        let o = s.objects.get(key).ok_or_else(|| Self::not_found(key))?;
        let end = start.checked_add(len).filter(|e| *e <= o.len() as u64);
        match end {
            Some(end) => Ok(o[start as usize..end as usize].to_vec()),
            None => Err(StoreError::BadResponse {
                endpoint: "memory".into(),
                key: key.to_string(),
                op: "get range",
                reason: format!("range {start}+{len} beyond {} bytes", o.len()),
            }),
        }
    }

    fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        Ok(self.lock().objects.get(key).map(|o| ObjectMeta {
            key: key.to_string(),
            size_bytes: o.len() as u64,
        }))
    }

    fn list(&self, prefix: &str, limit: usize) -> Result<Vec<ObjectMeta>, StoreError> {
        let s = self.lock();
        let out: Vec<ObjectMeta> = s
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectMeta {
                key: k.clone(),
                size_bytes: v.len() as u64,
            })
            .collect();
        if out.len() > limit {
            return Err(StoreError::BadResponse {
                endpoint: "memory".into(),
                key: prefix.to_string(),
                op: "list",
                reason: format!("more than {limit} objects under the prefix"),
            });
        }
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().objects.remove(key);
        Ok(())
    }

    fn part_bytes_min(&self) -> u64 {
        1
    }
}
