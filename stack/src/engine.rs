//! The engine: one NIC port, one ring, one smoltcp `Interface`, and one
//! single-socket `SocketSet` per connection.
//!
//! Per step (see [`Engine::step`]):
//! 1. flush the CQ overflow backlog, then consume SQEs and run their executors;
//! 2. take up to `rx_budget` frames from the NIC: our L2 (Ethernet, ARP), our
//!    4-tuple demux, that connection's smoltcp socket only;
//! 3. service the connections the frames touched (O(ready)): complete accepts,
//!    receives, sends, polls, connects;
//! 4. expire per-connection timers (a hashed wheel fed by each socket's `poll_at`);
//! 5. egress only for dirty connections, then one TX burst.
//!
//! Nothing here scans all connections. Time is passed in (`now_us`), read once
//! per step by the driver.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv4Addr;

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Checksum, Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as SmolDuration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpProtocol, Ipv4Packet, TcpPacket};

use ringline_dataplane::{MacAddr, Nic, TxError, RX_BURST};
use ringline_ring::abi::*;
use ringline_ring::bufring::BufRingConsumer;
use ringline_ring::ring::{EngineRing, RingStats};

use crate::config::EngineConfig;
use crate::hint::prefetch;
use crate::l2::{self, Arp, ArpTable, ETH_HDR};
use crate::legacy::LegacyGroup;
use crate::ops::{OpKind, OpList, Ops, Owner, NIL};
use crate::stats::EngineStats;
use crate::sysclock;
use crate::timer::TimerWheel;
use crate::usermem;

// Linux numbers the engine needs (from libc, narrowed to the types used here).
const POLLIN: u32 = libc::POLLIN as u32;
const POLLOUT: u32 = libc::POLLOUT as u32;
const POLLERR: u32 = libc::POLLERR as u32;
const POLLHUP: u32 = libc::POLLHUP as u32;
const POLLRDNORM: u32 = libc::POLLRDNORM as u32;
const POLLWRNORM: u32 = libc::POLLWRNORM as u32;
const POLLRDHUP: u32 = libc::POLLRDHUP as u32;
const MSG_PEEK: u32 = libc::MSG_PEEK as u32;
const MSG_DONTWAIT: u32 = libc::MSG_DONTWAIT as u32;
const MSG_WAITALL: u32 = libc::MSG_WAITALL as u32;
const MSG_NOSIGNAL: u32 = libc::MSG_NOSIGNAL as u32;
/// `msg_flags` the engine understands on RECV/SEND; others are ignored as Linux
/// ignores flags that do not apply to TCP.
const SOCK_NONBLOCK: u64 = libc::SOCK_NONBLOCK as u64;
const SOCK_CLOEXEC: u64 = libc::SOCK_CLOEXEC as u64;

/// Inline rounds a multishot recv may run per event before yielding to other
/// connections (the kernel's `MULTISHOT_MAX_RETRY`).
const MULTISHOT_MAX_RETRY: usize = 32;
/// Ephemeral port range (Linux's default `ip_local_port_range`).
const EPHEMERAL_LO: u16 = 32768;
const EPHEMERAL_HI: u16 = 60999;
/// Bound on egress rounds per connection per step.
const EGRESS_ROUNDS: usize = 64;

/// The hasher of the 4-tuple and port maps: keys are integers, so a
/// multiply-and-rotate accumulator plus the splitmix64 finaliser in `finish`.
/// The finaliser matters: hashbrown picks the bucket from the hash's LOW bits,
/// and a bare multiply leaves those depending only on the key's low bits --
/// the local port, the same for every connection to a listener -- which put
/// every connection of a server on one probe sequence (an O(N) demux).
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(v as u64)
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Reads the application's `__kernel_timespec` at `addr` as µs; `-EFAULT` for
/// a bad address, `-EINVAL` for a negative or unnormalised time.
fn read_timespec_us(addr: u64) -> Result<u64, i32> {
    let ts: [i64; 2] = usermem::read(addr)?;
    if ts[0] < 0 || !(0..1_000_000_000).contains(&ts[1]) {
        return Err(-libc::EINVAL);
    }
    Ok((ts[0] as u64)
        .saturating_mul(1_000_000)
        .saturating_add(ts[1] as u64 / 1000))
}

/// The demux key of an Ethernet + IPv4 + TCP frame, read without any
/// validation (for prefetching; `on_frame` validates).
fn peek_tuple(f: &[u8]) -> Option<u64> {
    if f.len() < ETH_HDR + 20
        || f[12..14] != l2::ETHERTYPE_IPV4.to_be_bytes()
        || f[ETH_HDR + 9] != u8::from(IpProtocol::Tcp)
    {
        return None;
    }
    let ihl = (f[ETH_HDR] & 0x0f) as usize * 4;
    let t = ETH_HDR + ihl;
    if f.len() < t + 4 {
        return None;
    }
    let src = Ipv4Addr::new(
        f[ETH_HDR + 12],
        f[ETH_HDR + 13],
        f[ETH_HDR + 14],
        f[ETH_HDR + 15],
    );
    let sport = u16::from_be_bytes([f[t], f[t + 1]]);
    let dport = u16::from_be_bytes([f[t + 2], f[t + 3]]);
    Some(tuple_key(src, sport, dport))
}

fn tuple_key(remote: Ipv4Addr, remote_port: u16, local_port: u16) -> u64 {
    ((u32::from(remote) as u64) << 32) | ((remote_port as u64) << 16) | local_port as u64
}

/// Where a connection is in its life, from the engine's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Slot unused.
    Free,
    /// Passive open in progress (counts against its listener's backlog).
    Handshake,
    /// Established, waiting in its listener's accept queue.
    Queued,
    /// Active open in progress (CONNECT pending or not).
    Connecting,
    /// Has a socket number.
    Open,
    /// Socket number closed; TCP is finishing (FIN, TIME-WAIT) or sending RST.
    Orphan,
}

struct Conn {
    set: SocketSet<'static>,
    h: SocketHandle,
    phase: Phase,
    key: Option<u64>,
    remote_ip: Ipv4Addr,
    remote_port: u16,
    local_port: u16,
    fd: i32,
    /// Listener index and generation while Handshake/Queued.
    listener: u32,
    listener_gen: u32,
    recv: OpList,
    send: OpList,
    poll: OpList,
    connect_op: u32,
    in_dirty: bool,
    in_ready: bool,
    established: bool,
    fin: bool,
    reset: bool,
    /// The reset was reported (`-ECONNRESET`) once; later ops see EOF/EPIPE.
    reset_reported: bool,
    aborted: bool,
    rd_shut: bool,
    wr_shut: bool,
    started_us: u64,
    last_state: tcp::State,
    /// Address of the socket inside `set`, for prefetching only (never
    /// dereferenced): the set holds one socket in a `Vec` of capacity 1, so
    /// the socket does not move for the life of the `Conn`.
    sock_addr: usize,
}

impl Conn {
    fn sock(&mut self) -> &mut tcp::Socket<'static> {
        self.set.get_mut::<tcp::Socket>(self.h)
    }
    fn sock_ref(&self) -> &tcp::Socket<'static> {
        self.set.get::<tcp::Socket>(self.h)
    }
}

struct Listener {
    live: bool,
    gen: u32,
    port: u16,
    backlog: u32,
    half_open: u32,
    queue: VecDeque<u32>,
    accept: OpList,
    poll: OpList,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fd {
    Free,
    /// Created by SOCKET; `port` is the bound port (0 = unbound).
    Fresh {
        port: u16,
    },
    Listener(u32),
    Conn(u32),
}

/// Errors creating an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The NIC's MTU is too small for IPv4/TCP.
    #[error("NIC MTU {0} is too small (need at least 576)")]
    MtuTooSmall(usize),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}

/// The device smoltcp sees: at most one received IP packet, and transmit
/// straight into the NIC behind our Ethernet header.
struct Port<'a, N: Nic> {
    nic: &'a mut N,
    rx: Option<&'a [u8]>,
    dst_mac: MacAddr,
    src_mac: MacAddr,
    caps: &'a DeviceCapabilities,
    scratch: &'a mut [u8],
    stats: &'a mut EngineStats,
}

struct RxTok<'a>(&'a [u8]);

impl RxToken for RxTok<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

struct TxTok<'b, N: Nic> {
    nic: &'b mut N,
    dst_mac: MacAddr,
    src_mac: MacAddr,
    scratch: &'b mut [u8],
    stats: &'b mut EngineStats,
}

impl<N: Nic> TxToken for TxTok<'_, N> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut f = Some(f);
        let mut out = None;
        let (dst, src) = (self.dst_mac, self.src_mac);
        let mut build = |buf: &mut [u8]| {
            l2::write_eth(buf, dst, src, l2::ETHERTYPE_IPV4);
            if let Some(f) = f.take() {
                out = Some(f(&mut buf[ETH_HDR..]));
            }
        };
        let mut r = self.nic.tx_frame(ETH_HDR + len, &mut build);
        if r == Err(TxError::Full) {
            self.nic.tx_flush();
            r = self.nic.tx_frame(ETH_HDR + len, &mut build);
        }
        match out {
            Some(v) if r.is_ok() => {
                self.stats.tx_segments += 1;
                v
            }
            _ => {
                // The NIC cannot take the frame: smoltcp must still be given a
                // buffer; the segment is lost and TCP will retransmit it.
                self.stats.tx_dropped += 1;
                let f = f.take().expect("builder not called when tx_frame fails");
                f(&mut self.scratch[..len])
            }
        }
    }
}

