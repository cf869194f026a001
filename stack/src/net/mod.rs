//! The NIC pump: the only part of the engine compiled once per NIC type. It
//! moves frames between the NIC and the core: a receive burst (prefetched,
//! classified by the core, fed to one connection's smoltcp socket each),
//! and egress for the dirty connections (smoltcp dispatch into the NIC's
//! frame buffers), then the transmit burst.

mod device;

use ringline_dataplane::{MacAddr, Nic, RX_BURST};
use smoltcp::iface::{Config as IfaceConfig, Interface, PollResult, SocketSet};
use std::net::Ipv4Addr;

use smoltcp::phy::{Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as SmolDuration, Instant};
use smoltcp::wire::{
    HardwareAddress, IpAddress, IpCidr, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket,
    TcpRepr, TcpSeqNumber,
};

use crate::config::EngineConfig;
use crate::core::conns::Conn;
use crate::core::demux_peek_tuple;
use crate::core::recovery::{Repair, Sent};
use crate::core::{CookieSyn, CookieSynAck, Core, Ingress};
use crate::hint::prefetch;
use crate::ids::ConnId;
use crate::l2::{self, Arp, ETH_HDR};
pub(crate) use device::TxCounters;
use device::{csum_replace16, send_ip, shift_acks, Port};

/// The device smoltcp sees over a pump, borrowing only the fields it needs
/// (so the caller can still borrow the pump's empty socket set, and the
/// core's interface and a connection's socket set).
macro_rules! port {
    ($p:expr, $rx:expr, $dst:expr, $sent:expr, $off:expr) => {
        port!(
            &mut $p.nic,
            &$p.caps,
            $p.mac,
            &mut $p.scratch,
            &mut $p.tx,
            $rx,
            $dst,
            $sent,
            $off
        )
    };
    (
        $nic:expr,
        $caps:expr,
        $mac:expr,
        $scratch:expr,
        $tx:expr,
        $rx:expr,
        $dst:expr,
        $sent:expr,
        $off:expr
    ) => {
        Port {
            nic: $nic,
            rx: $rx,
            dst_mac: $dst,
            src_mac: $mac,
            caps: $caps,
            scratch: $scratch,
            tx: $tx,
            sent: $sent,
            seq_off: $off,
            discard: false,
            dsack: None,
        }
    };
}

/// Bound on egress rounds per connection per step.
const EGRESS_ROUNDS: usize = 64;
/// How long a connection waits for an ARP answer before egress retries.
const ARP_RETRY_US: u64 = 100_000;
/// How long a connection's next hop may stay unresolved before the
/// connection fails with `EHOSTUNREACH` (Linux gives up after about 3 s of
/// ARP probes).
const ARP_GIVE_UP_US: u64 = 3_000_000;

/// See the module docs.
pub(crate) struct Pump<N: Nic> {
    pub(crate) nic: N,
    caps: DeviceCapabilities,
    mac: MacAddr,
    scratch: Vec<u8>,
    rx_batch: Vec<N::Frame>,
    /// A received packet of a SYN cookie connection, translated.
    fix: Vec<u8>,
    /// A received segment's ACK alone, for a socket whose window is closed
    /// (see `device::ack_at`).
    ack_only: [u8; device::MAX_HEADERS],
    /// The socket set of "no socket": smoltcp answers such segments with RST.
    empty_set: SocketSet<'static>,
    pub(crate) tx: TxCounters,
    pub(crate) rx_frames: u64,
    pub(crate) arp_tx: u64,
}

