//! The tier's CPU work without any network, single-threaded, measured in the same repetition as
//! the uploads and reads: `build_object` (read, verify batch CRCs, zstd-compress the chunks) and
//! `decode_chunk` (zstd-decompress, verify the chunk CRC) over the same segments. If the tier's
//! upload or read rate comes close to these, the tier is CPU-bound, not store-bound.

use storage::cold::object::{build_object, decode_chunk, BuiltObject};
use storage::cold::{LocalSegment, TierConfig};

use crate::error::BenchError;
use crate::sys::{CpuSample, Spent};
use crate::upload::segment_bytes;

/// One measured CPU-only pass.
#[derive(Debug, Clone, Copy)]
pub struct CpuPass {
    pub spent: Spent,
    /// Raw segment bytes (build) or decompressed chunk bytes (decode) processed.
    pub raw_bytes: u64,
    /// Object bytes produced (build) or compressed bytes consumed (decode).
    pub object_bytes: u64,
}

/// Builds every segment's object, one after the other; returns the objects for [`decode_all`].
pub fn build_all(
    local: &[LocalSegment],
    config: &TierConfig,
) -> Result<(CpuPass, Vec<BuiltObject>), BenchError> {
    let clock = CpuSample::now(None);
    let mut objects = Vec::with_capacity(local.len());
    for s in local {
        objects.push(
            build_object(
                &s.path,
                s.header_crc32c,
                config.chunk_raw_bytes,
                config.zstd_level,
            )
            .map_err(BenchError::cold("build object (CPU only)"))?,
        );
    }
    let spent = clock.since(None);
    let object_bytes = objects.iter().map(|o| o.bytes.len() as u64).sum();
    Ok((
        CpuPass {
            spent,
            raw_bytes: segment_bytes(local),
            object_bytes,
        },
        objects,
    ))
}

/// Decodes every chunk of `objects`, checking that the batch bytes add up to `data_bytes`.
pub fn decode_all(objects: &[BuiltObject], data_bytes: u64) -> Result<CpuPass, BenchError> {
    let clock = CpuSample::now(None);
    let (mut raw_bytes, mut object_bytes) = (0u64, 0u64);
    for o in objects {
        for c in &o.footer.chunks {
            let start = usize::try_from(c.stored_pos).unwrap_or(usize::MAX);
            let end = start.saturating_add(c.stored_bytes as usize);
            let stored = o.bytes.get(start..end).ok_or(BenchError::Mismatch {
                what: "chunk end inside the built object",
                expected: o.bytes.len() as u64,
                got: end as u64,
            })?;
            let raw = decode_chunk(stored, c, "cpu-only")
                .map_err(BenchError::cold("decode chunk (CPU only)"))?;
            raw_bytes += raw.len() as u64;
            object_bytes += u64::from(c.stored_bytes);
        }
    }
    let spent = clock.since(None);
    BenchError::check(
        "bytes decoded from the built objects",
        data_bytes,
        raw_bytes,
    )?;
    Ok(CpuPass {
        spent,
        raw_bytes,
        object_bytes,
    })
}
