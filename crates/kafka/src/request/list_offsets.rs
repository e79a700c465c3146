//! ListOffsets request body (v1-7).
//!
//! Invariants: isolation_level from v2, current_leader_epoch from v4, flexible from v6; the
//! v0-only `max_num_offsets` is outside the served range.

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};

use crate::error::DecodeError;
use crate::wire::Reader;

pub(super) fn decode(reader: &mut Reader, version: i16) -> Result<ListOffsetsRequest, DecodeError> {
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(reader.i32("ListOffsets.replica_id")?);
    if version >= 2 {
        request.isolation_level = reader.i8("ListOffsets.isolation_level")?;
    }
    request.topics = reader.array_of("ListOffsets.topics", 1, |reader| {
        decode_topic(reader, version)
    })?;
    reader.tagged_fields("ListOffsets.tagged_fields", |_tag, _value| Ok(false))?;
    Ok(request)
}

fn decode_topic(reader: &mut Reader, version: i16) -> Result<ListOffsetsTopic, DecodeError> {
    let mut topic = ListOffsetsTopic::default();
    topic.name = TopicName(reader.string("ListOffsets.topics[].name")?);
    topic.partitions = reader.array_of("ListOffsets.topics[].partitions", 4, |reader| {
        let mut partition = ListOffsetsPartition::default();
        partition.partition_index =
            reader.i32("ListOffsets.topics[].partitions[].partition_index")?;
        if version >= 4 {
            partition.current_leader_epoch =
                reader.i32("ListOffsets.topics[].partitions[].current_leader_epoch")?;
        }
        partition.timestamp = reader.i64("ListOffsets.topics[].partitions[].timestamp")?;
        reader.tagged_fields(
            "ListOffsets.topics[].partitions[].tagged_fields",
            |_tag, _value| Ok(false),
        )?;
        Ok(partition)
    })?;
    reader.tagged_fields("ListOffsets.topics[].tagged_fields", |_tag, _value| {
        Ok(false)
    })?;
    Ok(topic)
}
