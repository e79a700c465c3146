//! The caller's clock, as a value.
//!
//! The state machines never read a clock: every handler takes the current [`Time`] as an
//! argument, so a simulator can run them on a fake clock. Invariant: arithmetic on `Time`
//! saturates instead of overflowing, so a deadline far in the future stays far in the future.

/// The caller's monotonic clock, in microseconds (any origin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub u64);

/// Microseconds per millisecond.
const MICROS_PER_MILLI: u64 = 1_000;

impl Time {
    /// The time `ms` milliseconds after this one (saturating at the end of time).
    #[must_use]
    pub fn add_ms(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms.saturating_mul(MICROS_PER_MILLI)))
    }

    /// Whole milliseconds from `earlier` to this time; 0 if `earlier` is later than `self`.
    #[must_use]
    pub fn ms_since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0) / MICROS_PER_MILLI
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `add_ms` converts to microseconds and saturates; `ms_since` rounds down and saturates
    // at zero, so a clock read out of order never produces a huge lag.
    #[test]
    fn add_ms_and_ms_since() {
        let start = Time(1_500);
        assert_eq!(start.add_ms(2), Time(3_500));
        assert_eq!(start.add_ms(2).ms_since(start), 2);
        assert_eq!(Time(2_499).ms_since(Time(1_500)), 0);
        assert_eq!(Time(2_500).ms_since(Time(1_500)), 1);
        assert_eq!(start.ms_since(start.add_ms(5)), 0);
        assert_eq!(Time(u64::MAX - 1).add_ms(1), Time(u64::MAX));
        assert_eq!(Time(0).add_ms(u64::MAX), Time(u64::MAX));
    }
}
