//! The index protocols of the rings, as small generic helpers.
//!
//! Every atomic ordering of ringline's rings is decided here, once:
//!
//! * [`Producer`] / [`Consumer`]: a single-producer/single-consumer ring of slots with
//!   free-running `u32` head and tail counters. Used for the SQ (app produces, engine
//!   consumes) and the CQ (engine produces, app consumes).
//! * [`BufProducer`] / [`BufConsumer`]: the provided-buffer ring, a `u16` tail written by
//!   the app and a head private to the engine.
//! * [`needs_wakeup`] / [`prepare_sleep`]: the `IORING_SQ_NEED_WAKEUP` handshake between
//!   an app and a polling engine (a Dekker pattern with full fences on both sides).
//!
//! The helpers take the shared counters by reference through the [`Atomic`] traits and
//! the slots through [`Slots`], so the shared-memory rings in [`crate::ring`] and
//! [`crate::bufring`] (core atomics viewing mmap'ed memory) and the loom models in
//! `tests/loom.rs` (loom atomics and `loom::cell::UnsafeCell` slots) run the same code.
//!
//! The pairing, as in the kernel and liburing (io_uring-semantics reference, §1.6):
//!
//! | step | side | operation | pairs with |
//! |---|---|---|---|
//! | write slot, then publish tail | producer | store-release `tail` | consumer's load-acquire of `tail` |
//! | see new entries | consumer | load-acquire `tail` | producer's store-release |
//! | copy slot, then release it | consumer | store-release `head` | producer's load-acquire of `head` |
//! | reuse a slot | producer | load-acquire `head` | consumer's store-release |

use crate::abi::IORING_SQ_NEED_WAKEUP;
use crate::sync::{Atomic, AtomicFlags, Ordering};

/// Load of a consumer-owned head by the producer.
#[inline]
fn load_head<H: Atomic<u32>>(head: &H) -> u32 {
    // The consumer (engine for the SQ, app for the CQ) store-releases head in
    // Consumer::release after copying the slots before it; this load-acquire pairs with
    // it, so the producer's later writes to those slots cannot race with those reads.
    head.load(Ordering::Acquire)
}

/// Load of a producer-owned tail by the consumer.
#[inline]
fn load_tail<T: Atomic<u32>>(tail: &T) -> u32 {
    // The producer (app for the SQ, engine for the CQ) store-releases tail in
    // Producer::publish after writing the slots; this load-acquire pairs with it, so
    // the slot contents are visible before the consumer reads them.
    tail.load(Ordering::Acquire)
}

/// `entries - (tail - head)`, 0 when the head is ahead of the tail or too far behind.
#[inline]
fn free_slots(tail: u32, head: u32, entries: u32) -> u32 {
    entries.saturating_sub(tail.wrapping_sub(head))
}

/// Storage for the entries of a ring, indexed by masked position.
///
/// Implementations decide how an item is copied in and out (volatile copies of shared
/// memory, loom cells, field-wise copies for buffer rings whose entry 0 overlays the
/// tail). The ring protocol decides *when* a slot may be accessed.
pub trait Slots {
    /// The entry type.
    type Item: Copy;

    /// Copies the item out of slot `idx`.
    ///
    /// # Safety
    ///
    /// `idx` is below the capacity the slots were created with, and the caller is the
    /// side that currently owns slot `idx` under the ring protocol: the consumer between
    /// its load-acquire of a tail that covers the slot and its store-release of a head
    /// past it; no other thread writes the slot meanwhile.
    unsafe fn read(&self, idx: u32) -> Self::Item;

    /// Writes `item` into slot `idx`.
    ///
    /// # Safety
    ///
    /// `idx` is below the capacity the slots were created with, and the caller is the
    /// side that currently owns slot `idx`: the producer, after a load-acquire of a head
    /// that shows the slot free and before its store-release of a tail that covers it;
    /// no other thread reads or writes the slot meanwhile.
    unsafe fn write(&self, idx: u32, item: Self::Item);
}

/// Private state of the producer of a single-producer/single-consumer ring.
///
/// Holds the private tail (liburing's `sqe_tail` for the SQ, the engine's cached
/// `cq.tail` for the CQ) and a cached copy of the consumer's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer {
    tail: u32,
    head_cache: u32,
    entries: u32,
}

