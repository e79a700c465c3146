//! The client against the in-memory test broker (tests/common/broker.rs), which answers
//! with `ringlog_kafka`'s server-side codecs: produce and consume round trips, pipelining,
//! ack modes, typed errors, start positions, long poll, damaged batches, admin calls.

#![allow(clippy::unwrap_used, clippy::expect_used)] // In tests a panic is the failure report.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{connect, TestBroker};
use ringlog_batch::BatchBuilder;
use ringlog_client::{
    Acks, Consumer, ConsumerOptions, Error, ErrorCode, Producer, ProducerOptions, ProducerRecord,
    Receipt, StartOffset,
};
use ringlog_kafka::ApiKey;
use ringlog_types::Offset;

/// Bound on every wait in these tests.
const DEADLINE: Duration = Duration::from_secs(20);
const BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;

fn key_of(index: usize) -> Vec<u8> {
    format!("key-{index}").into_bytes()
}

/// Values of varying length, so batches hold different record counts.
fn value_of(index: usize) -> Vec<u8> {
    let mut value = format!("value-{index}-").into_bytes();
    value.resize(
        value.len() + index % 97,
        b'a' + u8::try_from(index % 26).unwrap(),
    );
    value
}

/// Sends `count` records with keys, values and two headers (one null) to `topic[0]`.
fn send_records(producer: &Producer, topic: &str, count: usize) -> Vec<Receipt> {
    (0..count)
        .map(|index| {
            let (key, value) = (key_of(index), value_of(index));
            let index_bytes = index.to_string().into_bytes();
            let headers: [(&[u8], Option<&[u8]>); 2] =
                [(b"index", Some(&index_bytes)), (b"empty", None)];
            let record = ProducerRecord {
                key: Some(&key),
                value: Some(&value),
                headers: &headers,
                timestamp_ms: BASE_TIMESTAMP_MS + i64::try_from(index).unwrap(),
            };
            producer.send(topic, 0, &record).expect("send")
        })
        .collect()
}

/// Polls `consumer` until it has returned `count` records (bounded by `DEADLINE`).
fn consume(consumer: &mut Consumer, count: usize) -> Vec<ringlog_client::ConsumedRecord> {
    let end = Instant::now() + DEADLINE;
    let mut records = Vec::new();
    while records.len() < count {
        assert!(
            Instant::now() < end,
            "only {} of {count} records",
            records.len()
        );
        records.extend(consumer.poll().expect("poll"));
    }
    records
}

fn short_wait() -> ConsumerOptions {
    ConsumerOptions {
        max_wait: Duration::from_millis(50),
        ..ConsumerOptions::default()
    }
}

// Produces 10,000 records with keys, values, headers (one null) and timestamps through the
// batching producer (acks=all), checks every receipt's offset, then consumes from Earliest
// and checks that every field comes back identical and in order.
#[test]
fn round_trip_of_10000_records() {
    let broker = TestBroker::start();
    broker.create_topic("events", 1);
    let mut client = connect(&broker);
    let producer = Producer::new(&client, ProducerOptions::default());
    let receipts = send_records(&producer, "events", 10_000);
    producer.flush().unwrap();
    for (index, receipt) in receipts.iter().enumerate() {
        assert_eq!(
            receipt.wait().unwrap(),
            Some(Offset(u64::try_from(index).unwrap()))
        );
    }
    let batches_count = broker.with_state(|state| state.topics["events"][0].batches.len());
    assert!(
        batches_count > 10,
        "records were batched into {batches_count} batches"
    );

    let mut consumer = Consumer::new(
        &mut client,
        "events",
        0,
        StartOffset::Earliest,
        short_wait(),
    )
    .unwrap();
    let records = consume(&mut consumer, 10_000);
    assert_eq!(records.len(), 10_000);
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.offset, i64::try_from(index).unwrap());
        assert_eq!(record.key.as_deref(), Some(&key_of(index)[..]));
        assert_eq!(record.value.as_deref(), Some(&value_of(index)[..]));
        assert_eq!(record.timestamp_ms, BASE_TIMESTAMP_MS + record.offset);
        let headers: Vec<(&[u8], Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(key, value)| (&key[..], value.as_deref()))
            .collect();
        let index_bytes = index.to_string().into_bytes();
        assert_eq!(
            headers,
            [(&b"index"[..], Some(&index_bytes[..])), (b"empty", None)]
        );
    }
    assert_eq!(consumer.position(), 10_000);
    assert_eq!(consumer.high_watermark(), 10_000);
}

