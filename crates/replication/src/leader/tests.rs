//! Unit tests of the leader: one test per rule, each asserting the exact commands pushed after
//! each event, then a property test that drives random event sequences and checks the
//! invariants after every step.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const LEADER: NodeId = NodeId(1);
const A: NodeId = NodeId(2);
const B: NodeId = NodeId(3);
const C: NodeId = NodeId(4);
const FAR: u64 = 60_000;

fn at(ms: u64) -> Time {
    Time(0).add_ms(ms)
}

fn policy(ack_mode: AckMode) -> Policy {
    Policy {
        ack_mode,
        ..Policy::default()
    }
}

fn new_leader(policy: Policy, followers: &[NodeId]) -> Leader {
    Leader::new(LEADER, followers, policy, Offset(0), Offset(0), at(0))
}

fn drain(leader: &mut Leader) -> Vec<LeaderCommand> {
    leader.drain_commands().collect()
}

fn ack(id: u64, outcome: AckOutcome) -> LeaderCommand {
    LeaderCommand::Ack {
        id: AckId(id),
        outcome,
    }
}

fn failed(id: u64, error: AckError) -> LeaderCommand {
    ack(id, AckOutcome::Failed(error))
}

fn fetch(leader: &mut Leader, now: Time, follower: NodeId, fetch_offset: u64, durable_end: u64) {
    let (fetch_offset, durable_end) = (Offset(fetch_offset), Offset(durable_end));
    let result = leader.on_fetch(now, follower, fetch_offset, fetch_offset, durable_end);
    result.expect("a known follower");
}

fn report(leader: &mut Leader, now: Time, follower: NodeId, durable_end: u64) {
    let durable_end = Offset(durable_end);
    let result = leader.on_durable_report(now, follower, durable_end, durable_end);
    result.expect("a known follower");
}

/// Brings `follower` into the ISR at `now` with two fetches at the leader's log end: the
/// first makes the leader hear from it, the second proves its durable end against the HW.
fn join(leader: &mut Leader, now: Time, follower: NodeId, durable_end: u64) {
    let log_end = leader.log_end().0;
    fetch(leader, now, follower, log_end, durable_end);
    fetch(leader, now, follower, log_end, durable_end);
    assert!(
        leader.follower(follower).expect("known").in_isr,
        "{follower:?} did not join"
    );
    drain(leader);
}

// A new leader: followers outside the ISR with zero ends and last_caught_up = now; the ISR is
// the leader, first, then members by id; the HW starts at the leader's durable end.
#[test]
fn new_leader_state() {
    let leader = Leader::new(
        NodeId(9),
        &[NodeId(5), NodeId(3)],
        Policy::default(),
        Offset(20),
        Offset(15),
        at(7),
    );
    assert_eq!(leader.isr(), vec![NodeId(9)]);
    assert_eq!(leader.high_watermark(), Offset(15));
    assert_eq!(leader.log_end(), Offset(20));
    assert_eq!(leader.durable_end(), Offset(15));
    let expected = FollowerProgress {
        fetch_offset: Offset(0),
        written_end: Offset(0),
        durable_end: Offset(0),
        last_fetch: None,
        last_caught_up: at(7),
        in_isr: false,
    };
    let followers: Vec<_> = leader.followers().collect();
    assert_eq!(
        followers,
        vec![(NodeId(3), &expected), (NodeId(5), &expected)]
    );
    assert_eq!(leader.next_deadline(), None);
    assert_eq!(leader.stats(), &LeaderStats::default());
}

// The ISR lists the leader first even when its id is the largest, then members by id.
#[test]
fn isr_order() {
    let mut leader = Leader::new(
        NodeId(9),
        &[NodeId(5), NodeId(3)],
        Policy::default(),
        Offset(0),
        Offset(0),
        at(0),
    );
    join(&mut leader, at(1), NodeId(5), 0);
    join(&mut leader, at(1), NodeId(3), 0);
    assert_eq!(leader.isr(), vec![NodeId(9), NodeId(3), NodeId(5)]);
}

