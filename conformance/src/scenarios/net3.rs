//! The socket data path, wide (part 2): RECV/RECVMSG variants and POLL masks
//! on sockets in each state. Helpers are `net2`'s.

use ringline_ring::abi;
use ringline_ring::opcode;

use super::net2::{msg_op, msghdr, peer_reset, poll, recv, send, shutdown};
use super::{call_safe, pattern, raw, record_mem, socket, R};
use crate::Ctx;

const ALL: i16 = libc::POLLIN | libc::POLLOUT | libc::POLLPRI | libc::POLLRDHUP;

// ----------------------------------------------------------------------
// RECV / RECVMSG
// ----------------------------------------------------------------------

/// RECV of 0 B: with data there (0 at once, the data stays), on an empty
/// socket (waits for data, then 0); then a RECV gets every byte.
pub fn recv_zero_len(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = pattern(20, 80);
    c.peer_send(p, &data[..10])?;
    c.quiet();
    recv(c, "recv(0 B, data there)", fd, 1, 0, 0, true)?;
    c.record(1);
    let buf = recv(c, "recv", fd, 2, 64, 0, true)?;
    c.record(2);
    record_mem(c, "recv content", buf, &data[..10], c.cqes(2)[0].res);
    recv(c, "recv(0 B, empty)", fd, 3, 0, 0, false)?;
    c.quiet();
    c.record(3);
    c.peer_send(p, &data[10..])?;
    c.wait_final(3);
    c.record(3);
    let buf = recv(c, "recv", fd, 4, 64, 0, true)?;
    c.record(4);
    record_mem(c, "recv content", buf, &data[10..], c.cqes(4)[0].res);
    Ok(())
}

/// RECV with MSG_PEEK|MSG_WAITALL of 100 B with 40 there: io_uring's retry
/// peeks the queue again from its start until 100 B are counted, so it
/// completes at once (the buffer holds the 40 B twice, then 20); the next
/// WAITALL RECV waits for the rest and gets the real 100 B.
pub fn recv_peek_waitall(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = pattern(100, 81);
    c.peer_send(p, &data[..40])?;
    c.quiet();
    let b1 = recv(
        c,
        "recv(PEEK|WAITALL, 100)",
        fd,
        1,
        100,
        libc::MSG_PEEK | libc::MSG_WAITALL,
        false,
    )?;
    c.quiet();
    c.record(1);
    c.peer_send(p, &data[40..])?;
    c.wait_final(1);
    c.record(1);
    let twice: Vec<u8> = [&data[..40], &data[..40], &data[..20]].concat();
    record_mem(
        c,
        "peeked (the 40 B, again, then 20)",
        b1,
        &twice,
        c.cqes(1)[0].res,
    );
    let b2 = recv(c, "recv(WAITALL, 100)", fd, 2, 100, libc::MSG_WAITALL, true)?;
    c.record(2);
    record_mem(c, "received", b2, &data, c.cqes(2)[0].res);
    Ok(())
}

/// RECVMSG over iovecs of 0, 10, 0, 20 B with 25 B there; RECVMSG with 0
/// iovecs with data there; then the rest.
pub fn recvmsg_iov_shapes(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = pattern(40, 82);
    c.peer_send(p, &data[..25])?;
    c.quiet();
    let (mh, bases) = msghdr(c, &[0, 10, 0, 20], None);
    msg_op(
        c,
        "recvmsg(0,10,0,20)",
        (abi::IORING_OP_RECVMSG, fd, 1),
        mh,
        0,
        true,
    )?;
    c.record(1);
    record_mem(c, "iov 1", bases[1], &data[..10], 10);
    record_mem(c, "iov 3", bases[3], &data[10..25], 15);
    c.peer_send(p, &data[25..])?;
    c.quiet();
    let (mh, _) = msghdr(c, &[], None);
    msg_op(
        c,
        "recvmsg(0 iovecs)",
        (abi::IORING_OP_RECVMSG, fd, 2),
        mh,
        0,
        true,
    )?;
    c.record(2);
    let (mh, bases) = msghdr(c, &[64], None);
    msg_op(c, "recvmsg", (abi::IORING_OP_RECVMSG, fd, 3), mh, 0, true)?;
    c.record(3);
    record_mem(c, "rest", bases[0], &data[25..], c.cqes(3)[0].res);
    Ok(())
}

