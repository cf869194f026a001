//! Socket executors: SOCKET, BIND, LISTEN, ACCEPT, CONNECT, CLOSE, SHUTDOWN,
//! with the accept queue's completion.

use std::net::{Ipv4Addr, SocketAddrV4};

use ringline_ring::abi::*;
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;

use super::conns::{tuple_key, CloseHow, Phase, Reset, WriteSide};
use super::fds::Fd;
use super::ops::{OpKind, Owner};
use super::request::{Accept, Direct, ShutdownHow, Submission};
use super::{Core, OpResult};
use crate::errno::{self, Errno};
use crate::ids::{ConnId, ListenerId};
use crate::usermem;

impl Core {
    pub(crate) fn op_socket(&mut self, direct: Option<Direct>) -> OpResult {
        let fd = self.fds.alloc(Fd::Fresh { port: 0 }).ok_or(errno::EMFILE)?;
        let Some(d) = direct else {
            return Ok(Some((fd, 0)));
        };
        match self.install_direct(d, fd) {
            Ok(res) => Ok(Some((res, 0))),
            Err(e) => {
                // The socket was made and could not be installed: it is gone.
                self.fds.free(fd);
                Err(e)
            }
        }
    }

    /// A free ephemeral port (nothing bound or listening on it).
    fn pick_free_port(&mut self) -> Option<u16> {
        let (listeners, claim) = (&self.listeners, &self.claim);
        self.fds
            .pick_port(|p| listeners.is_listening(p) || claimed(claim, p))
    }

    pub(crate) fn op_bind(&mut self, sub: &Submission, addr: u64, addrlen: u64) -> OpResult {
        let cur = match self.fds.get(sub.fd) {
            None => return Err(errno::EBADF),
            Some(Fd::Fresh { port }) => port,
            Some(_) => return Err(errno::EINVAL),
        };
        if cur != 0 {
            return Err(errno::EINVAL);
        }
        let (ip, port) = read_sockaddr(addr, addrlen)?;
        if !ip.is_unspecified() && ip != self.host.ip {
            return Err(errno::EADDRNOTAVAIL);
        }
        let port = if port == 0 {
            self.pick_free_port().ok_or(errno::EADDRINUSE)?
        } else {
            if self.fds.is_bound(port)
                || self.listeners.is_listening(port)
                || claimed(&self.claim, port)
            {
                return Err(errno::EADDRINUSE);
            }
            port
        };
        self.fds.bind(port, sub.fd);
        self.fds.set(sub.fd, Fd::Fresh { port });
        self.fds.named(sub.fd, SocketAddrV4::new(ip, port), None);
        Ok(Some((0, 0)))
    }

    pub(crate) fn op_listen(&mut self, sub: &Submission, backlog: u32) -> OpResult {
        let backlog = backlog.max(1).min(self.cfg.somaxconn);
        match self.fds.get(sub.fd) {
            None | Some(Fd::Free) => Err(errno::EBADF),
            Some(Fd::Listener(lid)) => {
                if let Some(l) = self.listeners.get_mut(lid) {
                    l.backlog = backlog;
                }
                Ok(Some((0, 0)))
            }
            Some(Fd::Conn(_)) => Err(errno::EINVAL),
            Some(Fd::Fresh { port }) => {
                let port = if port == 0 {
                    let p = self.pick_free_port().ok_or(errno::EADDRINUSE)?;
                    self.fds.bind(p, sub.fd);
                    p
                } else {
                    port
                };
                if self.claim.as_ref().is_some_and(|c| !c.claim(port)) {
                    return Err(errno::EADDRINUSE);
                }
                let lid = self.listeners.open(port, backlog, self.fds.opts(sub.fd));
                self.fds.set(sub.fd, Fd::Listener(lid));
                self.fds.options_changed(sub.fd, self.fds.opts(sub.fd));
                Ok(Some((0, 0)))
            }
        }
    }

    pub(crate) fn op_accept(&mut self, sub: &Submission, a: Accept) -> OpResult {
        let lid = match self.fds.get(sub.fd) {
            None => return Err(errno::EBADF),
            Some(Fd::Listener(lid)) => lid,
            Some(_) => return Err(errno::EINVAL),
        };
        if a.dontwait && self.listeners.slot(lid.slot).queue.is_empty() {
            return Err(errno::EAGAIN);
        }
        let kind = OpKind::Accept {
            multishot: a.multishot,
            dontwait: a.dontwait,
            direct: a.direct,
            addr: a.addr,
            addrlen: a.addrlen,
        };
        self.park(sub, kind, Owner::Accept(lid.slot));
        self.complete_accepts(lid);
        Ok(None)
    }

