//! The io_uring ABI: structures laid out byte for byte as Linux's UAPI header
//! (`include/uapi/linux/io_uring.h`) and constants with Linux's numbers.
//!
//! Every shared structure carries compile-time size and offset assertions, so a
//! layout drift is a build error, not a silent incompatibility.
//!
//! The constants keep their Linux names and values and are documented by the UAPI
//! header; only ringline's own additions carry doc comments here.

// The `IORING_*` / `IOSQE_*` constants are the UAPI header's, name for name.
#![allow(missing_docs)]

use core::mem::{offset_of, size_of};

/// A submission queue entry, `struct io_uring_sqe` (64 bytes).
///
/// Unions of the kernel struct are flattened to their most common member; the
/// accessors document the aliases (`off` is also `addr2`, `op_flags` is also
/// `poll32_events`, `msg_flags`, `accept_flags`, `cancel_flags`, ...).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sqe {
    /// Operation code (`IORING_OP_*`).
    pub opcode: u8,
    /// Submission flags (`IOSQE_*`).
    pub flags: u8,
    /// I/O priority; for network ops the per-opcode flag word
    /// (`IORING_RECV_MULTISHOT`, `IORING_ACCEPT_MULTISHOT`, ...).
    pub ioprio: u16,
    /// File descriptor (a ringline socket number).
    pub fd: i32,
    /// Offset; also `addr2` (e.g. the `socklen_t *` of ACCEPT, the user_data of a
    /// POLL_REMOVE update, the addrlen of CONNECT and BIND).
    pub off: u64,
    /// Buffer or address pointer; also the target user_data of cancel/poll remove.
    pub addr: u64,
    /// Buffer length, or op-specific count/flags.
    pub len: u32,
    /// Op-specific flags: `rw_flags`, `poll32_events`, `msg_flags`,
    /// `accept_flags`, `cancel_flags`, `timeout_flags`, `nop_flags`, ...
    pub op_flags: u32,
    /// Echoed verbatim in every CQE of this request.
    pub user_data: u64,
    /// `buf_index` (fixed buffer) or `buf_group` (provided-buffer group).
    pub buf_index: u16,
    /// Personality (credentials); must be 0 here.
    pub personality: u16,
    /// `splice_fd_in` / `file_index` / `optlen` / `{addr_len u16, pad u16}`.
    pub file_index: u32,
    /// `addr3`, or the first half of `cmd`.
    pub addr3: u64,
    /// Padding / second half of `cmd`.
    pub pad2: u64,
}

const _: () = {
    assert!(size_of::<Sqe>() == 64);
    assert!(offset_of!(Sqe, opcode) == 0);
    assert!(offset_of!(Sqe, flags) == 1);
    assert!(offset_of!(Sqe, ioprio) == 2);
    assert!(offset_of!(Sqe, fd) == 4);
    assert!(offset_of!(Sqe, off) == 8);
    assert!(offset_of!(Sqe, addr) == 16);
    assert!(offset_of!(Sqe, len) == 24);
    assert!(offset_of!(Sqe, op_flags) == 28);
    assert!(offset_of!(Sqe, user_data) == 32);
    assert!(offset_of!(Sqe, buf_index) == 40);
    assert!(offset_of!(Sqe, personality) == 42);
    assert!(offset_of!(Sqe, file_index) == 44);
    assert!(offset_of!(Sqe, addr3) == 48);
    assert!(offset_of!(Sqe, pad2) == 56);
};

impl Sqe {
    /// `buf_group`: alias of `buf_index`, the provided-buffer group of
    /// `IOSQE_BUFFER_SELECT` and of PROVIDE_BUFFERS / REMOVE_BUFFERS.
    #[inline]
    pub fn buf_group(&self) -> u16 {
        self.buf_index
    }
    /// `poll32_events`: alias of `op_flags` for POLL_ADD / POLL_REMOVE.
    #[inline]
    pub fn poll32_events(&self) -> u32 {
        self.op_flags
    }
    /// `optlen`: alias of `file_index`; the total byte cap of a multishot recv (6.17+).
    #[inline]
    pub fn optlen(&self) -> u32 {
        self.file_index
    }
}

/// A completion queue entry, `struct io_uring_cqe` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cqe {
    /// The `user_data` of the SQE this completes.
    pub user_data: u64,
    /// Result: >= 0 success value, < 0 a negative errno.
    pub res: i32,
    /// `IORING_CQE_F_*` flags; upper 16 bits are the buffer id with `F_BUFFER`.
    pub flags: u32,
}

const _: () = {
    assert!(size_of::<Cqe>() == 16);
    assert!(offset_of!(Cqe, user_data) == 0);
    assert!(offset_of!(Cqe, res) == 8);
    assert!(offset_of!(Cqe, flags) == 12);
};

