//! SQE flags: IO_LINK, IO_HARDLINK, IO_DRAIN, CQE_SKIP_SUCCESS, ASYNC.

use ringline_ring::abi::{
    IOSQE_ASYNC, IOSQE_CQE_SKIP_SUCCESS, IOSQE_IO_DRAIN, IOSQE_IO_HARDLINK, IOSQE_IO_LINK,
};
use ringline_ring::opcode;

use super::{pattern, R};
use crate::Ctx;

pub fn link_chain(c: &mut Ctx) -> R {
    c.push_safe(
        "nop 1",
        opcode::Nop::new()
            .sqe_flags(IOSQE_IO_LINK)
            .user_data(1)
            .build(),
    )?;
    c.push_safe(
        "nop 2",
        opcode::Nop::new()
            .sqe_flags(IOSQE_IO_LINK)
            .user_data(2)
            .build(),
    )?;
    c.push_safe("nop 3", opcode::Nop::new().user_data(3).build())?;
    c.submit();
    c.wait_finals(&[1, 2, 3]);
    c.record_order(&[1, 2, 3]);
    Ok(())
}

pub fn link_failure(c: &mut Ctx) -> R {
    c.push_safe(
        "nop(-EINVAL)",
        opcode::Nop::new()
            .inject_result(-libc::EINVAL)
            .sqe_flags(IOSQE_IO_LINK)
            .user_data(1)
            .build(),
    )?;
    c.push_safe(
        "nop 2",
        opcode::Nop::new()
            .sqe_flags(IOSQE_IO_LINK)
            .user_data(2)
            .build(),
    )?;
    c.push_safe("nop 3", opcode::Nop::new().user_data(3).build())?;
    c.submit();
    c.wait_finals(&[1, 2, 3]);
    c.record_order(&[1, 2, 3]);
    Ok(())
}

pub fn link_short_recv(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let buf = c.mem(10);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.push(
            "recv(10, WAITALL)",
            opcode::Recv::new(fd, buf, 10)
                .flags(libc::MSG_WAITALL)
                .sqe_flags(IOSQE_IO_LINK)
                .user_data(1)
                .build(),
        )
    }?;
    c.push_safe("nop", opcode::Nop::new().user_data(2).build())?;
    c.submit();
    c.quiet();
    c.record_order(&[1, 2]);
    c.peer_send(p, &pattern(5, 50))?;
    c.backend().peer_shutdown_write(p);
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    Ok(())
}

pub fn link_recv_send(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let buf = c.mem(16);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.push(
            "recv(16, WAITALL)",
            opcode::Recv::new(fd, buf, 16)
                .flags(libc::MSG_WAITALL)
                .sqe_flags(IOSQE_IO_LINK)
                .user_data(1)
                .build(),
        )
    }?;
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.push(
            "send(echo)",
            opcode::Send::new(fd, buf, 16).user_data(2).build(),
        )
    }?;
    c.submit();
    c.quiet();
    c.record_order(&[1, 2]);
    let data = pattern(16, 51);
    c.peer_send(p, &data)?;
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    let got = c.peer_wait(p, 16);
    c.line(format!("peer got its 16 B back: {}", got.data == data));
    Ok(())
}

pub fn hardlink(c: &mut Ctx) -> R {
    c.push_safe(
        "nop(-EINVAL)",
        opcode::Nop::new()
            .inject_result(-libc::EINVAL)
            .sqe_flags(IOSQE_IO_HARDLINK)
            .user_data(1)
            .build(),
    )?;
    c.push_safe("nop 2", opcode::Nop::new().user_data(2).build())?;
    c.submit();
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    Ok(())
}

pub fn drain(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let buf = c.mem(64);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe { c.submit_one("recv", opcode::Recv::new(fd, buf, 64).user_data(1).build()) }?;
    c.submit_one_safe(
        "nop(DRAIN)",
        opcode::Nop::new()
            .sqe_flags(IOSQE_IO_DRAIN)
            .user_data(2)
            .build(),
    )?;
    c.submit_one_safe("nop after", opcode::Nop::new().user_data(3).build())?;
    c.quiet();
    c.record_order(&[1, 2, 3]);
    c.peer_send(p, &pattern(5, 52))?;
    c.wait_finals(&[1, 2, 3]);
    c.record_order(&[1, 2, 3]);
    Ok(())
}

pub fn cqe_skip(c: &mut Ctx) -> R {
    c.push_safe(
        "nop(SKIP)",
        opcode::Nop::new()
            .sqe_flags(IOSQE_CQE_SKIP_SUCCESS)
            .user_data(1)
            .build(),
    )?;
    c.push_safe(
        "nop(-EIO, SKIP)",
        opcode::Nop::new()
            .inject_result(-libc::EIO)
            .sqe_flags(IOSQE_CQE_SKIP_SUCCESS)
            .user_data(2)
            .build(),
    )?;
    c.push_safe("nop", opcode::Nop::new().user_data(3).build())?;
    c.submit();
    c.wait_finals(&[2, 3]);
    c.record_order(&[1, 2, 3]);
    Ok(())
}

pub fn async_flag(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let buf = c.mem(64);
    c.submit_one_safe(
        "nop(ASYNC)",
        opcode::Nop::new()
            .sqe_flags(IOSQE_ASYNC)
            .user_data(1)
            .build(),
    )?;
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "recv(ASYNC)",
            opcode::Recv::new(fd, buf, 64)
                .sqe_flags(IOSQE_ASYNC)
                .user_data(2)
                .build(),
        )
    }?;
    c.peer_send(p, &pattern(7, 53))?;
    c.wait_finals(&[1, 2]);
    c.record_all(&[1, 2]);
    Ok(())
}
