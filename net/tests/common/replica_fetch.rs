//! ReplicaFetch (api 16) fixtures: the golden samples and the proptest strategies, kept apart
//! from `samples.rs` and `strategies.rs` so each file stays one responsibility.

use net::codec::{BatchEpoch, DivergingEpoch, ErrorCode, Frame, Request, Response};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::strategies::{error_code, state_blob, text};

/// Two stored batches as the leader holds them: opaque to the codec, which carries them byte
/// for byte (the real batch layout is docs/log-format.md's).
pub const BATCHES: &[u8] = b"batch 41..43 @ epoch 4|batch 43..44 @ epoch 5";

/// The batches of `resp_replica_fetch`: offsets 41 and 42 written in epoch 4, offset 43 in 5.
pub const BATCH_EPOCHS: [BatchEpoch; 2] = [
    BatchEpoch {
        epoch: 4,
        base_offset: 41,
        next_offset: 43,
    },
    BatchEpoch {
        epoch: 5,
        base_offset: 43,
        next_offset: 44,
    },
];

/// Follower node 3 of "orders"/2 holds offsets below 41 (the last written in epoch 4, all of them
/// fdatasync'd below 40) and believes epoch 5 is current.
pub fn request() -> Request<'static> {
    Request::ReplicaFetch {
        topic: "orders",
        partition: 2,
        replica: 3,
        leader_epoch: 5,
        fetch_offset: 41,
        last_fetched_epoch: Some(4),
        durable_offset: 40,
        max_bytes: 1_048_576,
        max_wait_ms: 500,
    }
}

/// The golden vectors: the request, an answer with batches, and a diverging answer (a follower
/// at offset 50 whose epoch 4 ends at 43 on the leader).
pub fn samples() -> Vec<(&'static str, Frame<'static>)> {
    let ok = ErrorCode::None;
    vec![
        ("req_replica_fetch", Frame::request_at(18, 0, request())),
        (
            "resp_replica_fetch",
            Frame::response_at(
                18,
                0,
                Response::ReplicaFetch {
                    error: ok,
                    message: "",
                    leader_epoch: 5,
                    fetch_offset: 41,
                    last_fetched_epoch: Some(4),
                    high_watermark: 41,
                    log_start_offset: 0,
                    diverging: None,
                    batch_epochs: BATCH_EPOCHS.to_vec(),
                    batches: BATCHES,
                },
            ),
        ),
        (
            "resp_replica_fetch_diverging",
            Frame::response_at(
                19,
                0,
                Response::ReplicaFetch {
                    error: ok,
                    message: "",
                    leader_epoch: 5,
                    fetch_offset: 50,
                    last_fetched_epoch: Some(4),
                    high_watermark: 44,
                    log_start_offset: 0,
                    diverging: Some(DivergingEpoch {
                        epoch: 4,
                        end_offset: 43,
                    }),
                    batch_epochs: vec![],
                    batches: &[],
                },
            ),
        ),
    ]
}

/// Any ReplicaFetch request, with `last_fetched_epoch` present or absent.
pub fn request_strategy() -> impl Strategy<Value = Request<'static>> {
    (
        text(),
        any::<(u32, u32, u32, u64)>(),
        option::of(any::<u32>()),
        any::<(u64, u32, u32)>(),
    )
        .prop_map(
            |(
                topic,
                (partition, replica, leader_epoch, fetch_offset),
                last_fetched_epoch,
                (durable_offset, max_bytes, max_wait_ms),
            )| Request::ReplicaFetch {
                topic,
                partition,
                replica,
                leader_epoch,
                fetch_offset,
                last_fetched_epoch,
                durable_offset,
                max_bytes,
                max_wait_ms,
            },
        )
}

fn batch_epoch() -> impl Strategy<Value = BatchEpoch> {
    any::<(u32, u64, u64)>().prop_map(|(epoch, base_offset, next_offset)| BatchEpoch {
        epoch,
        base_offset,
        next_offset,
    })
}

/// The tail of an answer: diverging (then nothing else), or batches with their epochs (either
/// list possibly empty).
type Payload = (Option<DivergingEpoch>, Vec<BatchEpoch>, &'static [u8]);

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        1 => any::<(u32, u64)>().prop_map(|(epoch, end_offset)| {
            (Some(DivergingEpoch { epoch, end_offset }), vec![], &[][..])
        }),
        3 => (vec(batch_epoch(), 0..5), state_blob())
            .prop_map(|(batch_epochs, batches)| (None, batch_epochs, batches)),
    ]
}

/// Any ReplicaFetch answer the encoder accepts, with an arbitrary error code and message.
pub fn response_strategy() -> impl Strategy<Value = Response<'static>> {
    (
        (error_code(), text()),
        any::<(u32, u64)>(),
        option::of(any::<u32>()),
        any::<(u64, u64)>(),
        payload(),
    )
        .prop_map(
            |(
                (error, message),
                (leader_epoch, fetch_offset),
                last_fetched_epoch,
                (high_watermark, log_start_offset),
                (diverging, batch_epochs, batches),
            )| Response::ReplicaFetch {
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
            },
        )
}
