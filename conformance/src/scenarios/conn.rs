//! CONNECT, SHUTDOWN, CLOSE.

use ringline_ring::opcode;

use super::{call, call_safe, pattern, socket, R};
use crate::Ctx;

pub fn refused(c: &mut Ctx) -> R {
    let fd = socket(c, "socket", 1)?;
    let sa = c.backend().refused_addr();
    let sa = c.sockaddr(sa);
    // SAFETY: `sa` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "connect",
            opcode::Connect::new(fd, sa, 16).user_data(2).build(),
        )
    }?;
    c.record(2);
    Ok(())
}

pub fn ok(c: &mut Ctx) -> R {
    let (l, sa) = c.backend().peer_listen()?;
    let fd = socket(c, "socket", 1)?;
    let sa = c.sockaddr(sa);
    // SAFETY: `sa` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "connect",
            opcode::Connect::new(fd, sa, 16).user_data(2).build(),
        )
    }?;
    c.record(2);
    let mut peer = None;
    c.pump_until(|b| {
        peer = b.peer_accept(l);
        peer.is_some()
    });
    let p = peer.ok_or("the peer never accepted")?;
    c.backend().peer_start_reading(p);
    let data = pattern(5, 40);
    let d = c.bytes(&data);
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe { call(c, "send", opcode::Send::new(fd, d, 5).user_data(3).build()) }?;
    let got = c.peer_wait(p, 5);
    c.line(format!("peer received what was sent: {}", got.data == data));
    // SAFETY: `sa` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "connect again",
            opcode::Connect::new(fd, sa, 16).user_data(4).build(),
        )
    }?;
    c.record_all(&[3, 4]);
    Ok(())
}

pub fn shutdown_wr(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    call_safe(
        c,
        "shutdown(WR)",
        opcode::Shutdown::new(fd, libc::SHUT_WR)
            .user_data(1)
            .build(),
    )?;
    c.record(1);
    let rx = c.peer_wait_end(p);
    c.line(format!(
        "peer: {} B then {}",
        rx.data.len(),
        if rx.eof { "EOF" } else { "no EOF" }
    ));
    let buf = c.mem(64);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe { c.submit_one("recv", opcode::Recv::new(fd, buf, 64).user_data(2).build()) }?;
    c.peer_send(p, &pattern(10, 41))?;
    c.wait_final(2);
    c.record(2);
    Ok(())
}

pub fn shutdown_rd(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    call_safe(
        c,
        "shutdown(RD)",
        opcode::Shutdown::new(fd, libc::SHUT_RD)
            .user_data(1)
            .build(),
    )?;
    let buf = c.mem(64);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "recv",
            opcode::Recv::new(fd, buf, 64).user_data(2).build(),
        )
    }?;
    c.record_all(&[1, 2]);
    Ok(())
}

pub fn close_twice(c: &mut Ctx) -> R {
    let fd = socket(c, "socket", 1)?;
    call_safe(c, "close", opcode::Close::new(fd).user_data(2).build())?;
    call_safe(
        c,
        "close again",
        opcode::Close::new(fd).user_data(3).build(),
    )?;
    c.record_all(&[2, 3]);
    Ok(())
}

/// Lets what was submitted settle, CLOSEs `fd` (user_data 2, waited for),
/// and lets that settle too.
fn close_settled(c: &mut Ctx, fd: i32) -> R {
    c.quiet();
    call_safe(c, "close", opcode::Close::new(fd).user_data(2).build())?;
    c.quiet();
    Ok(())
}

pub fn close_with_recv(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let buf = c.mem(64);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe { c.submit_one("recv", opcode::Recv::new(fd, buf, 64).user_data(1).build()) }?;
    close_settled(c, fd)?;
    c.record_order(&[1, 2]);
    c.peer_send(p, &pattern(5, 42))?;
    c.wait_final(1);
    c.record(1);
    Ok(())
}

