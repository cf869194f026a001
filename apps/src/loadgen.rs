//! The load generator: C persistent connections, each sending a request of
//! `size` bytes and waiting for its echo before the next one; round-trip
//! latency into an HDR histogram. Runs on any NIC.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringline::Runtime;
use ringline_dataplane::Nic;
use ringline_ring::abi::Cqe;
use ringline_ring::opcode;

use crate::sys::push;

const T_SOCKET: u64 = 1;
const T_CONNECT: u64 = 2;
const T_SEND: u64 = 3;
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
    /// Server port.
    pub port: u16,
    /// Concurrent connections.
    pub connections: usize,
    /// Measured duration (after all connections are up).
    pub duration: Duration,
    /// Request size in bytes.
    pub size: usize,
    /// Longest wait for the connections to come up.
    pub connect_timeout: Duration,
}

/// Live counters the progress display reads (written by the load thread only).
#[derive(Default)]
pub struct LiveCounters {
    /// Completed round trips.
    pub requests: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// Connections established.
    pub connected: AtomicU64,
    /// 1 once the measured phase started.
    pub measuring: AtomicU64,
}

/// The outcome of a run.
pub struct LoadResult {
    /// Completed round trips in the measured phase.
    pub requests: u64,
    /// Errors (failed connects, error CQEs, short or wrong echoes).
    pub errors: u64,
    /// Measured seconds.
    pub duration_s: f64,
    /// Round-trip latency in ns.
    pub hist: Histogram<u64>,
    /// Connections that came up.
    pub connected: usize,
    /// Time to bring all connections up.
    pub connect_s: f64,
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
    sent: bool,
    got: bool,
}


