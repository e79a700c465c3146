//! Building uncompressed batches, as a Kafka client without idempotence would send them.
//!
//! Invariants (checked by [`BatchBuilder::check_invariants`] after every mutation in debug
//! builds): the encoded records hold exactly `record_count` records with offset deltas
//! `0..record_count`; `record_count` fits the header's `i32`; and the finished batch size
//! fits `batch_length`'s `i32`, so every `build` output passes [`crate::validate`].

use crate::header::{
    BatchHeader, BATCH_LENGTH_MIN, CRC_POSITION, CRC_START_POSITION, HEADER_SIZE_BYTES, MAGIC_V2,
};
use crate::validation::crc32c;
use crate::varint::{put_varlong, varlong_size_bytes};

/// Value of the producer id, producer epoch, base sequence and leader epoch fields that
/// means "none" (what Kafka clients send without idempotence).
const NONE: i8 = -1;

/// Builds one uncompressed RecordBatch v2.
///
/// The header is what a Kafka client without idempotence sends: base offset 0, partition
/// leader epoch -1, producer id, producer epoch and base sequence -1, attributes 0
/// (no compression, create time). The leader later [`crate::stamp`]s offset and epoch.
///
/// Push order is offset order; each record's offset delta is its push index. Timestamps are
/// stored as deltas from `base_timestamp_ms`, wrapping as Kafka's Java arithmetic does.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    record_count: usize,
    records: Vec<u8>,
}

impl BatchBuilder {
    /// An empty builder; record timestamps are stored relative to `base_timestamp_ms`.
    #[must_use]
    pub fn new(base_timestamp_ms: i64) -> BatchBuilder {
        BatchBuilder {
            base_timestamp_ms,
            max_timestamp_ms: i64::MIN,
            record_count: 0,
            records: Vec::new(),
        }
    }

    /// Empties the builder for a new batch, keeping its allocation.
    pub fn reset(&mut self, base_timestamp_ms: i64) {
        self.base_timestamp_ms = base_timestamp_ms;
        self.max_timestamp_ms = i64::MIN;
        self.record_count = 0;
        self.records.clear();
        self.check_invariants_debug();
    }

    /// Appends one record. `None` is a null key or value; header keys are never null.
    ///
    /// Panics if the batch would exceed `i32::MAX` records or bytes (Kafka's field widths):
    /// callers bound their batches far below that.
    pub fn push(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) {
        let offset_delta = i32::try_from(self.record_count)
            .unwrap_or_else(|_| panic!("batch full: {} records", self.record_count));
        let timestamp_delta = timestamp_ms.wrapping_sub(self.base_timestamp_ms);
        let fields = RecordFields {
            timestamp_delta,
            offset_delta,
            key,
            value,
            headers,
        };
        let body_size_bytes = fields.body_size_bytes();
        let record_size_bytes = varlong_size_bytes(length_i64(body_size_bytes)) + body_size_bytes;
        let size_bytes = HEADER_SIZE_BYTES + self.records.len() + record_size_bytes;
        assert!(
            i32::try_from(size_bytes).is_ok(),
            "batch too large: {size_bytes} bytes with this record"
        );
        let start = self.records.len();
        put_varlong(&mut self.records, length_i64(body_size_bytes));
        fields.encode(&mut self.records);
        assert_eq!(
            self.records.len() - start,
            record_size_bytes,
            "record size estimate"
        );
        self.record_count += 1;
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        self.check_invariants_debug();
    }

    /// Records pushed since creation or the last [`BatchBuilder::reset`].
    #[must_use]
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// Size of the batch [`BatchBuilder::build`] would return.
    #[must_use]
    pub fn size_bytes(&self) -> usize {
        HEADER_SIZE_BYTES + self.records.len()
    }

    /// The finished batch. Panics if no record was pushed (Kafka has no empty batches).
    #[must_use]
    pub fn build(&self) -> Vec<u8> {
        let mut batch = Vec::with_capacity(self.size_bytes());
        self.build_into(&mut batch);
        batch
    }