/// RECVMSG writes back msg_namelen, msg_controllen and msg_flags (TCP: no
/// address, no control): with a name and control buffer, and with MSG_TRUNC.
pub fn recvmsg_out_fields(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.peer_send(p, &pattern(30, 83))?;
    c.quiet();
    for (ud, name, flags) in [
        (1u64, "recvmsg", 0u32),
        (2, "recvmsg(MSG_TRUNC)", libc::MSG_TRUNC as u32),
    ] {
        let (mh, _) = msghdr(c, &[10], None);
        let nm = c.mem(32);
        let ctl = c.mem(64);
        // SAFETY: `mh` is context memory from `msghdr`.
        unsafe {
            (*mh).msg_name = nm.cast();
            (*mh).msg_namelen = 32;
            (*mh).msg_control = ctl.cast();
            (*mh).msg_controllen = 64;
            (*mh).msg_flags = 0x40_0000;
        }
        msg_op(c, name, (abi::IORING_OP_RECVMSG, fd, ud), mh, flags, true)?;
        c.record(ud);
        // SAFETY: `mh` is context memory; its request has completed.
        let (nl, cl, fl) = unsafe { ((*mh).msg_namelen, (*mh).msg_controllen, (*mh).msg_flags) };
        c.line(format!(
            "{name} wrote back: namelen {nl}, controllen {cl}, msg_flags {fl:#x}"
        ));
    }
    Ok(())
}

/// One-shot RECV with buffer select after the peer's FIN: 0 with no buffer
/// taken; a second connection's RECV then gets buffer 0.
pub fn recv_select_after_eof(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(3, 4, 64, 4)
        .map_err(|e| format!("buf ring {e}"))?;
    c.backend().peer_shutdown_write(p);
    c.quiet();
    c.submit_one_safe(
        "recv(select)",
        opcode::RecvSelect::new(fd, 3, 64).user_data(1).build(),
    )?;
    c.wait_final(1);
    c.record(1);
    c.submit_one_safe(
        "recv(select) again",
        opcode::RecvSelect::new(fd, 3, 64).user_data(2).build(),
    )?;
    c.wait_final(2);
    c.record(2);
    let (fd2, p2) = c.backend().app_conn()?;
    c.peer_send(p2, b"x")?;
    c.submit_one_safe(
        "recv(select), other connection",
        opcode::RecvSelect::new(fd2, 3, 64).user_data(3).build(),
    )?;
    c.wait_final(3);
    c.record(3);
    Ok(())
}

/// A multishot RECVMSG SQE over buffer ring `bgid` with a msghdr of
/// `namelen` name bytes and no control.
fn recvmsg_multi(c: &mut Ctx, name: &str, fd: i32, ud: u64, bgid: u16, namelen: u32) -> R {
    let (mh, _) = msghdr(c, &[], None);
    // SAFETY: `mh` is context memory from `msghdr`.
    unsafe { (*mh).msg_namelen = namelen };
    let mut s = raw(abi::IORING_OP_RECVMSG, fd, ud);
    s.addr = mh as u64;
    s.len = 1;
    s.ioprio = abi::IORING_RECV_MULTISHOT;
    s.flags = abi::IOSQE_BUFFER_SELECT;
    s.buf_index = bgid;
    // SAFETY: `mh` is context memory; the buffers are the group's.
    unsafe { c.submit_one(name, s) }
}

/// Records the `io_uring_recvmsg_out` header and payload of the stream bytes
/// `got` (one buffer's worth) with `namelen` name bytes reserved.
fn record_recvmsg_out(c: &mut Ctx, label: &str, got: &[u8], namelen: usize, want: &[u8]) {
    if got.len() < 16 {
        c.line(format!("{label}: {} B, no header", got.len()));
        return;
    }
    let w = |i: usize| u32::from_ne_bytes(got[i * 4..i * 4 + 4].try_into().unwrap());
    let (nl, cl, pl, fl) = (w(0), w(1), w(2), w(3));
    let payload = got.get(16 + namelen + cl as usize..).unwrap_or(&[]);
    c.line(format!(
        "{label}: {} B: namelen {nl}, controllen {cl}, payloadlen {pl}, flags {fl:#x}, payload {}",
        got.len(),
        if payload == want {
            "matches"
        } else {
            "DIFFERS"
        }
    ));
}

