//! `ringlog wal verify`: the checks, and their text report.
//!
//! A **problem** is corruption or an inconsistency that the open of the partition would
//! refuse, or that would make the log serve wrong data (an index pointing between batches).
//! A **note** is something an operator may want to know that is not damage: a torn tail (a
//! commit that was never acknowledged, cut at the next open), a short file, an epoch
//! checkpoint that lags the batches. Problems make the exit code 1; notes do not.
//!
//! Invariants: every finding names a file; findings about bytes in a file carry their
//! position; the checks only read the [`PartitionScan`], so they cannot change anything.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ringlog_types::{Epoch, Offset};
use ringlog_wal::epoch_file::EpochHistory;
use ringlog_wal::index::{IndexEntry, SegmentIndex};

use crate::partition_scan::{
    file_name_of, Batch, EpochFile, IndexFile, PartitionScan, SegmentScan, Verdict,
};
use crate::wal_inspect::{describe_batch_count, describe_verdict, offset_range};

/// One finding: what is wrong (or notable), in which file, at which position.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The file concerned.
    pub file: PathBuf,
    /// Byte position in `file`, when the finding is about particular bytes.
    pub position: Option<u64>,
    /// What was found and, where it helps, what the open would do about it.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(position) => write!(
                f,
                "{}: position {position}: {}",
                self.file.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Everything `verify` found in one partition.
#[derive(Debug, Default)]
pub struct Findings {
    /// Corruption and inconsistencies (exit code 1).
    pub problems: Vec<Finding>,
    /// Facts worth reporting that are not damage.
    pub notes: Vec<Finding>,
}

impl Findings {
    fn problem(&mut self, file: &Path, position: Option<u64>, message: String) {
        self.problems.push(Finding {
            file: file.to_path_buf(),
            position,
            message,
        });
    }

    fn note(&mut self, file: &Path, position: Option<u64>, message: String) {
        self.notes.push(Finding {
            file: file.to_path_buf(),
            position,
            message,
        });
    }
}

/// Runs every check on one partition.
pub fn verify_partition(scan: &PartitionScan) -> Findings {
    let mut findings = Findings::default();
    if scan.block_size_assumed {
        findings.note(
            &scan.dir,
            None,
            format!(
                "no segment header could be read: scanned with the default block size {} bytes",
                scan.block_size_bytes
            ),
        );
    }
    for segment in &scan.segments {
        check_segment(segment, &mut findings);
    }
    for pair in scan.segments.windows(2) {
        check_continuity(&pair[0], &pair[1], &mut findings);
    }
    for index in &scan.indexes {
        check_index(scan, index, &mut findings);
    }
    check_epochs(scan, &mut findings);
    findings
}

