//! The SQ/CQ ring: one shared region in the kernel's `struct io_rings` layout, an
//! application half ([`AppRing`]) and an engine half ([`EngineRing`]).
//!
//! # Layout
//!
//! One [`Region`] holds, in this order (offsets as on x86-64 Linux, also reported in
//! [`AppRing::params`]):
//!
//! | offset | field | written by |
//! |---|---|---|
//! | 0 | sq.head | engine (after copying SQEs) |
//! | 64 | sq.tail | app |
//! | 128 | cq.head | app |
//! | 192 | cq.tail | engine (after writing CQEs) |
//! | 256 / 260 | sq / cq ring_mask | setup, constant |
//! | 264 / 268 | sq / cq ring_entries | setup, constant |
//! | 272 | sq_dropped | engine |
//! | 276 | sq_flags (`NEED_WAKEUP`, `CQ_OVERFLOW`, `TASKRUN`) | engine, `fetch_or` / `fetch_and` |
//! | 280 | cq_flags | app |
//! | 284 | cq_overflow (CQEs lost: always 0, ringline never drops) | engine |
//! | 320 | CQEs, `cq_entries` × 16 B | engine |
//! | `sq_off.array` | SQ index array, `sq_entries` × u32, identity map | setup (app may rewrite) |
//! | [`AppRing::sqes_offset`] | SQEs, `sq_entries` × 64 B | app |
//!
//! Each head and tail sits on its own 64-byte cache line, so the producer and consumer
//! of a ring never write the same line.
//!
//! # Protocol
//!
//! The orderings live in [`crate::proto`]: the app writes SQEs and store-releases
//! sq.tail, the engine load-acquires it, copies each SQE once and store-releases
//! sq.head; the engine writes CQEs and store-releases cq.tail, the app load-acquires it,
//! reads and store-releases cq.head, which the engine load-acquires before reusing slots.
//!
//! # Overflow
//!
//! A normal completion that does not fit ([`EngineRing::post_cqe`]) goes to an ordered
//! backlog and `IORING_SQ_CQ_OVERFLOW` is set; while the backlog is non-empty every new
//! completion queues behind it, so the global CQE order is preserved.
//! [`EngineRing::flush_overflow`] moves it into the CQ as space frees. Multishot
//! auxiliary completions ([`EngineRing::post_aux_cqe`]) never overflow: they are refused
//! and the caller ends the request instead (kernel 6.6+ rules).

use core::cell::Cell;
use core::marker::PhantomData;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::collections::VecDeque;
use std::sync::Arc;

use crate::abi::{self, Cqe, CqringOffsets, Params, Sqe, SqringOffsets};
use crate::app::{SafeSqe, SqFull};
use crate::mem::{Backing, HugePolicy, MemError, Region};
use crate::proto::{self, Consumer, Producer, Slots};

/// The header of the shared ring region: the kernel's `struct io_rings` up to the CQE
/// array. Never instantiated; it documents and asserts the byte offsets.
#[repr(C, align(64))]
pub struct IoRings {
    /// SQ head (engine writes).
    pub sq_head: u32,
    _pad0: [u32; 15],
    /// SQ tail (app writes).
    pub sq_tail: u32,
    _pad1: [u32; 15],
    /// CQ head (app writes).
    pub cq_head: u32,
    _pad2: [u32; 15],
    /// CQ tail (engine writes).
    pub cq_tail: u32,
    _pad3: [u32; 15],
    /// `sq_entries - 1`.
    pub sq_ring_mask: u32,
    /// `cq_entries - 1`.
    pub cq_ring_mask: u32,
    /// SQ size.
    pub sq_ring_entries: u32,
    /// CQ size.
    pub cq_ring_entries: u32,
    /// SQ array entries skipped because their index was out of range.
    pub sq_dropped: u32,
    /// `IORING_SQ_*` flags.
    pub sq_flags: u32,
    /// `IORING_CQ_*` flags.
    pub cq_flags: u32,
    /// CQEs lost (always 0 here).
    pub cq_overflow: u32,
    _pad4: [u32; 8],
}

const SQ_HEAD: usize = offset_of!(IoRings, sq_head);
const SQ_TAIL: usize = offset_of!(IoRings, sq_tail);
const CQ_HEAD: usize = offset_of!(IoRings, cq_head);
const CQ_TAIL: usize = offset_of!(IoRings, cq_tail);
const SQ_MASK: usize = offset_of!(IoRings, sq_ring_mask);
const CQ_MASK: usize = offset_of!(IoRings, cq_ring_mask);
const SQ_ENTRIES: usize = offset_of!(IoRings, sq_ring_entries);
const CQ_ENTRIES: usize = offset_of!(IoRings, cq_ring_entries);
const SQ_DROPPED: usize = offset_of!(IoRings, sq_dropped);
const SQ_FLAGS: usize = offset_of!(IoRings, sq_flags);
const CQ_FLAGS: usize = offset_of!(IoRings, cq_flags);
const CQ_OVERFLOW: usize = offset_of!(IoRings, cq_overflow);
/// Byte offset of the CQE array (`cq_off.cqes`).
const CQES: usize = size_of::<IoRings>();

const _: () = {
    assert!(SQ_HEAD == 0);
    assert!(SQ_TAIL == 64);
    assert!(CQ_HEAD == 128);
    assert!(CQ_TAIL == 192);
    assert!(SQ_MASK == 256);
    assert!(CQ_MASK == 260);
    assert!(SQ_ENTRIES == 264);
    assert!(CQ_ENTRIES == 268);
    assert!(SQ_DROPPED == 272);
    assert!(SQ_FLAGS == 276);
    assert!(CQ_FLAGS == 280);
    assert!(CQ_OVERFLOW == 284);
    assert!(CQES == 320);
};

const CACHE_LINE: usize = 64;

/// Features ringline's rings offer, as reported in [`Params::features`].
/// `FAST_POLL`: a request on a socket that is not ready waits on the socket's
/// readiness inside the engine and is retried there (ringline has no worker
/// threads to punt to); programs written for io_uring check it before relying
/// on that (the classic echo servers quit without it). `RECVSEND_BUNDLE`:
/// `IORING_RECVSEND_BUNDLE` on RECV and SEND.
pub const FEATURES: u32 = abi::IORING_FEAT_NODROP
    | abi::IORING_FEAT_SUBMIT_STABLE
    | abi::IORING_FEAT_SINGLE_MMAP
    | abi::IORING_FEAT_FAST_POLL
    | abi::IORING_FEAT_CQE_SKIP
    | abi::IORING_FEAT_EXT_ARG
    | abi::IORING_FEAT_RECVSEND_BUNDLE;

/// How to size and back a ring (the inputs of `io_uring_setup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingConfig {
    /// Requested SQ entries; rounded up to a power of two.
    pub sq_entries: u32,
    /// CQ entries; `Some(n)` is `IORING_SETUP_CQSIZE`, `None` means twice the SQ.
    pub cq_entries: Option<u32>,
    /// `IORING_SETUP_CLAMP`: clamp oversized requests instead of failing.
    pub clamp: bool,
    /// Huge page policy for the ring memory.
    pub huge: HugePolicy,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            sq_entries: 256,
            cq_entries: None,
            clamp: false,
            huge: HugePolicy::Auto,
        }
    }
}

/// Errors of [`new_ring`].
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The requested sizes are invalid (`-EINVAL` from `io_uring_setup`).
    #[error("invalid ring size")]
    InvalidEntries,
    /// The ring memory could not be mapped.
    #[error(transparent)]
    Mem(#[from] MemError),
}

