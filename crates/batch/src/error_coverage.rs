//! Proof that every [`Error`] variant is reachable from crafted bytes.
//!
//! Invariant: `variant_name` matches without a wildcard, so adding a variant to [`Error`]
//! fails to compile here until a crafted input that triggers it is added to the table.

use crate::fixture::{batch_with_records, record, GOLDEN, MINIMAL_RECORD_BODY};
use crate::{peek_size_bytes, records, validate, BatchHeader, Error, Result};

fn variant_name(error: &Error) -> &'static str {
    match error {
        Error::Truncated { .. } => "Truncated",
        Error::BatchLengthTooSmall { .. } => "BatchLengthTooSmall",
        Error::UnsupportedMagic { .. } => "UnsupportedMagic",
        Error::UnknownCompression { .. } => "UnknownCompression",
        Error::NegativeLastOffsetDelta { .. } => "NegativeLastOffsetDelta",
        Error::NegativeRecordsCount { .. } => "NegativeRecordsCount",
        Error::LengthMismatch { .. } => "LengthMismatch",
        Error::CrcMismatch { .. } => "CrcMismatch",
        Error::Compressed { .. } => "Compressed",
        Error::RecordTruncated { .. } => "RecordTruncated",
        Error::VarintOverflow { .. } => "VarintOverflow",
        Error::LengthInvalid { .. } => "LengthInvalid",
        Error::RecordTrailingBytes { .. } => "RecordTrailingBytes",
        Error::RecordsMissing { .. } => "RecordsMissing",
        Error::BatchTrailingBytes { .. } => "BatchTrailingBytes",
    }
}

/// Number of variants `variant_name` knows; the table below must name each one.
const VARIANT_COUNT: usize = 15;

/// The golden batch with `bytes` written at `position` (CRC left as is).
fn golden_with(position: usize, bytes: &[u8]) -> Vec<u8> {
    let mut batch = GOLDEN.to_vec();
    batch[position..position + bytes.len()].copy_from_slice(bytes);
    batch
}

/// Validates, then iterates every record, returning the first error.
fn validate_and_read(batch: &[u8]) -> Result<usize> {
    validate(batch)?;
    records(batch)?.try_fold(0, |count, record| record.map(|_| count + 1))
}

/// Crafted inputs for the variants that the header and whole-batch checks raise, with a
/// part of the message that must name the offending value.
fn batch_level_cases() -> Vec<(&'static str, Error, &'static str)> {
    let one = record(&MINIMAL_RECORD_BODY);
    let batch_length_minus_one = golden_with(8, &[0xff; 4]);
    let last_offset_delta_min = golden_with(23, &[0x80, 0, 0, 0]);
    vec![
        (
            "Truncated",
            BatchHeader::parse(&GOLDEN[..10]).unwrap_err(),
            "10 bytes given",
        ),
        (
            "BatchLengthTooSmall",
            peek_size_bytes(&batch_length_minus_one).unwrap_err(),
            "-1",
        ),
        (
            "UnsupportedMagic",
            validate(&golden_with(16, &[0])).unwrap_err(),
            "magic 0",
        ),
        (
            "UnknownCompression",
            validate(&golden_with(22, &[7])).unwrap_err(),
            "codec 7",
        ),
        (
            "NegativeLastOffsetDelta",
            validate(&last_offset_delta_min).unwrap_err(),
            "-2147483648",
        ),
        (
            "NegativeRecordsCount",
            validate(&golden_with(57, &[0xff; 4])).unwrap_err(),
            "-1",
        ),
        (
            "LengthMismatch",
            validate(&GOLDEN[..82]).unwrap_err(),
            "82 were given",
        ),
        (
            "CrcMismatch",
            validate(&golden_with(70, b"x")).unwrap_err(),
            "0x99a40e96",
        ),
        (
            "Compressed",
            records(&batch_with_records(4, 1, &one)).unwrap_err(),
            "Zstd",
        ),
    ]
}

/// Crafted record regions (inside a correct header and CRC) for the variants that record
/// iteration raises.
fn record_level_cases() -> Vec<(&'static str, Error, &'static str)> {
    let one = record(&MINIMAL_RECORD_BODY);
    let read = |records_count, record_bytes: &[u8]| {
        validate_and_read(&batch_with_records(0, records_count, record_bytes)).unwrap_err()
    };
    vec![
        ("RecordTruncated", read(1, &[0xff]), "position 61"),
        ("VarintOverflow", read(1, &[0xff; 6]), "32-bit"),
        ("LengthInvalid", read(1, &[0x03]), "length -2"),
        (
            "RecordTrailingBytes",
            read(1, &record(&[0, 0, 0, 1, 1, 0, 9])),
            "declares 7 bytes",
        ),
        (
            "RecordsMissing",
            read(5, &one),
            "declares 5 records but only 1",
        ),
        (
            "BatchTrailingBytes",
            read(1, &[one.clone(), one].concat()),
            "7 bytes follow",
        ),
    ]
}

// Table: one crafted input per Error variant, each run through the public API a caller
// would use, checking the exact variant and that its message carries the offending value.
#[test]
fn every_variant_is_reachable() {
    let cases = [batch_level_cases(), record_level_cases()].concat();
    assert_eq!(cases.len(), VARIANT_COUNT);
    for (name, error, message_part) in &cases {
        assert_eq!(variant_name(error), *name, "{error}");
        let message = error.to_string();
        assert!(
            message.contains(message_part),
            "{name}: {message:?} lacks {message_part:?}"
        );
    }
    let mut names: Vec<_> = cases.iter().map(|(name, _, _)| *name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), VARIANT_COUNT, "a variant is listed twice");
}
