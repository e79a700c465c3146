//! The consumer of one partition: finds its start with ListOffsets, then reads with Fetch
//! (long poll) from the partition's leader, and yields the records of the returned batches.
//!
//! Invariants: the position only moves forward, to one past the last offset of a whole batch
//! that was read; records below the position are skipped (a batch can start before the
//! offset asked for); every batch is validated (header, length, CRC32C) before its records
//! are read, and a compressed batch is [`Error::Compressed`], never silently skipped; a
//! partial batch at the end of a response (cut by `max_bytes`) is left for the next fetch.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use ringlog_batch::{peek_size_bytes, records, validate, Compression};
use ringlog_kafka::ApiKey;
use ringlog_types::units::MIB;

use crate::client::{list_offset_on, timeout_ms, topic_name, Client, OffsetSpec};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::versions::Versions;

/// Where a [`Consumer`] starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOffset {
    /// The first record still stored (ListOffsets "earliest").
    Earliest,
    /// The log end: only records produced from now on (ListOffsets "latest").
    Latest,
    /// This offset.
    Offset(i64),
}

/// How a [`Consumer`] fetches.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    /// How long the broker may hold a fetch that has less than `min_bytes` to return.
    pub max_wait: Duration,
    /// Bytes the broker should gather before answering (unless `max_wait` passes first).
    pub min_bytes: i32,
    /// Limit on the records bytes of one response (the broker returns at least one whole
    /// batch even if it is larger, as Kafka does).
    pub max_bytes: i32,
    /// Limit on the records bytes of the partition in one response.
    pub partition_max_bytes: i32,
}

impl Default for ConsumerOptions {
    fn default() -> ConsumerOptions {
        let max_bytes = i32::try_from(50 * MIB).unwrap_or(i32::MAX);
        let partition_max_bytes = i32::try_from(MIB).unwrap_or(i32::MAX);
        ConsumerOptions {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes,
            partition_max_bytes,
        }
    }
}

/// A record read from a partition. Key, value and header bytes share the fetch response's
/// buffer (no copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The record's offset.
    pub offset: i64,
    /// The record's timestamp (ms since the Unix epoch).
    pub timestamp_ms: i64,
    /// The key, `None` if null.
    pub key: Option<Bytes>,
    /// The value, `None` if null.
    pub value: Option<Bytes>,
    /// The headers, in order: key and value (`None` if null).
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// Reads one partition from its leader.
#[derive(Debug)]
pub struct Consumer {
    connection: Connection,
    versions: Versions,
    topic: String,
    partition: i32,
    position: i64,
    high_watermark: i64,
    options: ConsumerOptions,
}

impl Consumer {
    /// Connects to the leader of `topic[partition]` and finds the start position.
    pub fn new(
        client: &mut Client,
        topic: &str,
        partition: i32,
        start: StartOffset,
        options: ConsumerOptions,
    ) -> Result<Consumer> {
        let leader = client.leader(topic, partition)?;
        let (mut connection, versions) = client.open_broker(&leader)?;
        let position = match start {
            StartOffset::Offset(offset) => offset,
            StartOffset::Earliest => list_offset_on(
                &mut connection,
                &versions,
                topic,
                partition,
                OffsetSpec::Earliest,
            )?,
            StartOffset::Latest => list_offset_on(
                &mut connection,
                &versions,
                topic,
                partition,
                OffsetSpec::Latest,
            )?,
        };
        connection.reader.extend_timeout(options.max_wait)?;
        Ok(Consumer {
            connection,
            versions,
            topic: topic.to_owned(),
            partition,
            position,
            high_watermark: -1,
            options,
        })
    }

    /// The offset of the next record to read.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// The partition's high watermark in the last fetch response (-1 before the first).
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// One Fetch from the position: the records it returned, in offset order, possibly none
    /// (the broker waited `max_wait` and had nothing). Broker errors (OFFSET_OUT_OF_RANGE,
    /// UNKNOWN_TOPIC_OR_PARTITION, ...) are [`Error::Broker`]; the position does not move.
    pub fn poll(&mut self) -> Result<Vec<ConsumedRecord>> {
        let version = self.versions.get(ApiKey::Fetch);
        let request = self.fetch_request();
        let response = self.connection.call(&request, version)?;
        let records_bytes = self.partition_records(&response, version)?;
        let mut consumed = Vec::new();
        self.read_batches(&records_bytes, &mut consumed)?;
        Ok(consumed)
    }

