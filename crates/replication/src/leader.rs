//! The leader's side of one partition: follower progress, the ISR, the high watermark (HW)
//! and the acknowledgement of produces under the topic's ack mode
//! (`docs/replication.md#commit-rules`).
//!
//! Every handler first records its event, then re-evaluates, in this order: ISR membership
//! (leaves, then joins), the HW, the pending acks. It pushes a [`LeaderCommand`] for each thing
//! that changed; the server drains them with [`Leader::drain_commands`] and executes them.
//!
//! Invariants (checked by [`Leader::check_invariants`] after every mutating call in debug
//! builds; the cheap ones are `assert!`s at the point of change):
//!
//! - `high_watermark <= durable_end <= log_end` for the leader's own ends; all three never
//!   decrease.
//! - The ISR always contains the leader; followers start outside it.
//! - Every pending ack ends at or below the leader's log end, and is resolved at most once:
//!   once its `Ack` command is pushed, it is forgotten.
//! - An ack is `Acked` or `Degraded` only when the leader's own durable end has reached it.
//! - After any handler returns, the state is fully evaluated at the latest time seen, so every
//!   time [`Leader::next_deadline`] returns is in the future.
//!
//! Bounds: the pending acks are one per parked produce request, which the server bounds; the
//! command queue holds what one handler produced and is drained after each step.

use std::collections::BTreeMap;

use ringlog_types::{NodeId, Offset};

use crate::policy::{AckMode, Policy};
use crate::time::Time;

/// The server's identifier for one produce waiting for its ack (for example a request slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AckId(pub u64);

/// Why a produce was not acknowledged. Each maps to a Kafka error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckError {
    /// Before the append: the ISR is smaller than `min_insync_replicas` (`sync` mode). Kafka's
    /// NOT_ENOUGH_REPLICAS (19): nothing was appended.
    NotEnoughReplicas,
    /// After the append: the replicas the mode needs are not there (the ISR shrank below
    /// `min_insync_replicas`, or a `semi-sync` timeout without degrade). Kafka's
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND (20): the batch is in the log but not acknowledged.
    NotEnoughReplicasAfterAppend,
    /// The produce's own deadline (its request timeout) passed first. Kafka's
    /// REQUEST_TIMED_OUT (7).
    TimedOut,
}

/// How a pending ack was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckOutcome {
    /// The ack mode's condition holds.
    Acked,
    /// `semi-sync` with `semi_sync_degrade`: the followers did not report in time, and the
    /// leader alone is durable. Acknowledged, but counted and logged: never silent.
    Degraded,
    /// Not acknowledged; the server answers with the error.
    Failed(AckError),
}

/// What the server must do after a handler: answer a produce, publish a new HW, log an ISR
/// change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaderCommand {
    /// Resolve the produce registered under `id` with `outcome`.
    Ack {
        /// The id given to [`Leader::wait_ack`].
        id: AckId,
        /// How it ends.
        outcome: AckOutcome,
    },
    /// The HW advanced to this offset: consumers may now read below it.
    HighWatermark(Offset),
    /// A follower left the ISR because it had not caught up for `lag_ms`.
    IsrShrunk {
        /// The follower that left.
        follower: NodeId,
        /// Milliseconds since it was last caught up.
        lag_ms: u64,
    },
    /// A follower joined the ISR.
    IsrExpanded {
        /// The follower that joined.
        follower: NodeId,
    },
}

/// What the leader knows of one follower, from its fetches and durable reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The offset of its latest fetch.
    pub fetch_offset: Offset,
    /// Its written end, as last reported.
    pub written_end: Offset,
    /// Its durable end, as last reported.
    pub durable_end: Offset,
    /// When it last fetched; `None` before its first fetch.
    pub last_fetch: Option<Time>,
    /// The latest time at which it had everything the leader had (Kafka's rule, see
    /// [`Leader::on_fetch`]).
    pub last_caught_up: Time,
    /// Whether it is in the ISR.
    pub in_isr: bool,
}

/// Counters of the outcomes that are not plain successes. The server exports them as metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaderStats {
    /// `semi-sync` acks given with the leader alone durable.
    pub degraded_acks: u64,
    /// Produces refused before their append ([`AckError::NotEnoughReplicas`]).
    pub not_enough_replicas: u64,
    /// Produces failed after their append ([`AckError::NotEnoughReplicasAfterAppend`]).
    pub not_enough_replicas_after_append: u64,
    /// Produces whose deadline passed ([`AckError::TimedOut`]).
    pub timed_out: u64,
    /// Followers that left the ISR.
    pub isr_shrinks: u64,
    /// Followers that joined the ISR.
    pub isr_expands: u64,
}

