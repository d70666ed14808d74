//! Golden byte vectors: `tests/golden/<name>.bin` holds the exact bytes of every sample frame
//! (tests/common/samples.rs), `<name>.txt` its decoded form, and `MANIFEST.tsv` one line per
//! vector. SDKs in other languages decode the `.bin` files and encode the same values back.
//!
//! Regenerate after an intentional format change (and update docs/protocol.md):
//! `SPRAWL_UPDATE_GOLDEN=1 cargo test -p net --test golden`

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use net::codec::{ApiKey, Body, Request, Response};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Every expected file: name -> contents.
fn expected_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut manifest = String::from(
        "# name\tdirection\tapi_key\tapi_name\tapi_version\tcorrelation_id\tflags\tframe_bytes\n",
    );
    for (name, frame) in common::samples::all() {
        let bytes = common::encode_frame(&frame);
        let h = frame.header;
        let direction = match (&frame.body, h.is_error()) {
            (Body::Request(_), _) => "request",
            (Body::Response(_), true) => "error",
            (Body::Response(_), false) if h.api_key == ApiKey::Push as u16 => "push",
            (Body::Response(_), false) => "response",
        };
        let api_name = ApiKey::from_u16(h.api_key).map_or("unknown", ApiKey::name);
        writeln!(
            manifest,
            "{name}\t{direction}\t{}\t{api_name}\t{}\t{}\t{:#06x}\t{}",
            h.api_key,
            h.api_version,
            h.correlation_id,
            h.flags,
            bytes.len()
        )
        .expect("writing to a String cannot fail");
        files.push((format!("{name}.txt"), format!("{frame:#?}\n").into_bytes()));
        files.push((format!("{name}.bin"), bytes));
    }
    files.push(("MANIFEST.tsv".to_owned(), manifest.into_bytes()));
    files
}

#[test]
fn golden_vectors_match() {
    let dir = golden_dir();
    let files = expected_files();
    if std::env::var_os("SPRAWL_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(&dir).expect("create golden dir");
        for (name, contents) in &files {
            // Write aside, then rename: the other tests of this file read the vectors at the
            // same time and must never see a half-written one.
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, contents).expect("write golden file");
            std::fs::rename(&tmp, dir.join(name)).expect("replace golden file");
        }
    }
    let mut mismatched = Vec::new();
    for (name, contents) in &files {
        match std::fs::read(dir.join(name)) {
            Ok(found) if &found == contents => {}
            Ok(_) => mismatched.push(format!("{name}: bytes differ")),
            Err(e) => mismatched.push(format!("{name}: {e}")),
        }
    }
    assert!(
        mismatched.is_empty(),
        "golden vectors out of date (SPRAWL_UPDATE_GOLDEN=1 regenerates after an intentional format change):\n{}",
        mismatched.join("\n")
    );
    // No stale vector may linger in the directory either.
    let on_disk = std::fs::read_dir(&dir).expect("golden dir exists").count();
    assert_eq!(
        on_disk,
        files.len(),
        "unexpected files in {}",
        dir.display()
    );
}

#[test]
fn golden_bytes_decode_to_the_samples() {
    for (name, frame) in common::samples::all() {
        let bytes = std::fs::read(golden_dir().join(format!("{name}.bin"))).expect("golden file");
        assert_eq!(common::decode_one(&bytes), frame, "{name}");
    }
}

/// The header layout written out by hand from docs/protocol.md, independent of the generator.
#[test]
fn header_bytes_match_the_spec() {
    let bytes = std::fs::read(golden_dir().join("req_list_topics.bin")).expect("golden file");
    // length 10 | api_key 5 | api_version 0 | correlation_id 7 | flags 0 | empty body
    assert_eq!(bytes, [10, 0, 0, 0, 5, 0, 0, 0, 7, 0, 0, 0, 0, 0]);

    let bytes = std::fs::read(golden_dir().join("error_throttled.bin")).expect("golden file");
    let message = b"shard 1 is over its in-flight budget";
    let mut expected = Vec::new();
    expected.extend_from_slice(&(10 + 2 + 2 + message.len() as u32 + 4).to_le_bytes());
    expected.extend_from_slice(&[6, 0, 0, 0, 8, 0, 0, 0, 0b11, 0]); // produce, v0, cid 8, response|error
    expected.extend_from_slice(&[9, 0]); // THROTTLED
    expected.extend_from_slice(&(message.len() as u16).to_le_bytes());
    expected.extend_from_slice(message);
    expected.extend_from_slice(&250u32.to_le_bytes());
    assert_eq!(bytes, expected);

    let bytes = std::fs::read(golden_dir().join("req_offset_fetch.bin")).expect("golden file");
    let mut expected = vec![31, 0, 0, 0, 12, 0, 0, 0, 15, 0, 0, 0, 0, 0];
    expected.extend_from_slice(&[7, 0]);
    expected.extend_from_slice(b"billing");
    expected.extend_from_slice(&[6, 0]);
    expected.extend_from_slice(b"orders");
    expected.extend_from_slice(&[2, 0, 0, 0]);
    assert_eq!(bytes, expected);
}

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(golden_dir().join(format!("{name}.bin"))).expect("golden file")
}

