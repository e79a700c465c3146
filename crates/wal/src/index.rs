//! The sparse offset -> position index of one segment.
//!
//! A reader that wants offset `target` asks [`SegmentIndex::lookup`] for the greatest indexed
//! batch at or below `target`, then scans batches forward from that position. The index is
//! derived data: the segment is the truth, and a missing or invalid index file is rebuilt
//! from a scan of the segment (the caller logs why).
//!
//! When a batch gets an entry: always the first batch of the segment, and then every batch
//! that starts at least `interval_bytes` after the position of the last entry (Kafka's
//! `index.interval.bytes`). The rule is expressed in positions rather than in a running sum of
//! batch sizes, so filler bytes between commits count too, and an index loaded from disk can
//! keep growing without extra state. Consequence: a batch without an entry starts less than
//! `interval_bytes` after its entry, so a forward scan from [`SegmentIndex::lookup`]'s answer
//! reads at most `interval_bytes + batch size` bytes to get through the batch holding `target`.
//!
//! Invariants (checked by [`SegmentIndex::check_invariants`]):
//! - entries are strictly increasing in offset and in position;
//! - every entry's offset is at or above the segment's base offset, and both its relative
//!   offset (`offset - base`) and its position fit in a `u32` (segments are < 4 GiB);
//! - the next batch accepted by [`SegmentIndex::on_batch`] starts above the last entry, in
//!   offset and in position.
//!
//! The file `<20-digit base offset>.index` holds [`SegmentIndex::encode`]'s image, little-endian
//! and fixed width (layout above the constants below). It is replaced durably: tmp file, fsync,
//! rename, fsync of the directory.

use std::io;
use std::mem::size_of;
use std::path::{Path, PathBuf};

use crate::metadata_file::{crc32c, load_after_fsync, store_durably, u32_at, u64_at};
use ringlog_types::{units::KIB, Offset};

/// Default distance in bytes between two index entries (Kafka's `index.interval.bytes`).
pub const INTERVAL_BYTES_DEFAULT: u64 = 4 * KIB;

// File image, all integers little-endian:
//
//   position      size   field
//   0             4      magic "RLIX"
//   4             4      version (u32) = 1
//   8             8      base offset of the segment (u64)
//   16            8      interval bytes (u64)
//   24            4      entry count n (u32)
//   28            8 * n  entries: relative offset (u32) = offset - base, position (u32)
//   28 + 8n       4      CRC32C (Castagnoli) of bytes [0, 28 + 8n)
const MAGIC: [u8; 4] = *b"RLIX";
const VERSION: u32 = 1;
const MAGIC_POSITION: usize = 0;
const VERSION_POSITION: usize = MAGIC_POSITION + MAGIC.len();
const BASE_OFFSET_POSITION: usize = VERSION_POSITION + size_of::<u32>();
const INTERVAL_POSITION: usize = BASE_OFFSET_POSITION + size_of::<u64>();
const ENTRY_COUNT_POSITION: usize = INTERVAL_POSITION + size_of::<u64>();
const ENTRIES_POSITION: usize = ENTRY_COUNT_POSITION + size_of::<u32>();
const ENTRY_SIZE_BYTES: usize = size_of::<u32>() + size_of::<u32>();
const CHECKSUM_SIZE_BYTES: usize = size_of::<u32>();
const FILE_SIZE_BYTES_MIN: usize = ENTRIES_POSITION + CHECKSUM_SIZE_BYTES;
const _: () = assert!(ENTRIES_POSITION == 28);
const _: () = assert!(ENTRY_SIZE_BYTES == 8);

/// One index entry: the batch whose base offset is `offset` starts at byte `position`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Base offset of the indexed batch.
    pub offset: Offset,
    /// Byte position of the batch inside the segment file.
    pub position: u64,
}