/// Multishot RECVMSG over a buffer ring: the io_uring_recvmsg_out header
/// (16 B name space reserved, none used on TCP), the payload after it; two
/// arrivals, then the peer's FIN.
pub fn recvmsg_multishot_header(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(4, 8, 512, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    recvmsg_multi(c, "recvmsg(multishot, namelen 16)", fd, 1, 4, 16)?;
    c.stream(1, 4, true);
    let a = pattern(100, 84);
    c.peer_send(p, &a)?;
    c.wait_stream(1, 132);
    let got = c.stream_data(1);
    record_recvmsg_out(c, "first", &got, 16, &a);
    let b = pattern(50, 85);
    c.peer_send(p, &b)?;
    c.wait_stream(1, 132 + 82);
    let got = c.stream_data(1);
    record_recvmsg_out(c, "second", got.get(132..).unwrap_or(&[]), 16, &b);
    c.backend().peer_shutdown_write(p);
    c.wait_final(1);
    let toks: Vec<String> = c.cqes(1).iter().map(|x| c.token(x)).collect();
    c.line(format!("recvmsg(multishot) CQEs: {}", toks.join(", ")));
    Ok(())
}

/// Multishot RECVMSG whose buffers (24 B) cannot hold the header plus the
/// 16 B name; then with namelen 0 in 24 B buffers (8 B of payload each).
pub fn recvmsg_multishot_small_buffers(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(5, 8, 24, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    c.peer_send(p, &pattern(20, 86))?;
    c.quiet();
    recvmsg_multi(
        c,
        "recvmsg(multishot, namelen 16, 24 B buffers)",
        fd,
        1,
        5,
        16,
    )?;
    c.wait_final(1);
    c.quiet();
    c.record(1);
    recvmsg_multi(
        c,
        "recvmsg(multishot, namelen 0, 24 B buffers)",
        fd,
        2,
        5,
        0,
    )?;
    c.stream(2, 5, true);
    c.wait_stream(2, 24);
    let got = c.stream_data(2);
    record_recvmsg_out(
        c,
        "first buffer",
        got.get(..24).unwrap_or(&got),
        0,
        &pattern(20, 86)[..8],
    );
    Ok(())
}

/// RECV with MSG_WAITALL of 100 B; the peer sends 40 then FIN: 40, then 0.
pub fn recv_waitall_short_eof(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    recv(
        c,
        "recv(WAITALL, 100)",
        fd,
        1,
        100,
        libc::MSG_WAITALL,
        false,
    )?;
    c.peer_send(p, &pattern(40, 87))?;
    c.quiet();
    c.record(1);
    c.backend().peer_shutdown_write(p);
    c.wait_final(1);
    c.record(1);
    recv(c, "recv", fd, 2, 100, 0, true)?;
    c.record(2);
    Ok(())
}

/// RECV with MSG_WAITALL of 100 B; the peer sends 40 then resets: the 40,
/// then -ECONNRESET, then 0.
pub fn recv_waitall_then_reset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    send(c, "send(unread)", fd, 9, b"unread!!", 0, true)?;
    recv(
        c,
        "recv(WAITALL, 100)",
        fd,
        1,
        100,
        libc::MSG_WAITALL,
        false,
    )?;
    c.peer_send(p, &pattern(40, 88))?;
    c.quiet();
    c.backend().peer_close(p);
    c.wait_final(1);
    c.record(1);
    recv(c, "recv", fd, 2, 100, 0, true)?;
    recv(c, "recv", fd, 3, 100, 0, true)?;
    c.record_all(&[2, 3]);
    Ok(())
}

/// RECVMSG with MSG_WAITALL over iovecs of 5, 10, 15 B; the peer sends 10,
/// then 20: one completion of 30 B, in order.
pub fn recvmsg_waitall_iovs(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = pattern(30, 89);
    let (mh, bases) = msghdr(c, &[5, 10, 15], None);
    msg_op(
        c,
        "recvmsg(WAITALL, 5+10+15)",
        (abi::IORING_OP_RECVMSG, fd, 1),
        mh,
        libc::MSG_WAITALL as u32,
        false,
    )?;
    c.peer_send(p, &data[..10])?;
    c.quiet();
    c.record(1);
    c.peer_send(p, &data[10..])?;
    c.wait_final(1);
    c.record(1);
    record_mem(c, "iov 0", bases[0], &data[..5], 5);
    record_mem(c, "iov 1", bases[1], &data[5..15], 10);
    record_mem(c, "iov 2", bases[2], &data[15..], 15);
    Ok(())
}

/// RECV with MSG_OOB on a connection without urgent data; then a plain RECV.
pub fn recv_oob(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.peer_send(p, b"inband")?;
    c.quiet();
    recv(c, "recv(MSG_OOB)", fd, 1, 16, libc::MSG_OOB, true)?;
    recv(c, "recv", fd, 2, 16, 0, true)?;
    c.record_all(&[1, 2]);
    Ok(())
}

/// After the peer's RST: RECV -ECONNRESET once, then 0; READ 0; RECVMSG 0.
pub fn recv_after_reset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    peer_reset(c, fd, p, 9)?;
    recv(c, "recv", fd, 1, 64, 0, true)?;
    recv(c, "recv", fd, 2, 64, 0, true)?;
    let (mh, _) = msghdr(c, &[64], None);
    msg_op(c, "recvmsg", (abi::IORING_OP_RECVMSG, fd, 3), mh, 0, true)?;
    c.record_all(&[1, 2, 3]);
    Ok(())
}

