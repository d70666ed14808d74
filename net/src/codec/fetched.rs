//! The fetched-record list shared by Fetch answers and pushes: `list` of `offset u64,
//! timestamp_ms i64, key opt_bytes, value bytes, headers`.

use super::types::FetchedRecordView;
use super::wire::{ReadResult, Reader, WriteResult, Writer};

/// Minimum encoded size of one fetched record: offset, timestamp, key length, value length,
/// header count.
pub(crate) const FETCHED_RECORD_BYTES_MIN: usize = 8 + 8 + 4 + 4 + 4;

pub(crate) fn write_fetched(w: &mut Writer<'_>, records: &[FetchedRecordView<'_>]) -> WriteResult {
    w.count("records", records.len())?;
    for rec in records {
        w.u64(rec.offset);
        w.i64(rec.timestamp_ms);
        w.opt_bytes("key", rec.key)?;
        w.bytes("value", rec.value)?;
        w.headers("headers", &rec.headers)?;
    }
    Ok(())
}

pub(crate) fn read_fetched<'a>(r: &mut Reader<'a>) -> ReadResult<Vec<FetchedRecordView<'a>>> {
    r.list("records", FETCHED_RECORD_BYTES_MIN, |r| {
        Ok(FetchedRecordView {
            offset: r.u64("offset")?,
            timestamp_ms: r.i64("timestamp_ms")?,
            key: r.opt_bytes("key")?,
            value: r.bytes("value")?,
            headers: r.headers("headers")?,
        })
    })
}
