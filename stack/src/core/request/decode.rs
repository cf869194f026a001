//! Each opcode's field and flag checks (see the parent module).

use ringline_ring::abi::*;

use super::*;

use crate::errno::{EAGAIN, EFAULT, EISCONN, ESOCKTNOSUPPORT, ESPIPE};
use crate::legacy::MAX_BIDS_PER_BGID;
use crate::usermem::UIO_MAXIOV;

/// `sizeof(struct sockaddr_storage)`: the longest address a sendto takes.
const SOCKADDR_STORAGE_LEN: u32 = 128;

/// `RWF_*` (`<linux/fs.h>`).
const RWF_HIPRI: u32 = 0x0000_0001;
const RWF_NOWAIT: u32 = 0x0000_0008;
const RWF_ATOMIC: u32 = 0x0000_0040;
const RWF_DONTCACHE: u32 = 0x0000_0080;
/// Every `RWF_*` flag Linux 6.18 defines (`RWF_SUPPORTED`: HIPRI, DSYNC,
/// SYNC, NOWAIT, APPEND, NOAPPEND, ATOMIC, DONTCACHE, NOSIGNAL).
const RWF_SUPPORTED: u32 = 0x0000_01ff;
/// `EPOLLONESHOT`.
const EPOLLONESHOT: u32 = 1 << 30;
/// `MSG_FASTOPEN`.
const MSG_FASTOPEN: u32 = 0x2000_0000;

impl Request {
    /// Checks `sqe` as the kernel's submission path and prep functions do and
    /// returns its request. Reads no memory and no engine state.
    ///
    /// Order: the checks every SQE gets (`check_common`), then
    /// the opcode's.
    #[inline(always)]
    pub(crate) fn decode(sqe: &Sqe) -> Result<Request, Errno> {
        check_common(sqe)?;
        match sqe.opcode {
            IORING_OP_NOP => decode_nop(sqe),
            IORING_OP_SOCKET => decode_socket(sqe),
            IORING_OP_BIND => decode_bind(sqe),
            IORING_OP_LISTEN => decode_listen(sqe),
            IORING_OP_ACCEPT => decode_accept(sqe),
            IORING_OP_CONNECT => decode_connect(sqe),
            IORING_OP_RECV
            | IORING_OP_READ
            | IORING_OP_READV
            | IORING_OP_RECVMSG
            | IORING_OP_READ_MULTISHOT => decode_recv(sqe),
            IORING_OP_SEND | IORING_OP_WRITE | IORING_OP_WRITEV | IORING_OP_SEND_ZC
            | IORING_OP_SENDMSG | IORING_OP_SENDMSG_ZC => decode_send(sqe),
            IORING_OP_CLOSE => decode_close(sqe),
            IORING_OP_READ_FIXED | IORING_OP_WRITE_FIXED => decode_rw_fixed(sqe),
            IORING_OP_URING_CMD => decode_uring_cmd(sqe),
            IORING_OP_SHUTDOWN => decode_shutdown(sqe),
            IORING_OP_POLL_ADD => decode_poll_add(sqe),
            IORING_OP_POLL_REMOVE => decode_poll_remove(sqe),
            IORING_OP_ASYNC_CANCEL => decode_cancel(sqe),
            IORING_OP_PROVIDE_BUFFERS => decode_provide_buffers(sqe),
            IORING_OP_REMOVE_BUFFERS => decode_remove_buffers(sqe),
            IORING_OP_TIMEOUT => decode_timeout(sqe).map(Request::Timeout),
            IORING_OP_TIMEOUT_REMOVE => decode_timeout_remove(sqe),
            IORING_OP_LINK_TIMEOUT => decode_link_timeout(sqe),
            IORING_OP_MSG_RING => decode_msg_ring(sqe),
            // Unreachable after check_common; kept so the match stands alone.
            op if op >= IORING_OP_LAST => Err(EINVAL),
            _ => Err(EOPNOTSUPP),
        }
    }
}

/// The checks every SQE gets, whatever its opcode (the engine's
/// Linux's `io_init_req`). A LINK_TIMEOUT armed behind a running request is
/// decoded too, so it gets them as well, as every SQE does in Linux.
#[inline(always)]
fn check_common(sqe: &Sqe) -> Result<(), Errno> {
    // io_init_req: opcode >= IORING_OP_LAST is -EINVAL.
    if sqe.opcode >= IORING_OP_LAST {
        return Err(EINVAL);
    }
    // io_init_req: a 128-byte SQE op on a ring without IORING_SETUP_SQE_MIXED
    // (ringline's SQEs are always 64 bytes).
    if matches!(sqe.opcode, IORING_OP_NOP128 | IORING_OP_URING_CMD128) {
        return Err(EINVAL);
    }
    // io_init_req: an SQE flag Linux does not define is -EINVAL.
    if sqe.flags & !IOSQE_ALL != 0 {
        return Err(EINVAL);
    }
    // IOSQE_FIXED_FILE: the slot is looked up at issue (io_assign_file),
    // after the opcode's prep.
    // io_init_req: an unknown personality is -EINVAL; ringline registers none.
    if sqe.personality != 0 {
        return Err(EINVAL);
    }
    // io_init_req: BUFFER_SELECT on an opcode without buffer selection is
    // -EOPNOTSUPP (`io_issue_def::buffer_select`: the receives, READV and
    // SEND; a URING_CMD's prep checks it against its MULTISHOT flag).
    if sqe.flags & IOSQE_BUFFER_SELECT != 0
        && !matches!(
            sqe.opcode,
            IORING_OP_RECV
                | IORING_OP_READ
                | IORING_OP_READV
                | IORING_OP_RECVMSG
                | IORING_OP_READ_MULTISHOT
                | IORING_OP_SEND
                | IORING_OP_URING_CMD
        )
    {
        return Err(EOPNOTSUPP);
    }
    // io_init_req: `ioprio` on an op that has none (`io_issue_def::ioprio`).
    if sqe.ioprio != 0 && !uses_ioprio(sqe.opcode) {
        return Err(EINVAL);
    }
    Ok(())
}

