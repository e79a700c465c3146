//! One blocking Kafka connection, used one request at a time on the caller's thread.
//!
//! The queue-depth-1 runs time their requests through it, and the end-to-end consumer
//! fetches through it. A request is written and its answer read by the same thread, the way
//! the loopback round-trip baseline (`loopback.rs`) does its ping-pong, so a QD1 figure and
//! its floor pay the same wake-ups: one when the request reaches the server, one when the
//! answer comes back. `ringlog-client`'s `Producer` hands each answer from its reader
//! thread to the waiting caller, one more wake-up, which the baseline does not have
//! (bench-harness/README.md, "Queue depth 1: the client").
//!
//! Invariants: one request is outstanding at a time; an answer is accepted only with the
//! correlation id of the request just sent, and only whole (`read_exact`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use ringlog_client::{Acks, ErrorCode};

/// Largest answer frame accepted.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// A blocking connection to one broker.
pub struct KafkaConnection {
    stream: TcpStream,
    address: String,
    client_id: &'static str,
    correlation_id: i32,
    /// The request being encoded, kept between calls.
    buffer: BytesMut,
}

impl KafkaConnection {
    /// Connects to `address` (TCP_NODELAY, as Kafka clients set it). `timeout` bounds the
    /// connect and each write; `read_timeout` bounds the wait for one answer.
    pub fn open(
        address: &str,
        client_id: &'static str,
        timeout: Duration,
        read_timeout: Duration,
    ) -> anyhow::Result<KafkaConnection> {
        let socket = address
            .to_socket_addrs()
            .with_context(|| format!("resolving {address}"))?
            .next()
            .with_context(|| format!("{address} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&socket, timeout)
            .with_context(|| format!("connecting to {address} ({client_id})"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(read_timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(KafkaConnection {
            stream,
            address: address.to_owned(),
            client_id,
            correlation_id: 0,
            buffer: BytesMut::new(),
        })
    }

    /// Sends `request` at `version` and reads its answer.
    #[allow(clippy::big_endian_bytes)] // Kafka frames are big-endian.
    pub fn call<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str(self.client_id));
        self.buffer.clear();
        self.buffer.extend_from_slice(&[0; 4]);
        header
            .encode(&mut self.buffer, R::header_version(version))
            .and_then(|()| request.encode(&mut self.buffer, version))
            .map_err(|error| anyhow!("encoding a request (API key {}): {error}", R::KEY))?;
        let size = u32::try_from(self.buffer.len() - 4).context("request size")?;
        self.buffer[0..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&self.buffer).with_context(|| {
            format!("sending a request (API key {}) to {}", R::KEY, self.address)
        })?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).with_context(|| {
            format!(
                "reading an answer (API key {}) from {}",
                R::KEY,
                self.address
            )
        })?;
        let size = usize::try_from(u32::from_be_bytes(size)).context("answer size")?;
        if size > RESPONSE_BYTES_MAX {
            bail!("{} answered with a frame of {size} bytes", self.address);
        }
        let mut frame = vec![0; size];
        self.stream
            .read_exact(&mut frame)
            .with_context(|| format!("reading an answer's {size} bytes from {}", self.address))?;
        let mut frame = Bytes::from(frame);
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut frame, header_version)
            .map_err(|error| anyhow!("decoding an answer's header: {error}"))?;
        if header.correlation_id != self.correlation_id {
            bail!(
                "{} answered correlation id {} where {} was expected",
                self.address,
                header.correlation_id,
                self.correlation_id
            );
        }
        R::Response::decode(&mut frame, version)
            .map_err(|error| anyhow!("decoding an answer (API key {}): {error}", R::KEY))
    }

    /// Produces one batch (`records`, a whole RecordBatch) to `topic[partition]` at
    /// `version` and waits for the answer. acks 0 is refused: the server answers nothing
    /// then. Errors: the connection's, or the partition's error code.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: Acks,
        timeout: Duration,
        version: i16,
    ) -> anyhow::Result<()> {
        if acks == Acks::None {
            bail!("acks=0 has no answer to wait for");
        }
        let mut partition_data = PartitionProduceData::default();
        partition_data.index = partition;
        partition_data.records = Some(records);
        let mut topic_data = TopicProduceData::default();
        topic_data.name = TopicName(StrBytes::from_string(topic.to_owned()));
        topic_data.partition_data = vec![partition_data];
        let mut request = ProduceRequest::default();
        request.acks = acks.code();
        request.timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        request.topic_data = vec![topic_data];
        let response = self.call(&request, version)?;
        let answer = response
            .responses
            .iter()
            .flat_map(|topic| topic.partition_responses.iter())
            .find(|answer| answer.index == partition)
            .with_context(|| {
                format!(
                    "{} answered a Produce without {topic}[{partition}]",
                    self.address
                )
            })?;
        if answer.error_code != 0 {
            let name = ErrorCode::from_code(answer.error_code).map_or_else(
                || format!("error {}", answer.error_code),
                |code| code.to_string(),
            );
            bail!(
                "{} refused a Produce to {topic}[{partition}]: {name}",
                self.address
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::ProduceResponse;

    use super::*;

    const VERSION: i16 = 9;
    const TIMEOUT: Duration = Duration::from_secs(10);

    /// Reads one request frame; returns its header and the Produce request it carries.
    #[allow(clippy::big_endian_bytes)] // Kafka frames are big-endian.
    fn read_request(stream: &mut TcpStream) -> (RequestHeader, ProduceRequest) {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).unwrap();
        let mut frame = vec![0; usize::try_from(u32::from_be_bytes(size)).unwrap()];
        stream.read_exact(&mut frame).unwrap();
        let mut frame = Bytes::from(frame);
        let header =
            RequestHeader::decode(&mut frame, ProduceRequest::header_version(VERSION)).unwrap();
        let request = ProduceRequest::decode(&mut frame, header.request_api_version).unwrap();
        assert!(frame.is_empty(), "{} bytes after the request", frame.len());
        (header, request)
    }

    /// Writes `response` as the answer to `correlation_id`.
    #[allow(clippy::big_endian_bytes)] // Kafka frames are big-endian.
    fn write_response(stream: &mut TcpStream, correlation_id: i32, response: &ProduceResponse) {
        let mut header = ResponseHeader::default();
        header.correlation_id = correlation_id;
        let mut body = BytesMut::new();
        header
            .encode(&mut body, ProduceResponse::header_version(VERSION))
            .unwrap();
        response.encode(&mut body, VERSION).unwrap();
        let size = u32::try_from(body.len()).unwrap().to_be_bytes();
        stream.write_all(&size).unwrap();
        stream.write_all(&body).unwrap();
    }

    fn answer(partition: i32, error_code: i16) -> ProduceResponse {
        let mut partition_answer = PartitionProduceResponse::default();
        partition_answer.index = partition;
        partition_answer.error_code = error_code;
        let mut topic_answer = TopicProduceResponse::default();
        topic_answer.name = TopicName(StrBytes::from_static_str("t"));
        topic_answer.partition_responses = vec![partition_answer];
        let mut response = ProduceResponse::default();
        response.responses = vec![topic_answer];
        response
    }

    /// A peer that answers each of the client's requests with `reply(header, request)`.
    fn serve<F>(requests: usize, reply: F) -> (String, thread::JoinHandle<Vec<ProduceRequest>>)
    where
        F: Fn(&mut TcpStream, &RequestHeader) + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let peer = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            for _ in 0..requests {
                let (header, request) = read_request(&mut stream);
                assert_eq!(header.request_api_key, 0, "Produce's API key");
                assert_eq!(header.request_api_version, VERSION);
                assert_eq!(header.client_id.as_deref(), Some("bench-test"));
                reply(&mut stream, &header);
                seen.push(request);
            }
            seen
        });
        (address, peer)
    }

    fn produce(connection: &mut KafkaConnection, acks: Acks) -> anyhow::Result<()> {
        connection.produce("t", 3, Bytes::from_static(b"batch"), acks, TIMEOUT, VERSION)
    }

    // Each request carries the topic, partition, batch, acks and timeout given, under a new
    // correlation id, and an answer without error is Ok.
    #[test]
    fn produces_and_reads_each_answer_in_turn() {
        let (address, peer) = serve(2, |stream, header| {
            write_response(stream, header.correlation_id, &answer(3, 0));
        });
        let mut connection =
            KafkaConnection::open(&address, "bench-test", TIMEOUT, TIMEOUT).unwrap();
        produce(&mut connection, Acks::Leader).unwrap();
        produce(&mut connection, Acks::All).unwrap();
        let seen = peer.join().unwrap();
        let acks: Vec<i16> = seen.iter().map(|request| request.acks).collect();
        assert_eq!(acks, [1, -1]);
        for request in &seen {
            assert_eq!(request.timeout_ms, 10_000);
            let topic = &request.topic_data[0];
            assert_eq!(topic.name.0.as_str(), "t");
            assert_eq!(topic.partition_data[0].index, 3);
            assert_eq!(
                topic.partition_data[0].records.as_deref(),
                Some(&b"batch"[..])
            );
        }
    }

    // A partition's error code is an error that names it; the connection stays usable.
    #[test]
    fn a_refused_produce_names_the_error() {
        let (address, peer) = serve(2, |stream, header| {
            let code = if header.correlation_id == 1 { 19 } else { 0 };
            write_response(stream, header.correlation_id, &answer(3, code));
        });
        let mut connection =
            KafkaConnection::open(&address, "bench-test", TIMEOUT, TIMEOUT).unwrap();
        let error = produce(&mut connection, Acks::All).unwrap_err().to_string();
        assert!(error.contains("NOT_ENOUGH_REPLICAS"), "{error}");
        produce(&mut connection, Acks::All).unwrap();
        peer.join().unwrap();
    }

    // An answer to another request, or one without the partition, is refused.
    #[test]
    fn refuses_a_foreign_answer() {
        let (address, peer) = serve(2, |stream, header| {
            if header.correlation_id == 1 {
                write_response(stream, header.correlation_id + 7, &answer(3, 0));
            } else {
                write_response(stream, header.correlation_id, &answer(4, 0));
            }
        });
        let mut connection =
            KafkaConnection::open(&address, "bench-test", TIMEOUT, TIMEOUT).unwrap();
        let error = produce(&mut connection, Acks::All).unwrap_err().to_string();
        assert!(
            error.contains("correlation id 8 where 1 was expected"),
            "{error}"
        );
        let error = produce(&mut connection, Acks::All).unwrap_err().to_string();
        assert!(error.contains("without t[3]"), "{error}");
        peer.join().unwrap();
    }

    // acks=0 gets no answer, so waiting for one is refused before anything is sent.
    #[test]
    fn refuses_acks_zero() {
        let (address, peer) = serve(0, |_, _| {});
        let mut connection =
            KafkaConnection::open(&address, "bench-test", TIMEOUT, TIMEOUT).unwrap();
        let error = produce(&mut connection, Acks::None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("acks=0"), "{error}");
        assert!(peer.join().unwrap().is_empty());
    }
}
