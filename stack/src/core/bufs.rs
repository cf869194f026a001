//! Provided-buffer groups: ring-mapped (`IORING_REGISTER_PBUF_RING`, shared
//! with the application) and legacy (`PROVIDE_BUFFERS`, private to the
//! engine). A receive picks a buffer only when there is data to put in it
//! ([`BufGroups::select`]) and consumes it only once the data is in
//! ([`BufGroups::commit`]), as the kernel does.

use crate::legacy::LegacyGroup;
use ringline_ring::bufring::BufRingConsumer;

use crate::errno::{self, Errno};
use crate::fxhash::FxMap;

/// A buffer picked for a receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Selected {
    pub(crate) addr: u64,
    pub(crate) len: u32,
    pub(crate) bid: u16,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct BufGroups {
    rings: FxMap<u16, BufRingConsumer>,
    legacy: FxMap<u16, LegacyGroup>,
}

impl BufGroups {
    /// Registers a buffer ring for group `bgid`; `EEXIST` if the group is a
    /// ring or a legacy group holding buffers. As in Linux
    /// (`io_register_pbuf_ring`), an emptied legacy group gives way.
    pub(crate) fn register(&mut self, bgid: u16, ring: BufRingConsumer) -> Result<(), Errno> {
        if self.rings.contains_key(&bgid) || self.legacy.get(&bgid).is_some_and(|g| !g.is_empty()) {
            return Err(errno::EEXIST);
        }
        self.legacy.remove(&bgid);
        self.rings.insert(bgid, ring);
        Ok(())
    }

    /// Unregisters group `bgid`'s ring (`io_unregister_pbuf_ring`): no such
    /// group `ENOENT`, a legacy one `EINVAL`. A receive waiting on the group
    /// then finds no buffer (`-ENOBUFS`), as in Linux.
    pub(crate) fn unregister(&mut self, bgid: u16) -> Result<(), Errno> {
        match self.rings.remove(&bgid) {
            Some(_) => Ok(()),
            None if self.legacy.contains_key(&bgid) => Err(errno::EINVAL),
            None => Err(errno::ENOENT),
        }
    }

    /// Whether group `bgid` exists (either kind).
    pub(crate) fn exists(&self, bgid: u16) -> bool {
        self.rings.contains_key(&bgid) || self.legacy.contains_key(&bgid)
    }

    /// `IORING_REGISTER_PBUF_STATUS` of group `bgid`: `None` if there is no
    /// such group, `EINVAL` if it is a legacy one, else its ring's head.
    pub(crate) fn ring_status(&self, bgid: u16) -> Option<Result<u16, Errno>> {
        match self.rings.get(&bgid) {
            Some(r) => Some(Ok(r.head())),
            None => self
                .legacy
                .contains_key(&bgid)
                .then_some(Err(errno::EINVAL)),
        }
    }

    /// Whether group `bgid` is ring-mapped.
    pub(crate) fn is_ring(&self, bgid: u16) -> bool {
        self.rings.contains_key(&bgid)
    }

    /// Whether group `bgid` is an incremental ring (`IOU_PBUF_RING_INC`).
    pub(crate) fn is_incremental(&self, bgid: u16) -> bool {
        self.rings.get(&bgid).is_some_and(|r| r.incremental())
    }

    /// How many buffers `group` holds now (a legacy group: 1 if any, as a
    /// send takes one of them at a time).
    pub(crate) fn available(&self, group: u16) -> u16 {
        match self.rings.get(&group) {
            Some(r) => r.available(),
            None => u16::from(self.select(group).is_some()),
        }
    }

    /// The next buffer of `group`, not yet consumed.
    #[inline]
    pub(crate) fn select(&self, group: u16) -> Option<Selected> {
        if let Some(r) = self.rings.get(&group) {
            return r.peek().map(|b| Selected {
                addr: b.addr,
                len: b.len,
                bid: b.bid,
            });
        }
        self.legacy
            .get(&group)
            .and_then(|g| g.peek())
            .map(|b| Selected {
                addr: b.addr,
                len: b.len,
                bid: b.bid,
            })
    }

    /// Consumes the buffer [`BufGroups::select`] picked, `used` bytes of
    /// which were filled; the CQE flag `IORING_CQE_F_BUF_MORE` if an
    /// incremental ring (`IOU_PBUF_RING_INC`) keeps it for more, else 0.
    #[inline]
    pub(crate) fn commit(&mut self, group: u16, used: u32) -> u32 {
        if let Some(r) = self.rings.get_mut(&group) {
            if r.consume_bytes(used) {
                return ringline_ring::abi::IORING_CQE_F_BUF_MORE;
            }
        } else if let Some(g) = self.legacy.get_mut(&group) {
            g.consume();
        }
        0
    }

    /// PROVIDE_BUFFERS into legacy group `bgid` (created on first use).
    pub(crate) fn provide(
        &mut self,
        bgid: u16,
        addr: u64,
        len: u32,
        count: u32,
        bid: u32,
    ) -> Result<(), Errno> {
        let g = self.legacy.entry(bgid).or_default();
        g.provide(addr, len, count, bid)
    }

    /// REMOVE_BUFFERS: up to `count` from legacy group `bgid`; how many went.
    pub(crate) fn remove(&mut self, bgid: u16, count: u32) -> Result<u32, Errno> {
        let g = self.legacy.get_mut(&bgid).ok_or(errno::ENOENT)?;
        Ok(g.remove(count))
    }
}
