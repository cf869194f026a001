//! The liburing-shaped application API.
//!
//! [`Ring`] pairs the application half of a ring ([`AppRing`]) with a [`Driver`], the
//! stand-in for the `io_uring_enter` / `io_uring_register` system calls (the stack's
//! engine implements it). The method names follow liburing: `get_sqe`, `submit`,
//! `submit_and_wait`, `peek_cqe`, `wait_cqe`, `cqe_seen`, `cq_advance`, ...
//!
//! SQEs are built with the [`opcode`] builders (tokio io-uring style) and pushed with
//! [`Ring::push_safe`] or [`Ring::push`], or filled in place through [`Ring::get_sqe`].
//! CQE flags are read with the helpers in [`cqe`].
//!
//! # Soundness: who keeps the memory an SQE names alive
//!
//! The engine reads and writes the memory an SQE names (a receive buffer, a
//! `sockaddr`, a timespec, a poll's ready word) long after the call that queued it, so
//! the borrow checker cannot see that use. As in the `io-uring` crate, the application
//! promises it instead, by calling an `unsafe` function:
//!
//! * [`Ring::push`] (any [`Sqe`]) and [`Ring::get_sqe`] (an SQE filled in place) are
//!   `unsafe`; their contract is stated on [`Ring::push`].
//! * [`Ring::push_safe`] is safe: it takes only a [`SafeSqe`], which only the builders
//!   of requests that name no memory return (NOP, SOCKET, LISTEN, CLOSE, SHUTDOWN,
//!   POLL_ADD without ready word, POLL_REMOVE, ASYNC_CANCEL, TIMEOUT_REMOVE,
//!   REMOVE_BUFFERS, ACCEPT without address, receives into provided buffers); see
//!   [`opcode`].
//! * Provided buffers are handed to the engine through the `unsafe`
//!   [`BufRing::add`](crate::bufring::BufRing::add) /
//!   [`advance`](crate::bufring::BufRing::advance), or a PROVIDE_BUFFERS SQE (which
//!   names memory); a receive that selects one therefore names no memory itself.
//!
//! So a program with `#![forbid(unsafe_code)]` can drive the ring, but cannot make the
//! engine read or write memory it does not own.

use core::fmt;
use std::time::{Duration, Instant};

use crate::abi::{self, Cqe, Sqe};
pub use crate::app::opcode::SafeSqe;
use crate::bufring::{BufRing, BufRingConsumer, BufRingError};
use crate::mem::HugePolicy;
use crate::ring::AppRing;

pub mod opcode;

/// The system calls of a ring: `io_uring_enter` and the `io_uring_register` opcodes
/// ringline uses. Implemented by the stack's engine (inline: the engine runs inside
/// `enter`; SQPOLL: `enter` only waits).
pub trait Driver {
    /// `io_uring_enter`: consume up to `to_submit` published SQEs; if `flags` has
    /// `IORING_ENTER_GETEVENTS`, flush the overflow backlog and run until
    /// `cq_ready >= min_complete` or `timeout` passes (`None`: no limit; on timeout
    /// `Err(ETIME)` unless CQEs are ready). Returns the number of SQEs consumed.
    fn enter(
        &mut self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        timeout: Option<Duration>,
    ) -> Result<u32, Errno>;

    /// `IORING_REGISTER_PBUF_RING`: registers the engine half of a buffer ring as group
    /// `bgid`.
    fn register_buf_ring(&mut self, bgid: u16, ring: BufRingConsumer) -> Result<(), Errno>;

    /// `IORING_UNREGISTER_PBUF_RING`.
    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno>;

    /// Memory for a buffer ring of `entries` ([`Ring::register_buf_ring`]):
    /// by default a mapping of its own. A driver whose engine may reach only
    /// some of the application's memory (`ringline serve`) takes it from
    /// there.
    fn new_buf_ring(&mut self, entries: u32) -> Result<(BufRing, BufRingConsumer), Errno> {
        // The ring is small (16 B per entry), so it uses normal pages.
        Ok(BufRing::new(entries, HugePolicy::Never)?)
    }

