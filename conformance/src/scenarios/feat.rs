//! Features programs use that the sweep found missing: the multishot RECV's
//! total byte cap (`optlen`), SEND from provided buffers and send bundles,
//! READV with buffer selection, multishot RECV with MSG_PEEK / MSG_ERRQUEUE,
//! and MSG_RING between two rings.

use ringline_ring::abi::{self, Sqe};

use super::{pattern, raw, R};
use crate::Ctx;

/// A multishot RECV from group `bgid` with the total cap `total` (`optlen`).
fn mshot_recv(fd: i32, ud: u64, bgid: u16, total: u32, bundle: bool) -> Sqe {
    let mut s = raw(abi::IORING_OP_RECV, fd, ud);
    s.flags = abi::IOSQE_BUFFER_SELECT;
    s.buf_index = bgid;
    s.ioprio = abi::IORING_RECV_MULTISHOT;
    if bundle {
        s.ioprio |= abi::IORING_RECVSEND_BUNDLE;
    }
    s.file_index = total;
    s
}

/// Submits `s` (which names no memory beyond provided buffers) under `name`.
fn submit(c: &mut Ctx, name: &str, s: Sqe) -> R {
    // SAFETY: every SQE built here names no memory beyond the context's
    // provided-buffer groups (or memory the context keeps).
    unsafe { c.submit_one(name, s) }
}

/// Multishot RECV with a total cap (`optlen`, Linux 6.17): the multishot
/// ends (no `F_MORE`) with the CQE that uses the cap up; a CQE is not cut to
/// it; a bundle is; a re-arm without cap gets the rest.
pub fn recv_total_cap(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(1, 16, 64, 16)
        .map_err(|e| format!("buf ring {e}"))?;
    // Cap 100: 50 B (armed), then 80 B (64 B fit a buffer: 114 >= 100, done).
    submit(
        c,
        "recv(multishot, total 100)",
        mshot_recv(fd, 1, 1, 100, false),
    )?;
    c.peer_send(p, &pattern(50, 1))?;
    c.wait_n(1, 1);
    c.peer_send(p, &pattern(80, 2))?;
    c.wait_final(1);
    c.record(1);
    // The 16 B left: a re-arm without a cap, still armed after them.
    submit(c, "re-arm(multishot)", mshot_recv(fd, 2, 1, 0, false))?;
    c.wait_n(2, 1);
    c.quiet();
    c.record(2);
    c.submit_one_safe(
        "cancel",
        ringline_ring::opcode::AsyncCancel::new(2)
            .user_data(3)
            .build(),
    )?;
    c.wait_final(2);
    c.record(3);
    // Cap 10 with 50 B waiting: the first CQE is not cut, and ends it.
    c.peer_send(p, &pattern(50, 3))?;
    c.quiet();
    submit(
        c,
        "recv(multishot, total 10)",
        mshot_recv(fd, 4, 1, 10, false),
    )?;
    c.wait_final(4);
    c.record(4);
    // A multishot bundle with cap 40 over 16 B buffers and 100 B: 40 B in
    // three buffers (the third cut), then the multishot ends.
    c.buf_ring(2, 16, 16, 16)
        .map_err(|e| format!("buf ring {e}"))?;
    c.peer_send(p, &pattern(100, 4))?;
    c.quiet();
    submit(
        c,
        "recv(multishot bundle, total 40)",
        mshot_recv(fd, 5, 2, 40, true),
    )?;
    c.wait_final(5);
    c.record(5);
    // Cap 1 on an empty socket: armed until data comes, then one CQE.
    let mut left = 60;
    submit(c, "drain rest", {
        let mut s = raw(abi::IORING_OP_RECV, fd, 6);
        s.flags = abi::IOSQE_BUFFER_SELECT;
        s.buf_index = 1;
        s
    })?;
    c.wait_final(6);
    left -= c.first(6).map_or(0, |q| q.res.max(0));
    c.line(format!("left after the drain: {left}"));
    submit(
        c,
        "recv(multishot, total 1) on an empty socket",
        mshot_recv(fd, 7, 1, 1, false),
    )?;
    c.quiet();
    c.record(7);
    c.peer_send(p, &pattern(30, 5))?;
    c.wait_final(7);
    c.record(7);
    // A cap past INT_MAX (Linux 6.18 compares as ints: used up at once).
    submit(
        c,
        "recv(multishot, total 0x80000000)",
        mshot_recv(fd, 8, 1, 0x8000_0000, false),
    )?;
    c.peer_send(p, &pattern(20, 6))?;
    c.wait_final(8);
    c.record(8);
    Ok(())
}