impl SetupError {
    /// The negative errno `io_uring_setup` would return.
    pub fn errno(&self) -> i32 {
        match self {
            SetupError::InvalidEntries => -libc::EINVAL,
            SetupError::Mem(MemError::HugePagesUnavailable) => -libc::ENOMEM,
            SetupError::Mem(MemError::Mmap(e)) => -e.raw_os_error().unwrap_or(libc::ENOMEM),
        }
    }
}

/// Counters of a ring, readable from either half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingStats {
    /// Pages backing the ring memory.
    pub backing: Backing,
    /// SQ size.
    pub sq_entries: u32,
    /// CQ size.
    pub cq_entries: u32,
    /// CQEs that went through the overflow backlog since setup.
    pub overflowed_total: u64,
    /// CQEs in the backlog now.
    pub backlog_len: usize,
    /// Largest backlog seen.
    pub backlog_high_water: usize,
    /// SQ array entries skipped for an out-of-range index (`sq_dropped`).
    pub sq_dropped: u32,
}

/// Applies the kernel's sizing rules (`io_uring_fill_params`): returns
/// `(sq_entries, cq_entries)`.
pub fn ring_sizes(cfg: &RingConfig) -> Result<(u32, u32), SetupError> {
    let mut entries = cfg.sq_entries;
    if entries == 0 {
        return Err(SetupError::InvalidEntries);
    }
    if entries > abi::IORING_MAX_ENTRIES {
        if !cfg.clamp {
            return Err(SetupError::InvalidEntries);
        }
        entries = abi::IORING_MAX_ENTRIES;
    }
    let sq = entries.next_power_of_two();
    let cq = match cfg.cq_entries {
        Some(0) => return Err(SetupError::InvalidEntries),
        Some(mut n) => {
            if n > abi::IORING_MAX_CQ_ENTRIES {
                if !cfg.clamp {
                    return Err(SetupError::InvalidEntries);
                }
                n = abi::IORING_MAX_CQ_ENTRIES;
            }
            let n = n.next_power_of_two();
            if n < sq {
                return Err(SetupError::InvalidEntries);
            }
            n
        }
        None => 2 * sq,
    };
    Ok((sq, cq))
}

/// Byte offsets of the variable-size parts of the region.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    sq_entries: u32,
    cq_entries: u32,
    sq_array: usize,
    sqes: usize,
    size: usize,
}

fn align_up(x: usize, to: usize) -> usize {
    (x + to - 1) & !(to - 1)
}

impl Geometry {
    fn new(sq_entries: u32, cq_entries: u32) -> Self {
        // As the kernel's rings_size(): CQEs, then the SQ array on a cache line; the
        // SQEs (a separate mapping in the kernel) follow on the next cache line.
        let sq_array = align_up(CQES + cq_entries as usize * size_of::<Cqe>(), CACHE_LINE);
        let sqes = align_up(
            sq_array + sq_entries as usize * size_of::<u32>(),
            CACHE_LINE,
        );
        let size = sqes + sq_entries as usize * size_of::<Sqe>();
        Geometry {
            sq_entries,
            cq_entries,
            sq_array,
            sqes,
            size,
        }
    }
}

/// Counters the engine keeps for [`RingStats`], shared so the app half can report them.
/// Written by the engine only on the (cold) overflow path, relaxed: they publish no data.
#[derive(Debug, Default)]
struct Counters {
    overflowed_total: AtomicU64,
    backlog_len: AtomicUsize,
    backlog_high_water: AtomicUsize,
}

/// What both halves share: the mapping and its geometry.
#[derive(Debug)]
struct Shared {
    region: Region,
    geo: Geometry,
    params: Params,
    counters: Counters,
}

impl Shared {
    /// The `u32` at byte `off` of the header, viewed as an atomic.
    #[inline]
    fn word(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off < CQES && off.is_multiple_of(4));
        // SAFETY: `off` is an IoRings field offset (< 320, 4-aligned) in a page-aligned region of
        // more than 320 bytes that outlives `self`; after setup every access to header words goes
        // through this function, so atomic and non-atomic accesses never mix.
        unsafe { AtomicU32::from_ptr(self.region.as_ptr().add(off).cast::<u32>()) }
    }

    fn sq_head(&self) -> &AtomicU32 {
        self.word(SQ_HEAD)
    }
    fn sq_tail(&self) -> &AtomicU32 {
        self.word(SQ_TAIL)
    }
    fn cq_head(&self) -> &AtomicU32 {
        self.word(CQ_HEAD)
    }
    fn cq_tail(&self) -> &AtomicU32 {
        self.word(CQ_TAIL)
    }
    fn sq_flags(&self) -> &AtomicU32 {
        self.word(SQ_FLAGS)
    }
    fn sq_dropped(&self) -> &AtomicU32 {
        self.word(SQ_DROPPED)
    }

    #[inline]
    fn cqes(&self) -> CqeSlots<'_> {
        CqeSlots {
            // SAFETY: CQES + cq_entries * 16 <= geo.size <= region.len(): in bounds.
            base: unsafe { self.region.as_ptr().add(CQES) }.cast::<Cqe>(),
            _region: PhantomData,
        }
    }

    /// Pointer to SQE `idx` (`idx < sq_entries`).
    #[inline]
    fn sqe_ptr(&self, idx: u32) -> *mut Sqe {
        debug_assert!(idx < self.geo.sq_entries);
        // SAFETY: idx < sq_entries (masked or bounds-checked by every caller), and
        // geo.sqes + sq_entries * 64 == geo.size <= region.len(): in bounds.
        unsafe {
            self.region
                .as_ptr()
                .add(self.geo.sqes)
                .cast::<Sqe>()
                .add(idx as usize)
        }
    }

    /// Pointer to SQ array slot `idx` (`idx < sq_entries`).
    #[inline]
    fn sq_array_ptr(&self, idx: u32) -> *mut u32 {
        debug_assert!(idx < self.geo.sq_entries);
        // SAFETY: idx < sq_entries and geo.sq_array + sq_entries * 4 <= geo.sqes: in
        // bounds; sq_array is 64-aligned, so the u32 pointer is aligned.
        unsafe {
            self.region
                .as_ptr()
                .add(self.geo.sq_array)
                .cast::<u32>()
                .add(idx as usize)
        }
    }

    fn stats(&self) -> RingStats {
        RingStats {
            backing: self.region.backing(),
            sq_entries: self.geo.sq_entries,
            cq_entries: self.geo.cq_entries,
            // Written by the engine (relaxed) on the overflow path; statistics only.
            overflowed_total: self.counters.overflowed_total.load(Ordering::Relaxed),
            backlog_len: self.counters.backlog_len.load(Ordering::Relaxed),
            backlog_high_water: self.counters.backlog_high_water.load(Ordering::Relaxed),
            // Engine-written counter (relaxed store in next_sqe); statistics only.
            sq_dropped: self.sq_dropped().load(Ordering::Relaxed),
        }
    }
}

/// The CQE array as [`Slots`].
struct CqeSlots<'a> {
    base: *mut Cqe,
    _region: PhantomData<&'a Region>,
}

impl Slots for CqeSlots<'_> {
    type Item = Cqe;

    #[inline]
    unsafe fn read(&self, idx: u32) -> Cqe {
        // SAFETY: idx < cq_entries (trait contract), so the slot is inside the CQE
        // array; 16-byte aligned (array at 320 of a page-aligned region). The engine
        // does not write it while the app owns it (protocol, trait contract).
        unsafe { self.base.add(idx as usize).read() }
    }

    #[inline]
    unsafe fn write(&self, idx: u32, item: Cqe) {
        // SAFETY: as in `read`; the engine owns the slot until it publishes cq.tail.
        unsafe { self.base.add(idx as usize).write(item) }
    }
}

