//! Records of an uncompressed batch, borrowed from the batch bytes.
//!
//! Kafka's record layout (documentation, "Message Format: Record"), after the 61-byte
//! header. `attributes` is a plain `i8`, `timestamp_delta` a zigzag varlong, and every other
//! integer a zigzag varint:
//!
//! ```text
//! length  attributes:i8  timestamp_delta  offset_delta
//! key_length  key  value_length  value          (length -1 = null)
//! header_count  { header_key_length  header_key  header_value_length  header_value }*
//! ```
//!
//! Invariants: iteration never panics and never reads outside the batch. A record's fields
//! must use exactly its declared length; the batch must hold exactly `records_count`
//! records. The first malformed record ends the iteration with its error (the iterator is
//! fused). Header keys may not be null; keys and values may. Only -1 means null: Kafka's
//! writers emit nothing else, so any other negative length is refused as corruption. The CRC
//! is not checked here: call [`crate::validate`] first on untrusted bytes.

use std::iter::FusedIterator;

use crate::error::{Error, Result};
use crate::header::{BatchHeader, Compression, HEADER_SIZE_BYTES};
use crate::varint::Reader;

/// Smallest encoding of a record header: two one-byte lengths.
const HEADER_SIZE_BYTES_MIN: usize = 2;

/// One record of an uncompressed batch, borrowed from the batch bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Offset of the record minus the batch's `base_offset`.
    pub offset_delta: i32,
    /// Timestamp of the record minus the batch's `base_timestamp` (ms).
    pub timestamp_delta: i64,
    /// The key, `None` if null.
    pub key: Option<&'a [u8]>,
    /// The value, `None` if null (a tombstone on compacted topics).
    pub value: Option<&'a [u8]>,
    /// The record headers, in order.
    pub headers: Vec<Header<'a>>,
}

impl Record<'_> {
    /// The record's timestamp (ms) given its batch's `base_timestamp`. Wraps on overflow,
    /// as Kafka's Java arithmetic does.
    #[must_use]
    pub fn timestamp_ms(&self, base_timestamp_ms: i64) -> i64 {
        base_timestamp_ms.wrapping_add(self.timestamp_delta)
    }
}

/// One header of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header key (Kafka requires it to be non-null; it is a UTF-8 string by convention,
    /// which is not checked here).
    pub key: &'a [u8],
    /// The header value, `None` if null.
    pub value: Option<&'a [u8]>,
}

/// Iterator over the records of one uncompressed batch; see [`records`].
#[derive(Clone, Debug)]
pub struct Records<'a> {
    reader: Reader<'a>,
    records_count: i32,
    records_left: u32,
    finished: bool,
}

/// Iterates the records of one uncompressed batch.
///
/// Checks the header rules of [`BatchHeader::parse`] and that `batch` is exactly one batch
/// ([`Error::LengthMismatch`]); a compressed batch is [`Error::Compressed`]. Does not check
/// the CRC. Each item is a `Result`: malformed varints and lengths are errors, never panics.
pub fn records(batch: &[u8]) -> Result<Records<'_>> {
    let header = BatchHeader::parse(batch)?;
    let header_size_bytes = header.size_bytes();
    if batch.len() != header_size_bytes {
        let given_size_bytes = batch.len();
        return Err(Error::LengthMismatch {
            header_size_bytes,
            given_size_bytes,
        });
    }
    let compression = header.compression();
    if compression != Compression::None {
        return Err(Error::Compressed { compression });
    }
    let records_count = header.records_count;
    let records_left =
        u32::try_from(records_count).map_err(|_| Error::NegativeRecordsCount { records_count })?;
    Ok(Records {
        reader: Reader::new(batch, HEADER_SIZE_BYTES, header_size_bytes),
        records_count,
        records_left,
        finished: false,
    })
}

