//! The internal replication protocol, version 2: the frames replicas exchange on their own
//! port (`docs/replication.md#internal-protocol` has the byte tables).
//!
//! A frame is a 24-byte [`FrameHeader`] followed by `body_len` bytes. A body starts with a
//! fixed-size `#[repr(C)]` struct per kind, then variable bytes (a topic name, records, a
//! message). Everything is little-endian (STYLE.md section 4): the structs are `bytemuck::Pod`
//! and read with unaligned copies, which is little-endian because the crate refuses to build
//! on big-endian targets.
//!
//! The CRC32C covers the header (with its `crc32c` field zero) and the body, except the
//! records of a `FetchResponse`: every Kafka batch there carries its own CRC32C, which the
//! follower validates when it appends, and leaving the records out lets the leader send them
//! straight from its log without hashing them twice.
//!
//! Invariants:
//!
//! - [`frame_length`] and [`decode`] never panic, whatever the bytes: every malformed input
//!   is a [`FrameError`]. Padding must be zero, so a later version can give it a meaning.
//! - [`decode`] accepts exactly what [`encode`] produces: every kind round-trips.
//! - No frame is larger than [`HEADER_SIZE_BYTES`] + [`FRAME_BYTES_MAX`].

use std::mem::{offset_of, size_of};

use bytemuck::{Pod, Zeroable};
use ringlog_types::{Epoch, NodeId, Offset};

use crate::policy::{AckMode, Policy};

const _: () = assert!(
    cfg!(target_endian = "little"),
    "the replication frames are little-endian and read as native-endian bytemuck structs"
);

/// `b"RLRP"` read as a little-endian `u32`: the first four bytes of every frame.
pub const MAGIC: u32 = u32::from_le_bytes(*b"RLRP");
/// The protocol version this crate speaks.
pub const VERSION: u16 = 2;
/// Size of [`FrameHeader`].
pub const HEADER_SIZE_BYTES: usize = 24;
/// The largest `body_len` accepted (64 MiB); a larger one is [`FrameError::TooLarge`].
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// The longest cluster id a `Hello` carries, in UTF-8 bytes.
pub const CLUSTER_ID_BYTES_MAX: usize = 32;

/// The header of every frame. Layout (little-endian, no implicit padding):
///
/// ```text
/// position  size  field
///        0     4  magic           b"RLRP"
///        4     2  version         2
///        6     2  kind            1..=9, see `Frame`
///        8     4  body_len        bytes after the header
///       12     4  crc32c          see the module documentation
///       16     8  correlation_id  chosen by the requester, echoed in the answer
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct FrameHeader {
    /// [`MAGIC`].
    pub magic: u32,
    /// [`VERSION`].
    pub version: u16,
    /// The frame kind (1 `Hello` .. 9 `HighWatermark`).
    pub kind: u16,
    /// Bytes after the header, records of a `FetchResponse` included.
    pub body_len: u32,
    /// CRC32C of the header with this field zero, then the covered body.
    pub crc32c: u32,
    /// Matches an answer to its request.
    pub correlation_id: u64,
}

const MAGIC_POSITION: usize = 0;
const VERSION_POSITION: usize = MAGIC_POSITION + size_of::<u32>();
const KIND_POSITION: usize = VERSION_POSITION + size_of::<u16>();
const BODY_LEN_POSITION: usize = KIND_POSITION + size_of::<u16>();
const CRC_POSITION: usize = BODY_LEN_POSITION + size_of::<u32>();
const CORRELATION_ID_POSITION: usize = CRC_POSITION + size_of::<u32>();
const _: () = assert!(CORRELATION_ID_POSITION + size_of::<u64>() == HEADER_SIZE_BYTES);
const _: () = assert!(size_of::<FrameHeader>() == HEADER_SIZE_BYTES);
const _: () = assert!(offset_of!(FrameHeader, magic) == MAGIC_POSITION);
const _: () = assert!(offset_of!(FrameHeader, version) == VERSION_POSITION);
const _: () = assert!(offset_of!(FrameHeader, kind) == KIND_POSITION);
const _: () = assert!(offset_of!(FrameHeader, body_len) == BODY_LEN_POSITION);
const _: () = assert!(offset_of!(FrameHeader, crc32c) == CRC_POSITION);
const _: () = assert!(offset_of!(FrameHeader, correlation_id) == CORRELATION_ID_POSITION);
const _: () = assert!(FRAME_BYTES_MAX <= u32::MAX as usize);

/// The error codes of an `Error` frame and of a `FetchResponse`.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The peer belongs to another cluster (`Hello`'s cluster id differs).
    ClusterMismatch = 1,
    /// This node does not lead the partition.
    NotLeader = 2,
    /// No such topic or partition on this node.
    UnknownTopicOrPartition = 3,
    /// The fetch offset is outside `[log_start, log_end]`.
    OffsetOutOfRange = 4,
    /// The log failed to read or write.
    StorageError = 5,
    /// The request could not be decoded.
    Malformed = 6,
    /// The peer speaks another protocol version.
    UnsupportedVersion = 7,
    /// A bug on the answering node.
    Internal = 8,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::ClusterMismatch,
        ErrorCode::NotLeader,
        ErrorCode::UnknownTopicOrPartition,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::StorageError,
        ErrorCode::Malformed,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Internal,
    ];

    /// The code with this number; `None` for 0 (no error) and unknown numbers.
    #[must_use]
    pub fn from_u16(code: u16) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|known| known.as_u16() == code)
    }

    /// The number on the wire.
    #[must_use]
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

