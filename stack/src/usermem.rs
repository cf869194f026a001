//! The main audited opt-out from `#![deny(unsafe_code)]` in this crate (the
//! others are `hint`, one prefetch instruction, and `sysclock`, one
//! `clock_gettime`): access to application memory named by SQE addresses.
//!
//! SQEs carry raw addresses (`addr`, `off`/`addr2`, buffer-ring entries). The
//! engine reads and writes the memory they name only through this module,
//! exactly as the kernel's `copy_from_user` / `copy_to_user` would: the safe
//! functions check the address range, then call one of the raw accessors at
//! the bottom (`user_slice`, `user_slice_mut`, `read_user`, `write_user`),
//! thin wrappers over raw pointer operations with one safety contract.
//!
//! # The contract (that of `ringline_ring::app::Ring::push`)
//!
//! The contract is io_uring's: by submitting an SQE (`Ring::push` and
//! `Ring::get_sqe` are `unsafe` for this reason; only SQEs that name no memory
//! go through the safe `Ring::push_safe`) the application promises that every
//! buffer or address it names is valid for the access the operation implies
//! (readable for sends and addresses it passes in, writable for receives and
//! addresses it gets back) and stays valid, and is not accessed by the
//! application in a conflicting way, until the request's final CQE (the one
//! without `IORING_CQE_F_MORE`). Provided buffers (a buffer ring's entries,
//! PROVIDE_BUFFERS) are the engine's from the `unsafe` call that hands them
//! over until a CQE hands each back. Data the engine reads once, when the
//! request starts (a `sockaddr` passed to CONNECT or BIND, a timespec), need
//! only live until the engine takes the SQE for a request that starts at once;
//! a request that waits behind a link or a drain reads it when it starts, so it
//! must live until that request's CQE (Linux copies it at submission in both
//! cases, `IORING_FEAT_SUBMIT_STABLE`). A `msghdr` stays in use until the final
//! CQE: RECVMSG writes `msg_flags` and the lengths back at completion, and
//! unlike Linux, which copies the iovec array at submission, the engine reads
//! the iovecs when it moves the data.
//!
//! In-process (inline mode or an SQPOLL thread of the same process) the
//! engine runs in the application's address space, so an SQE address is a
//! plain pointer. Null pointers and address-range overflow are rejected here
//! with `-EFAULT` before any access.
//!
//! # Applications in another process (`ringline serve`)
//!
//! An attached application's addresses are in *its* address space. While the
//! daemon steps that application's engine it installs a [`Window`] (see
//! [`with_window`]): the one range of the application's mapping of its buffer
//! region, and the daemon's own mapping of the same file. Every access then
//! resolves `addr..addr+len` inside the window, or fails with `-EFAULT` and
//! touches nothing: nothing outside that application's region (another
//! application's memory, the daemon's, its own ring) can be named. The window
//! is a thread-local read once per access: in-process engines pay one TLS load
//! and a branch that always goes the same way.
#![allow(unsafe_code)]

use crate::errno::{self, Errno};
use ringline_ring::abi::RecvmsgOut;

use core::cell::Cell;
use core::ptr;

/// An attached application's buffer region: its addresses `lo..hi`, mapped in
/// this process at `base` (`hi - lo` bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// First application address of the region.
    pub(crate) lo: u64,
    /// One past the last.
    pub(crate) hi: u64,
    /// The daemon's mapping of the same bytes.
    pub(crate) base: *mut u8,
}

std::thread_local! {
    /// The window of the engine being stepped on this thread; `None`
    /// in-process. Set only by [`with_window`].
    static WINDOW: Cell<Option<Window>> = const { Cell::new(None) };
}

