//! A counting global allocator: forwards to the system allocator and counts
//! the allocations (`alloc`, `alloc_zeroed`, `realloc`) made by a thread
//! between [`watch`] and [`unwatch`]. A test binary installs it with
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: ringline_testkit::counting::Counting = ringline_testkit::counting::Counting;
//! ```
//!
//! and then reads [`allocations`] after the watched section. Counting is per
//! thread, so the test harness's other threads do not disturb it. [`watch`]
//! checks that the allocator is installed (a test that forgot the
//! `#[global_allocator]` line would otherwise pass with a count of 0).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Allocations (alloc, alloc_zeroed, realloc) made by this thread while
    /// `WATCHING` is set.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Forwards to the system allocator, counting the watched thread's calls.
pub struct Counting;

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

/// Starts counting this thread's allocations (the count is not reset; see
/// [`reset`]).
///
/// # Panics
///
/// If [`Counting`] is not the `#[global_allocator]` of the binary: one probe
/// allocation must be counted. The probe is not left in the count.
pub fn watch() {
    let before = allocations();
    WATCHING.with(|w| w.set(true));
    drop(std::hint::black_box(Box::new(0u64)));
    let seen = allocations();
    ALLOCS.with(|a| a.set(before));
    assert!(
        seen > before,
        "ringline_testkit::counting::Counting is not this binary's #[global_allocator]"
    );
}

/// Stops counting this thread's allocations.
pub fn unwatch() {
    WATCHING.with(|w| w.set(false));
}

/// This thread's allocations counted so far.
pub fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

/// Sets this thread's count back to 0.
pub fn reset() {
    ALLOCS.with(|a| a.set(0));
}
