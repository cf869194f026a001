//! The scenarios. Each is a function of a [`Ctx`]; [`all`] lists them with their
//! ring size and what the comparison should show.
//!
//! Conventions: user_data values are small integers named at push time; a
//! scenario records lines with `Ctx::record*` / `Ctx::line`, never anything that
//! legitimately differs between the backends (raw socket numbers, addresses,
//! byte splits); helpers (`app_conn`, `app_listener`) create sockets out of band.

use ringline_ring::abi::{Cqe, Sqe};
use ringline_ring::opcode::{self, SafeSqe};

use crate::backend::RingSize;
use crate::{Ctx, Expect, Scenario};

mod accept;
mod bufs;
mod cancel;
mod conn;
mod feat;
mod flags;
mod invalid;
mod net2;
mod net3;
mod overflow;
mod poll;
mod recv;
mod regs;
mod ring2;
mod ring3;
mod rw;
mod send;
mod sqpoll;
mod timeout;

/// A scenario's result.
pub type R = Result<(), String>;

/// A deterministic byte pattern (distinct per `seed`): byte i is
/// `(i * 7 + seed * 31) % 251`, built from its 251-byte period (memcpy, so a
/// 64 MiB pattern is cheap in a debug build too).
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    let period: Vec<u8> = (0..251usize)
        .map(|i| ((i * 7 + seed as usize * 31) % 251) as u8)
        .collect();
    let mut v = period.repeat(n / 251 + 1);
    v.truncate(n);
    v
}

/// Pushes, submits and waits for the final CQE of a one-shot request.
///
/// # Safety
///
/// As [`Ctx::push`]: the memory `sqe` names lives until the context drops.
pub unsafe fn call(c: &mut Ctx, name: &str, sqe: Sqe) -> Result<Cqe, String> {
    let ud = sqe.user_data;
    // SAFETY: the caller upholds `push`'s contract (this function's).
    unsafe { c.submit_one(name, sqe) }?;
    finish_call(c, name, ud)
}

/// [`call`] for an SQE that names no memory.
pub fn call_safe(c: &mut Ctx, name: &str, sqe: SafeSqe) -> Result<Cqe, String> {
    let ud = sqe.user_data;
    c.submit_one_safe(name, sqe)?;
    finish_call(c, name, ud)
}

fn finish_call(c: &mut Ctx, name: &str, ud: u64) -> Result<Cqe, String> {
    c.wait_final(ud);
    c.cqes(ud)
        .last()
        .copied()
        .ok_or_else(|| format!("{name}: no CQE"))
}

/// A fresh app socket through `IORING_OP_SOCKET` (recorded as `name: fd`).
pub fn socket(c: &mut Ctx, name: &str, ud: u64) -> Result<i32, String> {
    let cqe = call_safe(
        c,
        name,
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(ud)
            .build(),
    )?;
    c.record(ud);
    if cqe.res < 0 {
        return Err(format!("socket: {}", crate::errno_name(-cqe.res)));
    }
    Ok(cqe.res)
}

/// A raw SQE of `opcode` on `fd`.
pub fn raw(op: u8, fd: i32, ud: u64) -> Sqe {
    Sqe {
        opcode: op,
        fd,
        user_data: ud,
        ..Sqe::default()
    }
}

/// Records whether the bytes at `p` equal `want`.
pub fn record_mem(c: &mut Ctx, label: &str, p: *const u8, want: &[u8], got_len: i32) {
    let got = c.read_mem(p, want.len());
    let ok = got_len >= 0
        && got_len as usize <= want.len()
        && got[..got_len as usize] == want[..got_len as usize];
    c.line(format!(
        "{label}: {}",
        if ok {
            "matches what the peer sent"
        } else {
            "DIFFERS from what the peer sent"
        }
    ));
}

fn sc(
    name: &'static str,
    area: &'static str,
    about: &'static str,
    ring: RingSize,
    expect: Expect,
    run: fn(&mut Ctx) -> R,
) -> Scenario {
    Scenario {
        name,
        area,
        about,
        ring,
        expect,
        run,
    }
}

/// A small ring for overflow scenarios: SQ 4, CQ 8.
pub const SMALL: RingSize = RingSize { sq: 4, cq: 8 };

