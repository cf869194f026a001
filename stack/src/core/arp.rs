//! Neighbours: the IP-to-MAC table (static entries from the configuration,
//! the rest learned from ARP and from the source of IPv4 segments), the
//! rate limit on requests, and the connections waiting for an answer. Below
//! both demux (which learns) and egress (which asks).

use std::net::Ipv4Addr;

use ringline_dataplane::MacAddr;

use crate::fxhash::FxMap;
use crate::group::NeighborShare;
use crate::ids::ConnId;
use crate::l2::{self, Arp};

/// At most one request per neighbour per this many µs.
const ASK_INTERVAL_US: u64 = 100_000;

/// See the module docs.
#[derive(Default)]
pub(crate) struct Neighbors {
    // Looked up on every segment: the engine's integer hasher, not SipHash,
    // keyed by the address as one u32 (an `Ipv4Addr` hashes as a byte slice:
    // a length and four bytes, five rounds of the hasher instead of one).
    map: FxMap<u32, Entry>,
    /// When each unresolved IP was last asked for (µs), to rate-limit requests.
    asked: FxMap<u32, u64>,
    /// Connections whose egress waits for a neighbour.
    waiting: Vec<ConnId>,
    /// When learned entries were last swept for age.
    swept_us: u64,
    /// The sibling engines of a group ([`crate::group`]): what this engine
    /// learns from the wire goes to them, what they learn comes here.
    share: NeighborShare,
    /// Entries taken from siblings.
    pub(crate) shared_in: u64,
}

/// A neighbour's MAC and whether it came from the configuration (static
/// entries are never changed from the wire: one forged ARP reply must not
/// redirect traffic).
#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: MacAddr,
    fixed: bool,
    /// When the neighbour was last heard from (µs; refreshed at most once
    /// per [`REFRESH_US`]).
    seen_us: u64,
}

/// A learned neighbour not heard from for this long is forgotten at the
/// next sweep (Linux's `gc_stale_time`); the next packet to it asks again.
const MAX_AGE_US: u64 = 60_000_000;
/// Entries are refreshed at most this often (a store per second, not per
/// packet).
const REFRESH_US: u64 = 1_000_000;
/// At most this many addresses are remembered as asked for; past it, the
/// ones whose rate limit has run out are dropped.
const MAX_ASKED: usize = 4096;

/// At most this many learned neighbours; past it, nothing new is learned
/// from the wire (static entries do not count). A subnet of this engine's
/// size rarely has more hosts talking to it at once; the cap keeps a flood
/// of forged sources from growing the table without bound.
const MAX_LEARNED: usize = 65_536;

/// What an ARP packet calls for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ArpOutcome {
    /// A neighbour was learned: the waiting connections can send (mark them
    /// dirty; the list is lent, give it back with [`Neighbors::done_waking`]).
    pub(crate) wake: Vec<ConnId>,
    /// A reply to send (to the requester's MAC).
    pub(crate) reply: Option<(MacAddr, Arp)>,
}

impl Neighbors {
    /// A table with the configured static entries.
    pub(crate) fn new(statics: &[(Ipv4Addr, MacAddr)]) -> Self {
        let mut n = Neighbors::default();
        for (ip, mac) in statics {
            n.map.insert(
                u32::from(*ip),
                Entry {
                    mac: *mac,
                    fixed: true,
                    seen_us: 0,
                },
            );
        }
        n
    }

    /// Looks up a neighbour.
    #[inline]
    pub(crate) fn lookup(&self, ip: Ipv4Addr) -> Option<MacAddr> {
        self.map.get(&u32::from(ip)).map(|e| e.mac)
    }