/// The ops whose `io_issue_def` has `ioprio` (Linux 6.18): an I/O priority
/// for the file ops, flag bits for the socket ops. Any other op with a
/// non-zero `ioprio` is `-EINVAL` before its prep runs.
#[inline(always)]
fn uses_ioprio(op: u8) -> bool {
    matches!(
        op,
        IORING_OP_READV
            | IORING_OP_WRITEV
            | IORING_OP_READ_FIXED
            | IORING_OP_WRITE_FIXED
            | IORING_OP_SENDMSG
            | IORING_OP_RECVMSG
            | IORING_OP_ACCEPT
            | IORING_OP_READ
            | IORING_OP_WRITE
            | IORING_OP_SEND
            | IORING_OP_RECV
            | IORING_OP_SEND_ZC
            | IORING_OP_SENDMSG_ZC
            | IORING_OP_READV_FIXED
            | IORING_OP_WRITEV_FIXED
    )
}

/// `splice_fd_in` / `file_index` set where an op's prep wants it 0.
#[inline(always)]
fn reserved(fields: &[u64]) -> Result<(), Errno> {
    if fields.iter().any(|&f| f != 0) {
        return Err(EINVAL);
    }
    Ok(())
}

#[inline(always)]
fn decode_nop(sqe: &Sqe) -> Result<Request, Errno> {
    const KNOWN: u32 = IORING_NOP_INJECT_RESULT
        | IORING_NOP_FILE
        | IORING_NOP_FIXED_FILE
        | IORING_NOP_FIXED_BUFFER
        | IORING_NOP_TW;
    // io_nop_prep: unknown nop_flags; IORING_NOP_CQE32 needs a ring with
    // 32-byte CQEs, which ringline's never are.
    if sqe.op_flags & !KNOWN != 0 {
        return Err(EINVAL);
    }
    let f = sqe.op_flags;
    // io_nop_prep, io_nop: IORING_NOP_FILE looks the fd up at issue (with
    // IORING_NOP_FIXED_FILE a file-table slot; without NOP_FILE that flag
    // means nothing); IORING_NOP_FIXED_BUFFER looks up registered buffer
    // `buf_index`. IORING_NOP_TW only changes how Linux posts the CQE.
    let file = f & IORING_NOP_FILE != 0;
    Ok(Request::Nop {
        inject: (f & IORING_NOP_INJECT_RESULT != 0).then_some(sqe.len as i32),
        file,
        fixed_file: file && f & IORING_NOP_FIXED_FILE != 0,
        buf: (f & IORING_NOP_FIXED_BUFFER != 0).then_some(sqe.buf_index),
    })
}

/// The direct descriptor `file_index` asks for (0: none).
#[inline]
fn direct(file_index: u32) -> Option<Direct> {
    match file_index {
        0 => None,
        IORING_FILE_INDEX_ALLOC => Some(Direct::Alloc),
        i => Some(Direct::Slot(i - 1)),
    }
}

