//! loom models of the ring protocols in `ringline_ring::proto`.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p ringline-ring --test loom --release
//! ```
//!
//! The shared counters are loom atomics and the slots are `loom::cell::UnsafeCell`s, so
//! loom explores every interleaving (and every value a relaxed or acquire load may
//! return) and fails on any data race on a slot: a producer writing a slot the consumer
//! is still reading, or a consumer reading a slot before its contents are published.
//! The protocol code under test is the same generic code the shared-memory rings use.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use ringline_ring::abi::IORING_SQ_NEED_WAKEUP;
use ringline_ring::proto::{
    needs_wakeup, prepare_sleep, BufConsumer, BufProducer, Consumer, Producer, Slots,
};
use ringline_ring::sync::{AtomicU16, AtomicU32, Ordering};

/// Runs a loom model with a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS` says
/// otherwise: the spin-with-yield loops of a full/empty ring otherwise make the state
/// space grow beyond minutes, and bugs in two-thread index protocols need at most a
/// couple of preemptions to show.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// Ring slots whose every access loom tracks.
struct CellSlots<T>(Vec<UnsafeCell<T>>);

impl<T: Copy + Default> CellSlots<T> {
    fn new(n: usize) -> Self {
        CellSlots((0..n).map(|_| UnsafeCell::new(T::default())).collect())
    }
}

impl<T: Copy> Slots for CellSlots<T> {
    type Item = T;

    unsafe fn read(&self, idx: u32) -> T {
        // SAFETY: the Slots contract (idx in range, slot owned by the reader); loom's
        // cell checks that no write to this slot is concurrent with the read.
        self.0[idx as usize].with(|p| unsafe { *p })
    }

    unsafe fn write(&self, idx: u32, item: T) {
        // SAFETY: as in `read`; loom's cell checks that no other access to this slot is
        // concurrent with the write.
        self.0[idx as usize].with_mut(|p| unsafe { *p = item })
    }
}

// SAFETY: one producer and one consumer sharing the slots is what the ring protocol makes sound
// and what these models verify: loom's UnsafeCell fails the model on any two conflicting
// accesses not ordered by happens-before.
unsafe impl<T: Send> Sync for CellSlots<T> {}

/// The shared part of one SPSC ring: head, tail, slots.
struct Spsc {
    head: AtomicU32,
    tail: AtomicU32,
    slots: CellSlots<u64>,
}

fn spsc(entries: u32, start: u32) -> Arc<Spsc> {
    Arc::new(Spsc {
        head: AtomicU32::new(start),
        tail: AtomicU32::new(start),
        slots: CellSlots::new(entries as usize),
    })
}

/// SQ: the app writes a batch of SQEs, publishes sq.tail once, and must wait for the
/// engine's sq.head before reusing a slot; the engine copies SQEs and commits sq.head
/// after the copies. Three items through a 2-entry ring force a slot reuse, starting
/// the counters one below the u32 wrap.
#[test]
fn sq_publish_consume() {
    model(|| {
        const ENTRIES: u32 = 2;
        const N: u64 = 3;
        let start = u32::MAX;
        let ring = spsc(ENTRIES, start);

        let app = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut p = Producer::new(ENTRIES, start);
                let mut next = 0;
                while next < N {
                    // get_sqe + fill until the SQ is full, then flush_sq.
                    // SAFETY: the only producer; the consumer follows the protocol.
                    while next < N && unsafe { p.push(&ring.head, &ring.slots, next) }.is_ok() {
                        next += 1;
                    }
                    p.publish(&ring.tail);
                    if next < N {
                        thread::yield_now();
                    }
                }
            })
        };

        let mut c = Consumer::new(ENTRIES, start);
        let mut got = Vec::new();
        while (got.len() as u64) < N {
            // next_sqe until empty, then sq_commit.
            // SAFETY: the only consumer; the producer follows the protocol.
            while let Some(v) = unsafe { c.pop(&ring.tail, &ring.slots) } {
                got.push(v);
            }
            c.release(&ring.head);
            if (got.len() as u64) < N {
                thread::yield_now();
            }
        }
        app.join().unwrap();
        assert_eq!(got, (0..N).collect::<Vec<_>>());
    });
}

/// CQ: the engine writes one CQE at a time and store-releases cq.tail after each; the
/// app consumes one at a time and store-releases cq.head after each. Includes the
/// full-ring case: a post into a full CQ must fail (the caller would put the CQE into
/// the backlog), never overwrite an unread slot.
#[test]
fn cq_post_consume_with_full_ring() {
    model(|| {
        const ENTRIES: u32 = 2;
        const N: u64 = 3;
        let ring = spsc(ENTRIES, 0);

        let engine = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut p = Producer::new(ENTRIES, 0);
                let mut backlog = std::collections::VecDeque::new();
                let mut refused = 0;
                for v in 0..N {
                    // post_cqe: nothing bypasses a non-empty backlog.
                    if backlog.is_empty() {
                        // SAFETY: the only producer.
                        match unsafe { p.push(&ring.head, &ring.slots, v) } {
                            Ok(()) => p.publish(&ring.tail),
                            Err(v) => {
                                refused += 1;
                                backlog.push_back(v);
                            }
                        }
                    } else {
                        backlog.push_back(v);
                    }
                }
                // flush_overflow until the backlog is empty.
                while let Some(&v) = backlog.front() {
                    // SAFETY: the only producer.
                    if unsafe { p.push(&ring.head, &ring.slots, v) }.is_ok() {
                        backlog.pop_front();
                        p.publish(&ring.tail);
                    } else {
                        thread::yield_now();
                    }
                }
                refused
            })
        };

        let mut c = Consumer::new(ENTRIES, 0);
        let mut got = Vec::new();
        while (got.len() as u64) < N {
            // peek_cqe + cqe_seen.
            // SAFETY: the only consumer.
            match unsafe { c.pop(&ring.tail, &ring.slots) } {
                Some(v) => {
                    got.push(v);
                    c.release(&ring.head);
                }
                None => thread::yield_now(),
            }
        }
        let refused = engine.join().unwrap();
        assert!(refused <= 1);
        assert_eq!(got, (0..N).collect::<Vec<_>>());
    });
}

