//! RECV: multishot with buffer rings, one-shot, flags.

use ringline_ring::opcode;

use super::{call, call_safe, pattern, raw, record_mem, R};
use crate::Ctx;

pub fn multishot_data(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(1, 8, 512, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe("recv", opcode::RecvMulti::new(fd, 1).user_data(1).build())?;
    c.stream(1, 1, true);
    let data = pattern(1000, 1);
    c.peer_send(p, &data)?;
    c.wait_stream(1, data.len());
    c.record_stream(1, &data, false);
    Ok(())
}

/// READ with `RWF_NOWAIT` on a connected socket with nothing to read: `-EAGAIN`
/// at once; then, with data there, the data.
pub fn read_nowait(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let buf = c.mem(64);
    let read = |ud| ringline_ring::abi::Sqe {
        opcode: ringline_ring::abi::IORING_OP_READ,
        fd,
        addr: buf as u64,
        len: 64,
        off: u64::MAX,
        op_flags: 0x8, // RWF_NOWAIT
        user_data: ud,
        ..Default::default()
    };
    // SAFETY: the READ names `buf`, context memory alive until the context drops, after the
    // backend.
    unsafe { call(c, "read(RWF_NOWAIT), empty", read(1)) }?;
    c.record(1);
    c.peer_send(p, &pattern(7, 4))?;
    c.quiet();
    // SAFETY: the READ names `buf`, context memory alive until the context drops, after the
    // backend.
    unsafe { call(c, "read(RWF_NOWAIT), 7 B there", read(2)) }?;
    c.record(2);
    Ok(())
}

pub fn multishot_small_buffers(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(1, 64, 64, 64)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe("recv", opcode::RecvMulti::new(fd, 1).user_data(1).build())?;
    c.stream(1, 1, true);
    let data = pattern(3000, 2);
    c.peer_send(p, &data)?;
    c.wait_stream(1, data.len());
    c.record_stream(1, &data, false);
    Ok(())
}

pub fn multishot_len_cap(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(1, 32, 512, 32)
        .map_err(|e| format!("buf ring {e}"))?;
    let mut s = opcode::RecvMulti::new(fd, 1)
        .user_data(1)
        .build()
        .into_sqe();
    s.len = 100;
    // SAFETY: a receive into provided buffers names no memory.
    unsafe { c.submit_one("recv(len 100)", s) }?;
    c.stream(1, 1, true);
    let data = pattern(1000, 3);
    c.peer_send(p, &data)?;
    c.wait_stream(1, data.len());
    c.record_stream(1, &data, false);
    let max = c.cqes(1).iter().map(|x| x.res).max().unwrap_or(0);
    c.line(format!("every CQE at most 100 B: {}", max <= 100));
    Ok(())
}

pub fn multishot_enobufs_at_arm(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    c.buf_ring(2, 8, 512, 0)
        .map_err(|e| format!("buf ring {e}"))?;
    call_safe(
        c,
        "recv",
        opcode::RecvMulti::new(fd, 2).user_data(1).build(),
    )?;
    c.record(1);
    Ok(())
}

pub fn multishot_enobufs_midstream(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(2, 4, 256, 4)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe("recv", opcode::RecvMulti::new(fd, 2).user_data(1).build())?;
    c.stream(1, 2, false);
    let data = pattern(2000, 4);
    c.peer_send(p, &data)?;
    c.wait_final(1);
    c.record_stream(1, &data, false);
    // Give the 4 buffers back and re-arm: the rest of the stream arrives intact.
    for bid in 0..4 {
        c.give(2, bid);
    }
    c.submit_one_safe(
        "re-armed recv",
        opcode::RecvMulti::new(fd, 2).user_data(2).build(),
    )?;
    c.stream(2, 2, true);
    let done = c.stream_bytes(1);
    c.wait_stream(2, data.len() - done);
    c.record_stream(2, &data[done..], false);
    Ok(())
}

pub fn multishot_eof(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(1, 8, 512, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe("recv", opcode::RecvMulti::new(fd, 1).user_data(1).build())?;
    c.stream(1, 1, true);
    let data = pattern(100, 5);
    c.peer_send(p, &data)?;
    c.wait_stream(1, 100);
    c.backend().peer_shutdown_write(p);
    c.wait_final(1);
    c.record_stream(1, &data, false);
    call_safe(
        c,
        "re-armed recv at EOF",
        opcode::RecvMulti::new(fd, 1).user_data(2).build(),
    )?;
    c.record(2);
    Ok(())
}

pub fn multishot_reset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(1, 8, 512, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe("recv", opcode::RecvMulti::new(fd, 1).user_data(1).build())?;
    // Data the peer never reads makes its close a reset (Linux and ringline alike).
    let msg = c.bytes(b"unread!!");
    // SAFETY: `msg` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "send",
            opcode::Send::new(fd, msg, 8).user_data(2).build(),
        )
    }?;
    c.quiet();
    c.backend().peer_close(p);
    c.wait_final(1);
    c.record_all(&[2, 1]);
    Ok(())
}