impl<N: Nic> Pump<N> {
    /// A pump on `nic`, and the smoltcp interface configured for it.
    pub(crate) fn new(nic: N, cfg: &EngineConfig, now_us: u64) -> (Self, Interface) {
        let nic_caps = nic.caps();
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = nic_caps.mtu;
        caps.max_burst_size = None;
        if nic_caps.rx_checksum_offload && nic_caps.tx_checksum_offload {
            caps.checksum.ipv4 = Checksum::None;
            caps.checksum.tcp = Checksum::None;
        } else {
            // Received checksums are checked once, in the core's ingress
            // (before recovery reads a segment or the pump rewrites one);
            // smoltcp fills them on the way out.
            caps.checksum.ipv4 = Checksum::Tx;
            caps.checksum.tcp = Checksum::Tx;
        }
        let mut pump = Pump {
            nic,
            caps,
            mac: nic_caps.mac,
            scratch: vec![0u8; 65536 + ETH_HDR],
            rx_batch: Vec::with_capacity(RX_BURST),
            fix: vec![0u8; 65536],
            ack_only: [0u8; device::MAX_HEADERS],
            empty_set: SocketSet::new(Vec::new()),
            tx: TxCounters::default(),
            rx_frames: 0,
            arp_tx: 0,
        };
        let mut iface_cfg = IfaceConfig::new(HardwareAddress::Ip);
        iface_cfg.random_seed = cfg.seed;
        let mut sent = Sent::default();
        let mut port = port!(pump, None, l2::BROADCAST, &mut sent, 0);
        let mut iface = Interface::new(iface_cfg, &mut port, Instant::from_micros(now_us as i64));
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(cfg.ip), cfg.prefix_len));
        });
        if let Some(gw) = cfg.gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        (pump, iface)
    }

    /// The NIC's MAC address.
    pub(crate) fn mac(&self) -> MacAddr {
        self.mac
    }

    /// Takes up to `rx_budget` frames from the NIC and feeds each where the
    /// core says it goes. Returns how many.
    pub(crate) fn poll_rx(&mut self, core: &mut Core) -> usize {
        let mut total = 0;
        let budget = core.cfg.rx_budget;
        let verify = !matches!(self.caps.checksum.ipv4, Checksum::None);
        // Borrow the fields apart: the burst is drained while the device
        // (NIC, scratch, counters) feeds each frame.
        let Pump {
            nic,
            caps,
            mac,
            scratch,
            rx_batch,
            fix,
            ack_only,
            empty_set,
            tx,
            arp_tx,
            ..
        } = self;
        while total < budget {
            let max = RX_BURST.min(budget - total);
            let n = nic.rx_burst(rx_batch, max);
            if n == 0 {
                break;
            }
            total += n;
            // The prefetch pass's demux results serve as hints, so a burst
            // looks each tuple up once.
            let hints = if n > 1 {
                prefetch_burst(core, rx_batch)
            } else {
                [None; RX_BURST]
            };
            for (i, mut frame) in rx_batch.drain(..).enumerate() {
                match core.ingress(frame.as_ref(), hints[i], verify) {
                    Ingress::Conn {
                        cid,
                        ip,
                        src_mac,
                        repair,
                        dsack,
                        in_window,
                        strip,
                    } => {
                        let at = ip.as_ptr() as usize - frame.as_ref().as_ptr() as usize;
                        let len = ip.len();
                        if core.conns.get_mut(cid).rec.take_refit() {
                            core.conns.refit_timeout(cid);
                        }
                        let c = core.conns.get_mut(cid);
                        let now = Instant::from_micros(c.rec.socket_time(core.now_us) as i64);
                        let off = c.seq_off;
                        let csum = caps.checksum.tcp.rx();
                        let mut ip: &mut [u8] = if off != 0 {
                            to_socket_space(fix, &frame.as_ref()[at..at + len], off, csum)
                        } else {
                            &mut frame.as_mut()[at..at + len]
                        };
                        if strip {
                            let ip_csum = caps.checksum.ipv4.rx();
                            if let Some(end) = device::strip_payload(ip, ip_csum, csum) {
                                ip = &mut ip[..end];
                                core.stats.rx_budget_drops += 1;
                            }
                        }
                        // The window the socket hears is the engine's
                        // congestion window (see core::recovery).
                        fit_window(ip, &mut c.rec);
                        let ip: &[u8] = ip;
                        // With its window closed the socket would drop
                        // this segment's ACK with its data: it hears the
                        // ACK alone first, then the segment (answered with
                        // an ACK, as Linux does).
                        let ack_len = c.rec.closed_at().filter(|_| in_window).and_then(|at| {
                            let ip_csum = caps.checksum.ipv4.rx();
                            device::ack_at(ip, at, ack_only, ip_csum, csum)
                        });
                        let dups = repair.and_then(|r| dup_acks_for(core.host.ip, c, r));
                        // Replies to input carry no data: nothing for
                        // recovery but their ACK, window and SACK blocks.
                        let mut sent = c.rec.reply_sent();
                        let mut port =
                            port!(nic, caps, *mac, scratch, tx, None, src_mac, &mut sent, off);
                        if let Some(n) = ack_len {
                            core.stats.closed_window_acks += 1;
                            port.rx = Some(&ack_only[..n]);
                            core.iface.poll_ingress_single(now, &mut port, &mut c.set);
                        }
                        port.rx = Some(ip);
                        port.dsack = dsack;
                        core.iface.poll_ingress_single(now, &mut port, &mut c.set);
                        if let Some(pkt) = &dups {
                            feed_dup_acks(&mut core.iface, &mut port, &mut c.set, now, pkt);
                        }
                        c.rec.note_ack(&sent);
                        core.conns.mark_ready(cid);
                        core.conns.mark_dirty(cid);
                    }
                    Ingress::CookieConn {
                        cid,
                        ip,
                        src_mac,
                        syn,
                    } => {
                        let c = core.conns.get_mut(cid);
                        let now = Instant::from_micros(c.rec.socket_time(core.now_us) as i64);
                        // The SYN the cookie stands for, and the socket's
                        // SYN-ACK, which only tells its ISN; then the ACK.
                        let pkt = cookie_syn(core.host.ip, c, &syn);
                        let rx = Some(&pkt[..]);
                        let mut sent = Sent::default();
                        let mut port =
                            port!(nic, caps, *mac, scratch, tx, rx, src_mac, &mut sent, 0);
                        port.discard = true;
                        core.iface.poll_ingress_single(now, &mut port, &mut c.set);
                        core.iface.poll_egress(now, &mut port, &mut c.set);
                        if let Some(isn) = port.sent.syn {
                            let off = isn.wrapping_sub(syn.cookie);
                            c.seq_off = off;
                            port.discard = false;
                            port.seq_off = off;
                            let ip = to_socket_space(fix, ip, off, caps.checksum.tcp.rx());
                            fit_window(ip, &mut c.rec);
                            port.rx = Some(ip);
                            core.iface.poll_ingress_single(now, &mut port, &mut c.set);
                        }
                        // Established, or (no SYN-ACK) closed: service decides.
                        core.conns.mark_ready(cid);
                        core.conns.mark_dirty(cid);
                    }
                    Ingress::Cookie(sa) => {
                        let pkt = cookie_syn_ack(core.host.ip, &sa);
                        send_ip(nic, *mac, sa.to, &pkt, tx);
                    }
                    Ingress::NoSocket { ip, src_mac } => {
                        let now = core.instant();
                        let mut sent = Sent::default();
                        let mut port = port!(
                            nic,
                            caps,
                            *mac,
                            scratch,
                            tx,
                            Some(ip),
                            src_mac,
                            &mut sent,
                            0
                        );
                        core.iface.poll_ingress_single(now, &mut port, empty_set);
                    }
                    Ingress::Arp(to, arp) => send_arp(nic, *mac, to, &arp, tx, arp_tx),
                    Ingress::Done => {}
                }
                nic.rx_release(frame);
            }
        }
        self.rx_frames += total as u64;
        total
    }

    /// Egress for the dirty connections, in order, while the NIC can take
    /// frames. When it fills, the rest stay dirty, in order, for the next
    /// step: re-polling every blocked connection each step would be work that
    /// sends nothing (a livelock when a burst meets a full wire).
    pub(crate) fn run_egress(&mut self, core: &mut Core) -> usize {
        let n = core.conns.begin_egress();
        let mut done = 0;
        while done < n && self.nic.tx_ready() {
            let next = core.conns.next_dirty(done);
            done += 1;
            if let Some(cid) = next {
                self.egress(core, cid);
            }
        }
        core.conns.end_egress(done);
        done
    }

    fn egress(&mut self, core: &mut Core, cid: ConnId) {
        core.conns.recharge(cid);
        let hop = core.host.next_hop(core.conns.get(cid).remote_ip);
        let Some(dst_mac) = core.neigh.lookup(hop) else {
            let since = *core.conns.get_mut(cid).arp_since.get_or_insert(core.now_us);
            if core.now_us.saturating_sub(since) >= ARP_GIVE_UP_US {
                core.unreachable(cid);
                return;
            }
            if core.neigh.should_ask(hop, core.now_us) {
                let req = Arp {
                    op: l2::ARP_REQUEST,
                    sha: self.mac,
                    spa: core.host.ip,
                    tha: [0; 6],
                    tpa: hop,
                };
                send_arp(
                    &mut self.nic,
                    self.mac,
                    l2::BROADCAST,
                    &req,
                    &mut self.tx,
                    &mut self.arp_tx,
                );
            }
            core.neigh.wait(cid);
            // Re-check soon even if no reply comes (the request is rate-limited).
            core.conns.arm_timer(cid, core.now_us + ARP_RETRY_US);
            return;
        };
        let now_us = core.now_us;
        let base_timeout = core.conns.base_timeout(cid);
        let c = core.conns.get_mut(cid);
        if c.arp_since.is_some() {
            c.arp_since = None;
        }
        let mut repair = c
            .rec
            .on_timeout(now_us, &mut core.stats)
            .or_else(|| c.rec.take_walk());
        if repair == Some(Repair::GiveUp) {
            // TCP_USER_TIMEOUT: the socket is aborted (its RST goes out
            // below); the state change wakes the connection's requests,
            // which fail with ETIMEDOUT.
            c.reset_err = crate::errno::ETIMEDOUT;
            c.sock().abort();
            repair = None;
        }
        let mut now = Instant::from_micros(c.rec.socket_time(now_us) as i64);
        let mut sent = c.rec.begin(now_us);
        let off = c.seq_off;
        // The tail-loss probe: the socket resends the segment at `ack`.
        let probe = repair.and_then(|r| dup_acks_for(core.host.ip, c, r));
        // A walk or an RTO: move the socket's clock to its own retransmission
        // deadline, so it goes back to `snd.una` (another of its timers may
        // come first: then again, a few times). The filter in `sent` keeps
        // what goes on the wire to the holes.
        let walk = matches!(repair, Some(Repair::Walk | Repair::Rto));
        if walk {
            c.rec.rewind(&mut sent);
        }
        let (set, h) = (&mut c.set, c.h);
        let mut port = port!(self, None, dst_mac, &mut sent, off);
        if let Some(pkt) = &probe {
            feed_dup_acks(&mut core.iface, &mut port, set, now, pkt);
        }
        let mut at = None;
        let jumps = if walk { 3 } else { 1 };
        for _ in 0..jumps {
            if walk {
                if let Some(t) = core.iface.poll_at(now, set) {
                    if t > now {
                        // Stretched before the socket checks its timeouts.
                        let extra = c.rec.jump((t - now).total_micros());
                        now = t;
                        let extra = SmolDuration::from_micros(extra);
                        set.get_mut::<tcp::Socket>(h)
                            .set_timeout(base_timeout.map(|t| t + extra));
                    }
                }
            }
            at = dispatch(&mut core.iface, &mut port, set, now);
            if port.sent.rewound > 0 {
                break;
            }
        }
        let clock_off = c.rec.off_us;
        c.rec.on_sent(&sent, now_us, &mut core.stats);
        let smol_at = at.map(|t| (t.total_micros() as u64).saturating_sub(clock_off));
        let at_us = match (smol_at, core.conns.get(cid).rec.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        core.conns.after_egress(cid, at_us, now_us);
    }
}

