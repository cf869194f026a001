//! Steady-state traffic through the loopback wire and the fault injector
//! allocates nothing: a counting global allocator watches the test thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ringline_dataplane::{FaultConfig, FaultyNic, LoopbackWire, Nic, WireConfig, RX_BURST};

thread_local! {
    /// Allocations made by this thread while `WATCHING` is set.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Forwards to the system allocator, counting the watched thread's calls.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from this allocator, hence from `System`, with
        // `layout`; the caller upholds the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout` (see above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn count() {
    // `try_with`: during thread teardown the thread-locals may be gone.
    let _ = WATCHING.try_with(|w| {
        if w.get() {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
    });
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_allocates_nothing() {
    let cfg = WireConfig {
        frames_per_direction: 256,
        ..WireConfig::default()
    };
    let (mut a, b) = LoopbackWire::pair(&cfg);
    let faults = FaultConfig {
        seed: 11,
        loss: 0.05,
        duplicate: 0.05,
        reorder: 0.1,
        max_delay_polls: 4,
    };
    let mut b = FaultyNic::new(b, faults);
    let mut out = Vec::with_capacity(RX_BURST);
    let mut delivered = 0u64;

    let mut step = |a: &mut ringline_dataplane::LoopbackPort,
                    b: &mut FaultyNic<ringline_dataplane::LoopbackPort>,
                    seq: u64| {
        for i in 0..16 {
            let _ = a.tx_frame(100, &mut |buf| {
                buf[..8].copy_from_slice(&(seq + i).to_le_bytes())
            });
        }
        a.tx_flush();
        b.rx_burst(&mut out, RX_BURST);
        for f in out.drain(..) {
            delivered += 1;
            b.rx_release(f);
        }
    };

    // Warm up: nothing should allocate even here, but only steady state is
    // promised.
    for seq in 0..100 {
        step(&mut a, &mut b, seq * 16);
    }
    WATCHING.with(|w| w.set(true));
    for seq in 100..5000 {
        step(&mut a, &mut b, seq * 16);
    }
    WATCHING.with(|w| w.set(false));

    assert_eq!(ALLOCS.with(Cell::get), 0, "allocations on the data path");
    assert!(delivered > 50_000, "traffic flowed: {delivered}");
    assert!(b.stats().dropped > 0 && b.stats().duplicated > 0 && b.stats().delayed > 0);
}
