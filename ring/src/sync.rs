//! Atomics used by the ring protocols, swappable for loom's under `cfg(loom)`.
//!
//! `AtomicU32`, `AtomicU16`, `fence` and `Ordering` are re-exported from `core` in a
//! normal build and from `loom` when built with `RUSTFLAGS="--cfg loom"`.
//!
//! loom's atomics are not layout compatible with a plain `u32` in shared memory, so
//! the rings themselves always view their mmap'ed counters as `core` atomics. The
//! protocol helpers in [`crate::proto`] are therefore generic over the [`Atomic`] /
//! [`AtomicFlags`] traits below, implemented for `core`'s atomics always and for
//! loom's atomics under `cfg(loom)`: the shared-memory rings and the loom models run
//! the very same helper code.

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU16, AtomicU32, Ordering};

#[cfg(not(loom))]
pub use core::sync::atomic::{fence, AtomicU16, AtomicU32, Ordering};

/// An atomic cell holding a `T` (a ring counter or a flag word).
///
/// Implemented for `core::sync::atomic::{AtomicU32, AtomicU16}`, and for loom's
/// atomics under `cfg(loom)`.
pub trait Atomic<T: Copy> {
    /// Atomic load with `order`.
    fn load(&self, order: Ordering) -> T;
    /// Atomic store with `order`.
    fn store(&self, value: T, order: Ordering);
    /// A memory fence of the same memory model as this atomic (`core::sync::atomic::fence`
    /// or `loom::sync::atomic::fence`).
    fn fence(order: Ordering);
}

/// A `u32` flag word updated with read-modify-write operations (`sq_flags`).
pub trait AtomicFlags: Atomic<u32> {
    /// Atomic `fetch_or`; returns the previous value.
    fn fetch_or(&self, bits: u32, order: Ordering) -> u32;
    /// Atomic `fetch_and`; returns the previous value.
    fn fetch_and(&self, bits: u32, order: Ordering) -> u32;
}

macro_rules! impl_atomic {
    ($atomic:ty, $t:ty, $fence:path) => {
        impl Atomic<$t> for $atomic {
            #[inline]
            fn load(&self, order: Ordering) -> $t {
                <$atomic>::load(self, order)
            }
            #[inline]
            fn store(&self, value: $t, order: Ordering) {
                <$atomic>::store(self, value, order)
            }
            #[inline]
            fn fence(order: Ordering) {
                $fence(order)
            }
        }
    };
}

macro_rules! impl_flags {
    ($atomic:ty) => {
        impl AtomicFlags for $atomic {
            #[inline]
            fn fetch_or(&self, bits: u32, order: Ordering) -> u32 {
                <$atomic>::fetch_or(self, bits, order)
            }
            #[inline]
            fn fetch_and(&self, bits: u32, order: Ordering) -> u32 {
                <$atomic>::fetch_and(self, bits, order)
            }
        }
    };
}

impl_atomic!(
    core::sync::atomic::AtomicU32,
    u32,
    core::sync::atomic::fence
);
impl_atomic!(
    core::sync::atomic::AtomicU16,
    u16,
    core::sync::atomic::fence
);
impl_flags!(core::sync::atomic::AtomicU32);

#[cfg(loom)]
impl_atomic!(
    loom::sync::atomic::AtomicU32,
    u32,
    loom::sync::atomic::fence
);
#[cfg(loom)]
impl_atomic!(
    loom::sync::atomic::AtomicU16,
    u16,
    loom::sync::atomic::fence
);
#[cfg(loom)]
impl_flags!(loom::sync::atomic::AtomicU32);