impl<N: Nic> Device for Port<'_, N> {
    type RxToken<'b>
        = RxTok<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxTok<'b, N>
    where
        Self: 'b;

    fn receive(&mut self, _ts: Instant) -> Option<(RxTok<'_>, TxTok<'_, N>)> {
        let pkt = self.rx.take()?;
        Some((
            RxTok(pkt),
            TxTok {
                nic: self.nic,
                dst_mac: self.dst_mac,
                src_mac: self.src_mac,
                scratch: self.scratch,
                stats: self.stats,
            },
        ))
    }

    fn transmit(&mut self, _ts: Instant) -> Option<TxTok<'_, N>> {
        // A full NIC makes smoltcp stop (Exhausted) with the data still in the
        // socket; the connection stays dirty and egress resumes next step.
        if !self.nic.tx_ready() {
            self.stats.tx_full += 1;
            return None;
        }
        Some(TxTok {
            nic: self.nic,
            dst_mac: self.dst_mac,
            src_mac: self.src_mac,
            scratch: self.scratch,
            stats: self.stats,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

/// Where a link chain is (see `IOSQE_IO_LINK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChainState {
    /// Its current head request is in flight.
    Running,
    /// Every request so far succeeded (or was hard-linked); the next may start.
    Ok,
    /// A request failed: the rest complete with `-ECANCELED`.
    Failed,
}

/// SQEs linked behind a running request.
struct Chain {
    pending: VecDeque<Sqe>,
    state: ChainState,
    /// Still receiving SQEs from the current submission.
    building: bool,
    /// The parked op of the running head (`NIL` if it completed at once).
    head_op: u32,
}

/// `IORING_NOTIF_USAGE_ZC_COPIED`: the zero-copy send copied the data.
const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// The smoltcp device over the engine's NIC, borrowing only the fields it
/// needs (so the caller can still borrow a connection's socket set).
macro_rules! engine_port {
    ($e:ident, $rx:expr, $dst:expr) => {
        Port {
            nic: &mut $e.nic,
            rx: $rx,
            dst_mac: $dst,
            src_mac: $e.mac,
            caps: &$e.caps,
            scratch: &mut $e.scratch,
            stats: &mut $e.stats,
        }
    };
}

/// The engine. Generic over the NIC; owns the engine half of one ring.
pub struct Engine<N: Nic> {
    nic: N,
    ring: EngineRing,
    iface: Interface,
    caps: DeviceCapabilities,
    cfg: EngineConfig,
    ip: Ipv4Addr,
    mac: MacAddr,
    netmask: u32,
    now_us: u64,
    /// Engine time is a test's virtual clock: absolute timeouts are read as
    /// engine µs on every clock (see [`Engine::set_virtual_time`]).
    virtual_time: bool,
    conns: Vec<Conn>,
    free_conns: Vec<u32>,
    live_conns: usize,
    tuples: FxMap<u64, u32>,
    fds: Vec<Fd>,
    free_fds: Vec<i32>,
    listeners: Vec<Listener>,
    free_listeners: Vec<u32>,
    listening: FxMap<u16, u32>,
    bound: FxMap<u16, i32>,
    ops: Ops,
    timers: TimerWheel,
    timeouts: BinaryHeap<Reverse<(u64, u32)>>,
    dirty: Vec<u32>,
    dirty_work: Vec<u32>,
    ready: Vec<u32>,
    ready_work: Vec<u32>,
    arp_wait: Vec<u32>,
    rx_batch: Vec<N::Frame>,
    scratch: Vec<u8>,
    empty_set: SocketSet<'static>,
    bufrings: FxMap<u16, BufRingConsumer>,
    legacy: FxMap<u16, LegacyGroup>,
    arp: ArpTable,
    next_port: u16,
    stats: EngineStats,
    found: Vec<u32>,
    chains: Vec<Chain>,
    free_chains: Vec<u32>,
    /// The chain SQEs of the current submission are appended to.
    building: u32,
    /// The chain of the SQE being issued (`NIL` if unlinked).
    issuing_chain: u32,
    /// Chain heads that completed: (chain, success).
    chain_events: Vec<(u32, bool)>,
    /// SQEs held back by `IOSQE_IO_DRAIN`, in submission order.
    drain_q: VecDeque<Sqe>,
    /// TIMEOUTs with a completion count: (CQE count to reach, op, deadline).
    count_timeouts: Vec<(u64, u32, u64)>,
}

/// Outcome of trying to advance a parked op.
enum Progress {
    /// Completed (final CQE posted, op freed).
    Done,
    /// Still waiting.
    Wait,
    /// Did its share of work this step; continue next step.
    Yield,
}

impl<N: Nic> Engine<N> {
    /// Creates an engine on `nic`, completing into `ring`, at engine time `now_us`.
    pub fn new(
        nic: N,
        ring: EngineRing,
        cfg: EngineConfig,
        now_us: u64,
    ) -> Result<Self, EngineError> {
        let nic_caps = nic.caps();
        if nic_caps.mtu < 576 {
            return Err(EngineError::MtuTooSmall(nic_caps.mtu));
        }
        if cfg.prefix_len > 32 || cfg.rx_buffer < 1024 || cfg.tx_buffer < 1024 {
            return Err(EngineError::Config(
                "prefix_len <= 32, buffers >= 1024 bytes",
            ));
        }
        if cfg.rx_budget == 0 {
            return Err(EngineError::Config("rx_budget must be > 0"));
        }
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = nic_caps.mtu;
        caps.max_burst_size = None;
        if nic_caps.rx_checksum_offload && nic_caps.tx_checksum_offload {
            caps.checksum.ipv4 = Checksum::None;
            caps.checksum.tcp = Checksum::None;
        }
        let mut scratch = vec![0u8; 65536 + ETH_HDR];
        let mut stats = EngineStats::default();
        let mut nic = nic;
        let mut iface_cfg = IfaceConfig::new(HardwareAddress::Ip);
        iface_cfg.random_seed = cfg.seed;
        let iface = {
            let mut port = Port {
                nic: &mut nic,
                rx: None,
                dst_mac: l2::BROADCAST,
                src_mac: nic_caps.mac,
                caps: &caps,
                scratch: &mut scratch,
                stats: &mut stats,
            };
            let mut iface =
                Interface::new(iface_cfg, &mut port, Instant::from_micros(now_us as i64));
            iface.update_ip_addrs(|a| {
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(cfg.ip), cfg.prefix_len));
            });
            if let Some(gw) = cfg.gateway {
                let _ = iface.routes_mut().add_default_ipv4_route(gw);
            }
            iface
        };
        let netmask = if cfg.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - cfg.prefix_len)
        };
        let mut arp = ArpTable::default();
        for (ip, mac) in &cfg.static_neighbors {
            arp.learn(*ip, *mac);
        }
        let sq = ring.sq_entries() as usize;
        let mut e = Engine {
            nic,
            ring,
            iface,
            caps,
            ip: cfg.ip,
            mac: nic_caps.mac,
            netmask,
            now_us,
            virtual_time: false,
            conns: Vec::new(),
            free_conns: Vec::new(),
            live_conns: 0,
            tuples: FxMap::default(),
            fds: Vec::new(),
            free_fds: Vec::new(),
            listeners: Vec::new(),
            free_listeners: Vec::new(),
            listening: FxMap::default(),
            bound: FxMap::default(),
            ops: Ops::with_capacity(sq * 4),
            timers: TimerWheel::new(now_us),
            timeouts: BinaryHeap::new(),
            dirty: Vec::with_capacity(1024),
            dirty_work: Vec::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            ready_work: Vec::with_capacity(1024),
            arp_wait: Vec::new(),
            rx_batch: Vec::with_capacity(RX_BURST),
            scratch,
            empty_set: SocketSet::new(Vec::new()),
            bufrings: FxMap::default(),
            legacy: FxMap::default(),
            arp,
            next_port: EPHEMERAL_LO + (cfg.seed % 1000) as u16,
            stats,
            found: Vec::new(),
            chains: Vec::new(),
            free_chains: Vec::new(),
            building: NIL,
            issuing_chain: NIL,
            chain_events: Vec::with_capacity(64),
            drain_q: VecDeque::new(),
            count_timeouts: Vec::new(),
            cfg,
        };
        let n = e.cfg.prealloc_connections.min(e.cfg.max_connections);
        e.conns.reserve(n);
        e.tuples.reserve(n);
        e.fds.reserve(n);
        for _ in 0..n {
            let c = e.new_conn();
            e.conns.push(c);
        }
        e.free_conns.extend((0..n as u32).rev());
        e.timers.arm(0, 0);
        e.timers.cancel(0);
        Ok(e)
    }

    /// The NIC.
    pub fn nic(&self) -> &N {
        &self.nic
    }

    /// The NIC, mutably (for tests that reach into the wire).
    pub fn nic_mut(&mut self) -> &mut N {
        &mut self.nic
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats;
        s.conns_live = self.live_conns as u64;
        s.ops_in_flight = self.ops.live() as u64;
        s
    }

    /// Ring statistics (memory backing, overflow backlog).
    pub fn ring_stats(&self) -> RingStats {
        self.ring.stats()
    }

    /// The engine half of the ring.
    pub fn ring(&self) -> &EngineRing {
        &self.ring
    }

    /// Says that the `now_us` given to [`Engine::step`] is a virtual clock
    /// (a deterministic test's), not the machine's: an absolute TIMEOUT then
    /// names engine time on every clock (MONOTONIC, BOOTTIME, REALTIME)
    /// instead of being converted from that clock. [`crate::open`] sets it
    /// for [`crate::Clock::Manual`].
    pub fn set_virtual_time(&mut self, virtual_time: bool) {
        self.virtual_time = virtual_time;
    }

    /// CQEs posted and not yet consumed by the application.
    pub fn cq_ready(&self) -> u32 {
        self.ring.cq_ready()
    }

    /// Registers a provided-buffer ring for group `bgid`
    /// (`IORING_REGISTER_PBUF_RING`). `-EEXIST` if the group exists.
    pub fn register_buf_ring(&mut self, bgid: u16, ring: BufRingConsumer) -> Result<(), i32> {
        if self.bufrings.contains_key(&bgid) || self.legacy.contains_key(&bgid) {
            return Err(-libc::EEXIST);
        }
        self.bufrings.insert(bgid, ring);
        Ok(())
    }

    /// Unregisters group `bgid`'s buffer ring. `-EINVAL` if there is none.
    pub fn unregister_buf_ring(&mut self, bgid: u16) -> Result<(), i32> {
        self.bufrings.remove(&bgid).map(|_| ()).ok_or(-libc::EINVAL)
    }

    /// Runs one iteration at engine time `now_us` (µs, monotonic). Returns
    /// whether anything happened (SQEs, frames, timers, egress).
    pub fn step(&mut self, now_us: u64) -> bool {
        self.run_step(now_us, None)
    }

    /// One step for a caller waiting for `want` CQEs (the inline driver's
    /// wait loop). It takes SQEs, frames and the completions they cause as
    /// [`Engine::step`] does; if that brings the CQ to `want`, it returns
    /// there and leaves timers and egress to the next step, which the
    /// caller's next `enter` runs, as io_uring's `DEFER_TASKRUN` leaves task
    /// work to the next `io_uring_enter`. Frames that input itself produced
    /// (replies paired with received frames) still go out now.
    ///
    /// The completion reaches the application one egress pass sooner, and the
    /// egress for the delayed ACK merges with the egress of the reply the
    /// application is about to send: one pass over the connection, not two.
    pub fn step_wait(&mut self, now_us: u64, want: u32) -> bool {
        self.run_step(now_us, Some(want))
    }

    fn run_step(&mut self, now_us: u64, want: Option<u32>) -> bool {
        self.now_us = now_us.max(self.now_us);
        self.stats.steps += 1;
        self.ring.flush_overflow();
        let sqes = self.process_sqes();
        self.run_drain();
        let frames = self.poll_rx();
        self.run_ready();
        if let Some(want) = want {
            // Requests completed by this input may release linked or drained
            // SQEs; settle them before judging whether the caller has enough.
            self.pump_chains();
            self.run_drain();
            if self.ring.cq_ready() >= want {
                self.stats.deferred_egress += 1;
                self.nic.tx_flush();
                return true;
            }
        }
        self.expire_timers();
        let egressed = self.run_egress();
        self.run_ready();
        // Requests completed by traffic or timers may release linked or drained SQEs.
        self.pump_chains();
        self.run_drain();
        if !self.count_timeouts.is_empty() {
            self.check_count_timeouts();
            self.pump_chains();
        }
        let sent = self.nic.tx_flush();
        self.ring.flush_overflow();
        sqes + frames + egressed + sent > 0 || !self.ready.is_empty() || !self.dirty.is_empty()
    }

    /// Whether the engine has immediate work queued (ready or dirty connections).
    pub fn has_pending_work(&self) -> bool {
        !self.ready.is_empty() || !self.dirty.is_empty()
    }

    /// Whether a step now would have nothing to do but look at the timers:
    /// no frame waiting at the NIC (as far as [`Nic::rx_pending`] can tell),
    /// no SQE, no connection to service or send, no CQE in the overflow
    /// backlog. A few loads; the driver's wait loop asks it between steps.
    pub fn quiet(&self) -> bool {
        !self.has_pending_work()
            && !self.nic.rx_pending()
            && self.ring.sq_ready() == 0
            && self.ring.backlog_len() == 0
    }

    fn instant(&self) -> Instant {
        Instant::from_micros(self.now_us as i64)
    }

    // ------------------------------------------------------------------
    // Connections
    // ------------------------------------------------------------------

    fn new_conn(&self) -> Conn {
        let rx = tcp::SocketBuffer::new(vec![0u8; self.cfg.rx_buffer]);
        let tx = tcp::SocketBuffer::new(vec![0u8; self.cfg.tx_buffer]);
        let sock = tcp::Socket::new(rx, tx);
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let h = set.add(sock);
        let sock_addr = set.get::<tcp::Socket>(h) as *const tcp::Socket as usize;
        Conn {
            sock_addr,
            set,
            h,
            phase: Phase::Free,
            key: None,
            remote_ip: Ipv4Addr::UNSPECIFIED,
            remote_port: 0,
            local_port: 0,
            fd: -1,
            listener: NIL,
            listener_gen: 0,
            recv: OpList::default(),
            send: OpList::default(),
            poll: OpList::default(),
            connect_op: NIL,
            in_dirty: false,
            in_ready: false,
            established: false,
            fin: false,
            reset: false,
            reset_reported: false,
            aborted: false,
            rd_shut: false,
            wr_shut: false,
            started_us: 0,
            last_state: tcp::State::Closed,
        }
    }

    fn alloc_conn(&mut self) -> Option<u32> {
        if self.live_conns >= self.cfg.max_connections {
            return None;
        }
        let cid = match self.free_conns.pop() {
            Some(c) => c,
            None => {
                let c = self.new_conn();
                self.conns.push(c);
                (self.conns.len() - 1) as u32
            }
        };
        self.live_conns += 1;
        let now = self.now_us;
        let (nagle, ack_delay, hs) = (
            self.cfg.nagle,
            self.cfg.ack_delay,
            self.cfg.handshake_timeout,
        );
        let c = &mut self.conns[cid as usize];
        c.phase = Phase::Handshake;
        c.key = None;
        c.fd = -1;
        c.listener = NIL;
        c.recv = OpList::default();
        c.send = OpList::default();
        c.poll = OpList::default();
        c.connect_op = NIL;
        c.established = false;
        c.fin = false;
        c.reset = false;
        c.reset_reported = false;
        c.aborted = false;
        c.rd_shut = false;
        c.wr_shut = false;
        c.started_us = now;
        c.last_state = tcp::State::Closed;
        let s = c.sock();
        // A reused socket keeps its congestion state; re-create it (smoltcp pitfall).
        s.set_congestion_control(tcp::CongestionControl::Cubic);
        s.set_nagle_enabled(nagle);
        s.set_ack_delay(ack_delay.map(|d| SmolDuration::from_micros(d.as_micros() as u64)));
        s.set_keep_alive(None);
        s.set_timeout(Some(SmolDuration::from_micros(hs.as_micros() as u64)));
        self.stats.conns_created += 1;
        Some(cid)
    }

    /// Releases a connection slot: its tuple, timer and any ops still parked.
    fn free_conn(&mut self, cid: u32) {
        let c = &mut self.conns[cid as usize];
        if c.phase == Phase::Free {
            return;
        }
        if let Some(k) = c.key.take() {
            if self.tuples.get(&k) == Some(&cid) {
                self.tuples.remove(&k);
            }
        }
        if c.sock_ref().state() != tcp::State::Closed {
            c.sock().abort();
        }
        c.phase = Phase::Free;
        self.timers.cancel(cid);
        self.cancel_conn_ops(cid, -libc::ECANCELED);
        self.live_conns -= 1;
        self.free_conns.push(cid);
        self.stats.conns_freed += 1;
    }

    fn mark_dirty(&mut self, cid: u32) {
        let c = &mut self.conns[cid as usize];
        if !c.in_dirty {
            c.in_dirty = true;
            self.dirty.push(cid);
        }
    }

    fn mark_ready(&mut self, cid: u32) {
        let c = &mut self.conns[cid as usize];
        if !c.in_ready {
            c.in_ready = true;
            self.ready.push(cid);
        }
    }

    fn alloc_fd(&mut self, f: Fd) -> i32 {
        match self.free_fds.pop() {
            Some(fd) => {
                self.fds[fd as usize] = f;
                fd
            }
            None => {
                self.fds.push(f);
                (self.fds.len() - 1) as i32
            }
        }
    }

    fn free_fd(&mut self, fd: i32) {
        self.fds[fd as usize] = Fd::Free;
        self.free_fds.push(fd);
    }

    fn fd(&self, fd: i32) -> Option<Fd> {
        if fd < 0 {
            return None;
        }
        match self.fds.get(fd as usize) {
            Some(Fd::Free) | None => None,
            Some(f) => Some(*f),
        }
    }

    fn on_link(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & self.netmask) == (u32::from(self.ip) & self.netmask)
    }

    fn next_hop(&self, ip: Ipv4Addr) -> Ipv4Addr {
        match self.cfg.gateway {
            Some(gw) if !self.on_link(ip) => gw,
            _ => ip,
        }
    }

    // ------------------------------------------------------------------
    // Completions
    // ------------------------------------------------------------------

    fn post(&mut self, user_data: u64, res: i32, flags: u32) {
        self.ring.post_cqe(user_data, res, flags);
        self.stats.cqes += 1;
    }

    /// Unlinks `id` from whatever list owns it.
    fn unlink(&mut self, id: u32) {
        let owner = self.ops.get(id).owner;
        match owner {
            Owner::None | Owner::Timeout => {
                self.ops.get_mut(id).owner = Owner::None;
            }
            Owner::Recv(c) => self.ops.unlink(&mut self.conns[c as usize].recv, id),
            Owner::Send(c) => self.ops.unlink(&mut self.conns[c as usize].send, id),
            Owner::ConnPoll(c) => self.ops.unlink(&mut self.conns[c as usize].poll, id),
            Owner::Connect(c) => {
                self.conns[c as usize].connect_op = NIL;
                self.ops.get_mut(id).owner = Owner::None;
            }
            Owner::Accept(l) => self.ops.unlink(&mut self.listeners[l as usize].accept, id),
            Owner::ListenPoll(l) => self.ops.unlink(&mut self.listeners[l as usize].poll, id),
        }
    }

    /// Final CQE of a parked op: unlink, free, post (unless skipped on success),
    /// then settle its LINK_TIMEOUT and its link chain.
    fn finish(&mut self, id: u32, res: i32, flags: u32) {
        self.unlink(id);
        let op = self.ops.remove(id);
        if let OpKind::Send { zc: zc @ 1.., .. } = op.kind {
            // SEND_ZC: the request CQE says a notification follows; the data
            // was copied into the socket buffer, so it is free at once.
            self.post(op.user_data, res, flags | IORING_CQE_F_MORE);
            let usage = if zc == 2 {
                IORING_NOTIF_USAGE_ZC_COPIED
            } else {
                0
            };
            self.post(op.user_data, usage as i32, IORING_CQE_F_NOTIF);
        } else if !(op.skip_success && res >= 0) {
            self.post(op.user_data, res, flags);
        }
        if res < 0 {
            self.stats.op_errors += 1;
        }
        let lt = op.link_timeout;
        if lt != NIL && self.ops.is_live(lt) {
            if let OpKind::LinkTimeout { target, .. } = self.ops.get(lt).kind {
                if target == id {
                    // The request finished first: its timeout is cancelled.
                    self.finish(lt, -libc::ECANCELED, 0);
                }
            }
        }
        if op.chain != NIL {
            // A MSG_WAITALL transfer that ends short (EOF) fails the link, as in Linux.
            let short = match op.kind {
                OpKind::Recv {
                    len,
                    group: None,
                    msg_flags,
                    ..
                } => msg_flags & MSG_WAITALL != 0 && res >= 0 && (res as u32) < len,
                OpKind::Send {
                    len, waitall: true, ..
                } => res >= 0 && (res as u32) < len,
                _ => false,
            };
            // IORING_TIMEOUT_ETIME_SUCCESS: a TIMEOUT that fires does not
            // break its link.
            let etime_ok = res == -libc::ETIME
                && matches!(
                    op.kind,
                    OpKind::Timeout {
                        etime_success: true,
                        ..
                    }
                );
            let ok = (res >= 0 && !short) || etime_ok || op.sqe_flags & IOSQE_IO_HARDLINK != 0;
            self.chain_events.push((op.chain, ok));
        }
    }

    fn cancel_conn_ops(&mut self, cid: u32, res: i32) {
        loop {
            let c = &self.conns[cid as usize];
            let next = c
                .recv
                .front()
                .or(c.send.front())
                .or(c.poll.front())
                .or((c.connect_op != NIL).then_some(c.connect_op));
            match next {
                Some(id) => self.finish(id, res, 0),
                None => break,
            }
        }
    }

    // ------------------------------------------------------------------
    // Ingress
    // ------------------------------------------------------------------

    fn poll_rx(&mut self) -> usize {
        let mut total = 0;
        let mut batch = std::mem::take(&mut self.rx_batch);
        while total < self.cfg.rx_budget {
            let max = RX_BURST.min(self.cfg.rx_budget - total);
            let n = self.nic.rx_burst(&mut batch, max);
            if n == 0 {
                break;
            }
            total += n;
            // The prefetch pass's demux results serve as hints, so a burst
            // looks each tuple up once.
            let hints = if n > 1 {
                self.prefetch_burst(&batch)
            } else {
                [NIL; RX_BURST]
            };
            for (i, frame) in batch.drain(..).enumerate() {
                self.on_frame(frame.as_ref(), hints[i]);
                self.nic.rx_release(frame);
            }
        }
        self.rx_batch = batch;
        self.stats.rx_frames += total as u64;
        total
    }

    /// Starts the cache misses a burst of frames will take, all at once,
    /// before any of them is processed (as DPDK applications do): first the
    /// frames' headers, then each frame's connection slot and timer node,
    /// then its socket and the receive op waiting on it.
    /// With thousands of connections these are misses to memory, and
    /// processing the frames one by one would wait for each in turn. Only a
    /// hint: a frame that does not parse here is simply not prefetched.
    /// Returns, per frame, the connection its tuple mapped to (`NIL` for
    /// none), a hint `on_ipv4` checks before trusting: an earlier frame of
    /// the burst may close that connection.
    fn prefetch_burst(&self, batch: &[N::Frame]) -> [u32; RX_BURST] {
        for f in batch {
            let p = f.as_ref().as_ptr() as usize;
            prefetch(p);
            prefetch(p + 64);
        }
        let mut cids = [NIL; RX_BURST];
        for (slot, f) in cids.iter_mut().zip(batch) {
            if let Some(key) = peek_tuple(f.as_ref()) {
                if let Some(&cid) = self.tuples.get(&key) {
                    *slot = cid;
                    let c = &self.conns[cid as usize] as *const Conn as usize;
                    prefetch(c);
                    prefetch(c + 64);
                    if let Some(t) = self.timers.node_addr(cid) {
                        prefetch(t);
                    }
                }
            }
        }
        for &cid in cids.iter().take(batch.len()) {
            if cid != NIL {
                let c = &self.conns[cid as usize];
                for off in (0..std::mem::size_of::<tcp::Socket>()).step_by(64) {
                    prefetch(c.sock_addr + off);
                }
                // The receive the segment will complete.
                if let Some(op) = c.recv.first().and_then(|id| self.ops.addr(id)) {
                    prefetch(op);
                }
            }
        }
        cids
    }

    fn on_frame(&mut self, frame: &[u8], hint: u32) {
        let Some(eth) = l2::parse_eth(frame) else {
            self.stats.malformed += 1;
            return;
        };
        if eth.dst != self.mac && eth.dst != l2::BROADCAST {
            self.stats.not_for_us += 1;
            return;
        }
        match eth.ethertype {
            l2::ETHERTYPE_ARP => self.on_arp(&frame[ETH_HDR..]),
            l2::ETHERTYPE_IPV4 => self.on_ipv4(&frame[ETH_HDR..], eth.src, hint),
            _ => self.stats.unsupported += 1,
        }
    }

    fn on_arp(&mut self, p: &[u8]) {
        let Some(arp) = l2::parse_arp(p) else {
            self.stats.malformed += 1;
            return;
        };
        self.stats.arp_rx += 1;
        if self.on_link(arp.spa) && !arp.spa.is_unspecified() && self.arp.learn(arp.spa, arp.sha) {
            // Connections waiting for this neighbour can send now.
            let waiting = std::mem::take(&mut self.arp_wait);
            for cid in &waiting {
                self.mark_dirty(*cid);
            }
            self.arp_wait = waiting;
            self.arp_wait.clear();
        }
        if arp.op == l2::ARP_REQUEST && arp.tpa == self.ip {
            let reply = Arp {
                op: l2::ARP_REPLY,
                sha: self.mac,
                spa: self.ip,
                tha: arp.sha,
                tpa: arp.spa,
            };
            self.send_arp(arp.sha, &reply);
        }
    }

    fn send_arp(&mut self, dst: MacAddr, arp: &Arp) {
        let src = self.mac;
        let mut build = |buf: &mut [u8]| {
            l2::write_eth(buf, dst, src, l2::ETHERTYPE_ARP);
            l2::write_arp(&mut buf[ETH_HDR..], arp);
            buf[ETH_HDR + l2::ARP_LEN..].fill(0);
        };
        // Minimum Ethernet payload is 46 bytes; pad the 28-byte ARP.
        if self.nic.tx_frame(ETH_HDR + 46, &mut build).is_ok() {
            self.stats.arp_tx += 1;
        } else {
            self.stats.tx_dropped += 1;
        }
    }

    fn on_ipv4(&mut self, ip: &[u8], src_mac: MacAddr, hint: u32) {
        let Ok(pkt) = Ipv4Packet::new_checked(ip) else {
            self.stats.malformed += 1;
            return;
        };
        let total = pkt.total_len() as usize;
        if !matches!(self.caps.checksum.ipv4, Checksum::None) && !pkt.verify_checksum() {
            self.stats.malformed += 1;
            return;
        }
        if pkt.dst_addr() != self.ip {
            self.stats.not_for_us += 1;
            return;
        }
        if pkt.more_frags() || pkt.frag_offset() != 0 {
            self.stats.unsupported += 1;
            return;
        }
        if pkt.next_header() != IpProtocol::Tcp {
            self.stats.unsupported += 1;
            return;
        }
        let src = pkt.src_addr();
        let Ok(tcp) = TcpPacket::new_checked(pkt.payload()) else {
            self.stats.malformed += 1;
            return;
        };
        let (sport, dport, syn, ack, rst) = (
            tcp.src_port(),
            tcp.dst_port(),
            tcp.syn(),
            tcp.ack(),
            tcp.rst(),
        );
        let ip = &ip[..total];
        if self.on_link(src) && self.arp.lookup(src).is_none() {
            self.arp.learn(src, src_mac);
        }
        let key = tuple_key(src, sport, dport);
        let known = if hint != NIL
            && self.conns[hint as usize].key == Some(key)
            && self.conns[hint as usize].phase != Phase::Free
        {
            Some(hint)
        } else {
            self.tuples.get(&key).copied()
        };
        if let Some(cid) = known {
            self.feed(cid, ip, src_mac);
            return;
        }
        if syn && !ack && !rst {
            if let Some(&lid) = self.listening.get(&dport) {
                self.admit(lid, key, src, sport, dport, ip, src_mac);
                return;
            }
        }
        if rst {
            self.stats.no_socket += 1;
            return;
        }
        // No socket: an empty set makes smoltcp answer with the right RST.
        self.stats.no_socket += 1;
        let mut port = engine_port!(self, Some(ip), src_mac);
        let now = Instant::from_micros(self.now_us as i64);
        self.iface
            .poll_ingress_single(now, &mut port, &mut self.empty_set);
    }

    /// A SYN for a listened port with no socket yet: the backlog decides.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &mut self,
        lid: u32,
        key: u64,
        src: Ipv4Addr,
        sport: u16,
        dport: u16,
        ip: &[u8],
        src_mac: MacAddr,
    ) {
        let l = &self.listeners[lid as usize];
        if l.half_open as usize + l.queue.len() >= l.backlog as usize {
            // Over the backlog: drop silently so the client retransmits.
            self.stats.syn_dropped += 1;
            return;
        }
        let Some(cid) = self.alloc_conn() else {
            self.stats.syn_dropped += 1;
            return;
        };
        let gen = self.listeners[lid as usize].gen;
        self.listeners[lid as usize].half_open += 1;
        let c = &mut self.conns[cid as usize];
        c.phase = Phase::Handshake;
        c.listener = lid;
        c.listener_gen = gen;
        c.key = Some(key);
        c.remote_ip = src;
        c.remote_port = sport;
        c.local_port = dport;
        if c.sock().listen(dport).is_err() {
            self.listeners[lid as usize].half_open -= 1;
            self.free_conn(cid);
            self.stats.syn_dropped += 1;
            return;
        }
        self.conns[cid as usize].last_state = tcp::State::Listen;
        self.tuples.insert(key, cid);
        self.feed(cid, ip, src_mac);
    }

    fn feed(&mut self, cid: u32, ip: &[u8], src_mac: MacAddr) {
        let now = Instant::from_micros(self.now_us as i64);
        let c = &mut self.conns[cid as usize];
        let mut port = engine_port!(self, Some(ip), src_mac);
        self.iface.poll_ingress_single(now, &mut port, &mut c.set);
        self.mark_ready(cid);
        self.mark_dirty(cid);
    }

    // ------------------------------------------------------------------
    // Servicing connections touched this step
    // ------------------------------------------------------------------

    /// Services every connection on the ready list, clearing its flag first;
    /// connections readied again meanwhile wait for the next round.
    fn run_ready(&mut self) {
        std::mem::swap(&mut self.ready, &mut self.ready_work);
        let mut work = std::mem::take(&mut self.ready_work);
        for &cid in &work {
            self.conns[cid as usize].in_ready = false;
            if self.conns[cid as usize].phase != Phase::Free {
                self.service(cid);
            }
        }
        work.clear();
        self.ready_work = work;
    }

    /// Reacts to whatever happened to `cid`: state changes, data, space, EOF.
    fn service(&mut self, cid: u32) {
        let c = &mut self.conns[cid as usize];
        let state = c.sock_ref().state();
        let prev = c.last_state;
        c.last_state = state;
        use tcp::State as S;
        let synchronized = matches!(
            state,
            S::Established
                | S::FinWait1
                | S::FinWait2
                | S::CloseWait
                | S::Closing
                | S::LastAck
                | S::TimeWait
        );
        if synchronized && !c.established {
            c.established = true;
            c.sock().set_timeout(None);
        }
        if matches!(state, S::CloseWait | S::LastAck | S::Closing | S::TimeWait) {
            c.fin = true;
        }
        if state == S::Closed && prev != S::Closed && c.established && !c.fin && !c.aborted {
            c.reset = true;
        }
        match c.phase {
            Phase::Free => {}
            Phase::Handshake => {
                if c.established {
                    let (lid, gen) = (c.listener, c.listener_gen);
                    let l = &mut self.listeners[lid as usize];
                    l.half_open = l.half_open.saturating_sub(1);
                    if l.live && l.gen == gen {
                        self.conns[cid as usize].phase = Phase::Queued;
                        self.listeners[lid as usize].queue.push_back(cid);
                        self.service_listener(lid);
                    } else {
                        let c = &mut self.conns[cid as usize];
                        c.aborted = true;
                        c.sock().abort();
                        c.phase = Phase::Orphan;
                        self.mark_dirty(cid);
                    }
                } else if state == S::Closed {
                    let (lid, gen) = (c.listener, c.listener_gen);
                    let l = &mut self.listeners[lid as usize];
                    if l.gen == gen {
                        l.half_open = l.half_open.saturating_sub(1);
                    }
                    self.free_conn(cid);
                }
            }
            Phase::Queued => {}
            Phase::Connecting => {
                if c.established {
                    c.phase = Phase::Open;
                    if c.connect_op != NIL {
                        let op = c.connect_op;
                        self.finish(op, 0, 0);
                    }
                    self.service_open(cid);
                } else if state == S::Closed {
                    let timed_out = self.now_us.saturating_sub(c.started_us)
                        >= self.cfg.handshake_timeout.as_micros() as u64;
                    let err = if timed_out {
                        -libc::ETIMEDOUT
                    } else {
                        -libc::ECONNREFUSED
                    };
                    c.phase = Phase::Open;
                    c.reset = true;
                    if let Some(k) = c.key.take() {
                        self.tuples.remove(&k);
                    }
                    self.timers.cancel(cid);
                    if self.conns[cid as usize].connect_op != NIL {
                        let op = self.conns[cid as usize].connect_op;
                        self.finish(op, err, 0);
                    }
                    self.service_open(cid);
                }
            }
            Phase::Open => self.service_open(cid),
            Phase::Orphan => {
                // Nobody will read: discard what arrives so the window stays open.
                let s = c.sock();
                while s.can_recv() {
                    if s.recv(|b| (b.len(), ())).is_err() {
                        break;
                    }
                }
                if state == S::Closed {
                    self.free_conn(cid);
                }
            }
        }
    }

    fn service_open(&mut self, cid: u32) {
        // Receives in FIFO order.
        while let Some(op) = self.conns[cid as usize].recv.front() {
            match self.try_recv(cid, op) {
                Progress::Done => continue,
                Progress::Wait => break,
                Progress::Yield => {
                    self.mark_ready(cid);
                    break;
                }
            }
        }
        while let Some(op) = self.conns[cid as usize].send.front() {
            match self.try_send(cid, op) {
                Progress::Done => continue,
                _ => break,
            }
        }
        self.wake_polls(cid);
    }

    fn conn_mask(&mut self, cid: u32) -> u32 {
        let c = &mut self.conns[cid as usize];
        let s = c.sock_ref();
        let mut m = 0;
        if c.reset {
            return POLLERR | POLLHUP | POLLIN | POLLRDNORM | POLLRDHUP;
        }
        if !c.established {
            return 0;
        }
        if s.can_recv() || c.fin || c.rd_shut {
            m |= POLLIN | POLLRDNORM;
        }
        if c.fin {
            m |= POLLRDHUP;
        }
        if s.can_send() && !c.wr_shut {
            m |= POLLOUT | POLLWRNORM;
        }
        if (c.fin && c.wr_shut) || s.state() == tcp::State::Closed {
            m |= POLLHUP;
        }
        m
    }

    fn wake_polls(&mut self, cid: u32) {
        let mut cur = self.conns[cid as usize].poll.front();
        if cur.is_none() {
            return;
        }
        let mask = self.conn_mask(cid);
        while let Some(id) = cur {
            cur = self.ops.next_of(id);
            self.fire_poll(id, mask);
        }
    }

    /// Delivers `mask` to poll op `id` if it is interested.
    fn fire_poll(&mut self, id: u32, mask: u32) {
        let op = *self.ops.get(id);
        let OpKind::Poll {
            events,
            multi,
            word,
        } = op.kind
        else {
            return;
        };
        let hit = mask & events;
        if hit == 0 {
            return;
        }
        if word != 0 {
            // Coalesced (uepoll): record the bits; queue a CQE only when the
            // word was clear, i.e. the application has consumed the last one.
            // At most one CQE per socket is outstanding, so it may take the
            // normal (never dropped) path and the request stays armed.
            match usermem::fetch_or_u32(word, hit) {
                Ok(0) => self.post(op.user_data, hit as i32, IORING_CQE_F_MORE),
                Ok(_) => self.stats.polls_coalesced += 1,
                Err(e) => self.finish(id, e, 0),
            }
            return;
        }
        if multi {
            if !self
                .ring
                .post_aux_cqe(op.user_data, hit as i32, IORING_CQE_F_MORE)
            {
                self.finish(id, hit as i32, 0);
            } else {
                self.stats.cqes += 1;
            }
        } else {
            self.finish(id, hit as i32, 0);
        }
    }

    fn service_listener(&mut self, lid: u32) {
        self.complete_accepts(lid);
        let mut cur = self.listeners[lid as usize].poll.front();
        if cur.is_none() {
            return;
        }
        let mask = if self.listeners[lid as usize].queue.is_empty() {
            0
        } else {
            POLLIN | POLLRDNORM
        };
        while let Some(id) = cur {
            cur = self.ops.next_of(id);
            self.fire_poll(id, mask);
        }
    }

    fn complete_accepts(&mut self, lid: u32) {
        loop {
            let l = &self.listeners[lid as usize];
            let (Some(op), Some(&cid)) = (l.accept.front(), l.queue.front()) else {
                return;
            };
            let OpKind::Accept {
                multishot,
                addr,
                addrlen,
            } = self.ops.get(op).kind
            else {
                return;
            };
            self.listeners[lid as usize].queue.pop_front();
            let fd = self.alloc_fd(Fd::Conn(cid));
            let c = &mut self.conns[cid as usize];
            c.fd = fd;
            c.phase = Phase::Open;
            let (rip, rport) = (c.remote_ip, c.remote_port);
            self.stats.accepted += 1;
            if addr != 0 {
                if let Err(e) = write_sockaddr(addr, addrlen, rip, rport) {
                    // The connection is not lost: it stays open under `fd`, as in Linux
                    // where the fd is installed before the address copy fails.
                    self.finish(op, e, 0);
                    continue;
                }
            }
            let more = !self.listeners[lid as usize].queue.is_empty();
            let flags = if more { IORING_CQE_F_SOCK_NONEMPTY } else { 0 };
            if multishot {
                let ud = self.ops.get(op).user_data;
                if self.ring.post_aux_cqe(ud, fd, flags | IORING_CQE_F_MORE) {
                    self.stats.cqes += 1;
                } else {
                    // CQ full: end the multishot with this connection in its final CQE.
                    self.finish(op, fd, flags);
                }
            } else {
                self.finish(op, fd, flags);
            }
            // Data may have arrived before the accept; pending work is picked up
            // when ops are submitted on the new socket.
        }
    }

    // ------------------------------------------------------------------
    // Receive and send
    // ------------------------------------------------------------------

    /// Picks the next provided buffer of `group`: (addr, len, bid).
    fn select_buffer(&self, group: u16) -> Option<(u64, u32, u16)> {
        if let Some(r) = self.bufrings.get(&group) {
            return r.peek().map(|b| (b.addr, b.len, b.bid));
        }
        self.legacy
            .get(&group)
            .and_then(|g| g.peek())
            .map(|b| (b.addr, b.len, b.bid))
    }

    fn commit_buffer(&mut self, group: u16) {
        if let Some(r) = self.bufrings.get_mut(&group) {
            r.consume();
        } else if let Some(g) = self.legacy.get_mut(&group) {
            g.consume();
        }
    }

    fn try_recv(&mut self, cid: u32, id: u32) -> Progress {
        let op = *self.ops.get(id);
        let OpKind::Recv {
            addr,
            len,
            group,
            multishot,
            msg_flags,
            done,
            iovlen,
            msg,
            reserve,
        } = op.kind
        else {
            return Progress::Wait;
        };
        let mut rounds = 0;
        loop {
            let c = &mut self.conns[cid as usize];
            let avail = c.sock_ref().recv_queue();
            if avail == 0 || c.rd_shut {
                if c.reset && !c.reset_reported {
                    // Linux reports a reset once (sk_err), then EOF.
                    let res = if done > 0 {
                        done as i32
                    } else {
                        c.reset_reported = true;
                        -libc::ECONNRESET
                    };
                    self.finish(id, res, 0);
                    return Progress::Done;
                }
                if c.reset {
                    finish_msghdr(msg);
                    self.finish(id, done as i32, 0);
                    return Progress::Done;
                }
                if (c.fin || c.rd_shut) && reserve > 0 {
                    // Multishot RECVMSG reports EOF in a buffer: a header with
                    // payloadlen 0 (io_uring_recvmsg_out), res = header size.
                    let g = group.expect("multishot recvmsg has a group");
                    let Some((baddr, blen, bid)) = self.select_buffer(g) else {
                        self.finish(id, -libc::ENOBUFS, 0);
                        return Progress::Done;
                    };
                    let res = match write_recvmsg_out(baddr, blen, reserve, 0) {
                        Ok(()) => {
                            self.commit_buffer(g);
                            reserve as i32
                        }
                        Err(e) => e,
                    };
                    let flags = if res >= 0 { buf_flags(bid) } else { 0 };
                    self.finish(id, res, flags);
                    return Progress::Done;
                }
                if c.fin || c.rd_shut {
                    finish_msghdr(msg);
                    self.finish(id, done as i32, 0);
                    return Progress::Done;
                }
                if !c.established && c.phase != Phase::Connecting {
                    self.finish(id, -libc::ENOTCONN, 0);
                    return Progress::Done;
                }
                if msg_flags & MSG_DONTWAIT != 0 && rounds == 0 {
                    let res = if done > 0 { done as i32 } else { -libc::EAGAIN };
                    self.finish(id, res, 0);
                    return Progress::Done;
                }
                return Progress::Wait;
            }
            let Some(group) = group else {
                // The application's buffer (or RECVMSG's iovecs).
                let peek = msg_flags & MSG_PEEK != 0;
                let s = self.conns[cid as usize].sock();
                let copied = if iovlen > 0 && !peek {
                    usermem::for_each_iov(addr, iovlen, done as u64, |seg| {
                        s.recv_slice(seg).unwrap_or(0)
                    })
                } else {
                    let n = ((len - done) as usize).min(avail);
                    let base = if iovlen > 0 {
                        first_iov_base(addr)
                    } else {
                        Ok(addr + done as u64)
                    };
                    base.and_then(|b| usermem::slice_mut(b, n)).map(|dst| {
                        if peek {
                            s.peek_slice(dst).unwrap_or(0)
                        } else {
                            s.recv_slice(dst).unwrap_or(0)
                        }
                    })
                };
                let got = match copied {
                    Ok(n) => n,
                    Err(e) => {
                        self.finish(id, e, 0);
                        return Progress::Done;
                    }
                };
                let s = self.conns[cid as usize].sock();
                let total = done + got as u32;
                let rest = s.recv_queue();
                if got > 0 {
                    self.mark_dirty(cid);
                }
                if msg_flags & MSG_WAITALL != 0 && total < len {
                    if let OpKind::Recv { done, .. } = &mut self.ops.get_mut(id).kind {
                        *done = total;
                    }
                    continue;
                }
                let flags = if rest > 0 {
                    IORING_CQE_F_SOCK_NONEMPTY
                } else {
                    0
                };
                finish_msghdr(msg);
                self.finish(id, total as i32, flags);
                return Progress::Done;
            };
            // Provided buffers: pick one only when there is data to put in it.
            let Some((baddr, blen, bid)) = self.select_buffer(group) else {
                self.finish(id, -libc::ENOBUFS, 0);
                return Progress::Done;
            };
            if blen < reserve {
                // The buffer cannot hold the recvmsg header area.
                self.finish(id, -libc::EFAULT, 0);
                return Progress::Done;
            }
            let mut n = ((blen - reserve) as usize).min(avail);
            if len > 0 && reserve == 0 {
                n = n.min(len as usize);
            }
            let dst = match usermem::slice_mut(baddr + reserve as u64, n) {
                Ok(d) => d,
                Err(e) => {
                    self.finish(id, e, 0);
                    return Progress::Done;
                }
            };
            let s = self.conns[cid as usize].sock();
            let mut got = s.recv_slice(dst).unwrap_or(0);
            let rest = s.recv_queue();
            if reserve > 0 {
                if let Err(e) = write_recvmsg_out(baddr, blen, reserve, got as u32) {
                    self.finish(id, e, 0);
                    return Progress::Done;
                }
                got += reserve as usize;
            }
            self.commit_buffer(group);
            self.mark_dirty(cid);
            let mut flags = buf_flags(bid);
            if rest > 0 {
                flags |= IORING_CQE_F_SOCK_NONEMPTY;
            }
            if !multishot {
                self.finish(id, got as i32, flags);
                return Progress::Done;
            }
            if !self
                .ring
                .post_aux_cqe(op.user_data, got as i32, flags | IORING_CQE_F_MORE)
            {
                // CQ full or backlog: the bytes travel in the final CQE.
                self.finish(id, got as i32, flags);
                return Progress::Done;
            }
            self.stats.cqes += 1;
            rounds += 1;
            if rounds >= MULTISHOT_MAX_RETRY && rest > 0 {
                return Progress::Yield;
            }
        }
    }

    fn try_send(&mut self, cid: u32, id: u32) -> Progress {
        let OpKind::Send {
            addr,
            len,
            done,
            waitall,
            iovlen,
            ..
        } = self.ops.get(id).kind
        else {
            return Progress::Wait;
        };
        let c = &mut self.conns[cid as usize];
        if c.reset {
            // The reset is reported once; after that the socket is just closed.
            let res = match (done, c.reset_reported) {
                (1.., _) => done as i32,
                (0, false) => -libc::ECONNRESET,
                (0, true) => -libc::EPIPE,
            };
            c.reset_reported = true;
            self.finish(id, res, 0);
            return Progress::Done;
        }
        if c.wr_shut || (c.established && !c.sock_ref().may_send()) {
            let res = if done > 0 { done as i32 } else { -libc::EPIPE };
            self.finish(id, res, 0);
            return Progress::Done;
        }
        if !c.established {
            if c.phase == Phase::Connecting {
                return Progress::Wait;
            }
            self.finish(id, -libc::ENOTCONN, 0);
            return Progress::Done;
        }
        let s = c.sock();
        let sent = if iovlen > 0 {
            usermem::for_each_iov(addr, iovlen, done as u64, |seg| {
                s.send_slice(seg).unwrap_or(0)
            })
        } else {
            usermem::slice(addr + done as u64, (len - done) as usize)
                .map(|src| s.send_slice(src).unwrap_or(0))
        };
        let n = match sent {
            Ok(n) => n as u32,
            Err(e) => {
                self.finish(id, e, 0);
                return Progress::Done;
            }
        };
        if n > 0 {
            self.mark_dirty(cid);
        }
        let total = done + n;
        if total == len || (!waitall && total > 0) || len == 0 {
            self.finish(id, total as i32, 0);
            return Progress::Done;
        }
        if let OpKind::Send { done, .. } = &mut self.ops.get_mut(id).kind {
            *done = total;
        }
        Progress::Wait
    }

    // ------------------------------------------------------------------
    // Timers and egress
    // ------------------------------------------------------------------

    fn expire_timers(&mut self) {
        let mut due = std::mem::take(&mut self.dirty_work);
        self.timers.expire(self.now_us, |cid| due.push(cid));
        for &cid in &due {
            if self.conns[cid as usize].phase != Phase::Free {
                self.mark_dirty(cid);
            }
        }
        due.clear();
        self.dirty_work = due;
        while let Some(&Reverse((at, id))) = self.timeouts.peek() {
            if at > self.now_us {
                break;
            }
            self.timeouts.pop();
            if !self.ops.is_live(id) || self.ops.get(id).owner != Owner::Timeout {
                continue;
            }
            match self.ops.get(id).kind {
                OpKind::Timeout {
                    at_us,
                    interval_us,
                    repeats,
                    ..
                } if at_us == at => self.fire_timeout(id, interval_us, repeats),
                OpKind::LinkTimeout { at_us, target } if at_us == at => {
                    let guarded =
                        self.ops.is_live(target) && self.ops.get(target).link_timeout == id;
                    if guarded {
                        // Detach first so the target's completion does not cancel us.
                        self.ops.get_mut(target).link_timeout = NIL;
                    }
                    self.finish(id, -libc::ETIME, 0);
                    if guarded {
                        self.finish(target, -libc::ECANCELED, 0);
                    }
                }
                _ => {}
            }
        }
    }

    /// Egress for the dirty connections, in order, while the NIC can take
    /// frames. When it fills, the rest stay dirty, in order, for the next
    /// step: re-polling every blocked connection each step would be work that
    /// sends nothing (a livelock when a burst meets a full wire).
    fn run_egress(&mut self) -> usize {
        std::mem::swap(&mut self.dirty, &mut self.dirty_work);
        let n = self.dirty_work.len();
        let mut done = 0;
        while done < n && self.nic.tx_ready() {
            let cid = self.dirty_work[done];
            done += 1;
            self.conns[cid as usize].in_dirty = false;
            if self.conns[cid as usize].phase != Phase::Free {
                self.egress(cid);
            }
        }
        // The blocked ones (flag still set) go first next step, then those
        // marked dirty during this pass. No allocation once capacity settles.
        self.dirty_work.drain(..done);
        self.dirty_work.append(&mut self.dirty);
        std::mem::swap(&mut self.dirty, &mut self.dirty_work);
        done
    }

    fn egress(&mut self, cid: u32) {
        let now = self.instant();
        let remote = self.conns[cid as usize].remote_ip;
        let hop = self.next_hop(remote);
        let Some(dst_mac) = self.arp.lookup(hop) else {
            if self.arp.should_ask(hop, self.now_us) {
                let req = Arp {
                    op: l2::ARP_REQUEST,
                    sha: self.mac,
                    spa: self.ip,
                    tha: [0; 6],
                    tpa: hop,
                };
                self.send_arp(l2::BROADCAST, &req);
            }
            if !self.arp_wait.contains(&cid) {
                self.arp_wait.push(cid);
            }
            // Re-check soon even if no reply comes (the request is rate-limited).
            self.timers.arm(cid, self.now_us + 100_000);
            return;
        };
        let c = &mut self.conns[cid as usize];
        let mut port = engine_port!(self, None, dst_mac);
        // Dispatch only while smoltcp says something is due now: asking
        // `poll_at` is cheaper than a `dispatch` that finds nothing to send,
        // which is the common case after input (a delayed ACK) and after the
        // one segment of a request.
        let mut at = self.iface.poll_at(now, &c.set);
        let mut rounds = 0;
        while rounds < EGRESS_ROUNDS && matches!(at, Some(t) if t <= now) {
            rounds += 1;
            let sent = self.iface.poll_egress(now, &mut port, &mut c.set);
            at = self.iface.poll_at(now, &c.set);
            if sent == smoltcp::iface::PollResult::None {
                break;
            }
        }
        let state = c.sock_ref().state();
        match at {
            Some(t) if t <= now => {
                // More to send right now (egress budget used up): next step.
                self.timers.cancel(cid);
                self.mark_dirty(cid);
            }
            Some(t) => self.timers.arm(cid, t.total_micros() as u64),
            None => self.timers.cancel(cid),
        }
        if state != self.conns[cid as usize].last_state {
            self.mark_ready(cid);
        }
    }

    // ------------------------------------------------------------------
    // Submission
    // ------------------------------------------------------------------

    fn process_sqes(&mut self) -> usize {
        let mut n = 0;
        while let Some(sqe) = self.ring.next_sqe() {
            n += 1;
            self.accept_sqe(sqe);
        }
        if n > 0 {
            self.ring.sq_commit();
            self.stats.sqes += n as u64;
        }
        self.end_building();
        n
    }

    /// Completes the SQE being issued right away (respecting
    /// `IOSQE_CQE_SKIP_SUCCESS`), and settles its link chain.
    fn complete(&mut self, sqe: &Sqe, res: i32, flags: u32) {
        if res < 0 {
            self.stats.op_errors += 1;
        }
        if !(res >= 0 && sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0) {
            self.post(sqe.user_data, res, flags);
        }
        if self.issuing_chain != NIL {
            let ok = res >= 0 || sqe.flags & IOSQE_IO_HARDLINK != 0;
            self.chain_events.push((self.issuing_chain, ok));
        }
    }

    // ------------------------------------------------------------------
    // Links and drain
    // ------------------------------------------------------------------

    /// Takes one SQE from the submission: into a chain being built, behind a
    /// drain barrier, or issued now.
    fn accept_sqe(&mut self, sqe: Sqe) {
        if self.building != NIL {
            self.append_to_chain(sqe);
        } else if !self.drain_q.is_empty()
            || (sqe.flags & IOSQE_IO_DRAIN != 0 && self.ops.live() > 0)
        {
            self.drain_q.push_back(sqe);
        } else {
            self.start(sqe);
        }
        self.pump_chains();
    }

    /// Issues a new request, opening a chain if it links to the next SQE.
    fn start(&mut self, sqe: Sqe) {
        if sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK) != 0 {
            let ch = match self.free_chains.pop() {
                Some(ch) => ch,
                None => {
                    self.chains.push(Chain {
                        pending: VecDeque::new(),
                        state: ChainState::Running,
                        building: false,
                        head_op: NIL,
                    });
                    (self.chains.len() - 1) as u32
                }
            };
            let c = &mut self.chains[ch as usize];
            c.pending.clear();
            c.building = true;
            self.building = ch;
            self.issue_in_chain(&sqe, ch);
        } else {
            self.issue(&sqe);
        }
    }

    fn issue_in_chain(&mut self, sqe: &Sqe, ch: u32) {
        let saved = std::mem::replace(&mut self.issuing_chain, ch);
        let c = &mut self.chains[ch as usize];
        c.state = ChainState::Running;
        c.head_op = NIL;
        self.issue(sqe);
        self.issuing_chain = saved;
    }

    fn append_to_chain(&mut self, sqe: Sqe) {
        let ch = self.building;
        let last = sqe.flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK) == 0;
        if last {
            self.building = NIL;
            self.chains[ch as usize].building = false;
        }
        match self.chains[ch as usize].state {
            ChainState::Failed => self.post_canceled(&sqe),
            ChainState::Ok if sqe.opcode == IORING_OP_LINK_TIMEOUT => {
                // Its request already finished: the timeout never fires.
                self.post(sqe.user_data, -libc::ECANCELED, 0);
            }
            ChainState::Ok => self.issue_in_chain(&sqe, ch),
            ChainState::Running => {
                let head = self.chains[ch as usize].head_op;
                if sqe.opcode == IORING_OP_LINK_TIMEOUT
                    && self.chains[ch as usize].pending.is_empty()
                    && head != NIL
                {
                    self.arm_link_timeout(&sqe, head);
                } else {
                    self.chains[ch as usize].pending.push_back(sqe);
                }
            }
        }
        if last {
            self.maybe_free_chain(ch);
        }
    }

    fn post_canceled(&mut self, sqe: &Sqe) {
        self.stats.op_errors += 1;
        self.post(sqe.user_data, -libc::ECANCELED, 0);
    }

    fn maybe_free_chain(&mut self, ch: u32) {
        let c = &self.chains[ch as usize];
        if !c.building && c.state != ChainState::Running && c.pending.is_empty() {
            self.free_chains.push(ch);
        }
    }

    /// Chains end at the submission boundary.
    fn end_building(&mut self) {
        let ch = std::mem::replace(&mut self.building, NIL);
        if ch != NIL {
            self.chains[ch as usize].building = false;
            self.maybe_free_chain(ch);
        }
    }

    /// Advances chains whose head completed (iteratively: long chains of
    /// immediate completions do not recurse).
    fn pump_chains(&mut self) {
        while let Some((ch, ok)) = self.chain_events.pop() {
            let c = &mut self.chains[ch as usize];
            c.head_op = NIL;
            if !ok {
                c.state = ChainState::Failed;
                while let Some(s) = self.chains[ch as usize].pending.pop_front() {
                    self.post_canceled(&s);
                }
                self.maybe_free_chain(ch);
                continue;
            }
            match c.pending.pop_front() {
                None => {
                    c.state = ChainState::Ok;
                    self.maybe_free_chain(ch);
                }
                Some(next) if next.opcode == IORING_OP_LINK_TIMEOUT => {
                    self.post(next.user_data, -libc::ECANCELED, 0);
                    self.chain_events.push((ch, true));
                }
                Some(next) => self.issue_in_chain(&next, ch),
            }
        }
    }

    /// Issues SQEs held by a drain barrier once everything before it completed.
    fn run_drain(&mut self) {
        while let Some(front) = self.drain_q.front() {
            if self.building == NIL && front.flags & IOSQE_IO_DRAIN != 0 && self.ops.live() > 0 {
                break;
            }
            let sqe = self.drain_q.pop_front().expect("front exists");
            if self.building != NIL {
                self.append_to_chain(sqe);
            } else {
                self.start(sqe);
            }
            self.pump_chains();
        }
        self.end_building();
    }

    /// Arms LINK_TIMEOUT `sqe` on the running request `target`.
    fn arm_link_timeout(&mut self, sqe: &Sqe, target: u32) {
        // A link timeout fires once: multishot makes no sense on it.
        let at = match self.timeout_deadline(sqe).and_then(|(at, _)| {
            match sqe.op_flags & IORING_TIMEOUT_MULTISHOT {
                0 => Ok(at),
                _ => Err(-libc::EINVAL),
            }
        }) {
            Ok(at) => at,
            Err(e) => {
                self.stats.op_errors += 1;
                self.post(sqe.user_data, e, 0);
                return;
            }
        };
        let id = self.ops.insert(
            sqe.user_data,
            -1,
            false,
            OpKind::LinkTimeout { at_us: at, target },
        );
        self.ops.get_mut(id).owner = Owner::Timeout;
        self.ops.get_mut(target).link_timeout = id;
        self.timeouts.push(Reverse((at, id)));
    }

    /// Checks a TIMEOUT / LINK_TIMEOUT SQE as the kernel's prep does and
    /// returns its deadline (µs of engine time) and, for a relative one, its
    /// interval (what a multishot TIMEOUT re-arms with).
    fn timeout_deadline(&self, sqe: &Sqe) -> Result<(u64, u64), i32> {
        const CLOCKS: u32 = IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_REALTIME;
        let flags = sqe.op_flags;
        if sqe.len != 1 || sqe.buf_index != 0 || sqe.file_index != 0 {
            return Err(-libc::EINVAL);
        }
        let known =
            IORING_TIMEOUT_ABS | CLOCKS | IORING_TIMEOUT_ETIME_SUCCESS | IORING_TIMEOUT_MULTISHOT;
        if flags & !known != 0 || flags & CLOCKS == CLOCKS {
            return Err(-libc::EINVAL);
        }
        // A multishot timer repeats an interval; an absolute time has none.
        if flags & IORING_TIMEOUT_MULTISHOT != 0 && flags & IORING_TIMEOUT_ABS != 0 {
            return Err(-libc::EINVAL);
        }
        let ts_us = read_timespec_us(sqe.addr)?;
        let interval = if flags & IORING_TIMEOUT_ABS != 0 {
            0
        } else {
            ts_us
        };
        Ok((self.deadline(flags, ts_us), interval))
    }

    /// Engine time of the TIMEOUT time `ts_us`: relative to now, or with
    /// `IORING_TIMEOUT_ABS` in `flags` absolute on the clock they name.
    fn deadline(&self, flags: u32, ts_us: u64) -> u64 {
        if flags & IORING_TIMEOUT_ABS != 0 {
            self.abs_deadline(flags, ts_us)
        } else {
            self.now_us.saturating_add(ts_us)
        }
    }

    /// Engine time of the absolute time `ts_us` on the clock `flags` name
    /// (CLOCK_MONOTONIC unless BOOTTIME or REALTIME). The clock is read now,
    /// when the SQE is issued (a vDSO read, off the data path); a time
    /// already past fires at the next step.
    fn abs_deadline(&self, flags: u32, ts_us: u64) -> u64 {
        if self.virtual_time {
            return ts_us;
        }
        let clock = if flags & IORING_TIMEOUT_BOOTTIME != 0 {
            libc::CLOCK_BOOTTIME
        } else if flags & IORING_TIMEOUT_REALTIME != 0 {
            libc::CLOCK_REALTIME
        } else {
            libc::CLOCK_MONOTONIC
        };
        let now_us = sysclock::now_us(clock);
        self.now_us.saturating_add(ts_us.saturating_sub(now_us))
    }

    fn issue(&mut self, sqe: &Sqe) {
        if let Err(e) = self.check_common(sqe) {
            self.complete(sqe, e, 0);
            return;
        }
        let r = match sqe.opcode {
            IORING_OP_NOP => self.op_nop(sqe),
            IORING_OP_SOCKET => self.op_socket(sqe),
            IORING_OP_BIND => self.op_bind(sqe),
            IORING_OP_LISTEN => self.op_listen(sqe),
            IORING_OP_ACCEPT => self.op_accept(sqe),
            IORING_OP_CONNECT => self.op_connect(sqe),
            IORING_OP_RECV | IORING_OP_READ | IORING_OP_RECVMSG => self.op_recv(sqe),
            IORING_OP_SEND | IORING_OP_WRITE | IORING_OP_SEND_ZC | IORING_OP_SENDMSG
            | IORING_OP_SENDMSG_ZC => self.op_send(sqe),
            // A LINK_TIMEOUT must follow a linked request in the same submission.
            IORING_OP_LINK_TIMEOUT => Err(-libc::EINVAL),
            IORING_OP_CLOSE => self.op_close(sqe),
            IORING_OP_SHUTDOWN => self.op_shutdown(sqe),
            IORING_OP_POLL_ADD => self.op_poll_add(sqe),
            IORING_OP_POLL_REMOVE => self.op_poll_remove(sqe),
            IORING_OP_ASYNC_CANCEL => self.op_cancel(sqe),
            IORING_OP_PROVIDE_BUFFERS => self.op_provide_buffers(sqe),
            IORING_OP_REMOVE_BUFFERS => self.op_remove_buffers(sqe),
            IORING_OP_TIMEOUT => self.op_timeout(sqe),
            IORING_OP_TIMEOUT_REMOVE => self.op_timeout_remove(sqe),
            op if op >= IORING_OP_LAST => Err(-libc::EINVAL),
            _ => Err(-libc::EOPNOTSUPP),
        };
        match r {
            Ok(Some((res, flags))) => self.complete(sqe, res, flags),
            Ok(None) => {}
            Err(e) => self.complete(sqe, e, 0),
        }
    }

    /// Checks every SQE must pass, whatever its opcode.
    fn check_common(&self, sqe: &Sqe) -> Result<(), i32> {
        if sqe.opcode >= IORING_OP_LAST {
            return Err(-libc::EINVAL);
        }
        if sqe.flags & !IOSQE_ALL != 0 {
            return Err(-libc::EINVAL);
        }
        if sqe.flags & IOSQE_FIXED_FILE != 0 {
            // No registered file table.
            return Err(-libc::EBADF);
        }
        if sqe.personality != 0 {
            return Err(-libc::EINVAL);
        }
        if sqe.flags & IOSQE_BUFFER_SELECT != 0
            && !matches!(
                sqe.opcode,
                IORING_OP_RECV | IORING_OP_READ | IORING_OP_RECVMSG
            )
        {
            return Err(-libc::EOPNOTSUPP);
        }
        Ok(())
    }

    fn park(&mut self, sqe: &Sqe, kind: OpKind) -> u32 {
        let id = self.ops.insert(
            sqe.user_data,
            sqe.fd,
            sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0,
            kind,
        );
        let op = self.ops.get_mut(id);
        op.sqe_flags = sqe.flags;
        op.opcode = sqe.opcode;
        op.chain = self.issuing_chain;
        if self.issuing_chain != NIL {
            self.chains[self.issuing_chain as usize].head_op = id;
        }
        id
    }

    fn op_nop(&mut self, sqe: &Sqe) -> OpResult {
        if sqe.op_flags & !IORING_NOP_INJECT_RESULT != 0 {
            return Err(-libc::EINVAL);
        }
        let res = if sqe.op_flags & IORING_NOP_INJECT_RESULT != 0 {
            sqe.len as i32
        } else {
            0
        };
        Ok(Some((res, 0)))
    }

    fn op_socket(&mut self, sqe: &Sqe) -> OpResult {
        if sqe.op_flags != 0 || sqe.file_index != 0 {
            return Err(-libc::EINVAL);
        }
        if sqe.fd != libc::AF_INET {
            return Err(-libc::EAFNOSUPPORT);
        }
        let ty = sqe.off;
        if ty & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
            return Err(-libc::EINVAL);
        }
        if ty & 0xf != libc::SOCK_STREAM as u64 {
            return Err(-libc::EPROTONOSUPPORT);
        }
        if sqe.len != 0 && sqe.len != libc::IPPROTO_TCP as u32 {
            return Err(-libc::EPROTONOSUPPORT);
        }
        Ok(Some((self.alloc_fd(Fd::Fresh { port: 0 }), 0)))
    }

    fn pick_free_port(&mut self) -> Option<u16> {
        let span = (EPHEMERAL_HI - EPHEMERAL_LO + 1) as u32;
        for _ in 0..span {
            let p = self.advance_port();
            if !self.listening.contains_key(&p) && !self.bound.contains_key(&p) {
                return Some(p);
            }
        }
        None
    }

    fn advance_port(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if p >= EPHEMERAL_HI {
            EPHEMERAL_LO
        } else {
            p + 1
        };
        p
    }

    fn op_bind(&mut self, sqe: &Sqe) -> OpResult {
        let Some(Fd::Fresh { port: cur }) = self.fd(sqe.fd) else {
            return match self.fd(sqe.fd) {
                None => Err(-libc::EBADF),
                Some(_) => Err(-libc::EINVAL),
            };
        };
        if cur != 0 {
            return Err(-libc::EINVAL);
        }
        let (ip, port) = read_sockaddr(sqe.addr, sqe.off)?;
        if !ip.is_unspecified() && ip != self.ip {
            return Err(-libc::EADDRNOTAVAIL);
        }
        let port = if port == 0 {
            self.pick_free_port().ok_or(-libc::EADDRINUSE)?
        } else {
            if self.bound.contains_key(&port) || self.listening.contains_key(&port) {
                return Err(-libc::EADDRINUSE);
            }
            port
        };
        self.bound.insert(port, sqe.fd);
        self.fds[sqe.fd as usize] = Fd::Fresh { port };
        Ok(Some((0, 0)))
    }

    fn op_listen(&mut self, sqe: &Sqe) -> OpResult {
        let backlog = (sqe.len.max(1)).min(self.cfg.somaxconn);
        match self.fd(sqe.fd) {
            None | Some(Fd::Free) => Err(-libc::EBADF),
            Some(Fd::Listener(lid)) => {
                self.listeners[lid as usize].backlog = backlog;
                Ok(Some((0, 0)))
            }
            Some(Fd::Conn(_)) => Err(-libc::EINVAL),
            Some(Fd::Fresh { port }) => {
                let port = if port == 0 {
                    let p = self.pick_free_port().ok_or(-libc::EADDRINUSE)?;
                    self.bound.insert(p, sqe.fd);
                    p
                } else {
                    port
                };
                let l = Listener {
                    live: true,
                    gen: 0,
                    port,
                    backlog,
                    half_open: 0,
                    queue: VecDeque::with_capacity((backlog as usize).min(4096)),
                    accept: OpList::default(),
                    poll: OpList::default(),
                };
                let lid = match self.free_listeners.pop() {
                    Some(lid) => {
                        let gen = self.listeners[lid as usize].gen + 1;
                        self.listeners[lid as usize] = Listener { gen, ..l };
                        lid
                    }
                    None => {
                        self.listeners.push(l);
                        (self.listeners.len() - 1) as u32
                    }
                };
                self.listening.insert(port, lid);
                self.fds[sqe.fd as usize] = Fd::Listener(lid);
                Ok(Some((0, 0)))
            }
        }
    }

    fn op_accept(&mut self, sqe: &Sqe) -> OpResult {
        let allowed = IORING_ACCEPT_MULTISHOT | IORING_ACCEPT_DONTWAIT | IORING_ACCEPT_POLL_FIRST;
        if sqe.ioprio & !allowed != 0 || sqe.len != 0 || sqe.buf_index != 0 {
            return Err(-libc::EINVAL);
        }
        if sqe.op_flags & !((libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) as u32) != 0 {
            return Err(-libc::EINVAL);
        }
        if sqe.file_index != 0 {
            return Err(-libc::EINVAL);
        }
        let lid = match self.fd(sqe.fd) {
            None => return Err(-libc::EBADF),
            Some(Fd::Listener(lid)) => lid,
            Some(_) => return Err(-libc::EINVAL),
        };
        let multishot = sqe.ioprio & IORING_ACCEPT_MULTISHOT != 0;
        if sqe.ioprio & IORING_ACCEPT_DONTWAIT != 0 && self.listeners[lid as usize].queue.is_empty()
        {
            return Err(-libc::EAGAIN);
        }
        let id = self.park(
            sqe,
            OpKind::Accept {
                multishot,
                addr: sqe.addr,
                addrlen: sqe.off,
            },
        );
        let l = &mut self.listeners[lid as usize];
        self.ops.push_back(&mut l.accept, id, Owner::Accept(lid));
        self.complete_accepts(lid);
        Ok(None)
    }

    fn op_connect(&mut self, sqe: &Sqe) -> OpResult {
        let port = match self.fd(sqe.fd) {
            None | Some(Fd::Free) => return Err(-libc::EBADF),
            Some(Fd::Fresh { port }) => port,
            Some(Fd::Conn(cid)) => {
                let c = &self.conns[cid as usize];
                return Err(if c.phase == Phase::Connecting {
                    -libc::EALREADY
                } else {
                    -libc::EISCONN
                });
            }
            Some(Fd::Listener(_)) => return Err(-libc::EISCONN),
        };
        let (rip, rport) = read_sockaddr(sqe.addr, sqe.off)?;
        if rip.is_unspecified() || rip == self.ip || rip.is_broadcast() || rip.is_multicast() {
            return Err(-libc::ENETUNREACH);
        }
        if rport == 0 {
            return Err(-libc::ECONNREFUSED);
        }
        if !self.on_link(rip) && self.cfg.gateway.is_none() {
            return Err(-libc::ENETUNREACH);
        }
        let lport = if port != 0 {
            if self.tuples.contains_key(&tuple_key(rip, rport, port)) {
                return Err(-libc::EADDRNOTAVAIL);
            }
            port
        } else {
            let span = (EPHEMERAL_HI - EPHEMERAL_LO + 1) as u32;
            let mut found = None;
            for _ in 0..span {
                let p = self.advance_port();
                if self.listening.contains_key(&p) || self.bound.contains_key(&p) {
                    continue;
                }
                if !self.tuples.contains_key(&tuple_key(rip, rport, p)) {
                    found = Some(p);
                    break;
                }
            }
            found.ok_or(-libc::EADDRNOTAVAIL)?
        };
        let cid = self.alloc_conn().ok_or(-libc::ENOBUFS)?;
        let key = tuple_key(rip, rport, lport);
        let c = &mut self.conns[cid as usize];
        c.phase = Phase::Connecting;
        c.remote_ip = rip;
        c.remote_port = rport;
        c.local_port = lport;
        c.fd = sqe.fd;
        let s = c.set.get_mut::<tcp::Socket>(c.h);
        if s.connect(self.iface.context(), (IpAddress::Ipv4(rip), rport), lport)
            .is_err()
        {
            self.free_conn(cid);
            return Err(-libc::EINVAL);
        }
        self.conns[cid as usize].key = Some(key);
        self.conns[cid as usize].last_state = tcp::State::SynSent;
        self.tuples.insert(key, cid);
        if port != 0 {
            self.bound.remove(&port);
        }
        self.fds[sqe.fd as usize] = Fd::Conn(cid);
        let id = self.park(sqe, OpKind::Connect);
        self.ops.get_mut(id).owner = Owner::Connect(cid);
        self.conns[cid as usize].connect_op = id;
        self.stats.connects += 1;
        self.mark_dirty(cid);
        Ok(None)
    }

    fn conn_of(&self, fd: i32) -> Result<u32, i32> {
        match self.fd(fd) {
            None => Err(-libc::EBADF),
            Some(Fd::Conn(cid)) => Ok(cid),
            Some(_) => Err(-libc::ENOTCONN),
        }
    }

    fn op_recv(&mut self, sqe: &Sqe) -> OpResult {
        let read = sqe.opcode == IORING_OP_READ;
        let is_msg = sqe.opcode == IORING_OP_RECVMSG;
        let allowed = if read {
            0
        } else {
            IORING_RECVSEND_POLL_FIRST | IORING_RECV_MULTISHOT
        };
        if sqe.ioprio & !allowed != 0 {
            return Err(-libc::EINVAL);
        }
        let multishot = sqe.ioprio & IORING_RECV_MULTISHOT != 0;
        let select = sqe.flags & IOSQE_BUFFER_SELECT != 0;
        let msg_flags = if read { 0 } else { sqe.op_flags };
        if multishot && (!select || msg_flags & MSG_WAITALL != 0) {
            return Err(-libc::EINVAL);
        }
        if multishot && sqe.file_index != 0 {
            // optlen (6.17 total cap) is not supported yet.
            return Err(-libc::EINVAL);
        }
        let cid = self.conn_of(sqe.fd)?;
        let group = select.then_some(sqe.buf_index);
        // RECVMSG: the msghdr is read once, at submission (FEAT_SUBMIT_STABLE).
        let (mut addr, mut len, mut iovlen, mut reserve) = (sqe.addr, sqe.len, 0, 0);
        if is_msg {
            let (iov, n, namelen, controllen) = usermem::read_msghdr(sqe.addr)?;
            if multishot {
                reserve = (core::mem::size_of::<RecvmsgOut>() as u32)
                    .checked_add(namelen)
                    .and_then(|r| r.checked_add(controllen))
                    .ok_or(-libc::EINVAL)?;
            } else if !select {
                let total = usermem::iov_total(iov, n)?;
                (addr, len, iovlen) = (iov, total.min(i32::MAX as u64) as u32, n);
            }
        }
        if let Some(g) = group {
            if !self.bufrings.contains_key(&g) && !self.legacy.contains_key(&g) {
                return Err(-libc::ENOBUFS);
            }
            addr = 0;
            if is_msg {
                len = 0;
            }
        } else if iovlen == 0 {
            usermem::check(addr, len as usize)?;
        }
        let kind = OpKind::Recv {
            addr,
            len,
            group,
            multishot,
            msg_flags,
            done: 0,
            iovlen,
            msg: if is_msg && !select { sqe.addr } else { 0 },
            reserve,
        };
        let id = self.park(sqe, kind);
        let c = &mut self.conns[cid as usize];
        let first = c.recv.is_empty();
        self.ops.push_back(&mut c.recv, id, Owner::Recv(cid));
        if !first {
            return Ok(None);
        }
        // Buffer rings are checked at arm time, as the kernel does (-ENOBUFS
        // even on an empty socket), then data decides.
        if let Some(g) = group {
            if self.select_buffer(g).is_none() {
                self.finish(id, -libc::ENOBUFS, 0);
                return Ok(None);
            }
        }
        if let Progress::Yield = self.try_recv(cid, id) {
            self.mark_ready(cid);
        }
        Ok(None)
    }

    fn op_send(&mut self, sqe: &Sqe) -> OpResult {
        let write = sqe.opcode == IORING_OP_WRITE;
        let zc = matches!(sqe.opcode, IORING_OP_SEND_ZC | IORING_OP_SENDMSG_ZC);
        let allowed = match (write, zc) {
            (true, _) => 0,
            (false, true) => IORING_RECVSEND_POLL_FIRST | IORING_SEND_ZC_REPORT_USAGE,
            (false, false) => IORING_RECVSEND_POLL_FIRST,
        };
        if sqe.ioprio & !allowed != 0 {
            // Includes IORING_RECVSEND_FIXED_BUF: no registered buffers.
            return Err(-libc::EINVAL);
        }
        if zc && sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0 {
            return Err(-libc::EINVAL);
        }
        let is_msg = matches!(sqe.opcode, IORING_OP_SENDMSG | IORING_OP_SENDMSG_ZC);
        let msg_flags = if write {
            0
        } else {
            sqe.op_flags | MSG_NOSIGNAL
        };
        if !write && !is_msg && (sqe.off != 0 || sqe.file_index != 0) {
            // sendto addresses on a connected TCP socket.
            return Err(-libc::EISCONN);
        }
        // Linux: send on a never-connected or listening TCP socket is -EPIPE.
        let cid = self.conn_of(sqe.fd).map_err(|e| {
            if e == -libc::ENOTCONN {
                -libc::EPIPE
            } else {
                e
            }
        })?;
        // SENDMSG: gather from the msghdr's iovecs (read once, at submission).
        let (addr, len, iovlen) = if is_msg {
            let (iov, n, _, _) = usermem::read_msghdr(sqe.addr)?;
            let total = usermem::iov_total(iov, n)?;
            (iov, total.min(i32::MAX as u64) as u32, n)
        } else {
            usermem::check(sqe.addr, sqe.len as usize)?;
            (sqe.addr, sqe.len, 0)
        };
        let kind = OpKind::Send {
            addr,
            len,
            iovlen,
            done: 0,
            waitall: msg_flags & MSG_WAITALL != 0,
            zc: match (zc, sqe.ioprio & IORING_SEND_ZC_REPORT_USAGE != 0) {
                (false, _) => 0,
                (true, false) => 1,
                (true, true) => 2,
            },
        };
        let id = self.park(sqe, kind);
        let c = &mut self.conns[cid as usize];
        let first = c.send.is_empty();
        self.ops.push_back(&mut c.send, id, Owner::Send(cid));
        if first {
            if let Progress::Wait = self.try_send(cid, id) {
                if msg_flags & MSG_DONTWAIT != 0 {
                    let done = match self.ops.get(id).kind {
                        OpKind::Send { done, .. } => done,
                        _ => 0,
                    };
                    let res = if done > 0 { done as i32 } else { -libc::EAGAIN };
                    self.finish(id, res, 0);
                }
            }
        }
        Ok(None)
    }

    fn op_close(&mut self, sqe: &Sqe) -> OpResult {
        if sqe.file_index != 0 || sqe.off != 0 || sqe.addr != 0 || sqe.len != 0 {
            return Err(-libc::EINVAL);
        }
        match self.fd(sqe.fd) {
            None | Some(Fd::Free) => Err(-libc::EBADF),
            Some(Fd::Fresh { port }) => {
                if port != 0 {
                    self.bound.remove(&port);
                }
                self.free_fd(sqe.fd);
                Ok(Some((0, 0)))
            }
            Some(Fd::Listener(lid)) => {
                self.close_listener(lid);
                self.free_fd(sqe.fd);
                Ok(Some((0, 0)))
            }
            Some(Fd::Conn(cid)) => {
                self.cancel_conn_ops(cid, -libc::ECANCELED);
                self.free_fd(sqe.fd);
                let c = &mut self.conns[cid as usize];
                c.fd = -1;
                let state = c.sock_ref().state();
                if state == tcp::State::Closed || c.key.is_none() {
                    self.free_conn(cid);
                } else {
                    if c.sock_ref().recv_queue() > 0 {
                        // Unread data at close: reset, as Linux does.
                        c.aborted = true;
                        c.sock().abort();
                    } else {
                        c.sock().close();
                    }
                    c.phase = Phase::Orphan;
                    self.mark_dirty(cid);
                }
                Ok(Some((0, 0)))
            }
        }
    }

    fn close_listener(&mut self, lid: u32) {
        let port = self.listeners[lid as usize].port;
        self.listening.remove(&port);
        self.bound.remove(&port);
        loop {
            let l = &self.listeners[lid as usize];
            let Some(id) = l.accept.front().or(l.poll.front()) else {
                break;
            };
            self.finish(id, -libc::ECANCELED, 0);
        }
        let l = &mut self.listeners[lid as usize];
        l.live = false;
        let mut q = std::mem::take(&mut l.queue);
        for cid in q.drain(..) {
            let c = &mut self.conns[cid as usize];
            c.aborted = true;
            c.sock().abort();
            c.phase = Phase::Orphan;
            self.mark_dirty(cid);
        }
        self.listeners[lid as usize].queue = q;
        self.free_listeners.push(lid);
    }

    fn op_shutdown(&mut self, sqe: &Sqe) -> OpResult {
        if sqe.off != 0 || sqe.addr != 0 || sqe.op_flags != 0 || sqe.buf_index != 0 {
            return Err(-libc::EINVAL);
        }
        let how = sqe.len as i32;
        if !(libc::SHUT_RD..=libc::SHUT_RDWR).contains(&how) {
            return Err(-libc::EINVAL);
        }
        let cid = self.conn_of(sqe.fd)?;
        let c = &mut self.conns[cid as usize];
        if !c.established || c.reset {
            return Err(-libc::ENOTCONN);
        }
        if how == libc::SHUT_RD || how == libc::SHUT_RDWR {
            c.rd_shut = true;
        }
        if (how == libc::SHUT_WR || how == libc::SHUT_RDWR) && !c.wr_shut {
            c.wr_shut = true;
            c.sock().close();
        }
        self.mark_dirty(cid);
        self.service_open(cid);
        Ok(Some((0, 0)))
    }

    fn op_poll_add(&mut self, sqe: &Sqe) -> OpResult {
        let flags = sqe.len;
        if flags & !(IORING_POLL_ADD_MULTI | RINGLINE_POLL_COALESCED) != 0 {
            // IORING_POLL_ADD_LEVEL is rejected by Linux too.
            return Err(-libc::EINVAL);
        }
        let coalesced = flags & RINGLINE_POLL_COALESCED != 0;
        // Linux wants addr 0; the coalesced mode uses it for the ready word,
        // which must be a live, 4-byte aligned u32, and is always persistent.
        if coalesced {
            if flags & IORING_POLL_ADD_MULTI == 0 || !sqe.addr.is_multiple_of(4) {
                return Err(-libc::EINVAL);
            }
            usermem::check(sqe.addr, 4)?;
        } else if sqe.addr != 0 {
            return Err(-libc::EINVAL);
        }
        if sqe.off != 0 || sqe.buf_index != 0 || sqe.ioprio != 0 {
            return Err(-libc::EINVAL);
        }
        let multi = flags & IORING_POLL_ADD_MULTI != 0;
        if multi && sqe.flags & IOSQE_CQE_SKIP_SUCCESS != 0 {
            return Err(-libc::EINVAL);
        }
        let events = (sqe.op_flags & 0xffff) | POLLERR | POLLHUP;
        let fd = self.fd(sqe.fd).ok_or(-libc::EBADF)?;
        let word = if coalesced { sqe.addr } else { 0 };
        let id = self.park(
            sqe,
            OpKind::Poll {
                events,
                multi,
                word,
            },
        );
        match fd {
            Fd::Free => unreachable!("fd() never returns Free"),
            Fd::Fresh { .. } => {
                // An unconnected TCP socket polls as OUT|HUP and never changes
                // until it is connected or listened on: report once.
                let mask = (POLLOUT | POLLWRNORM | POLLHUP) & events;
                self.finish(id, mask as i32, 0);
            }
            Fd::Listener(lid) => {
                let l = &mut self.listeners[lid as usize];
                self.ops.push_back(&mut l.poll, id, Owner::ListenPoll(lid));
                let mask = if self.listeners[lid as usize].queue.is_empty() {
                    0
                } else {
                    POLLIN | POLLRDNORM
                };
                self.fire_poll(id, mask);
            }
            Fd::Conn(cid) => {
                let c = &mut self.conns[cid as usize];
                self.ops.push_back(&mut c.poll, id, Owner::ConnPoll(cid));
                let mask = self.conn_mask(cid);
                self.fire_poll(id, mask);
            }
        }
        Ok(None)
    }

    fn find_poll(&mut self, user_data: u64) -> Option<u32> {
        self.found.clear();
        let mut found = std::mem::take(&mut self.found);
        self.ops.find_all(&mut found, |op| {
            op.user_data == user_data && matches!(op.kind, OpKind::Poll { .. })
        });
        let r = found.first().copied();
        self.found = found;
        r
    }

    fn op_poll_remove(&mut self, sqe: &Sqe) -> OpResult {
        let flags = sqe.len;
        let known =
            IORING_POLL_ADD_MULTI | IORING_POLL_UPDATE_EVENTS | IORING_POLL_UPDATE_USER_DATA;
        if flags & !known != 0 || sqe.buf_index != 0 {
            return Err(-libc::EINVAL);
        }
        let Some(id) = self.find_poll(sqe.addr) else {
            return Err(-libc::ENOENT);
        };
        if flags & (IORING_POLL_UPDATE_EVENTS | IORING_POLL_UPDATE_USER_DATA) == 0 {
            // As the kernel: the remover's CQE, then the poll's -ECANCELED.
            self.complete(sqe, 0, 0);
            self.finish(id, -libc::ECANCELED, 0);
            return Ok(None);
        }
        let op = self.ops.get_mut(id);
        if let OpKind::Poll { events, multi, .. } = &mut op.kind {
            if flags & IORING_POLL_UPDATE_EVENTS != 0 {
                *events = (sqe.op_flags & 0xffff) | POLLERR | POLLHUP;
                *multi = flags & IORING_POLL_ADD_MULTI != 0;
            }
        }
        if flags & IORING_POLL_UPDATE_USER_DATA != 0 {
            op.user_data = sqe.off;
        }
        let owner = op.owner;
        self.complete(sqe, 0, 0);
        // The new mask may already be satisfied: re-poll, as the kernel does.
        let mask = match owner {
            Owner::ConnPoll(cid) => self.conn_mask(cid),
            Owner::ListenPoll(lid) if !self.listeners[lid as usize].queue.is_empty() => {
                POLLIN | POLLRDNORM
            }
            _ => 0,
        };
        self.fire_poll(id, mask);
        Ok(None)
    }

    fn op_cancel(&mut self, sqe: &Sqe) -> OpResult {
        let flags = sqe.op_flags;
        let known = IORING_ASYNC_CANCEL_ALL
            | IORING_ASYNC_CANCEL_FD
            | IORING_ASYNC_CANCEL_ANY
            | IORING_ASYNC_CANCEL_USERDATA
            | IORING_ASYNC_CANCEL_OP;
        if flags & !known != 0 {
            return Err(-libc::EINVAL);
        }
        let any = flags & IORING_ASYNC_CANCEL_ANY != 0;
        let by_fd = flags & IORING_ASYNC_CANCEL_FD != 0;
        let by_op = flags & IORING_ASYNC_CANCEL_OP != 0;
        // user_data is the key unless FD or OP say otherwise (USERDATA adds it back).
        let by_ud = !any && (!(by_fd || by_op) || flags & IORING_ASYNC_CANCEL_USERDATA != 0);
        let all = any || flags & IORING_ASYNC_CANCEL_ALL != 0;
        if by_op && sqe.len >= IORING_OP_LAST as u32 {
            return Err(-libc::EINVAL);
        }
        let (key, fd, opc) = (sqe.addr, sqe.fd, sqe.len as u8);
        self.found.clear();
        let mut found = std::mem::take(&mut self.found);
        self.ops.find_all(&mut found, |op| {
            (any || !by_fd || op.fd == fd)
                && (!by_ud || op.user_data == key)
                && (!by_op || op.opcode == opc)
        });
        let n = if all { found.len() } else { found.len().min(1) };
        // As the kernel: the canceller's CQE first, then each target's -ECANCELED.
        match (n, all) {
            (0, false) => self.complete(sqe, -libc::ENOENT, 0),
            (_, true) => self.complete(sqe, n as i32, 0),
            (_, false) => self.complete(sqe, 0, 0),
        }
        for &id in &found[..n] {
            self.finish(id, -libc::ECANCELED, 0);
        }
        found.clear();
        self.found = found;
        Ok(None)
    }

    fn op_timeout_remove(&mut self, sqe: &Sqe) -> OpResult {
        const UPDATES: u32 = IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE;
        if sqe.len != 0 || sqe.buf_index != 0 || sqe.file_index != 0 {
            return Err(-libc::EINVAL);
        }
        let flags = sqe.op_flags;
        if flags & UPDATES == 0 {
            if flags != 0 {
                return Err(-libc::EINVAL);
            }
            let id = self.find_timeout(sqe.addr, false).ok_or(-libc::ENOENT)?;
            self.complete(sqe, 0, 0);
            self.finish(id, -libc::ECANCELED, 0);
            return Ok(None);
        }
        // An update: `addr` names the timeout, `addr2` (the `off` field) the
        // new time; only ABS may join the update flags (the timer keeps its
        // clock).
        if flags & !(UPDATES | IORING_TIMEOUT_ABS) != 0 || flags & UPDATES == UPDATES {
            return Err(-libc::EINVAL);
        }
        let ts_us = read_timespec_us(sqe.off)?;
        let link = flags & IORING_LINK_TIMEOUT_UPDATE != 0;
        let id = self.find_timeout(sqe.addr, link).ok_or(-libc::ENOENT)?;
        // The timer keeps its clock (a LINK_TIMEOUT's is not kept: MONOTONIC).
        let clock = match self.ops.get(id).kind {
            OpKind::Timeout { clock, .. } => clock,
            _ => 0,
        };
        let at = self.deadline(clock | (flags & IORING_TIMEOUT_ABS), ts_us);
        match &mut self.ops.get_mut(id).kind {
            OpKind::Timeout {
                at_us, interval_us, ..
            } => {
                *at_us = at;
                // As in Linux, an updated timeout is a plain timer: no more
                // completion count; a multishot one repeats the new interval.
                if *interval_us != 0 {
                    *interval_us = if flags & IORING_TIMEOUT_ABS != 0 {
                        0
                    } else {
                        ts_us.max(1)
                    };
                }
            }
            OpKind::LinkTimeout { at_us, .. } => *at_us = at,
            _ => unreachable!("find_timeout returns timeouts"),
        }
        self.timeouts.push(Reverse((at, id)));
        Ok(Some((0, 0)))
    }

    /// The pending TIMEOUT (or armed LINK_TIMEOUT, with `link`) whose
    /// user_data is `ud`.
    fn find_timeout(&mut self, ud: u64, link: bool) -> Option<u32> {
        self.found.clear();
        let mut found = std::mem::take(&mut self.found);
        self.ops.find_all(&mut found, |op| {
            op.user_data == ud
                && match op.kind {
                    OpKind::Timeout { .. } => !link,
                    OpKind::LinkTimeout { .. } => link,
                    _ => false,
                }
        });
        let target = found.first().copied();
        self.found = found;
        target
    }

    fn op_provide_buffers(&mut self, sqe: &Sqe) -> OpResult {
        let bgid = sqe.buf_index;
        if self.bufrings.contains_key(&bgid) {
            return Err(-libc::EINVAL);
        }
        let count = sqe.fd;
        if count <= 0 || sqe.off > u16::MAX as u64 {
            return Err(-libc::EINVAL);
        }
        usermem::check(sqe.addr, sqe.len as usize * count as usize)?;
        let g = self.legacy.entry(bgid).or_default();
        g.provide(sqe.addr, sqe.len, count as u32, sqe.off as u32)?;
        Ok(Some((0, 0)))
    }

    fn op_remove_buffers(&mut self, sqe: &Sqe) -> OpResult {
        if sqe.fd <= 0 || sqe.addr != 0 || sqe.off != 0 || sqe.len != 0 {
            return Err(-libc::EINVAL);
        }
        if self.bufrings.contains_key(&sqe.buf_index) {
            // A ring-mapped group is not a legacy list.
            return Err(-libc::EINVAL);
        }
        let g = self.legacy.get_mut(&sqe.buf_index).ok_or(-libc::ENOENT)?;
        let n = g.remove(sqe.fd as u32);
        Ok(Some((n as i32, 0)))
    }

    fn op_timeout(&mut self, sqe: &Sqe) -> OpResult {
        let (at, interval) = self.timeout_deadline(sqe)?;
        let flags = sqe.op_flags;
        let multishot = flags & IORING_TIMEOUT_MULTISHOT != 0;
        let kind = OpKind::Timeout {
            at_us: at,
            // 0 marks a one-shot timer, so a multishot one of 0 s (which the
            // kernel accepts) re-arms 1 µs later.
            interval_us: if multishot { interval.max(1) } else { 0 },
            // For a multishot TIMEOUT, `off` counts firings (0: unlimited).
            repeats: if multishot { sqe.off as u32 } else { 0 },
            etime_success: flags & IORING_TIMEOUT_ETIME_SUCCESS != 0,
            clock: flags & (IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_REALTIME),
        };
        let id = self.park(sqe, kind);
        self.ops.get_mut(id).owner = Owner::Timeout;
        self.timeouts.push(Reverse((at, id)));
        if sqe.off != 0 && !multishot {
            // Completes with 0 once `off` more CQEs have been posted.
            self.count_timeouts
                .push((self.stats.cqes.saturating_add(sqe.off), id, at));
        }
        Ok(None)
    }

    /// A TIMEOUT's timer fired. A one-shot TIMEOUT completes with `-ETIME`.
    /// A multishot one posts `-ETIME` with `F_MORE` and re-arms one interval
    /// later, until its last firing (`repeats` left, 0 = unlimited) or a CQ
    /// with no room for the CQE (then, as in Linux, it completes).
    fn fire_timeout(&mut self, id: u32, interval_us: u64, repeats: u32) {
        if interval_us == 0 || repeats == 1 {
            self.finish(id, -libc::ETIME, 0);
            return;
        }
        let ud = self.ops.get(id).user_data;
        if !self.ring.post_aux_cqe(ud, -libc::ETIME, IORING_CQE_F_MORE) {
            self.finish(id, -libc::ETIME, 0);
            return;
        }
        self.stats.cqes += 1;
        let at = self.now_us.saturating_add(interval_us);
        if let OpKind::Timeout {
            at_us, repeats: r, ..
        } = &mut self.ops.get_mut(id).kind
        {
            *at_us = at;
            *r = repeats.saturating_sub(1);
        }
        self.timeouts.push(Reverse((at, id)));
    }

    /// Completes TIMEOUTs whose completion count was reached (checked once
    /// per step; there are few of them).
    fn check_count_timeouts(&mut self) {
        let mut i = 0;
        while i < self.count_timeouts.len() {
            let (target, id, at) = self.count_timeouts[i];
            let live = self.ops.is_live(id)
                && matches!(self.ops.get(id).kind, OpKind::Timeout { at_us, interval_us: 0, .. } if at_us == at)
                && self.ops.get(id).owner == Owner::Timeout;
            if !live {
                self.count_timeouts.swap_remove(i);
            } else if self.stats.cqes >= target {
                self.count_timeouts.swap_remove(i);
                self.finish(id, 0, 0);
            } else {
                i += 1;
            }
        }
    }
}

