//! What each subcommand's scenarios receive, already validated and independent of clap.
//!
//! The CLI (`cli.rs`) turns flags into these structs; scenario modules only ever see these.
//! Durations are `Duration` here: the `_secs` integers exist only on the command line.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A write path of the WAL (DESIGN.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WritePathName {
    /// O_DIRECT writes through io_uring, linked to fdatasync (the default path).
    Direct,
    /// memmap2-mapped segments plus fdatasync.
    Mmap,
}

impl WritePathName {
    /// The name used in reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            WritePathName::Direct => "direct",
            WritePathName::Mmap => "mmap",
        }
    }
}

impl fmt::Display for WritePathName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Options for the `wal` subcommand's scenarios (`wal_runs::run_wal_scenarios`).
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Existing, empty-at-start directory the scenarios own; the harness removes it at exit.
    pub dir: PathBuf,
    /// Short runs that keep the whole `wal --quick` under 60 s.
    pub quick: bool,
    /// Write paths to measure, in report order, without duplicates.
    pub write_paths: Vec<WritePathName>,
    /// Measured time of each run (after its warm-up).
    pub duration: Duration,
    /// Unmeasured time at the start of each run.
    pub warmup: Duration,
    /// Segment size of the benchmark's logs.
    pub segment_size_bytes: u64,
    /// Retention limit of the saturated runs' logs.
    pub retention_bytes: u64,
}
