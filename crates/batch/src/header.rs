//! The 61-byte RecordBatch v2 header: layout, parsing and stamping.
//!
//! Invariants:
//!
//! - A [`BatchHeader`] returned by [`BatchHeader::parse`] has `magic == 2`,
//!   `batch_length >= 49`, a known compression codec, `last_offset_delta >= 0` and
//!   `records_count >= 0`. The accessors rely on this and panic (a programmer error) on a
//!   header built by hand that breaks it.
//! - Base offset and partition leader epoch lie before [`CRC_START_POSITION`], so [`stamp`]
//!   never invalidates the CRC.
//! - Every multi-byte field is big-endian, as Kafka defines it.

use ringlog_types::{Epoch, Offset};

use crate::error::{Error, Result};

// Layout of the RecordBatch v2 header (Kafka documentation, "Message Format: Record Batch").
// Each position is derived from the previous one; the records follow the header.
//
//   position  size  field
//          0     8  base_offset             offset of the first record, stamped by the leader
//          8     4  batch_length            bytes that follow this field
//         12     4  partition_leader_epoch  stamped by the leader (-1 from clients)
//         16     1  magic                   2
//         17     4  crc                     CRC32C of bytes 21..end
//         21     2  attributes              bits 0-2 codec, 3 timestamp type, 4 txn, 5 control
//         23     4  last_offset_delta
//         27     8  base_timestamp
//         35     8  max_timestamp
//         43     8  producer_id
//         51     2  producer_epoch
//         53     4  base_sequence
//         57     4  records_count
//         61        records...
const BASE_OFFSET_POSITION: usize = 0;
const BATCH_LENGTH_POSITION: usize = BASE_OFFSET_POSITION + 8;
const PARTITION_LEADER_EPOCH_POSITION: usize = BATCH_LENGTH_POSITION + 4;
const MAGIC_POSITION: usize = PARTITION_LEADER_EPOCH_POSITION + 4;
pub(crate) const CRC_POSITION: usize = MAGIC_POSITION + 1;
const ATTRIBUTES_POSITION: usize = CRC_POSITION + 4;
const LAST_OFFSET_DELTA_POSITION: usize = ATTRIBUTES_POSITION + 2;
const BASE_TIMESTAMP_POSITION: usize = LAST_OFFSET_DELTA_POSITION + 4;
const MAX_TIMESTAMP_POSITION: usize = BASE_TIMESTAMP_POSITION + 8;
const PRODUCER_ID_POSITION: usize = MAX_TIMESTAMP_POSITION + 8;
const PRODUCER_EPOCH_POSITION: usize = PRODUCER_ID_POSITION + 8;
const BASE_SEQUENCE_POSITION: usize = PRODUCER_EPOCH_POSITION + 2;
const RECORDS_COUNT_POSITION: usize = BASE_SEQUENCE_POSITION + 4;
const RECORDS_POSITION: usize = RECORDS_COUNT_POSITION + 4;

/// Bytes before `batch_length` counts: base_offset (i64) + batch_length (i32).
pub const LOG_OVERHEAD_BYTES: usize = PARTITION_LEADER_EPOCH_POSITION;
/// Size of the whole v2 batch header; the records start here.
pub const HEADER_SIZE_BYTES: usize = RECORDS_POSITION;
/// First byte covered by the CRC32C, which runs to the end of the batch.
pub const CRC_START_POSITION: usize = ATTRIBUTES_POSITION;
/// The only batch format accepted: RecordBatch v2.
pub const MAGIC_V2: i8 = 2;
/// Smallest valid `batch_length`: the header after the log overhead, with no records.
pub const BATCH_LENGTH_MIN: i32 = 49;

const _: () = assert!(LOG_OVERHEAD_BYTES == 12);
const _: () = assert!(HEADER_SIZE_BYTES == 61);
const _: () = assert!(CRC_START_POSITION == 21);
const _: () = assert!(BATCH_LENGTH_MIN == 49);
const _: () = assert!(HEADER_SIZE_BYTES - LOG_OVERHEAD_BYTES == 49);
// stamp() relies on both stamped fields lying before the CRC range.
const _: () = assert!(BASE_OFFSET_POSITION + 8 <= CRC_START_POSITION);
const _: () = assert!(PARTITION_LEADER_EPOCH_POSITION + 4 <= CRC_START_POSITION);

const COMPRESSION_MASK: i16 = 0x7;
const TRANSACTIONAL_FLAG: i16 = 1 << 4;
const CONTROL_FLAG: i16 = 1 << 5;

