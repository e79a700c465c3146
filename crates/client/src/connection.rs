//! One TCP connection to one broker: request framing, correlation ids, response decoding.
//!
//! A connection is split into a [`FrameWriter`] and a [`FrameReader`] over the same socket,
//! so that a producer can write requests from the caller's thread while another thread reads
//! the answers (pipelining). Kafka answers the requests of one connection in the order they
//! were sent (docs/kafka-protocol.md), which is what lets a reader match each response to the
//! oldest request still waiting for one.
//!
//! The reader takes what the socket has (up to [`READ_BUFFER_BYTES`]) in one receive and
//! splits frames out of it, so that a pipelining producer's small responses cost one receive
//! for many instead of two each (size prefix, then body).
//!
//! Invariants: correlation ids increase by one per request on a connection; a response is
//! accepted only if its correlation id is the one expected next; a response frame is never
//! larger than `response_size_bytes_max`, checked before anything is allocated for it;
//! `buffered_start <= buffered_end <= READ_BUFFER_BYTES`. After any I/O or framing error the
//! connection is unusable and the caller drops it.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use ringlog_kafka::frame::SIZE_PREFIX_SIZE_BYTES;
use ringlog_kafka::ApiKey;

use crate::error::{Error, Result};

/// Bytes one receive of a [`FrameReader`] asks for at most. A frame larger than this is read
/// past the buffer, straight into its own allocation.
pub(crate) const READ_BUFFER_BYTES: usize = 64 * 1024;

/// What a connection is opened with.
#[derive(Clone, Debug)]
pub(crate) struct ConnectionSettings {
    /// Sent in every request header.
    pub client_id: String,
    /// Limit on connecting to one socket address.
    pub connect_timeout: Duration,
    /// Limit on waiting for a response once a request is out (a fetch adds its max wait).
    pub request_timeout: Duration,
    /// Largest response frame accepted.
    pub response_size_bytes_max: usize,
}

/// The [`ApiKey`] of a kafka-protocol request type. Every request this crate sends is one
/// ringlog serves, so a missing key is a bug in this crate.
pub(crate) fn api_key_of<R: Request>() -> ApiKey {
    ApiKey::from_code(R::KEY).unwrap_or_else(|| panic!("api_key {} is not in the table", R::KEY))
}

/// Opens a TCP connection to the first socket address of `address` that accepts one.
pub(crate) fn open(
    address: &str,
    settings: &ConnectionSettings,
) -> Result<(FrameWriter, FrameReader)> {
    let socket_addresses = address.to_socket_addrs().map_err(|_| Error::Resolve {
        address: address.to_owned(),
    })?;
    let mut last_error = None;
    for socket_address in socket_addresses {
        match TcpStream::connect_timeout(&socket_address, settings.connect_timeout) {
            Ok(stream) => return split(stream, address, settings),
            Err(error) => last_error = Some(error),
        }
    }
    Err(match last_error {
        Some(source) => Error::Io {
            operation: "connect to",
            address: address.to_owned(),
            source,
        },
        None => Error::Resolve {
            address: address.to_owned(),
        },
    })
}

fn split(
    stream: TcpStream,
    address: &str,
    settings: &ConnectionSettings,
) -> Result<(FrameWriter, FrameReader)> {
    let io_error = |source| Error::Io {
        operation: "configure",
        address: address.to_owned(),
        source,
    };
    // Requests are small and latency matters more than packet count.
    stream.set_nodelay(true).map_err(io_error)?;
    stream
        .set_read_timeout(Some(settings.request_timeout))
        .map_err(io_error)?;
    let read_stream = stream.try_clone().map_err(io_error)?;
    let writer = FrameWriter {
        address: address.to_owned(),
        stream,
        client_id: StrBytes::from_string(settings.client_id.clone()),
        correlation_id_next: 0,
        buffer: BytesMut::new(),
    };
    let reader = FrameReader {
        address: address.to_owned(),
        stream: read_stream,
        request_timeout: settings.request_timeout,
        response_size_bytes_max: settings.response_size_bytes_max,
        buffer: vec![0; READ_BUFFER_BYTES],
        buffered_start: 0,
        buffered_end: 0,
    };
    Ok((writer, reader))
}

/// The sending half of a connection.
#[derive(Debug)]
pub(crate) struct FrameWriter {
    address: String,
    stream: TcpStream,
    client_id: StrBytes,
    correlation_id_next: i32,
    buffer: BytesMut,
}

