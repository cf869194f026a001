//! TIMEOUT, TIMEOUT_REMOVE, LINK_TIMEOUT, NOP.

use ringline_ring::abi::{self, IOSQE_IO_LINK};
use ringline_ring::opcode;

use super::{call, call_safe, pattern, raw, R};
use crate::Ctx;

pub fn fires(c: &mut Ctx) -> R {
    let ts = c.timespec_ms(20);
    // SAFETY: `ts` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "timeout(20 ms)",
            opcode::Timeout::new(ts).user_data(1).build(),
        )
    }?;
    c.wait_final(1);
    c.record(1);
    Ok(())
}

pub fn count(c: &mut Ctx) -> R {
    let ts = c.timespec_ms(10_000);
    // SAFETY: `ts` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "timeout(10 s, count 2)",
            opcode::Timeout::new(ts).count(2).user_data(1).build(),
        )
    }?;
    c.quiet();
    c.submit_one_safe("nop 1", opcode::Nop::new().user_data(2).build())?;
    c.submit_one_safe("nop 2", opcode::Nop::new().user_data(3).build())?;
    c.wait_finals(&[1, 2, 3]);
    c.record_order(&[1, 2, 3]);
    Ok(())
}

/// A TIMEOUT of 10 s (user_data 1), submitted and settled.
fn pending_timeout(c: &mut Ctx) -> R {
    let ts = c.timespec_ms(10_000);
    // SAFETY: `ts` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "timeout(10 s)",
            opcode::Timeout::new(ts).user_data(1).build(),
        )
    }?;
    c.quiet();
    Ok(())
}

pub fn cancel(c: &mut Ctx) -> R {
    pending_timeout(c)?;
    c.submit_one_safe("cancel", opcode::AsyncCancel::new(1).user_data(2).build())?;
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    Ok(())
}

pub fn remove(c: &mut Ctx) -> R {
    pending_timeout(c)?;
    let mut s = raw(abi::IORING_OP_TIMEOUT_REMOVE, -1, 2);
    s.addr = 1;
    // SAFETY: a TIMEOUT_REMOVE names no memory (its addr is a user_data).
    unsafe { c.submit_one("timeout_remove", s) }?;
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    Ok(())
}

/// A RECV (user_data 1) on a fresh app connection, linked to a LINK_TIMEOUT
/// of `ms` (user_data 2), submitted; returns the connection's peer.
fn recv_guarded(c: &mut Ctx, ms: u64, label: &str) -> Result<crate::backend::PeerId, String> {
    let (fd, p) = c.backend().app_conn()?;
    let buf = c.mem(64);
    let ts = c.timespec_ms(ms);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.push(
            "recv",
            opcode::Recv::new(fd, buf, 64)
                .sqe_flags(IOSQE_IO_LINK)
                .user_data(1)
                .build(),
        )
    }?;
    // SAFETY: `ts` is context memory, alive until the context drops, after the backend.
    unsafe { c.push(label, opcode::LinkTimeout::new(ts).user_data(2).build()) }?;
    c.submit();
    Ok(p)
}

pub fn link_fires(c: &mut Ctx) -> R {
    recv_guarded(c, 20, "link_timeout(20 ms)")?;
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    Ok(())
}

pub fn link_not_fired(c: &mut Ctx) -> R {
    let p = recv_guarded(c, 10_000, "link_timeout(10 s)")?;
    c.quiet();
    c.peer_send(p, &pattern(5, 60))?;
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    Ok(())
}

/// RECV -> RECV -> LINK_TIMEOUT(20 ms): the timeout guards the second RECV,
/// which starts only when data completes the first.
pub fn link_later(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let (a, b) = (c.mem(64), c.mem(64));
    let ts = c.timespec_ms(20);
    // SAFETY: `a` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.push(
            "recv 1",
            opcode::Recv::new(fd, a, 64)
                .sqe_flags(IOSQE_IO_LINK)
                .user_data(1)
                .build(),
        )
    }?;
    // SAFETY: `b` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.push(
            "recv 2",
            opcode::Recv::new(fd, b, 64)
                .sqe_flags(IOSQE_IO_LINK)
                .user_data(2)
                .build(),
        )
    }?;
    // SAFETY: `ts` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.push(
            "link_timeout(20 ms)",
            opcode::LinkTimeout::new(ts).user_data(3).build(),
        )
    }?;
    c.submit();
    c.quiet();
    c.peer_send(p, &pattern(5, 60))?;
    c.wait_finals(&[1, 2, 3]);
    c.record_order(&[1, 2, 3]);
    Ok(())
}

