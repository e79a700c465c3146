//! Produce under log backpressure: with segments far smaller than what pipelined produces
//! append before a commit can run, `Wal::append` answers `Backpressure` (no filled spare
//! segment yet, every tail chunk in use); the server parks those partitions and appends
//! them as commits complete, so every produce is answered without an error, in order, and
//! every batch reads back in the order it was sent. Real processes on 127.0.0.1.

// Kafka frames and batch fields are big-endian on the wire.
#![allow(clippy::big_endian_bytes)]

mod kafka_client;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, ProduceRequest,
    ProduceResponse,
};

use kafka_client::{batch, topic, unstamped, Client, Server};

/// Segments of 256 KiB, batches of at most 64 KiB: a few dozen batches fill a segment.
const SMALL_SEGMENTS: &str = "segment_size_bytes = 262144\nbatch_size_bytes_max = 65536\n";
const PARTITIONS: i32 = 2;
/// Produce requests sent back to back on one connection.
const REQUESTS: usize = 300;
/// Records per batch: about 40 KiB a batch, 24 MiB in all, far beyond a segment and the
/// tail chunks of a partition.
const RECORDS: usize = 1000;

/// One Produce carrying one batch for each partition.
fn produce_all(name: &str, batches: &[Vec<u8>], acks: i16) -> ProduceRequest {
    let data = batches
        .iter()
        .enumerate()
        .map(|(index, records)| {
            PartitionProduceData::default()
                .with_index(i32::try_from(index).expect("few partitions"))
                .with_records(Some(Bytes::from(records.clone())))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(60_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(data)])
}

/// Fetches partition `partition` from `offset`.
fn fetch_from(name: &str, partition: i32, offset: i64) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(16 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic(name))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(4 * 1024 * 1024)])])
}

/// Every batch of `partition` from offset 0 to `end`, as returned by Fetch.
fn read_all(client: &mut Client, name: &str, partition: i32, end: i64) -> anyhow::Result<Vec<u8>> {
    let mut offset = 0;
    let mut all = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while offset < end {
        assert!(
            std::time::Instant::now() < deadline,
            "partition {partition} stops at {offset}"
        );
        let response: FetchResponse =
            client.call(ApiKey::Fetch, 12, &fetch_from(name, partition, offset))?;
        let answer = &response.responses[0].partitions[0];
        assert_eq!(answer.error_code, 0, "fetch of {partition} at {offset}");
        let records = answer.records.clone().unwrap_or_default();
        let mut rest = &records[..];
        while rest.len() >= 12 {
            let length = usize::try_from(i32::from_be_bytes(rest[8..12].try_into()?))?;
            if rest.len() < 12 + length {
                break;
            }
            let base = i64::from_be_bytes(rest[..8].try_into()?);
            let count = i64::from(i32::from_be_bytes(rest[57..61].try_into()?));
            assert_eq!(base, offset, "partition {partition}: batches in order");
            all.extend_from_slice(&rest[..12 + length]);
            offset = base + count;
            rest = &rest[12 + length..];
        }
    }
    Ok(all)
}

/// Sends the produces (with an ApiVersions between some, answered at once), then checks
/// every answer in order and reads every partition back.
fn produce_through_backpressure(config: &str, acks: i16) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("data"), config)?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("pressed", PARTITIONS)?, 0);
    let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 2];
    let mut expected = Vec::new();
    for round in 0..REQUESTS {
        let batches: Vec<Vec<u8>> = (0..PARTITIONS)
            .map(|p| batch(RECORDS, &format!("r{round}p{p}")))
            .collect();
        let id = client.send(ApiKey::Produce, 9, &produce_all("pressed", &batches, acks))?;
        if acks != 0 {
            expected.push((id, ApiKey::Produce, round));
        }
        if round % 50 == 0 {
            let id = client.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())?;
            expected.push((id, ApiKey::ApiVersions, round));
        }
        for (p, records) in batches.into_iter().enumerate() {
            sent[p].push(records);
        }
    }
    for (id, api_key, round) in expected {
        if api_key == ApiKey::ApiVersions {
            let (received, _): (i32, ApiVersionsResponse) = client.receive(3, api_key)?;
            assert_eq!(received, id);
            continue;
        }
        let (received, response): (i32, ProduceResponse) = client.receive(9, api_key)?;
        assert_eq!(received, id);
        let answers: Vec<(i32, i16, i64)> = response.responses[0]
            .partition_responses
            .iter()
            .map(|p| (p.index, p.error_code, p.base_offset))
            .collect();
        let base = i64::try_from(round * RECORDS)?;
        assert_eq!(answers, vec![(0, 0, base), (1, 0, base)], "round {round}");
    }
    let end = i64::try_from(REQUESTS * RECORDS)?;
    for p in 0..PARTITIONS {
        let stored = read_all(&mut client, "pressed", p, end)?;
        let mut rest = &stored[..];
        for (round, expected) in sent[usize::try_from(p)?].iter().enumerate() {
            assert_eq!(
                unstamped(&rest[..expected.len()]),
                unstamped(expected),
                "partition {p} round {round}"
            );
            rest = &rest[expected.len()..];
        }
        assert!(rest.is_empty(), "partition {p}: {} extra bytes", rest.len());
    }
    let log = server.log_text();
    assert!(!log.contains("ERROR"), "{log}");
    Ok(())
}

#[test]
fn pipelined_produces_wait_out_backpressure() -> anyhow::Result<()> {
    produce_through_backpressure(SMALL_SEGMENTS, -1)
}

// acks=1 across two shards: the parts for the other shard's partition are forwarded and
// parked by their owner.
#[test]
fn forwarded_produces_wait_out_backpressure() -> anyhow::Result<()> {
    produce_through_backpressure(&format!("{SMALL_SEGMENTS}cores = 2\n"), 1)
}

// acks=0: nothing is answered, and still every batch lands, in order.
#[test]
fn unacknowledged_produces_wait_out_backpressure() -> anyhow::Result<()> {
    produce_through_backpressure(SMALL_SEGMENTS, 0)
}
