//! Typed requests: an SQE's fields checked once, as the kernel's `io_*_prep`
//! functions check them, and turned into a [`Request`] the executors consume.
//!
//! [`Request::decode`] looks at the 64 bytes of the SQE and nothing else: it
//! reads no application memory (sockaddrs, msghdrs, timespecs stay with the
//! executors, which read them once at issue) and consults no engine state
//! (socket table, listeners, buffer groups, configuration). It is pure, `Copy`
//! in and `Copy` out, allocation-free, and runs once per SQE on the hot path.
//!
//! It is the engine's only check of SQE fields: the executors check engine
//! state and application memory afterwards, so every field fault is reported
//! before any state or memory fault, as Linux's prep runs before issue. A
//! comment names the Linux prep function each check mirrors. (Before the
//! request layer, a few executors looked at state or memory first; the
//! "Order:" notes mark where an SQE with two faults at once now gets the
//! field's errno.)
//!
//! Errors are [`Errno`] (positive); a CQE carries `-errno` ([`Errno::as_res`]).

pub(crate) use crate::errno::Errno;
use crate::errno::{E2BIG, EAFNOSUPPORT, EBADF, EINVAL, EOPNOTSUPP, EOVERFLOW, EPROTONOSUPPORT};
use ringline_ring::abi::*;

const MSG_WAITALL: u32 = libc::MSG_WAITALL as u32;
const SOCK_NONBLOCK: u32 = libc::SOCK_NONBLOCK as u32;
const SOCK_CLOEXEC: u32 = libc::SOCK_CLOEXEC as u32;
/// Smallest address BIND and CONNECT accept (`sizeof(struct sockaddr_in)`).
const SOCKADDR_IN_LEN: u64 = core::mem::size_of::<libc::sockaddr_in>() as u64;

/// An SQE after decoding: the header every request has, and the typed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Submission {
    /// Echoed in every CQE of the request.
    pub user_data: u64,
    /// The SQE's `fd` field, as submitted. The engine records it with every
    /// parked op (`IORING_ASYNC_CANCEL_FD` matches on it), whatever the opcode
    /// makes of it; for the ops that name a socket it is that socket.
    pub fd: i32,
    /// `IORING_OP_*` (recorded for `IORING_ASYNC_CANCEL_OP`).
    pub opcode: u8,
    /// `IOSQE_*` flags, already checked (no unknown bit). With
    /// `IOSQE_FIXED_FILE`, `fd` names a slot of the registered file table
    /// until the engine resolves it at issue ([`needs_file`]).
    pub flags: u8,
    /// What to do.
    pub req: Request,
}

// Smaller than the SQE it comes from.
const _: () = assert!(core::mem::size_of::<Request>() <= 40);
const _: () = assert!(core::mem::size_of::<Submission>() <= 56);

impl Submission {
    /// Decodes `sqe` (see [`Request::decode`]).
    #[inline(always)]
    pub(crate) fn decode(sqe: &Sqe) -> Result<Submission, Errno> {
        Ok(Submission {
            user_data: sqe.user_data,
            fd: sqe.fd,
            opcode: sqe.opcode,
            flags: sqe.flags,
            req: Request::decode(sqe)?,
        })
    }
}

