//! Engine configuration.

use std::net::Ipv4Addr;
use std::time::Duration;

use ringline_dataplane::MacAddr;

/// Default [`EngineConfig::busy_poll_us`]: 1 ms, far longer than the gap
/// between requests of a loaded connection (so a busy engine never blocks
/// and keeps its throughput) and short enough that an idle engine costs
/// nearly nothing.
pub const DEFAULT_BUSY_POLL_US: u64 = 1000;

/// How one engine presents itself on its port and sizes its resources.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The engine's IPv4 address.
    pub ip: Ipv4Addr,
    /// Prefix length of the on-link subnet.
    pub prefix_len: u8,
    /// Default gateway for off-link destinations.
    pub gateway: Option<Ipv4Addr>,
    /// Neighbours known in advance (IP, MAC); others are resolved with ARP.
    pub static_neighbors: Vec<(Ipv4Addr, MacAddr)>,
    /// Receive buffer per connection, bytes.
    pub rx_buffer: usize,
    /// Transmit buffer per connection, bytes.
    pub tx_buffer: usize,
    /// Most bytes queued in all connections' socket buffers together
    /// (received and not yet read, sent and not yet acknowledged), as
    /// Linux's `tcp_mem`: past it a send copies only up to 64 KiB queued on
    /// its connection and waits for the rest, and data arriving for a
    /// connection already holding 64 KiB unread is dropped (its ACK kept) for
    /// the peer to send again. Each connection keeps 64 KiB each way whatever
    /// the budget, so every one makes progress. The same figure bounds the
    /// buffer pages busy connections keep committed: past it, the buffer
    /// reclaimer trims busy connections' empty buffers too, not only idle
    /// ones'. 0: no limit. Default: an
    /// eighth of physical memory, at least 64 MiB (see `docs/design.md`,
    /// "Socket buffers").
    pub buffer_budget: usize,
    /// Connections allocated up front (their buffers too), so the first
    /// handshakes do not allocate.
    pub prealloc_connections: usize,
    /// Most connections (open, queued, half-open and closing) at once.
    pub max_connections: usize,
    /// Cap on a listener's backlog (`somaxconn`).
    pub somaxconn: u32,
    /// Most connections in handshake per listener (Linux's
    /// `tcp_max_syn_backlog`): SYNs past it, or past the listener's
    /// backlog, are answered with SYN cookies and take no connection slot.
    /// Keep it well below `max_connections`, so that a SYN flood leaves
    /// slots for the connections its cookies let in.
    pub max_syn_backlog: u32,
    /// Nagle's algorithm (off = TCP_NODELAY, the RPC default).
    pub nagle: bool,
    /// Delayed-ACK time; `None` acknowledges at once.
    pub ack_delay: Option<Duration>,
    /// A half-open or connecting socket that hears nothing for this long is dropped.
    pub handshake_timeout: Duration,
    /// TCP keep-alive: an established connection idle this long sends a
    /// probe, and again at this interval while it stays idle; `None`: off.
    /// Linux leaves it off unless the application turns it on; servers that
    /// must not be held by vanished clients turn it on, so the default is on.
    pub keepalive: Option<Duration>,
    /// An established connection from which nothing (data, ACK, or an answer
    /// to a keep-alive) is heard for this long is dropped, and its requests
    /// fail with `-ETIMEDOUT`, as Linux's do when keep-alive or
    /// retransmission gives up. Bounds every wait on a dead peer, a SEND
    /// waiting for buffer space included. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Most frames taken from the NIC per engine step.
    pub rx_budget: usize,
    /// Seed for smoltcp's ISN generator.
    pub seed: u64,
    /// Most CQEs held in the CQ overflow backlog before submission is
    /// refused: past it the engine takes no new SQE and `submit` answers
    /// `EBUSY` until the application reaps (requests already in flight
    /// still complete into the backlog: nothing is dropped).
    pub max_cq_backlog: usize,
    /// `IORING_SETUP_SUBMIT_ALL`: a submission takes every SQE even when one
    /// fails its checks (the default). Off, as a Linux ring set up without
    /// the flag, the engine stops taking SQEs after one that fails its prep
    /// checks and links to no next SQE (a chain member that links on does
    /// not stop it): those after it stay in the SQ for the next submission.
    pub submit_all: bool,
    /// How long (µs) a driver keeps polling an idle engine before it blocks:
    /// the inline driver inside a wait for completions, the SQPOLL thread
    /// between steps. While blocked, a frame (on a NIC that can notify, such
    /// as the loopback wire), the application (SQPOLL: an SQE after
    /// `IORING_SQ_NEED_WAKEUP`) or the next timer wakes it; on a NIC that
    /// cannot notify (DPDK), it sleeps in steps of 50 µs doubling to 1 ms and
    /// polls between them. `u64::MAX`: never block (always spin).
    pub busy_poll_us: u64,
    /// How each connection decides how much it may have in flight (see
    /// [`Congestion`]).
    pub congestion: Congestion,
    /// Where socket numbers come from (`None`: the engine's own small
    /// integers). `libringline` sets it so that socket numbers are reserved
    /// file descriptors of the process (see [`crate::SocketNumbers`]).
    pub socket_numbers: Option<crate::SocketNumbersHook>,
    /// The number this engine's ring is known by to `IORING_OP_MSG_RING`
    /// (the SQE's `fd`) in the process: `libringline` sets its ring fd;
    /// `None`: one the engine picks (`Inline::ring_fd`). Two live engines
    /// cannot share one.
    pub ring_fd: Option<i32>,
    /// Publish the engine's counters in a shared-memory page,
    /// `/dev/shm/ringline.<pid>.<engine>`, that `ringline stat` (or any
    /// [`crate::statpage::StatReader`]) reads while the engine runs; the
    /// file is removed when the engine is dropped. A step pays one
    /// comparison; see [`crate::statpage`]. Off by default in the library;
    /// the `ringline` commands turn it on.
    pub stat: bool,
    /// How often (engine time) the counters are published.
    pub stat_interval: Duration,
    /// Most connections the page's connection table shows (`ringline stat
    /// --conns`), at most [`crate::statpage::MAX_CONN_ROWS`].
    pub stat_connections: usize,
}

