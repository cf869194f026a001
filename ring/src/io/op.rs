//! Requests for [`Io::push`](super::Io::push): each one owns the memory its SQE names
//! until its final completion hands it back.
//!
//! * Any [`SafeSqe`] (the [`opcode`](crate::opcode) builders of requests that name no
//!   memory: NOP, SOCKET, LISTEN, ACCEPT without address, multishot ACCEPT, receives
//!   from a [`BufPool`](super::BufPool), CLOSE, SHUTDOWN, POLL_ADD, POLL_REMOVE,
//!   ASYNC_CANCEL, ...) is a request as it is.
//! * [`Send`] owns the bytes it sends ([`Buf`]: a `Vec<u8>`, a `Box<[u8]>` or a
//!   received [`PoolBuf`](super::PoolBuf)); [`Recv`] owns the `Vec<u8>` it fills;
//!   [`Bind`] and [`Connect`] own their `sockaddr`; [`Timeout`] and [`LinkTimeout`]
//!   keep their timespec in the op slot; [`PollAddWord`] holds its [`ReadyWords`]. The
//!   completion gives the buffer back ([`Completion::take_buf`](super::Completion::take_buf)).
//!
//! The trait [`Op`] is sealed: only this module's types (and `SafeSqe`) implement it,
//! so safe code cannot make a request that names memory nobody owns.

use core::sync::atomic::AtomicU32;
use std::net::SocketAddrV4;
use std::rc::Rc;
use std::time::Duration;

use crate::abi::Sqe;
use crate::app::opcode::{self, SafeSqe, Timespec};
use crate::app::sockaddr_in;

use super::pool::Buf;

/// What a request owns while it is in flight (kept in its op slot).
#[derive(Default)]
pub(crate) enum Owned {
    /// Nothing (a request that names no memory).
    #[default]
    None,
    /// A buffer the request reads or writes.
    Buf(Buf),
    /// A `sockaddr_in` read when the request starts (held, never read here).
    #[allow(dead_code)]
    Addr(Box<libc::sockaddr_in>),
    /// The ready words of coalesced polls (held, never read here).
    #[allow(dead_code)]
    Words(std::rc::Rc<[AtomicU32]>),
}

/// A request ready to be pushed: its SQE (all but `user_data`) and what it owns.
pub struct Prepared {
    pub(crate) sqe: Sqe,
    /// `Some` when the SQE names no memory (then `owned` is `None`).
    pub(crate) safe: Option<SafeSqe>,
    pub(crate) owned: Owned,
    /// A timespec for the SQE's `addr`: the layer stores it in the op slot's timespec
    /// cell (stable memory, no allocation) and points `addr` there.
    pub(crate) timespec: Option<Timespec>,
}

mod sealed {
    /// Only this crate's requests: what they return is what their SQE names.
    pub trait Sealed {
        /// The SQE and the memory it names, moved into the request.
        fn prepare(self) -> super::Prepared;
    }
}

/// The SQE and owned memory of `op` (the sealed method, callable in this crate).
pub(crate) fn sealed_prepare(op: impl Op) -> Prepared {
    sealed::Sealed::prepare(op)
}

/// A request [`Io::push`](super::Io::push) accepts. Sealed: see the [module](self).
pub trait Op: sealed::Sealed {}

impl sealed::Sealed for SafeSqe {
    fn prepare(self) -> Prepared {
        Prepared {
            sqe: *self.sqe(),
            safe: Some(self),
            owned: Owned::None,
            timespec: None,
        }
    }
}
impl Op for SafeSqe {}

fn owning(sqe: Sqe, owned: Owned) -> Prepared {
    Prepared {
        sqe,
        safe: None,
        owned,
        timespec: None,
    }
}

/// Send the bytes of a buffer the request owns (`IORING_OP_SEND`,
/// `io_uring_prep_send`). The final completion hands the buffer back.
#[derive(Debug)]
#[must_use = "a request does nothing until pushed"]
pub struct Send {
    fd: i32,
    buf: Buf,
    start: usize,
    end: usize,
    flags: i32,
    sqe_flags: u8,
}

/// The setters a buffer request shares: the part of its buffer it names, its
/// `msg_flags` and its `IOSQE_*` flags (fields `buf`, `start`, `end`,
/// `flags`, `sqe_flags`).
macro_rules! range_and_flags {
    ($t:ident, #[doc = $range1:literal] #[doc = $range2:literal] #[doc = $flags:literal]) => {
        impl $t {
            #[doc = $range1]
            #[doc = $range2]
            pub fn range(mut self, range: core::ops::Range<usize>) -> Self {
                self.end = range.end.min(self.buf.len());
                self.start = range.start.min(self.end);
                self
            }

            #[doc = $flags]
            pub fn flags(mut self, msg_flags: i32) -> Self {
                self.flags = msg_flags;
                self
            }

            /// `IOSQE_*` flags (`IOSQE_IO_LINK` before a [`LinkTimeout`], ...).
            pub fn sqe_flags(mut self, flags: u8) -> Self {
                self.sqe_flags |= flags;
                self
            }
        }
    };
}