/// Creates the shared ring region and returns its two halves.
///
/// The region has the kernel's `struct io_rings` layout (sq.head@0, sq.tail@64,
/// cq.head@128, cq.tail@192, masks 256/260, entries 264/268, dropped 272, sq_flags 276,
/// cq_flags 280, cq_overflow 284, CQEs@320, then the SQ index array, then the SQEs);
/// the SQ array is filled with the identity map. Sizes follow the kernel
/// ([`ring_sizes`]).
pub fn new_ring(cfg: &RingConfig) -> Result<(AppRing, EngineRing), SetupError> {
    new_ring_at(cfg, 0)
}

/// [`new_ring`] for an engine that polls the SQ on its own thread: the params report
/// `IORING_SETUP_SQPOLL` (and `IORING_SETUP_SQ_AFF` with `sq_thread_cpu` when `cpu` is
/// given), `sq_thread_idle` in ms, and `IORING_FEAT_SQPOLL_NONFIXED`. The application
/// half then follows liburing's SQPOLL rules ([`AppRing::is_sqpoll`]).
pub fn new_ring_sqpoll(
    cfg: &RingConfig,
    cpu: Option<u32>,
    idle_ms: u32,
) -> Result<(AppRing, EngineRing), SetupError> {
    new_ring_with(cfg, 0, |p| {
        p.flags |= abi::IORING_SETUP_SQPOLL;
        if let Some(cpu) = cpu {
            p.flags |= abi::IORING_SETUP_SQ_AFF;
            p.sq_thread_cpu = cpu;
        }
        p.sq_thread_idle = idle_ms;
        p.features |= abi::IORING_FEAT_SQPOLL_NONFIXED;
    })
}

/// [`new_ring`] with all four counters starting at `start` instead of 0 (tests use it
/// to cross the `u32` wrap quickly).
pub(crate) fn new_ring_at(
    cfg: &RingConfig,
    start: u32,
) -> Result<(AppRing, EngineRing), SetupError> {
    new_ring_with(cfg, start, |_| {})
}

/// [`new_ring_sqpoll`] on a ring for an application in another process: the region is
/// a file ([`Region::new_file`]) whose descriptor is returned with the two halves; the
/// other process maps it and rebuilds its application half with [`AppRing::attach`],
/// given [`AppRing::params`]. The daemon keeps the engine half (and may drop this
/// process's application half).
pub fn new_ring_shared(
    cfg: &RingConfig,
    idle_ms: u32,
) -> Result<(AppRing, EngineRing, std::os::fd::OwnedFd), SetupError> {
    let mut fd = None;
    let (app, eng) = new_ring_in(
        cfg,
        0,
        |len| {
            let (r, f) = Region::new_file(len, cfg.huge)?;
            fd = Some(f);
            Ok(r)
        },
        |p| {
            p.flags |= abi::IORING_SETUP_SQPOLL;
            p.sq_thread_idle = idle_ms;
            p.features |= abi::IORING_FEAT_SQPOLL_NONFIXED;
        },
    )?;
    let fd = fd.ok_or(SetupError::InvalidEntries)?;
    Ok((app, eng, fd))
}

/// [`new_ring_at`], letting `adjust` add to the reported params (SQPOLL's).
fn new_ring_with(
    cfg: &RingConfig,
    start: u32,
    adjust: impl FnOnce(&mut Params),
) -> Result<(AppRing, EngineRing), SetupError> {
    new_ring_in(cfg, start, |len| Region::new(len, cfg.huge), adjust)
}

/// [`new_ring_with`] on the region `map` makes for a length.
fn new_ring_in(
    cfg: &RingConfig,
    start: u32,
    map: impl FnOnce(usize) -> Result<Region, MemError>,
    adjust: impl FnOnce(&mut Params),
) -> Result<(AppRing, EngineRing), SetupError> {
    let (sq, cq) = ring_sizes(cfg)?;
    let geo = Geometry::new(sq, cq);
    let region = map(geo.size)?;

    let base = region.as_ptr();
    let init: [(usize, u32); 8] = [
        (SQ_HEAD, start),
        (SQ_TAIL, start),
        (CQ_HEAD, start),
        (CQ_TAIL, start),
        (SQ_MASK, sq - 1),
        (CQ_MASK, cq - 1),
        (SQ_ENTRIES, sq),
        (CQ_ENTRIES, cq),
    ];
    for (off, v) in init {
        // SAFETY: the region is freshly mapped, at least geo.size bytes, and not yet
        // shared with anyone: plain writes to the in-bounds, aligned header words cannot
        // race. Later accesses to the counters are all atomic.
        unsafe { base.add(off).cast::<u32>().write(v) };
    }
    for i in 0..sq {
        // SAFETY: as above; array slot i < sq is inside [sq_array, sqes).
        unsafe {
            base.add(geo.sq_array)
                .cast::<u32>()
                .add(i as usize)
                .write(i)
        };
    }

    let mut flags = 0;
    if cfg.cq_entries.is_some() {
        flags |= abi::IORING_SETUP_CQSIZE;
    }
    if cfg.clamp {
        flags |= abi::IORING_SETUP_CLAMP;
    }
    let mut params = Params {
        sq_entries: sq,
        cq_entries: cq,
        flags,
        features: FEATURES,
        sq_off: SqringOffsets {
            head: SQ_HEAD as u32,
            tail: SQ_TAIL as u32,
            ring_mask: SQ_MASK as u32,
            ring_entries: SQ_ENTRIES as u32,
            flags: SQ_FLAGS as u32,
            dropped: SQ_DROPPED as u32,
            array: geo.sq_array as u32,
            resv1: 0,
            user_addr: 0,
        },
        cq_off: CqringOffsets {
            head: CQ_HEAD as u32,
            tail: CQ_TAIL as u32,
            ring_mask: CQ_MASK as u32,
            ring_entries: CQ_ENTRIES as u32,
            overflow: CQ_OVERFLOW as u32,
            cqes: CQES as u32,
            flags: CQ_FLAGS as u32,
            resv1: 0,
            user_addr: 0,
        },
        ..Params::default()
    };
    adjust(&mut params);

    let shared = Arc::new(Shared {
        region,
        geo,
        params,
        counters: Counters::default(),
    });
    let app = AppRing {
        shared: shared.clone(),
        sq: Producer::new(sq, start),
        sq_published: start,
        cq: Consumer::new(cq, start),
        _not_sync: PhantomData,
    };
    let engine = EngineRing {
        shared,
        sq: Consumer::new(sq, start),
        cq: Producer::new(cq, start),
        backlog: VecDeque::with_capacity(cq as usize),
        sq_dropped: 0,
        overflowed_total: 0,
        backlog_high_water: 0,
    };
    Ok((app, engine))
}

/// The application half of a ring: SQ producer and CQ consumer.
///
/// `Send`, not `Sync` (like liburing's `struct io_uring`, one thread drives it). It owns
/// a private `sqe_tail` like liburing: [`AppRing::get_sqe`] hands out slots,
/// [`AppRing::flush_sq`] publishes them.
#[derive(Debug)]
pub struct AppRing {
    shared: Arc<Shared>,
    /// SQ producer state: the private sqe_tail.
    sq: Producer,
    /// The last value store-released to sq.tail.
    sq_published: u32,
    /// CQ consumer state: the private cq head (the app is the only writer of cq.head).
    cq: Consumer,
    _not_sync: PhantomData<Cell<()>>,
}