    /// Pairs queued connections with waiting ACCEPTs, then tells the
    /// listener's polls.
    pub(crate) fn service_listener(&mut self, lid: ListenerId) {
        self.complete_accepts(lid);
        self.wake_listener_polls(lid.slot);
    }

    fn complete_accepts(&mut self, lid: ListenerId) {
        loop {
            let Some(l) = self.listeners.get_mut(lid) else {
                return;
            };
            let (Some(op), Some(&cid)) = (
                self.cq.ops.listener(lid.slot).accept.front(),
                l.queue.front(),
            ) else {
                return;
            };
            let OpKind::Accept {
                multishot,
                dontwait,
                direct,
                addr,
                addrlen,
            } = self.cq.ops.get(op).kind
            else {
                return;
            };
            l.queue.pop_front();
            let more = !l.queue.is_empty();
            let l_opts = l.opts;
            let Some(fd) = self.fds.alloc(Fd::Conn(cid)) else {
                // No number left: as Linux when the fd table is full, the
                // connection is closed and the request fails.
                self.stats.accepted += 1;
                self.conns.get_mut(cid).phase = Phase::Open;
                self.close_conn(cid, CloseHow::Fin);
                self.cq.fail(op, errno::EMFILE);
                continue;
            };
            // The accepted socket inherits the listener's options.
            let opts = l_opts;
            *self.fds.opts_mut(fd) = opts;
            self.fds.options_changed(fd, opts);
            opts.apply(self.conns.get_mut(cid), self.now_us);
            // The CQE's result: the fd, or the direct descriptor's.
            let mut res = fd;
            if let Some(d) = direct {
                match self.install_direct(d, fd) {
                    Ok(r) => res = r,
                    Err(e) => {
                        // Accepted, not installable: closed at once, and the
                        // request fails (a multishot ends), as in Linux.
                        self.fds.free(fd);
                        self.stats.accepted += 1;
                        self.conns.get_mut(cid).phase = Phase::Open;
                        self.close_conn(cid, CloseHow::Fin);
                        self.cq.fail(op, e);
                        continue;
                    }
                }
            }
            let c = self.conns.get_mut(cid);
            c.fd = fd;
            c.phase = Phase::Open;
            // No poll could watch it before it had a number: the handshake's
            // state changes, and data that came before the accept, wake nobody.
            c.state_woke = false;
            c.rx_seen = c.sock_ref().recv_queue();
            let (rip, rport) = (c.remote_ip, c.remote_port);
            let local = SocketAddrV4::new(self.host.ip, c.local_port);
            self.fds
                .named(fd, local, Some(SocketAddrV4::new(rip, rport)));
            self.stats.accepted += 1;
            if addr != 0 {
                if let Err(e) = write_sockaddr(addr, addrlen, rip, rport) {
                    // The connection is not lost: it stays open under `fd`, as in Linux
                    // where the fd is installed before the address copy fails.
                    self.cq.fail(op, e);
                    continue;
                }
            }
            let flags = if more { IORING_CQE_F_SOCK_NONEMPTY } else { 0 };
            if multishot {
                // CQ full: the multishot ends with this connection in its final CQE.
                if self.cq.post_more(op, res, flags) && dontwait && !more {
                    // As Linux's io_accept: the retry on the emptied queue
                    // gets -EAGAIN, which DONTWAIT does not wait out.
                    self.cq.fail(op, errno::EAGAIN);
                }
            } else {
                self.cq.finish(op, res, flags);
            }
            // Data may have arrived before the accept; pending work is picked up
            // when ops are submitted on the new socket.
        }
    }