/// Why an index file could not be used. The caller rebuilds the index from the segment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// Fewer bytes than an empty index needs.
    #[error("index file is {size_bytes} bytes, the minimum is {size_bytes_min}")]
    TooShort {
        /// Size of what was read.
        size_bytes: u64,
        /// Size of an index with no entries.
        size_bytes_min: u64,
    },
    /// The file does not start with the index magic.
    #[error("index file has magic {found:?}, expected {MAGIC:?}")]
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// A format version this build cannot read.
    #[error("index file has version {version}, this build reads version {VERSION}")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// The size does not match the entry count (a torn or padded file).
    #[error("index file is {size_bytes} bytes, {entry_count} entries need {size_bytes_expected}")]
    LengthMismatch {
        /// Entry count stored in the header.
        entry_count: u32,
        /// Size of what was read.
        size_bytes: u64,
        /// Size implied by the entry count.
        size_bytes_expected: u64,
    },
    /// The stored CRC32C does not match the bytes.
    #[error("index checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadChecksum {
        /// CRC32C stored in the file.
        stored: u32,
        /// CRC32C of the bytes read.
        computed: u32,
    },
    /// The file belongs to another segment.
    #[error("index file is for base offset {found}, expected {expected}")]
    WrongBaseOffset {
        /// Base offset stored in the file.
        found: Offset,
        /// Base offset of the segment being opened.
        expected: Offset,
    },
    /// An entry does not come strictly after the previous one, in offset and position.
    #[error("index entry {entry_index} does not strictly follow the previous one")]
    NotIncreasing {
        /// Zero-based number of the offending entry.
        entry_index: usize,
    },
    /// An entry's offset does not fit in a `u64` once the base offset is added.
    #[error("index entry {entry_index} overflows the offset range")]
    OffsetOverflow {
        /// Zero-based number of the offending entry.
        entry_index: usize,
    },
    /// Reading the file failed.
    #[error("reading index file {path}: {source}")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The sparse offset -> position index of one segment (see the module doc).
#[derive(Clone, Debug)]
pub struct SegmentIndex {
    base_offset: Offset,
    interval_bytes: u64,
    entries: Vec<IndexEntry>,
    /// The next batch's base offset must be at least this (the last batch's base + 1).
    next_offset_min: Offset,
    /// The next batch's position must be at least this (the end of the last batch).
    next_position_min: u64,
}

impl SegmentIndex {
    /// An empty index for the segment whose first offset is `base_offset`. An `interval_bytes`
    /// of 0 indexes every batch.
    #[must_use]
    pub fn new(base_offset: Offset, interval_bytes: u64) -> SegmentIndex {
        SegmentIndex {
            base_offset,
            interval_bytes,
            entries: Vec::new(),
            next_offset_min: base_offset,
            next_position_min: 0,
        }
    }

