//! An audited opt-out from `#![deny(unsafe_code)]`: the SQE hand-over of the
//! [`Uring`] implementations, pinning a thread to a core, and reading thread
//! CPU clocks. Callers that push SQEs naming memory (the servers and clients)
//! use [`push`], which is `unsafe`, each with its own reasoning; SQEs that
//! name no memory go through the safe [`push_safe`].
//!
//! [`Uring`] is the part of the liburing-shaped API the servers and clients
//! of this command use. ringline's rings (`Ring<D>` with the inline or the
//! SQPOLL driver) implement it here; the kernel's
//! io_uring implements it in `bench::kernel_uring`, so the same echo server and
//! load generator run on both (the SQEs are byte-identical).
#![allow(unsafe_code)]

use std::time::Duration;

use ringline_ring::abi::{Cqe, Sqe};
use ringline_ring::app::{Driver, Ring};
use ringline_ring::app::{Errno, SqFull};
use ringline_ring::bufring::BufRing;
use ringline_ring::opcode::SafeSqe;

/// A submission/completion ring: ringline's, or the kernel's io_uring.
pub trait Uring {
    /// Copies `sqe` into the next free SQ slot (not yet submitted).
    ///
    /// # Safety
    ///
    /// As [`ringline_ring::app::Ring::push`]: every buffer the SQE names stays
    /// valid, and is not accessed in a conflicting way, until the request's
    /// final CQE (the one without `IORING_CQE_F_MORE`).
    unsafe fn push_sqe(&mut self, sqe: &Sqe) -> Result<(), SqFull>;

    /// Copies `sqe`, which names no memory, into the next free SQ slot.
    ///
    /// On the kernel's io_uring an SQE without memory still names kernel file
    /// descriptors (CLOSE, SHUTDOWN, ...): as everywhere in this command, only
    /// sockets opened through this ring are named.
    fn push_safe_sqe(&mut self, sqe: &SafeSqe) -> Result<(), SqFull> {
        // SAFETY: a SafeSqe names no memory, so the push contract holds.
        unsafe { self.push_sqe(sqe) }
    }

    /// Submits what is queued (`io_uring_submit`).
    fn submit(&mut self) -> Result<u32, Errno>;

    /// Submits and waits up to `timeout` for `n` CQEs
    /// (`io_uring_submit_and_wait_timeout`; `Err(ETIME)` if none came).
    fn submit_and_wait_timeout(&mut self, n: u32, timeout: Duration) -> Result<u32, Errno>;

    /// Appends every ready CQE to `out` and consumes them.
    fn reap(&mut self, out: &mut Vec<Cqe>);

    /// Allocates a provided-buffer ring of `entries` and registers it as group
    /// `bgid` (`io_uring_setup_buf_ring`).
    fn register_buf_ring(&mut self, entries: u32, bgid: u16) -> Result<BufRing, Errno>;

    /// Unregisters buffer group `bgid`.
    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno>;

    /// `len` zeroed bytes (8-byte aligned) this ring's SQEs may name: the
    /// heap in-process; an attached ring's region for `ringline serve`
    /// ([`AttachedUring`]), where memory outside it is `-EFAULT`.
    fn mem(&mut self, len: usize) -> Mem {
        Mem::heap(len)
    }

    /// Socket options the kernel needs to behave like ringline, applied right
    /// after SOCKET (`listener`: `SO_REUSEADDR`) or to a connection
    /// (`TCP_NODELAY`, ringline's default). ringline needs none.
    fn tune_socket(&mut self, _fd: i32, _listener: bool) {}
}

impl<D: Driver> Uring for Ring<D> {
    #[inline]
    unsafe fn push_sqe(&mut self, sqe: &Sqe) -> Result<(), SqFull> {
        // SAFETY: the caller upholds `Ring::push`'s contract (this trait
        // method's).
        unsafe { self.push(sqe) }
    }

    #[inline]
    fn push_safe_sqe(&mut self, sqe: &SafeSqe) -> Result<(), SqFull> {
        self.push_safe(sqe)
    }

    #[inline]
    fn submit(&mut self) -> Result<u32, Errno> {
        ringline_ring::app::Ring::submit(self)
    }

    #[inline]
    fn submit_and_wait_timeout(&mut self, n: u32, timeout: Duration) -> Result<u32, Errno> {
        ringline_ring::app::Ring::submit_and_wait_timeout(self, n, timeout)
    }

    #[inline]
    fn reap(&mut self, out: &mut Vec<Cqe>) {
        out.extend(self.completions());
    }

