//! Kafka's error codes, the subset ringlog returns or a client of ringlog must understand.
//!
//! Invariants: each variant's discriminant is Kafka's wire value (an `i16`), listed in
//! Kafka's protocol guide under "Error Codes"; [`ErrorCode::from_code`] and
//! [`ErrorCode::code`] are inverse on every variant; a code this enum does not name decodes to
//! `None`, never to a guess.

/// A Kafka error code. The discriminant is the value sent on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i16)]
#[non_exhaustive]
pub enum ErrorCode {
    /// UNKNOWN_SERVER_ERROR: the server hit a condition it has no better code for.
    UnknownServerError = -1,
    /// NONE: success.
    None = 0,
    /// OFFSET_OUT_OF_RANGE: a fetch or list-offsets asked for an offset outside
    /// `[log_start, log_end]`.
    OffsetOutOfRange = 1,
    /// CORRUPT_MESSAGE: a produced batch failed validation (header, length or CRC32C).
    CorruptMessage = 2,
    /// UNKNOWN_TOPIC_OR_PARTITION: no such topic or partition on this node.
    UnknownTopicOrPartition = 3,
    /// INVALID_FETCH_SIZE: a fetch asked for a negative or zero size.
    InvalidFetchSize = 4,
    /// LEADER_NOT_AVAILABLE: the partition has no leader right now (election in progress).
    LeaderNotAvailable = 5,
    /// NOT_LEADER_OR_FOLLOWER: this node is not the leader (produce) or not a replica.
    NotLeaderOrFollower = 6,
    /// REQUEST_TIMED_OUT: the ack mode was not satisfied within the request's timeout.
    RequestTimedOut = 7,
    /// MESSAGE_TOO_LARGE: a batch is larger than the partition accepts.
    MessageTooLarge = 10,
    /// COORDINATOR_NOT_AVAILABLE: no group or transaction coordinator is available; ringlog
    /// has none yet, so FindCoordinator answers it for every key.
    CoordinatorNotAvailable = 15,
    /// INVALID_TOPIC_EXCEPTION: the topic name is not a legal name.
    InvalidTopicException = 17,
    /// RECORD_LIST_TOO_LARGE: the records of one partition exceed the segment size.
    RecordListTooLarge = 18,
    /// NOT_ENOUGH_REPLICAS: too few in-sync replicas to accept the write at all.
    NotEnoughReplicas = 19,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND: written on the leader, but too few replicas
    /// acknowledged it in time.
    NotEnoughReplicasAfterAppend = 20,
    /// INVALID_REQUIRED_ACKS: `acks` is not -1, 0 or 1.
    InvalidRequiredAcks = 21,
    /// UNSUPPORTED_VERSION: the API version is not served (see `crate::api`).
    UnsupportedVersion = 35,
    /// TOPIC_ALREADY_EXISTS: a create-topics for an existing topic.
    TopicAlreadyExists = 36,
    /// INVALID_PARTITIONS: a partition count below 1 or above the limit.
    InvalidPartitions = 37,
    /// INVALID_REPLICATION_FACTOR: a replication factor below 1 or above the node count.
    InvalidReplicationFactor = 38,
    /// INVALID_REPLICA_ASSIGNMENT: a manual replica assignment that cannot be honoured.
    InvalidReplicaAssignment = 39,
    /// INVALID_CONFIG: a topic config name or value ringlog does not accept.
    InvalidConfig = 40,
    /// NOT_CONTROLLER: an admin request sent to a node that is not the controller (in a
    /// static cluster, the leader).
    NotController = 41,
    /// INVALID_REQUEST: the request is well formed but breaks a protocol rule.
    InvalidRequest = 42,
    /// KAFKA_STORAGE_ERROR: the partition's storage failed (fenced after an I/O error).
    KafkaStorageError = 56,
    /// FENCED_LEADER_EPOCH: the request carries an epoch older than the leader's.
    FencedLeaderEpoch = 74,
    /// UNKNOWN_LEADER_EPOCH: the request carries an epoch newer than the leader's.
    UnknownLeaderEpoch = 75,
    /// OFFSET_NOT_AVAILABLE: the leader cannot answer a list-offsets yet (new leader whose
    /// high watermark is not established).
    OffsetNotAvailable = 78,
    /// UNKNOWN_TOPIC_ID: no topic has this id.
    UnknownTopicId = 100,
}