    /// `io_uring_register(2)` for the opcodes whose argument is application
    /// memory: the registered files (`IORING_REGISTER_FILES`, `FILES2`,
    /// `FILES_UPDATE`, `FILES_UPDATE2`, `UNREGISTER_FILES`,
    /// `FILE_ALLOC_RANGE`), registered buffers (`IORING_REGISTER_BUFFERS`,
    /// `UNREGISTER_BUFFERS`), `IORING_REGISTER_PROBE`,
    /// `IORING_REGISTER_PBUF_STATUS`, `IORING_UNREGISTER_PBUF_RING` and
    /// `IORING_REGISTER_SYNC_CANCEL`, with the kernel's
    /// argument layout and errnos. Returns the call's non-negative result.
    /// A driver without them answers `EINVAL`, as the kernel does for an
    /// opcode it does not know.
    ///
    /// # Safety
    ///
    /// `arg` (with `nr_args`) must be what the opcode's UAPI says: readable
    /// (and for PROBE writable) for the length it implies, for the duration
    /// of the call. For `IORING_REGISTER_BUFFERS`, every buffer the iovecs
    /// name must in addition stay valid, and be accessed by the application
    /// only as [`Ring::push`]'s contract allows for the requests that use it,
    /// until `IORING_UNREGISTER_BUFFERS` returns or the driver is dropped.
    unsafe fn register(&mut self, opcode: u32, arg: u64, nr_args: u32) -> Result<u32, Errno> {
        let _ = (opcode, arg, nr_args);
        Err(Errno::EINVAL)
    }
}

/// A positive errno value (`Errno(libc::ENOBUFS)`); a CQE's negative `res` is `-errno`.
///
/// Displays as the symbolic name and number for common values, e.g. `ENOBUFS (105)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(pub i32);

impl Errno {
    /// `-EINVAL`'s errno.
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    /// Timer expired (`wait_cqe_timeout`).
    pub const ETIME: Errno = Errno(libc::ETIME);
    /// No provided buffer available.
    pub const ENOBUFS: Errno = Errno(libc::ENOBUFS);
    /// Resource temporarily unavailable.
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    /// Operation canceled.
    pub const ECANCELED: Errno = Errno(libc::ECANCELED);
    /// Out of memory.
    pub const ENOMEM: Errno = Errno(libc::ENOMEM);
    /// Busy (old kernels: the CQ overflowed).
    pub const EBUSY: Errno = Errno(libc::EBUSY);

    /// The errno of a CQE result: `Some` if `res < 0`.
    pub fn from_res(res: i32) -> Option<Errno> {
        (res < 0).then_some(Errno(res.wrapping_neg()))
    }

    /// The value as a CQE result (`-errno`).
    pub fn as_res(self) -> i32 {
        self.0.wrapping_neg()
    }

    /// The symbolic name (`"ENOBUFS"`) of common errno values.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::ENXIO => "ENXIO",
            libc::E2BIG => "E2BIG",
            libc::EBADF => "EBADF",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::ENODEV => "ENODEV",
            libc::EINVAL => "EINVAL",
            libc::ENFILE => "ENFILE",
            libc::EMFILE => "EMFILE",
            libc::ENOSPC => "ENOSPC",
            libc::EPIPE => "EPIPE",
            libc::ERANGE => "ERANGE",
            libc::ENOSYS => "ENOSYS",
            libc::ETIME => "ETIME",
            libc::EBADR => "EBADR",
            libc::EOVERFLOW => "EOVERFLOW",
            libc::ENOTSOCK => "ENOTSOCK",
            libc::EDESTADDRREQ => "EDESTADDRREQ",
            libc::EMSGSIZE => "EMSGSIZE",
            libc::EPROTOTYPE => "EPROTOTYPE",
            libc::ENOPROTOOPT => "ENOPROTOOPT",
            libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::EAFNOSUPPORT => "EAFNOSUPPORT",
            libc::EADDRINUSE => "EADDRINUSE",
            libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
            libc::ENETDOWN => "ENETDOWN",
            libc::ENETUNREACH => "ENETUNREACH",
            libc::ECONNABORTED => "ECONNABORTED",
            libc::ECONNRESET => "ECONNRESET",
            libc::ENOBUFS => "ENOBUFS",
            libc::EISCONN => "EISCONN",
            libc::ENOTCONN => "ENOTCONN",
            libc::ETIMEDOUT => "ETIMEDOUT",
            libc::ECONNREFUSED => "ECONNREFUSED",
            libc::EHOSTUNREACH => "EHOSTUNREACH",
            libc::EALREADY => "EALREADY",
            libc::EINPROGRESS => "EINPROGRESS",
            libc::ECANCELED => "ECANCELED",
            libc::EOWNERDEAD => "EOWNERDEAD",
            _ => return None,
        })
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.0)
    }
}

