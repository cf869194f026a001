//! Ingress, the NIC-independent half: our L2 (Ethernet, ARP), IPv4 checks,
//! the 4-tuple demux, and SYN admission against a listener's backlog. It
//! says what a frame is for ([`Ingress`]); the NIC pump then feeds the IP
//! packet to that connection's smoltcp socket (or to none, for smoltcp's
//! RST) and sends what ARP calls for.

use ringline_dataplane::MacAddr;
use std::net::Ipv4Addr;

use smoltcp::socket::tcp;
use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket};

use super::conns::{tuple_key, Phase};
use super::recovery::{read_sack, Heard, Repair};
use super::Core;
use crate::ids::{ConnId, ListenerId};
use crate::l2::{self, Arp, ETH_HDR};
use crate::tcpopt;

/// What a received frame is for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ingress<'a> {
    /// Feed this IP packet to connection `cid`'s socket, then make the
    /// repair loss recovery asks for, if any.
    Conn {
        cid: ConnId,
        ip: &'a [u8],
        src_mac: MacAddr,
        repair: Option<Repair>,
        /// The segment's data is all below the acknowledgment we last
        /// sent (its edges): a duplicate, for the reply's D-SACK.
        dsack: Option<(u32, u32)>,
        /// Inside the receive window (`Recovery::acceptable`): recovery
        /// read it.
        in_window: bool,
        /// Its data is over the memory budget (`Conns::rx_over_budget`): the
        /// segment goes to the socket as a pure ACK, and recovery heard no
        /// data in it.
        strip: bool,
    },
    /// A segment for no socket: let smoltcp answer it (RST) with no socket.
    NoSocket { ip: &'a [u8], src_mac: MacAddr },
    /// A SYN the listener's SYN queue has no room for: answer it, with no
    /// state kept, by this SYN cookie SYN-ACK.
    Cookie(CookieSynAck),
    /// An ACK returning a valid SYN cookie: build connection `cid`'s socket
    /// from the SYN the cookie stands for (`syn`), then feed it this packet.
    CookieConn {
        cid: ConnId,
        ip: &'a [u8],
        src_mac: MacAddr,
        syn: CookieSyn,
    },
    /// Send this ARP packet to this MAC.
    Arp(MacAddr, Arp),
    /// Handled or dropped (and counted).
    Done,
}

/// A SYN cookie SYN-ACK to send.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) struct CookieSynAck {
    pub(crate) to: MacAddr,
    pub(crate) src: Ipv4Addr,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
    /// The cookie: our ISN.
    pub(crate) cookie: u32,
    /// The client's ISN.
    pub(crate) isn: u32,
    pub(crate) mss: u16,
}

/// The SYN a returning cookie stands for.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) struct CookieSyn {
    /// The client's ISN.
    pub(crate) isn: u32,
    /// Our ISN (the cookie).
    pub(crate) cookie: u32,
    pub(crate) mss: u16,
    /// The ACK's window field (no scaling on a cookie connection).
    pub(crate) win: u16,
}

/// The MSS option of a SYN's options, if any.
fn syn_mss(opts: &[u8]) -> Option<u16> {
    let r = tcpopt::find(opts, tcpopt::MSS)?;
    let b = opts.get(r)?;
    (b.len() == 2).then(|| u16::from_be_bytes([b[0], b[1]]))
}

/// The demux key of an Ethernet + IPv4 + TCP frame, read without any
/// validation (for prefetching; [`Core::ingress`] validates).
pub(crate) fn peek_tuple(f: &[u8]) -> Option<u64> {
    if f.len() < ETH_HDR + 20
        || f[12..14] != l2::ETHERTYPE_IPV4.to_be_bytes()
        || f[ETH_HDR + 9] != u8::from(IpProtocol::Tcp)
    {
        return None;
    }
    let ihl = (f[ETH_HDR] & 0x0f) as usize * 4;
    let t = ETH_HDR + ihl;
    if f.len() < t + 4 {
        return None;
    }
    let src = std::net::Ipv4Addr::new(
        f[ETH_HDR + 12],
        f[ETH_HDR + 13],
        f[ETH_HDR + 14],
        f[ETH_HDR + 15],
    );
    let sport = u16::from_be_bytes([f[t], f[t + 1]]);
    let dport = u16::from_be_bytes([f[t + 2], f[t + 3]]);
    Some(tuple_key(src, sport, dport))
}