    /// Called for every batch appended (or found by recovery), in order. Panics if offsets or
    /// positions do not increase, if batches overlap, or if the batch does not fit a segment:
    /// these are caller bugs, never bad input. After [`SegmentIndex::load`] it accepts the
    /// batches that follow the last entry's batch.
    pub fn on_batch(&mut self, base_offset: Offset, position: u64, size_bytes: u64) {
        assert!(
            size_bytes > 0,
            "empty batch: base_offset={base_offset} position={position}"
        );
        assert!(
            base_offset >= self.next_offset_min,
            "offsets must increase: base_offset={base_offset} next_offset_min={}",
            self.next_offset_min
        );
        assert!(
            position >= self.next_position_min,
            "batches must not overlap: position={position} next_position_min={}",
            self.next_position_min
        );
        assert!(
            position <= u64::from(u32::MAX),
            "segment position beyond 4 GiB: position={position}"
        );
        let relative_offset = base_offset.count_since(self.base_offset);
        assert!(
            relative_offset <= u64::from(u32::MAX),
            "relative offset beyond u32: base_offset={base_offset} segment base={}",
            self.base_offset
        );
        let position_end = position.checked_add(size_bytes).expect("position overflow");
        if self.needs_entry(position) {
            self.entries.push(IndexEntry {
                offset: base_offset,
                position,
            });
        }
        self.next_offset_min = base_offset.add_count(1);
        self.next_position_min = position_end;
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// Whether a batch starting at `position` gets an entry (see the module doc).
    fn needs_entry(&self, position: u64) -> bool {
        match self.entries.last() {
            None => true,
            Some(last) => position - last.position >= self.interval_bytes,
        }
    }

    /// The greatest entry whose offset is `<= target`: the position from which to scan
    /// forward to find `target`. `None` if `target` is below the first entry (or there is none).
    #[must_use]
    pub fn lookup(&self, target: Offset) -> Option<IndexEntry> {
        let after = self.entries.partition_point(|entry| entry.offset <= target);
        after
            .checked_sub(1)
            .and_then(|index| self.entries.get(index))
            .copied()
    }

    /// Drops every entry at or above `offset`, because the log is truncated from `offset`.
    /// The next batch may then start at `offset` again, anywhere after the last kept entry.
    pub fn truncate_from(&mut self, offset: Offset) {
        let kept_count = self.entries.partition_point(|entry| entry.offset < offset);
        self.entries.truncate(kept_count);
        if offset < self.next_offset_min {
            // The truncated batches' positions are unknown here; only the kept entries bound
            // where the next batch may start.
            self.next_offset_min = offset.max(self.base_offset);
            self.next_position_min = self.entries.last().map_or(0, |last| last.position + 1);
        }
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// The entries, in increasing offset and position.
    #[must_use]
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The first offset of the segment.
    #[must_use]
    pub fn base_offset(&self) -> Offset {
        self.base_offset
    }

    /// The minimum distance in bytes between two entries' positions.
    #[must_use]
    pub fn interval_bytes(&self) -> u64 {
        self.interval_bytes
    }

    /// The number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file name of the index of the segment starting at `base_offset`.
    #[must_use]
    pub fn file_name(base_offset: Offset) -> String {
        format!("{:020}.index", base_offset.0)
    }

    /// Panics if an invariant listed in the module doc does not hold. O(entries).
    pub fn check_invariants(&self) {
        for entry in &self.entries {
            assert!(
                entry.offset >= self.base_offset,
                "entry below base: offset={} base={}",
                entry.offset,
                self.base_offset
            );
            let relative_offset = entry.offset.count_since(self.base_offset);
            assert!(
                relative_offset <= u64::from(u32::MAX),
                "relative offset={relative_offset}"
            );
            assert!(
                entry.position <= u64::from(u32::MAX),
                "position={}",
                entry.position
            );
        }
        for pair in self.entries.windows(2) {
            assert!(
                pair[0].offset < pair[1].offset,
                "offsets not increasing: {pair:?}"
            );
            assert!(
                pair[0].position < pair[1].position,
                "positions not increasing: {pair:?}"
            );
        }
        assert!(self.next_offset_min >= self.base_offset);
        if let Some(last) = self.entries.last() {
            assert!(last.offset < self.next_offset_min, "last={last:?} {self:?}");
            assert!(
                last.position < self.next_position_min,
                "last={last:?} {self:?}"
            );
        }
    }

    /// The file image (layout above the constants). Panics if an entry does not fit the
    /// format; [`SegmentIndex::on_batch`] already refused such entries.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let entry_count = u32::try_from(self.entries.len()).expect("index entry count beyond u32");
        let size_bytes = ENTRIES_POSITION + self.entries.len() * ENTRY_SIZE_BYTES;
        let mut bytes = Vec::with_capacity(size_bytes + CHECKSUM_SIZE_BYTES);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&self.base_offset.0.to_le_bytes());
        bytes.extend_from_slice(&self.interval_bytes.to_le_bytes());
        bytes.extend_from_slice(&entry_count.to_le_bytes());
        for entry in &self.entries {
            let relative_offset = u32::try_from(entry.offset.count_since(self.base_offset))
                .expect("relative offset beyond u32");
            let position = u32::try_from(entry.position).expect("position beyond u32");
            bytes.extend_from_slice(&relative_offset.to_le_bytes());
            bytes.extend_from_slice(&position.to_le_bytes());
        }
        assert_eq!(bytes.len(), size_bytes);
        let checksum = crc32c(&bytes);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// Parses a file image and checks it belongs to the segment at `expected_base_offset`.
    /// Never panics: every defect of `bytes` is an [`IndexError`].
    pub fn decode(bytes: &[u8], expected_base_offset: Offset) -> Result<SegmentIndex, IndexError> {
        let entry_count = decode_header(bytes)?;
        let base_offset = Offset(u64_at(bytes, BASE_OFFSET_POSITION));
        if base_offset != expected_base_offset {
            return Err(IndexError::WrongBaseOffset {
                found: base_offset,
                expected: expected_base_offset,
            });
        }
        let interval_bytes = u64_at(bytes, INTERVAL_POSITION);
        let entries_end = bytes.len() - CHECKSUM_SIZE_BYTES;
        let entries = decode_entries(&bytes[ENTRIES_POSITION..entries_end], base_offset)?;
        assert_eq!(
            entries.len(),
            usize::try_from(entry_count).expect("u32 fits usize")
        );
        let next_offset_min = entries
            .last()
            .map_or(base_offset, |last| last.offset.add_count(1));
        let next_position_min = entries.last().map_or(0, |last| last.position + 1);
        let index = SegmentIndex {
            base_offset,
            interval_bytes,
            entries,
            next_offset_min,
            next_position_min,
        };
        #[cfg(debug_assertions)]
        index.check_invariants();
        Ok(index)
    }

    /// Writes the index durably to `<dir>/<20-digit base>.index`: tmp file, write, fsync,
    /// rename, fsync `dir`. Blocking: call it from a background thread, never a shard thread.
    pub fn store(&self, dir: &Path) -> io::Result<()> {
        let file_name = SegmentIndex::file_name(self.base_offset);
        store_durably(dir, &file_name, &self.encode())
    }

    /// Reads the index of the segment at `base_offset` from `dir`. `Ok(None)` if the file is
    /// missing; an error if it is present but unusable. Blocking, like [`SegmentIndex::store`].
    pub fn load(dir: &Path, base_offset: Offset) -> Result<Option<SegmentIndex>, IndexError> {
        let path = dir.join(SegmentIndex::file_name(base_offset));
        let bytes = match load_after_fsync(dir, &path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(source) => return Err(IndexError::Io { path, source }),
        };
        SegmentIndex::decode(&bytes, base_offset).map(Some)
    }
}

/// Checks length, magic, version, size against the entry count and checksum, in that order;
/// returns the entry count. After it succeeds every header field can be read.
fn decode_header(bytes: &[u8]) -> Result<u32, IndexError> {
    let size_bytes = bytes.len() as u64;
    if bytes.len() < FILE_SIZE_BYTES_MIN {
        return Err(IndexError::TooShort {
            size_bytes,
            size_bytes_min: FILE_SIZE_BYTES_MIN as u64,
        });
    }
    let mut magic = [0; MAGIC.len()];
    magic.copy_from_slice(&bytes[MAGIC_POSITION..VERSION_POSITION]);
    if magic != MAGIC {
        return Err(IndexError::BadMagic { found: magic });
    }
    let version = u32_at(bytes, VERSION_POSITION);
    if version != VERSION {
        return Err(IndexError::UnsupportedVersion { version });
    }
    let entry_count = u32_at(bytes, ENTRY_COUNT_POSITION);
    let size_bytes_expected =
        FILE_SIZE_BYTES_MIN as u64 + u64::from(entry_count) * ENTRY_SIZE_BYTES as u64;
    if size_bytes != size_bytes_expected {
        return Err(IndexError::LengthMismatch {
            entry_count,
            size_bytes,
            size_bytes_expected,
        });
    }
    let checksum_position = bytes.len() - CHECKSUM_SIZE_BYTES;
    let stored = u32_at(bytes, checksum_position);
    let computed = crc32c(&bytes[..checksum_position]);
    if stored != computed {
        return Err(IndexError::BadChecksum { stored, computed });
    }
    Ok(entry_count)
}

/// Parses the entries region (a whole number of entries) and checks they strictly increase.
fn decode_entries(region: &[u8], base_offset: Offset) -> Result<Vec<IndexEntry>, IndexError> {
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(region.len() / ENTRY_SIZE_BYTES);
    for (entry_index, chunk) in region.chunks_exact(ENTRY_SIZE_BYTES).enumerate() {
        let relative_offset = u32_at(chunk, 0);
        let position = u64::from(u32_at(chunk, size_of::<u32>()));
        let offset = base_offset
            .0
            .checked_add(u64::from(relative_offset))
            .ok_or(IndexError::OffsetOverflow { entry_index })?;
        let entry = IndexEntry {
            offset: Offset(offset),
            position,
        };
        if let Some(previous) = entries.last() {
            if entry.offset <= previous.offset || entry.position <= previous.position {
                return Err(IndexError::NotIncreasing { entry_index });
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::fs;

    /// One batch of a generated segment.
    #[derive(Clone, Copy, Debug)]
    struct Batch {
        base_offset: Offset,
        record_count: u64,
        position: u64,
        size_bytes: u64,
    }

    const BATCH_SIZE_BYTES_MAX: u64 = 32 * KIB;

    /// Lays out batches from (record count, size, filler before it) triples.
    fn layout(base_offset: Offset, shapes: &[(u64, u64, u64)]) -> Vec<Batch> {
        let mut batches = Vec::with_capacity(shapes.len());
        let mut offset = base_offset;
        let mut position = 0;
        for &(record_count, size_bytes, filler_bytes) in shapes {
            position += filler_bytes;
            batches.push(Batch {
                base_offset: offset,
                record_count,
                position,
                size_bytes,
            });
            offset = offset.add_count(record_count);
            position += size_bytes;
        }
        batches
    }

    fn index_of(base_offset: Offset, interval_bytes: u64, batches: &[Batch]) -> SegmentIndex {
        let mut index = SegmentIndex::new(base_offset, interval_bytes);
        for batch in batches {
            index.on_batch(batch.base_offset, batch.position, batch.size_bytes);
        }
        index
    }

    /// Recomputes the checksum of a hand-edited image, to reach the checks after it.
    fn reseal(bytes: &mut [u8]) {
        let checksum_position = bytes.len() - CHECKSUM_SIZE_BYTES;
        let checksum = crc32c(&bytes[..checksum_position]);
        bytes[checksum_position..].copy_from_slice(&checksum.to_le_bytes());
    }

    fn shapes_strategy() -> impl Strategy<Value = Vec<(u64, u64, u64)>> {
        let filler = prop_oneof![3 => Just(0u64), 1 => 1..4 * KIB];
        proptest::collection::vec((1..100u64, 61..=BATCH_SIZE_BYTES_MAX, filler), 0..120)
    }

    #[test]
    fn crc32c_matches_the_castagnoli_check_value() {
        // The standard check value of CRC-32C over "123456789" (RFC 3720, iSCSI) proves the
        // algorithm is Castagnoli, not the zlib CRC-32.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn first_batch_and_then_every_interval_are_indexed() {
        // Ten 1 KiB batches with a 4 KiB interval: the first batch is indexed, then the first
        // batch starting at least 4 KiB after the last entry (positions 0, 4096, 8192).
        let batches = layout(Offset(100), &[(10, KIB, 0); 10]);
        let index = index_of(Offset(100), 4 * KIB, &batches);
        let expected: Vec<IndexEntry> = [(100, 0), (140, 4096), (180, 8192)]
            .iter()
            .map(|&(offset, position)| IndexEntry {
                offset: Offset(offset),
                position,
            })
            .collect();
        assert_eq!(index.entries(), expected.as_slice());
        assert_eq!(index.len(), 3);
        assert!(!index.is_empty());
        assert_eq!(index.base_offset(), Offset(100));
        assert_eq!(index.interval_bytes(), 4 * KIB);
    }

    #[test]
    fn zero_interval_indexes_every_batch() {
        // An interval of 0 bytes means every batch is its own entry.
        let batches = layout(Offset(0), &[(3, 100, 0), (1, 200, 7), (5, 61, 0)]);
        let index = index_of(Offset(0), 0, &batches);
        let positions: Vec<u64> = index.entries().iter().map(|entry| entry.position).collect();
        assert_eq!(positions, vec![0, 107, 307]);
    }

    #[test]
    fn lookup_edges() {
        // Table: targets below, on and between entries, and past the last batch.
        let batches = layout(Offset(50), &[(10, 2 * KIB, 0); 6]);
        let index = index_of(Offset(50), 4 * KIB, &batches);
        assert_eq!(index.entries().len(), 3); // offsets 50, 70, 90
        let cases: &[(u64, Option<(u64, u64)>)] = &[
            (0, None),
            (49, None),
            (50, Some((50, 0))),
            (69, Some((50, 0))),
            (70, Some((70, 4096))),
            (89, Some((70, 4096))),
            (90, Some((90, 8192))),
            (1_000_000, Some((90, 8192))),
        ];
        for &(target, expected) in cases {
            let expected = expected.map(|(offset, position)| IndexEntry {
                offset: Offset(offset),
                position,
            });
            assert_eq!(index.lookup(Offset(target)), expected, "target={target}");
        }
        assert_eq!(
            SegmentIndex::new(Offset(0), 4 * KIB).lookup(Offset(7)),
            None
        );
    }

    #[test]
    #[should_panic(expected = "offsets must increase")]
    fn on_batch_rejects_a_repeated_offset() {
        // A batch whose base offset is not above the previous one is a caller bug.
        let mut index = SegmentIndex::new(Offset(0), 0);
        index.on_batch(Offset(5), 0, 100);
        index.on_batch(Offset(5), 100, 100);
    }

    #[test]
    #[should_panic(expected = "batches must not overlap")]
    fn on_batch_rejects_overlapping_batches() {
        // A batch starting inside the previous one is a caller bug.
        let mut index = SegmentIndex::new(Offset(0), 0);
        index.on_batch(Offset(0), 0, 100);
        index.on_batch(Offset(1), 99, 100);
    }

    #[test]
    #[should_panic(expected = "relative offset beyond u32")]
    fn on_batch_rejects_offsets_the_format_cannot_hold() {
        // Relative offsets are stored as u32; a segment holding more is a caller bug.
        let mut index = SegmentIndex::new(Offset(0), 0);
        index.on_batch(Offset(1 << 32), 0, 100);
    }

    #[test]
    fn truncate_from_then_reappend() {
        // Truncating at an indexed batch drops it and everything above; the same batches can
        // then be appended again at the same positions.
        let batches = layout(Offset(0), &[(10, 2 * KIB, 0); 6]);
        let mut index = index_of(Offset(0), 4 * KIB, &batches);
        index.truncate_from(Offset(40));
        let offsets: Vec<u64> = index.entries().iter().map(|entry| entry.offset.0).collect();
        assert_eq!(offsets, vec![0, 20]);
        for batch in &batches[4..] {
            index.on_batch(batch.base_offset, batch.position, batch.size_bytes);
        }
        assert_eq!(
            index.entries(),
            index_of(Offset(0), 4 * KIB, &batches).entries()
        );
        index.truncate_from(Offset(0));
        assert!(index.is_empty());
        index.on_batch(Offset(0), 0, 10);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn file_name_is_the_zero_padded_base_offset() {
        // Index files sort with their segments: 20 digits, like the segment names.
        assert_eq!(
            SegmentIndex::file_name(Offset(42)),
            "00000000000000000042.index"
        );
        assert_eq!(
            SegmentIndex::file_name(Offset(u64::MAX)),
            "18446744073709551615.index"
        );
    }

    #[test]
    fn encode_layout_is_pinned() {
        // The byte layout is a format: a change here needs a version bump.
        let mut index = SegmentIndex::new(Offset(0x0102), 0x0304);
        index.on_batch(Offset(0x0105), 0x0a0b, 10);
        let bytes = index.encode();
        let mut expected = Vec::new();
        expected.extend_from_slice(b"RLIX");
        expected.extend_from_slice(&[1, 0, 0, 0]);
        expected.extend_from_slice(&[0x02, 0x01, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0x04, 0x03, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[1, 0, 0, 0]);
        expected.extend_from_slice(&[3, 0, 0, 0, 0x0b, 0x0a, 0, 0]);
        expected.extend_from_slice(&crc32c(&expected).to_le_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn decode_reports_each_defect() {
        // Table: one hand-made defect per error variant, each reported as that variant.
        let batches = layout(Offset(7), &[(1, 100, 0), (1, 100, 0)]);
        let good = index_of(Offset(7), 0, &batches).encode();
        let check =
            |bytes: &[u8], expected_base: u64, name: &str, matches: fn(&IndexError) -> bool| {
                let error = SegmentIndex::decode(bytes, Offset(expected_base)).unwrap_err();
                assert!(matches(&error), "{name}: got {error:?}");
            };
        check(&good[..FILE_SIZE_BYTES_MIN - 1], 7, "short", |error| {
            matches!(error, IndexError::TooShort { .. })
        });
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        check(&bad_magic, 7, "magic", |error| {
            matches!(error, IndexError::BadMagic { .. })
        });
        let mut bad_version = good.clone();
        bad_version[VERSION_POSITION] = 2;
        check(&bad_version, 7, "version", |error| {
            matches!(error, IndexError::UnsupportedVersion { version: 2 })
        });
        check(&good[..good.len() - 1], 7, "torn", |error| {
            matches!(error, IndexError::LengthMismatch { .. })
        });
        let mut bad_checksum = good.clone();
        bad_checksum[ENTRIES_POSITION] ^= 1;
        check(&bad_checksum, 7, "crc", |error| {
            matches!(error, IndexError::BadChecksum { .. })
        });
        check(&good, 8, "base", |error| {
            matches!(error, IndexError::WrongBaseOffset { .. })
        });
        let mut not_increasing = good.clone();
        let second = ENTRIES_POSITION + ENTRY_SIZE_BYTES;
        not_increasing[second..second + ENTRY_SIZE_BYTES].fill(0);
        reseal(&mut not_increasing);
        check(&not_increasing, 7, "order", |error| {
            matches!(error, IndexError::NotIncreasing { entry_index: 1 })
        });
        let mut overflow = good.clone();
        overflow[BASE_OFFSET_POSITION..INTERVAL_POSITION].copy_from_slice(&u64::MAX.to_le_bytes());
        reseal(&mut overflow);
        check(&overflow, u64::MAX, "overflow", |error| {
            matches!(error, IndexError::OffsetOverflow { entry_index: 1 })
        });
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        // Exhaustive over a small image: flipping any one bit gives an error, never an index.
        let batches = layout(Offset(1000), &[(5, 3 * KIB, 0); 8]);
        let good = index_of(Offset(1000), 4 * KIB, &batches).encode();
        for bit in 0..good.len() * 8 {
            let mut bytes = good.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            assert!(
                SegmentIndex::decode(&bytes, Offset(1000)).is_err(),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn store_and_load_round_trip() {
        // store() leaves exactly the index file (no tmp), load() returns the same entries, a
        // second store replaces the first, and a missing file is Ok(None), not an error.
        let dir = tempfile::tempdir().unwrap();
        assert!(SegmentIndex::load(dir.path(), Offset(10))
            .unwrap()
            .is_none());
        let batches = layout(Offset(10), &[(4, 3 * KIB, 0); 9]);
        let mut index = index_of(Offset(10), 4 * KIB, &batches[..5]);
        index.store(dir.path()).unwrap();
        let name = SegmentIndex::file_name(Offset(10));
        assert!(dir.path().join(&name).exists());
        assert!(!dir.path().join(format!("{name}.tmp")).exists());
        let loaded = SegmentIndex::load(dir.path(), Offset(10)).unwrap().unwrap();
        assert_eq!(loaded.entries(), index.entries());
        for batch in &batches[5..] {
            index.on_batch(batch.base_offset, batch.position, batch.size_bytes);
        }
        index.store(dir.path()).unwrap();
        let loaded = SegmentIndex::load(dir.path(), Offset(10)).unwrap().unwrap();
        assert_eq!(loaded.entries(), index.entries());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn load_reports_a_damaged_file() {
        // A torn or garbled file is an error (the caller rebuilds the index); a stale tmp file
        // left by a crash is ignored by load and overwritten by the next store.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SegmentIndex::file_name(Offset(0)));
        let index = index_of(Offset(0), 0, &layout(Offset(0), &[(1, 100, 0); 4]));
        let good = index.encode();
        fs::write(&path, &good[..good.len() - 3]).unwrap();
        let error = SegmentIndex::load(dir.path(), Offset(0)).unwrap_err();
        assert!(
            matches!(error, IndexError::LengthMismatch { .. }),
            "{error:?}"
        );
        fs::write(&path, b"").unwrap();
        let error = SegmentIndex::load(dir.path(), Offset(0)).unwrap_err();
        assert!(matches!(error, IndexError::TooShort { .. }), "{error:?}");
        let mut garbled = good.clone();
        garbled[ENTRIES_POSITION + 2] ^= 0x40;
        fs::write(&path, &garbled).unwrap();
        let error = SegmentIndex::load(dir.path(), Offset(0)).unwrap_err();
        assert!(matches!(error, IndexError::BadChecksum { .. }), "{error:?}");
        let tmp_path = dir
            .path()
            .join(format!("{}.tmp", SegmentIndex::file_name(Offset(0))));
        fs::write(&tmp_path, b"partial").unwrap();
        index.store(dir.path()).unwrap();
        assert!(!tmp_path.exists());
        let loaded = SegmentIndex::load(dir.path(), Offset(0)).unwrap().unwrap();
        assert_eq!(loaded.entries(), index.entries());
    }

    /// Checks `lookup(target)` for a target inside `batches[batch_index]`: it is the greatest
    /// entry <= target (by linear search), it is the start of a batch at or before the target's,
    /// and scanning from it through the target's batch reads at most interval + max batch size.
    fn check_lookup(
        index: &SegmentIndex,
        batches: &[Batch],
        batch_index: usize,
        target: Offset,
    ) -> Result<(), TestCaseError> {
        let entry = index.lookup(target);
        let linear = index
            .entries()
            .iter()
            .rev()
            .find(|entry| entry.offset <= target);
        prop_assert_eq!(entry, linear.copied());
        let entry = entry.expect("the first batch is always indexed");
        let start = batches.iter().position(|candidate| {
            candidate.position == entry.position && candidate.base_offset == entry.offset
        });
        let start = start.expect("entries point at batch starts");
        prop_assert!(start <= batch_index);
        // The scan reads the file from the entry's position through the end of the target's
        // batch, filler included.
        let target_batch = batches[batch_index];
        let scanned_bytes = target_batch.position + target_batch.size_bytes - entry.position;
        prop_assert!(scanned_bytes <= index.interval_bytes() + BATCH_SIZE_BYTES_MAX);
        // The tighter rule of the module doc: an unindexed batch starts less than one interval
        // after its entry.
        if start < batch_index {
            prop_assert!(target_batch.position - entry.position < index.interval_bytes());
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn lookup_finds_the_greatest_entry_and_bounds_the_scan(
            base in 0..1u64 << 40,
            interval_bytes in 0..=16 * KIB,
            shapes in shapes_strategy(),
        ) {
            // For every batch's first and last offset, and offsets outside the segment:
            // lookup returns the greatest entry <= target (checked against a linear search),
            // the entry is the start of a batch at or before target's batch, and the scan from
            // it through target's batch covers at most interval + max batch size bytes.
            let batches = layout(Offset(base), &shapes);
            let index = index_of(Offset(base), interval_bytes, &batches);
            let first_position = index.entries().first().map(|entry| entry.position);
            prop_assert_eq!(first_position, batches.first().map(|batch| batch.position));
            for (batch_index, batch) in batches.iter().enumerate() {
                let last_offset = batch.base_offset.add_count(batch.record_count - 1);
                for target in [batch.base_offset, last_offset] {
                    check_lookup(&index, &batches, batch_index, target)?;
                }
            }
            if base > 0 {
                prop_assert_eq!(index.lookup(Offset(base - 1)), None);
            }
            prop_assert_eq!(index.lookup(Offset(u64::MAX)), index.entries().last().copied());
        }

        #[test]
        fn truncate_then_replay_rebuilds_the_same_index(
            interval_bytes in 0..=16 * KIB,
            shapes in shapes_strategy(),
            cut in any::<prop::sample::Index>(),
        ) {
            // Truncating at a batch boundary keeps exactly the entries below it, and appending
            // the same batches again gives the index built in one pass.
            let batches = layout(Offset(0), &shapes);
            let full = index_of(Offset(0), interval_bytes, &batches);
            let mut index = full.clone();
            let cut = if batches.is_empty() { 0 } else { cut.index(batches.len()) };
            let cut_offset = batches.get(cut).map_or(Offset(0), |batch| batch.base_offset);
            index.truncate_from(cut_offset);
            prop_assert!(index.entries().iter().all(|entry| entry.offset < cut_offset));
            prop_assert_eq!(index.entries(), &full.entries()[..index.len()]);
            for batch in batches.iter().skip(cut) {
                index.on_batch(batch.base_offset, batch.position, batch.size_bytes);
            }
            prop_assert_eq!(index.entries(), full.entries());
        }

        #[test]
        fn encode_decode_round_trip(
            base in any::<u64>().prop_map(|base| base >> 1),
            interval_bytes in any::<u64>(),
            shapes in shapes_strategy(),
        ) {
            // decode(encode(index)) has the same fields, and encodes to the same bytes.
            let batches = layout(Offset(base), &shapes);
            let index = index_of(Offset(base), interval_bytes, &batches);
            let bytes = index.encode();
            let decoded = SegmentIndex::decode(&bytes, Offset(base)).unwrap();
            prop_assert_eq!(decoded.entries(), index.entries());
            prop_assert_eq!(decoded.base_offset(), index.base_offset());
            prop_assert_eq!(decoded.interval_bytes(), index.interval_bytes());
            prop_assert_eq!(decoded.encode(), bytes);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            // Arbitrary bytes give a Result, never a panic.
            let _ = SegmentIndex::decode(&bytes, Offset(0));
        }

        #[test]
        fn decode_never_panics_past_the_checksum(
            base in any::<u64>(),
            body in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            // Garbage entries behind a valid header and checksum reach the semantic checks,
            // which must reject them with an error rather than panic or build a bad index.
            let entry_count = u32::try_from(body.len() / ENTRY_SIZE_BYTES).unwrap();
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&MAGIC);
            bytes.extend_from_slice(&VERSION.to_le_bytes());
            bytes.extend_from_slice(&base.to_le_bytes());
            bytes.extend_from_slice(&4096u64.to_le_bytes());
            bytes.extend_from_slice(&entry_count.to_le_bytes());
            bytes.extend_from_slice(&body[..body.len() / ENTRY_SIZE_BYTES * ENTRY_SIZE_BYTES]);
            bytes.extend_from_slice(&[0; CHECKSUM_SIZE_BYTES]);
            reseal(&mut bytes);
            if let Ok(index) = SegmentIndex::decode(&bytes, Offset(base)) {
                index.check_invariants();
            }
        }

        #[test]
        fn damaged_images_are_rejected(
            shapes in shapes_strategy(),
            damage in any::<prop::sample::Index>(),
            bit in 0..8u32,
            truncate in any::<bool>(),
        ) {
            // A truncated image or one with a flipped bit is an error, never a wrong index.
            let batches = layout(Offset(3), &shapes);
            let bytes = index_of(Offset(3), 4 * KIB, &batches).encode();
            let at = damage.index(bytes.len());
            let damaged = if truncate {
                bytes[..at].to_vec()
            } else {
                let mut flipped = bytes.clone();
                flipped[at] ^= 1 << bit;
                flipped
            };
            prop_assert!(SegmentIndex::decode(&damaged, Offset(3)).is_err());
        }
    }
}