/// The bytes an older peer sends (the v0 vectors, unchanged since v0) still decode, with every
/// v1-only value absent.
#[test]
fn v0_vectors_decode_with_the_v1_fields_absent() {
    let bytes = golden("req_create_topic");
    let frame = common::decode_one(&bytes);
    assert_eq!(frame.header.api_version, 0);
    let Body::Request(Request::CreateTopic { config, .. }) = frame.body else {
        panic!("req_create_topic is a CreateTopic request: {frame:?}");
    };
    assert_eq!(config.partitions, 3);
    assert_eq!(
        (config.tier_after_ms, config.local_retention_bytes),
        (None, None)
    );
    assert_eq!((config.replication_factor, config.min_insync), (None, None));

    let bytes = golden("resp_describe_topic");
    let frame = common::decode_one(&bytes);
    assert_eq!(frame.header.api_version, 0);
    let Body::Response(Response::DescribeTopic {
        topic: Some(topic), ..
    }) = frame.body
    else {
        panic!("resp_describe_topic describes a topic: {frame:?}");
    };
    assert_eq!(topic.config.tier_after_ms, None);
    assert_eq!(topic.config.local_retention_bytes, None);
    assert_eq!(topic.config.replication_factor, None);
    assert_eq!(topic.partitions.len(), 1);
    assert_eq!(topic.partitions[0].end_offset, 43);
    assert_eq!(topic.partitions[0].remote, None);

    let bytes = golden("resp_metadata");
    let frame = common::decode_one(&bytes);
    assert_eq!(frame.header.api_version, 0);
    let Body::Response(Response::Metadata { topics, .. }) = frame.body else {
        panic!("resp_metadata is a Metadata reply: {frame:?}");
    };
    assert_eq!(topics[0].partitions.len(), 2);
    assert!(topics[0].partitions.iter().all(|p| p.placement.is_none()));
}

/// Rewrites a frame's length and version fields, as a peer adding fields to a body would.
fn with_header(mut bytes: Vec<u8>, api_version: u16, appended_bytes: usize) -> Vec<u8> {
    let length = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let length = length + u32::try_from(appended_bytes).expect("small");
    bytes[..4].copy_from_slice(&length.to_le_bytes());
    bytes[6..8].copy_from_slice(&api_version.to_le_bytes());
    bytes
}

fn opt_u64(value: Option<u64>) -> Vec<u8> {
    match value {
        Some(v) => [&[1u8][..], &v.to_le_bytes()].concat(),
        None => vec![0],
    }
}

/// CreateTopic v1 written out by hand from docs/protocol.md: the v0 body, then
/// `tier_after_ms opt_u64, local_retention_bytes opt_u64`.
#[test]
fn create_topic_v1_appends_the_tiering_settings_to_the_v0_body() {
    let mut expected = Vec::new();
    expected.extend(opt_u64(Some(3_600_000)));
    expected.extend(opt_u64(Some(1_073_741_824)));
    let v0 = golden("req_create_topic");
    let appended = expected.len();
    let expected = [with_header(v0, 1, appended), expected].concat();
    assert_eq!(golden("req_create_topic_v1"), expected);
}

