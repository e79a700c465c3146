//! `ringlog serve` as Kafka clients see it: real processes, real sockets on 127.0.0.1, a
//! minimal client from kafka-protocol's codecs (tests/kafka_client), and kcat.

// Kafka frames and batch fields are big-endian on the wire.
#![allow(clippy::big_endian_bytes)]

mod kafka_client;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    ProduceResponse,
};

use kafka_client::{batch, fetch_request, http_get, produce_request, unstamped, Server, DEADLINE};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const CORRUPT_MESSAGE: i16 = 2;

fn start(config: &str) -> anyhow::Result<(tempfile::TempDir, Server)> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(&dir.path().join("data"), config)?;
    Ok((dir, server))
}

// ApiVersions lists the served APIs; CreateTopics then Metadata shows the topic with this
// node as leader of each partition.
#[test]
fn api_versions_and_metadata_round_trip() -> anyhow::Result<()> {
    let (_dir, server) = start("")?;
    let mut client = server.client()?;
    let versions: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())?;
    assert_eq!(versions.error_code, 0);
    assert!(versions
        .api_keys
        .iter()
        .any(|key| key.api_key == ApiKey::Produce as i16));
    assert_eq!(client.create_topic("orders", 3)?, 0);
    let metadata: MetadataResponse = client.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )?;
    assert_eq!(metadata.brokers.len(), 1);
    assert_eq!(metadata.brokers[0].port, i32::from(server.listen.port()));
    let orders = &metadata.topics[0];
    assert_eq!(
        orders.name.as_ref().map(|name| name.0.as_str()),
        Some("orders")
    );
    assert_eq!(orders.partitions.len(), 3);
    assert!(orders
        .partitions
        .iter()
        .all(|partition| partition.leader_id.0 == 0));
    Ok(())
}

// A batch produced with acks=1 comes back from Fetch byte for byte (apart from the base
// offset and leader epoch the server stamps), at the base offset the produce returned.
#[test]
fn produce_then_fetch_returns_identical_batch() -> anyhow::Result<()> {
    let (_dir, server) = start("")?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("t", 1)?, 0);
    let first = batch(10, "a");
    let second = batch(5, "b");
    assert_eq!(client.produce("t", 0, first.clone(), 1)?, (0, 0));
    assert_eq!(client.produce("t", 0, second.clone(), -1)?, (0, 10));
    let (code, high_watermark, records) = client.fetch("t", 0, 0, 0)?;
    assert_eq!((code, high_watermark), (0, 15));
    assert_eq!(records.len(), first.len() + second.len());
    assert_eq!(unstamped(&records[..first.len()]), unstamped(&first));
    assert_eq!(unstamped(&records[first.len()..]), unstamped(&second));
    assert_eq!(&records[first.len()..first.len() + 8], &10i64.to_be_bytes());
    Ok(())
}

// Requests sent back to back before any response is read are answered in order, also when
// a slow one (a produce waiting for its commit) comes before fast ones.
#[test]
fn pipelined_requests_are_answered_in_order() -> anyhow::Result<()> {
    let (_dir, server) = start("")?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("p", 1)?, 0);
    let mut sent = Vec::new();
    for round in 0..20 {
        sent.push((
            client.send(
                ApiKey::Produce,
                9,
                &produce_request("p", 0, batch(3, "x"), 1),
            )?,
            ApiKey::Produce,
        ));
        sent.push((
            client.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())?,
            ApiKey::ApiVersions,
        ));
        if round % 2 == 0 {
            sent.push((
                client.send(ApiKey::Metadata, 12, &MetadataRequest::default())?,
                ApiKey::Metadata,
            ));
        }
    }
    let mut offsets = Vec::new();
    for (correlation_id, api_key) in sent {
        let received = match api_key {
            ApiKey::Produce => {
                let (id, response): (i32, ProduceResponse) = client.receive(9, api_key)?;
                offsets.push(response.responses[0].partition_responses[0].base_offset);
                id
            }
            ApiKey::ApiVersions => client.receive::<ApiVersionsResponse>(3, api_key)?.0,
            _ => client.receive::<MetadataResponse>(12, api_key)?.0,
        };
        assert_eq!(received, correlation_id);
    }
    assert_eq!(
        offsets,
        (0..20).map(|round| round * 3).collect::<Vec<i64>>()
    );
    Ok(())
}