/// A handler was called with a node that is not a follower of this partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("node {} is not a follower of this partition", .0 .0)]
pub struct UnknownFollower(pub NodeId);

/// What the leader keeps per follower beyond its public progress.
#[derive(Clone, Copy, Debug)]
struct FollowerState {
    progress: FollowerProgress,
    /// The leader's log end when this follower's previous fetch was handled (Kafka's
    /// `lastFetchLeaderLogEndOffset`); `None` before its first fetch.
    previous_fetch_log_end: Option<Offset>,
    /// The HW after this follower's previous fetch or report was handled: its durable end
    /// must reach this to join the ISR. `None` until the leader has heard from it once, so a
    /// follower that never spoke never joins.
    join_high_watermark: Option<Offset>,
}

/// A produce waiting for its ack.
#[derive(Clone, Copy, Debug)]
struct PendingAck {
    id: AckId,
    next_offset: Offset,
    registered_at: Time,
    deadline: Time,
}

/// The leader's replication state for one partition. See the module documentation for the
/// order of evaluation and the invariants.
#[derive(Debug)]
pub struct Leader {
    leader: NodeId,
    policy: Policy,
    log_end: Offset,
    durable_end: Offset,
    high_watermark: Offset,
    /// The latest time a handler was given; earlier times are raised to it.
    now_latest: Time,
    followers: BTreeMap<NodeId, FollowerState>,
    /// In registration order.
    pending: Vec<PendingAck>,
    commands: Vec<LeaderCommand>,
    stats: LeaderStats,
}

impl Leader {
    /// A leader with the given followers (the leader itself is a replica too, so
    /// `replicas = 1 + followers.len()`), log end and durable end.
    ///
    /// Followers start outside the ISR, with every end at 0 and `last_caught_up = now`: they
    /// join once they have fetched and proven durable (see [`Leader::on_fetch`]). The ISR is
    /// the leader alone, so the HW starts at the leader's durable end; no command is pushed
    /// for it, read it with [`Leader::high_watermark`].
    ///
    /// # Panics
    ///
    /// If `durable_end > log_end`, if `followers` contains the leader or a node twice, or if
    /// `policy` fails [`Policy::validate`] for this replica count: all are programmer errors.
    #[must_use]
    pub fn new(
        leader: NodeId,
        followers: &[NodeId],
        policy: Policy,
        log_end: Offset,
        durable_end: Offset,
        now: Time,
    ) -> Leader {
        assert!(
            durable_end <= log_end,
            "durable_end={durable_end} log_end={log_end}"
        );
        if let Err(reason) = policy.validate(1 + followers.len()) {
            panic!("invalid replication policy {policy:?}: {reason}");
        }
        let mut states = BTreeMap::new();
        for &follower in followers {
            assert!(
                follower != leader,
                "leader {leader:?} listed as its own follower"
            );
            let state = FollowerState::new(now);
            let previous = states.insert(follower, state);
            assert!(previous.is_none(), "follower {follower:?} listed twice");
        }
        let leader = Leader {
            leader,
            policy,
            log_end,
            durable_end,
            high_watermark: durable_end,
            now_latest: now,
            followers: states,
            pending: Vec::new(),
            commands: Vec::new(),
            stats: LeaderStats::default(),
        };
        leader.check_invariants_in_debug();
        leader
    }

    /// The topic's commit rule.
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The first offset not yet committed: consumers read below it. Never decreases.
    #[must_use]
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The leader's log end, as of the latest [`Leader::on_appended`].
    #[must_use]
    pub fn log_end(&self) -> Offset {
        self.log_end
    }

    /// The leader's own durable end, as of the latest [`Leader::on_local_durable`].
    #[must_use]
    pub fn durable_end(&self) -> Offset {
        self.durable_end
    }

    /// The ISR: the leader first, then the followers in it, by node id.
    #[must_use]
    pub fn isr(&self) -> Vec<NodeId> {
        let members = self
            .followers
            .iter()
            .filter(|(_, state)| state.progress.in_isr);
        std::iter::once(self.leader)
            .chain(members.map(|(&id, _)| id))
            .collect()
    }

    /// What the leader knows of `id`; `None` if it is not a follower of this partition.
    #[must_use]
    pub fn follower(&self, id: NodeId) -> Option<&FollowerProgress> {
        self.followers.get(&id).map(|state| &state.progress)
    }

