//! Offline, read-only reading of partition directories: segments judged by the recovery
//! scanner of `ringlog-wal`, index files and the epoch checkpoint decoded.
//!
//! This is what `Wal::open_partition` would find, without what it would do about it: that
//! call fsyncs, cuts torn tails, fills short files and rewrites derived files, and none of
//! that may happen here. Every file is opened read-only and read into memory; nothing is
//! created, renamed, synced or written. The scan treats segments the way the open does:
//! every segment but the newest is sealed, the newest is the last (`is_last`).
//!
//! Invariants:
//!
//! - Segments are listed in base offset order (the order of their 20-digit names).
//! - The block size comes from the first segment header that decodes, else 4 KiB; it is a
//!   power of two in the range the scanner accepts, and `commit_bytes_max` is at least it
//!   (checked before any scan, because the scanner panics on an inconsistent input).
//! - A segment image is dropped as soon as its batches are extracted: at most one segment is
//!   held in memory at a time.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ringlog_batch::BatchHeader;
use ringlog_types::units::KIB;
use ringlog_types::Offset;
use ringlog_wal::epoch_file::{EpochError, EpochHistory};
use ringlog_wal::index::{IndexError, SegmentIndex};
use ringlog_wal::parse_segment_file_name;
use ringlog_wal::recovery::{scan_segment, BatchLocation, Rule, ScanInput, ScanVerdict};
use ringlog_wal::segment_header::{HeaderError, SegmentHeader, SEGMENT_HEADER_SIZE_BYTES};

/// Block size assumed when no segment header of the partition can be read.
pub const BLOCK_SIZE_BYTES_DEFAULT: u64 = 4 * KIB;
/// Smallest block size the recovery scanner accepts.
const BLOCK_SIZE_BYTES_MIN: u64 = 512;
/// Largest block size the recovery scanner accepts.
const BLOCK_SIZE_BYTES_MAX: u64 = 64 * KIB;
/// Extension of sparse index files.
const INDEX_EXTENSION: &str = "index";
/// Prefix of spare segment files (filled, not yet part of the log).
const SPARE_PREFIX: &str = ".spare-";
/// Directory where truncation keeps removed suffixes.
const QUARANTINE_DIR: &str = ringlog_wal::QUARANTINE_DIR;

/// Everything read from one partition directory.
#[derive(Debug)]
pub struct PartitionScan {
    /// The partition directory.
    pub dir: PathBuf,
    /// Block size the segments were scanned with.
    pub block_size_bytes: u64,
    /// True if no segment header could be read and the block size is the default.
    pub block_size_assumed: bool,
    /// Every segment, in base offset order.
    pub segments: Vec<SegmentScan>,
    /// Every `<base>.index` file, in base offset order.
    pub indexes: Vec<IndexFile>,
    /// The `leader-epoch-checkpoint` file.
    pub epochs: EpochFile,
    /// Names of spare segment files (`.spare-*`), sorted.
    pub spares: Vec<String>,
    /// Whether a `quarantine/` directory exists.
    pub quarantine_present: bool,
}

impl PartitionScan {
    /// The log start: the first segment's base offset.
    pub fn log_start(&self) -> Option<Offset> {
        self.segments.first().map(|segment| segment.base_offset)
    }

    /// The log end: the last segment's next offset, unknown if that segment is corrupt.
    pub fn log_end(&self) -> Option<Offset> {
        self.segments
            .last()
            .and_then(|segment| segment.verdict.next_offset())
    }

    /// The segment whose base offset is `base_offset`.
    pub fn segment(&self, base_offset: Offset) -> Option<&SegmentScan> {
        self.segments
            .iter()
            .find(|segment| segment.base_offset == base_offset)
    }
}

/// One segment file and what the recovery scanner decided about it.
#[derive(Debug)]
pub struct SegmentScan {
    /// Path of the segment file.
    pub path: PathBuf,
    /// Base offset from the file name.
    pub base_offset: Offset,
    /// Size of the file as found.
    pub file_size_bytes: u64,
    /// Block 0 decoded on its own (the scanner judges whether it fits the file).
    pub header: Result<SegmentHeader, HeaderError>,
    /// True for the partition's newest segment, the only one whose last commit can be torn.
    pub is_last: bool,
    /// The scanner's verdict, without its batches (they are in `batches`).
    pub verdict: Verdict,
    /// Every batch the scan kept, in position order; for a corrupt segment, the valid batches
    /// before the damage.
    pub batches: Vec<Batch>,
}