impl<'a> Records<'a> {
    /// The next record, `Ok(None)` at a clean end.
    fn next_record(&mut self) -> Result<Option<Record<'a>>> {
        let remaining_bytes = self.reader.remaining_bytes();
        if self.records_left == 0 {
            if remaining_bytes == 0 {
                return Ok(None);
            }
            let records_count = self.records_count;
            return Err(Error::BatchTrailingBytes {
                records_count,
                unused_bytes: remaining_bytes,
            });
        }
        if remaining_bytes == 0 {
            let records_count = self.records_count;
            let records_found = self.records_found();
            return Err(Error::RecordsMissing {
                records_count,
                records_found,
            });
        }
        let record = read_record(&mut self.reader)?;
        self.records_left -= 1;
        Ok(Some(record))
    }

    fn records_found(&self) -> u64 {
        // records_left starts at records_count (checked non-negative) and only decreases.
        let records_count = u64::try_from(self.records_count).unwrap_or(0);
        records_count - u64::from(self.records_left)
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let next = self.next_record().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.finished = true;
        }
        next
    }
}

impl FusedIterator for Records<'_> {}

/// Reads one length-prefixed record and checks its fields use exactly that length.
fn read_record<'a>(batch: &mut Reader<'a>) -> Result<Record<'a>> {
    let position = batch.position();
    let length_bytes = read_length(batch, "record length")?;
    let mut reader = batch.split(length_bytes);
    // Record attributes are unused in v2 (Kafka documentation); they are read and ignored.
    reader.read_i8("record attributes")?;
    let timestamp_delta = reader.read_varlong("timestamp delta")?;
    let offset_delta = reader.read_varint("offset delta")?;
    let key = read_nullable(&mut reader, "key length", "key")?;
    let value = read_nullable(&mut reader, "value length", "value")?;
    let headers = read_headers(&mut reader)?;
    let unused_bytes = reader.remaining_bytes();
    if unused_bytes != 0 {
        let used_bytes = length_bytes - unused_bytes;
        return Err(Error::RecordTrailingBytes {
            position,
            length_bytes,
            used_bytes,
        });
    }
    Ok(Record {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers,
    })
}

fn read_headers<'a>(reader: &mut Reader<'a>) -> Result<Vec<Header<'a>>> {
    let position = reader.position();
    let header_count = reader.read_varint("header count")?;
    let remaining_bytes = reader.remaining_bytes();
    let header_count = usize::try_from(header_count).map_err(|_| Error::LengthInvalid {
        field: "header count",
        position,
        length: header_count,
        remaining_bytes,
    })?;
    // A hostile count must not size the allocation: each header takes two bytes or more,
    // and the loop below stops at the first header that does not fit.
    let mut headers = Vec::with_capacity(header_count.min(remaining_bytes / HEADER_SIZE_BYTES_MIN));
    for _ in 0..header_count {
        let key_length = read_length(reader, "header key length")?;
        let key = reader.read_bytes("header key", key_length)?;
        let value = read_nullable(reader, "header value length", "header value")?;
        headers.push(Header { key, value });
    }
    Ok(headers)
}

/// A varint length that is -1 (null), or else non-negative and within the reader.
fn read_nullable<'a>(
    reader: &mut Reader<'a>,
    length_field: &'static str,
    field: &'static str,
) -> Result<Option<&'a [u8]>> {
    let position = reader.position();
    let length = reader.read_varint(length_field)?;
    if length == -1 {
        return Ok(None);
    }
    let length_bytes = check_length(reader, length_field, position, length)?;
    reader.read_bytes(field, length_bytes).map(Some)
}

/// A varint length that is non-negative and within the reader.
fn read_length(reader: &mut Reader<'_>, field: &'static str) -> Result<usize> {
    let position = reader.position();
    let length = reader.read_varint(field)?;
    check_length(reader, field, position, length)
}