/// Compression codec of a batch (attributes bits 0-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Codec 0: records are stored as is.
    None,
    /// Codec 1.
    Gzip,
    /// Codec 2.
    Snappy,
    /// Codec 3.
    Lz4,
    /// Codec 4.
    Zstd,
}

impl Compression {
    /// The codec named by `attributes & 0x7`, or [`Error::UnknownCompression`].
    pub fn from_attributes(attributes: i16) -> Result<Compression> {
        // The mask keeps three bits, so the value always fits a u8.
        let codec = u8::try_from(attributes & COMPRESSION_MASK).unwrap_or(u8::MAX);
        match codec {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            _ => Err(Error::UnknownCompression { codec, attributes }),
        }
    }

    /// The codec's value in attributes bits 0-2.
    #[must_use]
    pub fn codec_id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// The fixed 61-byte header of a RecordBatch v2, field by field, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (0 from clients; stamped by the leader).
    pub base_offset: i64,
    /// Bytes after this field: the batch is `LOG_OVERHEAD_BYTES + batch_length` bytes long.
    pub batch_length: i32,
    /// Leader epoch that appended the batch (-1 from clients; stamped by the leader).
    pub partition_leader_epoch: i32,
    /// Format version, always [`MAGIC_V2`].
    pub magic: i8,
    /// CRC32C of bytes `CRC_START_POSITION..`.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp (ms) that record timestamp deltas are relative to.
    pub base_timestamp: i64,
    /// Greatest record timestamp (ms).
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 if none.
    pub producer_id: i64,
    /// Idempotent producer epoch, -1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 if none.
    pub base_sequence: i32,
    /// Number of records stored (may be below `last_offset_delta + 1` after compaction).
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header at the front of `bytes` (which may hold more than one batch).
    ///
    /// Checks the length of `bytes` (at least [`HEADER_SIZE_BYTES`]), `batch_length`, the
    /// magic byte, the codec, `last_offset_delta` and `records_count`. Does not check the
    /// CRC nor that `bytes` holds the whole batch: that is [`crate::validate`].
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader> {
        let header: &[u8; HEADER_SIZE_BYTES] = bytes.first_chunk().ok_or(Error::Truncated {
            needed_bytes: HEADER_SIZE_BYTES,
            available_bytes: bytes.len(),
        })?;
        let parsed = BatchHeader::decode(header);
        check_batch_length(parsed.batch_length)?;
        if parsed.magic != MAGIC_V2 {
            return Err(Error::UnsupportedMagic {
                magic: parsed.magic,
            });
        }
        Compression::from_attributes(parsed.attributes)?;
        if parsed.last_offset_delta < 0 {
            let last_offset_delta = parsed.last_offset_delta;
            return Err(Error::NegativeLastOffsetDelta { last_offset_delta });
        }
        if parsed.records_count < 0 {
            let records_count = parsed.records_count;
            return Err(Error::NegativeRecordsCount { records_count });
        }
        Ok(parsed)
    }

    /// Reads every field, checking nothing.
    fn decode(header: &[u8; HEADER_SIZE_BYTES]) -> BatchHeader {
        BatchHeader {
            base_offset: i64::from_be_bytes(field(header, BASE_OFFSET_POSITION)),
            batch_length: i32::from_be_bytes(field(header, BATCH_LENGTH_POSITION)),
            partition_leader_epoch: i32::from_be_bytes(field(
                header,
                PARTITION_LEADER_EPOCH_POSITION,
            )),
            magic: i8::from_be_bytes(field(header, MAGIC_POSITION)),
            crc: u32::from_be_bytes(field(header, CRC_POSITION)),
            attributes: i16::from_be_bytes(field(header, ATTRIBUTES_POSITION)),
            last_offset_delta: i32::from_be_bytes(field(header, LAST_OFFSET_DELTA_POSITION)),
            base_timestamp: i64::from_be_bytes(field(header, BASE_TIMESTAMP_POSITION)),
            max_timestamp: i64::from_be_bytes(field(header, MAX_TIMESTAMP_POSITION)),
            producer_id: i64::from_be_bytes(field(header, PRODUCER_ID_POSITION)),
            producer_epoch: i16::from_be_bytes(field(header, PRODUCER_EPOCH_POSITION)),
            base_sequence: i32::from_be_bytes(field(header, BASE_SEQUENCE_POSITION)),
            records_count: i32::from_be_bytes(field(header, RECORDS_COUNT_POSITION)),
        }
    }

