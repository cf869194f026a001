//! The connection table: slots (each one smoltcp socket in its own
//! single-socket `SocketSet`, reused with its buffers), the 4-tuple map, the
//! per-connection timer wheel, and the two work sets a step drains: *ready*
//! (something happened: service its ops) and *dirty* (may have something to
//! send: run egress). Nothing here scans all connections.

use std::net::Ipv4Addr;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Duration as SmolDuration;

use crate::bufmem::{BufArena, KEEP};
use crate::config::EngineConfig;
use crate::core::recovery::Recovery;
use crate::errno::{self, Errno};
use crate::fxhash::FxMap;
use crate::ids::{ConnId, ListenerId};
use crate::slab::Slab;
use crate::timer::TimerWheel;

/// The demux key of a connection: remote address, remote port, local port.
#[inline]
pub(crate) fn tuple_key(remote: Ipv4Addr, remote_port: u16, local_port: u16) -> u64 {
    ((u32::from(remote) as u64) << 32) | ((remote_port as u64) << 16) | local_port as u64
}

/// Where a connection is in its life, from the engine's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Slot unused.
    Free,
    /// Passive open in progress (counts against its listener's backlog).
    Handshake(ListenerId),
    /// Established, waiting in its listener's accept queue.
    Queued(ListenerId),
    /// Active open in progress (CONNECT pending or not).
    Connecting,
    /// Has a socket number.
    Open,
    /// Socket number closed; TCP is finishing (FIN, TIME-WAIT) or sending RST.
    Orphan,
}

/// The receive side: the peer's FIN and our `shutdown(SHUT_RD)` are
/// independent facts (a FIN after SHUT_RD still shows as `POLLRDHUP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadSide {
    /// Data may still arrive.
    Open,
    /// The peer sent FIN: what is buffered, then EOF.
    PeerFin,
    /// `shutdown(SHUT_RD)`: EOF now, whatever is buffered.
    Shut,
    /// Both.
    ShutPeerFin,
}

impl ReadSide {
    /// After the peer's FIN.
    pub(crate) fn on_fin(self) -> ReadSide {
        match self {
            ReadSide::Open | ReadSide::PeerFin => ReadSide::PeerFin,
            ReadSide::Shut | ReadSide::ShutPeerFin => ReadSide::ShutPeerFin,
        }
    }
    /// After `shutdown(SHUT_RD)`.
    pub(crate) fn on_shut(self) -> ReadSide {
        match self {
            ReadSide::Open | ReadSide::Shut => ReadSide::Shut,
            ReadSide::PeerFin | ReadSide::ShutPeerFin => ReadSide::ShutPeerFin,
        }
    }
}

/// The send side as the application sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteSide {
    /// Sends are accepted.
    Open,
    /// `shutdown(SHUT_WR)`: FIN queued; sends fail with `EPIPE`.
    Shut,
}

/// How a connection ended abnormally, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reset {
    /// No reset.
    No,
    /// Reset (RST, or a failed handshake); not yet reported.
    Pending,
    /// Reset, and `-ECONNRESET` was reported once (Linux's `sk_err`);
    /// later requests see EOF or `EPIPE`.
    Reported,
}

/// One connection.
pub(crate) struct Conn {
    pub(crate) set: SocketSet<'static>,
    pub(crate) h: SocketHandle,
    pub(crate) phase: Phase,
    pub(crate) key: Option<u64>,
    pub(crate) remote_ip: Ipv4Addr,
    pub(crate) remote_port: u16,
    pub(crate) local_port: u16,
    pub(crate) fd: i32,
    /// Synchronized (the handshake completed) at some point.
    pub(crate) established: bool,
    pub(crate) read: ReadSide,
    pub(crate) write: WriteSide,
    pub(crate) reset: Reset,
    /// We aborted it (close with unread data, listener closed): the RST
    /// that follows is ours, not the peer's.
    pub(crate) aborted: bool,
    /// The application disconnected it (CONNECT with AF_UNSPEC, Linux's
    /// `tcp_disconnect`): as after a failed CONNECT, the socket may connect
    /// again.
    pub(crate) disconnected: bool,
    /// Since when (engine µs) egress has found no MAC for the next hop.
    pub(crate) arp_since: Option<u64>,
    /// The application closed its socket number while requests were still
    /// in flight on it: it closes, as this says, when the last one completes.
    pub(crate) close_pending: Option<CloseHow>,
    /// Linux's `SOCK_NOSPACE`: a send found the send buffer full, or a poll
    /// found the socket not writable. Its next becoming writable is a
    /// write-space wake-up (POLLOUT), and clears it; no other change in
    /// send space wakes a poll.
    pub(crate) nospace: bool,
    /// The TCP state changed since the polls last looked (handshake done,
    /// FIN, reset, close): that wakes every poll, as Linux's
    /// `sk_state_change` does.
    pub(crate) state_woke: bool,
    /// Received bytes queued when the polls last looked (lowered as the
    /// application takes them): more queued than this is an arrival, which
    /// wakes POLLIN polls (Linux's `sk_data_ready`); an ACK is not.
    pub(crate) rx_seen: usize,
    /// Bytes of its socket buffers counted in [`Conns::queued`] (received
    /// and not read, plus sent and not acknowledged, when last looked).
    charged: u32,
    /// Its share of [`Conns::committed`]: the buffer pages it may have
    /// committed, as of the reclaimer's last look (bytes).
    committed: u32,
    /// Where the connection was each way (received end, sent end) when the
    /// reclaimer last looked at its buffers; `None` before it did.
    trim_marks: Option<(u32, u32)>,
    /// Loss recovery's view of the send side, and the socket's clock offset.
    pub(crate) rec: Recovery,
    /// Our sequence numbers on the wire are the socket's minus this (a SYN
    /// cookie connection: the cookie was our ISN, smoltcp chose another;
    /// see `cookies`). 0 for every other connection.
    pub(crate) seq_off: u32,
    /// What a reset reports: `ECONNRESET`, or `ETIMEDOUT` after the idle
    /// timeout.
    pub(crate) reset_err: Errno,
    in_dirty: bool,
    in_ready: bool,
    pub(crate) started_us: u64,
    pub(crate) last_state: tcp::State,
    /// Address of the socket inside `set`, for prefetching only (never
    /// dereferenced): the set holds one socket in a `Vec` of capacity 1, so
    /// the socket does not move for the life of the `Conn`.
    pub(crate) sock_addr: usize,
}

