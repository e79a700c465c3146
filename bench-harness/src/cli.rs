//! Command-line flags, and their conversion into the option structs of `options.rs`.
//!
//! Flags that carry a quantity name its unit (`--duration-secs`), as STYLE.md §12 asks, so the
//! same names can be grepped in scripts, docs and code. Subcommands are variants of `Command`;
//! running with no subcommand is the default mode (`RunArgs`): every ack mode on a cluster.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::options::{
    AckModeName, LoadShape, ModeName, Pacing, ProduceOptions, ReplicatedOptions, ScenarioOptions,
    Stall, WalOptions, WritePathName,
};

/// Data directory used when `--dir` is not given, relative to the current directory.
pub const DATA_DIR_DEFAULT: &str = "ringlog-bench-data";

const WAL_DURATION_SECS_DEFAULT: u64 = 30;
const WAL_WARMUP_SECS_DEFAULT: u64 = 5;
const WAL_DURATION_SECS_QUICK: u64 = 2;
const WAL_WARMUP_SECS_QUICK: u64 = 1;

/// ringlog's benchmark harness: raw-device baselines and ringlog scenarios, measured in one
/// run and reported side by side as ratios.
///
/// Without a subcommand it measures the baselines, starts a local 3-node cluster (or uses
/// `--target`), and runs, for acks=1 and each ack mode, a fixed-rate open-loop run (with the
/// end-to-end latency through a follower) and a saturation run.
#[derive(Debug, Parser)]
#[command(
    name = "ringlog-bench",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to measure [default: every ack mode on a local cluster, see the flags below].
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Flags of the default mode (no subcommand).
    #[command(flatten)]
    pub run: RunArgs,
}

/// Default `--rate-records-per-sec`: what this 2-core machine sustains comfortably under
/// every ack mode (well under the slowest mode's saturated rate; see the README).
pub const RATE_RECORDS_PER_SEC_DEFAULT: u64 = 2000;
/// Default `--payload-size-bytes` of the default mode.
pub const PAYLOAD_SIZE_BYTES_DEFAULT: u64 = 1024;
/// Default `--duration-secs` of the default mode: ten runs of 1 + 6 s, the baselines and the
/// cluster's set-up stay under two minutes.
pub const RUN_DURATION_SECS_DEFAULT: u64 = 6;
/// Default `--warmup-secs` of the default mode.
pub const RUN_WARMUP_SECS_DEFAULT: u64 = 1;
/// Default `--segment-size-bytes` of the default mode's nodes (64 MiB): every partition of
/// every node pre-fills its first segment and a spare, so smaller segments start faster.
pub const RUN_SEGMENT_SIZE_BYTES_DEFAULT: u64 = 64 << 20;
/// Default `--retention-bytes` of the default mode's nodes (256 MiB: four segments).
pub const RUN_RETENTION_BYTES_DEFAULT: u64 = 256 << 20;
/// Largest `--batch-records`.
const BATCH_RECORDS_MAX: u64 = 4096;
/// Largest `--payload-size-bytes` (1 MiB: a record per Kafka's default message limit).
const PAYLOAD_SIZE_BYTES_MAX: u64 = 1 << 20;

