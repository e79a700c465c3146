//! ringlog's status request, as `ringlog status` sends it (crates/cli/src/status.rs): a Kafka
//! request header v1 with ringlog's own API key 32000, version 0, and no body; the node
//! answers with the correlation id and a JSON document (crates/server/src/status.rs,
//! docs/operations.md#status): its node id, cluster id, leader, epoch, the cluster's nodes
//! and every partition's role, ends, high watermark, ISR size and followers' lag.
//!
//! The bench asks it of a cluster it did not start (`--target`), to record what the cluster
//! says about itself and to wait for full ISRs without knowing the nodes' HTTP ports.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

/// The status request's API key (`ringlog_server::status::STATUS_API_KEY`; no Kafka API uses
/// it).
pub const STATUS_API_KEY: i16 = 32_000;
/// Limit on connecting to a node and on its answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest status answer accepted.
const ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Correlation id of the one request per connection.
const CORRELATION_ID: i32 = 1;

/// The request frame, size prefix included.
#[allow(clippy::big_endian_bytes)] // Kafka frames are big-endian.
pub fn status_request_frame() -> Vec<u8> {
    let mut request = Vec::new();
    request.extend_from_slice(&STATUS_API_KEY.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    // Null client id.
    request.extend_from_slice(&(-1i16).to_be_bytes());
    let size = u32::try_from(request.len()).expect("a fixed 10-byte request");
    let mut frame = size.to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    frame
}

/// The JSON document of an answer (without its size prefix).
#[allow(clippy::big_endian_bytes)] // Kafka frames are big-endian.
pub fn parse_status_answer(answer: &[u8]) -> anyhow::Result<Value> {
    let Some((correlation, document)) = answer.split_first_chunk::<4>() else {
        bail!("a status answer of {} bytes", answer.len());
    };
    if i32::from_be_bytes(*correlation) != CORRELATION_ID {
        bail!("the status answer is for another request");
    }
    serde_json::from_slice(document).context("decoding the status document")
}

/// The status document of the node at `address` (its Kafka listener).
#[allow(clippy::big_endian_bytes)] // Kafka frames are big-endian.
pub fn query_status(address: &str) -> anyhow::Result<Value> {
    let target: SocketAddr = address
        .to_socket_addrs()
        .with_context(|| format!("resolving {address}"))?
        .next()
        .with_context(|| format!("{address} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&target, STATUS_TIMEOUT)
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(STATUS_TIMEOUT))?;
    stream.set_write_timeout(Some(STATUS_TIMEOUT))?;
    stream.write_all(&status_request_frame())?;
    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .with_context(|| format!("reading {address}'s status answer"))?;
    let size = usize::try_from(u32::from_be_bytes(size)).context("answer size")?;
    if !(4..=ANSWER_BYTES_MAX).contains(&size) {
        bail!("{address} answered the status request with {size} bytes");
    }
    let mut answer = vec![0; size];
    stream.read_exact(&mut answer)?;
    parse_status_answer(&answer).with_context(|| format!("the status of {address}"))
}

#[cfg(test)]
#[allow(clippy::big_endian_bytes)] // Kafka frames are big-endian.
mod tests {
    use super::*;

    // The frame is the size, then header v1: key 32000, version 0, correlation 1, null id.
    #[test]
    fn frames_the_request_like_ringlog_status() {
        let frame = status_request_frame();
        assert_eq!(frame.len(), 14);
        assert_eq!(&frame[0..4], &10u32.to_be_bytes());
        assert_eq!(&frame[4..6], &32_000i16.to_be_bytes());
        assert_eq!(&frame[6..8], &[0, 0]);
        assert_eq!(&frame[8..12], &1i32.to_be_bytes());
        assert_eq!(&frame[12..14], &(-1i16).to_be_bytes());
    }

    #[test]
    fn parses_answers() {
        let mut answer = 1i32.to_be_bytes().to_vec();
        answer.extend_from_slice(br#"{"node_id": 2, "partitions": []}"#);
        assert_eq!(parse_status_answer(&answer).unwrap()["node_id"], 2);
        let mut other = 7i32.to_be_bytes().to_vec();
        other.extend_from_slice(b"{}");
        assert!(parse_status_answer(&other).is_err());
        assert!(parse_status_answer(&[0, 0]).is_err());
    }
}