impl SegmentScan {
    /// The file name, for messages.
    pub fn file_name(&self) -> String {
        file_name_of(&self.path)
    }
}

/// One kept batch: where the scan found it, and header fields it does not report.
#[derive(Clone, Copy, Debug)]
pub struct Batch {
    /// Where the batch lies and its offsets, epoch and timestamp.
    pub location: BatchLocation,
    /// The CRC32C field of the batch header (over bytes 21..end; equal on every replica).
    pub crc: u32,
    /// The header's `records_count` (may be below the offsets occupied after compaction).
    pub records_count: i32,
}

impl Batch {
    /// Number of offsets the batch occupies.
    pub fn offset_count(&self) -> u64 {
        self.location
            .next_offset
            .count_since(self.location.base_offset)
    }
}

/// The scanner's verdict on one segment ([`ScanVerdict`] without the batch list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every batch is whole; the log ends cleanly after the data.
    Intact {
        /// Whether block 0 holds a valid header of this file.
        header_present: bool,
        /// The offset the next batch in this segment would get.
        next_offset: Offset,
        /// Position just after the last batch.
        data_end_position: u64,
    },
    /// The last commit was torn (never acknowledged); the open zeroes it.
    TornTail {
        /// Whether block 0 holds a valid header of this file.
        header_present: bool,
        /// The offset the next batch in this segment would get.
        next_offset: Offset,
        /// Position just after the last kept batch.
        data_end_position: u64,
        /// First position the open would zero.
        torn_start_position: u64,
        /// End of the region the open would zero.
        torn_end_position: u64,
        /// The rule that made it a torn tail.
        rule: Rule,
    },
    /// Damage inside acknowledged data.
    Corrupt {
        /// Where the damage starts.
        position: u64,
        /// The rule that proved the damaged data was acknowledged.
        rule: Rule,
        /// The values involved.
        detail: String,
    },
}

impl Verdict {
    /// The offset after the segment's last kept batch, unknown if the segment is corrupt.
    pub fn next_offset(&self) -> Option<Offset> {
        match self {
            Verdict::Intact { next_offset, .. } | Verdict::TornTail { next_offset, .. } => {
                Some(*next_offset)
            }
            Verdict::Corrupt { .. } => None,
        }
    }

    /// Position just after the last kept batch, unknown if the segment is corrupt.
    pub fn data_end_position(&self) -> Option<u64> {
        match self {
            Verdict::Intact {
                data_end_position, ..
            }
            | Verdict::TornTail {
                data_end_position, ..
            } => Some(*data_end_position),
            Verdict::Corrupt { .. } => None,
        }
    }

    /// The rule behind a torn tail or corruption (an intact verdict has no single rule).
    pub fn rule(&self) -> Option<Rule> {
        match self {
            Verdict::Intact { .. } => None,
            Verdict::TornTail { rule, .. } | Verdict::Corrupt { rule, .. } => Some(*rule),
        }
    }

    /// A short name for reports: `intact`, `torn_tail` or `corrupt`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Intact { .. } => "intact",
            Verdict::TornTail { .. } => "torn_tail",
            Verdict::Corrupt { .. } => "corrupt",
        }
    }
}

/// One `<base>.index` file.
#[derive(Debug)]
pub struct IndexFile {
    /// Path of the index file.
    pub path: PathBuf,
    /// Base offset from the file name.
    pub base_offset: Offset,
    /// The decoded index, or why it does not decode.
    pub decoded: Result<SegmentIndex, IndexError>,
}

/// The `leader-epoch-checkpoint` file of a partition.
#[derive(Debug)]
pub enum EpochFile {
    /// No checkpoint (a partition that never had a batch, or one that lost it).
    Missing,
    /// The checkpoint decodes.
    Decoded(EpochHistory),
    /// The checkpoint does not decode; the open refuses the partition.
    Invalid(EpochError),
}

/// What a partition directory holds, by kind.
struct Listing {
    segments: Vec<(Offset, PathBuf)>,
    indexes: Vec<(Offset, PathBuf)>,
    spares: Vec<String>,
    quarantine_present: bool,
}

