//! Property tests of the public API: builder round trips, stamping, and that no function
//! panics on arbitrary bytes (STYLE.md section 11.2).
// The tests patch Kafka's big-endian header fields directly.
#![allow(clippy::big_endian_bytes)]

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use ringlog_batch::{
    crc32c, peek_size_bytes, records, stamp, validate, BatchBuilder, BatchHeader, Header,
    CRC_START_POSITION, HEADER_SIZE_BYTES, LOG_OVERHEAD_BYTES,
};
use ringlog_types::{Epoch, Offset};

/// One record as pushed: timestamp, key, value, headers.
type RecordInput = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

/// Bytes long enough, sometimes, to need a two-byte varint length (over 63 bytes).
fn bytes(size_bytes_max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..size_bytes_max)
}

fn record_input() -> impl Strategy<Value = RecordInput> {
    (
        any::<i64>(),
        option::of(bytes(100)),
        option::of(bytes(200)),
        vec((bytes(16), option::of(bytes(80))), 0..4),
    )
}

fn build(base_timestamp_ms: i64, inputs: &[RecordInput]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(base_timestamp_ms);
    for (timestamp_ms, key, value, headers) in inputs {
        let headers: Vec<(&[u8], Option<&[u8]>)> = headers
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
            .collect();
        builder.push(*timestamp_ms, key.as_deref(), value.as_deref(), &headers);
    }
    assert_eq!(builder.record_count(), inputs.len());
    let batch = builder.build();
    assert_eq!(batch.len(), builder.size_bytes());
    batch
}