/// Flags of the default mode (no subcommand): the load's shape, its pacing, the ack modes,
/// where the cluster is, and what to write.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// `--hgrm`, `--plot`, `--compare`.
    #[command(flatten)]
    pub outputs: OutputArgs,

    /// Data directory (baseline files and the local nodes' data), created if missing and
    /// removed at exit; it must be empty if it exists. Keep it on the file system to measure.
    #[arg(long, value_name = "DIR", default_value = DATA_DIR_DEFAULT)]
    pub dir: PathBuf,

    /// The `ringlog` binary to start as the nodes [default: `ringlog` next to this executable].
    #[arg(long, value_name = "FILE", conflicts_with = "target")]
    pub ringlog_bin: Option<PathBuf>,

    /// Run against this existing cluster instead of starting one (Kafka addresses,
    /// comma-separated; the first bootstraps). Topics named `ringlog-bench-*` are created
    /// there with the ack-mode configs, and deleted at the end.
    #[arg(long, value_name = "HOST:PORT,...")]
    pub target: Option<String>,

    /// Bytes of each record's value (the first 16 carry its due time and sequence).
    #[arg(long, value_name = "BYTES", default_value_t = PAYLOAD_SIZE_BYTES_DEFAULT,
          value_parser = clap::value_parser!(u64).range(16..=PAYLOAD_SIZE_BYTES_MAX))]
    pub payload_size_bytes: u64,

    /// Records per Produce request (one batch); in the open loop they fall due together.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=BATCH_RECORDS_MAX))]
    pub batch_records: u64,

    /// Produce requests in flight per producer at most.
    #[arg(long, value_name = "N", default_value_t = IN_FLIGHT_MAX_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub in_flight_max: u64,

    /// Open loop: records fall due at this fixed total rate, and each one's latency counts
    /// from its due time (coordinated omission corrected).
    #[arg(long, value_name = "N", conflicts_with = "closed_loop",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub rate_records_per_sec: Option<u64>,

    /// Closed loop instead of the fixed rate: each producer sends as fast as its answers come
    /// back (up to --in-flight-max outstanding), latency from the actual send.
    #[arg(long)]
    pub closed_loop: bool,

    /// Producers: each one thread and one connection; the rate is split between them.
    #[arg(long, value_name = "N", default_value_t = PRODUCERS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub producers: u64,

    /// Partitions of every topic; batches go round robin over them.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub partitions: u64,

    /// Measured seconds per run.
    #[arg(long, value_name = "N", default_value_t = RUN_DURATION_SECS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub duration_secs: u64,

    /// Unmeasured warm-up seconds at the start of each run.
    #[arg(long, value_name = "N", default_value_t = RUN_WARMUP_SECS_DEFAULT)]
    pub warmup_secs: u64,

    /// What the rows wait for, comma-separated, in this order: `acks=1`, or acks=-1 under a
    /// topic ack mode.
    #[arg(long, value_enum, value_name = "MODES", value_delimiter = ',',
          default_values_t = [ModeArg::Acks1, ModeArg::Async, ModeArg::SemiSync,
                              ModeArg::Quorum, ModeArg::Sync])]
    pub ack_modes: Vec<ModeArg>,

    /// Write path of the local nodes [default: direct]; `both` starts one cluster per path.
    #[arg(long, value_enum, conflicts_with = "target")]
    pub write_path: Option<WritePathArg>,

    /// Segment size of the local nodes' logs.
    #[arg(long, value_name = "BYTES", default_value_t = RUN_SEGMENT_SIZE_BYTES_DEFAULT)]
    pub segment_size_bytes: u64,

    /// Retention limit of each partition log of the local nodes.
    #[arg(long, value_name = "BYTES", default_value_t = RUN_RETENTION_BYTES_DEFAULT)]
    pub retention_bytes: u64,

    /// Leave out the saturation runs (tests).
    #[arg(long, hide = true)]
    pub skip_saturation: bool,

    /// Stop the leader (SIGSTOP) for this many ms during each fixed-rate run, then SIGCONT
    /// (tests of the coordinated-omission correction; local cluster only).
    #[arg(
        long,
        hide = true,
        value_name = "MS",
        requires = "stall_at_secs",
        conflicts_with = "target"
    )]
    pub stall_leader_ms: Option<u64>,

    /// When the stall starts, in seconds after the measured window starts.
    #[arg(long, hide = true, value_name = "N", requires = "stall_leader_ms")]
    pub stall_at_secs: Option<u64>,

    /// Print the planned duration of the run these flags describe, and exit.
    #[arg(long, hide = true)]
    pub print_plan: bool,
}

/// `--ack-modes` values of the default mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// acks=1: the leader alone durable, whatever the topic's ack mode.
    #[value(name = "acks=1", alias = "acks1")]
    Acks1,
    /// acks=-1 on an `async` topic: leader durable.
    Async,
    /// acks=-1 on a `semi-sync` topic: leader and one follower durable.
    SemiSync,
    /// acks=-1 on a `quorum` topic: a majority of the replicas durable.
    Quorum,
    /// acks=-1 on a `sync` topic: every ISR member durable.
    Sync,
}

impl ModeArg {
    /// The mode this value names.
    pub fn mode(self) -> ModeName {
        match self {
            ModeArg::Acks1 => ModeName::Acks1,
            ModeArg::Async => ModeName::AckMode(AckModeName::Async),
            ModeArg::SemiSync => ModeName::AckMode(AckModeName::SemiSync),
            ModeArg::Quorum => ModeName::AckMode(AckModeName::Quorum),
            ModeArg::Sync => ModeName::AckMode(AckModeName::Sync),
        }
    }
}

