//! Socket buffer memory: one lazily committed mapping holding every
//! connection slot's receive and transmit buffers.
//!
//! A connection's buffers decide its window (smoltcp advertises the receive
//! buffer's free space and negotiates window scaling from its capacity), so
//! a path with a large bandwidth-delay product needs large buffers: the
//! default 4 MiB fills about 33 Gbit/s over a 1 ms round trip. Giving 100k connections
//! that much committed memory would not fit, so the buffers are reserved,
//! not committed: one anonymous `MAP_NORESERVE` mapping for all slots,
//! whose pages the kernel backs only when first written. smoltcp's ring
//! buffers start again at offset 0 whenever they empty, so a request/response
//! connection touches only the first pages of its buffers, and a bulk
//! transfer touches as many as its window needed. When a slot is freed after
//! using more than [`KEEP`] bytes, [`BufArena::trim`] gives the pages past
//! that back to the kernel (`MADV_DONTNEED`, which also zeroes them): a
//! system call per closed bulk connection, never per packet.
//!
//! The one opt-out from `#![deny(unsafe_code)]` here: the mapping and the
//! `'static` slices smoltcp's `SocketSet<'static>` needs. Contract: the
//! arena is dropped after every socket built on its slices (the connection
//! table declares it after its slab, so fields drop in that order), and each
//! slot's slices are handed out once.
#![allow(unsafe_code)]

use std::io;
use std::ptr::NonNull;

/// Bytes of each buffer a freed slot keeps committed (the part every
/// connection uses).
pub(crate) const KEEP: usize = 64 * 1024;

/// See the module docs.
pub(crate) struct BufArena {
    base: NonNull<u8>,
    len: usize,
    rx: usize,
    tx: usize,
    slots: usize,
}

// SAFETY: the arena is plain memory owned by one engine; moving it to
// another thread moves that ownership (the engine runs on one thread).
unsafe impl Send for BufArena {}

impl BufArena {
    /// Reserves `slots` slots of `rx + tx` bytes (page-rounded each).
    pub(crate) fn new(slots: usize, rx: usize, tx: usize) -> io::Result<Self> {
        let page = 4096;
        let (rx_r, tx_r) = (rx.next_multiple_of(page), tx.next_multiple_of(page));
        let len = slots
            .max(1)
            .checked_mul(rx_r + tx_r)
            .ok_or_else(|| io::Error::other("socket buffer arena size overflows"))?;
        // MAP_NORESERVE: pages are committed on first write only.
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>()).expect("mmap returned null");
        Ok(BufArena {
            base,
            len,
            rx: rx_r,
            tx: tx_r,
            slots: slots.max(1),
        })
    }

    fn offset(&self, slot: usize) -> usize {
        assert!(slot < self.slots, "slot {slot} outside the arena");
        slot * (self.rx + self.tx)
    }

    /// Slot `slot`'s receive and transmit buffers, `rx` and `tx` bytes long.
    ///
    /// # Safety
    ///
    /// Called at most once per slot for the arena's life, and everything
    /// built on the slices is dropped before the arena.
    pub(crate) unsafe fn take(
        &self,
        slot: usize,
        rx: usize,
        tx: usize,
    ) -> (&'static mut [u8], &'static mut [u8]) {
        assert!(rx <= self.rx && tx <= self.tx);
        // off + self.rx + self.tx <= len: `offset` asserts slot < slots.
        let off = self.offset(slot);
        // SAFETY: the two ranges are disjoint, inside the live mapping, and
        // (the caller's contract) taken once, their users dropped first.
        unsafe {
            let p = self.base.as_ptr().add(off);
            (
                std::slice::from_raw_parts_mut(p, rx),
                std::slice::from_raw_parts_mut(p.add(self.rx), tx),
            )
        }
    }

    /// Gives back to the kernel the pages of `slot`'s buffers past the
    /// first [`KEEP`] bytes of each (they read as zeros afterwards). The
    /// slot's buffers must be empty (its socket is closed and cleared).
    pub(crate) fn trim(&self, slot: usize) {
        let off = self.offset(slot);
        for (start, len) in [(off, self.rx), (off + self.rx, self.tx)] {
            if len > KEEP {
                // MADV_DONTNEED only drops page contents (the empty socket
                // holds none) and keeps the mapping valid.
                // SAFETY: the range lies inside the mapping (see `take`).
                unsafe {
                    libc::madvise(
                        self.base.as_ptr().add(start + KEEP).cast(),
                        len - KEEP,
                        libc::MADV_DONTNEED,
                    );
                }
            }
        }
    }
}

