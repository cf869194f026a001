//! SYN cookies (issue 11): SYNs from sources that never complete fill a
//! listener's SYN queue; a valid client still connects (through a SYN
//! cookie) and its connection carries data both ways, byte for byte.

mod common;

use common::emit_from;
use ringline_ring::opcode;
use ringline_testkit::pair::*;
use smoltcp::wire::{Ipv4Address, TcpControl, TcpRepr, TcpSeqNumber};

const PORT: u16 = 7100;

/// A SYN from `src:sport` to the server, put on the wire from the client's
/// port (as if from a host that then never answers ARP or the SYN-ACK).
fn forged_syn(p: &mut Pair, src: Ipv4Address, sport: u16, isn: u32) {
    let tcp = TcpRepr {
        src_port: sport,
        dst_port: PORT,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(isn as i32),
        ack_number: None,
        window_len: 64240,
        window_scale: Some(7),
        max_seg_size: Some(1460),
        sack_permitted: true,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    emit_from(p, src, &tcp, false);
}

/// `bursts` bursts of `per_burst` SYNs from random on-link sources (every
/// address of 10.0.0.0/24 but ours and the client's, many ports each: the
/// pair has no gateway), seeded by `seed`; after each burst both engines run
/// three rounds and `after` is called with the burst's number.
fn flood(
    p: &mut Pair,
    seed: u32,
    bursts: usize,
    per_burst: usize,
    mut after: impl FnMut(&mut Pair, usize),
) {
    let mut x = seed;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for burst in 0..bursts {
        for _ in 0..per_burst {
            let r = next();
            let host = 3 + (r % 250) as u8;
            let sport = 1024 + (r >> 16) as u16 % 60000;
            forged_syn(p, Ipv4Address::new(10, 0, 0, host), sport, next());
        }
        p.run(3);
        after(p, burst);
    }
}

#[test]
fn a_full_syn_queue_answers_with_cookies_and_valid_clients_still_connect() {
    let mut p = Pair::new();
    let l = listen(&mut p, PORT, 4);
    // 16 SYNs from on-link addresses that never answer: 4 fill the SYN
    // queue (their SYN-ACKs wait for ARP), 12 get cookies nobody returns.
    for i in 0..16u16 {
        forged_syn(
            &mut p,
            Ipv4Address::new(10, 0, 0, 100 + i as u8),
            2000 + i,
            7 * u32::from(i),
        );
    }
    p.run(20);
    let st = p.s.driver().stats();
    assert_eq!(st.conns_live, 4, "the SYN queue holds 4: {st:?}");
    assert_eq!(st.syn_cookies_sent, 12, "{st:?}");
    // A real client connects through a cookie, and is accepted.
    push_safe(&mut p.s, opcode::AcceptNoAddr::new(l).user_data(1).build());
    let cfd = connect_n(&mut p, PORT, 1, 10)[0];
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 1)));
    let sfd = take(&mut p.s_cqes, 1).unwrap().res;
    assert!(sfd >= 0, "accept: {sfd}");
    let st = p.s.driver().stats();
    assert_eq!(st.syn_cookies_ok, 1, "{st:?}");
    // Data both ways across the translated sequence numbers.
    let up: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let down: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let mut got_up = vec![0u8; up.len()];
    let mut got_down = vec![0u8; down.len()];
    // SAFETY: the four buffers outlive the transfers: the test waits for
    // all four CQEs below before they go out of scope.
    unsafe {
        push(
            &mut p.c,
            opcode::Send::new(cfd, up.as_ptr(), up.len() as u32)
                .flags(libc::MSG_WAITALL)
                .user_data(2)
                .build(),
        );
        push(
            &mut p.s,
            opcode::Send::new(sfd, down.as_ptr(), down.len() as u32)
                .flags(libc::MSG_WAITALL)
                .user_data(3)
                .build(),
        );
        push(
            &mut p.s,
            opcode::Recv::new(sfd, got_up.as_mut_ptr(), got_up.len() as u32)
                .flags(libc::MSG_WAITALL)
                .user_data(4)
                .build(),
        );
        push(
            &mut p.c,
            opcode::Recv::new(cfd, got_down.as_mut_ptr(), got_down.len() as u32)
                .flags(libc::MSG_WAITALL)
                .user_data(5)
                .build(),
        );
    }
    let ok = p.run_until(200_000, |p| {
        p.s_cqes
            .iter()
            .filter(|c| c.user_data == 3 || c.user_data == 4)
            .count()
            == 2
            && p.c_cqes
                .iter()
                .filter(|c| c.user_data == 2 || c.user_data == 5)
                .count()
                == 2
    });
    assert!(
        ok,
        "transfers did not finish: {:?} {:?}",
        p.s_cqes, p.c_cqes
    );
    for (cqes, ud, n) in [(&mut p.s_cqes, 4, up.len()), (&mut p.c_cqes, 5, down.len())] {
        assert_eq!(take(cqes, ud).unwrap().res, n as i32);
    }
    assert!(got_up == up, "client to server bytes differ");
    assert!(got_down == down, "server to client bytes differ");
    // After the flood's half-open entries time out (the handshake timeout:
    // their SYN-ACKs went to the MAC the SYNs came from, and nobody
    // answered), the queue is free again and a SYN is answered statefully.
    let before = p.s.driver().stats().syn_cookies_sent;
    p.clock
        .fetch_add(31_000_000, std::sync::atomic::Ordering::Relaxed);
    p.run(100);
    assert_eq!(
        p.s.driver().stats().conns_live,
        1,
        "half-open entries freed"
    );
    let c2 = connect_n(&mut p, PORT, 1, 20)[0];
    assert!(c2 >= 0);
    assert_eq!(
        p.s.driver().stats().syn_cookies_sent,
        before,
        "no cookie needed"
    );
}