fn decode_socket(sqe: &Sqe) -> Result<Request, Errno> {
    // io_socket_prep: addr, rw_flags, buf_index must be 0.
    if sqe.addr != 0 || sqe.op_flags != 0 || sqe.buf_index != 0 {
        return Err(EINVAL);
    }
    // io_socket_prep: a direct descriptor cannot be close-on-exec.
    if sqe.file_index != 0 && sqe.off & u64::from(SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    // What socket(2) answers for the domain, type and protocol ringline lacks
    // (io_socket_prep keeps `off` and `len` as ints).
    if sqe.fd != libc::AF_INET {
        return Err(EAFNOSUPPORT);
    }
    let ty = sqe.off as u32;
    let type_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    if ty & !(0xf | type_flags) != 0 {
        return Err(EINVAL);
    }
    // __sock_create: a type past SOCK_MAX (11) or a negative protocol, or one
    // past IPPROTO_MAX (263), is -EINVAL; inet_create: a type AF_INET lacks
    // (0, RDM, SEQPACKET, DCCP, PACKET) -ESOCKTNOSUPPORT.
    let (kind, proto) = (ty & 0xf, sqe.len as i32);
    if kind >= 11 || !(0..263).contains(&proto) {
        return Err(EINVAL);
    }
    if !matches!(kind, 1..=3) {
        return Err(ESOCKTNOSUPPORT);
    }
    // UDP and raw sockets: ringline has TCP only.
    if kind != libc::SOCK_STREAM as u32 {
        return Err(EPROTONOSUPPORT);
    }
    if proto != 0 && proto != libc::IPPROTO_TCP {
        return Err(EPROTONOSUPPORT);
    }
    Ok(Request::Socket {
        nonblock: ty & SOCK_NONBLOCK != 0,
        cloexec: ty & SOCK_CLOEXEC != 0,
        direct: direct(sqe.file_index),
    })
}

/// The `addrlen` check of BIND and CONNECT (the engine's `read_sockaddr`;
/// `inet_bind` / `tcp_v4_connect` in Linux, at issue): shorter than a
/// `sockaddr_in` is `-EINVAL`.
#[inline]
fn check_addrlen(addrlen: u64) -> Result<(), Errno> {
    // The prep keeps it as an int; move_addr_to_kernel: negative or longer
    // than a sockaddr_storage is -EINVAL.
    let len = addrlen as u32 as i32;
    if len < SOCKADDR_IN_LEN as i32 || len > SOCKADDR_STORAGE_LEN as i32 {
        return Err(EINVAL);
    }
    Ok(())
}

/// io_bind_prep, io_connect_prep: `len`, `buf_index`, `rw_flags`,
/// `splice_fd_in` must be 0.
#[inline]
fn check_bind_connect(sqe: &Sqe) -> Result<(), Errno> {
    reserved(&[
        sqe.len.into(),
        sqe.buf_index.into(),
        sqe.op_flags.into(),
        sqe.file_index.into(),
    ])
}

fn decode_listen(sqe: &Sqe) -> Result<Request, Errno> {
    // io_listen_prep: addr, buf_index, rw_flags, splice_fd_in, addr2 must be 0.
    reserved(&[
        sqe.addr,
        sqe.buf_index.into(),
        sqe.op_flags.into(),
        sqe.file_index.into(),
        sqe.off,
    ])?;
    Ok(Request::Listen { backlog: sqe.len })
}

fn decode_bind(sqe: &Sqe) -> Result<Request, Errno> {
    check_bind_connect(sqe)?;
    // Order: before the request layer, the socket check (-EBADF, -EINVAL for a non-fresh or
    // bound one) before this addrlen check.
    check_addrlen(sqe.off)?;
    Ok(Request::Bind {
        addr: sqe.addr,
        addrlen: sqe.off,
    })
}

fn decode_connect(sqe: &Sqe) -> Result<Request, Errno> {
    check_bind_connect(sqe)?;
    // Order: before the request layer, the socket check (-EBADF, -EALREADY, -EISCONN)
    // before this addrlen check.
    check_addrlen(sqe.off)?;
    Ok(Request::Connect {
        addr: sqe.addr,
        addrlen: sqe.off,
    })
}

#[inline(always)]
fn decode_accept(sqe: &Sqe) -> Result<Request, Errno> {
    let allowed = IORING_ACCEPT_MULTISHOT | IORING_ACCEPT_DONTWAIT | IORING_ACCEPT_POLL_FIRST;
    // io_accept_prep: len and buf_index must be 0, unknown ioprio flags.
    if sqe.ioprio & !allowed != 0 || sqe.len != 0 || sqe.buf_index != 0 {
        return Err(EINVAL);
    }
    // io_accept_prep: a direct descriptor cannot be close-on-exec, and a
    // multishot can only allocate its slots.
    if sqe.file_index != 0
        && (sqe.op_flags & SOCK_CLOEXEC != 0
            || (sqe.ioprio & IORING_ACCEPT_MULTISHOT != 0
                && sqe.file_index != IORING_FILE_INDEX_ALLOC))
    {
        return Err(EINVAL);
    }
    // io_accept_prep: accept_flags beyond SOCK_NONBLOCK | SOCK_CLOEXEC.
    if sqe.op_flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(EINVAL);
    }
    Ok(Request::Accept(Accept {
        addr: sqe.addr,
        addrlen: sqe.off,
        multishot: sqe.ioprio & IORING_ACCEPT_MULTISHOT != 0,
        dontwait: sqe.ioprio & IORING_ACCEPT_DONTWAIT != 0,
        poll_first: sqe.ioprio & IORING_ACCEPT_POLL_FIRST != 0,
        nonblock: sqe.op_flags & SOCK_NONBLOCK != 0,
        cloexec: sqe.op_flags & SOCK_CLOEXEC != 0,
        direct: direct(sqe.file_index),
    }))
}

/// READ/WRITE `rw_flags` as the recv/send flags they amount to on a socket.
#[inline(always)]
fn nowait(rw_flags: u32) -> u32 {
    if rw_flags & RWF_NOWAIT != 0 {
        libc::MSG_DONTWAIT as u32
    } else {
        0
    }
}

