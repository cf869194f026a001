//! The main audited opt-out from `#![deny(unsafe_code)]` in this crate (the
//! others are `hint`, one prefetch instruction, and `sysclock`, one
//! `clock_gettime`): access
//! to application memory named by SQE addresses.
//!
//! The contract is io_uring's: by submitting an SQE (`Ring::push` is `unsafe`
//! for this reason) the application promises that every buffer the SQE names
//! stays valid, and is not otherwise accessed, until the request's final CQE.
//! The engine runs in the application's address space (inline mode or a
//! thread of the same process), so an SQE address is a plain pointer. Null
//! pointers and address-range overflow are rejected here with `-EFAULT`
//! before any access.
#![allow(unsafe_code)]

use ringline_ring::user;

/// `-EFAULT` if `addr..addr+len` is null or wraps the address space.
pub fn check(addr: u64, len: usize) -> Result<(), i32> {
    if len == 0 {
        return Ok(());
    }
    if addr == 0 || addr.checked_add(len as u64).is_none() || addr > isize::MAX as u64 {
        return Err(-libc::EFAULT);
    }
    Ok(())
}

/// The application buffer `addr..addr+len`, writable.
pub fn slice_mut<'a>(addr: u64, len: usize) -> Result<&'a mut [u8], i32> {
    check(addr, len)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: non-null and non-wrapping (checked above); validity and exclusive
    // access until the final CQE are the submitter's promise (see module docs).
    Ok(unsafe { user::user_slice_mut(addr, len) })
}

/// The application buffer `addr..addr+len`, read-only.
pub fn slice<'a>(addr: u64, len: usize) -> Result<&'a [u8], i32> {
    check(addr, len)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: as for `slice_mut`; the engine only reads.
    Ok(unsafe { user::user_slice(addr, len) })
}

/// Reads a `T` (unaligned) from application memory.
pub fn read<T: Copy>(addr: u64) -> Result<T, i32> {
    check(addr, core::mem::size_of::<T>())?;
    // SAFETY: as for `slice`; `T: Copy` has no drop glue and any bit pattern
    // of the integer-only structs read here (sockaddr_in, socklen_t, timespec) is valid.
    Ok(unsafe { user::read_user::<T>(addr) })
}

/// Writes a `T` (unaligned) into application memory.
pub fn write<T: Copy>(addr: u64, v: T) -> Result<(), i32> {
    check(addr, core::mem::size_of::<T>())?;
    // SAFETY: as for `slice_mut`.
    unsafe { user::write_user::<T>(addr, v) };
    Ok(())
}

/// `fetch_or` on the application's 32-bit ready word at `addr` (4-byte
/// aligned), returning the previous value. The word is shared with the
/// application, which clears it with an atomic swap; see
/// `ringline_ring::app::take_ready`.
pub fn fetch_or_u32(addr: u64, bits: u32) -> Result<u32, i32> {
    check(addr, 4)?;
    if !addr.is_multiple_of(4) {
        return Err(-libc::EINVAL);
    }
    // SAFETY: non-null, aligned and in range (checked above); the application
    // promised the word lives until the poll's final CQE (the push contract)
    // and only accesses it atomically, so an AtomicU32 view is sound.
    let word = unsafe { &*(addr as *const core::sync::atomic::AtomicU32) };
    // AcqRel: the engine publishes readiness (Release) that the app's swap
    // (AcqRel) observes; Acquire pairs with the app's clearing swap so a
    // cleared word is seen as 0 and a new CQE is queued.
    Ok(word.fetch_or(bits, core::sync::atomic::Ordering::AcqRel))
}

/// Most iovecs one SENDMSG/RECVMSG may name (`UIO_MAXIOV`).
pub const UIO_MAXIOV: u32 = 1024;

/// The application's `struct msghdr` at `addr`: (iov array, iovlen, namelen,
/// controllen). `-EMSGSIZE` for more than `UIO_MAXIOV` iovecs.
pub fn read_msghdr(addr: u64) -> Result<(u64, u32, u32, u32), i32> {
    let m: libc::msghdr = read(addr)?;
    if m.msg_iovlen > UIO_MAXIOV as usize {
        return Err(-libc::EMSGSIZE);
    }
    let controllen = u32::try_from(m.msg_controllen).map_err(|_| -libc::EINVAL)?;
    Ok((
        m.msg_iov as u64,
        m.msg_iovlen as u32,
        m.msg_namelen,
        controllen,
    ))
}

/// Total length of `n` iovecs at `iov`.
pub fn iov_total(iov: u64, n: u32) -> Result<u64, i32> {
    let mut total = 0u64;
    for i in 0..n as u64 {
        let v: libc::iovec = read(iov + i * core::mem::size_of::<libc::iovec>() as u64)?;
        check(v.iov_base as u64, v.iov_len)?;
        total = total.checked_add(v.iov_len as u64).ok_or(-libc::EINVAL)?;
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
) -> Result<usize, i32> {
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
