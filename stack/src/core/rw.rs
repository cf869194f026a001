//! The data executors: RECV, READ, RECVMSG (into the application's buffer,
//! its iovecs, or provided buffers; single or multishot), SEND, WRITE,
//! SENDMSG, SEND_ZC, and the legacy buffer ops PROVIDE_BUFFERS and
//! REMOVE_BUFFERS.

use ringline_ring::abi::*;

use super::bufs::Selected;
use super::conns::{Phase, Reset, WriteSide};
use super::ops::{OpKind, Owner, ZeroCopy};
use super::request::{Recv, RecvKind, Send, SendData, SendKind, Submission};
use super::{Core, OpResult, Progress};
use crate::errno::{self, Errno};
use crate::ids::{ConnId, OpId};
use crate::usermem;

const MSG_PEEK: u32 = libc::MSG_PEEK as u32;
const MSG_DONTWAIT: u32 = libc::MSG_DONTWAIT as u32;
const MSG_WAITALL: u32 = libc::MSG_WAITALL as u32;
const MSG_NOSIGNAL: u32 = libc::MSG_NOSIGNAL as u32;
const MSG_TRUNC: u32 = libc::MSG_TRUNC as u32;

/// Inline rounds a multishot recv may run per event before yielding to other
/// connections (the kernel's `MULTISHOT_MAX_RETRY`).
const MULTISHOT_MAX_RETRY: usize = 32;

impl Core {
    pub(crate) fn op_recv(&mut self, sub: &Submission, r: Recv) -> OpResult {
        let is_msg = r.kind == RecvKind::RecvMsg;
        let (multishot, msg_flags, group) = (r.multishot, r.msg_flags, r.group);
        let select = group.is_some();
        let (mut addr, mut len, mut iovlen, mut reserve) = (r.addr, r.len, 0, 0);
        if r.kind.is_rw() {
            // READ, READV: the socket, then (READV) the iovecs, then the
            // rw_flags and offset, then the connection's state. READV with
            // buffer select reads its one iovec at prep: its length caps
            // the read, as READ's `len`.
            if r.kind == RecvKind::Readv && select {
                let v = usermem::read::<libc::iovec>(r.addr)?;
                len = v.iov_len as u32;
            }
            self.fds.get(sub.fd).ok_or(errno::EBADF)?;
            if r.kind == RecvKind::Readv && !select {
                let total = usermem::iov_total(r.addr, r.len)?;
                (len, iovlen) = (total.min(i32::MAX as u64) as u32, r.len);
            }
            if let Some(e) = r.issue_err {
                return Err(e);
            }
            if len == 0 && !select {
                // sock_read_iter: nothing asked, nothing to wait for (before
                // the socket's state is looked at).
                return Ok(Some((0, 0)));
            }
        } else if let Some(e) = r.issue_err {
            // RECV, RECVMSG: msg_flags TCP answers at once (MSG_OOB,
            // MSG_ERRQUEUE), once the socket is found.
            self.fds.get(sub.fd).ok_or(errno::EBADF)?;
            return Err(e);
        }
        let cid = self.conn_of(sub.fd)?;
        // RECVMSG: the msghdr is read once, at submission (FEAT_SUBMIT_STABLE).
        if is_msg {
            let m = usermem::read_msghdr(r.addr)?;
            if multishot {
                reserve = (core::mem::size_of::<RecvmsgOut>() as u32)
                    .checked_add(m.namelen)
                    .and_then(|r| r.checked_add(m.controllen))
                    .ok_or(errno::EINVAL)?;
            } else if !select {
                let total = usermem::iov_total(m.iov, m.iovlen)?;
                (addr, len, iovlen) = (m.iov, total.min(i32::MAX as u64) as u32, m.iovlen);
            }
        }
        if let Some(g) = group {
            if !self.bufs.exists(g) {
                return Err(errno::ENOBUFS);
            }
            addr = 0;
            if is_msg {
                len = 0;
            }
        } else if iovlen == 0 {
            usermem::check(addr, len as usize)?;
        }
        let kind = OpKind::Recv {
            addr,
            len,
            group,
            multishot,
            total: r.total,
            bundle: r.bundle && group.is_some_and(|g| self.bufs.is_ring(g)),
            msg_flags,
            done: 0,
            iovlen,
            msg: if is_msg && !select { r.addr } else { 0 },
            reserve,
        };
        // A multishot RECV of MSG_ERRQUEUE waits for TCP's error queue,
        // which is always empty: it is on no list data wakes, and ends only
        // when cancelled, as in Linux (its buffer group is checked first).
        let errqueue = multishot && msg_flags & libc::MSG_ERRQUEUE as u32 != 0;
        if errqueue {
            let id = self.park(sub, kind, Owner::None);
            if group.is_some_and(|g| self.bufs.select(g).is_none()) {
                self.stats.bufring_empty += 1;
                self.cq.fail(id, errno::ENOBUFS);
            }
            return Ok(None);
        }
        let first = self.cq.ops.conn(cid).recv.is_empty();
        let id = self.park(sub, kind, Owner::Recv(cid));
        if !first {
            return Ok(None);
        }
        // Buffer rings are checked at arm time, as the kernel does (-ENOBUFS
        // even on an empty socket), then data decides.
        if let Some(g) = group {
            if self.bufs.select(g).is_none() {
                self.stats.bufring_empty += 1;
                self.cq.fail(id, errno::ENOBUFS);
                return Ok(None);
            }
        }
        if let Progress::Yield = self.try_recv(cid, id) {
            self.conns.mark_ready(cid);
        }
        self.conns.get_mut(cid).taken_by_app();
        Ok(None)
    }