/// One request, per opcode the engine supports. The socket an op acts on is
/// [`Submission::fd`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// `IORING_OP_NOP`: completes with 0, or with `inject`
    /// (`IORING_NOP_INJECT_RESULT`, the result in `len`).
    /// `file`: `IORING_NOP_FILE`, the fd must be a socket, or with
    /// `fixed_file` (`IORING_NOP_FIXED_FILE`) a file-table slot must hold
    /// one (else `-EBADF`); `buf`: `IORING_NOP_FIXED_BUFFER`, registered
    /// buffer `buf_index` must exist (else `-EFAULT`). Both looked up at
    /// issue.
    Nop {
        inject: Option<i32>,
        file: bool,
        fixed_file: bool,
        buf: Option<u16>,
    },
    /// `IORING_OP_SOCKET`: an `AF_INET`, `SOCK_STREAM`, TCP socket, into a
    /// direct descriptor with `direct` (`file_index`).
    Socket {
        nonblock: bool,
        cloexec: bool,
        direct: Option<Direct>,
    },
    /// `IORING_OP_BIND`: `addr` is a `sockaddr *` of `addrlen` bytes (>= 16),
    /// read by the executor.
    Bind { addr: u64, addrlen: u64 },
    /// `IORING_OP_LISTEN`: `backlog` as submitted (the executor clamps it to
    /// at least 1 and at most `somaxconn`).
    Listen { backlog: u32 },
    /// `IORING_OP_ACCEPT`.
    Accept(Accept),
    /// `IORING_OP_CONNECT`: as [`Request::Bind`].
    Connect { addr: u64, addrlen: u64 },
    /// `IORING_OP_RECV`, `IORING_OP_READ`, `IORING_OP_READV`,
    /// `IORING_OP_RECVMSG`, `IORING_OP_READ_MULTISHOT` (a multishot READ).
    Recv(Recv),
    /// `IORING_OP_SEND`, `IORING_OP_WRITE`, `IORING_OP_WRITEV`,
    /// `IORING_OP_SEND_ZC`, `IORING_OP_SENDMSG`, `IORING_OP_SENDMSG_ZC`.
    Send(Send),
    /// `IORING_OP_CLOSE`: of the fd, or with `slot` (`file_index`, 1-based)
    /// of that file-table slot.
    Close { slot: u32 },
    /// `IORING_OP_READ_FIXED`, `IORING_OP_WRITE_FIXED`.
    RwFixed(RwFixed),
    /// `IORING_OP_URING_CMD` on a socket (`SOCKET_URING_OP_*`).
    SockCmd(SockCmd),
    /// `IORING_OP_SHUTDOWN`.
    Shutdown { how: ShutdownHow },
    /// `IORING_OP_POLL_ADD`: `events` is the submitted `poll32_events`
    /// (see [`poll_interest`]).
    PollAdd { events: u32, mode: PollMode },
    /// `IORING_OP_POLL_REMOVE`: removes the poll whose user_data is `target`,
    /// or, if either update is present, updates it.
    PollRemove {
        target: u64,
        new_events: Option<PollEvents>,
        new_user_data: Option<u64>,
    },
    /// `IORING_OP_ASYNC_CANCEL`.
    Cancel(CancelMatch),
    /// `IORING_OP_PROVIDE_BUFFERS`: `count` buffers of `len` bytes from `addr`,
    /// ids `first_bid..`, into legacy group `group`.
    ProvideBuffers {
        addr: u64,
        len: u32,
        count: u32,
        group: u16,
        first_bid: u16,
    },
    /// `IORING_OP_REMOVE_BUFFERS`: up to `count` buffers of group `group`.
    RemoveBuffers { count: u32, group: u16 },
    /// `IORING_OP_TIMEOUT`.
    Timeout(TimeoutSpec),
    /// `IORING_OP_TIMEOUT_REMOVE`: removes the TIMEOUT whose user_data is
    /// `target`, or re-times it (or an armed LINK_TIMEOUT) with `update`.
    TimeoutRemove {
        target: u64,
        update: Option<TimeoutUpdate>,
    },
    /// `IORING_OP_MSG_RING`: to the ring the fd names.
    MsgRing(MsgRing),
    /// `IORING_OP_LINK_TIMEOUT`, decoded in full (`multishot` is always
    /// false: it is rejected). Whether it may run is the engine's call: one
    /// that does not follow a linked request in the same submission completes
    /// with `-EINVAL` there (`issue`), as in Linux; field faults come first.
    LinkTimeout(TimeoutSpec),
}

/// `IORING_OP_ACCEPT`'s fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Accept {
    /// `sockaddr *` for the peer address, or 0.
    pub addr: u64,
    /// `socklen_t *` (the `addr2`/`off` field), or 0.
    pub addrlen: u64,
    /// `IORING_ACCEPT_MULTISHOT`.
    pub multishot: bool,
    /// `IORING_ACCEPT_DONTWAIT`: `-EAGAIN` instead of waiting.
    pub dontwait: bool,
    /// `IORING_ACCEPT_POLL_FIRST`.
    pub poll_first: bool,
    /// `SOCK_NONBLOCK` in `accept_flags`.
    pub nonblock: bool,
    /// `SOCK_CLOEXEC` in `accept_flags`.
    pub cloexec: bool,
    /// Into a direct descriptor (`file_index`): if it cannot be installed,
    /// the connection is accepted and closed and the request fails, as in
    /// Linux.
    pub direct: Option<Direct>,
}