    pub(crate) fn op_connect(&mut self, sub: &Submission, addr: u64, addrlen: u64) -> OpResult {
        // A socket whose CONNECT failed (refused, timed out, unreachable) is
        // back in TCP_CLOSE: Linux lets it connect again.
        let mut failed = None;
        let port = match self.fds.get(sub.fd) {
            None | Some(Fd::Free) => return Err(errno::EBADF),
            Some(Fd::Fresh { port }) => port,
            Some(Fd::Conn(cid)) => {
                let c = self.conns.get(cid);
                if c.phase == Phase::Connecting {
                    return Err(errno::EALREADY);
                }
                if sockaddr_family(addr, addrlen)? == libc::AF_UNSPEC as u16 {
                    self.disconnect(cid);
                    return Ok(Some((0, 0)));
                }
                let c = self.conns.get(cid);
                if (c.established && !c.disconnected)
                    || !c.is_reset()
                    || self.cq.ops.conn(cid).any().is_some()
                {
                    return Err(errno::EISCONN);
                }
                failed = Some(cid);
                0
            }
            Some(Fd::Listener(_)) => return Err(errno::EISCONN),
        };
        if failed.is_none() && sockaddr_family(addr, addrlen)? == libc::AF_UNSPEC as u16 {
            // AF_UNSPEC disconnects (inet_stream_connect): on a socket that
            // is not connected there is nothing to undo.
            return Ok(Some((0, 0)));
        }
        let (rip, rport) = read_sockaddr(addr, addrlen)?;
        if rip.is_unspecified() || rip == self.host.ip || rip.is_broadcast() || rip.is_multicast() {
            return Err(errno::ENETUNREACH);
        }
        if rport == 0 {
            return Err(errno::ECONNREFUSED);
        }
        if !self.host.on_link(rip) && !self.host.has_gateway() {
            return Err(errno::ENETUNREACH);
        }
        let lport = if port != 0 {
            if self.conns.has_tuple(tuple_key(rip, rport, port)) {
                return Err(errno::EADDRNOTAVAIL);
            }
            port
        } else {
            let (listeners, conns, claim) = (&self.listeners, &self.conns, &self.claim);
            // One engine of several on a port: only a port whose flow hashes
            // to this engine's queue, so the replies come back here (about
            // one port in `queues`; F-Stack and mTCP pick theirs the same way).
            let (queue, queues) = self.rss;
            let (lip, rip4) = (self.host.ip.octets(), rip.octets());
            self.fds
                .pick_port(|p| {
                    listeners.is_listening(p)
                        || claimed(claim, p)
                        || conns.has_tuple(tuple_key(rip, rport, p))
                        || (queues > 1
                            && ringline_dataplane::rss::queue_of_flow(rip4, lip, rport, p, queues)
                                != queue)
                })
                .ok_or(errno::EADDRNOTAVAIL)?
        };
        if let Some(old) = failed {
            self.release_conn(old);
            self.fds.set(sub.fd, Fd::Fresh { port: 0 });
        }
        let now_us = self.now_us;
        let cid = self.conns.alloc(now_us).ok_or(errno::ENOBUFS)?;
        let c = self.conns.get_mut(cid);
        c.phase = Phase::Connecting;
        c.remote_ip = rip;
        c.remote_port = rport;
        c.local_port = lport;
        c.fd = sub.fd;
        self.fds.opts(sub.fd).apply(c, now_us);
        if c.sock()
            .connect(self.iface.context(), (IpAddress::Ipv4(rip), rport), lport)
            .is_err()
        {
            self.release_conn(cid);
            return Err(errno::EINVAL);
        }
        c.last_state = tcp::State::SynSent;
        self.conns.bind_tuple(cid, tuple_key(rip, rport, lport));
        let local = SocketAddrV4::new(self.host.ip, lport);
        self.fds
            .named(sub.fd, local, Some(SocketAddrV4::new(rip, rport)));
        if port != 0 {
            self.fds.unbind(port);
        }
        self.fds.set(sub.fd, Fd::Conn(cid));
        self.park(sub, OpKind::Connect, Owner::Connect(cid));
        self.stats.connects += 1;
        self.conns.mark_dirty(cid);
        Ok(None)
    }

    pub(crate) fn op_close(&mut self, sub: &Submission, slot: u32) -> OpResult {
        if slot != 0 {
            return self.close_slot(slot - 1).map(|()| Some((0, 0)));
        }
        self.close_fd(sub.fd)
    }