    /// Advances receive `id` on `cid`: copies what is buffered, completes
    /// on data, EOF, reset or error.
    pub(crate) fn try_recv(&mut self, cid: ConnId, id: OpId) -> Progress {
        let OpKind::Recv {
            addr,
            len,
            group,
            multishot,
            mut total,
            bundle,
            msg_flags,
            mut done,
            iovlen,
            msg,
            reserve,
        } = self.cq.ops.get(id).kind
        else {
            return Progress::Wait;
        };
        let mut rounds = 0;
        loop {
            let c = self.conns.get_mut(cid);
            let avail = c.sock_ref().recv_queue();
            // The peer's FIN came (Linux's tcp_inq_hint: SOCK_NONEMPTY).
            let fin = c.fin_nonempty();
            // After SHUT_RD, what is (and keeps) arriving is still read, as
            // in Linux; only an empty queue reads as EOF.
            if avail == 0 {
                if c.reset == Reset::Pending {
                    // Linux reports a reset once (sk_err), then EOF. A
                    // MSG_WAITALL receive that already has bytes takes the
                    // error too (io_uring's retry reads -ECONNRESET and
                    // completes with the bytes done): the next one sees EOF.
                    c.reset = Reset::Reported;
                    let res = if done > 0 {
                        done as i32
                    } else {
                        c.reset_err.as_res()
                    };
                    self.cq.finish(id, res, 0);
                    return Progress::Done;
                }
                if c.is_reset() {
                    finish_msghdr(msg);
                    self.cq.finish(id, done as i32, 0);
                    return Progress::Done;
                }
                if c.read_closed() && reserve > 0 {
                    // Multishot RECVMSG reports EOF in a buffer: a header with
                    // payloadlen 0 (io_uring_recvmsg_out), res = header size.
                    let g = group.expect("multishot recvmsg has a group");
                    let Some(b) = self.bufs.select(g) else {
                        self.stats.bufring_empty += 1;
                        self.cq.fail(id, errno::ENOBUFS);
                        return Progress::Done;
                    };
                    let (res, flags) = match write_recvmsg_out(b, reserve, 0) {
                        Ok(()) => {
                            let more = self.bufs.commit(g, reserve);
                            (reserve as i32, buf_flags(b.bid) | more | fin)
                        }
                        Err(e) => (e.as_res(), 0),
                    };
                    self.cq.finish(id, res, flags);
                    return Progress::Done;
                }
                if c.read_closed() {
                    finish_msghdr(msg);
                    self.cq.finish(id, done as i32, fin);
                    return Progress::Done;
                }
                if !c.established && c.phase != Phase::Connecting {
                    self.cq.fail(id, errno::ENOTCONN);
                    return Progress::Done;
                }
                // MSG_DONTWAIT (RWF_NOWAIT): an empty socket ends the request
                // (a multishot too, once it has taken what was there), as
                // Linux's REQ_F_NOWAIT does.
                if msg_flags & MSG_DONTWAIT != 0 && (rounds == 0 || multishot) {
                    let res = if done > 0 {
                        done as i32
                    } else {
                        errno::EAGAIN.as_res()
                    };
                    self.cq.finish(id, res, 0);
                    return Progress::Done;
                }
                return Progress::Wait;
            }
            let Some(group) = group else {
                // The application's buffer (or RECVMSG's iovecs).
                let peek = msg_flags & MSG_PEEK != 0;
                let s = self.conns.get_mut(cid).sock();
                let copied = if msg_flags & MSG_TRUNC != 0 {
                    // TCP's MSG_TRUNC: the bytes are counted and dropped
                    // (or, with MSG_PEEK, counted and left), never copied.
                    let n = ((len - done) as usize).min(avail);
                    Ok(if peek { n } else { discard(s, n) })
                } else if iovlen > 0 && !peek {
                    usermem::for_each_iov(addr, iovlen, done as u64, |seg| {
                        s.recv_slice(seg).unwrap_or(0)
                    })
                } else {
                    let n = ((len - done) as usize).min(avail);
                    let base = if iovlen > 0 {
                        first_iov_base(addr)
                    } else {
                        Ok(addr + done as u64)
                    };
                    base.and_then(|b| usermem::slice_mut(b, n)).map(|dst| {
                        if peek {
                            s.peek_slice(dst).unwrap_or(0)
                        } else {
                            s.recv_slice(dst).unwrap_or(0)
                        }
                    })
                };
                let got = match copied {
                    Ok(n) => n,
                    Err(e) => {
                        self.cq.fail(id, e);
                        return Progress::Done;
                    }
                };
                let rest = self.conns.get(cid).sock_ref().recv_queue();
                let flags = if rest > 0 {
                    IORING_CQE_F_SOCK_NONEMPTY
                } else {
                    fin
                };
                let total = done + got as u32;
                if got > 0 {
                    self.conns.mark_dirty(cid);
                }
                if msg_flags & MSG_WAITALL != 0 && total < len {
                    if let OpKind::Recv { done, .. } = &mut self.cq.ops.get_mut(id).kind {
                        *done = total;
                    }
                    // The next round continues after these bytes (with
                    // MSG_PEEK it peeks the same queue again, as io_uring's
                    // retry does, until `len` is reached).
                    done = total;
                    continue;
                }
                finish_msghdr(msg);
                self.cq.finish(id, total as i32, flags);
                return Progress::Done;
            };
            // Provided buffers: pick one only when there is data to put in it.
            let Some(b) = self.bufs.select(group) else {
                self.stats.bufring_empty += 1;
                self.cq.fail(id, errno::ENOBUFS);
                return Progress::Done;
            };
            if b.len < reserve {
                // The buffer cannot hold the recvmsg header area.
                self.cq.fail(id, errno::EFAULT);
                return Progress::Done;
            }
            let mut n = ((b.len - reserve) as usize).min(avail);
            if len > 0 && reserve == 0 {
                n = n.min(len as usize);
            }
            // A bundle stays within what is left of the total cap (Linux
            // caps its buffer peek); a single buffer is not cut to it.
            if bundle && total > 0 {
                n = n.min(total as usize);
            }
            // An entry's address is the application's to write (a hostile one
            // may sit at the top of the address space): no overflow, -EFAULT.
            let at = b.addr.checked_add(u64::from(reserve)).unwrap_or(0);
            let dst = match usermem::slice_mut(at, n) {
                Ok(d) => d,
                Err(e) => {
                    self.cq.fail(id, e);
                    return Progress::Done;
                }
            };
            let s = self.conns.get_mut(cid).sock();
            // MSG_PEEK: the bytes stay queued; a multishot peeks them again
            // into every next buffer until the group is empty, as Linux.
            let peek = msg_flags & MSG_PEEK != 0;
            let mut got = if peek {
                s.peek_slice(dst).unwrap_or(0)
            } else {
                s.recv_slice(dst).unwrap_or(0)
            };
            let mut rest = s.recv_queue();
            if reserve > 0 {
                if let Err(e) = write_recvmsg_out(b, reserve, got as u32) {
                    self.cq.fail(id, e);
                    return Progress::Done;
                }
                got += reserve as usize;
            }
            let mut more = self.bufs.commit(group, got as u32);
            if bundle && more == 0 && !peek {
                // A bundle goes on into the next buffers while data is
                // there and the cap (`len`) allows (io_buffers_peek: every
                // buffer the data fills, consumed whole).
                let cap = match (len, total) {
                    (0, t) | (t, 0) => t,
                    (l, t) => l.min(t),
                };
                (got, rest, more) = match self.recv_bundle_rest(cid, group, got, cap) {
                    Ok(r) => r,
                    Err(e) => {
                        self.cq.fail(id, e);
                        return Progress::Done;
                    }
                };
            }
            self.conns.mark_dirty(cid);
            let nonempty = if rest > 0 {
                IORING_CQE_F_SOCK_NONEMPTY
            } else {
                fin
            };
            let flags = buf_flags(b.bid) | more | nonempty;
            // The total cap: once used up, this CQE is the multishot's last
            // (io_recv_finish's IORING_RECV_MSHOT_LIM).
            let capped_out = total > 0 && {
                // Linux 6.18 takes the smaller as ints (`min_t(int, ..)`): a
                // cap past INT_MAX is negative there, so used up at once.
                total -= (total as i32).min(got as i32) as u32;
                if let OpKind::Recv { total: t, .. } = &mut self.cq.ops.get_mut(id).kind {
                    *t = total;
                }
                total == 0
            };
            if !multishot || capped_out {
                self.cq.finish(id, got as i32, flags);
                return Progress::Done;
            }
            if !self.cq.post_more(id, got as i32, flags) {
                // CQ full or backlog: the bytes travelled in the final CQE.
                return Progress::Done;
            }
            rounds += 1;
            if rounds >= MULTISHOT_MAX_RETRY && rest > 0 {
                return Progress::Yield;
            }
        }
    }

