//! WAL scenarios are wired by the WAL crate's author.
//!
//! Until then this placeholder measures nothing, so `ringlog-bench wal` reports the device
//! baselines alone.

use crate::baseline::Baselines;
use crate::options::WalOptions;
use crate::report::RunResult;

/// Runs every WAL scenario selected by `options` and returns one result per run, in order.
/// `progress` receives one human-readable line per step (printed to stderr).
pub fn run_wal_scenarios(
    options: &WalOptions,
    baselines: &Baselines,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<RunResult>> {
    let _ = (options, baselines, progress);
    Ok(Vec::new())
}