impl RunArgs {
    /// The scenarios' options, with the prepared (absolute) data directory and the located
    /// node binary (None with `--target`).
    pub fn to_options(&self, dir: PathBuf, ringlog_bin: Option<PathBuf>) -> ScenarioOptions {
        let mut modes: Vec<ModeName> = Vec::new();
        for mode in self.ack_modes.iter().map(|arg| arg.mode()) {
            if !modes.contains(&mode) {
                modes.push(mode);
            }
        }
        let pacing = if self.closed_loop {
            Pacing::ClosedLoop
        } else {
            let rate = self
                .rate_records_per_sec
                .unwrap_or(RATE_RECORDS_PER_SEC_DEFAULT);
            Pacing::FixedRate {
                records_per_s: rate as f64,
            }
        };
        let target = self.target.as_deref().map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|address| !address.is_empty())
                .map(str::to_owned)
                .collect()
        });
        let stall = self
            .stall_leader_ms
            .zip(self.stall_at_secs)
            .map(|(length_ms, at_secs)| Stall {
                at: Duration::from_secs(at_secs),
                length: Duration::from_millis(length_ms),
            });
        ScenarioOptions {
            dir,
            ringlog_bin,
            target,
            write_paths: self
                .write_path
                .unwrap_or(WritePathArg::Direct)
                .write_paths(),
            modes,
            shape: LoadShape {
                payload_size_bytes: to_usize(self.payload_size_bytes),
                batch_records: to_usize(self.batch_records),
                in_flight_max: to_usize(self.in_flight_max),
                producers: to_usize(self.producers),
                partitions: i32::try_from(self.partitions).expect("at most 1024"),
            },
            pacing,
            duration: Duration::from_secs(self.duration_secs),
            warmup: Duration::from_secs(self.warmup_secs),
            segment_size_bytes: self.segment_size_bytes,
            retention_bytes: self.retention_bytes,
            saturation: !self.skip_saturation,
            stall,
        }
    }
}

/// A flag's value as a count in memory; every such flag is range-checked far below usize.
fn to_usize(value: u64) -> usize {
    usize::try_from(value).expect("range-checked flag values fit in usize")
}

/// One benchmark family per subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The write-ahead log alone: device baselines, then WAL appends per write path.
    Wal(WalArgs),
    /// A `ringlog serve` node on loopback through the Rust client, beside the WAL-only runs
    /// and the device and loopback round-trip baselines.
    Produce(ProduceArgs),
    /// A static 3-node cluster on loopback (127.0.0.1-3) through the Rust client: acks=-1
    /// under each topic ack mode, beside the device and loopback round-trip baselines.
    Replicated(ReplicatedArgs),
    /// Compares two saved reports (`--json` files): the later one's ratios to the earlier.
    Compare(CompareArgs),
}

/// Flags of `ringlog-bench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The earlier report: the denominator of every ratio.
    #[arg(value_name = "EARLIER.json")]
    pub earlier: PathBuf,
    /// The later report.
    #[arg(value_name = "LATER.json")]
    pub later: PathBuf,
}

/// Output flags every measuring command takes, besides `--json`.
#[derive(Debug, Default, Args)]
pub struct OutputArgs {
    /// Also write each run's latency histogram as an HdrHistogram percentile distribution
    /// (`<scenario>-<path>[-<ack>]-<payload>.hgrm`, values in ms) into this directory.
    #[arg(long, value_name = "DIR")]
    pub hgrm: Option<PathBuf>,

    /// Also plot every run's latency by percentile, with the fdatasync (+ RTT) floor, as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Also print this run's ratios to an earlier report (a `--json` file), run by run.
    #[arg(long, value_name = "FILE.json")]
    pub compare: Option<PathBuf>,
}

impl OutputArgs {
    /// Whether any of these outputs was asked for.
    pub fn any(&self) -> bool {
        self.hgrm.is_some() || self.plot.is_some() || self.compare.is_some()
    }
}

/// Flags of `ringlog-bench replicated`: those of `produce` (whose runs it does not repeat),
/// and the ack modes to measure.
#[derive(Debug, Args)]
pub struct ReplicatedArgs {
    /// Flags shared with `produce`; `--write-path` defaults to `direct` here.
    #[command(flatten)]
    pub produce: ProduceArgs,