/// Runs `f` (one step of an attached application's engine) with every
/// application address resolved through `w`.
///
/// # Safety
///
/// `w.base .. w.base + (w.hi - w.lo)` is a live mapping of the application's
/// buffer region for the whole of `f`, which stays mapped while any request
/// that names it may run (the daemon keeps its mapping until it drops the
/// engine). The application may write those bytes at any time (it is another
/// process): the engine only copies to and from them and never keeps a
/// reference past the access.
pub(crate) unsafe fn with_window<R>(w: Window, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Window>);
    impl Drop for Reset {
        fn drop(&mut self) {
            WINDOW.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(WINDOW.with(|c| c.replace(Some(w))));
    f()
}

/// Where the engine reaches `addr..addr+len`: the address itself in-process,
/// the daemon's mapping of it for an attached application. `-EFAULT` outside
/// the window (or null, first page, wrapping).
#[inline]
fn resolve(addr: u64, len: usize) -> Result<*mut u8, Errno> {
    // Null, the never-mapped first page, a wrap, or past the end of user
    // space (the kernel's `access_ok`): -EFAULT, never a read.
    if addr < LOWEST_MAPPABLE
        || addr
            .checked_add(len as u64)
            .is_none_or(|end| end > USER_SPACE_END)
    {
        return Err(errno::EFAULT);
    }
    match WINDOW.with(Cell::get) {
        None => Ok(ptr_from(addr)),
        Some(w) => resolve_in(w, addr, len),
    }
}

#[cold]
#[inline(never)]
fn resolve_in(w: Window, addr: u64, len: usize) -> Result<*mut u8, Errno> {
    // addr + len does not wrap (checked by the caller).
    if addr < w.lo || addr + len as u64 > w.hi {
        return Err(errno::EFAULT);
    }
    // SAFETY: addr - lo + len <= hi - lo, the length of the mapping at base.
    Ok(unsafe { w.base.add((addr - w.lo) as usize) })
}

/// Below this, nothing is ever mapped: Linux refuses to map the first page
/// whatever `vm.mmap_min_addr` says (its smallest value is one page), so an
/// address there is a fault, as `copy_from_user` would find.
pub const LOWEST_MAPPABLE: u64 = 4096;

/// The end of user space on x86-64 (`TASK_SIZE_MAX`): `access_ok` refuses a
/// range that ends past it.
pub const USER_SPACE_END: u64 = (1 << 47) - 4096;

/// `-EFAULT` if `addr..addr+len` is null, lies in the never-mapped first
/// page, wraps the address space, or ends past user space.
/// (Attached application: or falls outside its buffer region.)
pub fn check(addr: u64, len: usize) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    resolve(addr, len).map(|_| ())
}

