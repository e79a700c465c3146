//! Response encoding checked by decoding the output with kafka-protocol's client side, the
//! way a Kafka client reads it: golden round trips for every API and served version, the
//! ApiVersions header rule, the gather-list Fetch encoder, and encode errors.
// Test helpers unwrap freely (a failure is the test's answer), and Kafka's wire is
// big-endian.
#![allow(clippy::unwrap_used, clippy::big_endian_bytes)]

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::fetch_response as kafka_fetch;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, CreateTopicsResponse, DeleteTopicsResponse,
    FindCoordinatorResponse, ListOffsetsResponse, MetadataResponse, ProduceResponse,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, StrBytes};
use ringlog_kafka::{
    api_versions_response, encode_fetch_response, encode_response, find_coordinator_error_response,
    ApiKey, CurrentLeader, DivergingEpoch, EncodeError, ErrorCode, FetchPartitionResponse,
    FetchResponse, FetchTopicResponse, RequestHeader, Response, SUPPORTED,
};

fn header(api_key: ApiKey, api_version: i16) -> RequestHeader {
    RequestHeader {
        api_key,
        api_version,
        correlation_id: CORRELATION_ID,
        client_id: None,
    }
}

/// Encodes `response` for `api_key` at `version` and decodes it back as a client.
fn round_trip<R: Decodable + HeaderVersion>(
    api_key: ApiKey,
    version: i16,
    response: Response,
) -> R {
    let mut out = BytesMut::from(&b"previous frame"[..]);
    let size_bytes = encode_response(&mut out, &header(api_key, version), &response)
        .unwrap_or_else(|error| panic!("{api_key} v{version}: {error}"));
    assert_eq!(&out[..14], b"previous frame", "output is appended");
    assert_eq!(out.len(), 14 + size_bytes);
    decode_response::<R>(&out[14..], version)
}

fn sample_metadata_response(version: i16) -> MetadataResponse {
    let mut broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(1))
        .with_host(StrBytes::from_static_str("10.0.0.1"))
        .with_port(9092);
    if version >= 1 {
        broker.rack = Some(StrBytes::from_static_str("rack-a"));
    }
    let mut partition = MetadataResponsePartition::default()
        .with_error_code(ErrorCode::None.code())
        .with_partition_index(0)
        .with_leader_id(BrokerId(1))
        .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
        .with_isr_nodes(vec![BrokerId(1)]);
    if version >= 5 {
        partition.offline_replicas = vec![BrokerId(2)];
    }
    if version >= 7 {
        partition.leader_epoch = 5;
    }
    let mut topic = MetadataResponseTopic::default()
        .with_error_code(ErrorCode::None.code())
        .with_name(Some(name("orders")))
        .with_partitions(vec![partition]);
    if version >= 10 {
        topic.topic_id = uuid::Uuid::from_u128(77);
    }
    if version >= 8 {
        topic.topic_authorized_operations = 0x0f;
    }
    let missing = MetadataResponseTopic::default()
        .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
        .with_name(Some(name("missing")));
    let mut response = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_topics(vec![topic, missing]);
    if version >= 1 {
        response.controller_id = BrokerId(1);
    }
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_static_str("ringlog-cluster"));
    }
    if version >= 3 {
        response.throttle_time_ms = 3;
    }
    if (8..=10).contains(&version) {
        response.cluster_authorized_operations = 0x1f;
    }
    response
}

fn sample_produce_response(version: i16) -> ProduceResponse {
    let partition = |index: i32, error_code: ErrorCode, base_offset: i64| {
        let mut partition = PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(error_code.code())
            .with_base_offset(base_offset)
            .with_log_append_time_ms(-1);
        if version >= 5 {
            partition.log_start_offset = 0;
        }
        if version >= 8 && error_code != ErrorCode::None {
            partition.error_message = Some(StrBytes::from_static_str("not the leader"));
        }
        partition
    };
    ProduceResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(vec![TopicProduceResponse::default()
            .with_name(name("orders"))
            .with_partition_responses(vec![
                partition(0, ErrorCode::None, 1000),
                partition(5, ErrorCode::NotLeaderOrFollower, -1),
            ])])
}

