//! `ringlog serve`: loads the configuration (file, then flags) and runs a node until
//! SIGTERM or SIGINT. Logs go to stderr; `RUST_LOG` filters them (default `info`).

use anyhow::Context;
use ringlog_server::{Config, Node, Overrides};

use crate::cli::ServeArgs;

/// Runs the node; returns when it has stopped.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let overrides = Overrides {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        http_listen: args.http_listen,
        cores: args.cores,
        write_path: args.write_path.clone(),
        retention_bytes: args.retention_bytes,
    };
    let config = Config::load(args.config.as_deref(), &overrides).context("configuration")?;
    let node = Node::start(config).context("starting the node")?;
    node.wait().context("the node stopped with an error")
}
