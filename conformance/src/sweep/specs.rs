//! The baselines: one valid SQE per opcode (a few opcodes have a second, e.g.
//! the multishot form), each with the fixture it needs and the `len` values
//! that are safe to try on it.

use ringline_ring::abi::{self, Sqe};

use super::{Fx, DATA_LEN};
use crate::Ctx;

/// What a case's baseline needs before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fix {
    /// Nothing.
    None,
    /// A connected socket with [`DATA_LEN`] bytes from the peer waiting.
    Conn,
    /// [`Fix::Conn`] plus a buffer ring of 4 × [`DATA_LEN`] (group [`Fx::group`]).
    ConnGroup,
    /// A listening socket with one connection queued.
    Listener,
    /// A fresh socket (IORING_OP_SOCKET, not bound or connected).
    Fresh,
    /// A fresh socket and a peer listener's address.
    Connect,
}

/// What ringline does with the op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Implemented: every difference is fixed or documented.
    Yes,
    /// Not implemented: `-EOPNOTSUPP` after the checks every SQE gets.
    Unsupported,
}

/// One baseline.
pub struct Spec {
    /// Unique name (the opcode's, with a suffix for a second form).
    pub name: &'static str,
    /// The opcode.
    pub op: u8,
    /// What it needs.
    pub fixture: Fix,
    /// ringline's support.
    pub support: Support,
    /// The `len` values tried (within any buffer the baseline names).
    pub lens: &'static [u32],
    /// Builds the baseline SQE of opcode `op` on the fixture (context
    /// memory only).
    pub build: fn(&mut Ctx, &Fx, u8) -> Sqe,
}

/// `len` values for a byte count into a [`DATA_LEN`] buffer.
const LEN_BYTES: &[u32] = &[0, 1, 2];
/// For a receive: also past INT_MAX (only the 64 bytes waiting are ever
/// written).
const LEN_RECV: &[u32] = &[0, 1, 2, 0x8000_0000];
/// `len` values for an iovec count (the array has 2 entries; above 1024 is
/// refused before any is read).
const LEN_IOVECS: &[u32] = &[0, 2, 1025, u32::MAX];
/// `len` values where it is a number or flags.
const LEN_ANY: &[u32] = &[0, 1, 2, 0x8000_0000, u32::MAX];

fn sqe(op: u8, fd: i32) -> Sqe {
    Sqe {
        opcode: op,
        fd,
        ..Sqe::default()
    }
}

fn buf(c: &mut Ctx) -> u64 {
    c.mem(DATA_LEN) as u64
}

fn data(c: &mut Ctx) -> u64 {
    c.bytes(&crate::scenarios::pattern(DATA_LEN, 9)) as u64
}

/// Two iovecs: the buffer, then an empty one.
fn iovecs(c: &mut Ctx, base: u64) -> u64 {
    let v = [
        libc::iovec {
            iov_base: base as *mut libc::c_void,
            iov_len: DATA_LEN,
        },
        libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        },
    ];
    c.keep(v) as u64
}

fn msghdr(c: &mut Ctx, base: u64) -> u64 {
    let iov = iovecs(c, base);
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = iov as *mut libc::iovec;
    mh.msg_iovlen = 1;
    c.keep(mh) as u64
}

fn rw(c: &mut Ctx, fx: &Fx, op: u8, write: bool) -> Sqe {
    let mut s = sqe(op, fx.fd);
    s.addr = if write { data(c) } else { buf(c) };
    s.len = DATA_LEN as u32;
    s
}

fn rwv(c: &mut Ctx, fx: &Fx, op: u8, write: bool) -> Sqe {
    let mut s = sqe(op, fx.fd);
    let b = if write { data(c) } else { buf(c) };
    s.addr = iovecs(c, b);
    s.len = 1;
    s
}

fn msg(c: &mut Ctx, fx: &Fx, op: u8, write: bool) -> Sqe {
    let mut s = sqe(op, fx.fd);
    let b = if write { data(c) } else { buf(c) };
    s.addr = msghdr(c, b);
    s
}

fn timespec(c: &mut Ctx) -> u64 {
    c.timespec_ms(1) as u64
}

/// The baseline of an op ringline does not implement: its fd (a fresh
/// socket) and nothing else; path ops get a null path (`-EFAULT` in Linux,
/// before any path is looked up).
fn plain(_: &mut Ctx, fx: &Fx, op: u8) -> Sqe {
    sqe(op, fx.fd)
}

