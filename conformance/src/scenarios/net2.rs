//! The socket data path, wide (part 1): CONNECT, SHUTDOWN, CLOSE with
//! requests in flight, SEND/SENDMSG variants. Part 2 (RECV/RECVMSG variants,
//! POLL masks per socket state) is `net3`.
//!
//! The helpers here allocate the memory an SQE names themselves (context
//! memory, alive until the context drops, after the backend), so scenarios
//! stay free of `unsafe`.

use ringline_ring::abi::{self, Cqe, Sqe};
use ringline_ring::opcode;

use super::send::record_peer;
use super::{call, call_safe, pattern, raw, socket, R};
use crate::backend::PeerId;
use crate::Ctx;

/// Submits `sqe` and, when `wait`, waits for its final CQE.
///
/// # Safety
///
/// As [`Ctx::push`]: the memory `sqe` names is context memory.
unsafe fn go(c: &mut Ctx, name: &str, sqe: Sqe, wait: bool) -> R {
    let ud = sqe.user_data;
    // SAFETY: the caller upholds `push`'s contract (this function's).
    unsafe { c.submit_one(name, sqe) }?;
    if wait {
        c.wait_final(ud);
    }
    Ok(())
}

/// A RECV of up to `len` bytes with `flags` into fresh context memory.
pub(super) fn recv(
    c: &mut Ctx,
    name: &str,
    fd: i32,
    ud: u64,
    len: u32,
    flags: i32,
    wait: bool,
) -> Result<*mut u8, String> {
    let buf = c.mem(len as usize);
    let s = opcode::Recv::new(fd, buf, len)
        .flags(flags)
        .user_data(ud)
        .build();
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe { go(c, name, s, wait) }?;
    Ok(buf)
}

/// A SEND of a context copy of `data` with `flags`.
pub(super) fn send(
    c: &mut Ctx,
    name: &str,
    fd: i32,
    ud: u64,
    data: &[u8],
    flags: i32,
    wait: bool,
) -> R {
    let d = c.bytes(data);
    let s = opcode::Send::new(fd, d, data.len() as u32)
        .flags(flags)
        .user_data(ud)
        .build();
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe { go(c, name, s, wait) }
}

/// A msghdr over iovecs of context memory of `lens` bytes (`fill` copied in
/// order across them when given); returns it and the iovec bases.
pub(super) fn msghdr(
    c: &mut Ctx,
    lens: &[usize],
    fill: Option<&[u8]>,
) -> (*mut libc::msghdr, Vec<*mut u8>) {
    let mut bases = Vec::new();
    let mut iovs = Vec::new();
    let mut at = 0;
    for &n in lens {
        let p = match fill {
            Some(d) => c.bytes(&d[at..at + n]).cast_mut(),
            None => c.mem(n),
        };
        at += n;
        bases.push(p);
        iovs.push(libc::iovec {
            iov_base: p.cast(),
            iov_len: n,
        });
    }
    let iov = c.keep(iovs);
    // SAFETY: `iov` points at a live Vec kept by the context.
    let iov_ptr = unsafe { (*iov).as_mut_ptr() };
    // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = if lens.is_empty() {
        std::ptr::null_mut()
    } else {
        iov_ptr
    };
    mh.msg_iovlen = lens.len();
    (c.keep(mh), bases)
}

/// A SENDMSG or RECVMSG (`op` on `fd`, user_data `ud`) of the msghdr `mh` (context memory) with `flags`.
pub(super) fn msg_op(
    c: &mut Ctx,
    name: &str,
    (op, fd, ud): (u8, i32, u64),
    mh: *mut libc::msghdr,
    flags: u32,
    wait: bool,
) -> R {
    let mut s = raw(op, fd, ud);
    s.addr = mh as u64;
    s.len = 1;
    s.op_flags = flags;
    // SAFETY: `mh`, its iovecs and buffers are context memory (from `msghdr`), alive until the
    // context drops, after the backend.
    unsafe { go(c, name, s, wait) }
}

/// A SENDMSG of `data` split into iovecs of `lens`.
pub(super) fn sendmsg(
    c: &mut Ctx,
    name: &str,
    fd: i32,
    ud: u64,
    data: &[u8],
    lens: &[usize],
    flags: i32,
) -> R {
    let (mh, _) = msghdr(c, lens, Some(data));
    msg_op(
        c,
        name,
        (abi::IORING_OP_SENDMSG, fd, ud),
        mh,
        flags as u32,
        true,
    )
}

/// A CONNECT of `fd` to `sa` with `addrlen`, waited for.
pub(super) fn connect(
    c: &mut Ctx,
    name: &str,
    fd: i32,
    ud: u64,
    sa: libc::sockaddr_in,
    addrlen: u32,
) -> Result<Cqe, String> {
    let sa = c.sockaddr(sa);
    // SAFETY: `sa` is context memory, alive until the context drops, after the backend.
    unsafe {
        call(
            c,
            name,
            opcode::Connect::new(fd, sa, addrlen).user_data(ud).build(),
        )
    }
}

/// An SQE of `op` on `fd` naming no memory, waited for.
pub(super) fn plain(c: &mut Ctx, name: &str, op: u8, fd: i32, ud: u64) -> R {
    // SAFETY: the SQE names no memory (addr and len are zero).
    unsafe { go(c, name, raw(op, fd, ud), true) }
}

pub(super) fn shutdown(c: &mut Ctx, name: &str, fd: i32, ud: u64, how: i32) -> R {
    call_safe(
        c,
        name,
        opcode::Shutdown::new(fd, how).user_data(ud).build(),
    )?;
    Ok(())
}

pub(super) fn close(c: &mut Ctx, name: &str, fd: i32, ud: u64) -> R {
    call_safe(c, name, opcode::Close::new(fd).user_data(ud).build())?;
    Ok(())
}

