//! The partition log's scenarios: queue depth 1 with 1 KiB batches (latency), and saturated
//! by many concurrent appenders with 16 KiB and with 1 KiB batches (throughput and latency),
//! for each write path, in the same run as the device baselines.
//!
//! The appenders live in this thread, as a shard's producers would: each has one batch
//! outstanding and appends the next the moment its previous one is durable. They start in
//! two halves so that one half is staged while the other's commit is in flight, which is the
//! steady state of group commit under load. Latency is measured from `append` to the commit
//! completion that made the batch durable.
//!
//! Each log runs at a retention limit (default 1 GiB): it grows into spare segments filled before
//! the run, and once it holds four segments every roll reuses the oldest file, as a
//! long-running log does. The warm-up covers the growth; the measured part is the steady
//! state, where no segment is zero-filled (a growing log without retention also writes the
//! zero-fill of each new segment, about as many bytes again: docs/wal-format.md).

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use ringlog_batch::BatchBuilder;
use ringlog_types::units::{KIB, MIB};
use ringlog_types::{Epoch, Offset};
use ringlog_wal::{Error, PartitionHandle, Wal, WalConfig, WritePath};
use serde_json::{json, Map};

use crate::baseline::Baselines;
use crate::latency::{new_histogram, record_us};
use crate::options::{WalOptions, WritePathName};
use crate::report::{mb_per_s, per_s, Comparison, LatencySummary, RunResult, Target};

/// Longest warm-up spent growing a log to its retention limit.
const STEADY_STATE_WAIT_MAX: Duration = Duration::from_secs(30);
/// How long to wait for the spare segments to be filled before a run.
const SPARES_WAIT_MAX: Duration = Duration::from_secs(120);

/// One scenario's shape.
#[derive(Clone, Copy, Debug)]
struct Shape {
    name: &'static str,
    payload_bytes: u64,
    concurrency: u64,
    spare_segments_count: usize,
}

