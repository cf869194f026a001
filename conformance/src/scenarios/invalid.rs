//! Invalid SQEs: each gets the kernel's errno in its CQE.

use ringline_ring::abi::{self, Sqe};
use ringline_ring::opcode;

use super::{call, call_safe, raw, socket, R};
use crate::Ctx;

/// Runs each SQE alone and records its CQE.
///
/// # Safety
///
/// As [`call`]: the rows name only context memory (or none).
unsafe fn table(c: &mut Ctx, rows: Vec<(&str, Sqe)>) -> R {
    for (i, (name, mut s)) in rows.into_iter().enumerate() {
        s.user_data = 100 + i as u64;
        // SAFETY: the caller upholds `call`'s contract (this function's).
        unsafe { call(c, name, s) }?;
        c.record(s.user_data);
    }
    Ok(())
}

pub fn opcode(c: &mut Ctx) -> R {
    // SAFETY: the rows name only context memory (`Ctx::mem`, `sockaddr`) or none.
    unsafe {
        table(
            c,
            vec![
                ("opcode IORING_OP_LAST", raw(abi::IORING_OP_LAST, -1, 0)),
                ("opcode 200", raw(200, -1, 0)),
            ],
        )
    }
}

pub fn bad_fd(c: &mut Ctx) -> R {
    let buf = c.mem(64);
    // SAFETY: the rows name only context memory (`Ctx::mem`, `sockaddr`) or none.
    unsafe {
        table(
            c,
            vec![
                ("recv on fd 9999", opcode::Recv::new(9999, buf, 64).build()),
                ("recv on fd -1", opcode::Recv::new(-1, buf, 64).build()),
                (
                    "poll on fd 9999",
                    opcode::PollAdd::new(9999, libc::POLLIN as u32)
                        .build()
                        .into(),
                ),
                (
                    "shutdown on fd 9999",
                    opcode::Shutdown::new(9999, libc::SHUT_WR).build().into(),
                ),
                ("close fd 9999", opcode::Close::new(9999).build().into()),
            ],
        )
    }
}

pub fn sqe_flags(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let buf = c.mem(64);
    let mut unknown = opcode::Nop::new().build().into_sqe();
    unknown.flags = 0x80;
    let mut fixed = opcode::Recv::new(0, buf, 64).build();
    fixed.flags = abi::IOSQE_FIXED_FILE;
    let mut pers = opcode::Recv::new(fd, buf, 64)
        .flags(libc::MSG_DONTWAIT)
        .build();
    pers.personality = 3;
    // SAFETY: the rows name only context memory (`Ctx::mem`, `sockaddr`) or none.
    unsafe {
        table(
            c,
            vec![
                ("unknown SQE flag 0x80", unknown),
                ("IOSQE_FIXED_FILE, no file table", fixed),
                ("personality 3", pers),
            ],
        )
    }
}

pub fn recv_flags(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let l = c.backend().app_listener(16)?;
    c.buf_ring(1, 8, 64, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    let buf = c.mem(64);
    let mut no_select = opcode::Recv::new(fd, buf, 64).build();
    no_select.ioprio = abi::IORING_RECV_MULTISHOT;
    let waitall = opcode::RecvMulti::new(fd, 1)
        .flags(libc::MSG_WAITALL)
        .build();
    let mut recv_ioprio = opcode::Recv::new(fd, buf, 64).build();
    recv_ioprio.ioprio = 1 << 7;
    let mut accept_ioprio = opcode::AcceptNoAddr::new(l).build().into_sqe();
    accept_ioprio.ioprio = 1 << 5;
    // SAFETY: the rows name only context memory (`Ctx::mem`, `sockaddr`) or none.
    unsafe {
        table(
            c,
            vec![
                ("multishot recv without buffer select", no_select),
                ("multishot recv with MSG_WAITALL", waitall.into()),
                ("recv with ioprio 1<<7", recv_ioprio),
                ("accept with ioprio 1<<5", accept_ioprio),
            ],
        )
    }
}

pub fn misc(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let mut level = opcode::PollAdd::new(fd, libc::POLLIN as u32)
        .build()
        .into_sqe();
    level.len = abi::IORING_POLL_ADD_LEVEL;
    let skip = opcode::PollAdd::new(fd, libc::POLLIN as u32)
        .multi()
        .sqe_flags(abi::IOSQE_CQE_SKIP_SUCCESS)
        .build();
    let mut nop_flag = opcode::Nop::new().build().into_sqe();
    nop_flag.op_flags = 1 << 12;
    // SAFETY: the rows name only context memory (`Ctx::mem`, `sockaddr`) or none.
    unsafe {
        table(
            c,
            vec![
                ("poll with IORING_POLL_ADD_LEVEL", level),
                ("multishot poll with CQE_SKIP_SUCCESS", skip.into()),
                ("nop with flag 1<<12", nop_flag),
            ],
        )
    }
}

pub fn unconnected(c: &mut Ctx) -> R {
    let fd = socket(c, "socket", 1)?;
    let l = c.backend().app_listener(16)?;
    let buf = c.mem(64);
    let sa = c.backend().refused_addr();
    let sa = c.sockaddr(sa);
    // SAFETY: the rows name only context memory (`Ctx::mem`, `sockaddr`) or none.
    unsafe {
        table(
            c,
            vec![
                (
                    "recv on an unconnected socket",
                    opcode::Recv::new(fd, buf, 64).build(),
                ),
                (
                    "send on an unconnected socket",
                    opcode::Send::new(fd, buf, 4).build(),
                ),
                (
                    "shutdown an unconnected socket",
                    opcode::Shutdown::new(fd, libc::SHUT_WR).build().into(),
                ),
                (
                    "accept on a non-listening socket",
                    opcode::AcceptNoAddr::new(fd).build().into(),
                ),
                (
                    "connect on a listener",
                    opcode::Connect::new(l, sa, 16).build(),
                ),
                ("recv on a listener", opcode::Recv::new(l, buf, 64).build()),
            ],
        )
    }
}

pub fn ipv6(c: &mut Ctx) -> R {
    call_safe(
        c,
        "socket(AF_INET6)",
        opcode::Socket::new(libc::AF_INET6, libc::SOCK_STREAM, 0)
            .user_data(1)
            .build(),
    )?;
    c.record(1);
    Ok(())
}
