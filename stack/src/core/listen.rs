//! Listeners: the port map, each listener's backlog (half-open plus queued
//! connections, as Linux counts them against `listen(2)`'s backlog) and its
//! accept queue. Slots are reused with a new generation, so a connection
//! still in handshake with a closed listener cannot join its successor.

use std::collections::VecDeque;

use crate::fxhash::FxMap;
use crate::ids::{ConnId, ListenerId};
use crate::slab::Slab;

/// One listening socket.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) live: bool,
    pub(crate) gen: u32,
    pub(crate) port: u16,
    pub(crate) backlog: u32,
    /// Connections in handshake for it.
    pub(crate) half_open: u32,
    /// Established connections waiting for ACCEPT.
    pub(crate) queue: VecDeque<ConnId>,
    /// The listening socket's options, which accepted connections inherit.
    pub(crate) opts: super::sockopt::SockOpts,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Listeners {
    slab: Slab<Listener>,
    by_port: FxMap<u16, ListenerId>,
}

impl Listeners {
    /// Starts listening on `port` (free: the caller checked).
    pub(crate) fn open(
        &mut self,
        port: u16,
        backlog: u32,
        opts: super::sockopt::SockOpts,
    ) -> ListenerId {
        let queue = VecDeque::with_capacity((backlog as usize).min(4096));
        let slot = self.slab.recycle_or(|_| Listener {
            live: false,
            gen: u32::MAX,
            port: 0,
            backlog: 0,
            half_open: 0,
            queue: VecDeque::new(),
            opts,
        });
        let l = self.slab.at_mut(slot);
        *l = Listener {
            live: true,
            gen: l.gen.wrapping_add(1),
            port,
            backlog,
            half_open: 0,
            queue,
            opts,
        };
        let id = ListenerId {
            slot: slot as u32,
            gen: l.gen,
        };
        self.by_port.insert(port, id);
        id
    }

    /// Listening ports open.
    pub(crate) fn len(&self) -> usize {
        self.by_port.len()
    }

    /// The live listener `id` names (`None` if closed or the slot reused).
    pub(crate) fn get(&self, id: ListenerId) -> Option<&Listener> {
        self.slab
            .get(id.slot as usize)
            .filter(|l| l.live && l.gen == id.gen)
    }

    /// The live listener `id` names, mutably.
    pub(crate) fn get_mut(&mut self, id: ListenerId) -> Option<&mut Listener> {
        match self.slab.get(id.slot as usize) {
            Some(l) if l.live && l.gen == id.gen => Some(self.slab.at_mut(id.slot as usize)),
            _ => None,
        }
    }

    /// The listener in `slot` (ops name listeners by slot: they are
    /// cancelled before the slot is released).
    pub(crate) fn slot(&self, slot: u32) -> &Listener {
        self.slab.at(slot as usize)
    }

    /// The listener on `port`.
    #[inline]
    pub(crate) fn on_port(&self, port: u16) -> Option<ListenerId> {
        self.by_port.get(&port).copied()
    }

    /// Whether something listens on `port`.
    pub(crate) fn is_listening(&self, port: u16) -> bool {
        self.by_port.contains_key(&port)
    }

    /// Whether a SYN for `id` fits in its backlog, with at most `syn_cap`
    /// connections in handshake (Linux's `tcp_max_syn_backlog`): past it a
    /// SYN is answered with a cookie, so a flood cannot fill the connection
    /// table and leave no slot for the cookies' returning ACKs.
    pub(crate) fn has_room(&self, id: ListenerId, syn_cap: u32) -> bool {
        self.get(id).is_some_and(|l| {
            l.half_open < syn_cap && (l.half_open as usize + l.queue.len()) < l.backlog as usize
        })
    }

    /// Whether `id`'s accept queue is full (completed connections the
    /// application has not accepted): Linux drops SYNs then, cookies or
    /// not. As Linux's `sk_acceptq_is_full`, it holds `backlog + 1`.
    pub(crate) fn accept_full(&self, id: ListenerId) -> bool {
        self.get(id)
            .is_none_or(|l| l.queue.len() > l.backlog as usize)
    }

