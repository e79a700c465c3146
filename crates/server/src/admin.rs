//! Metadata, ListOffsets, CreateTopics and DeleteTopics.
//!
//! A single node is the only broker and the leader of every partition (epoch 0); in a static
//! cluster every node is a broker, the configured leader leads (and controls) every
//! replicated partition, and followers refuse CreateTopics and DeleteTopics with
//! NOT_CONTROLLER. ListOffsets by
//! timestamp is a linear scan of the partition's batches from the log start (one read per
//! 1 MiB window), returning the first batch whose max timestamp is at or after the target;
//! an index by time is future work (docs/server.md#apis).

use ringlog_kafka::messages::create_topics_request::CreatableTopic;
use ringlog_kafka::messages::create_topics_response::CreatableTopicResult;
use ringlog_kafka::messages::delete_topics_response::DeletableTopicResult;
use ringlog_kafka::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use ringlog_kafka::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use ringlog_kafka::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use ringlog_kafka::{ErrorCode, Response, StrBytes};
use ringlog_types::units::MIB;
use ringlog_types::Offset;
use ringlog_wal::PartitionHandle;

use std::collections::BTreeMap;
use std::time::Instant;

use crate::api::offset_i64;
use crate::forward::{AnswerTo, Body, SplitKind};
use crate::replica::Replica;
use crate::shard::Shard;
use crate::topics::TopicReplication;

/// ListOffsets timestamp for the log start.
const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets timestamp for the end (the high watermark).
const LATEST_TIMESTAMP: i64 = -1;
/// Bytes read per step of a timestamp scan.
#[allow(clippy::cast_possible_truncation)] // 1 MiB fits every usize.
const SCAN_WINDOW_BYTES: usize = MIB as usize;
/// The cluster id reported in Metadata.
const CLUSTER_ID: &str = "ringlog";

impl Shard {
    /// Serves a Metadata request: creates the missing topics it names first if
    /// auto-creation is on and the request allows it; with several shards, the answer waits
    /// until every shard has opened their partitions.
    pub(crate) fn serve_metadata(
        &mut self,
        to: AnswerTo,
        request: MetadataRequest,
        started: Instant,
    ) {
        let (failures, created) = self.auto_create(&request);
        if created.is_empty() || self.config.cores == 1 {
            let response = Response::Metadata(self.metadata(&request, &failures));
            self.reply_to(to, &response, started);
            return;
        }
        let bodies = created.into_iter().map(|body| (0, body)).collect();
        let kind = SplitKind::Metadata(request, failures);
        self.broadcast_admin(to, started, kind, bodies);
    }

    /// The topics a Metadata request names (`None`: a topic named by id, which is unknown).
    fn requested_topics(&self, request: &MetadataRequest) -> Vec<Option<TopicName>> {
        match &request.topics {
            None => self
                .partitions
                .topics()
                .map(|(name, _)| Some(topic_name(name)))
                .collect(),
            Some(topics) if topics.is_empty() && request.topics.is_some() => {
                // v0 writes "all topics" as an empty list; from v1 on that means none, and
                // the kafka crate decodes v0's empty list as `None` already.
                Vec::new()
            }
            Some(topics) => topics.iter().map(|topic| topic.name.clone()).collect(),
        }
    }

    /// Creates the topics a Metadata request names that do not exist, if auto-creation is on
    /// and the request allows it. Returns the codes of the creations that failed, and what
    /// the other shards must be told of those that succeeded.
    fn auto_create(
        &mut self,
        request: &MetadataRequest,
    ) -> (BTreeMap<String, ErrorCode>, Vec<Body>) {
        let mut failures = BTreeMap::new();
        let mut created = Vec::new();
        let follower = self
            .config
            .cluster
            .as_ref()
            .is_some_and(|cluster| !cluster.is_leader());
        if follower || !(self.config.auto_create_topics && request.allow_auto_topic_creation) {
            return (failures, created);
        }
        for name in self.requested_topics(request).into_iter().flatten() {
            if self.partitions.topic(&name).is_some() {
                continue;
            }
            let count = i64::from(self.config.partitions_default);
            let outcome = self
                .partitions
                .check_create(&name, count)
                .and_then(|count| {
                    let replication = self.default_replication();
                    let topic_id = self.partitions.create(
                        &mut self.wal,
                        &self.metrics,
                        &name,
                        count,
                        replication,
                        None,
                    )?;
                    Ok((count, topic_id))
                });
            match outcome {
                Ok((partitions, topic_id)) => created.push(Body::CreateTopic {
                    name: name.to_string(),
                    partitions,
                    topic_id,
                }),
                Err(code) => {
                    failures.insert(name.to_string(), code);
                }
            }
        }
        (failures, created)
    }