/// One decoded frame; strings and records borrow from the decoded buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Kind 1, follower to leader: the first frame on a connection.
    Hello {
        /// The follower's cluster id (at most [`CLUSTER_ID_BYTES_MAX`] bytes, no NUL).
        cluster_id: &'a str,
        /// The follower's node id.
        node_id: NodeId,
    },
    /// Kind 2, leader to follower: the handshake succeeded.
    HelloOk {
        /// The leader's node id.
        node_id: NodeId,
        /// The leader's epoch.
        leader_epoch: Epoch,
    },
    /// Kind 3, follower to leader: a long-poll fetch that also reports the follower's ends.
    Fetch(Fetch<'a>),
    /// Kind 4, leader to follower: the answer to a fetch, then the records (raw Kafka
    /// batches, not covered by the frame's CRC).
    FetchResponse(FetchResponseHeader, &'a [u8]),
    /// Kind 5, follower to leader: the follower's durable end advanced while a fetch is parked.
    DurableReport(DurableReport<'a>),
    /// Kind 6, follower to leader: asks for the topic list.
    Topics,
    /// Kind 7, leader to follower: the topic list.
    TopicsResponse(Vec<TopicEntry>),
    /// Kind 8, either way: the request failed.
    Error {
        /// What failed.
        code: ErrorCode,
        /// A human-readable explanation.
        message: &'a str,
    },
    /// Kind 9, leader to follower: the HW moved while the follower's fetch is parked with no
    /// data to send. No answer; the fetch stays parked, ready for the next batch.
    HighWatermark(HighWatermark<'a>),
}

/// A follower's fetch (kind 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetch<'a> {
    /// The topic's name.
    pub topic: &'a str,
    /// The partition's index.
    pub partition: u32,
    /// The first offset wanted: the follower's log end.
    pub fetch_offset: Offset,
    /// The epoch of the follower's last batch; `None` for an empty log. `Epoch(u32::MAX)`
    /// cannot be sent: it means `None` on the wire.
    pub last_fetched_epoch: Option<Epoch>,
    /// The most record bytes the answer may carry.
    pub max_bytes: u32,
    /// How long the leader may park the fetch when it has nothing past `fetch_offset`.
    pub max_wait_ms: u32,
    /// The follower's written end.
    pub written_end: Offset,
    /// The follower's durable end.
    pub durable_end: Offset,
}

/// The fixed part of a fetch response (kind 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchResponseHeader {
    /// Why the fetch failed; `None` on success.
    pub error: Option<ErrorCode>,
    /// The leader's epoch.
    pub leader_epoch: Epoch,
    /// The leader's HW.
    pub high_watermark: Offset,
    /// The leader's log start.
    pub log_start: Offset,
    /// The leader's log end.
    pub log_end: Offset,
}

/// A follower's durable report (kind 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurableReport<'a> {
    /// The topic's name.
    pub topic: &'a str,
    /// The partition's index.
    pub partition: u32,
    /// The follower's written end.
    pub written_end: Offset,
    /// The follower's durable end.
    pub durable_end: Offset,
}

/// A leader's HW notice (kind 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HighWatermark<'a> {
    /// The topic's name.
    pub topic: &'a str,
    /// The partition's index.
    pub partition: u32,
    /// The leader's epoch.
    pub leader_epoch: Epoch,
    /// The leader's HW.
    pub high_watermark: Offset,
    /// The leader's log start.
    pub log_start: Offset,
}

/// One topic of a `TopicsResponse` (kind 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicEntry {
    /// The topic's name.
    pub name: String,
    /// Its partition count.
    pub partitions: u32,
    /// Its replica count, the leader included.
    pub replication_factor: u16,
    /// Its id (Kafka's topic UUID).
    pub topic_id: [u8; 16],
    /// Its commit rule. Decoding does not validate it against `replication_factor`.
    pub policy: Policy,
}

