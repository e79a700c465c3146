//! `ringlog-bench`: measures the device and ringlog in one run and reports them as ratios.
//!
//! Each subcommand measures the raw-device baselines first (`baseline.rs`), then its
//! scenarios, in a data directory that is removed at exit, and prints a table (stdout) plus an
//! optional JSON report. Progress goes to stderr so that stdout holds only the report.
//! DESIGN.md §8 says what is measured and why; STYLE.md §12 how.
#![forbid(unsafe_code)]

mod baseline;
mod cli;
mod data_dir;
mod environment;
mod latency;
mod options;
mod report;
mod table;
pub mod wal_runs;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::baseline::{measure_baselines, BaselinePlan};
use crate::cli::{Cli, Command, WalArgs};
use crate::data_dir::DataDir;
use crate::environment::Environment;
use crate::report::Report;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Wal(args)) => run_wal(&args),
        None => Err(anyhow::anyhow!(
            "no subcommand given; the default mode (every scenario) is not built yet, \
             run `ringlog-bench wal` (see --help)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_wal(args: &WalArgs) -> anyhow::Result<()> {
    let data_dir = DataDir::prepare(&args.dir)?;
    let report = measure_wal(args, data_dir.path())?;
    // Remove the data before writing the report, so a full disk cannot keep it around.
    data_dir.finish()?;
    print!("{}", table::render(&report));
    if let Some(path) = &args.json {
        write_json(&report, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn measure_wal(args: &WalArgs, dir: &Path) -> anyhow::Result<Report> {
    let mut progress = |line: &str| eprintln!("{line}");
    let environment = Environment::collect(dir);
    let plan = BaselinePlan::for_mode(args.quick);
    let baselines = measure_baselines(dir, plan, &mut progress)?;
    let options = args.to_options(dir.to_owned());
    let write_paths: Vec<&str> = options
        .write_paths
        .iter()
        .map(|path| path.as_str())
        .collect();
    progress(&format!(
        "wal: write paths {}, {} s measured + {} s warm-up per run{}, in {}",
        write_paths.join(", "),
        options.duration.as_secs(),
        options.warmup.as_secs(),
        if options.quick { " (quick)" } else { "" },
        options.dir.display()
    ));
    let runs = wal_runs::run_wal_scenarios(&options, &baselines, &mut progress)?;
    Ok(Report {
        environment,
        baselines,
        runs,
    })
}

fn write_json(report: &Report, path: &Path) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut writer, &report.to_json())
        .and_then(|()| writeln!(writer).map_err(serde_json::Error::io))
        .and_then(|()| writer.flush().map_err(serde_json::Error::io))
        .with_context(|| format!("writing {}", path.display()))
}
