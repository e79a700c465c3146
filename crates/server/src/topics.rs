//! The topic registry: topic name -> partition count and topic id, stored durably in
//! `<data_dir>/topics.json` and reloaded at start.
//!
//! Invariants: the file is replaced atomically (write `topics.json.tmp`, fsync it, rename,
//! fsync the directory), so after a crash it holds either the old or the new registry; names
//! follow Kafka's rule (1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`); partition counts are
//! at least 1 and at most [`PARTITIONS_MAX`]. Writes are blocking file calls: they happen
//! only for CreateTopics, DeleteTopics and auto-creation (admin operations), never per record.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of the registry file in the data directory.
pub const FILE_NAME: &str = "topics.json";
/// Version of the registry file's format.
const FORMAT_VERSION: u32 = 1;
/// Most partitions one topic may have.
pub const PARTITIONS_MAX: u32 = 1024;
/// Longest topic name (Kafka's limit).
const NAME_LENGTH_MAX: usize = 249;

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicEntry {
    /// Partition count.
    pub partitions: u32,
    /// Kafka topic id (a UUID), as 32 hex digits.
    pub topic_id: String,
    /// Replicas and commit rule, on a node of a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<TopicReplication>,
}

/// A replicated topic's replicas and commit rule (docs/replication.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicReplication {
    /// Node ids of the replicas, the leader first.
    pub replicas: Vec<u32>,
    /// `async`, `semi-sync`, `quorum` or `sync`.
    pub ack_mode: String,
    /// Followers a `semi-sync` ack waits for.
    pub semi_sync_replicas: usize,
    /// How long a `semi-sync` ack waits.
    pub semi_sync_timeout_ms: u64,
    /// `semi-sync` falls back to `async` after its timeout (counted and logged).
    pub semi_sync_degrade: bool,
    /// Smallest ISR a `sync` write is accepted with.
    pub min_insync_replicas: usize,
    /// A follower not caught up for longer leaves the ISR.
    pub replica_lag_max_ms: u64,
}

impl TopicReplication {
    /// The settings of a topic created with `policy` over `replicas`.
    pub fn new(replicas: Vec<u32>, policy: &ringlog_replication::Policy) -> TopicReplication {
        TopicReplication {
            replicas,
            ack_mode: policy.ack_mode.name().to_string(),
            semi_sync_replicas: policy.semi_sync_replicas,
            semi_sync_timeout_ms: policy.semi_sync_timeout_ms,
            semi_sync_degrade: policy.semi_sync_degrade,
            min_insync_replicas: policy.min_insync_replicas,
            replica_lag_max_ms: policy.replica_lag_max_ms,
        }
    }

    /// The commit rule (an unknown stored mode reads as `sync`, the strictest).
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

#[derive(Serialize, Deserialize)]
struct RegistryFile {
    version: u32,
    topics: BTreeMap<String, TopicEntry>,
}

/// The topics of this node.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    topics: BTreeMap<String, TopicEntry>,
}

impl Registry {
    /// Loads the registry of `data_dir` (empty if the file does not exist yet).
    pub fn load(data_dir: &Path) -> Result<Registry> {
        let path = data_dir.join(FILE_NAME);
        let failed = |detail: String| Error::Topics {
            path: path.clone(),
            detail,
        };
        let topics = match fs::read(&path) {
            Ok(bytes) => {
                let file: RegistryFile =
                    serde_json::from_slice(&bytes).map_err(|error| failed(error.to_string()))?;
                if file.version != FORMAT_VERSION {
                    return Err(failed(format!("unknown format version {}", file.version)));
                }
                file.topics
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(failed(error.to_string())),
        };
        Ok(Registry { path, topics })
    }

    /// The topic `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<&TopicEntry> {
        self.topics.get(name)
    }