/// One provided buffer in a buffer ring, `struct io_uring_buf` (16 bytes).
/// In entry 0, `resv` is the ring's tail (`struct io_uring_buf_ring` union).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoUringBuf {
    /// Buffer address.
    pub addr: u64,
    /// Buffer length.
    pub len: u32,
    /// Buffer id, returned in the CQE flags.
    pub bid: u16,
    /// Reserved; in entry 0 this is the ring tail.
    pub resv: u16,
}

const _: () = {
    assert!(size_of::<IoUringBuf>() == 16);
    assert!(offset_of!(IoUringBuf, addr) == 0);
    assert!(offset_of!(IoUringBuf, len) == 8);
    assert!(offset_of!(IoUringBuf, bid) == 12);
    assert!(offset_of!(IoUringBuf, resv) == 14);
};

/// Byte offset of the buffer ring's u16 tail inside the ring (`bufs[0].resv`).
pub const BUF_RING_TAIL_OFFSET: usize = 14;

/// `struct io_uring_buf_reg` (40 bytes): buffer-ring registration.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoUringBufReg {
    /// Page-aligned ring address (0 with `IOU_PBUF_RING_MMAP`).
    pub ring_addr: u64,
    /// Number of entries, a power of two below 65536.
    pub ring_entries: u32,
    /// Buffer group id.
    pub bgid: u16,
    /// `IOU_PBUF_RING_*` flags.
    pub flags: u16,
    /// Minimum left in an incremental buffer.
    pub min_left: u32,
    /// Reserved, zero.
    pub resv: [u32; 5],
}

const _: () = {
    assert!(size_of::<IoUringBufReg>() == 40);
    assert!(offset_of!(IoUringBufReg, ring_entries) == 8);
    assert!(offset_of!(IoUringBufReg, bgid) == 12);
    assert!(offset_of!(IoUringBufReg, flags) == 14);
    assert!(offset_of!(IoUringBufReg, min_left) == 16);
    assert!(offset_of!(IoUringBufReg, resv) == 20);
};

/// `struct io_sqring_offsets` (40 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SqringOffsets {
    /// Offset of sq.head.
    pub head: u32,
    /// Offset of sq.tail.
    pub tail: u32,
    /// Offset of the ring mask.
    pub ring_mask: u32,
    /// Offset of the entry count.
    pub ring_entries: u32,
    /// Offset of sq_flags.
    pub flags: u32,
    /// Offset of sq_dropped.
    pub dropped: u32,
    /// Offset of the SQ index array.
    pub array: u32,
    /// Reserved.
    pub resv1: u32,
    /// User address (`SETUP_NO_MMAP` only).
    pub user_addr: u64,
}

const _: () = {
    assert!(size_of::<SqringOffsets>() == 40);
    assert!(offset_of!(SqringOffsets, head) == 0);
    assert!(offset_of!(SqringOffsets, tail) == 4);
    assert!(offset_of!(SqringOffsets, ring_mask) == 8);
    assert!(offset_of!(SqringOffsets, ring_entries) == 12);
    assert!(offset_of!(SqringOffsets, flags) == 16);
    assert!(offset_of!(SqringOffsets, dropped) == 20);
    assert!(offset_of!(SqringOffsets, array) == 24);
    assert!(offset_of!(SqringOffsets, resv1) == 28);
    assert!(offset_of!(SqringOffsets, user_addr) == 32);
};

/// `struct io_cqring_offsets` (40 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CqringOffsets {
    /// Offset of cq.head.
    pub head: u32,
    /// Offset of cq.tail.
    pub tail: u32,
    /// Offset of the ring mask.
    pub ring_mask: u32,
    /// Offset of the entry count.
    pub ring_entries: u32,
    /// Offset of cq_overflow (CQEs lost).
    pub overflow: u32,
    /// Offset of the CQE array.
    pub cqes: u32,
    /// Offset of cq_flags.
    pub flags: u32,
    /// Reserved.
    pub resv1: u32,
    /// User address (`SETUP_NO_MMAP` only).
    pub user_addr: u64,
}

const _: () = {
    assert!(size_of::<CqringOffsets>() == 40);
    assert!(offset_of!(CqringOffsets, head) == 0);
    assert!(offset_of!(CqringOffsets, tail) == 4);
    assert!(offset_of!(CqringOffsets, ring_mask) == 8);
    assert!(offset_of!(CqringOffsets, ring_entries) == 12);
    assert!(offset_of!(CqringOffsets, overflow) == 16);
    assert!(offset_of!(CqringOffsets, cqes) == 20);
    assert!(offset_of!(CqringOffsets, flags) == 24);
    assert!(offset_of!(CqringOffsets, resv1) == 28);
    assert!(offset_of!(CqringOffsets, user_addr) == 32);
};

