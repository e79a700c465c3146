//! A topic's commit rule: its ack mode and the knobs that go with it (DESIGN.md section 4,
//! `docs/replication.md#commit-rules`).
//!
//! Invariant: a [`Policy`] handed to a [`crate::Leader`] has passed [`Policy::validate`] for
//! the partition's replica count, so every mode can be satisfied by some set of replicas.

/// When a produce with `acks=-1/all` is acknowledged. Kafka's `acks=0` and `acks=1` keep their
/// meaning for every topic and never reach this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckMode {
    /// The leader's fdatasync completed.
    Async,
    /// The leader and `semi_sync_replicas` followers are durable, within
    /// `semi_sync_timeout_ms`; on timeout an error, or with `semi_sync_degrade` an ack that is
    /// counted as degraded (MySQL's semi-sync).
    SemiSync,
    /// The leader and enough followers to form a majority of the replicas are durable.
    Quorum,
    /// Every ISR member is durable (the HW passed the batch) and the ISR has at least
    /// `min_insync_replicas` members (Kafka's `acks=all`).
    Sync,
}

impl AckMode {
    /// Every mode, in the order of [`AckMode::name`]'s documentation.
    pub const ALL: [AckMode; 4] = [
        AckMode::Async,
        AckMode::SemiSync,
        AckMode::Quorum,
        AckMode::Sync,
    ];

    /// The mode named `name` (`async`, `semi-sync`, `quorum`, `sync`), as in configs and CLI
    /// flags; `None` for any other string.
    #[must_use]
    pub fn parse(name: &str) -> Option<AckMode> {
        match name {
            "async" => Some(AckMode::Async),
            "semi-sync" => Some(AckMode::SemiSync),
            "quorum" => Some(AckMode::Quorum),
            "sync" => Some(AckMode::Sync),
            _ => None,
        }
    }

    /// The name [`AckMode::parse`] accepts for this mode.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            AckMode::Async => "async",
            AckMode::SemiSync => "semi-sync",
            AckMode::Quorum => "quorum",
            AckMode::Sync => "sync",
        }
    }
}

/// A topic's commit rule. Field names are the config names (`semi_sync_timeout_ms`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The ack mode of `acks=-1/all` produces. Default `sync`, Kafka's `acks=all`.
    pub ack_mode: AckMode,
    /// Followers that must be durable for a `semi-sync` ack. Default 1.
    pub semi_sync_replicas: usize,
    /// How long a `semi-sync` produce waits for its followers. Default 1000.
    pub semi_sync_timeout_ms: u64,
    /// On a `semi-sync` timeout: acknowledge once the leader is durable, counted as degraded
    /// (`true`), or fail with NOT_ENOUGH_REPLICAS_AFTER_APPEND (`false`, the default).
    pub semi_sync_degrade: bool,
    /// The ISR size below which `sync` produces are refused. Default 1.
    pub min_insync_replicas: usize,
    /// A follower that has not caught up with the leader's log end for longer than this leaves
    /// the ISR. Default 10 000 (Kafka's `replica.lag.time.max.ms` is 30 000).
    pub replica_lag_max_ms: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            ack_mode: AckMode::Sync,
            semi_sync_replicas: 1,
            semi_sync_timeout_ms: 1_000,
            semi_sync_degrade: false,
            min_insync_replicas: 1,
            replica_lag_max_ms: 10_000,
        }
    }
}