impl FrameWriter {
    /// Encodes and writes one request; returns its correlation id.
    pub fn send<R: Request>(&mut self, body: &R, version: i16) -> Result<i32> {
        let api = api_key_of::<R>();
        let correlation_id = self.correlation_id_next;
        self.correlation_id_next = self.correlation_id_next.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(self.client_id.clone());
        self.buffer.clear();
        self.buffer.extend_from_slice(&[0; SIZE_PREFIX_SIZE_BYTES]);
        let encoded = header
            .encode(&mut self.buffer, R::header_version(version))
            .and_then(|()| body.encode(&mut self.buffer, version));
        encoded.map_err(|error| Error::Protocol {
            api,
            version,
            detail: format!("request does not encode: {error}"),
        })?;
        let body_size_bytes = self.buffer.len() - SIZE_PREFIX_SIZE_BYTES;
        let prefix = i32::try_from(body_size_bytes).map_err(|_| Error::Protocol {
            api,
            version,
            detail: format!("request of {body_size_bytes} bytes exceeds i32"),
        })?;
        put_i32_prefix(&mut self.buffer, prefix);
        self.stream
            .write_all(&self.buffer)
            .map_err(|source| Error::Io {
                operation: "write to",
                address: self.address.clone(),
                source,
            })?;
        Ok(correlation_id)
    }

    /// The broker's address, for error messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The correlation id the next [`FrameWriter::send`] will use.
    pub fn correlation_id_next(&self) -> i32 {
        self.correlation_id_next
    }

