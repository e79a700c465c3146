//! Micro-benchmarks of the produce path's per-batch work: `validate` (header + CRC32C),
//! CRC32C alone, and building batches as a client would.
//!
//! Run with `cargo bench -p ringlog-batch`; `cargo test -p ringlog-batch --benches` runs
//! each benchmark once so that this file keeps compiling and working.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringlog_batch::{crc32c, validate, BatchBuilder, HEADER_SIZE_BYTES};
use ringlog_types::units::{KIB, MIB};

/// Value size of the records in benchmark batches.
const VALUE_SIZE_BYTES: usize = 1000;

fn to_usize(size_bytes: u64) -> usize {
    usize::try_from(size_bytes).expect("benchmark sizes fit usize")
}

/// A valid batch of about `size_bytes` bytes (slightly less), made of records of up to
/// `VALUE_SIZE_BYTES`-byte values, as producers batch small messages.
fn batch_of_size(size_bytes: usize) -> Vec<u8> {
    let value = vec![0x5a; VALUE_SIZE_BYTES];
    // Per-record overhead: length, attributes, deltas, null key, value length, header count.
    let record_overhead_bytes = 12;
    let mut builder = BatchBuilder::new(1_700_000_000_000);
    let mut timestamp_ms = 1_700_000_000_000;
    while builder.size_bytes() + record_overhead_bytes < size_bytes {
        let left_bytes = size_bytes - builder.size_bytes() - record_overhead_bytes;
        let value_size_bytes = left_bytes.min(VALUE_SIZE_BYTES);
        builder.push(timestamp_ms, None, Some(&value[..value_size_bytes]), &[]);
        timestamp_ms += 1;
    }
    builder.build()
}

fn bench_validate(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("validate");
    for size_bytes in [KIB, 16 * KIB, MIB] {
        let batch = batch_of_size(to_usize(size_bytes));
        assert!(validate(&batch).is_ok());
        assert!(batch.len() > HEADER_SIZE_BYTES);
        group.throughput(Throughput::Bytes(batch.len().try_into().expect("fits u64")));
        group.bench_with_input(
            BenchmarkId::from_parameter(size_bytes),
            &batch,
            |bench, batch| {
                bench.iter(|| validate(black_box(batch)));
            },
        );
    }
    group.finish();
}

fn bench_crc32c(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("crc32c");
    let bytes: Vec<u8> = (0..4 * KIB)
        .map(|index| u8::try_from(index % 251).expect("below 251"))
        .collect();
    group.throughput(Throughput::Bytes(4 * KIB));
    group.bench_function("4096", |bench| bench.iter(|| crc32c(black_box(&bytes))));
    group.finish();
}

fn bench_build_into(criterion: &mut Criterion) {
    let record_count: u64 = 16;
    let value = vec![0xa5; to_usize(KIB)];
    let mut builder = BatchBuilder::new(1_700_000_000_000);
    let mut out = Vec::new();
    let mut group = criterion.benchmark_group("build_into");
    group.throughput(Throughput::Bytes(record_count * KIB));
    group.bench_function("16x1KiB", |bench| {
        bench.iter(|| {
            builder.reset(1_700_000_000_000);
            for index in 0..record_count {
                let timestamp_ms = 1_700_000_000_000 + i64::try_from(index).expect("small");
                builder.push(timestamp_ms, Some(b"key"), Some(black_box(&value)), &[]);
            }
            out.clear();
            builder.build_into(&mut out);
            black_box(out.len())
        });
    });
    group.finish();
}

criterion_group!(benches, bench_validate, bench_crc32c, bench_build_into);
criterion_main!(benches);