    /// Every follower's progress, by node id.
    pub fn followers(&self) -> impl Iterator<Item = (NodeId, &FollowerProgress)> {
        self.followers
            .iter()
            .map(|(&id, state)| (id, &state.progress))
    }

    /// Counters of degraded and failed acks and of ISR changes.
    #[must_use]
    pub fn stats(&self) -> &LeaderStats {
        &self.stats
    }

    /// Called before appending an `acks=-1/all` produce. In `sync` mode, an ISR smaller than
    /// `min_insync_replicas` refuses it with [`AckError::NotEnoughReplicas`] (counted in
    /// [`LeaderStats::not_enough_replicas`]); the server answers without appending. Every other
    /// mode accepts: it has no precondition on the ISR.
    pub fn check_produce(&mut self) -> Result<(), AckError> {
        if self.policy.ack_mode == AckMode::Sync && self.isr_len() < self.policy.min_insync_replicas
        {
            self.stats.not_enough_replicas += 1;
            return Err(AckError::NotEnoughReplicas);
        }
        Ok(())
    }

    /// The leader appended to its log, which now ends at `log_end`.
    ///
    /// # Panics
    ///
    /// If `log_end` is below the previous log end (truncation is not a replication event here).
    pub fn on_appended(&mut self, now: Time, log_end: Offset) {
        let now = self.advance_time(now);
        assert!(
            log_end >= self.log_end,
            "log_end={log_end} < {}",
            self.log_end
        );
        self.log_end = log_end;
        self.evaluate(now);
    }

    /// The leader's own fdatasync completed up to `durable_end`.
    ///
    /// # Panics
    ///
    /// If `durable_end` is below the previous durable end or above the log end.
    pub fn on_local_durable(&mut self, now: Time, durable_end: Offset) {
        let now = self.advance_time(now);
        assert!(
            durable_end >= self.durable_end,
            "durable_end={durable_end} < {}",
            self.durable_end
        );
        assert!(
            durable_end <= self.log_end,
            "durable_end={durable_end} log_end={}",
            self.log_end
        );
        self.durable_end = durable_end;
        self.evaluate(now);
    }

    /// A follower fetched from `fetch_offset`, reporting its written and durable ends.
    ///
    /// Caught-up time, Kafka's rule (`Replica.updateFetchStateOrThrow`): if `fetch_offset` is at
    /// least the leader's log end now, the follower was caught up now; otherwise, if it is at
    /// least the leader's log end as of this follower's previous fetch, it was caught up at the
    /// time of that previous fetch. `last_caught_up` never moves backwards.
    ///
    /// Join rule: a follower outside the ISR joins when it caught up within
    /// `replica_lag_max_ms` and its durable end reaches the HW the leader had after handling its
    /// previous fetch or report. Comparing with that older HW, not the current one, lets a
    /// follower join under continuous load, where it is always one round behind.
    pub fn on_fetch(
        &mut self,
        now: Time,
        follower: NodeId,
        fetch_offset: Offset,
        written_end: Offset,
        durable_end: Offset,
    ) -> Result<(), UnknownFollower> {
        self.check_follower(follower)?;
        let now = self.advance_time(now);
        let log_end = self.log_end;
        let state = self
            .followers
            .get_mut(&follower)
            .ok_or(UnknownFollower(follower))?;
        state.record_fetch(now, log_end, fetch_offset);
        state.record_ends(follower, written_end, durable_end);
        self.evaluate(now);
        self.remember_join_high_watermark(follower);
        Ok(())
    }

    /// A follower reported that its durable end advanced while its fetch was parked. This does
    /// not change its caught-up time: only a fetch shows what it has.
    pub fn on_durable_report(
        &mut self,
        now: Time,
        follower: NodeId,
        written_end: Offset,
        durable_end: Offset,
    ) -> Result<(), UnknownFollower> {
        self.check_follower(follower)?;
        let now = self.advance_time(now);
        let state = self
            .followers
            .get_mut(&follower)
            .ok_or(UnknownFollower(follower))?;
        state.record_ends(follower, written_end, durable_end);
        self.evaluate(now);
        self.remember_join_high_watermark(follower);
        Ok(())
    }

    /// Time passed: followers may leave the ISR, semi-sync timeouts and deadlines may expire.
    /// Call it at [`Leader::next_deadline`] at the latest.
    pub fn on_tick(&mut self, now: Time) {
        let now = self.advance_time(now);
        self.evaluate(now);
    }

