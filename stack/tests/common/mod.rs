//! A raw TCP peer for the integration tests: the client engine of a
//! [`Pair`] is never stepped and its port is driven by hand, so a test
//! sends exactly the segments it wants to the server engine and reads every
//! segment the server sends back.
#![allow(dead_code)]

use std::sync::atomic::Ordering;

use ringline_dataplane::Nic;
use ringline_ring::opcode;
use ringline_testkit::pair::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber,
};

/// The server's port the raw client connects to, and its own port.
pub const PORT: u16 = 7300;
pub const SPORT: u16 = 40_000;
/// The raw client's initial sequence number.
pub const ISN: u32 = 1_000_000;

/// A segment the server heard of, as the raw client saw it.
#[derive(Clone, Debug)]
pub struct Seg {
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub syn: bool,
    pub rst: bool,
    pub len: usize,
    pub ws: Option<u8>,
    /// The SACK option's blocks (all of them).
    pub sack: Vec<(u32, u32)>,
}

/// The raw client: sends from the client's port, reads what reaches it.
pub struct Raw {
    /// Our next sequence number, and the server's (what we acknowledge).
    pub nxt: u32,
    pub srv_nxt: u32,
    /// Bytes of server data seen (each segment's highest end).
    pub srv_hi: u32,
    /// Everything the server sent us, in order.
    pub heard: Vec<Seg>,
}

/// Puts `tcp` on the wire from the client's port, from [`CLIENT_IP`] to
/// the server (its TCP checksum spoiled if `bad_checksum`).
pub fn emit(p: &mut Pair, tcp: &TcpRepr, bad_checksum: bool) {
    emit_from(p, CLIENT_IP, tcp, bad_checksum);
}

/// Puts `tcp` on the wire from the client's port, from address `src` (any:
/// a forged source) to the server.
pub fn emit_from(p: &mut Pair, src: Ipv4Address, tcp: &TcpRepr, bad_checksum: bool) {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: SERVER_IP,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let wire = PairOpts::default().wire;
    let len = 14 + 20 + tcp.buffer_len();
    let mut build = |f: &mut [u8]| {
        f[0..6].copy_from_slice(&wire.mac_a);
        f[6..12].copy_from_slice(&wire.mac_b);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let caps = ChecksumCapabilities::default();
        let (ip_part, tcp_part) = f[14..].split_at_mut(20);
        ip.emit(&mut Ipv4Packet::new_unchecked(ip_part), &caps);
        tcp.emit(
            &mut TcpPacket::new_unchecked(&mut tcp_part[..tcp.buffer_len()]),
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(SERVER_IP),
            &caps,
        );
        if bad_checksum {
            tcp_part[16] ^= 0x5a;
        }
    };
    let nic = p.c.driver_mut().nic_mut().inner_mut();
    nic.tx_frame(len, &mut build).expect("wire full");
    nic.tx_flush();
}

/// Puts IP packet bytes `ip` (anything: a test's own, malformed or not)
/// on the wire from the client's port to the server, behind an Ethernet
/// header for IPv4.
pub fn emit_ip(p: &mut Pair, ip: &[u8]) {
    let wire = PairOpts::default().wire;
    let mut build = |f: &mut [u8]| {
        f[0..6].copy_from_slice(&wire.mac_a);
        f[6..12].copy_from_slice(&wire.mac_b);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14..14 + ip.len()].copy_from_slice(ip);
    };
    let nic = p.c.driver_mut().nic_mut().inner_mut();
    nic.tx_frame(14 + ip.len(), &mut build).expect("wire full");
    nic.tx_flush();
}

pub fn seg<'a>(seq: u32, ack: u32, win: u16, payload: &'a [u8]) -> TcpRepr<'a> {
    TcpRepr {
        src_port: SPORT,
        dst_port: PORT,
        control: TcpControl::None,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: Some(TcpSeqNumber(ack as i32)),
        window_len: win,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload,
    }
}

impl Raw {
    /// Runs the server alone for `rounds` rounds of `dt_us`, reading what
    /// reaches the raw client.
    pub fn run(&mut self, p: &mut Pair, rounds: usize, dt_us: u64) {
        for _ in 0..rounds {
            p.clock.fetch_add(dt_us, Ordering::Relaxed);
            p.s.submit().expect("server submit");
            reap(&mut p.s, &mut p.s_cqes);
            self.read(p);
        }
    }