/// The full CQ on its own: with the app not consuming, a third post into a 2-entry CQ
/// is refused; with the app consuming concurrently it may succeed, and then only into
/// a slot the app has released (loom would flag the race otherwise).
#[test]
fn cq_full_refuses_post() {
    model(|| {
        const ENTRIES: u32 = 2;
        let ring = spsc(ENTRIES, 7);
        let mut p = Producer::new(ENTRIES, 7);
        for v in 0..2 {
            // SAFETY: the only producer (the consumer starts below).
            unsafe { p.push(&ring.head, &ring.slots, v) }.unwrap();
        }
        p.publish(&ring.tail);
        assert_eq!(p.free(&ring.head), 0);

        let app = {
            let ring = ring.clone();
            thread::spawn(move || {
                let mut c = Consumer::new(ENTRIES, 7);
                // SAFETY: the only consumer.
                let v = unsafe { c.pop(&ring.tail, &ring.slots) };
                c.release(&ring.head);
                v
            })
        };
        // SAFETY: the only producer.
        let third = unsafe { p.push(&ring.head, &ring.slots, 2) };
        if third.is_ok() {
            p.publish(&ring.tail);
        }
        assert_eq!(app.join().unwrap(), Some(0));
        let mut c = Consumer::new(ENTRIES, 8);
        assert_eq!(c.ready(&ring.tail), if third.is_ok() { 2 } else { 1 });
        // SAFETY: the only consumer now (the app thread has exited).
        assert_eq!(unsafe { c.pop(&ring.tail, &ring.slots) }, Some(1));
    });
}

/// Buffer ring: the app writes entries, then store-releases the u16 tail; the engine
/// load-acquires it and must see the entries' contents. The tail starts one below the
/// u16 wrap.
#[test]
fn bufring_tail_publish() {
    model(|| {
        const ENTRIES: u32 = 2;
        struct Br {
            tail: AtomicU16,
            slots: CellSlots<(u64, u32)>,
        }
        let start = u16::MAX;
        let br = Arc::new(Br {
            tail: AtomicU16::new(start),
            slots: CellSlots::new(ENTRIES as usize),
        });
        let mut p = BufProducer::new_at(ENTRIES, start);
        let mut c = BufConsumer::new_at(ENTRIES, start);

        let app = {
            let br = br.clone();
            thread::spawn(move || {
                // SAFETY: the only producer; both slots are unpublished.
                unsafe {
                    p.add(&br.slots, (0x1000, 100), 0);
                    p.add(&br.slots, (0x2000, 200), 1);
                }
                p.advance(&br.tail, 2);
            })
        };

        let mut seen = Vec::new();
        while seen.len() < 2 {
            // SAFETY: the only consumer.
            match unsafe { c.peek(&br.tail, &br.slots) } {
                Some(b) => {
                    seen.push(b);
                    c.consume();
                }
                None => thread::yield_now(),
            }
        }
        app.join().unwrap();
        assert_eq!(seen, [(0x1000, 100), (0x2000, 200)]);
        assert_eq!(c.available(&br.tail), 0);
    });
}

/// IORING_SQ_NEED_WAKEUP handshake: if the engine decides to sleep, the app that
/// published an SQE concurrently must see the flag (and wake it). Both sides use full
/// fences; with weaker ordering loom finds the lost wake-up.
#[test]
fn need_wakeup_is_never_lost() {
    model(|| {
        let flags = Arc::new(AtomicU32::new(0));
        let tail = Arc::new(AtomicU32::new(0));

        let app = {
            let (flags, tail) = (flags.clone(), tail.clone());
            thread::spawn(move || {
                // flush_sq of one SQE (the slot write itself is covered above), then
                // the NEED_WAKEUP check.
                let mut p = Producer::new(2, 0);
                p.reserve(&AtomicU32::new(0)).unwrap();
                p.publish(&*tail);
                needs_wakeup(&*flags)
            })
        };
        let slept = prepare_sleep(&*flags, &*tail, 0);
        let woke = app.join().unwrap();
        assert!(
            !slept || woke,
            "engine sleeps but the app did not see NEED_WAKEUP"
        );
        if !slept {
            assert_eq!(flags.load(Ordering::SeqCst) & IORING_SQ_NEED_WAKEUP, 0);
        }
    });
}