    /// Topic ack modes to measure with acks=-1, comma-separated, in this order.
    #[arg(long, value_enum, value_name = "MODES", value_delimiter = ',',
          default_values_t = [AckModeArg::Async, AckModeArg::SemiSync, AckModeArg::Quorum,
                              AckModeArg::Sync])]
    pub ack_modes: Vec<AckModeArg>,
}

impl ReplicatedArgs {
    /// The scenarios' options, with the prepared data directory and the located binary. One
    /// write path by default (`direct`): every write path adds a cluster's worth of runs.
    pub fn to_options(&self, dir: PathBuf, ringlog_bin: PathBuf) -> ReplicatedOptions {
        let mut produce = self.produce.to_options(dir, ringlog_bin);
        produce.wal.write_paths = self
            .produce
            .common
            .write_path
            .unwrap_or(WritePathArg::Direct)
            .write_paths();
        let mut ack_modes: Vec<AckModeName> = Vec::new();
        for ack_mode in self.ack_modes.iter().map(|arg| arg.name()) {
            if !ack_modes.contains(&ack_mode) {
                ack_modes.push(ack_mode);
            }
        }
        ReplicatedOptions { produce, ack_modes }
    }
}

/// `--ack-modes` values (a topic's `ack_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AckModeArg {
    /// Leader durable.
    Async,
    /// Leader and one follower durable.
    SemiSync,
    /// A majority of the replicas durable, leader included.
    Quorum,
    /// Every ISR member durable, ISR >= min_insync_replicas (2).
    Sync,
}

impl AckModeArg {
    /// The ack mode this value names.
    pub fn name(self) -> AckModeName {
        match self {
            AckModeArg::Async => AckModeName::Async,
            AckModeArg::SemiSync => AckModeName::SemiSync,
            AckModeArg::Quorum => AckModeName::Quorum,
            AckModeArg::Sync => AckModeName::Sync,
        }
    }
}

/// Flags of `ringlog-bench produce`: those of `wal` (which it runs too), and the node's.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Flags shared with `wal`.
    #[command(flatten)]
    pub common: WalArgs,

    /// The `ringlog` binary to start as the node [default: `ringlog` next to this executable].
    #[arg(long, value_name = "FILE")]
    pub ringlog_bin: Option<PathBuf>,

    /// Producers (one thread and one connection each) of the saturated run.
    #[arg(long, value_name = "N", default_value_t = PRODUCERS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub producers: u64,

    /// Produce requests in flight per connection in the saturated run.
    #[arg(long, value_name = "N", default_value_t = IN_FLIGHT_MAX_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub in_flight_max: u64,
}

/// Default `--producers`.
pub const PRODUCERS_DEFAULT: u64 = 4;
/// Default `--in-flight-max`.
pub const IN_FLIGHT_MAX_DEFAULT: u64 = 64;

impl ProduceArgs {
    /// The scenarios' options, with the prepared data directory and the located binary.
    pub fn to_options(&self, dir: PathBuf, ringlog_bin: PathBuf) -> ProduceOptions {
        let mut wal = self.common.to_options(dir);
        wal.saturated_1k = false;
        ProduceOptions {
            wal,
            ringlog_bin,
            producers: usize::try_from(self.producers).expect("at most 64"),
            in_flight_max: usize::try_from(self.in_flight_max).expect("at most 1024"),
        }
    }
}

/// Flags of `ringlog-bench wal`.
#[derive(Debug, Args)]
pub struct WalArgs {
    /// Short runs and fewer baseline samples; `wal` finishes in under a minute, `produce` in
    /// under 90 s, `replicated` in about a minute.
    #[arg(long)]
    pub quick: bool,

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// `--hgrm`, `--plot`, `--compare`.
    #[command(flatten)]
    pub outputs: OutputArgs,

    /// Data directory, created if missing and removed at exit; it must be empty if it exists.
    #[arg(long, value_name = "DIR", default_value = DATA_DIR_DEFAULT)]
    pub dir: PathBuf,

    /// Write path(s) to measure [default: both; `replicated`: direct].
    #[arg(long, value_enum)]
    pub write_path: Option<WritePathArg>,

