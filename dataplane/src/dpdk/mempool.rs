//! Packet buffer pools (`rte_mempool` of `rte_mbuf`) and owned mbufs.

use std::ffi::CString;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::rc::Rc;

use ringline_dpdk_sys as sys;

use super::eal::Eal;
use super::error::{last_rte_errno, strerror, DpdkError};

/// How to size a [`Mempool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Number of mbufs. DPDK is most memory-efficient at 2^n - 1.
    pub mbufs: u32,
    /// Per-lcore cache of free mbufs (0 for none; at most 512 and mbufs / 1.5).
    pub cache_size: u32,
    /// Bytes per mbuf, headroom included ([`sys::RTE_PKTMBUF_HEADROOM`]).
    /// The default, `RTE_MBUF_DEFAULT_BUF_SIZE`, holds a 1514-byte frame.
    pub data_room: u16,
    /// NUMA socket for the memory; `None` for any (use the port's socket
    /// for best locality: `DpdkPort::socket_of`).
    pub socket: Option<u32>,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            mbufs: 8191,
            cache_size: 256,
            data_room: sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            socket: None,
        }
    }
}

/// A pool of packet buffers (`rte_pktmbuf_pool_create`). Cheap to clone (a
/// handle); the pool is freed when the last handle is dropped.
///
/// If mbufs from the pool are still alive at that point (an [`Mbuf`] kept
/// past its port and pool), freeing the pool would leave them dangling, so
/// the pool, and the EAL with it, are deliberately leaked instead.
#[derive(Clone)]
pub struct Mempool {
    inner: Rc<PoolInner>,
}

struct PoolInner {
    raw: NonNull<sys::rte_mempool>,
    mbufs: u32,
    data_room: u16,
    name: String,
    /// Dropped only if the pool is freed (see [`Mempool`]).
    eal: ManuallyDrop<Eal>,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("mbufs", &self.inner.mbufs)
            .field("available", &self.available())
            .finish()
    }
}

impl Mempool {
    /// Creates a pool named `name` (unique in the process).
    pub fn new(eal: &Eal, name: &str, config: &MempoolConfig) -> Result<Mempool, DpdkError> {
        let c_name =
            CString::new(name).map_err(|_| DpdkError::Config("mempool name contains NUL"))?;
        if u32::from(config.data_room) <= sys::RTE_PKTMBUF_HEADROOM {
            return Err(DpdkError::Config(
                "mbuf data room must exceed RTE_PKTMBUF_HEADROOM",
            ));
        }
        let socket = config.socket.map_or(sys::SOCKET_ID_ANY, |s| s as i32);
        // SAFETY: the EAL is initialised (eal exists); c_name is NUL-terminated
        // and outlives the call (DPDK copies it). Arguments out of range make
        // DPDK fail with rte_errno set, which is handled below.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                config.mbufs,
                config.cache_size,
                0,
                config.data_room,
                socket,
            )
        };
        let Some(raw) = NonNull::new(raw) else {
            let errno = last_rte_errno();
            return Err(DpdkError::Mempool {
                name: name.to_owned(),
                errno,
                message: strerror(errno),
            });
        };
        Ok(Mempool {
            inner: Rc::new(PoolInner {
                raw,
                mbufs: config.mbufs,
                data_room: config.data_room,
                name: name.to_owned(),
                eal: ManuallyDrop::new(eal.clone()),
            }),
        })
    }

    /// Mbufs free in the pool (including those in per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: raw is a live pool (freed only when the last handle drops).
        unsafe { sys::rte_mempool_avail_count(self.inner.raw.as_ptr()) }
    }

    /// Mbufs taken from the pool and not yet returned.
    pub fn in_use(&self) -> u32 {
        // SAFETY: raw is a live pool.
        unsafe { sys::rte_mempool_in_use_count(self.inner.raw.as_ptr()) }
    }

    /// Total mbufs in the pool.
    pub fn capacity(&self) -> u32 {
        self.inner.mbufs
    }

    /// Bytes per mbuf, headroom included.
    pub fn data_room(&self) -> u16 {
        self.inner.data_room
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The underlying `rte_mempool`, valid while any handle lives.
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.raw.as_ptr()
    }

    /// Takes one mbuf from the pool (`rte_pktmbuf_alloc`), empty, with the
    /// default headroom. `None` when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: raw is a live pktmbuf pool.
        let raw = unsafe { sys::rte_pktmbuf_alloc(self.inner.raw.as_ptr()) };
        // SAFETY: a freshly allocated mbuf is direct, has refcnt 1 and nobody
        // else holds it: ownership passes to the Mbuf.
        NonNull::new(raw).map(|raw| unsafe { Mbuf::from_raw(raw) })
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: raw is a live pool; this is its last handle.
        let available = unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) };
        if available < self.mbufs {
            // Mbufs are still out (held by the application or stranded in a
            // device ring). Keep the pool and the EAL alive for them.
            return;
        }
        // SAFETY: every mbuf is back in the pool, no port uses it (ports hold
        // a handle), and this is the last handle: nothing refers to it.
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) };
        // SAFETY: dropped exactly once, here; the field is not used after.
        unsafe { ManuallyDrop::drop(&mut self.eal) };
    }
}

