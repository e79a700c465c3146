//! The topics and partitions a shard serves: the node's durable registry (`crate::topics`,
//! shared by every shard behind a mutex) joined with this shard's open partition logs and
//! their metric gauges.
//!
//! Invariants: every topic of a shard's view is in the registry, or is being deleted; a
//! shard has open exactly the partitions of its view that it owns (`crate::split::owner`),
//! and no other; partition `p` of topic `t` is the WAL partition `<t>-<p>`. The registry is
//! changed only under its mutex, by the shard that serves the CreateTopics, DeleteTopics or
//! auto-creating Metadata request; the other shards learn of the change through the
//! forwarding queues (`crate::forward`) before that request is answered.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use ringlog_kafka::ErrorCode;
use ringlog_wal::{PartitionHandle, Wal};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, PartitionGauges};
use crate::replica::Replica;
use crate::split::owner;
use crate::topics::{parse_topic_id, partition_name, valid_name, Registry, PARTITIONS_MAX};
use crate::trash;

/// The node's topic registry, shared by its shards.
pub(crate) type SharedRegistry = Arc<Mutex<Registry>>;

/// An open partition.
pub(crate) struct PartitionState {
    pub handle: PartitionHandle,
    pub gauges: Arc<PartitionGauges>,
    /// Its role in replication.
    pub replica: Replica,
}

impl PartitionState {
    /// The first offset consumers may not read yet: the durable end alone, the high
    /// watermark in a cluster (DESIGN.md section 4).
    pub fn high_watermark(&self, durable_end: ringlog_types::Offset) -> ringlog_types::Offset {
        match &self.replica {
            Replica::Alone => durable_end,
            Replica::Leader(leader) => leader.high_watermark().min(durable_end),
            Replica::Follower(link) => link.core.high_watermark().min(durable_end),
        }
    }
}

/// A topic with the partitions this shard owns (`None` for the other shards' partitions).
pub(crate) struct TopicState {
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<Option<PartitionState>>,
}

impl TopicState {
    /// The topic's partition count (on every shard).
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }
}

/// Every topic of the node, as one shard sees it.
pub(crate) struct Partitions {
    registry: SharedRegistry,
    topics: BTreeMap<String, TopicState>,
    shard: usize,
    cores: usize,
    /// This node's id, in a cluster.
    node_id: Option<u32>,
}

/// Loads the registry and finishes the deletions a crash interrupted; once per node, before
/// any shard opens a partition.
pub(crate) fn load_registry(config: &Config) -> Result<SharedRegistry> {
    let mut registry = Registry::load(&config.data_dir)?;
    finish_deletions(&config.data_dir, &mut registry)?;
    Ok(Arc::new(Mutex::new(registry)))
}

