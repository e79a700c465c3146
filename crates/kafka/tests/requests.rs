//! Request decoding against requests encoded by kafka-protocol's client side: golden round
//! trips for every served API and version, raw Produce records, and the error outcomes.
// Test helpers unwrap freely (a failure is the test's answer), and Kafka's wire is
// big-endian.
#![allow(clippy::unwrap_used, clippy::big_endian_bytes)]

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest,
    FindCoordinatorRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion};
use ringlog_kafka::{decode_request, ApiKey, DecodeError, MalformedReason, Request};

// Checks, for every served API at every served version (so at least each range's min and
// max), that a request encoded by kafka-protocol as a client would decodes to exactly the
// struct the client encoded, and to the same struct kafka-protocol's own decoder returns for
// those bytes (the decoder here replaces it, so the two must agree on valid input).
#[test]
fn every_served_request_round_trips() {
    let frames = every_served_request();
    assert!(frames.len() > 50, "{} frames", frames.len());
    for (api_key, version, frame, expected) in frames {
        let decoded = decode_served(frame.clone());
        assert_eq!(decoded, expected, "{api_key} v{version}");
        let reference = reference_decode(api_key, version, frame);
        assert_eq!(
            decoded, reference,
            "{api_key} v{version} differs from kafka-protocol"
        );
    }
}

/// kafka-protocol's broker-side decoder on the body of `frame`.
fn reference_decode(api_key: ApiKey, version: i16, frame: Bytes) -> Request {
    use kafka_protocol::messages::RequestHeader;
    fn body<R: Decodable + HeaderVersion>(mut frame: Bytes, version: i16) -> R {
        RequestHeader::decode(&mut frame, R::header_version(version)).expect("header");
        R::decode(&mut frame, version).expect("body")
    }
    match api_key {
        ApiKey::ApiVersions => Request::ApiVersions(body::<ApiVersionsRequest>(frame, version)),
        ApiKey::Metadata => Request::Metadata(body::<MetadataRequest>(frame, version)),
        ApiKey::Produce => Request::Produce(body::<ProduceRequest>(frame, version)),
        ApiKey::Fetch => Request::Fetch(body::<FetchRequest>(frame, version)),
        ApiKey::ListOffsets => Request::ListOffsets(body::<ListOffsetsRequest>(frame, version)),
        ApiKey::CreateTopics => Request::CreateTopics(body::<CreateTopicsRequest>(frame, version)),
        ApiKey::DeleteTopics => Request::DeleteTopics(body::<DeleteTopicsRequest>(frame, version)),
        ApiKey::FindCoordinator => {
            Request::FindCoordinator(body::<FindCoordinatorRequest>(frame, version))
        }
    }
}

// Checks that Produce v3 (classic encoding) and v9+ (compact encoding) hand over each
// partition's record set byte for byte, as a slice of the request frame (no copy), and that
// the slice is a batch `ringlog_batch::validate` accepts, built by `BatchBuilder`.
#[test]
fn produce_records_stay_raw_and_zero_copy() {
    for version in [3, 8, 9, 11] {
        let sent = sample_produce(version);
        let frame = request_frame(ApiKey::Produce, version, &sent);
        let frame_range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        let Request::Produce(received) = decode_served(frame.clone()) else {
            panic!("not a produce request");
        };
        let mut partitions = 0;
        for (sent_topic, received_topic) in sent.topic_data.iter().zip(&received.topic_data) {
            let pairs = sent_topic
                .partition_data
                .iter()
                .zip(&received_topic.partition_data);
            for (sent_partition, received_partition) in pairs {
                let sent_records = sent_partition.records.as_ref().unwrap();
                let records = received_partition.records.as_ref().unwrap();
                assert_eq!(records, sent_records, "v{version}");
                let start = records.as_ptr() as usize;
                assert!(
                    frame_range.contains(&start),
                    "v{version}: records were copied"
                );
                assert!(start + records.len() <= frame_range.end);
                let header = ringlog_batch::validate(records).expect("a valid batch");
                assert!(header.record_count() >= 1);
                partitions += 1;
            }
        }
        assert_eq!(partitions, 3);
    }
}

// Checks the nullable fields that the sample builders leave set: a Metadata request for all
// topics (null list, v1+), a transactional Produce, and a null Produce record set.
#[test]
fn nullable_fields_round_trip() {
    for version in 1..=12 {
        let request = sample_metadata(version).with_topics(None);
        let frame = request_frame(ApiKey::Metadata, version, &request);
        assert_eq!(
            decode_served(frame),
            Request::Metadata(request),
            "v{version}"
        );
    }
    for version in [3, 11] {
        let mut request = sample_produce(version);
        request.transactional_id = Some(transactional_id("tx-1"));
        request.topic_data[0].partition_data[0].records = None;
        let frame = request_frame(ApiKey::Produce, version, &request);
        assert_eq!(
            decode_served(frame),
            Request::Produce(request),
            "v{version}"
        );
    }
}

