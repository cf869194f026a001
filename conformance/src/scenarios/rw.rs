//! READ, WRITE, READV and WRITEV on sockets: the kernel's offset, `rw_flags`
//! and `ioprio` rules, scatter/gather, and what a program does next (the
//! bytes a rejected request did not take are still there for the next one).

use ringline_ring::abi::{self, Sqe};

use super::send::record_peer;
use super::{call, pattern, raw, record_mem, R};
use crate::Ctx;

/// `RWF_*` (`<linux/fs.h>`).
const RWF_HIPRI: u32 = 0x01;
const RWF_DSYNC: u32 = 0x02;
const RWF_SYNC: u32 = 0x04;
const RWF_NOWAIT: u32 = 0x08;
const RWF_APPEND: u32 = 0x10;
const RWF_NOAPPEND: u32 = 0x20;
const RWF_ATOMIC: u32 = 0x40;
const RWF_DONTCACHE: u32 = 0x80;

/// `IOPRIO_PRIO_VALUE(class, level)`.
const fn ioprio(class: u16, level: u16) -> u16 {
    (class << 13) | level
}

/// Records whether `got` (copied out of context memory) equals `want`.
fn record_bytes(c: &mut Ctx, label: &str, got: &[u8], want: &[u8]) {
    c.line(format!(
        "{label}: {}",
        if got == want {
            "matches what the peer sent"
        } else {
            "DIFFERS from what the peer sent"
        }
    ));
}

fn rw(op: u8, fd: i32, buf: *const u8, len: u32, off: u64, ud: u64) -> Sqe {
    Sqe {
        opcode: op,
        fd,
        addr: buf as u64,
        len,
        off,
        user_data: ud,
        ..Default::default()
    }
}

/// READ with an offset: 5 is `-ESPIPE` (even with length 0), 0 and -1 (the
/// file position) read; the bytes the rejected READ did not take are read next.
pub fn read_offset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = pattern(20, 40);
    c.peer_send(p, &data)?;
    c.quiet();
    let buf = c.mem(64);
    let cases: [(&str, u32, u64); 5] = [
        ("read(off 5)", 64, 5),
        ("read(off 5, len 0)", 0, 5),
        ("read(off -2)", 64, (-2i64) as u64),
        ("read(off 0, len 8)", 8, 0),
        ("read(off -1)", 64, u64::MAX),
    ];
    let mut got = Vec::new();
    for (i, (name, len, off)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
        let cqe = unsafe { call(c, name, rw(abi::IORING_OP_READ, fd, buf, len, off, ud)) }?;
        c.record(ud);
        if cqe.res > 0 {
            got.extend(c.read_mem(buf, cqe.res as usize));
        }
    }
    c.line(format!(
        "bytes read, in order: {}",
        if got == data {
            "the whole stream"
        } else {
            "NOT the stream"
        }
    ));
    // On a listener: the offset rules come before the socket's state.
    let l = c.backend().app_listener(4)?;
    let cases: [(&str, u32, u64); 3] = [
        ("read(listener, off 5)", 8, 5),
        ("read(listener, len 0)", 0, 0),
        ("read(listener)", 8, 0),
    ];
    for (i, (name, len, off)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 10;
        // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
        unsafe { call(c, name, rw(abi::IORING_OP_READ, l, buf, len, off, ud)) }?;
        c.record(ud);
    }
    Ok(())
}

/// WRITE with an offset: 5 is `-ESPIPE`, 0 and -1 write; the peer gets only
/// what the accepted WRITEs sent.
pub fn write_offset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(30, 41);
    let d = c.bytes(&data);
    let cases: [(&str, usize, u32, u64); 3] = [
        ("write(off 5)", 0, 10, 5),
        ("write(off 0)", 0, 10, 0),
        ("write(off -1)", 10, 20, u64::MAX),
    ];
    for (i, (name, from, len, off)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let src = d.wrapping_add(from);
        // SAFETY: `d` is context memory, alive until the context drops, after the backend.
        unsafe { call(c, name, rw(abi::IORING_OP_WRITE, fd, src, len, off, ud)) }?;
        c.record(ud);
    }
    // Sent: data[0..10] (off 0), then data[10..30] (off -1).
    c.peer_wait(p, 30);
    c.quiet();
    let got = c.backend().peer_rx(p);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

