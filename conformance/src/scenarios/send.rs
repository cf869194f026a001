//! SEND: small, partial progress, MSG_WAITALL, after reset/shutdown, SEND_ZC.

use ringline_ring::abi;
use ringline_ring::opcode;

use super::{call, call_safe, pattern, raw, R};
use crate::Ctx;

/// Records whether the peer got exactly `sent` (with the byte count when `count`).
pub(super) fn record_peer(
    c: &mut Ctx,
    what: &str,
    got: &crate::backend::PeerRx,
    sent: &[u8],
    count: bool,
) {
    let ok = got.data.len() == sent.len() && got.data == sent;
    let n = if count {
        format!("{} B, ", got.data.len())
    } else {
        String::new()
    };
    c.line(format!(
        "{what}: {n}{}",
        if ok {
            "exactly what was sent"
        } else {
            "NOT what was sent"
        }
    ));
}

pub fn small(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(100, 30);
    let d = c.bytes(&data);
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "send",
            opcode::Send::new(fd, d, 100).user_data(1).build(),
        )
    }?;
    c.record(1);
    let got = c.peer_wait(p, 100);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

pub fn partial(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let len = 64usize << 20;
    let data = pattern(len, 31);
    let d = c.bytes(&data);
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    let r = unsafe {
        call(
            c,
            "send(64 MiB)",
            opcode::Send::new(fd, d, len as u32).user_data(1).build(),
        )
    }?;
    let class = if r.res < 0 {
        format!("-{}", crate::errno_name(-r.res))
    } else if (r.res as usize) < len {
        "partial (0 < res < len)".to_string()
    } else {
        "all of it".to_string()
    };
    c.line(format!(
        "send(64 MiB): {class}{}",
        crate::ctx::flags_token(r.flags)
    ));
    if r.res > 0 {
        c.backend().peer_start_reading(p);
        let n = r.res as usize;
        let got = c.peer_wait(p, n);
        c.quiet();
        let got2 = c.backend().peer_rx(p);
        let extra = got2.data.len().saturating_sub(got.data.len());
        record_peer(
            c,
            "peer received (res bytes expected)",
            &got2,
            &data[..n],
            false,
        );
        c.line(format!("bytes beyond res: {extra}"));
    }
    Ok(())
}

pub fn waitall_large(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let len = 1usize << 20;
    let data = pattern(len, 32);
    let d = c.bytes(&data);
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe {
        c.submit_one(
            "send(1 MiB, WAITALL)",
            opcode::Send::new(fd, d, len as u32)
                .flags(libc::MSG_WAITALL)
                .user_data(1)
                .build(),
        )
    }?;
    let got = c.peer_wait(p, len);
    c.wait_final(1);
    c.record(1);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

pub fn after_reset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let d = c.bytes(b"unread!!");
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe { call(c, "send", opcode::Send::new(fd, d, 8).user_data(1).build()) }?;
    c.quiet();
    // The peer closes with unread data: RST.
    c.backend().peer_close(p);
    c.quiet();
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "send after reset",
            opcode::Send::new(fd, d, 8).user_data(2).build(),
        )
    }?;
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            "send again",
            opcode::Send::new(fd, d, 8).user_data(3).build(),
        )
    }?;
    c.record_all(&[1, 2, 3]);
    Ok(())
}

pub fn after_shutdown(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    call_safe(
        c,
        "shutdown(WR)",
        opcode::Shutdown::new(fd, libc::SHUT_WR)
            .user_data(1)
            .build(),
    )?;
    let d = c.bytes(b"late");
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe { call(c, "send", opcode::Send::new(fd, d, 4).user_data(2).build()) }?;
    c.record_all(&[1, 2]);
    Ok(())
}

