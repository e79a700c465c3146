//! Metrics that shards publish and the control plane renders in Prometheus text format.
//!
//! Shards write only atomics (relaxed: each value is a counter or a gauge on its own, no
//! ordering between them is promised); the control plane reads them. The partition list is
//! behind a lock taken only when a partition opens or closes and when `/metrics` is
//! rendered, never per request.
//!
//! Invariants: histogram buckets are cumulative only when rendered (each atomic counts its
//! own bucket); `LATENCY_BOUNDS_US` is strictly increasing.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ringlog_kafka::{ApiKey, ErrorCode};

/// Upper bounds of the latency histogram buckets, in microseconds (the last bucket is +Inf).
const LATENCY_BOUNDS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    10_000_000,
];

const _: () = {
    let mut index = 1;
    while index < LATENCY_BOUNDS_US.len() {
        assert!(LATENCY_BOUNDS_US[index - 1] < LATENCY_BOUNDS_US[index]);
        index += 1;
    }
};

/// A latency histogram of atomics.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = LATENCY_BOUNDS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let separator = if labels.is_empty() { "" } else { "," };
        for (index, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let bound = LATENCY_BOUNDS_US.get(index).map_or_else(
                || "+Inf".to_string(),
                |us| format!("{}", Duration::from_micros(*us).as_secs_f64()),
            );
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}"
            );
        }
        let sum = Duration::from_micros(self.sum_us.load(Ordering::Relaxed)).as_secs_f64();
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {}", self.count());
    }
}

/// The ends of one partition, as its shard last published them.
pub struct PartitionGauges {
    /// `<topic>-<partition>`.
    pub name: String,
    /// Next offset to be assigned.
    pub log_end: AtomicU64,
    /// First offset not yet fdatasync'ed.
    pub durable_end: AtomicU64,
    /// High watermark (the durable end on a single node).
    pub high_watermark: AtomicU64,
    /// True once the partition is fenced after a storage error.
    pub fenced: AtomicBool,
    /// ISR size (leader included), on the leader of a replicated partition; 0 elsewhere.
    pub isr_size: AtomicU64,
    /// This node's role for the partition: 0 alone, 1 leader, 2 follower.
    pub role: std::sync::atomic::AtomicU8,
    /// Each follower's progress, on the leader of a replicated partition.
    pub followers: std::sync::Mutex<Vec<FollowerGauge>>,
}

/// One follower of a partition, as its leader sees it.
#[derive(Clone, Debug, Default)]
pub struct FollowerGauge {
    /// The follower's node id.
    pub node_id: u32,
    /// Records the follower has not fetched (leader log end - its fetch offset).
    pub lag_records: u64,
    /// Milliseconds since the follower was last caught up.
    pub lag_ms: u64,
    /// The follower's reported durable end.
    pub durable_end: u64,
    /// 1 if in the ISR.
    pub in_isr: bool,
}