/// The verdict of one segment, and the size of its file.
fn check_segment(segment: &SegmentScan, findings: &mut Findings) {
    let path = &segment.path;
    match &segment.verdict {
        Verdict::Intact { .. } => {}
        Verdict::TornTail {
            torn_start_position,
            rule,
            ..
        } if !segment.is_last => findings.problem(
            path,
            Some(*torn_start_position),
            format!(
                "sealed segment ends in damage ({rule:?}: {rule}); only the newest segment \
                 can hold an unacknowledged commit"
            ),
        ),
        Verdict::TornTail {
            torn_start_position,
            ..
        } => findings.note(path, Some(*torn_start_position), describe_verdict(segment)),
        Verdict::Corrupt {
            position,
            rule,
            detail,
        } => findings.problem(
            path,
            Some(*position),
            format!("corrupt ({rule:?}: {rule}): {detail}"),
        ),
    }
    if let Ok(header) = &segment.header {
        if segment.file_size_bytes != header.segment_size_bytes {
            findings.note(
                path,
                None,
                format!(
                    "file is {} bytes, its header says {}; missing bytes count as zeros{}",
                    segment.file_size_bytes,
                    header.segment_size_bytes,
                    if segment.is_last {
                        " (the open fills the last segment back to size)"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
}

/// Offsets and epochs continue from one segment to the next.
fn check_continuity(previous: &SegmentScan, next: &SegmentScan, findings: &mut Findings) {
    if let Some(next_offset) = previous.verdict.next_offset() {
        if next_offset != next.base_offset {
            let kind = if next_offset < next.base_offset {
                "offsets are missing"
            } else {
                "offsets overlap"
            };
            findings.problem(
                &previous.path,
                previous.verdict.data_end_position(),
                format!(
                    "segment ends at offset {next_offset} but the next segment {} starts at \
                     offset {}: {kind}",
                    next.file_name(),
                    next.base_offset
                ),
            );
        }
    }
    if let (Some(last), Some(first)) = (previous.batches.last(), next.batches.first()) {
        if first.location.epoch < last.location.epoch {
            findings.problem(
                &next.path,
                Some(first.location.position),
                format!(
                    "the first batch has epoch {} but the previous segment's last batch has \
                     epoch {}: epochs go backwards",
                    first.location.epoch, last.location.epoch
                ),
            );
        }
    }
}

/// An index file decodes and each entry names the offset and position of a batch start.
fn check_index(scan: &PartitionScan, index: &IndexFile, findings: &mut Findings) {
    let path = &index.path;
    let decoded = match &index.decoded {
        Ok(decoded) => decoded,
        Err(error) => {
            let message =
                format!("index does not decode ({error}); the open rebuilds it from its segment");
            findings.problem(path, None, message);
            return;
        }
    };
    let Some(segment) = scan.segment(index.base_offset) else {
        let message = "no segment for this index (left over; the open ignores it)".to_string();
        findings.note(path, None, message);
        return;
    };
    if let Verdict::Corrupt { .. } = segment.verdict {
        let message = "not compared with its segment, which is corrupt".to_string();
        findings.note(path, None, message);
        return;
    }
    for (entry_index, entry) in decoded.entries().iter().enumerate() {
        let Some(mismatch) = index_entry_mismatch(&segment.batches, entry) else {
            continue;
        };
        // The position is one in the segment file, so it goes into the message: the
        // finding's own position would read as one in the index file.
        let message = format!(
            "entry {entry_index} points offset {} at {} position {}, but {mismatch}",
            entry.offset,
            segment.file_name(),
            entry.position
        );
        if segment.is_last {
            // The open deletes the last segment's index and rebuilds it by the scan.
            let message = format!("{message} (the open deletes the last segment's index)");
            findings.note(path, None, message);
        } else {
            findings.problem(path, None, message);
        }
    }
}

/// What is wrong with an index entry, or `None` if a batch with its offset starts at its
/// position. `batches` are in position order.
fn index_entry_mismatch(batches: &[Batch], entry: &IndexEntry) -> Option<String> {
    let found = batches.binary_search_by_key(&entry.position, |batch| batch.location.position);
    match found {
        Ok(at) if batches[at].location.base_offset == entry.offset => None,
        Ok(at) => Some(format!(
            "the batch there starts at offset {}",
            batches[at].location.base_offset
        )),
        Err(_) => match batches
            .iter()
            .find(|batch| batch.location.base_offset == entry.offset)
        {
            Some(batch) => Some(format!(
                "that batch starts at position {}",
                batch.location.position
            )),
            None => Some("no batch of the segment starts there".to_string()),
        },
    }
}

/// The checkpoint decodes, and how it compares with the epochs stamped in the batches.
fn check_epochs(scan: &PartitionScan, findings: &mut Findings) {
    let path = scan.dir.join(EpochHistory::FILE_NAME);
    let first_offsets = epoch_first_offsets(scan);
    match &scan.epochs {
        EpochFile::Invalid(error) => findings.problem(
            &path,
            None,
            format!("epoch checkpoint does not decode ({error}); the open refuses the partition"),
        ),
        EpochFile::Missing if !first_offsets.is_empty() => findings.note(
            &path,
            None,
            "missing although the log holds batches; the open rebuilds it from the last \
             segment's batches"
                .to_string(),
        ),
        EpochFile::Missing => {}
        EpochFile::Decoded(history) => {
            compare_epochs(history, &first_offsets, scan.log_end(), &path, findings);
        }
    }
}

/// The first offset of each epoch seen in the batches.
fn epoch_first_offsets(scan: &PartitionScan) -> BTreeMap<Epoch, Offset> {
    let mut first_offsets = BTreeMap::new();
    for batch in scan.segments.iter().flat_map(|segment| &segment.batches) {
        first_offsets
            .entry(batch.location.epoch)
            .or_insert(batch.location.base_offset);
    }
    first_offsets
}

fn compare_epochs(
    history: &EpochHistory,
    first_offsets: &BTreeMap<Epoch, Offset>,
    log_end: Option<Offset>,
    path: &Path,
    findings: &mut Findings,
) {
    for entry in history.entries() {
        if log_end.is_some_and(|log_end| entry.start_offset >= log_end) {
            let message = format!(
                "epoch {} starts at offset {}, at or past the log end: the open drops it",
                entry.epoch, entry.start_offset
            );
            findings.note(path, None, message);
        }
    }
    for (epoch, first_offset) in first_offsets {
        let listed = history.entries().iter().find(|entry| entry.epoch == *epoch);
        let message = match listed {
            None => format!(
                "epoch {epoch} (first batch at offset {first_offset}) is not in the \
                 checkpoint, which is stored in the background; the open adds the epochs of \
                 the last segment"
            ),
            Some(entry) if entry.start_offset > *first_offset => format!(
                "the checkpoint starts epoch {epoch} at offset {}, after its first batch at \
                 offset {first_offset}",
                entry.start_offset
            ),
            Some(_) => continue,
        };
        findings.note(path, None, message);
    }
}

/// Prints the verify report of one partition (text).
pub fn print_partition(
    out: &mut dyn Write,
    scan: &PartitionScan,
    findings: &Findings,
) -> io::Result<()> {
    writeln!(
        out,
        "partition {} (block size {} bytes)",
        scan.dir.display(),
        scan.block_size_bytes
    )?;
    for segment in &scan.segments {
        writeln!(
            out,
            "  {}  offsets {}  {}  {}",
            segment.file_name(),
            offset_range(segment.base_offset, segment.verdict.next_offset()),
            describe_batch_count(segment),
            short_verdict(segment)
        )?;
    }
    for index in &scan.indexes {
        writeln!(out, "  {}", describe_index(index))?;
    }
    writeln!(out, "  {}", describe_epoch_file(&scan.epochs))?;
    for note in &findings.notes {
        writeln!(out, "  note: {note}")?;
    }
    for problem in &findings.problems {
        writeln!(out, "  PROBLEM: {problem}")?;
    }
    match findings.problems.len() {
        0 => writeln!(out, "  ok"),
        count => writeln!(out, "  {count} problem(s)"),
    }
}

/// The verdict in a word or two; the notes and problems below it give the details.
fn short_verdict(segment: &SegmentScan) -> &'static str {
    match segment.verdict {
        Verdict::Intact { .. } => "intact",
        Verdict::TornTail { .. } if segment.is_last => "torn tail (see note)",
        Verdict::TornTail { .. } | Verdict::Corrupt { .. } => "CORRUPT (see problem)",
    }
}

fn describe_index(index: &IndexFile) -> String {
    let name = file_name_of(&index.path);
    match &index.decoded {
        Ok(decoded) => format!("{name}: {} entries", SegmentIndex::len(decoded)),
        Err(error) => format!("{name}: does not decode ({error})"),
    }
}

fn describe_epoch_file(epochs: &EpochFile) -> String {
    let name = EpochHistory::FILE_NAME;
    match epochs {
        EpochFile::Missing => format!("{name}: missing"),
        EpochFile::Decoded(history) => format!("{name}: {} epoch(s)", history.entries().len()),
        EpochFile::Invalid(error) => format!("{name}: does not decode ({error})"),
    }
}
