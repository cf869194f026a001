//! Hostile and malformed segments on an established connection (issue 11:
//! "a malformed or forged frame is dropped and counted"): frames built
//! byte by byte from a seeded generator, with the connection's addresses
//! and ports, random sequence and acknowledgment numbers near the real
//! ones and far from them, random flags, windows, option bytes (SACK
//! blocks of every length, bad option lengths), payloads and lengths,
//! mostly with good checksums so they reach loss recovery and the socket,
//! interleaved with the client's real ACKs (some reporting a hole, so loss
//! recovery runs too) while the server sends 1 MiB and
//! receives whatever arrives. Nothing may panic, every segment the server
//! sends must parse with good checksums (the raw peer checks each), the
//! bad ones must be counted, and the send must still complete once the
//! client acknowledges everything.
//!
//! The client is the raw peer of `common` (the client engine never runs).

mod common;

use common::*;
use ringline_ring::opcode;
use ringline_testkit::pair::*;
use smoltcp::wire::TcpSeqNumber;

/// xorshift64*: a seeded, reproducible stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The Internet checksum of `data` with `sum` to start from.
fn csum(mut sum: u32, data: &[u8]) -> u16 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A sequence number near `base` (mostly), or anywhere.
fn near(rng: &mut Rng, base: u32) -> u32 {
    match rng.below(10) {
        0 => rng.next() as u32,
        1 => base.wrapping_add(rng.below(1 << 24) as u32),
        2 => base.wrapping_sub(rng.below(1 << 20) as u32),
        _ => base.wrapping_add(rng.below(8192) as u32).wrapping_sub(4096),
    }
}

/// TCP options: structured (SACK blocks, MSS, window scale, timestamps)
/// with wrong lengths now and then, or random bytes.
fn options(rng: &mut Rng, srv: u32) -> Vec<u8> {
    let mut o = Vec::new();
    let want = rng.below(41) as usize;
    while o.len() < want {
        match rng.below(8) {
            0 => o.push(1),
            1 => o.push(0),
            2 => {
                // SACK, a length of any value.
                let blocks = rng.below(5) as usize;
                let len = if rng.chance(80) {
                    2 + 8 * blocks
                } else {
                    rng.below(256) as usize
                };
                o.push(5);
                o.push(len as u8);
                for _ in 0..blocks {
                    let l = near(rng, srv);
                    let r = if rng.chance(80) {
                        l.wrapping_add(rng.below(20_000) as u32)
                    } else {
                        rng.next() as u32
                    };
                    o.extend_from_slice(&l.to_be_bytes());
                    o.extend_from_slice(&r.to_be_bytes());
                }
            }
            3 => o.extend_from_slice(&[2, 4, rng.next() as u8, rng.next() as u8]),
            4 => o.extend_from_slice(&[3, 3, rng.below(20) as u8]),
            5 => {
                o.extend_from_slice(&[8, 10]);
                o.extend_from_slice(&rng.next().to_be_bytes());
            }
            6 => o.extend_from_slice(&[rng.next() as u8, rng.below(4) as u8]),
            _ => {
                let n = rng.below(8) as usize;
                for _ in 0..n {
                    o.push(rng.next() as u8);
                }
            }
        }
    }
    o.truncate(40);
    while o.len() % 4 != 0 {
        o.push(0);
    }
    o
}

/// One hostile IPv4 packet from the raw client's address and port to the
/// server's, around the connection's sequence numbers. Returns it and
/// whether its checksums were spoiled on purpose.
fn hostile(rng: &mut Rng, raw: &Raw) -> (Vec<u8>, bool) {
    let opts = options(rng, raw.srv_nxt);
    let payload_len = match rng.below(4) {
        0 => 0,
        1 => rng.below(64) as usize,
        _ => rng.below(1400) as usize,
    };
    let mut tcp = vec![0u8; 20 + opts.len() + payload_len];
    tcp[0..2].copy_from_slice(&SPORT.to_be_bytes());
    tcp[2..4].copy_from_slice(&PORT.to_be_bytes());
    let mut flags: u8 = 0x10; // ACK
    for (bit, pct) in [(0x01, 5), (0x08, 30), (0x20, 3), (0x40, 3), (0x80, 3)] {
        if rng.chance(pct) {
            flags |= bit;
        }
    }
    if rng.chance(5) {
        flags &= !0x10;
    }
    let mut seq = near(rng, raw.nxt);
    if rng.chance(3) {
        // A SYN or an RST, only far outside the window (one at `rcv.nxt`
        // would end the connection, as it may).
        flags |= if rng.chance(50) { 0x02 } else { 0x04 };
        seq = raw
            .nxt
            .wrapping_add(1 << 30)
            .wrapping_add(rng.next() as u32 >> 4);
    }
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&near(rng, raw.srv_hi).to_be_bytes());
    let doff = if rng.chance(95) {
        5 + opts.len() / 4
    } else {
        rng.below(16) as usize
    };
    tcp[12] = (doff as u8) << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&(rng.next() as u16).to_be_bytes());
    tcp[18..20].copy_from_slice(&(rng.next() as u16).to_be_bytes());
    tcp[20..20 + opts.len()].copy_from_slice(&opts);
    for b in &mut tcp[20 + opts.len()..] {
        *b = rng.next() as u8;
    }
    let (src, dst) = (CLIENT_IP.octets(), SERVER_IP.octets());
    let mut pseudo = 0u32;
    for w in [&src[..], &dst[..]] {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
        pseudo += u32::from(u16::from_be_bytes([w[2], w[3]]));
    }
    pseudo += 6 + tcp.len() as u32;
    let c = csum(pseudo, &tcp);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    let mut total = 20 + tcp.len();
    if rng.chance(3) {
        total = rng.below(total as u64 + 40) as usize;
    }
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    if rng.chance(2) {
        ip[6] = 0x20; // more fragments
    }
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = csum(0, &ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&tcp);
    let spoiled = rng.chance(10);
    if spoiled {
        let at = 20 + 16 + rng.below(2) as usize;
        ip[at] ^= 1 + rng.below(255) as u8;
    }
    if rng.chance(2) {
        let cut = rng.below(ip.len() as u64) as usize;
        ip.truncate(cut);
    }
    (ip, spoiled)
}

