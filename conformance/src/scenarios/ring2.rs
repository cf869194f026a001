//! Ring mechanics, part 1: link chains (IO_LINK, IO_HARDLINK, LINK_TIMEOUT,
//! CQE_SKIP_SUCCESS), IO_DRAIN, IOSQE_ASYNC on socket ops, NOP variants and
//! opcodes past the end, TIMEOUT counts, clocks and removal.

use ringline_ring::abi::{
    self, Sqe, IOSQE_ASYNC, IOSQE_CQE_SKIP_SUCCESS, IOSQE_IO_DRAIN, IOSQE_IO_HARDLINK,
    IOSQE_IO_LINK,
};
use ringline_ring::app::Timespec;
use ringline_ring::opcode;

use super::{call, pattern, raw, R};
use crate::Ctx;

const POLLIN: u32 = libc::POLLIN as u32;
const POLLOUT: u32 = libc::POLLOUT as u32;

/// A NOP (user_data `ud`) with SQE flags `f`, injecting `res` when given.
pub(super) fn nop(ud: u64, f: u8, res: Option<i32>) -> Sqe {
    let mut b = opcode::Nop::new();
    if let Some(r) = res {
        b = b.inject_result(r);
    }
    b.sqe_flags(f).user_data(ud).build().into_sqe()
}

/// Queues `s` (naming no memory, or only context memory) under `name`.
pub(super) fn push(c: &mut Ctx, name: &str, s: Sqe) -> R {
    // SAFETY: every SQE of this module names only context memory, alive until
    // the context drops, after the backend.
    unsafe { c.push(name, s) }
}

/// Queues the SQEs, submits them in one enter, waits for the finals of
/// `uds` and records their CQE order.
pub(super) fn batch(c: &mut Ctx, sqes: &[(&str, Sqe)], uds: &[u64]) -> R {
    batch_wait(c, sqes, uds, uds)
}

/// [`batch`] waiting for the finals of `wait` only (the requests that post
/// a CQE), recording the order of `uds`.
fn batch_wait(c: &mut Ctx, sqes: &[(&str, Sqe)], wait: &[u64], uds: &[u64]) -> R {
    for (n, s) in sqes {
        push(c, n, *s)?;
    }
    c.submit();
    c.wait_finals(wait);
    c.record_order(uds);
    Ok(())
}

/// A timespec in context memory.
fn ts(c: &mut Ctx, sec: i64, nsec: i64) -> *const Timespec {
    c.keep(Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    })
    .cast_const()
}

/// A TIMEOUT SQE of `ts` with `count` and `flags`.
pub(super) fn timeout(t: *const Timespec, count: u64, flags: u32, ud: u64) -> Sqe {
    opcode::Timeout::new(t)
        .count(count)
        .flags(flags)
        .user_data(ud)
        .build()
}

/// A RECV of 64 B into fresh context memory on `fd` with SQE flags `f`.
pub(super) fn recv(c: &mut Ctx, fd: i32, f: u8, ud: u64) -> Sqe {
    let buf = c.mem(64);
    opcode::Recv::new(fd, buf, 64)
        .sqe_flags(f)
        .user_data(ud)
        .build()
}

/// A LINK_TIMEOUT of `ms` with SQE flags `f`.
fn link_timeout(c: &mut Ctx, ms: u64, f: u8, ud: u64) -> Sqe {
    let t = c.timespec_ms(ms);
    let mut s = opcode::LinkTimeout::new(t).user_data(ud).build();
    s.flags = f;
    s
}

// ----------------------------------------------------------------------
// Links
// ----------------------------------------------------------------------

pub fn link_mid_fail(c: &mut Ctx) -> R {
    let l = IOSQE_IO_LINK;
    batch(
        c,
        &[
            ("nop 1", nop(1, l, None)),
            ("nop 2", nop(2, l, None)),
            ("nop(-EIO) 3", nop(3, l, Some(-libc::EIO))),
            ("nop 4", nop(4, l, None)),
            ("nop 5", nop(5, 0, None)),
            ("nop after the chain", nop(6, 0, None)),
        ],
        &[1, 2, 3, 4, 5, 6],
    )
}

pub fn link_long(c: &mut Ctx) -> R {
    let uds: Vec<u64> = (1..=20).collect();
    for &u in &uds {
        let f = if u < 20 { IOSQE_IO_LINK } else { 0 };
        push(c, &format!("nop {u}"), nop(u, f, Some(u as i32)))?;
    }
    c.submit();
    c.wait_finals(&uds);
    c.record_order(&uds);
    Ok(())
}