    /// Every topic, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &TopicEntry)> {
        self.topics.iter()
    }

    /// Adds a topic and stores the registry. The caller checked the name and count.
    pub fn insert(&mut self, name: &str, partitions: u32) -> Result<TopicEntry> {
        let entry = TopicEntry {
            partitions,
            topic_id: new_topic_id(),
            replication: None,
        };
        self.insert_entry(name, entry)
    }

    /// Adds a topic with its entry given (a follower stores its leader's), and stores the
    /// registry; on failure the registry is unchanged.
    pub fn insert_entry(&mut self, name: &str, entry: TopicEntry) -> Result<TopicEntry> {
        let partitions = entry.partitions;
        assert!(
            valid_name(name),
            "topic name checked by the caller: {name:?}"
        );
        assert!(partitions >= 1, "partitions={partitions}");
        assert!(partitions <= PARTITIONS_MAX, "partitions={partitions}");
        self.topics.insert(name.to_string(), entry.clone());
        if let Err(error) = self.store() {
            self.topics.remove(name);
            return Err(error);
        }
        Ok(entry)
    }

    /// Removes a topic and stores the registry.
    pub fn remove(&mut self, name: &str) -> Result<Option<TopicEntry>> {
        let Some(entry) = self.topics.remove(name) else {
            return Ok(None);
        };
        if let Err(error) = self.store() {
            self.topics.insert(name.to_string(), entry);
            return Err(error);
        }
        Ok(Some(entry))
    }

    /// Writes the registry: tmp file, fsync, rename, fsync of the directory.
    fn store(&self) -> Result<()> {
        let file = RegistryFile {
            version: FORMAT_VERSION,
            topics: self.topics.clone(),
        };
        let failed = |detail: String| Error::Topics {
            path: self.path.clone(),
            detail,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|error| failed(error.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut out = File::create(&tmp)?;
            out.write_all(&bytes)?;
            out.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            let dir = self.path.parent().unwrap_or(Path::new("."));
            File::open(dir)?.sync_all()
        };
        write().map_err(|error| failed(error.to_string()))
    }
}

/// Kafka's topic name rule.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_LENGTH_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// The directory name of a partition (`<topic>-<partition>`), as the WAL names it.
pub fn partition_name(topic: &str, partition: u32) -> String {
    format!("{topic}-{partition}")
}

/// A random topic id (version-4 layout), from the standard library's randomly seeded hasher.
pub fn new_topic_id() -> String {
    let random = std::collections::hash_map::RandomState::new();
    let mut high = random.build_hasher();
    high.write_u8(1);
    let mut low = random.build_hasher();
    low.write_u8(2);
    let mut bytes = (u128::from(high.finish()) << 64) | u128::from(low.finish());
    bytes = (bytes & !(0xF << 76)) | (0x4 << 76);
    bytes = (bytes & !(0x3 << 62)) | (0x2 << 62);
    format!("{bytes:032x}")
}

/// Parses a stored topic id.
pub fn parse_topic_id(text: &str) -> uuid::Uuid {
    u128::from_str_radix(text, 16).map_or(uuid::Uuid::nil(), uuid::Uuid::from_u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Topics survive a reload, and a removed topic stays removed.
    #[test]
    fn insert_remove_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut registry = Registry::load(dir.path()).expect("empty");
        let entry = registry.insert("orders", 3).expect("insert");
        registry.insert("audit.log_v1", 1).expect("insert");
        registry.remove("audit.log_v1").expect("remove");
        let reloaded = Registry::load(dir.path()).expect("reload");
        assert_eq!(reloaded.get("orders"), Some(&entry));
        assert!(reloaded.get("audit.log_v1").is_none());
        assert_ne!(parse_topic_id(&entry.topic_id), uuid::Uuid::nil());
    }

    // Kafka's name rule.
    #[test]
    fn names() {
        assert!(valid_name("a-b.c_9"));
        assert!(!valid_name(""));
        assert!(!valid_name(".."));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(250)));
    }
}
