//! Provided-buffer rings (`IORING_REGISTER_PBUF_RING`, `struct io_uring_buf_ring`).
//!
//! A ring of `entries` × 16-byte [`IoUringBuf`] entries in shared memory. The app
//! ([`BufRing`]) writes entries and store-releases the `u16` tail, which overlays
//! `bufs[0].resv` (byte 14). The engine ([`BufRingConsumer`]) load-acquires the tail,
//! reads the entry at its private head, and advances the head only when a transfer
//! into that buffer succeeded. The app learns which buffers were consumed from the
//! CQEs (`IORING_CQE_F_BUFFER`, buffer id in the upper 16 bits of the flags).
//!
//! Entry fields are accessed with relaxed atomic loads and stores (plain `mov`s on
//! x86-64 and arm64): an app that rewrites an entry the engine is reading gets a torn
//! buffer description, never undefined behaviour, and the tail stored into entry 0's
//! `resv` never overlaps a non-atomic access.

use core::marker::PhantomData;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::abi::{IoUringBuf, BUF_RING_TAIL_OFFSET};
use crate::mem::{HugePolicy, MemError, Region};
use crate::proto::{BufConsumer, BufProducer, Slots};

const _: () = assert!(offset_of!(IoUringBuf, resv) == BUF_RING_TAIL_OFFSET);

/// Largest number of entries of a buffer ring (a power of two below 65536).
pub const MAX_BUF_RING_ENTRIES: u32 = 32768;

/// What a provided-buffer ring's registration flags (`IOU_PBUF_RING_*`)
/// ask of ringline: whether the ring is incremental (`IOU_PBUF_RING_INC`).
/// `None` for any other bit, which is `-EINVAL` (`IOU_PBUF_RING_MMAP`, a
/// ring the kernel allocates: ringline's rings are always the
/// application's memory).
pub fn incremental_flag(flags: u16) -> Option<bool> {
    (flags & !crate::abi::IOU_PBUF_RING_INC == 0)
        .then_some(flags & crate::abi::IOU_PBUF_RING_INC != 0)
}

/// Errors of [`BufRing::new`].
#[derive(Debug, thiserror::Error)]
pub enum BufRingError {
    /// `entries` is 0, not a power of two, or 65536 or more (`-EINVAL`).
    #[error("invalid buffer ring size (a power of two up to 32768)")]
    InvalidEntries,
    /// The ring memory could not be mapped.
    #[error(transparent)]
    Mem(#[from] MemError),
}

impl BufRingError {
    /// The negative errno `IORING_REGISTER_PBUF_RING` would return.
    pub fn errno(&self) -> i32 {
        match self {
            BufRingError::InvalidEntries => -libc::EINVAL,
            BufRingError::Mem(_) => -libc::ENOMEM,
        }
    }
}

/// What keeps a ring's memory mapped.
#[derive(Debug)]
enum Keep {
    /// The ring's own mapping ([`BufRing::new`]).
    Owned(#[allow(dead_code)] Region),
    /// A part of a mapping shared with others ([`BufRing::in_region`]).
    Part(#[allow(dead_code)] Arc<Region>),
    /// Application memory the caller vouched for ([`BufRingConsumer::from_raw`]).
    Raw,
}

#[derive(Debug)]
struct Shared {
    /// Keeps the memory at `base` mapped for as long as either half lives.
    _keep: Keep,
    /// Start of the entries: the region's start, or the application's pointer.
    base: core::ptr::NonNull<u8>,
    entries: u32,
}

// SAFETY: `base` goes only to the atomic accessors below; the memory is the owned Region
// or application memory valid for the ring's lifetime (BufRingConsumer::from_raw's
// contract); atomic accesses only, so sharing the pointer cannot make a data race.
unsafe impl Send for Shared {}
// SAFETY: as for Send: &Shared gives only atomic access to the memory.
unsafe impl Sync for Shared {}

impl Shared {
    /// The ring tail, `bufs[0].resv`.
    fn tail(&self) -> &AtomicU16 {
        // SAFETY: byte 14 is inside the first 16-byte entry and 2-aligned (16-aligned base
        // that lives as long as `self`); every access to these bytes is atomic (BufSlots never
        // touches `resv`).
        unsafe { AtomicU16::from_ptr(self.base.as_ptr().add(BUF_RING_TAIL_OFFSET).cast()) }
    }

    fn slots(&self) -> BufSlots<'_> {
        BufSlots {
            base: self.base.as_ptr().cast::<IoUringBuf>(),
            _region: PhantomData,
        }
    }
}

/// The entries as [`Slots`]: field-wise relaxed atomic copies of `addr`, `len`, `bid`,
/// never `resv` (entry 0's `resv` is the tail).
struct BufSlots<'a> {
    base: *mut IoUringBuf,
    _region: PhantomData<&'a Region>,
}

impl BufSlots<'_> {
    /// The three atomics of entry `idx`.
    ///
    /// # Safety
    ///
    /// `idx` is below the ring's entry count.
    unsafe fn fields(&self, idx: u32) -> (&AtomicU64, &AtomicU32, &AtomicU16) {
        // SAFETY: idx < entries (caller): the entry is inside the page-aligned region, which
        // outlives 'self, and addr (0), len (8), bid (12) of a 16-byte entry are aligned for
        // their atomics, through which every access to entry fields goes.
        unsafe {
            let e = self.base.add(idx as usize);
            (
                AtomicU64::from_ptr(core::ptr::addr_of_mut!((*e).addr)),
                AtomicU32::from_ptr(core::ptr::addr_of_mut!((*e).len)),
                AtomicU16::from_ptr(core::ptr::addr_of_mut!((*e).bid)),
            )
        }
    }
}

