//! `ringlog serve --cores 2` as Kafka clients see it: every request reaches one shard (the
//! one whose listener accepted the connection), which forwards the parts for the other
//! shard's partitions and answers with the assembled response, in request order. Real
//! processes on 127.0.0.1, the test client of tests/kafka_client, and kcat.

// Kafka frames and batch fields are big-endian on the wire.
#![allow(clippy::big_endian_bytes)]

mod kafka_client;

use std::io::Write;
use std::process::{Command, Stdio};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse,
};

use kafka_client::{batch, topic, unstamped, Client, Server};

/// Partitions of the test topics: two per shard.
const PARTITIONS: i32 = 4;
const TWO_SHARDS: &str = "cores = 2\n";

fn start(config: &str) -> anyhow::Result<(tempfile::TempDir, Server)> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("data"), config)?;
    Ok((dir, server))
}

/// One Produce carrying a record set for each of `partitions` (in that order).
fn produce_many(name: &str, partitions: &[(i32, Vec<u8>)], acks: i16) -> ProduceRequest {
    let data = partitions
        .iter()
        .map(|(index, records)| {
            PartitionProduceData::default()
                .with_index(*index)
                .with_records(Some(Bytes::from(records.clone())))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(data)])
}

/// One Fetch of `partitions` (in that order), each from its offset.
fn fetch_many(name: &str, partitions: &[(i32, i64)], max_wait_ms: i32) -> FetchRequest {
    let wanted = partitions
        .iter()
        .map(|(index, offset)| {
            FetchPartition::default()
                .with_partition(*index)
                .with_fetch_offset(*offset)
                .with_partition_max_bytes(4 * 1024 * 1024)
        })
        .collect();
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(16 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic(name))
            .with_partitions(wanted)])
}

/// ListOffsets(latest) of `partitions`, in that order.
fn latest_many(name: &str, partitions: &[i32]) -> ListOffsetsRequest {
    let wanted = partitions
        .iter()
        .map(|index| {
            ListOffsetsPartition::default()
                .with_partition_index(*index)
                .with_timestamp(-1)
        })
        .collect();
    ListOffsetsRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic(name))
            .with_partitions(wanted)])
}

/// (partition, error code, base offset) of every partition of a Produce response.
fn produced(response: &ProduceResponse) -> Vec<(i32, i16, i64)> {
    response.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect()
}

/// The records a Fetch response holds per partition, in response order.
fn fetched(response: &FetchResponse) -> Vec<(i32, i16, Bytes)> {
    response.responses[0]
        .partitions
        .iter()
        .map(|p| {
            let records = p.records.clone().unwrap_or_default();
            (p.partition_index, p.error_code, records)
        })
        .collect()
}

/// Where partitions live, as the server's own log shows it: the `<topic>-<p>` directories
/// every shard opened (each opens only its own).
fn all_partitions() -> Vec<i32> {
    (0..PARTITIONS).collect()
}

// Through ONE connection (so the parts of the partitions owned by the other shard are
// forwarded): Produce requests that each carry all four partitions, then single-partition
// ones, are answered with every partition's base offset in request order; one Fetch of all
// four partitions returns each partition's batches byte for byte; ListOffsets spanning both
// shards reports each log end; and all of it is still there after a restart.
#[test]
fn produce_and_fetch_every_partition_through_one_connection() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut server = Server::start(&data, TWO_SHARDS)?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("spread", PARTITIONS)?, 0);
    let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 4];
    for round in 0..10 {
        // Partitions in a scrambled order: the response must keep it.
        let order = [3, 0, 2, 1];
        let parts: Vec<(i32, Vec<u8>)> = order
            .iter()
            .map(|&p| {
                (
                    p,
                    batch(2 + usize::try_from(p).unwrap(), &format!("r{round}p{p}")),
                )
            })
            .collect();
        let response: ProduceResponse =
            client.call(ApiKey::Produce, 9, &produce_many("spread", &parts, -1))?;
        let expected: Vec<(i32, i16, i64)> = order
            .iter()
            .map(|&p| (p, 0, i64::from(round) * (2 + i64::from(p))))
            .collect();
        assert_eq!(produced(&response), expected, "round {round}");
        for (p, records) in parts {
            sent[usize::try_from(p)?].push(records);
        }
    }
    for p in all_partitions() {
        let records = batch(1, &format!("single{p}"));
        let (code, base) = client.produce("spread", p, records.clone(), 1)?;
        assert_eq!((code, base), (0, 10 * (2 + i64::from(p))));
        sent[usize::try_from(p)?].push(records);
    }
    let check = |client: &mut Client| -> anyhow::Result<()> {
        let wanted: Vec<(i32, i64)> = all_partitions().into_iter().map(|p| (p, 0)).collect();
        let response: FetchResponse =
            client.call(ApiKey::Fetch, 12, &fetch_many("spread", &wanted, 100))?;
        let answers = fetched(&response);
        assert_eq!(answers.len(), 4);
        for (index, (p, code, records)) in answers.into_iter().enumerate() {
            assert_eq!((p, code), (i32::try_from(index)?, 0));
            let mut rest = &records[..];
            for expected in &sent[index] {
                assert_eq!(unstamped(&rest[..expected.len()]), unstamped(expected));
                rest = &rest[expected.len()..];
            }
            assert!(rest.is_empty(), "partition {p}: {} extra bytes", rest.len());
        }
        let response: ListOffsetsResponse = client.call(
            ApiKey::ListOffsets,
            7,
            &latest_many("spread", &[2, 1, 3, 0]),
        )?;
        let ends: Vec<(i32, i64)> = response.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.offset))
            .collect();
        let expected: Vec<(i32, i64)> = [2, 1, 3, 0]
            .iter()
            .map(|&p| (p, 10 * (2 + i64::from(p)) + 1))
            .collect();
        assert_eq!(ends, expected);
        Ok(())
    };
    check(&mut client)?;
    assert!(server.terminate()?, "{}", server.log_text());
    let server = Server::start(&data, TWO_SHARDS)?;
    check(&mut server.client()?)?;
    Ok(())
}