pub fn multishot_cancel(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    c.buf_ring(1, 8, 512, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe("recv", opcode::RecvMulti::new(fd, 1).user_data(1).build())?;
    c.quiet();
    c.submit_one_safe("cancel", opcode::AsyncCancel::new(1).user_data(2).build())?;
    c.wait_finals(&[1, 2]);
    c.record_order(&[1, 2]);
    Ok(())
}

pub fn multishot_full_cq(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(1, 64, 64, 64)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe("recv", opcode::RecvMulti::new(fd, 1).user_data(1).build())?;
    c.stream(1, 1, false);
    let data = pattern(2000, 6);
    // Send without reaping: the CQ of 8 fills up.
    c.backend().peer_send(p, &data);
    c.pump_until(|b| b.peer_sent_all(p));
    c.pump();
    c.record_flags("CQ full, not reaped", true);
    c.wait_final(1);
    c.record_stream(1, &data, true);
    c.record_flags("after reaping", false);
    // Re-arm (reaping all along) until the rest of the stream is in: a CQ of 8
    // ends each arm after at most 9 CQEs, so it takes several.
    let mut got = c.stream_data(1);
    let mut ud = 2;
    while got.len() < data.len() && ud < 50 {
        c.submit_one_safe(
            "re-armed recv",
            opcode::RecvMulti::new(fd, 1).user_data(ud).build(),
        )?;
        c.stream(ud, 1, true);
        c.wait_stream(ud, data.len() - got.len());
        got.extend(c.stream_data(ud));
        let ended_badly = c.cqes(ud).iter().any(|x| x.res < 0);
        if ended_badly {
            c.record(ud);
            break;
        }
        ud += 1;
    }
    c.line(format!(
        "whole stream after re-arming: {} B, {}",
        got.len(),
        if got == data {
            "matching what the peer sent"
        } else {
            "DIFFERING from what the peer sent"
        }
    ));
    Ok(())
}

pub fn select_oneshot(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(3, 4, 128, 4)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe(
        "recv 1",
        opcode::Recv::new(fd, std::ptr::null_mut(), 128)
            .buf_group(3)
            .user_data(1)
            .build(),
    )?;
    c.peer_send(p, &pattern(50, 7))?;
    c.wait_final(1);
    c.submit_one_safe(
        "recv 2",
        opcode::Recv::new(fd, std::ptr::null_mut(), 128)
            .buf_group(3)
            .user_data(2)
            .build(),
    )?;
    c.peer_send(p, &pattern(60, 8))?;
    c.wait_final(2);
    c.record_all(&[1, 2]);
    Ok(())
}

pub fn plain(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let buf = c.mem(64);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe { c.submit_one("recv", opcode::Recv::new(fd, buf, 64).user_data(1).build()) }?;
    let data = pattern(10, 9);
    c.peer_send(p, &data)?;
    c.wait_final(1);
    c.record(1);
    let n = c.first(1).map_or(-1, |x| x.res);
    record_mem(c, "recv content", buf, &data, n);
    Ok(())
}

pub fn waitall(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let buf = c.mem(100);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "recv(WAITALL)",
            opcode::Recv::new(fd, buf, 100)
                .flags(libc::MSG_WAITALL)
                .user_data(1)
                .build(),
        )
    }?;
    let data = pattern(100, 10);
    c.peer_send(p, &data[..40])?;
    c.quiet();
    c.record(1);
    c.peer_send(p, &data[40..])?;
    c.wait_final(1);
    c.record(1);
    let n = c.first(1).map_or(-1, |x| x.res);
    record_mem(c, "recv content", buf, &data, n);
    Ok(())
}

pub fn peek(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = pattern(20, 11);
    c.peer_send(p, &data)?;
    c.quiet();
    let a = c.mem(64);
    let b = c.mem(64);
    // SAFETY: `a` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "recv(PEEK)",
            opcode::Recv::new(fd, a, 64)
                .flags(libc::MSG_PEEK)
                .user_data(1)
                .build(),
        )
    }?;
    // SAFETY: `b` is context memory, alive until the context drops, after the backend.
    unsafe { call(c, "recv", opcode::Recv::new(fd, b, 64).user_data(2).build()) }?;
    c.record_all(&[1, 2]);
    let n1 = c.first(1).map_or(-1, |x| x.res);
    let n2 = c.first(2).map_or(-1, |x| x.res);
    record_mem(c, "peeked content", a, &data, n1);
    record_mem(c, "received content", b, &data, n2);
    Ok(())
}

pub fn dontwait(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    let buf = c.mem(64);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "recv(DONTWAIT)",
            opcode::Recv::new(fd, buf, 64)
                .flags(libc::MSG_DONTWAIT)
                .user_data(1)
                .build(),
        )
    }?;
    c.record(1);
    Ok(())
}