    pub(crate) fn op_send(&mut self, sub: &Submission, r: Send) -> OpResult {
        if !r.kind.zero_copy() {
            return self.send(sub, r);
        }
        match self.send(sub, r) {
            Err(e) => {
                self.fail_zero_copy(sub, r.report_usage, e);
                Ok(None)
            }
            ok => ok,
        }
    }

    /// A zero-copy send that failed once issued still posts its
    /// notification, as in Linux (io_send_zc_prep allocated it): -errno with
    /// F_MORE, then it.
    pub(crate) fn fail_zero_copy(&mut self, sub: &Submission, report_usage: bool, e: errno::Errno) {
        let kind = OpKind::Send {
            addr: 0,
            len: 0,
            iovlen: 0,
            done: 0,
            waitall: false,
            zc: if report_usage {
                ZeroCopy::ReportUsage
            } else {
                ZeroCopy::Notify
            },
            bundle: false,
        };
        let id = self.park(sub, kind, Owner::None);
        self.cq.fail(id, e);
    }

    fn send(&mut self, sub: &Submission, r: Send) -> OpResult {
        let is_msg = r.kind.is_msg();
        let msg_flags = if r.kind.is_rw() {
            r.msg_flags
        } else {
            r.msg_flags | MSG_NOSIGNAL
        };
        let mut writev = None;
        if r.kind.is_rw() {
            // WRITE, WRITEV: the socket, then (WRITEV) the iovecs, then the
            // rw_flags and offset, then the connection's state.
            self.fds.get(sub.fd).ok_or(errno::EBADF)?;
            if r.kind == SendKind::Writev {
                let total = usermem::iov_total(r.addr, r.len)?;
                writev = Some((r.addr, total.min(i32::MAX as u64) as u32, r.len));
            }
            if let Some(e) = r.issue_err {
                return Err(e);
            }
        } else if let Some(e) = r.issue_err {
            // SEND_ZC, SENDMSG_ZC: once the socket is found.
            self.fds.get(sub.fd).ok_or(errno::EBADF)?;
            return Err(e);
        }
        if let SendData::Group(g) = r.data {
            return self.send_select(sub, r, g, msg_flags);
        }
        // Linux: send on a never-connected or listening TCP socket is -EPIPE.
        let cid = self.conn_of(sub.fd).map_err(|e| {
            if e == errno::ENOTCONN {
                errno::EPIPE
            } else {
                e
            }
        })?;
        // SENDMSG: gather from the msghdr's iovecs (read once, at submission).
        let (addr, len, iovlen) = if let Some(v) = writev {
            v
        } else if is_msg {
            let m = usermem::read_msghdr(r.addr)?;
            let total = usermem::iov_total(m.iov, m.iovlen)?;
            // tcp_sendmsg checks the control messages once connected.
            if m.controllen > 0 {
                usermem::check_cmsgs(m.control, m.controllen)?;
            }
            (m.iov, total.min(i32::MAX as u64) as u32, m.iovlen)
        } else {
            usermem::check(r.addr, r.len as usize)?;
            (r.addr, r.len, 0)
        };
        if !r.bundle && !r.kind.zero_copy() {
            if let Some(res) = self.send_whole(cid, addr, len, iovlen) {
                return res;
            }
        }
        let kind = OpKind::Send {
            addr,
            len,
            iovlen,
            done: 0,
            waitall: msg_flags & MSG_WAITALL != 0 || r.bundle,
            zc: match (r.kind.zero_copy(), r.report_usage) {
                (false, _) => ZeroCopy::No,
                (true, false) => ZeroCopy::Notify,
                (true, true) => ZeroCopy::ReportUsage,
            },
            bundle: r.bundle,
        };
        self.park_send(sub, cid, kind, msg_flags);
        Ok(None)
    }