// Checks that Produce with acks=0 is the one request that expects no response.
#[test]
fn produce_acks_zero_expects_no_response() {
    let request = sample_produce(9).with_acks(0);
    let frame = request_frame(ApiKey::Produce, 9, &request);
    assert!(!decode_served(frame).expects_response());
    let frame = request_frame(ApiKey::Produce, 9, &sample_produce(9));
    assert!(decode_served(frame).expects_response());
}

fn header_only(api_key: i16, version: i16) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(api_key);
    out.put_i16(version);
    out.put_i32(CORRELATION_ID);
    out.put_i16(-1);
    out.freeze()
}

// Checks that an api_key ringlog does not serve is reported with the correlation id, for
// the server's log line before it closes the connection, and that versions outside an
// advertised range (other than the refused ones) are UnsupportedVersion.
#[test]
fn unknown_api_and_unsupported_versions() {
    for api_key in [4, 9, 11, 17, 21, 1000, -1] {
        assert_eq!(
            decode_request(header_only(api_key, 0)),
            Err(DecodeError::UnknownApi {
                api_key,
                correlation_id: CORRELATION_ID
            })
        );
    }
    let cases = [
        (ApiKey::Produce, 12),
        (ApiKey::Produce, -1),
        (ApiKey::Fetch, 3),
        (ApiKey::Fetch, 13),
        (ApiKey::ListOffsets, 0),
        (ApiKey::ListOffsets, 8),
        (ApiKey::Metadata, 13),
        (ApiKey::CreateTopics, 1),
        (ApiKey::CreateTopics, 8),
        (ApiKey::DeleteTopics, 0),
        (ApiKey::DeleteTopics, 7),
        (ApiKey::FindCoordinator, -1),
        (ApiKey::FindCoordinator, 7),
    ];
    for (api_key, api_version) in cases {
        assert_eq!(
            decode_request(header_only(api_key.code(), api_version)),
            Err(DecodeError::UnsupportedVersion {
                api_key,
                api_version,
                correlation_id: CORRELATION_ID
            }),
            "{api_key} v{api_version}"
        );
    }
}

// Checks that every strict prefix of every valid request is an error (never a panic and
// never a shorter request), and that one extra byte after a valid request is TrailingBytes.
#[test]
fn truncated_and_overlong_frames_are_errors() {
    for (api_key, version, frame, _) in every_served_request() {
        for length in 0..frame.len() {
            let result = decode_request(frame.slice(..length));
            assert!(
                result.is_err(),
                "{api_key} v{version} accepted {length} of {} bytes",
                frame.len()
            );
        }
        let mut longer = BytesMut::from(&frame[..]);
        longer.put_u8(0);
        let error = decode_request(longer.freeze()).expect_err("trailing byte");
        assert!(
            matches!(
                error,
                DecodeError::TrailingBytes {
                    unused_bytes: 1,
                    ..
                }
            ),
            "{api_key} v{version}: {error}"
        );
    }
}

// Checks that a forged array count far beyond the frame's size is rejected before anything
// is allocated for it, in the classic (i32) and the compact (varint) encodings.
#[test]
fn forged_counts_are_rejected_up_front() {
    let mut classic = BytesMut::from(&header_only(ApiKey::Produce.code(), 3)[..]);
    classic.put_i16(-1); // transactional_id
    classic.put_i16(1); // acks
    classic.put_i32(1000); // timeout_ms
    classic.put_i32(i32::MAX); // topic_data count
    classic.put_slice(&[0; 16]);
    let error = decode_request(classic.freeze()).expect_err("forged count");
    assert!(
        matches!(
            error,
            DecodeError::Malformed {
                field: "Produce.topic_data",
                reason: MalformedReason::CountTooLarge {
                    count: 0x7fff_ffff,
                    ..
                },
                ..
            }
        ),
        "{error}"
    );

    let mut compact = BytesMut::from(&header_only(ApiKey::Metadata.code(), 12)[..]);
    compact.put_u8(0); // header tagged fields
    compact.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // topics: u32::MAX - 1 elements
    compact.put_slice(&[0; 8]);
    let error = decode_request(compact.freeze()).expect_err("forged count");
    assert!(
        matches!(
            error,
            DecodeError::Malformed {
                field: "Metadata.topics",
                reason: MalformedReason::CountTooLarge { .. },
                ..
            }
        ),
        "{error}"
    );
}