// The scenario of the design brief, event by event: sync, RF3, min_insync 2.
#[test]
fn sync_scenario_hw_and_lagging_follower() {
    let policy = Policy {
        min_insync_replicas: 2,
        ..policy(AckMode::Sync)
    };
    let mut leader = new_leader(policy, &[A, B]);
    join(&mut leader, at(0), A, 0);
    join(&mut leader, at(0), B, 0);
    assert_eq!(leader.check_produce(), Ok(()));
    leader.on_appended(at(1), Offset(10));
    leader.wait_ack(at(1), AckId(1), Offset(5), at(FAR));
    leader.wait_ack(at(1), AckId(2), Offset(10), at(FAR));
    leader.on_local_durable(at(1), Offset(10));
    assert_eq!(drain(&mut leader), vec![]);
    fetch(&mut leader, at(2), A, 10, 10);
    assert_eq!(drain(&mut leader), vec![], "B holds the HW at 0");
    fetch(&mut leader, at(2), B, 5, 5);
    let advanced = vec![
        LeaderCommand::HighWatermark(Offset(5)),
        ack(1, AckOutcome::Acked),
    ];
    assert_eq!(drain(&mut leader), advanced);
    // B fetched behind the log end, so it was last caught up at its previous fetch (t=0).
    assert_eq!(leader.follower(B).expect("known").last_caught_up, at(0));
    leader.on_tick(at(10_000));
    assert_eq!(drain(&mut leader), vec![]);
    leader.on_tick(at(10_001));
    let shrunk = vec![
        LeaderCommand::IsrShrunk {
            follower: B,
            lag_ms: 10_001,
        },
        LeaderCommand::HighWatermark(Offset(10)),
        ack(2, AckOutcome::Acked),
    ];
    assert_eq!(drain(&mut leader), shrunk);
    assert_eq!(leader.isr(), vec![LEADER, A]);
    assert_eq!(leader.stats().isr_shrinks, 1);
    assert_eq!(leader.stats().isr_expands, 2);
}

// Kafka's caught-up rule: at the log end -> now; at or past the log end of the previous
// fetch -> the previous fetch's time; otherwise unchanged. A durable report changes nothing.
#[test]
fn caught_up_time_rule() {
    let mut leader = new_leader(Policy::default(), &[A]);
    leader.on_appended(at(100), Offset(10));
    let caught_up = |leader: &Leader| leader.follower(A).expect("known").last_caught_up;
    fetch(&mut leader, at(200), A, 5, 0);
    assert_eq!(caught_up(&leader), at(0), "behind, and no previous fetch");
    leader.on_appended(at(300), Offset(20));
    fetch(&mut leader, at(400), A, 10, 0);
    assert_eq!(
        caught_up(&leader),
        at(200),
        "reached the log end of the fetch at 200"
    );
    fetch(&mut leader, at(600), A, 12, 0);
    assert_eq!(
        caught_up(&leader),
        at(200),
        "behind the log end of the fetch at 400"
    );
    fetch(&mut leader, at(800), A, 20, 0);
    assert_eq!(caught_up(&leader), at(800), "at the log end");
    report(&mut leader, at(900), A, 20);
    assert_eq!(
        caught_up(&leader),
        at(800),
        "a report does not show what it has"
    );
    let progress = leader.follower(A).expect("known");
    assert_eq!(progress.last_fetch, Some(at(800)));
    assert_eq!(progress.fetch_offset, Offset(20));
    assert_eq!(progress.durable_end, Offset(20));
}

// Join rule: never on first contact; then when caught up within the lag and durable at the HW
// of the previous contact. A durable report can complete the join.
#[test]
fn join_needs_previous_contact_and_its_high_watermark() {
    let mut leader = Leader::new(
        LEADER,
        &[A],
        Policy::default(),
        Offset(10),
        Offset(10),
        at(0),
    );
    report(&mut leader, at(1), A, 10);
    assert_eq!(
        drain(&mut leader),
        vec![],
        "a report is no fetch: never heard from"
    );
    fetch(&mut leader, at(1), A, 10, 4);
    assert_eq!(
        drain(&mut leader),
        vec![],
        "first contact, durable 4 < HW 10"
    );
    fetch(&mut leader, at(2), A, 10, 8);
    assert_eq!(
        drain(&mut leader),
        vec![],
        "durable 8 < HW 10 of the previous fetch"
    );
    report(&mut leader, at(3), A, 10);
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::IsrExpanded { follower: A }]
    );
    assert_eq!(leader.stats().isr_expands, 1);
}

// A follower whose first fetch finds it durable at the leader's HW joins at once (an idle
// partition would otherwise wait out one whole fetch wait at the leader).
#[test]
fn caught_up_follower_joins_at_its_first_fetch() {
    let mut leader = Leader::new(
        LEADER,
        &[A],
        Policy::default(),
        Offset(10),
        Offset(10),
        at(0),
    );
    fetch(&mut leader, at(1), A, 10, 10);
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::IsrExpanded { follower: A }]
    );
}

// Under continuous load a follower is one round behind: it joins when durable at the HW of
// its previous contact even if the HW moved on since, and the HW does not go back.
#[test]
fn join_tolerates_one_round_of_lag_and_hw_stays() {
    let mut leader = new_leader(Policy::default(), &[A, B]);
    join(&mut leader, at(0), A, 0);
    leader.on_appended(at(1), Offset(10));
    leader.on_local_durable(at(1), Offset(10));
    fetch(&mut leader, at(1), A, 10, 10);
    fetch(&mut leader, at(1), B, 10, 0);
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::HighWatermark(Offset(10))]
    );
    leader.on_appended(at(2), Offset(20));
    leader.on_local_durable(at(2), Offset(20));
    fetch(&mut leader, at(2), A, 20, 20);
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::HighWatermark(Offset(20))]
    );
    // B's previous contact saw HW 10; it is durable at 15 and fetched the previous log end.
    fetch(&mut leader, at(3), B, 10, 15);
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::IsrExpanded { follower: B }]
    );
    assert_eq!(
        leader.high_watermark(),
        Offset(20),
        "the HW never decreases"
    );
}

