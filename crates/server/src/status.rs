//! The node status that `ringlog status` prints: this node's view of every partition (role,
//! ends, ISR, followers' progress) as JSON, answered on the Kafka port to a request with
//! ringlog's own API key [`STATUS_API_KEY`], which no Kafka client sends (Kafka's keys stay
//! far below it).
//!
//! Request: a Kafka request header v1 (api key, version 0, correlation id, client id) and no
//! body. Response: the correlation id (response header v0), then the JSON document. The
//! values come from the metric gauges, so every shard's partitions are included. The JSON
//! fields are documented in docs/operations.md#status.

use std::sync::atomic::Ordering;

use serde_json::json;

use crate::config::Config;
use crate::metrics::Metrics;

/// ringlog's status request (not a Kafka API).
pub const STATUS_API_KEY: i16 = 32_000;

/// The API key of a Kafka request frame (after the size prefix), if it has one.
#[allow(clippy::big_endian_bytes)] // Kafka frames are big-endian.
pub(crate) fn api_key_of(frame: &[u8]) -> Option<i16> {
    Some(i16::from_be_bytes(*frame.first_chunk::<2>()?))
}

/// The response frame (size prefix included) to a status request `frame`.
#[allow(clippy::big_endian_bytes)] // Kafka frames are big-endian.
pub(crate) fn answer(frame: &[u8], config: &Config, metrics: &Metrics) -> Option<Vec<u8>> {
    let correlation = frame.get(4..8)?;
    let body = serde_json::to_vec(&document(config, metrics)).ok()?;
    let size = u32::try_from(body.len() + correlation.len()).ok()?;
    let mut out = Vec::with_capacity(4 + correlation.len() + body.len());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(correlation);
    out.extend_from_slice(&body);
    Some(out)
}

fn document(config: &Config, metrics: &Metrics) -> serde_json::Value {
    let role_name = |role: u8| match role {
        1 => "leader",
        2 => "follower",
        _ => "alone",
    };
    let partitions: Vec<serde_json::Value> = metrics
        .partition_gauges()
        .iter()
        .map(|gauges| {
            let load = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed);
            let followers: Vec<serde_json::Value> = gauges
                .followers
                .lock()
                .map(|followers| {
                    followers
                        .iter()
                        .map(|follower| {
                            json!({
                                "node_id": follower.node_id,
                                "lag_records": follower.lag_records,
                                "lag_ms": follower.lag_ms,
                                "durable_end": follower.durable_end,
                                "in_isr": follower.in_isr,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "partition": gauges.name,
                "role": role_name(gauges.role.load(Ordering::Relaxed)),
                "log_end": load(&gauges.log_end),
                "durable_end": load(&gauges.durable_end),
                "high_watermark": load(&gauges.high_watermark),
                "isr_size": load(&gauges.isr_size),
                "fenced": gauges.fenced.load(Ordering::Relaxed),
                "followers": followers,
            })
        })
        .collect();
    let nodes: Vec<serde_json::Value> = config.cluster.as_ref().map_or_else(
        || vec![json!({"id": 0, "client": config.advertised().to_string()})],
        |cluster| {
            cluster
                .nodes
                .iter()
                .map(|node| json!({"id": node.id, "client": node.client.to_string()}))
                .collect()
        },
    );
    json!({
        "node_id": config.node_id(),
        "cluster_id": config.cluster.as_ref().map(|cluster| cluster.id.clone()),
        "leader": config.cluster.as_ref().map_or(0, |cluster| cluster.leader),
        "epoch": config.leader_epoch().0,
        "nodes": nodes,
        "partitions": partitions,
    })
}

#[cfg(test)]
#[allow(clippy::big_endian_bytes)] // Kafka frames are big-endian.
mod tests {
    use super::*;

    // The answer carries the request's correlation id and a JSON document with the node's
    // partitions.
    #[test]
    fn answers_with_correlation_and_partitions() {
        let metrics = Metrics::default();
        let gauges = metrics.add_partition("orders-0");
        gauges.log_end.store(9, Ordering::Relaxed);
        let config = Config::default();
        let mut request = Vec::new();
        request.extend_from_slice(&STATUS_API_KEY.to_be_bytes());
        request.extend_from_slice(&0i16.to_be_bytes());
        request.extend_from_slice(&77i32.to_be_bytes());
        request.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(api_key_of(&request), Some(STATUS_API_KEY));
        let out = answer(&request, &config, &metrics).expect("answer");
        let size = u32::from_be_bytes(*out.first_chunk::<4>().expect("size"));
        assert_eq!(size as usize, out.len() - 4);
        assert_eq!(&out[4..8], &77i32.to_be_bytes());
        let value: serde_json::Value = serde_json::from_slice(&out[8..]).expect("json");
        assert_eq!(value["partitions"][0]["partition"], "orders-0");
        assert_eq!(value["partitions"][0]["log_end"], 9);
        assert_eq!(value["partitions"][0]["role"], "alone");
    }
}
