//! The completion sink: every way a CQE leaves the engine. It owns the ring's
//! engine half and the op table, so finishing an op (unlink, free, post,
//! cancel its LINK_TIMEOUT, report to its chain) needs nothing else. Chain
//! reports queue here for the submission side to act on ([`ChainEvent`]).

use std::collections::VecDeque;

use ringline_ring::abi::*;
use ringline_ring::ring::EngineRing;

use super::ops::{OpKind, Ops, ZeroCopy};
use crate::errno::{self, Errno};
use crate::ids::{ChainId, OpId};

const MSG_WAITALL: u32 = libc::MSG_WAITALL as u32;

/// `IORING_NOTIF_USAGE_ZC_COPIED`: the zero-copy send copied the data.
const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// A chain's running request completed: `ok` says whether the chain goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChainEvent {
    pub(crate) chain: ChainId,
    pub(crate) ok: bool,
    /// It failed with `IOSQE_CQE_SKIP_SUCCESS`: the rest of the chain is
    /// cancelled without CQEs (Linux's `REQ_F_SKIP_LINK_CQES`).
    pub(crate) skip_links: bool,
}

/// See the module docs.
pub(crate) struct Completer {
    pub(crate) ring: EngineRing,
    pub(crate) ops: Ops,
    /// Chain heads that completed, for the submission side, oldest first
    /// (Linux queues each chain's next request as task work, run in order).
    pub(crate) events: VecDeque<ChainEvent>,
    /// CQEs posted (a TIMEOUT's completion count compares against it).
    pub(crate) cqes: u64,
    /// Requests that completed with an error (see [`Completer::count`]).
    pub(crate) op_errors: u64,
    /// Requests that completed with `-ECANCELED`, and with `-ETIME`.
    pub(crate) op_cancelled: u64,
    pub(crate) op_timeouts: u64,
}

impl Completer {
    pub(crate) fn new(ring: EngineRing, ops: Ops) -> Self {
        Completer {
            ring,
            ops,
            events: VecDeque::with_capacity(64),
            cqes: 0,
            op_errors: 0,
            op_cancelled: 0,
            op_timeouts: 0,
        }
    }

    /// Counts a request's result: `-ECANCELED` (cancelled by the
    /// application, by a failed link, or at shutdown) and `-ETIME` (a
    /// timeout that expired, which is how a TIMEOUT completes) apart from
    /// the other errors, so `op_errors` counts only requests that failed.
    #[inline(always)]
    pub(crate) fn count(&mut self, res: i32) {
        if res < 0 {
            self.count_error(res);
        }
    }

    #[cold]
    #[inline(never)]
    fn count_error(&mut self, res: i32) {
        if res == errno::ECANCELED.as_res() {
            self.op_cancelled += 1;
        } else if res == errno::ETIME.as_res() {
            self.op_timeouts += 1;
        } else {
            self.op_errors += 1;
        }
    }

    /// Posts a CQE (to the backlog if the CQ is full: never dropped).
    #[inline]
    pub(crate) fn post(&mut self, user_data: u64, res: i32, flags: u32) {
        self.ring.post_cqe(user_data, res, flags);
        self.cqes += 1;
    }

    /// Posts an error CQE for a request that never became an op.
    pub(crate) fn post_error(&mut self, user_data: u64, e: Errno) {
        self.count(e.as_res());
        self.post(user_data, e.as_res(), 0);
    }

    /// A multishot op's CQE with `IORING_CQE_F_MORE`, if the CQ has room
    /// and no backlog; otherwise the op ends with this result in its final
    /// CQE, as the kernel ends a multishot request it cannot post for.
    /// Returns whether the op is still armed.
    #[inline]
    pub(crate) fn post_more(&mut self, id: OpId, res: i32, flags: u32) -> bool {
        let ud = self.ops.get(id).user_data;
        if self.ring.post_aux_cqe(ud, res, flags | IORING_CQE_F_MORE) {
            self.cqes += 1;
            self.count(res);
            true
        } else {
            self.finish(id, res, flags);
            false
        }
    }

