//! The APIs ringlog serves, their version ranges, and the header-version rules that follow
//! from them (DESIGN.md section 6, docs/kafka-protocol.md).
//!
//! Invariants:
//!
//! - [`SUPPORTED`] is the single table of advertised ranges: the ApiVersions response is built
//!   from it and [`version_support`] dispatches on it, so the two cannot disagree.
//! - Every advertised range is contiguous, and every version in it is either served or, for
//!   Produce v0-2 only, refused with UNSUPPORTED_VERSION ([`PRODUCE_VERSION_SERVED_MIN`]).
//! - A version is flexible (compact strings, tagged fields, request header v2) exactly when it
//!   is at or above [`ApiKey::flexible_version_min`]; the values are Kafka's `flexibleVersions`.
//! - ApiVersions responses always use response header v0, whatever the version (KIP-511), so
//!   a client that sent a version we do not know can still read the answer.

/// An API that ringlog serves. The discriminant is Kafka's api_key on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i16)]
pub enum ApiKey {
    /// Append batches to partitions.
    Produce = 0,
    /// Read batches from partitions.
    Fetch = 1,
    /// Find the offset for a timestamp, or the log start / end.
    ListOffsets = 2,
    /// Topics, partitions, leaders and the nodes that serve them.
    Metadata = 3,
    /// Where a group's or a transaction's coordinator is. ringlog has none yet, so every key
    /// is answered COORDINATOR_NOT_AVAILABLE; the API is served because librdkafka reads its
    /// presence as a sign of Kafka 0.8.2+ and compresses with lz4 only then.
    FindCoordinator = 10,
    /// Which APIs and versions this node serves (the first request of every client).
    ApiVersions = 18,
    /// Create topics.
    CreateTopics = 19,
    /// Delete topics.
    DeleteTopics = 20,
}

/// Advertised `(api, min_version, max_version)` ranges, inclusive, in api_key order.
///
/// Produce is advertised from v0 although only v3 and later are served: Kafka 4 does the
/// same because librdkafka refuses to compress when the advertised minimum is above 0
/// (KAFKA-18659). Produce v0-2 requests are decoded and answered with UNSUPPORTED_VERSION
/// for every partition ([`crate::Refusal::Produce`]). CreateTopics starts at v2 and
/// DeleteTopics at v1, the minimums Kafka 4 kept (KIP-896); librdkafka and kafka-python
/// negotiate the highest common version, which is inside these ranges. FindCoordinator
/// is advertised from v0 for the same librdkafka reason: its LZ4 feature requires
/// FindCoordinator v0 in the range (every version is answered COORDINATOR_NOT_AVAILABLE).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
];

/// The first Produce version that is served; older advertised versions are refused.
pub const PRODUCE_VERSION_SERVED_MIN: i16 = 3;

/// What dispatch does with one `(api, version)` pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSupport {
    /// Inside the advertised range and served.
    Served,
    /// Answered with UNSUPPORTED_VERSION instead of served: Produce v0-2 (advertised, never
    /// served) and ApiVersions above its range (KIP-511: answered in v0 so the client can
    /// retry with a version from the list).
    Refused,
    /// Outside the advertised range of an API that has no defined answer for it. Kafka closes
    /// the connection in this case, and so should the server.
    Unsupported,
}

impl ApiKey {
    /// Every API, in api_key order.
    pub const ALL: [ApiKey; 8] = [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::FindCoordinator,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
    ];

    /// The api_key on the wire.
    pub fn code(self) -> i16 {
        self as i16
    }

    /// The API for a wire api_key, or `None` for an API ringlog does not serve.
    pub fn from_code(code: i16) -> Option<ApiKey> {
        ApiKey::ALL
            .iter()
            .copied()
            .find(|api_key| api_key.code() == code)
    }

