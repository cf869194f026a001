//! The hasher of the engine's integer-keyed maps (4-tuples, ports,
//! neighbours): a multiply-and-rotate accumulator plus the splitmix64
//! finaliser in `finish`. The finaliser matters: hashbrown picks the bucket
//! from the hash's LOW bits, and a bare multiply leaves those depending only
//! on the key's low bits -- the local port, the same for every connection to
//! a listener -- which put every connection of a server on one probe
//! sequence (an O(N) demux).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// See the module docs.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(v as u64)
    }
}

/// A `HashMap` with [`FxHasher`].
pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::conns::tuple_key;
    use std::hash::BuildHasher;
    use std::net::Ipv4Addr;

    /// Connections to one listener differ only in remote address and port:
    /// their hashes must still spread over the low bits hashbrown indexes by.
    #[test]
    fn tuple_hash_spreads_low_bits_for_one_local_port() {
        let b = BuildHasherDefault::<FxHasher>::default();
        let mask = (1u64 << 17) - 1; // a 128k-bucket table
        let mut seen = std::collections::HashSet::new();
        let n = 100_000u32;
        for i in 0..n {
            let ip = Ipv4Addr::from(0x0a00_0002 + (i >> 15));
            let key = tuple_key(ip, 32768 + (i & 0x7fff) as u16, 7);
            seen.insert(b.hash_one(key) & mask);
        }
        // Random hashing fills ~1 - e^(-100k/131k) = 53% of the buckets.
        assert!(
            seen.len() > 60_000,
            "only {} distinct buckets for {n} keys",
            seen.len()
        );
    }
}
