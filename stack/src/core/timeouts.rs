//! TIMEOUT and LINK_TIMEOUT: a min-heap of (deadline, op) with lazy
//! deletion, and the TIMEOUTs that complete after a number of CQEs.
//!
//! Lazy deletion: cancelling, completing or re-timing a timeout does not
//! search the heap. An entry is only acted on when it comes due AND its op
//! is still a live, armed timeout whose current deadline equals the entry's;
//! anything else is a stale entry and is dropped when popped. Re-timing
//! pushes a new entry (the old one goes stale). So every heap operation is
//! O(log n), and a stale entry costs one pop later.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::ops::{OpKind, Owner};
use super::request::{Submission, TimeoutClock, TimeoutSpec, TimeoutUpdate};
use super::{Core, OpResult};
use crate::errno::{self, Errno};
use crate::ids::OpId;
use crate::usermem;

/// A TIMEOUT that completes once the count of CQEs that are not TIMEOUTs'
/// ([`Core::counted_cqes`]) reaches `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counted {
    target: u64,
    op: OpId,
    /// The op's generation: its slot may be reused by another TIMEOUT.
    gen: u32,
    /// Its deadline when counted (an update makes it a plain timer).
    at_us: u64,
}

/// A heap entry: `op` is due at `at_us` (engine µs), if the op still says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Deadline {
    /// First, so entries order by time (then by op, for a total order).
    pub(crate) at_us: u64,
    pub(crate) op: OpId,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Timeouts {
    heap: BinaryHeap<Reverse<Deadline>>,
    counted: Vec<Counted>,
    /// TIMEOUT completions (a timer firing, each of a multishot's, or a
    /// count reached): their CQEs do not count toward a TIMEOUT's count
    /// (Linux's `cq_timeouts`).
    completed: u64,
}

impl Timeouts {
    /// Adds a heap entry for `op` at `at_us`.
    pub(crate) fn arm(&mut self, at_us: u64, op: OpId) {
        self.heap.push(Reverse(Deadline { at_us, op }));
    }

    /// The next entry due at or before `now_us` (maybe stale: the caller
    /// checks it against the op).
    pub(crate) fn pop_due(&mut self, now_us: u64) -> Option<Deadline> {
        match self.heap.peek() {
            Some(&Reverse(d)) if d.at_us <= now_us => {
                self.heap.pop();
                Some(d)
            }
            _ => None,
        }
    }

    /// The earliest entry's time (maybe stale: then an early wake-up).
    #[inline]
    pub(crate) fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(d)| d.at_us)
    }

    /// Whether any TIMEOUT waits for a CQE count.
    pub(crate) fn has_counted(&self) -> bool {
        !self.counted.is_empty()
    }
}

/// Reads the application's `__kernel_timespec` at `addr` as µs: `EFAULT`
/// for a bad address, `EINVAL` for a negative second or nanosecond. As in
/// Linux (`io_timeout_prep` checks only the signs), a nanosecond count of a
/// second or more is not an error: it adds up (`{0, 1_000_000_000}` is 1 s).
pub(crate) fn read_timespec_us(addr: u64) -> Result<u64, Errno> {
    let ts: [i64; 2] = usermem::read(addr)?;
    if ts[0] < 0 || ts[1] < 0 {
        return Err(errno::EINVAL);
    }
    Ok((ts[0] as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts[1] as u64 / 1000))
}

impl Core {
    /// A TIMEOUT / LINK_TIMEOUT's deadline (µs of engine time) and, for a
    /// relative one, its interval (what a multishot TIMEOUT re-arms with).
    /// Reads the timespec (decode checked the fields).
    fn timeout_deadline(&self, spec: &TimeoutSpec) -> Result<(u64, u64), Errno> {
        let ts_us = read_timespec_us(spec.ts_addr)?;
        let interval = if spec.abs { 0 } else { ts_us };
        Ok((self.deadline(spec.abs, spec.clock, ts_us), interval))
    }

    /// Engine time of the TIMEOUT time `ts_us`: relative to now, or
    /// (`abs`) absolute on `clock`, which the driver's clock converts (a
    /// virtual clock takes it as engine time).
    fn deadline(&self, abs: bool, clock: TimeoutClock, ts_us: u64) -> u64 {
        if !abs {
            return self.now_us.saturating_add(ts_us);
        }
        self.clock
            .engine_time_of(clock.clock_id(), ts_us, self.now_us)
    }

