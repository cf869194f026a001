//! The deterministic two-engine pair: a server and a client ringline runtime
//! on one thread, joined by the loopback wire (through the seeded fault
//! injector for [`Pair::with`], directly for [`Pair::plain`]), on a manual
//! clock the pair advances: 20 µs per round while either engine has work,
//! 2 ms when both are idle, so TCP timers fire quickly and runs are
//! reproducible.
//!
//! [`open_engines`] gives the two runtimes alone, on any clock, for code that
//! drives them itself (the criterion benches); [`lone_runtime`] one runtime on
//! the real clock with an idle wire.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ringline::{open, Clock, EngineConfig, Runtime};
use ringline_dataplane::{FaultConfig, FaultyNic, LoopbackPort, LoopbackWire, Nic, WireConfig};
use ringline_ring::abi::{Cqe, Sqe};
use ringline_ring::opcode::{self, SafeSqe};
use ringline_ring::ring::RingConfig;

/// The port each engine of a [`Pair::with`] pair drives: its end of the wire
/// behind the fault injector.
pub type FaultyPort = FaultyNic<LoopbackPort>;

/// The server's address (the wire's `mac_a` end).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The client's address (the wire's `mac_b` end).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// How to build a pair. The default: two 256-entry rings, engines at
/// [`SERVER_IP`] and [`CLIENT_IP`] that know each other's MAC (no ARP),
/// the client seeded differently from the server, no faults, the default wire.
#[derive(Clone)]
pub struct PairOpts {
    /// The server runtime's ring.
    pub server_ring: RingConfig,
    /// The client runtime's ring.
    pub client_ring: RingConfig,
    /// The server engine.
    pub server: EngineConfig,
    /// The client engine.
    pub client: EngineConfig,
    /// Faults injected on the server's receive side; the client's injector
    /// uses the same settings with another seed. Must be
    /// `FaultConfig::default()` (no faults) for [`Pair::plain`] and
    /// [`open_engines`] without faults.
    pub faults: FaultConfig,
    /// The loopback wire between them. The default engines' static
    /// neighbours name the default wire's MACs: set them again if you change
    /// `mac_a` or `mac_b`.
    pub wire: WireConfig,
}

impl Default for PairOpts {
    fn default() -> Self {
        let wire = WireConfig::default();
        let server = EngineConfig {
            ip: SERVER_IP,
            static_neighbors: vec![(CLIENT_IP, wire.mac_b)],
            ..EngineConfig::default()
        };
        let client = EngineConfig {
            ip: CLIENT_IP,
            static_neighbors: vec![(SERVER_IP, wire.mac_a)],
            seed: 77,
            ..EngineConfig::default()
        };
        PairOpts {
            server_ring: RingConfig {
                sq_entries: 256,
                ..RingConfig::default()
            },
            client_ring: RingConfig {
                sq_entries: 256,
                ..RingConfig::default()
            },
            server,
            client,
            faults: FaultConfig::default(),
            wire,
        }
    }
}

/// A port of the loopback wire as a pair's engine drives it.
pub trait PairPort: Nic + Sized {
    /// Wraps one end of the wire; `faults` are the injector's settings.
    fn attach(port: LoopbackPort, faults: FaultConfig) -> Self;
}

impl PairPort for FaultyPort {
    fn attach(port: LoopbackPort, faults: FaultConfig) -> Self {
        FaultyNic::new(port, faults)
    }
}

impl PairPort for LoopbackPort {
    /// The bare end of the wire.
    ///
    /// # Panics
    ///
    /// If `faults` asks for faults: they need [`FaultyPort`].
    fn attach(port: LoopbackPort, faults: FaultConfig) -> Self {
        assert!(
            faults.loss == 0.0 && faults.duplicate == 0.0 && faults.reorder == 0.0,
            "faults need a FaultyPort pair (Pair::with)"
        );
        port
    }
}

/// Opens the server and client runtimes of `o` on `clock` (both engines read
/// the same clock). Errors name the runtime that failed.
pub fn open_engines<N: PairPort>(
    o: PairOpts,
    clock: Clock,
) -> Result<(Runtime<N>, Runtime<N>), String> {
    let (a, b) = LoopbackWire::pair(&o.wire);
    let mut cf = o.faults;
    cf.seed ^= 0x9e37_79b9;
    let s = open(
        N::attach(a, o.faults),
        &o.server_ring,
        o.server,
        clock.clone(),
    )
    .map_err(|e| format!("server runtime: {e}"))?;
    let c = open(N::attach(b, cf), &o.client_ring, o.client, clock)
        .map_err(|e| format!("client runtime: {e}"))?;
    Ok((s, c))
}

/// One runtime alone on the real clock, with the default ring and engine, on
/// one end of a wire built from `wire`; the other end is returned, idle (keep
/// it as long as the wire should have a peer).
///
/// # Panics
///
/// If the runtime cannot be opened.
pub fn lone_runtime(wire: &WireConfig) -> (Runtime<LoopbackPort>, LoopbackPort) {
    let (a, b) = LoopbackWire::pair(wire);
    let rt = open(
        a,
        &RingConfig::default(),
        EngineConfig::default(),
        Clock::monotonic(),
    )
    .expect("ringline runtime");
    (rt, b)
}