/// Every scenario, in report order.
pub fn all() -> Vec<Scenario> {
    let d = RingSize::default();
    let m = Expect::Match;
    let mut v = vec![
        // accept
        sc("accept_single", "accept", "one-shot ACCEPT waits for a connection, writes the peer address", d, m, accept::single),
        sc("accept_multishot_5", "accept", "multishot ACCEPT of 5 connections, still armed after them", d, m, accept::multishot_n),
        sc("accept_multishot_queued", "accept", "multishot ACCEPT armed after 3 connections queued: all 3 at arm time", d, m, accept::multishot_queued),
        sc("accept_multishot_cancel", "accept", "multishot ACCEPT of 2 connections, then ASYNC_CANCEL by user_data", d, m, accept::multishot_cancel),
        sc("accept_multishot_full_cq", "accept", "multishot ACCEPT of 12 connections into a CQ of 8 without reaping: ended by the full CQ, the accepted socket in the final CQE", SMALL, m, accept::multishot_full_cq),
        sc("accept_dontwait", "accept", "ACCEPT with IORING_ACCEPT_DONTWAIT on an empty queue", d, m, accept::dontwait),
        sc("accept_multishot_dontwait_empty", "accept", "multishot ACCEPT with IORING_ACCEPT_DONTWAIT on an empty queue", d, m, accept::multishot_dontwait_empty),
        sc("accept_multishot_dontwait_queued", "accept", "multishot ACCEPT with IORING_ACCEPT_DONTWAIT armed with 2 connections queued, then a third connects", d, m, accept::multishot_dontwait_queued),
        sc("accept_direct_no_table", "accept", "ACCEPT with IORING_FILE_INDEX_ALLOC, then into slot 0, with no file table: the connections are taken and closed; then a plain ACCEPT", d, m, accept::direct_no_table),
        sc("accept_direct_multishot_no_table", "accept", "multishot ACCEPT with IORING_FILE_INDEX_ALLOC and no file table; multishot into a fixed slot; direct with SOCK_CLOEXEC", d, m, accept::direct_multishot_no_table),
        sc("accept_backlog_2", "accept", "listener with backlog 2: 3 peers connect before any ACCEPT, then a multishot ACCEPT", d, m, accept::backlog_2),
        sc("accept_poll_first", "accept", "ACCEPT with IORING_ACCEPT_POLL_FIRST: a connection queued; an empty queue, then a connection; POLL_FIRST|DONTWAIT on an empty queue", d, m, accept::poll_first),
        // recv
        sc("read_nowait", "recv", "READ with RWF_NOWAIT on an empty socket, then with data there", d, m, recv::read_nowait),
        sc("recv_multishot_data", "recv", "multishot RECV with a buffer ring (8 x 512 B), 1000 B from the peer", d, m, recv::multishot_data),
        sc("recv_multishot_small_buffers", "recv", "multishot RECV with 64 x 64 B buffers recycled as they come, 3000 B", d, m, recv::multishot_small_buffers),
        sc("recv_multishot_len_cap", "recv", "multishot RECV with len 100 over 512 B buffers: every CQE at most 100 B", d, m, recv::multishot_len_cap),
        sc("recv_multishot_enobufs_at_arm", "recv", "multishot RECV armed on an empty buffer ring and an empty socket", d, m, recv::multishot_enobufs_at_arm),
        sc("recv_multishot_enobufs_midstream", "recv", "multishot RECV, 4 x 256 B buffers not recycled, 2000 B: -ENOBUFS mid-stream, then refill and re-arm", d, m, recv::multishot_enobufs_midstream),
        sc("recv_multishot_eof", "recv", "multishot RECV, 100 B then the peer's FIN; then a re-arm at EOF", d, m, recv::multishot_eof),
        sc("recv_multishot_reset", "recv", "multishot RECV armed when the peer resets the connection", d, m, recv::multishot_reset),
        sc("recv_multishot_cancel", "recv", "multishot RECV cancelled by user_data", d, m, recv::multishot_cancel),
        sc("recv_multishot_full_cq", "recv", "multishot RECV, 64 B buffers, 2000 B into a CQ of 8 without reaping: ended by the full CQ with bytes in the final CQE; re-arm gets the rest", SMALL, m, recv::multishot_full_cq),
        sc("recv_select_oneshot", "recv", "one-shot RECV with buffer select from a ring: buffer ids in ring order", d, m, recv::select_oneshot),
        sc("recv_plain", "recv", "one-shot RECV into a user buffer", d, m, recv::plain),
        sc("recv_waitall", "recv", "RECV with MSG_WAITALL completes only when all 100 B are there", d, m, recv::waitall),
        sc("recv_peek", "recv", "RECV with MSG_PEEK then a normal RECV see the same bytes", d, m, recv::peek),
        sc("recv_dontwait", "recv", "RECV with MSG_DONTWAIT on an empty socket", d, m, recv::dontwait),
        sc("recvmsg", "recv", "RECVMSG into one iovec", d, m, recv::recvmsg),
        sc("recv_multishot_dontwait", "recv", "multishot RECV with MSG_DONTWAIT on an empty socket, then with 300 B there", d, m, recv::multishot_dontwait),
        sc("recv_multishot_shared_group", "recv", "two connections' multishot RECVs share a buffer ring; the peers send in turn, then the CQEs are examined: buffer ids in ring order across both", d, m, recv::multishot_shared_group),
        sc("recv_trunc", "recv", "RECV and RECVMSG with MSG_TRUNC on TCP discard the bytes; the next RECV gets what follows", d, m, recv::trunc),
        // read/write family on sockets
        sc("read_offset", "read/write", "READ on a socket at offsets 5 (also with len 0), -2, 0 and -1: which are -ESPIPE; no byte lost; then on a listener at offset 5, with len 0, plain", d, m, rw::read_offset),
        sc("write_offset", "read/write", "WRITE on a socket at offsets 5, 0 and -1; the peer gets only the accepted WRITEs' bytes", d, m, rw::write_offset),
        sc("read_rw_flags", "read/write", "READ with each RWF_* flag and unknown bits on a socket with data; then the rest", d, m, rw::read_rw_flags),
        sc("write_rw_flags", "read/write", "WRITE with each RWF_* flag and unknown bits; the peer gets the accepted WRITEs' bytes", d, m, rw::write_rw_flags),
        sc("read_ioprio", "read/write", "READ and WRITE with an I/O priority in ioprio (valid and invalid classes and levels)", d, m, rw::read_ioprio),
        sc("readv_scatter", "read/write", "READV over iovecs of 5, 10 and 15 B; then 10 B into 8+8", d, m, rw::readv_scatter),
        sc("writev_gather", "read/write", "WRITEV from 4 iovecs (one empty): the peer gets them in order", d, m, rw::writev_gather),
        sc("readv_errors", "read/write", "READV with 1025 iovecs, a null array, an unmapped base, an offset, 0 iovecs; then a good one; then RWF_NOWAIT on the emptied socket", d, m, rw::readv_errors),
        sc("read_multishot_data", "read/write", "READ_MULTISHOT over a buffer ring, 1000 B then the peer's FIN; a re-arm at EOF", d, m, rw::read_multishot_data),
        sc("read_multishot_fields", "read/write", "READ_MULTISHOT without buffer select, with addr, off 5, RWF_NOWAIT, an empty ring, len 100; a good one, cancelled; RWF_NOWAIT with data there; on a listener", d, m, rw::read_multishot_fields),
        sc("fixed_buffers_unregistered", "read/write", "READ_FIXED, WRITE_FIXED, SEND and SEND_ZC with FIXED_BUF and no registered buffers; then a READ gets every byte", d, m, rw::fixed_buffers_unregistered),
        sc("writev_errors", "read/write", "WRITEV with 1025 iovecs, a null array, an unmapped base, an offset; then a good one", d, m, rw::writev_errors),
        sc("sendmsg", "send", "SENDMSG from two iovecs", d, m, send::sendmsg),
        // legacy provided buffers
        sc("provide_buffers_recv", "buffers", "PROVIDE_BUFFERS (4 x 128 B, ids 10..13) then multishot RECV takes them in FIFO order", d, m, bufs::provide_recv),
        sc("remove_buffers", "buffers", "REMOVE_BUFFERS of 3, then of 10 from a group of 8, then from the emptied group", d, m, bufs::remove),
        sc("provide_buffers_on_ring_group", "buffers", "PROVIDE_BUFFERS into a group that is a registered buffer ring", d, m, bufs::provide_on_ring),
        sc("legacy_group_empty", "buffers", "one-shot RECV from a legacy group after its only buffer was used", d, m, bufs::legacy_empty),
        // poll
        sc("poll_oneshot_ready", "poll", "one-shot POLL_ADD(POLLOUT) on a connected socket completes at once", d, m, poll::oneshot_ready),
        sc("poll_oneshot_trigger", "poll", "one-shot POLL_ADD(POLLIN) waits, then fires when data arrives", d, m, poll::oneshot_trigger),
        sc("poll_multishot_triggers", "poll", "multishot POLL_ADD(POLLIN): one CQE per arrival, then POLL_REMOVE", d, m, poll::multishot_triggers),
        sc("poll_multishot_ready_at_arm", "poll", "multishot POLL_ADD(POLLIN) armed on a readable socket", d, m, poll::multishot_ready_at_arm),
        sc("poll_update_events", "poll", "POLL_REMOVE with IORING_POLL_UPDATE_EVENTS turns a waiting POLLIN poll into POLLOUT", d, m, poll::update_events),
        sc("poll_update_user_data", "poll", "POLL_REMOVE with IORING_POLL_UPDATE_USER_DATA: the poll completes under the new user_data", d, m, poll::update_user_data),
        sc("poll_remove_enoent", "poll", "POLL_REMOVE of an unknown user_data", d, m, poll::remove_enoent),
        sc("poll_rdhup", "poll", "POLL_ADD(POLLIN|POLLRDHUP) fires on the peer's FIN", d, m, poll::rdhup),
        sc("poll_fin_masks", "poll", "POLL_ADD without POLLRDHUP and the peer's FIN: POLLIN and POLLPRI armed before, POLLIN, POLLOUT and IN|OUT|PRI|RDHUP armed after", d, m, poll::fin_masks),
        sc("poll_multishot_pollout_quiet", "poll", "multishot POLLOUT on an idle connection, then peer data and a small app write (no write-space wake-up), then the peer's FIN (a wake-up)", d, m, poll::multishot_pollout_quiet),
        sc("poll_multishot_pollout_space", "poll", "multishot POLLOUT, a SEND that fills the send buffer, the peer drains it: one write-space wake-up", d, m, poll::multishot_pollout_space),
        sc("poll_multishot_pollin_unread", "poll", "multishot POLLIN with the data left unread: a CQE per arrival, none for the ACKs of the app's own sends", d, m, poll::multishot_pollin_unread),
        sc("poll_listener", "poll", "POLL_ADD(POLLIN) on a listener fires when a connection is queued", d, m, poll::listener),
        // cancel
        sc("cancel_by_user_data", "cancel", "ASYNC_CANCEL of one of two pending RECVs by user_data", d, m, cancel::by_user_data),
        sc("cancel_by_fd", "cancel", "ASYNC_CANCEL with IORING_ASYNC_CANCEL_FD, then _FD|_ALL on a socket with two requests", d, m, cancel::by_fd),
        sc("cancel_all_user_data", "cancel", "ASYNC_CANCEL with IORING_ASYNC_CANCEL_ALL of three polls sharing a user_data", d, m, cancel::all_user_data),
        sc("cancel_any", "cancel", "ASYNC_CANCEL with IORING_ASYNC_CANCEL_ANY cancels every request in flight", d, m, cancel::any),
        sc("cancel_any_link_timeout", "cancel", "ASYNC_CANCEL with _ANY over two RECVs each guarded by a LINK_TIMEOUT: the count, one final CQE per request", d, m, cancel::any_link_timeout),
        sc("cancel_by_opcode", "cancel", "ASYNC_CANCEL with IORING_ASYNC_CANCEL_OP: the pending RECV, not the POLL", d, m, cancel::by_opcode),
        sc("cancel_all_no_match", "cancel", "ASYNC_CANCEL with _ALL and with _ANY when nothing matches", d, m, cancel::all_no_match),
        sc("cancel_enoent", "cancel", "ASYNC_CANCEL of an unknown user_data, and of a request that already completed", d, m, cancel::enoent),
        sc("cancel_ealready", "cancel", "ASYNC_CANCEL of a request running in an io-wq worker (SPLICE from an empty pipe): -EALREADY", d, Expect::Known("-EALREADY means the target is executing in a kernel worker thread; ringline runs every op inside the engine step and has no pipe ops (SPLICE is -EOPNOTSUPP), so no TCP op can ever be \"too late to cancel\""), cancel::ealready),
        // send
        sc("send_small", "send", "SEND of 100 B; the peer reads them", d, m, send::small),
        sc("send_partial", "send", "SEND of 64 MiB without MSG_WAITALL to a peer that does not read: partial progress", d, m, send::partial),
        sc("send_waitall_large", "send", "SEND of 1 MiB with MSG_WAITALL to a reading peer: all of it", d, m, send::waitall_large),
        sc("send_after_reset", "send", "two SENDs after the peer reset the connection", d, m, send::after_reset),
        sc("send_after_shutdown", "send", "SEND after SHUTDOWN(SHUT_WR)", d, m, send::after_shutdown),
        sc("send_zc", "send", "SEND_ZC of 5 B: the result CQE with F_MORE, then the notification", d, m, send::zc),
        sc("send_zc_errors", "send", "SEND_ZC failing once issued (fd not open, never connected, FIXED_BUF with none registered, unmapped buffer) and at its field checks; then a good one", d, m, send::zc_errors),
        sc("send_sendto_address", "send", "SEND and SEND_ZC with a sendto address (16 B, and addr_len 0) on a connected socket", d, m, send::sendto_address),
        // connect, shutdown, close
        sc("connect_refused", "connect", "CONNECT to a port where nothing listens", d, m, conn::refused),
        sc("connect_ok", "connect", "CONNECT to a listening peer, data to it, then CONNECT again", d, m, conn::ok),
        sc("shutdown_wr", "shutdown", "SHUTDOWN(SHUT_WR): the peer sees EOF, the app still receives", d, m, conn::shutdown_wr),
        sc("shutdown_rd", "shutdown", "SHUTDOWN(SHUT_RD), then RECV", d, m, conn::shutdown_rd),
        sc("socket_direct_no_table", "connect", "SOCKET with IORING_FILE_INDEX_ALLOC, into slot 0, slot 0 with SOCK_CLOEXEC, with no file table; then a plain SOCKET", d, m, conn::socket_direct_no_table),
        sc("close_twice", "close", "CLOSE of a fresh socket, then CLOSE again", d, m, conn::close_twice),
        sc("close_bad_fields", "close", "CLOSE with rw_flags, buf_index or ioprio set; the socket stays open (a RECV works), then a clean CLOSE", d, m, conn::close_bad_fields),
        sc("close_with_recv_in_flight", "close", "CLOSE of a socket with a RECV pending, then the peer sends: the RECV keeps the socket open and gets the data", d, m, conn::close_with_recv),
        sc("close_listener_with_accept", "close", "CLOSE of a listener with a multishot ACCEPT pending, then a peer connects: the ACCEPT keeps the listener open and accepts it", d, m, conn::close_listener),
        sc("close_with_send_in_flight", "close", "CLOSE while a 16 MiB MSG_WAITALL SEND waits for the peer to read: every byte arrives, then EOF", d, m, conn::close_with_send),
        sc("close_linger_zero", "close", "SO_LINGER {1, 0} by SETSOCKOPT, a 64 MiB SEND that leaves data queued, CLOSE: the peer reads a prefix, fewer bytes than the SEND counted, then ECONNRESET", d, m, conn::close_linger_zero),
        sc("close_with_multishot_recv", "close", "CLOSE with a multishot RECV armed: it still delivers what the peer sends, then EOF when the peer closes", d, m, conn::close_with_multishot_recv),
        sc("close_then_cancel_fd", "close", "CLOSE with a RECV pending, a new socket, ASYNC_CANCEL by its number: the old RECV is not found and still gets the data", d, m, conn::close_then_cancel_fd),
        sc("close_with_poll_in_flight", "close", "CLOSE with a POLL_ADD(POLLIN) pending, then the peer sends: the poll fires", d, m, conn::close_with_poll),
        // SQE flags
        sc("link_chain", "sqe flags", "three NOPs linked with IOSQE_IO_LINK complete in order", d, m, flags::link_chain),
        sc("link_failure", "sqe flags", "a failed (injected -EINVAL) linked NOP cancels the rest of the chain", d, m, flags::link_failure),
        sc("link_short_recv", "sqe flags", "a linked RECV with MSG_WAITALL that gets fewer bytes (EOF) breaks the chain", d, m, flags::link_short_recv),
        sc("link_recv_send", "sqe flags", "RECV linked to a SEND: the SEND starts after the data arrived", d, m, flags::link_recv_send),
        sc("hardlink", "sqe flags", "IOSQE_IO_HARDLINK: a failed NOP does not cancel the next", d, m, flags::hardlink),
        sc("drain", "sqe flags", "IOSQE_IO_DRAIN: a NOP waits for an earlier pending RECV", d, m, flags::drain),
        sc("cqe_skip_success", "sqe flags", "IOSQE_CQE_SKIP_SUCCESS: no CQE on success, a CQE on failure", d, m, flags::cqe_skip),
        sc("sqe_async", "sqe flags", "IOSQE_ASYNC on NOP and RECV", d, m, flags::async_flag),
        // timeouts and NOP
        sc("timeout_fires", "timeout", "TIMEOUT of 20 ms fires with -ETIME", d, m, timeout::fires),
        sc("timeout_count", "timeout", "TIMEOUT with a completion count of 2, then two NOPs", d, m, timeout::count),
        sc("timeout_cancel", "timeout", "ASYNC_CANCEL of a pending TIMEOUT", d, m, timeout::cancel),
        sc("timeout_remove", "timeout", "TIMEOUT_REMOVE of a pending TIMEOUT", d, m, timeout::remove),
        sc("link_timeout_fires", "timeout", "RECV linked to a LINK_TIMEOUT of 20 ms, no data: the RECV is cancelled", d, m, timeout::link_fires),
        sc("link_timeout_later_in_chain", "timeout", "RECV -> RECV -> LINK_TIMEOUT of 20 ms, data for the first only: the timeout guards the second", d, m, timeout::link_later),
        sc("link_timeout_not_fired", "timeout", "RECV linked to a LINK_TIMEOUT of 10 s, data arrives: the timeout is cancelled", d, m, timeout::link_not_fired),
        sc("timeout_abs", "timeout", "TIMEOUT with IORING_TIMEOUT_ABS, 20 ms ahead on CLOCK_MONOTONIC", d, m, timeout::abs),
        sc("timeout_multishot", "timeout", "IORING_TIMEOUT_MULTISHOT every 10 ms, 3 firings", d, m, timeout::multishot),
        sc("timeout_update", "timeout", "IORING_TIMEOUT_UPDATE takes a pending 10 s TIMEOUT to 20 ms; an unknown target", d, m, timeout::update),
        sc("link_timeout_update", "timeout", "IORING_LINK_TIMEOUT_UPDATE takes a RECV's 10 s LINK_TIMEOUT to 20 ms", d, Expect::Known("Linux 6.18 answers -ENOENT: its IORING_LINK_TIMEOUT_UPDATE does not find the LINK_TIMEOUT guarding a RECV that waits for data, and the RECV then waits out the 10 s; ringline finds it and re-times it, as liburing's io_uring_prep_link_timeout_update describes. Why this kernel does not find it is not yet understood"), timeout::link_update),
        sc("timeout_etime_success", "timeout", "IORING_TIMEOUT_ETIME_SUCCESS: a fired TIMEOUT does not cancel the NOP linked after it", d, m, timeout::etime_success),
        sc("timeout_bad_flags", "timeout", "TIMEOUT with ABS|MULTISHOT, two clocks, an unknown flag; TIMEOUT_REMOVE with a flag", d, m, timeout::bad_flags),
        sc("nop", "nop", "NOP, and NOP with IORING_NOP_INJECT_RESULT (42 and -ETIMEDOUT)", d, m, timeout::nop),
        // invalid SQEs
        sc("invalid_opcode", "invalid", "opcodes IORING_OP_LAST and 200", d, m, invalid::opcode),
        sc("invalid_fd", "invalid", "RECV, POLL_ADD, SHUTDOWN and CLOSE on fds that are not open", d, m, invalid::bad_fd),
        sc("invalid_sqe_flags", "invalid", "unknown SQE flag bit, IOSQE_FIXED_FILE without a file table, unknown personality", d, m, invalid::sqe_flags),
        sc("invalid_recv_flags", "invalid", "multishot RECV without buffer select, multishot with MSG_WAITALL, unknown ioprio bits on RECV and ACCEPT", d, m, invalid::recv_flags),
        sc("invalid_misc", "invalid", "POLL_ADD with IORING_POLL_ADD_LEVEL, multishot poll with CQE_SKIP_SUCCESS, unknown NOP flag", d, m, invalid::misc),
        sc("invalid_unconnected", "invalid", "RECV, SEND, SHUTDOWN and ACCEPT on a socket that is not connected; CONNECT on a listener", d, m, invalid::unconnected),
        sc("socket_ipv6", "invalid", "SOCKET(AF_INET6, SOCK_STREAM)", d, Expect::Known("ringline is IPv4 only (SOCKET with AF_INET6 is -EAFNOSUPPORT)"), invalid::ipv6),
        // CQ overflow
        sc("overflow_in_order", "overflow", "20 NOPs into a CQ of 8 without reaping: backlog, IORING_SQ_CQ_OVERFLOW, then flushed in order", SMALL, m, overflow::in_order),
        sc("overflow_new_after_backlog", "overflow", "with a backlog, the app reaps 3 without entering, submits 3 more NOPs: they queue behind the backlog", SMALL, m, overflow::new_after_backlog),
        // SQPOLL
        sc("sqpoll_setup", "sqpoll", "an IORING_SETUP_SQPOLL ring: the flags and features setup reports", d, m, sqpoll::setup),
        sc("sqpoll_submit_without_enter", "sqpoll", "4 NOPs published while the SQPOLL engine polls complete without io_uring_enter", d, m, sqpoll::submit_without_enter),
        sc("sqpoll_need_wakeup", "sqpoll", "after sq_thread_idle the engine sets IORING_SQ_NEED_WAKEUP; submit enters with SQ_WAKEUP and the NOP completes; a wait for a TIMEOUT wakes it again", d, m, sqpoll::need_wakeup),
        sc("sqpoll_wait_timeout", "sqpoll", "SQPOLL: submit_and_wait_timeout(1, 20 ms) with nothing in flight", d, m, sqpoll::wait_timeout),
        sc("sqpoll_sq_wait", "sqpoll", "SQPOLL: 4 NOPs fill an SQ of 4, io_uring_sqring_wait (IORING_ENTER_SQ_WAIT) returns with space", d, m, sqpoll::sq_wait),
        sc("sqpoll_overflow", "sqpoll", "SQPOLL: 20 NOPs into a CQ of 8 without reaping: IORING_SQ_CQ_OVERFLOW, then all 20 in order as the app reaps and enters", d, m, sqpoll::overflow),
        // registered resources
        sc("files_register_errors", "registered", "IORING_REGISTER_FILES / FILES2 / FILES_UPDATE / UNREGISTER_FILES argument checks: null, 0 slots, an fd not open (all or nothing), a second table, past the end, resv, sparse with data, unknown flag; an unknown register opcode", d, m, regs::files_register_errors),
        sc("files_update", "registered", "FILES_UPDATE of an fd, SKIP and -1, a bad fd midway (the count done), FILES_UPDATE2 and its checks; SENDs through the slots", d, m, regs::files_update),
        sc("files_fixed_ops", "registered", "IOSQE_FIXED_FILE on RECV, POLL_ADD, WRITE, READ, SHUTDOWN, an empty slot, past the table, ignored by NOP; NOP with IORING_NOP_FIXED_FILE looks the slot up; ASYNC_CANCEL by FD_FIXED with ANY (-EINVAL), with ALL; the socket outlives CLOSE of its fd while a slot holds it; CLOSE of the slot (peer reads EOF) and CLOSE's slot checks", d, m, regs::files_fixed_ops),
        sc("files_direct_socket", "registered", "SOCKET into direct descriptors: no table, a slot, IORING_FILE_INDEX_ALLOC until full (the hint's order), past the end, replacing; BIND and LISTEN through a slot; IORING_REGISTER_FILE_ALLOC_RANGE and its checks", d, m, regs::files_direct_socket),
        sc("files_direct_accept", "registered", "ACCEPT into direct descriptors: ALLOC, a slot, multishot ALLOC until the table is full (the connection without a slot is closed, the multishot ends); data both ways through the slots", d, m, regs::files_direct_accept),
        sc("files_fixed_connect_accept", "registered", "a direct socket connects (CONNECT with IOSQE_FIXED_FILE), sends and shuts down through its slot; a listener put in a slot accepts through it, into an fd and into a direct descriptor that then receives", d, m, regs::files_fixed_connect_accept),
        sc("files_cancel_fd_fixed", "registered", "ASYNC_CANCEL with IORING_ASYNC_CANCEL_FD_FIXED: a slot names the socket and requests on it match however they named it; an empty slot, a slot past the table, an fd not open; IOSQE_FIXED_FILE on the cancel", d, m, regs::files_cancel_fd_fixed),
        sc("bufs_registered", "registered", "IORING_REGISTER_BUFFERS and its checks; READ_FIXED / WRITE_FIXED on a socket; SEND_ZC with IORING_RECVSEND_FIXED_BUF; bad buf_index, empty entry, out-of-range address; SEND with FIXED_BUF; NOP with IORING_NOP_FIXED_BUFFER (a buffer, an empty entry, none, unregistered); unregistering", d, m, regs::bufs_registered),
        sc("probe", "registered", "IORING_REGISTER_PROBE: header, numbered entries, every opcode ringline implements reported supported; a short probe; memory not zeroed, 257 entries, null", d, m, regs::probe),
        sc("recv_bundle", "buffers", "RECV with IORING_RECVSEND_BUNDLE over 8 x 16 B ring buffers: one CQE fills consecutive buffers while data is there; a len cap; a multishot bundle; RECVMSG refuses the flag", d, m, regs::recv_bundle),
        sc("bufring_incremental", "buffers", "an incremental buffer ring (IOU_PBUF_RING_INC): receives use a buffer a part at a time (IORING_CQE_F_BUF_MORE, the entry's addr/len moved), the head moves on when it is full; a len cap; a multishot receive", d, m, regs::bufring_incremental),
        sc("sockcmd_queues", "uring_cmd", "URING_CMD SOCKET_URING_OP_SIOCINQ / SIOCOUTQ as the peer sends, on a fresh socket and a listener; fd not open, unknown command, __pad1, unknown uring_cmd_flags", d, m, regs::sockcmd_queues),
        sc("sockcmd_sockopt", "uring_cmd", "URING_CMD GETSOCKOPT / SETSOCKOPT: SOL_SOCKET options set and read back (doubled buffer sizes), read-only options, optlen rules, SO_LINGER's 8-byte struct; TCP_NODELAY, TCP_KEEPIDLE/INTVL/CNT and their ranges; unknown level/option, short optlen, null optval, GETSOCKOPT off SOL_SOCKET; a listener's options inherited by the accepted socket", d, m, regs::sockcmd_sockopt),
        sc("overflow_multishot_ends", "overflow", "a multishot ACCEPT firing while the CQ is full and backlogged ends with its socket in the final CQE, behind the backlog", SMALL, m, overflow::multishot_ends),
        // features (feat.rs)
        sc("recv_multishot_total_cap", "recv", "multishot RECV with a total byte cap (optlen): the CQE that uses it up ends the multishot, not cut to it; a bundle is cut; a re-arm gets the rest; cap 1 on an empty socket", d, m, feat::recv_total_cap),
        sc("send_provided_buffers", "send", "SEND with IOSQE_BUFFER_SELECT (no group, empty ring, a buffer, a len cut) and send bundles (ring: one CQE per round, a len cap; legacy group; empty; without buffer select); the peer gets every byte in order; on an unconnected socket", d, m, feat::send_buffers),
        sc("readv_provided_buffers", "read/write", "READV with IOSQE_BUFFER_SELECT: one iovec whose length caps the read (0: the buffer's), the bytes in the group's buffers in order; 2 iovecs, a null iovec, no group; RWF_NOWAIT on the emptied socket", d, m, feat::readv_buffers),
        sc("recv_multishot_peek", "recv", "multishot RECV with MSG_PEEK: the same bytes peeked into every buffer until -ENOBUFS, then a RECV gets them; one-shot RECV with buffer select and MSG_PEEK; armed on an empty socket", d, m, feat::recv_multishot_peek),
        sc("recv_multishot_errqueue", "recv", "multishot RECV with MSG_ERRQUEUE: waits (TCP's error queue is empty) through data, which a plain multishot RECV beside it gets, until cancelled; again through the peer's FIN and close", d, m, feat::recv_multishot_errqueue),
        sc("msg_ring", "msg_ring", "IORING_OP_MSG_RING between two rings of the process: data messages both ways (user_data, res, FLAGS_PASS flags), to the ring itself (order); CQE_SKIP, file_index, addr3, unknown flag, buf_index, unknown command, a socket, an fd not open; SEND_FD's len, to itself, no file table; a fixed slot", d, m, feat::msg_ring_rings),
        // ring mechanics (scenB): links, drain, NOP, timeouts
        sc("link_mid_fail", "sqe flags", "a 5-NOP IO_LINK chain whose third fails: the rest -ECANCELED, the next request unaffected", d, m, ring2::link_mid_fail),
        sc("link_long", "sqe flags", "a chain of 20 linked NOPs injecting 1..20: CQEs in chain order", d, m, ring2::link_long),
        sc("hardlink_chain", "sqe flags", "IO_HARDLINK chain of 4 with two failures: every member runs", d, m, ring2::hardlink_chain),
        sc("hardlink_then_link", "sqe flags", "a failed HARDLINK member, then a failed plain LINK member: the rest -ECANCELED", d, m, ring2::hardlink_then_link),
        sc("link_broken_end", "sqe flags", "a chain whose last SQE has IO_LINK at the end of the submission; the next submission is separate", d, m, ring2::link_broken_end),
        sc("link_prep_fail", "sqe flags", "a link member with an unknown opcode, a chain head TIMEOUT with a bad flag: what the chain gets", d, m, ring2::link_prep_fail),
        sc("link_multishot", "sqe flags", "IO_LINK on a multishot POLL_ADD and a multishot ACCEPT", d, m, ring2::link_multishot),
        sc("link_timeout_after_nop", "timeout", "NOP -> LINK_TIMEOUT: the NOP beats the timer; a failing NOP likewise", d, m, ring2::link_timeout_after_nop),
        sc("link_timeout_chain_continues", "timeout", "RECV -> LINK_TIMEOUT(LINK) -> NOP: the timer fires; then data there first: the NOP runs", d, m, ring2::link_timeout_chain_continues),
        sc("link_timeout_misplaced", "timeout", "LINK_TIMEOUT alone, after an unlinked NOP, and two in a row after a RECV", d, m, ring2::link_timeout_misplaced),
        sc("cqe_skip_chain", "sqe flags", "IOSQE_CQE_SKIP_SUCCESS in chains: skipped successes; a failure posts and the rest post -ECANCELED", d, m, ring2::cqe_skip_chain),
        sc("cqe_skip_link_timeout", "sqe flags", "a RECV with CQE_SKIP_SUCCESS guarded by a LINK_TIMEOUT, with data in time and without", d, m, ring2::cqe_skip_link_timeout),
        sc("link_timeout_skip_success", "sqe flags", "a LINK_TIMEOUT with CQE_SKIP_SUCCESS cancelled by its request finishing (a NOP at once, a RECV later): no CQE, the chain goes on; one that fires", d, m, ring2::link_timeout_skip_success),
        sc("drain_timeout", "sqe flags", "IO_DRAIN behind a pending 20 ms TIMEOUT: the drained NOP and the one after wait", d, m, ring2::drain_timeout),
        sc("drain_idle_and_chain", "sqe flags", "IO_DRAIN with nothing in flight, twice; on a chain's head behind a TIMEOUT", d, m, ring2::drain_idle_and_chain),
        sc("async_socket_ops", "sqe flags", "IOSQE_ASYNC on SEND, POLL_ADD, ACCEPT, a linked RECV and SHUTDOWN", d, m, ring2::async_socket_ops),
        sc("nop_variants", "nop", "NOP with IORING_NOP_FILE (open, not open, -1), NOP_CQE32 without CQE32, NOP_TW, FIXED_FILE without FILE", d, m, ring2::nop_variants),
        sc("opcodes_past_last", "invalid", "opcodes IORING_OP_LAST + 1, 128 and 255, each followed by a NOP in the same submission", d, m, ring2::opcodes_past_last),
        sc("timeout_count_3", "timeout", "TIMEOUT with count 3 and a 10 s deadline; three NOPs one submission each", d, m, ring2::timeout_count_3),
        sc("timeout_counts_batch", "timeout", "TIMEOUTs with counts 1 and 3, then 4 NOPs in one submission", d, m, ring2::timeout_counts_batch),
        sc("timeout_count_expires", "timeout", "TIMEOUT of 20 ms with count 5 and one NOP: the deadline comes first", d, m, ring2::timeout_count_expires),
        sc("timeout_counts_skip_timeouts", "timeout", "a TIMEOUT's count leaves out TIMEOUT CQEs: count-1 TIMEOUTs of 40 and 20 ms both fire; a plain TIMEOUT firing completes no count; a count-2 needs two NOPs beside a count-1 completed", d, m, ring2::timeout_counts_skip_timeouts),
        sc("timeout_abs_clocks", "timeout", "absolute TIMEOUTs on MONOTONIC, BOOTTIME, REALTIME long past (-ETIME at once) and far ahead (removed)", d, m, ring2::timeout_abs_clocks),
        sc("timeout_rel_clocks", "timeout", "relative TIMEOUTs of 10 ms on BOOTTIME and REALTIME, and of 0", d, m, ring2::timeout_rel_clocks),
        sc("timeout_bad_timespec", "timeout", "TIMEOUT with a negative second, a negative or 1e9 nanosecond; the valid one removed", d, m, ring2::timeout_bad_timespec),
        sc("timeout_etime_success_count", "timeout", "ETIME_SUCCESS on a linked count TIMEOUT completed by count; a plain linked TIMEOUT that fires cancels its NOP", d, m, ring2::timeout_etime_success_count),
        sc("timeout_remove_fired", "timeout", "TIMEOUT_REMOVE and TIMEOUT_UPDATE of a fired TIMEOUT and of one completed by count", d, m, ring2::timeout_remove_fired),
        sc("timeout_multishot_remove", "timeout", "multishot TIMEOUT with count 0 removed after a firing; TIMEOUT_REMOVE of an ended multishot", d, m, ring2::timeout_multishot_remove),
        sc("timeout_multishot_cancel", "timeout", "ASYNC_CANCEL of a multishot TIMEOUT after its first firing", d, m, ring2::timeout_multishot_cancel),
        // ring mechanics (scenB): cancel, overflow, provided buffers, registered files
        sc("cancel_fd_all_count", "cancel", "ASYNC_CANCEL FD|ALL over 4 requests on a socket (another socket's RECV left alone, it gets its data); again with none left", d, m, ring3::cancel_fd_all_count),
        sc("cancel_op_counts", "cancel", "ASYNC_CANCEL OP|ALL of POLL_ADD across sockets; OP|FD|ALL; ANY of the rest: the counts", d, m, ring3::cancel_op_counts),
        sc("cancel_userdata_keys", "cancel", "ASYNC_CANCEL with FD|USERDATA|ALL and OP|USERDATA: every key must match", d, m, ring3::cancel_userdata_keys),
        sc("cancel_linked", "cancel", "ASYNC_CANCEL of a chain member still waiting, of the running head; of a LINK_TIMEOUT by user_data and by TIMEOUT_REMOVE", d, m, ring3::cancel_linked),
        sc("cancel_timeouts", "cancel", "ASYNC_CANCEL of TIMEOUTs: by fd (none), by user_data, by opcode with ALL, ANY with a count TIMEOUT and a POLL", d, m, ring3::cancel_timeouts),
        sc("cancel_rearm_multishot", "cancel", "cancel then re-arm a multishot POLL_ADD, ACCEPT (a connection queued meanwhile) and RECV (data came meanwhile)", d, m, ring3::cancel_rearm_multishot),
        sc("overflow_link_chains", "overflow", "three chains of 4 linked NOPs into a CQ of 8 without reaping: all 12 in chain order", SMALL, m, ring3::overflow_link_chains),
        sc("overflow_timeouts", "overflow", "a TIMEOUT firing into a full CQ joins the backlog in order; a count TIMEOUT met by backlogged CQEs", SMALL, m, ring3::overflow_timeouts),
        sc("overflow_multishot_poll", "overflow", "a multishot POLL_ADD firing while the CQ is full ends behind the backlog; re-armed", SMALL, m, ring3::overflow_multishot_poll),
        sc("overflow_multishot_timeout", "overflow", "a multishot TIMEOUT firing into a full CQ is ended by it", SMALL, m, ring3::overflow_multishot_timeout),
        sc("overflow_failed_chain", "overflow", "a chain failing mid-way while the CQ holds a backlog: order kept", SMALL, m, ring3::overflow_failed_chain),
        sc("provide_limits", "buffers", "PROVIDE_BUFFERS at id 65535, across 65535, 65536 and 65537 buffers, len 0; REMOVE_BUFFERS counts each group", d, m, ring3::provide_limits),
        sc("remove_then_recv", "buffers", "REMOVE_BUFFERS of 2 of 4, then RECVs take the ids left until -ENOBUFS", d, m, ring3::remove_then_recv),
        sc("bufring_register_errors", "buffers", "buffer ring registration: 3, 0 and 65536 entries, an unknown flag, a group in use by a ring, by a legacy group with and without buffers", d, m, ring3::bufring_register_errors),
        sc("mixed_groups", "buffers", "a legacy group and a ring group side by side, one multishot RECV on each", d, m, ring3::mixed_groups),
        sc("files_change_inflight", "registered", "a RECV through a slot while FILES_UPDATE empties it, and while CLOSE of the slot runs: the data arrives; then -EBADF", d, m, ring3::files_change_inflight),
        sc("files_unregister_inflight", "registered", "UNREGISTER_FILES with a RECV in flight through a slot: it completes with the data", d, m, ring3::files_unregister_inflight),
        sc("files_fixed_vectored", "registered", "IOSQE_FIXED_FILE on SENDMSG, WRITEV, SEND_ZC, a linked RECVMSG and READV", d, m, ring3::files_fixed_vectored),
        sc("drain_after_chain", "sqe flags", "a chain of 3 NOPs then a DRAIN NOP in one submission; a DRAIN NOP behind a chain whose RECV head waits", d, m, ring3::drain_after_chain),
        sc("drain_on_member", "sqe flags", "IO_DRAIN on a chain member (not its head) behind a pending TIMEOUT", d, m, ring3::drain_on_member),
        sc("link_recv_send_chains", "sqe flags", "three linked MSG_WAITALL RECVs take consecutive pieces; three linked SENDs arrive in order", d, m, ring3::link_recv_send_chains),
        sc("hardlink_link_timeout", "timeout", "RECV (HARDLINK) -> LINK_TIMEOUT(20 ms, LINK) -> NOP: the timer fires; does the NOP run", d, m, ring3::hardlink_link_timeout),
        sc("timeout_update_variants", "timeout", "TIMEOUT_UPDATE of a count TIMEOUT (the count is gone), then to an absolute time long past", d, m, ring3::timeout_update_variants),
        sc("timeout_count_chain", "timeout", "a count TIMEOUT counts a failed chain's CQEs; one with CQE_SKIP_SUCCESS NOPs (skipped CQEs do not count)", d, m, ring3::timeout_count_chain),
        sc("cancel_any_chains", "cancel", "ASYNC_CANCEL ANY over two chains with waiting RECV heads; the program re-arms a RECV and gets its data", d, m, ring3::cancel_any_chains),
        sc("cancel_after_poll_update", "cancel", "POLL_REMOVE moves a multishot poll to user_data 9; ASYNC_CANCEL by the old and the new user_data", d, m, ring3::cancel_after_poll_update),
        sc("overflow_cancel_all", "overflow", "8 polls sharing a user_data cancelled with ALL while the CQ holds a backlog: the count first, every -ECANCELED after", SMALL, m, ring3::overflow_cancel_all),
        sc("legacy_refill_rearm", "buffers", "a multishot RECV runs a legacy group dry (-ENOBUFS); provide more, re-arm: the stream goes on", d, m, ring3::legacy_refill_rearm),
        sc("files_sparse_slots", "registered", "a sparse table filled by FILES_UPDATE with SKIP; updates past the end; SENDs through each slot; CLOSE of slots (one empty); the fd still works", d, m, ring3::files_sparse_slots),
        sc("pbuf_status_head", "buffers", "IORING_REGISTER_PBUF_STATUS: a fresh ring's head, after a multishot RECV used 3 buffers; a legacy group, unknown groups, a reserved word, nr_args 2, null", d, m, ring3::pbuf_status_head),
        sc("sync_cancel_register", "cancel", "IORING_REGISTER_SYNC_CANCEL by user_data, FD|ALL, ANY (counts), unknown keys, bad flags, pads, nr_args, an fd not open; then a re-armed RECV", d, m, ring3::sync_cancel_register),
        sc("timeout_in_chain", "timeout", "a TIMEOUT inside a chain: firing (-ETIME) breaks it; completed by its count (0) it goes on", d, m, ring3::timeout_in_chain),
        sc("poll_headed_chain", "sqe flags", "POLL_ADD(POLLIN) -> RECV -> SEND: read when readable, then answer", d, m, ring3::poll_headed_chain),
        sc("provide_while_waiting", "buffers", "a buffer-select RECV armed on an empty legacy group and an empty socket (-ENOBUFS at once); the program provides and re-arms: the buffer is taken", d, m, ring3::provide_while_waiting),
        sc("bufring_unregister_in_use", "buffers", "IORING_UNREGISTER_PBUF_RING while a multishot RECV uses the ring (-ENOBUFS at the next data), its argument checks, a legacy group; registered again, re-armed: nothing lost", d, m, ring3::bufring_unregister_in_use),
        // socket data path, wide (net2, net3)
        sc("connect_link_send", "connect", "CONNECT linked to a SEND in one submission: the SEND runs once connected", d, m, net2::connect_link_send),
        sc("connect_refused_retry", "connect", "CONNECT refused, then a retry on the same socket to a listening peer, then data", d, m, net2::connect_refused_retry),
        sc("connect_refused_then_ops", "connect", "after a refused CONNECT: SEND, RECV, SHUTDOWN, POLL(IN|OUT)", d, m, net2::connect_refused_then_ops),
        sc("connect_bad_args", "connect", "CONNECT with addrlen 8, 0, an AF_UNIX family, a null address; then a good one", d, m, net2::connect_bad_args),
        sc("connect_unspec_fresh", "connect", "CONNECT with AF_UNSPEC on a fresh socket", d, m, net2::connect_unspec_fresh),
        sc("connect_nonblock_socket", "connect", "SOCKET with SOCK_NONBLOCK: CONNECT completes once connected, RECV waits for data", d, m, net2::connect_nonblock_socket),
        sc("connect_isconn", "connect", "CONNECT on a socket connected through CONNECT and on an accepted one: -EISCONN, the connection still works", d, m, net2::connect_isconn),
        sc("shutdown_rdwr", "shutdown", "SHUT_RDWR: the peer sees EOF, RECV returns 0, SEND fails", d, m, net2::shutdown_rdwr),
        sc("shutdown_bad_how", "shutdown", "SHUTDOWN with how 3, -1, 100; the connection unaffected; then SHUT_WR", d, m, net2::shutdown_bad_how),
        sc("shutdown_twice", "shutdown", "SHUT_WR twice, SHUT_RD twice, then SHUT_RDWR", d, m, net2::shutdown_twice),
        sc("shutdown_listener", "shutdown", "SHUTDOWN on a listener: SHUT_WR keeps it listening; SHUT_RD ends a pending ACCEPT and refuses new ones", d, m, net2::shutdown_listener),
        sc("shutdown_half_close_echo", "shutdown", "half-close echo: the peer sends and shuts down, the app reads to EOF, echoes, shuts down", d, m, net2::shutdown_half_close_echo),
        sc("shutdown_rd_then_data", "shutdown", "SHUT_RD, then the peer sends 10 B: two RECVs", d, m, net2::shutdown_rd_then_data),
        sc("shutdown_wr_then_sends", "shutdown", "after SHUT_WR: SEND, SENDMSG, WRITE, WRITEV, SEND_ZC", d, m, net2::shutdown_wr_then_sends),
        sc("reset_then_sends", "send", "after the peer's RST: WRITEV, SENDMSG, SEND, WRITE, SEND_ZC, then RECV", d, m, net2::reset_then_sends),
        sc("fin_then_recv_repeated", "recv", "after the peer's FIN: RECV x3, RECV(WAITALL), RECVMSG, READ all 0; SEND still reaches the peer", d, m, net2::fin_then_recv_repeated),
        sc("close_unread_rst", "close", "CLOSE with the peer's bytes unread: the peer sees a reset", d, m, net2::close_unread_rst),
        sc("close_clean_fin", "close", "SEND 5000 B then CLOSE: the peer reads them then EOF", d, m, net2::close_clean_fin),
        sc("close_then_ops", "close", "after CLOSE: RECV, SEND, POLL_ADD, SHUTDOWN, CONNECT, CLOSE on the number", d, m, net2::close_then_ops),
        sc("close_listener_queued", "close", "CLOSE of a listener with two connections queued: both peers see a reset", d, m, net2::close_listener_queued),
        sc("close_send_then_peer_reset", "close", "CLOSE while a 16 MiB WAITALL SEND waits, then the peer closes unread (RST): the SEND's count", d, m, net2::close_send_then_peer_reset),
        sc("close_listener_oneshot_accept", "close", "CLOSE with a one-shot ACCEPT pending: it takes the next connection; ACCEPT on the closed number", d, m, net2::close_listener_oneshot_accept),
        sc("send_flag_variants", "send", "SEND with MSG_WAITALL, MSG_MORE then none, NOSIGNAL|DONTWAIT, MSG_CONFIRM", d, m, net2::send_flag_variants),
        sc("sendmsg_flag_variants", "send", "SENDMSG with WAITALL, MORE, NOSIGNAL over 1, 3 and 7 iovecs (some empty)", d, m, net2::sendmsg_flag_variants),
        sc("sendmsg_iov_counts", "send", "SENDMSG with 0, 1024 and 1025 iovecs and a null array", d, m, net2::sendmsg_iov_counts),
        sc("send_zero_len", "send", "zero-length SEND (buffer, null), SENDMSG of one empty iovec, WRITE of 0 B; then 5 B", d, m, net2::send_zero_len),
        sc("sendmsg_waitall_large", "send", "SENDMSG of 4 MiB in 16 iovecs with MSG_WAITALL to a reading peer", d, m, net2::sendmsg_waitall_large),
        sc("send_large_reading_peer", "send", "SEND of 4 MiB without WAITALL to a reading peer: the count moved, exactly those bytes", d, m, net2::send_large_reading_peer),
        sc("sendmsg_name_tcp", "send", "SENDMSG with msg_name on connected TCP: 16 B, namelen 0, AF_UNIX family, namelen 200", d, m, net2::sendmsg_name_tcp),
        sc("sendmsg_control", "send", "SENDMSG with msg_control: an IPPROTO_IP cmsg, controllen 8, SCM_RIGHTS, cmsg_len past the buffer", d, m, net2::sendmsg_control),
        sc("send_dontwait_full", "send", "MSG_DONTWAIT SENDs to a peer that does not read until -EAGAIN; after the peer reads, one goes", d, m, net2::send_dontwait_full),
        sc("send_waitall_peer_reset", "send", "a 16 MiB WAITALL SEND waiting, the peer closes unread (RST): the count moved; a SEND after", d, m, net2::send_waitall_peer_reset),
        sc("send_after_peer_fin", "send", "the peer half-closes; SEND and SENDMSG still reach it; CLOSE: EOF", d, m, net2::send_after_peer_fin),
        sc("recv_zero_len", "recv", "RECV of 0 B with data there, on an empty socket (waits), then the data", d, m, net3::recv_zero_len),
        sc("recv_peek_waitall", "recv", "RECV with MSG_PEEK|MSG_WAITALL of 100 B with 40 there (the retry re-peeks: 100 at once); then a WAITALL RECV gets the 100 B", d, m, net3::recv_peek_waitall),
        sc("recvmsg_iov_shapes", "recv", "RECVMSG over iovecs of 0, 10, 0, 20 B; with 0 iovecs; then the rest", d, m, net3::recvmsg_iov_shapes),
        sc("recvmsg_out_fields", "recv", "RECVMSG writes back msg_namelen, msg_controllen, msg_flags (plain and MSG_TRUNC)", d, m, net3::recvmsg_out_fields),
        sc("recv_select_after_eof", "recv", "buffer-select RECV after the peer's FIN: 0, no buffer taken; another connection gets buffer 0", d, m, net3::recv_select_after_eof),
        sc("recvmsg_multishot_header", "recv", "multishot RECVMSG over a buffer ring: the io_uring_recvmsg_out header and payload, two arrivals, then FIN", d, m, net3::recvmsg_multishot_header),
        sc("recvmsg_multishot_small_buffers", "recv", "multishot RECVMSG with buffers too small for header and name; then namelen 0", d, m, net3::recvmsg_multishot_small_buffers),
        sc("recv_waitall_short_eof", "recv", "RECV MSG_WAITALL of 100 B, the peer sends 40 then FIN: 40, then 0", d, m, net3::recv_waitall_short_eof),
        sc("recv_waitall_then_reset", "recv", "RECV MSG_WAITALL of 100 B, the peer sends 40 then RST: 40, -ECONNRESET, 0", d, m, net3::recv_waitall_then_reset),
        sc("recvmsg_waitall_iovs", "recv", "RECVMSG MSG_WAITALL over 5+10+15 B iovecs, data in two parts", d, m, net3::recvmsg_waitall_iovs),
        sc("recv_oob", "recv", "RECV with MSG_OOB without urgent data; then a plain RECV", d, m, net3::recv_oob),
        sc("recv_after_reset", "recv", "after the peer's RST: RECV, RECV, RECVMSG", d, m, net3::recv_after_reset),
        sc("recv_multishot_data_then_reset", "recv", "multishot RECV gets 500 B, then the peer's RST; a re-arm", d, m, net3::recv_multishot_data_then_reset),
        sc("recv_pending_then_shut_rd", "recv", "a pending RECV when the app does SHUT_RD", d, m, net3::recv_pending_then_shut_rd),
        sc("recv_pending_then_shut_wr", "recv", "a pending RECV when the app does SHUT_WR: still pending, then data", d, m, net3::recv_pending_then_shut_wr),
        sc("poll_fresh_socket", "poll", "POLL_ADD masks on a never-connected socket: IN, OUT, all, 0", d, m, net3::poll_fresh_socket),
        sc("poll_after_refused", "poll", "POLL_ADD masks after a refused CONNECT", d, m, net3::poll_after_refused),
        sc("poll_masks_connected", "poll", "POLL_ADD masks on an idle then readable connection; POLLPRI", d, m, net3::poll_masks_connected),
        sc("poll_masks_own_shutdown", "poll", "POLL_ADD masks after the app's SHUT_WR, SHUT_RD, SHUT_RDWR", d, m, net3::poll_masks_own_shutdown),
        sc("poll_masks_both_shut", "poll", "POLL_ADD masks after the peer's FIN and the app's SHUT_WR", d, m, net3::poll_masks_both_shut),
        sc("poll_masks_reset", "poll", "POLL_ADD masks after the peer's RST, then after a RECV took the error", d, m, net3::poll_masks_reset),
        sc("poll_zero_events_reset", "poll", "POLL_ADD with no events: quiet on data, fires on the peer's RST", d, m, net3::poll_zero_events_reset),
        sc("poll_listener_masks", "poll", "POLL_ADD on a listener: POLLOUT never, all events with a connection queued", d, m, net3::poll_listener_masks),
        sc("poll_rdnorm_wrnorm", "poll", "POLLRDNORM / POLLWRNORM / POLLRDBAND asked alone: idle, readable, after FIN", d, m, net3::poll_rdnorm_wrnorm),
        sc("poll_oneshot_pollout_fill", "poll", "one-shot POLLOUT armed after DONTWAIT SENDs met -EAGAIN: fires when the peer drains", d, m, net3::poll_oneshot_pollout_fill),
        sc("poll_multishot_reset", "poll", "multishot POLLIN across the peer's RST, then POLL_REMOVE", d, m, net3::poll_multishot_reset),
        sc("poll_multishot_fin", "poll", "multishot POLLIN|POLLRDHUP: data, the peer's FIN, POLL_REMOVE", d, m, net3::poll_multishot_fin),
        sc("poll_update_multishot", "poll", "multishot POLLIN updated to POLLOUT, then to POLLIN under a new user_data; removed", d, m, net3::poll_update_multishot),
        sc("poll_update_both", "poll", "POLL_REMOVE update of a completed poll; one-shot updated in events and user_data at once", d, m, net3::poll_update_both),
        sc("poll_pending_shutdowns", "poll", "POLLIN pending at the app's SHUT_RD; POLLIN|RDHUP and POLLOUT pending at the peer's close", d, m, net3::poll_pending_shutdowns),
        sc("bind_listen_sqe", "connect", "SOCKET, BIND, LISTEN through SQEs, a peer connects, ACCEPT; BIND twice, a second socket on the port, LISTEN twice, on the accepted connection, on an unbound socket", d, m, net2::bind_listen_sqe),
        sc("listen_after_unlisten", "shutdown", "a listener un-listened by SHUT_RD listens again and accepts", d, m, net2::listen_after_unlisten),
        sc("connect_unspec_connected", "connect", "CONNECT with AF_UNSPEC on a connected socket: the peer sees a reset; RECV, SEND, CONNECT again", d, m, net2::connect_unspec_connected),
        sc("shutdown_wr_send_pending", "shutdown", "SHUT_WR while a 16 MiB WAITALL SEND waits: the SEND's count, the peer reads exactly that then EOF", d, m, net2::shutdown_wr_send_pending),
        sc("recv_multishot_shut_rd", "recv", "a multishot RECV armed when the app does SHUT_RD; later data still readable", d, m, net3::recv_multishot_shut_rd),
        sc("recv_flags_after_fin", "recv", "after the peer's FIN: RECV with DONTWAIT, PEEK, TRUNC, PEEK|DONTWAIT", d, m, net3::recv_flags_after_fin),
        sc("poll_pollout_full_then_shut_wr", "poll", "a one-shot POLLOUT waiting on a full send buffer fires at the app's SHUT_WR", d, m, net3::poll_pollout_full_then_shut_wr),
        sc("close_with_pollout_pending", "close", "CLOSE with a POLLOUT waiting on a full send buffer: it fires once the peer drains", d, m, net3::close_with_pollout_pending),
        sc("accept_after_peer_close", "accept", "the peer connects, sends 20 B and closes before ACCEPT: ACCEPT, RECV of the bytes, then 0", d, m, net3::accept_after_peer_close),
    ];
    v.sort_by_key(|s| area_rank(s.area));
    v
}

fn area_rank(a: &str) -> usize {
    [
        "accept",
        "recv",
        "read/write",
        "buffers",
        "poll",
        "cancel",
        "send",
        "connect",
        "shutdown",
        "close",
        "sqe flags",
        "registered",
        "uring_cmd",
        "msg_ring",
        "timeout",
        "nop",
        "invalid",
        "overflow",
        "sqpoll",
    ]
    .iter()
    .position(|x| *x == a)
    .unwrap_or(99)
}
