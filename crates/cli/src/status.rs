//! `ringlog status --bootstrap HOST:PORT`: asks the bootstrap node for its status, then every
//! node of its cluster, and prints one table: per partition and node, the role, epoch, log
//! end, durable end, high watermark, ISR size and each follower's lag as the leader sees it.
//! A node that does not answer is listed as unreachable; the command fails only if the
//! bootstrap node does not answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use ringlog_server::status::STATUS_API_KEY;
use serde_json::Value;

/// Limit on one node's connect and answer.
const NODE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest status answer accepted.
const ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Flags of `ringlog status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A node of the cluster (its Kafka address).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: String,
    /// Print the nodes' JSON documents instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ringlog status`.
pub fn run(args: &StatusArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let first = query(&args.bootstrap).with_context(|| format!("asking {}", args.bootstrap))?;
    let mut documents = Vec::new();
    let nodes = first["nodes"].as_array().cloned().unwrap_or_default();
    let first_id = first["node_id"].as_u64();
    for node in &nodes {
        let id = node["id"].as_u64();
        let address = node["client"].as_str().unwrap_or_default().to_string();
        if id == first_id {
            documents.push((address, Ok(first.clone())));
        } else {
            documents.push((address.clone(), query(&address)));
        }
    }
    if args.json {
        let all: Vec<&Value> = documents
            .iter()
            .filter_map(|(_, document)| document.as_ref().ok())
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
        return Ok(());
    }
    write_table(&first, &documents, out)
}

fn write_table(
    first: &Value,
    documents: &[(String, anyhow::Result<Value>)],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let cluster = first["cluster_id"].as_str().unwrap_or("(single node)");
    writeln!(
        out,
        "cluster {cluster}, leader node {}, epoch {}",
        first["leader"], first["epoch"]
    )?;
    writeln!(out, "nodes:")?;
    for (address, document) in documents {
        match document {
            Ok(document) => writeln!(out, "  {}  {address}  up", document["node_id"])?,
            Err(error) => writeln!(out, "  ?  {address}  unreachable: {error:#}")?,
        }
    }
    writeln!(
        out,
        "{:<24} {:>4} {:<9} {:>5} {:>12} {:>12} {:>12} {:>4}  followers (lag records/ms, ISR)",
        "partition", "node", "role", "epoch", "log_end", "durable_end", "hw", "isr"
    )?;
    let mut rows = Vec::new();
    for (_, document) in documents {
        let Ok(document) = document else { continue };
        for partition in document["partitions"].as_array().into_iter().flatten() {
            rows.push((
                partition["partition"].as_str().unwrap_or("?").to_string(),
                document,
                partition,
            ));
        }
    }
    rows.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1["node_id"].as_u64().cmp(&b.1["node_id"].as_u64()))
    });
    for (name, document, partition) in rows {
        let followers: Vec<String> = partition["followers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|follower| {
                format!(
                    "{}: {}/{}ms{}",
                    follower["node_id"],
                    follower["lag_records"],
                    follower["lag_ms"],
                    if follower["in_isr"].as_bool() == Some(true) {
                        " isr"
                    } else {
                        " out"
                    }
                )
            })
            .collect();
        let isr = match partition["role"].as_str() {
            Some("leader") => partition["isr_size"].to_string(),
            _ => "-".to_string(),
        };
        writeln!(
            out,
            "{:<24} {:>4} {:<9} {:>5} {:>12} {:>12} {:>12} {:>4}  {}",
            name,
            document["node_id"].to_string(),
            partition["role"].as_str().unwrap_or("?"),
            document["epoch"].to_string(),
            partition["log_end"].to_string(),
            partition["durable_end"].to_string(),
            partition["high_watermark"].to_string(),
            isr,
            followers.join(", ")
        )?;
    }
    Ok(())
}

/// One node's status document.
#[allow(clippy::big_endian_bytes)] // Kafka frames are big-endian.
fn query(address: &str) -> anyhow::Result<Value> {
    let target: SocketAddr = address
        .to_socket_addrs()
        .with_context(|| format!("resolving {address}"))?
        .next()
        .with_context(|| format!("{address} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&target, NODE_TIMEOUT)?;
    stream.set_read_timeout(Some(NODE_TIMEOUT))?;
    stream.set_write_timeout(Some(NODE_TIMEOUT))?;
    let correlation: i32 = 1;
    let mut request = Vec::new();
    request.extend_from_slice(&STATUS_API_KEY.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&correlation.to_be_bytes());
    request.extend_from_slice(&(-1i16).to_be_bytes());
    let size = u32::try_from(request.len()).context("request size")?;
    stream.write_all(&size.to_be_bytes())?;
    stream.write_all(&request)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = usize::try_from(u32::from_be_bytes(size)).context("answer size")?;
    if !(4..=ANSWER_BYTES_MAX).contains(&size) {
        bail!("answer of {size} bytes");
    }
    let mut answer = vec![0; size];
    stream.read_exact(&mut answer)?;
    if answer[..4] != correlation.to_be_bytes() {
        bail!("answer to another request");
    }
    serde_json::from_slice(&answer[4..]).context("decoding the status document")
}