fn sample_list_offsets_response(version: i16) -> ListOffsetsResponse {
    let mut partition = ListOffsetsPartitionResponse::default()
        .with_partition_index(0)
        .with_error_code(ErrorCode::None.code())
        .with_timestamp(-1)
        .with_offset(4321);
    if version >= 4 {
        partition.leader_epoch = 3;
    }
    let mut response =
        ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
            .with_name(name("orders"))
            .with_partitions(vec![
                partition,
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(9)
                    .with_error_code(ErrorCode::UnknownTopicOrPartition.code()),
            ])]);
    if version >= 2 {
        response.throttle_time_ms = 1;
    }
    response
}

fn sample_create_topics_response(version: i16) -> CreateTopicsResponse {
    let mut created = CreatableTopicResult::default()
        .with_name(name("orders"))
        .with_error_code(ErrorCode::None.code());
    if version >= 5 {
        created.num_partitions = 6;
        created.replication_factor = 3;
        created.configs = Some(vec![CreatableTopicConfigs::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("86400000")))]);
    }
    if version >= 7 {
        created.topic_id = uuid::Uuid::from_u128(5);
    }
    let existing = CreatableTopicResult::default()
        .with_name(name("events"))
        .with_error_code(ErrorCode::TopicAlreadyExists.code())
        .with_error_message(Some(StrBytes::from_static_str("exists")));
    CreateTopicsResponse::default()
        .with_throttle_time_ms(0)
        .with_topics(vec![created, existing])
}

fn sample_delete_topics_response(version: i16) -> DeleteTopicsResponse {
    let mut deleted = DeletableTopicResult::default()
        .with_name(Some(name("orders")))
        .with_error_code(ErrorCode::None.code());
    if version >= 6 {
        deleted.topic_id = uuid::Uuid::from_u128(5);
    }
    let mut missing = DeletableTopicResult::default()
        .with_name(Some(name("missing")))
        .with_error_code(ErrorCode::UnknownTopicOrPartition.code());
    if version >= 5 {
        missing.error_message = Some(StrBytes::from_static_str("no such topic"));
    }
    DeleteTopicsResponse::default()
        .with_throttle_time_ms(0)
        .with_responses(vec![deleted, missing])
}

// Checks, for every API with a kafka-protocol response struct and every served version (so
// each range's min and max), that the framed response decodes, as a client decodes it, to
// exactly the struct the server filled: the size prefix, the header version and the body
// version all agree with what the client expects.
#[test]
fn every_response_round_trips() {
    let mut checked = 0;
    for api_key in ApiKey::ALL {
        for version in served_versions(api_key) {
            match api_key {
                ApiKey::ApiVersions => {
                    let response = api_versions_response(ErrorCode::None).with_throttle_time_ms(0);
                    let decoded: ApiVersionsResponse =
                        round_trip(api_key, version, Response::ApiVersions(response.clone()));
                    assert_eq!(decoded, response, "v{version}");
                }
                ApiKey::Metadata => {
                    let response = sample_metadata_response(version);
                    let decoded: MetadataResponse =
                        round_trip(api_key, version, Response::Metadata(response.clone()));
                    assert_eq!(decoded, response, "v{version}");
                }
                ApiKey::Produce => {
                    let response = sample_produce_response(version);
                    let decoded: ProduceResponse =
                        round_trip(api_key, version, Response::Produce(response.clone()));
                    assert_eq!(decoded, response, "v{version}");
                }
                ApiKey::ListOffsets => {
                    let response = sample_list_offsets_response(version);
                    let decoded: ListOffsetsResponse =
                        round_trip(api_key, version, Response::ListOffsets(response.clone()));
                    assert_eq!(decoded, response, "v{version}");
                }
                ApiKey::CreateTopics => {
                    let response = sample_create_topics_response(version);
                    let decoded: CreateTopicsResponse =
                        round_trip(api_key, version, Response::CreateTopics(response.clone()));
                    assert_eq!(decoded, response, "v{version}");
                }
                ApiKey::DeleteTopics => {
                    let response = sample_delete_topics_response(version);
                    let decoded: DeleteTopicsResponse =
                        round_trip(api_key, version, Response::DeleteTopics(response.clone()));
                    assert_eq!(decoded, response, "v{version}");
                }
                ApiKey::FindCoordinator => {
                    let request = sample_find_coordinator(version);
                    let response = find_coordinator_error_response(
                        &request,
                        version,
                        ErrorCode::CoordinatorNotAvailable,
                    )
                    .with_throttle_time_ms(if version >= 1 { 2 } else { 0 });
                    let decoded: FindCoordinatorResponse = round_trip(
                        api_key,
                        version,
                        Response::FindCoordinator(response.clone()),
                    );
                    assert_eq!(decoded, response, "v{version}");
                }
                ApiKey::Fetch => continue,
            }
            checked += 1;
        }
    }
    assert!(checked > 42, "{checked}");
}