/// `Ok(Some((res, flags)))`: complete now; `Ok(None)`: parked or already
/// completed by the executor; `Err(-errno)`: complete now with the error.
type OpResult = Result<Option<(i32, u32)>, i32>;

/// Reads a `sockaddr_in` named by `addr`/`addrlen` (value).
fn read_sockaddr(addr: u64, addrlen: u64) -> Result<(Ipv4Addr, u16), i32> {
    if addrlen < core::mem::size_of::<libc::sockaddr_in>() as u64 {
        return Err(-libc::EINVAL);
    }
    let sa: libc::sockaddr_in = usermem::read(addr)?;
    if sa.sin_family != libc::AF_INET as libc::sa_family_t {
        return Err(-libc::EAFNOSUPPORT);
    }
    Ok((
        Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
        u16::from_be(sa.sin_port),
    ))
}

/// Writes the peer address for ACCEPT (`addrlen` is a `socklen_t *`, or 0).
fn write_sockaddr(addr: u64, addrlen: u64, ip: Ipv4Addr, port: u16) -> Result<(), i32> {
    let full = core::mem::size_of::<libc::sockaddr_in>();
    let room = if addrlen != 0 {
        usermem::read::<u32>(addrlen)? as usize
    } else {
        full
    };
    // SAFETY-free: a plain value copy; sockaddr_in is integers only.
    let mut sa: libc::sockaddr_in = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let bytes = sockaddr_bytes(&mut sa);
    let n = room.min(full);
    usermem::slice_mut(addr, n)?.copy_from_slice(&bytes[..n]);
    if addrlen != 0 {
        usermem::write::<u32>(addrlen, full as u32)?;
    }
    Ok(())
}

