//! Frame tests: known bytes for the header and one body, round trips of every kind (unit and
//! property), every decode error, and property tests that feed random and mutated bytes to
//! `frame_length` and `decode` to show they never panic.

use super::*;
use proptest::prelude::*;

fn policy() -> Policy {
    Policy {
        ack_mode: AckMode::SemiSync,
        semi_sync_replicas: 2,
        semi_sync_timeout_ms: 1_500,
        semi_sync_degrade: true,
        min_insync_replicas: 2,
        replica_lag_max_ms: 30_000,
    }
}

fn round_trip(correlation_id: u64, frame: &Frame<'_>) {
    let bytes = encode(correlation_id, frame);
    assert_eq!(frame_length(&bytes), Ok(Some(bytes.len())));
    assert_eq!(decode(&bytes), Ok((correlation_id, frame.clone())));
}

/// Recomputes the CRC of a frame whose bytes were changed, so that decoding gets past it.
fn fix_crc(bytes: &mut [u8]) {
    let Some(header) = read_header(bytes) else {
        return;
    };
    let kind = Kind::from_u16(header.kind);
    let body = &bytes[HEADER_SIZE_BYTES..];
    let covered = kind.map_or(body, |kind| crc_covered(kind, body));
    let crc = frame_crc32c(&header, covered);
    bytes[CRC_POSITION..CRC_POSITION + 4].copy_from_slice(&crc.to_le_bytes());
}

// The header's bytes, field by field, little-endian, and the CRC equal to CRC32C (as
// crates/batch computes it) of the frame with the crc field zero.
#[test]
fn header_bytes() {
    let bytes = encode(
        0x0102_0304_0506_0708,
        &Frame::HelloOk {
            node_id: NodeId(7),
            leader_epoch: Epoch(3),
        },
    );
    assert_eq!(bytes.len(), HEADER_SIZE_BYTES + 8);
    assert_eq!(&bytes[0..4], b"RLRP");
    assert_eq!(&bytes[4..6], &[2, 0]);
    assert_eq!(&bytes[6..8], &[2, 0]);
    assert_eq!(&bytes[8..12], &[8, 0, 0, 0]);
    assert_eq!(&bytes[16..24], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&bytes[24..], &[7, 0, 0, 0, 3, 0, 0, 0]);
    let mut zeroed = bytes.clone();
    zeroed[12..16].fill(0);
    let crc = crc_fast::crc32_iscsi(&zeroed);
    assert_eq!(&bytes[12..16], &crc.to_le_bytes());
}

// A Fetch body's bytes at the documented positions (docs/replication.md).
#[test]
fn fetch_body_bytes() {
    let fetch = Fetch {
        topic: "orders",
        partition: 3,
        fetch_offset: Offset(0x11),
        last_fetched_epoch: None,
        max_bytes: 0x22,
        max_wait_ms: 0x33,
        written_end: Offset(0x44),
        durable_end: Offset(0x55),
    };
    let bytes = encode(1, &Frame::Fetch(fetch));
    let body = &bytes[HEADER_SIZE_BYTES..];
    assert_eq!(body.len(), 48 + 6);
    assert_eq!(&body[0..4], &[3, 0, 0, 0]);
    assert_eq!(&body[4..6], &[6, 0]);
    assert_eq!(body[8], 0x11);
    assert_eq!(&body[16..20], &[0xff; 4], "none is u32::MAX");
    assert_eq!(body[20], 0x22);
    assert_eq!(body[24], 0x33);
    assert_eq!(body[32], 0x44);
    assert_eq!(body[40], 0x55);
    assert_eq!(&body[48..], b"orders");
}

// A HighWatermark body's bytes at the documented positions, and its body rules.
#[test]
fn high_watermark_body_bytes() {
    let notice = HighWatermark {
        topic: "orders",
        partition: 3,
        leader_epoch: Epoch(0x11),
        high_watermark: Offset(0x22),
        log_start: Offset(0x33),
    };
    let bytes = encode(0, &Frame::HighWatermark(notice));
    assert_eq!(&bytes[6..8], &[9, 0]);
    let body = &bytes[HEADER_SIZE_BYTES..];
    assert_eq!(body.len(), 32 + 6);
    assert_eq!(&body[0..4], &[3, 0, 0, 0]);
    assert_eq!(&body[4..6], &[6, 0]);
    assert_eq!(body[8], 0x11);
    assert_eq!(body[16], 0x22);
    assert_eq!(body[24], 0x33);
    assert_eq!(&body[32..], b"orders");
    assert!(malformed(bytes.clone(), HEADER_SIZE_BYTES + 6, 1).contains("padding"));
    assert!(malformed(bytes.clone(), HEADER_SIZE_BYTES + 12, 1).contains("padding"));
    assert!(malformed(bytes.clone(), HEADER_SIZE_BYTES + 4, 7).contains("truncated"));
    assert!(malformed(bytes, HEADER_SIZE_BYTES + 32, 0xff).contains("UTF-8"));
}

