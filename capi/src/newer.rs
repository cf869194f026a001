//! The functions liburing 2.4 to 2.15 added to `liburing.so.2`.
//!
//! A program built against a newer liburing than Debian bookworm's 2.3 (Ubuntu
//! 24.04 has 2.5, Debian trixie 2.9, liburing's own examples use 2.6 on) links
//! some of these; without them it does not link to libringline at all. Those
//! ringline can serve are served: provided-buffer rings the library maps
//! (`io_uring_setup_buf_ring`), their head, the minimum-timeout waits, NAPI
//! settings and the wait clock (recorded: the engine always busy-polls its
//! NIC), the version queries. The others answer what a kernel without the
//! feature answers (`-EINVAL` for an unknown register opcode or setup flag,
//! `-EOPNOTSUPP` where liburing checks a feature bit first), so programs take
//! the fallback they have for older kernels. `docs/capi.md` lists them.

use core::ptr;
use std::time::{Duration, Instant};

use ringline_ring::abi;
use ringline_ring::{Cqe, IoUringBufReg};

use super::{
    duration, flush_sq, get_cqe, register_buf_ring, register_raw, state, KernelTimespec, Params,
};
use crate::uring::IoUring;

/// The liburing version whose exported functions this library has (every one
/// up to 2.15, some answering as a kernel without the feature would).
pub const VERSION: (i32, i32) = (2, 15);

/// `io_uring_major_version`.
#[no_mangle]
pub extern "C" fn io_uring_major_version() -> i32 {
    VERSION.0
}

/// `io_uring_minor_version`.
#[no_mangle]
pub extern "C" fn io_uring_minor_version() -> i32 {
    VERSION.1
}

/// `io_uring_check_version`: true if this library is older than
/// `major.minor` (liburing's sense: "the check fails").
#[no_mangle]
pub extern "C" fn io_uring_check_version(major: i32, minor: i32) -> bool {
    major > VERSION.0 || (major == VERSION.0 && minor > VERSION.1)
}

/// `struct io_uring_buf` is 16 bytes: a ring of `n` entries is `n * 16`.
const BUF_ENTRY: usize = 16;

/// `io_uring_setup_buf_ring`: maps a provided-buffer ring of `nentries`,
/// registers it as group `bgid` with `flags` (`IOU_PBUF_RING_INC`) and
/// initialises its tail. Null with `*err` set on failure (the mapping is
/// undone). Free it with [`io_uring_free_buf_ring`].
///
/// # Safety
///
/// `ring` is null or a `struct io_uring`; `err` is writable.
#[no_mangle]
pub unsafe extern "C" fn io_uring_setup_buf_ring(
    ring: *mut IoUring,
    nentries: u32,
    bgid: i32,
    flags: u32,
    err: *mut i32,
) -> *mut libc::c_void {
    let set = |e: i32| {
        // SAFETY: the caller's contract: err is writable.
        unsafe { *err = e };
    };
    set(0);
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { state(ring) }) else {
        set(-libc::EBADF);
        return ptr::null_mut();
    };
    let len = (nentries as usize).max(1) * BUF_ENTRY;
    // SAFETY: an anonymous private mapping; no existing memory is touched.
    let br = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
            -1,
            0,
        )
    };
    if br == libc::MAP_FAILED {
        set(-std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ENOMEM));
        return ptr::null_mut();
    }
    let reg = IoUringBufReg {
        ring_addr: br as usize as u64,
        ring_entries: nentries,
        // liburing stores the int in the u16 field as is.
        bgid: bgid as u16,
        ..IoUringBufReg::default()
    };
    // SAFETY: br is a fresh mapping of nentries * 16 bytes that stays mapped until
    // io_uring_free_buf_ring unregisters the group (liburing's contract), or is
    // unmapped right below if registration fails.
    let r = unsafe { register_buf_ring(st, &reg, flags as u16) };
    if r != 0 {
        // SAFETY: our own mapping, registered nowhere.
        unsafe { libc::munmap(br, len) };
        set(r);
        return ptr::null_mut();
    }
    // io_uring_buf_ring_init: the tail (the last entry's `resv` word, at byte 14)
    // starts at 0, which the fresh zeroed mapping already holds.
    br
}

