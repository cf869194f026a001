//! Ports shared by several engines on one NIC port (`ringline serve`: one
//! engine per attached application): which engine listens on which TCP
//! port. The daemon's ingress dispatch reads it to hand a segment for a
//! listening port to its owner; an engine claims a port when it starts
//! listening, so a second application listening on a port another holds
//! gets `-EADDRINUSE`, and releases it when the listener closes.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Owner of each of the 65536 ports: 0 = none, `slot + 1` otherwise.
///
/// All engines of a daemon port and its dispatch run on one thread; the
/// atomics (relaxed: each entry is one independent value, nothing is
/// published through it) only make the table `Sync` for engines that are
/// `Send`.
pub struct PortClaims {
    owner: Box<[AtomicU8]>,
}

impl PortClaims {
    /// An empty table.
    pub fn new() -> Arc<PortClaims> {
        Arc::new(PortClaims {
            owner: (0..=u16::MAX as usize).map(|_| AtomicU8::new(0)).collect(),
        })
    }

    /// The slot listening on `port`, if any.
    #[inline]
    pub fn owner(&self, port: u16) -> Option<u8> {
        // Written by the same thread (claim/release); relaxed, see the type.
        match self.owner[port as usize].load(Ordering::Relaxed) {
            0 => None,
            s => Some(s - 1),
        }
    }

    /// Releases every port `slot` holds (its engine is gone). O(65536):
    /// once per application exit.
    pub fn release_all(&self, slot: u8) {
        for o in self.owner.iter() {
            // Single-thread writer, see the type.
            let _ = o.compare_exchange(slot + 1, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// One engine's handle on the table.
pub(crate) struct Claim {
    pub(crate) table: Arc<PortClaims>,
    /// Slots are 0..=254.
    pub(crate) slot: u8,
}

impl Claim {
    /// Whether another engine listens on `port`.
    #[inline]
    pub(crate) fn taken_by_other(&self, port: u16) -> bool {
        self.table.owner(port).is_some_and(|s| s != self.slot)
    }

    /// Claims `port` for this engine; `false` if another holds it.
    pub(crate) fn claim(&self, port: u16) -> bool {
        // Single-thread writer, see PortClaims.
        let o = &self.table.owner[port as usize];
        match o.compare_exchange(0, self.slot + 1, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => true,
            Err(cur) => cur == self.slot + 1,
        }
    }

    /// Releases `port` if this engine holds it.
    pub(crate) fn release(&self, port: u16) {
        // Single-thread writer, see PortClaims.
        let _ = self.table.owner[port as usize].compare_exchange(
            self.slot + 1,
            0,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_has_one_owner() {
        let t = PortClaims::new();
        let a = Claim {
            table: t.clone(),
            slot: 0,
        };
        let b = Claim {
            table: t.clone(),
            slot: 3,
        };
        assert!(a.claim(80));
        assert!(a.claim(80), "again by the owner");
        assert!(!b.claim(80));
        assert!(b.taken_by_other(80) && !a.taken_by_other(80));
        assert_eq!(t.owner(80), Some(0));
        b.release(80);
        assert_eq!(t.owner(80), Some(0), "only the owner releases");
        assert!(b.claim(81));
        t.release_all(3);
        assert_eq!(t.owner(81), None);
        a.release(80);
        assert_eq!(t.owner(80), None);
    }
}