    /// The common send, done without an op: nothing is queued ahead of it
    /// on `cid` and all `len` bytes fit in the socket's send buffer (and
    /// the memory budget) now, or the connection ends it at once (a reset,
    /// a shutdown). `None`: it must wait, or could go in part only; the
    /// caller parks it (see [`Core::park_send`]), which does the same
    /// checks again.
    fn send_whole(&mut self, cid: ConnId, addr: u64, len: u32, iovlen: u32) -> Option<OpResult> {
        if !self.cq.ops.conn(cid).send.is_empty() {
            return None;
        }
        match self.send_gate(cid, 0) {
            Gate::Go => {}
            Gate::Wait => return None,
            Gate::End(res) => return Some(Ok(Some((res, 0)))),
        }
        let allow = self.conns.send_allowance(cid);
        let s = self.conns.get(cid).sock_ref();
        let free = s.send_capacity() - s.send_queue();
        if (len as usize) > free.min(allow) {
            return None;
        }
        Some(match self.copy_in(cid, addr, len, iovlen, 0, allow) {
            Ok(n) => {
                debug_assert_eq!(n, len, "the whole send fit");
                Ok(Some((n as i32, 0)))
            }
            Err(e) => Err(e),
        })
    }

    /// Copies what fits (at most `allow` bytes, the memory budget's) of the
    /// send's data past its first `done` bytes into `cid`'s send buffer:
    /// `len` bytes at `addr`, or `iovlen` iovecs there. Returns how many
    /// went, the connection marked for egress and charged for them.
    // Inlined into both callers: out of line it cost the echo round trip
    // about 65 instructions (callgrind), more than the copy it replaced.
    #[inline(always)]
    fn copy_in(
        &mut self,
        cid: ConnId,
        addr: u64,
        len: u32,
        iovlen: u32,
        done: u32,
        allow: usize,
    ) -> Result<u32, errno::Errno> {
        let mut left = allow;
        let s = self.conns.get_mut(cid).sock();
        let n = if iovlen > 0 {
            usermem::for_each_iov(addr, iovlen, done as u64, |seg| {
                let n = s.send_slice(&seg[..seg.len().min(left)]).unwrap_or(0);
                left -= n;
                n
            })
        } else {
            usermem::slice(addr + done as u64, ((len - done) as usize).min(allow))
                .map(|src| s.send_slice(src).unwrap_or(0))
        }? as u32;
        if n > 0 {
            self.conns.mark_dirty(cid);
            self.conns.charge(cid, n);
        }
        Ok(n)
    }

