//! Ring mechanics, part 2: ASYNC_CANCEL by fd / opcode / ALL with counts, of
//! linked requests and timeouts, cancel-then-re-arm of multishot requests;
//! CQ overflow with chains, timeouts and multishot producers; provided
//! buffer limits and buffer-ring registration errors; registered files
//! changing under requests in flight.

use ringline_ring::abi::{self, Sqe, IOSQE_IO_LINK};
use ringline_ring::opcode;

use super::regs::{close_slot, fixed, sparse, update};
use super::ring2::{batch, nop, push, recv, timeout};
use super::{call, pattern, raw, record_mem, R};
use crate::backend::PeerId;
use crate::Ctx;

const POLLIN: u32 = libc::POLLIN as u32;

/// A POLL_ADD(POLLIN) of `fd` (multishot with `multi`).
fn poll(fd: i32, multi: bool, ud: u64) -> Sqe {
    let b = opcode::PollAdd::new(fd, POLLIN);
    let b = if multi { b.multi() } else { b };
    b.user_data(ud).build().into_sqe()
}

/// An ASYNC_CANCEL with `op_flags` `flags`, key `addr` (user_data), `fd`,
/// and opcode `op` (in `len`).
fn cancel(flags: u32, key: u64, fd: i32, op: u8, ud: u64) -> Sqe {
    let mut s = raw(abi::IORING_OP_ASYNC_CANCEL, fd, ud);
    s.op_flags = flags;
    s.addr = key;
    s.len = u32::from(op);
    s
}

/// Submits one cancel and records it once it completed, with the targets.
fn cancel_and_record(c: &mut Ctx, name: &str, s: Sqe, targets: &[u64]) -> R {
    let ud = s.user_data;
    push(c, name, s)?;
    c.submit();
    c.wait_final(ud);
    c.quiet();
    c.record(ud);
    c.record_all(targets);
    Ok(())
}

// ----------------------------------------------------------------------
// ASYNC_CANCEL
// ----------------------------------------------------------------------

/// CANCEL_FD|ALL over four requests on one socket, a RECV on another left
/// alone (it still gets its data); then CANCEL_FD on a socket with none.
pub fn cancel_fd_all_count(c: &mut Ctx) -> R {
    let (a, _pa) = c.backend().app_conn()?;
    let (b, pb) = c.backend().app_conn()?;
    for ud in 1..=3 {
        let r = recv(c, a, 0, ud);
        push(c, &format!("recv {ud} on A"), r)?;
    }
    push(c, "poll on A", poll(a, false, 4))?;
    let rb = recv(c, b, 0, 5);
    push(c, "recv on B", rb)?;
    c.submit();
    c.quiet();
    let all = abi::IORING_ASYNC_CANCEL_FD | abi::IORING_ASYNC_CANCEL_ALL;
    cancel_and_record(
        c,
        "cancel(fd A, ALL)",
        cancel(all, 0, a, 0, 10),
        &[1, 2, 3, 4],
    )?;
    c.peer_send(pb, &pattern(7, 6))?;
    c.wait_final(5);
    c.record(5);
    cancel_and_record(c, "cancel(fd A, ALL) again", cancel(all, 0, a, 0, 11), &[])?;
    cancel_and_record(
        c,
        "cancel(fd A) again",
        cancel(abi::IORING_ASYNC_CANCEL_FD, 0, a, 0, 12),
        &[],
    )
}

/// CANCEL_OP|ALL of POLL_ADD across two sockets (a RECV left), then
/// CANCEL_OP|FD|ALL: only requests of that opcode on that socket.
pub fn cancel_op_counts(c: &mut Ctx) -> R {
    let (a, _pa) = c.backend().app_conn()?;
    let (b, _pb) = c.backend().app_conn()?;
    push(c, "poll A1", poll(a, false, 1))?;
    push(c, "poll A2 (multi)", poll(a, true, 2))?;
    push(c, "poll B", poll(b, false, 3))?;
    let r = recv(c, a, 0, 4);
    push(c, "recv A", r)?;
    c.submit();
    c.quiet();
    let op_all = abi::IORING_ASYNC_CANCEL_OP | abi::IORING_ASYNC_CANCEL_ALL;
    cancel_and_record(
        c,
        "cancel(op POLL_ADD, ALL)",
        cancel(op_all, 0, -1, abi::IORING_OP_POLL_ADD, 10),
        &[1, 2, 3, 4],
    )?;
    push(c, "poll A3", poll(a, false, 5))?;
    push(c, "poll B2", poll(b, false, 6))?;
    let r = recv(c, b, 0, 7);
    push(c, "recv B", r)?;
    c.submit();
    c.quiet();
    let f = op_all | abi::IORING_ASYNC_CANCEL_FD;
    cancel_and_record(
        c,
        "cancel(op RECV, fd B, ALL)",
        cancel(f, 0, b, abi::IORING_OP_RECV, 11),
        &[4, 5, 6, 7],
    )?;
    cancel_and_record(
        c,
        "cancel(ANY) of the rest",
        cancel(abi::IORING_ASYNC_CANCEL_ANY, 0, -1, 0, 12),
        &[4, 5, 6],
    )
}

/// CANCEL_FD|USERDATA|ALL: both keys must match; CANCEL_OP|USERDATA.
pub fn cancel_userdata_keys(c: &mut Ctx) -> R {
    let (a, _pa) = c.backend().app_conn()?;
    let (b, _pb) = c.backend().app_conn()?;
    push(c, "poll A (ud 7)", poll(a, false, 7))?;
    push(c, "poll B (ud 7)", poll(b, false, 7))?;
    push(c, "poll A (ud 8)", poll(a, false, 8))?;
    c.submit();
    c.quiet();
    let f = abi::IORING_ASYNC_CANCEL_FD
        | abi::IORING_ASYNC_CANCEL_USERDATA
        | abi::IORING_ASYNC_CANCEL_ALL;
    cancel_and_record(c, "cancel(fd A, ud 7, ALL)", cancel(f, 7, a, 0, 10), &[])?;
    let f = abi::IORING_ASYNC_CANCEL_OP | abi::IORING_ASYNC_CANCEL_USERDATA;
    cancel_and_record(
        c,
        "cancel(op RECV, ud 8)",
        cancel(f, 8, -1, abi::IORING_OP_RECV, 11),
        &[],
    )?;
    cancel_and_record(
        c,
        "cancel(op POLL_ADD, ud 8)",
        cancel(f, 8, -1, abi::IORING_OP_POLL_ADD, 12),
        &[],
    )?;
    cancel_and_record(
        c,
        "cancel(ANY)",
        cancel(abi::IORING_ASYNC_CANCEL_ANY, 0, -1, 0, 13),
        &[7, 8],
    )
}

