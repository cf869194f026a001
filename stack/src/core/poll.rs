//! Readiness: POLL_ADD (one-shot, multishot, and ringline's coalesced
//! persistent poll), POLL_REMOVE and its updates, the readiness masks of
//! connections and listeners, and ASYNC_CANCEL.

use ringline_ring::abi::*;

use super::fds::Fd;
use super::ops::{OpKind, Owner};
use super::request::{poll_interest, CancelMatch, PollEvents, PollMode, Submission};
use super::{Core, OpResult};
use crate::errno;
use crate::ids::{ConnId, OpId};
use crate::usermem;

pub(crate) const POLLIN: u32 = libc::POLLIN as u32;
pub(crate) const POLLOUT: u32 = libc::POLLOUT as u32;
pub(crate) const POLLPRI: u32 = libc::POLLPRI as u32;
pub(crate) const POLLRDBAND: u32 = libc::POLLRDBAND as u32;
pub(crate) const POLLERR: u32 = libc::POLLERR as u32;
pub(crate) const POLLHUP: u32 = libc::POLLHUP as u32;
pub(crate) const POLLRDNORM: u32 = libc::POLLRDNORM as u32;
pub(crate) const POLLWRNORM: u32 = libc::POLLWRNORM as u32;
pub(crate) const POLLWRBAND: u32 = libc::POLLWRBAND as u32;
/// What a write-space wake-up carries (Linux's `sk_stream_write_space`).
const WRITE_SPACE: u32 = POLLOUT | POLLWRNORM | POLLWRBAND;
/// What a data wake-up carries (Linux's `sock_def_readable`): on a
/// connection, data arrived; on a listener, a connection was queued.
const DATA_READY: u32 = POLLIN | POLLPRI | POLLRDNORM | POLLRDBAND;
/// A wake-up without a key (`sk_state_change`): a poll that wakes reports
/// the socket's whole mask.
const NO_KEY: u32 = u32::MAX;
pub(crate) const POLLRDHUP: u32 = libc::POLLRDHUP as u32;