    /// A socket made outside the engine (`socket()`/`bind()`/`listen()` in
    /// `libringline`) that a request names for the first time: installed
    /// under its number, bound and listening as it was. Errors as BIND and
    /// LISTEN would give them (the port taken: `-EADDRINUSE`).
    pub(crate) fn adopt_fd(&mut self, fd: i32) -> Result<(), Errno> {
        let Some(a) = self.fds.adopt(fd) else {
            return Ok(());
        };
        let (port, backlog, opts) = match a {
            crate::Adopted::Socket { port, opts } => (port, None, opts),
            crate::Adopted::Listener {
                port,
                backlog,
                opts,
            } => (port, Some(backlog), opts),
        };
        if let Some(o) = opts {
            *self.fds.opts_mut(fd) = o;
        }
        if port != 0 {
            if self.fds.is_bound(port) || self.listeners.is_listening(port) {
                self.fds.free(fd);
                return Err(errno::EADDRINUSE);
            }
            self.fds.bind(port, fd);
            self.fds.set(fd, Fd::Fresh { port });
        }
        if let Some(backlog) = backlog {
            let backlog = backlog.max(1).min(self.cfg.somaxconn);
            let lid = self.listeners.open(port, backlog, self.fds.opts(fd));
            self.fds.set(fd, Fd::Listener(lid));
        }
        self.fds.options_changed(fd, self.fds.opts(fd));
        Ok(())
    }

    /// Closes socket number `fd` (IORING_OP_CLOSE, or `close()` in
    /// `libringline`): if a file-table slot holds the socket, only the
    /// number goes.
    pub(crate) fn close_fd(&mut self, fd: i32) -> OpResult {
        if !self.fds.visible(fd) {
            return Err(errno::EBADF);
        }
        let h = self.fds.hold_mut(fd);
        if h.slots > 0 {
            // A file-table slot holds the socket: only the fd goes.
            h.hidden = true;
            return Ok(Some((0, 0)));
        }
        self.close_socket(fd)
    }

    /// Closes socket `fd` (no slot holds it and its fd, if it had one, is
    /// gone): at once, or once its last request in flight completes.
    pub(crate) fn close_socket(&mut self, fd: i32) -> OpResult {
        match self.fds.get(fd) {
            None | Some(Fd::Free) => Err(errno::EBADF),
            Some(Fd::Fresh { port }) => {
                if port != 0 {
                    self.fds.unbind(port);
                }
                self.fds.free(fd);
                Ok(Some((0, 0)))
            }
            // As in Linux, requests in flight hold the socket open: it
            // closes when the last of them completes (`finish_closes`).
            Some(Fd::Listener(lid)) => {
                self.fds.free(fd);
                let ops = self.cq.ops.listener(lid.slot);
                if ops.accept.is_empty() && ops.poll.is_empty() {
                    self.close_listener(lid);
                } else {
                    self.cq.ops.forget_fd_of_listener(lid.slot);
                    self.closing_listeners.push(lid);
                }
                Ok(Some((0, 0)))
            }
            Some(Fd::Conn(cid)) => {
                let how = if self.fds.opts(fd).abortive_close() {
                    CloseHow::Abort
                } else {
                    CloseHow::Fin
                };
                self.fds.free(fd);
                let c = self.conns.get_mut(cid);
                c.fd = -1;
                if self.cq.ops.conn(cid).any().is_none() {
                    self.close_conn(cid, how);
                } else {
                    c.close_pending = Some(how);
                    self.cq.ops.forget_fd_of_conn(cid);
                    self.closing.push(cid);
                }
                Ok(Some((0, 0)))
            }
        }
    }

    /// The application let go of connection `cid` (its ops are gone): free
    /// it if TCP is done, else orphan it to finish (FIN, or RST when unread
    /// data is left or `SO_LINGER` has a zero time, as Linux's `tcp_close`
    /// does; then what was not sent is discarded).
    fn close_conn(&mut self, cid: ConnId, how: CloseHow) {
        let c = self.conns.get_mut(cid);
        c.fd = -1;
        if c.sock_ref().state() == tcp::State::Closed || c.key.is_none() {
            self.release_conn(cid);
            return;
        }
        if c.sock_ref().recv_queue() > 0 || how == CloseHow::Abort {
            c.abort_orphan();
        } else {
            c.sock().close();
            c.phase = Phase::Orphan;
        }
        self.conns.mark_dirty(cid);
    }

    /// Closes what CLOSE left open for requests in flight, once they have
    /// all completed. O(sockets closing), nothing when none is.
    #[inline]
    pub(crate) fn finish_closes(&mut self) {
        if !self.closing.is_empty() || !self.closing_listeners.is_empty() {
            self.finish_closes_now();
        }
    }