    /// Completes the request being issued without it becoming an op
    /// (respecting `IOSQE_CQE_SKIP_SUCCESS`), and reports to its chain.
    pub(crate) fn complete_now(
        &mut self,
        user_data: u64,
        sqe_flags: u8,
        chain: Option<ChainId>,
        res: i32,
        flags: u32,
    ) {
        self.count(res);
        if !(res >= 0 && sqe_flags & IOSQE_CQE_SKIP_SUCCESS != 0) {
            self.post(user_data, res, flags);
        }
        if let Some(chain) = chain {
            let ok = res >= 0 || sqe_flags & IOSQE_IO_HARDLINK != 0;
            self.events.push_back(ChainEvent {
                chain,
                ok,
                skip_links: res < 0 && sqe_flags & IOSQE_CQE_SKIP_SUCCESS != 0,
            });
        }
    }

    /// Final CQE of a parked op: unlink, free, post (unless skipped on
    /// success), then cancel its LINK_TIMEOUT and report to its chain.
    pub(crate) fn finish(&mut self, id: OpId, res: i32, flags: u32) {
        self.finish_as(id, res, flags, false);
    }

    /// [`Completer::finish`] of a LINK_TIMEOUT that fired (`-ETIME`) or was
    /// cancelled because its request finished first (`-ECANCELED`): Linux
    /// completes it without failing it (`io_link_timeout_fn`,
    /// `io_disarm_next`), so `IOSQE_CQE_SKIP_SUCCESS` still skips its CQE.
    pub(crate) fn finish_unfailed(&mut self, id: OpId, res: i32) {
        self.finish_as(id, res, 0, true);
    }

    fn finish_as(&mut self, id: OpId, res: i32, flags: u32, unfailed: bool) {
        let op = self.ops.take(id);
        match op.kind {
            OpKind::Send { zc, .. } if zc != ZeroCopy::No => {
                // SEND_ZC: the request CQE says a notification follows; the
                // data was copied into the socket buffer, so it is free at once.
                self.post(op.user_data, res, flags | IORING_CQE_F_MORE);
                let usage = match zc {
                    ZeroCopy::ReportUsage => IORING_NOTIF_USAGE_ZC_COPIED,
                    _ => 0,
                };
                self.post(op.user_data, usage as i32, IORING_CQE_F_NOTIF);
            }
            // A MSG_WAITALL transfer that ended short failed (Linux's
            // req_set_fail): its CQE is posted even with CQE_SKIP_SUCCESS.
            _ if res >= 0
                && op.sqe_flags & IOSQE_CQE_SKIP_SUCCESS != 0
                && !short_transfer(&op.kind, res) => {}
            _ if unfailed && op.sqe_flags & IOSQE_CQE_SKIP_SUCCESS != 0 => {}
            _ => self.post(op.user_data, res, flags),
        }
        self.count(res);
        if let Some(lt) = op.link_timeout {
            if self.ops.is_live(lt) {
                if let OpKind::LinkTimeout { target, .. } = self.ops.get(lt).kind {
                    if target == id {
                        // The request finished first: its timeout is cancelled.
                        self.finish_unfailed(lt, errno::ECANCELED.as_res());
                    }
                }
            }
        }
        if let Some(chain) = op.chain {
            let failed =
                (res < 0 || short_transfer(&op.kind, res)) && !etime_success(&op.kind, res);
            let ok = !failed || op.sqe_flags & IOSQE_IO_HARDLINK != 0;
            self.events.push_back(ChainEvent {
                chain,
                ok,
                skip_links: failed && op.sqe_flags & IOSQE_CQE_SKIP_SUCCESS != 0,
            });
        }
    }

    /// Finishes `id` with `-errno`.
    pub(crate) fn fail(&mut self, id: OpId, e: Errno) {
        self.finish(id, e.as_res(), 0);
    }
}

/// A MSG_WAITALL transfer that ends short (EOF) fails its link, as in Linux.
fn short_transfer(kind: &OpKind, res: i32) -> bool {
    match *kind {
        OpKind::Recv {
            len,
            group: None,
            msg_flags,
            ..
        } => msg_flags & MSG_WAITALL != 0 && (res as u32) < len,
        OpKind::Send {
            len,
            waitall: true,
            bundle: false,
            ..
        } => (res as u32) < len,
        _ => false,
    }
}

/// `IORING_TIMEOUT_ETIME_SUCCESS`: a TIMEOUT that fires does not break its link.
fn etime_success(kind: &OpKind, res: i32) -> bool {
    res == errno::ETIME.as_res()
        && matches!(
            kind,
            OpKind::Timeout {
                etime_success: true,
                ..
            }
        )
}