impl Producer {
    /// A producer for a ring of `entries` slots (a power of two) whose shared head and
    /// tail both start at `start`.
    pub const fn new(entries: u32, start: u32) -> Self {
        assert!(entries.is_power_of_two());
        Producer {
            tail: start,
            head_cache: start,
            entries,
        }
    }

    /// The private tail: one past the last reserved slot (published or not).
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// Number of slots in the ring.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// Free slots, reading the consumer's head afresh.
    ///
    /// The head may be written by an untrusted consumer: a head that runs ahead of the
    /// tail or more than `entries` behind it yields 0 (the ring looks full), never more
    /// than `entries`.
    pub fn free<H: Atomic<u32>>(&self, head: &H) -> u32 {
        free_slots(self.tail, load_head(head), self.entries)
    }

    /// Slots reserved and not yet released by the consumer (published or not), reading
    /// the consumer's head afresh; at most `entries`.
    pub fn used<H: Atomic<u32>>(&self, head: &H) -> u32 {
        self.tail.wrapping_sub(load_head(head)).min(self.entries)
    }

    fn cached_free(&self) -> u32 {
        free_slots(self.tail, self.head_cache, self.entries)
    }

    /// Reserves the next slot: returns its index (`tail & mask`) and advances the private
    /// tail, or `None` when the ring is full. The consumer's head is only re-read (with
    /// acquire, see [`Producer::free`]) when the cached copy shows the ring full.
    #[inline]
    pub fn reserve<H: Atomic<u32>>(&mut self, head: &H) -> Option<u32> {
        if self.cached_free() == 0 {
            self.head_cache = load_head(head);
            if self.cached_free() == 0 {
                return None;
            }
        }
        let idx = self.tail & (self.entries - 1);
        self.tail = self.tail.wrapping_add(1);
        Some(idx)
    }

    /// Writes `item` into the next free slot and advances the private tail; hands the
    /// item back when the ring is full. Nothing is visible to the consumer until
    /// [`Producer::publish`].
    ///
    /// # Safety
    ///
    /// This is the only producer of the ring formed by `head`, the tail it publishes to
    /// and `slots` (capacity `entries`), and the consumer follows [`Consumer`]'s protocol.
    #[inline]
    pub unsafe fn push<H: Atomic<u32>, S: Slots>(
        &mut self,
        head: &H,
        slots: &S,
        item: S::Item,
    ) -> Result<(), S::Item> {
        match self.reserve(head) {
            // SAFETY: idx is masked below `entries`; `reserve` load-acquired a head that
            // shows the slot free, and we are the only producer (caller's contract), so
            // we own the slot until we publish a tail past it.
            Some(idx) => unsafe {
                slots.write(idx, item);
                Ok(())
            },
            None => Err(item),
        }
    }

    /// Makes every slot written so far visible to the consumer.
    #[inline]
    pub fn publish<T: Atomic<u32>>(&self, tail: &T) {
        // The producer (app for the SQ, engine for the CQ) store-releases tail after
        // writing the slots; pairs with the consumer's load-acquire in Consumer::ready.
        tail.store(self.tail, Ordering::Release);
    }
}

/// Private state of the consumer of a single-producer/single-consumer ring.
///
/// Holds the private head (the engine's SQ head before `sq_commit`, the app's CQ head)
/// and a cached copy of the producer's tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumer {
    head: u32,
    tail_cache: u32,
    entries: u32,
}

impl Consumer {
    /// A consumer for a ring of `entries` slots (a power of two) whose shared head and
    /// tail both start at `start`.
    pub const fn new(entries: u32, start: u32) -> Self {
        assert!(entries.is_power_of_two());
        Consumer {
            head: start,
            tail_cache: start,
            entries,
        }
    }

    /// The private head: the next slot to consume.
    pub fn head(&self) -> u32 {
        self.head
    }

    /// Number of slots in the ring.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// Entries published and not yet consumed, reading the producer's tail afresh.
    ///
    /// The tail may be written by an untrusted producer: the count is clamped to
    /// `entries` (the kernel's `min(tail - head, entries)`).
    #[inline]
    pub fn ready<T: Atomic<u32>>(&self, tail: &T) -> u32 {
        load_tail(tail).wrapping_sub(self.head).min(self.entries)
    }

    fn cached_ready(&self) -> u32 {
        self.tail_cache.wrapping_sub(self.head).min(self.entries)
    }

