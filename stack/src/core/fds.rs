//! Socket numbers (ringline's own small integers; a freed number is reused
//! last-freed-first, like every slab here, not lowest-first as Linux does) and the ports they hold: bound ports and the
//! ephemeral-port cursor (Linux's default `ip_local_port_range`).
//!
//! With a [`SocketNumbers`] hook the numbers handed out are the hook's (real
//! reserved fds of the process); the slab index behind each is kept in a dense
//! table indexed by number (fd numbers are small, bounded by `RLIMIT_NOFILE`), so
//! a lookup stays one array index.

use super::sockopt::SockOpts;
use crate::fxhash::FxMap;
use crate::ids::{ConnId, ListenerId};
use crate::numbers::{SocketNumbers, SocketNumbersHook};
use crate::slab::Slab;
use std::sync::Arc;

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

/// Who holds a socket besides its number: the registered file table's slots
/// ([`crate::core::rsrc`]). A socket that slots hold outlives a CLOSE of its
/// number (the number is then `hidden`: no SQE without `IOSQE_FIXED_FILE`
/// can name it), as a Linux file outlives its fd while a fixed slot holds
/// it; one made straight into a slot (a direct descriptor) is hidden from
/// the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hold {
    /// No fd names the socket (closed, or a direct descriptor).
    pub hidden: bool,
    /// Slots of the file table that hold it.
    pub slots: u32,
}

/// See the module docs.
pub(crate) struct Fds {
    slab: Slab<Fd>,
    /// Per slot (slab index), its socket's [`Hold`] (grown with the slab).
    holds: Vec<Hold>,
    /// Per slot, its socket's options (grown with the slab).
    opts: Vec<SockOpts>,
    /// A new socket's options (the engine's configuration).
    pub(crate) default_opts: SockOpts,
    bound: FxMap<u16, i32>,
    next_port: u16,
    /// The hook numbers come from, if any.
    numbers: Option<Arc<dyn SocketNumbers>>,
    /// With a hook: number -> slab index + 1 (0: not ours).
    slot_of: Vec<u32>,
    /// With a hook: slab index -> number.
    number_of: Vec<i32>,
}

impl Fds {
    /// A table whose ephemeral cursor starts at a point derived from `seed`.
    pub(crate) fn new(seed: u64, cap: usize, numbers: Option<&SocketNumbersHook>) -> Self {
        Fds {
            slab: Slab::with_capacity(cap),
            holds: Vec::with_capacity(cap),
            opts: Vec::with_capacity(cap),
            default_opts: SockOpts::from_config(&crate::config::EngineConfig::default()),
            bound: FxMap::default(),
            next_port: EPHEMERAL_LO + (seed % 1000) as u16,
            numbers: numbers.map(|h| h.0.clone()),
            slot_of: Vec::new(),
            number_of: Vec::new(),
        }
    }

    /// Whether numbers come from a hook (which may hand over sockets made
    /// outside the engine: see [`Fds::adopt`]).
    pub(crate) fn has_hook(&self) -> bool {
        self.numbers.is_some()
    }

    /// A new socket number for `f`; `None` when the hook has none left.
    pub(crate) fn alloc(&mut self, f: Fd) -> Option<i32> {
        match &self.numbers {
            None => {
                let slot = self.insert(f);
                Some(slot as i32)
            }
            Some(h) => {
                let fd = h.reserve()?;
                self.install(fd, f);
                self.options_changed(fd, self.default_opts);
                Some(fd)
            }
        }
    }

    /// Tells the hook (if any) the options `fd` now has, and whether it
    /// listens ([`crate::SocketNumbers::options`]).
    pub(crate) fn options_changed(&self, fd: i32, opts: SockOpts) {
        if let Some(h) = &self.numbers {
            h.options(fd, opts, matches!(self.get(fd), Some(Fd::Listener(_))));
        }
    }

    /// Tells the hook (if any) the addresses `fd` now has
    /// ([`crate::SocketNumbers::named`]).
    pub(crate) fn named(
        &self,
        fd: i32,
        local: std::net::SocketAddrV4,
        peer: Option<std::net::SocketAddrV4>,
    ) {
        if let Some(h) = &self.numbers {
            h.named(fd, local, peer);
        }
    }

    /// Takes a slot for `f`, with a fresh hold and the default options.
    fn insert(&mut self, f: Fd) -> usize {
        let slot = self.slab.insert(f);
        if slot >= self.holds.len() {
            self.holds.resize(slot + 1, Hold::default());
            self.opts.resize(slot + 1, self.default_opts);
        }
        self.holds[slot] = Hold::default();
        self.opts[slot] = self.default_opts;
        slot
    }

    /// The options of `fd` (in use).
    #[inline]
    pub(crate) fn opts(&self, fd: i32) -> SockOpts {
        self.opts[self.slot_in_use(fd)]
    }

    /// The options of `fd` (in use), to change.
    #[inline]
    pub(crate) fn opts_mut(&mut self, fd: i32) -> &mut SockOpts {
        let slot = self.slot_in_use(fd);
        &mut self.opts[slot]
    }

