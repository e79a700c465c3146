//! Fuzzes every reader of `ringlog-batch` on arbitrary bytes: none may panic, and their
//! answers must agree (a batch that validates has the size `peek_size_bytes` reports and
//! the header `parse` returns; record iteration ends at its first error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringlog_batch::{peek_size_bytes, records, validate, BatchHeader};

fuzz_target!(|bytes: &[u8]| {
    let peeked = peek_size_bytes(bytes);
    let parsed = BatchHeader::parse(bytes);
    if let (Ok(Some(size_bytes)), Ok(header)) = (&peeked, &parsed) {
        assert_eq!(*size_bytes, header.size_bytes());
    }
    if let Ok(header) = validate(bytes) {
        assert_eq!(Ok(header), parsed);
        assert_eq!(bytes.len(), header.size_bytes());
        assert!(header.record_count() >= 1);
        std::hint::black_box(header.compression());
    }
    // records() does not check the CRC, so the fuzzer reaches the record parser without
    // having to forge a checksum.
    if let Ok(iterator) = records(bytes) {
        let mut failed = false;
        for record in iterator {
            assert!(!failed, "an item after an error");
            match record {
                Ok(record) => {
                    std::hint::black_box(record);
                }
                Err(_) => failed = true,
            }
        }
    }
});
