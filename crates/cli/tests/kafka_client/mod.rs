//! Test support for the `ringlog serve` tests: a server process on free loopback ports, and
//! a minimal blocking Kafka client built from kafka-protocol's client-side codecs.
#![allow(dead_code)]
// Kafka frames are big-endian on the wire.
#![allow(clippy::big_endian_bytes)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// How long any wait in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A free loopback address (bound to port 0, then released).
pub fn free_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address")
}

/// A `ringlog serve` process.
pub struct Server {
    pub child: Child,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub http: SocketAddr,
    pub log: PathBuf,
}

impl Server {
    /// Starts a server on `data_dir` (mmap write path: works on every file system) with
    /// extra config lines, and waits until `/health` answers.
    pub fn start(data_dir: &Path, config_lines: &str) -> anyhow::Result<Server> {
        let listen = free_address();
        let http = free_address();
        let config = data_dir.with_extension("toml");
        std::fs::write(&config, config_lines)?;
        let log = data_dir.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_ringlog"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--http-listen")
            .arg(http.to_string())
            .arg("--write-path")
            .arg("mmap")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("spawning ringlog serve")?;
        let mut server = Server {
            child,
            data_dir: data_dir.to_path_buf(),
            listen,
            http,
            log,
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok((200, _)) = http_get(http, "/health") {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("server exited with {status}: {}", server.log_text());
            }
            if Instant::now() > deadline {
                bail!("server not healthy in time: {}", server.log_text());
            }
            std::thread::yield_now();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and wait for the exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait (bounded) for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> anyhow::Result<bool> {
        let pid = self.child.id().to_string();
        Command::new("kill").arg("-TERM").arg(&pid).status()?;
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            std::thread::yield_now();
        }
        bail!("server did not stop after SIGTERM")
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        Client::connect(self.listen)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP GET: status code and body.
pub fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text.split(' ').nth(1).unwrap_or("0").parse()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

/// A blocking Kafka client over one connection.
pub struct Client {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(address: SocketAddr) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(DEADLINE))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            correlation_id: 0,
        })
    }

    /// Sends a request; returns its correlation id.
    pub fn send<R: Encodable + HeaderVersion>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &R,
    ) -> anyhow::Result<i32> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut frame = BytesMut::new();
        header.encode(&mut frame, R::header_version(version))?;
        body.encode(&mut frame, version)?;
        let size = i32::try_from(frame.len())?;
        self.stream.write_all(&size.to_be_bytes())?;
        self.stream.write_all(&frame)?;
        Ok(self.correlation_id)
    }

    /// Reads one response frame: its correlation id and body.
    pub fn receive<T: Decodable + HeaderVersion>(
        &mut self,
        version: i16,
        api_key: ApiKey,
    ) -> anyhow::Result<(i32, T)> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut frame = vec![0u8; usize::try_from(i32::from_be_bytes(size))?];
        self.stream.read_exact(&mut frame)?;
        let mut frame = Bytes::from(frame);
        let header_version = if api_key == ApiKey::ApiVersions {
            0
        } else {
            T::header_version(version)
        };
        let header = ResponseHeader::decode(&mut frame, header_version)?;
        let body = T::decode(&mut frame, version)?;
        if frame.has_remaining() {
            bail!("{} trailing bytes", frame.remaining());
        }
        Ok((header.correlation_id, body))
    }

    pub fn call<R: Encodable + HeaderVersion, T: Decodable + HeaderVersion>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &R,
    ) -> anyhow::Result<T> {
        let sent = self.send(api_key, version, body)?;
        let (received, response) = self.receive(version, api_key)?;
        if sent != received {
            bail!("correlation id {received}, expected {sent}");
        }
        Ok(response)
    }

    pub fn create_topic(&mut self, name: &str, partitions: i32) -> anyhow::Result<i16> {
        use kafka_protocol::messages::create_topics_request::CreatableTopic;
        use kafka_protocol::messages::CreateTopicsResponse;
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)]);
        let response: CreateTopicsResponse = self.call(ApiKey::CreateTopics, 5, &request)?;
        Ok(response.topics[0].error_code)
    }

    /// Produces one record set; returns (error code, base offset).
    pub fn produce(
        &mut self,
        name: &str,
        partition: i32,
        records: Vec<u8>,
        acks: i16,
    ) -> anyhow::Result<(i16, i64)> {
        let request = produce_request(name, partition, records, acks);
        let response: ProduceResponse = self.call(ApiKey::Produce, 9, &request)?;
        let answer = &response.responses[0].partition_responses[0];
        Ok((answer.error_code, answer.base_offset))
    }

    /// Fetches from one partition; returns (error code, high watermark, record bytes).
    pub fn fetch(
        &mut self,
        name: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
    ) -> anyhow::Result<(i16, i64, Bytes)> {
        let request = fetch_request(name, partition, offset, max_wait_ms);
        let response: FetchResponse = self.call(ApiKey::Fetch, 12, &request)?;
        let answer = &response.responses[0].partitions[0];
        let records = answer.records.clone().unwrap_or_default();
        Ok((answer.error_code, answer.high_watermark, records))
    }
}

pub fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn produce_request(name: &str, partition: i32, records: Vec<u8>, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic(name))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))])])
}

pub fn fetch_request(name: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(16 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic(name))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(4 * 1024 * 1024)])])
}

/// A batch of `count` records "key-i" -> "value-i".
pub fn batch(count: usize, tag: &str) -> Vec<u8> {
    let mut builder = ringlog_batch::BatchBuilder::new(1_700_000_000_000);
    for index in 0..count {
        let key = format!("key-{tag}-{index}");
        let value = format!("value-{tag}-{index}");
        let timestamp_ms = 1_700_000_000_000 + i64::try_from(index).expect("small");
        builder.push(
            timestamp_ms,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &[],
        );
    }
    builder.build()
}

/// A batch as stored: the bytes after the base offset and the leader epoch (both stamped by
/// the server) are what the producer sent.
pub fn unstamped(batch: &[u8]) -> (&[u8], &[u8]) {
    (&batch[8..12], &batch[16..])
}