/// A flood of SYNs from ever-new sources (20,000 here; each answered by a
/// cookie once the SYN queue is full, and no state kept for it): a valid
/// client connects in the middle of it and moves data, and the engine's
/// tables stay bounded (connection slots at the SYN queue's size).
#[test]
fn a_flood_from_random_sources_keeps_state_bounded_and_lets_clients_in() {
    let mut p = Pair::new();
    let l = listen(&mut p, PORT, 64);
    push_safe(&mut p.s, opcode::AcceptNoAddr::new(l).user_data(1).build());
    let mut cfd = None;
    flood(&mut p, 0x9e37_79b9, 40, 500, |p, burst| {
        if burst == 20 {
            cfd = Some(connect_n(p, PORT, 1, 10)[0]);
        }
    });
    let cfd = cfd.unwrap();
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 1)));
    let sfd = take(&mut p.s_cqes, 1).unwrap().res;
    assert!(sfd >= 0, "accept: {sfd}");
    let st = p.s.driver().stats();
    assert!(st.syn_cookies_sent >= 19_000, "{st:?}");
    assert!(st.conns_live <= 64 + 1, "state stays bounded: {st:?}");
    // The client's connection works.
    let msg = b"through the flood";
    let mut got = [0u8; 17];
    // SAFETY: `msg` is static; `got` outlives the RECV, whose CQE is awaited.
    unsafe {
        push(
            &mut p.c,
            opcode::Send::new(cfd, msg.as_ptr(), msg.len() as u32)
                .user_data(2)
                .build(),
        );
        push(
            &mut p.s,
            opcode::Recv::new(sfd, got.as_mut_ptr(), got.len() as u32)
                .flags(libc::MSG_WAITALL)
                .user_data(3)
                .build(),
        );
    }
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 3)));
    assert_eq!(take(&mut p.s_cqes, 3).unwrap().res, 17);
    assert_eq!(&got, msg);
}

/// A listener whose backlog is as large as the connection table (as
/// `ringline echo`'s, 65535, with 65536 connections): the SYN queue's own
/// cap (`max_syn_backlog`, at most half the table) answers the flood with
/// cookies before it fills the table, so a valid client's returning cookie
/// ACK still finds a slot. Before the cap, half-open connections took
/// every slot and the client's cookie ACK was dropped.
#[test]
fn a_flood_against_a_huge_backlog_leaves_slots_for_cookie_connections() {
    let mut o = PairOpts::default();
    o.server.max_connections = 256;
    o.server.max_syn_backlog = 2048;
    let mut p = Pair::with(o);
    let l = listen(&mut p, PORT, 65535);
    push_safe(&mut p.s, opcode::AcceptNoAddr::new(l).user_data(1).build());
    flood(&mut p, 0x1234_5678, 10, 200, |_, _| {});
    let st = p.s.driver().stats();
    assert!(
        st.conns_live <= 128,
        "half-open capped at half the table: {st:?}"
    );
    assert!(st.syn_cookies_sent >= 1_800, "{st:?}");
    let cfd = connect_n(&mut p, PORT, 1, 10)[0];
    assert!(p.run_until(10_000, |p| p.s_cqes.iter().any(|c| c.user_data == 1)));
    let sfd = take(&mut p.s_cqes, 1).unwrap().res;
    assert!(sfd >= 0, "accept: {sfd}");
    assert!(cfd >= 0);
}

/// Not a check: a workload for `valgrind --tool=callgrind` (the engine's
/// per-SYN cost in the cookie path). Run with `--ignored flood_cost`.
#[test]
#[ignore]
fn flood_cost() {
    let mut o = PairOpts::default();
    o.server.max_connections = 4096; // valgrind cannot reserve the default arena
    o.client.max_connections = 4096;
    let mut p = Pair::with(o);
    let _l = listen(&mut p, PORT, 16);
    flood(&mut p, 0x9e37_79b9, 50, 400, |_, _| {});
    let st = p.s.driver().stats();
    eprintln!("{st:?}");
}