    /// The Metadata response; `failures` are the auto-creations that failed.
    pub(crate) fn metadata(
        &mut self,
        request: &MetadataRequest,
        failures: &BTreeMap<String, ErrorCode>,
    ) -> MetadataResponse {
        let brokers = self.brokers();
        let controller = self
            .config
            .cluster
            .as_ref()
            .map_or(0, |cluster| cluster.leader);
        let names = self.requested_topics(request);
        let mut topics = Vec::with_capacity(names.len());
        for name in names {
            let Some(name) = name else {
                let topic = MetadataResponseTopic::default()
                    .with_error_code(ErrorCode::UnknownTopicId.code());
                topics.push(topic);
                continue;
            };
            let failed = failures.get(name.as_str()).copied();
            topics.push(self.metadata_topic(&name, failed));
        }
        let cluster_id = self.config.cluster.as_ref().map_or_else(
            || StrBytes::from_static_str(CLUSTER_ID),
            |cluster| StrBytes::from_string(cluster.id.clone()),
        );
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(cluster_id))
            .with_controller_id(broker_id(controller))
            .with_topics(topics)
    }

    /// The brokers of Metadata: every node of the cluster, or this node alone.
    fn brokers(&self) -> Vec<MetadataResponseBroker> {
        let broker = |id: u32, address: std::net::SocketAddr| {
            MetadataResponseBroker::default()
                .with_node_id(broker_id(id))
                .with_host(StrBytes::from_string(address.ip().to_string()))
                .with_port(i32::from(address.port()))
        };
        match &self.config.cluster {
            Some(cluster) => cluster
                .nodes
                .iter()
                .map(|node| {
                    let address = if node.id == cluster.node_id {
                        self.config.advertised()
                    } else {
                        node.client
                    };
                    broker(node.id, address)
                })
                .collect(),
            None => vec![broker(0, self.config.advertised())],
        }
    }

    fn metadata_topic(
        &mut self,
        name: &TopicName,
        failed: Option<ErrorCode>,
    ) -> MetadataResponseTopic {
        let answer = MetadataResponseTopic::default().with_name(Some(name.clone()));
        if let Some(code) = failed {
            return answer.with_error_code(code.code());
        }
        let Some(topic) = self.partitions.topic(name) else {
            self.metrics.error(ErrorCode::UnknownTopicOrPartition);
            return answer.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
        };
        let leader_epoch = i32::try_from(self.config.leader_epoch().0).unwrap_or(i32::MAX);
        let topic_id = topic.topic_id;
        let count = topic.partition_count();
        let node_id = self.config.node_id();
        let replicas = self
            .partitions
            .entry(name)
            .and_then(|entry| entry.replication)
            .map_or_else(|| vec![node_id], |replication| replication.replicas);
        let leader = replicas.first().copied().unwrap_or(node_id);
        let partitions = (0..count)
            .map(|index| {
                let partition = i32::try_from(index).unwrap_or(i32::MAX);
                // The leader knows the ISR; a follower names every replica.
                let isr = match self.partitions.get(name, partition).map(|s| &s.replica) {
                    Some(Replica::Leader(core)) => core.isr().iter().map(|id| id.0).collect(),
                    _ => replicas.clone(),
                };
                MetadataResponsePartition::default()
                    .with_partition_index(partition)
                    .with_leader_id(broker_id(leader))
                    .with_leader_epoch(leader_epoch)
                    .with_replica_nodes(replicas.iter().copied().map(broker_id).collect())
                    .with_isr_nodes(isr.into_iter().map(broker_id).collect())
            })
            .collect();
        answer.with_topic_id(topic_id).with_partitions(partitions)
    }

    pub(crate) fn list_offsets(
        &mut self,
        request: &ListOffsetsRequest,
        version: i16,
    ) -> ListOffsetsResponse {
        // leader_epoch exists from v4 on; setting it for older versions fails the encode.
        let epoch = if version >= 4 {
            i32::try_from(self.config.leader_epoch().0).unwrap_or(i32::MAX)
        } else {
            -1
        };
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for partition in &topic.partitions {
                let index = partition.partition_index;
                let answer = ListOffsetsPartitionResponse::default().with_partition_index(index);
                let handle = self
                    .partitions
                    .get(&topic.name, index)
                    .map(|state| state.handle);
                let answer = match handle {
                    None => {
                        self.metrics.error(ErrorCode::UnknownTopicOrPartition);
                        answer.with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                    }
                    Some(handle) => {
                        let (offset, timestamp) = self.offset_for(handle, partition.timestamp);
                        answer
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(epoch)
                    }
                };
                partitions.push(answer);
            }
            topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        ListOffsetsResponse::default().with_topics(topics)
    }

    /// The offset (and its timestamp, -1 when not by time) for a ListOffsets timestamp.
    fn offset_for(&mut self, handle: PartitionHandle, timestamp: i64) -> (i64, i64) {
        let Ok(ends) = self.wal.ends(handle) else {
            return (-1, -1);
        };
        let visible = self.visible_end(handle, ends.durable_end);
        match timestamp {
            EARLIEST_TIMESTAMP => (offset_i64(ends.log_start), -1),
            LATEST_TIMESTAMP => (offset_i64(visible), -1),
            target if target >= 0 => self.scan_for_timestamp(handle, target),
            // Other sentinels (-3, max timestamp; -4, tiered storage) are answered as latest.
            _ => (offset_i64(visible), -1),
        }
    }

    /// The first batch whose max timestamp is at or after `target`: its base offset and
    /// max timestamp, or (-1, -1) if there is none.
    fn scan_for_timestamp(&mut self, handle: PartitionHandle, target: i64) -> (i64, i64) {
        let Ok(ends) = self.wal.ends(handle) else {
            return (-1, -1);
        };
        let mut offset = ends.log_start;
        let visible = self.visible_end(handle, ends.durable_end);
        while offset < visible {
            let Ok(read) = self
                .wal
                .read(handle, offset, SCAN_WINDOW_BYTES, Some(visible))
            else {
                return (-1, -1);
            };
            if read.next_offset <= offset {
                break;
            }
            for part in &read.parts {
                let mut rest = part.bytes();
                while let Ok(header) = ringlog_batch::BatchHeader::parse(rest) {
                    if header.max_timestamp >= target {
                        return (header.base_offset, header.max_timestamp);
                    }
                    let size = header.size_bytes().min(rest.len());
                    rest = &rest[size..];
                }
            }
            offset = read.next_offset;
        }
        (-1, -1)
    }

    /// Serves CreateTopics; with several shards, the answer waits until every shard has
    /// opened its partitions of the new topics.
    pub(crate) fn serve_create_topics(
        &mut self,
        to: AnswerTo,
        request: &CreateTopicsRequest,
        started: Instant,
    ) {
        let (response, created) = self.create_topics(request);
        if created.is_empty() || self.config.cores == 1 {
            self.reply_to(to, &Response::CreateTopics(response), started);
            return;
        }
        self.broadcast_admin(to, started, SplitKind::CreateTopics(response), created);
    }

    /// Creates the topics here; returns the response and, per created topic, its index in
    /// the response and what the other shards must be told.
    fn create_topics(
        &mut self,
        request: &CreateTopicsRequest,
    ) -> (CreateTopicsResponse, Vec<(usize, Body)>) {
        let mut results = Vec::with_capacity(request.topics.len());
        let mut created_topics = Vec::new();
        for (index, topic) in request.topics.iter().enumerate() {
            let count = match topic.num_partitions {
                -1 => i64::from(self.config.partitions_default),
                count => i64::from(count),
            };
            let mut result = CreatableTopicResult::default()
                .with_name(topic.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            let replication = self.topic_replication(topic);
            let checked = replication.and_then(|replication| {
                let count = self.partitions.check_create(&topic.name, count)?;
                Ok((count, replication))
            });
            let created = checked.and_then(|(count, replication)| {
                if request.validate_only {
                    return Ok(count);
                }
                let topic_id = self.partitions.create(
                    &mut self.wal,
                    &self.metrics,
                    &topic.name,
                    count,
                    replication,
                    None,
                )?;
                created_topics.push((
                    index,
                    Body::CreateTopic {
                        name: topic.name.to_string(),
                        partitions: count,
                        topic_id,
                    },
                ));
                Ok(count)
            });
            match created {
                Ok(count) => {
                    let count = i32::try_from(count).unwrap_or(i32::MAX);
                    let factor = self
                        .partitions
                        .entry(&topic.name)
                        .and_then(|entry| entry.replication)
                        .map_or(1, |replication| replication.replicas.len());
                    result = result
                        .with_num_partitions(count)
                        .with_replication_factor(i16::try_from(factor).unwrap_or(i16::MAX));
                    if let Some(state) = self.partitions.topic(&topic.name) {
                        result = result.with_topic_id(state.topic_id);
                    }
                }
                Err(code) => {
                    self.metrics.error(code);
                    result = result.with_error_code(code.code());
                }
            }
            results.push(result);
        }
        (
            CreateTopicsResponse::default().with_topics(results),
            created_topics,
        )
    }

    /// Serves DeleteTopics. Each topic is closed here; with one shard it is then removed
    /// from the registry at once; with several, every other shard closes its partitions
    /// first, and the topics are removed once all have answered.
    pub(crate) fn serve_delete_topics(
        &mut self,
        to: AnswerTo,
        request: &DeleteTopicsRequest,
        started: Instant,
    ) {
        let mut names: Vec<TopicName> = request.topic_names.clone();
        names.extend(request.topics.iter().filter_map(|topic| topic.name.clone()));
        let mut results = Vec::with_capacity(names.len());
        let mut topic_ids = Vec::with_capacity(names.len());
        let mut bodies = Vec::new();
        let follower = self
            .config
            .cluster
            .as_ref()
            .is_some_and(|cluster| !cluster.is_leader());
        for (index, name) in names.into_iter().enumerate() {
            let closed = if follower {
                Err(ErrorCode::NotController)
            } else {
                self.close_topic(&name)
            };
            let code = closed.as_ref().err().copied().unwrap_or(ErrorCode::None);
            if closed.is_ok() {
                bodies.push((
                    index,
                    Body::DeleteTopic {
                        name: name.to_string(),
                    },
                ));
            }
            topic_ids.push(closed.ok());
            results.push(
                DeletableTopicResult::default()
                    .with_name(Some(name))
                    .with_error_code(code.code()),
            );
        }
        let response = DeleteTopicsResponse::default().with_responses(results);
        let kind = SplitKind::DeleteTopics(response, topic_ids);
        if self.config.cores == 1 {
            self.broadcast_admin(to, started, kind, Vec::new());
        } else {
            self.broadcast_admin(to, started, kind, bodies);
        }
    }

    /// Settles this shard's produces of a topic and closes its partitions here; returns
    /// the topic id.
    fn close_topic(&mut self, name: &str) -> std::result::Result<String, ErrorCode> {
        self.settle_produces(name);
        let data_dir = self.config.data_dir.clone();
        self.partitions
            .close_topic(&mut self.wal, &self.metrics, &data_dir, name)
    }

    /// A DeleteTopic from another shard: the outcome of closing the topic here.
    pub(crate) fn close_topic_here(&mut self, name: &str) -> ErrorCode {
        self.close_topic(name).err().unwrap_or(ErrorCode::None)
    }

    /// Once every shard has closed the topics: removes from the registry each topic closed
    /// everywhere (the commit point) and fills in the final error codes.
    pub(crate) fn forget_deleted(
        &mut self,
        mut response: DeleteTopicsResponse,
        topic_ids: &[Option<String>],
    ) -> DeleteTopicsResponse {
        let data_dir = self.config.data_dir.clone();
        for (result, topic_id) in response.responses.iter_mut().zip(topic_ids) {
            let Some(topic_id) = topic_id else { continue };
            let Some(name) = result.name.clone() else {
                continue;
            };
            let code = if result.error_code == ErrorCode::None.code() {
                match self.partitions.forget(&data_dir, &name, topic_id) {
                    Ok(()) => ErrorCode::None,
                    Err(code) => code,
                }
            } else {
                tracing::error!(topic = %name.as_str(), "a shard could not close the topic; a restart finishes the deletion");
                ErrorCode::KafkaStorageError
            };
            result.error_code = code.code();
        }
        for result in &response.responses {
            if let Some(code) = ErrorCode::from_code(result.error_code) {
                self.metrics.error(code);
            }
        }
        response
    }

    /// Encodes `response` into the client's slot (`to` is always a client here).
    fn reply_to(&mut self, to: AnswerTo, response: &Response, started: Instant) {
        if let AnswerTo::Client {
            connection,
            sequence,
            header,
        } = to
        {
            self.reply(connection, sequence, &header, response, started);
        }
    }
}

