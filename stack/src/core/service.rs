//! Servicing the connections something happened to (the ready set, O(ready)
//! per step): the handshake completing or failing, the connection moving to
//! its listener's accept queue, receives, sends and polls advancing, and
//! orphans draining until TCP is done.

use smoltcp::socket::tcp::State as S;

use super::conns::{Phase, Reset};
use super::{Core, Progress};
use crate::errno;
use crate::ids::ConnId;

impl Core {
    /// Services every connection on the ready set once.
    #[inline]
    pub(crate) fn run_ready(&mut self) {
        if !self.conns.none_ready() {
            self.service_ready();
        }
    }

    fn service_ready(&mut self) {
        let work = self.conns.take_ready();
        for &cid in &work {
            if self.conns.is_live(cid) {
                self.service(cid);
            }
        }
        self.conns.end_ready(work);
    }

    /// Reacts to whatever happened to `cid`: state changes, data, space, EOF.
    fn service(&mut self, cid: ConnId) {
        let alive = self.conns.alive;
        let c = self.conns.get_mut(cid);
        let (state, _) = c.observe(alive, self.now_us);
        match c.phase {
            Phase::Free | Phase::Queued(_) => {}
            Phase::Handshake(lid) => {
                if c.established {
                    if self.listeners.handshake_done(lid, cid) {
                        self.conns.get_mut(cid).phase = Phase::Queued(lid);
                        self.service_listener(lid);
                    } else {
                        // Its listener closed meanwhile.
                        c.abort_orphan();
                        self.conns.mark_dirty(cid);
                    }
                } else if state == S::Closed {
                    self.listeners.handshake_failed(lid);
                    self.release_conn(cid);
                }
            }
            Phase::Connecting => {
                if c.established {
                    c.phase = Phase::Open;
                    if let Some(op) = self.cq.ops.conn(cid).connect {
                        self.cq.finish(op, 0, 0);
                    }
                    self.service_open(cid);
                } else if state == S::Closed {
                    let timed_out = self.now_us.saturating_sub(c.started_us)
                        >= self.cfg.handshake_timeout.as_micros() as u64;
                    let err = if timed_out {
                        errno::ETIMEDOUT
                    } else {
                        errno::ECONNREFUSED
                    };
                    c.phase = Phase::Open;
                    if c.reset == Reset::No {
                        c.reset = Reset::Pending;
                    }
                    self.conns.unbind_tuple(cid);
                    self.conns.timers.cancel(cid);
                    if let Some(op) = self.cq.ops.conn(cid).connect {
                        self.cq.fail(op, err);
                        // The CONNECT reported the error (Linux's sock_error
                        // clears sk_err): later requests see a closed socket.
                        self.conns.get_mut(cid).reset = Reset::Reported;
                    }
                    self.service_open(cid);
                }
            }
            Phase::Open => self.service_open(cid),
            Phase::Orphan => {
                // Nobody will read: discard what arrives so the window stays open.
                let s = c.sock();
                while s.can_recv() {
                    if s.recv(|b| (b.len(), ())).is_err() {
                        break;
                    }
                }
                if state == S::Closed {
                    self.release_conn(cid);
                }
            }
        }
    }

    /// `cid`'s next hop never answered ARP: the connection fails, as Linux
    /// fails it with `EHOSTUNREACH`. A CONNECT completes with it and later
    /// requests see the reset; a half-open connection is freed (its backlog
    /// slot with it); anything else is aborted.
    pub(crate) fn unreachable(&mut self, cid: ConnId) {
        self.stats.unreachable += 1;
        let c = self.conns.get_mut(cid);
        c.arp_since = None;
        c.aborted = true;
        c.sock().abort();
        match c.phase {
            Phase::Free => {}
            Phase::Handshake(lid) => {
                self.listeners.handshake_failed(lid);
                self.release_conn(cid);
            }
            Phase::Connecting => {
                c.phase = Phase::Open;
                c.reset = Reset::Pending;
                c.last_state = smoltcp::socket::tcp::State::Closed;
                c.state_woke = true;
                self.conns.unbind_tuple(cid);
                self.conns.timers.cancel(cid);
                if let Some(op) = self.cq.ops.conn(cid).connect {
                    self.cq.fail(op, errno::EHOSTUNREACH);
                    self.conns.get_mut(cid).reset = Reset::Reported;
                }
                self.service_open(cid);
            }
            Phase::Queued(_) | Phase::Open => {
                if c.reset == Reset::No {
                    c.reset = Reset::Pending;
                }
                c.last_state = smoltcp::socket::tcp::State::Closed;
                c.state_woke = true;
                self.conns.timers.cancel(cid);
                self.service_open(cid);
            }
            Phase::Orphan => self.release_conn(cid),
        }
    }

    /// Advances an open connection's receives (FIFO), sends, then polls.
    pub(crate) fn service_open(&mut self, cid: ConnId) {
        while let Some(op) = self.cq.ops.conn(cid).recv.front() {
            match self.try_recv(cid, op) {
                Progress::Done => continue,
                Progress::Wait => break,
                Progress::Yield => {
                    self.conns.mark_ready(cid);
                    break;
                }
            }
        }
        self.conns.get_mut(cid).taken_by_app();
        while let Some(op) = self.cq.ops.conn(cid).send.front() {
            match self.try_send(cid, op) {
                Progress::Done => continue,
                _ => break,
            }
        }
        self.wake_polls(cid);
    }
}
