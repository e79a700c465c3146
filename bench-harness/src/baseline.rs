//! Raw device baselines, measured in the same run as the scenarios they are compared with.
//!
//! Two numbers anchor every ratio in the report (DESIGN.md §8):
//! - 4 KiB `pwrite` + `fdatasync` at queue depth 1: the floor of one small durable commit;
//! - 1 MiB `pwrite` + `fdatasync` back to back: the device's durable sequential bandwidth.
//!
//! Both write with O_DIRECT at sequential positions into a file that was filled with zeros and
//! fsynced first. Writing into allocated, written blocks means `fdatasync` has no file-system
//! metadata to commit, as for the WAL's pre-filled segments (DESIGN.md §2); measuring into a
//! fresh or fallocated file would charge each commit for extent conversion as well. Where
//! O_DIRECT is refused (EINVAL, e.g. tmpfs), the baselines fall back to buffered writes plus
//! `fdatasync` and say so (`o_direct: false`).
//!
//! Invariants: buffers, positions and lengths are multiples of `ALIGNMENT_BYTES`; every file
//! is created new inside the run's data directory and removed once measured.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use ringlog_types::units::{KIB, MIB};
use ringlog_uring::AlignedBuf;
use serde::Serialize;

use crate::latency::{new_histogram, record_us, Stopwatch};
use crate::report::{mb_per_s, LatencySummary};
use crate::steal::{steal_percent_since, CpuTimes};

/// Alignment of O_DIRECT buffers, positions and lengths (covers 512 B and 4 KiB sectors).
const ALIGNMENT_BYTES: u64 = 4 * KIB;
/// Size of one write of the latency baseline.
const SYNC_WRITE_SIZE_BYTES: u64 = 4 * KIB;
/// File the latency baseline cycles through; positions wrap around at its end.
const SYNC_FILE_SIZE_BYTES: u64 = 64 * MIB;
/// Size of one write of the bandwidth baseline.
const BANDWIDTH_WRITE_SIZE_BYTES: u64 = MIB;
/// Size of each write that fills a file with zeros.
const FILL_WRITE_SIZE_BYTES: u64 = MIB;
/// Byte written by the measured writes: not zero, so no layer can elide them as zeroes.
const PATTERN_BYTE: u8 = 0xa5;

const _: () = assert!(SYNC_WRITE_SIZE_BYTES % ALIGNMENT_BYTES == 0);
const _: () = assert!(SYNC_FILE_SIZE_BYTES % SYNC_WRITE_SIZE_BYTES == 0);
const _: () = assert!(BANDWIDTH_WRITE_SIZE_BYTES % ALIGNMENT_BYTES == 0);
const _: () = assert!(FILL_WRITE_SIZE_BYTES % ALIGNMENT_BYTES == 0);

/// The baselines of one run. Serialised as the report's `baselines` object.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Baselines {
    /// Whether both baselines used O_DIRECT (false: buffered writes + fdatasync).
    pub o_direct: bool,
    /// Latency of one 4 KiB pwrite + fdatasync at queue depth 1, µs.
    pub fdatasync_4k_qd1_us: LatencySummary,
    /// Samples behind `fdatasync_4k_qd1_us` (warm-up excluded).
    pub fdatasync_4k_qd1_sample_count: u64,
    /// Bandwidth of back-to-back 1 MiB pwrite + fdatasync, MB/s (MB = 10^6 bytes).
    pub write_fdatasync_1m_mb_per_s: f64,
    /// Latency of each 1 MiB pwrite + fdatasync, µs.
    pub write_fdatasync_1m_us: LatencySummary,
    /// Bytes behind `write_fdatasync_1m_mb_per_s` (warm-up excluded).
    pub write_fdatasync_1m_total_bytes: u64,
    /// Loopback TCP round trip of 64 B messages at queue depth 1, µs (`loopback.rs`);
    /// measured by the subcommands that go through the network, absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loopback_rtt_64b_us: Option<LatencySummary>,
    /// Loopback TCP round trip of 1 KiB messages at queue depth 1, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loopback_rtt_1k_us: Option<LatencySummary>,
    /// Round trips behind each `loopback_rtt_*` summary (the smaller of the two counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loopback_rtt_sample_count: Option<u64>,
    /// Latency of one 4 KiB pwrite + fdatasync at queue depth 1 while
    /// `fdatasync_4k_concurrent_writer_count` writers do the same at once, each into its own
    /// file, µs: what each node of a local cluster gets from the one device they share.
    /// Measured by the subcommands that start a local cluster; context, not a ratio's base.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fdatasync_4k_concurrent_us: Option<LatencySummary>,
    /// Writers behind `fdatasync_4k_concurrent_us`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fdatasync_4k_concurrent_writer_count: Option<u64>,
    /// Samples behind `fdatasync_4k_concurrent_us`, all writers together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fdatasync_4k_concurrent_sample_count: Option<u64>,
    /// Percent of the CPU time of the baselines' span that a hypervisor gave to other guests
    /// (`steal.rs`); absent if /proc/stat could not tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steal_percent: Option<f64>,
}

