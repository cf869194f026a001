//! A safe, owning layer above a ring: requests own their memory, provided buffers are
//! RAII handles, completions carry typed tokens, and completions are readable while
//! submitting. Shaped by what compio, tokio-uring and the `io-uring` crate learned.
//!
//! * **Owned submissions.** [`Io::push`] takes a request ([`op::Op`]) by value. A
//!   request that names memory ([`op::Send`] of a `Vec<u8>` or a [`PoolBuf`],
//!   [`op::Recv`] into a `Vec<u8>`, [`op::Connect`]'s address, ...) moves it into an
//!   *op slot*, where it stays until the request's final CQE (the one without
//!   `IORING_CQE_F_MORE`); that completion hands it back
//!   ([`Completion::take_buf`]). The application never holds a request in flight, so
//!   it cannot drop or reuse memory the engine still uses: there is nothing to free
//!   early, and no `unsafe` for the application to write.
//! * **A buffer pool that owns its memory.** [`Io::register_pool`] maps `count`
//!   buffers and registers them as a provided-buffer ring ([`BufPool`]). A receive
//!   from the pool completes with a [`PoolBuf`] holding the data; dropping it gives
//!   the buffer back to the ring. A CQE that carries a buffer the application no
//!   longer wants (a late receive of a closed connection, a CQE whose op the layer
//!   does not know) still becomes a `PoolBuf`, which goes back when dropped, so no
//!   buffer leaks out of the ring.
//! * **Multishot requests** (multishot ACCEPT, RECV and POLL_ADD) yield one
//!   [`Completion`] per CQE with [`Completion::more`] set while more will come; the
//!   completion without it ends the stream. When the engine ends one for a reason
//!   that is not the end of the stream (the CQ was full, or a multishot receive ran
//!   out of provided buffers), the layer re-arms it under the same token at the next
//!   submission (a starved receive once its pool has a quarter of its buffers back),
//!   and the application sees an uninterrupted stream. [`Io::op_completions`] is a
//!   blocking iterator over one request's completions.
//! * **Typed tokens.** Each request carries the application's own value `T` (an enum
//!   naming what the request was for, a connection index, ...), returned with every
//!   completion ([`Completion::data`]). The `user_data` the layer writes packs the op
//!   slot, a generation and the buffer pool; the generation changes whenever a slot is
//!   reused, so a stale CQE (of a request the layer already finished) is never taken
//!   for a newer one: it is counted ([`IoStats::stale`]) and dropped.
//! * **Split borrow.** [`Io::split`] gives a [`Submitter`] and a [`Completions`]
//!   iterator at once, so the application can push requests while it reads
//!   completions, as with the `io-uring` crate's `split`.
//!
//! # Hot path
//!
//! Op slots live in a slab allocated up front (it grows by doubling if all slots are
//! in use, up to [`MAX_SLOTS`]); pushing a request, reading its completion and giving
//! back a provided buffer allocate nothing (except [`op::Bind`], [`op::Connect`] and
//! [`op::Timeout`], which box their `sockaddr` / timespec). Completions are copied out
//! of the CQ in batches.
//!
//! # Dropping the layer with requests in flight
//!
//! Dropping an [`Io`] (or calling [`Io::shutdown`]) cancels every request in flight
//! (`IORING_OP_ASYNC_CANCEL` with `IORING_ASYNC_CANCEL_ANY`), waits a bounded time
//! (100 ms on drop) for their final CQEs, and then **leaks deliberately** the memory
//! of any request whose final CQE did not arrive (its buffer, its `sockaddr`), so the
//! engine can never write to freed memory, whatever becomes of the ring afterwards.
//! Buffer pools are unregistered before their memory can be unmapped; a pool whose
//! unregistration fails is leaked too.
//!
//! # Backends
//!
//! The layer runs on any [`Backend`]: ringline's [`Ring`](crate::app::Ring) (inline
//! or SQPOLL engine) implements it here; the kernel's io_uring can implement it too
//! (its SQEs and CQEs are byte-identical). `&mut B` is a backend when `B` is.
//!
//! # Example
//!
//! See the `ringline` crate's documentation for an echo server and its client on the
//! loopback wire, compiled and run as a doctest.

use core::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::abi::{self, Cqe, Sqe};
use crate::app::opcode::{self, SafeSqe, Timespec};
use crate::app::{Driver, Errno, Ring, SqFull};
use crate::bufring::BufRing;

pub mod op;
mod pool;

pub use op::{Op, ReadyWords};
use op::{Owned, Prepared};
use pool::PoolInner;
pub use pool::{Buf, BufPool, PoolBuf};

/// The raw ring a [`Io`] drives: liburing's submission and completion calls, with
/// the `unsafe` SQE hand-over of [`Ring::push`].
pub trait Backend {
    /// Copies `sqe` into the next free SQ slot (not yet submitted).
    ///
    /// # Safety
    ///
    /// The contract of [`Ring::push`]: every buffer and address the SQE names stays
    /// valid, and is not accessed in a conflicting way, until the request's final
    /// CQE.
    unsafe fn push_sqe(&mut self, sqe: &Sqe) -> Result<(), SqFull>;