// A follower that is durable enough but not caught up within the lag does not join; it
// joins at the fetch that reaches the log end.
#[test]
fn lagging_follower_does_not_join() {
    let mut leader = Leader::new(
        LEADER,
        &[A],
        Policy::default(),
        Offset(10),
        Offset(0),
        at(0),
    );
    fetch(&mut leader, at(20_000), A, 0, 0);
    fetch(&mut leader, at(20_001), A, 0, 0);
    assert_eq!(
        drain(&mut leader),
        vec![],
        "durable 0 >= HW 0, but lagging 20 s"
    );
    fetch(&mut leader, at(20_002), A, 10, 0);
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::IsrExpanded { follower: A }]
    );
}

// Leave rule at its boundary: a lag of exactly replica_lag_max_ms stays, one more millisecond
// leaves; next_deadline names that millisecond. A follower outside the ISR has no expiry.
#[test]
fn leave_rule_boundary_and_deadline() {
    let mut leader = new_leader(Policy::default(), &[A, B]);
    join(&mut leader, at(5), A, 0);
    assert_eq!(leader.next_deadline(), Some(at(10_006)));
    leader.on_tick(at(10_005));
    assert_eq!(drain(&mut leader), vec![]);
    leader.on_tick(Time(at(10_006).0 - 1));
    assert_eq!(
        drain(&mut leader),
        vec![],
        "10 000.999 ms rounds down to 10 000"
    );
    leader.on_tick(at(10_006));
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::IsrShrunk {
            follower: A,
            lag_ms: 10_001
        }]
    );
    assert_eq!(leader.next_deadline(), None);
}

// HW = min(durable end) over the ISR, bounded by the leader's own durable end; followers
// outside the ISR do not hold it back; one command per advance, none without one.
#[test]
fn high_watermark_rules() {
    let mut leader = new_leader(Policy::default(), &[A, B]);
    join(&mut leader, at(0), A, 0);
    leader.on_appended(at(1), Offset(10));
    fetch(&mut leader, at(2), A, 10, 10);
    assert_eq!(drain(&mut leader), vec![], "the leader is not durable yet");
    leader.on_local_durable(at(3), Offset(6));
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::HighWatermark(Offset(6))]
    );
    leader.on_local_durable(at(4), Offset(10));
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::HighWatermark(Offset(10))]
    );
    report(&mut leader, at(5), B, 0);
    assert_eq!(drain(&mut leader), vec![], "B is outside the ISR");
    // A follower's durable end going backwards (a lost disk) does not lower the HW.
    report(&mut leader, at(6), A, 3);
    assert_eq!(drain(&mut leader), vec![]);
    assert_eq!(leader.high_watermark(), Offset(10));
}

// check_produce: in sync mode an ISR below min_insync_replicas refuses, counted; other modes
// accept with the same ISR.
#[test]
fn check_produce_not_enough_replicas() {
    for mode in AckMode::ALL {
        let policy = Policy {
            min_insync_replicas: 2,
            ..policy(mode)
        };
        let mut leader = new_leader(policy, &[A, B]);
        if mode == AckMode::Sync {
            assert_eq!(leader.check_produce(), Err(AckError::NotEnoughReplicas));
            assert_eq!(leader.stats().not_enough_replicas, 1);
            join(&mut leader, at(0), A, 0);
        }
        assert_eq!(leader.check_produce(), Ok(()), "{mode:?}");
        assert_eq!(
            drain(&mut leader),
            vec![],
            "{mode:?}: a refusal is a return value"
        );
    }
}

// Sync: the ISR shrinking below min_insync_replicas while an ack waits fails it after the
// append, in the same step as the shrink, even though the HW then passes it.
#[test]
fn sync_fails_after_append_when_isr_shrinks() {
    let policy = Policy {
        min_insync_replicas: 2,
        ..policy(AckMode::Sync)
    };
    let mut leader = new_leader(policy, &[A]);
    join(&mut leader, at(0), A, 0);
    leader.on_appended(at(1), Offset(10));
    leader.on_local_durable(at(1), Offset(10));
    leader.wait_ack(at(1), AckId(1), Offset(10), at(FAR));
    assert_eq!(drain(&mut leader), vec![]);
    leader.on_tick(at(10_001));
    let expected = vec![
        LeaderCommand::IsrShrunk {
            follower: A,
            lag_ms: 10_001,
        },
        LeaderCommand::HighWatermark(Offset(10)),
        failed(1, AckError::NotEnoughReplicasAfterAppend),
    ];
    assert_eq!(drain(&mut leader), expected);
    assert_eq!(leader.stats().not_enough_replicas_after_append, 1);
    // An ack registered while the ISR is already too small fails at once.
    leader.wait_ack(at(10_002), AckId(2), Offset(10), at(FAR));
    assert_eq!(
        drain(&mut leader),
        vec![failed(2, AckError::NotEnoughReplicasAfterAppend)]
    );
    assert_eq!(leader.stats().not_enough_replicas_after_append, 2);
}