/// Feeds recovery's window into received segment `ip` (IPv4 + TCP, of
/// `rec`'s connection) in place: the window field becomes the smaller of
/// the peer's and the congestion window's, the TCP checksum updated to
/// match (RFC 1624). RSTs and segments without ACK are left alone.
fn fit_window(ip: &mut [u8], rec: &mut crate::core::recovery::Recovery) {
    let Some((ihl, total)) = device::tcp_range(ip) else {
        return;
    };
    let t = &mut ip[ihl..total];
    let flags = t[13];
    if flags & 0x10 == 0 || flags & 0x04 != 0 {
        return;
    }
    let field = u16::from_be_bytes([t[14], t[15]]);
    let w = rec.window_field(field, flags & 0x02 != 0);
    if w != field {
        t[14..16].copy_from_slice(&w.to_be_bytes());
        let c = u16::from_be_bytes([t[16], t[17]]);
        t[16..18].copy_from_slice(&csum_replace16(c, field, w).to_be_bytes());
    }
}

/// The duplicate ACK to feed `c`'s socket for `repair`, if it is one (in
/// the socket's sequence space: a cookie connection's offset added).
fn dup_acks_for(us: Ipv4Addr, c: &Conn, repair: Repair) -> Option<[u8; 40]> {
    match repair {
        Repair::DupAcks { seq, ack, win } => {
            Some(dup_ack(us, c, seq, ack.wrapping_add(c.seq_off), win))
        }
        Repair::Walk | Repair::Rto | Repair::GiveUp => None,
    }
}

