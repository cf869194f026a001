//! The smoltcp device over the NIC: at most one received IP packet (the one
//! being fed), and transmit straight into the NIC's frame buffer behind our
//! Ethernet header. smoltcp runs with `Medium::Ip`; L2 is ours.

use ringline_dataplane::{MacAddr, Nic, TxError};
use smoltcp::phy::{Device, DeviceCapabilities, RxToken, TxToken};
use smoltcp::time::Instant;

use std::net::Ipv4Addr;

use smoltcp::wire::{IpAddress, TcpPacket};

use crate::core::recovery::Sent;
use crate::l2::{self, ETH_HDR};
use crate::tcpopt;

/// Transmit counters of the device.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TxCounters {
    /// Segments handed to the NIC.
    pub(crate) segments: u64,
    /// Segments the NIC could not take (lost; TCP retransmits them).
    pub(crate) dropped: u64,
    /// Times egress stopped because the NIC was full.
    pub(crate) full: u64,
    /// Resends of a recovery walk not put on the wire: the peer has them
    /// (SACKed) or they are still in flight.
    pub(crate) skipped: u64,
    /// ACKs that reported a duplicate segment in a D-SACK block.
    pub(crate) dsacks: u64,
    /// Resends cut to the part the peer has not SACKed.
    pub(crate) trimmed: u64,
    /// ACKs that got more SACK blocks than the socket's one.
    pub(crate) sack_blocks_added: u64,
}

/// The device smoltcp sees, borrowing the pump's parts for one call.
pub(crate) struct Port<'a, N: Nic> {
    pub(crate) nic: &'a mut N,
    pub(crate) rx: Option<&'a [u8]>,
    pub(crate) dst_mac: MacAddr,
    pub(crate) src_mac: MacAddr,
    pub(crate) caps: &'a DeviceCapabilities,
    pub(crate) scratch: &'a mut [u8],
    pub(crate) tx: &'a mut TxCounters,
    /// The data segments sent, for loss recovery.
    pub(crate) sent: &'a mut Sent,
    /// Subtract this from our sequence numbers on the way out (a SYN
    /// cookie connection; 0 otherwise).
    pub(crate) seq_off: u32,
    /// Build segments but send none (recording them in `sent`): a cookie
    /// connection's socket answering the SYN it is built from.
    pub(crate) discard: bool,
    /// The segment being fed is a duplicate of data already acknowledged
    /// (these are its edges): the socket's reply, a pure ACK, reports it in
    /// a D-SACK block (RFC 2883), which smoltcp does not send.
    pub(crate) dsack: Option<(u32, u32)>,
}

pub(crate) struct RxTok<'a>(&'a [u8]);

impl RxToken for RxTok<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

pub(crate) struct TxTok<'b, N: Nic> {
    nic: &'b mut N,
    dst_mac: MacAddr,
    src_mac: MacAddr,
    scratch: &'b mut [u8],
    tx: &'b mut TxCounters,
    sent: &'b mut Sent,
    seq_off: u32,
    discard: bool,
    /// Fill TCP checksums (not offloaded).
    csum: bool,
    /// Fill IPv4 header checksums (not offloaded).
    ip_csum: bool,
    /// See [`Port::dsack`].
    dsack: Option<(u32, u32)>,
}

/// IPv4 packet `ip`'s header length and its TCP segment's range, if it
/// holds a whole TCP header.
pub(crate) fn tcp_range(ip: &[u8]) -> Option<(usize, usize)> {
    if ip.len() < 40 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    (total >= ihl + 20).then_some((ihl, total))
}

/// The TCP segment in IPv4 packet `ip`: `(ihl, total, doff)`, the header
/// at `ihl..ihl + doff` and the payload up to `total`, if the data offset
/// is sane (at least 20 and within the segment).
fn tcp_parts(ip: &[u8]) -> Option<(usize, usize, usize)> {
    let (ihl, total) = tcp_range(ip)?;
    let doff = usize::from(ip[ihl + 12] >> 4) * 4;
    (doff >= 20 && ihl + doff <= total).then_some((ihl, total, doff))
}

