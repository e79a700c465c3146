//! A small blocking client for ringlog (and other brokers) over the Kafka protocol, used by
//! the `ringlog` command and the benchmark harness.
//!
//! It owns:
//!
//! - [`Client`]: the bootstrap connection, API version negotiation (the highest version both
//!   sides have, per API), cluster metadata and routing to partition leaders, and the admin
//!   calls ([`Client::create_topic`], [`Client::delete_topic`], [`Client::list_topics`]);
//! - [`Producer`]: records gathered into RecordBatch v2 batches (`ringlog_batch::BatchBuilder`)
//!   per partition, Produce requests pipelined on one connection per broker, acks 0, 1 or
//!   all, and a [`Receipt`] per record that resolves to its offset;
//! - [`Consumer`]: one partition from an offset ([`StartOffset`]) with long-poll Fetch,
//!   batches validated and their records yielded as [`ConsumedRecord`]s;
//! - [`Error`]: typed errors, with Kafka's error code for broker answers.
//!
//! It does not own the protocol's codecs (kafka-protocol, with `ringlog_kafka`'s tables and
//! error codes) or the batch format (`ringlog_batch`). It does not decompress: a compressed
//! batch is [`Error::Compressed`]. There are no consumer groups, no idempotence, no retries:
//! errors reach the caller, who decides (see [`ringlog_kafka::ErrorCode::is_retriable`]).
//!
//! Blocking std TCP: each producer has one connection per broker, with a reader thread that
//! takes the responses in order, and a linger thread; a consumer owns one connection.
//!
//! ```no_run
//! use ringlog_client::{
//!     Client, ClientOptions, Consumer, ConsumerOptions, Producer, ProducerOptions,
//!     ProducerRecord, StartOffset,
//! };
//!
//! let mut client = Client::connect("127.0.0.1:9092", ClientOptions::default())?;
//! client.create_topic("orders", 1)?;
//!
//! let producer = Producer::new(&client, ProducerOptions::default());
//! let record = ProducerRecord {
//!     key: Some(b"user-1"),
//!     value: Some(b"hello"),
//!     headers: &[(b"trace", Some(b"42"))],
//!     timestamp_ms: ringlog_client::now_ms(),
//! };
//! let receipt = producer.send("orders", 0, &record)?;
//! producer.flush()?;
//! println!("offset {:?}", receipt.wait()?);
//!
//! let options = ConsumerOptions::default();
//! let mut consumer = Consumer::new(&mut client, "orders", 0, StartOffset::Earliest, options)?;
//! for record in consumer.poll()? {
//!     println!("{} {:?}", record.offset, record.value);
//! }
//! # Ok::<(), ringlog_client::Error>(())
//! ```
//!
//! Invariants kept by the whole crate: bytes from the network never cause a panic (every
//! malformed response is an [`Error`]); every queue is bounded (`in_flight_max` requests per
//! connection, one open batch per partition); Kafka's big-endian integers stay inside the
//! frame prefix code and the codecs.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod connection;
mod consumer;
mod error;
mod producer;
mod versions;

pub use client::{
    BrokerInfo, Client, ClientOptions, ClusterMetadata, OffsetSpec, PartitionInfo, TopicInfo,
    RESPONSE_SIZE_BYTES_MAX_DEFAULT,
};
pub use consumer::{ConsumedRecord, Consumer, ConsumerOptions, StartOffset};
pub use error::{Error, Result};
pub use producer::{
    now_ms, Acks, Producer, ProducerOptions, ProducerRecord, Receipt, BATCH_SIZE_BYTES_DEFAULT,
    IN_FLIGHT_MAX_DEFAULT, IN_FLIGHT_MAX_LIMIT,
};
pub use ringlog_kafka::{ApiKey, ErrorCode};
pub use versions::{Versions, CLIENT_VERSIONS};