    /// SEND with `IOSQE_BUFFER_SELECT` (Linux's io_send_select_buffer): the
    /// socket, then the group (none: `-ENOENT`; empty: `-ENOBUFS`), then the
    /// connection: a send that fails once a buffer was selected consumes it
    /// and says which (`F_BUFFER`), as in Linux.
    fn send_select(&mut self, sub: &Submission, r: Send, group: u16, msg_flags: u32) -> OpResult {
        self.fds.get(sub.fd).ok_or(errno::EBADF)?;
        if !self.bufs.exists(group) {
            return Err(errno::ENOENT);
        }
        let Some(b) = self.bufs.select(group) else {
            self.stats.bufring_empty += 1;
            return Err(errno::ENOBUFS);
        };
        let Ok(cid) = self.conn_of(sub.fd) else {
            let more = self.bufs.commit(group, 0);
            return Ok(Some((errno::EPIPE.as_res(), buf_flags(b.bid) | more)));
        };
        let kind = OpKind::SendBuf {
            group,
            bundle: r.bundle,
            waitall: r.bundle || msg_flags & MSG_WAITALL != 0,
            cap: match r.len {
                0 => i32::MAX as u32,
                l => l.min(i32::MAX as u32),
            },
            nbufs: 0,
            sent: 0,
            off: 0,
            cflags: 0,
        };
        self.park_send(sub, cid, kind, msg_flags);
        Ok(None)
    }