/// Refills the TCP checksum of IPv4 packet `ip` (whose TCP header is at
/// `ihl..total`).
fn refill_tcp_checksum(ip: &mut [u8], ihl: usize, total: usize) {
    let src = IpAddress::Ipv4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    let dst = IpAddress::Ipv4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    TcpPacket::new_unchecked(&mut ip[ihl..total]).fill_checksum(&src, &dst);
}

/// Sets IPv4 packet `ip`'s total length to `end` after its TCP segment
/// (at `ihl`) was rewritten, refilling the checksums asked for (the others
/// are offloaded, or not checked). Returns `end`.
fn resized(ip: &mut [u8], ihl: usize, end: usize, ip_csum: bool, tcp_csum: bool) -> usize {
    ip[2..4].copy_from_slice(&(end as u16).to_be_bytes());
    if ip_csum {
        smoltcp::wire::Ipv4Packet::new_unchecked(&mut ip[..end]).fill_checksum();
    }
    if tcp_csum {
        refill_tcp_checksum(ip, ihl, end);
    }
    end
}

/// Cuts the payload (and a FIN, which comes after it) off received TCP
/// segment `ip`, keeping its headers, ACK and options: the segment's data is
/// dropped and its acknowledgment still heard. Returns the packet's new
/// length, or `None` if it carries no payload. Checksums are refilled where
/// the socket checks them (`ip_csum`, `tcp_csum`).
pub(crate) fn strip_payload(ip: &mut [u8], ip_csum: bool, tcp_csum: bool) -> Option<usize> {
    let (ihl, total, doff) = tcp_parts(ip)?;
    if total == ihl + doff {
        return None;
    }
    ip[ihl + 13] &= !(0x01 | 0x08); // FIN, PSH
    let end = ihl + doff;
    Some(resized(ip, ihl, end, ip_csum, tcp_csum))
}

/// Puts D-SACK block `dsack` first in pure ACK `ip` (its `len` bytes at the
/// start of a buffer with room for 40 more), and after the socket's own
/// block the blocks of `extra` (data held out of order, most recent first)
/// that lie above the ACK and fit: the options are rebuilt and the header
/// grows. Without a D-SACK, blocks are added only to an ACK that carries a
/// SACK option already (the peer agreed to SACK). Returns the packet's new
/// length (`len` if it is not a pure ACK or nothing was added). Checksums
/// are refilled where not offloaded (an offloading port computes them from
/// the final frame).
pub(crate) fn add_blocks(
    ip: &mut [u8],
    len: usize,
    dsack: Option<(u32, u32)>,
    extra: &[(u32, u32)],
    ip_csum: bool,
    tcp_csum: bool,
) -> usize {
    let Some((ihl, total, doff)) = tcp_parts(&ip[..len]) else {
        return len;
    };
    let t = &ip[ihl..total];
    // A pure ACK: the ACK flag alone (PSH aside), no payload.
    if t.len() != doff || t[13] & !0x08 != 0x10 {
        return len;
    }
    let opts = &t[20..doff];
    if dsack.is_none() && tcpopt::find(opts, tcpopt::SACK).is_none() {
        return len;
    }
    let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
    let mut above = [(0u32, 0u32); 4];
    let mut na = 0;
    for &(l, r) in extra {
        if (l.wrapping_sub(ack) as i32) > 0 && na < above.len() {
            above[na] = (l, r);
            na += 1;
        }
    }
    if dsack.is_none() && na == 0 {
        return len;
    }
    let mut out = [0u8; tcpopt::MAX_LEN];
    let Some(n) = tcpopt::with_blocks(opts, dsack, &above[..na], &mut out) else {
        return len;
    };
    let end = ihl + 20 + n;
    ip[ihl + 20..end].copy_from_slice(&out[..n]);
    ip[ihl + 12] = (((20 + n) / 4) << 4) as u8;
    resized(ip, ihl, end, ip_csum, tcp_csum)
}