/// Why bytes are not a valid frame. Every variant means the connection should be dropped:
/// the stream can no longer be trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The first four bytes are not `RLRP`: not a ringlog replication peer.
    #[error("bad magic: not a ringlog replication frame")]
    BadMagic,
    /// The peer speaks another version of the protocol.
    #[error("unsupported protocol version {0} (this node speaks {VERSION})")]
    UnsupportedVersion(u16),
    /// The kind is not one of 1..=9.
    #[error("unknown frame kind {0}")]
    UnknownKind(u16),
    /// `body_len` is above [`FRAME_BYTES_MAX`].
    #[error("frame body of {body_len} bytes is larger than the maximum of {FRAME_BYTES_MAX}")]
    TooLarge {
        /// The declared body length.
        body_len: u32,
    },
    /// The CRC32C does not match: the frame was damaged.
    #[error("frame CRC32C mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    BadCrc {
        /// The `crc32c` field.
        expected: u32,
        /// The CRC32C computed over the covered bytes.
        actual: u32,
    },
    /// The buffer is shorter than the frame (or than a header).
    #[error("truncated frame: {needed_bytes} bytes needed, {available_bytes} available")]
    Truncated {
        /// The header's size, or the whole frame's.
        needed_bytes: usize,
        /// The buffer's length.
        available_bytes: usize,
    },
    /// The header is valid but the body breaks a rule of its kind.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// Why a frame cannot be encoded. These are programmer errors: the values come from this
