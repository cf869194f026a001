//! SQE builders, one per operation (tokio io-uring style).
//!
//! Required arguments go in `new`, optional ones are chainable setters, every builder
//! has `CODE` (the `IORING_OP_*` number), `user_data`, `sqe_flags` and `build`. Fields
//! are placed exactly where liburing's `io_uring_prep_*` puts them, so an SQE built here
//! is byte-identical to the one a C program would submit.
//!
//! # Which requests are safe to submit
//!
//! Building an SQE is always safe; what `build` returns says whether submitting it is:
//!
//! * Requests that name no application memory build a [`SafeSqe`], which
//!   [`Ring::push_safe`](super::Ring::push_safe) submits from safe code: NOP, SOCKET,
//!   LISTEN, ACCEPT without a peer address ([`AcceptNoAddr`], [`AcceptMulti`]),
//!   receives into provided buffers ([`RecvSelect`], [`RecvMulti`]), CLOSE, SHUTDOWN,
//!   POLL_ADD without a ready word, POLL_REMOVE, ASYNC_CANCEL, REMOVE_BUFFERS and
//!   TIMEOUT_REMOVE. Their address fields hold only `user_data` values or zero. A
//!   receive into provided buffers writes to memory the application handed over
//!   earlier through an `unsafe` call (`BufRing::add` or a PROVIDE_BUFFERS SQE), whose
//!   contract covers it.
//! * Requests that name memory build a plain [`Sqe`], which only the `unsafe`
//!   [`Ring::push`](super::Ring::push) accepts: BIND and CONNECT (a `sockaddr`), ACCEPT
//!   with an address ([`Accept`]), RECV and SEND with a buffer, POLL_ADD with a ready
//!   word ([`PollAddWord`]), PROVIDE_BUFFERS, and TIMEOUT, LINK_TIMEOUT and the
//!   timeout update (a timespec). The caller promises the memory outlives its use; see
//!   `Ring::push`.

use crate::abi::{self, Sqe};

pub use super::Timespec;

/// An SQE that names no application memory, so safe code may submit it
/// ([`Ring::push_safe`](super::Ring::push_safe)).
///
/// Only the builders of this module make one (the field is private and there is no
/// other constructor), and only for requests whose SQE carries no address: its address
/// fields hold zero or `user_data` values, which the engine never dereferences. It
/// reads as an [`Sqe`] (`Deref`, `AsRef`) and converts into one, but cannot be changed:
/// a changed SQE might name memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an SQE does nothing until pushed"]
pub struct SafeSqe(Sqe);

impl SafeSqe {
    /// The SQE.
    pub fn sqe(&self) -> &Sqe {
        &self.0
    }

    /// The SQE, by value (for the `unsafe` path or to inspect or change it; a changed
    /// copy is an ordinary `Sqe`).
    pub fn into_sqe(self) -> Sqe {
        self.0
    }

    /// This SQE with another `user_data` (the engine never dereferences it, so the copy
    /// names no memory either). Used by the safe layer ([`crate::io`]) to stamp its
    /// completion tokens.
    pub fn with_user_data(mut self, user_data: u64) -> SafeSqe {
        self.0.user_data = user_data;
        self
    }
}

impl core::ops::Deref for SafeSqe {
    type Target = Sqe;

    fn deref(&self) -> &Sqe {
        &self.0
    }
}

impl AsRef<Sqe> for SafeSqe {
    fn as_ref(&self) -> &Sqe {
        &self.0
    }
}

impl From<SafeSqe> for Sqe {
    fn from(s: SafeSqe) -> Sqe {
        s.0
    }
}

/// A pointer as an SQE address. The provenance is exposed so the engine can turn the
/// integer back into a pointer (the `ringline` crate's `usermem` module).
fn addr_of<T>(p: *const T) -> u64 {
    p.expose_provenance() as u64
}