    /// Registers a produce whose batches end at `next_offset` (already appended), to be
    /// resolved by an `Ack` command with this `id`, at the latest at `deadline` (the request's
    /// timeout) with [`AckError::TimedOut`]. It is evaluated at once, so an ack whose condition
    /// already holds resolves in this call. See `docs/replication.md#commit-rules` for the rule
    /// of each mode.
    ///
    /// # Panics
    ///
    /// If `next_offset` is above the log end (the batches must be appended first); in debug
    /// builds, if `id` is already pending.
    pub fn wait_ack(&mut self, now: Time, id: AckId, next_offset: Offset, deadline: Time) {
        let now = self.advance_time(now);
        assert!(
            next_offset <= self.log_end,
            "next_offset={next_offset} log_end={}",
            self.log_end
        );
        debug_assert!(
            self.pending.iter().all(|ack| ack.id != id),
            "ack {id:?} registered twice"
        );
        self.pending.push(PendingAck {
            id,
            next_offset,
            registered_at: now,
            deadline,
        });
        self.evaluate(now);
    }

    /// The commands pushed since the previous drain, in the order they were pushed.
    pub fn drain_commands(&mut self) -> std::vec::Drain<'_, LeaderCommand> {
        self.commands.drain(..)
    }

    /// The earliest time at which [`Leader::on_tick`] must be called because something
    /// expires: a pending ack's deadline, a pending `semi-sync` timeout, or an ISR member's
    /// lag passing `replica_lag_max_ms`. `None` if nothing can expire.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Time> {
        let acks = self.pending.iter().flat_map(|ack| {
            let semi_sync = self
                .semi_sync_expiry(ack)
                .filter(|&time| time > self.now_latest);
            [Some(ack.deadline), semi_sync].into_iter().flatten()
        });
        let isr = self
            .followers
            .values()
            .filter(|state| state.progress.in_isr);
        let lag_max_ms = self.policy.replica_lag_max_ms;
        // `ms_since > lag_max_ms` first holds one whole millisecond after `lag_max_ms`.
        let isr_expiries = isr.map(|state| {
            state
                .progress
                .last_caught_up
                .add_ms(lag_max_ms.saturating_add(1))
        });
        let earliest = acks.chain(isr_expiries).min();
        debug_assert!(earliest.is_none_or(|time| time > self.now_latest));
        earliest
    }

    /// Checks every invariant listed in the module documentation. Called after each mutating
    /// call in debug builds; a simulator calls it after every step.
    ///
    /// # Panics
    ///
    /// If an invariant does not hold: that is a bug in this crate or in its caller.
    pub fn check_invariants(&self) {
        assert!(
            self.high_watermark <= self.durable_end,
            "high_watermark={} durable_end={}",
            self.high_watermark,
            self.durable_end
        );
        assert!(
            self.durable_end <= self.log_end,
            "durable_end={} log_end={}",
            self.durable_end,
            self.log_end
        );
        assert!(
            !self.followers.contains_key(&self.leader),
            "leader is its own follower"
        );
        for (index, ack) in self.pending.iter().enumerate() {
            assert!(
                ack.next_offset <= self.log_end,
                "{ack:?} log_end={}",
                self.log_end
            );
            let duplicate = self.pending[..index]
                .iter()
                .any(|earlier| earlier.id == ack.id);
            assert!(!duplicate, "ack {:?} pending twice", ack.id);
        }
    }

    fn check_invariants_in_debug(&self) {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// An unknown follower is refused before anything changes, the clock included.
    fn check_follower(&self, follower: NodeId) -> Result<(), UnknownFollower> {
        if self.followers.contains_key(&follower) {
            Ok(())
        } else {
            Err(UnknownFollower(follower))
        }
    }

    /// Time only moves forward: a time earlier than one already seen counts as that one.
    fn advance_time(&mut self, now: Time) -> Time {
        self.now_latest = self.now_latest.max(now);
        self.now_latest
    }

    fn isr_len(&self) -> usize {
        1 + self
            .followers
            .values()
            .filter(|state| state.progress.in_isr)
            .count()
    }

    fn remember_join_high_watermark(&mut self, follower: NodeId) {
        if let Some(state) = self.followers.get_mut(&follower) {
            state.join_high_watermark = Some(self.high_watermark);
        }
    }

    /// Re-evaluates, in order, the ISR, the HW and the pending acks at `now`.
    fn evaluate(&mut self, now: Time) {
        self.shrink_isr(now);
        self.expand_isr(now);
        self.advance_high_watermark();
        self.resolve_acks(now);
        self.check_invariants_in_debug();
    }

    fn shrink_isr(&mut self, now: Time) {
        let lag_max_ms = self.policy.replica_lag_max_ms;
        for (&follower, state) in &mut self.followers {
            let lag_ms = now.ms_since(state.progress.last_caught_up);
            if state.progress.in_isr && lag_ms > lag_max_ms {
                state.progress.in_isr = false;
                self.stats.isr_shrinks += 1;
                self.commands
                    .push(LeaderCommand::IsrShrunk { follower, lag_ms });
                tracing::debug!(?follower, lag_ms, "follower left the ISR");
            }
        }
    }

    fn expand_isr(&mut self, now: Time) {
        let lag_max_ms = self.policy.replica_lag_max_ms;
        let high_watermark = self.high_watermark;
        for (&follower, state) in &mut self.followers {
            if !state.progress.in_isr && state.may_join(now, lag_max_ms, high_watermark) {
                state.progress.in_isr = true;
                self.stats.isr_expands += 1;
                self.commands.push(LeaderCommand::IsrExpanded { follower });
                tracing::debug!(?follower, "follower joined the ISR");
            }
        }
    }

    /// HW = min(durable end) over the ISR, the leader's own included, and never lower than
    /// before: a follower that just joined may still be below the old HW.
    fn advance_high_watermark(&mut self) {
        let isr = self
            .followers
            .values()
            .filter(|state| state.progress.in_isr);
        let isr_durable_min = isr
            .map(|state| state.progress.durable_end)
            .fold(self.durable_end, Offset::min);
        if isr_durable_min > self.high_watermark {
            self.high_watermark = isr_durable_min;
            self.commands
                .push(LeaderCommand::HighWatermark(isr_durable_min));
        }
        assert!(
            self.high_watermark <= self.durable_end,
            "high_watermark={} durable_end={}",
            self.high_watermark,
            self.durable_end
        );
    }

    /// Resolves, in registration order, every pending ack whose outcome is decided at `now`.
    fn resolve_acks(&mut self, now: Time) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.retain(|ack| match self.ack_outcome(ack, now) {
            Some(outcome) => {
                self.resolve(ack.id, outcome);
                false
            }
            None => true,
        });
        self.pending = pending;
    }

    fn resolve(&mut self, id: AckId, outcome: AckOutcome) {
        match outcome {
            AckOutcome::Acked => {}
            AckOutcome::Degraded => self.stats.degraded_acks += 1,
            AckOutcome::Failed(AckError::NotEnoughReplicas) => self.stats.not_enough_replicas += 1,
            AckOutcome::Failed(AckError::NotEnoughReplicasAfterAppend) => {
                self.stats.not_enough_replicas_after_append += 1;
            }
            AckOutcome::Failed(AckError::TimedOut) => self.stats.timed_out += 1,
        }
        self.commands.push(LeaderCommand::Ack { id, outcome });
    }

    /// The outcome of `ack` at `now` under the topic's mode, or `None` if it keeps waiting.
    /// The mode's own rule decides first; the produce's deadline applies after it.
    fn ack_outcome(&self, ack: &PendingAck, now: Time) -> Option<AckOutcome> {
        let decided = match self.policy.ack_mode {
            AckMode::Async => self.async_outcome(ack),
            AckMode::SemiSync => self.semi_sync_outcome(ack, now),
            AckMode::Quorum => self.quorum_outcome(ack),
            AckMode::Sync => self.sync_outcome(ack),
        };
        let expired = now >= ack.deadline;
        decided.or(expired.then_some(AckOutcome::Failed(AckError::TimedOut)))
    }

    fn leader_durable(&self, ack: &PendingAck) -> bool {
        self.durable_end >= ack.next_offset
    }

    /// Followers, in the ISR or not, whose durable end reached the ack.
    fn followers_durable_count(&self, ack: &PendingAck) -> usize {
        let durable = self.followers.values();
        durable
            .filter(|state| state.progress.durable_end >= ack.next_offset)
            .count()
    }

    fn async_outcome(&self, ack: &PendingAck) -> Option<AckOutcome> {
        self.leader_durable(ack).then_some(AckOutcome::Acked)
    }

    /// Acked with the leader and `semi_sync_replicas` followers durable; after the semi-sync
    /// timeout, degraded once the leader is durable, or failed without degrade.
    fn semi_sync_outcome(&self, ack: &PendingAck, now: Time) -> Option<AckOutcome> {
        let leader_durable = self.leader_durable(ack);
        let followers_durable = self.followers_durable_count(ack);
        if leader_durable && followers_durable >= self.policy.semi_sync_replicas {
            return Some(AckOutcome::Acked);
        }
        let expired = self
            .semi_sync_expiry(ack)
            .is_some_and(|expiry| now >= expiry);
        match (expired, self.policy.semi_sync_degrade) {
            (false, _) => None,
            (true, false) => Some(AckOutcome::Failed(AckError::NotEnoughReplicasAfterAppend)),
            (true, true) => leader_durable.then_some(AckOutcome::Degraded),
        }
    }

    /// Acked when a majority of the replicas is durable, the leader among them: an ack never
    /// runs ahead of the leader's own disk.
    fn quorum_outcome(&self, ack: &PendingAck) -> Option<AckOutcome> {
        let replicas = 1 + self.followers.len();
        let majority = replicas / 2 + 1;
        let durable = 1 + self.followers_durable_count(ack);
        (self.leader_durable(ack) && durable >= majority).then_some(AckOutcome::Acked)
    }

    /// Fails as soon as the ISR is below `min_insync_replicas`; otherwise acked once the HW
    /// passed the ack (every ISR member durable).
    fn sync_outcome(&self, ack: &PendingAck) -> Option<AckOutcome> {
        if self.isr_len() < self.policy.min_insync_replicas {
            return Some(AckOutcome::Failed(AckError::NotEnoughReplicasAfterAppend));
        }
        (self.high_watermark >= ack.next_offset).then_some(AckOutcome::Acked)
    }

    /// When a `semi-sync` ack stops waiting for its followers; `None` in other modes.
    fn semi_sync_expiry(&self, ack: &PendingAck) -> Option<Time> {
        let semi_sync = self.policy.ack_mode == AckMode::SemiSync;
        semi_sync.then(|| ack.registered_at.add_ms(self.policy.semi_sync_timeout_ms))
    }
}

