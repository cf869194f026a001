//! The in-memory loopback wire: two [`LoopbackPort`]s joined back to back, so
//! two engines can talk with no NIC, no DPDK and no kernel.
//!
//! # How a frame travels
//!
//! Each direction (A→B and B→A) owns every buffer it will ever use: at most
//! `frames_per_direction`, each allocated once, the first time the sender
//! needs one more than it has (so a port that never has many frames in
//! flight never allocates the rest). The sender keeps the empty ones on a
//! private stack; two lock-free bounded single-producer, single-consumer
//! rings join the ports:
//!
//! ```text
//!   ┌─► A's spare stack (LIFO) ◄── A.tx_flush: reclaim ◄── return queue ◄─┐
//!   │                                                                     │
//! A.tx_frame: pop top buffer, build ─► A's tx batch ─► A.tx_flush ─► wire queue
//!                                                                     │
//!                          B.rx_burst: pop filled frames ◄────────────┘
//!                          B.rx_release: buffer ──────────────► return queue
//! ```
//!
//! The spare stack is last in, first out, like the per-core cache of a DPDK
//! mempool: the buffer a frame is built in is the one most recently returned,
//! still in cache, so a wire with thousands of buffers touches only as many
//! as are in flight. (A first-in, first-out free list would cycle through
//! all of them and miss the cache on every frame.)
//!
//! Nothing is allocated per frame once a buffer exists: buffers only move between the spare
//! stack, the sender's batch, the wire queue, the receiver's hands and the
//! return queue. The rings are [`rtrb`]'s: exactly one port writes each and
//! one reads it, so a whole TX batch is published with one index store and a
//! whole RX burst consumed with one, and each side caches the other's index
//! instead of touching its cache line on every frame. The two ports may live
//! on two threads (each port is `Send` and used by one thread at a time), or
//! both on one thread with two engines stepped in turn.
//!
//! # What the wire does not do
//!
//! The wire is lossless and in order, and it copies no bytes after the sender
//! builds a frame: it cannot corrupt one. It does not look at MAC addresses
//! either; whatever port A sends, port B receives. For loss, duplication and
//! reordering wrap a port in [`crate::FaultyNic`].
//!
//! When the receiver cannot keep up, the wire queue fills and
//! [`Nic::tx_flush`] sends only part of the sender's batch; the rest stays in
//! the batch for the next flush (backpressure, never loss). When every buffer
//! of a direction is in flight, [`Nic::tx_frame`] returns [`TxError::Full`]
//! until the receiver releases some.
//!
//! # Waking a sleeping receiver
//!
//! A receiver that wants to block ([`Nic::rx_arm`]) leaves a waker on its
//! receiving port's [`Bell`]; a sender rings it when it publishes frames. The
//! sender pays one full fence and one load per published burst, and takes
//! the bell's lock only when the receiver is armed.

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;

use rtrb::{Consumer, Producer, RingBuffer};

use crate::nic::{MacAddr, Nic, NicCaps, NicCounters, RxArm, TxError, RX_BURST};

/// Length of the Ethernet header every frame starts with (no VLAN tag).
const ETH_HEADER_LEN: usize = 14;

/// Smallest L3 MTU [`LoopbackWire::pair`] accepts (IPv4's minimum, RFC 791).
pub const MIN_MTU: usize = 68;

/// Largest L3 MTU [`LoopbackWire::pair`] accepts: the largest IPv4 packet,
/// for carrying large segments as Linux's `lo` does (MTU 65536).
pub const MAX_MTU: usize = 65535;

/// How many built frames a port keeps before they must be flushed; the
/// size of one TX burst.
pub const TX_BATCH: usize = 64;

/// Shape of a loopback wire, given to [`LoopbackWire::pair`].
///
/// Build it from [`WireConfig::default`] and change what you need
/// (`WireConfig { mtu: 9000, ..WireConfig::default() }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireConfig {
    /// L3 MTU: the largest IP packet a frame may carry. Every buffer is
    /// `mtu + 14` bytes. Default 1500. Up to [`MAX_MTU`] (65535), so the wire
    /// can carry large segments as Linux loopback does; with a large MTU,
    /// lower `frames_per_direction`, since every buffer is allocated up front
    /// (zeroed memory is mapped lazily, but buffers are reused round-robin and
    /// end up resident).
    pub mtu: usize,
    /// Frame buffers per direction, all allocated by [`LoopbackWire::pair`]:
    /// the most frames that can be in flight from one port to the other
    /// (queued by the sender, on the wire, or held by the receiver).
    /// Default 8192.
    pub frames_per_direction: usize,
    /// Slots in each direction's wire queue (the receiver's RX ring): the most
    /// flushed frames the receiver has not yet taken with `rx_burst`. `None`
    /// (the default) means `frames_per_direction`, so a flush is only partial
    /// when the receiver holds nothing back; a smaller value makes the sender
    /// feel backpressure sooner.
    pub wire_queue_len: Option<usize>,
    /// MAC address of port A, the first port [`LoopbackWire::pair`] returns.
    /// Default 02:00:00:00:00:01 (locally administered).
    pub mac_a: MacAddr,
    /// MAC address of port B, the second port. Default 02:00:00:00:00:02.
    pub mac_b: MacAddr,
    /// Whether both ports report RX and TX checksum offload in
    /// [`NicCaps`]. Default `true`: the wire moves bytes without copying or
    /// corrupting them, so the engine may skip filling IPv4/TCP checksums on
    /// transmit and verifying them on receive, as Linux does on `lo`.
    /// Frames then carry checksums that are not valid on a real wire (they
    /// matter only if you capture them). Set `false` to make the engine
    /// compute and verify checksums, for instance to test that code.
    pub checksum_offload: bool,
}