/// Where SOCKET and ACCEPT install a direct descriptor (`file_index`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direct {
    /// `IORING_FILE_INDEX_ALLOC`: any free slot in the allocation range; the
    /// CQE's result is the slot.
    Alloc,
    /// Slot `file_index - 1` (replacing what it holds); the result is 0.
    Slot(u32),
}

/// READ_FIXED / WRITE_FIXED: a READ / WRITE from a registered buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RwFixed {
    /// WRITE_FIXED.
    pub write: bool,
    /// `buf_index`: the registered buffer `addr..addr + len` must lie in.
    pub buf: u16,
    pub addr: u64,
    pub len: u32,
    /// `RWF_NOWAIT` as `MSG_DONTWAIT` (see READ).
    pub msg_flags: u32,
    /// As [`Recv::issue_err`].
    pub issue_err: Option<Errno>,
}

/// A socket command's fields (the executor checks `cmd_op`, as Linux does at
/// issue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SockCmd {
    /// `SOCKET_URING_OP_*`.
    pub cmd_op: u32,
    /// GETSOCKOPT / SETSOCKOPT: `level`, `optname`, `optlen` (as submitted,
    /// an `int` in Linux), `optval` (the value's address).
    pub level: u32,
    pub optname: u32,
    pub optlen: u32,
    pub optval: u64,
}

/// Whether `opcode` acts on a file (Linux's `needs_file`): its `fd` is
/// resolved at issue, through the file table with `IOSQE_FIXED_FILE`. Other
/// opcodes ignore that flag (CLOSE refuses it at prep).
#[inline]
pub(crate) fn needs_file(opcode: u8) -> bool {
    matches!(
        opcode,
        IORING_OP_BIND
            | IORING_OP_LISTEN
            | IORING_OP_ACCEPT
            | IORING_OP_CONNECT
            | IORING_OP_RECV
            | IORING_OP_READ
            | IORING_OP_READV
            | IORING_OP_RECVMSG
            | IORING_OP_READ_MULTISHOT
            | IORING_OP_SEND
            | IORING_OP_WRITE
            | IORING_OP_WRITEV
            | IORING_OP_SEND_ZC
            | IORING_OP_SENDMSG
            | IORING_OP_SENDMSG_ZC
            | IORING_OP_READ_FIXED
            | IORING_OP_WRITE_FIXED
            | IORING_OP_SHUTDOWN
            | IORING_OP_POLL_ADD
            | IORING_OP_URING_CMD
            | IORING_OP_MSG_RING
    )
}

/// Whether the engine implements `opcode` (what `IORING_REGISTER_PROBE`
/// reports as `IO_URING_OP_SUPPORTED`); every other opcode completes with
/// `-EOPNOTSUPP` (or `-EINVAL` past `IORING_OP_LAST`).
pub(crate) fn supported(opcode: u8) -> bool {
    needs_file(opcode)
        || matches!(
            opcode,
            IORING_OP_NOP
                | IORING_OP_SOCKET
                | IORING_OP_CLOSE
                | IORING_OP_POLL_REMOVE
                | IORING_OP_ASYNC_CANCEL
                | IORING_OP_PROVIDE_BUFFERS
                | IORING_OP_REMOVE_BUFFERS
                | IORING_OP_TIMEOUT
                | IORING_OP_TIMEOUT_REMOVE
                | IORING_OP_LINK_TIMEOUT
                | IORING_OP_MSG_RING
        )
}

/// Which receive opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecvKind {
    /// `IORING_OP_RECV`: `addr`/`len` is the buffer.
    Recv,
    /// `IORING_OP_READ`: a recv with no flags; `IORING_OP_READ_MULTISHOT`
    /// is one with `multishot` and a group.
    Read,
    /// `IORING_OP_READV`: `addr` is an iovec array of `len` entries.
    Readv,
    /// `IORING_OP_RECVMSG`: `addr` is a `msghdr *`.
    RecvMsg,
}