    /// Writes every field, big-endian, into the first [`HEADER_SIZE_BYTES`] of `target`.
    pub(crate) fn encode(&self, target: &mut [u8; HEADER_SIZE_BYTES]) {
        put(target, BASE_OFFSET_POSITION, self.base_offset.to_be_bytes());
        put(
            target,
            BATCH_LENGTH_POSITION,
            self.batch_length.to_be_bytes(),
        );
        let epoch = self.partition_leader_epoch.to_be_bytes();
        put(target, PARTITION_LEADER_EPOCH_POSITION, epoch);
        put(target, MAGIC_POSITION, self.magic.to_be_bytes());
        put(target, CRC_POSITION, self.crc.to_be_bytes());
        put(target, ATTRIBUTES_POSITION, self.attributes.to_be_bytes());
        put(
            target,
            LAST_OFFSET_DELTA_POSITION,
            self.last_offset_delta.to_be_bytes(),
        );
        put(
            target,
            BASE_TIMESTAMP_POSITION,
            self.base_timestamp.to_be_bytes(),
        );
        put(
            target,
            MAX_TIMESTAMP_POSITION,
            self.max_timestamp.to_be_bytes(),
        );
        put(target, PRODUCER_ID_POSITION, self.producer_id.to_be_bytes());
        put(
            target,
            PRODUCER_EPOCH_POSITION,
            self.producer_epoch.to_be_bytes(),
        );
        put(
            target,
            BASE_SEQUENCE_POSITION,
            self.base_sequence.to_be_bytes(),
        );
        put(
            target,
            RECORDS_COUNT_POSITION,
            self.records_count.to_be_bytes(),
        );
    }

    /// Size of the whole batch: `LOG_OVERHEAD_BYTES + batch_length`.
    ///
    /// Panics if `batch_length` is negative, which [`BatchHeader::parse`] never returns.
    #[must_use]
    pub fn size_bytes(&self) -> usize {
        let batch_length = usize::try_from(self.batch_length)
            .unwrap_or_else(|_| panic!("negative batch_length={}", self.batch_length));
        LOG_OVERHEAD_BYTES + batch_length
    }

    /// Number of offsets the batch occupies: `last_offset_delta + 1`, at least 1.
    ///
    /// Panics if `last_offset_delta` is negative, which [`BatchHeader::parse`] never returns.
    #[must_use]
    pub fn record_count(&self) -> u64 {
        let last_offset_delta = u64::try_from(self.last_offset_delta)
            .unwrap_or_else(|_| panic!("negative last_offset_delta={}", self.last_offset_delta));
        last_offset_delta + 1
    }

    /// The compression codec.
    ///
    /// Panics on an unknown codec, which [`BatchHeader::parse`] never returns.
    #[must_use]
    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes)
            .unwrap_or_else(|error| panic!("header not from parse(): {error}"))
    }

    /// Whether this is a control batch (transaction markers), attributes bit 5.
    #[must_use]
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// Whether the batch belongs to a transaction, attributes bit 4.
    #[must_use]
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }
}

/// Size of the batch that starts at `bytes[0]`, read from its first 12 bytes.
///
/// `Ok(None)` if fewer than [`LOG_OVERHEAD_BYTES`] bytes are given (a scan needs more input);
/// [`Error::BatchLengthTooSmall`] if `batch_length` is below [`BATCH_LENGTH_MIN`] (which
/// includes every negative value, so the size always fits an `i32` plus the overhead).
pub fn peek_size_bytes(bytes: &[u8]) -> Result<Option<usize>> {
    let Some(overhead) = bytes.first_chunk::<LOG_OVERHEAD_BYTES>() else {
        return Ok(None);
    };
    let batch_length = i32::from_be_bytes(field(overhead, BATCH_LENGTH_POSITION));
    let batch_length = check_batch_length(batch_length)?;
    Ok(Some(LOG_OVERHEAD_BYTES + batch_length))
}

