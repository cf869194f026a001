//! Socket commands (`IORING_OP_URING_CMD` on a socket, Linux's
//! `io_uring_cmd_sock`): `SOCKET_URING_OP_SIOCINQ`, `SIOCOUTQ`, `GETSOCKOPT`
//! and `SETSOCKOPT`, and the per-socket options they read and set.
//!
//! Options live per socket number ([`super::fds`]); a listener passes its
//! options to the connections it accepts, as Linux's accepted sockets
//! inherit theirs. What the engine can apply per connection is applied to
//! its smoltcp socket at once (or at CONNECT / ACCEPT): `TCP_NODELAY`
//! (Nagle), `SO_KEEPALIVE` with `TCP_KEEPIDLE` (smoltcp probes an idle
//! connection every KEEPIDLE seconds). `SO_RCVBUF` / `SO_SNDBUF` are kept and
//! reported with Linux's arithmetic (doubled, capped by the default
//! `rmem_max` / `wmem_max`); the buffers themselves stay the engine's
//! (`EngineConfig::rx_buffer` / `tx_buffer`), carved from one arena.

use smoltcp::socket::tcp;
use smoltcp::time::Duration as SmolDuration;

use ringline_ring::abi::*;

use super::fds::Fd;
use super::request::{SockCmd, Submission};
use super::{Core, OpResult};
use crate::errno::{self, Errno};
use crate::usermem;

/// Linux's default `net.core.rmem_max` / `wmem_max`: the cap of a requested
/// SO_RCVBUF / SO_SNDBUF (before doubling).
const BUF_MAX: u32 = 212_992;
/// `SOCK_MIN_SNDBUF` / `SOCK_MIN_RCVBUF` (x86-64): the floor after doubling.
const MIN_SNDBUF: u32 = 4608;
const MIN_RCVBUF: u32 = 2304;
/// `MAX_TCP_KEEPIDLE`, `MAX_TCP_KEEPINTVL`, `MAX_TCP_KEEPCNT`.
const MAX_KEEPIDLE: i32 = 32767;
const MAX_KEEPINTVL: i32 = 32767;
const MAX_KEEPCNT: i32 = 127;

/// One socket's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SockOpts {
    /// `TCP_NODELAY` (Nagle off).
    pub nodelay: bool,
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
    /// `TCP_KEEPIDLE`, `TCP_KEEPINTVL` (s), `TCP_KEEPCNT`.
    pub keepidle: u32,
    pub keepintvl: u32,
    pub keepcnt: u32,
    /// `SO_RCVBUF`, `SO_SNDBUF` as reported (bytes, Linux's doubled value).
    pub rcvbuf: u32,
    pub sndbuf: u32,
    /// `SO_REUSEADDR`.
    pub reuse: bool,
}

impl SockOpts {
    /// A new socket's options: the engine's configuration.
    pub(crate) fn from_config(cfg: &crate::config::EngineConfig) -> Self {
        SockOpts {
            nodelay: !cfg.nagle,
            keepalive: cfg.keepalive.is_some(),
            // Linux's defaults (tcp_keepalive_time 7200 s, _intvl 75, _probes 9),
            // or the engine's configured interval.
            keepidle: cfg
                .keepalive
                .map_or(7200, |d| d.as_secs().clamp(1, 32767) as u32),
            keepintvl: 75,
            keepcnt: 9,
            rcvbuf: cfg.rx_buffer.min(u32::MAX as usize) as u32,
            sndbuf: cfg.tx_buffer.min(u32::MAX as usize) as u32,
            reuse: false,
        }
    }

    /// Applies what the engine supports per connection to its socket.
    pub(crate) fn apply(&self, s: &mut tcp::Socket<'static>) {
        s.set_nagle_enabled(!self.nodelay);
        let alive = self
            .keepalive
            .then(|| SmolDuration::from_secs(u64::from(self.keepidle)));
        if s.keep_alive() != alive {
            s.set_keep_alive(alive);
        }
    }
}

