//! Failures in the durable path poison the partition log: a failed write or fdatasync
//! (injected in the I/O layer, since this kernel has no device-mapper) and a full disk (a
//! small loop-mounted ext4 that the test creates and removes). Nothing is retried, every
//! later call fails with the first cause, and after reopening, everything acknowledged
//! before the failure is there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // In tests a panic is the failure report.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{small_config, verify_log, WRITE_PATHS};
use ringlog_types::units::{KIB, MIB};
use ringlog_types::{Epoch, Offset};
use ringlog_uring::FaultPlan;
use ringlog_wal::{Error, Wal, WritePath};

/// Appends and syncs one batch at a time until a sync fails; returns the last durable end
/// that was reported before the failure and the failure.
fn append_until_failure(
    wal: &mut Wal,
    partition: ringlog_wal::PartitionHandle,
    records: u64,
) -> (Offset, Error) {
    let mut acknowledged = Offset(0);
    for _ in 0..5000 {
        let base = wal.ends(partition).unwrap().log_end.0;
        let batch = common::batch_for(base, records);
        if let Err(error) = common::append_retrying(wal, partition, &batch) {
            return (acknowledged, error);
        }
        match wal.sync(partition) {
            Ok(end) => acknowledged = end,
            Err(error) => return (acknowledged, error),
        }
    }
    panic!("no failure after 5000 appends");
}

fn assert_poisoned_by(wal: &mut Wal, partition: ringlog_wal::PartitionHandle, first: &Error) {
    let later = wal.append(partition, &common::batch_for(0, 1), Epoch(1));
    match later {
        Err(Error::Poisoned { cause }) => assert_eq!(*cause, *first, "the first cause is kept"),
        other => panic!("expected Poisoned, got {other:?}"),
    }
    let before = wal.ends(partition).unwrap();
    for _ in 0..10 {
        wal.poll().unwrap();
    }
    assert!(!wal.is_committing(), "nothing is retried after a failure");
    assert_eq!(wal.ends(partition).unwrap(), before);
}

fn unwrap_cause(error: Error) -> Error {
    match error {
        Error::Poisoned { cause } => *cause,
        other => other,
    }
}

/// The 4th write fails with EIO: the first three commits stay acknowledged and readable
/// after reopening; the partition refuses everything until then.
#[test]
fn failed_write_poisons_and_loses_nothing() {
    // Only the direct path issues write operations; the mmap path copies into the mapping
    // and its durable-path failure is the fdatasync (next test).
    let write_path = WritePath::Direct;
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), write_path);
    config.fault_plan = Some(FaultPlan {
        fail_write_from: Some(4),
        fail_fsync_from: None,
        errno: libc::EIO,
    });
    let mut wal = Wal::new(config.clone()).unwrap();
    let partition = wal.open_partition("topic-0").unwrap();
    let (acknowledged, error) = append_until_failure(&mut wal, partition, 3);
    let cause = unwrap_cause(error);
    assert!(matches!(cause, Error::Io { .. }), "{cause:?}");
    assert_eq!(acknowledged, Offset(9), "three commits of three records");
    assert_poisoned_by(&mut wal, partition, &cause);
    drop(wal);
    config.fault_plan = None;
    let mut wal = Wal::new(config).unwrap();
    let partition = wal.open_partition("topic-0").unwrap();
    assert!(verify_log(&mut wal, partition) >= acknowledged);
}

/// The 3rd fdatasync fails, on both write paths: the same guarantees.
#[test]
fn failed_fdatasync_poisons_and_loses_nothing() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config(dir.path(), write_path);
        config.fault_plan = Some(FaultPlan {
            fail_write_from: None,
            fail_fsync_from: Some(3),
            errno: libc::EIO,
        });
        let mut wal = Wal::new(config.clone()).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        let (acknowledged, error) = append_until_failure(&mut wal, partition, 2);
        let cause = unwrap_cause(error);
        assert!(
            matches!(cause, Error::Io { .. }),
            "{write_path:?}: {cause:?}"
        );
        assert_eq!(acknowledged, Offset(4), "two commits of two records");
        assert_poisoned_by(&mut wal, partition, &cause);
        drop(wal);
        config.fault_plan = None;
        let mut wal = Wal::new(config).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        assert!(verify_log(&mut wal, partition) >= acknowledged);
    }
}

/// A loop-mounted ext4 file system, removed on drop.
struct LoopFs {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoopFs {
    fn new(size_bytes: u64) -> LoopFs {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        let mount_point = dir.path().join("mnt");
        std::fs::create_dir(&mount_point).unwrap();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(size_bytes)
            .unwrap();
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        run(
            "mount",
            &[
                "-o",
                "loop",
                image.to_str().unwrap(),
                mount_point.to_str().unwrap(),
            ],
        );
        LoopFs {
            mount_point,
            _dir: dir,
        }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount_point).status();
    }
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("{program} is needed for this test (apt-get install e2fsprogs mount): {error}")
        });
    assert!(
        output.status.success(),
        "{program} {args:?} failed (this test needs root for loop mounts): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Filling a small file system: the log is poisoned with NoSpace when it can no longer get a
/// filled segment; every acknowledged record is there after reopening on the full disk.
#[test]
fn full_disk_poisons_and_loses_nothing() {
    for write_path in WRITE_PATHS {
        let fs = LoopFs::new(24 * MIB);
        let data_dir = fs.mount_point.join("data");
        let mut config = small_config(&data_dir, write_path);
        config.segment_size_bytes = 2 * MIB;
        config.tail_chunk_bytes = 256 * KIB;
        let mut wal = Wal::new(config.clone()).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        let (acknowledged, error) = append_until_failure(&mut wal, partition, 20);
        let cause = unwrap_cause(error);
        assert!(
            matches!(cause, Error::NoSpace { .. }),
            "{write_path:?}: {cause:?}"
        );
        assert!(
            acknowledged > Offset(1000),
            "the disk held several segments first"
        );
        assert_poisoned_by(&mut wal, partition, &cause);
        drop(wal);
        let mut wal = Wal::new(config).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        assert!(
            verify_log(&mut wal, partition) >= acknowledged,
            "{write_path:?}"
        );
        assert_no_tmp_files(&data_dir.join("topic-0"));
    }
}

fn assert_no_tmp_files(dir: &Path) {
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "half-filled spares left behind: {leftovers:?}"
    );
}