    /// Shuts the socket down in both directions, so that a reader blocked on it returns.
    pub fn shutdown(&self) {
        // Already closed or never connected: either way nothing more can be read or written.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Writes Kafka's big-endian size prefix over the first four bytes of `buffer`.
#[allow(clippy::big_endian_bytes)] // Kafka's frame prefix is big-endian on the wire.
fn put_i32_prefix(buffer: &mut BytesMut, prefix: i32) {
    buffer[..SIZE_PREFIX_SIZE_BYTES].copy_from_slice(&prefix.to_be_bytes());
}

/// The receiving half of a connection.
#[derive(Debug)]
pub(crate) struct FrameReader {
    address: String,
    stream: TcpStream,
    request_timeout: Duration,
    response_size_bytes_max: usize,
    /// Received bytes; those in `buffered_start..buffered_end` are not yet taken.
    buffer: Vec<u8>,
    buffered_start: usize,
    buffered_end: usize,
}

impl FrameReader {
    /// Reads one response frame (without its size prefix).
    pub fn read_frame(&mut self) -> Result<Bytes> {
        self.fill_to(SIZE_PREFIX_SIZE_BYTES)?;
        let mut prefix = [0u8; SIZE_PREFIX_SIZE_BYTES];
        let prefix_end = self.buffered_start + SIZE_PREFIX_SIZE_BYTES;
        prefix.copy_from_slice(&self.buffer[self.buffered_start..prefix_end]);
        let size_bytes = frame_size_bytes(prefix);
        let size_bytes_ok = usize::try_from(size_bytes)
            .ok()
            .filter(|&size| size >= 4 && size <= self.response_size_bytes_max);
        let Some(size_bytes) = size_bytes_ok else {
            return Err(Error::FrameSize {
                address: self.address.clone(),
                size_bytes: i64::from(size_bytes),
                limit_bytes: self.response_size_bytes_max,
            });
        };
        self.buffered_start = prefix_end;
        if size_bytes <= READ_BUFFER_BYTES {
            self.fill_to(size_bytes)?;
            let frame_end = self.buffered_start + size_bytes;
            let frame = Bytes::copy_from_slice(&self.buffer[self.buffered_start..frame_end]);
            self.buffered_start = frame_end;
            return Ok(frame);
        }
        // A large frame (a fetch): what is buffered, then the rest read straight into it.
        let buffered = &self.buffer[self.buffered_start..self.buffered_end];
        let mut frame = BytesMut::zeroed(size_bytes);
        frame[..buffered.len()].copy_from_slice(buffered);
        let buffered_size_bytes = buffered.len();
        self.buffered_start = 0;
        self.buffered_end = 0;
        self.read_exact(&mut frame[buffered_size_bytes..])?;
        Ok(frame.freeze())
    }

    /// Receives until at least `size_bytes` (at most [`READ_BUFFER_BYTES`]) are buffered,
    /// each receive taking whatever the socket has that fits.
    fn fill_to(&mut self, size_bytes: usize) -> Result<()> {
        assert!(size_bytes <= READ_BUFFER_BYTES, "size_bytes={size_bytes}");
        if self.buffered_end - self.buffered_start >= size_bytes {
            return Ok(());
        }
        if self.buffered_start + size_bytes > READ_BUFFER_BYTES {
            // Move the partial frame to the front to make room for the rest of it.
            self.buffer
                .copy_within(self.buffered_start..self.buffered_end, 0);
            self.buffered_end -= self.buffered_start;
            self.buffered_start = 0;
        }
        while self.buffered_end - self.buffered_start < size_bytes {
            let received = match self.stream.read(&mut self.buffer[self.buffered_end..]) {
                Ok(0) => Err(ErrorKind::UnexpectedEof.into()),
                Ok(received) => Ok(received),
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => Err(error),
            };
            self.buffered_end += received.map_err(|source| Error::Io {
                operation: "read from",
                address: self.address.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Reads the response to request `correlation_id` of type `R` at `version`.
    pub fn receive<R: Request>(
        &mut self,
        correlation_id: i32,
        version: i16,
    ) -> Result<R::Response> {
        let frame = self.read_frame()?;
        decode_response::<R>(frame, correlation_id, version)
    }

    /// Allows `extra` more than the request timeout for the next reads (a long-poll fetch).
    pub fn extend_timeout(&mut self, extra: Duration) -> Result<()> {
        self.stream
            .set_read_timeout(Some(self.request_timeout + extra))
            .map_err(|source| Error::Io {
                operation: "configure",
                address: self.address.clone(),
                source,
            })
    }

    /// The broker's address, for error messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn read_exact(&mut self, buffer: &mut [u8]) -> Result<()> {
        self.stream.read_exact(buffer).map_err(|source| Error::Io {
            operation: "read from",
            address: self.address.clone(),
            source,
        })
    }
}

#[allow(clippy::big_endian_bytes)] // Kafka's frame prefix is big-endian on the wire.
fn frame_size_bytes(prefix: [u8; SIZE_PREFIX_SIZE_BYTES]) -> i32 {
    i32::from_be_bytes(prefix)
}

/// Decodes a response frame: header (checking the correlation id), then the body, which must
/// use every byte of the frame.
pub(crate) fn decode_response<R: Request>(
    mut frame: Bytes,
    correlation_id: i32,
    version: i16,
) -> Result<R::Response> {
    let api = api_key_of::<R>();
    let protocol = |detail: String| Error::Protocol {
        api,
        version,
        detail,
    };
    let header_version = <R::Response as HeaderVersion>::header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version)
        .map_err(|error| protocol(format!("header does not decode: {error}")))?;
    if header.correlation_id != correlation_id {
        return Err(protocol(format!(
            "correlation id {} where {correlation_id} was expected",
            header.correlation_id
        )));
    }
    let body = <R::Response as Decodable>::decode(&mut frame, version)
        .map_err(|error| protocol(format!("body does not decode: {error}")))?;
    if !frame.is_empty() {
        return Err(protocol(format!("{} bytes after the body", frame.len())));
    }
    Ok(body)
}

/// A connection used one request at a time (metadata, admin, fetch).
#[derive(Debug)]
pub(crate) struct Connection {
    pub writer: FrameWriter,
    pub reader: FrameReader,
}

impl Connection {
    /// Opens a connection to `address`.
    pub fn open(address: &str, settings: &ConnectionSettings) -> Result<Connection> {
        let (writer, reader) = open(address, settings)?;
        Ok(Connection { writer, reader })
    }

    /// Sends `body` at `version` and waits for its response.
    pub fn call<R: Request>(&mut self, body: &R, version: i16) -> Result<R::Response> {
        let correlation_id = self.writer.send(body, version)?;
        self.reader.receive::<R>(correlation_id, version)
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn settings() -> ConnectionSettings {
        ConnectionSettings {
            client_id: "test".into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            response_size_bytes_max: 1024 * 1024,
        }
    }

    #[allow(clippy::big_endian_bytes)] // Kafka's frame prefix is big-endian on the wire.
    fn framed(body: &[u8]) -> Vec<u8> {
        let mut frame = i32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        frame
    }

    // Frames that arrive together (small ones taken from one receive, one larger than the
    // read buffer, one split across writes, one after the large one) come out whole and in
    // order, and the end of the stream is an error.
    #[test]
    fn frames_are_split_out_of_buffered_receives() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let large: Vec<u8> = (0..READ_BUFFER_BYTES * 3 + 7)
            .map(|index| u8::try_from(index % 251).unwrap())
            .collect();
        let bodies: Vec<Vec<u8>> = vec![
            b"first".to_vec(),
            b"second".to_vec(),
            vec![7; READ_BUFFER_BYTES - 100],
            large,
            b"after".to_vec(),
            vec![9; READ_BUFFER_BYTES],
        ];
        let sent = bodies.clone();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let bytes: Vec<u8> = sent.iter().flat_map(|body| framed(body)).collect();
            // Two writes that cut a frame in the middle of its size prefix.
            let cut = 4 + 5 + 2;
            stream.write_all(&bytes[..cut]).unwrap();
            stream.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            stream.write_all(&bytes[cut..]).unwrap();
        });
        let (_writer, mut reader) = open(&address, &settings()).unwrap();
        for body in &bodies {
            assert_eq!(reader.read_frame().unwrap().as_ref(), body.as_slice());
        }
        server.join().unwrap();
        assert!(matches!(reader.read_frame(), Err(Error::Io { .. })));
    }
}
