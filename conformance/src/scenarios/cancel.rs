//! ASYNC_CANCEL: by user_data, by fd, ALL, ANY, -ENOENT, -EALREADY.

use ringline_ring::abi;
use ringline_ring::abi::IOSQE_IO_LINK;
use ringline_ring::opcode;

use super::{call_safe, raw, R};
use crate::Ctx;

const POLLIN: u32 = libc::POLLIN as u32;

pub fn by_user_data(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let a = c.mem(64);
    let b = c.mem(64);
    // SAFETY: `a` is context memory, alive until the context drops, after the backend.
    unsafe { c.push("recv 1", opcode::Recv::new(fd, a, 64).user_data(1).build()) }?;
    // SAFETY: `b` is context memory, alive until the context drops, after the backend.
    unsafe { c.push("recv 2", opcode::Recv::new(fd, b, 64).user_data(2).build()) }?;
    c.submit();
    c.quiet();
    c.submit_one_safe(
        "cancel(recv 1)",
        opcode::AsyncCancel::new(1).user_data(3).build(),
    )?;
    c.wait_final(3);
    c.record_order(&[1, 2, 3]);
    Ok(())
}

pub fn by_fd(c: &mut Ctx) -> R {
    let (a, _pa) = c.backend().app_conn()?;
    let (b, _pb) = c.backend().app_conn()?;
    let m1 = c.mem(64);
    let m2 = c.mem(64);
    // SAFETY: `a`, `m1` are context memory, alive until the context drops, after the backend.
    unsafe {
        c.push(
            "recv on A",
            opcode::Recv::new(a, m1, 64).user_data(1).build(),
        )
    }?;
    // SAFETY: `b`, `m2` are context memory, alive until the context drops, after the backend.
    unsafe {
        c.push(
            "recv on B",
            opcode::Recv::new(b, m2, 64).user_data(2).build(),
        )
    }?;
    c.push_safe(
        "poll on B",
        opcode::PollAdd::new(b, POLLIN).user_data(3).build(),
    )?;
    c.submit();
    c.quiet();
    c.submit_one_safe(
        "cancel(fd A)",
        opcode::AsyncCancelFd::new(a).user_data(10).build(),
    )?;
    c.wait_final(10);
    c.submit_one_safe(
        "cancel(fd B, ALL)",
        opcode::AsyncCancelFd::new(b).all().user_data(11).build(),
    )?;
    c.wait_final(11);
    c.record_order(&[1, 10]);
    c.record_all(&[2, 3, 11]);
    Ok(())
}

pub fn all_user_data(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    for _ in 0..3 {
        c.push_safe(
            "poll(ud 5)",
            opcode::PollAdd::new(fd, POLLIN).user_data(5).build(),
        )?;
    }
    c.submit();
    c.quiet();
    c.submit_one_safe(
        "cancel(ud 5, ALL)",
        opcode::AsyncCancel::new(5).all().user_data(6).build(),
    )?;
    c.wait_final(6);
    c.record_order(&[5, 6]);
    Ok(())
}

pub fn any(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let l = c.backend().app_listener(16)?;
    let m = c.mem(64);
    // SAFETY: `m` is context memory, alive until the context drops, after the backend.
    unsafe { c.push("recv", opcode::Recv::new(fd, m, 64).user_data(1).build()) }?;
    c.push_safe(
        "poll",
        opcode::PollAdd::new(fd, POLLIN).user_data(2).build(),
    )?;
    c.push_safe("accept", opcode::AcceptMulti::new(l).user_data(3).build())?;
    c.submit();
    c.quiet();
    c.submit_one_safe(
        "cancel(ANY)",
        opcode::AsyncCancel::new(0).any().user_data(9).build(),
    )?;
    c.wait_final(9);
    c.record_all(&[1, 2, 3, 9]);
    Ok(())
}