pub fn hardlink_chain(c: &mut Ctx) -> R {
    let h = IOSQE_IO_HARDLINK;
    batch(
        c,
        &[
            ("nop(-EIO) 1", nop(1, h, Some(-libc::EIO))),
            ("nop(-EINVAL) 2", nop(2, h, Some(-libc::EINVAL))),
            ("nop(7) 3", nop(3, h, Some(7))),
            ("nop 4", nop(4, 0, None)),
        ],
        &[1, 2, 3, 4],
    )
}

pub fn hardlink_then_link(c: &mut Ctx) -> R {
    batch(
        c,
        &[
            (
                "nop(-EIO, HARDLINK)",
                nop(1, IOSQE_IO_HARDLINK, Some(-libc::EIO)),
            ),
            (
                "nop(-EPERM, LINK)",
                nop(2, IOSQE_IO_LINK, Some(-libc::EPERM)),
            ),
            ("nop 3 (LINK)", nop(3, IOSQE_IO_LINK, None)),
            ("nop 4", nop(4, 0, None)),
        ],
        &[1, 2, 3, 4],
    )
}

/// A chain whose last SQE still has IO_LINK at the end of the submission
/// (a broken link): the chain runs as it is; the next submission is separate.
pub fn link_broken_end(c: &mut Ctx) -> R {
    push(c, "nop 1 (LINK)", nop(1, IOSQE_IO_LINK, None))?;
    push(
        c,
        "nop(-EIO) 2 (LINK, last)",
        nop(2, IOSQE_IO_LINK, Some(-libc::EIO)),
    )?;
    c.submit();
    c.wait_finals(&[1, 2]);
    push(c, "nop 3 (next submit)", nop(3, 0, None))?;
    c.submit();
    c.wait_finals(&[1, 2, 3]);
    c.record_order(&[1, 2, 3]);
    Ok(())
}

/// A link member that fails its prep (an unknown opcode; a bad TIMEOUT).
pub fn link_prep_fail(c: &mut Ctx) -> R {
    let l = IOSQE_IO_LINK;
    let mut bad = raw(abi::IORING_OP_LAST, -1, 2);
    bad.flags = l;
    batch(
        c,
        &[
            ("nop 1 (LINK)", nop(1, l, None)),
            ("opcode LAST (LINK)", bad),
            ("nop 3", nop(3, 0, None)),
        ],
        &[1, 2, 3],
    )?;
    let t = ts(c, 0, 1_000_000);
    let mut badt = timeout(t, 0, 1 << 12, 12);
    badt.flags = l;
    batch(
        c,
        &[
            ("timeout(bad flag, LINK)", badt),
            ("nop 13 (LINK)", nop(13, l, None)),
            ("nop 14", nop(14, 0, None)),
        ],
        &[12, 13, 14],
    )
}

/// IO_LINK on multishot requests: a multishot POLL_ADD and a multishot ACCEPT
/// as a chain's head.
pub fn link_multishot(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let mut poll = opcode::PollAdd::new(fd, POLLIN)
        .multi()
        .user_data(1)
        .build()
        .into_sqe();
    poll.flags = IOSQE_IO_LINK;
    push(c, "poll(multi, LINK)", poll)?;
    push(c, "nop 2", nop(2, 0, None))?;
    c.submit();
    c.quiet();
    c.peer_send(p, &pattern(5, 1))?;
    c.quiet();
    c.record_all(&[1, 2]);
    let l = c.backend().app_listener(8)?;
    let mut acc = opcode::AcceptMulti::new(l).user_data(3).build().into_sqe();
    acc.flags = IOSQE_IO_LINK;
    push(c, "accept(multi, LINK)", acc)?;
    push(c, "nop 4", nop(4, 0, None))?;
    c.submit();
    c.quiet();
    c.backend().peer_connect(l)?;
    c.quiet();
    c.record_all(&[3, 4]);
    Ok(())
}