#[inline(always)]
fn decode_recv(sqe: &Sqe) -> Result<Request, Errno> {
    let kind = match sqe.opcode {
        IORING_OP_READ | IORING_OP_READ_MULTISHOT => RecvKind::Read,
        IORING_OP_READV => RecvKind::Readv,
        IORING_OP_RECVMSG => RecvKind::RecvMsg,
        _ => RecvKind::Recv,
    };
    let read = kind.is_rw();
    let mut attr_err = None;
    if read {
        // io_prep_rw: ioprio is an I/O priority, not flags.
        check_ioprio(sqe.ioprio)?;
        attr_err = rw_attr(sqe)?;
        // io_prep_rwv's iovec import: more than UIO_MAXIOV iovecs; with
        // buffer select (io_iov_buffer_select_prep) exactly one iovec, whose
        // length caps the read (read by the executor).
        if kind == RecvKind::Readv
            && (sqe.len > UIO_MAXIOV || (sqe.flags & IOSQE_BUFFER_SELECT != 0 && sqe.len != 1))
        {
            return Err(EINVAL);
        }
    } else {
        // io_recvmsg_prep: addr2 must be 0; unknown ioprio flags; RECVMSG
        // takes no bundle.
        let known = IORING_RECVSEND_POLL_FIRST | IORING_RECV_MULTISHOT | IORING_RECVSEND_BUNDLE;
        if sqe.off != 0
            || sqe.ioprio & !known != 0
            || (kind == RecvKind::RecvMsg && sqe.ioprio & IORING_RECVSEND_BUNDLE != 0)
        {
            return Err(EINVAL);
        }
        // A length past INT_MAX.
        if sqe.len > i32::MAX as u32 {
            return Err(EINVAL);
        }
        // io_recvmsg_prep: `optlen` is the multishot RECV's total cap, and
        // must be 0 everywhere else.
        let mshot_recv = kind == RecvKind::Recv && sqe.ioprio & IORING_RECV_MULTISHOT != 0;
        if sqe.file_index != 0 && !mshot_recv {
            return Err(EINVAL);
        }
    }
    let select = sqe.flags & IOSQE_BUFFER_SELECT != 0;
    let read_multishot = sqe.opcode == IORING_OP_READ_MULTISHOT;
    // io_read_mshot_prep: provided buffers only, and neither a buffer nor a
    // length (each read fills a whole buffer).
    if read_multishot && (!select || sqe.addr != 0 || sqe.len != 0) {
        return Err(EINVAL);
    }
    let multishot = read_multishot || (!read && sqe.ioprio & IORING_RECV_MULTISHOT != 0);
    // READ, READV: of the `rw_flags`, `RWF_NOWAIT` means what `MSG_DONTWAIT`
    // means to RECV (nothing there: `-EAGAIN` at once); the others are
    // refused or have no effect on a socket (`rw_issue_error`).
    let msg_flags = if read {
        nowait(sqe.op_flags)
    } else {
        sqe.op_flags
    };
    // io_recvmsg_prep: multishot needs buffer selection and excludes MSG_WAITALL.
    if multishot && (!select || msg_flags & MSG_WAITALL != 0) {
        return Err(EINVAL);
    }
    Ok(Request::Recv(Recv {
        kind,
        addr: sqe.addr,
        len: sqe.len,
        msg_flags,
        group: select.then_some(sqe.buf_group()),
        multishot,
        // io_recvmsg_prep: a multishot RECV's `optlen` (checked 0 above
        // elsewhere) is its total byte cap.
        total: if multishot && !read { sqe.optlen() } else { 0 },
        bundle: !read && sqe.ioprio & IORING_RECVSEND_BUNDLE != 0,
        poll_first: !read && sqe.ioprio & IORING_RECVSEND_POLL_FIRST != 0,
        issue_err: if read {
            attr_err.or_else(|| rw_issue_error(sqe.op_flags, sqe.off))
        } else {
            recv_issue_error(sqe.op_flags, multishot)
        },
    }))
}

/// What TCP's recvmsg answers at once for these `msg_flags`, whatever the
/// socket holds: `MSG_ERRQUEUE` reads the (always empty) error queue,
/// `-EAGAIN`; `MSG_OOB` wants urgent data, which ringline never has,
/// `-EINVAL` (`tcp_recv_urg`).
#[inline]
fn recv_issue_error(flags: u32, multishot: bool) -> Option<Errno> {
    if flags & libc::MSG_ERRQUEUE as u32 != 0 && !multishot {
        return Some(EAGAIN);
    }
    if flags & libc::MSG_OOB as u32 != 0 {
        return Some(EINVAL);
    }
    None
}

/// io_prep_rw's attributes: `attr_type_mask` (the SQE's last 8 bytes) names
/// the attributes at `attr_ptr` (`addr3`). Only `IORING_RW_ATTR_FLAG_PI`
/// exists (other bits `-EINVAL`); its 32-byte descriptor is copied in at
/// prep (unreadable: `-EFAULT`), and protection information needs an
/// `O_DIRECT` block file: a socket answers `-EOPNOTSUPP` at issue (returned).
#[inline]
fn rw_attr(sqe: &Sqe) -> Result<Option<Errno>, Errno> {
    const IORING_RW_ATTR_FLAG_PI: u64 = 1;
    match sqe.pad2 {
        0 => Ok(None),
        IORING_RW_ATTR_FLAG_PI => {
            crate::usermem::check(sqe.addr3, 32)?;
            Ok(Some(EOPNOTSUPP))
        }
        _ => Err(EINVAL),
    }
}

/// `ioprio_check_cap`, as io_prep_rw runs it on a non-zero `ioprio`: class
/// NONE takes no level, classes above IDLE do not exist. The hint bits
/// (3..=12) are not checked. Class RT needs `CAP_SYS_NICE` in Linux;
/// ringline has no privilege model and takes it.
#[inline]
fn check_ioprio(ioprio: u16) -> Result<(), Errno> {
    let (class, level) = (ioprio >> 13, ioprio & 0x7);
    match class {
        0 if level != 0 => Err(EINVAL),
        0..=3 => Ok(()),
        _ => Err(EINVAL),
    }
}

/// What Linux reports at issue, once the file is found, for a READ, WRITE,
/// READV or WRITEV on a socket with these `rw_flags` and offset
/// (`kiocb_set_rw_flags`, io_rw_init_file, rw_verify_area, then
/// `sock_read_iter`/`sock_write_iter`), in that order:
/// an unknown flag, `RWF_ATOMIC` or `RWF_DONTCACHE` (no socket supports them)
/// is `-EOPNOTSUPP`; `RWF_HIPRI` is `-EINVAL` on a ring without IOPOLL; an
/// offset below -1 is `-EINVAL`; any other offset but 0 and -1 (the file
/// position, always 0 for a socket) is `-ESPIPE`.
#[inline]
fn rw_issue_error(flags: u32, off: u64) -> Option<Errno> {
    if flags & (!RWF_SUPPORTED | RWF_ATOMIC | RWF_DONTCACHE) != 0 {
        return Some(EOPNOTSUPP);
    }
    if flags & RWF_HIPRI != 0 {
        return Some(EINVAL);
    }
    match off as i64 {
        0 | -1 => None,
        o if o < -1 => Some(EINVAL),
        _ => Some(ESPIPE),
    }
}

