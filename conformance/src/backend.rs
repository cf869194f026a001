//! What a scenario needs from a backend: an app ring to push raw SQEs into and
//! reap CQEs from, sockets for the app, and a peer that connects, sends and
//! closes.
//!
//! Two implementations: [`crate::kernel::KernelBackend`] (Linux io_uring with real
//! TCP sockets on 127.0.0.1, the peer being plain kernel sockets) and
//! [`crate::ringline_backend::RinglineBackend`] (a ringline engine, the peer being a
//! second engine on the loopback wire, both driven by a manual clock).

use ringline_ring::abi::{Cqe, Sqe};
use ringline_ring::bufring::BufRing;

/// Which backend a run used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Linux io_uring.
    Kernel,
    /// ringline over the loopback wire.
    Ringline,
}

impl Kind {
    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kernel => "kernel",
            Kind::Ringline => "ringline",
        }
    }
}

/// Sizes of the app ring under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSize {
    /// SQ entries.
    pub sq: u32,
    /// CQ entries.
    pub cq: u32,
}

impl Default for RingSize {
    fn default() -> Self {
        RingSize { sq: 64, cq: 128 }
    }
}

/// A peer connection (an index into the backend's peer table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerId(pub usize);

/// A peer listening socket (for the app's CONNECT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerListenerId(pub usize);

/// What a reading peer has seen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerRx {
    /// Bytes received, in order.
    pub data: Vec<u8>,
    /// The app's FIN arrived (read returned 0).
    pub eof: bool,
    /// A read failed with this errno (positive), e.g. `ECONNRESET`.
    pub error: Option<i32>,
}

/// One backend: the app ring under test plus a peer.
///
/// Progress model: nothing happens on the app ring unless the harness calls
/// [`Backend::submit`] or [`Backend::tick`] (the kernel ring is created with
/// `IORING_SETUP_DEFER_TASKRUN`, so its completions too are only generated while
/// the app is inside `io_uring_enter`, as with ringline's inline engine). Peer
/// actions progress during ticks.
pub trait Backend {
    /// Which backend this is.
    fn kind(&self) -> Kind;

    /// Copies one SQE into the app's SQ (not yet submitted). `Err` if the SQ is full.
    ///
    /// # Safety
    ///
    /// Every buffer and address the SQE names stays valid until the backend is
    /// dropped (a superset of `Ring::push`'s contract, and of the kernel's):
    /// the harness ([`crate::Ctx`]) owns all scenario memory and drops it after
    /// the backend.
    unsafe fn push(&mut self, sqe: &Sqe) -> Result<(), String>;

    /// Publishes the queued SQEs and enters once, without waiting
    /// (`io_uring_submit`; with `GETEVENTS` when `IORING_SQ_CQ_OVERFLOW` is set, as
    /// liburing does).
    fn submit(&mut self);

    /// A little progress without consuming CQEs: the kernel enters with
    /// `GETEVENTS` waiting at most ~2 ms for one more CQE; ringline runs one round
    /// of both engines. Peers move their queued data in both.
    fn tick(&mut self);

    /// Whether a wait of `ticks` ticks started at `start` (from [`Backend::now`]) is
    /// over. Kernel: real time; ringline: rounds.
    fn expired(&self, start: u64, budget: Budget) -> bool;

    /// A monotonic counter for [`Backend::expired`].
    fn now(&self) -> u64;

    /// Now on the clock an absolute TIMEOUT names, in µs: CLOCK_MONOTONIC for
    /// the kernel, the engines' virtual clock for ringline.
    fn timeout_clock_us(&self) -> u64;

    /// Copies and consumes every CQE now in the CQ, without entering.
    fn reap(&mut self) -> Vec<Cqe>;

    /// Consumes at most `n` CQEs, without entering.
    fn reap_n(&mut self, n: usize) -> Vec<Cqe>;

    /// The SQ ring flags (`IORING_SQ_*`).
    fn sq_flags(&mut self) -> u32;

    /// CQEs in the CQ now.
    fn cq_ready(&mut self) -> u32;