/// READ with each `RWF_*` flag (and an unknown one) on a socket with data
/// there, then a plain READ: which flags are refused, and no byte is lost.
pub fn read_rw_flags(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = pattern(8 * 9, 42);
    c.peer_send(p, &data)?;
    c.quiet();
    let buf = c.mem(64);
    let cases: [(&str, u32); 9] = [
        ("read(RWF_HIPRI)", RWF_HIPRI),
        ("read(RWF_DSYNC)", RWF_DSYNC),
        ("read(RWF_SYNC)", RWF_SYNC),
        ("read(RWF_APPEND)", RWF_APPEND),
        ("read(RWF_NOAPPEND)", RWF_NOAPPEND),
        ("read(RWF_ATOMIC)", RWF_ATOMIC),
        ("read(RWF_DONTCACHE)", RWF_DONTCACHE),
        ("read(0x100)", 0x100),
        ("read(0x80000000)", 0x8000_0000),
    ];
    let mut got = Vec::new();
    for (i, (name, f)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let mut s = rw(abi::IORING_OP_READ, fd, buf, 8, 0, ud);
        s.op_flags = f;
        // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
        let cqe = unsafe { call(c, name, s) }?;
        c.record(ud);
        if cqe.res > 0 {
            got.extend(c.read_mem(buf, cqe.res as usize));
        }
    }
    // What the refused READs left.
    let rest = data.len() - got.len();
    let s = rw(abi::IORING_OP_READ, fd, buf, 64, 0, 20);
    // SAFETY: as above.
    let cqe = unsafe { call(c, "read(the rest)", s) }?;
    c.record(20);
    if cqe.res > 0 {
        got.extend(c.read_mem(buf, cqe.res as usize));
    }
    c.line(format!(
        "bytes read, in order: {} ({rest} B left by the flagged READs)",
        if got == data {
            "the whole stream"
        } else {
            "NOT the stream"
        }
    ));
    Ok(())
}

/// WRITE with each `RWF_*` flag (and an unknown one); the peer gets exactly
/// the accepted WRITEs' bytes.
pub fn write_rw_flags(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(8 * 10, 43);
    let d = c.bytes(&data);
    let cases: [(&str, u32); 10] = [
        ("write(RWF_HIPRI)", RWF_HIPRI),
        ("write(RWF_DSYNC)", RWF_DSYNC),
        ("write(RWF_SYNC)", RWF_SYNC),
        ("write(RWF_NOWAIT)", RWF_NOWAIT),
        ("write(RWF_APPEND)", RWF_APPEND),
        ("write(RWF_NOAPPEND)", RWF_NOAPPEND),
        ("write(RWF_ATOMIC)", RWF_ATOMIC),
        ("write(RWF_DONTCACHE)", RWF_DONTCACHE),
        ("write(0x100)", 0x100),
        ("write(0x80000000)", 0x8000_0000),
    ];
    let mut sent = Vec::new();
    for (i, (name, f)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let chunk = &data[i * 8..i * 8 + 8];
        let mut s = rw(abi::IORING_OP_WRITE, fd, d.wrapping_add(i * 8), 8, 0, ud);
        s.op_flags = f;
        // SAFETY: `d` is context memory, alive until the context drops, after the backend.
        let cqe = unsafe { call(c, name, s) }?;
        c.record(ud);
        if cqe.res > 0 {
            sent.extend_from_slice(&chunk[..cqe.res as usize]);
        }
    }
    c.peer_wait(p, sent.len());
    c.quiet();
    let got = c.backend().peer_rx(p);
    record_peer(
        c,
        "peer received (the accepted WRITEs' bytes)",
        &got,
        &sent,
        true,
    );
    Ok(())
}

/// READ with `ioprio` set: a valid I/O priority (best effort level 4, idle)
/// is taken, not read as flags; an invalid class or level is `-EINVAL`.
pub fn read_ioprio(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = pattern(24, 44);
    c.peer_send(p, &data)?;
    c.quiet();
    let buf = c.mem(64);
    let cases: [(&str, u16); 6] = [
        ("read(ioprio BE/4)", ioprio(2, 4)),
        ("read(ioprio IDLE)", ioprio(3, 0)),
        ("read(ioprio BE/0, hint 1)", ioprio(2, 1 << 3)),
        ("read(ioprio NONE/1)", ioprio(0, 1)),
        ("read(ioprio class 5)", ioprio(5, 0)),
        ("read(ioprio class 7, all bits)", u16::MAX),
    ];
    for (i, (name, prio)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let mut s = rw(abi::IORING_OP_READ, fd, buf, 8, 0, ud);
        s.ioprio = prio;
        // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
        unsafe { call(c, name, s) }?;
        c.record(ud);
    }
    let mut s = rw(abi::IORING_OP_WRITE, fd, buf, 4, 0, 10);
    s.ioprio = ioprio(2, 4);
    // SAFETY: as above.
    unsafe { call(c, "write(ioprio BE/4)", s) }?;
    c.record(10);
    Ok(())
}

