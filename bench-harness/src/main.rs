//! `ringlog-bench`: measures the device and ringlog in one run and reports them as ratios.
//!
//! Each subcommand measures the raw-device baselines first (`baseline.rs`), then its
//! scenarios, in a data directory that is removed at exit, and prints a table (stdout) plus an
//! optional JSON report. Progress goes to stderr so that stdout holds only the report.
//! DESIGN.md §8 says what is measured and why; STYLE.md §12 how.
#![forbid(unsafe_code)]

mod baseline;
mod cleanup;
mod cli;
mod compare;
mod data_dir;
mod environment;
mod follower_fetch;
mod hgrm;
mod kafka_connection;
mod latency;
mod load_generator;
mod loopback;
mod options;
mod outputs;
mod plot;
mod produce_runs;
mod progress;
mod replicated_runs;
mod report;
mod scenario_runs;
mod server_process;
mod status_request;
mod steal;
mod table;
pub mod wal_runs;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::baseline::{measure_baselines, measure_concurrent_sync_4k, BaselinePlan, Baselines};
use crate::cli::{Cli, Command, OutputArgs, ProduceArgs, ReplicatedArgs, RunArgs, WalArgs};
use crate::data_dir::DataDir;
use crate::environment::Environment;
use crate::loopback::{measure_rtt, RttPlan, LARGE_MESSAGE_BYTES, SMALL_MESSAGE_BYTES};
use crate::options::{Pacing, ScenarioOptions, WalOptions};
use crate::progress::Progress;
use crate::report::Report;
use crate::steal::{steal_percent_since, CpuTimes};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // An interrupt must not leave nodes running or data behind (cleanup.rs).
    if let Err(error) = cleanup::install_signal_handler() {
        eprintln!("warning: {error:#}; an interrupt will leave the data directory behind");
    }
    let result = match cli.command {
        Some(Command::Wal(args)) => run_wal(&args),
        Some(Command::Produce(args)) => run_produce(&args),
        Some(Command::Replicated(args)) => run_replicated(&args),
        Some(Command::Compare(args)) => outputs::run_compare(&args),
        None => run_default(&cli.run),
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
    outputs::check_before_measuring(&args.outputs)?;
    let data_dir = DataDir::prepare(&args.dir)?;
    let report = measure_wal(args, data_dir.path())?;
    finish_with_outputs(report, data_dir, args.json.as_deref(), &args.outputs, "wal")
}

fn run_produce(args: &ProduceArgs) -> anyhow::Result<()> {
    outputs::check_before_measuring(&args.common.outputs)?;
    // A missing node binary fails the run before anything is measured.
    let ringlog_bin = server_process::locate_binary(args.ringlog_bin.as_deref())?;
    let data_dir = DataDir::prepare(&args.common.dir)?;
    let report = measure_produce(args, ringlog_bin, data_dir.path())?;
    let common = &args.common;
    finish_with_outputs(
        report,
        data_dir,
        common.json.as_deref(),
        &common.outputs,
        "produce",
    )
}

fn run_replicated(args: &ReplicatedArgs) -> anyhow::Result<()> {
    outputs::check_before_measuring(&args.produce.common.outputs)?;
    let ringlog_bin = server_process::locate_binary(args.produce.ringlog_bin.as_deref())?;
    let data_dir = DataDir::prepare(&args.produce.common.dir)?;
    let report = measure_replicated(args, ringlog_bin, data_dir.path())?;
    let common = &args.produce.common;
    finish_with_outputs(
        report,
        data_dir,
        common.json.as_deref(),
        &common.outputs,
        "replicated",
    )
}

/// The default mode: baselines, then every ack mode on a local cluster or `--target`.
fn run_default(args: &RunArgs) -> anyhow::Result<()> {
    if args.print_plan {
        let options = args.to_options(args.dir.clone(), None);
        let planned = scenario_runs::planned_duration(&options);
        println!("planned duration: {} s", planned.as_secs());
        return Ok(());
    }
    outputs::check_before_measuring(&args.outputs)?;
    let ringlog_bin = match &args.target {
        Some(_) => None,
        None => Some(server_process::locate_binary(args.ringlog_bin.as_deref())?),
    };
    let data_dir = DataDir::prepare(&args.dir)?;
    let options = args.to_options(data_dir.path().to_owned(), ringlog_bin);
    let progress = Progress::start(scenario_runs::planned_duration(&options));
    let report = measure_default(&options, &progress);
    progress.finish();
    let json = args.json.as_deref();
    finish_with_outputs(report?, data_dir, json, &args.outputs, "(every ack mode)")
}