/// [`check`], then, as the kernel's pinning of registered memory finds, every
/// page of `addr..addr+len` mapped in this process (`mincore`), else
/// `-EFAULT`. For registration calls (cold). An attached application's
/// window is mapped whole: [`check`] suffices there.
pub fn check_mapped(addr: u64, len: usize) -> Result<(), Errno> {
    check(addr, len)?;
    if len == 0 || WINDOW.with(Cell::get).is_some() {
        return Ok(());
    }
    let first = addr & !4095;
    let span = (addr + len as u64 - first).next_multiple_of(4096);
    let mut vec = vec![0u8; (span / 4096) as usize];
    // SAFETY: mincore reads only the process's page tables for the range
    // (page-aligned start) and writes one byte per page into `vec`.
    let r = unsafe { libc::mincore(ptr_from(first).cast(), span as usize, vec.as_mut_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(errno::EFAULT)
    }
}

/// The application buffer `addr..addr+len`, writable.
pub fn slice_mut<'a>(addr: u64, len: usize) -> Result<&'a mut [u8], Errno> {
    if len == 0 {
        return Ok(&mut []);
    }
    let p = resolve(addr, len)?;
    // SAFETY: non-null, non-wrapping and (attached) inside the window (resolved
    // above); validity and exclusive access until the final CQE are the
    // submitter's promise (see module docs).
    Ok(unsafe { user_slice_mut(p, len) })
}

/// The application buffer `addr..addr+len`, read-only.
pub fn slice<'a>(addr: u64, len: usize) -> Result<&'a [u8], Errno> {
    if len == 0 {
        return Ok(&[]);
    }
    let p = resolve(addr, len)?;
    // SAFETY: as for `slice_mut`; the engine only reads.
    Ok(unsafe { user_slice(p, len) })
}

/// Types any bit pattern of which is a valid value: what may be read out of
/// application memory.
///
/// Sealed twice over: it is `unsafe` to implement, and crate-private in a
/// private module, so no code outside this crate can name it, let alone
/// implement it for a type with invariants (`bool`, `&T`, an enum).
///
/// # Safety
///
/// An implementor is `Copy`, has no padding-dependent invariants and accepts
/// every bit pattern (integers, arrays of them, `#[repr(C)]` structs of
/// integers and raw pointers: a raw pointer read here is never dereferenced
/// without the checks of this module).
pub(crate) unsafe trait Plain: Copy {}

// SAFETY: integers accept every bit pattern.
unsafe impl Plain for u32 {}
// SAFETY: integers accept every bit pattern.
unsafe impl Plain for i32 {}
// SAFETY: integers accept every bit pattern.
unsafe impl Plain for u64 {}
// SAFETY: the register arguments are `#[repr(C)]` structs of integers only
// (their layouts are asserted in `ringline_ring::abi`).
unsafe impl Plain for ringline_ring::abi::RsrcRegister {}
// SAFETY: as above.
unsafe impl Plain for ringline_ring::abi::RsrcUpdate {}
// SAFETY: as above.
unsafe impl Plain for ringline_ring::abi::RsrcUpdate2 {}
// SAFETY: as above.
unsafe impl Plain for ringline_ring::abi::FileIndexRange {}
// SAFETY: a pair of integers (`__kernel_timespec`) accepts every bit pattern.
unsafe impl Plain for [i64; 2] {}
// SAFETY: an array of integers (`io_uring_buf_reg`: an address, counts,
// flags and reserved words) accepts every bit pattern.
unsafe impl Plain for [u64; 5] {}
// SAFETY: an array of integers (`io_uring_sync_cancel_reg`, 64 bytes of
// integers and a timespec) accepts every bit pattern.
unsafe impl Plain for [u64; 8] {}
// SAFETY: an array of integers (`io_uring_buf_status`: group, head, 8
// reserved words) accepts every bit pattern.
unsafe impl Plain for [u32; 10] {}
// SAFETY: `sockaddr_in` is integers only (family, port, address, zero padding bytes).
unsafe impl Plain for libc::sockaddr_in {}
// SAFETY: `iovec` is a raw pointer and a length; the pointer is only used
// through `check`/`slice_mut` here.
unsafe impl Plain for libc::iovec {}
// SAFETY: `msghdr` is raw pointers and integers; its pointers are only used
// through this module's checked accessors.
unsafe impl Plain for libc::msghdr {}

/// Reads a `T` (unaligned) from application memory.
pub fn read<T: Plain>(addr: u64) -> Result<T, Errno> {
    let p = resolve(addr, core::mem::size_of::<T>())?;
    // SAFETY: as for `slice`; `T: Plain` has no drop glue and accepts any bit
    // pattern (see the trait).
    Ok(unsafe { read_user::<T>(p) })
}

/// Types with no padding: every byte of a value is initialised, so writing
/// one into application memory hands the application no uninitialised bytes.
/// Sealed as [`Plain`] is.
///
/// # Safety
///
/// An implementor is `Copy` and has no padding bytes.
pub(crate) unsafe trait NoPadding: Copy {}

// SAFETY: integers have no padding.
unsafe impl NoPadding for u32 {}
// SAFETY: integers have no padding.
unsafe impl NoPadding for i32 {}
// SAFETY: integers have no padding.
unsafe impl NoPadding for usize {}
// SAFETY: four `u32`s, 16 bytes (asserted below), so no padding.
unsafe impl NoPadding for RecvmsgOut {}

const _: () = assert!(core::mem::size_of::<RecvmsgOut>() == 16);

/// Writes a `T` (unaligned) into application memory.
pub fn write<T: NoPadding>(addr: u64, v: T) -> Result<(), Errno> {
    let p = resolve(addr, core::mem::size_of::<T>())?;
    // SAFETY: as for `slice_mut`; `T: NoPadding` hands the application only
    // initialised bytes.
    unsafe { write_user::<T>(p, v) };
    Ok(())
}

/// `fetch_or` on the application's 32-bit ready word at `addr` (4-byte
/// aligned), returning the previous value. The word is shared with the
/// application, which clears it with an atomic swap; see
/// `ringline_ring::app::take_ready`.
pub fn fetch_or_u32(addr: u64, bits: u32) -> Result<u32, Errno> {
    let p = resolve(addr, 4)?;
    if !addr.is_multiple_of(4) {
        return Err(errno::EINVAL);
    }
    // SAFETY: non-null, aligned (a window's base is page aligned) and in range (resolved
    // above); the word lives until the poll's final CQE and the application accesses it
    // only atomically (the push contract), so an AtomicU32 view is sound.
    let word = unsafe { &*(p as *const core::sync::atomic::AtomicU32) };
    // AcqRel: the engine publishes readiness (Release) that the app's swap
    // (AcqRel) observes; Acquire pairs with the app's clearing swap so a
    // cleared word is seen as 0 and a new CQE is queued.
    Ok(word.fetch_or(bits, core::sync::atomic::Ordering::AcqRel))
}

/// Most iovecs one SENDMSG/RECVMSG may name (`UIO_MAXIOV`).
pub const UIO_MAXIOV: u32 = 1024;

/// The fields of an application's `struct msghdr` the engine uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgHdr {
    /// The iovec array.
    pub iov: u64,
    /// How many iovecs.
    pub iovlen: u32,
    /// `msg_namelen`.
    pub namelen: u32,
    /// `msg_controllen`.
    pub controllen: u32,
    /// `msg_control`.
    pub control: u64,
}