    /// Kafka's name for the API.
    pub fn name(self) -> &'static str {
        match self {
            ApiKey::Produce => "Produce",
            ApiKey::Fetch => "Fetch",
            ApiKey::ListOffsets => "ListOffsets",
            ApiKey::Metadata => "Metadata",
            ApiKey::FindCoordinator => "FindCoordinator",
            ApiKey::ApiVersions => "ApiVersions",
            ApiKey::CreateTopics => "CreateTopics",
            ApiKey::DeleteTopics => "DeleteTopics",
        }
    }

    /// The advertised `(min, max)` versions, from [`SUPPORTED`].
    pub fn version_range(self) -> (i16, i16) {
        let mut range = (0, -1);
        for &(api_key, version_min, version_max) in SUPPORTED {
            if api_key == self {
                range = (version_min, version_max);
            }
        }
        assert!(range.0 <= range.1, "{self:?} is missing from SUPPORTED");
        range
    }

    /// The first flexible version (Kafka's `flexibleVersions`): from it on, strings, bytes and
    /// arrays are compact and every struct ends in tagged fields.
    pub fn flexible_version_min(self) -> i16 {
        match self {
            ApiKey::Produce => 9,
            ApiKey::Fetch => 12,
            ApiKey::ListOffsets => 6,
            ApiKey::Metadata => 9,
            ApiKey::FindCoordinator => 3,
            ApiKey::ApiVersions => 3,
            ApiKey::CreateTopics => 5,
            ApiKey::DeleteTopics => 4,
        }
    }

    /// Whether `version` uses the flexible encoding.
    pub fn is_flexible(self, version: i16) -> bool {
        version >= self.flexible_version_min()
    }

    /// The request header version: 2 (with tagged fields) for flexible versions, else 1.
    /// Header v0 (no client_id) belongs only to ControlledShutdown v0, which is not served.
    pub fn request_header_version(self, version: i16) -> i16 {
        if self.is_flexible(version) {
            2
        } else {
            1
        }
    }

    /// The response header version: 1 (with tagged fields) for flexible versions, else 0,
    /// except that ApiVersions always answers with v0 (KIP-511): a client that sent a version
    /// the server does not know must still be able to read the correlation id.
    pub fn response_header_version(self, version: i16) -> i16 {
        match self {
            ApiKey::ApiVersions => 0,
            ApiKey::Produce
            | ApiKey::Fetch
            | ApiKey::ListOffsets
            | ApiKey::Metadata
            | ApiKey::FindCoordinator
            | ApiKey::CreateTopics
            | ApiKey::DeleteTopics => i16::from(self.is_flexible(version)),
        }
    }
}

impl std::fmt::Display for ApiKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} ({})", self.name(), self.code())
    }
}

