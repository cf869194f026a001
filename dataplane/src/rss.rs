//! Receive-side scaling: which queue (and so which engine) a frame belongs
//! to. One function, [`dispatch`], shared by the multi-queue loopback wire
//! and by DPDK ports whose device cannot hash, so a flow lands on the same
//! queue index whatever carries it.
//!
//! The hash is Toeplitz (the one NICs compute, Microsoft's RSS
//! specification) over the IPv4 source and destination addresses and the
//! TCP source and destination ports, with [`SYMMETRIC_KEY`]: the 16-bit
//! pattern `0x6d5a` repeated. With that key, swapping source and destination
//! (address with address, port with port) gives the same hash, so both
//! directions of a connection land on the same queue index (Woo and Park,
//! "Scalable TCP Session Monitoring with Symmetric Receive-side Scaling").
//! The queue is picked as a NIC's redirection table does with its default
//! fill: entry `hash mod RETA_SIZE` of a table holding `0, 1, .., n-1, 0, ..`,
//! which is `(hash mod RETA_SIZE) mod n`.
//!
//! Frames that are not unfragmented IPv4/TCP (ARP above all) go to queue 0,
//! as on a NIC whose RSS hashes TCP only: the engine of queue 0 answers ARP
//! and shares what it learns with the others.

/// The symmetric Toeplitz key: `0x6d5a` repeated over the 40 bytes NICs use.
pub const SYMMETRIC_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// Entries of the redirection table the queue is picked from (what most
/// NICs have, and what the DPDK port programs when it spreads queues).
pub const RETA_SIZE: usize = 128;

/// Most queue pairs a port (or the loopback wire) spreads flows over.
pub const MAX_QUEUES: u16 = 64;

/// The Toeplitz hash of `input` under `key` (`key` must be at least 4 bytes
/// longer than `input`).
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    debug_assert!(key.len() >= input.len() + 4);
    let mut hash = 0u32;
    // The 32-bit window of the key that starts at the current input bit.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, &byte) in input.iter().enumerate() {
        let next = key.get(i + 4).copied().unwrap_or(0);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    hash
}

/// [`toeplitz`] under [`SYMMETRIC_KEY`] for 12-byte inputs, as a table:
/// entry `[i][b]` is what byte value `b` at input position `i` XORs into the
/// hash, so a hash is 12 lookups instead of 96 conditional XORs. Built at
/// compile time (12 KiB).
static SYMMETRIC_TABLE: [[u32; 256]; 12] = {
    let mut t = [[0u32; 256]; 12];
    let mut i = 0;
    while i < 12 {
        let mut b = 0;
        while b < 256 {
            let mut h = 0u32;
            let mut bit = 0;
            while bit < 8 {
                if b & (0x80 >> bit) != 0 {
                    // The key's 32-bit window starting at input bit 8i + bit.
                    let start = i * 8 + bit;
                    let mut w = 0u32;
                    let mut k = 0;
                    while k < 32 {
                        let kb = start + k;
                        let v = (SYMMETRIC_KEY[kb / 8] >> (7 - kb % 8)) & 1;
                        w = (w << 1) | v as u32;
                        k += 1;
                    }
                    h ^= w;
                }
                bit += 1;
            }
            t[i][b] = h;
            b += 1;
        }
        i += 1;
    }
    t
};

/// The RSS hash of an IPv4/TCP flow as the receiver sees it (source first),
/// with [`SYMMETRIC_KEY`]: `flow_hash(a, b, pa, pb) == flow_hash(b, a, pb, pa)`.
#[inline]
pub fn flow_hash(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> u32 {
    let [s0, s1] = sport.to_be_bytes();
    let [d0, d1] = dport.to_be_bytes();
    let input = [
        src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3], s0, s1, d0, d1,
    ];
    let mut h = 0;
    for (row, &b) in SYMMETRIC_TABLE.iter().zip(&input) {
        h ^= row[usize::from(b)];
    }
    h
}

/// The queue, of `queues`, a hash selects through the default redirection
/// table. `queues` of 0 or 1 is queue 0.
#[inline]
pub fn queue_of_hash(hash: u32, queues: u16) -> u16 {
    if queues <= 1 {
        return 0;
    }
    ((hash as usize % RETA_SIZE) % usize::from(queues)) as u16
}

/// The queue, of `queues`, of the flow `src:sport -> dst:dport` (either
/// direction gives the same queue).
#[inline]
pub fn queue_of_flow(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, queues: u16) -> u16 {
    if queues <= 1 {
        return 0;
    }
    queue_of_hash(flow_hash(src, dst, sport, dport), queues)
}

