//! The backend under test: a ringline engine (the app ring) and a second
//! engine (the peer) joined by the loopback wire, on one thread, with a manual
//! clock. One tick is one round: the clock moves (20 µs when either engine has
//! work, 2 ms when idle, so TCP timers fire quickly), then each engine steps once.
//!
//! The peer is driven through its own ring with the same opcodes an application
//! would use; its CQEs never reach the scenario.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;

use ringline::Runtime;
use ringline_dataplane::{LoopbackPort, WireConfig};
use ringline_ring::abi::{self, Cqe, Sqe};
use ringline_ring::bufring::BufRing;
use ringline_ring::mem::HugePolicy;
use ringline_ring::opcode::{self, SafeSqe};
use ringline_ring::ring::RingConfig;
use ringline_testkit::pair::{Pair, PairOpts, CLIENT_IP, SERVER_IP};

use crate::backend::{Backend, Budget, Kind, PeerId, PeerListenerId, PeerRx, RingSize};

/// The app engine's address.
pub const APP_IP: Ipv4Addr = SERVER_IP;
/// The peer engine's address.
pub const PEER_IP: Ipv4Addr = CLIENT_IP;

/// user_data of the harness's own app-ring SQEs (helpers); never shown to scenarios.
const HIDDEN: u64 = 0xfff0_0000_0000_0000;
/// Rounds an expected event may take.
const EXPECT_ROUNDS: u64 = 300_000;
/// Rounds of a quiet period (up to ~200 ms of virtual time when idle).
const QUIET_ROUNDS: u64 = 100;

/// What a peer-ring request was for.
enum POp {
    Sync,
    Connect(usize),
    Send(usize),
    Recv(usize),
    Accept(usize),
    Ignore,
}

struct RPeer {
    fd: i32,
    reading: bool,
    recv_armed: bool,
    rx: PeerRx,
    recv_buf: Box<[u8]>,
    /// Data queued but not yet handed to a SEND (one SEND in flight at a time keeps order).
    out: VecDeque<Box<[u8]>>,
    inflight: Option<Box<[u8]>>,
    closed: bool,
    connected: Option<i32>,
}

struct RListener {
    fd: i32,
    ready: VecDeque<i32>,
}

/// ringline (two engines on the loopback wire) as a [`Backend`].
pub struct RinglineBackend {
    /// `pair.s` is the app engine, `pair.c` the peer; no fault injector.
    pair: Pair<LoopbackPort>,
    rounds: u64,
    /// App CQEs reaped by helpers, handed out by the next `reap`.
    pending: VecDeque<Cqe>,
    peer_ops: HashMap<u64, POp>,
    peer_done: HashMap<u64, Cqe>,
    next_ud: u64,
    next_app_port: u16,
    next_peer_port: u16,
    ports: HashMap<i32, u16>,
    peers: Vec<RPeer>,
    listeners: Vec<RListener>,
    /// Sockaddrs named by in-flight SQEs; boxed so they stay put as the Vec grows.
    #[allow(clippy::vec_box)]
    addrs: Vec<Box<libc::sockaddr_in>>,
    /// The second ring (MSG_RING scenarios): a third engine, alone on a wire
    /// of its own (the other end kept idle), stepped every round.
    second: Option<(Runtime<LoopbackPort>, LoopbackPort)>,
}

impl RinglineBackend {
    /// A pair of engines; the app ring has `size`.
    pub fn new(size: RingSize) -> Result<RinglineBackend, String> {
        let wire = WireConfig {
            frames_per_direction: 2048,
            ..WireConfig::default()
        };
        // The app engine is the pair's server (APP_IP), the peer its client
        // (PEER_IP, seeded differently); both know each other's MAC.
        let opts = PairOpts {
            server_ring: RingConfig {
                sq_entries: size.sq,
                cq_entries: Some(size.cq),
                huge: HugePolicy::Never,
                ..RingConfig::default()
            },
            client_ring: RingConfig {
                sq_entries: 256,
                huge: HugePolicy::Never,
                ..RingConfig::default()
            },
            wire,
            ..PairOpts::default()
        };
        let pair = Pair::plain(opts)?;
        Ok(RinglineBackend {
            pair,
            rounds: 0,
            pending: VecDeque::new(),
            peer_ops: HashMap::new(),
            peer_done: HashMap::new(),
            next_ud: 1,
            next_app_port: 7000,
            next_peer_port: 9000,
            ports: HashMap::new(),
            peers: Vec::new(),
            listeners: Vec::new(),
            addrs: Vec::new(),
            second: None,
        })
    }