/// CLOSE while a 16 MiB `MSG_WAITALL` SEND still waits for the peer to read:
/// the request keeps the socket open, every byte arrives, then EOF.
pub fn close_with_send(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    // More than the socket buffers of both sides hold while the peer is not
    // reading, on Linux's loopback as on the loopback wire.
    let len = 16usize << 20;
    let data = pattern(len, 77);
    let d = c.bytes(&data);
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "send(16 MiB, WAITALL)",
            opcode::Send::new(fd, d, len as u32)
                .flags(libc::MSG_WAITALL)
                .user_data(1)
                .build(),
        )
    }?;
    close_settled(c, fd)?;
    c.record_order(&[1, 2]);
    c.backend().peer_start_reading(p);
    let rx = c.peer_wait_end(p);
    c.wait_final(1);
    c.record(1);
    let exact = rx.data.len() == len && rx.data == data;
    c.line(format!(
        "peer received: {} B, {}, then {}",
        rx.data.len(),
        if exact {
            "exactly what was sent"
        } else {
            "NOT what was sent"
        },
        super::net2::end_word(&rx)
    ));
    Ok(())
}

/// `SO_LINGER` on with a zero time (set with SETSOCKOPT), a large SEND that
/// leaves data queued, then CLOSE: the connection is reset, what was not
/// sent is discarded, and the peer reads a prefix of the data, fewer bytes
/// than the SEND counted, then `ECONNRESET` (Linux's `tcp_close` with
/// `SOCK_LINGER` and no linger time: `tcp_disconnect`).
pub fn close_linger_zero(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a plain C struct of two ints.
    let raw = unsafe {
        core::slice::from_raw_parts(
            (&linger as *const libc::linger).cast::<u8>(),
            core::mem::size_of::<libc::linger>(),
        )
    };
    let optval = c.bytes(raw) as u64;
    let set = super::regs::sock_cmd(
        fd,
        1,
        ringline_ring::abi::SOCKET_URING_OP_SETSOCKOPT,
        libc::SOL_SOCKET,
        libc::SO_LINGER,
        optval,
        raw.len() as u32,
    );
    // SAFETY: `optval` is context memory, alive until the context drops.
    unsafe { call(c, "setsockopt(SO_LINGER {1, 0})", set) }?;
    c.record(1);
    // More than both sides' buffers hold while the peer does not read.
    let len = 64usize << 20;
    let data = pattern(len, 31);
    let d = c.bytes(&data);
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    let sent = unsafe {
        call(
            c,
            "send(64 MiB)",
            opcode::Send::new(fd, d, len as u32).user_data(2).build(),
        )
    }?
    .res;
    c.line(format!(
        "send: {}",
        if sent > 0 && (sent as usize) < len {
            "some (0 < res < len)"
        } else {
            "NOT a part"
        }
    ));
    let close = call_safe(c, "close", opcode::Close::new(fd).user_data(3).build())?;
    c.line(format!("close: {}", close.res));
    c.backend().peer_start_reading(p);
    let rx = c.peer_wait_end(p);
    let prefix = rx.data.len() < sent.max(0) as usize && data.starts_with(&rx.data);
    c.line(format!(
        "peer received: {}, then {}",
        if prefix {
            "a prefix of the data, fewer bytes than the SEND counted"
        } else {
            "NOT a shorter prefix"
        },
        super::net2::end_word(&rx)
    ));
    Ok(())
}

/// CLOSE with a POLL_ADD(POLLIN) pending: the poll stays armed and fires
/// when the peer sends.
pub fn close_with_poll(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.submit_one_safe(
        "poll(POLLIN)",
        opcode::PollAdd::new(fd, libc::POLLIN as u32)
            .user_data(1)
            .build(),
    )?;
    close_settled(c, fd)?;
    c.record_order(&[1, 2]);
    c.peer_send(p, &pattern(5, 9))?;
    c.wait_final(1);
    c.record(1);
    Ok(())
}