macro_rules! builder {
    // A request that names no memory: `build` returns a `SafeSqe`.
    ($(#[$doc:meta])* $name:ident = $code:path) => {
        builder!(@common $(#[$doc])* $name = $code);

        impl $name {
            /// The SQE; it names no application memory, so safe code may submit it
            /// ([`Ring::push_safe`](super::Ring::push_safe)).
            pub fn build(self) -> SafeSqe {
                SafeSqe(self.sqe)
            }
        }
    };
    // A request that names memory: `build` returns a plain `Sqe`, for the
    // unsafe `Ring::push`.
    ($(#[$doc:meta])* $name:ident = $code:path, names_memory) => {
        builder!(@common $(#[$doc])* $name = $code);

        impl $name {
            /// The SQE. It names application memory: submit it with the `unsafe`
            /// [`Ring::push`](super::Ring::push), whose contract says how long that
            /// memory must stay valid.
            pub fn build(self) -> Sqe {
                self.sqe
            }
        }
    };
    (@common $(#[$doc:meta])* $name:ident = $code:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[must_use = "an SQE builder does nothing until built and pushed"]
        pub struct $name {
            sqe: Sqe,
        }

        impl $name {
            /// The `IORING_OP_*` opcode of this operation.
            pub const CODE: u8 = $code;

            fn base(fd: i32) -> Self {
                $name {
                    sqe: Sqe {
                        opcode: Self::CODE,
                        fd,
                        ..Sqe::default()
                    },
                }
            }

            /// Sets the `user_data` echoed in every CQE of the request.
            pub fn user_data(mut self, user_data: u64) -> Self {
                self.sqe.user_data = user_data;
                self
            }

            /// Adds `IOSQE_*` flags (`IOSQE_IO_LINK`, `IOSQE_CQE_SKIP_SUCCESS`, ...),
            /// OR-ed with any the builder set itself. No flag makes the engine
            /// dereference a field: `IOSQE_BUFFER_SELECT` takes a provided buffer
            /// (memory handed over under `BufRing::add`'s or PROVIDE_BUFFERS'
            /// contract), `IOSQE_FIXED_FILE` is refused.
            pub fn sqe_flags(mut self, flags: u8) -> Self {
                self.sqe.flags |= flags;
                self
            }
        }
    };
}

builder! {
    /// No operation (`IORING_OP_NOP`, `io_uring_prep_nop`): completes with `res` 0.
    Nop = abi::IORING_OP_NOP
}

impl Nop {
    /// A NOP (fd -1, as liburing).
    pub fn new() -> Self {
        Self::base(-1)
    }

    /// Complete with `res` instead of 0 (`IORING_NOP_INJECT_RESULT`, res in `len`).
    pub fn inject_result(mut self, res: i32) -> Self {
        self.sqe.op_flags |= abi::IORING_NOP_INJECT_RESULT;
        self.sqe.len = res as u32;
        self
    }
}

impl Default for Nop {
    fn default() -> Self {
        Self::new()
    }
}

builder! {
    /// Create a socket (`IORING_OP_SOCKET`, `io_uring_prep_socket`): fd = domain,
    /// off = type, len = protocol. `res` is the new socket.
    Socket = abi::IORING_OP_SOCKET
}

impl Socket {
    /// `socket(domain, socket_type, protocol)`.
    pub fn new(domain: i32, socket_type: i32, protocol: i32) -> Self {
        let mut b = Self::base(domain);
        b.sqe.off = socket_type as u64;
        b.sqe.len = protocol as u32;
        b
    }
}

builder! {
    /// Bind a socket (`IORING_OP_BIND`, `io_uring_prep_bind`): addr = sockaddr,
    /// off = addrlen.
    Bind = abi::IORING_OP_BIND,
    names_memory
}

impl Bind {
    /// `bind(fd, addr, addrlen)`; `addr` is read at submission.
    pub fn new(fd: i32, addr: *const libc::sockaddr, addrlen: libc::socklen_t) -> Self {
        let mut b = Self::base(fd);
        b.sqe.addr = addr_of(addr);
        b.sqe.off = u64::from(addrlen);
        b
    }
}

builder! {
    /// Listen on a socket (`IORING_OP_LISTEN`, `io_uring_prep_listen`): len = backlog.
    Listen = abi::IORING_OP_LISTEN
}

impl Listen {
    /// `listen(fd, backlog)`.
    pub fn new(fd: i32, backlog: i32) -> Self {
        let mut b = Self::base(fd);
        b.sqe.len = backlog as u32;
        b
    }
}

builder! {
    /// Accept a connection (`IORING_OP_ACCEPT`, `io_uring_prep_accept`): addr =
    /// `sockaddr *`, off = `socklen_t *`, accept_flags in `op_flags`. `res` is the new
    /// socket.
    Accept = abi::IORING_OP_ACCEPT,
    names_memory
}

impl Accept {
    /// `accept4(fd, addr, addrlen, 0)`: the peer address is written to `*addr` (up to
    /// `*addrlen` bytes) and its length to `*addrlen` when the connection is accepted.
    /// Without an address, [`AcceptNoAddr`] builds the same SQE safely.
    pub fn new(fd: i32, addr: *mut libc::sockaddr, addrlen: *mut libc::socklen_t) -> Self {
        let mut b = Self::base(fd);
        b.sqe.addr = addr_of(addr);
        b.sqe.off = addr_of(addrlen);
        b
    }

    /// Multishot (`ioprio |= IORING_ACCEPT_MULTISHOT`,
    /// `io_uring_prep_multishot_accept`): one CQE with `F_MORE` per connection.
    pub fn multishot(mut self) -> Self {
        self.sqe.ioprio |= abi::IORING_ACCEPT_MULTISHOT;
        self
    }

    /// accept4 flags (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`).
    pub fn flags(mut self, flags: i32) -> Self {
        self.sqe.op_flags = flags as u32;
        self
    }
}

builder! {
    /// Accept a connection without its peer address (`IORING_OP_ACCEPT`,
    /// `io_uring_prep_accept(sqe, fd, NULL, NULL, 0)`): names no memory. `res` is the
    /// new socket.
    AcceptNoAddr = abi::IORING_OP_ACCEPT
}

impl AcceptNoAddr {
    /// `accept4(fd, NULL, NULL, 0)`.
    pub fn new(fd: i32) -> Self {
        Self::base(fd)
    }

    /// Multishot (`ioprio |= IORING_ACCEPT_MULTISHOT`): one CQE with `F_MORE` per
    /// connection, as [`AcceptMulti`].
    pub fn multishot(mut self) -> Self {
        self.sqe.ioprio |= abi::IORING_ACCEPT_MULTISHOT;
        self
    }

    /// accept4 flags (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`).
    pub fn flags(mut self, flags: i32) -> Self {
        self.sqe.op_flags = flags as u32;
        self
    }
}

builder! {
    /// Multishot accept without peer address (`IORING_OP_ACCEPT` with
    /// `IORING_ACCEPT_MULTISHOT`, `io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, 0)`).
    AcceptMulti = abi::IORING_OP_ACCEPT
}

impl AcceptMulti {
    /// Multishot accept on listener `fd`.
    pub fn new(fd: i32) -> Self {
        let mut b = Self::base(fd);
        b.sqe.ioprio = abi::IORING_ACCEPT_MULTISHOT;
        b
    }

    /// accept4 flags (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`).
    pub fn flags(mut self, flags: i32) -> Self {
        self.sqe.op_flags = flags as u32;
        self
    }
}

builder! {
    /// Connect a socket (`IORING_OP_CONNECT`, `io_uring_prep_connect`): addr =
    /// sockaddr, off = addrlen.
    Connect = abi::IORING_OP_CONNECT,
    names_memory
}

impl Connect {
    /// `connect(fd, addr, addrlen)`; `addr` is read at submission.
    pub fn new(fd: i32, addr: *const libc::sockaddr, addrlen: libc::socklen_t) -> Self {
        let mut b = Self::base(fd);
        b.sqe.addr = addr_of(addr);
        b.sqe.off = u64::from(addrlen);
        b
    }
}

builder! {
    /// Receive (`IORING_OP_RECV`, `io_uring_prep_recv`): addr/len = buffer, msg_flags
    /// in `op_flags`; or from a provided-buffer group with [`Recv::buf_group`].
    Recv = abi::IORING_OP_RECV,
    names_memory
}

impl Recv {
    /// `recv(fd, buf, len, 0)`.
    pub fn new(fd: i32, buf: *mut u8, len: u32) -> Self {
        let mut b = Self::base(fd);
        b.sqe.addr = addr_of(buf);
        b.sqe.len = len;
        b
    }

    /// recv flags (`MSG_WAITALL`, `MSG_DONTWAIT`, ...).
    pub fn flags(mut self, msg_flags: i32) -> Self {
        self.sqe.op_flags = msg_flags as u32;
        self
    }

    /// Take the buffer from provided-buffer group `bgid` instead (`IOSQE_BUFFER_SELECT`,
    /// addr 0, `buf_group = bgid`; `len` caps the bytes received): the buffer given to
    /// [`Recv::new`] is dropped from the SQE, which then names no memory.
    pub fn buf_group(self, bgid: u16) -> RecvSelect {
        let mut b = RecvSelect { sqe: self.sqe };
        b.sqe.addr = 0;
        b.sqe.flags |= abi::IOSQE_BUFFER_SELECT;
        b.sqe.buf_index = bgid;
        b
    }
}

builder! {
    /// Receive into a buffer the engine takes from a provided-buffer group
    /// (`IORING_OP_RECV` with `IOSQE_BUFFER_SELECT`, `io_uring_prep_recv(sqe, fd, NULL,
    /// len, 0)` + `buf_group`): addr 0, so the SQE names no memory; the CQE carries
    /// `IORING_CQE_F_BUFFER` and the buffer id. Also made by [`Recv::buf_group`].
    RecvSelect = abi::IORING_OP_RECV
}

impl RecvSelect {
    /// One receive on `fd` of at most `len` bytes (0: the buffer's size) into a
    /// buffer from group `bgid`.
    pub fn new(fd: i32, bgid: u16, len: u32) -> Self {
        let mut b = Self::base(fd);
        b.sqe.len = len;
        b.sqe.flags = abi::IOSQE_BUFFER_SELECT;
        b.sqe.buf_index = bgid;
        b
    }

    /// recv flags (`MSG_WAITALL`, `MSG_DONTWAIT`, ...).
    pub fn flags(mut self, msg_flags: i32) -> Self {
        self.sqe.op_flags = msg_flags as u32;
        self
    }
}

builder! {
    /// Multishot receive into provided buffers (`IORING_OP_RECV` with
    /// `IORING_RECV_MULTISHOT` and `IOSQE_BUFFER_SELECT`, `io_uring_prep_recv_multishot`).
    RecvMulti = abi::IORING_OP_RECV
}

impl RecvMulti {
    /// Multishot receive on `fd` from group `buf_group` (addr 0, len 0).
    pub fn new(fd: i32, buf_group: u16) -> Self {
        let mut b = Self::base(fd);
        b.sqe.ioprio = abi::IORING_RECV_MULTISHOT;
        b.sqe.flags = abi::IOSQE_BUFFER_SELECT;
        b.sqe.buf_index = buf_group;
        b
    }

    /// recv flags.
    pub fn flags(mut self, msg_flags: i32) -> Self {
        self.sqe.op_flags = msg_flags as u32;
        self
    }
}

builder! {
    /// Send (`IORING_OP_SEND`, `io_uring_prep_send`): addr/len = buffer, msg_flags in
    /// `op_flags`.
    Send = abi::IORING_OP_SEND,
    names_memory
}

impl Send {
    /// `send(fd, buf, len, 0)`.
    pub fn new(fd: i32, buf: *const u8, len: u32) -> Self {
        let mut b = Self::base(fd);
        b.sqe.addr = addr_of(buf);
        b.sqe.len = len;
        b
    }

    /// send flags (`MSG_WAITALL`, `MSG_MORE`, ...).
    pub fn flags(mut self, msg_flags: i32) -> Self {
        self.sqe.op_flags = msg_flags as u32;
        self
    }
}

builder! {
    /// Close a socket (`IORING_OP_CLOSE`, `io_uring_prep_close`).
    Close = abi::IORING_OP_CLOSE
}

impl Close {
    /// `close(fd)`.
    pub fn new(fd: i32) -> Self {
        Self::base(fd)
    }
}

builder! {
    /// Shut down a connection (`IORING_OP_SHUTDOWN`, `io_uring_prep_shutdown`):
    /// len = how.
    Shutdown = abi::IORING_OP_SHUTDOWN
}

impl Shutdown {
    /// `shutdown(fd, how)` (`SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`).
    pub fn new(fd: i32, how: i32) -> Self {
        let mut b = Self::base(fd);
        b.sqe.len = how as u32;
        b
    }
}

builder! {
    /// Poll for readiness (`IORING_OP_POLL_ADD`, `io_uring_prep_poll_add`):
    /// poll32_events in `op_flags`, flags in `len`.
    PollAdd = abi::IORING_OP_POLL_ADD
}

impl PollAdd {
    /// One-shot poll of `fd` for `events` (`POLLIN`, `POLLOUT`, ...).
    pub fn new(fd: i32, events: u32) -> Self {
        let mut b = Self::base(fd);
        b.sqe.op_flags = events;
        b
    }

    /// Multishot (`len |= IORING_POLL_ADD_MULTI`, `io_uring_prep_poll_multishot`): one
    /// CQE with `F_MORE` per wake-up.
    pub fn multi(mut self) -> Self {
        self.sqe.len |= abi::IORING_POLL_ADD_MULTI;
        self
    }

    /// ringline's coalesced persistent poll (`len |= RINGLINE_POLL_COALESCED`): at most
    /// one outstanding CQE per socket (uepoll semantics, see the stack's docs). Sets the
    /// flag bit only; the engine also needs `IORING_POLL_ADD_MULTI` and the ready word
    /// in `addr`, which [`PollAdd::ready_word`] sets in one go (without the word the
    /// engine answers `-EFAULT`).
    pub fn coalesced(mut self) -> Self {
        self.sqe.len |= abi::RINGLINE_POLL_COALESCED;
        self
    }

    /// Coalesced persistent poll with its ready word: `addr = word`,
    /// `len |= IORING_POLL_ADD_MULTI | RINGLINE_POLL_COALESCED`. The engine `fetch_or`s
    /// the ready events into `*word` and posts a CQE only when the word was 0; the app
    /// handles the event and clears the word with [`super::take_ready`]. The SQE now
    /// names the word, which must stay valid until the poll's final CQE (the contract
    /// of [`super::Ring::push`]).
    pub fn ready_word(self, word: *const core::sync::atomic::AtomicU32) -> PollAddWord {
        let mut b = PollAddWord { sqe: self.sqe };
        b.sqe.addr = addr_of(word);
        b.sqe.len |= abi::IORING_POLL_ADD_MULTI | abi::RINGLINE_POLL_COALESCED;
        b
    }
}

builder! {
    /// ringline's coalesced persistent poll with its ready word (`IORING_OP_POLL_ADD`,
    /// `addr` = the word, `len = IORING_POLL_ADD_MULTI | RINGLINE_POLL_COALESCED`; see
    /// [`PollAdd::ready_word`], which also makes one). Names the word.
    PollAddWord = abi::IORING_OP_POLL_ADD,
    names_memory
}

impl PollAddWord {
    /// Coalesced persistent poll of `fd` for `events`, accumulating them in `*word`.
    pub fn new(fd: i32, events: u32, word: *const core::sync::atomic::AtomicU32) -> Self {
        let mut b = Self::base(fd);
        b.sqe.op_flags = events;
        b.sqe.addr = addr_of(word);
        b.sqe.len = abi::IORING_POLL_ADD_MULTI | abi::RINGLINE_POLL_COALESCED;
        b
    }
}

builder! {
    /// Remove or update a poll (`IORING_OP_POLL_REMOVE`, `io_uring_prep_poll_remove` /
    /// `io_uring_prep_poll_update`): addr = target user_data, len = update flags,
    /// `op_flags` = new events, off = new user_data.
    PollRemove = abi::IORING_OP_POLL_REMOVE
}

impl PollRemove {
    /// Remove the poll whose `user_data` is `target` (fd -1, as liburing).
    pub fn new(target: u64) -> Self {
        let mut b = Self::base(-1);
        b.sqe.addr = target;
        b
    }

    /// Update instead of removing: new event mask (`IORING_POLL_UPDATE_EVENTS`).
    pub fn update_events(mut self, events: u32) -> Self {
        self.sqe.len |= abi::IORING_POLL_UPDATE_EVENTS;
        self.sqe.op_flags = events;
        self
    }

    /// Update instead of removing: new user_data (`IORING_POLL_UPDATE_USER_DATA`).
    pub fn update_user_data(mut self, user_data: u64) -> Self {
        self.sqe.len |= abi::IORING_POLL_UPDATE_USER_DATA;
        self.sqe.off = user_data;
        self
    }
}

builder! {
    /// Cancel requests by user_data (`IORING_OP_ASYNC_CANCEL`, `io_uring_prep_cancel64`):
    /// addr = user_data, cancel flags in `op_flags`.
    AsyncCancel = abi::IORING_OP_ASYNC_CANCEL
}

impl AsyncCancel {
    /// Cancel the request with `user_data` (fd -1, as liburing).
    pub fn new(user_data: u64) -> Self {
        let mut b = Self::base(-1);
        b.sqe.addr = user_data;
        b
    }

    /// Cancel every match (`IORING_ASYNC_CANCEL_ALL`); `res` is the count.
    pub fn all(mut self) -> Self {
        self.sqe.op_flags |= abi::IORING_ASYNC_CANCEL_ALL;
        self
    }

    /// Match any request (`IORING_ASYNC_CANCEL_ANY`).
    pub fn any(mut self) -> Self {
        self.sqe.op_flags |= abi::IORING_ASYNC_CANCEL_ANY;
        self
    }
}

builder! {
    /// Cancel requests by socket (`IORING_OP_ASYNC_CANCEL` with
    /// `IORING_ASYNC_CANCEL_FD`, `io_uring_prep_cancel_fd`).
    AsyncCancelFd = abi::IORING_OP_ASYNC_CANCEL
}

impl AsyncCancelFd {
    /// Cancel a request on `fd`.
    pub fn new(fd: i32) -> Self {
        let mut b = Self::base(fd);
        b.sqe.op_flags = abi::IORING_ASYNC_CANCEL_FD;
        b
    }

    /// Cancel every request on `fd` (`IORING_ASYNC_CANCEL_ALL`).
    pub fn all(mut self) -> Self {
        self.sqe.op_flags |= abi::IORING_ASYNC_CANCEL_ALL;
        self
    }
}

builder! {
    /// Provide legacy buffers (`IORING_OP_PROVIDE_BUFFERS`,
    /// `io_uring_prep_provide_buffers`): fd = count, addr = base, len = size of each,
    /// off = first bid, buf_group = bgid.
    ProvideBuffers = abi::IORING_OP_PROVIDE_BUFFERS,
    names_memory
}

impl ProvideBuffers {
    /// `nbufs` buffers of `len` bytes at `addr`, ids `first_bid..`, into group `bgid`.
    pub fn new(addr: *mut u8, len: u32, nbufs: u32, bgid: u16, first_bid: u16) -> Self {
        let mut b = Self::base(nbufs as i32);
        b.sqe.addr = addr_of(addr);
        b.sqe.len = len;
        b.sqe.off = u64::from(first_bid);
        b.sqe.buf_index = bgid;
        b
    }
}

builder! {
    /// Remove legacy buffers (`IORING_OP_REMOVE_BUFFERS`, `io_uring_prep_remove_buffers`):
    /// fd = count, buf_group = bgid.
    RemoveBuffers = abi::IORING_OP_REMOVE_BUFFERS
}

impl RemoveBuffers {
    /// Remove up to `nbufs` buffers from group `bgid`.
    pub fn new(nbufs: u32, bgid: u16) -> Self {
        let mut b = Self::base(nbufs as i32);
        b.sqe.buf_index = bgid;
        b
    }
}

builder! {
    /// A timeout (`IORING_OP_TIMEOUT`, `io_uring_prep_timeout`): addr = timespec,
    /// len 1, off = completion count, timeout flags in `op_flags`.
    Timeout = abi::IORING_OP_TIMEOUT,
    names_memory
}

impl Timeout {
    /// Fires after `*ts` (read at submission).
    pub fn new(ts: *const Timespec) -> Self {
        let mut b = Self::base(-1);
        b.sqe.addr = addr_of(ts);
        b.sqe.len = 1;
        b
    }

    /// Also complete after `count` other completions (0: pure timer).
    pub fn count(mut self, count: u64) -> Self {
        self.sqe.off = count;
        self
    }

    /// `IORING_TIMEOUT_*` flags.
    pub fn flags(mut self, flags: u32) -> Self {
        self.sqe.op_flags = flags;
        self
    }
}

builder! {
    /// A timeout on the previous linked SQE (`IORING_OP_LINK_TIMEOUT`,
    /// `io_uring_prep_link_timeout`): addr = timespec, len 1.
    LinkTimeout = abi::IORING_OP_LINK_TIMEOUT,
    names_memory
}

impl LinkTimeout {
    /// Cancels the linked request after `*ts` (read at submission).
    pub fn new(ts: *const Timespec) -> Self {
        let mut b = Self::base(-1);
        b.sqe.addr = addr_of(ts);
        b.sqe.len = 1;
        b
    }

    /// `IORING_TIMEOUT_*` flags.
    pub fn flags(mut self, flags: u32) -> Self {
        self.sqe.op_flags = flags;
        self
    }
}

builder! {
    /// Removes a pending TIMEOUT (`IORING_OP_TIMEOUT_REMOVE`,
    /// `io_uring_prep_timeout_remove`): addr = the timeout's user_data.
    TimeoutRemove = abi::IORING_OP_TIMEOUT_REMOVE
}

impl TimeoutRemove {
    /// Removes the timeout submitted with `target` as its user_data.
    pub fn new(target: u64) -> Self {
        let mut b = Self::base(-1);
        b.sqe.addr = target;
        b
    }
}

builder! {
    /// Re-times a pending TIMEOUT or an armed LINK_TIMEOUT
    /// (`IORING_OP_TIMEOUT_REMOVE` with `IORING_TIMEOUT_UPDATE`,
    /// `io_uring_prep_timeout_update` / `_link_timeout_update`): addr = the
    /// timeout's user_data, addr2 (`off`) = the new timespec.
    TimeoutUpdate = abi::IORING_OP_TIMEOUT_REMOVE,
    names_memory
}

impl TimeoutUpdate {
    /// Gives the TIMEOUT submitted with `target` as its user_data the time
    /// `*ts` (read at submission), relative to now unless [`Self::abs`].
    pub fn new(target: u64, ts: *const Timespec) -> Self {
        let mut b = Self::base(-1);
        b.sqe.addr = target;
        b.sqe.off = addr_of(ts);
        b.sqe.op_flags = abi::IORING_TIMEOUT_UPDATE;
        b
    }

    /// `*ts` is an absolute time on the timeout's clock (`IORING_TIMEOUT_ABS`).
    pub fn abs(mut self) -> Self {
        self.sqe.op_flags |= abi::IORING_TIMEOUT_ABS;
        self
    }

    /// The target is a LINK_TIMEOUT (`IORING_LINK_TIMEOUT_UPDATE`).
    pub fn link(mut self) -> Self {
        self.sqe.op_flags =
            (self.sqe.op_flags & !abi::IORING_TIMEOUT_UPDATE) | abi::IORING_LINK_TIMEOUT_UPDATE;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::*;

    /// The SQE's raw bytes, as the engine (or the kernel) sees them.
    fn bytes(sqe: &Sqe) -> [u8; 64] {
        // SAFETY: Sqe is repr(C), 64 bytes, with no padding (asserted in abi), so every
        // byte is initialized.
        unsafe { core::mem::transmute_copy(sqe) }
    }
    fn u8_at(b: &[u8; 64], off: usize) -> u8 {
        b[off]
    }
    fn u16_at(b: &[u8; 64], off: usize) -> u16 {
        u16::from_ne_bytes(b[off..off + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8; 64], off: usize) -> u32 {
        u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8; 64], off: usize) -> u64 {
        u64::from_ne_bytes(b[off..off + 8].try_into().unwrap())
    }

    // Offsets of struct io_uring_sqe.
    const OPCODE: usize = 0;
    const FLAGS: usize = 1;
    const IOPRIO: usize = 2;
    const FD: usize = 4;
    const OFF: usize = 8;
    const ADDR: usize = 16;
    const LEN: usize = 24;
    const OP_FLAGS: usize = 28;
    const USER_DATA: usize = 32;
    const BUF_INDEX: usize = 40;

    #[test]
    fn common_fields() {
        let b = bytes(
            &Nop::new()
                .user_data(0x1122_3344_5566_7788)
                .sqe_flags(IOSQE_IO_LINK)
                .build(),
        );
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_NOP);
        assert_eq!(u8_at(&b, FLAGS), IOSQE_IO_LINK);
        assert_eq!(u32_at(&b, FD) as i32, -1);
        assert_eq!(u64_at(&b, USER_DATA), 0x1122_3344_5566_7788);
        assert!(b[40..].iter().all(|&x| x == 0));
        assert_eq!(Nop::CODE, 0);
        assert_eq!(Nop::default(), Nop::new());
    }

    #[test]
    fn safe_sqe_reads_as_its_sqe() {
        let safe = Close::new(3).user_data(4).build();
        let sqe: Sqe = safe.into();
        assert_eq!(*safe, sqe);
        assert_eq!(safe.sqe(), &sqe);
        assert_eq!(safe.as_ref(), &sqe);
        assert_eq!(safe.into_sqe(), sqe);
        assert_eq!((sqe.opcode, sqe.fd, sqe.user_data), (IORING_OP_CLOSE, 3, 4));
    }

    #[test]
    fn nop_inject_result() {
        let b = bytes(&Nop::new().inject_result(-105).build());
        assert_eq!(u32_at(&b, OP_FLAGS), IORING_NOP_INJECT_RESULT);
        assert_eq!(u32_at(&b, LEN) as i32, -105);
    }

    #[test]
    fn socket_bind_listen_connect() {
        let b = bytes(&Socket::new(libc::AF_INET, libc::SOCK_STREAM, 6).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_SOCKET);
        assert_eq!(u32_at(&b, FD) as i32, libc::AF_INET);
        assert_eq!(u64_at(&b, OFF), libc::SOCK_STREAM as u64);
        assert_eq!(u32_at(&b, LEN), 6);

        let sa = super::super::sockaddr_in([127, 0, 0, 1], 8080);
        let p = (&raw const sa).cast::<libc::sockaddr>();
        let len = core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        for (sqe, code) in [
            (Bind::new(3, p, len).build(), IORING_OP_BIND),
            (Connect::new(3, p, len).build(), IORING_OP_CONNECT),
        ] {
            let b = bytes(&sqe);
            assert_eq!(u8_at(&b, OPCODE), code);
            assert_eq!(u32_at(&b, FD), 3);
            assert_eq!(u64_at(&b, ADDR), p as usize as u64);
            assert_eq!(u64_at(&b, OFF), 16);
            assert_eq!(u32_at(&b, LEN), 0);
        }

        let b = bytes(&Listen::new(5, 128).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_LISTEN);
        assert_eq!((u32_at(&b, FD), u32_at(&b, LEN)), (5, 128));
    }

    #[test]
    fn accept_variants() {
        let mut sa: libc::sockaddr_in = zero_sockaddr();
        let mut len: libc::socklen_t = 16;
        let (pa, pl) = ((&raw mut sa).cast::<libc::sockaddr>(), &raw mut len);
        let b = bytes(&Accept::new(4, pa, pl).flags(libc::SOCK_NONBLOCK).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_ACCEPT);
        assert_eq!(u32_at(&b, FD), 4);
        assert_eq!(u64_at(&b, ADDR), pa as usize as u64);
        assert_eq!(u64_at(&b, OFF), pl as usize as u64);
        assert_eq!(u32_at(&b, OP_FLAGS), libc::SOCK_NONBLOCK as u32);
        assert_eq!(u16_at(&b, IOPRIO), 0);

        let b = bytes(&Accept::new(4, pa, pl).multishot().build());
        assert_eq!(u16_at(&b, IOPRIO), IORING_ACCEPT_MULTISHOT);

        let b = bytes(&AcceptMulti::new(4).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_ACCEPT);
        assert_eq!(u16_at(&b, IOPRIO), IORING_ACCEPT_MULTISHOT);
        assert_eq!((u64_at(&b, ADDR), u64_at(&b, OFF)), (0, 0));

        // Without an address: the same bytes as Accept with null pointers.
        let null = (core::ptr::null_mut(), core::ptr::null_mut());
        assert_eq!(
            AcceptNoAddr::new(4)
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .into_sqe(),
            Accept::new(4, null.0, null.1)
                .flags(libc::SOCK_CLOEXEC)
                .build()
        );
        assert_eq!(
            AcceptNoAddr::new(4).multishot().user_data(9).build(),
            AcceptMulti::new(4).user_data(9).build()
        );
    }

    fn zero_sockaddr() -> libc::sockaddr_in {
        super::super::sockaddr_in([0; 4], 0)
    }

    #[test]
    fn recv_send() {
        let mut buf = [0u8; 64];
        let p = buf.as_mut_ptr();
        let b = bytes(&Recv::new(7, p, 64).flags(libc::MSG_WAITALL).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_RECV);
        assert_eq!(u32_at(&b, FD), 7);
        assert_eq!(u64_at(&b, ADDR), p as usize as u64);
        assert_eq!(u32_at(&b, LEN), 64);
        assert_eq!(u32_at(&b, OP_FLAGS), libc::MSG_WAITALL as u32);
        assert_eq!(u8_at(&b, FLAGS), 0);

        let b = bytes(&Recv::new(7, p, 64).buf_group(9).build());
        assert_eq!(u64_at(&b, ADDR), 0);
        assert_eq!(u8_at(&b, FLAGS), IOSQE_BUFFER_SELECT);
        assert_eq!(u16_at(&b, BUF_INDEX), 9);
        assert_eq!(u32_at(&b, LEN), 64);

        // RecvSelect::new is Recv::buf_group without the buffer.
        assert_eq!(
            RecvSelect::new(7, 9, 64).flags(libc::MSG_WAITALL).build(),
            Recv::new(7, p, 64)
                .flags(libc::MSG_WAITALL)
                .buf_group(9)
                .build()
        );

        let b = bytes(&RecvMulti::new(7, 3).sqe_flags(IOSQE_IO_LINK).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_RECV);
        assert_eq!(u16_at(&b, IOPRIO), IORING_RECV_MULTISHOT);
        assert_eq!(u8_at(&b, FLAGS), IOSQE_BUFFER_SELECT | IOSQE_IO_LINK);
        assert_eq!(u16_at(&b, BUF_INDEX), 3);
        assert_eq!((u64_at(&b, ADDR), u32_at(&b, LEN)), (0, 0));

        let b = bytes(&Send::new(8, p, 10).flags(libc::MSG_NOSIGNAL).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_SEND);
        assert_eq!(u32_at(&b, FD), 8);
        assert_eq!(u64_at(&b, ADDR), p as usize as u64);
        assert_eq!(u32_at(&b, LEN), 10);
        assert_eq!(u32_at(&b, OP_FLAGS), libc::MSG_NOSIGNAL as u32);
    }

    #[test]
    fn close_shutdown() {
        let b = bytes(&Close::new(11).build());
        assert_eq!((u8_at(&b, OPCODE), u32_at(&b, FD)), (IORING_OP_CLOSE, 11));
        let b = bytes(&Shutdown::new(11, libc::SHUT_WR).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_SHUTDOWN);
        assert_eq!(u32_at(&b, LEN), libc::SHUT_WR as u32);
        assert_eq!((u64_at(&b, ADDR), u64_at(&b, OFF)), (0, 0));
    }

    #[test]
    fn poll_add_remove() {
        let ev = (libc::POLLIN | libc::POLLRDHUP) as u32;
        let b = bytes(&PollAdd::new(5, ev).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_POLL_ADD);
        assert_eq!(u32_at(&b, OP_FLAGS), ev);
        assert_eq!(u32_at(&b, LEN), 0);
        let b = bytes(&PollAdd::new(5, ev).multi().build());
        assert_eq!(u32_at(&b, LEN), IORING_POLL_ADD_MULTI);
        let b = bytes(&PollAdd::new(5, ev).multi().coalesced().build());
        assert_eq!(
            u32_at(&b, LEN),
            IORING_POLL_ADD_MULTI | RINGLINE_POLL_COALESCED
        );

        let word = core::sync::atomic::AtomicU32::new(0);
        let b = bytes(&PollAdd::new(5, ev).ready_word(&word).build());
        assert_eq!(u64_at(&b, ADDR), (&raw const word) as usize as u64);
        assert_eq!(
            u32_at(&b, LEN),
            IORING_POLL_ADD_MULTI | RINGLINE_POLL_COALESCED
        );
        assert_eq!(u32_at(&b, OP_FLAGS), ev);
        assert_eq!(
            PollAddWord::new(5, ev, &word).user_data(3).build(),
            PollAdd::new(5, ev).user_data(3).ready_word(&word).build()
        );

        let b = bytes(&PollRemove::new(77).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_POLL_REMOVE);
        assert_eq!(u32_at(&b, FD) as i32, -1);
        assert_eq!(u64_at(&b, ADDR), 77);
        assert_eq!(u32_at(&b, LEN), 0);
        let b = bytes(
            &PollRemove::new(77)
                .update_events(libc::POLLOUT as u32)
                .update_user_data(78)
                .build(),
        );
        assert_eq!(
            u32_at(&b, LEN),
            IORING_POLL_UPDATE_EVENTS | IORING_POLL_UPDATE_USER_DATA
        );
        assert_eq!(u32_at(&b, OP_FLAGS), libc::POLLOUT as u32);
        assert_eq!(u64_at(&b, OFF), 78);
    }

    #[test]
    fn cancel() {
        let b = bytes(&AsyncCancel::new(42).all().build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_ASYNC_CANCEL);
        assert_eq!(u32_at(&b, FD) as i32, -1);
        assert_eq!(u64_at(&b, ADDR), 42);
        assert_eq!(u32_at(&b, OP_FLAGS), IORING_ASYNC_CANCEL_ALL);
        let b = bytes(&AsyncCancel::new(42).any().build());
        assert_eq!(u32_at(&b, OP_FLAGS), IORING_ASYNC_CANCEL_ANY);

        let b = bytes(&AsyncCancelFd::new(9).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_ASYNC_CANCEL);
        assert_eq!(u32_at(&b, FD), 9);
        assert_eq!(u32_at(&b, OP_FLAGS), IORING_ASYNC_CANCEL_FD);
        let b = bytes(&AsyncCancelFd::new(9).all().build());
        assert_eq!(
            u32_at(&b, OP_FLAGS),
            IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL
        );
    }

    #[test]
    fn provide_remove_buffers() {
        let mut pool = vec![0u8; 4096];
        let p = pool.as_mut_ptr();
        let b = bytes(&ProvideBuffers::new(p, 512, 8, 2, 100).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_PROVIDE_BUFFERS);
        assert_eq!(u32_at(&b, FD), 8);
        assert_eq!(u64_at(&b, ADDR), p as usize as u64);
        assert_eq!(u32_at(&b, LEN), 512);
        assert_eq!(u64_at(&b, OFF), 100);
        assert_eq!(u16_at(&b, BUF_INDEX), 2);

        let b = bytes(&RemoveBuffers::new(8, 2).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_REMOVE_BUFFERS);
        assert_eq!(u32_at(&b, FD), 8);
        assert_eq!(u16_at(&b, BUF_INDEX), 2);
        assert_eq!((u64_at(&b, ADDR), u32_at(&b, LEN)), (0, 0));
    }

    #[test]
    fn timeouts() {
        let ts = Timespec {
            tv_sec: 1,
            tv_nsec: 5,
        };
        let p = &raw const ts;
        let b = bytes(&Timeout::new(p).count(3).flags(IORING_TIMEOUT_ABS).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_TIMEOUT);
        assert_eq!(u32_at(&b, FD) as i32, -1);
        assert_eq!(u64_at(&b, ADDR), p as usize as u64);
        assert_eq!(u32_at(&b, LEN), 1);
        assert_eq!(u64_at(&b, OFF), 3);
        assert_eq!(u32_at(&b, OP_FLAGS), IORING_TIMEOUT_ABS);

        let b = bytes(&LinkTimeout::new(p).build());
        assert_eq!(u8_at(&b, OPCODE), IORING_OP_LINK_TIMEOUT);
        assert_eq!(u64_at(&b, ADDR), p as usize as u64);
        assert_eq!((u32_at(&b, LEN), u64_at(&b, OFF)), (1, 0));
    }
}