impl Slots for BufSlots<'_> {
    type Item = IoUringBuf;

    #[inline]
    unsafe fn read(&self, idx: u32) -> IoUringBuf {
        // SAFETY: idx < entries per the trait contract.
        let (addr, len, bid) = unsafe { self.fields(idx) };
        // Relaxed: the entry was published by the app's store-release of the tail, which
        // the engine load-acquired (BufConsumer::available) before calling read.
        IoUringBuf {
            addr: addr.load(Ordering::Relaxed),
            len: len.load(Ordering::Relaxed),
            bid: bid.load(Ordering::Relaxed),
            resv: 0,
        }
    }

    #[inline]
    unsafe fn write(&self, idx: u32, item: IoUringBuf) {
        // SAFETY: idx < entries per the trait contract.
        let (addr, len, bid) = unsafe { self.fields(idx) };
        // Relaxed: published to the engine by the app's later store-release of the tail
        // (BufProducer::advance).
        addr.store(item.addr, Ordering::Relaxed);
        len.store(item.len, Ordering::Relaxed);
        bid.store(item.bid, Ordering::Relaxed);
    }
}

/// The application half of a provided-buffer ring (liburing's `io_uring_buf_ring` and
/// its `io_uring_buf_ring_add` / `_advance` helpers). `Send`.
#[derive(Debug)]
pub struct BufRing {
    shared: Arc<Shared>,
    prod: BufProducer,
}

/// The engine half of a provided-buffer ring: the private head. `Send`.
#[derive(Debug)]
pub struct BufRingConsumer {
    shared: Arc<Shared>,
    cons: BufConsumer,
    /// `IOU_PBUF_RING_INC`: buffers are consumed a part at a time.
    inc: bool,
}

impl BufRing {
    /// Allocates a ring of `entries` (a power of two, at most 32768) 16-byte entries,
    /// page aligned, tail 0, and returns both halves.
    pub fn new(entries: u32, huge: HugePolicy) -> Result<(BufRing, BufRingConsumer), BufRingError> {
        if entries == 0 || !entries.is_power_of_two() || entries > MAX_BUF_RING_ENTRIES {
            return Err(BufRingError::InvalidEntries);
        }
        let region = Region::new(entries as usize * size_of::<IoUringBuf>(), huge)?;
        let base = core::ptr::NonNull::new(region.as_ptr()).expect("mmap never returns null");
        let shared = Arc::new(Shared {
            _keep: Keep::Owned(region),
            base,
            entries,
        });
        Ok(Self::halves(shared))
    }

