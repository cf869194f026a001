//! Segments outside a connection's receive window (issue 11: "a forged
//! frame is dropped and counted"): smoltcp, like Linux, drops such a
//! segment without reading its ACK, and so must loss recovery, which reads
//! every segment before the socket does. Otherwise anyone who knows a
//! connection's addresses and ports, but not its sequence numbers, could
//! mark data SACKed with one segment, and the data would never be sent
//! again.
//!
//! The client is the raw peer of `common` (the client engine never runs).

mod common;

use common::*;
use ringline_ring::opcode;
use ringline_testkit::pair::*;

/// A server (checksums filled and checked) whose accepted socket has sent
/// 10,000 bytes to the raw client, which acknowledges none of them: the
/// pair, the client, the bytes (kept alive for the SEND, user data 501),
/// and where they start and end.
fn ten_kb_unacknowledged() -> (Pair, Raw, Vec<u8>, u32, u32) {
    let mut o = PairOpts::default();
    o.wire.checksum_offload = false;
    let mut p = Pair::with(o);
    let (mut raw, fd) = connect_raw(&mut p);
    let out: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let send = opcode::Send::new(fd, out.as_ptr(), out.len() as u32).user_data(501);
    // SAFETY: `out` is moved to the caller, which keeps it to the end of
    // its test, after the server's last step (a Vec's heap buffer does not
    // move with it).
    unsafe { push(&mut p.s, send.build()) };
    raw.run(&mut p, 20, 20);
    let (base, end) = (raw.srv_nxt, raw.srv_nxt.wrapping_add(out.len() as u32));
    assert_eq!(raw.srv_hi, end, "the server sent its data");
    (p, raw, out, base, end)
}

/// The server sends 10,000 bytes, all lost on the way (the client
/// acknowledges none). A segment far outside the server's receive window,
/// with a good checksum, claims that the client holds all but the first
/// 1,000 bytes (a SACK block). The server ignores it (and counts it), so
/// its retransmission timeout resends everything, not only the first
/// segment; then the client acknowledges it all and the send completes.
#[test]
fn a_forged_sack_outside_the_window_does_not_stop_resends() {
    let (mut p, mut raw, out, base, end) = ten_kb_unacknowledged();
    let sent_first = raw.heard.len();

    let before = p.s.driver().stats();
    let mut forged = seg(raw.nxt.wrapping_add(1 << 31), base, 8192, &[]);
    forged.sack_ranges[0] = Some((base.wrapping_add(1000), end));
    emit(&mut p, &forged, false);
    raw.run(&mut p, 5, 20);
    let st = p.s.driver().stats();
    assert_eq!(st.out_of_window, before.out_of_window + 1, "{st:?}");
    assert_eq!(
        st.fast_retransmits, before.fast_retransmits,
        "no repair on its word"
    );

    // 3 s: the timeouts resend. Every byte after the first 1,000 goes again.
    raw.run(&mut p, 300, 10_000);
    let mut covered = vec![false; out.len()];
    for s in raw.heard[sent_first..].iter().filter(|s| s.len > 0) {
        let from = s.seq.wrapping_sub(base) as usize;
        for c in covered.iter_mut().skip(from).take(s.len) {
            *c = true;
        }
    }
    let missing = covered[1000..].iter().filter(|&&c| !c).count();
    assert_eq!(missing, 0, "bytes the forged block named were never resent");

    // The client acknowledges everything: the connection goes on.
    emit(&mut p, &seg(raw.nxt, end, 8192, &[]), false);
    raw.run(&mut p, 5, 20);
    let c = take(&mut p.s_cqes, 501).expect("the SEND completed");
    assert_eq!(c.res, out.len() as i32);
}

/// In-window segments still count: the same SACK block in a segment at
/// `rcv.nxt` is read (the first 1,000 bytes are then resent alone, at once,
/// not after a timeout).
#[test]
fn the_same_sack_in_the_window_is_read() {
    let (mut p, mut raw, _out, base, end) = ten_kb_unacknowledged();
    let sent_first = raw.heard.len();
    let before = p.s.driver().stats();
    let mut ack = seg(raw.nxt, base, 8192, &[]);
    ack.sack_ranges[0] = Some((base.wrapping_add(1000), end));
    emit(&mut p, &ack, false);
    raw.run(&mut p, 5, 20);
    let st = p.s.driver().stats();
    assert_eq!(st.out_of_window, before.out_of_window);
    let resent: Vec<_> = raw.heard[sent_first..]
        .iter()
        .filter(|s| s.len > 0)
        .map(|s| (s.seq.wrapping_sub(base), s.len))
        .collect();
    assert_eq!(resent, vec![(0, 1000)], "the hole alone, at once");
}

/// A peer that SACKs data and then drops it (reneging, RFC 2018 section
/// 8): it acknowledges the repaired hole and no more, and takes only what
/// comes in order from then on. The server's first retransmission timeout
/// sees the cumulative ACK stop where a SACKed block starts, forgets the
/// blocks and resends everything from there, in one timeout (not one
/// probe per segment).
#[test]
fn a_peer_that_drops_data_it_sacked_gets_it_again() {
    let (mut p, mut raw, out, base, end) = ten_kb_unacknowledged();
    // Everything but the first 1,000 bytes reported held.
    let mut ack = seg(raw.nxt, base, 8192, &[]);
    ack.sack_ranges[0] = Some((base.wrapping_add(1000), end));
    emit(&mut p, &ack, false);
    let mut seen = raw.heard.len();
    // From here on the client keeps only what arrives in order.
    let mut have = 0u32;
    let mut rounds = 0;
    while have < out.len() as u32 && rounds < 1000 {
        raw.run(&mut p, 1, 10_000);
        rounds += 1;
        let before = have;
        for s in raw.heard[seen..].iter().filter(|s| s.len > 0) {
            let from = s.seq.wrapping_sub(base);
            if from <= have && from + s.len as u32 > have {
                have = from + s.len as u32;
            }
        }
        seen = raw.heard.len();
        if have != before {
            emit(
                &mut p,
                &seg(raw.nxt, base.wrapping_add(have), 8192, &[]),
                false,
            );
        }
    }
    let st = p.s.driver().stats();
    assert_eq!(
        have,
        out.len() as u32,
        "after {rounds} rounds of 10 ms: {st:?}"
    );
    // One timeout resends it all (about 50 ms here); a probe per segment
    // would take about 480 ms, and longer the more segments were SACKed.
    assert!(rounds <= 20, "{rounds} rounds of 10 ms: {st:?}");
    assert!(st.sack_reneging >= 1, "{st:?}");
    raw.run(&mut p, 5, 20);
    let c = take(&mut p.s_cqes, 501).expect("the SEND completed");
    assert_eq!(c.res, out.len() as i32);
}
