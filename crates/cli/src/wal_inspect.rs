//! `ringlog wal inspect`: the text report of what a partition directory holds.
//!
//! Invariant: printing only reads a [`PartitionScan`]; it judges nothing beyond what the
//! recovery scanner decided (that is `wal verify`).

use std::io::{self, Write};

use ringlog_types::Offset;
use ringlog_wal::epoch_file::EpochHistory;
use ringlog_wal::segment_header::SegmentHeader;

use crate::partition_scan::{file_name_of, Batch, EpochFile, PartitionScan, SegmentScan, Verdict};

/// Prints one partition; with `batches`, every batch of every segment too.
pub fn print_partition(out: &mut dyn Write, scan: &PartitionScan, batches: bool) -> io::Result<()> {
    writeln!(out, "partition {}", scan.dir.display())?;
    writeln!(
        out,
        "  log start {}, log end {}, block size {} bytes{}",
        display_offset(scan.log_start()),
        display_offset(scan.log_end()),
        scan.block_size_bytes,
        if scan.block_size_assumed {
            " (assumed: no segment header readable)"
        } else {
            ""
        }
    )?;
    for segment in &scan.segments {
        print_segment(out, segment, batches)?;
    }
    print_epochs(out, &scan.epochs)?;
    print_indexes(out, scan)?;
    if !scan.spares.is_empty() {
        writeln!(out, "  spares: {}", scan.spares.join(", "))?;
    }
    if scan.quarantine_present {
        writeln!(out, "  {}/: present", ringlog_wal::QUARANTINE_DIR)?;
    }
    Ok(())
}

fn print_segment(out: &mut dyn Write, segment: &SegmentScan, batches: bool) -> io::Result<()> {
    writeln!(
        out,
        "  segment {} ({})",
        segment.file_name(),
        if segment.is_last { "last" } else { "sealed" }
    )?;
    writeln!(
        out,
        "    base offset {}, file size {} bytes",
        segment.base_offset, segment.file_size_bytes
    )?;
    match &segment.header {
        Ok(header) => writeln!(out, "    header: {}", describe_header(header))?,
        Err(error) => writeln!(out, "    header: absent or invalid ({error})")?,
    }
    writeln!(out, "    verdict: {}", describe_verdict(segment))?;
    let data_end = segment
        .verdict
        .data_end_position()
        .map_or_else(|| "unknown".to_string(), |position| position.to_string());
    writeln!(
        out,
        "    {}, next offset {}, data end position {data_end}",
        describe_batch_count(segment),
        display_offset(segment.verdict.next_offset()),
    )?;
    if batches {
        for batch in &segment.batches {
            writeln!(out, "      {}", describe_batch(batch))?;
        }
    }
    Ok(())
}

fn describe_header(header: &SegmentHeader) -> String {
    format!(
        "base offset {}, block size {} bytes, segment size {} bytes, flags {}",
        header.base_offset,
        header.block_size_bytes,
        header.segment_size_bytes,
        if header.recycled { "RECYCLED" } else { "none" }
    )
}

fn describe_batch(batch: &Batch) -> String {
    let location = &batch.location;
    format!(
        "offsets {} position {} size {} bytes epoch {} max timestamp {} ms crc {:#010x}",
        offset_range(location.base_offset, Some(location.next_offset)),
        location.position,
        location.size_bytes,
        location.epoch,
        location.max_timestamp_ms,
        batch.crc
    )
}

fn print_epochs(out: &mut dyn Write, epochs: &EpochFile) -> io::Result<()> {
    let described = match epochs {
        EpochFile::Missing => "missing".to_string(),
        EpochFile::Invalid(error) => format!("does not decode ({error})"),
        EpochFile::Decoded(history) if history.entries().is_empty() => "empty".to_string(),
        EpochFile::Decoded(history) => {
            let entries: Vec<String> = history
                .entries()
                .iter()
                .map(|entry| format!("epoch {} from offset {}", entry.epoch, entry.start_offset))
                .collect();
            entries.join(", ")
        }
    };
    writeln!(
        out,
        "  epoch history ({}): {described}",
        EpochHistory::FILE_NAME
    )
}

fn print_indexes(out: &mut dyn Write, scan: &PartitionScan) -> io::Result<()> {
    if scan.indexes.is_empty() {
        return writeln!(out, "  index files: none");
    }
    writeln!(out, "  index files:")?;
    for index in &scan.indexes {
        let name = file_name_of(&index.path);
        match &index.decoded {
            Ok(decoded) => writeln!(
                out,
                "    {name}: {} entries, interval {} bytes",
                decoded.len(),
                decoded.interval_bytes()
            )?,
            Err(error) => writeln!(out, "    {name}: does not decode ({error})")?,
        }
    }
    Ok(())
}

/// One line on what the recovery scanner decided about a segment, and what the open does.
pub fn describe_verdict(segment: &SegmentScan) -> String {
    match &segment.verdict {
        Verdict::Intact { header_present, .. } if !header_present && segment.batches.is_empty() => {
            "intact, empty (never written)".to_string()
        }
        Verdict::Intact { .. } => "intact".to_string(),
        Verdict::TornTail {
            torn_start_position,
            torn_end_position,
            next_offset,
            rule,
            ..
        } if segment.is_last => format!(
            "torn tail of {} bytes at positions [{torn_start_position}, {torn_end_position}), \
             would be cut at open; appends resume at offset {next_offset} ({rule:?}: {rule})",
            torn_end_position - torn_start_position
        ),
        Verdict::TornTail {
            torn_start_position,
            rule,
            ..
        } => format!(
            "CORRUPT: sealed segment damaged at position {torn_start_position} ({rule:?}: {rule})"
        ),
        Verdict::Corrupt {
            position,
            rule,
            detail,
        } => format!("CORRUPT at position {position} ({rule:?}: {rule}): {detail}"),
    }
}

/// `N batches`, or for a corrupt segment `N batches before the damage`.
pub fn describe_batch_count(segment: &SegmentScan) -> String {
    match segment.verdict {
        Verdict::Corrupt { .. } => format!("{} batches before the damage", segment.batches.len()),
        Verdict::Intact { .. } | Verdict::TornTail { .. } => {
            format!("{} batches", segment.batches.len())
        }
    }
}

/// `[base, next)`, with `unknown` for an end that is not known (a corrupt segment).
pub fn offset_range(base: Offset, next: Option<Offset>) -> String {
    format!("[{base}, {})", display_offset(next))
}

fn display_offset(offset: Option<Offset>) -> String {
    offset.map_or_else(|| "unknown".to_string(), |offset| offset.to_string())
}