    fn register_buf_ring(&mut self, entries: u32, bgid: u16) -> Result<BufRing, Errno> {
        ringline_ring::app::Ring::register_buf_ring(self, entries, bgid)
    }

    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        ringline_ring::app::Ring::unregister_buf_ring(self, bgid)
    }
}

/// Memory from [`Uring::mem`]: a heap block (freed on drop) or a piece of an
/// attached ring's region (freed with the region).
pub struct Mem {
    ptr: *mut u8,
    len: usize,
    _heap: Option<Vec<u64>>,
}

impl Mem {
    /// `len` zeroed bytes on the heap, 8-byte aligned.
    pub fn heap(len: usize) -> Mem {
        let mut v = vec![0u64; len.div_ceil(8).max(1)];
        Mem {
            ptr: v.as_mut_ptr().cast(),
            len,
            _heap: Some(v),
        }
    }

    /// The block as `sockaddr_in`s (16 bytes each; the block is 8-aligned).
    pub fn sockaddrs(&mut self) -> &mut [libc::sockaddr_in] {
        let n = self.len / size_of::<libc::sockaddr_in>();
        // SAFETY: the block is 8-aligned (sockaddr_in needs 4), n * 16 <= len bytes,
        // initialised (zeroed at allocation), exclusively borrowed through &mut self;
        // sockaddr_in is integers only, valid for any bit pattern.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.cast(), n) }
    }
}

impl core::ops::Deref for Mem {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is a live, initialised block owned by self (heap) or
        // by the region that outlives the ring that handed it out.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl core::ops::DerefMut for Mem {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref; &mut self makes the borrow exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A ring attached to `ringline serve` and its region, as a [`Uring`]: the
/// memory [`Uring::mem`] hands out comes from the region.
pub struct AttachedUring {
    /// The ring.
    pub ring: ringline::AttachedRing,
    /// Its region (outlives every [`Mem`] taken from it while the ring lives).
    pub region: ringline::AppRegion,
}

impl Uring for AttachedUring {
    #[inline]
    unsafe fn push_sqe(&mut self, sqe: &Sqe) -> Result<(), SqFull> {
        // SAFETY: the caller upholds the push contract (this method's).
        unsafe { self.ring.push_sqe(sqe) }
    }
    #[inline]
    fn push_safe_sqe(&mut self, sqe: &SafeSqe) -> Result<(), SqFull> {
        self.ring.push_safe(sqe)
    }
    #[inline]
    fn submit(&mut self) -> Result<u32, Errno> {
        Uring::submit(&mut self.ring)
    }
    #[inline]
    fn submit_and_wait_timeout(&mut self, n: u32, timeout: Duration) -> Result<u32, Errno> {
        Uring::submit_and_wait_timeout(&mut self.ring, n, timeout)
    }
    #[inline]
    fn reap(&mut self, out: &mut Vec<Cqe>) {
        self.ring.reap(out)
    }
    fn register_buf_ring(&mut self, entries: u32, bgid: u16) -> Result<BufRing, Errno> {
        Uring::register_buf_ring(&mut self.ring, entries, bgid)
    }
    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        Uring::unregister_buf_ring(&mut self.ring, bgid)
    }
    fn mem(&mut self, len: usize) -> Mem {
        let ptr = self
            .region
            .alloc(len.max(1), 64)
            .expect("the attached region is too small for this run (raise --buffer-mb)");
        Mem {
            ptr,
            len,
            _heap: None,
        }
    }
}

/// Pushes `sqe`, submitting first whenever the SQ is full. For SQEs that
/// name no memory, [`push_safe`] needs no `unsafe`.
///
/// # Safety
///
/// The contract of [`Uring::push_sqe`] (`Ring::push`'s): every buffer and
/// address `sqe` names stays valid, and is not accessed in a conflicting way,
/// until the request's final CQE.
#[inline]
pub unsafe fn push<R: Uring + ?Sized>(rt: &mut R, sqe: Sqe) {
    loop {
        // SAFETY: the caller upholds the push contract (this function's).
        if unsafe { rt.push_sqe(&sqe) }.is_ok() {
            return;
        }
        let _ = rt.submit();
    }
}

/// Pushes `sqe`, which names no memory, submitting first whenever the SQ is
/// full.
#[inline]
pub fn push_safe<R: Uring + ?Sized>(rt: &mut R, sqe: SafeSqe) {
    while rt.push_safe_sqe(&sqe).is_err() {
        let _ = rt.submit();
    }
}

/// The number of CPUs online (at least 1).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online).unwrap_or(1).max(1)
}

