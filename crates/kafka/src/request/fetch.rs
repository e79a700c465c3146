//! Fetch request body (v4-12).
//!
//! Invariants: fields appear in Kafka's order with their version gates (max_bytes v3+,
//! isolation_level v4+, log_start_offset v5+, sessions and forgotten topics v7+,
//! current_leader_epoch v9+, rack_id v11+, last_fetched_epoch and flexible v12+); the only
//! known tagged field in this range is `cluster_id` (tag 0, v12+).

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};

use crate::error::DecodeError;
use crate::wire::Reader;

/// Tag of `cluster_id` in the flexible request's top-level tagged fields.
const CLUSTER_ID_TAG: u32 = 0;

pub(super) fn decode(reader: &mut Reader, version: i16) -> Result<FetchRequest, DecodeError> {
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(reader.i32("Fetch.replica_id")?);
    request.max_wait_ms = reader.i32("Fetch.max_wait_ms")?;
    request.min_bytes = reader.i32("Fetch.min_bytes")?;
    request.max_bytes = reader.i32("Fetch.max_bytes")?;
    request.isolation_level = reader.i8("Fetch.isolation_level")?;
    if version >= 7 {
        request.session_id = reader.i32("Fetch.session_id")?;
        request.session_epoch = reader.i32("Fetch.session_epoch")?;
    }
    request.topics = reader.array_of("Fetch.topics", 1, |reader| decode_topic(reader, version))?;
    if version >= 7 {
        request.forgotten_topics_data =
            reader.array_of("Fetch.forgotten_topics_data", 1, decode_forgotten_topic)?;
    }
    if version >= 11 {
        request.rack_id = reader.string("Fetch.rack_id")?;
    }
    let mut cluster_id = None;
    reader.tagged_fields("Fetch.tagged_fields", |tag, value| {
        if tag != CLUSTER_ID_TAG {
            return Ok(false);
        }
        cluster_id = value.nullable_string("Fetch.cluster_id")?;
        Ok(true)
    })?;
    request.cluster_id = cluster_id;
    Ok(request)
}

fn decode_topic(reader: &mut Reader, version: i16) -> Result<FetchTopic, DecodeError> {
    let mut topic = FetchTopic::default();
    topic.topic = TopicName(reader.string("Fetch.topics[].topic")?);
    topic.partitions = reader.array_of("Fetch.topics[].partitions", 4, |reader| {
        decode_partition(reader, version)
    })?;
    reader.tagged_fields("Fetch.topics[].tagged_fields", |_tag, _value| Ok(false))?;
    Ok(topic)
}

fn decode_partition(reader: &mut Reader, version: i16) -> Result<FetchPartition, DecodeError> {
    let mut partition = FetchPartition::default();
    partition.partition = reader.i32("Fetch.topics[].partitions[].partition")?;
    if version >= 9 {
        partition.current_leader_epoch =
            reader.i32("Fetch.topics[].partitions[].current_leader_epoch")?;
    }
    partition.fetch_offset = reader.i64("Fetch.topics[].partitions[].fetch_offset")?;
    if version >= 12 {
        partition.last_fetched_epoch =
            reader.i32("Fetch.topics[].partitions[].last_fetched_epoch")?;
    }
    if version >= 5 {
        partition.log_start_offset = reader.i64("Fetch.topics[].partitions[].log_start_offset")?;
    }
    partition.partition_max_bytes =
        reader.i32("Fetch.topics[].partitions[].partition_max_bytes")?;
    reader.tagged_fields(
        "Fetch.topics[].partitions[].tagged_fields",
        |_tag, _value| Ok(false),
    )?;
    Ok(partition)
}

fn decode_forgotten_topic(reader: &mut Reader) -> Result<ForgottenTopic, DecodeError> {
    let mut topic = ForgottenTopic::default();
    topic.topic = TopicName(reader.string("Fetch.forgotten_topics_data[].topic")?);
    topic.partitions =
        reader.array_of("Fetch.forgotten_topics_data[].partitions", 4, |reader| {
            reader.i32("Fetch.forgotten_topics_data[].partitions[]")
        })?;
    reader.tagged_fields(
        "Fetch.forgotten_topics_data[].tagged_fields",
        |_tag, _value| Ok(false),
    )?;
    Ok(topic)
}
