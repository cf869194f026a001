//! SYN cookies: the stateless answer to a SYN when a listener's SYN queue
//! is full, so a flood of SYNs from addresses that never complete cannot
//! keep valid clients out (RFC 4987 §3.6, as Linux's `tcp_syncookies=1`).
//!
//! The SYN-ACK's initial sequence number carries the state: a 5-bit time
//! slot (64 s each), a 3-bit index into an MSS table, and 24 bits of a keyed
//! hash (std's SipHash with random keys) of the 4-tuple, the client's ISN
//! and the slot. An ACK whose `ack - 1` checks out, from the current or the
//! previous slot, completes the handshake with no state kept before it.
//! Like Linux without TCP timestamps, a cookie connection has no window
//! scaling and no SACK (the SYN's options are not kept): a 64 KiB window.
//!
//! smoltcp cannot be given an ISN, so the engine builds the socket by
//! feeding it the SYN the cookie stands for; smoltcp picks its own ISN, and
//! the connection keeps the difference (`Conn::seq_off`) by which the pump
//! translates our sequence numbers in every segment each way.

use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;

/// MSS values a cookie can say (the largest not above the client's is used).
const MSS_TABLE: [u16; 8] = [536, 1200, 1360, 1440, 1460, 4312, 8960, 65495];
/// Seconds per time slot.
const SLOT_S: u64 = 64;

/// See the module docs.
pub(crate) struct SynCookies {
    key: std::collections::hash_map::RandomState,
}

impl Default for SynCookies {
    fn default() -> Self {
        SynCookies {
            key: std::collections::hash_map::RandomState::new(),
        }
    }
}

fn slot(now_us: u64) -> u32 {
    ((now_us / 1_000_000 / SLOT_S) & 0x1f) as u32
}

impl SynCookies {
    fn hash(&self, src: Ipv4Addr, sport: u16, dport: u16, isn: u32, t: u32) -> u32 {
        let mut h = self.key.build_hasher();
        h.write_u32(u32::from(src));
        h.write_u16(sport);
        h.write_u16(dport);
        h.write_u32(isn);
        h.write_u32(t);
        (h.finish() & 0x00ff_ffff) as u32
    }

    /// The cookie ISN for a SYN from `src:sport` to our `dport` with ISN
    /// `isn` and MSS option `mss` (536 when absent).
    pub(crate) fn make(
        &self,
        src: Ipv4Addr,
        sport: u16,
        dport: u16,
        isn: u32,
        mss: u16,
        now_us: u64,
    ) -> u32 {
        let idx = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32;
        let t = slot(now_us);
        (t << 27) | (idx << 24) | self.hash(src, sport, dport, isn, t)
    }

    /// The MSS a returning ACK's cookie (`ack - 1`) stands for, if it is
    /// one of ours from the current or the previous time slot; `isn` is the
    /// client's ISN (`seq - 1`).
    pub(crate) fn check(
        &self,
        src: Ipv4Addr,
        sport: u16,
        dport: u16,
        isn: u32,
        cookie: u32,
        now_us: u64,
    ) -> Option<u16> {
        let t = cookie >> 27;
        let now = slot(now_us);
        if t != now && t != (now + 31) & 0x1f {
            return None;
        }
        if cookie & 0x00ff_ffff != self.hash(src, sport, dport, isn, t) {
            return None;
        }
        Some(MSS_TABLE[((cookie >> 24) & 7) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_checks_out_for_two_slots_and_only_for_its_tuple() {
        let c = SynCookies::default();
        let ip = Ipv4Addr::new(10, 0, 0, 9);
        let now = 1_000 * 1_000_000;
        let k = c.make(ip, 4000, 80, 12345, 1460, now);
        assert_eq!(c.check(ip, 4000, 80, 12345, k, now), Some(1460));
        assert_eq!(
            c.check(ip, 4000, 80, 12345, k, now + 64_000_000),
            Some(1460)
        );
        assert_eq!(c.check(ip, 4000, 80, 12345, k, now + 128_000_000), None);
        assert_eq!(c.check(ip, 4001, 80, 12345, k, now), None);
        assert_eq!(c.check(ip, 4000, 81, 12345, k, now), None);
        assert_eq!(c.check(ip, 4000, 80, 12346, k, now), None);
        assert_eq!(
            c.check(Ipv4Addr::new(10, 0, 0, 8), 4000, 80, 12345, k, now),
            None
        );
        assert_eq!(c.check(ip, 4000, 80, 12345, k ^ 1, now), None);
        // The MSS rounds down to the table.
        let k = c.make(ip, 4000, 80, 1, 1400, now);
        assert_eq!(c.check(ip, 4000, 80, 1, k, now), Some(1360));
        let k = c.make(ip, 4000, 80, 1, 100, now);
        assert_eq!(c.check(ip, 4000, 80, 1, k, now), Some(536));
        // Another engine's key does not accept it.
        assert_eq!(SynCookies::default().check(ip, 4000, 80, 1, k, now), None);
    }
}