impl AppRing {
    /// The application half of a ring another process set up ([`new_ring_shared`]),
    /// on `region`, this process's mapping of its file, with the params that process
    /// reported. The params are checked against the region (sizes as the kernel's,
    /// offsets as this layout's, the whole ring inside the mapping); the counters
    /// start where the shared header has them.
    pub fn attach(region: Region, params: &Params) -> Result<AppRing, SetupError> {
        let (sq, cq) = ring_sizes(&RingConfig {
            sq_entries: params.sq_entries,
            cq_entries: Some(params.cq_entries),
            clamp: false,
            huge: HugePolicy::Never,
        })?;
        let geo = Geometry::new(sq, cq);
        if sq != params.sq_entries
            || cq != params.cq_entries
            || geo.size > region.len()
            || params.sq_off.array as usize != geo.sq_array
            || params.cq_off.cqes as usize != CQES
        {
            return Err(SetupError::InvalidEntries);
        }
        let shared = Arc::new(Shared {
            region,
            geo,
            params: *params,
            counters: Counters::default(),
        });
        let word = |w: &AtomicU32| w.load(Ordering::Acquire);
        // The engine published the header before the descriptor was sent; the app is the
        // only writer of sq.tail and cq.head, so these are its own starting values.
        let (sq_tail, cq_head) = (word(shared.sq_tail()), word(shared.cq_head()));
        if word(shared.word(SQ_ENTRIES)) != sq || word(shared.word(CQ_ENTRIES)) != cq {
            return Err(SetupError::InvalidEntries);
        }
        Ok(AppRing {
            shared,
            sq: Producer::new(sq, sq_tail),
            sq_published: sq_tail,
            cq: Consumer::new(cq, cq_head),
            _not_sync: PhantomData,
        })
    }

    /// The `io_uring_params` of this ring: sizes, setup flags, features
    /// (`NODROP | SUBMIT_STABLE | SINGLE_MMAP | CQE_SKIP | EXT_ARG`) and the offsets of
    /// every field in the region.
    pub fn params(&self) -> Params {
        self.shared.params
    }

    /// SQ size.
    pub fn sq_entries(&self) -> u32 {
        self.shared.geo.sq_entries
    }

    /// CQ size.
    pub fn cq_entries(&self) -> u32 {
        self.shared.geo.cq_entries
    }

    /// Start of the shared region (for a C ABI or an attaching process).
    pub fn region_ptr(&self) -> *mut u8 {
        self.shared.region.as_ptr()
    }

    /// Length of the shared region in bytes.
    pub fn region_len(&self) -> usize {
        self.shared.region.len()
    }

    /// Byte offset of the SQE array in the region (the kernel maps it separately at
    /// `IORING_OFF_SQES`; here it follows the SQ index array).
    pub fn sqes_offset(&self) -> usize {
        self.shared.geo.sqes
    }

    /// The next free SQE, zeroed, or `None` when the SQ is full. Advances the private
    /// `sqe_tail` only; [`AppRing::flush_sq`] publishes it (`io_uring_get_sqe`).
    ///
    /// # Safety
    ///
    /// Whatever the caller writes into the SQE is submitted at the next flush, so the
    /// contract of [`Ring::push`](crate::app::Ring::push) applies to it: the memory it
    /// names must stay valid until the engine is done with it.
    #[inline]
    pub unsafe fn get_sqe(&mut self) -> Option<&mut Sqe> {
        let idx = self.sq.reserve(self.shared.sq_head())?;
        let p = self.shared.sqe_ptr(idx);
        // SAFETY: p is SQE idx in the region (identity SQ array); `reserve` acquired an sq.head
        // showing it free, and the engine reads it again only after a tail we publish past it,
        // which needs &mut self and so ends this borrow first.
        unsafe {
            p.write(Sqe::default());
            Some(&mut *p)
        }
    }

    /// Copies `sqe`, which names no application memory, into the next free SQ slot (not
    /// yet published: see [`AppRing::flush_sq`]).
    #[inline]
    pub fn push_safe(&mut self, sqe: &SafeSqe) -> Result<(), SqFull> {
        // SAFETY: a SafeSqe names no memory (only the opcode builders of requests
        // without addresses make one), so the push contract holds trivially.
        let slot = unsafe { self.get_sqe() }.ok_or(SqFull)?;
        *slot = *sqe.sqe();
        Ok(())
    }

    /// Free SQ slots: `entries - (sqe_tail - acquire(sq.head))`.
    pub fn sq_space_left(&self) -> u32 {
        self.sq.free(self.shared.sq_head())
    }

    /// SQEs not yet consumed by the engine: published ones plus the unpublished ones
    /// obtained from [`AppRing::get_sqe`].
    pub fn sq_pending(&self) -> u32 {
        self.sq.used(self.shared.sq_head())
    }

    /// Publishes the SQEs obtained since the last flush (store-release of sq.tail).
    /// Returns how many were newly published.
    pub fn flush_sq(&mut self) -> u32 {
        let n = self.sq.tail().wrapping_sub(self.sq_published);
        if n != 0 {
            self.sq.publish(self.shared.sq_tail());
            self.sq_published = self.sq.tail();
        }
        n
    }

    /// The SQ ring flags (`IORING_SQ_*`).
    pub fn sq_flags(&self) -> u32 {
        // The engine sets/clears sq_flags with fetch_or/fetch_and; this load-acquire
        // pairs with those (no data is published through the flags, the acquire only
        // keeps the read ordered before the app's following ring reads).
        self.shared.sq_flags().load(Ordering::Acquire)
    }

    /// Whether the engine holds CQEs in its overflow backlog
    /// (`IORING_SQ_CQ_OVERFLOW`); enter with `IORING_ENTER_GETEVENTS` to flush them.
    pub fn cq_has_overflow(&self) -> bool {
        self.sq_flags() & abi::IORING_SQ_CQ_OVERFLOW != 0
    }

    /// Whether the ring was set up for an engine polling on its own thread
    /// (`IORING_SETUP_SQPOLL`, [`new_ring_sqpoll`]).
    #[inline]
    pub fn is_sqpoll(&self) -> bool {
        self.shared.params.flags & abi::IORING_SETUP_SQPOLL != 0
    }

    /// A read-only view of the shared counters and flags, for a driver that waits on the
    /// application's behalf ([`RingView`]).
    pub fn view(&self) -> RingView {
        RingView {
            shared: self.shared.clone(),
        }
    }

    /// Whether a polling engine asked to be woken up (`IORING_SQ_NEED_WAKEUP`), with the
    /// full fence liburing places between its sq.tail store and this read. Call after
    /// [`AppRing::flush_sq`].
    pub fn needs_wakeup(&self) -> bool {
        proto::needs_wakeup(self.shared.sq_flags())
    }

    /// CQEs ready to be read: `acquire(cq.tail) - cq.head`.
    #[inline]
    pub fn cq_ready(&self) -> u32 {
        self.cq.ready(self.shared.cq_tail())
    }

    /// A copy of the CQE at the head, without consuming it.
    #[inline]
    pub fn peek_cqe(&self) -> Option<Cqe> {
        self.peek_cqe_at(0)
    }

    /// A copy of the CQE `offset` places after the head, if ready.
    #[inline]
    pub fn peek_cqe_at(&self, offset: u32) -> Option<Cqe> {
        // SAFETY: the AppRing is the only CQ consumer of this ring (one AppRing per
        // ring, cq.head only released through &mut self) and the EngineRing follows the
        // producer protocol; the slots are the ring's CQE array of cq_entries slots.
        unsafe {
            self.cq
                .peek(self.shared.cq_tail(), &self.shared.cqes(), offset)
        }
    }

    /// Consumes `n` CQEs: store-release `cq.head += n` (`io_uring_cq_advance`).
    #[inline]
    pub fn cq_advance(&mut self, n: u32) {
        debug_assert!(n <= self.cq_ready(), "cq_advance past the CQ tail");
        self.cq.advance(n);
        self.cq.release(self.shared.cq_head());
    }

    /// Consumes one CQE (`io_uring_cqe_seen`).
    #[inline]
    pub fn cqe_seen(&mut self) {
        self.cq_advance(1);
    }

