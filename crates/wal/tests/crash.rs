//! Crash test with real processes, on both write paths: a child process appends and prints
//! every durable end; the parent SIGKILLs it at a random moment, reopens the log, and checks
//! that every offset the child reported durable is there with identical bytes, that offsets
//! are contiguous, and that the next child appends from where the log ends.
//!
//! The log keeps three segments, so most rounds run on recycled segment files.
//!
//! `RINGLOG_CRASH_ROUNDS` sets the rounds per write path (default 50);
//! `RINGLOG_CRASH_SEED` replays a failing run (the seed is printed).

#![allow(clippy::unwrap_used, clippy::expect_used)] // In tests a panic is the failure report.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::verify_log;
use ringlog_types::Offset;
use ringlog_wal::testing::{crash_config, TestRng};
use ringlog_wal::{Wal, WritePath};

const ROUND_DURATION_MAX: Duration = Duration::from_secs(60);

fn rounds() -> u64 {
    std::env::var("RINGLOG_CRASH_ROUNDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(50)
}

fn seed() -> u64 {
    std::env::var("RINGLOG_CRASH_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |elapsed| u64::from(elapsed.subsec_nanos()))
        })
}

fn spawn_child(dir: &std::path::Path, write_path: WritePath, seed: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ringlog-wal-crash-child"))
        .arg(dir)
        .arg(write_path.name())
        .arg(seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the crash child")
}

/// Runs one child until it has reported `reports` durable ends, kills it, and returns the
/// greatest durable end it reported and the log end it found at open.
fn run_round(child: &mut Child, reports: u64) -> (Offset, Offset) {
    let started = Instant::now();
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let opened = lines
        .next()
        .expect("the child reports its open")
        .expect("utf-8");
    let opened_at = Offset(
        opened
            .strip_prefix("open ")
            .expect("open line")
            .parse()
            .expect("number"),
    );
    let mut durable = opened_at;
    let mut seen = 0;
    for line in lines {
        let line = line.expect("utf-8 line");
        let value: u64 = line
            .strip_prefix("durable ")
            .expect("durable line")
            .parse()
            .expect("number");
        assert!(Offset(value) >= durable, "durable ends only grow");
        durable = Offset(value);
        seen += 1;
        if seen >= reports {
            break;
        }
        assert!(
            started.elapsed() < ROUND_DURATION_MAX,
            "a round took longer than 60 s"
        );
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    (durable, opened_at)
}

fn crash_rounds(write_path: WritePath) {
    let seed = seed();
    let rounds = rounds();
    println!(
        "crash test: write_path={} seed={seed} rounds={rounds}",
        write_path.name()
    );
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("RINGLOG_CRASH_KEEP").is_some() {
        println!("keeping the data directory {}", dir.path().display());
    }
    let dir = KeptDir(Some(dir));
    let mut rng = TestRng::new(seed);
    let mut last_end = Offset(0);
    let mut log_start = Offset(0);
    for round in 0..rounds {
        let mut child = spawn_child(dir.path(), write_path, rng.next_u64());
        let (reported, opened_at) = run_round(&mut child, rng.range(1, 40));
        assert_eq!(
            opened_at, last_end,
            "round {round}: the child reopened where the log ended"
        );
        let mut wal = Wal::new(crash_config(dir.path(), write_path)).unwrap();
        let partition = wal.open_partition("crash-0").unwrap();
        let end = verify_log(&mut wal, partition);
        log_start = wal.ends(partition).unwrap().log_start;
        assert!(
            end >= reported,
            "round {round} (seed {seed}): reported durable {reported}, found only {end}"
        );
        last_end = end;
    }
    assert!(last_end > Offset(0), "the children appended something");
    if rounds >= 50 {
        assert!(
            log_start > Offset(0),
            "the log reached its retention limit: files were reused"
        );
    }
}

/// A temporary directory that `RINGLOG_CRASH_KEEP` keeps, for looking at a failure.
struct KeptDir(Option<tempfile::TempDir>);

impl KeptDir {
    fn path(&self) -> &std::path::Path {
        self.0.as_ref().expect("present until drop").path()
    }
}

impl Drop for KeptDir {
    fn drop(&mut self) {
        if std::env::var_os("RINGLOG_CRASH_KEEP").is_some() {
            if let Some(dir) = self.0.take() {
                let _ = dir.keep();
            }
        }
    }
}

/// SIGKILL rounds on the O_DIRECT path.
#[test]
fn sigkill_loses_nothing_acknowledged_direct() {
    crash_rounds(WritePath::Direct);
}

/// SIGKILL rounds on the mmap path.
#[test]
fn sigkill_loses_nothing_acknowledged_mmap() {
    crash_rounds(WritePath::Mmap);
}
