//! Engines that share one port, one per queue pair (see [`engine_group`]).
//!
//! Each engine of a group is shared-nothing: its own connections, timers,
//! buffers, ring and thread. What the group gives each one is
//!
//! - its queue index and the number of queues, so an active open picks a
//!   source port whose flow hashes ([`ringline_dataplane::rss`]) back to the
//!   opening engine's queue (the replies come back to it), and
//! - the neighbours its siblings learn. A NIC hashes TCP only; ARP (and so
//!   every ARP reply) arrives on queue 0, and a neighbour first heard from on
//!   one queue is unknown to the others. So an engine that learns a
//!   neighbour from the wire hands the entry to each sibling through a
//!   single-producer, single-consumer queue (one per ordered pair of
//!   engines, [`rtrb`]); each engine takes what its siblings sent at the
//!   start of a step (one index load per sibling) and wakes its connections
//!   waiting for that neighbour. Learning is rare (once per neighbour and
//!   change), so this is replication, not a shared table: the per-packet
//!   lookup stays in the engine's own map, with no lock and no shared cache
//!   line. A full queue drops the entry (the sibling asks ARP itself).

use std::net::Ipv4Addr;

use ringline_dataplane::MacAddr;
use rtrb::{Consumer, Producer, RingBuffer};

/// Entries in flight from one engine to a sibling before more are dropped.
const SHARE_QUEUE: usize = 256;

/// One engine's place in a group: give it to [`crate::open_in_group`].
pub struct GroupMember {
    pub(crate) queue: u16,
    pub(crate) queues: u16,
    pub(crate) share: NeighborShare,
}

impl GroupMember {
    /// This engine's queue index and the group's size.
    pub fn queue(&self) -> (u16, u16) {
        (self.queue, self.queues)
    }
}

impl std::fmt::Debug for GroupMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupMember")
            .field("queue", &self.queue)
            .field("queues", &self.queues)
            .finish_non_exhaustive()
    }
}

/// The members of a group of `queues` engines, member `i` for queue `i`
/// (1 to [`ringline_dataplane::rss::MAX_QUEUES`]; panics otherwise).
pub fn engine_group(queues: u16) -> Vec<GroupMember> {
    assert!(
        (1..=ringline_dataplane::rss::MAX_QUEUES).contains(&queues),
        "an engine group has 1 to {} engines",
        ringline_dataplane::rss::MAX_QUEUES
    );
    let n = usize::from(queues);
    let mut outs: Vec<Vec<Producer<Shared>>> = (0..n).map(|_| Vec::with_capacity(n - 1)).collect();
    let mut ins: Vec<Vec<Consumer<Shared>>> = (0..n).map(|_| Vec::with_capacity(n - 1)).collect();
    for (from, outs) in outs.iter_mut().enumerate() {
        for (to, ins) in ins.iter_mut().enumerate() {
            if from != to {
                let (p, c) = RingBuffer::new(SHARE_QUEUE);
                outs.push(p);
                ins.push(c);
            }
        }
    }
    outs.into_iter()
        .zip(ins)
        .enumerate()
        .map(|(i, (outs, ins))| GroupMember {
            queue: i as u16,
            queues,
            share: NeighborShare { outs, ins },
        })
        .collect()
}

/// A neighbour learned by a sibling: the address as a `u32` and its MAC.
type Shared = (u32, MacAddr);

/// An engine's ends of the group's neighbour queues.
#[derive(Default)]
pub(crate) struct NeighborShare {
    /// To each sibling.
    outs: Vec<Producer<Shared>>,
    /// From each sibling.
    ins: Vec<Consumer<Shared>>,
}

impl NeighborShare {
    /// Hands a neighbour learned from the wire to every sibling (dropped for
    /// a sibling whose queue is full). Returns how many took it.
    pub(crate) fn publish(&mut self, ip: Ipv4Addr, mac: MacAddr) -> usize {
        let mut took = 0;
        for p in &mut self.outs {
            took += usize::from(p.push((u32::from(ip), mac)).is_ok());
        }
        took
    }

    /// Whether a sibling has sent something (one index load per sibling).
    #[inline]
    pub(crate) fn pending(&self) -> bool {
        self.ins.iter().any(|c| !c.is_empty())
    }

    /// The next entry a sibling sent, if any.
    pub(crate) fn take(&mut self) -> Option<(Ipv4Addr, MacAddr)> {
        self.ins
            .iter_mut()
            .find_map(|c| c.pop().ok())
            .map(|(ip, mac)| (Ipv4Addr::from(ip), mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reaches_every_sibling_once() {
        let mut g = engine_group(3);
        let ip = Ipv4Addr::new(10, 0, 0, 9);
        assert!(!g[1].share.pending());
        assert_eq!(g[0].share.publish(ip, [9; 6]), 2);
        assert!(!g[0].share.pending(), "not to itself");
        for m in &mut g[1..] {
            assert!(m.share.pending());
            assert_eq!(m.share.take(), Some((ip, [9; 6])));
            assert_eq!(m.share.take(), None);
        }
        // A full queue drops, never blocks.
        for _ in 0..SHARE_QUEUE {
            g[2].share.publish(ip, [1; 6]);
        }
        assert_eq!(g[2].share.publish(ip, [1; 6]), 0);
        assert_eq!(
            g.iter().map(|m| m.queue()).collect::<Vec<_>>(),
            [(0, 3), (1, 3), (2, 3)]
        );
    }
}
