//! Decodes arbitrary bytes as a frame. Must never panic; anything accepted must re-encode to the
//! very same bytes (the encoding is canonical); a skippable error must point inside the input.
//! Keep in sync with net/tests/fuzz_corpus.rs, which replays the committed corpus.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use net::codec::{decode, encode, Decoded, Limits};

fuzz_target!(|data: &[u8]| {
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
});
