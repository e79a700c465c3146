//! Identifiers and units shared by every ringlog crate.
//!
//! This crate owns the newtypes of DESIGN.md's vocabulary (`Offset`, `Epoch`, `NodeId`,
//! `PartitionId`) and the binary size units. It owns no behaviour beyond arithmetic that keeps
//! the types honest: `Offset - Offset` is a record count (`u64`), never another `Offset`.
//!
//! ```
//! use ringlog_types::{units::KIB, Offset};
//! let start = Offset(10);
//! let end = start.add_count(5);
//! assert_eq!(end.count_since(start), 5);
//! assert_eq!(4 * KIB, 4096);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;

/// Binary size units. Sizes are written `16 * KIB`, never `16 * 1000`.
pub mod units {
    /// 2^10 bytes.
    pub const KIB: u64 = 1 << 10;
    /// 2^20 bytes.
    pub const MIB: u64 = 1 << 20;
    /// 2^30 bytes.
    pub const GIB: u64 = 1 << 30;
}

/// Logical number of a record in a partition (Kafka's offset, the literature's LSN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

impl Offset {
    /// The offset `count` records after this one.
    #[must_use]
    pub fn add_count(self, count: u64) -> Offset {
        Offset(self.0.checked_add(count).expect("offset overflow"))
    }

    /// The number of records in `[start, self)`. Panics if `start > self`: that is a bug.
    #[must_use]
    pub fn count_since(self, start: Offset) -> u64 {
        assert!(start <= self, "count_since: start={start} > self={self}");
        self.0 - start.0
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Leader epoch: increases on every change of leader, stamped into every batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub u32);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifier of a node in a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

/// Index of a partition within its topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId(pub u32);