impl Send {
    /// `send(fd, &buf[..], 0)`.
    pub fn new(fd: i32, buf: impl Into<Buf>) -> Self {
        let buf = buf.into();
        let end = buf.len();
        Send {
            fd,
            buf,
            start: 0,
            end,
            flags: 0,
            sqe_flags: 0,
        }
    }
}

range_and_flags! {
    Send,
    /// Send only `buf[start..end]` (clamped to the buffer), e.g. the rest after a
    /// short send.
    /// send flags (`MSG_WAITALL`, `MSG_MORE`, ...).
}

impl sealed::Sealed for Send {
    fn prepare(mut self) -> Prepared {
        let (ptr, _) = self.buf.raw();
        let len = u32::try_from(self.end - self.start).unwrap_or(u32::MAX);
        let sqe = opcode::Send::new(self.fd, ptr.wrapping_add(self.start), len)
            .flags(self.flags)
            .sqe_flags(self.sqe_flags)
            .build();
        owning(sqe, Owned::Buf(self.buf))
    }
}
impl Op for Send {}

/// Receive into a `Vec<u8>` the request owns (`IORING_OP_RECV`, `io_uring_prep_recv`):
/// at most `buf.len()` bytes at its start, or into [`Recv::range`]. The final
/// completion hands the `Vec` back (unchanged length; `res` bytes were written).
#[derive(Debug)]
#[must_use = "a request does nothing until pushed"]
pub struct Recv {
    fd: i32,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    flags: i32,
    sqe_flags: u8,
}

impl Recv {
    /// `recv(fd, &mut buf[..], 0)`.
    pub fn new(fd: i32, buf: Vec<u8>) -> Self {
        let end = buf.len();
        Recv {
            fd,
            buf,
            start: 0,
            end,
            flags: 0,
            sqe_flags: 0,
        }
    }
}

range_and_flags! {
    Recv,
    /// Receive into `buf[start..end]` only (clamped to the buffer), e.g. after the
    /// bytes already there.
    /// recv flags (`MSG_WAITALL`, `MSG_DONTWAIT`, ...).
}

impl sealed::Sealed for Recv {
    fn prepare(mut self) -> Prepared {
        let len = u32::try_from(self.end - self.start).unwrap_or(u32::MAX);
        let ptr = self.buf.as_mut_ptr().wrapping_add(self.start);
        let sqe = opcode::Recv::new(self.fd, ptr, len)
            .flags(self.flags)
            .sqe_flags(self.sqe_flags)
            .build();
        owning(sqe, Owned::Buf(Buf::Vec(self.buf)))
    }
}
impl Op for Recv {}

fn boxed_addr(addr: SocketAddrV4) -> Box<libc::sockaddr_in> {
    Box::new(sockaddr_in(addr.ip().octets(), addr.port()))
}

const SOCKADDR_IN_LEN: libc::socklen_t = core::mem::size_of::<libc::sockaddr_in>() as _;

/// Bind a socket to an IPv4 address (`IORING_OP_BIND`); owns the `sockaddr`.
#[derive(Debug, Clone, Copy)]
#[must_use = "a request does nothing until pushed"]
pub struct Bind {
    fd: i32,
    addr: SocketAddrV4,
}

impl Bind {
    /// `bind(fd, addr)`.
    pub fn new(fd: i32, addr: SocketAddrV4) -> Self {
        Bind { fd, addr }
    }
}

impl sealed::Sealed for Bind {
    fn prepare(self) -> Prepared {
        let sa = boxed_addr(self.addr);
        let sqe = opcode::Bind::new(
            self.fd,
            (&*sa as *const libc::sockaddr_in).cast(),
            SOCKADDR_IN_LEN,
        )
        .build();
        owning(sqe, Owned::Addr(sa))
    }
}
impl Op for Bind {}

/// Connect a socket to an IPv4 address (`IORING_OP_CONNECT`); owns the `sockaddr`.
#[derive(Debug, Clone, Copy)]
#[must_use = "a request does nothing until pushed"]
pub struct Connect {
    fd: i32,
    addr: SocketAddrV4,
}

impl Connect {
    /// `connect(fd, addr)`.
    pub fn new(fd: i32, addr: SocketAddrV4) -> Self {
        Connect { fd, addr }
    }
}

