//! Fetch responses (v4-12), encoded as a gather list so that record bytes are never copied.
//!
//! The log answers a fetch with several runs of whole batches (one per segment read, or per
//! buffer); the caller puts them, as [`Bytes`] chunks, into each partition's `records`, and
//! [`encode_fetch_response`] emits the response as a list of [`Bytes`] parts: pieces of
//! encoded metadata from the caller's scratch buffer, interleaved with the caller's chunks
//! themselves. Sending the parts in order (one `writev`/`sendmsg` of iovecs) sends the
//! response; no record byte is touched on the way.
//!
//! kafka-protocol's `FetchResponse` cannot do this (it wants one contiguous `records` per
//! partition), so this module has its own response structs and writes the layout itself,
//! following Kafka's FetchResponse schema. Tests decode the output with kafka-protocol.
//!
//! Invariants:
//!
//! - The parts appended by one call add up to exactly one frame, and its size prefix equals
//!   the sum of their lengths minus 4: it is computed from the parts themselves, after they
//!   are complete, because a wrong prefix would desynchronise the client.
//! - Chunks are passed through as given, never empty (empty chunks are skipped) and never
//!   merged; a partition's records length is the sum of its chunk lengths.
//! - Fields the client's version lacks are not sent (error_code and session_id before v7,
//!   log_start_offset before v5, preferred_read_replica before v11, and the tagged
//!   diverging_epoch and current_leader before v12).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::TopicName;

use crate::api::ApiKey;
use crate::error::EncodeError;
use crate::error_code::ErrorCode;
use crate::frame::SIZE_PREFIX_SIZE_BYTES;
use crate::header::{put_response_header, RequestHeader};
use crate::wire::put_uvarint;

/// Tag of `diverging_epoch` in a flexible partition's tagged fields.
const DIVERGING_EPOCH_TAG: u32 = 0;
/// Tag of `current_leader` in a flexible partition's tagged fields.
const CURRENT_LEADER_TAG: u32 = 1;

/// A Fetch response, filled by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchResponse {
    /// How long the client should wait before its next request (quotas); 0 when not
    /// throttled.
    pub throttle_time_ms: i32,
    /// Top-level error (v7+), e.g. for a fetch session the server does not know.
    pub error_code: ErrorCode,
    /// The fetch session id (v7+); 0 means no session, which is all ringlog offers: the
    /// client then sends full requests.
    pub session_id: i32,
    /// One entry per topic in the request.
    pub topics: Vec<FetchTopicResponse>,
}

/// One topic of a [`FetchResponse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchTopicResponse {
    /// The topic's name.
    pub topic: TopicName,
    /// One entry per requested partition.
    pub partitions: Vec<FetchPartitionResponse>,
}

/// One partition of a [`FetchTopicResponse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchPartitionResponse {
    /// The partition.
    pub partition_index: i32,
    /// NONE, or why no records are returned.
    pub error_code: ErrorCode,
    /// The partition's high watermark, -1 if unknown.
    pub high_watermark: i64,
    /// The last stable offset; without transactions it equals the high watermark.
    pub last_stable_offset: i64,
    /// The log start offset (v5+), -1 if unknown.
    pub log_start_offset: i64,
    /// Set when the fetcher's last fetched epoch diverges from the leader's log (v12+,
    /// KIP-320): the consumer truncates to the returned end offset.
    pub diverging_epoch: Option<DivergingEpoch>,
    /// The current leader (v12+), sent with NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH
    /// so the client can skip a metadata round trip.
    pub current_leader: Option<CurrentLeader>,
    /// The replica the client should fetch from instead (v11+), -1 for none.
    pub preferred_read_replica: i32,
    /// Whole batches, as read from the log, in offset order. Sent as they are.
    pub records: Vec<Bytes>,
}

/// The largest epoch at or below the fetcher's and where it ends on the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DivergingEpoch {
    /// The epoch.
    pub epoch: i32,
    /// The offset where that epoch ends on the leader.
    pub end_offset: i64,
}

/// The partition's current leader and epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrentLeader {
    /// The leader's node id, -1 if unknown.
    pub leader_id: i32,
    /// The leader's epoch, -1 if unknown.
    pub leader_epoch: i32,
}

