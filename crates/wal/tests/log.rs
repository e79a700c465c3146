//! Behaviour of the partition log through its public API, on both write paths: appends,
//! group commit, reads from the tail and from disk, reopening, segment rolls, bad input,
//! retention, truncation and epochs. Each test runs once per write path.

#![allow(clippy::unwrap_used, clippy::expect_used)] // In tests a panic is the failure report.

mod common;

use std::time::{Duration, Instant};

use common::{append_next, batch_for, small_config, split_batches, verify_log, WRITE_PATHS};
use ringlog_types::units::KIB;
use ringlog_types::{Epoch, Offset};
use ringlog_wal::{Error, Wal, WalConfig, WritePath};

/// Appends batches of varying sizes, syncs, and reads everything back: the bytes are the
/// producer's with offsets stamped, contiguous, from the in-memory tail and from disk.
#[test]
fn append_sync_read_round_trip() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::new(small_config(dir.path(), write_path)).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        let mut expected_end = Offset(0);
        for round in 0..300u64 {
            expected_end = append_next(&mut wal, partition, 1 + round % 7);
            if round % 10 == 0 {
                wal.poll().unwrap();
            }
        }
        assert_eq!(wal.sync(partition).unwrap(), expected_end, "{write_path:?}");
        assert_eq!(verify_log(&mut wal, partition), expected_end);
        let ends = wal.ends(partition).unwrap();
        assert_eq!(ends.log_end, expected_end);
        assert_eq!(ends.written_end, expected_end);
    }
}

/// Everything synced before the log is dropped is there after reopening, and appends go on
/// from the old log end.
#[test]
fn reopen_keeps_everything_and_appends_continue() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(dir.path(), write_path);
        let end = {
            let mut wal = Wal::new(config.clone()).unwrap();
            let partition = wal.open_partition("topic-0").unwrap();
            for _ in 0..200 {
                append_next(&mut wal, partition, 3);
            }
            wal.sync(partition).unwrap()
        };
        let mut wal = Wal::new(config).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        assert_eq!(
            wal.ends(partition).unwrap().durable_end,
            end,
            "{write_path:?}"
        );
        assert_eq!(verify_log(&mut wal, partition), end);
        let next = append_next(&mut wal, partition, 2);
        assert_eq!(wal.sync(partition).unwrap(), next);
        assert_eq!(verify_log(&mut wal, partition), next);
    }
}

/// Many appends between two polls become one commit: the durable end moves in fewer steps
/// than there were appends.
#[test]
fn group_commit_takes_everything_staged() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::new(small_config(dir.path(), write_path)).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        for _ in 0..50 {
            append_next(&mut wal, partition, 1);
        }
        let end = wal.sync(partition).unwrap();
        let commits = wal.drain_durable_events().count();
        assert_eq!(end, Offset(50));
        assert!(
            commits <= 2,
            "50 appends staged together took {commits} commits"
        );
    }
}

/// A read never returns data at or above the durable end unless asked to, and a read from
/// the middle of a batch returns that whole batch.
#[test]
fn reads_respect_the_bound_and_batch_boundaries() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::new(small_config(dir.path(), write_path)).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        append_next(&mut wal, partition, 5);
        wal.sync(partition).unwrap();
        append_next(&mut wal, partition, 5);
        let read = wal.read(partition, Offset(0), 1 << 20, None).unwrap();
        assert_eq!(
            read.next_offset,
            Offset(5),
            "only the durable batch: {write_path:?}"
        );
        let read = wal
            .read(partition, Offset(0), 1 << 20, Some(Offset(10)))
            .unwrap();
        assert_eq!(
            read.next_offset,
            Offset(10),
            "an explicit bound reaches staged data"
        );
        let read = wal.read(partition, Offset(3), 1, None).unwrap();
        assert_eq!(
            read.first_offset,
            Some(Offset(0)),
            "the batch holding offset 3, whole"
        );
        assert_eq!(split_batches(&read.to_vec()).len(), 1);
        let past = wal.read(partition, Offset(11), 1, None);
        assert!(
            matches!(past, Err(Error::OffsetOutOfRange { .. })),
            "{past:?}"
        );
    }
}