// One frame of every kind survives encode then decode, with its correlation id.
#[test]
fn every_kind_round_trips() {
    let entry = TopicEntry {
        name: "orders".to_owned(),
        partitions: 12,
        replication_factor: 3,
        topic_id: [9; 16],
        policy: policy(),
    };
    let fetch = Fetch {
        topic: "orders",
        partition: 3,
        fetch_offset: Offset(100),
        last_fetched_epoch: Some(Epoch(4)),
        max_bytes: 1 << 20,
        max_wait_ms: 500,
        written_end: Offset(100),
        durable_end: Offset(90),
    };
    let report = DurableReport {
        topic: "orders",
        partition: 3,
        written_end: Offset(100),
        durable_end: Offset(100),
    };
    let frames = [
        Frame::Hello {
            cluster_id: "prod-eu-1",
            node_id: NodeId(2),
        },
        Frame::Hello {
            cluster_id: "0123456789abcdef0123456789abcdef",
            node_id: NodeId(2),
        },
        Frame::Hello {
            cluster_id: "",
            node_id: NodeId(0),
        },
        Frame::HelloOk {
            node_id: NodeId(1),
            leader_epoch: Epoch(4),
        },
        Frame::Fetch(fetch),
        Frame::DurableReport(report),
        Frame::Topics,
        Frame::TopicsResponse(vec![]),
        Frame::TopicsResponse(vec![
            entry.clone(),
            TopicEntry {
                name: String::new(),
                ..entry
            },
        ]),
        Frame::Error {
            code: ErrorCode::NotLeader,
            message: "node 1 leads orders-3",
        },
        Frame::HighWatermark(HighWatermark {
            topic: "orders",
            partition: 3,
            leader_epoch: Epoch(4),
            high_watermark: Offset(100),
            log_start: Offset(7),
        }),
    ];
    for (correlation_id, frame) in (0..).zip(&frames) {
        round_trip(correlation_id, frame);
    }
}

// A FetchResponse encodes without its records; the records sent after it decode as part of
// the frame, and changing them does not break the CRC (each batch has its own).
#[test]
fn fetch_response_records_follow_the_header() {
    let header = FetchResponseHeader {
        error: None,
        leader_epoch: Epoch(4),
        high_watermark: Offset(90),
        log_start: Offset(0),
        log_end: Offset(100),
    };
    let records = b"raw kafka batches";
    let mut bytes = encode(5, &Frame::FetchResponse(header, records));
    assert_eq!(bytes.len(), HEADER_SIZE_BYTES + 40);
    assert_eq!(
        frame_length(&bytes),
        Ok(Some(HEADER_SIZE_BYTES + 40 + records.len()))
    );
    bytes.extend_from_slice(records);
    assert_eq!(
        decode(&bytes),
        Ok((5, Frame::FetchResponse(header, &records[..])))
    );
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    assert!(
        decode(&bytes).is_ok(),
        "the records are outside the frame's CRC"
    );
    // The same bytes from the records' length alone (records sent in several parts).
    let head = encode_fetch_response(5, &header, records.len());
    assert_eq!(head, bytes[..HEADER_SIZE_BYTES + 40]);
    let failed = FetchResponseHeader {
        error: Some(ErrorCode::OffsetOutOfRange),
        ..header
    };
    round_trip(6, &Frame::FetchResponse(failed, &[]));
}