// A fetch at the end of the log with a long max_wait returns as soon as another client
// produces, well before its wait ends.
#[test]
fn long_poll_fetch_returns_when_data_arrives() -> anyhow::Result<()> {
    let (_dir, server) = start("")?;
    let mut consumer = server.client()?;
    let mut producer = server.client()?;
    assert_eq!(producer.create_topic("lp", 1)?, 0);
    let started = Instant::now();
    let id = consumer.send(ApiKey::Fetch, 12, &fetch_request("lp", 0, 0, 15_000))?;
    assert_eq!(producer.produce("lp", 0, batch(1, "late"), 1)?, (0, 0));
    let (received, response): (i32, kafka_protocol::messages::FetchResponse) =
        consumer.receive(12, ApiKey::Fetch)?;
    assert_eq!(received, id);
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    assert!(!records.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

// Produce and fetch on a topic that does not exist (auto-creation is off by default) get
// UNKNOWN_TOPIC_OR_PARTITION; Metadata reports it too.
#[test]
fn unknown_topic_is_reported() -> anyhow::Result<()> {
    let (_dir, server) = start("")?;
    let mut client = server.client()?;
    assert_eq!(
        client.produce("nope", 0, batch(1, "n"), 1)?.0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(client.fetch("nope", 0, 0, 0)?.0, UNKNOWN_TOPIC_OR_PARTITION);
    let request = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(kafka_client::topic("nope"))),
    ]));
    let metadata: MetadataResponse = client.call(ApiKey::Metadata, 12, &request)?;
    assert_eq!(metadata.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(client.create_topic("t", 1)?, 0);
    assert_eq!(
        client.produce("t", 7, batch(1, "n"), 1)?.0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    Ok(())
}

// A batch with a damaged record gets CORRUPT_MESSAGE, nothing is stored, and the same
// connection keeps working.
#[test]
fn bad_crc_is_corrupt_message_and_connection_survives() -> anyhow::Result<()> {
    let (_dir, server) = start("")?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("c", 1)?, 0);
    let mut damaged = batch(4, "c");
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    assert_eq!(client.produce("c", 0, damaged, 1)?.0, CORRUPT_MESSAGE);
    assert_eq!(client.produce("c", 0, batch(2, "ok"), 1)?, (0, 0));
    assert_eq!(client.fetch("c", 0, 0, 0)?.1, 2);
    Ok(())
}

// A record set of two batches whose second is damaged gets CORRUPT_MESSAGE and stores
// neither (every batch of a multi-batch record set is validated before any is appended);
// an intact pair is stored whole.
#[test]
fn damaged_second_batch_stores_neither() -> anyhow::Result<()> {
    let (_dir, server) = start("")?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("m", 1)?, 0);
    let mut damaged = batch(3, "m");
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    let mut records = batch(2, "first");
    records.extend_from_slice(&damaged);
    assert_eq!(client.produce("m", 0, records, 1)?.0, CORRUPT_MESSAGE);
    assert_eq!(client.fetch("m", 0, 0, 0)?.1, 0);
    let mut records = batch(2, "first");
    records.extend_from_slice(&batch(3, "second"));
    assert_eq!(client.produce("m", 0, records, 1)?, (0, 0));
    assert_eq!(client.fetch("m", 0, 0, 0)?.1, 5);
    Ok(())
}

/// Reads until the server closes `stream`; fails if it stays open.
fn expect_closed(stream: &mut std::net::TcpStream) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(DEADLINE))?;
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
    anyhow::bail!("connection stayed open")
}