/// node's own config and state, never from a peer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or byte field is longer than its length field allows.
    #[error("{field} is {len_bytes} bytes, more than the {max_bytes} a frame allows")]
    TooLong {
        /// The field's name.
        field: &'static str,
        /// Its length.
        len_bytes: usize,
        /// The most the frame allows.
        max_bytes: usize,
    },
    /// A value has no encoding in this version.
    #[error("{field} cannot be encoded: {reason}")]
    Unrepresentable {
        /// The field's name.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// Total length of the frame at the front of `buf` once its header is there: `Ok(None)` if
/// `buf` is shorter than a header; an error for a bad magic, version, kind or body length, so
/// a reader can drop a bad connection before reading the body.
pub fn frame_length(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(header) = read_header(buf) else {
        return Ok(None);
    };
    let (_, body_len_bytes) = check_header(&header)?;
    Ok(Some(HEADER_SIZE_BYTES + body_len_bytes))
}

/// Decodes one whole frame: `buf.len()` must equal its [`frame_length`]. Checks the header,
/// the CRC32C and every rule of the kind; returns the correlation id and the frame, which
/// borrows from `buf`.
pub fn decode(buf: &[u8]) -> Result<(u64, Frame<'_>), FrameError> {
    let header = read_header(buf).ok_or(FrameError::Truncated {
        needed_bytes: HEADER_SIZE_BYTES,
        available_bytes: buf.len(),
    })?;
    let (kind, body_len_bytes) = check_header(&header)?;
    let frame_len_bytes = HEADER_SIZE_BYTES + body_len_bytes;
    if buf.len() < frame_len_bytes {
        return Err(FrameError::Truncated {
            needed_bytes: frame_len_bytes,
            available_bytes: buf.len(),
        });
    }
    if buf.len() > frame_len_bytes {
        return Err(FrameError::Malformed("bytes after the end of the frame"));
    }
    let body = buf.get(HEADER_SIZE_BYTES..).unwrap_or_default();
    let actual = frame_crc32c(&header, crc_covered(kind, body));
    if actual != header.crc32c {
        return Err(FrameError::BadCrc {
            expected: header.crc32c,
            actual,
        });
    }
    let frame = decode_body(kind, body)?;
    Ok((header.correlation_id, frame))
}

/// Encodes a frame. For a `FetchResponse` this returns the header and the fixed body only,
/// with `body_len` counting the records, so that the server sends the records after it
/// without copying them; for every other kind, the whole frame.
///
/// # Panics
///
/// If [`try_encode`] fails: a field too long for its length field, a cluster id over
/// [`CLUSTER_ID_BYTES_MAX`] bytes or with a NUL byte, `Epoch(u32::MAX)` as last fetched epoch.
/// Use [`try_encode`] to check values from config (such as the cluster id) at startup.
#[must_use]
pub fn encode(correlation_id: u64, frame: &Frame<'_>) -> Vec<u8> {
    match try_encode(correlation_id, frame) {
        Ok(bytes) => bytes,
        Err(error) => panic!("replication frame cannot be encoded: {error}"),
    }
}

/// [`encode`], returning an error instead of panicking when a value cannot be encoded.
pub fn try_encode(correlation_id: u64, frame: &Frame<'_>) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![0; HEADER_SIZE_BYTES];
    let (kind, records_len_bytes) = encode_body(frame, &mut out)?;
    seal(correlation_id, kind, records_len_bytes, out)
}

/// The header and fixed body of a `FetchResponse` whose records, `records_len_bytes` of them,
/// the server sends right after it, for example as several parts read from its log: the same
/// bytes as [`encode`] of a `FetchResponse` with records of that length, without needing the
/// records in one slice.
///
/// # Panics
///
/// If the frame would be larger than [`FRAME_BYTES_MAX`]: the server bounds its reads.
#[must_use]
pub fn encode_fetch_response(
    correlation_id: u64,
    header: &FetchResponseHeader,
    records_len_bytes: usize,
) -> Vec<u8> {
    let result = fetch_response_body(header, records_len_bytes).and_then(|fixed| {
        let mut out = vec![0; HEADER_SIZE_BYTES];
        push_pod(&mut out, &fixed);
        seal(correlation_id, Kind::FetchResponse, records_len_bytes, out)
    });
    match result {
        Ok(bytes) => bytes,
        Err(error) => panic!("replication frame cannot be encoded: {error}"),
    }
}

/// Writes the header in front of the body in `out` (whose first [`HEADER_SIZE_BYTES`] are
/// reserved); `trailing_len_bytes` are the records sent after the frame, counted in
/// `body_len` but not in the CRC.
fn seal(
    correlation_id: u64,
    kind: Kind,
    trailing_len_bytes: usize,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, EncodeError> {
    assert!(out.len() >= HEADER_SIZE_BYTES, "no room for the header");
    let body_len_bytes = out.len() - HEADER_SIZE_BYTES + trailing_len_bytes;
    let body_len = u32::try_from(body_len_bytes)
        .ok()
        .filter(|_| body_len_bytes <= FRAME_BYTES_MAX)
        .ok_or(EncodeError::TooLong {
            field: "frame body",
            len_bytes: body_len_bytes,
            max_bytes: FRAME_BYTES_MAX,
        })?;
    let mut header = FrameHeader {
        magic: MAGIC,
        version: VERSION,
        kind: kind as u16,
        body_len,
        crc32c: 0,
        correlation_id,
    };
    let (head, body) = out.split_at_mut(HEADER_SIZE_BYTES);
    header.crc32c = frame_crc32c(&header, body);
    head.copy_from_slice(bytemuck::bytes_of(&header));
    // Pair with the reader: what is sent passes the reader's header checks.
    debug_assert_eq!(
        frame_length(&out),
        Ok(Some(HEADER_SIZE_BYTES + body_len_bytes))
    );
    Ok(out)
}

/// The frame kinds of version 2 (version 1 had 1..=8).
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Hello = 1,
    HelloOk = 2,
    Fetch = 3,
    FetchResponse = 4,
    DurableReport = 5,
    Topics = 6,
    TopicsResponse = 7,
    Error = 8,
    HighWatermark = 9,
}

impl Kind {
    fn from_u16(kind: u16) -> Option<Kind> {
        match kind {
            1 => Some(Kind::Hello),
            2 => Some(Kind::HelloOk),
            3 => Some(Kind::Fetch),
            4 => Some(Kind::FetchResponse),
            5 => Some(Kind::DurableReport),
            6 => Some(Kind::Topics),
            7 => Some(Kind::TopicsResponse),
            8 => Some(Kind::Error),
            9 => Some(Kind::HighWatermark),
            _ => None,
        }
    }
}

/// The fixed part of each body. Layouts are in `docs/replication.md#internal-protocol`;
/// `bytemuck`'s derive refuses implicit padding, and the size assertions pin the layouts.
mod body {
    use bytemuck::{Pod, Zeroable};

    #[repr(C)]
    #[derive(Clone, Copy, Pod, Zeroable)]
    pub(super) struct Hello {
        pub cluster_id: [u8; 32],
        pub node_id: u32,
        pub _pad: u32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Pod, Zeroable)]
    pub(super) struct HelloOk {
        pub node_id: u32,
        pub leader_epoch: u32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Pod, Zeroable)]
    pub(super) struct Fetch {
        pub partition: u32,
        pub topic_len: u16,
        pub _pad: u16,
        pub fetch_offset: u64,
        pub last_fetched_epoch: u32,
        pub max_bytes: u32,
        pub max_wait_ms: u32,
        pub _pad2: u32,
        pub written_end: u64,
        pub durable_end: u64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Pod, Zeroable)]
    pub(super) struct FetchResponse {
        pub error: u16,
        pub _pad: u16,
        pub leader_epoch: u32,
        pub high_watermark: u64,
        pub log_start: u64,
        pub log_end: u64,
        pub records_len: u32,
        pub _pad2: u32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Pod, Zeroable)]
    pub(super) struct DurableReport {
        pub partition: u32,
        pub topic_len: u16,
        pub _pad: u16,
        pub written_end: u64,
        pub durable_end: u64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Pod, Zeroable)]
    pub(super) struct HighWatermark {
        pub partition: u32,
        pub topic_len: u16,
        pub _pad: u16,
        pub leader_epoch: u32,
        pub _pad2: u32,
        pub high_watermark: u64,
        pub log_start: u64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Pod, Zeroable)]
    pub(super) struct TopicsResponse {
        pub count: u32,
        pub _pad: u32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Pod, Zeroable)]
    pub(super) struct TopicEntry {
        pub partitions: u32,
        pub replication_factor: u16,
        pub name_len: u16,
        pub ack_mode: u8,
        pub semi_sync_degrade: u8,
        pub _pad: u16,
        pub semi_sync_replicas: u32,
        pub min_insync_replicas: u32,
        /// Aligns the next field to 8 bytes, so the struct has no implicit padding.
        pub _pad2: u32,
        pub semi_sync_timeout_ms: u64,
        pub replica_lag_max_ms: u64,
        pub topic_id: [u8; 16],
    }

    #[repr(C)]
    #[derive(Clone, Copy, Pod, Zeroable)]
    pub(super) struct Error {
        pub code: u16,
        pub message_len: u16,
        pub _pad: u32,
    }

    const _: () = assert!(size_of::<Hello>() == 40);
    const _: () = assert!(size_of::<HelloOk>() == 8);
    const _: () = assert!(size_of::<Fetch>() == 48);
    const _: () = assert!(size_of::<FetchResponse>() == 40);
    const _: () = assert!(size_of::<DurableReport>() == 24);
    const _: () = assert!(size_of::<HighWatermark>() == 32);
    const _: () = assert!(size_of::<TopicsResponse>() == 8);
    const _: () = assert!(size_of::<TopicEntry>() == 56);
    const _: () = assert!(size_of::<Error>() == 8);
}