/// Runs the load; `live` is updated as it goes.
pub fn run<N: Nic>(rt: &mut Runtime<N>, opts: &LoadOpts, live: &LiveCounters) -> LoadResult {
    let n = opts.connections;
    let size = opts.size.max(16);
    let mut tx = vec![0u8; n * size];
    let mut rx = vec![0u8; n * size];
    let sa = ringline_ring::app::sockaddr_in(opts.server.octets(), opts.port);
    let mut conns: Vec<Conn> = (0..n)
        .map(|_| Conn { fd: -1, st: St::New, seq: 0, t0: Instant::now(), sent: false, got: false })
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut errors = 0u64;
    let mut requests = 0u64;
    let mut cqes: Vec<Cqe> = Vec::with_capacity(8192);

    for i in 0..n {
        push(rt, opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).user_data(ud(T_SOCKET, i)).build());
    }
    let start = Instant::now();
    let mut connected = 0usize;
    let mut settled = 0usize;
    let mut measure_start: Option<Instant> = None;
    let mut deadline = None;
    let mut in_flight = 0usize;

    let start_request = |rt: &mut Runtime<N>, c: &mut Conn, i: usize, tx: &mut [u8], rx: &mut [u8]| {
        c.seq += 1;
        let buf = &mut tx[i * size..(i + 1) * size];
        buf[..8].copy_from_slice(&(i as u64).to_le_bytes());
        buf[8..16].copy_from_slice(&c.seq.to_le_bytes());
        for (k, b) in buf[16..].iter_mut().enumerate() {
            *b = (k as u64 + c.seq) as u8;
        }
        let rbuf = rx[i * size..(i + 1) * size].as_mut_ptr();
        push(
            rt,
            opcode::Recv::new(c.fd, rbuf, size as u32).flags(libc::MSG_WAITALL).user_data(ud(T_RECV, i)).build(),
        );
        push(
            rt,
            opcode::Send::new(c.fd, buf.as_ptr(), size as u32)
                .flags(libc::MSG_WAITALL)
                .user_data(ud(T_SEND, i))
                .build(),
        );
        c.t0 = Instant::now();
        c.sent = false;
        c.got = false;
        c.st = St::Busy;
    };

    loop {
        let now = Instant::now();
        if measure_start.is_none()
            && (settled == n || now.duration_since(start) > opts.connect_timeout)
        {
            measure_start = Some(now);
            deadline = Some(now + opts.duration);
            live.measuring.store(1, Ordering::Relaxed);
            // Start every idle connection.
            for i in 0..n {
                if conns[i].st == St::Idle {
                    start_request(rt, &mut conns[i], i, &mut tx, &mut rx);
                    in_flight += 1;
                }
            }
        }
        let past = deadline.is_some_and(|d| now >= d);
        if past && (in_flight == 0 || now > deadline.unwrap() + Duration::from_secs(2)) {
            break;
        }
        match rt.submit_and_wait_timeout(1, Duration::from_millis(10)) {
            Ok(_) => {}
            Err(e) if e.0 == libc::ETIME => {}
            Err(_) => errors += 1,
        }
        cqes.clear();
        cqes.extend(rt.completions());
        for c in &cqes {
            let tag = c.user_data >> 56;
            let i = (c.user_data & 0xffff_ffff) as usize;
            let conn = &mut conns[i];
            match tag {
                T_SOCKET => {
                    if c.res < 0 {
                        errors += 1;
                        conn.st = St::Dead;
                        settled += 1;
                        continue;
                    }
                    conn.fd = c.res;
                    conn.st = St::Connecting;
                    push(
                        rt,
                        opcode::Connect::new(conn.fd, &sa as *const libc::sockaddr_in as *const libc::sockaddr, 16)
                            .user_data(ud(T_CONNECT, i))
                            .build(),
                    );
                }
                T_CONNECT => {
                    settled += 1;
                    if c.res == 0 {
                        connected += 1;
                        live.connected.store(connected as u64, Ordering::Relaxed);
                        conn.st = St::Idle;
                        if measure_start.is_some() && !past {
                            start_request(rt, conn, i, &mut tx, &mut rx);
                            in_flight += 1;
                        }
                    } else {
                        if std::env::var_os("RINGLINE_DEBUG").is_some() {
                            eprintln!("connect {i}: {}", ringline_ring::app::Errno(-c.res));
                        }
                        errors += 1;
                        conn.st = St::Dead;
                    }
                }
                T_SEND => {
                    if c.res != size as i32 {
                        errors += 1;
                    }
                    conn.sent = true;
                }
                T_RECV => {
                    let ok = c.res == size as i32
                        && rx[i * size..(i + 1) * size] == tx[i * size..(i + 1) * size];
                    if !ok {
                        errors += 1;
                        conn.st = St::Dead;
                        in_flight -= 1;
                        continue;
                    }
                    conn.got = true;
                    in_flight -= 1;
                    if measure_start.is_some() {
                        let _ = hist.record(conn.t0.elapsed().as_nanos() as u64);
                        requests += 1;
                    }
                    conn.st = St::Idle;
                    if !past {
                        start_request(rt, conn, i, &mut tx, &mut rx);
                        in_flight += 1;
                    }
                }
                _ => {}
            }
        }
        live.requests.store(requests, Ordering::Relaxed);
        live.errors.store(errors, Ordering::Relaxed);
    }
    let measured = measure_start.map(|s| s.elapsed().min(opts.duration)).unwrap_or_default();
    // Requests still in flight after the grace period count as errors.
    errors += in_flight as u64;
    // Cancel anything left, then close every connection.
    push(rt, opcode::AsyncCancel::new(0).any().user_data(ud(T_CLOSE, 0)).build());
    for c in conns.iter().filter(|c| c.fd >= 0) {
        push(rt, opcode::Close::new(c.fd).user_data(ud(T_CLOSE, 0)).build());
    }
    let end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < end {
        let _ = rt.submit_and_wait_timeout(1, Duration::from_millis(5));
        rt.completions().for_each(drop);
    }
    drop(tx);
    drop(rx);
    LoadResult {
        requests,
        errors,
        duration_s: measured.as_secs_f64(),
        hist,
        connected,
        connect_s: measure_start.map(|m| m.duration_since(start).as_secs_f64()).unwrap_or(0.0),
    }
}
