//! Latency histograms and the one place this crate reads the wall clock.
//!
//! Every latency in the harness is recorded in microseconds into an HDR histogram that covers
//! 1 µs to 60 s at 3 significant digits, so all scenarios and baselines share one resolution
//! and their percentiles can be divided into each other. A value above 60 s saturates at the
//! top bucket instead of failing the run: a stall that long is a result, not an error.
//!
//! `Stopwatch` wraps `Instant::now()` so that the harness has a single call site for real time
//! (a tidy rule banning `Instant::now` can then allow this one file).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Smallest latency the histograms resolve, in microseconds.
pub const HISTOGRAM_US_MIN: u64 = 1;
/// Largest latency the histograms track, in microseconds (60 s); larger values saturate.
pub const HISTOGRAM_US_MAX: u64 = 60_000_000;
/// Significant decimal digits kept for every recorded value.
pub const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 3;

/// A histogram of microsecond latencies with the harness-wide bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(
        HISTOGRAM_US_MIN,
        HISTOGRAM_US_MAX,
        HISTOGRAM_SIGNIFICANT_DIGITS,
    )
    .expect("constant histogram bounds are valid")
}

/// Records `latency` in whole microseconds, saturating at `HISTOGRAM_US_MAX`.
pub fn record_us(histogram: &mut Histogram<u64>, latency: Duration) {
    histogram.saturating_record(duration_us(latency));
}

/// Records `latency` and back-fills the samples a closed-loop driver would have missed while
/// it was stalled, assuming one request was due every `expected_interval` (HdrHistogram's
/// coordinated-omission correction). Prefer measuring from the intended send time of an
/// open-loop schedule; use this only for loops that cannot keep a schedule.
#[allow(
    dead_code,
    reason = "for closed-loop scenarios; wal_runs.rs may use it"
)]
pub fn record_us_corrected(
    histogram: &mut Histogram<u64>,
    latency: Duration,
    expected_interval: Duration,
) {
    let value_us = duration_us(latency).min(HISTOGRAM_US_MAX);
    let interval_us = duration_us(expected_interval);
    // Cannot fail: the value is clamped into the histogram's range above.
    histogram
        .record_correct(value_us, interval_us)
        .expect("clamped value is within the histogram bounds");
}

/// `duration` in whole microseconds (saturating).
pub fn duration_us(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Measures elapsed wall-clock time from the moment it is started.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch {
    start: Instant,
}

impl Stopwatch {
    /// Starts measuring now.
    pub fn start() -> Stopwatch {
        Stopwatch {
            start: Instant::now(),
        }
    }

    /// Time since `start()`.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Records known durations and checks that the percentiles come back in microseconds
    // within the 3-significant-digit resolution, and that huge values saturate, not fail.
    #[test]
    fn records_microseconds_and_saturates() {
        let mut histogram = new_histogram();
        for us in 1..=1000 {
            record_us(&mut histogram, Duration::from_micros(us));
        }
        assert_eq!(histogram.len(), 1000);
        assert_eq!(histogram.value_at_quantile(0.5), 500);
        assert_eq!(histogram.max(), 1000);

        record_us(&mut histogram, Duration::from_secs(3600));
        assert_eq!(histogram.len(), 1001);
        let top = histogram.max();
        assert!(top >= HISTOGRAM_US_MAX, "top={top}");
        assert!(
            top <= HISTOGRAM_US_MAX + HISTOGRAM_US_MAX / 1000,
            "top={top}"
        );
    }

    // A 10 ms stall with a 1 ms expected interval stands for 10 samples, not one.
    #[test]
    fn corrected_recording_back_fills_missed_samples() {
        let mut histogram = new_histogram();
        record_us_corrected(
            &mut histogram,
            Duration::from_millis(10),
            Duration::from_millis(1),
        );
        assert_eq!(histogram.len(), 10);
        assert_eq!(histogram.min(), 1000);
    }
}