    /// Arms a LINK_TIMEOUT (user_data `ud`, SQE flags `sqe_flags`) on the
    /// running request `target`.
    pub(crate) fn arm_link_timeout(
        &mut self,
        ud: u64,
        sqe_flags: u8,
        spec: TimeoutSpec,
        target: OpId,
    ) {
        let at = match self.timeout_deadline(&spec) {
            Ok((at, _)) => at,
            Err(e) => {
                self.cq.post_error(ud, e);
                return;
            }
        };
        let ops = &mut self.cq.ops;
        let id = ops.insert(ud, -1, OpKind::LinkTimeout { at_us: at, target });
        // Its CQE_SKIP_SUCCESS holds whether it fires or is cancelled by
        // its request finishing ([`super::complete::Completer::finish_unfailed`]).
        ops.get_mut(id).sqe_flags = sqe_flags;
        ops.push(id, Owner::Timeout);
        ops.get_mut(target).link_timeout = Some(id);
        self.timeouts.arm(at, id);
    }

    pub(crate) fn op_timeout(&mut self, sub: &Submission, spec: TimeoutSpec) -> OpResult {
        let (at, interval) = self.timeout_deadline(&spec)?;
        let multishot = spec.multishot;
        let kind = OpKind::Timeout {
            at_us: at,
            // 0 marks a one-shot timer, so a multishot one of 0 s (which the
            // kernel accepts) re-arms 1 µs later.
            interval_us: if multishot { interval.max(1) } else { 0 },
            // For a multishot TIMEOUT, `off` counts firings (0: unlimited).
            repeats: if multishot { spec.count as u32 } else { 0 },
            etime_success: spec.etime_success,
            clock: spec.clock,
        };
        let id = self.park(sub, kind, Owner::Timeout);
        self.timeouts.arm(at, id);
        if spec.count != 0 && !multishot {
            // Completes with 0 once `off` more CQEs, not TIMEOUTs', have
            // been posted.
            self.timeouts.counted.push(Counted {
                target: self.counted_cqes().saturating_add(spec.count),
                op: id,
                gen: self.cq.ops.gen(id),
                at_us: at,
            });
        }
        Ok(None)
    }

    pub(crate) fn op_timeout_remove(
        &mut self,
        sub: &Submission,
        target: u64,
        update: Option<TimeoutUpdate>,
    ) -> OpResult {
        let Some(up) = update else {
            let id = self.find_timeout(target, false).ok_or(errno::ENOENT)?;
            self.complete(sub, 0, 0);
            self.cq.fail(id, errno::ECANCELED);
            return Ok(None);
        };
        // An update: `target` names the timeout, `addr2` the new time.
        let ts_us = read_timespec_us(up.ts_addr)?;
        let id = self.find_timeout(target, up.link).ok_or(errno::ENOENT)?;
        // The timer keeps its clock (a LINK_TIMEOUT's is not kept: MONOTONIC).
        let clock = match self.cq.ops.get(id).kind {
            OpKind::Timeout { clock, .. } => clock,
            _ => TimeoutClock::Monotonic,
        };
        let at = self.deadline(up.abs, clock, ts_us);
        match &mut self.cq.ops.get_mut(id).kind {
            OpKind::Timeout {
                at_us, interval_us, ..
            } => {
                *at_us = at;
                // As in Linux, an updated timeout is a plain timer: no more
                // completion count; a multishot one repeats the new interval.
                if *interval_us != 0 {
                    *interval_us = if up.abs { 0 } else { ts_us.max(1) };
                }
            }
            OpKind::LinkTimeout { at_us, .. } => *at_us = at,
            _ => unreachable!("find_timeout returns timeouts"),
        }
        self.timeouts.arm(at, id);
        Ok(Some((0, 0)))
    }

    /// The pending TIMEOUT (or armed LINK_TIMEOUT, with `link`) whose
    /// user_data is `ud`.
    fn find_timeout(&mut self, ud: u64, link: bool) -> Option<OpId> {
        self.find_op(|op| {
            op.user_data == ud
                && match op.kind {
                    OpKind::Timeout { .. } => !link,
                    OpKind::LinkTimeout { .. } => link,
                    _ => false,
                }
        })
    }

    /// Fires every TIMEOUT and LINK_TIMEOUT due now.
    #[inline]
    pub(crate) fn expire_timeouts(&mut self) {
        if self.timeouts.next_at().is_some_and(|at| at <= self.now_us) {
            self.fire_due();
        }
    }

    fn fire_due(&mut self) {
        while let Some(Deadline { at_us: at, op: id }) = self.timeouts.pop_due(self.now_us) {
            let ops = &mut self.cq.ops;
            if !ops.is_live(id) || ops.get(id).owner != Owner::Timeout {
                continue;
            }
            match ops.get(id).kind {
                OpKind::Timeout {
                    at_us,
                    interval_us,
                    repeats,
                    ..
                } if at_us == at => self.fire_timeout(id, interval_us, repeats),
                OpKind::LinkTimeout { at_us, target } if at_us == at => {
                    let guarded = ops.is_live(target) && ops.get(target).link_timeout == Some(id);
                    if guarded {
                        // Detach first so the target's completion does not cancel us.
                        ops.get_mut(target).link_timeout = None;
                    }
                    // Linux's io_link_timeout_fn does not fail it either.
                    self.cq.finish_unfailed(id, errno::ETIME.as_res());
                    if guarded {
                        self.cq.fail(target, errno::ECANCELED);
                    }
                }
                _ => {}
            }
        }
    }

