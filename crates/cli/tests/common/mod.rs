//! Helpers shared by the `ringlog` binary's tests: real partition logs written through
//! `ringlog_wal::Wal`, running the binary, and reading a directory's bytes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ringlog_types::units::KIB;
use ringlog_types::{Epoch, Offset};
use ringlog_wal::recovery::{scan_segment, BatchLocation, ScanInput, ScanVerdict};
use ringlog_wal::testing::batch_for;
use ringlog_wal::{Error, PartitionHandle, Wal, WalConfig, WritePath};

/// Block size of the test logs (forced, so positions do not depend on the file system).
pub const BLOCK_SIZE_BYTES: u64 = 4 * KIB;
/// Segment size of the test logs: small, so that a few dozen batches fill several segments.
pub const SEGMENT_SIZE_BYTES: u64 = 64 * KIB;
/// Largest commit of the test logs; passed to the binary as `--commit-bytes-max`.
pub const COMMIT_BYTES_MAX: u64 = 16 * KIB;

/// One batch the test appended: `[base_offset, base_offset + record_count)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub record_count: u64,
}

/// The configuration of every test log: direct write path, small segments and commits.
pub fn small_config(data_dir: &Path) -> WalConfig {
    let mut config = WalConfig::new(data_dir, WritePath::Direct);
    config.segment_size_bytes = SEGMENT_SIZE_BYTES;
    config.tail_chunk_bytes = COMMIT_BYTES_MAX;
    config.tail_chunks_max = 2;
    config.batch_size_bytes_max = 8 * KIB;
    config.block_size_bytes = Some(BLOCK_SIZE_BYTES);
    config.spare_segments_count = 1;
    config
}

/// Writes partition `name` under `data_dir`: `commits` commits of two batches of three
/// records each, then one last commit of a single batch of eight records. Closes the log
/// and returns every batch appended, in offset order.
pub fn write_partition(data_dir: &Path, name: &str, commits: usize) -> Vec<Appended> {
    let mut wal = Wal::new(small_config(data_dir)).expect("open the log");
    let partition = wal.open_partition(name).expect("open the partition");
    let mut appended = Vec::new();
    for _ in 0..commits {
        for _ in 0..2 {
            appended.push(append_next(&mut wal, partition, 3));
        }
        wal.sync(partition).expect("sync");
    }
    appended.push(append_next(&mut wal, partition, 8));
    wal.sync(partition).expect("sync");
    wal.close().expect("close");
    appended
}

fn append_next(wal: &mut Wal, partition: PartitionHandle, records: u64) -> Appended {
    let base = wal.ends(partition).expect("ends").log_end.0;
    let batch = batch_for(base, records);
    // A roll waits for its spare segment, which the housekeeper fills in the background:
    // poll until it is ready (bounded), without sleeping.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match wal.append(partition, &batch, Epoch(1)) {
            Ok(info) => {
                assert_eq!(info.base_offset, Offset(base));
                return Appended {
                    base_offset: base,
                    record_count: records,
                };
            }
            Err(Error::Backpressure { reason }) => {
                assert!(Instant::now() < deadline, "backpressure for 20 s: {reason}");
                if wal.is_committing() {
                    wal.wait().expect("wait");
                } else {
                    wal.poll().expect("poll");
                    std::thread::yield_now();
                }
            }
            Err(error) => panic!("append at {base}: {error}"),
        }
    }
}

/// Segment files of a partition directory, in base offset order.
pub fn segment_paths(partition_dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(partition_dir)
        .expect("list the partition")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .and_then(ringlog_wal::parse_segment_file_name)
                .is_some()
        })
        .collect();
    paths.sort();
    paths
}

/// The batches of one segment, found by the recovery scanner (independently of the binary).
pub fn batches_of(path: &Path, is_last: bool) -> Vec<BatchLocation> {
    let image = fs::read(path).expect("read the segment");
    let name = path.file_name().unwrap().to_str().unwrap();
    let input = ScanInput {
        image: &image,
        base_offset: ringlog_wal::parse_segment_file_name(name).unwrap(),
        block_size_bytes: usize::try_from(BLOCK_SIZE_BYTES).unwrap(),
        commit_bytes_max: usize::try_from(COMMIT_BYTES_MAX).unwrap(),
        is_last,
    };
    match scan_segment(&input) {
        ScanVerdict::Intact { batches, .. } | ScanVerdict::TornTail { batches, .. } => batches,
        ScanVerdict::Corrupt { detail, .. } => panic!("{}: corrupt: {detail}", path.display()),
    }
}

/// Every file under `dir` (recursively) with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), fs::read(&path).expect("read"));
            }
        }
    }
    files
}

/// Runs the `ringlog` binary with `args`.
pub fn ringlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringlog"))
        .args(args)
        .output()
        .expect("run ringlog")
}

/// Stdout and stderr of a run, for assertions and failure messages.
pub fn text_of(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `--commit-bytes-max` of the test logs, as an argument.
pub fn commit_bytes_max_arg() -> String {
    COMMIT_BYTES_MAX.to_string()
}