/// A multishot RECV gets 500 B, then the peer resets: how it ends; a re-arm.
pub fn recv_multishot_data_then_reset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    send(c, "send(unread)", fd, 9, b"unread!!", 0, true)?;
    c.buf_ring(6, 8, 512, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe(
        "recv(multishot)",
        opcode::RecvMulti::new(fd, 6).user_data(1).build(),
    )?;
    c.stream(1, 6, true);
    let data = pattern(500, 90);
    c.peer_send(p, &data)?;
    c.wait_stream(1, 500);
    c.backend().peer_close(p);
    c.wait_final(1);
    c.record_stream(1, &data, false);
    c.submit_one_safe(
        "recv(multishot) re-armed",
        opcode::RecvMulti::new(fd, 6).user_data(2).build(),
    )?;
    c.wait_final(2);
    c.record(2);
    Ok(())
}

/// A RECV pending when the app shuts down its reading side: it completes
/// with 0.
pub fn recv_pending_then_shut_rd(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    recv(c, "recv", fd, 1, 64, 0, false)?;
    c.quiet();
    shutdown(c, "shutdown(RD)", fd, 2, libc::SHUT_RD)?;
    c.wait_final(1);
    c.record_order(&[1, 2]);
    Ok(())
}

/// A RECV pending when the app shuts down its writing side: it stays
/// pending, then gets the peer's bytes.
pub fn recv_pending_then_shut_wr(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    recv(c, "recv", fd, 1, 64, 0, false)?;
    c.quiet();
    shutdown(c, "shutdown(WR)", fd, 2, libc::SHUT_WR)?;
    c.quiet();
    c.record_order(&[1, 2]);
    c.peer_send(p, b"reply")?;
    c.wait_final(1);
    c.record(1);
    Ok(())
}

// ----------------------------------------------------------------------
// POLL masks per socket state
// ----------------------------------------------------------------------

/// One-shot polls armed with `events` (user_data `ud..`), each recorded
/// after a quiet period.
fn polls(c: &mut Ctx, fd: i32, ud: u64, cases: &[(&str, i16)]) -> R {
    for (i, (name, ev)) in cases.iter().enumerate() {
        poll(c, name, fd, ud + i as u64, *ev)?;
    }
    c.quiet();
    let uds: Vec<u64> = (0..cases.len() as u64).map(|i| ud + i).collect();
    c.record_all(&uds);
    Ok(())
}