impl Default for WireConfig {
    fn default() -> Self {
        WireConfig {
            mtu: 1500,
            frames_per_direction: 8192,
            wire_queue_len: None,
            mac_a: [0x02, 0x00, 0x00, 0x00, 0x00, 0x01],
            mac_b: [0x02, 0x00, 0x00, 0x00, 0x00, 0x02],
            checksum_offload: true,
        }
    }
}

/// The loopback wire; [`LoopbackWire::pair`] makes its two ends.
#[derive(Debug)]
pub struct LoopbackWire;

impl LoopbackWire {
    /// Makes the two ends of a new wire, allocating every frame buffer of both
    /// directions now. Port A has `cfg.mac_a`, port B `cfg.mac_b`; what one
    /// sends the other receives.
    ///
    /// # Panics
    ///
    /// If `cfg.mtu` is outside [`MIN_MTU`]`..=`[`MAX_MTU`], or
    /// `cfg.frames_per_direction` or `cfg.wire_queue_len` is zero.
    pub fn pair(cfg: &WireConfig) -> (LoopbackPort, LoopbackPort) {
        let (mut a, mut b) = LoopbackWire::multi(cfg, 1, 1);
        match (a.pop(), b.pop()) {
            (Some(a), Some(b)) => (a, b),
            _ => unreachable!("multi(1, 1) makes one port a side"),
        }
    }

    /// Makes a wire whose side A has `queues_a` queue pairs and side B
    /// `queues_b`, each queue pair a port of its own (for one engine each).
    /// A frame sent by any port of one side arrives at the port of the other
    /// side that [`crate::rss::dispatch`] picks for it: both directions of a
    /// TCP flow land on the same queue index, and anything that is not
    /// IPv4/TCP (ARP) on queue 0, as a NIC with symmetric RSS does. Every
    /// port owns `cfg.frames_per_direction` buffers for what it sends; each
    /// (sending port, receiving port) pair has its own wire queue of
    /// `cfg.wire_queue_len` slots and its own return queue, all
    /// single-producer single-consumer, so the ports of one side can run on
    /// as many threads with no lock and no shared cache line between them.
    /// Both sides use the same MACs as [`LoopbackWire::pair`].
    ///
    /// # Panics
    ///
    /// As [`LoopbackWire::pair`], and if a side has no queue or more than
    /// [`crate::rss::MAX_QUEUES`].
    pub fn multi(
        cfg: &WireConfig,
        queues_a: u16,
        queues_b: u16,
    ) -> (Vec<LoopbackPort>, Vec<LoopbackPort>) {
        assert!(
            (MIN_MTU..=MAX_MTU).contains(&cfg.mtu),
            "loopback MTU {} is outside {MIN_MTU}..={MAX_MTU}",
            cfg.mtu
        );
        assert!(
            cfg.frames_per_direction > 0,
            "loopback wire needs at least one frame buffer"
        );
        for q in [queues_a, queues_b] {
            assert!(
                (1..=crate::rss::MAX_QUEUES).contains(&q),
                "loopback queues {q} outside 1..={}",
                crate::rss::MAX_QUEUES
            );
        }
        let wire_queue_len = cfg.wire_queue_len.unwrap_or(cfg.frames_per_direction);
        assert!(
            wire_queue_len > 0,
            "loopback wire queue needs at least one slot"
        );

        let buf_len = cfg.mtu + ETH_HEADER_LEN;
        let (a_tx, b_rx) = direction(
            buf_len,
            cfg.frames_per_direction,
            wire_queue_len,
            queues_a,
            queues_b,
        );
        let (b_tx, a_rx) = direction(
            buf_len,
            cfg.frames_per_direction,
            wire_queue_len,
            queues_b,
            queues_a,
        );
        let side =
            |txs: Vec<TxSide>, rxs: Vec<RxSide>, macs: (MacAddr, MacAddr), peer_queues: u16| {
                let n = txs.len() as u16;
                txs.into_iter()
                    .zip(rxs)
                    .enumerate()
                    .map(|(q, (tx, rx))| {
                        LoopbackPort::new(cfg, macs, tx, rx, (q as u16, n), peer_queues)
                    })
                    .collect::<Vec<_>>()
            };
        let a = side(a_tx, a_rx, (cfg.mac_a, cfg.mac_b), queues_b);
        let b = side(b_tx, b_rx, (cfg.mac_b, cfg.mac_a), queues_a);
        (a, b)
    }
}