// frame_length: None until a header is there, then the whole length; header errors at once.
#[test]
fn frame_length_rules() {
    let bytes = encode(1, &Frame::Topics);
    for len in 0..HEADER_SIZE_BYTES {
        assert_eq!(frame_length(&bytes[..len]), Ok(None));
    }
    assert_eq!(frame_length(&bytes), Ok(Some(HEADER_SIZE_BYTES)));
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(frame_length(&bad), Err(FrameError::BadMagic));
    let mut bad = bytes.clone();
    bad[4] = 1;
    assert_eq!(frame_length(&bad), Err(FrameError::UnsupportedVersion(1)));
    for kind in [0u8, 10] {
        let mut bad = bytes.clone();
        bad[6] = kind;
        assert_eq!(
            frame_length(&bad),
            Err(FrameError::UnknownKind(kind.into()))
        );
    }
    let mut bad = bytes.clone();
    let too_large = u32::try_from(FRAME_BYTES_MAX + 1).expect("fits");
    bad[8..12].copy_from_slice(&too_large.to_le_bytes());
    assert_eq!(
        frame_length(&bad),
        Err(FrameError::TooLarge {
            body_len: too_large
        })
    );
    let mut largest = bytes;
    let max = u32::try_from(FRAME_BYTES_MAX).expect("fits");
    largest[8..12].copy_from_slice(&max.to_le_bytes());
    assert_eq!(
        frame_length(&largest),
        Ok(Some(HEADER_SIZE_BYTES + FRAME_BYTES_MAX))
    );
}

/// Sets one byte of a valid frame, repairs the CRC, and returns the Malformed message.
fn malformed(mut bytes: Vec<u8>, position: usize, value: u8) -> &'static str {
    bytes[position] = value;
    fix_crc(&mut bytes);
    match decode(&bytes) {
        Err(FrameError::Malformed(message)) => message,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

// decode's framing errors: truncation, trailing bytes, a damaged CRC (the header counts too).
#[test]
fn decode_framing_errors() {
    let bytes = encode(
        1,
        &Frame::Error {
            code: ErrorCode::Internal,
            message: "boom",
        },
    );
    let len = bytes.len();
    assert_eq!(
        decode(&bytes[..3]),
        Err(FrameError::Truncated {
            needed_bytes: 24,
            available_bytes: 3
        })
    );
    assert_eq!(
        decode(&bytes[..len - 1]),
        Err(FrameError::Truncated {
            needed_bytes: len,
            available_bytes: len - 1
        })
    );
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(decode(&longer), Err(FrameError::Malformed(_))));
    let mut damaged = bytes.clone();
    damaged[20] ^= 1;
    assert!(
        matches!(decode(&damaged), Err(FrameError::BadCrc { .. })),
        "correlation id is covered"
    );
    let mut damaged = bytes.clone();
    damaged[len - 1] ^= 1;
    assert!(matches!(decode(&damaged), Err(FrameError::BadCrc { .. })));
}

// decode's body rules: nonzero padding, unknown codes and ack modes, bad UTF-8, lengths that
// disagree.
#[test]
fn decode_body_errors() {
    let bytes = encode(
        1,
        &Frame::Error {
            code: ErrorCode::Internal,
            message: "boom",
        },
    );
    // The Error body: code at 0, message_len at 2, padding at 4, the message at 8.
    assert!(
        malformed(bytes.clone(), 24 + 2, 0xff).contains("truncated"),
        "message_len"
    );
    assert!(
        malformed(bytes.clone(), 24 + 2, 1).contains("after the end"),
        "message_len"
    );
    assert!(malformed(bytes.clone(), 24, 99).contains("error code"));
    assert!(malformed(bytes.clone(), 24 + 6, 1).contains("padding"));
    assert!(malformed(bytes.clone(), 24 + 8, 0xff).contains("UTF-8"));

    let entry = TopicEntry {
        name: "t".to_owned(),
        partitions: 1,
        replication_factor: 3,
        topic_id: [0; 16],
        policy: policy(),
    };
    let topics = encode(1, &Frame::TopicsResponse(vec![entry]));
    let entry_position = HEADER_SIZE_BYTES + 8;
    assert!(malformed(topics.clone(), entry_position + 8, 4).contains("ack_mode"));
    assert!(malformed(topics.clone(), entry_position + 9, 2).contains("semi_sync_degrade"));
    assert!(malformed(topics.clone(), entry_position + 20, 1).contains("padding"));
    assert!(malformed(topics.clone(), HEADER_SIZE_BYTES, 2).contains("count"));
    assert!(malformed(topics, HEADER_SIZE_BYTES + 3, 0xff).contains("count"));

    let hello = encode(
        1,
        &Frame::Hello {
            cluster_id: "abc",
            node_id: NodeId(1),
        },
    );
    assert!(malformed(hello.clone(), HEADER_SIZE_BYTES + 5, b'x').contains("zero padding"));
    assert!(malformed(hello, HEADER_SIZE_BYTES, 0xff).contains("UTF-8"));

    let response = FetchResponseHeader {
        error: None,
        leader_epoch: Epoch(1),
        high_watermark: Offset(0),
        log_start: Offset(0),
        log_end: Offset(0),
    };
    let mut short = encode(1, &Frame::FetchResponse(response, b"abc"));
    short.extend_from_slice(b"ab");
    short[8] -= 1;
    fix_crc(&mut short);
    assert!(
        matches!(decode(&short), Err(FrameError::Malformed(_))),
        "records_len vs body_len"
    );
}

