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

/// A SEND of `len` from provided-buffer group `bgid` (`bundle`: a bundle).
fn send_select(fd: i32, ud: u64, bgid: u16, len: u32, bundle: bool) -> Sqe {
    let mut s = raw(abi::IORING_OP_SEND, fd, ud);
    s.flags = abi::IOSQE_BUFFER_SELECT;
    s.buf_index = bgid;
    s.len = len;
    if bundle {
        s.ioprio = abi::IORING_RECVSEND_BUNDLE;
    }
    s
}

/// Registers buffer ring `bgid` of `entries` over a copy of `data` cut in
/// `size`-byte buffers (ids 0..), adding the first `fill`. Returns the ring
/// (kept by the context) for refills.
fn data_ring(
    c: &mut Ctx,
    bgid: u16,
    entries: u32,
    data: &[u8],
    size: usize,
    fill: u16,
) -> Result<(*mut ringline_ring::bufring::BufRing, u64), String> {
    let ring = c
        .backend()
        .register_buf_ring_flags(entries, bgid, 0)
        .map_err(|e| format!("register_buf_ring: {e}"))?;
    let ring = c.keep(ring);
    let mem = c.bytes(data) as u64;
    for bid in 0..fill {
        // SAFETY: `ring` is kept by the context; the buffer is context
        // memory (alive until the context drops, after the backend), and a
        // send only reads it.
        unsafe { (*ring).add_and_advance(mem + u64::from(bid) * size as u64, size as u32, bid) };
    }
    Ok((ring, mem))
}

/// Runs one request to its final CQE and records it.
fn run(c: &mut Ctx, name: &str, s: Sqe) -> R {
    let ud = s.user_data;
    submit(c, name, s)?;
    c.wait_final(ud);
    c.record(ud);
    Ok(())
}

/// SEND with IOSQE_BUFFER_SELECT: the data is a provided buffer (a `len`
/// cuts it); errors without a group or buffer; send bundles from a ring
/// (one CQE per round, `F_MORE` while the group has buffers, a `len` cap
/// ending a round before a buffer it would cut) and from a legacy group
/// (a buffer per CQE); a bundle without buffer select (its data, then 0);
/// the peer gets every byte in order.
pub fn send_buffers(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    run(
        c,
        "send(select) from no group",
        send_select(fd, 1, 50, 0, false),
    )?;
    c.buf_ring(51, 4, 32, 0)
        .map_err(|e| format!("buf ring {e}"))?;
    run(
        c,
        "send(select) from an empty ring",
        send_select(fd, 2, 51, 0, false),
    )?;
    run(
        c,
        "send(bundle) from an empty ring",
        send_select(fd, 3, 51, 0, true),
    )?;
    let data = pattern(8 * 32, 40);
    let (ring, mem) = data_ring(c, 52, 8, &data, 32, 4)?;
    let mut want = Vec::new();
    run(c, "send(select)", send_select(fd, 4, 52, 0, false))?;
    want.extend_from_slice(&data[..32]);
    run(c, "send(select, len 10)", send_select(fd, 5, 52, 10, false))?;
    want.extend_from_slice(&data[32..42]);
    run(
        c,
        "send(bundle) of the 2 left",
        send_select(fd, 6, 52, 0, true),
    )?;
    want.extend_from_slice(&data[64..128]);
    run(
        c,
        "send(bundle) from the emptied ring",
        send_select(fd, 7, 52, 0, true),
    )?;
    // Buffers 4..8 added: a bundle capped at 40 B takes buffer 4 whole,
    // stops before 5 (the cap would cut it), then the rest in a next round.
    for bid in 4..8u16 {
        // SAFETY: as in `data_ring`.
        unsafe { (*ring).add_and_advance(mem + u64::from(bid) * 32, 32, bid) };
    }
    run(c, "send(bundle, len 40)", send_select(fd, 8, 52, 40, true))?;
    want.extend_from_slice(&data[128..256]);
    // A legacy group: a buffer per CQE.
    let legacy = pattern(3 * 20, 41);
    let lmem = c.legacy_mem(53, 3, 20, 7);
    // SAFETY: `lmem` is context memory of 3 x 20 bytes, written before any
    // request names it.
    unsafe { std::ptr::copy_nonoverlapping(legacy.as_ptr(), lmem, legacy.len()) };
    let provide = ringline_ring::opcode::ProvideBuffers::new(lmem, 20, 3, 53, 7)
        .user_data(9)
        .build();
    // SAFETY: `lmem` is context memory, alive until the context drops.
    unsafe { super::call(c, "provide 3 x 20 B", provide) }?;
    c.record(9);
    run(
        c,
        "send(bundle) from a legacy group",
        send_select(fd, 10, 53, 0, true),
    )?;
    want.extend_from_slice(&legacy);
    // A bundle without buffer select: its buffer, then a 0.
    let plain = pattern(24, 42);
    let mut s = raw(abi::IORING_OP_SEND, fd, 11);
    s.addr = c.bytes(&plain) as u64;
    s.len = 24;
    s.ioprio = abi::IORING_RECVSEND_BUNDLE;
    run(c, "send(bundle) without buffer select", s)?;
    want.extend_from_slice(&plain);
    let rx = c.peer_wait(p, want.len());
    c.line(format!(
        "peer got {} of {} B, in order: {}",
        rx.data.len(),
        want.len(),
        rx.data == want
    ));
    // On a socket that never connected, with a buffer there.
    let fresh = super::socket(c, "socket", 12)?;
    let (_, _) = data_ring(c, 54, 4, &data[..64], 32, 2)?;
    run(
        c,
        "send(select) on an unconnected socket",
        send_select(fresh, 13, 54, 0, false),
    )?;
    run(
        c,
        "send(select) again",
        send_select(fresh, 14, 54, 0, false),
    )?;
    Ok(())
}

