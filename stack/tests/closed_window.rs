//! A receive window closed by an application that stops reading (issue 11).
//!
//! The server's socket is smoltcp's, which drops every segment that lies
//! outside a closed receive window whole, its ACK too. A peer whose data
//! meets the closed window (it was sent before the window closed, or into
//! an edge that moved back) then has its acknowledgments ignored for as
//! long as the window stays closed: the server's send buffer never drains,
//! and an application that waits for its sends before it reads again never
//! reads. The engine feeds such a segment's ACK to the socket alone first
//! (RFC 9293 3.10.7.4: ACKs are taken even with the window closed; Linux
//! takes a segment's ACK when it starts at the window's right edge).
//!
//! The client here is a raw peer written in the test (the client engine is
//! never stepped; its port is ours), so the segments are exactly these.

mod common;

use common::*;
use ringline_ring::opcode;
use ringline_testkit::pair::*;

/// The server's receive buffer: 256 KiB, so its window scale is 3.
const RX_BUF: usize = 256 << 10;

/// The server accepts the raw client's connection; sends `out` (never
/// acknowledged by the client until the window is closed) and does not
/// read. The client fills the server's receive buffer to the byte; then a
/// segment of 16 bytes meets the closed window (at its edge or `beyond` it)
/// carrying the ACK of
/// everything the server sent. The server hears that ACK (it does not
/// resend its data), answers the segment with an ACK, and once its
/// application reads, every byte the client sent arrives.
fn closed_window_case(beyond: u32) {
    let mut o = PairOpts::default();
    o.server.rx_buffer = RX_BUF;
    o.wire.checksum_offload = false;
    let mut p = Pair::with(o);
    let (mut raw, fd) = connect_raw(&mut p);
    let sa = raw.heard.iter().find(|s| s.syn).expect("a SYN-ACK");
    assert_eq!(sa.ws, Some(3), "256 KiB of buffer: scale 3");

    // The server sends 10,000 bytes; the client does not acknowledge them.
    let out: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
    let send = opcode::Send::new(fd, out.as_ptr(), out.len() as u32).user_data(501);
    // SAFETY: `out` lives to the end of this function, after the server's
    // last step.
    unsafe { push(&mut p.s, send.build()) };
    raw.run(&mut p, 20, 20);
    let data_end = raw.srv_nxt.wrapping_add(out.len() as u32);
    assert_eq!(raw.srv_hi, data_end, "the server sent its data");

    // The client fills the receive buffer (its ACKs stay at the SYN-ACK).
    let pattern: Vec<u8> = (0..RX_BUF as u32).map(|i| (i % 241) as u8).collect();
    for chunk in pattern.chunks(1400) {
        emit(&mut p, &seg(raw.nxt, raw.srv_nxt, 8192, chunk), false);
        raw.nxt = raw.nxt.wrapping_add(chunk.len() as u32);
        raw.run(&mut p, 1, 20);
    }
    raw.run(&mut p, 50, 20);
    let l = raw.last().clone();
    assert_eq!(l.ack, raw.nxt, "the server took it all");
    assert_eq!(l.win, 0, "its window is closed: {l:?}");

    // A segment that meets the closed window, with the ACK of everything
    // the server sent; first a copy with a bad checksum, which is dropped
    // and counted.
    let extra = [9u8; 16];
    let late = seg(raw.nxt.wrapping_add(beyond), data_end, 8192, &extra);
    let before = p.s.driver().stats();
    emit(&mut p, &late, true);
    raw.run(&mut p, 5, 20);
    let mid = p.s.driver().stats();
    assert_eq!(mid.bad_checksum, before.bad_checksum + 1);
    assert_eq!(mid.closed_window_acks, before.closed_window_acks);
    let heard = raw.heard.len();
    emit(&mut p, &late, false);
    raw.run(&mut p, 5, 20);
    let after = p.s.driver().stats();
    assert_eq!(
        after.closed_window_acks,
        before.closed_window_acks + 1,
        "{after:?}"
    );
    let answer = raw.heard[heard..]
        .iter()
        .find(|s| s.len == 0 && !s.rst)
        .expect("the segment is answered with an ACK");
    assert_eq!((answer.ack, answer.win), (raw.nxt, 0));

    // Time passes (30 s): the server resends none of its acknowledged data.
    let heard = raw.heard.len();
    raw.run(&mut p, 300, 100_000);
    let resent: Vec<_> = raw.heard[heard..].iter().filter(|s| s.len > 0).collect();
    assert!(
        resent.is_empty(),
        "the server resent data the client acknowledged: {resent:?}"
    );
    let sent = take(&mut p.s_cqes, 501).expect("the SEND completed");
    assert_eq!(sent.res, out.len() as i32);

    // The application reads everything: the window opens and every byte
    // the client sent (not the 16 past the window) is there, in order.
    let mut got = vec![0u8; RX_BUF + 64];
    let mut have = 0;
    for ud in 600.. {
        let recv = opcode::Recv::new(fd, got[have..].as_mut_ptr(), (got.len() - have) as u32)
            .user_data(ud);
        // SAFETY: `got` lives to the end of this function; each RECV
        // completes (waited for below) before the next is pushed.
        unsafe { push(&mut p.s, recv.build()) };
        raw.run(&mut p, 20, 20);
        let c = take(&mut p.s_cqes, ud).expect("the RECV completed");
        assert!(c.res > 0, "recv: {}", c.res);
        have += c.res as usize;
        if have >= RX_BUF {
            break;
        }
    }
    assert_eq!(have, RX_BUF);
    assert!(got[..have] == pattern[..], "the bytes arrived in order");
    assert!(raw.last().win > 0, "the window opened: {:?}", raw.last());
}