impl BufArena {
    /// Where `p` lies in one of `slot`'s buffers (`rx`: the receive one,
    /// else the transmit one), as an offset, if it does.
    pub(crate) fn offset_in(&self, slot: usize, rx: bool, p: *const u8) -> Option<usize> {
        let (skip, len) = if rx { (0, self.rx) } else { (self.rx, self.tx) };
        let start = self.base.as_ptr() as usize + self.offset(slot) + skip;
        let at = (p as usize).checked_sub(start)?;
        (at <= len).then_some(at)
    }

    /// Gives back the pages of one of `slot`'s buffers (`rx`: the receive
    /// one, else the transmit one), a ring of `cap` bytes from its start
    /// (the socket's capacity, at most the slot's), outside the span that
    /// starts at offset `keep_from` and holds `held` bytes of live data and
    /// [`KEEP`] more (where the next bytes go), wrapping around at `cap` as
    /// the ring does. Returns whether any page was given back. The caller
    /// knows no byte of the ring outside that span is still needed (they
    /// read as zeros after).
    pub(crate) fn trim_ring(
        &self,
        slot: usize,
        rx: bool,
        cap: usize,
        keep_from: usize,
        held: usize,
    ) -> bool {
        let (start, whole) = if rx {
            (self.offset(slot), self.rx)
        } else {
            (self.offset(slot) + self.rx, self.tx)
        };
        let cap = cap.min(whole);
        let page = 4096;
        let drop_range = |lo: usize, hi: usize| {
            let (lo, hi) = (lo.next_multiple_of(page), hi / page * page);
            if hi > lo {
                // SAFETY: lo..hi lies inside this slot's buffer (both are
                // clamped to 0..cap), inside the mapping; MADV_DONTNEED keeps
                // the mapping valid and the caller needs none of the bytes.
                unsafe {
                    libc::madvise(
                        self.base.as_ptr().add(start + lo).cast(),
                        hi - lo,
                        libc::MADV_DONTNEED,
                    );
                }
            }
            hi > lo
        };
        // Past the socket's ring (a slot whose last connection had a larger
        // buffer): nothing of this one (not counted as a trim: it is most
        // often not committed).
        drop_range(cap, whole);
        // Kept: [a, b), page-widened, wrapping at `cap`.
        let from = keep_from % cap.max(1);
        let a = from / page * page;
        let b = (from + held + KEEP).next_multiple_of(page);
        if b - a >= cap {
            return false;
        }
        if b <= cap {
            drop_range(0, a) | drop_range(b, cap)
        } else {
            // The kept span wraps: [a, cap) and [0, b - cap) stay.
            drop_range(b - cap, a)
        }
    }
}

