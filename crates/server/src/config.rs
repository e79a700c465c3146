//! Node configuration: a TOML file (every key optional), then command-line overrides.
//!
//! Invariants (checked by [`Config::validate`]): `1 <= cores <= CORES_MAX`; `partitions_default >= 1`;
//! `request_size_bytes_max` is at least Kafka's smallest request header; `batch_size_bytes_max`
//! is below `request_size_bytes_max`. The WAL checks its own size relations when a shard
//! starts (`WalConfig::validate`). Every key is documented in `docs/server.md#configuration`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringlog_kafka::frame::REQUEST_HEADER_SIZE_BYTES_MIN;
use ringlog_types::units::MIB;
use ringlog_wal::{WalConfig, WritePath};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Default client (Kafka protocol) address.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:9092";
/// Most shard threads a node runs (queues between shards grow with the square).
pub const CORES_MAX: usize = 256;
/// Default control-plane (HTTP) address.
pub const HTTP_LISTEN_DEFAULT: &str = "127.0.0.1:9644";

/// Settings of one ringlog node.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory of the partition logs and the topic metadata file.
    pub data_dir: PathBuf,
    /// Address of the Kafka-protocol listener (one `SO_REUSEPORT` socket per shard).
    pub listen: SocketAddr,
    /// Address advertised to clients in Metadata responses; defaults to `listen`.
    pub advertised_listen: Option<SocketAddr>,
    /// Address of the HTTP control plane (`/metrics`, `/health`).
    pub http_listen: SocketAddr,
    /// Shard threads, each pinned to a CPU, each owning a share of the partitions (see
    /// docs/server.md#shards).
    pub cores: usize,
    /// How committed bytes reach the disk: `direct` (O_DIRECT) or `mmap`.
    pub write_path: String,
    /// Create a topic that a Metadata request names and that does not exist.
    pub auto_create_topics: bool,
    /// Partition count of auto-created topics, and of CreateTopics with `num_partitions = -1`.
    pub partitions_default: u32,
    /// Largest request frame accepted; a larger size prefix closes the connection.
    pub request_size_bytes_max: usize,
    /// Largest batch a Produce may carry (larger: MESSAGE_TOO_LARGE).
    pub batch_size_bytes_max: u64,
    /// Upper bound on a Fetch's `max_wait_ms`.
    pub fetch_wait_ms_max: u64,
    /// Size of every segment file.
    pub segment_size_bytes: u64,
    /// Segment bytes each partition keeps at most (the active segment always stays); beyond
    /// it a roll reuses the oldest segment's file. `None` (the default): the log grows.
    pub retention_bytes: Option<u64>,
    /// Requests of one connection in flight (read but not yet answered); reading from the
    /// connection pauses at this depth.
    pub connection_requests_max: usize,
    /// Open connections per shard; further connections are closed at once.
    pub connections_max: usize,
    /// CPUs the shards are pinned to, shard `i` on `cpus[i % len]`; default: the CPUs this
    /// process may run on (its affinity mask), in order. Several nodes on one host give each
    /// its own CPUs here.
    pub cpus: Option<Vec<usize>>,
    /// The replicated cluster this node belongs to; `None`: a single node (every partition
    /// led here, `acks=-1` means durable on this node).
    pub cluster: Option<ClusterConfig>,
    /// Replication settings of topics created without their own (`docs/replication.md`).
    pub replication: ReplicationDefaults,
}

/// A static cluster (DESIGN.md section 5, static mode): its nodes and the fixed leader.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Name shared by every node; a replica of another cluster is refused at the handshake.
    pub id: String,
    /// This node's id (one of `nodes`).
    pub node_id: u32,
    /// The node that leads every partition.
    pub leader: u32,
    /// The leader epoch stamped into every batch; raise it when the leader changes.
    #[serde(default)]
    pub epoch: u32,
    /// Every node of the cluster, this one included.
    pub nodes: Vec<NodeAddresses>,
}

/// Where a node serves clients and replicas.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAddresses {
    /// The node id (Kafka's broker id).
    pub id: u32,
    /// The Kafka-protocol address clients use (Metadata advertises it).
    pub client: SocketAddr,
    /// The internal replication address (the leader listens on it, followers connect).
    pub replication: SocketAddr,
}

