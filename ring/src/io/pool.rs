//! A provided-buffer pool that owns its memory ([`BufPool`]), the handle of a buffer
//! the engine filled ([`PoolBuf`], back to the ring on drop), and the owned buffers
//! requests take ([`Buf`]).

use core::cell::{Cell, RefCell};
use core::fmt;
use core::ops::{Deref, DerefMut};
use std::rc::Rc;

use crate::bufring::BufRing;
use crate::mem::Region;

/// The memory and ring of one buffer group. Shared (`Rc`) by the [`Io`](super::Io)
/// that registered it, the [`BufPool`] handles and every [`PoolBuf`]: the memory is
/// unmapped only when all of them are gone, and the `Io` keeps its reference until
/// the group is unregistered (or leaks it), so the engine never writes to unmapped
/// memory.
pub(crate) struct PoolInner {
    /// `count * size` bytes: buffer `bid` is `bid * size .. (bid + 1) * size`.
    region: Region,
    size: u32,
    count: u32,
    bgid: u16,
    ring: RefCell<BufRing>,
    /// Whether the application holds buffer `bid` (handed back by a CQE and not yet
    /// returned). Guards against an engine handing one buffer back twice: two handles
    /// to the same bytes would alias.
    out: RefCell<Vec<bool>>,
    /// Buffers in the ring (published, not handed back).
    in_ring: Cell<u32>,
}

impl PoolInner {
    pub(crate) fn new(
        ring: BufRing,
        bgid: u16,
        count: u32,
        size: u32,
    ) -> Result<Self, crate::app::Errno> {
        use crate::app::Errno;
        let len = (count as usize)
            .checked_mul(size as usize)
            .ok_or(Errno::EINVAL)?;
        let region = Region::new(len, crate::mem::HugePolicy::Auto).map_err(|_| Errno::ENOMEM)?;
        let pool = PoolInner {
            region,
            size,
            count,
            bgid,
            ring: RefCell::new(ring),
            out: RefCell::new(vec![true; count as usize]),
            in_ring: Cell::new(0),
        };
        for bid in 0..count {
            pool.give_back(bid as u16);
        }
        Ok(pool)
    }

    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    pub(crate) fn available(&self) -> u32 {
        self.in_ring.get()
    }

    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    fn addr(&self, bid: u16) -> *mut u8 {
        // In bounds: bid < count (checked by every caller), the region holds count * size.
        self.region
            .as_ptr()
            .wrapping_add(usize::from(bid) * self.size as usize)
    }

    /// Returns buffer `bid` to the ring (its handle is gone).
    fn give_back(&self, bid: u16) {
        let mut out = self.out.borrow_mut();
        debug_assert!(out[usize::from(bid)], "buffer {bid} returned twice");
        out[usize::from(bid)] = false;
        drop(out);
        // The application gave up the buffer (its only handle dropped, or never handed
        // out); every buffer is in the ring at most once (`out` tracks it), so the slot
        // refilled is the one at the tail, which the engine consumed.
        // SAFETY: `bid < count`: inside the region, which outlives the group's registration
        // (the `Io` unregisters before dropping its reference, or leaks it); nothing
        // accesses the buffer until a CQE hands it back.
        unsafe {
            self.ring
                .borrow_mut()
                .add_and_advance(self.addr(bid) as u64, self.size, bid)
        };
        self.in_ring.set(self.in_ring.get() + 1);
    }

    /// Takes buffer `bid`, which a CQE handed back with `len` bytes received, as a
    /// handle. `None` if the id is out of range or the buffer is already out (a
    /// misbehaving engine): no handle is made then.
    pub(crate) fn claim(self: &Rc<Self>, bid: u16, len: u32) -> Option<PoolBuf> {
        if u32::from(bid) >= self.count {
            return None;
        }
        let mut out = self.out.borrow_mut();
        if out[usize::from(bid)] {
            return None;
        }
        out[usize::from(bid)] = true;
        self.in_ring.set(self.in_ring.get().saturating_sub(1));
        Some(PoolBuf {
            pool: self.clone(),
            bid,
            len: len.min(self.size),
        })
    }
}

/// A provided-buffer group (`IORING_REGISTER_PBUF_RING`) that owns its buffers:
/// `count` buffers of `size` bytes in one mapping, all in the ring at first.
///
/// A receive that selects from the group ([`op::RecvMulti`](super::op::RecvMulti),
/// [`op::RecvSelect`](super::op::RecvSelect)) completes with a [`PoolBuf`] holding the
/// data; dropping the `PoolBuf` gives the buffer back to the ring. No `unsafe` anywhere
/// in the application: the pool is the only code that hands its memory to the engine,
/// and only buffers no handle refers to. Made by
/// [`Io::register_pool`](super::Io::register_pool); cheap to clone.
#[derive(Clone)]
pub struct BufPool(pub(crate) Rc<PoolInner>);