/// The queue, of `queues`, an Ethernet frame belongs to: its flow's queue if
/// it is an unfragmented IPv4/TCP segment, else queue 0. Reads only the
/// headers; a short or malformed frame goes to queue 0 (where the engine
/// counts and drops it).
pub fn dispatch(frame: &[u8], queues: u16) -> u16 {
    if queues <= 1 {
        return 0;
    }
    const ETH: usize = 14;
    if frame.len() < ETH + 20 || frame[12..14] != [0x08, 0x00] {
        return 0;
    }
    let ip = &frame[ETH..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    // Version 4, protocol TCP, no fragment (MF clear, offset 0), ports present.
    if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != 6 || ip[6] & 0x3f != 0 || ip[7] != 0 {
        return 0;
    }
    let Some(ports) = ip.get(ihl..ihl + 4) else {
        return 0;
    };
    let src = [ip[12], ip[13], ip[14], ip[15]];
    let dst = [ip[16], ip[17], ip[18], ip[19]];
    let sport = u16::from_be_bytes([ports[0], ports[1]]);
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    queue_of_flow(src, dst, sport, dport, queues)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microsoft's RSS verification key and its published IPv4/TCP
    /// results (the "Verifying the RSS Hash Calculation" table).
    const MS_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    fn ms(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> u32 {
        let mut input = Vec::new();
        input.extend_from_slice(&src);
        input.extend_from_slice(&dst);
        input.extend_from_slice(&sport.to_be_bytes());
        input.extend_from_slice(&dport.to_be_bytes());
        toeplitz(&MS_KEY, &input)
    }

    #[test]
    fn toeplitz_matches_the_published_vectors() {
        assert_eq!(
            ms([66, 9, 149, 187], [161, 142, 100, 80], 2794, 1766),
            0x51cc_c178
        );
        assert_eq!(
            ms([199, 92, 111, 2], [65, 69, 140, 83], 14230, 4739),
            0xc626_b0ea
        );
        assert_eq!(
            ms([24, 19, 198, 95], [12, 22, 207, 184], 12898, 38024),
            0x5c2b_394a
        );
        // The IPv4-only row (addresses alone).
        let mut two = Vec::new();
        two.extend_from_slice(&[66, 9, 149, 187]);
        two.extend_from_slice(&[161, 142, 100, 80]);
        assert_eq!(toeplitz(&MS_KEY, &two), 0x323e_8fc2);
    }

    #[test]
    fn the_table_is_the_bitwise_hash() {
        let mut x = 0x9e37_79b9u32;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let (a, b) = (x.to_be_bytes(), x.rotate_left(11).to_be_bytes());
            let (pa, pb) = (x as u16, (x >> 16) as u16);
            let mut input = Vec::new();
            input.extend_from_slice(&a);
            input.extend_from_slice(&b);
            input.extend_from_slice(&pa.to_be_bytes());
            input.extend_from_slice(&pb.to_be_bytes());
            assert_eq!(flow_hash(a, b, pa, pb), toeplitz(&SYMMETRIC_KEY, &input));
        }
    }

    #[test]
    fn the_symmetric_key_hashes_both_directions_alike() {
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            // xorshift: many different tuples.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let a = x.to_be_bytes();
            let b = x.rotate_left(7).to_be_bytes();
            let (pa, pb) = (x as u16, (x >> 16) as u16);
            assert_eq!(flow_hash(a, b, pa, pb), flow_hash(b, a, pb, pa));
            for n in 1..=8 {
                assert_eq!(
                    queue_of_flow(a, b, pa, pb, n),
                    queue_of_flow(b, a, pb, pa, n)
                );
            }
        }
    }

    #[test]
    fn ports_spread_over_the_queues() {
        let (a, b) = ([10, 0, 0, 2], [10, 0, 0, 1]);
        for n in [2u16, 3, 4] {
            let mut per = vec![0u32; usize::from(n)];
            for p in 32768..33768u16 {
                per[usize::from(queue_of_flow(a, b, p, 7, n))] += 1;
            }
            let fair = 1000 / u32::from(n);
            for &c in &per {
                assert!(c > fair / 2, "queues {n}: {per:?}");
            }
        }
    }

    fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn dispatch_reads_the_flow_and_sends_the_rest_to_queue_0() {
        let (a, b) = ([10, 0, 0, 2], [10, 0, 0, 1]);
        let mut seen = [false; 2];
        for p in 40000..40064u16 {
            let q = dispatch(&tcp_frame(a, b, p, 80), 2);
            assert_eq!(q, queue_of_flow(a, b, p, 80, 2));
            assert_eq!(q, dispatch(&tcp_frame(b, a, 80, p), 2), "reverse direction");
            seen[usize::from(q)] = true;
        }
        assert_eq!(seen, [true, true]);
        // ARP, a fragment, UDP, a short frame: queue 0.
        let mut arp = tcp_frame(a, b, 1, 2);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut frag = tcp_frame(a, b, 40001, 80);
        frag[14 + 6] = 0x20;
        let mut udp = tcp_frame(a, b, 40001, 80);
        udp[14 + 9] = 17;
        for f in [arp, frag, udp, vec![0u8; 20]] {
            assert_eq!(dispatch(&f, 4), 0);
        }
        // One queue: always 0.
        assert_eq!(dispatch(&tcp_frame(a, b, 40001, 80), 1), 0);
    }
}
