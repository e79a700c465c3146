//! Recovery: what the bytes of one segment hold after a crash.
//!
//! [`scan_segment`] is a pure function over the bytes of one segment file. The caller fsyncs
//! the file and its directory, maps it read-only and passes the slice (STYLE.md section 8:
//! decide nothing from data that a crashed process never made durable). The scan walks the
//! batches forward from block 1, checking length, CRC32C, offset continuity and epoch order,
//! and returns a [`ScanVerdict`]: the log is intact; the last commit was torn, was never
//! acknowledged, and must be zeroed before appending again; or acknowledged data is damaged,
//! and the partition stops serving until a peer repairs it. Every decision is a [`Rule`], and
//! [`RULES`] is the table of all of them.
//!
//! What makes a torn tail distinguishable from corruption is the way segments are written:
//!
//! - segments are zero-filled before use and never recycled;
//! - every commit starts at a block boundary and holds whole batches back to back, with
//!   contiguous offsets, followed by zero padding up to the next block boundary;
//! - at most one commit is in flight per partition, and it is acknowledged only after its
//!   write and fdatasync complete, so only the last commit of the last segment can be torn,
//!   and it spans at most `commit_bytes_max` bytes from its first block;
//! - a torn write leaves every sector of that commit either written or still zero.
//!
//! Damage therefore proves acknowledged data was lost only when something after it cannot
//! belong to that single in-flight commit: a batch whose offset or epoch goes backwards, a
//! commit boundary (a batch that does not start where the batch before it ends), or any byte
//! farther than `commit_bytes_max` from the data. Otherwise the damage is a torn tail.
//!
//! Invariants:
//!
//! - No image makes the scan panic; only an inconsistent [`ScanInput`] configuration (a block
//!   size that is not a power of two in 512..=64 KiB, a commit smaller than a block) does,
//!   because that is a programmer error.
//! - The batches of a verdict are contiguous in offsets from the segment's base offset, in
//!   position order, each validated (CRC32C included), with non-decreasing epochs.
//! - A [`ScanVerdict::TornTail`] region starts at a block boundary at or after the end of the
//!   data, so zeroing it never rewrites a block that holds a kept batch.
//! - The scan allocates the `Vec` of locations and, for a corrupt segment, one message; no
//!   other allocation, whatever the number of batches.
//! - A file shorter than its segment is judged as if the missing bytes were zeros.
//!
//! Known limits, inherent to the format rather than to this scan:
//!
//! - Damage that nothing after it proves acknowledged is indistinguishable from a torn write
//!   ([`Rule::UnprovenDamage`]): damage in the last commit of the last segment, or damage that
//!   also destroyed the damaged batch's header (so its end and next offset are lost) with at
//!   most one commit after it. A bit flipped there is cut back as torn; replicas repair the
//!   loss.
//! - The partition leader epoch lies outside the batch CRC (Kafka stamps it after hashing),
//!   so damage to it alone is seen only if it breaks epoch order.
//! - A sealed segment that lost whole blocks at the end of its data still looks intact. The
//!   caller checks that its `next_offset` is the next segment's base offset.

use std::fmt;

use ringlog_batch::{peek_size_bytes, validate, BatchHeader, LOG_OVERHEAD_BYTES};
use ringlog_types::{units::KIB, Epoch, Offset};

use crate::segment_header::SegmentHeader;

/// Smallest block size (O_DIRECT alignment) a segment can use.
const BLOCK_SIZE_BYTES_MIN: usize = 512;
/// Largest block size (O_DIRECT alignment) a segment can use.
const BLOCK_SIZE_BYTES_MAX: u64 = 64 * KIB;
/// The smallest unit a device writes whole: a torn write leaves each such sector either
/// written or untouched. Larger sectors are unions of these, so this bound holds for them too.
const SECTOR_SIZE_BYTES_MIN: usize = 512;

// Both are powers of two, so every block boundary is a sector boundary.
const _: () = assert!(BLOCK_SIZE_BYTES_MIN >= SECTOR_SIZE_BYTES_MIN);
const _: () = assert!(SECTOR_SIZE_BYTES_MIN.is_power_of_two());
const _: () = assert!(LOG_OVERHEAD_BYTES <= SECTOR_SIZE_BYTES_MIN);

/// The bytes of one segment file and what the caller knows about it.
#[derive(Clone, Copy)]
pub struct ScanInput<'a> {
    /// The whole file, as mapped after fsync.
    pub image: &'a [u8],
    /// The base offset in the file's name.
    pub base_offset: Offset,
    /// The block size the partition writes with (a power of two in 512..=64 KiB).
    pub block_size_bytes: usize,
    /// Largest write of one commit, padding included. The first commit of a segment also
    /// writes block 0, on top of this bound.
    pub commit_bytes_max: usize,
    /// Whether this is the partition's last segment: the only one whose last commit can have
    /// been in flight at the crash. The caller must not count a trailing segment that was
    /// created empty (all zero) as making the one before it sealed.
    pub is_last: bool,
}

/// Where one kept batch lies in the segment, and the header fields readers index it by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLocation {
    /// Offset of the batch's first record.
    pub base_offset: Offset,
    /// Offset just after the batch's last record: `base_offset + record_count`.
    pub next_offset: Offset,
    /// Position of the batch's first byte in the segment file.
    pub position: u64,
    /// Size of the whole batch, log overhead included.
    pub size_bytes: u32,
    /// Partition leader epoch stamped into the batch.
    pub epoch: Epoch,
    /// The batch's `max_timestamp`, in milliseconds since the epoch.
    pub max_timestamp_ms: i64,
}

/// What recovery decided about one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanVerdict {
    /// Every batch is whole and everything after the data is zero (or padding).
    Intact {
        /// Whether block 0 holds a valid header (false only for an all-zero segment).
        header_present: bool,
        /// The offset the next batch appended to this segment must have.
        next_offset: Offset,
        /// Position just after the last batch: the block size if there is none, 0 only if the
        /// header is absent too. Appends resume at this position rounded up to a block.
        data_end_position: u64,
        /// Every batch, in position order.
        batches: Vec<BatchLocation>,
    },
    /// The last commit was torn, so it was never acknowledged. Keep `batches`; zero
    /// `[torn_start_position, torn_end_position)` and make that durable before appending
    /// again at `torn_start_position`.
    TornTail {
        /// Whether block 0 holds a valid header; if not, the torn region starts at 0 and the
        /// next commit must write the header again.
        header_present: bool,
        /// The offset the next batch appended to this segment must have.
        next_offset: Offset,
        /// Position just after the last kept batch (as in [`ScanVerdict::Intact`]).
        data_end_position: u64,
        /// `data_end_position` rounded up to a block, or 0 if the header is torn.
        torn_start_position: u64,
        /// End of the last block that holds a nonzero byte.
        torn_end_position: u64,
        /// The batches before the torn commit, in position order.
        batches: Vec<BatchLocation>,
        /// The rule that decided it was a torn tail.
        rule: Rule,
    },
    /// Damage inside data that was acknowledged. Nothing may be truncated: stop serving the
    /// partition and repair it from a peer.
    Corrupt {
        /// Where the damage starts: the end of the intact data if anything but zeros follows
        /// it in its block (the damaged batch, or garbage), otherwise the next block boundary.
        position: u64,
        /// The rule that proved the damaged data was acknowledged.
        rule: Rule,
        /// The values involved, for the operator.
        detail: String,
    },
}

/// One row of the recovery table ([`RULES`]). Some rows only describe a step of the scan;
/// the others name the verdict they lead to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// Block 0 is a valid header naming this file's base offset, block size and size.
    HeaderMatches,
    /// Block 0 is a valid header for some other file.
    HeaderMismatch,
    /// The file is shorter than its segment: the missing bytes count as zeros.
    ShortImage,
    /// The last segment is all zero: nothing was ever committed to it.
    EmptySegment,
    /// A sealed segment holds no batch.
    SealedWithoutData,
    /// Block 0 is not a valid header, yet the segment holds nonzero bytes.
    HeaderDamaged,
    /// A whole, valid batch with the expected offset and epoch order.
    BatchAccepted,
    /// An unaligned position without the expected batch is padding.
    PaddingSkipped,
    /// Only zeros from the block after the data to the end of the segment.
    CleanEnd,
    /// After damage, a valid batch whose offset or epoch goes backwards.
    StaleBatchAfterDamage,
    /// After damage, a commit boundary: the damaged commit was not the last.
    CommitAfterDamage,
    /// After damage, nonzero bytes beyond the reach of the one commit in flight.
    DamageBeyondCommitWindow,
    /// A sealed segment ends in damage that would otherwise be a torn tail.
    SealedTorn,
    /// The last commit of the last segment was torn.
    TornLastCommit,
    /// Damage that no later batch proves acknowledged looks exactly like a torn write.
    UnprovenDamage,
}

