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

use std::sync::atomic::Ordering;

use ringline_dataplane::Nic;
use ringline_ring::opcode;
use ringline_testkit::pair::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

const PORT: u16 = 7300;
const SPORT: u16 = 40_000;
/// The server's receive buffer: 256 KiB, so its window scale is 3.
const RX_BUF: usize = 256 << 10;
const ISN: u32 = 1_000_000;

/// A segment the server heard of, as the raw client saw it.
#[derive(Clone, Debug)]
struct Seg {
    seq: u32,
    ack: u32,
    win: u16,
    syn: bool,
    rst: bool,
    len: usize,
    ws: Option<u8>,
}

/// The raw client: sends from the client's port, reads what reaches it.
struct Raw {
    /// Our next sequence number, and the server's (what we acknowledge).
    nxt: u32,
    srv_nxt: u32,
    /// Bytes of server data seen (each segment's highest end).
    srv_hi: u32,
    /// Everything the server sent us, in order.
    heard: Vec<Seg>,
}

fn emit(p: &mut Pair, tcp: &TcpRepr, bad_checksum: bool) {
    let src = CLIENT_IP;
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

fn seg<'a>(seq: u32, ack: u32, win: u16, payload: &'a [u8]) -> TcpRepr<'a> {
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
    fn run(&mut self, p: &mut Pair, rounds: usize, dt_us: u64) {
        for _ in 0..rounds {
            p.clock.fetch_add(dt_us, Ordering::Relaxed);
            p.s.submit().expect("server submit");
            reap(&mut p.s, &mut p.s_cqes);
            self.read(p);
        }
    }

    fn read(&mut self, p: &mut Pair) {
        let nic = p.c.driver_mut().nic_mut().inner_mut();
        let mut frames = Vec::new();
        while nic.rx_burst(&mut frames, 32) > 0 {
            for f in frames.drain(..) {
                let f_ = f.as_ref();
                if f_.len() > 14 && f_[12..14] == [0x08, 0x00] {
                    let ip = Ipv4Packet::new_checked(&f_[14..]).expect("ipv4");
                    let t = TcpPacket::new_checked(ip.payload()).expect("tcp");
                    let (src, dst) = (IpAddress::Ipv4(SERVER_IP), IpAddress::Ipv4(CLIENT_IP));
                    assert!(t.verify_checksum(&src, &dst), "the server's checksums");
                    let r = TcpRepr::parse(&t, &src, &dst, &ChecksumCapabilities::default())
                        .expect("a TCP segment");
                    let s = Seg {
                        seq: r.seq_number.0 as u32,
                        ack: r.ack_number.map_or(0, |a| a.0 as u32),
                        win: r.window_len,
                        syn: r.control == TcpControl::Syn,
                        rst: r.control == TcpControl::Rst,
                        len: r.payload.len(),
                        ws: r.window_scale,
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
    fn last(&self) -> &Seg {
        self.heard.last().expect("the server sent something")
    }
}

/// The server accepts the raw client's connection; sends `out` (never
/// acknowledged by the client until the window is closed) and does not
/// read. The client fills the server's receive buffer to the byte; then a
/// segment of 16 bytes meets the closed window carrying the ACK of
/// everything the server sent. The server hears that ACK (it does not
/// resend its data), answers the segment with an ACK, and once its
/// application reads, every byte the client sent arrives.
fn closed_window_case(beyond: u32) {
    let mut o = PairOpts::default();
    o.server.rx_buffer = RX_BUF;
    o.wire.checksum_offload = false;
    let mut p = Pair::with(o);
    let l = listen(&mut p, PORT, 16);
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
    // Handshake, window scale 7 offered.
    let mut syn = seg(ISN, 0, 65_535, &[]);
    syn.control = TcpControl::Syn;
    syn.ack_number = None;
    syn.window_scale = Some(7);
    syn.max_seg_size = Some(1460);
    emit(&mut p, &syn, false);
    raw.run(&mut p, 20, 20);
    let sa = raw.heard.iter().find(|s| s.syn).expect("a SYN-ACK").clone();
    let ws = sa.ws.expect("the server scales its window");
    assert_eq!(ws, 3, "256 KiB of buffer: scale 3");
    raw.nxt = ISN + 1;
    raw.srv_nxt = sa.seq.wrapping_add(1);
    emit(&mut p, &seg(raw.nxt, raw.srv_nxt, 8192, &[]), false);
    raw.run(&mut p, 20, 20);
    let a = take(&mut p.s_cqes, 500).expect("accepted");
    assert!(a.res >= 0, "accept: {}", a.res);
    let fd = a.res;

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

/// A segment past the closed window's edge (sent into an edge that moved
/// back): its ACK is heard too, as RFC 9293 asks.
#[test]
fn a_segment_past_a_closed_window_has_its_ack_heard() {
    closed_window_case(16);
}
