//! The load generator: C persistent connections, each sending a request of
//! `size` bytes and waiting for its echo before the next one; round-trip
//! latency into an HDR histogram. Runs on any [`Uring`]: ringline on any NIC,
//! or the kernel's io_uring (the benchmark's `kernel-uring` backend).
//!
//! Also the benchmark's other client shapes: [`storm`] (connect, one echo,
//! close, many clients at once) and [`stream`] (one connection sending as fast
//! as it can).
//!
//! Opts out of `#![deny(unsafe_code)]` for the SQEs that name the request
//! and response buffers and the server addresses (each `unsafe` block says
//! why the memory outlives the request): every client frees them only after
//! cancelling what is in flight and reaping the completions.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringline_ring::abi::{Cqe, IOSQE_IO_LINK};
use ringline_ring::opcode;

use crate::sys::{push, push_safe, Uring};

const T_SOCKET: u64 = 1;
const T_CONNECT: u64 = 2;
const T_SEND: u64 = 3;
/// A SEND of a request sent in several pieces, other than the last.
const T_SEND_PIECE: u64 = 6;
const T_RECV: u64 = 4;
const T_CLOSE: u64 = 5;

fn ud(tag: u64, conn: usize) -> u64 {
    (tag << 56) | conn as u64
}

/// Load options.
#[derive(Clone, Debug)]
pub struct LoadOpts {
    /// Server address.
    pub server: Ipv4Addr,
    /// Server port (the first one, see [`Shape::ports`]).
    pub port: u16,
    /// Concurrent connections.
    pub connections: usize,
    /// Measured duration (after all connections are up).
    pub duration: Duration,
    /// Request size in bytes.
    pub size: usize,
    /// Longest wait for the connections to come up; one still connecting
    /// at the end counts as an error (`connect ETIMEDOUT`).
    pub connect_timeout: Duration,
    /// Ends the run early when set (SIGINT, SIGTERM): what was measured so
    /// far is reported, requests and connects cut short are not errors.
    pub stop: Option<Arc<AtomicBool>>,
}

/// How the load spreads over ports and connections (the benchmark's
/// variations; [`run`] uses the default).
#[derive(Clone, Debug)]
pub struct Shape {
    /// Connection `i` goes to `port + i % ports` (several ports let one
    /// client address open more connections than there are ephemeral ports).
    pub ports: u16,
    /// Most requests in flight at once; `None` means one per connection.
    /// Fewer than `connections` gives sparse traffic: each finished request
    /// starts the next on the next idle connection, round robin.
    pub in_flight: Option<usize>,
    /// Unmeasured warm-up after the connections are up: at least this long
    /// and, when non-zero (and one request per connection), until every
    /// connection has completed a round trip, so the measured phase starts
    /// in steady state rather than in the first burst of C requests.
    pub warmup: Duration,
    /// Each request is sent as this many SENDs (linked, in order), so the
    /// server sees as many segments, and as many readiness events, per
    /// request. 1 (the default): one SEND.
    pub segments: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            ports: 1,
            in_flight: None,
            warmup: Duration::ZERO,
            segments: 1,
        }
    }
}

/// Live counters the progress display reads (written by the load thread only).
#[derive(Default)]
pub struct LiveCounters {
    /// Completed round trips (or bytes, for [`stream`]).
    pub requests: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// Connections established.
    pub connected: AtomicU64,
    /// 1 once the measured phase started, 2 once it ended.
    pub measuring: AtomicU64,
    /// Thread CPU clocks to sample at the start and end of the measured
    /// phase (`crate::sys::thread_cpu_clock`; 0 = none). Set by whoever
    /// starts the threads, read by the load thread.
    pub cpu_clocks: [AtomicI32; 2],
    /// CPU ns of each clock at the start of the measured phase.
    pub cpu_start_ns: [AtomicU64; 2],
    /// CPU ns of each clock at the end of the measured phase.
    pub cpu_end_ns: [AtomicU64; 2],
}

impl LiveCounters {
    /// Marks the start (`end == false`) or end of the measured phase and
    /// samples the registered CPU clocks.
    pub fn mark(&self, end: bool) {
        for k in 0..2 {
            let c = self.cpu_clocks[k].load(Ordering::Acquire);
            let ns = if c != 0 { crate::sys::clock_ns(c) } else { 0 };
            if end {
                self.cpu_end_ns[k].store(ns, Ordering::Relaxed);
            } else {
                self.cpu_start_ns[k].store(ns, Ordering::Relaxed);
            }
        }
        self.measuring
            .store(if end { 2 } else { 1 }, Ordering::Release);
    }