/// A batch with a bad CRC and an oversized batch are refused with their own errors, and the
/// log is unchanged and usable afterwards.
#[test]
fn bad_batches_are_refused_and_the_log_goes_on() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::new(small_config(dir.path(), write_path)).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        let mut corrupt = batch_for(0, 2);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x40;
        let result = wal.append(partition, &corrupt, Epoch(1));
        assert!(matches!(result, Err(Error::InvalidBatch(_))), "{result:?}");
        let huge = batch_for(0, 200);
        assert!(huge.len() > 32 * 1024);
        let result = wal.append(partition, &huge, Epoch(1));
        assert!(
            matches!(result, Err(Error::BatchTooLarge { .. })),
            "{result:?}"
        );
        assert_eq!(wal.ends(partition).unwrap().log_end, Offset(0));
        append_next(&mut wal, partition, 2);
        assert_eq!(wal.sync(partition).unwrap(), Offset(2));
        verify_log(&mut wal, partition);
    }
}

/// Writing several segments' worth rolls the log; reads cross segment boundaries, from disk
/// and from memory; sealed segments get their index files written in the background.
#[test]
fn segments_roll_and_reads_cross_them() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(dir.path(), write_path);
        let mut wal = Wal::new(config.clone()).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        let mut end = Offset(0);
        while end < Offset(6000) {
            end = append_next(&mut wal, partition, 8);
            match wal.sync(partition) {
                Ok(_) => {}
                Err(error) => panic!("{write_path:?}: {error}"),
            }
        }
        let segments = segment_files(&dir.path().join("topic-0"));
        assert!(
            segments.len() >= 4,
            "expected several segments, found {segments:?}"
        );
        assert_eq!(verify_log(&mut wal, partition), end);
        wait_for(|| index_files(&dir.path().join("topic-0")) >= segments.len() - 1);
        drop(wal);
        let mut wal = Wal::new(config).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        assert_eq!(verify_log(&mut wal, partition), end);
    }
}

/// Retention by size deletes the oldest sealed segments, moves the log start, and reads
/// below it are out of range; the files disappear.
#[test]
fn retention_by_size_deletes_oldest_segments() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::new(small_config(dir.path(), write_path)).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        let mut end = Offset(0);
        while segment_files(&dir.path().join("topic-0")).len() < 5 {
            end = append_next(&mut wal, partition, 8);
            wal.sync(partition).unwrap();
        }
        let retention = ringlog_wal::Retention {
            bytes_max: Some(2 * 512 * KIB),
            age_max: None,
        };
        let deleted = wal.enforce_retention(partition, &retention, 0).unwrap();
        assert!(deleted >= 3, "deleted {deleted}");
        let ends = wal.ends(partition).unwrap();
        assert!(ends.log_start > Offset(0));
        assert_eq!(ends.log_end, end);
        let below = wal.read(partition, Offset(0), 1, None);
        assert!(
            matches!(below, Err(Error::OffsetOutOfRange { .. })),
            "{below:?}"
        );
        verify_log(&mut wal, partition);
        wait_for(|| segment_files(&dir.path().join("topic-0")).len() <= 2);
    }
}

/// Truncation at a batch boundary cuts the log there, keeps the removed suffix in
/// quarantine, and survives a reopen (the removed batches do not come back).
#[test]
fn truncate_from_cuts_and_quarantines() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(dir.path(), write_path);
        let mut wal = Wal::new(config.clone()).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        let mut boundaries = Vec::new();
        for _ in 0..400 {
            boundaries.push(append_next(&mut wal, partition, 4));
        }
        wal.sync(partition).unwrap();
        let cut = boundaries[150];
        wal.truncate_from(partition, cut).unwrap();
        assert_eq!(wal.ends(partition).unwrap().log_end, cut, "{write_path:?}");
        assert_eq!(verify_log(&mut wal, partition), cut);
        let quarantined = std::fs::read_dir(dir.path().join("topic-0/quarantine"))
            .unwrap()
            .count();
        assert!(quarantined >= 1);
        let next = append_next(&mut wal, partition, 4);
        wal.sync(partition).unwrap();
        drop(wal);
        let mut wal = Wal::new(config).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        assert_eq!(verify_log(&mut wal, partition), next);
        let inside = wal.truncate_from(partition, Offset(cut.0 + 1));
        assert!(inside.is_err(), "truncation inside a batch is refused");
    }
}