/// `io_uring_free_buf_ring`: unregisters group `bgid` and unmaps `br`, which
/// [`io_uring_setup_buf_ring`] made with `nentries`. 0 or `-errno` (then `br`
/// stays mapped).
///
/// # Safety
///
/// `br` came from `io_uring_setup_buf_ring(ring, nentries, bgid, ...)` and is
/// not used after this returns 0.
#[no_mangle]
pub unsafe extern "C" fn io_uring_free_buf_ring(
    ring: *mut IoUring,
    br: *mut libc::c_void,
    nentries: u32,
    bgid: i32,
) -> i32 {
    // SAFETY: the caller's contract.
    let r = unsafe { super::io_uring_unregister_buf_ring(ring, bgid) };
    if r != 0 {
        return r;
    }
    // SAFETY: the caller's contract: br is the mapping setup_buf_ring made, and the
    // engine no longer reads it (the group is unregistered).
    unsafe { libc::munmap(br, (nentries as usize).max(1) * BUF_ENTRY) };
    0
}

/// `struct io_uring_buf_status` (`IORING_REGISTER_PBUF_STATUS`).
#[repr(C)]
#[derive(Default)]
struct BufStatus {
    buf_group: u32,
    head: u32,
    resv: [u32; 8],
}

const _: () = assert!(core::mem::size_of::<BufStatus>() == 40);

/// `io_uring_buf_ring_head`: the head of buffer ring `buf_group` (how far the
/// engine has consumed it) into `*head`. 0 or `-errno`.
///
/// # Safety
///
/// `ring` is null or a `struct io_uring`; `head` is writable.
#[no_mangle]
pub unsafe extern "C" fn io_uring_buf_ring_head(
    ring: *mut IoUring,
    buf_group: i32,
    head: *mut u16,
) -> i32 {
    let mut s = BufStatus {
        buf_group: buf_group as u32,
        ..BufStatus::default()
    };
    // SAFETY: the caller's contract (ring); s is a local of the opcode's layout,
    // read and written during the call.
    let r = unsafe {
        register_raw(
            ring,
            abi::IORING_REGISTER_PBUF_STATUS,
            &mut s as *mut BufStatus as u64,
            1,
        )
    };
    if r < 0 {
        return r;
    }
    // SAFETY: the caller's contract: head is writable.
    unsafe { *head = s.head as u16 };
    0
}

/// `io_uring_register_sync_cancel`: `IORING_REGISTER_SYNC_CANCEL` (the
/// engine's, with the kernel's checks): cancels the requests `reg` names and
/// waits for them. 0, a count with `IORING_ASYNC_CANCEL_ALL`/`ANY`, or `-errno`.
///
/// # Safety
///
/// `ring` is null or a `struct io_uring`; `reg` is null or a readable
/// `struct io_uring_sync_cancel_reg`.
#[no_mangle]
pub unsafe extern "C" fn io_uring_register_sync_cancel(
    ring: *mut IoUring,
    reg: *mut libc::c_void,
) -> i32 {
    // SAFETY: the caller's contract: reg is the opcode's struct (the engine answers
    // -EFAULT for null), read during the call.
    unsafe {
        register_raw(
            ring,
            abi::IORING_REGISTER_SYNC_CANCEL,
            reg as usize as u64,
            1,
        )
    }
}

/// `struct io_uring_napi`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct NapiArg {
    busy_poll_to: u32,
    prefer_busy_poll: u8,
    opcode: u8,
    pad: [u8; 2],
    op_param: u32,
    resv: u32,
}

const _: () = assert!(core::mem::size_of::<NapiArg>() == 16);

/// `IO_URING_NAPI_TRACKING_INACTIVE`.
const NAPI_INACTIVE: u32 = 255;

/// A ring's NAPI settings (`io_uring_register_napi`). The engine polls its
/// NIC all the time, so they change nothing; they are kept so that
/// `io_uring_unregister_napi` and a second registration report them back, as
/// the kernel does.
#[derive(Clone, Copy)]
pub(crate) struct Napi {
    busy_poll_to: u32,
    prefer_busy_poll: bool,
    track: u32,
}

