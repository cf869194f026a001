//! `engine_ingress_per_packet/{1000,10000,100000}`: what one received TCP
//! data segment costs the server engine while it holds N established
//! connections.
//!
//! Two engines on this thread, joined by the loopback wire. The server
//! listens on several ports (one client address has 28,232 ephemeral ports
//! per server port), accepts every connection with a multishot ACCEPT and
//! keeps a multishot RECV armed on each, as `echo::serve` does. Per
//! iteration the client sends 128 bytes on each of the next 64 connections,
//! round robin over all N, and its engine puts the 64 segments on the wire
//! (untimed); then one server engine step is timed: demux, TCP input, the
//! receive completion (a multishot RECV CQE), and the egress of the
//! connections it touched (one pure ACK each: the server does not delay
//! ACKs here). The server's CQEs and the client's side are handled untimed.
//! Reported per segment.
//!
//! `engine_ingress_in_group/{1,2}`: the same at 1,000 connections, for a
//! server engine alone and for one engine of a group of two on a two-queue
//! wire (`LoopbackWire::multi`, `open_in_group`).
//!
//! `engine_echo_round_trip/1`: what one 128-byte echo round trip costs both
//! engines together, on one connection, with no core between them: the
//! client's SEND out, the server's input and multishot RECV completion, its
//! SEND back out of the provided buffer, the client's input and RECV
//! completion, with delayed ACKs on both sides as `ringline bench echo` runs
//! them. Set against `bench echo --connections 1` and the frame floor, it
//! says how much of the round trip is stack work rather than core-to-core
//! transfer.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringline::{engine_group, open_in_group, Clock, EngineConfig, Runtime};
use ringline_dataplane::{LoopbackPort, LoopbackWire, WireConfig};
use ringline_ring::abi::{buffer_id, more, Cqe, Sqe};
use ringline_ring::bufring::BufRing;
use ringline_ring::opcode::{self, SafeSqe};
use ringline_ring::ring::RingConfig;
use ringline_testkit::pair::{open_engines, PairOpts, CLIENT_IP as CLIENT, SERVER_IP as SERVER};

type Rt = Runtime<LoopbackPort>;

const BATCH: usize = 64;
const MSG: usize = 128;
const BUFS: u32 = 4096;
const BUF_LEN: u32 = 2048;

/// Pushes `sqe`, submitting whenever the SQ is full.
///
/// # Safety
///
/// `Ring::push`'s contract: the memory `sqe` names stays valid until the
/// request's final CQE.
unsafe fn push(rt: &mut Rt, sqe: Sqe) {
    loop {
        // SAFETY: the caller upholds the push contract (this function's).
        if unsafe { rt.push(&sqe) }.is_ok() {
            return;
        }
        let _ = rt.submit();
    }
}

/// Pushes `sqe`, which names no memory, submitting whenever the SQ is full.
fn push_safe(rt: &mut Rt, sqe: SafeSqe) {
    while rt.push_safe(&sqe).is_err() {
        let _ = rt.submit();
    }
}

/// Pushes `sqe` on an idle runtime, submits, and returns its CQE's result.
///
/// # Safety
///
/// As [`push`]; the CQE has come when this returns.
unsafe fn sync(rt: &mut Rt, sqe: Sqe, cqes: &mut Vec<Cqe>) -> i32 {
    // SAFETY: the caller upholds the push contract (this function's).
    unsafe { push(rt, sqe) };
    rt.submit_and_wait(1).expect("submit");
    cqes.clear();
    cqes.extend(rt.completions());
    cqes[0].res
}

struct Setup {
    s: Rt,
    c: Rt,
    /// With a group of engines: the siblings of `s` and `c` (queue 1 and
    /// up), open but idle (every connection hashes to queue 0).
    _siblings: Vec<Rt>,
    fds: Vec<i32>,
    next: usize,
    ring: BufRing,
    arena: Vec<u8>,
    msg: Vec<u8>,
    cqes: Vec<Cqe>,
}

impl Setup {
    fn new(n: usize, server_ack_delay: Option<Duration>) -> Setup {
        Setup::with_queues(n, server_ack_delay, 1)
    }

