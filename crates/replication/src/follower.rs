//! The follower's side of one partition: when to fetch, when to report a durable end, and the
//! high watermark (HW) this replica may serve reads below (`docs/replication.md`).
//!
//! The follower keeps one fetch in flight, a long poll. When it has appended a response it
//! fetches again; when its durable end advances while a fetch is parked, it sends a durable
//! report so the leader's HW does not wait for the next fetch. The leader tells it of a HW
//! that moved meanwhile with a notice that leaves the fetch parked.
//!
//! Invariants (checked by [`Follower::check_invariants`] after every mutating call in debug
//! builds):
//!
//! - `high_watermark <= durable_end <= log_end`; all three never decrease.
//! - `high_watermark <= max(every leader HW received)`: a follower never shows what the
//!   leader has not committed, nor what it has not made durable itself.
//! - The durable end last sent (in a fetch or a report) is at most the durable end.
//! - At most one fetch is in flight.

use ringlog_types::{Epoch, Offset};

/// What the next fetch asks for and reports: the fields of a `Fetch` frame that replication
/// decides (the server adds topic, partition, `max_bytes` and `max_wait_ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchArgs {
    /// Fetch from here: the follower's log end.
    pub fetch_offset: Offset,
    /// The epoch of the follower's last batch; `None` if its log is empty.
    pub last_fetched_epoch: Option<Epoch>,
    /// The follower's written end. This state machine does not see the WAL's written end
    /// separately, so it reports its log end (everything appended to its WAL).
    pub written_end: Offset,
    /// The follower's durable end.
    pub durable_end: Offset,
}

/// The follower's replication state for one partition.
#[derive(Clone, Debug)]
pub struct Follower {
    log_end: Offset,
    durable_end: Offset,
    last_epoch: Option<Epoch>,
    fetch_in_flight: bool,
    /// The durable end in the latest fetch or durable report sent.
    durable_end_sent: Offset,
    /// The leader's HW, log start and epoch from the latest fetch response.
    leader_high_watermark: Offset,
    leader_log_start: Offset,
    leader_epoch: Option<Epoch>,
    high_watermark: Offset,
}

impl Follower {
    /// A follower whose log ends at `log_end`, durable up to `durable_end`, whose last batch
    /// has epoch `last_epoch` (`None` for an empty log). It has not heard from the leader:
    /// its HW is 0 until the first response.
    ///
    /// # Panics
    ///
    /// If `durable_end > log_end`.
    #[must_use]
    pub fn new(log_end: Offset, durable_end: Offset, last_epoch: Option<Epoch>) -> Follower {
        assert!(
            durable_end <= log_end,
            "durable_end={durable_end} log_end={log_end}"
        );
        let follower = Follower {
            log_end,
            durable_end,
            last_epoch,
            fetch_in_flight: false,
            durable_end_sent: Offset(0),
            leader_high_watermark: Offset(0),
            leader_log_start: Offset(0),
            leader_epoch: None,
            high_watermark: Offset(0),
        };
        follower.check_invariants_in_debug();
        follower
    }

    /// The next fetch to send, if none is in flight; it is then in flight until
    /// [`Follower::on_response`] or [`Follower::on_fetch_failed`]. The durable end it carries
    /// counts as sent (see [`Follower::report_due`]).
    pub fn next_fetch(&mut self) -> Option<FetchArgs> {
        if self.fetch_in_flight {
            return None;
        }
        self.fetch_in_flight = true;
        self.durable_end_sent = self.durable_end;
        self.check_invariants_in_debug();
        Some(FetchArgs {
            fetch_offset: self.log_end,
            last_fetched_epoch: self.last_epoch,
            written_end: self.log_end,
            durable_end: self.durable_end,
        })
    }

    /// The fetch in flight was answered; the leader's HW, log start and epoch are remembered.
    /// The server appends the response's records ([`Follower::on_appended`]) before or after
    /// this call.
    ///
    /// # Panics
    ///
    /// If no fetch is in flight: a response matches a fetch the server sent.
    pub fn on_response(
        &mut self,
        leader_hw: Offset,
        leader_log_start: Offset,
        leader_epoch: Epoch,
    ) {
        assert!(
            self.fetch_in_flight,
            "fetch response without a fetch in flight"
        );
        self.fetch_in_flight = false;
        self.learn_leader(leader_hw, leader_log_start, leader_epoch);
    }

    /// The leader's HW notice: its HW moved while this follower's fetch was parked with
    /// nothing to send. Remembered as from a response; the fetch stays in flight, so the
    /// leader can answer it with the next batch at once.
    pub fn on_high_watermark(
        &mut self,
        leader_hw: Offset,
        leader_log_start: Offset,
        leader_epoch: Epoch,
    ) {
        self.learn_leader(leader_hw, leader_log_start, leader_epoch);
    }