// Sync: an ISR member that never becomes durable holds the HW, so the ack times out at its
// deadline (and not a microsecond before), counted.
#[test]
fn sync_times_out() {
    let mut leader = new_leader(policy(AckMode::Sync), &[A]);
    join(&mut leader, at(0), A, 0);
    leader.on_appended(at(1), Offset(10));
    leader.on_local_durable(at(1), Offset(10));
    leader.wait_ack(at(1), AckId(1), Offset(10), at(500));
    assert_eq!(leader.next_deadline(), Some(at(500)));
    leader.on_tick(Time(at(500).0 - 1));
    assert_eq!(drain(&mut leader), vec![]);
    leader.on_tick(at(500));
    assert_eq!(drain(&mut leader), vec![failed(1, AckError::TimedOut)]);
    assert_eq!(leader.stats().timed_out, 1);
}

// Async: acked when the leader is durable, before the HW (followers) passes it; an ack whose
// condition already holds resolves inside wait_ack.
#[test]
fn async_acks_on_leader_durable() {
    let mut leader = new_leader(policy(AckMode::Async), &[A]);
    join(&mut leader, at(0), A, 0);
    leader.on_appended(at(1), Offset(10));
    leader.wait_ack(at(1), AckId(1), Offset(10), at(FAR));
    assert_eq!(drain(&mut leader), vec![]);
    leader.on_local_durable(at(2), Offset(10));
    assert_eq!(drain(&mut leader), vec![ack(1, AckOutcome::Acked)]);
    assert_eq!(leader.high_watermark(), Offset(0), "visibility waits for A");
    leader.wait_ack(at(3), AckId(2), Offset(4), at(FAR));
    assert_eq!(drain(&mut leader), vec![ack(2, AckOutcome::Acked)]);
}

// Async: the deadline passes before the leader's fdatasync.
#[test]
fn async_times_out() {
    let mut leader = new_leader(policy(AckMode::Async), &[]);
    leader.on_appended(at(1), Offset(10));
    leader.wait_ack(at(1), AckId(1), Offset(10), at(100));
    leader.on_tick(at(100));
    assert_eq!(drain(&mut leader), vec![failed(1, AckError::TimedOut)]);
    leader.on_local_durable(at(101), Offset(10));
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::HighWatermark(Offset(10))],
        "resolved once"
    );
}

fn semi_sync(degrade: bool) -> Policy {
    Policy {
        semi_sync_degrade: degrade,
        ..policy(AckMode::SemiSync)
    }
}

// Semi-sync: the leader and one follower durable, in either order; the follower need not be
// in the ISR. (A follower whose report reached the HW of that moment joins the ISR at the next
// step, so joins show up among the commands.)
#[test]
fn semi_sync_acks_with_leader_and_followers() {
    let mut leader = new_leader(semi_sync(false), &[A, B]);
    leader.on_appended(at(0), Offset(10));
    leader.wait_ack(at(0), AckId(1), Offset(10), at(FAR));
    leader.on_local_durable(at(1), Offset(10));
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::HighWatermark(Offset(10))]
    );
    report(&mut leader, at(2), A, 10);
    assert_eq!(drain(&mut leader), vec![ack(1, AckOutcome::Acked)]);
    assert!(
        !leader.follower(A).expect("known").in_isr,
        "A counted from outside the ISR"
    );
    leader.on_appended(at(3), Offset(20));
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::IsrExpanded { follower: A }]
    );
    // The follower before the leader.
    leader.wait_ack(at(3), AckId(2), Offset(20), at(FAR));
    report(&mut leader, at(4), B, 20);
    assert_eq!(drain(&mut leader), vec![]);
    leader.on_local_durable(at(5), Offset(20));
    // A, durable at 10, holds the HW; B is the semi-sync replica.
    let expected = vec![
        LeaderCommand::IsrExpanded { follower: B },
        ack(2, AckOutcome::Acked),
    ];
    assert_eq!(drain(&mut leader), expected);
    assert_eq!(leader.high_watermark(), Offset(10));
}

// Semi-sync without degrade: at registration + semi_sync_timeout_ms the ack fails after the
// append, counted; next_deadline names that time.
#[test]
fn semi_sync_timeout_fails() {
    let mut leader = new_leader(semi_sync(false), &[A]);
    leader.on_appended(at(0), Offset(10));
    leader.on_local_durable(at(0), Offset(10));
    drain(&mut leader);
    leader.wait_ack(at(10), AckId(1), Offset(10), at(FAR));
    assert_eq!(leader.next_deadline(), Some(at(1_010)));
    leader.on_tick(at(1_009));
    assert_eq!(drain(&mut leader), vec![]);
    leader.on_tick(at(1_010));
    assert_eq!(
        drain(&mut leader),
        vec![failed(1, AckError::NotEnoughReplicasAfterAppend)]
    );
    assert_eq!(leader.stats().not_enough_replicas_after_append, 1);
    assert_eq!(leader.stats().degraded_acks, 0);
}

