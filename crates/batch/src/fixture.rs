//! Hand-made batches for the unit tests.
//!
//! Invariants: [`GOLDEN`] is written from Kafka's documentation, not by this crate's
//! encoders; [`batch_with_records`] always produces a correct header, length and CRC around
//! whatever record bytes it is given, so tests reach the record parser.

use crate::header::{
    BatchHeader, BATCH_LENGTH_MIN, CRC_POSITION, CRC_START_POSITION, HEADER_SIZE_BYTES,
};
use crate::validation::crc32c;
use crate::varint::put_varlong;

/// Base timestamp of the golden batch: 2023-11-14T22:13:20Z in milliseconds.
pub(crate) const GOLDEN_BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;

/// A two-record batch written byte by byte from Kafka's "Message Format" documentation,
/// as a Kafka client would send it (base offset 0, epoch -1, no producer id). Its CRC was
/// computed by an independent bitwise CRC32C (reflected polynomial 0x82F63B78), not by
/// this crate.
#[rustfmt::skip]
pub(crate) const GOLDEN: [u8; 83] = [
    0, 0, 0, 0, 0, 0, 0, 0,             // base_offset 0
    0, 0, 0, 71,                        // batch_length: 49 + 22 bytes of records
    0xff, 0xff, 0xff, 0xff,             // partition_leader_epoch -1
    2,                                  // magic
    0x99, 0xa4, 0x0e, 0x96,             // crc
    0, 0,                               // attributes: no codec, create time
    0, 0, 0, 1,                         // last_offset_delta 1
    0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // base_timestamp 1_700_000_000_000
    0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x69, 0x2c, // max_timestamp, base + 300
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // producer_id -1
    0xff, 0xff,                         // producer_epoch -1
    0xff, 0xff, 0xff, 0xff,             // base_sequence -1
    0, 0, 0, 2,                         // records_count 2
    // record 0 (9 bytes): null key, value "hi", no headers
    0x10,                               // length 8 (zigzag 16)
    0x00,                               // attributes
    0x00,                               // timestamp_delta 0
    0x00,                               // offset_delta 0
    0x01,                               // key length -1: null
    0x04, b'h', b'i',                   // value length 2, "hi"
    0x00,                               // header count 0
    // record 1 (13 bytes): key "k", null value, header "h" = "v"
    0x18,                               // length 12 (zigzag 24)
    0x00,                               // attributes
    0xd8, 0x04,                         // timestamp_delta 300 (zigzag 600, two bytes)
    0x02,                               // offset_delta 1
    0x02, b'k',                         // key length 1, "k"
    0x01,                               // value length -1: null
    0x02,                               // header count 1
    0x02, b'h',                         // header key length 1, "h"
    0x02, b'v',                         // header value length 1, "v"
];

/// The body of the smallest valid record: attributes 0, deltas 0, null key and value, no
/// headers (six bytes).
pub(crate) const MINIMAL_RECORD_BODY: [u8; 6] = [0x00, 0x00, 0x00, 0x01, 0x01, 0x00];

/// `body` behind its zigzag varint length prefix, as one record.
pub(crate) fn record(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    put_varlong(&mut bytes, i64::try_from(body.len()).unwrap());
    bytes.extend_from_slice(body);
    bytes
}

/// A batch with the given attributes and records_count around `records`, with a correct
/// batch_length and CRC, so that only the record bytes can be wrong.
pub(crate) fn batch_with_records(attributes: i16, records_count: i32, records: &[u8]) -> Vec<u8> {
    let header = BatchHeader {
        base_offset: 0,
        batch_length: BATCH_LENGTH_MIN + i32::try_from(records.len()).unwrap(),
        partition_leader_epoch: -1,
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta: records_count.max(1) - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records_count,
    };
    let mut bytes = vec![0; HEADER_SIZE_BYTES];
    header.encode(bytes.as_mut_slice().try_into().unwrap());
    bytes.extend_from_slice(records);
    let crc = crc32c(&bytes[CRC_START_POSITION..]);
    bytes[CRC_POSITION..CRC_POSITION + 4].copy_from_slice(&crc.to_be_bytes());
    bytes
}