/// Cancels the pending polls `uds` (POLL_REMOVE each) so nothing is left.
fn unpoll(c: &mut Ctx, uds: &[u64]) -> R {
    for &u in uds {
        if c.cqes(u).is_empty() {
            call_safe(
                c,
                "poll_remove",
                opcode::PollRemove::new(u).user_data(1000 + u).build(),
            )?;
        }
    }
    Ok(())
}

/// A fresh (never connected) socket: POLLIN, POLLOUT, all events, 0 events.
pub fn poll_fresh_socket(c: &mut Ctx) -> R {
    let fd = socket(c, "socket", 1)?;
    polls(
        c,
        fd,
        10,
        &[
            ("poll(IN)", libc::POLLIN),
            ("poll(OUT)", libc::POLLOUT),
            ("poll(IN|OUT|PRI|RDHUP)", ALL),
            ("poll(0)", 0),
        ],
    )?;
    unpoll(c, &[10, 11, 12, 13])
}

/// A socket whose CONNECT was refused: POLLIN, POLLOUT, all events.
pub fn poll_after_refused(c: &mut Ctx) -> R {
    let fd = socket(c, "socket", 1)?;
    let bad = c.backend().refused_addr();
    super::net2::connect(c, "connect(refused)", fd, 2, bad, 16)?;
    c.record(2);
    polls(
        c,
        fd,
        10,
        &[
            ("poll(IN)", libc::POLLIN),
            ("poll(OUT)", libc::POLLOUT),
            ("poll(all)", ALL),
        ],
    )?;
    unpoll(c, &[10, 11, 12])
}

/// A connected socket, idle then readable: all events; POLLPRI alone.
pub fn poll_masks_connected(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    polls(
        c,
        fd,
        10,
        &[
            ("idle: poll(all)", ALL),
            ("idle: poll(IN|PRI)", libc::POLLIN | libc::POLLPRI),
        ],
    )?;
    c.peer_send(p, b"data")?;
    c.quiet();
    c.record(11);
    polls(
        c,
        fd,
        20,
        &[
            ("readable: poll(all)", ALL),
            ("readable: poll(PRI)", libc::POLLPRI),
        ],
    )?;
    unpoll(c, &[11, 21])
}

/// After the app's own SHUT_WR, SHUT_RD and SHUT_RDWR: all events.
pub fn poll_masks_own_shutdown(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    shutdown(c, "shutdown(WR)", fd, 1, libc::SHUT_WR)?;
    polls(
        c,
        fd,
        10,
        &[
            ("after SHUT_WR: poll(all)", ALL),
            ("after SHUT_WR: poll(IN)", libc::POLLIN),
        ],
    )?;
    let (fd2, _p2) = c.backend().app_conn()?;
    shutdown(c, "shutdown(RD)", fd2, 2, libc::SHUT_RD)?;
    polls(c, fd2, 20, &[("after SHUT_RD: poll(all)", ALL)])?;
    shutdown(c, "shutdown(RDWR)", fd, 3, libc::SHUT_RDWR)?;
    polls(c, fd, 30, &[("after SHUT_RDWR: poll(all)", ALL)])?;
    unpoll(c, &[11])
}

/// After the peer's FIN with the app's SHUT_WR too (both directions shut):
/// all events; POLLOUT alone.
pub fn poll_masks_both_shut(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    c.backend().peer_shutdown_write(p);
    shutdown(c, "shutdown(WR)", fd, 1, libc::SHUT_WR)?;
    c.quiet();
    polls(
        c,
        fd,
        10,
        &[
            ("poll(all)", ALL),
            ("poll(OUT)", libc::POLLOUT),
            ("poll(0)", 0),
        ],
    )?;
    unpoll(c, &[12])
}

/// After the peer's RST: all events, 0 events, POLLOUT; then after a RECV
/// took the error.
pub fn poll_masks_reset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    peer_reset(c, fd, p, 1)?;
    polls(
        c,
        fd,
        10,
        &[
            ("poll(all)", ALL),
            ("poll(0)", 0),
            ("poll(OUT)", libc::POLLOUT),
        ],
    )?;
    recv(c, "recv", fd, 2, 64, 0, true)?;
    c.record(2);
    polls(
        c,
        fd,
        20,
        &[
            ("after the error: poll(all)", ALL),
            ("after the error: poll(0)", 0),
        ],
    )?;
    Ok(())
}

