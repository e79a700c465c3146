//! `ringlog consume`: reads one partition through `ringlog_client`'s consumer and prints
//! each record's value (or `key<TAB>value`), one per line.
//!
//! Without `--follow` it stops at the partition's high watermark as the first fetch saw it
//! grow to (an empty fetch at the high watermark ends it); with `--follow` it keeps
//! long-polling. `--count N` stops after N records either way.

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use ringlog_client::{
    Client, ClientOptions, ConsumedRecord, Consumer, ConsumerOptions, StartOffset,
};

/// Flags of `ringlog consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// A broker to bootstrap from (several: comma-separated).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: String,
    /// The topic to read.
    #[arg(long)]
    pub topic: String,
    /// The partition to read.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub partition: i32,
    /// Where to start: `beginning`, `end`, or an offset.
    #[arg(long, value_name = "beginning|end|OFFSET", default_value = "beginning")]
    pub from: String,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long)]
    pub follow: bool,
    /// Stop after N records.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Print `key<TAB>value` instead of the value alone.
    #[arg(long)]
    pub print_keys: bool,
    /// How long the broker may hold a fetch that has nothing to return.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub max_wait_ms: u64,
}

/// Parses `--from`.
fn start_offset(from: &str) -> anyhow::Result<StartOffset> {
    Ok(match from {
        "beginning" => StartOffset::Earliest,
        "end" => StartOffset::Latest,
        offset => match offset.parse::<i64>() {
            Ok(offset) if offset >= 0 => StartOffset::Offset(offset),
            _ => bail!("--from must be `beginning`, `end` or an offset, not `{offset}`"),
        },
    })
}

/// Runs `ringlog consume`, printing to `out`.
pub fn run(args: &ConsumeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let start = start_offset(&args.from)?;
    let mut client = Client::connect(&args.bootstrap, ClientOptions::default())
        .with_context(|| format!("connecting to {}", args.bootstrap))?;
    let options = ConsumerOptions {
        max_wait: Duration::from_millis(args.max_wait_ms),
        ..ConsumerOptions::default()
    };
    let mut consumer = Consumer::new(&mut client, &args.topic, args.partition, start, options)
        .with_context(|| format!("opening {}[{}]", args.topic, args.partition))?;
    let mut printed_count = 0u64;
    loop {
        if args.count.is_some_and(|count| printed_count >= count) {
            return Ok(());
        }
        let records = consumer
            .poll()
            .with_context(|| format!("fetching {}[{}]", args.topic, args.partition))?;
        let at_end = records.is_empty() && consumer.position() >= consumer.high_watermark();
        for record in &records {
            if args.count.is_some_and(|count| printed_count >= count) {
                break;
            }
            print_record(out, record, args.print_keys)?;
            printed_count += 1;
        }
        out.flush()?;
        if at_end && !args.follow {
            return Ok(());
        }
    }
}

fn print_record(
    out: &mut dyn Write,
    record: &ConsumedRecord,
    print_keys: bool,
) -> anyhow::Result<()> {
    if print_keys {
        out.write_all(record.key.as_deref().unwrap_or_default())?;
        out.write_all(b"\t")?;
    }
    out.write_all(record.value.as_deref().unwrap_or_default())?;
    out.write_all(b"\n")?;
    Ok(())
}