/// How much each baseline measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaselinePlan {
    /// Measured 4 KiB write + fdatasync pairs.
    pub sync_4k_sample_count: u64,
    /// Unmeasured pairs before them.
    pub sync_4k_warmup_count: u64,
    /// Measured 1 MiB write + fdatasync pairs.
    pub write_1m_count: u64,
    /// Unmeasured pairs before them.
    pub write_1m_warmup_count: u64,
    /// Each baseline stops early once its measured part has taken this long, so that a
    /// slow device cannot blow the time budget of `--quick`; the report gives the real counts.
    pub measured_time_max: Duration,
}

impl BaselinePlan {
    /// Full runs: 20,000 samples (p99.99 rests on 2 of them) and 1 GiB of 1 MiB writes.
    pub const FULL: BaselinePlan = BaselinePlan {
        sync_4k_sample_count: 20_000,
        sync_4k_warmup_count: 500,
        write_1m_count: 1024,
        write_1m_warmup_count: 16,
        measured_time_max: Duration::from_secs(120),
    };

    /// `--quick`: 2,000 samples and 256 MiB, at most 3 s of measuring each.
    pub const QUICK: BaselinePlan = BaselinePlan {
        sync_4k_sample_count: 2_000,
        sync_4k_warmup_count: 100,
        write_1m_count: 256,
        write_1m_warmup_count: 8,
        measured_time_max: Duration::from_secs(3),
    };

    /// The plan for `--quick` or a full run.
    pub fn for_mode(quick: bool) -> BaselinePlan {
        if quick {
            BaselinePlan::QUICK
        } else {
            BaselinePlan::FULL
        }
    }
}