    /// Copies `sqe`, which names no memory, into the next free SQ slot.
    fn push_safe_sqe(&mut self, sqe: &SafeSqe) -> Result<(), SqFull> {
        // SAFETY: a SafeSqe names no memory, so the push contract holds trivially.
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
}

impl<D: Driver> Backend for Ring<D> {
    #[inline]
    unsafe fn push_sqe(&mut self, sqe: &Sqe) -> Result<(), SqFull> {
        // SAFETY: the caller upholds `Ring::push`'s contract (this method's).
        unsafe { self.push(sqe) }
    }

    #[inline]
    fn push_safe_sqe(&mut self, sqe: &SafeSqe) -> Result<(), SqFull> {
        self.push_safe(sqe)
    }

    #[inline]
    fn submit(&mut self) -> Result<u32, Errno> {
        Ring::submit(self)
    }

    #[inline]
    fn submit_and_wait_timeout(&mut self, n: u32, timeout: Duration) -> Result<u32, Errno> {
        Ring::submit_and_wait_timeout(self, n, timeout)
    }

    #[inline]
    fn reap(&mut self, out: &mut Vec<Cqe>) {
        out.extend(self.completions());
    }

    fn register_buf_ring(&mut self, entries: u32, bgid: u16) -> Result<BufRing, Errno> {
        Ring::register_buf_ring(self, entries, bgid)
    }

    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        Ring::unregister_buf_ring(self, bgid)
    }
}

impl<B: Backend + ?Sized> Backend for &mut B {
    #[inline]
    unsafe fn push_sqe(&mut self, sqe: &Sqe) -> Result<(), SqFull> {
        // SAFETY: the caller upholds the push contract (this method's).
        unsafe { (**self).push_sqe(sqe) }
    }
    #[inline]
    fn push_safe_sqe(&mut self, sqe: &SafeSqe) -> Result<(), SqFull> {
        (**self).push_safe_sqe(sqe)
    }
    #[inline]
    fn submit(&mut self) -> Result<u32, Errno> {
        (**self).submit()
    }
    #[inline]
    fn submit_and_wait_timeout(&mut self, n: u32, timeout: Duration) -> Result<u32, Errno> {
        (**self).submit_and_wait_timeout(n, timeout)
    }
    #[inline]
    fn reap(&mut self, out: &mut Vec<Cqe>) {
        (**self).reap(out)
    }
    fn register_buf_ring(&mut self, entries: u32, bgid: u16) -> Result<BufRing, Errno> {
        (**self).register_buf_ring(entries, bgid)
    }
    fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), Errno> {
        (**self).unregister_buf_ring(bgid)
    }
}

/// Most op slots an [`Io`] holds (requests in flight at once).
pub const MAX_SLOTS: u32 = (1 << 24) - 2;

/// `user_data` layout: slot index in bits 0..24, pool (index + 1, 0: none) in 24..32,
/// generation in 32..64.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// The slot index of requests whose completions nobody reads ([`Io::push_detached`]).
const DETACHED: u32 = (1 << INDEX_BITS) - 1;
const NO_SLOT: u32 = u32::MAX;
/// Most buffer pools per [`Io`] (the pool field of `user_data`).
pub const MAX_POOLS: usize = 255;

/// Identifies one request in flight (its op slot and generation): compare it with
/// [`Completion::token`], or cancel the request ([`Io::cancel`]). A token is never
/// reused while its request is in flight, and a new request in the same slot gets a
/// new generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token(u64);

impl Token {
    /// The `user_data` of the request's SQE and CQEs (for requests that target another
    /// by `user_data`, e.g. `PollRemove`, or for tracing).
    pub fn user_data(self) -> u64 {
        self.0
    }

    fn index(self) -> u32 {
        (self.0 & INDEX_MASK) as u32
    }

    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    fn pool(self) -> usize {
        ((self.0 >> INDEX_BITS) & 0xff) as usize
    }

    fn new(index: u32, pool: usize, generation: u32) -> Token {
        Token(u64::from(index) | (pool as u64) << INDEX_BITS | u64::from(generation) << 32)
    }
}

/// Counters of an [`Io`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Requests pushed (re-arms not included).
    pub pushed: u64,
    /// Multishot requests the layer re-armed after the engine ended them early.
    pub rearmed: u64,
    /// Multishot receives parked for lack of provided buffers (re-armed later).
    pub starved: u64,
    /// CQEs of requests the layer does not know (stale generation or free slot):
    /// dropped, their buffers given back.
    pub stale: u64,
    /// CQEs carrying a buffer id the pool did not hand out (a misbehaving engine):
    /// no handle was made.
    pub bad_buffers: u64,
    /// Requests whose memory was leaked because their final CQE never came before
    /// shutdown.
    pub leaked: u64,
}