    fn ud(&mut self) -> u64 {
        self.next_ud += 1;
        self.next_ud
    }

    /// One round: move the clock, step the app engine, then the peer engine.
    fn round(&mut self) {
        self.pair.advance_clock();
        self.rounds += 1;
        let _ = self.pair.s.submit();
        self.service_peers();
        let _ = self.pair.c.submit();
        let cqes: Vec<Cqe> = self.pair.c.completions().collect();
        for c in cqes {
            self.on_peer_cqe(c);
        }
        self.service_peers();
        if let Some((rt, _)) = self.second.as_mut() {
            let _ = rt.submit();
        }
    }

    /// Pushes a peer SQE; `op` says what its CQE means.
    ///
    /// # Safety
    ///
    /// Every buffer `sqe` names (send data, a receive buffer, a sockaddr) is
    /// owned by this backend, which keeps it until the request's final CQE or
    /// until the backend drops (the pair, and with it both engines, first).
    unsafe fn peer_push(&mut self, sqe: Sqe, op: POp) {
        self.peer_ops.insert(sqe.user_data, op);
        // SAFETY: the caller upholds the push contract (this function's).
        let r = unsafe { self.pair.c.push(&sqe) };
        if r.is_err() {
            // The peer SQ (256) only fills if a scenario floods it; submit and retry.
            let _ = self.pair.c.submit();
            // SAFETY: as above.
            let _ = unsafe { self.pair.c.push(&sqe) };
        }
    }

    /// [`Self::peer_push`] for an SQE that names no memory.
    fn peer_push_safe(&mut self, sqe: SafeSqe, op: POp) {
        // SAFETY: a SafeSqe names no memory.
        unsafe { self.peer_push(sqe.into_sqe(), op) }
    }

    fn on_peer_cqe(&mut self, c: Cqe) {
        let more = abi::more(c.flags);
        let op = if more {
            self.peer_ops.get(&c.user_data).map(|_| POp::Ignore)
        } else {
            self.peer_ops.remove(&c.user_data)
        };
        match op {
            Some(POp::Sync) => {
                self.peer_done.insert(c.user_data, c);
            }
            Some(POp::Connect(i)) => self.peers[i].connected = Some(c.res),
            Some(POp::Send(i)) => {
                let p = &mut self.peers[i];
                p.inflight = None;
                if c.res < 0 {
                    p.out.clear();
                    p.rx.error.get_or_insert(-c.res);
                }
            }
            Some(POp::Recv(i)) => {
                let p = &mut self.peers[i];
                p.recv_armed = false;
                if c.res > 0 {
                    let n = c.res as usize;
                    let got = p.recv_buf[..n].to_vec();
                    p.rx.data.extend_from_slice(&got);
                } else if c.res == 0 {
                    p.rx.eof = true;
                } else if c.res != -libc::ECANCELED {
                    p.rx.error = Some(-c.res);
                }
            }
            Some(POp::Accept(i)) => {
                if c.res >= 0 {
                    self.listeners[i].ready.push_back(c.res);
                }
                let fd = self.listeners[i].fd;
                let ud = self.ud();
                self.peer_push_safe(
                    opcode::AcceptNoAddr::new(fd).user_data(ud).build(),
                    POp::Accept(i),
                );
            }
            Some(POp::Ignore) | None => {}
        }
    }

    /// Starts queued sends and re-arms receives.
    fn service_peers(&mut self) {
        for i in 0..self.peers.len() {
            if self.peers[i].closed {
                continue;
            }
            if self.peers[i].inflight.is_none() {
                if let Some(d) = self.peers[i].out.pop_front() {
                    let ud = self.ud();
                    let fd = self.peers[i].fd;
                    let sqe = opcode::Send::new(fd, d.as_ptr(), d.len() as u32)
                        .flags(libc::MSG_WAITALL)
                        .user_data(ud)
                        .build();
                    self.peers[i].inflight = Some(d);
                    // SAFETY: the data is boxed and kept in `inflight` until the
                    // SEND's CQE (or until the backend drops, engines first).
                    unsafe { self.peer_push(sqe, POp::Send(i)) };
                }
            }
            let p = &self.peers[i];
            if p.reading && !p.recv_armed && !p.rx.eof && p.rx.error.is_none() {
                let ud = self.ud();
                let p = &mut self.peers[i];
                p.recv_armed = true;
                let sqe = opcode::Recv::new(p.fd, p.recv_buf.as_mut_ptr(), p.recv_buf.len() as u32)
                    .user_data(ud)
                    .build();
                // SAFETY: the peer's boxed `recv_buf` is read only after this
                // RECV's CQE (`recv_armed` allows one at a time) and lives until
                // the backend drops, engines first.
                unsafe { self.peer_push(sqe, POp::Recv(i)) };
            }
        }
    }

