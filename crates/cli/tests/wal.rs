//! `ringlog wal inspect` and `ringlog wal verify` on real partition logs written through
//! `ringlog_wal::Wal` (direct write path, under /tmp), then damaged in known ways.

#![allow(clippy::unwrap_used, clippy::expect_used)] // In tests a panic is the failure report.

mod common;

use std::fs;
use std::path::Path;

use common::{
    batches_of, commit_bytes_max_arg, ringlog, segment_paths, snapshot, text_of, write_partition,
    Appended, SEGMENT_SIZE_BYTES,
};
use ringlog_types::Offset;
use ringlog_wal::index::SegmentIndex;
use ringlog_wal::testing::batch_for;
use serde_json::Value;

/// Commits that fill about three test segments (one 4 KiB block per commit, 15 blocks of
/// data per 64 KiB segment).
const COMMITS_ROLLING: usize = 40;

/// Runs `ringlog wal <command> --commit-bytes-max <test value> [extra..] <dir>`.
fn wal_command(command: &str, extra: &[&str], dir: &Path) -> std::process::Output {
    let commit_bytes_max = commit_bytes_max_arg();
    let mut args = vec![
        "wal",
        command,
        "--commit-bytes-max",
        commit_bytes_max.as_str(),
    ];
    args.extend_from_slice(extra);
    args.push(dir.to_str().unwrap());
    ringlog(&args)
}

/// Every batch of a `--json` summary, across partitions and segments, as
/// `(base_offset, record_count, crc)`.
fn json_batches(summary: &Value) -> Vec<(u64, u64, u32)> {
    let mut batches = Vec::new();
    for partition in summary["partitions"].as_array().unwrap() {
        for segment in partition["segments"].as_array().unwrap() {
            for batch in segment["batches"].as_array().unwrap() {
                batches.push((
                    batch["base_offset"].as_u64().unwrap(),
                    batch["record_count"].as_u64().unwrap(),
                    u32::try_from(batch["crc"].as_u64().unwrap()).unwrap(),
                ));
            }
        }
    }
    batches
}

/// The batches a test appended, with the CRC each must carry: the CRC does not cover the
/// base offset and epoch the log stamps, so it is the CRC of the batch as built.
fn expected_batches(appended: &[Appended]) -> Vec<(u64, u64, u32)> {
    appended
        .iter()
        .map(|batch| {
            let built = batch_for(batch.base_offset, batch.record_count);
            let crc = ringlog_batch::validate(&built).unwrap().crc;
            (batch.base_offset, batch.record_count, crc)
        })
        .collect()
}