// The broker holds Produce responses back until 8 requests are unanswered on the
// connection; a producer with in_flight_max = 8 and small batches must get there (it would
// stall until the broker's hold timeout otherwise), and never go above 8. The records still
// get their offsets in order.
#[test]
fn pipelining_keeps_in_flight_max_requests_outstanding() {
    let broker = TestBroker::start();
    broker.create_topic("events", 1);
    broker.with_state(|state| state.hold_produce_responses = 8);
    let client = connect(&broker);
    let options = ProducerOptions {
        batch_size_bytes: 1024,
        in_flight_max: 8,
        linger: Duration::from_secs(60),
        ..ProducerOptions::default()
    };
    let producer = Producer::new(&client, options);
    let started = Instant::now();
    let receipts = send_records(&producer, "events", 400);
    producer.flush().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "stalled on the broker's hold"
    );
    assert_eq!(broker.with_state(|state| state.produce_unanswered_max), 8);
    assert_eq!(producer.in_flight_count_max(), 8);
    assert!(broker.requests_count(ApiKey::Produce) > 16);
    for (index, receipt) in receipts.iter().enumerate() {
        assert_eq!(
            receipt.wait().unwrap(),
            Some(Offset(u64::try_from(index).unwrap()))
        );
    }
}

// With acks = 0 the broker writes no Produce response and the producer waits for none:
// flush returns, receipts resolve without an offset, and the records arrive all the same.
#[test]
fn acks_zero_expects_no_response() {
    let broker = TestBroker::start();
    broker.create_topic("events", 1);
    let client = connect(&broker);
    let options = ProducerOptions {
        acks: Acks::None,
        batch_size_bytes: 512,
        ..ProducerOptions::default()
    };
    let producer = Producer::new(&client, options);
    let receipts = send_records(&producer, "events", 200);
    producer.flush().unwrap();
    for receipt in &receipts {
        assert_eq!(receipt.wait().unwrap(), None);
    }
    broker.wait_until(DEADLINE, |state| state.topics["events"][0].log_end == 200);
    assert!(broker.requests_count(ApiKey::Produce) > 1);
    assert_eq!(broker.with_state(|state| state.produce_responses_count), 0);
    assert_eq!(producer.in_flight_count_max(), 0);
}

// Broker answers become typed errors: an unknown topic (from metadata, before sending), an
// injected CORRUPT_MESSAGE on a produced batch, a fetch past the log end
// (OFFSET_OUT_OF_RANGE), and the admin errors TOPIC_ALREADY_EXISTS and
// UNKNOWN_TOPIC_OR_PARTITION, each naming its topic and partition.
#[test]
fn broker_errors_map_to_typed_errors() {
    let broker = TestBroker::start();
    broker.create_topic("events", 1);
    let mut client = connect(&broker);
    let producer = Producer::new(&client, ProducerOptions::default());
    let record = ProducerRecord {
        value: Some(b"v"),
        ..ProducerRecord::default()
    };
    let error = producer.send("missing", 0, &record).unwrap_err();
    assert_eq!(
        error.code(),
        Some(ErrorCode::UnknownTopicOrPartition),
        "{error}"
    );
    let error = producer.send("events", 7, &record).unwrap_err();
    assert!(
        matches!(error, Error::Broker { partition: 7, .. }),
        "{error}"
    );

    broker.with_state(|state| state.inject_produce_error = Some(ErrorCode::CorruptMessage));
    let receipt = producer.send("events", 0, &record).unwrap();
    match receipt.wait().unwrap_err() {
        Error::Broker {
            code,
            code_raw,
            topic,
            partition,
        } => {
            assert_eq!((code, code_raw), (ErrorCode::CorruptMessage, 2));
            assert_eq!((topic.as_str(), partition), ("events", 0));
        }
        other => panic!("{other}"),
    }
    let receipt = producer.send("events", 0, &record).unwrap();
    assert_eq!(
        receipt.wait().unwrap(),
        Some(Offset(0)),
        "the next batch is appended"
    );

    let mut consumer = Consumer::new(
        &mut client,
        "events",
        0,
        StartOffset::Offset(1000),
        short_wait(),
    )
    .unwrap();
    let error = consumer.poll().unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::OffsetOutOfRange), "{error}");
    assert_eq!(consumer.position(), 1000);

    let error = client.create_topic("events", 1).unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TopicAlreadyExists), "{error}");
    let error = client.delete_topic("missing").unwrap_err();
    assert!(
        matches!(&error, Error::Broker { code: ErrorCode::UnknownTopicOrPartition, topic, .. }
            if topic == "missing"),
        "{error}"
    );
}