    /// Appends the finished batch to `out`; allocates nothing if `out` has
    /// [`BatchBuilder::size_bytes`] of spare capacity. Panics if no record was pushed.
    pub fn build_into(&self, out: &mut Vec<u8>) {
        assert!(
            self.record_count > 0,
            "build: a batch needs at least one record"
        );
        let header = self.header();
        let start = out.len();
        out.resize(start + HEADER_SIZE_BYTES, 0);
        let header_bytes: &mut [u8; HEADER_SIZE_BYTES] = out[start..]
            .first_chunk_mut()
            .unwrap_or_else(|| panic!("resize made {HEADER_SIZE_BYTES} bytes"));
        header.encode(header_bytes);
        out.extend_from_slice(&self.records);
        let crc = crc32c(&out[start + CRC_START_POSITION..]);
        let crc_position = start + CRC_POSITION;
        out[crc_position..crc_position + 4].copy_from_slice(&crc.to_be_bytes());
        debug_assert_eq!(
            crate::validate(&out[start..]),
            Ok(BatchHeader { crc, ..header })
        );
    }

    /// The header of the finished batch, with a zero CRC.
    fn header(&self) -> BatchHeader {
        // check_invariants() keeps both conversions in range.
        let records_count = i32::try_from(self.record_count).unwrap_or(i32::MAX);
        let records_size = i32::try_from(self.records.len()).unwrap_or(i32::MAX);
        BatchHeader {
            base_offset: 0,
            batch_length: BATCH_LENGTH_MIN + records_size,
            partition_leader_epoch: NONE.into(),
            magic: MAGIC_V2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records_count - 1,
            base_timestamp: self.base_timestamp_ms,
            max_timestamp: self.max_timestamp_ms,
            producer_id: NONE.into(),
            producer_epoch: NONE.into(),
            base_sequence: NONE.into(),
            records_count,
        }
    }

    /// Checks the invariants listed in the module documentation. Panics if one is broken.
    pub fn check_invariants(&self) {
        assert!(
            i32::try_from(self.record_count).is_ok(),
            "record_count={}",
            self.record_count
        );
        let size_bytes = self.size_bytes();
        assert!(i32::try_from(size_bytes).is_ok(), "size_bytes={size_bytes}");
        assert_eq!(
            self.records.is_empty(),
            self.record_count == 0,
            "records vs count"
        );
        if self.record_count == 0 {
            assert_eq!(
                self.max_timestamp_ms,
                i64::MIN,
                "max timestamp without records"
            );
        }
    }

    fn check_invariants_debug(&self) {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }
}

/// The fields of one record, before encoding.
struct RecordFields<'a> {
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: &'a [(&'a [u8], Option<&'a [u8]>)],
}

impl RecordFields<'_> {
    /// Bytes [`RecordFields::encode`] writes: everything after the record length.
    fn body_size_bytes(&self) -> usize {
        let headers_size_bytes: usize = self
            .headers
            .iter()
            .map(|&(key, value)| bytes_size_bytes(Some(key)) + bytes_size_bytes(value))
            .sum();
        1 // attributes
            + varlong_size_bytes(self.timestamp_delta)
            + varlong_size_bytes(self.offset_delta.into())
            + bytes_size_bytes(self.key)
            + bytes_size_bytes(self.value)
            + varlong_size_bytes(length_i64(self.headers.len()))
            + headers_size_bytes
    }

    fn encode(&self, target: &mut Vec<u8>) {
        target.push(0); // attributes: unused in v2
        put_varlong(target, self.timestamp_delta);
        put_varlong(target, self.offset_delta.into());
        put_bytes(target, self.key);
        put_bytes(target, self.value);
        put_varlong(target, length_i64(self.headers.len()));
        for &(key, value) in self.headers {
            put_bytes(target, Some(key));
            put_bytes(target, value);
        }
    }
}

/// Length prefix and bytes of a nullable field: -1 for null.
fn put_bytes(target: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varlong(target, -1),
        Some(bytes) => {
            put_varlong(target, length_i64(bytes.len()));
            target.extend_from_slice(bytes);
        }
    }
}

fn bytes_size_bytes(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => varlong_size_bytes(-1),
        Some(bytes) => varlong_size_bytes(length_i64(bytes.len())) + bytes.len(),
    }
}