/// `struct io_uring_params` (120 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// SQ entries (out: rounded to a power of two).
    pub sq_entries: u32,
    /// CQ entries (in with `IORING_SETUP_CQSIZE`; out).
    pub cq_entries: u32,
    /// `IORING_SETUP_*` flags.
    pub flags: u32,
    /// SQPOLL thread CPU.
    pub sq_thread_cpu: u32,
    /// SQPOLL idle time in ms.
    pub sq_thread_idle: u32,
    /// `IORING_FEAT_*` (out).
    pub features: u32,
    /// `IORING_SETUP_ATTACH_WQ` fd.
    pub wq_fd: u32,
    /// Reserved, zero.
    pub resv: [u32; 3],
    /// SQ ring offsets (out).
    pub sq_off: SqringOffsets,
    /// CQ ring offsets (out).
    pub cq_off: CqringOffsets,
}

const _: () = {
    assert!(size_of::<Params>() == 120);
    assert!(offset_of!(Params, cq_entries) == 4);
    assert!(offset_of!(Params, flags) == 8);
    assert!(offset_of!(Params, sq_thread_cpu) == 12);
    assert!(offset_of!(Params, sq_thread_idle) == 16);
    assert!(offset_of!(Params, features) == 20);
    assert!(offset_of!(Params, wq_fd) == 24);
    assert!(offset_of!(Params, resv) == 28);
    assert!(offset_of!(Params, sq_off) == 40);
    assert!(offset_of!(Params, cq_off) == 80);
};

/// `struct io_uring_recvmsg_out` (16 bytes): header of a multishot RECVMSG buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvmsgOut {
    /// Untruncated name length.
    pub namelen: u32,
    /// Control bytes written.
    pub controllen: u32,
    /// Untruncated payload length.
    pub payloadlen: u32,
    /// recvmsg msg_flags.
    pub flags: u32,
}

const _: () = assert!(size_of::<RecvmsgOut>() == 16);

// ---- opcodes (`enum io_uring_op`) ----
pub const IORING_OP_NOP: u8 = 0;
pub const IORING_OP_READV: u8 = 1;
pub const IORING_OP_WRITEV: u8 = 2;
pub const IORING_OP_FSYNC: u8 = 3;
pub const IORING_OP_READ_FIXED: u8 = 4;
pub const IORING_OP_WRITE_FIXED: u8 = 5;
pub const IORING_OP_POLL_ADD: u8 = 6;
pub const IORING_OP_POLL_REMOVE: u8 = 7;
pub const IORING_OP_SYNC_FILE_RANGE: u8 = 8;
pub const IORING_OP_SENDMSG: u8 = 9;
pub const IORING_OP_RECVMSG: u8 = 10;
pub const IORING_OP_TIMEOUT: u8 = 11;
pub const IORING_OP_TIMEOUT_REMOVE: u8 = 12;
pub const IORING_OP_ACCEPT: u8 = 13;
pub const IORING_OP_ASYNC_CANCEL: u8 = 14;
pub const IORING_OP_LINK_TIMEOUT: u8 = 15;
pub const IORING_OP_CONNECT: u8 = 16;
pub const IORING_OP_FALLOCATE: u8 = 17;
pub const IORING_OP_OPENAT: u8 = 18;
pub const IORING_OP_CLOSE: u8 = 19;
pub const IORING_OP_FILES_UPDATE: u8 = 20;
pub const IORING_OP_STATX: u8 = 21;
pub const IORING_OP_READ: u8 = 22;
pub const IORING_OP_WRITE: u8 = 23;
pub const IORING_OP_FADVISE: u8 = 24;
pub const IORING_OP_MADVISE: u8 = 25;
pub const IORING_OP_SEND: u8 = 26;
pub const IORING_OP_RECV: u8 = 27;
pub const IORING_OP_OPENAT2: u8 = 28;
pub const IORING_OP_EPOLL_CTL: u8 = 29;
pub const IORING_OP_SPLICE: u8 = 30;
pub const IORING_OP_PROVIDE_BUFFERS: u8 = 31;
pub const IORING_OP_REMOVE_BUFFERS: u8 = 32;
pub const IORING_OP_TEE: u8 = 33;
pub const IORING_OP_SHUTDOWN: u8 = 34;
pub const IORING_OP_RENAMEAT: u8 = 35;
pub const IORING_OP_UNLINKAT: u8 = 36;
pub const IORING_OP_MKDIRAT: u8 = 37;
pub const IORING_OP_SYMLINKAT: u8 = 38;
pub const IORING_OP_LINKAT: u8 = 39;
pub const IORING_OP_MSG_RING: u8 = 40;
pub const IORING_OP_FSETXATTR: u8 = 41;
pub const IORING_OP_SETXATTR: u8 = 42;
pub const IORING_OP_FGETXATTR: u8 = 43;
pub const IORING_OP_GETXATTR: u8 = 44;
pub const IORING_OP_SOCKET: u8 = 45;
pub const IORING_OP_URING_CMD: u8 = 46;
pub const IORING_OP_SEND_ZC: u8 = 47;
pub const IORING_OP_SENDMSG_ZC: u8 = 48;
pub const IORING_OP_READ_MULTISHOT: u8 = 49;
pub const IORING_OP_WAITID: u8 = 50;
pub const IORING_OP_FUTEX_WAIT: u8 = 51;
pub const IORING_OP_FUTEX_WAKE: u8 = 52;
pub const IORING_OP_FUTEX_WAITV: u8 = 53;
pub const IORING_OP_FIXED_FD_INSTALL: u8 = 54;
pub const IORING_OP_FTRUNCATE: u8 = 55;
pub const IORING_OP_BIND: u8 = 56;
pub const IORING_OP_LISTEN: u8 = 57;
pub const IORING_OP_RECV_ZC: u8 = 58;
pub const IORING_OP_EPOLL_WAIT: u8 = 59;
pub const IORING_OP_READV_FIXED: u8 = 60;
pub const IORING_OP_WRITEV_FIXED: u8 = 61;
pub const IORING_OP_PIPE: u8 = 62;
pub const IORING_OP_NOP128: u8 = 63;
pub const IORING_OP_URING_CMD128: u8 = 64;
/// First invalid opcode: an SQE with `opcode >= IORING_OP_LAST` completes with `-EINVAL`.
pub const IORING_OP_LAST: u8 = 65;

