//! One Ethernet port with N RX/TX queue pairs, one [`DpdkQueue`] per pair,
//! each driven by its own engine on its own thread.
//!
//! # Which engine gets a frame
//!
//! The port is configured without hardware RSS: ringline does not program a
//! device's Toeplitz key and redirection table yet, and the virtual devices
//! it is tested on have none to program (`net_tap`'s queue is chosen by the
//! kernel's own flow hash, `net_memif`'s and `net_ring`'s by the sender). So
//! every queue dispatches in software: a frame received on queue `i` whose
//! flow [`crate::rss::dispatch`] maps to queue `j != i` is handed to queue
//! `j`'s engine through a single-producer, single-consumer queue (one per
//! ordered pair of queues, [`HANDOFF_SLOTS`] mbufs). On a NIC that puts
//! everything on queue 0 (no RSS), queue 0's engine dispatches every frame;
//! ARP and anything else that is not IPv4/TCP belongs to queue 0. The
//! hand-over costs a hash of the headers per frame and, for a frame that
//! crossed, a cache miss on the other core.
//!
//! # Threads and lifetimes
//!
//! [`MultiPort`] stays on the thread that opened it (it holds the pool and
//! the EAL handle, which are not `Send`); [`MultiPort::queues`] lends out the
//! queues, which are `Send` and borrow the port, so every queue is gone before
//! the port can be stopped (use `std::thread::scope`). The pool must have no
//! per-lcore cache in use by the engine threads (they are not EAL lcores, so
//! DPDK gives them none) and the default multi-producer, multi-consumer
//! operations: mbufs are allocated and freed from every engine thread.

use std::ptr::{self, NonNull};

use rtrb::{Consumer, Producer, RingBuffer};

use ringline_dpdk_sys as sys;

use super::eal::Eal;
use super::error::{port_error, DpdkError};
use super::mempool::{Mbuf, Mempool};
use super::offload::{prepare_tx_checksum, ETH_HLEN};
use super::port::{start_port, PortConfig};
use crate::nic::{MacAddr, Nic, NicCaps, NicCounters, TxError, RX_BURST};

/// Mbufs in flight from one queue to another before frames are dropped
/// (counted in the receiving queue's `rx_dropped`).
pub const HANDOFF_SLOTS: usize = 256;

/// What every queue reads: the port, its pool, its capabilities.
struct Shared {
    port_id: u16,
    pool: NonNull<sys::rte_mempool>,
    queues: u16,
    caps: NicCaps,
    driver: String,
    rx_checksum: bool,
    tx_checksum: bool,
    tx_batch: usize,
}

// `pool` is a DPDK mempool with multi-producer, multi-consumer operations
// (the MultiPort keeps it alive while any queue borrows this); the rest is
// plain data.
// SAFETY: any thread may allocate from and free to such a pool, and
// per-queue device calls are made only by the queue's owner.
unsafe impl Sync for Shared {}

/// An mbuf on its way from one queue's thread to another's (see the module
/// docs): owned, freed if dropped on the way.
struct Handoff(NonNull<sys::rte_mbuf>);

// SAFETY: the mbuf is owned by this value alone (taken from rx_burst, refcnt
// 1) and its pool may be used from any thread (module docs), so moving it to
// another thread moves its ownership with it.
unsafe impl Send for Handoff {}

