//! Peak heap allocation while decoding hostile frames, measured with a counting global allocator.
//! Its own test binary with a single test, so no other test thread allocates during the
//! measurement.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use net::codec::{decode, CodecError, Decoded, Limits};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to `System` unchanged; only bookkeeping is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: `ptr` came from `alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated at the peak of `f`, above what was live when it started.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst) - base
}

fn frame(api_key: u16, body: &[u8]) -> Vec<u8> {
    let mut b = (10 + body.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(&api_key.to_le_bytes());
    b.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 0]);
    b.extend_from_slice(body);
    b
}

const PEAK_BYTES_MAX: usize = 64 * 1024;

#[test]
fn hostile_lengths_and_counts_allocate_almost_nothing() {
    let limits = Limits::default();

    // Length prefixes: huge, negative, and a legal-but-unsent 8 MiB frame.
    for length in [u32::MAX, i32::MAX as u32, Limits::FRAME_BYTES_MAX_DEFAULT] {
        let prefix = length.to_le_bytes();
        let peak = peak_during(|| {
            let _ = std::hint::black_box(decode(&prefix, &limits));
        });
        assert!(peak <= PEAK_BYTES_MAX, "length {length}: peak {peak} bytes");
    }

    // Produce with a records count of u32::MAX and 3 bytes left.
    let mut body = vec![1, 0, b't', 0, 0, 0, 0, 1, 0];
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    body.extend_from_slice(&[1, 2, 3]);
    let produce = frame(6, &body);
    // Metadata with an i32::MAX topic count; Fetch response with u32::MAX records.
    let metadata = frame(1, &i32::MAX.to_le_bytes());
    let mut body = vec![0, 0, 0, 0];
    body.extend_from_slice(&[0; 16]);
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut fetch_response = frame(7, &body);
    fetch_response[12] = 1; // response flag
                            // Metadata v1 reply whose one partition's placement claims u32::MAX replicas.
    let mut body = vec![0, 0, 0, 0];
    body.extend_from_slice(&[0; 12]); // node_id, shards, no brokers
    body.extend_from_slice(&[1, 0, 0, 0, 1, 0, b't']); // one topic "t"
    body.extend_from_slice(&[0; 8]); // topic_id
    body.extend_from_slice(&[1, 0, 0, 0]); // one partition
    body.extend_from_slice(&[0; 8]); // partition, shard
    body.push(1); // placement present
    body.extend_from_slice(&[0; 8]); // leader, leader_epoch
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut placement = frame(1, &body);
    placement[6] = 1; // api_version 1
    placement[12] = 1; // response flag
                       // ReplicaFetch answers claiming u32::MAX batch epochs (above the cap) and 65,536 (at the
                       // cap, but only 4 bytes follow).
    let replica_fetch = |count: u32| {
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&[0; 4 + 8]); // leader_epoch, fetch_offset
        body.push(0); // last_fetched_epoch absent
        body.extend_from_slice(&[0; 16]); // high_watermark, log_start_offset
        body.push(0); // diverging absent
        body.extend_from_slice(&count.to_le_bytes());
        body.extend_from_slice(&[0; 4]);
        let mut bytes = frame(16, &body);
        bytes[12] = 1; // response flag
        bytes
    };
    let epochs_above_cap = replica_fetch(u32::MAX);
    let epochs_at_cap = replica_fetch(65_536);
    // AlterInSync request claiming u32::MAX in-sync node ids (above the 255 cap).
    let mut body = vec![1, 0, b't'];
    body.extend_from_slice(&[0; 16]); // partition, leader, leader_epoch, isr_version
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    body.extend_from_slice(&[0; 4]);
    let alter_in_sync = frame(17, &body);
    // SyncGroup requests claiming u32::MAX owned topics (above the 256 cap), and one topic with
    // 65,536 partitions (at the cap, but only 4 bytes follow).
    let sync_group = |topics: u32, partitions: Option<u32>| {
        let mut body = vec![1, 0, b'g', 1, 0, b'm', 0, 0, 0, 0]; // group, member_id, generation
        body.extend_from_slice(&topics.to_le_bytes());
        if let Some(partitions) = partitions {
            body.extend_from_slice(&[1, 0, b't']);
            body.extend_from_slice(&partitions.to_le_bytes());
        }
        body.extend_from_slice(&[0; 4]);
        frame(20, &body)
    };
    let group_topics_above_cap = sync_group(u32::MAX, None);
    let group_partitions_at_cap = sync_group(1, Some(65_536));
    for (name, bytes) in [
        ("produce", &produce),
        ("metadata", &metadata),
        ("fetch", &fetch_response),
        ("placement", &placement),
        ("replica fetch epochs above the cap", &epochs_above_cap),
        ("replica fetch epochs at the cap", &epochs_at_cap),
        ("alter in sync nodes above the cap", &alter_in_sync),
        ("sync group topics above the cap", &group_topics_above_cap),
        ("sync group partitions at the cap", &group_partitions_at_cap),
    ] {
        let mut result = None;
        let peak = peak_during(|| result = Some(decode(bytes, &limits)));
        assert!(
            matches!(result, Some(Err(CodecError::Malformed { .. }))),
            "{name}: {result:?}"
        );
        assert!(peak <= PEAK_BYTES_MAX, "{name}: peak {peak} bytes");
    }

    // A legitimately large frame still decodes (the counter is not vacuous): 1000 records.
    let mut body = vec![1, 0, b't', 0, 0, 0, 0, 1, 0];
    body.extend_from_slice(&1000u32.to_le_bytes());
    for _ in 0..1000 {
        body.extend_from_slice(&[0; 12]);
        body.extend_from_slice(&(-1i32).to_le_bytes());
        body.extend_from_slice(&[0; 8]);
    }
    let big = frame(6, &body);
    let mut result = None;
    let peak = peak_during(|| result = Some(decode(&big, &limits)));
    assert!(matches!(result, Some(Ok(Decoded::Frame(..)))), "{result:?}");
    assert!(
        peak > 1000 * 24,
        "decoding 1000 records must allocate their views: peak {peak}"
    );
}