impl Policy {
    /// Checks that this policy can be satisfied by a partition with `replica_count` replicas
    /// (the leader included). The error names the field and the rule it breaks:
    ///
    /// - `replica_count` is at least 1;
    /// - with `semi-sync`, `semi_sync_replicas` is in `1..=replica_count - 1` (the leader is
    ///   not one of them, so `semi-sync` needs at least one follower);
    /// - `min_insync_replicas` is in `1..=replica_count`;
    /// - `semi_sync_timeout_ms` and `replica_lag_max_ms` are greater than zero.
    pub fn validate(&self, replica_count: usize) -> Result<(), String> {
        if replica_count == 0 {
            return Err("replica count is 0: a partition has at least its leader".to_owned());
        }
        let followers_count = replica_count - 1;
        if self.ack_mode == AckMode::SemiSync
            && !(1..=followers_count).contains(&self.semi_sync_replicas)
        {
            return Err(format!(
                "semi_sync_replicas is {} but must be in 1..={followers_count}: \
                 semi-sync waits for that many followers and there are {followers_count}",
                self.semi_sync_replicas
            ));
        }
        if !(1..=replica_count).contains(&self.min_insync_replicas) {
            return Err(format!(
                "min_insync_replicas is {} but must be in 1..={replica_count}, \
                 the replica count (the leader included)",
                self.min_insync_replicas
            ));
        }
        if self.semi_sync_timeout_ms == 0 {
            return Err("semi_sync_timeout_ms is 0 but must be greater than 0".to_owned());
        }
        if self.replica_lag_max_ms == 0 {
            return Err("replica_lag_max_ms is 0 but must be greater than 0".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every mode's name parses back to the mode; other strings (including Kafka's numeric
    // acks and other spellings) do not parse.
    #[test]
    fn ack_mode_names_round_trip() {
        for mode in AckMode::ALL {
            assert_eq!(AckMode::parse(mode.name()), Some(mode));
        }
        for name in ["", "all", "-1", "semisync", "semi_sync", "Sync"] {
            assert_eq!(AckMode::parse(name), None, "{name}");
        }
    }

    // The defaults are Kafka-like: sync (acks=all), min_insync 1, and valid for one replica.
    #[test]
    fn defaults() {
        let policy = Policy::default();
        assert_eq!(policy.ack_mode, AckMode::Sync);
        assert_eq!(policy.semi_sync_replicas, 1);
        assert_eq!(policy.semi_sync_timeout_ms, 1_000);
        assert!(!policy.semi_sync_degrade);
        assert_eq!(policy.min_insync_replicas, 1);
        assert_eq!(policy.replica_lag_max_ms, 10_000);
        assert_eq!(policy.validate(1), Ok(()));
    }

    // Each rule of `validate`, at its boundaries; the message names the field.
    #[test]
    fn validate_rules() {
        let semi_sync = |replicas| Policy {
            ack_mode: AckMode::SemiSync,
            semi_sync_replicas: replicas,
            ..Policy::default()
        };
        let error = |policy: Policy, replica_count| {
            policy
                .validate(replica_count)
                .expect_err("the policy should be rejected")
        };
        assert!(error(Policy::default(), 0).contains("replica count"));
        assert!(error(semi_sync(1), 1).contains("semi_sync_replicas"));
        assert!(error(semi_sync(0), 3).contains("semi_sync_replicas"));
        assert!(error(semi_sync(3), 3).contains("semi_sync_replicas"));
        assert_eq!(semi_sync(2).validate(3), Ok(()));
        // Outside semi-sync the field is not looked at.
        let quorum = Policy {
            ack_mode: AckMode::Quorum,
            semi_sync_replicas: 9,
            ..Policy::default()
        };
        assert_eq!(quorum.validate(3), Ok(()));
        let min_insync = |count| Policy {
            min_insync_replicas: count,
            ..Policy::default()
        };
        assert!(error(min_insync(0), 3).contains("min_insync_replicas"));
        assert!(error(min_insync(4), 3).contains("min_insync_replicas"));
        assert_eq!(min_insync(3).validate(3), Ok(()));
        let no_timeout = Policy {
            semi_sync_timeout_ms: 0,
            ..Policy::default()
        };
        assert!(error(no_timeout, 3).contains("semi_sync_timeout_ms"));
        let no_lag = Policy {
            replica_lag_max_ms: 0,
            ..Policy::default()
        };
        assert!(error(no_lag, 3).contains("replica_lag_max_ms"));
    }
}