// Values that have no encoding are errors from try_encode and panics from encode: the
// Hello's cluster id.
#[test]
fn unencodable_cluster_id() {
    let long_id = "x".repeat(CLUSTER_ID_BYTES_MAX + 1);
    let error = try_encode(
        1,
        &Frame::Hello {
            cluster_id: &long_id,
            node_id: NodeId(1),
        },
    );
    assert_eq!(
        error,
        Err(EncodeError::TooLong {
            field: "cluster_id",
            len_bytes: 33,
            max_bytes: 32
        })
    );
    let error = try_encode(
        1,
        &Frame::Hello {
            cluster_id: "a\0b",
            node_id: NodeId(1),
        },
    );
    assert!(matches!(
        error,
        Err(EncodeError::Unrepresentable {
            field: "cluster_id",
            ..
        })
    ));
}

// Values that have no encoding: the reserved epoch, a message too long for its length field,
// a body above the frame limit.
#[test]
fn unencodable_values() {
    let fetch = Fetch {
        topic: "t",
        partition: 0,
        fetch_offset: Offset(0),
        last_fetched_epoch: Some(Epoch(u32::MAX)),
        max_bytes: 0,
        max_wait_ms: 0,
        written_end: Offset(0),
        durable_end: Offset(0),
    };
    let error = try_encode(1, &Frame::Fetch(fetch));
    assert!(matches!(
        error,
        Err(EncodeError::Unrepresentable {
            field: "last_fetched_epoch",
            ..
        })
    ));
    let long_message = "m".repeat(usize::from(u16::MAX) + 1);
    let error = try_encode(
        1,
        &Frame::Error {
            code: ErrorCode::Internal,
            message: &long_message,
        },
    );
    assert!(matches!(
        error,
        Err(EncodeError::TooLong {
            field: "error message",
            ..
        })
    ));
    let records = vec![0; FRAME_BYTES_MAX];
    let response = FetchResponseHeader {
        error: None,
        leader_epoch: Epoch(1),
        high_watermark: Offset(0),
        log_start: Offset(0),
        log_end: Offset(0),
    };
    let error = try_encode(1, &Frame::FetchResponse(response, &records));
    assert!(matches!(
        error,
        Err(EncodeError::TooLong {
            field: "frame body",
            ..
        })
    ));
}

#[test]
#[should_panic(expected = "cannot be encoded")]
fn encode_panics_on_unencodable() {
    let _ = encode(
        1,
        &Frame::Hello {
            cluster_id: &"x".repeat(40),
            node_id: NodeId(1),
        },
    );
}

// Error codes map to their numbers and back; 0 and unknown numbers are not codes.
#[test]
fn error_codes() {
    for (number, code) in (1..).zip(ErrorCode::ALL) {
        assert_eq!(code.as_u16(), number);
        assert_eq!(ErrorCode::from_u16(number), Some(code));
    }
    assert_eq!(ErrorCode::from_u16(0), None);
    assert_eq!(ErrorCode::from_u16(9), None);
}

// The streaming CRC of the decoder equals crates/batch's one-shot CRC32C of the same bytes.
#[test]
fn crc_matches_one_shot() {
    let header = FrameHeader {
        magic: MAGIC,
        version: VERSION,
        kind: 6,
        body_len: 3,
        crc32c: 77,
        correlation_id: 9,
    };
    let mut bytes = bytemuck::bytes_of(&FrameHeader {
        crc32c: 0,
        ..header
    })
    .to_vec();
    bytes.extend_from_slice(b"abc");
    assert_eq!(frame_crc32c(&header, b"abc"), crc_fast::crc32_iscsi(&bytes));
}

