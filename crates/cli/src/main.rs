//! `ringlog`: the command-line tool of ringlog.
//!
//! What it owns: argument parsing (`cli.rs`), the offline tools for partition logs on disk
//! (`ringlog wal inspect|verify`: `partition_scan.rs` reads, `wal_verify.rs` judges,
//! `wal_inspect.rs` and `wal_json.rs` report) and the host checks (`check_host.rs`). What it
//! does not own: the on-disk format and the recovery rules (`ringlog-wal`, whose public scanner
//! this tool runs, so that it judges a log exactly as the server's open would), and the
//! server itself (`serve`, `produce`, `consume`, `topics` and `status` will be further
//! command groups).
//!
//! The `wal` commands never modify anything: files are opened read-only and nothing is
//! synced, truncated or rewritten, so they are safe on a partition a server holds open.
//!
//! Exit codes: 0 when all is well; 1 when a check found something wrong (corruption, an
//! inconsistency, a failed host check); 2 on usage and I/O errors.
//!
//! ```text
//! ringlog wal verify /var/lib/ringlog/orders-0
//! ringlog wal inspect --batches --json /var/lib/ringlog
//! ringlog check-host --data-dir /var/lib/ringlog
//! ```
#![forbid(unsafe_code)]

mod check_host;
mod cli;
mod consume;
mod partition_scan;
mod produce;
mod serve;
mod status;
mod topics;
mod wal_inspect;
mod wal_json;
mod wal_verify;

use std::io::{self, BufWriter, StdoutLock, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, InspectArgs, VerifyArgs, WalCommand, WalTarget};
use crate::partition_scan::{find_partitions, scan_partition, PartitionScan};

/// Exit code when a check found something wrong.
const EXIT_FINDINGS: u8 = 1;
/// Exit code on usage and I/O errors (clap uses it for usage errors too).
const EXIT_ERROR: u8 = 2;

/// How a command ended, when it could run at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Nothing wrong found.
    Clean,
    /// Something wrong found and reported.
    Findings,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = ReportOutput::new();
    let result = match &cli.command {
        Command::Wal(WalCommand::Inspect(args)) => run_inspect(args, &mut out),
        Command::Wal(WalCommand::Verify(args)) => run_verify(args, &mut out),
        Command::Serve(args) => serve::run(args).map(|()| Outcome::Clean),
        Command::Produce(args) => produce::run(args).map(|count| {
            eprintln!("produced {count} record(s)");
            Outcome::Clean
        }),
        Command::Consume(args) => consume::run(args, &mut out).map(|()| Outcome::Clean),
        Command::Topics(command) => topics::run(command, &mut out).map(|()| Outcome::Clean),
        Command::Status(args) => status::run(args, &mut out).map(|()| Outcome::Clean),
        Command::CheckHost(args) => check_host::run(args, &mut out).map(|passed| {
            if passed {
                Outcome::Clean
            } else {
                Outcome::Findings
            }
        }),
    };
    let result = result.and_then(|outcome| {
        out.flush()?;
        Ok(outcome)
    });
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(EXIT_FINDINGS),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Reads every partition `target` designates.
fn scan_target(target: &WalTarget) -> anyhow::Result<Vec<PartitionScan>> {
    find_partitions(&target.dir)?
        .iter()
        .map(|dir| scan_partition(dir, target.commit_bytes_max))
        .collect()
}

fn run_inspect(args: &InspectArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let scans = scan_target(&args.target)?;
    if args.target.json {
        let summary = wal_json::Summary {
            command: "inspect",
            ok: None,
            partitions: scans
                .iter()
                .map(|scan| wal_json::partition_summary(scan, None))
                .collect(),
        };
        print_json(out, &summary)?;
    } else {
        for scan in &scans {
            wal_inspect::print_partition(out, scan, args.batches)?;
        }
    }
    Ok(Outcome::Clean)
}

fn run_verify(args: &VerifyArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let scans = scan_target(&args.target)?;
    let findings: Vec<_> = scans.iter().map(wal_verify::verify_partition).collect();
    let problems_count: usize = findings.iter().map(|found| found.problems.len()).sum();
    if args.target.json {
        let summary = wal_json::Summary {
            command: "verify",
            ok: Some(problems_count == 0),
            partitions: scans
                .iter()
                .zip(&findings)
                .map(|(scan, found)| wal_json::partition_summary(scan, Some(found)))
                .collect(),
        };
        print_json(out, &summary)?;
    } else {
        for (scan, found) in scans.iter().zip(&findings) {
            wal_verify::print_partition(out, scan, found)?;
        }
        writeln!(
            out,
            "verified {} partition(s): {}",
            scans.len(),
            match problems_count {
                0 => "no problem found".to_string(),
                count => format!("{count} problem(s) found"),
            }
        )?;
    }
    Ok(if problems_count == 0 {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

fn print_json(out: &mut dyn Write, summary: &wal_json::Summary) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, summary)?;
    writeln!(out)?;
    Ok(())
}

/// Standard output for reports. Once its reader has gone away (`ringlog wal inspect
/// --batches | head`) it drops what is written instead of failing, so that the exit code
/// still says what was found, and no report ends in a panic.
struct ReportOutput {
    inner: BufWriter<StdoutLock<'static>>,
    reader_gone: bool,
}

impl ReportOutput {
    fn new() -> ReportOutput {
        ReportOutput {
            inner: BufWriter::new(io::stdout().lock()),
            reader_gone: false,
        }
    }

    fn unless_reader_gone<T>(&mut self, result: io::Result<T>, gone: T) -> io::Result<T> {
        match result {
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                self.reader_gone = true;
                Ok(gone)
            }
            other => other,
        }
    }
}

impl Write for ReportOutput {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.reader_gone {
            return Ok(bytes.len());
        }
        let result = self.inner.write(bytes);
        self.unless_reader_gone(result, bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.reader_gone {
            return Ok(());
        }
        let result = self.inner.flush();
        self.unless_reader_gone(result, ())
    }
}