// Checks KIP-511's header rule on the bytes: an ApiVersions v3 response (a flexible body)
// still has response header v0, so the error code follows the correlation id directly,
// while a flexible Metadata response has header v1 (an empty tagged-field byte). Also
// checks that the advertised ranges are SUPPORTED, untouched.
#[test]
fn api_versions_response_uses_header_v0() {
    let mut out = BytesMut::new();
    let response = Response::ApiVersions(api_versions_response(ErrorCode::None));
    encode_response(&mut out, &header(ApiKey::ApiVersions, 3), &response).unwrap();
    assert_eq!(&out[4..8], &CORRELATION_ID.to_be_bytes());
    assert_eq!(
        &out[8..10],
        &[0, 0],
        "error_code right after the correlation id"
    );
    let decoded: ApiVersionsResponse = decode_response(&out, 3);
    let ranges: Vec<(i16, i16, i16)> = decoded
        .api_keys
        .iter()
        .map(|api: &ApiVersion| (api.api_key, api.min_version, api.max_version))
        .collect();
    let expected: Vec<(i16, i16, i16)> = SUPPORTED
        .iter()
        .map(|&(api_key, min, max)| (api_key.code(), min, max))
        .collect();
    assert_eq!(ranges, expected);

    let mut out = BytesMut::new();
    let response = Response::Metadata(sample_metadata_response(12));
    encode_response(&mut out, &header(ApiKey::Metadata, 12), &response).unwrap();
    assert_eq!(&out[4..8], &CORRELATION_ID.to_be_bytes());
    assert_eq!(out[8], 0, "header v1 tagged fields");
}

// Checks that a response the client's version cannot carry is an error that leaves the
// output buffer as it was (no half frame), here a Metadata v11 response carrying the
// cluster-wide authorized operations that only v8-10 have.
#[test]
fn unencodable_response_leaves_output_untouched() {
    let mut out = BytesMut::from(&b"keep"[..]);
    let response = sample_metadata_response(11).with_cluster_authorized_operations(0x1f);
    let error = encode_response(
        &mut out,
        &header(ApiKey::Metadata, 11),
        &Response::Metadata(response),
    )
    .expect_err("v11 has no cluster_authorized_operations");
    assert!(matches!(
        error,
        EncodeError::Message {
            api_key: ApiKey::Metadata,
            api_version: 11,
            ..
        }
    ));
    assert_eq!(&out[..], b"keep");
}

fn chunks_of(batches: &[Vec<u8>]) -> Vec<Bytes> {
    batches
        .iter()
        .map(|batch| Bytes::from(batch.clone()))
        .collect()
}

fn sample_fetch_response(version: i16) -> FetchResponse {
    let mut leading = FetchPartitionResponse {
        partition_index: 0,
        error_code: ErrorCode::None,
        high_watermark: 1200,
        last_stable_offset: 1200,
        log_start_offset: 0,
        diverging_epoch: None,
        current_leader: None,
        preferred_read_replica: -1,
        // Three runs of whole batches, as the log returns them, plus an empty one.
        records: chunks_of(&[batch(2, 1), batch(5, 2), Vec::new(), batch(1, 3)]),
    };
    let mut fenced = FetchPartitionResponse::error(3, ErrorCode::FencedLeaderEpoch);
    if version >= 12 {
        leading.diverging_epoch = Some(DivergingEpoch {
            epoch: 4,
            end_offset: 900,
        });
        fenced.current_leader = Some(CurrentLeader {
            leader_id: 2,
            leader_epoch: 9,
        });
    }
    FetchResponse {
        throttle_time_ms: 0,
        error_code: ErrorCode::None,
        session_id: 0,
        topics: vec![
            FetchTopicResponse {
                topic: name("orders"),
                partitions: vec![leading, fenced],
            },
            FetchTopicResponse {
                topic: name("events"),
                partitions: vec![FetchPartitionResponse {
                    records: chunks_of(&[batch(7, 4)]),
                    high_watermark: 7,
                    last_stable_offset: 7,
                    log_start_offset: 0,
                    ..FetchPartitionResponse::error(1, ErrorCode::None)
                }],
            },
        ],
    }
}