/// The header at the front of `buf`, if `buf` holds one.
fn read_header(buf: &[u8]) -> Option<FrameHeader> {
    buf.get(..HEADER_SIZE_BYTES)
        .map(bytemuck::pod_read_unaligned)
}

/// Checks magic, version, kind and body length; returns the kind and the body length.
fn check_header(header: &FrameHeader) -> Result<(Kind, usize), FrameError> {
    if header.magic != MAGIC {
        return Err(FrameError::BadMagic);
    }
    if header.version != VERSION {
        return Err(FrameError::UnsupportedVersion(header.version));
    }
    let kind = Kind::from_u16(header.kind).ok_or(FrameError::UnknownKind(header.kind))?;
    let too_large = FrameError::TooLarge {
        body_len: header.body_len,
    };
    let body_len_bytes = usize::try_from(header.body_len).map_err(|_| too_large.clone())?;
    if body_len_bytes > FRAME_BYTES_MAX {
        return Err(too_large);
    }
    Ok((kind, body_len_bytes))
}

/// The part of a body the CRC covers: all of it, except the records of a `FetchResponse`.
fn crc_covered(kind: Kind, body: &[u8]) -> &[u8] {
    match kind {
        Kind::FetchResponse => body.get(..size_of::<body::FetchResponse>()).unwrap_or(body),
        Kind::Hello
        | Kind::HelloOk
        | Kind::Fetch
        | Kind::DurableReport
        | Kind::Topics
        | Kind::TopicsResponse
        | Kind::Error
        | Kind::HighWatermark => body,
    }
}

/// CRC32C (as `crates/batch` computes it) of `header` with its `crc32c` field zero, then of
/// `body_covered`.
fn frame_crc32c(header: &FrameHeader, body_covered: &[u8]) -> u32 {
    let zeroed = FrameHeader {
        crc32c: 0,
        ..*header
    };
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    digest.update(bytemuck::bytes_of(&zeroed));
    digest.update(body_covered);
    u32::try_from(digest.finalize()).expect("a CRC32C fits in 32 bits")
}

/// Reads a body front to back; every shortfall is [`FrameError::Malformed`].
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len_bytes: usize, what: &'static str) -> Result<&'a [u8], FrameError> {
        let (head, rest) = self
            .bytes
            .split_at_checked(len_bytes)
            .ok_or(FrameError::Malformed(what))?;
        self.bytes = rest;
        Ok(head)
    }

    fn pod<T: Pod>(&mut self, what: &'static str) -> Result<T, FrameError> {
        self.take(size_of::<T>(), what)
            .map(bytemuck::pod_read_unaligned)
    }

    fn utf8(&mut self, len_bytes: usize, what: &'static str) -> Result<&'a str, FrameError> {
        let bytes = self.take(len_bytes, what)?;
        std::str::from_utf8(bytes).map_err(|_| FrameError::Malformed("a string is not UTF-8"))
    }

    fn remaining_bytes(&self) -> usize {
        self.bytes.len()
    }

    fn finish(self) -> Result<(), FrameError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Malformed("bytes after the end of the body"))
        }
    }
}

fn check_padding(padding_is_zero: bool) -> Result<(), FrameError> {
    if padding_is_zero {
        Ok(())
    } else {
        Err(FrameError::Malformed("a padding field is not zero"))
    }
}

fn decode_body(kind: Kind, body: &[u8]) -> Result<Frame<'_>, FrameError> {
    let mut reader = Reader { bytes: body };
    let frame = match kind {
        Kind::Hello => decode_hello(&mut reader)?,
        Kind::HelloOk => decode_hello_ok(&mut reader)?,
        Kind::Fetch => Frame::Fetch(decode_fetch(&mut reader)?),
        Kind::FetchResponse => decode_fetch_response(&mut reader)?,
        Kind::DurableReport => Frame::DurableReport(decode_durable_report(&mut reader)?),
        Kind::Topics => Frame::Topics,
        Kind::TopicsResponse => Frame::TopicsResponse(decode_topics_response(&mut reader)?),
        Kind::Error => decode_error(&mut reader)?,
        Kind::HighWatermark => Frame::HighWatermark(decode_high_watermark(&mut reader)?),
    };
    reader.finish()?;
    Ok(frame)
}

