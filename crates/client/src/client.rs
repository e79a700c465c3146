//! The entry point: bootstrap connection, version negotiation, cluster metadata and the
//! admin calls. Producers and consumers are made from a [`Client`] and open their own
//! connections to the partition leaders its metadata names.
//!
//! Invariants: every connection negotiates its versions (ApiVersions) before any other
//! request; metadata is replaced as a whole on each refresh, never merged, so a deleted topic
//! disappears; admin calls go to the bootstrap connection and refresh the metadata after
//! they succeed.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateTopicsRequest, DeleteTopicsRequest, ListOffsetsRequest,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use ringlog_kafka::{ApiKey, ErrorCode};
use ringlog_types::units::MIB;

use crate::connection::{decode_response, Connection, ConnectionSettings};
use crate::error::{Error, Result};
use crate::versions::Versions;

/// Default limit on a response frame: 100 MiB, Kafka's `socket.request.max.bytes` default.
#[allow(clippy::cast_possible_truncation)] // 100 MiB fits the usize of every supported target.
pub const RESPONSE_SIZE_BYTES_MAX_DEFAULT: usize = (100 * MIB) as usize;

/// How a [`Client`] connects.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `client_id` of every request header (brokers log it).
    pub client_id: String,
    /// Limit on a TCP connect to one socket address.
    pub connect_timeout: Duration,
    /// Limit on waiting for a response once a request is out; a fetch adds its `max_wait`.
    pub request_timeout: Duration,
    /// Largest response frame accepted.
    pub response_size_bytes_max: usize,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            client_id: "ringlog-client".to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            response_size_bytes_max: RESPONSE_SIZE_BYTES_MAX_DEFAULT,
        }
    }
}

/// A broker as metadata names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker's node id.
    pub node_id: i32,
    /// Host clients connect to.
    pub host: String,
    /// Port clients connect to.
    pub port: i32,
}

impl BrokerInfo {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition as metadata names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Index of the partition in its topic.
    pub partition: i32,
    /// Node id of the leader, -1 if none.
    pub leader_id: i32,
    /// The leader's epoch, -1 if unknown.
    pub leader_epoch: i32,
    /// Error code of the partition entry (0 if none).
    pub error_code: i16,
}

/// One topic as metadata names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// Error code of the topic entry (0 if none).
    pub error_code: i16,
    /// The partitions, in index order.
    pub partitions: Vec<PartitionInfo>,
}

/// The cluster as the last Metadata answer described it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Brokers by node id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicInfo>,
}

impl ClusterMetadata {
    fn from_response(response: MetadataResponse) -> ClusterMetadata {
        let brokers = response
            .brokers
            .into_iter()
            .map(|broker| {
                let info = BrokerInfo {
                    node_id: broker.node_id.0,
                    host: broker.host.to_string(),
                    port: broker.port,
                };
                (info.node_id, info)
            })
            .collect();
        let mut topics = BTreeMap::new();
        for topic in response.topics {
            let Some(name) = topic.name else { continue };
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .into_iter()
                .map(|partition| PartitionInfo {
                    partition: partition.partition_index,
                    leader_id: partition.leader_id.0,
                    leader_epoch: partition.leader_epoch,
                    error_code: partition.error_code,
                })
                .collect();
            partitions.sort_by_key(|partition| partition.partition);
            let name = name.0.to_string();
            let info = TopicInfo {
                name: name.clone(),
                error_code: topic.error_code,
                partitions,
            };
            topics.insert(name, info);
        }
        ClusterMetadata { brokers, topics }
    }

    /// The broker leading `topic[partition]`, or [`Error::NoLeader`] (or the partition's
    /// own error) if the metadata names none.
    pub fn leader(&self, topic: &str, partition: i32) -> Result<&BrokerInfo> {
        let no_leader = || Error::NoLeader {
            topic: topic.to_owned(),
            partition,
        };
        let Some(info) = self.topics.get(topic) else {
            return Err(Error::broker(
                ErrorCode::UnknownTopicOrPartition.code(),
                topic,
                partition,
            ));
        };
        if info.error_code != 0 {
            return Err(Error::broker(info.error_code, topic, -1));
        }
        let Some(entry) = info
            .partitions
            .iter()
            .find(|entry| entry.partition == partition)
        else {
            return Err(Error::broker(
                ErrorCode::UnknownTopicOrPartition.code(),
                topic,
                partition,
            ));
        };
        if entry.error_code != 0 && entry.leader_id < 0 {
            return Err(Error::broker(entry.error_code, topic, partition));
        }
        self.brokers.get(&entry.leader_id).ok_or_else(no_leader)
    }
}

