//! A ringlog node: the thread-per-core shards that serve the Kafka protocol from io_uring,
//! the topic registry, the HTTP control plane, configuration and metrics.
//!
//! What it owns (DESIGN.md section 3): the shard loop (accept, receive, frame assembly,
//! ordered responses per connection, one send in flight per connection, resumed short
//! sends), the Kafka APIs served on top of the partition log (`ringlog_wal`) and the
//! protocol codecs (`ringlog_kafka`), the durable topic registry, `/metrics` and `/health`,
//! and a clean stop on SIGTERM/SIGINT. What it does not own: the on-disk format and group
//! commit (`ringlog_wal`), the wire codecs (`ringlog_kafka`), replication (later).
//!
//! ```no_run
//! use ringlog_server::{Config, Node, Overrides};
//!
//! # fn main() -> Result<(), ringlog_server::Error> {
//! let overrides = Overrides {
//!     data_dir: Some("/var/lib/ringlog".into()),
//!     ..Overrides::default()
//! };
//! let config = Config::load(None, &overrides)?;
//! let node = Node::start(config)?;
//! println!("serving Kafka clients on {}", node.listen_address());
//! node.wait()
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod admin;
mod api;
pub mod config;
mod connection;
mod error;
mod fetch;
mod forward;
mod http;
pub mod metrics;
mod node;
mod partitions;
mod replica;
mod shard;
mod split;
pub mod status;
pub mod topics;
mod trash;

pub use config::{Config, Overrides};
pub use error::{Error, Result};
pub use node::{run, Node};