/// A receive's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Recv {
    pub kind: RecvKind,
    /// Buffer (RECV, READ) or `msghdr *` (RECVMSG), as submitted; ignored by
    /// RECV with a buffer group.
    pub addr: u64,
    /// Buffer length (RECV, READ; with a group, a cap), as submitted.
    pub len: u32,
    /// recv `msg_flags` (0 for READ, whose `rw_flags` are ignored).
    pub msg_flags: u32,
    /// `IOSQE_BUFFER_SELECT`: the provided-buffer group (`buf_group`).
    pub group: Option<u16>,
    /// `IORING_RECV_MULTISHOT` (implies a group and no `MSG_WAITALL`).
    pub multishot: bool,
    /// Multishot RECV: the total byte cap (`optlen`, Linux 6.17; 0: none).
    /// Once its CQEs carried that many bytes the multishot ends; a CQE is
    /// not cut to it (a bundle is).
    pub total: u32,
    /// `IORING_RECVSEND_BUNDLE` (RECV only): one CQE may fill several
    /// buffers of a ring group, consecutive ids, the first in the CQE.
    pub bundle: bool,
    /// `IORING_RECVSEND_POLL_FIRST`.
    pub poll_first: bool,
    /// READ, READV: what the kernel reports at issue, once the socket is
    /// found, for the SQE's `rw_flags` and offset (see [`rw_issue_error`]).
    pub issue_err: Option<Errno>,
}

impl RecvKind {
    /// Whether this is one of the file ops (READ, READV), whose `rw_flags`,
    /// offset and `ioprio` follow the read/write rules.
    #[inline]
    pub(crate) fn is_rw(self) -> bool {
        matches!(self, RecvKind::Read | RecvKind::Readv)
    }
}

/// Which send opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendKind {
    /// `IORING_OP_SEND`.
    Send,
    /// `IORING_OP_WRITE`: a send with no flags.
    Write,
    /// `IORING_OP_WRITEV`: `addr` is an iovec array of `len` entries.
    Writev,
    /// `IORING_OP_SEND_ZC`.
    SendZc,
    /// `IORING_OP_SENDMSG`: `addr` is a `msghdr *`.
    SendMsg,
    /// `IORING_OP_SENDMSG_ZC`.
    SendMsgZc,
}

impl SendKind {
    /// Whether `addr` is a `msghdr *`.
    #[inline]
    pub(crate) fn is_msg(self) -> bool {
        matches!(self, SendKind::SendMsg | SendKind::SendMsgZc)
    }

    /// Whether this is one of the file ops (WRITE, WRITEV).
    #[inline]
    pub(crate) fn is_rw(self) -> bool {
        matches!(self, SendKind::Write | SendKind::Writev)
    }

    /// Whether the send posts a zero-copy notification CQE.
    #[inline]
    pub(crate) fn zero_copy(self) -> bool {
        matches!(self, SendKind::SendZc | SendKind::SendMsgZc)
    }
}

/// A send's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Send {
    pub kind: SendKind,
    /// Buffer (SEND, WRITE, SEND_ZC) or `msghdr *` (SENDMSG, SENDMSG_ZC).
    pub addr: u64,
    /// Buffer length, as submitted (SENDMSG: unused).
    pub len: u32,
    /// send `msg_flags` as submitted (0 for WRITE); the executor adds
    /// `MSG_NOSIGNAL`, as Linux does for io_uring sends.
    pub msg_flags: u32,
    /// `IORING_RECVSEND_POLL_FIRST`.
    pub poll_first: bool,
    /// `IORING_SEND_ZC_REPORT_USAGE` (zero-copy kinds only).
    pub report_usage: bool,
    /// Where the data is.
    pub data: SendData,
    /// SEND with `IORING_RECVSEND_BUNDLE` (`MSG_WAITALL` implied): with a
    /// group, each CQE sends the buffers there (`F_MORE` until the group is
    /// empty); without, the buffer, then a final 0.
    pub bundle: bool,
    /// WRITE, WRITEV: as [`Recv::issue_err`]. SEND_ZC, SENDMSG_ZC: a check
    /// that failed after Linux allocated the notification (unknown ioprio
    /// bits, a sendto address; SENDMSG_ZC with `IORING_RECVSEND_FIXED_BUF`),
    /// reported once the socket is found, with
    /// `F_MORE` and then the notification as every zero-copy failure.
    pub issue_err: Option<Errno>,
}

