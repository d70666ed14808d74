//! Reads: from a partition this shard owns (the hot ring, the log, the cold tier below the log's
//! start, a long-poll at the end) or, through the mesh, from whichever shard owns it; and the
//! fetch response built from what was read.

use super::*;

/// Reads from a partition this shard owns, waiting up to `wait_ms` for data at the end.
pub async fn read_local(shard: &Rc<Shard>, args: ReadArgs) -> ReadReply {
    let t = shard
        .catalog
        .borrow()
        .topics
        .values()
        .find(|t| t.topic_id == args.topic_id)
        .cloned()
        .ok_or_else(|| Failure::new(ErrorCode::UnknownTopic, "topic was deleted"))?;
    let p = owned(shard, &t, args.partition)?;
    crate::replication::read_gate(shard, &p)?;
    let deadline = std::time::Instant::now() + Duration::from_millis(args.wait_ms.into());
    let mut offset = args.offset;
    loop {
        let seen = p.appended.generation();
        let (local_start, log_end) = {
            let log = p.log.borrow();
            (log.start_offset(), log.end_offset())
        };
        // A replicated partition shows consumers only what is below its high watermark.
        let end = crate::replication::visible_end(&p, log_end);
        // A tiered partition's log starts in the object store.
        let remote = p.cold.get().and_then(|c| c.remote_range());
        let start = remote.map_or(local_start, |(rs, _)| rs.min(local_start));
        if offset < start || offset > log_end {
            let tiered_closed = p.cold.get().is_some_and(|c| !c.is_open());
            let hint = if tiered_closed {
                " (older offsets may be in the object store, whose manifest is not loaded yet: \
                 see the node's log; retry later)"
            } else {
                ""
            };
            return Err(Failure::new(
                ErrorCode::OffsetOutOfRange,
                format!(
                    "offset {offset} is outside {}/{} (available {start}..{end}); restart from {start} or {end}{hint}",
                    t.name, args.partition
                ),
            ));
        }
        if offset < end {
            let now = now_ms();
            let read = if offset < local_start {
                read_below_local(shard, &p, offset, local_start, args.max_bytes).await?
            } else {
                let result = p.log.borrow().read(offset, args.max_bytes);
                result.map_err(|e| storage_failure(&e))?
            };
            let mut records = decode_records(&read, offset, args.max_bytes, now)?;
            let decoded_any = !records.is_empty();
            records.retain(|r| r.offset < end);
            let out = ReadOutcome {
                records,
                high_offset: end,
                start_offset: start,
            };
            if !out.records.is_empty() {
                add(&shard.metrics.records_out, out.records.len() as u64);
                add(&p.records_out, out.records.len() as u64);
                let bytes: usize = out.records.iter().map(|r| r.value.len()).sum();
                add(&p.bytes_out, bytes as u64);
                return Ok(out);
            }
            // Everything in range had expired (TTL): skip past it and keep looking (but never
            // past the high watermark: those records are only not visible yet).
            if !decoded_any && read.next_offset > offset && read.next_offset <= end {
                offset = read.next_offset;
                continue;
            }
        }
        let now = std::time::Instant::now();
        if now >= deadline || p.closed.get() || shard.stopping.get() {
            return Ok(ReadOutcome {
                records: Vec::new(),
                high_offset: end,
                start_offset: start,
            });
        }
        let _ = glommio::timer::timeout(deadline - now, async {
            p.appended.changed_since(seen).await;
            Ok(())
        })
        .await;
    }
}

/// Reads the remote log (cold tier) at `offset`, below the local start.
async fn read_below_local(
    shard: &Rc<Shard>,
    p: &Rc<crate::partition::Partition>,
    offset: u64,
    local_start: u64,
    max_bytes: u32,
) -> Result<storage::ReadResult, Failure> {
    let reader = p.cold.get().and_then(|c| c.reader());
    let (Some(cold), Some(reader)) = (shard.cold.as_ref(), reader) else {
        return Err(Failure::new(
            ErrorCode::OffsetOutOfRange,
            format!("offset {offset} is below the local start {local_start}"),
        ));
    };
    let (_, remote_end) = reader.offsets();
    if offset >= remote_end {
        // Between the remote end and the local start: only while a local release and a
        // retention change race; the next read sees a consistent pair.
        return Err(Failure::new(
            ErrorCode::StorageError,
            format!(
                "offsets {remote_end}..{local_start} are moving between tiers; retry the fetch"
            ),
        ));
    }
    // Object stores answer 503 SlowDown or drop a connection now and then: two quick retries
    // hide that from consumers; a store that keeps failing is reported (retriable).
    let mut attempt = 0;
    loop {
        match crate::tiering::read_remote(cold, reader.clone(), offset, max_bytes).await {
            Ok(read) => return Ok(read),
            Err(m) if attempt == REMOTE_READ_RETRIES => {
                return Err(Failure::new(
                    ErrorCode::StorageError,
                    format!("{m}; retry the fetch"),
                ))
            }
            Err(_) => {
                attempt += 1;
                glommio::timer::sleep(Duration::from_millis(50 << (2 * attempt))).await;
            }
        }
    }
}

