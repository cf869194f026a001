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

use smoltcp::time::Duration as SmolDuration;

use ringline_ring::abi::*;

use super::conns::Conn;
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

/// The engine's name for [`SocketOptions`].
pub(crate) type SockOpts = SocketOptions;

/// One socket's options, as the engine keeps them: what `setsockopt(2)` set
/// (through `IORING_OP_URING_CMD`, or `setsockopt()` in `libringline`) and
/// `getsockopt(2)` reports. [`SocketOptions::set`] and
/// [`SocketOptions::get`] are Linux's rules, shared by the engine and
/// `libringline`, so both answer alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketOptions {
    /// `TCP_NODELAY` (Nagle off).
    pub nodelay: bool,
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
    /// `TCP_KEEPIDLE` (s).
    pub keepidle: u32,
    /// `TCP_KEEPINTVL` (s).
    pub keepintvl: u32,
    /// `TCP_KEEPCNT`.
    pub keepcnt: u32,
    /// `SO_RCVBUF` as reported (bytes, Linux's doubled value).
    pub rcvbuf: u32,
    /// `SO_SNDBUF` as reported (bytes, Linux's doubled value).
    pub sndbuf: u32,
    /// `SO_REUSEADDR`.
    pub reuse: bool,
    /// `SO_REUSEPORT` (kept and reported; one engine has one listener per
    /// port either way).
    pub reuseport: bool,
    /// `SO_LINGER`'s `l_onoff` (Linux's `SOCK_LINGER`; off by default).
    /// On with a zero [`SocketOptions::linger_secs`], closing the socket
    /// aborts the connection (RST, unsent data discarded), as Linux's
    /// `tcp_close`; with any other time it closes gracefully (the CLOSE
    /// completes at once; Linux's waits for the data to be acknowledged, up
    /// to that time).
    pub linger: bool,
    /// `SO_LINGER`'s `l_linger` (s), kept when `l_onoff` is 0, as Linux
    /// keeps `sk_lingertime`.
    pub linger_secs: u32,
    /// `TCP_USER_TIMEOUT` (ms; 0, the default, off): a connection whose
    /// data stays outstanding this long with none of it acknowledged is
    /// given up, and its requests fail with `-ETIMEDOUT`.
    pub user_timeout_ms: u32,
}

