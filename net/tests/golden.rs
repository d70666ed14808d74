//! Golden byte vectors: `tests/golden/<name>.bin` holds the exact bytes of every sample frame
//! (tests/common/samples.rs), `<name>.txt` its decoded form, and `MANIFEST.tsv` one line per
//! vector. SDKs in other languages decode the `.bin` files and encode the same values back.
//!
//! Regenerate after an intentional format change (and update docs/protocol.md):
//! `SPRAWL_UPDATE_GOLDEN=1 cargo test -p net --test golden`

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use net::codec::{ApiKey, Body};

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
            std::fs::write(dir.join(name), contents).expect("write golden file");
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