/// Epochs: a new epoch is recorded with its start offset (and survives a reopen); a batch
/// with an older epoch is fenced.
#[test]
fn epochs_are_recorded_and_stale_ones_fenced() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(dir.path(), write_path);
        let mut wal = Wal::new(config.clone()).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        wal.append(partition, &batch_for(0, 2), Epoch(1)).unwrap();
        wal.append(partition, &batch_for(2, 2), Epoch(3)).unwrap();
        let stale = wal.append(partition, &batch_for(4, 2), Epoch(2));
        assert!(matches!(stale, Err(Error::FencedEpoch { .. })), "{stale:?}");
        wal.sync(partition).unwrap();
        drop(wal);
        let mut wal = Wal::new(config).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        let epochs: Vec<(u32, u64)> = wal
            .epochs(partition)
            .unwrap()
            .entries()
            .iter()
            .map(|entry| (entry.epoch.0, entry.start_offset.0))
            .collect();
        assert_eq!(epochs, vec![(1, 0), (3, 2)], "{write_path:?}");
    }
}

/// On a file system without O_DIRECT (tmpfs), the direct path refuses to open and names the
/// mmap path; the mmap path works there.
#[test]
fn tmpfs_refuses_direct_and_names_mmap() {
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let error = Wal::new(WalConfig::new(dir.path(), WritePath::Direct))
        .err()
        .expect("refused");
    let message = error.to_string();
    assert!(
        message.contains("O_DIRECT") && message.contains("mmap"),
        "{message}"
    );
    let mut wal = Wal::new(small_config(dir.path(), WritePath::Mmap)).unwrap();
    let partition = wal.open_partition("topic-0").unwrap();
    let end = append_next(&mut wal, partition, 3);
    assert_eq!(wal.sync(partition).unwrap(), end);
}

fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| ringlog_wal::parse_segment_file_name(name).is_some())
        .collect();
    names.sort();
    names
}

fn index_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".index"))
        .count()
}

/// Polls `condition` until it holds, failing after 20 s (background work has no completion
/// signal a test can wait on).
fn wait_for(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within 20 s"
        );
        std::thread::park_timeout(Duration::from_millis(2));
    }
}

/// A log at its retention limit reuses its oldest segment file when it rolls: the number of
/// segment files stays at the limit, no new spare is filled, and everything retained reads
/// back, also after a reopen (the reused files hold stale bytes after their data).
#[test]
fn rolls_at_the_retention_limit_reuse_the_oldest_file() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config(dir.path(), write_path);
        config.retention.bytes_max = Some(3 * 512 * KIB);
        let partition_dir = dir.path().join("topic-0");
        let mut wal = Wal::new(config.clone()).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        let mut end = Offset(0);
        for _ in 0..3000 {
            end = append_next(&mut wal, partition, 4);
            wal.sync(partition).unwrap();
            assert!(segment_files(&partition_dir).len() <= 3, "{write_path:?}");
        }
        let ends = wal.ends(partition).unwrap();
        assert!(
            ends.log_start > Offset(2000),
            "old segments left the log: {ends:?}"
        );
        assert_eq!(verify_log(&mut wal, partition), end);
        drop(wal);
        let spares = spare_files(&partition_dir);
        assert!(
            spares <= 1,
            "no spare beyond the first was filled: {spares}"
        );
        let mut wal = Wal::new(config).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        assert_eq!(wal.ends(partition).unwrap().log_start, ends.log_start);
        assert_eq!(verify_log(&mut wal, partition), end);
        let next = append_next(&mut wal, partition, 4);
        assert_eq!(wal.sync(partition).unwrap(), next);
    }
}

/// Several partitions on one shard share the commit cycle: appends to all of them become
/// durable together, and each log reads back on its own.
#[test]
fn partitions_share_the_commit_cycle() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::new(small_config(dir.path(), write_path)).unwrap();
        let partitions: Vec<_> = (0..4)
            .map(|index| wal.open_partition(&format!("topic-{index}")).unwrap())
            .collect();
        for round in 0..50u64 {
            for partition in &partitions {
                append_next(&mut wal, *partition, 1 + round % 3);
            }
        }
        let before = wal.drain_durable_events().count();
        assert_eq!(before, 0, "nothing is durable before a cycle ran");
        // One poll starts one cycle; wait for that cycle alone, then every partition must be
        // durable: they all went into it.
        wal.poll().unwrap();
        while wal.is_committing() {
            wal.wait().unwrap();
        }
        assert_eq!(wal.drain_durable_events().count(), partitions.len());
        for partition in &partitions {
            let ends = wal.ends(*partition).unwrap();
            assert_eq!(
                ends.durable_end, ends.log_end,
                "{write_path:?}: one cycle took all"
            );
            verify_log(&mut wal, *partition);
        }
    }
}