/// An owned frame, so that proptest can generate it; `frame` borrows it as a [`Frame`].
#[derive(Clone, Debug)]
enum Owned {
    Hello(String, u32),
    HelloOk(u32, u32),
    Fetch(String, [u32; 4], [u64; 3], Option<u32>),
    FetchResponse(Option<ErrorCode>, u32, [u64; 3], Vec<u8>),
    DurableReport(String, u32, [u64; 2]),
    Topics,
    TopicsResponse(Vec<TopicEntry>),
    Error(ErrorCode, String),
    HighWatermark(String, [u32; 2], [u64; 2]),
}

impl Owned {
    fn frame(&self) -> Frame<'_> {
        match self {
            Owned::Hello(cluster_id, node_id) => Frame::Hello {
                cluster_id,
                node_id: NodeId(*node_id),
            },
            Owned::HelloOk(node_id, epoch) => Frame::HelloOk {
                node_id: NodeId(*node_id),
                leader_epoch: Epoch(*epoch),
            },
            Owned::Fetch(
                topic,
                [partition, max_bytes, max_wait_ms, _],
                [fetch_offset, written, durable],
                epoch,
            ) => Frame::Fetch(Fetch {
                topic,
                partition: *partition,
                fetch_offset: Offset(*fetch_offset),
                last_fetched_epoch: epoch.map(Epoch),
                max_bytes: *max_bytes,
                max_wait_ms: *max_wait_ms,
                written_end: Offset(*written),
                durable_end: Offset(*durable),
            }),
            Owned::FetchResponse(error, epoch, [high_watermark, log_start, log_end], records) => {
                let header = FetchResponseHeader {
                    error: *error,
                    leader_epoch: Epoch(*epoch),
                    high_watermark: Offset(*high_watermark),
                    log_start: Offset(*log_start),
                    log_end: Offset(*log_end),
                };
                Frame::FetchResponse(header, records)
            }
            Owned::DurableReport(topic, partition, [written, durable]) => {
                Frame::DurableReport(DurableReport {
                    topic,
                    partition: *partition,
                    written_end: Offset(*written),
                    durable_end: Offset(*durable),
                })
            }
            Owned::Topics => Frame::Topics,
            Owned::TopicsResponse(entries) => Frame::TopicsResponse(entries.clone()),
            Owned::Error(code, message) => Frame::Error {
                code: *code,
                message,
            },
            Owned::HighWatermark(topic, [partition, epoch], [high_watermark, log_start]) => {
                Frame::HighWatermark(HighWatermark {
                    topic,
                    partition: *partition,
                    leader_epoch: Epoch(*epoch),
                    high_watermark: Offset(*high_watermark),
                    log_start: Offset(*log_start),
                })
            }
        }
    }

    /// The bytes a sender puts on the wire: for a FetchResponse, the records after `encode`.
    fn wire_bytes(&self, correlation_id: u64) -> Vec<u8> {
        let mut bytes = encode(correlation_id, &self.frame());
        if let Owned::FetchResponse(.., records) = self {
            bytes.extend_from_slice(records);
        }
        bytes
    }
}

fn text(len_max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::string::string_regex(&format!("[a-z0-9._-]{{0,{len_max}}}")).expect("a valid regex"),
        prop::collection::vec(any::<char>(), 0..len_max / 4 + 1)
            .prop_map(|chars| chars.into_iter().collect()),
    ]
}

fn topic_entry() -> impl Strategy<Value = TopicEntry> {
    let policy = (
        prop::sample::select(AckMode::ALL.to_vec()),
        0..=u32::MAX,
        any::<u64>(),
        any::<bool>(),
        0..=u32::MAX,
        any::<u64>(),
    )
        .prop_map(
            |(ack_mode, semi_sync, timeout_ms, degrade, min_insync, lag_ms)| Policy {
                ack_mode,
                semi_sync_replicas: usize::try_from(semi_sync).expect("64-bit"),
                semi_sync_timeout_ms: timeout_ms,
                semi_sync_degrade: degrade,
                min_insync_replicas: usize::try_from(min_insync).expect("64-bit"),
                replica_lag_max_ms: lag_ms,
            },
        );
    (
        text(40),
        any::<u32>(),
        any::<u16>(),
        any::<[u8; 16]>(),
        policy,
    )
        .prop_map(
            |(name, partitions, replication_factor, topic_id, policy)| TopicEntry {
                name,
                partitions,
                replication_factor,
                topic_id,
                policy,
            },
        )
}

