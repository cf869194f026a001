//! # libringline: liburing's API and ABI over ringline
//!
//! A C library (`libringline.so`, `libringline.a`) exporting the functions of
//! liburing 2.x that an application links (the rest of liburing is `static
//! inline` in `liburing.h` and compiled into the application). A program built
//! against Debian's `liburing-dev` headers runs on ringline by linking
//! `-lringline` instead of `-luring`: [`io_uring_queue_init`] fills its
//! `struct io_uring` ([`uring::IoUring`]) with pointers into a ringline ring,
//! whose memory has the kernel's layout and index protocol, so liburing's inline
//! `io_uring_get_sqe`, `io_uring_prep_*`, `io_uring_peek_cqe`, `io_uring_cqe_seen`,
//! `io_uring_buf_ring_add`/`_advance` work on it unchanged.
//!
//! The engine runs inline, on the caller's thread, inside the submit and wait
//! functions (as io_uring with `DEFER_TASKRUN`), or on its own thread when the
//! ring is set up with `IORING_SETUP_SQPOLL`. Every wait is bounded by the
//! caller's timeout.
//!
//! The socket calls for ringline's sockets are in [`sockets`]; the NIC and
//! addresses in [`nic`]. `docs/capi.md` describes the whole library.

/// Declares exported functions for features ringline does not have: each
/// returns `-err` and reads none of its arguments (liburing's functions for
/// kernel features the engine lacks, answered as a kernel without them).
macro_rules! unsupported {
    ($($(#[$m:meta])* fn $name:ident($($ty:ty),*) -> $ret:ty = $err:expr;)*) => {$(
        $(#[$m])*
        ///
        /// # Safety
        ///
        /// None: the arguments are not read.
        #[no_mangle]
        pub unsafe extern "C" fn $name($(_: $ty),*) -> $ret { -($err as $ret) }
    )*};
}

mod backend;
pub mod newer;
pub mod nic;
pub mod sockets;
pub mod stream;
pub mod uring;

use core::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringline_ring::abi::{self, Params};
use ringline_ring::app::Driver;
use ringline_ring::bufring::BufRingConsumer;
use ringline_ring::ring::RingConfig;
use ringline_ring::{Cqe, IoUringBufReg, Sqe};
use stack::{SocketNumbersHook, SqpollConfig};

use abi::{Probe, ProbeOp, IO_URING_OP_SUPPORTED};
use backend::Backend;
use sockets::{Hook, Mailbox, Work};
use uring::{IoUring, MAGIC};

/// `struct __kernel_timespec`.
#[repr(C)]
pub struct KernelTimespec {
    /// Seconds.
    pub tv_sec: i64,
    /// Nanoseconds.
    pub tv_nsec: i64,
}

/// What `struct io_uring`'s `sq.pad` points to.
struct CRing {
    id: u64,
    ring_fd: i32,
    backend: Box<dyn Backend>,
    mailbox: Arc<Mailbox>,
    /// What `io_uring_register_napi` last set (liburing 2.6; see [`newer`]).
    napi: newer::Napi,
}

impl CRing {
    fn driver(&mut self) -> &mut dyn Driver {
        self.backend.driver()
    }

    /// Does what `setsockopt()`, `shutdown()` and `close()` handed to this
    /// ring, in order (an SQPOLL engine's go through its thread's command
    /// queue at once).
    fn run_mailbox(&mut self) {
        // A plain load first: every submit and wait passes here, and a close() is rare.
        // Relaxed suffices for the check; the acquire swap below pairs with close()'s
        // release store after it pushed.
        if !self.mailbox.pending.load(Ordering::Relaxed)
            || !self.mailbox.pending.swap(false, Ordering::Acquire)
        {
            return;
        }
        let work =
            std::mem::take(&mut *self.mailbox.work.lock().unwrap_or_else(|e| e.into_inner()));
        // In the order the calls were made. EBADF: the engine closed the socket
        // meanwhile (an IORING_OP_CLOSE first); the calls already returned.
        for w in work {
            let _ = match w {
                Work::SetOption(fd, level, name, val) => {
                    self.backend.set_socket_option(fd, level, name, val)
                }
                Work::Shutdown(fd, how) => self.backend.shutdown_socket(fd, how),
                Work::Close(fd) => self.backend.close_socket(fd),
            };
        }
    }

    /// `io_uring_enter`: returns SQEs consumed or `-errno`.
    fn enter(
        &mut self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        timeout: Option<Duration>,
    ) -> i32 {
        self.run_mailbox();
        match self.driver().enter(to_submit, min_complete, flags, timeout) {
            Ok(n) => n as i32,
            Err(e) => -e.0,
        }
    }
}

/// The ringline state behind `ring`, if ringline filled it.
///
/// # Safety
///
/// `ring` is null or points to a `struct io_uring` that is not accessed
/// concurrently (liburing's rule: one thread per ring).
unsafe fn state<'a>(ring: *mut IoUring) -> Option<&'a mut CRing> {
    if ring.is_null() {
        return None;
    }
    // SAFETY: non-null, and the caller's contract makes it a valid, exclusive io_uring.
    let r = unsafe { &*ring };
    if r.cq.pad[0] != MAGIC {
        return None;
    }
    let p = (u64::from(r.sq.pad[1]) << 32 | u64::from(r.sq.pad[0])) as usize as *mut CRing;
    // SAFETY: MAGIC marks a struct filled by io_uring_queue_init_params, which stored a
    // Box<CRing> pointer here; io_uring_queue_exit clears MAGIC before freeing it.
    unsafe { p.as_mut() }
}

/// The u32 at `p`, viewed as an atomic.
///
/// # Safety
///
/// `p` is an aligned ring word that stays mapped for `'a` and is accessed atomically
/// by everyone else (the engine, liburing's inline helpers).
unsafe fn word<'a>(p: *mut u32) -> &'a AtomicU32 {
    // SAFETY: the caller's contract.
    unsafe { AtomicU32::from_ptr(p) }
}

/// liburing's `__io_uring_flush_sq`: publishes the SQEs `io_uring_get_sqe` handed
/// out; returns how many are published and not yet consumed.
///
/// # Safety
///
/// `ring` was filled by ringline and is used by one thread.
unsafe fn flush_sq(ring: *mut IoUring) -> u32 {
    // SAFETY: the caller's contract; the sq pointers point into the ring memory.
    unsafe {
        let sq = &mut (*ring).sq;
        let tail = sq.sqe_tail;
        if sq.sqe_head != tail {
            sq.sqe_head = tail;
            // The application writes sq.tail; release publishes the SQEs it filled
            // (pairs with the engine's acquire load of sq.tail).
            word(sq.ktail).store(tail, Ordering::Release);
        }
        // Engine store-releases sq.head after copying SQEs; acquire pairs with it.
        tail.wrapping_sub(word(sq.khead).load(Ordering::Acquire))
    }
}

/// liburing's peek: the CQE at the head and how many are ready.
///
/// # Safety
///
/// As [`flush_sq`].
unsafe fn peek(ring: *mut IoUring) -> (*mut Cqe, u32) {
    // SAFETY: the caller's contract; the cq pointers point into the ring memory.
    unsafe {
        let cq = &(*ring).cq;
        // Engine store-releases cq.tail after writing CQEs; acquire pairs with it.
        let tail = word(cq.ktail).load(Ordering::Acquire);
        // Only the application writes cq.head.
        let head = word(cq.khead).load(Ordering::Relaxed);
        let avail = tail.wrapping_sub(head);
        if avail == 0 {
            return (ptr::null_mut(), 0);
        }
        (cq.cqes.add((head & cq.ring_mask) as usize), avail)
    }
}

fn duration(ts: *const KernelTimespec) -> Option<Duration> {
    // SAFETY: the callers pass the application's timespec pointer or null.
    let ts = unsafe { ts.as_ref() }?;
    Some(Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    ))
}

/// liburing's `_io_uring_get_cqe`: submit `submit`, then wait until `wait_nr`
/// CQEs are ready (at most `timeout`: then any one will do) and point
/// `*cqe_ptr` at the first.
///
/// # Safety
///
/// As [`flush_sq`]; `cqe_ptr` is writable.
unsafe fn get_cqe(
    ring: *mut IoUring,
    cqe_ptr: *mut *mut Cqe,
    mut submit: u32,
    wait_nr: u32,
    timeout: Option<Duration>,
) -> i32 {
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { state(ring) }) else {
        return -libc::EBADF;
    };
    let start = std::time::Instant::now();
    let mut stepped = false;
    loop {
        // SAFETY: the caller's contract.
        let (cqe, avail) = unsafe { peek(ring) };
        if !cqe.is_null() && avail >= wait_nr && submit == 0 {
            // SAFETY: the caller's contract: cqe_ptr is writable.
            unsafe { *cqe_ptr = cqe };
            return 0;
        }
        if cqe.is_null() && wait_nr == 0 && submit == 0 {
            if stepped {
                // SAFETY: as above.
                unsafe { *cqe_ptr = ptr::null_mut() };
                return -libc::EAGAIN;
            }
            // A peek of an inline ring runs the engine once: nothing else would.
            stepped = true;
            st.enter(0, 0, abi::IORING_ENTER_GETEVENTS, None);
            continue;
        }
        let left = match timeout {
            Some(t) => match t.checked_sub(start.elapsed()) {
                Some(l) => Some(l),
                // SAFETY: the caller's contract.
                None => return unsafe { timed_out(ring, cqe_ptr) },
            },
            None => None,
        };
        let r = st.enter(submit, wait_nr, abi::IORING_ENTER_GETEVENTS, left);
        if r == -libc::ETIME {
            // SAFETY: the caller's contract.
            return unsafe { timed_out(ring, cqe_ptr) };
        }
        if r < 0 {
            return r;
        }
        submit = 0;
    }
}