/// Registers buffer ring `bgid` over `n` zeroed context buffers of `size`
/// bytes (ids 0..n), all added. Returns their memory.
fn recv_ring(c: &mut Ctx, bgid: u16, n: u16, size: usize) -> Result<*mut u8, String> {
    let ring = c
        .backend()
        .register_buf_ring_flags(u32::from(n).next_power_of_two(), bgid, 0)
        .map_err(|e| format!("register_buf_ring: {e}"))?;
    let ring = c.keep(ring);
    let mem = c.mem(usize::from(n) * size);
    for bid in 0..n {
        // SAFETY: `ring` is kept by the context; the buffer is context
        // memory, alive until the context drops, after the backend; the
        // scenario reads a buffer only after a CQE handed it back.
        unsafe {
            (*ring).add_and_advance(mem as u64 + u64::from(bid) * size as u64, size as u32, bid)
        };
    }
    Ok(mem)
}

/// A READV with buffer select from `bgid` over `nr` iovecs at `iov`.
fn readv_select(fd: i32, ud: u64, bgid: u16, iov: u64, nr: u32) -> Sqe {
    let mut s = raw(abi::IORING_OP_READV, fd, ud);
    s.flags = abi::IOSQE_BUFFER_SELECT;
    s.buf_index = bgid;
    s.addr = iov;
    s.len = nr;
    s
}

/// READV with IOSQE_BUFFER_SELECT: one iovec whose length caps the read
/// (0: the buffer's), the buffer from the group; more iovecs, an
/// unreadable iovec, no group; RWF_NOWAIT on the emptied socket.
pub fn readv_buffers(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let mem = recv_ring(c, 61, 4, 64)?;
    let data = pattern(100, 50);
    c.peer_send(p, &data)?;
    c.quiet();
    let iov = |c: &mut Ctx, len: usize| -> u64 {
        let v = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: len,
        };
        c.keep(v) as u64
    };
    let two = c.keep(
        [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 8,
        }; 2],
    ) as u64;
    run(
        c,
        "readv(select, 2 iovecs)",
        readv_select(fd, 1, 61, two, 2),
    )?;
    run(
        c,
        "readv(select, null iovec)",
        readv_select(fd, 2, 61, 0, 1),
    )?;
    let v30 = iov(c, 30);
    run(
        c,
        "readv(select) from no group",
        readv_select(fd, 3, 60, v30, 1),
    )?;
    let mut at = 0;
    for (ud, len) in [(4, 30), (5, 0), (6, 1000)] {
        let v = iov(c, len);
        run(
            c,
            &format!("readv(select, iov_len {len})"),
            readv_select(fd, ud, 61, v, 1),
        )?;
        let Some(q) = c.first(ud) else { continue };
        if let Some(bid) = abi::buffer_id(q.flags) {
            let n = q.res.max(0) as usize;
            let got = c.read_mem(mem.wrapping_add(usize::from(bid) * 64), n);
            c.line(format!(
                "bytes {at}..{}: match what the peer sent: {}",
                at + n,
                data.get(at..at + n) == Some(&got[..])
            ));
            at += n;
        }
    }
    let mut s = readv_select(fd, 7, 61, v30, 1);
    s.op_flags = 0x8; // RWF_NOWAIT
    run(c, "readv(select, RWF_NOWAIT) on the emptied socket", s)?;
    Ok(())
}

/// A multishot RECV from `bgid` with `msg_flags`.
fn mshot_flags(fd: i32, ud: u64, bgid: u16, msg_flags: u32) -> Sqe {
    let mut s = mshot_recv(fd, ud, bgid, 0, false);
    s.op_flags = msg_flags;
    s
}

