//! Produce request body (v0-11; v0-2 only to refuse them).
//!
//! Invariants: v3 added `transactional_id` in front and is otherwise the v0-2 layout, so one
//! decoder reads all of them; each partition's `records` is a zero-copy slice of the frame,
//! never parsed here (the server validates it with `ringlog_batch::validate`).

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName, TransactionalId};

use crate::error::DecodeError;
use crate::wire::Reader;

pub(super) fn decode(reader: &mut Reader, version: i16) -> Result<ProduceRequest, DecodeError> {
    let mut request = ProduceRequest::default();
    if version >= 3 {
        request.transactional_id = reader
            .nullable_string("Produce.transactional_id")?
            .map(TransactionalId);
    }
    request.acks = reader.i16("Produce.acks")?;
    request.timeout_ms = reader.i32("Produce.timeout_ms")?;
    request.topic_data = reader.array_of("Produce.topic_data", 1, decode_topic)?;
    reader.tagged_fields("Produce.tagged_fields", |_tag, _value| Ok(false))?;
    Ok(request)
}

fn decode_topic(reader: &mut Reader) -> Result<TopicProduceData, DecodeError> {
    let mut topic = TopicProduceData::default();
    topic.name = TopicName(reader.string("Produce.topic_data[].name")?);
    topic.partition_data =
        reader.array_of("Produce.topic_data[].partition_data", 4, decode_partition)?;
    reader.tagged_fields("Produce.topic_data[].tagged_fields", |_tag, _value| {
        Ok(false)
    })?;
    Ok(topic)
}

fn decode_partition(reader: &mut Reader) -> Result<PartitionProduceData, DecodeError> {
    let mut partition = PartitionProduceData::default();
    partition.index = reader.i32("Produce.topic_data[].partition_data[].index")?;
    partition.records = reader.nullable_bytes("Produce.topic_data[].partition_data[].records")?;
    reader.tagged_fields(
        "Produce.topic_data[].partition_data[].tagged_fields",
        |_tag, _value| Ok(false),
    )?;
    Ok(partition)
}