fn iovecs(c: &mut Ctx, bufs: &[(*mut u8, usize)]) -> *mut libc::iovec {
    let v: Vec<libc::iovec> = bufs
        .iter()
        .map(|&(b, l)| libc::iovec {
            iov_base: b.cast(),
            iov_len: l,
        })
        .collect();
    let p = c.mem(v.len().max(1) * std::mem::size_of::<libc::iovec>());
    // SAFETY: `p` is fresh context memory of the right size; iovecs are plain data.
    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), p.cast(), v.len()) };
    p.cast()
}

/// READV scattering 30 B over iovecs of 5, 10 and 15 B; then 10 B into one
/// of 8 and one of 8 (short).
pub fn readv_scatter(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let (a, b, d) = (c.mem(5), c.mem(10), c.mem(15));
    let iov = iovecs(c, &[(a, 5), (b, 10), (d, 15)]);
    let mut s = raw(abi::IORING_OP_READV, fd, 1);
    s.addr = iov as u64;
    s.len = 3;
    // SAFETY: the iovecs and their buffers are context memory, alive until the context
    // drops, after the backend.
    unsafe { c.submit_one("readv(5+10+15)", s) }?;
    let data = pattern(30, 45);
    c.peer_send(p, &data)?;
    c.wait_final(1);
    c.record(1);
    let mut got = c.read_mem(a, 5);
    got.extend(c.read_mem(b, 10));
    got.extend(c.read_mem(d, 15));
    record_bytes(c, "readv content, iovec by iovec", &got, &data);
    let (e, f) = (c.mem(8), c.mem(8));
    let iov2 = iovecs(c, &[(e, 8), (f, 8)]);
    let mut s = raw(abi::IORING_OP_READV, fd, 2);
    s.addr = iov2 as u64;
    s.len = 2;
    // SAFETY: as above.
    unsafe { c.submit_one("readv(8+8), 10 B there", s) }?;
    let data2 = pattern(10, 46);
    c.peer_send(p, &data2)?;
    c.wait_final(2);
    c.record(2);
    let n = c.first(2).map_or(0, |x| x.res.max(0)) as usize;
    let mut got = c.read_mem(e, 8);
    got.extend(c.read_mem(f, 8));
    got.truncate(n);
    record_bytes(
        c,
        "second readv content",
        &got,
        &data2[..n.min(data2.len())],
    );
    Ok(())
}