// ---- SQE flags (`sqe->flags`) ----
pub const IOSQE_FIXED_FILE: u8 = 1 << 0;
pub const IOSQE_IO_DRAIN: u8 = 1 << 1;
pub const IOSQE_IO_LINK: u8 = 1 << 2;
pub const IOSQE_IO_HARDLINK: u8 = 1 << 3;
pub const IOSQE_ASYNC: u8 = 1 << 4;
pub const IOSQE_BUFFER_SELECT: u8 = 1 << 5;
pub const IOSQE_CQE_SKIP_SUCCESS: u8 = 1 << 6;
/// Every SQE flag bit Linux defines; any other bit is `-EINVAL`.
pub const IOSQE_ALL: u8 = 0x7f;

// ---- CQE flags ----
pub const IORING_CQE_F_BUFFER: u32 = 1 << 0;
pub const IORING_CQE_F_MORE: u32 = 1 << 1;
pub const IORING_CQE_F_SOCK_NONEMPTY: u32 = 1 << 2;
pub const IORING_CQE_F_NOTIF: u32 = 1 << 3;
pub const IORING_CQE_F_BUF_MORE: u32 = 1 << 4;
pub const IORING_CQE_F_SKIP: u32 = 1 << 5;
pub const IORING_CQE_F_32: u32 = 1 << 15;
pub const IORING_CQE_BUFFER_SHIFT: u32 = 16;

// ---- setup flags ----
pub const IORING_SETUP_IOPOLL: u32 = 1 << 0;
pub const IORING_SETUP_SQPOLL: u32 = 1 << 1;
pub const IORING_SETUP_SQ_AFF: u32 = 1 << 2;
pub const IORING_SETUP_CQSIZE: u32 = 1 << 3;
pub const IORING_SETUP_CLAMP: u32 = 1 << 4;
pub const IORING_SETUP_ATTACH_WQ: u32 = 1 << 5;
pub const IORING_SETUP_R_DISABLED: u32 = 1 << 6;
pub const IORING_SETUP_SUBMIT_ALL: u32 = 1 << 7;
pub const IORING_SETUP_COOP_TASKRUN: u32 = 1 << 8;
pub const IORING_SETUP_TASKRUN_FLAG: u32 = 1 << 9;
pub const IORING_SETUP_SQE128: u32 = 1 << 10;
pub const IORING_SETUP_CQE32: u32 = 1 << 11;
pub const IORING_SETUP_SINGLE_ISSUER: u32 = 1 << 12;
pub const IORING_SETUP_DEFER_TASKRUN: u32 = 1 << 13;
pub const IORING_SETUP_NO_MMAP: u32 = 1 << 14;
pub const IORING_SETUP_REGISTERED_FD_ONLY: u32 = 1 << 15;
pub const IORING_SETUP_NO_SQARRAY: u32 = 1 << 16;
pub const IORING_SETUP_HYBRID_IOPOLL: u32 = 1 << 17;
pub const IORING_SETUP_CQE_MIXED: u32 = 1 << 18;
pub const IORING_SETUP_SQE_MIXED: u32 = 1 << 19;
pub const IORING_SETUP_SQ_REWIND: u32 = 1 << 20;