impl From<BufRingError> for Errno {
    fn from(e: BufRingError) -> Self {
        Errno(-e.errno())
    }
}

/// [`Ring::push`] or [`Ring::push_safe`] found the submission queue full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("submission queue is full")]
pub struct SqFull;

/// `struct __kernel_timespec` (16 bytes), pointed to by TIMEOUT and LINK_TIMEOUT SQEs.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Timespec {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds.
    pub tv_nsec: i64,
}

const _: () = {
    assert!(core::mem::size_of::<Timespec>() == 16);
    assert!(core::mem::offset_of!(Timespec, tv_nsec) == 8);
};

impl From<Duration> for Timespec {
    fn from(d: Duration) -> Self {
        Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        }
    }
}

/// An IPv4 `sockaddr_in` for `ip:port`, in network byte order.
pub fn sockaddr_in(ip: [u8; 4], port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            // s_addr is in network order: the address bytes in memory order.
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    }
}

/// App side of a coalesced poll ([`opcode::PollAdd::ready_word`]): takes the ready
/// events accumulated in `word` and clears it, re-enabling the next CQE for the socket.
///
/// Call it when handling the poll's CQE (the CQE's `res` holds the events that set the
/// word; events that arrived since are returned here too).
pub fn take_ready(word: &core::sync::atomic::AtomicU32) -> u32 {
    // The engine fetch_or's readiness into the word (AcqRel) and posts a CQE only when
    // it saw 0. This swap is AcqRel: Acquire pairs with the engine's release so the
    // socket state behind the bits is visible; Release pairs with the engine's acquire
    // so it sees the word cleared and queues the next CQE.
    word.swap(0, core::sync::atomic::Ordering::AcqRel)
}

/// Reading CQEs: flag helpers (as in tokio io-uring's `cqueue`) and the result.
pub mod cqe {
    use crate::abi::Cqe;
    pub use crate::abi::{buffer_id, buffer_select, more, notif, sock_nonempty};

    use super::Errno;

    /// A CQE's result as `Ok(value)` or `Err(errno)`.
    pub fn result(cqe: &Cqe) -> Result<u32, Errno> {
        match Errno::from_res(cqe.res) {
            Some(e) => Err(e),
            None => Ok(cqe.res as u32),
        }
    }
}

/// A ring as the application sees it: liburing's `struct io_uring` plus its system
/// calls ([`Driver`]).
#[derive(Debug)]
pub struct Ring<D: Driver> {
    /// The application half of the shared ring.
    pub app: AppRing,
    /// The `io_uring_enter` / `io_uring_register` implementation.
    pub driver: D,
}

/// The `IORING_SQ_*` flags after which liburing enters with GETEVENTS even when it has
/// nothing to wait for: CQEs are held back in the engine.
const NEEDS_GETEVENTS: u32 = abi::IORING_SQ_CQ_OVERFLOW | abi::IORING_SQ_TASKRUN;

impl<D: Driver> Ring<D> {
    /// Pairs an application ring half with its driver.
    pub fn new(app: AppRing, driver: D) -> Self {
        Ring { app, driver }
    }

    /// The next free SQE, zeroed; `None` when the SQ is full (`io_uring_get_sqe`).
    /// Whatever the caller writes there is submitted by the next [`Ring::submit`] (or
    /// any call that enters), like an SQE given to [`Ring::push`]. Prefer `push_safe` or
    /// `push` with a builder from [`opcode`].
    ///
    /// # Safety
    ///
    /// The SQE as the caller leaves it is submitted, so the contract of [`Ring::push`]
    /// applies to it: every buffer and address it names must stay valid as that
    /// contract says.
    #[inline]
    pub unsafe fn get_sqe(&mut self) -> Option<&mut Sqe> {
        // SAFETY: the caller takes on the push contract for what it writes (this
        // function's).
        unsafe { self.app.get_sqe() }
    }

