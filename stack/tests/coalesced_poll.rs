//! ringline's coalesced persistent poll (uepoll semantics): 10,000 polled
//! sockets under continuous traffic with a CQ of 16,384 entries never
//! overflow, and no readiness is lost.

use std::sync::atomic::{AtomicU32, Ordering};

use ringline::EngineConfig;
use ringline_ring::abi::*;
use ringline_ring::opcode;
use ringline_ring::ring::RingConfig;
use ringline_testkit::pair::*;

const N: usize = 10_000;
const PORT: u16 = 7300;
const T_POLL: u64 = 1 << 40;
const T_RECV: u64 = 2 << 40;

fn coalesced_poll(fd: i32, word: &AtomicU32, ud: u64) -> Sqe {
    opcode::PollAddWord::new(fd, libc::POLLIN as u32, word)
        .user_data(ud)
        .build()
}

#[test]
fn ten_thousand_sockets_never_overflow_and_lose_nothing() {
    let ring = RingConfig {
        sq_entries: 4096,
        cq_entries: Some(16384),
        ..RingConfig::default()
    };
    let mut o = PairOpts {
        server_ring: ring.clone(),
        client_ring: ring,
        ..PairOpts::default()
    };
    let small = |e: EngineConfig| EngineConfig {
        rx_buffer: 4096,
        tx_buffer: 4096,
        rx_budget: 8192,
        ..e
    };
    o.server = small(o.server);
    o.client = small(o.client);
    let mut p = Pair::with(o);

    let l = listen(&mut p, PORT, 65535);
    push_safe(&mut p.s, opcode::AcceptMulti::new(l).user_data(1).build());
    let clients = connect_n(&mut p, PORT, N, 1_000_000);
    let mut servers = Vec::new();
    assert!(p.run_until(100_000, |p| {
        for c in std::mem::take(&mut p.s_cqes) {
            assert_eq!(c.user_data, 1);
            assert!(c.res >= 0);
            servers.push(c.res);
            if !more(c.flags) {
                push_safe(&mut p.s, opcode::AcceptMulti::new(l).user_data(1).build());
            }
        }
        servers.len() == N
    }));

    // One ready word per server socket, armed once for the whole test.
    let words: Vec<AtomicU32> = (0..N).map(|_| AtomicU32::new(0)).collect();
    for (i, &fd) in servers.iter().enumerate() {
        // SAFETY: `words` is never resized and lives to the end of the test,
        // after the last engine step; the test touches the words only
        // atomically, as the engine does.
        unsafe { push(&mut p.s, coalesced_poll(fd, &words[i], T_POLL | i as u64)) };
    }
    p.step();

    // Traffic: the sockets form 10 groups; each group gets 8 bytes per socket
    // in 4 consecutive rounds, then the next group. The server reaps only
    // every 8th round, so several wake-ups hit a socket whose word is still
    // set. Every socket is active in turn, and the CQ only ever holds the
    // poll CQEs (at most one per socket) and the app's own recv CQEs.
    let payload = [0x5au8; 8];
    let mut sent = vec![0usize; N];
    let mut got = vec![0usize; N];
    let mut bufs = vec![0u8; N * 512];
    // The receives write through this pointer; the test never touches `bufs`
    // otherwise (not even to borrow it) until it drops.
    let bufs_base = bufs.as_mut_ptr();
    let mut recv_armed = vec![false; N];
    let mut poll_cqes = 0u64;
    p.reap_server = false;
    let rounds = 160;
    // Traffic rounds, then enough rounds for retransmissions (virtual time
    // jumps 2 ms per idle round; smoltcp's RTO floor is 1 s).
    for round in 0..rounds + 20_000 {
        if round < rounds {
            for i in ((round / 4) % 10..N).step_by(10) {
                let send = opcode::Send::new(clients[i], payload.as_ptr(), 8);
                // SAFETY: `payload` is never written and lives to the end of
                // the test, after the last engine step.
                unsafe { push(&mut p.c, send.user_data(7).build()) };
                sent[i] += 8;
            }
        }
        p.step();
        for c in p.c_cqes.drain(..) {
            assert_eq!(c.res, 8, "client send");
        }
        assert!(!p.s.cq_has_overflow(), "CQ overflowed at round {round}");
        if round % 8 != 0 {
            continue;
        }
        reap(&mut p.s, &mut p.s_cqes);
        for c in std::mem::take(&mut p.s_cqes) {
            let i = (c.user_data & 0xffff_ffff) as usize;
            match c.user_data & !0xffff_ffff {
                T_POLL => {
                    assert!(more(c.flags), "coalesced poll must stay armed");
                    assert!(c.res as u32 & libc::POLLIN as u32 != 0);
                    poll_cqes += 1;
                    // Take the readiness (clears the word) and read what is there.
                    let ev = words[i].swap(0, Ordering::AcqRel);
                    assert!(ev & libc::POLLIN as u32 != 0, "CQE without ready bits");
                    if !recv_armed[i] {
                        let b = bufs_base.wrapping_add(i * 512);
                        // Read what is there now, as an epoll-ET app reads until
                        // EAGAIN; later arrivals go to the ready word.
                        let recv = opcode::Recv::new(servers[i], b, 512)
                            .flags(libc::MSG_DONTWAIT)
                            .user_data(T_RECV | i as u64);
                        // Socket i's 512 bytes of `bufs` are this RECV's alone
                        // (one in flight per socket, recv_armed). SAFETY: and
                        // `bufs` lives past the last engine step.
                        unsafe { push(&mut p.s, recv.build()) };
                        recv_armed[i] = true;
                    }
                }
                T_RECV => {
                    assert!(c.res > 0 || c.res == -libc::EAGAIN, "recv {}", c.res);
                    got[i] += c.res.max(0) as usize;
                    // Data arriving after this point sets the (cleared) word
                    // again, which queues a new poll CQE: only the poll CQE's
                    // handler clears the word, so each CQE finds its bits.
                    recv_armed[i] = false;
                }
                _ => panic!("unexpected CQE {c:?}"),
            }
        }
        if round >= rounds && got == sent {
            break;
        }
    }
    let lost: Vec<usize> = (0..N).filter(|&i| got[i] != sent[i]).collect();
    if let Some(&i) = lost.first() {
        panic!(
            "readiness lost on {} sockets; first {i}: got {} sent {} word {:#x} recv_armed {}",
            lost.len(),
            got[i],
            sent[i],
            words[i].load(Ordering::Relaxed),
            recv_armed[i]
        );
    }
    let st = p.s.driver().ring_stats();
    assert_eq!(
        st.overflowed_total, 0,
        "no CQE ever went to the overflow backlog"
    );
    let cs = p.c.driver().stats();
    assert_eq!(
        cs.tx_dropped, 0,
        "a full wire defers egress instead of dropping: {cs:?}"
    );
    let es = p.s.driver().stats();
    assert!(es.polls_coalesced > 0, "wake-ups were coalesced: {es:?}");
    assert!(
        poll_cqes < (rounds as u64) * (N as u64) / 10,
        "fewer CQEs than sends"
    );
}