impl Rule {
    /// A one-line description of the rule.
    #[must_use]
    pub fn description(self) -> &'static str {
        match self {
            Rule::HeaderMatches => "segment header valid and matching the file",
            Rule::HeaderMismatch => "segment header valid but written for another file",
            Rule::ShortImage => "segment file shorter than its segment size",
            Rule::EmptySegment => "last segment never written",
            Rule::SealedWithoutData => "sealed segment without any batch",
            Rule::HeaderDamaged => "segment header damaged while the segment holds data",
            Rule::BatchAccepted => "batch valid and continuing the log",
            Rule::PaddingSkipped => "unaligned bytes that are not the next batch are padding",
            Rule::CleanEnd => "only zeros after the data",
            Rule::StaleBatchAfterDamage => "batch with an offset or epoch going backwards",
            Rule::CommitAfterDamage => "another commit follows the damaged one",
            Rule::DamageBeyondCommitWindow => "nonzero bytes beyond the reach of one commit",
            Rule::SealedTorn => "torn tail in a sealed segment",
            Rule::TornLastCommit => "last commit torn",
            Rule::UnprovenDamage => "damage that nothing proves acknowledged, taken for a tear",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// The recovery table: each rule, what the scan sees, and the verdict, in scan order.
///
/// "The data" is the batches accepted so far; `D` is the end of the data rounded up to a
/// block (the block size if there is no batch, 0 if the header is damaged); the damage
/// starts at the end of the data if anything but zeros follows it in its block, else at D.
pub const RULES: &[(Rule, &str)] = &[
    (
        Rule::ShortImage,
        "the file is shorter than the segment (cut by something other than ringlog, possibly \
         inside a block) => the missing bytes count as zeros and the rules below decide; the \
         caller zero-fills the file back to its size",
    ),
    (
        Rule::HeaderMatches,
        "block 0 decodes and names this file's base offset, block size and size => scan the \
         batches from block 1",
    ),
    (
        Rule::HeaderMismatch,
        "block 0 decodes but names another base offset or block size, or a segment size that \
         is not a multiple of the block size or is smaller than the file => Corrupt at 0: a \
         misdirected write or a foreign file",
    ),
    (
        Rule::EmptySegment,
        "every byte is zero, in the last segment => Intact, header absent, next offset = base \
         offset, data end 0",
    ),
    (
        Rule::SealedWithoutData,
        "a sealed segment holds no batch (all zero, or a header then zeros) => Corrupt: a \
         segment is sealed only after a commit wrote to it",
    ),
    (
        Rule::HeaderDamaged,
        "block 0 does not decode and some byte is nonzero => damage at 0 with no data, judged \
         by the rules below; if it is a tear (of the segment's first commit), TornTail under \
         this rule, zeroing from 0",
    ),
    (
        Rule::BatchAccepted,
        "a whole batch that validates (CRC32C included), has the next offset and an epoch not \
         below the previous batch's => keep it, continue after it",
    ),
    (
        Rule::PaddingSkipped,
        "an unaligned position without that batch => padding (zeros, or the head of a torn \
         batch cut back earlier): continue at the next block boundary",
    ),
    (
        Rule::CleanEnd,
        "a block boundary without that batch, and only zeros from there to the end => Intact, \
         even if padding held nonzero bytes",
    ),
    (
        Rule::StaleBatchAfterDamage,
        "after the damage, a batch that validates but whose base offset is below the next \
         offset or whose epoch is below the last kept batch's (a duplicate or misdirected \
         write) => Corrupt at the damage: no commit in flight holds such a batch",
    ),
    (
        Rule::CommitAfterDamage,
        "after the damage, a batch that validates and carries the next offset of an earlier \
         batch (a valid one, or the damaged one when its header still parses) but does not \
         start where that batch ends => Corrupt at the damage: padding, so a commit boundary, \
         follows it, and the damaged commit was acknowledged. Inside the block where the \
         damage starts (which may hold the head of a batch torn and cut back earlier, whose \
         offsets were reused), only a batch at the very next block boundary counts",
    ),
    (
        Rule::DamageBeyondCommitWindow,
        "after the damage, a nonzero byte at or past max(D, block size) + commit_bytes_max => \
         Corrupt at the damage: more than the one commit that can be in flight",
    ),
    (
        Rule::SealedTorn,
        "none of the above, in a sealed segment => Corrupt at the damage: its last commit \
         completed before the next segment was created",
    ),
    (
        Rule::TornLastCommit,
        "none of the above, in the last segment => TornTail: keep the data, zero [D, end of \
         the last nonzero block)",
    ),
    (
        Rule::UnprovenDamage,
        "damage that none of the Corrupt rules above proves acknowledged: a damaged batch in \
         the last commit, or one whose header is destroyed too, with at most one commit after \
         it => indistinguishable from a tear: TornTail under TornLastCommit (Intact if the \
         damage stays inside padding); replicas repair the loss",
    ),
];

/// Decides what the bytes of one segment hold; see the module documentation and [`RULES`].
///
/// Panics only if `input` is inconsistent: block size not a power of two in 512..=64 KiB,
/// or `commit_bytes_max` below the block size.
#[must_use]
pub fn scan_segment(input: &ScanInput<'_>) -> ScanVerdict {
    let block_size = input.block_size_bytes;
    assert!(
        block_size.is_power_of_two(),
        "block_size_bytes={block_size}"
    );
    assert!(
        block_size >= BLOCK_SIZE_BYTES_MIN,
        "block_size_bytes={block_size}"
    );
    assert!(
        block_size as u64 <= BLOCK_SIZE_BYTES_MAX,
        "block_size_bytes={block_size}"
    );
    assert!(
        input.commit_bytes_max >= block_size,
        "commit_bytes_max={} block_size_bytes={block_size}",
        input.commit_bytes_max
    );
    let image = input.image;
    // Row ShortImage: every read below stops at the image's end, and nothing past it is
    // nonzero, so a short image gets the verdict of the same bytes followed by zeros.
    match SegmentHeader::decode(&image[..block_size.min(image.len())]) {
        Ok(header) => {
            scan_segment_header(input, &header).unwrap_or_else(|| scan_segment_data(input))
        }
        Err(_) => {
            let scan = Scan::new(input, false);
            if nonzero_end(image).is_none() {
                scan_segment_clean_end(scan)
            } else {
                scan_segment_tail(scan, 0)
            }
        }
    }
}

/// Row [`Rule::HeaderMismatch`]: `None` if the header describes this file. A file shorter
/// than the header's segment size is this file cut short (row [`Rule::ShortImage`]).
fn scan_segment_header(input: &ScanInput<'_>, header: &SegmentHeader) -> Option<ScanVerdict> {
    let image_size_bytes = input.image.len() as u64;
    let block_size_bytes = input.block_size_bytes as u64;
    if header.base_offset == input.base_offset
        && u64::from(header.block_size_bytes) == block_size_bytes
        && header.segment_size_bytes & (block_size_bytes - 1) == 0
        && header.segment_size_bytes >= image_size_bytes
    {
        return None;
    }
    let detail = format!(
        "header names base offset {}, block size {} and segment size {}; the file has base \
         offset {}, block size {} and size {image_size_bytes}",
        header.base_offset,
        header.block_size_bytes,
        header.segment_size_bytes,
        input.base_offset,
        input.block_size_bytes,
    );
    Some(corrupt(0, Rule::HeaderMismatch, detail))
}

/// The forward scan from block 1: rows [`Rule::BatchAccepted`] and [`Rule::PaddingSkipped`]
/// until the data ends at a block boundary, then the tail rules.
fn scan_segment_data(input: &ScanInput<'_>) -> ScanVerdict {
    let image = input.image;
    let block_size = input.block_size_bytes;
    let mut scan = Scan::new(input, true);
    let mut position = block_size;
    // Between two accepted batches there is at most one unaligned miss, at the data's end,
    // after which the scan either accepts at the next block boundary or stops there.
    while position < image.len() {
        if let Some(candidate) = scan_segment_data_expected(&scan, position) {
            scan.accept(&candidate);
            position = candidate.end;
        } else if is_aligned(position, block_size) {
            return scan_segment_tail(scan, position);
        } else {
            // A short image may end inside the block (row ShortImage).
            position = round_up(position, block_size).min(image.len());
        }
    }
    scan_segment_clean_end(scan)
}

/// The batch at `position` if it is the one the log expects next (row
/// [`Rule::BatchAccepted`]). The cheap header checks come before the CRC32C.
fn scan_segment_data_expected(scan: &Scan<'_, '_>, position: usize) -> Option<Candidate> {
    let image = scan.input.image;
    let candidate = candidate_at(image, position, image.len())?;
    let location = &candidate.location;
    if location.base_offset != scan.next_offset || location.epoch < scan.epoch_min {
        return None;
    }
    candidate.validates(image).then_some(candidate)
}

/// Rows [`Rule::CleanEnd`], [`Rule::EmptySegment`] and [`Rule::SealedWithoutData`]: nothing
/// but zeros follows the data.
fn scan_segment_clean_end(scan: Scan<'_, '_>) -> ScanVerdict {
    if !scan.input.is_last && scan.batches.is_empty() {
        let detail = "a sealed segment holds no batch, but a segment is sealed only after a \
                      commit wrote to it"
            .to_owned();
        return corrupt(scan.data_end, Rule::SealedWithoutData, detail);
    }
    ScanVerdict::Intact {
        header_present: scan.header_present,
        next_offset: scan.next_offset,
        data_end_position: scan.data_end as u64,
        batches: scan.batches,
    }
}

/// The tail rules, once the scan stopped at the block boundary `stop` without the expected
/// batch.
fn scan_segment_tail(scan: Scan<'_, '_>, stop: usize) -> ScanVerdict {
    let image = scan.input.image;
    let block_size = scan.input.block_size_bytes;
    assert!(
        is_aligned(stop, block_size),
        "stop={stop} block_size={block_size}"
    );
    assert!(
        scan.data_end <= stop,
        "data_end={} stop={stop}",
        scan.data_end
    );
    let Some(nonzero_end) = nonzero_end(&image[stop..]).map(|end| stop + end) else {
        return scan_segment_clean_end(scan);
    };
    let window_end = scan.window_end();
    let limit = window_end.min(image.len());
    let damage = scan_segment_tail_damage(&scan, stop, limit);
    let anomaly = damage.position;
    if nonzero_end > window_end {
        let detail = format!(
            "after damage at position {anomaly}, nonzero bytes reach position {nonzero_end}, \
             past position {window_end}, the farthest a single commit in flight can reach"
        );
        return corrupt(anomaly, Rule::DamageBeyondCommitWindow, detail);
    }
    if let Some((rule, detail)) =
        scan_segment_tail_evidence(&scan, &damage, stop, limit, nonzero_end)
    {
        return corrupt(anomaly, rule, detail);
    }
    if !scan.input.is_last {
        let detail = format!(
            "damage at position {anomaly}, nonzero bytes up to position {nonzero_end}, in a \
             sealed segment whose last commit completed"
        );
        return corrupt(anomaly, Rule::SealedTorn, detail);
    }
    let torn_start = scan.torn_start();
    let torn_end = round_up(nonzero_end, block_size);
    assert!(torn_start <= stop, "torn_start={torn_start} stop={stop}");
    assert!(
        torn_start < torn_end,
        "torn_start={torn_start} torn_end={torn_end}"
    );
    let rule = if scan.header_present {
        Rule::TornLastCommit
    } else {
        Rule::HeaderDamaged
    };
    ScanVerdict::TornTail {
        header_present: scan.header_present,
        next_offset: scan.next_offset,
        data_end_position: scan.data_end as u64,
        torn_start_position: torn_start as u64,
        torn_end_position: torn_end as u64,
        batches: scan.batches,
        rule,
    }
}

/// Where the damage starts, and the damaged batch if its header still parses.
struct Damage {
    position: usize,
    /// The batch at the data's end whose header parses with the expected offset, though the
    /// batch fails validation: a bit flipped in its records leaves its length and record
    /// count as written.
    claim: Option<Candidate>,
}

/// The damage starts at the data's end, where the next batch was expected, if anything is
/// there: that batch's header, or nonzero bytes before `stop`. Otherwise the rest of that
/// block is padding, and the damage starts at `stop`, where the next commit was expected.
fn scan_segment_tail_damage(scan: &Scan<'_, '_>, stop: usize, limit: usize) -> Damage {
    let image = scan.input.image;
    let claim_at = |position: usize| {
        candidate_at(image, position, limit)
            .filter(|claim| claim.location.base_offset == scan.next_offset)
    };
    let data_end = scan.data_end;
    if let Some(claim) = claim_at(data_end) {
        return Damage {
            position: data_end,
            claim: Some(claim),
        };
    }
    if !is_zero(&image[data_end..stop]) {
        return Damage {
            position: data_end,
            claim: None,
        };
    }
    Damage {
        position: stop,
        claim: claim_at(stop),
    }
}

/// Looks, from the damage up to `nonzero_end`, for proof that something after it was
/// acknowledged (rows [`Rule::StaleBatchAfterDamage`] and [`Rule::CommitAfterDamage`]).
/// `stop` is the block boundary where the forward scan stopped; candidates must end by
/// `limit`.
///
/// It visits the positions where a batch of a healthy log can start: the end the damaged
/// batch's header claims (if that header still parses with the expected offset), the end of
/// each valid batch, and block boundaries. Only batches whose base offset and length lie
/// inside one sector count (see [`overhead_in_one_sector`]): their base offset and epoch,
/// outside the CRC, are then the ones written.
///
/// When the damage starts inside a block, the rest of that block may be the head of a batch
/// torn and cut back by an earlier recovery (its offsets are being reused after it), so the
/// links found there are weak: see [`Link::proves_boundary`].
fn scan_segment_tail_evidence(
    scan: &Scan<'_, '_>,
    damage: &Damage,
    stop: usize,
    limit: usize,
    nonzero_end: usize,
) -> Option<(Rule, String)> {
    let image = scan.input.image;
    let block_size = scan.input.block_size_bytes;
    let mut link: Option<Link> = None;
    let mut position = stop;
    // An unaligned position to visit before the next block boundary: the claimed end of the
    // damaged batch.
    let mut pending: Option<usize> = None;
    if let Some(claim) = &damage.claim {
        link = Some(Link::after(claim, stop, block_size));
        if claim.end < stop {
            position = claim.end;
        } else {
            pending = Some(claim.end);
        }
    }
    while position < nonzero_end {
        let valid = candidate_at(image, position, limit).filter(|batch| batch.validates(image));
        if let Some(batch) = valid {
            if overhead_in_one_sector(position) {
                let anomaly = damage.position;
                if let Some(evidence) = scan_segment_tail_check(scan, anomaly, link, &batch) {
                    return Some(evidence);
                }
                link = Some(Link::after(&batch, stop, block_size));
            } else {
                // Its base offset may be half torn while the CRC, which starts after it,
                // still holds: it proves nothing.
                link = None;
            }
            position = batch.end;
            continue;
        }
        let boundary = (position / block_size + 1) * block_size;
        position = match pending {
            Some(end) if position < end && end < boundary => end,
            _ => boundary,
        };
    }
    None
}

/// Whether the valid batch `batch`, found after the damage, proves the damage was in
/// acknowledged data. `link` is the batch before it, if any.
fn scan_segment_tail_check(
    scan: &Scan<'_, '_>,
    anomaly: usize,
    link: Option<Link>,
    batch: &Candidate,
) -> Option<(Rule, String)> {
    let location = &batch.location;
    if location.base_offset < scan.next_offset || location.epoch < scan.epoch_min {
        let detail = format!(
            "after damage at position {anomaly}, the batch at position {} has base offset {} \
             and epoch {}, but the log continues at offset {} with epoch at least {}",
            location.position,
            location.base_offset,
            location.epoch,
            scan.next_offset,
            scan.epoch_min,
        );
        return Some((Rule::StaleBatchAfterDamage, detail));
    }
    let link = link?;
    if link.proves_boundary(scan.input.image, batch) {
        let detail = format!(
            "after damage at position {anomaly}, the batch at position {} continues offset {} \
             of the batch that ends at position {}: a commit boundary lies between them, so \
             the damaged commit was not the last",
            location.position, location.base_offset, link.end,
        );
        return Some((Rule::CommitAfterDamage, detail));
    }
    None
}

/// Progress of the forward scan: the batches kept so far and what must come next.
struct Scan<'s, 'a> {
    input: &'s ScanInput<'a>,
    header_present: bool,
    batches: Vec<BatchLocation>,
    next_offset: Offset,
    /// Epoch of the last kept batch: no later batch may have a smaller one.
    epoch_min: Epoch,
    /// Position just after the last kept batch (block 1 or 0 before any batch).
    data_end: usize,
}

impl<'s, 'a> Scan<'s, 'a> {
    fn new(input: &'s ScanInput<'a>, header_present: bool) -> Scan<'s, 'a> {
        Scan {
            input,
            header_present,
            batches: Vec::new(),
            next_offset: input.base_offset,
            epoch_min: Epoch(0),
            data_end: if header_present {
                input.block_size_bytes
            } else {
                0
            },
        }
    }

    fn accept(&mut self, candidate: &Candidate) {
        let location = candidate.location;
        assert!(self.header_present, "a batch kept without a header");
        assert!(
            location.base_offset == self.next_offset,
            "base_offset={} next_offset={}",
            location.base_offset,
            self.next_offset
        );
        assert!(
            location.epoch >= self.epoch_min,
            "epoch={} epoch_min={}",
            location.epoch,
            self.epoch_min
        );
        assert!(
            location.position >= self.data_end as u64,
            "position={} data_end={}",
            location.position,
            self.data_end
        );
        self.batches.push(location);
        self.next_offset = location.next_offset;
        self.epoch_min = location.epoch;
        self.data_end = candidate.end;
    }

    /// Where the torn region starts: the data's end rounded up to a block, so that zeroing
    /// it never rewrites a block holding a kept batch.
    fn torn_start(&self) -> usize {
        round_up(self.data_end, self.input.block_size_bytes)
    }

    /// The farthest a commit in flight can reach. That commit starts at or before the torn
    /// start; a segment's first commit also writes block 0, hence the block size floor.
    fn window_end(&self) -> usize {
        let start = self.torn_start().max(self.input.block_size_bytes);
        start.saturating_add(self.input.commit_bytes_max)
    }
}

/// A batch whose header parses, at some position, with the fields the scan needs in our
/// types. It may still fail its CRC32C: see [`Candidate::validates`].
#[derive(Clone, Copy, Debug)]
struct Candidate {
    location: BatchLocation,
    /// Position just after the batch.
    end: usize,
}

impl Candidate {
    fn validates(&self, image: &[u8]) -> bool {
        let start = self.end - self.location.size_bytes as usize;
        validate(&image[start..self.end]).is_ok()
    }
}

/// The batch whose header parses at `position` and that ends by `limit`, or `None`.
/// Negative offsets or epochs, which no leader stamps, are not batches of the log.
fn candidate_at(image: &[u8], position: usize, limit: usize) -> Option<Candidate> {
    let bytes = image.get(position..limit)?;
    let size_bytes = peek_size_bytes(bytes).ok()??;
    let header = BatchHeader::parse(bytes.get(..size_bytes)?).ok()?;
    let base_offset = u64::try_from(header.base_offset).ok()?;
    let epoch = u32::try_from(header.partition_leader_epoch).ok()?;
    let next_offset = base_offset.checked_add(header.record_count())?;
    Some(Candidate {
        location: BatchLocation {
            base_offset: Offset(base_offset),
            next_offset: Offset(next_offset),
            position: position as u64,
            size_bytes: u32::try_from(size_bytes).ok()?,
            epoch: Epoch(epoch),
            max_timestamp_ms: header.max_timestamp,
        },
        end: position + size_bytes,
    })
}

/// Where a batch ends and the offset after it: the next batch of the same commit must start
/// at `end` with `next_offset`.
#[derive(Clone, Copy, Debug)]
struct Link {
    end: usize,
    /// `end` rounded up to a block: where the next commit starts if this batch ends one.
    block_end: usize,
    next_offset: Offset,
    /// Whether the batch starts at or after the block boundary where the forward scan
    /// stopped. Before it lies only the block of the damage, which may hold the head of a
    /// batch torn and cut back by an earlier recovery, whose offsets the log has reused since.
    strong: bool,
}

impl Link {
    fn after(candidate: &Candidate, stop: usize, block_size: usize) -> Link {
        Link {
            end: candidate.end,
            block_end: round_up(candidate.end, block_size),
            next_offset: candidate.location.next_offset,
            strong: usize::try_from(candidate.location.position).is_ok_and(|start| start >= stop),
        }
    }

    /// Whether `batch`, which carries this link's next offset, starts after the end of the
    /// linked batch rather than right at it: then padding, that is a commit boundary, lies
    /// between them.
    ///
    /// A weak link proves it only in the exact shape of padding: the linked batch ends inside
    /// a block, zeros follow it, and `batch` starts at the next block boundary. An old torn
    /// head claims an end inside the commit written after it, so this shape needs that commit
    /// to have only zeros before one of its batch boundaries, on that block boundary, with
    /// that very offset.
    fn proves_boundary(&self, image: &[u8], batch: &Candidate) -> bool {
        let location = &batch.location;
        if location.base_offset != self.next_offset {
            return false;
        }
        // A batch inside the linked one would be part of its records, not a later commit.
        let start = batch.end - location.size_bytes as usize;
        if start <= self.end {
            return false;
        }
        self.strong || (start == self.block_end && is_zero(&image[self.end..start]))
    }
}

fn corrupt(position: usize, rule: Rule, detail: String) -> ScanVerdict {
    ScanVerdict::Corrupt {
        position: position as u64,
        rule,
        detail,
    }
}

/// Whether the base offset and batch length of a batch starting at `position` lie inside one
/// device sector. Then, if the batch validates, its header is the one written: a lost (zero)
/// sector there would zero the length, and one lost after it would break the magic byte or
/// the CRC. Otherwise the sector boundary may have zeroed the leading bytes of the base
/// offset, which the CRC does not cover, leaving a valid batch with a smaller offset.
fn overhead_in_one_sector(position: usize) -> bool {
    position % SECTOR_SIZE_BYTES_MIN + LOG_OVERHEAD_BYTES <= SECTOR_SIZE_BYTES_MIN
}

/// Whether `position` is a multiple of `block_size`, a power of two (checked on entry).
fn is_aligned(position: usize, block_size: usize) -> bool {
    position & (block_size - 1) == 0
}

fn round_up(position: usize, block_size: usize) -> usize {
    position.div_ceil(block_size) * block_size
}

fn is_zero(bytes: &[u8]) -> bool {
    // A fold without early exit compiles to wide ORs; segments are mostly zeros.
    bytes.iter().fold(0_u8, |acc, &byte| acc | byte) == 0
}

/// One past the last nonzero byte of `bytes`, or `None` if every byte is zero.
fn nonzero_end(bytes: &[u8]) -> Option<usize> {
    const CHUNK_SIZE_BYTES: usize = 4096;
    let mut chunk_end = bytes.len();
    for chunk in bytes.rchunks(CHUNK_SIZE_BYTES) {
        let chunk_start = chunk_end - chunk.len();
        if !is_zero(chunk) {
            let index = chunk.iter().rposition(|&byte| byte != 0)?;
            return Some(chunk_start + index + 1);
        }
        chunk_end = chunk_start;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ringlog_batch::{stamp, BatchBuilder};

    const BLOCK: usize = 512;
    const SEGMENT_BLOCKS: usize = 128;
    const SEGMENT_SIZE: usize = SEGMENT_BLOCKS * BLOCK;
    const COMMIT_MAX: usize = 4096;
    const BASE: Offset = Offset(1_000);
    const TIMESTAMP_MS: i64 = 1_700_000_000_000;
    const SEED: u64 = 3;

    /// splitmix64: tests draw every size and byte from a seed, never from the OS.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, bound: usize) -> usize {
            usize::try_from(self.next_u64() % bound as u64).unwrap()
        }

        fn fill(&mut self, bytes: &mut [u8]) {
            for chunk in bytes.chunks_mut(8) {
                let word = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
        }
    }

    /// One commit of a built segment: where its batches lie.
    #[derive(Clone, Debug)]
    struct Commit {
        start: usize,
        /// End of the commit's last batch (its padding follows).
        end: usize,
        batches: std::ops::Range<usize>,
    }

    /// A segment image written the way the partition writes it, and its layout.
    #[derive(Clone, Debug)]
    struct Segment {
        block: usize,
        image: Vec<u8>,
        batches: Vec<BatchLocation>,
        commits: Vec<Commit>,
    }

    impl Segment {
        /// `commit_count` commits of 1 to 3 batches of 1 to 3 records with values of 0 to
        /// 300 random bytes, each commit padded with zeros to the next block; epochs rise
        /// every other commit.
        fn build(seed: u64, commit_count: usize, block: usize) -> Segment {
            let mut rng = Rng(seed);
            let segment_size = SEGMENT_BLOCKS * block;
            let mut image = vec![0_u8; segment_size];
            write_header(&mut image, BASE, block, segment_size);
            let mut batches = Vec::new();
            let mut commits = Vec::new();
            let mut position = block;
            let mut offset = BASE;
            for commit_index in 0..commit_count {
                let epoch = Epoch(2 + u32::try_from(commit_index / 2).unwrap());
                let start = position;
                let first = batches.len();
                for _ in 0..1 + rng.below(3) {
                    let batch = random_batch(&mut rng, offset, epoch);
                    image[position..position + batch.len()].copy_from_slice(&batch);
                    let location = location_of(&batch, position);
                    offset = location.next_offset;
                    position += batch.len();
                    batches.push(location);
                }
                commits.push(Commit {
                    start,
                    end: position,
                    batches: first..batches.len(),
                });
                position = round_up(position, block);
                assert!(
                    position - start <= COMMIT_MAX,
                    "commit of {} bytes",
                    position - start
                );
            }
            assert!(position <= segment_size);
            Segment {
                block,
                image,
                batches,
                commits,
            }
        }

        fn last_commit(&self) -> &Commit {
            self.commits.last().unwrap()
        }

        /// The end of the data rounded up to a block: where the next commit goes.
        fn data_block_end(&self) -> usize {
            round_up(self.last_commit().end, self.block)
        }
    }

    fn random_batch(rng: &mut Rng, offset: Offset, epoch: Epoch) -> Vec<u8> {
        let mut builder = BatchBuilder::new(TIMESTAMP_MS);
        for record in 0..1 + rng.below(3) {
            let mut value = vec![0_u8; rng.below(301)];
            rng.fill(&mut value);
            let key = rng.next_u64().to_le_bytes();
            let timestamp_ms = TIMESTAMP_MS + i64::try_from(record).unwrap();
            builder.push(timestamp_ms, Some(&key), Some(&value), &[]);
        }
        let mut batch = builder.build();
        stamp(&mut batch, offset, epoch);
        batch
    }

    fn location_of(batch: &[u8], position: usize) -> BatchLocation {
        let header = validate(batch).unwrap();
        let base_offset = Offset(u64::try_from(header.base_offset).unwrap());
        BatchLocation {
            base_offset,
            next_offset: base_offset.add_count(header.record_count()),
            position: position as u64,
            size_bytes: u32::try_from(batch.len()).unwrap(),
            epoch: Epoch(u32::try_from(header.partition_leader_epoch).unwrap()),
            max_timestamp_ms: header.max_timestamp,
        }
    }

    fn write_header(image: &mut [u8], base_offset: Offset, block: usize, segment_size: usize) {
        image[..block].fill(0);
        SegmentHeader {
            base_offset,
            block_size_bytes: u32::try_from(block).unwrap(),
            segment_size_bytes: segment_size as u64,
        }
        .encode(image);
    }

    fn end_of(location: &BatchLocation) -> usize {
        usize::try_from(location.position).unwrap() + location.size_bytes as usize
    }

    fn scan(image: &[u8], block: usize, commit_bytes_max: usize, is_last: bool) -> ScanVerdict {
        scan_segment(&ScanInput {
            image,
            base_offset: BASE,
            block_size_bytes: block,
            commit_bytes_max,
            is_last,
        })
    }

    /// One past the last nonzero byte, computed independently of the scanner's helper.
    fn last_nonzero_end(bytes: &[u8]) -> Option<usize> {
        bytes
            .iter()
            .rposition(|&byte| byte != 0)
            .map(|index| index + 1)
    }

    /// How many leading batches of `segment` are still byte for byte in `mutated`.
    fn unchanged_prefix(segment: &Segment, mutated: &[u8]) -> usize {
        segment
            .batches
            .iter()
            .take_while(|location| {
                let range = usize::try_from(location.position).unwrap()..end_of(location);
                mutated.get(range.clone()) == Some(&segment.image[range])
            })
            .count()
    }

    /// The verdict for a segment whose first `kept` batches survive and whose later bytes
    /// can only be a torn last commit: Intact if only zeros follow the block after the kept
    /// data, otherwise TornTail from that block to the end of the last nonzero block.
    fn cut_back(segment: &Segment, mutated: &[u8], kept: usize) -> ScanVerdict {
        let batches = segment.batches[..kept].to_vec();
        let data_end = batches.last().map_or(segment.block, end_of);
        let next_offset = batches.last().map_or(BASE, |location| location.next_offset);
        let torn_start = round_up(data_end, segment.block);
        match last_nonzero_end(mutated.get(torn_start..).unwrap_or(&[])) {
            None => ScanVerdict::Intact {
                header_present: true,
                next_offset,
                data_end_position: data_end as u64,
                batches,
            },
            Some(end) => ScanVerdict::TornTail {
                header_present: true,
                next_offset,
                data_end_position: data_end as u64,
                torn_start_position: torn_start as u64,
                torn_end_position: round_up(torn_start + end, segment.block) as u64,
                batches,
                rule: Rule::TornLastCommit,
            },
        }
    }

    /// Where the scan reports damage after data ending at `data_end`: the data's end if
    /// the rest of its block holds nonzero bytes, else the next block boundary.
    fn damage_position(mutated: &[u8], data_end: usize, block: usize) -> u64 {
        let boundary = round_up(data_end, block).min(mutated.len());
        let dirty = mutated[data_end..boundary].iter().any(|&byte| byte != 0);
        if dirty {
            data_end as u64
        } else {
            round_up(data_end, block) as u64
        }
    }

    /// Intact with the first `kept` batches of `segment`.
    fn intact(segment: &Segment, kept: usize) -> Expected {
        let batches = segment.batches[..kept].to_vec();
        Expected::Verdict(ScanVerdict::Intact {
            header_present: true,
            next_offset: batches.last().map_or(BASE, |location| location.next_offset),
            data_end_position: batches.last().map_or(segment.block, end_of) as u64,
            batches,
        })
    }

    fn flip_last_byte(segment: &Segment, image: &mut [u8], batch: usize) {
        image[end_of(&segment.batches[batch]) - 1] ^= 0x10;
    }

    /// What a case expects: a whole verdict, or a Corrupt verdict's position and rule (its
    /// detail is prose for the operator, checked only for being there).
    #[derive(Debug)]
    enum Expected {
        Verdict(ScanVerdict),
        Corrupt { position: u64, rule: Rule },
    }

    fn assert_verdict(name: &str, actual: &ScanVerdict, expected: &Expected) {
        match (actual, expected) {
            (
                ScanVerdict::Corrupt {
                    position,
                    rule,
                    detail,
                },
                Expected::Corrupt {
                    position: expected_position,
                    rule: expected_rule,
                },
            ) => {
                assert_eq!(
                    (position, rule),
                    (expected_position, expected_rule),
                    "{name}"
                );
                assert!(!detail.is_empty(), "{name}");
            }
            (actual, Expected::Verdict(expected)) => assert_eq!(actual, expected, "{name}"),
            (actual, expected) => panic!("{name}: got {actual:?}, expected {expected:?}"),
        }
    }

    fn rule_of(verdict: &ScanVerdict) -> Option<Rule> {
        match verdict {
            ScanVerdict::Intact { .. } => None,
            ScanVerdict::TornTail { rule, .. } | ScanVerdict::Corrupt { rule, .. } => Some(*rule),
        }
    }

    /// How a case's segment is built and scanned.
    #[derive(Clone, Copy)]
    struct Setup {
        commit_count: usize,
        is_last: bool,
        commit_bytes_max: usize,
    }

    /// Five commits, last segment, a commit bound that the data as a whole exceeds.
    const LAST: Setup = Setup {
        commit_count: 5,
        is_last: true,
        commit_bytes_max: COMMIT_MAX,
    };
    const SEALED: Setup = Setup {
        is_last: false,
        ..LAST
    };
    /// A commit bound larger than the segment: only proof of a later commit can tell
    /// damage from a tear.
    const WIDE: Setup = Setup {
        commit_bytes_max: SEGMENT_SIZE,
        ..LAST
    };
    const ONE_COMMIT: Setup = Setup {
        commit_count: 1,
        ..LAST
    };
    const ONE_COMMIT_SEALED: Setup = Setup {
        is_last: false,
        ..ONE_COMMIT
    };

    type Mutate = fn(&Segment, &mut Vec<u8>);
    type Expect = fn(&Segment, &[u8]) -> Expected;

    /// One row of `recovery_cases`.
    struct Case {
        name: &'static str,
        /// The row of RULES this case exercises.
        row: Rule,
        setup: Setup,
        mutate: Mutate,
        expect: Expect,
    }

    fn case(name: &'static str, row: Rule, setup: Setup, mutate: Mutate, expect: Expect) -> Case {
        Case {
            name,
            row,
            setup,
            mutate,
            expect,
        }
    }

    fn corrupt_at(position: usize, rule: Rule) -> Expected {
        Expected::Corrupt {
            position: position as u64,
            rule,
        }
    }

    fn zero_header(image: &mut [u8]) {
        image[..BLOCK].fill(0);
    }

    fn zero_first_block_of_last_commit(segment: &Segment, image: &mut [u8]) {
        let start = segment.last_commit().start;
        image[start..start + BLOCK].fill(0);
    }

    /// Writes `bytes` at the block after the data, as a later commit would.
    fn write_after_data(segment: &Segment, image: &mut [u8], bytes: &[u8]) {
        let start = segment.data_block_end();
        image[start..start + bytes.len()].copy_from_slice(bytes);
    }

    /// The whole first commit is torn away with the header: nothing is kept.
    fn header_torn(segment: &Segment, _: &[u8]) -> Expected {
        Expected::Verdict(ScanVerdict::TornTail {
            header_present: false,
            next_offset: BASE,
            data_end_position: 0,
            torn_start_position: 0,
            torn_end_position: segment.data_block_end() as u64,
            batches: vec![],
            rule: Rule::HeaderDamaged,
        })
    }

    fn all_batches(segment: &Segment, _: &[u8]) -> Expected {
        intact(segment, segment.batches.len())
    }

    fn all_but_last_batch(segment: &Segment, image: &[u8]) -> Expected {
        Expected::Verdict(cut_back(segment, image, segment.batches.len() - 1))
    }

    fn at_data_block_end(segment: &Segment, rule: Rule) -> Expected {
        corrupt_at(segment.data_block_end(), rule)
    }

    fn cases() -> Vec<Case> {
        let mut cases = recovery_cases_header();
        cases.extend(recovery_cases_mismatch());
        cases.extend(recovery_cases_short());
        cases.extend(recovery_cases_header_damage());
        cases.extend(recovery_cases_flip());
        cases.extend(recovery_cases_second_to_last());
        cases.extend(recovery_cases_tail());
        cases.extend(recovery_cases_padding());
        cases.extend(recovery_cases_stale());
        cases
    }

    fn recovery_cases_header() -> Vec<Case> {
        let sealed_empty = Rule::SealedWithoutData;
        vec![
            case("intact", Rule::HeaderMatches, LAST, |_, _| {}, all_batches),
            case(
                "intact, sealed",
                Rule::BatchAccepted,
                SEALED,
                |_, _| {},
                all_batches,
            ),
            case(
                "zero",
                Rule::EmptySegment,
                LAST,
                |_, i| i.fill(0),
                |_, _| {
                    Expected::Verdict(ScanVerdict::Intact {
                        header_present: false,
                        next_offset: BASE,
                        data_end_position: 0,
                        batches: vec![],
                    })
                },
            ),
            case(
                "zero, sealed",
                sealed_empty,
                SEALED,
                |_, i| i.fill(0),
                |_, _| corrupt_at(0, Rule::SealedWithoutData),
            ),
            case(
                "header only",
                Rule::CleanEnd,
                LAST,
                |_, i| i[BLOCK..].fill(0),
                |s, _| intact(s, 0),
            ),
            case(
                "header only, sealed",
                sealed_empty,
                SEALED,
                |_, i| i[BLOCK..].fill(0),
                |_, _| corrupt_at(BLOCK, Rule::SealedWithoutData),
            ),
        ]
    }

    fn recovery_cases_mismatch() -> Vec<Case> {
        let mismatch = |_: &Segment, _: &[u8]| corrupt_at(0, Rule::HeaderMismatch);
        vec![
            case(
                "header for base 999",
                Rule::HeaderMismatch,
                LAST,
                |_, i| {
                    write_header(i, Offset(999), BLOCK, SEGMENT_SIZE);
                },
                mismatch,
            ),
            case(
                "header for 1 KiB blocks",
                Rule::HeaderMismatch,
                LAST,
                |_, i| {
                    write_header(i, BASE, 2 * BLOCK, SEGMENT_SIZE);
                },
                mismatch,
            ),
            case(
                "header for a smaller segment",
                Rule::HeaderMismatch,
                LAST,
                |_, i| {
                    write_header(i, BASE, BLOCK, SEGMENT_SIZE - BLOCK);
                },
                mismatch,
            ),
        ]
    }

    fn recovery_cases_short() -> Vec<Case> {
        vec![
            case(
                "file cut after the data",
                Rule::ShortImage,
                LAST,
                |s, i| {
                    i.truncate(s.data_block_end() + 100);
                },
                all_batches,
            ),
            case(
                "file cut in the last batch",
                Rule::ShortImage,
                LAST,
                |s, i| {
                    i.truncate(s.last_commit().end - 1);
                },
                all_but_last_batch,
            ),
        ]
    }

    fn recovery_cases_header_damage() -> Vec<Case> {
        let damaged = Rule::HeaderDamaged;
        let after = Rule::CommitAfterDamage;
        let beyond = Rule::DamageBeyondCommitWindow;
        let sealed = Rule::SealedTorn;
        vec![
            case(
                "header zeroed, 1 commit",
                damaged,
                ONE_COMMIT,
                |_, i| zero_header(i),
                header_torn,
            ),
            case(
                "header bit flip, 1 commit",
                damaged,
                ONE_COMMIT,
                |_, i| i[20] ^= 4,
                header_torn,
            ),
            case(
                "header zeroed, 1 commit, sealed",
                sealed,
                ONE_COMMIT_SEALED,
                |_, i| {
                    zero_header(i);
                },
                |_, _| corrupt_at(0, Rule::SealedTorn),
            ),
            case(
                "header zeroed",
                after,
                WIDE,
                |_, i| zero_header(i),
                |_, _| corrupt_at(0, Rule::CommitAfterDamage),
            ),
            case(
                "header zeroed, data > 1 commit",
                beyond,
                LAST,
                |_, i| zero_header(i),
                |_, _| corrupt_at(0, Rule::DamageBeyondCommitWindow),
            ),
        ]
    }

    fn recovery_cases_flip() -> Vec<Case> {
        let after = Rule::CommitAfterDamage;
        vec![
            // An unaligned batch: the damage is proven by the commits that follow it.
            case(
                "flip in the last batch of commit 1",
                after,
                WIDE,
                |s, i| {
                    flip_last_byte(s, i, s.commits[1].batches.end - 1);
                },
                |s, _| {
                    let batch = &s.batches[s.commits[1].batches.end - 1];
                    corrupt_at(
                        usize::try_from(batch.position).unwrap(),
                        Rule::CommitAfterDamage,
                    )
                },
            ),
            // A batch that starts a commit: its header still gives its end and next offset,
            // and the next commit starts after padding with that offset.
            case(
                "flip in the first batch of commit 3",
                after,
                WIDE,
                |s, i| {
                    flip_last_byte(s, i, s.commits[3].batches.start);
                },
                |s, _| corrupt_at(s.commits[3].start, Rule::CommitAfterDamage),
            ),
            case(
                "commit 1 lost (zero)",
                after,
                WIDE,
                |s, i| {
                    i[s.commits[1].start..round_up(s.commits[1].end, BLOCK)].fill(0);
                },
                |s, _| corrupt_at(s.commits[1].start, Rule::CommitAfterDamage),
            ),
            case(
                "flip in the first batch",
                Rule::DamageBeyondCommitWindow,
                LAST,
                |s, i| {
                    flip_last_byte(s, i, 0);
                },
                |_, _| corrupt_at(BLOCK, Rule::DamageBeyondCommitWindow),
            ),
            case(
                "flip in the last batch",
                Rule::UnprovenDamage,
                LAST,
                |s, i| {
                    flip_last_byte(s, i, s.batches.len() - 1);
                },
                all_but_last_batch,
            ),
        ]
    }

    fn recovery_cases_second_to_last() -> Vec<Case> {
        vec![
            // An unaligned batch of the second-to-last commit: its header still gives its end,
            // and the last commit starts at the next block boundary with its next offset.
            case(
                "flip in the last batch of commit 3",
                Rule::CommitAfterDamage,
                WIDE,
                |s, i| flip_last_byte(s, i, s.commits[3].batches.end - 1),
                |s, _| {
                    let batch = &s.batches[s.commits[3].batches.end - 1];
                    corrupt_at(
                        usize::try_from(batch.position).unwrap(),
                        Rule::CommitAfterDamage,
                    )
                },
            ),
            // The same batch with its base offset damaged: its end is lost with its header,
            // and one commit after it is what a single commit in flight could hold.
            case(
                "base offset of the last batch of commit 3 damaged",
                Rule::UnprovenDamage,
                WIDE,
                |s, i| {
                    let position = s.batches[s.commits[3].batches.end - 1].position;
                    i[usize::try_from(position).unwrap() + 7] ^= 0x01;
                },
                |s, i| Expected::Verdict(cut_back(s, i, s.commits[3].batches.end - 1)),
            ),
        ]
    }

    fn recovery_cases_tail() -> Vec<Case> {
        let torn = Rule::TornLastCommit;
        let padding = Rule::PaddingSkipped;
        vec![
            case(
                "last commit's first block zeroed",
                torn,
                LAST,
                |s, i| {
                    zero_first_block_of_last_commit(s, i);
                },
                |s, i| {
                    let verdict = cut_back(s, i, s.last_commit().batches.start);
                    assert!(matches!(verdict, ScanVerdict::TornTail { .. }));
                    Expected::Verdict(verdict)
                },
            ),
            case(
                "last commit's first block zeroed, sealed",
                Rule::SealedTorn,
                SEALED,
                |s, i| {
                    zero_first_block_of_last_commit(s, i);
                },
                |s, _| corrupt_at(s.last_commit().start, Rule::SealedTorn),
            ),
            case(
                "garbage in the block after the data",
                torn,
                LAST,
                |s, i| {
                    write_after_data(s, i, &[0x5a; 100]);
                },
                |s, i| Expected::Verdict(cut_back(s, i, s.batches.len())),
            ),
            case(
                "garbage in the last padding",
                padding,
                LAST,
                |s, i| {
                    i[s.last_commit().end..s.data_block_end()].fill(0xff);
                },
                all_batches,
            ),
            case(
                "garbage beyond one commit",
                Rule::DamageBeyondCommitWindow,
                LAST,
                |s, i| {
                    i[s.data_block_end() + COMMIT_MAX] = 1;
                },
                |s, _| at_data_block_end(s, Rule::DamageBeyondCommitWindow),
            ),
        ]
    }

    fn recovery_cases_padding() -> Vec<Case> {
        let padding = Rule::PaddingSkipped;
        vec![
            case(
                "garbage in the padding of commit 1",
                padding,
                SEALED,
                |s, i| {
                    i[s.commits[1].end..round_up(s.commits[1].end, BLOCK)].fill(0xff);
                },
                all_batches,
            ),
            // Padding garbage is forgotten once the next batch is accepted: later damage is
            // reported where it is, not at the garbage.
            case(
                "garbage in padding of commit 1, flip in commit 3",
                padding,
                WIDE,
                |s, i| {
                    i[s.commits[1].end..round_up(s.commits[1].end, BLOCK)].fill(0xff);
                    flip_last_byte(s, i, s.commits[3].batches.start);
                },
                |s, _| corrupt_at(s.commits[3].start, Rule::CommitAfterDamage),
            ),
        ]
    }

    fn recovery_cases_stale() -> Vec<Case> {
        let stale = Rule::StaleBatchAfterDamage;
        let at_data_end = |s: &Segment, _: &[u8]| at_data_block_end(s, Rule::StaleBatchAfterDamage);
        vec![
            case(
                "the first batch again after the data",
                stale,
                LAST,
                |s, i| {
                    write_after_data(s, i, &s.image[BLOCK..end_of(&s.batches[0])]);
                },
                at_data_end,
            ),
            case(
                "the last commit again after the data",
                stale,
                LAST,
                |s, i| {
                    let commit = s.last_commit();
                    write_after_data(s, i, &s.image[commit.start..commit.end]);
                },
                at_data_end,
            ),
            case(
                "the next offset under an older epoch",
                stale,
                LAST,
                |s, i| {
                    let next_offset = s.batches.last().unwrap().next_offset;
                    write_after_data(s, i, &random_batch(&mut Rng(2), next_offset, Epoch(1)));
                },
                at_data_end,
            ),
        ]
    }

    // The layout of the SEED segment has what the cases rely on: every commit ends inside
    // a block (so commit boundaries show as padding), commits 1 and 3 hold two batches or
    // more, the last commit spans two blocks or more, and the data outgrows one commit.
    #[test]
    fn recovery_cases_layout() {
        let segment = Segment::build(SEED, LAST.commit_count, BLOCK);
        assert!(segment.commits.iter().all(|commit| commit.end % BLOCK != 0));
        assert!(segment.commits[1].batches.len() >= 2);
        assert!(segment.commits[3].batches.len() >= 2);
        let last = segment.last_commit();
        assert!(round_up(last.end, BLOCK) - last.start > BLOCK);
        assert!(last.end > BLOCK + COMMIT_MAX);
        assert!(segment.data_block_end() + COMMIT_MAX < SEGMENT_SIZE);
    }

    // TigerBeetle-style recovery_cases: each row builds a segment of random batches
    // written as the partition writes them (commits of whole batches padded to a block),
    // applies one mutation, and checks the exact verdict: kept batches, offsets, positions
    // of the data end and torn region, or the rule and position of the corruption.
    #[test]
    fn recovery_cases() {
        for case in cases() {
            let (segment, image, verdict) = run_case(&case);
            assert_verdict(case.name, &verdict, &(case.expect)(&segment, &image));
        }
    }

    fn run_case(case: &Case) -> (Segment, Vec<u8>, ScanVerdict) {
        let segment = Segment::build(SEED, case.setup.commit_count, BLOCK);
        let mut image = segment.image.clone();
        (case.mutate)(&segment, &mut image);
        let verdict = scan(
            &image,
            BLOCK,
            case.setup.commit_bytes_max,
            case.setup.is_last,
        );
        (segment, image, verdict)
    }

    // Every row of RULES is exercised by at least one case of recovery_cases, and every
    // rule that can decide a TornTail or Corrupt verdict does decide one in some case.
    #[test]
    fn recovery_cases_cover_every_rule() {
        let rows: Vec<Rule> = cases().iter().map(|case| case.row).collect();
        for (rule, _) in RULES {
            assert!(rows.contains(rule), "no case for {rule:?}");
        }
        let decided: Vec<Rule> = cases()
            .iter()
            .filter_map(|case| rule_of(&run_case(case).2))
            .collect();
        let deciding = [
            Rule::HeaderMismatch,
            Rule::SealedWithoutData,
            Rule::HeaderDamaged,
            Rule::StaleBatchAfterDamage,
            Rule::CommitAfterDamage,
            Rule::DamageBeyondCommitWindow,
            Rule::SealedTorn,
            Rule::TornLastCommit,
        ];
        for rule in deciding {
            assert!(decided.contains(&rule), "no verdict under {rule:?}");
        }
    }

    // Truncates the last commit at every block boundary (a write that persisted only its
    // first blocks), and zeroes each of its blocks in turn (a write that lost one block).
    // The verdict keeps exactly the batches that are still whole, and is Intact when only
    // zeros or a torn head inside padding remain, TornTail otherwise; the same image as a
    // sealed segment is Intact or Corrupt under SealedTorn at the damage.
    #[test]
    fn last_commit_cut_at_every_block() {
        for seed in 0..20 {
            let segment = Segment::build(seed, 4, BLOCK);
            let commit = segment.last_commit().clone();
            for block_start in (commit.start..round_up(commit.end, BLOCK)).step_by(BLOCK) {
                let mut truncated = segment.image.clone();
                truncated[block_start..].fill(0);
                check_cut(
                    &segment,
                    &truncated,
                    &format!("seed {seed} cut at {block_start}"),
                );
                let mut holed = segment.image.clone();
                holed[block_start..block_start + BLOCK].fill(0);
                check_cut(
                    &segment,
                    &holed,
                    &format!("seed {seed} hole at {block_start}"),
                );
            }
        }
    }

    fn check_cut(segment: &Segment, mutated: &[u8], name: &str) {
        let kept = unchanged_prefix(segment, mutated);
        assert!(kept >= segment.last_commit().batches.start, "{name}");
        let expected = cut_back(segment, mutated, kept);
        assert_eq!(scan(mutated, BLOCK, COMMIT_MAX, true), expected, "{name}");
        let sealed = scan(mutated, BLOCK, COMMIT_MAX, false);
        match expected {
            ScanVerdict::TornTail {
                data_end_position, ..
            } => {
                let data_end = usize::try_from(data_end_position).unwrap();
                let position = damage_position(mutated, data_end, BLOCK);
                let expected = Expected::Corrupt {
                    position,
                    rule: Rule::SealedTorn,
                };
                assert_verdict(name, &sealed, &expected);
            }
            intact => assert_eq!(sealed, intact, "{name}"),
        }
    }

    /// A one-record batch of exactly `size_bytes` bytes whose value is all zeros.
    fn zero_batch_of_size(size_bytes: usize, offset: Offset, epoch: Epoch) -> Vec<u8> {
        for value_size_bytes in 0..size_bytes {
            let mut builder = BatchBuilder::new(TIMESTAMP_MS);
            builder.push(TIMESTAMP_MS, None, Some(&vec![0; value_size_bytes]), &[]);
            let mut batch = builder.build();
            if batch.len() == size_bytes {
                stamp(&mut batch, offset, epoch);
                return batch;
            }
        }
        panic!("no batch of {size_bytes} bytes");
    }

    // Two sectors of the last commit are lost: the first (the whole of batch A) and one that
    // holds the zero tail of batch W and the first 7 bytes of batch X's header. W still
    // validates (its lost bytes were zeros), and so does X, whose CRC starts after the base
    // offset, now cut to its last byte. X's base offset straddles a sector boundary, so
    // its smaller value is no proof of a stale batch: the verdict is a torn tail.
    #[test]
    fn half_torn_header_across_a_sector_proves_nothing() {
        let mut rng = Rng(11);
        let mut image = vec![0_u8; SEGMENT_SIZE];
        write_header(&mut image, BASE, BLOCK, SEGMENT_SIZE);
        let mut batches = Vec::new();
        let mut position = BLOCK;
        let mut put = |batch: Vec<u8>, position: &mut usize| {
            image[*position..*position + batch.len()].copy_from_slice(&batch);
            batches.push(location_of(&batch, *position));
            *position += batch.len();
            batches.last().unwrap().next_offset
        };
        let next = put(random_batch(&mut rng, BASE, Epoch(2)), &mut position);
        let commit_start = round_up(position, BLOCK);
        position = commit_start;
        let next = put(zero_batch_of_size(512, next, Epoch(2)), &mut position);
        let next = put(zero_batch_of_size(1024 - 7, next, Epoch(2)), &mut position);
        let next = put(random_batch(&mut rng, next, Epoch(2)), &mut position);
        put(random_batch(&mut rng, next, Epoch(2)), &mut position);
        let segment = Segment {
            block: BLOCK,
            image,
            commits: vec![],
            batches,
        };

        let mut torn = segment.image.clone();
        torn[commit_start..commit_start + 512].fill(0);
        torn[commit_start + 1024..commit_start + 1536].fill(0);
        let [_, _, w, x, _] = &segment.batches[..] else {
            unreachable!()
        };
        assert!(validate(&torn[usize::try_from(w.position).unwrap()..end_of(w)]).is_ok());
        let x_bytes = &torn[usize::try_from(x.position).unwrap()..end_of(x)];
        let x_header = validate(x_bytes).unwrap();
        assert!(u64::try_from(x_header.base_offset).unwrap() < x.base_offset.0);

        let expected = cut_back(&segment, &torn, 1);
        assert!(matches!(expected, ScanVerdict::TornTail { .. }));
        assert_eq!(scan(&torn, BLOCK, COMMIT_MAX, true), expected);
    }

    /// A batch of exactly `size_bytes` bytes holding `records` records of random bytes.
    fn batch_of_size(rng: &mut Rng, size_bytes: usize, records: u64, offset: Offset) -> Vec<u8> {
        let mut head = BatchBuilder::new(TIMESTAMP_MS);
        for _ in 1..records {
            let mut value = [0_u8; 10];
            rng.fill(&mut value);
            head.push(TIMESTAMP_MS, None, Some(&value), &[]);
        }
        for value_size_bytes in 0..size_bytes {
            let mut builder = head.clone();
            let mut value = vec![0_u8; value_size_bytes];
            rng.fill(&mut value);
            builder.push(TIMESTAMP_MS, None, Some(&value), &[]);
            let mut batch = builder.build();
            if batch.len() == size_bytes {
                stamp(&mut batch, offset, Epoch(9));
                return batch;
            }
        }
        panic!("no batch of {size_bytes} bytes with {records} records");
    }

    // A crash loop. The last commit is torn with only its first block written: recovery
    // keeps the batches wholly inside that block and may leave the head of the batch that
    // crossed the block boundary in the padding. The next commit reuses that head's offsets
    // from the next block on, and is torn too, losing its first block. It is built to make
    // the head look like the end of an acknowledged commit: a later batch of the new commit
    // carries the offset the head claims next, either one block past the block boundary
    // after the head's claimed end, or right at it but after a nonzero tail. The head must
    // prove nothing: the verdict keeps the first recovery's batches.
    #[test]
    fn torn_head_left_in_padding_then_another_tear() {
        let (mut moved, mut exact) = (0, 0);
        for seed in 0..400 {
            let segment = Segment::build(seed, 3, BLOCK);
            let mut image = segment.image.clone();
            image[segment.last_commit().start + BLOCK..].fill(0);
            let (kept, data_end) = recover_as_the_caller_does(&mut image, seed);
            let next_offset = kept.last().unwrap().next_offset;
            let start = round_up(data_end, BLOCK);
            let head = candidate_at(&image, data_end, image.len())
                .filter(|head| head.location.base_offset == next_offset && head.end > start);
            let Some(head) = head else { continue };
            let mut first_size_bytes = round_up(head.end, BLOCK) - start;
            if first_size_bytes > BLOCK {
                exact += 1;
            } else {
                moved += 1;
                first_size_bytes += BLOCK;
            }
            let mut rng = Rng(seed ^ 0x5eed);
            let records = head.location.next_offset.count_since(next_offset);
            let first = batch_of_size(&mut rng, first_size_bytes, records, next_offset);
            let second = random_batch(&mut rng, head.location.next_offset, Epoch(9));
            image[start..start + first.len()].copy_from_slice(&first);
            let second_start = start + first.len();
            image[second_start..second_start + second.len()].copy_from_slice(&second);
            image[start..start + BLOCK].fill(0);
            match scan(&image, BLOCK, COMMIT_MAX, true) {
                ScanVerdict::TornTail { batches, .. } => assert_eq!(batches, kept, "{seed}"),
                other => panic!("seed {seed}: {other:?}"),
            }
        }
        assert!(moved >= 20 && exact >= 5, "moved={moved} exact={exact}");
    }

    // The same crash loop with a new commit of ordinary random batches, its first block
    // lost: never corruption, and the first recovery's batches are kept.
    #[test]
    fn crash_loop_with_random_commits_is_never_corruption() {
        for seed in 0..300 {
            let segment = Segment::build(seed, 3, BLOCK);
            let mut image = segment.image.clone();
            image[segment.last_commit().start + BLOCK..].fill(0);
            let (kept, data_end) = recover_as_the_caller_does(&mut image, seed);
            let start = round_up(data_end, BLOCK);
            let mut rng = Rng(seed ^ 0xc0ffee);
            let mut position = start;
            let mut offset = kept.last().unwrap().next_offset;
            for _ in 0..4 {
                let batch = random_batch(&mut rng, offset, Epoch(9));
                image[position..position + batch.len()].copy_from_slice(&batch);
                offset = location_of(&batch, position).next_offset;
                position += batch.len();
            }
            image[start..start + BLOCK].fill(0);
            let (again, _) = recover_as_the_caller_does(&mut image, seed);
            assert_eq!(again, kept, "seed {seed}");
        }
    }

    /// Scans `image` as the last segment, zeroes a torn region as the caller does, and
    /// returns the batches kept and the data end.
    fn recover_as_the_caller_does(image: &mut [u8], seed: u64) -> (Vec<BatchLocation>, usize) {
        match scan(image, BLOCK, COMMIT_MAX, true) {
            ScanVerdict::Intact {
                data_end_position,
                batches,
                ..
            } => (batches, usize::try_from(data_end_position).unwrap()),
            ScanVerdict::TornTail {
                data_end_position,
                torn_start_position,
                torn_end_position,
                batches,
                ..
            } => {
                let torn_start = usize::try_from(torn_start_position).unwrap();
                let torn_end = usize::try_from(torn_end_position).unwrap();
                image[torn_start..torn_end].fill(0);
                (batches, usize::try_from(data_end_position).unwrap())
            }
            corrupt => panic!("seed {seed}: {corrupt:?}"),
        }
    }

    // RULES lists every variant exactly once, with a one-line description and a
    // "seen => verdict" text. The match below fails to compile when a variant is added
    // without a thought for this table.
    #[test]
    fn rules_table_lists_every_rule_once() {
        fn all_rules_count(rule: Rule) -> usize {
            match rule {
                Rule::HeaderMatches
                | Rule::HeaderMismatch
                | Rule::ShortImage
                | Rule::EmptySegment
                | Rule::SealedWithoutData
                | Rule::HeaderDamaged
                | Rule::BatchAccepted
                | Rule::PaddingSkipped
                | Rule::CleanEnd
                | Rule::StaleBatchAfterDamage
                | Rule::CommitAfterDamage
                | Rule::DamageBeyondCommitWindow
                | Rule::SealedTorn
                | Rule::TornLastCommit
                | Rule::UnprovenDamage => 15,
            }
        }
        assert_eq!(RULES.len(), all_rules_count(Rule::CleanEnd));
        for (index, (rule, text)) in RULES.iter().enumerate() {
            assert!(
                RULES[..index].iter().all(|(other, _)| other != rule),
                "{rule:?} twice"
            );
            assert!(text.contains(" => "), "{rule:?}: {text}");
            let line = rule.to_string();
            assert!(!line.is_empty() && !line.contains('\n'), "{rule:?}");
        }
    }

    // Checks the properties every verdict has, whatever the image: kept batches are
    // contiguous from the base offset in position order with non-decreasing epochs, the
    // data end follows them, and a torn region is block-aligned and starts after the data.
    fn check_verdict_invariants(verdict: &ScanVerdict, block: usize) {
        let (header_present, next_offset, data_end, batches) = match verdict {
            ScanVerdict::Corrupt { detail, .. } => {
                assert!(!detail.is_empty());
                return;
            }
            ScanVerdict::Intact {
                header_present,
                next_offset,
                data_end_position,
                batches,
            }
            | ScanVerdict::TornTail {
                header_present,
                next_offset,
                data_end_position,
                batches,
                ..
            } => (*header_present, *next_offset, *data_end_position, batches),
        };
        let mut expected_offset = BASE;
        let mut expected_end = if header_present { block as u64 } else { 0 };
        let mut epoch_min = Epoch(0);
        for location in batches {
            assert_eq!(location.base_offset, expected_offset);
            assert!(location.position >= expected_end);
            assert!(location.epoch >= epoch_min);
            expected_offset = location.next_offset;
            expected_end = location.position + u64::from(location.size_bytes);
            epoch_min = location.epoch;
        }
        assert!(header_present || batches.is_empty());
        assert_eq!(next_offset, expected_offset);
        assert_eq!(data_end, expected_end);
        if let ScanVerdict::TornTail {
            torn_start_position,
            torn_end_position,
            ..
        } = verdict
        {
            let block = block as u64;
            assert_eq!(torn_start_position % block, 0);
            assert_eq!(torn_end_position % block, 0);
            assert!(*torn_start_position >= data_end);
            assert!(torn_start_position - data_end < block);
            assert!(torn_start_position < torn_end_position);
        }
    }

    fn last_segment_torn(verdict: &ScanVerdict, segment: &Segment, kept_min: usize) {
        let batches = match verdict {
            ScanVerdict::Intact { batches, .. } | ScanVerdict::TornTail { batches, .. } => batches,
            ScanVerdict::Corrupt { .. } => panic!("a torn last commit is not corruption"),
        };
        assert!(batches.len() >= kept_min, "{} < {kept_min}", batches.len());
        assert_eq!(batches[..], segment.batches[..batches.len()]);
    }

    // Bit rot: one bit flipped in the CRC-covered bytes of a batch that has at least one
    // commit after it, over 2000 seeded segments. Every Corrupt verdict names the damaged
    // batch's position, and at least 99% are found. The rest are flips that break the
    // header too, or layouts where no commit boundary after the damage is provable (see
    // Rule::UnprovenDamage); the fixed seeds make the count exact.
    #[test]
    fn bit_flips_in_acknowledged_batches_are_found() {
        let mut found = 0;
        for seed in 0..2000 {
            let segment = Segment::build(seed, 5, BLOCK);
            let mut rng = Rng(seed);
            let commit = &segment.commits[rng.below(4)];
            let batch = &segment.batches[commit.batches.start + rng.below(commit.batches.len())];
            let start = usize::try_from(batch.position).unwrap();
            let byte = start + 21 + rng.below(batch.size_bytes as usize - 21);
            let mut image = segment.image.clone();
            image[byte] ^= 1 << rng.below(8);
            if let ScanVerdict::Corrupt { position, .. } = scan(&image, BLOCK, SEGMENT_SIZE, true) {
                assert_eq!(position, batch.position, "seed {seed}");
                found += 1;
            }
        }
        assert!(found >= 1980, "found {found} of 2000");
    }

    proptest! {
        // Arbitrary bytes, with or without a valid header in front, at any length and any
        // commit bound, never panic, and whatever comes back has the verdict invariants.
        #[test]
        fn arbitrary_bytes_never_panic(
            mut image in proptest::collection::vec(any::<u8>(), 0..4 * BLOCK),
            with_header in any::<bool>(),
            commit_blocks in 1_usize..16,
            is_last in any::<bool>(),
        ) {
            if with_header && image.len() >= BLOCK {
                write_header(&mut image, BASE, BLOCK, SEGMENT_SIZE);
            }
            let verdict = scan(&image, BLOCK, commit_blocks * BLOCK, is_last);
            check_verdict_invariants(&verdict, BLOCK);
        }

        // A valid segment cut to any length never panics, and keeps the invariants.
        #[test]
        fn truncated_image_never_panics(
            seed in any::<u64>(),
            cut in 0..SEGMENT_SIZE,
            is_last in any::<bool>(),
        ) {
            let segment = Segment::build(seed, 5, BLOCK);
            let verdict = scan(&segment.image[..cut], BLOCK, COMMIT_MAX, is_last);
            check_verdict_invariants(&verdict, BLOCK);
        }

        // A valid segment whose last commit is cut at any byte, or has any run of sectors
        // zeroed or garbled, is never corrupt: the verdict is Intact or TornTail, keeps
        // every batch of the earlier commits, and keeps only batches of the original, in
        // order. (Damage finer than a sector is not a tear: it can rewrite a header's offset
        // or epoch, which lie outside the CRC, and may rightly be reported as corruption.)
        #[test]
        fn damage_inside_the_last_commit_is_a_torn_tail(
            seed in any::<u64>(),
            commit_count in 1_usize..6,
            kind in 0_u8..3,
            from in any::<prop::sample::Index>(),
            sectors in 1_usize..(COMMIT_MAX / 512),
        ) {
            let segment = Segment::build(seed, commit_count, BLOCK);
            let commit = segment.last_commit();
            let commit_end = round_up(commit.end, BLOCK);
            let cut = commit.start + from.index(commit_end - commit.start);
            let start = cut - cut % 512;
            let end = (start + sectors * 512).min(commit_end);
            let mut image = segment.image.clone();
            match kind {
                0 => image[cut..].fill(0),
                1 => image[start..end].fill(0),
                _ => Rng(seed).fill(&mut image[start..end]),
            }
            let verdict = scan(&image, BLOCK, COMMIT_MAX, true);
            check_verdict_invariants(&verdict, BLOCK);
            last_segment_torn(&verdict, &segment, commit.batches.start);
        }

        // The realistic tear: a 4 KiB-block segment whose last commit reached the disk
        // sector by sector (512 bytes), each sector written or still zero, the header
        // block included when that commit is the segment's first. Never corrupt.
        #[test]
        fn sector_tear_of_the_last_commit_is_a_torn_tail(
            seed in any::<u64>(),
            commit_count in 1_usize..4,
            sectors_written in any::<u64>(),
        ) {
            const SECTOR: usize = 512;
            let block = 4096;
            let segment = Segment::build(seed, commit_count, block);
            let commit = segment.last_commit();
            let first = if commit_count == 1 { 0 } else { commit.start };
            let mut image = segment.image.clone();
            let sectors = (first..round_up(commit.end, block)).step_by(SECTOR);
            for (index, sector) in sectors.enumerate() {
                if sectors_written & (1 << (index % 64)) == 0 {
                    image[sector..sector + SECTOR].fill(0);
                }
            }
            let verdict = scan(&image, block, COMMIT_MAX, true);
            check_verdict_invariants(&verdict, block);
            last_segment_torn(&verdict, &segment, commit.batches.start);
        }
    }
}