    /// Measured seconds per run [default: 30, or 2 with --quick].
    #[arg(long, value_name = "N")]
    pub duration_secs: Option<u64>,

    /// Unmeasured warm-up seconds per run [default: 5, or 1 with --quick].
    #[arg(long, value_name = "N")]
    pub warmup_secs: Option<u64>,

    /// Segment size of the benchmark's logs.
    #[arg(long, value_name = "BYTES", default_value_t = SEGMENT_SIZE_BYTES_DEFAULT)]
    pub segment_size_bytes: u64,

    /// Retention limit of the saturated runs' logs: once they hold this much, every roll
    /// reuses the oldest segment file (the steady state that is measured).
    #[arg(long, value_name = "BYTES", default_value_t = RETENTION_BYTES_DEFAULT)]
    pub retention_bytes: u64,
}

/// Default `--segment-size-bytes` (256 MiB).
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 256 << 20;
/// Default `--retention-bytes` (1 GiB: four default segments).
pub const RETENTION_BYTES_DEFAULT: u64 = 1 << 30;

/// `--write-path` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WritePathArg {
    /// O_DIRECT through io_uring.
    Direct,
    /// mmap plus fdatasync.
    Mmap,
    /// Both, direct first.
    Both,
}

impl WritePathArg {
    /// The write paths this value selects, in report order.
    pub fn write_paths(self) -> Vec<WritePathName> {
        match self {
            WritePathArg::Direct => vec![WritePathName::Direct],
            WritePathArg::Mmap => vec![WritePathName::Mmap],
            WritePathArg::Both => vec![WritePathName::Direct, WritePathName::Mmap],
        }
    }
}

