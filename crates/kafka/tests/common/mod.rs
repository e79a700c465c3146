//! Test helpers that play a Kafka client: requests are encoded and responses decoded with
//! kafka-protocol's client side, independently of the code under test. The sample builders
//! fill exactly the fields each version carries, with non-default values where possible, so
//! that a field read from the wrong place cannot go unnoticed.
#![allow(dead_code)] // Each test binary uses its own subset of the helpers.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest,
    FindCoordinatorRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest, RequestHeader,
    ResponseHeader, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use ringlog_batch::BatchBuilder;
use ringlog_kafka::{decode_request, ApiKey, Decoded, Request, SUPPORTED};

pub const CORRELATION_ID: i32 = 0x0102_0304;

pub fn name(text: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(text))
}

/// The request frame (without size prefix) a client sends for `body` at `version`.
pub fn request_frame<R: Encodable + HeaderVersion>(
    api_key: ApiKey,
    version: i16,
    body: &R,
) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = api_key.code();
    header.request_api_version = version;
    header.correlation_id = CORRELATION_ID;
    header.client_id = Some(StrBytes::from_static_str("golden-client"));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, R::header_version(version))
        .expect("header encodes");
    body.encode(&mut out, version).expect("body encodes");
    out.freeze()
}

/// Decodes a frame that must be a served request.
pub fn decode_served(frame: Bytes) -> Request {
    match decode_request(frame).expect("decodes") {
        Decoded::Request { header, request } => {
            assert_eq!(header.correlation_id, CORRELATION_ID);
            assert_eq!(header.client_id.as_deref(), Some("golden-client"));
            request
        }
        Decoded::Refused(refusal) => panic!("refused: {refusal:?}"),
    }
}

/// Decodes a framed response (with size prefix) the way a client does, checking that the
/// size prefix is exact and that the body uses every byte.
pub fn decode_response<R: Decodable + HeaderVersion>(frame: &[u8], version: i16) -> R {
    let (correlation_id, body) =
        decode_response_with_header::<R>(frame, version, R::header_version(version));
    assert_eq!(correlation_id, CORRELATION_ID);
    body
}

pub fn decode_response_with_header<R: Decodable>(
    frame: &[u8],
    version: i16,
    header_version: i16,
) -> (i32, R) {
    let size_bytes = i32::from_be_bytes(frame[..4].try_into().unwrap());
    assert_eq!(
        usize::try_from(size_bytes).unwrap(),
        frame.len() - 4,
        "size prefix"
    );
    let mut buffer = Bytes::copy_from_slice(&frame[4..]);
    let header = ResponseHeader::decode(&mut buffer, header_version).expect("header decodes");
    let body = R::decode(&mut buffer, version).expect("body decodes");
    assert!(
        buffer.is_empty(),
        "{} bytes left after the body",
        buffer.len()
    );
    (header.correlation_id, body)
}

/// The served versions of `api_key` (Produce from v3).
pub fn served_versions(api_key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let &(_, version_min, version_max) = SUPPORTED
        .iter()
        .find(|entry| entry.0 == api_key)
        .expect("in the table");
    let version_min = match api_key {
        ApiKey::Produce => ringlog_kafka::PRODUCE_VERSION_SERVED_MIN,
        _ => version_min,
    };
    version_min..=version_max
}

/// A valid RecordBatch v2 with `count` records.
pub fn batch(count: usize, seed: u8) -> Vec<u8> {
    let mut builder = BatchBuilder::new(1_700_000_000_000);
    for index in 0..count {
        let value = vec![seed.wrapping_add(u8::try_from(index % 251).unwrap()); 10 + index];
        builder.push(
            1_700_000_000_000 + i64::try_from(index).unwrap(),
            Some(b"key"),
            Some(&value),
            &[],
        );
    }
    builder.build()
}

pub fn sample_api_versions(version: i16) -> ApiVersionsRequest {
    let mut request = ApiVersionsRequest::default();
    if version >= 3 {
        request.client_software_name = StrBytes::from_static_str("librdkafka");
        request.client_software_version = StrBytes::from_static_str("2.6.1");
    }
    request
}

pub fn sample_metadata(version: i16) -> MetadataRequest {
    let topic = |text: &'static str, id: u128| {
        let mut topic = MetadataRequestTopic::default().with_name(Some(name(text)));
        if version >= 10 {
            topic.topic_id = uuid::Uuid::from_u128(id);
        }
        topic
    };
    let mut request =
        MetadataRequest::default().with_topics(Some(vec![topic("orders", 7), topic("events", 9)]));
    if version >= 4 {
        request.allow_auto_topic_creation = false;
    }
    if (8..=10).contains(&version) {
        request.include_cluster_authorized_operations = true;
    }
    if version >= 8 {
        request.include_topic_authorized_operations = true;
    }
    request
}

/// A Produce request with two topics, three partitions and real batches.
pub fn sample_produce(version: i16) -> ProduceRequest {
    let partition = |index: i32, records: Vec<u8>| {
        PartitionProduceData::default()
            .with_index(index)
            .with_records(Some(Bytes::from(records)))
    };
    let mut request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("orders"))
                .with_partition_data(vec![partition(0, batch(3, 1)), partition(5, batch(1, 2))]),
            TopicProduceData::default()
                .with_name(name("events"))
                .with_partition_data(vec![partition(2, batch(40, 3))]),
        ]);
    if version >= 3 {
        request.transactional_id = None;
    }
    request
}

