//! Property tests: decoding never panics, on arbitrary bytes or on valid requests with
//! random damage, and whatever it accepts is internally consistent.
// Test helpers unwrap freely (a failure is the test's answer), and Kafka's wire is
// big-endian.
#![allow(clippy::unwrap_used, clippy::big_endian_bytes)]

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use proptest::prelude::*;
use ringlog_kafka::frame::{frame_length, SIZE_PREFIX_SIZE_BYTES};
use ringlog_kafka::{decode_request, ApiKey, Decoded, Request, SUPPORTED};
use std::sync::OnceLock;

fn corpus() -> &'static [(ApiKey, i16, Bytes, Request)] {
    static CORPUS: OnceLock<Vec<(ApiKey, i16, Bytes, Request)>> = OnceLock::new();
    CORPUS.get_or_init(every_served_request)
}

/// Checks what an accepted frame must satisfy: Produce record sets lie inside the frame.
fn check_accepted(frame: &Bytes, decoded: &Decoded) {
    let Decoded::Request {
        request: Request::Produce(produce),
        ..
    } = decoded
    else {
        return;
    };
    let frame_start = frame.as_ptr() as usize;
    for topic in &produce.topic_data {
        for partition in &topic.partition_data {
            if let Some(records) = &partition.records {
                if records.is_empty() {
                    continue;
                }
                let start = records.as_ptr() as usize;
                assert!(start >= frame_start);
                assert!(start + records.len() <= frame_start + frame.len());
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Damage {
    Flip { index: usize, mask: u8 },
    Set { index: usize, value: u8 },
    Truncate { length: usize },
    Insert { index: usize, bytes: Vec<u8> },
    Remove { index: usize, count: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1..=u8::MAX).prop_map(|(index, mask)| Damage::Flip { index, mask }),
        (
            any::<usize>(),
            prop_oneof![Just(0u8), Just(0x7f), Just(0x80), Just(0xff), any::<u8>()]
        )
            .prop_map(|(index, value)| Damage::Set { index, value }),
        any::<usize>().prop_map(|length| Damage::Truncate { length }),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(index, bytes)| Damage::Insert { index, bytes }),
        (any::<usize>(), 1..8usize).prop_map(|(index, count)| Damage::Remove { index, count }),
    ]
}

fn apply(frame: &mut Vec<u8>, damage: &Damage) {
    if frame.is_empty() {
        return;
    }
    let length = frame.len();
    match damage {
        Damage::Flip { index, mask } => frame[index % length] ^= mask,
        Damage::Set { index, value } => frame[index % length] = *value,
        Damage::Truncate { length: keep } => frame.truncate(keep % length),
        Damage::Insert { index, bytes } => {
            let at = index % (length + 1);
            frame.splice(at..at, bytes.iter().copied());
        }
        Damage::Remove { index, count } => {
            let at = index % length;
            frame.drain(at..(at + count).min(length));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    // Checks that arbitrary bytes never panic the decoder, and that the frame-length check
    // never panics or accepts a size outside its bounds.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let frame = Bytes::from(bytes);
        if let Ok(decoded) = decode_request(frame.clone()) {
            check_accepted(&frame, &decoded);
        }
        if let Ok(Some(size_bytes)) = frame_length(&frame, 1024) {
            prop_assert!(frame.len() >= SIZE_PREFIX_SIZE_BYTES);
            prop_assert!((10..=1024).contains(&size_bytes));
        }
    }

    // Checks that arbitrary bodies behind a valid header (any served API, any version in
    // or near its range, either encoding) never panic: random bytes alone rarely get past
    // the header, so this aims them at the body decoders.
    #[test]
    fn arbitrary_bodies_never_panic(
        entry in 0..SUPPORTED.len(),
        version_shift in -1i16..=1,
        version_pick in any::<u16>(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let (api_key, version_min, version_max) = SUPPORTED[entry];
        let span = u16::try_from(version_max - version_min + 1).unwrap();
        let version = version_min + i16::try_from(version_pick % span).unwrap() + version_shift;
        let mut frame = BytesMut::new();
        frame.put_i16(api_key.code());
        frame.put_i16(version);
        frame.put_i32(7);
        frame.put_i16(-1);
        if api_key.is_flexible(version) {
            frame.put_u8(0);
        }
        frame.put_slice(&body);
        let frame = frame.freeze();
        if let Ok(decoded) = decode_request(frame.clone()) {
            check_accepted(&frame, &decoded);
        }
    }

    // Checks that valid requests of every API and version, damaged by up to four random
    // edits (bit flips, boundary values, truncation, insertion, removal), never panic the
    // decoder, and that an undamaged request still decodes to what was sent.
    #[test]
    fn damaged_requests_never_panic(
        pick in any::<usize>(),
        damages in proptest::collection::vec(damage(), 0..4),
    ) {
        let (api_key, version, frame, expected) = &corpus()[pick % corpus().len()];
        let mut bytes = frame.to_vec();
        for damage in &damages {
            apply(&mut bytes, damage);
        }
        let damaged = Bytes::from(bytes);
        let result = decode_request(damaged.clone());
        if let Ok(decoded) = &result {
            check_accepted(&damaged, decoded);
        }
        if damaged == *frame {
            match result {
                Ok(Decoded::Request { request, .. }) => prop_assert_eq!(&request, expected),
                other => prop_assert!(false, "{} v{}: {:?}", api_key, version, other),
            }
        }
    }
}