/// One-shot POLL_ADD of `events`, submitted (not waited for).
pub(super) fn poll(c: &mut Ctx, name: &str, fd: i32, ud: u64, events: i16) -> R {
    c.submit_one_safe(
        name,
        opcode::PollAdd::new(fd, events as u16 as u32)
            .user_data(ud)
            .build(),
    )
}

/// How a reading peer's stream ended.
pub(super) fn end_word(rx: &crate::backend::PeerRx) -> String {
    match (rx.eof, rx.error) {
        (true, _) => "EOF".into(),
        (_, Some(e)) => crate::errno_name(e),
        _ => "nothing".into(),
    }
}

/// Waits for the reading peer's end and records `label: N B then END`.
pub(super) fn peer_end(c: &mut Ctx, label: &str, p: PeerId) {
    let rx = c.peer_wait_end(p);
    c.line(format!(
        "{label}: {} B then {}",
        rx.data.len(),
        end_word(&rx)
    ));
}

/// The peer resets the connection: the app sends bytes the peer never reads,
/// then the peer closes (RST). `ud` names the app's SEND.
pub(super) fn peer_reset(c: &mut Ctx, fd: i32, p: PeerId, ud: u64) -> R {
    send(c, "send(unread)", fd, ud, b"unread!!", 0, true)?;
    c.quiet();
    c.backend().peer_close(p);
    c.quiet();
    Ok(())
}

/// An app socket connected through CONNECT to a peer listener (socket `ud`,
/// connect `ud + 1`, both recorded).
pub(super) fn connected(c: &mut Ctx, ud: u64) -> Result<(i32, PeerId), String> {
    let (l, sa) = c.backend().peer_listen()?;
    let fd = socket(c, "socket", ud)?;
    connect(c, "connect", fd, ud + 1, sa, 16)?;
    c.record(ud + 1);
    accept_peer(c, l).map(|p| (fd, p))
}

fn accept_peer(c: &mut Ctx, l: crate::backend::PeerListenerId) -> Result<PeerId, String> {
    let mut peer = None;
    c.pump_until(|b| {
        peer = b.peer_accept(l);
        peer.is_some()
    });
    peer.ok_or_else(|| "the peer never accepted".to_string())
}

// ----------------------------------------------------------------------
// CONNECT
// ----------------------------------------------------------------------