/// What dispatch does with `version` of `api_key` (see [`VersionSupport`]).
pub fn version_support(api_key: ApiKey, version: i16) -> VersionSupport {
    let (version_min, version_max) = api_key.version_range();
    let advertised = version_min <= version && version <= version_max;
    if !advertised {
        // KIP-511: only ApiVersions has a defined answer for a version it does not know.
        return if api_key == ApiKey::ApiVersions {
            VersionSupport::Refused
        } else {
            VersionSupport::Unsupported
        };
    }
    if api_key == ApiKey::Produce && version < PRODUCE_VERSION_SERVED_MIN {
        VersionSupport::Refused
    } else {
        VersionSupport::Served
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::HeaderVersion;

    // Checks the table's shape: every API appears once, in api_key order, with a non-empty
    // range; the served part of each range lies inside what kafka-protocol can encode, so no
    // served version can fail for lack of a codec.
    #[test]
    fn supported_table_is_well_formed() {
        let keys: Vec<ApiKey> = SUPPORTED.iter().map(|entry| entry.0).collect();
        assert_eq!(keys, ApiKey::ALL);
        for &(api_key, version_min, version_max) in SUPPORTED {
            assert!(version_min <= version_max, "{api_key}");
            assert!(version_min >= 0, "{api_key}");
            let served_min = match api_key {
                ApiKey::Produce => PRODUCE_VERSION_SERVED_MIN,
                _ => version_min,
            };
            let codec = codec_range(api_key);
            assert!(
                codec.0 <= served_min,
                "{api_key}: codec starts at {}",
                codec.0
            );
            assert!(
                version_max <= codec.1,
                "{api_key}: codec ends at {}",
                codec.1
            );
        }
    }

    // Checks our header-version rules against kafka-protocol's generated ones for every
    // served version (a second source for Kafka's `flexibleVersions`), and the KIP-511 rule
    // that ApiVersions answers with header v0 at every version, even unknown ones.
    #[test]
    fn header_versions_match_kafka_protocol() {
        use kafka_protocol::messages as m;
        for &(api_key, version_min, version_max) in SUPPORTED {
            let version_min = version_min.max(codec_range(api_key).0);
            for version in version_min..=version_max {
                let (request, response) = match api_key {
                    ApiKey::Produce => (
                        m::ProduceRequest::header_version(version),
                        m::ProduceResponse::header_version(version),
                    ),
                    ApiKey::Fetch => (
                        m::FetchRequest::header_version(version),
                        m::FetchResponse::header_version(version),
                    ),
                    ApiKey::ListOffsets => (
                        m::ListOffsetsRequest::header_version(version),
                        m::ListOffsetsResponse::header_version(version),
                    ),
                    ApiKey::Metadata => (
                        m::MetadataRequest::header_version(version),
                        m::MetadataResponse::header_version(version),
                    ),
                    ApiKey::FindCoordinator => (
                        m::FindCoordinatorRequest::header_version(version),
                        m::FindCoordinatorResponse::header_version(version),
                    ),
                    ApiKey::ApiVersions => (
                        m::ApiVersionsRequest::header_version(version),
                        m::ApiVersionsResponse::header_version(version),
                    ),
                    ApiKey::CreateTopics => (
                        m::CreateTopicsRequest::header_version(version),
                        m::CreateTopicsResponse::header_version(version),
                    ),
                    ApiKey::DeleteTopics => (
                        m::DeleteTopicsRequest::header_version(version),
                        m::DeleteTopicsResponse::header_version(version),
                    ),
                };
                assert_eq!(
                    api_key.request_header_version(version),
                    request,
                    "{api_key} v{version}"
                );
                assert_eq!(
                    api_key.response_header_version(version),
                    response,
                    "{api_key} v{version}"
                );
            }
        }
        for version in [-1, 0, 3, 4, 99, i16::MAX] {
            assert_eq!(ApiKey::ApiVersions.response_header_version(version), 0);
        }
    }

    // Checks dispatch on the edges of every range: Produce v0-2 and ApiVersions beyond its
    // range are refused (answered), everything else outside a range is unsupported.
    #[test]
    fn version_support_edges() {
        use VersionSupport::{Refused, Served, Unsupported};
        let cases = [
            (ApiKey::Produce, -1, Unsupported),
            (ApiKey::Produce, 0, Refused),
            (ApiKey::Produce, 2, Refused),
            (ApiKey::Produce, 3, Served),
            (ApiKey::Produce, 11, Served),
            (ApiKey::Produce, 12, Unsupported),
            (ApiKey::Fetch, 3, Unsupported),
            (ApiKey::Fetch, 4, Served),
            (ApiKey::Fetch, 12, Served),
            (ApiKey::Fetch, 13, Unsupported),
            (ApiKey::ApiVersions, -1, Refused),
            (ApiKey::ApiVersions, 0, Served),
            (ApiKey::ApiVersions, 3, Served),
            (ApiKey::ApiVersions, 4, Refused),
            (ApiKey::Metadata, 13, Unsupported),
            (ApiKey::FindCoordinator, -1, Unsupported),
            (ApiKey::FindCoordinator, 0, Served),
            (ApiKey::FindCoordinator, 6, Served),
            (ApiKey::FindCoordinator, 7, Unsupported),
            (ApiKey::CreateTopics, 1, Unsupported),
            (ApiKey::DeleteTopics, 0, Unsupported),
        ];
        for (api_key, version, expected) in cases {
            assert_eq!(
                version_support(api_key, version),
                expected,
                "{api_key} v{version}"
            );
        }
        for code in i16::MIN..=i16::MAX {
            if let Some(api_key) = ApiKey::from_code(code) {
                assert_eq!(api_key.code(), code);
            }
        }
    }

    fn codec_range(api_key: ApiKey) -> (i16, i16) {
        use kafka_protocol::messages as m;
        use kafka_protocol::protocol::Message;
        let range = match api_key {
            ApiKey::Produce => m::ProduceResponse::VERSIONS,
            ApiKey::Fetch => m::FetchResponse::VERSIONS,
            ApiKey::ListOffsets => m::ListOffsetsResponse::VERSIONS,
            ApiKey::Metadata => m::MetadataResponse::VERSIONS,
            ApiKey::FindCoordinator => m::FindCoordinatorResponse::VERSIONS,
            ApiKey::ApiVersions => m::ApiVersionsResponse::VERSIONS,
            ApiKey::CreateTopics => m::CreateTopicsResponse::VERSIONS,
            ApiKey::DeleteTopics => m::DeleteTopicsResponse::VERSIONS,
        };
        (range.min, range.max)
    }
}