/// The end of a timed wait that saw fewer than `wait_nr` CQEs: the kernel's
/// wait returns 0 when any CQE is ready (`io_cqring_wait`), and liburing then
/// hands that CQE out; `-ETIME` only when there is none.
///
/// # Safety
///
/// As [`get_cqe`].
unsafe fn timed_out(ring: *mut IoUring, cqe_ptr: *mut *mut Cqe) -> i32 {
    // SAFETY: the caller's contract.
    let (cqe, _) = unsafe { peek(ring) };
    if cqe.is_null() {
        return -libc::ETIME;
    }
    // SAFETY: the caller's contract: cqe_ptr is writable.
    unsafe { *cqe_ptr = cqe };
    0
}

static NEXT_RING: AtomicU64 = AtomicU64::new(1);

/// `RLIMIT_NOFILE`'s soft limit: the most fds, so ringline sockets, the
/// process may have open now.
fn nofile_limit() -> usize {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return usize::MAX;
    }
    usize::try_from(r.rlim_cur).unwrap_or(usize::MAX)
}

/// Fewest connections a ring is given room for before it fails with
/// `-ENOMEM`.
const MIN_CONNECTIONS: usize = 1024;

/// The most connections, at most `want` (halving down to
/// [`MIN_CONNECTIONS`]), whose socket buffers of `per` bytes the process's
/// address space can still reserve: probed with a mapping of no access
/// that is unmapped at once.
fn fit_connections(want: usize, per: usize) -> usize {
    let page = 4096;
    let per = per.next_multiple_of(page).max(page);
    let mut n = want.max(1);
    while n > MIN_CONNECTIONS {
        let Some(len) = n.checked_mul(per) else {
            n /= 2;
            continue;
        };
        // SAFETY: an anonymous mapping with no access at an address of the
        // kernel's choosing, reserving nothing; unmapped below.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            // SAFETY: the mapping made just above, used by nothing.
            unsafe { libc::munmap(p, len) };
            return n;
        }
        n /= 2;
    }
    n
}