    /// Copies `sqe` into the next free SQ slot (not yet published: see [`Ring::submit`]).
    /// For requests that name no memory, [`Ring::push_safe`] needs no `unsafe`.
    ///
    /// # Safety
    ///
    /// The contract is io_uring's. Every buffer and address the SQE names must be valid
    /// for the access its opcode implies (readable for what the engine sends or reads,
    /// writable for what it receives or writes back) and stay valid, and not be accessed
    /// by the application in a conflicting way, until the engine is done with it.
    /// Keeping it so until the request's final CQE (the one without
    /// `IORING_CQE_F_MORE`) is always enough. In detail:
    ///
    /// * buffers of RECV, SEND, READ, WRITE; the `msghdr` of RECVMSG and SENDMSG, its
    ///   iovec array and the iovecs' buffers; ACCEPT's `sockaddr` and `socklen_t`; a
    ///   coalesced poll's ready word: until the request's final CQE (for a zero-copy
    ///   send, its notification);
    /// * PROVIDE_BUFFERS' buffers: until the engine hands each one back in a CQE with
    ///   `IORING_CQE_F_BUFFER` and its id, or REMOVE_BUFFERS removes it;
    /// * data the engine reads once, when the request starts (BIND's and CONNECT's
    ///   `sockaddr`, the timespec of TIMEOUT, LINK_TIMEOUT and a timeout update): for a
    ///   request that starts as soon as it is submitted, until the engine has taken the
    ///   SQE from the SQ (the submitting call returned `Ok` and [`Ring::sq_space_left`]
    ///   counts the slot free again); for one that waits behind a link (any SQE after
    ///   the first of an `IOSQE_IO_LINK` / `IOSQE_IO_HARDLINK` chain, every
    ///   LINK_TIMEOUT among them) or a drain (`IOSQE_IO_DRAIN` on it or on an earlier
    ///   request still in flight), until its CQE. Linux copies such data at
    ///   submission in every case (`IORING_FEAT_SUBMIT_STABLE`); ringline reads it when
    ///   the request starts.
    ///
    /// An SQE that names no memory (a null address, or an opcode without one) has
    /// nothing to promise. The engine touches the memory only through the `ringline`
    /// crate's audited `usermem` module, which also rejects null and wrapping ranges
    /// with `-EFAULT`.
    #[inline]
    pub unsafe fn push(&mut self, sqe: &Sqe) -> Result<(), SqFull> {
        // SAFETY: the caller upholds the push contract for `sqe` (this function's),
        // and the slot is overwritten whole.
        let slot = unsafe { self.app.get_sqe() }.ok_or(SqFull)?;
        *slot = *sqe;
        Ok(())
    }

    /// Copies `sqe`, an SQE that names no application memory, into the next free SQ slot
    /// (not yet published: see [`Ring::submit`]). Safe: only the [`opcode`] builders of
    /// requests without addresses make a [`SafeSqe`].
    #[inline]
    pub fn push_safe(&mut self, sqe: &SafeSqe) -> Result<(), SqFull> {
        self.app.push_safe(sqe)
    }

    fn needs_getevents(&self) -> bool {
        self.app.sq_flags() & NEEDS_GETEVENTS != 0
    }

    /// The enter flags liburing adds after publishing SQEs (`sq_ring_needs_enter`): on
    /// an SQPOLL ring with SQEs to submit, `IORING_ENTER_SQ_WAKEUP` when the engine has
    /// set `IORING_SQ_NEED_WAKEUP` (read after the full fence of
    /// [`AppRing::needs_wakeup`], which pairs with the engine's fence before it sleeps).
    /// Nothing on other rings, and nothing when there is nothing to submit (a wait alone
    /// does not wake a sleeping engine, as in liburing).
    #[inline]
    fn wakeup_flags(&self, to_submit: u32) -> u32 {
        if to_submit > 0 && self.app.is_sqpoll() && self.app.needs_wakeup() {
            abi::IORING_ENTER_SQ_WAKEUP
        } else {
            0
        }
    }

    /// Publishes queued SQEs and enters the driver with them (`io_uring_submit`);
    /// adds `IORING_ENTER_GETEVENTS` when the engine holds back CQEs
    /// (`IORING_SQ_CQ_OVERFLOW` or `IORING_SQ_TASKRUN`). Returns the SQEs consumed.
    ///
    /// Unlike liburing, the driver is entered even with nothing to submit: an inline
    /// engine makes progress only inside `enter`, and entering costs no system call.
    pub fn submit(&mut self) -> Result<u32, Errno> {
        self.app.flush_sq();
        let to_submit = self.app.sq_pending();
        let flags = if self.needs_getevents() {
            abi::IORING_ENTER_GETEVENTS
        } else {
            0
        } | self.wakeup_flags(to_submit);
        self.driver.enter(to_submit, 0, flags, None)
    }