/// A missing or damaged index file of a sealed segment is rebuilt from the segment at open,
/// and reads from the middle of that segment still find their batches.
#[test]
fn missing_and_damaged_indexes_are_rebuilt() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let config = small_config(dir.path(), write_path);
        let partition_dir = dir.path().join("topic-0");
        let end = {
            let mut wal = Wal::new(config.clone()).unwrap();
            let partition = wal.open_partition("topic-0").unwrap();
            let mut end = Offset(0);
            while segment_files(&partition_dir).len() < 4 {
                end = append_next(&mut wal, partition, 8);
                wal.sync(partition).unwrap();
            }
            wait_for(|| index_files(&partition_dir) >= 3);
            end
        };
        let mut indexes: Vec<_> = std::fs::read_dir(&partition_dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "index"))
            .collect();
        indexes.sort();
        std::fs::remove_file(&indexes[0]).unwrap();
        std::fs::write(&indexes[1], b"not an index").unwrap();
        let mut wal = Wal::new(config).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        assert_eq!(verify_log(&mut wal, partition), end, "{write_path:?}");
        let middle = wal.read(partition, Offset(end.0 / 3), 1, None).unwrap();
        assert!(middle.first_offset.unwrap() <= Offset(end.0 / 3));
        assert!(middle.next_offset > Offset(end.0 / 3));
        wait_for(|| std::fs::read(&indexes[1]).is_ok_and(|bytes| bytes != b"not an index"));
        wait_for(|| indexes[0].exists());
    }
}

fn spare_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(".spare-"))
        .count()
}

/// More than a segment's worth of batches staged before a single commit: the log stops at
/// the segment whose rename is still pending (backpressure) instead of rolling past it, and
/// every segment ends up under its own name, readable after a reopen.
#[test]
fn staging_more_than_a_segment_waits_for_the_rename() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config(dir.path(), write_path);
        config.segment_size_bytes = 128 * KIB;
        config.tail_chunk_bytes = 128 * KIB;
        config.tail_chunks_max = 8;
        config.spare_segments_count = 3;
        config.retention.bytes_max = Some(4 * 128 * KIB);
        let mut wal = Wal::new(config.clone()).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        wait_for_spares(&mut wal, partition, 3);
        let mut refused = 0;
        for _ in 0..20 {
            let mut staged = 0;
            loop {
                let base = wal.ends(partition).unwrap().log_end.0;
                match wal.append(partition, &batch_for(base, 8), Epoch(1)) {
                    Ok(_) => staged += 1,
                    Err(Error::Backpressure { .. }) => break,
                    Err(error) => panic!("{error}"),
                }
            }
            assert!(staged > 0, "{write_path:?}: the log took some batches");
            refused += 1;
            wal.sync(partition).unwrap();
        }
        assert_eq!(refused, 20);
        let end = verify_log(&mut wal, partition);
        drop(wal);
        let mut wal = Wal::new(config).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        assert_eq!(verify_log(&mut wal, partition), end, "{write_path:?}");
    }
}

fn wait_for_spares(wal: &mut Wal, partition: ringlog_wal::PartitionHandle, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while wal.spares_ready(partition).unwrap() < count {
        assert!(Instant::now() < deadline, "spares not filled within 20 s");
        wal.poll().unwrap();
        std::thread::park_timeout(Duration::from_millis(2));
    }
}