/// ASYNC_CANCEL of a chain's running head (the rest -ECANCELED), of a
/// member still waiting in the chain, and of a LINK_TIMEOUT by its user_data.
pub fn cancel_linked(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let r = recv(c, fd, IOSQE_IO_LINK, 1);
    push(c, "recv (LINK)", r)?;
    push(c, "nop 2 (LINK)", nop(2, IOSQE_IO_LINK, None))?;
    push(c, "nop 3", nop(3, 0, None))?;
    c.submit();
    c.quiet();
    cancel_and_record(
        c,
        "cancel(nop 2, waiting in the chain)",
        cancel(0, 2, -1, 0, 10),
        &[],
    )?;
    cancel_and_record(c, "cancel(recv, the head)", cancel(0, 1, -1, 0, 11), &[])?;
    c.record_order(&[1, 2, 3]);
    let r = recv(c, fd, IOSQE_IO_LINK, 4);
    push(c, "recv 2 (LINK)", r)?;
    let t = c.timespec_ms(10_000);
    let lt = opcode::LinkTimeout::new(t).user_data(5).build();
    push(c, "link_timeout(10 s)", lt)?;
    c.submit();
    c.quiet();
    cancel_and_record(c, "cancel(link_timeout)", cancel(0, 5, -1, 0, 12), &[])?;
    let rm = opcode::TimeoutRemove::new(5)
        .user_data(13)
        .build()
        .into_sqe();
    cancel_and_record(c, "timeout_remove(link_timeout)", rm, &[])?;
    c.peer_send(p, &pattern(5, 7))?;
    c.wait_finals(&[4, 5]);
    c.record_order(&[4, 5]);
    Ok(())
}

/// TIMEOUTs and ASYNC_CANCEL: by user_data, by opcode (TIMEOUT, ALL), by fd
/// (a TIMEOUT has none), and ANY counting them with a POLL.
pub fn cancel_timeouts(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let t = c.timespec_ms(10_000);
    for ud in 1..=3 {
        push(c, &format!("timeout {ud} (10 s)"), timeout(t, 0, 0, ud))?;
    }
    c.submit();
    c.quiet();
    cancel_and_record(
        c,
        "cancel(fd, ALL)",
        cancel(
            abi::IORING_ASYNC_CANCEL_FD | abi::IORING_ASYNC_CANCEL_ALL,
            0,
            fd,
            0,
            10,
        ),
        &[],
    )?;
    cancel_and_record(c, "cancel(timeout 1)", cancel(0, 1, -1, 0, 11), &[1])?;
    let op_all = abi::IORING_ASYNC_CANCEL_OP | abi::IORING_ASYNC_CANCEL_ALL;
    cancel_and_record(
        c,
        "cancel(op TIMEOUT, ALL)",
        cancel(op_all, 0, -1, abi::IORING_OP_TIMEOUT, 12),
        &[2, 3],
    )?;
    push(c, "timeout 4 (10 s)", timeout(t, 0, 0, 4))?;
    push(c, "timeout 5 (10 s, count 9)", timeout(t, 9, 0, 5))?;
    push(c, "poll", poll(fd, false, 6))?;
    c.submit();
    c.quiet();
    cancel_and_record(
        c,
        "cancel(ANY)",
        cancel(abi::IORING_ASYNC_CANCEL_ANY, 0, -1, 0, 13),
        &[4, 5, 6],
    )
}