impl Drop for Handoff {
    fn drop(&mut self) {
        // SAFETY: this value owns the mbuf (see the Send impl) and it is not
        // used again.
        unsafe { sys::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl Handoff {
    fn into_mbuf(self) -> Mbuf {
        let raw = self.0;
        std::mem::forget(self);
        // SAFETY: the handoff owned the mbuf (refcnt 1, direct, single
        // segment as the PMD delivered it) and gives ownership to the Mbuf;
        // its pool outlives it (the MultiPort holds the pool while queues live).
        unsafe { Mbuf::from_raw(raw) }
    }
}

/// A started port with N queue pairs; see the module docs.
pub struct MultiPort {
    shared: Shared,
    /// Keeps the pool (and through it the EAL) alive while the port runs;
    /// dropped after the port is stopped (field order).
    _pool: Mempool,
    _eal: Eal,
}

impl std::fmt::Debug for MultiPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiPort")
            .field("port_id", &self.shared.port_id)
            .field("driver", &self.shared.driver)
            .field("queues", &self.shared.queues)
            .finish_non_exhaustive()
    }
}

impl MultiPort {
    /// Configures and starts port `port_id` with `queues` RX/TX queue pairs,
    /// receiving into `pool` (which must hold the descriptors of every queue,
    /// its TX batch and the hand-over queues between them).
    pub fn open(
        eal: &Eal,
        port_id: u16,
        pool: &Mempool,
        config: &PortConfig,
        queues: u16,
    ) -> Result<MultiPort, DpdkError> {
        if queues == 0 || queues > crate::rss::MAX_QUEUES {
            return Err(DpdkError::Config("queues must be 1..=64"));
        }
        let q = usize::from(queues);
        let started = start_port(
            eal,
            port_id,
            pool,
            config,
            queues,
            q * (q - 1) * HANDOFF_SLOTS,
        )?;
        Ok(MultiPort {
            shared: Shared {
                port_id,
                pool: NonNull::new(pool.as_ptr()).ok_or(DpdkError::Config("null pool"))?,
                queues,
                caps: started.caps,
                driver: started.driver,
                rx_checksum: started.rx_checksum,
                tx_checksum: started.tx_checksum,
                tx_batch: config.tx_batch,
            },
            _pool: pool.clone(),
            _eal: eal.clone(),
        })
    }

    /// Sets the port's MAC address; do it before the queues' engines open.
    pub fn set_mac(&mut self, mac: MacAddr) -> Result<(), DpdkError> {
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(DpdkError::Config(
                "a port MAC must be a non-zero unicast address",
            ));
        }
        let mut addr = sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: the port is valid and started; addr is a live rte_ether_addr.
        let ret = unsafe { sys::rte_eth_dev_default_mac_addr_set(self.shared.port_id, &mut addr) };
        if ret != 0 {
            return Err(port_error(
                self.shared.port_id,
                "rte_eth_dev_default_mac_addr_set",
                ret,
            ));
        }
        self.shared.caps.mac = mac;
        Ok(())
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.shared.port_id
    }

    /// The driver's name.
    pub fn driver(&self) -> &str {
        &self.shared.driver
    }

    /// The port's capabilities (the same for every queue).
    pub fn caps(&self) -> NicCaps {
        self.shared.caps
    }

    /// The queue pairs, queue `i` at index `i`, joined by the hand-over
    /// queues. They borrow the port: all are gone before it stops.
    pub fn queues(&mut self) -> Vec<DpdkQueue<'_>> {
        let n = usize::from(self.shared.queues);
        let mut outs: Vec<Vec<Option<Producer<Handoff>>>> =
            (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
        let mut ins: Vec<Vec<Consumer<Handoff>>> = (0..n).map(|_| Vec::new()).collect();
        for (from, outs) in outs.iter_mut().enumerate() {
            for (to, slot) in outs.iter_mut().enumerate() {
                if from != to {
                    let (p, c) = RingBuffer::new(HANDOFF_SLOTS);
                    *slot = Some(p);
                    ins[to].push(c);
                }
            }
        }
        let shared = &self.shared;
        outs.into_iter()
            .zip(ins)
            .enumerate()
            .map(|(i, (outs, ins))| DpdkQueue {
                shared,
                queue: i as u16,
                outs,
                ins,
                tx_batch: Vec::with_capacity(shared.tx_batch),
                tx_lens: Vec::with_capacity(shared.tx_batch),
                tx_reserve: None,
                counters: NicCounters::default(),
                handed_over: 0,
            })
            .collect()
    }
}

impl Drop for MultiPort {
    fn drop(&mut self) {
        // No queue is left (they borrow the port). Return frames still
        // waiting in the RX queues to the pool, bounded, then stop.
        let mut raw = [ptr::null_mut::<sys::rte_mbuf>(); RX_BURST];
        for q in 0..self.shared.queues {
            for _ in 0..1024 {
                // SAFETY: the port is started with this RX queue; raw has
                // RX_BURST slots; no queue object uses it any more.
                let n = unsafe {
                    sys::rte_eth_rx_burst(self.shared.port_id, q, raw.as_mut_ptr(), RX_BURST as u16)
                };
                if n == 0 {
                    break;
                }
                for &m in &raw[..usize::from(n)] {
                    // SAFETY: received mbufs are owned by the caller; freed once.
                    unsafe { sys::rte_pktmbuf_free(m) };
                }
            }
        }
        // SAFETY: the port is valid and started; nothing uses it after this.
        unsafe {
            sys::rte_eth_dev_stop(self.shared.port_id);
            sys::rte_eth_dev_close(self.shared.port_id);
        }
    }
}

