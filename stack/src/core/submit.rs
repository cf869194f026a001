//! SQE intake: each SQE is routed (into a chain being built, behind a drain
//! barrier, or issued now), issued to its executor, and chains advance as
//! their heads complete. The decisions are [`super::links::Links`]'; this
//! file carries them out.

use ringline_ring::abi::*;

use super::links::{Next, Route};
use super::request::{
    needs_file, Recv, RecvKind, Request, RwFixed, Send, SendData, SendKind, Submission,
};
use super::Core;
use crate::errno;

impl Core {
    /// Takes every SQE the application published. Returns how many.
    ///
    /// As in Linux, every SQE of the submission is taken (and every chain
    /// head issued) before any chain moves on to its next request: Linux
    /// queues a chain's next request as task work, which runs after
    /// `io_submit_sqes`.
    pub(crate) fn process_sqes(&mut self) -> usize {
        if self.backlog_full() {
            // No new work until the application reaps (see `max_cq_backlog`).
            return 0;
        }
        let mut n = 0;
        self.prep_failed = false;
        while let Some(sqe) = self.cq.ring.next_sqe() {
            n += 1;
            self.accept_sqe(sqe);
            if self.prep_failed && !self.cfg.submit_all {
                // Linux's io_submit_sqes without IORING_SETUP_SUBMIT_ALL: the
                // rest stay in the SQ.
                break;
            }
        }
        if n > 0 {
            self.cq.ring.sq_commit();
            self.stats.sqes += n as u64;
        }
        if let Some(ch) = self.links.end_building() {
            self.flush_chain(ch);
        }
        self.pump_chains();
        n
    }

    /// Requests submitted and not yet completed: ops in flight and SQEs
    /// waiting in chains (what a drain barrier waits for).
    #[inline]
    fn in_flight(&self) -> usize {
        self.cq.ops.live() + self.links.queued()
    }

    /// Takes one SQE from the submission.
    fn accept_sqe(&mut self, sqe: Sqe) {
        match self.links.route(&sqe, self.in_flight()) {
            Route::Append => self.append(&sqe),
            Route::Hold => self.links.hold(sqe),
            Route::Start => self.start(&sqe),
        }
    }

