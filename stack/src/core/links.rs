//! Links (`IOSQE_IO_LINK`, `IOSQE_IO_HARDLINK`) and drain (`IOSQE_IO_DRAIN`)
//! as a state machine. It holds the SQEs waiting behind a running request or
//! a drain barrier and decides what happens to each; the submission side
//! carries the decisions out (issue, cancel, arm a LINK_TIMEOUT) and reports
//! back each chain head's completion ([`crate::core::complete::ChainEvent`]).
//!
//! A chain is built from consecutive linked SQEs of one submission; it ends
//! at the first SQE without a link flag or at the submission boundary. As in
//! Linux (`io_submit_sqe`), the whole chain is assembled before its head is
//! issued ([`Links::flush`]): a member that fails its prep checks fails the
//! chain before anything in it runs (the head `-ECANCELED`, each failed
//! member its own error, the rest `-ECANCELED`). Each later SQE waits in
//! `pending` until the one before completes: on success (or a hard link)
//! the next is issued, on failure the rest complete with `-ECANCELED`
//! (their CQEs skipped when the failed request had `IOSQE_CQE_SKIP_SUCCESS`,
//! posted otherwise, as Linux's `REQ_F_SKIP_LINK_CQES`). A LINK_TIMEOUT
//! right behind a running request is armed on it instead of waiting.

use std::collections::VecDeque;

use ringline_ring::abi::*;

use crate::errno::{self, Errno};
use crate::ids::{ChainId, OpId};
use crate::slab::Slab;

/// Where a chain is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChainState {
    /// Its current head request is in flight.
    Running,
    /// Every request so far succeeded (or was hard-linked); the next may start.
    Ok,
    /// A request failed: the rest complete with `-ECANCELED`.
    Failed,
}

/// SQEs linked behind a running request.
#[derive(Debug)]
struct Chain {
    pending: VecDeque<Sqe>,
    /// The prep error of each SQE in `pending` (while building).
    prep: VecDeque<Option<Errno>>,
    /// A member failed its prep checks: the chain fails when flushed.
    prep_failed: bool,
    state: ChainState,
    /// Still receiving SQEs from the current submission (nothing issued).
    building: bool,
    /// The parked op of the running head (`None` if it completed at once).
    head_op: Option<OpId>,
}

/// Where an incoming SQE goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Into the chain being built ([`Links::append`]).
    Append,
    /// Behind a drain barrier ([`Links::hold`]).
    Hold,
    /// Issued now ([`Links::start`]).
    Start,
}

/// What a chain does next (after it was flushed or its head completed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing waits: the chain is done (or failed and emptied).
    Idle,
    /// A LINK_TIMEOUT whose request finished: complete it with
    /// `-ECANCELED`, then advance again as if it succeeded.
    Expired(Sqe),
    /// Issue it, in the chain.
    Issue(Sqe, ChainId),
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Links {
    chains: Slab<Chain>,
    /// The chain SQEs of the current submission are appended to.
    building: Option<ChainId>,
    /// The chain of the SQE being issued.
    issuing: Option<ChainId>,
    /// SQEs held back by `IOSQE_IO_DRAIN`, in submission order.
    drain_q: VecDeque<Sqe>,
    /// The last request started was a DRAIN one: as in Linux, no new SQE
    /// starts before it completes (before nothing is in flight).
    drain_next: bool,
    /// SQEs waiting in chains (submitted, not yet issued nor completed:
    /// a drain barrier waits for them too).
    queued: usize,
}

impl Links {
    /// Where `sqe` goes, with `in_flight` requests outstanding.
    pub(crate) fn route(&self, sqe: &Sqe, in_flight: usize) -> Route {
        if self.building.is_some() {
            Route::Append
        } else if !self.drain_q.is_empty()
            || ((sqe.flags & IOSQE_IO_DRAIN != 0 || self.drain_next) && in_flight > 0)
        {
            Route::Hold
        } else {
            Route::Start
        }
    }

    /// SQEs waiting in chains.
    #[inline]
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Holds `sqe` behind the drain barrier.
    pub(crate) fn hold(&mut self, sqe: Sqe) {
        self.drain_q.push_back(sqe);
    }