// Requests sent back to back on one connection, each spanning partitions of both shards
// (Produce waiting for two commits, Fetch, ListOffsets) mixed with requests answered at
// once (ApiVersions, Metadata), come back in the order they were sent, with the offsets
// each produce was given in that order.
#[test]
fn pipelined_requests_spanning_shards_are_answered_in_order() -> anyhow::Result<()> {
    let (_dir, server) = start(TWO_SHARDS)?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("pipe", PARTITIONS)?, 0);
    let mut sent = Vec::new();
    for round in 0..20 {
        let parts: Vec<(i32, Vec<u8>)> = all_partitions()
            .into_iter()
            .map(|p| (p, batch(3, &format!("{round}"))))
            .collect();
        let request = produce_many("pipe", &parts, 1);
        sent.push((client.send(ApiKey::Produce, 9, &request)?, ApiKey::Produce));
        let request = ApiVersionsRequest::default();
        sent.push((
            client.send(ApiKey::ApiVersions, 3, &request)?,
            ApiKey::ApiVersions,
        ));
        let wanted = [(1, 0), (2, 0)];
        let request = fetch_many("pipe", &wanted, 0);
        sent.push((client.send(ApiKey::Fetch, 12, &request)?, ApiKey::Fetch));
        let request = latest_many("pipe", &[0, 3]);
        sent.push((
            client.send(ApiKey::ListOffsets, 7, &request)?,
            ApiKey::ListOffsets,
        ));
        if round % 4 == 0 {
            let request = MetadataRequest::default();
            sent.push((
                client.send(ApiKey::Metadata, 12, &request)?,
                ApiKey::Metadata,
            ));
        }
    }
    let mut bases = Vec::new();
    for (correlation_id, api_key) in sent {
        let received = match api_key {
            ApiKey::Produce => {
                let (id, response): (i32, ProduceResponse) = client.receive(9, api_key)?;
                let answers = produced(&response);
                assert!(answers.iter().all(|(_, code, _)| *code == 0), "{answers:?}");
                let partitions: Vec<i32> = answers.iter().map(|a| a.0).collect();
                assert_eq!(partitions, all_partitions());
                bases.push(answers[0].2);
                id
            }
            ApiKey::Fetch => {
                let (id, response): (i32, FetchResponse) = client.receive(12, api_key)?;
                let partitions: Vec<i32> = fetched(&response).iter().map(|a| a.0).collect();
                assert_eq!(partitions, vec![1, 2]);
                id
            }
            ApiKey::ListOffsets => {
                let (id, response): (i32, ListOffsetsResponse) = client.receive(7, api_key)?;
                let partitions = response.topics[0].partitions.iter();
                let order: Vec<i32> = partitions.map(|p| p.partition_index).collect();
                assert_eq!(order, vec![0, 3]);
                id
            }
            ApiKey::ApiVersions => client.receive::<ApiVersionsResponse>(3, api_key)?.0,
            _ => client.receive::<MetadataResponse>(12, api_key)?.0,
        };
        assert_eq!(received, correlation_id);
    }
    assert_eq!(bases, (0..20).map(|round| round * 3).collect::<Vec<i64>>());
    Ok(())
}