impl ErrorCode {
    /// Every variant once, in wire-value order (tests and tools iterate it). A new variant
    /// goes here too; `name` and `is_retriable` match exhaustively, so it cannot be forgotten
    /// there.
    pub const ALL: [ErrorCode; 29] = [
        ErrorCode::UnknownServerError,
        ErrorCode::None,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::CorruptMessage,
        ErrorCode::UnknownTopicOrPartition,
        ErrorCode::InvalidFetchSize,
        ErrorCode::LeaderNotAvailable,
        ErrorCode::NotLeaderOrFollower,
        ErrorCode::RequestTimedOut,
        ErrorCode::MessageTooLarge,
        ErrorCode::CoordinatorNotAvailable,
        ErrorCode::InvalidTopicException,
        ErrorCode::RecordListTooLarge,
        ErrorCode::NotEnoughReplicas,
        ErrorCode::NotEnoughReplicasAfterAppend,
        ErrorCode::InvalidRequiredAcks,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TopicAlreadyExists,
        ErrorCode::InvalidPartitions,
        ErrorCode::InvalidReplicationFactor,
        ErrorCode::InvalidReplicaAssignment,
        ErrorCode::InvalidConfig,
        ErrorCode::NotController,
        ErrorCode::InvalidRequest,
        ErrorCode::KafkaStorageError,
        ErrorCode::FencedLeaderEpoch,
        ErrorCode::UnknownLeaderEpoch,
        ErrorCode::OffsetNotAvailable,
        ErrorCode::UnknownTopicId,
    ];

    /// The value sent on the wire.
    pub fn code(self) -> i16 {
        self as i16
    }

    /// The variant for a wire value, or `None` for a code this enum does not name.
    pub fn from_code(code: i16) -> Option<ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|error_code| error_code.code() == code)
    }

    /// Kafka's name for the code, as its protocol guide and client logs spell it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::UnknownServerError => "UNKNOWN_SERVER_ERROR",
            ErrorCode::None => "NONE",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::CorruptMessage => "CORRUPT_MESSAGE",
            ErrorCode::UnknownTopicOrPartition => "UNKNOWN_TOPIC_OR_PARTITION",
            ErrorCode::InvalidFetchSize => "INVALID_FETCH_SIZE",
            ErrorCode::LeaderNotAvailable => "LEADER_NOT_AVAILABLE",
            ErrorCode::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            ErrorCode::RequestTimedOut => "REQUEST_TIMED_OUT",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::CoordinatorNotAvailable => "COORDINATOR_NOT_AVAILABLE",
            ErrorCode::InvalidTopicException => "INVALID_TOPIC_EXCEPTION",
            ErrorCode::RecordListTooLarge => "RECORD_LIST_TOO_LARGE",
            ErrorCode::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            ErrorCode::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            ErrorCode::InvalidRequiredAcks => "INVALID_REQUIRED_ACKS",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::TopicAlreadyExists => "TOPIC_ALREADY_EXISTS",
            ErrorCode::InvalidPartitions => "INVALID_PARTITIONS",
            ErrorCode::InvalidReplicationFactor => "INVALID_REPLICATION_FACTOR",
            ErrorCode::InvalidReplicaAssignment => "INVALID_REPLICA_ASSIGNMENT",
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::NotController => "NOT_CONTROLLER",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::KafkaStorageError => "KAFKA_STORAGE_ERROR",
            ErrorCode::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            ErrorCode::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            ErrorCode::OffsetNotAvailable => "OFFSET_NOT_AVAILABLE",
            ErrorCode::UnknownTopicId => "UNKNOWN_TOPIC_ID",
        }
    }

    /// Whether Kafka's clients retry a request that failed with this code (after refreshing
    /// metadata where the code says the leader moved). Mirrors Kafka's `RetriableException`
    /// subclasses for the codes named here.
    pub fn is_retriable(self) -> bool {
        match self {
            ErrorCode::CorruptMessage
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::LeaderNotAvailable
            | ErrorCode::NotLeaderOrFollower
            | ErrorCode::RequestTimedOut
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::NotEnoughReplicas
            | ErrorCode::NotEnoughReplicasAfterAppend
            | ErrorCode::KafkaStorageError
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::UnknownLeaderEpoch
            | ErrorCode::OffsetNotAvailable
            | ErrorCode::UnknownTopicId
            | ErrorCode::NotController => true,
            ErrorCode::UnknownServerError
            | ErrorCode::None
            | ErrorCode::OffsetOutOfRange
            | ErrorCode::InvalidFetchSize
            | ErrorCode::MessageTooLarge
            | ErrorCode::InvalidTopicException
            | ErrorCode::RecordListTooLarge
            | ErrorCode::InvalidRequiredAcks
            | ErrorCode::UnsupportedVersion
            | ErrorCode::TopicAlreadyExists
            | ErrorCode::InvalidPartitions
            | ErrorCode::InvalidReplicationFactor
            | ErrorCode::InvalidReplicaAssignment
            | ErrorCode::InvalidConfig
            | ErrorCode::InvalidRequest => false,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} ({})", self.name(), self.code())
    }
}

