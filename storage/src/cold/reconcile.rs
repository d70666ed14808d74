//! Start-up of a partition's cold tier: load the manifest, then make the bucket agree with it.
//!
//! Every object a confirmed manifest does not list still has its data in a local segment (a
//! local copy is deleted only once listed), or is past retention, or is an older version of a
//! listed range. So reconcile may delete any unlisted object; it keeps (re-records) the ones that
//! extend the remote log contiguously and verify, which saves re-uploading them.

use crate::cold::error::ColdError;
use crate::cold::local::LocalSegment;
use crate::cold::manifest::{
    manifest_key, parse_object_key, Manifest, RemoteSegment, MANIFEST_BYTES_MAX,
    MANIFEST_ENTRIES_MAX,
};
use crate::cold::object::{Footer, Trailer, TRAILER_BYTES};
use crate::cold::store::ObjectStore;

/// What [`crate::cold::PartitionTier::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Version of the manifest loaded (0: none existed).
    pub manifest_version: u64,
    pub manifest_entries: u64,
    /// `(base, next)` of unlisted objects kept; the next manifest write lists them.
    pub re_recorded: Vec<(u64, u64)>,
    /// Unlisted objects deleted (older versions, past retention, non-contiguous, damaged).
    pub deleted: Vec<String>,
    /// Keys under the partition prefix that Sprawl did not write; left alone.
    pub unknown_keys: Vec<String>,
}

/// Loads the partition's manifest; an absent one is an empty manifest. A damaged one is an error
/// (never silently replaced: it is the only record of what was uploaded).
pub fn load_manifest(store: &dyn ObjectStore, prefix: &str) -> Result<Manifest, ColdError> {
    let key = manifest_key(prefix);
    let Some(meta) = store.head(&key)? else {
        return Ok(Manifest::default());
    };
    if meta.size_bytes > MANIFEST_BYTES_MAX {
        return Err(ColdError::corrupt(&key, "manifest larger than the limit"));
    }
    let bytes = store.get_range(&key, 0, meta.size_bytes)?;
    Manifest::decode(&bytes, &key)
}

/// Fetches and verifies an object's footer (one range GET of footer + trailer).
pub fn fetch_footer(
    store: &dyn ObjectStore,
    key: &str,
    object_bytes: u64,
    footer_bytes: u32,
) -> Result<Footer, ColdError> {
    let tail_bytes = u64::from(footer_bytes) + TRAILER_BYTES as u64;
    if object_bytes < tail_bytes {
        return Err(ColdError::corrupt(key, "object smaller than its footer"));
    }
    let footer_pos = object_bytes - tail_bytes;
    let tail = store.get_range(key, footer_pos, tail_bytes)?;
    let (fb, tb) = tail.split_at(footer_bytes as usize);
    let trailer = Trailer::decode(tb, object_bytes, key)?;
    if trailer.footer_bytes != footer_bytes || crc32c::crc32c(fb) != trailer.footer_crc32c {
        return Err(ColdError::corrupt(key, "footer checksum mismatch"));
    }
    Footer::decode(fb, footer_pos, key)
}

/// Reads an unlisted object's trailer and footer to rebuild its manifest entry.
fn verify_unlisted(
    store: &dyn ObjectStore,
    key: &str,
    object_bytes: u64,
    (base, next, crc): (u64, u64, u32),
    now_ms: i64,
) -> Result<RemoteSegment, ColdError> {
    if object_bytes < TRAILER_BYTES as u64 {
        return Err(ColdError::corrupt(key, "object smaller than a trailer"));
    }
    let tb = store.get_range(
        key,
        object_bytes - TRAILER_BYTES as u64,
        TRAILER_BYTES as u64,
    )?;
    let trailer = Trailer::decode(&tb, object_bytes, key)?;
    let footer = fetch_footer(store, key, object_bytes, trailer.footer_bytes)?;
    let h = footer.segment;
    if h.base_offset != base || h.next_offset != next || h.crc32c() != crc {
        return Err(ColdError::corrupt(
            key,
            "footer does not match the object key",
        ));
    }
    Ok(RemoteSegment {
        base_offset: base,
        next_offset: next,
        seq: h.seq,
        segment_header_crc32c: crc,
        footer_bytes: trailer.footer_bytes,
        object_bytes,
        data_bytes: h.data_bytes,
        max_timestamp_ms: h.max_timestamp_ms,
        uploaded_ms: now_ms,
    })
}

/// Lists the partition's objects and sorts out the ones `manifest` does not list: an object that
/// starts exactly at the remote end (or, with an empty remote log, the oldest one), verifies, and
/// does not contradict a local segment over the same offsets is re-recorded; every other unlisted
/// object is deleted. Returns the re-recorded entries in offset order.
pub fn reconcile(
    store: &dyn ObjectStore,
    prefix: &str,
    manifest: &Manifest,
    local: &[LocalSegment],
    now_ms: i64,
) -> Result<(Vec<RemoteSegment>, ReconcileReport), ColdError> {
    let mut report = ReconcileReport {
        manifest_version: manifest.version,
        manifest_entries: manifest.entries.len() as u64,
        ..ReconcileReport::default()
    };
    let listed: std::collections::HashSet<String> = manifest
        .entries
        .iter()
        .map(|e| e.object_key(prefix))
        .collect();
    let objects = store.list(
        &format!("{prefix}/segments/"),
        2 * MANIFEST_ENTRIES_MAX as usize,
    )?;
    let mut unlisted = Vec::new();
    for o in objects {
        if listed.contains(&o.key) {
            continue;
        }
        match parse_object_key(prefix, &o.key) {
            Some(ids) => unlisted.push((ids, o)),
            None => report.unknown_keys.push(o.key),
        }
    }
    unlisted.sort_by_key(|((base, next, _), _)| (*base, *next));
    let mut end = manifest.end_offset();
    let mut first = manifest.entries.is_empty();
    let mut recorded = Vec::new();
    for (ids, o) in unlisted {
        let (base, next, _) = ids;
        let contradicts_local = local.iter().any(|s| {
            s.base_offset < next
                && base < s.next_offset
                && (s.base_offset, s.next_offset, s.header_crc32c) != ids
        });
        let candidate = (base == end || (first && base >= end)) && !contradicts_local;
        let entry = if candidate {
            match verify_unlisted(store, &o.key, o.size_bytes, ids, now_ms) {
                Ok(e) => Some(e),
                Err(ColdError::CorruptObject { .. }) => None,
                Err(other) => return Err(other),
            }
        } else {
            None
        };
        match entry {
            Some(e) => {
                report.re_recorded.push((base, next));
                recorded.push(e);
                end = next;
                first = false;
            }
            None => {
                store.delete(&o.key)?;
                report.deleted.push(o.key);
            }
        }
    }
    Ok((recorded, report))
}