/// The partition directories `dir` designates: itself if it holds segment files, otherwise
/// its subdirectories that do, sorted by name.
pub fn find_partitions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    if holds_segments(dir)? {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut partitions = Vec::new();
    let entries = fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        if path.is_dir() && holds_segments(&path)? {
            partitions.push(path);
        }
    }
    partitions.sort();
    if partitions.is_empty() {
        bail!(
            "{} holds no segment files (*.log) and no partition directory that does",
            dir.display()
        );
    }
    Ok(partitions)
}

fn holds_segments(dir: &Path) -> anyhow::Result<bool> {
    let entries = fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if entry
            .file_name()
            .to_str()
            .and_then(parse_segment_file_name)
            .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Reads and judges one partition directory. `commit_bytes_max` is the largest commit the
/// server wrote (its `tail_chunk_bytes`).
pub fn scan_partition(dir: &Path, commit_bytes_max: u64) -> anyhow::Result<PartitionScan> {
    let listing = list_partition_dir(dir)?;
    let block_size = partition_block_size(&listing.segments)?;
    let block_size_bytes = block_size.unwrap_or(BLOCK_SIZE_BYTES_DEFAULT);
    if commit_bytes_max < block_size_bytes {
        bail!(
            "--commit-bytes-max {commit_bytes_max} is below the block size {block_size_bytes} \
             of {}: a commit is at least one block",
            dir.display()
        );
    }
    let mut segments = Vec::with_capacity(listing.segments.len());
    let last_index = listing.segments.len().saturating_sub(1);
    for (index, (base_offset, path)) in listing.segments.iter().enumerate() {
        let geometry = Geometry {
            block_size_bytes,
            commit_bytes_max,
            is_last: index == last_index,
        };
        segments.push(scan_segment_file(path, *base_offset, geometry)?);
    }
    let indexes = listing
        .indexes
        .iter()
        .map(|(base_offset, path)| read_index_file(path, *base_offset))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let epochs = read_epoch_file(dir)?;
    Ok(PartitionScan {
        dir: dir.to_path_buf(),
        block_size_bytes,
        block_size_assumed: block_size.is_none(),
        segments,
        indexes,
        epochs,
        spares: listing.spares,
        quarantine_present: listing.quarantine_present,
    })
}

fn list_partition_dir(dir: &Path) -> anyhow::Result<Listing> {
    let mut listing = Listing {
        segments: Vec::new(),
        indexes: Vec::new(),
        spares: Vec::new(),
        quarantine_present: false,
    };
    let entries = fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base_offset) = parse_segment_file_name(name) {
            listing.segments.push((base_offset, entry.path()));
        } else if let Some(base_offset) = parse_index_file_name(name) {
            listing.indexes.push((base_offset, entry.path()));
        } else if name.starts_with(SPARE_PREFIX) {
            listing.spares.push(name.to_string());
        } else if name == QUARANTINE_DIR {
            listing.quarantine_present = true;
        }
    }
    listing.segments.sort();
    listing.indexes.sort();
    listing.spares.sort();
    Ok(listing)
}

/// The base offset named by `<20 digits>.index`, if `name` is one.
fn parse_index_file_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(INDEX_EXTENSION)?.strip_suffix('.')?;
    let base_offset = parse_segment_file_name(&format!("{stem}.log"))?;
    (SegmentIndex::file_name(base_offset) == name).then_some(base_offset)
}

