//! The `--json` summary of `ringlog wal inspect` and `ringlog wal verify`.
//!
//! One object per run: `{"command", "ok", "partitions": [...]}`. Each partition lists its
//! segments, each segment its verdict and every kept batch with `base_offset`,
//! `record_count` (offsets it occupies), `records_count` (the header field) and `crc` (the
//! header's CRC32C field). Those batch fields are the same on every replica that holds the
//! batch; `position` is not (commits, and therefore padding, differ between replicas). The
//! batches of a `corrupt` segment are the valid ones before its damage; those of a
//! `torn_tail` segment exclude the torn commit, as the open would.
//! `ok`, `problems` and `notes` are present for `verify` only. Unknown values are `null`.
//!
//! Invariant: field names are the code's names with their units, like the rest of the
//! tooling (STYLE.md section 3); adding a field is compatible, renaming one is not.

use serde::Serialize;

use crate::partition_scan::{file_name_of, Batch, EpochFile, PartitionScan, SegmentScan, Verdict};
use crate::wal_verify::{Finding, Findings};

/// The whole summary.
#[derive(Serialize)]
pub struct Summary {
    /// `inspect` or `verify`.
    pub command: &'static str,
    /// `verify` only: true if no partition has a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    /// One entry per partition directory, sorted by path.
    pub partitions: Vec<PartitionSummary>,
}

/// One partition directory.
#[derive(Serialize)]
pub struct PartitionSummary {
    dir: String,
    block_size_bytes: u64,
    block_size_assumed: bool,
    log_start: Option<u64>,
    log_end: Option<u64>,
    segments: Vec<SegmentSummary>,
    epochs: Option<Vec<EpochSummary>>,
    epochs_error: Option<String>,
    indexes: Vec<IndexSummary>,
    spares: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<Vec<FindingSummary>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<Vec<FindingSummary>>,
}

#[derive(Serialize)]
struct SegmentSummary {
    file: String,
    base_offset: u64,
    last: bool,
    file_size_bytes: u64,
    header: Option<HeaderSummary>,
    header_error: Option<String>,
    verdict: &'static str,
    rule: Option<String>,
    next_offset: Option<u64>,
    data_end_position: Option<u64>,
    torn_start_position: Option<u64>,
    torn_end_position: Option<u64>,
    corrupt_position: Option<u64>,
    corrupt_detail: Option<String>,
    batch_count: usize,
    batches: Vec<BatchSummary>,
}

#[derive(Serialize)]
struct HeaderSummary {
    base_offset: u64,
    block_size_bytes: u32,
    segment_size_bytes: u64,
    recycled: bool,
}

#[derive(Serialize)]
struct BatchSummary {
    base_offset: u64,
    record_count: u64,
    records_count: i32,
    crc: u32,
    epoch: u32,
    max_timestamp_ms: i64,
    position: u64,
    size_bytes: u32,
}

#[derive(Serialize)]
struct EpochSummary {
    epoch: u32,
    start_offset: u64,
}

#[derive(Serialize)]
struct IndexSummary {
    file: String,
    base_offset: u64,
    entry_count: Option<usize>,
    interval_bytes: Option<u64>,
    error: Option<String>,
}

#[derive(Serialize)]
struct FindingSummary {
    file: String,
    position: Option<u64>,
    message: String,
}

/// The summary of one partition; `findings` for `verify`, `None` for `inspect`.
pub fn partition_summary(scan: &PartitionScan, findings: Option<&Findings>) -> PartitionSummary {
    let (epochs, epochs_error) = match &scan.epochs {
        EpochFile::Missing => (None, None),
        EpochFile::Decoded(history) => {
            let entries = history
                .entries()
                .iter()
                .map(|entry| EpochSummary {
                    epoch: entry.epoch.0,
                    start_offset: entry.start_offset.0,
                })
                .collect();
            (Some(entries), None)
        }
        EpochFile::Invalid(error) => (None, Some(error.to_string())),
    };
    let indexes = scan
        .indexes
        .iter()
        .map(|index| IndexSummary {
            file: file_name_of(&index.path),
            base_offset: index.base_offset.0,
            entry_count: index.decoded.as_ref().ok().map(|decoded| decoded.len()),
            interval_bytes: index
                .decoded
                .as_ref()
                .ok()
                .map(|decoded| decoded.interval_bytes()),
            error: index.decoded.as_ref().err().map(ToString::to_string),
        })
        .collect();
    let findings_of = |select: fn(&Findings) -> &Vec<Finding>| {
        findings.map(|findings| select(findings).iter().map(finding_summary).collect())
    };
    PartitionSummary {
        dir: scan.dir.display().to_string(),
        block_size_bytes: scan.block_size_bytes,
        block_size_assumed: scan.block_size_assumed,
        log_start: scan.log_start().map(|offset| offset.0),
        log_end: scan.log_end().map(|offset| offset.0),
        segments: scan.segments.iter().map(segment_summary).collect(),
        epochs,
        epochs_error,
        indexes,
        spares: scan.spares.clone(),
        problems: findings_of(|findings| &findings.problems),
        notes: findings_of(|findings| &findings.notes),
    }
}

fn segment_summary(segment: &SegmentScan) -> SegmentSummary {
    let mut summary = SegmentSummary {
        file: segment.file_name(),
        base_offset: segment.base_offset.0,
        last: segment.is_last,
        file_size_bytes: segment.file_size_bytes,
        header: segment.header.as_ref().ok().map(|header| HeaderSummary {
            base_offset: header.base_offset.0,
            block_size_bytes: header.block_size_bytes,
            segment_size_bytes: header.segment_size_bytes,
            recycled: header.recycled,
        }),
        header_error: segment.header.as_ref().err().map(ToString::to_string),
        verdict: segment.verdict.name(),
        rule: segment.verdict.rule().map(|rule| format!("{rule:?}")),
        next_offset: segment.verdict.next_offset().map(|offset| offset.0),
        data_end_position: segment.verdict.data_end_position(),
        torn_start_position: None,
        torn_end_position: None,
        corrupt_position: None,
        corrupt_detail: None,
        batch_count: segment.batches.len(),
        batches: segment.batches.iter().map(batch_summary).collect(),
    };
    match &segment.verdict {
        Verdict::Intact { .. } => {}
        Verdict::TornTail {
            torn_start_position,
            torn_end_position,
            ..
        } => {
            summary.torn_start_position = Some(*torn_start_position);
            summary.torn_end_position = Some(*torn_end_position);
        }
        Verdict::Corrupt {
            position, detail, ..
        } => {
            summary.corrupt_position = Some(*position);
            summary.corrupt_detail = Some(detail.clone());
        }
    }
    summary
}

fn batch_summary(batch: &Batch) -> BatchSummary {
    BatchSummary {
        base_offset: batch.location.base_offset.0,
        record_count: batch.offset_count(),
        records_count: batch.records_count,
        crc: batch.crc,
        epoch: batch.location.epoch.0,
        max_timestamp_ms: batch.location.max_timestamp_ms,
        position: batch.location.position,
        size_bytes: batch.location.size_bytes,
    }
}

fn finding_summary(finding: &Finding) -> FindingSummary {
    FindingSummary {
        file: finding.file.display().to_string(),
        position: finding.position,
        message: finding.message.clone(),
    }
}