/// An fd-less baseline: the SQE is all zero but for `fd`.
fn fd_only<const FD: i32>(_: &mut Ctx, _: &Fx, op: u8) -> Sqe {
    sqe(op, FD)
}

/// MSG_RING: a data message (res `len`) to the app ring itself, under a
/// user_data the case does not record (the message's CQE may come before
/// or after the request's: `msg_ring` checks that).
fn msg_self(c: &mut Ctx, _: &Fx, op: u8) -> Sqe {
    Sqe {
        off: 0x5_1234,
        ..sqe(op, c.backend().ring_fd())
    }
}

/// A baseline whose `addr` is a user_data nothing has (the remove and
/// cancel ops: `-ENOENT`).
fn no_target(_: &mut Ctx, _: &Fx, op: u8) -> Sqe {
    Sqe {
        addr: 0x1234,
        ..sqe(op, -1)
    }
}

/// A 1 ms TIMEOUT or LINK_TIMEOUT.
fn timer(c: &mut Ctx, _: &Fx, op: u8) -> Sqe {
    Sqe {
        addr: timespec(c),
        len: 1,
        ..sqe(op, -1)
    }
}

/// SPLICE and TEE: both ends the fresh socket (neither is a pipe).
fn two_fds(_: &mut Ctx, fx: &Fx, op: u8) -> Sqe {
    Sqe {
        file_index: fx.fd as u32,
        ..sqe(op, fx.fd)
    }
}

fn poll(fx: &Fx, op: u8, flags: u32) -> Sqe {
    Sqe {
        op_flags: libc::POLLIN as u32,
        len: flags,
        ..sqe(op, fx.fd)
    }
}

/// A group's multishot receive.
fn mshot(fx: &Fx, op: u8, ioprio: u16) -> Sqe {
    Sqe {
        flags: abi::IOSQE_BUFFER_SELECT,
        ioprio,
        buf_index: fx.group,
        ..sqe(op, fx.fd)
    }
}

/// BIND and CONNECT: a sockaddr_in.
fn addr(fx: &Fx, op: u8, sa: *const libc::sockaddr) -> Sqe {
    Sqe {
        addr: sa as u64,
        off: 16,
        ..sqe(op, fx.fd)
    }
}