pub fn sample_fetch(version: i16) -> FetchRequest {
    let partition = |index: i32, fetch_offset: i64| {
        let mut partition = FetchPartition::default()
            .with_partition(index)
            .with_fetch_offset(fetch_offset)
            .with_partition_max_bytes(1 << 20);
        if version >= 5 {
            partition.log_start_offset = 3;
        }
        if version >= 9 {
            partition.current_leader_epoch = 4;
        }
        if version >= 12 {
            partition.last_fetched_epoch = 2;
        }
        partition
    };
    let mut request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_isolation_level(1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(name("orders"))
                .with_partitions(vec![partition(0, 100), partition(1, 0)]),
            FetchTopic::default()
                .with_topic(name("events"))
                .with_partitions(vec![partition(7, 42)]),
        ]);
    if version >= 7 {
        request.session_id = 0;
        request.session_epoch = -1;
        request.forgotten_topics_data = vec![ForgottenTopic::default()
            .with_topic(name("old"))
            .with_partitions(vec![1, 2, 3])];
    }
    if version >= 11 {
        request.rack_id = StrBytes::from_static_str("rack-a");
    }
    if version >= 12 {
        request.cluster_id = Some(StrBytes::from_static_str("ringlog-cluster"));
    }
    request
}

pub fn sample_list_offsets(version: i16) -> ListOffsetsRequest {
    let partition = |index: i32, timestamp: i64| {
        let mut partition = ListOffsetsPartition::default()
            .with_partition_index(index)
            .with_timestamp(timestamp);
        if version >= 4 {
            partition.current_leader_epoch = 6;
        }
        partition
    };
    let mut request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("orders"))
            .with_partitions(vec![
                partition(0, -1),
                partition(1, -2),
                partition(2, 1_700_000_000_000),
            ])]);
    if version >= 2 {
        request.isolation_level = 1;
    }
    request
}

pub fn sample_create_topics(_version: i16) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name("orders"))
                .with_num_partitions(6)
                .with_replication_factor(3)
                .with_configs(vec![
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("86400000"))),
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("cleanup.policy"))
                        .with_value(None),
                ]),
            CreatableTopic::default()
                .with_name(name("pinned"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(1), BrokerId(2)]),
                    CreatableReplicaAssignment::default()
                        .with_partition_index(1)
                        .with_broker_ids(vec![BrokerId(2), BrokerId(3)]),
                ]),
        ])
        .with_timeout_ms(15_000)
        .with_validate_only(true)
}

pub fn sample_delete_topics(version: i16) -> DeleteTopicsRequest {
    let request = DeleteTopicsRequest::default().with_timeout_ms(20_000);
    if version >= 6 {
        request.with_topics(vec![
            DeleteTopicState::default().with_name(Some(name("orders"))),
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(uuid::Uuid::from_u128(0xabcdef)),
        ])
    } else {
        request.with_topic_names(vec![name("orders"), name("events")])
    }
}

/// A FindCoordinator request: one key up to v3 (a transactional id from v1, where the key
/// type first appears), a batch of three group ids from v4 (share groups, key type 2, in
/// v6, the version that added them).
pub fn sample_find_coordinator(version: i16) -> FindCoordinatorRequest {
    let request = FindCoordinatorRequest::default();
    match version {
        0 => request.with_key(StrBytes::from_static_str("orders-group")),
        1..=3 => request
            .with_key(StrBytes::from_static_str("tx-orders"))
            .with_key_type(1),
        _ => request
            .with_key_type(if version >= 6 { 2 } else { 0 })
            .with_coordinator_keys(vec![
                StrBytes::from_static_str("group-a"),
                StrBytes::from_static_str(""),
                StrBytes::from_static_str("group-c"),
            ]),
    }
}

/// One valid request frame for every served API and version, with what it decodes to.
pub fn every_served_request() -> Vec<(ApiKey, i16, Bytes, Request)> {
    let mut frames = Vec::new();
    for api_key in ApiKey::ALL {
        for version in served_versions(api_key) {
            let (frame, request) = match api_key {
                ApiKey::ApiVersions => {
                    let body = sample_api_versions(version);
                    (
                        request_frame(api_key, version, &body),
                        Request::ApiVersions(body),
                    )
                }
                ApiKey::Metadata => {
                    let body = sample_metadata(version);
                    (
                        request_frame(api_key, version, &body),
                        Request::Metadata(body),
                    )
                }
                ApiKey::Produce => {
                    let body = sample_produce(version);
                    (
                        request_frame(api_key, version, &body),
                        Request::Produce(body),
                    )
                }
                ApiKey::Fetch => {
                    let body = sample_fetch(version);
                    (request_frame(api_key, version, &body), Request::Fetch(body))
                }
                ApiKey::ListOffsets => {
                    let body = sample_list_offsets(version);
                    (
                        request_frame(api_key, version, &body),
                        Request::ListOffsets(body),
                    )
                }
                ApiKey::CreateTopics => {
                    let body = sample_create_topics(version);
                    (
                        request_frame(api_key, version, &body),
                        Request::CreateTopics(body),
                    )
                }
                ApiKey::DeleteTopics => {
                    let body = sample_delete_topics(version);
                    (
                        request_frame(api_key, version, &body),
                        Request::DeleteTopics(body),
                    )
                }
                ApiKey::FindCoordinator => {
                    let body = sample_find_coordinator(version);
                    (
                        request_frame(api_key, version, &body),
                        Request::FindCoordinator(body),
                    )
                }
            };
            frames.push((api_key, version, frame, request));
        }
    }
    frames
}

/// A transactional id, for the one test that wants it set.
pub fn transactional_id(text: &'static str) -> TransactionalId {
    TransactionalId(StrBytes::from_static_str(text))
}
