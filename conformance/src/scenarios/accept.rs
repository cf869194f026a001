//! ACCEPT: one-shot, multishot, cancel, full CQ, DONTWAIT.

use ringline_ring::abi;
use ringline_ring::opcode;

use super::{call, R};
use crate::Ctx;

fn distinct(c: &mut Ctx, ud: u64) {
    let mut fds: Vec<i32> = c
        .cqes(ud)
        .iter()
        .filter(|x| x.res >= 0)
        .map(|x| x.res)
        .collect();
    let n = fds.len();
    fds.sort_unstable();
    fds.dedup();
    c.line(format!("accepted sockets distinct: {}", fds.len() == n));
}

pub fn single(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(16)?;
    let addr = c.mem(32) as *mut libc::sockaddr;
    let alen = c.bytes(&32u32.to_ne_bytes()) as *mut libc::socklen_t;
    // SAFETY: `addr`, `alen` are context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "accept",
            opcode::Accept::new(l, addr, alen).user_data(1).build(),
        )
    }?;
    c.quiet();
    c.record(1);
    c.backend().peer_connect(l)?;
    c.wait_final(1);
    c.record(1);
    let sa = c.read_mem(addr as *const u8, 16);
    let len = u32::from_ne_bytes(
        c.read_mem(alen as *const u8, 4)
            .try_into()
            .unwrap_or([0; 4]),
    );
    let family = u16::from_ne_bytes([sa[0], sa[1]]);
    c.line(format!(
        "peer address: family AF_INET={} addrlen={len}",
        family == libc::AF_INET as u16
    ));
    Ok(())
}

pub fn multishot_n(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(64)?;
    c.submit_one_safe("accept", opcode::AcceptMulti::new(l).user_data(1).build())?;
    for _ in 0..5 {
        c.backend().peer_connect(l)?;
    }
    c.wait_n(1, 5);
    c.record(1);
    distinct(c, 1);
    c.backend().peer_connect(l)?;
    c.wait_n(1, 6);
    c.line(format!("after a 6th connection: {} CQEs", c.cqes(1).len()));
    Ok(())
}

pub fn multishot_queued(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(64)?;
    for _ in 0..3 {
        c.backend().peer_connect(l)?;
    }
    c.submit_one_safe("accept", opcode::AcceptMulti::new(l).user_data(1).build())?;
    c.wait_n(1, 3);
    c.record(1);
    distinct(c, 1);
    Ok(())
}

pub fn multishot_cancel(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(64)?;
    c.submit_one_safe("accept", opcode::AcceptMulti::new(l).user_data(1).build())?;
    for _ in 0..2 {
        c.backend().peer_connect(l)?;
    }
    c.wait_n(1, 2);
    c.submit_one_safe("cancel", opcode::AsyncCancel::new(1).user_data(2).build())?;
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    Ok(())
}

pub fn multishot_full_cq(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(64)?;
    c.submit_one_safe("accept", opcode::AcceptMulti::new(l).user_data(1).build())?;
    for _ in 0..12 {
        c.backend().peer_connect(l)?;
    }
    c.pump();
    c.record_flags("CQ full, not reaped", true);
    c.wait_final(1);
    c.record(1);
    distinct(c, 1);
    c.record_flags("after reaping", false);
    // The 3 connections left in the queue go to a re-armed accept.
    c.submit_one_safe(
        "re-armed accept",
        opcode::AcceptMulti::new(l).user_data(3).build(),
    )?;
    c.wait_n(3, 3);
    c.record(3);
    Ok(())
}

pub fn dontwait(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(16)?;
    let mut s = opcode::AcceptNoAddr::new(l).user_data(1).build().into_sqe();
    s.ioprio |= abi::IORING_ACCEPT_DONTWAIT;
    // SAFETY: an ACCEPT without an address names no memory.
    unsafe { call(c, "accept(DONTWAIT)", s) }?;
    c.record(1);
    Ok(())
}

/// Multishot ACCEPT with IORING_ACCEPT_DONTWAIT on an empty queue.
pub fn multishot_dontwait_empty(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(16)?;
    let mut s = opcode::AcceptMulti::new(l).user_data(1).build().into_sqe();
    s.ioprio |= abi::IORING_ACCEPT_DONTWAIT;
    // SAFETY: an ACCEPT without an address names no memory.
    unsafe { c.submit_one("accept(multi, DONTWAIT)", s) }?;
    c.wait_final(1);
    c.quiet();
    c.record(1);
    Ok(())
}

/// Multishot ACCEPT with IORING_ACCEPT_DONTWAIT armed with 2 connections
/// queued; then a third connects.
pub fn multishot_dontwait_queued(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(16)?;
    for _ in 0..2 {
        c.backend().peer_connect(l)?;
    }
    c.quiet();
    let mut s = opcode::AcceptMulti::new(l).user_data(1).build().into_sqe();
    s.ioprio |= abi::IORING_ACCEPT_DONTWAIT;
    // SAFETY: an ACCEPT without an address names no memory.
    unsafe { c.submit_one("accept(multi, DONTWAIT)", s) }?;
    c.wait_n(1, 2);
    c.quiet();
    c.record(1);
    c.backend().peer_connect(l)?;
    c.quiet();
    c.record(1);
    Ok(())
}