/// The application's `struct msghdr` at `addr`. `EMSGSIZE` for more than
/// `UIO_MAXIOV` iovecs.
pub fn read_msghdr(addr: u64) -> Result<MsgHdr, Errno> {
    let m: libc::msghdr = read(addr)?;
    if m.msg_iovlen > UIO_MAXIOV as usize {
        return Err(errno::EMSGSIZE);
    }
    let controllen = u32::try_from(m.msg_controllen).map_err(|_| errno::EINVAL)?;
    Ok(MsgHdr {
        iov: m.msg_iov as u64,
        iovlen: m.msg_iovlen as u32,
        namelen: m.msg_namelen,
        controllen,
        control: m.msg_control as u64,
    })
}

/// Size of a `struct cmsghdr` (what `CMSG_FIRSTHDR` / `CMSG_NXTHDR` need
/// left in the control buffer to find another header).
const CMSGHDR_LEN: u64 = core::mem::size_of::<libc::cmsghdr>() as u64;

/// Checks a SENDMSG's control messages as Linux's `sock_cmsg_send` does on
/// TCP: every header must fit (`CMSG_OK`: `cmsg_len` at least a header and
/// within what is left), else `EINVAL`. `SOL_SOCKET` messages of Unix
/// sockets (`SCM_RIGHTS`, `SCM_CREDENTIALS`, `SCM_PIDFD`) are ignored, as
/// Linux ignores them on TCP; the other `SOL_SOCKET` ones set per-message
/// socket options ringline does not have: `EINVAL`. Other levels are not
/// TCP's business and are ignored.
pub fn check_cmsgs(control: u64, controllen: u32) -> Result<(), Errno> {
    let size = u64::from(controllen);
    let mut off = 0u64;
    while size - off >= CMSGHDR_LEN {
        let b = slice(control + off, CMSGHDR_LEN as usize)?;
        let len = u64::from_ne_bytes(b[0..8].try_into().expect("8 bytes"));
        let level = i32::from_ne_bytes(b[8..12].try_into().expect("4 bytes"));
        let ty = i32::from_ne_bytes(b[12..16].try_into().expect("4 bytes"));
        if len < CMSGHDR_LEN || len > size - off {
            return Err(errno::EINVAL);
        }
        if level == libc::SOL_SOCKET
            && !matches!(ty, libc::SCM_RIGHTS | libc::SCM_CREDENTIALS | SCM_PIDFD)
        {
            return Err(errno::EINVAL);
        }
        // CMSG_NXTHDR: the next header starts at the aligned end.
        off = match off.checked_add((len + 7) & !7) {
            Some(o) if o <= size => o,
            _ => break,
        };
    }
    Ok(())
}

/// `SCM_PIDFD` (Linux 6.5), not in every libc.
const SCM_PIDFD: i32 = 0x04;

/// Total length of `n` iovecs at `iov`.
pub fn iov_total(iov: u64, n: u32) -> Result<u64, Errno> {
    let mut total = 0u64;
    for i in 0..n as u64 {
        let v: libc::iovec = read(iov + i * core::mem::size_of::<libc::iovec>() as u64)?;
        check(v.iov_base as u64, v.iov_len)?;
        total = total.checked_add(v.iov_len as u64).ok_or(errno::EINVAL)?;
    }
    Ok(total)
}

/// Calls `f` on each application segment of the `n` iovecs at `iov`, after
/// skipping `skip` bytes, until `f` returns fewer bytes than it was given or
/// the iovecs end. Returns the bytes `f` reported.
pub fn for_each_iov(
    iov: u64,
    n: u32,
    mut skip: u64,
    mut f: impl FnMut(&mut [u8]) -> usize,
) -> Result<usize, Errno> {
    let mut total = 0;
    for i in 0..n as u64 {
        let v: libc::iovec = read(iov + i * core::mem::size_of::<libc::iovec>() as u64)?;
        let len = v.iov_len as u64;
        if skip >= len {
            skip -= len;
            continue;
        }
        let seg = slice_mut(v.iov_base as u64 + skip, (len - skip) as usize)?;
        skip = 0;
        let want = seg.len();
        let got = f(seg);
        total += got;
        if got < want {
            break;
        }
    }
    Ok(total)
}

