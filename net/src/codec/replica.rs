//! The ReplicaFetch (api 16) answer's tail: `diverging`, `batch_epochs` and `batches`, with the
//! rule that binds them (a diverging answer carries no batches), and the answer's decoder.

use super::error::{EncodeError, Malformed};
use super::response::Response;
use super::types::{ApiKey, BatchEpoch, DivergingEpoch, ErrorCode};
use super::wire::{FieldError, ReadResult, Reader, WriteResult, Writer};

/// Writes `diverging: bool (+ epoch u32, end_offset u64)`, `batch_epochs: list<BatchEpoch>`
/// (at most [`BatchEpoch::COUNT_MAX`]) and `batches: bytes`. A diverging answer with batches or
/// batch epochs is refused rather than sent.
pub(crate) fn write_payload(
    w: &mut Writer<'_>,
    diverging: Option<&DivergingEpoch>,
    batch_epochs: &[BatchEpoch],
    batches: &[u8],
) -> WriteResult {
    if diverging.is_some() {
        for (field, count) in [
            ("batch_epochs", batch_epochs.len()),
            ("batches", batches.len()),
        ] {
            if count > 0 {
                return Err(EncodeError::MustBeEmpty {
                    api: ApiKey::ReplicaFetch,
                    field,
                    count,
                    because_present: "diverging",
                });
            }
        }
    }
    w.bool(diverging.is_some());
    if let Some(d) = diverging {
        w.u32(d.epoch);
        w.u64(d.end_offset);
    }
    w.capped_count("batch_epochs", batch_epochs.len(), BatchEpoch::COUNT_MAX)?;
    for b in batch_epochs {
        w.u32(b.epoch);
        w.u64(b.base_offset);
        w.u64(b.next_offset);
    }
    w.bytes("batches", batches)
}

/// Decodes a ReplicaFetch answer after its common head.
pub(crate) fn read_response<'a>(
    r: &mut Reader<'a>,
    error: ErrorCode,
    message: &'a str,
) -> ReadResult<Response<'a>> {
    let leader_epoch = r.u32("leader_epoch")?;
    let fetch_offset = r.u64("fetch_offset")?;
    let last_fetched_epoch = r.opt_u32("last_fetched_epoch")?;
    let high_watermark = r.u64("high_watermark")?;
    let log_start_offset = r.u64("log_start_offset")?;
    let diverging = if r.bool("diverging")? {
        Some(DivergingEpoch {
            epoch: r.u32("diverging_epoch")?,
            end_offset: r.u64("diverging_end_offset")?,
        })
    } else {
        None
    };
    let batch_epochs = r.capped_list(
        "batch_epochs",
        BatchEpoch::COUNT_MAX,
        BatchEpoch::WIRE_BYTES,
        |r| {
            Ok(BatchEpoch {
                epoch: r.u32("batch_epoch")?,
                base_offset: r.u64("batch_base_offset")?,
                next_offset: r.u64("batch_next_offset")?,
            })
        },
    )?;
    let batches = r.bytes("batches")?;
    if diverging.is_some() {
        for (field, count) in [
            ("batch_epochs", batch_epochs.len()),
            ("batches", batches.len()),
        ] {
            if count > 0 {
                return Err(FieldError {
                    field,
                    reason: Malformed::MustBeEmpty {
                        count: count as u64,
                        because_present: "diverging",
                    },
                });
            }
        }
    }
    Ok(Response::ReplicaFetch {
        error,
        message,
        leader_epoch,
        fetch_offset,
        last_fetched_epoch,
        high_watermark,
        log_start_offset,
        diverging,
        batch_epochs,
        batches,
    })
}
