//! Metadata request body (v0-12).
//!
//! Invariants: `topics` is a non-null array in v0 and nullable from v1 (null = all topics);
//! from v10 each topic carries a topic id and its name becomes nullable.

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};

use crate::error::DecodeError;
use crate::wire::Reader;

pub(super) fn decode(reader: &mut Reader, version: i16) -> Result<MetadataRequest, DecodeError> {
    let mut request = MetadataRequest::default();
    let field = "Metadata.topics";
    request.topics = if version >= 1 {
        reader.nullable_array(field, 1, |reader| decode_topic(reader, version))?
    } else {
        Some(reader.array_of(field, 1, |reader| decode_topic(reader, version))?)
    };
    if version >= 4 {
        request.allow_auto_topic_creation = reader.bool("Metadata.allow_auto_topic_creation")?;
    }
    if (8..=10).contains(&version) {
        request.include_cluster_authorized_operations =
            reader.bool("Metadata.include_cluster_authorized_operations")?;
    }
    if version >= 8 {
        request.include_topic_authorized_operations =
            reader.bool("Metadata.include_topic_authorized_operations")?;
    }
    reader.tagged_fields("Metadata.tagged_fields", |_tag, _value| Ok(false))?;
    Ok(request)
}

fn decode_topic(reader: &mut Reader, version: i16) -> Result<MetadataRequestTopic, DecodeError> {
    let mut topic = MetadataRequestTopic::default();
    if version >= 10 {
        topic.topic_id = reader.uuid("Metadata.topics[].topic_id")?;
        topic.name = reader
            .nullable_string("Metadata.topics[].name")?
            .map(TopicName);
    } else {
        topic.name = Some(TopicName(reader.string("Metadata.topics[].name")?));
    }
    reader.tagged_fields("Metadata.topics[].tagged_fields", |_tag, _value| Ok(false))?;
    Ok(topic)
}