pub fn nop(c: &mut Ctx) -> R {
    call_safe(c, "nop", opcode::Nop::new().user_data(1).build())?;
    call_safe(
        c,
        "nop(inject 42)",
        opcode::Nop::new().inject_result(42).user_data(2).build(),
    )?;
    call_safe(
        c,
        "nop(inject -ETIMEDOUT)",
        opcode::Nop::new()
            .inject_result(-libc::ETIMEDOUT)
            .user_data(3)
            .build(),
    )?;
    c.record_all(&[1, 2, 3]);
    Ok(())
}

pub fn abs(c: &mut Ctx) -> R {
    let ts = c.timespec_abs_ms(20);
    // SAFETY: `ts` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "timeout(abs, now + 20 ms)",
            opcode::Timeout::new(ts)
                .flags(abi::IORING_TIMEOUT_ABS)
                .user_data(1)
                .build(),
        )
    }?;
    c.wait_final(1);
    c.record(1);
    Ok(())
}

pub fn multishot(c: &mut Ctx) -> R {
    let ts = c.timespec_ms(10);
    // SAFETY: `ts` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "timeout(10 ms, multishot, 3)",
            opcode::Timeout::new(ts)
                .count(3)
                .flags(abi::IORING_TIMEOUT_MULTISHOT)
                .user_data(1)
                .build(),
        )
    }?;
    c.wait_final(1);
    c.record(1);
    Ok(())
}

pub fn update(c: &mut Ctx) -> R {
    pending_timeout(c)?;
    let short = c.timespec_ms(20);
    // SAFETY: `short` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "timeout_update(20 ms)",
            opcode::TimeoutUpdate::new(1, short).user_data(2).build(),
        )
    }?;
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    // SAFETY: `short` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "timeout_update(unknown)",
            opcode::TimeoutUpdate::new(99, short).user_data(3).build(),
        )
    }?;
    c.record(3);
    Ok(())
}

pub fn link_update(c: &mut Ctx) -> R {
    recv_guarded(c, 10_000, "link_timeout(10 s)")?;
    c.quiet();
    let short = c.timespec_ms(20);
    // SAFETY: `short` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "link_timeout_update(20 ms)",
            opcode::TimeoutUpdate::new(2, short)
                .link()
                .user_data(3)
                .build(),
        )
    }?;
    c.wait_finals(&[1, 2, 3]);
    c.record_order(&[1, 2, 3]);
    Ok(())
}

pub fn etime_success(c: &mut Ctx) -> R {
    let ts = c.timespec_ms(10);
    // SAFETY: `ts` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.push(
            "timeout(10 ms, etime_success)",
            opcode::Timeout::new(ts)
                .flags(abi::IORING_TIMEOUT_ETIME_SUCCESS)
                .sqe_flags(IOSQE_IO_LINK)
                .user_data(1)
                .build(),
        )
    }?;
    c.push_safe("nop", opcode::Nop::new().user_data(2).build())?;
    c.submit();
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    Ok(())
}

pub fn bad_flags(c: &mut Ctx) -> R {
    let ts = c.timespec_ms(10);
    let cases = [
        (
            "timeout(abs|multishot)",
            abi::IORING_TIMEOUT_ABS | abi::IORING_TIMEOUT_MULTISHOT,
        ),
        (
            "timeout(boottime|realtime)",
            abi::IORING_TIMEOUT_BOOTTIME | abi::IORING_TIMEOUT_REALTIME,
        ),
        ("timeout(flag 1<<12)", 1 << 12),
    ];
    for (i, (name, flags)) in cases.iter().enumerate() {
        let ud = 10 + i as u64;
        // SAFETY: `ts` is context memory, alive until the context drops, after the backend.
        unsafe {
            call(
                c,
                name,
                opcode::Timeout::new(ts).flags(*flags).user_data(ud).build(),
            )
        }?;
        c.record(ud);
    }
    let mut rm = opcode::TimeoutRemove::new(77)
        .user_data(20)
        .build()
        .into_sqe();
    rm.op_flags = abi::IORING_TIMEOUT_ABS;
    // SAFETY: a TIMEOUT_REMOVE names no memory (its addr is a user_data).
    unsafe { call(c, "timeout_remove(abs flag)", rm) }?;
    c.record(20);
    Ok(())
}
