//! Deterministic two-engine harness: two ringline runtimes on one thread,
//! joined by the loopback wire (optionally through the fault injector), with a
//! virtual clock advanced by the test.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ringline::{open, Clock, EngineConfig, Runtime};
use ringline_dataplane::{FaultConfig, FaultyNic, LoopbackPort, LoopbackWire, WireConfig};
use ringline_ring::abi::{Cqe, Sqe};
use ringline_ring::ring::RingConfig;

pub type Nic = FaultyNic<LoopbackPort>;
pub type Rt = Runtime<Nic>;

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Options for a pair.
#[derive(Clone)]
pub struct PairOpts {
    pub server_ring: RingConfig,
    pub client_ring: RingConfig,
    pub server: EngineConfig,
    pub client: EngineConfig,
    pub faults: FaultConfig,
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

/// Server (`s`) and client (`c`) runtimes, the clock, and the CQEs each has reaped.
pub struct Pair {
    pub s: Rt,
    pub c: Rt,
    pub clock: Arc<AtomicU64>,
    pub s_cqes: Vec<Cqe>,
    pub c_cqes: Vec<Cqe>,
    /// Reap CQEs after every step (turn off to let the CQ fill).
    pub reap_server: bool,
    pub reap_client: bool,
}

impl Pair {
    pub fn new() -> Pair {
        Pair::with(PairOpts::default())
    }

    pub fn with(o: PairOpts) -> Pair {
        let (a, b) = LoopbackWire::pair(&o.wire);
        let (clock, t) = Clock::manual();
        let mut cf = o.faults;
        cf.seed ^= 0x9e37_79b9;
        let s = open(
            FaultyNic::new(a, o.faults),
            &o.server_ring,
            o.server,
            clock.clone(),
        )
        .expect("server runtime");
        let c =
            open(FaultyNic::new(b, cf), &o.client_ring, o.client, clock).expect("client runtime");
        Pair {
            s,
            c,
            clock: t,
            s_cqes: Vec::new(),
            c_cqes: Vec::new(),
            reap_server: true,
            reap_client: true,
        }
    }

    pub fn now_us(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    /// One round: advance the clock, run both engines once, reap CQEs.
    pub fn step(&mut self) {
        let busy = self.s.driver().has_pending_work()
            || self.c.driver().has_pending_work();
        // Busy rounds move time a little; idle rounds jump so RTOs fire quickly.
        let dt = if busy { 20 } else { 2_000 };
        self.clock.fetch_add(dt, Ordering::Relaxed);
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
    pub fn run_until(&mut self, max: usize, mut pred: impl FnMut(&mut Pair) -> bool) -> bool {
        for _ in 0..max {
            if pred(self) {
                return true;
            }
            self.step();
        }
        pred(self)
    }

    pub fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.step();
        }
    }
}

pub fn reap(r: &mut Rt, out: &mut Vec<Cqe>) {
    out.extend(r.completions());
}

/// Pushes one SQE (submitting first if the SQ is full). The caller keeps
/// every buffer the SQE names alive until its final CQE.
pub fn push(r: &mut Rt, sqe: Sqe) {
    loop {
        // SAFETY: test SQEs name buffers the test keeps alive (and does not move)
        // until the request's final CQE; see each caller.
        if unsafe { r.push(&sqe) }.is_ok() {
            return;
        }
        // SQ full: let this engine consume it (one step) and retry.
        r.submit().expect("submit");
    }
}

/// Submits and steps until a CQE with `user_data` shows up in `cqes`; returns it.
pub fn take(cqes: &mut Vec<Cqe>, user_data: u64) -> Option<Cqe> {
    let i = cqes.iter().position(|c| c.user_data == user_data)?;
    Some(cqes.remove(i))
}

pub fn sockaddr(ip: Ipv4Addr, port: u16) -> Box<libc::sockaddr_in> {
    Box::new(ringline_ring::app::sockaddr_in(ip.octets(), port))
}

/// Runs a local (no network) op on `r` and returns its CQE.
pub fn call(p: &mut Pair, server: bool, sqe: Sqe) -> Cqe {
    let ud = sqe.user_data;
    if server {
        push(&mut p.s, sqe);
    } else {
        push(&mut p.c, sqe);
    }
    for _ in 0..1000 {
        p.step();
        let q = if server { &mut p.s_cqes } else { &mut p.c_cqes };
        if let Some(c) = take(q, ud) {
            return c;
        }
    }
    panic!("no CQE for user_data {ud}");
}

/// A listening socket on the server.
pub fn listen(p: &mut Pair, port: u16, backlog: u32) -> i32 {
    let fd = call(
        p,
        true,
        ringline_ring::opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(9001)
            .build(),
    )
    .res;
    assert!(fd >= 0, "socket: {fd}");
    let sa = sockaddr(SERVER_IP, port);
    let r = call(
        p,
        true,
        ringline_ring::opcode::Bind::new(
            fd,
            &*sa as *const libc::sockaddr_in as *const libc::sockaddr,
            16,
        )
        .user_data(9002)
        .build(),
    );
    assert_eq!(r.res, 0, "bind");
    let r = call(
        p,
        true,
        ringline_ring::opcode::Listen::new(fd, backlog as i32)
            .user_data(9003)
            .build(),
    );
    assert_eq!(r.res, 0, "listen");
    fd
}

/// Opens `n` client connections to `port`; returns their fds once all connected.
pub fn connect_n(p: &mut Pair, port: u16, n: usize, base_ud: u64) -> Vec<i32> {
    let sa = sockaddr(SERVER_IP, port);
    let mut fds = Vec::new();
    for i in 0..n {
        let fd = call(
            p,
            false,
            ringline_ring::opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                .user_data(base_ud + 50_000 + i as u64)
                .build(),
        )
        .res;
        assert!(fd >= 0);
        fds.push(fd);
        push(
            &mut p.c,
            ringline_ring::opcode::Connect::new(
                fd,
                &*sa as *const libc::sockaddr_in as *const libc::sockaddr,
                16,
            )
            .user_data(base_ud + i as u64)
            .build(),
        );
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