/// Cancel then re-arm: a multishot POLL_ADD, a multishot ACCEPT (a
/// connection queued while none was armed), a multishot RECV (data that
/// came while none was armed).
pub fn cancel_rearm_multishot(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    push(c, "poll(multi)", poll(fd, true, 1))?;
    c.submit();
    c.quiet();
    cancel_and_record(c, "cancel(poll)", cancel(0, 1, -1, 0, 2), &[1])?;
    push(c, "poll(multi) again", poll(fd, true, 3))?;
    c.submit();
    c.quiet();
    c.peer_send(p, &pattern(4, 8))?;
    c.wait_n(3, 1);
    c.record(3);
    let l = c.backend().app_listener(8)?;
    let acc = opcode::AcceptMulti::new(l).user_data(4).build().into_sqe();
    push(c, "accept(multi)", acc)?;
    c.submit();
    c.quiet();
    cancel_and_record(c, "cancel(accept)", cancel(0, 4, -1, 0, 5), &[4])?;
    c.backend().peer_connect(l)?;
    c.quiet();
    let acc = opcode::AcceptMulti::new(l).user_data(6).build().into_sqe();
    push(c, "accept(multi) again", acc)?;
    c.submit();
    c.wait_n(6, 1);
    c.record(6);
    c.buf_ring(3, 8, 256, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    let (fd2, p2) = c.backend().app_conn()?;
    let r = opcode::RecvMulti::new(fd2, 3)
        .user_data(7)
        .build()
        .into_sqe();
    push(c, "recv(multi)", r)?;
    c.submit();
    c.quiet();
    cancel_and_record(c, "cancel(recv)", cancel(0, 7, -1, 0, 8), &[7])?;
    let data = pattern(300, 9);
    c.peer_send(p2, &data)?;
    c.quiet();
    let r = opcode::RecvMulti::new(fd2, 3)
        .user_data(9)
        .build()
        .into_sqe();
    push(c, "recv(multi) again", r)?;
    c.submit();
    c.stream(9, 3, true);
    c.wait_stream(9, data.len());
    c.record_stream(9, &data, false);
    Ok(())
}

// ----------------------------------------------------------------------
// CQ overflow (ring SQ 4, CQ 8)
// ----------------------------------------------------------------------

/// Three chains of 4 linked NOPs (injecting 0..11), one submission each,
/// into a CQ of 8 without reaping: the backlog keeps every CQE, each chain
/// in its order. (How the chains interleave is not compared: Linux with
/// `DEFER_TASKRUN` runs the chains' later requests round-robin at the next
/// wait, without it at each submission's return.)
pub fn overflow_link_chains(c: &mut Ctx) -> R {
    for k in 0..3u64 {
        for j in 0..4 {
            let i = (k * 4 + j) as i32;
            let f = if j < 3 { IOSQE_IO_LINK } else { 0 };
            push(c, &format!("chain {k}"), nop(200 + k, f, Some(i)))?;
        }
        c.submit();
    }
    c.pump();
    c.record_flags("12 linked NOPs, not reaped", true);
    c.settle(|l| l.iter().filter(|x| x.user_data >= 200).count() >= 12);
    for k in 0..3u64 {
        let v: Vec<String> = c.cqes(200 + k).iter().map(|x| x.res.to_string()).collect();
        c.line(format!("chain {k} results in order: {}", v.join(" ")));
    }
    c.record_flags("after reaping", false);
    Ok(())
}

/// A TIMEOUT that fires while the CQ is full: its CQE joins the backlog in
/// order, the flag clears once all are reaped; a count TIMEOUT met by the
/// backlogged CQEs.
pub fn overflow_timeouts(c: &mut Ctx) -> R {
    let t = c.timespec_ms(20);
    push(c, "timeout(20 ms)", timeout(t, 0, 0, 1))?;
    let far = c.timespec_ms(10_000);
    push(c, "timeout(10 s, count 10)", timeout(far, 10, 0, 2))?;
    c.submit();
    for i in 0..8 {
        push(c, "nop", nop(200, 0, Some(i)))?;
        if i % 4 == 3 {
            c.submit();
        }
    }
    c.pump();
    c.record_flags("8 NOPs, not reaped", true);
    c.pump_until(|b| b.sq_flags() & abi::IORING_SQ_CQ_OVERFLOW != 0);
    c.pump();
    c.record_flags("after the timeout fired", true);
    for i in 8..10 {
        push(c, "nop", nop(200, 0, Some(i)))?;
    }
    c.submit();
    c.settle(|l| l.iter().filter(|x| x.user_data == 200).count() >= 10);
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    let v: Vec<String> = c.cqes(200).iter().map(|x| x.res.to_string()).collect();
    c.line(format!("nop results in order: {}", v.join(" ")));
    c.record_flags("after reaping", false);
    Ok(())
}

/// A multishot POLL_ADD firing while the CQ is full and backlogged: it ends
/// (final CQE, no F_MORE) behind the backlog; re-armed after reaping.
pub fn overflow_multishot_poll(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    push(c, "poll(multi)", poll(fd, true, 1))?;
    c.submit();
    c.quiet();
    for i in 0..10 {
        push(c, "nop", nop(200, 0, Some(i)))?;
        if i % 4 == 3 || i == 9 {
            c.submit();
        }
    }
    c.pump();
    c.record_flags("10 NOPs, not reaped", true);
    c.backend().peer_send(p, &pattern(10, 10));
    c.pump_until(|b| b.peer_sent_all(p));
    c.pump();
    c.settle(|l| {
        l.iter().filter(|x| x.user_data == 200).count() >= 10 && l.iter().any(|x| x.user_data == 1)
    });
    c.record_order(&[200, 1]);
    c.record_flags("after reaping", false);
    push(c, "poll(multi) again", poll(fd, true, 2))?;
    c.submit();
    c.wait_n(2, 1);
    c.record(2);
    Ok(())
}

/// A multishot TIMEOUT firing into a full CQ: ended by the full CQ
/// (a final CQE without F_MORE, behind the backlog).
pub fn overflow_multishot_timeout(c: &mut Ctx) -> R {
    for i in 0..8 {
        push(c, "nop", nop(200, 0, Some(i)))?;
        if i % 4 == 3 {
            c.submit();
        }
    }
    c.pump();
    let t = c.timespec_ms(10);
    push(
        c,
        "timeout(10 ms, multishot, 5)",
        timeout(t, 5, abi::IORING_TIMEOUT_MULTISHOT, 1),
    )?;
    c.submit();
    c.pump_until(|b| b.sq_flags() & abi::IORING_SQ_CQ_OVERFLOW != 0);
    c.pump();
    c.record_flags("8 NOPs and the timeout, not reaped", false);
    c.settle(|l| l.iter().any(|x| x.user_data == 1 && !abi::more(x.flags)));
    c.record_order(&[200, 1]);
    c.record_flags("after reaping", false);
    Ok(())
}

// ----------------------------------------------------------------------
// Provided buffers
// ----------------------------------------------------------------------

/// PROVIDE_BUFFERS limits: ids up to 65535, past it, 65536 buffers, 65537,
/// len 0; each then counted by REMOVE_BUFFERS.
pub fn provide_limits(c: &mut Ctx) -> R {
    let mem = c.mem(65_537);
    let cases: [(&str, u32, u32, u16, u16); 6] = [
        ("provide(bid 65535, 1)", 1, 1, 20, 65535),
        ("provide(bid 65534, 4)", 1, 4, 21, 65534),
        ("provide(bid 65532, 4)", 1, 4, 22, 65532),
        ("provide(65536 buffers)", 1, 65536, 23, 0),
        ("provide(65537 buffers)", 1, 65537, 24, 0),
        ("provide(len 0)", 0, 4, 25, 0),
    ];
    let mut uds = Vec::new();
    for (i, (name, len, n, g, bid)) in cases.into_iter().enumerate() {
        let ud = 1 + i as u64;
        let s = opcode::ProvideBuffers::new(mem, len, n, g, bid)
            .user_data(ud)
            .build();
        // SAFETY: `mem` is context memory, alive until the context drops.
        unsafe { call(c, name, s) }?;
        uds.push(ud);
    }
    c.record_all(&uds);
    for (i, g) in (20..=25).enumerate() {
        let ud = 10 + i as u64;
        let s = opcode::RemoveBuffers::new(65536, g).user_data(ud).build();
        push(c, &format!("remove(65536) from group {g}"), s.into_sqe())?;
        c.submit();
        c.wait_final(ud);
        c.record(ud);
    }
    Ok(())
}

/// REMOVE_BUFFERS of 2 of 4, then a RECV takes the ones left (which ones
/// went?); a PROVIDE re-adds the same ids.
pub fn remove_then_recv(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let mem = c.legacy_mem(12, 4, 32, 0);
    let s = opcode::ProvideBuffers::new(mem, 32, 4, 12, 0)
        .user_data(1)
        .build();
    // SAFETY: `mem` is context memory, alive until the context drops.
    unsafe { call(c, "provide 4 (ids 0..3)", s) }?;
    let s = opcode::RemoveBuffers::new(2, 12).user_data(2).build();
    push(c, "remove 2", s.into_sqe())?;
    c.submit();
    c.wait_final(2);
    c.record_all(&[1, 2]);
    for ud in 3..6 {
        let s = opcode::Recv::new(fd, std::ptr::null_mut(), 32)
            .buf_group(12)
            .user_data(ud)
            .build()
            .into_sqe();
        push(c, &format!("recv {ud}"), s)?;
        c.submit();
        c.peer_send(p, &pattern(20, ud as u8))?;
        c.wait_final(ud);
        c.record(ud);
    }
    Ok(())
}

/// Buffer-ring registration errors: entries not a power of two, 0, above
/// 32768; a group id in use by a ring, by a legacy group with buffers, by
/// an emptied legacy group; an unknown flag.
pub fn bufring_register_errors(c: &mut Ctx) -> R {
    for (name, entries, bgid, flags) in [
        ("ring(3 entries)", 3u32, 30u16, 0u16),
        ("ring(0 entries)", 0, 31, 0),
        ("ring(65536 entries)", 65536, 32, 0),
        ("ring(8, unknown flag)", 8, 33, 0x80),
        ("ring(8) group 34", 8, 34, 0),
        ("ring(8) group 34 again", 8, 34, 0),
    ] {
        let r = c.backend().register_buf_ring_flags(entries, bgid, flags);
        let tok = match r {
            Ok(_) => "0".to_string(),
            Err(e) => format!("-{}", crate::errno_name(-e)),
        };
        c.line(format!("{name}: {tok}"));
    }
    let mem = c.legacy_mem(35, 2, 32, 0);
    let s = opcode::ProvideBuffers::new(mem, 32, 2, 35, 0)
        .user_data(1)
        .build();
    // SAFETY: `mem` is context memory, alive until the context drops.
    unsafe { call(c, "provide 2 into group 35", s) }?;
    c.record(1);
    let r = c.backend().register_buf_ring_flags(8, 35, 0).err();
    c.line(format!("ring over legacy group 35 with buffers: {r:?}"));
    let s = opcode::RemoveBuffers::new(2, 35).user_data(2).build();
    push(c, "remove 2 from group 35", s.into_sqe())?;
    c.submit();
    c.wait_final(2);
    c.record(2);
    let r = c.backend().register_buf_ring_flags(8, 35, 0).err();
    c.line(format!("ring over emptied legacy group 35: {r:?}"));
    Ok(())
}

/// A legacy group and a ring group side by side: a RECV from each, on two
/// connections, buffer ids from each group's own order.
pub fn mixed_groups(c: &mut Ctx) -> R {
    let (a, pa) = c.backend().app_conn()?;
    let (b, pb) = c.backend().app_conn()?;
    let mem = c.legacy_mem(40, 2, 64, 7);
    let s = opcode::ProvideBuffers::new(mem, 64, 2, 40, 7)
        .user_data(1)
        .build();
    // SAFETY: `mem` is context memory, alive until the context drops.
    unsafe { call(c, "provide 2 (ids 7, 8) into group 40", s) }?;
    c.provided(40, 7..9);
    c.buf_ring(41, 4, 64, 4)
        .map_err(|e| format!("buf ring {e}"))?;
    let ra = opcode::RecvMulti::new(a, 40)
        .user_data(2)
        .build()
        .into_sqe();
    push(c, "recv(multi) on A, legacy group", ra)?;
    let rb = opcode::RecvMulti::new(b, 41)
        .user_data(3)
        .build()
        .into_sqe();
    push(c, "recv(multi) on B, ring group", rb)?;
    c.submit();
    c.stream(2, 40, false);
    c.stream(3, 41, true);
    let (da, db) = (pattern(50, 11), pattern(60, 12));
    c.peer_send(pa, &da)?;
    c.wait_stream(2, da.len());
    c.peer_send(pb, &db)?;
    c.wait_stream(3, db.len());
    c.record_stream(2, &da, false);
    c.record_stream(3, &db, false);
    c.record_all(&[1]);
    Ok(())
}

// ----------------------------------------------------------------------
// Registered files under requests in flight
// ----------------------------------------------------------------------

/// A RECV through slot 1 in flight while FILES_UPDATE empties the slot, and
/// while CLOSE of the slot runs: each still gets its data; then the slot is
/// empty (-EBADF).
pub fn files_change_inflight(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    sparse(c, 4);
    update(c, "files_update(slot 1 = fd)", 1, &[fd]);
    let buf = c.mem(64);
    push(c, "recv(slot 1)", fixed_recv(1, buf, 1))?;
    c.submit();
    c.quiet();
    update(
        c,
        "files_update(slot 1 = -1) with the recv in flight",
        1,
        &[-1],
    );
    let data = pattern(10, 13);
    c.peer_send(p, &data)?;
    c.wait_final(1);
    c.record(1);
    record_mem(c, "recv content", buf, &data, 10);
    push(c, "recv(slot 1, emptied)", fixed_recv(1, buf, 2))?;
    c.submit();
    c.wait_final(2);
    c.record(2);
    update(c, "files_update(slot 2 = fd)", 2, &[fd]);
    let buf2 = c.mem(64);
    push(c, "recv(slot 2)", fixed_recv(2, buf2, 3))?;
    c.submit();
    c.quiet();
    push(c, "close(slot 2)", close_slot(2, 4))?;
    c.submit();
    c.wait_final(4);
    let data2 = pattern(12, 14);
    c.peer_send(p, &data2)?;
    c.wait_final(3);
    c.record_all(&[4, 3]);
    record_mem(c, "recv 2 content", buf2, &data2, 12);
    Ok(())
}

/// UNREGISTER_FILES with a RECV in flight through a slot: the RECV still
/// completes with the data; the fd itself still works.
pub fn files_unregister_inflight(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    sparse(c, 2);
    update(c, "files_update(slot 0 = fd)", 0, &[fd]);
    let buf = c.mem(64);
    push(c, "recv(slot 0)", fixed_recv(0, buf, 1))?;
    c.submit();
    c.quiet();
    // SAFETY: UNREGISTER_FILES takes no argument.
    unsafe { c.register_line("unregister_files", abi::IORING_UNREGISTER_FILES, 0, 0) };
    let data = pattern(8, 15);
    c.peer_send(p, &data)?;
    c.wait_final(1);
    c.record(1);
    record_mem(c, "recv content", buf, &data, 8);
    let s = recv(c, fd, 0, 2);
    push(c, "recv(fd)", s)?;
    c.submit();
    c.peer_send(p, &data)?;
    c.wait_final(2);
    c.record(2);
    Ok(())
}

/// IOSQE_FIXED_FILE on SENDMSG, RECVMSG, WRITEV, READV, SEND_ZC and a
/// linked pair through one slot.
pub fn files_fixed_vectored(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    sparse(c, 2);
    update(c, "files_update(slot 1 = fd)", 1, &[fd]);
    let out = pattern(30, 16);
    let o = c.bytes(&out);
    let (iov, mhp) = one_iov_msghdr(c, o.cast_mut(), 30);
    let mut s = fixed(abi::IORING_OP_SENDMSG, 1, 1);
    s.addr = mhp as u64;
    s.len = 1;
    push(c, "sendmsg(slot 1)", s)?;
    let mut s = fixed(abi::IORING_OP_WRITEV, 1, 2);
    (s.addr, s.len) = (iov as u64, 1);
    push(c, "writev(slot 1)", s)?;
    let mut s = fixed(abi::IORING_OP_SEND_ZC, 1, 3);
    (s.addr, s.len) = (o as u64, 30);
    push(c, "send_zc(slot 1)", s)?;
    c.submit();
    c.wait_finals(&[1, 2, 3]);
    let got = c.peer_wait(p, 90);
    c.line(format!(
        "peer got 3 x 30 B: {}",
        got.data.len() == 90 && got.data.chunks(30).all(|ch| ch == &out[..])
    ));
    let inb = c.mem(64);
    let (iin, mhp2) = one_iov_msghdr(c, inb, 64);
    let mut s = fixed(abi::IORING_OP_RECVMSG, 1, 4);
    s.addr = mhp2 as u64;
    s.len = 1;
    s.flags |= IOSQE_IO_LINK;
    push(c, "recvmsg(slot 1, LINK)", s)?;
    let mut s = fixed(abi::IORING_OP_READV, 1, 5);
    (s.addr, s.len) = (iin as u64, 1);
    push(c, "readv(slot 1)", s)?;
    c.submit();
    c.quiet();
    let data = pattern(16, 17);
    send_peer(c, p, &data)?;
    c.wait_final(4);
    send_peer(c, p, &data)?;
    c.wait_finals(&[4, 5]);
    c.record_all(&[1, 2, 3, 4, 5]);
    Ok(())
}

/// A RECV of 64 B into `buf` through file-table slot `slot`.
fn fixed_recv(slot: i32, buf: *mut u8, ud: u64) -> Sqe {
    let mut s = fixed(abi::IORING_OP_RECV, slot, ud);
    (s.addr, s.len) = (buf as u64, 64);
    s
}

/// An iovec of `len` B at `base` and a msghdr naming it, in context memory.
pub(super) fn one_iov_msghdr(
    c: &mut Ctx,
    base: *mut u8,
    len: usize,
) -> (*mut libc::iovec, *mut libc::msghdr) {
    let iov = c.keep(libc::iovec {
        iov_base: base.cast(),
        iov_len: len,
    });
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = iov;
    mh.msg_iovlen = 1;
    (iov, c.keep(mh))
}

fn send_peer(c: &mut Ctx, p: PeerId, data: &[u8]) -> R {
    c.peer_send(p, data)?;
    c.quiet();
    Ok(())
}

/// NOP chains that the scenario driver counts as ring-mechanics coverage
/// for overflow ordering with links failing mid-way into a full CQ.
pub fn overflow_failed_chain(c: &mut Ctx) -> R {
    for i in 0..6 {
        push(c, "nop", nop(200, 0, Some(i)))?;
        if i % 4 == 3 {
            c.submit();
        }
    }
    c.submit();
    let l = IOSQE_IO_LINK;
    batch(
        c,
        &[
            ("nop 1 (LINK)", nop(1, l, None)),
            ("nop(-EIO) 2 (LINK)", nop(2, l, Some(-libc::EIO))),
            ("nop 3 (LINK)", nop(3, l, None)),
            ("nop 4", nop(4, 0, None)),
        ],
        &[200, 1, 2, 3, 4],
    )?;
    c.record_flags("after reaping", false);
    Ok(())
}

// ----------------------------------------------------------------------
// More chains, drains and timeouts as programs use them
// ----------------------------------------------------------------------

/// A chain of 3 NOPs then a DRAIN NOP and a NOP, in one submission: the
/// drained NOP waits for the whole chain; then a DRAIN NOP behind a chain
/// whose head (a RECV) waits for data.
pub fn drain_after_chain(c: &mut Ctx) -> R {
    let l = IOSQE_IO_LINK;
    batch(
        c,
        &[
            ("nop 1 (LINK)", nop(1, l, None)),
            ("nop 2 (LINK)", nop(2, l, None)),
            ("nop 3", nop(3, 0, None)),
            ("nop 4 (DRAIN)", nop(4, abi::IOSQE_IO_DRAIN, None)),
            ("nop 5", nop(5, 0, None)),
        ],
        &[1, 2, 3, 4, 5],
    )?;
    let (fd, p) = c.backend().app_conn()?;
    let r = recv(c, fd, l, 11);
    push(c, "recv (LINK)", r)?;
    push(c, "nop 12", nop(12, 0, None))?;
    push(c, "nop 13 (DRAIN)", nop(13, abi::IOSQE_IO_DRAIN, None))?;
    c.submit();
    c.quiet();
    c.record_order(&[11, 12, 13]);
    c.peer_send(p, &pattern(3, 20))?;
    c.wait_finals(&[11, 12, 13]);
    c.record_order(&[11, 12, 13]);
    Ok(())
}

/// IO_DRAIN on a chain member (not its head) behind a pending TIMEOUT.
pub fn drain_on_member(c: &mut Ctx) -> R {
    let t = c.timespec_ms(20);
    batch(
        c,
        &[
            ("timeout(20 ms)", timeout(t, 0, 0, 1)),
            ("nop 2 (LINK)", nop(2, IOSQE_IO_LINK, None)),
            ("nop 3 (DRAIN)", nop(3, abi::IOSQE_IO_DRAIN, None)),
            ("nop 4", nop(4, 0, None)),
        ],
        &[1, 2, 3, 4],
    )
}

/// RECV -> RECV -> RECV linked: each takes the next piece as the peer sends
/// (a program reading a header, then a body); SEND -> SEND -> SEND linked:
/// the peer gets them in order.
pub fn link_recv_send_chains(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let bufs: Vec<*mut u8> = (0..3).map(|_| c.mem(8)).collect();
    for (i, b) in bufs.iter().enumerate() {
        let f = if i < 2 { IOSQE_IO_LINK } else { 0 };
        let s = opcode::Recv::new(fd, *b, 8)
            .flags(libc::MSG_WAITALL)
            .sqe_flags(f)
            .user_data(1 + i as u64)
            .build();
        push(c, &format!("recv {} (8, WAITALL)", i + 1), s)?;
    }
    c.submit();
    c.quiet();
    let data = pattern(24, 21);
    for k in 0..3 {
        c.peer_send(p, &data[k * 8..k * 8 + 8])?;
        c.quiet();
    }
    c.wait_finals(&[1, 2, 3]);
    c.record_order(&[1, 2, 3]);
    for (i, b) in bufs.iter().enumerate() {
        record_mem(
            c,
            &format!("recv {}", i + 1),
            *b,
            &data[i * 8..i * 8 + 8],
            8,
        );
    }
    let out = pattern(30, 22);
    for i in 0..3 {
        let d = c.bytes(&out[i * 10..i * 10 + 10]);
        let f = if i < 2 { IOSQE_IO_LINK } else { 0 };
        let s = opcode::Send::new(fd, d, 10)
            .sqe_flags(f)
            .user_data(11 + i as u64)
            .build();
        push(c, &format!("send {}", i + 1), s)?;
    }
    c.submit();
    c.wait_finals(&[11, 12, 13]);
    c.record_order(&[11, 12, 13]);
    let got = c.peer_wait(p, 30);
    c.line(format!("peer got the 30 B in order: {}", got.data == out));
    Ok(())
}

/// RECV (HARDLINK) guarded by a LINK_TIMEOUT (LINK) -> NOP: the timer fires,
/// the RECV is cancelled, and the NOP still runs (or not).
pub fn hardlink_link_timeout(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let r = recv(c, fd, abi::IOSQE_IO_HARDLINK, 1);
    let t = c.timespec_ms(20);
    let mut lt = opcode::LinkTimeout::new(t).user_data(2).build();
    lt.flags = IOSQE_IO_LINK;
    batch(
        c,
        &[
            ("recv (HARDLINK)", r),
            ("link_timeout(20 ms, LINK)", lt),
            ("nop 3", nop(3, 0, None)),
        ],
        &[1, 2, 3],
    )
}

/// TIMEOUT_UPDATE: a count TIMEOUT updated loses its count; an update to an
/// absolute time long past fires it at once.
pub fn timeout_update_variants(c: &mut Ctx) -> R {
    let far = c.timespec_ms(10_000);
    push(c, "timeout(10 s, count 2)", timeout(far, 2, 0, 1))?;
    c.submit();
    c.quiet();
    let up = opcode::TimeoutUpdate::new(1, far).user_data(2).build();
    push(c, "timeout_update(10 s)", up)?;
    c.submit();
    c.wait_final(2);
    batch(
        c,
        &[("nop 3", nop(3, 0, None)), ("nop 4", nop(4, 0, None))],
        &[3, 4],
    )?;
    c.quiet();
    c.record_all(&[1, 2]);
    let past = c.keep(ringline_ring::app::Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    });
    let up = opcode::TimeoutUpdate::new(1, past)
        .abs()
        .user_data(5)
        .build();
    push(c, "timeout_update(abs, 1 s after epoch)", up)?;
    c.submit();
    c.wait_finals(&[1, 5]);
    c.record_order(&[1, 5]);
    Ok(())
}