/// URING_CMD (io_uring_cmd_prep): `__pad1` (the high half of `off`) must be
/// 0 and `uring_cmd_flags` known, `IORING_URING_CMD_MULTISHOT` exactly when
/// `IOSQE_BUFFER_SELECT`; `cmd_op` is the command, checked at issue (a
/// socket command takes neither: they change nothing).
fn decode_uring_cmd(sqe: &Sqe) -> Result<Request, Errno> {
    let mshot = sqe.op_flags & IORING_URING_CMD_MULTISHOT != 0;
    if sqe.off >> 32 != 0
        || sqe.op_flags & !(IORING_URING_CMD_FIXED | IORING_URING_CMD_MULTISHOT) != 0
        || mshot != (sqe.flags & IOSQE_BUFFER_SELECT != 0)
    {
        return Err(EINVAL);
    }
    Ok(Request::SockCmd(SockCmd {
        cmd_op: sqe.off as u32,
        level: sqe.addr as u32,
        optname: (sqe.addr >> 32) as u32,
        optlen: sqe.file_index,
        optval: sqe.addr3,
    }))
}

/// READ_FIXED, WRITE_FIXED: READ's and WRITE's checks (io_prep_rw, its
/// attributes too); the registered buffer is looked up at issue
/// (io_import_reg_buf).
fn decode_rw_fixed(sqe: &Sqe) -> Result<Request, Errno> {
    check_ioprio(sqe.ioprio)?;
    let attr_err = rw_attr(sqe)?;
    Ok(Request::RwFixed(RwFixed {
        write: sqe.opcode == IORING_OP_WRITE_FIXED,
        buf: sqe.buf_index,
        addr: sqe.addr,
        len: sqe.len,
        msg_flags: nowait(sqe.op_flags),
        issue_err: attr_err.or_else(|| rw_issue_error(sqe.op_flags, sqe.off)),
    }))
}

#[inline(always)]
fn decode_send(sqe: &Sqe) -> Result<Request, Errno> {
    let kind = match sqe.opcode {
        IORING_OP_WRITE => SendKind::Write,
        IORING_OP_WRITEV => SendKind::Writev,
        IORING_OP_SEND_ZC => SendKind::SendZc,
        IORING_OP_SENDMSG => SendKind::SendMsg,
        IORING_OP_SENDMSG_ZC => SendKind::SendMsgZc,
        _ => SendKind::Send,
    };
    let write = kind.is_rw();
    let zc = kind.zero_copy();
    // io_send_zc_prep: CQE_SKIP_SUCCESS would hide the request CQE before its
    // notification. The only zero-copy check before the notification exists:
    // every later failure is posted with F_MORE, then the notification
    // (`issue_err`).
    // io_send_zc_prep: addr3 and the pad must be 0, also before it.
    if zc && (sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0 || sqe.addr3 != 0 || sqe.pad2 != 0) {
        return Err(EINVAL);
    }
    let mut issue_err = None;
    if write {
        // io_prep_rw: ioprio is an I/O priority, not flags.
        check_ioprio(sqe.ioprio)?;
        issue_err = rw_attr(sqe)?;
        // io_prep_rwv's iovec import: more than UIO_MAXIOV iovecs.
        if kind == SendKind::Writev && sqe.len > UIO_MAXIOV {
            return Err(EINVAL);
        }
        issue_err = issue_err.or_else(|| rw_issue_error(sqe.op_flags, sqe.off));
    } else {
        let allowed = match kind {
            SendKind::SendZc => {
                IORING_RECVSEND_POLL_FIRST | IORING_SEND_ZC_REPORT_USAGE | IORING_RECVSEND_FIXED_BUF
            }
            SendKind::SendMsgZc => {
                IORING_RECVSEND_POLL_FIRST
                    | IORING_SEND_ZC_REPORT_USAGE
                    | IORING_RECVSEND_FIXED_BUF
                    | IORING_SEND_VECTORIZED
            }
            // SENDMSG_FLAGS: SEND_VECTORIZED is taken (SENDMSG is vectored).
            SendKind::SendMsg => IORING_RECVSEND_POLL_FIRST | IORING_SEND_VECTORIZED,
            // io_sendmsg_prep: a bundle (with buffer select: the group's
            // buffers as the data; without, the buffer, then a 0).
            SendKind::Send => IORING_RECVSEND_POLL_FIRST | IORING_RECVSEND_BUNDLE,
            _ => IORING_RECVSEND_POLL_FIRST,
        };
        // io_sendmsg_prep / io_send_zc_prep: unknown ioprio flags; this
        // includes IORING_RECVSEND_FIXED_BUF (SEND_ZC aside) and BUNDLE.
        if sqe.ioprio & !allowed != 0 {
            if !zc {
                return Err(EINVAL);
            }
            issue_err = Some(EINVAL);
        }
        // A sendto address (addr2, addr_len): io_sendmsg_prep copies it in
        // (move_addr_to_kernel: longer than a sockaddr_storage -EINVAL, an
        // address that cannot be read -EFAULT), and TCP then ignores it on a
        // connected socket.
        if !kind.is_msg() && sqe.off != 0 {
            let alen = sqe.file_index & 0xffff;
            let bad = if alen > SOCKADDR_STORAGE_LEN {
                Some(EINVAL)
            } else {
                crate::usermem::check(sqe.off, alen as usize).err()
            };
            if let Some(e) = bad {
                if !zc {
                    return Err(e);
                }
                issue_err = issue_err.or(Some(e));
            }
        }
        // io_sendmsg_prep, io_send_zc_prep: SENDMSG takes neither `addr2`
        // nor `file_index`; SEND's `file_index` is `addr_len` and a pad
        // that must be 0; SENDMSG's length (unused) not past INT_MAX.
        let bad = if kind.is_msg() {
            sqe.off != 0 || sqe.file_index != 0 || (!zc && sqe.len > i32::MAX as u32)
        } else {
            sqe.file_index >> 16 != 0
        };
        if bad {
            if !zc {
                return Err(EINVAL);
            }
            issue_err = issue_err.or(Some(EINVAL));
        }
        // SENDMSG_ZC from registered buffers (its iovecs within them):
        // not supported, refused at issue as an import failure (before the
        // send, so before MSG_FASTOPEN's answer below).
        if kind == SendKind::SendMsgZc && sqe.ioprio & IORING_RECVSEND_FIXED_BUF != 0 {
            issue_err = issue_err.or(Some(EFAULT));
        }
        // MSG_FASTOPEN: Linux's TCP tries a Fast Open connect, and a socket
        // that is connected (or connecting) answers -EISCONN; ringline has no
        // Fast Open.
        if sqe.op_flags & MSG_FASTOPEN != 0 {
            issue_err = issue_err.or(Some(EISCONN));
        }
    }
    Ok(Request::Send(Send {
        kind,
        addr: sqe.addr,
        len: sqe.len,
        // WRITE, WRITEV: `RWF_NOWAIT` as MSG_DONTWAIT (no room: `-EAGAIN` at
        // once).
        msg_flags: if write {
            nowait(sqe.op_flags)
        } else {
            sqe.op_flags
        },
        poll_first: !write && sqe.ioprio & IORING_RECVSEND_POLL_FIRST != 0,
        report_usage: zc && sqe.ioprio & IORING_SEND_ZC_REPORT_USAGE != 0,
        data: if kind == SendKind::SendZc && sqe.ioprio & IORING_RECVSEND_FIXED_BUF != 0 {
            // SEND_ZC: the buffer is looked up at issue (io_send_zc_import).
            SendData::Fixed
        } else if sqe.flags & IOSQE_BUFFER_SELECT != 0 {
            // SEND (check_common allows buffer select on no other send).
            SendData::Group(sqe.buf_group())
        } else {
            SendData::User
        },
        bundle: kind == SendKind::Send && sqe.ioprio & IORING_RECVSEND_BUNDLE != 0,
        issue_err,
    }))
}