/// Locks the registry. A shard that panicked while holding it left it as it was stored or
/// about to be stored (every change is stored before the map changes for good), so the
/// poison is ignored.
fn lock(registry: &SharedRegistry) -> MutexGuard<'_, Registry> {
    registry
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Partitions {
    /// Opens the partitions of every registered topic that `shard` owns (recovering each log).
    pub fn open(
        registry: SharedRegistry,
        shard: usize,
        config: &Config,
        wal: &mut Wal,
        metrics: &Metrics,
    ) -> Result<Partitions> {
        let cores = config.cores;
        let entries: Vec<(String, u32, String)> = lock(&registry)
            .iter()
            .map(|(name, entry)| (name.clone(), entry.partitions, entry.topic_id.clone()))
            .collect();
        let mut partitions = Partitions {
            registry,
            topics: BTreeMap::new(),
            shard,
            cores,
            node_id: config.cluster.as_ref().map(|cluster| cluster.node_id),
        };
        for (name, count, topic_id) in entries {
            let opened = partitions.open_owned(wal, metrics, &name, count)?;
            partitions.topics.insert(
                name,
                TopicState {
                    topic_id: parse_topic_id(&topic_id),
                    partitions: opened,
                },
            );
        }
        Ok(partitions)
    }

    /// Opens the partitions of a topic of `count` partitions that this shard owns.
    fn open_owned(
        &self,
        wal: &mut Wal,
        metrics: &Metrics,
        name: &str,
        count: u32,
    ) -> Result<Vec<Option<PartitionState>>> {
        let replication = lock(&self.registry)
            .get(name)
            .and_then(|entry| entry.replication.clone());
        let mut opened = Vec::new();
        for partition in 0..count {
            if owner(name, partition, self.cores) == self.shard {
                let mut state = open_partition(wal, metrics, name, partition)?;
                if let (Some(node_id), Some(replication)) = (self.node_id, &replication) {
                    state.replica = Replica::new(wal, state.handle, node_id, replication, name)?;
                    // `open_partition` published the gauges of a node alone (HW = durable
                    // end, no ISR); publish those of the role this node now has.
                    publish_ends(wal, &state);
                }
                opened.push(Some(state));
            } else {
                opened.push(None);
            }
        }
        Ok(opened)
    }

    /// The topic `name`.
    pub fn topic(&self, name: &str) -> Option<&TopicState> {
        self.topics.get(name)
    }

    /// Every topic, by name.
    pub fn topics(&self) -> impl Iterator<Item = (&String, &TopicState)> {
        self.topics.iter()
    }

    /// Partition `partition` of topic `name`, if this shard owns it.
    pub fn get(&self, name: &str, partition: i32) -> Option<&PartitionState> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(name)?.partitions.get(index)?.as_ref()
    }

    /// Partition `partition` of topic `name`, if this shard owns it.
    pub fn get_mut(&mut self, name: &str, partition: i32) -> Option<&mut PartitionState> {
        let index = usize::try_from(partition).ok()?;
        self.topics
            .get_mut(name)?
            .partitions
            .get_mut(index)?
            .as_mut()
    }

    /// The open partition with log handle `handle`, with its topic name and index.
    pub fn by_handle_mut(
        &mut self,
        handle: PartitionHandle,
    ) -> Option<(&str, u32, &mut PartitionState)> {
        self.topics.iter_mut().find_map(|(name, topic)| {
            (0u32..)
                .zip(topic.partitions.iter_mut())
                .find_map(|(index, state)| {
                    let state = state.as_mut().filter(|state| state.handle == handle)?;
                    Some((name.as_str(), index, state))
                })
        })
    }

    /// Every open partition, with its topic name and index.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, u32, &mut PartitionState)> {
        self.topics.iter_mut().flat_map(|(name, topic)| {
            (0u32..)
                .zip(topic.partitions.iter_mut())
                .filter_map(move |(index, state)| Some((name.as_str(), index, state.as_mut()?)))
        })
    }

    /// The registry entry of topic `name`.
    pub fn entry(&self, name: &str) -> Option<crate::topics::TopicEntry> {
        lock(&self.registry).get(name).cloned()
    }

    /// Every registered topic with its entry.
    pub fn entries(&self) -> Vec<(String, crate::topics::TopicEntry)> {
        lock(&self.registry)
            .iter()
            .map(|(name, entry)| (name.clone(), entry.clone()))
            .collect()
    }

    /// The shard that serves partition `partition` of `name`: its owner, or this shard for
    /// an unknown topic or partition (which then answers the error).
    pub fn serving_shard(&self, name: &str, partition: i32) -> usize {
        let known = self.topics.get(name).and_then(|topic| {
            let index = u32::try_from(partition).ok()?;
            (usize::try_from(index).ok()? < topic.partition_count()).then_some(index)
        });
        known.map_or(self.shard, |index| owner(name, index, self.cores))
    }

    /// Checks a creation request: the error code Kafka would answer, if any.
    pub fn check_create(&self, name: &str, partitions: i64) -> std::result::Result<u32, ErrorCode> {
        check_create(&lock(&self.registry), &self.topics, name, partitions)
    }

    /// Creates a topic: stores it in the registry (checked again under its lock, so two
    /// shards never both create one name), then opens this shard's partitions of it.
    /// Returns the topic id the other shards need to open theirs.
    pub fn create(
        &mut self,
        wal: &mut Wal,
        metrics: &Metrics,
        name: &str,
        partitions: u32,
        replication: Option<crate::topics::TopicReplication>,
        topic_id: Option<String>,
    ) -> std::result::Result<String, ErrorCode> {
        let entry = {
            let mut registry = lock(&self.registry);
            let count = i64::from(partitions);
            check_create(&registry, &self.topics, name, count)?;
            let entry = crate::topics::TopicEntry {
                partitions,
                topic_id: topic_id.unwrap_or_else(crate::topics::new_topic_id),
                replication,
            };
            registry.insert_entry(name, entry).map_err(|error| {
                tracing::error!(topic = name, %error, "cannot store the new topic");
                ErrorCode::KafkaStorageError
            })?
        };
        self.open_created(wal, metrics, name, partitions, &entry.topic_id)?;
        tracing::info!(topic = name, partitions, "topic created");
        Ok(entry.topic_id)
    }

    /// Opens this shard's partitions of a topic another shard created (already registered).
    pub fn open_created(
        &mut self,
        wal: &mut Wal,
        metrics: &Metrics,
        name: &str,
        partitions: u32,
        topic_id: &str,
    ) -> std::result::Result<(), ErrorCode> {
        let opened = self
            .open_owned(wal, metrics, name, partitions)
            .map_err(|error| {
                tracing::error!(topic = name, %error, "cannot open the partitions of a topic");
                ErrorCode::KafkaStorageError
            })?;
        self.topics.insert(
            name.to_string(),
            TopicState {
                topic_id: parse_topic_id(topic_id),
                partitions: opened,
            },
        );
        Ok(())
    }

    /// First step of a deletion, on every shard: takes the topic out of this shard's view,
    /// closes its partitions here (each flushed first) and moves their directories into the
    /// trash durably (`crate::trash` explains why this order survives a crash). Returns the
    /// topic id.
    pub fn close_topic(
        &mut self,
        wal: &mut Wal,
        metrics: &Metrics,
        data_dir: &Path,
        name: &str,
    ) -> std::result::Result<String, ErrorCode> {
        if !self.topics.contains_key(name) {
            return Err(ErrorCode::UnknownTopicOrPartition);
        }
        let Some(entry) = lock(&self.registry).get(name).cloned() else {
            // Being deleted by another shard's request, which closes ours as well.
            return Err(ErrorCode::UnknownTopicOrPartition);
        };
        let topic = self.topics.remove(name).expect("checked above");
        let mut names = Vec::with_capacity(topic.partitions.len());
        for (partition, state) in (0u32..).zip(&topic.partitions) {
            let Some(state) = state else { continue };
            let partition_name = partition_name(name, partition);
            if let Err(error) = wal.close_partition(state.handle) {
                tracing::error!(topic = name, partition, %error, "cannot close a partition");
                return Err(ErrorCode::KafkaStorageError);
            }
            metrics.remove_partition(&partition_name);
            names.push(partition_name);
        }
        // From here on the topic is out of service; a failure below leaves its directories
        // in place or in the trash, and the next start finishes the deletion.
        if let Err(error) = trash::move_partitions(data_dir, &entry.topic_id, &names) {
            tracing::error!(topic = name, %error, "cannot delete the topic; a restart finishes it");
            return Err(ErrorCode::KafkaStorageError);
        }
        Ok(entry.topic_id)
    }

    /// Last step of a deletion, once every shard closed its partitions: removes the topic
    /// from the registry (the commit point), then empties the trash.
    pub fn forget(
        &mut self,
        data_dir: &Path,
        name: &str,
        topic_id: &str,
    ) -> std::result::Result<(), ErrorCode> {
        if let Err(error) = lock(&self.registry).remove(name) {
            tracing::error!(topic = name, %error, "cannot delete the topic; a restart finishes it");
            return Err(ErrorCode::KafkaStorageError);
        }
        if let Err(error) = trash::remove(data_dir, topic_id) {
            tracing::warn!(topic = name, %error, "cannot empty the trash; a restart retries");
        }
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Publishes a partition's ends to its gauges.
    pub fn publish(&self, wal: &Wal, handle: PartitionHandle) {
        let Some(state) = self
            .topics
            .values()
            .flat_map(|topic| topic.partitions.iter().flatten())
            .find(|state| state.handle == handle)
        else {
            return;
        };
        publish_ends(wal, state);
    }
}