/// Every baseline, in opcode order.
pub fn specs() -> Vec<Spec> {
    use abi::*;
    use Fix::*;
    use Support::{Unsupported, Yes};
    type Build = fn(&mut Ctx, &Fx, u8) -> Sqe;
    let spec = |name: &'static str,
                op: u8,
                fixture: Fix,
                support: Support,
                lens: &'static [u32],
                build: Build| Spec {
        name,
        op,
        fixture,
        support,
        lens,
        build,
    };
    let un = |name, op| spec(name, op, Fresh, Unsupported, LEN_ANY, plain);
    let rd: Build = |c, fx, op| rw(c, fx, op, false);
    let wr: Build = |c, fx, op| rw(c, fx, op, true);
    let rdv: Build = |c, fx, op| rwv(c, fx, op, false);
    let wrv: Build = |c, fx, op| rwv(c, fx, op, true);
    let rdm: Build = |c, fx, op| msg(c, fx, op, false);
    let wrm: Build = |c, fx, op| msg(c, fx, op, true);
    vec![
        spec("NOP", IORING_OP_NOP, None, Yes, LEN_ANY, fd_only::<-1>),
        spec("READV", IORING_OP_READV, Conn, Yes, LEN_IOVECS, rdv),
        spec("WRITEV", IORING_OP_WRITEV, Conn, Yes, LEN_IOVECS, wrv),
        un("FSYNC", IORING_OP_FSYNC),
        spec("READ_FIXED", IORING_OP_READ_FIXED, Conn, Yes, LEN_BYTES, rd),
        spec(
            "WRITE_FIXED",
            IORING_OP_WRITE_FIXED,
            Conn,
            Yes,
            LEN_BYTES,
            wr,
        ),
        spec(
            "POLL_ADD",
            IORING_OP_POLL_ADD,
            Conn,
            Yes,
            LEN_ANY,
            |_, fx, op| poll(fx, op, 0),
        ),
        spec(
            "POLL_ADD multishot",
            IORING_OP_POLL_ADD,
            Conn,
            Yes,
            LEN_ANY,
            |_, fx, op| poll(fx, op, IORING_POLL_ADD_MULTI),
        ),
        spec(
            "POLL_REMOVE",
            IORING_OP_POLL_REMOVE,
            None,
            Yes,
            LEN_ANY,
            no_target,
        ),
        un("SYNC_FILE_RANGE", IORING_OP_SYNC_FILE_RANGE),
        spec("SENDMSG", IORING_OP_SENDMSG, Conn, Yes, LEN_ANY, wrm),
        spec("RECVMSG", IORING_OP_RECVMSG, Conn, Yes, LEN_ANY, rdm),
        spec("TIMEOUT", IORING_OP_TIMEOUT, None, Yes, LEN_ANY, timer),
        spec(
            "TIMEOUT_REMOVE",
            IORING_OP_TIMEOUT_REMOVE,
            None,
            Yes,
            LEN_ANY,
            no_target,
        ),
        spec("ACCEPT", IORING_OP_ACCEPT, Listener, Yes, LEN_ANY, plain),
        spec(
            "ACCEPT multishot",
            IORING_OP_ACCEPT,
            Listener,
            Yes,
            LEN_ANY,
            |_, fx, op| Sqe {
                ioprio: IORING_ACCEPT_MULTISHOT,
                ..sqe(op, fx.fd)
            },
        ),
        spec(
            "ASYNC_CANCEL",
            IORING_OP_ASYNC_CANCEL,
            None,
            Yes,
            LEN_ANY,
            no_target,
        ),
        spec(
            "LINK_TIMEOUT",
            IORING_OP_LINK_TIMEOUT,
            None,
            Yes,
            LEN_ANY,
            timer,
        ),
        spec(
            "CONNECT",
            IORING_OP_CONNECT,
            Connect,
            Yes,
            LEN_ANY,
            |_, fx, op| addr(fx, op, fx.peer),
        ),
        un("FALLOCATE", IORING_OP_FALLOCATE),
        un("OPENAT", IORING_OP_OPENAT),
        spec("CLOSE", IORING_OP_CLOSE, Fresh, Yes, LEN_ANY, plain),
        un("FILES_UPDATE", IORING_OP_FILES_UPDATE),
        un("STATX", IORING_OP_STATX),
        spec("READ", IORING_OP_READ, Conn, Yes, LEN_BYTES, rd),
        spec("WRITE", IORING_OP_WRITE, Conn, Yes, LEN_BYTES, wr),
        un("FADVISE", IORING_OP_FADVISE),
        un("MADVISE", IORING_OP_MADVISE),
        spec("SEND", IORING_OP_SEND, Conn, Yes, LEN_BYTES, wr),
        spec("RECV", IORING_OP_RECV, Conn, Yes, LEN_RECV, rd),
        spec(
            "RECV multishot",
            IORING_OP_RECV,
            ConnGroup,
            Yes,
            LEN_ANY,
            |_, fx, op| mshot(fx, op, IORING_RECV_MULTISHOT),
        ),
        un("OPENAT2", IORING_OP_OPENAT2),
        un("EPOLL_CTL", IORING_OP_EPOLL_CTL),
        spec(
            "SPLICE",
            IORING_OP_SPLICE,
            Fresh,
            Unsupported,
            LEN_ANY,
            two_fds,
        ),
        spec(
            "PROVIDE_BUFFERS",
            IORING_OP_PROVIDE_BUFFERS,
            None,
            Yes,
            LEN_ANY,
            |c, fx, op| Sqe {
                addr: c.mem(4 * DATA_LEN) as u64,
                len: DATA_LEN as u32,
                buf_index: 1000 + fx.n,
                ..sqe(op, 4)
            },
        ),
        spec(
            "REMOVE_BUFFERS",
            IORING_OP_REMOVE_BUFFERS,
            None,
            Yes,
            LEN_ANY,
            |_, _, op| Sqe {
                buf_index: 77,
                ..sqe(op, 1)
            },
        ),
        spec("TEE", IORING_OP_TEE, Fresh, Unsupported, LEN_ANY, two_fds),
        spec(
            "SHUTDOWN",
            IORING_OP_SHUTDOWN,
            Conn,
            Yes,
            LEN_ANY,
            |_, fx, op| Sqe {
                len: libc::SHUT_WR as u32,
                ..sqe(op, fx.fd)
            },
        ),
        un("RENAMEAT", IORING_OP_RENAMEAT),
        un("UNLINKAT", IORING_OP_UNLINKAT),
        un("MKDIRAT", IORING_OP_MKDIRAT),
        un("SYMLINKAT", IORING_OP_SYMLINKAT),
        un("LINKAT", IORING_OP_LINKAT),
        spec("MSG_RING", IORING_OP_MSG_RING, None, Yes, LEN_ANY, msg_self),
        un("FSETXATTR", IORING_OP_FSETXATTR),
        un("SETXATTR", IORING_OP_SETXATTR),
        un("FGETXATTR", IORING_OP_FGETXATTR),
        un("GETXATTR", IORING_OP_GETXATTR),
        spec(
            "SOCKET",
            IORING_OP_SOCKET,
            None,
            Yes,
            LEN_ANY,
            |_, _, op| Sqe {
                off: libc::SOCK_STREAM as u64,
                ..sqe(op, libc::AF_INET)
            },
        ),
        // cmd_op 0: SOCKET_URING_OP_SIOCINQ.
        spec("URING_CMD", IORING_OP_URING_CMD, Conn, Yes, LEN_ANY, plain),
        spec("SEND_ZC", IORING_OP_SEND_ZC, Conn, Yes, LEN_BYTES, wr),
        spec("SENDMSG_ZC", IORING_OP_SENDMSG_ZC, Conn, Yes, LEN_ANY, wrm),
        spec(
            "READ_MULTISHOT",
            IORING_OP_READ_MULTISHOT,
            ConnGroup,
            Yes,
            LEN_ANY,
            |_, fx, op| mshot(fx, op, 0),
        ),
        un("WAITID", IORING_OP_WAITID),
        // The futex ops take their flags in `fd`: FUTEX2_SIZE_U32, with a null
        // futex address (-EFAULT, never a wait).
        spec(
            "FUTEX_WAIT",
            IORING_OP_FUTEX_WAIT,
            None,
            Unsupported,
            LEN_ANY,
            fd_only::<2>,
        ),
        spec(
            "FUTEX_WAKE",
            IORING_OP_FUTEX_WAKE,
            None,
            Unsupported,
            LEN_ANY,
            fd_only::<2>,
        ),
        spec(
            "FUTEX_WAITV",
            IORING_OP_FUTEX_WAITV,
            None,
            Unsupported,
            LEN_ANY,
            fd_only::<0>,
        ),
        un("FIXED_FD_INSTALL", IORING_OP_FIXED_FD_INSTALL),
        un("FTRUNCATE", IORING_OP_FTRUNCATE),
        spec("BIND", IORING_OP_BIND, Fresh, Yes, LEN_ANY, |_, fx, op| {
            addr(fx, op, fx.local)
        }),
        spec(
            "LISTEN",
            IORING_OP_LISTEN,
            Fresh,
            Yes,
            LEN_ANY,
            |_, fx, op| Sqe {
                len: 16,
                ..sqe(op, fx.fd)
            },
        ),
        un("RECV_ZC", IORING_OP_RECV_ZC),
        un("EPOLL_WAIT", IORING_OP_EPOLL_WAIT),
        spec(
            "READV_FIXED",
            IORING_OP_READV_FIXED,
            Conn,
            Unsupported,
            LEN_IOVECS,
            rdv,
        ),
        spec(
            "WRITEV_FIXED",
            IORING_OP_WRITEV_FIXED,
            Conn,
            Unsupported,
            LEN_IOVECS,
            wrv,
        ),
        un("PIPE", IORING_OP_PIPE),
        spec("NOP128", IORING_OP_NOP128, None, Yes, LEN_ANY, fd_only::<0>),
        spec(
            "URING_CMD128",
            IORING_OP_URING_CMD128,
            Fresh,
            Yes,
            LEN_ANY,
            plain,
        ),
        spec(
            "opcode 65 (IORING_OP_LAST)",
            65,
            None,
            Yes,
            LEN_ANY,
            fd_only::<0>,
        ),
        spec("opcode 66", 66, None, Yes, LEN_ANY, fd_only::<0>),
        spec("opcode 200", 200, None, Yes, LEN_ANY, fd_only::<0>),
        spec("opcode 255", 255, None, Yes, LEN_ANY, fd_only::<0>),
    ]
}
