//! io_uring-compatible shared-memory submission/completion rings.
//!
//! This crate is the application interface of ringline: a pair of rings in shared
//! memory laid out byte for byte like Linux's io_uring (`struct io_rings`, 64-byte
//! SQEs, 16-byte CQEs, `io_uring_buf_ring` provided-buffer rings). It knows nothing
//! about networking; the engine in the `ringline` crate consumes SQEs and posts CQEs
//! through the [`ring::EngineRing`] half, the application drives the
//! [`ring::AppRing`] half directly or through the liburing-shaped [`app::Ring`].
//!
//! # Layers
//!
//! * [`abi`] — the kernel structures and constants, with compile-time layout checks.
//! * [`mem`] — anonymous shared mappings ([`mem::Region`]), optionally on 2 MiB huge pages.
//! * [`sync`] and [`proto`] — the index protocols (SQ, CQ, buffer ring, NEED_WAKEUP)
//!   as small generic helpers, so the exact code used on shared memory is also the code
//!   the loom tests model-check.
//! * [`ring`] — the SQ/CQ ring: setup and sizing per `io_uring_setup`, the app half and
//!   the engine half, the ordered CQ overflow backlog (`IORING_FEAT_NODROP`).
//! * [`bufring`] — ring-mapped provided-buffer groups (`io_uring_buf_ring`). Legacy
//!   (`PROVIDE_BUFFERS`) groups are engine-private (no shared memory) and live in the
//!   `ringline` crate, as does its access to application memory named by SQE addresses.
//! * [`app`] — the liburing-shaped API, opcode builders and CQE helpers.
//! * [`io`] — the safe, owning layer above [`Ring`]: requests that own their memory,
//!   a provided-buffer pool with RAII handles, typed completion tokens, multishot
//!   streams re-armed by the layer, and a split submitter / completion borrow.
//!
//! # Invariants
//!
//! * Head and tail counters are free-running `u32` (`u16` for buffer rings); an index
//!   is `counter & mask`, a count is `tail - head` with wrapping arithmetic.
//! * Each counter has exactly one writer. The producer writes a slot, then
//!   store-releases its tail; the consumer load-acquires the tail, copies the slot, then
//!   store-releases its head; the producer load-acquires the head before reusing a slot.
//! * Values written by the other side are treated as untrusted: counts are clamped to
//!   the ring size and indices are masked or bounds-checked, so a misbehaving
//!   application cannot make the engine read or write outside the rings.
//! * A completion is never dropped and never reordered: a CQE that does not fit goes to
//!   an ordered backlog, and nothing bypasses a non-empty backlog.
//! * Safe code cannot make the engine touch memory it does not own: every call that
//!   hands the engine an address ([`Ring::push`], [`Ring::get_sqe`],
//!   [`BufRing::add`] and [`BufRing::advance`]) is `unsafe`, with the io_uring
//!   contract that the memory outlives its use; requests that name no memory go
//!   through the safe [`Ring::push_safe`] as a [`SafeSqe`] (see [`app`] and
//!   [`opcode`]).

#![warn(missing_docs)]

pub mod abi;
pub mod app;
pub mod bufring;
pub mod io;
pub mod mem;
pub mod proto;
pub mod ring;
pub mod sync;

pub use abi::{
    Cqe, CqringOffsets, IoUringBuf, IoUringBufReg, Params, RecvmsgOut, Sqe, SqringOffsets,
};
pub use app::opcode;
pub use app::{Driver, Errno, Ring, SafeSqe};
pub use bufring::{BufRing, BufRingConsumer, BufRingError};
pub use mem::{Backing, HugePolicy, MemError, Region};
pub use ring::{
    new_ring, new_ring_shared, new_ring_sqpoll, AppRing, EngineRing, RingConfig, RingStats,
    RingView, SetupError,
};