    /// Runs a peer-ring request to completion.
    ///
    /// # Safety
    ///
    /// As [`Self::peer_push`].
    unsafe fn peer_call(&mut self, sqe: Sqe) -> Result<Cqe, String> {
        let ud = sqe.user_data;
        // SAFETY: the caller upholds the contract (this function's).
        unsafe { self.peer_push(sqe, POp::Sync) };
        let start = self.rounds;
        while !self.expired(start, Budget::Expect) {
            self.round();
            if let Some(c) = self.peer_done.remove(&ud) {
                return Ok(c);
            }
        }
        Err(format!("peer op {} never completed", sqe.opcode))
    }

    /// [`Self::peer_call`] for an SQE that names no memory.
    fn peer_call_safe(&mut self, sqe: SafeSqe) -> Result<Cqe, String> {
        // SAFETY: a SafeSqe names no memory.
        unsafe { self.peer_call(sqe.into_sqe()) }
    }

    /// Runs a hidden app-ring request to completion; other app CQEs are kept for
    /// the scenario.
    ///
    /// # Safety
    ///
    /// Every buffer `sqe` names is owned by this backend (a sockaddr in
    /// `self.addrs`), which keeps it until the backend drops, engines first.
    unsafe fn app_call(&mut self, mut sqe: Sqe) -> Result<Cqe, String> {
        let ud = HIDDEN | self.ud();
        sqe.user_data = ud;
        // SAFETY: the caller upholds the push contract (this function's).
        unsafe { self.pair.s.push(&sqe) }.map_err(|_| "app SQ full".to_string())?;
        let start = self.rounds;
        while !self.expired(start, Budget::Expect) {
            self.round();
            let mut found = None;
            for c in self.pair.s.completions().collect::<Vec<_>>() {
                if c.user_data == ud {
                    found = Some(c);
                } else {
                    self.pending.push_back(c);
                }
            }
            if let Some(c) = found {
                return Ok(c);
            }
        }
        Err(format!("app helper op {} never completed", sqe.opcode))
    }

    /// [`Self::app_call`] for an SQE that names no memory.
    fn app_call_safe(&mut self, sqe: SafeSqe) -> Result<Cqe, String> {
        // SAFETY: a SafeSqe names no memory (the user_data app_call sets does not
        // change that).
        unsafe { self.app_call(sqe.into_sqe()) }
    }

    fn sockaddr(&mut self, ip: Ipv4Addr, port: u16) -> *const libc::sockaddr {
        let b = Box::new(ringline_ring::app::sockaddr_in(ip.octets(), port));
        let p = &*b as *const libc::sockaddr_in as *const libc::sockaddr;
        self.addrs.push(b);
        p
    }

    fn new_peer(&mut self, fd: i32) -> PeerId {
        self.peers.push(RPeer {
            fd,
            reading: false,
            recv_armed: false,
            rx: PeerRx::default(),
            recv_buf: vec![0u8; 65536].into_boxed_slice(),
            out: VecDeque::new(),
            inflight: None,
            closed: false,
            connected: Some(0),
        });
        PeerId(self.peers.len() - 1)
    }
}

fn check(c: Cqe, what: &str) -> Result<i32, String> {
    if c.res < 0 {
        Err(format!("{what}: {}", crate::errno_name(-c.res)))
    } else {
        Ok(c.res)
    }
}

impl Backend for RinglineBackend {
    fn kind(&self) -> Kind {
        Kind::Ringline
    }

    fn ring_fd(&mut self) -> i32 {
        self.pair.s.driver().ring_fd()
    }

