//! The receive side's SACK option (RFC 2018): smoltcp puts one block in an
//! ACK, the one holding the segment that triggered it; a receiver "SHOULD
//! include as many distinct SACK blocks as possible", the most recent first,
//! so that a sender that lost an ACK still hears of every block (Linux sends
//! up to four, three beside timestamps). The engine adds the other blocks it
//! saw arrive out of order on the way out.
//!
//! The blocks are read from the socket's own ACKs (smoltcp's one block),
//! never from the segments received: data the socket dropped (past the
//! window, or past its assembler's holes) is never reported.
//!
//! The client is the raw peer of `common` (the client engine never runs).

mod common;

use common::*;
use ringline_testkit::pair::*;

#[test]
fn acks_carry_every_out_of_order_block_most_recent_first() {
    // Checksums filled and checked (the rewritten ACKs' included).
    let mut o = PairOpts::default();
    o.wire.checksum_offload = false;
    let mut p = Pair::with(o);
    let (mut raw, _fd) = connect_raw(&mut p);
    let base = raw.nxt;
    let data = [7u8; 1000];
    // In order: [0, 1000). Then four blocks with a hole below each:
    // [2000, 3000), [4000, 5000), [6000, 7000), [8000, 9000).
    let send = |p: &mut Pair, raw: &mut Raw, off: u32| {
        let s = seg(base.wrapping_add(off), raw.srv_nxt, 8192, &data);
        emit(p, &s, false);
        raw.run(p, 3, 20);
    };
    send(&mut p, &mut raw, 0);
    let b = |l: u32, r: u32| (base.wrapping_add(l), base.wrapping_add(r));
    send(&mut p, &mut raw, 2000);
    assert_eq!(raw.last().sack, vec![b(2000, 3000)]);
    // The second block's ACK already names the first.
    send(&mut p, &mut raw, 4000);
    assert_eq!(raw.last().sack, vec![b(4000, 5000), b(2000, 3000)]);
    for off in [6000, 8000] {
        send(&mut p, &mut raw, off);
    }
    let last = raw.last().clone();
    assert_eq!(last.ack, base.wrapping_add(1000), "{last:?}");
    assert_eq!(
        last.sack,
        vec![b(8000, 9000), b(6000, 7000), b(4000, 5000), b(2000, 3000)],
        "the triggering block first, then the others, most recent first"
    );
    // A segment past the receive window (4 MiB): the socket drops it, so no
    // ACK may report it.
    send(&mut p, &mut raw, 8 << 20);
    // A segment that joins two blocks: the merged block goes first, the
    // others keep their order.
    send(&mut p, &mut raw, 5000);
    assert_eq!(
        raw.last().sack,
        vec![b(4000, 7000), b(8000, 9000), b(2000, 3000)],
        "{:?}",
        raw.last()
    );
    // The first hole filled: the ACK moves past [2000, 3000), which is no
    // longer reported, and the rest still are.
    send(&mut p, &mut raw, 1000);
    let last = raw.last().clone();
    assert_eq!(last.ack, base.wrapping_add(3000));
    assert_eq!(last.sack, vec![b(4000, 7000), b(8000, 9000)], "{last:?}");
    let st = p.s.driver().stats();
    assert!(st.sack_blocks_added >= 2, "{st:?}");
    // Every hole filled: no SACK option any more.
    send(&mut p, &mut raw, 3000);
    send(&mut p, &mut raw, 7000);
    let last = raw.last().clone();
    assert_eq!(last.ack, base.wrapping_add(9000));
    assert!(last.sack.is_empty(), "{last:?}");
}