// Per-connection memory is part of the 100k-connection budget
// (docs/performance.md): a connection is this struct in the slab, plus its
// smoltcp socket (about 960 bytes, in the `SocketSet`), plus the pages its
// buffers touched. Growth here is a decision, not an accident: +32 bytes
// (496 to 528) for the receive side's SACK blocks (`Recovery::note_rx`);
// the last, +8 (528 to 536), for `TCP_USER_TIMEOUT` (`Recovery::user_timeout_ms`
// and `progress_ms`): 0.8 MB at 100k connections.
const _: () = assert!(core::mem::size_of::<Conn>() <= 536);
const _: () = assert!(core::mem::size_of::<crate::core::recovery::Recovery>() <= 384);

impl Conn {
    // The one unsafe call outside the audited modules: taking the slot's
    // buffers from the arena (see `bufmem` for the contract).
    #[allow(unsafe_code)]
    fn new(arena: &BufArena, slot: usize, rx_buffer: usize, tx_buffer: usize) -> Conn {
        // SAFETY: each slot is made once (the slab creates a slot's value
        // once and recycles it), and `Conns` drops its slab before its arena.
        let (rx, tx) = unsafe { arena.take(slot, rx_buffer, tx_buffer) };
        let (rx, tx) = (tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
        let mut set = SocketSet::new(Vec::with_capacity(1));
        let h = set.add(tcp::Socket::new(rx, tx));
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
            established: false,
            read: ReadSide::Open,
            write: WriteSide::Open,
            reset: Reset::No,
            aborted: false,
            disconnected: false,
            close_pending: None,
            nospace: false,
            state_woke: false,
            rx_seen: 0,
            charged: 0,
            committed: 0,
            trim_marks: None,
            arp_since: None,
            rec: Recovery::default(),
            reset_err: errno::ECONNRESET,
            seq_off: 0,
            in_dirty: false,
            in_ready: false,
            started_us: 0,
            last_state: tcp::State::Closed,
        }
    }

    /// Its socket.
    #[inline]
    pub(crate) fn sock(&mut self) -> &mut tcp::Socket<'static> {
        self.set.get_mut::<tcp::Socket>(self.h)
    }

    /// Its socket, read-only.
    #[inline]
    pub(crate) fn sock_ref(&self) -> &tcp::Socket<'static> {
        self.set.get::<tcp::Socket>(self.h)
    }

    /// Whether the peer's FIN arrived.
    pub(crate) fn fin(&self) -> bool {
        matches!(self.read, ReadSide::PeerFin | ReadSide::ShutPeerFin)
    }

    /// Whether the application shut the read side.
    #[cfg(test)]
    pub(crate) fn rd_shut(&self) -> bool {
        matches!(self.read, ReadSide::Shut | ReadSide::ShutPeerFin)
    }

    /// Whether nothing more can be read: the peer's FIN or SHUT_RD.
    pub(crate) fn read_closed(&self) -> bool {
        self.read != ReadSide::Open
    }

    /// `IORING_CQE_F_SOCK_NONEMPTY` once the peer's FIN has come, for every
    /// receive CQE (the EOF CQE too), whatever is left queued: Linux's
    /// `tcp_inq_hint` reports at least 1 after a FIN "to tell user space to
    /// continue reading". (While bytes remain, the flag is set anyway.)
    #[inline]
    pub(crate) fn fin_nonempty(&self) -> u32 {
        if matches!(self.read, ReadSide::PeerFin | ReadSide::ShutPeerFin) {
            ringline_ring::abi::IORING_CQE_F_SOCK_NONEMPTY
        } else {
            0
        }
    }

    /// Whether the connection was reset.
    pub(crate) fn is_reset(&self) -> bool {
        self.reset != Reset::No
    }

    /// Takes in the socket's TCP state after input or egress: the handshake
    /// completing, the peer's FIN, a reset. Returns the new state and the
    /// one before.
    ///
    /// Once synchronized, the socket gets the connection's idle timeout
    /// (`alive`) in place of the handshake timeout.
    pub(crate) fn observe(&mut self, alive: Alive, now_us: u64) -> (tcp::State, tcp::State) {
        use tcp::State as S;
        let state = self.sock_ref().state();
        let prev = std::mem::replace(&mut self.last_state, state);
        if prev != state {
            self.state_woke = true;
        }
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
        if synchronized && !self.established {
            self.established = true;
            self.sock().set_timeout(alive.timeout);
        }
        if matches!(state, S::CloseWait | S::LastAck | S::Closing | S::TimeWait) {
            self.read = self.read.on_fin();
        }
        if state == S::Closed
            && prev != S::Closed
            && self.established
            && !self.fin()
            && !self.aborted
            && self.reset == Reset::No
        {
            self.reset = Reset::Pending;
            if let Some(t) = alive.timeout {
                // smoltcp closed it for hearing nothing: Linux says ETIMEDOUT.
                if self.rec.silent_for(now_us) >= t.total_micros() {
                    self.reset_err = errno::ETIMEDOUT;
                }
            }
        }
        (state, prev)
    }

    /// After receives ran: what the application took is no arrival to wake
    /// polls for, and what arrives next is.
    #[inline]
    pub(crate) fn taken_by_app(&mut self) {
        self.rx_seen = self.rx_seen.min(self.sock_ref().recv_queue());
    }

    /// Aborts the connection on our side (RST) and orphans it.
    pub(crate) fn abort_orphan(&mut self) {
        self.aborted = true;
        self.sock().abort();
        self.phase = Phase::Orphan;
    }
}