impl WalArgs {
    /// The scenarios' options, with `dir` replaced by the prepared (absolute) data directory.
    pub fn to_options(&self, dir: PathBuf) -> WalOptions {
        let (duration_secs_default, warmup_secs_default) = if self.quick {
            (WAL_DURATION_SECS_QUICK, WAL_WARMUP_SECS_QUICK)
        } else {
            (WAL_DURATION_SECS_DEFAULT, WAL_WARMUP_SECS_DEFAULT)
        };
        let duration_secs = self.duration_secs.unwrap_or(duration_secs_default);
        let warmup_secs = self.warmup_secs.unwrap_or(warmup_secs_default);
        WalOptions {
            dir,
            quick: self.quick,
            write_paths: self.write_path.unwrap_or(WritePathArg::Both).write_paths(),
            duration: Duration::from_secs(duration_secs),
            warmup: Duration::from_secs(warmup_secs),
            segment_size_bytes: self.segment_size_bytes,
            retention_bytes: self.retention_bytes,
            saturated_1k: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Parses real argument vectors and checks defaults, the quick-mode defaults and that
    // explicit flags win over both.
    #[test]
    fn wal_flags_and_defaults() {
        let cli = Cli::try_parse_from(["ringlog-bench", "wal"]).unwrap();
        let Some(Command::Wal(args)) = cli.command else {
            panic!("expected the wal subcommand");
        };
        assert_eq!(args.dir, PathBuf::from(DATA_DIR_DEFAULT));
        let options = args.to_options(PathBuf::from("/data"));
        assert_eq!(
            options.write_paths,
            [WritePathName::Direct, WritePathName::Mmap]
        );
        assert_eq!(options.duration, Duration::from_secs(30));
        assert_eq!(options.warmup, Duration::from_secs(5));
        assert!(!options.quick);

        let cli = Cli::try_parse_from([
            "ringlog-bench",
            "wal",
            "--quick",
            "--write-path",
            "mmap",
            "--warmup-secs",
            "0",
        ])
        .unwrap();
        let Some(Command::Wal(args)) = cli.command else {
            panic!("expected the wal subcommand");
        };
        let options = args.to_options(PathBuf::from("/data"));
        assert!(options.quick);
        assert_eq!(options.write_paths, [WritePathName::Mmap]);
        assert_eq!(options.duration, Duration::from_secs(2));
        assert_eq!(options.warmup, Duration::ZERO);
    }

    // `produce` takes the flags of `wal` and its own, and leaves out the saturated 1 KiB run.
    #[test]
    fn produce_flags_and_defaults() {
        let cli = Cli::try_parse_from([
            "ringlog-bench",
            "produce",
            "--quick",
            "--write-path",
            "direct",
            "--producers",
            "2",
        ])
        .unwrap();
        let Some(Command::Produce(args)) = cli.command else {
            panic!("expected the produce subcommand");
        };
        assert!(args.ringlog_bin.is_none());
        let options = args.to_options(PathBuf::from("/data"), PathBuf::from("/bin/ringlog"));
        assert!(options.wal.quick);
        assert!(!options.wal.saturated_1k);
        assert_eq!(options.wal.write_paths, [WritePathName::Direct]);
        assert_eq!(options.wal.duration, Duration::from_secs(2));
        assert_eq!(options.producers, 2);
        assert_eq!(options.in_flight_max, 64);
        assert!(Cli::try_parse_from(["ringlog-bench", "produce", "--in-flight-max", "0"]).is_err());
    }

    // `replicated` takes the flags of `produce`, measures `direct` only unless told otherwise,
    // and takes its ack modes in the given order, without duplicates.
    #[test]
    fn replicated_flags_and_defaults() {
        let parse = |extra: &[&str]| {
            let cli = Cli::try_parse_from(
                ["ringlog-bench", "replicated", "--quick"]
                    .iter()
                    .chain(extra),
            )
            .unwrap();
            let Some(Command::Replicated(args)) = cli.command else {
                panic!("expected the replicated subcommand");
            };
            args.to_options(PathBuf::from("/data"), PathBuf::from("/bin/ringlog"))
        };
        let options = parse(&[]);
        let every_mode = [
            AckModeName::Async,
            AckModeName::SemiSync,
            AckModeName::Quorum,
            AckModeName::Sync,
        ];
        assert_eq!(options.ack_modes, every_mode);
        assert_eq!(options.produce.wal.write_paths, [WritePathName::Direct]);
        assert_eq!(options.produce.wal.duration, Duration::from_secs(2));
        assert_eq!(options.produce.producers, 4);

        let options = parse(&["--ack-modes", "sync,semi-sync,sync", "--write-path", "mmap"]);
        assert_eq!(
            options.ack_modes,
            [AckModeName::Sync, AckModeName::SemiSync]
        );
        assert_eq!(options.produce.wal.write_paths, [WritePathName::Mmap]);
        assert!(
            Cli::try_parse_from(["ringlog-bench", "replicated", "--ack-modes", "all"]).is_err()
        );
    }

    // Every measuring subcommand and the default mode take the output flags; `compare` takes
    // two files.
    #[test]
    fn output_flags_and_compare() {
        for command in ["wal", "produce", "replicated"] {
            let cli = Cli::try_parse_from([
                "ringlog-bench",
                command,
                "--hgrm",
                "h",
                "--plot",
                "p.svg",
                "--compare",
                "old.json",
            ])
            .unwrap();
            let outputs = match cli.command {
                Some(Command::Wal(args)) => args.outputs,
                Some(Command::Produce(args)) => args.common.outputs,
                Some(Command::Replicated(args)) => args.produce.common.outputs,
                other => panic!("{command}: {other:?}"),
            };
            assert_eq!(outputs.hgrm, Some(PathBuf::from("h")));
            assert_eq!(outputs.plot, Some(PathBuf::from("p.svg")));
            assert_eq!(outputs.compare, Some(PathBuf::from("old.json")));
        }
        let cli = Cli::try_parse_from(["ringlog-bench", "--hgrm", "h", "--plot", "p.svg"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.outputs.hgrm, Some(PathBuf::from("h")));
        assert_eq!(cli.run.outputs.plot, Some(PathBuf::from("p.svg")));
        let cli = Cli::try_parse_from(["ringlog-bench", "compare", "a.json", "b.json"]).unwrap();
        let Some(Command::Compare(args)) = cli.command else {
            panic!("expected the compare subcommand");
        };
        assert_eq!(args.earlier, PathBuf::from("a.json"));
        assert_eq!(args.later, PathBuf::from("b.json"));
        assert!(Cli::try_parse_from(["ringlog-bench", "compare", "a.json"]).is_err());
    }

    #[test]
    fn rejects_unknown_write_path_and_allows_no_subcommand() {
        assert!(Cli::try_parse_from(["ringlog-bench", "wal", "--write-path", "aio"]).is_err());
        let cli = Cli::try_parse_from(["ringlog-bench"]).unwrap();
        assert!(cli.command.is_none());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
