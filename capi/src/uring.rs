//! liburing's `struct io_uring` (2.x), defined here by hand with the layout of
//! Debian's `liburing-dev` 2.3 (`/usr/include/liburing.h`), and checked at compile
//! time here and against the C header by `tests/c/layout.c`.

use core::mem::{offset_of, size_of};

use ringline_ring::{Cqe, Sqe};

/// `struct io_uring_sq`.
#[repr(C)]
pub struct IoUringSq {
    pub khead: *mut u32,
    pub ktail: *mut u32,
    pub kring_mask: *mut u32,
    pub kring_entries: *mut u32,
    pub kflags: *mut u32,
    pub kdropped: *mut u32,
    pub array: *mut u32,
    pub sqes: *mut Sqe,
    pub sqe_head: u32,
    pub sqe_tail: u32,
    pub ring_sz: usize,
    pub ring_ptr: *mut libc::c_void,
    pub ring_mask: u32,
    pub ring_entries: u32,
    /// liburing leaves these unused; ringline keeps its ring handle here
    /// (`pad[0]` low, `pad[1]` high 32 bits of the pointer).
    pub pad: [u32; 2],
}

/// `struct io_uring_cq`.
#[repr(C)]
pub struct IoUringCq {
    pub khead: *mut u32,
    pub ktail: *mut u32,
    pub kring_mask: *mut u32,
    pub kring_entries: *mut u32,
    pub kflags: *mut u32,
    pub koverflow: *mut u32,
    pub cqes: *mut Cqe,
    pub ring_sz: usize,
    pub ring_ptr: *mut libc::c_void,
    pub ring_mask: u32,
    pub ring_entries: u32,
    /// Unused by liburing; ringline writes [`MAGIC`] in `pad[0]`.
    pub pad: [u32; 2],
}

/// `struct io_uring`.
#[repr(C)]
pub struct IoUring {
    pub sq: IoUringSq,
    pub cq: IoUringCq,
    pub flags: u32,
    pub ring_fd: i32,
    pub features: u32,
    pub enter_ring_fd: i32,
    pub int_flags: u8,
    pub pad: [u8; 3],
    pub pad2: u32,
}

/// Marks a `struct io_uring` filled by ringline (`cq.pad[0]`).
pub const MAGIC: u32 = 0x7269_6e67; // "ring"

// `struct io_uring_probe` and its ops: `ringline_ring::abi::{Probe, ProbeOp}`.

// x86-64 / arm64 (LP64) layout, as printed by tests/c/layout.c from the header.
const _: () = {
    assert!(size_of::<IoUringSq>() == 104);
    assert!(offset_of!(IoUringSq, sqes) == 56);
    assert!(offset_of!(IoUringSq, sqe_head) == 64);
    assert!(offset_of!(IoUringSq, sqe_tail) == 68);
    assert!(offset_of!(IoUringSq, ring_sz) == 72);
    assert!(offset_of!(IoUringSq, ring_ptr) == 80);
    assert!(offset_of!(IoUringSq, ring_mask) == 88);
    assert!(offset_of!(IoUringSq, pad) == 96);
    assert!(size_of::<IoUringCq>() == 88);
    assert!(offset_of!(IoUringCq, cqes) == 48);
    assert!(offset_of!(IoUringCq, ring_mask) == 72);
    assert!(offset_of!(IoUringCq, pad) == 80);
    assert!(size_of::<IoUring>() == 216);
    assert!(offset_of!(IoUring, cq) == 104);
    assert!(offset_of!(IoUring, flags) == 192);
    assert!(offset_of!(IoUring, ring_fd) == 196);
    assert!(offset_of!(IoUring, features) == 200);
    assert!(offset_of!(IoUring, enter_ring_fd) == 204);
    assert!(offset_of!(IoUring, int_flags) == 208);
    assert!(offset_of!(IoUring, pad2) == 212);
};