/// The congestion controller of every connection (the engine's, beside
/// smoltcp: see `docs/design.md`, "Loss recovery and congestion control").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Congestion {
    /// Slow start and congestion avoidance as Reno's, with BBR's model as
    /// the loss response: after a loss the window keeps the larger of 0.7
    /// of the flight and twice the measured bottleneck bandwidth (a max
    /// filter over about ten round trips) times the smallest RTT. Random
    /// loss on a path the flight does not fill costs nothing; a full
    /// bottleneck keeps about one BDP queued; a timeout restarts from one
    /// segment. Fills lossy paths, as Linux's `bbr` does.
    #[default]
    Rate,
    /// Loss-based, Westwood+: slow start, congestion avoidance, and on loss
    /// a window cut to the measured bandwidth times the smallest RTT, once
    /// per recovery episode. Yields to loss-based flows that share a
    /// bottleneck; slow on paths with random loss.
    Westwood,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ip: Ipv4Addr::new(10, 0, 0, 1),
            prefix_len: 24,
            gateway: None,
            static_neighbors: Vec::new(),
            rx_buffer: 4 << 20,
            tx_buffer: 4 << 20,
            buffer_budget: default_buffer_budget(),
            prealloc_connections: 0,
            max_connections: 1 << 20,
            somaxconn: 65535,
            max_syn_backlog: 2048,
            nagle: false,
            ack_delay: Some(Duration::from_millis(10)),
            handshake_timeout: Duration::from_secs(30),
            keepalive: Some(Duration::from_secs(60)),
            idle_timeout: Some(Duration::from_secs(180)),
            rx_budget: 256,
            seed: 0x5eed_0f01,
            max_cq_backlog: 1 << 20,
            submit_all: true,
            congestion: Congestion::default(),
            busy_poll_us: DEFAULT_BUSY_POLL_US,
            socket_numbers: None,
            ring_fd: None,
            stat: false,
            stat_interval: Duration::from_millis(100),
            stat_connections: 256,
        }
    }
}

/// An eighth of the machine's physical memory, at least 64 MiB.
#[allow(unsafe_code)] // sysconf: no memory is involved.
fn default_buffer_budget() -> usize {
    // SAFETY: sysconf reads a system constant; no memory is involved.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let phys = if pages > 0 && page > 0 {
        (pages as u64).saturating_mul(page as u64)
    } else {
        0
    };
    usize::try_from(phys / 8)
        .unwrap_or(usize::MAX)
        .max(64 << 20)
}