impl Core {
    /// `io_uring_cmd_sock`.
    pub(crate) fn op_sock_cmd(&mut self, sub: &Submission, c: SockCmd) -> OpResult {
        let fd = sub.fd;
        let what = self.fds.get(fd).ok_or(errno::EBADF)?;
        match c.cmd_op {
            SOCKET_URING_OP_SIOCINQ | SOCKET_URING_OP_SIOCOUTQ => {
                let n = match what {
                    Fd::Listener(_) => return Err(errno::EINVAL),
                    Fd::Conn(cid) => {
                        let s = self.conns.get(cid).sock_ref();
                        if c.cmd_op == SOCKET_URING_OP_SIOCINQ {
                            s.recv_queue()
                        } else {
                            s.send_queue()
                        }
                    }
                    _ => 0,
                };
                Ok(Some((n.min(i32::MAX as usize) as i32, 0)))
            }
            SOCKET_URING_OP_GETSOCKOPT => {
                // io_uring_cmd_getsockopt: SOL_SOCKET only.
                if c.level != libc::SOL_SOCKET as u32 {
                    return Err(errno::EOPNOTSUPP);
                }
                self.getsockopt(fd, what, c).map(|n| Some((n, 0)))
            }
            SOCKET_URING_OP_SETSOCKOPT => self.setsockopt(fd, what, c).map(|()| Some((0, 0))),
            _ => Err(errno::EOPNOTSUPP),
        }
    }

    /// `sk_getsockopt` for the SOL_SOCKET options ringline has: the length
    /// written (at most an `int`'s 4 bytes).
    fn getsockopt(&self, fd: i32, what: Fd, c: SockCmd) -> Result<i32, Errno> {
        let len = c.optlen as i32;
        if len < 0 {
            return Err(errno::EINVAL);
        }
        let o = self.fds.opts(fd);
        let v: i32 = match c.optname as i32 {
            libc::SO_RCVBUF => o.rcvbuf as i32,
            libc::SO_SNDBUF => o.sndbuf as i32,
            libc::SO_KEEPALIVE => i32::from(o.keepalive),
            libc::SO_REUSEADDR => i32::from(o.reuse),
            // No error is left pending on a socket an fd names: a
            // connection's error is reported by the request it fails.
            libc::SO_ERROR => 0,
            libc::SO_TYPE => libc::SOCK_STREAM,
            libc::SO_PROTOCOL => libc::IPPROTO_TCP,
            libc::SO_DOMAIN => libc::AF_INET,
            libc::SO_ACCEPTCONN => i32::from(matches!(what, Fd::Listener(_))),
            _ => return Err(errno::ENOPROTOOPT),
        };
        let n = len.min(4) as usize;
        let dst = usermem::slice_mut(c.optval, n)?;
        dst.copy_from_slice(&v.to_ne_bytes()[..n]);
        Ok(n as i32)
    }

    /// `do_sock_setsockopt` for the options ringline has: SOL_SOCKET
    /// (`sk_setsockopt`) and IPPROTO_TCP (`do_tcp_setsockopt`); any other
    /// level is `-ENOPROTOOPT`, as IP's answers for a level it does not know.
    fn setsockopt(&mut self, fd: i32, what: Fd, c: SockCmd) -> Result<(), Errno> {
        let level = c.level as i32;
        if (c.optlen as i32) < 0 {
            return Err(errno::EINVAL);
        }
        if level != libc::SOL_SOCKET && level != libc::IPPROTO_TCP {
            return Err(errno::ENOPROTOOPT);
        }
        if c.optlen < 4 {
            return Err(errno::EINVAL);
        }
        let val: i32 = usermem::read(c.optval)?;
        let mut o = self.fds.opts(fd);
        match (level, c.optname as i32) {
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => o.reuse = val != 0,
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => o.keepalive = val != 0,
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                o.rcvbuf = (val as u32).min(BUF_MAX).saturating_mul(2).max(MIN_RCVBUF);
            }
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                o.sndbuf = (val as u32).min(BUF_MAX).saturating_mul(2).max(MIN_SNDBUF);
            }
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => o.nodelay = val != 0,
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => o.keepidle = in_range(val, MAX_KEEPIDLE)?,
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => {
                o.keepintvl = in_range(val, MAX_KEEPINTVL)?;
            }
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => o.keepcnt = in_range(val, MAX_KEEPCNT)?,
            _ => return Err(errno::ENOPROTOOPT),
        }
        *self.fds.opts_mut(fd) = o;
        match what {
            Fd::Conn(cid) => o.apply(self.conns.get_mut(cid).sock()),
            Fd::Listener(lid) => {
                if let Some(l) = self.listeners.get_mut(lid) {
                    l.opts = o;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `1..=max`, else `-EINVAL`.
fn in_range(val: i32, max: i32) -> Result<u32, Errno> {
    if (1..=max).contains(&val) {
        Ok(val as u32)
    } else {
        Err(errno::EINVAL)
    }
}