fn measure_default(options: &ScenarioOptions, progress: &Progress) -> anyhow::Result<Report> {
    progress.line(&format!("data dir: {}", options.dir.display()));
    progress.line(&format!(
        "plan: about {} s: baselines, then per ack mode ({}) a {} run{} of {} s + {} s warm-up",
        scenario_runs::planned_duration(options).as_secs(),
        options
            .modes
            .iter()
            .map(|mode| mode.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        match options.pacing {
            Pacing::FixedRate { records_per_s } => {
                format!("{records_per_s:.0} records/s open-loop")
            }
            Pacing::ClosedLoop => "closed-loop".to_owned(),
        },
        if options.saturation {
            " and a saturation run"
        } else {
            ""
        },
        options.duration.as_secs(),
        options.warmup.as_secs()
    ));
    let environment = Environment::collect(&options.dir);
    progress.phase("baselines");
    let mut baselines =
        measure_network_baselines(&options.dir, true, &mut |line| progress.line(line))?;
    if options.target.is_none() {
        measure_concurrent_sync_4k(
            &options.dir,
            BaselinePlan::QUICK,
            u64::from(scenario_runs::NODE_COUNT),
            &mut baselines,
            &mut |line| progress.line(line),
        )?;
    }
    let results = scenario_runs::run_scenarios(options, progress)?;
    let mut report = Report::new(environment, baselines, results.runs);
    report.cluster = Some(results.cluster);
    report.load = Some(load_json(options));
    Ok(report)
}

/// The load's shape and pacing, for the report's `load`.
fn load_json(options: &ScenarioOptions) -> serde_json::Value {
    let shape = options.shape;
    let rate = match options.pacing {
        Pacing::FixedRate { records_per_s } => Some(records_per_s),
        Pacing::ClosedLoop => None,
    };
    serde_json::json!({
        "payload_size_bytes": shape.payload_size_bytes,
        "batch_records": shape.batch_records,
        "in_flight_max": shape.in_flight_max,
        "producers": shape.producers,
        "partitions": shape.partitions,
        "rate_records_per_s": rate,
        "closed_loop": rate.is_none(),
        "duration_secs": options.duration.as_secs(),
        "warmup_secs": options.warmup.as_secs(),
        "ack_modes": options.modes.iter().map(|mode| mode.as_str()).collect::<Vec<_>>(),
        "saturation": options.saturation,
    })
}

/// `finish`, then the outputs of `--hgrm`, `--plot` and `--compare` (`outputs.rs`), which
/// come after the table and the JSON. `finish` consumes the report, so it is cloned for them
/// (its histograms are about 140 KB each) when any of those flags is given.
fn finish_with_outputs(
    report: Report,
    data_dir: DataDir,
    json: Option<&Path>,
    outputs: &OutputArgs,
    command: &str,
) -> anyhow::Result<()> {
    let kept = outputs.any().then(|| report.clone());
    finish(report, data_dir, json)?;
    match kept {
        Some(report) => outputs::write(&report, outputs, command),
        None => Ok(()),
    }
}

/// Removes the data, prints the table and writes the JSON.
fn finish(report: Report, data_dir: DataDir, json: Option<&Path>) -> anyhow::Result<()> {
    // Remove the data before writing the report, so a full disk cannot keep it around.
    data_dir.finish()?;
    print!("{}", table::render(&report));
    if let Some(path) = json {
        write_json(&report, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn measure_produce(
    args: &ProduceArgs,
    ringlog_bin: std::path::PathBuf,
    dir: &Path,
) -> anyhow::Result<Report> {
    let mut progress = |line: &str| eprintln!("{line}");
    let environment = Environment::collect(dir);
    let options = args.to_options(dir.to_owned(), ringlog_bin);
    let baselines = measure_network_baselines(dir, options.wal.quick, &mut progress)?;
    progress_plan("produce", &options.wal, &mut progress);
    let mut runs = wal_runs::run_wal_scenarios(&options.wal, &baselines, &mut progress)?;
    runs.extend(produce_runs::run_produce_scenarios(
        &options,
        &mut progress,
    )?);
    Ok(Report::new(environment, baselines, runs))
}

fn measure_replicated(
    args: &ReplicatedArgs,
    ringlog_bin: std::path::PathBuf,
    dir: &Path,
) -> anyhow::Result<Report> {
    let mut progress = |line: &str| eprintln!("{line}");
    let environment = Environment::collect(dir);
    let options = args.to_options(dir.to_owned(), ringlog_bin);
    let mut baselines = measure_network_baselines(dir, options.produce.wal.quick, &mut progress)?;
    measure_concurrent_sync_4k(
        dir,
        BaselinePlan::for_mode(options.produce.wal.quick),
        u64::from(replicated_runs::NODE_COUNT),
        &mut baselines,
        &mut progress,
    )?;
    progress_plan("replicated", &options.produce.wal, &mut progress);
    let ack_modes: Vec<&str> = options.ack_modes.iter().map(|mode| mode.as_str()).collect();
    progress(&format!(
        "replicated: ack modes {} (acks=-1), and acks=1 for reference",
        ack_modes.join(", ")
    ));
    let runs = replicated_runs::run_replicated_scenarios(&options, &mut progress)?;
    Ok(Report::new(environment, baselines, runs))
}

/// The device baselines plus the loopback round trips of 64 B and 1 KiB, for the subcommands
/// whose runs go through the network.
fn measure_network_baselines(
    dir: &Path,
    quick: bool,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Baselines> {
    let started = CpuTimes::now();
    let mut baselines = measure_baselines(dir, BaselinePlan::for_mode(quick), progress)?;
    let rtt_plan = RttPlan::for_mode(quick);
    let small = measure_rtt(SMALL_MESSAGE_BYTES, rtt_plan)?;
    let large = measure_rtt(LARGE_MESSAGE_BYTES, rtt_plan)?;
    progress(&format!(
        "baseline: loopback TCP RTT QD1: 64 B p50 {} µs, 1 KiB p50 {} µs",
        small.latency_us.p50, large.latency_us.p50
    ));
    baselines.loopback_rtt_64b_us = Some(small.latency_us);
    baselines.loopback_rtt_1k_us = Some(large.latency_us);
    baselines.loopback_rtt_sample_count = Some(small.sample_count.min(large.sample_count));
    baselines.steal_percent = steal_percent_since(started);
    Ok(baselines)
}

fn progress_plan(command: &str, options: &WalOptions, progress: &mut dyn FnMut(&str)) {
    let write_paths: Vec<&str> = options
        .write_paths
        .iter()
        .map(|path| path.as_str())
        .collect();
    progress(&format!(
        "{command}: write paths {}, {} s measured + {} s warm-up per run{}, in {}",
        write_paths.join(", "),
        options.duration.as_secs(),
        options.warmup.as_secs(),
        if options.quick { " (quick)" } else { "" },
        options.dir.display()
    ));
}

fn measure_wal(args: &WalArgs, dir: &Path) -> anyhow::Result<Report> {
    let mut progress = |line: &str| eprintln!("{line}");
    let environment = Environment::collect(dir);
    let plan = BaselinePlan::for_mode(args.quick);
    let baselines = measure_baselines(dir, plan, &mut progress)?;
    let options = args.to_options(dir.to_owned());
    progress_plan("wal", &options, &mut progress);
    let runs = wal_runs::run_wal_scenarios(&options, &baselines, &mut progress)?;
    Ok(Report::new(environment, baselines, runs))
}

fn write_json(report: &Report, path: &Path) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = BufWriter::new(file);
    serde_json::to_writer_pretty(&mut writer, &report.to_json())
        .and_then(|()| writeln!(writer).map_err(serde_json::Error::io))
        .and_then(|()| writer.flush().map_err(serde_json::Error::io))
        .with_context(|| format!("writing {}", path.display()))
}