    /// A handshake for `id` started.
    pub(crate) fn add_half_open(&mut self, id: ListenerId) {
        if let Some(l) = self.get_mut(id) {
            l.half_open += 1;
        }
    }

    /// A handshake for `id` failed (the connection is freed).
    pub(crate) fn handshake_failed(&mut self, id: ListenerId) {
        if let Some(l) = self.get_mut(id) {
            l.half_open = l.half_open.saturating_sub(1);
        }
    }

    /// A handshake for `id` completed: the connection joins its accept
    /// queue. `false` if the listener is gone (the caller aborts it).
    pub(crate) fn handshake_done(&mut self, id: ListenerId, cid: ConnId) -> bool {
        match self.get_mut(id) {
            Some(l) => {
                l.half_open = l.half_open.saturating_sub(1);
                l.queue.push_back(cid);
                true
            }
            None => false,
        }
    }

    /// Stops listener `id`: its port is free again; returns its queued
    /// connections (nobody will accept them: the caller aborts them) in a
    /// list whose memory goes back with [`Listeners::release`].
    pub(crate) fn close(&mut self, id: ListenerId) -> VecDeque<ConnId> {
        let Some(l) = self.get_mut(id) else {
            return VecDeque::new();
        };
        l.live = false;
        let port = l.port;
        let q = std::mem::take(&mut l.queue);
        self.by_port.remove(&port);
        q
    }

    /// Frees a closed listener's slot, keeping the queue's memory.
    pub(crate) fn release(&mut self, id: ListenerId, mut q: VecDeque<ConnId>) {
        q.clear();
        self.slab.at_mut(id.slot as usize).queue = q;
        self.slab.release(id.slot as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> crate::core::sockopt::SockOpts {
        crate::core::sockopt::SockOpts::from_config(&crate::config::EngineConfig::default())
    }

    fn cid(i: usize) -> ConnId {
        ConnId::from_index(i)
    }

    #[test]
    fn backlog_counts_half_open_and_queued() {
        let mut ls = Listeners::default();
        let l = ls.open(80, 2, opts());
        assert_eq!(ls.on_port(80), Some(l));
        assert!(ls.has_room(l, u32::MAX));
        assert!(!ls.has_room(l, 0), "the SYN queue's cap");
        ls.add_half_open(l);
        ls.add_half_open(l);
        assert!(
            !ls.has_room(l, u32::MAX),
            "two in handshake fill a backlog of 2"
        );
        assert!(ls.handshake_done(l, cid(0)));
        assert!(!ls.has_room(l, u32::MAX), "one queued, one half-open");
        ls.handshake_failed(l);
        assert!(ls.has_room(l, u32::MAX));
        assert_eq!(ls.get(l).unwrap().queue, [cid(0)]);
    }

    #[test]
    fn a_reused_slot_does_not_take_the_old_listeners_connections() {
        let mut ls = Listeners::default();
        let old = ls.open(80, 8, opts());
        ls.add_half_open(old);
        let q = ls.close(old);
        ls.release(old, q);
        assert!(!ls.is_listening(80));
        let new = ls.open(81, 8, opts());
        assert_eq!(new.slot, old.slot, "slot reused");
        assert_ne!(new.gen, old.gen);
        assert!(!ls.handshake_done(old, cid(3)), "old handshake is refused");
        ls.handshake_failed(old); // does not touch the new listener
        let l = ls.get(new).unwrap();
        assert_eq!((l.half_open, l.queue.len()), (0, 0));
    }

    #[test]
    fn close_returns_the_queue_and_frees_the_port() {
        let mut ls = Listeners::default();
        let l = ls.open(7, 4, opts());
        ls.add_half_open(l);
        ls.handshake_done(l, cid(1));
        ls.add_half_open(l);
        ls.handshake_done(l, cid(2));
        let q = ls.close(l);
        assert_eq!(q, [cid(1), cid(2)]);
        assert!(ls.get(l).is_none());
        assert!(ls.on_port(7).is_none());
        ls.release(l, q);
        let again = ls.open(7, 1, opts());
        assert!(ls.has_room(again, u32::MAX));
    }
}
