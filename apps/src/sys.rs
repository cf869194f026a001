//! The command's one audited opt-out from `#![deny(unsafe_code)]`: pushing
//! SQEs that name application memory, and pinning a thread to a core.
#![allow(unsafe_code)]

use ringline::Runtime;
use ringline_dataplane::Nic;
use ringline_ring::abi::Sqe;

/// Pushes `sqe`, submitting first whenever the SQ is full.
///
/// Callers in this crate only name memory that outlives the request: the
/// per-connection buffers and provided-buffer arenas live for the whole run
/// and are released only after every request was completed or cancelled.
pub fn push<N: Nic>(rt: &mut Runtime<N>, sqe: Sqe) {
    loop {
        // SAFETY: see the function docs; every caller upholds the buffer
        // lifetime contract of `Ring::push`.
        if unsafe { rt.push(&sqe) }.is_ok() {
            return;
        }
        let _ = rt.submit();
    }
}

/// Pins the calling thread to `cpu` (modulo the CPU count); best effort.
pub fn pin_to_cpu(cpu: usize) {
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if n < 2 {
        return;
    }
    // SAFETY: cpu_set_t is a plain bit array, all-zero is the empty set; CPU_SET
    // writes one bit below the CPU count (far below CPU_SETSIZE); pid 0 is this
    // thread and the size passed is the set's own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % n, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