/// A request's completion: the application's value, the CQE's result and flags, and
/// the buffer the request owned or received.
#[derive(Debug)]
pub struct Completion<T> {
    data: T,
    token: Token,
    res: i32,
    flags: u32,
    more: bool,
    buf: Option<Buf>,
}

impl<T: Copy> Completion<T> {
    /// The value given to [`Io::push`].
    #[inline]
    pub fn data(&self) -> T {
        self.data
    }

    /// The request's token.
    #[inline]
    pub fn token(&self) -> Token {
        self.token
    }

    /// The CQE's `res`: a count or value, or `-errno`.
    #[inline]
    pub fn res(&self) -> i32 {
        self.res
    }

    /// `res` as `Ok(value)` or `Err(errno)`.
    #[inline]
    pub fn result(&self) -> Result<u32, Errno> {
        match Errno::from_res(self.res) {
            Some(e) => Err(e),
            None => Ok(self.res as u32),
        }
    }

    /// The CQE's flags (`IORING_CQE_F_*`).
    #[inline]
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Whether more completions of this request will come (a multishot request still
    /// armed: `IORING_CQE_F_MORE`, or re-armed by the layer). `false` ends the request.
    #[inline]
    pub fn more(&self) -> bool {
        self.more
    }

    /// The buffer: the data a receive from a pool got ([`Buf::Pool`]), or, on the final
    /// completion, the buffer the request owned ([`op::Send`], [`op::Recv`]).
    #[inline]
    pub fn buf(&self) -> Option<&Buf> {
        self.buf.as_ref()
    }

    /// Takes the buffer (see [`Completion::buf`]).
    #[inline]
    pub fn take_buf(&mut self) -> Option<Buf> {
        self.buf.take()
    }
}

struct Busy<T> {
    data: T,
    owned: Owned,
    /// The SQE of a multishot request, to re-arm it.
    multishot: Option<SafeSqe>,
    /// Cancelled by the application: not re-armed.
    cancelled: bool,
    /// Parked for lack of buffers (not in the engine).
    parked: bool,
}

enum State<T> {
    Free { next: u32 },
    Busy(Busy<T>),
}

struct Slot<T> {
    generation: u32,
    state: State<T>,
}

/// Op slots per timespec chunk.
const TIME_CHUNK: usize = 1024;

/// The op slots and the queues both halves of a split touch.
struct OpTable<T> {
    slots: Vec<Slot<T>>,
    /// The timespec cell of each slot (TIMEOUT, LINK_TIMEOUT), in boxed chunks that
    /// never move when the table grows: the engine may read a cell until the
    /// request's final CQE. Written only while the slot is being filled.
    times: Vec<Box<[Cell<Timespec>]>>,
    free: u32,
    /// Requests in the engine (not parked).
    live: u32,
    /// Slots to re-arm at the next submission.
    rearm: Vec<u32>,
    /// Multishot receives waiting for buffers.
    parked: Vec<u32>,
    /// Completions made by the layer (a parked request cancelled).
    synthetic: Vec<Cqe>,
    /// No re-arming: the layer is shutting down.
    closing: bool,
    stats: IoStats,
}

impl<T: Copy> OpTable<T> {
    fn new(slots: u32) -> Self {
        let mut t = OpTable {
            slots: Vec::new(),
            times: Vec::new(),
            free: NO_SLOT,
            live: 0,
            rearm: Vec::with_capacity(64),
            parked: Vec::with_capacity(64),
            synthetic: Vec::new(),
            closing: false,
            stats: IoStats::default(),
        };
        t.grow(slots.clamp(1, MAX_SLOTS));
        t
    }

    /// Adds slots up to `to` in all (allocation only here, never per request).
    fn grow(&mut self, to: u32) {
        let from = self.slots.len() as u32;
        self.slots.reserve((to - from) as usize);
        for i in from..to {
            let next = if i + 1 < to { i + 1 } else { self.free };
            self.slots.push(Slot {
                generation: 0,
                state: State::Free { next },
            });
        }
        if to > from {
            self.free = from;
        }
        while self.times.len() * TIME_CHUNK < to as usize {
            self.times.push(
                (0..TIME_CHUNK)
                    .map(|_| Cell::new(Timespec::default()))
                    .collect(),
            );
        }
    }

    /// The timespec cell of slot `idx`.
    fn time(&self, idx: u32) -> &Cell<Timespec> {
        let i = idx as usize;
        &self.times[i / TIME_CHUNK][i % TIME_CHUNK]
    }

    fn alloc(&mut self, busy: Busy<T>) -> Option<(u32, u32)> {
        if self.free == NO_SLOT {
            let len = self.slots.len() as u32;
            if len >= MAX_SLOTS {
                return None;
            }
            self.grow(len.saturating_mul(2).min(MAX_SLOTS));
        }
        let idx = self.free;
        let slot = &mut self.slots[idx as usize];
        let State::Free { next } = slot.state else {
            unreachable!("free list names a busy slot")
        };
        self.free = next;
        slot.state = State::Busy(busy);
        self.live += 1;
        Some((idx, slot.generation))
    }