/// Encodes a Fetch response and checks the gather list's shape: non-empty parts whose sizes
/// add up to the size prefix, with every non-empty record chunk present as itself.
fn encode_fetch(version: i16, response: &FetchResponse) -> Vec<u8> {
    let mut scratch = BytesMut::with_capacity(4096);
    let mut parts = vec![Bytes::from_static(b"earlier response")];
    let size_bytes = encode_fetch_response(
        &header(ApiKey::Fetch, version),
        response,
        &mut scratch,
        &mut parts,
    )
    .unwrap_or_else(|error| panic!("v{version}: {error}"));
    assert!(scratch.is_empty());
    assert_eq!(parts[0], Bytes::from_static(b"earlier response"));
    let parts = &parts[1..];
    assert!(parts.iter().all(|part| !part.is_empty()));
    assert_eq!(parts.iter().map(Bytes::len).sum::<usize>(), size_bytes);
    for chunk in response
        .topics
        .iter()
        .flat_map(|topic| &topic.partitions)
        .flat_map(|partition| &partition.records)
    {
        if !chunk.is_empty() {
            assert!(
                parts
                    .iter()
                    .any(|part| part.as_ptr() == chunk.as_ptr() && part.len() == chunk.len()),
                "a record chunk was copied"
            );
        }
    }
    parts.iter().flat_map(|part| part.iter().copied()).collect()
}

// Checks the Fetch encoder at every served version (4-12) by decoding its concatenated parts
// with kafka-protocol as a client: every field the version carries comes back, each
// partition's records are its chunks back to back, and the chunks themselves were passed
// through without a copy.
#[test]
fn fetch_response_round_trips_with_chunked_records() {
    for version in served_versions(ApiKey::Fetch) {
        let response = sample_fetch_response(version);
        let frame = encode_fetch(version, &response);
        let decoded: kafka_protocol::messages::FetchResponse = decode_response(&frame, version);
        assert_eq!(decoded.throttle_time_ms, response.throttle_time_ms);
        if version >= 7 {
            assert_eq!(decoded.error_code, response.error_code.code());
            assert_eq!(decoded.session_id, response.session_id);
        }
        assert_eq!(decoded.responses.len(), response.topics.len());
        for (got, sent) in decoded.responses.iter().zip(&response.topics) {
            assert_eq!(got.topic, sent.topic);
            assert_eq!(got.partitions.len(), sent.partitions.len());
            for (got, sent) in got.partitions.iter().zip(&sent.partitions) {
                check_fetch_partition(version, got, sent);
            }
        }
    }
}

fn check_fetch_partition(
    version: i16,
    got: &kafka_fetch::PartitionData,
    sent: &FetchPartitionResponse,
) {
    assert_eq!(got.partition_index, sent.partition_index);
    assert_eq!(got.error_code, sent.error_code.code());
    assert_eq!(got.high_watermark, sent.high_watermark);
    assert_eq!(got.last_stable_offset, sent.last_stable_offset);
    if version >= 5 {
        assert_eq!(got.log_start_offset, sent.log_start_offset);
    }
    assert_eq!(got.aborted_transactions, Some(Vec::new()));
    assert_eq!(
        got.preferred_read_replica,
        BrokerId(if version >= 11 {
            sent.preferred_read_replica
        } else {
            -1
        })
    );
    let expected: Vec<u8> = sent
        .records
        .iter()
        .flat_map(|chunk| chunk.iter().copied())
        .collect();
    assert_eq!(got.records.as_deref(), Some(&expected[..]), "v{version}");
    if version >= 12 {
        let diverging =
            sent.diverging_epoch
                .map_or_else(kafka_fetch::EpochEndOffset::default, |epoch| {
                    kafka_fetch::EpochEndOffset::default()
                        .with_epoch(epoch.epoch)
                        .with_end_offset(epoch.end_offset)
                });
        assert_eq!(got.diverging_epoch, diverging);
        let leader =
            sent.current_leader
                .map_or_else(kafka_fetch::LeaderIdAndEpoch::default, |leader| {
                    kafka_fetch::LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(leader.leader_id))
                        .with_leader_epoch(leader.leader_epoch)
                });
        assert_eq!(got.current_leader, leader);
    }
}