    /// Returns the index of the next published slot and advances the private head, or
    /// `None` when nothing is published. The producer's tail is re-read (acquire, see
    /// [`Consumer::ready`]) only when the cached copy shows the ring empty.
    #[inline]
    pub fn next_index<T: Atomic<u32>>(&mut self, tail: &T) -> Option<u32> {
        if self.cached_ready() == 0 {
            self.tail_cache = load_tail(tail);
            if self.cached_ready() == 0 {
                return None;
            }
        }
        let idx = self.head & (self.entries - 1);
        self.head = self.head.wrapping_add(1);
        Some(idx)
    }

    /// Copies the next published item and advances the private head. The slot is handed
    /// back to the producer only by [`Consumer::release`].
    ///
    /// # Safety
    ///
    /// This is the only consumer of the ring formed by `tail`, the head it releases to
    /// and `slots` (capacity `entries`), and the producer follows [`Producer`]'s protocol.
    #[inline]
    pub unsafe fn pop<T: Atomic<u32>, S: Slots>(&mut self, tail: &T, slots: &S) -> Option<S::Item> {
        let idx = self.next_index(tail)?;
        // SAFETY: idx is masked below `entries`; next_index load-acquired a tail that
        // covers the slot and we have not released a head past it, and we are the only
        // consumer (caller's contract), so the producer does not write it.
        Some(unsafe { slots.read(idx) })
    }

    /// Copies the item `offset` places after the private head without consuming it, if
    /// published (reads the tail with acquire).
    ///
    /// # Safety
    ///
    /// As for [`Consumer::pop`].
    #[inline]
    pub unsafe fn peek<T: Atomic<u32>, S: Slots>(
        &self,
        tail: &T,
        slots: &S,
        offset: u32,
    ) -> Option<S::Item> {
        if offset >= self.ready(tail) {
            return None;
        }
        let idx = self.head.wrapping_add(offset) & (self.entries - 1);
        // SAFETY: as in `pop`: the slot is published (acquire above or earlier) and not
        // yet released.
        Some(unsafe { slots.read(idx) })
    }

    /// Advances the private head by `n` consumed entries (not yet released). `n` must
    /// not exceed what [`Consumer::ready`] reported.
    #[inline]
    pub fn advance(&mut self, n: u32) {
        let cached = self.cached_ready();
        self.head = self.head.wrapping_add(n);
        if n > cached {
            // Entries seen through `ready`/`peek` (fresh loads) were consumed past the
            // cached tail: drop the cache so next_index reloads the tail.
            self.tail_cache = self.head;
        }
    }

    /// Hands every consumed slot back to the producer.
    #[inline]
    pub fn release<H: Atomic<u32>>(&self, head: &H) {
        // The consumer (engine for the SQ, app for the CQ) store-releases head after it
        // has finished copying the slots; pairs with the producer's load-acquire in
        // Producer::free / Producer::reserve.
        head.store(self.head, Ordering::Release);
    }
}

/// App side of a provided-buffer ring: the private copy of the `u16` tail.
///
/// The app is the only writer of the tail, so it keeps it privately and only ever
/// store-releases it. It cannot see the engine's head: like liburing, it must not add
/// more buffers than it knows were consumed (it learns that from CQEs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufProducer {
    tail: u16,
    mask: u16,
}

impl BufProducer {
    /// A producer for a ring of `entries` slots (a power of two, at most 32768).
    pub const fn new(entries: u32) -> Self {
        Self::new_at(entries, 0)
    }

    /// As [`BufProducer::new`] with the shared tail starting at `start` instead of 0.
    pub const fn new_at(entries: u32, start: u16) -> Self {
        assert!(entries.is_power_of_two() && entries <= 32768);
        BufProducer {
            tail: start,
            mask: (entries - 1) as u16,
        }
    }

    /// The private tail.
    pub fn tail(&self) -> u16 {
        self.tail
    }

    /// `entries - 1`.
    pub fn mask(&self) -> u16 {
        self.mask
    }

    /// Writes `item` at `(tail + offset) & mask` (liburing's `io_uring_buf_ring_add`).
    /// Invisible to the engine until [`BufProducer::advance`].
    ///
    /// # Safety
    ///
    /// `slots` has capacity `mask + 1`, this is the only producer, and the slot is not
    /// one the engine may still read: the app has seen the CQE of the buffer that was
    /// there before (or the slot was never published).
    #[inline]
    pub unsafe fn add<S: Slots>(&self, slots: &S, item: S::Item, offset: u32) {
        let idx = u32::from(self.tail).wrapping_add(offset) & u32::from(self.mask);
        // SAFETY: idx is masked below the capacity; slot ownership is the caller's
        // contract (the engine consumed it before posting the CQE the app has read).
        unsafe { slots.write(idx, item) }
    }

