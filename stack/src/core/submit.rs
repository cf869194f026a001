//! SQE intake: each SQE is routed (into a chain being built, behind a drain
//! barrier, or issued now), issued to its executor, and chains advance as
//! their heads complete. The decisions are [`super::links::Links`]'; this
//! file carries them out.

use ringline_ring::abi::*;

use super::links::{Appended, Next, Route};
use super::request::{Request, Submission};
use super::Core;
use crate::errno;

impl Core {
    /// Takes every SQE the application published. Returns how many.
    pub(crate) fn process_sqes(&mut self) -> usize {
        if self.backlog_full() {
            // No new work until the application reaps (see `max_cq_backlog`).
            return 0;
        }
        let mut n = 0;
        while let Some(sqe) = self.cq.ring.next_sqe() {
            n += 1;
            self.accept_sqe(sqe);
        }
        if n > 0 {
            self.cq.ring.sq_commit();
            self.stats.sqes += n as u64;
        }
        self.links.end_building();
        n
    }

    /// Takes one SQE from the submission.
    fn accept_sqe(&mut self, sqe: Sqe) {
        match self.links.route(&sqe, self.cq.ops.live()) {
            Route::Append => self.append(&sqe),
            Route::Hold => self.links.hold(sqe),
            Route::Start => self.start(&sqe),
        }
        self.pump_chains();
    }

    /// Issues a new request, in a new chain if it links to the next SQE.
    fn start(&mut self, sqe: &Sqe) {
        let chain = self.links.start(sqe);
        self.issue_in(sqe, chain);
    }

    /// Appends an SQE to the chain being built.
    fn append(&mut self, sqe: &Sqe) {
        match self.links.append(sqe) {
            Appended::Cancel => self.cq.post_error(sqe.user_data, errno::ECANCELED),
            Appended::Expired => self.cq.post(sqe.user_data, errno::ECANCELED.as_res(), 0),
            Appended::Issue(ch) => self.issue_in(sqe, Some(ch)),
            Appended::ArmTimeout(head) => self.link_timeout(sqe, head),
            Appended::Queued => {}
        }
    }

    /// Advances chains whose head completed (iteratively: long chains of
    /// immediate completions do not recurse).
    #[inline]
    pub(crate) fn pump_chains(&mut self) {
        if !self.cq.events.is_empty() {
            self.advance_chains();
        }
    }

    fn advance_chains(&mut self) {
        while let Some(ev) = self.cq.events.pop() {
            let cq = &mut self.cq;
            let next = self.links.advance(ev.chain, ev.ok, |s| {
                cq.post_error(s.user_data, errno::ECANCELED)
            });
            match next {
                Next::Idle => {}
                Next::Expired(sqe) => {
                    self.cq.post(sqe.user_data, errno::ECANCELED.as_res(), 0);
                    self.cq.events.push(super::complete::ChainEvent {
                        chain: ev.chain,
                        ok: true,
                    });
                }
                Next::Issue(sqe, ch) => {
                    self.issue_in(&sqe, Some(ch));
                    if let Some((lt, target)) = self.links.take_link_timeout(ch) {
                        self.link_timeout(&lt, target);
                    }
                }
            }
        }
    }

    /// Issues SQEs a drain barrier held once everything before it completed.
    #[inline]
    pub(crate) fn run_drain(&mut self) {
        if self.links.idle() {
            return;
        }
        self.drain_held();
    }

    fn drain_held(&mut self) {
        while let Some(sqe) = self.links.release_drained(self.cq.ops.live()) {
            if self.links.building() {
                self.append(&sqe);
            } else {
                self.start(&sqe);
            }
            self.pump_chains();
        }
        self.links.end_building();
    }

    /// Issues `sqe` as a request of `chain` (if any).
    fn issue_in(&mut self, sqe: &Sqe, chain: Option<crate::ids::ChainId>) {
        let saved = self.links.set_issuing(chain);
        self.issue(sqe);
        self.links.set_issuing(saved);
    }

    /// Decodes `sqe`, runs its executor, and completes it now unless it
    /// parked.
    fn issue(&mut self, sqe: &Sqe) {
        let sub = match Submission::decode(sqe) {
            Ok(sub) => sub,
            Err(e) => {
                let chain = self.links.issuing();
                self.cq
                    .complete_now(sqe.user_data, sqe.flags, chain, e.as_res(), 0);
                return;
            }
        };
        let r = match sub.req {
            Request::Nop {
                inject,
                file,
                fixed_error,
            } => match (fixed_error, file && self.fds.get(sub.fd).is_none()) {
                (Some(e), _) => Err(e),
                (None, true) => Err(errno::EBADF),
                (None, false) => Ok(Some((inject.unwrap_or(0), 0))),
            },
            Request::Socket { direct, .. } => self.op_socket(direct),
            Request::Bind { addr, addrlen } => self.op_bind(&sub, addr, addrlen),
            Request::Listen { backlog } => self.op_listen(&sub, backlog),
            Request::Accept(a) => self.op_accept(&sub, a),
            Request::Connect { addr, addrlen } => self.op_connect(&sub, addr, addrlen),
            Request::Recv(r) => self.op_recv(&sub, r),
            Request::Send(s) => self.op_send(&sub, s),
            Request::Close => self.op_close(&sub),
            Request::RwFixed => self
                .fds
                .get(sub.fd)
                .ok_or(errno::EBADF)
                .and(Err(errno::EFAULT)),
            Request::Shutdown { how } => self.op_shutdown(&sub, how),
            Request::PollAdd { events, mode } => self.op_poll_add(&sub, events, mode),
            Request::PollRemove {
                target,
                new_events,
                new_user_data,
            } => self.op_poll_remove(&sub, target, new_events, new_user_data),
            Request::Cancel(m) => self.op_cancel(&sub, m),
            Request::ProvideBuffers {
                addr,
                len,
                count,
                group,
                first_bid,
            } => self.op_provide_buffers(addr, len, count, group, first_bid),
            Request::RemoveBuffers { count, group } => self.op_remove_buffers(count, group),
            Request::Timeout(spec) => self.op_timeout(&sub, spec),
            Request::TimeoutRemove { target, update } => {
                self.op_timeout_remove(&sub, target, update)
            }
            // A LINK_TIMEOUT must follow a linked request in the same
            // submission; as in Linux's prep, its timespec is read first
            // (-EFAULT).
            Request::LinkTimeout(spec) => {
                crate::usermem::check(spec.ts_addr, 16).and(Err(errno::EINVAL))
            }
        };
        match r {
            Ok(Some((res, flags))) => self.complete(&sub, res, flags),
            Ok(None) => {}
            Err(e) => self.complete(&sub, e.as_res(), 0),
        }
    }

    /// Arms LINK_TIMEOUT `sqe` on the running request `target`, or fails it.
    fn link_timeout(&mut self, sqe: &Sqe, target: crate::ids::OpId) {
        match Request::decode(sqe) {
            Ok(Request::LinkTimeout(spec)) => self.arm_link_timeout(sqe.user_data, spec, target),
            Ok(_) => unreachable!("a LINK_TIMEOUT SQE decodes to one"),
            Err(e) => self.cq.post_error(sqe.user_data, e),
        }
    }
}
