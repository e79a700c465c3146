//! Fetch: long poll with `max_wait_ms` / `min_bytes`, `max_bytes` and partition max bytes.
//!
//! Records are the log's own bytes: tail parts are `Bytes` that own an `Arc` of the tail
//! buffer, disk parts own the aligned buffer they were read into; neither is copied on the
//! way to the socket (`Bytes::from_owner`, then one gather send). Reads stop at the high
//! watermark (the durable end on a single node; `crate::replica` in a cluster); `read_committed` reads the same
//! (no transactions). An offset outside `[log_start, log_end]` is OFFSET_OUT_OF_RANGE.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringlog_kafka::messages::FetchRequest;
use ringlog_kafka::{ErrorCode, FetchPartitionResponse, FetchResponse, FetchTopicResponse};
use ringlog_types::Offset;
use ringlog_uring::{AlignedBuf, AppendBuf};
use ringlog_wal::ReadPart;

use crate::api::{offset_i64, wal_error_code, ParkedFetch};
use crate::forward::{AnswerTo, Body};
use crate::shard::Shard;

/// Tail bytes shared with the log.
struct TailBytes(Arc<AppendBuf>, Range<usize>);

impl AsRef<[u8]> for TailBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.slice(self.1.clone())
    }
}

/// Bytes read from a segment file.
struct DiskBytes(Arc<AlignedBuf>, Range<usize>);

impl AsRef<[u8]> for DiskBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0.as_slice()[self.1.clone()]
    }
}

/// A read part as `Bytes` that own the log's buffer (no copy).
pub(crate) fn part_bytes(part: ReadPart) -> Bytes {
    match part {
        ReadPart::Tail { buf, range } => Bytes::from_owner(TailBytes(buf, range)),
        ReadPart::Disk { buf, range } => Bytes::from_owner(DiskBytes(buf, range)),
    }
}

impl Shard {
    /// How long a Fetch may wait: its `max_wait_ms`, capped by `fetch_wait_ms_max`.
    pub(crate) fn fetch_wait(&self, request: &FetchRequest) -> Duration {
        let wait_ms = u64::try_from(request.max_wait_ms.max(0)).unwrap_or(0);
        Duration::from_millis(wait_ms).min(self.config.fetch_wait_max())
    }

    /// Serves a Fetch (or a part of one) whose partitions this shard serves: at once, or
    /// parked until data arrives or `deadline`.
    pub(crate) fn fetch(
        &mut self,
        to: AnswerTo,
        request: FetchRequest,
        deadline: Instant,
        started: Instant,
    ) {
        let parked = ParkedFetch {
            to,
            request,
            deadline,
            started,
        };
        if let Some(parked) = self.try_fetch(parked, started) {
            self.fetches.push(parked);
        }
    }

    /// Answers parked fetches that have data now (if an end moved) or reached their deadline.
    pub(crate) fn answer_fetches(&mut self, moved: bool, now: Instant) {
        if self.fetches.is_empty() {
            return;
        }
        let parked = std::mem::take(&mut self.fetches);
        for fetch in parked {
            if !moved && fetch.deadline > now {
                self.fetches.push(fetch);
                continue;
            }
            if let Some(fetch) = self.try_fetch(fetch, now) {
                self.fetches.push(fetch);
            }
        }
    }

    /// Builds the response; sends it if it satisfies the request or the wait is over, else
    /// hands the fetch back to be parked.
    fn try_fetch(&mut self, fetch: ParkedFetch, now: Instant) -> Option<ParkedFetch> {
        let (response, size_bytes, has_error) = self.fetch_response(&fetch.request);
        let min_bytes = usize::try_from(fetch.request.min_bytes.max(0)).unwrap_or(0);
        let expired = fetch.deadline <= now;
        if size_bytes < min_bytes.max(1) && !expired && !has_error {
            return Some(fetch);
        }
        match fetch.to {
            AnswerTo::Client {
                connection,
                sequence,
                header,
            } => self.respond_fetch(connection, sequence, &header, &response, fetch.started),
            AnswerTo::Part {
                origin,
                split,
                part,
            } => self.answer_part(origin, split, part, Body::Fetched(response)),
        }
        None
    }

    /// Reads every requested partition within the byte limits. Returns the response, the
    /// record bytes in it, and whether any partition carries an error.
    fn fetch_response(&mut self, request: &FetchRequest) -> (FetchResponse, usize, bool) {
        let mut budget = usize::try_from(request.max_bytes).unwrap_or(0);
        let mut size_bytes = 0;
        let mut has_error = false;
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for partition in &topic.partitions {
                let limit = usize::try_from(partition.partition_max_bytes).unwrap_or(0);
                let limit = limit.min(budget);
                let answer = self.fetch_partition(
                    &topic.topic,
                    partition.partition,
                    partition.fetch_offset,
                    limit,
                );
                if answer.error_code == ErrorCode::None {
                    let taken = answer.records_size_bytes();
                    budget = budget.saturating_sub(taken);
                    size_bytes += taken;
                } else {
                    self.metrics.error(answer.error_code);
                    has_error = true;
                }
                partitions.push(answer);
            }
            topics.push(FetchTopicResponse {
                topic: topic.topic.clone(),
                partitions,
            });
        }
        let response = FetchResponse {
            throttle_time_ms: 0,
            error_code: ErrorCode::None,
            session_id: 0,
            topics,
        };
        (response, size_bytes, has_error)
    }

    fn fetch_partition(
        &mut self,
        topic: &str,
        partition: i32,
        fetch_offset: i64,
        limit_bytes: usize,
    ) -> FetchPartitionResponse {
        let Some(state) = self.partitions.get(topic, partition) else {
            return FetchPartitionResponse::error(partition, ErrorCode::UnknownTopicOrPartition);
        };
        let handle = state.handle;
        let Ok(ends) = self.wal.ends(handle) else {
            return FetchPartitionResponse::error(partition, ErrorCode::UnknownTopicOrPartition);
        };
        let high_watermark = state.high_watermark(ends.durable_end);
        let mut answer = FetchPartitionResponse::error(partition, ErrorCode::None);
        answer.high_watermark = offset_i64(high_watermark);
        answer.last_stable_offset = answer.high_watermark;
        answer.log_start_offset = offset_i64(ends.log_start);
        let in_range = u64::try_from(fetch_offset)
            .ok()
            .filter(|offset| (ends.log_start.0..=ends.log_end.0).contains(offset));
        let Some(from) = in_range else {
            answer.error_code = ErrorCode::OffsetOutOfRange;
            return answer;
        };
        if limit_bytes == 0 || from >= high_watermark.0 {
            return answer;
        }
        match self
            .wal
            .read(handle, Offset(from), limit_bytes, Some(high_watermark))
        {
            Ok(read) => answer.records = read.parts.into_iter().map(part_bytes).collect(),
            Err(error) => {
                tracing::warn!(topic, partition, %error, "fetch read failed");
                answer.error_code = wal_error_code(&error);
            }
        }
        answer
    }
}
