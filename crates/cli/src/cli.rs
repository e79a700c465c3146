//! Command-line flags of `ringlog`.
//!
//! One variant of [`Command`] per command group. The server commands (`serve`, `produce`,
//! `consume`, `topics`, `status`) are added here as further variants when they exist; each
//! group owns its flags in its own `Args` struct, so adding one touches nothing else. Flags
//! use the code's names with their unit (`--commit-bytes-max`, `--data-dir`), as STYLE.md
//! section 3 asks, so that docs, scripts and code can be grepped for the same name.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ringlog_types::units::MIB;

/// Largest commit assumed by the offline scan when `--commit-bytes-max` is not given: the
/// default `tail_chunk_bytes` of the partition log (`WalConfig::new`).
pub const COMMIT_BYTES_MAX_DEFAULT: u64 = 4 * MIB;

/// ringlog: a replicated log server on io_uring.
#[derive(Debug, Parser)]
#[command(name = "ringlog", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Offline tools for partition logs on disk (read-only; safe next to a running server).
    #[command(subcommand)]
    Wal(WalCommand),
    /// Checks that this host can run ringlog: kernel, io_uring, O_DIRECT, mmap, memlock,
    /// fdatasync latency.
    ///
    /// Prints one line per check (PASS, WARN or FAIL, with what to do). Exit code: 0 if no
    /// check failed, 1 if one did, 2 if the data directory cannot be used at all. The
    /// default write path is `direct`, so a data directory without O_DIRECT (tmpfs) fails
    /// even though `--write-path mmap` works there; the output says so.
    CheckHost(CheckHostArgs),
    /// Runs a ringlog node: Kafka clients connect to `--listen`, `/metrics` and `/health`
    /// answer on `--http-listen`. Stops cleanly on SIGTERM or SIGINT.
    ///
    /// Settings come from `--config FILE` (TOML, every key optional; docs/server.md lists
    /// them), then these flags, which override the file.
    Serve(ServeArgs),
    /// Sends records to a partition: one per line of standard input, or `--count`
    /// generated ones. Exit code 2 if any record is not acknowledged.
    Produce(crate::produce::ProduceArgs),
    /// Prints the records of a partition, one value (or `key<TAB>value`) per line, from
    /// `--from` to the end, or on and on with `--follow`.
    Consume(crate::consume::ConsumeArgs),
    /// Creates, lists and deletes topics.
    #[command(subcommand)]
    Topics(crate::topics::TopicsCommand),
    /// Prints the cluster's state: per partition and node, role, epoch, log end, durable
    /// end, high watermark, ISR and each follower's lag.
    Status(crate::status::StatusArgs),
}

/// Flags of `ringlog serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the partition logs and the topic registry.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the Kafka-protocol listener.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Address of the HTTP control plane (`/metrics`, `/health`).
    #[arg(long, value_name = "HOST:PORT")]
    pub http_listen: Option<std::net::SocketAddr>,
    /// Shard threads, each pinned to a CPU and owning a share of the partitions (default 1;
    /// docs/server.md#shards says how to choose).
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,
    /// How commits reach the disk: `direct` (O_DIRECT) or `mmap` (tmpfs and file systems
    /// without O_DIRECT).
    #[arg(long, value_name = "PATH", value_parser = ["direct", "mmap"])]
    pub write_path: Option<String>,
    /// Segment bytes each partition keeps at most; beyond it a roll reuses the oldest
    /// segment's file (default: no limit, the log grows).
    #[arg(long, value_name = "BYTES")]
    pub retention_bytes: Option<u64>,
}

/// `ringlog wal ...`: read partition directories without changing a byte.
#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// Prints what a partition log holds: segments with their headers and recovery verdicts,
    /// the epoch history, the index files, the log's ends.
    ///
    /// Exit code: 0 when everything could be read (whatever it holds), 2 on usage or I/O
    /// errors. Use `ringlog wal verify` to judge the log.
    Inspect(InspectArgs),
    /// Checks a partition log: every batch's CRC32C, offset continuity across segments,
    /// recovery verdicts, index files and the epoch checkpoint.
    ///
    /// Exit code: 0 if the log is consistent (a torn tail is not corruption: it is cut at the
    /// next open), 1 if anything is corrupt or inconsistent (each finding names its file and
    /// position), 2 on usage or I/O errors.
    Verify(VerifyArgs),
}

/// What both `wal` commands read.
#[derive(Debug, Args)]
pub struct WalTarget {
    /// A partition directory (`<data_dir>/<topic>-<partition>/`, holding `*.log` segments)
    /// or a data directory, whose partition directories are all read.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Largest commit the server wrote, in bytes (its `tail_chunk_bytes`): how far past the
    /// data a torn last commit can reach. Damage farther away is corruption.
    #[arg(long, value_name = "BYTES", default_value_t = COMMIT_BYTES_MAX_DEFAULT)]
    pub commit_bytes_max: u64,

    /// Print a machine-readable JSON summary instead of text (every batch with its base
    /// offset, record count and CRC field, for comparing replicas).
    #[arg(long)]
    pub json: bool,
}

/// Flags of `ringlog wal inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// What to read.
    #[command(flatten)]
    pub target: WalTarget,

    /// List every batch: offset range, position, size, epoch, max timestamp, CRC.
    #[arg(long)]
    pub batches: bool,
}

/// Flags of `ringlog wal verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// What to read.
    #[command(flatten)]
    pub target: WalTarget,
}

/// Flags of `ringlog check-host`.
#[derive(Debug, Args)]
pub struct CheckHostArgs {
    /// The data directory to check (it must exist). The checks write only inside a
    /// temporary entry of it, removed before exiting.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub data_dir: PathBuf,
}