    /// A ring of `entries` in `region` at byte `offset` (16-aligned, the
    /// ring inside the region), tail 0, and both halves: for a ring whose
    /// memory must lie in a region another process maps too (an application
    /// attached to `ringline serve`). The halves keep the region mapped.
    /// Every access to the ring's bytes is atomic, so another mapping's
    /// writer (even a hostile one) makes the entries wrong, never a data
    /// race; `offset` should come from an allocator that gives each ring its
    /// own bytes.
    pub fn in_region(
        region: Arc<Region>,
        offset: usize,
        entries: u32,
    ) -> Result<(BufRing, BufRingConsumer), BufRingError> {
        if entries == 0 || !entries.is_power_of_two() || entries > MAX_BUF_RING_ENTRIES {
            return Err(BufRingError::InvalidEntries);
        }
        let bytes = entries as usize * size_of::<IoUringBuf>();
        if !offset.is_multiple_of(16) || offset.checked_add(bytes).is_none_or(|e| e > region.len())
        {
            return Err(BufRingError::InvalidEntries);
        }
        let base = core::ptr::NonNull::new(region.as_ptr().wrapping_add(offset))
            .expect("a mapping never starts at null");
        let shared = Arc::new(Shared {
            _keep: Keep::Part(region),
            base,
            entries,
        });
        // Start empty whatever the bytes held: the tail is the only word the
        // consumer reads before the producer publishes entries.
        shared.tail().store(0, Ordering::Release);
        Ok(Self::halves(shared))
    }

    fn halves(shared: Arc<Shared>) -> (BufRing, BufRingConsumer) {
        (
            BufRing {
                shared: shared.clone(),
                prod: BufProducer::new(shared.entries),
            },
            BufRingConsumer {
                cons: BufConsumer::new(shared.entries),
                shared,
                inc: false,
            },
        )
    }

    /// Number of entries.
    pub fn entries(&self) -> u32 {
        self.shared.entries
    }

    /// `entries - 1` (`io_uring_buf_ring_mask`).
    pub fn mask(&self) -> u32 {
        self.shared.entries - 1
    }

    /// Address of the ring (`ring_addr` of `struct io_uring_buf_reg`).
    pub fn as_ptr(&self) -> *mut IoUringBuf {
        self.shared.base.as_ptr().cast()
    }

    /// Writes buffer `(addr, len, bid)` at `bufs[(tail + offset) & mask]`, without
    /// publishing it (`io_uring_buf_ring_add`). Publish with [`BufRing::advance`].
    ///
    /// As with liburing, the app must only refill slots whose previous buffer it has
    /// seen consumed (in a CQE); overwriting a published, unconsumed entry hands the
    /// engine a different buffer than intended.
    ///
    /// # Safety
    ///
    /// Once an [`advance`](BufRing::advance) publishes this entry, `addr .. addr + len`
    /// is the engine's: it must be valid for writes and not accessed by the application
    /// until the engine hands the buffer back (a CQE with `IORING_CQE_F_BUFFER` and
    /// this `bid`; the data it received is then the application's to read) or the
    /// group is unregistered (`Ring::unregister_buf_ring` returned). An entry
    /// overwritten before it is published promises nothing.
    #[inline]
    pub unsafe fn add(&mut self, addr: u64, len: u32, bid: u16, offset: u32) {
        let buf = IoUringBuf {
            addr,
            len,
            bid,
            resv: 0,
        };
        // SAFETY: the slots hold `entries` == mask + 1 entries and BufRing is the only
        // producer (one per ring, &mut self). BufSlots accesses are atomic, so even an
        // entry the engine is reading cannot cause a data race.
        unsafe { self.prod.add(&self.shared.slots(), buf, offset) }
    }

    /// Publishes `n` added buffers: store-release `tail += n` (`io_uring_buf_ring_advance`).
    ///
    /// # Safety
    ///
    /// Each of the `n` entries from the tail on must have been written by
    /// [`add`](BufRing::add) since the previous `advance` (whose contract then holds
    /// for its buffer). An entry left from an earlier lap names a buffer the engine
    /// already handed back, which the application may have reused or freed.
    #[inline]
    pub unsafe fn advance(&mut self, n: u16) {
        self.prod.advance(self.shared.tail(), n);
    }

    /// [`BufRing::add`] at offset 0, then [`BufRing::advance`] by 1.
    ///
    /// # Safety
    ///
    /// The contract of [`add`](BufRing::add) for `addr .. addr + len`.
    #[inline]
    pub unsafe fn add_and_advance(&mut self, addr: u64, len: u32, bid: u16) {
        // SAFETY: the caller upholds `add`'s contract for this buffer, and the one entry
        // published is the one just written, as `advance` requires.
        unsafe {
            self.add(addr, len, bid, 0);
            self.advance(1);
        }
    }

    /// The tail (private copy; the app is its only writer).
    pub fn tail(&self) -> u16 {
        self.prod.tail()
    }
}