impl sealed::Sealed for Connect {
    fn prepare(self) -> Prepared {
        let sa = boxed_addr(self.addr);
        let sqe = opcode::Connect::new(
            self.fd,
            (&*sa as *const libc::sockaddr_in).cast(),
            SOCKADDR_IN_LEN,
        )
        .build();
        owning(sqe, Owned::Addr(sa))
    }
}
impl Op for Connect {}

/// A timer (`IORING_OP_TIMEOUT`, `io_uring_prep_timeout`); its timespec lives in
/// the request's op slot.
/// Completes with `-ETIME` when it fires.
#[derive(Debug, Clone, Copy)]
#[must_use = "a request does nothing until pushed"]
pub struct Timeout {
    after: Duration,
    count: u64,
    flags: u32,
}

impl Timeout {
    /// Fires after `after`.
    pub fn new(after: Duration) -> Self {
        Timeout {
            after,
            count: 0,
            flags: 0,
        }
    }

    /// Also complete after `count` other completions (0: pure timer).
    pub fn count(mut self, count: u64) -> Self {
        self.count = count;
        self
    }

    /// `IORING_TIMEOUT_*` flags.
    pub fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }
}

impl sealed::Sealed for Timeout {
    fn prepare(self) -> Prepared {
        // The address is the op slot's timespec cell, set by the layer.
        let sqe = opcode::Timeout::new(core::ptr::null())
            .count(self.count)
            .flags(self.flags)
            .build();
        Prepared {
            timespec: Some(Timespec::from(self.after)),
            ..owning(sqe, Owned::None)
        }
    }
}
impl Op for Timeout {}

/// A timeout for the request before it (`IORING_OP_LINK_TIMEOUT`,
/// `io_uring_prep_link_timeout`; that request has `IOSQE_IO_LINK`): cancels it if it
/// has not completed after `after`. Its timespec lives in the request's op slot.
#[derive(Debug, Clone, Copy)]
#[must_use = "a request does nothing until pushed"]
pub struct LinkTimeout {
    after: Duration,
}

impl LinkTimeout {
    /// Cancel the linked request after `after`.
    pub fn new(after: Duration) -> Self {
        LinkTimeout { after }
    }
}

impl sealed::Sealed for LinkTimeout {
    fn prepare(self) -> Prepared {
        let sqe = opcode::LinkTimeout::new(core::ptr::null()).build();
        Prepared {
            timespec: Some(Timespec::from(self.after)),
            ..owning(sqe, Owned::None)
        }
    }
}
impl Op for LinkTimeout {}

/// The ready words of ringline's coalesced persistent polls ([`PollAddWord`]), one
/// per index (e.g. per socket number), allocated once. Cheap to clone; a poll in
/// flight holds a clone, so the words outlive every poll that names them.
#[derive(Debug, Clone)]
pub struct ReadyWords(Rc<[AtomicU32]>);

impl ReadyWords {
    /// `n` words, all clear.
    pub fn new(n: usize) -> Self {
        ReadyWords((0..n).map(|_| AtomicU32::new(0)).collect())
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes the events accumulated in word `i` and clears it, re-enabling the next
    /// CQE of its poll ([`crate::app::take_ready`]). 0 if `i` is out of range.
    pub fn take(&self, i: usize) -> u32 {
        self.0.get(i).map_or(0, crate::app::take_ready)
    }
}

/// ringline's coalesced persistent poll (`IORING_OP_POLL_ADD` with
/// `IORING_POLL_ADD_MULTI | RINGLINE_POLL_COALESCED`, see
/// [`opcode::PollAdd::ready_word`]): the engine accumulates events in word `index` of
/// a [`ReadyWords`] and posts a CQE only when the word was clear; clear it with
/// [`ReadyWords::take`]. The request holds the words until its final completion.
#[derive(Debug)]
#[must_use = "a request does nothing until pushed"]
pub struct PollAddWord {
    fd: i32,
    events: u32,
    words: ReadyWords,
    index: usize,
}

impl PollAddWord {
    /// Poll `fd` for `events` into word `index` (cleared first). `None` if `index` is
    /// out of range.
    pub fn new(fd: i32, events: u32, words: &ReadyWords, index: usize) -> Option<Self> {
        let w = words.0.get(index)?;
        // Relaxed: no poll names the word yet; the push publishes it to the engine.
        w.store(0, core::sync::atomic::Ordering::Relaxed);
        Some(PollAddWord {
            fd,
            events,
            words: words.clone(),
            index,
        })
    }
}

impl sealed::Sealed for PollAddWord {
    fn prepare(self) -> Prepared {
        let word: *const AtomicU32 = &self.words.0[self.index];
        let sqe = opcode::PollAdd::new(self.fd, self.events)
            .ready_word(word)
            .build();
        owning(sqe, Owned::Words(self.words.0))
    }
}
impl Op for PollAddWord {}