    /// Frees slot `idx`, returning what its request owned.
    fn release(&mut self, idx: u32) -> Option<Busy<T>> {
        let slot = &mut self.slots[idx as usize];
        let state = core::mem::replace(&mut slot.state, State::Free { next: self.free });
        match state {
            State::Busy(b) => {
                slot.generation = slot.generation.wrapping_add(1);
                self.free = idx;
                if !b.parked {
                    self.live -= 1;
                }
                Some(b)
            }
            free => {
                slot.state = free;
                None
            }
        }
    }

    fn busy(&mut self, token: Token) -> Option<&mut Busy<T>> {
        match self.slots.get_mut(token.index() as usize) {
            Some(Slot {
                generation,
                state: State::Busy(b),
            }) if *generation == token.generation() => Some(b),
            _ => None,
        }
    }

    /// Turns a CQE into a completion (or `None`: a CQE the layer consumed).
    fn complete(&mut self, pools: &[Rc<PoolInner>], cqe: Cqe) -> Option<Completion<T>> {
        let token = Token(cqe.user_data);
        // A buffer the CQE carries becomes a handle whatever the request: dropped, it
        // goes back to the ring (late CQEs of closed connections, stale CQEs).
        let mut buf = None;
        if let Some(bid) = abi::buffer_id(cqe.flags) {
            if let Some(pool) = token.pool().checked_sub(1).and_then(|p| pools.get(p)) {
                match pool.claim(bid, cqe.res.max(0) as u32) {
                    Some(b) => buf = Some(Buf::Pool(b)),
                    None => self.stats.bad_buffers += 1,
                }
            }
        }
        if token.index() == DETACHED {
            return None;
        }
        let closing = self.closing;
        let Some(busy) = self.busy(token) else {
            self.stats.stale += 1;
            return None;
        };
        let more = abi::more(cqe.flags);
        let rearm = match busy.multishot {
            Some(sqe) if !more && !busy.cancelled && !closing => rearm_after(sqe.opcode, cqe.res),
            _ => Rearm::No,
        };
        if let Rearm::WhenBuffers = rearm {
            busy.parked = true;
        }
        let data = busy.data;
        match rearm {
            Rearm::Now => {
                self.rearm.push(token.index());
                self.stats.rearmed += 1;
            }
            Rearm::WhenBuffers => {
                self.live -= 1;
                self.parked.push(token.index());
                self.stats.starved += 1;
                return None;
            }
            Rearm::No if !more => {}
            Rearm::No => {
                return Some(Completion {
                    data,
                    token,
                    res: cqe.res,
                    flags: cqe.flags,
                    more: true,
                    buf,
                })
            }
        }
        if let Rearm::Now = rearm {
            return Some(Completion {
                data,
                token,
                res: cqe.res,
                flags: cqe.flags,
                more: true,
                buf,
            });
        }
        let done = self.release(token.index())?;
        if let Owned::Buf(b) = done.owned {
            buf = buf.or(Some(b));
        }
        Some(Completion {
            data: done.data,
            token,
            res: cqe.res,
            flags: cqe.flags,
            more: false,
            buf,
        })
    }

    /// Moves parked receives whose pool has buffers again to the re-arm queue.
    fn unpark(&mut self, pools: &[Rc<PoolInner>]) {
        let mut i = 0;
        while i < self.parked.len() {
            let idx = self.parked[i];
            let ready = match &self.slots[idx as usize].state {
                State::Busy(b) => b
                    .multishot
                    .and_then(|s| pools.iter().find(|p| p.bgid() == s.buf_group()))
                    .is_none_or(|p| p.available() >= (p.count() / 4).max(1)),
                State::Free { .. } => true,
            };
            if ready {
                self.parked.swap_remove(i);
                if let State::Busy(b) = &mut self.slots[idx as usize].state {
                    b.parked = false;
                    self.live += 1;
                    self.rearm.push(idx);
                    self.stats.rearmed += 1;
                }
            } else {
                i += 1;
            }
        }
    }
}

enum Rearm {
    Now,
    WhenBuffers,
    No,
}

/// Whether a multishot request the engine ended (a CQE without `F_MORE`) goes on:
/// ended by a full CQ (a normal result), or a receive out of provided buffers. An
/// error, EOF or a cancellation ends it for good.
fn rearm_after(opcode: u8, res: i32) -> Rearm {
    match opcode {
        abi::IORING_OP_RECV if res > 0 => Rearm::Now,
        abi::IORING_OP_RECV if res == -libc::ENOBUFS => Rearm::WhenBuffers,
        abi::IORING_OP_ACCEPT
            if res >= 0
                || !matches!(
                    -res,
                    libc::ECANCELED | libc::EBADF | libc::EINVAL | libc::ENOTSOCK
                ) =>
        {
            Rearm::Now
        }
        abi::IORING_OP_POLL_ADD if res > 0 => Rearm::Now,
        _ => Rearm::No,
    }
}

fn is_multishot(sqe: &Sqe) -> bool {
    match sqe.opcode {
        abi::IORING_OP_ACCEPT => sqe.ioprio & abi::IORING_ACCEPT_MULTISHOT != 0,
        abi::IORING_OP_RECV => sqe.ioprio & abi::IORING_RECV_MULTISHOT != 0,
        abi::IORING_OP_POLL_ADD => sqe.len & abi::IORING_POLL_ADD_MULTI != 0,
        _ => false,
    }
}

/// CQEs copied out of the CQ, read in order.
struct Batch {
    cqes: Vec<Cqe>,
    pos: usize,
}

impl Batch {
    fn pop(&mut self) -> Option<Cqe> {
        let c = self.cqes.get(self.pos).copied()?;
        self.pos += 1;
        Some(c)
    }
}

/// A request could not be pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Every op slot is in use ([`MAX_SLOTS`]).
    #[error("too many requests in flight")]
    NoSlot,
    /// The SQ stayed full although the layer submitted.
    #[error("submission queue is full")]
    SqFull,
}

