//! Requests this crate answers with UNSUPPORTED_VERSION on the server's behalf: ApiVersions
//! above v3 (KIP-511) and Produce v0-2 (advertised for librdkafka's sake, never served).
// Test helpers unwrap freely (a failure is the test's answer), and Kafka's wire is
// big-endian.
#![allow(clippy::unwrap_used, clippy::big_endian_bytes)]

mod common;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::ApiVersionsResponse;
use ringlog_kafka::{
    decode_request, encode_refusal, ApiKey, Decoded, ErrorCode, Refusal, SUPPORTED,
};

// Checks KIP-511: an ApiVersions request at a version above 3 (v4, which kafka-protocol can
// encode, and v200 with a body of unknown layout) is refused without reading the body, and
// the answer is an ApiVersions v0 response with header v0, UNSUPPORTED_VERSION and every
// supported range, which is what a client needs to retry.
#[test]
fn api_versions_fallback_is_v0_with_the_ranges() {
    let v4 = request_frame(ApiKey::ApiVersions, 4, &sample_api_versions(4));
    let mut v200 = BytesMut::from(&v4[..]);
    v200[2..4].copy_from_slice(&200i16.to_be_bytes());
    v200.put_slice(&[0xde, 0xad, 0xbe, 0xef]);
    for frame in [v4, v200.freeze()] {
        let decoded = decode_request(frame).expect("refused, not an error");
        let Decoded::Refused(refusal @ Refusal::ApiVersions { .. }) = decoded else {
            panic!("not refused: {decoded:?}");
        };
        assert!(refusal.expects_response());
        assert_eq!(refusal.header().correlation_id, CORRELATION_ID);
        let mut out = BytesMut::new();
        let size_bytes = encode_refusal(&mut out, &refusal).unwrap();
        assert_eq!(size_bytes, out.len());
        let (correlation_id, response): (i32, ApiVersionsResponse) =
            decode_response_with_header(&out, 0, 0);
        assert_eq!(correlation_id, CORRELATION_ID);
        assert_eq!(response.error_code, ErrorCode::UnsupportedVersion.code());
        let ranges: Vec<(i16, i16, i16)> = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, api.min_version, api.max_version))
            .collect();
        let expected: Vec<(i16, i16, i16)> = SUPPORTED
            .iter()
            .map(|&(api_key, min, max)| (api_key.code(), min, max))
            .collect();
        assert_eq!(ranges, expected);
    }
}

/// A Produce v0-2 request as old clients send it (v3 without transactional_id).
fn produce_v0_to_v2(version: i16, acks: i16) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(ApiKey::Produce.code());
    out.put_i16(version);
    out.put_i32(CORRELATION_ID);
    out.put_i16(-1);
    out.put_i16(acks);
    out.put_i32(1000);
    out.put_i32(2);
    for (topic, partitions) in [("orders", &[0, 4][..]), ("events", &[1][..])] {
        out.put_i16(i16::try_from(topic.len()).unwrap());
        out.put_slice(topic.as_bytes());
        out.put_i32(i32::try_from(partitions.len()).unwrap());
        for &partition in partitions {
            // Old clients send message sets; they are never looked at.
            out.put_i32(partition);
            out.put_i32(5);
            out.put_slice(b"bytes");
        }
    }
    out.freeze()
}

// Checks that Produce v0, v1 and v2 are decoded but refused, and that the answer, at the
// request's own version, lists every partition with UNSUPPORTED_VERSION and base offset -1,
// with v1's throttle time and v2's log append time where those versions have them (the
// layout is read by hand: kafka-protocol no longer knows these versions).
#[test]
fn produce_v0_to_v2_are_refused_per_partition() {
    for version in 0..=2 {
        let decoded = decode_request(produce_v0_to_v2(version, -1)).expect("refused, not an error");
        let Decoded::Refused(refusal @ Refusal::Produce { .. }) = decoded else {
            panic!("v{version} not refused: {decoded:?}");
        };
        assert!(refusal.expects_response());
        let mut out = BytesMut::new();
        encode_refusal(&mut out, &refusal).unwrap();
        let mut body = &out[..];
        assert_eq!(usize::try_from(body.get_i32()).unwrap(), out.len() - 4);
        assert_eq!(body.get_i32(), CORRELATION_ID);
        assert_eq!(body.get_i32(), 2, "topics");
        for (topic, partitions) in [("orders", &[0, 4][..]), ("events", &[1][..])] {
            let length = usize::try_from(body.get_i16()).unwrap();
            assert_eq!(&body[..length], topic.as_bytes());
            body.advance(length);
            assert_eq!(body.get_i32(), i32::try_from(partitions.len()).unwrap());
            for &partition in partitions {
                assert_eq!(body.get_i32(), partition);
                assert_eq!(body.get_i16(), ErrorCode::UnsupportedVersion.code());
                assert_eq!(body.get_i64(), -1, "base_offset");
                if version >= 2 {
                    assert_eq!(body.get_i64(), -1, "log_append_time_ms");
                }
            }
        }
        if version >= 1 {
            assert_eq!(body.get_i32(), 0, "throttle_time_ms");
        }
        assert!(body.is_empty(), "v{version}: {} bytes left", body.len());
    }
}

// Checks that a refused Produce with acks=0 says no response is expected (Kafka closes the
// connection instead of answering), and that a truncated v0-2 request is still an error.
#[test]
fn produce_v0_refusal_with_acks_zero_and_truncation() {
    let Ok(Decoded::Refused(refusal)) = decode_request(produce_v0_to_v2(1, 0)) else {
        panic!("not refused");
    };
    assert!(!refusal.expects_response());
    let frame = produce_v0_to_v2(2, 1);
    assert!(decode_request(frame.slice(..frame.len() - 1)).is_err());
}
