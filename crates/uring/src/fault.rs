//! Fault injection in the I/O layer, for tests of the durable path on a kernel without
//! device-mapper.
//!
//! Invariants:
//!
//! - A faulted operation is never sent to the kernel; it completes with the plan's errno.
//! - Counting starts when a plan is installed ([`crate::Ring::set_fault_plan`]) and is 1-based:
//!   `fail_write_from: Some(3)` lets two writes through and fails the third and every later one.
//!   Resubmissions after `EINTR`/`EAGAIN` are not counted again.
//! - Every FSYNC request counts as an fsync: standalone, linked after a write, or the directory
//!   fsync of `rename_then_fsync_dir`. A write with `RWF_DSYNC` counts as a write and as an
//!   fsync, and fails if either count reaches its plan.
//! - The errno is never `EINTR` or `EAGAIN` (those never reach a caller); `0` means `EIO`.

/// Which writes and fsyncs fail, and with what errno. See the module docs for counting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// The 1-based number of the first write (counted from when the plan is installed) that
    /// fails; every later write fails too. `None`: writes are not faulted.
    pub fail_write_from: Option<u64>,
    /// The same for fsyncs. A write with `RWF_DSYNC` ([`Ring::write_dsync`]) counts as both
    /// a write and an fsync, and fails if either plan says so.
    ///
    /// [`Ring::write_dsync`]: crate::Ring::write_dsync
    pub fail_fsync_from: Option<u64>,
    /// The positive errno the faulted operations complete with; `0` means `EIO`.
    pub errno: i32,
}

impl FaultPlan {
    /// The environment variable a test sets on a child process to install a plan.
    pub const ENV_VAR: &'static str = "RINGLOG_FAULT";

    /// Parses a comma-separated spec: `write:N` and/or `fsync:N` (N >= 1), optionally
    /// `errno=E` where E is a number or one of `EIO`, `ENOSPC`, `EROFS`, `EDQUOT`
    /// (default `EIO`). Examples: `write:3`, `fsync:1,errno=28`, `write:2,fsync:5,errno=ENOSPC`.
    pub fn parse(spec: &str) -> Result<FaultPlan, String> {
        let mut plan = FaultPlan {
            errno: libc::EIO,
            ..FaultPlan::default()
        };
        let mut errno_seen = false;
        for item in spec.split(',').map(str::trim) {
            if let Some(count) = item.strip_prefix("write:") {
                set_once(&mut plan.fail_write_from, parse_count(count)?, "write")?;
            } else if let Some(count) = item.strip_prefix("fsync:") {
                set_once(&mut plan.fail_fsync_from, parse_count(count)?, "fsync")?;
            } else if let Some(errno) = item.strip_prefix("errno=") {
                if errno_seen {
                    return Err(format!("fault spec {spec:?}: errno given twice"));
                }
                errno_seen = true;
                plan.errno = parse_errno(errno)?;
            } else {
                return Err(format!(
                    "fault spec {spec:?}: unknown item {item:?} \
                     (expected write:N, fsync:N or errno=E)"
                ));
            }
        }
        if plan.is_empty() {
            return Err(format!(
                "fault spec {spec:?}: names neither write:N nor fsync:N"
            ));
        }
        Ok(plan)
    }

    /// Reads and parses [`FaultPlan::ENV_VAR`]. `Ok(None)` if it is unset or empty.
    pub fn from_env() -> Result<Option<FaultPlan>, String> {
        match std::env::var(Self::ENV_VAR) {
            Ok(spec) if spec.trim().is_empty() => Ok(None),
            Ok(spec) => FaultPlan::parse(&spec).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(error) => Err(format!("{}: {error}", Self::ENV_VAR)),
        }
    }

    /// True if the plan fails nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fail_write_from.is_none() && self.fail_fsync_from.is_none()
    }

    /// The errno faulted operations complete with.
    #[must_use]
    pub fn effective_errno(&self) -> i32 {
        if self.errno == 0 {
            libc::EIO
        } else {
            self.errno
        }
    }
}

fn set_once(slot: &mut Option<u64>, count: u64, what: &str) -> Result<(), String> {
    if slot.replace(count).is_some() {
        return Err(format!("fault spec: {what}:N given twice"));
    }
    Ok(())
}

fn parse_count(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(format!(
            "fault spec: {text:?} is not a count >= 1 (counting is 1-based)"
        )),
    }
}