// Checks the Fetch encoder's edge shapes: no topics at all, and partitions without any
// records (the whole response is then one part), at the first and last served versions.
#[test]
fn fetch_response_without_records_is_one_part() {
    for version in [4, 12] {
        let empty = FetchResponse {
            throttle_time_ms: 0,
            error_code: ErrorCode::None,
            session_id: 0,
            topics: Vec::new(),
        };
        let mut scratch = BytesMut::new();
        let mut parts = Vec::new();
        encode_fetch_response(
            &header(ApiKey::Fetch, version),
            &empty,
            &mut scratch,
            &mut parts,
        )
        .unwrap();
        assert_eq!(parts.len(), 1);
        let decoded: kafka_protocol::messages::FetchResponse = decode_response(&parts[0], version);
        assert!(decoded.responses.is_empty());

        let errors = FetchResponse {
            topics: vec![FetchTopicResponse {
                topic: name("orders"),
                partitions: vec![FetchPartitionResponse::error(
                    0,
                    ErrorCode::NotLeaderOrFollower,
                )],
            }],
            ..empty
        };
        parts.clear();
        encode_fetch_response(
            &header(ApiKey::Fetch, version),
            &errors,
            &mut scratch,
            &mut parts,
        )
        .unwrap();
        assert_eq!(parts.len(), 1);
        let decoded: kafka_protocol::messages::FetchResponse = decode_response(&parts[0], version);
        let partition = &decoded.responses[0].partitions[0];
        assert_eq!(partition.error_code, ErrorCode::NotLeaderOrFollower.code());
        assert_eq!(partition.records.as_deref(), Some(&[][..]));
    }
}

// Checks what a client reads from ringlog's FindCoordinator answer at every served version:
// no coordinator (node -1, empty host, port -1) and COORDINATOR_NOT_AVAILABLE, in the
// top-level fields up to v3 (with Kafka's message from v1, where the field appears; v0
// leaves it at kafka-protocol's default) and
// once per requested key, in order, from v4. Also checks v0's bytes, the version librdkafka
// sends: correlation id, error 15, node -1, host "", port -1 and nothing else.
#[test]
fn find_coordinator_answers_coordinator_not_available() {
    let message = "The coordinator is not available.";
    for version in served_versions(ApiKey::FindCoordinator) {
        let request = sample_find_coordinator(version);
        let response =
            find_coordinator_error_response(&request, version, ErrorCode::CoordinatorNotAvailable);
        let decoded: FindCoordinatorResponse = round_trip(
            ApiKey::FindCoordinator,
            version,
            Response::FindCoordinator(response),
        );
        if version <= 3 {
            assert_eq!(decoded.error_code, 15, "v{version}");
            assert_eq!(decoded.node_id, BrokerId(-1), "v{version}");
            assert_eq!(decoded.host.as_str(), "", "v{version}");
            assert_eq!(decoded.port, -1, "v{version}");
            if version >= 1 {
                assert_eq!(
                    decoded.error_message.as_deref(),
                    Some(message),
                    "v{version}"
                );
            }
            assert!(decoded.coordinators.is_empty(), "v{version}");
        } else {
            let keys: Vec<&str> = decoded
                .coordinators
                .iter()
                .map(|coordinator| coordinator.key.as_str())
                .collect();
            assert_eq!(keys, ["group-a", "", "group-c"], "v{version}");
            for coordinator in &decoded.coordinators {
                assert_eq!(coordinator.error_code, 15, "v{version}");
                assert_eq!(coordinator.node_id, BrokerId(-1), "v{version}");
                assert_eq!(coordinator.host.as_str(), "", "v{version}");
                assert_eq!(coordinator.port, -1, "v{version}");
                assert_eq!(coordinator.error_message.as_deref(), Some(message));
            }
        }
    }

    let request = sample_find_coordinator(0);
    let response = find_coordinator_error_response(&request, 0, ErrorCode::CoordinatorNotAvailable);
    let mut out = BytesMut::new();
    encode_response(
        &mut out,
        &header(ApiKey::FindCoordinator, 0),
        &Response::FindCoordinator(response),
    )
    .unwrap();
    let mut expected = vec![0, 0, 0, 16];
    expected.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    expected.extend_from_slice(&[0, 15, 0xff, 0xff, 0xff, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(&out[..], &expected[..]);
}
