//! A hashed timer wheel over connections: O(1) arm, re-arm and cancel,
//! O(expired + slot occupancy) per tick. One timer per connection, fed from
//! smoltcp's per-socket `poll_at`.

use crate::ids::ConnId;

/// Wheel geometry: 4096 slots of 1 ms cover 4.096 s in one revolution (the TCP RTO
/// floor is 1 s, delayed ACK 10 ms); longer deadlines (TIME-WAIT, keep-alive)
/// stay in their slot until a later revolution reaches them.
const SLOTS: usize = 4096;
const TICK_US: u64 = 1000;

/// A connection's place in its slot's list.
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    prev: Option<ConnId>,
    next: Option<ConnId>,
    /// Deadline in ticks; `None` when not armed.
    at: Option<u64>,
}

/// The wheel. The node table is indexed by connection slot and grows with it.
pub(crate) struct TimerWheel {
    slots: Vec<Option<ConnId>>,
    nodes: Vec<Node>,
    /// Next tick to examine.
    cur: u64,
}

impl TimerWheel {
    /// An empty wheel starting at `now_us`.
    pub fn new(now_us: u64) -> Self {
        TimerWheel {
            slots: vec![None; SLOTS],
            nodes: Vec::new(),
            cur: now_us / TICK_US,
        }
    }

    #[inline]
    fn node(&mut self, id: ConnId) -> &mut Node {
        &mut self.nodes[id.index()]
    }

    /// Arms (or re-arms) `id` for `at_us`, rounded up to the next tick so a
    /// timer never fires before smoltcp's deadline.
    pub fn arm(&mut self, id: ConnId, at_us: u64) {
        if self.nodes.len() <= id.index() {
            self.nodes.resize(id.index() + 1, Node::default());
        }
        let at = at_us.div_ceil(TICK_US).max(self.cur);
        if self.node(id).at == Some(at) {
            return;
        }
        self.cancel(id);
        let slot = (at as usize) & (SLOTS - 1);
        let head = self.slots[slot];
        *self.node(id) = Node {
            prev: None,
            next: head,
            at: Some(at),
        };
        if let Some(h) = head {
            self.node(h).prev = Some(id);
        }
        self.slots[slot] = Some(id);
    }

    /// Makes sure `id` fires no later than `at_us`: armed as [`arm`] would
    /// when it is not armed or armed later, left alone when armed earlier.
    /// For a caller that re-checks whenever its timer fires (and re-arms
    /// for the real deadline then): a deadline that moves later on every
    /// packet costs one early wake-up per tick instead of a move per packet.
    ///
    /// [`arm`]: TimerWheel::arm
    #[inline]
    pub fn arm_by(&mut self, id: ConnId, at_us: u64) {
        // Armed at tick `a` no later than `at_us`'s tick (its rounding up),
        // without a division: `a <= ceil(at_us / TICK)`.
        match self.nodes.get(id.index()) {
            Some(Node { at: Some(a), .. })
                if a.saturating_mul(TICK_US) <= at_us.saturating_add(TICK_US - 1) => {}
            _ => self.arm(id, at_us),
        }
    }

    /// Disarms `id` if armed.
    pub fn cancel(&mut self, id: ConnId) {
        let Some(&Node {
            prev,
            next,
            at: Some(at),
        }) = self.nodes.get(id.index())
        else {
            return;
        };
        match prev {
            Some(p) => self.node(p).next = next,
            None => self.slots[(at as usize) & (SLOTS - 1)] = next,
        }
        if let Some(n) = next {
            self.node(n).prev = prev;
        }
        *self.node(id) = Node::default();
    }

    /// Address of `id`'s node (for prefetching; `None` if it has none yet).
    pub fn node_addr(&self, id: ConnId) -> Option<usize> {
        self.nodes
            .get(id.index())
            .map(|n| n as *const Node as usize)
    }

    /// The armed deadline of `id` in µs, if any.
    #[cfg(test)]
    pub fn deadline_us(&self, id: ConnId) -> Option<u64> {
        self.nodes
            .get(id.index())
            .and_then(|n| n.at)
            .map(|at| at * TICK_US)
    }