/// Measures both baselines in a `baseline/` directory under `data_dir`, removed afterwards.
pub fn measure_baselines(
    data_dir: &Path,
    plan: BaselinePlan,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Baselines> {
    let started = CpuTimes::now();
    let dir = data_dir.join("baseline");
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let sync_4k = measure_sync_4k(&dir, plan, progress)?;
    let summary = LatencySummary::from_histogram(&sync_4k.histogram);
    progress(&format!(
        "baseline: 4 KiB write+fdatasync QD1: p50 {} µs, p99 {} µs ({} samples)",
        summary.p50,
        summary.p99,
        sync_4k.histogram.len()
    ));

    let write_1m = measure_write_1m(&dir, plan, progress)?;
    let bandwidth_mb_per_s = mb_per_s(write_1m.total_bytes, write_1m.elapsed);
    progress(&format!(
        "baseline: 1 MiB write+fdatasync: {bandwidth_mb_per_s:.1} MB/s ({} MiB)",
        write_1m.total_bytes / MIB
    ));

    fs::remove_dir(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(Baselines {
        o_direct: sync_4k.o_direct && write_1m.o_direct,
        fdatasync_4k_qd1_us: summary,
        fdatasync_4k_qd1_sample_count: sync_4k.histogram.len(),
        write_fdatasync_1m_mb_per_s: bandwidth_mb_per_s,
        write_fdatasync_1m_us: LatencySummary::from_histogram(&write_1m.histogram),
        write_fdatasync_1m_total_bytes: write_1m.total_bytes,
        steal_percent: steal_percent_since(started),
        ..Baselines::default()
    })
}

/// Measures the 4 KiB write+fdatasync loop of `measure_baselines` in `writer_count` threads
/// at once, each on its own pre-filled file, in a `baseline-concurrent/` directory under
/// `data_dir` (removed afterwards), and stores the merged latencies in `baselines`. Each
/// writer takes `plan`'s sample count divided by `writer_count`, so the whole costs about as
/// long as the single-writer loop.
pub fn measure_concurrent_sync_4k(
    data_dir: &Path,
    plan: BaselinePlan,
    writer_count: u64,
    baselines: &mut Baselines,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    assert!(writer_count >= 1, "writer_count={writer_count}");
    let dir = data_dir.join("baseline-concurrent");
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut targets = Vec::new();
    for writer in 0..writer_count {
        let path = dir.join(format!("fdatasync-4k-{writer}"));
        targets.push(PrefilledFile::create(
            &path,
            SYNC_FILE_SIZE_BYTES,
            progress,
        )?);
    }
    let schedule = WriteSchedule {
        write_size_bytes: SYNC_WRITE_SIZE_BYTES,
        write_count: plan.sync_4k_warmup_count + plan.sync_4k_sample_count / writer_count,
        warmup_count: plan.sync_4k_warmup_count,
        measured_time_max: plan.measured_time_max,
    };
    let measurements: Vec<io::Result<Measurement>> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|target| scope.spawn(move || write_and_sync(target, schedule)))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a baseline writer panicked"))
            .collect()
    });
    let mut histogram = new_histogram();
    for measurement in measurements {
        let measurement = measurement.with_context(|| {
            format!(
                "concurrent 4 KiB write+fdatasync baseline in {}",
                dir.display()
            )
        })?;
        histogram
            .add(&measurement.histogram)
            .context("merging the writers' histograms")?;
    }
    for target in targets {
        target.remove()?;
    }
    fs::remove_dir(&dir).with_context(|| format!("removing {}", dir.display()))?;
    let summary = LatencySummary::from_histogram(&histogram);
    progress(&format!(
        "baseline: 4 KiB write+fdatasync QD1, {writer_count} writers at once: p50 {} µs, \
         p99 {} µs ({} samples)",
        summary.p50,
        summary.p99,
        histogram.len()
    ));
    baselines.fdatasync_4k_concurrent_us = Some(summary);
    baselines.fdatasync_4k_concurrent_writer_count = Some(writer_count);
    baselines.fdatasync_4k_concurrent_sample_count = Some(histogram.len());
    Ok(())
}

/// What one baseline loop measured.
struct Measurement {
    o_direct: bool,
    histogram: Histogram<u64>,
    total_bytes: u64,
    elapsed: Duration,
}