/// A MSG_RING's fields (io_msg_ring_prep); the command is checked at issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MsgRing {
    /// `addr` as Linux keeps it (a u32): `IORING_MSG_DATA`,
    /// `IORING_MSG_SEND_FD`, or another value (`-EINVAL` at issue).
    pub cmd: u32,
    /// `off`: the target CQE's user_data.
    pub user_data: u64,
    /// `len`: DATA's target CQE res; SEND_FD wants 0.
    pub len: u32,
    /// `addr3` as Linux keeps it (a u32): SEND_FD's source file-table slot;
    /// DATA wants 0.
    pub src_fd: u32,
    /// `file_index`: SEND_FD's target slot; DATA with `FLAGS_PASS`: the
    /// target CQE's flags (else it must be 0).
    pub dst_fd: u32,
    /// `msg_ring_flags`: `IORING_MSG_RING_CQE_SKIP`, `_FLAGS_PASS`.
    pub flags: u32,
}

/// Where a send's data is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SendData {
    /// The application's memory at `addr` (or the msghdr's iovecs).
    User,
    /// SEND_ZC with `IORING_RECVSEND_FIXED_BUF`: the buffer must lie in
    /// registered buffer `buf_index`, checked at issue.
    Fixed,
    /// SEND with `IOSQE_BUFFER_SELECT`: provided buffers of this group
    /// (`addr` ignored, `len` a cap, 0: none).
    Group(u16),
}

/// `shutdown(2)`'s `how`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ShutdownHow {
    /// `SHUT_RD`.
    Read,
    /// `SHUT_WR`.
    Write,
    /// `SHUT_RDWR`.
    Both,
}

impl ShutdownHow {
    /// `how` as shutdown(2) takes it; `None` for anything else (`EINVAL`).
    pub(crate) fn from_raw(how: i32) -> Option<Self> {
        match how {
            libc::SHUT_RD => Some(ShutdownHow::Read),
            libc::SHUT_WR => Some(ShutdownHow::Write),
            libc::SHUT_RDWR => Some(ShutdownHow::Both),
            _ => None,
        }
    }

    /// Whether receiving is shut.
    #[inline]
    pub(crate) fn read(self) -> bool {
        !matches!(self, ShutdownHow::Write)
    }

    /// Whether sending is shut.
    #[inline]
    pub(crate) fn write(self) -> bool {
        !matches!(self, ShutdownHow::Read)
    }
}

/// How a POLL_ADD reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PollMode {
    /// One CQE, then done.
    OneShot,
    /// `IORING_POLL_ADD_MULTI`: a CQE with `F_MORE` per wake-up.
    Multi,
    /// ringline's `RINGLINE_POLL_COALESCED` (with `IORING_POLL_ADD_MULTI`):
    /// events are OR-ed into the 4-byte aligned ready word at `word`, one CQE
    /// while the word is non-zero. The executor checks that the word is
    /// mapped.
    Coalesced { word: u64 },
}

/// A POLL_REMOVE update of the event mask (`IORING_POLL_UPDATE_EVENTS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PollEvents {
    /// The new `poll32_events` (see [`poll_interest`]).
    pub events: u32,
    /// `IORING_POLL_ADD_MULTI` in the update's flags.
    pub multi: bool,
}

/// The interest mask of submitted `poll32_events`: the 16 bits of `poll(2)`
/// events, plus `POLLERR | POLLHUP | POLLRDHUP`, which io_uring always
/// reports (Linux's `IO_POLL_UNMASK`; it holds `EPOLLNVAL` too, which a
/// socket never reports).
#[inline]
pub(crate) fn poll_interest(events: u32) -> u32 {
    (events & 0xffff) | (libc::POLLERR | libc::POLLHUP | libc::POLLRDHUP) as u32
}

