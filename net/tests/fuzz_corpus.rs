//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/decode_frame/`) with the same checks as
//! the fuzz target `fuzz/fuzz_targets/decode_frame.rs`, so every input the fuzzer ever kept stays
//! a regression test under plain `cargo test`.

use std::path::PathBuf;

use bytes::BytesMut;
use net::codec::{decode, encode, Decoded, Limits};

fn check(data: &[u8]) {
    for limits in [Limits::default(), Limits::new(256)] {
        match decode(data, &limits) {
            Ok(Decoded::Frame(frame, used)) => {
                assert!(used <= data.len());
                let mut out = BytesMut::new();
                let written =
                    encode(&frame, &mut out, &limits).expect("a decoded frame re-encodes");
                assert_eq!(written, used);
                assert_eq!(&out[..], &data[..used]);
            }
            Ok(Decoded::Incomplete { needed }) => assert!(needed > 0),
            Err(e) => {
                if let Some((_, frame_bytes)) = e.skippable() {
                    assert!(frame_bytes <= data.len());
                }
            }
        }
    }
}

#[test]
fn committed_fuzz_corpus_replays_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode_frame");
    let mut replayed = 0;
    let mut frames = 0;
    for entry in std::fs::read_dir(&dir).expect("the fuzz corpus is committed") {
        let path = entry.expect("readable corpus dir").path();
        let data = std::fs::read(&path).expect("readable corpus file");
        check(&data);
        if matches!(decode(&data, &Limits::default()), Ok(Decoded::Frame(..))) {
            frames += 1;
        }
        replayed += 1;
    }
    assert!(
        replayed >= 100,
        "only {replayed} corpus files in {}",
        dir.display()
    );
    assert!(
        frames > 0,
        "the corpus must contain valid frames, not only rejects"
    );
}
