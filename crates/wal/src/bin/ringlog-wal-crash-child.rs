//! Child process of the crash test (`tests/crash.rs`): opens a partition log, appends
//! deterministic batches in bursts, and prints `durable <offset>` on stdout each time the
//! durable end moves, until the parent kills it with SIGKILL (or a bound is reached).
//!
//! Usage: `ringlog-wal-crash-child <data_dir> <direct|mmap> <seed>`

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ringlog_types::Epoch;
use ringlog_wal::testing::{batch_for, crash_config, TestRng};
use ringlog_wal::{Error, Wal, WritePath};

/// The child stops by itself after this long or this many batches, if never killed.
const RUN_DURATION_MAX: Duration = Duration::from_secs(60);
const BATCHES_MAX: u64 = 200_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        bail!("usage: ringlog-wal-crash-child <data_dir> <direct|mmap> <seed>");
    }
    let write_path = WritePath::parse(&args[2]).context("write path is direct or mmap")?;
    let seed: u64 = args[3].parse().context("seed is a number")?;
    let config = crash_config(std::path::Path::new(&args[1]), write_path);
    let mut wal = Wal::new(config)?;
    let partition = wal.open_partition("crash-0")?;
    let mut rng = TestRng::new(seed);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "open {}", wal.ends(partition)?.durable_end.0)?;
    stdout.flush()?;
    let started = Instant::now();
    let mut appended = 0;
    while appended < BATCHES_MAX && started.elapsed() < RUN_DURATION_MAX {
        for _ in 0..rng.range(1, 12) {
            let base = wal.ends(partition)?.log_end.0;
            match wal.append(partition, &batch_for(base, rng.range(1, 9)), Epoch(1)) {
                Ok(_) => appended += 1,
                Err(Error::Backpressure { .. }) => break,
                Err(error) => return Err(error.into()),
            }
        }
        wal.wait()?;
        for (_, durable_end) in wal.drain_durable_events() {
            writeln!(stdout, "durable {}", durable_end.0)?;
        }
        stdout.flush()?;
    }
    Ok(())
}