/// `io_uring_queue_init_params`: sets up a ring of `entries` SQEs on ringline and
/// fills `*ring`; `p` in/out as io_uring_setup(2)'s params (`IORING_SETUP_CQSIZE`,
/// `CLAMP`, `SQPOLL` with `sq_thread_cpu`/`sq_thread_idle` are honoured;
/// `SUBMIT_ALL` (without it a submission stops after an SQE that fails its
/// checks); `SINGLE_ISSUER`, `COOP_TASKRUN`, `TASKRUN_FLAG`, `DEFER_TASKRUN`
/// are accepted). Returns 0 or `-errno`.
///
/// # Safety
///
/// `ring` and `p` point to writable structs of liburing 2.x's layout.
#[no_mangle]
pub unsafe extern "C" fn io_uring_queue_init_params(
    entries: u32,
    ring: *mut IoUring,
    p: *mut Params,
) -> i32 {
    if ring.is_null() || p.is_null() {
        return -libc::EFAULT;
    }
    // SAFETY: the caller's contract.
    let params = unsafe { &mut *p };
    let accepted = abi::IORING_SETUP_CQSIZE
        | abi::IORING_SETUP_CLAMP
        | abi::IORING_SETUP_SQPOLL
        | abi::IORING_SETUP_SQ_AFF
        | abi::IORING_SETUP_SUBMIT_ALL
        | abi::IORING_SETUP_COOP_TASKRUN
        | abi::IORING_SETUP_TASKRUN_FLAG
        | abi::IORING_SETUP_SINGLE_ISSUER
        | abi::IORING_SETUP_DEFER_TASKRUN;
    if params.flags & !accepted != 0 {
        eprintln!(
            "libringline: unsupported io_uring setup flags {:#x}",
            params.flags & !accepted
        );
        return -libc::EINVAL;
    }
    // The kernel's io_uring_setup: DEFER_TASKRUN needs SINGLE_ISSUER (one
    // task submits and reaps) and cannot go with SQPOLL (another task submits).
    let defer = params.flags & abi::IORING_SETUP_DEFER_TASKRUN != 0;
    if defer
        && (params.flags & abi::IORING_SETUP_SINGLE_ISSUER == 0
            || params.flags & abi::IORING_SETUP_SQPOLL != 0)
    {
        return -libc::EINVAL;
    }
    let cfg = RingConfig {
        sq_entries: entries,
        cq_entries: (params.flags & abi::IORING_SETUP_CQSIZE != 0).then_some(params.cq_entries),
        clamp: params.flags & abi::IORING_SETUP_CLAMP != 0,
        ..RingConfig::default()
    };
    let (port, mut ecfg) = match nic::next_nic() {
        Ok(x) => x,
        Err(nic::NicError::Config(msg)) => {
            eprintln!("libringline: {msg}");
            return -libc::EINVAL;
        }
    };
    let id = NEXT_RING.fetch_add(1, Ordering::Relaxed);
    ecfg.socket_numbers = Some(SocketNumbersHook(Arc::new(Hook { ring: id })));
    // The ring fd is reserved first: the engine is known by it to other
    // rings' IORING_OP_MSG_RING.
    let Some(ring_fd) = sockets::reserve_number() else {
        return -libc::EMFILE;
    };
    ecfg.ring_fd = Some(ring_fd);
    // Without IORING_SETUP_SUBMIT_ALL a submission stops after an SQE that
    // fails its checks, as the kernel's.
    ecfg.submit_all = params.flags & abi::IORING_SETUP_SUBMIT_ALL != 0;
    // Each ring reserves address space for its connections' buffers (8 MiB a
    // connection with the defaults). A process has no more sockets than its
    // fd limit (each ringline socket holds a number), so a ring is sized by
    // it; past what the address space still holds, by what fits.
    let want = ecfg
        .max_connections
        .min(nofile_limit().max(MIN_CONNECTIONS));
    ecfg.max_connections = fit_connections(want, ecfg.rx_buffer + ecfg.tx_buffer);
    if ecfg.max_connections < want {
        eprintln!(
            "libringline: address space for {} connections on this ring (of {want})",
            ecfg.max_connections
        );
    }
    let backend = if params.flags & abi::IORING_SETUP_SQPOLL != 0 {
        let sq = SqpollConfig {
            cpu: (params.flags & abi::IORING_SETUP_SQ_AFF != 0)
                .then_some(params.sq_thread_cpu as usize),
            idle: Duration::from_millis(if params.sq_thread_idle == 0 {
                1000
            } else {
                u64::from(params.sq_thread_idle)
            }),
        };
        match port {
            nic::Port::Loopback(p) => backend::sqpoll(p, &cfg, ecfg, &sq),
            #[cfg(feature = "dpdk")]
            nic::Port::Dpdk(_) => {
                eprintln!("libringline: IORING_SETUP_SQPOLL is not supported on a DPDK port");
                sockets::free_number(ring_fd);
                return -libc::EINVAL;
            }
        }
    } else {
        match port {
            nic::Port::Loopback(p) => backend::inline(p, &cfg, ecfg),
            #[cfg(feature = "dpdk")]
            nic::Port::Dpdk(p) => backend::inline(*p, &cfg, ecfg),
        }
    };
    let mut backend = match backend {
        Ok(b) => b,
        Err(e) => {
            sockets::free_number(ring_fd);
            eprintln!("libringline: {e}");
            return match e {
                stack::OpenError::Ring(s) => s.errno(),
                stack::OpenError::Engine(stack::EngineError::Buffers { .. }) => -libc::ENOMEM,
                _ => -libc::EINVAL,
            };
        }
    };
    backend.set_defer_taskrun(defer);
    let app = backend.app();
    let out = app.params();
    let base = app.region_ptr();
    let len = app.region_len();
    let sqes = app.sqes_offset();
    let mailbox = Arc::new(Mailbox {
        closer: backend.closer(),
        ..Mailbox::default()
    });
    sockets::adopt_ring_fd(ring_fd, id, mailbox.clone());
    let st = Box::into_raw(Box::new(CRing {
        id,
        ring_fd,
        backend,
        mailbox,
        napi: newer::Napi::default(),
    }));
    ring_fds().insert(ring_fd, st as usize);
    let flags_in = params.flags;
    *params = Params {
        flags: out.flags | (flags_in & !abi::IORING_SETUP_CQSIZE),
        // This library's waits take liburing 2.8's minimum timeout.
        features: out.features | abi::IORING_FEAT_MIN_TIMEOUT,
        ..out
    };
    let at = |off: u32| -> *mut u32 {
        // SAFETY: every ring offset in the params is inside the region.
        unsafe { base.add(off as usize).cast::<u32>() }
    };
    let so = out.sq_off;
    let co = out.cq_off;
    let addr = st as usize as u64;
    // SAFETY: the caller's contract: ring points to a writable struct io_uring.
    unsafe {
        ring.write(IoUring {
            sq: uring::IoUringSq {
                khead: at(so.head),
                ktail: at(so.tail),
                kring_mask: at(so.ring_mask),
                kring_entries: at(so.ring_entries),
                kflags: at(so.flags),
                kdropped: at(so.dropped),
                array: at(so.array),
                // SAFETY (inside): the SQE array is inside the region.
                sqes: base.add(sqes).cast::<Sqe>(),
                sqe_head: 0,
                sqe_tail: 0,
                ring_sz: len,
                ring_ptr: base.cast(),
                ring_mask: out.sq_entries - 1,
                ring_entries: out.sq_entries,
                pad: [addr as u32, (addr >> 32) as u32],
            },
            cq: uring::IoUringCq {
                khead: at(co.head),
                ktail: at(co.tail),
                kring_mask: at(co.ring_mask),
                kring_entries: at(co.ring_entries),
                kflags: at(co.flags),
                koverflow: at(co.overflow),
                cqes: base.add(co.cqes as usize).cast::<Cqe>(),
                ring_sz: len,
                ring_ptr: base.cast(),
                ring_mask: out.cq_entries - 1,
                ring_entries: out.cq_entries,
                pad: [MAGIC, 0],
            },
            flags: params.flags,
            ring_fd,
            features: params.features,
            enter_ring_fd: ring_fd,
            int_flags: 0,
            pad: [0; 3],
            pad2: 0,
        })
    };
    0
}