#[test]
fn hostile_segments_on_an_established_connection_lose_nothing_and_panic_nothing() {
    for seed in [
        0x5eed_1234_abcd_0011,
        0x0bad_f00d_0000_0007,
        0x1357_9bdf_2468_ace0,
    ] {
        hostile_run(seed, false);
    }
    // On a connection made through a SYN cookie, whose every segment has
    // its sequence numbers translated (and checksums refilled) first.
    hostile_run(0x2222_4444_6666_8889, true);
    // A longer run by hand: HOSTILE_SEEDS=N runs N more seeds.
    let more: u64 = std::env::var("HOSTILE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for k in 1..=more {
        hostile_run(k.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, k % 2 == 0);
    }
}

/// 30,000 hostile frames from seed `seed` (see the module docs), on a
/// connection made through a SYN cookie if `cookie`.
fn hostile_run(seed: u64, cookie: bool) {
    const OUT: usize = 1 << 20;
    const FRAMES: usize = 30_000;
    let mut o = PairOpts::default();
    // Checksums filled and checked by the engines (the server's rewrites
    // included; the raw peer checks every segment it gets).
    o.wire.checksum_offload = false;
    let mut p = Pair::with(o);
    let (mut raw, fd) = if cookie {
        connect_raw_cookie(&mut p)
    } else {
        connect_raw(&mut p)
    };
    let out: Vec<u8> = (0..OUT).map(|i| (i % 247) as u8).collect();
    let send = opcode::Send::new(fd, out.as_ptr(), OUT as u32)
        .flags(libc::MSG_WAITALL)
        .user_data(501);
    // SAFETY: `out` lives to the end of the test, after the server's last step.
    unsafe { push(&mut p.s, send.build()) };
    // The server reads whatever arrives (injected data included).
    let mut sink = vec![0u8; 1 << 16];
    let mut reads = 0u64;
    let push_recv = |p: &mut Pair, sink: &mut Vec<u8>, ud: u64| {
        let recv = opcode::Recv::new(fd, sink.as_mut_ptr(), sink.len() as u32).user_data(ud);
        // SAFETY: `sink` lives to the end of the test and is never read;
        // one RECV at a time writes it.
        unsafe { push(&mut p.s, recv.build()) };
    };
    push_recv(&mut p, &mut sink, 1000);
    let mut rng = Rng(seed);
    let mut spoiled = 0u64;
    let before = p.s.driver().stats();
    for i in 0..FRAMES {
        let (ip, bad) = hostile(&mut rng, &raw);
        spoiled += u64::from(bad);
        emit_ip(&mut p, &ip);
        if i % 8 == 0 {
            // The client's real ACK of what it has (and a window to send
            // in); now and then one that reports a hole below the last
            // 1,500 bytes, SACKing them, so recovery runs as well.
            let mut ack = seg(raw.nxt, raw.srv_hi, 65_535, &[]);
            let sent = raw.srv_hi.wrapping_sub(raw.srv_nxt);
            if sent > 6000 && rng.chance(40) {
                ack.ack_number = Some(TcpSeqNumber(raw.srv_hi.wrapping_sub(4500) as i32));
                ack.sack_ranges[0] = Some((raw.srv_hi.wrapping_sub(1500), raw.srv_hi));
            }
            emit(&mut p, &ack, false);
            raw.run(&mut p, 1, 500);
            if let Some(c) = take(&mut p.s_cqes, 1000 + reads) {
                assert!(c.res >= 0, "recv: {}", c.res);
                reads += 1;
                if c.res > 0 {
                    push_recv(&mut p, &mut sink, 1000 + reads);
                }
            }
        }
    }
    let st = p.s.driver().stats();
    eprintln!(
        "seed {seed:#x} (cookie {cookie}), {FRAMES} frames: malformed {}, bad_checksum {}, out_of_window {}, unsupported {}, \
         retransmits {}, rto {}, reneging {}, reads {reads}; server sent {} segments",
        st.malformed - before.malformed,
        st.bad_checksum - before.bad_checksum,
        st.out_of_window - before.out_of_window,
        st.unsupported - before.unsupported,
        st.retransmits,
        st.rto_fired,
        st.sack_reneging,
        raw.heard.len()
    );
    assert!(
        st.bad_checksum - before.bad_checksum >= spoiled / 2,
        "spoiled checksums counted"
    );
    assert!(st.out_of_window > before.out_of_window, "{st:?}");
    // The client acknowledges everything from here on: the send completes
    // (the connection may not have survived a hostile segment at exactly
    // the right place; it did here).
    let mut done = None;
    for _ in 0..2000 {
        emit(&mut p, &seg(raw.nxt, raw.srv_hi, 65_535, &[]), false);
        raw.run(&mut p, 1, 2_000);
        if let Some(c) = take(&mut p.s_cqes, 501) {
            done = Some(c.res);
            break;
        }
    }
    assert_eq!(done, Some(OUT as i32), "the send completed");
    assert!(!raw.heard.iter().any(|s| s.rst), "the server never reset");
}