/// ASYNC_CANCEL with `_ANY` over two RECVs each guarded by a LINK_TIMEOUT:
/// what the canceller counts, and one final CQE per request (a RECV that is
/// cancelled ends its timeout; the cancel must not end it a second time).
pub fn any_link_timeout(c: &mut Ctx) -> R {
    for i in 0..2u64 {
        let (fd, _p) = c.backend().app_conn()?;
        let buf = c.mem(64);
        let ts = c.timespec_ms(10_000);
        // SAFETY: `buf` and `ts` are context memory, alive until the context
        // drops, after the backend.
        unsafe {
            c.push(
                "recv",
                opcode::Recv::new(fd, buf, 64)
                    .sqe_flags(IOSQE_IO_LINK)
                    .user_data(1 + 2 * i)
                    .build(),
            )?;
            c.push(
                "link_timeout(10 s)",
                opcode::LinkTimeout::new(ts).user_data(2 + 2 * i).build(),
            )?;
        }
    }
    c.submit();
    c.quiet();
    c.submit_one_safe(
        "cancel(ANY)",
        opcode::AsyncCancel::new(0).any().user_data(9).build(),
    )?;
    c.wait_finals(&[1, 2, 3, 4, 9]);
    c.quiet();
    c.record_all(&[1, 2, 3, 4, 9]);
    Ok(())
}

pub fn all_no_match(c: &mut Ctx) -> R {
    call_safe(
        c,
        "cancel(ud 777, ALL)",
        opcode::AsyncCancel::new(777).all().user_data(1).build(),
    )?;
    call_safe(
        c,
        "cancel(ANY)",
        opcode::AsyncCancel::new(0).any().user_data(2).build(),
    )?;
    c.record_all(&[1, 2]);
    Ok(())
}

pub fn enoent(c: &mut Ctx) -> R {
    call_safe(
        c,
        "cancel(unknown)",
        opcode::AsyncCancel::new(777).user_data(1).build(),
    )?;
    call_safe(c, "nop", opcode::Nop::new().user_data(2).build())?;
    call_safe(
        c,
        "cancel(completed nop)",
        opcode::AsyncCancel::new(2).user_data(3).build(),
    )?;
    c.record_all(&[1, 2, 3]);
    Ok(())
}

pub fn ealready(c: &mut Ctx) -> R {
    // SPLICE always runs in a kernel worker (io-wq); from an empty blocking pipe
    // it blocks there until data comes, so a cancel finds it running.
    let mut src = [0i32; 2];
    let mut dst = [0i32; 2];
    // SAFETY: pipe2 writes two fds into each 2-element array.
    let ok = unsafe {
        libc::pipe2(src.as_mut_ptr(), libc::O_CLOEXEC) == 0
            && libc::pipe2(dst.as_mut_ptr(), libc::O_CLOEXEC) == 0
    };
    if !ok {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    let mut s = raw(abi::IORING_OP_SPLICE, dst[1], 1);
    s.off = u64::MAX; // off_out -1: pipes have no offset
    s.addr = u64::MAX; // splice_off_in -1
    s.len = 1;
    s.file_index = src[0] as u32; // splice_fd_in

    // SAFETY: SPLICE names no memory: its fields are fds and -1 offsets.
    unsafe { c.submit_one("splice(empty pipe)", s) }?;
    c.quiet();
    c.submit_one_safe(
        "cancel(splice)",
        opcode::AsyncCancel::new(1).user_data(2).build(),
    )?;
    c.wait_final(2);
    c.record(2);
    // Unblock the splice if it is still waiting, then clean up.
    // SAFETY: src[1] is the write end of a pipe created above; one byte from a live buffer.
    unsafe { libc::write(src[1], b"x".as_ptr().cast(), 1) };
    c.wait_final(1);
    c.record(1);
    for fd in src.into_iter().chain(dst) {
        // SAFETY: the four pipe fds were created above and are closed once.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

pub fn by_opcode(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let m = c.mem(64);
    // SAFETY: `m` is context memory, alive until the context drops, after the backend.
    unsafe { c.push("recv", opcode::Recv::new(fd, m, 64).user_data(1).build()) }?;
    c.push_safe(
        "poll",
        opcode::PollAdd::new(fd, POLLIN).user_data(2).build(),
    )?;
    c.submit();
    c.quiet();
    // IORING_ASYNC_CANCEL_OP (6.6): match on the opcode (in `len`) instead of user_data.
    let mut s = opcode::AsyncCancel::new(0).user_data(3).build().into_sqe();
    s.op_flags = abi::IORING_ASYNC_CANCEL_OP;
    s.len = u32::from(abi::IORING_OP_RECV);
    // SAFETY: an ASYNC_CANCEL names no memory (it matches by opcode here).
    unsafe { c.submit_one("cancel(op RECV)", s) }?;
    c.wait_final(3);
    c.record_all(&[1, 2, 3]);
    Ok(())
}