/// Writes the base offset (bytes 0..8) and partition leader epoch (bytes 12..16).
///
/// Both fields lie before [`CRC_START_POSITION`], so the stored CRC stays valid and nothing
/// is re-hashed. Panics if `bytes` is shorter than [`HEADER_SIZE_BYTES`] (callers validate
/// first), or if the offset or epoch exceed Kafka's signed fields (`i64`, `i32`).
pub fn stamp(bytes: &mut [u8], base_offset: Offset, epoch: Epoch) {
    let available_bytes = bytes.len();
    let header: &mut [u8; HEADER_SIZE_BYTES] = bytes.first_chunk_mut().unwrap_or_else(|| {
        panic!("stamp: {available_bytes} bytes, a batch header needs {HEADER_SIZE_BYTES}")
    });
    let base_offset = i64::try_from(base_offset.0)
        .unwrap_or_else(|_| panic!("stamp: base offset {base_offset} exceeds i64::MAX"));
    let epoch =
        i32::try_from(epoch.0).unwrap_or_else(|_| panic!("stamp: epoch {epoch} exceeds i32::MAX"));
    put(header, BASE_OFFSET_POSITION, base_offset.to_be_bytes());
    put(header, PARTITION_LEADER_EPOCH_POSITION, epoch.to_be_bytes());
}

/// `batch_length` as a `usize` if it is at least [`BATCH_LENGTH_MIN`].
fn check_batch_length(batch_length: i32) -> Result<usize> {
    if batch_length < BATCH_LENGTH_MIN {
        return Err(Error::BatchLengthTooSmall { batch_length });
    }
    usize::try_from(batch_length).map_err(|_| Error::BatchLengthTooSmall { batch_length })
}

/// The `WIDTH` bytes at `position` of a fixed-size header.
fn field<const WIDTH: usize, const SIZE: usize>(
    bytes: &[u8; SIZE],
    position: usize,
) -> [u8; WIDTH] {
    let mut value = [0; WIDTH];
    value.copy_from_slice(&bytes[position..position + WIDTH]);
    value
}