    /// Copies up to `out.len()` CQEs and consumes them. Returns how many.
    pub fn copy_cqes(&mut self, out: &mut [Cqe]) -> usize {
        let mut n = 0;
        let slots = self.shared.cqes();
        for o in out.iter_mut() {
            // SAFETY: as in peek_cqe_at: the only CQ consumer, over the CQE array.
            match unsafe { self.cq.pop(self.shared.cq_tail(), &slots) } {
                Some(c) => *o = c,
                None => break,
            }
            n += 1;
        }
        if n != 0 {
            self.cq.release(self.shared.cq_head());
        }
        n
    }

    /// Ring counters. The backlog figures are maintained by the engine half.
    pub fn stats(&self) -> RingStats {
        self.shared.stats()
    }
}

/// The engine half of a ring: SQ consumer and CQ producer, owner of the overflow backlog.
///
/// What a driver on the application's side may read of a ring without owning either
/// half: CQEs ready, SQ space, the SQ flags. Only loads of the shared words; the SQPOLL
/// driver's `io_uring_enter` waits on them.
#[derive(Debug, Clone)]
pub struct RingView {
    shared: Arc<Shared>,
}

impl RingView {
    /// CQEs posted and not yet consumed: `acquire(cq.tail) - acquire(cq.head)`, at most
    /// `cq_entries`.
    #[inline]
    pub fn cq_ready(&self) -> u32 {
        // The engine store-releases cq.tail after writing CQEs and the app store-releases
        // cq.head after reading them; these load-acquires pair with those stores (only a
        // count is derived, no slot is read here).
        let tail = self.shared.cq_tail().load(Ordering::Acquire);
        let head = self.shared.cq_head().load(Ordering::Acquire);
        tail.wrapping_sub(head).min(self.shared.geo.cq_entries)
    }

    /// Free SQ slots as the engine sees them: `entries - (sq.tail - acquire(sq.head))`.
    #[inline]
    pub fn sq_space(&self) -> u32 {
        // sq.tail is written by the app (whose thread calls this; relaxed reads its own
        // store); sq.head is store-released by the engine after copying SQEs, acquire
        // pairs with it.
        let tail = self.shared.sq_tail().load(Ordering::Relaxed);
        let head = self.shared.sq_head().load(Ordering::Acquire);
        self.shared
            .geo
            .sq_entries
            .saturating_sub(tail.wrapping_sub(head))
    }

    /// CQ size.
    pub fn cq_entries(&self) -> u32 {
        self.shared.geo.cq_entries
    }

    /// The SQ ring flags (`IORING_SQ_*`).
    #[inline]
    pub fn sq_flags(&self) -> u32 {
        // Engine-written with fetch_or/fetch_and; acquire as in AppRing::sq_flags.
        self.shared.sq_flags().load(Ordering::Acquire)
    }
}

/// `Send`. The engine is the only SQ consumer and CQ producer of its ring.
#[derive(Debug)]
pub struct EngineRing {
    shared: Arc<Shared>,
    /// SQ consumer state: the private head, published by sq_commit.
    sq: Consumer,
    /// CQ producer state: the private tail (published after each post).
    cq: Producer,
    /// Ordered CQ overflow backlog; preallocated with cq_entries capacity.
    backlog: VecDeque<Cqe>,
    sq_dropped: u32,
    overflowed_total: u64,
    backlog_high_water: usize,
}

impl EngineRing {
    /// SQ size.
    pub fn sq_entries(&self) -> u32 {
        self.shared.geo.sq_entries
    }

    /// CQ size.
    pub fn cq_entries(&self) -> u32 {
        self.shared.geo.cq_entries
    }

    /// SQEs published and not yet copied: `acquire(sq.tail) - head`, at most sq_entries
    /// (the tail is app-written and untrusted).
    pub fn sq_ready(&self) -> u32 {
        self.sq.ready(self.shared.sq_tail())
    }

    /// Copies the next SQE out of the ring: reads the SQ array slot at the head, then
    /// the SQE it names. An index `>= sq_entries` is skipped and counted in
    /// `sq_dropped` (at most `sq_entries` skips per call; then `None`). Every field is
    /// read once (volatile copy), so later app writes cannot change what the engine
    /// acts on. Does not publish the head: call [`EngineRing::sq_commit`].
    #[inline]
    pub fn next_sqe(&mut self) -> Option<Sqe> {
        for _ in 0..self.shared.geo.sq_entries {
            let slot = self.sq.next_index(self.shared.sq_tail())?;
            // SAFETY: slot < sq_entries (masked by next_index); the array slot is
            // published by the tail next_index load-acquired. Volatile: read exactly
            // once, the app may be hostile.
            let idx = unsafe { self.shared.sq_array_ptr(slot).read_volatile() };
            if idx < self.shared.geo.sq_entries {
                // SAFETY: idx was bounds-checked just above; the SQE is published by the
                // acquired tail and the app does not reuse it before we release sq.head.
                // A single volatile copy snapshots it (FEAT_SUBMIT_STABLE).
                return Some(unsafe { self.shared.sqe_ptr(idx).read_volatile() });
            }
            self.sq_dropped = self.sq_dropped.wrapping_add(1);
            // The engine is the only writer of sq_dropped; the app reads it (relaxed)
            // for statistics. Nothing is published through it.
            self.shared
                .sq_dropped()
                .store(self.sq_dropped, Ordering::Relaxed);
        }
        None
    }

    /// Hands the SQ slots copied so far back to the app: store-release of sq.head.
    #[inline]
    pub fn sq_commit(&mut self) {
        self.sq.release(self.shared.sq_head());
    }

    /// Posts a normal completion.
    ///
    /// If the backlog is non-empty or the CQ is full, the CQE is appended to the backlog
    /// (never dropped, never reordered: nothing bypasses a non-empty backlog) and
    /// `IORING_SQ_CQ_OVERFLOW` is set when the backlog becomes non-empty. Otherwise the
    /// CQE is written and cq.tail store-released.
    #[inline]
    pub fn post_cqe(&mut self, user_data: u64, res: i32, flags: u32) {
        let cqe = Cqe {
            user_data,
            res,
            flags,
        };
        if self.backlog.is_empty() && self.try_post(cqe) {
            return;
        }
        self.overflow(cqe);
    }

    /// Posts a multishot auxiliary completion (one carrying `IORING_CQE_F_MORE`).
    ///
    /// Returns `false` and posts nothing when the CQ is full or the backlog is
    /// non-empty: aux CQEs never overflow. The caller then ends the request with a
    /// [`EngineRing::post_cqe`] without `F_MORE` carrying the result in hand.
    #[must_use]
    #[inline]
    pub fn post_aux_cqe(&mut self, user_data: u64, res: i32, flags: u32) -> bool {
        self.backlog.is_empty()
            && self.try_post(Cqe {
                user_data,
                res,
                flags,
            })
    }

    /// Writes and publishes one CQE if a slot is free.
    #[inline]
    fn try_post(&mut self, cqe: Cqe) -> bool {
        // SAFETY: the EngineRing is the only CQ producer (one per ring, &mut self) and
        // the AppRing follows the consumer protocol; the slots are the CQE array of
        // cq_entries slots.
        let pushed = unsafe {
            self.cq
                .push(self.shared.cq_head(), &self.shared.cqes(), cqe)
                .is_ok()
        };
        if pushed {
            self.cq.publish(self.shared.cq_tail());
        }
        pushed
    }

    #[cold]
    #[inline(never)]
    fn overflow(&mut self, cqe: Cqe) {
        if self.backlog.is_empty() {
            self.set_sq_flag(abi::IORING_SQ_CQ_OVERFLOW);
        }
        // Grows past cq_entries only when the overflow is larger than the CQ (the
        // kernel allocates per overflowed CQE too).
        self.backlog.push_back(cqe);
        self.overflowed_total += 1;
        self.backlog_high_water = self.backlog_high_water.max(self.backlog.len());
        self.publish_counters();
    }