/// Defaults of the per-topic replication settings (CreateTopics configs override them).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationDefaults {
    /// What `acks=-1` waits for: `async`, `semi-sync`, `quorum` or `sync`.
    pub ack_mode: String,
    /// Replicas of each partition, leader included; `None`: every node of the cluster.
    pub replication_factor: Option<u16>,
    /// Followers a `semi-sync` ack waits for.
    pub semi_sync_replicas: usize,
    /// How long a `semi-sync` ack waits for its followers.
    pub semi_sync_timeout_ms: u64,
    /// After the timeout: acknowledge as `async` (counted and logged) instead of failing.
    pub semi_sync_degrade: bool,
    /// Smallest ISR a `sync` write is accepted with (Kafka's `min.insync.replicas`).
    pub min_insync_replicas: usize,
    /// A follower not caught up for longer leaves the ISR.
    pub replica_lag_max_ms: u64,
    /// Bytes a follower asks for per fetch.
    pub fetch_max_bytes: u32,
    /// How long a follower's fetch waits at the leader for new data.
    pub fetch_wait_ms: u32,
}

impl Default for ReplicationDefaults {
    fn default() -> ReplicationDefaults {
        let policy = ringlog_replication::Policy::default();
        ReplicationDefaults {
            ack_mode: policy.ack_mode.name().to_string(),
            replication_factor: None,
            semi_sync_replicas: policy.semi_sync_replicas,
            semi_sync_timeout_ms: policy.semi_sync_timeout_ms,
            semi_sync_degrade: policy.semi_sync_degrade,
            min_insync_replicas: policy.min_insync_replicas,
            replica_lag_max_ms: policy.replica_lag_max_ms,
            fetch_max_bytes: 4 * 1024 * 1024,
            fetch_wait_ms: 500,
        }
    }
}

impl ReplicationDefaults {
    /// A follower's fetch may wait `fetch_wait_ms` at the leader before it is answered and
    /// the next one shows the follower caught up; a `replica_lag_max_ms` not above it would
    /// take idle followers out of the ISR and back in, over and over.
    pub fn check_lag_max(&self, replica_lag_max_ms: u64) -> std::result::Result<(), String> {
        let floor_ms = u64::from(self.fetch_wait_ms);
        if replica_lag_max_ms <= floor_ms {
            return Err(format!(
                "replica_lag_max_ms={replica_lag_max_ms} must be above fetch_wait_ms={floor_ms} \
                 (a follower's fetch may wait that long at the leader)"
            ));
        }
        Ok(())
    }

    /// The default policy; `validate` guarantees that the ack mode parses.
    pub fn policy(&self) -> ringlog_replication::Policy {
        ringlog_replication::Policy {
            ack_mode: ringlog_replication::AckMode::parse(&self.ack_mode)
                .unwrap_or(ringlog_replication::AckMode::Sync),
            semi_sync_replicas: self.semi_sync_replicas,
            semi_sync_timeout_ms: self.semi_sync_timeout_ms,
            semi_sync_degrade: self.semi_sync_degrade,
            min_insync_replicas: self.min_insync_replicas,
            replica_lag_max_ms: self.replica_lag_max_ms,
        }
    }
}

impl ClusterConfig {
    /// The addresses of node `id`.
    pub fn node(&self, id: u32) -> Option<&NodeAddresses> {
        self.nodes.iter().find(|node| node.id == id)
    }

    /// True if this node leads every partition.
    pub fn is_leader(&self) -> bool {
        self.node_id == self.leader
    }

    /// The replicas of a topic of `replication_factor`: the leader, then the nodes after it
    /// in configuration order (wrapping around).
    pub fn replicas(&self, replication_factor: u16) -> Vec<u32> {
        let count = usize::from(replication_factor).min(self.nodes.len());
        let start = self
            .nodes
            .iter()
            .position(|node| node.id == self.leader)
            .unwrap_or(0);
        (0..count)
            .map(|step| self.nodes[(start + step) % self.nodes.len()].id)
            .collect()
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.id.is_empty() || self.id.len() > 32 {
            return Err(format!("cluster.id {:?} must be 1 to 32 bytes", self.id));
        }
        let mut ids: Vec<u32> = self.nodes.iter().map(|node| node.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.nodes.len() {
            return Err("cluster.nodes has two nodes with one id".to_string());
        }
        if self.node(self.node_id).is_none() {
            return Err(format!(
                "cluster.node_id {} is not in cluster.nodes",
                self.node_id
            ));
        }
        if self.node(self.leader).is_none() {
            return Err(format!(
                "cluster.leader {} is not in cluster.nodes",
                self.leader
            ));
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("/var/lib/ringlog"),
            listen: LISTEN_DEFAULT.parse().expect("valid default address"),
            advertised_listen: None,
            http_listen: HTTP_LISTEN_DEFAULT.parse().expect("valid default address"),
            cores: 1,
            write_path: "direct".to_string(),
            auto_create_topics: false,
            partitions_default: 1,
            request_size_bytes_max: usize::try_from(100 * MIB).unwrap_or(usize::MAX),
            batch_size_bytes_max: MIB,
            fetch_wait_ms_max: 30_000,
            segment_size_bytes: 128 * MIB,
            retention_bytes: None,
            connection_requests_max: 128,
            connections_max: 4096,
            cpus: None,
            cluster: None,
            replication: ReplicationDefaults::default(),
        }
    }
}

/// Command-line values that replace the file's.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--http-listen`.
    pub http_listen: Option<SocketAddr>,
    /// `--cores`.
    pub cores: Option<usize>,
    /// `--write-path`.
    pub write_path: Option<String>,
    /// `--retention-bytes`.
    pub retention_bytes: Option<u64>,
}