fn sockaddr_bytes(sa: &mut libc::sockaddr_in) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..2].copy_from_slice(&sa.sin_family.to_ne_bytes());
    b[2..4].copy_from_slice(&sa.sin_port.to_ne_bytes());
    b[4..8].copy_from_slice(&sa.sin_addr.s_addr.to_ne_bytes());
    b
}

/// CQE flags of a completion that consumed provided buffer `bid`.
fn buf_flags(bid: u16) -> u32 {
    IORING_CQE_F_BUFFER | ((bid as u32) << IORING_CQE_BUFFER_SHIFT)
}

/// The base address of the first iovec at `iov`.
fn first_iov_base(iov: u64) -> Result<u64, i32> {
    usermem::read::<libc::iovec>(iov).map(|v| v.iov_base as u64)
}

/// Writes the `io_uring_recvmsg_out` header of a multishot RECVMSG buffer.
/// TCP has no source address and ringline no control messages: both are 0.
fn write_recvmsg_out(baddr: u64, blen: u32, reserve: u32, payload: u32) -> Result<(), i32> {
    if blen < reserve {
        return Err(-libc::EFAULT);
    }
    usermem::write(
        baddr,
        RecvmsgOut {
            namelen: 0,
            controllen: 0,
            payloadlen: payload,
            flags: 0,
        },
    )
}