/// Runs every WAL scenario selected by `options` and returns one result per run, in order.
/// `progress` receives one human-readable line per step (printed to stderr).
pub fn run_wal_scenarios(
    options: &WalOptions,
    baselines: &Baselines,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<RunResult>> {
    let _ = baselines;
    let spares = 1;
    let shapes = [
        Shape {
            name: "wal_qd1",
            payload_bytes: KIB,
            concurrency: 1,
            spare_segments_count: 1,
        },
        Shape {
            name: "wal_saturated",
            payload_bytes: 16 * KIB,
            concurrency: 512,
            spare_segments_count: spares,
        },
        Shape {
            name: "wal_saturated",
            payload_bytes: KIB,
            concurrency: 8192,
            spare_segments_count: spares,
        },
    ];
    let mut results = Vec::new();
    for write_path in &options.write_paths {
        for (index, shape) in shapes.iter().enumerate() {
            let saturated_1k = shape.concurrency > 1 && shape.payload_bytes == KIB;
            if saturated_1k && !options.saturated_1k {
                continue;
            }
            progress(&format!(
                "wal: {} {} B x {} appenders ({})",
                shape.name, shape.payload_bytes, shape.concurrency, write_path
            ));
            let dir = options
                .dir
                .join(format!("wal-{}-{index}", write_path.as_str()));
            let result = run_shape(&dir, *write_path, *shape, options)
                .with_context(|| format!("{} on {write_path}", shape.name))?;
            std::fs::remove_dir_all(&dir).ok();
            results.push(result);
        }
    }
    Ok(results)
}

fn run_shape(
    dir: &Path,
    write_path: WritePathName,
    shape: Shape,
    options: &WalOptions,
) -> anyhow::Result<RunResult> {
    let mut config = WalConfig::new(dir, wal_write_path(write_path));
    config.segment_size_bytes = options.segment_size_bytes;
    config.spare_segments_count = shape.spare_segments_count;
    config.tail_chunk_bytes = 4 * MIB;
    config.tail_chunks_max = 4;
    // The log runs at its retention limit: once it holds that many segments, each roll
    // reuses the oldest file, as a long-running log does, instead of filling a new one.
    config.retention.bytes_max = Some(options.retention_bytes);
    let mut wal = Wal::new(config)?;
    let partition = wal.open_partition("bench-0")?;
    wait_for_spares(&mut wal, partition, shape.spare_segments_count)?;
    let batch = batch_of(shape.payload_bytes);
    let mut driver = Driver::new(&mut wal, partition, &batch, shape.concurrency);
    driver.run_for(options.warmup)?;
    if shape.concurrency > 1 {
        driver.warm_until_steady()?;
    }
    // The spare that the growth used is filled again before measuring, so the measured part
    // sees only the log's own writes.
    wait_for_spares(driver.wal, partition, shape.spare_segments_count)?;
    driver.reset_counts();
    let started = Instant::now();
    driver.run_for(options.duration)?;
    let elapsed = started.elapsed();
    let durable_batches = driver.durable_batches;
    let histogram = driver.histogram.clone();
    let bytes_appended = driver.bytes_appended;
    let commits = driver.commits;
    drop(driver);
    wal.close()?;
    let mut result = result_for(
        shape,
        write_path,
        durable_batches,
        elapsed,
        &histogram,
        bytes_appended,
    );
    result.extra.insert("commits".into(), json!(commits));
    result
        .extra
        .insert("retention_bytes".into(), json!(options.retention_bytes));
    result.extra.insert(
        "commit_bytes_avg".into(),
        json!(bytes_appended / commits.max(1)),
    );
    Ok(result)
}

fn result_for(
    shape: Shape,
    write_path: WritePathName,
    durable_batches: u64,
    elapsed: Duration,
    histogram: &Histogram<u64>,
    bytes_appended: u64,
) -> RunResult {
    let bytes = durable_batches * shape.payload_bytes;
    let direct = write_path == WritePathName::Direct;
    let (comparison, target) = if shape.concurrency == 1 {
        (
            Comparison::LatencyQd1,
            direct.then_some(Target::P50RatioMax(1.3)),
        )
    } else if shape.payload_bytes == 16 * KIB {
        (
            Comparison::Bandwidth,
            direct.then_some(Target::BandwidthPercentMin(70.0)),
        )
    } else {
        (Comparison::Bandwidth, None)
    };
    let mut extra = Map::new();
    extra.insert(
        "batches_per_s".into(),
        json!(per_s(durable_batches, elapsed)),
    );
    extra.insert("measured_secs".into(), json!(elapsed.as_secs_f64()));
    extra.insert("bytes_appended".into(), json!(bytes_appended));
    extra.insert(
        "segments_prefilled".into(),
        json!(shape.spare_segments_count),
    );
    RunResult {
        scenario: shape.name.to_string(),
        write_path: write_path.as_str().to_string(),
        ack_mode: None,
        payload_bytes: shape.payload_bytes,
        concurrency: shape.concurrency,
        records_per_s: per_s(
            durable_batches * records_per_batch(shape.payload_bytes),
            elapsed,
        ),
        mb_per_s: mb_per_s(bytes, elapsed),
        latency_us: LatencySummary::from_histogram(histogram),
        target_rate_records_per_s: None,
        e2e_latency_us: None,
        comparison,
        target,
        extra,
        histogram: Some(histogram.clone()),
        e2e_histogram: None,
    }
}

fn wal_write_path(name: WritePathName) -> WritePath {
    match name {
        WritePathName::Direct => WritePath::Direct,
        WritePathName::Mmap => WritePath::Mmap,
    }
}

/// Waits until the housekeeper has filled `count` spare segments.
fn wait_for_spares(wal: &mut Wal, partition: PartitionHandle, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + SPARES_WAIT_MAX;
    while wal.spares_ready(partition)? < count {
        if Instant::now() > deadline {
            bail!(
                "spare segments not filled within {} s",
                SPARES_WAIT_MAX.as_secs()
            );
        }
        wal.poll()?;
        std::thread::park_timeout(Duration::from_millis(5));
    }
    Ok(())
}

/// Records of 1 KiB (at most): a 16 KiB batch holds 16 of them, as a Kafka producer's
/// default `batch.size` would.
pub fn records_per_batch(payload_bytes: u64) -> u64 {
    (payload_bytes / KIB).max(1)
}

/// The value size of each record of a batch of `payload_bytes` (batch and record headers
/// included, at most 61 and 20 bytes). The produce scenarios send the same records, so that
/// the log stores the same batches with and without the network in front.
pub fn record_value_bytes(payload_bytes: u64) -> usize {
    let records = records_per_batch(payload_bytes);
    let overhead = 61 + 20 * records;
    usize::try_from((payload_bytes - overhead) / records).expect("fits")
}

/// A batch whose total size is `payload_bytes` (records of 1 KiB, headers included).
fn batch_of(payload_bytes: u64) -> Vec<u8> {
    let records = records_per_batch(payload_bytes);
    let value = vec![b'r'; record_value_bytes(payload_bytes)];
    let mut builder = BatchBuilder::new(0);
    for _ in 0..records {
        builder.push(0, None, Some(&value), &[]);
    }
    builder.build()
}

/// The appenders of one run.
struct Driver<'a> {
    wal: &'a mut Wal,
    partition: PartitionHandle,
    batch: &'a [u8],
    concurrency: u64,
    /// Outstanding batches: (next offset, append time), in offset order.
    outstanding: VecDeque<(Offset, Instant)>,
    histogram: Histogram<u64>,
    durable_batches: u64,
    bytes_appended: u64,
    commits: u64,
}