    pub fn read(&mut self, p: &mut Pair) {
        let nic = p.c.driver_mut().nic_mut().inner_mut();
        let mut frames = Vec::new();
        while nic.rx_burst(&mut frames, 32) > 0 {
            for f in frames.drain(..) {
                let f_ = f.as_ref();
                if f_.len() > 14 && f_[12..14] == [0x08, 0x00] {
                    let ip = Ipv4Packet::new_checked(&f_[14..]).expect("ipv4");
                    let t = TcpPacket::new_checked(ip.payload()).expect("tcp");
                    let src = IpAddress::Ipv4(SERVER_IP);
                    // Answers to other (forged) sources are checked too,
                    // then left out.
                    let dst = IpAddress::Ipv4(ip.dst_addr());
                    assert!(
                        t.verify_checksum(&src, &dst),
                        "the server's checksums: flags {:#04x}, header {} bytes, payload {}, \
                         seq {}, ack {}, options {:02x?}",
                        t.as_ref()[13],
                        t.header_len(),
                        t.payload().len(),
                        t.seq_number().0 as u32,
                        t.ack_number().0 as u32,
                        t.options()
                    );
                    let r = TcpRepr::parse(&t, &src, &dst, &ChecksumCapabilities::default())
                        .expect("a TCP segment");
                    if ip.dst_addr() != CLIENT_IP || t.dst_port() != SPORT {
                        nic.rx_release(f);
                        continue;
                    }
                    let s = Seg {
                        seq: r.seq_number.0 as u32,
                        ack: r.ack_number.map_or(0, |a| a.0 as u32),
                        win: r.window_len,
                        syn: r.control == TcpControl::Syn,
                        rst: r.control == TcpControl::Rst,
                        len: r.payload.len(),
                        ws: r.window_scale,
                        sack: sack_blocks(&t),
                    };
                    let end = s.seq.wrapping_add(s.len as u32 + u32::from(s.syn));
                    if end.wrapping_sub(self.srv_hi) as i32 > 0 {
                        self.srv_hi = end;
                    }
                    self.heard.push(s);
                }
                nic.rx_release(f);
            }
        }
    }

    /// The last segment the server sent.
    pub fn last(&self) -> &Seg {
        self.heard.last().expect("the server sent something")
    }
}

/// Every block of `t`'s SACK option (smoltcp's parser keeps three).
fn sack_blocks(t: &TcpPacket<&[u8]>) -> Vec<(u32, u32)> {
    let o = t.options();
    let mut i = 0;
    while i < o.len() {
        match o[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let len = usize::from(*o.get(i + 1).unwrap_or(&0));
                if len < 2 || i + len > o.len() {
                    break;
                }
                if kind == 5 {
                    return o[i + 2..i + len]
                        .chunks_exact(8)
                        .map(|e| {
                            (
                                u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
                                u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
                            )
                        })
                        .collect();
                }
                i += len;
            }
        }
    }
    Vec::new()
}

/// A server listening on [`PORT`] with an ACCEPT (user_data 500) pushed,
/// and a raw client connected to it (window scale 7 and SACK offered):
/// returns the raw client and the accepted socket.
pub fn connect_raw(p: &mut Pair) -> (Raw, i32) {
    let l = listen(p, PORT, 16);
    handshake(p, l)
}

/// As [`connect_raw`], but through a SYN cookie: the listener's SYN queue
/// (backlog 4) is full of SYNs from on-link addresses that never answer,
/// so the server's SYN-ACK carries a cookie, and the connection's
/// sequence numbers are translated on every segment (`core::cookies`).
pub fn connect_raw_cookie(p: &mut Pair) -> (Raw, i32) {
    let l = listen(p, PORT, 4);
    for i in 0..8u8 {
        let mut syn = seg(7 * u32::from(i), 0, 64_240, &[]);
        syn.src_port = 2000 + u16::from(i);
        syn.control = TcpControl::Syn;
        syn.ack_number = None;
        emit_from(p, Ipv4Address::new(10, 0, 0, 100 + i), &syn, false);
    }
    p.run(20);
    let before = p.s.driver().stats().syn_cookies_ok;
    let r = handshake(p, l);
    assert_eq!(
        p.s.driver().stats().syn_cookies_ok,
        before + 1,
        "a cookie connection"
    );
    r
}

/// The raw client's handshake with listener `l` (see [`connect_raw`]).
fn handshake(p: &mut Pair, l: i32) -> (Raw, i32) {
    push_safe(
        &mut p.s,
        opcode::AcceptNoAddr::new(l).user_data(500).build(),
    );
    let mut raw = Raw {
        nxt: ISN,
        srv_nxt: 0,
        srv_hi: 0,
        heard: Vec::new(),
    };
    let mut syn = seg(ISN, 0, 65_535, &[]);
    syn.control = TcpControl::Syn;
    syn.ack_number = None;
    syn.window_scale = Some(7);
    syn.max_seg_size = Some(1460);
    syn.sack_permitted = true;
    emit(p, &syn, false);
    raw.run(p, 20, 20);
    let sa = raw.heard.iter().find(|s| s.syn).expect("a SYN-ACK").clone();
    raw.nxt = ISN + 1;
    raw.srv_nxt = sa.seq.wrapping_add(1);
    emit(p, &seg(raw.nxt, raw.srv_nxt, 8192, &[]), false);
    raw.run(p, 20, 20);
    let a = take(&mut p.s_cqes, 500).expect("accepted");
    assert!(a.res >= 0, "accept: {}", a.res);
    (raw, a.res)
}