fn decode_hello<'a>(reader: &mut Reader<'a>) -> Result<Frame<'a>, FrameError> {
    // Taken as bytes first: the cluster id borrows from them.
    let raw = reader.take(size_of::<body::Hello>(), "Hello body shorter than 40 bytes")?;
    let fixed: body::Hello = bytemuck::pod_read_unaligned(raw);
    check_padding(fixed._pad == 0)?;
    let padded = raw.get(..CLUSTER_ID_BYTES_MAX).unwrap_or_default();
    let cluster_id = decode_cluster_id(padded)?;
    Ok(Frame::Hello {
        cluster_id,
        node_id: NodeId(fixed.node_id),
    })
}

/// The cluster id is UTF-8 followed by zero bytes up to [`CLUSTER_ID_BYTES_MAX`].
fn decode_cluster_id(padded: &[u8]) -> Result<&str, FrameError> {
    let len_bytes = padded
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(padded.len());
    let (id, padding) = padded.split_at(len_bytes);
    if padding.iter().any(|&byte| byte != 0) {
        return Err(FrameError::Malformed(
            "cluster id has bytes after its zero padding",
        ));
    }
    std::str::from_utf8(id).map_err(|_| FrameError::Malformed("cluster id is not UTF-8"))
}

fn decode_hello_ok<'a>(reader: &mut Reader<'a>) -> Result<Frame<'a>, FrameError> {
    let fixed: body::HelloOk = reader.pod("HelloOk body shorter than 8 bytes")?;
    Ok(Frame::HelloOk {
        node_id: NodeId(fixed.node_id),
        leader_epoch: Epoch(fixed.leader_epoch),
    })
}

fn decode_fetch<'a>(reader: &mut Reader<'a>) -> Result<Fetch<'a>, FrameError> {
    let fixed: body::Fetch = reader.pod("Fetch body shorter than 48 bytes")?;
    check_padding(fixed._pad == 0 && fixed._pad2 == 0)?;
    let topic = reader.utf8(usize::from(fixed.topic_len), "Fetch topic name truncated")?;
    let last_fetched_epoch =
        (fixed.last_fetched_epoch != u32::MAX).then_some(Epoch(fixed.last_fetched_epoch));
    Ok(Fetch {
        topic,
        partition: fixed.partition,
        fetch_offset: Offset(fixed.fetch_offset),
        last_fetched_epoch,
        max_bytes: fixed.max_bytes,
        max_wait_ms: fixed.max_wait_ms,
        written_end: Offset(fixed.written_end),
        durable_end: Offset(fixed.durable_end),
    })
}

fn decode_fetch_response<'a>(reader: &mut Reader<'a>) -> Result<Frame<'a>, FrameError> {
    let fixed: body::FetchResponse = reader.pod("FetchResponse body shorter than 40 bytes")?;
    check_padding(fixed._pad == 0 && fixed._pad2 == 0)?;
    let error = match fixed.error {
        0 => None,
        code => Some(ErrorCode::from_u16(code).ok_or(FrameError::Malformed("unknown error code"))?),
    };
    let records_len_bytes = usize::try_from(fixed.records_len)
        .map_err(|_| FrameError::Malformed("records_len does not fit in memory"))?;
    if records_len_bytes != reader.remaining_bytes() {
        return Err(FrameError::Malformed("records_len disagrees with body_len"));
    }
    let records = reader.take(records_len_bytes, "FetchResponse records truncated")?;
    let header = FetchResponseHeader {
        error,
        leader_epoch: Epoch(fixed.leader_epoch),
        high_watermark: Offset(fixed.high_watermark),
        log_start: Offset(fixed.log_start),
        log_end: Offset(fixed.log_end),
    };
    Ok(Frame::FetchResponse(header, records))
}

fn decode_durable_report<'a>(reader: &mut Reader<'a>) -> Result<DurableReport<'a>, FrameError> {
    let fixed: body::DurableReport = reader.pod("DurableReport body shorter than 24 bytes")?;
    check_padding(fixed._pad == 0)?;
    let topic = reader.utf8(
        usize::from(fixed.topic_len),
        "DurableReport topic name truncated",
    )?;
    Ok(DurableReport {
        topic,
        partition: fixed.partition,
        written_end: Offset(fixed.written_end),
        durable_end: Offset(fixed.durable_end),
    })
}

fn decode_high_watermark<'a>(reader: &mut Reader<'a>) -> Result<HighWatermark<'a>, FrameError> {
    let fixed: body::HighWatermark = reader.pod("HighWatermark body shorter than 32 bytes")?;
    check_padding(fixed._pad == 0 && fixed._pad2 == 0)?;
    let topic = reader.utf8(
        usize::from(fixed.topic_len),
        "HighWatermark topic name truncated",
    )?;
    Ok(HighWatermark {
        topic,
        partition: fixed.partition,
        leader_epoch: Epoch(fixed.leader_epoch),
        high_watermark: Offset(fixed.high_watermark),
        log_start: Offset(fixed.log_start),
    })
}

