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

/// What a row of the default mode waits for: acks=1 (the leader durable, whatever the topic's
/// ack mode), or acks=-1 under a topic ack mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModeName {
    /// acks=1.
    Acks1,
    /// acks=-1 on a topic with this ack mode.
    AckMode(AckModeName),
}

impl ModeName {
    /// The name in reports and on the command line: "acks=1", or the ack mode's.
    pub fn as_str(self) -> &'static str {
        match self {
            ModeName::Acks1 => "acks=1",
            ModeName::AckMode(ack_mode) => ack_mode.as_str(),
        }
    }

    /// The topic's ack mode: the mode's own, or `async` for acks=1 (which does not consult
    /// it; `async` is the mode that matches it).
    pub fn topic_ack_mode(self) -> AckModeName {
        match self {
            ModeName::Acks1 => AckModeName::Async,
            ModeName::AckMode(ack_mode) => ack_mode,
        }
    }

    /// The name's part of a topic name: "acks1", "semi-sync", ...
    pub fn topic_suffix(self) -> &'static str {
        match self {
            ModeName::Acks1 => "acks1",
            ModeName::AckMode(ack_mode) => ack_mode.as_str(),
        }
    }
}

impl fmt::Display for ModeName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// How the first run of each mode sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pacing {
    /// Open loop: records fall due at this total rate, and latency counts from the due time.
    FixedRate {
        /// Records per second over all producers.
        records_per_s: f64,
    },
    /// Closed loop: each producer sends when it has room (`in_flight_max`), latency from the
    /// send.
    ClosedLoop,
}

/// The shape of the load: what each request carries and how many may be outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadShape {
    /// Bytes of each record's value.
    pub payload_size_bytes: usize,
    /// Records per request (one batch).
    pub batch_records: usize,
    /// Requests outstanding per producer at most.
    pub in_flight_max: usize,
    /// Producers, each one thread and one connection.
    pub producers: usize,
    /// Partitions of every topic.
    pub partitions: i32,
}

/// A stop of the leader's process during each fixed-rate run (SIGSTOP, then SIGCONT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    /// When it starts, after the measured window's start.
    pub at: Duration,
    /// How long the leader stays stopped.
    pub length: Duration,
}

/// Options of the default mode (`scenario_runs::run_scenarios`).
#[derive(Clone, Debug)]
pub struct ScenarioOptions {
    /// Existing, empty-at-start directory the run owns (baseline files, local nodes' data).
    pub dir: PathBuf,
    /// The node binary of the local cluster; None with `target`.
    pub ringlog_bin: Option<PathBuf>,
    /// An existing cluster's Kafka addresses (the first bootstraps); None: a local cluster.
    pub target: Option<Vec<String>>,
    /// Write paths of the local clusters (one cluster each), in report order.
    pub write_paths: Vec<WritePathName>,
    /// Rows to measure, in report order, without duplicates.
    pub modes: Vec<ModeName>,
    /// The load's shape, the same for both runs of a mode.
    pub shape: LoadShape,
    /// How the first run of each mode sends.
    pub pacing: Pacing,
    /// Measured time of each run.
    pub duration: Duration,
    /// Unmeasured time at the start of each run.
    pub warmup: Duration,
    /// Segment size of the local nodes' logs.
    pub segment_size_bytes: u64,
    /// Retention limit of each partition log of the local nodes.
    pub retention_bytes: u64,
    /// Whether each mode has a saturation run too.
    pub saturation: bool,
    /// A stop of the leader during each fixed-rate run (local cluster only).
    pub stall: Option<Stall>,
}
