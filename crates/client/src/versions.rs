//! API version negotiation: the client's own ranges and the highest version both sides have.
//!
//! Invariants: [`CLIENT_VERSIONS`] lists every API this client sends, once, with ranges that
//! kafka-protocol can encode and decode; a negotiated version lies inside both the client's
//! and the broker's advertised range, and is the highest such version.

use std::collections::BTreeMap;

use kafka_protocol::messages::ApiVersionsResponse;
use ringlog_kafka::ApiKey;

use crate::error::{Error, Result};

/// `(api, min, max)` versions this client speaks, inclusive.
///
/// Produce starts at v3 (the first with RecordBatch v2 and `transactional_id`), Metadata at
/// v1 (v0 reads an empty topic list as "all topics", v1 and later use null for that), and the
/// others at the minimums Kafka 4 kept, which are also ringlog's (DESIGN.md section 6).
pub const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
];

/// The version of each API used on connections to one broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versions {
    chosen: BTreeMap<ApiKey, i16>,
}

impl Versions {
    /// Picks the highest common version of every API in [`CLIENT_VERSIONS`] from a broker's
    /// ApiVersions answer. An API with no common version is [`Error::UnsupportedApi`].
    pub fn negotiate(response: &ApiVersionsResponse) -> Result<Versions> {
        let mut chosen = BTreeMap::new();
        for &(api, client_min, client_max) in CLIENT_VERSIONS {
            let advertised = response
                .api_keys
                .iter()
                .find(|entry| entry.api_key == api.code());
            let (broker_min, broker_max) =
                advertised.map_or((-1, -1), |entry| (entry.min_version, entry.max_version));
            let version = broker_max.min(client_max);
            if advertised.is_none() || version < broker_min.max(client_min) {
                return Err(Error::UnsupportedApi {
                    api,
                    broker_min,
                    broker_max,
                    client_min,
                    client_max,
                });
            }
            chosen.insert(api, version);
        }
        Ok(Versions { chosen })
    }

    /// The negotiated version of `api`. Panics for an API not in [`CLIENT_VERSIONS`]: the
    /// client sends no other.
    pub fn get(&self, api: ApiKey) -> i16 {
        *self
            .chosen
            .get(&api)
            .unwrap_or_else(|| panic!("{api} is not in CLIENT_VERSIONS"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn advertised(ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        let mut response = ApiVersionsResponse::default();
        response.api_keys = ranges
            .iter()
            .map(|&(api, min, max)| {
                let mut entry = ApiVersion::default();
                entry.api_key = api.code();
                entry.min_version = min;
                entry.max_version = max;
                entry
            })
            .collect();
        response
    }

    // Checks that against ringlog's own table every API the client sends gets the broker's
    // maximum (the client's ranges reach at least as high; APIs the client never sends, such
    // as FindCoordinator, are not negotiated), and that a broker whose range lies entirely
    // below or above the client's, or lacks an API, is refused with both ranges named.
    #[test]
    fn negotiation_picks_highest_common_version() {
        let versions = Versions::negotiate(&advertised(ringlog_kafka::SUPPORTED)).unwrap();
        for &(api, _, _) in CLIENT_VERSIONS {
            assert_eq!(versions.get(api), api.version_range().1, "{api}");
        }
        let mut lower = ringlog_kafka::SUPPORTED.to_vec();
        lower[0] = (ApiKey::Produce, 5, 7);
        let versions = Versions::negotiate(&advertised(&lower)).unwrap();
        assert_eq!(versions.get(ApiKey::Produce), 7);

        lower[0] = (ApiKey::Produce, 0, 2);
        let error = Versions::negotiate(&advertised(&lower)).unwrap_err();
        assert!(
            matches!(
                error,
                Error::UnsupportedApi {
                    api: ApiKey::Produce,
                    broker_max: 2,
                    ..
                }
            ),
            "{error}"
        );
        lower[0] = (ApiKey::Produce, 12, 13);
        assert!(Versions::negotiate(&advertised(&lower)).is_err());
        let error = Versions::negotiate(&advertised(&ringlog_kafka::SUPPORTED[1..])).unwrap_err();
        assert!(
            matches!(error, Error::UnsupportedApi { broker_min: -1, .. }),
            "{error}"
        );
    }
}