/// Feeds the socket in `set` three copies of `pkt` (a [`dup_ack`]) through
/// `port`: it fast-retransmits the segment they name.
fn feed_dup_acks<'a, N: Nic>(
    iface: &mut Interface,
    port: &mut Port<'a, N>,
    set: &mut SocketSet<'static>,
    now: Instant,
    pkt: &'a [u8],
) {
    for _ in 0..3 {
        port.rx = Some(pkt);
        iface.poll_ingress_single(now, port, set);
    }
}

/// Dispatches `set`'s socket at `now` while smoltcp says something is due:
/// asking `poll_at` is cheaper than a `dispatch` that finds nothing to send,
/// which is the common case after input (a delayed ACK) and after the one
/// segment of a request. Returns the socket's next deadline.
fn dispatch<N: Nic>(
    iface: &mut Interface,
    port: &mut Port<'_, N>,
    set: &mut SocketSet<'static>,
    now: Instant,
) -> Option<Instant> {
    let mut at = iface.poll_at(now, set);
    let mut rounds = 0;
    while rounds < EGRESS_ROUNDS && matches!(at, Some(t) if t <= now) {
        rounds += 1;
        let sent = iface.poll_egress(now, port, set);
        at = iface.poll_at(now, set);
        if sent == PollResult::None {
            break;
        }
    }
    at
}