/// The receiver's doorbell on one direction: how the sender wakes a receiver
/// that blocks (see [`Nic::rx_arm`]).
#[derive(Default)]
struct Bell {
    /// Set by the receiver when it arms, then it fences and re-checks the
    /// wire queue; the sender fences after publishing frames and then loads
    /// it (a Dekker pair: either the receiver sees the frames, or the sender
    /// sees the flag). Cleared by whoever takes the wake-up: the sender's
    /// `swap`, or the receiver's `rx_disarm` / `Pending` answer.
    armed: AtomicBool,
    /// The receiver's waker, left when it arms (locked only then, and by a
    /// sender that saw `armed`).
    waker: Mutex<Option<Waker>>,
}

impl Bell {
    /// The sender's side, after publishing frames.
    #[inline]
    fn ring(&self) {
        // Full fence between the wire queue's tail store (rtrb publishes with
        // release) and the load of `armed`; pairs with the fence in `arm`.
        fence(Ordering::SeqCst);
        // Ordering comes from the fences; relaxed for the cheap look, and the
        // swap makes one waker call per arming.
        if self.armed.load(Ordering::Relaxed) && self.armed.swap(false, Ordering::AcqRel) {
            let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = waker.as_ref() {
                w.wake_by_ref();
            }
        }
    }

    /// The receiver's side: leaves `waker`, sets `armed`, fences; the caller
    /// then re-checks its queue.
    fn arm(&self, waker: &Waker) {
        {
            let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
        // Receiver-only setter; pairs with the sender's fence in `ring`.
        self.armed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    fn disarm(&self) {
        // Receiver withdraws its own request; a sender that already swapped it
        // merely made one spurious wake-up.
        self.armed.store(false, Ordering::Relaxed);
    }
}

/// The sending port's half of a direction.
struct TxSide {
    /// Built frames in send order, one queue per receiving port (indexed by
    /// the receiver's queue); `tx_flush` writes a run of frames for one
    /// receiver and publishes it with one index store.
    wires: Vec<Producer<LoopbackFrame>>,
    /// Empty buffers coming back, one queue per receiving port.
    returned: Vec<Consumer<Box<[u8]>>>,
    /// Empty buffers, most recently reclaimed on top: `tx_frame` builds in
    /// the top one. Capacity: every buffer of the port, so reclaiming
    /// never allocates.
    spare: Vec<Box<[u8]>>,
    /// Buffers of the port not made yet: [`TxSide::make`] allocates one when
    /// the spare stack and the return queues are empty.
    unmade: usize,
    /// Length of every buffer: MTU plus the Ethernet header.
    buf_len: usize,
    /// Each receiving port's doorbell (indexed as `wires`).
    bells: Vec<Arc<Bell>>,
}

/// Buffers [`TxSide::make`] makes at a time: enough to leave some on the
/// spare stack, so that building a frame does not find it empty and reclaim
/// on every frame of a ping-pong (the flush reclaims).
const MAKE_BATCH: usize = 16;

impl TxSide {
    /// One more buffer, if the port has not made all of its own yet, and up
    /// to [`MAKE_BATCH`] - 1 more onto the spare stack (once per buffer,
    /// never per frame).
    #[cold]
    fn make(&mut self) -> Option<Box<[u8]>> {
        let n = self.unmade.min(MAKE_BATCH);
        if n == 0 {
            return None;
        }
        self.unmade -= n;
        for _ in 1..n {
            self.spare.push(vec![0u8; self.buf_len].into_boxed_slice());
        }
        Some(vec![0u8; self.buf_len].into_boxed_slice())
    }
}

/// The receiving port's half of a direction.
struct RxSide {
    /// Frames from each sending port (indexed by the sender's queue), each
    /// queue in send order.
    wires: Vec<Consumer<LoopbackFrame>>,
    /// Where `rx_release` puts buffers back for each sender. Each one's
    /// capacity is the sender's number of buffers, so a push of one of its
    /// buffers always fits.
    returned: Vec<Producer<Box<[u8]>>>,
    /// Length of every buffer of the direction.
    buf_len: usize,
    /// The sender `rx_burst` looks at first (turns, so no sender starves
    /// the others).
    next: usize,
    /// This port's doorbell, rung by its senders.
    bell: Arc<Bell>,
}

/// One direction of the wire from `senders` ports to `receivers` ports: a
/// wire queue and a return queue for every (sender, receiver) pair, each
/// single-producer single-consumer; each sender's `frames` buffers start on
/// its spare stack.
fn direction(
    buf_len: usize,
    frames: usize,
    wire_queue_len: usize,
    senders: u16,
    receivers: u16,
) -> (Vec<TxSide>, Vec<RxSide>) {
    let mut rx: Vec<RxSide> = (0..receivers)
        .map(|_| RxSide {
            wires: Vec::with_capacity(usize::from(senders)),
            returned: Vec::with_capacity(usize::from(senders)),
            buf_len,
            next: 0,
            bell: Arc::new(Bell::default()),
        })
        .collect();
    let tx = (0..senders)
        .map(|_| {
            // Buffers are made on first need (`TxSide::make`): with the LIFO
            // spare stack a port makes only as many as it has frames in
            // flight at once. (Made up front, 8,192 small allocations each
            // touched a page through their allocator headers: 12.7 MB per
            // ring in libringline.)
            let mut side = TxSide {
                wires: Vec::with_capacity(usize::from(receivers)),
                returned: Vec::with_capacity(usize::from(receivers)),
                spare: Vec::with_capacity(frames),
                unmade: frames,
                buf_len,
                bells: Vec::with_capacity(usize::from(receivers)),
            };
            for r in rx.iter_mut() {
                let (wire_tx, wire_rx) = RingBuffer::new(wire_queue_len);
                let (ret_tx, ret_rx) = RingBuffer::new(frames);
                side.wires.push(wire_tx);
                side.returned.push(ret_rx);
                side.bells.push(r.bell.clone());
                r.wires.push(wire_rx);
                r.returned.push(ret_tx);
            }
            side
        })
        .collect();
    (tx, rx)
}

/// A frame received from a [`LoopbackPort`]: a wire buffer and the length of
/// the frame in it. Give it back with [`Nic::rx_release`] so its buffer
/// returns to the wire's pool; dropping it instead frees the buffer and
/// shrinks the pool by one.
pub struct LoopbackFrame {
    buf: Box<[u8]>,
    len: u32,
    /// The queue of the port that sent it (where its buffer goes back).
    from: u16,
    /// The queue of the port it goes to.
    to: u16,
}

impl LoopbackFrame {
    /// Length of the frame in bytes, Ethernet header included.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the frame has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for LoopbackFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// The engine rewrites a received segment's window field in place.
impl AsMut<[u8]> for LoopbackFrame {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len as usize]
    }
}

impl std::fmt::Debug for LoopbackFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackFrame")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// One end of a [`LoopbackWire`]: a [`Nic`] whose frames go to, and come
/// from, the other end.
///
/// A port is `Send` but not shared: one thread drives it at a time. Its
/// counters are plain integers for that reason.
pub struct LoopbackPort {
    /// This port's half of the direction it sends on.
    tx: TxSide,
    /// This port's half of the direction it receives from.
    rx: RxSide,
    /// Frames built by `tx_frame` and not yet on the wire, oldest first.
    /// Capacity [`TX_BATCH`], allocated once.
    tx_batch: VecDeque<LoopbackFrame>,
    caps: NicCaps,
    peer_mac: MacAddr,
    counters: NicCounters,
    /// This port's queue and the number of queues on its side.
    queue: (u16, u16),
    /// Queues on the other side: more than one means every frame sent is
    /// dispatched ([`crate::rss::dispatch`]).
    peer_queues: u16,
}

impl LoopbackPort {
    fn new(
        cfg: &WireConfig,
        (mac, peer_mac): (MacAddr, MacAddr),
        tx: TxSide,
        rx: RxSide,
        queue: (u16, u16),
        peer_queues: u16,
    ) -> Self {
        LoopbackPort {
            tx,
            rx,
            queue,
            peer_queues,
            tx_batch: VecDeque::with_capacity(TX_BATCH),
            caps: NicCaps {
                mtu: cfg.mtu,
                mac,
                rx_checksum_offload: cfg.checksum_offload,
                tx_checksum_offload: cfg.checksum_offload,
            },
            peer_mac,
            counters: NicCounters::default(),
        }
    }