/// Largest SQ size (`IORING_MAX_ENTRIES`).
pub const IORING_MAX_ENTRIES: u32 = 32768;
/// Largest CQ size (`IORING_MAX_CQ_ENTRIES`).
pub const IORING_MAX_CQ_ENTRIES: u32 = 2 * IORING_MAX_ENTRIES;

// ---- SQ ring flags (`sq_flags`) ----
pub const IORING_SQ_NEED_WAKEUP: u32 = 1 << 0;
pub const IORING_SQ_CQ_OVERFLOW: u32 = 1 << 1;
pub const IORING_SQ_TASKRUN: u32 = 1 << 2;

// ---- CQ ring flags ----
pub const IORING_CQ_EVENTFD_DISABLED: u32 = 1 << 0;

// ---- enter flags ----
pub const IORING_ENTER_GETEVENTS: u32 = 1 << 0;
pub const IORING_ENTER_SQ_WAKEUP: u32 = 1 << 1;
pub const IORING_ENTER_SQ_WAIT: u32 = 1 << 2;
pub const IORING_ENTER_EXT_ARG: u32 = 1 << 3;
pub const IORING_ENTER_REGISTERED_RING: u32 = 1 << 4;

// ---- features ----
pub const IORING_FEAT_SINGLE_MMAP: u32 = 1 << 0;
pub const IORING_FEAT_NODROP: u32 = 1 << 1;
pub const IORING_FEAT_SUBMIT_STABLE: u32 = 1 << 2;
pub const IORING_FEAT_RW_CUR_POS: u32 = 1 << 3;
pub const IORING_FEAT_CUR_PERSONALITY: u32 = 1 << 4;
pub const IORING_FEAT_FAST_POLL: u32 = 1 << 5;
pub const IORING_FEAT_POLL_32BITS: u32 = 1 << 6;
pub const IORING_FEAT_SQPOLL_NONFIXED: u32 = 1 << 7;
pub const IORING_FEAT_EXT_ARG: u32 = 1 << 8;
pub const IORING_FEAT_NATIVE_WORKERS: u32 = 1 << 9;
pub const IORING_FEAT_RSRC_TAGS: u32 = 1 << 10;
pub const IORING_FEAT_CQE_SKIP: u32 = 1 << 11;
pub const IORING_FEAT_LINKED_FILE: u32 = 1 << 12;
pub const IORING_FEAT_REG_REG_RING: u32 = 1 << 13;
pub const IORING_FEAT_RECVSEND_BUNDLE: u32 = 1 << 14;
pub const IORING_FEAT_MIN_TIMEOUT: u32 = 1 << 15;
pub const IORING_FEAT_RW_ATTR: u32 = 1 << 16;
pub const IORING_FEAT_NO_IOWAIT: u32 = 1 << 17;

// ---- mmap offsets ----
pub const IORING_OFF_SQ_RING: u64 = 0;
pub const IORING_OFF_CQ_RING: u64 = 0x800_0000;
pub const IORING_OFF_SQES: u64 = 0x1000_0000;
pub const IORING_OFF_PBUF_RING: u64 = 0x8000_0000;
pub const IORING_OFF_PBUF_SHIFT: u32 = 16;
pub const IORING_OFF_MMAP_MASK: u64 = 0xf800_0000;

// ---- per-op flags in `ioprio` ----
pub const IORING_RECVSEND_POLL_FIRST: u16 = 1 << 0;
pub const IORING_RECV_MULTISHOT: u16 = 1 << 1;
pub const IORING_RECVSEND_FIXED_BUF: u16 = 1 << 2;
pub const IORING_SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
pub const IORING_RECVSEND_BUNDLE: u16 = 1 << 4;
pub const IORING_SEND_VECTORIZED: u16 = 1 << 5;
pub const IORING_ACCEPT_MULTISHOT: u16 = 1 << 0;
pub const IORING_ACCEPT_DONTWAIT: u16 = 1 << 1;
pub const IORING_ACCEPT_POLL_FIRST: u16 = 1 << 2;