/// NOP -> LINK_TIMEOUT: the NOP beats the timer; a failing NOP too.
pub fn link_timeout_after_nop(c: &mut Ctx) -> R {
    let lt = link_timeout(c, 10_000, 0, 2);
    batch(
        c,
        &[
            ("nop (LINK)", nop(1, IOSQE_IO_LINK, None)),
            ("link_timeout(10 s)", lt),
        ],
        &[1, 2],
    )?;
    let lt = link_timeout(c, 10_000, 0, 4);
    batch(
        c,
        &[
            ("nop(-EIO, LINK)", nop(3, IOSQE_IO_LINK, Some(-libc::EIO))),
            ("link_timeout(10 s) 2", lt),
        ],
        &[3, 4],
    )
}

/// RECV -> LINK_TIMEOUT (LINK) -> NOP: the timer fires (the NOP is cancelled);
/// then data ready before the chain: the RECV beats the timer, the NOP runs.
pub fn link_timeout_chain_continues(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let r = recv(c, fd, IOSQE_IO_LINK, 1);
    let lt = link_timeout(c, 20, IOSQE_IO_LINK, 2);
    batch(
        c,
        &[
            ("recv (LINK)", r),
            ("link_timeout(20 ms, LINK)", lt),
            ("nop 3", nop(3, 0, None)),
        ],
        &[1, 2, 3],
    )?;
    c.peer_send(p, &pattern(9, 2))?;
    c.quiet();
    let r = recv(c, fd, IOSQE_IO_LINK, 11);
    let lt = link_timeout(c, 10_000, IOSQE_IO_LINK, 12);
    batch(
        c,
        &[
            ("recv with data there (LINK)", r),
            ("link_timeout(10 s, LINK)", lt),
            ("nop 13", nop(13, 0, None)),
        ],
        &[11, 12, 13],
    )
}

/// LINK_TIMEOUT that is not after a linked request: alone, and after a
/// request without IO_LINK; two LINK_TIMEOUTs in a row.
pub fn link_timeout_misplaced(c: &mut Ctx) -> R {
    let lt = link_timeout(c, 10, 0, 1);
    batch(c, &[("link_timeout alone", lt)], &[1])?;
    let lt = link_timeout(c, 10, 0, 3);
    batch(
        c,
        &[
            ("nop (no LINK)", nop(2, 0, None)),
            ("link_timeout after it", lt),
        ],
        &[2, 3],
    )?;
    let (fd, _p) = c.backend().app_conn()?;
    let r = recv(c, fd, IOSQE_IO_LINK, 4);
    let lt1 = link_timeout(c, 20, IOSQE_IO_LINK, 5);
    let lt2 = link_timeout(c, 20, 0, 6);
    batch(
        c,
        &[
            ("recv (LINK)", r),
            ("link_timeout 1 (LINK)", lt1),
            ("link_timeout 2", lt2),
        ],
        &[4, 5, 6],
    )
}

/// IOSQE_CQE_SKIP_SUCCESS inside chains: skipped successes, a failure that
/// posts and cancels the rest (whose -ECANCELED CQEs are not skipped).
pub fn cqe_skip_chain(c: &mut Ctx) -> R {
    let ls = IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
    batch_wait(
        c,
        &[
            ("nop 1 (LINK|SKIP)", nop(1, ls, None)),
            ("nop 2 (LINK|SKIP)", nop(2, ls, None)),
            ("nop 3", nop(3, 0, None)),
        ],
        &[3],
        &[1, 2, 3],
    )?;
    // A failure with SKIP: its CQE, none for the members it cancels.
    batch_wait(
        c,
        &[
            ("nop 11 (LINK|SKIP)", nop(11, ls, None)),
            ("nop(-EIO) 12 (LINK|SKIP)", nop(12, ls, Some(-libc::EIO))),
            ("nop 13 (LINK|SKIP)", nop(13, ls, None)),
            ("nop 14 (SKIP)", nop(14, IOSQE_CQE_SKIP_SUCCESS, None)),
            ("nop 15 (after the chain)", nop(15, 0, None)),
        ],
        &[12, 15],
        &[11, 12, 13, 14, 15],
    )?;
    // A failure without SKIP: the cancelled members post, SKIP or not.
    batch(
        c,
        &[
            ("nop 21 (LINK|SKIP)", nop(21, ls, None)),
            (
                "nop(-EIO) 22 (LINK)",
                nop(22, IOSQE_IO_LINK, Some(-libc::EIO)),
            ),
            ("nop 23 (LINK|SKIP)", nop(23, ls, None)),
            ("nop 24 (SKIP)", nop(24, IOSQE_CQE_SKIP_SUCCESS, None)),
        ],
        &[22, 23, 24],
    )
}