/// The safe layer over a [`Backend`]; `T` is the application's token type.
pub struct Io<B: Backend, T: Copy> {
    backend: B,
    table: RefCell<OpTable<T>>,
    batch: Batch,
    pools: Vec<Rc<PoolInner>>,
}

impl<B: Backend, T: Copy> Io<B, T> {
    /// The layer over `backend`, with room for 1024 requests in flight (more on
    /// demand) and CQE batches of 4096.
    pub fn new(backend: B) -> Self {
        Self::with_capacity(backend, 1024, 4096)
    }

    /// The layer with `slots` op slots allocated up front and room for `cqes` CQEs
    /// per batch (both grow if needed).
    pub fn with_capacity(backend: B, slots: u32, cqes: usize) -> Self {
        Io {
            backend,
            table: RefCell::new(OpTable::new(slots)),
            batch: Batch {
                cqes: Vec::with_capacity(cqes),
                pos: 0,
            },
            pools: Vec::new(),
        }
    }

    /// Maps `count` buffers of `size` bytes and registers them as provided-buffer
    /// group `bgid` (`count`: a power of two, at most 32768).
    pub fn register_pool(&mut self, bgid: u16, count: u32, size: u32) -> Result<BufPool, Errno> {
        if self.pools.len() >= MAX_POOLS || self.pools.iter().any(|p| p.bgid() == bgid) {
            return Err(Errno::EINVAL);
        }
        if size == 0 {
            return Err(Errno::EINVAL);
        }
        let ring = self.backend.register_buf_ring(count, bgid)?;
        let pool = match PoolInner::new(ring, bgid, count, size) {
            Ok(p) => Rc::new(p),
            Err(e) => {
                let _ = self.backend.unregister_buf_ring(bgid);
                return Err(e);
            }
        };
        self.pools.push(pool.clone());
        Ok(BufPool(pool))
    }

    /// Pushes `op` (not yet submitted: see [`Io::submit`], [`Io::wait`]); its
    /// completions carry `data`. Submits first if the SQ is full.
    #[inline]
    pub fn push(&mut self, op: impl Op, data: T) -> Result<Token, PushError> {
        push(&mut self.backend, &self.table, &self.pools, op, data)
    }

    /// Pushes a request whose completions nobody reads (a CLOSE, a cancellation):
    /// the layer consumes its CQE (a buffer it carries goes back to its pool).
    #[inline]
    pub fn push_detached(&mut self, sqe: SafeSqe) {
        push_detached(&mut self.backend, &self.pools, sqe)
    }

    /// Cancels the request of `token` (`IORING_OP_ASYNC_CANCEL`); its final
    /// completion follows (normally `-ECANCELED`). Nothing if it already finished.
    pub fn cancel(&mut self, token: Token) {
        cancel(&mut self.backend, &self.table, &self.pools, token)
    }

    /// Pushes an SQE the layer has no builder for (any opcode); its completions carry
    /// `data`. Its `user_data` is replaced by the token's.
    ///
    /// # Safety
    ///
    /// The contract of [`Ring::push`] for the memory `sqe` names: the layer does not
    /// own it.
    pub unsafe fn push_raw(&mut self, sqe: Sqe, data: T) -> Result<Token, PushError> {
        let prepared = Prepared {
            sqe,
            safe: None,
            owned: Owned::None,
            timespec: None,
        };
        // SAFETY: the caller upholds the push contract for what `sqe` names.
        unsafe { push_prepared(&mut self.backend, &self.table, &self.pools, prepared, data) }
    }

    /// Submits what is queued (with pending re-arms).
    pub fn submit(&mut self) -> Result<u32, Errno> {
        submit(&mut self.backend, &self.table, &self.pools)
    }