    /// Parks send `kind` on `cid`'s send list and, first there, tries it
    /// now; with `MSG_DONTWAIT` what cannot go now ends it (`-EAGAIN` if
    /// nothing went).
    fn park_send(&mut self, sub: &Submission, cid: ConnId, kind: OpKind, msg_flags: u32) {
        let first = self.cq.ops.conn(cid).send.is_empty();
        let id = self.park(sub, kind, Owner::Send(cid));
        if !first || msg_flags & MSG_DONTWAIT == 0 {
            if first {
                self.try_send(cid, id);
            }
            return;
        }
        if let Progress::Wait = self.try_send(cid, id) {
            let (done, flags) = match self.cq.ops.get(id).kind {
                OpKind::Send { done, .. } => (done, 0),
                OpKind::SendBuf {
                    group,
                    sent,
                    off,
                    cflags,
                    ..
                } => {
                    let more = if off > 0 {
                        self.bufs.commit(group, off)
                    } else {
                        0
                    };
                    (sent + off, if sent + off > 0 { cflags | more } else { 0 })
                }
                _ => (0, 0),
            };
            let res = if done > 0 {
                done as i32
            } else {
                errno::EAGAIN.as_res()
            };
            self.cq.finish(id, res, flags);
        }
    }

    /// Whether send `id`'s connection can take data: `Go`, `Wait` (still
    /// connecting), or `End` with the result (`done` bytes went already;
    /// else the reset, once, `-EPIPE` after a shutdown or close,
    /// `-ENOTCONN`).
    fn send_gate(&mut self, cid: ConnId, done: u32) -> Gate {
        let c = self.conns.get_mut(cid);
        if c.is_reset() {
            // The reset is reported once; after that the socket is just closed.
            let res = match (done, c.reset) {
                (1.., _) => done as i32,
                (0, Reset::Pending) => c.reset_err.as_res(),
                (0, _) => errno::EPIPE.as_res(),
            };
            c.reset = Reset::Reported;
            return Gate::End(res);
        }
        if c.write == WriteSide::Shut || (c.established && !c.sock_ref().may_send()) {
            return Gate::End(if done > 0 {
                done as i32
            } else {
                errno::EPIPE.as_res()
            });
        }
        if !c.established {
            if c.phase == Phase::Connecting {
                return Gate::Wait;
            }
            return Gate::End(errno::ENOTCONN.as_res());
        }
        Gate::Go
    }

    /// Advances send `id` on `cid`: queues what fits in the socket buffer.
    pub(crate) fn try_send(&mut self, cid: ConnId, id: OpId) -> Progress {
        let (addr, len, done, waitall, iovlen, bundle) = match self.cq.ops.get(id).kind {
            OpKind::Send {
                addr,
                len,
                done,
                waitall,
                iovlen,
                bundle,
                ..
            } => (addr, len, done, waitall, iovlen, bundle),
            OpKind::SendBuf { .. } => return self.try_send_buf(cid, id),
            _ => return Progress::Wait,
        };
        match self.send_gate(cid, done) {
            Gate::Go => {}
            Gate::Wait => return Progress::Wait,
            Gate::End(res) => {
                self.cq.finish(id, res, 0);
                return Progress::Done;
            }
        }
        // What the memory budget lets this send queue (usize::MAX: no budget).
        let allow = self.conns.send_allowance(cid);
        let n = match self.copy_in(cid, addr, len, iovlen, done, allow) {
            Ok(n) => n,
            Err(e) => {
                self.cq.fail(id, e);
                return Progress::Done;
            }
        };
        let total = done + n;
        if n as usize == allow && total < len {
            // Held back by the budget, not by the buffer: its ACKs bring the
            // next try (it has at least 64 KiB queued; see `send_allowance`).
            self.stats.send_budget_waits += 1;
        }
        if total < len {
            // The send buffer is full: its draining is a write-space wake-up.
            self.conns.get_mut(cid).nospace = true;
        }
        if total == len || (!waitall && total > 0) || len == 0 {
            // A bundle without buffer select: Linux posts the result with
            // F_MORE and retries with nothing left, a final 0.
            if !bundle || total == 0 || self.cq.post_more(id, total as i32, 0) {
                let res = if bundle { 0 } else { total as i32 };
                self.cq.finish(id, res, 0);
            }
            return Progress::Done;
        }
        if let OpKind::Send { done, .. } = &mut self.cq.ops.get_mut(id).kind {
            *done = total;
        }
        Progress::Wait
    }