/// One owned packet buffer (`rte_mbuf`), freed (`rte_pktmbuf_free`) on drop.
///
/// Invariant: the mbuf is a single-segment direct mbuf whose data nobody else
/// reads or writes (refcnt 1), as mbufs from `rte_pktmbuf_alloc` and from a
/// PMD's receive path are. Not `Send`: it belongs to the engine thread.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    ///
    /// `raw` must point to a live mbuf that the caller owns (it will be freed
    /// by this `Mbuf`), that no one else reads or writes while this `Mbuf`
    /// lives (refcnt 1, direct), whose pool outlives it.
    pub unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives up ownership, for example to hand the mbuf to `rte_eth_tx_burst`.
    /// The caller becomes responsible for freeing it.
    #[must_use = "the mbuf leaks unless it is freed or transmitted"]
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    /// The raw mbuf, still owned by `self`.
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.raw.as_ptr()
    }

    /// Bytes of data in the first segment (`data_len`).
    pub fn len(&self) -> usize {
        // SAFETY: raw is a live mbuf owned by self.
        usize::from(unsafe { sys::rte_pktmbuf_data_len(self.raw.as_ptr()) })
    }

    /// True if the mbuf holds no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of data in the whole chain (`pkt_len`); equals [`Mbuf::len`]
    /// for a single-segment mbuf.
    pub fn pkt_len(&self) -> usize {
        // SAFETY: raw is a live mbuf owned by self.
        unsafe { sys::rte_pktmbuf_pkt_len(self.raw.as_ptr()) as usize }
    }

    /// Number of segments in the chain.
    pub fn segments(&self) -> u16 {
        // SAFETY: raw is a live mbuf owned by self.
        unsafe { sys::rte_pktmbuf_nb_segs(self.raw.as_ptr()) }
    }

    /// Offload flags (`ol_flags`): checksum status on receive, requests on transmit.
    pub fn ol_flags(&self) -> u64 {
        // SAFETY: raw is a live mbuf owned by self.
        unsafe { sys::rte_mbuf_ol_flags(self.raw.as_ptr()) }
    }

    /// The first segment's data (`rte_pktmbuf_mtod`, `data_len` bytes).
    pub fn data(&self) -> &[u8] {
        let len = self.len();
        if len == 0 {
            return &[];
        }
        // SAFETY: mtod points at data_len initialised bytes inside the mbuf's
        // buffer, which lives as long as self; nobody writes them meanwhile
        // (Mbuf invariant), and &self keeps this crate from writing them.
        unsafe {
            std::slice::from_raw_parts(sys::rte_pktmbuf_mtod(self.raw.as_ptr()).cast::<u8>(), len)
        }
    }

    /// The first segment's data, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        if len == 0 {
            return &mut [];
        }
        // SAFETY: as in `data`, and &mut self makes the access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(
                sys::rte_pktmbuf_mtod(self.raw.as_ptr()).cast::<u8>(),
                len,
            )
        }
    }

    /// Extends the data by `len` bytes at the tail (`rte_pktmbuf_append`) and
    /// returns them. `None` (and nothing changed) if the tailroom is short.
    /// The bytes are the buffer's old contents, not zeroed.
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        let len16 = u16::try_from(len).ok()?;
        // SAFETY: raw is a live single-segment mbuf owned exclusively by self;
        // rte_pktmbuf_append returns NULL without changing it if len16 does
        // not fit the tailroom.
        let tail = unsafe { sys::rte_pktmbuf_append(self.raw.as_ptr(), len16) };
        let tail = NonNull::new(tail)?;
        if len == 0 {
            return Some(&mut []);
        }
        // SAFETY: DPDK just extended data_len by len, so these len bytes lie
        // inside the mbuf's buffer, owned exclusively by self. They may hold
        // stale data but every u8 pattern is valid.
        Some(unsafe { std::slice::from_raw_parts_mut(tail.as_ptr().cast::<u8>(), len) })
    }

    /// Sets the transmit offload request: `ol_flags` and the header lengths
    /// the NIC needs to find the IP and TCP headers.
    pub fn set_tx_offload(&mut self, ol_flags: u64, l2_len: u16, l3_len: u16) {
        // SAFETY: raw is a live mbuf owned exclusively by self; these are
        // plain field stores (the l2/l3 lengths into their bitfields).
        unsafe {
            sys::rte_mbuf_set_ol_flags(self.raw.as_ptr(), ol_flags);
            sys::rte_mbuf_set_l2_len(self.raw.as_ptr(), l2_len);
            sys::rte_mbuf_set_l3_len(self.raw.as_ptr(), l3_len);
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf (invariant) and it is not used again.
        unsafe { sys::rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

impl AsRef<[u8]> for Mbuf {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl AsMut<[u8]> for Mbuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("segments", &self.segments())
            .finish()
    }
}
