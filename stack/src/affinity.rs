//! Pinning the calling thread to one CPU (`sched_setaffinity`), for the
//! SQPOLL thread's `sq_thread_cpu`. One of the crate's opt-outs from
//! `#![deny(unsafe_code)]`: std has no affinity call.
#![allow(unsafe_code)]

/// Pins the calling thread to `cpu`. Errors: the CPU is out of the set's
/// range, or the kernel refused (offline CPU, outside the cpuset).
pub(crate) fn pin_current(cpu: usize) -> Result<(), String> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(format!("sq_thread_cpu {cpu} is beyond CPU_SETSIZE"));
    }
    // SAFETY: cpu_set_t is plain bits, valid zeroed; CPU_ZERO/CPU_SET write only
    // inside `set` (cpu was checked against CPU_SETSIZE above); sched_setaffinity
    // reads `size_of::<cpu_set_t>()` bytes of it, which it has.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(format!(
            "cannot pin the SQPOLL thread to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