    fn second_ring(&mut self) -> Result<i32, String> {
        let (rt, _) = self
            .second
            .get_or_insert_with(|| ringline_testkit::pair::lone_runtime(&WireConfig::default()));
        Ok(rt.driver().ring_fd())
    }

    unsafe fn second_submit(&mut self, sqe: &Sqe) -> Result<(), String> {
        let (rt, _) = self.second.as_mut().ok_or("no second ring")?;
        // SAFETY: the caller upholds the push contract (the trait method's).
        unsafe { rt.push(sqe) }.map_err(|_| "SQ full".to_string())?;
        let _ = rt.submit();
        Ok(())
    }

    fn second_reap(&mut self) -> Vec<Cqe> {
        match self.second.as_mut() {
            Some((rt, _)) => rt.completions().collect(),
            None => Vec::new(),
        }
    }

    unsafe fn push(&mut self, sqe: &Sqe) -> Result<(), String> {
        // SAFETY: the caller upholds the push contract (the trait method's).
        unsafe { self.pair.s.push(sqe) }.map_err(|_| "SQ full".to_string())
    }

    fn submit(&mut self) {
        let _ = self.pair.s.submit();
    }

    fn tick(&mut self) {
        self.round();
    }

    unsafe fn register(&mut self, opcode: u32, arg: u64, nr_args: u32) -> i32 {
        use ringline_ring::app::Driver;
        // SAFETY: the caller upholds the register contract (this method's).
        match unsafe { self.pair.s.driver_mut().register(opcode, arg, nr_args) } {
            Ok(n) => n as i32,
            Err(e) => e.as_res(),
        }
    }

    fn expired(&self, start: u64, budget: Budget) -> bool {
        let limit = match budget {
            Budget::Expect => EXPECT_ROUNDS,
            Budget::Quiet => QUIET_ROUNDS,
        };
        self.rounds.saturating_sub(start) >= limit
    }

    fn now(&self) -> u64 {
        self.rounds
    }

    fn timeout_clock_us(&self) -> u64 {
        // The engines' virtual clock, which they read absolute times against.
        self.pair.now_us()
    }

    fn reap(&mut self) -> Vec<Cqe> {
        self.reap_n(usize::MAX)
    }

    fn reap_n(&mut self, n: usize) -> Vec<Cqe> {
        let mut v = Vec::new();
        while v.len() < n {
            match self.pending.pop_front() {
                Some(c) => v.push(c),
                None => break,
            }
        }
        let left = n - v.len();
        v.extend(self.pair.s.completions().take(left));
        v.retain(|c| c.user_data < HIDDEN);
        v
    }

    fn sq_flags(&mut self) -> u32 {
        self.pair.s.app().sq_flags()
    }

    fn cq_ready(&mut self) -> u32 {
        self.pair.s.cq_ready() + self.pending.len() as u32
    }

    fn register_buf_ring_flags(
        &mut self,
        entries: u32,
        bgid: u16,
        flags: u16,
    ) -> Result<BufRing, i32> {
        self.pair
            .s
            .register_buf_ring_with_flags(entries, bgid, flags)
            .map_err(|e| e.as_res())
    }