    /// Advances a send from provided buffers ([`OpKind::SendBuf`]).
    fn try_send_buf(&mut self, cid: ConnId, id: OpId) -> Progress {
        loop {
            let OpKind::SendBuf {
                group,
                bundle,
                waitall,
                cap,
                mut nbufs,
                mut sent,
                mut off,
                mut cflags,
            } = self.cq.ops.get(id).kind
            else {
                return Progress::Wait;
            };
            match self.send_gate(cid, sent + off) {
                Gate::Go => {}
                Gate::Wait => return Progress::Wait,
                Gate::End(res) => {
                    // The buffer being sent, or with nothing sent the one
                    // Linux's retry selects, is consumed by the failure.
                    let mut flags = cflags;
                    if off > 0 || sent == 0 {
                        if let Some(b) = self.bufs.select(group) {
                            flags = buf_flags(b.bid) | self.bufs.commit(group, off);
                        }
                    }
                    self.cq.finish(id, res, flags);
                    return Progress::Done;
                }
            }
            if nbufs == 0 {
                nbufs = if bundle {
                    self.bufs.available(group)
                } else {
                    1
                };
            }
            let Some(b) = self.bufs.select(group).filter(|_| nbufs > 0) else {
                // Emptied under it (a legacy group's REMOVE_BUFFERS).
                let res = if sent > 0 {
                    sent as i32
                } else {
                    errno::ENOBUFS.as_res()
                };
                self.cq.finish(id, res, cflags);
                return Progress::Done;
            };
            if sent == 0 && off == 0 {
                cflags = buf_flags(b.bid);
            }
            let room = cap - sent;
            let (mut more, mut wait) = (0, false);
            // A buffer the cap would cut ends the round, unless it is the
            // first (cut) or the ring is incremental (io_ring_buffers_peek).
            let round_end = if b.len > room && sent > 0 && !self.bufs.is_incremental(group) {
                true
            } else {
                let blen = b.len.min(room);
                // The memory budget, as for a plain send (see `try_send`).
                let allow = self.conns.send_allowance(cid);
                let s = self.conns.get_mut(cid).sock();
                let want = ((blen - off) as usize).min(allow);
                // A hostile entry may sit at the top of the address space.
                let at = b.addr.checked_add(u64::from(off)).unwrap_or(0);
                let n = match usermem::slice(at, want) {
                    Ok(src) => s.send_slice(src).unwrap_or(0) as u32,
                    Err(e) => {
                        self.cq.finish(id, e.as_res(), cflags);
                        return Progress::Done;
                    }
                };
                if n > 0 {
                    self.conns.mark_dirty(cid);
                    self.conns.charge(cid, n);
                }
                off += n;
                if off == blen {
                    more = self.bufs.commit(group, blen);
                    (sent, off, nbufs) = (sent + blen, 0, nbufs - 1);
                    nbufs == 0 || sent >= cap || more != 0
                } else {
                    // The send buffer is full: its draining is a write-space
                    // wake-up.
                    self.conns.get_mut(cid).nospace = true;
                    wait = waitall || sent + off == 0;
                    if !wait {
                        // Without MSG_WAITALL what went is the result.
                        more = self.bufs.commit(group, off);
                        (sent, off) = (sent + off, 0);
                    }
                    !wait
                }
            };
            let mut cap = cap;
            if round_end {
                let flags = cflags | more;
                if !bundle || self.bufs.select(group).is_none() {
                    self.cq.finish(id, sent as i32, flags);
                    return Progress::Done;
                }
                if !self.cq.post_more(id, sent as i32, flags) {
                    return Progress::Done;
                }
                // The next round: what the group holds now, no cap.
                (nbufs, sent, cflags, cap) = (0, 0, 0, i32::MAX as u32);
            }
            self.cq.ops.get_mut(id).kind = OpKind::SendBuf {
                group,
                bundle,
                waitall,
                cap,
                nbufs,
                sent,
                off,
                cflags,
            };
            if wait {
                return Progress::Wait;
            }
        }
    }