/// `io_uring_queue_init`: [`io_uring_queue_init_params`] with only `flags`.
///
/// # Safety
///
/// `ring` points to a writable `struct io_uring`.
#[no_mangle]
pub unsafe extern "C" fn io_uring_queue_init(entries: u32, ring: *mut IoUring, flags: u32) -> i32 {
    let mut p = Params {
        flags,
        ..Params::default()
    };
    // SAFETY: the caller's contract; p is a local.
    unsafe { io_uring_queue_init_params(entries, ring, &mut p) }
}

/// `io_uring_queue_exit`: stops the engine, closes its sockets, frees the ring.
///
/// # Safety
///
/// `ring` was filled by [`io_uring_queue_init_params`] and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn io_uring_queue_exit(ring: *mut IoUring) {
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { state(ring) }) else {
        return;
    };
    // SAFETY: ring is valid (state() checked it); clear MAGIC before freeing so a
    // second exit is a no-op.
    unsafe { (*ring).cq.pad[0] = 0 };
    // SAFETY: the pointer came from Box::into_raw in queue_init and MAGIC was set,
    // so it has not been freed.
    let st = unsafe { Box::from_raw(st as *mut CRing) };
    let (id, fd) = (st.id, st.ring_fd);
    ring_fds().remove(&fd);
    drop(st);
    sockets::forget_ring(id, fd);
}

/// `io_uring_submit`: publishes the SQEs from `io_uring_get_sqe` and runs the
/// engine on them. Returns how many were consumed, or `-errno`.
///
/// # Safety
///
/// `ring` was filled by ringline; every SQE follows io_uring's memory contract.
#[no_mangle]
pub unsafe extern "C" fn io_uring_submit(ring: *mut IoUring) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { io_uring_submit_and_wait(ring, 0) }
}

/// `io_uring_submit_and_wait`: submits, then waits (unbounded, as liburing) for
/// `wait_nr` CQEs.
///
/// # Safety
///
/// As [`io_uring_submit`].
#[no_mangle]
pub unsafe extern "C" fn io_uring_submit_and_wait(ring: *mut IoUring, wait_nr: u32) -> i32 {
    // SAFETY: the caller's contract.
    let n = unsafe { flush_sq(ring) };
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { state(ring) }) else {
        return -libc::EBADF;
    };
    let flags = if wait_nr > 0 {
        abi::IORING_ENTER_GETEVENTS
    } else {
        0
    };
    st.enter(n, wait_nr, flags, None)
}

/// `io_uring_submit_and_wait_timeout`: submits, then waits up to `ts` (null: no
/// limit) for `wait_nr` CQEs; `*cqe_ptr` is the first. Returns SQEs submitted,
/// or `-ETIME` / `-errno`.
///
/// # Safety
///
/// As [`io_uring_submit`]; `cqe_ptr` writable, `ts` null or readable.
#[no_mangle]
pub unsafe extern "C" fn io_uring_submit_and_wait_timeout(
    ring: *mut IoUring,
    cqe_ptr: *mut *mut Cqe,
    wait_nr: u32,
    ts: *const KernelTimespec,
    _sigmask: *const libc::sigset_t,
) -> i32 {
    // SAFETY: the caller's contract.
    let n = unsafe { flush_sq(ring) };
    // SAFETY: the caller's contract.
    let r = unsafe { get_cqe(ring, cqe_ptr, n, wait_nr, duration(ts)) };
    if r < 0 {
        r
    } else {
        n as i32
    }
}

/// `io_uring_submit_and_get_events`: submits and flushes completions.
///
/// # Safety
///
/// As [`io_uring_submit`].
#[no_mangle]
pub unsafe extern "C" fn io_uring_submit_and_get_events(ring: *mut IoUring) -> i32 {
    // SAFETY: the caller's contract.
    let n = unsafe { flush_sq(ring) };
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { state(ring) }) else {
        return -libc::EBADF;
    };
    st.enter(n, 0, abi::IORING_ENTER_GETEVENTS, None)
}

/// `io_uring_get_events`: runs the engine once (flushes completions).
///
/// # Safety
///
/// `ring` was filled by ringline.
#[no_mangle]
pub unsafe extern "C" fn io_uring_get_events(ring: *mut IoUring) -> i32 {
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { state(ring) }) else {
        return -libc::EBADF;
    };
    st.enter(0, 0, abi::IORING_ENTER_GETEVENTS, None).min(0)
}

/// `__io_uring_get_cqe`, called by liburing's inline `io_uring_wait_cqe`,
/// `io_uring_peek_cqe` and `io_uring_wait_cqe_nr` when the CQ does not hold
/// enough: submits `submit`, waits (unbounded) for `wait_nr` CQEs (0: runs the
/// engine once, `-EAGAIN` if still none).
///
/// # Safety
///
/// `ring` was filled by ringline; `cqe_ptr` is writable.
#[no_mangle]
pub unsafe extern "C" fn __io_uring_get_cqe(
    ring: *mut IoUring,
    cqe_ptr: *mut *mut Cqe,
    submit: u32,
    wait_nr: u32,
    _sigmask: *const libc::sigset_t,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { get_cqe(ring, cqe_ptr, submit, wait_nr, None) }
}

/// `io_uring_wait_cqes`: waits up to `ts` (null: no limit) for `wait_nr` CQEs.
/// Returns 0 with `*cqe_ptr` set, `-ETIME` or `-errno`.
///
/// # Safety
///
/// As [`__io_uring_get_cqe`]; `ts` null or readable.
#[no_mangle]
pub unsafe extern "C" fn io_uring_wait_cqes(
    ring: *mut IoUring,
    cqe_ptr: *mut *mut Cqe,
    wait_nr: u32,
    ts: *const KernelTimespec,
    _sigmask: *const libc::sigset_t,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { get_cqe(ring, cqe_ptr, 0, wait_nr, duration(ts)) }
}

/// `io_uring_wait_cqe_timeout`: one CQE within `ts` (null: no limit).
///
/// # Safety
///
/// As [`io_uring_wait_cqes`].
#[no_mangle]
pub unsafe extern "C" fn io_uring_wait_cqe_timeout(
    ring: *mut IoUring,
    cqe_ptr: *mut *mut Cqe,
    ts: *const KernelTimespec,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { get_cqe(ring, cqe_ptr, 0, 1, duration(ts)) }
}