impl Config {
    /// Reads `path` (TOML), or starts from the defaults without one, then applies
    /// `overrides` and validates the result.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
                    path: path.to_path_buf(),
                    source,
                })?;
                Config::parse(&text)?
            }
            None => Config::default(),
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (unknown keys are errors, so a typo never goes unnoticed).
    pub fn parse(text: &str) -> Result<Config> {
        toml::from_str(text).map_err(|error| Error::ConfigInvalid {
            reason: error.to_string(),
        })
    }

    /// Replaces the values `overrides` carries.
    pub fn apply(&mut self, overrides: &Overrides) {
        if let Some(data_dir) = &overrides.data_dir {
            self.data_dir.clone_from(data_dir);
        }
        if let Some(listen) = overrides.listen {
            self.listen = listen;
        }
        if let Some(http_listen) = overrides.http_listen {
            self.http_listen = http_listen;
        }
        if let Some(cores) = overrides.cores {
            self.cores = cores;
        }
        if let Some(write_path) = &overrides.write_path {
            self.write_path.clone_from(write_path);
        }
        if let Some(retention_bytes) = overrides.retention_bytes {
            self.retention_bytes = Some(retention_bytes);
        }
    }

    /// Checks the invariants listed in the module documentation.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(Error::ConfigInvalid { reason });
        if self.cores == 0 || self.cores > CORES_MAX {
            return invalid(format!(
                "cores={} must be between 1 and {CORES_MAX}",
                self.cores
            ));
        }
        if self.write_path_parsed().is_none() {
            return invalid(format!(
                "write_path={:?} is neither \"direct\" nor \"mmap\"",
                self.write_path
            ));
        }
        if self.partitions_default == 0 {
            return invalid("partitions_default must be at least 1".to_string());
        }
        if self.request_size_bytes_max < REQUEST_HEADER_SIZE_BYTES_MIN {
            return invalid(format!(
                "request_size_bytes_max={} is below the smallest request header",
                self.request_size_bytes_max
            ));
        }
        let request_max = u64::try_from(self.request_size_bytes_max).unwrap_or(u64::MAX);
        if self.batch_size_bytes_max >= request_max {
            return invalid(format!(
                "batch_size_bytes_max={} must be below request_size_bytes_max={}",
                self.batch_size_bytes_max, self.request_size_bytes_max
            ));
        }
        if self.connection_requests_max == 0 || self.connections_max == 0 {
            return invalid("connection_requests_max and connections_max must be >= 1".into());
        }
        if self.cpus.as_ref().is_some_and(Vec::is_empty) {
            return invalid("cpus must list at least one CPU".to_string());
        }
        if ringlog_replication::AckMode::parse(&self.replication.ack_mode).is_none() {
            return invalid(format!(
                "replication.ack_mode={:?} is none of async, semi-sync, quorum, sync",
                self.replication.ack_mode
            ));
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate().or_else(invalid)?;
            if self.cores != 1 {
                return invalid(format!(
                    "cores={}: a replicated node runs one shard in this release (cores = 1)",
                    self.cores
                ));
            }
            let replicas = self
                .replication
                .replication_factor
                .map_or(cluster.nodes.len(), |rf| {
                    usize::from(rf).min(cluster.nodes.len())
                });
            self.replication
                .policy()
                .validate(replicas)
                .map_err(|reason| Error::ConfigInvalid {
                    reason: format!("replication: {reason}"),
                })?;
            self.replication
                .check_lag_max(self.replication.replica_lag_max_ms)
                .map_err(|reason| Error::ConfigInvalid { reason })?;
        }
        Ok(())
    }

    /// The write path; `validate` guarantees that it parses.
    pub fn write_path_parsed(&self) -> Option<WritePath> {
        WritePath::parse(&self.write_path)
    }

    /// The address clients are told to connect to.
    pub fn advertised(&self) -> SocketAddr {
        self.advertised_listen.unwrap_or(self.listen)
    }

    /// This node's broker id: its cluster node id, or 0 alone.
    pub fn node_id(&self) -> u32 {
        self.cluster.as_ref().map_or(0, |cluster| cluster.node_id)
    }

    /// The epoch stamped into batches.
    pub fn leader_epoch(&self) -> ringlog_types::Epoch {
        ringlog_types::Epoch(self.cluster.as_ref().map_or(0, |cluster| cluster.epoch))
    }

    /// The longest a Fetch may wait.
    pub fn fetch_wait_max(&self) -> Duration {
        Duration::from_millis(self.fetch_wait_ms_max)
    }

    /// The partition-log settings of a shard.
    pub fn wal_config(&self) -> WalConfig {
        let write_path = self.write_path_parsed().unwrap_or(WritePath::Direct);
        let mut wal = WalConfig::new(&self.data_dir, write_path);
        wal.segment_size_bytes = self.segment_size_bytes;
        wal.batch_size_bytes_max = self.batch_size_bytes_max;
        wal.retention.bytes_max = self.retention_bytes;
        wal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A file sets some keys, flags override them, and unknown keys are refused.
    #[test]
    fn file_then_flags() {
        let mut config = Config::parse(
            "data_dir = \"/tmp/a\"\nlisten = \"127.0.0.1:1\"\nauto_create_topics = true\n",
        )
        .expect("parses");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/a"));
        assert!(config.auto_create_topics);
        let overrides = Overrides {
            listen: Some("127.0.0.1:2".parse().expect("address")),
            write_path: Some("mmap".into()),
            ..Overrides::default()
        };
        config.apply(&overrides);
        assert_eq!(config.listen.port(), 2);
        assert_eq!(config.write_path_parsed(), Some(WritePath::Mmap));
        config.validate().expect("valid");
        assert!(Config::parse("lisen = \"x\"").is_err());
    }

    // `retention_bytes` is absent by default, set by the file, replaced by the flag, and
    // reaches every partition's WAL configuration.
    #[test]
    fn retention_bytes_from_file_and_flag() {
        let config = Config::parse("").expect("parses");
        assert_eq!(config.retention_bytes, None);
        assert_eq!(config.wal_config().retention.bytes_max, None);
        let mut config = Config::parse("retention_bytes = 1073741824\n").expect("parses");
        assert_eq!(config.retention_bytes, Some(1 << 30));
        assert_eq!(config.wal_config().retention.bytes_max, Some(1 << 30));
        config.apply(&Overrides {
            retention_bytes: Some(512 * MIB),
            ..Overrides::default()
        });
        assert_eq!(config.wal_config().retention.bytes_max, Some(512 * MIB));
        config.validate().expect("valid");
        assert!(Config::parse("retention_bytes = -1\n").is_err());
        assert!(Config::parse("retention_bytes = \"1 GiB\"\n").is_err());
    }

    // A cluster config parses; cores above 1, a lag limit not above the fetch wait, a leader
    // outside the nodes and an unknown ack mode are refused with a reason.
    #[test]
    fn cluster_config_rules() {
        let cluster = "[cluster]\nid = \"c\"\nnode_id = 1\nleader = 1\nnodes = [\n\
            { id = 1, client = \"127.0.0.1:1\", replication = \"127.0.0.1:2\" },\n\
            { id = 2, client = \"127.0.0.2:1\", replication = \"127.0.0.2:2\" },\n]\n";
        let config = Config::parse(cluster).expect("parses");
        config.validate().expect("valid");
        assert_eq!(config.node_id(), 1);
        let cluster_config = config.cluster.as_ref().expect("cluster");
        assert_eq!(cluster_config.replicas(2), vec![1, 2]);
        let reason = |text: &str| match Config::parse(text).and_then(|c| c.validate()) {
            Err(Error::ConfigInvalid { reason }) => reason,
            other => panic!("not refused: {other:?}"),
        };
        assert!(reason(&format!("cores = 2\n{cluster}")).contains("cores"));
        let lag = format!("{cluster}[replication]\nreplica_lag_max_ms = 500\n");
        assert!(reason(&lag).contains("fetch_wait_ms"), "{}", reason(&lag));
        let mode = format!("{cluster}[replication]\nack_mode = \"fast\"\n");
        assert!(reason(&mode).contains("ack_mode"));
        let leader = cluster.replace("leader = 1", "leader = 9");
        assert!(reason(&leader).contains("leader"));
    }

    // Values that break an invariant are refused with a reason.
    #[test]
    fn invalid_values() {
        let config = Config {
            write_path: "fast".into(),
            ..Config::default()
        };
        assert!(config.validate().is_err());
        let config = Config {
            partitions_default: 0,
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }
}