/// A count TIMEOUT counts the CQEs of a chain, and of a chain's cancelled
/// members; one counting CQE_SKIP_SUCCESS NOPs (skipped CQEs do not count).
pub fn timeout_count_chain(c: &mut Ctx) -> R {
    let far = c.timespec_ms(10_000);
    push(c, "timeout(10 s, count 3)", timeout(far, 3, 0, 1))?;
    c.submit();
    c.quiet();
    let l = IOSQE_IO_LINK;
    batch(
        c,
        &[
            ("nop(-EIO) 2 (LINK)", nop(2, l, Some(-libc::EIO))),
            ("nop 3 (LINK)", nop(3, l, None)),
            ("nop 4", nop(4, 0, None)),
        ],
        &[1, 2, 3, 4],
    )?;
    push(c, "timeout(10 s, count 1)", timeout(far, 1, 0, 5))?;
    c.submit();
    c.quiet();
    batch(
        c,
        &[
            ("nop 6 (SKIP)", nop(6, abi::IOSQE_CQE_SKIP_SUCCESS, None)),
            ("nop 7 (SKIP)", nop(7, abi::IOSQE_CQE_SKIP_SUCCESS, None)),
        ],
        &[],
    )?;
    c.quiet();
    c.record(5);
    push(c, "nop 8", nop(8, 0, None))?;
    c.submit();
    c.wait_finals(&[5, 8]);
    c.record_order(&[5, 6, 7, 8]);
    Ok(())
}