/// `io_uring_peek_batch_cqe`: up to `count` ready CQEs into `cqes` (not
/// consumed: the caller advances). Runs the engine once if none is ready.
///
/// # Safety
///
/// `ring` was filled by ringline; `cqes` has room for `count` pointers.
#[no_mangle]
pub unsafe extern "C" fn io_uring_peek_batch_cqe(
    ring: *mut IoUring,
    cqes: *mut *mut Cqe,
    count: u32,
) -> u32 {
    for attempt in 0..2 {
        // SAFETY: the caller's contract.
        let (first, avail) = unsafe { peek(ring) };
        if !first.is_null() {
            // SAFETY: the caller's contract; the CQ pointers are the ring's.
            unsafe {
                let cq = &(*ring).cq;
                let head = word(cq.khead).load(Ordering::Relaxed);
                let n = avail.min(count);
                for i in 0..n {
                    *cqes.add(i as usize) =
                        cq.cqes.add((head.wrapping_add(i) & cq.ring_mask) as usize);
                }
                return n;
            }
        }
        if attempt == 0 {
            // SAFETY: the caller's contract.
            if let Some(st) = unsafe { state(ring) } {
                st.enter(0, 0, abi::IORING_ENTER_GETEVENTS, None);
            }
        }
    }
    0
}

/// `io_uring_get_sqe` (liburing 2.3 has it inline; this copy serves binaries
/// that call the symbol). The next free SQE, or null when the SQ is full.
///
/// # Safety
///
/// `ring` was filled by ringline.
#[no_mangle]
pub unsafe extern "C" fn io_uring_get_sqe(ring: *mut IoUring) -> *mut Sqe {
    // SAFETY: the caller's contract; sq pointers are the ring's.
    unsafe {
        let sq = &mut (*ring).sq;
        let head = word(sq.khead).load(Ordering::Acquire);
        let next = sq.sqe_tail.wrapping_add(1);
        if next.wrapping_sub(head) > sq.ring_entries {
            return ptr::null_mut();
        }
        let sqe = sq.sqes.add((sq.sqe_tail & sq.ring_mask) as usize);
        sq.sqe_tail = next;
        sqe
    }
}

/// `__io_uring_sqring_wait`: waits until the SQ has a free slot.
///
/// # Safety
///
/// `ring` was filled by ringline.
#[no_mangle]
pub unsafe extern "C" fn __io_uring_sqring_wait(ring: *mut IoUring) -> i32 {
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { state(ring) }) else {
        return -libc::EBADF;
    };
    st.enter(0, 0, abi::IORING_ENTER_SQ_WAIT, None)
}

/// `io_uring_register_buf_ring`: registers the provided-buffer ring the
/// application mapped at `reg->ring_addr` as group `reg->bgid`. `flags` is
/// OR-ed into `reg->flags` (truncated to the field's 16 bits), as liburing
/// 2.5 on does; 2.3 ignored it. `IOU_PBUF_RING_INC` makes the ring
/// incremental; `IOU_PBUF_RING_MMAP` (a ring the kernel allocates, mapped
/// through the ring fd) and unknown bits are `-EINVAL`, as a kernel without
/// them (`ringline_ring::bufring::incremental_flag`).
///
/// # Safety
///
/// `reg` is readable; the ring memory it names stays mapped until the group is
/// unregistered or the ring exits (io_uring's contract).
#[no_mangle]
pub unsafe extern "C" fn io_uring_register_buf_ring(
    ring: *mut IoUring,
    reg: *const IoUringBufReg,
    flags: u32,
) -> i32 {
    // SAFETY: the caller's contract.
    let (Some(st), Some(reg)) = (unsafe { state(ring) }, unsafe { reg.as_ref() }) else {
        return -libc::EFAULT;
    };
    // SAFETY: the caller's contract: ring_addr is ring_entries * 16 mapped bytes used
    // as a buffer ring for as long as the group is registered.
    unsafe { register_buf_ring(st, reg, reg.flags | flags as u16) }
}

/// Registers the buffer ring `reg` names with `IOU_PBUF_RING_*` `flags`.
///
/// # Safety
///
/// As [`io_uring_register_buf_ring`].
unsafe fn register_buf_ring(st: &mut CRing, reg: &IoUringBufReg, flags: u16) -> i32 {
    let Some(inc) = ringline_ring::bufring::incremental_flag(flags) else {
        return -libc::EINVAL;
    };
    if !reg.ring_addr.is_multiple_of(4096) || reg.resv.iter().any(|&w| w != 0) {
        return -libc::EINVAL;
    }
    // The kernel pins the ring's pages at registration: memory that is not
    // mapped is -EFAULT then (liburing's test/buf-ring.c, test_bad_reg),
    // not a fault when the engine first reads it.
    // (The same check as IORING_REGISTER_BUFFERS's in the engine.)
    if let Err(e) = stack::check_mapped(reg.ring_addr, (reg.ring_entries as usize * 16).max(1)) {
        return -e.0;
    }
    // SAFETY: the caller's contract.
    let mut c = match unsafe {
        BufRingConsumer::from_raw(reg.ring_addr as usize as *mut u8, reg.ring_entries)
    } {
        Ok(c) => c,
        Err(e) => return e.errno(),
    };
    if inc {
        c.set_incremental();
    }
    match st.driver().register_buf_ring(reg.bgid, c) {
        Ok(()) => 0,
        Err(e) => -e.0,
    }
}

/// `io_uring_unregister_buf_ring`.
///
/// # Safety
///
/// `ring` was filled by ringline.
#[no_mangle]
pub unsafe extern "C" fn io_uring_unregister_buf_ring(ring: *mut IoUring, bgid: i32) -> i32 {
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { state(ring) }) else {
        return -libc::EFAULT;
    };
    let Ok(bgid) = u16::try_from(bgid) else {
        return -libc::EINVAL;
    };
    match st.driver().unregister_buf_ring(bgid) {
        Ok(()) => 0,
        Err(e) => -e.0,
    }
}

/// `io_uring_get_probe_ring`: which opcodes ringline supports (the engine's
/// decoder's answer, as `IORING_REGISTER_PROBE` gives it). Free with
/// [`io_uring_free_probe`]. Null if out of memory.
///
/// # Safety
///
/// `ring` was filled by ringline (it is not otherwise used).
#[no_mangle]
pub unsafe extern "C" fn io_uring_get_probe_ring(_ring: *mut IoUring) -> *mut Probe {
    io_uring_get_probe()
}

/// `io_uring_get_probe`: as [`io_uring_get_probe_ring`], without a ring.
#[no_mangle]
pub extern "C" fn io_uring_get_probe() -> *mut Probe {
    // SAFETY: calloc has no preconditions; the result is checked for null.
    let p = unsafe { libc::calloc(1, core::mem::size_of::<Probe>()) }.cast::<Probe>();
    if p.is_null() {
        return p;
    }
    // SAFETY: p is a fresh, zeroed, suitably aligned (malloc) Probe.
    let probe = unsafe { &mut *p };
    probe.last_op = abi::IORING_OP_LAST - 1;
    probe.ops_len = abi::IORING_OP_LAST;
    for op in 0..abi::IORING_OP_LAST {
        probe.ops[op as usize] = ProbeOp {
            op,
            flags: if stack::opcode_supported(op) {
                IO_URING_OP_SUPPORTED
            } else {
                0
            },
            ..ProbeOp::default()
        };
    }
    p
}