    /// MAC address of the port at the other end of the wire: where every
    /// frame this port sends arrives. Saves the engine an ARP exchange when
    /// it wants one.
    pub fn peer_mac(&self) -> MacAddr {
        self.peer_mac
    }

    /// This port's queue index and the number of queue pairs on its side of
    /// the wire (`(0, 1)` for [`LoopbackWire::pair`]).
    pub fn queue(&self) -> (u16, u16) {
        self.queue
    }

    /// Frames built by [`Nic::tx_frame`] that are waiting for
    /// [`Nic::tx_flush`] (or for room on the wire).
    pub fn tx_queued(&self) -> usize {
        self.tx_batch.len()
    }

    /// Moves the buffers the receiver has released onto the spare stack, the
    /// last released on top. Returns whether any came back.
    fn reclaim(&mut self) -> bool {
        let mut any = false;
        for returned in &mut self.tx.returned {
            let n = returned.slots();
            if n == 0 {
                continue;
            }
            any = true;
            if n == 1 {
                if let Ok(buf) = returned.pop() {
                    self.tx.spare.push(buf);
                }
            } else if let Ok(chunk) = returned.read_chunk(n) {
                self.tx.spare.extend(chunk);
            }
        }
        any
    }

    /// Moves frames from the batch to the wire, oldest first, until the batch
    /// is empty or the wire queue is full. Returns how many moved.
    fn push_batch(&mut self) -> usize {
        if self.tx.wires.len() > 1 {
            return self.push_batch_spread();
        }
        let wire = &mut self.tx.wires[0];
        let n = self.tx_batch.len().min(wire.slots());
        if n == 0 {
            return 0;
        }
        let bytes: u64 = match n {
            1 => self.tx_batch.front().map_or(0, |f| u64::from(f.len)),
            _ => self.tx_batch.iter().take(n).map(|f| u64::from(f.len)).sum(),
        };
        // What does not fit stays at the head of the batch, in order. One
        // frame (the common case at low load) is a plain push, cheaper than
        // setting up a chunk.
        let sent = if n == 1 {
            match self.tx_batch.pop_front().map(|f| wire.push(f)) {
                Some(Ok(())) => 1,
                Some(Err(rtrb::PushError::Full(f))) => {
                    self.tx_batch.push_front(f);
                    0
                }
                None => 0,
            }
        } else {
            match wire.write_chunk_uninit(n) {
                Ok(chunk) => chunk.fill_from_iter(self.tx_batch.drain(..n)),
                Err(_) => 0,
            }
        };
        // `slots()` promised room for all n, and only this port writes.
        debug_assert_eq!(sent, n, "the wire took less than slots() promised");
        if sent == n {
            self.counters.tx_frames += sent as u64;
            self.counters.tx_bytes += bytes;
        }
        if sent > 0 {
            self.tx.bells[0].ring();
        }
        sent
    }