/// Which requests an ASYNC_CANCEL matches: a request matches if it matches
/// every key that is present (none present: every request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CancelMatch {
    /// The user_data key (`addr`): present unless `IORING_ASYNC_CANCEL_ANY`,
    /// or FD or OP without `IORING_ASYNC_CANCEL_USERDATA`.
    pub user_data: Option<u64>,
    /// `IORING_ASYNC_CANCEL_FD` (not with ANY: `-EINVAL`): the submission's
    /// `fd`, which must name a socket at issue (`-EBADF`).
    pub fd: Option<i32>,
    /// The submission's `fd` is a file-table slot
    /// (`IORING_ASYNC_CANCEL_FD_FIXED`, or `IOSQE_FIXED_FILE` on the SQE),
    /// resolved at issue.
    pub fd_fixed: bool,
    /// `IORING_ASYNC_CANCEL_OP`: the opcode in `len` (< `IORING_OP_LAST`).
    pub opcode: Option<u8>,
    /// `IORING_ASYNC_CANCEL_ANY`.
    pub any: bool,
    /// `IORING_ASYNC_CANCEL_ALL` or ANY: cancel every match, `res` = count.
    pub all: bool,
}

impl CancelMatch {
    /// Whether a request with this fd, user_data and opcode matches.
    #[inline]
    pub(crate) fn matches(&self, fd: i32, user_data: u64, opcode: u8) -> bool {
        self.fd.is_none_or(|f| f == fd)
            && self.user_data.is_none_or(|u| u == user_data)
            && self.opcode.is_none_or(|o| o == opcode)
    }
}

/// The clock a TIMEOUT's absolute time is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimeoutClock {
    /// `CLOCK_MONOTONIC` (no clock flag).
    Monotonic,
    /// `IORING_TIMEOUT_BOOTTIME`.
    Boottime,
    /// `IORING_TIMEOUT_REALTIME`.
    Realtime,
}

impl TimeoutClock {
    /// The `IORING_TIMEOUT_*` clock flag (0 for MONOTONIC).
    #[cfg(test)]
    pub(crate) fn flags(self) -> u32 {
        match self {
            TimeoutClock::Monotonic => 0,
            TimeoutClock::Boottime => IORING_TIMEOUT_BOOTTIME,
            TimeoutClock::Realtime => IORING_TIMEOUT_REALTIME,
        }
    }

    /// The `clockid_t`.
    #[inline]
    pub(crate) fn clock_id(self) -> libc::clockid_t {
        match self {
            TimeoutClock::Monotonic => libc::CLOCK_MONOTONIC,
            TimeoutClock::Boottime => libc::CLOCK_BOOTTIME,
            TimeoutClock::Realtime => libc::CLOCK_REALTIME,
        }
    }
}

/// A TIMEOUT or LINK_TIMEOUT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeoutSpec {
    /// `__kernel_timespec *`, read by the executor.
    pub ts_addr: u64,
    /// `IORING_TIMEOUT_ABS`: an absolute time on `clock` (never with `multishot`).
    pub abs: bool,
    pub clock: TimeoutClock,
    /// `IORING_TIMEOUT_MULTISHOT`: fires every interval.
    pub multishot: bool,
    /// `IORING_TIMEOUT_ETIME_SUCCESS`: expiry does not sever a link chain.
    pub etime_success: bool,
    /// `off`: TIMEOUT's completion count (0: a pure timer), or with
    /// `multishot` the number of firings (0: unlimited). LINK_TIMEOUT ignores
    /// it (Linux rejects a non-zero one; ringline never did).
    pub count: u64,
}

/// A TIMEOUT_REMOVE that re-times its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeoutUpdate {
    /// The new time, a `__kernel_timespec *` (`addr2`), read by the executor.
    pub ts_addr: u64,
    /// `IORING_TIMEOUT_ABS`: absolute on the target's clock.
    pub abs: bool,
    /// `IORING_LINK_TIMEOUT_UPDATE`: the target is an armed LINK_TIMEOUT
    /// (else `IORING_TIMEOUT_UPDATE`: a TIMEOUT).
    pub link: bool,
}

mod decode;
pub(crate) use decode::{cancel_keys, CANCEL_FLAGS};
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
