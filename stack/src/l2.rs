//! Our own L2: Ethernet framing and ARP (smoltcp runs with `Medium::Ip`).
//! Parsers take untrusted bytes and never panic; anything malformed is `None`.

use std::net::Ipv4Addr;

use ringline_dataplane::MacAddr;

/// Ethernet header length.
pub(crate) const ETH_HDR: usize = 14;
/// EtherType IPv4.
pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType ARP.
pub(crate) const ETHERTYPE_ARP: u16 = 0x0806;
/// Broadcast MAC.
pub(crate) const BROADCAST: MacAddr = [0xff; 6];

/// A parsed Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EthHdr {
    /// Destination MAC.
    pub(crate) dst: MacAddr,
    /// Source MAC.
    pub(crate) src: MacAddr,
    /// EtherType.
    pub(crate) ethertype: u16,
}

/// Parses the Ethernet header of `frame`.
pub(crate) fn parse_eth(frame: &[u8]) -> Option<EthHdr> {
    if frame.len() < ETH_HDR {
        return None;
    }
    let mut dst = [0; 6];
    let mut src = [0; 6];
    dst.copy_from_slice(&frame[0..6]);
    src.copy_from_slice(&frame[6..12]);
    Some(EthHdr {
        dst,
        src,
        ethertype: u16::from_be_bytes([frame[12], frame[13]]),
    })
}

/// Writes an Ethernet header into `buf[..14]`.
pub(crate) fn write_eth(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// ARP operation codes.
pub(crate) const ARP_REQUEST: u16 = 1;
/// ARP reply.
pub(crate) const ARP_REPLY: u16 = 2;
/// Length of an Ethernet/IPv4 ARP packet.
pub(crate) const ARP_LEN: usize = 28;

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Arp {
    /// Request or reply.
    pub(crate) op: u16,
    /// Sender MAC.
    pub(crate) sha: MacAddr,
    /// Sender IP.
    pub(crate) spa: Ipv4Addr,
    /// Target MAC.
    pub(crate) tha: MacAddr,
    /// Target IP.
    pub(crate) tpa: Ipv4Addr,
}

/// Parses an ARP payload (after the Ethernet header).
pub(crate) fn parse_arp(p: &[u8]) -> Option<Arp> {
    if p.len() < ARP_LEN {
        return None;
    }
    let htype = u16::from_be_bytes([p[0], p[1]]);
    let ptype = u16::from_be_bytes([p[2], p[3]]);
    if htype != 1 || ptype != ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4 {
        return None;
    }
    let op = u16::from_be_bytes([p[6], p[7]]);
    if op != ARP_REQUEST && op != ARP_REPLY {
        return None;
    }
    let mut sha = [0; 6];
    let mut tha = [0; 6];
    sha.copy_from_slice(&p[8..14]);
    tha.copy_from_slice(&p[18..24]);
    Some(Arp {
        op,
        sha,
        spa: Ipv4Addr::new(p[14], p[15], p[16], p[17]),
        tha,
        tpa: Ipv4Addr::new(p[24], p[25], p[26], p[27]),
    })
}

/// Writes `arp` into `p[..28]`.
pub(crate) fn write_arp(p: &mut [u8], arp: &Arp) {
    p[0..2].copy_from_slice(&1u16.to_be_bytes());
    p[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&arp.op.to_be_bytes());
    p[8..14].copy_from_slice(&arp.sha);
    p[14..18].copy_from_slice(&arp.spa.octets());
    p[18..24].copy_from_slice(&arp.tha);
    p[24..28].copy_from_slice(&arp.tpa.octets());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_roundtrip() {
        let a = Arp {
            op: ARP_REQUEST,
            sha: [2, 0, 0, 0, 0, 1],
            spa: Ipv4Addr::new(10, 0, 0, 1),
            tha: [0; 6],
            tpa: Ipv4Addr::new(10, 0, 0, 2),
        };
        let mut b = [0u8; ARP_LEN];
        write_arp(&mut b, &a);
        assert_eq!(parse_arp(&b), Some(a));
        assert_eq!(parse_arp(&b[..27]), None);
        b[7] = 9;
        assert_eq!(parse_arp(&b), None);
    }

    #[test]
    fn eth_short_frame_is_none() {
        assert_eq!(parse_eth(&[0u8; 13]), None);
        let mut f = [0u8; 14];
        write_eth(&mut f, BROADCAST, [1; 6], ETHERTYPE_ARP);
        assert_eq!(parse_eth(&f).unwrap().ethertype, ETHERTYPE_ARP);
    }
}