impl Shard {
    /// Makes everything appended to the topic's partitions durable and answers the Produce
    /// requests waiting for it, so that none of them outlives the partition it waits on.
    /// Blocks on the ring: an admin path.
    fn settle_produces(&mut self, name: &str) {
        let handles: Vec<PartitionHandle> = match self.partitions.topic(name) {
            Some(topic) => topic
                .partitions
                .iter()
                .flatten()
                .map(|state| state.handle)
                .collect(),
            None => return,
        };
        for handle in handles {
            // A fenced partition answers its error at once; its produces get
            // KAFKA_STORAGE_ERROR below, as they would have anyway.
            let _ = self.wal.sync(handle);
        }
        self.on_durable();
        self.answer_produces();
    }
}

/// A broker id on the wire.
fn broker_id(id: u32) -> BrokerId {
    BrokerId(i32::try_from(id).unwrap_or(i32::MAX))
}

impl Shard {
    /// The replication of a topic created with the defaults (`None` on a single node).
    fn default_replication(&self) -> Option<TopicReplication> {
        let cluster = self.config.cluster.as_ref()?;
        let defaults = &self.config.replication;
        let count = u16::try_from(cluster.nodes.len()).unwrap_or(u16::MAX);
        let factor = defaults.replication_factor.unwrap_or(count).min(count);
        Some(TopicReplication::new(
            cluster.replicas(factor),
            &defaults.policy(),
        ))
    }

