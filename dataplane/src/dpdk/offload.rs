//! Preparing frames for transmit checksum offload.
//!
//! With `RTE_MBUF_F_TX_IP_CKSUM` the NIC wants the IPv4 header checksum field
//! zeroed; with `RTE_MBUF_F_TX_TCP_CKSUM` it wants the TCP checksum field to
//! hold the (not complemented) checksum of the IPv4 pseudo-header, as DPDK's
//! `rte_ipv4_phdr_cksum` computes it. The NIC adds the segment and writes the
//! final value.

use ringline_dpdk_sys as sys;

/// Ethernet header length (no VLAN tag).
pub(crate) const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const IPPROTO_TCP: u8 = 6;
/// Offset of the checksum inside a TCP header.
const TCP_CHECKSUM_AT: usize = 16;
/// Offset of the checksum inside an IPv4 header.
const IP_CHECKSUM_AT: usize = 10;

/// What the port must be told about a prepared frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxOffload {
    /// `ol_flags` to set on the mbuf.
    pub ol_flags: u64,
    /// Ethernet header length.
    pub l2_len: u16,
    /// IPv4 header length.
    pub l3_len: u16,
}

/// Prepares `frame` for checksum offload and says what to request, or `None`
/// for frames the NIC has nothing to do for (not IPv4, or truncated). IPv4
/// frames get the header checksum offloaded; IPv4/TCP frames also the TCP one.
pub(crate) fn prepare_tx_checksum(frame: &mut [u8]) -> Option<TxOffload> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = frame.get_mut(ETH_HLEN..)?;
    let version_ihl = *ip.first()?;
    let ihl = usize::from(version_ihl & 0x0f) * 4;
    if version_ihl >> 4 != 4 || ihl < 20 || ip.len() < ihl {
        return None;
    }
    ip[IP_CHECKSUM_AT..IP_CHECKSUM_AT + 2].fill(0);
    let mut offload = TxOffload {
        ol_flags: sys::RTE_MBUF_F_TX_IPV4 | sys::RTE_MBUF_F_TX_IP_CKSUM,
        l2_len: ETH_HLEN as u16,
        l3_len: ihl as u16,
    };
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let fragmented = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    if ip[9] != IPPROTO_TCP || fragmented || total_len < ihl + 20 || total_len > ip.len() {
        return Some(offload);
    }
    let tcp_len = (total_len - ihl) as u16;
    let mut sum = 0u32;
    for pair in ip[12..20].chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    sum += u32::from(IPPROTO_TCP) + u32::from(tcp_len);
    let pseudo = fold(sum);
    ip[ihl + TCP_CHECKSUM_AT..ihl + TCP_CHECKSUM_AT + 2].copy_from_slice(&pseudo.to_be_bytes());
    offload.ol_flags |= sys::RTE_MBUF_F_TX_TCP_CKSUM;
    Some(offload)
}

/// Folds a 32-bit one's-complement sum to 16 bits.
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One's-complement sum of `data` as big-endian 16-bit words.
    fn sum(data: &[u8]) -> u32 {
        data.chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum()
    }

    /// A 14 + 20 + 20 + 5 byte IPv4/TCP frame with correct checksums.
    fn tcp_frame() -> Vec<u8> {
        let mut f = vec![0u8; 59];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&45u16.to_be_bytes());
        ip[6] = 0x40; // DF, not a fragment
        ip[8] = 64;
        ip[9] = IPPROTO_TCP;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let ip_ck = !fold(sum(&ip[..20]));
        ip[10..12].copy_from_slice(&ip_ck.to_be_bytes());
        let tcp = &mut ip[20..];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        tcp[20..25].copy_from_slice(b"hello");
        let pseudo = sum(&[10, 0, 0, 1, 10, 0, 0, 2]) + 6 + 25;
        let tcp_ck = !fold(pseudo + sum(tcp));
        tcp[16..18].copy_from_slice(&tcp_ck.to_be_bytes());
        f
    }

    #[test]
    fn tcp_gets_pseudo_header_and_zeroed_ip_checksum() {
        let good = tcp_frame();
        let mut f = good.clone();
        let off = prepare_tx_checksum(&mut f).expect("IPv4 frame");
        assert_eq!(
            off.ol_flags,
            sys::RTE_MBUF_F_TX_IPV4 | sys::RTE_MBUF_F_TX_IP_CKSUM | sys::RTE_MBUF_F_TX_TCP_CKSUM
        );
        assert_eq!((off.l2_len, off.l3_len), (14, 20));
        assert_eq!(&f[24..26], &[0, 0]);
        // What the NIC does: sum the TCP segment (pseudo-header sum in the
        // checksum field) and complement; it must give the original checksum.
        let nic = !fold(sum(&f[34..]));
        assert_eq!(nic.to_be_bytes(), [good[50], good[51]]);
        // And the IPv4 header checksum the NIC writes matches the original.
        let ip_nic = !fold(sum(&f[14..34]));
        assert_eq!(ip_nic.to_be_bytes(), [good[24], good[25]]);
    }

    #[test]
    fn non_ip_frames_are_left_alone() {
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let before = arp.clone();
        assert_eq!(prepare_tx_checksum(&mut arp), None);
        assert_eq!(arp, before);
        assert_eq!(prepare_tx_checksum(&mut [0u8; 5]), None);
    }

    #[test]
    fn ipv4_non_tcp_gets_only_the_header_checksum() {
        let mut f = tcp_frame();
        f[14 + 9] = 17; // UDP
        let off = prepare_tx_checksum(&mut f).expect("IPv4 frame");
        assert_eq!(
            off.ol_flags,
            sys::RTE_MBUF_F_TX_IPV4 | sys::RTE_MBUF_F_TX_IP_CKSUM
        );
        assert_eq!(&f[50..52], &tcp_frame()[50..52], "L4 bytes untouched");
    }
}