    /// `new` with `queues` engines a side on a `LoopbackWire::multi` wire:
    /// the measured server engine is engine 0 of a group (its client engine
    /// 0 picks ports that hash to queue 0), so its per-segment cost includes
    /// what being one engine of several adds (the wire's dispatch hash on
    /// transmit, a receive from several queues, the neighbour-share check).
    fn with_queues(n: usize, server_ack_delay: Option<Duration>, queues: u16) -> Setup {
        let wire = WireConfig {
            frames_per_direction: 16384,
            ..WireConfig::default()
        };
        // The server acknowledges at once (its ACK is part of the timed step),
        // so the client's small send buffers never fill.
        let engine = |ip, peer, mac, ack_delay| EngineConfig {
            ip,
            static_neighbors: vec![(peer, mac)],
            rx_buffer: 1024,
            tx_buffer: 1024,
            prealloc_connections: n,
            max_connections: n + 1024,
            ack_delay,
            // RINGLINE_BENCH_STAT=1: both engines publish their stat page
            // (what every `ringline` command does), to measure its cost.
            stat: std::env::var_os("RINGLINE_BENCH_STAT").is_some(),
            ..EngineConfig::default()
        };
        let ring_cfg = RingConfig {
            sq_entries: 4096,
            cq_entries: Some(16384),
            ..RingConfig::default()
        };
        // Timed on the real clock, straight on the wire (no fault injector).
        let opts = PairOpts {
            server: engine(SERVER, CLIENT, wire.mac_b, server_ack_delay),
            client: engine(
                CLIENT,
                SERVER,
                wire.mac_a,
                EngineConfig::default().ack_delay,
            ),
            server_ring: ring_cfg.clone(),
            client_ring: ring_cfg,
            wire,
            ..PairOpts::default()
        };
        let (mut s, mut c, siblings) = if queues == 1 {
            let (s, c) = open_engines::<LoopbackPort>(opts, Clock::monotonic()).expect("engines");
            (s, c, Vec::new())
        } else {
            let (a, b) = LoopbackWire::multi(&opts.wire, queues, queues);
            let open_side = |ports: Vec<LoopbackPort>, cfg: &EngineConfig, ring: &RingConfig| {
                ports
                    .into_iter()
                    .zip(engine_group(queues))
                    .map(|(p, m)| {
                        open_in_group(p, ring, cfg.clone(), Clock::monotonic(), m).expect("engine")
                    })
                    .collect::<Vec<Rt>>()
            };
            let mut servers = open_side(a, &opts.server, &opts.server_ring);
            let mut clients = open_side(b, &opts.client, &opts.client_ring);
            let (s, c) = (servers.remove(0), clients.remove(0));
            servers.append(&mut clients);
            (s, c, servers)
        };
        let mut ring = s.register_buf_ring(BUFS, 0).expect("buffer ring");
        let mut arena = vec![0u8; (BUFS * BUF_LEN) as usize];
        let base = arena.as_mut_ptr() as u64;
        for bid in 0..BUFS {
            // SAFETY: `arena` moves into the Setup (its heap block stays put),
            // whose runtimes drop before it (field order); a buffer is read
            // (by a SEND) only after a CQE handed it back.
            unsafe { ring.add_and_advance(base + (bid * BUF_LEN) as u64, BUF_LEN, bid as u16) };
        }
        let ports = n.div_ceil(20_000).max(1);
        let addrs: Vec<libc::sockaddr_in> = (0..ports)
            .map(|k| ringline_ring::app::sockaddr_in(SERVER.octets(), 7 + k as u16))
            .collect();
        let mut cqes: Vec<Cqe> = Vec::with_capacity(32768);
        for sa in &addrs {
            let socket = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).build();
            // SAFETY: a SOCKET names no memory.
            let lfd = unsafe { sync(&mut s, socket.into_sqe(), &mut cqes) };
            let bind = opcode::Bind::new(lfd, (sa as *const libc::sockaddr_in).cast(), 16);
            // SAFETY: `addrs` outlives the call, which waits for the BIND's CQE.
            assert_eq!(unsafe { sync(&mut s, bind.build(), &mut cqes) }, 0);
            let listen = opcode::Listen::new(lfd, 65535).build();
            // SAFETY: a LISTEN names no memory.
            assert_eq!(unsafe { sync(&mut s, listen.into_sqe(), &mut cqes) }, 0);
            push_safe(
                &mut s,
                opcode::AcceptMulti::new(lfd)
                    .user_data(1 << 32 | lfd as u64)
                    .build(),
            );
        }
        let _ = s.submit();
        // Open the connections in batches.
        let mut fds = Vec::with_capacity(n);
        let (mut issued, mut accepted) = (0usize, 0usize);
        let t0 = Instant::now();
        while (fds.len() < n || accepted < n) && t0.elapsed() < Duration::from_secs(300) {
            if issued < n && issued < fds.len() + 2048 {
                let k = (n - issued).min(1024);
                for i in issued..issued + k {
                    push_safe(
                        &mut c,
                        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                            .user_data(2 << 32 | i as u64)
                            .build(),
                    );
                }
                issued += k;
            }
            let _ = c.submit();
            cqes.clear();
            cqes.extend(c.completions());
            for q in &cqes {
                let i = (q.user_data & 0xffff_ffff) as usize;
                match q.user_data >> 32 {
                    2 => {
                        assert!(q.res >= 0, "SOCKET: {}", q.res);
                        let sa = &addrs[i % ports];
                        let connect = opcode::Connect::new(
                            q.res,
                            (sa as *const libc::sockaddr_in).cast(),
                            16,
                        )
                        .user_data(3 << 32 | q.res as u64);
                        // SAFETY: `addrs` lives to the end of `new`, which returns
                        // only once every CONNECT completed.
                        unsafe { push(&mut c, connect.build()) };
                    }
                    3 => {
                        assert_eq!(q.res, 0, "CONNECT");
                        fds.push(i as i32);
                    }
                    _ => {}
                }
            }
            let _ = s.submit();
            cqes.clear();
            cqes.extend(s.completions());
            for q in &cqes {
                if q.user_data >> 32 == 1 {
                    if q.res >= 0 {
                        accepted += 1;
                        push_safe(
                            &mut s,
                            opcode::RecvMulti::new(q.res, 0)
                                .user_data(4 << 32 | q.res as u64)
                                .build(),
                        );
                    }
                    if !more(q.flags) {
                        let lfd = (q.user_data & 0xffff_ffff) as i32;
                        push_safe(
                            &mut s,
                            opcode::AcceptMulti::new(lfd)
                                .user_data(1 << 32 | lfd as u64)
                                .build(),
                        );
                    }
                }
            }
        }
        assert_eq!((fds.len(), accepted), (n, n), "connections up");
        let mut st = Setup {
            s,
            c,
            _siblings: siblings,
            fds,
            next: 0,
            ring,
            arena,
            msg: vec![0x5a; MSG],
            cqes,
        };
        st.settle();
        st
    }

    /// Untimed: lets both engines exchange whatever is pending and recycles
    /// the server's buffers.
    fn settle(&mut self) {
        for _ in 0..4 {
            let _ = self.c.submit();
            self.cqes.clear();
            self.cqes.extend(self.c.completions());
            let _ = self.s.submit();
            self.drain_server();
        }
    }

    fn drain_server(&mut self) {
        self.cqes.clear();
        self.cqes.extend(self.s.completions());
        let base = self.arena.as_mut_ptr() as u64;
        for q in &self.cqes {
            if let Some(bid) = buffer_id(q.flags) {
                // SAFETY: the CQE handed buffer `bid` back and the data is not
                // read; `arena` outlives the runtimes (field order).
                unsafe {
                    self.ring
                        .add_and_advance(base + (bid as u32 * BUF_LEN) as u64, BUF_LEN, bid)
                };
            }
            if q.user_data >> 32 == 4 && !more(q.flags) && q.res >= 0 {
                let fd = (q.user_data & 0xffff_ffff) as i32;
                push_safe(
                    &mut self.s,
                    opcode::RecvMulti::new(fd, 0).user_data(q.user_data).build(),
                );
            }
        }
    }

    /// One echo round trip on the first connection: the client sends and
    /// waits for the whole echo, the server echoes out of the provided buffer
    /// and recycles it once the SEND completes. Both engines step in turn.
    #[inline(never)]
    fn echo_round_trip(&mut self, rx: &mut [u8; MSG]) {
        let fd = self.fds[0];
        let recv = opcode::Recv::new(fd, rx.as_mut_ptr(), MSG as u32)
            .flags(libc::MSG_WAITALL)
            .user_data(6);
        // SAFETY: this function returns only after the RECV's CQE, and `rx` is
        // borrowed for all of it.
        unsafe { push(&mut self.c, recv.build()) };
        let send = opcode::Send::new(fd, self.msg.as_ptr(), MSG as u32).user_data(5);
        // SAFETY: `msg` is never written and outlives the runtimes (field order).
        unsafe { push(&mut self.c, send.build()) };
        let base = self.arena.as_mut_ptr() as u64;
        loop {
            let _ = self.c.submit();
            self.cqes.clear();
            self.cqes.extend(self.c.completions());
            if let Some(q) = self.cqes.iter().find(|q| q.user_data == 6) {
                assert_eq!(q.res, MSG as i32, "echo");
                return;
            }
            let _ = self.s.submit();
            self.cqes.clear();
            self.cqes.extend(self.s.completions());
            for q in &self.cqes {
                match q.user_data >> 32 {
                    4 => {
                        let sfd = (q.user_data & 0xffff_ffff) as i32;
                        if let (Some(bid), true) = (buffer_id(q.flags), q.res > 0) {
                            let addr = base + (bid as u32 * BUF_LEN) as u64;
                            let send = opcode::Send::new(sfd, addr as *const u8, q.res as u32)
                                .user_data(7 << 32 | bid as u64);
                            // SAFETY: the CQE handed buffer `bid` back; it returns
                            // to the ring only after this SEND's CQE (tag 7), and
                            // `arena` outlives the runtimes (field order).
                            unsafe { push(&mut self.s, send.build()) };
                        }
                        if !more(q.flags) {
                            push_safe(
                                &mut self.s,
                                opcode::RecvMulti::new(sfd, 0)
                                    .user_data(q.user_data)
                                    .build(),
                            );
                        }
                    }
                    7 => {
                        let bid = (q.user_data & 0xffff) as u16;
                        // SAFETY: the SEND of buffer `bid` completed; `arena`
                        // outlives the runtimes (field order).
                        unsafe {
                            self.ring.add_and_advance(
                                base + (bid as u32 * BUF_LEN) as u64,
                                BUF_LEN,
                                bid,
                            )
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// One iteration: BATCH segments to the server, one timed server step.
    /// Not inlined, so callgrind can collect exactly this.
    #[inline(never)]
    fn round(&mut self) -> Duration {
        for _ in 0..BATCH {
            let fd = self.fds[self.next];
            self.next = (self.next + 1) % self.fds.len();
            let send = opcode::Send::new(fd, self.msg.as_ptr(), MSG as u32).user_data(5);
            // SAFETY: `msg` is never written and outlives the runtimes (field
            // order).
            unsafe { push(&mut self.c, send.build()) };
        }
        let _ = self.c.submit();
        let t = Instant::now();
        let _ = self.s.submit();
        let dt = t.elapsed();
        self.drain_server();
        self.cqes.clear();
        self.cqes.extend(self.c.completions());
        dt
    }
}

fn ingress(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_ingress_per_packet");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in [1000usize, 10_000, 100_000] {
        let mut st = Setup::new(n, None);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += st.round();
                }
                black_box(total)
            })
        });
        // The runtimes go before the buffer arena they point into.
        let Setup { s, c, arena, .. } = st;
        drop(s);
        drop(c);
        drop(arena);
    }
    g.finish();
}

fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_echo_round_trip");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let mut st = Setup::new(1, EngineConfig::default().ack_delay);
    let mut rx = [0u8; MSG];
    // Once before timing, so the check below holds even when a filter
    // leaves this benchmark out.
    st.echo_round_trip(&mut rx);
    g.bench_function(BenchmarkId::from_parameter(1), |b| {
        b.iter(|| st.echo_round_trip(&mut rx))
    });
    assert_eq!(rx[..], st.msg[..], "the echo carries the request's bytes");
    let Setup { s, c, arena, .. } = st;
    drop(s);
    drop(c);
    drop(arena);
    g.finish();
}

/// `engine_ingress_in_group/{1,2}`: the per-segment cost of `ingress` at
/// 1,000 connections for a server engine alone (1) and for engine 0 of a
/// group of 2 on a two-queue wire (2): one engine's cost per request, which
/// must not grow when engines are added (each runs on its own core).
fn ingress_in_group(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_ingress_in_group");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(BATCH as u64));
    for queues in [1u16, 2] {
        let mut st = Setup::with_queues(1000, None, queues);
        g.bench_with_input(BenchmarkId::from_parameter(queues), &queues, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += st.round();
                }
                black_box(total)
            })
        });
        let Setup {
            s,
            c,
            _siblings,
            arena,
            ..
        } = st;
        drop(s);
        drop(c);
        drop(_siblings);
        drop(arena);
    }
    g.finish();
}

criterion_group!(benches, ingress, round_trip, ingress_in_group);
criterion_main!(benches);