    /// The replication a CreateTopics entry asks for: its replication factor (-1: the
    /// default) and its configs over the node's defaults. Refused: a follower (not the
    /// controller), a factor outside `1..=nodes`, an unknown or bad config.
    fn topic_replication(
        &self,
        topic: &CreatableTopic,
    ) -> std::result::Result<Option<TopicReplication>, ErrorCode> {
        let Some(cluster) = &self.config.cluster else {
            if !matches!(topic.replication_factor, -1 | 1) {
                return Err(ErrorCode::InvalidReplicationFactor);
            }
            if !topic.configs.is_empty() {
                return Err(ErrorCode::InvalidConfig);
            }
            return Ok(None);
        };
        if !cluster.is_leader() {
            return Err(ErrorCode::NotController);
        }
        let nodes = cluster.nodes.len();
        let factor = match topic.replication_factor {
            -1 => {
                let count = u16::try_from(nodes).unwrap_or(u16::MAX);
                self.config.replication.replication_factor.unwrap_or(count)
            }
            factor => u16::try_from(factor).map_err(|_| ErrorCode::InvalidReplicationFactor)?,
        };
        if factor == 0 || usize::from(factor) > nodes {
            return Err(ErrorCode::InvalidReplicationFactor);
        }
        let mut policy = self.config.replication.policy();
        for config in &topic.configs {
            let value = config
                .value
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            apply_topic_config(&mut policy, &config.name, &value)?;
        }
        let replicas = cluster.replicas(factor);
        policy
            .validate(replicas.len())
            .map_err(|_| ErrorCode::InvalidConfig)?;
        self.config
            .replication
            .check_lag_max(policy.replica_lag_max_ms)
            .map_err(|_| ErrorCode::InvalidConfig)?;
        Ok(Some(TopicReplication::new(replicas, &policy)))
    }

