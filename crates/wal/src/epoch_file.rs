//! The leader-epoch checkpoint of one partition (Kafka's `leader-epoch-checkpoint`).
//!
//! [`EpochHistory`] records, for every leader epoch that wrote to this replica's log, the
//! offset of its first record. Divergence repair (DESIGN.md section 5) needs it: a replica that
//! becomes a follower asks the leader where its own last epoch ends on the leader
//! ([`EpochHistory::end_offset_for`]) and truncates its log above that offset.
//!
//! Invariants (checked by [`EpochHistory::check_invariants`]):
//! - epochs are strictly increasing;
//! - start offsets are non-decreasing (an epoch that wrote nothing starts where the next one
//!   does);
//! - epoch `entries[i]` covers the offsets `[entries[i].start_offset, entries[i + 1].start_offset)`
//!   and the latest epoch covers everything from its start to the log end.
//!
//! A stale or out-of-order [`EpochHistory::assign`] is a typed error, never a panic: it means a
//! deposed leader or a caller bug, and the caller must fence the partition rather than crash
//! the node. Bytes read from disk are never trusted: every defect is an [`EpochError`], and a
//! damaged file is never taken for an empty history.
//!
//! The file `leader-epoch-checkpoint` in the partition directory holds
//! [`EpochHistory::encode`]'s image, little-endian and fixed width (layout above the constants
//! below), replaced durably: tmp file, fsync, rename, fsync of the directory.

use std::io;
use std::mem::size_of;
use std::path::{Path, PathBuf};

use crate::metadata_file::{crc32c, load_after_fsync, store_durably, u32_at, u64_at};
use ringlog_types::{Epoch, Offset};

// File image, all integers little-endian:
//
//   position      size    field
//   0             4       magic "RLEP"
//   4             4       version (u32) = 1
//   8             4       entry count n (u32)
//   12            12 * n  entries: epoch (u32), start offset (u64)
//   12 + 12n      4       CRC32C (Castagnoli) of bytes [0, 12 + 12n)
const MAGIC: [u8; 4] = *b"RLEP";
const VERSION: u32 = 1;
const MAGIC_POSITION: usize = 0;
const VERSION_POSITION: usize = MAGIC_POSITION + MAGIC.len();
const ENTRY_COUNT_POSITION: usize = VERSION_POSITION + size_of::<u32>();
const ENTRIES_POSITION: usize = ENTRY_COUNT_POSITION + size_of::<u32>();
const ENTRY_EPOCH_POSITION: usize = 0;
const ENTRY_START_OFFSET_POSITION: usize = ENTRY_EPOCH_POSITION + size_of::<u32>();
const ENTRY_SIZE_BYTES: usize = ENTRY_START_OFFSET_POSITION + size_of::<u64>();
const CHECKSUM_SIZE_BYTES: usize = size_of::<u32>();
const FILE_SIZE_BYTES_MIN: usize = ENTRIES_POSITION + CHECKSUM_SIZE_BYTES;
const _: () = assert!(ENTRIES_POSITION == 12);
const _: () = assert!(ENTRY_SIZE_BYTES == 12);

/// One epoch and the offset of its first record on this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: Epoch,
    /// The first offset written under `epoch`.
    pub start_offset: Offset,
}

