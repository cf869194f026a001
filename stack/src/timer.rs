//! A hashed timer wheel over connection ids: O(1) arm, re-arm and cancel,
//! O(expired + slot occupancy) per tick. One timer per connection, fed from
//! smoltcp's per-socket `poll_at`.

const NIL: u32 = u32::MAX;

/// Wheel geometry: 4096 slots of 1 ms cover 4.096 s in one revolution (the TCP RTO
/// floor is 1 s, delayed ACK 10 ms); longer deadlines (TIME-WAIT, keep-alive)
/// stay in their slot until a later revolution reaches them.
const SLOTS: usize = 4096;
const TICK_US: u64 = 1000;

#[derive(Clone, Copy, Debug)]
struct Node {
    prev: u32,
    next: u32,
    /// Deadline in ticks; `u64::MAX` when not armed.
    at: u64,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            prev: NIL,
            next: NIL,
            at: u64::MAX,
        }
    }
}

/// The wheel. Ids are connection slots; the node table grows with them.
pub(crate) struct TimerWheel {
    slots: Vec<u32>,
    nodes: Vec<Node>,
    /// Next tick to examine.
    cur: u64,
}

impl TimerWheel {
    /// An empty wheel starting at `now_us`.
    pub fn new(now_us: u64) -> Self {
        TimerWheel {
            slots: vec![NIL; SLOTS],
            nodes: Vec::new(),
            cur: now_us / TICK_US,
        }
    }

    fn ensure(&mut self, id: u32) {
        let need = id as usize + 1;
        if self.nodes.len() < need {
            self.nodes.resize(need, Node::default());
        }
    }

    /// Arms (or re-arms) `id` for `at_us`, rounded up to the next tick so a
    /// timer never fires before smoltcp's deadline.
    pub fn arm(&mut self, id: u32, at_us: u64) {
        self.ensure(id);
        let at = at_us.div_ceil(TICK_US).max(self.cur);
        if self.nodes[id as usize].at == at {
            return;
        }
        self.cancel(id);
        let slot = (at as usize) & (SLOTS - 1);
        let head = self.slots[slot];
        self.nodes[id as usize] = Node {
            prev: NIL,
            next: head,
            at,
        };
        if head != NIL {
            self.nodes[head as usize].prev = id;
        }
        self.slots[slot] = id;
    }

    /// Disarms `id` if armed.
    pub fn cancel(&mut self, id: u32) {
        let Some(n) = self.nodes.get(id as usize).copied() else {
            return;
        };
        if n.at == u64::MAX {
            return;
        }
        if n.prev != NIL {
            self.nodes[n.prev as usize].next = n.next;
        } else {
            let slot = (n.at as usize) & (SLOTS - 1);
            self.slots[slot] = n.next;
        }
        if n.next != NIL {
            self.nodes[n.next as usize].prev = n.prev;
        }
        self.nodes[id as usize] = Node::default();
    }

    /// Address of `id`'s node (for prefetching; `None` if it has none yet).
    pub fn node_addr(&self, id: u32) -> Option<usize> {
        self.nodes
            .get(id as usize)
            .map(|n| n as *const Node as usize)
    }

    /// The armed deadline of `id` in µs, if any.
    #[cfg(test)]
    pub fn deadline_us(&self, id: u32) -> Option<u64> {
        self.nodes
            .get(id as usize)
            .and_then(|n| (n.at != u64::MAX).then(|| n.at * TICK_US))
    }

    /// The earliest armed deadline in µs, if any. Scans at most one
    /// revolution of slots from the current tick (O(slots + armed timers)):
    /// for a driver deciding how long it may sleep, never per packet.
    pub fn next_deadline_us(&self) -> Option<u64> {
        let mut earliest = u64::MAX;
        for i in 0..SLOTS as u64 {
            let tick = self.cur + i;
            let mut id = self.slots[(tick as usize) & (SLOTS - 1)];
            while id != NIL {
                let n = self.nodes[id as usize];
                if n.at <= tick {
                    // Due by this tick: nothing in a later slot is earlier.
                    return Some(n.at.max(self.cur) * TICK_US);
                }
                earliest = earliest.min(n.at);
                id = n.next;
            }
        }
        (earliest != u64::MAX).then(|| earliest * TICK_US)
    }

    /// Whether [`TimerWheel::expire`] at `now_us` has a tick to examine
    /// (false within the tick already examined: the common case between
    /// steps less than a millisecond apart).
    #[inline]
    pub fn may_expire(&self, now_us: u64) -> bool {
        now_us / TICK_US >= self.cur
    }

    /// Pops every timer due at or before `now_us`, calling `f` for each id.
    pub fn expire(&mut self, now_us: u64, mut f: impl FnMut(u32)) {
        let now = now_us / TICK_US;
        if now < self.cur {
            return;
        }
        // Visit each slot at most once per call even after a long gap.
        let span = (now - self.cur + 1).min(SLOTS as u64);
        let start = now + 1 - span;
        for tick in start..=now {
            let slot = (tick as usize) & (SLOTS - 1);
            let mut id = self.slots[slot];
            while id != NIL {
                let n = self.nodes[id as usize];
                if n.at <= now {
                    self.cancel(id);
                    f(id);
                }
                id = n.next;
            }
        }
        self.cur = now + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_not_early() {
        let mut w = TimerWheel::new(0);
        w.arm(1, 5_500);
        w.arm(2, 1_000);
        w.arm(3, 9_000_000); // beyond one revolution
        let mut got = Vec::new();
        w.expire(999, |id| got.push(id));
        assert!(got.is_empty());
        w.expire(1_000, |id| got.push(id));
        assert_eq!(got, vec![2]);
        w.expire(5_999, |id| got.push(id));
        assert_eq!(got, vec![2], "5.5 ms rounds up to the 6 ms tick");
        w.expire(6_000, |id| got.push(id));
        assert_eq!(got, vec![2, 1]);
        w.expire(8_999_000, |id| got.push(id));
        assert_eq!(got, vec![2, 1]);
        w.expire(9_000_000, |id| got.push(id));
        assert_eq!(got, vec![2, 1, 3]);
    }

    #[test]
    fn next_deadline_finds_the_earliest_timer() {
        let mut w = TimerWheel::new(0);
        assert_eq!(w.next_deadline_us(), None);
        w.arm(1, 9_000_000); // beyond one revolution
        assert_eq!(w.next_deadline_us(), Some(9_000_000));
        w.arm(2, 2_500);
        assert_eq!(w.next_deadline_us(), Some(3_000), "rounded up to its tick");
        w.cancel(2);
        w.expire(5_000, |_| {});
        assert_eq!(w.next_deadline_us(), Some(9_000_000));
    }

    #[test]
    fn rearm_and_cancel() {
        let mut w = TimerWheel::new(0);
        w.arm(7, 2_000);
        w.arm(7, 50_000);
        w.arm(8, 2_000);
        w.cancel(8);
        let mut got = Vec::new();
        w.expire(10_000, |id| got.push(id));
        assert!(got.is_empty());
        assert_eq!(w.deadline_us(7), Some(50_000));
        w.expire(50_000, |id| got.push(id));
        assert_eq!(got, vec![7]);
        assert_eq!(w.deadline_us(7), None);
    }
}