    /// CPU ns used by each registered thread during the measured phase.
    pub fn cpu_ns(&self) -> [u64; 2] {
        let d = |k: usize| {
            self.cpu_end_ns[k]
                .load(Ordering::Relaxed)
                .saturating_sub(self.cpu_start_ns[k].load(Ordering::Relaxed))
        };
        [d(0), d(1)]
    }
}

/// The outcome of a run.
pub struct LoadResult {
    /// Completed round trips in the measured phase.
    pub requests: u64,
    /// Errors (failed connects, error CQEs, short or wrong echoes).
    pub errors: u64,
    /// `errors` by cause: `"connect ECONNREFUSED (Connection refused)"`,
    /// `"echo short or wrong"`, ... (they add up to `errors`).
    pub error_causes: BTreeMap<String, u64>,
    /// Measured seconds.
    pub duration_s: f64,
    /// Round-trip latency in ns.
    pub hist: Histogram<u64>,
    /// Connections that came up.
    pub connected: usize,
    /// Time to bring all connections up.
    pub connect_s: f64,
    /// The run was ended early by [`LoadOpts::stop`].
    pub interrupted: bool,
}

impl LoadResult {
    /// The results of several load threads run side by side, as one:
    /// counts, causes and latencies added up; the measured time and the
    /// connect time are the longest of them (the threads ran at once).
    ///
    /// # Panics
    ///
    /// If `parts` is empty.
    pub fn merge(parts: Vec<LoadResult>) -> LoadResult {
        let mut it = parts.into_iter();
        let mut out = it.next().expect("at least one load result");
        for p in it {
            out.requests += p.requests;
            out.errors += p.errors;
            for (cause, n) in p.error_causes {
                *out.error_causes.entry(cause).or_default() += n;
            }
            out.duration_s = out.duration_s.max(p.duration_s);
            // Both were made by `run` with the same bounds.
            let _ = out.hist.add(&p.hist);
            out.connected += p.connected;
            out.connect_s = out.connect_s.max(p.connect_s);
            out.interrupted |= p.interrupted;
        }
        out
    }
}

/// Counts errors by cause; the total is what the result reports.
#[derive(Default)]
pub struct Errors {
    total: u64,
    causes: BTreeMap<String, u64>,
}

impl Errors {
    /// Counts `n` errors of `cause`.
    pub fn add(&mut self, cause: impl Into<String>, n: u64) {
        if n == 0 {
            return;
        }
        self.total += n;
        *self.causes.entry(cause.into()).or_default() += n;
    }

    /// Counts one failed `op` by its CQE result (`-errno`), as
    /// `"op ENAME (description)"`.
    pub fn failed(&mut self, op: &str, res: i32) {
        self.add(format!("{op} {}", errno_text(res.wrapping_neg())), 1);
    }

    /// Errors so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// `ECONNREFUSED (Connection refused)`: an errno's name and description.
pub fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    // Display adds " (os error N)".
    let text = text
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_owned();
    match ringline_ring::app::Errno(errno).name() {
        Some(name) => format!("{name} ({text})"),
        None => format!("errno {errno} ({text})"),
    }
}

/// Fills request `seq` of connection `conn`: its identity in the first 16
/// bytes, then a pattern, so a misdirected or stale echo is detected.
#[inline]
pub fn fill_request(buf: &mut [u8], conn: usize, seq: u64) {
    buf[..8].copy_from_slice(&(conn as u64).to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    for (k, b) in buf[16..].iter_mut().enumerate() {
        *b = (k as u64 + seq) as u8;
    }
}

/// How long to wait after the deadline for requests still in flight: they
/// drain at the rate they were served, so a few of the slowest round trips
/// seen (at least 2 s, at most 30 s).
pub fn grace(hist: &Histogram<u64>) -> Duration {
    let p99 = if hist.is_empty() {
        0
    } else {
        hist.value_at_quantile(0.99)
    };
    Duration::from_nanos(3 * p99).clamp(Duration::from_secs(2), Duration::from_secs(30))
}

/// A latency histogram from 1 ns to 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    New,
    Connecting,
    Busy,
    Idle,
    Dead,
}

struct Conn {
    fd: i32,
    st: St,
    seq: u64,
    t0: Instant,
    /// Completed a round trip (warm-up bookkeeping).
    warmed: bool,
}

/// Runs the load; `live` is updated as it goes.
pub fn run<R: Uring>(rt: &mut R, opts: &LoadOpts, live: &LiveCounters) -> LoadResult {
    run_shaped(rt, opts, &Shape::default(), live)
}