/// `length` as a `usize` if it is non-negative and at most what is left of `reader`.
fn check_length(
    reader: &Reader<'_>,
    field: &'static str,
    position: usize,
    length: i32,
) -> Result<usize> {
    let remaining_bytes = reader.remaining_bytes();
    usize::try_from(length)
        .ok()
        .filter(|&length_bytes| length_bytes <= remaining_bytes)
        .ok_or(Error::LengthInvalid {
            field,
            position,
            length,
            remaining_bytes,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{batch_with_records, record, MINIMAL_RECORD_BODY};
    use crate::header::HEADER_SIZE_BYTES as R; // records start here: positions below are R + n

    /// All items of `records(batch)`, stopping at the first error.
    fn read_all(batch: &[u8]) -> Result<Vec<Record<'_>>> {
        records(batch)?.collect()
    }

    fn length_invalid(field: &'static str, position: usize, length: i32, left: usize) -> Error {
        Error::LengthInvalid {
            field,
            position,
            length,
            remaining_bytes: left,
        }
    }

    /// Runs each case through `records()` inside a batch whose header, length and CRC are
    /// right, and expects its exact error.
    fn check_malformed(cases: Vec<(&str, Vec<u8>, Error)>) {
        for (name, record_bytes, expected) in cases {
            let batch = batch_with_records(0, 1, &record_bytes);
            assert_eq!(
                read_all(&batch).map(|all| all.len()),
                Err(expected),
                "{name}"
            );
        }
    }

    // Table of broken record framing (the length prefix and how much of the record its
    // fields use): each yields the named error with the exact position and values, so a
    // reader of the log can locate the damage.
    #[test]
    fn malformed_record_framing() {
        check_malformed(vec![
            (
                "length varint cut by end of batch",
                vec![0x80],
                Error::RecordTruncated {
                    field: "record length",
                    position: R,
                },
            ),
            (
                "length varint of six bytes",
                vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
                Error::VarintOverflow {
                    field: "record length",
                    position: R,
                    width_bits: 32,
                },
            ),
            (
                "negative length",
                vec![0x01],
                length_invalid("record length", R, -1, 0),
            ),
            (
                "length past end",
                vec![0x10, 0x00],
                length_invalid("record length", R, 8, 1),
            ),
            (
                "empty record",
                vec![0x00],
                Error::RecordTruncated {
                    field: "record attributes",
                    position: R + 1,
                },
            ),
            (
                "record longer than its fields",
                record(&[0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0xee]),
                Error::RecordTrailingBytes {
                    position: R,
                    length_bytes: 7,
                    used_bytes: 6,
                },
            ),
        ]);
    }

    // Table of broken fields inside a well-framed record (the body after the one-byte
    // length prefix at R): truncated varints, bad lengths and counts, null header keys.
    #[test]
    fn malformed_record_fields() {
        let truncated = |field, position| Error::RecordTruncated { field, position };
        check_malformed(vec![
            (
                "timestamp cut",
                record(&[0, 0x80]),
                truncated("timestamp delta", R + 2),
            ),
            (
                "offset delta cut",
                record(&[0, 0, 0xff]),
                truncated("offset delta", R + 3),
            ),
            (
                "key length -2",
                record(&[0, 0, 0, 0x03, 0x01, 0x00]),
                length_invalid("key length", R + 4, -2, 2),
            ),
            (
                "value longer than record",
                record(&[0, 0, 0, 0x01, 0x06, 0x61, 0x00]),
                length_invalid("value length", R + 5, 3, 2),
            ),
            (
                "negative header count",
                record(&[0, 0, 0, 0x01, 0x01, 0x03]),
                length_invalid("header count", R + 6, -2, 0),
            ),
            (
                "null header key",
                record(&[0, 0, 0, 0x01, 0x01, 0x02, 0x01, 0x01]),
                length_invalid("header key length", R + 7, -1, 1),
            ),
            (
                "header count beyond headers present",
                record(&[0, 0, 0, 0x01, 0x01, 0x04, 0x02, 0x68, 0x01]),
                truncated("header key length", R + 10),
            ),
        ]);
    }

    // Checks the count rules between header and record region: fewer records than
    // declared, bytes after the declared records, and a declared count of zero.
    #[test]
    fn records_count_must_match_record_region() {
        let one = record(&MINIMAL_RECORD_BODY);
        let two = [one.clone(), one.clone()].concat();
        let missing = Error::RecordsMissing {
            records_count: 2,
            records_found: 1,
        };
        assert_eq!(
            read_all(&batch_with_records(0, 2, &one)).map(|r| r.len()),
            Err(missing)
        );
        let trailing = Error::BatchTrailingBytes {
            records_count: 1,
            unused_bytes: one.len(),
        };
        assert_eq!(
            read_all(&batch_with_records(0, 1, &two)).map(|r| r.len()),
            Err(trailing)
        );
        let trailing = Error::BatchTrailingBytes {
            records_count: 0,
            unused_bytes: one.len(),
        };
        assert_eq!(
            read_all(&batch_with_records(0, 0, &one)).map(|r| r.len()),
            Err(trailing)
        );
        assert_eq!(read_all(&batch_with_records(0, 0, &[])), Ok(vec![]));
        assert_eq!(
            read_all(&batch_with_records(0, 2, &two)).map(|r| r.len()),
            Ok(2)
        );
    }

    // Checks that every codec other than None is refused up front, and that the iterator
    // checks the slice holds exactly one batch.
    #[test]
    fn compressed_or_mis_sized_batches_are_refused() {
        let one = record(&MINIMAL_RECORD_BODY);
        for (codec, compression) in [
            (1, Compression::Gzip),
            (2, Compression::Snappy),
            (3, Compression::Lz4),
            (4, Compression::Zstd),
        ] {
            let batch = batch_with_records(codec, 1, &one);
            assert_eq!(
                records(&batch).err(),
                Some(Error::Compressed { compression })
            );
        }
        let batch = batch_with_records(0, 1, &one);
        let expected = Error::LengthMismatch {
            header_size_bytes: batch.len(),
            given_size_bytes: batch.len() - 1,
        };
        assert_eq!(records(&batch[..batch.len() - 1]).err(), Some(expected));
    }

    // Checks the iterator is fused after an error: the error is reported once and then the
    // iteration ends, even though records remain "declared".
    #[test]
    fn iterator_stops_after_first_error() {
        let batch = batch_with_records(0, 3, &[record(&MINIMAL_RECORD_BODY), vec![0x01]].concat());
        let mut iterator = records(&batch).unwrap();
        assert!(matches!(iterator.next(), Some(Ok(_))));
        assert!(matches!(
            iterator.next(),
            Some(Err(Error::LengthInvalid { .. }))
        ));
        assert_eq!(iterator.next(), None);
        assert_eq!(iterator.next(), None);
    }

    // Checks that a hostile header count (i32::MAX) with no header bytes is an error and
    // does not allocate for two billion headers first.
    #[test]
    fn huge_header_count_is_bounded() {
        let body = [0x00, 0x00, 0x00, 0x01, 0x01, 0xfe, 0xff, 0xff, 0xff, 0x0f];
        let batch = batch_with_records(0, 1, &record(&body));
        let expected = Error::RecordTruncated {
            field: "header key length",
            position: R + 11,
        };
        assert_eq!(read_all(&batch).map(|r| r.len()), Err(expected));
    }

    // Checks timestamp_ms() adds the delta to the batch's base and wraps like Kafka's Java
    // arithmetic instead of panicking.
    #[test]
    fn record_timestamp_from_base() {
        let record = Record {
            offset_delta: 0,
            timestamp_delta: 5,
            key: None,
            value: None,
            headers: Vec::new(),
        };
        assert_eq!(record.timestamp_ms(1_000), 1_005);
        assert_eq!(record.timestamp_ms(i64::MAX), i64::MIN + 4);
    }
}