    /// Submits, waits up to `timeout` for `min` CQEs, and takes the CQEs that are
    /// ready into the batch [`Io::next_completion`] and [`Io::split`] read. A timeout or an
    /// interrupted wait is not an error. Returns the completions waiting in the batch.
    pub fn wait(&mut self, min: u32, timeout: Duration) -> Result<usize, Errno> {
        flush_rearms(&mut self.backend, &self.table, &self.pools);
        match self.backend.submit_and_wait_timeout(min, timeout) {
            Ok(_) => {}
            Err(e) if matches!(e.0, libc::ETIME | libc::EINTR | libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        if self.batch.pos == self.batch.cqes.len() {
            self.batch.cqes.clear();
            self.batch.pos = 0;
        }
        self.backend.reap(&mut self.batch.cqes);
        Ok(self.batch.cqes.len() - self.batch.pos + self.table.borrow().synthetic.len())
    }

    /// The next completion of the batch [`Io::wait`] took, if any.
    #[inline]
    pub fn next_completion(&mut self) -> Option<Completion<T>> {
        next_completion(&mut self.batch, &self.table, &self.pools)
    }

    /// The submitter and the completions of the batch [`Io::wait`] took, borrowed at
    /// once: push while reading completions.
    pub fn split(&mut self) -> (Submitter<'_, B, T>, Completions<'_, T>) {
        (
            Submitter {
                backend: &mut self.backend,
                table: &self.table,
                pools: &self.pools,
            },
            Completions {
                batch: &mut self.batch,
                table: &self.table,
                pools: &self.pools,
            },
        )
    }

    /// Pushes `op` and waits (at most `timeout`) for its final completion, which it
    /// returns; other completions that arrive meanwhile stay in the batch for
    /// [`Io::next_completion`]. `Err(ETIME)` if it did not complete in time (the request stays in
    /// flight and its completion will come through [`Io::next_completion`]).
    pub fn call(
        &mut self,
        op: impl Op,
        data: T,
        timeout: Duration,
    ) -> Result<Completion<T>, Errno> {
        let token = self.push(op, data).map_err(|_| Errno::EBUSY)?;
        self.op_completions(token, timeout)
            .find(|c| !c.more())
            .ok_or(Errno::ETIME)
    }

    /// A blocking iterator over the completions of the request `token` (a multishot
    /// accept or receive as a stream), ended by its final completion or when
    /// `timeout` passes without one. Completions of other requests stay in the batch
    /// for [`Io::next_completion`].
    pub fn op_completions(&mut self, token: Token, timeout: Duration) -> OpCompletions<'_, B, T> {
        OpCompletions {
            io: self,
            token,
            timeout,
            done: false,
        }
    }

    /// Takes the first CQE of `token` out of the batch.
    fn take_of(&mut self, token: Token) -> Option<Completion<T>> {
        let i = self.batch.cqes[self.batch.pos..]
            .iter()
            .position(|c| c.user_data == token.0)?;
        let cqe = self.batch.cqes.remove(self.batch.pos + i);
        self.table.borrow_mut().complete(&self.pools, cqe)
    }

    /// Requests in flight (in the engine or waiting for buffers).
    pub fn in_flight(&self) -> usize {
        let t = self.table.borrow();
        t.live as usize + t.parked.len()
    }

    /// The layer's counters.
    pub fn stats(&self) -> IoStats {
        self.table.borrow().stats
    }

    /// The backend (for calls the layer does not wrap).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably. Pushing SQEs on it directly bypasses the layer: their
    /// CQEs count as stale.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Cancels every request in flight and waits up to `timeout` for their final
    /// completions (discarded); the memory of requests that did not finish is leaked
    /// (see the [module](self) docs), and buffer pools are unregistered. Returns the
    /// number of requests leaked. The layer is empty afterwards and can be used again.
    pub fn shutdown(&mut self, timeout: Duration) -> usize {
        self.table.borrow_mut().closing = true;
        // Parked receives are not in the engine: just drop them.
        let parked: Vec<u32> = core::mem::take(&mut self.table.borrow_mut().parked);
        for idx in parked {
            drop(self.table.borrow_mut().release(idx));
        }
        self.table.borrow_mut().rearm.clear();
        if self.table.borrow().live > 0 {
            self.push_detached(opcode::AsyncCancel::new(0).any().build());
            let end = Instant::now() + timeout;
            loop {
                let left = end.saturating_duration_since(Instant::now());
                let _ = self.wait(1, left.min(Duration::from_millis(5)));
                while self.next_completion().is_some() {}
                if self.table.borrow().live == 0 || left.is_zero() {
                    break;
                }
            }
        }
        while self.next_completion().is_some() {}
        let mut leaked = 0;
        {
            let mut t = self.table.borrow_mut();
            for slot in t.slots.iter_mut() {
                if let State::Busy(b) =
                    core::mem::replace(&mut slot.state, State::Free { next: NO_SLOT })
                {
                    // The engine may still use it: leak, never free.
                    core::mem::forget(b.owned);
                    leaked += 1;
                }
            }
            if leaked > 0 {
                // A leaked TIMEOUT may still have its timespec read: keep the cells.
                let times = core::mem::take(&mut t.times);
                core::mem::forget(times);
                let len = t.slots.len() as u32;
                t.grow(len);
            }
            let n = t.slots.len() as u32;
            // Rebuild the free list (the generations stay, so old CQEs stay stale).
            for i in 0..n {
                t.slots[i as usize].state = State::Free {
                    next: if i + 1 < n { i + 1 } else { NO_SLOT },
                };
                t.slots[i as usize].generation = t.slots[i as usize].generation.wrapping_add(1);
            }
            t.free = if n > 0 { 0 } else { NO_SLOT };
            t.live = 0;
            t.stats.leaked += leaked as u64;
            t.closing = false;
        }
        for pool in core::mem::take(&mut self.pools) {
            if self.backend.unregister_buf_ring(pool.bgid()).is_err() {
                // The engine may still write to it: leak the memory.
                core::mem::forget(pool);
            }
        }
        leaked
    }
}

impl<B: Backend, T: Copy> Drop for Io<B, T> {
    fn drop(&mut self) {
        self.shutdown(Duration::from_millis(100));
    }
}

/// The submitting half of a split [`Io`].
pub struct Submitter<'a, B: Backend, T: Copy> {
    backend: &'a mut B,
    table: &'a RefCell<OpTable<T>>,
    pools: &'a [Rc<PoolInner>],
}