/// How closing its number ends a connection that TCP has not finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseHow {
    /// A FIN after what is queued (a reset if unread data is left, as
    /// Linux's `tcp_close`).
    Fin,
    /// A reset, what was not sent discarded: `SO_LINGER` on with a zero
    /// time.
    Abort,
}

/// What an established connection's socket gets: keep-alive interval and
/// idle timeout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Alive {
    pub(crate) keepalive: Option<SmolDuration>,
    pub(crate) timeout: Option<SmolDuration>,
}

/// How long (µs) a connection hears nothing before the buffer reclaimer
/// gives back its buffers' unused pages ([`Conns::reclaim_some`]).
pub(crate) const RECLAIM_IDLE_US: u64 = 1_000_000;

/// See the module docs.
pub(crate) struct Conns {
    slab: Slab<Conn>,
    tuples: FxMap<u64, ConnId>,
    pub(crate) timers: TimerWheel,
    dirty: Vec<ConnId>,
    dirty_work: Vec<ConnId>,
    ready: Vec<ConnId>,
    ready_work: Vec<ConnId>,
    max: usize,
    nagle: bool,
    ack_delay: Option<SmolDuration>,
    handshake_timeout: SmolDuration,
    pub(crate) alive: Alive,
    congestion: crate::config::Congestion,
    rx_buffer: usize,
    tx_buffer: usize,
    /// `EngineConfig::buffer_budget` (0: none).
    budget: usize,
    /// Bytes queued in every connection's socket buffers together, as last
    /// looked (the sum of the connections' `charged`).
    pub(crate) queued: usize,
    /// The most `queued` has been.
    pub(crate) queued_peak: usize,
    /// The buffer pages the connections may have committed (bytes), an
    /// upper estimate the reclaimer keeps: the sum of the connections'
    /// `committed`, each refreshed when the reclaimer looks at it.
    pub(crate) committed: usize,
    /// The next slot the buffer reclaimer looks at.
    reclaim_at: usize,
    /// Connections created (slots taken) and freed.
    pub(crate) created: u64,
    pub(crate) freed: u64,
    /// The sockets' buffer memory. Declared after `slab`: dropped after
    /// every socket built on it (see `bufmem`).
    arena: BufArena,
}

fn smol_duration(d: std::time::Duration) -> SmolDuration {
    SmolDuration::from_micros(d.as_micros() as u64)
}

impl Conns {
    pub(crate) fn new(cfg: &EngineConfig, now_us: u64, arena: BufArena) -> Self {
        let n = cfg.prealloc_connections.min(cfg.max_connections);
        let mut slab = Slab::with_capacity(n);
        slab.prefill(n, |i| Conn::new(&arena, i, cfg.rx_buffer, cfg.tx_buffer));
        let mut tuples = FxMap::default();
        tuples.reserve(n);
        let mut timers = TimerWheel::new(now_us);
        // Size the wheel's node table for the preallocated connections.
        timers.arm(ConnId::from_index(n.max(1) - 1), 0);
        timers.cancel(ConnId::from_index(n.max(1) - 1));
        Conns {
            slab,
            tuples,
            timers,
            dirty: Vec::with_capacity(1024),
            dirty_work: Vec::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            ready_work: Vec::with_capacity(1024),
            max: cfg.max_connections,
            nagle: cfg.nagle,
            ack_delay: cfg
                .ack_delay
                .map(|d| SmolDuration::from_micros(d.as_micros() as u64)),
            handshake_timeout: SmolDuration::from_micros(cfg.handshake_timeout.as_micros() as u64),
            congestion: cfg.congestion,
            alive: Alive {
                keepalive: cfg.keepalive.map(smol_duration),
                timeout: cfg.idle_timeout.map(smol_duration),
            },
            rx_buffer: cfg.rx_buffer,
            tx_buffer: cfg.tx_buffer,
            budget: cfg.buffer_budget,
            queued: 0,
            queued_peak: 0,
            committed: 0,
            reclaim_at: 0,
            created: 0,
            freed: 0,
            arena,
        }
    }