impl BufRingConsumer {
    /// The engine half of a buffer ring the application mapped itself
    /// (`io_uring_register_buf_ring` with `ring_addr`, as liburing 2.3 programs do).
    /// The consumer starts at head 0, as the kernel does at registration.
    ///
    /// # Safety
    ///
    /// `addr` points to `entries * 16` bytes, 16-byte aligned, that stay mapped and
    /// are accessed by others only as a buffer ring (entry writes, then a
    /// store-release of the `u16` tail at byte 14) until the consumer and every
    /// clone of its state are dropped (the ring is unregistered and its engine
    /// gone), as `IORING_REGISTER_PBUF_RING` requires of an application.
    pub unsafe fn from_raw(addr: *mut u8, entries: u32) -> Result<Self, BufRingError> {
        if entries == 0 || !entries.is_power_of_two() || entries > MAX_BUF_RING_ENTRIES {
            return Err(BufRingError::InvalidEntries);
        }
        let base = match core::ptr::NonNull::new(addr) {
            Some(b) if (addr as usize).is_multiple_of(16) => b,
            _ => return Err(BufRingError::InvalidEntries),
        };
        Ok(BufRingConsumer {
            shared: Arc::new(Shared {
                _keep: Keep::Raw,
                base,
                entries,
            }),
            cons: BufConsumer::new(entries),
            inc: false,
        })
    }

    /// Number of entries.
    pub fn entries(&self) -> u32 {
        self.shared.entries
    }

    /// The address of the ring's first entry (`ring_addr` of `struct
    /// io_uring_buf_reg`): what a driver that registers the ring elsewhere
    /// (`ringline serve`) sends.
    pub fn addr(&self) -> u64 {
        self.shared.base.as_ptr() as u64
    }

    /// Buffers published and not consumed: `acquire(tail) - head`, at most `entries`.
    #[inline]
    pub fn available(&self) -> u16 {
        self.cons.available(self.shared.tail())
    }

    /// A copy of the buffer at the head, if one is available (`resv` reads as 0).
    #[inline]
    pub fn peek(&self) -> Option<IoUringBuf> {
        // SAFETY: the slots hold `entries` entries and this is the only consumer (one
        // per ring, consume takes &mut self).
        unsafe { self.cons.peek(self.shared.tail(), &self.shared.slots()) }
    }

    /// Consumes the buffer at the head: call after a successful transfer into it.
    #[inline]
    pub fn consume(&mut self) {
        debug_assert!(self.available() > 0, "consume on an empty buffer ring");
        self.cons.consume();
    }

    /// The private head (what `IORING_REGISTER_PBUF_STATUS` reports).
    pub fn head(&self) -> u16 {
        self.cons.head()
    }

    /// Makes the ring incremental (`IOU_PBUF_RING_INC`, see
    /// [`incremental_flag`]): see [`BufRingConsumer::consume_bytes`].
    pub fn set_incremental(&mut self) {
        self.inc = true;
    }

    /// Whether the ring is incremental.
    pub fn incremental(&self) -> bool {
        self.inc
    }