#[inline(always)]
fn decode_close(sqe: &Sqe) -> Result<Request, Errno> {
    // io_close_prep: off, addr, len, rw_flags, buf_index must be 0 (and, as
    // Linux 6.18 answers, ioprio).
    if sqe.off != 0
        || sqe.addr != 0
        || sqe.len != 0
        || sqe.op_flags != 0
        || sqe.buf_index != 0
        || sqe.ioprio != 0
    {
        return Err(EINVAL);
    }
    // io_close_prep: the fd to close cannot be a fixed one (a slot is closed
    // with file_index), and not both an fd and a slot.
    if sqe.flags & IOSQE_FIXED_FILE != 0 {
        return Err(EBADF);
    }
    if sqe.file_index != 0 && sqe.fd != 0 {
        return Err(EINVAL);
    }
    Ok(Request::Close {
        slot: sqe.file_index,
    })
}

fn decode_shutdown(sqe: &Sqe) -> Result<Request, Errno> {
    // io_shutdown_prep: off, addr, rw_flags, buf_index, splice_fd_in must be 0.
    reserved(&[
        sqe.off,
        sqe.addr,
        sqe.op_flags.into(),
        sqe.buf_index.into(),
        sqe.file_index.into(),
    ])?;
    // shutdown(2)'s check of `how`.
    let how = match sqe.len as i32 {
        libc::SHUT_RD => ShutdownHow::Read,
        libc::SHUT_WR => ShutdownHow::Write,
        libc::SHUT_RDWR => ShutdownHow::Both,
        _ => return Err(EINVAL),
    };
    Ok(Request::Shutdown { how })
}

#[inline(always)]
fn decode_poll_add(sqe: &Sqe) -> Result<Request, Errno> {
    let flags = sqe.len;
    // io_poll_add_prep: unknown flags (IORING_POLL_ADD_LEVEL included).
    if flags & !(IORING_POLL_ADD_MULTI | RINGLINE_POLL_COALESCED) != 0 {
        return Err(EINVAL);
    }
    let coalesced = flags & RINGLINE_POLL_COALESCED != 0;
    // io_poll_parse_events: EPOLLONESHOT in the events makes even a MULTI
    // poll one-shot.
    let multi = flags & IORING_POLL_ADD_MULTI != 0
        && (coalesced || sqe.poll32_events() & EPOLLONESHOT == 0);
    // Linux wants addr 0 (io_poll_add_prep); the coalesced mode uses it for
    // the ready word, a 4-byte aligned u32, and is always persistent.
    let mode = if coalesced {
        if !multi || !sqe.addr.is_multiple_of(4) {
            return Err(EINVAL);
        }
        // Order: before the request layer, the check that the word is mapped (usermem::check,
        // -EFAULT) here, before the off/buf_index/ioprio and
        // CQE_SKIP_SUCCESS checks below; that check stays in the executor.
        PollMode::Coalesced { word: sqe.addr }
    } else if sqe.addr != 0 {
        return Err(EINVAL);
    } else if multi {
        PollMode::Multi
    } else {
        PollMode::OneShot
    };
    // io_poll_add_prep: off, buf_index must be 0 (ioprio: ringline's check).
    if sqe.off != 0 || sqe.buf_index != 0 || sqe.ioprio != 0 {
        return Err(EINVAL);
    }
    // io_poll_add_prep: a multishot poll cannot skip its CQEs.
    if multi && sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0 {
        return Err(EINVAL);
    }
    Ok(Request::PollAdd {
        events: sqe.poll32_events(),
        mode,
    })
}