/// Kafka's answer to a creation request, if it is refused.
fn check_create(
    registry: &Registry,
    topics: &BTreeMap<String, TopicState>,
    name: &str,
    partitions: i64,
) -> std::result::Result<u32, ErrorCode> {
    if !valid_name(name) {
        return Err(ErrorCode::InvalidTopicException);
    }
    // A topic whose deletion failed half way is out of `topics` but still registered:
    // its name stays taken until a restart finishes the deletion.
    if topics.contains_key(name) || registry.get(name).is_some() {
        return Err(ErrorCode::TopicAlreadyExists);
    }
    match u32::try_from(partitions) {
        Ok(count) if (1..=PARTITIONS_MAX).contains(&count) => Ok(count),
        _ => Err(ErrorCode::InvalidPartitions),
    }
}

/// Copies a partition's ends into its gauges.
pub(crate) fn publish_ends(wal: &Wal, state: &PartitionState) {
    if let Ok(ends) = wal.ends(state.handle) {
        state
            .gauges
            .log_end
            .store(ends.log_end.0, Ordering::Relaxed);
        state
            .gauges
            .durable_end
            .store(ends.durable_end.0, Ordering::Relaxed);
        state
            .gauges
            .high_watermark
            .store(state.high_watermark(ends.durable_end).0, Ordering::Relaxed);
    }
    let fenced = matches!(wal.poisoned(state.handle), Ok(Some(_)));
    state.gauges.fenced.store(fenced, Ordering::Relaxed);
    let role = match &state.replica {
        Replica::Alone => 0,
        Replica::Leader(_) => 1,
        Replica::Follower(_) => 2,
    };
    state.gauges.role.store(role, Ordering::Relaxed);
    if let Replica::Leader(leader) = &state.replica {
        let now = crate::replica::time_of(std::time::Instant::now());
        let isr = leader.isr().len();
        state
            .gauges
            .isr_size
            .store(u64::try_from(isr).unwrap_or(u64::MAX), Ordering::Relaxed);
        let followers = leader
            .followers()
            .map(|(id, progress)| crate::metrics::FollowerGauge {
                node_id: id.0,
                lag_records: leader.log_end().0.saturating_sub(progress.fetch_offset.0),
                lag_ms: now.ms_since(progress.last_caught_up),
                durable_end: progress.durable_end.0,
                in_isr: progress.in_isr,
            })
            .collect();
        if let Ok(mut gauges) = state.gauges.followers.lock() {
            *gauges = followers;
        }
    }
}