/// Errors of the epoch history: refused updates and unusable checkpoint files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EpochError {
    /// [`EpochHistory::assign`] was given an epoch older than the latest one (a stale leader).
    #[error("epoch {epoch} is older than the latest epoch {latest}")]
    StaleEpoch {
        /// The epoch being assigned.
        epoch: Epoch,
        /// The latest epoch of the history.
        latest: Epoch,
    },
    /// [`EpochHistory::assign`] was given a start offset below the latest epoch's start: the
    /// log was truncated without truncating the history, or the caller is confused.
    #[error("epoch {epoch} at offset {start_offset} starts below the latest start {latest_start}")]
    StartOffsetRegressed {
        /// The epoch being assigned.
        epoch: Epoch,
        /// The start offset being assigned.
        start_offset: Offset,
        /// The start offset of the latest epoch.
        latest_start: Offset,
    },
    /// Fewer bytes than an empty checkpoint needs (a torn or empty file).
    #[error("epoch checkpoint is {size_bytes} bytes, the minimum is {size_bytes_min}")]
    TooShort {
        /// Size of what was read.
        size_bytes: u64,
        /// Size of a checkpoint with no entries.
        size_bytes_min: u64,
    },
    /// The file does not start with the checkpoint magic.
    #[error("epoch checkpoint has magic {found:?}, expected {MAGIC:?}")]
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// A format version this build cannot read.
    #[error("epoch checkpoint has version {version}, this build reads version {VERSION}")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// The size does not match the entry count (a torn or padded file).
    #[error(
        "epoch checkpoint is {size_bytes} bytes, {entry_count} entries need {size_bytes_expected}"
    )]
    LengthMismatch {
        /// Entry count stored in the header.
        entry_count: u32,
        /// Size of what was read.
        size_bytes: u64,
        /// Size implied by the entry count.
        size_bytes_expected: u64,
    },
    /// The stored CRC32C does not match the bytes.
    #[error(
        "epoch checkpoint checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
    )]
    BadChecksum {
        /// CRC32C stored in the file.
        stored: u32,
        /// CRC32C of the bytes read.
        computed: u32,
    },
    /// An entry's epoch is not above the previous entry's.
    #[error("epoch checkpoint entry {entry_index}: epoch does not increase")]
    EpochNotIncreasing {
        /// Zero-based number of the offending entry.
        entry_index: usize,
    },
    /// An entry's start offset is below the previous entry's.
    #[error("epoch checkpoint entry {entry_index}: start offset decreases")]
    StartOffsetDecreasing {
        /// Zero-based number of the offending entry.
        entry_index: usize,
    },
    /// Reading the file failed.
    #[error("reading epoch checkpoint {path}: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The leader epochs of one partition's log and where each starts (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochHistory {
    entries: Vec<EpochEntry>,
}

impl EpochHistory {
    /// The name of the checkpoint file in the partition directory (Kafka's name).
    pub const FILE_NAME: &'static str = "leader-epoch-checkpoint";

    /// An empty history (a new partition, or one whose log holds no record yet).
    #[must_use]
    pub fn new() -> EpochHistory {
        EpochHistory {
            entries: Vec::new(),
        }
    }