// Semi-sync with degrade: at the timeout the ack is degraded as soon as the leader is durable
// (at once if it is, later if not), counted; a follower arriving first still makes it Acked.
#[test]
fn semi_sync_timeout_degrades() {
    let mut leader = new_leader(semi_sync(true), &[A]);
    leader.on_appended(at(0), Offset(30));
    leader.on_local_durable(at(0), Offset(10));
    drain(&mut leader);
    leader.wait_ack(at(0), AckId(1), Offset(10), at(FAR));
    leader.wait_ack(at(0), AckId(2), Offset(20), at(FAR));
    leader.wait_ack(at(0), AckId(3), Offset(30), at(FAR));
    leader.on_tick(at(1_000));
    assert_eq!(drain(&mut leader), vec![ack(1, AckOutcome::Degraded)]);
    // The semi-sync timeouts passed: only the deadlines remain.
    assert_eq!(leader.next_deadline(), Some(at(FAR)));
    leader.on_local_durable(at(1_500), Offset(20));
    let expected = vec![
        LeaderCommand::HighWatermark(Offset(20)),
        ack(2, AckOutcome::Degraded),
    ];
    assert_eq!(drain(&mut leader), expected);
    report(&mut leader, at(1_600), A, 30);
    assert_eq!(drain(&mut leader), vec![]);
    leader.on_local_durable(at(1_700), Offset(30));
    let expected = vec![
        LeaderCommand::IsrExpanded { follower: A },
        LeaderCommand::HighWatermark(Offset(30)),
        ack(3, AckOutcome::Acked),
    ];
    assert_eq!(drain(&mut leader), expected);
    assert_eq!(leader.stats().degraded_acks, 2);
}

// Semi-sync: a request deadline earlier than the semi-sync timeout wins; with degrade, a
// leader that never becomes durable ends in a timeout too.
#[test]
fn semi_sync_deadline_wins() {
    let mut leader = new_leader(semi_sync(true), &[A]);
    leader.on_appended(at(0), Offset(10));
    leader.wait_ack(at(0), AckId(1), Offset(10), at(500));
    leader.wait_ack(at(0), AckId(2), Offset(10), at(5_000));
    assert_eq!(leader.next_deadline(), Some(at(500)));
    leader.on_tick(at(500));
    assert_eq!(drain(&mut leader), vec![failed(1, AckError::TimedOut)]);
    leader.on_tick(at(1_000));
    assert_eq!(
        drain(&mut leader),
        vec![],
        "degraded, but the leader is not durable"
    );
    leader.on_tick(at(5_000));
    assert_eq!(drain(&mut leader), vec![failed(2, AckError::TimedOut)]);
    assert_eq!(leader.stats().timed_out, 2);
}

// Quorum: a majority of the replicas durable (ISR or not), the leader among them.
#[test]
fn quorum_majority_with_leader() {
    let mut leader = new_leader(policy(AckMode::Quorum), &[A, B]);
    leader.on_appended(at(0), Offset(10));
    leader.wait_ack(at(0), AckId(1), Offset(10), at(FAR));
    report(&mut leader, at(1), A, 10);
    assert_eq!(drain(&mut leader), vec![]);
    report(&mut leader, at(1), B, 10);
    // Two of three, but not the leader's own disk. A, durable at the HW of its report, joins.
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::IsrExpanded { follower: A }]
    );
    leader.on_local_durable(at(2), Offset(10));
    let expected = vec![
        LeaderCommand::IsrExpanded { follower: B },
        LeaderCommand::HighWatermark(Offset(10)),
        ack(1, AckOutcome::Acked),
    ];
    assert_eq!(drain(&mut leader), expected);
    leader.on_appended(at(3), Offset(20));
    leader.on_local_durable(at(3), Offset(20));
    leader.wait_ack(at(3), AckId(2), Offset(20), at(FAR));
    assert_eq!(drain(&mut leader), vec![], "the ISR holds the HW at 10");
    report(&mut leader, at(4), B, 20);
    assert_eq!(drain(&mut leader), vec![ack(2, AckOutcome::Acked)]);
}