impl BufPool {
    /// The buffer group id (`bgid`) receives name.
    pub fn bgid(&self) -> u16 {
        self.0.bgid
    }

    /// Size of each buffer.
    pub fn buffer_size(&self) -> u32 {
        self.0.size
    }

    /// Number of buffers.
    pub fn count(&self) -> u32 {
        self.0.count
    }

    /// Buffers in the ring now (available to the engine).
    pub fn available(&self) -> u32 {
        self.0.in_ring.get()
    }
}

impl fmt::Debug for BufPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufPool")
            .field("bgid", &self.0.bgid)
            .field("count", &self.0.count)
            .field("size", &self.0.size)
            .field("available", &self.0.in_ring.get())
            .finish()
    }
}

/// A provided buffer the engine filled, handed back by a CQE: the received bytes
/// (`Deref<Target = [u8]>`). Dropping it gives the buffer back to its pool's ring;
/// sending it ([`op::Send`](super::op::Send)) moves it into the request, and it goes
/// back when the send completes and the returned [`Buf`] is dropped.
pub struct PoolBuf {
    pool: Rc<PoolInner>,
    bid: u16,
    len: u32,
}

impl PoolBuf {
    /// The buffer id.
    pub fn bid(&self) -> u16 {
        self.bid
    }

    /// Shortens the data to `len` bytes (no effect if it is not shorter).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len as u32);
    }

    pub(crate) fn raw(&self) -> (*mut u8, u32) {
        (self.pool.addr(self.bid), self.len)
    }
}

impl Deref for PoolBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        let (ptr, len) = self.raw();
        // The CQE that made this handle handed the buffer back; it returns to the ring
        // only when this handle drops, and the pool's `out` flags refuse a second handle.
        // SAFETY: inside the pool's region (bid < count, len <= size), which the Rc keeps
        // mapped; the engine does not write it while this only handle lives.
        unsafe { core::slice::from_raw_parts(ptr, len as usize) }
    }
}

impl DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        let (ptr, len) = self.raw();
        // SAFETY: as in `deref`; `&mut self` makes the access unique.
        unsafe { core::slice::from_raw_parts_mut(ptr, len as usize) }
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        self.pool.give_back(self.bid);
    }
}

impl fmt::Debug for PoolBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuf")
            .field("bgid", &self.pool.bgid)
            .field("bid", &self.bid)
            .field("len", &self.len)
            .finish()
    }
}

/// A buffer a request owns while it is in flight, handed back by its final
/// completion ([`Completion::take_buf`](super::Completion::take_buf)): a `Vec<u8>`
/// (also from a `Box<[u8]>`, without copying) or a [`PoolBuf`].
pub enum Buf {
    /// Heap memory.
    Vec(Vec<u8>),
    /// A provided buffer.
    Pool(PoolBuf),
}

impl Buf {
    /// Start and length of the bytes (the `Vec`'s length, the `PoolBuf`'s data).
    /// Heap data does not move when the `Buf` moves, so the pointer stays valid while
    /// a request holds it.
    pub(crate) fn raw(&mut self) -> (*mut u8, usize) {
        match self {
            Buf::Vec(v) => (v.as_mut_ptr(), v.len()),
            Buf::Pool(p) => {
                let (ptr, len) = p.raw();
                (ptr, len as usize)
            }
        }
    }

    /// The `Vec`, if it is one.
    pub fn into_vec(self) -> Option<Vec<u8>> {
        match self {
            Buf::Vec(v) => Some(v),
            Buf::Pool(_) => None,
        }
    }
}

impl Deref for Buf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Buf::Vec(v) => v,
            Buf::Pool(p) => p,
        }
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Buf::Vec(v) => v,
            Buf::Pool(p) => p,
        }
    }
}

impl From<Vec<u8>> for Buf {
    fn from(v: Vec<u8>) -> Self {
        Buf::Vec(v)
    }
}

impl From<Box<[u8]>> for Buf {
    fn from(b: Box<[u8]>) -> Self {
        Buf::Vec(b.into_vec())
    }
}

impl From<PoolBuf> for Buf {
    fn from(p: PoolBuf) -> Self {
        Buf::Pool(p)
    }
}

impl fmt::Debug for Buf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Buf::Vec(v) => f.debug_tuple("Vec").field(&v.len()).finish(),
            Buf::Pool(p) => p.fmt(f),
        }
    }
}