fn parse_errno(text: &str) -> Result<i32, String> {
    let errno = match text.trim() {
        "EIO" => libc::EIO,
        "ENOSPC" => libc::ENOSPC,
        "EROFS" => libc::EROFS,
        "EDQUOT" => libc::EDQUOT,
        number => number
            .parse::<i32>()
            .map_err(|_| format!("fault spec: {text:?} is not an errno number or known name"))?,
    };
    if errno <= 0 || errno == libc::EINTR || errno == libc::EAGAIN {
        return Err(format!(
            "fault spec: errno {errno} cannot be injected (must be > 0, not EINTR or EAGAIN)"
        ));
    }
    Ok(errno)
}

/// What the ring tracks of an installed plan: the plan and how many writes and fsyncs it has
/// counted since it was installed.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    plan: FaultPlan,
    writes_count: u64,
    fsyncs_count: u64,
}

impl FaultState {
    pub(crate) fn new(plan: FaultPlan) -> FaultState {
        let errno = plan.effective_errno();
        assert!(
            errno != libc::EINTR && errno != libc::EAGAIN,
            "a fault plan cannot inject EINTR or EAGAIN: errno={errno}"
        );
        FaultState {
            plan,
            writes_count: 0,
            fsyncs_count: 0,
        }
    }

    /// Counts one write; returns the errno it must fail with, if the plan says so.
    pub(crate) fn on_write(&mut self) -> Option<i32> {
        self.writes_count += 1;
        self.fault_if(self.plan.fail_write_from, self.writes_count)
    }

    /// Counts one fsync; returns the errno it must fail with, if the plan says so.
    pub(crate) fn on_fsync(&mut self) -> Option<i32> {
        self.fsyncs_count += 1;
        self.fault_if(self.plan.fail_fsync_from, self.fsyncs_count)
    }

    fn fault_if(&self, from: Option<u64>, count: u64) -> Option<i32> {
        match from {
            Some(first) if count >= first => Some(self.plan.effective_errno()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks the accepted spellings of a fault spec, table-driven.
    #[test]
    fn parse_accepts_valid_specs() {
        let cases = [
            ("write:1", Some(1), None, libc::EIO),
            ("fsync:3", None, Some(3), libc::EIO),
            ("write:2,errno=28", Some(2), None, libc::ENOSPC),
            (" fsync:1 , errno=ENOSPC ", None, Some(1), libc::ENOSPC),
            ("write:4,fsync:5,errno=EROFS", Some(4), Some(5), libc::EROFS),
        ];
        for (spec, write, fsync, errno) in cases {
            let plan = FaultPlan::parse(spec).unwrap();
            let expected = FaultPlan {
                fail_write_from: write,
                fail_fsync_from: fsync,
                errno,
            };
            assert_eq!(plan, expected, "spec={spec:?}");
        }
    }

    // Checks that malformed specs are rejected with a message naming the problem.
    #[test]
    fn parse_rejects_invalid_specs() {
        let cases = [
            ("", "unknown item"),
            ("errno=5", "neither"),
            ("write:0", "count >= 1"),
            ("write:x", "count >= 1"),
            ("read:1", "unknown item"),
            ("write:1,write:2", "twice"),
            ("write:1,errno=4", "cannot be injected"),
            ("write:1,errno=11", "cannot be injected"),
            ("write:1,errno=EWHAT", "errno number"),
            ("write:1,errno=5,errno=5", "twice"),
        ];
        for (spec, needle) in cases {
            let error = FaultPlan::parse(spec).unwrap_err();
            assert!(error.contains(needle), "spec={spec:?} error={error:?}");
        }
    }

    // Checks 1-based counting from installation, "and every later one", and errno 0 = EIO.
    #[test]
    fn fault_state_counts_from_installation() {
        let plan = FaultPlan {
            fail_write_from: Some(2),
            fail_fsync_from: Some(1),
            errno: 0,
        };
        let mut state = FaultState::new(plan);
        assert_eq!(state.on_write(), None);
        assert_eq!(state.on_write(), Some(libc::EIO));
        assert_eq!(state.on_write(), Some(libc::EIO));
        assert_eq!(state.on_fsync(), Some(libc::EIO));
        let mut none = FaultState::new(FaultPlan::default());
        assert_eq!(none.on_write(), None);
        assert_eq!(none.on_fsync(), None);
    }
}