// Quorum with four replicas needs three; with one, the leader alone; without a majority the
// deadline fails it.
#[test]
fn quorum_sizes_and_timeout() {
    let mut leader = new_leader(policy(AckMode::Quorum), &[A, B, C]);
    leader.on_appended(at(0), Offset(10));
    leader.on_local_durable(at(0), Offset(10));
    leader.wait_ack(at(0), AckId(1), Offset(10), at(FAR));
    leader.wait_ack(at(0), AckId(2), Offset(10), at(FAR));
    report(&mut leader, at(1), A, 10);
    assert_eq!(
        drain(&mut leader),
        vec![LeaderCommand::HighWatermark(Offset(10))]
    );
    report(&mut leader, at(2), C, 10);
    let expected = vec![
        LeaderCommand::IsrExpanded { follower: A },
        ack(1, AckOutcome::Acked),
        ack(2, AckOutcome::Acked),
    ];
    assert_eq!(drain(&mut leader), expected);

    let mut single = new_leader(policy(AckMode::Quorum), &[]);
    single.on_appended(at(0), Offset(10));
    single.wait_ack(at(0), AckId(1), Offset(10), at(FAR));
    single.on_local_durable(at(1), Offset(10));
    let expected = vec![
        LeaderCommand::HighWatermark(Offset(10)),
        ack(1, AckOutcome::Acked),
    ];
    assert_eq!(drain(&mut single), expected);

    let mut lonely = new_leader(policy(AckMode::Quorum), &[A, B]);
    lonely.on_appended(at(0), Offset(10));
    lonely.on_local_durable(at(0), Offset(10));
    lonely.wait_ack(at(0), AckId(1), Offset(10), at(300));
    lonely.on_tick(at(300));
    let expected = vec![
        LeaderCommand::HighWatermark(Offset(10)),
        failed(1, AckError::TimedOut),
    ];
    assert_eq!(drain(&mut lonely), expected);
}

// Acks resolve in the order their conditions hold; acks whose conditions hold in the same
// step resolve in registration order.
#[test]
fn ack_order() {
    let mut leader = new_leader(policy(AckMode::Async), &[]);
    leader.on_appended(at(0), Offset(10));
    leader.wait_ack(at(0), AckId(1), Offset(10), at(FAR));
    leader.wait_ack(at(0), AckId(2), Offset(5), at(FAR));
    leader.wait_ack(at(0), AckId(3), Offset(10), at(FAR));
    leader.on_local_durable(at(1), Offset(5));
    let expected = vec![
        LeaderCommand::HighWatermark(Offset(5)),
        ack(2, AckOutcome::Acked),
    ];
    assert_eq!(drain(&mut leader), expected);
    leader.on_local_durable(at(2), Offset(10));
    let expected = vec![
        LeaderCommand::HighWatermark(Offset(10)),
        ack(1, AckOutcome::Acked),
        ack(3, AckOutcome::Acked),
    ];
    assert_eq!(drain(&mut leader), expected);
    leader.on_tick(at(FAR));
    assert_eq!(drain(&mut leader), vec![], "each ack is resolved once");
}

// next_deadline is the earliest of ack deadlines, semi-sync timeouts and ISR expiries.
#[test]
fn next_deadline_is_the_earliest() {
    let mut leader = new_leader(semi_sync(false), &[A]);
    assert_eq!(leader.next_deadline(), None);
    join(&mut leader, at(0), A, 0);
    assert_eq!(leader.next_deadline(), Some(at(10_001)));
    leader.on_appended(at(0), Offset(10));
    leader.wait_ack(at(0), AckId(1), Offset(10), at(800));
    assert_eq!(leader.next_deadline(), Some(at(800)));
    leader.wait_ack(at(100), AckId(2), Offset(10), at(FAR));
    assert_eq!(leader.next_deadline(), Some(at(800)));
    leader.on_tick(at(800));
    assert_eq!(drain(&mut leader), vec![failed(1, AckError::TimedOut)]);
    assert_eq!(
        leader.next_deadline(),
        Some(at(1_100)),
        "ack 2's semi-sync timeout"
    );
}

// Handlers with a node that is not a follower (or is the leader) return UnknownFollower and
// change nothing.
#[test]
fn unknown_follower() {
    let mut leader = new_leader(Policy::default(), &[A]);
    let error = leader.on_fetch(at(1), NodeId(9), Offset(0), Offset(0), Offset(0));
    assert_eq!(error, Err(UnknownFollower(NodeId(9))));
    let error = leader.on_durable_report(at(1), LEADER, Offset(0), Offset(0));
    assert_eq!(error, Err(UnknownFollower(LEADER)));
    assert_eq!(
        UnknownFollower(NodeId(9)).to_string(),
        "node 9 is not a follower of this partition"
    );
    assert_eq!(drain(&mut leader), vec![]);
    leader.on_tick(at(0));
    assert_eq!(
        leader.now_latest,
        at(0),
        "a refused call does not move the clock"
    );
}

// A time earlier than one already seen counts as the latest one.
#[test]
fn time_does_not_go_back() {
    let mut leader = new_leader(Policy::default(), &[A]);
    leader.on_tick(at(100));
    fetch(&mut leader, at(50), A, 0, 0);
    assert_eq!(leader.follower(A).expect("known").last_fetch, Some(at(100)));
}