// Start positions: Earliest reads from offset 0, Offset(n) from n even inside a batch
// (earlier records of that batch are skipped), Latest from the log end; and a long-poll
// fetch from the end returns as soon as a record is produced, not after max_wait.
#[test]
fn consumer_start_positions_and_long_poll() {
    let broker = TestBroker::start();
    broker.create_topic("events", 1);
    let mut client = connect(&broker);
    let producer = Producer::new(&client, ProducerOptions::default());
    send_records(&producer, "events", 30);
    producer.flush().unwrap();
    assert_eq!(
        broker.with_state(|state| state.topics["events"][0].batches.len()),
        1
    );

    let mut earliest = Consumer::new(
        &mut client,
        "events",
        0,
        StartOffset::Earliest,
        short_wait(),
    )
    .unwrap();
    assert_eq!(consume(&mut earliest, 30)[0].offset, 0);
    let mut middle = Consumer::new(
        &mut client,
        "events",
        0,
        StartOffset::Offset(17),
        short_wait(),
    )
    .unwrap();
    let records = consume(&mut middle, 13);
    assert_eq!(records.first().unwrap().offset, 17);
    assert_eq!(records.last().unwrap().offset, 29);

    let long_poll = ConsumerOptions {
        max_wait: Duration::from_secs(15),
        ..ConsumerOptions::default()
    };
    let mut latest =
        Consumer::new(&mut client, "events", 0, StartOffset::Latest, long_poll).unwrap();
    assert_eq!(latest.position(), 30);
    let fetches_before = broker.requests_count(ApiKey::Fetch);
    let started = Instant::now();
    let waiter = thread::spawn(move || (latest.poll().unwrap(), started.elapsed()));
    broker.wait_until(DEADLINE, |state| {
        state.requests_count.get(&ApiKey::Fetch.code()).copied() > Some(fetches_before)
    });
    let receipts = send_records(&producer, "events", 1);
    producer.flush().unwrap();
    assert_eq!(receipts[0].wait().unwrap(), Some(Offset(30)));
    let (records, elapsed) = waiter.join().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].offset, 30);
    assert!(
        elapsed < Duration::from_secs(15),
        "answered after {elapsed:?}"
    );
}

// A fetched batch whose CRC does not match is CorruptBatch; a compressed one is Compressed
// and names the codec. Both carry the batch's topic, partition and base offset.
#[test]
fn damaged_and_compressed_batches_are_errors() {
    let broker = TestBroker::start();
    broker.create_topic("events", 2);
    let mut builder = BatchBuilder::new(BASE_TIMESTAMP_MS);
    builder.push(BASE_TIMESTAMP_MS, None, Some(b"value"), &[]);
    let mut damaged = builder.build();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    broker.append_raw("events", 0, damaged);
    let mut gzip = builder.build();
    // Attributes (bytes 21-22) codec 1 = gzip, then the CRC32C (bytes 17-20) again.
    gzip[22] |= 1;
    let crc = ringlog_batch::crc32c(&gzip[ringlog_batch::CRC_START_POSITION..]);
    #[allow(clippy::big_endian_bytes)] // The batch's CRC field is big-endian, as Kafka's.
    gzip[17..21].copy_from_slice(&crc.to_be_bytes());
    broker.append_raw("events", 1, gzip);

    let mut client = connect(&broker);
    let mut consumer = Consumer::new(
        &mut client,
        "events",
        0,
        StartOffset::Earliest,
        short_wait(),
    )
    .unwrap();
    let error = consumer.poll().unwrap_err();
    assert!(
        matches!(
            error,
            Error::CorruptBatch {
                partition: 0,
                base_offset: 0,
                ..
            }
        ),
        "{error}"
    );
    let mut consumer = Consumer::new(
        &mut client,
        "events",
        1,
        StartOffset::Earliest,
        short_wait(),
    )
    .unwrap();
    let error = consumer.poll().unwrap_err();
    assert!(
        matches!(
            error,
            Error::Compressed {
                partition: 1,
                compression: ringlog_batch::Compression::Gzip,
                ..
            }
        ),
        "{error}"
    );
}

// Admin calls: create a topic with 3 partitions, see it in list_topics with a leader per
// partition, delete it, and see it gone; the client negotiated the broker's highest
// versions.
#[test]
fn admin_create_list_delete() {
    let broker = TestBroker::start();
    let mut client = connect(&broker);
    for &(api, _, _) in ringlog_client::CLIENT_VERSIONS {
        assert_eq!(client.versions().get(api), api.version_range().1, "{api}");
    }
    assert!(client.list_topics().unwrap().is_empty());
    client.create_topic("orders", 3).unwrap();
    let topics = client.list_topics().unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name, "orders");
    let partitions: Vec<(i32, i32)> = topics[0]
        .partitions
        .iter()
        .map(|partition| (partition.partition, partition.leader_id))
        .collect();
    assert_eq!(partitions, [(0, 1), (1, 1), (2, 1)]);
    assert_eq!(
        client.leader("orders", 2).unwrap().address(),
        broker.address()
    );
    let error = client.create_topic("bad", 0).unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidPartitions), "{error}");

    client.delete_topic("orders").unwrap();
    assert!(client.list_topics().unwrap().is_empty());
    assert!(broker.with_state(|state| state.topics.is_empty()));
}