/// DescribeTopic v1 written out by hand: the config gains the two tiering settings, and each
/// partition is followed by a `remote` presence bool and, when present, the remote tier fields.
#[test]
fn describe_topic_v1_layout_matches_the_spec() {
    let mut e = vec![0u8; 4]; // length, filled in below
    e.extend_from_slice(&[4, 0, 1, 0, 6, 0, 0, 0, 1, 0]); // DescribeTopic, v1, cid 6, response
    e.extend_from_slice(&[0, 0, 0, 0]); // error NONE, empty message
    e.push(1); // topic present
    e.extend_from_slice(&[6, 0]);
    e.extend_from_slice(b"orders");
    e.extend_from_slice(&0xa3u64.to_le_bytes());
    e.extend_from_slice(&3u32.to_le_bytes()); // partitions
    e.extend(opt_u64(Some(604_800_000))); // retention_ms
    e.extend(opt_u64(None)); // retention_bytes
    e.extend(opt_u64(Some(67_108_864))); // segment_bytes
    e.push(0); // compacted
    e.extend(opt_u64(Some(60_000))); // default_ttl_ms
    e.extend(opt_u64(Some(3_600_000))); // tier_after_ms (v1)
    e.extend(opt_u64(None)); // local_retention_bytes (v1)
    e.extend_from_slice(&2u32.to_le_bytes()); // partition count
    for (partition, start, end, durable, shard, disk) in [
        (0u32, 0u64, 43u64, 42u64, 1u32, 4096u64),
        (1, 0, 1043, 1042, 0, 8192),
    ] {
        e.extend_from_slice(&partition.to_le_bytes());
        e.extend_from_slice(&start.to_le_bytes());
        e.extend_from_slice(&end.to_le_bytes());
        e.extend_from_slice(&durable.to_le_bytes());
        e.extend_from_slice(&shard.to_le_bytes());
        e.extend_from_slice(&disk.to_le_bytes());
        if partition == 0 {
            e.push(0); // remote absent
        } else {
            e.push(1); // remote present
            e.extend_from_slice(&1000u64.to_le_bytes()); // local_start_offset
            e.extend_from_slice(&0u64.to_le_bytes()); // remote_start_offset
            e.extend_from_slice(&1000u64.to_le_bytes()); // remote_end_offset
            e.extend_from_slice(&2u32.to_le_bytes()); // remote_segments
            e.extend_from_slice(&262_144u64.to_le_bytes()); // remote_data_bytes
            e.extend_from_slice(&65_536u64.to_le_bytes()); // remote_object_bytes
        }
    }
    let length = u32::try_from(e.len() - 4).expect("small");
    e[..4].copy_from_slice(&length.to_le_bytes());
    assert_eq!(golden("resp_describe_topic_v1"), e);
}

/// Metadata v1 written out by hand: each partition is followed by a `placement` presence bool
/// and, when present, `leader u32, leader_epoch u32, replicas list<u32>, in_sync list<u32>`.
#[test]
fn metadata_v1_layout_matches_the_spec() {
    let mut e = vec![0u8; 4]; // length, filled in below
    e.extend_from_slice(&[1, 0, 1, 0, 2, 0, 0, 0, 1, 0]); // Metadata, v1, cid 2, response
    e.extend_from_slice(&[0, 0, 0, 0]); // error NONE, empty message
    e.extend_from_slice(&1u32.to_le_bytes()); // node_id
    e.extend_from_slice(&2u32.to_le_bytes()); // shards
    e.extend_from_slice(&1u32.to_le_bytes()); // broker count
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&[14, 0]);
    e.extend_from_slice(b"127.0.0.1:7070");
    e.extend_from_slice(&1u32.to_le_bytes()); // topic count
    e.extend_from_slice(&[6, 0]);
    e.extend_from_slice(b"orders");
    e.extend_from_slice(&0xa3u64.to_le_bytes());
    e.extend_from_slice(&2u32.to_le_bytes()); // partition count
    e.extend_from_slice(&0u32.to_le_bytes()); // partition 0
    e.extend_from_slice(&0u32.to_le_bytes()); // shard 0
    e.push(1); // placement present
    e.extend_from_slice(&1u32.to_le_bytes()); // leader
    e.extend_from_slice(&3u32.to_le_bytes()); // leader_epoch
    e.extend_from_slice(&3u32.to_le_bytes()); // replicas count
    for node in [1u32, 2, 3] {
        e.extend_from_slice(&node.to_le_bytes());
    }
    e.extend_from_slice(&2u32.to_le_bytes()); // in_sync count
    for node in [1u32, 3] {
        e.extend_from_slice(&node.to_le_bytes());
    }
    e.extend_from_slice(&1u32.to_le_bytes()); // partition 1
    e.extend_from_slice(&1u32.to_le_bytes()); // shard 1
    e.push(0); // placement absent
    let length = u32::try_from(e.len() - 4).expect("small");
    e[..4].copy_from_slice(&length.to_le_bytes());
    assert_eq!(golden("resp_metadata_v1"), e);
}