    fn finish_closes_now(&mut self) {
        let mut i = 0;
        while i < self.closing.len() {
            let cid = self.closing[i];
            let c = self.conns.get(cid);
            let Some(how) = c.close_pending.filter(|_| self.conns.is_live(cid)) else {
                self.closing.swap_remove(i);
                continue;
            };
            if self.cq.ops.conn(cid).any().is_none() {
                self.closing.swap_remove(i);
                self.conns.get_mut(cid).close_pending = None;
                self.close_conn(cid, how);
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.closing_listeners.len() {
            let lid = self.closing_listeners[i];
            let ops = self.cq.ops.listener(lid.slot);
            if self.listeners.get(lid).is_none() {
                self.closing_listeners.swap_remove(i);
            } else if ops.accept.is_empty() && ops.poll.is_empty() {
                self.closing_listeners.swap_remove(i);
                self.close_listener(lid);
            } else {
                i += 1;
            }
        }
    }

    /// What Linux does to the sockets of a process that exits: every request
    /// in flight ends with `-ECANCELED`, then every socket number is closed
    /// (a connection with unread data is reset, others get a FIN; a
    /// listener's unaccepted connections are reset). For `ringline serve`
    /// when an application goes away. O(requests + sockets), once.
    pub(crate) fn exit_all(&mut self) {
        self.find_op(|_| true);
        let found = std::mem::take(&mut self.found);
        for &id in &found {
            if self.cq.ops.is_live(id) {
                self.cq.fail(id, errno::ECANCELED);
            }
        }
        self.found = found;
        let fds: Vec<i32> = self.fds.in_use().collect();
        for fd in fds {
            let _ = self.close_fd(fd);
        }
        self.finish_closes();
    }

    fn close_listener(&mut self, lid: ListenerId) {
        let port = self.listeners.slot(lid.slot).port;
        self.fds.unbind(port);
        if let Some(c) = &self.claim {
            c.release(port);
        }
        loop {
            let l = self.cq.ops.listener(lid.slot);
            let Some(id) = l.accept.front().or(l.poll.front()) else {
                break;
            };
            self.cq.fail(id, errno::ECANCELED);
        }
        let q = self.listeners.close(lid);
        for &cid in &q {
            self.conns.get_mut(cid).abort_orphan();
            self.conns.mark_dirty(cid);
        }
        self.listeners.release(lid, q);
    }

    /// CONNECT with AF_UNSPEC on a connection (Linux's `tcp_disconnect`): an
    /// open one is reset (RST to the peer; the next request reports
    /// `-ECONNRESET`, as `sk_err`), and the socket may then connect again.
    fn disconnect(&mut self, cid: ConnId) {
        let c = self.conns.get_mut(cid);
        c.disconnected = true;
        if c.is_reset() {
            return;
        }
        c.aborted = true;
        c.sock().abort();
        c.reset = Reset::Pending;
        c.reset_err = errno::ECONNRESET;
        c.last_state = tcp::State::Closed;
        c.state_woke = true;
        self.conns.timers.cancel(cid);
        self.conns.mark_dirty(cid);
        self.service_open(cid);
    }

    /// Linux's `tcp_disconnect` of a listener (SHUTDOWN with SHUT_RD): it
    /// stops listening and its queued connections are reset; pending
    /// ACCEPTs end with `-EINVAL` (`inet_csk_accept` on a socket that no
    /// longer listens), polls see an unconnected socket (OUT|HUP); the
    /// number stays, bound to its port, and may listen again.
    fn disconnect_listener(&mut self, fd: i32, lid: ListenerId) {
        let port = self.listeners.slot(lid.slot).port;
        loop {
            let l = self.cq.ops.listener(lid.slot);
            if let Some(id) = l.accept.front() {
                self.cq.fail(id, errno::EINVAL);
            } else if let Some(id) = l.poll.front() {
                let events = match self.cq.ops.get(id).kind {
                    OpKind::Poll { events, .. } => events,
                    _ => 0,
                };
                let mask = (super::poll::POLLOUT | super::poll::POLLWRNORM | super::poll::POLLHUP)
                    & events;
                self.cq.finish(id, mask as i32, 0);
            } else {
                break;
            }
        }
        self.close_listener(lid);
        self.fds.bind(port, fd);
        self.fds.set(fd, Fd::Fresh { port });
        // No longer listening (SO_ACCEPTCONN outside the engine).
        self.fds.options_changed(fd, self.fds.opts(fd));
    }

    pub(crate) fn op_shutdown(&mut self, sub: &Submission, how: ShutdownHow) -> OpResult {
        self.shutdown_fd(sub.fd, how)
    }

    /// `inet_shutdown` of socket `fd`: SHUTDOWN, and `shutdown()` in
    /// `libringline` ([`crate::Inline::shutdown_socket`]).
    pub(crate) fn shutdown_fd(&mut self, fd: i32, how: ShutdownHow) -> OpResult {
        // inet_shutdown on a listener: SHUT_WR changes nothing (0); SHUT_RD and
        // SHUT_RDWR disconnect it (tcp_disconnect).
        if let Some(Fd::Listener(lid)) = self.fds.get(fd) {
            if how.read() {
                self.disconnect_listener(fd, lid);
            }
            return Ok(Some((0, 0)));
        }
        let cid = self.conn_of(fd)?;
        let c = self.conns.get_mut(cid);
        if !c.established || c.reset != Reset::No {
            return Err(errno::ENOTCONN);
        }
        if how.read() {
            c.read = c.read.on_shut();
        }
        if how.write() && c.write == WriteSide::Open {
            c.write = WriteSide::Shut;
            c.sock().close();
        }
        // inet_shutdown ends with sk_state_change: every poll looks again.
        c.state_woke = true;
        self.conns.mark_dirty(cid);
        self.service_open(cid);
        Ok(Some((0, 0)))
    }
}

/// Whether another application's engine listens on `port` (`ringline serve`).
#[inline]
fn claimed(claim: &Option<super::claims::Claim>, port: u16) -> bool {
    claim.as_ref().is_some_and(|c| c.taken_by_other(port))
}

/// The family of the address named by `addr`/`addrlen` (decode checked
/// `addrlen` holds a `sockaddr_in`).
fn sockaddr_family(addr: u64, addrlen: u64) -> Result<u16, Errno> {
    if addrlen < 2 {
        return Err(errno::EINVAL);
    }
    usermem::slice(addr, 2).map(|b| u16::from_ne_bytes([b[0], b[1]]))
}

/// Reads a `sockaddr_in` named by `addr`/`addrlen` (value).
fn read_sockaddr(addr: u64, addrlen: u64) -> Result<(Ipv4Addr, u16), Errno> {
    if addrlen < core::mem::size_of::<libc::sockaddr_in>() as u64 {
        return Err(errno::EINVAL);
    }
    let sa: libc::sockaddr_in = usermem::read(addr)?;
    if sa.sin_family != libc::AF_INET as libc::sa_family_t {
        return Err(errno::EAFNOSUPPORT);
    }
    Ok((
        Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
        u16::from_be(sa.sin_port),
    ))
}

/// Writes the peer address for ACCEPT (`addrlen` is a `socklen_t *`, or 0).
fn write_sockaddr(addr: u64, addrlen: u64, ip: Ipv4Addr, port: u16) -> Result<(), Errno> {
    let full = core::mem::size_of::<libc::sockaddr_in>();
    let room = if addrlen != 0 {
        usermem::read::<u32>(addrlen)? as usize
    } else {
        full
    };
    let bytes = sockaddr_bytes(ip, port);
    let n = room.min(full);
    usermem::slice_mut(addr, n)?.copy_from_slice(&bytes[..n]);
    if addrlen != 0 {
        usermem::write::<u32>(addrlen, full as u32)?;
    }
    Ok(())
}

/// A `sockaddr_in` as bytes, in the machine's layout.
fn sockaddr_bytes(ip: Ipv4Addr, port: u16) -> [u8; 16] {
    let family = libc::AF_INET as libc::sa_family_t;
    let mut b = [0u8; 16];
    b[0..2].copy_from_slice(&family.to_ne_bytes());
    b[2..4].copy_from_slice(&port.to_be_bytes());
    b[4..8].copy_from_slice(&ip.octets());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddrs_round_trip() {
        let ip = Ipv4Addr::new(192, 0, 2, 7);
        let b = sockaddr_bytes(ip, 8080);
        assert_eq!(read_sockaddr(b.as_ptr() as u64, 16), Ok((ip, 8080)));
        assert_eq!(read_sockaddr(b.as_ptr() as u64, 15), Err(errno::EINVAL));
        let mut out = [0u8; 16];
        let mut len: u32 = 16;
        write_sockaddr(
            out.as_mut_ptr() as u64,
            &mut len as *mut u32 as u64,
            ip,
            8080,
        )
        .unwrap();
        assert_eq!((out, len), (b, 16));
        let mut v6 = b;
        v6[0..2].copy_from_slice(&(libc::AF_INET6 as libc::sa_family_t).to_ne_bytes());
        assert_eq!(
            read_sockaddr(v6.as_ptr() as u64, 16),
            Err(errno::EAFNOSUPPORT)
        );
    }
}