/// A poll with no events armed on an idle connection: it fires only with
/// POLLERR|POLLHUP when the peer resets.
pub fn poll_zero_events_reset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    poll(c, "poll(0)", fd, 1, 0)?;
    c.peer_send(p, b"data")?;
    c.quiet();
    c.record(1);
    send(c, "send(unread)", fd, 2, b"unread!!", 0, true)?;
    c.quiet();
    c.backend().peer_close(p);
    c.wait_final(1);
    c.record(1);
    Ok(())
}

/// A listener: POLLOUT (never ready), all events idle (pending), then with a
/// connection queued: POLLIN only.
pub fn poll_listener_masks(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(8)?;
    polls(
        c,
        l,
        10,
        &[
            ("poll(OUT)", libc::POLLOUT),
            ("poll(all)", ALL),
            ("poll(RDNORM)", libc::POLLRDNORM),
        ],
    )?;
    c.backend().peer_connect(l)?;
    c.quiet();
    c.record_all(&[10, 11, 12]);
    polls(
        c,
        l,
        20,
        &[
            ("queued: poll(all)", ALL),
            (
                "queued: poll(IN|OUT|ERR|HUP)",
                libc::POLLIN | libc::POLLOUT | libc::POLLERR | libc::POLLHUP,
            ),
        ],
    )?;
    unpoll(c, &[10])?;
    c.record(1010);
    Ok(())
}

/// POLLRDNORM / POLLWRNORM asked for alone: on an idle connection, readable,
/// after FIN.
pub fn poll_rdnorm_wrnorm(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    polls(
        c,
        fd,
        10,
        &[
            ("idle: poll(RDNORM)", libc::POLLRDNORM),
            ("idle: poll(WRNORM)", libc::POLLWRNORM),
        ],
    )?;
    c.peer_send(p, b"data")?;
    c.quiet();
    c.record(10);
    polls(
        c,
        fd,
        20,
        &[(
            "readable: poll(RDNORM|WRNORM|RDBAND)",
            libc::POLLRDNORM | libc::POLLWRNORM | libc::POLLRDBAND,
        )],
    )?;
    c.backend().peer_shutdown_write(p);
    c.quiet();
    polls(
        c,
        fd,
        30,
        &[(
            "after FIN: poll(RDNORM|RDHUP)",
            libc::POLLRDNORM | libc::POLLRDHUP,
        )],
    )?;
    Ok(())
}

/// Fills `fd`'s buffers with MSG_DONTWAIT SENDs until -EAGAIN (as an event
/// loop does), then arms a one-shot POLLOUT (`ud`) and records it.
fn full_then_pollout(c: &mut Ctx, fd: i32, ud: u64) -> R {
    let (_, fail) = super::net2::fill_until_fail(c, fd)?;
    c.line(format!(
        "sends end with -EAGAIN: {}",
        fail == Some(-libc::EAGAIN)
    ));
    poll(c, "poll(OUT)", fd, ud, libc::POLLOUT)?;
    c.quiet();
    c.record(ud);
    Ok(())
}

/// One-shot POLLOUT armed once MSG_DONTWAIT SENDs met -EAGAIN (what an
/// event loop does): pending; fires once the peer drains.
pub fn poll_oneshot_pollout_fill(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    full_then_pollout(c, fd, 2)?;
    c.backend().peer_start_reading(p);
    c.wait_final(2);
    c.record(2);
    Ok(())
}

/// A multishot POLL_ADD of `events`, submitted.
fn multi_poll(c: &mut Ctx, name: &str, fd: i32, ud: u64, events: i16) -> R {
    let s = opcode::PollAdd::new(fd, events as u16 as u32)
        .multi()
        .user_data(ud)
        .build();
    c.submit_one_safe(name, s)
}