/// A correct header, length and CRC around arbitrary record bytes, so that the record
/// parser, not the header checks, sees the arbitrary input.
fn wrap_records(records_count: i32, record_bytes: &[u8]) -> Vec<u8> {
    let mut batch = build(0, &[(0, None, None, vec![])]);
    batch.truncate(HEADER_SIZE_BYTES);
    batch.extend_from_slice(record_bytes);
    let batch_length = i32::try_from(batch.len() - LOG_OVERHEAD_BYTES).expect("small batch");
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    batch[57..61].copy_from_slice(&records_count.to_be_bytes());
    let crc = crc32c(&batch[CRC_START_POSITION..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Runs every reader on `bytes` and checks the answers agree with each other. Returns
/// nothing: the property is that this never panics and never contradicts itself.
fn read_everything(bytes: &[u8]) {
    let peeked = peek_size_bytes(bytes);
    let parsed = BatchHeader::parse(bytes);
    if let (Ok(Some(size_bytes)), Ok(header)) = (&peeked, &parsed) {
        assert_eq!(*size_bytes, header.size_bytes());
    }
    if let Ok(header) = validate(bytes) {
        assert_eq!(Ok(header), parsed);
        assert_eq!(bytes.len(), header.size_bytes());
    }
    if let Ok(iterator) = records(bytes) {
        let items: Vec<_> = iterator.collect();
        // Only the last item may be an error: the iterator stops at the first one.
        let errors = items.iter().filter(|item| item.is_err()).count();
        assert!(errors <= 1, "errors={errors}");
        if errors == 1 {
            assert!(items.last().is_some_and(Result::is_err));
        }
    }
}

proptest! {
    // Round trip: whatever is pushed (null or empty keys and values, headers, any i64
    // timestamps) builds a batch that validates, whose header summarises the records and
    // whose records read back exactly as pushed, in order.
    #[test]
    fn build_validate_records_round_trip(
        base_timestamp_ms in any::<i64>(),
        inputs in vec(record_input(), 1..12),
    ) {
        let batch = build(base_timestamp_ms, &inputs);
        let header = validate(&batch).unwrap();
        let count = i32::try_from(inputs.len()).unwrap();
        prop_assert_eq!(header.records_count, count);
        prop_assert_eq!(header.last_offset_delta, count - 1);
        prop_assert_eq!(header.record_count(), u64::try_from(count).unwrap());
        prop_assert_eq!(header.base_timestamp, base_timestamp_ms);
        let max_timestamp = inputs.iter().map(|input| input.0).max().unwrap();
        prop_assert_eq!(header.max_timestamp, max_timestamp);
        prop_assert_eq!(peek_size_bytes(&batch), Ok(Some(batch.len())));

        let decoded: Vec<_> = records(&batch).unwrap().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(decoded.len(), inputs.len());
        for (index, (record, input)) in decoded.iter().zip(&inputs).enumerate() {
            let (timestamp_ms, key, value, headers) = input;
            prop_assert_eq!(record.offset_delta, i32::try_from(index).unwrap());
            prop_assert_eq!(record.timestamp_ms(base_timestamp_ms), *timestamp_ms);
            prop_assert_eq!(record.key, key.as_deref());
            prop_assert_eq!(record.value, value.as_deref());
            let expected: Vec<_> = headers
                .iter()
                .map(|(key, value)| Header { key, value: value.as_deref() })
                .collect();
            prop_assert_eq!(&record.headers, &expected);
        }
    }

    // Stamping writes the offset and epoch that later reads return, leaves every other byte
    // alone, and keeps the batch valid without recomputing the CRC.
    #[test]
    fn stamp_keeps_batch_valid(
        inputs in vec(record_input(), 1..4),
        base_offset in 0..=u64::try_from(i64::MAX).unwrap(),
        epoch in 0..=u32::try_from(i32::MAX).unwrap(),
    ) {
        let original = build(0, &inputs);
        let mut stamped = original.clone();
        stamp(&mut stamped, Offset(base_offset), Epoch(epoch));
        let header = validate(&stamped).unwrap();
        prop_assert_eq!(u64::try_from(header.base_offset).unwrap(), base_offset);
        prop_assert_eq!(u32::try_from(header.partition_leader_epoch).unwrap(), epoch);
        prop_assert_eq!(&stamped[8..12], &original[8..12]);
        prop_assert_eq!(&stamped[16..], &original[16..]);
    }

    // build_into() appends exactly build()'s bytes after whatever the vector held.
    #[test]
    fn build_into_matches_build(prefix in bytes(40), inputs in vec(record_input(), 1..4)) {
        let batch = build(7, &inputs);
        let mut builder = BatchBuilder::new(7);
        for (timestamp_ms, key, value, headers) in &inputs {
            let headers: Vec<(&[u8], Option<&[u8]>)> =
                headers.iter().map(|(key, value)| (key.as_slice(), value.as_deref())).collect();
            builder.push(*timestamp_ms, key.as_deref(), value.as_deref(), &headers);
        }
        let mut out = prefix.clone();
        builder.build_into(&mut out);
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &batch[..]);
    }

    // No reader panics on arbitrary bytes, and their answers agree with each other.
    #[test]
    fn readers_never_panic_on_arbitrary_bytes(input in bytes(300)) {
        read_everything(&input);
    }

    // Same, with a correct header around arbitrary record bytes, so that the record parser
    // itself is exercised rather than stopped by the header or CRC checks.
    #[test]
    fn records_never_panic_on_arbitrary_record_bytes(
        records_count in -2..8_i32,
        record_bytes in bytes(200),
    ) {
        let batch = wrap_records(records_count, &record_bytes);
        read_everything(&batch);
    }

    // Same, starting from a valid batch and corrupting a few bytes and/or cutting it short,
    // which reaches deeper states than uniformly random bytes.
    #[test]
    fn readers_never_panic_on_corrupted_batches(
        inputs in vec(record_input(), 1..4),
        corruptions in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut batch = build(0, &inputs);
        for (index, byte) in corruptions {
            let position = index.index(batch.len());
            batch[position] = byte;
        }
        read_everything(&batch);
        let length = cut.index(batch.len() + 1);
        read_everything(&batch[..length]);
        // With the CRC fixed up, the corruption reaches past validate() too.
        if batch.len() >= HEADER_SIZE_BYTES {
            let crc = crc32c(&batch[CRC_START_POSITION..]);
            batch[17..21].copy_from_slice(&crc.to_be_bytes());
            read_everything(&batch);
        }
    }
}