    /// Publishes `n` more entries: store-release `tail += n`.
    #[inline]
    pub fn advance<T: Atomic<u16>>(&mut self, tail: &T, n: u16) {
        self.tail = self.tail.wrapping_add(n);
        // The app store-releases the buffer ring tail after writing the entries; pairs
        // with the engine's load-acquire in BufConsumer::available.
        tail.store(self.tail, Ordering::Release);
    }
}

/// Engine side of a provided-buffer ring: the private `u16` head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufConsumer {
    head: u16,
    mask: u16,
}

impl BufConsumer {
    /// A consumer for a ring of `entries` slots (a power of two, at most 32768).
    pub const fn new(entries: u32) -> Self {
        Self::new_at(entries, 0)
    }

    /// As [`BufConsumer::new`] with the head (and the shared tail) starting at `start`.
    pub const fn new_at(entries: u32, start: u16) -> Self {
        assert!(entries.is_power_of_two() && entries <= 32768);
        BufConsumer {
            head: start,
            mask: (entries - 1) as u16,
        }
    }

    /// The private head (what `IORING_REGISTER_PBUF_STATUS` reports).
    pub fn head(&self) -> u16 {
        self.head
    }

    /// Buffers published and not consumed: `acquire(tail) - head`, clamped to the ring
    /// size (the tail is written by the untrusted app).
    #[inline]
    pub fn available<T: Atomic<u16>>(&self, tail: &T) -> u16 {
        // The app store-releases the tail after writing entries; this load-acquire
        // pairs with it, so the entries' contents are visible (kernel:
        // smp_load_acquire(&br->tail)).
        let t = tail.load(Ordering::Acquire);
        t.wrapping_sub(self.head).min(self.mask + 1)
    }

    /// Copies the entry at the head if one is available.
    ///
    /// # Safety
    ///
    /// `slots` has capacity `mask + 1` and this is the only consumer.
    #[inline]
    pub unsafe fn peek<T: Atomic<u16>, S: Slots>(&self, tail: &T, slots: &S) -> Option<S::Item> {
        if self.available(tail) == 0 {
            return None;
        }
        // SAFETY: the index is masked below the capacity; the entry was published by a
        // tail we load-acquired, and the app does not rewrite it before seeing the CQE
        // that reports its consumption.
        Some(unsafe { slots.read(u32::from(self.head & self.mask)) })
    }

    /// Consumes the entry at the head (commit after a successful transfer).
    #[inline]
    pub fn consume(&mut self) {
        self.head = self.head.wrapping_add(1);
    }
}

/// App side of the `IORING_SQ_NEED_WAKEUP` handshake, to call right after publishing
/// the SQ tail: whether the polling engine announced it is going to sleep (then the
/// app must wake it, `IORING_ENTER_SQ_WAKEUP`).
///
/// liburing: store sq.tail, `io_uring_smp_mb()`, read sq_flags.
pub fn needs_wakeup<F: AtomicFlags>(sq_flags: &F) -> bool {
    // Full fence between our sq.tail store and the sq_flags load: pairs with the full
    // fence in prepare_sleep. Either the engine's re-check sees our tail, or we see its
    // NEED_WAKEUP; with anything weaker both could miss (store buffering) and a
    // submission would sleep unnoticed.
    F::fence(Ordering::SeqCst);
    // The engine sets/clears NEED_WAKEUP with fetch_or/fetch_and; ordering comes from
    // the fences, so relaxed suffices here.
    sq_flags.load(Ordering::Relaxed) & IORING_SQ_NEED_WAKEUP != 0
}