/// A RECV with CQE_SKIP_SUCCESS guarded by a LINK_TIMEOUT: data in time (no
/// RECV CQE, the timeout's -ECANCELED), then none (the RECV's -ECANCELED).
pub fn cqe_skip_link_timeout(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.peer_send(p, &pattern(5, 3))?;
    c.quiet();
    let r = recv(c, fd, IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS, 1);
    let lt = link_timeout(c, 10_000, 0, 2);
    batch(
        c,
        &[
            ("recv (LINK|SKIP), data there", r),
            ("link_timeout(10 s)", lt),
        ],
        &[2],
    )?;
    let r = recv(c, fd, IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS, 3);
    let lt = link_timeout(c, 20, 0, 4);
    batch(
        c,
        &[
            ("recv (LINK|SKIP), no data", r),
            ("link_timeout(20 ms)", lt),
        ],
        &[3, 4],
    )?;
    c.quiet();
    c.record_order(&[1, 2, 3, 4]);
    Ok(())
}

/// A LINK_TIMEOUT with `IOSQE_CQE_SKIP_SUCCESS`: cancelled because its
/// request finished first (at once, a NOP; later, a RECV that gets data),
/// Linux completes it without failing it, so no CQE; a NOP after it in the
/// chain runs. Then one whose timer fires: its `-ETIME` and the RECV's
/// `-ECANCELED`. (liburing's `test/skip-cqe.c`, `test_ltimeout_cancel`.)
pub fn link_timeout_skip_success(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let skip = IOSQE_CQE_SKIP_SUCCESS;
    let lt = link_timeout(c, 10_000, skip | IOSQE_IO_LINK, 2);
    batch_wait(
        c,
        &[
            ("nop (LINK)", nop(1, IOSQE_IO_LINK, None)),
            ("link_timeout(10 s, SKIP, LINK)", lt),
            ("nop 3", nop(3, 0, None)),
        ],
        &[1, 3],
        &[1, 2, 3],
    )?;
    let r = recv(c, fd, IOSQE_IO_LINK, 4);
    let lt = link_timeout(c, 10_000, skip, 5);
    push(c, "recv (LINK)", r)?;
    push(c, "link_timeout(10 s, SKIP) 2", lt)?;
    c.submit();
    c.quiet();
    c.peer_send(p, &pattern(5, 8))?;
    c.wait_final(4);
    c.quiet();
    c.record_order(&[4, 5]);
    let r = recv(c, fd, IOSQE_IO_LINK, 6);
    let lt = link_timeout(c, 20, skip, 7);
    push(c, "recv (LINK) 2", r)?;
    push(c, "link_timeout(20 ms, SKIP)", lt)?;
    c.submit();
    c.wait_final(6);
    c.quiet();
    c.record_order(&[6, 7]);
    Ok(())
}

// ----------------------------------------------------------------------
// Drain and ASYNC
// ----------------------------------------------------------------------

/// IO_DRAIN behind a pending TIMEOUT: the drained NOP and everything after it
/// wait for the timeout.
pub fn drain_timeout(c: &mut Ctx) -> R {
    let t = c.timespec_ms(20);
    batch(
        c,
        &[
            ("timeout(20 ms)", timeout(t, 0, 0, 1)),
            ("nop 2", nop(2, 0, None)),
            ("nop 3 (DRAIN)", nop(3, IOSQE_IO_DRAIN, None)),
            ("nop 4", nop(4, 0, None)),
        ],
        &[1, 2, 3, 4],
    )
}

/// IO_DRAIN with nothing in flight, twice in a row, and on a chain's head.
pub fn drain_idle_and_chain(c: &mut Ctx) -> R {
    batch(
        c,
        &[
            ("nop 1 (DRAIN)", nop(1, IOSQE_IO_DRAIN, None)),
            ("nop 2 (DRAIN)", nop(2, IOSQE_IO_DRAIN, None)),
            ("nop 3", nop(3, 0, None)),
        ],
        &[1, 2, 3],
    )?;
    let t = c.timespec_ms(20);
    batch(
        c,
        &[
            ("timeout(20 ms)", timeout(t, 0, 0, 10)),
            (
                "nop 11 (DRAIN|LINK)",
                nop(11, IOSQE_IO_DRAIN | IOSQE_IO_LINK, None),
            ),
            ("nop 12 (LINK)", nop(12, IOSQE_IO_LINK, None)),
            ("nop 13", nop(13, 0, None)),
            ("nop 14", nop(14, 0, None)),
        ],
        &[10, 11, 12, 13, 14],
    )
}

