//! Test support shared by this crate's tests, its crash-test child process and the
//! benchmark: deterministic batches whose every record can be recomputed from its offset.
//!
//! Invariant: `value_for(offset)` and `key_for(offset)` depend on the offset alone, so any
//! process can check that the bytes stored at an offset are the ones appended there.

use std::path::Path;

use ringlog_batch::BatchBuilder;
use ringlog_types::units::KIB;

use crate::{WalConfig, WritePath};

/// The configuration of the crash test's child process and of the parent that checks its
/// log: small segments (256 KiB) that roll often, and a retention of three segments, so that
/// rolls reuse old segment files and recovery meets stale bytes under SIGKILL too.
#[must_use]
pub fn crash_config(dir: &Path, write_path: WritePath) -> WalConfig {
    let mut config = WalConfig::new(dir, write_path);
    config.segment_size_bytes = 256 * KIB;
    config.tail_chunk_bytes = 64 * KIB;
    config.tail_chunks_max = 2;
    config.batch_size_bytes_max = 16 * KIB;
    config.block_size_bytes = Some(4 * KIB);
    config.retention.bytes_max = Some(3 * 256 * KIB);
    config
}

/// The key of the record at `offset`.
#[must_use]
pub fn key_for(offset: u64) -> Vec<u8> {
    format!("k{offset}").into_bytes()
}

/// The value of the record at `offset`: its length (16..716 bytes) and bytes depend on the
/// offset only.
#[must_use]
pub fn value_for(offset: u64) -> Vec<u8> {
    let length = 16 + usize::try_from(offset.wrapping_mul(7919) % 700).unwrap_or(0);
    let mut value = format!("v{offset}:").into_bytes();
    let mut state = offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while value.len() < length {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        value.push(b'a' + u8::try_from(state % 26).unwrap_or(0));
    }
    value
}

/// A batch of `records` records for offsets `[base, base + records)`.
#[must_use]
pub fn batch_for(base: u64, records: u64) -> Vec<u8> {
    let timestamp = i64::try_from(base).unwrap_or(i64::MAX);
    let mut builder = BatchBuilder::new(timestamp);
    for offset in base..base + records {
        builder.push(
            timestamp,
            Some(&key_for(offset)),
            Some(&value_for(offset)),
            &[],
        );
    }
    builder.build()
}

/// A small xorshift generator for test workloads (seeded explicitly; no global randomness).
#[derive(Clone, Debug)]
pub struct TestRng(u64);

impl TestRng {
    /// A generator from `seed` (any value; zero is replaced).
    #[must_use]
    pub fn new(seed: u64) -> TestRng {
        TestRng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `[low, high]`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "range: low={low} > high={high}");
        low + self.next_u64() % (high - low + 1)
    }
}