/// ACCEPT with IORING_ACCEPT_POLL_FIRST: with a connection queued; on an
/// empty queue (waits, then a peer connects); with DONTWAIT on an empty queue.
pub fn poll_first(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(16)?;
    c.backend().peer_connect(l)?;
    c.quiet();
    let pf = |ud: u64, extra: u16| {
        let mut s = opcode::AcceptNoAddr::new(l)
            .user_data(ud)
            .build()
            .into_sqe();
        s.ioprio |= abi::IORING_ACCEPT_POLL_FIRST | extra;
        s
    };
    // SAFETY: an ACCEPT without an address names no memory.
    unsafe { c.submit_one("accept(POLL_FIRST), 1 queued", pf(1, 0)) }?;
    c.wait_final(1);
    c.record(1);
    // SAFETY: as above.
    unsafe { c.submit_one("accept(POLL_FIRST), empty", pf(2, 0)) }?;
    c.quiet();
    c.record(2);
    c.backend().peer_connect(l)?;
    c.wait_final(2);
    c.record(2);
    // SAFETY: as above.
    unsafe {
        c.submit_one(
            "accept(POLL_FIRST|DONTWAIT), empty",
            pf(3, abi::IORING_ACCEPT_DONTWAIT),
        )
    }?;
    c.quiet();
    c.record(3);
    c.backend().peer_connect(l)?;
    c.wait_final(3);
    c.record(3);
    Ok(())
}

/// `IORING_FILE_INDEX_ALLOC` (`file_index` = `u32::MAX`).
const FILE_INDEX_ALLOC: u32 = u32::MAX;

/// ACCEPT into a direct descriptor with no registered file table:
/// `IORING_FILE_INDEX_ALLOC`, then fixed slot 0 (file_index 1). Then what the
/// program sees next: the peers' connections were taken and closed (each
/// peer reads EOF), the queue is empty (a plain ACCEPT waits), and a new
/// peer is accepted.
pub fn direct_no_table(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(16)?;
    let p1 = c.backend().peer_connect(l)?;
    let p2 = c.backend().peer_connect(l)?;
    c.quiet();
    let mut s = opcode::AcceptNoAddr::new(l).user_data(1).build().into_sqe();
    s.file_index = FILE_INDEX_ALLOC;
    // SAFETY: an ACCEPT without an address names no memory.
    unsafe { call(c, "accept(FILE_INDEX_ALLOC)", s) }?;
    c.record(1);
    let mut s = opcode::AcceptNoAddr::new(l).user_data(2).build().into_sqe();
    s.file_index = 1;
    // SAFETY: as above.
    unsafe { call(c, "accept(slot 0)", s) }?;
    c.record(2);
    for (name, p) in [("first peer", p1), ("second peer", p2)] {
        c.backend().peer_start_reading(p);
        let rx = c.peer_wait_end(p);
        c.line(format!(
            "{name}: {} B, eof={}, error={}",
            rx.data.len(),
            rx.eof,
            rx.error.map_or("none".into(), crate::errno_name)
        ));
    }
    c.submit_one_safe("accept", opcode::AcceptNoAddr::new(l).user_data(3).build())?;
    c.quiet();
    c.record(3);
    c.backend().peer_connect(l)?;
    c.wait_final(3);
    c.record(3);
    Ok(())
}

/// Multishot ACCEPT with `IORING_FILE_INDEX_ALLOC` and no file table, a
/// connection queued; multishot with a fixed slot; a direct ACCEPT with
/// SOCK_CLOEXEC.
pub fn direct_multishot_no_table(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(16)?;
    c.backend().peer_connect(l)?;
    c.quiet();
    let mut s = opcode::AcceptMulti::new(l).user_data(1).build().into_sqe();
    s.file_index = FILE_INDEX_ALLOC;
    // SAFETY: an ACCEPT without an address names no memory.
    unsafe { c.submit_one("accept(multi, FILE_INDEX_ALLOC)", s) }?;
    c.wait_final(1);
    c.quiet();
    c.record(1);
    let mut s = opcode::AcceptMulti::new(l).user_data(2).build().into_sqe();
    s.file_index = 1;
    // SAFETY: as above.
    unsafe { call(c, "accept(multi, slot 0)", s) }?;
    c.record(2);
    let mut s = opcode::AcceptNoAddr::new(l).user_data(3).build().into_sqe();
    s.file_index = FILE_INDEX_ALLOC;
    s.op_flags = libc::SOCK_CLOEXEC as u32;
    // SAFETY: as above.
    unsafe { call(c, "accept(FILE_INDEX_ALLOC, SOCK_CLOEXEC)", s) }?;
    c.record(3);
    Ok(())
}

/// A listener with backlog 2: 3 peers connect before any ACCEPT (Linux's
/// accept queue holds backlog + 1); a multishot ACCEPT then takes them all.
pub fn backlog_2(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(2)?;
    for _ in 0..3 {
        c.backend().peer_connect(l)?;
        c.quiet();
    }
    c.submit_one_safe("accept", opcode::AcceptMulti::new(l).user_data(1).build())?;
    c.wait_n(1, 3);
    c.quiet();
    c.record(1);
    distinct(c, 1);
    Ok(())
}