    /// Records that `epoch` starts at `start_offset`; returns whether the history changed.
    /// Assigning the latest epoch again (with any start at or above its start) is a no-op:
    /// callers assign on every append. An older epoch, or a start below the latest start, is
    /// an error and leaves the history unchanged.
    pub fn assign(&mut self, epoch: Epoch, start_offset: Offset) -> Result<bool, EpochError> {
        if let Some(latest) = self.latest() {
            if epoch < latest.epoch {
                return Err(EpochError::StaleEpoch {
                    epoch,
                    latest: latest.epoch,
                });
            }
            if start_offset < latest.start_offset {
                return Err(EpochError::StartOffsetRegressed {
                    epoch,
                    start_offset,
                    latest_start: latest.start_offset,
                });
            }
            if epoch == latest.epoch {
                return Ok(false);
            }
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        Ok(true)
    }

    /// The latest epoch and its start, `None` if the history is empty.
    #[must_use]
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Where `epoch` ends on this replica, for divergence repair (Kafka's
    /// OffsetForLeaderEpoch), as `(epoch found, end offset)`:
    /// - `epoch` is the latest: `(epoch, log_end)`;
    /// - `epoch` is known: `(epoch, start of the next epoch)`;
    /// - `epoch` is unknown but between two known epochs: `(greatest known epoch below it,
    ///   start of the next greater epoch)`, so the follower truncates to where the two
    ///   histories last agree;
    /// - `None` if `epoch` is below the first known epoch (Kafka answers with the first start
    ///   offset; here the caller decides, e.g. restart from the leader's log start), above the
    ///   latest (this replica has never seen it: Kafka's UNDEFINED), or the history is empty.
    ///
    /// Panics if `log_end` is below the latest epoch's start: the log was truncated without
    /// [`EpochHistory::truncate_from`].
    #[must_use]
    pub fn end_offset_for(&self, epoch: Epoch, log_end: Offset) -> Option<(Epoch, Offset)> {
        let latest = self.latest()?;
        assert!(
            log_end >= latest.start_offset,
            "log_end={log_end} below the latest epoch's start={}",
            latest.start_offset
        );
        let after = self.entries.partition_point(|entry| entry.epoch <= epoch);
        let floor = self.entries.get(after.checked_sub(1)?)?;
        match self.entries.get(after) {
            Some(next) => Some((floor.epoch, next.start_offset)),
            None if epoch == latest.epoch => Some((latest.epoch, log_end)),
            None => None,
        }
    }

    /// Drops the epochs that start at or above `offset`, because the log was truncated from
    /// `offset` (Kafka's truncateFromEnd).
    pub fn truncate_from(&mut self, offset: Offset) {
        let kept_count = self
            .entries
            .partition_point(|entry| entry.start_offset < offset);
        self.entries.truncate(kept_count);
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// Drops the epochs that lie wholly below the new log start, and moves the start of the
    /// one covering `log_start` up to it (Kafka's truncateFromStart). Epochs that start above
    /// `log_start` are untouched.
    pub fn truncate_before(&mut self, log_start: Offset) {
        let covering_count = self
            .entries
            .partition_point(|entry| entry.start_offset <= log_start);
        if let Some(covering_index) = covering_count.checked_sub(1) {
            self.entries.drain(..covering_index);
            self.entries[0].start_offset = log_start;
        }
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// The entries, oldest epoch first.
    #[must_use]
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Panics if an invariant listed in the module doc does not hold. O(entries).
    pub fn check_invariants(&self) {
        for pair in self.entries.windows(2) {
            assert!(
                pair[0].epoch < pair[1].epoch,
                "epochs not increasing: {pair:?}"
            );
            assert!(
                pair[0].start_offset <= pair[1].start_offset,
                "start offsets decreasing: {pair:?}"
            );
        }
    }

    /// The file image (layout above the constants).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let entry_count = u32::try_from(self.entries.len()).expect("epoch count beyond u32");
        let size_bytes = ENTRIES_POSITION + self.entries.len() * ENTRY_SIZE_BYTES;
        let mut bytes = Vec::with_capacity(size_bytes + CHECKSUM_SIZE_BYTES);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&entry_count.to_le_bytes());
        for entry in &self.entries {
            bytes.extend_from_slice(&entry.epoch.0.to_le_bytes());
            bytes.extend_from_slice(&entry.start_offset.0.to_le_bytes());
        }
        assert_eq!(bytes.len(), size_bytes);
        let checksum = crc32c(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// Parses a file image. Never panics: every defect of `bytes` is an [`EpochError`].
    pub fn decode(bytes: &[u8]) -> Result<EpochHistory, EpochError> {
        decode_header(bytes)?;
        let entries_end = bytes.len() - CHECKSUM_SIZE_BYTES;
        let region = &bytes[ENTRIES_POSITION..entries_end];
        let mut entries: Vec<EpochEntry> = Vec::with_capacity(region.len() / ENTRY_SIZE_BYTES);
        for (entry_index, chunk) in region.chunks_exact(ENTRY_SIZE_BYTES).enumerate() {
            let entry = EpochEntry {
                epoch: Epoch(u32_at(chunk, ENTRY_EPOCH_POSITION)),
                start_offset: Offset(u64_at(chunk, ENTRY_START_OFFSET_POSITION)),
            };
            if let Some(previous) = entries.last() {
                if entry.epoch <= previous.epoch {
                    return Err(EpochError::EpochNotIncreasing { entry_index });
                }
                if entry.start_offset < previous.start_offset {
                    return Err(EpochError::StartOffsetDecreasing { entry_index });
                }
            }
            entries.push(entry);
        }
        let history = EpochHistory { entries };
        #[cfg(debug_assertions)]
        history.check_invariants();
        Ok(history)
    }

    /// Writes the checkpoint durably to `<dir>/leader-epoch-checkpoint`: tmp file, write,
    /// fsync, rename, fsync `dir`. Blocking: call it from a background thread.
    pub fn store(&self, dir: &Path) -> io::Result<()> {
        store_durably(dir, EpochHistory::FILE_NAME, &self.encode())
    }

    /// Reads the checkpoint from `dir`: an empty history if the file is missing (a new
    /// partition), an error if it is present but unusable (never an empty history: that would
    /// silently forget epochs). Blocking, like [`EpochHistory::store`].
    pub fn load(dir: &Path) -> Result<EpochHistory, EpochError> {
        let path = dir.join(EpochHistory::FILE_NAME);
        match load_after_fsync(dir, &path) {
            Ok(Some(bytes)) => EpochHistory::decode(&bytes),
            Ok(None) => Ok(EpochHistory::new()),
            Err(source) => Err(EpochError::Io { path, source }),
        }
    }
}

/// Checks length, magic, version, size against the entry count and checksum, in that order.
/// After it succeeds every header field and entry can be read.
fn decode_header(bytes: &[u8]) -> Result<(), EpochError> {
    let size_bytes = bytes.len() as u64;
    if bytes.len() < FILE_SIZE_BYTES_MIN {
        return Err(EpochError::TooShort {
            size_bytes,
            size_bytes_min: FILE_SIZE_BYTES_MIN as u64,
        });
    }
    let mut magic = [0; MAGIC.len()];
    magic.copy_from_slice(&bytes[MAGIC_POSITION..VERSION_POSITION]);
    if magic != MAGIC {
        return Err(EpochError::BadMagic { found: magic });
    }
    let version = u32_at(bytes, VERSION_POSITION);
    if version != VERSION {
        return Err(EpochError::UnsupportedVersion { version });
    }
    let entry_count = u32_at(bytes, ENTRY_COUNT_POSITION);
    let size_bytes_expected =
        FILE_SIZE_BYTES_MIN as u64 + u64::from(entry_count) * ENTRY_SIZE_BYTES as u64;
    if size_bytes != size_bytes_expected {
        return Err(EpochError::LengthMismatch {
            entry_count,
            size_bytes,
            size_bytes_expected,
        });
    }
    let checksum_position = bytes.len() - CHECKSUM_SIZE_BYTES;
    let stored = u32_at(bytes, checksum_position);
    let computed = crc32c(&bytes[..checksum_position]);
    if stored != computed {
        return Err(EpochError::BadChecksum { stored, computed });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;

    /// A history from `(epoch, start offset)` pairs, built through `assign`.
    fn history(pairs: &[(u32, u64)]) -> EpochHistory {
        let mut history = EpochHistory::new();
        for &(epoch, start_offset) in pairs {
            assert!(history.assign(Epoch(epoch), Offset(start_offset)).unwrap());
        }
        history
    }

    fn pairs(history: &EpochHistory) -> Vec<(u32, u64)> {
        history
            .entries()
            .iter()
            .map(|entry| (entry.epoch.0, entry.start_offset.0))
            .collect()
    }

    /// Recomputes the checksum of a hand-edited image, to reach the checks after it.
    fn reseal(bytes: &mut [u8]) {
        let checksum_position = bytes.len() - CHECKSUM_SIZE_BYTES;
        let checksum = crc32c(&bytes[..checksum_position]);
        bytes[checksum_position..].copy_from_slice(&checksum.to_le_bytes());
    }

    /// Valid histories: increasing epochs with gaps, non-decreasing starts (repeats included).
    fn history_strategy() -> impl Strategy<Value = EpochHistory> {
        proptest::collection::vec(
            (1..5u32, prop_oneof![1 => Just(0u64), 3 => 0..1000u64]),
            0..30,
        )
        .prop_map(|steps| {
            let mut history = EpochHistory::new();
            let (mut epoch, mut start_offset) = (0u32, 0u64);
            for (epoch_step, offset_step) in steps {
                epoch += epoch_step;
                start_offset += offset_step;
                history.assign(Epoch(epoch), Offset(start_offset)).unwrap();
            }
            history
        })
    }

    #[test]
    fn assign_table() {
        // Table: (history before, assigned epoch and start, expected outcome, history after).
        // Outcome "true"/"false" is Ok(changed); "stale"/"regressed" are the typed errors,
        // which must leave the history unchanged.
        type Pairs = &'static [(u32, u64)];
        let cases: &[(Pairs, (u32, u64), &str, Pairs)] = &[
            (&[], (0, 0), "true", &[(0, 0)]),
            (&[], (5, 100), "true", &[(5, 100)]),
            (&[(1, 0)], (2, 10), "true", &[(1, 0), (2, 10)]),
            (&[(1, 0)], (3, 0), "true", &[(1, 0), (3, 0)]),
            (&[(1, 0), (2, 10)], (2, 10), "false", &[(1, 0), (2, 10)]),
            (&[(1, 0), (2, 10)], (2, 55), "false", &[(1, 0), (2, 10)]),
            (&[(1, 0), (2, 10)], (1, 20), "stale", &[(1, 0), (2, 10)]),
            (&[(1, 0), (2, 10)], (0, 20), "stale", &[(1, 0), (2, 10)]),
            (&[(1, 0), (2, 10)], (3, 9), "regressed", &[(1, 0), (2, 10)]),
            (&[(1, 0), (2, 10)], (2, 9), "regressed", &[(1, 0), (2, 10)]),
        ];
        for &(before, (epoch, start_offset), outcome, after) in cases {
            let mut history = history(before);
            let result = history.assign(Epoch(epoch), Offset(start_offset));
            let found = match result {
                Ok(true) => "true",
                Ok(false) => "false",
                Err(EpochError::StaleEpoch { .. }) => "stale",
                Err(EpochError::StartOffsetRegressed { .. }) => "regressed",
                Err(error) => panic!("unexpected {error:?}"),
            };
            let case = format!("{before:?} assign ({epoch}, {start_offset})");
            assert_eq!(found, outcome, "{case}");
            assert_eq!(pairs(&history), after, "{case}");
        }
    }

    #[test]
    fn end_offset_for_table() {
        // Table of Kafka's OffsetForLeaderEpoch cases over the history
        // (2, 10), (4, 30), (5, 30), (8, 70) with log end 90: latest, known, unknown between
        // two known epochs, an epoch that wrote nothing, below the first, above the latest.
        let history = history(&[(2, 10), (4, 30), (5, 30), (8, 70)]);
        let log_end = Offset(90);
        let cases: &[(u32, Option<(u32, u64)>)] = &[
            (8, Some((8, 90))),
            (2, Some((2, 30))),
            (5, Some((5, 70))),
            (4, Some((4, 30))),
            (3, Some((2, 30))),
            (6, Some((5, 70))),
            (7, Some((5, 70))),
            (1, None),
            (0, None),
            (9, None),
            (u32::MAX, None),
        ];
        for &(epoch, expected) in cases {
            let expected = expected.map(|(epoch, offset)| (Epoch(epoch), Offset(offset)));
            assert_eq!(
                history.end_offset_for(Epoch(epoch), log_end),
                expected,
                "epoch={epoch}"
            );
        }
        let single = self::history(&[(3, 5)]);
        assert_eq!(
            single.end_offset_for(Epoch(3), Offset(5)),
            Some((Epoch(3), Offset(5)))
        );
        assert_eq!(
            EpochHistory::new().end_offset_for(Epoch(0), Offset(0)),
            None
        );
    }

    #[test]
    #[should_panic(expected = "below the latest epoch's start")]
    fn end_offset_for_rejects_a_log_end_below_the_latest_start() {
        // A log end below the latest epoch's start means the history missed a truncation.
        let _ = history(&[(1, 0), (2, 50)]).end_offset_for(Epoch(1), Offset(49));
    }

    #[test]
    fn truncate_from_table() {
        // Table: (truncation offset, history after), starting from (1, 0), (2, 10), (3, 10),
        // (4, 25). Epochs starting at or above the offset go; an epoch starting below stays.
        let before = [(1, 0), (2, 10), (3, 10), (4, 25)];
        let cases: &[(u64, &[(u32, u64)])] = &[
            (0, &[]),
            (1, &[(1, 0)]),
            (10, &[(1, 0)]),
            (11, &[(1, 0), (2, 10), (3, 10)]),
            (25, &[(1, 0), (2, 10), (3, 10)]),
            (26, &[(1, 0), (2, 10), (3, 10), (4, 25)]),
            (u64::MAX, &[(1, 0), (2, 10), (3, 10), (4, 25)]),
        ];
        for &(offset, after) in cases {
            let mut history = history(&before);
            history.truncate_from(Offset(offset));
            assert_eq!(pairs(&history), after, "truncate_from({offset})");
        }
    }

    #[test]
    fn truncate_before_table() {
        // Table: (new log start, history after), starting from (1, 0), (2, 10), (3, 10),
        // (4, 25). The epoch covering the log start is kept and starts at it; empty epochs
        // at the boundary collapse into the last of them, as in Kafka's truncateFromStart.
        let before = [(1, 0), (2, 10), (3, 10), (4, 25)];
        let cases: &[(u64, &[(u32, u64)])] = &[
            (0, &[(1, 0), (2, 10), (3, 10), (4, 25)]),
            (5, &[(1, 5), (2, 10), (3, 10), (4, 25)]),
            (10, &[(3, 10), (4, 25)]),
            (24, &[(3, 24), (4, 25)]),
            (25, &[(4, 25)]),
            (1000, &[(4, 1000)]),
        ];
        for &(log_start, after) in cases {
            let mut history = history(&before);
            history.truncate_before(Offset(log_start));
            assert_eq!(pairs(&history), after, "truncate_before({log_start})");
        }
        let mut late = history(&[(7, 100)]);
        late.truncate_before(Offset(50));
        assert_eq!(pairs(&late), [(7, 100)]);
        let mut empty = EpochHistory::new();
        empty.truncate_before(Offset(50));
        assert!(empty.entries().is_empty());
    }

    #[test]
    fn latest_and_default() {
        // latest() is the last entry; Default is the empty history, like new().
        assert_eq!(EpochHistory::default(), EpochHistory::new());
        assert_eq!(EpochHistory::new().latest(), None);
        let latest = history(&[(1, 0), (6, 40)]).latest();
        assert_eq!(
            latest,
            Some(EpochEntry {
                epoch: Epoch(6),
                start_offset: Offset(40)
            })
        );
    }

    #[test]
    fn encode_layout_is_pinned() {
        // The byte layout is a format: a change here needs a version bump.
        let bytes = history(&[(0x0102, 0x0304)]).encode();
        let mut expected = Vec::new();
        expected.extend_from_slice(b"RLEP");
        expected.extend_from_slice(&[1, 0, 0, 0]);
        expected.extend_from_slice(&[1, 0, 0, 0]);
        expected.extend_from_slice(&[0x02, 0x01, 0, 0]);
        expected.extend_from_slice(&[0x04, 0x03, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&crc32c(&expected).to_le_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn decode_reports_each_defect() {
        // Table: one hand-made defect per error variant, each reported as that variant.
        let good = history(&[(1, 0), (2, 10)]).encode();
        let check = |bytes: &[u8], name: &str, matches: fn(&EpochError) -> bool| {
            let error = EpochHistory::decode(bytes).unwrap_err();
            assert!(matches(&error), "{name}: got {error:?}");
        };
        check(b"", "empty", |error| {
            matches!(error, EpochError::TooShort { .. })
        });
        let mut bad_magic = good.clone();
        bad_magic[MAGIC_POSITION + 3] = b'X';
        check(&bad_magic, "magic", |error| {
            matches!(error, EpochError::BadMagic { .. })
        });
        let mut bad_version = good.clone();
        bad_version[VERSION_POSITION] = 9;
        check(&bad_version, "version", |error| {
            matches!(error, EpochError::UnsupportedVersion { version: 9 })
        });
        check(&good[..good.len() - 1], "torn", |error| {
            matches!(error, EpochError::LengthMismatch { .. })
        });
        let mut bad_checksum = good.clone();
        bad_checksum[ENTRIES_POSITION] ^= 0x80;
        check(&bad_checksum, "crc", |error| {
            matches!(error, EpochError::BadChecksum { .. })
        });
        let second = ENTRIES_POSITION + ENTRY_SIZE_BYTES;
        let mut same_epoch = good.clone();
        same_epoch[second + ENTRY_EPOCH_POSITION] = 1;
        reseal(&mut same_epoch);
        check(&same_epoch, "epoch order", |error| {
            matches!(error, EpochError::EpochNotIncreasing { entry_index: 1 })
        });
        let mut start_back = history(&[(1, 5), (2, 10)]).encode();
        start_back[second + ENTRY_START_OFFSET_POSITION] = 4;
        reseal(&mut start_back);
        check(&start_back, "start order", |error| {
            matches!(error, EpochError::StartOffsetDecreasing { entry_index: 1 })
        });
    }

    #[test]
    fn store_and_load() {
        // A missing file loads as the empty history; store() leaves only the checkpoint (its
        // tmp file is renamed away), load() returns what was stored, and a second store
        // replaces the first.
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(EpochHistory::load(dir.path()).unwrap(), EpochHistory::new());
        let mut history = history(&[(1, 0), (3, 40)]);
        history.store(dir.path()).unwrap();
        assert!(dir.path().join(EpochHistory::FILE_NAME).exists());
        assert!(!dir.path().join("leader-epoch-checkpoint.tmp").exists());
        assert_eq!(EpochHistory::load(dir.path()).unwrap(), history);
        history.assign(Epoch(4), Offset(41)).unwrap();
        history.store(dir.path()).unwrap();
        assert_eq!(EpochHistory::load(dir.path()).unwrap(), history);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn load_never_turns_a_damaged_file_into_an_empty_history() {
        // Every torn prefix (including the empty file) and a garbled byte give an EpochError;
        // a stale tmp file left by a crash does not change what load() reads.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EpochHistory::FILE_NAME);
        let good = history(&[(1, 0), (2, 7), (9, 300)]).encode();
        for length in 0..good.len() {
            fs::write(&path, &good[..length]).unwrap();
            assert!(
                EpochHistory::load(dir.path()).is_err(),
                "prefix of {length} bytes"
            );
        }
        let mut garbled = good.clone();
        garbled[ENTRIES_POSITION + ENTRY_START_OFFSET_POSITION] ^= 0x10;
        fs::write(&path, &garbled).unwrap();
        let error = EpochHistory::load(dir.path()).unwrap_err();
        assert!(matches!(error, EpochError::BadChecksum { .. }), "{error:?}");
        fs::write(&path, &good).unwrap();
        fs::write(dir.path().join("leader-epoch-checkpoint.tmp"), b"torn").unwrap();
        assert_eq!(
            pairs(&EpochHistory::load(dir.path()).unwrap()),
            [(1, 0), (2, 7), (9, 300)]
        );
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(history in history_strategy()) {
            // decode(encode(history)) is the same history.
            prop_assert_eq!(EpochHistory::decode(&history.encode()).unwrap(), history);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            // Arbitrary bytes give a Result, never a panic.
            let _ = EpochHistory::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_past_the_checksum(
            body in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            // Garbage entries behind a valid header and checksum reach the ordering checks,
            // which must reject them with an error rather than panic or accept a bad order.
            let entry_count = u32::try_from(body.len() / ENTRY_SIZE_BYTES).unwrap();
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&MAGIC);
            bytes.extend_from_slice(&VERSION.to_le_bytes());
            bytes.extend_from_slice(&entry_count.to_le_bytes());
            bytes.extend_from_slice(&body[..body.len() / ENTRY_SIZE_BYTES * ENTRY_SIZE_BYTES]);
            bytes.extend_from_slice(&[0; CHECKSUM_SIZE_BYTES]);
            reseal(&mut bytes);
            if let Ok(history) = EpochHistory::decode(&bytes) {
                history.check_invariants();
            }
        }

        #[test]
        fn damaged_images_are_rejected(
            history in history_strategy(),
            damage in any::<prop::sample::Index>(),
            bit in 0..8u32,
        ) {
            // Any truncation and any single flipped bit give an error, never another history.
            let bytes = history.encode();
            let at = damage.index(bytes.len());
            prop_assert!(EpochHistory::decode(&bytes[..at]).is_err());
            let mut flipped = bytes.clone();
            flipped[at] ^= 1 << bit;
            prop_assert!(EpochHistory::decode(&flipped).is_err());
        }

        #[test]
        fn operations_keep_the_invariants(
            operations in proptest::collection::vec((0..4u8, 0..20u32, 0..200u64), 0..60),
        ) {
            // Random assigns (valid or not) and truncations keep the invariants; a refused
            // assign leaves the history unchanged; end_offset_for of the latest epoch is the
            // log end and of any known epoch is never below its start.
            let mut history = EpochHistory::new();
            for (kind, epoch, offset) in operations {
                let before = history.clone();
                match kind {
                    0 | 1 => {
                        if history.assign(Epoch(epoch), Offset(offset)).is_err() {
                            prop_assert_eq!(&history, &before);
                        }
                    }
                    2 => history.truncate_from(Offset(offset)),
                    _ => history.truncate_before(Offset(offset)),
                }
                history.check_invariants();
                if let Some(latest) = history.latest() {
                    let log_end = latest.start_offset.add_count(5);
                    prop_assert_eq!(
                        history.end_offset_for(latest.epoch, log_end),
                        Some((latest.epoch, log_end))
                    );
                    for entry in history.entries() {
                        let (_, end) = history.end_offset_for(entry.epoch, log_end).unwrap();
                        prop_assert!(end >= entry.start_offset);
                    }
                }
            }
        }
    }
}
