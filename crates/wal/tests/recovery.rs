//! Recovery of damaged segment files, on both write paths: a torn last commit (zeroed
//! blocks, a truncated file) is cut off at open and appends go on; a flipped bit inside
//! acknowledged data is the typed corruption error naming the file and the batch's position.
//! The damage is made with ordinary file writes between a clean close and a reopen.

#![allow(clippy::unwrap_used, clippy::expect_used)] // In tests a panic is the failure report.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{append_next, batch_for, small_config, verify_log, WRITE_PATHS};
use ringlog_types::{Epoch, Offset};
use ringlog_wal::{Error, Wal, WalConfig, WritePath};

const BLOCK: u64 = 4096;

fn config(dir: &Path, write_path: WritePath) -> WalConfig {
    let mut config = small_config(dir, write_path);
    config.block_size_bytes = Some(BLOCK);
    config
}

/// Batches found in a segment image: (position, base offset, size), skipping padding.
fn batch_positions(image: &[u8]) -> Vec<(u64, u64, usize)> {
    let mut found = Vec::new();
    let mut position = usize::try_from(BLOCK).unwrap();
    while position + 61 <= image.len() {
        let header = ringlog_batch::BatchHeader::parse(&image[position..position + 61]);
        match header {
            Ok(header) if header.size_bytes() + position <= image.len() => {
                let base = u64::try_from(header.base_offset).unwrap();
                found.push((position as u64, base, header.size_bytes()));
                position += header.size_bytes();
            }
            _ if position % 4096 == 0 => break,
            _ => position = position.next_multiple_of(4096),
        }
    }
    found
}

fn only_segment(dir: &Path) -> PathBuf {
    dir.join("topic-0")
        .join(ringlog_wal::segment_file_name(Offset(0)))
}

/// Writes commit A (many small batches) and commit B (one large batch spanning several
/// blocks), closes, and returns (A's end offset, B's position, B's size).
fn two_commits(dir: &Path, write_path: WritePath) -> (Offset, u64, usize) {
    let mut wal = Wal::new(config(dir, write_path)).unwrap();
    let partition = wal.open_partition("topic-0").unwrap();
    for _ in 0..20 {
        append_next(&mut wal, partition, 2);
    }
    let a_end = wal.sync(partition).unwrap();
    let large = batch_for(a_end.0, 60);
    assert!(large.len() > 3 * 4096, "commit B spans several blocks");
    wal.append(partition, &large, Epoch(1)).unwrap();
    wal.sync(partition).unwrap();
    drop(wal);
    let image = std::fs::read(only_segment(dir)).unwrap();
    let (position, base, size) = *batch_positions(&image).last().unwrap();
    assert_eq!(base, a_end.0);
    assert_eq!(position % BLOCK, 0, "a commit starts at a block boundary");
    (a_end, position, size)
}

fn reopen(dir: &Path, write_path: WritePath) -> Result<(Wal, ringlog_wal::PartitionHandle), Error> {
    let mut wal = Wal::new(config(dir, write_path))?;
    let partition = wal.open_partition("topic-0")?;
    Ok((wal, partition))
}

/// The last commit with all but its first block zeroed (a torn write) is cut off: the log
/// ends where the previous commit ended, and appends continue and survive a reopen.
#[test]
fn zeroed_tail_is_cut_off() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let (a_end, position, size) = two_commits(dir.path(), write_path);
        let file = OpenOptions::new()
            .write(true)
            .open(only_segment(dir.path()))
            .unwrap();
        let zeros = vec![0; size - 4096];
        file.write_all_at(&zeros, position + BLOCK).unwrap();
        drop(file);
        let (mut wal, partition) = reopen(dir.path(), write_path).unwrap();
        assert_eq!(
            wal.ends(partition).unwrap().log_end,
            a_end,
            "{write_path:?}"
        );
        assert_eq!(verify_log(&mut wal, partition), a_end);
        let next = append_next(&mut wal, partition, 3);
        wal.sync(partition).unwrap();
        drop(wal);
        let (mut wal, partition) = reopen(dir.path(), write_path).unwrap();
        assert_eq!(verify_log(&mut wal, partition), next);
    }
}

/// A segment file truncated inside its last commit is cut back to the previous commit and
/// filled back to its full length.
#[test]
fn truncated_tail_is_cut_off() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        let (a_end, position, _) = two_commits(dir.path(), write_path);
        let path = only_segment(dir.path());
        let full_length = std::fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(position + BLOCK + 100).unwrap();
        drop(file);
        let (mut wal, partition) = reopen(dir.path(), write_path).unwrap();
        assert_eq!(
            wal.ends(partition).unwrap().log_end,
            a_end,
            "{write_path:?}"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), full_length);
        let next = append_next(&mut wal, partition, 3);
        assert_eq!(wal.sync(partition).unwrap(), next);
        assert_eq!(verify_log(&mut wal, partition), next);
    }
}

/// A flipped bit inside an acknowledged batch that is followed by more acknowledged batches
/// is corruption: opening fails with the file and the damaged batch's position.
#[test]
fn flipped_bit_in_acknowledged_data_is_corruption() {
    for write_path in WRITE_PATHS {
        let dir = tempfile::tempdir().unwrap();
        two_commits(dir.path(), write_path);
        let path = only_segment(dir.path());
        let image = std::fs::read(&path).unwrap();
        let batches = batch_positions(&image);
        let (position, _, size) = batches[batches.len() / 2];
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let target = position + u64::try_from(size / 2).unwrap();
        let byte = image[usize::try_from(target).unwrap()] ^ 0x08;
        file.write_all_at(&[byte], target).unwrap();
        drop(file);
        match reopen(dir.path(), write_path) {
            Err(Error::Corrupt {
                file,
                position: reported,
                ..
            }) => {
                assert_eq!(file, path, "{write_path:?}");
                assert_eq!(reported, position, "the damaged batch's position");
            }
            Err(other) => panic!("expected corruption, got {other}"),
            Ok(_) => panic!("a damaged acknowledged batch was accepted ({write_path:?})"),
        }
    }
}
