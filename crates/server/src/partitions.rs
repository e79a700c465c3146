//! The topics and partitions a shard serves: the durable registry (`crate::topics`) joined
//! with the open partition logs and their metric gauges.
//!
//! Invariants: every topic of the registry has all its partitions open (opening happens at
//! start and at creation; a failure to open fails the start, or the creation); partition `p`
//! of topic `t` is the WAL partition `<t>-<p>`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ringlog_kafka::ErrorCode;
use ringlog_wal::{PartitionHandle, Wal};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::{Metrics, PartitionGauges};
use crate::topics::{parse_topic_id, partition_name, valid_name, Registry, PARTITIONS_MAX};
use crate::trash;

/// An open partition.
pub(crate) struct PartitionState {
    pub handle: PartitionHandle,
    pub gauges: Arc<PartitionGauges>,
}

/// A topic with its open partitions.
pub(crate) struct TopicState {
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<PartitionState>,
}

/// Every topic of the node.
pub(crate) struct Partitions {
    registry: Registry,
    topics: BTreeMap<String, TopicState>,
}

impl Partitions {
    /// Loads the registry and opens every partition it lists (recovering each log).
    pub fn open(config: &Config, wal: &mut Wal, metrics: &Metrics) -> Result<Partitions> {
        let mut registry = Registry::load(&config.data_dir)?;
        finish_deletions(&config.data_dir, &mut registry)?;
        let mut topics = BTreeMap::new();
        for (name, entry) in registry.iter() {
            let mut partitions = Vec::new();
            for partition in 0..entry.partitions {
                partitions.push(open_partition(wal, metrics, name, partition)?);
            }
            let topic_id = parse_topic_id(&entry.topic_id);
            topics.insert(
                name.clone(),
                TopicState {
                    topic_id,
                    partitions,
                },
            );
        }
        Ok(Partitions { registry, topics })
    }

    /// The topic `name`.
    pub fn topic(&self, name: &str) -> Option<&TopicState> {
        self.topics.get(name)
    }

    /// Every topic, by name.
    pub fn topics(&self) -> impl Iterator<Item = (&String, &TopicState)> {
        self.topics.iter()
    }

    /// Partition `partition` of topic `name`.
    pub fn get(&self, name: &str, partition: i32) -> Option<&PartitionState> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(name)?.partitions.get(index)
    }

    /// Checks a creation request: the error code Kafka would answer, if any.
    pub fn check_create(&self, name: &str, partitions: i64) -> std::result::Result<u32, ErrorCode> {
        if !valid_name(name) {
            return Err(ErrorCode::InvalidTopicException);
        }
        // A topic whose deletion failed half way is out of `topics` but still registered:
        // its name stays taken until a restart finishes the deletion.
        if self.topics.contains_key(name) || self.registry.get(name).is_some() {
            return Err(ErrorCode::TopicAlreadyExists);
        }
        match u32::try_from(partitions) {
            Ok(count) if (1..=PARTITIONS_MAX).contains(&count) => Ok(count),
            _ => Err(ErrorCode::InvalidPartitions),
        }
    }

    /// Creates a topic: stores it in the registry, then opens its partitions.
    pub fn create(
        &mut self,
        wal: &mut Wal,
        metrics: &Metrics,
        name: &str,
        partitions: u32,
    ) -> std::result::Result<(), ErrorCode> {
        let entry = self.registry.insert(name, partitions).map_err(|error| {
            tracing::error!(topic = name, %error, "cannot store the new topic");
            ErrorCode::KafkaStorageError
        })?;
        let mut opened = Vec::new();
        for partition in 0..partitions {
            match open_partition(wal, metrics, name, partition) {
                Ok(state) => opened.push(state),
                Err(error) => {
                    tracing::error!(topic = name, partition, %error, "cannot open partition");
                    return Err(ErrorCode::KafkaStorageError);
                }
            }
        }
        let topic_id = parse_topic_id(&entry.topic_id);
        tracing::info!(topic = name, partitions, "topic created");
        self.topics.insert(
            name.to_string(),
            TopicState {
                topic_id,
                partitions: opened,
            },
        );
        Ok(())
    }

    /// Deletes a topic: closes its partitions (each flushed first), moves their directories
    /// into the trash durably, removes the topic from the registry (the commit point), then
    /// empties the trash (`crate::trash` explains why this order survives a crash).
    pub fn delete(
        &mut self,
        wal: &mut Wal,
        metrics: &Metrics,
        data_dir: &Path,
        name: &str,
    ) -> std::result::Result<(), ErrorCode> {
        let Some(topic) = self.topics.remove(name) else {
            return Err(ErrorCode::UnknownTopicOrPartition);
        };
        let entry = self
            .registry
            .get(name)
            .cloned()
            .expect("every open topic is in the registry");
        let mut names = Vec::with_capacity(topic.partitions.len());
        for (partition, state) in (0u32..).zip(&topic.partitions) {
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
        let stored = trash::move_partitions(data_dir, &entry.topic_id, &names)
            .map_err(|error| error.to_string())
            .and_then(|()| {
                self.registry
                    .remove(name)
                    .map_err(|error| error.to_string())
            });
        if let Err(error) = stored {
            tracing::error!(topic = name, %error, "cannot delete the topic; a restart finishes it");
            return Err(ErrorCode::KafkaStorageError);
        }
        if let Err(error) = trash::remove(data_dir, &entry.topic_id) {
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
            .flat_map(|topic| topic.partitions.iter())
            .find(|state| state.handle == handle)
        else {
            return;
        };
        publish_ends(wal, state);
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
            .store(ends.durable_end.0, Ordering::Relaxed);
    }
    let fenced = matches!(wal.poisoned(state.handle), Ok(Some(_)));
    state.gauges.fenced.store(fenced, Ordering::Relaxed);
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
    };
    publish_ends(wal, &state);
    Ok(state)
}