/// A segment that starts at the closed window's edge (Linux takes its ACK).
#[test]
fn a_segment_at_the_edge_of_a_closed_window_has_its_ack_heard() {
    closed_window_case(0);
}

/// A segment past the closed window's edge by one unit of the window
/// scale (sent into an edge that moved back by smoltcp's rounding): its
/// ACK is heard too, as RFC 9293 asks. (Past that it is outside the window
/// and nothing of it is read: `forged.rs`.)
#[test]
fn a_segment_past_a_closed_window_has_its_ack_heard() {
    closed_window_case(8);
}

/// Sends `data` from the raw client at its next sequence number, in
/// segments of 1,400 bytes, and moves that number past it.
fn send_in_order(p: &mut Pair, raw: &mut Raw, data: &[u8]) {
    for chunk in data.chunks(1400) {
        emit(p, &seg(raw.nxt, raw.srv_nxt, 8192, chunk), false);
        raw.nxt = raw.nxt.wrapping_add(chunk.len() as u32);
        raw.run(p, 1, 20);
    }
}

/// A RECV of exactly `buf.len()` bytes (MSG_WAITALL) on `fd`, run to its
/// completion.
fn recv_all(p: &mut Pair, raw: &mut Raw, fd: i32, buf: &mut [u8], ud: u64) {
    let recv = opcode::Recv::new(fd, buf.as_mut_ptr(), buf.len() as u32)
        .flags(libc::MSG_WAITALL)
        .user_data(ud);
    // SAFETY: `buf` outlives the RECV, which completes (waited for below)
    // before this returns.
    unsafe { push(&mut p.s, recv.build()) };
    for _ in 0..1000 {
        if let Some(c) = take(&mut p.s_cqes, ud) {
            assert_eq!(c.res, buf.len() as i32, "the RECV took it all");
            return;
        }
        raw.run(p, 1, 100);
    }
    panic!("the RECV did not complete");
}

/// An idle connection whose receive buffer holds data out of order (a
/// segment lost, 100,000 bytes after it kept by smoltcp's assembler):
/// the reclaimer gives back the rest of the ring and keeps the queue and
/// what lies past it, up to the peer's highest byte. Once the hole is
/// filled, every byte reads back in order. (Before, a ring holding data
/// out of order was never trimmed.)
#[test]
fn an_idle_receive_ring_holding_data_out_of_order_keeps_it_and_gives_back_the_rest() {
    let mut o = PairOpts::default();
    o.server.rx_buffer = 1 << 20;
    o.wire.checksum_offload = false;
    let mut p = Pair::with(o);
    let (mut raw, fd) = connect_raw(&mut p);

    // 400,000 bytes in order, read: the ring moves well past what a trim keeps.
    let first: Vec<u8> = (0..400_000u32).map(|i| (i % 239) as u8).collect();
    send_in_order(&mut p, &mut raw, &first);
    let mut got = vec![0u8; first.len()];
    recv_all(&mut p, &mut raw, fd, &mut got, 700);
    assert!(got == first);

    // 1,400 bytes lost, then 100,000 after them.
    let second: Vec<u8> = (0..101_400u32).map(|i| (i % 233) as u8).collect();
    let hole = raw.nxt;
    raw.nxt = hole.wrapping_add(1400);
    send_in_order(&mut p, &mut raw, &second[1400..]);
    raw.run(&mut p, 5, 20);
    let l = raw.last().clone();
    assert_eq!(l.ack, hole, "the server still waits for the lost segment");
    assert_eq!(l.sack.first().map(|b| b.1), Some(raw.nxt), "{l:?}");

    // Three seconds with nothing from the client: the connection is idle.
    let before = p.s.driver().stats();
    raw.run(&mut p, 300, 10_000);
    let s = p.s.driver().stats();
    assert!(
        s.buffer_trims > before.buffer_trims,
        "the receive ring holding data out of order was trimmed: {s:?}"
    );
    // The receive ring keeps 100,000 bytes out of order and 64 KiB after
    // them; the transmit ring, unused, 64 KiB. Untrimmed, the receive ring
    // could hold the 501,400 bytes that went through it.
    assert!(
        s.buffer_committed < 300_000,
        "committed {} (was {})",
        s.buffer_committed,
        before.buffer_committed
    );

    // The lost segment comes: every byte, in order.
    emit(
        &mut p,
        &seg(hole, raw.srv_nxt, 8192, &second[..1400]),
        false,
    );
    raw.run(&mut p, 5, 20);
    assert_eq!(raw.last().ack, raw.nxt, "the hole is filled");
    let mut got = vec![0u8; second.len()];
    recv_all(&mut p, &mut raw, fd, &mut got, 701);
    assert!(
        got == second,
        "the bytes held out of order survived the trim"
    );
}