/// Three of these make a connection's socket fast-retransmit (see
/// [`crate::core::recovery`]): an ACK from the peer `c` to `us` with no
/// payload, ACK number `ack`, window field `win` and sequence number `seq`.
fn dup_ack(us: Ipv4Addr, c: &Conn, seq: u32, ack: u32, win: u16) -> [u8; 40] {
    let tcp = TcpRepr {
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: Some(TcpSeqNumber(ack as i32)),
        window_len: win,
        ..bare_tcp(c.remote_port, c.local_port)
    };
    emit_ip_tcp(c.remote_ip, us, &tcp)
}

/// Received packet `ip` of a SYN cookie connection in its socket's
/// sequence space (see `core::cookies`): copied into `fix`, the peer's ACK
/// and SACK edges moved by `off`, the checksum refilled when `csum`.
fn to_socket_space<'f>(fix: &'f mut [u8], ip: &[u8], off: u32, csum: bool) -> &'f mut [u8] {
    let f = &mut fix[..ip.len()];
    f.copy_from_slice(ip);
    shift_acks(f, off, csum);
    f
}

/// The SYN a returning cookie stands for, from the peer of `c` to `us`:
/// the client's ISN, the cookie's MSS, no window scaling, no SACK.
fn cookie_syn(us: Ipv4Addr, c: &Conn, syn: &CookieSyn) -> [u8; 44] {
    let tcp = TcpRepr {
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(syn.isn as i32),
        ack_number: None,
        window_len: syn.win,
        max_seg_size: Some(syn.mss),
        ..bare_tcp(c.remote_port, c.local_port)
    };
    emit_ip_tcp(c.remote_ip, us, &tcp)
}

/// Our SYN cookie SYN-ACK for `sa` (MSS option only: no scaling, no SACK).
fn cookie_syn_ack(us: Ipv4Addr, sa: &CookieSynAck) -> [u8; 44] {
    let tcp = TcpRepr {
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(sa.cookie as i32),
        ack_number: Some(TcpSeqNumber(sa.isn.wrapping_add(1) as i32)),
        window_len: u16::MAX,
        max_seg_size: Some(sa.mss),
        ..bare_tcp(sa.dport, sa.sport)
    };
    emit_ip_tcp(us, sa.src, &tcp)
}

