//! Registered resources through `io_uring_register(2)`: the file table
//! (`IORING_REGISTER_FILES`, sparse tables, updates, `IOSQE_FIXED_FILE`,
//! direct descriptors from SOCKET and ACCEPT, CLOSE of a slot, the
//! allocation range), registered buffers (READ_FIXED, WRITE_FIXED, SEND_ZC
//! with `IORING_RECVSEND_FIXED_BUF`) and `IORING_REGISTER_PROBE`.

use ringline_ring::abi::{self, Sqe};
use ringline_ring::opcode;

use super::send::record_peer;
use super::{call, pattern, raw, record_mem, R};
use crate::backend::PeerId;
use crate::Ctx;

const ALLOC: u32 = abi::IORING_FILE_INDEX_ALLOC;
/// An fd no scenario has open (in either backend).
const NOT_OPEN: i32 = 9999;

/// The address of scenario memory holding `v` (alive until the context drops).
fn arg<T: 'static>(c: &mut Ctx, v: T) -> u64 {
    c.keep(v) as u64
}

/// Registers a sparse table of `n` slots (`IORING_REGISTER_FILES2`), recorded.
pub(super) fn sparse(c: &mut Ctx, n: u32) -> i32 {
    let rr = abi::RsrcRegister {
        nr: n,
        flags: abi::IORING_RSRC_REGISTER_SPARSE,
        ..Default::default()
    };
    let a = arg(c, rr);
    // SAFETY: `a` is context memory, alive until the context drops.
    unsafe {
        c.register_line(
            "register_files2(sparse)",
            abi::IORING_REGISTER_FILES2,
            a,
            32,
        )
    }
}

/// `IORING_REGISTER_FILES_UPDATE` of `fds` from slot `off`, recorded.
pub(super) fn update(c: &mut Ctx, label: &str, off: u32, fds: &[i32]) -> i32 {
    let bytes: Vec<u8> = fds.iter().flat_map(|f| f.to_ne_bytes()).collect();
    let data = c.bytes(&bytes) as u64;
    let up = arg(
        c,
        abi::RsrcUpdate {
            offset: off,
            resv: 0,
            data,
        },
    );
    // SAFETY: the struct and the fds are context memory.
    unsafe {
        c.register_line(
            label,
            abi::IORING_REGISTER_FILES_UPDATE,
            up,
            fds.len() as u32,
        )
    }
}

/// An SQE of `op` on slot `slot` (`IOSQE_FIXED_FILE`).
pub(super) fn fixed(op: u8, slot: i32, ud: u64) -> Sqe {
    let mut s = raw(op, slot, ud);
    s.flags = abi::IOSQE_FIXED_FILE;
    s
}

/// CLOSE of slot `slot` (0-based).
pub(super) fn close_slot(slot: u32, ud: u64) -> Sqe {
    let mut s = raw(abi::IORING_OP_CLOSE, 0, ud);
    s.file_index = slot + 1;
    s
}

/// Sends `data` with `s` (a SEND or WRITE whose buffer this sets), records
/// it, and records what peer `p` received (`label`).
fn send_to_peer(c: &mut Ctx, name: &str, mut s: Sqe, p: PeerId, data: &[u8], label: &str) -> R {
    let d = c.bytes(data);
    (s.addr, s.len) = (d as u64, data.len() as u32);
    run(c, name, s)?;
    let got = c.peer_wait(p, data.len());
    record_peer(c, label, &got, data, true);
    Ok(())
}

/// Submits `s` (naming no memory, or only context memory) and records it.
fn run(c: &mut Ctx, name: &str, s: Sqe) -> R {
    let ud = s.user_data;
    // SAFETY: every SQE of this module names only context memory, alive
    // until the context drops, after the backend.
    unsafe { call(c, name, s) }?;
    c.record(ud);
    Ok(())
}

/// The register calls' argument checks: a null table, zero slots, an fd
/// that is not open (all or nothing), a second table, the update's and
/// FILES2's checks, and unregistering.
pub fn files_register_errors(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let r = |c: &mut Ctx, label: &str, op: u32, a: u64, n: u32| {
        // SAFETY: `a` is 0 or context memory.
        unsafe { c.register_line(label, op, a, n) };
    };
    r(c, "register_files(null)", abi::IORING_REGISTER_FILES, 0, 1);
    let fds = arg(c, [fd, -1, NOT_OPEN]);
    r(
        c,
        "register_files(0 slots)",
        abi::IORING_REGISTER_FILES,
        fds,
        0,
    );
    r(
        c,
        "unregister_files(none)",
        abi::IORING_UNREGISTER_FILES,
        0,
        0,
    );
    update(c, "files_update(no table)", 0, &[fd]);
    r(
        c,
        "register_files(fd not open)",
        abi::IORING_REGISTER_FILES,
        fds,
        3,
    );
    // The failed call left no table: a good one now registers.
    r(
        c,
        "register_files([fd, -1])",
        abi::IORING_REGISTER_FILES,
        fds,
        2,
    );
    r(
        c,
        "register_files(again)",
        abi::IORING_REGISTER_FILES,
        fds,
        2,
    );
    update(c, "files_update(past the end)", 1, &[-1, -1]);
    let bad = arg(
        c,
        abi::RsrcUpdate {
            offset: 0,
            resv: 1,
            data: fds,
        },
    );
    r(
        c,
        "files_update(resv)",
        abi::IORING_REGISTER_FILES_UPDATE,
        bad,
        1,
    );
    let up = arg(c, abi::RsrcUpdate::default());
    r(
        c,
        "files_update(0 fds)",
        abi::IORING_REGISTER_FILES_UPDATE,
        up,
        0,
    );
    r(
        c,
        "unregister_files(arg)",
        abi::IORING_UNREGISTER_FILES,
        fds,
        0,
    );
    r(c, "unregister_files", abi::IORING_UNREGISTER_FILES, 0, 0);
    r(
        c,
        "unregister_files(again)",
        abi::IORING_UNREGISTER_FILES,
        0,
        0,
    );
    let sparse_flag = abi::IORING_RSRC_REGISTER_SPARSE;
    let files2 = |nr, flags, data| abi::RsrcRegister {
        nr,
        flags,
        data,
        ..Default::default()
    };
    for (label, rr, size) in [
        (
            "register_files2(sparse with data)",
            files2(2, sparse_flag, fds),
            32,
        ),
        ("register_files2(size 16)", files2(2, sparse_flag, fds), 16),
        ("register_files2(unknown flag)", files2(2, 2, 0), 32),
        ("register_files2(0 slots)", files2(0, sparse_flag, 0), 32),
        ("register_files2([fd, -1])", files2(2, 0, fds), 32),
    ] {
        let a = arg(c, rr);
        r(c, label, abi::IORING_REGISTER_FILES2, a, size);
    }
    r(c, "unregister_files", abi::IORING_UNREGISTER_FILES, 0, 0);
    r(c, "unknown register opcode", 255, 0, 0);
    Ok(())
}

