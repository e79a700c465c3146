//! A full disk under `ringlog serve` (issue 3, "Done when"): a 48 MiB ext4 file system on a
//! loop device holds the data directory and an 8 MiB ballast file. Topic B is created and
//! written first; then topic A is produced to (acks=-1, 64 KiB batches, 2 MiB segments)
//! until the producer gets KAFKA_STORAGE_ERROR, recording every acknowledged batch. B stays
//! readable while A is fenced. The node is stopped with SIGTERM, the ballast deleted, the
//! node restarted, and every acknowledged record of A and of B is read back, in order.
//!
//! Needs root (mount). Run as another user it fails with a message saying so.

mod kafka_client;
mod log_reader;
mod loop_mount;

use std::time::Instant;

use anyhow::{bail, ensure, Context};
use ringlog_types::units::{KIB, MIB};

use kafka_client::{Client, Server, DEADLINE};
use log_reader::read_all;
use loop_mount::LoopMount;

const IMAGE_SIZE_BYTES: u64 = 48 * MIB;
const BALLAST_SIZE_BYTES: u64 = 8 * MIB;
const SEGMENT_SIZE_BYTES: u64 = 2 * MIB;
/// Records per produced batch, of `VALUE_SIZE_BYTES` each: 64 KiB batches.
const BATCH_RECORDS: usize = 64;
const VALUE_SIZE_BYTES: usize = 1000;
/// More produces than could ever fit on the file system: the test fails rather than loops.
const PRODUCES_MAX: usize = 2000;
const KAFKA_STORAGE_ERROR: i16 = 56;
const REQUEST_TIMED_OUT: i16 = 7;

/// A batch of `BATCH_RECORDS` records keyed `<tag>-<produce>-<record>`.
fn big_batch(tag: &str, produce: usize) -> Vec<u8> {
    let mut builder = ringlog_batch::BatchBuilder::new(1_700_000_000_000);
    let value = vec![b'v'; VALUE_SIZE_BYTES];
    for record in 0..BATCH_RECORDS {
        let key = format!("{tag}-{produce}-{record}");
        builder.push(1_700_000_000_000, Some(key.as_bytes()), Some(&value), &[]);
    }
    builder.build()
}

/// An acknowledged produce: its index (in the keys) and base offset.
struct Acked {
    produce: usize,
    base_offset: u64,
}

/// Produces to `topic` partition 0 with acks=-1 until KAFKA_STORAGE_ERROR (retrying the same
/// batch on REQUEST_TIMED_OUT, the node's answer while a spare segment is being filled).
/// Returns the acknowledged produces.
fn produce_until_storage_error(client: &mut Client, topic: &str) -> anyhow::Result<Vec<Acked>> {
    let deadline = Instant::now() + 3 * DEADLINE;
    let mut acked = Vec::new();
    for produce in 0..PRODUCES_MAX {
        let batch = big_batch(topic, produce);
        loop {
            ensure!(
                Instant::now() < deadline,
                "no storage error after {produce} produces"
            );
            let (code, base_offset) = client.produce(topic, 0, batch.clone(), -1)?;
            match code {
                0 => {
                    acked.push(Acked {
                        produce,
                        base_offset: u64::try_from(base_offset)?,
                    });
                    break;
                }
                REQUEST_TIMED_OUT => continue,
                KAFKA_STORAGE_ERROR => return Ok(acked),
                other => bail!("produce {produce}: unexpected error code {other}"),
            }
        }
    }
    bail!("{PRODUCES_MAX} produces without a storage error: is the file system full at all?")
}

/// Checks that every acknowledged produce of `topic` reads back whole, in order.
fn check_acked(client: &mut Client, topic: &str, acked: &[Acked]) -> anyhow::Result<()> {
    let records_per = u64::try_from(BATCH_RECORDS)?;
    let end = acked
        .last()
        .map_or(0, |last| last.base_offset + records_per);
    let records = read_all(client, topic, 0, end)?;
    let mut previous_end = 0;
    for ack in acked {
        ensure!(ack.base_offset >= previous_end, "acks in offset order");
        previous_end = ack.base_offset + records_per;
        for record in 0..BATCH_RECORDS {
            let offset = ack.base_offset + u64::try_from(record)?;
            let found = records
                .get(usize::try_from(offset)?)
                .with_context(|| format!("{topic}: acked offset {offset} missing"))?;
            let key = format!("{topic}-{}-{record}", ack.produce);
            ensure!(
                found.offset == offset,
                "{topic}: offset {} at {offset}",
                found.offset
            );
            ensure!(
                found.key == key.as_bytes(),
                "{topic} offset {offset}: key {:?}, acked {key}",
                String::from_utf8_lossy(&found.key)
            );
        }
    }
    Ok(())
}

#[test]
fn full_disk_fences_the_partition_and_keeps_every_ack() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mount = // -m 0: no blocks reserved for root, so "full" is the same for every user.
    LoopMount::new(dir.path(), IMAGE_SIZE_BYTES, &["-m", "0"])?;
    let ballast = mount.mount_point.join("ballast");
    std::fs::write(&ballast, vec![0xaa; usize::try_from(BALLAST_SIZE_BYTES)?])?;
    std::fs::File::open(&ballast)?.sync_all()?;
    // The data directory is on the small file system; the server's config and log files
    // (next to the `data` path) stay outside it, reached through a symlink.
    let on_mount = mount.mount_point.join("data");
    std::fs::create_dir(&on_mount)?;
    let data = dir.path().join("data");
    std::os::unix::fs::symlink(&on_mount, &data)?;
    let config = format!(
        "segment_size_bytes = {SEGMENT_SIZE_BYTES}\nbatch_size_bytes_max = {}\n",
        256 * KIB
    );

    let mut server = Server::start(&data, &config)?;
    let mut client = server.client()?;
    assert_eq!(client.create_topic("b", 1)?, 0);
    let mut acked_b = Vec::new();
    for produce in 0..8 {
        let (code, base_offset) = client.produce("b", 0, big_batch("b", produce), -1)?;
        assert_eq!(code, 0, "{}", server.log_text());
        acked_b.push(Acked {
            produce,
            base_offset: u64::try_from(base_offset)?,
        });
    }
    assert_eq!(client.create_topic("a", 1)?, 0);
    let started = Instant::now();
    let acked_a = produce_until_storage_error(&mut client, "a")?;
    eprintln!(
        "{} produces of 64 KiB acknowledged before KAFKA_STORAGE_ERROR ({:?})",
        acked_a.len(),
        started.elapsed()
    );
    assert!(
        acked_a.len() > 10,
        "the disk filled too early: {}",
        acked_a.len()
    );
    // A is fenced: it keeps answering the storage error. B is still served.
    assert_eq!(
        client.produce("a", 0, big_batch("a", PRODUCES_MAX), -1)?.0,
        KAFKA_STORAGE_ERROR
    );
    check_acked(&mut client, "b", &acked_b)?;
    let log = server.log_text();
    assert!(
        log.contains("no space left on device"),
        "not fenced by ENOSPC: {log}"
    );
    drop(client);
    assert!(server.terminate()?, "{}", server.log_text());

    std::fs::remove_file(&ballast)?;
    let server = Server::start(&data, &config)?;
    let mut client = server.client()?;
    check_acked(&mut client, "a", &acked_a).with_context(|| server.log_text())?;
    check_acked(&mut client, "b", &acked_b)?;
    drop(client);
    drop(server);
    drop(mount);
    Ok(())
}
