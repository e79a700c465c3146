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
    /// Retention limit of the saturated runs' logs, and of the `produce` node's partitions.
    pub retention_bytes: u64,
    /// Whether to run the saturated 1 KiB-batch shape too (the per-batch CPU cost); the
    /// `produce` subcommand leaves it out, as no produce run is compared with it.
    pub saturated_1k: bool,
}

/// Options for the `produce` subcommand's scenarios (`produce_runs::run_produce_scenarios`).
#[derive(Clone, Debug)]
pub struct ProduceOptions {
    /// The WAL-only runs measured beside the produce runs, and what both share: data
    /// directory, write paths, durations, segment size and retention limit.
    pub wal: WalOptions,
    /// The `ringlog` binary started as the node (`server_process::locate_binary`).
    pub ringlog_bin: PathBuf,
    /// Producers (each one connection, one thread) of the saturated run.
    pub producers: usize,
    /// Produce requests in flight per connection in the saturated run.
    pub in_flight_max: usize,
}

/// A topic's `ack_mode`: what a produce with acks=-1 waits for (DESIGN.md section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AckModeName {
    /// The leader's fdatasync completed.
    Async,
    /// The leader and `semi_sync_replicas` (default 1) followers are durable.
    SemiSync,
    /// A majority of the replicas, leader included, are durable.
    Quorum,
    /// Every ISR member is durable, and the ISR has at least `min_insync_replicas` members.
    Sync,
}

impl AckModeName {
    /// The name of the topic config value, used in reports and on the command line too.
    pub fn as_str(self) -> &'static str {
        match self {
            AckModeName::Async => "async",
            AckModeName::SemiSync => "semi-sync",
            AckModeName::Quorum => "quorum",
            AckModeName::Sync => "sync",
        }
    }
}

impl fmt::Display for AckModeName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Options for the `replicated` subcommand's scenarios
/// (`replicated_runs::run_replicated_scenarios`).
#[derive(Clone, Debug)]
pub struct ReplicatedOptions {
    /// What the cluster's runs share with `produce`: data directory, write paths, durations,
    /// segment size, retention limit, the node binary, producers and requests in flight of
    /// the saturated run. `produce.wal` runs no WAL-only scenario here.
    pub produce: ProduceOptions,
    /// Ack modes to measure, in report order, without duplicates.
    pub ack_modes: Vec<AckModeName>,
}