/// Data out of order counts against the memory budget, and under it data
/// past a hole is refused first: with a 128 KiB budget, a peer that sends
/// 300,000 bytes past a lost segment has the part past the budget dropped
/// (counted in `rx_budget_drops`, its ACK kept), while the segment that
/// fills the hole is always taken. Before, data out of order was not
/// counted: a peer could fill every connection's receive buffer past a
/// hole whatever the budget. Every byte arrives once the peer resends
/// from the server's ACK.
#[test]
fn data_out_of_order_counts_against_the_buffer_budget() {
    const BUDGET: usize = 128 << 10;
    let mut o = PairOpts::default();
    o.server.rx_buffer = 1 << 20;
    o.server.buffer_budget = BUDGET;
    o.wire.checksum_offload = false;
    let mut p = Pair::with(o);
    let (mut raw, fd) = connect_raw(&mut p);

    let data: Vec<u8> = (0..301_400u32).map(|i| (i % 229) as u8).collect();
    let base = raw.nxt;
    raw.nxt = base.wrapping_add(1400);
    let before = p.s.driver().stats();
    send_in_order(&mut p, &mut raw, &data[1400..]);
    raw.run(&mut p, 5, 20);
    let s = p.s.driver().stats();
    assert!(
        s.rx_budget_drops > before.rx_budget_drops,
        "data past the hole was refused once the budget was used: {s:?}"
    );
    assert!(
        s.buffer_queued_peak <= (BUDGET + (64 << 10)) as u64,
        "peak {} with a budget of {BUDGET}: {s:?} sack {:?}",
        s.buffer_queued_peak,
        raw.last().sack
    );
    // SACKed up to where the server stopped taking data.
    let held_to = raw.last().sack.first().map(|b| b.1).expect("a SACK block");
    assert!(
        held_to.wrapping_sub(base) < 300_000,
        "not all of it was held"
    );

    // The lost segment is taken whatever the budget; then the client goes
    // on from the server's ACK, as a sender would, while the application
    // reads.
    emit(&mut p, &seg(base, raw.srv_nxt, 8192, &data[..1400]), false);
    raw.run(&mut p, 5, 20);
    let acked = raw.last().ack;
    assert_eq!(acked, held_to, "the hole filled, what was held is in order");
    let mut got = vec![0u8; data.len()];
    let recv = opcode::Recv::new(fd, got.as_mut_ptr(), got.len() as u32)
        .flags(libc::MSG_WAITALL)
        .user_data(702);
    // SAFETY: `got` outlives the RECV, which completes (waited for below).
    unsafe { push(&mut p.s, recv.build()) };
    for _ in 0..200 {
        let from = raw.last().ack;
        let off = from.wrapping_sub(base) as usize;
        if off >= data.len() {
            break;
        }
        raw.nxt = from;
        let end = (off + 64_000).min(data.len());
        send_in_order(&mut p, &mut raw, &data[off..end]);
        raw.run(&mut p, 5, 100);
    }
    raw.run(&mut p, 10, 100);
    let c = take(&mut p.s_cqes, 702).expect("the RECV completed");
    assert_eq!(c.res, data.len() as i32);
    assert!(got == data, "every byte, in order");
}
