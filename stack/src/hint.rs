//! CPU hints. One of the crate's opt-outs from `#![deny(unsafe_code)]`, for
//! one instruction: a prefetch, which reads nothing the program can see and
//! cannot fault, whatever the address.
#![allow(unsafe_code)]

/// Asks the CPU to start loading the cache line at `addr` into all cache
/// levels. A hint: the address is never dereferenced, and any value is
/// harmless.
#[inline(always)]
pub fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has (it is in
    // the x86_64 baseline the crate is compiled for); PREFETCHT0 does not
    // access memory architecturally and never faults, so any address is sound.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}