    /// Connection slots ever made (free or not): a table walk's end.
    pub(crate) fn slots(&self) -> usize {
        self.slab.slots()
    }

    /// The connection in slot `slot` as an operator sees it (`ringline stat
    /// --conns`); `None` if the slot is free or was never made. `ip`: the
    /// engine's address. Not for the hot path (the stat page's walk).
    pub(crate) fn describe(
        &self,
        slot: usize,
        ip: Ipv4Addr,
        now_us: u64,
    ) -> Option<crate::statpage::ConnInfo> {
        let c = self.slab.get(slot)?;
        if c.phase == Phase::Free {
            return None;
        }
        let s = c.sock_ref();
        let r = c.rec.report();
        Some(crate::statpage::ConnInfo {
            state: crate::statpage::linux_state(s.state()),
            local_ip: u64::from(u32::from(ip)),
            local_port: u64::from(c.local_port),
            remote_ip: u64::from(u32::from(c.remote_ip)),
            remote_port: u64::from(c.remote_port),
            fd: c.fd as i64 as u64,
            bytes_out: u64::from(r.bytes_out),
            bytes_in: u64::from(r.bytes_in),
            srtt_us: r.srtt_us,
            rttvar_us: r.rttvar_us,
            min_rtt_us: r.min_rtt_us,
            cwnd: u64::from(r.cwnd),
            retransmits: u64::from(r.retransmits),
            send_queue: s.send_queue() as u64,
            recv_queue: s.recv_queue() as u64,
            age_us: now_us.saturating_sub(c.started_us),
        })
    }

    /// Connections in use.
    pub(crate) fn live(&self) -> usize {
        self.slab.live()
    }

    /// The connection `cid`.
    #[inline]
    pub(crate) fn get(&self, cid: ConnId) -> &Conn {
        self.slab.at(cid.index())
    }