/// Multishot RECV with MSG_PEEK: each CQE peeks what is queued into the
/// next buffer, the same bytes again, until the group is empty
/// (`-ENOBUFS`); then a plain RECV takes the bytes. One-shot RECV with
/// MSG_PEEK and buffer select leaves them queued too.
pub fn recv_multishot_peek(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let mem = recv_ring(c, 70, 4, 64)?;
    let data = pattern(40, 60);
    // One-shot with a buffer: peeked, left queued.
    c.peer_send(p, &data)?;
    c.quiet();
    let mut s = raw(abi::IORING_OP_RECV, fd, 1);
    s.flags = abi::IOSQE_BUFFER_SELECT;
    s.buf_index = 70;
    s.op_flags = libc::MSG_PEEK as u32;
    run(c, "recv(select, MSG_PEEK)", s)?;
    // Multishot: the same 40 B into buffers 1, 2, 3, then -ENOBUFS.
    run(
        c,
        "recv(multishot, MSG_PEEK)",
        mshot_flags(fd, 2, 70, libc::MSG_PEEK as u32),
    )?;
    let same = c.cqes(2).iter().all(|q| match abi::buffer_id(q.flags) {
        Some(bid) => c.read_mem(mem.wrapping_add(usize::from(bid) * 64), 40) == data,
        None => q.res < 0,
    });
    c.line(format!("every peeked buffer holds the same 40 B: {same}"));
    // The bytes are still there for a plain RECV.
    let buf = c.mem(64);
    let r = ringline_ring::opcode::Recv::new(fd, buf, 64)
        .user_data(3)
        .build();
    // SAFETY: `buf` is context memory, alive until the context drops.
    unsafe { super::call(c, "recv", r) }?;
    c.record(3);
    let n = c.first(3).map_or(0, |q| q.res);
    super::record_mem(c, "recv's bytes", buf, &data, n);
    // Armed on an empty socket with a fresh group of 2: data comes, 2 peeks
    // and -ENOBUFS.
    recv_ring(c, 71, 2, 64)?;
    submit(
        c,
        "recv(multishot, MSG_PEEK) on an empty socket",
        mshot_flags(fd, 4, 71, libc::MSG_PEEK as u32),
    )?;
    c.quiet();
    c.record(4);
    c.peer_send(p, &data[..10])?;
    c.wait_final(4);
    c.record(4);
    Ok(())
}

/// Multishot RECV with MSG_ERRQUEUE: TCP's error queue is always empty, so
/// it waits, data or not, until cancelled; the data stays for a RECV.
pub fn recv_multishot_errqueue(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    recv_ring(c, 72, 4, 64)?;
    let q = libc::MSG_ERRQUEUE as u32;
    submit(
        c,
        "recv(multishot, MSG_ERRQUEUE)",
        mshot_flags(fd, 1, 72, q),
    )?;
    c.quiet();
    c.record(1);
    c.peer_send(p, &pattern(30, 61))?;
    c.quiet();
    c.record(1);
    // A plain multishot RECV beside it gets the data.
    submit(c, "recv(multishot)", mshot_recv(fd, 2, 72, 0, false))?;
    c.wait_n(2, 1);
    c.quiet();
    c.record(2);
    c.record(1);
    c.submit_one_safe(
        "cancel errqueue",
        ringline_ring::opcode::AsyncCancel::new(1)
            .user_data(3)
            .build(),
    )?;
    c.wait_final(1);
    c.record_all(&[1, 3]);
    // Armed again, then the peer's FIN.
    submit(
        c,
        "recv(multishot, MSG_ERRQUEUE) again",
        mshot_flags(fd, 4, 72, q),
    )?;
    c.backend().peer_shutdown_write(p);
    c.wait_final(2);
    c.quiet();
    c.record_all(&[2, 4]);
    c.backend().peer_close(p);
    c.quiet();
    c.record(4);
    c.submit_one_safe(
        "cancel errqueue again",
        ringline_ring::opcode::AsyncCancel::new(4)
            .user_data(5)
            .build(),
    )?;
    c.wait_final(4);
    c.record_all(&[4, 5]);
    Ok(())
}

/// A MSG_RING SQE to ring `fd`: command `cmd`, target user_data `off`,
/// `len`, `msg_ring_flags`, `file_index`.
fn msg_ring(fd: i32, ud: u64, cmd: u32, off: u64, len: u32, flags: u32, file_index: u32) -> Sqe {
    let mut s = raw(abi::IORING_OP_MSG_RING, fd, ud);
    s.addr = u64::from(cmd);
    s.off = off;
    s.len = len;
    s.op_flags = flags;
    s.file_index = file_index;
    s
}

/// Records the second ring's CQEs after a quiet period.
fn record_second(c: &mut Ctx, label: &str) {
    c.quiet();
    let got: Vec<String> = c
        .backend()
        .second_reap()
        .iter()
        .map(|q| format!("ud={:#x} res={} flags={:#x}", q.user_data, q.res, q.flags))
        .collect();
    c.line(format!(
        "{label}: {}",
        if got.is_empty() {
            "(none)".into()
        } else {
            got.join(", ")
        }
    ));
}