    /// Registers a provided-buffer ring of `entries` as group `bgid`
    /// (`IORING_REGISTER_PBUF_RING`) and returns its application half. The same
    /// [`BufRing`] type (ringline's app code) drives both backends: the kernel reads
    /// the ring memory ringline's code writes.
    fn register_buf_ring(&mut self, entries: u32, bgid: u16) -> Result<BufRing, i32> {
        self.register_buf_ring_flags(entries, bgid, 0)
    }

    /// As [`Backend::register_buf_ring`] with `IOU_PBUF_RING_*` flags.
    fn register_buf_ring_flags(
        &mut self,
        entries: u32,
        bgid: u16,
        flags: u16,
    ) -> Result<BufRing, i32>;

    /// `io_uring_register(2)` on the app ring: the result, or `-errno`.
    ///
    /// # Safety
    ///
    /// `arg` is what the opcode's UAPI says, valid for the call; for
    /// `IORING_REGISTER_BUFFERS` the buffers stay valid until the backend is
    /// dropped (the harness owns them, as it owns all scenario memory).
    unsafe fn register(&mut self, opcode: u32, arg: u64, nr_args: u32) -> i32;

    /// A listening app socket with `backlog`. Not through the recorded CQEs.
    fn app_listener(&mut self, backlog: i32) -> Result<i32, String>;

    /// A connected pair: (app socket, peer). The app side was accepted out of
    /// band (not through a recorded CQE).
    fn app_conn(&mut self) -> Result<(i32, PeerId), String>;

    /// The peer connects to the app listener `listener`; returns once the peer's
    /// connect completed (the connection is then in the listener's accept queue).
    fn peer_connect(&mut self, listener: i32) -> Result<PeerId, String>;

    /// Queues `data` for the peer to send; it moves during ticks.
    fn peer_send(&mut self, p: PeerId, data: &[u8]);

    /// Whether everything queued by [`Backend::peer_send`] has been written.
    fn peer_sent_all(&self, p: PeerId) -> bool;

    /// The peer starts reading (until then, data the app sends stays unread).
    fn peer_start_reading(&mut self, p: PeerId);

    /// What the reading peer has received so far.
    fn peer_rx(&self, p: PeerId) -> PeerRx;

    /// The peer shuts down its sending side (FIN).
    fn peer_shutdown_write(&mut self, p: PeerId);

    /// The peer closes its socket: FIN, or RST when it holds unread data (Linux
    /// and ringline both).
    fn peer_close(&mut self, p: PeerId);

    /// A peer listening socket and the address the app connects to.
    fn peer_listen(&mut self) -> Result<(PeerListenerId, libc::sockaddr_in), String>;

    /// Takes one connection from a peer listener if one is ready.
    fn peer_accept(&mut self, l: PeerListenerId) -> Option<PeerId>;

    /// A peer address where nothing listens (a connect gets RST).
    fn refused_addr(&mut self) -> libc::sockaddr_in;

    /// An app address with a port nothing uses, for a scenario that BINDs
    /// and LISTENs through SQEs; [`Backend::adopt_listener`] then lets the
    /// peer connect to it.
    fn app_bind_addr(&mut self) -> libc::sockaddr_in;

    /// App socket `fd` listens on `sa` (from [`Backend::app_bind_addr`]):
    /// [`Backend::peer_connect`] may name it from now on.
    fn adopt_listener(&mut self, fd: i32, sa: &libc::sockaddr_in);

    /// Cancels whatever is in flight and drops sockets; called once at the end.
    fn teardown(&mut self);

    /// The app ring's fd: what another ring's `IORING_OP_MSG_RING` names it by.
    fn ring_fd(&mut self) -> i32;

    /// A second ring beside the app ring (made on the first call), for
    /// MSG_RING: its fd.
    fn second_ring(&mut self) -> Result<i32, String>;

    /// Submits `sqe` on the second ring (which [`Backend::tick`] then runs).
    ///
    /// # Safety
    ///
    /// As [`Backend::push`].
    unsafe fn second_submit(&mut self, sqe: &Sqe) -> Result<(), String>;

    /// The second ring's CQEs now, consumed.
    fn second_reap(&mut self) -> Vec<Cqe>;
}

/// How long a harness wait may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// Waiting for something expected (generous).
    Expect,
    /// A quiet period: long enough that a CQE that was going to come has come.
    Quiet,
}