impl FetchPartitionResponse {
    /// A partition answer carrying only `error_code` (no records); offsets are -1, unknown.
    pub fn error(partition_index: i32, error_code: ErrorCode) -> FetchPartitionResponse {
        FetchPartitionResponse {
            partition_index,
            error_code,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            diverging_epoch: None,
            current_leader: None,
            preferred_read_replica: -1,
            records: Vec::new(),
        }
    }

    /// The records' size: the sum of the chunk lengths.
    pub fn records_size_bytes(&self) -> usize {
        self.records.iter().map(Bytes::len).sum()
    }
}

/// Appends the framed Fetch `response` to `parts` as a gather list and returns the frame's
/// size including its size prefix.
///
/// Metadata is written into `scratch`, which must be empty (only its spare capacity is used;
/// a connection reuses one) and is empty again on return. On error `parts` is left as it was
/// on entry.
///
/// # Panics
///
/// If `header` is not a Fetch request header, or `scratch` is not empty (bugs in the caller).
pub fn encode_fetch_response(
    header: &RequestHeader,
    response: &FetchResponse,
    scratch: &mut BytesMut,
    parts: &mut Vec<Bytes>,
) -> Result<usize, EncodeError> {
    assert_eq!(header.api_key, ApiKey::Fetch, "not a Fetch request");
    assert!(scratch.is_empty(), "scratch holds {} bytes", scratch.len());
    let parts_start = parts.len();
    let mut writer = GatherWriter {
        scratch,
        parts,
        head: None,
        parts_start,
    };
    let version = header.api_version;
    let result = put_fetch_response(&mut writer, version, header.correlation_id, response);
    let GatherWriter {
        scratch,
        parts,
        head,
        ..
    } = writer;
    let tail = scratch.split();
    if let Err(error) = result {
        parts.truncate(parts_start);
        return Err(error);
    }
    // The size prefix is in the first piece, which stays mutable until now; its slot in
    // `parts` holds an empty placeholder.
    let mut head = match head {
        Some(head) => {
            if !tail.is_empty() {
                parts.push(tail.freeze());
            }
            head
        }
        None => {
            assert_eq!(parts.len(), parts_start);
            parts.push(Bytes::new());
            tail
        }
    };
    let written_size_bytes: usize = parts[parts_start + 1..].iter().map(Bytes::len).sum();
    let size_bytes = head.len() + written_size_bytes;
    let Ok(body_size_bytes) = i32::try_from(size_bytes - SIZE_PREFIX_SIZE_BYTES) else {
        parts.truncate(parts_start);
        return Err(EncodeError::TooLarge {
            api_key: ApiKey::Fetch,
            api_version: version,
            size_bytes,
        });
    };
    head[..SIZE_PREFIX_SIZE_BYTES].copy_from_slice(&body_size_bytes.to_be_bytes());
    parts[parts_start] = head.freeze();
    Ok(size_bytes)
}

/// Splits `scratch` into parts around the caller's record chunks.
struct GatherWriter<'a> {
    scratch: &'a mut BytesMut,
    parts: &'a mut Vec<Bytes>,
    /// The first metadata piece, holding the size prefix that is filled in last; its slot in
    /// `parts` is `parts_start`.
    head: Option<BytesMut>,
    parts_start: usize,
}

impl GatherWriter<'_> {
    /// Ends the current metadata piece and appends `chunks` after it.
    fn put_chunks(&mut self, chunks: &[Bytes]) {
        if chunks.iter().all(Bytes::is_empty) {
            return;
        }
        let piece = self.scratch.split();
        if self.head.is_none() {
            assert_eq!(self.parts.len(), self.parts_start);
            self.head = Some(piece);
            self.parts.push(Bytes::new());
        } else {
            self.parts.push(piece.freeze());
        }
        for chunk in chunks.iter().filter(|chunk| !chunk.is_empty()) {
            self.parts.push(chunk.clone());
        }
    }
}