impl Core {
    /// Classifies one received frame. `hint` is the connection the burst's
    /// prefetch pass found for it (checked before it is trusted: an earlier
    /// frame of the burst may have closed that connection); `verify` says
    /// whether the IPv4 and TCP checksums are ours to check (not offloaded).
    /// They are checked here, before anything reads the segment (recovery
    /// takes its ACK and SACK blocks first; a segment may be rewritten
    /// before the socket sees it), so the socket does not check them again.
    pub(crate) fn ingress<'a>(
        &mut self,
        frame: &'a [u8],
        hint: Option<ConnId>,
        verify: bool,
    ) -> Ingress<'a> {
        let Some(eth) = l2::parse_eth(frame) else {
            self.stats.malformed += 1;
            return Ingress::Done;
        };
        if eth.dst != self.host.mac && eth.dst != l2::BROADCAST {
            self.stats.not_for_us += 1;
            return Ingress::Done;
        }
        match eth.ethertype {
            l2::ETHERTYPE_ARP => self.on_arp(&frame[ETH_HDR..]),
            l2::ETHERTYPE_IPV4 => self.on_ipv4(&frame[ETH_HDR..], eth.src, hint, verify),
            _ => {
                self.stats.unsupported += 1;
                Ingress::Done
            }
        }
    }

    fn on_arp(&mut self, p: &[u8]) -> Ingress<'static> {
        let Some(arp) = l2::parse_arp(p) else {
            self.stats.malformed += 1;
            return Ingress::Done;
        };
        self.stats.arp_rx += 1;
        let on_link = self.host.on_link(arp.spa);
        let out = self
            .neigh
            .on_arp(&arp, self.host.ip, self.host.mac, on_link, self.now_us);
        // Connections waiting for this neighbour can send now.
        for &cid in &out.wake {
            self.conns.mark_dirty(cid);
        }
        self.neigh.done_waking(out.wake);
        match out.reply {
            Some((to, reply)) => Ingress::Arp(to, reply),
            None => Ingress::Done,
        }
    }

    fn on_ipv4<'a>(
        &mut self,
        ip: &'a [u8],
        src_mac: MacAddr,
        hint: Option<ConnId>,
        verify: bool,
    ) -> Ingress<'a> {
        let Ok(pkt) = Ipv4Packet::new_checked(ip) else {
            self.stats.malformed += 1;
            return Ingress::Done;
        };
        let total = pkt.total_len() as usize;
        if verify && !pkt.verify_checksum() {
            self.stats.malformed += 1;
            self.stats.bad_checksum += 1;
            return Ingress::Done;
        }
        if pkt.dst_addr() != self.host.ip {
            self.stats.not_for_us += 1;
            return Ingress::Done;
        }
        if pkt.more_frags() || pkt.frag_offset() != 0 || pkt.next_header() != IpProtocol::Tcp {
            self.stats.unsupported += 1;
            return Ingress::Done;
        }
        let src = pkt.src_addr();
        let Ok(tcp) = TcpPacket::new_checked(pkt.payload()) else {
            self.stats.malformed += 1;
            return Ingress::Done;
        };
        if verify && !tcp.verify_checksum(&src.into(), &pkt.dst_addr().into()) {
            self.stats.malformed += 1;
            self.stats.bad_checksum += 1;
            return Ingress::Done;
        }
        let (sport, dport, syn, ack, rst) = (
            tcp.src_port(),
            tcp.dst_port(),
            tcp.syn(),
            tcp.ack(),
            tcp.rst(),
        );
        let ip = &ip[..total];
        if self.host.on_link(src) {
            // A neighbour first heard from by a segment: connections waiting
            // for it can send now.
            if self.neigh.learn_from_ip(src, src_mac, self.now_us) {
                let wake = self.neigh.take_waiting();
                for &cid in &wake {
                    self.conns.mark_dirty(cid);
                }
                self.neigh.done_waking(wake);
            }
        }
        let key = tuple_key(src, sport, dport);
        let known = match hint {
            Some(h) if self.conns.get(h).key == Some(key) && self.conns.is_live(h) => Some(h),
            _ => self.conns.lookup(key),
        };
        if let Some(cid) = known {
            // Over the memory budget, data is cut before the socket sees it
            // (`Conns::rx_over_budget`); recovery then hears none either.
            // (A FIN alone is never cut: only payload is.)
            let strip = self.conns.budget_used()
                && !tcp.payload().is_empty()
                && self.conns.rx_over_budget(cid, tcp.seq_number().0 as u32);
            let c = self.conns.get_mut(cid);
            if syn && tcp.header_len() > 20 {
                // The peer's window scale and MSS (a SYN-ACK, or a SYN again).
                c.rec.on_syn(tcp.options());
            }
            let (repair, dsack, in_window) = if c.established {
                let mut h = Heard {
                    seq: tcp.seq_number().0 as u32,
                    len: (tcp.payload().len() + usize::from(tcp.fin())) as u32,
                    ack: tcp.ack_number().0 as u32,
                    win: tcp.window_len(),
                    control: syn || rst || !ack,
                    ..Heard::default()
                };
                if strip {
                    h.len = 0;
                }
                if !h.control && !c.rec.acceptable(h.seq, h.len) {
                    // Outside the receive window: the socket drops it
                    // without reading its ACK (as Linux does), and so does
                    // recovery. Its ACK and SACK blocks may be forged by
                    // anyone who knows the four numbers of the connection.
                    self.stats.out_of_window += 1;
                    let cap = c.sock_ref().recv_capacity() as u32;
                    c.rec.note_outside(h.seq, h.len, cap);
                    (None, None, false)
                } else {
                    if tcp.header_len() > 20 {
                        // Options: maybe SACK blocks (one block alone makes a
                        // 32-byte header, the size timestamps alone make too).
                        read_sack(tcp.options(), &mut h);
                    }
                    let undos = c.rec.undos;
                    let r = c.rec.on_heard(&h, self.now_us);
                    if r.is_some() {
                        self.stats.fast_retransmits += 1;
                    }
                    self.stats.recovery_undos += u64::from(c.rec.undos.wrapping_sub(undos));
                    let data = tcp.payload().len() as u32;
                    let dsack = if h.control || tcp.fin() || data == 0 || strip {
                        None
                    } else {
                        c.rec.duplicate(h.seq, data)
                    };
                    (r, dsack, true)
                }
            } else {
                (None, None, true)
            };
            return Ingress::Conn {
                cid,
                ip,
                src_mac,
                repair,
                dsack,
                in_window,
                strip,
            };
        }
        if syn && !ack && !rst {
            let lid = match self.listeners.on_port(dport) {
                Some(lid) => Some(lid),
                None => self.claim_pending_listener(dport),
            };
            if let Some(lid) = lid {
                if self.listeners.accept_full(lid) {
                    // Linux drops SYNs while the accept queue is full.
                    self.stats.syn_dropped += 1;
                    return Ingress::Done;
                }
                // Room in the SYN queue: a half-open connection.
                let cap = self
                    .cfg
                    .max_syn_backlog
                    .min((self.cfg.max_connections / 2) as u32);
                let half = self.listeners.has_room(lid, cap);
                if let Some(cid) = half
                    .then(|| self.open_half(lid, key, src, sport, dport))
                    .flatten()
                {
                    self.conns.get_mut(cid).rec.on_syn(tcp.options());
                    return Ingress::Conn {
                        cid,
                        ip,
                        src_mac,
                        repair: None,
                        dsack: None,
                        in_window: true,
                        strip: false,
                    };
                }
                // The SYN queue (or the connection table) is full.
                let isn = tcp.seq_number().0 as u32;
                let mss = syn_mss(tcp.options()).unwrap_or(536);
                self.stats.syn_cookies_sent += 1;
                return Ingress::Cookie(CookieSynAck {
                    to: src_mac,
                    src,
                    sport,
                    dport,
                    cookie: self.cookies.make(src, sport, dport, isn, mss, self.now_us),
                    isn,
                    mss,
                });
            }
        }
        if ack && !syn && !rst {
            if let Some(lid) = self.listeners.on_port(dport) {
                let isn = (tcp.seq_number().0 as u32).wrapping_sub(1);
                let cookie = (tcp.ack_number().0 as u32).wrapping_sub(1);
                let checked = self
                    .cookies
                    .check(src, sport, dport, isn, cookie, self.now_us);
                if let Some(mss) = checked {
                    if self.listeners.accept_full(lid) {
                        self.stats.syn_dropped += 1;
                        return Ingress::Done;
                    }
                    if let Some(cid) = self.open_half(lid, key, src, sport, dport) {
                        self.stats.syn_cookies_ok += 1;
                        let win = tcp.window_len();
                        return Ingress::CookieConn {
                            cid,
                            ip,
                            src_mac,
                            syn: CookieSyn {
                                isn,
                                cookie,
                                mss,
                                win,
                            },
                        };
                    }
                    self.stats.syn_dropped += 1;
                    return Ingress::Done;
                }
            }
        }
        self.stats.no_socket += 1;
        if rst {
            return Ingress::Done;
        }
        // No socket: an empty set makes smoltcp answer with the right RST.
        Ingress::NoSocket { ip, src_mac }
    }

    /// A SYN for `port`, where nothing here listens: a socket that listens
    /// on `port` outside the engine (`listen()` in `libringline`) and that
    /// no request has named yet is adopted now, so the SYN is not refused.
    #[cold]
    fn claim_pending_listener(&mut self, port: u16) -> Option<ListenerId> {
        if self.fds.is_bound(port) {
            // Its adoption would fail (EADDRINUSE): leave it to the request
            // that names it, which reports that.
            return None;
        }
        let fd = self.fds.pending_listener(port)?;
        self.adopt_fd(fd).ok()?;
        self.listeners.on_port(port)
    }

    /// A connection for listener `lid`, listening, bound to `key`, counted
    /// as half-open; `None` when the table is full.
    fn open_half(
        &mut self,
        lid: ListenerId,
        key: u64,
        src: std::net::Ipv4Addr,
        sport: u16,
        dport: u16,
    ) -> Option<ConnId> {
        let cid = self.conns.alloc(self.now_us)?;
        self.listeners.add_half_open(lid);
        let c = self.conns.get_mut(cid);
        c.phase = Phase::Handshake(lid);
        c.remote_ip = src;
        c.remote_port = sport;
        c.local_port = dport;
        if c.sock().listen(dport).is_err() {
            self.listeners.handshake_failed(lid);
            self.release_conn(cid);
            self.stats.syn_dropped += 1;
            return None;
        }
        c.last_state = tcp::State::Listen;
        self.conns.bind_tuple(cid, key);
        Some(cid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// The prefetch pass finds the same demux key `on_ipv4` uses, including
    /// past IP options, and gives up on anything that is not IPv4/TCP.
    #[test]
    fn peek_tuple_reads_the_demux_key() {
        let mut f = vec![0u8; ETH_HDR + 24 + 20];
        l2::write_eth(&mut f, [2; 6], [3; 6], l2::ETHERTYPE_IPV4);
        f[ETH_HDR] = 0x46; // IPv4, 24-byte header (one option word)
        f[ETH_HDR + 9] = 6;
        f[ETH_HDR + 12..ETH_HDR + 16].copy_from_slice(&[10, 0, 0, 2]);
        let t = ETH_HDR + 24;
        f[t..t + 2].copy_from_slice(&40000u16.to_be_bytes());
        f[t + 2..t + 4].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            peek_tuple(&f),
            Some(tuple_key(Ipv4Addr::new(10, 0, 0, 2), 40000, 7))
        );
        f[ETH_HDR + 9] = 17; // UDP
        assert_eq!(peek_tuple(&f), None);
        f[ETH_HDR + 9] = 6;
        f[12] = 0x08;
        f[13] = 0x06; // ARP
        assert_eq!(peek_tuple(&f), None);
        assert_eq!(peek_tuple(&f[..20]), None);
    }
}