fn measure_sync_4k(
    dir: &Path,
    plan: BaselinePlan,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Measurement> {
    let path = dir.join("fdatasync-4k");
    let target = PrefilledFile::create(&path, SYNC_FILE_SIZE_BYTES, progress)?;
    let write_count = plan.sync_4k_warmup_count + plan.sync_4k_sample_count;
    let schedule = WriteSchedule {
        write_size_bytes: SYNC_WRITE_SIZE_BYTES,
        write_count,
        warmup_count: plan.sync_4k_warmup_count,
        measured_time_max: plan.measured_time_max,
    };
    let measurement = write_and_sync(&target, schedule)
        .with_context(|| format!("4 KiB write+fdatasync baseline in {}", path.display()))?;
    target.remove()?;
    Ok(measurement)
}

fn measure_write_1m(
    dir: &Path,
    plan: BaselinePlan,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Measurement> {
    let path = dir.join("write-1m");
    let write_count = plan.write_1m_warmup_count + plan.write_1m_count;
    // One fresh block per write: the bandwidth baseline never overwrites, so it measures
    // the device rather than a cache that absorbed a wrapped-around region.
    let size_bytes = write_count * BANDWIDTH_WRITE_SIZE_BYTES;
    let target = PrefilledFile::create(&path, size_bytes, progress)?;
    let schedule = WriteSchedule {
        write_size_bytes: BANDWIDTH_WRITE_SIZE_BYTES,
        write_count,
        warmup_count: plan.write_1m_warmup_count,
        measured_time_max: plan.measured_time_max,
    };
    let measurement = write_and_sync(&target, schedule)
        .with_context(|| format!("1 MiB write+fdatasync baseline in {}", path.display()))?;
    target.remove()?;
    Ok(measurement)
}

/// The writes of one baseline loop.
#[derive(Clone, Copy, Debug)]
struct WriteSchedule {
    write_size_bytes: u64,
    /// Writes in total, warm-up included.
    write_count: u64,
    /// Leading writes that are not measured.
    warmup_count: u64,
    /// Stop after the first measured write that ends this long after measuring began.
    measured_time_max: Duration,
}

/// Issues sequential writes, each followed by `fdatasync` (queue depth 1), wrapping at the
/// end of the file. Writes after the warm-up go into the histogram and the elapsed time.
fn write_and_sync(target: &PrefilledFile, schedule: WriteSchedule) -> io::Result<Measurement> {
    let write_size_bytes = schedule.write_size_bytes;
    let block_count = target.size_bytes / write_size_bytes;
    assert!(block_count > 0, "file smaller than one write");
    let buffer = aligned_buffer(write_size_bytes, PATTERN_BYTE);
    let mut histogram = new_histogram();
    let mut measured = Stopwatch::start();
    for index in 0..schedule.write_count {
        if index == schedule.warmup_count {
            measured = Stopwatch::start();
        }
        let position = (index % block_count) * write_size_bytes;
        let operation = Stopwatch::start();
        target.file.write_all_at(buffer.as_slice(), position)?;
        target.file.sync_data()?;
        if index >= schedule.warmup_count {
            record_us(&mut histogram, operation.elapsed());
            if measured.elapsed() >= schedule.measured_time_max {
                break;
            }
        }
    }
    Ok(Measurement {
        o_direct: target.o_direct,
        total_bytes: histogram.len() * write_size_bytes,
        histogram,
        elapsed: measured.elapsed(),
    })
}

/// A new file of `size_bytes` zeros whose data and metadata are durable before use.
struct PrefilledFile {
    file: File,
    path: std::path::PathBuf,
    size_bytes: u64,
    o_direct: bool,
}

impl PrefilledFile {
    /// Creates and fills the file with O_DIRECT, or buffered if O_DIRECT is refused.
    fn create(
        path: &Path,
        size_bytes: u64,
        progress: &mut dyn FnMut(&str),
    ) -> anyhow::Result<PrefilledFile> {
        assert!(size_bytes % ALIGNMENT_BYTES == 0, "size_bytes={size_bytes}");
        progress(&format!(
            "baseline: pre-filling {} MiB in {}",
            size_bytes / MIB,
            path.display()
        ));
        let (file, o_direct) = match create_filled(path, size_bytes, true) {
            Ok(file) => (file, true),
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                progress(&format!(
                    "baseline: O_DIRECT refused in {} (EINVAL); measuring buffered writes",
                    path.parent().unwrap_or(path).display()
                ));
                remove_if_present(path)?;
                let file = create_filled(path, size_bytes, false)
                    .with_context(|| format!("filling {}", path.display()))?;
                (file, false)
            }
            Err(error) => {
                return Err(error).with_context(|| format!("filling {}", path.display()));
            }
        };
        // The file's directory entry must be durable too, or the first measured fdatasync
        // could still find the creation in the file system's journal to commit.
        let parent = path.parent().unwrap_or(Path::new("."));
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("fsync of directory {}", parent.display()))?;
        Ok(PrefilledFile {
            file,
            path: path.to_owned(),
            size_bytes,
            o_direct,
        })
    }

    fn remove(self) -> anyhow::Result<()> {
        drop(self.file);
        fs::remove_file(&self.path).with_context(|| format!("removing {}", self.path.display()))
    }
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Creates `path` (it must not exist), writes `size_bytes` zeros and fsyncs it.
fn create_filled(path: &Path, size_bytes: u64, o_direct: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    if o_direct {
        options.custom_flags(libc::O_DIRECT);
    }
    let file = options.open(path)?;
    let zeros = aligned_buffer(FILL_WRITE_SIZE_BYTES, 0);
    let mut position = 0;
    while position < size_bytes {
        let length_bytes = FILL_WRITE_SIZE_BYTES.min(size_bytes - position);
        file.write_all_at(&zeros.as_slice()[..to_usize(length_bytes)], position)?;
        position += length_bytes;
    }
    file.sync_all()?;
    Ok(file)
}

/// A buffer of `length_bytes` copies of `fill`, aligned for O_DIRECT.
fn aligned_buffer(length_bytes: u64, fill: u8) -> AlignedBuf {
    let mut buffer = AlignedBuf::zeroed(to_usize(length_bytes), to_usize(ALIGNMENT_BYTES));
    buffer.as_mut_slice().fill(fill);
    buffer
}

fn to_usize(bytes: u64) -> usize {
    usize::try_from(bytes).expect("buffer sizes fit in memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffer_is_aligned_and_filled() {
        for length_bytes in [ALIGNMENT_BYTES, MIB] {
            let buffer = aligned_buffer(length_bytes, PATTERN_BYTE);
            let slice = buffer.as_slice();
            assert_eq!(slice.len() as u64, length_bytes);
            assert_eq!(slice.as_ptr().align_offset(to_usize(ALIGNMENT_BYTES)), 0);
            assert!(slice.iter().all(|byte| *byte == PATTERN_BYTE));
        }
    }

    // Runs a tiny plan against a temporary directory and checks that the counts add up, the
    // files are gone afterwards, and the numbers are plausible (not zero, not absurd).
    #[test]
    fn measures_a_tiny_plan_and_cleans_up() {
        let scratch = tempfile::tempdir().unwrap();
        let plan = BaselinePlan {
            sync_4k_sample_count: 20,
            sync_4k_warmup_count: 2,
            write_1m_count: 4,
            write_1m_warmup_count: 1,
            measured_time_max: Duration::from_secs(60),
        };
        let mut lines = Vec::new();
        let baselines = measure_baselines(scratch.path(), plan, &mut |line| {
            lines.push(line.to_owned())
        })
        .unwrap();
        assert_eq!(baselines.fdatasync_4k_qd1_sample_count, 20);
        assert_eq!(baselines.write_fdatasync_1m_total_bytes, 4 * MIB);
        assert!(baselines.write_fdatasync_1m_mb_per_s > 0.0);
        let latency = baselines.fdatasync_4k_qd1_us;
        assert!(latency.p50 <= latency.p99, "{latency:?}");
        assert!(latency.p99 <= latency.max, "{latency:?}");
        assert_eq!(fs::read_dir(scratch.path()).unwrap().count(), 0);
        assert!(lines.iter().any(|line| line.contains("4 KiB")), "{lines:?}");
    }

    // Three writers at once share the plan's samples, write into their own files, and leave
    // nothing behind; the merged summary holds all their samples and says how many wrote.
    #[test]
    fn measures_concurrent_writers_and_cleans_up() {
        let scratch = tempfile::tempdir().unwrap();
        let plan = BaselinePlan {
            sync_4k_sample_count: 30,
            sync_4k_warmup_count: 2,
            write_1m_count: 1,
            write_1m_warmup_count: 0,
            measured_time_max: Duration::from_secs(60),
        };
        let mut baselines = Baselines::default();
        let mut lines = Vec::new();
        measure_concurrent_sync_4k(scratch.path(), plan, 3, &mut baselines, &mut |line| {
            lines.push(line.to_owned())
        })
        .unwrap();
        assert_eq!(baselines.fdatasync_4k_concurrent_writer_count, Some(3));
        assert_eq!(baselines.fdatasync_4k_concurrent_sample_count, Some(30));
        let latency = baselines.fdatasync_4k_concurrent_us.unwrap();
        assert!(latency.p50 > 0, "{latency:?}");
        assert!(latency.p50 <= latency.p99, "{latency:?}");
        assert_eq!(fs::read_dir(scratch.path()).unwrap().count(), 0);
        assert!(
            lines.iter().any(|line| line.contains("3 writers at once")),
            "{lines:?}"
        );
        let json = serde_json::to_value(&baselines).unwrap();
        assert_eq!(json["fdatasync_4k_concurrent_writer_count"], 3);
        assert!(json["fdatasync_4k_concurrent_us"]["p99"].is_u64());
    }

    // With no time allowed, each baseline stops after its first measured write: the cap
    // bounds the run, and the reported counts are what was measured, not what was planned.
    #[test]
    fn time_cap_stops_early_and_reports_real_counts() {
        let scratch = tempfile::tempdir().unwrap();
        let plan = BaselinePlan {
            measured_time_max: Duration::ZERO,
            ..BaselinePlan::QUICK
        };
        let baselines = measure_baselines(scratch.path(), plan, &mut |_| {}).unwrap();
        assert_eq!(baselines.fdatasync_4k_qd1_sample_count, 1);
        assert_eq!(baselines.write_fdatasync_1m_total_bytes, MIB);
        assert_eq!(fs::read_dir(scratch.path()).unwrap().count(), 0);
    }
}
