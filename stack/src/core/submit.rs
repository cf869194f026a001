//! SQE intake: each SQE is routed (into a chain being built, behind a drain
//! barrier, or issued now), issued to its executor, and chains advance as
//! their heads complete. The decisions are [`super::links::Links`]'; this
//! file carries them out.

use ringline_ring::abi::*;

use super::links::{Appended, Next, Route};
use super::Core;
use crate::errno::{self, Errno};

impl Core {
    /// Takes every SQE the application published. Returns how many.
    pub(crate) fn process_sqes(&mut self) -> usize {
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
            Appended::Expired => self
                .cq
                .post(sqe.user_data, errno::ECANCELED.as_res(), 0),
            Appended::Issue(ch) => self.issue_in(sqe, Some(ch)),
            Appended::ArmTimeout(head) => self.arm_link_timeout(sqe, head),
            Appended::Queued => {}
        }
    }

    /// Advances chains whose head completed (iteratively: long chains of
    /// immediate completions do not recurse).
    pub(crate) fn pump_chains(&mut self) {
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
                Next::Issue(sqe, ch) => self.issue_in(&sqe, Some(ch)),
            }
        }
    }

    /// Issues SQEs a drain barrier held once everything before it completed.
    pub(crate) fn run_drain(&mut self) {
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
    fn issue_in(&mut self, sqe: &Sqe, chain: Option<super::super::ids::ChainId>) {
        let saved = self.links.set_issuing(chain);
        self.issue(sqe);
        self.links.set_issuing(saved);
    }

    /// Runs `sqe`'s executor and completes it now if it did not park.
    fn issue(&mut self, sqe: &Sqe) {
        let r = match check_common(sqe) {
            Err(e) => Err(e),
            Ok(()) => match sqe.opcode {
                IORING_OP_NOP => self.op_nop(sqe),
                IORING_OP_SOCKET => self.op_socket(sqe),
                IORING_OP_BIND => self.op_bind(sqe),
                IORING_OP_LISTEN => self.op_listen(sqe),
                IORING_OP_ACCEPT => self.op_accept(sqe),
                IORING_OP_CONNECT => self.op_connect(sqe),
                IORING_OP_RECV | IORING_OP_READ | IORING_OP_RECVMSG => self.op_recv(sqe),
                IORING_OP_SEND | IORING_OP_WRITE | IORING_OP_SEND_ZC | IORING_OP_SENDMSG
                | IORING_OP_SENDMSG_ZC => self.op_send(sqe),
                // A LINK_TIMEOUT must follow a linked request in the same submission.
                IORING_OP_LINK_TIMEOUT => Err(errno::EINVAL),
                IORING_OP_CLOSE => self.op_close(sqe),
                IORING_OP_SHUTDOWN => self.op_shutdown(sqe),
                IORING_OP_POLL_ADD => self.op_poll_add(sqe),
                IORING_OP_POLL_REMOVE => self.op_poll_remove(sqe),
                IORING_OP_ASYNC_CANCEL => self.op_cancel(sqe),
                IORING_OP_PROVIDE_BUFFERS => self.op_provide_buffers(sqe),
                IORING_OP_REMOVE_BUFFERS => self.op_remove_buffers(sqe),
                IORING_OP_TIMEOUT => self.op_timeout(sqe),
                IORING_OP_TIMEOUT_REMOVE => self.op_timeout_remove(sqe),
                _ => Err(errno::EOPNOTSUPP),
            },
        };
        match r {
            Ok(Some((res, flags))) => self.complete(sqe, res, flags),
            Ok(None) => {}
            Err(e) => self.complete(sqe, e.as_res(), 0),
        }
    }
}

/// Checks every SQE must pass, whatever its opcode.
fn check_common(sqe: &Sqe) -> Result<(), Errno> {
    if sqe.opcode >= IORING_OP_LAST {
        return Err(errno::EINVAL);
    }
    if sqe.flags & !IOSQE_ALL != 0 {
        return Err(errno::EINVAL);
    }
    if sqe.flags & IOSQE_FIXED_FILE != 0 {
        // No registered file table.
        return Err(errno::EBADF);
    }
    if sqe.personality != 0 {
        return Err(errno::EINVAL);
    }
    if sqe.flags & IOSQE_BUFFER_SELECT != 0
        && !matches!(
            sqe.opcode,
            IORING_OP_RECV | IORING_OP_READ | IORING_OP_RECVMSG
        )
    {
        return Err(errno::EOPNOTSUPP);
    }
    Ok(())
}