/// The log's ring is shared with other code (a shard's sockets): completions of operations
/// tagged at or above EXTERNAL_TAG_MIN, and MSG_RING wake-ups from other rings, are handed
/// over by `poll` instead of being taken for the log's own, while commits go on.
#[test]
fn external_completions_are_handed_over() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::new(small_config(dir.path(), WritePath::Direct)).unwrap();
    let partition = wal.open_partition("topic-0").unwrap();
    let end = append_next(&mut wal, partition, 3);
    let external = ringlog_wal::EXTERNAL_TAG_MIN + 7;
    wal.ring_mut().nop(external).unwrap();
    let own_fd = wal.ring_mut().ring_fd();
    wal.ring_mut()
        .msg_ring(own_fd, 42, 0, ringlog_wal::EXTERNAL_TAG_MIN + 8)
        .unwrap();
    assert_eq!(wal.sync(partition).unwrap(), end);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 3 {
        assert!(Instant::now() < deadline, "external completions: {seen:?}");
        wal.wait().unwrap();
        let mut out = Vec::new();
        wal.drain_external_completions(&mut out);
        seen.extend(
            out.into_iter()
                .map(|completion| (completion.tag, completion.foreign)),
        );
        if !wal.is_committing() && wal.ring_mut().in_flight() == 0 && seen.len() < 3 {
            wal.ring_mut().submit_and_wait(0).unwrap();
        }
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        vec![
            (42, true),
            (external, false),
            (ringlog_wal::EXTERNAL_TAG_MIN + 8, false)
        ]
    );
}

/// Retention by age deletes (or recycles) only sealed segments whose newest batch is older
/// than the limit, judged against the caller's clock; the active segment always stays.
#[test]
fn retention_by_age_uses_the_newest_timestamp_of_each_segment() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::new(small_config(dir.path(), write_path)).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        let mut end = Offset(0);
        while segment_files(&dir.path().join("topic-0")).len() < 4 {
            // Batch timestamps are their base offsets, in milliseconds (testing::batch_for).
            end = append_next(&mut wal, partition, 8);
            wal.sync(partition).unwrap();
        }
        let age = ringlog_wal::Retention {
            bytes_max: None,
            age_max: Some(Duration::from_secs(1)),
        };
        let now_ms = 1000 + i64::try_from(end.0).unwrap() / 2;
        let deleted = wal.enforce_retention(partition, &age, now_ms).unwrap();
        let log_start = wal.ends(partition).unwrap().log_start;
        assert!(
            deleted >= 1,
            "{write_path:?}: the oldest segments are past the limit"
        );
        assert!(
            log_start.0 <= end.0 / 2,
            "a segment with newer batches stays: {log_start}"
        );
        let all = wal.enforce_retention(partition, &age, i64::MAX).unwrap();
        assert!(all >= 1);
        let ends = wal.ends(partition).unwrap();
        assert!(
            ends.log_start > log_start && ends.log_start < end,
            "{ends:?}"
        );
        assert_eq!(verify_log(&mut wal, partition), end);
    }
}

/// Batches of random sizes, appended in random bursts between polls, over many segments and
/// tail chunks: no commit ever reaches past its segment's end (the files keep their size),
/// and everything reads back, also after a reopen. Seeded; the seed is printed.
#[test]
fn random_bursts_never_write_past_a_segment() {
    for write_path in WRITE_PATHS {
        let seed = u64::from(std::process::id());
        println!("seed {seed}");
        let mut rng = ringlog_wal::testing::TestRng::new(seed);
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config(dir.path(), write_path);
        config.segment_size_bytes = 128 * KIB;
        config.tail_chunk_bytes = 64 * KIB;
        config.batch_size_bytes_max = 16 * KIB;
        config.retention.bytes_max = Some(4 * 128 * KIB);
        let mut wal = Wal::new(config.clone()).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        for _ in 0..400 {
            for _ in 0..rng.range(1, 20) {
                append_next(&mut wal, partition, rng.range(1, 30));
            }
            if rng.range(0, 3) == 0 {
                wal.sync(partition).unwrap();
            } else {
                wal.poll().unwrap();
            }
        }
        let end = wal.sync(partition).unwrap();
        for entry in std::fs::read_dir(dir.path().join("topic-0")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "log") {
                let size = std::fs::metadata(&path).unwrap().len();
                assert_eq!(
                    size,
                    128 * KIB,
                    "{write_path:?} seed {seed}: {}",
                    path.display()
                );
            }
        }
        assert_eq!(verify_log(&mut wal, partition), end);
        drop(wal);
        let mut wal = Wal::new(config).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        assert_eq!(
            verify_log(&mut wal, partition),
            end,
            "{write_path:?} seed {seed}"
        );
    }
}