/// Cuts resend `ip` (its `len` bytes) to the part `sent`'s filter says the
/// peer lacks (its SACKed head and tail off): the payload moves up behind
/// the headers, the sequence number and lengths follow, and the checksums
/// are refilled unless offloaded. Returns the packet's new length (`len`
/// when nothing is cut, or for a FIN, SYN or RST).
pub(crate) fn trim_resend(
    ip: &mut [u8],
    len: usize,
    sent: &Sent,
    ip_csum: bool,
    tcp_csum: bool,
) -> usize {
    let Some((ihl, total, doff)) = tcp_parts(&ip[..len]) else {
        return len;
    };
    let t = &ip[ihl..total];
    if t.len() == doff || t[13] & 0x07 != 0 {
        return len;
    }
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let plen = (t.len() - doff) as u32;
    let Some((s, e)) = sent.trim(seq, seq.wrapping_add(plen)) else {
        return len;
    };
    let (head, keep) = (s.wrapping_sub(seq) as usize, e.wrapping_sub(s) as usize);
    let data = ihl + doff;
    ip.copy_within(data + head..data + head + keep, data);
    ip[ihl + 4..ihl + 8].copy_from_slice(&s.to_be_bytes());
    let end = data + keep;
    resized(ip, ihl, end, ip_csum, tcp_csum)
}

/// Our sequence number in segment `ip` minus `off` (socket to wire, for a
/// SYN cookie connection), the checksum refilled when `csum`.
pub(crate) fn shift_seq(ip: &mut [u8], off: u32, csum: bool) {
    let Some((ihl, total)) = tcp_range(ip) else {
        return;
    };
    let t = &mut ip[ihl..total];
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]).wrapping_sub(off);
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    if csum {
        refill_tcp_checksum(ip, ihl, total);
    }
}

/// The peer's ACK number and SACK edges in segment `ip` plus `off` (wire to
/// socket, for a SYN cookie connection), the checksum refilled when `csum`.
pub(crate) fn shift_acks(ip: &mut [u8], off: u32, csum: bool) {
    let Some((ihl, total)) = tcp_range(ip) else {
        return;
    };
    let t = &mut ip[ihl..total];
    let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]).wrapping_add(off);
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    let doff = (usize::from(t[12] >> 4) * 4).clamp(20, t.len());
    let opts = &mut t[20..doff];
    if let Some(r) = tcpopt::find(opts, tcpopt::SACK) {
        for edge in opts[r].chunks_exact_mut(4) {
            let v = u32::from_be_bytes([edge[0], edge[1], edge[2], edge[3]]);
            edge.copy_from_slice(&v.wrapping_add(off).to_be_bytes());
        }
    }
    if csum {
        refill_tcp_checksum(ip, ihl, total);
    }
}

/// Records the data segment (if it is one) in IP packet `ip` into `sent`;
/// says whether the packet goes on the wire (during recovery, a resend the
/// peer has or that is still in flight does not). A window field goes out
/// one unit smaller when `sent.shift` says so (see
/// `Recovery::wire_shift`), its TCP checksum updated when `csum`.
#[inline]
fn note_sent(ip: &mut [u8], sent: &mut Sent, csum: bool) -> bool {
    let Some((ihl, total, doff)) = tcp_parts(ip) else {
        return true;
    };
    let t = &mut ip[ihl..total];
    let flags = t[13];
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    if flags & 0x10 != 0 {
        let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
        sent.ack = Some(ack);
        if doff > 20 && t.len() == doff && flags & 0x07 == 0 {
            // A pure ACK with options: the socket's SACK block, if any (the
            // first above the ACK: a D-SACK the pump put first lies below).
            sent.sacked = first_sack_above(&t[20..doff], ack);
        }
        let win = u16::from_be_bytes([t[14], t[15]]);
        sent.win = Some(win);
        // Not a SYN's (unscaled) nor an RST's.
        if sent.shift > 0 && win > 0 && flags & 0x06 == 0 {
            t[14..16].copy_from_slice(&(win - 1).to_be_bytes());
            if csum {
                let c = u16::from_be_bytes([t[16], t[17]]);
                t[16..18].copy_from_slice(&csum_replace16(c, win, win - 1).to_be_bytes());
            }
        }
    }
    if flags & 0x02 != 0 {
        // SYNs are only noted.
        let o = &t[20..doff];
        if let Some(r) = tcpopt::find(o, tcpopt::WSCALE) {
            sent.ws = o[r].first().copied();
        }
        sent.syn = Some(seq);
        return true;
    }
    let payload = t.len().saturating_sub(doff) as u32;
    // FIN counts one in sequence space.
    let len = payload + u32::from(flags & 0x01);
    if len > 0 {
        sent.record(seq, len, payload)
    } else {
        true
    }
}