/// Updates: an fd into a slot, SKIP, -1, a bad fd midway (the count done
/// so far), `FILES_UPDATE2` and its checks; the slots then work or fail.
pub fn files_update(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    sparse(c, 4);
    update(c, "files_update(slot 1 = fd)", 1, &[fd]);
    update(
        c,
        "files_update(skip, -1)",
        1,
        &[abi::IORING_REGISTER_FILES_SKIP, -1],
    );
    update(c, "files_update(fd, fd not open)", 2, &[fd, NOT_OPEN]);
    let data = pattern(8, 61);
    let d = c.bytes(&data);
    let send = |slot: i32, ud: u64| {
        let mut s = fixed(abi::IORING_OP_SEND, slot, ud);
        s.addr = d as u64;
        s.len = 4;
        s
    };
    run(c, "send(slot 1, emptied)", send(1, 1))?;
    run(c, "send(slot 2)", send(2, 2))?;
    run(c, "send(slot 3, fd not open)", send(3, 3))?;
    let fds = arg(c, [abi::IORING_REGISTER_FILES_SKIP, fd]);
    let up2 = abi::RsrcUpdate2 {
        offset: 2,
        data: fds,
        nr: 2,
        ..Default::default()
    };
    let a = arg(c, up2);
    let r = |c: &mut Ctx, label: &str, a: u64, n: u32| {
        // SAFETY: `a` is context memory.
        unsafe { c.register_line(label, abi::IORING_REGISTER_FILES_UPDATE2, a, n) };
    };
    r(c, "files_update2(skip, fd)", a, 32);
    r(c, "files_update2(size 16)", a, 16);
    let a = arg(c, abi::RsrcUpdate2 { resv2: 1, ..up2 });
    r(c, "files_update2(resv2)", a, 32);
    let a = arg(c, abi::RsrcUpdate2 { nr: 0, ..up2 });
    r(c, "files_update2(0 fds)", a, 32);
    run(c, "send(slot 3)", send(3, 4))?;
    let got = c.peer_wait(p, 8);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

/// `IOSQE_FIXED_FILE` on the socket ops (RECV, SEND, POLL_ADD, SHUTDOWN,
/// READ, WRITE), on an empty slot and past the table, and ignored by NOP;
/// the socket outlives a CLOSE of its fd while the slot holds it; CLOSE of
/// the slot then closes it (the peer reads EOF), and CLOSE's slot checks.
pub fn files_fixed_ops(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    sparse(c, 4);
    update(c, "files_update(slot 2 = fd)", 2, &[fd]);
    let data = pattern(24, 62);
    c.peer_send(p, &data[..12])?;
    c.quiet();
    let buf = c.mem(64);
    let mut s = fixed(abi::IORING_OP_RECV, 2, 1);
    (s.addr, s.len) = (buf as u64, 64);
    run(c, "recv(slot 2)", s)?;
    record_mem(c, "recv content", buf, &data[..12], 12);
    let mut s = fixed(abi::IORING_OP_POLL_ADD, 2, 2);
    s.op_flags = libc::POLLOUT as u32;
    run(c, "poll_add(slot 2, POLLOUT)", s)?;
    for (name, slot, ud) in [
        ("send(slot 0, empty)", 0, 3),
        ("send(slot 99)", 99, 4),
        ("send(slot -1)", -1, 5),
    ] {
        let mut s = fixed(abi::IORING_OP_SEND, slot, ud);
        (s.addr, s.len) = (buf as u64, 4);
        run(c, name, s)?;
    }
    run(
        c,
        "nop(FIXED_FILE, slot 99)",
        fixed(abi::IORING_OP_NOP, 99, 6),
    )?;
    // NOP with IORING_NOP_FILE | IORING_NOP_FIXED_FILE looks up slot `fd`;
    // ASYNC_CANCEL refuses FD with ANY and looks a slot up with FD_FIXED.
    for (name, slot, ud) in [
        ("nop(NOP_FIXED_FILE, slot 2)", 2, 20),
        ("nop(NOP_FIXED_FILE, slot 0, empty)", 0, 21),
        ("nop(NOP_FIXED_FILE, slot 99)", 99, 22),
    ] {
        let mut s = raw(abi::IORING_OP_NOP, slot, ud);
        s.op_flags = abi::IORING_NOP_FILE | abi::IORING_NOP_FIXED_FILE;
        run(c, name, s)?;
    }
    for (name, slot, ud, any) in [
        (
            "cancel(FD_FIXED | ANY, slot 2)",
            2,
            23,
            abi::IORING_ASYNC_CANCEL_ANY,
        ),
        (
            "cancel(FD_FIXED | ALL, slot 0, empty)",
            0,
            24,
            abi::IORING_ASYNC_CANCEL_ALL,
        ),
        (
            "cancel(FD_FIXED | ALL, slot 2)",
            2,
            25,
            abi::IORING_ASYNC_CANCEL_ALL,
        ),
    ] {
        let mut s = raw(abi::IORING_OP_ASYNC_CANCEL, slot, ud);
        s.op_flags = abi::IORING_ASYNC_CANCEL_FD | abi::IORING_ASYNC_CANCEL_FD_FIXED | any;
        run(c, name, s)?;
    }
    let mut s = raw(abi::IORING_OP_ASYNC_CANCEL, -1, 26);
    s.op_flags = abi::IORING_ASYNC_CANCEL_OP | abi::IORING_ASYNC_CANCEL_ANY;
    run(c, "cancel(OP | ANY)", s)?;
    run(c, "close(fd)", raw(abi::IORING_OP_CLOSE, fd, 7))?;
    let s = fixed(abi::IORING_OP_WRITE, 2, 8);
    let out = pattern(10, 63);
    send_to_peer(c, "write(slot 2, fd closed)", s, p, &out, "peer received")?;
    c.peer_send(p, &data[12..])?;
    c.quiet();
    let mut s = fixed(abi::IORING_OP_READ, 2, 9);
    (s.addr, s.len) = (buf as u64, 64);
    run(c, "read(slot 2)", s)?;
    record_mem(c, "read content", buf, &data[12..], 12);
    let mut s = fixed(abi::IORING_OP_CLOSE, 2, 10);
    s.fd = 2;
    run(c, "close(FIXED_FILE)", s)?;
    let mut s = close_slot(2, 11);
    s.fd = 1;
    run(c, "close(slot 2 and an fd)", s)?;
    run(c, "close(slot 2)", close_slot(2, 12))?;
    let rx = c.peer_wait_end(p);
    c.line(format!("peer: eof={}", rx.eof));
    run(c, "close(slot 2, again)", close_slot(2, 13))?;
    run(c, "close(slot 4, past the end)", close_slot(4, 14))?;
    run(c, "shutdown(slot 2, closed)", {
        let mut s = fixed(abi::IORING_OP_SHUTDOWN, 2, 15);
        s.len = libc::SHUT_WR as u32;
        s
    })?;
    // SAFETY: no memory is named.
    unsafe { c.register_line("unregister_files", abi::IORING_UNREGISTER_FILES, 0, 0) };
    run(c, "close(slot 0, no table)", close_slot(0, 16))?;
    Ok(())
}

/// SOCKET into direct descriptors: with no table (ENXIO, ENFILE), into a
/// slot, with `IORING_FILE_INDEX_ALLOC` until the table is full (the
/// allocation hint's order), past the end; a slot closed is allocated next;
/// the allocation range and its checks.
pub fn files_direct_socket(c: &mut Ctx) -> R {
    let sock = |ud: u64, fi: u32| {
        let mut s = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(ud)
            .build()
            .into_sqe();
        s.file_index = fi;
        s
    };
    run(c, "socket(slot 0, no table)", sock(1, 1))?;
    run(c, "socket(ALLOC, no table)", sock(2, ALLOC))?;
    sparse(c, 3);
    run(c, "socket(slot 2)", sock(3, 3))?;
    run(c, "socket(ALLOC)", sock(4, ALLOC))?;
    run(c, "socket(ALLOC)", sock(5, ALLOC))?;
    run(c, "socket(ALLOC, full)", sock(6, ALLOC))?;
    run(c, "socket(slot 3, past the end)", sock(7, 4))?;
    run(c, "socket(slot 1, replaces)", sock(8, 2))?;
    run(c, "close(slot 0)", close_slot(0, 9))?;
    run(c, "socket(ALLOC)", sock(10, ALLOC))?;
    // A direct socket works through its slot: BIND and LISTEN.
    let sa = c.sockaddr(ringline_ring::app::sockaddr_in([0, 0, 0, 0], 0));
    let mut s = fixed(abi::IORING_OP_BIND, 0, 11);
    (s.addr, s.off) = (sa as u64, 16);
    run(c, "bind(slot 0)", s)?;
    let mut s = fixed(abi::IORING_OP_LISTEN, 0, 12);
    s.len = 8;
    run(c, "listen(slot 0)", s)?;
    let r = |c: &mut Ctx, label: &str, a: u64, n: u32| {
        // SAFETY: `a` is 0 or context memory.
        unsafe { c.register_line(label, abi::IORING_REGISTER_FILE_ALLOC_RANGE, a, n) };
    };
    let range =
        |c: &mut Ctx, off: u32, len: u32, resv: u64| arg(c, abi::FileIndexRange { off, len, resv });
    let a = range(c, 1, 2, 1);
    r(c, "alloc_range(resv)", a, 0);
    let a = range(c, 2, 2, 0);
    r(c, "alloc_range(past the end)", a, 0);
    let a = range(c, u32::MAX, 2, 0);
    r(c, "alloc_range(overflow)", a, 0);
    let a = range(c, 1, 1, 0);
    r(c, "alloc_range(nr_args 1)", a, 1);
    r(c, "alloc_range(null)", 0, 0);
    r(c, "alloc_range(1..2)", a, 0);
    run(c, "close(slot 1)", close_slot(1, 13))?;
    run(c, "close(slot 0)", close_slot(0, 14))?;
    run(c, "socket(ALLOC, range 1..2)", sock(15, ALLOC))?;
    run(c, "socket(ALLOC, range full)", sock(16, ALLOC))?;
    Ok(())
}

/// ACCEPT into direct descriptors: `IORING_FILE_INDEX_ALLOC`, a slot,
/// multishot with ALLOC until the table is full (the connection that finds
/// no slot is closed: its peer reads EOF, and the multishot ends); data both
/// ways through the slots.
pub fn files_direct_accept(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(16)?;
    sparse(c, 4);
    let p1 = c.backend().peer_connect(l)?;
    let p2 = c.backend().peer_connect(l)?;
    c.quiet();
    let acc = |ud: u64, fi: u32, multi: bool| {
        let mut s = if multi {
            opcode::AcceptMulti::new(l).user_data(ud).build().into_sqe()
        } else {
            opcode::AcceptNoAddr::new(l)
                .user_data(ud)
                .build()
                .into_sqe()
        };
        s.file_index = fi;
        s
    };
    run(c, "accept(ALLOC)", acc(1, ALLOC, false))?;
    run(c, "accept(slot 3)", acc(2, 4, false))?;
    // SAFETY: an ACCEPT without an address names no memory.
    unsafe { c.submit_one("accept(multi, ALLOC)", acc(3, ALLOC, true)) }?;
    let p3 = c.backend().peer_connect(l)?;
    c.quiet();
    let p4 = c.backend().peer_connect(l)?;
    c.quiet();
    let p5 = c.backend().peer_connect(l)?;
    c.wait_final(3);
    c.quiet();
    c.record(3);
    c.backend().peer_start_reading(p5);
    let rx = c.peer_wait_end(p5);
    c.line(format!("fifth peer: {} B, eof={}", rx.data.len(), rx.eof));
    let data = pattern(20, 64);
    let buf = c.mem(64);
    for (i, (p, slot)) in [(p1, 0), (p2, 3), (p3, 1), (p4, 2)].into_iter().enumerate() {
        c.peer_send(p, &data[..5 + i])?;
        c.quiet();
        let ud = 10 + i as u64;
        let mut s = fixed(abi::IORING_OP_RECV, slot, ud);
        (s.addr, s.len) = (buf as u64, 64);
        let cqe = {
            // SAFETY: `buf` is context memory.
            unsafe { call(c, &format!("recv(slot {slot})"), s) }?
        };
        c.record(ud);
        record_mem(
            c,
            &format!("recv(slot {slot}) content"),
            buf,
            &data[..5 + i],
            cqe.res,
        );
    }
    c.backend().peer_start_reading(p2);
    let s = fixed(abi::IORING_OP_SEND, 3, 20);
    send_to_peer(c, "send(slot 3)", s, p2, &data, "second peer received")
}

/// `IORING_REGISTER_BUFFERS` and its checks; READ_FIXED and WRITE_FIXED on a
/// socket; SEND_ZC with `IORING_RECVSEND_FIXED_BUF`; a bad buf_index, an
/// empty entry, a range outside the buffer (all `-EFAULT`); SEND with
/// FIXED_BUF (`-EINVAL`); unregistering.
pub fn bufs_registered(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let a = c.mem(64);
    let out = pattern(48, 65);
    let b = c.bytes(&out);
    let iov = |base: *const u8, len: usize| libc::iovec {
        iov_base: base as *mut libc::c_void,
        iov_len: len,
    };
    let r = |c: &mut Ctx, label: &str, op: u32, arg: u64, n: u32| {
        // SAFETY: `arg` is 0 or context memory; the buffers it names are
        // context memory too, alive until the context drops.
        unsafe { c.register_line(label, op, arg, n) };
    };
    let null = std::ptr::null::<u8>();
    r(
        c,
        "register_buffers(null)",
        abi::IORING_REGISTER_BUFFERS,
        0,
        1,
    );
    let bad = arg(c, [iov(null, 5)]);
    r(
        c,
        "register_buffers({NULL, 5})",
        abi::IORING_REGISTER_BUFFERS,
        bad,
        1,
    );
    let bad = arg(c, [iov(a, 0)]);
    r(
        c,
        "register_buffers({buf, 0})",
        abi::IORING_REGISTER_BUFFERS,
        bad,
        1,
    );
    let bad = arg(c, [iov(a, (1 << 30) + 1)]);
    r(
        c,
        "register_buffers(over 1 GiB)",
        abi::IORING_REGISTER_BUFFERS,
        bad,
        1,
    );
    let good = arg(c, [iov(a, 64), iov(null, 0), iov(b, 48)]);
    r(
        c,
        "register_buffers(0 bufs)",
        abi::IORING_REGISTER_BUFFERS,
        good,
        0,
    );
    r(
        c,
        "unregister_buffers(none)",
        abi::IORING_UNREGISTER_BUFFERS,
        0,
        0,
    );
    r(
        c,
        "register_buffers([a, empty, b])",
        abi::IORING_REGISTER_BUFFERS,
        good,
        3,
    );
    r(
        c,
        "register_buffers(again)",
        abi::IORING_REGISTER_BUFFERS,
        good,
        3,
    );
    // NOP with IORING_NOP_FIXED_BUFFER looks up buffer `buf_index`.
    for (name, idx, ud) in [
        ("nop(FIXED_BUFFER, buf 0)", 0, 20),
        ("nop(FIXED_BUFFER, buf 1, empty)", 1, 21),
        ("nop(FIXED_BUFFER, buf 3, none)", 3, 22),
    ] {
        let mut s = raw(abi::IORING_OP_NOP, -1, ud);
        (s.op_flags, s.buf_index) = (abi::IORING_NOP_FIXED_BUFFER, idx);
        run(c, name, s)?;
    }
    let data = pattern(16, 66);
    c.peer_send(p, &data)?;
    c.quiet();
    let rwf = |op: u8, ud: u64, idx: u16, addr: *const u8, len: u32| {
        let mut s = raw(op, fd, ud);
        (s.addr, s.len, s.buf_index) = (addr as u64, len, idx);
        s
    };
    let read = abi::IORING_OP_READ_FIXED;
    run(c, "read_fixed(buf 1, empty)", rwf(read, 1, 1, a, 8))?;
    run(c, "read_fixed(buf 3, none)", rwf(read, 2, 3, a, 8))?;
    run(
        c,
        "read_fixed(buf 0, past its end)",
        rwf(read, 3, 0, a.wrapping_add(60), 8),
    )?;
    run(
        c,
        "read_fixed(buf 0, before it)",
        rwf(read, 4, 0, a.wrapping_sub(1), 8),
    )?;
    run(c, "read_fixed(fd not open)", {
        let mut s = rwf(read, 5, 0, a, 8);
        s.fd = NOT_OPEN;
        s
    })?;
    let cqe = {
        // SAFETY: `a` is context memory.
        unsafe {
            call(
                c,
                "read_fixed(buf 0)",
                rwf(read, 6, 0, a.wrapping_add(8), 56),
            )
        }?
    };
    c.record(6);
    record_mem(c, "read_fixed content", a.wrapping_add(8), &data, cqe.res);
    let write = abi::IORING_OP_WRITE_FIXED;
    run(c, "write_fixed(buf 2)", rwf(write, 7, 2, b, 16))?;
    run(
        c,
        "write_fixed(buf 0, b's address)",
        rwf(write, 8, 0, b, 16),
    )?;
    let mut s = rwf(write, 9, 2, b, 16);
    s.off = 5;
    run(c, "write_fixed(buf 2, offset 5)", s)?;
    let zc = |ud: u64, idx: u16, addr: *const u8, len: u32| {
        let mut s = raw(abi::IORING_OP_SEND_ZC, fd, ud);
        (s.addr, s.len, s.buf_index) = (addr as u64, len, idx);
        s.ioprio = abi::IORING_RECVSEND_FIXED_BUF;
        s
    };
    for (name, s) in [
        (
            "send_zc(FIXED_BUF, buf 2)",
            zc(10, 2, b.wrapping_add(16), 16),
        ),
        ("send_zc(FIXED_BUF, buf 1, empty)", zc(11, 1, b, 8)),
        (
            "send_zc(FIXED_BUF, buf 2, past its end)",
            zc(12, 2, b.wrapping_add(40), 16),
        ),
        ("send_zc(FIXED_BUF, buf 7)", zc(13, 7, b, 8)),
    ] {
        let ud = s.user_data;
        // SAFETY: `b` is context memory.
        unsafe { c.submit_one(name, s) }?;
        c.wait_final(ud);
        c.quiet();
        c.record(ud);
    }
    let mut s = zc(14, 2, b.wrapping_add(32), 16);
    s.opcode = abi::IORING_OP_SEND;
    run(c, "send(FIXED_BUF)", s)?;
    let mut want = out[..16].to_vec();
    want.extend_from_slice(&out[16..32]);
    let got = c.peer_wait(p, 32);
    record_peer(c, "peer received", &got, &want, true);
    r(
        c,
        "unregister_buffers(arg)",
        abi::IORING_UNREGISTER_BUFFERS,
        good,
        0,
    );
    r(
        c,
        "unregister_buffers",
        abi::IORING_UNREGISTER_BUFFERS,
        0,
        0,
    );
    r(
        c,
        "unregister_buffers(again)",
        abi::IORING_UNREGISTER_BUFFERS,
        0,
        0,
    );
    run(c, "write_fixed(unregistered)", rwf(write, 15, 2, b, 16))?;
    let mut s = raw(abi::IORING_OP_NOP, -1, 23);
    s.op_flags = abi::IORING_NOP_FIXED_BUFFER;
    run(c, "nop(FIXED_BUFFER, unregistered)", s)?;
    Ok(())
}

/// `IORING_REGISTER_PROBE`: the header (last_op, ops_len), each entry's op
/// number, every opcode ringline implements reported supported (ringline
/// reports no other: a unit test of the stack checks that side), a short
/// probe, and the checks (memory not zeroed, too many entries, null).
pub fn probe(c: &mut Ctx) -> R {
    let p = c.keep(abi::Probe::default());
    let r = |c: &mut Ctx, label: &str, a: u64, n: u32| {
        // SAFETY: `a` is 0 or context memory the size of a full probe.
        unsafe { c.register_line(label, abi::IORING_REGISTER_PROBE, a, n) }
    };
    r(c, "probe(256)", p as u64, 256);
    // SAFETY: `p` is context memory the engine wrote during the call, now quiet.
    let got = unsafe { *p };
    // last_op is the ABI's newest opcode, which moves with the kernel
    // version (Linux 6.18: 62; ringline's ABI: 64); its relation to
    // ops_len is the format.
    let last = got.last_op;
    c.line(format!(
        "ops_len == last_op + 1: {}, last_op >= IORING_OP_PIPE: {}",
        u32::from(got.ops_len) == u32::from(last) + 1,
        last >= abi::IORING_OP_PIPE
    ));
    let numbered = (0..got.ops_len as usize).all(|i| got.ops[i].op as usize == i);
    c.line(format!("entries numbered: {numbered}"));
    let ours: Vec<String> = (0..=u8::MAX)
        .filter(|&op| ringline::opcode_supported(op))
        .map(|op| format!("{op}:{}", got.supported(op)))
        .collect();
    c.line(format!("ringline's opcodes supported: {}", ours.join(" ")));
    let p2 = c.keep(abi::Probe::default());
    r(c, "probe(4)", p2 as u64, 4);
    // SAFETY: as above.
    let got = unsafe { *p2 };
    c.line(format!(
        "same last_op: {}, ops_len {}, op 3 {}",
        got.last_op == last,
        got.ops_len,
        got.ops[3].op
    ));
    r(c, "probe(not zeroed)", p2 as u64, 4);
    r(c, "probe(257)", p as u64, 257);
    r(c, "probe(null)", 0, 4);
    Ok(())
}

/// A URING_CMD socket command SQE.
pub(super) fn sock_cmd(
    fd: i32,
    ud: u64,
    cmd_op: u32,
    level: i32,
    optname: i32,
    optval: u64,
    optlen: u32,
) -> Sqe {
    let mut s = raw(abi::IORING_OP_URING_CMD, fd, ud);
    s.off = u64::from(cmd_op);
    s.addr = u64::from(level as u32) | (u64::from(optname as u32) << 32);
    s.file_index = optlen;
    s.addr3 = optval;
    s
}

/// `SOCKET_URING_OP_SIOCINQ` / `SIOCOUTQ`: unread bytes as the peer sends,
/// on a fresh socket and a listener; an fd not open, an unknown command,
/// the prep checks (`__pad1`, `uring_cmd_flags`).
pub fn sockcmd_queues(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let inq = |fd: i32, ud: u64| sock_cmd(fd, ud, abi::SOCKET_URING_OP_SIOCINQ, 0, 0, 0, 0);
    let outq = |fd: i32, ud: u64| sock_cmd(fd, ud, abi::SOCKET_URING_OP_SIOCOUTQ, 0, 0, 0, 0);
    run(c, "siocinq(empty)", inq(fd, 1))?;
    c.peer_send(p, &pattern(10, 70))?;
    c.quiet();
    run(c, "siocinq(10 B sent)", inq(fd, 2))?;
    c.peer_send(p, &pattern(5, 71))?;
    c.quiet();
    run(c, "siocinq(15 B sent)", inq(fd, 3))?;
    let d = c.bytes(&pattern(20, 72));
    let mut s = raw(abi::IORING_OP_SEND, fd, 4);
    (s.addr, s.len) = (d as u64, 20);
    run(c, "send", s)?;
    c.quiet();
    run(c, "siocoutq(sent and acknowledged)", outq(fd, 5))?;
    let fresh = super::socket(c, "socket", 6)?;
    run(c, "siocinq(fresh socket)", inq(fresh, 7))?;
    run(c, "siocoutq(fresh socket)", outq(fresh, 8))?;
    let l = c.backend().app_listener(4)?;
    run(c, "siocinq(listener)", inq(l, 9))?;
    run(c, "siocoutq(listener)", outq(l, 10))?;
    run(c, "siocinq(fd not open)", inq(NOT_OPEN, 11))?;
    run(c, "uring_cmd(op 99)", sock_cmd(fd, 12, 99, 0, 0, 0, 0))?;
    let mut s = inq(fd, 13);
    s.off |= 1 << 32;
    run(c, "uring_cmd(__pad1)", s)?;
    let mut s = inq(fd, 14);
    s.op_flags = 1 << 5;
    run(c, "uring_cmd(unknown flag)", s)?;
    Ok(())
}

/// `SOCKET_URING_OP_GETSOCKOPT` / `SETSOCKOPT`: SOL_SOCKET options set and
/// read back (SO_KEEPALIVE, SO_REUSEADDR, SO_RCVBUF and SO_SNDBUF with
/// Linux's doubling), read-only ones (SO_TYPE, SO_ERROR, SO_ACCEPTCONN),
/// short and long optlen; IPPROTO_TCP options (TCP_NODELAY, TCP_KEEPIDLE,
/// TCP_KEEPINTVL, TCP_KEEPCNT) and their ranges; the errnos for an unknown
/// level or option, a short optlen, a null optval, GETSOCKOPT off
/// SOL_SOCKET; options a listener passes to the connection it accepts; data
/// still flows.
pub fn sockcmd_sockopt(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let val = c.mem(8) as u64;
    let mut ud = 0;
    let mut set = |c: &mut Ctx, name: &str, fd: i32, level: i32, opt: i32, v: i32, len: u32| -> R {
        ud += 1;
        let p = c.bytes(&v.to_ne_bytes()) as u64;
        run(
            c,
            name,
            sock_cmd(fd, ud, abi::SOCKET_URING_OP_SETSOCKOPT, level, opt, p, len),
        )
    };
    let sol = libc::SOL_SOCKET;
    let tcp = libc::IPPROTO_TCP;
    set(c, "set SO_KEEPALIVE 1", fd, sol, libc::SO_KEEPALIVE, 1, 4)?;
    set(c, "set SO_REUSEADDR 1", fd, sol, libc::SO_REUSEADDR, 1, 4)?;
    set(c, "set SO_RCVBUF 65536", fd, sol, libc::SO_RCVBUF, 65536, 4)?;
    set(c, "set SO_SNDBUF 32768", fd, sol, libc::SO_SNDBUF, 32768, 8)?;
    set(c, "set SO_ERROR", fd, sol, libc::SO_ERROR, 1, 4)?;
    set(
        c,
        "set SO_KEEPALIVE, optlen 2",
        fd,
        sol,
        libc::SO_KEEPALIVE,
        1,
        2,
    )?;
    set(c, "set SOL_SOCKET 9999", fd, sol, 9999, 1, 4)?;
    set(c, "set TCP_NODELAY 1", fd, tcp, libc::TCP_NODELAY, 1, 4)?;
    set(c, "set TCP_KEEPIDLE 30", fd, tcp, libc::TCP_KEEPIDLE, 30, 4)?;
    set(c, "set TCP_KEEPIDLE 0", fd, tcp, libc::TCP_KEEPIDLE, 0, 4)?;
    set(
        c,
        "set TCP_KEEPIDLE 40000",
        fd,
        tcp,
        libc::TCP_KEEPIDLE,
        40000,
        4,
    )?;
    set(
        c,
        "set TCP_KEEPINTVL 10",
        fd,
        tcp,
        libc::TCP_KEEPINTVL,
        10,
        4,
    )?;
    set(
        c,
        "set TCP_KEEPINTVL -1",
        fd,
        tcp,
        libc::TCP_KEEPINTVL,
        -1,
        4,
    )?;
    set(c, "set TCP_KEEPCNT 5", fd, tcp, libc::TCP_KEEPCNT, 5, 4)?;
    set(c, "set TCP_KEEPCNT 200", fd, tcp, libc::TCP_KEEPCNT, 200, 4)?;
    set(
        c,
        "set TCP_NODELAY, optlen 1",
        fd,
        tcp,
        libc::TCP_NODELAY,
        1,
        1,
    )?;
    set(c, "set IPPROTO_TCP 9999", fd, tcp, 9999, 1, 4)?;
    set(c, "set level 999", fd, 999, 1, 1, 4)?;
    set(c, "set level 999, optlen 0", fd, 999, 1, 1, 0)?;
    set(
        c,
        "set fd not open",
        NOT_OPEN,
        sol,
        libc::SO_KEEPALIVE,
        1,
        4,
    )?;
    run(
        c,
        "set SO_KEEPALIVE, null optval",
        sock_cmd(
            fd,
            100,
            abi::SOCKET_URING_OP_SETSOCKOPT,
            sol,
            libc::SO_KEEPALIVE,
            0,
            4,
        ),
    )?;
    let mut gud = 200;
    let mut get = |c: &mut Ctx, name: &str, fd: i32, level: i32, opt: i32, len: u32| -> R {
        gud += 1;
        // SAFETY: `val` is context memory; zero it before each read.
        unsafe { std::ptr::write_bytes(val as *mut u8, 0, 8) };
        let s = sock_cmd(
            fd,
            gud,
            abi::SOCKET_URING_OP_GETSOCKOPT,
            level,
            opt,
            val,
            len,
        );
        // SAFETY: `val` is context memory.
        let cqe = unsafe { call(c, name, s) }?;
        c.record(gud);
        if cqe.res > 0 {
            let b = c.read_mem(val as *const u8, 8);
            c.line(format!("  value bytes {:?}", b));
        }
        Ok(())
    };
    get(c, "get SO_KEEPALIVE", fd, sol, libc::SO_KEEPALIVE, 4)?;
    get(c, "get SO_REUSEADDR", fd, sol, libc::SO_REUSEADDR, 4)?;
    get(c, "get SO_RCVBUF", fd, sol, libc::SO_RCVBUF, 4)?;
    get(c, "get SO_SNDBUF", fd, sol, libc::SO_SNDBUF, 4)?;
    get(c, "get SO_TYPE", fd, sol, libc::SO_TYPE, 4)?;
    get(c, "get SO_PROTOCOL", fd, sol, libc::SO_PROTOCOL, 4)?;
    get(c, "get SO_DOMAIN", fd, sol, libc::SO_DOMAIN, 4)?;
    get(c, "get SO_ERROR", fd, sol, libc::SO_ERROR, 4)?;
    get(c, "get SO_ACCEPTCONN", fd, sol, libc::SO_ACCEPTCONN, 4)?;
    get(c, "get SO_RCVBUF, optlen 2", fd, sol, libc::SO_RCVBUF, 2)?;
    get(c, "get SO_RCVBUF, optlen 8", fd, sol, libc::SO_RCVBUF, 8)?;
    get(c, "get SO_RCVBUF, optlen 0", fd, sol, libc::SO_RCVBUF, 0)?;
    get(
        c,
        "get SO_RCVBUF, optlen -1",
        fd,
        sol,
        libc::SO_RCVBUF,
        u32::MAX,
    )?;
    // SO_LINGER: a struct linger of 8 bytes, cut to optlen when read.
    set(c, "set SO_LINGER, optlen 4", fd, sol, libc::SO_LINGER, 1, 4)?;
    get(c, "get SO_LINGER", fd, sol, libc::SO_LINGER, 8)?;
    get(c, "get SO_LINGER, optlen 4", fd, sol, libc::SO_LINGER, 4)?;
    get(c, "get SOL_SOCKET 9999", fd, sol, 9999, 4)?;
    get(c, "get TCP_NODELAY", fd, tcp, libc::TCP_NODELAY, 4)?;
    get(c, "get fd not open", NOT_OPEN, sol, libc::SO_TYPE, 4)?;
    run(
        c,
        "get SO_TYPE, null optval",
        sock_cmd(
            fd,
            300,
            abi::SOCKET_URING_OP_GETSOCKOPT,
            sol,
            libc::SO_TYPE,
            0,
            4,
        ),
    )?;
    // A listener's options pass to the connection it accepts.
    let l = c.backend().app_listener(4)?;
    set(
        c,
        "listener: set SO_KEEPALIVE 1",
        l,
        sol,
        libc::SO_KEEPALIVE,
        1,
        4,
    )?;
    set(
        c,
        "listener: set SO_RCVBUF 20000",
        l,
        sol,
        libc::SO_RCVBUF,
        20000,
        4,
    )?;
    get(
        c,
        "listener: get SO_ACCEPTCONN",
        l,
        sol,
        libc::SO_ACCEPTCONN,
        4,
    )?;
    c.backend().peer_connect(l)?;
    c.quiet();
    let acc = opcode::AcceptNoAddr::new(l).user_data(400).build();
    let cqe = super::call_safe(c, "accept", acc)?;
    c.record(400);
    get(
        c,
        "accepted: get SO_KEEPALIVE",
        cqe.res,
        sol,
        libc::SO_KEEPALIVE,
        4,
    )?;
    get(
        c,
        "accepted: get SO_RCVBUF",
        cqe.res,
        sol,
        libc::SO_RCVBUF,
        4,
    )?;
    let s = raw(abi::IORING_OP_SEND, fd, 500);
    send_to_peer(c, "send", s, p, &pattern(12, 73), "peer received")
}

/// An incremental buffer ring (`IOU_PBUF_RING_INC`) of two 64-byte buffers:
/// receives use the head buffer a part at a time (`IORING_CQE_F_BUF_MORE`
/// while it has room, the entry's `addr`/`len` moved past what was used),
/// the head moves on once a buffer is full; a `len` cap; a multishot
/// receive; what lands where.
pub fn bufring_incremental(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let ring = c
        .backend()
        .register_buf_ring_flags(4, 7, abi::IOU_PBUF_RING_INC)
        .map_err(|e| format!("register_buf_ring(INC): {e}"))?;
    let mem = c.mem(128);
    let ring = c.keep(ring);
    // SAFETY: `ring` is kept by the context; `mem` (two 64-byte buffers) is
    // context memory, alive until the context drops, after the backend.
    unsafe {
        (*ring).add(mem as u64, 64, 0, 0);
        (*ring).add(mem as u64 + 64, 64, 1, 1);
        (*ring).advance(2);
    }
    // SAFETY: the ring's entries; read when the engine is quiet.
    let entries = unsafe { (*ring).as_ptr() };
    let base = mem as u64;
    let show = |c: &mut Ctx, label: &str| {
        let e: Vec<String> = (0..2)
            .map(|i| {
                // SAFETY: `entries` has 4 entries; nothing writes them now.
                let b = unsafe { std::ptr::read_volatile(entries.add(i)) };
                format!(
                    "bid {} at +{} len {}",
                    b.bid,
                    b.addr.wrapping_sub(base),
                    b.len
                )
            })
            .collect();
        c.line(format!("{label}: {}", e.join(", ")));
    };
    let data = pattern(90, 74);
    let recv = |ud: u64, len: u32| {
        let mut s = raw(abi::IORING_OP_RECV, fd, ud);
        s.flags = abi::IOSQE_BUFFER_SELECT;
        s.buf_index = 7;
        s.len = len;
        s
    };
    let mut at = 0;
    for (i, (n, cap)) in [(10, 0), (20, 0), (40, 0), (8, 5)].into_iter().enumerate() {
        c.peer_send(p, &data[at..at + n])?;
        c.quiet();
        at += n;
        let ud = i as u64 + 1;
        run(
            c,
            &format!("recv #{ud} ({n} B sent, len {cap})"),
            recv(ud, cap),
        )?;
        show(c, &format!("  entries after #{ud}"));
    }
    // What is left (6 + 3 B) through a multishot receive.
    c.peer_send(p, &data[at..at + 12])?;
    c.quiet();
    at += 12;
    let mut s = recv(10, 0);
    s.ioprio = abi::IORING_RECV_MULTISHOT;
    // SAFETY: names no memory beyond the group's.
    unsafe { c.submit_one("recv(multishot)", s) }?;
    c.quiet();
    c.record(10);
    show(c, "  entries after the multishot");
    // Where the bytes landed: buffer 0 holds the first 64, buffer 1 the rest.
    let got = c.read_mem(mem, 128);
    let ok = got[..64] == data[..64] && got[64..64 + (at - 64).min(64)] == data[64..at.min(128)];
    c.line(format!("buffers hold the stream in order: {ok}"));
    Ok(())
}

/// A direct socket connects through its slot (CONNECT with
/// `IOSQE_FIXED_FILE`) and sends; a listener registered into a slot accepts
/// through it (ACCEPT with `IOSQE_FIXED_FILE`), into an fd and into a direct
/// descriptor; SHUTDOWN and CANCEL-free teardown through the slots.
pub fn files_fixed_connect_accept(c: &mut Ctx) -> R {
    sparse(c, 4);
    let mut s = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
        .user_data(1)
        .build()
        .into_sqe();
    s.file_index = ALLOC;
    run(c, "socket(ALLOC)", s)?;
    let (pl, sa) = c.backend().peer_listen()?;
    let sa = c.sockaddr(sa);
    let mut s = fixed(abi::IORING_OP_CONNECT, 0, 2);
    (s.addr, s.off) = (sa as u64, 16);
    run(c, "connect(slot 0)", s)?;
    let mut peer = None;
    c.pump_until(|b| {
        peer = b.peer_accept(pl);
        peer.is_some()
    });
    let p = peer.ok_or("the peer never accepted")?;
    c.backend().peer_start_reading(p);
    let data = pattern(9, 75);
    let s = fixed(abi::IORING_OP_SEND, 0, 3);
    send_to_peer(c, "send(slot 0)", s, p, &data, "peer received")?;
    let mut s = fixed(abi::IORING_OP_SHUTDOWN, 0, 4);
    s.len = libc::SHUT_WR as u32;
    run(c, "shutdown(slot 0, SHUT_WR)", s)?;
    let rx = c.peer_wait_end(p);
    c.line(format!("peer: eof={}", rx.eof));
    // A listener in slot 2 accepts through it.
    let l = c.backend().app_listener(8)?;
    update(c, "files_update(slot 2 = listener)", 2, &[l]);
    let p1 = c.backend().peer_connect(l)?;
    let p2 = c.backend().peer_connect(l)?;
    c.quiet();
    let mut s = fixed(abi::IORING_OP_ACCEPT, 2, 5);
    s.ioprio = 0;
    run(c, "accept(slot 2)", s)?;
    let mut s = fixed(abi::IORING_OP_ACCEPT, 2, 6);
    s.file_index = ALLOC;
    let ud = s.user_data;
    // SAFETY: an ACCEPT without an address names no memory.
    unsafe { call(c, "accept(slot 2, into ALLOC)", s) }?;
    c.record(ud);
    let accepted = c.first(ud).map(|q| q.res).unwrap_or(-1);
    c.peer_send(p2, &data[..4])?;
    c.quiet();
    let buf = c.mem(16);
    let mut s = fixed(abi::IORING_OP_RECV, accepted, 7);
    (s.addr, s.len) = (buf as u64, 16);
    run(c, "recv(the direct accepted slot)", s)?;
    record_mem(c, "recv content", buf, &data[..4], 4);
    let _ = p1;
    Ok(())
}

/// ASYNC_CANCEL by file with `IORING_ASYNC_CANCEL_FD_FIXED`: a slot names the
/// socket, and requests on it match however they named it (through the
/// slot or its fd); an empty slot, an fd not open (`-EBADF`); the SQE flag
/// `IOSQE_FIXED_FILE` means the same.
pub fn files_cancel_fd_fixed(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let fds = arg(c, [fd, -1]);
    // SAFETY: `fds` is context memory.
    unsafe {
        c.register_line(
            "register_files([fd, -1])",
            abi::IORING_REGISTER_FILES,
            fds,
            2,
        )
    };
    let buf = c.mem(64);
    let mut s = fixed(abi::IORING_OP_RECV, 0, 1);
    (s.addr, s.len) = (buf as u64, 32);
    // SAFETY: `buf` is context memory.
    unsafe { c.submit_one("recv(slot 0)", s) }?;
    let mut s = raw(abi::IORING_OP_RECV, fd, 2);
    (s.addr, s.len) = (buf.wrapping_add(32) as u64, 32);
    // SAFETY: as above.
    unsafe { c.submit_one("recv(fd)", s) }?;
    c.quiet();
    let cancel = |ud: u64, fd: i32, flags: u32| {
        let mut s = raw(abi::IORING_OP_ASYNC_CANCEL, fd, ud);
        s.op_flags = flags;
        s
    };
    let fdf = abi::IORING_ASYNC_CANCEL_FD | abi::IORING_ASYNC_CANCEL_FD_FIXED;
    run(c, "cancel(FD_FIXED, slot 1, empty)", cancel(3, 1, fdf))?;
    run(c, "cancel(FD_FIXED, slot 5)", cancel(4, 5, fdf))?;
    run(
        c,
        "cancel(FD, fd not open)",
        cancel(5, NOT_OPEN, abi::IORING_ASYNC_CANCEL_FD),
    )?;
    run(
        c,
        "cancel(FD_FIXED|ALL, slot 0)",
        cancel(6, 0, fdf | abi::IORING_ASYNC_CANCEL_ALL),
    )?;
    c.quiet();
    c.record_all(&[1, 2]);
    let mut s = cancel(7, 0, abi::IORING_ASYNC_CANCEL_FD);
    s.flags = abi::IOSQE_FIXED_FILE;
    run(c, "cancel(FD + IOSQE_FIXED_FILE, slot 0, nothing left)", s)?;
    Ok(())
}

/// RECV with `IORING_RECVSEND_BUNDLE` from a ring of 8 × 16-byte buffers:
/// one CQE may fill several consecutive buffers (the first id in the CQE);
/// single-shot, with a `len` cap, and multishot; RECVMSG refuses the flag.
/// How many buffers one CQE takes is the kernel's choice (it sizes a bundle
/// from what it last saw queued, `msg_inq`), so, as for any stream split, what
/// is compared is the stream: every byte in order, each CQE's bytes
/// contiguous across its buffers, each CQE starting at the buffer after the
/// previous one's last, the cap kept, every buffer used once.
pub fn recv_bundle(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let ring = c
        .backend()
        .register_buf_ring_flags(8, 9, 0)
        .map_err(|e| format!("register_buf_ring: {e}"))?;
    let mem = c.mem(8 * 16);
    let ring = c.keep(ring);
    // SAFETY: `ring` is kept by the context; `mem` (8 buffers of 16 bytes)
    // is context memory, alive until the context drops, after the backend.
    unsafe {
        for i in 0..8u16 {
            (*ring).add(mem as u64 + u64::from(i) * 16, 16, i, u32::from(i));
        }
        (*ring).advance(8);
    }
    let data = pattern(130, 76);
    let recv = |ud: u64, len: u32, multi: bool| {
        let mut s = raw(abi::IORING_OP_RECV, fd, ud);
        s.flags = abi::IOSQE_BUFFER_SELECT;
        s.buf_index = 9;
        s.len = len;
        s.ioprio = abi::IORING_RECVSEND_BUNDLE;
        if multi {
            s.ioprio |= abi::IORING_RECV_MULTISHOT;
        }
        s
    };
    let mut cqes = Vec::new();
    let mut sent = 0;
    let mut capped = true;
    for (i, (n, cap)) in [(40, 0), (10, 0), (50, 20)].into_iter().enumerate() {
        c.peer_send(p, &data[sent..sent + n])?;
        sent += n;
        c.quiet();
        let ud = i as u64 + 1;
        // SAFETY: names no memory beyond the group's.
        let cqe = unsafe { call(c, &format!("recv(bundle) #{ud}"), recv(ud, cap, false)) }?;
        if cap > 0 {
            capped = cqe.res > 0 && cqe.res as u32 <= cap;
        }
        cqes.push(cqe);
    }
    // What is left: a multishot bundle.
    // SAFETY: names no memory beyond the group's.
    unsafe { c.submit_one("recv(multishot bundle)", recv(10, 0, true)) }?;
    c.quiet();
    let multi = c.cqes(10);
    let armed = multi.iter().all(|q| abi::more(q.flags));
    cqes.extend(multi);
    let (mut at, mut next, mut in_order, mut from_next) = (0usize, 0u16, true, true);
    for q in &cqes {
        let Some(bid) = abi::buffer_id(q.flags) else {
            in_order = false;
            continue;
        };
        from_next &= bid == next;
        let n = q.res.max(0) as usize;
        let got = c.read_mem(mem.wrapping_add(usize::from(bid) * 16), n);
        in_order &= data.get(at..at + n) == Some(&got[..]);
        at += n;
        next = bid + n.div_ceil(16) as u16;
    }
    c.line(format!(
        "all CQEs with a buffer, bytes in order across their buffers: {in_order}"
    ));
    c.line(format!(
        "each CQE starts at the buffer after the previous one's last: {from_next}"
    ));
    c.line(format!(
        "bytes received: {at} of {sent}; buffers used: {next}"
    ));
    c.line(format!(
        "the len cap kept: {capped}; the multishot still armed: {armed}"
    ));
    let mut s = recv(11, 0, false);
    s.opcode = abi::IORING_OP_RECVMSG;
    run(c, "recvmsg(bundle)", s)?;
    Ok(())
}