fn decode_topics_response(reader: &mut Reader<'_>) -> Result<Vec<TopicEntry>, FrameError> {
    let fixed: body::TopicsResponse = reader.pod("TopicsResponse body shorter than 8 bytes")?;
    check_padding(fixed._pad == 0)?;
    let count = usize::try_from(fixed.count)
        .map_err(|_| FrameError::Malformed("topic count does not fit in memory"))?;
    // A hostile count must not reserve more than the body can hold.
    let count_max = reader.remaining_bytes() / size_of::<body::TopicEntry>();
    if count > count_max {
        return Err(FrameError::Malformed("topic count exceeds the body"));
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        entries.push(decode_topic_entry(reader)?);
    }
    Ok(entries)
}

fn decode_topic_entry(reader: &mut Reader<'_>) -> Result<TopicEntry, FrameError> {
    let fixed: body::TopicEntry = reader.pod("TopicEntry truncated")?;
    check_padding(fixed._pad == 0 && fixed._pad2 == 0)?;
    let name = reader.utf8(usize::from(fixed.name_len), "TopicEntry name truncated")?;
    let ack_mode = ack_mode_from_wire(fixed.ack_mode)
        .ok_or(FrameError::Malformed("unknown ack_mode in a TopicEntry"))?;
    let semi_sync_degrade = match fixed.semi_sync_degrade {
        0 => false,
        1 => true,
        _ => {
            return Err(FrameError::Malformed(
                "semi_sync_degrade is neither 0 nor 1",
            ))
        }
    };
    let to_usize = |value: u32| {
        usize::try_from(value).map_err(|_| FrameError::Malformed("a count does not fit in memory"))
    };
    let policy = Policy {
        ack_mode,
        semi_sync_replicas: to_usize(fixed.semi_sync_replicas)?,
        semi_sync_timeout_ms: fixed.semi_sync_timeout_ms,
        semi_sync_degrade,
        min_insync_replicas: to_usize(fixed.min_insync_replicas)?,
        replica_lag_max_ms: fixed.replica_lag_max_ms,
    };
    Ok(TopicEntry {
        name: name.to_owned(),
        partitions: fixed.partitions,
        replication_factor: fixed.replication_factor,
        topic_id: fixed.topic_id,
        policy,
    })
}

fn decode_error<'a>(reader: &mut Reader<'a>) -> Result<Frame<'a>, FrameError> {
    let fixed: body::Error = reader.pod("Error body shorter than 8 bytes")?;
    check_padding(fixed._pad == 0)?;
    let code =
        ErrorCode::from_u16(fixed.code).ok_or(FrameError::Malformed("unknown error code"))?;
    let message = reader.utf8(usize::from(fixed.message_len), "Error message truncated")?;
    Ok(Frame::Error { code, message })
}

/// The byte an [`AckMode`] has in a `TopicEntry`.
fn ack_mode_to_wire(mode: AckMode) -> u8 {
    match mode {
        AckMode::Async => 0,
        AckMode::SemiSync => 1,
        AckMode::Quorum => 2,
        AckMode::Sync => 3,
    }
}

fn ack_mode_from_wire(byte: u8) -> Option<AckMode> {
    AckMode::ALL
        .into_iter()
        .find(|&mode| ack_mode_to_wire(mode) == byte)
}

/// Appends the body of `frame` to `out`; returns the kind and the length of the records that
/// follow the frame without being in `out` (a `FetchResponse`'s; 0 for other kinds).
fn encode_body(frame: &Frame<'_>, out: &mut Vec<u8>) -> Result<(Kind, usize), EncodeError> {
    let kind = match frame {
        Frame::Hello {
            cluster_id,
            node_id,
        } => {
            push_pod(out, &encode_hello(cluster_id, *node_id)?);
            Kind::Hello
        }
        Frame::HelloOk {
            node_id,
            leader_epoch,
        } => {
            let fixed = body::HelloOk {
                node_id: node_id.0,
                leader_epoch: leader_epoch.0,
            };
            push_pod(out, &fixed);
            Kind::HelloOk
        }
        Frame::Fetch(fetch) => {
            encode_fetch(fetch, out)?;
            Kind::Fetch
        }
        Frame::FetchResponse(header, records) => {
            push_pod(out, &fetch_response_body(header, records.len())?);
            return Ok((Kind::FetchResponse, records.len()));
        }
        Frame::DurableReport(report) => {
            encode_durable_report(report, out)?;
            Kind::DurableReport
        }
        Frame::Topics => Kind::Topics,
        Frame::TopicsResponse(entries) => {
            encode_topics_response(entries, out)?;
            Kind::TopicsResponse
        }
        Frame::Error { code, message } => {
            let fixed = body::Error {
                code: code.as_u16(),
                message_len: length_u16("error message", message.len())?,
                _pad: 0,
            };
            push_pod(out, &fixed);
            out.extend_from_slice(message.as_bytes());
            Kind::Error
        }
        Frame::HighWatermark(notice) => {
            let fixed = body::HighWatermark {
                partition: notice.partition,
                topic_len: length_u16("topic", notice.topic.len())?,
                _pad: 0,
                leader_epoch: notice.leader_epoch.0,
                _pad2: 0,
                high_watermark: notice.high_watermark.0,
                log_start: notice.log_start.0,
            };
            push_pod(out, &fixed);
            out.extend_from_slice(notice.topic.as_bytes());
            Kind::HighWatermark
        }
    };
    Ok((kind, 0))
}