/// Runs the load spread as `shape` says; `live` is updated as it goes.
pub fn run_shaped<R: Uring>(
    rt: &mut R,
    opts: &LoadOpts,
    shape: &Shape,
    live: &LiveCounters,
) -> LoadResult {
    let n = opts.connections;
    let size = opts.size.max(16);
    let ports = shape.ports.max(1) as usize;
    let cap = shape.in_flight.unwrap_or(n).clamp(1, n.max(1));
    // Request pieces: `piece` bytes each, the last `last_piece`.
    let piece = size.div_ceil(shape.segments.clamp(1, size));
    let last_piece = size - (size.div_ceil(piece) - 1) * piece;
    // The ring's memory (an attached ring may name only its region).
    let mut tx = rt.mem(n * size);
    let mut rx = rt.mem(n * size);
    let mut addr_mem = rt.mem(ports * size_of::<libc::sockaddr_in>());
    for (k, a) in addr_mem.sockaddrs().iter_mut().enumerate() {
        *a = ringline_ring::app::sockaddr_in(opts.server.octets(), opts.port + k as u16);
    }
    let addrs: &[libc::sockaddr_in] = addr_mem.sockaddrs();
    let mut conns: Vec<Conn> = (0..n)
        .map(|_| Conn {
            fd: -1,
            st: St::New,
            seq: 0,
            t0: Instant::now(),
            warmed: false,
        })
        .collect();
    let mut hist = new_histogram();
    let mut errors = Errors::default();
    let mut requests = 0u64;
    let mut cqes: Vec<Cqe> = Vec::with_capacity(8192);
    let mut interrupted = false;

    for i in 0..n {
        push_safe(
            rt,
            opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                .user_data(ud(T_SOCKET, i))
                .build(),
        );
    }
    let start = Instant::now();
    let mut connected = 0usize;
    let mut settled = 0usize;
    // Load starts once every connection settled; measuring after the warm-up.
    let mut load_start: Option<Instant> = None;
    let mut measure_start: Option<Instant> = None;
    let mut deadline = None;
    let mut in_flight = 0usize;
    let mut warmed = 0usize;
    // Round-robin cursor for sparse traffic.
    let mut cursor = 0usize;

    let start_request = |rt: &mut R, c: &mut Conn, i: usize, tx: &mut [u8], rx: &mut [u8]| {
        c.seq += 1;
        let buf = &mut tx[i * size..(i + 1) * size];
        fill_request(buf, i, c.seq);
        let rbuf = rx[i * size..(i + 1) * size].as_mut_ptr();
        let recv = opcode::Recv::new(c.fd, rbuf, size as u32)
            .flags(libc::MSG_WAITALL)
            .user_data(ud(T_RECV, i));
        // SAFETY: connection i's slice of `rx` is read only after this RECV's
        // CQE and rearmed only by the next request, which waits for it (St::Busy);
        // `rx` is freed only after the final cancel and drain of `run`.
        unsafe { push(rt, recv.build()) };
        // One SEND, or `segments` linked SENDs of the request's pieces (a
        // short one would break the link and show as a failed echo).
        let mut off = 0;
        while off < size {
            let len = piece.min(size - off);
            let last = off + len == size;
            let sqe = opcode::Send::new(c.fd, buf[off..].as_ptr(), len as u32)
                .flags(libc::MSG_WAITALL)
                .user_data(ud(if last { T_SEND } else { T_SEND_PIECE }, i));
            let sqe = if last {
                sqe.build()
            } else {
                sqe.sqe_flags(IOSQE_IO_LINK).build()
            };
            // SAFETY: connection i's slice of `tx` is rewritten only by its next
            // request, after this one's echo came back in full (so every SEND of
            // it is done); `tx` is freed only after the final cancel and drain.
            unsafe { push(rt, sqe) };
            off += len;
        }
        c.t0 = Instant::now();
        c.st = St::Busy;
    };
    // The next idle connection after `cursor` (sparse mode); most are idle,
    // so this is O(1) expected.
    let next_idle = |conns: &[Conn], cursor: &mut usize| -> Option<usize> {
        for _ in 0..conns.len() {
            *cursor = (*cursor + 1) % conns.len();
            if conns[*cursor].st == St::Idle {
                return Some(*cursor);
            }
        }
        None
    };

    loop {
        if opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            interrupted = true;
            if live.measuring.load(Ordering::Relaxed) == 1 {
                live.mark(true);
            }
            break;
        }
        let now = Instant::now();
        if load_start.is_none()
            && (settled == n || now.duration_since(start) > opts.connect_timeout)
        {
            load_start = Some(now);
            // Start idle connections, up to the in-flight cap.
            for (i, c) in conns.iter_mut().enumerate() {
                if in_flight < cap && c.st == St::Idle {
                    start_request(rt, c, i, &mut tx, &mut rx);
                    in_flight += 1;
                    cursor = i;
                }
            }
        }
        if let (Some(ls), None) = (load_start, measure_start) {
            let waited = now.duration_since(ls);
            let warm = shape.warmup.is_zero()
                || cap < n
                || warmed >= connected
                || waited > 2 * shape.warmup + Duration::from_secs(20);
            if warm && waited >= shape.warmup {
                live.mark(false);
                let now = Instant::now();
                measure_start = Some(now);
                deadline = Some(now + opts.duration);
            }
        }
        let past = deadline.is_some_and(|d| now >= d);
        if past && live.measuring.load(Ordering::Relaxed) == 1 {
            live.mark(true);
        }
        // Requests in flight at the deadline drain at the rate they were
        // served: wait a few of the slowest round trips seen.
        if past && (in_flight == 0 || now > deadline.unwrap() + grace(&hist)) {
            break;
        }
        match rt.submit_and_wait_timeout(1, Duration::from_millis(10)) {
            Ok(_) => {}
            Err(e) if e.0 == libc::ETIME || e.0 == libc::EINTR || e.0 == libc::EBUSY => {}
            Err(e) => errors.failed("submit", e.as_res()),
        }
        cqes.clear();
        rt.reap(&mut cqes);
        for c in &cqes {
            let tag = c.user_data >> 56;
            let i = (c.user_data & 0xffff_ffff) as usize;
            let conn = &mut conns[i];
            match tag {
                T_SOCKET => {
                    if c.res < 0 {
                        errors.failed("socket", c.res);
                        conn.st = St::Dead;
                        settled += 1;
                        continue;
                    }
                    conn.fd = c.res;
                    conn.st = St::Connecting;
                    // SAFETY: `addrs` lives to the end of `run`, after the final
                    // cancel and drain.
                    unsafe { start_connect(rt, conn.fd, &addrs[i % ports], ud(T_CONNECT, i)) };
                }
                T_CONNECT => {
                    settled += 1;
                    if c.res == 0 {
                        connected += 1;
                        live.connected.store(connected as u64, Ordering::Relaxed);
                        conn.st = St::Idle;
                        if load_start.is_some() && !past && in_flight < cap {
                            start_request(rt, conn, i, &mut tx, &mut rx);
                            in_flight += 1;
                        }
                    } else {
                        errors.failed("connect", c.res);
                        conn.st = St::Dead;
                    }
                }
                T_SEND if c.res < 0 => errors.failed("send", c.res),
                T_SEND if c.res != last_piece as i32 => errors.add("send short", 1),
                T_SEND_PIECE if c.res < 0 => errors.failed("send", c.res),
                T_SEND_PIECE if c.res != piece as i32 => errors.add("send short", 1),
                T_RECV => {
                    in_flight -= 1;
                    let bad = if c.res < 0 {
                        Some(format!("recv {}", errno_text(-c.res)))
                    } else if c.res == 0 {
                        Some("recv EOF (the server closed the connection)".to_owned())
                    } else if c.res != size as i32 {
                        Some("echo short".to_owned())
                    } else if rx[i * size..(i + 1) * size] != tx[i * size..(i + 1) * size] {
                        Some("echo differs from the request".to_owned())
                    } else {
                        None
                    };
                    if let Some(cause) = bad {
                        errors.add(cause, 1);
                        conn.st = St::Dead;
                        continue;
                    }
                    if !conn.warmed {
                        conn.warmed = true;
                        warmed += 1;
                    }
                    if measure_start.is_some() && !past {
                        let _ = hist.record(conn.t0.elapsed().as_nanos() as u64);
                        requests += 1;
                    }
                    conn.st = St::Idle;
                    if !past {
                        let next = if cap < n {
                            next_idle(&conns, &mut cursor)
                        } else {
                            Some(i)
                        };
                        if let Some(j) = next {
                            start_request(rt, &mut conns[j], j, &mut tx, &mut rx);
                            in_flight += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        live.requests.store(requests, Ordering::Relaxed);
        live.errors.store(errors.total(), Ordering::Relaxed);
    }
    let measured = measure_start
        .map(|s| s.elapsed().min(opts.duration))
        .unwrap_or_default();
    if !interrupted {
        // Requests still in flight after the grace period count as errors,
        // and so do connections that never came up nor failed.
        errors.add("echo not back by the end", in_flight as u64);
        let waiting = conns.iter().filter(|c| c.st == St::Connecting).count();
        errors.add(
            "connect ETIMEDOUT (no answer by the end of the run)",
            waiting as u64,
        );
        live.errors.store(errors.total(), Ordering::Relaxed);
    }
    // Cancel anything left, then close every connection.
    push_safe(
        rt,
        opcode::AsyncCancel::new(0)
            .any()
            .user_data(ud(T_CLOSE, 0))
            .build(),
    );
    for c in conns.iter().filter(|c| c.fd >= 0) {
        push_safe(
            rt,
            opcode::Close::new(c.fd).user_data(ud(T_CLOSE, 0)).build(),
        );
    }
    let end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < end {
        let _ = rt.submit_and_wait_timeout(1, Duration::from_millis(5));
        cqes.clear();
        rt.reap(&mut cqes);
    }
    drop(tx);
    drop(rx);
    LoadResult {
        requests,
        errors: errors.total,
        error_causes: errors.causes,
        duration_s: measured.as_secs_f64(),
        hist,
        connected,
        connect_s: load_start
            .map(|m| m.duration_since(start).as_secs_f64())
            .unwrap_or(0.0),
        interrupted,
    }
}

/// Options of [`storm`].
#[derive(Clone, Debug)]
pub struct StormOpts {
    /// Server address.
    pub server: Ipv4Addr,
    /// Server port (the first one when `ports > 1`).
    pub port: u16,
    /// Client `i` goes to `port + i % ports`.
    pub ports: u16,
    /// Clients in all; each connects, sends one request, reads the echo and
    /// closes.
    pub clients: usize,
    /// Clients in progress at once.
    pub concurrency: usize,
    /// Request size.
    pub size: usize,
    /// Longest run.
    pub timeout: Duration,
}

/// The outcome of [`storm`].
pub struct StormResult {
    /// Clients whose echo came back intact.
    pub completed: u64,
    /// Errors.
    pub errors: u64,
    /// Seconds from the first SOCKET to the last CLOSE.
    pub duration_s: f64,
    /// Per client: SOCKET submitted to echo received, ns.
    pub hist: Histogram<u64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sc {
    Free,
    Socket,
    Connect,
    Echo,
    Close,
}

/// The accept storm: `clients` clients, `concurrency` at a time, each
/// SOCKET → CONNECT → SEND + RECV(`MSG_WAITALL`) → CLOSE.
pub fn storm<R: Uring>(rt: &mut R, opts: &StormOpts, live: &LiveCounters) -> StormResult {
    let slots = opts.concurrency.clamp(1, opts.clients.max(1));
    let size = opts.size.max(16);
    let ports = opts.ports.max(1) as usize;
    let addrs: Vec<libc::sockaddr_in> = (0..ports)
        .map(|k| ringline_ring::app::sockaddr_in(opts.server.octets(), opts.port + k as u16))
        .collect();
    let mut tx = vec![0u8; slots * size];
    let mut rx = vec![0u8; slots * size];
    // Per slot: state, fd, client number, start time, pending CQEs of the echo.
    let mut st = vec![Sc::Free; slots];
    let mut fds = vec![-1i32; slots];
    let mut client = vec![0usize; slots];
    let mut t0 = vec![Instant::now(); slots];
    let mut pending = vec![0u8; slots];
    let mut ok = vec![true; slots];
    let mut hist = new_histogram();
    let (mut next, mut completed, mut errors, mut closed) = (0usize, 0u64, 0u64, 0usize);
    let mut cqes: Vec<Cqe> = Vec::with_capacity(8192);

    live.mark(false);
    let start = Instant::now();
    let begin = |rt: &mut R,
                 s: usize,
                 next: &mut usize,
                 st: &mut [Sc],
                 client: &mut [usize],
                 t0: &mut [Instant]| {
        client[s] = *next;
        *next += 1;
        st[s] = Sc::Socket;
        t0[s] = Instant::now();
        push_safe(
            rt,
            opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                .user_data(ud(T_SOCKET, s))
                .build(),
        );
    };
    for s in 0..slots.min(opts.clients) {
        begin(rt, s, &mut next, &mut st, &mut client, &mut t0);
    }
    while closed < opts.clients && start.elapsed() < opts.timeout {
        match rt.submit_and_wait_timeout(1, Duration::from_millis(10)) {
            Ok(_) => {}
            Err(e) if e.0 == libc::ETIME || e.0 == libc::EINTR || e.0 == libc::EBUSY => {}
            Err(_) => errors += 1,
        }
        cqes.clear();
        rt.reap(&mut cqes);
        for c in &cqes {
            let tag = c.user_data >> 56;
            let s = (c.user_data & 0xffff_ffff) as usize;
            match tag {
                T_SOCKET => {
                    if c.res < 0 {
                        errors += 1;
                        closed += 1;
                        st[s] = Sc::Free;
                        if next < opts.clients {
                            begin(rt, s, &mut next, &mut st, &mut client, &mut t0);
                        }
                        continue;
                    }
                    fds[s] = c.res;
                    st[s] = Sc::Connect;
                    let sa = &addrs[client[s] % ports];
                    // SAFETY: `addrs` lives to the end of `storm`, after the final
                    // cancel and drain.
                    unsafe { start_connect(rt, c.res, sa, ud(T_CONNECT, s)) };
                }
                T_CONNECT => {
                    if c.res != 0 {
                        errors += 1;
                        st[s] = Sc::Close;
                        push_safe(
                            rt,
                            opcode::Close::new(fds[s]).user_data(ud(T_CLOSE, s)).build(),
                        );
                        continue;
                    }
                    st[s] = Sc::Echo;
                    pending[s] = 2;
                    ok[s] = true;
                    let buf = &mut tx[s * size..(s + 1) * size];
                    fill_request(buf, client[s], 1);
                    let rbuf = rx[s * size..(s + 1) * size].as_mut_ptr();
                    let recv = opcode::Recv::new(fds[s], rbuf, size as u32)
                        .flags(libc::MSG_WAITALL)
                        .user_data(ud(T_RECV, s));
                    let send = opcode::Send::new(fds[s], buf.as_ptr(), size as u32)
                        .flags(libc::MSG_WAITALL)
                        .user_data(ud(T_SEND, s));
                    // SAFETY: slot s's slices of `rx` and `tx` are used again only
                    // after both CQEs (`pending`), by the slot's next client; both
                    // are freed only after the final cancel and drain of `storm`.
                    unsafe {
                        push(rt, recv.build());
                        push(rt, send.build());
                    }
                }
                T_SEND | T_RECV => {
                    let good = c.res == size as i32
                        && (tag == T_SEND
                            || rx[s * size..(s + 1) * size] == tx[s * size..(s + 1) * size]);
                    if !good {
                        ok[s] = false;
                    }
                    if tag == T_RECV && good {
                        let _ = hist.record(t0[s].elapsed().as_nanos() as u64);
                    }
                    pending[s] -= 1;
                    if pending[s] == 0 {
                        if ok[s] {
                            completed += 1;
                        } else {
                            errors += 1;
                        }
                        st[s] = Sc::Close;
                        push_safe(
                            rt,
                            opcode::Close::new(fds[s]).user_data(ud(T_CLOSE, s)).build(),
                        );
                    }
                }
                T_CLOSE => {
                    closed += 1;
                    st[s] = Sc::Free;
                    if next < opts.clients {
                        begin(rt, s, &mut next, &mut st, &mut client, &mut t0);
                    }
                }
                _ => {}
            }
        }
        live.requests.store(completed, Ordering::Relaxed);
        live.connected.store(closed as u64, Ordering::Relaxed);
        live.errors.store(errors, Ordering::Relaxed);
    }
    let duration = start.elapsed();
    live.mark(true);
    // Clients cut off by the timeout are errors; cancel and close them.
    let stuck: Vec<usize> = (0..slots).filter(|&s| st[s] != Sc::Free).collect();
    errors += stuck.len() as u64;
    if !stuck.is_empty() {
        push_safe(
            rt,
            opcode::AsyncCancel::new(0)
                .any()
                .user_data(ud(T_CLOSE, 0))
                .build(),
        );
        for s in stuck {
            if fds[s] >= 0 && st[s] != Sc::Close && st[s] != Sc::Socket {
                push_safe(
                    rt,
                    opcode::Close::new(fds[s]).user_data(ud(T_CLOSE, 0)).build(),
                );
            }
        }
        let end = Instant::now() + Duration::from_millis(200);
        while Instant::now() < end {
            let _ = rt.submit_and_wait_timeout(1, Duration::from_millis(5));
            cqes.clear();
            rt.reap(&mut cqes);
        }
    }
    drop(tx);
    drop(rx);
    StormResult {
        completed,
        errors,
        duration_s: duration.as_secs_f64(),
        hist,
    }
}

/// Options of [`stream`].
#[derive(Clone, Debug)]
pub struct StreamOpts {
    /// Server address.
    pub server: Ipv4Addr,
    /// Server port.
    pub port: u16,
    /// Bytes per SEND.
    pub chunk: usize,
    /// SENDs in flight at once.
    pub depth: usize,
    /// Measured duration.
    pub duration: Duration,
}

/// The outcome of [`stream`].
pub struct StreamResult {
    /// Bytes sent (SEND completions) in the measured phase.
    pub bytes: u64,
    /// Measured seconds.
    pub duration_s: f64,
    /// Errors.
    pub errors: u64,
    /// SEND latency (submit to completion), ns.
    pub hist: Histogram<u64>,
}

/// One connection sending `chunk`-byte SENDs, `depth` in flight, for
/// `duration`; the server discards.
pub fn stream<R: Uring>(rt: &mut R, opts: &StreamOpts, live: &LiveCounters) -> StreamResult {
    let chunk = opts.chunk.max(1);
    let depth = opts.depth.max(1);
    let buf: Vec<u8> = (0..chunk * depth).map(|i| i as u8).collect();
    let sa = Box::new(ringline_ring::app::sockaddr_in(
        opts.server.octets(),
        opts.port,
    ));
    let mut hist = new_histogram();
    let mut cqes: Vec<Cqe> = Vec::with_capacity(256);
    let mut errors = 0u64;
    let wait_one = |rt: &mut R, cqes: &mut Vec<Cqe>, tag: u64| -> i32 {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            let _ = rt.submit_and_wait_timeout(1, Duration::from_millis(10));
            cqes.clear();
            rt.reap(cqes);
            if let Some(c) = cqes.iter().find(|c| c.user_data >> 56 == tag) {
                return c.res;
            }
        }
        -libc::ETIMEDOUT
    };
    push_safe(
        rt,
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(ud(T_SOCKET, 0))
            .build(),
    );
    let fd = wait_one(rt, &mut cqes, T_SOCKET);
    if fd < 0 {
        return StreamResult {
            bytes: 0,
            duration_s: 0.0,
            errors: 1,
            hist,
        };
    }
    // SAFETY: `sa` is boxed and lives to the end of `stream` once wait_one
    // below has seen the CONNECT's CQE; if it has not (or the CONNECT failed),
    // `sa` is leaked instead.
    unsafe { start_connect(rt, fd, &sa, ud(T_CONNECT, 0)) };
    if wait_one(rt, &mut cqes, T_CONNECT) != 0 {
        // A timeout leaves the CONNECT maybe not yet started: keep its address.
        std::mem::forget(sa);
        return StreamResult {
            bytes: 0,
            duration_s: 0.0,
            errors: 1,
            hist,
        };
    }
    live.connected.store(1, Ordering::Relaxed);
    let mut t0 = vec![Instant::now(); depth];
    let send = |rt: &mut R, k: usize, t0: &mut [Instant]| {
        t0[k] = Instant::now();
        let sqe = opcode::Send::new(fd, buf[k * chunk..].as_ptr(), chunk as u32)
            .flags(libc::MSG_WAITALL)
            .user_data(ud(T_SEND, k));
        // SAFETY: `buf` is never written and is freed only after the final
        // cancel and drain of `stream`.
        unsafe { push(rt, sqe.build()) };
    };
    live.mark(false);
    let start = Instant::now();
    let deadline = start + opts.duration;
    for k in 0..depth {
        send(rt, k, &mut t0);
    }
    let (mut bytes, mut outstanding) = (0u64, depth);
    while outstanding > 0 && Instant::now() < deadline + Duration::from_secs(2) {
        match rt.submit_and_wait_timeout(1, Duration::from_millis(10)) {
            Ok(_) => {}
            Err(e) if e.0 == libc::ETIME || e.0 == libc::EINTR || e.0 == libc::EBUSY => {}
            Err(_) => errors += 1,
        }
        cqes.clear();
        rt.reap(&mut cqes);
        let now = Instant::now();
        for c in &cqes {
            if c.user_data >> 56 != T_SEND {
                continue;
            }
            let k = (c.user_data & 0xffff_ffff) as usize;
            outstanding -= 1;
            if c.res != chunk as i32 {
                errors += 1;
                continue;
            }
            if now <= deadline {
                bytes += chunk as u64;
                let _ = hist.record(now.duration_since(t0[k]).as_nanos() as u64);
                send(rt, k, &mut t0);
                outstanding += 1;
            }
        }
        live.requests.store(bytes, Ordering::Relaxed);
        if now > deadline && live.measuring.load(Ordering::Relaxed) == 1 {
            live.mark(true);
        }
    }
    if live.measuring.load(Ordering::Relaxed) == 1 {
        live.mark(true);
    }
    let duration = start.elapsed().min(opts.duration);
    errors += outstanding as u64;
    push_safe(
        rt,
        opcode::AsyncCancel::new(0)
            .any()
            .user_data(ud(T_CLOSE, 0))
            .build(),
    );
    push_safe(rt, opcode::Close::new(fd).user_data(ud(T_CLOSE, 0)).build());
    let end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < end {
        let _ = rt.submit_and_wait_timeout(1, Duration::from_millis(5));
        cqes.clear();
        rt.reap(&mut cqes);
    }
    drop(buf);
    StreamResult {
        bytes,
        duration_s: duration.as_secs_f64(),
        errors,
        hist,
    }
}

/// Tunes a client socket and queues its CONNECT to `sa`.
///
/// # Safety
///
/// `sa` stays valid until the CONNECT's CQE (the engine reads it when the
/// request starts, at the next enter).
unsafe fn start_connect<R: Uring + ?Sized>(
    rt: &mut R,
    fd: i32,
    sa: &libc::sockaddr_in,
    user_data: u64,
) {
    rt.tune_socket(fd, false);
    let ptr = sa as *const libc::sockaddr_in as *const libc::sockaddr;
    let connect = opcode::Connect::new(fd, ptr, 16).user_data(user_data);
    // SAFETY: the caller keeps `sa` valid until the CQE (this function's
    // contract).
    unsafe { push(rt, connect.build()) };
}

#[cfg(test)]
mod tests {
    use std::thread;

    use ringline::{open, Clock, EngineConfig, Runtime};
    use ringline_dataplane::{LoopbackPort, LoopbackWire, MacAddr, WireConfig};
    use ringline_ring::ring::RingConfig;

    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn engine(
        nic: LoopbackPort,
        ip: Ipv4Addr,
        peer: Ipv4Addr,
        mac: MacAddr,
    ) -> Runtime<LoopbackPort> {
        let cfg = EngineConfig {
            ip,
            static_neighbors: vec![(peer, mac)],
            ..EngineConfig::default()
        };
        open(nic, &RingConfig::default(), cfg, Clock::monotonic()).expect("engine")
    }

    fn load(connections: usize, connect_timeout: Duration) -> LoadOpts {
        LoadOpts {
            server: SERVER,
            port: 7,
            connections,
            duration: Duration::from_millis(100),
            size: 64,
            connect_timeout,
            stop: None,
        }
    }

    #[test]
    fn refused_connects_are_errors_by_cause() {
        let wire = WireConfig::default();
        let (a, b) = LoopbackWire::pair(&wire);
        // The server's engine listens on nothing: it answers every SYN with a RST.
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            let mac = wire.mac_a;
            thread::spawn(move || {
                let mut rt = engine(b, SERVER, CLIENT, mac);
                while !stop.load(Ordering::Relaxed) {
                    rt.driver_mut().step();
                }
            })
        };
        let mut rt = engine(a, CLIENT, SERVER, wire.mac_b);
        let res = run(
            &mut rt,
            &load(3, Duration::from_secs(10)),
            &LiveCounters::default(),
        );
        stop.store(true, Ordering::Relaxed);
        server.join().expect("server thread");
        assert_eq!(res.connected, 0);
        assert_eq!(res.errors, 3);
        assert_eq!(
            res.error_causes,
            BTreeMap::from([("connect ECONNREFUSED (Connection refused)".to_owned(), 3)])
        );
    }

    #[test]
    fn unanswered_connects_are_errors_too() {
        let wire = WireConfig::default();
        // Nothing ever reads the server's end: the SYNs go unanswered.
        let (a, _silent) = LoopbackWire::pair(&wire);
        let mut rt = engine(a, CLIENT, SERVER, wire.mac_b);
        let res = run(
            &mut rt,
            &load(2, Duration::from_millis(200)),
            &LiveCounters::default(),
        );
        assert_eq!(res.connected, 0);
        assert_eq!(res.errors, 2, "{:?}", res.error_causes);
        assert_eq!(
            res.error_causes,
            BTreeMap::from([(
                "connect ETIMEDOUT (no answer by the end of the run)".to_owned(),
                2
            )])
        );
        assert!(!res.interrupted);
    }

    #[test]
    fn a_stopped_run_is_not_an_error() {
        let wire = WireConfig::default();
        let (a, _silent) = LoopbackWire::pair(&wire);
        let mut rt = engine(a, CLIENT, SERVER, wire.mac_b);
        let stop = Arc::new(AtomicBool::new(true));
        let opts = LoadOpts {
            stop: Some(stop),
            ..load(2, Duration::from_secs(10))
        };
        let res = run(&mut rt, &opts, &LiveCounters::default());
        assert!(res.interrupted);
        assert_eq!(res.errors, 0, "{:?}", res.error_causes);
    }

    #[test]
    fn errno_text_names_and_describes() {
        assert_eq!(
            errno_text(libc::ECONNREFUSED),
            "ECONNREFUSED (Connection refused)"
        );
        assert!(errno_text(4000).starts_with("errno 4000 ("));
    }
}