    /// A new request (`prep`: its prep error, if any): if it links to the
    /// next SQE, a chain opens with it as its head, held until the chain is
    /// complete (returned); otherwise `None`: issue it now.
    pub(crate) fn start(&mut self, sqe: &Sqe, prep: Option<Errno>) -> Option<ChainId> {
        // A DRAIN request holds the SQEs after it until it completes.
        self.drain_next = sqe.flags & IOSQE_IO_DRAIN != 0;
        if sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK) == 0 {
            return None;
        }
        let i = self.chains.recycle_or(|_| Chain {
            pending: VecDeque::new(),
            prep: VecDeque::new(),
            prep_failed: false,
            state: ChainState::Ok,
            building: false,
            head_op: None,
        });
        let ch = ChainId::from_index(i);
        let c = self.chains.at_mut(i);
        c.pending.clear();
        c.prep.clear();
        c.pending.push_back(*sqe);
        c.prep.push_back(prep);
        c.prep_failed = prep.is_some();
        c.state = ChainState::Ok;
        c.head_op = None;
        c.building = true;
        self.queued += 1;
        self.building = Some(ch);
        Some(ch)
    }

    /// The opcode of the last SQE of the chain being built.
    pub(crate) fn last_opcode(&self) -> Option<u8> {
        let ch = self.building?;
        self.chains.at(ch.index()).pending.back().map(|s| s.opcode)
    }

    /// The chain's next request is about to be issued.
    fn run(&mut self, ch: ChainId) {
        let c = self.chains.at_mut(ch.index());
        c.state = ChainState::Running;
        c.head_op = None;
    }

    /// Sets the chain of the request being issued; returns the one before.
    pub(crate) fn set_issuing(&mut self, ch: Option<ChainId>) -> Option<ChainId> {
        std::mem::replace(&mut self.issuing, ch)
    }

    /// The chain of the request being issued.
    pub(crate) fn issuing(&self) -> Option<ChainId> {
        self.issuing
    }

    /// The request being issued parked as `op`: it is its chain's head.
    pub(crate) fn parked(&mut self, op: OpId) {
        if let Some(ch) = self.issuing {
            self.chains.at_mut(ch.index()).head_op = Some(op);
        }
    }

    /// Appends `sqe` (`prep`: its prep error) to the chain being built.
    /// Returns the chain if `sqe` ends it: flush it ([`Links::flush`]).
    pub(crate) fn append(&mut self, sqe: &Sqe, prep: Option<Errno>) -> Option<ChainId> {
        let ch = self.building.expect("append only while building");
        let c = self.chains.at_mut(ch.index());
        if sqe.flags & IOSQE_IO_DRAIN != 0 {
            // Linux's io_init_drain: a DRAIN member drains its whole chain.
            if let Some(head) = c.pending.front_mut() {
                head.flags |= IOSQE_IO_DRAIN;
            }
        }
        c.pending.push_back(*sqe);
        c.prep.push_back(prep);
        c.prep_failed |= prep.is_some();
        self.queued += 1;
        if sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK) == 0 {
            self.building = None;
            return Some(ch);
        }
        None
    }

    /// Chains end at the submission boundary: the chain being built, if
    /// any, to flush.
    pub(crate) fn end_building(&mut self) -> Option<ChainId> {
        self.building.take()
    }

    /// Chain `ch` is complete. If a member failed its prep checks, every
    /// SQE goes to `fail` with its result (the head's and the other good
    /// members' `-ECANCELED`, a failed member's own error) and whether its
    /// CQE is posted (only the head's when the head has
    /// `IOSQE_CQE_SKIP_SUCCESS`, as Linux skips the link CQEs of a failed
    /// request that had it); otherwise its head is issued.
    pub(crate) fn flush(&mut self, ch: ChainId, mut fail: impl FnMut(&Sqe, i32, bool)) -> Next {
        let c = self.chains.at_mut(ch.index());
        c.building = false;
        if !c.prep_failed {
            c.prep.clear();
            if c.pending
                .front()
                .is_some_and(|h| h.flags & IOSQE_IO_DRAIN != 0)
            {
                // Nothing after a draining chain starts before it completed.
                self.drain_next = true;
            }
            return self.advance(ch, true, false, |_, _| {});
        }
        let skip = c
            .pending
            .front()
            .is_some_and(|h| h.flags & IOSQE_CQE_SKIP_SUCCESS != 0);
        let mut first = true;
        while let (Some(s), Some(p)) = (c.pending.pop_front(), c.prep.pop_front()) {
            self.queued -= 1;
            let res = p.unwrap_or(errno::ECANCELED).as_res();
            fail(&s, res, first || !skip);
            first = false;
        }
        c.state = ChainState::Failed;
        self.maybe_free(ch);
        Next::Idle
    }

    /// Whether chain `ch` (complete, not yet flushed) must wait behind the
    /// requests before it: a member had `IOSQE_IO_DRAIN` (Linux drains the
    /// whole chain) and, of the `in_flight` requests, some are not its own.
    pub(crate) fn must_wait(&self, ch: ChainId, in_flight: usize) -> bool {
        let c = self.chains.at(ch.index());
        c.pending
            .front()
            .is_some_and(|h| h.flags & IOSQE_IO_DRAIN != 0)
            && in_flight > c.pending.len()
    }

    /// Puts complete chain `ch` back behind the drain barrier, at its front
    /// (its head carrying `IOSQE_IO_DRAIN`): it is rebuilt when released.
    pub(crate) fn requeue(&mut self, ch: ChainId) {
        let c = self.chains.at_mut(ch.index());
        c.building = false;
        c.prep.clear();
        while let Some(s) = c.pending.pop_back() {
            self.queued -= 1;
            self.drain_q.push_front(s);
        }
        self.maybe_free(ch);
    }

    fn maybe_free(&mut self, ch: ChainId) {
        let c = self.chains.at(ch.index());
        if !c.building && c.state != ChainState::Running && c.pending.is_empty() {
            self.chains.release(ch.index());
        }
    }

    /// After chain `ch`'s next request was issued from `pending`: if it
    /// parked and a LINK_TIMEOUT waits right behind it, that timeout guards
    /// it now (take it and arm it on the op returned). A request that
    /// completed at once (even after parking: `live` says whether an op
    /// is still in flight) leaves the timeout to [`Next::Expired`].
    pub(crate) fn take_link_timeout(
        &mut self,
        ch: ChainId,
        live: impl FnOnce(OpId) -> bool,
    ) -> Option<(Sqe, OpId)> {
        let c = self.chains.at_mut(ch.index());
        let head = c.head_op.filter(|&h| live(h))?;
        if c.state != ChainState::Running || c.pending.front()?.opcode != IORING_OP_LINK_TIMEOUT {
            return None;
        }
        let sqe = c.pending.pop_front()?;
        self.queued -= 1;
        Some((sqe, head))
    }

    /// Chain `ch`'s head completed (`ok`: the chain goes on). On failure
    /// every waiting SQE is handed to `cancel` (complete it with
    /// `-ECANCELED`), with whether its CQE is posted (not when the failed
    /// request had `IOSQE_CQE_SKIP_SUCCESS`: `skip_links`).
    pub(crate) fn advance(
        &mut self,
        ch: ChainId,
        ok: bool,
        skip_links: bool,
        mut cancel: impl FnMut(&Sqe, bool),
    ) -> Next {
        let c = self.chains.at_mut(ch.index());
        c.head_op = None;
        if !ok {
            c.state = ChainState::Failed;
            while let Some(s) = c.pending.pop_front() {
                self.queued -= 1;
                cancel(&s, !skip_links);
            }
            self.maybe_free(ch);
            return Next::Idle;
        }
        match c.pending.pop_front() {
            None => {
                c.state = ChainState::Ok;
                self.maybe_free(ch);
                Next::Idle
            }
            Some(next) => {
                self.queued -= 1;
                if next.opcode == IORING_OP_LINK_TIMEOUT {
                    Next::Expired(next)
                } else {
                    self.run(ch);
                    Next::Issue(next, ch)
                }
            }
        }
    }

    /// Whether nothing is held (no drain queue) and no chain is being built.
    #[inline]
    pub(crate) fn idle(&self) -> bool {
        self.drain_q.is_empty() && self.building.is_none()
    }

    /// The next SQE the drain barrier releases, with `in_flight` requests
    /// outstanding (a DRAIN SQE waits until there are none).
    pub(crate) fn release_drained(&mut self, in_flight: usize) -> Option<Sqe> {
        let front = self.drain_q.front()?;
        let drain = front.flags & IOSQE_IO_DRAIN != 0 || self.drain_next;
        if self.building.is_none() && drain && in_flight > 0 {
            return None;
        }
        self.drain_q.pop_front()
    }

    /// Whether a chain is being built (the next SQE appends to it).
    pub(crate) fn building(&self) -> bool {
        self.building.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqe(opcode: u8, flags: u8, ud: u64) -> Sqe {
        Sqe {
            opcode,
            flags,
            user_data: ud,
            ..Sqe::default()
        }
    }

    const LINK: u8 = IOSQE_IO_LINK;

    /// Flushes chain `ch` expecting its head to be issued; returns it.
    fn flush_issue(l: &mut Links, ch: ChainId) -> u64 {
        match l.flush(ch, |_, _, _| panic!("nothing fails")) {
            Next::Issue(s, c) => {
                assert_eq!(c, ch);
                s.user_data
            }
            n => panic!("{n:?}"),
        }
    }

    #[test]
    fn a_chain_is_held_until_complete_then_issues_in_order() {
        let mut l = Links::default();
        let head = sqe(IORING_OP_NOP, LINK, 1);
        let ch = l.start(&head, None).expect("linked head opens a chain");
        assert_eq!(l.route(&sqe(IORING_OP_NOP, 0, 2), 0), Route::Append);
        assert_eq!(l.append(&sqe(IORING_OP_NOP, LINK, 2), None), None);
        assert_eq!(l.append(&sqe(IORING_OP_NOP, 0, 3), None), Some(ch));
        assert!(!l.building());
        assert_eq!(l.queued(), 3);
        assert_eq!(flush_issue(&mut l, ch), 1);
        match l.advance(ch, true, false, |_, _| panic!("nothing cancelled")) {
            Next::Issue(s, c) => assert_eq!((s.user_data, c), (2, ch)),
            n => panic!("{n:?}"),
        }
        match l.advance(ch, true, false, |_, _| panic!()) {
            Next::Issue(s, _) => assert_eq!(s.user_data, 3),
            n => panic!("{n:?}"),
        }
        assert_eq!(l.advance(ch, true, false, |_, _| panic!()), Next::Idle);
        assert_eq!(l.queued(), 0);
    }

    #[test]
    fn a_failure_cancels_the_rest() {
        let mut l = Links::default();
        let ch = l.start(&sqe(IORING_OP_NOP, LINK, 1), None).unwrap();
        l.append(&sqe(IORING_OP_NOP, LINK, 2), None);
        l.append(&sqe(IORING_OP_NOP, 0, 3), None);
        flush_issue(&mut l, ch);
        let mut cancelled = Vec::new();
        assert_eq!(
            l.advance(ch, false, false, |s, post| cancelled
                .push((s.user_data, post))),
            Next::Idle
        );
        assert_eq!(cancelled, vec![(2, true), (3, true)]);
        assert_eq!(l.queued(), 0);
    }

    #[test]
    fn a_failure_with_cqe_skip_cancels_the_rest_silently() {
        let mut l = Links::default();
        let ch = l.start(&sqe(IORING_OP_NOP, LINK, 1), None).unwrap();
        l.append(&sqe(IORING_OP_NOP, 0, 2), None);
        flush_issue(&mut l, ch);
        let mut posted = Vec::new();
        l.advance(ch, false, true, |s, post| posted.push((s.user_data, post)));
        assert_eq!(posted, vec![(2, false)]);
    }

    #[test]
    fn a_prep_failure_fails_the_whole_chain() {
        let mut l = Links::default();
        let ch = l.start(&sqe(IORING_OP_NOP, LINK, 1), None).unwrap();
        l.append(&sqe(IORING_OP_LAST, LINK, 2), Some(errno::EINVAL));
        assert_eq!(l.append(&sqe(IORING_OP_NOP, 0, 3), None), Some(ch));
        let mut got = Vec::new();
        let n = l.flush(ch, |s, res, post| got.push((s.user_data, res, post)));
        assert_eq!(n, Next::Idle);
        let (c, i) = (errno::ECANCELED.as_res(), errno::EINVAL.as_res());
        assert_eq!(got, vec![(1, c, true), (2, i, true), (3, c, true)]);
        assert_eq!(l.queued(), 0);
    }

    #[test]
    fn link_timeout_behind_a_parked_head_is_armed_on_it() {
        let mut l = Links::default();
        let ch = l.start(&sqe(IORING_OP_RECV, LINK, 1), None).unwrap();
        l.append(&sqe(IORING_OP_LINK_TIMEOUT, 0, 2), None);
        assert_eq!(flush_issue(&mut l, ch), 1);
        let op = OpId::from_index(7);
        l.set_issuing(Some(ch));
        l.parked(op);
        l.set_issuing(None);
        let (t, target) = l.take_link_timeout(ch, |_| true).expect("armed");
        assert_eq!((t.user_data, target), (2, op));
    }

    #[test]
    fn link_timeout_behind_a_head_that_completed_at_once_expires() {
        let mut l = Links::default();
        let ch = l.start(&sqe(IORING_OP_RECV, LINK, 1), None).unwrap();
        l.append(&sqe(IORING_OP_LINK_TIMEOUT, 0, 2), None);
        flush_issue(&mut l, ch);
        l.set_issuing(Some(ch));
        l.parked(OpId::from_index(3));
        l.set_issuing(None);
        // The op parked and completed within its issue.
        assert_eq!(l.take_link_timeout(ch, |_| false), None);
        match l.advance(ch, true, false, |_, _| panic!()) {
            Next::Expired(s) => assert_eq!(s.user_data, 2),
            n => panic!("{n:?}"),
        }
    }

    #[test]
    fn link_timeout_behind_a_later_request_is_armed_when_it_runs() {
        let mut l = Links::default();
        let ch = l.start(&sqe(IORING_OP_RECV, LINK, 1), None).unwrap();
        l.append(&sqe(IORING_OP_RECV, LINK, 2), None);
        l.append(&sqe(IORING_OP_LINK_TIMEOUT, 0, 3), None);
        flush_issue(&mut l, ch);
        l.set_issuing(Some(ch));
        l.parked(OpId::from_index(0));
        l.set_issuing(None);
        assert_eq!(
            l.take_link_timeout(ch, |_| true),
            None,
            "the first has none"
        );
        let Next::Issue(s, _) = l.advance(ch, true, false, |_, _| panic!()) else {
            panic!("the second request runs");
        };
        assert_eq!(s.user_data, 2);
        let op = OpId::from_index(5);
        l.set_issuing(Some(ch));
        l.parked(op);
        l.set_issuing(None);
        let (t, target) = l.take_link_timeout(ch, |_| true).expect("armed on it");
        assert_eq!((t.user_data, target), (3, op));
        assert_eq!(l.advance(ch, true, false, |_, _| panic!()), Next::Idle);
    }

    #[test]
    fn a_chain_ends_at_the_submission_boundary() {
        let mut l = Links::default();
        let ch = l.start(&sqe(IORING_OP_NOP, LINK, 1), None).unwrap();
        assert!(l.building());
        assert_eq!(l.end_building(), Some(ch));
        assert!(!l.building());
        assert_eq!(flush_issue(&mut l, ch), 1);
        assert_eq!(l.route(&sqe(IORING_OP_NOP, 0, 2), 1), Route::Start);
    }

    #[test]
    fn drain_waits_for_everything_before_it() {
        let mut l = Links::default();
        let d = sqe(IORING_OP_NOP, IOSQE_IO_DRAIN, 1);
        assert_eq!(l.route(&d, 0), Route::Start, "nothing in flight");
        assert_eq!(l.route(&d, 2), Route::Hold);
        l.hold(d);
        let after = sqe(IORING_OP_NOP, 0, 2);
        assert_eq!(l.route(&after, 0), Route::Hold, "behind the barrier");
        l.hold(after);
        assert_eq!(l.release_drained(2), None);
        assert_eq!(l.release_drained(0).map(|s| s.user_data), Some(1));
        assert_eq!(l.release_drained(5).map(|s| s.user_data), Some(2));
        assert_eq!(l.release_drained(0), None);
    }

    #[test]
    fn nothing_starts_before_a_started_drain_completes() {
        let mut l = Links::default();
        let d = sqe(IORING_OP_NOP, IOSQE_IO_DRAIN, 1);
        assert_eq!(l.route(&d, 0), Route::Start);
        let _ = l.start(&d, None);
        let after = sqe(IORING_OP_NOP, 0, 2);
        assert_eq!(l.route(&after, 1), Route::Hold, "the drain runs");
        l.hold(after);
        assert_eq!(l.release_drained(1), None);
        assert_eq!(l.release_drained(0).map(|s| s.user_data), Some(2));
        let _ = l.start(&after, None);
        assert_eq!(l.route(&sqe(IORING_OP_NOP, 0, 3), 1), Route::Start);
    }
}