/// `io_uring_free_probe`.
///
/// # Safety
///
/// `probe` came from [`io_uring_get_probe`] (or is null).
#[no_mangle]
pub unsafe extern "C" fn io_uring_free_probe(probe: *mut Probe) {
    // SAFETY: the caller's contract: calloc'd by io_uring_get_probe.
    unsafe { libc::free(probe.cast()) }
}

/// `io_uring_register(2)` on ringline's engine (registered files and
/// buffers, the probe): the engine reads `arg` during the call, with the
/// kernel's layouts and errnos. Returns the call's result or `-errno`.
///
/// # Safety
///
/// `arg` is what `opcode` expects, readable (and writable for the probe)
/// for the call's duration.
unsafe fn register_raw(ring: *mut IoUring, opcode: u32, arg: u64, nr_args: u32) -> i32 {
    // SAFETY: the caller's contract (`ring` filled by ringline).
    let Some(st) = (unsafe { state(ring) }) else {
        return -libc::EFAULT;
    };
    // SAFETY: the caller's contract: `arg` is valid for `opcode` during the call.
    match unsafe { st.driver().register(opcode, arg, nr_args) } {
        Ok(n) => n as i32,
        Err(e) => -e.0,
    }
}

/// `io_uring_register_files`: a file table holding `fds` (ringline sockets;
/// `-1` for an empty slot).
///
/// # Safety
///
/// `fds` points to `n` readable ints.
#[no_mangle]
pub unsafe extern "C" fn io_uring_register_files(
    ring: *mut IoUring,
    fds: *const i32,
    n: u32,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { register_raw(ring, abi::IORING_REGISTER_FILES, fds as u64, n) }
}

/// `io_uring_register_files_sparse`: a file table of `n` empty slots.
///
/// # Safety
///
/// `ring` was filled by ringline.
#[no_mangle]
pub unsafe extern "C" fn io_uring_register_files_sparse(ring: *mut IoUring, n: u32) -> i32 {
    let reg = abi::RsrcRegister {
        nr: n,
        flags: abi::IORING_RSRC_REGISTER_SPARSE,
        resv2: 0,
        data: 0,
        tags: 0,
    };
    let len = core::mem::size_of::<abi::RsrcRegister>() as u32;
    // SAFETY: `reg` lives for the call.
    unsafe {
        register_raw(
            ring,
            abi::IORING_REGISTER_FILES2,
            &reg as *const _ as u64,
            len,
        )
    }
}

/// `io_uring_register_files_update`: replaces `n` slots from `off`; returns
/// how many were updated.
///
/// # Safety
///
/// `fds` points to `n` readable ints.
#[no_mangle]
pub unsafe extern "C" fn io_uring_register_files_update(
    ring: *mut IoUring,
    off: u32,
    fds: *const i32,
    n: u32,
) -> i32 {
    let upd = abi::RsrcUpdate {
        offset: off,
        resv: 0,
        data: fds as u64,
    };
    // SAFETY: `upd` lives for the call; the caller's contract covers `fds`.
    unsafe {
        register_raw(
            ring,
            abi::IORING_REGISTER_FILES_UPDATE,
            &upd as *const _ as u64,
            n,
        )
    }
}

/// `io_uring_unregister_files`.
///
/// # Safety
///
/// `ring` was filled by ringline.
#[no_mangle]
pub unsafe extern "C" fn io_uring_unregister_files(ring: *mut IoUring) -> i32 {
    // SAFETY: no argument is read.
    unsafe { register_raw(ring, abi::IORING_UNREGISTER_FILES, 0, 0) }
}

/// `io_uring_register_file_alloc_range`: where `IORING_FILE_INDEX_ALLOC`
/// allocates.
///
/// # Safety
///
/// `ring` was filled by ringline.
#[no_mangle]
pub unsafe extern "C" fn io_uring_register_file_alloc_range(
    ring: *mut IoUring,
    off: u32,
    len: u32,
) -> i32 {
    let range = abi::FileIndexRange { off, len, resv: 0 };
    // SAFETY: `range` lives for the call.
    unsafe {
        register_raw(
            ring,
            abi::IORING_REGISTER_FILE_ALLOC_RANGE,
            &range as *const _ as u64,
            0,
        )
    }
}

/// `io_uring_register_buffers`: registered buffers for READ_FIXED,
/// WRITE_FIXED and `IORING_RECVSEND_FIXED_BUF`.
///
/// # Safety
///
/// `iovecs` points to `n` readable iovecs whose memory stays valid (and is
/// used by the engine) until the buffers are unregistered or the ring exits.
#[no_mangle]
pub unsafe extern "C" fn io_uring_register_buffers(
    ring: *mut IoUring,
    iovecs: *const libc::iovec,
    n: u32,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { register_raw(ring, abi::IORING_REGISTER_BUFFERS, iovecs as u64, n) }
}

/// `io_uring_unregister_buffers`.
///
/// # Safety
///
/// `ring` was filled by ringline.
#[no_mangle]
pub unsafe extern "C" fn io_uring_unregister_buffers(ring: *mut IoUring) -> i32 {
    // SAFETY: no argument is read.
    unsafe { register_raw(ring, abi::IORING_UNREGISTER_BUFFERS, 0, 0) }
}

/// `io_uring_register_probe`: fills `p` with the ops ringline supports.
///
/// # Safety
///
/// `p` points to a probe with room for `n` ops.
#[no_mangle]
pub unsafe extern "C" fn io_uring_register_probe(ring: *mut IoUring, p: *mut Probe, n: u32) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { register_raw(ring, abi::IORING_REGISTER_PROBE, p as u64, n) }
}

