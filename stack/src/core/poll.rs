//! Readiness: POLL_ADD (one-shot, multishot, and ringline's coalesced
//! persistent poll), POLL_REMOVE and its updates, the readiness masks of
//! connections and listeners, and ASYNC_CANCEL.

use ringline_ring::abi::*;

use super::fds::Fd;
use super::{Core, OpResult};
use crate::errno;
use crate::ids::{ConnId, OpId};
use crate::ops::{OpKind, Owner};
use crate::usermem;

pub(crate) const POLLIN: u32 = libc::POLLIN as u32;
pub(crate) const POLLOUT: u32 = libc::POLLOUT as u32;
pub(crate) const POLLERR: u32 = libc::POLLERR as u32;
pub(crate) const POLLHUP: u32 = libc::POLLHUP as u32;
pub(crate) const POLLRDNORM: u32 = libc::POLLRDNORM as u32;
pub(crate) const POLLWRNORM: u32 = libc::POLLWRNORM as u32;
pub(crate) const POLLRDHUP: u32 = libc::POLLRDHUP as u32;

impl Core {
    /// What `poll(2)` would report for connection `cid` now.
    pub(crate) fn conn_mask(&self, cid: ConnId) -> u32 {
        let c = self.conns.get(cid);
        let s = c.sock_ref();
        let mut m = 0;
        if c.is_reset() {
            return POLLERR | POLLHUP | POLLIN | POLLRDNORM | POLLRDHUP;
        }
        if !c.established {
            return 0;
        }
        if s.can_recv() || c.read_closed() {
            m |= POLLIN | POLLRDNORM;
        }
        if c.fin() {
            m |= POLLRDHUP;
        }
        let wr_shut = c.write == super::conns::WriteSide::Shut;
        if s.can_send() && !wr_shut {
            m |= POLLOUT | POLLWRNORM;
        }
        if (c.fin() && wr_shut) || s.state() == smoltcp::socket::tcp::State::Closed {
            m |= POLLHUP;
        }
        m
    }

    /// What `poll(2)` would report for listener slot `slot` now.
    pub(crate) fn listener_mask(&self, slot: u32) -> u32 {
        if self.listeners.slot(slot).queue.is_empty() {
            0
        } else {
            POLLIN | POLLRDNORM
        }
    }

    /// Delivers the connection's mask to each of its polls.
    pub(crate) fn wake_polls(&mut self, cid: ConnId) {
        let mut cur = self.cq.ops.conn(cid).poll.front();
        if cur.is_none() {
            return;
        }
        let mask = self.conn_mask(cid);
        while let Some(id) = cur {
            cur = self.cq.ops.next_of(id);
            self.fire_poll(id, mask);
        }
    }

    /// Delivers the listener's mask to each of its polls.
    pub(crate) fn wake_listener_polls(&mut self, slot: u32) {
        let mut cur = self.cq.ops.listener(slot).poll.front();
        if cur.is_none() {
            return;
        }
        let mask = self.listener_mask(slot);
        while let Some(id) = cur {
            cur = self.cq.ops.next_of(id);
            self.fire_poll(id, mask);
        }
    }

    /// Delivers `mask` to poll op `id` if it is interested.
    pub(crate) fn fire_poll(&mut self, id: OpId, mask: u32) {
        let op = *self.cq.ops.get(id);
        let OpKind::Poll {
            events,
            multi,
            word,
        } = op.kind
        else {
            return;
        };
        let hit = mask & events;
        if hit == 0 {
            return;
        }
        if word != 0 {
            // Coalesced (uepoll): record the bits; queue a CQE only when the
            // word was clear, i.e. the application has consumed the last one.
            // At most one CQE per socket is outstanding, so it may take the
            // normal (never dropped) path and the request stays armed.
            match usermem::fetch_or_u32(word, hit) {
                Ok(0) => self.cq.post(op.user_data, hit as i32, IORING_CQE_F_MORE),
                Ok(_) => self.stats.polls_coalesced += 1,
                Err(e) => self.cq.finish(id, e, 0),
            }
            return;
        }
        if multi {
            self.cq.post_more(id, hit as i32, 0);
        } else {
            self.cq.finish(id, hit as i32, 0);
        }
    }