/// Every way a produced batch can fail `ringlog_batch::validate` is CORRUPT_MESSAGE, which is
/// what Kafka answers for a bad CRC or header (DESIGN.md section 2). The mapping takes no
/// variant apart because the batch crate's error is `#[non_exhaustive]` and a client acts on
/// all of them alike: the batch is dropped and the producer sees a retriable error.
impl From<&ringlog_batch::Error> for ErrorCode {
    fn from(_error: &ringlog_batch::Error) -> ErrorCode {
        ErrorCode::CorruptMessage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Checks that `ALL` lists no variant twice, in wire-value order, and that `from_code`
    // inverts `code` for every one of them, so a client decoding an error code from the wire
    // gets back the variant the server sent.
    #[test]
    fn codes_round_trip_and_are_unique() {
        let codes: Vec<i16> = ErrorCode::ALL.iter().map(|code| code.code()).collect();
        assert!(codes.windows(2).all(|pair| pair[0] < pair[1]), "{codes:?}");
        for error_code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(error_code.code()), Some(error_code));
        }
        assert_eq!(ErrorCode::from_code(9), None);
        assert_eq!(ErrorCode::from_code(i16::MIN), None);
    }

    // Checks the wire values that DESIGN.md section 6 and the server rely on, against the
    // numbers in Kafka's protocol guide.
    #[test]
    fn wire_values_match_kafka() {
        let expected = [
            (ErrorCode::None, 0),
            (ErrorCode::OffsetOutOfRange, 1),
            (ErrorCode::CorruptMessage, 2),
            (ErrorCode::UnknownTopicOrPartition, 3),
            (ErrorCode::LeaderNotAvailable, 5),
            (ErrorCode::NotLeaderOrFollower, 6),
            (ErrorCode::RequestTimedOut, 7),
            (ErrorCode::MessageTooLarge, 10),
            (ErrorCode::CoordinatorNotAvailable, 15),
            (ErrorCode::InvalidTopicException, 17),
            (ErrorCode::RecordListTooLarge, 18),
            (ErrorCode::NotEnoughReplicas, 19),
            (ErrorCode::NotEnoughReplicasAfterAppend, 20),
            (ErrorCode::InvalidRequiredAcks, 21),
            (ErrorCode::UnsupportedVersion, 35),
            (ErrorCode::TopicAlreadyExists, 36),
            (ErrorCode::InvalidPartitions, 37),
            (ErrorCode::InvalidReplicationFactor, 38),
            (ErrorCode::InvalidRequest, 42),
            (ErrorCode::KafkaStorageError, 56),
            (ErrorCode::FencedLeaderEpoch, 74),
            (ErrorCode::UnknownLeaderEpoch, 75),
        ];
        for (error_code, value) in expected {
            assert_eq!(error_code.code(), value, "{error_code}");
        }
    }

    // Checks that every batch validation failure maps to CORRUPT_MESSAGE, using a real
    // failure (a flipped payload byte breaks the CRC32C) rather than a hand-built variant.
    #[test]
    fn batch_errors_are_corrupt_message() {
        let mut builder = ringlog_batch::BatchBuilder::new(0);
        builder.push(0, None, Some(b"value"), &[]);
        let mut batch = builder.build();
        let last = batch.len() - 1;
        batch[last] ^= 0xff;
        let error = ringlog_batch::validate(&batch).expect_err("CRC must fail");
        assert_eq!(ErrorCode::from(&error), ErrorCode::CorruptMessage);
        let error = ringlog_batch::validate(&batch[..10]).expect_err("truncated");
        assert_eq!(ErrorCode::from(&error), ErrorCode::CorruptMessage);
    }
}