impl FollowerState {
    fn new(now: Time) -> FollowerState {
        FollowerState {
            progress: FollowerProgress {
                fetch_offset: Offset(0),
                written_end: Offset(0),
                durable_end: Offset(0),
                last_fetch: None,
                last_caught_up: now,
                in_isr: false,
            },
            previous_fetch_log_end: None,
            join_high_watermark: None,
        }
    }

    /// Kafka's caught-up rule (see [`Leader::on_fetch`]), then remembers this fetch.
    fn record_fetch(&mut self, now: Time, log_end: Offset, fetch_offset: Offset) {
        let progress = &mut self.progress;
        let previous = self.previous_fetch_log_end.zip(progress.last_fetch);
        if fetch_offset >= log_end {
            progress.last_caught_up = progress.last_caught_up.max(now);
        } else if let Some((previous_log_end, previous_time)) = previous {
            if fetch_offset >= previous_log_end {
                progress.last_caught_up = progress.last_caught_up.max(previous_time);
            }
        }
        progress.fetch_offset = fetch_offset;
        progress.last_fetch = Some(now);
        self.previous_fetch_log_end = Some(log_end);
    }

    /// Stores the ends as reported. They come from the network, so they are not asserted;
    /// a durable end going backwards (a follower that lost its disk) is logged.
    fn record_ends(&mut self, follower: NodeId, written_end: Offset, durable_end: Offset) {
        if durable_end < self.progress.durable_end {
            tracing::warn!(
                ?follower,
                %durable_end,
                previous = %self.progress.durable_end,
                "follower's durable end went backwards"
            );
        }
        self.progress.written_end = written_end;
        self.progress.durable_end = durable_end;
    }

    /// Whether this follower may join the ISR: caught up recently, and durable up to the HW
    /// the leader had after its previous fetch or report, or, on its first fetch, up to the
    /// current HW (a follower that is fully caught up joins at once). A follower that never
    /// fetched may not join.
    fn may_join(&self, now: Time, lag_max_ms: u64, high_watermark: Offset) -> bool {
        let recent = now.ms_since(self.progress.last_caught_up) <= lag_max_ms;
        let target = match (self.join_high_watermark, self.progress.last_fetch) {
            (Some(remembered), _) => remembered,
            (None, Some(_)) => high_watermark,
            (None, None) => return false,
        };
        recent && self.progress.durable_end >= target
    }
}

#[cfg(test)]
mod tests;