impl<'a> Driver<'a> {
    fn new(
        wal: &'a mut Wal,
        partition: PartitionHandle,
        batch: &'a [u8],
        concurrency: u64,
    ) -> Driver<'a> {
        Driver {
            wal,
            partition,
            batch,
            concurrency,
            outstanding: VecDeque::new(),
            histogram: new_histogram(),
            durable_batches: 0,
            bytes_appended: 0,
            commits: 0,
        }
    }

    fn reset_counts(&mut self) {
        self.histogram.reset();
        self.durable_batches = 0;
        self.bytes_appended = 0;
        self.commits = 0;
    }

    /// Appends one batch; false if the log pushed back (retry after the next completion).
    fn append_one(&mut self) -> anyhow::Result<bool> {
        let started = Instant::now();
        match self.wal.append(self.partition, self.batch, Epoch(1)) {
            Ok(info) => {
                self.outstanding.push_back((info.next_offset, started));
                self.bytes_appended += self.batch.len() as u64;
                Ok(true)
            }
            Err(Error::Backpressure { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Goes on warming up until the log has reached its retention limit (its start moved):
    /// from then on every roll reuses a file, the steady state the saturated runs measure.
    fn warm_until_steady(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + STEADY_STATE_WAIT_MAX;
        while self.wal.ends(self.partition)?.log_start == Offset(0) {
            if Instant::now() > deadline {
                bail!("the log did not reach its retention limit within the warm-up cap");
            }
            self.run_for(Duration::from_millis(200))?;
        }
        Ok(())
    }

    /// Runs the appenders for `duration`, then waits for everything outstanding.
    fn run_for(&mut self, duration: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + duration;
        let half = (self.concurrency / 2).max(1);
        while (self.outstanding.len() as u64) < half && self.append_one()? {}
        self.wal.poll()?;
        while Instant::now() < deadline {
            while (self.outstanding.len() as u64) < self.concurrency && self.append_one()? {}
            self.wal.wait()?;
            self.collect_durable()?;
        }
        while !self.outstanding.is_empty() {
            self.wal.wait()?;
            self.collect_durable()?;
        }
        Ok(())
    }

    fn collect_durable(&mut self) -> anyhow::Result<()> {
        let durable_end = self.wal.ends(self.partition)?.durable_end;
        self.commits += self.wal.drain_durable_events().count() as u64;
        let now = Instant::now();
        while let Some(&(next_offset, started)) = self.outstanding.front() {
            if next_offset > durable_end {
                break;
            }
            self.outstanding.pop_front();
            record_us(&mut self.histogram, now - started);
            self.durable_batches += 1;
        }
        Ok(())
    }
}
