//! Errors of the io_uring layer, mapped from errnos explicitly.
//!
//! Invariants:
//!
//! - `EINTR` and `EAGAIN` never reach a caller: the ring resubmits those operations itself
//!   (a bounded number of times).
//! - `ENOSPC`, `EIO` and `ECANCELED` have named variants because callers act on them (fence
//!   the partition, report a canceled link). Everything else is `Unexpected`, logged where it
//!   is produced, and carries the operation and errno. `EINVAL` from an operation (e.g. a
//!   misaligned O_DIRECT transfer) is `Unexpected` too: it is a bug in the caller, who asserts
//!   alignment before queuing, and which the durable path treats as fatal.
//! - A failed startup check ([`ProbeError`], `Unsupported` at setup) tells the operator what
//!   to do.

/// What an operator must provide for ringlog's io_uring layer to run.
pub const KERNEL_REQUIREMENT: &str = "run ringlog on Linux >= 6.1 with io_uring enabled \
     (CONFIG_IO_URING=y and sysctl kernel.io_uring_disabled=0)";

/// The error of one io_uring operation or ring call.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum IoError {
    /// The file system is full (`ENOSPC`).
    #[error("no space left on device (ENOSPC)")]
    NoSpace,
    /// The device or file system reported an I/O error (`EIO`).
    #[error("input/output error (EIO)")]
    Io,
    /// The operation was canceled (`ECANCELED`), e.g. because it was linked after an operation
    /// that failed or transferred fewer bytes than asked.
    #[error("operation canceled (ECANCELED): an operation linked before it failed or was short")]
    Canceled,
    /// The kernel or the file system does not support `op` (`EOPNOTSUPP`, or `EINVAL` during
    /// ring setup and probing).
    #[error("{op} is not supported here: {KERNEL_REQUIREMENT}, on a file system that supports it")]
    Unsupported {
        /// The operation or call that was refused.
        op: &'static str,
    },
    /// The ring already holds `ops_in_flight_max` operations; reap completions first.
    #[error("too many io_uring operations in flight (at most {ops_in_flight_max})")]
    Busy {
        /// The configured bound that was reached.
        ops_in_flight_max: usize,
    },
    /// Any other errno.
    #[error("{op} failed: {}", std::io::Error::from_raw_os_error(*errno))]
    Unexpected {
        /// The operation or call that failed.
        op: &'static str,
        /// The positive errno value.
        errno: i32,
    },
}

impl IoError {
    /// Maps a positive errno returned by `op` to an error. `EINTR` and `EAGAIN` map to
    /// `Unexpected` here; the ring never lets them get this far.
    #[must_use]
    pub fn from_errno(op: &'static str, errno: i32) -> IoError {
        match errno {
            libc::ENOSPC => IoError::NoSpace,
            libc::EIO => IoError::Io,
            libc::ECANCELED => IoError::Canceled,
            libc::EOPNOTSUPP => IoError::Unsupported { op },
            _ => IoError::Unexpected { op, errno },
        }
    }

    /// The errno this error stands for, if it came from one (not for `Busy`).
    #[must_use]
    pub fn errno(&self) -> Option<i32> {
        match self {
            IoError::NoSpace => Some(libc::ENOSPC),
            IoError::Io => Some(libc::EIO),
            IoError::Canceled => Some(libc::ECANCELED),
            IoError::Unsupported { .. } => Some(libc::EOPNOTSUPP),
            IoError::Busy { .. } => None,
            IoError::Unexpected { errno, .. } => Some(*errno),
        }
    }

    /// Maps an error of a call into the ring itself (`io_uring_setup`, `io_uring_enter`,
    /// `io_uring_register`), where `EINVAL`, `ENOSYS` and `EPERM` mean the kernel lacks or
    /// forbids the feature rather than a bug in a request.
    pub(crate) fn from_ring_call(op: &'static str, error: &std::io::Error) -> IoError {
        match error.raw_os_error() {
            Some(libc::EINVAL | libc::ENOSYS | libc::EPERM | libc::EOPNOTSUPP) => {
                IoError::Unsupported { op }
            }
            Some(errno) => IoError::from_errno(op, errno),
            None => IoError::Unexpected { op, errno: 0 },
        }
    }
}

/// A startup check of the kernel's io_uring failed. `Display` is the message for the operator.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// The kernel does not support an io_uring operation that ringlog needs.
    #[error(
        "this kernel's io_uring does not support the {opcode} operation: {KERNEL_REQUIREMENT}"
    )]
    MissingOpcode {
        /// Name of the missing operation, as in `IORING_OP_<name>`.
        opcode: &'static str,
    },
    /// The kernel refused to say which operations it supports (`IORING_REGISTER_PROBE`).
    #[error(
        "could not probe io_uring operations ({}): {KERNEL_REQUIREMENT}",
        std::io::Error::from_raw_os_error(*errno)
    )]
    ProbeFailed {
        /// The positive errno value.
        errno: i32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks the explicit errno table, including the catch-all, and errno() round trips.
    #[test]
    fn errno_mapping_table() {
        let cases = [
            (libc::ENOSPC, IoError::NoSpace),
            (libc::EIO, IoError::Io),
            (libc::ECANCELED, IoError::Canceled),
            (libc::EOPNOTSUPP, IoError::Unsupported { op: "write" }),
            (
                libc::EBADF,
                IoError::Unexpected {
                    op: "write",
                    errno: libc::EBADF,
                },
            ),
            (
                libc::EINVAL,
                IoError::Unexpected {
                    op: "write",
                    errno: libc::EINVAL,
                },
            ),
        ];
        for (errno, expected) in cases {
            let error = IoError::from_errno("write", errno);
            assert_eq!(error, expected, "errno={errno}");
            assert_eq!(error.errno(), Some(errno));
        }
        assert_eq!(
            IoError::Busy {
                ops_in_flight_max: 1
            }
            .errno(),
            None
        );
    }

    // Checks that the operator messages name the missing piece and the fix.
    #[test]
    fn operator_messages_say_what_to_do() {
        let message = ProbeError::MissingOpcode {
            opcode: "WRITE_FIXED",
        }
        .to_string();
        assert!(message.contains("WRITE_FIXED"), "{message}");
        assert!(message.contains("Linux >= 6.1"), "{message}");
        assert!(message.contains("kernel.io_uring_disabled=0"), "{message}");
        let setup = IoError::from_ring_call(
            "io_uring_setup",
            &std::io::Error::from_raw_os_error(libc::EPERM),
        );
        assert_eq!(
            setup,
            IoError::Unsupported {
                op: "io_uring_setup"
            }
        );
        assert!(setup.to_string().contains("io_uring_disabled"), "{setup}");
        let unexpected = IoError::from_errno("fsync", libc::EBADF).to_string();
        assert!(unexpected.starts_with("fsync failed: "), "{unexpected}");
    }
}