impl Drop for BufArena {
    fn drop(&mut self) {
        // SAFETY: base/len are the mapping made in `new`; by the type's
        // contract nothing built on it outlives the arena.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident pages of `len` bytes at `p` (mincore: exact, unlike RSS,
    /// which other tests running in parallel move).
    fn resident_pages(p: *const u8, len: usize) -> usize {
        let mut v = vec![0u8; len.div_ceil(4096)];
        // SAFETY: p..p+len is inside a live mapping; v holds a byte per page.
        let r = unsafe { libc::mincore(p as *mut _, len, v.as_mut_ptr()) };
        assert_eq!(r, 0);
        v.iter().filter(|&&b| b & 1 != 0).count()
    }

    #[test]
    fn slots_are_disjoint_lazily_committed_and_trimmed() {
        // 4096 slots of 2 x 1 MiB: 8 GiB reserved.
        let a = BufArena::new(4096, 1 << 20, 1 << 20).unwrap();
        // SAFETY: each slot once; the slices die before `a`.
        let (r0, t0) = unsafe { a.take(0, 1 << 20, 1 << 20) };
        // SAFETY: as above, slot 1 once.
        let (r1, _t1) = unsafe { a.take(1, 1 << 20, 1 << 20) };
        r0.fill(1);
        t0[..100].fill(2);
        assert!(r1[0] == 0 && r1[(1 << 20) - 1] == 0, "slots do not overlap");
        let (base, len) = (a.base.as_ptr(), a.len);
        // r0's 256 pages, t0's first, and the two of r1 read (zero pages).
        assert_eq!(resident_pages(base, len), 256 + 1 + 2, "only used pages");
        a.trim(0);
        assert_eq!(resident_pages(base, len), KEEP / 4096 + 1 + 2);
        // Volatile reads: the kernel changed the bytes, not this slice.
        // SAFETY: both indexes are inside r0.
        let (kept, dropped) = unsafe {
            (
                std::ptr::read_volatile(r0.as_ptr().add(KEEP - 1)),
                std::ptr::read_volatile(r0.as_ptr().add(KEEP)),
            )
        };
        assert_eq!(kept, 1, "the first KEEP bytes stay");
        assert_eq!(dropped, 0, "the rest was given back");
    }

    #[test]
    fn trim_ring_keeps_the_span_from_the_read_position_wrapping() {
        let a = BufArena::new(2, 1 << 20, 1 << 20).unwrap();
        // SAFETY: slot 0 once; the slices die before `a`.
        let (r, t) = unsafe { a.take(0, 1 << 20, 1 << 20) };
        let rp = r.as_ptr();
        r.fill(1);
        t.fill(2);
        let res = |p: *const u8, len| resident_pages(p, len);
        assert_eq!(res(rp, 1 << 20), 256);
        // Kept from 100 KiB on: the pages of [100 KiB, 164 KiB) and one more.
        assert_eq!(
            a.offset_in(0, true, rp.wrapping_add(100 << 10)),
            Some(100 << 10)
        );
        assert!(a.trim_ring(0, true, 1 << 20, 100 << 10, 0));
        assert_eq!(res(rp, 1 << 20), KEEP / 4096);
        // SAFETY: inside r.
        assert_eq!(unsafe { std::ptr::read_volatile(rp.add(100 << 10)) }, 1);
        // Wrapping: kept from 1 MiB - 8 KiB: two pages at the end, the rest at the start.
        r.fill(1);
        assert!(a.trim_ring(0, true, 1 << 20, (1 << 20) - 8192, 0));
        assert_eq!(res(rp, 1 << 20), KEEP / 4096);
        // SAFETY: inside r.
        let (end, start, gone) = unsafe {
            (
                std::ptr::read_volatile(rp.add((1 << 20) - 1)),
                std::ptr::read_volatile(rp.add(KEEP - 8192 - 1)),
                std::ptr::read_volatile(rp.add(KEEP + 4096)),
            )
        };
        assert_eq!((end, start, gone), (1, 1, 0));
        // The transmit buffer: kept from 0; slot 1 untouched.
        assert!(a.trim_ring(0, false, 1 << 20, 0, 0));
        assert_eq!(res(t.as_ptr(), 1 << 20), KEEP / 4096);
        assert_eq!(a.offset_in(1, true, rp), None);
        assert_eq!(a.offset_in(0, false, t.as_ptr().wrapping_add(5)), Some(5));
        assert_eq!(a.offset_in(0, false, rp), None);
    }

    /// A ring holding data keeps it whole, from an unaligned read position,
    /// wrapping at the socket's capacity (smaller than the slot's), plus
    /// KEEP bytes after it; a span as large as the ring keeps everything.
    #[test]
    fn trim_ring_keeps_held_data_wrapping_at_the_socket_capacity() {
        let a = BufArena::new(1, 1 << 20, 1 << 20).unwrap();
        // SAFETY: slot 0 once; the slices die before `a`.
        let (r, _t) = unsafe { a.take(0, 1 << 20, 1 << 20) };
        let rp = r.as_ptr();
        let cap = 512 << 10;
        let read = |i: usize| {
            // SAFETY: i is inside r.
            unsafe { std::ptr::read_volatile(rp.add(i)) }
        };
        r.fill(7);
        // 100,000 bytes held from 500,000: [500,000, 524,288) and [0, 75,712),
        // then KEEP more, to 141,248.
        assert!(a.trim_ring(0, true, cap, 500_000, 100_000));
        let held_end = 500_000 + 100_000 - cap;
        for i in [
            499_712,
            500_000,
            cap - 1,
            0,
            held_end - 1,
            held_end + KEEP - 1,
        ] {
            assert_eq!(read(i), 7, "byte {i} kept");
        }
        for i in [(held_end + KEEP).next_multiple_of(4096), 300_000, 499_711] {
            assert_eq!(read(i), 0, "byte {i} given back");
        }
        // Past the socket's capacity: not its ring, given back too.
        assert_eq!(read(cap), 0);
        r.fill(7);
        assert!(
            !a.trim_ring(0, true, cap, 4096, cap - KEEP),
            "nothing of the ring"
        );
        assert_eq!((read(0), read(cap - 1), read(cap)), (7, 7, 0), "all held");
    }
}
