//! Progress on stderr: one line per step, and on a terminal a bar below them that shows the
//! share of the planned time gone, the elapsed and planned seconds and the current phase.
//!
//! stdout carries only the report, so the bar never mixes with it. On a terminal the bar is
//! redrawn in place (`\r`, erase line) every `REDRAW_INTERVAL` by a ticker thread; a step's
//! line erases the bar, is printed, and the bar comes back under it. When stderr is not a
//! terminal (a log file, a test), no bar is drawn and each line starts with the elapsed time.
//!
//! Invariants: every write to stderr happens under the one lock, so lines and the bar never
//! interleave; the bar is erased before the process prints anything else (`finish`).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How often the ticker redraws the bar.
const REDRAW_INTERVAL: Duration = Duration::from_millis(250);
/// Width of the bar between its brackets, in characters.
const BAR_WIDTH: usize = 30;
/// The bar's share of the plan stops here (99%) while the run overruns it.
const SHARE_PERMILLE_MAX: u128 = 990;

/// The run's progress display.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    planned: Duration,
    terminal: bool,
    phase: Mutex<String>,
    finished: AtomicBool,
}

impl Progress {
    /// A display for a run planned to take `planned`, with a ticker thread if stderr is a
    /// terminal.
    pub fn start(planned: Duration) -> Arc<Progress> {
        let progress = Arc::new(Progress {
            started: Instant::now(),
            planned,
            terminal: std::io::stderr().is_terminal(),
            phase: Mutex::new(String::new()),
            finished: AtomicBool::new(false),
        });
        if progress.terminal {
            let ticker = Arc::clone(&progress);
            thread::spawn(move || {
                while !ticker.finished.load(Ordering::Relaxed) {
                    ticker.redraw();
                    thread::sleep(REDRAW_INTERVAL);
                }
            });
        }
        progress
    }

    fn lock(&self) -> MutexGuard<'_, String> {
        self.phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Prints one step's line (above the bar).
    pub fn line(&self, text: &str) {
        let phase = self.lock();
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(stderr, "\r\x1b[2K{text}\n");
            if !self.finished.load(Ordering::Relaxed) {
                let _ = write!(stderr, "{}", self.bar(&phase));
            }
        } else {
            let _ = writeln!(stderr, "[{:>4} s] {text}", self.started.elapsed().as_secs());
        }
        let _ = stderr.flush();
    }

    /// Names the current phase on the bar.
    pub fn phase(&self, name: &str) {
        let mut phase = self.lock();
        name.clone_into(&mut phase);
    }

    /// Erases the bar for good.
    pub fn finish(&self) {
        let _phase = self.lock();
        self.finished.store(true, Ordering::Relaxed);
        if self.terminal {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
        }
    }

    fn redraw(&self) {
        let phase = self.lock();
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{}", self.bar(&phase));
        let _ = stderr.flush();
    }

    fn bar(&self, phase: &str) -> String {
        render_bar(self.started.elapsed(), self.planned, phase)
    }
}

/// `[=======>      ]  45%  41 s of ~95 s  phase`: the share of the planned time gone,
/// held at 99% while the run overruns its plan.
pub fn render_bar(elapsed: Duration, planned: Duration, phase: &str) -> String {
    // Per mille of the plan gone, held at 990 while the run overruns its plan.
    let share_permille = if planned.is_zero() {
        SHARE_PERMILLE_MAX
    } else {
        (elapsed.as_millis() * 1000 / planned.as_millis().max(1)).min(SHARE_PERMILLE_MAX)
    };
    let width = u128::try_from(BAR_WIDTH).unwrap_or(u128::MAX);
    let filled = usize::try_from(share_permille * width / 1000).unwrap_or(BAR_WIDTH);
    let filled = filled.min(BAR_WIDTH);
    let mut bar = "=".repeat(filled);
    if filled < BAR_WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(BAR_WIDTH - filled - 1));
    }
    format!(
        "[{bar}] {:>3}%  {} s of ~{} s  {phase}",
        share_permille / 10,
        elapsed.as_secs(),
        planned.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The bar fills in proportion, never shows 100% before the end, and names the phase.
    #[test]
    fn renders_the_bar() {
        let half = render_bar(
            Duration::from_secs(45),
            Duration::from_secs(90),
            "sync open-loop",
        );
        assert_eq!(
            half,
            "[===============>              ]  50%  45 s of ~90 s  sync open-loop"
        );
        let over = render_bar(Duration::from_secs(200), Duration::from_secs(90), "x");
        assert!(over.contains(" 99%"), "{over}");
        assert!(
            over.starts_with("[=============================>]"),
            "{over}"
        );
        let zero = render_bar(Duration::ZERO, Duration::ZERO, "");
        assert!(zero.contains(" 99%"), "{zero}");
    }
}
