//! Writes: a produce request appended on the shard that owns the partition (its start runs at
//! once, in arrival order; the acknowledgement waits for the durability asked), and a consumer
//! offset commit.

use super::*;

pub(super) fn produce_start(
    shard: &Rc<Shard>,
    header: FrameHeader,
    topic: &str,
    partition: u32,
    acks: Acks,
    producer: Option<ProducerIdent>,
    records: &[RecordView<'_>],
) -> LocalFut<Option<Bytes>> {
    let limits = limits(shard);
    let fail = |f: Failure| -> LocalFut<Option<Bytes>> {
        add(&shard.metrics.errors, 1);
        // acks=none never gets a reply, not even an error: the connection stays usable.
        if acks == Acks::None {
            ready(None)
        } else {
            ready(Some(encode_error(header, &f, 0, &limits)))
        }
    };
    let t = match resolve(shard, topic, partition) {
        Ok(t) => t,
        Err(f) => return fail(f),
    };
    let part = match owned(shard, &t, partition) {
        Ok(p) => p,
        Err(f) => return fail(f),
    };
    if records.is_empty() {
        return fail(Failure::new(
            ErrorCode::InvalidRequest,
            "a produce request needs at least one record",
        ));
    }
    let replicated_at =
        match crate::replication::produce_gate(shard, &part, acks == Acks::All, header.api_version)
        {
            Ok(epoch) => epoch,
            Err(f) => return fail(f),
        };
    let now = now_ms();
    let mut bytes = 0u64;
    let recs: Vec<storage::Record<'_>> = records
        .iter()
        .map(|r| {
            bytes += r.value.len() as u64 + r.key.map_or(0, |k| k.len() as u64);
            storage::Record {
                key: r.key,
                value: r.value,
                headers: &r.headers,
                timestamp_ms: if r.timestamp_ms > 0 {
                    r.timestamp_ms
                } else {
                    now
                },
                ttl_ms: r.ttl_ms,
            }
        })
        .collect();
    let producer = producer.map(|p| ProducerInfo {
        producer_id: p.producer_id,
        epoch: p.epoch,
        base_sequence: p.base_sequence,
    });
    let outcome = part.log.borrow_mut().append(&recs, producer, now);
    let (base, last, duplicate) = match outcome {
        Ok(AppendOutcome::Appended {
            base_offset,
            last_offset,
        }) => {
            crate::replication::on_append(&part);
            part.appended.notify_all();
            part.prepare_next_segment();
            add(&part.records_in, recs.len() as u64);
            add(&part.bytes_in, bytes);
            if shard.config.analytics != crate::analytics_shard::Mode::Off {
                part.sample_keys(recs.iter().filter_map(|r| r.key));
            }
            add(&shard.metrics.records_in, recs.len() as u64);
            add(&shard.metrics.bytes_in, bytes);
            (base_offset, last_offset, false)
        }
        Ok(AppendOutcome::Duplicate {
            base_offset,
            last_offset,
        }) => (base_offset, last_offset, true),
        Err(e) => return fail(storage_failure(&e)),
    };
    add(&shard.metrics.produce_requests, 1);
    let reply = move |durable: bool| {
        encode_response(
            header,
            Response::Produce {
                error: ErrorCode::None,
                message: "",
                topic_id: t.topic_id,
                partition,
                base_offset: base,
                record_count: (last - base + 1) as u32,
                duplicate,
                durable,
            },
            &limits,
        )
    };
    match acks {
        Acks::None => ready(None),
        Acks::Leader => {
            let durable = part.log.borrow().durable_offset() > last;
            ready(Some(reply(durable)))
        }
        Acks::All => {
            let shard = shard.clone();
            Box::pin(async move {
                if let Err(msg) = part.wait_durable(last + 1).await {
                    let f = Failure::new(ErrorCode::StorageError, msg);
                    return Some(encode_error(header, &f, 0, &limits));
                }
                if let Some(epoch) = replicated_at {
                    // Also on the disks of the in-sync replicas, below the high watermark.
                    if let Err(f) = crate::replication::wait_acks_all(
                        &shard,
                        &part,
                        epoch,
                        last,
                        header.api_version,
                    )
                    .await
                    {
                        return Some(encode_error(header, &f, 0, &limits));
                    }
                }
                Some(reply(true))
            })
        }
    }
}

pub(super) async fn offset_commit(
    shard: &Rc<Shard>,
    consumer: &str,
    topic: &str,
    partition: u32,
    offset: u64,
) -> Result<(), Failure> {
    if consumer.is_empty() || consumer.len() > crate::offsets::CONSUMER_NAME_BYTES_MAX {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            format!(
                "consumer name must be 1 to {} bytes",
                crate::offsets::CONSUMER_NAME_BYTES_MAX
            ),
        ));
    }
    let t = resolve(shard, topic, partition)?;
    let p = owned(shard, &t, partition)?;
    let end = p.log.borrow().end_offset();
    if offset > end {
        return Err(Failure::new(
            ErrorCode::OffsetOutOfRange,
            format!("cannot commit offset {offset}: partition {topic}/{partition} ends at {end}"),
        ));
    }
    p.commit_offset(consumer, offset)
        .await
        .map_err(|e| match e {
            crate::partition::PartitionError::TooManyConsumers { .. } => {
                Failure::new(ErrorCode::InvalidRequest, e.to_string())
            }
            other => Failure::new(ErrorCode::StorageError, other.to_string()),
        })
}
