//! The pure decoders of `storage::format` (batch header, records, segment header, index files,
//! checkpoint) on arbitrary bytes: no panic, canonical round trips. The check lives in
//! `benches::storage_fuzz::check_format`, shared with the corpus replay test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    benches::storage_fuzz::check_format(data);
});