// Resource tags, eventfds, personalities, the io-wq knobs and the raw system
// calls: ringline's engine has none, so these fail with the errno a kernel
// without the feature gives (listed in docs/capi.md).
unsupported! {
    /// `io_uring_register_buffers_tags`.
    fn io_uring_register_buffers_tags(*mut IoUring, *const libc::iovec, *const u64, u32) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_register_buffers_sparse` (liburing 2.2): a table of empty
    /// buffer slots is only filled by updates, which ringline does not do.
    fn io_uring_register_buffers_sparse(*mut IoUring, u32) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_register_buffers_update_tag`.
    fn io_uring_register_buffers_update_tag(*mut IoUring, u32, *const libc::iovec, *const u64, u32) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_register_files_tags`.
    fn io_uring_register_files_tags(*mut IoUring, *const i32, *const u64, u32) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_register_files_update_tag`.
    fn io_uring_register_files_update_tag(*mut IoUring, u32, *const i32, *const u64, u32) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_register_eventfd`.
    fn io_uring_register_eventfd(*mut IoUring, i32) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_register_eventfd_async`.
    fn io_uring_register_eventfd_async(*mut IoUring, i32) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_unregister_eventfd`.
    fn io_uring_unregister_eventfd(*mut IoUring) -> i32 = libc::ENXIO;
    /// `io_uring_register_personality`.
    fn io_uring_register_personality(*mut IoUring) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_unregister_personality`.
    fn io_uring_unregister_personality(*mut IoUring, i32) -> i32 = libc::EINVAL;
    /// `io_uring_register_restrictions`: only a ring set up with
    /// `IORING_SETUP_R_DISABLED` takes restrictions, and ringline refuses that
    /// flag, so `-EBADFD` as the kernel answers for an enabled ring.
    fn io_uring_register_restrictions(*mut IoUring, *mut libc::c_void, u32) -> i32 = libc::EBADFD;
    /// `io_uring_enable_rings`: rings are never disabled (`R_DISABLED` is
    /// refused): `-EBADFD`, as the kernel for a ring that is enabled.
    fn io_uring_enable_rings(*mut IoUring) -> i32 = libc::EBADFD;
    /// `io_uring_register_iowq_aff`: no io-wq.
    fn io_uring_register_iowq_aff(*mut IoUring, usize, *const libc::cpu_set_t) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_unregister_iowq_aff`.
    fn io_uring_unregister_iowq_aff(*mut IoUring) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_register_iowq_max_workers`.
    fn io_uring_register_iowq_max_workers(*mut IoUring, *mut u32) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_register_ring_fd`: the ring fd is not a kernel ring (`-EINVAL`,
    /// as a kernel before 5.18; liburing programs fall back to the plain fd).
    fn io_uring_register_ring_fd(*mut IoUring) -> i32 = libc::EINVAL;
    /// `io_uring_unregister_ring_fd`.
    fn io_uring_unregister_ring_fd(*mut IoUring) -> i32 = libc::EINVAL;
    /// `io_uring_queue_mmap`: ringline rings are not made from a kernel fd.
    fn io_uring_queue_mmap(i32, *mut Params, *mut IoUring) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_setup`: the raw system call (`-ENOSYS`): use `io_uring_queue_init`.
    fn io_uring_setup(u32, *mut Params) -> i32 = libc::ENOSYS;
}

/// Each ringline ring's fd and its state (a `Box<CRing>` from
/// `io_uring_queue_init_params`, removed by `io_uring_queue_exit` before it is
/// freed), for the raw `io_uring_enter`, which names a ring by its fd.
fn ring_fds() -> std::sync::MutexGuard<'static, std::collections::HashMap<i32, usize>> {
    static M: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<i32, usize>>> =
        std::sync::OnceLock::new();
    M.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The state of the ringline ring whose fd is `fd`, if it is one.
///
/// # Safety
///
/// The ring is not used by another thread meanwhile (liburing's rule); the
/// pointer is live: `io_uring_queue_exit` takes it out of the map before
/// freeing it.
unsafe fn ring_of_fd<'a>(fd: u32) -> Option<&'a mut CRing> {
    let ptr = ring_fds().get(&(fd as i32)).copied()?;
    // SAFETY: the caller's contract, above.
    Some(unsafe { &mut *(ptr as *mut CRing) })
}

/// A raw system call's result as liburing's wrappers give it: the value, or
/// `-errno`.
fn kernel_result(r: libc::c_long) -> i32 {
    if r < 0 {
        // SAFETY: errno of this thread.
        -unsafe { *libc::__errno_location() }
    } else {
        r as i32
    }
}

/// `struct io_uring_getevents_arg` (`IORING_ENTER_EXT_ARG`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct GeteventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}
const _: () = assert!(core::mem::size_of::<GeteventsArg>() == 24);

/// `IORING_ENTER_ABS_TIMER`: the timeout is an absolute time (on the ring's
/// clock, CLOCK_MONOTONIC: `io_uring_register_clock` is recorded only).
const ENTER_ABS_TIMER: u32 = 1 << 5;
/// `IORING_ENTER_EXT_ARG_REG`: the argument names a registered wait region.
const ENTER_EXT_ARG_REG: u32 = 1 << 6;
/// `IORING_ENTER_NO_IOWAIT`.
const ENTER_NO_IOWAIT: u32 = 1 << 7;

/// `io_uring_enter(2)` on a ringline ring, named by its fd: submits up to
/// `to_submit` SQEs the application published, and with `GETEVENTS` waits
/// for `min_complete` CQEs. Any other fd goes to the kernel's system call.
///
/// # Safety
///
/// `sig` is null or a readable `sigset_t` (ringline changes no signal mask:
/// it is not read); the ring is not used by another thread meanwhile
/// (liburing's rule).
#[no_mangle]
pub unsafe extern "C" fn io_uring_enter(
    fd: u32,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
    sig: *mut libc::sigset_t,
) -> i32 {
    if flags & abi::IORING_ENTER_EXT_ARG != 0 {
        return -libc::EINVAL;
    }
    // SAFETY: the caller's contract; without EXT_ARG the argument is a sigset.
    unsafe { io_uring_enter2(fd, to_submit, min_complete, flags, sig, 8) }
}