/// Records the multishot poll 1's CQEs, removes it (user_data 3) and
/// records the order of the last CQEs.
fn remove_multi_poll(c: &mut Ctx) -> R {
    c.record(1);
    let s = opcode::PollRemove::new(1).user_data(3).build();
    c.submit_one_safe("poll_remove", s)?;
    c.wait_finals(&[1, 3]);
    c.record_order(&[1, 3]);
    Ok(())
}

/// Multishot POLLIN across the peer's RST: the CQEs, then POLL_REMOVE.
pub fn poll_multishot_reset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    multi_poll(c, "poll(IN, multi)", fd, 1, libc::POLLIN)?;
    c.quiet();
    send(c, "send(unread)", fd, 2, b"unread!!", 0, true)?;
    c.quiet();
    c.backend().peer_close(p);
    c.wait_n(1, 1);
    remove_multi_poll(c)
}

/// Multishot POLLIN|POLLRDHUP: data (unread), then the peer's FIN, then
/// POLL_REMOVE.
pub fn poll_multishot_fin(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    multi_poll(
        c,
        "poll(IN|RDHUP, multi)",
        fd,
        1,
        libc::POLLIN | libc::POLLRDHUP,
    )?;
    c.peer_send(p, b"data")?;
    c.wait_n(1, 1);
    c.backend().peer_shutdown_write(p);
    c.wait_n(1, 2);
    remove_multi_poll(c)
}

/// A multishot POLLIN updated (IORING_POLL_UPDATE_EVENTS) to POLLOUT, then
/// to POLLIN under a new user_data (UPDATE_USER_DATA too): it stays
/// multishot; then removed under the new user_data.
pub fn poll_update_multishot(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    multi_poll(c, "poll(IN, multi)", fd, 1, libc::POLLIN)?;
    c.quiet();
    call_safe(
        c,
        "update(events OUT)",
        opcode::PollRemove::new(1)
            .update_events(libc::POLLOUT as u32)
            .user_data(2)
            .build(),
    )?;
    c.quiet();
    c.record_order(&[1, 2]);
    call_safe(
        c,
        "update(events IN, user_data 7)",
        opcode::PollRemove::new(1)
            .update_events(libc::POLLIN as u32)
            .update_user_data(7)
            .user_data(3)
            .build(),
    )?;
    c.alias(7, "poll(updated)", abi::IORING_OP_POLL_ADD);
    c.quiet();
    c.record(3);
    c.peer_send(p, b"data")?;
    c.wait_n(7, 1);
    c.record(7);
    call_safe(
        c,
        "poll_remove(old user_data)",
        opcode::PollRemove::new(1).user_data(4).build(),
    )?;
    c.record(4);
    call_safe(
        c,
        "poll_remove(7)",
        opcode::PollRemove::new(7).user_data(5).build(),
    )?;
    c.wait_final(7);
    c.record_all(&[5, 7]);
    Ok(())
}

/// POLL_REMOVE updates on a poll that already completed, and a one-shot
/// POLLIN updated to POLLOUT and a new user_data at once.
pub fn poll_update_both(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    call_safe(
        c,
        "poll(OUT)",
        opcode::PollAdd::new(fd, libc::POLLOUT as u32)
            .user_data(1)
            .build(),
    )?;
    call_safe(
        c,
        "update(completed poll)",
        opcode::PollRemove::new(1)
            .update_events(libc::POLLIN as u32)
            .user_data(2)
            .build(),
    )?;
    c.record_all(&[1, 2]);
    poll(c, "poll(IN)", fd, 3, libc::POLLIN)?;
    c.quiet();
    call_safe(
        c,
        "update(events OUT, user_data 9)",
        opcode::PollRemove::new(3)
            .update_events(libc::POLLOUT as u32)
            .update_user_data(9)
            .user_data(4)
            .build(),
    )?;
    c.alias(9, "poll(updated)", abi::IORING_OP_POLL_ADD);
    c.wait_final(9);
    c.record_order(&[3, 4, 9]);
    Ok(())
}