// Programmer errors panic: the leader as its own follower, an invalid policy, a log end
// going back, an ack past the log end.
#[test]
#[should_panic(expected = "listed as its own follower")]
fn leader_as_follower_panics() {
    let _ = new_leader(Policy::default(), &[A, LEADER]);
}

#[test]
#[should_panic(expected = "min_insync_replicas")]
fn invalid_policy_panics() {
    let policy = Policy {
        min_insync_replicas: 3,
        ..Policy::default()
    };
    let _ = new_leader(policy, &[A]);
}

#[test]
#[should_panic(expected = "log_end=5 < 10")]
fn log_end_going_back_panics() {
    let mut leader = new_leader(Policy::default(), &[]);
    leader.on_appended(at(0), Offset(10));
    leader.on_appended(at(0), Offset(5));
}

#[test]
#[should_panic(expected = "next_offset=11 log_end=10")]
fn ack_past_log_end_panics() {
    let mut leader = new_leader(Policy::default(), &[]);
    leader.on_appended(at(0), Offset(10));
    leader.wait_ack(at(0), AckId(1), Offset(11), at(FAR));
}

/// One random event; the `u64`s pick positions inside the ranges that keep it valid.
#[derive(Clone, Debug)]
enum Event {
    Append {
        records: u64,
    },
    LocalDurable {
        pick: u64,
    },
    Fetch {
        follower: usize,
        written_pick: u64,
        durable_pick: u64,
    },
    Report {
        follower: usize,
        durable_pick: u64,
    },
    Tick,
    WaitAck {
        offset_pick: u64,
        deadline_ms: u64,
    },
}

fn event() -> impl Strategy<Value = (u64, Event)> {
    let event = prop_oneof![
        (0..20u64).prop_map(|records| Event::Append { records }),
        any::<u64>().prop_map(|pick| Event::LocalDurable { pick }),
        (0..3usize, any::<u64>(), any::<u64>()).prop_map(
            |(follower, written_pick, durable_pick)| {
                Event::Fetch {
                    follower,
                    written_pick,
                    durable_pick,
                }
            }
        ),
        (0..3usize, any::<u64>()).prop_map(|(follower, durable_pick)| Event::Report {
            follower,
            durable_pick
        }),
        Just(Event::Tick),
        (any::<u64>(), 0..5_000u64).prop_map(|(offset_pick, deadline_ms)| Event::WaitAck {
            offset_pick,
            deadline_ms
        }),
    ];
    (prop_oneof![0..50u64, 0..3_000u64, 0..15_000u64], event)
}

fn policy_strategy() -> impl Strategy<Value = (usize, Policy)> {
    let modes = prop::sample::select(AckMode::ALL.to_vec());
    (
        0..=3usize,
        modes,
        1..=3usize,
        1..=4usize,
        1..2_000u64,
        any::<bool>(),
        1..12_000u64,
    )
        .prop_map(
            |(followers, mode, semi_sync, min_insync, timeout_ms, degrade, lag_ms)| {
                let replicas = 1 + followers;
                let ack_mode = if mode == AckMode::SemiSync && followers == 0 {
                    AckMode::Async
                } else {
                    mode
                };
                let policy = Policy {
                    ack_mode,
                    semi_sync_replicas: 1 + (semi_sync - 1) % followers.max(1),
                    semi_sync_timeout_ms: timeout_ms,
                    semi_sync_degrade: degrade,
                    min_insync_replicas: 1 + (min_insync - 1) % replicas,
                    replica_lag_max_ms: lag_ms,
                };
                (followers, policy)
            },
        )
}

/// A value in `[low, high]` chosen by `pick`.
fn between(low: u64, high: u64, pick: u64) -> u64 {
    low + pick % (high - low + 1)
}

/// The test's own view: each follower's ends (monotone), the acks registered and resolved.
struct Model {
    followers: Vec<NodeId>,
    written: Vec<u64>,
    durable: Vec<u64>,
    acks: BTreeMap<AckId, Offset>,
    resolved: BTreeMap<AckId, AckOutcome>,
    high_watermark: Offset,
    next_id: u64,
}