/// IOSQE_ASYNC on SEND, POLL_ADD, ACCEPT, SHUTDOWN, CONNECT and a linked pair.
pub fn async_socket_ops(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(40, 4);
    let d = c.bytes(&data);
    let send = opcode::Send::new(fd, d, 40)
        .sqe_flags(IOSQE_ASYNC)
        .user_data(1)
        .build();
    // SAFETY: `d` is context memory, alive until the context drops.
    unsafe { call(c, "send(ASYNC)", send) }?;
    let got = c.peer_wait(p, 40);
    c.line(format!("peer got the 40 B: {}", got.data == data));
    let mut poll = opcode::PollAdd::new(fd, POLLOUT)
        .user_data(2)
        .build()
        .into_sqe();
    poll.flags = IOSQE_ASYNC;
    push(c, "poll(POLLOUT, ASYNC)", poll)?;
    c.submit();
    c.wait_final(2);
    let l = c.backend().app_listener(8)?;
    let mut acc = opcode::Accept::new(l, std::ptr::null_mut(), std::ptr::null_mut())
        .user_data(3)
        .build();
    acc.flags = IOSQE_ASYNC;
    push(c, "accept(ASYNC)", acc)?;
    c.submit();
    c.quiet();
    c.backend().peer_connect(l)?;
    c.wait_final(3);
    let r = recv(c, fd, IOSQE_ASYNC | IOSQE_IO_LINK, 4);
    push(c, "recv(ASYNC|LINK)", r)?;
    let mut sh = opcode::Shutdown::new(fd, libc::SHUT_WR)
        .user_data(5)
        .build()
        .into_sqe();
    sh.flags = IOSQE_ASYNC;
    push(c, "shutdown(WR, ASYNC)", sh)?;
    c.submit();
    c.quiet();
    c.peer_send(p, &pattern(6, 5))?;
    c.wait_finals(&[4, 5]);
    let rx = c.peer_wait_end(p);
    c.line(format!("peer saw EOF: {}", rx.eof));
    c.record_all(&[1, 2, 3, 4, 5]);
    Ok(())
}

// ----------------------------------------------------------------------
// NOP and opcodes
// ----------------------------------------------------------------------

