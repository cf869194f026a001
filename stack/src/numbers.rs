//! Socket numbers chosen outside the engine: the hook a C library (ringline's
//! liburing-compatible `libringline`) uses so that every socket number is a real,
//! reserved file-descriptor number of the process and never collides with a kernel
//! fd, and so that sockets made with `socket()`/`bind()`/`listen()` before any ring
//! saw them can be taken over by the engine whose ring first names them.
//!
//! Without a hook ([`EngineConfig::socket_numbers`](crate::EngineConfig) `None`),
//! socket numbers are the engine's own small integers, as before.

use std::fmt;
use std::net::SocketAddrV4;
use std::sync::Arc;

use crate::SocketOptions;

/// What a socket made outside the engine was when a request first named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adopted {
    /// Created (`socket()`), bound to `port` (0: not bound).
    Socket {
        /// Bound port, 0 if none.
        port: u16,
        /// The options `setsockopt()` set (`None`: the engine's defaults).
        opts: Option<SocketOptions>,
    },
    /// Listening on `port` with `backlog`.
    Listener {
        /// The port (never 0: the library picks one at `listen()`).
        port: u16,
        /// `listen()`'s backlog.
        backlog: u32,
        /// The options `setsockopt()` set (`None`: the engine's defaults).
        opts: Option<SocketOptions>,
    },
}

/// Where socket numbers come from and go back to. Called by the engine on its own
/// thread, outside the per-packet path: once per socket created (SOCKET, ACCEPT),
/// closed, or adopted.
pub trait SocketNumbers: Send + Sync {
    /// A new number for a socket of the engine; `None` fails the request with
    /// `-EMFILE`. Must be `>= 0` and not in use by any other socket of any engine.
    fn reserve(&self) -> Option<i32>;
    /// The engine closed the socket behind `fd`; the number is free again.
    fn release(&self, fd: i32);
    /// A request named `fd`, which this engine does not know: if it is a socket made
    /// outside the engine (and not yet adopted by another engine), hand it over.
    fn adopt(&self, fd: i32) -> Option<Adopted>;
    /// Whether `fd` is an open descriptor of the process, whatever it is
    /// (a MSG_RING naming one that is not a ring is `-EBADFD`, one that is
    /// not open `-EBADF`). The default knows none.
    fn is_open(&self, _fd: i32) -> bool {
        false
    }
    /// The socket behind `fd` now has these addresses: bound by BIND (no
    /// peer), or connected (an accepted connection, a CONNECT under way).
    /// For `getsockname()` / `getpeername()` outside the engine; called once
    /// per such event, never per packet. The default keeps nothing.
    fn named(&self, _fd: i32, _local: SocketAddrV4, _peer: Option<SocketAddrV4>) {}
    /// The options of the socket behind `fd` as the engine now has them, and
    /// whether it listens: when it gets its number, is adopted, listens, or
    /// has an option set (never per packet). For `getsockopt()` outside the
    /// engine. The default keeps nothing.
    fn options(&self, _fd: i32, _opts: SocketOptions, _listening: bool) {}
    /// A SYN came for `port`, on which this engine has no listener: the
    /// number of a socket made outside the engine that listens on `port` and
    /// that no engine has adopted yet, if there is one. The engine adopts it
    /// at once and the SYN finds it, as Linux's `listen()` takes connections
    /// before any request names the socket. Called only for SYNs to ports
    /// nothing here listens on, never for a connection's packets. The
    /// default knows none.
    fn pending_listener(&self, _port: u16) -> Option<i32> {
        None
    }
}

/// A shared [`SocketNumbers`] for [`EngineConfig::socket_numbers`](crate::EngineConfig).
#[derive(Clone)]
pub struct SocketNumbersHook(pub Arc<dyn SocketNumbers>);

impl fmt::Debug for SocketNumbersHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SocketNumbersHook")
    }
}