// Topic changes reach every shard before they are answered: after CreateTopics, a new
// connection (whichever shard accepts it) produces to every partition at once; after
// DeleteTopics the topic is unknown to all, its directories are gone, and a topic created
// again under the name starts empty.
#[test]
fn create_and_delete_reach_every_shard() -> anyhow::Result<()> {
    let (_dir, server) = start(TWO_SHARDS)?;
    for attempt in 0..2 {
        let mut admin = server.client()?;
        assert_eq!(
            admin.create_topic("churn", PARTITIONS)?,
            0,
            "attempt {attempt}"
        );
        for _ in 0..4 {
            let mut client = server.client()?;
            for p in all_partitions() {
                assert_eq!(client.produce("churn", p, batch(1, "c"), 1)?.0, 0);
            }
        }
        let mut client = server.client()?;
        for p in all_partitions() {
            assert_eq!(client.fetch("churn", p, 0, 0)?.1, 4, "attempt {attempt}");
        }
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic("churn")])
            .with_timeout_ms(5000);
        let response: DeleteTopicsResponse = admin.call(ApiKey::DeleteTopics, 5, &request)?;
        assert_eq!(response.responses[0].error_code, 0);
        for p in all_partitions() {
            assert!(!server.data_dir.join(format!("churn-{p}")).exists());
            let mut client = server.client()?;
            assert_eq!(client.produce("churn", p, batch(1, "c"), 1)?.0, 3);
        }
    }
    Ok(())
}

// kcat (librdkafka) produces 2,000 keyed messages to an auto-created topic of 4 partitions
// spread over two shards, and consumes them all back: the same records, and within each
// partition in offset order.
#[test]
fn kcat_round_trip_over_two_shards() -> anyhow::Result<()> {
    let kcat = Command::new("kcat").arg("-V").output();
    assert!(
        kcat.is_ok_and(|output| output.status.success()),
        "kcat is not installed: apt-get install -y kcat (the CI script installs it)"
    );
    let config = "cores = 2\nauto_create_topics = true\npartitions_default = 4\n";
    let (_dir, server) = start(config)?;
    let bootstrap = server.listen.to_string();
    let input: Vec<String> = (0..2000).map(|i| format!("key{i}:value {i}")).collect();
    let mut producer = Command::new("kcat")
        .args(["-P", "-b", &bootstrap, "-t", "kc2", "-K:", "-X", "acks=all"])
        .stdin(Stdio::piped())
        .spawn()?;
    let text: String = input.iter().map(|line| format!("{line}\n")).collect();
    producer
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())?;
    assert!(producer.wait()?.success(), "{}", server.log_text());
    let output = Command::new("kcat")
        .args(["-C", "-b", &bootstrap, "-t", "kc2", "-o", "beginning", "-e"])
        .args(["-f", "%p %o %k:%s\n"])
        .output()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut next_offset = [0i64; 4];
    let mut received = Vec::new();
    for line in String::from_utf8(output.stdout)?.lines() {
        let mut fields = line.splitn(3, ' ');
        let partition: usize = fields.next().unwrap_or("").parse()?;
        let offset: i64 = fields.next().unwrap_or("").parse()?;
        assert_eq!(offset, next_offset[partition], "partition {partition}");
        next_offset[partition] += 1;
        received.push(fields.next().unwrap_or("").to_string());
    }
    assert!(
        next_offset.iter().filter(|&&end| end > 0).count() > 1,
        "keys spread over partitions: {next_offset:?}"
    );
    let mut expected = input;
    expected.sort();
    received.sort();
    assert_eq!(received, expected);
    Ok(())
}

// SIGTERM stops every shard cleanly (exit status 0, each shard logs its stop), also while
// a long-polling Fetch spanning both shards is parked.
#[test]
fn sigterm_stops_every_shard() -> anyhow::Result<()> {
    let (_dir, mut server) = start(TWO_SHARDS)?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("stop", PARTITIONS)?, 0);
    let wanted: Vec<(i32, i64)> = all_partitions().into_iter().map(|p| (p, 0)).collect();
    client.send(ApiKey::Fetch, 12, &fetch_many("stop", &wanted, 30_000))?;
    assert!(server.terminate()?, "{}", server.log_text());
    let log = server.log_text();
    assert_eq!(log.matches("shard stopped").count(), 2, "{log}");
    Ok(())
}