    fn fetch_request(&self) -> FetchRequest {
        let mut partition = FetchPartition::default();
        partition.partition = self.partition;
        partition.current_leader_epoch = -1;
        partition.fetch_offset = self.position;
        partition.last_fetched_epoch = -1;
        partition.log_start_offset = -1;
        partition.partition_max_bytes = self.options.partition_max_bytes;
        let mut topic = FetchTopic::default();
        topic.topic = topic_name(&self.topic);
        topic.partitions = vec![partition];
        let mut request = FetchRequest::default();
        request.replica_id = BrokerId(-1);
        request.max_wait_ms = timeout_ms(self.options.max_wait);
        request.min_bytes = self.options.min_bytes;
        request.max_bytes = self.options.max_bytes;
        request.isolation_level = 0;
        request.session_id = 0;
        request.session_epoch = -1;
        request.topics = vec![topic];
        request
    }

    /// The records bytes of this consumer's partition in `response`, after its error checks.
    fn partition_records(&mut self, response: &FetchResponse, version: i16) -> Result<Bytes> {
        if response.error_code != 0 {
            return Err(Error::request(ApiKey::Fetch, response.error_code));
        }
        let answer = response
            .responses
            .iter()
            .filter(|topic| topic.topic.0.as_str() == self.topic)
            .flat_map(|topic| topic.partitions.iter())
            .find(|partition| partition.partition_index == self.partition);
        let Some(answer) = answer else {
            return Err(Error::Protocol {
                api: ApiKey::Fetch,
                version,
                detail: format!("no answer for {}[{}]", self.topic, self.partition),
            });
        };
        if answer.error_code != 0 {
            return Err(Error::broker(
                answer.error_code,
                &self.topic,
                self.partition,
            ));
        }
        self.high_watermark = answer.high_watermark;
        Ok(answer.records.clone().unwrap_or_default())
    }

    /// Appends the records of every whole batch in `bytes` at or above the position to
    /// `consumed`, and moves the position past each batch.
    fn read_batches(&mut self, bytes: &Bytes, consumed: &mut Vec<ConsumedRecord>) -> Result<()> {
        let mut start = 0;
        loop {
            let rest = &bytes[start..];
            let size_bytes = match peek_size_bytes(rest) {
                Ok(Some(size_bytes)) if size_bytes <= rest.len() => size_bytes,
                // A partial batch at the end: the broker cut it at max_bytes.
                Ok(_) => return Ok(()),
                Err(source) => return Err(self.corrupt(self.position, source)),
            };
            let batch = bytes.slice(start..start + size_bytes);
            start += size_bytes;
            self.read_batch(&batch, consumed)?;
        }
    }

    fn read_batch(&mut self, batch: &Bytes, consumed: &mut Vec<ConsumedRecord>) -> Result<()> {
        let header = validate(batch).map_err(|source| self.corrupt(self.position, source))?;
        let base_offset = header.base_offset;
        let compression = header.compression();
        if compression != Compression::None {
            return Err(Error::Compressed {
                topic: self.topic.clone(),
                partition: self.partition,
                base_offset,
                compression,
            });
        }
        let next_offset = base_offset.saturating_add(i64::from(header.last_offset_delta) + 1);
        if header.is_control() || next_offset <= self.position {
            self.position = self.position.max(next_offset);
            return Ok(());
        }
        let iterator = records(batch).map_err(|source| self.corrupt(base_offset, source))?;
        for record in iterator {
            let record = record.map_err(|source| self.corrupt(base_offset, source))?;
            let offset = base_offset.saturating_add(i64::from(record.offset_delta));
            if offset < self.position {
                continue;
            }
            let share = |part: &[u8]| batch.slice_ref(part);
            consumed.push(ConsumedRecord {
                offset,
                timestamp_ms: record.timestamp_ms(header.base_timestamp),
                key: record.key.map(share),
                value: record.value.map(share),
                headers: record
                    .headers
                    .iter()
                    .map(|header| (share(header.key), header.value.map(share)))
                    .collect(),
            });
        }
        self.position = self.position.max(next_offset);
        Ok(())
    }

    fn corrupt(&self, base_offset: i64, source: ringlog_batch::Error) -> Error {
        Error::CorruptBatch {
            topic: self.topic.clone(),
            partition: self.partition,
            base_offset,
            source,
        }
    }
}
