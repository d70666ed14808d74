//! The batch checksum (`format::batch_crc32c`, computed with `crc-fast`) is CRC32C: the same value
//! as the `crc32c` crate's for every length and alignment, so logs written before the switch (and
//! the golden files) still verify.

use proptest::prelude::*;
use storage::format::batch_crc32c;

#[test]
fn known_answers() {
    // RFC 3720 (iSCSI), B.4: 32 bytes of zeros, of 0xff, ascending and descending.
    assert_eq!(batch_crc32c(&[0u8; 32]), 0x8a91_36aa);
    assert_eq!(batch_crc32c(&[0xffu8; 32]), 0x62a8_ab43);
    let ascending: Vec<u8> = (0..32).collect();
    assert_eq!(batch_crc32c(&ascending), 0x46dd_794e);
    let descending: Vec<u8> = (0..32).rev().collect();
    assert_eq!(batch_crc32c(&descending), 0x113f_db5c);
    assert_eq!(batch_crc32c(b""), 0);
    assert_eq!(batch_crc32c(b"123456789"), 0xe306_9283);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn same_as_the_crc32c_crate(
        data in proptest::collection::vec(any::<u8>(), 0..40_000),
        skip in 0usize..64,
    ) {
        let bytes = &data[skip.min(data.len())..];
        prop_assert_eq!(batch_crc32c(bytes), crc32c::crc32c(bytes));
    }
}