/// CONNECT linked (IOSQE_IO_LINK) to a SEND in one submission: the SEND runs
/// once connected and the peer gets the bytes.
pub fn connect_link_send(c: &mut Ctx) -> R {
    let (l, sa) = c.backend().peer_listen()?;
    let fd = socket(c, "socket", 1)?;
    let sa = c.sockaddr(sa);
    let data = pattern(100, 60);
    let d = c.bytes(&data);
    let conn = opcode::Connect::new(fd, sa, 16)
        .user_data(2)
        .sqe_flags(abi::IOSQE_IO_LINK)
        .build();
    // SAFETY: `sa` and `d` are context memory, alive until the context drops, after the backend.
    unsafe {
        c.push("connect(LINK)", conn)?;
        c.push("send", opcode::Send::new(fd, d, 100).user_data(3).build())?;
    }
    c.submit();
    let p = accept_peer(c, l)?;
    c.wait_finals(&[2, 3]);
    c.record_order(&[2, 3]);
    c.backend().peer_start_reading(p);
    let got = c.peer_wait(p, 100);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

/// CONNECT refused, then a retry on the same socket to a listening peer
/// succeeds and carries data.
pub fn connect_refused_retry(c: &mut Ctx) -> R {
    let fd = socket(c, "socket", 1)?;
    let bad = c.backend().refused_addr();
    connect(c, "connect(refused)", fd, 2, bad, 16)?;
    c.record(2);
    let (l, sa) = c.backend().peer_listen()?;
    connect(c, "connect(retry)", fd, 3, sa, 16)?;
    c.record(3);
    let p = accept_peer(c, l)?;
    c.backend().peer_start_reading(p);
    let data = pattern(20, 61);
    send(c, "send", fd, 4, &data, 0, true)?;
    c.record(4);
    let got = c.peer_wait(p, 20);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

/// After a refused CONNECT: SEND, RECV, SHUTDOWN and a POLL on the socket.
pub fn connect_refused_then_ops(c: &mut Ctx) -> R {
    let fd = socket(c, "socket", 1)?;
    let bad = c.backend().refused_addr();
    connect(c, "connect(refused)", fd, 2, bad, 16)?;
    send(c, "send", fd, 3, b"abc", 0, true)?;
    recv(c, "recv", fd, 4, 16, 0, true)?;
    shutdown(c, "shutdown(WR)", fd, 5, libc::SHUT_WR)?;
    poll(c, "poll(IN|OUT)", fd, 6, libc::POLLIN | libc::POLLOUT)?;
    c.quiet();
    c.record_all(&[2, 3, 4, 5, 6]);
    Ok(())
}

/// CONNECT argument checks: addrlen 8, 0 and 17; a family other than AF_INET;
/// a null address; then a good CONNECT.
pub fn connect_bad_args(c: &mut Ctx) -> R {
    let (l, sa) = c.backend().peer_listen()?;
    let fd = socket(c, "socket", 1)?;
    connect(c, "connect(addrlen 8)", fd, 2, sa, 8)?;
    connect(c, "connect(addrlen 0)", fd, 3, sa, 0)?;
    let mut unix = sa;
    unix.sin_family = libc::AF_UNIX as libc::sa_family_t;
    connect(c, "connect(AF_UNIX family)", fd, 4, unix, 16)?;
    // SAFETY: a null address is never dereferenced by either backend (a fault to report).
    unsafe {
        call(
            c,
            "connect(null)",
            opcode::Connect::new(fd, std::ptr::null(), 16)
                .user_data(5)
                .build(),
        )
    }?;
    c.record_all(&[2, 3, 4, 5]);
    connect(c, "connect", fd, 6, sa, 16)?;
    c.record(6);
    accept_peer(c, l)?;
    Ok(())
}

/// CONNECT with AF_UNSPEC on a fresh socket (a disconnect of nothing).
pub fn connect_unspec_fresh(c: &mut Ctx) -> R {
    let fd = socket(c, "socket", 1)?;
    let mut sa = c.backend().refused_addr();
    sa.sin_family = libc::AF_UNSPEC as libc::sa_family_t;
    connect(c, "connect(AF_UNSPEC)", fd, 2, sa, 16)?;
    c.record(2);
    Ok(())
}

/// A SOCKET made with SOCK_NONBLOCK: CONNECT still completes once connected
/// (io_uring does not fail it with -EINPROGRESS), RECV waits for data.
pub fn connect_nonblock_socket(c: &mut Ctx) -> R {
    let (l, sa) = c.backend().peer_listen()?;
    let cqe = call_safe(
        c,
        "socket(SOCK_NONBLOCK)",
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0)
            .user_data(1)
            .build(),
    )?;
    c.record(1);
    let fd = cqe.res;
    connect(c, "connect", fd, 2, sa, 16)?;
    c.record(2);
    let p = accept_peer(c, l)?;
    recv(c, "recv", fd, 3, 64, 0, false)?;
    c.quiet();
    c.record(3);
    c.peer_send(p, &pattern(10, 62))?;
    c.wait_final(3);
    c.record(3);
    Ok(())
}

/// CONNECT on a socket already connected through CONNECT, then on one the
/// app accepted: -EISCONN both; the connection still works.
pub fn connect_isconn(c: &mut Ctx) -> R {
    let (fd, p) = connected(c, 1)?;
    let (_, sa) = c.backend().peer_listen()?;
    connect(c, "connect(connected)", fd, 3, sa, 16)?;
    c.record(3);
    let (afd, _ap) = c.backend().app_conn()?;
    connect(c, "connect(accepted)", afd, 4, sa, 16)?;
    c.record(4);
    c.backend().peer_start_reading(p);
    send(c, "send", fd, 5, b"still", 0, true)?;
    c.record(5);
    let got = c.peer_wait(p, 5);
    record_peer(c, "peer received", &got, b"still", true);
    Ok(())
}

// ----------------------------------------------------------------------
// SHUTDOWN
// ----------------------------------------------------------------------

/// SHUT_RDWR: the peer sees EOF, RECV returns 0, SEND fails.
pub fn shutdown_rdwr(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    shutdown(c, "shutdown(RDWR)", fd, 1, libc::SHUT_RDWR)?;
    c.record(1);
    peer_end(c, "peer", p);
    recv(c, "recv", fd, 2, 64, 0, true)?;
    send(c, "send", fd, 3, b"late", 0, true)?;
    c.record_all(&[2, 3]);
    Ok(())
}

/// SHUTDOWN with `how` 3, -1 and 100: -EINVAL, the connection unaffected
/// (a SEND arrives); then SHUT_WR works.
pub fn shutdown_bad_how(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    shutdown(c, "shutdown(3)", fd, 1, 3)?;
    shutdown(c, "shutdown(-1)", fd, 2, -1)?;
    shutdown(c, "shutdown(100)", fd, 3, 100)?;
    c.record_all(&[1, 2, 3]);
    send(c, "send", fd, 4, b"hello", 0, true)?;
    c.record(4);
    shutdown(c, "shutdown(WR)", fd, 5, libc::SHUT_WR)?;
    c.record(5);
    peer_end(c, "peer", p);
    Ok(())
}

/// SHUT_WR twice, SHUT_RD twice, then SHUT_RDWR: all succeed.
pub fn shutdown_twice(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    shutdown(c, "shutdown(WR)", fd, 1, libc::SHUT_WR)?;
    shutdown(c, "shutdown(WR) again", fd, 2, libc::SHUT_WR)?;
    shutdown(c, "shutdown(RD)", fd, 3, libc::SHUT_RD)?;
    shutdown(c, "shutdown(RD) again", fd, 4, libc::SHUT_RD)?;
    shutdown(c, "shutdown(RDWR)", fd, 5, libc::SHUT_RDWR)?;
    c.record_all(&[1, 2, 3, 4, 5]);
    peer_end(c, "peer", p);
    Ok(())
}

/// SHUTDOWN on a listener: SHUT_WR leaves it listening (a pending ACCEPT
/// still takes a connection); SHUT_RD stops it: the pending ACCEPT ends,
/// a new ACCEPT fails.
pub fn shutdown_listener(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(8)?;
    c.submit_one_safe("accept", opcode::AcceptNoAddr::new(l).user_data(1).build())?;
    shutdown(c, "shutdown(listener, WR)", l, 2, libc::SHUT_WR)?;
    c.record(2);
    c.backend().peer_connect(l)?;
    c.wait_final(1);
    c.record(1);
    c.submit_one_safe(
        "accept 2",
        opcode::AcceptNoAddr::new(l).user_data(3).build(),
    )?;
    c.quiet();
    shutdown(c, "shutdown(listener, RD)", l, 4, libc::SHUT_RD)?;
    c.wait_final(3);
    c.record_all(&[3, 4]);
    call_safe(
        c,
        "accept 3",
        opcode::AcceptNoAddr::new(l).user_data(5).build(),
    )?;
    c.record(5);
    Ok(())
}

/// Half-close echo: the peer sends a request and shuts down its side; the
/// app reads to EOF, echoes the request and shuts down; the peer reads it all
/// then EOF.
pub fn shutdown_half_close_echo(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let req = pattern(300, 63);
    c.peer_send(p, &req)?;
    c.backend().peer_shutdown_write(p);
    c.quiet();
    let mut got = Vec::new();
    let mut ud = 10;
    loop {
        let buf = recv(c, "recv", fd, ud, 4096, 0, true)?;
        let n = c.cqes(ud).last().map_or(-1, |x| x.res);
        if n <= 0 || ud > 20 {
            c.line(format!("recv loop ended with {}", c.token(&c.cqes(ud)[0])));
            break;
        }
        got.extend(c.read_mem(buf, n as usize));
        ud += 1;
    }
    c.line(format!("app read the request: {}", got == req));
    send(c, "echo", fd, 30, &got, 0, true)?;
    c.record(30);
    shutdown(c, "shutdown(WR)", fd, 31, libc::SHUT_WR)?;
    c.record(31);
    let rx = c.peer_wait_end(p);
    record_peer(c, "peer received", &rx, &req, true);
    c.line(format!("peer then: {}", end_word(&rx)));
    Ok(())
}

/// SHUT_RD, then the peer sends: what RECV sees afterwards.
pub fn shutdown_rd_then_data(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    shutdown(c, "shutdown(RD)", fd, 1, libc::SHUT_RD)?;
    c.record(1);
    c.peer_send(p, &pattern(10, 64))?;
    c.quiet();
    recv(c, "recv", fd, 2, 64, 0, true)?;
    recv(c, "recv again", fd, 3, 64, 0, true)?;
    c.record_all(&[2, 3]);
    Ok(())
}

/// After SHUT_WR: SEND, SENDMSG, WRITE, WRITEV and SEND_ZC all fail.
pub fn shutdown_wr_then_sends(c: &mut Ctx) -> R {
    let (fd, _p) = c.backend().app_conn()?;
    shutdown(c, "shutdown(WR)", fd, 1, libc::SHUT_WR)?;
    write_family(c, fd, 2)?;
    c.record_all(&[1, 2, 3, 4, 5, 6]);
    Ok(())
}

/// SEND, SENDMSG, WRITE, WRITEV and SEND_ZC of 4 B each (user_data `ud..ud+5`), in turn.
fn write_family(c: &mut Ctx, fd: i32, ud: u64) -> R {
    let d = c.bytes(b"late");
    send(c, "send", fd, ud, b"late", 0, true)?;
    sendmsg(c, "sendmsg", fd, ud + 1, b"late", &[4], 0)?;
    let mut s = raw(abi::IORING_OP_WRITE, fd, ud + 2);
    s.addr = d as u64;
    s.len = 4;
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe { go(c, "write", s, true) }?;
    let (mh, _) = msghdr(c, &[4], Some(b"late"));
    // SAFETY: `mh` is context memory from `msghdr`.
    let iov = unsafe { (*mh).msg_iov };
    let mut s = raw(abi::IORING_OP_WRITEV, fd, ud + 3);
    s.addr = iov as u64;
    s.len = 1;
    // SAFETY: the iovec array and its buffer are context memory, alive until the context
    // drops, after the backend.
    unsafe { go(c, "writev", s, true) }?;
    let mut s = raw(abi::IORING_OP_SEND_ZC, fd, ud + 4);
    s.addr = d as u64;
    s.len = 4;
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe { go(c, "send_zc", s, true) }?;
    c.quiet();
    Ok(())
}

/// After the peer's RST: WRITEV, SENDMSG, SEND, WRITE, SEND_ZC; then RECV.
pub fn reset_then_sends(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    peer_reset(c, fd, p, 1)?;
    write_family(c, fd, 2)?;
    c.record_all(&[1, 2, 3, 4, 5, 6]);
    recv(c, "recv", fd, 7, 64, 0, true)?;
    c.record(7);
    Ok(())
}

/// After the peer's FIN: RECV returns 0 again and again (plain, WAITALL,
/// RECVMSG, READ); SEND still works and the peer reads it.
pub fn fin_then_recv_repeated(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    c.peer_send(p, b"last")?;
    c.backend().peer_shutdown_write(p);
    c.quiet();
    recv(c, "recv", fd, 1, 64, 0, true)?;
    recv(c, "recv", fd, 2, 64, 0, true)?;
    recv(c, "recv", fd, 3, 64, 0, true)?;
    recv(c, "recv(WAITALL)", fd, 4, 64, libc::MSG_WAITALL, true)?;
    let (mh, _) = msghdr(c, &[64], None);
    msg_op(c, "recvmsg", (abi::IORING_OP_RECVMSG, fd, 5), mh, 0, true)?;
    let buf = c.mem(64);
    let mut s = raw(abi::IORING_OP_READ, fd, 6);
    s.addr = buf as u64;
    s.len = 64;
    // SAFETY: `buf` is context memory, alive until the context drops, after the backend.
    unsafe { go(c, "read", s, true) }?;
    c.record_all(&[1, 2, 3, 4, 5, 6]);
    let data = pattern(50, 65);
    send(c, "send after the peer's FIN", fd, 7, &data, 0, true)?;
    c.record(7);
    let got = c.peer_wait(p, 50);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

// ----------------------------------------------------------------------
// CLOSE
// ----------------------------------------------------------------------

/// CLOSE with the peer's bytes unread: the peer sees a reset, not EOF.
pub fn close_unread_rst(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.peer_send(p, &pattern(10, 66))?;
    c.quiet();
    c.backend().peer_start_reading(p);
    close(c, "close", fd, 1)?;
    c.record(1);
    peer_end(c, "peer", p);
    Ok(())
}

/// SEND then CLOSE with everything read: the peer reads the bytes then EOF.
pub fn close_clean_fin(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(5000, 67);
    send(c, "send", fd, 1, &data, 0, true)?;
    close(c, "close", fd, 2)?;
    c.record_all(&[1, 2]);
    let rx = c.peer_wait_end(p);
    record_peer(c, "peer received", &rx, &data, true);
    c.line(format!("peer then: {}", end_word(&rx)));
    Ok(())
}

/// After CLOSE: RECV, SEND, POLL_ADD, SHUTDOWN, CONNECT and CLOSE on the number.
pub fn close_then_ops(c: &mut Ctx) -> R {
    let fd = socket(c, "socket", 1)?;
    close(c, "close", fd, 2)?;
    recv(c, "recv", fd, 3, 16, 0, true)?;
    send(c, "send", fd, 4, b"x", 0, true)?;
    call_safe(
        c,
        "poll(IN)",
        opcode::PollAdd::new(fd, libc::POLLIN as u32)
            .user_data(5)
            .build(),
    )?;
    shutdown(c, "shutdown", fd, 6, libc::SHUT_RDWR)?;
    let sa = c.backend().refused_addr();
    connect(c, "connect", fd, 7, sa, 16)?;
    close(c, "close again", fd, 8)?;
    c.record_all(&[2, 3, 4, 5, 6, 7, 8]);
    Ok(())
}

/// CLOSE of a listener with two connections queued and nothing pending on
/// it: both peers see a reset.
pub fn close_listener_queued(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(8)?;
    let p1 = c.backend().peer_connect(l)?;
    let p2 = c.backend().peer_connect(l)?;
    c.backend().peer_start_reading(p1);
    c.backend().peer_start_reading(p2);
    c.quiet();
    close(c, "close(listener)", l, 1)?;
    c.record(1);
    peer_end(c, "peer 1", p1);
    peer_end(c, "peer 2", p2);
    Ok(())
}

/// A 16 MiB MSG_WAITALL SEND (user_data 1) to a peer that does not read,
/// left waiting: of `pattern(_, seed)` (returned), or of zeroes without a
/// seed (nothing to check, nothing to compute).
fn waitall_send(c: &mut Ctx, fd: i32, seed: Option<u8>) -> Result<Vec<u8>, String> {
    let len = 16usize << 20;
    let (d, data) = match seed {
        Some(k) => {
            let data = pattern(len, k);
            (c.bytes(&data), data)
        }
        None => (c.mem(len).cast_const(), Vec::new()),
    };
    let s = opcode::Send::new(fd, d, len as u32)
        .flags(libc::MSG_WAITALL)
        .user_data(1)
        .build();
    // SAFETY: `d` is context memory, alive until the context drops, after the backend.
    unsafe { go(c, "send(16 MiB, WAITALL)", s, false) }?;
    c.quiet();
    Ok(data)
}

/// Waits for the [`waitall_send`]'s end and records `label: CLASS` (an
/// errno, some, or all); returns the bytes it counted.
fn waitall_send_end(c: &mut Ctx, label: &str) -> usize {
    c.wait_final(1);
    let r = c.cqes(1).last().map_or(i32::MIN, |x| x.res);
    let class = if r < 0 {
        format!("-{}", crate::errno_name(-r))
    } else if r < 16 << 20 {
        "some (0 < res < len)".into()
    } else {
        "all".into()
    };
    c.line(format!("{label}: {class}"));
    r.max(0) as usize
}

/// CLOSE while a 16 MiB MSG_WAITALL SEND waits; the peer then closes without
/// reading (RST): the SEND ends with the count it moved (some, not all).
pub fn close_send_then_peer_reset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    waitall_send(c, fd, None)?;
    close(c, "close", fd, 2)?;
    c.record(2);
    c.backend().peer_close(p);
    waitall_send_end(c, "send(16 MiB, WAITALL)");
    Ok(())
}

/// CLOSE with a one-shot ACCEPT pending on a listener: the ACCEPT still takes
/// the next connection; then a second ACCEPT on the closed number.
pub fn close_listener_oneshot_accept(c: &mut Ctx) -> R {
    let l = c.backend().app_listener(8)?;
    c.submit_one_safe("accept", opcode::AcceptNoAddr::new(l).user_data(1).build())?;
    c.quiet();
    close(c, "close(listener)", l, 2)?;
    c.record_order(&[1, 2]);
    let r = c.backend().peer_connect(l);
    c.line(format!(
        "peer connect: {}",
        if r.is_ok() { "connected" } else { "failed" }
    ));
    c.wait_final(1);
    c.record(1);
    call_safe(
        c,
        "accept(closed number)",
        opcode::AcceptNoAddr::new(l).user_data(3).build(),
    )?;
    c.record(3);
    Ok(())
}

// ----------------------------------------------------------------------
// SEND / SENDMSG
// ----------------------------------------------------------------------

/// SEND of 100 B with MSG_WAITALL, with MSG_MORE then without, with
/// MSG_NOSIGNAL|MSG_DONTWAIT, with MSG_CONFIRM: each sends it all.
pub fn send_flag_variants(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(500, 69);
    let cases = [
        ("send(WAITALL)", libc::MSG_WAITALL),
        ("send(MORE)", libc::MSG_MORE),
        ("send(after MORE)", 0),
        (
            "send(NOSIGNAL|DONTWAIT)",
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        ),
        ("send(MSG_CONFIRM)", libc::MSG_CONFIRM),
    ];
    for (i, (name, f)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        send(c, name, fd, ud, &data[i * 100..(i + 1) * 100], f, true)?;
        c.record(ud);
    }
    let got = c.peer_wait(p, 500);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

/// SENDMSG with the same flags and iovec shapes: 1 iovec, 3, 7 with empty
/// ones among them; every byte in order.
pub fn sendmsg_flag_variants(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(300, 70);
    sendmsg(
        c,
        "sendmsg(WAITALL, 1 iov)",
        fd,
        1,
        &data[..100],
        &[100],
        libc::MSG_WAITALL,
    )?;
    sendmsg(
        c,
        "sendmsg(MORE, 3 iovs)",
        fd,
        2,
        &data[100..200],
        &[10, 40, 50],
        libc::MSG_MORE,
    )?;
    sendmsg(
        c,
        "sendmsg(NOSIGNAL, 7 iovs with empties)",
        fd,
        3,
        &data[200..],
        &[0, 30, 0, 0, 50, 20, 0],
        libc::MSG_NOSIGNAL,
    )?;
    c.record_all(&[1, 2, 3]);
    let got = c.peer_wait(p, 300);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

/// SENDMSG iovec counts: 0, 1024 (UIO_MAXIOV) of 1 B, 1025 (-EMSGSIZE), a null
/// iovec array with a count; only the accepted bytes arrive.
pub fn sendmsg_iov_counts(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let (mh, _) = msghdr(c, &[], None);
    msg_op(
        c,
        "sendmsg(0 iovecs)",
        (abi::IORING_OP_SENDMSG, fd, 1),
        mh,
        0,
        true,
    )?;
    let data = pattern(1025, 71);
    sendmsg(
        c,
        "sendmsg(1024 iovecs)",
        fd,
        2,
        &data[..1024],
        &[1; 1024],
        0,
    )?;
    sendmsg(c, "sendmsg(1025 iovecs)", fd, 3, &data, &[1; 1025], 0)?;
    let (mh, _) = msghdr(c, &[], None);
    // SAFETY: `mh` is context memory from `msghdr`; a null array is only faulted on.
    unsafe { (*mh).msg_iovlen = 2 };
    msg_op(
        c,
        "sendmsg(null iovecs, 2)",
        (abi::IORING_OP_SENDMSG, fd, 4),
        mh,
        0,
        true,
    )?;
    c.record_all(&[1, 2, 3, 4]);
    let got = c.peer_wait(p, 1024);
    c.quiet();
    let got = {
        let mut g = got;
        g.data.extend(
            c.backend()
                .peer_rx(p)
                .data
                .get(g.data.len()..)
                .unwrap_or(&[]),
        );
        g
    };
    record_peer(c, "peer received", &got, &data[..1024], true);
    Ok(())
}

/// Zero-length sends: SEND of 0 B (a buffer, then null), SENDMSG of one
/// empty iovec, WRITE of 0 B: each 0; the peer gets nothing until a 5 B SEND.
pub fn send_zero_len(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    send(c, "send(0 B)", fd, 1, b"", 0, true)?;
    let s = opcode::Send::new(fd, std::ptr::null(), 0)
        .user_data(2)
        .build();
    // SAFETY: a null buffer of 0 bytes is never dereferenced.
    unsafe { go(c, "send(null, 0 B)", s, true) }?;
    sendmsg(c, "sendmsg(one empty iovec)", fd, 3, b"", &[0], 0)?;
    plain(c, "write(0 B)", abi::IORING_OP_WRITE, fd, 4)?;
    c.record_all(&[1, 2, 3, 4]);
    send(c, "send(5 B)", fd, 5, b"hello", 0, true)?;
    c.record(5);
    let got = c.peer_wait(p, 5);
    c.quiet();
    let all = c.backend().peer_rx(p);
    record_peer(c, "peer received", &all, b"hello", true);
    let _ = got;
    Ok(())
}

/// SENDMSG of 4 MiB in 16 iovecs with MSG_WAITALL to a reading peer.
pub fn sendmsg_waitall_large(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let len = 4usize << 20;
    let data = pattern(len, 72);
    let (mh, _) = msghdr(c, &[len / 16; 16], Some(&data));
    msg_op(
        c,
        "sendmsg(4 MiB, 16 iovecs, WAITALL)",
        (abi::IORING_OP_SENDMSG, fd, 1),
        mh,
        libc::MSG_WAITALL as u32,
        false,
    )?;
    let got = c.peer_wait(p, len);
    c.wait_final(1);
    c.record(1);
    record_peer(c, "peer received", &got, &data, true);
    Ok(())
}

/// SEND of 4 MiB without MSG_WAITALL to a reading peer: the count it moved,
/// and exactly those bytes arrive.
pub fn send_large_reading_peer(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let len = 4usize << 20;
    let data = pattern(len, 73);
    send(c, "send(4 MiB)", fd, 1, &data, 0, true)?;
    let n = c.cqes(1).last().map_or(-1, |x| x.res);
    c.line(format!(
        "send(4 MiB): {}",
        if n > 0 && (n as usize) <= len {
            "positive, at most len"
        } else {
            "other"
        }
    ));
    if n > 0 {
        let got = c.peer_wait(p, n as usize);
        record_peer(
            c,
            "peer received (res bytes)",
            &got,
            &data[..n as usize],
            false,
        );
    }
    Ok(())
}

/// SENDMSG with msg_name on a connected TCP socket: a valid address, a name
/// with namelen 0, an AF_UNIX-family name: all ignored, the bytes sent; a
/// namelen over sizeof(sockaddr_storage): -EINVAL.
pub fn sendmsg_name_tcp(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(40, 74);
    let sa = c.backend().refused_addr();
    let mut unix = sa;
    unix.sin_family = libc::AF_UNIX as libc::sa_family_t;
    let cases: [(&str, libc::sockaddr_in, u32); 4] = [
        ("sendmsg(name, 16)", sa, 16),
        ("sendmsg(name, namelen 0)", sa, 0),
        ("sendmsg(AF_UNIX name)", unix, 16),
        ("sendmsg(namelen 200)", sa, 200),
    ];
    for (i, (name, addr, nl)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let (mh, _) = msghdr(c, &[10], Some(&data[i * 10..(i + 1) * 10]));
        let a = c.mem(256);
        // SAFETY: `a` has 256 bytes of context memory; a sockaddr_in is 16 of them.
        unsafe { std::ptr::write_unaligned(a.cast::<libc::sockaddr_in>(), addr) };
        // SAFETY: `mh` is context memory from `msghdr`.
        unsafe {
            (*mh).msg_name = a.cast();
            (*mh).msg_namelen = nl;
        }
        msg_op(c, name, (abi::IORING_OP_SENDMSG, fd, ud), mh, 0, true)?;
        c.record(ud);
    }
    let got = c.peer_wait(p, 30);
    c.quiet();
    let all = c.backend().peer_rx(p);
    record_peer(c, "peer received", &all, &data[..30], true);
    let _ = got;
    Ok(())
}

/// SENDMSG with msg_control: an IPPROTO_IP cmsg (ignored on TCP), a
/// controllen shorter than a cmsghdr (no cmsg), SCM_RIGHTS (not checked on
/// TCP: sent), a
/// cmsg_len past the buffer (-EINVAL).
pub fn sendmsg_control(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    let data = pattern(40, 75);
    let hdr = std::mem::size_of::<libc::cmsghdr>();
    // (name, level, type, cmsg_len, controllen)
    let cases: [(&str, i32, i32, usize, usize); 4] = [
        (
            "sendmsg(IPPROTO_IP cmsg)",
            libc::IPPROTO_IP,
            libc::IP_TOS,
            hdr + 4,
            hdr + 8,
        ),
        (
            "sendmsg(controllen 8)",
            libc::SOL_SOCKET,
            libc::SCM_RIGHTS,
            hdr + 4,
            8,
        ),
        (
            "sendmsg(SCM_RIGHTS)",
            libc::SOL_SOCKET,
            libc::SCM_RIGHTS,
            hdr + 4,
            hdr + 8,
        ),
        (
            "sendmsg(cmsg_len past controllen)",
            libc::IPPROTO_IP,
            libc::IP_TOS,
            hdr + 64,
            hdr + 8,
        ),
    ];
    for (i, (name, level, ty, clen, controllen)) in cases.into_iter().enumerate() {
        let ud = i as u64 + 1;
        let (mh, _) = msghdr(c, &[10], Some(&data[i * 10..(i + 1) * 10]));
        let ctl = c.mem(hdr + 64);
        let cm = libc::cmsghdr {
            cmsg_len: clen,
            cmsg_level: level,
            cmsg_type: ty,
        };
        // SAFETY: `ctl` has hdr + 64 bytes of context memory.
        unsafe {
            std::ptr::write_unaligned(ctl.cast::<libc::cmsghdr>(), cm);
            // An fd (SCM_RIGHTS) or a TOS value: 0 (stdin) either way.
            std::ptr::write_unaligned(ctl.add(hdr).cast::<i32>(), 0);
        }
        // SAFETY: `mh` is context memory from `msghdr`.
        unsafe {
            (*mh).msg_control = ctl.cast();
            (*mh).msg_controllen = controllen;
        }
        msg_op(c, name, (abi::IORING_OP_SENDMSG, fd, ud), mh, 0, true)?;
        c.record(ud);
    }
    c.quiet();
    let all = c.backend().peer_rx(p);
    record_peer(
        c,
        "peer received (the first three)",
        &all,
        &data[..30],
        true,
    );
    Ok(())
}

/// MSG_DONTWAIT SENDs of 8 MiB (user_data 100..) to a peer that does not
/// read, until one fails (at most 40): the bytes sent and the failure.
pub(super) fn fill_until_fail(c: &mut Ctx, fd: i32) -> Result<(usize, Option<i32>), String> {
    // More than either backend's buffers take in one go; the bytes are not
    // checked (zeroes: no pattern to compute).
    let len = 8usize << 20;
    let d = c.mem(len).cast_const();
    let mut total = 0usize;
    for k in 0..40u64 {
        let ud = 100 + k;
        let s = opcode::Send::new(fd, d, len as u32)
            .flags(libc::MSG_DONTWAIT)
            .user_data(ud)
            .build();
        // SAFETY: `d` is context memory, alive until the context drops, after the backend.
        unsafe { go(c, "send(DONTWAIT)", s, true) }?;
        let r = c.cqes(ud).last().map_or(i32::MIN, |x| x.res);
        if r < 0 {
            return Ok((total, Some(r)));
        }
        total += r as usize;
        c.quiet();
    }
    Ok((total, None))
}

/// A peer that does not read: MSG_DONTWAIT SENDs fill the buffers until
/// -EAGAIN; once the peer reads, a MSG_DONTWAIT SEND goes.
pub fn send_dontwait_full(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let (total, fail) = fill_until_fail(c, fd)?;
    c.line(format!(
        "DONTWAIT sends until full end with: {}",
        fail.map_or("never".to_string(), |r| format!(
            "-{}",
            crate::errno_name(-r)
        ))
    ));
    c.backend().peer_start_reading(p);
    let _ = c.peer_wait(p, total);
    send(
        c,
        "send(DONTWAIT) after the peer read",
        fd,
        1,
        b"more",
        libc::MSG_DONTWAIT,
        true,
    )?;
    c.record(1);
    Ok(())
}

/// A 16 MiB MSG_WAITALL SEND waiting on a peer that does not read; the peer
/// closes (RST): the SEND ends with the count it moved.
pub fn send_waitall_peer_reset(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    waitall_send(c, fd, None)?;
    c.record(1);
    c.backend().peer_close(p);
    waitall_send_end(c, "send(16 MiB, WAITALL) ends");
    send(c, "send after", fd, 2, b"x", 0, true)?;
    c.record(2);
    Ok(())
}

/// The peer half-closes (FIN); the app keeps sending (SEND and SENDMSG) and
/// the peer reads everything.
pub fn send_after_peer_fin(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    c.backend().peer_start_reading(p);
    c.backend().peer_shutdown_write(p);
    c.quiet();
    recv(c, "recv", fd, 1, 64, 0, true)?;
    let data = pattern(3000, 78);
    send(c, "send", fd, 2, &data[..1000], 0, true)?;
    sendmsg(c, "sendmsg", fd, 3, &data[1000..], &[1000, 1000], 0)?;
    c.record_all(&[1, 2, 3]);
    close(c, "close", fd, 4)?;
    let rx = c.peer_wait_end(p);
    record_peer(c, "peer received", &rx, &data, true);
    c.line(format!("peer then: {}", end_word(&rx)));
    Ok(())
}

// ----------------------------------------------------------------------
// BIND / LISTEN through SQEs, disconnects
// ----------------------------------------------------------------------

/// A BIND of `fd` to `sa`, waited for.
fn bind(c: &mut Ctx, name: &str, fd: i32, ud: u64, sa: libc::sockaddr_in) -> R {
    let sa = c.sockaddr(sa);
    // SAFETY: `sa` is context memory, alive until the context drops, after the backend.
    unsafe { call(c, name, opcode::Bind::new(fd, sa, 16).user_data(ud).build()) }?;
    Ok(())
}

fn listen(c: &mut Ctx, name: &str, fd: i32, ud: u64, backlog: i32) -> R {
    call_safe(
        c,
        name,
        opcode::Listen::new(fd, backlog).user_data(ud).build(),
    )?;
    Ok(())
}

/// SOCKET, BIND and LISTEN through SQEs, then a peer connects and ACCEPT
/// takes it; BIND twice, a second socket on the port, LISTEN twice, BIND and
/// LISTEN on the accepted connection, LISTEN on an unbound socket.
pub fn bind_listen_sqe(c: &mut Ctx) -> R {
    let sa = c.backend().app_bind_addr();
    let fd = socket(c, "socket", 1)?;
    bind(c, "bind", fd, 2, sa)?;
    bind(c, "bind again", fd, 3, sa)?;
    let fd2 = socket(c, "socket 2", 4)?;
    bind(c, "bind(socket 2, same port)", fd2, 5, sa)?;
    listen(c, "listen(4)", fd, 6, 4)?;
    listen(c, "listen(8) again", fd, 7, 8)?;
    c.record_all(&[2, 3, 5, 6, 7]);
    c.backend().adopt_listener(fd, &sa);
    let p = c.backend().peer_connect(fd)?;
    let a = call_safe(
        c,
        "accept",
        opcode::AcceptNoAddr::new(fd).user_data(8).build(),
    )?;
    c.record(8);
    let data = pattern(10, 92);
    c.peer_send(p, &data)?;
    let buf = recv(c, "recv", a.res, 9, 64, 0, true)?;
    c.record(9);
    super::record_mem(c, "recv content", buf, &data, c.cqes(9)[0].res);
    listen(c, "listen(accepted connection)", a.res, 10, 4)?;
    bind(c, "bind(accepted connection)", a.res, 11, sa)?;
    listen(c, "listen(unbound socket 2)", fd2, 12, 4)?;
    c.record_all(&[10, 11, 12]);
    Ok(())
}

/// A listener un-listened by SHUT_RD (its queued connection reset, ACCEPT
/// -EINVAL) keeps its port (bound explicitly), listens again on it and
/// accepts a new connection.
pub fn listen_after_unlisten(c: &mut Ctx) -> R {
    let sa = c.backend().app_bind_addr();
    let l = socket(c, "socket", 10)?;
    bind(c, "bind", l, 11, sa)?;
    listen(c, "listen", l, 12, 8)?;
    c.backend().adopt_listener(l, &sa);
    let p1 = c.backend().peer_connect(l)?;
    c.backend().peer_start_reading(p1);
    c.quiet();
    shutdown(c, "shutdown(listener, RD)", l, 1, libc::SHUT_RD)?;
    c.record(1);
    peer_end(c, "queued peer", p1);
    call_safe(
        c,
        "accept",
        opcode::AcceptNoAddr::new(l).user_data(2).build(),
    )?;
    listen(c, "listen again", l, 3, 8)?;
    c.record_all(&[2, 3]);
    let p2 = c.backend().peer_connect(l)?;
    call_safe(
        c,
        "accept",
        opcode::AcceptNoAddr::new(l).user_data(4).build(),
    )?;
    c.record(4);
    let fd = c.cqes(4)[0].res;
    c.peer_send(p2, b"again")?;
    recv(c, "recv", fd, 5, 64, 0, true)?;
    c.record(5);
    Ok(())
}

/// CONNECT with AF_UNSPEC on a connected socket (a disconnect): the peer
/// sees a reset; then RECV, SEND, and a new CONNECT on the socket.
pub fn connect_unspec_connected(c: &mut Ctx) -> R {
    let (fd, p) = connected(c, 1)?;
    c.backend().peer_start_reading(p);
    let mut sa = c.backend().refused_addr();
    sa.sin_family = libc::AF_UNSPEC as libc::sa_family_t;
    connect(c, "connect(AF_UNSPEC)", fd, 3, sa, 16)?;
    c.record(3);
    peer_end(c, "peer", p);
    recv(c, "recv", fd, 4, 64, 0, true)?;
    send(c, "send", fd, 5, b"x", 0, true)?;
    c.record_all(&[4, 5]);
    let (l, sa2) = c.backend().peer_listen()?;
    connect(c, "connect again", fd, 6, sa2, 16)?;
    c.record(6);
    if c.cqes(6)[0].res == 0 {
        let p2 = accept_peer(c, l)?;
        c.backend().peer_start_reading(p2);
        send(c, "send", fd, 7, b"hello", 0, true)?;
        c.record(7);
        let got = c.peer_wait(p2, 5);
        record_peer(c, "new peer received", &got, b"hello", true);
    }
    Ok(())
}

/// SHUT_WR while a 16 MiB MSG_WAITALL SEND waits for a peer that does not
/// read: the SEND ends with what it queued; the peer then reads exactly
/// that, then EOF.
pub fn shutdown_wr_send_pending(c: &mut Ctx) -> R {
    let (fd, p) = c.backend().app_conn()?;
    let data = waitall_send(c, fd, Some(93))?;
    shutdown(c, "shutdown(WR)", fd, 2, libc::SHUT_WR)?;
    c.record(2);
    let n = waitall_send_end(c, "send ends");
    c.backend().peer_start_reading(p);
    let rx = c.peer_wait_end(p);
    record_peer(
        c,
        "peer received (the SEND's count)",
        &rx,
        &data[..n],
        false,
    );
    c.line(format!("peer then: {}", end_word(&rx)));
    Ok(())
}