impl Core {
    /// What `poll(2)` would report for connection `cid` now: Linux's
    /// `tcp_poll`. A shut direction (the peer's FIN or SHUT_RD for reading,
    /// SHUT_WR for writing; a reset shuts both, as `tcp_done`) reads as
    /// ready, so POLLOUT stays on after SHUT_WR or a reset; POLLHUP when
    /// both are shut; POLLERR only while the error is unreported (`sk_err`:
    /// the first request that reports it, a refused CONNECT included, clears it).
    pub(crate) fn conn_mask(&self, cid: ConnId) -> u32 {
        let c = self.conns.get(cid);
        let s = c.sock_ref();
        let reset = c.is_reset();
        if !c.established && !reset {
            // SYN_SENT: nothing yet.
            return 0;
        }
        let rcv_shut = reset || c.read_closed();
        let snd_shut = reset || c.write == super::conns::WriteSide::Shut;
        let mut m = 0;
        if (rcv_shut && snd_shut) || s.state() == smoltcp::socket::tcp::State::Closed {
            m |= POLLHUP;
        }
        if rcv_shut {
            m |= POLLIN | POLLRDNORM | POLLRDHUP;
        }
        if s.can_recv() {
            m |= POLLIN | POLLRDNORM;
        }
        if snd_shut {
            m |= POLLOUT | POLLWRNORM;
        } else {
            // Linux's __sk_stream_is_writeable: free space at least half of
            // what is queued (a third of the buffer once it is full).
            let queued = s.send_queue();
            let free = s.send_capacity().saturating_sub(queued);
            if s.can_send() && free >= queued / 2 {
                m |= POLLOUT | POLLWRNORM;
            }
        }
        if c.reset == super::conns::Reset::Pending {
            m |= POLLERR;
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

    /// Wakes the connection's polls after something happened to it, as
    /// Linux's socket callbacks do: a wake-up carries a key, and a poll
    /// whose events miss the key stays asleep; one that wakes reports the
    /// whole mask (its events' part). The key: a state change (handshake,
    /// FIN, reset) wakes every poll; an arrival of data wakes POLLIN polls
    /// (not an ACK, while unread data waits); POLLOUT wakes only on write space, i.e. when the socket turns
    /// writable after a send found it full or a poll found it not writable
    /// (`SOCK_NOSPACE`), not on every ACK while space is free.
    pub(crate) fn wake_polls(&mut self, cid: ConnId) {
        let mask = self.conn_mask(cid);
        let first = self.cq.ops.conn(cid).poll.front();
        let c = self.conns.get_mut(cid);
        let queued = c.sock_ref().recv_queue();
        let arrived = queued > c.rx_seen;
        c.rx_seen = queued;
        let mut key = if arrived { DATA_READY } else { 0 };
        if std::mem::take(&mut c.state_woke) {
            key = NO_KEY;
        }
        if mask & POLLOUT != 0 {
            if std::mem::take(&mut c.nospace) {
                key |= WRITE_SPACE;
            }
        } else if first.is_some() && c.established {
            // Each poll that looks and finds no room asks for the wake-up.
            c.nospace = true;
        }
        if let Some(first) = first {
            if key != 0 {
                self.fire_polls(first, mask, key);
            }
        }
    }

    /// Delivers the listener's mask to each of its polls.
    pub(crate) fn wake_listener_polls(&mut self, slot: u32) {
        if let Some(first) = self.cq.ops.listener(slot).poll.front() {
            let mask = self.listener_mask(slot);
            if mask != 0 {
                // A queued connection: the listener's sk_data_ready.
                self.fire_polls(first, mask, DATA_READY);
            }
        }
    }

    /// Wakes the polls on a list whose events meet the wake-up `key`, from
    /// `first` on (each may finish and leave the list: the next is read
    /// before). As io_uring's `io_poll_wake`, a keyed wake-up reports the
    /// key (its events' part), not the socket's mask: data arriving
    /// reports POLLIN|POLLPRI to a poll for both; a wake-up without a key
    /// ([`NO_KEY`]) reports `mask`.
    fn fire_polls(&mut self, first: OpId, mask: u32, key: u32) {
        let report = if key == NO_KEY { mask } else { key };
        let mut cur = Some(first);
        while let Some(id) = cur {
            cur = self.cq.ops.next_of(id);
            if let OpKind::Poll { events, .. } = self.cq.ops.get(id).kind {
                if events & key != 0 {
                    self.fire_poll(id, report);
                }
            }
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
                Err(e) => self.cq.fail(id, e),
            }
            return;
        }
        if multi {
            self.cq.post_more(id, hit as i32, 0);
        } else {
            self.cq.finish(id, hit as i32, 0);
        }
    }

    pub(crate) fn op_poll_add(
        &mut self,
        sub: &Submission,
        events: u32,
        mode: PollMode,
    ) -> OpResult {
        let (multi, word) = match mode {
            PollMode::OneShot => (false, 0),
            PollMode::Multi => (true, 0),
            PollMode::Coalesced { word } => {
                // The ready word must be live (decode checked its alignment).
                usermem::check(word, 4)?;
                (true, word)
            }
        };
        let events = poll_interest(events);
        let fd = self.fds.get(sub.fd).ok_or(errno::EBADF)?;
        let kind = OpKind::Poll {
            events,
            multi,
            word,
        };
        match fd {
            Fd::Free => unreachable!("Fds::get never returns Free"),
            Fd::Fresh { .. } => {
                // An unconnected TCP socket polls as OUT|HUP and never changes
                // until it is connected or listened on: report once.
                let id = self.park(sub, kind, Owner::None);
                let mask = (POLLOUT | POLLWRNORM | POLLHUP) & events;
                self.cq.finish(id, mask as i32, 0);
            }
            Fd::Listener(lid) => {
                let id = self.park(sub, kind, Owner::ListenPoll(lid.slot));
                let mask = self.listener_mask(lid.slot);
                self.fire_poll(id, mask);
            }
            Fd::Conn(cid) => {
                let id = self.park(sub, kind, Owner::ConnPoll(cid));
                let mask = self.conn_mask(cid);
                let c = self.conns.get_mut(cid);
                if mask & POLLOUT == 0 && c.established {
                    // tcp_poll found no room: the next room is a wake-up.
                    c.nospace = true;
                }
                self.fire_poll(id, mask);
            }
        }
        Ok(None)
    }

    pub(crate) fn op_poll_remove(
        &mut self,
        sub: &Submission,
        target: u64,
        new_events: Option<PollEvents>,
        new_user_data: Option<u64>,
    ) -> OpResult {
        let id = self
            .find_op(|op| op.user_data == target && matches!(op.kind, OpKind::Poll { .. }))
            .ok_or(errno::ENOENT)?;
        if new_events.is_none() && new_user_data.is_none() {
            // As the kernel: the remover's CQE, then the poll's -ECANCELED.
            self.complete(sub, 0, 0);
            self.cq.fail(id, errno::ECANCELED);
            return Ok(None);
        }
        let op = self.cq.ops.get_mut(id);
        if let (OpKind::Poll { events, .. }, Some(new)) = (&mut op.kind, new_events) {
            // As the kernel, only the event bits change: a multishot poll
            // stays multishot and a one-shot stays one-shot, whatever the
            // update's IORING_POLL_ADD_MULTI says.
            *events = poll_interest(new.events);
        }
        if let Some(ud) = new_user_data {
            op.user_data = ud;
        }
        let owner = op.owner;
        self.complete(sub, 0, 0);
        // The new mask may already be satisfied: re-poll, as the kernel does.
        let mask = match owner {
            Owner::ConnPoll(cid) => self.conn_mask(cid),
            Owner::ListenPoll(slot) => self.listener_mask(slot),
            _ => 0,
        };
        self.fire_poll(id, mask);
        Ok(None)
    }

    pub(crate) fn op_cancel(&mut self, sub: &Submission, m: CancelMatch) -> OpResult {
        // As the kernel: the canceller's CQE first, then each target's -ECANCELED.
        self.cancel_where(m, |core, n| match (n, m.all) {
            (0, false) => core.complete(sub, errno::ENOENT.as_res(), 0),
            (_, true) => core.complete(sub, n as i32, 0),
            (_, false) => core.complete(sub, 0, 0),
        });
        Ok(None)
    }

    /// Cancels the requests `m` matches (the first, or with `all` every
    /// one), each completing `-ECANCELED`, after calling `first` with how
    /// many that is. Returns it.
    pub(crate) fn cancel_where(
        &mut self,
        m: CancelMatch,
        first: impl FnOnce(&mut Self, usize),
    ) -> usize {
        // As the kernel: a LINK_TIMEOUT is not a target (it ends with the
        // request it guards; IORING_LINK_TIMEOUT_UPDATE is how to reach it).
        self.find_op(|op| {
            !matches!(op.kind, OpKind::LinkTimeout { .. })
                && m.matches(op.fd, op.user_data, op.opcode)
        });
        let mut found = std::mem::take(&mut self.found);
        let n = if m.all {
            found.len()
        } else {
            found.len().min(1)
        };
        first(self, n);
        let mut gens = std::mem::take(&mut self.found_gen);
        gens.clear();
        gens.extend(found[..n].iter().map(|&id| self.cq.ops.gen(id)));
        for (&id, &g) in found[..n].iter().zip(&gens) {
            // Cancelling an earlier one may have ended this one already (a
            // RECV ends its LINK_TIMEOUT; a chain's head ends the rest).
            if self.cq.ops.is_live(id) && self.cq.ops.gen(id) == g {
                self.cq.fail(id, errno::ECANCELED);
            }
        }
        found.clear();
        self.found = found;
        self.found_gen = gens;
        n
    }
}