impl Model {
    fn apply(&mut self, leader: &mut Leader, now: Time, event: &Event) {
        let log_end = leader.log_end().0;
        match *event {
            Event::Append { records } => leader.on_appended(now, Offset(log_end + records)),
            Event::LocalDurable { pick } => {
                let durable_end = between(leader.durable_end().0, log_end, pick);
                leader.on_local_durable(now, Offset(durable_end));
            }
            Event::Fetch {
                follower,
                written_pick,
                durable_pick,
            } => {
                let Some(&id) = self.followers.get(follower) else {
                    return;
                };
                self.written[follower] = between(self.written[follower], log_end, written_pick);
                let written = self.written[follower];
                self.durable[follower] = between(self.durable[follower], written, durable_pick);
                let ends = (Offset(written), Offset(self.durable[follower]));
                let result = leader.on_fetch(now, id, Offset(written), ends.0, ends.1);
                result.expect("a known follower");
            }
            Event::Report {
                follower,
                durable_pick,
            } => {
                let Some(&id) = self.followers.get(follower) else {
                    return;
                };
                let written = self.written[follower];
                self.durable[follower] = between(self.durable[follower], written, durable_pick);
                let durable = Offset(self.durable[follower]);
                let result = leader.on_durable_report(now, id, Offset(written), durable);
                result.expect("a known follower");
            }
            Event::Tick => leader.on_tick(now),
            Event::WaitAck {
                offset_pick,
                deadline_ms,
            } => {
                let id = AckId(self.next_id);
                self.next_id += 1;
                let next_offset = Offset(between(0, log_end, offset_pick));
                self.acks.insert(id, next_offset);
                leader.wait_ack(now, id, next_offset, now.add_ms(deadline_ms));
            }
        }
    }

    /// The invariants after a step, from its commands and the leader's state.
    fn check(&mut self, leader: &mut Leader) {
        leader.check_invariants();
        let commands: Vec<_> = leader.drain_commands().collect();
        for command in commands {
            match command {
                LeaderCommand::HighWatermark(offset) => {
                    assert!(
                        offset > self.high_watermark,
                        "{offset} <= {}",
                        self.high_watermark
                    );
                    self.high_watermark = offset;
                }
                LeaderCommand::Ack { id, outcome } => self.check_ack(leader, id, outcome),
                LeaderCommand::IsrShrunk { .. } | LeaderCommand::IsrExpanded { .. } => {}
            }
        }
        assert_eq!(self.high_watermark, leader.high_watermark());
        assert!(leader.high_watermark() <= leader.durable_end());
        if let Some(deadline) = leader.next_deadline() {
            assert!(deadline > leader.now_latest);
        }
    }

    fn check_ack(&mut self, leader: &Leader, id: AckId, outcome: AckOutcome) {
        let next_offset = *self.acks.get(&id).expect("a registered id");
        let previous = self.resolved.insert(id, outcome);
        assert_eq!(previous, None, "{id:?} resolved twice");
        let policy = leader.policy();
        let durable_followers = leader
            .followers()
            .filter(|(_, progress)| progress.durable_end >= next_offset)
            .count();
        match outcome {
            AckOutcome::Acked | AckOutcome::Degraded => {
                assert!(
                    next_offset <= leader.durable_end(),
                    "{id:?} acked past the leader's disk"
                );
            }
            AckOutcome::Failed(error) => assert_ne!(error, AckError::NotEnoughReplicas),
        }
        match (outcome, policy.ack_mode) {
            (AckOutcome::Acked, AckMode::Sync) => {
                assert!(
                    next_offset <= leader.high_watermark(),
                    "sync ack above the HW"
                );
                assert!(leader.isr().len() >= policy.min_insync_replicas);
            }
            (AckOutcome::Acked, AckMode::Quorum) => {
                let replicas = 1 + leader.followers().count();
                assert!(
                    1 + durable_followers > replicas / 2,
                    "quorum ack without a majority"
                );
            }
            (AckOutcome::Acked, AckMode::SemiSync) => {
                assert!(durable_followers >= policy.semi_sync_replicas);
            }
            (AckOutcome::Degraded, mode) => {
                assert_eq!(mode, AckMode::SemiSync);
                assert!(policy.semi_sync_degrade);
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // Random valid event sequences (ends monotone per replica, time moving forward) keep the
    // invariants after every step: the HW only rises and stays at or below the leader's durable
    // end; every Acked or Degraded ack is durable on the leader; sync acks are below the HW
    // with enough ISR members; quorum and semi-sync acks have their replicas; each ack is
    // resolved once. A final tick past every deadline resolves every ack.
    #[test]
    fn random_events_keep_invariants(
        (followers_count, policy) in policy_strategy(),
        events in prop::collection::vec(event(), 0..120),
    ) {
        let followers: Vec<NodeId> = (10..).take(followers_count).map(NodeId).collect();
        let mut leader = Leader::new(LEADER, &followers, policy, Offset(0), Offset(0), at(0));
        let mut model = Model {
            written: vec![0; followers.len()],
            durable: vec![0; followers.len()],
            followers,
            acks: BTreeMap::new(),
            resolved: BTreeMap::new(),
            high_watermark: Offset(0),
            next_id: 0,
        };
        let mut now = at(0);
        for (elapsed_ms, event) in &events {
            now = now.add_ms(*elapsed_ms);
            model.apply(&mut leader, now, event);
            model.check(&mut leader);
        }
        leader.on_tick(now.add_ms(1_000_000));
        model.check(&mut leader);
        let registered: Vec<_> = model.acks.keys().collect();
        let resolved: Vec<_> = model.resolved.keys().collect();
        prop_assert_eq!(registered, resolved);
    }
}