/// MetaFetch written out by hand: the request is `since_version u64`; the reply is the head,
/// then `version u64, leader_id u64, state bytes`.
#[test]
fn meta_fetch_layout_matches_the_spec() {
    let mut e = vec![18, 0, 0, 0, 15, 0, 0, 0, 17, 0, 0, 0, 0, 0]; // MetaFetch v0 request, cid 17
    e.extend_from_slice(&41u64.to_le_bytes());
    assert_eq!(golden("req_meta_fetch"), e);

    let state = common::samples::META_STATE;
    let mut e = Vec::new();
    let length = 10 + 4 + 8 + 8 + 4 + u32::try_from(state.len()).expect("small");
    e.extend_from_slice(&length.to_le_bytes());
    e.extend_from_slice(&[15, 0, 0, 0, 17, 0, 0, 0, 1, 0]); // MetaFetch, v0, cid 17, response
    e.extend_from_slice(&[0, 0, 0, 0]); // error NONE, empty message
    e.extend_from_slice(&42u64.to_le_bytes()); // version
    e.extend_from_slice(&2u64.to_le_bytes()); // leader_id
    e.extend_from_slice(&u32::try_from(state.len()).expect("small").to_le_bytes());
    e.extend_from_slice(state);
    assert_eq!(golden("resp_meta_fetch"), e);
}

fn push_opt_u32(e: &mut Vec<u8>, value: Option<u32>) {
    match value {
        Some(v) => {
            e.push(1);
            e.extend_from_slice(&v.to_le_bytes());
        }
        None => e.push(0),
    }
}

/// ReplicaFetch written out by hand from docs/protocol.md. Request: `topic str, partition u32,
/// replica u32, leader_epoch u32, fetch_offset u64, last_fetched_epoch opt_u32, durable_offset
/// u64, max_bytes u32, max_wait_ms u32`. Reply: the head, then `leader_epoch u32, fetch_offset
/// u64, last_fetched_epoch opt_u32, high_watermark u64, log_start_offset u64, diverging (bool,
/// epoch u32, end_offset u64), batch_epochs list<(epoch u32, base_offset u64, next_offset u64)>,
/// batches bytes`.
#[test]
fn replica_fetch_layout_matches_the_spec() {
    use common::replica_fetch::{BATCHES, BATCH_EPOCHS};

    let mut e = vec![0u8; 4]; // length, filled in below
    e.extend_from_slice(&[16, 0, 0, 0, 18, 0, 0, 0, 0, 0]); // ReplicaFetch, v0, cid 18, request
    e.extend_from_slice(&[6, 0]);
    e.extend_from_slice(b"orders");
    e.extend_from_slice(&2u32.to_le_bytes()); // partition
    e.extend_from_slice(&3u32.to_le_bytes()); // replica
    e.extend_from_slice(&5u32.to_le_bytes()); // leader_epoch
    e.extend_from_slice(&41u64.to_le_bytes()); // fetch_offset
    push_opt_u32(&mut e, Some(4)); // last_fetched_epoch
    e.extend_from_slice(&40u64.to_le_bytes()); // durable_offset
    e.extend_from_slice(&1_048_576u32.to_le_bytes()); // max_bytes
    e.extend_from_slice(&500u32.to_le_bytes()); // max_wait_ms
    let length = u32::try_from(e.len() - 4).expect("small");
    e[..4].copy_from_slice(&length.to_le_bytes());
    assert_eq!(golden("req_replica_fetch"), e);

    let reply_head = |cid: u8| {
        let mut e = vec![0u8; 4];
        e.extend_from_slice(&[16, 0, 0, 0, cid, 0, 0, 0, 1, 0]); // ReplicaFetch, v0, response
        e.extend_from_slice(&[0, 0, 0, 0]); // error NONE, empty message
        e.extend_from_slice(&5u32.to_le_bytes()); // leader_epoch
        e
    };
    let finish = |mut e: Vec<u8>| {
        let length = u32::try_from(e.len() - 4).expect("small");
        e[..4].copy_from_slice(&length.to_le_bytes());
        e
    };

    let mut e = reply_head(18);
    e.extend_from_slice(&41u64.to_le_bytes()); // fetch_offset
    push_opt_u32(&mut e, Some(4)); // last_fetched_epoch
    e.extend_from_slice(&41u64.to_le_bytes()); // high_watermark
    e.extend_from_slice(&0u64.to_le_bytes()); // log_start_offset
    e.push(0); // diverging absent
    e.extend_from_slice(&2u32.to_le_bytes()); // batch_epochs count
    for b in BATCH_EPOCHS {
        e.extend_from_slice(&b.epoch.to_le_bytes());
        e.extend_from_slice(&b.base_offset.to_le_bytes());
        e.extend_from_slice(&b.next_offset.to_le_bytes());
    }
    e.extend_from_slice(&u32::try_from(BATCHES.len()).expect("small").to_le_bytes());
    e.extend_from_slice(BATCHES);
    assert_eq!(golden("resp_replica_fetch"), finish(e));

    let mut e = reply_head(19);
    e.extend_from_slice(&50u64.to_le_bytes()); // fetch_offset
    push_opt_u32(&mut e, Some(4)); // last_fetched_epoch
    e.extend_from_slice(&44u64.to_le_bytes()); // high_watermark
    e.extend_from_slice(&0u64.to_le_bytes()); // log_start_offset
    e.push(1); // diverging present
    e.extend_from_slice(&4u32.to_le_bytes()); // epoch
    e.extend_from_slice(&43u64.to_le_bytes()); // end_offset
    e.extend_from_slice(&0u32.to_le_bytes()); // no batch epochs
    e.extend_from_slice(&0u32.to_le_bytes()); // no batches
    let bytes = finish(e);
    assert_eq!(bytes.len(), 14 + 4 + 4 + 8 + 5 + 8 + 8 + 13 + 4 + 4);
    assert_eq!(golden("resp_replica_fetch_diverging"), bytes);
}

