//! ringlog's io_uring layer: one ring per shard thread, aligned and registered buffers, and
//! operations that own their buffers until the kernel is done with them.
//!
//! What this crate owns (DESIGN.md sections 2 and 3, STYLE.md sections 7 and 8):
//!
//! - [`Ring`]: an io_uring set up with `SINGLE_ISSUER | DEFER_TASKRUN` (falling back to a
//!   plain ring on kernels that refuse it), an in-flight table bounded by
//!   `ops_in_flight_max`, write + linked `FSYNC(DATASYNC)` chains, rename + directory fsync
//!   chains, transparent resubmission after `EINTR`/`EAGAIN`, an opcode probe for startup, and
//!   buffer registration (`READ_FIXED`/`WRITE_FIXED`) where the memlock limit allows.
//! - Buffers: [`AlignedBuf`] (owned, aligned, zeroed), [`AppendBuf`] + [`AppendWriter`] (the
//!   partition tail: one writer appends, in-flight writes and fetches read what is published),
//!   and [`BufPool`] (a fixed set of aligned buffers allocated at startup).
//! - The network loop's operations ([`net`]): multishot accept, receive, send, and gather
//!   send of a [`GatherList`] (header bytes, tail-buffer ranges, `Bytes`), all owning their
//!   buffers like the storage ops; plus cross-ring wake-ups ([`Ring::msg_ring`], which the
//!   target reaps as a `foreign` completion), timers ([`Ring::timeout`]) and cancellation
//!   ([`Ring::cancel`]). Their opcodes are optional ([`OptionalOpcode`], [`Ring::supports`]):
//!   the storage path starts on a kernel that lacks them.
//! - [`FaultPlan`]: fault injection for tests of the durable path (failing writes and fsyncs
//!   without device-mapper). It never applies to socket ops.
//! - [`fs`]: startup probes, O_DIRECT alignment (`statx`) and the memlock limit.
//!
//! What it does not own: what to write where and when (the WAL's sans-I/O core decides),
//! retry policy for failed writes and fsyncs (there is none: the WAL fences the partition),
//! connection state, framing and the cross-shard queues that a wake-up announces (the server
//! crate).
//!
//! This is one of the two crates allowed `unsafe`; every block names its invariant. The
//! central one: a buffer moves into its operation and comes back only in its [`Completion`],
//! and a [`Ring`] is never dropped while the kernel may still touch a buffer.
//!
//! ```no_run
//! use std::os::fd::OwnedFd;
//! use std::sync::Arc;
//! use ringlog_uring::{AppendWriter, Completion, OpBuf, Ring, RingConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut ring = Ring::new(RingConfig { entries: 256, ops_in_flight_max: 256 })?;
//! ring.probe()?;
//! let file: OwnedFd = std::fs::File::create("/var/lib/ringlog/segment")?.into();
//! let file = Arc::new(file);
//!
//! let mut tail = AppendWriter::new(1 << 20, 4096);
//! tail.append(b"a batch").ok_or("tail buffer full")?;
//! tail.pad_to_alignment();
//! let range = 0..tail.published_len();
//! // Write the commit and fdatasync it, linked so the fsync covers the write.
//! ring.write(&file, OpBuf::Shared(tail.shared(), range), 0, 1, Some(2))?;
//!
//! let mut completions: Vec<Completion> = Vec::new();
//! while completions.len() < 2 {
//!     ring.submit_and_wait(1)?;
//!     ring.reap(&mut completions);
//! }
//! for completion in &completions {
//!     println!("tag {} -> {:?}", completion.tag, completion.result);
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod buffer;
pub mod error;
pub mod fault;
pub mod fs;
pub mod gather;
pub mod net;
mod op;
pub mod ring;

pub use buffer::{AlignedBuf, AppendBuf, AppendWriter, BufPool, ALIGN_MIN_BYTES};
pub use error::{IoError, ProbeError};
pub use fault::FaultPlan;
pub use fs::{dio_alignment, memlock_limit_bytes, DioAlign};
pub use gather::{GatherList, GATHER_CHUNK_COUNT_MAX, SEND_BYTES_MAX};
pub use ring::{
    Completion, OpBuf, OptionalOpcode, Ring, RingConfig, SetupMode, FOREIGN_TAG_BIT,
    FOREIGN_TAG_MAX, RESUBMIT_COUNT_MAX,
};