/// ASYNC_CANCEL ANY over two chains (a RECV head each, NOPs behind), then
/// the program re-arms a RECV and gets its data.
pub fn cancel_any_chains(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    for k in 0..2u64 {
        let r = recv(c, fd, IOSQE_IO_LINK, 1 + 10 * k);
        push(c, "recv (LINK)", r)?;
        push(c, "nop (LINK)", nop(2 + 10 * k, IOSQE_IO_LINK, None))?;
        push(c, "nop", nop(3 + 10 * k, 0, None))?;
    }
    c.submit();
    c.quiet();
    cancel_and_record(
        c,
        "cancel(ANY)",
        cancel(abi::IORING_ASYNC_CANCEL_ANY, 0, -1, 0, 30),
        &[],
    )?;
    c.record_order(&[1, 2, 3, 11, 12, 13]);
    let r = recv(c, fd, 0, 31);
    push(c, "recv again", r)?;
    c.submit();
    c.peer_send(p, &pattern(6, 23))?;
    c.wait_final(31);
    c.record(31);
    Ok(())
}

/// POLL_REMOVE updating a poll's user_data, then ASYNC_CANCEL by the old
/// user_data (-ENOENT) and by the new one.
pub fn cancel_after_poll_update(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    push(c, "poll(multi)", poll(fd, true, 1))?;
    c.submit();
    c.quiet();
    let up = opcode::PollRemove::new(1)
        .update_user_data(9)
        .user_data(2)
        .build()
        .into_sqe();
    push(c, "poll_update(ud 1 -> 9)", up)?;
    c.alias(9, "poll(multi) as ud 9", abi::IORING_OP_POLL_ADD);
    c.submit();
    c.wait_final(2);
    c.record(2);
    cancel_and_record(c, "cancel(ud 1)", cancel(0, 1, -1, 0, 3), &[])?;
    cancel_and_record(c, "cancel(ud 9)", cancel(0, 9, -1, 0, 4), &[1, 9])
}

