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
    /// Being implemented on the `regs` branch (registered files and buffers,
    /// URING_CMD, MSG_RING).
    InProgress,
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
    /// Builds the baseline SQE on the fixture (context memory only).
    pub build: fn(&mut Ctx, &Fx) -> Sqe,
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

fn rw(op: u8, c: &mut Ctx, fx: &Fx, write: bool) -> Sqe {
    let mut s = sqe(op, fx.fd);
    s.addr = if write { data(c) } else { buf(c) };
    s.len = DATA_LEN as u32;
    s
}

fn rwv(op: u8, c: &mut Ctx, fx: &Fx, write: bool) -> Sqe {
    let mut s = sqe(op, fx.fd);
    let b = if write { data(c) } else { buf(c) };
    s.addr = iovecs(c, b);
    s.len = 1;
    s
}

fn msg(op: u8, c: &mut Ctx, fx: &Fx, write: bool) -> Sqe {
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
fn plain(op: u8) -> fn(&mut Ctx, &Fx) -> Sqe {
    macro_rules! f {
        ($op:expr) => {
            |_c: &mut Ctx, fx: &Fx| sqe($op, fx.fd)
        };
    }
    match op {
        abi::IORING_OP_FSYNC => f!(abi::IORING_OP_FSYNC),
        abi::IORING_OP_SYNC_FILE_RANGE => f!(abi::IORING_OP_SYNC_FILE_RANGE),
        abi::IORING_OP_FALLOCATE => f!(abi::IORING_OP_FALLOCATE),
        abi::IORING_OP_OPENAT => f!(abi::IORING_OP_OPENAT),
        abi::IORING_OP_FILES_UPDATE => f!(abi::IORING_OP_FILES_UPDATE),
        abi::IORING_OP_STATX => f!(abi::IORING_OP_STATX),
        abi::IORING_OP_FADVISE => f!(abi::IORING_OP_FADVISE),
        abi::IORING_OP_MADVISE => f!(abi::IORING_OP_MADVISE),
        abi::IORING_OP_OPENAT2 => f!(abi::IORING_OP_OPENAT2),
        abi::IORING_OP_EPOLL_CTL => f!(abi::IORING_OP_EPOLL_CTL),
        abi::IORING_OP_RENAMEAT => f!(abi::IORING_OP_RENAMEAT),
        abi::IORING_OP_UNLINKAT => f!(abi::IORING_OP_UNLINKAT),
        abi::IORING_OP_MKDIRAT => f!(abi::IORING_OP_MKDIRAT),
        abi::IORING_OP_SYMLINKAT => f!(abi::IORING_OP_SYMLINKAT),
        abi::IORING_OP_LINKAT => f!(abi::IORING_OP_LINKAT),
        abi::IORING_OP_MSG_RING => f!(abi::IORING_OP_MSG_RING),
        abi::IORING_OP_FSETXATTR => f!(abi::IORING_OP_FSETXATTR),
        abi::IORING_OP_SETXATTR => f!(abi::IORING_OP_SETXATTR),
        abi::IORING_OP_FGETXATTR => f!(abi::IORING_OP_FGETXATTR),
        abi::IORING_OP_GETXATTR => f!(abi::IORING_OP_GETXATTR),
        abi::IORING_OP_WAITID => f!(abi::IORING_OP_WAITID),
        abi::IORING_OP_FIXED_FD_INSTALL => f!(abi::IORING_OP_FIXED_FD_INSTALL),
        abi::IORING_OP_FTRUNCATE => f!(abi::IORING_OP_FTRUNCATE),
        abi::IORING_OP_RECV_ZC => f!(abi::IORING_OP_RECV_ZC),
        abi::IORING_OP_EPOLL_WAIT => f!(abi::IORING_OP_EPOLL_WAIT),
        abi::IORING_OP_PIPE => f!(abi::IORING_OP_PIPE),
        abi::IORING_OP_NOP128 => f!(abi::IORING_OP_NOP128),
        abi::IORING_OP_URING_CMD128 => f!(abi::IORING_OP_URING_CMD128),
        65 => f!(65),
        66 => f!(66),
        200 => f!(200),
        255 => f!(255),
        _ => unreachable!("no plain baseline for opcode {op}"),
    }
}

macro_rules! spec {
    ($name:expr, $op:expr, $fix:expr, $sup:expr, $lens:expr, $build:expr) => {
        Spec {
            name: $name,
            op: $op,
            fixture: $fix,
            support: $sup,
            lens: $lens,
            build: $build,
        }
    };
}

/// Every baseline, in opcode order.
pub fn specs() -> Vec<Spec> {
    use abi::*;
    use Fix::*;
    use Support::{InProgress, Unsupported, Yes};
    let un = |name, op| spec!(name, op, Fresh, Unsupported, LEN_ANY, plain(op));
    vec![
        spec!("NOP", IORING_OP_NOP, None, Yes, LEN_ANY, |_, _| sqe(
            IORING_OP_NOP,
            -1
        )),
        spec!("READV", IORING_OP_READV, Conn, Yes, LEN_IOVECS, |c, fx| rwv(
            IORING_OP_READV,
            c,
            fx,
            false
        )),
        spec!("WRITEV", IORING_OP_WRITEV, Conn, Yes, LEN_IOVECS, |c, fx| rwv(
            IORING_OP_WRITEV,
            c,
            fx,
            true
        )),
        un("FSYNC", IORING_OP_FSYNC),
        spec!("READ_FIXED", IORING_OP_READ_FIXED, Conn, InProgress, LEN_BYTES, |c, fx| rw(
            IORING_OP_READ_FIXED,
            c,
            fx,
            false
        )),
        spec!("WRITE_FIXED", IORING_OP_WRITE_FIXED, Conn, InProgress, LEN_BYTES, |c, fx| rw(
            IORING_OP_WRITE_FIXED,
            c,
            fx,
            true
        )),
        spec!("POLL_ADD", IORING_OP_POLL_ADD, Conn, Yes, LEN_ANY, |_, fx| {
            let mut s = sqe(IORING_OP_POLL_ADD, fx.fd);
            s.op_flags = libc::POLLIN as u32;
            s
        }),
        spec!("POLL_ADD multishot", IORING_OP_POLL_ADD, Conn, Yes, LEN_ANY, |_, fx| {
            let mut s = sqe(IORING_OP_POLL_ADD, fx.fd);
            s.op_flags = libc::POLLIN as u32;
            s.len = IORING_POLL_ADD_MULTI;
            s
        }),
        spec!("POLL_REMOVE", IORING_OP_POLL_REMOVE, None, Yes, LEN_ANY, |_, _| {
            let mut s = sqe(IORING_OP_POLL_REMOVE, -1);
            s.addr = 0x1234;
            s
        }),
        un("SYNC_FILE_RANGE", IORING_OP_SYNC_FILE_RANGE),
        spec!("SENDMSG", IORING_OP_SENDMSG, Conn, Yes, LEN_ANY, |c, fx| msg(
            IORING_OP_SENDMSG,
            c,
            fx,
            true
        )),
        spec!("RECVMSG", IORING_OP_RECVMSG, Conn, Yes, LEN_ANY, |c, fx| msg(
            IORING_OP_RECVMSG,
            c,
            fx,
            false
        )),
        spec!("TIMEOUT", IORING_OP_TIMEOUT, None, Yes, LEN_ANY, |c, _| {
            let mut s = sqe(IORING_OP_TIMEOUT, -1);
            s.addr = timespec(c);
            s.len = 1;
            s
        }),
        spec!("TIMEOUT_REMOVE", IORING_OP_TIMEOUT_REMOVE, None, Yes, LEN_ANY, |_, _| {
            let mut s = sqe(IORING_OP_TIMEOUT_REMOVE, -1);
            s.addr = 0x1234;
            s
        }),
        spec!("ACCEPT", IORING_OP_ACCEPT, Listener, Yes, LEN_ANY, |_, fx| sqe(
            IORING_OP_ACCEPT,
            fx.fd
        )),
        spec!("ACCEPT multishot", IORING_OP_ACCEPT, Listener, Yes, LEN_ANY, |_, fx| {
            let mut s = sqe(IORING_OP_ACCEPT, fx.fd);
            s.ioprio = IORING_ACCEPT_MULTISHOT;
            s
        }),
        spec!("ASYNC_CANCEL", IORING_OP_ASYNC_CANCEL, None, Yes, LEN_ANY, |_, _| {
            let mut s = sqe(IORING_OP_ASYNC_CANCEL, -1);
            s.addr = 0x1234;
            s
        }),
        spec!("LINK_TIMEOUT", IORING_OP_LINK_TIMEOUT, None, Yes, LEN_ANY, |c, _| {
            let mut s = sqe(IORING_OP_LINK_TIMEOUT, -1);
            s.addr = timespec(c);
            s.len = 1;
            s
        }),
        spec!("CONNECT", IORING_OP_CONNECT, Connect, Yes, LEN_ANY, |_, fx| {
            let mut s = sqe(IORING_OP_CONNECT, fx.fd);
            s.addr = fx.peer as u64;
            s.off = 16;
            s
        }),
        un("FALLOCATE", IORING_OP_FALLOCATE),
        un("OPENAT", IORING_OP_OPENAT),
        spec!("CLOSE", IORING_OP_CLOSE, Fresh, Yes, LEN_ANY, |_, fx| sqe(
            IORING_OP_CLOSE,
            fx.fd
        )),
        spec!("FILES_UPDATE", IORING_OP_FILES_UPDATE, Fresh, InProgress, LEN_ANY, plain(IORING_OP_FILES_UPDATE)),
        un("STATX", IORING_OP_STATX),
        spec!("READ", IORING_OP_READ, Conn, Yes, LEN_BYTES, |c, fx| rw(
            IORING_OP_READ,
            c,
            fx,
            false
        )),
        spec!("WRITE", IORING_OP_WRITE, Conn, Yes, LEN_BYTES, |c, fx| rw(
            IORING_OP_WRITE,
            c,
            fx,
            true
        )),
        un("FADVISE", IORING_OP_FADVISE),
        un("MADVISE", IORING_OP_MADVISE),
        spec!("SEND", IORING_OP_SEND, Conn, Yes, LEN_BYTES, |c, fx| rw(
            IORING_OP_SEND,
            c,
            fx,
            true
        )),
        spec!("RECV", IORING_OP_RECV, Conn, Yes, LEN_RECV, |c, fx| rw(
            IORING_OP_RECV,
            c,
            fx,
            false
        )),
        spec!("RECV multishot", IORING_OP_RECV, ConnGroup, Yes, LEN_ANY, |_, fx| {
            let mut s = sqe(IORING_OP_RECV, fx.fd);
            s.flags = IOSQE_BUFFER_SELECT;
            s.ioprio = IORING_RECV_MULTISHOT;
            s.buf_index = fx.group;
            s
        }),
        un("OPENAT2", IORING_OP_OPENAT2),
        un("EPOLL_CTL", IORING_OP_EPOLL_CTL),
        spec!("SPLICE", IORING_OP_SPLICE, Fresh, Unsupported, LEN_ANY, |_, fx| {
            let mut s = sqe(IORING_OP_SPLICE, fx.fd);
            s.file_index = fx.fd as u32;
            s
        }),
        spec!("PROVIDE_BUFFERS", IORING_OP_PROVIDE_BUFFERS, None, Yes, LEN_ANY, |c, fx| {
            let mut s = sqe(IORING_OP_PROVIDE_BUFFERS, 4);
            s.addr = c.mem(4 * DATA_LEN) as u64;
            s.len = DATA_LEN as u32;
            s.buf_index = 1000 + fx.n;
            s
        }),
        spec!("REMOVE_BUFFERS", IORING_OP_REMOVE_BUFFERS, None, Yes, LEN_ANY, |_, _| {
            let mut s = sqe(IORING_OP_REMOVE_BUFFERS, 1);
            s.buf_index = 77;
            s
        }),
        spec!("TEE", IORING_OP_TEE, Fresh, Unsupported, LEN_ANY, |_, fx| {
            let mut s = sqe(IORING_OP_TEE, fx.fd);
            s.file_index = fx.fd as u32;
            s
        }),
        spec!("SHUTDOWN", IORING_OP_SHUTDOWN, Conn, Yes, LEN_ANY, |_, fx| {
            let mut s = sqe(IORING_OP_SHUTDOWN, fx.fd);
            s.len = libc::SHUT_WR as u32;
            s
        }),
        un("RENAMEAT", IORING_OP_RENAMEAT),
        un("UNLINKAT", IORING_OP_UNLINKAT),
        un("MKDIRAT", IORING_OP_MKDIRAT),
        un("SYMLINKAT", IORING_OP_SYMLINKAT),
        un("LINKAT", IORING_OP_LINKAT),
        spec!("MSG_RING", IORING_OP_MSG_RING, Fresh, InProgress, LEN_ANY, plain(IORING_OP_MSG_RING)),
        un("FSETXATTR", IORING_OP_FSETXATTR),
        un("SETXATTR", IORING_OP_SETXATTR),
        un("FGETXATTR", IORING_OP_FGETXATTR),
        un("GETXATTR", IORING_OP_GETXATTR),
        spec!("SOCKET", IORING_OP_SOCKET, None, Yes, LEN_ANY, |_, _| {
            let mut s = sqe(IORING_OP_SOCKET, libc::AF_INET);
            s.off = libc::SOCK_STREAM as u64;
            s
        }),
        spec!("URING_CMD", IORING_OP_URING_CMD, Conn, InProgress, LEN_ANY, |_, fx| sqe(
            IORING_OP_URING_CMD,
            fx.fd
        )),
        spec!("SEND_ZC", IORING_OP_SEND_ZC, Conn, Yes, LEN_BYTES, |c, fx| rw(
            IORING_OP_SEND_ZC,
            c,
            fx,
            true
        )),
        spec!("SENDMSG_ZC", IORING_OP_SENDMSG_ZC, Conn, Yes, LEN_ANY, |c, fx| msg(
            IORING_OP_SENDMSG_ZC,
            c,
            fx,
            true
        )),
        spec!("READ_MULTISHOT", IORING_OP_READ_MULTISHOT, ConnGroup, Yes, LEN_ANY, |_, fx| {
            let mut s = sqe(IORING_OP_READ_MULTISHOT, fx.fd);
            s.flags = IOSQE_BUFFER_SELECT;
            s.buf_index = fx.group;
            s
        }),
        un("WAITID", IORING_OP_WAITID),
        // The futex ops take their flags in `fd`: FUTEX2_SIZE_U32, with a null
        // futex address (-EFAULT, never a wait).
        spec!("FUTEX_WAIT", IORING_OP_FUTEX_WAIT, None, Unsupported, LEN_ANY, |_, _| sqe(
            IORING_OP_FUTEX_WAIT,
            2
        )),
        spec!("FUTEX_WAKE", IORING_OP_FUTEX_WAKE, None, Unsupported, LEN_ANY, |_, _| sqe(
            IORING_OP_FUTEX_WAKE,
            2
        )),
        spec!("FUTEX_WAITV", IORING_OP_FUTEX_WAITV, None, Unsupported, LEN_ANY, |_, _| sqe(
            IORING_OP_FUTEX_WAITV,
            0
        )),
        spec!("FIXED_FD_INSTALL", IORING_OP_FIXED_FD_INSTALL, Fresh, InProgress, LEN_ANY, plain(IORING_OP_FIXED_FD_INSTALL)),
        un("FTRUNCATE", IORING_OP_FTRUNCATE),
        spec!("BIND", IORING_OP_BIND, Fresh, Yes, LEN_ANY, |_, fx| {
            let mut s = sqe(IORING_OP_BIND, fx.fd);
            s.addr = fx.local as u64;
            s.off = 16;
            s
        }),
        spec!("LISTEN", IORING_OP_LISTEN, Fresh, Yes, LEN_ANY, |_, fx| {
            let mut s = sqe(IORING_OP_LISTEN, fx.fd);
            s.len = 16;
            s
        }),
        un("RECV_ZC", IORING_OP_RECV_ZC),
        un("EPOLL_WAIT", IORING_OP_EPOLL_WAIT),
        spec!("READV_FIXED", IORING_OP_READV_FIXED, Conn, InProgress, LEN_IOVECS, |c, fx| rwv(
            IORING_OP_READV_FIXED,
            c,
            fx,
            false
        )),
        spec!("WRITEV_FIXED", IORING_OP_WRITEV_FIXED, Conn, InProgress, LEN_IOVECS, |c, fx| rwv(
            IORING_OP_WRITEV_FIXED,
            c,
            fx,
            true
        )),
        un("PIPE", IORING_OP_PIPE),
        spec!("NOP128", IORING_OP_NOP128, None, Yes, LEN_ANY, plain(IORING_OP_NOP128)),
        spec!("URING_CMD128", IORING_OP_URING_CMD128, Fresh, Yes, LEN_ANY, plain(IORING_OP_URING_CMD128)),
        spec!("opcode 65 (IORING_OP_LAST)", 65, None, Yes, LEN_ANY, plain(65)),
        spec!("opcode 66", 66, None, Yes, LEN_ANY, plain(66)),
        spec!("opcode 200", 200, None, Yes, LEN_ANY, plain(200)),
        spec!("opcode 255", 255, None, Yes, LEN_ANY, plain(255)),
    ]
}