/// One queue pair of a [`MultiPort`], for one engine: what it receives is
/// its own queue's frames of its flows plus what the other queues hand over;
/// what it sends goes out on its own TX queue.
pub struct DpdkQueue<'a> {
    shared: &'a Shared,
    queue: u16,
    /// To each other queue (`None` at this queue's own index).
    outs: Vec<Option<Producer<Handoff>>>,
    /// From each other queue.
    ins: Vec<Consumer<Handoff>>,
    /// Built frames not yet taken by the device, oldest first (owned mbufs).
    tx_batch: Vec<*mut sys::rte_mbuf>,
    /// The length of each frame in `tx_batch` (read before the device may
    /// free it).
    tx_lens: Vec<u32>,
    tx_reserve: Option<Mbuf>,
    counters: NicCounters,
    handed_over: u64,
}

// A queue owns its mbufs (tx_batch, tx_reserve, the hand-over queues'
// contents); moving it to another thread moves all of that with it.
// SAFETY: it is the only user of its RX/TX queue pair; the pool may be
// used from any thread and the shared part is Sync (see `Shared`).
unsafe impl Send for DpdkQueue<'_> {}

impl std::fmt::Debug for DpdkQueue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkQueue")
            .field("port_id", &self.shared.port_id)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl DpdkQueue<'_> {
    /// This queue's index and the port's number of queue pairs.
    pub fn queue(&self) -> (u16, u16) {
        (self.queue, self.shared.queues)
    }

    /// Frames this queue received that belonged to another queue's flows and
    /// were handed over to it.
    pub fn handed_over(&self) -> u64 {
        self.handed_over
    }

    /// The driver's name.
    pub fn driver(&self) -> &str {
        &self.shared.driver
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.shared.port_id
    }

    fn accept(&self, mbuf: &Mbuf) -> bool {
        if mbuf.segments() != 1 || mbuf.pkt_len() != mbuf.len() {
            return false;
        }
        if self.shared.rx_checksum {
            let bad = sys::RTE_MBUF_F_RX_IP_CKSUM_BAD | sys::RTE_MBUF_F_RX_L4_CKSUM_BAD;
            if mbuf.ol_flags() & bad != 0 {
                return false;
            }
        }
        true
    }

    fn take(&mut self, mbuf: Mbuf, out: &mut Vec<Mbuf>) -> bool {
        if self.accept(&mbuf) {
            self.counters.rx_frames += 1;
            self.counters.rx_bytes += mbuf.len() as u64;
            out.push(mbuf);
            true
        } else {
            self.counters.rx_dropped += 1;
            false
        }
    }

    fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is a live pktmbuf pool usable from any thread
        // (see `Shared`).
        let raw = unsafe { sys::rte_pktmbuf_alloc(self.shared.pool.as_ptr()) };
        // SAFETY: a fresh mbuf is direct, refcnt 1 and held by no one else.
        NonNull::new(raw).map(|raw| unsafe { Mbuf::from_raw(raw) })
    }
}