impl Napi {
    /// The settings as the kernel writes them back, with `op_param`.
    fn arg(self, op_param: u32) -> NapiArg {
        NapiArg {
            busy_poll_to: self.busy_poll_to,
            prefer_busy_poll: u8::from(self.prefer_busy_poll),
            op_param,
            ..NapiArg::default()
        }
    }
}

impl Default for Napi {
    fn default() -> Self {
        Napi {
            busy_poll_to: 0,
            prefer_busy_poll: false,
            track: NAPI_INACTIVE,
        }
    }
}

/// `io_uring_register_napi` (`IORING_REGISTER_NAPI`, Linux 6.9): writes the
/// settings in force to `*napi`, then applies the new ones (opcode
/// `IO_URING_NAPI_REGISTER_OP` with tracking `DYNAMIC` or `STATIC`). Adding or
/// removing a NAPI id is `-EINVAL` in dynamic tracking, as in the kernel, and
/// `-ENOENT` in static tracking: ringline's NIC queues are not kernel NAPI
/// instances. Reserved bytes set: `-EINVAL`; null: `-EFAULT`.
///
/// # Safety
///
/// `ring` is null or a `struct io_uring`; `napi` is null or a readable and
/// writable `struct io_uring_napi`.
#[no_mangle]
pub unsafe extern "C" fn io_uring_register_napi(
    ring: *mut IoUring,
    napi: *mut libc::c_void,
) -> i32 {
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { state(ring) }) else {
        return -libc::EBADF;
    };
    let napi = napi.cast::<NapiArg>();
    // SAFETY: the caller's contract: null or a readable io_uring_napi.
    let Some(arg) = (unsafe { napi.as_ref() }).copied() else {
        return -libc::EFAULT;
    };
    if arg.pad != [0; 2] || arg.resv != 0 {
        return -libc::EINVAL;
    }
    let cur = st.napi;
    // SAFETY: the caller's contract: napi is writable.
    unsafe { napi.write(cur.arg(cur.track)) };
    match arg.opcode {
        // IO_URING_NAPI_REGISTER_OP, tracking DYNAMIC (0) or STATIC (1).
        0 if arg.op_param <= 1 => {
            st.napi = Napi {
                busy_poll_to: arg.busy_poll_to,
                prefer_busy_poll: arg.prefer_busy_poll != 0,
                track: arg.op_param,
            };
            0
        }
        // IO_URING_NAPI_STATIC_ADD_ID / _DEL_ID.
        1 | 2 if cur.track == 1 => -libc::ENOENT,
        _ => -libc::EINVAL,
    }
}

/// `io_uring_unregister_napi`: writes the settings in force to `*napi` (if not
/// null) and clears them. 0 or `-errno`.
///
/// # Safety
///
/// As [`io_uring_register_napi`].
#[no_mangle]
pub unsafe extern "C" fn io_uring_unregister_napi(
    ring: *mut IoUring,
    napi: *mut libc::c_void,
) -> i32 {
    // SAFETY: the caller's contract.
    let Some(st) = (unsafe { state(ring) }) else {
        return -libc::EBADF;
    };
    let cur = std::mem::take(&mut st.napi);
    let napi = napi.cast::<NapiArg>();
    if !napi.is_null() {
        // SAFETY: the caller's contract: napi is writable. The kernel's
        // unregister reports no tracking mode.
        unsafe { napi.write(cur.arg(0)) };
    }
    0
}

/// `io_uring_register_clock` (`IORING_REGISTER_CLOCK`): the clock of the
/// ring's wait timeouts, `CLOCK_MONOTONIC` or `CLOCK_BOOTTIME`. ringline's
/// waits are relative and measured on the monotonic clock; the two differ only
/// across a suspend. Other clocks or reserved words set: `-EINVAL`; null:
/// `-EFAULT`.
///
/// # Safety
///
/// `ring` is null or a `struct io_uring`; `arg` is null or a readable
/// `struct io_uring_clock_register`.
#[no_mangle]
pub unsafe extern "C" fn io_uring_register_clock(ring: *mut IoUring, arg: *const [u32; 4]) -> i32 {
    // SAFETY: the caller's contract.
    if unsafe { state(ring) }.is_none() {
        return -libc::EBADF;
    }
    // SAFETY: the caller's contract.
    let Some(&[clock, r0, r1, r2]) = (unsafe { arg.as_ref() }) else {
        return -libc::EFAULT;
    };
    let known = clock == libc::CLOCK_MONOTONIC as u32 || clock == libc::CLOCK_BOOTTIME as u32;
    if !known || (r0 | r1 | r2) != 0 {
        return -libc::EINVAL;
    }
    0
}

