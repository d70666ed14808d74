//! Arbitrary bytes as a segment file (byte 0 selects header/CRC fix-ups), recovered by
//! `PartitionLog::open`, then read, decoded, appended to, closed and reopened. The check lives in
//! `benches::storage_fuzz::check_segment_file`, shared with the corpus replay test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    benches::storage_fuzz::check_segment_file(data);
});