/// `close_partition` flushes what was appended, frees the partition and invalidates its
/// handle without disturbing the others: a second partition keeps committing under its old
/// handle. Reopening the same name recovers the closed log's data under a new handle; after
/// closing again and removing its directory, reopening gives an empty log.
#[test]
fn close_partition_then_reopen_or_remove() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::new(small_config(dir.path(), write_path)).unwrap();
        let closing = wal.open_partition("closing-0").unwrap();
        let other = wal.open_partition("other-0").unwrap();
        for _ in 0..150 {
            append_next(&mut wal, closing, 3);
            append_next(&mut wal, other, 2);
        }
        // Not synced: closing must make these durable before it lets go.
        let closed_end = wal.ends(closing).unwrap().log_end;
        wal.close_partition(closing).unwrap();
        assert!(matches!(wal.ends(closing), Err(Error::UnknownPartition(_))));
        assert!(matches!(
            wal.append(closing, &batch_for(0, 1), Epoch(1)),
            Err(Error::UnknownPartition(_))
        ));
        assert!(matches!(
            wal.close_partition(closing),
            Err(Error::UnknownPartition(_))
        ));
        for _ in 0..100 {
            append_next(&mut wal, other, 2);
        }
        let other_end = wal.sync(other).unwrap();
        assert_eq!(verify_log(&mut wal, other), other_end, "{write_path:?}");

        let reopened = wal.open_partition("closing-0").unwrap();
        assert_ne!(reopened, closing, "a closed handle is never reused");
        assert_eq!(wal.ends(reopened).unwrap().durable_end, closed_end);
        assert_eq!(verify_log(&mut wal, reopened), closed_end);
        let next = append_next(&mut wal, reopened, 4);
        assert_eq!(wal.sync(reopened).unwrap(), next);

        wal.close_partition(reopened).unwrap();
        std::fs::remove_dir_all(dir.path().join("closing-0")).unwrap();
        let fresh = wal.open_partition("closing-0").unwrap();
        let ends = wal.ends(fresh).unwrap();
        assert_eq!(ends.log_start, Offset(0), "{write_path:?}");
        assert_eq!(ends.log_end, Offset(0), "{write_path:?}");
        assert_eq!(append_next(&mut wal, fresh, 5), Offset(5));
        assert_eq!(wal.sync(fresh).unwrap(), Offset(5));
        assert_eq!(verify_log(&mut wal, fresh), Offset(5));
        assert_eq!(verify_log(&mut wal, other), other_end);
        wal.close().unwrap();
    }
}

/// On the direct path no page of the active segment stays in the page cache after the log
/// opened it (new, and recovered with data in it): a cached page where the next commit goes
/// makes io_uring hand that O_DIRECT write to a worker thread instead of issuing it at once.
#[test]
fn direct_path_leaves_no_cached_pages_in_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), WritePath::Direct);
    let segment = dir.path().join("topic-0").join("00000000000000000000.log");
    {
        let mut wal = Wal::new(config.clone()).unwrap();
        let partition = wal.open_partition("topic-0").unwrap();
        assert_eq!(resident_pages(&segment), 0, "new segment");
        for _ in 0..20 {
            append_next(&mut wal, partition, 3);
        }
        wal.sync(partition).unwrap();
    }
    let mut wal = Wal::new(config).unwrap();
    let partition = wal.open_partition("topic-0").unwrap();
    assert_eq!(wal.ends(partition).unwrap().durable_end, Offset(60));
    assert_eq!(resident_pages(&segment), 0, "recovered segment");
}

/// Pages of the file at `path` in the page cache (`mincore` over a mapping that touches
/// none of them).
fn resident_pages(path: &std::path::Path) -> usize {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: read-only mapping of a file no one truncates during the test; its bytes are
    // never read, only its residency queried.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let page = 4096;
    let mut residency = vec![0u8; map.len().div_ceil(page)];
    // SAFETY: `map` is a live mapping of `map.len()` bytes and `residency` has one byte per
    // page of it.
    let result = unsafe {
        libc::mincore(
            map.as_ptr().cast_mut().cast(),
            map.len(),
            residency.as_mut_ptr(),
        )
    };
    assert_eq!(result, 0, "mincore: {}", std::io::Error::last_os_error());
    residency.iter().filter(|byte| **byte & 1 == 1).count()
}