    pub(crate) fn op_provide_buffers(
        &mut self,
        addr: u64,
        len: u32,
        count: u32,
        group: u16,
        first_bid: u16,
    ) -> OpResult {
        if self.bufs.is_ring(group) {
            // A ring-mapped group is not a legacy list.
            return Err(errno::EINVAL);
        }
        // Nothing is read now (decode checked the range is user space, as
        // `access_ok`); a buffer that is not mapped fails the receive that
        // selects it (`usermem::slice_mut`, -EFAULT).
        self.bufs
            .provide(group, addr, len, count, first_bid as u32)?;
        Ok(Some((0, 0)))
    }

    pub(crate) fn op_remove_buffers(&mut self, count: u32, group: u16) -> OpResult {
        if self.bufs.is_ring(group) {
            // A ring-mapped group is not a legacy list.
            return Err(errno::EINVAL);
        }
        let n = self.bufs.remove(group, count)?;
        Ok(Some((n as i32, 0)))
    }
}

/// Whether a send's connection can take data (see [`Core::send_gate`]).
enum Gate {
    Go,
    Wait,
    End(i32),
}

/// Drops the next `n` received bytes of `s` (at most what is queued).
/// Returns how many it dropped.
fn discard(s: &mut smoltcp::socket::tcp::Socket<'static>, n: usize) -> usize {
    let mut gone = 0;
    while gone < n {
        match s.recv(|b| {
            let k = b.len().min(n - gone);
            (k, k)
        }) {
            Ok(0) | Err(_) => break,
            Ok(k) => gone += k,
        }
    }
    gone
}

/// CQE flags of a completion that consumed provided buffer `bid`.
impl Core {
    /// The rest of a bundle receive after its first buffer took `got`
    /// bytes: fills the next buffers of ring `group` in order while data is
    /// there (and under the cap `len`, 0 = none). Returns the bundle's bytes,
    /// what the socket still holds, and the last commit's `F_BUF_MORE`.
    fn recv_bundle_rest(
        &mut self,
        cid: ConnId,
        group: u16,
        mut got: usize,
        len: u32,
    ) -> Result<(usize, usize, u32), Errno> {
        let cap = if len == 0 {
            i32::MAX as usize
        } else {
            len as usize
        };
        let mut more = 0;
        loop {
            let rest = self.conns.get(cid).sock_ref().recv_queue();
            if rest == 0 || got >= cap || more != 0 {
                return Ok((got, rest, more));
            }
            let Some(b) = self.bufs.select(group) else {
                return Ok((got, rest, more));
            };
            // io_ring_buffers_peek: a buffer the cap would cut ends the
            // bundle (an incremental ring's is used in part).
            if b.len as usize > cap - got && !self.bufs.is_incremental(group) {
                return Ok((got, rest, more));
            }
            let n = (b.len as usize).min(rest).min(cap - got);
            let dst = usermem::slice_mut(b.addr, n)?;
            let s = self.conns.get_mut(cid).sock();
            let n = s.recv_slice(dst).unwrap_or(0);
            more = self.bufs.commit(group, n as u32);
            got += n;
        }
    }
}

fn buf_flags(bid: u16) -> u32 {
    IORING_CQE_F_BUFFER | ((bid as u32) << IORING_CQE_BUFFER_SHIFT)
}

/// The base address of the first iovec at `iov`.
fn first_iov_base(iov: u64) -> Result<u64, Errno> {
    usermem::read::<libc::iovec>(iov).map(|v| v.iov_base as u64)
}

/// Writes the `io_uring_recvmsg_out` header of a multishot RECVMSG buffer.
/// TCP has no source address and ringline no control messages: both are 0.
fn write_recvmsg_out(b: Selected, reserve: u32, payload: u32) -> Result<(), Errno> {
    if b.len < reserve {
        return Err(errno::EFAULT);
    }
    usermem::write(
        b.addr,
        RecvmsgOut {
            namelen: 0,
            controllen: 0,
            payloadlen: payload,
            flags: 0,
        },
    )
}

/// RECVMSG completion: the kernel writes back `msg_flags` (and TCP reports
/// no name or control data).
fn finish_msghdr(msg: u64) {
    if msg == 0 {
        return;
    }
    let _ = usermem::write::<u32>(
        msg + core::mem::offset_of!(libc::msghdr, msg_namelen) as u64,
        0,
    );
    let _ = usermem::write::<usize>(
        msg + core::mem::offset_of!(libc::msghdr, msg_controllen) as u64,
        0,
    );
    let _ = usermem::write::<i32>(
        msg + core::mem::offset_of!(libc::msghdr, msg_flags) as u64,
        0,
    );
}