/// Finishes the deletions a crash interrupted: a trash directory whose topic is still in the
/// registry means its deletion had not reached its commit point; it is completed now (the
/// partitions left behind moved, the topic removed). Then every trash directory is emptied.
fn finish_deletions(data_dir: &Path, registry: &mut Registry) -> Result<()> {
    let failed = |detail: String| Error::Topics {
        path: data_dir.join(trash::DIR_NAME),
        detail,
    };
    let pending = trash::pending(data_dir).map_err(|error| failed(error.to_string()))?;
    for topic_id in pending {
        let interrupted = registry
            .iter()
            .find(|(_, entry)| entry.topic_id == topic_id)
            .map(|(name, entry)| (name.clone(), entry.partitions));
        if let Some((name, count)) = interrupted {
            tracing::warn!(topic = %name, "finishing a topic deletion interrupted by a crash");
            let names: Vec<String> = (0..count).map(|p| partition_name(&name, p)).collect();
            trash::move_partitions(data_dir, &topic_id, &names)
                .map_err(|error| failed(error.to_string()))?;
            registry.remove(&name)?;
        }
        trash::remove(data_dir, &topic_id).map_err(|error| failed(error.to_string()))?;
    }
    Ok(())
}

fn open_partition(
    wal: &mut Wal,
    metrics: &Metrics,
    topic: &str,
    partition: u32,
) -> Result<PartitionState> {
    let name = partition_name(topic, partition);
    let handle = wal.open_partition(&name)?;
    let state = PartitionState {
        handle,
        gauges: metrics.add_partition(&name),
        replica: Replica::Alone,
    };
    publish_ends(wal, &state);
    Ok(state)
}