/// Extra attempts of a failed remote read before the fetch fails (after 200 ms, then 800 ms).
const REMOTE_READ_RETRIES: u32 = 2;

/// Decodes the records at or after `offset` from stored batches, about `max_bytes` of them (at
/// least one), skipping TTL-expired ones.
fn decode_records(
    read: &storage::ReadResult,
    offset: u64,
    max_bytes: u32,
    now: i64,
) -> Result<Vec<StoredRecord>, Failure> {
    let mut records = Vec::new();
    let mut budget = i64::from(max_bytes);
    for batch in &read.batches {
        let before = records.len();
        batch
            .records_into(offset, now, &mut records)
            .map_err(|e| storage_failure(&e))?;
        for (i, r) in records[before..].iter().enumerate() {
            let size = (r.value.len() + r.key.as_ref().map_or(0, |k| k.len()) + 32) as i64;
            if before + i > 0 && budget - size < 0 {
                records.truncate(before + i);
                return Ok(records);
            }
            budget -= size;
        }
    }
    Ok(records)
}

/// Reads from whichever shard owns the partition.
pub async fn read_anywhere(shard: &Rc<Shard>, args: ReadArgs) -> ReadReply {
    let owner = shard.owner(args.topic_id, args.partition);
    if owner == shard.id {
        return read_local(shard, args).await;
    }
    add(&shard.metrics.forwarded_calls, 1);
    match shard.call(owner, CallBody::Read(args)).await {
        Some(ReplyBody::Read(r)) => r,
        _ => Err(Failure::new(
            ErrorCode::ShuttingDown,
            "the owning shard is shutting down",
        )),
    }
}

/// Encodes fetched records as a Fetch response.
pub fn encode_fetch(header: FrameHeader, out: &ReadOutcome, limits: &Limits) -> Bytes {
    encode_response_sized(
        header,
        Response::Fetch {
            error: ErrorCode::None,
            message: "",
            high_offset: out.high_offset,
            start_offset: out.start_offset,
            records: views(&out.records),
        },
        limits,
        wire_bytes_estimate(&out.records),
    )
}

/// A little more than the encoded size of `records` in a fetch or push frame (each record's
/// fields plus room for its framing), to size the frame's buffer once.
pub fn wire_bytes_estimate(records: &[StoredRecord]) -> usize {
    const FRAME_OVERHEAD: usize = 128;
    const RECORD_OVERHEAD: usize = 40;
    const HEADER_OVERHEAD: usize = 8;
    let records: usize = records
        .iter()
        .map(|r| {
            let headers: usize = r
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + HEADER_OVERHEAD)
                .sum();
            RECORD_OVERHEAD + r.key.as_ref().map_or(0, |k| k.len()) + r.value.len() + headers
        })
        .sum();
    FRAME_OVERHEAD + records
}

/// Borrowed protocol views of stored records.
pub fn views(records: &[StoredRecord]) -> Vec<FetchedRecordView<'_>> {
    records
        .iter()
        .map(|r| FetchedRecordView {
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key: r.key.as_deref(),
            value: &r.value,
            headers: r.headers.iter().collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64, key: Option<&[u8]>, value_len: usize, headers: usize) -> StoredRecord {
        StoredRecord {
            offset,
            timestamp_ms: 1_700_000_000_000 + (offset % 1_000) as i64,
            key: key.map(Bytes::copy_from_slice),
            value: Bytes::from(vec![7u8; value_len]),
            headers: storage::StoredHeaders::from_pairs(
                &(0..headers)
                    .map(|i| (format!("header-{i}").into_bytes(), vec![1u8; 8 + i]))
                    .collect::<Vec<_>>(),
            ),
            expires_at_ms: None,
        }
    }

    /// The estimate sizes the frame buffer once: it must cover the encoded frame.
    #[test]
    fn wire_estimate_covers_the_encoded_fetch() {
        let shapes: [(Option<&[u8]>, usize, usize); 5] = [
            (None, 0, 0),
            (None, 1, 0),
            (Some(b"k"), 128, 1),
            (Some(b"a-longer-key-of-some-size"), 1024, 3),
            (None, 65_536, 0),
        ];
        for (key, value_len, headers) in shapes {
            for count in [1usize, 2, 17, 1000] {
                let records: Vec<StoredRecord> = (0..count as u64)
                    .map(|o| record(u64::MAX / 2 + o, key, value_len, headers))
                    .collect();
                let out = ReadOutcome {
                    records,
                    high_offset: u64::MAX / 2 + count as u64,
                    start_offset: 0,
                };
                let limits = Limits {
                    frame_bytes_max: u32::MAX,
                };
                let frame = encode_fetch(NO_HEADER, &out, &limits);
                let estimate = wire_bytes_estimate(&out.records);
                assert!(
                    frame.len() <= estimate,
                    "{count} records of key {key:?}, value {value_len} B, {headers} headers: \
                     frame {} B, estimate {estimate} B",
                    frame.len()
                );
            }
        }
    }
}
