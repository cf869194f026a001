//! `ringline bench sqpoll`: the server's engine inline against SQPOLL (the
//! engine on its own thread, on the client's core: this machine has two),
//! and what an idle engine costs.
//!
//! * echo rows: `echo` at each connection count with the server's engine
//!   inline (on core 0 with the server) and in SQPOLL mode (the server
//!   application on core 0, its engine thread pinned to `--sq-thread-cpu`);
//! * idle rows: one established connection, then `--rounds` times: nothing
//!   for `--idle` seconds while the CPU time of the whole process (the server
//!   application, its engine, the sleeping client) is measured, then one
//!   request whose round trip is the first request's latency after idle.
//!
//! Opts out of `#![deny(unsafe_code)]` for the idle client's SQEs, which name
//! its buffers and address (each push says why the memory outlives it).
#![allow(unsafe_code)]

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringline_ring::abi::Cqe;
use ringline_ring::app::sockaddr_in;
use ringline_ring::opcode;

use super::harness::{
    bench_thread, ringline_pair, Ctx, RingJob, RinglineShape, ServeJob, CLIENT_CORE, RL_SERVER_IP,
    SERVER_CORE,
};
use super::Row;
use crate::echo::EchoOpts;
use crate::loadgen::LiveCounters;
use crate::report::Engines;
use crate::sys::{clock_ns, push, push_safe, Uring};

/// Longest wait for any one step of the idle client.
const PATIENCE: Duration = Duration::from_secs(30);

/// The idle client: connects, warms up, then idles and times the first
/// request after each idle period.
struct IdleJob {
    ready: Arc<AtomicBool>,
    server: Ipv4Addr,
    size: usize,
    idle: Duration,
    rounds: usize,
}

/// What the idle client measured: per round, the process's CPU share while
/// idle (% of one core) and the first request's round trip (µs).
struct IdleOut {
    cpu_pct: Vec<f64>,
    first_us: Vec<f64>,
}

fn wait_cqe<R: Uring>(rt: &mut R, ud: u64, seen: &mut Vec<Cqe>) -> Result<Cqe, String> {
    let end = Instant::now() + PATIENCE;
    loop {
        if let Some(i) = seen.iter().position(|c| c.user_data == ud) {
            return Ok(seen.remove(i));
        }
        if Instant::now() > end {
            return Err(format!("idle client: no CQE {ud} in {PATIENCE:?}"));
        }
        let _ = rt.submit_and_wait_timeout(1, Duration::from_millis(10));
        rt.reap(seen);
    }
}

/// One request of `msg.len()` bytes and its whole echo.
fn round_trip<R: Uring>(
    rt: &mut R,
    fd: i32,
    msg: &[u8],
    buf: &mut [u8],
    seen: &mut Vec<Cqe>,
) -> Result<(), String> {
    let sqe = opcode::Send::new(fd, msg.as_ptr(), msg.len() as u32)
        .user_data(2)
        .build();
    // SAFETY: `msg` outlives the SEND, whose CQE is awaited below.
    unsafe { push(rt, sqe) };
    let mut got = 0;
    while got < msg.len() {
        let sqe = opcode::Recv::new(fd, buf[got..].as_mut_ptr(), (msg.len() - got) as u32)
            .user_data(3)
            .build();
        // SAFETY: `buf` outlives the RECV, whose CQE is awaited just below.
        unsafe { push(rt, sqe) };
        let c = wait_cqe(rt, 3, seen)?;
        if c.res <= 0 {
            return Err(format!("idle client: recv {}", c.res));
        }
        got += c.res as usize;
    }
    let c = wait_cqe(rt, 2, seen)?;
    if c.res != msg.len() as i32 {
        return Err(format!("idle client: send {}", c.res));
    }
    Ok(())
}