    /// The first offset consumers may not read of partition `handle`.
    fn visible_end(&mut self, handle: PartitionHandle, durable_end: Offset) -> Offset {
        self.partitions
            .by_handle_mut(handle)
            .map_or(durable_end, |(_, _, state)| {
                state.high_watermark(durable_end)
            })
    }
}

/// Applies one CreateTopics config (docs/replication.md#topic-settings) to `policy`.
fn apply_topic_config(
    policy: &mut ringlog_replication::Policy,
    name: &str,
    value: &str,
) -> std::result::Result<(), ErrorCode> {
    let number = || value.parse::<u64>().map_err(|_| ErrorCode::InvalidConfig);
    let count = || value.parse::<usize>().map_err(|_| ErrorCode::InvalidConfig);
    match name {
        "ack_mode" | "ack.mode" => {
            policy.ack_mode =
                ringlog_replication::AckMode::parse(value).ok_or(ErrorCode::InvalidConfig)?;
        }
        "semi_sync_replicas" | "semi.sync.replicas" => policy.semi_sync_replicas = count()?,
        "semi_sync_timeout_ms" | "semi.sync.timeout.ms" => {
            policy.semi_sync_timeout_ms = number()?;
        }
        "semi_sync_degrade" | "semi.sync.degrade" => {
            policy.semi_sync_degrade = value.parse().map_err(|_| ErrorCode::InvalidConfig)?;
        }
        "min_insync_replicas" | "min.insync.replicas" => policy.min_insync_replicas = count()?,
        "replica_lag_max_ms" | "replica.lag.time.max.ms" => policy.replica_lag_max_ms = number()?,
        _ => return Err(ErrorCode::InvalidConfig),
    }
    Ok(())
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
