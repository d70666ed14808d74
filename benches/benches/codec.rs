//! The `net` frame codec: encode and decode of a Produce request and a Fetch response.
//!
//! Encoding copies every byte into one reused `BytesMut` (cleared, capacity kept, so source and
//! destination stay cache-resident, as for a connection's write buffer): counters are bytes = the
//! whole encoded frame (length prefix included) and items = records. Decoding checks lengths and
//! borrows values from the input without reading them, so its cost grows with the record count,
//! not the bytes: its only counter is items = records (a bytes/s figure would not be what it does).
//! The sample size is fixed so every sample spans many timer ticks.

use benches::fixtures::{fetch_response, produce_request, Workload};
use bytes::BytesMut;
use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use net::codec::{decode, encode, Decoded, Frame, Limits};

const WORKLOADS: [Workload; 2] = [Workload::new(16, 128), Workload::new(16, 1024)];

fn main() {
    divan::main();
}

fn encoded(frame: &Frame<'_>) -> BytesMut {
    let mut buf = BytesMut::new();
    encode(frame, &mut buf, &Limits::default()).expect("benchmark frames fit the default limits");
    buf
}

/// Iterations per timed sample: a few microseconds per sample, well above the ~20 ns timer tick.
const SAMPLE_SIZE: u32 = 64;

fn decode_frame(buf: &[u8]) -> usize {
    match decode(buf, &Limits::default()) {
        Ok(Decoded::Frame(frame, used)) => {
            black_box(&frame);
            used
        }
        other => panic!("benchmark frame did not decode: {other:?}"),
    }
}

/// Encode of one Produce request frame (acks = leader, no key, no headers).
#[divan::bench(args = WORKLOADS, sample_size = SAMPLE_SIZE)]
fn produce_encode(bencher: Bencher, workload: Workload) {
    let values = workload.values();
    let frame = Frame::request(7, produce_request(&values));
    let frame_bytes = encoded(&frame).len();
    let mut buf = BytesMut::with_capacity(frame_bytes);
    bencher
        .counter(BytesCount::new(frame_bytes))
        .counter(ItemsCount::new(workload.records))
        .bench_local(|| {
            buf.clear();
            encode(black_box(&frame), &mut buf, &Limits::default())
        });
}

/// Decode of one Produce request frame into borrowed record views.
#[divan::bench(args = WORKLOADS, sample_size = SAMPLE_SIZE)]
fn produce_decode(bencher: Bencher, workload: Workload) {
    let values = workload.values();
    let buf = encoded(&Frame::request(7, produce_request(&values)));
    bencher
        .counter(ItemsCount::new(workload.records))
        .bench_local(|| decode_frame(black_box(&buf)));
}

/// Encode of one Fetch response frame.
#[divan::bench(args = WORKLOADS, sample_size = SAMPLE_SIZE)]
fn fetch_response_encode(bencher: Bencher, workload: Workload) {
    let values = workload.values();
    let frame = Frame::response(7, fetch_response(&values));
    let frame_bytes = encoded(&frame).len();
    let mut buf = BytesMut::with_capacity(frame_bytes);
    bencher
        .counter(BytesCount::new(frame_bytes))
        .counter(ItemsCount::new(workload.records))
        .bench_local(|| {
            buf.clear();
            encode(black_box(&frame), &mut buf, &Limits::default())
        });
}

/// Decode of one Fetch response frame into borrowed record views.
#[divan::bench(args = WORKLOADS, sample_size = SAMPLE_SIZE)]
fn fetch_response_decode(bencher: Bencher, workload: Workload) {
    let values = workload.values();
    let buf = encoded(&Frame::response(7, fetch_response(&values)));
    bencher
        .counter(ItemsCount::new(workload.records))
        .bench_local(|| decode_frame(black_box(&buf)));
}