    /// Consumes `used` bytes of the buffer at the head (which must be
    /// available). An ordinary ring consumes the whole buffer. An incremental
    /// one (Linux's `io_kbuf_inc_commit`) moves the entry's `addr` past the
    /// bytes used and shrinks its `len`, in the shared entry, and keeps the
    /// buffer at the head while bytes are left (or nothing was used); it
    /// advances the head once the buffer is used up. Returns whether the
    /// buffer stays at the head (the CQE's `IORING_CQE_F_BUF_MORE`).
    #[inline]
    pub fn consume_bytes(&mut self, used: u32) -> bool {
        if !self.inc {
            self.consume();
            return false;
        }
        debug_assert!(self.available() > 0, "consume on an empty buffer ring");
        let idx = u32::from(self.cons.head()) & (self.shared.entries - 1);
        let slots = self.shared.slots();
        // SAFETY: idx is masked below the entry count.
        let (addr, len, _) = unsafe { slots.fields(idx) };
        // Relaxed: the entry was published by the app's release of the tail
        // (acquired in `available`/`peek`); the app reads these fields back
        // only after the CQE that reports them, which the CQ's release orders.
        let buf_len = len.load(Ordering::Relaxed);
        let this = used.min(buf_len);
        let left = buf_len - this;
        if left != 0 || this == 0 {
            addr.store(
                addr.load(Ordering::Relaxed).wrapping_add(u64::from(this)),
                Ordering::Relaxed,
            );
            len.store(left, Ordering::Relaxed);
            return true;
        }
        len.store(0, Ordering::Relaxed);
        self.cons.consume();
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_in_a_region_stays_inside_it() {
        let region = Arc::new(Region::new(4096, HugePolicy::Never).unwrap());
        // Past the end, straddling it, misaligned, a bad size: refused.
        for (off, n) in [(4096, 1), (4096 - 16, 2), (8, 4), (0, 3)] {
            assert!(
                BufRing::in_region(region.clone(), off, n).is_err(),
                "{off} {n}"
            );
        }
        let (mut ring, cons) = BufRing::in_region(region.clone(), 4096 - 64, 4).unwrap();
        assert_eq!(cons.addr(), region.as_ptr() as u64 + 4096 - 64);
        assert_eq!(cons.available(), 0);
        // SAFETY: the entry is only read back, never used as a buffer.
        unsafe { ring.add_and_advance(0x1000, 64, 3) };
        assert_eq!(
            cons.peek().map(|b| (b.addr, b.len, b.bid)),
            Some((0x1000, 64, 3))
        );
        // The halves keep the region mapped after its last other owner goes.
        drop(region);
        assert_eq!(cons.available(), 1);
    }

    #[test]
    fn sizes_are_validated() {
        for bad in [0, 3, 6, 65536, 65535, 1 << 20] {
            assert!(
                matches!(
                    BufRing::new(bad, HugePolicy::Never),
                    Err(BufRingError::InvalidEntries)
                ),
                "{bad}"
            );
        }
        assert_eq!(BufRingError::InvalidEntries.errno(), -22);
        for good in [1, 2, 256, 32768] {
            let (r, c) = BufRing::new(good, HugePolicy::Never).unwrap();
            assert_eq!(r.entries(), good);
            assert_eq!(r.mask(), good - 1);
            assert_eq!(c.entries(), good);
            assert_eq!(r.as_ptr() as usize % 4096, 0);
        }
    }

    #[test]
    fn add_advance_peek_consume_with_wrap() {
        let (mut r, mut c) = BufRing::new(4, HugePolicy::Never).unwrap();
        assert_eq!(c.available(), 0);
        assert!(c.peek().is_none());
        // liburing style: add several at offsets, then one advance.
        for i in 0..4u16 {
            // SAFETY: the addresses are never dereferenced: no engine consumes this
            // ring, the test's consumer only reads the entries back.
            unsafe {
                r.add(
                    0x1000 * u64::from(i + 1),
                    100 + u32::from(i),
                    i,
                    u32::from(i),
                )
            };
        }
        assert_eq!(c.available(), 0, "not published before advance");
        // SAFETY: as above; the four entries were just added.
        unsafe { r.advance(4) };
        assert_eq!(r.tail(), 4);
        assert_eq!(c.available(), 4);
        // The tail lives in bufs[0].resv; entry 0's fields are intact.
        let e0 = c.peek().unwrap();
        assert_eq!(
            e0,
            IoUringBuf {
                addr: 0x1000,
                len: 100,
                bid: 0,
                resv: 0
            }
        );
        // SAFETY: reading the raw bytes 14..16 of the ring, inside the region; no
        // concurrent writer in this test.
        let raw_tail = unsafe { r.as_ptr().cast::<u8>().add(14).cast::<u16>().read() };
        assert_eq!(raw_tail, 4);

        let mut bid = 0u16;
        for round in 0..70_000u32 {
            let b = c.peek().unwrap();
            assert_eq!(b.bid, bid, "round {round}");
            c.consume();
            // Recycle it (the app saw its CQE).
            // SAFETY: as above, the address is never dereferenced.
            unsafe { r.add_and_advance(b.addr, b.len, b.bid) };
            bid = (bid + 1) % 4;
            assert_eq!(c.available(), 4);
        }
        assert_eq!(c.head(), (70_000u32 % 65_536) as u16);
        assert_eq!(r.tail(), (70_004u32 % 65_536) as u16);
        // Drain across the u16 wrap.
        for _ in 0..4 {
            c.consume();
        }
        assert_eq!(c.available(), 0);
        assert!(c.peek().is_none());
    }

    #[test]
    fn halves_are_send() {
        fn send<T: Send>() {}
        send::<BufRing>();
        send::<BufRingConsumer>();
    }
}
