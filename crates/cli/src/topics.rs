//! `ringlog topics create|list|delete`: the admin calls of `ringlog_client`.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use ringlog_client::{Client, ClientOptions};

/// `ringlog topics ...`.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Creates a topic.
    Create(CreateArgs),
    /// Lists every topic with its partition count, one per line (`name<TAB>partitions`).
    List(BootstrapArgs),
    /// Deletes a topic and every record in it.
    Delete(DeleteArgs),
}

/// The broker to talk to.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// A broker to bootstrap from (several: comma-separated).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: String,
}

/// Flags of `ringlog topics create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The topic's name.
    pub name: String,
    /// Number of partitions.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub partitions: i32,
    /// Replicas of each partition, leader included (-1: the cluster's default).
    #[arg(long, value_name = "N", default_value_t = -1, allow_hyphen_values = true)]
    pub replication_factor: i16,
    /// A topic setting, e.g. `--config ack_mode=quorum` (repeatable; docs/replication.md).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_setting)]
    pub configs: Vec<(String, String)>,
    /// The broker to talk to.
    #[command(flatten)]
    pub broker: BootstrapArgs,
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    Ok((key.to_string(), value.to_string()))
}

/// Flags of `ringlog topics delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The topic's name.
    pub name: String,
    /// The broker to talk to.
    #[command(flatten)]
    pub broker: BootstrapArgs,
}

fn connect(broker: &BootstrapArgs) -> anyhow::Result<Client> {
    Client::connect(&broker.bootstrap, ClientOptions::default())
        .with_context(|| format!("connecting to {}", broker.bootstrap))
}

/// Runs one `ringlog topics` command, printing to `out`.
pub fn run(command: &TopicsCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        TopicsCommand::Create(args) => {
            connect(&args.broker)?
                .create_topic_with(
                    &args.name,
                    args.partitions,
                    args.replication_factor,
                    &args.configs,
                )
                .with_context(|| format!("creating topic {}", args.name))?;
            writeln!(
                out,
                "created {} with {} partition(s)",
                args.name, args.partitions
            )?;
        }
        TopicsCommand::List(args) => {
            for topic in connect(args)?.list_topics().context("listing topics")? {
                writeln!(out, "{}\t{}", topic.name, topic.partitions.len())?;
            }
        }
        TopicsCommand::Delete(args) => {
            connect(&args.broker)?
                .delete_topic(&args.name)
                .with_context(|| format!("deleting topic {}", args.name))?;
            writeln!(out, "deleted {}", args.name)?;
        }
    }
    Ok(())
}