/// Which offset of a partition [`Client::list_offset`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start: the first offset still stored.
    Earliest,
    /// The log end: the offset the next record will get.
    Latest,
    /// The first offset whose record timestamp is at or after this time (ms since epoch).
    Timestamp(i64),
}

/// A connection to a cluster: metadata and admin calls, and the factory of producers and
/// consumers.
#[derive(Debug)]
pub struct Client {
    settings: ConnectionSettings,
    connection: Connection,
    versions: Versions,
    metadata: ClusterMetadata,
}

impl Client {
    /// Connects to the first reachable address of `bootstrap` (`HOST:PORT`, or several
    /// separated by commas), negotiates versions and reads the cluster's metadata.
    pub fn connect(bootstrap: &str, options: ClientOptions) -> Result<Client> {
        let settings = ConnectionSettings {
            client_id: options.client_id,
            connect_timeout: options.connect_timeout,
            request_timeout: options.request_timeout,
            response_size_bytes_max: options.response_size_bytes_max,
        };
        let mut last_error = Error::Resolve {
            address: bootstrap.to_owned(),
        };
        for address in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            match open_negotiated(address, &settings) {
                Ok((connection, versions)) => {
                    let mut client = Client {
                        settings,
                        connection,
                        versions,
                        metadata: ClusterMetadata::default(),
                    };
                    client.refresh_metadata()?;
                    return Ok(client);
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    /// The versions negotiated with the bootstrap broker.
    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    /// The metadata of the last refresh.
    pub fn metadata(&self) -> &ClusterMetadata {
        &self.metadata
    }

    /// Reads the metadata of every topic again.
    pub fn refresh_metadata(&mut self) -> Result<&ClusterMetadata> {
        let version = self.versions.get(ApiKey::Metadata);
        let mut request = MetadataRequest::default();
        // Null (from v1) means every topic.
        request.topics = None;
        request.allow_auto_topic_creation = false;
        let response = self.connection.call(&request, version)?;
        self.metadata = ClusterMetadata::from_response(response);
        Ok(&self.metadata)
    }

    /// The broker leading `topic[partition]`, refreshing the metadata once if it names none.
    pub fn leader(&mut self, topic: &str, partition: i32) -> Result<BrokerInfo> {
        if let Ok(broker) = self.metadata.leader(topic, partition) {
            return Ok(broker.clone());
        }
        self.refresh_metadata()?;
        self.metadata.leader(topic, partition).cloned()
    }

    /// Every topic, from fresh metadata, in name order.
    pub fn list_topics(&mut self) -> Result<Vec<TopicInfo>> {
        let metadata = self.refresh_metadata()?;
        Ok(metadata.topics.values().cloned().collect())
    }

    /// Creates `name` with `partitions` partitions and the broker's default replication
    /// factor (-1, from CreateTopics v4; 1 before that).
    pub fn create_topic(&mut self, name: &str, partitions: i32) -> Result<()> {
        self.create_topic_with(name, partitions, -1, &[])
    }

    /// Creates `name` with `partitions` partitions, `replication_factor` replicas (-1: the
    /// broker's default) and topic configs (name, value), e.g. `("ack_mode", "quorum")`.
    pub fn create_topic_with(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(String, String)],
    ) -> Result<()> {
        let version = self.versions.get(ApiKey::CreateTopics);
        let mut topic = CreatableTopic::default();
        topic.name = topic_name(name);
        topic.num_partitions = partitions;
        topic.replication_factor = match replication_factor {
            -1 if version < 4 => 1,
            factor => factor,
        };
        topic.configs = configs
            .iter()
            .map(|(key, value)| {
                let mut config =
                    kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default(
                    );
                config.name = kafka_protocol::protocol::StrBytes::from_string(key.clone());
                config.value = Some(kafka_protocol::protocol::StrBytes::from_string(
                    value.clone(),
                ));
                config
            })
            .collect();
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![topic];
        request.timeout_ms = timeout_ms(self.settings.request_timeout);
        let response = self.connection.call(&request, version)?;
        for result in &response.topics {
            if result.error_code != 0 {
                return Err(Error::broker(result.error_code, name, -1));
            }
        }
        self.refresh_metadata()?;
        Ok(())
    }

    /// Deletes topic `name` and every record in it.
    pub fn delete_topic(&mut self, name: &str) -> Result<()> {
        let version = self.versions.get(ApiKey::DeleteTopics);
        let mut request = DeleteTopicsRequest::default();
        if version >= 6 {
            let mut state = DeleteTopicState::default();
            state.name = Some(topic_name(name));
            request.topics = vec![state];
        } else {
            request.topic_names = vec![topic_name(name)];
        }
        request.timeout_ms = timeout_ms(self.settings.request_timeout);
        let response = self.connection.call(&request, version)?;
        for result in &response.responses {
            if result.error_code != 0 {
                return Err(Error::broker(result.error_code, name, -1));
            }
        }
        self.refresh_metadata()?;
        Ok(())
    }

    /// The offset `spec` designates in `topic[partition]`, asked of the partition's leader.
    pub fn list_offset(&mut self, topic: &str, partition: i32, spec: OffsetSpec) -> Result<i64> {
        let leader = self.leader(topic, partition)?;
        let (mut connection, versions) = open_negotiated(&leader.address(), &self.settings)?;
        list_offset_on(&mut connection, &versions, topic, partition, spec)
    }

    /// Opens a negotiated connection to `broker` (producers and consumers own theirs).
    pub(crate) fn open_broker(&self, broker: &BrokerInfo) -> Result<(Connection, Versions)> {
        open_negotiated(&broker.address(), &self.settings)
    }

    /// What connections are opened with.
    pub(crate) fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }
}

/// Asks `connection`'s broker for the offset `spec` designates.
pub(crate) fn list_offset_on(
    connection: &mut Connection,
    versions: &Versions,
    topic: &str,
    partition: i32,
    spec: OffsetSpec,
) -> Result<i64> {
    let version = versions.get(ApiKey::ListOffsets);
    let mut entry = ListOffsetsPartition::default();
    entry.partition_index = partition;
    entry.current_leader_epoch = -1;
    entry.timestamp = match spec {
        OffsetSpec::Earliest => -2,
        OffsetSpec::Latest => -1,
        OffsetSpec::Timestamp(timestamp_ms) => timestamp_ms,
    };
    let mut request_topic = ListOffsetsTopic::default();
    request_topic.name = topic_name(topic);
    request_topic.partitions = vec![entry];
    let mut request = ListOffsetsRequest::default();
    request.replica_id = kafka_protocol::messages::BrokerId(-1);
    request.topics = vec![request_topic];
    let response = connection.call(&request, version)?;
    let answer = response
        .topics
        .iter()
        .filter(|answered| answered.name.0.as_str() == topic)
        .flat_map(|answered| answered.partitions.iter())
        .find(|answered| answered.partition_index == partition);
    let Some(answer) = answer else {
        return Err(Error::Protocol {
            api: ApiKey::ListOffsets,
            version,
            detail: format!("no answer for {topic}[{partition}]"),
        });
    };
    if answer.error_code != 0 {
        return Err(Error::broker(answer.error_code, topic, partition));
    }
    Ok(answer.offset)
}

/// Opens a connection to `address` and negotiates its versions.
pub(crate) fn open_negotiated(
    address: &str,
    settings: &ConnectionSettings,
) -> Result<(Connection, Versions)> {
    let mut connection = Connection::open(address, settings)?;
    let versions = negotiate(&mut connection)?;
    Ok((connection, versions))
}

/// ApiVersions at the highest version this client knows. A broker that does not know it
/// answers in v0 with UNSUPPORTED_VERSION and its own ranges (KIP-511); the client then asks
/// again at the highest ApiVersions version the broker listed.
fn negotiate(connection: &mut Connection) -> Result<Versions> {
    let (_, _, mut version) = crate::versions::CLIENT_VERSIONS
        .iter()
        .copied()
        .find(|entry| entry.0 == ApiKey::ApiVersions)
        .unwrap_or((ApiKey::ApiVersions, 0, 0));
    let mut request = ApiVersionsRequest::default();
    request.client_software_name = StrBytes::from_static_str("ringlog-client");
    request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
    // One retry at most: the second answer comes at a version the broker listed.
    for _attempt in 0..2 {
        let correlation_id = connection.writer.send(&request, version)?;
        let frame = connection.reader.read_frame()?;
        let decoded = decode_response::<ApiVersionsRequest>(frame.clone(), correlation_id, version);
        let response = match decoded {
            Ok(response) => response,
            Err(error) => match decode_response::<ApiVersionsRequest>(frame, correlation_id, 0) {
                Ok(response) if response.error_code != 0 => response,
                _ => return Err(error),
            },
        };
        if response.error_code == ErrorCode::UnsupportedVersion.code() {
            let broker_max = response
                .api_keys
                .iter()
                .find(|entry| entry.api_key == ApiKey::ApiVersions.code())
                .map_or(0, |entry| entry.max_version);
            version = version.min(broker_max);
            continue;
        }
        if response.error_code != 0 {
            return Err(Error::request(ApiKey::ApiVersions, response.error_code));
        }
        return Versions::negotiate(&response);
    }
    Err(Error::request(
        ApiKey::ApiVersions,
        ErrorCode::UnsupportedVersion.code(),
    ))
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// A duration as the `timeout_ms` of a request, saturating at `i32::MAX`.
pub(crate) fn timeout_ms(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}
