//! The `kernel-uring` backend: Linux's own io_uring (the `io-uring` crate)
//! behind the same [`Uring`] trait as ringline, so the echo server and load
//! generator of this command run unchanged on the kernel's TCP over
//! 127.0.0.1. ringline's SQEs are byte-identical to the kernel's, so they are
//! handed over as they are.
//!
//! Audited unsafe: the SQE hand-over, the buffer-ring registration, and the
//! socket options / rlimit system calls.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::time::Duration;

use io_uring::{squeue, types, IoUring};
use ringline_ring::abi::{Cqe, Sqe};
use ringline_ring::app::{Errno, SqFull};
use ringline_ring::bufring::{BufRing, BufRingConsumer};
use ringline_ring::mem::HugePolicy;

use crate::sys::Uring;

// The hand-over below relies on this.
const _: () = assert!(std::mem::size_of::<Sqe>() == std::mem::size_of::<squeue::Entry>());
const _: () = assert!(std::mem::align_of::<Sqe>() >= std::mem::align_of::<squeue::Entry>());

/// A kernel io_uring, set up as a high-performance server would:
/// `SINGLE_ISSUER | DEFER_TASKRUN` (task work runs only when this thread
/// enters with GETEVENTS, as ringline's inline engine does).
pub struct KernelRing {
    /// Declared first so it is dropped first: closing the ring fd ends every
    /// request and the buffer-ring registrations before `bufrings` unmaps.
    ring: IoUring,
    /// Engine halves of registered buffer rings: they keep the ring memory
    /// mapped until the group is unregistered (the kernel reads it).
    bufrings: HashMap<u16, BufRingConsumer>,
}

impl KernelRing {
    /// Creates a ring with `sq` SQ entries and `cq` CQ entries. Must be used
    /// only by the thread that creates it (`SINGLE_ISSUER`).
    pub fn new(sq: u32, cq: u32) -> Result<Self, String> {
        let ring = IoUring::builder()
            .setup_cqsize(cq)
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(sq)
            .map_err(|e| format!("io_uring_setup: {e}"))?;
        Ok(KernelRing {
            ring,
            bufrings: HashMap::new(),
        })
    }
}

fn errno(e: std::io::Error) -> Errno {
    Errno(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Uring for KernelRing {
    #[inline]
    unsafe fn push_sqe(&mut self, sqe: &Sqe) -> Result<(), SqFull> {
        // SAFETY: `Sqe` and `squeue::Entry` are both `#[repr(C)]` images of the kernel's 64-byte
        // `io_uring_sqe` (offsets asserted in ringline-ring, sizes above), integers only, so any
        // bit pattern of one is a valid value of the other.
        let entry: squeue::Entry = unsafe { std::mem::transmute::<Sqe, squeue::Entry>(*sqe) };
        // SAFETY: the caller upholds the buffer lifetime contract of
        // `Uring::push_sqe`, which is io_uring's.
        unsafe { self.ring.submission().push(&entry) }.map_err(|_| SqFull)
    }

    #[inline]
    fn submit(&mut self) -> Result<u32, Errno> {
        self.ring.submit().map(|n| n as u32).map_err(errno)
    }

    #[inline]
    fn submit_and_wait_timeout(&mut self, n: u32, timeout: Duration) -> Result<u32, Errno> {
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        self.ring
            .submitter()
            .submit_with_args(n as usize, &args)
            .map(|n| n as u32)
            .map_err(errno)
    }

    #[inline]
    fn reap(&mut self, out: &mut Vec<Cqe>) {
        for e in self.ring.completion() {
            out.push(Cqe {
                user_data: e.user_data(),
                res: e.result(),
                flags: e.flags(),
            });
        }
    }

    fn register_buf_ring(&mut self, entries: u32, bgid: u16) -> Result<BufRing, Errno> {
        let (ring, consumer) = BufRing::new(entries, HugePolicy::Never)?;
        // SAFETY: the memory is page aligned and holds `entries` kernel-layout `io_uring_buf`s;
        // `consumer`, kept in `bufrings` until the group is unregistered or this ring dropped,
        // keeps it mapped for as long as the kernel may read it.
        unsafe {
            self.ring.submitter().register_buf_ring_with_flags(
                ring.as_ptr() as u64,
                entries as u16,
                bgid,
                0,
            )
        }
        .map_err(errno)?;
        self.bufrings.insert(bgid, consumer);
        Ok(ring)
    }

    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        self.ring
            .submitter()
            .unregister_buf_ring(bgid)
            .map_err(errno)?;
        self.bufrings.remove(&bgid);
        Ok(())
    }

    fn tune_socket(&mut self, fd: i32, listener: bool) {
        if listener {
            set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        } else {
            set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        }
    }
}

/// `setsockopt(fd, level, name, &value, 4)`; best effort (a failure only
/// changes performance, which the results show).
pub fn set_int_opt(fd: i32, level: i32, name: i32, value: i32) {
    // SAFETY: `value` is a valid 4-byte option value for the duration of the
    // call; an invalid fd or option only makes the call fail.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
    }
}

/// Raises `RLIMIT_NOFILE` to at least `want` (the hard limit too, which
/// needs `CAP_SYS_RESOURCE`); returns the soft limit in force afterwards.
pub fn raise_nofile(want: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    if r.rlim_cur >= want {
        return r.rlim_cur;
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: r.rlim_max.max(want),
    };
    // SAFETY: `raised` is a valid rlimit for the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        // Without the capability: as far as the hard limit allows.
        let soft = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) };
    }
    // SAFETY: as above.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    r.rlim_cur
}