/// The v1 vectors (unchanged since v1) decode with the v2-only replication settings absent.
#[test]
fn v1_vectors_decode_with_the_replication_settings_absent() {
    let bytes = golden("req_create_topic_v1");
    let frame = common::decode_one(&bytes);
    assert_eq!(frame.header.api_version, 1);
    let Body::Request(Request::CreateTopic { config, .. }) = frame.body else {
        panic!("req_create_topic_v1 is a CreateTopic request: {frame:?}");
    };
    assert_eq!(config, common::samples::TIERED_CONFIG);
    assert_eq!((config.replication_factor, config.min_insync), (None, None));

    let bytes = golden("resp_describe_topic_v1");
    let Body::Response(Response::DescribeTopic {
        topic: Some(topic), ..
    }) = common::decode_one(&bytes).body
    else {
        panic!("resp_describe_topic_v1 describes a topic");
    };
    assert_eq!(topic.config.tier_after_ms, Some(3_600_000));
    assert_eq!(
        (topic.config.replication_factor, topic.config.min_insync),
        (None, None)
    );
}

fn opt_u16(value: Option<u16>) -> Vec<u8> {
    match value {
        Some(v) => [&[1u8][..], &v.to_le_bytes()].concat(),
        None => vec![0],
    }
}

/// CreateTopic v2 written out by hand from docs/protocol.md: the v1 body, then
/// `replication_factor opt_u16, min_insync opt_u16`.
#[test]
fn create_topic_v2_appends_the_replication_settings_to_the_v1_body() {
    let mut expected = Vec::new();
    expected.extend(opt_u16(Some(3)));
    expected.extend(opt_u16(Some(2)));
    assert_eq!(expected, [1, 3, 0, 1, 2, 0]);
    let v1 = golden("req_create_topic_v1");
    let appended = expected.len();
    let expected = [with_header(v1, 2, appended), expected].concat();
    assert_eq!(golden("req_create_topic_v2"), expected);
}