    /// Whether `fd` is a socket an fd names (in use and not hidden).
    #[inline]
    pub(crate) fn visible(&self, fd: i32) -> bool {
        self.get(fd).is_some() && !self.holds[self.slot_in_use(fd)].hidden
    }

    /// Whether `fd` is a socket only file-table slots name.
    #[inline]
    pub(crate) fn hidden(&self, fd: i32) -> bool {
        self.get(fd).is_some() && self.holds[self.slot_in_use(fd)].hidden
    }

    /// The holds of `fd` (in use), to change.
    #[inline]
    pub(crate) fn hold_mut(&mut self, fd: i32) -> &mut Hold {
        let slot = self.slot_in_use(fd);
        &mut self.holds[slot]
    }

    /// The slot of `fd`, which the caller knows is in use.
    #[inline]
    fn slot_in_use(&self, fd: i32) -> usize {
        self.slot(fd).expect("socket number in use")
    }

    /// Records hook number `fd` (>= 0, not in use here) as standing for `f`.
    fn install(&mut self, fd: i32, f: Fd) {
        let slot = self.insert(f);
        let n = fd as usize;
        if self.slot_of.len() <= n {
            self.slot_of.resize(n + 1, 0);
        }
        self.slot_of[n] = slot as u32 + 1;
        if self.number_of.len() <= slot {
            self.number_of.resize(slot + 1, -1);
        }
        self.number_of[slot] = fd;
    }

    /// Asks the hook whether `fd`, unknown here, is a socket made outside the
    /// engine; if so, installs it (as `Fresh` with its port, the caller binds
    /// and listens as the answer says).
    pub(crate) fn adopt(&mut self, fd: i32) -> Option<crate::numbers::Adopted> {
        if fd < 0 || self.get(fd).is_some() {
            return None;
        }
        let a = self.numbers.as_ref()?.adopt(fd)?;
        self.install(fd, Fd::Fresh { port: 0 });
        Some(a)
    }

    /// The number of a socket made outside the engine that listens on
    /// `port` and no engine has adopted ([`SocketNumbers::pending_listener`]).
    #[cold]
    pub(crate) fn pending_listener(&self, port: u16) -> Option<i32> {
        self.numbers.as_ref()?.pending_listener(port)
    }

    /// The slab index of number `fd`.
    #[inline]
    fn slot(&self, fd: i32) -> Option<usize> {
        if fd < 0 {
            return None;
        }
        if self.numbers.is_none() {
            return Some(fd as usize);
        }
        match self.slot_of.get(fd as usize) {
            Some(&s) if s != 0 => Some(s as usize - 1),
            _ => None,
        }
    }

    /// Frees socket number `fd` (in use).
    pub(crate) fn free(&mut self, fd: i32) {
        let Some(slot) = self.slot(fd) else {
            return;
        };
        *self.slab.at_mut(slot) = Fd::Free;
        self.holds[slot] = Hold::default();
        self.slab.release(slot);
        if let Some(h) = &self.numbers {
            self.slot_of[fd as usize] = 0;
            self.number_of[slot] = -1;
            h.release(fd);
        }
    }

    /// What `fd` stands for (`None`: not a socket number in use).
    #[inline]
    pub(crate) fn get(&self, fd: i32) -> Option<Fd> {
        match self.slab.get(self.slot(fd)?) {
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
        if let Some(slot) = self.slot(fd) {
            *self.slab.at_mut(slot) = f;
        }
    }

    /// Every number in use (for giving them all back when the engine goes).
    pub(crate) fn numbers_in_use(&self) -> Vec<i32> {
        self.number_of.iter().copied().filter(|&n| n >= 0).collect()
    }

    /// Gives every number back to the hook (the engine is going away).
    pub(crate) fn release_all(&mut self) {
        if let Some(h) = self.numbers.take() {
            for fd in self.numbers_in_use() {
                h.release(fd);
            }
        }
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
        let mut f = Fds::new(0, 4, None);
        let a = f.alloc(Fd::Fresh { port: 0 }).unwrap();
        let b = f.alloc(Fd::Fresh { port: 0 }).unwrap();
        assert_eq!((a, b), (0, 1));
        f.free(a);
        assert_eq!(f.get(a), None);
        assert_eq!(f.get(-1), None);
        assert_eq!(f.get(99), None);
        assert_eq!(f.alloc(Fd::Fresh { port: 5 }), Some(a));
        assert_eq!(f.get(a), Some(Fd::Fresh { port: 5 }));
    }

    #[test]
    fn ephemeral_ports_wrap_and_skip_taken_ones() {
        let mut f = Fds::new(0, 0, None);
        f.next_port = EPHEMERAL_HI;
        assert_eq!(f.next_ephemeral(), EPHEMERAL_HI);
        assert_eq!(f.next_ephemeral(), EPHEMERAL_LO, "wraps");
        f.bind(EPHEMERAL_LO + 1, 3);
        let p = f.pick_port(|p| p == EPHEMERAL_LO + 2).unwrap();
        assert_eq!(p, EPHEMERAL_LO + 3, "skips the bound and the taken");
        assert_eq!(f.pick_port(|_| true), None, "all taken");
    }
}
