//! Reading a whole partition back through Fetch, record by record, for the tests that check
//! which acknowledged records survived.
#![allow(dead_code)]

use std::time::Instant;

use anyhow::{bail, ensure};

use crate::kafka_client::{Client, DEADLINE};

/// One record as read back: its offset, key and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRecord {
    pub offset: u64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Fetches partition `partition` of `topic` from offset 0 up to its high watermark (at least
/// `end_min`) and returns every record, checking that offsets are contiguous from 0.
pub fn read_all(
    client: &mut Client,
    topic: &str,
    partition: i32,
    end_min: u64,
) -> anyhow::Result<Vec<ReadRecord>> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    let mut next = 0u64;
    loop {
        let (code, high_watermark, bytes) =
            client.fetch(topic, partition, i64::try_from(next)?, 0)?;
        ensure!(
            code == 0,
            "fetch {topic}-{partition} at {next}: error code {code}"
        );
        let high_watermark = u64::try_from(high_watermark)?;
        ensure!(
            high_watermark >= end_min,
            "{topic}-{partition}: high watermark {high_watermark} below {end_min}"
        );
        if next >= high_watermark {
            return Ok(out);
        }
        let mut rest: &[u8] = &bytes;
        while !rest.is_empty() {
            let Some(size) = ringlog_batch::peek_size_bytes(rest)? else {
                break;
            };
            if size > rest.len() {
                break; // a partial batch at the end of the response
            }
            let batch = &rest[..size];
            let header = ringlog_batch::validate(batch)?;
            let base = u64::try_from(header.base_offset)?;
            if base + header.record_count() <= next {
                rest = &rest[size..];
                continue;
            }
            ensure!(
                base == next,
                "{topic}-{partition}: batch at {base}, expected {next}"
            );
            for record in ringlog_batch::records(batch)? {
                let record = record?;
                out.push(ReadRecord {
                    offset: base + u64::try_from(record.offset_delta)?,
                    key: record.key.unwrap_or_default().to_vec(),
                    value: record.value.unwrap_or_default().to_vec(),
                });
            }
            next = base + header.record_count();
            rest = &rest[size..];
        }
        if Instant::now() > deadline {
            bail!("{topic}-{partition}: reading stalled at {next} below {high_watermark}");
        }
    }
}