    /// The connection `cid`, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, cid: ConnId) -> &mut Conn {
        self.slab.at_mut(cid.index())
    }

    /// Whether `cid` is in use.
    pub(crate) fn is_live(&self, cid: ConnId) -> bool {
        self.get(cid).phase != Phase::Free
    }

    /// Address of `cid`'s slot (for prefetching).
    pub(crate) fn addr(&self, cid: ConnId) -> usize {
        self.get(cid) as *const Conn as usize
    }

    /// The connection with demux key `key`.
    #[inline]
    pub(crate) fn lookup(&self, key: u64) -> Option<ConnId> {
        self.tuples.get(&key).copied()
    }

    /// Whether a connection has key `key`.
    pub(crate) fn has_tuple(&self, key: u64) -> bool {
        self.tuples.contains_key(&key)
    }

    /// Gives `cid` its demux key.
    pub(crate) fn bind_tuple(&mut self, cid: ConnId, key: u64) {
        self.get_mut(cid).key = Some(key);
        self.tuples.insert(key, cid);
    }

    /// Takes `cid` out of the demux (later segments of its tuple find no socket).
    pub(crate) fn unbind_tuple(&mut self, cid: ConnId) {
        if let Some(k) = self.get_mut(cid).key.take() {
            if self.tuples.get(&k) == Some(&cid) {
                self.tuples.remove(&k);
            }
        }
    }

    /// Takes a slot for a new connection (in `Connecting` until the caller
    /// says otherwise: admission makes it `Handshake`), its socket reset and
    /// configured.
    /// `None` at `max_connections`.
    pub(crate) fn alloc(&mut self, now_us: u64) -> Option<ConnId> {
        if self.slab.live() >= self.max {
            return None;
        }
        let (rx, tx) = (self.rx_buffer, self.tx_buffer);
        let arena = &self.arena;
        let i = self.slab.recycle_or(|i| Conn::new(arena, i, rx, tx));
        let cid = ConnId::from_index(i);
        let (nagle, ack_delay, hs) = (self.nagle, self.ack_delay, self.handshake_timeout);
        let (alive, cc) = (self.alive, self.congestion);
        let c = self.get_mut(cid);
        c.phase = Phase::Connecting;
        c.key = None;
        c.fd = -1;
        c.established = false;
        c.read = ReadSide::Open;
        c.write = WriteSide::Open;
        c.reset = Reset::No;
        c.aborted = false;
        c.disconnected = false;
        c.close_pending = None;
        c.nospace = false;
        c.state_woke = false;
        c.rx_seen = 0;
        c.trim_marks = None;
        c.arp_since = None;
        c.rec.reset(cc);
        c.reset_err = errno::ECONNRESET;
        c.seq_off = 0;
        c.started_us = now_us;
        c.last_state = tcp::State::Closed;
        let s = c.sock();
        // The engine owns congestion control (`core::recovery`: it steers
        // the socket through the window it feeds it). Set on every reuse: a
        // reused socket keeps its controller state.
        s.set_congestion_control(tcp::CongestionControl::None);
        s.set_nagle_enabled(nagle);
        s.set_ack_delay(ack_delay);
        // Keep-alive is set before the handshake: set on an idle socket,
        // smoltcp would send a probe at once (a cookie connection's first
        // segment would then not carry the cookie).
        s.set_keep_alive(alive.keepalive);
        s.set_timeout(Some(hs));
        self.created += 1;
        Some(cid)
    }

    /// The timeout `cid`'s socket runs with before any clock jump: the idle
    /// timeout once established, the handshake timeout before.
    pub(crate) fn base_timeout(&self, cid: ConnId) -> Option<SmolDuration> {
        if self.get(cid).established {
            self.alive.timeout
        } else {
            Some(self.handshake_timeout)
        }
    }

    /// Sets `cid`'s socket timeout back to its base (a stretch ended).
    pub(crate) fn refit_timeout(&mut self, cid: ConnId) {
        let base = self.base_timeout(cid);
        self.get_mut(cid).sock().set_timeout(base);
    }

    /// Releases a connection slot: its tuple, its timer, its socket (aborted
    /// if still open). The caller has finished its ops already.
    pub(crate) fn free(&mut self, cid: ConnId) {
        if self.get(cid).phase == Phase::Free {
            return;
        }
        self.unbind_tuple(cid);
        let c = self.slab.at_mut(cid.index());
        if c.sock_ref().state() != tcp::State::Closed {
            c.sock().abort();
        }
        c.phase = Phase::Free;
        self.queued -= c.charged as usize;
        c.charged = 0;
        self.committed -= c.committed as usize;
        c.committed = 0;
        if c.rec.moved(KEEP as u32) {
            // Its buffers may have touched pages past the part every
            // connection uses: give those back.
            self.arena.trim(cid.index());
        }
        self.timers.cancel(cid);
        self.slab.release(cid.index());
        self.freed += 1;
    }

    /// Counts `n` bytes a send just copied into `cid`'s send buffer (so the
    /// next send in the same step sees them; egress recharges exactly).
    #[inline]
    pub(crate) fn charge(&mut self, cid: ConnId, n: u32) {
        let c = self.slab.at_mut(cid.index());
        c.charged += n;
        self.queued += n as usize;
        self.queued_peak = self.queued_peak.max(self.queued);
    }

    /// Takes `cid`'s socket buffers' occupancy into [`Conns::queued`]. Called
    /// at egress: every change of a connection's queues (input, a send's
    /// copy, a receive) marks it for egress, so each is counted within the
    /// step. O(1): two loads and a subtraction.
    #[inline]
    pub(crate) fn recharge(&mut self, cid: ConnId) {
        let c = self.slab.at_mut(cid.index());
        let s = c.sock_ref();
        // What came out of order is held too (an upper bound: see
        // `Recovery::rx_beyond`).
        let beyond = c.rec.rx_beyond().unwrap_or(0);
        let now = (s.recv_queue() + s.send_queue()) as u32 + beyond;
        self.queued = self.queued - c.charged as usize + now as usize;
        c.charged = now;
        self.queued_peak = self.queued_peak.max(self.queued);
    }

    /// How many more bytes a send may copy into `cid`'s send buffer under
    /// the memory budget: what is left of the budget, but never less than
    /// what brings its send queue to [`KEEP`] (so every connection can make
    /// progress however full the budget is, as Linux's `tcp_wmem[0]`).
    /// While even a full send buffer more would stay within the budget (the
    /// common case), that is all: two loads and a comparison. Nearer the
    /// budget it recharges `cid` first (its ACKs may have freed space since
    /// egress).
    #[inline]
    pub(crate) fn send_allowance(&mut self, cid: ConnId) -> usize {
        if self.budget == 0 || self.queued + self.tx_buffer <= self.budget {
            return usize::MAX;
        }
        self.recharge(cid);
        let queued = self.get(cid).sock_ref().send_queue();
        self.budget
            .saturating_sub(self.queued)
            .max(KEEP.saturating_sub(queued))
    }

    /// Whether the memory budget is used up (the first test of
    /// [`Conns::rx_over_budget`], inlined on the per-segment path).
    #[inline(always)]
    pub(crate) fn budget_used(&self) -> bool {
        self.budget != 0 && self.queued >= self.budget
    }

    /// Whether data arriving for `cid` is over the memory budget: the
    /// budget is used up and the connection already holds at least [`KEEP`]
    /// bytes (below that it always takes data, as Linux's `tcp_rmem[0]`).
    /// Data in order counts what is unread; data starting at `seq` past the
    /// ACK last sent (out of order) also what is already held out of order,
    /// so a hole can always be filled while data past it is refused first
    /// (Linux's `tcp_data_queue_ofo` drops such data under memory pressure).
    /// Such data is dropped, its ACK kept (Linux's `TCPRcvQDrop`); the peer
    /// sends it again.
    #[cold]
    pub(crate) fn rx_over_budget(&self, cid: ConnId, seq: u32) -> bool {
        if !self.budget_used() {
            return false;
        }
        let c = self.get(cid);
        let mut held = c.sock_ref().recv_queue();
        if c.rec.ahead_of_ack(seq) {
            held += c.rec.rx_beyond().unwrap_or(0) as usize;
        }
        held >= KEEP
    }

    /// The buffer reclaimer: looks at the next `n` connection slots (a
    /// cursor going round the table, so every slot is visited once per
    /// `slots / n` calls; the engine calls it once a millisecond) and gives
    /// back the pages of a connection's buffers that moved more than
    /// [`KEEP`] bytes, beyond what they hold, since it was last looked at:
    /// smoltcp's receive ring never restarts at offset 0 (only a send into
    /// an empty transmit ring does), so every connection's receive buffer
    /// touches all its pages as bytes pass through it, however little it
    /// holds at a time. A buffer keeps the data it holds and [`KEEP`] bytes
    /// after it (where the next bytes go); the rest of its ring is given
    /// back. A receive buffer is trimmed only when everything the peer sent
    /// is acknowledged (no out-of-order data can lie past what it holds);
    /// its data starts at its read position. A transmit buffer's data ends
    /// where the next byte would be written (an empty one keeps its first
    /// [`KEEP`] bytes: a send into it starts there).
    ///
    /// Normally only connections idle for [`RECLAIM_IDLE_US`] are trimmed
    /// (a busy one would fault its pages back in at once). Under pressure,
    /// when the pages the connections may have committed
    /// ([`Conns::committed`]) pass the memory budget, busy ones are trimmed
    /// too, and 16 times as many slots are
    /// looked at per call. Returns (buffers trimmed, of them under pressure).
    pub(crate) fn reclaim_some(&mut self, now_us: u64, n: usize) -> (u64, u64) {
        let slots = self.slab.slots();
        let pressed = self.budget != 0 && self.committed > self.budget;
        let n = if pressed { n * 16 } else { n };
        let (rx_cap, tx_cap) = (self.rx_buffer as u32, self.tx_buffer as u32);
        let (mut trimmed, mut forced) = (0, 0);
        for _ in 0..n.min(slots) {
            let i = self.reclaim_at % slots;
            self.reclaim_at = i + 1;
            let c = self.slab.at_mut(i);
            if c.phase == Phase::Free {
                c.rec.shed_board(true);
                continue;
            }
            let (rx_end, tx_end) = c.rec.marks();
            let (rx0, tx0) = c.trim_marks.unwrap_or_else(|| c.rec.bases());
            let (mut rx_mark, mut tx_mark) = (rx0, tx0);
            // Data each buffer holds now (received and not read; not yet
            // sent or acknowledged).
            let (rx_queued, tx_held) = (c.sock_ref().recv_queue(), c.sock_ref().send_queue());
            // A receive ring also holds what came out of order past its queue,
            // up to the peer's highest byte (unknown before the first ACK: then
            // it is not trimmed).
            let rx_beyond = c.rec.rx_beyond();
            let rx_held = rx_queued + rx_beyond.unwrap_or(0) as usize;
            // Far: more of the ring may be committed (bytes that went through
            // it since the mark) than a trim keeps (what it holds, and KEEP).
            let far = |now: u32, then: u32, held: usize| {
                now.wrapping_sub(then) > (KEEP + held).min(u32::MAX as usize) as u32
            };
            let (rx_far, tx_far) = (far(rx_end, rx0, rx_held), far(tx_end, tx0, tx_held));
            let idle = c.rec.silent_for(now_us) >= RECLAIM_IDLE_US;
            if idle {
                c.rec.shed_board(false);
            }
            if (rx_far || tx_far) && (idle || pressed) {
                let before = trimmed;
                // A buffer holding data keeps it (and KEEP bytes after it,
                // where the next bytes go); the rest of its ring, bytes
                // already read or acknowledged, is given back too.
                if rx_far && rx_beyond.is_some() {
                    // Received data starts at the read position: where a peek
                    // of nothing points. The queue follows it, then whatever
                    // came out of order, which smoltcp's assembler writes at
                    // its offset past the queue's end: keeping `held` bytes
                    // from the read position keeps both. A socket that can
                    // receive no more and holds nothing (the peer's FIN came,
                    // all read) refuses the peek; nothing will be written to
                    // its buffer again, so none of it is kept.
                    let held = rx_held;
                    let cap = c.sock_ref().recv_capacity();
                    let keep_from = match c.sock().peek(0) {
                        Ok(b) => self.arena.offset_in(i, true, b.as_ptr()),
                        Err(_) if held == 0 => Some(0),
                        Err(_) => None,
                    };
                    if let Some(off) = keep_from {
                        trimmed += u64::from(self.arena.trim_ring(i, true, cap, off, held));
                        rx_mark = rx_end.wrapping_sub(held as u32);
                    }
                }
                if tx_far {
                    // Data to send or to be acknowledged ends where the next
                    // byte would be written: a send of nothing says where
                    // (it changes nothing). A socket that can send no more
                    // (closed, FIN queued) still holding data is left alone.
                    let held = tx_held;
                    let cap = c.sock_ref().send_capacity();
                    let keep_from = if held == 0 {
                        Some(0)
                    } else {
                        c.sock()
                            .send(|b| (0, b.as_ptr()))
                            .ok()
                            .and_then(|p| self.arena.offset_in(i, false, p))
                            .map(|end| (end + cap - held) % cap.max(1))
                    };
                    if let Some(off) = keep_from {
                        trimmed += u64::from(self.arena.trim_ring(i, false, cap, off, held));
                        tx_mark = tx_end.wrapping_sub(held as u32);
                    }
                }
                if !idle {
                    forced += trimmed - before;
                }
                // Each direction is looked at again only once it has moved
                // another KEEP bytes (or, not trimmed yet, on the next visit).
                c.trim_marks = Some((rx_mark, tx_mark));
            }
            // What its buffers may hold committed now: the KEEP bytes kept
            // (or first written, page-widened) plus every byte moved since,
            // at most the buffer (an upper estimate: pages are committed as
            // bytes pass).
            let span = |now: u32, mark: u32, cap: u32| {
                now.wrapping_sub(mark)
                    .saturating_add(KEEP as u32 + 4096)
                    .min(cap)
            };
            let est = span(rx_end, rx_mark, rx_cap) + span(tx_end, tx_mark, tx_cap);
            self.committed = self.committed - c.committed as usize + est as usize;
            c.committed = est;
        }
        (trimmed, forced)
    }

    /// Queues `cid` for egress (once).
    #[inline]
    pub(crate) fn mark_dirty(&mut self, cid: ConnId) {
        let c = self.slab.at_mut(cid.index());
        if !c.in_dirty {
            c.in_dirty = true;
            self.dirty.push(cid);
        }
    }

    /// Queues `cid` for service (once).
    #[inline]
    pub(crate) fn mark_ready(&mut self, cid: ConnId) {
        let c = self.slab.at_mut(cid.index());
        if !c.in_ready {
            c.in_ready = true;
            self.ready.push(cid);
        }
    }

    /// Whether no connection is queued for service.
    #[inline]
    pub(crate) fn none_ready(&self) -> bool {
        self.ready.is_empty()
    }

    /// Whether any connection is queued for service or egress.
    pub(crate) fn has_work(&self) -> bool {
        !self.ready.is_empty() || !self.dirty.is_empty()
    }

    /// Takes the ready set for one round of service, clearing each flag
    /// first (connections readied during the round wait for the next). Give
    /// the list back with [`Conns::end_ready`].
    pub(crate) fn take_ready(&mut self) -> Vec<ConnId> {
        std::mem::swap(&mut self.ready, &mut self.ready_work);
        let work = std::mem::take(&mut self.ready_work);
        for &cid in &work {
            self.slab.at_mut(cid.index()).in_ready = false;
        }
        work
    }

    /// Returns the list [`Conns::take_ready`] lent (its memory is kept).
    pub(crate) fn end_ready(&mut self, mut work: Vec<ConnId>) {
        work.clear();
        self.ready_work = work;
    }

    /// Starts an egress pass: the dirty connections in order. The caller
    /// takes them one by one with [`Conns::next_dirty`] while the NIC has
    /// room, then calls [`Conns::end_egress`].
    pub(crate) fn begin_egress(&mut self) -> usize {
        std::mem::swap(&mut self.dirty, &mut self.dirty_work);
        self.dirty_work.len()
    }

    /// The `i`-th connection of the pass, its dirty flag cleared, if live.
    pub(crate) fn next_dirty(&mut self, i: usize) -> Option<ConnId> {
        let cid = self.dirty_work[i];
        let c = self.slab.at_mut(cid.index());
        c.in_dirty = false;
        (c.phase != Phase::Free).then_some(cid)
    }

    /// Ends an egress pass that handled the first `done`: the rest (flags
    /// still set) go first next time, then those marked during the pass. No
    /// allocation once capacity settles.
    pub(crate) fn end_egress(&mut self, done: usize) {
        if done == self.dirty_work.len() {
            // All handled (the common case): what was marked meanwhile is
            // already in `dirty`, in order.
            self.dirty_work.clear();
            return;
        }
        self.dirty_work.drain(..done);
        self.dirty_work.append(&mut self.dirty);
        std::mem::swap(&mut self.dirty, &mut self.dirty_work);
    }

    /// After egress for `cid`: smoltcp wants to be polled again at `at_us`
    /// (`None`: nothing pending; the wheel fires no later than `at_us`, maybe
    /// earlier, see below). A deadline already due means the egress
    /// budget ran out: the connection stays dirty for the next step instead
    /// of waiting for the wheel. A state change (a FIN or RST went out)
    /// readies it for service.
    pub(crate) fn after_egress(&mut self, cid: ConnId, at_us: Option<u64>, now_us: u64) {
        let slot = cid;
        match at_us {
            Some(t) if t <= now_us => {
                self.timers.cancel(slot);
                self.mark_dirty(cid);
            }
            // A timer armed earlier than `t` (or armed when nothing is due
            // now) stays: when it fires, egress finds nothing due and arms
            // the real deadline. A connection's deadline moves on every
            // segment it sends or hears (the probe timeout counts from the
            // last progress), and moving it in the wheel each time cost
            // more than one early wake-up per tick.
            Some(t) => self.timers.arm_by(slot, t),
            None => {}
        }
        let c = self.get(cid);
        if c.sock_ref().state() != c.last_state {
            self.mark_ready(cid);
        }
    }

    /// Arms `cid`'s timer for `at_us` (a retry when nothing else wakes it).
    pub(crate) fn arm_timer(&mut self, cid: ConnId, at_us: u64) {
        self.timers.arm(cid, at_us);
    }

    /// Address of `cid`'s timer node (for prefetching).
    pub(crate) fn timer_addr(&self, cid: ConnId) -> Option<usize> {
        self.timers.node_addr(cid)
    }

    /// Marks dirty every live connection whose timer is due at `now_us`.
    #[inline]
    pub(crate) fn expire_timers(&mut self, now_us: u64) {
        if self.timers.may_expire(now_us) {
            self.expire_due(now_us);
        }
    }

    #[inline(never)]
    fn expire_due(&mut self, now_us: u64) {
        let mut due = std::mem::take(&mut self.dirty_work);
        self.timers.expire(now_us, |cid| due.push(cid));
        for &cid in &due {
            if self.get(cid).phase != Phase::Free {
                self.mark_dirty(cid);
            }
        }
        due.clear();
        self.dirty_work = due;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns(max: usize) -> Conns {
        let cfg = EngineConfig {
            max_connections: max,
            prealloc_connections: 2,
            ..EngineConfig::default()
        };
        let arena = BufArena::new(max, cfg.rx_buffer, cfg.tx_buffer).unwrap();
        Conns::new(&cfg, 0, arena)
    }

    #[test]
    fn alloc_respects_the_limit_and_free_recycles() {
        let mut t = conns(2);
        let a = t.alloc(0).unwrap();
        let b = t.alloc(0).unwrap();
        assert_eq!(t.alloc(0), None, "max_connections");
        t.free(a);
        assert_eq!(t.live(), 1);
        assert_eq!(t.alloc(5).unwrap(), a, "freed slot reused");
        assert_eq!(t.get(a).started_us, 5);
        assert_ne!(a, b);
        assert_eq!((t.created, t.freed), (3, 1));
    }

    #[test]
    fn read_side_keeps_fin_and_shutdown_apart() {
        use ReadSide::*;
        assert_eq!(Open.on_fin(), PeerFin);
        assert_eq!(Open.on_shut(), Shut);
        assert_eq!(Shut.on_fin(), ShutPeerFin);
        assert_eq!(PeerFin.on_shut(), ShutPeerFin);
        assert_eq!(ShutPeerFin.on_fin(), ShutPeerFin);
        let mut t = conns(2);
        let a = t.alloc(0).unwrap();
        let c = t.get_mut(a);
        c.read = c.read.on_shut();
        assert!(c.rd_shut() && !c.fin() && c.read_closed());
        c.read = c.read.on_fin();
        assert!(c.rd_shut() && c.fin());
    }

    #[test]
    fn tuples_map_and_unmap() {
        let mut t = conns(4);
        let a = t.alloc(0).unwrap();
        let k = tuple_key(Ipv4Addr::new(10, 0, 0, 2), 40000, 80);
        t.bind_tuple(a, k);
        assert_eq!(t.lookup(k), Some(a));
        t.free(a);
        assert_eq!(t.lookup(k), None, "freeing unmaps the tuple");
        assert_eq!(t.get(a).phase, Phase::Free);
    }

    #[test]
    fn dirty_set_keeps_order_and_blocked_go_first() {
        let mut t = conns(8);
        let ids: Vec<_> = (0..3).map(|_| t.alloc(0).unwrap()).collect();
        for &c in &ids {
            t.mark_dirty(c);
            t.mark_dirty(c); // once only
        }
        let n = t.begin_egress();
        assert_eq!(n, 3);
        assert_eq!(t.next_dirty(0), Some(ids[0]));
        // The NIC filled after one: the other two stay first.
        t.mark_dirty(ids[0]);
        t.end_egress(1);
        let n = t.begin_egress();
        let order: Vec<_> = (0..n).map(|i| t.next_dirty(i).unwrap()).collect();
        assert_eq!(order, vec![ids[1], ids[2], ids[0]]);
        t.end_egress(n);
        assert!(!t.has_work());
    }

    #[test]
    fn after_egress_arms_retries_or_keeps_dirty() {
        let mut t = conns(8);
        let a = t.alloc(0).unwrap();
        t.after_egress(a, Some(7_000), 1_000);
        assert_eq!(t.timers.deadline_us(a), Some(7_000));
        assert!(!t.has_work());
        t.after_egress(a, Some(1_000), 1_000);
        assert_eq!(t.timers.deadline_us(a), None);
        assert!(t.has_work(), "a deadline already due keeps it dirty");
        let n = t.begin_egress();
        t.next_dirty(0);
        t.end_egress(n);
        t.after_egress(a, None, 1_000);
        assert!(!t.has_work());
    }

    #[test]
    fn ready_round_clears_flags_first() {
        let mut t = conns(8);
        let a = t.alloc(0).unwrap();
        t.mark_ready(a);
        t.mark_ready(a);
        let work = t.take_ready();
        assert_eq!(work, vec![a]);
        t.mark_ready(a); // readied again during the round: next round
        t.end_ready(work);
        assert_eq!(t.take_ready(), vec![a]);
    }

    #[test]
    fn timers_mark_live_connections_dirty() {
        let mut t = conns(8);
        let a = t.alloc(0).unwrap();
        let b = t.alloc(0).unwrap();
        t.timers.arm(a, 2_000);
        t.timers.arm(b, 2_000);
        t.free(b);
        t.expire_timers(5_000);
        let n = t.begin_egress();
        assert_eq!(n, 1);
        assert_eq!(t.next_dirty(0), Some(a));
    }
}