pub fn zc(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(5, 33);
    let d = c.bytes(&data);
    let mut s = raw(abi::IORING_OP_SEND_ZC, fd, 1);
    s.addr = d as u64;
    s.len = 5;
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe { c.submit_one("send_zc", s) }?;
    c.wait_final(1);
    c.record(1);
    let got = c.peer_wait(p, 5);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

pub fn sendmsg(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(30, 34);
    let a = c.bytes(&data[..10]);
    let b = c.bytes(&data[10..]);
    let iov = c.keep([
        libc::iovec {
            iov_base: a as *mut libc::c_void,
            iov_len: 10,
        },
        libc::iovec {
            iov_base: b as *mut libc::c_void,
            iov_len: 20,
        },
    ]);
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = iov.cast();
    mh.msg_iovlen = 2;
    let mh = c.keep(mh);
    let mut s = raw(abi::IORING_OP_SENDMSG, fd, 1);
    s.addr = mh as u64;
    s.len = 1;
    // SAFETY: the msghdr (`mh`), its iovecs (`iov`) and their buffers (`a`, `b`) are context
    // memory, alive until the context drops, after the backend.
    unsafe { call(c, "sendmsg", s) }?;
    c.record(1);
    let got = c.peer_wait(p, 30);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

/// SEND_ZC and SENDMSG_ZC that fail once issued: on a socket number that is
/// not open, on a socket never connected, with `IORING_RECVSEND_FIXED_BUF`
/// and no registered buffers, with an unmapped buffer; and one that fails
/// its field checks (an unknown ioprio bit). Then a good SEND_ZC.
pub fn zc_errors(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let fresh = super::socket(c, "socket", 20)?;
    let data = pattern(5, 57);
    let d = c.bytes(&data);
    let zc = |fd: i32, ud: u64| {
        let mut s = raw(abi::IORING_OP_SEND_ZC, fd, ud);
        s.addr = d as u64;
        s.len = 5;
        s
    };
    let mut cases = vec![
        ("send_zc(fd not open)", zc(999, 1)),
        ("send_zc(never connected)", zc(fresh, 2)),
    ];
    let mut s = zc(fd, 3);
    s.ioprio = abi::IORING_RECVSEND_FIXED_BUF;
    cases.push(("send_zc(FIXED_BUF, none registered)", s));
    let mut s = zc(fd, 4);
    s.addr = 16;
    cases.push(("send_zc(unmapped buffer)", s));
    let mut s = zc(fd, 5);
    s.ioprio = 1 << 6;
    cases.push(("send_zc(unknown ioprio bit)", s));
    // A real msghdr (one iovec over the data): `addr` names a msghdr here,
    // and the 5-byte data buffer read as one let the kernel see whatever
    // the heap held past it (-EFAULT or -EMSGSIZE from run to run).
    let (_, mh) = super::ring3::one_iov_msghdr(c, d.cast_mut(), 5);
    let mut s = zc(fd, 7);
    s.opcode = abi::IORING_OP_SENDMSG_ZC;
    s.ioprio = abi::IORING_RECVSEND_FIXED_BUF;
    s.addr = mh as u64;
    s.len = 1;
    cases.push(("sendmsg_zc(FIXED_BUF)", s));
    let mut s = zc(fd, 8);
    s.flags = abi::IOSQE_CQE_SKIP_SUCCESS;
    cases.push(("send_zc(CQE_SKIP_SUCCESS)", s));
    for (name, s) in cases {
        let ud = s.user_data;
        // SAFETY: `d` is context memory, alive until the context drops, after the
        // backend; address 16 is never mapped (a fault to report, not to touch).
        unsafe { c.submit_one(name, s) }?;
        c.wait_final(ud);
        c.quiet();
        c.record(ud);
    }
    // SAFETY: as above.
    unsafe { c.submit_one("send_zc", zc(fd, 10)) }?;
    c.wait_final(10);
    c.record(10);
    let got = c.peer_wait(p, 5);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

/// SEND and SEND_ZC with a sendto address (`addr2`, `addr_len`) on a
/// connected TCP socket: a valid `sockaddr_in` of 16 B; an address with
/// `addr_len` 0. The peer gets what the accepted ones sent.
pub fn sendto_address(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(5, 58);
    let d = c.bytes(&data);
    // SAFETY: an all-zero sockaddr_in is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = 9u16.to_be();
    sa.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    let sa = c.sockaddr(sa);
    let mut sent = Vec::new();
    let cases: [(&str, u8, u64, u32); 4] = [
        ("send(address, 16 B)", abi::IORING_OP_SEND, sa as u64, 16),
        ("send(address, len 0)", abi::IORING_OP_SEND, sa as u64, 0),
        (
            "send_zc(address, 16 B)",
            abi::IORING_OP_SEND_ZC,
            sa as u64,
            16,
        ),
        (
            "send_zc(address, len 0)",
            abi::IORING_OP_SEND_ZC,
            sa as u64,
            0,
        ),
    ];
    for (i, (name, op, a2, alen)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let mut s = raw(op, fd, ud);
        s.addr = d as u64;
        s.len = 5;
        s.off = a2;
        s.file_index = alen;
        // SAFETY: `d` and `sa` are context memory, alive until the context drops, after
        // the backend.
        unsafe { c.submit_one(name, s) }?;
        c.wait_final(ud);
        c.quiet();
        c.record(ud);
        if c.first(ud).is_some_and(|x| x.res == 5) {
            sent.extend_from_slice(&data);
        }
    }
    c.peer_wait(p, sent.len());
    c.quiet();
    let got = c.backend().peer_rx(p);
    record_peer(c, "peer received", &got, &sent, true);
    Ok(())
}