/// Ten polls sharing a user_data, cancelled with ALL while the CQ (8)
/// holds a backlog: the count first, every -ECANCELED after it, none lost.
pub fn overflow_cancel_all(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    for i in 0..8 {
        push(c, "poll", poll(fd, false, 5))?;
        if i % 4 == 3 {
            c.submit();
        }
    }
    c.quiet();
    for i in 0..6 {
        push(c, "nop", nop(200, 0, Some(i)))?;
        if i % 4 == 3 || i == 5 {
            c.submit();
        }
    }
    c.pump();
    push(
        c,
        "cancel(ud 5, ALL)",
        cancel(abi::IORING_ASYNC_CANCEL_ALL, 5, -1, 0, 6),
    )?;
    c.submit();
    c.pump();
    c.record_flags("6 NOPs and the cancel, not reaped", true);
    c.settle(|l| l.iter().filter(|x| x.user_data == 5).count() >= 8);
    c.record_order(&[200, 5, 6]);
    c.record_flags("after reaping", false);
    Ok(())
}

/// A legacy group runs out under a multishot RECV (-ENOBUFS ends it); the
/// program provides more and re-arms: the stream continues, nothing lost.
pub fn legacy_refill_rearm(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let mem = c.legacy_mem(50, 4, 32, 0);
    let s = opcode::ProvideBuffers::new(mem, 32, 2, 50, 0)
        .user_data(1)
        .build();
    // SAFETY: `mem` is context memory, alive until the context drops.
    unsafe { call(c, "provide 2 (ids 0, 1)", s) }?;
    c.provided(50, 0..2);
    let r = opcode::RecvMulti::new(fd, 50)
        .user_data(2)
        .build()
        .into_sqe();
    push(c, "recv(multi)", r)?;
    c.submit();
    c.stream(2, 50, false);
    let data = pattern(100, 24);
    c.peer_send(p, &data)?;
    c.wait_final(2);
    c.record_stream(2, &data[..64], false);
    // SAFETY: `mem` + 64 is the group's memory for ids 2 and 3.
    let more = unsafe { mem.add(64) };
    let s = opcode::ProvideBuffers::new(more, 32, 2, 50, 2)
        .user_data(3)
        .build();
    // SAFETY: `more` is context memory, alive until the context drops.
    unsafe { call(c, "provide 2 more (ids 2, 3)", s) }?;
    c.provided(50, 2..4);
    let r = opcode::RecvMulti::new(fd, 50)
        .user_data(4)
        .build()
        .into_sqe();
    push(c, "recv(multi) again", r)?;
    c.submit();
    c.stream(4, 50, false);
    c.wait_stream(4, 36);
    c.record_stream(4, &data[64..], false);
    c.record_all(&[1, 3]);
    Ok(())
}