    /// `push_batch` toward several receiving queues: each frame to the wire
    /// queue of the port it was dispatched to, oldest first, stopping at the
    /// first that does not fit (so the frames of a flow, which all go to one
    /// queue, keep their order, and so does the batch).
    fn push_batch_spread(&mut self) -> usize {
        let mut sent = 0;
        // The receivers that got frames: each bell rung once, after.
        let mut rung = 0u64;
        while let Some(f) = self.tx_batch.pop_front() {
            let len = u64::from(f.len);
            let to = usize::from(f.to);
            match self.tx.wires[to].push(f) {
                Ok(()) => {
                    rung |= 1u64 << (to % 64);
                    sent += 1;
                    self.counters.tx_frames += 1;
                    self.counters.tx_bytes += len;
                }
                Err(rtrb::PushError::Full(f)) => {
                    self.tx_batch.push_front(f);
                    break;
                }
            }
        }
        for (i, bell) in self.tx.bells.iter().enumerate() {
            if rung & (1u64 << (i % 64)) != 0 {
                bell.ring();
            }
        }
        sent
    }
}

impl std::fmt::Debug for LoopbackPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackPort")
            .field("caps", &self.caps)
            .field("peer_mac", &self.peer_mac)
            .field("tx_queued", &self.tx_batch.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Nic for LoopbackPort {
    type Frame = LoopbackFrame;

    fn caps(&self) -> NicCaps {
        self.caps
    }

    /// Takes up to `max` (capped at [`RX_BURST`]) frames off the wire in the
    /// order they were flushed.
    fn rx_burst(&mut self, out: &mut Vec<LoopbackFrame>, max: usize) -> usize {
        let senders = self.rx.wires.len();
        let mut budget = max.min(RX_BURST);
        let mut got = 0;
        for i in 0..senders {
            if budget == 0 {
                break;
            }
            let s = (self.rx.next + i) % senders;
            let wire = &mut self.rx.wires[s];
            let n = budget.min(wire.slots());
            if n == 0 {
                continue;
            }
            let mut take = |frame: LoopbackFrame| {
                self.counters.rx_frames += 1;
                self.counters.rx_bytes += u64::from(frame.len);
                out.push(frame);
            };
            if n == 1 {
                if let Ok(frame) = wire.pop() {
                    take(frame);
                }
            } else if let Ok(chunk) = wire.read_chunk(n) {
                chunk.into_iter().for_each(take);
            }
            budget -= n;
            got += n;
        }
        if senders > 1 {
            self.rx.next = (self.rx.next + 1) % senders;
        }
        got
    }

    /// Whether a wire queue toward this port holds a frame (one load of
    /// each queue index; nothing is taken).
    fn rx_pending(&self) -> bool {
        self.rx.wires.iter().any(|w| !w.is_empty())
    }

    /// Returns the frame's buffer to the free list of the port that sent
    /// it. Give each port only frames it received itself.
    #[inline]
    fn rx_release(&mut self, frame: LoopbackFrame) {
        debug_assert_eq!(frame.buf.len(), self.rx.buf_len, "frame from another wire");
        // Only fails if the frame came from another port's direction and this
        // free list is already whole; then the stray buffer is simply freed.
        if let Some(returned) = self.rx.returned.get_mut(usize::from(frame.from)) {
            let _ = returned.push(frame.buf);
        }
    }

    /// Builds the frame in a free buffer of this direction and keeps it in
    /// the port's batch. When the batch is full it is first pushed to the
    /// wire; [`TxError::Full`] means the batch is still full (the receiver is
    /// not draining) or every buffer is in flight. The bytes `build` sees are
    /// left over from earlier frames: it must write all `len` of them.
    /// Refusals count in `tx_dropped`.
    fn tx_frame(&mut self, len: usize, build: &mut dyn FnMut(&mut [u8])) -> Result<(), TxError> {
        if len > self.tx.buf_len {
            self.counters.tx_dropped += 1;
            return Err(TxError::TooBig(len));
        }
        if self.tx_batch.len() == TX_BATCH {
            self.push_batch();
            if self.tx_batch.len() == TX_BATCH {
                self.counters.tx_dropped += 1;
                return Err(TxError::Full);
            }
        }
        if self.tx.spare.is_empty() {
            self.reclaim();
        }
        let Some(mut buf) = self.tx.spare.pop().or_else(|| self.tx.make()) else {
            self.counters.tx_dropped += 1;
            return Err(TxError::Full);
        };
        build(&mut buf[..len]);
        let to = crate::rss::dispatch(&buf[..len], self.peer_queues);
        // `len <= buf_len <= MAX_MTU + 14`, so it fits in a u32.
        self.tx_batch.push_back(LoopbackFrame {
            buf,
            len: len as u32,
            from: self.queue.0,
            to,
        });
        Ok(())
    }

    fn tx_ready(&mut self) -> bool {
        if self.tx_batch.len() == TX_BATCH {
            self.push_batch();
        }
        self.tx_batch.len() < TX_BATCH
            && (!self.tx.spare.is_empty() || self.reclaim() || self.tx.unmade > 0)
    }

    /// Pushes the batch to the wire, then reclaims released buffers so the
    /// next frames are built in the ones most recently used.
    fn tx_flush(&mut self) -> usize {
        let sent = self.push_batch();
        self.reclaim();
        sent
    }

    /// `rx_dropped` stays zero: the wire never drops. `tx_dropped` counts
    /// [`Nic::tx_frame`] refusals.
    fn counters(&self) -> NicCounters {
        self.counters
    }

    /// Leaves `waker` on this port's doorbell: the peer's next published
    /// frames call it. `Pending` if a frame is already on the wire.
    fn rx_arm(&mut self, waker: &Waker) -> RxArm {
        self.rx.bell.arm(waker);
        if self.rx.wires.iter().all(|w| w.is_empty()) {
            RxArm::Armed
        } else {
            self.rx.bell.disarm();
            RxArm::Pending
        }
    }

    fn rx_disarm(&mut self) {
        self.rx.bell.disarm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(port: &mut LoopbackPort, bytes: &[u8]) -> Result<(), TxError> {
        port.tx_frame(bytes.len(), &mut |b| b.copy_from_slice(bytes))
    }

    fn recv_all(port: &mut LoopbackPort) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut out = Vec::with_capacity(RX_BURST);
        while port.rx_burst(&mut out, RX_BURST) > 0 {
            for f in out.drain(..) {
                got.push(f.as_ref().to_vec());
                port.rx_release(f);
            }
        }
        got
    }

    fn small(frames: usize, wire: Option<usize>) -> WireConfig {
        WireConfig {
            frames_per_direction: frames,
            wire_queue_len: wire,
            ..WireConfig::default()
        }
    }

    /// Counts its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn armed_receiver_is_woken_once_by_the_sender() {
        let (mut a, mut b) = LoopbackWire::pair(&WireConfig::default());
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        assert_eq!(b.rx_arm(&waker), RxArm::Armed);
        send(&mut a, &[1; 60]).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "not flushed yet");
        a.tx_flush();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        send(&mut a, &[2; 60]).unwrap();
        a.tx_flush();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "one call per arming");
        // Frames waiting: arming answers Pending and leaves nothing armed.
        assert_eq!(b.rx_arm(&waker), RxArm::Pending);
        let mut out = Vec::with_capacity(RX_BURST);
        assert_eq!(b.rx_burst(&mut out, RX_BURST), 2);
        assert_eq!(b.rx_arm(&waker), RxArm::Armed);
        b.rx_disarm();
        send(&mut a, &[3; 60]).unwrap();
        a.tx_flush();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "disarmed");
        // The other direction has its own bell.
        assert_eq!(a.rx_arm(&waker), RxArm::Armed);
        send(&mut b, &[4; 60]).unwrap();
        b.tx_flush();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn ports_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<LoopbackPort>();
        assert_send::<LoopbackFrame>();
    }

    #[test]
    fn caps_and_macs() {
        let cfg = WireConfig {
            checksum_offload: false,
            ..WireConfig::default()
        };
        let (a, b) = LoopbackWire::pair(&cfg);
        assert_eq!(a.caps().mac, cfg.mac_a);
        assert_eq!(b.caps().mac, cfg.mac_b);
        assert_eq!(a.peer_mac(), cfg.mac_b);
        assert_eq!(b.peer_mac(), cfg.mac_a);
        assert_eq!(a.caps().mtu, 1500);
        assert!(!a.caps().rx_checksum_offload && !a.caps().tx_checksum_offload);
        let (a, _) = LoopbackWire::pair(&WireConfig::default());
        assert!(a.caps().rx_checksum_offload && a.caps().tx_checksum_offload);
    }

    #[test]
    fn frames_cross_both_ways_intact() {
        let (mut a, mut b) = LoopbackWire::pair(&small(16, None));
        let f1: Vec<u8> = (0..60).collect();
        let f2: Vec<u8> = (0..1514).map(|i| (i * 7) as u8).collect();
        send(&mut a, &f1).unwrap();
        send(&mut a, &f2).unwrap();
        // Nothing leaves before the flush.
        assert!(recv_all(&mut b).is_empty());
        assert_eq!(a.tx_queued(), 2);
        assert_eq!(a.tx_flush(), 2);
        assert_eq!(recv_all(&mut b), vec![f1.clone(), f2.clone()]);

        send(&mut b, &f2).unwrap();
        send(&mut b, &f1).unwrap();
        b.tx_flush();
        assert_eq!(recv_all(&mut a), vec![f2.clone(), f1.clone()]);

        let ca = a.counters();
        assert_eq!((ca.tx_frames, ca.tx_bytes), (2, 60 + 1514));
        assert_eq!((ca.rx_frames, ca.rx_bytes), (2, 60 + 1514));
        assert_eq!(ca.tx_dropped + ca.rx_dropped, 0);
    }

    #[test]
    fn rx_burst_honours_max() {
        let (mut a, mut b) = LoopbackWire::pair(&small(128, None));
        for i in 0..40u8 {
            send(&mut a, &[i; 20]).unwrap();
        }
        a.tx_flush();
        let mut out = Vec::with_capacity(64);
        assert_eq!(b.rx_burst(&mut out, 5), 5);
        assert_eq!(b.rx_burst(&mut out, 64), RX_BURST);
        assert_eq!(b.rx_burst(&mut out, 64), 3);
        assert_eq!(b.rx_burst(&mut out, 64), 0);
        for (i, f) in out.iter().enumerate() {
            assert_eq!(f.as_ref(), &[i as u8; 20]);
        }
    }

    #[test]
    fn too_big() {
        let (mut a, _b) = LoopbackWire::pair(&small(4, None));
        let mut called = false;
        assert_eq!(
            a.tx_frame(1515, &mut |_| called = true),
            Err(TxError::TooBig(1515))
        );
        assert!(!called);
        assert_eq!(a.counters().tx_dropped, 1);
        // Exactly MTU + Ethernet header fits.
        a.tx_frame(1514, &mut |b| b.fill(1)).unwrap();
    }

    #[test]
    fn reuses_the_most_recently_released_buffer() {
        // A pool of 1024 buffers with one frame in flight at a time touches
        // one buffer, not all of them in turn.
        let (mut a, mut b) = LoopbackWire::pair(&small(1024, None));
        let mut out = Vec::with_capacity(RX_BURST);
        let mut seen = std::collections::HashSet::new();
        for i in 0..100u8 {
            send(&mut a, &[i; 64]).unwrap();
            a.tx_flush();
            assert_eq!(b.rx_burst(&mut out, RX_BURST), 1);
            let f = out.pop().unwrap();
            assert_eq!(f.as_ref(), &[i; 64]);
            seen.insert(f.buf.as_ptr() as usize);
            b.rx_release(f);
        }
        // The one just released waits in the return queue until the next flush.
        assert!(seen.len() <= 2, "buffers used: {}", seen.len());
    }

    #[test]
    fn pool_exhaustion_then_recovery() {
        let (mut a, mut b) = LoopbackWire::pair(&small(8, None));
        for i in 0..8u8 {
            send(&mut a, &[i; 64]).unwrap();
        }
        let mut called = false;
        assert_eq!(a.tx_frame(64, &mut |_| called = true), Err(TxError::Full));
        assert!(!called);
        a.tx_flush();
        // Flushed but not yet received and released: still no buffer.
        assert_eq!(send(&mut a, &[9; 64]), Err(TxError::Full));
        let mut out = Vec::with_capacity(RX_BURST);
        assert_eq!(b.rx_burst(&mut out, RX_BURST), 8);
        // Received but held by B: still no buffer.
        assert_eq!(send(&mut a, &[9; 64]), Err(TxError::Full));
        let first = out.remove(0);
        assert_eq!(first.as_ref(), &[0; 64]);
        b.rx_release(first);
        send(&mut a, &[9; 64]).unwrap();
        assert_eq!(send(&mut a, &[10; 64]), Err(TxError::Full));
        for f in out.drain(..) {
            b.rx_release(f);
        }
        send(&mut a, &[10; 64]).unwrap();
        a.tx_flush();
        assert_eq!(recv_all(&mut b), vec![vec![9; 64], vec![10; 64]]);
        assert_eq!(a.counters().tx_dropped, 4);
    }

    #[test]
    fn full_batch_is_pushed_before_refusing() {
        let (mut a, mut b) = LoopbackWire::pair(&small(4 * TX_BATCH, None));
        // More than one batch without an explicit flush: the full batch goes
        // to the wire by itself.
        for i in 0..(TX_BATCH + 10) as u32 {
            send(&mut a, &i.to_le_bytes()).unwrap();
        }
        assert_eq!(a.tx_queued(), 10);
        a.tx_flush();
        let got = recv_all(&mut b);
        assert_eq!(got.len(), TX_BATCH + 10);
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g.as_slice(), (i as u32).to_le_bytes());
        }
    }

    #[test]
    fn partial_flush_keeps_frames_in_order() {
        let (mut a, mut b) = LoopbackWire::pair(&small(64, Some(4)));
        for i in 0..10u32 {
            send(&mut a, &i.to_le_bytes()).unwrap();
        }
        assert_eq!(a.tx_flush(), 4);
        assert_eq!(a.tx_queued(), 6);
        assert_eq!(a.tx_flush(), 0, "wire still full");
        // A full wire and a full batch: tx_frame refuses rather than drop.
        let (mut c, _d) = LoopbackWire::pair(&small(4 * TX_BATCH, Some(1)));
        for i in 0..TX_BATCH as u32 + 1 {
            send(&mut c, &i.to_le_bytes()).unwrap();
        }
        assert_eq!(c.tx_queued(), TX_BATCH);
        assert_eq!(send(&mut c, &[0; 4]), Err(TxError::Full));

        let mut got = Vec::new();
        let mut out = Vec::with_capacity(RX_BURST);
        loop {
            a.tx_flush();
            if b.rx_burst(&mut out, 3) == 0 && a.tx_queued() == 0 {
                break;
            }
            for f in out.drain(..) {
                got.push(u32::from_le_bytes(f.as_ref().try_into().unwrap()));
                b.rx_release(f);
            }
        }
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(a.counters().tx_frames, 10);
        assert_eq!(a.counters().tx_dropped, 0);
    }

    #[test]
    fn large_segments() {
        let cfg = WireConfig {
            mtu: MAX_MTU,
            frames_per_direction: 4,
            ..WireConfig::default()
        };
        let (mut a, mut b) = LoopbackWire::pair(&cfg);
        assert_eq!(a.caps().mtu, 65535);
        let big: Vec<u8> = (0..MAX_MTU + 14).map(|i| (i % 251) as u8).collect();
        send(&mut a, &big).unwrap();
        assert_eq!(
            a.tx_frame(MAX_MTU + 15, &mut |_| ()),
            Err(TxError::TooBig(MAX_MTU + 15))
        );
        a.tx_flush();
        assert_eq!(recv_all(&mut b), vec![big]);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn mtu_out_of_range() {
        LoopbackWire::pair(&WireConfig {
            mtu: MAX_MTU + 1,
            ..WireConfig::default()
        });
    }

    #[test]
    fn two_engines_stepped_in_turn() {
        // A ping-pong on one thread: each side answers what it receives with
        // the next number, as two engines stepped alternately would.
        let (mut a, mut b) = LoopbackWire::pair(&small(8, None));
        send(&mut a, &0u64.to_le_bytes()).unwrap();
        a.tx_flush();
        let mut out = Vec::with_capacity(RX_BURST);
        let mut last = 0;
        for step in 0..1000 {
            let port = if step % 2 == 0 { &mut b } else { &mut a };
            assert_eq!(port.rx_burst(&mut out, RX_BURST), 1);
            let f = out.pop().unwrap();
            let n = u64::from_le_bytes(f.as_ref().try_into().unwrap());
            assert_eq!(n, step);
            port.rx_release(f);
            send(port, &(n + 1).to_le_bytes()).unwrap();
            port.tx_flush();
            last = n;
        }
        assert_eq!(last, 999);
    }

    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 9] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn multi_queue_frames_land_on_their_flows_queue_both_ways() {
        let (c, s) = ([10, 0, 0, 2], [10, 0, 0, 1]);
        let (mut a, mut b) = LoopbackWire::multi(&small(256, None), 2, 2);
        assert_eq!((a[1].queue(), b[0].queue()), ((1, 2), (0, 2)));
        let mut per_queue = [0usize; 2];
        for round in 0..4 {
            // Every A port sends frames of many flows (and one ARP frame).
            for (qa, port) in a.iter_mut().enumerate() {
                for p in 0..32u16 {
                    send(port, &tcp(c, s, 40000 + p + 100 * qa as u16, 80)).unwrap();
                }
                let mut arp = tcp(c, s, 0, 0);
                arp[12..14].copy_from_slice(&[0x08, 0x06]);
                send(port, &arp).unwrap();
                port.tx_flush();
            }
            for (qb, port) in b.iter_mut().enumerate() {
                for f in recv_all(port) {
                    if f[12..14] == [0x08, 0x06] {
                        assert_eq!(qb, 0, "ARP goes to queue 0");
                        continue;
                    }
                    let sport = u16::from_be_bytes([f[34], f[35]]);
                    assert_eq!(
                        usize::from(crate::rss::queue_of_flow(c, s, sport, 80, 2)),
                        qb
                    );
                    per_queue[qb] += 1;
                    // The answer, sent back from this queue, reaches A's port
                    // of the same index.
                    if round == 0 {
                        send(port, &tcp(s, c, 80, sport)).unwrap();
                    }
                }
                port.tx_flush();
            }
            for (qa, port) in a.iter_mut().enumerate() {
                for f in recv_all(port) {
                    let dport = u16::from_be_bytes([f[36], f[37]]);
                    assert_eq!(
                        usize::from(crate::rss::queue_of_flow(c, s, dport, 80, 2)),
                        qa
                    );
                }
            }
        }
        assert_eq!(per_queue[0] + per_queue[1], 4 * 64);
        assert!(per_queue[0] > 0 && per_queue[1] > 0, "{per_queue:?}");
        // Every buffer went back to the port that sent it: each A port can
        // again have all 256 of its buffers in flight at once.
        for port in a.iter_mut() {
            port.tx_flush();
            for _ in 0..256 {
                send(port, &[0; 60]).unwrap();
            }
            assert_eq!(send(port, &[0; 60]), Err(TxError::Full));
        }
    }
}