// Malformed, oversized and truncated frames close only their own connection: a second
// client keeps producing and consuming throughout.
#[test]
fn bad_frames_close_only_their_connection() -> anyhow::Result<()> {
    let (_dir, server) = start("request_size_bytes_max = 2097152\n")?;
    let mut good = server.client()?;
    assert_eq!(good.create_topic("g", 1)?, 0);
    let bad_inputs: Vec<Vec<u8>> = vec![
        (-5i32).to_be_bytes().to_vec(),
        (64 * 1024 * 1024i32).to_be_bytes().to_vec(),
        [
            &12i32.to_be_bytes()[..],
            &[0, 99, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
        ]
        .concat(),
        [
            &20i32.to_be_bytes()[..],
            &[0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        ]
        .concat(),
    ];
    let mut offset = 0;
    for input in bad_inputs {
        let mut bad = server.client()?.stream;
        bad.write_all(&input)?;
        expect_closed(&mut bad)?;
        assert_eq!(good.produce("g", 0, batch(2, "g"), 1)?, (0, offset));
        offset += 2;
    }
    // A truncated frame followed by a hang-up: the server drops the half frame.
    let mut truncated = server.client()?.stream;
    truncated.write_all(&[0, 0, 1, 0, 0, 0])?;
    drop(truncated);
    assert_eq!(good.produce("g", 0, batch(2, "g"), 1)?, (0, offset));
    let (code, high_watermark, records) = good.fetch("g", 0, 0, 0)?;
    assert_eq!((code, high_watermark), (0, offset + 2));
    assert!(!records.is_empty());
    Ok(())
}

// Every acknowledged batch survives a SIGKILL: after a restart on the same data directory
// the log ends where the acks said, and the records read back.
#[test]
fn acked_records_survive_sigkill() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let mut server = Server::start(&data, "")?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("k", 2)?, 0);
    let mut acked = [0i64; 2];
    for round in 0..50 {
        let partition = round % 2;
        let (code, base) = client.produce("k", partition, batch(4, "k"), -1)?;
        assert_eq!(code, 0);
        assert_eq!(base, acked[usize::try_from(partition)?]);
        acked[usize::try_from(partition)?] += 4;
    }
    server.kill();
    let server = Server::start(&data, "")?;
    let mut client = server.client()?;
    for partition in 0..2 {
        let (code, high_watermark, records) = client.fetch("k", partition, 0, 0)?;
        assert_eq!(code, 0);
        assert_eq!(high_watermark, acked[usize::try_from(partition)?]);
        assert_eq!(records.len(), 25 * batch(4, "k").len());
    }
    Ok(())
}

// /health answers ok and /metrics shows request counts, partition ends and connections;
// SIGTERM then stops the node cleanly (exit status 0).
#[test]
fn metrics_health_and_clean_stop() -> anyhow::Result<()> {
    let (_dir, mut server) = start("")?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("m", 1)?, 0);
    assert_eq!(client.produce("m", 0, batch(3, "m"), 1)?, (0, 0));
    assert_eq!(http_get(server.http, "/health")?, (200, "ok\n".to_string()));
    let (status, metrics) = http_get(server.http, "/metrics")?;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("ringlog_requests_total{api=\"Produce\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ringlog_partition_durable_end{partition=\"m-0\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("ringlog_connections_open 1"), "{metrics}");
    assert_eq!(http_get(server.http, "/nothing")?.0, 404);
    assert!(server.terminate()?, "{}", server.log_text());
    Ok(())
}

// kcat (librdkafka) produces 1,000 keyed messages and consumes them back identical and in
// order, with topic auto-creation on.
#[test]
fn kcat_round_trip() -> anyhow::Result<()> {
    let kcat = std::process::Command::new("kcat").arg("-V").output();
    assert!(
        kcat.is_ok_and(|output| output.status.success()),
        "kcat is not installed: apt-get install -y kcat (the CI script installs it)"
    );
    let (_dir, server) = start("auto_create_topics = true\n")?;
    let input: String = (0..1000)
        .map(|index| format!("key{index}:value {index}\n"))
        .collect();
    let mut producer = std::process::Command::new("kcat")
        .args([
            "-P",
            "-b",
            &server.listen.to_string(),
            "-t",
            "kc",
            "-K:",
            "-X",
            "acks=all",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    producer
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())?;
    assert!(producer.wait()?.success());
    let output = std::process::Command::new("kcat")
        .args([
            "-C",
            "-b",
            &server.listen.to_string(),
            "-t",
            "kc",
            "-o",
            "beginning",
            "-e",
        ])
        .args(["-f", "%k:%s\n"])
        .output()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8(output.stdout)?, input);
    Ok(())
}