/// A wait with liburing 2.8's minimum timeout (Linux 6.12's `min_wait_usec`):
/// wait up to `ts` (null: no limit) for `wait_nr` CQEs, but once `min_wait_usec`
/// has passed, return as soon as any CQE is ready. With no `ts`, the minimum is
/// the whole wait (as the kernel's `io_cqring_min_timer_wakeup`).
///
/// # Safety
///
/// As [`super::get_cqe`].
unsafe fn wait_min(
    ring: *mut IoUring,
    cqe_ptr: *mut *mut Cqe,
    submit: u32,
    wait_nr: u32,
    ts: *const KernelTimespec,
    min_wait_usec: u32,
) -> i32 {
    let total = duration(ts);
    let min = Duration::from_micros(u64::from(min_wait_usec));
    if min_wait_usec == 0 || total.is_some_and(|t| t <= min) {
        // SAFETY: the caller's contract.
        return unsafe { get_cqe(ring, cqe_ptr, submit, wait_nr, total) };
    }
    let start = Instant::now();
    // SAFETY: the caller's contract.
    let r = unsafe { get_cqe(ring, cqe_ptr, submit, wait_nr, Some(min)) };
    if r != -libc::ETIME {
        // Enough CQEs, or at least one once the minimum passed, or an error.
        return r;
    }
    // The minimum passed with none ready: any one CQE ends the rest of the wait.
    let Some(total) = total else {
        return r;
    };
    let left = total.saturating_sub(start.elapsed());
    // SAFETY: the caller's contract.
    unsafe { get_cqe(ring, cqe_ptr, 0, 1, Some(left)) }
}

/// `io_uring_wait_cqes_min_timeout`: [`wait_min`] without submitting. 0 with
/// `*cqe_ptr` set, `-ETIME` or `-errno`.
///
/// # Safety
///
/// `ring` was filled by ringline; `cqe_ptr` writable; `ts` null or readable.
#[no_mangle]
pub unsafe extern "C" fn io_uring_wait_cqes_min_timeout(
    ring: *mut IoUring,
    cqe_ptr: *mut *mut Cqe,
    wait_nr: u32,
    ts: *const KernelTimespec,
    min_wait_usec: u32,
    _sigmask: *const libc::sigset_t,
) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { wait_min(ring, cqe_ptr, 0, wait_nr, ts, min_wait_usec) }
}

/// `io_uring_submit_and_wait_min_timeout`: submits, then [`wait_min`]. The
/// number of SQEs submitted, `-ETIME` or `-errno`.
///
/// # Safety
///
/// As [`io_uring_wait_cqes_min_timeout`]; every SQE follows io_uring's memory
/// contract.
#[no_mangle]
pub unsafe extern "C" fn io_uring_submit_and_wait_min_timeout(
    ring: *mut IoUring,
    cqe_ptr: *mut *mut Cqe,
    wait_nr: u32,
    ts: *const KernelTimespec,
    min_wait_usec: u32,
    _sigmask: *const libc::sigset_t,
) -> i32 {
    // SAFETY: the caller's contract.
    let n = unsafe { flush_sq(ring) };
    // SAFETY: the caller's contract.
    let r = unsafe { wait_min(ring, cqe_ptr, n, wait_nr, ts, min_wait_usec) };
    if r < 0 {
        r
    } else {
        n as i32
    }
}