    /// The earliest armed deadline in µs, if any. Scans at most one
    /// revolution of slots from the current tick (O(slots + armed timers)):
    /// for a driver deciding how long it may sleep, never per packet.
    pub fn next_deadline_us(&self) -> Option<u64> {
        let mut earliest: Option<u64> = None;
        for i in 0..SLOTS as u64 {
            let tick = self.cur + i;
            let mut cur = self.slots[(tick as usize) & (SLOTS - 1)];
            while let Some(id) = cur {
                let n = self.nodes[id.index()];
                let at = n.at.expect("a listed node is armed");
                if at <= tick {
                    // Due by this tick: nothing in a later slot is earlier.
                    return Some(at.max(self.cur) * TICK_US);
                }
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
                cur = n.next;
            }
        }
        earliest.map(|at| at * TICK_US)
    }

    /// Whether [`TimerWheel::expire`] at `now_us` has a tick to examine
    /// (false within the tick already examined: the common case between
    /// steps less than a millisecond apart).
    #[inline]
    pub fn may_expire(&self, now_us: u64) -> bool {
        now_us / TICK_US >= self.cur
    }

    /// Pops every timer due at or before `now_us`, calling `f` for each.
    pub fn expire(&mut self, now_us: u64, mut f: impl FnMut(ConnId)) {
        let now = now_us / TICK_US;
        if now < self.cur {
            return;
        }
        // Visit each slot at most once per call even after a long gap.
        let span = (now - self.cur + 1).min(SLOTS as u64);
        let start = now + 1 - span;
        for tick in start..=now {
            let mut cur = self.slots[(tick as usize) & (SLOTS - 1)];
            while let Some(id) = cur {
                let n = self.nodes[id.index()];
                if n.at.is_some_and(|at| at <= now) {
                    self.cancel(id);
                    f(id);
                }
                cur = n.next;
            }
        }
        self.cur = now + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(i: usize) -> ConnId {
        ConnId::from_index(i)
    }

    #[test]
    fn fires_in_order_and_not_early() {
        let mut w = TimerWheel::new(0);
        w.arm(c(1), 5_500);
        w.arm(c(2), 1_000);
        w.arm(c(3), 9_000_000); // beyond one revolution
        let mut got = Vec::new();
        w.expire(999, |id| got.push(id.index()));
        assert!(got.is_empty());
        w.expire(1_000, |id| got.push(id.index()));
        assert_eq!(got, vec![2]);
        w.expire(5_999, |id| got.push(id.index()));
        assert_eq!(got, vec![2], "5.5 ms rounds up to the 6 ms tick");
        w.expire(6_000, |id| got.push(id.index()));
        assert_eq!(got, vec![2, 1]);
        w.expire(8_999_000, |id| got.push(id.index()));
        assert_eq!(got, vec![2, 1]);
        w.expire(9_000_000, |id| got.push(id.index()));
        assert_eq!(got, vec![2, 1, 3]);
    }

    #[test]
    fn next_deadline_finds_the_earliest_timer() {
        let mut w = TimerWheel::new(0);
        assert_eq!(w.next_deadline_us(), None);
        w.arm(c(1), 9_000_000); // beyond one revolution
        assert_eq!(w.next_deadline_us(), Some(9_000_000));
        w.arm(c(2), 2_500);
        assert_eq!(w.next_deadline_us(), Some(3_000), "rounded up to its tick");
        w.cancel(c(2));
        w.expire(5_000, |_| {});
        assert_eq!(w.next_deadline_us(), Some(9_000_000));
    }

    #[test]
    fn arm_by_only_moves_a_timer_earlier() {
        let mut w = TimerWheel::new(0);
        w.arm_by(c(4), 20_000);
        assert_eq!(w.deadline_us(c(4)), Some(20_000), "not armed: armed");
        w.arm_by(c(4), 30_000);
        assert_eq!(w.deadline_us(c(4)), Some(20_000), "later: left alone");
        w.arm_by(c(4), 5_500);
        assert_eq!(w.deadline_us(c(4)), Some(6_000), "earlier: moved");
        let mut got = Vec::new();
        w.expire(6_000, |id| got.push(id.index()));
        assert_eq!(got, vec![4]);
        assert_eq!(w.deadline_us(c(4)), None);
    }

    #[test]
    fn rearm_and_cancel() {
        let mut w = TimerWheel::new(0);
        w.arm(c(7), 2_000);
        w.arm(c(7), 50_000);
        w.arm(c(8), 2_000);
        w.cancel(c(8));
        let mut got = Vec::new();
        w.expire(10_000, |id| got.push(id.index()));
        assert!(got.is_empty());
        assert_eq!(w.deadline_us(c(7)), Some(50_000));
        w.expire(50_000, |id| got.push(id.index()));
        assert_eq!(got, vec![7]);
        assert_eq!(w.deadline_us(c(7)), None);
    }
}
