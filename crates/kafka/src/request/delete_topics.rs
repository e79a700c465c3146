//! DeleteTopics request body (v1-6).
//!
//! Invariants: v1-5 carry a list of names (`topic_names`); v6 replaced it with `topics`,
//! each a nullable name and a topic id; flexible from v4.

use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{DeleteTopicsRequest, TopicName};

use crate::error::DecodeError;
use crate::wire::Reader;

pub(super) fn decode(
    reader: &mut Reader,
    version: i16,
) -> Result<DeleteTopicsRequest, DecodeError> {
    let mut request = DeleteTopicsRequest::default();
    if version >= 6 {
        request.topics = reader.array_of("DeleteTopics.topics", 1, |reader| {
            let mut topic = DeleteTopicState::default();
            topic.name = reader
                .nullable_string("DeleteTopics.topics[].name")?
                .map(TopicName);
            topic.topic_id = reader.uuid("DeleteTopics.topics[].topic_id")?;
            reader.tagged_fields("DeleteTopics.topics[].tagged_fields", |_tag, _value| {
                Ok(false)
            })?;
            Ok(topic)
        })?;
    } else {
        request.topic_names = reader.array_of("DeleteTopics.topic_names", 1, |reader| {
            Ok(TopicName(reader.string("DeleteTopics.topic_names[]")?))
        })?;
    }
    request.timeout_ms = reader.i32("DeleteTopics.timeout_ms")?;
    reader.tagged_fields("DeleteTopics.tagged_fields", |_tag, _value| Ok(false))?;
    Ok(request)
}
