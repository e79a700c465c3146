//! Steal time: the share of this machine's CPU time that a hypervisor gave to other guests
//! while a vCPU here wanted to run (`steal` in /proc/stat; 0 on bare metal).
//!
//! A baseline and a run measured seconds apart on a shared host can see very different
//! neighbours, and a latency ratio between them then says more about the neighbours than
//! about ringlog. The report gives the steal of the baselines' span and of each replicated
//! run, so that such a ratio can be recognised (bench-harness/README.md).
//!
//! Invariants: a share is computed only from two readings of the same counters, the later
//! not below the earlier; anything else (no /proc/stat, a parse error, no time passed) is
//! "unknown", never 0.

use std::path::Path;

/// Where the kernel publishes CPU time counters.
const PROC_STAT: &str = "/proc/stat";

/// The all-CPU time counters of /proc/stat at one moment, in clock ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    /// Every state summed: user, nice, system, idle, iowait, irq, softirq, steal.
    total: u64,
    /// Steal alone.
    steal: u64,
}

impl CpuTimes {
    /// The counters now, or `None` if /proc/stat cannot be read or parsed.
    pub fn now() -> Option<CpuTimes> {
        CpuTimes::read(Path::new(PROC_STAT))
    }

    fn read(path: &Path) -> Option<CpuTimes> {
        CpuTimes::parse(&std::fs::read_to_string(path).ok()?)
    }

    /// Parses the aggregate `cpu ` line of /proc/stat. Guest time is already counted in user
    /// and nice, so it is left out of the total.
    fn parse(text: &str) -> Option<CpuTimes> {
        let line = text.lines().find(|line| line.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        // user nice system idle iowait irq softirq steal: older kernels may lack the last.
        let steal = *fields.get(7)?;
        Some(CpuTimes {
            total: fields.iter().sum(),
            steal,
        })
    }

    /// Percent of the CPU time since `earlier` that was stolen; `None` if no time passed or
    /// the counters went backwards.
    pub fn steal_percent_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let steal = self.steal.checked_sub(earlier.steal)?;
        if total == 0 || steal > total {
            return None;
        }
        Some(100.0 * steal as f64 / total as f64)
    }
}

/// Steal since `start` (a reading taken before the span), as a percent; `None` if unknown.
pub fn steal_percent_since(start: Option<CpuTimes>) -> Option<f64> {
    CpuTimes::now()?.steal_percent_since(&start?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  1101735 0 416504 4843093 457785 0 83070 46503 0 0\n\
                        cpu0 574493 0 176040 2444323 229222 0 30035 21817 0 0\n\
                        intr 1 2 3\n";

    // The aggregate line is read, per-CPU lines and guest columns are not.
    #[test]
    fn parses_the_aggregate_line() {
        let times = CpuTimes::parse(STAT).unwrap();
        assert_eq!(times.steal, 46_503);
        assert_eq!(
            times.total,
            1_101_735 + 416_504 + 4_843_093 + 457_785 + 83_070 + 46_503
        );
        assert_eq!(CpuTimes::parse("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(
            CpuTimes::parse("cpu  1 2 3 4 5 6 7\n"),
            None,
            "no steal column"
        );
        assert_eq!(CpuTimes::parse("cpu  1 2 x 4 5 6 7 8\n"), None);
    }

    // The share is steal over everything between two readings; no time or counters that went
    // backwards are unknown.
    #[test]
    fn computes_the_share_between_two_readings() {
        let earlier = CpuTimes {
            total: 1_000,
            steal: 100,
        };
        let later = CpuTimes {
            total: 1_400,
            steal: 200,
        };
        assert_eq!(later.steal_percent_since(&earlier), Some(25.0));
        assert_eq!(earlier.steal_percent_since(&earlier), None);
        assert_eq!(earlier.steal_percent_since(&later), None);
        let stolen_backwards = CpuTimes {
            total: 1_400,
            steal: 50,
        };
        assert_eq!(stolen_backwards.steal_percent_since(&earlier), None);
    }

    // This machine's own counters parse, and a span of busy work gets a share in 0..=100.
    #[test]
    fn reads_this_machine() {
        let start = CpuTimes::now();
        assert!(start.is_some(), "/proc/stat has no parsable cpu line");
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
        let mut spins = 0u64;
        while std::time::Instant::now() < deadline {
            spins = spins.wrapping_add(1);
        }
        assert!(spins > 0);
        let share = steal_percent_since(start).expect("50 ms of ticks passed");
        assert!((0.0..=100.0).contains(&share), "{share}");
    }
}