/// A sparse table filled by FILES_UPDATE with SKIP between, SENDs through
/// each slot; an update past the end; then the slots are emptied one by one
/// with CLOSE and the sockets keep working by fd.
pub fn files_sparse_slots(c: &mut Ctx) -> R {
    let (a, pa) = c.backend().app_conn()?;
    let (b, pb) = c.backend().app_conn()?;
    c.backend().peer_start_reading(pa);
    c.backend().peer_start_reading(pb);
    sparse(c, 8);
    update(
        c,
        "files_update(5..8 = a, SKIP, b)",
        5,
        &[a, abi::IORING_REGISTER_FILES_SKIP, b],
    );
    update(c, "files_update(7..9) past the end", 7, &[a, b]);
    update(c, "files_update(8) at the end", 8, &[a]);
    let d = pattern(12, 25);
    let dp = c.bytes(&d);
    let mut uds = Vec::new();
    for (i, slot) in [5, 6, 7].into_iter().enumerate() {
        let mut s = fixed(abi::IORING_OP_SEND, slot, 1 + i as u64);
        (s.addr, s.len) = (dp as u64, 12);
        push(c, &format!("send(slot {slot})"), s)?;
        uds.push(1 + i as u64);
    }
    c.submit();
    c.wait_finals(&uds);
    c.record_all(&uds);
    let ga = c.peer_wait(pa, 12);
    let gb = c.peer_wait(pb, 12);
    c.line(format!(
        "peers got 12 B each: {} {}",
        ga.data == d,
        gb.data == d
    ));
    push(c, "close(slot 5)", close_slot(5, 10))?;
    push(c, "close(slot 7)", close_slot(7, 11))?;
    push(c, "close(slot 6, empty)", close_slot(6, 12))?;
    c.submit();
    c.wait_finals(&[10, 11, 12]);
    c.record_all(&[10, 11, 12]);
    let s = opcode::Send::new(a, dp, 12).user_data(13).build();
    // SAFETY: `dp` is context memory, alive until the context drops.
    unsafe { call(c, "send(fd a)", s) }?;
    c.record(13);
    Ok(())
}

/// `IORING_REGISTER_PBUF_STATUS` (`io_uring_buf_status`: group, head out,
/// 8 reserved words) on a buffer ring as receives consume it.
fn pbuf_status(c: &mut Ctx, label: &str, group: u32, resv: u32, nr: u32) {
    let mut st = [0u32; 10];
    st[0] = group;
    st[2] = resv;
    let p = c.keep(st);
    // SAFETY: `p` is context memory (40 bytes), alive until the context drops.
    let r = unsafe { c.register(abi::IORING_REGISTER_PBUF_STATUS, p as u64, nr) };
    let tok = if r < 0 {
        format!("-{}", crate::errno_name(-r))
    } else {
        // SAFETY: `p` is context memory the register call may have written.
        format!("{r}, head {}", unsafe { (*p)[1] })
    };
    c.line(format!("{label}: {tok}"));
}