fn push_pod<T: Pod>(out: &mut Vec<u8>, value: &T) {
    out.extend_from_slice(bytemuck::bytes_of(value));
}

fn length_u16(field: &'static str, len_bytes: usize) -> Result<u16, EncodeError> {
    u16::try_from(len_bytes).map_err(|_| EncodeError::TooLong {
        field,
        len_bytes,
        max_bytes: usize::from(u16::MAX),
    })
}

fn count_u32(field: &'static str, count: usize) -> Result<u32, EncodeError> {
    u32::try_from(count).map_err(|_| EncodeError::Unrepresentable {
        field,
        reason: "larger than u32::MAX",
    })
}

fn encode_hello(cluster_id: &str, node_id: NodeId) -> Result<body::Hello, EncodeError> {
    let id = cluster_id.as_bytes();
    if id.len() > CLUSTER_ID_BYTES_MAX {
        return Err(EncodeError::TooLong {
            field: "cluster_id",
            len_bytes: id.len(),
            max_bytes: CLUSTER_ID_BYTES_MAX,
        });
    }
    if id.contains(&0) {
        return Err(EncodeError::Unrepresentable {
            field: "cluster_id",
            reason: "contains a NUL byte, which is the padding",
        });
    }
    let mut padded = [0; CLUSTER_ID_BYTES_MAX];
    padded[..id.len()].copy_from_slice(id);
    Ok(body::Hello {
        cluster_id: padded,
        node_id: node_id.0,
        _pad: 0,
    })
}

fn encode_fetch(fetch: &Fetch<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let last_fetched_epoch = match fetch.last_fetched_epoch {
        None => u32::MAX,
        Some(Epoch(u32::MAX)) => {
            return Err(EncodeError::Unrepresentable {
                field: "last_fetched_epoch",
                reason: "u32::MAX means none on the wire",
            })
        }
        Some(Epoch(epoch)) => epoch,
    };
    let fixed = body::Fetch {
        partition: fetch.partition,
        topic_len: length_u16("topic", fetch.topic.len())?,
        _pad: 0,
        fetch_offset: fetch.fetch_offset.0,
        last_fetched_epoch,
        max_bytes: fetch.max_bytes,
        max_wait_ms: fetch.max_wait_ms,
        _pad2: 0,
        written_end: fetch.written_end.0,
        durable_end: fetch.durable_end.0,
    };
    push_pod(out, &fixed);
    out.extend_from_slice(fetch.topic.as_bytes());
    Ok(())
}

fn fetch_response_body(
    header: &FetchResponseHeader,
    records_len_bytes: usize,
) -> Result<body::FetchResponse, EncodeError> {
    let records_len = u32::try_from(records_len_bytes).map_err(|_| EncodeError::TooLong {
        field: "records",
        len_bytes: records_len_bytes,
        max_bytes: FRAME_BYTES_MAX,
    })?;
    Ok(body::FetchResponse {
        error: header.error.map_or(0, ErrorCode::as_u16),
        _pad: 0,
        leader_epoch: header.leader_epoch.0,
        high_watermark: header.high_watermark.0,
        log_start: header.log_start.0,
        log_end: header.log_end.0,
        records_len,
        _pad2: 0,
    })
}

fn encode_durable_report(report: &DurableReport<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let fixed = body::DurableReport {
        partition: report.partition,
        topic_len: length_u16("topic", report.topic.len())?,
        _pad: 0,
        written_end: report.written_end.0,
        durable_end: report.durable_end.0,
    };
    push_pod(out, &fixed);
    out.extend_from_slice(report.topic.as_bytes());
    Ok(())
}

fn encode_topics_response(entries: &[TopicEntry], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let fixed = body::TopicsResponse {
        count: count_u32("topic count", entries.len())?,
        _pad: 0,
    };
    push_pod(out, &fixed);
    for entry in entries {
        push_pod(out, &encode_topic_entry(entry)?);
        out.extend_from_slice(entry.name.as_bytes());
    }
    Ok(())
}

fn encode_topic_entry(entry: &TopicEntry) -> Result<body::TopicEntry, EncodeError> {
    let policy = &entry.policy;
    Ok(body::TopicEntry {
        partitions: entry.partitions,
        replication_factor: entry.replication_factor,
        name_len: length_u16("topic name", entry.name.len())?,
        ack_mode: ack_mode_to_wire(policy.ack_mode),
        semi_sync_degrade: u8::from(policy.semi_sync_degrade),
        _pad: 0,
        semi_sync_replicas: count_u32("semi_sync_replicas", policy.semi_sync_replicas)?,
        min_insync_replicas: count_u32("min_insync_replicas", policy.min_insync_replicas)?,
        _pad2: 0,
        semi_sync_timeout_ms: policy.semi_sync_timeout_ms,
        replica_lag_max_ms: policy.replica_lag_max_ms,
        topic_id: entry.topic_id,
    })
}

#[cfg(test)]
mod tests;