/// RECVMSG completion: the kernel writes back `msg_flags` (and TCP reports
/// no name or control data).
fn finish_msghdr(msg: u64) {
    if msg == 0 {
        return;
    }
    let _ = usermem::write::<u32>(
        msg + core::mem::offset_of!(libc::msghdr, msg_namelen) as u64,
        0,
    );
    let _ = usermem::write::<usize>(
        msg + core::mem::offset_of!(libc::msghdr, msg_controllen) as u64,
        0,
    );
    let _ = usermem::write::<i32>(
        msg + core::mem::offset_of!(libc::msghdr, msg_flags) as u64,
        0,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    /// The prefetch pass finds the same demux key `on_ipv4` uses, including
    /// past IP options, and gives up on anything that is not IPv4/TCP.
    #[test]
    fn peek_tuple_reads_the_demux_key() {
        let mut f = vec![0u8; ETH_HDR + 24 + 20];
        l2::write_eth(&mut f, [2; 6], [3; 6], l2::ETHERTYPE_IPV4);
        f[ETH_HDR] = 0x46; // IPv4, 24-byte header (one option word)
        f[ETH_HDR + 9] = 6;
        f[ETH_HDR + 12..ETH_HDR + 16].copy_from_slice(&[10, 0, 0, 2]);
        let t = ETH_HDR + 24;
        f[t..t + 2].copy_from_slice(&40000u16.to_be_bytes());
        f[t + 2..t + 4].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            peek_tuple(&f),
            Some(tuple_key(Ipv4Addr::new(10, 0, 0, 2), 40000, 7))
        );
        f[ETH_HDR + 9] = 17; // UDP
        assert_eq!(peek_tuple(&f), None);
        f[ETH_HDR + 9] = 6;
        f[12] = 0x08;
        f[13] = 0x06; // ARP
        assert_eq!(peek_tuple(&f), None);
        assert_eq!(peek_tuple(&f[..20]), None);
    }

    /// Connections to one listener differ only in remote address and port:
    /// their hashes must still spread over the low bits hashbrown indexes by.
    #[test]
    fn tuple_hash_spreads_low_bits_for_one_local_port() {
        let b = BuildHasherDefault::<FxHasher>::default();
        let mask = (1u64 << 17) - 1; // a 128k-bucket table
        let mut seen = std::collections::HashSet::new();
        let n = 100_000u32;
        for i in 0..n {
            let ip = Ipv4Addr::from(0x0a00_0002 + (i >> 15));
            let key = tuple_key(ip, 32768 + (i & 0x7fff) as u16, 7);
            seen.insert(b.hash_one(key) & mask);
        }
        // Random hashing fills ~1 - e^(-100k/131k) = 53% of the buckets.
        assert!(
            seen.len() > 60_000,
            "only {} distinct buckets for {n} keys",
            seen.len()
        );
    }
}
