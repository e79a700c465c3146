//! Replication for ringlog, without I/O: the leader's and the follower's state machines for one
//! partition, the ack modes, the high watermark (HW), the ISR, and the internal frames replicas
//! exchange (DESIGN.md section 4, `docs/replication.md`).
//!
//! This crate owns the decisions: when a produce is acknowledged, when a follower leaves or
//! joins the ISR, where the HW is, what a follower fetches next and when it reports its durable
//! end, and the byte layout of the internal protocol. It does not own sockets, io_uring,
//! threads, the log itself or the clock: the server calls a handler for each event (`on_fetch`,
//! `on_local_durable`, `on_tick`, ...) with the current [`Time`], then drains the commands the
//! handler produced ([`LeaderCommand`]) and executes them. A simulator can drive the same state
//! machines with a fake clock, network and disk.
//!
//! ```
//! use ringlog_replication::{AckId, AckMode, AckOutcome, Leader, LeaderCommand, Policy, Time};
//! use ringlog_types::{NodeId, Offset};
//!
//! let policy = Policy { ack_mode: AckMode::Quorum, ..Policy::default() };
//! let start = Time(0);
//! let (leader_id, follower_id) = (NodeId(1), NodeId(2));
//! let mut leader = Leader::new(leader_id, &[follower_id], policy, Offset(0), Offset(0), start);
//!
//! // A produce appended offsets [0, 10) and waits for its ack.
//! leader.check_produce().expect("quorum checks nothing before the append");
//! leader.on_appended(start, Offset(10));
//! leader.wait_ack(start, AckId(7), Offset(10), start.add_ms(30_000));
//!
//! // The leader's fdatasync completes, then the follower reports its own.
//! leader.on_local_durable(start.add_ms(1), Offset(10));
//! let end = Offset(10);
//! let reported = leader.on_fetch(start.add_ms(2), follower_id, end, end, end);
//! reported.expect("a known follower");
//! let commands: Vec<_> = leader.drain_commands().collect();
//! assert!(commands.contains(&LeaderCommand::Ack { id: AckId(7), outcome: AckOutcome::Acked }));
//! ```
//!
//! Invariants kept by the whole crate:
//!
//! - No handler reads a clock, spawns a thread or touches a socket; time is an argument.
//! - Bytes from the network never cause a panic: [`frame::decode`] returns an error for every
//!   malformed input. Panics are for programmer errors (an offset going backwards, an unknown
//!   ack id reused), and each one is documented.
//! - Acknowledgements come from durable ends only, never from written ends (STYLE.md section 8).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod follower;
pub mod frame;
mod leader;
mod policy;
mod time;

pub use follower::{FetchArgs, Follower};
pub use leader::{
    AckError, AckId, AckOutcome, FollowerProgress, Leader, LeaderCommand, LeaderStats,
    UnknownFollower,
};
pub use policy::{AckMode, Policy};
pub use time::Time;
