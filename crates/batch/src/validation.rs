//! Whole-batch validation: header rules, exact length and CRC32C.
//!
//! Invariants: [`validate`] accepts a slice only if it is exactly one batch, its header
//! passes [`BatchHeader::parse`], and the CRC32C of bytes `CRC_START_POSITION..` equals
//! the stored `crc`. It never looks inside the records, compressed or not: the leader stores
//! what the producer sent (DESIGN.md section 2).

use crate::error::{Error, Result};
use crate::header::{BatchHeader, CRC_START_POSITION};

/// CRC32C (Castagnoli, the iSCSI polynomial), the checksum Kafka's RecordBatch v2 uses.
#[must_use]
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

/// Validates exactly one whole batch and returns its header.
///
/// Checks, in order: the header rules of [`BatchHeader::parse`]; that `bytes.len()` equals
/// `LOG_OVERHEAD_BYTES + batch_length`; that the CRC32C of `bytes[CRC_START_POSITION..]`
/// equals the stored `crc`. Records are not parsed (see [`crate::records`]).
pub fn validate(bytes: &[u8]) -> Result<BatchHeader> {
    let header = BatchHeader::parse(bytes)?;
    let header_size_bytes = header.size_bytes();
    if bytes.len() != header_size_bytes {
        let given_size_bytes = bytes.len();
        return Err(Error::LengthMismatch {
            header_size_bytes,
            given_size_bytes,
        });
    }
    // parse() guaranteed at least HEADER_SIZE_BYTES, so the range is in bounds.
    let computed = crc32c(&bytes[CRC_START_POSITION..]);
    if computed != header.crc {
        return Err(Error::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{GOLDEN, GOLDEN_BASE_TIMESTAMP_MS};
    use crate::header::{Compression, HEADER_SIZE_BYTES, LOG_OVERHEAD_BYTES};
    use crate::record::{records, Header};
    use crate::BatchBuilder;

    // Checks the CRC32C implementation against the standard check value of the CRC
    // catalogue (CRC-32/ISCSI of "123456789"), and the empty input.
    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    // Golden test: the hand-written batch validates with the expected header fields and
    // its two records decode to exactly what the comments above describe.
    #[test]
    fn golden_batch_validates_and_iterates() {
        let header = validate(&GOLDEN).unwrap();
        assert_eq!(header.size_bytes(), GOLDEN.len());
        assert_eq!(header.crc, 0x99a4_0e96);
        assert_eq!(header.partition_leader_epoch, -1);
        assert_eq!(header.record_count(), 2);
        assert_eq!(header.records_count, 2);
        assert_eq!(header.base_timestamp, GOLDEN_BASE_TIMESTAMP_MS);
        assert_eq!(header.max_timestamp, GOLDEN_BASE_TIMESTAMP_MS + 300);
        assert_eq!(header.compression(), Compression::None);
        assert!(!header.is_control());
        assert!(!header.is_transactional());

        let all: Vec<_> = records(&GOLDEN).unwrap().collect::<Result<_>>().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].offset_delta, 0);
        assert_eq!(all[0].timestamp_delta, 0);
        assert_eq!(all[0].key, None);
        assert_eq!(all[0].value, Some(&b"hi"[..]));
        assert!(all[0].headers.is_empty());
        assert_eq!(all[1].offset_delta, 1);
        assert_eq!(all[1].timestamp_delta, 300);
        assert_eq!(all[1].key, Some(&b"k"[..]));
        assert_eq!(all[1].value, None);
        assert_eq!(
            all[1].headers,
            [Header {
                key: b"h",
                value: Some(b"v")
            }]
        );
    }

    // Checks that the builder produces the golden bytes exactly when given the same records,
    // so builder and hand-written spec agree byte for byte.
    #[test]
    fn builder_reproduces_golden_batch() {
        let mut builder = BatchBuilder::new(GOLDEN_BASE_TIMESTAMP_MS);
        builder.push(GOLDEN_BASE_TIMESTAMP_MS, None, Some(b"hi"), &[]);
        builder.push(
            GOLDEN_BASE_TIMESTAMP_MS + 300,
            Some(b"k"),
            None,
            &[(b"h", Some(b"v"))],
        );
        assert_eq!(builder.build(), GOLDEN);
    }

    // Checks that flipping any single bit in the CRC-covered range, or in the stored CRC, is
    // reported as a CrcMismatch carrying both values (header rules permitting: flips that
    // break a header rule first are reported as that rule instead, and must still fail).
    #[test]
    fn any_bit_flip_in_crc_range_fails() {
        for position in CRC_START_POSITION - 4..GOLDEN.len() {
            for bit in 0..8 {
                let mut bytes = GOLDEN;
                bytes[position] ^= 1 << bit;
                match validate(&bytes) {
                    Err(Error::CrcMismatch { stored, computed }) => {
                        assert_ne!(stored, computed);
                        assert_eq!(computed, crc32c(&bytes[CRC_START_POSITION..]));
                    }
                    Err(_) => assert!(position < HEADER_SIZE_BYTES, "position={position}"),
                    Ok(_) => panic!("flip at position={position} bit={bit} accepted"),
                }
            }
        }
    }

    // Table: slices that are not exactly one batch (one byte short, one byte extra, two
    // batches back to back) are LengthMismatch with both sizes, never a CRC error.
    #[test]
    fn length_mismatch_cases() {
        let mut extra = GOLDEN.to_vec();
        extra.push(0);
        let mut twice = GOLDEN.to_vec();
        twice.extend_from_slice(&GOLDEN);
        let cases: [(&str, &[u8]); 3] = [
            ("one short", &GOLDEN[..GOLDEN.len() - 1]),
            ("one extra", &extra),
            ("two batches", &twice),
        ];
        for (name, bytes) in cases {
            let expected = Error::LengthMismatch {
                header_size_bytes: GOLDEN.len(),
                given_size_bytes: bytes.len(),
            };
            assert_eq!(validate(bytes), Err(expected), "{name}");
        }
        assert_eq!(LOG_OVERHEAD_BYTES + 71, GOLDEN.len());
    }

    // Checks that validate() applies the header rules before anything else: a short slice
    // is Truncated, a bad magic is UnsupportedMagic even though the CRC also fails.
    #[test]
    fn header_rules_come_first() {
        let expected = Error::Truncated {
            needed_bytes: HEADER_SIZE_BYTES,
            available_bytes: 60,
        };
        assert_eq!(validate(&GOLDEN[..60]), Err(expected));
        let mut bytes = GOLDEN;
        bytes[16] = 1;
        assert_eq!(validate(&bytes), Err(Error::UnsupportedMagic { magic: 1 }));
    }
}