/// IORING_OP_MSG_RING between two rings of the process: data messages both
/// ways (user_data, res, FLAGS_PASS), to the ring itself; the field and
/// target checks; SEND_FD's checks.
pub fn msg_ring_rings(c: &mut Ctx) -> R {
    let me = c.backend().ring_fd();
    let other = c.backend().second_ring()?;
    let data = abi::IORING_MSG_DATA;
    let pass = abi::IORING_MSG_RING_FLAGS_PASS;
    run(
        c,
        "msg(data) to the second ring",
        msg_ring(other, 1, data, 0x1234, 77, 0, 0),
    )?;
    record_second(c, "second ring got");
    let f = 0x00ab_0000 | abi::IORING_CQE_F_BUFFER;
    run(
        c,
        "msg(data, FLAGS_PASS)",
        msg_ring(other, 2, data, 0x55, 0xffff_fff0, pass, f),
    )?;
    record_second(c, "second ring got");
    // The second ring messages the first.
    let s = msg_ring(me, 0x99, data, 0x77, 5, 0, 0);
    // SAFETY: a MSG_RING names no memory.
    unsafe { c.backend().second_submit(&s) }?;
    c.wait_n(0x77, 1);
    c.record(0x77);
    record_second(c, "second ring's own CQE");
    // To itself: the message's CQE, then the request's.
    submit(
        c,
        "msg(data) to itself",
        msg_ring(me, 3, data, 0x78, 9, 0, 0),
    )?;
    c.wait_final(3);
    c.record_order(&[3, 0x78]);
    // The same with IO_DRAIN.
    let mut s = msg_ring(me, 4, data, 0x79, 9, 0, 0);
    s.flags = abi::IOSQE_IO_DRAIN;
    submit(c, "msg(data, IO_DRAIN) to itself", s)?;
    c.wait_final(4);
    c.quiet();
    c.record_order(&[4, 0x79]);
    // Linked behind a NOP, and behind a RECV that waits for data.
    let mut nop = raw(abi::IORING_OP_NOP, -1, 5);
    nop.flags = abi::IOSQE_IO_LINK;
    // SAFETY: a NOP names no memory.
    unsafe { c.push("nop(link)", nop) }?;
    submit(
        c,
        "msg(data) linked after a NOP",
        msg_ring(me, 6, data, 0x7a, 9, 0, 0),
    )?;
    c.wait_final(6);
    c.quiet();
    c.record_order(&[5, 6, 0x7a]);
    // Field and target checks; the second ring gets nothing from them.
    let conn = c.backend().app_conn()?.0;
    let cases: [(&str, Sqe); 10] = [
        (
            "msg(data, CQE_SKIP)",
            msg_ring(other, 10, data, 1, 0, abi::IORING_MSG_RING_CQE_SKIP, 0),
        ),
        (
            "msg(data, file_index without FLAGS_PASS)",
            msg_ring(other, 11, data, 1, 0, 0, 3),
        ),
        ("msg(data, addr3 set)", {
            let mut s = msg_ring(other, 12, data, 1, 0, 0, 0);
            s.addr3 = 4;
            s
        }),
        (
            "msg(unknown flag)",
            msg_ring(other, 13, data, 1, 0, 1 << 2, 0),
        ),
        ("msg(buf_index set)", {
            let mut s = msg_ring(other, 14, data, 1, 0, 0, 0);
            s.buf_index = 1;
            s
        }),
        ("msg(command 2)", msg_ring(other, 15, 2, 1, 0, 0, 0)),
        ("msg to a socket", msg_ring(conn, 16, data, 1, 0, 0, 0)),
        (
            "msg to an fd not open",
            msg_ring(100_000, 17, data, 1, 0, 0, 0),
        ),
        (
            "msg(send_fd, len 1)",
            msg_ring(other, 18, abi::IORING_MSG_SEND_FD, 1, 1, 0, 1),
        ),
        (
            "msg(send_fd) to itself",
            msg_ring(me, 19, abi::IORING_MSG_SEND_FD, 1, 0, 0, 1),
        ),
    ];
    for (name, s) in cases {
        run(c, name, s)?;
    }
    let mut s = msg_ring(other, 20, abi::IORING_MSG_SEND_FD, 1, 0, 0, 1);
    s.addr3 = 0;
    run(c, "msg(send_fd) with no file table", s)?;
    let mut s = msg_ring(0, 21, data, 1, 0, 0, 0);
    s.flags = abi::IOSQE_FIXED_FILE;
    run(c, "msg(data) through a fixed slot, no file table", s)?;
    record_second(c, "second ring got");
    Ok(())
}