/// Server (`s`) and client (`c`) runtimes, the clock, and the CQEs each has reaped.
pub struct Pair<N: Nic = FaultyPort> {
    /// The server runtime.
    pub s: Runtime<N>,
    /// The client runtime.
    pub c: Runtime<N>,
    /// The manual clock both engines read, in µs.
    pub clock: Arc<AtomicU64>,
    /// CQEs the server has reaped (see [`Pair::step`]).
    pub s_cqes: Vec<Cqe>,
    /// CQEs the client has reaped.
    pub c_cqes: Vec<Cqe>,
    /// Reap the server's CQEs after every step (turn off to let the CQ fill).
    pub reap_server: bool,
    /// Reap the client's CQEs after every step.
    pub reap_client: bool,
    /// Addresses [`client_connect`] handed to CONNECTs: kept until the pair
    /// drops, after both runtimes (field order), so a CONNECT may read its
    /// address whenever it starts. Boxed so they stay put as the Vec grows.
    #[allow(clippy::vec_box)]
    addrs: Vec<Box<libc::sockaddr_in>>,
}

impl Pair {
    /// The default pair ([`PairOpts::default`]).
    pub fn new() -> Pair {
        Pair::with(PairOpts::default())
    }

    /// A pair with the engines behind fault injectors configured by `o.faults`.
    ///
    /// # Panics
    ///
    /// If a runtime cannot be opened.
    pub fn with(o: PairOpts) -> Pair {
        Pair::build(o).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Default for Pair {
    fn default() -> Self {
        Pair::new()
    }
}

impl Pair<LoopbackPort> {
    /// A pair with the engines straight on the wire (no fault injector);
    /// `o.faults` must ask for none.
    pub fn plain(o: PairOpts) -> Result<Pair<LoopbackPort>, String> {
        Pair::build(o)
    }
}

impl<N: PairPort> Pair<N> {
    fn build(o: PairOpts) -> Result<Pair<N>, String> {
        let (clock, t) = Clock::manual();
        let (s, c) = open_engines(o, clock)?;
        Ok(Pair {
            s,
            c,
            clock: t,
            s_cqes: Vec::new(),
            c_cqes: Vec::new(),
            reap_server: true,
            reap_client: true,
            addrs: Vec::new(),
        })
    }
}

impl<N: Nic> Pair<N> {
    /// The clock, in µs.
    pub fn now_us(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    /// Moves the clock for the next round: busy rounds move time a little,
    /// idle rounds jump so RTOs fire quickly.
    pub fn advance_clock(&mut self) {
        let busy = self.s.driver().has_pending_work() || self.c.driver().has_pending_work();
        let dt = if busy { 20 } else { 2_000 };
        self.clock.fetch_add(dt, Ordering::Relaxed);
    }

    /// One round: advance the clock, run both engines once, reap CQEs.
    pub fn step(&mut self) {
        self.advance_clock();
        self.s.submit().expect("server submit");
        self.c.submit().expect("client submit");
        if self.reap_server {
            reap(&mut self.s, &mut self.s_cqes);
        }
        if self.reap_client {
            reap(&mut self.c, &mut self.c_cqes);
        }
    }

    /// Steps until `pred` holds or `max` rounds pass; returns whether it held.
    pub fn run_until(&mut self, max: usize, mut pred: impl FnMut(&mut Self) -> bool) -> bool {
        for _ in 0..max {
            if pred(self) {
                return true;
            }
            self.step();
        }
        pred(self)
    }

    /// Steps `rounds` times.
    pub fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.step();
        }
    }
}

/// Moves every CQE of `r` to `out`.
pub fn reap<N: Nic>(r: &mut Runtime<N>, out: &mut Vec<Cqe>) {
    out.extend(r.completions());
}

/// Pushes one SQE that names no memory (submitting first if the SQ is full).
pub fn push_safe<N: Nic>(r: &mut Runtime<N>, sqe: SafeSqe) {
    while r.push_safe(&sqe).is_err() {
        // SQ full: let this engine consume it (one step) and retry.
        r.submit().expect("submit");
    }
}

/// Pushes one SQE (submitting first if the SQ is full). For SQEs that name
/// no memory, [`push_safe`] needs no `unsafe`.
///
/// # Safety
///
/// The contract of `ringline_ring::app::Ring::push` for `sqe`: every buffer
/// and address it names stays valid, and is not accessed in a conflicting
/// way, until the request's final CQE (or as that contract relaxes it).
pub unsafe fn push<N: Nic>(r: &mut Runtime<N>, sqe: Sqe) {
    loop {
        // SAFETY: the caller upholds the push contract for `sqe` (this
        // function's).
        if unsafe { r.push(&sqe) }.is_ok() {
            return;
        }
        // SQ full: let this engine consume it (one step) and retry.
        r.submit().expect("submit");
    }
}

/// Removes the first CQE with `user_data` from `cqes` and returns it.
pub fn take(cqes: &mut Vec<Cqe>, user_data: u64) -> Option<Cqe> {
    let i = cqes.iter().position(|c| c.user_data == user_data)?;
    Some(cqes.remove(i))
}

/// A boxed (so it stays put) `sockaddr_in` for `ip:port`.
pub fn sockaddr(ip: Ipv4Addr, port: u16) -> Box<libc::sockaddr_in> {
    Box::new(ringline_ring::app::sockaddr_in(ip.octets(), port))
}

/// Runs a local (no network) op that names no memory on the server
/// (`server`) or the client and returns its CQE.
///
/// # Panics
///
/// If no CQE arrives within 1,000 rounds.
pub fn call_safe(p: &mut Pair, server: bool, sqe: SafeSqe) -> Cqe {
    let ud = sqe.user_data;
    if server {
        push_safe(&mut p.s, sqe);
    } else {
        push_safe(&mut p.c, sqe);
    }
    wait_for(p, server, ud)
}

/// Runs a local (no network) op on the server (`server`) or the client and
/// returns its (first) CQE.
///
/// # Safety
///
/// As [`push`]: the memory `sqe` names stays valid until the request's
/// final CQE, which for a one-shot request is the CQE this returns.
///
/// # Panics
///
/// If no CQE arrives within 1,000 rounds.
pub unsafe fn call(p: &mut Pair, server: bool, sqe: Sqe) -> Cqe {
    let ud = sqe.user_data;
    // SAFETY: the caller upholds the push contract (this function's).
    unsafe { push(if server { &mut p.s } else { &mut p.c }, sqe) };
    wait_for(p, server, ud)
}

/// Steps until a CQE for `ud` arrives on the server or the client; takes it.
fn wait_for(p: &mut Pair, server: bool, ud: u64) -> Cqe {
    for _ in 0..1000 {
        p.step();
        let q = if server { &mut p.s_cqes } else { &mut p.c_cqes };
        if let Some(c) = take(q, ud) {
            return c;
        }
    }
    panic!("no CQE for user_data {ud}");
}

/// A listening socket on the server, bound to `port`.
pub fn listen(p: &mut Pair, port: u16, backlog: u32) -> i32 {
    let fd = call_safe(
        p,
        true,
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(9001)
            .build(),
    )
    .res;
    assert!(fd >= 0, "socket: {fd}");
    let sa = sockaddr(SERVER_IP, port);
    let bind = opcode::Bind::new(
        fd,
        &*sa as *const libc::sockaddr_in as *const libc::sockaddr,
        16,
    );
    // SAFETY: `sa` lives until after `call` returned the BIND's (only) CQE.
    let r = unsafe { call(p, true, bind.user_data(9002).build()) };
    assert_eq!(r.res, 0, "bind");
    let r = call_safe(
        p,
        true,
        opcode::Listen::new(fd, backlog as i32)
            .user_data(9003)
            .build(),
    );
    assert_eq!(r.res, 0, "listen");
    fd
}

/// A client socket (SOCKET with user_data `sock_ud`, waited for) and its
/// CONNECT to `sa` pushed (user_data `connect_ud`); returns the socket. The
/// CONNECT names a copy of `sa` that the pair keeps.
pub fn client_connect(p: &mut Pair, sa: &libc::sockaddr_in, sock_ud: u64, connect_ud: u64) -> i32 {
    let fd = call_safe(
        p,
        false,
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(sock_ud)
            .build(),
    )
    .res;
    assert!(fd >= 0, "socket: {fd}");
    let sa = Box::new(*sa);
    let connect = opcode::Connect::new(
        fd,
        &*sa as *const libc::sockaddr_in as *const libc::sockaddr,
        16,
    );
    // SAFETY: the address is boxed (it does not move) and kept in `p.addrs`
    // until the pair drops, after both runtimes.
    unsafe { push(&mut p.c, connect.user_data(connect_ud).build()) };
    p.addrs.push(sa);
    fd
}

/// Opens `n` client connections to `port`; returns their fds once all connected.
pub fn connect_n(p: &mut Pair, port: u16, n: usize, base_ud: u64) -> Vec<i32> {
    let sa = sockaddr(SERVER_IP, port);
    let mut fds = Vec::new();
    for i in 0..n {
        let fd = client_connect(p, &sa, base_ud + 50_000 + i as u64, base_ud + i as u64);
        fds.push(fd);
        if i % 64 == 63 {
            p.step();
        }
    }
    let ok = p.run_until(200_000, |p| {
        p.c_cqes
            .iter()
            .filter(|c| c.user_data >= base_ud && c.user_data < base_ud + n as u64)
            .count()
            == n
    });
    assert!(ok, "connects did not complete");
    for i in 0..n {
        let c = take(&mut p.c_cqes, base_ud + i as u64).unwrap();
        assert_eq!(c.res, 0, "connect {i}");
    }
    fds
}