/// A counter of the replication layer.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `count`.
    pub fn add(&self, count: u64) {
        self.0.fetch_add(count, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Replication counters of a node (docs/replication.md#metrics).
#[derive(Default)]
pub struct ReplicationMetrics {
    /// `semi-sync` acks sent as `async` after the timeout (`semi_sync_degrade`).
    pub degraded_acks: Counter,
    /// `acks=-1` produces refused before the append: the ISR is below `min_insync_replicas`.
    pub not_enough_replicas: Counter,
    /// `acks=-1` produces appended but not acknowledged by enough replicas.
    pub not_enough_replicas_after_append: Counter,
    /// `acks=-1` produces whose ack mode was not met within the request's timeout.
    pub acks_timed_out: Counter,
    /// Followers that left an ISR.
    pub isr_shrinks: Counter,
    /// Followers that joined an ISR.
    pub isr_expands: Counter,
    /// Record bytes sent to followers.
    pub bytes_out: Counter,
    /// Record bytes received from the leader.
    pub bytes_in: Counter,
}

/// Everything a node measures.
#[derive(Default)]
pub struct Metrics {
    /// Shards whose loop is running.
    pub shards_up: AtomicUsize,
    /// Shards configured.
    pub shards_total: AtomicUsize,
    requests: [AtomicU64; ApiKey::ALL.len()],
    latency: [Histogram; ApiKey::ALL.len()],
    /// Time from a Produce's append to the durable end covering it (group commit included).
    pub produce_durable_latency: Histogram,
    errors: [AtomicU64; ErrorCode::ALL.len()],
    /// Request bytes received.
    pub bytes_in: AtomicU64,
    /// Response bytes sent.
    pub bytes_out: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections accepted since start.
    pub connections_accepted: AtomicU64,
    /// Connections closed because of a bad frame or request.
    pub connections_rejected: AtomicU64,
    /// Commit cycles that made a partition's durable end move.
    pub commits: AtomicU64,
    /// Replication counters.
    pub replication: ReplicationMetrics,
    partitions: RwLock<Vec<Arc<PartitionGauges>>>,
}

impl Metrics {
    /// Counts one answered request of `api` and its latency.
    pub fn request_done(&self, api: ApiKey, latency: Duration) {
        let index = api_index(api);
        self.requests[index].fetch_add(1, Ordering::Relaxed);
        self.latency[index].observe(latency);
    }

    /// Requests of `api` answered so far.
    pub fn requests(&self, api: ApiKey) -> u64 {
        self.requests[api_index(api)].load(Ordering::Relaxed)
    }

    /// Counts one error code sent to a client.
    pub fn error(&self, code: ErrorCode) {
        if code == ErrorCode::None {
            return;
        }
        if let Some(index) = ErrorCode::ALL.iter().position(|known| *known == code) {
            self.errors[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Registers a partition's gauges.
    pub fn add_partition(&self, name: &str) -> Arc<PartitionGauges> {
        let gauges = Arc::new(PartitionGauges {
            name: name.to_string(),
            log_end: AtomicU64::new(0),
            durable_end: AtomicU64::new(0),
            high_watermark: AtomicU64::new(0),
            fenced: AtomicBool::new(false),
            isr_size: AtomicU64::new(0),
            role: std::sync::atomic::AtomicU8::new(0),
            followers: std::sync::Mutex::new(Vec::new()),
        });
        if let Ok(mut partitions) = self.partitions.write() {
            partitions.push(gauges.clone());
        }
        gauges
    }

    /// Every partition's gauges.
    pub fn partition_gauges(&self) -> Vec<Arc<PartitionGauges>> {
        self.partitions
            .read()
            .map(|partitions| partitions.clone())
            .unwrap_or_default()
    }

    /// Unregisters a partition's gauges (its topic was deleted).
    pub fn remove_partition(&self, name: &str) {
        if let Ok(mut partitions) = self.partitions.write() {
            partitions.retain(|gauges| gauges.name != name);
        }
    }

    /// True when every configured shard runs.
    pub fn healthy(&self) -> bool {
        let total = self.shards_total.load(Ordering::Relaxed);
        total > 0 && self.shards_up.load(Ordering::Relaxed) == total
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_requests(&mut out);
        render_counter(
            &mut out,
            "ringlog_bytes_in_total",
            "Request bytes received.",
            &self.bytes_in,
        );
        render_counter(
            &mut out,
            "ringlog_bytes_out_total",
            "Response bytes sent.",
            &self.bytes_out,
        );
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "ringlog_connections_open",
            "Open client connections.",
            load(&self.connections_open),
        );
        render_counter(
            &mut out,
            "ringlog_connections_accepted_total",
            "Client connections accepted.",
            &self.connections_accepted,
        );
        render_counter(
            &mut out,
            "ringlog_connections_rejected_total",
            "Connections closed after a malformed or refused request.",
            &self.connections_rejected,
        );
        render_counter(
            &mut out,
            "ringlog_commits_total",
            "Commits that moved a partition's durable end.",
            &self.commits,
        );
        let _ = writeln!(
            out,
            "# HELP ringlog_produce_durable_seconds Append to durable."
        );
        let _ = writeln!(out, "# TYPE ringlog_produce_durable_seconds histogram");
        self.produce_durable_latency
            .render(&mut out, "ringlog_produce_durable_seconds", "");
        self.render_errors(&mut out);
        self.render_partitions(&mut out);
        self.render_replication(&mut out);
        out
    }

    fn render_replication(&self, out: &mut String) {
        let counters: [(&str, &str, &Counter); 8] = [
            (
                "ringlog_degraded_acks_total",
                "semi-sync acks sent as async after semi_sync_timeout_ms.",
                &self.replication.degraded_acks,
            ),
            (
                "ringlog_not_enough_replicas_total",
                "acks=-1 produces refused: ISR below min_insync_replicas.",
                &self.replication.not_enough_replicas,
            ),
            (
                "ringlog_not_enough_replicas_after_append_total",
                "acks=-1 produces appended but not acknowledged by enough replicas.",
                &self.replication.not_enough_replicas_after_append,
            ),
            (
                "ringlog_acks_timed_out_total",
                "acks=-1 produces whose ack mode was not met within timeout_ms.",
                &self.replication.acks_timed_out,
            ),
            (
                "ringlog_isr_shrinks_total",
                "Followers that left an ISR.",
                &self.replication.isr_shrinks,
            ),
            (
                "ringlog_isr_expands_total",
                "Followers that joined an ISR.",
                &self.replication.isr_expands,
            ),
            (
                "ringlog_replication_bytes_out_total",
                "Record bytes sent to followers.",
                &self.replication.bytes_out,
            ),
            (
                "ringlog_replication_bytes_in_total",
                "Record bytes received from the leader.",
                &self.replication.bytes_in,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.get()
            );
        }
        let Ok(partitions) = self.partitions.read() else {
            return;
        };
        let _ = writeln!(
            out,
            "# HELP ringlog_partition_isr_size ISR size, leader included (on the leader).\n\
             # TYPE ringlog_partition_isr_size gauge"
        );
        for gauges in partitions.iter() {
            let _ = writeln!(
                out,
                "ringlog_partition_isr_size{{partition=\"{}\"}} {}",
                gauges.name,
                gauges.isr_size.load(Ordering::Relaxed)
            );
        }
        let series: [FollowerSeries; 4] = [
            (
                "ringlog_follower_lag_records",
                "Records a follower has not fetched.",
                |f| f.lag_records,
            ),
            (
                "ringlog_follower_lag_ms",
                "Milliseconds since a follower was last caught up.",
                |f| f.lag_ms,
            ),
            (
                "ringlog_follower_durable_end",
                "A follower's reported durable end.",
                |f| f.durable_end,
            ),
            (
                "ringlog_follower_in_isr",
                "1 if the follower is in the ISR.",
                |f| u64::from(f.in_isr),
            ),
        ];
        for (name, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for gauges in partitions.iter() {
                let Ok(followers) = gauges.followers.lock() else {
                    continue;
                };
                for follower in followers.iter() {
                    let _ = writeln!(
                        out,
                        "{name}{{partition=\"{}\",follower=\"{}\"}} {}",
                        gauges.name,
                        follower.node_id,
                        value(follower)
                    );
                }
            }
        }
    }

    fn render_requests(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP ringlog_requests_total Requests answered, by API."
        );
        let _ = writeln!(out, "# TYPE ringlog_requests_total counter");
        for api in ApiKey::ALL {
            let count = self.requests[api_index(api)].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ringlog_requests_total{{api=\"{}\"}} {count}",
                api.name()
            );
        }
        let _ = writeln!(
            out,
            "# HELP ringlog_request_seconds Request latency, by API."
        );
        let _ = writeln!(out, "# TYPE ringlog_request_seconds histogram");
        for api in ApiKey::ALL {
            let labels = format!("api=\"{}\"", api.name());
            self.latency[api_index(api)].render(out, "ringlog_request_seconds", &labels);
        }
    }

    fn render_errors(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP ringlog_errors_total Error codes sent to clients."
        );
        let _ = writeln!(out, "# TYPE ringlog_errors_total counter");
        for (index, code) in ErrorCode::ALL.iter().enumerate() {
            let count = self.errors[index].load(Ordering::Relaxed);
            if count > 0 {
                let _ = writeln!(
                    out,
                    "ringlog_errors_total{{code=\"{}\"}} {count}",
                    code.name()
                );
            }
        }
    }

    fn render_partitions(&self, out: &mut String) {
        let Ok(partitions) = self.partitions.read() else {
            return;
        };
        let series: [Series; 4] = [
            (
                "ringlog_partition_log_end",
                "Next offset to be assigned.",
                |gauges| gauges.log_end.load(Ordering::Relaxed),
            ),
            (
                "ringlog_partition_durable_end",
                "First offset not yet durable.",
                |gauges| gauges.durable_end.load(Ordering::Relaxed),
            ),
            (
                "ringlog_partition_high_watermark",
                "High watermark.",
                |gauges| gauges.high_watermark.load(Ordering::Relaxed),
            ),
            (
                "ringlog_partition_fenced",
                "1 if fenced after a storage error.",
                |gauges| u64::from(gauges.fenced.load(Ordering::Relaxed)),
            ),
        ];
        for (name, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for gauges in partitions.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{partition=\"{}\"}} {}",
                    gauges.name,
                    value(gauges)
                );
            }
        }
    }
}

/// A follower gauge: metric name, help text, and how to read it.
type FollowerSeries = (&'static str, &'static str, fn(&FollowerGauge) -> u64);

/// A partition gauge: metric name, help text, and how to read it.
type Series = (&'static str, &'static str, fn(&PartitionGauges) -> u64);

fn render_counter(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    let value = value.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn api_index(api: ApiKey) -> usize {
    ApiKey::ALL
        .iter()
        .position(|known| *known == api)
        .expect("ApiKey::ALL lists every key")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Rendering shows counters, cumulative buckets and partition gauges.
    #[test]
    fn render_text() {
        let metrics = Metrics::default();
        metrics.request_done(ApiKey::Produce, Duration::from_micros(120));
        metrics.request_done(ApiKey::Produce, Duration::from_millis(3));
        metrics.error(ErrorCode::CorruptMessage);
        let gauges = metrics.add_partition("orders-0");
        gauges.log_end.store(7, Ordering::Relaxed);
        let text = metrics.render();
        assert!(
            text.contains("ringlog_requests_total{api=\"Produce\"} 2"),
            "{text}"
        );
        assert!(text.contains("ringlog_request_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 2"));
        assert!(
            text.contains("ringlog_errors_total{code=\"CORRUPT_MESSAGE\"} 1"),
            "{text}"
        );
        assert!(text.contains("ringlog_partition_log_end{partition=\"orders-0\"} 7"));
    }
}
