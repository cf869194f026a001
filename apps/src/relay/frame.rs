//! The little the relay reads of a frame: is it ARP, where do its IPv4
//! bytes end (corruption stays inside what checksums cover), and filling in
//! a TCP or UDP checksum the sender left to offload.

const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// True for an ARP frame.
pub fn is_arp(f: &[u8]) -> bool {
    f.len() >= ETH_HLEN && f[12..14] == ETHERTYPE_ARP
}

/// The IPv4 packet inside `f` (header and payload, without Ethernet padding)
/// as `(header length, total length)`, if `f` holds a plausible one.
fn ipv4(f: &[u8]) -> Option<(usize, usize)> {
    if f.len() < ETH_HLEN + 20 || f[12..14] != ETHERTYPE_IPV4 || f[ETH_HLEN] >> 4 != 4 {
        return None;
    }
    let ip = &f[ETH_HLEN..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    (ihl >= 20 && total >= ihl && total <= ip.len()).then_some((ihl, total))
}

/// Inverts one byte of `f` after the Ethernet header, chosen by `r`; inside
/// the IPv4 packet when there is one (not in padding no checksum covers), so
/// the receiver's IPv4 or TCP checksum always catches it. False (nothing
/// changed) for a frame with nothing after its Ethernet header.
pub fn corrupt(f: &mut [u8], r: u64) -> bool {
    let end = match ipv4(f) {
        Some((_, total)) => ETH_HLEN + total,
        None => f.len(),
    };
    if end <= ETH_HLEN {
        return false;
    }
    let at = ETH_HLEN + (r % (end - ETH_HLEN) as u64) as usize;
    // Inverting a byte changes its 16-bit word by a non-zero amount modulo
    // 0xffff, so a one's-complement checksum over it cannot stay the same.
    f[at] ^= 0xff;
    true
}

/// The one's-complement sum of `data` (big-endian words, odd byte padded).
fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Computes the TCP or UDP checksum of the IPv4 frame `f` in place. The
/// kernel hands the relay frames whose checksum the sender left to
/// offload (`TP_STATUS_CSUMNOTREADY`: veth passes them on unfinished);
/// forwarded as they are, every receiver would drop them. Returns false if
/// `f` is not IPv4 TCP or UDP (left unchanged).
pub fn fill_l4_checksum(f: &mut [u8]) -> bool {
    let Some((ihl, total)) = ipv4(f) else {
        return false;
    };
    let ip = &mut f[ETH_HLEN..ETH_HLEN + total];
    let proto = ip[9];
    let at = match proto {
        IPPROTO_TCP => 16,
        IPPROTO_UDP => 6,
        _ => return false,
    };
    let l4_len = total - ihl;
    if l4_len < at + 2 {
        return false;
    }
    ip[ihl + at..ihl + at + 2].fill(0);
    // Pseudo-header: source, destination, protocol, L4 length.
    let mut acc = sum(0, &ip[12..20]);
    acc += u32::from(proto) + l4_len as u32;
    acc = sum(acc, &ip[ihl..]);
    let mut c = !fold(acc);
    if proto == IPPROTO_UDP && c == 0 {
        c = 0xffff;
    }
    ip[ihl + at..ihl + at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4/TCP frame with 11 bytes of payload, 6 bytes of Ethernet
    /// padding, and a correct TCP checksum (computed independently, by
    /// summing the whole pseudo-header-prefixed segment to 0xffff).
    fn frame() -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + 11 + 6];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4);
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&51u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = IPPROTO_TCP;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        ip[20..22].copy_from_slice(&1234u16.to_be_bytes());
        ip[22..24].copy_from_slice(&7u16.to_be_bytes());
        ip[32] = 0x50;
        ip[33] = 0x18;
        ip[40..51].copy_from_slice(b"hello world");
        let c = !fold(sum(0, &ip[..20]));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f
    }

    fn ip_header_valid(f: &[u8]) -> bool {
        fold(sum(0, &f[14..34])) == 0xffff
    }

    fn tcp_valid(f: &[u8]) -> bool {
        let ip = &f[14..14 + 51];
        let mut acc = sum(0, &ip[12..20]);
        acc += 6 + 31;
        fold(sum(acc, &ip[20..])) == 0xffff
    }

    #[test]
    fn an_offloaded_checksum_is_filled_in() {
        let mut f = frame();
        assert!(ip_header_valid(&f));
        assert!(fill_l4_checksum(&mut f));
        assert!(tcp_valid(&f));
        // What a sender leaves for offload (a partial sum) is replaced.
        f[14 + 36] = 0x12;
        f[14 + 37] = 0x34;
        assert!(!tcp_valid(&f));
        assert!(fill_l4_checksum(&mut f));
        assert!(tcp_valid(&f));
    }

    #[test]
    fn corruption_stays_inside_the_packet_and_breaks_a_checksum() {
        for r in 0..200u64 {
            let mut f = frame();
            fill_l4_checksum(&mut f);
            let orig = f.clone();
            assert!(corrupt(&mut f, r));
            let diff: Vec<usize> = (0..f.len()).filter(|&i| f[i] != orig[i]).collect();
            assert_eq!(diff.len(), 1);
            assert!((14..14 + 51).contains(&diff[0]), "{diff:?}");
            // A flipped header byte fails the IPv4 header checksum; any
            // other fails the TCP one.
            if diff[0] < 34 {
                assert!(!ip_header_valid(&f), "r={r}");
            } else {
                assert!(ip_header_valid(&f) && !tcp_valid(&f), "r={r}");
            }
        }
        assert!(!corrupt(&mut [0u8; 14], 3));
    }

    #[test]
    fn arp_is_recognised() {
        let mut f = vec![0u8; 42];
        f[12..14].copy_from_slice(&ETHERTYPE_ARP);
        assert!(is_arp(&f));
        assert!(!is_arp(&frame()));
        assert!(!fill_l4_checksum(&mut f));
    }
}