    pub(crate) fn op_poll_add(&mut self, sqe: &Sqe) -> OpResult {
        let flags = sqe.len;
        if flags & !(IORING_POLL_ADD_MULTI | RINGLINE_POLL_COALESCED) != 0 {
            // IORING_POLL_ADD_LEVEL is rejected by Linux too.
            return Err(errno::EINVAL);
        }
        let coalesced = flags & RINGLINE_POLL_COALESCED != 0;
        // Linux wants addr 0; the coalesced mode uses it for the ready word,
        // which must be a live, 4-byte aligned u32, and is always persistent.
        if coalesced {
            if flags & IORING_POLL_ADD_MULTI == 0 || !sqe.addr.is_multiple_of(4) {
                return Err(errno::EINVAL);
            }
            usermem::check(sqe.addr, 4).map_err(errno::from_res)?;
        } else if sqe.addr != 0 {
            return Err(errno::EINVAL);
        }
        if sqe.off != 0 || sqe.buf_index != 0 || sqe.ioprio != 0 {
            return Err(errno::EINVAL);
        }
        let multi = flags & IORING_POLL_ADD_MULTI != 0;
        if multi && sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0 {
            return Err(errno::EINVAL);
        }
        let events = (sqe.op_flags & 0xffff) | POLLERR | POLLHUP;
        let fd = self.fds.get(sqe.fd).ok_or(errno::EBADF)?;
        let kind = OpKind::Poll {
            events,
            multi,
            word: if coalesced { sqe.addr } else { 0 },
        };
        match fd {
            Fd::Free => unreachable!("Fds::get never returns Free"),
            Fd::Fresh { .. } => {
                // An unconnected TCP socket polls as OUT|HUP and never changes
                // until it is connected or listened on: report once.
                let id = self.park(sqe, kind, Owner::None);
                let mask = (POLLOUT | POLLWRNORM | POLLHUP) & events;
                self.cq.finish(id, mask as i32, 0);
            }
            Fd::Listener(lid) => {
                let id = self.park(sqe, kind, Owner::ListenPoll(lid.slot));
                let mask = self.listener_mask(lid.slot);
                self.fire_poll(id, mask);
            }
            Fd::Conn(cid) => {
                let id = self.park(sqe, kind, Owner::ConnPoll(cid));
                let mask = self.conn_mask(cid);
                self.fire_poll(id, mask);
            }
        }
        Ok(None)
    }

    pub(crate) fn op_poll_remove(&mut self, sqe: &Sqe) -> OpResult {
        let flags = sqe.len;
        let known =
            IORING_POLL_ADD_MULTI | IORING_POLL_UPDATE_EVENTS | IORING_POLL_UPDATE_USER_DATA;
        if flags & !known != 0 || sqe.buf_index != 0 {
            return Err(errno::EINVAL);
        }
        let ud = sqe.addr;
        let id = self
            .find_op(|op| op.user_data == ud && matches!(op.kind, OpKind::Poll { .. }))
            .ok_or(errno::ENOENT)?;
        if flags & (IORING_POLL_UPDATE_EVENTS | IORING_POLL_UPDATE_USER_DATA) == 0 {
            // As the kernel: the remover's CQE, then the poll's -ECANCELED.
            self.complete(sqe, 0, 0);
            self.cq.fail(id, errno::ECANCELED);
            return Ok(None);
        }
        let op = self.cq.ops.get_mut(id);
        if let OpKind::Poll { events, multi, .. } = &mut op.kind {
            if flags & IORING_POLL_UPDATE_EVENTS != 0 {
                *events = (sqe.op_flags & 0xffff) | POLLERR | POLLHUP;
                *multi = flags & IORING_POLL_ADD_MULTI != 0;
            }
        }
        if flags & IORING_POLL_UPDATE_USER_DATA != 0 {
            op.user_data = sqe.off;
        }
        let owner = op.owner;
        self.complete(sqe, 0, 0);
        // The new mask may already be satisfied: re-poll, as the kernel does.
        let mask = match owner {
            Owner::ConnPoll(cid) => self.conn_mask(cid),
            Owner::ListenPoll(slot) => self.listener_mask(slot),
            _ => 0,
        };
        self.fire_poll(id, mask);
        Ok(None)
    }

    pub(crate) fn op_cancel(&mut self, sqe: &Sqe) -> OpResult {
        let flags = sqe.op_flags;
        let known = IORING_ASYNC_CANCEL_ALL
            | IORING_ASYNC_CANCEL_FD
            | IORING_ASYNC_CANCEL_ANY
            | IORING_ASYNC_CANCEL_USERDATA
            | IORING_ASYNC_CANCEL_OP;
        if flags & !known != 0 {
            return Err(errno::EINVAL);
        }
        let any = flags & IORING_ASYNC_CANCEL_ANY != 0;
        let by_fd = flags & IORING_ASYNC_CANCEL_FD != 0;
        let by_op = flags & IORING_ASYNC_CANCEL_OP != 0;
        // user_data is the key unless FD or OP say otherwise (USERDATA adds it back).
        let by_ud = !any && (!(by_fd || by_op) || flags & IORING_ASYNC_CANCEL_USERDATA != 0);
        let all = any || flags & IORING_ASYNC_CANCEL_ALL != 0;
        if by_op && sqe.len >= IORING_OP_LAST as u32 {
            return Err(errno::EINVAL);
        }
        let (key, fd, opc) = (sqe.addr, sqe.fd, sqe.len as u8);
        self.find_op(|op| {
            (any || !by_fd || op.fd == fd)
                && (!by_ud || op.user_data == key)
                && (!by_op || op.opcode == opc)
        });
        let mut found = std::mem::take(&mut self.found);
        let n = if all { found.len() } else { found.len().min(1) };
        // As the kernel: the canceller's CQE first, then each target's -ECANCELED.
        match (n, all) {
            (0, false) => self.complete(sqe, errno::ENOENT.as_res(), 0),
            (_, true) => self.complete(sqe, n as i32, 0),
            (_, false) => self.complete(sqe, 0, 0),
        }
        for &id in &found[..n] {
            self.cq.fail(id, errno::ECANCELED);
        }
        found.clear();
        self.found = found;
        Ok(None)
    }
}