/// The first block of SACK option in `opts` that lies above `ack`.
fn first_sack_above(opts: &[u8], ack: u32) -> Option<(u32, u32)> {
    tcpopt::sack_blocks(opts)
        .find(|&(l, r)| (l.wrapping_sub(ack) as i32) > 0 && (r.wrapping_sub(l) as i32) > 0)
}

/// Checksum `c` with one 16-bit word changed from `old` to `new` (RFC 1624,
/// eqn. 3: `HC' = ~(~HC + ~m + m')`).
pub(crate) fn csum_replace16(c: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!c) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The largest header a TCP/IPv4 packet can have (IPv4 and TCP options
/// included): the size of the buffer [`ack_at`] writes into.
pub(crate) const MAX_HEADERS: usize = 120;

/// The acknowledgment of received segment `ip` alone, at sequence number
/// `at` (the socket's `rcv.nxt` while its window is closed: see
/// `Recovery::closed_at`), written into `out`: the headers and options
/// copied, the payload and any FIN and PSH left off, the checksums refilled
/// where the socket checks them. Returns its length, or `None` when the
/// socket takes `ip` as it is (a pure ACK at `at`) or it is not an ACK
/// (SYN, RST, or no ACK flag).
pub(crate) fn ack_at(
    ip: &[u8],
    at: u32,
    out: &mut [u8; MAX_HEADERS],
    ip_csum: bool,
    tcp_csum: bool,
) -> Option<usize> {
    let (ihl, total, doff) = tcp_parts(ip)?;
    let t = &ip[ihl..total];
    let flags = t[13];
    if flags & 0x10 == 0 || flags & 0x06 != 0 {
        return None;
    }
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    if seq == at && t.len() == doff && flags & 0x01 == 0 {
        return None;
    }
    let end = ihl + doff;
    let o = out.get_mut(..end)?;
    o.copy_from_slice(&ip[..end]);
    o[ihl + 4..ihl + 8].copy_from_slice(&at.to_be_bytes());
    o[ihl + 13] &= !(0x01 | 0x08); // FIN, PSH
    Some(resized(o, ihl, end, ip_csum, tcp_csum))
}

/// Sends IP packet `ip` from `src` to `dst` (a packet built aside: a
/// cookie's SYN-ACK, a resend the recovery filter kept), flushing the NIC's
/// batch once if it is full.
pub(crate) fn send_ip<N: Nic>(
    nic: &mut N,
    src: MacAddr,
    dst: MacAddr,
    ip: &[u8],
    tx: &mut TxCounters,
) {
    let mut build = |buf: &mut [u8]| {
        l2::write_eth(buf, dst, src, l2::ETHERTYPE_IPV4);
        buf[ETH_HDR..ETH_HDR + ip.len()].copy_from_slice(ip);
    };
    let mut r = nic.tx_frame(ETH_HDR + ip.len(), &mut build);
    if r == Err(TxError::Full) {
        nic.tx_flush();
        r = nic.tx_frame(ETH_HDR + ip.len(), &mut build);
    }
    if r.is_ok() {
        tx.segments += 1;
    } else {
        tx.dropped += 1;
    }
}

impl<N: Nic> TxToken for TxTok<'_, N> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let (sent, off, csum) = (self.sent, self.seq_off, self.csum);
        if self.discard {
            let v = f(&mut self.scratch[..len]);
            note_sent(&mut self.scratch[..len], sent, csum);
            return v;
        }
        if sent.filter.is_some() || self.dsack.is_some() || sent.nrsb > 0 {
            // Built aside (a copy, only while the filter is on: an episode,
            // an unfinished walk, or SACK blocks held; or when answering a
            // duplicate): a resend goes out only if the filter keeps it,
            // cut to what the peer lacks; the reply to a duplicate gets its
            // D-SACK.
            let v = f(&mut self.scratch[..len]);
            let mut len = len;
            if self.dsack.is_some() || sent.nrsb > 0 {
                let extra = &sent.rsb[..usize::from(sent.nrsb)];
                let grown = add_blocks(self.scratch, len, self.dsack, extra, self.ip_csum, csum);
                if grown != len {
                    self.tx.dsacks += u64::from(self.dsack.is_some());
                    self.tx.sack_blocks_added += u64::from(sent.nrsb > 0);
                }
                len = grown;
            }
            if off != 0 {
                shift_seq(&mut self.scratch[..len], off, csum);
            }
            if !note_sent(&mut self.scratch[..len], sent, csum) {
                self.tx.skipped += 1;
                return v;
            }
            if sent.filter.is_some() {
                let cut = trim_resend(self.scratch, len, sent, self.ip_csum, csum);
                self.tx.trimmed += u64::from(cut != len);
                len = cut;
            }
            let ip = &self.scratch[..len];
            send_ip(self.nic, self.src_mac, self.dst_mac, ip, self.tx);
            return v;
        }
        let mut f = Some(f);
        let mut out = None;
        let (dst, src) = (self.dst_mac, self.src_mac);
        let mut build = |buf: &mut [u8]| {
            l2::write_eth(buf, dst, src, l2::ETHERTYPE_IPV4);
            if let Some(f) = f.take() {
                out = Some(f(&mut buf[ETH_HDR..]));
                if off != 0 {
                    shift_seq(&mut buf[ETH_HDR..], off, csum);
                }
                note_sent(&mut buf[ETH_HDR..], sent, csum);
            }
        };
        let mut r = self.nic.tx_frame(ETH_HDR + len, &mut build);
        if r == Err(TxError::Full) {
            self.nic.tx_flush();
            r = self.nic.tx_frame(ETH_HDR + len, &mut build);
        }
        match out {
            Some(v) if r.is_ok() => {
                self.tx.segments += 1;
                v
            }
            _ => {
                // The NIC cannot take the frame: smoltcp must still be given a
                // buffer; the segment is lost and TCP will retransmit it.
                self.tx.dropped += 1;
                let f = f.take().expect("builder not called when tx_frame fails");
                let v = f(&mut self.scratch[..len]);
                if off != 0 {
                    shift_seq(&mut self.scratch[..len], off, csum);
                }
                note_sent(&mut self.scratch[..len], sent, csum);
                v
            }
        }
    }
}