/// DescribeTopic v2: the v1 reply's config followed by the two replication settings, the
/// partitions exactly as at v1. Built from the v1 vector (same topic and partitions) by
/// inserting `replication_factor = 3, min_insync absent` after the v1 config.
#[test]
fn describe_topic_v2_inserts_the_replication_settings_after_the_v1_config() {
    let v1 = golden("resp_describe_topic_v1");
    // Header 14, head 4, presence 1, name 2 + 6, topic id 8, then the v1 config: partitions 4,
    // retention_ms 9, retention_bytes (absent) 1, segment_bytes 9, compacted 1, default_ttl_ms
    // 9, tier_after_ms 9, local_retention_bytes (absent) 1.
    let config_end = 14 + 4 + 1 + 8 + 8 + 4 + 9 + 1 + 9 + 1 + 9 + 9 + 1;
    let inserted = [opt_u16(Some(3)), opt_u16(None)].concat();
    let mut expected = with_header(v1[..config_end].to_vec(), 2, inserted.len());
    expected.extend_from_slice(&inserted);
    expected.extend_from_slice(&v1[config_end..]);
    assert_eq!(golden("resp_describe_topic_v2"), expected);
}

/// Produce v1 has the v0 layout: `req_produce_v1` is `req_produce` with `api_version` 1.
#[test]
fn produce_v1_is_the_v0_layout_at_version_1() {
    assert_eq!(
        golden("req_produce_v1"),
        with_header(golden("req_produce"), 1, 0)
    );
    let bytes = golden("resp_produce_not_enough_replicas_v1");
    assert_eq!(&bytes[4..8], [6, 0, 1, 0]); // Produce, v1
    assert_eq!(&bytes[14..16], [21, 0]); // NOT_ENOUGH_REPLICAS
}

/// AlterInSync written out by hand from docs/protocol.md. Request: `topic str, partition u32,
/// leader u32, leader_epoch u32, isr_version u32, in_sync list<u32>` (v1 adds `successor u32`).
/// Reply: the head, then `isr_version u32, in_sync list<u32>`.
#[test]
fn alter_in_sync_layout_matches_the_spec() {
    let finish = |mut e: Vec<u8>| {
        let length = u32::try_from(e.len() - 4).expect("small");
        e[..4].copy_from_slice(&length.to_le_bytes());
        e
    };
    let mut e = vec![0u8; 4]; // length, filled in below
    e.extend_from_slice(&[17, 0, 0, 0, 20, 0, 0, 0, 0, 0]); // AlterInSync, v0, cid 20, request
    e.extend_from_slice(&[6, 0]);
    e.extend_from_slice(b"orders");
    e.extend_from_slice(&2u32.to_le_bytes()); // partition
    e.extend_from_slice(&1u32.to_le_bytes()); // leader
    e.extend_from_slice(&5u32.to_le_bytes()); // leader_epoch
    e.extend_from_slice(&7u32.to_le_bytes()); // isr_version
    e.extend_from_slice(&2u32.to_le_bytes()); // in_sync count
    for node in [1u32, 3] {
        e.extend_from_slice(&node.to_le_bytes());
    }
    let bytes = finish(e);
    assert_eq!(bytes.len(), 14 + 8 + 16 + 4 + 8);
    assert_eq!(golden("req_alter_in_sync"), bytes);

    let mut e = vec![0u8; 4];
    e.extend_from_slice(&[17, 0, 0, 0, 20, 0, 0, 0, 1, 0]); // AlterInSync, v0, cid 20, response
    e.extend_from_slice(&[0, 0, 0, 0]); // error NONE, empty message
    e.extend_from_slice(&8u32.to_le_bytes()); // isr_version
    e.extend_from_slice(&2u32.to_le_bytes()); // in_sync count
    for node in [1u32, 3] {
        e.extend_from_slice(&node.to_le_bytes());
    }
    assert_eq!(golden("resp_alter_in_sync"), finish(e));

    // v1: the same fields, then `successor u32`; here a hand-over to node 3 (no set).
    let mut e = vec![0u8; 4];
    e.extend_from_slice(&[17, 0, 1, 0, 21, 0, 0, 0, 0, 0]); // AlterInSync, v1, cid 21, request
    e.extend_from_slice(&[6, 0]);
    e.extend_from_slice(b"orders");
    for field in [2u32, 1, 5, 7] {
        e.extend_from_slice(&field.to_le_bytes()); // partition, leader, leader_epoch, isr_version
    }
    e.extend_from_slice(&0u32.to_le_bytes()); // in_sync count
    e.extend_from_slice(&3u32.to_le_bytes()); // successor
    assert_eq!(golden("req_alter_in_sync_hand_over_v1"), finish(e));
}