// ---- URING_CMD (`uring_cmd_flags` in `op_flags`; `cmd_op` in the low half of `off`) ----
pub const IORING_URING_CMD_FIXED: u32 = 1 << 0;
pub const IORING_URING_CMD_MULTISHOT: u32 = 1 << 1;
/// Socket commands (`cmd_op` of a URING_CMD on a socket). GETSOCKOPT and
/// SETSOCKOPT read `level` (low half of `addr`), `optname` (high half),
/// `optlen` (`file_index`) and `optval` (`addr3`).
pub const SOCKET_URING_OP_SIOCINQ: u32 = 0;
pub const SOCKET_URING_OP_SIOCOUTQ: u32 = 1;
pub const SOCKET_URING_OP_GETSOCKOPT: u32 = 2;
pub const SOCKET_URING_OP_SETSOCKOPT: u32 = 3;

// ---- POLL_ADD / POLL_REMOVE flags (in `len`) ----
pub const IORING_POLL_ADD_MULTI: u32 = 1 << 0;
pub const IORING_POLL_UPDATE_EVENTS: u32 = 1 << 1;
pub const IORING_POLL_UPDATE_USER_DATA: u32 = 1 << 2;
pub const IORING_POLL_ADD_LEVEL: u32 = 1 << 3;
/// ringline extension (bit 15 of the POLL_ADD `len` flags, unused by Linux):
/// coalesced persistent poll with uepoll semantics. See the stack's docs.
pub const RINGLINE_POLL_COALESCED: u32 = 1 << 15;

// ---- ASYNC_CANCEL flags ----
pub const IORING_ASYNC_CANCEL_ALL: u32 = 1 << 0;
pub const IORING_ASYNC_CANCEL_FD: u32 = 1 << 1;
pub const IORING_ASYNC_CANCEL_ANY: u32 = 1 << 2;
pub const IORING_ASYNC_CANCEL_FD_FIXED: u32 = 1 << 3;
pub const IORING_ASYNC_CANCEL_USERDATA: u32 = 1 << 4;
pub const IORING_ASYNC_CANCEL_OP: u32 = 1 << 5;

// ---- MSG_RING (`addr`: the command; `msg_ring_flags` in `op_flags`) ----
/// `IORING_MSG_DATA`: post a CQE (user_data `off`, res `len`) to the target ring.
pub const IORING_MSG_DATA: u32 = 0;
/// `IORING_MSG_SEND_FD`: install fixed file `addr3` in the target's table at `file_index`.
pub const IORING_MSG_SEND_FD: u32 = 1;
/// `IORING_MSG_RING_CQE_SKIP`: SEND_FD posts no CQE to the target.
pub const IORING_MSG_RING_CQE_SKIP: u32 = 1 << 0;
/// `IORING_MSG_RING_FLAGS_PASS`: the target CQE's flags are `file_index`.
pub const IORING_MSG_RING_FLAGS_PASS: u32 = 1 << 1;

// ---- NOP flags ----
pub const IORING_NOP_INJECT_RESULT: u32 = 1 << 0;
pub const IORING_NOP_FILE: u32 = 1 << 1;
pub const IORING_NOP_FIXED_FILE: u32 = 1 << 2;
pub const IORING_NOP_FIXED_BUFFER: u32 = 1 << 3;
pub const IORING_NOP_TW: u32 = 1 << 4;
pub const IORING_NOP_CQE32: u32 = 1 << 5;

// ---- TIMEOUT flags ----
pub const IORING_TIMEOUT_ABS: u32 = 1 << 0;
pub const IORING_TIMEOUT_UPDATE: u32 = 1 << 1;
pub const IORING_TIMEOUT_BOOTTIME: u32 = 1 << 2;
pub const IORING_TIMEOUT_REALTIME: u32 = 1 << 3;
pub const IORING_LINK_TIMEOUT_UPDATE: u32 = 1 << 4;
pub const IORING_TIMEOUT_ETIME_SUCCESS: u32 = 1 << 5;
pub const IORING_TIMEOUT_MULTISHOT: u32 = 1 << 6;

// ---- buffer-ring registration flags ----
pub const IOU_PBUF_RING_MMAP: u16 = 1;
pub const IOU_PBUF_RING_INC: u16 = 2;

// ---- register opcodes used by ringline ----
pub const IORING_REGISTER_BUFFERS: u32 = 0;
pub const IORING_UNREGISTER_BUFFERS: u32 = 1;
pub const IORING_REGISTER_FILES: u32 = 2;
pub const IORING_UNREGISTER_FILES: u32 = 3;
pub const IORING_REGISTER_FILES_UPDATE: u32 = 6;
pub const IORING_REGISTER_PROBE: u32 = 8;
pub const IORING_REGISTER_FILES2: u32 = 13;
pub const IORING_REGISTER_FILES_UPDATE2: u32 = 14;
pub const IORING_REGISTER_PBUF_RING: u32 = 22;
pub const IORING_UNREGISTER_PBUF_RING: u32 = 23;
pub const IORING_REGISTER_SYNC_CANCEL: u32 = 24;
pub const IORING_REGISTER_FILE_ALLOC_RANGE: u32 = 25;
pub const IORING_REGISTER_PBUF_STATUS: u32 = 26;

