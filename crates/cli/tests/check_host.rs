//! `ringlog check-host` on the kinds of data directory this machine has: ext4 under /tmp
//! (O_DIRECT available), tmpfs under /dev/shm (no O_DIRECT), and loop-mounted ext4 file
//! systems with and without a journal (needs root).

#![allow(clippy::unwrap_used, clippy::expect_used)] // In tests a panic is the failure report.

mod common;
mod loop_mount;

use std::fs;

use common::{ringlog, text_of};
use loop_mount::LoopMount;
use ringlog_types::units::MIB;

/// Big enough for mkfs.ext4 to give it a journal by default.
const IMAGE_SIZE_BYTES: u64 = 64 * MIB;

// Checks that a data directory on ext4 (/tmp here, kernel 6.18) passes every check that
// can fail (exit 0), that both write paths made a test commit, that the CPU idle check
// names the cpuidle driver or its absence, and that the checks leave nothing behind in the
// directory.
#[test]
fn passes_on_a_file_system_with_o_direct() {
    let data_dir = tempfile::tempdir_in("/tmp").unwrap();
    let output = ringlog(&[
        "check-host",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
    ]);
    let text = text_of(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS  direct write path"), "{text}");
    assert!(text.contains("PASS  mmap write path"), "{text}");
    assert!(text.contains("PASS  io_uring"), "{text}");
    let idle = text
        .lines()
        .find(|line| line.contains("  cpu idle "))
        .unwrap_or_else(|| panic!("no cpu idle line: {text}"));
    assert!(
        idle.contains("driver ") || idle.contains("no cpuidle driver"),
        "{idle}"
    );
    assert!(!text.contains("FAIL"), "{text}");
    assert_eq!(
        fs::read_dir(data_dir.path()).unwrap().count(),
        0,
        "scratch files left"
    );
}

// Checks that on tmpfs (/dev/shm) the direct write path fails with an explanation naming
// O_DIRECT and `--write-path mmap`, that the mmap path is tried and passes, that the exit
// code is 1 (direct is the default path), and that nothing is left behind.
#[test]
fn explains_mmap_on_tmpfs() {
    let data_dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let output = ringlog(&[
        "check-host",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
    ]);
    let text = text_of(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  direct write path"), "{text}");
    assert!(text.contains("O_DIRECT"), "{text}");
    assert!(text.contains("--write-path mmap"), "{text}");
    assert!(text.contains("PASS  mmap write path"), "{text}");
    assert!(text.contains("the mmap check passed"), "{text}");
    assert_eq!(
        fs::read_dir(data_dir.path()).unwrap().count(),
        0,
        "scratch files left"
    );
}

// Checks that a data directory that does not exist is an error (exit 2), not a failed check.
#[test]
fn missing_data_dir_exits_with_2() {
    let parent = tempfile::tempdir_in("/tmp").unwrap();
    let missing = parent.path().join("missing");
    let output = ringlog(&["check-host", "--data-dir", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", text_of(&output));
}

/// The `file system` line of `ringlog check-host` on a fresh ext4 made with `mkfs_args`.
fn file_system_line(mkfs_args: &[&str]) -> String {
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let mount = LoopMount::new(dir.path(), IMAGE_SIZE_BYTES, mkfs_args).unwrap();
    let output = ringlog(&[
        "check-host",
        "--data-dir",
        mount.mount_point.to_str().unwrap(),
    ]);
    let text = text_of(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "warnings do not fail it: {text}"
    );
    text.lines()
        .find(|line| line.contains("  file system "))
        .unwrap_or_else(|| panic!("no file system line: {text}"))
        .to_owned()
}

// Checks that the file system check names ext4 and its device, passes an ext4 with a
// journal, and warns about one without (every fdatasync may write the inode too), with the
// remedy.
#[test]
fn warns_about_ext4_without_a_journal() {
    let journaled = file_system_line(&[]);
    assert!(journaled.starts_with("PASS"), "{journaled}");
    assert!(journaled.contains("ext4 (/dev/loop"), "{journaled}");
    assert!(journaled.contains("with a journal"), "{journaled}");
    let bare = file_system_line(&["-O", "^has_journal"]);
    assert!(bare.starts_with("WARN"), "{bare}");
    assert!(bare.contains("without a journal"), "{bare}");
    assert!(bare.contains("inode"), "{bare}");
    assert!(bare.contains("XFS"), "{bare}");
}
