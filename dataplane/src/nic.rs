//! The NIC trait the engine drives: burst receive, transmit built in place,
//! capabilities and counters. Implemented by the loopback wire, the fault
//! injector and (feature `dpdk`) DPDK ports.

use std::task::Waker;

/// Most frames one `rx_burst` call returns (DPDK's customary burst).
pub const RX_BURST: usize = 32;

/// A 6-byte Ethernet address.
pub type MacAddr = [u8; 6];

/// What a NIC can do, read once when the engine starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicCaps {
    /// Largest IP packet (L3 MTU) the NIC carries, excluding the 14-byte Ethernet header.
    pub mtu: usize,
    /// The port's own MAC address.
    pub mac: MacAddr,
    /// The NIC verifies IPv4 and TCP checksums on receive and drops or flags bad frames.
    pub rx_checksum_offload: bool,
    /// The NIC fills IPv4 and TCP checksums on transmit.
    pub tx_checksum_offload: bool,
}

/// Per-port counters. Every implementation keeps them without locks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicCounters {
    /// Frames received and handed to the engine.
    pub rx_frames: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted (accepted by the wire / NIC).
    pub tx_frames: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Frames the NIC or wire dropped on receive (ring full, no buffer).
    pub rx_dropped: u64,
    /// Frames that could not be transmitted (TX ring full, no buffer).
    pub tx_dropped: u64,
    /// Frames received on this queue that belonged to another queue's flow
    /// and were handed over to that queue's engine (a multi-queue port's
    /// software dispatch; 0 elsewhere). Counted by the queue that received
    /// them; the queue they went to counts them in `rx_frames`.
    pub rx_handed_over: u64,
}

impl NicCounters {
    /// Every counter with its field name, in declaration order (for
    /// reports; the pattern names every field, so one added above and not
    /// here is a compile error).
    pub fn fields(&self) -> [(&'static str, u64); 7] {
        let NicCounters {
            rx_frames,
            rx_bytes,
            tx_frames,
            tx_bytes,
            rx_dropped,
            tx_dropped,
            rx_handed_over,
        } = *self;
        [
            ("rx_frames", rx_frames),
            ("rx_bytes", rx_bytes),
            ("tx_frames", tx_frames),
            ("tx_bytes", tx_bytes),
            ("rx_dropped", rx_dropped),
            ("tx_dropped", tx_dropped),
            ("rx_handed_over", rx_handed_over),
        ]
    }
}

/// Why a transmit did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// No frame buffer or TX descriptor free right now; retry after `tx_flush`
    /// or on the next loop iteration.
    #[error("transmit queue full")]
    Full,
    /// The frame is larger than the NIC's MTU plus the Ethernet header.
    #[error("frame of {0} bytes exceeds the MTU")]
    TooBig(usize),
}

/// What [`Nic::rx_arm`] did: whether a driver that wants to block until a
/// frame arrives can count on being woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxArm {
    /// Armed: the waker is called (once) when the next frame arrives, until
    /// [`Nic::rx_disarm`]. The caller may block (still for a bounded time).
    Armed,
    /// A frame is already waiting: do not block, poll.
    Pending,
    /// This NIC cannot notify: a driver that wants to idle sleeps in short
    /// bounded steps and polls between them.
    Unsupported,
}

/// A network port in poll mode.
///
/// Received frames are handed out as owned [`Nic::Frame`]s, so the engine can
/// read a frame while it transmits replies through the same `&mut self`; it
/// gives each back with [`Nic::rx_release`] (for the loopback wire the buffer
/// returns to its pool; for DPDK the mbuf is freed). No method allocates.
pub trait Nic {
    /// A received frame, starting at the Ethernet header.
    type Frame: AsRef<[u8]> + AsMut<[u8]>;

    /// Capabilities; constant for the life of the port.
    fn caps(&self) -> NicCaps;

    /// Receives up to `max` (at most [`RX_BURST`]) frames, pushing them to `out`.
    /// `out` must have capacity for them (the engine keeps one preallocated
    /// vector), so this never allocates. Returns the number received.
    fn rx_burst(&mut self, out: &mut Vec<Self::Frame>, max: usize) -> usize;

    /// Whether [`Nic::rx_burst`] may have frames now: a cheap look (no frame
    /// taken) that lets a waiting driver skip a whole engine step while
    /// nothing arrives. A wrong `true` only costs a step; the default is
    /// always `true`.
    fn rx_pending(&self) -> bool {
        true
    }

    /// Gives a received frame back (buffer to its pool, or mbuf freed).
    fn rx_release(&mut self, frame: Self::Frame);

    /// Builds a frame of `len` bytes in a transmit buffer by calling `build`
    /// on it, and queues it. The frame leaves at the next [`Nic::tx_flush`] (or
    /// earlier if the queue fills). On error `build` is not called.
    fn tx_frame(&mut self, len: usize, build: &mut dyn FnMut(&mut [u8])) -> Result<(), TxError>;

    /// Whether [`Nic::tx_frame`] can take a frame now (flushing queued frames
    /// first if that makes room). The engine asks before it lets smoltcp
    /// build a segment, so a full NIC leaves the data queued in the socket
    /// for the next loop instead of losing a segment to a retransmit timeout.
    /// The default says yes; `tx_frame` may still refuse.
    fn tx_ready(&mut self) -> bool {
        true
    }

    /// Sends every queued frame (a TX burst). Frames the NIC cannot take stay
    /// queued for the next call, never leaked. Returns the number sent now.
    fn tx_flush(&mut self) -> usize;

    /// Counters so far.
    fn counters(&self) -> NicCounters;

    /// Asks to be told when a frame arrives, before a driver blocks: from
    /// now until [`Nic::rx_disarm`], the arrival of a frame calls
    /// `waker.wake_by_ref()` (at most once per arming). The implementation
    /// checks for a frame after arming (so one that arrived just before is
    /// not missed) and then answers [`RxArm::Pending`]. Not for the hot path:
    /// a driver arms only when it is about to sleep. The default cannot
    /// notify ([`RxArm::Unsupported`]).
    fn rx_arm(&mut self, waker: &Waker) -> RxArm {
        let _ = waker;
        RxArm::Unsupported
    }

    /// Withdraws [`Nic::rx_arm`] after the driver wakes (a frame that arrives
    /// later no longer calls the waker).
    fn rx_disarm(&mut self) {}
}