impl<B: Backend, T: Copy> Submitter<'_, B, T> {
    /// As [`Io::push`].
    #[inline]
    pub fn push(&mut self, op: impl Op, data: T) -> Result<Token, PushError> {
        push(self.backend, self.table, self.pools, op, data)
    }

    /// As [`Io::push_detached`].
    #[inline]
    pub fn push_detached(&mut self, sqe: SafeSqe) {
        push_detached(self.backend, self.pools, sqe)
    }

    /// As [`Io::cancel`].
    pub fn cancel(&mut self, token: Token) {
        cancel(self.backend, self.table, self.pools, token)
    }

    /// As [`Io::submit`]; the completions it makes ready are read after the next
    /// [`Io::wait`].
    pub fn submit(&mut self) -> Result<u32, Errno> {
        submit(self.backend, self.table, self.pools)
    }

    /// The backend.
    pub fn backend(&mut self) -> &mut B {
        self.backend
    }
}

/// The completion half of a split [`Io`]: the completions of the batch [`Io::wait`]
/// took.
pub struct Completions<'a, T: Copy> {
    batch: &'a mut Batch,
    table: &'a RefCell<OpTable<T>>,
    pools: &'a [Rc<PoolInner>],
}

impl<T: Copy> Iterator for Completions<'_, T> {
    type Item = Completion<T>;

    #[inline]
    fn next(&mut self) -> Option<Completion<T>> {
        next_completion(self.batch, self.table, self.pools)
    }
}

/// The completions of one request ([`Io::op_completions`]).
pub struct OpCompletions<'a, B: Backend, T: Copy> {
    io: &'a mut Io<B, T>,
    token: Token,
    timeout: Duration,
    done: bool,
}

impl<B: Backend, T: Copy> Iterator for OpCompletions<'_, B, T> {
    type Item = Completion<T>;

    fn next(&mut self) -> Option<Completion<T>> {
        if self.done {
            return None;
        }
        let end = Instant::now() + self.timeout;
        loop {
            if let Some(c) = self.io.take_of(self.token) {
                self.done = !c.more();
                return Some(c);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || self.io.table.borrow_mut().busy(self.token).is_none() {
                self.done = true;
                return None;
            }
            if self
                .io
                .wait(1, left.min(Duration::from_millis(10)))
                .is_err()
            {
                self.done = true;
                return None;
            }
        }
    }
}

fn next_completion<T: Copy>(
    batch: &mut Batch,
    table: &RefCell<OpTable<T>>,
    pools: &[Rc<PoolInner>],
) -> Option<Completion<T>> {
    let mut t = table.borrow_mut();
    loop {
        let cqe = match batch.pop() {
            Some(c) => c,
            None => t.synthetic.pop()?,
        };
        if let Some(c) = t.complete(pools, cqe) {
            return Some(c);
        }
    }
}

fn pool_tag(pools: &[Rc<PoolInner>], sqe: &Sqe) -> usize {
    if sqe.flags & abi::IOSQE_BUFFER_SELECT == 0 {
        return 0;
    }
    pools
        .iter()
        .position(|p| p.bgid() == sqe.buf_group())
        .map_or(0, |i| i + 1)
}

/// Pushes, submitting while the SQ is full (a bounded number of times).
fn push_retry<B: Backend + ?Sized>(
    backend: &mut B,
    mut push: impl FnMut(&mut B) -> Result<(), SqFull>,
) -> Result<(), SqFull> {
    for _ in 0..1000 {
        if push(backend).is_ok() {
            return Ok(());
        }
        let _ = backend.submit();
    }
    push(backend)
}