/// `io_uring_enter2`: [`io_uring_enter`] with `IORING_ENTER_EXT_ARG`'s
/// `struct io_uring_getevents_arg` (a timeout, relative or with
/// `IORING_ENTER_ABS_TIMER` absolute; `min_wait_usec` is not honoured, the
/// wait is the plain one), or a sigset.
///
/// # Safety
///
/// `arg` is null or, with `EXT_ARG`, a readable `io_uring_getevents_arg` of
/// `sz` bytes whose `ts` is null or a readable timespec; else as
/// [`io_uring_enter`].
#[no_mangle]
pub unsafe extern "C" fn io_uring_enter2(
    fd: u32,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
    arg: *mut libc::sigset_t,
    sz: usize,
) -> i32 {
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { ring_of_fd(fd) }) else {
        // Not a ringline ring: the kernel's (a ring the program set up with
        // the raw system call, or an fd that is none: -EOPNOTSUPP there).
        // SAFETY: the caller's arguments, passed on unchanged.
        return kernel_result(unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                fd,
                to_submit,
                min_complete,
                flags,
                arg,
                sz,
            )
        });
    };
    let known = abi::IORING_ENTER_GETEVENTS
        | abi::IORING_ENTER_SQ_WAKEUP
        | abi::IORING_ENTER_SQ_WAIT
        | abi::IORING_ENTER_EXT_ARG
        | ENTER_ABS_TIMER
        | ENTER_NO_IOWAIT;
    if flags & !known != 0 || flags & ENTER_EXT_ARG_REG != 0 {
        return -libc::EINVAL;
    }
    let mut timeout = None;
    if flags & abi::IORING_ENTER_EXT_ARG != 0 {
        if sz != core::mem::size_of::<GeteventsArg>() {
            return -libc::EINVAL;
        }
        // SAFETY: the caller's contract: arg is a readable getevents_arg.
        let Some(a) = (unsafe { arg.cast::<GeteventsArg>().as_ref() }).copied() else {
            return -libc::EFAULT;
        };
        if let Some(t) = duration(a.ts as usize as *const KernelTimespec) {
            timeout = Some(if flags & ENTER_ABS_TIMER != 0 {
                t.saturating_sub(monotonic_now())
            } else {
                t
            });
        }
    } else if flags & ENTER_ABS_TIMER != 0 {
        return -libc::EINVAL;
    }
    let pass =
        abi::IORING_ENTER_GETEVENTS | abi::IORING_ENTER_SQ_WAKEUP | abi::IORING_ENTER_SQ_WAIT;
    st.enter(to_submit, min_complete, flags & pass, timeout)
}

/// `io_uring_register(2)` on a ringline ring, named by its fd: the register
/// calls libringline serves (files, buffers, the probe, buffer rings, ...)
/// with the kernel's layouts and errnos. Any other fd goes to the kernel's
/// system call.
///
/// # Safety
///
/// `arg` is what `opcode` expects, readable (and writable where the call
/// writes back) for the call's duration; a buffer ring's memory stays mapped
/// while it is registered; the ring is not used by another thread meanwhile.
#[no_mangle]
pub unsafe extern "C" fn io_uring_register(
    fd: u32,
    opcode: u32,
    arg: *const libc::c_void,
    nr_args: u32,
) -> i32 {
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { ring_of_fd(fd) }) else {
        // SAFETY: the caller's arguments, passed on unchanged.
        return kernel_result(unsafe {
            libc::syscall(libc::SYS_io_uring_register, fd, opcode, arg, nr_args)
        });
    };
    match opcode {
        // A buffer ring in the application's memory: as
        // io_uring_register_buf_ring (the engine answers the rest, its
        // unregistering included).
        abi::IORING_REGISTER_PBUF_RING => {
            if nr_args != 1 {
                return -libc::EINVAL;
            }
            // SAFETY: the caller's contract: arg is a readable io_uring_buf_reg.
            let Some(reg) = (unsafe { arg.cast::<IoUringBufReg>().as_ref() }) else {
                return -libc::EFAULT;
            };
            // SAFETY: the caller's contract.
            unsafe { register_buf_ring(st, reg, reg.flags) }
        }
        // SAFETY: the caller's contract: `arg` is valid for `opcode`.
        _ => match unsafe { st.driver().register(opcode, arg as u64, nr_args) } {
            Ok(n) => n as i32,
            Err(e) => -e.0,
        },
    }
}

/// CLOCK_MONOTONIC now.
fn monotonic_now() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// `io_uring_ring_dontfork`: ringline's ring memory is ordinary process memory;
/// nothing to do.
///
/// # Safety
///
/// None: the ring is not read.
#[no_mangle]
pub unsafe extern "C" fn io_uring_ring_dontfork(_ring: *mut IoUring) -> i32 {
    0
}

/// `io_uring_mlock_size`: ringline's rings need no locked memory (0).
#[no_mangle]
pub extern "C" fn io_uring_mlock_size(_entries: u32, _flags: u32) -> isize {
    0
}

/// `io_uring_mlock_size_params`: 0, as [`io_uring_mlock_size`].
///
/// # Safety
///
/// None: `p` is not read.
#[no_mangle]
pub unsafe extern "C" fn io_uring_mlock_size_params(_entries: u32, _p: *mut Params) -> isize {
    0
}

/// `struct ringline_stats` of `include/ringline.h`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct RinglineStats {
    /// Engine loop iterations.
    pub steps: u64,
    /// SQEs consumed.
    pub sqes: u64,
    /// CQEs posted.
    pub cqes: u64,
    /// Requests completed with an error other than `-ECANCELED` or `-ETIME`.
    pub op_errors: u64,
    /// Frames received.
    pub rx_frames: u64,
    /// TCP segments sent.
    pub tx_segments: u64,
    /// Frames the NIC could not take.
    pub tx_dropped: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections opened.
    pub connects: u64,
    /// Connections open now.
    pub conns_live: u64,
    /// Segments sent again.
    pub retransmits: u64,
    /// Requests waiting now.
    pub ops_in_flight: u64,
}

const _: () = assert!(core::mem::size_of::<RinglineStats>() == 12 * 8);

/// `ringline_get_stats` (`include/ringline.h`): the engine's counters into
/// `out` (at most `size` bytes). 0, `-EBADF` (not a ringline ring) or `-EINVAL`.
///
/// # Safety
///
/// `ring` is a `struct io_uring` (any); `out` is null or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn ringline_get_stats(
    ring: *mut IoUring,
    out: *mut RinglineStats,
    size: usize,
) -> i32 {
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { state(ring) }) else {
        return -libc::EBADF;
    };
    if out.is_null() {
        return -libc::EINVAL;
    }
    let s = st.backend.stats();
    let c = RinglineStats {
        steps: s.steps,
        sqes: s.sqes,
        cqes: s.cqes,
        op_errors: s.op_errors,
        rx_frames: s.rx_frames,
        tx_segments: s.tx_segments,
        tx_dropped: s.tx_dropped,
        accepted: s.accepted,
        connects: s.connects,
        conns_live: s.conns_live,
        retransmits: s.retransmits,
        ops_in_flight: s.ops_in_flight,
    };
    let n = size.min(core::mem::size_of::<RinglineStats>());
    // SAFETY: out is writable for size >= n bytes (caller's contract); c is a local.
    unsafe {
        ptr::copy_nonoverlapping(
            (&c as *const RinglineStats).cast::<u8>(),
            out.cast::<u8>(),
            n,
        )
    };
    0
}

/// `ringline_is_ringline` (`include/ringline.h`): 1 if ringline set `ring` up.
///
/// # Safety
///
/// `ring` is null or a readable `struct io_uring`.
#[no_mangle]
pub unsafe extern "C" fn ringline_is_ringline(ring: *mut IoUring) -> i32 {
    // SAFETY: the caller's contract.
    i32::from(unsafe { state(ring) }.is_some())
}
