//! The per-partition ack tracker: the heart of at-least-once delivery.
//!
//! Kafka remembers one number per partition and group: the committed offset, which is the
//! offset of the *next* record to read (so after handling offset 41, commit 42). daprd acks
//! messages in any order, so the bridge may only commit the end of the *contiguous* run of
//! acked offsets from the start of what it delivered:
//!
//! ```text
//! delivered:  40  41  42  43  44  45
//! acked:       ✓   ✓   ·   ✓   ✓   ·
//!                      ▲
//!          commit position = 42 (the first un-acked offset), never past it
//! ```
//!
//! If the bridge dies now, the group restarts at 42: 42 and 45 are delivered again (and 43,
//! 44 again too: that is the at-least-once window), nothing is lost. Once 42 is acked the
//! position jumps to 45. Offsets may have gaps (compaction, transaction markers); the
//! position then is "one past the last acked", which is still correct for Kafka.
//!
//! Acks that are unknown or repeated change nothing and say so ([`Ack`]), so a confused or
//! late ack can never move the position past an un-acked message.

use std::collections::VecDeque;

/// What an ack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// The offset was delivered and un-acked; it is acked now.
    Acked,
    /// The offset was already acked (a repeated ack).
    Repeated,
    /// The offset was never delivered on this assignment (or already released).
    Unknown,
}

/// Delivered-but-not-released offsets of one partition, in delivery (= offset) order.
#[derive(Debug, Default, Clone)]
pub struct PartitionOffsets {
    /// Delivered offsets from the first un-acked one on, each with its acked flag.
    window: VecDeque<(i64, bool)>,
    /// One past the last offset released from the front of the window.
    released_through: Option<i64>,
    /// Un-acked offsets in the window.
    unacked: usize,
    /// The position last committed (or known to be committed).
    committed: Option<i64>,
}

impl PartitionOffsets {
    /// A tracker whose acked prefix already reaches `position` (not committed yet).
    pub fn starting_at(position: i64) -> Self {
        Self { released_through: Some(position), ..Self::default() }
    }

    /// Records that `offset` is being delivered; returns false if it must not be (it was
    /// delivered before, or lies below the released front, i.e. was acked or skipped over).
    ///
    /// Offsets normally arrive in increasing order within a partition. One that arrives late,
    /// below the newest delivered offset but never delivered itself, is tracked in its place
    /// and holds the commit position like any other: dropping it as a repeat would let the
    /// acks of the offsets around it commit past a message daprd never saw.
    pub fn delivered(&mut self, offset: i64) -> bool {
        if self.released_through.is_some_and(|r| offset < r) {
            return false;
        }
        match self.window.back() {
            Some(&(last, _)) if offset <= last => {
                let Err(at) = self.window.binary_search_by_key(&offset, |(o, _)| *o) else { return false };
                self.window.insert(at, (offset, false));
            }
            _ => self.window.push_back((offset, false)),
        }
        self.unacked += 1;
        true
    }

    /// The newest offset delivered and not released yet.
    pub fn newest(&self) -> Option<i64> {
        self.window.back().map(|(o, _)| *o)
    }

    /// Acks `offset`.
    pub fn ack(&mut self, offset: i64) -> Ack {
        let Ok(index) = self.window.binary_search_by_key(&offset, |(o, _)| *o) else {
            // Below the released front it was acked before (or is a gap nobody delivered).
            return if self.released_through.is_some_and(|r| offset < r) { Ack::Repeated } else { Ack::Unknown };
        };
        if self.window[index].1 {
            return Ack::Repeated;
        }
        self.window[index].1 = true;
        self.unacked -= 1;
        while let Some(&(front, true)) = self.window.front() {
            self.window.pop_front();
            self.released_through = Some(front + 1);
        }
        Ack::Acked
    }

    /// Whether `offset` is delivered and still un-acked.
    pub fn is_unacked(&self, offset: i64) -> bool {
        self.window.binary_search_by_key(&offset, |(o, _)| *o).is_ok_and(|i| !self.window[i].1)
    }

    /// The offset that is safe to commit: the first un-acked delivered offset, else one past
    /// the last acked one. `None` before anything was acked.
    pub fn commit_position(&self) -> Option<i64> {
        match self.window.front() {
            Some(&(first_unacked, _)) => self.released_through.map(|_| first_unacked),
            None => self.released_through,
        }
    }

    /// The position to commit if it moved since the last commit.
    pub fn uncommitted(&self) -> Option<i64> {
        self.commit_position().filter(|p| self.committed.is_none_or(|c| *p > c))
    }

    /// Records that `position` was committed.
    pub fn committed(&mut self, position: i64) {
        self.committed = Some(self.committed.map_or(position, |c| c.max(position)));
    }

    /// Delivered messages not acked yet.
    pub fn in_flight(&self) -> usize {
        self.unacked
    }

    /// Delivered messages from the oldest un-acked one on, acked or not: what the tracker
    /// holds, and what a restart would deliver again.
    pub fn uncommitted_len(&self) -> usize {
        self.window.len()
    }

