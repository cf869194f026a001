//! Access to application memory named by SQE addresses.
//!
//! SQEs carry raw addresses (`addr`, `off`/`addr2`, buffer-ring entries). The engine
//! reads and writes the memory they name through these functions, exactly as the
//! kernel's `copy_from_user` / `copy_to_user` would. They are thin wrappers over raw
//! pointer operations; the point of collecting them here is that every such access in
//! ringline is one of these calls, with one safety contract.
//!
//! # The contract (that of [`crate::app::Ring::push`])
//!
//! By submitting an SQE the application promises that every buffer or address it names
//! is valid for the access the operation implies (readable for sends and addresses it
//! passes in, writable for receives and addresses it gets back) and stays valid, and is
//! not accessed by the application in a conflicting way, until the request's final CQE
//! (the one without `IORING_CQE_F_MORE`). Data read at submission time (a `sockaddr`
//! passed to CONNECT or BIND, a timespec) need only live until submission returns
//! (`IORING_FEAT_SUBMIT_STABLE`). The engine checks for null and for address-range
//! overflow before calling in here.

use core::ptr;

/// Turns an SQE address into a pointer.
#[inline]
fn ptr_from(addr: u64) -> *mut u8 {
    // The address came from the application as an integer (an SQE field); it was
    // produced by a pointer-to-integer cast on the application side, so take the
    // exposed provenance back.
    ptr::with_exposed_provenance_mut(addr as usize)
}

/// Copies `data` to application memory at `addr`.
///
/// # Safety
///
/// `addr .. addr + data.len()` is writable application memory under the contract of
/// the module docs (named by an in-flight request), not overlapping `data`. The caller
/// has checked `addr` for null and `addr + len` for overflow.
#[inline]
pub unsafe fn copy_to_user(addr: u64, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    // SAFETY: the destination is valid and writable for data.len() bytes and does not
    // overlap `data` (caller's contract); u8 has no alignment requirement.
    unsafe { ptr::copy_nonoverlapping(data.as_ptr(), ptr_from(addr), data.len()) }
}

/// A shared view of `len` bytes of application memory at `addr`.
///
/// # Safety
///
/// `addr .. addr + len` is readable application memory under the contract of the
/// module docs, not written by anyone for `'a`, and `'a` does not outlive the request.
/// For `len == 0` any `addr` is accepted (an empty slice is returned).
#[inline]
pub unsafe fn user_slice<'a>(addr: u64, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: non-null (caller checked), valid for reads of len bytes and not mutated
    // for 'a (caller's contract); u8 is always aligned.
    unsafe { core::slice::from_raw_parts(ptr_from(addr), len) }
}

/// An exclusive view of `len` bytes of application memory at `addr`.
///
/// # Safety
///
/// `addr .. addr + len` is writable application memory under the contract of the
/// module docs, not accessed by anyone else for `'a`, and `'a` does not outlive the
/// request. For `len == 0` any `addr` is accepted (an empty slice is returned).
#[inline]
pub unsafe fn user_slice_mut<'a>(addr: u64, len: usize) -> &'a mut [u8] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: non-null (caller checked), valid for reads and writes of len bytes and
    // exclusively ours for 'a (caller's contract); u8 is always aligned.
    unsafe { core::slice::from_raw_parts_mut(ptr_from(addr), len) }
}

/// Reads a `T` from application memory at `addr` (no alignment required).
///
/// # Safety
///
/// `addr .. addr + size_of::<T>()` is readable application memory under the contract
/// of the module docs, and any bit pattern there is a valid `T` (use plain-old-data
/// types: integers, `#[repr(C)]` structs of integers).
#[inline]
pub unsafe fn read_user<T: Copy>(addr: u64) -> T {
    // SAFETY: valid for reads of size_of::<T>() bytes holding a valid T (caller's
    // contract); read_unaligned has no alignment requirement.
    unsafe { ptr_from(addr).cast::<T>().read_unaligned() }
}

/// Writes `v` to application memory at `addr` (no alignment required).
///
/// # Safety
///
/// `addr .. addr + size_of::<T>()` is writable application memory under the contract
/// of the module docs.
#[inline]
pub unsafe fn write_user<T: Copy>(addr: u64, v: T) {
    // SAFETY: valid for writes of size_of::<T>() bytes (caller's contract);
    // write_unaligned has no alignment requirement.
    unsafe { ptr_from(addr).cast::<T>().write_unaligned(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr_of<T: ?Sized>(p: *const T) -> u64 {
        p.cast::<u8>().expose_provenance() as u64
    }

    #[test]
    fn round_trips_through_raw_addresses() {
        let mut buf = [0u8; 16];
        let a = addr_of(buf.as_mut_ptr());
        // SAFETY: buf is live, 16 bytes, and not otherwise borrowed during each call.
        unsafe {
            copy_to_user(a + 2, b"hello");
            assert_eq!(user_slice(a + 2, 5), b"hello");
            user_slice_mut(a, 2).copy_from_slice(b"<<");
            write_user::<u32>(a + 9, 0xdead_beef); // unaligned
            assert_eq!(read_user::<u32>(a + 9), 0xdead_beef);
            assert!(user_slice(0, 0).is_empty());
            assert!(user_slice_mut(0, 0).is_empty());
            copy_to_user(0, &[]);
        }
        assert_eq!(&buf[..7], b"<<hello");
        assert_eq!(
            u32::from_ne_bytes(buf[9..13].try_into().unwrap()),
            0xdead_beef
        );
    }
}
