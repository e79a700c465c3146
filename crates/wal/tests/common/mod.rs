//! Helpers shared by the partition log's integration tests: deterministic batches whose
//! every record can be recomputed from its offset, small configurations that make segments
//! roll often, and a reader that checks a whole log.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use ringlog_types::units::KIB;
use ringlog_types::{Epoch, Offset};
use ringlog_wal::{AppendInfo, Error, PartitionHandle, Wal, WalConfig, WritePath};

/// Both write paths: every behaviour test runs on each.
pub const WRITE_PATHS: [WritePath; 2] = [WritePath::Direct, WritePath::Mmap];

/// A configuration with small segments and tail chunks, so tests roll segments and read
/// from disk after a few hundred KiB.
pub fn small_config(dir: &Path, write_path: WritePath) -> WalConfig {
    let mut config = WalConfig::new(dir, write_path);
    config.segment_size_bytes = 512 * KIB;
    config.tail_chunk_bytes = 128 * KIB;
    config.tail_chunks_max = 2;
    config.batch_size_bytes_max = 32 * KIB;
    config.spare_segments_count = 1;
    config
}

pub use ringlog_wal::testing::{batch_for, key_for, value_for};

/// Appends a batch for the current log end and returns its next offset.
pub fn append_next(wal: &mut Wal, partition: PartitionHandle, records: u64) -> Offset {
    let base = wal.ends(partition).expect("open").log_end.0;
    let info = append_retrying(wal, partition, &batch_for(base, records)).expect("append");
    assert_eq!(info.base_offset, Offset(base));
    info.next_offset
}

/// Appends, retrying while the log answers `Backpressure` (a spare segment still being
/// filled, or every tail chunk in use), for at most 20 s.
pub fn append_retrying(
    wal: &mut Wal,
    partition: PartitionHandle,
    batch: &[u8],
) -> Result<AppendInfo, Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match wal.append(partition, batch, Epoch(1)) {
            Err(Error::Backpressure { reason }) => {
                assert!(Instant::now() < deadline, "backpressure for 20 s: {reason}");
                wal.poll()?;
                if !wal.is_committing() {
                    std::thread::park_timeout(Duration::from_millis(1));
                } else {
                    wal.wait()?;
                }
            }
            other => return other,
        }
    }
}

/// Splits log bytes into batches, validating each; returns (base offset, record count).
pub fn split_batches(bytes: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let mut batches = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let size = ringlog_batch::peek_size_bytes(&bytes[position..])
            .expect("valid size")
            .expect("whole header");
        let batch = &bytes[position..position + size];
        let header = ringlog_batch::validate(batch).expect("every returned batch validates");
        let base = u64::try_from(header.base_offset).expect("non-negative");
        batches.push((base, header.record_count(), batch.to_vec()));
        position += size;
    }
    batches
}

/// Reads the whole log below the durable end and checks that offsets are contiguous from
/// `log_start` and that every record holds the bytes `key_for`/`value_for` give its offset.
/// Returns the offset after the last record.
pub fn verify_log(wal: &mut Wal, partition: PartitionHandle) -> Offset {
    let ends = wal.ends(partition).expect("open");
    let mut offset = ends.log_start;
    while offset < ends.durable_end {
        let read = wal.read(partition, offset, 256 * 1024, None).expect("read");
        assert!(
            read.size_bytes > 0,
            "no progress reading at {offset} below {}",
            ends.durable_end
        );
        for (base, count, batch) in split_batches(&read.to_vec()) {
            assert_eq!(base, offset.0, "offsets are contiguous");
            verify_records(&batch, base, count);
            offset = Offset(base + count);
        }
    }
    assert_eq!(
        offset, ends.durable_end,
        "read everything up to the durable end"
    );
    offset
}

/// Checks every record of a batch against its offset.
pub fn verify_records(batch: &[u8], base: u64, count: u64) {
    let mut seen = 0;
    for record in ringlog_batch::records(batch).expect("uncompressed") {
        let record = record.expect("record parses");
        let offset = base + u64::try_from(record.offset_delta).expect("non-negative");
        assert_eq!(
            record.key,
            Some(key_for(offset).as_slice()),
            "key at {offset}"
        );
        assert_eq!(
            record.value,
            Some(value_for(offset).as_slice()),
            "value at {offset}"
        );
        seen += 1;
    }
    assert_eq!(seen, count, "record count of batch at {base}");
}