impl RingJob for IdleJob {
    type Out = IdleOut;
    fn run<R: Uring>(self, rt: &mut R) -> Result<IdleOut, String> {
        let end = Instant::now() + PATIENCE;
        // The server's Release store pairs with this Acquire.
        while !self.ready.load(Ordering::Acquire) {
            if Instant::now() > end {
                return Err("the server did not start".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut seen = Vec::new();
        push_safe(
            rt,
            opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                .user_data(1)
                .build(),
        );
        let fd = wait_cqe(rt, 1, &mut seen)?.res;
        if fd < 0 {
            return Err(format!("idle client: socket {fd}"));
        }
        let sa = sockaddr_in(self.server.octets(), 7);
        let sqe = opcode::Connect::new(fd, (&raw const sa).cast(), size_of_val(&sa) as u32)
            .user_data(1)
            .build();
        // SAFETY: `sa` lives until CONNECT's CQE, awaited just below.
        unsafe { push(rt, sqe) };
        let c = wait_cqe(rt, 1, &mut seen)?;
        if c.res != 0 {
            return Err(format!("idle client: connect {}", c.res));
        }
        let msg: Vec<u8> = (0..self.size).map(|i| (i % 251) as u8).collect();
        let mut buf = vec![0u8; self.size];
        for _ in 0..100 {
            round_trip(rt, fd, &msg, &mut buf, &mut seen)?;
        }
        let mut out = IdleOut {
            cpu_pct: Vec::new(),
            first_us: Vec::new(),
        };
        for round in 0..self.rounds {
            // Let the client's engine send its delayed ACK (10 ms) before its
            // thread sleeps: an idle client that is alive acknowledges, so
            // the server has nothing outstanding and is truly idle.
            let _ = rt.submit_and_wait_timeout(1, Duration::from_millis(30));
            rt.reap(&mut seen);
            let (t0, c0) = (Instant::now(), clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID));
            std::thread::sleep(self.idle);
            let (wall, cpu) = (
                t0.elapsed(),
                clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID).saturating_sub(c0),
            );
            out.cpu_pct
                .push(cpu as f64 / wall.as_nanos().max(1) as f64 * 100.0);
            let t = Instant::now();
            round_trip(rt, fd, &msg, &mut buf, &mut seen)
                .map_err(|e| format!("{e} (after idle period {})", round + 1))?;
            out.first_us.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
        Ok(out)
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// One idle row: the server's engine inline, or SQPOLL on `sqpoll`'s CPU.
pub fn idle_row(
    sqpoll: Option<usize>,
    server_busy_poll_us: Option<u64>,
    client_busy_poll_us: u64,
    idle: Duration,
    rounds: usize,
    size: usize,
) -> Result<Row, String> {
    let (mut server, mut client) = ringline_pair(&RinglineShape::echo(1));
    if let Some(us) = server_busy_poll_us {
        server.set_busy_poll_us(us);
    }
    if let Some(cpu) = sqpoll {
        server = server.sqpoll(cpu);
        // The client shares the engine thread's core: it blocks as soon as
        // it waits rather than spin the engine off the core.
        client.set_busy_poll_us(client_busy_poll_us);
    }
    let ctx = Ctx {
        ready: Arc::new(AtomicBool::new(false)),
        stop: Arc::new(AtomicBool::new(false)),
        live: Arc::new(LiveCounters::default()),
    };
    let srv_ctx = ctx.clone();
    let srv = std::thread::Builder::new()
        .name("idle-server".into())
        .spawn(move || {
            bench_thread(SERVER_CORE);
            let ready = srv_ctx.ready.clone();
            let r = server.run(ServeJob {
                ip: RL_SERVER_IP,
                opts: EchoOpts {
                    port: 7,
                    ..EchoOpts::default()
                },
                ctx: srv_ctx,
            });
            // Unblock the client even if the server could not start.
            ready.store(true, Ordering::Release);
            r
        })
        .map_err(|e| e.to_string())?;
    let job = IdleJob {
        ready: ctx.ready.clone(),
        server: RL_SERVER_IP,
        size,
        idle,
        rounds,
    };
    let cli = std::thread::Builder::new()
        .name("idle-client".into())
        .spawn(move || {
            bench_thread(CLIENT_CORE);
            client.run(job)
        })
        .map_err(|e| e.to_string())?;
    let res = cli.join().map_err(|_| "idle client panicked".to_string());
    // Stop the server whatever happened to the client (read by echo::serve).
    ctx.stop.store(true, Ordering::Relaxed);
    let (srv_stats, srv_engine) = srv
        .join()
        .map_err(|_| "idle server panicked".to_string())??;
    let (mut out, _) = match res? {
        Ok(o) => o,
        Err(e) => {
            if let Some(r) = &srv_engine {
                Engines::one("server", r.clone()).print();
            }
            return Err(format!("{e}; server: {srv_stats:?}"));
        }
    };
    let engines = Engines(
        srv_engine
            .map(|e| vec![("server".to_owned(), e)])
            .unwrap_or_default(),
    );
    let cpu = median(&mut out.cpu_pct);
    let max_first = out.first_us.iter().copied().fold(0.0, f64::max);
    let first = median(&mut out.first_us);
    Ok(Row {
        scenario: "sqpoll".into(),
        backend: "ringline".into(),
        variant: if sqpoll.is_some() {
            "idle sqpoll".into()
        } else {
            "idle inline".into()
        },
        connections: 1,
        count: rounds as u64,
        duration_s: idle.as_secs_f64() * rounds as f64,
        rate: cpu,
        unit: "% core".into(),
        p50_us: first,
        p99_us: max_first,
        p999_us: max_first,
        cpu_us_per_op: 0.0,
        ns_per_op: 0.0,
        op: "idle".into(),
        errors: srv_stats.errors,
        engines,
        note: format!(
            "rate: median CPU of the whole process over {} idle periods of {:.1} s, % of one core; p50/p99: median/max first-request round trip after idle, µs",
            rounds,
            idle.as_secs_f64()
        ),
    })
}