fn decode_poll_remove(sqe: &Sqe) -> Result<Request, Errno> {
    let flags = sqe.len;
    let known = IORING_POLL_ADD_MULTI | IORING_POLL_UPDATE_EVENTS | IORING_POLL_UPDATE_USER_DATA;
    // io_poll_remove_prep: buf_index and splice_fd_in must be 0; unknown
    // flags; MULTI alone means nothing; a new user_data (`off`) without
    // UPDATE_USER_DATA and events without UPDATE_EVENTS are refused.
    if flags & !known != 0
        || sqe.buf_index != 0
        || sqe.file_index != 0
        || flags == IORING_POLL_ADD_MULTI
        || (flags & IORING_POLL_UPDATE_USER_DATA == 0 && sqe.off != 0)
        || (flags & IORING_POLL_UPDATE_EVENTS == 0 && sqe.poll32_events() != 0)
    {
        return Err(EINVAL);
    }
    let new_events = (flags & IORING_POLL_UPDATE_EVENTS != 0).then_some(PollEvents {
        events: sqe.poll32_events(),
        multi: flags & IORING_POLL_ADD_MULTI != 0,
    });
    let new_user_data = (flags & IORING_POLL_UPDATE_USER_DATA != 0).then_some(sqe.off);
    Ok(Request::PollRemove {
        target: sqe.addr,
        new_events,
        new_user_data,
    })
}

/// Every cancel flag Linux knows (`CANCEL_FLAGS`).
pub(crate) const CANCEL_FLAGS: u32 = IORING_ASYNC_CANCEL_ALL
    | IORING_ASYNC_CANCEL_FD
    | IORING_ASYNC_CANCEL_ANY
    | IORING_ASYNC_CANCEL_FD_FIXED
    | IORING_ASYNC_CANCEL_USERDATA
    | IORING_ASYNC_CANCEL_OP;

fn decode_cancel(sqe: &Sqe) -> Result<Request, Errno> {
    let flags = sqe.op_flags;
    let known = CANCEL_FLAGS;
    // io_async_cancel_prep: off and splice_fd_in must be 0; unknown
    // cancel_flags.
    if sqe.off != 0 || sqe.file_index != 0 || flags & !known != 0 {
        return Err(EINVAL);
    }
    let any = flags & IORING_ASYNC_CANCEL_ANY != 0;
    let by_fd = flags & IORING_ASYNC_CANCEL_FD != 0;
    let by_op = flags & IORING_ASYNC_CANCEL_OP != 0;
    // io_async_cancel_prep: ANY matches everything, so neither FD nor OP
    // may join it. The OP key must be an opcode (ringline's check).
    if any && (by_fd || by_op) || by_op && sqe.len >= u32::from(IORING_OP_LAST) {
        return Err(EINVAL);
    }
    // io_async_cancel: with FD the fd is looked up at issue, a file-table
    // slot with FD_FIXED or IOSQE_FIXED_FILE (-EBADF if none).
    let fixed = sqe.flags & IOSQE_FIXED_FILE != 0;
    Ok(Request::Cancel(cancel_keys(
        flags,
        sqe.addr,
        sqe.fd,
        sqe.len as u8,
        fixed,
    )))
}

/// The keys of an ASYNC_CANCEL or an `IORING_REGISTER_SYNC_CANCEL` with
/// cancel flags `flags` (checked by the caller), user_data `addr`, `fd` and
/// opcode `op`; `fixed_file`: the fd is a slot even without FD_FIXED. With
/// ANY every request matches (Linux's `io_cancel_req_match` looks at no
/// other key then; ASYNC_CANCEL refuses ANY with FD or OP at prep).
pub(crate) fn cancel_keys(flags: u32, addr: u64, fd: i32, op: u8, fixed_file: bool) -> CancelMatch {
    let any = flags & IORING_ASYNC_CANCEL_ANY != 0;
    let by_fd = flags & IORING_ASYNC_CANCEL_FD != 0;
    let by_op = flags & IORING_ASYNC_CANCEL_OP != 0;
    // user_data is the key unless FD or OP say otherwise (USERDATA adds it back).
    let by_ud = !any && (!(by_fd || by_op) || flags & IORING_ASYNC_CANCEL_USERDATA != 0);
    CancelMatch {
        user_data: by_ud.then_some(addr),
        fd: by_fd.then_some(fd),
        fd_fixed: by_fd && (flags & IORING_ASYNC_CANCEL_FD_FIXED != 0 || fixed_file),
        opcode: (by_op && !any).then_some(op),
        any,
        all: any || flags & IORING_ASYNC_CANCEL_ALL != 0,
    }
}

fn decode_provide_buffers(sqe: &Sqe) -> Result<Request, Errno> {
    // Order: before the request layer, a group that is a registered buffer
    // ring (-EINVAL, engine state), then makes these checks.
    // io_provide_buffers_prep, in its order: rw_flags and splice_fd_in must
    // be 0; the count (`fd`, widened with its sign) 1..=65536 (-E2BIG);
    // a length; no overflow; the range within user space (`access_ok`,
    // -EFAULT: nothing is read yet, a buffer that is not mapped fails the
    // receive that uses it); the first id at most 65535 (-E2BIG) and the
    // last within the group (-EINVAL).
    reserved(&[sqe.op_flags.into(), sqe.file_index.into()])?;
    let count = i64::from(sqe.fd) as u64;
    if count == 0 || count > u64::from(MAX_BIDS_PER_BGID) {
        return Err(E2BIG);
    }
    let (count, len) = (count as u32, sqe.len);
    if len == 0 {
        return Err(EINVAL);
    }
    let size = u64::from(len) * u64::from(count);
    let end = sqe.addr.checked_add(size).ok_or(EOVERFLOW)?;
    if end > crate::usermem::USER_SPACE_END {
        return Err(EFAULT);
    }
    if sqe.off > u64::from(u16::MAX) {
        return Err(E2BIG);
    }
    let first_bid = sqe.off as u32;
    if first_bid + count > MAX_BIDS_PER_BGID {
        return Err(EINVAL);
    }
    Ok(Request::ProvideBuffers {
        addr: sqe.addr,
        len,
        count,
        group: sqe.buf_group(),
        first_bid: first_bid as u16,
    })
}