impl<N: Nic> Device for Port<'_, N> {
    type RxToken<'b>
        = RxTok<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxTok<'b, N>
    where
        Self: 'b;

    fn receive(&mut self, _ts: Instant) -> Option<(RxTok<'_>, TxTok<'_, N>)> {
        let pkt = self.rx.take()?;
        Some((
            RxTok(pkt),
            TxTok {
                nic: self.nic,
                dst_mac: self.dst_mac,
                src_mac: self.src_mac,
                scratch: self.scratch,
                tx: self.tx,
                sent: self.sent,
                seq_off: self.seq_off,
                discard: self.discard,
                csum: self.caps.checksum.tcp.tx(),
                ip_csum: self.caps.checksum.ipv4.tx(),
                dsack: self.dsack.take(),
            },
        ))
    }

    fn transmit(&mut self, _ts: Instant) -> Option<TxTok<'_, N>> {
        // A full NIC makes smoltcp stop (Exhausted) with the data still in the
        // socket; the connection stays dirty and egress resumes next step.
        if !self.nic.tx_ready() {
            self.tx.full += 1;
            return None;
        }
        Some(TxTok {
            nic: self.nic,
            dst_mac: self.dst_mac,
            src_mac: self.src_mac,
            scratch: self.scratch,
            tx: self.tx,
            sent: self.sent,
            seq_off: self.seq_off,
            discard: self.discard,
            csum: self.caps.checksum.tcp.tx(),
            ip_csum: self.caps.checksum.ipv4.tx(),
            dsack: None,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Congestion;
    use crate::core::recovery::{Heard, Recovery};
    use crate::stats::EngineStats;
    use smoltcp::wire::Ipv4Packet;

    /// A data segment `[seq, seq + payload.len())` as IPv4 + TCP, checksummed.
    fn segment(seq: u32, payload: &[u8]) -> Vec<u8> {
        let total = 40 + payload.len();
        let mut ip = vec![0u8; total + 64];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let t = &mut ip[20..];
        t[0..2].copy_from_slice(&7u16.to_be_bytes());
        t[2..4].copy_from_slice(&4000u16.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&99u32.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = 0x18; // ACK, PSH
        t[14..16].copy_from_slice(&1000u16.to_be_bytes());
        t[20..20 + payload.len()].copy_from_slice(payload);
        Ipv4Packet::new_unchecked(&mut ip[..total]).fill_checksum();
        refill_tcp_checksum(&mut ip, 20, total);
        ip
    }

    /// A resend whose head and tail the peer SACKed goes out as the hole
    /// only: sequence number, length and both checksums follow.
    #[test]
    fn a_resend_is_cut_to_the_part_the_peer_lacks() {
        let mut r = Recovery::default();
        r.reset(Congestion::default());
        let mut st = EngineStats::default();
        let mut s = r.begin(0);
        for i in 0..10u32 {
            s.record(1000 + i * 100, 100, 100);
        }
        r.on_sent(&s, 0, &mut st);
        // [1100, 1150) and [1250, 2000) SACKed: the holes are [1000, 1100)
        // and [1150, 1250).
        let mut h = Heard {
            seq: 7,
            ack: 1000,
            win: 1000,
            ..Heard::default()
        };
        h.sack[0] = (1250, 2000);
        h.sack[1] = (1100, 1150);
        h.nsack = 2;
        r.on_heard(&h, 10_000);
        let sent = r.begin(12_000);
        // A walk's segments from `snd.una`, 200 bytes each: [1000, 1200)
        // holds SACKed data only in its middle and goes whole; [1200, 1400)
        // goes as [1200, 1250).
        let payload: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let mut first = segment(1000, &payload);
        assert_eq!(trim_resend(&mut first, 240, &sent, true, true), 240);
        let mut ip = segment(1200, &payload);
        let n = trim_resend(&mut ip, 240, &sent, true, true);
        assert_eq!(n, 40 + 50);
        let pkt = Ipv4Packet::new_checked(&ip[..n]).expect("a valid IPv4 packet");
        assert!(pkt.verify_checksum());
        assert_eq!(usize::from(pkt.total_len()), n);
        let tcp = TcpPacket::new_checked(pkt.payload()).expect("a valid TCP segment");
        let (src, dst) = (
            IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 2)),
        );
        assert!(tcp.verify_checksum(&src, &dst));
        assert_eq!(tcp.seq_number().0 as u32, 1200);
        assert_eq!(tcp.payload(), &payload[..50]);
        // A head SACKed: [1100, 1300) goes as [1150, 1250).
        let mut mid = segment(1100, &payload);
        let n = trim_resend(&mut mid, 240, &sent, true, true);
        assert_eq!(n, 40 + 100);
        let tcp = TcpPacket::new_checked(&mid[20..n]).expect("a valid TCP segment");
        assert_eq!(tcp.seq_number().0 as u32, 1150);
        assert_eq!(tcp.payload(), &payload[50..150]);
        // New data, and a segment wholly in the hole, go as they are.
        let mut whole = segment(1150, &payload[..100]);
        assert_eq!(trim_resend(&mut whole, 140, &sent, true, true), 140);
        let mut new = segment(2000, &payload[..100]);
        assert_eq!(trim_resend(&mut new, 140, &sent, true, true), 140);
    }

    /// The checksums of IPv4 packet `ip` (10.0.0.1 to 10.0.0.2) are good.
    fn checksums_good(ip: &[u8]) -> bool {
        let pkt = Ipv4Packet::new_checked(ip).expect("a valid IPv4 packet");
        let tcp = TcpPacket::new_checked(pkt.payload()).expect("a valid TCP segment");
        let (src, dst) = (
            IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 2)),
        );
        pkt.verify_checksum() && tcp.verify_checksum(&src, &dst)
    }

    /// smoltcp's window field is its free receive space rounded down to a
    /// unit, so its right edge moves back (by less than a unit) when data
    /// arrives, and a peer that filled the earlier edge has data outside
    /// smoltcp's window. The field on the wire is a unit less, so no edge
    /// the peer hears passes an edge smoltcp holds later.
    #[test]
    fn no_window_edge_on_the_wire_passes_a_later_edge_of_the_socket() {
        const SHIFT: u8 = 7;
        let cap: u32 = 4 << 20;
        let (mut rcv_nxt, mut queued) = (1u32, 0u32);
        let mut x = 0x9e37_79b9u32;
        let mut smol_edges = Vec::new();
        let mut wire_edges = Vec::new();
        for i in 0..5000 {
            // Arrivals of odd sizes, and reads now and then.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let n = (x % 1449).min(cap - queued);
            rcv_nxt = rcv_nxt.wrapping_add(n);
            queued += n;
            if i % 7 == 0 {
                queued -= queued.min(x % 40_000);
            }
            let free = cap - queued;
            let field = (free >> SHIFT) as u16;
            smol_edges.push(rcv_nxt + (u32::from(field) << SHIFT));
            // The socket's pure ACK, through the egress hook.
            let mut ip = segment(7, &[]);
            ip[28..32].copy_from_slice(&rcv_nxt.to_be_bytes());
            ip[34..36].copy_from_slice(&field.to_be_bytes());
            refill_tcp_checksum(&mut ip, 20, 40);
            let mut sent = Sent::default();
            sent.shift = SHIFT;
            assert!(note_sent(&mut ip, &mut sent, true));
            assert_eq!(sent.win, Some(field), "the socket's own field is noted");
            assert!(checksums_good(&ip[..40]));
            let wire = u16::from_be_bytes([ip[34], ip[35]]);
            assert_eq!(wire, field.saturating_sub(1));
            wire_edges.push(rcv_nxt + (u32::from(wire) << SHIFT));
        }
        // Every edge the peer heard is at or below every edge smoltcp held
        // from then on; smoltcp's own edges are not.
        let (mut later_min, mut raw_past) = (u32::MAX, 0);
        for (i, (w, e)) in wire_edges.iter().zip(&smol_edges).enumerate().rev() {
            later_min = later_min.min(*e);
            assert!(*w <= later_min, "edge {w} heard at {i} passes {later_min}");
            raw_past += usize::from(*e > later_min);
        }
        assert!(raw_past > 100, "smoltcp's edges move back: {raw_past}");
        // A SYN's window is not scaled: left alone; its scale is noted.
        let mut syn = segment(7, &[]);
        syn[33] = 0x12; // SYN, ACK
        let mut sent = Sent::default();
        sent.shift = SHIFT;
        note_sent(&mut syn, &mut sent, false);
        assert_eq!(u16::from_be_bytes([syn[34], syn[35]]), 1000);
    }

    /// While the socket's window is closed, a segment's ACK is fed alone at
    /// `rcv.nxt`: payload, FIN and PSH off, checksums good.
    #[test]
    fn a_segment_met_by_a_closed_window_gives_its_ack_alone() {
        let payload = [5u8; 100];
        let mut ip = segment(5016, &payload);
        ip[33] |= 0x01; // FIN
        refill_tcp_checksum(&mut ip, 20, 140);
        let mut out = [0u8; MAX_HEADERS];
        let n = ack_at(&ip, 5000, &mut out, true, true).expect("an ACK");
        assert_eq!(n, 40);
        assert!(checksums_good(&out[..n]));
        let tcp = TcpPacket::new_checked(&out[20..n]).expect("a valid TCP segment");
        assert_eq!(tcp.seq_number().0 as u32, 5000);
        assert!(tcp.ack() && !tcp.fin() && !tcp.psh() && tcp.payload().is_empty());
        assert_eq!(tcp.window_len(), 1000);
        // A pure ACK at rcv.nxt is taken as it is; an RST or SYN is not an ACK
        // to feed.
        let pure = segment(5000, &[]);
        assert_eq!(ack_at(&pure, 5000, &mut out, true, true), None);
        let mut probe = segment(4999, &[]);
        assert!(ack_at(&probe, 5000, &mut out, true, true).is_some());
        probe[33] = 0x14; // RST, ACK
        assert_eq!(ack_at(&probe, 5000, &mut out, true, true), None);
    }
}