    fn learn_leader(&mut self, leader_hw: Offset, leader_log_start: Offset, leader_epoch: Epoch) {
        self.leader_high_watermark = leader_hw;
        self.leader_log_start = leader_log_start;
        self.leader_epoch = Some(leader_epoch);
        self.advance_high_watermark();
        self.check_invariants_in_debug();
    }

    /// The connection to the leader was lost: no fetch is in flight any more.
    pub fn on_fetch_failed(&mut self) {
        self.fetch_in_flight = false;
        self.check_invariants_in_debug();
    }

    /// The follower appended the leader's batches; its log now ends at `log_end` and its last
    /// batch has epoch `last_epoch`.
    ///
    /// # Panics
    ///
    /// If the log end or the last epoch goes backwards.
    pub fn on_appended(&mut self, log_end: Offset, last_epoch: Epoch) {
        assert!(
            log_end >= self.log_end,
            "log_end={log_end} < {}",
            self.log_end
        );
        assert!(
            self.last_epoch.is_none_or(|epoch| last_epoch >= epoch),
            "last_epoch={last_epoch} < {:?}",
            self.last_epoch
        );
        self.log_end = log_end;
        self.last_epoch = Some(last_epoch);
        self.check_invariants_in_debug();
    }

    /// The follower's fdatasync completed up to `durable_end`.
    ///
    /// # Panics
    ///
    /// If `durable_end` goes backwards or passes the log end.
    pub fn on_durable(&mut self, durable_end: Offset) {
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
        self.advance_high_watermark();
        self.check_invariants_in_debug();
    }

    /// `(written_end, durable_end)` for a durable report, when the durable end advanced past
    /// the value last sent in a fetch or a report; that value then counts as sent. The server
    /// sends it while a fetch is parked; calling [`Follower::next_fetch`] first avoids a
    /// report that the fetch carries anyway.
    pub fn report_due(&mut self) -> Option<(Offset, Offset)> {
        if self.durable_end <= self.durable_end_sent {
            return None;
        }
        self.durable_end_sent = self.durable_end;
        self.check_invariants_in_debug();
        Some((self.log_end, self.durable_end))
    }

    /// `min(leader HW, own durable end)`, never decreasing: consumers of this replica read
    /// below it.
    #[must_use]
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The follower's log end: the next offset it will fetch.
    #[must_use]
    pub fn log_end(&self) -> Offset {
        self.log_end
    }

    /// The follower's durable end.
    #[must_use]
    pub fn durable_end(&self) -> Offset {
        self.durable_end
    }

    /// The leader's HW from the latest fetch response (0 before the first).
    #[must_use]
    pub fn leader_high_watermark(&self) -> Offset {
        self.leader_high_watermark
    }

    /// The leader's log start from the latest fetch response (0 before the first).
    #[must_use]
    pub fn leader_log_start(&self) -> Offset {
        self.leader_log_start
    }

    /// The leader's epoch from the latest fetch response (`None` before the first).
    #[must_use]
    pub fn leader_epoch(&self) -> Option<Epoch> {
        self.leader_epoch
    }