// The raw accessors: every access to application memory goes through one of
// these, after the checks above.

/// Turns an SQE address into a pointer.
#[inline]
fn ptr_from(addr: u64) -> *mut u8 {
    // The address came from the application as an integer (an SQE field); it was
    // produced by a pointer-to-integer cast on the application side, so take the
    // exposed provenance back.
    ptr::with_exposed_provenance_mut(addr as usize)
}

/// A shared view of `len` bytes of application memory at `addr`.
///
/// # Safety
///
/// `addr .. addr + len` is readable application memory under the contract of the
/// module docs, not written by anyone for `'a`, and `'a` does not outlive the request.
/// For `len == 0` any `addr` is accepted (an empty slice is returned).
#[inline]
unsafe fn user_slice<'a>(addr: *mut u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: non-null (caller checked), valid for reads of len bytes and not mutated
    // for 'a (caller's contract); u8 is always aligned.
    unsafe { core::slice::from_raw_parts(addr, len) }
}

/// An exclusive view of `len` bytes of application memory at `addr`.
///
/// # Safety
///
/// `addr .. addr + len` is writable application memory under the contract of the
/// module docs, not accessed by anyone else for `'a`, and `'a` does not outlive the
/// request. For `len == 0` any `addr` is accepted (an empty slice is returned).
#[inline]
unsafe fn user_slice_mut<'a>(addr: *mut u8, len: usize) -> &'a mut [u8] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: non-null (caller checked), valid for reads and writes of len bytes and
    // exclusively ours for 'a (caller's contract); u8 is always aligned.
    unsafe { core::slice::from_raw_parts_mut(addr, len) }
}

/// Reads a `T` from application memory at `addr` (no alignment required).
///
/// # Safety
///
/// `addr .. addr + size_of::<T>()` is readable application memory under the contract
/// of the module docs, and any bit pattern there is a valid `T` (use plain-old-data
/// types: integers, `#[repr(C)]` structs of integers).
#[inline]
unsafe fn read_user<T: Copy>(addr: *mut u8) -> T {
    // SAFETY: valid for reads of size_of::<T>() bytes holding a valid T (caller's
    // contract); read_unaligned has no alignment requirement.
    unsafe { addr.cast::<T>().read_unaligned() }
}