// Checks that an undamaged log with several segments verifies (exit 0, text and JSON), and
// that `--json` lists every appended batch with its base offset, record count and CRC, in
// order, both for a partition directory and for a data directory holding two partitions.
#[test]
fn verify_accepts_a_clean_log_and_json_lists_every_batch() {
    let data_dir = tempfile::tempdir_in("/tmp").unwrap();
    let appended = write_partition(data_dir.path(), "orders-0", COMMITS_ROLLING);
    let other = write_partition(data_dir.path(), "orders-1", 3);
    let partition_dir = data_dir.path().join("orders-0");
    assert!(
        segment_paths(&partition_dir).len() >= 3,
        "the log should roll"
    );

    let output = wal_command("verify", &[], &partition_dir);
    assert_eq!(output.status.code(), Some(0), "{}", text_of(&output));
    assert!(
        text_of(&output).contains("no problem found"),
        "{}",
        text_of(&output)
    );

    let output = wal_command("verify", &["--json"], &partition_dir);
    assert_eq!(output.status.code(), Some(0), "{}", text_of(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["ok"], Value::Bool(true));
    assert_eq!(json_batches(&summary), expected_batches(&appended));
    let end = appended
        .last()
        .map(|last| last.base_offset + last.record_count);
    assert_eq!(summary["partitions"][0]["log_start"].as_u64(), Some(0));
    assert_eq!(summary["partitions"][0]["log_end"].as_u64(), end);

    let output = wal_command("verify", &["--json"], data_dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", text_of(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["partitions"].as_array().unwrap().len(), 2);
    let both: Vec<_> = expected_batches(&appended)
        .into_iter()
        .chain(expected_batches(&other))
        .collect();
    assert_eq!(json_batches(&summary), both);
}

// Checks that one flipped bit inside a batch in the middle of a sealed segment is reported
// as corruption: exit code 1, and the output names the segment file and the position of
// the damaged batch (found here by the WAL's own scanner, before the damage).
#[test]
fn verify_reports_a_flipped_bit_in_a_sealed_segment() {
    let data_dir = tempfile::tempdir_in("/tmp").unwrap();
    write_partition(data_dir.path(), "orders-0", COMMITS_ROLLING);
    let partition_dir = data_dir.path().join("orders-0");
    let segments = segment_paths(&partition_dir);
    assert!(segments.len() >= 2);
    let sealed = &segments[0];
    let batches = batches_of(sealed, false);
    assert!(batches.len() >= 3, "{batches:?}");
    let damaged = batches[batches.len() / 2];
    let mut image = fs::read(sealed).unwrap();
    // A byte in the middle of the batch: inside the records, covered by the CRC32C.
    let flipped = usize::try_from(damaged.position).unwrap()
        + usize::try_from(damaged.size_bytes / 2).unwrap();
    image[flipped] ^= 0x10;
    fs::write(sealed, &image).unwrap();

    let output = wal_command("verify", &[], &partition_dir);
    let text = text_of(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let file_name = sealed.file_name().unwrap().to_str().unwrap();
    let expected = format!("{file_name}: position {}", damaged.position);
    assert!(
        text.contains(&expected),
        "expected {expected:?} in:\n{text}"
    );
    assert!(text.contains("PROBLEM"), "{text}");

    let output = wal_command("verify", &["--json"], &partition_dir);
    assert_eq!(output.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["ok"], Value::Bool(false));
    let problem = &summary["partitions"][0]["problems"][0];
    assert_eq!(problem["position"].as_u64(), Some(damaged.position));
    assert!(problem["file"].as_str().unwrap().ends_with(file_name));
}

// Checks that a torn last commit (its first sector never reached the disk: zeroed here) is
// reported as a torn tail that the open would cut, with exit code 0 because a commit that
// was never acknowledged is not corruption; and that neither verify nor inspect changes a
// byte or a file name anywhere in the partition directory (they are read-only).
#[test]
fn verify_reports_a_torn_tail_and_changes_nothing() {
    let data_dir = tempfile::tempdir_in("/tmp").unwrap();
    let appended = write_partition(data_dir.path(), "orders-0", COMMITS_ROLLING);
    let partition_dir = data_dir.path().join("orders-0");
    let last_segment = segment_paths(&partition_dir).pop().unwrap();
    let last_batch = *batches_of(&last_segment, true).last().unwrap();
    assert_eq!(
        last_batch.base_offset.0,
        appended.last().unwrap().base_offset
    );
    assert!(last_batch.size_bytes > 1024, "{last_batch:?}");
    let mut image = fs::read(&last_segment).unwrap();
    let start = usize::try_from(last_batch.position).unwrap();
    image[start..start + 512].fill(0);
    fs::write(&last_segment, &image).unwrap();
    let before = snapshot(data_dir.path());

    let output = wal_command("verify", &[], &partition_dir);
    let text = text_of(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("torn tail of"), "{text}");
    assert!(text.contains("would be cut at open"), "{text}");
    assert!(text.contains("no problem found"), "{text}");

    let output = wal_command("verify", &["--json"], &partition_dir);
    assert_eq!(output.status.code(), Some(0), "{}", text_of(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    let partition = &summary["partitions"][0];
    let segment = partition["segments"].as_array().unwrap().last().unwrap();
    assert_eq!(segment["verdict"], "torn_tail");
    assert_eq!(
        segment["torn_start_position"].as_u64(),
        Some(last_batch.position)
    );
    // The torn batch is not part of the log: the log ends where it began.
    assert_eq!(
        partition["log_end"].as_u64(),
        Some(last_batch.base_offset.0)
    );

    let output = wal_command("inspect", &["--batches"], data_dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", text_of(&output));
    assert_eq!(
        snapshot(data_dir.path()),
        before,
        "verify and inspect must not write"
    );
}

// Checks that `inspect --batches` prints every batch the log holds, one line each with its
// offset range and position, plus the segment headers and the partition's ends.
#[test]
fn inspect_lists_every_batch() {
    let data_dir = tempfile::tempdir_in("/tmp").unwrap();
    let appended = write_partition(data_dir.path(), "orders-0", 8);
    let partition_dir = data_dir.path().join("orders-0");
    let output = wal_command("inspect", &["--batches"], &partition_dir);
    let text = text_of(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");

    let batch_lines: Vec<&str> = text
        .lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with("offsets ["))
        .collect();
    assert_eq!(batch_lines.len(), appended.len(), "{text}");
    let mut positions = Vec::new();
    for path in segment_paths(&partition_dir) {
        let is_last = path == *segment_paths(&partition_dir).last().unwrap();
        positions.extend(
            batches_of(&path, is_last)
                .iter()
                .map(|batch| batch.position),
        );
    }
    for ((line, batch), position) in batch_lines.iter().zip(&appended).zip(&positions) {
        let next = batch.base_offset + batch.record_count;
        let expected = format!(
            "offsets [{}, {next}) position {position} ",
            batch.base_offset
        );
        assert!(
            line.starts_with(&expected),
            "{line:?} should start with {expected:?}"
        );
    }
    let log_end = appended
        .last()
        .map_or(0, |last| last.base_offset + last.record_count);
    assert!(
        text.contains(&format!("log start 0, log end {log_end}")),
        "{text}"
    );
    let header = format!("segment size {SEGMENT_SIZE_BYTES} bytes, flags none");
    assert!(text.contains(&header), "{text}");
}

// Checks that an index file whose entry points at a position where no batch starts is
// reported with the index file's name (exit 1), while the segment itself stays intact.
#[test]
fn verify_reports_an_index_entry_off_a_batch_start() {
    let data_dir = tempfile::tempdir_in("/tmp").unwrap();
    write_partition(data_dir.path(), "orders-0", COMMITS_ROLLING);
    let partition_dir = data_dir.path().join("orders-0");
    let sealed = &segment_paths(&partition_dir)[0];
    let first = batches_of(sealed, false)[0];
    let mut index = SegmentIndex::new(Offset(0), 0);
    // Eight bytes past the batch's start: inside it, not at a batch boundary.
    index.on_batch(
        first.base_offset,
        first.position + 8,
        u64::from(first.size_bytes),
    );
    let index_path = partition_dir.join(SegmentIndex::file_name(Offset(0)));
    fs::write(&index_path, index.encode()).unwrap();

    let output = wal_command("verify", &[], &partition_dir);
    let text = text_of(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let index_name = index_path.file_name().unwrap().to_str().unwrap();
    assert!(text.contains(index_name), "{text}");
    let expected = format!(
        "entry 0 points offset 0 at {} position {}, but that batch starts at position {}",
        sealed.file_name().unwrap().to_str().unwrap(),
        first.position + 8,
        first.position
    );
    assert!(
        text.contains(&expected),
        "expected {expected:?} in:\n{text}"
    );
}

// Checks the exit code 2 for what is not a finding about a log: a missing directory, a
// directory without any partition, and a usage error.
#[test]
fn usage_and_io_errors_exit_with_2() {
    let empty = tempfile::tempdir_in("/tmp").unwrap();
    let missing = empty.path().join("missing");
    assert_eq!(wal_command("verify", &[], &missing).status.code(), Some(2));
    let output = wal_command("inspect", &[], empty.path());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text_of(&output).contains("no segment files"),
        "{}",
        text_of(&output)
    );
    assert_eq!(ringlog(&["wal", "verify"]).status.code(), Some(2));
}
