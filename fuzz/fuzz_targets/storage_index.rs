//! Arbitrary `.index` / `.timeindex` files (byte 0 selects valid headers bound to the segment)
//! beside real sealed, checkpointed segments; the log is opened, read and searched by timestamp
//! against a full scan. The check lives in `benches::storage_fuzz::check_index_files`, shared with
//! the corpus replay test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    benches::storage_fuzz::check_index_files(data);
});