// Checks the one known tagged field in a served request (Fetch v12 cluster_id, tag 0): its
// declared size must match the string inside, and an unknown tag is skipped.
#[test]
fn fetch_cluster_id_tag_is_bounded_by_its_size() {
    let request = sample_fetch(12).with_cluster_id(None);
    let frame = request_frame(ApiKey::Fetch, 12, &request);
    // The request ends in its tagged fields, which are empty here: one 0 byte.
    assert_eq!(frame.last(), Some(&0));
    let body = &frame[..frame.len() - 1];
    let with_tags = |tags: &[u8]| {
        let mut frame = BytesMut::from(body);
        frame.put_slice(tags);
        frame.freeze()
    };
    // cluster_id "ab": tag 0, size 3, compact string length 3 ("ab" + 1), then the bytes.
    let Request::Fetch(decoded) = decode_served(with_tags(&[1, 0, 3, 3, b'a', b'b'])) else {
        panic!("not a fetch");
    };
    assert_eq!(decoded.cluster_id.as_deref(), Some("ab"));
    // The same string declared one byte larger: the value has a byte left over.
    let error = decode_request(with_tags(&[1, 0, 4, 3, b'a', b'b', b'c'])).expect_err("size");
    assert!(
        matches!(
            error,
            DecodeError::TrailingBytes {
                unused_bytes: 1,
                ..
            }
        ),
        "{error}"
    );
    // Declared one byte smaller: the string runs past the value.
    let error = decode_request(with_tags(&[1, 0, 2, 3, b'a', b'b'])).expect_err("size");
    assert!(matches!(error, DecodeError::Truncated { .. }), "{error}");
    // Unknown tag 9 with 2 bytes of anything is skipped.
    let Request::Fetch(decoded) = decode_served(with_tags(&[1, 9, 2, 0xff, 0xfe])) else {
        panic!("not a fetch");
    };
    assert_eq!(decoded, request);
}

// Checks that strings must be UTF-8 (topic names reach logs and file names) and that a
// negative length other than -1 is malformed rather than read as a huge one.
#[test]
fn malformed_strings_are_rejected() {
    let mut frame = BytesMut::from(&header_only(ApiKey::DeleteTopics.code(), 1)[..]);
    frame.put_i32(1);
    frame.put_i16(2);
    frame.put_slice(&[0xc3, 0x28]);
    frame.put_i32(1000);
    let error = decode_request(frame.freeze()).expect_err("not UTF-8");
    assert!(
        matches!(
            error,
            DecodeError::Malformed {
                reason: MalformedReason::InvalidUtf8,
                position: 16,
                ..
            }
        ),
        "{error}"
    );
    let mut frame = BytesMut::from(&header_only(ApiKey::DeleteTopics.code(), 1)[..]);
    frame.put_i32(1);
    frame.put_i16(-2);
    frame.put_i32(1000);
    let error = decode_request(frame.freeze()).expect_err("negative length");
    assert!(
        matches!(
            error,
            DecodeError::Malformed {
                reason: MalformedReason::LengthInvalid { length: -2 },
                ..
            }
        ),
        "{error}"
    );
}

// Checks FindCoordinator's two layouts on hand-built bytes: v0 as librdkafka sends it (one
// classic string, no key type), and v4 with a batch of compact strings after the key type,
// where a forged key count is rejected before anything is allocated for it.
#[test]
fn find_coordinator_layouts() {
    let mut v0 = BytesMut::from(&header_only(ApiKey::FindCoordinator.code(), 0)[..]);
    v0.put_i16(6);
    v0.put_slice(b"orders");
    let Request::FindCoordinator(request) = decode_ok(v0.freeze()) else {
        panic!("not a FindCoordinator");
    };
    assert_eq!(request.key.as_str(), "orders");
    assert_eq!(request.key_type, 0);
    assert!(request.coordinator_keys.is_empty());

    let v4_prefix = || {
        let mut frame = BytesMut::from(&header_only(ApiKey::FindCoordinator.code(), 4)[..]);
        frame.put_u8(0); // header tagged fields
        frame.put_i8(1); // key_type: transaction
        frame
    };
    let mut v4 = v4_prefix();
    v4.put_u8(3); // two keys
    v4.put_slice(&[3, b't', b'1', 1]); // "t1", then ""
    v4.put_u8(0); // tagged fields
    let Request::FindCoordinator(request) = decode_ok(v4.freeze()) else {
        panic!("not a FindCoordinator");
    };
    assert_eq!(request.key.as_str(), "");
    assert_eq!(request.key_type, 1);
    let keys: Vec<&str> = request
        .coordinator_keys
        .iter()
        .map(|key| key.as_str())
        .collect();
    assert_eq!(keys, ["t1", ""]);

    let mut forged = v4_prefix();
    forged.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // u32::MAX - 1 keys
    forged.put_slice(&[1, 1, 0]);
    let error = decode_request(forged.freeze()).expect_err("forged count");
    assert!(
        matches!(
            error,
            DecodeError::Malformed {
                field: "FindCoordinator.coordinator_keys",
                reason: MalformedReason::CountTooLarge { .. },
                ..
            }
        ),
        "{error}"
    );
}

/// Decodes a served request whose header carries no client id.
fn decode_ok(frame: Bytes) -> Request {
    match decode_request(frame).expect("decodes") {
        ringlog_kafka::Decoded::Request { header, request } => {
            assert_eq!(header.correlation_id, CORRELATION_ID);
            request
        }
        ringlog_kafka::Decoded::Refused(refusal) => panic!("refused: {refusal:?}"),
    }
}