// Functions of liburing 2.4-2.15 for kernel features ringline does not have
// (`unsupported!`, in lib.rs): each answers as liburing does on a kernel
// without the feature.
unsupported! {
    /// `io_uring_close_ring_fd`: liburing answers `-EOPNOTSUPP` when the ring
    /// lacks `IORING_FEAT_REG_REG_RING`, which ringline's rings do.
    fn io_uring_close_ring_fd(*mut IoUring) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_queue_init_mem`: a ring in the caller's memory needs
    /// `IORING_SETUP_NO_MMAP` (Linux 6.5), which ringline refuses.
    fn io_uring_queue_init_mem(u32, *mut IoUring, *mut Params, *mut libc::c_void, usize) -> i32 = libc::EINVAL;
    /// `io_uring_memory_size`: the memory `io_uring_queue_init_mem` would use;
    /// it is not supported.
    fn io_uring_memory_size(u32, u32) -> isize = libc::EOPNOTSUPP;
    /// `io_uring_memory_size_params`: as `io_uring_memory_size`.
    fn io_uring_memory_size_params(u32, *mut Params) -> isize = libc::EOPNOTSUPP;
    /// `io_uring_clone_buffers` (`IORING_REGISTER_CLONE_BUFFERS`, Linux 6.12).
    fn io_uring_clone_buffers(*mut IoUring, *mut IoUring) -> i32 = libc::EINVAL;
    /// `__io_uring_clone_buffers`.
    fn __io_uring_clone_buffers(*mut IoUring, *mut IoUring, u32) -> i32 = libc::EINVAL;
    /// `io_uring_clone_buffers_offset`.
    fn io_uring_clone_buffers_offset(*mut IoUring, *mut IoUring, u32, u32, u32, u32) -> i32 = libc::EINVAL;
    /// `__io_uring_clone_buffers_offset`.
    fn __io_uring_clone_buffers_offset(*mut IoUring, *mut IoUring, u32, u32, u32, u32) -> i32 = libc::EINVAL;
    /// `io_uring_resize_rings` (`IORING_REGISTER_RESIZE_RINGS`, Linux 6.13).
    fn io_uring_resize_rings(*mut IoUring, *mut Params) -> i32 = libc::EINVAL;
    /// `io_uring_register_wait_reg` (registered wait regions, Linux 6.13).
    fn io_uring_register_wait_reg(*mut IoUring, *mut libc::c_void, i32) -> i32 = libc::EINVAL;
    /// `io_uring_submit_and_wait_reg`: needs a registered wait region.
    fn io_uring_submit_and_wait_reg(*mut IoUring, *mut *mut Cqe, u32, i32) -> i32 = libc::EINVAL;
    /// `io_uring_register_region` (`IORING_REGISTER_MEM_REGION`, Linux 6.13).
    fn io_uring_register_region(*mut IoUring, *mut libc::c_void) -> i32 = libc::EINVAL;
    /// `io_uring_register_ifq` (zero-copy receive into a NIC queue, Linux 6.15).
    fn io_uring_register_ifq(*mut IoUring, *mut libc::c_void) -> i32 = libc::EINVAL;
    /// `io_uring_register_zcrx_ctrl`.
    fn io_uring_register_zcrx_ctrl(*mut IoUring, *mut libc::c_void) -> i32 = libc::EINVAL;
    /// `io_uring_set_iowait`: liburing answers `-EOPNOTSUPP` without
    /// `IORING_FEAT_NO_IOWAIT`; ringline's waits are never counted as iowait.
    fn io_uring_set_iowait(*mut IoUring, bool) -> i32 = libc::EOPNOTSUPP;
    /// `io_uring_register_sync_msg` (`IORING_REGISTER_SEND_MSG_RING`, Linux 6.13):
    /// a MSG_RING without a source ring.
    fn io_uring_register_sync_msg(*mut libc::c_void) -> i32 = libc::EINVAL;
    /// `io_uring_register_bpf_filter`.
    fn io_uring_register_bpf_filter(*mut IoUring, *mut libc::c_void) -> i32 = libc::EINVAL;
    /// `io_uring_register_bpf_filter_task`.
    fn io_uring_register_bpf_filter_task(*mut libc::c_void) -> i32 = libc::EINVAL;
    /// `io_uring_register_query`.
    fn io_uring_register_query(*mut libc::c_void) -> i32 = libc::EINVAL;
}