    /// Issues a new request, or opens a chain with it if it links to the
    /// next SQE (issued when the chain is complete).
    fn start(&mut self, sqe: &Sqe) {
        let prep = if sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK) != 0 {
            link_prep(sqe, None)
        } else {
            None
        };
        if self.links.start(sqe, prep).is_none() {
            self.issue_in(sqe, None);
        }
    }

    /// Appends an SQE to the chain being built; flushes the chain if it ends.
    fn append(&mut self, sqe: &Sqe) {
        let prep = link_prep(sqe, self.links.last_opcode());
        if prep.is_some() && sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK) == 0 {
            // The chain's last SQE failed its checks: as a lone SQE that
            // does, it ends the submission (a member that links on does
            // not, in Linux's io_submit_fail_init).
            self.prep_failed = true;
        }
        if let Some(ch) = self.links.append(sqe, prep) {
            self.flush_chain(ch);
        }
    }

    /// A chain is complete: issue its head, or fail it whole.
    fn flush_chain(&mut self, ch: crate::ids::ChainId) {
        if self.links.must_wait(ch, self.in_flight()) {
            self.links.requeue(ch);
            return;
        }
        let cq = &mut self.cq;
        let next = self.links.flush(ch, |s, res, post| {
            cq.count(res);
            if post {
                cq.post(s.user_data, res, 0);
            }
        });
        self.carry_out(next, ch, false);
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
        while let Some(ev) = self.cq.events.pop_front() {
            let cq = &mut self.cq;
            let next = self
                .links
                .advance(ev.chain, ev.ok, ev.skip_links, |s, post| {
                    cq.count(errno::ECANCELED.as_res());
                    if post {
                        cq.post(s.user_data, errno::ECANCELED.as_res(), 0);
                    }
                });
            self.carry_out(next, ev.chain, true);
        }
    }

    /// Carries out what chain `chain` does next.
    fn carry_out(&mut self, next: Next, chain: crate::ids::ChainId, released: bool) {
        match next {
            Next::Idle => {}
            Next::Expired(sqe) => {
                // Its request completed before it was armed: cancelled
                // without failing (Linux's `io_disarm_next`), so
                // CQE_SKIP_SUCCESS skips the CQE.
                if sqe.flags & IOSQE_CQE_SKIP_SUCCESS == 0 {
                    self.cq.post(sqe.user_data, errno::ECANCELED.as_res(), 0);
                }
                self.cq.events.push_back(super::complete::ChainEvent {
                    chain,
                    ok: true,
                    skip_links: false,
                });
            }
            Next::Issue(sqe, ch) => {
                // A member after its head (or a drained chain's head) is
                // released, not taken from the SQ (see `Core::released`).
                let now = released || self.released;
                let was = std::mem::replace(&mut self.released, now);
                self.issue_in(&sqe, Some(ch));
                self.released = was;
                let ops = &self.cq.ops;
                if let Some((lt, target)) = self.links.take_link_timeout(ch, |op| ops.is_live(op)) {
                    self.link_timeout(&lt, target);
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
        loop {
            // What a drain releases is issued as Linux issues it, from task
            // work (see `Core::released`).
            self.released = true;
            while let Some(sqe) = self.links.release_drained(self.in_flight()) {
                if self.links.building() {
                    self.append(&sqe);
                } else {
                    self.start(&sqe);
                }
            }
            if let Some(ch) = self.links.end_building() {
                self.flush_chain(ch);
            }
            self.released = false;
            if self.cq.events.is_empty() {
                break;
            }
            self.pump_chains();
        }
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
        let mut sub = match Submission::decode(sqe) {
            Ok(sub) => sub,
            Err(e) => {
                let chain = self.links.issuing();
                // A prep failure, as in `link_prep`.
                if chain.is_none() && !unimplemented(sqe.opcode) {
                    self.prep_failed = true;
                }
                self.cq
                    .complete_now(sqe.user_data, sqe.flags, chain, e.as_res(), 0);
                return;
            }
        };
        if let Err(e) = self.resolve_file(&mut sub) {
            match sub.req {
                // A zero-copy send posts it as every zero-copy failure.
                Request::Send(s) if s.kind.zero_copy() => {
                    self.fail_zero_copy(&sub, s.report_usage, e);
                }
                _ => self.complete(&sub, e.as_res(), 0),
            }
            return;
        }
        if self.fds.has_hook() && names_socket(&sub.req) && self.fds.get(sub.fd).is_none() {
            if let Err(e) = self.adopt_fd(sub.fd) {
                self.complete(&sub, e.as_res(), 0);
                return;
            }
        }
        let r = match sub.req {
            Request::Nop {
                inject,
                file,
                fixed_file,
                buf,
            } => self.op_nop(sub.fd, inject, file, fixed_file, buf),
            Request::Socket { direct, .. } => self.op_socket(direct),
            Request::Bind { addr, addrlen } => self.op_bind(&sub, addr, addrlen),
            Request::Listen { backlog } => self.op_listen(&sub, backlog),
            Request::Accept(a) => self.op_accept(&sub, a),
            Request::Connect { addr, addrlen } => self.op_connect(&sub, addr, addrlen),
            Request::Recv(r) => self.op_recv(&sub, r),
            Request::Send(mut s) => {
                if s.data == SendData::Fixed {
                    // io_send_zc_import: a fault there is posted as every
                    // zero-copy failure, once the socket is found. It runs
                    // after the prep checks and before the send, where
                    // MSG_FASTOPEN's -EISCONN comes from.
                    if let Err(e) = self.regbufs.check(sqe.buf_index, s.addr, s.len) {
                        s.issue_err = match s.issue_err {
                            Some(p) if p != errno::EISCONN => Some(p),
                            _ => Some(e),
                        };
                    }
                }
                self.op_send(&sub, s)
            }
            Request::Close { slot } => self.op_close(&sub, slot),
            Request::RwFixed(f) => self.op_rw_fixed(&sub, f),
            Request::SockCmd(c) => self.op_sock_cmd(&sub, c),
            Request::Shutdown { how } => self.op_shutdown(&sub, how),
            Request::PollAdd { events, mode } => self.op_poll_add(&sub, events, mode),
            Request::PollRemove {
                target,
                new_events,
                new_user_data,
            } => self.op_poll_remove(&sub, target, new_events, new_user_data),
            Request::Cancel(m) => match self.cancel_file(m) {
                Ok(m) => self.op_cancel(&sub, m),
                Err(e) => Err(e),
            },
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
            Request::MsgRing(m) => self.op_msg_ring(&sub, m),
        };
        match r {
            Ok(Some((res, flags))) => self.complete(&sub, res, flags),
            Ok(None) => {}
            Err(e) => self.complete(&sub, e.as_res(), 0),
        }
    }

    /// The socket a file op names (`io_assign_file`, at issue): with
    /// `IOSQE_FIXED_FILE` the socket in that file-table slot (none:
    /// `-EBADF`); without, a socket only slots name is no fd's.
    #[inline]
    fn resolve_file(&self, sub: &mut Submission) -> Result<(), errno::Errno> {
        if !needs_file(sub.opcode) {
            return Ok(());
        }
        if sub.flags & IOSQE_FIXED_FILE != 0 {
            sub.fd = self.files.get(sub.fd as u32).ok_or(errno::EBADF)?;
        } else if self.fds.hidden(sub.fd) {
            sub.fd = -1;
        }
        Ok(())
    }

    /// `IORING_ASYNC_CANCEL_FD`'s file, as `io_async_cancel` looks it up at
    /// issue: a slot with `FD_FIXED` (or `IOSQE_FIXED_FILE`), else an fd;
    /// none `-EBADF`. Requests match on the socket, however they named it.
    pub(crate) fn cancel_file(
        &self,
        mut m: super::request::CancelMatch,
    ) -> Result<super::request::CancelMatch, errno::Errno> {
        if let Some(fd) = m.fd {
            let sock = if m.fd_fixed {
                self.files.get(fd as u32)
            } else {
                self.fds.visible(fd).then_some(fd)
            };
            m.fd = Some(sock.ok_or(errno::EBADF)?);
        }
        Ok(m)
    }

    /// NOP (`io_nop`): with `file` the fd must name a socket (with
    /// `fixed_file`, file-table slot `fd` must hold one), else `-EBADF`;
    /// then with `buf` registered buffer `buf` must exist, else `-EFAULT`;
    /// then the result, `inject` or 0.
    fn op_nop(
        &self,
        fd: i32,
        inject: Option<i32>,
        file: bool,
        fixed_file: bool,
        buf: Option<u16>,
    ) -> super::OpResult {
        if file {
            let found = if fixed_file {
                self.files.get(fd as u32).is_some()
            } else {
                self.fds.visible(fd)
            };
            if !found {
                return Err(errno::EBADF);
            }
        }
        if buf.is_some_and(|b| !self.regbufs.exists(b)) {
            return Err(errno::EFAULT);
        }
        Ok(Some((inject.unwrap_or(0), 0)))
    }

    /// READ_FIXED / WRITE_FIXED: the socket, then the registered buffer
    /// (`io_import_reg_buf`: `-EFAULT`), then a READ / WRITE of it.
    fn op_rw_fixed(&mut self, sub: &Submission, f: RwFixed) -> super::OpResult {
        self.fds.get(sub.fd).ok_or(errno::EBADF)?;
        self.regbufs.check(f.buf, f.addr, f.len)?;
        if f.write {
            self.op_send(
                sub,
                Send {
                    kind: SendKind::Write,
                    addr: f.addr,
                    len: f.len,
                    msg_flags: f.msg_flags,
                    poll_first: false,
                    report_usage: false,
                    data: SendData::User,
                    bundle: false,
                    issue_err: f.issue_err,
                },
            )
        } else {
            self.op_recv(
                sub,
                Recv {
                    kind: RecvKind::Read,
                    addr: f.addr,
                    len: f.len,
                    msg_flags: f.msg_flags,
                    group: None,
                    multishot: false,
                    total: 0,
                    bundle: false,
                    poll_first: false,
                    issue_err: f.issue_err,
                },
            )
        }
    }

    /// Arms LINK_TIMEOUT `sqe` on the running request `target`, or fails it.
    fn link_timeout(&mut self, sqe: &Sqe, target: crate::ids::OpId) {
        match Request::decode(sqe) {
            Ok(Request::LinkTimeout(spec)) => {
                self.arm_link_timeout(sqe.user_data, sqe.flags, spec, target);
            }
            Ok(_) => unreachable!("a LINK_TIMEOUT SQE decodes to one"),
            Err(e) => self.cq.post_error(sqe.user_data, e),
        }
    }
}

/// An opcode Linux has and ringline does not support: it fails when issued
/// (`-EOPNOTSUPP`), as a request that ran and failed, not at prep.
fn unimplemented(opcode: u8) -> bool {
    opcode < IORING_OP_LAST && !super::request::supported(opcode)
}

/// The error Linux's prep (`io_init_req`) gives `sqe` as a chain member
/// after an SQE of opcode `prev` (`None`: it is the chain's head), which
/// fails the whole chain before anything in it runs: the decoder's checks,
/// and for a LINK_TIMEOUT its timespec (`-EFAULT`, negative `-EINVAL`),
/// then not following a request, or following another LINK_TIMEOUT
/// (`-EINVAL`).
///
/// An opcode Linux has and ringline does not support fails when issued
/// (`-EOPNOTSUPP`), as a request that ran and failed, not at prep.
fn link_prep(sqe: &Sqe, prev: Option<u8>) -> Option<errno::Errno> {
    if unimplemented(sqe.opcode) {
        return None;
    }
    match Request::decode(sqe) {
        Err(e) => Some(e),
        Ok(Request::LinkTimeout(spec)) => match super::timeouts::read_timespec_us(spec.ts_addr) {
            Err(e) => Some(e),
            Ok(_) if prev.is_none_or(|p| p == IORING_OP_LINK_TIMEOUT) => Some(errno::EINVAL),
            Ok(_) => None,
        },
        Ok(_) => None,
    }
}

/// Whether `req` names a socket by its number (and so may be the first
/// request to name a socket made outside the engine).
fn names_socket(req: &Request) -> bool {
    matches!(
        req,
        Request::Bind { .. }
            | Request::Listen { .. }
            | Request::Accept(_)
            | Request::Connect { .. }
            | Request::Recv(_)
            | Request::Send(_)
            | Request::Close { .. }
            | Request::RwFixed(_)
            | Request::SockCmd(_)
            | Request::Shutdown { .. }
            | Request::PollAdd { .. }
    )
}