    /// The oldest delivered offset that is not acked: what holds the commit position.
    pub fn first_unacked(&self) -> Option<i64> {
        self.window.front().map(|(o, _)| *o)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn out_of_order_acks_commit_only_the_contiguous_prefix() {
        let mut p = PartitionOffsets::default();
        for o in 40..46 {
            assert!(p.delivered(o));
        }
        assert_eq!(p.commit_position(), None);
        assert_eq!(p.ack(41), Ack::Acked);
        assert_eq!(p.commit_position(), None, "40 is not acked: nothing is safe to commit");
        assert_eq!(p.ack(40), Ack::Acked);
        assert_eq!(p.commit_position(), Some(42));
        assert_eq!(p.ack(43), Ack::Acked);
        assert_eq!(p.ack(44), Ack::Acked);
        assert_eq!(p.commit_position(), Some(42));
        assert_eq!(p.in_flight(), 2);
        assert_eq!(p.ack(42), Ack::Acked);
        assert_eq!(p.commit_position(), Some(45));
        assert_eq!(p.ack(45), Ack::Acked);
        assert_eq!(p.commit_position(), Some(46));
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn unknown_and_repeated_acks_change_nothing() {
        let mut p = PartitionOffsets::default();
        p.delivered(10);
        p.delivered(11);
        assert_eq!(p.ack(99), Ack::Unknown);
        assert_eq!(p.ack(5), Ack::Unknown);
        assert_eq!(p.ack(11), Ack::Acked);
        assert_eq!(p.ack(11), Ack::Repeated);
        assert_eq!(p.commit_position(), None);
        assert_eq!(p.ack(10), Ack::Acked);
        assert_eq!(p.ack(10), Ack::Repeated);
        assert_eq!(p.commit_position(), Some(12));
        assert!(!p.delivered(11), "an offset at or below one seen is ignored");
    }

    #[test]
    fn a_late_offset_never_delivered_holds_the_position() {
        let mut p = PartitionOffsets::default();
        for o in 12..15 {
            assert!(p.delivered(o));
        }
        assert!(p.delivered(5), "below the newest, never delivered: tracked, not skipped");
        assert!(!p.delivered(5), "and now a repeat");
        assert!(!p.delivered(13), "a repeat of one in the window");
        for o in 12..15 {
            p.ack(o);
        }
        assert!(p.commit_position().is_none_or(|c| c <= 5), "never past the late one");
        assert_eq!(p.in_flight(), 1);
        p.ack(5);
        assert_eq!(p.commit_position(), Some(15));
        assert!(!p.delivered(6), "below the released front: acked or skipped over");
    }

    #[test]
    fn gaps_commit_one_past_the_last_acked() {
        let mut p = PartitionOffsets::default();
        p.delivered(3);
        p.delivered(7);
        p.ack(3);
        assert_eq!(p.commit_position(), Some(7));
        p.ack(7);
        assert_eq!(p.commit_position(), Some(8));
    }

    #[test]
    fn starting_at_a_position_commits_it_and_moves_on() {
        let mut p = PartitionOffsets::starting_at(42);
        assert_eq!(p.uncommitted(), Some(42));
        assert!(!p.delivered(41), "below the start is never delivered");
        assert!(p.delivered(42));
        assert_eq!(p.commit_position(), Some(42));
        p.ack(42);
        assert_eq!(p.uncommitted(), Some(43));
    }

    #[test]
    fn uncommitted_reports_only_progress() {
        let mut p = PartitionOffsets::default();
        p.delivered(0);
        p.ack(0);
        assert_eq!(p.uncommitted(), Some(1));
        p.committed(1);
        assert_eq!(p.uncommitted(), None);
        p.delivered(1);
        assert_eq!(p.uncommitted(), None);
        p.ack(1);
        assert_eq!(p.uncommitted(), Some(2));
    }

    proptest! {
        /// For any interleaving of deliveries and acks (including repeated and unknown ones),
        /// the commit position never passes an un-acked delivered offset, and once everything
        /// is acked it reaches one past the last delivered offset.
        #[test]
        fn never_commits_past_an_unacked_offset(
            gaps in proptest::collection::vec(1i64..4, 1..60),
            order in proptest::collection::vec(any::<prop::sample::Index>(), 0..200),
            start in 0i64..1000,
        ) {
            let offsets: Vec<i64> = gaps.iter().scan(start, |o, g| { *o += g; Some(*o) }).collect();
            let mut p = PartitionOffsets::default();
            let mut delivered = 0usize;
            let mut acked = std::collections::HashSet::new();
            for pick in order {
                // Either deliver the next offset or ack a random (possibly undelivered) one.
                if pick.index(3) == 0 && delivered < offsets.len() {
                    prop_assert!(p.delivered(offsets[delivered]));
                    delivered += 1;
                } else {
                    let o = offsets[pick.index(offsets.len())];
                    let outcome = p.ack(o);
                    let was_delivered = offsets[..delivered].contains(&o);
                    prop_assert_eq!(outcome == Ack::Acked, was_delivered && acked.insert(o));
                }
                if let Some(position) = p.commit_position() {
                    for o in &offsets[..delivered] {
                        if !acked.contains(o) {
                            prop_assert!(position <= *o, "position {} passed un-acked {}", position, o);
                        }
                    }
                }
                prop_assert_eq!(p.in_flight(), delivered - acked.len());
            }
            for o in &offsets[..delivered] {
                p.ack(*o);
            }
            if delivered > 0 {
                prop_assert_eq!(p.commit_position(), Some(offsets[delivered - 1] + 1));
            }
        }
    }
}