    /// Publishes queued SQEs, enters with them and waits for `n` CQEs
    /// (`io_uring_submit_and_wait`).
    pub fn submit_and_wait(&mut self, n: u32) -> Result<u32, Errno> {
        self.app.flush_sq();
        let to_submit = self.app.sq_pending();
        let flags = abi::IORING_ENTER_GETEVENTS | self.wakeup_flags(to_submit);
        self.driver.enter(to_submit, n, flags, None)
    }

    /// As [`Ring::submit_and_wait`], waiting at most `timeout`
    /// (`io_uring_submit_and_wait_timeout`; `Err(ETIME)` if it passes with no CQE).
    pub fn submit_and_wait_timeout(&mut self, n: u32, timeout: Duration) -> Result<u32, Errno> {
        self.app.flush_sq();
        let to_submit = self.app.sq_pending();
        let flags = abi::IORING_ENTER_GETEVENTS | self.wakeup_flags(to_submit);
        self.driver.enter(to_submit, n, flags, Some(timeout))
    }

    /// Waits until the SQ has a free slot (`io_uring_sqring_wait`): on an SQPOLL ring,
    /// enters with `IORING_ENTER_SQ_WAIT` (waking the engine first if it sleeps); on other
    /// rings the SQ frees only when the application submits, so it returns at once.
    pub fn sqring_wait(&mut self) -> Result<(), Errno> {
        if !self.app.is_sqpoll() || self.app.sq_space_left() > 0 {
            return Ok(());
        }
        self.app.flush_sq();
        let flags = abi::IORING_ENTER_SQ_WAIT | self.wakeup_flags(self.app.sq_pending());
        self.driver.enter(0, 0, flags, None).map(|_| ())
    }

    /// Enters with `IORING_ENTER_GETEVENTS` and nothing to wait for: lets the engine
    /// flush its backlog and run pending work (`io_uring_get_events`).
    pub fn get_events(&mut self) -> Result<u32, Errno> {
        self.driver.enter(0, 0, abi::IORING_ENTER_GETEVENTS, None)
    }

    /// The CQE at the head, if any, without consuming it (`io_uring_peek_cqe`). Like
    /// liburing, when the CQ is empty but the engine holds back CQEs it enters once
    /// (`GETEVENTS`, nothing to wait for) to flush them.
    #[inline]
    pub fn peek_cqe(&mut self) -> Option<Cqe> {
        if let Some(c) = self.app.peek_cqe() {
            return Some(c);
        }
        if self.needs_getevents() {
            // peek never fails: an error here only means no CQE appeared.
            let _ = self.get_events();
            return self.app.peek_cqe();
        }
        None
    }

    /// Waits for a CQE and returns a copy of it, without consuming it
    /// (`io_uring_wait_cqe`): enters with `GETEVENTS` and `min_complete = 1` until one
    /// is there.
    pub fn wait_cqe(&mut self) -> Result<Cqe, Errno> {
        loop {
            if let Some(c) = self.app.peek_cqe() {
                return Ok(c);
            }
            self.driver.enter(0, 1, abi::IORING_ENTER_GETEVENTS, None)?;
        }
    }