/// CLOSE with a multishot RECV armed: the RECV stays armed, delivers what
/// the peer sends, and ends with EOF when the peer closes.
pub fn close_with_multishot_recv(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(1, 16, 512, 16)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe("recv", opcode::RecvMulti::new(fd, 1).user_data(1).build())?;
    c.stream(1, 1, true);
    close_settled(c, fd)?;
    c.record(2);
    let data = pattern(3000, 11);
    c.peer_send(p, &data)?;
    c.wait_stream(1, data.len());
    c.backend().peer_close(p);
    c.wait_final(1);
    c.record_stream(1, &data, false);
    Ok(())
}

/// CLOSE with a RECV pending, then a new socket (which may reuse the
/// number) and ASYNC_CANCEL by that number: the closed socket's RECV is not
/// found, and still gets the peer's data.
pub fn close_then_cancel_fd(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let buf = c.mem(64);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe { c.submit_one("recv", opcode::Recv::new(fd, buf, 64).user_data(1).build()) }?;
    close_settled(c, fd)?;
    // Whether the number is reused depends on the process's other files
    // (the kernel backend's peer sockets share its table): not recorded.
    let new = socket(c, "socket", 3)?;
    call_safe(
        c,
        "cancel(fd of the new socket)",
        opcode::AsyncCancelFd::new(new).user_data(4).build(),
    )?;
    c.record(4);
    c.peer_send(p, &pattern(5, 13))?;
    c.wait_final(1);
    c.record(1);
    Ok(())
}

pub fn close_listener(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(16)?;
    c.submit_one_safe("accept", opcode::AcceptMulti::new(l).user_data(1).build())?;
    c.quiet();
    call_safe(
        c,
        "close(listener)",
        opcode::Close::new(l).user_data(2).build(),
    )?;
    c.quiet();
    c.record_order(&[1, 2]);
    let r = c.backend().peer_connect(l);
    c.line(format!(
        "peer connect after close: {}",
        if r.is_ok() { "connected" } else { "failed" }
    ));
    c.quiet();
    c.record(1);
    Ok(())
}

/// CLOSE with `rw_flags`, `buf_index` or `ioprio` set (as a program that
/// reuses an SQE without clearing it would): each refused, the socket still
/// open (a RECV gets the peer's bytes), then a clean CLOSE.
pub fn close_bad_fields(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let base = opcode::Close::new(fd).build().into_sqe();
    let cases: [(&str, u32, u16, u16); 3] = [
        ("close(rw_flags 1)", 1, 0, 0),
        ("close(buf_index 1)", 0, 1, 0),
        ("close(ioprio 1)", 0, 0, 1),
    ];
    for (i, (name, rw, bi, prio)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let mut s = base;
        s.user_data = ud;
        s.op_flags = rw;
        s.buf_index = bi;
        s.ioprio = prio;
        // SAFETY: a CLOSE names no memory.
        unsafe { call(c, name, s) }?;
        c.record(ud);
    }
    let buf = c.mem(64);
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe { c.submit_one("recv", opcode::Recv::new(fd, buf, 64).user_data(10).build()) }?;
    c.peer_send(p, &pattern(5, 50))?;
    c.wait_final(10);
    c.record(10);
    call_safe(c, "close", opcode::Close::new(fd).user_data(11).build())?;
    c.record(11);
    Ok(())
}

/// SOCKET into a direct descriptor with no registered file table:
/// `IORING_FILE_INDEX_ALLOC`, fixed slot 0, and slot 0 with SOCK_CLOEXEC;
/// then a plain SOCKET works.
pub fn socket_direct_no_table(c: &mut Ctx) -> R {
    let cases: [(&str, u32, u64); 3] = [
        ("socket(FILE_INDEX_ALLOC)", u32::MAX, 0),
        ("socket(slot 0)", 1, 0),
        ("socket(slot 0, SOCK_CLOEXEC)", 1, libc::SOCK_CLOEXEC as u64),
    ];
    for (i, (name, fi, ty)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let mut s = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(ud)
            .build()
            .into_sqe();
        s.file_index = fi;
        s.off |= ty;
        // SAFETY: a SOCKET names no memory.
        unsafe { call(c, name, s) }?;
        c.record(ud);
    }
    socket(c, "socket", 10)?;
    Ok(())
}