/// NOP with IORING_NOP_FILE on an open socket, an fd not open, -1; with
/// IORING_NOP_CQE32 on a ring without CQE32; IORING_NOP_TW; an injected
/// result in a chain's middle.
pub fn nop_variants(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let mut v = Vec::new();
    for (i, (name, f, sfd)) in [
        ("nop(FILE, open socket)", abi::IORING_NOP_FILE, fd),
        ("nop(FILE, fd not open)", abi::IORING_NOP_FILE, 9999),
        ("nop(FILE, fd -1)", abi::IORING_NOP_FILE, -1),
        ("nop(CQE32)", abi::IORING_NOP_CQE32, -1),
        ("nop(TW)", abi::IORING_NOP_TW, -1),
        (
            "nop(TW|INJECT 5)",
            abi::IORING_NOP_TW | abi::IORING_NOP_INJECT_RESULT,
            -1,
        ),
        (
            "nop(FIXED_FILE without FILE)",
            abi::IORING_NOP_FIXED_FILE,
            3,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let ud = 1 + i as u64;
        let mut s = raw(abi::IORING_OP_NOP, sfd, ud);
        s.op_flags = f;
        s.len = 5;
        push(c, name, s)?;
        v.push(ud);
    }
    c.submit();
    c.wait_finals(&v);
    c.record_all(&v);
    Ok(())
}

/// Opcodes past the end: IORING_OP_LAST + 1, 128, 255; each followed by a NOP
/// in the same submission (which still runs).
pub fn opcodes_past_last(c: &mut Ctx) -> R {
    let mut uds = Vec::new();
    for (i, op) in [abi::IORING_OP_LAST + 1, 128, 255].into_iter().enumerate() {
        let ud = 1 + 2 * i as u64;
        push(c, &format!("opcode {op}"), raw(op, -1, ud))?;
        push(c, &format!("nop after {op}"), nop(ud + 1, 0, None))?;
        uds.extend([ud, ud + 1]);
    }
    c.submit();
    c.wait_finals(&uds);
    c.record_order(&uds);
    Ok(())
}

// ----------------------------------------------------------------------
// TIMEOUT
// ----------------------------------------------------------------------

/// TIMEOUT with count 3 and a far deadline: completes (res 0) after the third
/// NOP completes, each NOP submitted on its own.
pub fn timeout_count_3(c: &mut Ctx) -> R {
    let t = c.timespec_ms(10_000);
    push(c, "timeout(10 s, count 3)", timeout(t, 3, 0, 1))?;
    c.submit();
    c.quiet();
    for ud in 2..5 {
        push(c, &format!("nop {ud}"), nop(ud, 0, None))?;
        c.submit();
        c.quiet();
        c.record_order(&[1, ud]);
    }
    Ok(())
}

/// Two count-based TIMEOUTs (count 1 and count 3) and a batch of 4 NOPs.
pub fn timeout_counts_batch(c: &mut Ctx) -> R {
    let t = c.timespec_ms(10_000);
    push(c, "timeout(10 s, count 1)", timeout(t, 1, 0, 1))?;
    push(c, "timeout(10 s, count 3)", timeout(t, 3, 0, 2))?;
    c.submit();
    c.quiet();
    batch(
        c,
        &[
            ("nop 3", nop(3, 0, None)),
            ("nop 4", nop(4, 0, None)),
            ("nop 5", nop(5, 0, None)),
            ("nop 6", nop(6, 0, None)),
        ],
        &[1, 2, 3, 4, 5, 6],
    )
}

/// A TIMEOUT's completion count leaves out the CQEs of TIMEOUTs, whether
/// they fired or completed by their own count (Linux's `cq_timeouts`): two
/// count-1 TIMEOUTs of 40 and 20 ms both fire; a count-1 TIMEOUT is not
/// completed by a plain 20 ms TIMEOUT firing, but by the NOP after it; a
/// count-2 TIMEOUT needs two NOPs though a count-1 one completed by the
/// first. (liburing's `test/timeout.c`, `test_multi_timeout`, checks the
/// first.)
pub fn timeout_counts_skip_timeouts(c: &mut Ctx) -> R {
    let (t40, t20, t10s) = (c.timespec_ms(40), c.timespec_ms(20), c.timespec_ms(10_000));
    push(c, "timeout(40 ms, count 1)", timeout(t40, 1, 0, 1))?;
    push(c, "timeout(20 ms, count 1)", timeout(t20, 1, 0, 2))?;
    c.submit();
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    push(c, "timeout(10 s, count 1)", timeout(t10s, 1, 0, 3))?;
    push(c, "timeout(20 ms)", timeout(t20, 0, 0, 4))?;
    c.submit();
    c.wait_final(4);
    c.quiet();
    push(c, "nop 5", nop(5, 0, None))?;
    c.submit();
    c.wait_finals(&[3, 5]);
    c.record_order(&[3, 4, 5]);
    push(c, "timeout(10 s, count 1)", timeout(t10s, 1, 0, 6))?;
    push(c, "timeout(10 s, count 2)", timeout(t10s, 2, 0, 7))?;
    c.submit();
    c.quiet();
    push(c, "nop 8", nop(8, 0, None))?;
    c.submit();
    c.wait_final(6);
    c.quiet();
    c.record_order(&[6, 7, 8]);
    push(c, "nop 9", nop(9, 0, None))?;
    c.submit();
    c.wait_finals(&[7, 9]);
    c.record_order(&[6, 7, 8, 9]);
    Ok(())
}

/// A count-based TIMEOUT whose deadline comes first: -ETIME; the NOPs after.
pub fn timeout_count_expires(c: &mut Ctx) -> R {
    let t = c.timespec_ms(20);
    push(c, "timeout(20 ms, count 5)", timeout(t, 5, 0, 1))?;
    push(c, "nop 2", nop(2, 0, None))?;
    c.submit();
    c.wait_finals(&[1, 2]);
    push(c, "nop 3", nop(3, 0, None))?;
    c.submit();
    c.wait_final(3);
    c.record_order(&[1, 2, 3]);
    Ok(())
}

/// Absolute TIMEOUTs with each clock at a time long past (1 s after the
/// clock's epoch): -ETIME at once; then one far in the future on each clock,
/// removed.
pub fn timeout_abs_clocks(c: &mut Ctx) -> R {
    let past = ts(c, 1, 0);
    let clocks = [
        ("monotonic", 0),
        ("boottime", abi::IORING_TIMEOUT_BOOTTIME),
        ("realtime", abi::IORING_TIMEOUT_REALTIME),
    ];
    let mut uds = Vec::new();
    for (i, (n, f)) in clocks.iter().enumerate() {
        let ud = 1 + i as u64;
        push(
            c,
            &format!("timeout(abs, {n}, 1 s after epoch)"),
            timeout(past, 0, abi::IORING_TIMEOUT_ABS | f, ud),
        )?;
        uds.push(ud);
    }
    c.submit();
    c.wait_finals(&uds);
    c.record_all(&uds);
    let far = ts(c, 4_000_000_000, 0);
    for (i, (n, f)) in clocks.iter().enumerate() {
        let ud = 10 + i as u64;
        push(
            c,
            &format!("timeout(abs, {n}, year 2096)"),
            timeout(far, 0, abi::IORING_TIMEOUT_ABS | f, ud),
        )?;
    }
    c.submit();
    c.quiet();
    for i in 0..3u64 {
        let s = opcode::TimeoutRemove::new(10 + i).user_data(20 + i).build();
        push(c, &format!("timeout_remove {}", 10 + i), s.into_sqe())?;
    }
    c.submit();
    c.wait_finals(&[10, 11, 12, 20, 21, 22]);
    c.record_all(&[10, 11, 12, 20, 21, 22]);
    Ok(())
}

/// Relative TIMEOUTs on the BOOTTIME and REALTIME clocks fire like monotonic
/// ones; a relative one of 0 fires at once.
pub fn timeout_rel_clocks(c: &mut Ctx) -> R {
    let t = c.timespec_ms(10);
    let z = ts(c, 0, 0);
    // Two 10 ms timers on different clocks: which fires first is the
    // kernel's hrtimer bases' business, so each is recorded on its own.
    for (name, s) in [
        (
            "timeout(10 ms, boottime)",
            timeout(t, 0, abi::IORING_TIMEOUT_BOOTTIME, 1),
        ),
        (
            "timeout(10 ms, realtime)",
            timeout(t, 0, abi::IORING_TIMEOUT_REALTIME, 2),
        ),
        ("timeout(0)", timeout(z, 0, 0, 3)),
    ] {
        push(c, name, s)?;
    }
    c.submit();
    c.wait_finals(&[1, 2, 3]);
    c.record_all(&[1, 2, 3]);
    Ok(())
}

/// Timespecs out of range: a negative second, a negative or 1e9 nanosecond.
pub fn timeout_bad_timespec(c: &mut Ctx) -> R {
    let cases = [(-1, 0), (0, -1), (0, 1_000_000_000), (1, 999_999_999)];
    let mut uds = Vec::new();
    for (i, (s, ns)) in cases.into_iter().enumerate() {
        let t = ts(c, s, ns);
        let ud = 1 + i as u64;
        push(c, &format!("timeout({s} s, {ns} ns)"), timeout(t, 0, 0, ud))?;
        uds.push(ud);
    }
    c.submit();
    c.quiet();
    c.record_all(&uds);
    // The one that was valid (1.999999999 s) is still pending: remove it.
    let s = opcode::TimeoutRemove::new(4)
        .user_data(9)
        .build()
        .into_sqe();
    push(c, "timeout_remove 4", s)?;
    c.submit();
    c.wait_finals(&[4, 9]);
    c.record_order(&[4, 9]);
    Ok(())
}

/// ETIME_SUCCESS on a count-based TIMEOUT that completes by count (res 0),
/// and one that expires (-ETIME, the linked NOP still runs).
pub fn timeout_etime_success_count(c: &mut Ctx) -> R {
    let far = c.timespec_ms(10_000);
    let mut t1 = timeout(far, 1, abi::IORING_TIMEOUT_ETIME_SUCCESS, 1);
    t1.flags = IOSQE_IO_LINK;
    push(c, "timeout(10 s, count 1, ETIME_SUCCESS, LINK)", t1)?;
    push(c, "nop 2 (linked)", nop(2, 0, None))?;
    c.submit();
    c.quiet();
    c.record_all(&[1, 2]);
    push(c, "nop 3", nop(3, 0, None))?;
    c.submit();
    c.wait_finals(&[1, 2, 3]);
    c.record_order(&[1, 2, 3]);
    let short = c.timespec_ms(10);
    let mut t2 = timeout(short, 0, 0, 11);
    t2.flags = IOSQE_IO_LINK;
    batch(
        c,
        &[
            ("timeout(10 ms, LINK)", t2),
            ("nop 12 (linked)", nop(12, 0, None)),
        ],
        &[11, 12],
    )
}

/// TIMEOUT_REMOVE and TIMEOUT_UPDATE of a TIMEOUT that already fired, and of
/// one that completed by count.
pub fn timeout_remove_fired(c: &mut Ctx) -> R {
    let t = c.timespec_ms(10);
    push(c, "timeout(10 ms)", timeout(t, 0, 0, 1))?;
    c.submit();
    c.wait_final(1);
    let far = c.timespec_ms(10_000);
    push(c, "timeout(10 s, count 1)", timeout(far, 1, 0, 2))?;
    c.submit();
    c.quiet();
    push(c, "nop", nop(3, 0, None))?;
    c.submit();
    c.wait_finals(&[2, 3]);
    for (i, target) in [1u64, 2].into_iter().enumerate() {
        let rm = opcode::TimeoutRemove::new(target)
            .user_data(10 + i as u64)
            .build();
        push(c, &format!("timeout_remove {target}"), rm.into_sqe())?;
        let up = opcode::TimeoutUpdate::new(target, far)
            .user_data(20 + i as u64)
            .build();
        push(c, &format!("timeout_update {target}"), up)?;
    }
    c.submit();
    c.wait_finals(&[10, 11, 20, 21]);
    c.record_all(&[1, 2, 3, 10, 20, 11, 21]);
    Ok(())
}

/// Multishot TIMEOUT with count 0 (until removed): a firing, then
/// TIMEOUT_REMOVE well before the next (Linux answers -EALREADY to a remove
/// that meets a firing timer, so the interval is long); a multishot with
/// count 2, then removal of the ended one.
pub fn timeout_multishot_remove(c: &mut Ctx) -> R {
    let long = c.timespec_ms(150);
    push(
        c,
        "timeout(150 ms, multishot, forever)",
        timeout(long, 0, abi::IORING_TIMEOUT_MULTISHOT, 1),
    )?;
    c.submit();
    c.wait_n(1, 1);
    let first = c.cqes(1).first().map(|x| c.token(x)).unwrap_or_default();
    c.line(format!("first: {first}"));
    let rm = opcode::TimeoutRemove::new(1).user_data(2).build();
    push(c, "timeout_remove", rm.into_sqe())?;
    c.submit();
    c.wait_finals(&[1, 2]);
    c.quiet();
    let last = c.cqes(1).last().map(|x| c.token(x)).unwrap_or_default();
    c.line(format!("its last CQE: {last}"));
    c.record(2);
    let t = c.timespec_ms(10);
    push(
        c,
        "timeout(10 ms, multishot, 2)",
        timeout(t, 2, abi::IORING_TIMEOUT_MULTISHOT, 3),
    )?;
    c.submit();
    c.wait_final(3);
    let rm = opcode::TimeoutRemove::new(3).user_data(4).build();
    push(c, "timeout_remove of the ended one", rm.into_sqe())?;
    c.submit();
    c.wait_final(4);
    c.record_all(&[3, 4]);
    Ok(())
}

/// Multishot TIMEOUT with a count and a completion count interplay: ASYNC_CANCEL
/// of a multishot one after its first firing.
pub fn timeout_multishot_cancel(c: &mut Ctx) -> R {
    // Long enough that the cancel never meets a firing timer (-EALREADY).
    let t = c.timespec_ms(150);
    push(
        c,
        "timeout(150 ms, multishot, 100)",
        timeout(t, 100, abi::IORING_TIMEOUT_MULTISHOT, 1),
    )?;
    c.submit();
    c.wait_n(1, 1);
    push(
        c,
        "cancel",
        opcode::AsyncCancel::new(1).user_data(2).build().into_sqe(),
    )?;
    c.submit();
    c.wait_finals(&[1, 2]);
    c.quiet();
    let toks: Vec<String> = c.cqes(1).iter().map(|x| c.token(x)).collect();
    let last = toks.last().cloned().unwrap_or_default();
    c.line(format!(
        "timeout: first {}, last {last}, all but the last have F_MORE: {}",
        toks.first().cloned().unwrap_or_default(),
        toks[..toks.len().saturating_sub(1)]
            .iter()
            .all(|t| t.ends_with("+M"))
    ));
    c.record(2);
    Ok(())
}