    /// A TIMEOUT's timer fired. A one-shot TIMEOUT completes with `-ETIME`.
    /// A multishot one posts `-ETIME` with `F_MORE` and re-arms one interval
    /// later, until its last firing (`repeats` left, 0 = unlimited) or a CQ
    /// with no room for the CQE (then, as in Linux, it completes).
    fn fire_timeout(&mut self, id: OpId, interval_us: u64, repeats: u32) {
        self.timeouts.completed += 1;
        if interval_us == 0 || repeats == 1 {
            self.cq.fail(id, errno::ETIME);
            return;
        }
        if !self.cq.post_more(id, errno::ETIME.as_res(), 0) {
            return;
        }
        let at = self.now_us.saturating_add(interval_us);
        if let OpKind::Timeout {
            at_us, repeats: r, ..
        } = &mut self.cq.ops.get_mut(id).kind
        {
            *at_us = at;
            *r = repeats.saturating_sub(1);
        }
        self.timeouts.arm(at, id);
    }

    /// CQEs posted so far, less those of TIMEOUTs (what a TIMEOUT's
    /// completion count counts: Linux's `cached_cq_tail - cq_timeouts`).
    fn counted_cqes(&self) -> u64 {
        self.cq.cqes.saturating_sub(self.timeouts.completed)
    }

    /// Completes TIMEOUTs whose completion count was reached (checked once
    /// per step; there are few of them).
    pub(crate) fn check_counted_timeouts(&mut self) {
        let mut i = 0;
        while i < self.timeouts.counted.len() {
            let Counted {
                target,
                op,
                gen,
                at_us,
            } = self.timeouts.counted[i];
            let ops = &self.cq.ops;
            let live = ops.is_live(op)
                && ops.gen(op) == gen
                && matches!(ops.get(op).kind, OpKind::Timeout { at_us: at, interval_us: 0, .. } if at == at_us)
                && ops.get(op).owner == Owner::Timeout;
            if !live {
                self.timeouts.counted.swap_remove(i);
            } else if self.counted_cqes() >= target {
                self.timeouts.counted.swap_remove(i);
                self.timeouts.completed += 1;
                self.cq.finish(op, 0, 0);
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(i: usize) -> OpId {
        OpId::from_index(i)
    }

    #[test]
    fn heap_pops_in_deadline_order_and_only_when_due() {
        let mut t = Timeouts::default();
        t.arm(300, op(1));
        t.arm(100, op(2));
        t.arm(200, op(3));
        assert_eq!(t.next_at(), Some(100));
        assert_eq!(t.pop_due(99), None);
        let d = |at_us, i| Some(Deadline { at_us, op: op(i) });
        assert_eq!(t.pop_due(250), d(100, 2));
        assert_eq!(t.pop_due(250), d(200, 3));
        assert_eq!(t.pop_due(250), None);
        assert_eq!(t.next_at(), Some(300));
    }

    #[test]
    fn a_retimed_entry_leaves_a_stale_one_behind() {
        // Re-timing pushes a second entry; the first is popped later and
        // the caller, seeing the op's deadline differ, drops it.
        let mut t = Timeouts::default();
        t.arm(100, op(1));
        t.arm(500, op(1));
        let d = |at_us| Some(Deadline { at_us, op: op(1) });
        assert_eq!(t.pop_due(1_000), d(100));
        assert_eq!(t.pop_due(1_000), d(500));
    }

    #[test]
    fn timespecs_are_checked() {
        let good: [i64; 2] = [1, 500_000_000];
        assert_eq!(read_timespec_us(&good as *const _ as u64), Ok(1_500_000));
        let neg: [i64; 2] = [-1, 0];
        assert_eq!(
            read_timespec_us(&neg as *const _ as u64),
            Err(errno::EINVAL)
        );
        let neg_ns: [i64; 2] = [0, -1];
        assert_eq!(
            read_timespec_us(&neg_ns as *const _ as u64),
            Err(errno::EINVAL)
        );
        let unnorm: [i64; 2] = [0, 1_000_000_000];
        assert_eq!(read_timespec_us(&unnorm as *const _ as u64), Ok(1_000_000));
        assert_eq!(read_timespec_us(0), Err(errno::EFAULT));
    }
}