pub fn recvmsg(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let buf = c.mem(64);
    let iov = c.keep(libc::iovec {
        iov_base: buf.cast(),
        iov_len: 64,
    });
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = iov;
    mh.msg_iovlen = 1;
    let mh_p = c.keep(mh);
    let mut s = raw(ringline_ring::abi::IORING_OP_RECVMSG, fd, 1);
    s.addr = mh_p as u64;
    s.len = 1;
    // SAFETY: the msghdr (`mh_p`), its iovec (`iov`) and `buf` are context memory, alive until the
    // context drops, after the backend.
    unsafe { c.submit_one("recvmsg", s) }?;
    let data = pattern(10, 12);
    c.peer_send(p, &data)?;
    c.wait_final(1);
    c.record(1);
    let n = c.first(1).map_or(-1, |x| x.res);
    record_mem(c, "recvmsg content", buf, &data, n);
    Ok(())
}

/// RECV and RECVMSG with `MSG_TRUNC` on TCP: the bytes are discarded (the
/// result counts them, the buffer is untouched); the next RECV gets what
/// follows them.
pub fn trunc(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = pattern(30, 51);
    c.peer_send(p, &data)?;
    c.quiet();
    let trunc = libc::MSG_TRUNC as u32;
    let buf = c.mem(64);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe { std::ptr::write_bytes(buf, 0xaa, 64) };
    let mut s = opcode::Recv::new(fd, buf, 8).user_data(1).build();
    s.op_flags = trunc;
    // SAFETY: as above.
    unsafe { call(c, "recv(8, MSG_TRUNC)", s) }?;
    c.record(1);
    let iov = c.keep(libc::iovec {
        iov_base: buf.cast(),
        iov_len: 8,
    });
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = iov;
    mh.msg_iovlen = 1;
    let mh_p = c.keep(mh);
    let mut s = raw(ringline_ring::abi::IORING_OP_RECVMSG, fd, 2);
    s.addr = mh_p as u64;
    s.len = 1;
    s.op_flags = trunc;
    // SAFETY: the msghdr, its iovec and `buf` are context memory, alive until the context
    // drops, after the backend.
    unsafe { call(c, "recvmsg(8, MSG_TRUNC)", s) }?;
    c.record(2);
    let untouched = c.read_mem(buf, 64).iter().all(|&b| b == 0xaa);
    c.line(format!("buffer untouched: {untouched}"));
    // SAFETY: as above.
    let r = unsafe {
        call(
            c,
            "recv",
            opcode::Recv::new(fd, buf, 64).user_data(3).build(),
        )
    }?;
    c.record(3);
    record_mem(c, "recv content (bytes 16..30)", buf, &data[16..], r.res);
    Ok(())
}

/// Multishot RECV with MSG_DONTWAIT: on an empty socket; then with 300 B
/// there (it takes them, then ends).
pub fn multishot_dontwait(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(1, 8, 512, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    let dw = libc::MSG_DONTWAIT;
    call_safe(
        c,
        "recv(multi, DONTWAIT), empty",
        opcode::RecvMulti::new(fd, 1).flags(dw).user_data(1).build(),
    )?;
    c.record(1);
    let data = pattern(300, 55);
    c.peer_send(p, &data)?;
    c.quiet();
    c.submit_one_safe(
        "recv(multi, DONTWAIT), 300 B there",
        opcode::RecvMulti::new(fd, 1).flags(dw).user_data(2).build(),
    )?;
    c.stream(2, 1, true);
    c.wait_final(2);
    c.record_stream(2, &data, false);
    Ok(())
}

/// Two connections' multishot RECVs share one buffer ring (16 x 512 B):
/// the peers send in turn, and only then are the CQEs examined: each stream
/// gets its bytes and the buffer ids come in ring order across both
/// (checked in true CQE order, not stream by stream).
pub fn multishot_shared_group(c: &mut Ctx) -> R {
    let (fa, pa) = c.backend().app_conn()?;
    let (fb, pb) = c.backend().app_conn()?;
    c.buf_ring(1, 16, 512, 16)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe("recv A", opcode::RecvMulti::new(fa, 1).user_data(1).build())?;
    c.submit_one_safe("recv B", opcode::RecvMulti::new(fb, 1).user_data(2).build())?;
    let (da, db) = (pattern(1500, 59), pattern(1500, 60));
    for k in 0..3 {
        c.peer_send(pa, &da[k * 500..k * 500 + 500])?;
        c.quiet();
        c.peer_send(pb, &db[k * 500..k * 500 + 500])?;
        c.quiet();
    }
    c.streams_of(&[1, 2], 1, false);
    c.wait_stream(1, da.len());
    c.wait_stream(2, db.len());
    c.record_stream(1, &da, false);
    c.record_stream(2, &db, false);
    Ok(())
}