/// Pins the calling thread to `cpu` (modulo the number of online CPUs); best
/// effort. It counts the online CPUs, not the calling thread's current mask:
/// a thread started by one that DPDK's EAL pinned inherits a one-CPU mask,
/// and must still be able to move to its own core.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let n = usize::try_from(online).unwrap_or(1);
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

/// Puts the calling thread under `SCHED_FIFO` at `priority` (1..=99), so a
/// busy-polling engine is not preempted by ordinary threads sharing its core.
/// The kernel's RT throttling (`kernel.sched_rt_runtime_us`, 95% by default)
/// still leaves the core's other work a slice. Needs `CAP_SYS_NICE`.
pub fn set_realtime(priority: u8) -> Result<(), String> {
    if !(1..=99).contains(&priority) {
        return Err(format!(
            "realtime priority {priority} is outside 1..=99 (SCHED_FIFO)"
        ));
    }
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: pthread_self() is the calling thread, alive for the call;
    // `param` is a valid, initialised sched_param the call only reads.
    let r = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    match r {
        0 => Ok(()),
        libc::EPERM => Err(format!(
            "SCHED_FIFO priority {priority}: not permitted (needs root or CAP_SYS_NICE, and an RT budget in the cgroup)"
        )),
        e => Err(format!(
            "SCHED_FIFO priority {priority}: {}",
            std::io::Error::from_raw_os_error(e)
        )),
    }
}

/// The scheduling policy of the calling thread (`SCHED_*`).
#[cfg(test)]
pub fn current_policy() -> i32 {
    // SAFETY: 0 is the calling thread; sched_getscheduler has no other input.
    unsafe { libc::sched_getscheduler(0) }
}

/// The CPU-time clock of the calling thread (`pthread_getcpuclockid`), which
/// any thread of the process may read with [`clock_ns`]. 0 if unavailable.
pub fn thread_cpu_clock() -> libc::clockid_t {
    let mut id: libc::clockid_t = 0;
    // SAFETY: pthread_self() is the calling thread, alive for the call; `id`
    // is a valid out-pointer.
    let r = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
    if r == 0 {
        id
    } else {
        0
    }
}

/// Reads `clock` in ns (0 if it cannot be read, e.g. the thread has exited).
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; an invalid clock id only makes the
    // call fail with EINVAL.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Any [`Uring`] as a backend of the safe layer (`ringline_ring::io::Io`), so
/// the servers and clients ported to the layer run on ringline and on the
/// kernel's io_uring alike.
pub struct Layer<'a, R: Uring + ?Sized>(pub &'a mut R);

impl<R: Uring + ?Sized> ringline_ring::io::Backend for Layer<'_, R> {
    #[inline]
    unsafe fn push_sqe(&mut self, sqe: &Sqe) -> Result<(), SqFull> {
        // SAFETY: the caller upholds the push contract (this method's), which is
        // `Uring::push_sqe`'s.
        unsafe { self.0.push_sqe(sqe) }
    }
    #[inline]
    fn push_safe_sqe(&mut self, sqe: &SafeSqe) -> Result<(), SqFull> {
        self.0.push_safe_sqe(sqe)
    }
    #[inline]
    fn submit(&mut self) -> Result<u32, Errno> {
        self.0.submit()
    }
    #[inline]
    fn submit_and_wait_timeout(&mut self, n: u32, timeout: Duration) -> Result<u32, Errno> {
        self.0.submit_and_wait_timeout(n, timeout)
    }
    #[inline]
    fn reap(&mut self, out: &mut Vec<Cqe>) {
        self.0.reap(out)
    }
    fn register_buf_ring(&mut self, entries: u32, bgid: u16) -> Result<BufRing, Errno> {
        self.0.register_buf_ring(entries, bgid)
    }
    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        self.0.unregister_buf_ring(bgid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_refuses_bad_priorities_and_sets_fifo() {
        assert!(set_realtime(0).unwrap_err().contains("1..=99"));
        assert!(set_realtime(100).unwrap_err().contains("1..=99"));
        // On a thread of its own, so the test harness's thread keeps its policy.
        let r = std::thread::spawn(|| (set_realtime(1), current_policy()))
            .join()
            .expect("thread");
        match r {
            (Ok(()), policy) => assert_eq!(policy, libc::SCHED_FIFO),
            // Without CAP_SYS_NICE the error says so.
            (Err(e), policy) => {
                assert!(e.contains("not permitted"), "{e}");
                assert_eq!(policy, libc::SCHED_OTHER);
            }
        }
    }
}
