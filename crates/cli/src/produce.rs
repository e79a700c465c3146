//! `ringlog produce`: sends records to one partition through `ringlog_client`'s producer,
//! either one record per line of standard input or `--count` generated records.
//!
//! Receipts are checked as they resolve (the oldest first), so the first broker error stops
//! the command and memory stays bounded by the batches in flight.

use std::collections::VecDeque;
use std::io::{self, BufRead};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use ringlog_client::{
    now_ms, Acks, Client, ClientOptions, Producer, ProducerOptions, ProducerRecord, Receipt,
    BATCH_SIZE_BYTES_DEFAULT, IN_FLIGHT_MAX_DEFAULT,
};

/// Flags of `ringlog produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// A broker to bootstrap from (several: comma-separated).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: String,
    /// The topic to write to.
    #[arg(long)]
    pub topic: String,
    /// The partition to write to.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub partition: i32,
    /// Ack mode: 0 (no response), 1 (leader appended), all (in-sync replicas have it).
    #[arg(long, value_name = "0|1|all", default_value = "all",
          value_parser = ["0", "1", "all", "-1"])]
    pub acks: String,
    /// Split each line at the first SEP into key and value (a line without SEP has no key).
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Send N generated records instead of reading standard input.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Value size of generated records.
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub payload_size_bytes: usize,
    /// Target size of a batch.
    #[arg(long, value_name = "BYTES", default_value_t = BATCH_SIZE_BYTES_DEFAULT)]
    pub batch_size_bytes: usize,
    /// How long a batch may wait for more records.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    pub linger_ms: u64,
    /// Produce requests outstanding per connection.
    #[arg(long, value_name = "N", default_value_t = IN_FLIGHT_MAX_DEFAULT)]
    pub in_flight_max: usize,
}

/// Runs `ringlog produce`; returns the number of records acknowledged (or sent, acks=0).
pub fn run(args: &ProduceArgs) -> anyhow::Result<u64> {
    if !(1..=ringlog_client::IN_FLIGHT_MAX_LIMIT).contains(&args.in_flight_max) {
        bail!(
            "--in-flight-max must be in 1..={}",
            ringlog_client::IN_FLIGHT_MAX_LIMIT
        );
    }
    if args.batch_size_bytes == 0 {
        bail!("--batch-size-bytes must be positive");
    }
    let client = Client::connect(&args.bootstrap, ClientOptions::default())
        .with_context(|| format!("connecting to {}", args.bootstrap))?;
    let options = ProducerOptions {
        acks: match args.acks.as_str() {
            "0" => Acks::None,
            "1" => Acks::Leader,
            _ => Acks::All,
        },
        batch_size_bytes: args.batch_size_bytes,
        linger: Duration::from_millis(args.linger_ms),
        in_flight_max: args.in_flight_max,
    };
    let producer = Producer::new(&client, options);
    let mut pending = Pending::default();
    match args.count {
        Some(count) => {
            let value = vec![b'x'; args.payload_size_bytes];
            for _ in 0..count {
                pending.send(&producer, args, None, &value)?;
            }
        }
        None => {
            for line in io::stdin().lock().lines() {
                let line = line.context("reading standard input")?;
                let (key, value) = split_line(&line, args.key_separator.as_deref());
                pending.send(&producer, args, key, value)?;
            }
        }
    }
    producer.flush().context("flushing")?;
    pending.finish()
}

/// Splits `line` at the first `separator` into key and value.
fn split_line<'a>(line: &'a str, separator: Option<&str>) -> (Option<&'a [u8]>, &'a [u8]) {
    match separator.and_then(|separator| line.split_once(separator)) {
        Some((key, value)) => (Some(key.as_bytes()), value.as_bytes()),
        None => (None, line.as_bytes()),
    }
}

/// Receipts not yet checked, oldest first.
#[derive(Default)]
struct Pending {
    receipts: VecDeque<Receipt>,
    acknowledged_count: u64,
}

impl Pending {
    fn send(
        &mut self,
        producer: &Producer,
        args: &ProduceArgs,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> anyhow::Result<()> {
        let record = ProducerRecord {
            key,
            value: Some(value),
            headers: &[],
            timestamp_ms: now_ms(),
        };
        let receipt = producer
            .send(&args.topic, args.partition, &record)
            .with_context(|| format!("sending to {}[{}]", args.topic, args.partition))?;
        self.receipts.push_back(receipt);
        while self.receipts.front().is_some_and(Receipt::is_done) {
            self.check_oldest()?;
        }
        Ok(())
    }

    fn check_oldest(&mut self) -> anyhow::Result<()> {
        if let Some(receipt) = self.receipts.pop_front() {
            receipt.wait().context("a record was not acknowledged")?;
            self.acknowledged_count += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<u64> {
        while !self.receipts.is_empty() {
            self.check_oldest()?;
        }
        Ok(self.acknowledged_count)
    }
}