impl SocketOptions {
    /// A new socket's options: the engine's configuration.
    pub fn from_config(cfg: &crate::config::EngineConfig) -> Self {
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
            reuseport: false,
            linger: false,
            linger_secs: 0,
            user_timeout_ms: 0,
        }
    }

    /// Whether closing the socket aborts its connection (`SO_LINGER` on with
    /// a zero time).
    pub(crate) fn abortive_close(&self) -> bool {
        self.linger && self.linger_secs == 0
    }

    /// `setsockopt(level, name, &val, 4)` for the options ringline has
    /// (`do_sock_setsockopt`: SOL_SOCKET's `sk_setsockopt`, IPPROTO_TCP's
    /// `do_tcp_setsockopt`): `ENOPROTOOPT` for any other, `EINVAL` for a
    /// value out of range. The caller checks `optlen` (at least an int).
    pub fn set(&mut self, level: i32, name: i32, val: i32) -> Result<(), Errno> {
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => self.reuse = val != 0,
            (libc::SOL_SOCKET, libc::SO_REUSEPORT) => self.reuseport = val != 0,
            // The value as `option_value` reads a `struct linger`: off
            // (negative) leaves the time as it was.
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                self.linger = val >= 0;
                if val >= 0 {
                    self.linger_secs = val as u32;
                }
            }
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => self.keepalive = val != 0,
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => {
                self.rcvbuf = (val as u32).min(BUF_MAX).saturating_mul(2).max(MIN_RCVBUF);
            }
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => {
                self.sndbuf = (val as u32).min(BUF_MAX).saturating_mul(2).max(MIN_SNDBUF);
            }
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => self.nodelay = val != 0,
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => self.keepidle = in_range(val, MAX_KEEPIDLE)?,
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => {
                self.keepintvl = in_range(val, MAX_KEEPINTVL)?;
            }
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => self.keepcnt = in_range(val, MAX_KEEPCNT)?,
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => {
                self.user_timeout_ms = u32::try_from(val).map_err(|_| errno::EINVAL)?;
            }
            _ => return Err(errno::ENOPROTOOPT),
        }
        Ok(())
    }

    /// What `getsockopt(level, name)` reports of the options kept here
    /// (`None`: not one of them; the socket's type, protocol, domain, error
    /// and listening state are the caller's to answer).
    pub fn get(&self, level: i32, name: i32) -> Option<i32> {
        Some(match (level, name) {
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => self.rcvbuf as i32,
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => self.sndbuf as i32,
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => i32::from(self.keepalive),
            (libc::SOL_SOCKET, libc::SO_REUSEADDR) => i32::from(self.reuse),
            (libc::SOL_SOCKET, libc::SO_REUSEPORT) => i32::from(self.reuseport),
            // As `option_bytes` writes it: the time, or `!time` when off.
            (libc::SOL_SOCKET, libc::SO_LINGER) => {
                let t = self.linger_secs.min(i32::MAX as u32) as i32;
                if self.linger {
                    t
                } else {
                    !t
                }
            }
            (libc::IPPROTO_TCP, libc::TCP_NODELAY) => i32::from(self.nodelay),
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => self.keepidle as i32,
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => self.keepintvl as i32,
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => self.keepcnt as i32,
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => self.user_timeout_ms as i32,
            _ => return None,
        })
    }

    /// Applies what the engine supports per connection to it (its socket,
    /// and the user timeout to its recovery), at engine time `now_us`.
    pub(crate) fn apply(&self, c: &mut Conn, now_us: u64) {
        c.rec.set_user_timeout(self.user_timeout_ms, now_us);
        let s = c.sock();
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
        let v = self
            .fds
            .opts(fd)
            .get(libc::SOL_SOCKET, c.optname as i32)
            .or_else(|| socket_constant(c.optname as i32, matches!(what, Fd::Listener(_))))
            .ok_or(errno::ENOPROTOOPT)?;
        let (bytes, full) = option_bytes(libc::SOL_SOCKET, c.optname as i32, v);
        let n = (len as usize).min(full);
        let dst = usermem::slice_mut(c.optval, n)?;
        dst.copy_from_slice(&bytes[..n]);
        Ok(n as i32)
    }

    /// `do_sock_setsockopt` for the options ringline has: SOL_SOCKET
    /// (`sk_setsockopt`) and IPPROTO_TCP (`do_tcp_setsockopt`); any other
    /// level is `-ENOPROTOOPT`, as IP's answers for a level it does not know.
    fn setsockopt(&mut self, fd: i32, what: Fd, c: SockCmd) -> Result<(), Errno> {
        let level = c.level as i32;
        setsockopt_checks(level, c.optlen as i32)?;
        let name = c.optname as i32;
        let n = option_len(level, name).min(c.optlen as usize);
        let val = option_value(level, name, usermem::slice(c.optval, n)?)?;
        self.set_option(fd, what, level, name, val)
    }

    /// Sets one option of socket `fd` (`what`) and applies it: the part of
    /// SETSOCKOPT after its argument checks, also `setsockopt()` in
    /// `libringline` ([`crate::Inline::set_socket_option`]).
    pub(crate) fn set_option(
        &mut self,
        fd: i32,
        what: Fd,
        level: i32,
        name: i32,
        val: i32,
    ) -> Result<(), Errno> {
        let mut o = self.fds.opts(fd);
        o.set(level, name, val)?;
        *self.fds.opts_mut(fd) = o;
        self.fds.options_changed(fd, o);
        match what {
            Fd::Conn(cid) => {
                o.apply(self.conns.get_mut(cid), self.now_us);
                // Egress re-arms its timer (the user timeout may be sooner).
                self.conns.mark_dirty(cid);
            }
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

/// setsockopt(2)'s checks before the value is read, in Linux's order: a
/// negative `optlen` is `EINVAL`, a level other than `SOL_SOCKET` and
/// `IPPROTO_TCP` `ENOPROTOOPT` (IP's answer for a level it does not know),
/// an `optlen` under an int `EINVAL`. Shared by SETSOCKOPT and
/// `setsockopt()` in `libringline`.
pub fn setsockopt_checks(level: i32, optlen: i32) -> Result<(), Errno> {
    if optlen < 0 {
        return Err(errno::EINVAL);
    }
    if level != libc::SOL_SOCKET && level != libc::IPPROTO_TCP {
        return Err(errno::ENOPROTOOPT);
    }
    if optlen < 4 {
        return Err(errno::EINVAL);
    }
    Ok(())
}

/// `sizeof(struct linger)`.
const LINGER_LEN: usize = 8;

/// The value `setsockopt(level, name, optval, optval.len())` sets, as the
/// `i32` [`SocketOptions::set`] takes, after [`setsockopt_checks`]: an int,
/// or for `SO_LINGER` a `struct linger` (`EINVAL` if `optval` is shorter;
/// `l_onoff` 0 is -1, "off"; a negative `l_linger`, which Linux takes as
/// the longest time, is `i32::MAX`).
pub fn option_value(level: i32, name: i32, optval: &[u8]) -> Result<i32, Errno> {
    let int = |b: &[u8]| {
        b.get(..4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    if (level, name) == (libc::SOL_SOCKET, libc::SO_LINGER) {
        if optval.len() < LINGER_LEN {
            return Err(errno::EINVAL);
        }
        let (onoff, secs) = (int(optval).unwrap_or(0), int(&optval[4..]).unwrap_or(0));
        return Ok(match (onoff, secs) {
            (0, _) => -1,
            (_, s) if s < 0 => i32::MAX,
            (_, s) => s,
        });
    }
    int(optval).ok_or(errno::EINVAL)
}

/// How many bytes `optval` needs for `option_value` to read `level`/`name`
/// (at most [`LINGER_LEN`]).
pub fn option_len(level: i32, name: i32) -> usize {
    if (level, name) == (libc::SOL_SOCKET, libc::SO_LINGER) {
        LINGER_LEN
    } else {
        4
    }
}

/// What `getsockopt(level, name)` writes for value `v` (from
/// [`SocketOptions::get`] or [`socket_constant`]) and its full length,
/// before it is cut to `optlen`: an int, or for `SO_LINGER` a
/// `struct linger` (`v` the time when on, `!time` when off).
pub fn option_bytes(level: i32, name: i32, v: i32) -> ([u8; LINGER_LEN], usize) {
    let mut b = [0u8; LINGER_LEN];
    if (level, name) == (libc::SOL_SOCKET, libc::SO_LINGER) {
        let (onoff, secs) = if v < 0 { (0i32, !v) } else { (1, v) };
        b[..4].copy_from_slice(&onoff.to_ne_bytes());
        b[4..].copy_from_slice(&secs.to_ne_bytes());
        return (b, LINGER_LEN);
    }
    b[..4].copy_from_slice(&v.to_ne_bytes());
    (b, 4)
}

/// `getsockopt(SOL_SOCKET, name)` for what a socket is rather than what was
/// set: its type, protocol, domain, error and whether it listens.
pub fn socket_constant(name: i32, listening: bool) -> Option<i32> {
    Some(match name {
        // No error is left pending on a socket an fd names: a
        // connection's error is reported by the request it fails.
        libc::SO_ERROR => 0,
        libc::SO_TYPE => libc::SOCK_STREAM,
        libc::SO_PROTOCOL => libc::IPPROTO_TCP,
        libc::SO_DOMAIN => libc::AF_INET,
        libc::SO_ACCEPTCONN => i32::from(listening),
        _ => return None,
    })
}

/// `1..=max`, else `-EINVAL`.
fn in_range(val: i32, max: i32) -> Result<u32, Errno> {
    if (1..=max).contains(&val) {
        Ok(val as u32)
    } else {
        Err(errno::EINVAL)
    }
}