/// Writes `v` to application memory at `addr` (no alignment required).
///
/// # Safety
///
/// `addr .. addr + size_of::<T>()` is writable application memory under the contract
/// of the module docs.
#[inline]
unsafe fn write_user<T: Copy>(addr: *mut u8, v: T) {
    // SAFETY: valid for writes of size_of::<T>() bytes (caller's contract);
    // write_unaligned has no alignment requirement.
    unsafe { addr.cast::<T>().write_unaligned(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr_of<T: ?Sized>(p: *const T) -> u64 {
        p.cast::<u8>().expose_provenance() as u64
    }

    /// A control buffer of `msgs` (len, level, type), each header at the
    /// aligned end of the previous message.
    fn cmsgs(msgs: &[(u64, i32, i32)]) -> Vec<u64> {
        let mut v = vec![0u64; 32];
        let mut at = 0;
        for &(len, level, ty) in msgs {
            v[at] = len;
            v[at + 1] = u64::from(level as u32) | (u64::from(ty as u32) << 32);
            at += (len.max(16) as usize).div_ceil(8);
        }
        v
    }

    #[test]
    fn control_messages_are_checked_as_sock_cmsg_send() {
        let ok = |msgs: &[(u64, i32, i32)], controllen: u32| {
            let v = cmsgs(msgs);
            check_cmsgs(addr_of(v.as_ptr()), controllen)
        };
        let ip = (libc::IPPROTO_IP, libc::IP_TOS);
        let sol = libc::SOL_SOCKET;
        // Another level is ignored; a buffer shorter than a header has none.
        assert_eq!(ok(&[(20, ip.0, ip.1)], 24), Ok(()));
        assert_eq!(ok(&[(20, sol, 99)], 8), Ok(()));
        // CMSG_OK: cmsg_len below a header or past the buffer.
        assert_eq!(ok(&[(80, ip.0, ip.1)], 24), Err(errno::EINVAL));
        assert_eq!(ok(&[(8, ip.0, ip.1)], 24), Err(errno::EINVAL));
        // The second message is checked too.
        assert_eq!(
            ok(&[(20, ip.0, ip.1), (64, ip.0, ip.1)], 48),
            Err(errno::EINVAL)
        );
        assert_eq!(ok(&[(20, ip.0, ip.1), (20, ip.0, ip.1)], 48), Ok(()));
        // SOL_SOCKET: Unix-socket messages ignored on TCP, options refused.
        assert_eq!(ok(&[(20, sol, libc::SCM_RIGHTS)], 24), Ok(()));
        assert_eq!(ok(&[(20, sol, libc::SO_MARK)], 24), Err(errno::EINVAL));
    }

    #[test]
    fn round_trips_through_raw_addresses() {
        let mut buf = [0u8; 16];
        let a = addr_of(buf.as_mut_ptr());
        let p = |off: u64| ptr_from(a + off);
        // SAFETY: buf is live, 16 bytes, and not otherwise borrowed during each call.
        unsafe {
            user_slice_mut(p(2), 5).copy_from_slice(b"hello");
            assert_eq!(user_slice(p(2), 5), b"hello");
            user_slice_mut(p(0), 2).copy_from_slice(b"<<");
            write_user::<u32>(p(9), 0xdead_beef); // unaligned
            assert_eq!(read_user::<u32>(p(9)), 0xdead_beef);
            assert!(user_slice(ptr_from(0), 0).is_empty());
            assert!(user_slice_mut(ptr_from(0), 0).is_empty());
        }
        assert_eq!(&buf[..7], b"<<hello");
        assert_eq!(
            u32::from_ne_bytes(buf[9..13].try_into().unwrap()),
            0xdead_beef
        );
    }

    #[test]
    fn checked_accessors_reject_null_and_wrapping_ranges() {
        let mut word = 0u32;
        let a = addr_of(&mut word as *mut u32);
        assert_eq!(check(0, 1), Err(errno::EFAULT));
        assert_eq!(
            check(16, 8),
            Err(errno::EFAULT),
            "the first page is never mapped"
        );
        assert_eq!(check(LOWEST_MAPPABLE - 1, 1), Err(errno::EFAULT));
        assert_eq!(check(u64::MAX, 2), Err(errno::EFAULT));
        // Past the end of user space (kernel addresses, or none at all).
        assert_eq!(check(USER_SPACE_END - 8, 16), Err(errno::EFAULT));
        assert_eq!(check(199_890_044_499_091_452, 16), Err(errno::EFAULT));
        assert_eq!(check(0, 0), Ok(()));
        assert_eq!(read::<u32>(0), Err(errno::EFAULT));
        write::<u32>(a, 7).unwrap();
        assert_eq!(read::<u32>(a), Ok(7));
        assert_eq!(fetch_or_u32(a, 8), Ok(7));
        assert_eq!(fetch_or_u32(a + 1, 8), Err(errno::EINVAL));
        assert_eq!(word, 15);
    }

    #[test]
    fn a_window_translates_and_refuses_everything_outside_it() {
        let mut daemon = [0u8; 64];
        let base = daemon.as_mut_ptr();
        let w = Window {
            lo: 0x10_0000,
            hi: 0x10_0040,
            base,
        };
        let mut outside = 5u32;
        let o = addr_of(&mut outside as *mut u32);
        // SAFETY: `daemon` is live and 64 bytes for the whole call.
        unsafe {
            with_window(w, || {
                write::<u32>(0x10_0004, 0xabcd).unwrap();
                assert_eq!(read::<u32>(0x10_0004), Ok(0xabcd));
                slice_mut(0x10_0038, 8)
                    .unwrap()
                    .copy_from_slice(b"12345678");
                assert_eq!(slice(0x10_003c, 4).unwrap(), b"5678");
                assert_eq!(slice(0x10_003c, 5), Err(errno::EFAULT), "past hi");
                assert_eq!(slice(0x0f_ffff, 2), Err(errno::EFAULT), "before lo");
                assert_eq!(read::<u32>(o), Err(errno::EFAULT), "own memory");
                assert_eq!(write::<u32>(o, 9), Err(errno::EFAULT));
                assert_eq!(check(o, 4), Err(errno::EFAULT));
                assert_eq!(fetch_or_u32(0x10_0004, 1), Ok(0xabcd));
            })
        };
        assert_eq!(outside, 5, "nothing outside the window was written");
        assert_eq!(
            u32::from_ne_bytes(daemon[4..8].try_into().unwrap()),
            0xabcd | 1
        );
        assert_eq!(&daemon[56..64], b"12345678");
        assert_eq!(read::<u32>(o), Ok(5), "the window is gone after the step");
    }
}
