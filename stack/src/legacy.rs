//! Legacy provided buffers (`IORING_OP_PROVIDE_BUFFERS` / `IORING_OP_REMOVE_BUFFERS`).
//!
//! One group is a FIFO of buffers private to the engine: no shared memory, the app
//! hands buffers over with one SQE (and gets one CQE) per refill. A buffer picked for an
//! attempt that got no data stays at the front (`peek` without `consume`).
//!
//! Engine-private: unlike ring-mapped groups (`ringline_ring::bufring`) nothing here is
//! shared with the application, so it lives beside the engine, not in the ABI crate.

use std::collections::VecDeque;

use crate::errno::{self, Errno};

use ringline_ring::abi::IoUringBuf;

/// Buffer ids are 16 bits wide in the CQE flags (`MAX_BIDS_PER_BGID`).
pub const MAX_BIDS_PER_BGID: u32 = 1 << 16;

/// A group holds at most `USHRT_MAX` buffers (Linux's `io_add_buffers`: the
/// rest of a PROVIDE_BUFFERS past that is not added).
pub const MAX_BUFS_PER_GROUP: usize = u16::MAX as usize;

/// The kernel caps each buffer's length at `MAX_RW_COUNT` (`INT_MAX & PAGE_MASK`).
pub const MAX_RW_COUNT: u32 = 0x7fff_f000;

/// One `PROVIDE_BUFFERS` group: a FIFO of `(addr, len, bid)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LegacyGroup {
    bufs: VecDeque<IoUringBuf>,
}

impl LegacyGroup {
    /// Adds `count` buffers of `len` bytes: buffer `i` is `base + i * len` with id
    /// `first_bid + i` (`IORING_OP_PROVIDE_BUFFERS`).
    ///
    /// Validation and errors are the kernel's (`io_provide_buffers_prep`):
    /// `count` 0 or above 65536 → `-E2BIG`; `len` 0 → `-EINVAL`; `len * count` or
    /// `base + len * count` overflowing → `-EOVERFLOW`; `first_bid` above 65535 →
    /// `-E2BIG`; `first_bid + count` above 65536 → `-EINVAL`. On error nothing is added.
    /// A group holds at most 65535 buffers ([`MAX_BUFS_PER_GROUP`]): as in
    /// `io_add_buffers`, the buffers past that are not added, and the request
    /// is still a success if any was (`-EOVERFLOW` if none was).
    pub fn provide(
        &mut self,
        base: u64,
        len: u32,
        count: u32,
        first_bid: u32,
    ) -> Result<(), Errno> {
        if count == 0 || count > MAX_BIDS_PER_BGID {
            return Err(errno::E2BIG);
        }
        if len == 0 {
            return Err(errno::EINVAL);
        }
        let size = u64::from(len)
            .checked_mul(u64::from(count))
            .ok_or(errno::EOVERFLOW)?;
        base.checked_add(size).ok_or(errno::EOVERFLOW)?;
        if first_bid > u32::from(u16::MAX) {
            return Err(errno::E2BIG);
        }
        if first_bid + count > MAX_BIDS_PER_BGID {
            return Err(errno::EINVAL);
        }
        let buf_len = len.min(MAX_RW_COUNT);
        let room = MAX_BUFS_PER_GROUP - self.bufs.len();
        if room == 0 {
            return Err(errno::EOVERFLOW);
        }
        let count = count.min(room as u32);
        self.bufs.reserve(count as usize);
        for i in 0..count {
            self.bufs.push_back(IoUringBuf {
                addr: base + u64::from(i) * u64::from(len),
                len: buf_len,
                bid: (first_bid + i) as u16,
                resv: 0,
            });
        }
        Ok(())
    }

    /// Removes up to `count` buffers from the front; returns how many were removed
    /// (`IORING_OP_REMOVE_BUFFERS`).
    pub fn remove(&mut self, count: u32) -> u32 {
        let n = (count as usize).min(self.bufs.len());
        self.bufs.drain(..n);
        n as u32
    }

    /// Whether the group holds no buffer.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// The buffer a transfer would use next.
    #[inline]
    pub fn peek(&self) -> Option<IoUringBuf> {
        self.bufs.front().copied()
    }

    /// Consumes the front buffer (after a successful transfer into it).
    #[inline]
    pub fn consume(&mut self) {
        self.bufs.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provide_splits_and_numbers_buffers() {
        let mut g = LegacyGroup::default();
        assert!(g.bufs.is_empty());
        g.provide(0x10_000, 512, 3, 7).unwrap();
        g.provide(0x90_000, 64, 1, 100).unwrap();
        assert_eq!(g.bufs.len(), 4);
        let mut got = vec![];
        while let Some(b) = g.peek() {
            got.push((b.addr, b.len, b.bid));
            g.consume();
        }
        assert_eq!(
            got,
            [
                (0x10_000, 512, 7),
                (0x10_200, 512, 8),
                (0x10_400, 512, 9),
                (0x90_000, 64, 100)
            ]
        );
    }

    #[test]
    fn provide_rejects_like_the_kernel() {
        let mut g = LegacyGroup::default();
        assert_eq!(g.provide(0x1000, 16, 0, 0), Err(errno::E2BIG));
        assert_eq!(g.provide(0x1000, 16, 65537, 0), Err(errno::E2BIG));
        assert_eq!(g.provide(0x1000, 0, 1, 0), Err(errno::EINVAL));
        assert_eq!(g.provide(0x1000, 16, 1, 65536), Err(errno::E2BIG));
        assert_eq!(g.provide(0x1000, 16, 2, 65535), Err(errno::EINVAL));
        assert_eq!(g.provide(u64::MAX - 10, 16, 1, 0), Err(errno::EOVERFLOW));
        assert!(g.bufs.is_empty(), "nothing added on error");
        // Limits themselves are fine.
        assert_eq!(g.provide(0x1000, 1, 1, 65535), Ok(()));
        assert_eq!(g.peek().unwrap().bid, 65535);
        // A group holds at most 65535 buffers: the rest of a PROVIDE is not
        // added, a success while any was, then -EOVERFLOW.
        assert_eq!(g.provide(0x1000, 1, 65536, 0), Ok(()));
        assert_eq!(g.bufs.len(), MAX_BUFS_PER_GROUP);
        assert_eq!(g.provide(0, u32::MAX, 1, 0), Err(errno::EOVERFLOW));
        g.remove(1);
        assert_eq!(g.provide(0, u32::MAX, 1, 0), Ok(()));
    }

    #[test]
    fn len_is_capped_at_max_rw_count() {
        let mut g = LegacyGroup::default();
        g.provide(0, u32::MAX, 2, 0).unwrap();
        assert_eq!(g.peek().unwrap().len, MAX_RW_COUNT);
        g.consume();
        assert_eq!(g.peek().unwrap().addr, u64::from(u32::MAX));
    }

    #[test]
    fn remove_takes_from_the_front() {
        let mut g = LegacyGroup::default();
        g.provide(0, 8, 5, 0).unwrap();
        assert_eq!(g.remove(2), 2);
        assert_eq!(g.peek().unwrap().bid, 2);
        assert_eq!(g.remove(10), 3);
        assert_eq!(g.remove(1), 0);
        assert!(g.peek().is_none());
    }
}