fn decode_remove_buffers(sqe: &Sqe) -> Result<Request, Errno> {
    // io_remove_buffers_prep: rw_flags, addr, off, len, splice_fd_in must be
    // 0; a count (`fd`, widened with its sign) of 1..=65536.
    reserved(&[
        sqe.op_flags.into(),
        sqe.addr,
        sqe.off,
        sqe.len.into(),
        sqe.file_index.into(),
    ])?;
    let count = i64::from(sqe.fd) as u64;
    if count == 0 || count > u64::from(MAX_BIDS_PER_BGID) {
        return Err(EINVAL);
    }
    Ok(Request::RemoveBuffers {
        count: sqe.fd as u32,
        group: sqe.buf_group(),
    })
}

/// The checks shared by TIMEOUT and LINK_TIMEOUT (the engine's
/// Linux's `__io_timeout_prep`); all come before the
/// executor reads the timespec.
#[inline]
fn decode_timeout(sqe: &Sqe) -> Result<TimeoutSpec, Errno> {
    const CLOCKS: u32 = IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_REALTIME;
    let flags = sqe.op_flags;
    // __io_timeout_prep: len must be 1 (one timespec); buf_index,
    // file_index, addr3 and the pad 0.
    if sqe.len != 1 || sqe.buf_index != 0 || sqe.file_index != 0 || sqe.addr3 != 0 || sqe.pad2 != 0
    {
        return Err(EINVAL);
    }
    let known =
        IORING_TIMEOUT_ABS | CLOCKS | IORING_TIMEOUT_ETIME_SUCCESS | IORING_TIMEOUT_MULTISHOT;
    // __io_timeout_prep: unknown flags, or two clocks at once.
    if flags & !known != 0 || flags & CLOCKS == CLOCKS {
        return Err(EINVAL);
    }
    // __io_timeout_prep: a multishot timer repeats an interval; an absolute
    // time has none.
    if flags & IORING_TIMEOUT_MULTISHOT != 0 && flags & IORING_TIMEOUT_ABS != 0 {
        return Err(EINVAL);
    }
    let clock = if flags & IORING_TIMEOUT_BOOTTIME != 0 {
        TimeoutClock::Boottime
    } else if flags & IORING_TIMEOUT_REALTIME != 0 {
        TimeoutClock::Realtime
    } else {
        TimeoutClock::Monotonic
    };
    Ok(TimeoutSpec {
        ts_addr: sqe.addr,
        abs: flags & IORING_TIMEOUT_ABS != 0,
        clock,
        multishot: flags & IORING_TIMEOUT_MULTISHOT != 0,
        etime_success: flags & IORING_TIMEOUT_ETIME_SUCCESS != 0,
        count: sqe.off,
    })
}

fn decode_link_timeout(sqe: &Sqe) -> Result<Request, Errno> {
    let spec = decode_timeout(sqe)?;
    // A link timeout fires once. Order: before the request layer this came
    // this check after reading the timespec (-EFAULT, -EINVAL).
    if spec.multishot {
        return Err(EINVAL);
    }
    Ok(Request::LinkTimeout(spec))
}

fn decode_msg_ring(sqe: &Sqe) -> Result<Request, Errno> {
    // __io_msg_ring_prep: buf_index must be 0 (personality: check_common),
    // msg_ring_flags known.
    if sqe.buf_index != 0
        || sqe.op_flags & !(IORING_MSG_RING_CQE_SKIP | IORING_MSG_RING_FLAGS_PASS) != 0
    {
        return Err(EINVAL);
    }
    Ok(Request::MsgRing(MsgRing {
        // io_msg: the command is a u32.
        cmd: sqe.addr as u32,
        user_data: sqe.off,
        len: sqe.len,
        src_fd: sqe.addr3 as u32,
        dst_fd: sqe.file_index,
        flags: sqe.op_flags,
    }))
}

fn decode_timeout_remove(sqe: &Sqe) -> Result<Request, Errno> {
    const UPDATES: u32 = IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE;
    // io_timeout_remove_prep: no IOSQE_FIXED_FILE; len, buf_index,
    // file_index, addr3 and the pad must be 0.
    if sqe.flags & IOSQE_FIXED_FILE != 0
        || sqe.len != 0
        || sqe.buf_index != 0
        || sqe.file_index != 0
        || sqe.addr3 != 0
        || sqe.pad2 != 0
    {
        return Err(EINVAL);
    }
    let flags = sqe.op_flags;
    if flags & UPDATES == 0 {
        // io_timeout_remove_prep: a plain remove takes no flags.
        if flags != 0 {
            return Err(EINVAL);
        }
        return Ok(Request::TimeoutRemove {
            target: sqe.addr,
            update: None,
        });
    }
    // io_timeout_remove_prep: only ABS may join an update flag (the timer
    // keeps its clock); ringline also rejects both update kinds at once.
    if flags & !(UPDATES | IORING_TIMEOUT_ABS) != 0 || flags & UPDATES == UPDATES {
        return Err(EINVAL);
    }
    Ok(Request::TimeoutRemove {
        target: sqe.addr,
        update: Some(TimeoutUpdate {
            ts_addr: sqe.off,
            abs: flags & IORING_TIMEOUT_ABS != 0,
            link: flags & IORING_LINK_TIMEOUT_UPDATE != 0,
        }),
    })
}
