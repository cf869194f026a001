//! Socket numbers (ringline's own small integers; a freed number is reused
//! last-freed-first, like every slab here, not lowest-first as Linux does) and the ports they hold: bound ports and the
//! ephemeral-port cursor (Linux's default `ip_local_port_range`).

use crate::fxhash::FxMap;
use crate::ids::{ConnId, ListenerId};
use crate::slab::Slab;

/// Ephemeral port range (Linux's default `ip_local_port_range`).
pub(crate) const EPHEMERAL_LO: u16 = 32768;
pub(crate) const EPHEMERAL_HI: u16 = 60999;

/// What a socket number stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fd {
    /// Not in use.
    Free,
    /// Created by SOCKET; `port` is the bound port (0 = unbound).
    Fresh { port: u16 },
    /// A listening socket.
    Listener(ListenerId),
    /// A connection (connecting or connected).
    Conn(ConnId),
}

/// See the module docs.
pub(crate) struct Fds {
    slab: Slab<Fd>,
    bound: FxMap<u16, i32>,
    next_port: u16,
}

impl Fds {
    /// A table whose ephemeral cursor starts at a point derived from `seed`.
    pub(crate) fn new(seed: u64, cap: usize) -> Self {
        Fds {
            slab: Slab::with_capacity(cap),
            bound: FxMap::default(),
            next_port: EPHEMERAL_LO + (seed % 1000) as u16,
        }
    }

    /// A new socket number for `f`.
    pub(crate) fn alloc(&mut self, f: Fd) -> i32 {
        self.slab.insert(f) as i32
    }

    /// Frees socket number `fd`.
    pub(crate) fn free(&mut self, fd: i32) {
        *self.slab.at_mut(fd as usize) = Fd::Free;
        self.slab.release(fd as usize);
    }

    /// What `fd` stands for (`None`: not a socket number in use).
    #[inline]
    pub(crate) fn get(&self, fd: i32) -> Option<Fd> {
        if fd < 0 {
            return None;
        }
        match self.slab.get(fd as usize) {
            Some(Fd::Free) | None => None,
            Some(f) => Some(*f),
        }
    }

    /// Every socket number in use.
    pub(crate) fn in_use(&self) -> impl Iterator<Item = i32> + '_ {
        self.slab
            .iter()
            .filter(|(_, f)| **f != Fd::Free)
            .map(|(i, _)| i as i32)
    }

    /// Makes `fd` (in use) stand for `f`.
    pub(crate) fn set(&mut self, fd: i32, f: Fd) {
        *self.slab.at_mut(fd as usize) = f;
    }

    /// Records that `fd` holds `port`.
    pub(crate) fn bind(&mut self, port: u16, fd: i32) {
        self.bound.insert(port, fd);
    }

    /// Releases `port`.
    pub(crate) fn unbind(&mut self, port: u16) {
        self.bound.remove(&port);
    }

    /// Whether a socket holds `port`.
    pub(crate) fn is_bound(&self, port: u16) -> bool {
        self.bound.contains_key(&port)
    }

    /// The next ephemeral port in the cursor's order.
    pub(crate) fn next_ephemeral(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p >= EPHEMERAL_HI {
            EPHEMERAL_LO
        } else {
            p + 1
        };
        p
    }

    /// An ephemeral port neither bound nor `taken`, trying each once.
    pub(crate) fn pick_port(&mut self, taken: impl Fn(u16) -> bool) -> Option<u16> {
        let span = (EPHEMERAL_HI - EPHEMERAL_LO + 1) as u32;
        for _ in 0..span {
            let p = self.next_ephemeral();
            if !self.is_bound(p) && !taken(p) {
                return Some(p);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_reused_last_freed_first() {
        let mut f = Fds::new(0, 4);
        let a = f.alloc(Fd::Fresh { port: 0 });
        let b = f.alloc(Fd::Fresh { port: 0 });
        assert_eq!((a, b), (0, 1));
        f.free(a);
        assert_eq!(f.get(a), None);
        assert_eq!(f.get(-1), None);
        assert_eq!(f.get(99), None);
        assert_eq!(f.alloc(Fd::Fresh { port: 5 }), a);
        assert_eq!(f.get(a), Some(Fd::Fresh { port: 5 }));
    }

    #[test]
    fn ephemeral_ports_wrap_and_skip_taken_ones() {
        let mut f = Fds::new(0, 0);
        f.next_port = EPHEMERAL_HI;
        assert_eq!(f.next_ephemeral(), EPHEMERAL_HI);
        assert_eq!(f.next_ephemeral(), EPHEMERAL_LO, "wraps");
        f.bind(EPHEMERAL_LO + 1, 3);
        let p = f.pick_port(|p| p == EPHEMERAL_LO + 2).unwrap();
        assert_eq!(p, EPHEMERAL_LO + 3, "skips the bound and the taken");
        assert_eq!(f.pick_port(|_| true), None, "all taken");
    }
}