    /// Learns (or refreshes) a neighbour from the wire at `now_us`. Returns
    /// true when it was new or changed. A static entry is never changed;
    /// past `MAX_LEARNED` entries, learned ones not heard from for
    /// `MAX_AGE_US` are forgotten first (at most one sweep a second), and if
    /// none is, nothing new is learned.
    /// What it learns goes to the sibling engines of its group, if any.
    pub(crate) fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr, now_us: u64) -> bool {
        let learned = self.insert(ip, mac, now_us);
        if learned {
            self.share.publish(ip, mac);
        }
        learned
    }

    /// Joins a group: from now on entries learned from the wire go to the
    /// siblings, and theirs come here ([`Neighbors::take_shared`]).
    pub(crate) fn join(&mut self, share: NeighborShare) {
        self.share = share;
    }

    /// Leaves the group: hands back the queues [`Neighbors::join`] took.
    pub(crate) fn leave(&mut self) -> NeighborShare {
        std::mem::take(&mut self.share)
    }

    /// Whether a sibling has sent entries ([`Neighbors::take_shared`]).
    #[inline]
    pub(crate) fn shared_pending(&self) -> bool {
        self.share.pending()
    }

    /// Takes the entries siblings learned (not sent back out). Returns
    /// whether connections wait to be woken ([`Neighbors::take_waiting`]).
    pub(crate) fn take_shared(&mut self, now_us: u64) -> bool {
        let mut learned = false;
        while let Some((ip, mac)) = self.share.take() {
            self.shared_in += 1;
            learned |= self.insert(ip, mac, now_us);
        }
        learned && !self.waiting.is_empty()
    }

    /// `learn` without telling the siblings.
    fn insert(&mut self, ip: Ipv4Addr, mac: MacAddr, now_us: u64) -> bool {
        let key = u32::from(ip);
        if !self.map.contains_key(&key)
            && (self.map.len() >= MAX_LEARNED || now_us.saturating_sub(self.swept_us) >= MAX_AGE_US)
        {
            self.sweep(now_us);
        }
        let full = self.map.len() >= MAX_LEARNED;
        let learned = match self.map.get_mut(&key) {
            Some(e) if e.fixed => return false,
            Some(e) => {
                e.seen_us = now_us;
                std::mem::replace(&mut e.mac, mac) != mac
            }
            None if full => return false,
            None => {
                let e = Entry {
                    mac,
                    fixed: false,
                    seen_us: now_us,
                };
                self.map.insert(key, e);
                true
            }
        };
        self.asked.remove(&key);
        learned
    }

    /// Forgets learned entries not heard from for `MAX_AGE_US` (at most once
    /// a second: a scan of the table, on a learn only).
    fn sweep(&mut self, now_us: u64) {
        if now_us.saturating_sub(self.swept_us) < REFRESH_US && self.swept_us != 0 {
            return;
        }
        self.swept_us = now_us;
        self.map
            .retain(|_, e| e.fixed || now_us.saturating_sub(e.seen_us) < MAX_AGE_US);
    }

    /// Whether a request for `ip` may go out now (rate-limited).
    pub(crate) fn should_ask(&mut self, ip: Ipv4Addr, now_us: u64) -> bool {
        let key = u32::from(ip);
        if self.asked.len() >= MAX_ASKED {
            self.asked
                .retain(|_, t| now_us.saturating_sub(*t) < ASK_INTERVAL_US);
        }
        match self.asked.get(&key) {
            Some(&t) if now_us.saturating_sub(t) < ASK_INTERVAL_US => false,
            _ => {
                self.asked.insert(key, now_us);
                true
            }
        }
    }

    /// `cid` waits for a neighbour.
    pub(crate) fn wait(&mut self, cid: ConnId) {
        if !self.waiting.contains(&cid) {
            self.waiting.push(cid);
        }
    }

    /// Takes in an ARP packet for host `ip`/`mac`; `on_link` says whether
    /// the sender's address is on our subnet (only those are learned).
    pub(crate) fn on_arp(
        &mut self,
        arp: &Arp,
        ip: Ipv4Addr,
        mac: MacAddr,
        on_link: bool,
        now_us: u64,
    ) -> ArpOutcome {
        let mut out = ArpOutcome::default();
        if on_link && !arp.spa.is_unspecified() {
            let learned = self.insert(arp.spa, arp.sha, now_us);
            // Every ARP packet heard goes to the siblings, changed or not: ARP
            // arrives on queue 0 only, so a sibling whose own entry aged out
            // (or never existed) and that asked again gets its answer only
            // this way. ARP is rare; segments (`learn_from_ip`) share only
            // what is new.
            if self.lookup(arp.spa) == Some(arp.sha) {
                self.share.publish(arp.spa, arp.sha);
            }
            if learned {
                out.wake = self.take_waiting();
            }
        }
        if arp.op == l2::ARP_REQUEST && arp.tpa == ip {
            let reply = Arp {
                op: l2::ARP_REPLY,
                sha: mac,
                spa: ip,
                tha: arp.sha,
                tpa: arp.spa,
            };
            out.reply = Some((arp.sha, reply));
        }
        out
    }

    /// Learns `ip` from the source of a received IPv4 frame if it is not
    /// known yet, or refreshes its age (a known MAC is not changed: ARP
    /// does that). Returns whether connections wait to be woken
    /// ([`Neighbors::take_waiting`]).
    #[inline]
    pub(crate) fn learn_from_ip(&mut self, ip: Ipv4Addr, mac: MacAddr, now_us: u64) -> bool {
        match self.map.get_mut(&u32::from(ip)) {
            Some(e) => {
                if now_us.saturating_sub(e.seen_us) >= REFRESH_US {
                    e.seen_us = now_us;
                }
                false
            }
            None => self.learn(ip, mac, now_us) && !self.waiting.is_empty(),
        }
    }

    /// The connections waiting for a neighbour (lent: give the list back
    /// with [`Neighbors::done_waking`]).
    pub(crate) fn take_waiting(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.waiting)
    }

    /// Gives back the list [`ArpOutcome::wake`] lent (its memory is kept).
    pub(crate) fn done_waking(&mut self, mut list: Vec<ConnId>) {
        list.clear();
        if self.waiting.is_empty() && list.capacity() > self.waiting.capacity() {
            self.waiting = list;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn request(from: Ipv4Addr, to: Ipv4Addr) -> Arp {
        Arp {
            op: l2::ARP_REQUEST,
            sha: [2, 0, 0, 0, 0, 2],
            spa: from,
            tha: [0; 6],
            tpa: to,
        }
    }

    #[test]
    fn a_request_for_us_is_answered_and_learned() {
        let mut n = Neighbors::default();
        let cid = ConnId::from_index(4);
        n.wait(cid);
        n.wait(cid);
        let out = n.on_arp(&request(PEER, ME), ME, [2; 6], true, 0);
        assert_eq!(out.wake, vec![cid], "waiters woken once");
        let (to, reply) = out.reply.expect("answered");
        assert_eq!(to, [2, 0, 0, 0, 0, 2]);
        assert_eq!((reply.op, reply.spa, reply.tpa), (l2::ARP_REPLY, ME, PEER));
        assert_eq!(n.lookup(PEER), Some([2, 0, 0, 0, 0, 2]));
        n.done_waking(out.wake);
    }

    #[test]
    fn off_link_and_foreign_requests_teach_and_answer_nothing() {
        let mut n = Neighbors::default();
        let out = n.on_arp(
            &request(PEER, Ipv4Addr::new(10, 0, 0, 9)),
            ME,
            [2; 6],
            false,
            0,
        );
        assert_eq!(out, ArpOutcome::default());
        assert_eq!(n.lookup(PEER), None);
    }

    #[test]
    fn learning_from_a_segment_wakes_the_waiters_once() {
        let mut n = Neighbors::default();
        let cid = ConnId::from_index(1);
        n.wait(cid);
        assert!(n.learn_from_ip(PEER, [5; 6], 0));
        let w = n.take_waiting();
        assert_eq!(w, vec![cid]);
        n.done_waking(w);
        assert_eq!(n.lookup(PEER), Some([5; 6]));
        n.wait(cid);
        assert!(!n.learn_from_ip(PEER, [6; 6], 0), "known: not relearned");
        assert_eq!(n.lookup(PEER), Some([5; 6]));
    }

    #[test]
    fn a_static_neighbour_is_never_overwritten_from_the_wire() {
        let mut n = Neighbors::new(&[(PEER, [7; 6])]);
        // A forged reply for the peer's address.
        let forged = Arp {
            op: l2::ARP_REPLY,
            sha: [0xee; 6],
            spa: PEER,
            tha: [2; 6],
            tpa: ME,
        };
        let out = n.on_arp(&forged, ME, [2; 6], true, 0);
        assert!(out.wake.is_empty() && out.reply.is_none());
        assert!(!n.learn_from_ip(PEER, [0xee; 6], 0));
        assert_eq!(n.lookup(PEER), Some([7; 6]), "still the configured MAC");
        // A learned one does follow the wire.
        let other = Ipv4Addr::new(10, 0, 0, 3);
        assert!(n.learn(other, [1; 6], 0));
        assert!(n.learn(other, [3; 6], 0));
        assert_eq!(n.lookup(other), Some([3; 6]));
    }

    #[test]
    fn requests_are_rate_limited_until_learned() {
        let mut n = Neighbors::default();
        assert!(n.should_ask(PEER, 0));
        assert!(!n.should_ask(PEER, 50_000));
        assert!(n.should_ask(PEER, 100_000));
        n.learn(PEER, [1; 6], 0);
        assert!(n.should_ask(PEER, 100_001), "learning clears the limit");
    }

    #[test]
    fn learned_neighbours_age_and_a_full_table_makes_room() {
        let mut n = Neighbors::new(&[(PEER, [7; 6])]);
        let ip = |i: u32| Ipv4Addr::from(0x0a00_0000 + 10 + i);
        // A flood of sources fills the table.
        for i in 0..MAX_LEARNED as u32 {
            n.learn(ip(i), [1; 6], 1_000);
        }
        let fresh = Ipv4Addr::new(10, 9, 9, 9);
        assert!(!n.learn(fresh, [9; 6], 2_000), "full: nothing new");
        // One of them keeps talking (refreshed by its segments).
        n.learn_from_ip(ip(5), [1; 6], 30_000_000);
        // A minute later the silent ones are forgotten: there is room.
        assert!(n.learn(fresh, [9; 6], 61_000_000));
        assert_eq!(n.lookup(fresh), Some([9; 6]));
        assert_eq!(n.lookup(ip(5)), Some([1; 6]), "refreshed: kept");
        assert_eq!(n.lookup(ip(6)), None, "aged out");
        assert_eq!(n.lookup(PEER), Some([7; 6]), "static entries never age");
        // The asked-for list is bounded too.
        for i in 0..3 * MAX_ASKED as u32 {
            n.should_ask(
                Ipv4Addr::from(0x0b00_0000 + i),
                100_000_000 + u64::from(i) * 1_000,
            );
        }
        assert!(n.asked.len() <= MAX_ASKED + 1);
    }

    #[test]
    fn a_group_shares_what_the_wire_teaches_and_wakes_the_waiters() {
        let mut g = crate::group::engine_group(2).into_iter();
        let (m0, m1) = (g.next().unwrap(), g.next().unwrap());
        let (mut n0, mut n1) = (Neighbors::default(), Neighbors::default());
        n0.join(m0.share);
        n1.join(m1.share);
        let cid = ConnId::from_index(3);
        n1.wait(cid);
        assert!(!n1.shared_pending());
        // Engine 0 hears the reply to engine 1's request.
        let reply = Arp {
            op: l2::ARP_REPLY,
            sha: [4; 6],
            spa: PEER,
            tha: [2; 6],
            tpa: ME,
        };
        n0.on_arp(&reply, ME, [2; 6], true, 0);
        assert!(n1.shared_pending());
        assert!(n1.take_shared(0), "a waiter to wake");
        assert_eq!(n1.lookup(PEER), Some([4; 6]));
        assert_eq!(n1.take_waiting(), vec![cid]);
        assert_eq!(n1.shared_in, 1);
        // Not echoed back: engine 0 gets nothing; a segment from a known
        // neighbour shares nothing.
        assert!(!n0.shared_pending());
        n0.learn_from_ip(PEER, [4; 6], 10);
        assert!(!n1.shared_pending());
        // Engine 1's entry ages out while engine 0 keeps it fresh; engine 1
        // asks again, and the (unchanged) reply, heard by engine 0, still
        // reaches it.
        let later = MAX_AGE_US + 2 * REFRESH_US;
        n0.learn_from_ip(PEER, [4; 6], later - REFRESH_US);
        n1.sweep(later);
        assert_eq!(n1.lookup(PEER), None, "aged out on engine 1");
        n1.wait(cid);
        n0.on_arp(&reply, ME, [2; 6], true, later);
        assert!(n1.take_shared(later), "woken again");
        assert_eq!(n1.lookup(PEER), Some([4; 6]));
    }
}