fn owned_frame() -> impl Strategy<Value = Owned> {
    let error_code = prop::sample::select(ErrorCode::ALL.to_vec());
    let cluster_id = text(32).prop_filter("fits the Hello", |id| {
        id.len() <= CLUSTER_ID_BYTES_MAX && !id.contains('\0')
    });
    prop_oneof![
        (cluster_id, any::<u32>()).prop_map(|(id, node)| Owned::Hello(id, node)),
        (any::<u32>(), any::<u32>()).prop_map(|(node, epoch)| Owned::HelloOk(node, epoch)),
        (
            text(60),
            any::<[u32; 4]>(),
            any::<[u64; 3]>(),
            prop::option::of(0..u32::MAX)
        )
            .prop_map(|(topic, small, ends, epoch)| Owned::Fetch(topic, small, ends, epoch)),
        (
            prop::option::of(error_code.clone()),
            any::<u32>(),
            any::<[u64; 3]>(),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(error, epoch, offsets, records)| Owned::FetchResponse(
                error, epoch, offsets, records
            )),
        (text(60), any::<u32>(), any::<[u64; 2]>())
            .prop_map(|(topic, partition, ends)| Owned::DurableReport(topic, partition, ends)),
        Just(Owned::Topics),
        prop::collection::vec(topic_entry(), 0..5).prop_map(Owned::TopicsResponse),
        (error_code, text(100)).prop_map(|(code, message)| Owned::Error(code, message)),
        (text(60), any::<[u32; 2]>(), any::<[u64; 2]>())
            .prop_map(|(topic, small, offsets)| { Owned::HighWatermark(topic, small, offsets) }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    // Every kind round-trips with any field values; frame_length gives the wire length from
    // the header alone.
    #[test]
    fn round_trips(owned in owned_frame(), correlation_id in any::<u64>()) {
        let bytes = owned.wire_bytes(correlation_id);
        prop_assert_eq!(frame_length(&bytes[..HEADER_SIZE_BYTES]), Ok(Some(bytes.len())));
        prop_assert_eq!(decode(&bytes), Ok((correlation_id, owned.frame())));
    }

    // Arbitrary bytes, and arbitrary bodies behind a valid header of any kind (so the body
    // parsers run), never panic.
    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        kind in 0..10u16,
        correlation_id in any::<u64>(),
    ) {
        let _ = frame_length(&bytes);
        let _ = decode(&bytes);
        let header = FrameHeader {
            magic: MAGIC,
            version: VERSION,
            kind,
            body_len: u32::try_from(bytes.len()).expect("short"),
            crc32c: 0,
            correlation_id,
        };
        let mut framed = bytemuck::bytes_of(&header).to_vec();
        framed.extend_from_slice(&bytes);
        fix_crc(&mut framed);
        let _ = frame_length(&framed);
        let _ = decode(&framed);
    }

    // Valid frames with bytes changed, with and without a repaired CRC, and cut anywhere,
    // never panic; a change the CRC covers is detected unless the CRC was repaired.
    #[test]
    fn mutated_frames_never_panic(
        owned in owned_frame(),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4),
        cut in any::<prop::sample::Index>(),
        repair_crc in any::<bool>(),
    ) {
        let original = owned.wire_bytes(1);
        let mut bytes = original.clone();
        for (index, flip) in &mutations {
            let position = index.index(bytes.len());
            bytes[position] ^= flip;
        }
        if repair_crc {
            fix_crc(&mut bytes);
        }
        let _ = frame_length(&bytes);
        let decoded = decode(&bytes);
        let records_start = match owned {
            Owned::FetchResponse(..) => HEADER_SIZE_BYTES + 40,
            _ => bytes.len(),
        };
        let covered_changed = bytes[..records_start] != original[..records_start];
        if !repair_crc && covered_changed {
            prop_assert!(decoded.is_err(), "undetected change: {:?}", decoded);
        }
        let cut = cut.index(bytes.len() + 1);
        let _ = frame_length(&bytes[..cut]);
        let _ = decode(&bytes[..cut]);
    }
}