impl Nic for DpdkQueue<'_> {
    type Frame = Mbuf;

    fn caps(&self) -> NicCaps {
        self.shared.caps
    }

    /// First what other queues handed over, then this queue's own frames,
    /// each of another queue's flows handed over to it.
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let mut room = max.min(RX_BURST).min(out.capacity() - out.len());
        let mut taken = 0;
        for i in 0..self.ins.len() {
            while room > 0 {
                let Ok(h) = self.ins[i].pop() else { break };
                room -= 1;
                let m = h.into_mbuf();
                taken += usize::from(self.take(m, out));
            }
        }
        if room == 0 {
            return taken;
        }
        let mut raw = [ptr::null_mut::<sys::rte_mbuf>(); RX_BURST];
        let (port, q) = (self.shared.port_id, self.queue);
        // SAFETY: the port is started with this RX queue; raw has room for
        // `room` <= RX_BURST pointers; this queue object is the queue's only
        // user (one per queue, &mut self).
        let n = unsafe { sys::rte_eth_rx_burst(port, q, raw.as_mut_ptr(), room as u16) };
        for &m in &raw[..usize::from(n)] {
            let Some(m) = NonNull::new(m) else { continue };
            // SAFETY: rte_eth_rx_burst hands each returned mbuf to the
            // caller: direct, refcnt 1, from the port's pool, which outlives it.
            let mbuf = unsafe { Mbuf::from_raw(m) };
            let to = crate::rss::dispatch(mbuf.data(), self.shared.queues);
            if to == self.queue {
                taken += usize::from(self.take(mbuf, out));
                continue;
            }
            self.handed_over += 1;
            let h = Handoff(mbuf.into_raw());
            if let Some(Some(p)) = self.outs.get_mut(usize::from(to)) {
                // Full: the frame is dropped (freed) and counted; TCP sends
                // it again.
                if p.push(h).is_err() {
                    self.counters.rx_dropped += 1;
                }
            }
        }
        taken
    }

    fn rx_release(&mut self, frame: Mbuf) {
        drop(frame);
    }

    fn tx_frame(&mut self, len: usize, build: &mut dyn FnMut(&mut [u8])) -> Result<(), TxError> {
        if len > self.shared.caps.mtu + ETH_HLEN {
            return Err(TxError::TooBig(len));
        }
        if self.tx_batch.len() == self.shared.tx_batch {
            self.tx_flush();
            if self.tx_batch.len() == self.shared.tx_batch {
                self.counters.tx_dropped += 1;
                return Err(TxError::Full);
            }
        }
        let Some(mut mbuf) = self.tx_reserve.take().or_else(|| self.alloc()) else {
            self.counters.tx_dropped += 1;
            return Err(TxError::Full);
        };
        let Some(data) = mbuf.append(len) else {
            return Err(TxError::TooBig(len));
        };
        build(data);
        if self.shared.tx_checksum {
            if let Some(off) = prepare_tx_checksum(mbuf.data_mut()) {
                mbuf.set_tx_offload(off.ol_flags, off.l2_len, off.l3_len);
            }
        }
        self.tx_batch.push(mbuf.into_raw().as_ptr());
        self.tx_lens.push(len as u32);
        Ok(())
    }

    fn tx_ready(&mut self) -> bool {
        if self.tx_batch.len() == self.shared.tx_batch {
            self.tx_flush();
        }
        if self.tx_reserve.is_none() {
            self.tx_reserve = self.alloc();
        }
        self.tx_batch.len() < self.shared.tx_batch && self.tx_reserve.is_some()
    }

    fn tx_flush(&mut self) -> usize {
        if self.tx_batch.is_empty() {
            return 0;
        }
        let n = self.tx_batch.len() as u16;
        let (port, q, batch) = (self.shared.port_id, self.queue, self.tx_batch.as_mut_ptr());
        // SAFETY: the port is started with this TX queue; tx_batch holds n
        // owned mbufs, the device takes the first `sent` and the rest stay
        // ours; only this queue object uses the TX queue.
        let sent = unsafe { sys::rte_eth_tx_burst(port, q, batch, n) };
        let sent_bytes: u64 = self.tx_lens.drain(..usize::from(sent)).map(u64::from).sum();
        self.counters.tx_bytes += sent_bytes;
        self.counters.tx_frames += u64::from(sent);
        self.tx_batch.drain(..usize::from(sent));
        usize::from(sent)
    }

    /// This queue's own counts (frames it took, including those handed
    /// over to it; frames it sent); queue 0 adds the port's device-level
    /// drops, so they are counted once.
    fn counters(&self) -> NicCounters {
        let mut c = self.counters;
        c.rx_handed_over = self.handed_over;
        if self.queue == 0 {
            let mut hw = sys::rte_eth_stats::default();
            // SAFETY: the port is valid; hw is writable.
            if unsafe { sys::rte_eth_stats_get(self.shared.port_id, &mut hw) } == 0 {
                c.rx_dropped += hw.imissed + hw.ierrors + hw.rx_nombuf;
                c.tx_dropped += hw.oerrors;
            }
        }
        c
    }
}

impl Drop for DpdkQueue<'_> {
    fn drop(&mut self) {
        drop(self.tx_reserve.take());
        for m in self.tx_batch.drain(..) {
            // SAFETY: every pointer in tx_batch is an mbuf this queue owns
            // and the device never took; each is freed once.
            unsafe { sys::rte_pktmbuf_free(m) };
        }
        // What others handed over and this queue never took is freed with
        // the hand-over queues (`Handoff`'s drop).
    }
}