/// A length as a varint value. Panics above `i32::MAX`, which no batch can hold.
fn length_i64(length: usize) -> i64 {
    let length = i32::try_from(length)
        .unwrap_or_else(|_| panic!("field of {length} bytes exceeds a batch's i32 size"));
    length.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{records, Header, Record};
    use crate::validate;

    // Checks the client defaults in the header of a built batch (base offset 0, epoch and
    // producer fields -1, attributes 0) and the derived fields (counts, max timestamp).
    #[test]
    fn built_header_fields() {
        let mut builder = BatchBuilder::new(1_000);
        builder.push(1_020, None, Some(b"a"), &[]);
        builder.push(990, None, Some(b"b"), &[]);
        builder.push(1_010, None, Some(b"c"), &[]);
        let batch = builder.build();
        assert_eq!(batch.len(), builder.size_bytes());
        let header = validate(&batch).unwrap();
        assert_eq!(header.base_offset, 0);
        assert_eq!(header.partition_leader_epoch, -1);
        assert_eq!(header.producer_id, -1);
        assert_eq!(header.producer_epoch, -1);
        assert_eq!(header.base_sequence, -1);
        assert_eq!(header.attributes, 0);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.records_count, 3);
        assert_eq!(header.base_timestamp, 1_000);
        assert_eq!(header.max_timestamp, 1_020);
        let deltas: Vec<_> = records(&batch)
            .unwrap()
            .map(|r| r.unwrap().timestamp_delta)
            .collect();
        assert_eq!(deltas, [20, -10, 10]);
    }

    // Checks build_into() appends after existing bytes without touching them, and does not
    // reallocate when the vector already has room for the batch.
    #[test]
    fn build_into_appends_without_allocating() {
        let mut builder = BatchBuilder::new(0);
        builder.push(0, Some(b"k"), Some(&[7; 100]), &[(b"h", None)]);
        let mut out = Vec::with_capacity(3 + builder.size_bytes());
        out.extend_from_slice(b"abc");
        let pointer = out.as_ptr();
        builder.build_into(&mut out);
        assert_eq!(out.as_ptr(), pointer);
        assert_eq!(&out[..3], b"abc");
        assert_eq!(out[3..], builder.build());
        validate(&out[3..]).unwrap();
    }

    // Checks reset() starts a new batch: old records are gone, the new base timestamp is
    // used, and the result still validates.
    #[test]
    fn reset_starts_a_new_batch() {
        let mut builder = BatchBuilder::new(0);
        builder.push(5, None, Some(b"old"), &[]);
        builder.reset(100);
        assert_eq!(builder.record_count(), 0);
        builder.push(101, Some(b"new"), None, &[]);
        let batch = builder.build();
        let header = validate(&batch).unwrap();
        assert_eq!(header.base_timestamp, 100);
        assert_eq!(header.max_timestamp, 101);
        let all: Vec<_> = records(&batch).unwrap().collect::<Result<_, _>>().unwrap();
        let expected = Record {
            offset_delta: 0,
            timestamp_delta: 1,
            key: Some(&b"new"[..]),
            value: None,
            headers: vec![],
        };
        assert_eq!(all, [expected]);
    }

    // Checks that lengths needing multi-byte varints (a 200-byte key, 70 headers) are sized
    // and encoded consistently, including empty and null header values.
    #[test]
    fn multi_byte_lengths_round_trip() {
        let key = [1_u8; 200];
        let header_values: Vec<Option<&[u8]>> = (0..70)
            .map(|i| if i % 2 == 0 { None } else { Some(&b""[..]) })
            .collect();
        let headers: Vec<(&[u8], Option<&[u8]>)> = header_values
            .iter()
            .map(|&value| (&b"x"[..], value))
            .collect();
        let mut builder = BatchBuilder::new(i64::MIN);
        builder.push(i64::MAX, Some(&key), Some(b""), &headers);
        let batch = builder.build();
        validate(&batch).unwrap();
        let record = records(&batch).unwrap().next().unwrap().unwrap();
        assert_eq!(record.timestamp_ms(i64::MIN), i64::MAX);
        assert_eq!(record.key, Some(&key[..]));
        assert_eq!(record.value, Some(&b""[..]));
        let expected: Vec<_> = headers
            .iter()
            .map(|&(key, value)| Header { key, value })
            .collect();
        assert_eq!(record.headers, expected);
    }

    // Checks that building an empty batch is a loud programmer error: Kafka has no empty
    // batches and the header could not express one (last_offset_delta would be -1).
    #[test]
    #[should_panic(expected = "at least one record")]
    fn empty_build_panics() {
        let _ = BatchBuilder::new(0).build();
    }
}