/// PBUF_STATUS of a fresh ring (head 0), after a multishot RECV used 3 of
/// its buffers (head 3); of a legacy group, an unknown group, a group id
/// above 65535; with a reserved word set, nr_args 2, a null argument.
pub fn pbuf_status_head(c: &mut Ctx) -> R {
    c.buf_ring(60, 8, 32, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    pbuf_status(c, "status(ring 60, fresh)", 60, 0, 1);
    let (fd, p) = c.backend().app_conn()?;
    let r = opcode::RecvMulti::new(fd, 60)
        .user_data(1)
        .build()
        .into_sqe();
    push(c, "recv(multi)", r)?;
    c.submit();
    c.stream(1, 60, false);
    let data = pattern(96, 26);
    c.peer_send(p, &data)?;
    c.wait_stream(1, 96);
    c.record_stream(1, &data, false);
    pbuf_status(c, "status(ring 60, 96 B in 32 B buffers)", 60, 0, 1);
    let mem = c.legacy_mem(61, 1, 32, 0);
    let s = opcode::ProvideBuffers::new(mem, 32, 1, 61, 0)
        .user_data(2)
        .build();
    // SAFETY: `mem` is context memory, alive until the context drops.
    unsafe { call(c, "provide 1 into group 61", s) }?;
    c.record(2);
    pbuf_status(c, "status(legacy group 61)", 61, 0, 1);
    pbuf_status(c, "status(unknown group 62)", 62, 0, 1);
    pbuf_status(c, "status(group 65596)", 65536 + 60, 0, 1);
    pbuf_status(c, "status(ring 60, resv set)", 60, 1, 1);
    pbuf_status(c, "status(ring 60, nr_args 2)", 60, 0, 2);
    // SAFETY: a null argument names no memory.
    let r = unsafe { c.register(abi::IORING_REGISTER_PBUF_STATUS, 0, 1) };
    c.line(format!("status(null): -{}", crate::errno_name(-r)));
    Ok(())
}

/// `IORING_REGISTER_SYNC_CANCEL` with an `io_uring_sync_cancel_reg` (64 B:
/// addr, fd, flags, a timeout, opcode, pads), recorded, then reaped.
fn sync_cancel(c: &mut Ctx, label: &str, addr: u64, fd: i32, flags: u32, pad: u64, nr: u32) {
    let mut w = [0u64; 8];
    w[0] = addr;
    w[1] = u64::from(fd as u32) | u64::from(flags) << 32;
    w[4] = pad << 8;
    let p = c.keep(w);
    // SAFETY: `p` is context memory (64 bytes), alive until the context drops.
    let r = unsafe { c.register(abi::IORING_REGISTER_SYNC_CANCEL, p as u64, nr) };
    let tok = if r < 0 {
        format!("-{}", crate::errno_name(-r))
    } else {
        r.to_string()
    };
    // Linux (DEFER_TASKRUN) posts the cancelled requests' CQEs from task
    // work at the next wait, and until then a later cancel finds and counts
    // them again; a program reaps before it cancels more, so does this.
    c.quiet();
    c.line(format!("{label}: {tok}"));
}

/// IORING_REGISTER_SYNC_CANCEL: by user_data (the target's CQE is there when
/// the call returns), an unknown one, FD|ALL, ANY with a count and with
/// nothing left; an unknown flag, a pad byte, nr_args 2, an fd not open;
/// then the program re-arms a RECV and gets its data.
pub fn sync_cancel_register(c: &mut Ctx) -> R {
    let (a, pa) = c.backend().app_conn()?;
    let (b, _pb) = c.backend().app_conn()?;
    let r1 = recv(c, a, 0, 1);
    push(c, "recv 1 on A", r1)?;
    let r2 = recv(c, a, 0, 2);
    push(c, "recv 2 on A", r2)?;
    push(c, "poll on B", poll(b, false, 3))?;
    c.submit();
    c.quiet();
    sync_cancel(c, "sync_cancel(ud 1)", 1, -1, 0, 0, 1);
    c.record_all(&[1]);
    sync_cancel(c, "sync_cancel(ud 77)", 77, -1, 0, 0, 1);
    let fd_all = abi::IORING_ASYNC_CANCEL_FD | abi::IORING_ASYNC_CANCEL_ALL;
    sync_cancel(
        c,
        "sync_cancel(fd 9999, FD)",
        0,
        9999,
        abi::IORING_ASYNC_CANCEL_FD,
        0,
        1,
    );
    sync_cancel(c, "sync_cancel(unknown flag)", 1, -1, 1 << 10, 0, 1);
    sync_cancel(c, "sync_cancel(pad set)", 2, -1, 0, 1, 1);
    sync_cancel(c, "sync_cancel(nr_args 2)", 2, -1, 0, 0, 2);
    c.record_all(&[2, 3]);
    sync_cancel(c, "sync_cancel(fd A, FD|ALL)", 0, a, fd_all, 0, 1);
    c.record_all(&[2]);
    sync_cancel(
        c,
        "sync_cancel(ANY)",
        0,
        -1,
        abi::IORING_ASYNC_CANCEL_ANY,
        0,
        1,
    );
    c.record_all(&[3]);
    sync_cancel(
        c,
        "sync_cancel(ANY) with nothing left",
        0,
        -1,
        abi::IORING_ASYNC_CANCEL_ANY,
        0,
        1,
    );
    let r = recv(c, a, 0, 4);
    push(c, "recv again on A", r)?;
    c.submit();
    c.peer_send(pa, &pattern(9, 27))?;
    c.wait_final(4);
    c.record(4);
    Ok(())
}

/// A TIMEOUT as a chain member: NOP -> TIMEOUT(10 ms) -> NOP (it fires,
/// -ETIME breaks the chain); the same with a count TIMEOUT completed by
/// count (res 0: the chain goes on).
pub fn timeout_in_chain(c: &mut Ctx) -> R {
    let l = IOSQE_IO_LINK;
    let t = c.timespec_ms(10);
    let mut t1 = timeout(t, 0, 0, 2);
    t1.flags = l;
    batch(
        c,
        &[
            ("nop 1 (LINK)", nop(1, l, None)),
            ("timeout(10 ms, LINK)", t1),
            ("nop 3", nop(3, 0, None)),
        ],
        &[1, 2, 3],
    )?;
    let far = c.timespec_ms(10_000);
    let mut t2 = timeout(far, 1, 0, 11);
    t2.flags = l;
    push(c, "timeout(10 s, count 1, LINK)", t2)?;
    push(c, "nop 12", nop(12, 0, None))?;
    c.submit();
    c.quiet();
    c.record_order(&[11, 12]);
    batch(c, &[("nop 13", nop(13, 0, None))], &[11, 12, 13])
}

/// A one-shot POLL_ADD(POLLIN) heading a chain: RECV then SEND behind it
/// (read when readable, then answer); the peer sends, gets its answer.
pub fn poll_headed_chain(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let mut pl = poll(fd, false, 1);
    pl.flags = IOSQE_IO_LINK;
    push(c, "poll(POLLIN, LINK)", pl)?;
    let buf = c.mem(16);
    let r = opcode::Recv::new(fd, buf, 16)
        .sqe_flags(IOSQE_IO_LINK)
        .user_data(2)
        .build();
    push(c, "recv(16, LINK)", r)?;
    let reply = pattern(5, 28);
    let d = c.bytes(&reply);
    let s = opcode::Send::new(fd, d, 5).user_data(3).build();
    push(c, "send(5)", s)?;
    c.submit();
    c.quiet();
    c.record_order(&[1, 2, 3]);
    c.peer_send(p, &pattern(16, 29))?;
    c.wait_finals(&[1, 2, 3]);
    c.record_order(&[1, 2, 3]);
    let got = c.peer_wait(p, 5);
    c.line(format!("peer got the answer: {}", got.data == reply));
    Ok(())
}

/// A RECV with buffer select armed on an empty legacy group and an empty
/// socket (-ENOBUFS at once, data or not); the peer sends, the program
/// provides a buffer and re-arms: the RECV takes it.
pub fn provide_while_waiting(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let mem = c.legacy_mem(70, 2, 64, 4);
    let sel = |ud| {
        opcode::Recv::new(fd, std::ptr::null_mut(), 64)
            .buf_group(70)
            .user_data(ud)
            .build()
            .into_sqe()
    };
    push(c, "recv(group 70, empty)", sel(1))?;
    c.submit();
    c.quiet();
    let s = opcode::ProvideBuffers::new(mem, 64, 1, 70, 4)
        .user_data(2)
        .build();
    // SAFETY: `mem` is context memory, alive until the context drops.
    unsafe { call(c, "provide 1 (id 4)", s) }?;
    c.peer_send(p, &pattern(20, 30))?;
    c.wait_final(1);
    c.record_all(&[1, 2]);
    push(c, "recv(group 70) after the provide", sel(3))?;
    c.submit();
    c.quiet();
    c.peer_send(p, &pattern(20, 31))?;
    c.wait_final(3);
    c.record(3);
    Ok(())
}

/// `IORING_UNREGISTER_PBUF_RING` through `io_uring_register` with an
/// `io_uring_buf_reg` naming `bgid` (flags and a reserved word as given).
fn unregister_ring(c: &mut Ctx, label: &str, bgid: u16, flags: u16, resv: u64, nr: u32) {
    let reg = [
        0,
        u64::from(bgid) << 32 | u64::from(flags) << 48,
        resv,
        0,
        0u64,
    ];
    let p = c.keep(reg);
    // SAFETY: `p` is context memory (40 bytes), alive until the context drops.
    let r = unsafe { c.register(abi::IORING_UNREGISTER_PBUF_RING, p as u64, nr) };
    let tok = if r < 0 {
        format!("-{}", crate::errno_name(-r))
    } else {
        r.to_string()
    };
    c.line(format!("{label}: {tok}"));
}

/// A buffer ring unregistered while a multishot RECV uses it: the RECV ends
/// with -ENOBUFS at the next data; the argument checks; a legacy group; then
/// the program registers the group again and re-arms: nothing lost.
pub fn bufring_unregister_in_use(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(80, 8, 64, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    let r = opcode::RecvMulti::new(fd, 80)
        .user_data(1)
        .build()
        .into_sqe();
    push(c, "recv(multi)", r)?;
    c.submit();
    c.stream(1, 80, true);
    let data = pattern(150, 32);
    c.peer_send(p, &data[..50])?;
    c.wait_stream(1, 50);
    unregister_ring(c, "unregister(80, flags 1)", 80, 1, 0, 1);
    unregister_ring(c, "unregister(80, nr_args 2)", 80, 0, 0, 2);
    unregister_ring(c, "unregister(80, a reserved word set)", 80, 0, 1, 1);
    unregister_ring(c, "unregister(80) again", 80, 0, 0, 1);
    c.peer_send(p, &data[50..100])?;
    c.wait_final(1);
    c.record_stream(1, &data, false);
    let mem = c.legacy_mem(81, 1, 32, 0);
    let s = opcode::ProvideBuffers::new(mem, 32, 1, 81, 0)
        .user_data(2)
        .build();
    // SAFETY: `mem` is context memory, alive until the context drops.
    unsafe { call(c, "provide 1 into group 81", s) }?;
    c.record(2);
    unregister_ring(c, "unregister(legacy group 81)", 81, 0, 0, 1);
    let again = c.buf_ring(80, 8, 64, 8).err();
    c.line(format!("register ring 80 again: {again:?}"));
    c.peer_send(p, &data[100..])?;
    let r = opcode::RecvMulti::new(fd, 80)
        .user_data(3)
        .build()
        .into_sqe();
    push(c, "recv(multi) again", r)?;
    c.submit();
    c.stream(3, 80, true);
    c.wait_stream(3, 100);
    c.record_stream(3, &data[50..], false);
    Ok(())
}