    /// Checks every invariant listed in the module documentation.
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
            self.durable_end_sent <= self.durable_end,
            "durable_end_sent={} durable_end={}",
            self.durable_end_sent,
            self.durable_end
        );
    }

    fn check_invariants_in_debug(&self) {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// The clamped HW, kept at its maximum: a leader HW that went back (a restarted leader)
    /// does not hide what this replica already showed.
    fn advance_high_watermark(&mut self) {
        let clamped = self.leader_high_watermark.min(self.durable_end);
        self.high_watermark = self.high_watermark.max(clamped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One fetch in flight at a time: `next_fetch` answers `None` until the response or the
    // failure, and its arguments are the follower's ends and last epoch.
    #[test]
    fn one_fetch_in_flight() {
        let mut follower = Follower::new(Offset(10), Offset(8), Some(Epoch(3)));
        let expected = FetchArgs {
            fetch_offset: Offset(10),
            last_fetched_epoch: Some(Epoch(3)),
            written_end: Offset(10),
            durable_end: Offset(8),
        };
        assert_eq!(follower.next_fetch(), Some(expected));
        assert_eq!(follower.next_fetch(), None);
        follower.on_response(Offset(8), Offset(0), Epoch(3));
        assert_eq!(follower.leader_epoch(), Some(Epoch(3)));
        assert!(follower.next_fetch().is_some());
        follower.on_fetch_failed();
        follower.on_appended(Offset(20), Epoch(4));
        let next = follower
            .next_fetch()
            .expect("no fetch in flight after a failure");
        assert_eq!(next.fetch_offset, Offset(20));
        assert_eq!(next.last_fetched_epoch, Some(Epoch(4)));
    }

    // An empty follower fetches from 0 with no epoch.
    #[test]
    fn empty_follower_fetches_from_zero() {
        let mut follower = Follower::new(Offset(0), Offset(0), None);
        let args = follower.next_fetch().expect("nothing in flight");
        assert_eq!(args.fetch_offset, Offset(0));
        assert_eq!(args.last_fetched_epoch, None);
        assert_eq!(follower.high_watermark(), Offset(0));
    }

    // The HW is the leader's HW clamped to the own durable end, and never decreases, even
    // when the leader reports a lower HW.
    #[test]
    fn high_watermark_is_clamped_and_monotone() {
        let mut follower = Follower::new(Offset(0), Offset(0), None);
        follower.next_fetch();
        follower.on_appended(Offset(120), Epoch(1));
        follower.on_response(Offset(100), Offset(0), Epoch(1));
        assert_eq!(follower.leader_high_watermark(), Offset(100));
        assert_eq!(follower.high_watermark(), Offset(0), "nothing durable yet");
        follower.on_durable(Offset(50));
        assert_eq!(follower.high_watermark(), Offset(50));
        follower.on_durable(Offset(120));
        assert_eq!(
            follower.high_watermark(),
            Offset(100),
            "the leader's HW bounds it"
        );
        follower.next_fetch();
        follower.on_response(Offset(90), Offset(0), Epoch(1));
        assert_eq!(follower.leader_high_watermark(), Offset(90));
        assert_eq!(follower.high_watermark(), Offset(100), "never decreases");
        follower.next_fetch();
        follower.on_response(Offset(130), Offset(0), Epoch(1));
        assert_eq!(
            follower.high_watermark(),
            Offset(120),
            "its durable end bounds it"
        );
    }

    // A report is due only when the durable end passed what the latest fetch or report
    // carried, and only once per advance.
    #[test]
    fn report_due_once_per_advance() {
        let mut follower = Follower::new(Offset(0), Offset(0), None);
        assert_eq!(follower.report_due(), None);
        follower.next_fetch();
        follower.on_appended(Offset(10), Epoch(1));
        assert_eq!(follower.report_due(), None, "appended is not durable");
        follower.on_durable(Offset(6));
        assert_eq!(follower.report_due(), Some((Offset(10), Offset(6))));
        assert_eq!(follower.report_due(), None);
        follower.on_durable(Offset(10));
        follower.on_response(Offset(0), Offset(0), Epoch(1));
        // The next fetch carries the durable end, so no report is due for it.
        let args = follower.next_fetch().expect("nothing in flight");
        assert_eq!(args.durable_end, Offset(10));
        assert_eq!(follower.report_due(), None);
    }

    // A HW notice moves the follower's HW (bounded by its durable end) and leaves the fetch
    // in flight: no second fetch until the parked one is answered.
    #[test]
    fn high_watermark_notice_keeps_the_fetch_parked() {
        let mut follower = Follower::new(Offset(0), Offset(0), None);
        follower.next_fetch().expect("nothing in flight");
        follower.on_response(Offset(0), Offset(0), Epoch(1));
        follower.on_appended(Offset(10), Epoch(1));
        follower
            .next_fetch()
            .expect("the response ended the first fetch");
        follower.on_durable(Offset(10));
        follower.on_high_watermark(Offset(12), Offset(2), Epoch(3));
        assert_eq!(
            follower.high_watermark(),
            Offset(10),
            "its durable end bounds it"
        );
        assert_eq!(follower.leader_high_watermark(), Offset(12));
        assert_eq!(follower.leader_log_start(), Offset(2));
        assert_eq!(follower.leader_epoch(), Some(Epoch(3)));
        assert_eq!(
            follower.next_fetch(),
            None,
            "the parked fetch is still in flight"
        );
        follower.on_response(Offset(12), Offset(2), Epoch(3));
        assert!(follower.next_fetch().is_some());
    }

    // A response without a fetch in flight is a bug in the caller.
    #[test]
    #[should_panic(expected = "without a fetch in flight")]
    fn response_without_fetch_panics() {
        let mut follower = Follower::new(Offset(0), Offset(0), None);
        follower.on_response(Offset(0), Offset(0), Epoch(1));
    }

    // A durable end past the log end is a bug in the caller.
    #[test]
    #[should_panic(expected = "durable_end=11 log_end=10")]
    fn durable_past_log_end_panics() {
        let mut follower = Follower::new(Offset(10), Offset(0), None);
        follower.on_durable(Offset(11));
    }
}