/// The block size of the partition, from the first segment header that decodes. Every
/// segment of a partition has the same one; a stale header (a recycled file's previous
/// life) was written by the same partition, so it counts too.
fn partition_block_size(segments: &[(Offset, PathBuf)]) -> anyhow::Result<Option<u64>> {
    for (_, path) in segments {
        let mut head = [0u8; SEGMENT_HEADER_SIZE_BYTES];
        let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut filled = 0;
        while filled < head.len() {
            let read = file
                .read(&mut head[filled..])
                .with_context(|| format!("reading {}", path.display()))?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        let Ok(header) = SegmentHeader::decode(&head[..filled]) else {
            continue;
        };
        let block = u64::from(header.block_size_bytes);
        if block.is_power_of_two() && (BLOCK_SIZE_BYTES_MIN..=BLOCK_SIZE_BYTES_MAX).contains(&block)
        {
            return Ok(Some(block));
        }
    }
    Ok(None)
}

/// How one segment is scanned.
#[derive(Clone, Copy)]
struct Geometry {
    block_size_bytes: u64,
    commit_bytes_max: u64,
    is_last: bool,
}

fn scan_segment_file(
    path: &Path,
    base_offset: Offset,
    geometry: Geometry,
) -> anyhow::Result<SegmentScan> {
    // `fs::read` opens the file read-only: the scan never changes a byte.
    let image = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let input = ScanInput {
        image: &image,
        base_offset,
        block_size_bytes: usize::try_from(geometry.block_size_bytes)?,
        commit_bytes_max: usize::try_from(geometry.commit_bytes_max)?,
        is_last: geometry.is_last,
    };
    let header = SegmentHeader::decode(&image);
    let (verdict, mut locations) = split_verdict(scan_segment(&input));
    if let Verdict::Corrupt { position, .. } = verdict {
        locations = batches_before_damage(&input, position);
    }
    let batches = locations
        .iter()
        .map(|location| batch_at(&image, path, *location))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(SegmentScan {
        path: path.to_path_buf(),
        base_offset,
        file_size_bytes: u64::try_from(image.len())?,
        header,
        is_last: geometry.is_last,
        verdict,
        batches,
    })
}

/// The batches of a corrupt segment that precede its damage: the scan of the bytes before
/// the damage alone, which the scanner reads as if zeros followed (row `ShortImage`), so it
/// keeps exactly the valid batches up to there.
fn batches_before_damage(input: &ScanInput<'_>, position: u64) -> Vec<BatchLocation> {
    let end = usize::try_from(position)
        .unwrap_or(usize::MAX)
        .min(input.image.len());
    let prefix = ScanInput {
        image: &input.image[..end],
        is_last: true,
        ..*input
    };
    match scan_segment(&prefix) {
        ScanVerdict::Intact { batches, .. } | ScanVerdict::TornTail { batches, .. } => batches,
        ScanVerdict::Corrupt { .. } => Vec::new(),
    }
}

fn split_verdict(verdict: ScanVerdict) -> (Verdict, Vec<BatchLocation>) {
    match verdict {
        ScanVerdict::Intact {
            header_present,
            next_offset,
            data_end_position,
            batches,
        } => {
            let verdict = Verdict::Intact {
                header_present,
                next_offset,
                data_end_position,
            };
            (verdict, batches)
        }
        ScanVerdict::TornTail {
            header_present,
            next_offset,
            data_end_position,
            torn_start_position,
            torn_end_position,
            batches,
            rule,
        } => {
            let verdict = Verdict::TornTail {
                header_present,
                next_offset,
                data_end_position,
                torn_start_position,
                torn_end_position,
                rule,
            };
            (verdict, batches)
        }
        ScanVerdict::Corrupt {
            position,
            rule,
            detail,
        } => (
            Verdict::Corrupt {
                position,
                rule,
                detail,
            },
            Vec::new(),
        ),
    }
}

/// The header fields of a batch the scan kept (and therefore validated).
fn batch_at(image: &[u8], path: &Path, location: BatchLocation) -> anyhow::Result<Batch> {
    let start = usize::try_from(location.position)?;
    let header = image
        .get(start..)
        .map(BatchHeader::parse)
        .with_context(|| {
            format!(
                "{}: batch position {start} is past the file",
                path.display()
            )
        })?
        .with_context(|| {
            format!(
                "{}: position {start}: the scan kept a batch whose header does not parse",
                path.display()
            )
        })?;
    Ok(Batch {
        location,
        crc: header.crc,
        records_count: header.records_count,
    })
}

fn read_index_file(path: &Path, base_offset: Offset) -> anyhow::Result<IndexFile> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(IndexFile {
        path: path.to_path_buf(),
        base_offset,
        decoded: SegmentIndex::decode(&bytes, base_offset),
    })
}

fn read_epoch_file(dir: &Path) -> anyhow::Result<EpochFile> {
    let path = dir.join(EpochHistory::FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => Ok(match EpochHistory::decode(&bytes) {
            Ok(history) => EpochFile::Decoded(history),
            Err(error) => EpochFile::Invalid(error),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(EpochFile::Missing),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// The last component of `path`, for messages.
pub fn file_name_of(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}