/// A TCP header from `sport` to `dport` with no flags, options or payload.
fn bare_tcp(sport: u16, dport: u16) -> TcpRepr<'static> {
    TcpRepr {
        src_port: sport,
        dst_port: dport,
        control: TcpControl::None,
        seq_number: TcpSeqNumber(0),
        ack_number: None,
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    }
}

/// IPv4 + `tcp` from `src` to `dst`, checksums filled, into `N` bytes
/// (exactly the header lengths: 40, or 44 with an MSS option).
fn emit_ip_tcp<const N: usize>(src: Ipv4Addr, dst: Ipv4Addr, tcp: &TcpRepr) -> [u8; N] {
    let mut pkt = [0u8; N];
    debug_assert_eq!(20 + tcp.buffer_len(), N);
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let caps = ChecksumCapabilities::default();
    let (ip_part, tcp_part) = pkt.split_at_mut(20);
    ip.emit(&mut Ipv4Packet::new_unchecked(ip_part), &caps);
    let (s, d) = (IpAddress::Ipv4(src), IpAddress::Ipv4(dst));
    tcp.emit(&mut TcpPacket::new_unchecked(tcp_part), &s, &d, &caps);
    pkt
}

/// Sends ARP packet `arp` from `src` to `dst`.
fn send_arp<N: Nic>(
    nic: &mut N,
    src: MacAddr,
    dst: MacAddr,
    arp: &Arp,
    tx: &mut TxCounters,
    arp_tx: &mut u64,
) {
    let mut build = |buf: &mut [u8]| {
        l2::write_eth(buf, dst, src, l2::ETHERTYPE_ARP);
        l2::write_arp(&mut buf[ETH_HDR..], arp);
        buf[ETH_HDR + l2::ARP_LEN..].fill(0);
    };
    // Minimum Ethernet payload is 46 bytes; pad the 28-byte ARP.
    if nic.tx_frame(ETH_HDR + 46, &mut build).is_ok() {
        *arp_tx += 1;
    } else {
        tx.dropped += 1;
    }
}

/// Starts the cache misses a burst of frames will take, all at once,
/// before any of them is processed (as DPDK applications do): first the
/// frames' headers, then each frame's connection slot, op lists and timer
/// node, then its socket and the receive op waiting on it. With thousands
/// of connections these are misses to memory, and processing the frames
/// one by one would wait for each in turn. Only a hint: a frame that does
/// not parse here is simply not prefetched. Returns, per frame, the
/// connection its tuple mapped to, a hint the core checks before trusting.
fn prefetch_burst<F: AsRef<[u8]>>(core: &Core, batch: &[F]) -> [Option<ConnId>; RX_BURST] {
    for f in batch {
        let p = f.as_ref().as_ptr() as usize;
        prefetch(p);
        prefetch(p + 64);
    }
    let mut cids = [None; RX_BURST];
    for (slot, f) in cids.iter_mut().zip(batch) {
        if let Some(cid) = demux_peek_tuple(f.as_ref()).and_then(|k| core.conns.lookup(k)) {
            *slot = Some(cid);
            let c = core.conns.addr(cid);
            prefetch(c);
            prefetch(c + 64);
            if let Some(t) = core.conns.timer_addr(cid) {
                prefetch(t);
            }
            if let Some(l) = core.cq.ops.conn_addr(cid) {
                prefetch(l);
            }
        }
    }
    for cid in cids.iter().take(batch.len()).flatten() {
        let sock = core.conns.get(*cid).sock_addr;
        for off in (0..std::mem::size_of::<smoltcp::socket::tcp::Socket>()).step_by(64) {
            prefetch(sock + off);
        }
        // The receive the segment will complete.
        if let Some(op) = core
            .cq
            .ops
            .conn(*cid)
            .recv
            .front()
            .and_then(|id| core.cq.ops.addr(id))
        {
            prefetch(op);
        }
    }
    cids
}