    fn publish_counters(&self) {
        let c = &self.shared.counters;
        // Engine-only writers, app reads them (relaxed) in stats(): statistics only,
        // nothing is published through these counters.
        c.overflowed_total
            .store(self.overflowed_total, Ordering::Relaxed);
        c.backlog_len.store(self.backlog.len(), Ordering::Relaxed);
        c.backlog_high_water
            .store(self.backlog_high_water, Ordering::Relaxed);
    }

    /// Free CQ slots: `entries - (tail - acquire(cq.head))`, 0 if cq.head is corrupt.
    pub fn cq_space(&self) -> u32 {
        self.cq.free(self.shared.cq_head())
    }

    /// CQEs in the overflow backlog.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// Moves backlog CQEs into the CQ, in order, while space allows; clears
    /// `IORING_SQ_CQ_OVERFLOW` once the backlog is empty. Returns the number moved.
    #[inline]
    pub fn flush_overflow(&mut self) -> usize {
        if self.backlog.is_empty() {
            return 0;
        }
        self.flush_backlog()
    }

    #[inline(never)]
    fn flush_backlog(&mut self) -> usize {
        let slots = self.shared.cqes();
        let mut moved = 0;
        while let Some(&cqe) = self.backlog.front() {
            // SAFETY: as in try_post: the only CQ producer, over the CQE array.
            if unsafe { self.cq.push(self.shared.cq_head(), &slots, cqe) }.is_err() {
                break;
            }
            self.backlog.pop_front();
            moved += 1;
        }
        if moved != 0 {
            self.cq.publish(self.shared.cq_tail());
        }
        if self.backlog.is_empty() {
            self.clear_sq_flag(abi::IORING_SQ_CQ_OVERFLOW);
            // Give back what a long overflow grew, keeping the setup size.
            let keep = self.cq_entries() as usize;
            if self.backlog.capacity() > 4 * keep {
                self.backlog = VecDeque::with_capacity(keep);
            }
        }
        self.publish_counters();
        moved
    }

    /// CQEs published so far (the private tail, free-running): a driver compares two
    /// readings to learn whether a step posted any.
    #[inline]
    pub fn cq_posted(&self) -> u32 {
        self.cq.tail()
    }

    /// CQEs posted and not yet consumed by the app: `tail - acquire(cq.head)`.
    pub fn cq_ready(&self) -> u32 {
        self.cq.used(self.shared.cq_head())
    }

    /// Sets bits in sq_flags (atomic `fetch_or`).
    pub fn set_sq_flag(&self, flag: u32) {
        // The engine is the only writer of sq_flags; the app load-acquires it in
        // AppRing::sq_flags. SeqCst so NEED_WAKEUP can take part in the Dekker
        // handshake (see proto::prepare_sleep).
        self.shared.sq_flags().fetch_or(flag, Ordering::SeqCst);
    }

    /// Clears bits in sq_flags (atomic `fetch_and` with the complement).
    pub fn clear_sq_flag(&self, flag: u32) {
        // Engine-only writer, as in set_sq_flag.
        self.shared.sq_flags().fetch_and(!flag, Ordering::SeqCst);
    }

    /// Before a polling engine goes idle: sets `IORING_SQ_NEED_WAKEUP`, fences, and
    /// re-checks the SQ. Returns `true` if it may sleep (the SQ is still empty), `false`
    /// if SQEs arrived (the flag is cleared again). Clear the flag on wake-up with
    /// [`EngineRing::clear_sq_flag`].
    pub fn prepare_sleep(&self) -> bool {
        proto::prepare_sleep(
            self.shared.sq_flags(),
            self.shared.sq_tail(),
            self.sq.head(),
        )
    }

    /// Ring counters.
    pub fn stats(&self) -> RingStats {
        self.shared.stats()
    }

    /// Where the four indices stand, for an operator's view (`ringline
    /// stat`): the engine's SQ head and CQ tail (its own), the application's
    /// SQ tail and CQ head (loaded relaxed: a report, not a handshake), and
    /// the ring memory's size.
    pub fn positions(&self) -> RingPositions {
        RingPositions {
            sq_head: self.sq.head(),
            // App-written; relaxed: a snapshot for reports, nothing is read through it.
            sq_tail: self.shared.sq_tail().load(Ordering::Relaxed),
            // App-written; as above.
            cq_head: self.shared.cq_head().load(Ordering::Relaxed),
            cq_tail: self.cq.tail(),
            ring_bytes: self.shared.region.len(),
        }
    }
}

