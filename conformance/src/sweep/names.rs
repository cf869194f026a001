//! Names of the bits the sweep flips, for the report (` (MSG_PEEK)`).

use ringline_ring::abi;

fn wrap(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" ({s})")
    }
}

/// The socket ops whose `ioprio` and `op_flags` are send/recv flags.
pub fn net_op(op: u8) -> bool {
    use abi::*;
    matches!(
        op,
        IORING_OP_SEND
            | IORING_OP_RECV
            | IORING_OP_SENDMSG
            | IORING_OP_RECVMSG
            | IORING_OP_SEND_ZC
            | IORING_OP_SENDMSG_ZC
    )
}

/// The file read/write ops (an I/O priority in `ioprio`, `rw_flags`).
fn rw_op(op: u8) -> bool {
    use abi::*;
    matches!(
        op,
        IORING_OP_READ
            | IORING_OP_WRITE
            | IORING_OP_READV
            | IORING_OP_WRITEV
            | IORING_OP_READ_FIXED
            | IORING_OP_WRITE_FIXED
            | IORING_OP_READ_MULTISHOT
            | IORING_OP_READV_FIXED
            | IORING_OP_WRITEV_FIXED
    )
}

/// An `IOSQE_*` bit.
pub fn sqe_flag(n: u8) -> String {
    wrap(match n {
        0 => "FIXED_FILE",
        1 => "IO_DRAIN",
        2 => "IO_LINK",
        3 => "IO_HARDLINK",
        4 => "ASYNC",
        5 => "BUFFER_SELECT",
        6 => "CQE_SKIP_SUCCESS",
        _ => "unknown",
    })
}

/// An `ioprio` bit as the op reads it.
pub fn ioprio(op: u8, n: u8) -> String {
    wrap(if net_op(op) {
        match n {
            0 => "RECVSEND_POLL_FIRST",
            1 => "RECV_MULTISHOT",
            2 => "RECVSEND_FIXED_BUF",
            3 => "SEND_ZC_REPORT_USAGE",
            4 => "RECVSEND_BUNDLE",
            5 => "SEND_VECTORIZED",
            _ => "",
        }
    } else if op == abi::IORING_OP_ACCEPT {
        match n {
            0 => "ACCEPT_MULTISHOT",
            1 => "ACCEPT_DONTWAIT",
            2 => "ACCEPT_POLL_FIRST",
            _ => "",
        }
    } else if rw_op(op) {
        match n {
            13..=15 => "I/O priority class",
            0..=2 => "I/O priority level",
            _ => "I/O priority hint",
        }
    } else {
        ""
    })
}

const MSG: [&str; 32] = [
    "MSG_OOB",
    "MSG_PEEK",
    "MSG_DONTROUTE",
    "MSG_CTRUNC",
    "MSG_PROBE",
    "MSG_TRUNC",
    "MSG_DONTWAIT",
    "MSG_EOR",
    "MSG_WAITALL",
    "MSG_FIN",
    "MSG_SYN",
    "MSG_CONFIRM",
    "MSG_RST",
    "MSG_ERRQUEUE",
    "MSG_NOSIGNAL",
    "MSG_MORE",
    "MSG_WAITFORONE",
    "MSG_SENDPAGE_NOPOLICY",
    "MSG_BATCH",
    "",
    "MSG_SOCK_DEVMEM",
    "MSG_ZEROCOPY",
    "MSG_SPLICE_PAGES",
    "",
    "",
    "",
    "",
    "",
    "",
    "MSG_FASTOPEN",
    "MSG_CMSG_CLOEXEC",
    "MSG_CMSG_COMPAT",
];

const RWF: [&str; 9] = [
    "RWF_HIPRI",
    "RWF_DSYNC",
    "RWF_SYNC",
    "RWF_NOWAIT",
    "RWF_APPEND",
    "RWF_NOAPPEND",
    "RWF_ATOMIC",
    "RWF_DONTCACHE",
    "RWF_NOSIGNAL",
];

const POLL: [&str; 16] = [
    "POLLIN",
    "POLLPRI",
    "POLLOUT",
    "POLLERR",
    "POLLHUP",
    "POLLNVAL",
    "POLLRDNORM",
    "POLLRDBAND",
    "POLLWRNORM",
    "POLLWRBAND",
    "POLLMSG",
    "",
    "",
    "POLLRDHUP",
    "",
    "",
];

/// An op-flag bit (`rw_flags`, `msg_flags`, ...) as the op reads it.
pub fn op_flag(op: u8, n: u8) -> String {
    use abi::*;
    let i = n as usize;
    if net_op(op) {
        return wrap(MSG[i]);
    }
    if rw_op(op) {
        return wrap(RWF.get(i).copied().unwrap_or(""));
    }
    wrap(match op {
        IORING_OP_POLL_ADD | IORING_OP_POLL_REMOVE => match n {
            28 => "EPOLLEXCLUSIVE",
            29 => "EPOLLWAKEUP",
            30 => "EPOLLONESHOT",
            31 => "EPOLLET",
            _ => POLL.get(i).copied().unwrap_or(""),
        },
        IORING_OP_ACCEPT => match n {
            11 => "SOCK_NONBLOCK",
            19 => "SOCK_CLOEXEC",
            _ => "",
        },
        IORING_OP_TIMEOUT | IORING_OP_LINK_TIMEOUT | IORING_OP_TIMEOUT_REMOVE => match n {
            0 => "TIMEOUT_ABS",
            1 => "TIMEOUT_UPDATE",
            2 => "TIMEOUT_BOOTTIME",
            3 => "TIMEOUT_REALTIME",
            4 => "LINK_TIMEOUT_UPDATE",
            5 => "TIMEOUT_ETIME_SUCCESS",
            6 => "TIMEOUT_MULTISHOT",
            _ => "",
        },
        IORING_OP_ASYNC_CANCEL => match n {
            0 => "CANCEL_ALL",
            1 => "CANCEL_FD",
            2 => "CANCEL_ANY",
            3 => "CANCEL_FD_FIXED",
            4 => "CANCEL_USERDATA",
            5 => "CANCEL_OP",
            _ => "",
        },
        IORING_OP_NOP => match n {
            0 => "NOP_INJECT_RESULT",
            1 => "NOP_FILE",
            2 => "NOP_FIXED_FILE",
            3 => "NOP_FIXED_BUFFER",
            4 => "NOP_TW",
            5 => "NOP_CQE32",
            _ => "",
        },
        _ => "",
    })
}