    /// As [`Ring::wait_cqe`], giving up after `timeout` with `Err(ETIME)`
    /// (`io_uring_wait_cqe_timeout`).
    pub fn wait_cqe_timeout(&mut self, timeout: Duration) -> Result<Cqe, Errno> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.app.peek_cqe() {
                return Ok(c);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Errno::ETIME);
            }
            match self
                .driver
                .enter(0, 1, abi::IORING_ENTER_GETEVENTS, Some(left))
            {
                Ok(_) => {}
                Err(Errno::ETIME) => return self.app.peek_cqe().ok_or(Errno::ETIME),
                Err(e) => return Err(e),
            }
        }
    }

    /// Consumes one CQE (`io_uring_cqe_seen`).
    #[inline]
    pub fn cqe_seen(&mut self) {
        self.app.cqe_seen();
    }

    /// Consumes `n` CQEs (`io_uring_cq_advance`).
    #[inline]
    pub fn cq_advance(&mut self, n: u32) {
        self.app.cq_advance(n);
    }

    /// Iterates over (copies of) the CQEs ready now; the CQ head is advanced once, by
    /// the number of CQEs yielded, when the iterator is dropped
    /// (`io_uring_for_each_cqe` + `io_uring_cq_advance`).
    pub fn completions(&mut self) -> Completions<'_> {
        let remaining = self.app.cq_ready();
        Completions {
            app: &mut self.app,
            remaining,
            yielded: 0,
        }
    }

    /// CQEs ready to be read.
    #[inline]
    pub fn cq_ready(&self) -> u32 {
        self.app.cq_ready()
    }

    /// Free SQ slots.
    #[inline]
    pub fn sq_space_left(&self) -> u32 {
        self.app.sq_space_left()
    }

    /// Whether the engine holds CQEs in its overflow backlog (`io_uring_cq_has_overflow`).
    #[inline]
    pub fn cq_has_overflow(&self) -> bool {
        self.app.cq_has_overflow()
    }

    /// Allocates a provided-buffer ring of `entries` and registers it as group `bgid`
    /// (`io_uring_setup_buf_ring`), in memory the driver picks ([`Driver::new_buf_ring`]).
    pub fn register_buf_ring(&mut self, entries: u32, bgid: u16) -> Result<BufRing, Errno> {
        let (ring, consumer) = self.driver.new_buf_ring(entries)?;
        self.driver.register_buf_ring(bgid, consumer)?;
        Ok(ring)
    }

    /// As [`Ring::register_buf_ring`] with `IOU_PBUF_RING_*` flags
    /// (`io_uring_setup_buf_ring`'s `flags`): `IOU_PBUF_RING_INC` makes the
    /// ring incremental (a receive uses a buffer a part at a time, CQEs carry
    /// `IORING_CQE_F_BUF_MORE` while it has room left); any other flag
    /// (`IOU_PBUF_RING_MMAP`: ringline's rings are always the application's
    /// memory) is `EINVAL`.
    pub fn register_buf_ring_with_flags(
        &mut self,
        entries: u32,
        bgid: u16,
        flags: u16,
    ) -> Result<BufRing, Errno> {
        let inc = crate::bufring::incremental_flag(flags).ok_or(Errno::EINVAL)?;
        let (ring, mut consumer) = self.driver.new_buf_ring(entries)?;
        if inc {
            consumer.set_incremental();
        }
        self.driver.register_buf_ring(bgid, consumer)?;
        Ok(ring)
    }

    /// Unregisters buffer group `bgid` (`io_uring_free_buf_ring`).
    pub fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        self.driver.unregister_buf_ring(bgid)
    }

    /// Registers a file table holding `fds` (`io_uring_register_files`); an fd
    /// of -1 leaves its slot empty. SQEs with `IOSQE_FIXED_FILE` then name a
    /// slot instead of an fd.
    pub fn register_files(&mut self, fds: &[i32]) -> Result<(), Errno> {
        let n = u32::try_from(fds.len()).map_err(|_| Errno::EINVAL)?;
        // SAFETY: the array is read during the call only.
        unsafe {
            self.driver
                .register(abi::IORING_REGISTER_FILES, fds.as_ptr() as u64, n)
        }
        .map(drop)
    }

    /// Registers a file table of `n` empty slots
    /// (`io_uring_register_files_sparse`: `IORING_REGISTER_FILES2` with
    /// `IORING_RSRC_REGISTER_SPARSE`).
    pub fn register_files_sparse(&mut self, n: u32) -> Result<(), Errno> {
        let rr = abi::RsrcRegister {
            nr: n,
            flags: abi::IORING_RSRC_REGISTER_SPARSE,
            ..Default::default()
        };
        let size = core::mem::size_of::<abi::RsrcRegister>() as u32;
        // SAFETY: the struct is read during the call only.
        unsafe {
            self.driver.register(
                abi::IORING_REGISTER_FILES2,
                &rr as *const abi::RsrcRegister as u64,
                size,
            )
        }
        .map(drop)
    }

    /// Replaces slots `off..off + fds.len()` (`io_uring_register_files_update`):
    /// -1 empties a slot, `IORING_REGISTER_FILES_SKIP` leaves it. Returns how
    /// many slots were updated.
    pub fn register_files_update(&mut self, off: u32, fds: &[i32]) -> Result<u32, Errno> {
        let n = u32::try_from(fds.len()).map_err(|_| Errno::EINVAL)?;
        let up = abi::RsrcUpdate {
            offset: off,
            resv: 0,
            data: fds.as_ptr() as u64,
        };
        // SAFETY: the struct and the array are read during the call only.
        unsafe {
            self.driver.register(
                abi::IORING_REGISTER_FILES_UPDATE,
                &up as *const abi::RsrcUpdate as u64,
                n,
            )
        }
    }

    /// Drops the file table (`io_uring_unregister_files`); sockets only a slot
    /// held are closed.
    pub fn unregister_files(&mut self) -> Result<(), Errno> {
        // SAFETY: no memory is named.
        unsafe { self.driver.register(abi::IORING_UNREGISTER_FILES, 0, 0) }.map(drop)
    }

    /// Limits the slots `IORING_FILE_INDEX_ALLOC` picks from to `off..off + len`
    /// (`io_uring_register_file_alloc_range`).
    pub fn register_file_alloc_range(&mut self, off: u32, len: u32) -> Result<(), Errno> {
        let r = abi::FileIndexRange { off, len, resv: 0 };
        // SAFETY: the struct is read during the call only.
        unsafe {
            self.driver.register(
                abi::IORING_REGISTER_FILE_ALLOC_RANGE,
                &r as *const abi::FileIndexRange as u64,
                0,
            )
        }
        .map(drop)
    }

    /// Registers `iovs` as fixed buffers 0.. (`io_uring_register_buffers`), for
    /// READ_FIXED, WRITE_FIXED and SEND_ZC with `IORING_RECVSEND_FIXED_BUF`.
    ///
    /// # Safety
    ///
    /// Every buffer the iovecs name must stay valid until
    /// [`Ring::unregister_buffers`] returns or the ring is dropped, and be
    /// accessed by the application only as [`Ring::push`]'s contract allows
    /// for the requests that use it.
    pub unsafe fn register_buffers(&mut self, iovs: &[libc::iovec]) -> Result<(), Errno> {
        let n = u32::try_from(iovs.len()).map_err(|_| Errno::EINVAL)?;
        // SAFETY: the array is read during the call; the buffers' lifetime is
        // the caller's promise (this function's contract).
        unsafe {
            self.driver
                .register(abi::IORING_REGISTER_BUFFERS, iovs.as_ptr() as u64, n)
        }
        .map(drop)
    }

    /// Drops the registered buffers (`io_uring_unregister_buffers`).
    pub fn unregister_buffers(&mut self) -> Result<(), Errno> {
        // SAFETY: no memory is named.
        unsafe { self.driver.register(abi::IORING_UNREGISTER_BUFFERS, 0, 0) }.map(drop)
    }

    /// The opcodes the engine supports (`io_uring_get_probe_ring`).
    pub fn register_probe(&mut self) -> Result<Box<abi::Probe>, Errno> {
        let mut p = Box::<abi::Probe>::default();
        // SAFETY: `p` is writable for 256 entries during the call.
        unsafe {
            self.driver.register(
                abi::IORING_REGISTER_PROBE,
                &mut *p as *mut abi::Probe as u64,
                256,
            )
        }?;
        Ok(p)
    }

    /// The driver.
    pub fn driver(&self) -> &D {
        &self.driver
    }

    /// The driver, mutably.
    pub fn driver_mut(&mut self) -> &mut D {
        &mut self.driver
    }

    /// The application ring half.
    pub fn app(&self) -> &AppRing {
        &self.app
    }

    /// The application ring half, mutably.
    pub fn app_mut(&mut self) -> &mut AppRing {
        &mut self.app
    }
}

/// Iterator over the CQEs that were ready when [`Ring::completions`] was called.
/// Advances the CQ head once, by the number yielded, on drop.
#[derive(Debug)]
pub struct Completions<'a> {
    app: &'a mut AppRing,
    remaining: u32,
    yielded: u32,
}

impl Iterator for Completions<'_> {
    type Item = Cqe;

    #[inline]
    fn next(&mut self) -> Option<Cqe> {
        if self.remaining == 0 {
            return None;
        }
        let c = self.app.peek_cqe_at(self.yielded)?;
        self.remaining -= 1;
        self.yielded += 1;
        Some(c)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for Completions<'_> {}

impl Drop for Completions<'_> {
    fn drop(&mut self) {
        if self.yielded != 0 {
            self.app.cq_advance(self.yielded);
        }
    }
}

#[cfg(test)]
mod tests;