/// The ring's indices at one moment ([`EngineRing::positions`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingPositions {
    /// SQEs the engine has taken (free-running).
    pub sq_head: u32,
    /// SQEs the application has published.
    pub sq_tail: u32,
    /// CQEs the application has consumed.
    pub cq_head: u32,
    /// CQEs the engine has posted.
    pub cq_tail: u32,
    /// Bytes of ring memory (header, SQ array, SQEs, CQEs).
    pub ring_bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::*;
    use crate::app::opcode::Nop;

    /// Queues a NOP carrying `user_data` (the engine half in these tests only copies
    /// SQEs; the safe path is enough).
    fn nop(app: &mut AppRing, user_data: u64) -> Result<(), SqFull> {
        app.push_safe(&Nop::new().user_data(user_data).build())
    }

    fn cfg(sq: u32, cq: Option<u32>, clamp: bool) -> RingConfig {
        RingConfig {
            sq_entries: sq,
            cq_entries: cq,
            clamp,
            huge: HugePolicy::Never,
        }
    }

    fn small(sq: u32, cq: u32) -> (AppRing, EngineRing) {
        new_ring(&cfg(sq, Some(cq), false)).unwrap()
    }

    #[test]
    fn sizing_follows_the_kernel() {
        let ok = |sq, cq, clamp| ring_sizes(&cfg(sq, cq, clamp)).ok();
        assert_eq!(ok(1, None, false), Some((1, 2)));
        assert_eq!(ok(3, None, false), Some((4, 8)));
        assert_eq!(ok(256, None, false), Some((256, 512)));
        assert_eq!(ok(257, None, false), Some((512, 1024)));
        assert_eq!(ok(32768, None, false), Some((32768, 65536)));
        assert_eq!(ok(0, None, false), None);
        assert_eq!(ok(0, None, true), None);
        assert_eq!(ok(32769, None, false), None);
        assert_eq!(ok(32769, None, true), Some((32768, 65536)));
        assert_eq!(ok(u32::MAX, None, true), Some((32768, 65536)));
        // CQSIZE
        assert_eq!(ok(8, Some(8), false), Some((8, 8)));
        assert_eq!(ok(8, Some(9), false), Some((8, 16)));
        assert_eq!(ok(8, Some(5), false), Some((8, 8))); // 5 rounds up to 8 == sq
        assert_eq!(ok(8, Some(4), false), None); // cq < sq
        assert_eq!(ok(8, Some(0), false), None);
        assert_eq!(ok(8, Some(0), true), None);
        assert_eq!(ok(8, Some(65536), false), Some((8, 65536)));
        assert_eq!(ok(8, Some(65537), false), None);
        assert_eq!(ok(8, Some(65537), true), Some((8, 65536)));
        assert_eq!(ok(8, Some(u32::MAX), true), Some((8, 65536)));
        let e = new_ring(&cfg(0, None, false)).unwrap_err();
        assert!(matches!(e, SetupError::InvalidEntries));
        assert_eq!(e.errno(), -22);
    }

    #[test]
    fn params_report_kernel_offsets() {
        let (app, eng) = new_ring(&cfg(4, None, false)).unwrap();
        let p = app.params();
        assert_eq!((p.sq_entries, p.cq_entries), (4, 8));
        assert_eq!(p.flags, 0);
        assert_eq!(p.features, FEATURES);
        for f in [
            IORING_FEAT_NODROP,
            IORING_FEAT_SUBMIT_STABLE,
            IORING_FEAT_SINGLE_MMAP,
            IORING_FEAT_CQE_SKIP,
            IORING_FEAT_EXT_ARG,
        ] {
            assert_ne!(p.features & f, 0);
        }
        let s = p.sq_off;
        assert_eq!(
            (
                s.head,
                s.tail,
                s.ring_mask,
                s.ring_entries,
                s.flags,
                s.dropped
            ),
            (0, 64, 256, 264, 276, 272)
        );
        let c = p.cq_off;
        assert_eq!(
            (
                c.head,
                c.tail,
                c.ring_mask,
                c.ring_entries,
                c.overflow,
                c.cqes,
                c.flags
            ),
            (128, 192, 260, 268, 284, 320, 280)
        );
        // Array follows the 8 CQEs on a cache line; SQEs follow the array.
        assert_eq!(s.array, 448);
        assert_eq!(app.sqes_offset(), 512);
        assert!(app.region_len() >= 512 + 4 * 64);

        // The region holds what the offsets say.
        let rd = |off: u32| {
            // SAFETY: off is inside the region (checked above), u32-aligned; the ring is
            // idle (no concurrent writer) in this test.
            unsafe { app.region_ptr().add(off as usize).cast::<u32>().read() }
        };
        assert_eq!(rd(s.ring_mask), 3);
        assert_eq!(rd(s.ring_entries), 4);
        assert_eq!(rd(c.ring_mask), 7);
        assert_eq!(rd(c.ring_entries), 8);
        for i in 0..4 {
            assert_eq!(rd(s.array + 4 * i), i, "identity SQ array");
        }
        let p2 = new_ring(&cfg(4, Some(16), true)).unwrap().0.params();
        assert_eq!(p2.flags, IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP);
        assert_eq!(p2.cq_entries, 16);
        assert_eq!(eng.sq_entries(), 4);
        assert_eq!(eng.cq_entries(), 8);
    }

    #[test]
    fn sqes_travel_in_order_and_slots_free_on_commit() {
        let (mut app, mut eng) = small(4, 8);
        assert_eq!(app.sq_space_left(), 4);
        for i in 0..4u64 {
            // SAFETY: nothing executes these SQEs (the engine half only copies them),
            // and the one written names no memory.
            let sqe = unsafe { app.get_sqe() }.unwrap();
            assert_eq!(*sqe, Sqe::default());
            sqe.user_data = i;
        }
        // SAFETY: as above (and no slot is handed out).
        assert!(unsafe { app.get_sqe() }.is_none());
        assert_eq!(nop(&mut app, 9), Err(SqFull));
        assert_eq!(app.sq_pending(), 4);
        assert_eq!(eng.sq_ready(), 0, "nothing published yet");
        assert_eq!(app.flush_sq(), 4);
        assert_eq!(app.flush_sq(), 0);
        assert_eq!(eng.sq_ready(), 4);
        assert_eq!(eng.next_sqe().unwrap().user_data, 0);
        assert_eq!(eng.next_sqe().unwrap().user_data, 1);
        // Copied but not committed: the app still sees the slots in use.
        assert_eq!(app.sq_space_left(), 0);
        eng.sq_commit();
        assert_eq!(app.sq_space_left(), 2);
        assert_eq!(app.sq_pending(), 2);
        assert_eq!(eng.next_sqe().unwrap().user_data, 2);
        assert_eq!(eng.next_sqe().unwrap().user_data, 3);
        assert!(eng.next_sqe().is_none());
        eng.sq_commit();
        assert_eq!(app.sq_space_left(), 4);
        assert_eq!(app.sq_pending(), 0);
    }

    #[test]
    fn sq_wraps_across_u32_overflow() {
        let (mut app, mut eng) = new_ring_at(&cfg(4, None, false), u32::MAX - 6).unwrap();
        let mut next = 0u64;
        let mut expect = 0u64;
        for _ in 0..8 {
            for _ in 0..3 {
                nop(&mut app, next).unwrap();
                next += 1;
            }
            app.flush_sq();
            assert_eq!(eng.sq_ready(), 3);
            while let Some(s) = eng.next_sqe() {
                assert_eq!(s.user_data, expect);
                expect += 1;
            }
            eng.sq_commit();
            // And CQEs across the wrap too.
            for i in 0..3 {
                eng.post_cqe(expect - 3 + i, 0, 0);
            }
            let mut out = [Cqe::default(); 8];
            assert_eq!(app.copy_cqes(&mut out), 3);
            assert_eq!(out[2].user_data, expect - 1);
        }
        assert_eq!(expect, 24);
        assert!(app.sq.tail() < 100, "counter wrapped");
    }

    #[test]
    fn out_of_range_sq_index_is_dropped() {
        let (mut app, mut eng) = small(4, 8);
        for i in 0..3 {
            nop(&mut app, i).unwrap();
        }
        app.flush_sq();
        // SAFETY: SQ array slot 1 is inside the region; the engine has not started
        // reading (single-threaded test), so nothing races with this write.
        unsafe {
            app.region_ptr()
                .add(app.params().sq_off.array as usize + 4)
                .cast::<u32>()
                .write(99)
        };
        assert_eq!(eng.next_sqe().unwrap().user_data, 0);
        assert_eq!(eng.next_sqe().unwrap().user_data, 2);
        assert!(eng.next_sqe().is_none());
        assert_eq!(app.stats().sq_dropped, 1);
    }

    #[test]
    fn a_drained_backlog_gives_its_memory_back() {
        let (mut app, mut eng) = small(2, 2);
        for i in 0..10_000 {
            eng.post_cqe(i, 0, 0);
        }
        assert!(eng.backlog.capacity() >= 9_998);
        let mut out = [Cqe::default(); 2];
        while eng.backlog_len() > 0 {
            while app.copy_cqes(&mut out) > 0 {}
            eng.flush_overflow();
        }
        while app.copy_cqes(&mut out) > 0 {}
        assert!(
            eng.backlog.capacity() <= 4 * eng.cq_entries() as usize,
            "capacity {} after draining",
            eng.backlog.capacity()
        );
    }

    #[test]
    fn full_cq_goes_to_backlog_and_flushes_in_order() {
        let (mut app, mut eng) = small(2, 2);
        eng.post_cqe(1, 0, 0);
        eng.post_cqe(2, 0, 0);
        assert_eq!(eng.cq_space(), 0);
        assert!(!app.cq_has_overflow());
        eng.post_cqe(3, 0, 0);
        assert!(app.cq_has_overflow());
        assert_eq!(eng.backlog_len(), 1);
        eng.post_cqe(4, -5, 7);
        assert_eq!(app.cq_ready(), 2);

        // The app frees one slot: a new completion still must not bypass the backlog.
        assert_eq!(app.peek_cqe().unwrap().user_data, 1);
        app.cqe_seen();
        eng.post_cqe(5, 0, 0);
        assert_eq!(eng.backlog_len(), 3);
        assert_eq!(app.cq_ready(), 1);

        assert_eq!(eng.flush_overflow(), 1);
        assert!(app.cq_has_overflow(), "still 2 in the backlog");
        let mut out = [Cqe::default(); 4];
        assert_eq!(app.copy_cqes(&mut out), 2);
        assert_eq!((out[0].user_data, out[1].user_data), (2, 3));
        assert_eq!(eng.flush_overflow(), 2);
        assert!(
            !app.cq_has_overflow(),
            "flag cleared when the backlog empties"
        );
        assert_eq!(eng.backlog_len(), 0);
        assert_eq!(app.copy_cqes(&mut out), 2);
        assert_eq!(
            out[0],
            Cqe {
                user_data: 4,
                res: -5,
                flags: 7
            }
        );
        assert_eq!(out[1].user_data, 5);
        let st = app.stats();
        assert_eq!(st.overflowed_total, 3);
        assert_eq!(st.backlog_len, 0);
        assert_eq!(st.backlog_high_water, 3);
        assert_eq!(eng.stats(), st);
        assert_eq!(eng.flush_overflow(), 0);
    }

    #[test]
    fn aux_cqe_refused_while_backlog_non_empty() {
        let (mut app, mut eng) = small(2, 2);
        assert!(eng.post_aux_cqe(1, 1, IORING_CQE_F_MORE));
        assert!(eng.post_aux_cqe(2, 1, IORING_CQE_F_MORE));
        assert!(!eng.post_aux_cqe(3, 1, IORING_CQE_F_MORE), "CQ full");
        eng.post_cqe(3, 1, 0);
        assert_eq!(eng.backlog_len(), 1);
        app.cq_advance(2);
        assert_eq!(eng.cq_space(), 2);
        assert!(
            !eng.post_aux_cqe(4, 1, IORING_CQE_F_MORE),
            "space, but the backlog is non-empty"
        );
        assert_eq!(eng.flush_overflow(), 1);
        assert!(eng.post_aux_cqe(4, 1, IORING_CQE_F_MORE));
        assert_eq!(app.peek_cqe().unwrap().user_data, 3);
        assert_eq!(app.peek_cqe_at(1).unwrap().user_data, 4);
        assert!(app.peek_cqe_at(2).is_none());
    }

    #[test]
    fn backlog_grows_past_cq_entries() {
        let (mut app, mut eng) = small(1, 1);
        for i in 0..10 {
            eng.post_cqe(i, 0, 0);
        }
        assert_eq!(eng.backlog_len(), 9);
        let mut seen = vec![];
        while seen.len() < 10 {
            eng.flush_overflow();
            let c = app.peek_cqe().unwrap();
            app.cqe_seen();
            seen.push(c.user_data);
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert!(!app.cq_has_overflow());
    }

    #[test]
    fn sq_flags_and_wakeup() {
        let (mut app, eng) = small(2, 2);
        eng.set_sq_flag(IORING_SQ_TASKRUN);
        assert_eq!(app.sq_flags(), IORING_SQ_TASKRUN);
        eng.clear_sq_flag(IORING_SQ_TASKRUN);
        assert_eq!(app.sq_flags(), 0);
        assert!(eng.prepare_sleep());
        assert!(app.needs_wakeup());
        eng.clear_sq_flag(IORING_SQ_NEED_WAKEUP);
        nop(&mut app, 0).unwrap();
        app.flush_sq();
        assert!(!eng.prepare_sleep(), "an SQE is pending");
        assert!(!app.needs_wakeup());
    }

    #[test]
    fn halves_are_send() {
        fn send<T: Send>() {}
        send::<AppRing>();
        send::<EngineRing>();
        fn sync<T: Sync>() {}
        sync::<EngineRing>();
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Submit(u8),
            EngineRun(u8),
            Post(u8),
            PostAux(u8),
            Flush,
            Consume(u8),
            PeekConsume(u8),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (1u8..6).prop_map(Op::Submit),
                (1u8..6).prop_map(Op::EngineRun),
                (1u8..6).prop_map(Op::Post),
                (1u8..4).prop_map(Op::PostAux),
                Just(Op::Flush),
                (1u8..8).prop_map(Op::Consume),
                (1u8..8).prop_map(Op::PeekConsume),
            ]
        }

        proptest! {
            /// Random interleavings of app submit/consume and engine post/flush against a
            /// VecDeque model: no CQE is lost, duplicated or reordered, and SQEs arrive
            /// in submission order.
            #[test]
            fn cqes_never_lost_or_reordered(
                start in prop_oneof![Just(0u32), Just(u32::MAX - 20), any::<u32>()],
                sq_log in 0u32..3,
                cq_extra in 0u32..2,
                ops in proptest::collection::vec(op(), 1..200),
            ) {
                let sq = 1u32 << sq_log;
                let cq = sq << cq_extra;
                let (mut app, mut eng) = new_ring_at(&cfg(sq, Some(cq), false), start).unwrap();
                let mut expected: VecDeque<u64> = VecDeque::new();
                let mut next_cqe = 0u64;
                let mut next_sqe = 0u64;
                let mut next_engine_sqe = 0u64;
                for op in ops {
                    match op {
                        Op::Submit(n) => {
                            for _ in 0..n {
                                if nop(&mut app, next_sqe).is_err() {
                                    break;
                                }
                                next_sqe += 1;
                            }
                            app.flush_sq();
                        }
                        Op::EngineRun(n) => {
                            for _ in 0..n {
                                let Some(s) = eng.next_sqe() else { break };
                                prop_assert_eq!(s.user_data, next_engine_sqe);
                                next_engine_sqe += 1;
                            }
                            eng.sq_commit();
                        }
                        Op::Post(n) => {
                            for _ in 0..n {
                                eng.post_cqe(next_cqe, 0, 0);
                                expected.push_back(next_cqe);
                                next_cqe += 1;
                            }
                        }
                        Op::PostAux(n) => {
                            for _ in 0..n {
                                let could = eng.backlog_len() == 0 && eng.cq_space() > 0;
                                let posted = eng.post_aux_cqe(next_cqe, 1, IORING_CQE_F_MORE);
                                prop_assert_eq!(posted, could);
                                if posted {
                                    expected.push_back(next_cqe);
                                    next_cqe += 1;
                                }
                            }
                        }
                        Op::Flush => { eng.flush_overflow(); }
                        Op::PeekConsume(n) => {
                            // liburing style: peek at several, then one advance, or
                            // one by one with cqe_seen.
                            let ready = app.cq_ready().min(u32::from(n));
                            for i in 0..ready {
                                let c = app.peek_cqe_at(i).unwrap();
                                prop_assert_eq!(Some(&c.user_data), expected.get(i as usize));
                            }
                            if n % 2 == 0 {
                                app.cq_advance(ready);
                                expected.drain(..ready as usize);
                            } else {
                                for _ in 0..ready {
                                    let c = app.peek_cqe().unwrap();
                                    prop_assert_eq!(Some(c.user_data), expected.pop_front());
                                    app.cqe_seen();
                                }
                            }
                        }
                        Op::Consume(n) => {
                            let mut out = vec![Cqe::default(); n as usize];
                            let got = app.copy_cqes(&mut out);
                            for c in &out[..got] {
                                prop_assert_eq!(Some(c.user_data), expected.pop_front());
                            }
                        }
                    }
                    // Invariants after every step.
                    let in_ring = app.cq_ready() as usize;
                    prop_assert_eq!(in_ring + eng.backlog_len(), expected.len());
                    prop_assert!(in_ring <= cq as usize);
                    prop_assert_eq!(app.cq_has_overflow(), eng.backlog_len() > 0);
                    prop_assert_eq!(app.sq_pending() + app.sq_space_left(), sq);
                }
                // Drain everything.
                loop {
                    eng.flush_overflow();
                    let mut out = vec![Cqe::default(); cq as usize];
                    let got = app.copy_cqes(&mut out);
                    if got == 0 { break; }
                    for c in &out[..got] {
                        prop_assert_eq!(Some(c.user_data), expected.pop_front());
                    }
                }
                prop_assert!(expected.is_empty());
                prop_assert!(!app.cq_has_overflow());
                prop_assert_eq!(app.stats().backlog_len, 0);
            }
        }
    }
}