// ---- registered resources ----
/// `file_index` of SOCKET / ACCEPT asking for any free direct-descriptor slot.
pub const IORING_FILE_INDEX_ALLOC: u32 = u32::MAX;
/// An fd of a files update that leaves its slot as it is.
pub const IORING_REGISTER_FILES_SKIP: i32 = -2;
/// `io_uring_rsrc_register.flags`: a table of empty slots (`data` must be 0).
pub const IORING_RSRC_REGISTER_SPARSE: u32 = 1 << 0;
/// Largest registered file table (`IORING_MAX_FIXED_FILES`).
pub const IORING_MAX_FIXED_FILES: u32 = 1 << 20;
/// Most registered buffers (`IORING_MAX_REG_BUFFERS`).
pub const IORING_MAX_REG_BUFFERS: u32 = 1 << 14;
/// `io_uring_probe_op.flags`: the opcode is supported.
pub const IO_URING_OP_SUPPORTED: u16 = 1 << 0;

/// `struct io_uring_rsrc_register` (32 bytes): the argument of
/// `IORING_REGISTER_FILES2` / `IORING_REGISTER_BUFFERS2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RsrcRegister {
    /// Table size.
    pub nr: u32,
    /// `IORING_RSRC_REGISTER_*`.
    pub flags: u32,
    /// Reserved, zero.
    pub resv2: u64,
    /// Pointer to the `nr` fds (or iovecs); 0 with `IORING_RSRC_REGISTER_SPARSE`.
    pub data: u64,
    /// Pointer to `nr` u64 tags, or 0.
    pub tags: u64,
}

const _: () = {
    assert!(size_of::<RsrcRegister>() == 32);
    assert!(offset_of!(RsrcRegister, flags) == 4);
    assert!(offset_of!(RsrcRegister, resv2) == 8);
    assert!(offset_of!(RsrcRegister, data) == 16);
    assert!(offset_of!(RsrcRegister, tags) == 24);
};

/// `struct io_uring_rsrc_update` (16 bytes; also `io_uring_files_update`): the
/// argument of `IORING_REGISTER_FILES_UPDATE`, whose `nr_args` is the count.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RsrcUpdate {
    /// First slot.
    pub offset: u32,
    /// Reserved, zero.
    pub resv: u32,
    /// Pointer to the fds.
    pub data: u64,
}

const _: () = {
    assert!(size_of::<RsrcUpdate>() == 16);
    assert!(offset_of!(RsrcUpdate, resv) == 4);
    assert!(offset_of!(RsrcUpdate, data) == 8);
};

/// `struct io_uring_rsrc_update2` (32 bytes): the argument of
/// `IORING_REGISTER_FILES_UPDATE2`, whose `nr_args` is this struct's size.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RsrcUpdate2 {
    /// First slot.
    pub offset: u32,
    /// Reserved, zero.
    pub resv: u32,
    /// Pointer to the fds.
    pub data: u64,
    /// Pointer to u64 tags, or 0.
    pub tags: u64,
    /// How many slots.
    pub nr: u32,
    /// Reserved, zero.
    pub resv2: u32,
}

const _: () = {
    assert!(size_of::<RsrcUpdate2>() == 32);
    assert!(offset_of!(RsrcUpdate2, data) == 8);
    assert!(offset_of!(RsrcUpdate2, tags) == 16);
    assert!(offset_of!(RsrcUpdate2, nr) == 24);
    assert!(offset_of!(RsrcUpdate2, resv2) == 28);
};

/// `struct io_uring_file_index_range` (16 bytes): `IORING_REGISTER_FILE_ALLOC_RANGE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileIndexRange {
    /// First slot `IORING_FILE_INDEX_ALLOC` may pick.
    pub off: u32,
    /// How many slots from `off`.
    pub len: u32,
    /// Reserved, zero.
    pub resv: u64,
}

const _: () = {
    assert!(size_of::<FileIndexRange>() == 16);
    assert!(offset_of!(FileIndexRange, len) == 4);
    assert!(offset_of!(FileIndexRange, resv) == 8);
};

/// `struct io_uring_probe_op` (8 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeOp {
    /// The opcode.
    pub op: u8,
    /// Reserved.
    pub resv: u8,
    /// `IO_URING_OP_SUPPORTED` if supported.
    pub flags: u16,
    /// Reserved.
    pub resv2: u32,
}

