//! The in-memory append path: validation (header + CRC32C), offset assignment, stamping and
//! the one copy into the tail buffer, per batch, without the I/O. The commits that the full
//! tail forces are made outside the timed sections.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringlog_batch::BatchBuilder;
use ringlog_types::units::{KIB, MIB};
use ringlog_types::Epoch;
use ringlog_wal::{Error, Wal, WalConfig, WritePath};

fn batch_of(payload_bytes: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0);
    let record_bytes = 1024.min(payload_bytes);
    let value = vec![b'x'; record_bytes - 64];
    for _ in 0..payload_bytes / record_bytes {
        builder.push(0, Some(b"key"), Some(&value), &[]);
    }
    builder.build()
}

fn append_in_memory(criterion: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = WalConfig::new(dir.path(), WritePath::Direct);
    config.segment_size_bytes = 64 * MIB;
    config.tail_chunk_bytes = 4 * MIB;
    config.tail_chunks_max = 4;
    let mut wal = Wal::new(config).expect("wal");
    let partition = wal.open_partition("bench-0").expect("partition");
    let mut group = criterion.benchmark_group("wal_append_in_memory");
    for payload_bytes in [KIB, 16 * KIB] {
        let payload = usize::try_from(payload_bytes).expect("fits");
        let batch = batch_of(payload);
        group.throughput(Throughput::Bytes(payload_bytes));
        group.bench_with_input(
            BenchmarkId::from_parameter(payload),
            &batch,
            |bencher, batch| {
                bencher.iter_custom(|iterations| {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iterations {
                        let started = Instant::now();
                        let result = wal.append(partition, batch, Epoch(1));
                        timed += started.elapsed();
                        match result {
                            Ok(_) => {}
                            Err(Error::Backpressure { .. }) => {
                                wal.sync(partition).expect("sync");
                            }
                            Err(error) => panic!("append failed: {error}"),
                        }
                    }
                    timed
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, append_in_memory);
criterion_main!(benches);
