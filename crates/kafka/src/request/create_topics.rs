//! CreateTopics request body (v2-7).
//!
//! Invariants: the layout is the same in every served version except for the flexible
//! encoding from v5; `validate_only` exists from v1, so always here.

use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, TopicName};

use crate::error::DecodeError;
use crate::wire::Reader;

pub(super) fn decode(
    reader: &mut Reader,
    _version: i16,
) -> Result<CreateTopicsRequest, DecodeError> {
    let mut request = CreateTopicsRequest::default();
    request.topics = reader.array_of("CreateTopics.topics", 1, decode_topic)?;
    request.timeout_ms = reader.i32("CreateTopics.timeout_ms")?;
    request.validate_only = reader.bool("CreateTopics.validate_only")?;
    reader.tagged_fields("CreateTopics.tagged_fields", |_tag, _value| Ok(false))?;
    Ok(request)
}

fn decode_topic(reader: &mut Reader) -> Result<CreatableTopic, DecodeError> {
    let mut topic = CreatableTopic::default();
    topic.name = TopicName(reader.string("CreateTopics.topics[].name")?);
    topic.num_partitions = reader.i32("CreateTopics.topics[].num_partitions")?;
    topic.replication_factor = reader.i16("CreateTopics.topics[].replication_factor")?;
    topic.assignments =
        reader.array_of("CreateTopics.topics[].assignments", 4, decode_assignment)?;
    topic.configs = reader.array_of("CreateTopics.topics[].configs", 1, |reader| {
        let mut config = CreatableTopicConfig::default();
        config.name = reader.string("CreateTopics.topics[].configs[].name")?;
        config.value = reader.nullable_string("CreateTopics.topics[].configs[].value")?;
        reader.tagged_fields(
            "CreateTopics.topics[].configs[].tagged_fields",
            |_tag, _value| Ok(false),
        )?;
        Ok(config)
    })?;
    reader.tagged_fields("CreateTopics.topics[].tagged_fields", |_tag, _value| {
        Ok(false)
    })?;
    Ok(topic)
}

fn decode_assignment(reader: &mut Reader) -> Result<CreatableReplicaAssignment, DecodeError> {
    let mut assignment = CreatableReplicaAssignment::default();
    assignment.partition_index =
        reader.i32("CreateTopics.topics[].assignments[].partition_index")?;
    assignment.broker_ids = reader.array_of(
        "CreateTopics.topics[].assignments[].broker_ids",
        4,
        |reader| {
            Ok(BrokerId(
                reader.i32("CreateTopics.topics[].assignments[].broker_ids[]")?,
            ))
        },
    )?;
    reader.tagged_fields(
        "CreateTopics.topics[].assignments[].tagged_fields",
        |_tag, _value| Ok(false),
    )?;
    Ok(assignment)
}