/// Engine side of the `IORING_SQ_NEED_WAKEUP` handshake, before going idle.
///
/// Sets `NEED_WAKEUP`, issues a full fence and re-reads the SQ tail. Returns `true` if
/// the SQ is still empty at `head` (the engine may sleep; the app will see the flag),
/// `false` if new SQEs arrived meanwhile (the flag is cleared again and the engine must
/// keep running). The engine clears the flag with `fetch_and` when it wakes.
pub fn prepare_sleep<F: AtomicFlags, T: Atomic<u32>>(sq_flags: &F, sq_tail: &T, head: u32) -> bool {
    // The engine is the only writer of sq_flags' NEED_WAKEUP bit; the app reads it in
    // needs_wakeup after its own full fence.
    sq_flags.fetch_or(IORING_SQ_NEED_WAKEUP, Ordering::SeqCst);
    // Full fence between the flag store and the tail re-check; pairs with the fence in
    // needs_wakeup (Dekker: at least one side sees the other's store).
    F::fence(Ordering::SeqCst);
    // The app store-releases sq.tail; acquire so that SQEs seen here are complete.
    if sq_tail.load(Ordering::Acquire) != head {
        // Work arrived: the engine withdraws its own flag (engine-only writer); an app
        // that already saw it merely makes a spurious wake-up call.
        sq_flags.fetch_and(!IORING_SQ_NEED_WAKEUP, Ordering::SeqCst);
        return false;
    }
    true
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::cell::Cell;
    use core::sync::atomic::{AtomicU16, AtomicU32};

    struct VecSlots<T>(Vec<Cell<T>>);

    impl<T: Copy> Slots for VecSlots<T> {
        type Item = T;
        unsafe fn read(&self, idx: u32) -> T {
            self.0[idx as usize].get()
        }
        unsafe fn write(&self, idx: u32, item: T) {
            self.0[idx as usize].set(item)
        }
    }

    fn slots<T: Copy + Default>(n: usize) -> VecSlots<T> {
        VecSlots((0..n).map(|_| Cell::new(T::default())).collect())
    }

    #[test]
    fn spsc_wraps_across_u32_overflow() {
        let start = u32::MAX - 5;
        let (head, tail) = (AtomicU32::new(start), AtomicU32::new(start));
        let s = slots::<u64>(4);
        let mut p = Producer::new(4, start);
        let mut c = Consumer::new(4, start);
        let mut next_in = 0u64;
        let mut next_out = 0u64;
        for round in 0..10 {
            // SAFETY: single-threaded test; one producer and one consumer.
            unsafe {
                while p.push(&head, &s, next_in).is_ok() {
                    next_in += 1;
                }
                assert_eq!(p.free(&head), 0, "round {round}");
                p.publish(&tail);
                assert_eq!(c.ready(&tail), 4);
                while let Some(v) = c.pop(&tail, &s) {
                    assert_eq!(v, next_out);
                    next_out += 1;
                }
            }
            c.release(&head);
            assert_eq!(p.free(&head), 4);
        }
        assert_eq!(next_in, 40);
        assert!(p.tail() < start, "counters wrapped");
    }

    #[test]
    fn hostile_counters_are_clamped() {
        let (head, tail) = (AtomicU32::new(0), AtomicU32::new(0));
        let p = Producer::new(4, 0);
        head.store(100, Ordering::Relaxed); // head ahead of tail
        assert_eq!(p.free(&head), 0);
        let c = Consumer::new(4, 0);
        tail.store(1000, Ordering::Relaxed);
        assert_eq!(c.ready(&tail), 4);
    }

    #[test]
    fn bufring_wraps_u16_tail() {
        let tail = AtomicU16::new(0);
        let s = slots::<u32>(2);
        let mut p = BufProducer::new(2);
        let mut c = BufConsumer::new(2);
        for i in 0..70_000u32 {
            // SAFETY: single-threaded; the slot was consumed below before reuse.
            unsafe { p.add(&s, i, 0) };
            p.advance(&tail, 1);
            assert_eq!(c.available(&tail), 1);
            // SAFETY: single consumer.
            assert_eq!(unsafe { c.peek(&tail, &s) }, Some(i));
            c.consume();
            assert_eq!(c.available(&tail), 0);
        }
        assert_eq!(c.head(), (70_000u32 % 65_536) as u16);
    }

    #[test]
    fn wakeup_handshake_single_thread() {
        let flags = AtomicU32::new(0);
        let tail = AtomicU32::new(3);
        assert!(!needs_wakeup(&flags));
        assert!(prepare_sleep(&flags, &tail, 3));
        assert!(needs_wakeup(&flags));
        flags.fetch_and(!IORING_SQ_NEED_WAKEUP, Ordering::SeqCst);
        assert!(!prepare_sleep(&flags, &tail, 2));
        assert!(!needs_wakeup(&flags));
    }
}