/// POLLIN pending when the app shuts down its reading side; POLLIN|RDHUP
/// pending when the peer closes (FIN).
pub fn poll_pending_shutdowns(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    poll(c, "poll(IN)", fd, 1, libc::POLLIN)?;
    c.quiet();
    shutdown(c, "shutdown(RD)", fd, 2, libc::SHUT_RD)?;
    c.wait_final(1);
    c.record_order(&[1, 2]);
    poll(c, "poll(IN|RDHUP)", fd, 3, libc::POLLIN | libc::POLLRDHUP)?;
    c.quiet();
    c.record(3);
    let (fd2, p2) = c.backend().app_conn()?;
    poll(
        c,
        "peer FIN: poll(IN|RDHUP)",
        fd2,
        4,
        libc::POLLIN | libc::POLLRDHUP,
    )?;
    poll(c, "peer FIN: poll(OUT)", fd2, 5, libc::POLLOUT)?;
    c.quiet();
    c.backend().peer_close(p2);
    c.wait_final(4);
    c.record_all(&[4, 5]);
    let _ = p;
    Ok(())
}

/// A multishot RECV armed on an empty socket when the app does SHUT_RD:
/// how it ends; then the peer's data is still readable by a RECV.
pub fn recv_multishot_shut_rd(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.buf_ring(7, 8, 512, 8)
        .map_err(|e| format!("buf ring {e}"))?;
    c.submit_one_safe(
        "recv(multishot)",
        opcode::RecvMulti::new(fd, 7).user_data(1).build(),
    )?;
    c.quiet();
    shutdown(c, "shutdown(RD)", fd, 2, libc::SHUT_RD)?;
    c.wait_final(1);
    c.record_order(&[1, 2]);
    c.peer_send(p, b"late")?;
    c.quiet();
    recv(c, "recv", fd, 3, 64, 0, true)?;
    c.record(3);
    Ok(())
}

/// After the peer's FIN: RECV with MSG_DONTWAIT, MSG_PEEK, MSG_TRUNC,
/// MSG_PEEK|MSG_DONTWAIT: 0 each.
pub fn recv_flags_after_fin(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_shutdown_write(p);
    c.quiet();
    let cases = [
        ("recv(DONTWAIT)", libc::MSG_DONTWAIT),
        ("recv(PEEK)", libc::MSG_PEEK),
        ("recv(TRUNC)", libc::MSG_TRUNC),
        ("recv(PEEK|DONTWAIT)", libc::MSG_PEEK | libc::MSG_DONTWAIT),
    ];
    for (i, (name, f)) in cases.into_iter().enumerate() {
        recv(c, name, fd, i as u64 + 1, 64, f, true)?;
    }
    c.record_all(&[1, 2, 3, 4]);
    Ok(())
}

/// A one-shot POLLOUT waiting on a full send buffer when the app does
/// SHUT_WR: a shut write side reads as writable, so it fires.
pub fn poll_pollout_full_then_shut_wr(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    full_then_pollout(c, fd, 1)?;
    shutdown(c, "shutdown(WR)", fd, 2, libc::SHUT_WR)?;
    c.wait_final(1);
    c.record_order(&[1, 2]);
    Ok(())
}

/// CLOSE with a one-shot POLLOUT waiting on a full send buffer: the poll
/// keeps the socket open and fires once the peer drains it.
pub fn close_with_pollout_pending(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    full_then_pollout(c, fd, 1)?;
    super::net2::close(c, "close", fd, 2)?;
    c.quiet();
    c.record_order(&[1, 2]);
    c.backend().peer_start_reading(p);
    c.wait_final(1);
    c.record(1);
    Ok(())
}

/// The peer connects, sends 20 B and closes before the app accepts: ACCEPT
/// still returns the connection, RECV gets the bytes, then 0.
pub fn accept_after_peer_close(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(8)?;
    let p = c.backend().peer_connect(l)?;
    let data = pattern(20, 94);
    c.peer_send(p, &data)?;
    c.backend().peer_close(p);
    c.quiet();
    let a = call_safe(
        c,
        "accept",
        opcode::AcceptNoAddr::new(l).user_data(1).build(),
    )?;
    c.record(1);
    let buf = recv(c, "recv", a.res, 2, 64, libc::MSG_WAITALL, true)?;
    c.record(2);
    record_mem(c, "recv content", buf, &data, c.cqes(2)[0].res);
    recv(c, "recv", a.res, 3, 64, 0, true)?;
    c.record(3);
    Ok(())
}