fn put_fetch_response(
    writer: &mut GatherWriter<'_>,
    version: i16,
    correlation_id: i32,
    response: &FetchResponse,
) -> Result<(), EncodeError> {
    let flexible = ApiKey::Fetch.is_flexible(version);
    let out = &mut *writer.scratch;
    out.put_i32(0);
    put_response_header(out, ApiKey::Fetch, version, correlation_id);
    out.put_i32(response.throttle_time_ms);
    if version >= 7 {
        out.put_i16(response.error_code.code());
        out.put_i32(response.session_id);
    }
    put_length(
        out,
        version,
        flexible,
        "responses",
        response.topics.len(),
        true,
    )?;
    for topic in &response.topics {
        let out = &mut *writer.scratch;
        let name = topic.topic.0.as_bytes();
        put_length(out, version, flexible, "topic", name.len(), false)?;
        out.put_slice(name);
        put_length(
            out,
            version,
            flexible,
            "partitions",
            topic.partitions.len(),
            true,
        )?;
        for partition in &topic.partitions {
            put_partition(writer, version, flexible, partition)?;
        }
        put_empty_tagged_fields(writer.scratch, flexible);
    }
    put_empty_tagged_fields(writer.scratch, flexible);
    Ok(())
}

fn put_partition(
    writer: &mut GatherWriter<'_>,
    version: i16,
    flexible: bool,
    partition: &FetchPartitionResponse,
) -> Result<(), EncodeError> {
    let out = &mut *writer.scratch;
    out.put_i32(partition.partition_index);
    out.put_i16(partition.error_code.code());
    out.put_i64(partition.high_watermark);
    out.put_i64(partition.last_stable_offset);
    if version >= 5 {
        out.put_i64(partition.log_start_offset);
    }
    // aborted_transactions: always empty, ringlog has no transactions.
    put_length(out, version, flexible, "aborted_transactions", 0, true)?;
    if version >= 11 {
        out.put_i32(partition.preferred_read_replica);
    }
    let records_size_bytes = partition.records_size_bytes();
    put_length(out, version, flexible, "records", records_size_bytes, true)?;
    writer.put_chunks(&partition.records);
    if flexible {
        put_partition_tagged_fields(writer.scratch, partition);
    }
    Ok(())
}

fn put_partition_tagged_fields(out: &mut BytesMut, partition: &FetchPartitionResponse) {
    let count = u32::from(partition.diverging_epoch.is_some())
        + u32::from(partition.current_leader.is_some());
    put_uvarint(out, count);
    // Tagged fields go in ascending tag order. Each value is a struct with its own (empty)
    // tagged fields: epoch i32 + end_offset i64 + 1, leader_id i32 + leader_epoch i32 + 1.
    if let Some(diverging_epoch) = partition.diverging_epoch {
        put_uvarint(out, DIVERGING_EPOCH_TAG);
        put_uvarint(out, 4 + 8 + 1);
        out.put_i32(diverging_epoch.epoch);
        out.put_i64(diverging_epoch.end_offset);
        put_uvarint(out, 0);
    }
    if let Some(current_leader) = partition.current_leader {
        put_uvarint(out, CURRENT_LEADER_TAG);
        put_uvarint(out, 4 + 4 + 1);
        out.put_i32(current_leader.leader_id);
        out.put_i32(current_leader.leader_epoch);
        put_uvarint(out, 0);
    }
}

fn put_empty_tagged_fields(out: &mut BytesMut, flexible: bool) {
    if flexible {
        put_uvarint(out, 0);
    }
}

/// A length prefix: compact (varint of length + 1) when flexible, else i32 (`wide`: arrays
/// and bytes) or i16 (strings).
fn put_length(
    out: &mut BytesMut,
    version: i16,
    flexible: bool,
    field: &'static str,
    length: usize,
    wide: bool,
) -> Result<(), EncodeError> {
    let too_long = || EncodeError::FieldTooLong {
        api_key: ApiKey::Fetch,
        api_version: version,
        field,
        length,
    };
    if flexible {
        let compact = u32::try_from(length)
            .ok()
            .and_then(|length| length.checked_add(1));
        put_uvarint(out, compact.ok_or_else(too_long)?);
    } else if wide {
        out.put_i32(i32::try_from(length).map_err(|_| too_long())?);
    } else {
        out.put_i16(i16::try_from(length).map_err(|_| too_long())?);
    }
    Ok(())
}