/// WRITEV gathering 4 iovecs (one empty); the peer gets them in order.
pub fn writev_gather(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(40, 47);
    let (a, b, d) = (
        c.bytes(&data[..7]),
        c.bytes(&data[7..20]),
        c.bytes(&data[20..]),
    );
    let iov = iovecs(
        c,
        &[
            (a as *mut u8, 7),
            (b as *mut u8, 0),
            (b as *mut u8, 13),
            (d as *mut u8, 20),
        ],
    );
    let mut s = raw(abi::IORING_OP_WRITEV, fd, 1);
    s.addr = iov as u64;
    s.len = 4;
    // SAFETY: the iovecs and their buffers are context memory, alive until the context
    // drops, after the backend.
    unsafe { call(c, "writev(7+0+13+20)", s) }?;
    c.record(1);
    let got = c.peer_wait(p, 40);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

/// READV faults with 12 B waiting: 1025 iovecs (`UIO_MAXIOV` is 1024), a
/// null iovec array, an iovec whose base is unmapped, an offset, zero iovecs,
/// RWF_NOWAIT; then a good READV gets all 12 B.
pub fn readv_errors(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = pattern(12, 48);
    c.peer_send(p, &data)?;
    c.quiet();
    let buf = c.mem(64);
    let many = iovecs(c, &vec![(buf, 1usize); 1025]);
    let bad = iovecs(c, &[(16 as *mut u8, 8)]);
    let good = iovecs(c, &[(buf, 64)]);
    let cases: [(&str, u64, u32, u64, u32); 6] = [
        ("readv(1025 iovecs)", many as u64, 1025, 0, 0),
        ("readv(null iovec array)", 0, 1, 0, 0),
        ("readv(unmapped base)", bad as u64, 1, 0, 0),
        ("readv(off 5)", good as u64, 1, 5, 0),
        ("readv(0 iovecs)", good as u64, 0, 0, 0),
        ("readv(0 iovecs, off 5)", good as u64, 0, 5, 0),
    ];
    for (i, (name, addr, n, off, f)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let mut s = raw(abi::IORING_OP_READV, fd, ud);
        s.addr = addr;
        s.len = n;
        s.off = off;
        s.op_flags = f;
        // SAFETY: every address is context memory alive until the context drops, after the
        // backend, or one that is never mapped (a fault to report, not to touch).
        unsafe { call(c, name, s) }?;
        c.record(ud);
    }
    let mut s = raw(abi::IORING_OP_READV, fd, 10);
    s.addr = good as u64;
    s.len = 1;
    // SAFETY: as above.
    let cqe = unsafe { call(c, "readv", s) }?;
    c.record(10);
    record_mem(c, "readv content", buf, &data, cqe.res);
    let mut s = raw(abi::IORING_OP_READV, fd, 11);
    s.addr = good as u64;
    s.len = 1;
    s.op_flags = RWF_NOWAIT;
    // SAFETY: as above.
    unsafe { call(c, "readv(RWF_NOWAIT), empty", s) }?;
    c.record(11);
    Ok(())
}

/// WRITEV faults: 1025 iovecs, a null array, an unmapped base, an offset;
/// then a good WRITEV; the peer gets only its bytes.
pub fn writev_errors(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(24, 49);
    let d = c.bytes(&data);
    let many = iovecs(c, &vec![(d as *mut u8, 1usize); 1025]);
    let bad = iovecs(c, &[(16 as *mut u8, 8)]);
    let good = iovecs(c, &[(d as *mut u8, 24)]);
    let cases: [(&str, u64, u32, u64); 4] = [
        ("writev(1025 iovecs)", many as u64, 1025, 0),
        ("writev(null iovec array)", 0, 1, 0),
        ("writev(unmapped base)", bad as u64, 1, 0),
        ("writev(off 5)", good as u64, 1, 5),
    ];
    for (i, (name, addr, n, off)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let mut s = raw(abi::IORING_OP_WRITEV, fd, ud);
        s.addr = addr;
        s.len = n;
        s.off = off;
        // SAFETY: every address is context memory alive until the context drops, after the
        // backend, or one that is never mapped (a fault to report, not to touch).
        unsafe { call(c, name, s) }?;
        c.record(ud);
    }
    let mut s = raw(abi::IORING_OP_WRITEV, fd, 10);
    s.addr = good as u64;
    s.len = 1;
    // SAFETY: as above.
    unsafe { call(c, "writev", s) }?;
    c.record(10);
    let got = c.peer_wait(p, 24);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

/// A READ_MULTISHOT SQE on `fd` from group `bgid`.
fn read_multi(fd: i32, bgid: u16, ud: u64) -> Sqe {
    let mut s = raw(abi::IORING_OP_READ_MULTISHOT, fd, ud);
    s.flags = abi::IOSQE_BUFFER_SELECT;
    s.buf_index = bgid;
    s
}

/// READ_MULTISHOT over a buffer ring (8 x 512 B): 1000 B from the peer,
/// then the peer's FIN; then a re-arm at EOF.
pub fn read_multishot_data(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(1, 8, 512, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    // SAFETY: a read into provided buffers names no memory.
    unsafe { c.submit_one("read_multishot", read_multi(fd, 1, 1)) }?;
    c.stream(1, 1, true);
    let data = pattern(1000, 53);
    c.peer_send(p, &data)?;
    c.wait_stream(1, data.len());
    c.backend().peer_shutdown_write(p);
    c.wait_final(1);
    c.record_stream(1, &data, false);
    // SAFETY: as above.
    unsafe { call(c, "re-armed read_multishot at EOF", read_multi(fd, 1, 2)) }?;
    c.record(2);
    Ok(())
}

/// READ_MULTISHOT's field checks: without buffer select, with a buffer
/// address, with an offset of 5, with RWF_NOWAIT on an empty socket, armed
/// on an empty ring, with a length; then a good one gets the stream and is
/// cancelled; one with RWF_NOWAIT with 300 B there; one on a listener.
pub fn read_multishot_fields(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(1, 8, 512, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    c.buf_ring(2, 8, 512, 0)
        .map_err(|e| format!("buf ring {e}"))?;
    let buf = c.mem(64);
    let mut cases: Vec<(&str, Sqe)> = Vec::new();
    let mut s = read_multi(fd, 1, 1);
    s.flags = 0;
    cases.push(("read_multishot(no buffer select)", s));
    let mut s = read_multi(fd, 1, 2);
    s.addr = buf as u64;
    cases.push(("read_multishot(addr set)", s));
    let mut s = read_multi(fd, 1, 3);
    s.off = 5;
    cases.push(("read_multishot(off 5)", s));
    let mut s = read_multi(fd, 1, 4);
    s.op_flags = RWF_NOWAIT;
    cases.push(("read_multishot(RWF_NOWAIT), empty", s));
    cases.push(("read_multishot(empty ring)", read_multi(fd, 2, 5)));
    let mut s = read_multi(fd, 1, 8);
    s.len = 100;
    cases.push(("read_multishot(len 100)", s));
    for (name, s) in cases {
        let ud = s.user_data;
        // SAFETY: `buf` is context memory, alive until the context drops, after the
        // backend; the rest name no memory.
        unsafe { c.submit_one(name, s) }?;
        c.quiet();
        c.record(ud);
    }
    // Then a good one still gets the stream; with RWF_NOWAIT, what is there.
    // SAFETY: a read into provided buffers names no memory.
    unsafe { c.submit_one("read_multishot", read_multi(fd, 1, 6)) }?;
    c.stream(6, 1, true);
    let data = pattern(300, 54);
    c.peer_send(p, &data)?;
    c.wait_stream(6, data.len());
    c.record_stream(6, &data, false);
    c.submit_one_safe(
        "cancel",
        ringline_ring::opcode::AsyncCancel::new(6)
            .user_data(9)
            .build(),
    )?;
    c.wait_final(6);
    c.record(9);
    c.peer_send(p, &data)?;
    c.quiet();
    let mut s = read_multi(fd, 1, 10);
    s.op_flags = RWF_NOWAIT;
    // SAFETY: a read into provided buffers names no memory.
    unsafe { c.submit_one("read_multishot(RWF_NOWAIT), 300 B there", s) }?;
    c.stream(10, 1, true);
    c.wait_final(10);
    c.record_stream(10, &data, false);
    let l = c.backend().app_listener(4)?;
    // SAFETY: a read into provided buffers names no memory.
    unsafe { call(c, "read_multishot(listener)", read_multi(l, 1, 7)) }?;
    c.record(7);
    Ok(())
}

/// Registered-buffer requests with no buffers registered, on a connected
/// socket with data there: READ_FIXED, WRITE_FIXED, SEND and SEND_ZC with
/// `IORING_RECVSEND_FIXED_BUF`; then a plain READ gets every byte.
pub fn fixed_buffers_unregistered(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = pattern(16, 56);
    c.peer_send(p, &data)?;
    c.quiet();
    let buf = c.mem(64);
    let cases: [(&str, u8, u16); 4] = [
        ("read_fixed", abi::IORING_OP_READ_FIXED, 0),
        ("write_fixed", abi::IORING_OP_WRITE_FIXED, 0),
        (
            "send(FIXED_BUF)",
            abi::IORING_OP_SEND,
            abi::IORING_RECVSEND_FIXED_BUF,
        ),
        (
            "send_zc(FIXED_BUF)",
            abi::IORING_OP_SEND_ZC,
            abi::IORING_RECVSEND_FIXED_BUF,
        ),
    ];
    for (i, (name, op, prio)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let mut s = rw(op, fd, buf, 8, 0, ud);
        s.ioprio = prio;
        // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
        unsafe { c.submit_one(name, s) }?;
        c.wait_final(ud);
        c.quiet();
        c.record(ud);
    }
    let s = rw(abi::IORING_OP_READ, fd, buf, 64, 0, 10);
    // SAFETY: as above.
    let cqe = unsafe { call(c, "read", s) }?;
    c.record(10);
    record_mem(c, "read content", buf, &data, cqe.res);
    Ok(())
}
