//! `ringlog check-host` on the two kinds of data directory this machine has: ext4 under
//! /tmp (O_DIRECT available) and tmpfs under /dev/shm (no O_DIRECT).

#![allow(clippy::unwrap_used, clippy::expect_used)] // In tests a panic is the failure report.

mod common;

use std::fs;

use common::{ringlog, text_of};

// Checks that a data directory on ext4 (/tmp here, kernel 6.18) passes every check that
// can fail (exit 0), that both write paths made a test commit, and that the checks leave
// nothing behind in the directory.
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