#[inline]
fn push<B: Backend + ?Sized, T: Copy>(
    backend: &mut B,
    table: &RefCell<OpTable<T>>,
    pools: &[Rc<PoolInner>],
    op: impl Op,
    data: T,
) -> Result<Token, PushError> {
    let prepared = op::sealed_prepare(op);
    // SAFETY: a prepared request names only memory it owns (its `owned`, moved into the
    // op slot below and kept there until the final CQE, or leaked), or none at all.
    unsafe { push_prepared(backend, table, pools, prepared, data) }
}

/// Pushes a prepared request in a new op slot.
///
/// # Safety
///
/// What `prepared.sqe` names, other than `prepared.owned`, satisfies the push contract.
unsafe fn push_prepared<B: Backend + ?Sized, T: Copy>(
    backend: &mut B,
    table: &RefCell<OpTable<T>>,
    pools: &[Rc<PoolInner>],
    prepared: Prepared,
    data: T,
) -> Result<Token, PushError> {
    let Prepared {
        mut sqe,
        safe,
        owned,
        timespec,
    } = prepared;
    let pool = pool_tag(pools, &sqe);
    let multishot = safe.filter(|s| is_multishot(s));
    let mut t = table.borrow_mut();
    let (idx, generation) = t
        .alloc(Busy {
            data,
            owned,
            multishot,
            cancelled: false,
            parked: false,
        })
        .ok_or(PushError::NoSlot)?;
    let token = Token::new(idx, pool, generation);
    if let Some(ts) = timespec {
        // The slot is ours and not in flight: nothing reads the cell now. The
        // boxed chunk stays put until the table drops (after shutdown).
        let cell = t.time(idx);
        cell.set(ts);
        sqe.addr = cell.as_ptr().expose_provenance() as u64;
    }
    drop(t);
    let pushed = match safe {
        Some(s) => {
            let s = s.with_user_data(token.0);
            push_retry(backend, |b| b.push_safe_sqe(&s))
        }
        None => {
            let sqe = Sqe {
                user_data: token.0,
                ..sqe
            };
            // SAFETY: the memory the SQE names is the slot's `owned` (kept until the
            // final CQE or leaked) or covered by this function's contract.
            push_retry(backend, |b| unsafe { b.push_sqe(&sqe) })
        }
    };
    let mut t = table.borrow_mut();
    if pushed.is_err() {
        // Never reached the ring: its memory can go.
        t.release(idx);
        return Err(PushError::SqFull);
    }
    t.stats.pushed += 1;
    Ok(token)
}

fn push_detached<B: Backend + ?Sized>(backend: &mut B, pools: &[Rc<PoolInner>], sqe: SafeSqe) {
    let ud = Token::new(DETACHED, pool_tag(pools, &sqe), u32::MAX).0;
    let s = sqe.with_user_data(ud);
    let _ = push_retry(backend, |b| b.push_safe_sqe(&s));
}

fn cancel<B: Backend + ?Sized, T: Copy>(
    backend: &mut B,
    table: &RefCell<OpTable<T>>,
    pools: &[Rc<PoolInner>],
    token: Token,
) {
    let mut t = table.borrow_mut();
    let Some(b) = t.busy(token) else { return };
    b.cancelled = true;
    if b.parked {
        // Not in the engine: complete it here.
        t.parked.retain(|&i| i != token.index());
        if let Some(b) = t.busy(token) {
            b.parked = false;
        }
        t.live += 1;
        t.synthetic.push(Cqe {
            user_data: token.0,
            res: -libc::ECANCELED,
            flags: 0,
        });
        return;
    }
    if let Some(at) = t.rearm.iter().position(|&i| i == token.index()) {
        // Its last completion said more would come, but it is not in the engine yet:
        // end it here.
        t.rearm.swap_remove(at);
        t.synthetic.push(Cqe {
            user_data: token.0,
            res: -libc::ECANCELED,
            flags: 0,
        });
        return;
    }
    drop(t);
    push_detached(backend, pools, opcode::AsyncCancel::new(token.0).build());
}

fn flush_rearms<B: Backend + ?Sized, T: Copy>(
    backend: &mut B,
    table: &RefCell<OpTable<T>>,
    pools: &[Rc<PoolInner>],
) {
    let mut t = table.borrow_mut();
    if !t.parked.is_empty() {
        t.unpark(pools);
    }
    while let Some(idx) = t.rearm.pop() {
        let slot = &t.slots[idx as usize];
        let State::Busy(b) = &slot.state else {
            continue;
        };
        let Some(sqe) = b.multishot else { continue };
        let s = sqe.with_user_data(Token::new(idx, pool_tag(pools, &sqe), slot.generation).0);
        let _ = push_retry(backend, |b| b.push_safe_sqe(&s));
    }
}

fn submit<B: Backend + ?Sized, T: Copy>(
    backend: &mut B,
    table: &RefCell<OpTable<T>>,
    pools: &[Rc<PoolInner>],
) -> Result<u32, Errno> {
    flush_rearms(backend, table, pools);
    backend.submit()
}

#[cfg(test)]
mod tests;