    fn app_listener(&mut self, backlog: i32) -> Result<i32, String> {
        let fd = check(
            self.app_call_safe(opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).build())?,
            "socket",
        )?;
        let port = self.next_app_port;
        self.next_app_port += 1;
        let sa = self.sockaddr(APP_IP, port);
        // SAFETY: `sa` is boxed in `self.addrs`, kept until the backend drops.
        let bound = unsafe { self.app_call(opcode::Bind::new(fd, sa, 16).build()) };
        check(bound?, "bind")?;
        check(
            self.app_call_safe(opcode::Listen::new(fd, backlog).build())?,
            "listen",
        )?;
        self.ports.insert(fd, port);
        Ok(fd)
    }

    fn app_conn(&mut self) -> Result<(i32, PeerId), String> {
        let l = self.app_listener(16)?;
        let p = self.peer_connect(l)?;
        let a = self.app_call_safe(opcode::AcceptNoAddr::new(l).build())?;
        Ok((check(a, "accept")?, p))
    }

    fn peer_connect(&mut self, listener: i32) -> Result<PeerId, String> {
        let port = *self
            .ports
            .get(&listener)
            .ok_or("peer_connect: not an app listener")?;
        let ud = self.ud();
        let fd = check(
            self.peer_call_safe(
                opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                    .user_data(ud)
                    .build(),
            )?,
            "peer socket",
        )?;
        let id = self.new_peer(fd);
        self.peers[id.0].connected = None;
        let sa = self.sockaddr(APP_IP, port);
        let ud = self.ud();
        let connect = opcode::Connect::new(fd, sa, 16).user_data(ud).build();
        // SAFETY: `sa` is boxed in `self.addrs`, kept until the backend drops.
        unsafe { self.peer_push(connect, POp::Connect(id.0)) };
        let start = self.rounds;
        while self.peers[id.0].connected.is_none() {
            if self.expired(start, Budget::Expect) {
                return Err("peer connect never completed".into());
            }
            self.round();
        }
        match self.peers[id.0].connected {
            Some(0) => Ok(id),
            Some(e) => Err(format!("peer connect: {}", crate::errno_name(-e))),
            None => unreachable!(),
        }
    }

    fn peer_send(&mut self, p: PeerId, data: &[u8]) {
        self.peers[p.0]
            .out
            .push_back(data.to_vec().into_boxed_slice());
        self.service_peers();
    }

    fn peer_sent_all(&self, p: PeerId) -> bool {
        let p = &self.peers[p.0];
        p.out.is_empty() && p.inflight.is_none()
    }

    fn peer_start_reading(&mut self, p: PeerId) {
        self.peers[p.0].reading = true;
        self.service_peers();
    }

    fn peer_rx(&self, p: PeerId) -> PeerRx {
        self.peers[p.0].rx.clone()
    }

    fn peer_shutdown_write(&mut self, p: PeerId) {
        let fd = self.peers[p.0].fd;
        let ud = self.ud();
        self.peer_push_safe(
            opcode::Shutdown::new(fd, libc::SHUT_WR)
                .user_data(ud)
                .build(),
            POp::Ignore,
        );
    }

    fn peer_close(&mut self, p: PeerId) {
        let fd = self.peers[p.0].fd;
        self.peers[p.0].closed = true;
        let ud = self.ud();
        self.peer_push_safe(opcode::Close::new(fd).user_data(ud).build(), POp::Ignore);
    }

    fn peer_listen(&mut self) -> Result<(PeerListenerId, libc::sockaddr_in), String> {
        let ud = self.ud();
        let fd = check(
            self.peer_call_safe(
                opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                    .user_data(ud)
                    .build(),
            )?,
            "peer socket",
        )?;
        let port = self.next_peer_port;
        self.next_peer_port += 1;
        let sa = self.sockaddr(PEER_IP, port);
        let ud = self.ud();
        // SAFETY: `sa` is boxed in `self.addrs`, kept until the backend drops.
        let bound = unsafe { self.peer_call(opcode::Bind::new(fd, sa, 16).user_data(ud).build()) };
        check(bound?, "peer bind")?;
        let ud = self.ud();
        check(
            self.peer_call_safe(opcode::Listen::new(fd, 16).user_data(ud).build())?,
            "peer listen",
        )?;
        self.listeners.push(RListener {
            fd,
            ready: VecDeque::new(),
        });
        let i = self.listeners.len() - 1;
        let ud = self.ud();
        self.peer_push_safe(
            opcode::AcceptNoAddr::new(fd).user_data(ud).build(),
            POp::Accept(i),
        );
        Ok((
            PeerListenerId(i),
            ringline_ring::app::sockaddr_in(PEER_IP.octets(), port),
        ))
    }

    fn peer_accept(&mut self, l: PeerListenerId) -> Option<PeerId> {
        let fd = self.listeners[l.0].ready.pop_front()?;
        Some(self.new_peer(fd))
    }

    fn refused_addr(&mut self) -> libc::sockaddr_in {
        ringline_ring::app::sockaddr_in(PEER_IP.octets(), 9)
    }

    fn app_bind_addr(&mut self) -> libc::sockaddr_in {
        let port = self.next_app_port;
        self.next_app_port += 1;
        ringline_ring::app::sockaddr_in(APP_IP.octets(), port)
    }

    fn adopt_listener(&mut self, fd: i32, sa: &libc::sockaddr_in) {
        self.ports.insert(fd, u16::from_be(sa.sin_port));
    }

    fn teardown(&mut self) {
        // Nothing to do: dropping the engines drops every request with them.
    }
}