/// Stores `value` at `position` of a fixed-size header.
fn put<const WIDTH: usize, const SIZE: usize>(
    bytes: &mut [u8; SIZE],
    position: usize,
    value: [u8; WIDTH],
) {
    bytes[position..position + WIDTH].copy_from_slice(&value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header that parse() accepts: one record, no compression, client defaults.
    fn sample() -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: BATCH_LENGTH_MIN + 10,
            partition_leader_epoch: -1,
            magic: MAGIC_V2,
            crc: 0xdead_beef,
            attributes: 0,
            last_offset_delta: 0,
            base_timestamp: 1_000,
            max_timestamp: 1_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: 1,
        }
    }

    fn encoded(header: &BatchHeader) -> [u8; HEADER_SIZE_BYTES] {
        let mut bytes = [0; HEADER_SIZE_BYTES];
        header.encode(&mut bytes);
        bytes
    }

    // Checks that encode() and parse() agree on every field, and that parse() reads only the
    // header from a longer buffer (it must not care what follows).
    #[test]
    fn encode_then_parse_round_trips_every_field() {
        let header = BatchHeader {
            base_offset: 0x0102_0304_0506_0708,
            partition_leader_epoch: 0x1112_1314,
            attributes: 0x0033, // lz4 (3) + transactional (0x10) + control (0x20)
            last_offset_delta: 9,
            base_timestamp: -5,
            max_timestamp: i64::MAX,
            producer_id: 77,
            producer_epoch: 3,
            base_sequence: 12,
            records_count: 10,
            ..sample()
        };
        let mut bytes = encoded(&header).to_vec();
        bytes.extend_from_slice(&[0xff; 7]);
        let parsed = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(&bytes[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(parsed.compression(), Compression::Lz4);
        assert!(parsed.is_transactional());
        assert!(parsed.is_control());
        assert_eq!(parsed.record_count(), 10);
        assert_eq!(parsed.size_bytes(), LOG_OVERHEAD_BYTES + 59);
    }

    // Table: each header field that has a rule, broken alone, gives its own error.
    #[test]
    fn parse_rejects_each_broken_field() {
        let cases: [(&str, BatchHeader, Error); 6] = [
            (
                "negative length",
                BatchHeader {
                    batch_length: -1,
                    ..sample()
                },
                Error::BatchLengthTooSmall { batch_length: -1 },
            ),
            (
                "length one below min",
                BatchHeader {
                    batch_length: 48,
                    ..sample()
                },
                Error::BatchLengthTooSmall { batch_length: 48 },
            ),
            (
                "magic 1",
                BatchHeader {
                    magic: 1,
                    ..sample()
                },
                Error::UnsupportedMagic { magic: 1 },
            ),
            (
                "codec 5",
                BatchHeader {
                    attributes: 0x15,
                    ..sample()
                },
                Error::UnknownCompression {
                    codec: 5,
                    attributes: 0x15,
                },
            ),
            (
                "last_offset_delta -1",
                BatchHeader {
                    last_offset_delta: -1,
                    ..sample()
                },
                Error::NegativeLastOffsetDelta {
                    last_offset_delta: -1,
                },
            ),
            (
                "records_count -3",
                BatchHeader {
                    records_count: -3,
                    ..sample()
                },
                Error::NegativeRecordsCount { records_count: -3 },
            ),
        ];
        for (name, header, expected) in cases {
            assert_eq!(
                BatchHeader::parse(&encoded(&header)),
                Err(expected),
                "{name}"
            );
        }
    }

    // Checks every codec value: 0-4 map to the five codecs and back, 5-7 are errors, and the
    // other attribute bits do not disturb the codec.
    #[test]
    fn compression_codecs() {
        let known = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        for (codec, compression) in (0_i16..).zip(known) {
            let attributes = codec | TRANSACTIONAL_FLAG | 0x0100;
            assert_eq!(Compression::from_attributes(attributes), Ok(compression));
            assert_eq!(i16::from(compression.codec_id()), codec);
        }
        for codec in 5_u8..=7 {
            let attributes = i16::from(codec);
            let expected = Err(Error::UnknownCompression { codec, attributes });
            assert_eq!(Compression::from_attributes(attributes), expected);
        }
    }

    // Checks parse() on every length below the header size: always Truncated with the
    // numbers, never a panic.
    #[test]
    fn parse_short_input_is_truncated() {
        let bytes = encoded(&sample());
        for length in 0..HEADER_SIZE_BYTES {
            let expected = Error::Truncated {
                needed_bytes: HEADER_SIZE_BYTES,
                available_bytes: length,
            };
            assert_eq!(BatchHeader::parse(&bytes[..length]), Err(expected));
        }
    }

    // Table for peek_size_bytes(): short input asks for more, small or negative lengths are
    // errors, the largest i32 length is accepted, and only the first 12 bytes matter.
    #[test]
    fn peek_size_bytes_cases() {
        let with_length = |batch_length: i32| {
            let mut bytes = vec![0xee; LOG_OVERHEAD_BYTES];
            bytes[8..12].copy_from_slice(&batch_length.to_be_bytes());
            bytes
        };
        assert_eq!(peek_size_bytes(&[]), Ok(None));
        assert_eq!(peek_size_bytes(&with_length(100)[..11]), Ok(None));
        assert_eq!(peek_size_bytes(&with_length(49)), Ok(Some(61)));
        assert_eq!(peek_size_bytes(&with_length(100)), Ok(Some(112)));
        let largest = usize::try_from(i32::MAX).unwrap() + LOG_OVERHEAD_BYTES;
        assert_eq!(peek_size_bytes(&with_length(i32::MAX)), Ok(Some(largest)));
        for batch_length in [48, 0, -1, i32::MIN] {
            let expected = Err(Error::BatchLengthTooSmall { batch_length });
            assert_eq!(peek_size_bytes(&with_length(batch_length)), expected);
        }
    }

    // Checks stamp() writes exactly bytes 0..8 and 12..16, big-endian, and nothing else.
    #[test]
    fn stamp_writes_only_offset_and_epoch() {
        let before = encoded(&sample());
        let mut after = before;
        stamp(
            &mut after,
            Offset(0x0a0b_0c0d_0e0f_1011),
            Epoch(0x2122_2324),
        );
        assert_eq!(
            &after[0..8],
            &[0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11]
        );
        assert_eq!(&after[12..16], &[0x21, 0x22, 0x23, 0x24]);
        assert_eq!(&after[8..12], &before[8..12]);
        assert_eq!(&after[16..], &before[16..]);
    }

    // Checks that stamping a buffer too short for a header is a loud programmer error.
    #[test]
    #[should_panic(expected = "a batch header needs 61")]
    fn stamp_short_buffer_panics() {
        stamp(&mut [0; 60], Offset(1), Epoch(1));
    }

    // Checks that an offset beyond Kafka's signed 64-bit field is refused, not wrapped.
    #[test]
    #[should_panic(expected = "exceeds i64::MAX")]
    fn stamp_offset_overflow_panics() {
        stamp(&mut [0; HEADER_SIZE_BYTES], Offset(u64::MAX), Epoch(1));
    }

    // Checks that an epoch beyond Kafka's signed 32-bit field is refused, not wrapped.
    #[test]
    #[should_panic(expected = "exceeds i32::MAX")]
    fn stamp_epoch_overflow_panics() {
        stamp(&mut [0; HEADER_SIZE_BYTES], Offset(1), Epoch(u32::MAX));
    }
}