const _: () = {
    assert!(size_of::<ProbeOp>() == 8);
    assert!(offset_of!(ProbeOp, flags) == 2);
    assert!(offset_of!(ProbeOp, resv2) == 4);
};

/// `struct io_uring_probe` with room for 256 ops (the header is 16 bytes, then
/// `ops[]`). `IORING_REGISTER_PROBE` fills `ops_len` = min(`nr_args`,
/// `IORING_OP_LAST`) entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The last opcode the ring knows (`IORING_OP_LAST - 1`).
    pub last_op: u8,
    /// Entries filled in `ops`.
    pub ops_len: u8,
    /// Reserved.
    pub resv: u16,
    /// Reserved.
    pub resv2: [u32; 3],
    /// One entry per opcode, `ops[i].op == i`.
    pub ops: [ProbeOp; 256],
}

const _: () = {
    assert!(size_of::<Probe>() == 16 + 256 * 8);
    assert!(offset_of!(Probe, ops_len) == 1);
    assert!(offset_of!(Probe, resv2) == 4);
    assert!(offset_of!(Probe, ops) == 16);
};

impl Default for Probe {
    fn default() -> Self {
        Probe {
            last_op: 0,
            ops_len: 0,
            resv: 0,
            resv2: [0; 3],
            ops: [ProbeOp::default(); 256],
        }
    }
}

impl Probe {
    /// Whether the probe reports `op` as supported (`io_uring_opcode_supported`).
    pub fn supported(&self, op: u8) -> bool {
        op <= self.last_op
            && op < self.ops_len
            && self.ops[op as usize].flags & IO_URING_OP_SUPPORTED != 0
    }
}

/// Whether a CQE says more CQEs follow for the same request (`IORING_CQE_F_MORE`).
pub fn more(flags: u32) -> bool {
    flags & IORING_CQE_F_MORE != 0
}

/// Whether a CQE consumed a provided buffer (`IORING_CQE_F_BUFFER`).
pub fn buffer_select(flags: u32) -> bool {
    flags & IORING_CQE_F_BUFFER != 0
}

/// The provided-buffer id of a CQE, if `IORING_CQE_F_BUFFER` is set.
pub fn buffer_id(flags: u32) -> Option<u16> {
    buffer_select(flags).then_some((flags >> IORING_CQE_BUFFER_SHIFT) as u16)
}

/// Whether the socket still had data / connections queued (`IORING_CQE_F_SOCK_NONEMPTY`).
pub fn sock_nonempty(flags: u32) -> bool {
    flags & IORING_CQE_F_SOCK_NONEMPTY != 0
}

/// Whether this CQE is a zero-copy send notification (`IORING_CQE_F_NOTIF`).
pub fn notif(flags: u32) -> bool {
    flags & IORING_CQE_F_NOTIF != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_id_roundtrip() {
        let f = IORING_CQE_F_BUFFER | IORING_CQE_F_MORE | (513u32 << IORING_CQE_BUFFER_SHIFT);
        assert_eq!(buffer_id(f), Some(513));
        assert!(more(f));
        assert_eq!(buffer_id(IORING_CQE_F_MORE), None);
    }

    #[test]
    fn opcode_numbers_match_linux() {
        // A sample of Linux's numbering, spelled out so a renumbering fails loudly.
        let table: &[(u8, u8)] = &[
            (IORING_OP_NOP, 0),
            (IORING_OP_POLL_ADD, 6),
            (IORING_OP_POLL_REMOVE, 7),
            (IORING_OP_SENDMSG, 9),
            (IORING_OP_RECVMSG, 10),
            (IORING_OP_TIMEOUT, 11),
            (IORING_OP_ACCEPT, 13),
            (IORING_OP_ASYNC_CANCEL, 14),
            (IORING_OP_LINK_TIMEOUT, 15),
            (IORING_OP_CONNECT, 16),
            (IORING_OP_CLOSE, 19),
            (IORING_OP_SEND, 26),
            (IORING_OP_RECV, 27),
            (IORING_OP_PROVIDE_BUFFERS, 31),
            (IORING_OP_REMOVE_BUFFERS, 32),
            (IORING_OP_SHUTDOWN, 34),
            (IORING_OP_SOCKET, 45),
            (IORING_OP_SEND_ZC, 47),
            (IORING_OP_BIND, 56),
            (IORING_OP_LISTEN, 57),
            (IORING_OP_LAST, 65),
        ];
        for (ours, linux) in table {
            assert_eq!(ours, linux);
        }
    }
}
