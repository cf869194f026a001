//! `ringline bench <scenario>`: one scenario on several backends in the same
//! run, with the same client logic and the same core pinning (server on core
//! 0, client on core 1), printed as a table, optionally written as JSON
//! (`--json FILE`) and drawn as SVG (`--plot FILE.svg`).
//!
//! Backends:
//! - `ringline`: two engines over the in-memory loopback wire, one per core;
//!   the server is `echo::serve` and the client `loadgen` (as `ringline demo`).
//! - `kernel-uring`: Linux TCP over 127.0.0.1 driven through the kernel's
//!   io_uring with the *same* `echo::serve` and `loadgen` code (ringline's
//!   SQEs are the kernel's), see [`kernel_uring`].
//! - `kernel-epoll`: Linux TCP over 127.0.0.1, non-blocking sockets and
//!   epoll, with a client of the same shape ([`epoll`]).
//!
//! Every number is measured in this process, in this run; the machine's load
//! average is recorded with the results since other work skews them.

pub mod epoll;
pub mod floor;
pub mod harness;
pub mod kernel_uring;
pub mod memory;
pub mod plot;
pub mod sqpoll;

use std::fmt::Write as _;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::echo::{AcceptMode, EchoOpts, RecvMode};
use crate::loadgen::{LoadOpts, Shape, StormOpts, StreamOpts};
use crate::report::Engines;

use epoll::{EpollMode, EpollServerOpts};
use harness::{
    echo_status, kernel_pair, ringline_pair, run_pair, serve_pair, LoadJob, RinglineShape,
    StormJob, StreamJob, KERNEL_IP, RL_SERVER_IP,
};

/// A backend under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Two ringline engines over the loopback wire.
    Ringline,
    /// Linux TCP through the kernel's io_uring.
    KernelUring,
    /// Linux TCP with epoll and non-blocking sockets.
    KernelEpoll,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Ringline => "ringline",
            Backend::KernelUring => "kernel-uring",
            Backend::KernelEpoll => "kernel-epoll",
        }
    }
}

/// Options of `ringline bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// The scenario.
    #[command(subcommand)]
    pub scenario: Scenario,
    /// Backends to run, comma separated.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "ringline,kernel-uring,kernel-epoll"
    )]
    pub backends: Vec<Backend>,
    /// Write the results as JSON to FILE.
    #[arg(long, global = true, value_name = "FILE")]
    pub json: Option<String>,
    /// Draw the results as SVG to FILE.
    #[arg(long, global = true, value_name = "FILE.svg")]
    pub plot: Option<String>,
    /// First TCP port of the kernel backends' servers (on 127.0.0.1).
    #[arg(long, global = true, default_value_t = 27700)]
    pub port: u16,
    /// Run every row this many times and keep the run with the median rate
    /// (the machine may be shared; the note lists every rate).
    #[arg(long, global = true, default_value_t = 1)]
    pub repeat: usize,
    /// Frame buffers per direction of ringline's loopback wire (0: C + 16384).
    /// Like a NIC's descriptor ring, a smaller wire makes the engines feel
    /// backpressure sooner.
    #[arg(long, global = true, default_value_t = 0)]
    pub wire_frames: usize,
    /// Run the server and client threads of every backend under SCHED_FIFO
    /// at this priority (1-99), so nothing else on their cores preempts them
    /// (needs CAP_SYS_NICE). Busy-polling ringline threads suffer most from
    /// sharing a core; the kernel backends get the same treatment.
    #[arg(long, global = true, value_name = "PRIO", value_parser = clap::value_parser!(u8).range(1..=99))]
    pub realtime: Option<u8>,
}

/// Which of two modes to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RecvSel {
    /// Multishot RECV.
    Multishot,
    /// Single-shot RECV re-armed after every CQE.
    Rearm,
    /// Both, one row each.
    Both,
}

/// Which accept mode to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AcceptSel {
    /// Multishot ACCEPT.
    Multishot,
    /// Single-shot ACCEPT re-armed after each connection.
    Single,
    /// Both, one row each.
    Both,
}

/// The scenarios.
#[derive(Subcommand, Clone, Debug)]
pub enum Scenario {
    /// C persistent connections, each sending a request and waiting for its echo.
    Echo {
        /// Connections (C).
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Request size in bytes (at least 16).
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Measured seconds per backend.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Server receive: multishot RECV, or single RECV re-armed (ringline, kernel-uring).
        #[arg(long, value_enum, default_value_t = RecvSel::Multishot)]
        server_recv: RecvSel,
    },
    /// `echo` at several connection counts; ns per request at each.
    Scale {
        /// Connection counts.
        #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1000, 10000, 100000])]
        counts: Vec<usize>,
        /// Request size in bytes.
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Measured seconds per point.
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
    },
    /// Clients each connect, send a request, read the echo and close.
    AcceptStorm {
        /// Clients in all.
        #[arg(long, default_value_t = 10000)]
        clients: usize,
        /// Clients in progress at once.
        #[arg(long, default_value_t = 1000)]
        concurrency: usize,
        /// Request size.
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Server accept: multishot or single-shot re-armed (ringline, kernel-uring).
        #[arg(long, value_enum, default_value_t = AcceptSel::Multishot)]
        server_accept: AcceptSel,
    },
    /// Many sockets, sparse traffic; readiness through poll.
    Poll {
        /// Connections.
        #[arg(long, default_value_t = 10000)]
        connections: usize,
        /// Requests in flight at once (spread round robin over the connections).
        #[arg(long, default_value_t = 100)]
        in_flight: usize,
        /// Send each request as this many linked SENDs (segments): a socket
        /// then becomes readable several times per request, which is what
        /// the coalesced poll saves on (the uepoll seed's busy sockets).
        #[arg(long, default_value_t = 1)]
        segments: usize,
        /// Request size.
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Measured seconds per row.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
    /// One connection sending as fast as it can; Gbit/s.
    Stream {
        /// Measured seconds per backend.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Bytes per send.
        #[arg(long, default_value_t = 65536)]
        chunk: usize,
    },
    /// The floor: one frame ping-ponged over the loopback wire between the two cores.
    Floor {
        /// Round trips.
        #[arg(long, default_value_t = 200_000)]
        round_trips: u64,
    },
    /// The server's engine inline against SQPOLL (its own thread): echo at
    /// each connection count; then the CPU of an idle engine and the first
    /// request's latency after idle (ringline only).
    Sqpoll {
        /// Connection counts of the echo rows.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 1000])]
        counts: Vec<usize>,
        /// Request size in bytes.
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Measured seconds per echo row.
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
        /// CPU of the SQPOLL engine thread (the client's core on two cores).
        #[arg(long, default_value_t = 1)]
        sq_thread_cpu: usize,
        /// `busy_poll_us` of the client's engine in the SQPOLL rows: it shares
        /// its core with the SQPOLL thread, so by default it blocks as soon
        /// as it waits instead of spinning the engine thread off the core.
        #[arg(long, default_value_t = 0)]
        client_busy_poll_us: u64,
        /// `busy_poll_us` of the server's engine in the idle rows (default:
        /// the engine's default; 18446744073709551615 spins forever).
        #[arg(long)]
        server_busy_poll_us: Option<u64>,
        /// Seconds of each idle period.
        #[arg(long, default_value_t = 3.0)]
        idle: f64,
        /// Idle periods (each followed by one timed request) per mode.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Memory per idle established ringline connection.
    Memory {
        /// Idle connections.
        #[arg(long, default_value_t = 10000)]
        connections: usize,
    },
}

/// One result line.
#[derive(Serialize, Clone, Debug)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Backend name.
    pub backend: String,
    /// Mode (recv, accept or poll variant), or empty.
    pub variant: String,
    /// Connections (or clients for accept-storm).
    pub connections: usize,
    /// Operations completed (requests, connections, or bytes for stream).
    pub count: u64,
    /// Measured seconds.
    pub duration_s: f64,
    /// Rate in `unit`.
    pub rate: f64,
    /// "req/s", "conn/s" or "Gbit/s".
    pub unit: String,
    /// Median latency, µs (round trip; connect-to-echo; send completion).
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// CPU time (server + client threads) per operation, µs.
    pub cpu_us_per_op: f64,
    /// Wall ns per operation (1e9 / rate; per 64 KiB for stream).
    pub ns_per_op: f64,
    /// What one operation is ("req", "conn", "chunk").
    pub op: String,
    /// Errors.
    pub errors: u64,
    /// The ringline engines' counters at the end of the row (server and
    /// client), empty for the kernel backends.
    pub engines: Engines,
    /// Why a row has no numbers, or a remark.
    pub note: String,
}

impl Row {
    fn unavailable(
        scenario: &str,
        backend: &str,
        variant: &str,
        connections: usize,
        note: &str,
    ) -> Row {
        Row {
            scenario: scenario.into(),
            backend: backend.into(),
            variant: variant.into(),
            connections,
            count: 0,
            duration_s: 0.0,
            rate: 0.0,
            unit: String::new(),
            p50_us: 0.0,
            p99_us: 0.0,
            p999_us: 0.0,
            cpu_us_per_op: 0.0,
            ns_per_op: 0.0,
            op: String::new(),
            errors: 0,
            engines: Engines::default(),
            note: note.into(),
        }
    }
}

/// Where the run happened.
#[derive(Serialize, Clone, Debug)]
pub struct Machine {
    /// CPUs online.
    pub cpus: usize,
    /// Kernel release.
    pub kernel: String,
    /// /proc/loadavg before the run.
    pub loadavg_before: String,
    /// /proc/loadavg after the run.
    pub loadavg_after: String,
}

/// Everything one `bench` invocation measured.
#[derive(Serialize, Clone, Debug)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The machine.
    pub machine: Machine,
    /// The result rows.
    pub rows: Vec<Row>,
    /// The frame ping-pong floor, if measured.
    pub floor: Option<floor::Floor>,
    /// `echo --connections 1`: each ringline run with the floor measured
    /// right before and right after it.
    pub paired_floors: Vec<PairedFloor>,
    /// Idle connection memory, if measured.
    pub idle_memory: Option<memory::IdleMemory>,
    /// Target checks, as printed.
    pub checks: Vec<String>,
}

/// One ringline C = 1 run and the floor measured next to it.
#[derive(Serialize, Clone, Debug)]
pub struct PairedFloor {
    /// The run's p50 round trip, µs.
    pub p50_us: f64,
    /// Floor p50 measured just before the run, µs.
    pub floor_before_us: f64,
    /// Floor p50 measured just after the run, µs.
    pub floor_after_us: f64,
    /// `p50_us` over the lower of the two floors.
    pub ratio: f64,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn q(h: &Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(p) as f64 / 1000.0
    }
}

/// Each kernel run listens on fresh ports: a previous run's listener may
/// linger for a moment after its ring is gone (io_uring tears requests down
/// asynchronously), and its closed connections sit in TIME-WAIT.
static PORT_SEQ: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

fn fresh_port(base: u16) -> u16 {
    base + 10 * PORT_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The most connections a kernel backend can hold here: the server and the
/// client share this process, so each connection takes two descriptors, and
/// RLIMIT_NOFILE's hard limit cannot be raised without CAP_SYS_RESOURCE.
fn kernel_max_connections(want: usize) -> usize {
    let limit = kernel_uring::raise_nofile(2 * want as u64 + 1024);
    ((limit.saturating_sub(512)) / 2) as usize
}

/// Kernel ports needed so no (client, server port) pair runs out of
/// ephemeral ports (28,232 per pair; 20,000 leaves room for TIME-WAIT).
fn ports_for(connections: usize) -> u16 {
    connections.div_ceil(20_000).max(1) as u16
}

/// One echo-style run (echo, scale, poll).
#[derive(Clone, Debug)]
struct EchoRun {
    scenario: &'static str,
    connections: usize,
    size: usize,
    duration: f64,
    recv: RecvMode,
    epoll: EpollMode,
    in_flight: Option<usize>,
    /// SENDs per request (see `Shape::segments`).
    segments: usize,
    port: u16,
    wire_frames: usize,
    /// ringline: the server's engine in SQPOLL mode on this CPU, and the
    /// client engine's `busy_poll_us` for that row (the client shares the
    /// engine thread's core on a 2-core machine).
    sqpoll: Option<(usize, u64)>,
}

fn variant_name(backend: Backend, run: &EchoRun) -> String {
    let v = variant_base(backend, run);
    if backend == Backend::Ringline && run.sqpoll.is_some() {
        format!("{v} sqpoll")
    } else {
        v
    }
}

fn variant_base(backend: Backend, run: &EchoRun) -> String {
    match backend {
        Backend::KernelEpoll => match run.epoll {
            EpollMode::Level => "level".into(),
            EpollMode::Oneshot => "oneshot".into(),
        },
        _ => match run.recv {
            RecvMode::Multishot => "recv-multishot".into(),
            RecvMode::Rearm => "recv-rearm".into(),
            RecvMode::PollMulti => "poll-multishot".into(),
            RecvMode::PollOneshot => "poll-oneshot".into(),
            RecvMode::PollCoalesced => "poll-coalesced".into(),
        },
    }
}

fn run_echo(backend: Backend, run: &EchoRun) -> Result<Row, String> {
    let mut c = run.connections;
    let mut capped = None;
    if backend != Backend::Ringline {
        let max = kernel_max_connections(c);
        if max < c * 9 / 10 {
            return Ok(Row::unavailable(
                run.scenario,
                backend.name(),
                &variant_name(backend, run),
                c,
                &format!(
                    "not run: needs {} descriptors (server + client in this process), RLIMIT_NOFILE allows {} here",
                    2 * c,
                    2 * max + 512
                ),
            ));
        }
        if max < c {
            capped = Some(max);
            c = max;
        }
    }
    let port = fresh_port(run.port);
    let ports = ports_for(c);
    // Warm-up: until every connection has had a round trip, and at least
    // 0.5 s (the first burst of C requests is not steady state).
    let shape = Shape {
        ports,
        in_flight: run.in_flight,
        warmup: Duration::from_millis(500),
        segments: run.segments,
    };
    let duration = Duration::from_secs_f64(run.duration);
    let load = |server, port| LoadOpts {
        server,
        port,
        connections: c,
        duration,
        size: run.size,
        connect_timeout: Duration::from_secs(120),
        stop: None,
    };
    let echo_opts = |port| EchoOpts {
        port,
        ports,
        buffers: (c.next_power_of_two() as u32).clamp(8192, 32768),
        recv: run.recv,
        ..EchoOpts::default()
    };
    let title = format!("{} {} C={}", run.scenario, backend.name(), c);
    let (srv, res, cpu, engines) = match backend {
        Backend::Ringline => {
            let mut rs = RinglineShape::echo(c);
            if run.wire_frames > 0 {
                rs.frames = run.wire_frames;
            }
            let (mut s, mut cl) = ringline_pair(&rs);
            if let Some((cpu, client_busy_poll_us)) = run.sqpoll {
                s = s.sqpoll(cpu);
                cl.set_busy_poll_us(client_busy_poll_us);
            }
            let (eo, lo, shape) = (echo_opts(7), load(RL_SERVER_IP, 7), shape.clone());
            serve_pair(&title, echo_status, (s, cl), RL_SERVER_IP, eo, move |ctx| {
                LoadJob {
                    opts: lo,
                    shape,
                    ctx,
                }
            })?
        }
        Backend::KernelUring => {
            let (s, cl) = kernel_pair();
            let (eo, lo, shape) = (echo_opts(port), load(KERNEL_IP, port), shape.clone());
            serve_pair(&title, echo_status, (s, cl), KERNEL_IP, eo, move |ctx| {
                LoadJob {
                    opts: lo,
                    shape,
                    ctx,
                }
            })?
        }
        Backend::KernelEpoll => {
            let so = EpollServerOpts {
                port,
                ports,
                mode: run.epoll,
                discard: false,
            };
            let lo = load(KERNEL_IP, port);
            let (srv_out, load_out, cpu_out) = run_pair(
                &title,
                echo_status,
                move |ctx| epoll::serve(KERNEL_IP, &so, &ctx.ready, &ctx.stop),
                move |ctx| Ok(epoll::load(KERNEL_IP, &lo, &shape, &ctx.live)),
            )?;
            (srv_out, load_out, cpu_out, Engines::default())
        }
    };
    let rate = if res.duration_s > 0.0 {
        res.requests as f64 / res.duration_s
    } else {
        0.0
    };
    let mut note = String::new();
    if res.connected < c {
        let _ = write!(note, "only {} of {} connected; ", res.connected, c);
    }
    if let Some(max) = capped {
        let _ = write!(
            note,
            "capped at {max} of {}: RLIMIT_NOFILE; ",
            run.connections
        );
    }
    let _ = write!(note, "connected in {:.1} s", res.connect_s);
    Ok(Row {
        scenario: run.scenario.into(),
        backend: backend.name().into(),
        variant: variant_name(backend, run),
        connections: c,
        count: res.requests,
        duration_s: res.duration_s,
        rate,
        unit: "req/s".into(),
        p50_us: q(&res.hist, 0.5),
        p99_us: q(&res.hist, 0.99),
        p999_us: q(&res.hist, 0.999),
        cpu_us_per_op: (cpu[0] + cpu[1]) as f64 / 1000.0 / res.requests.max(1) as f64
            + sqpoll_thread_cpu_us(&engines) / res.requests.max(1) as f64,
        ns_per_op: if rate > 0.0 { 1e9 / rate } else { 0.0 },
        op: "req".into(),
        errors: res.errors + srv.errors,
        engines,
        note,
    })
}

/// CPU of the server's SQPOLL engine thread over its whole life (setup and
/// warm-up included), µs; 0 without one.
fn sqpoll_thread_cpu_us(engines: &Engines) -> f64 {
    engines
        .0
        .iter()
        .flat_map(|(_, e)| e.stats.0.iter())
        .filter(|(k, _)| *k == "sqpoll_thread_cpu_us")
        .map(|(_, v)| *v as f64)
        .sum()
}

fn run_storm(
    backend: Backend,
    clients: usize,
    concurrency: usize,
    size: usize,
    accept: AcceptMode,
    port: u16,
) -> Result<Row, String> {
    let port = fresh_port(port);
    let ports = ports_for(clients);
    let so = |server, port| StormOpts {
        server,
        port,
        ports,
        clients,
        concurrency,
        size,
        timeout: Duration::from_secs(120),
    };
    let eo = |port| EchoOpts {
        port,
        ports,
        accept,
        ..EchoOpts::default()
    };
    let status = |l: &crate::loadgen::LiveCounters| {
        format!(
            "{} done, {} echoed, {} errors",
            l.connected.load(std::sync::atomic::Ordering::Relaxed),
            l.requests.load(std::sync::atomic::Ordering::Relaxed),
            l.errors.load(std::sync::atomic::Ordering::Relaxed)
        )
    };
    let title = format!("accept-storm {}", backend.name());
    let (srv, res, cpu, engines) = match backend {
        Backend::Ringline => {
            // Client slots stay in TIME-WAIT after closing: room for all of them.
            let mut shape = RinglineShape::echo(clients + concurrency);
            shape.frames = 4 * concurrency + 16384;
            let (s, c) = ringline_pair(&shape);
            let (e, o) = (eo(7), so(RL_SERVER_IP, 7));
            serve_pair(&title, status, (s, c), RL_SERVER_IP, e, move |ctx| {
                StormJob { opts: o, ctx }
            })?
        }
        Backend::KernelUring => {
            let (s, c) = kernel_pair();
            let (e, o) = (eo(port), so(KERNEL_IP, port));
            serve_pair(&title, status, (s, c), KERNEL_IP, e, move |ctx| StormJob {
                opts: o,
                ctx,
            })?
        }
        Backend::KernelEpoll => {
            let e = EpollServerOpts {
                port,
                ports,
                mode: EpollMode::Level,
                discard: false,
            };
            let o = so(KERNEL_IP, port);
            let (srv_out, load_out, cpu_out) = run_pair(
                &title,
                status,
                move |ctx| epoll::serve(KERNEL_IP, &e, &ctx.ready, &ctx.stop),
                move |ctx| Ok(epoll::storm(KERNEL_IP, &o, &ctx.live)),
            )?;
            (srv_out, load_out, cpu_out, Engines::default())
        }
    };
    let rate = if res.duration_s > 0.0 {
        res.completed as f64 / res.duration_s
    } else {
        0.0
    };
    Ok(Row {
        scenario: "accept-storm".into(),
        backend: backend.name().into(),
        variant: match (backend, accept) {
            (Backend::KernelEpoll, _) => "accept4".into(),
            (_, AcceptMode::Multishot) => "accept-multishot".into(),
            (_, AcceptMode::Single) => "accept-single".into(),
        },
        connections: clients,
        count: res.completed,
        duration_s: res.duration_s,
        rate,
        unit: "conn/s".into(),
        p50_us: q(&res.hist, 0.5),
        p99_us: q(&res.hist, 0.99),
        p999_us: q(&res.hist, 0.999),
        cpu_us_per_op: (cpu[0] + cpu[1]) as f64 / 1000.0 / res.completed.max(1) as f64,
        ns_per_op: if rate > 0.0 { 1e9 / rate } else { 0.0 },
        op: "conn".into(),
        errors: res.errors + srv.errors,
        engines,
        note: format!(
            "{concurrency} clients at a time; server accepted {}",
            srv.accepted
        ),
    })
}

fn run_stream(backend: Backend, duration: f64, chunk: usize, port: u16) -> Result<Row, String> {
    let port = fresh_port(port);
    let duration = Duration::from_secs_f64(duration);
    let so = |server, port| StreamOpts {
        server,
        port,
        chunk,
        depth: 2,
        duration,
    };
    let eo = |port| EchoOpts {
        port,
        buffers: 64,
        buffer_size: 65536,
        discard: true,
        ..EchoOpts::default()
    };
    let status = |l: &crate::loadgen::LiveCounters| {
        format!(
            "{:.1} MB sent",
            l.requests.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6
        )
    };
    let title = format!("stream {}", backend.name());
    let (srv, res, cpu, engines) = match backend {
        Backend::Ringline => {
            // Large segments, as Linux's loopback (MTU 65536) carries them.
            let shape = RinglineShape {
                connections: 4,
                socket_buffer: 4 << 20,
                mtu: 65535,
                frames: 1024,
            };
            let (s, c) = ringline_pair(&shape);
            let (e, o) = (eo(7), so(RL_SERVER_IP, 7));
            serve_pair(&title, status, (s, c), RL_SERVER_IP, e, move |ctx| {
                StreamJob { opts: o, ctx }
            })?
        }
        Backend::KernelUring => {
            let (s, c) = kernel_pair();
            let (e, o) = (eo(port), so(KERNEL_IP, port));
            serve_pair(&title, status, (s, c), KERNEL_IP, e, move |ctx| StreamJob {
                opts: o,
                ctx,
            })?
        }
        Backend::KernelEpoll => {
            let e = EpollServerOpts {
                port,
                ports: 1,
                mode: EpollMode::Level,
                discard: true,
            };
            let o = so(KERNEL_IP, port);
            let (srv_out, load_out, cpu_out) = run_pair(
                &title,
                status,
                move |ctx| epoll::serve(KERNEL_IP, &e, &ctx.ready, &ctx.stop),
                move |ctx| Ok(epoll::stream(KERNEL_IP, &o, &ctx.live)),
            )?;
            (srv_out, load_out, cpu_out, Engines::default())
        }
    };
    let gbit = if res.duration_s > 0.0 {
        res.bytes as f64 * 8.0 / res.duration_s / 1e9
    } else {
        0.0
    };
    let chunks = (res.bytes / chunk.max(1) as u64).max(1);
    Ok(Row {
        scenario: "stream".into(),
        backend: backend.name().into(),
        variant: format!("{} KiB sends", chunk / 1024),
        connections: 1,
        count: res.bytes,
        duration_s: res.duration_s,
        rate: gbit,
        unit: "Gbit/s".into(),
        p50_us: q(&res.hist, 0.5),
        p99_us: q(&res.hist, 0.99),
        p999_us: q(&res.hist, 0.999),
        cpu_us_per_op: (cpu[0] + cpu[1]) as f64 / 1000.0 / chunks as f64,
        ns_per_op: res.duration_s * 1e9 / chunks as f64,
        op: "chunk".into(),
        errors: res.errors + srv.errors,
        engines,
        note: format!("server received {:.1} MB", srv.bytes as f64 / 1e6),
    })
}

/// Runs `f` `n` times (at least once) and returns the row with the median
/// rate, its note listing every rate.
/// One row's measurement, run once per round.
type Job<'a> = Box<dyn FnMut() -> Result<Row, String> + 'a>;

/// Runs every job `repeat` times in rounds (job 1, job 2, …, then job 1,
/// job 2, … again), so that a machine whose speed drifts during the sitting
/// (a shared host moving the vCPUs) hits every backend alike, and keeps, for
/// each job, the run with the median rate (the note lists every rate).
fn interleaved(repeat: usize, mut jobs: Vec<Job<'_>>) -> Result<Vec<Row>, String> {
    let mut runs: Vec<Vec<Row>> = jobs.iter().map(|_| Vec::new()).collect();
    for _ in 0..repeat.max(1) {
        for (job, out) in jobs.iter_mut().zip(runs.iter_mut()) {
            out.push(job()?);
        }
    }
    Ok(runs.into_iter().map(pick_median).collect())
}

/// The run with the median rate, its note listing every run's rate.
fn pick_median(mut runs: Vec<Row>) -> Row {
    if runs.len() == 1 {
        return runs.pop().expect("one run");
    }
    let rates: Vec<String> = runs.iter().map(|r| plot::human(r.rate)).collect();
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let k = runs.len() / 2;
    let mut r = runs.swap_remove(k);
    r.note = format!(
        "median of {} interleaved runs: {}; {}",
        rates.len(),
        rates.join(", "),
        r.note
    );
    r
}

fn print_rows(title: &str, rows: &[Row]) {
    println!("{title}");
    println!(
        "{:<13} {:<17} {:>7} {:>12} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "backend",
        "variant",
        "conns",
        "rate",
        "unit",
        "p50 µs",
        "p99 µs",
        "p999 µs",
        "CPU µs/op",
        "errors"
    );
    for r in rows {
        if r.unit.is_empty() {
            println!(
                "{:<13} {:<17} {:>7} {:>12} {}",
                r.backend, r.variant, r.connections, "n/a", r.note
            );
            continue;
        }
        let rate = if r.unit == "Gbit/s" {
            format!("{:.2}", r.rate)
        } else {
            format!("{:.0}", r.rate)
        };
        println!(
            "{:<13} {:<17} {:>7} {:>12} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.2} {:>7}{}",
            r.backend,
            r.variant,
            r.connections,
            rate,
            r.unit,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.cpu_us_per_op,
            r.errors,
            if r.note.is_empty() {
                String::new()
            } else {
                format!("  ({})", r.note)
            }
        );
    }
    for r in rows.iter().filter(|r| !r.engines.0.is_empty()) {
        println!(
            "\n{} {} C={}:",
            r.backend,
            if r.variant.is_empty() {
                &r.scenario
            } else {
                &r.variant
            },
            r.connections
        );
        r.engines.print();
    }
}

fn find<'a>(rows: &'a [Row], backend: &str, variant: &str) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.backend == backend && (variant.is_empty() || r.variant == variant) && r.rate > 0.0
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// Runs `ringline bench`.
pub fn run(a: &BenchArgs) -> Result<(), String> {
    if let Some(p) = a.realtime {
        harness::set_realtime(p)?;
    }
    let machine_before = read_trim("/proc/loadavg");
    let mut rows: Vec<Row> = Vec::new();
    let mut checks: Vec<String> = Vec::new();
    let mut floor_res = None;
    let mut paired_floors = Vec::new();
    let mut mem_res = None;
    let has = |b| a.backends.contains(&b);
    let kernel = has(Backend::KernelUring) || has(Backend::KernelEpoll);
    let scenario_name;
    match &a.scenario {
        Scenario::Echo {
            connections,
            size,
            duration,
            server_recv,
        } => {
            scenario_name = "echo";
            if *connections == 0 || *size < 16 || *duration <= 0.0 {
                return Err("--connections >= 1, --size >= 16, --duration > 0".into());
            }
            if kernel {
                kernel_uring::raise_nofile(2 * *connections as u64 + 4096);
            }
            let f = floor::measure(100_000, 14 + 40 + *size);
            let recvs: Vec<RecvMode> = match server_recv {
                RecvSel::Multishot => vec![RecvMode::Multishot],
                RecvSel::Rearm => vec![RecvMode::Rearm],
                RecvSel::Both => vec![RecvMode::Multishot, RecvMode::Rearm],
            };
            let pairs = std::cell::RefCell::new(Vec::new());
            let mut jobs: Vec<Job> = Vec::new();
            for &b in &a.backends {
                let modes = if b == Backend::KernelEpoll {
                    vec![RecvMode::Multishot]
                } else {
                    recvs.clone()
                };
                for m in modes {
                    let paired = b == Backend::Ringline && *connections == 1;
                    let run = EchoRun {
                        scenario: "echo",
                        connections: *connections,
                        size: *size,
                        duration: *duration,
                        recv: m,
                        epoll: EpollMode::Level,
                        in_flight: None,
                        segments: 1,
                        port: a.port,
                        wire_frames: a.wire_frames,
                        sqpoll: None,
                    };
                    if paired {
                        // The host moves the vCPUs over seconds, and the floor
                        // with them (0.16 to 1.3 µs in one sitting): judge each
                        // run against the floor measured next to it.
                        let pairs = &pairs;
                        let frame = 14 + 40 + *size;
                        jobs.push(Box::new(move || {
                            let before = floor::measure(100_000, frame);
                            let row = run_echo(b, &run)?;
                            let after = floor::measure(100_000, frame);
                            let lower = before.p50_us.min(after.p50_us);
                            pairs.borrow_mut().push(PairedFloor {
                                p50_us: row.p50_us,
                                floor_before_us: before.p50_us,
                                floor_after_us: after.p50_us,
                                ratio: row.p50_us / lower,
                            });
                            Ok(row)
                        }));
                    } else {
                        jobs.push(Box::new(move || run_echo(b, &run)));
                    }
                }
            }
            rows.extend(interleaved(a.repeat, jobs)?);
            // The host may move the vCPUs during the rows: measure the floor
            // again after them and judge against the lower (the stricter) one.
            let f_after = floor::measure(100_000, 14 + 40 + *size);
            print_rows(
                &format!("echo: C={connections}, {size} B requests, {duration} s per row"),
                &rows,
            );
            println!(
                "floor: one {}-byte frame to the other core and back over the loopback wire: p50 {:.2} µs, p99 {:.2} µs before the rows; p50 {:.2} µs, p99 {:.2} µs after",
                f.frame_len, f.p50_us, f.p99_us, f_after.p50_us, f_after.p99_us
            );
            let f = if f_after.p50_us < f.p50_us {
                f_after
            } else {
                f
            };
            if let (Some(r), Some(k)) = (
                find(&rows, "ringline", "recv-multishot"),
                find(&rows, "kernel-uring", "recv-multishot"),
            ) {
                let x = r.rate / k.rate;
                let p = r.p99_us / k.p99_us;
                if *connections == 1000 {
                    checks.push(format!(
                        "echo C=1000: ringline req/s = {x:.2} x kernel-uring (target >= 6: {}); p99 = {p:.2} x kernel-uring's (target <= 0.25: {})",
                        verdict(x >= 6.0),
                        verdict(p <= 0.25)
                    ));
                } else {
                    checks.push(format!(
                        "echo C={connections}: ringline req/s = {x:.2} x kernel-uring; p99 = {p:.2} x kernel-uring's (the targets are set at C=1000)"
                    ));
                }
            }
            paired_floors = pairs.into_inner();
            if *connections == 1 {
                if let Some(r) = find(&rows, "ringline", "") {
                    let x = r.p50_us / f.p50_us;
                    checks.push(format!(
                        "echo C=1: ringline p50 {:.2} µs = {x:.2} x the lower of the floors before and after all rows, {:.2} µs",
                        r.p50_us, f.p50_us,
                    ));
                }
                if !paired_floors.is_empty() {
                    let mut ratios: Vec<f64> = paired_floors.iter().map(|p| p.ratio).collect();
                    ratios.sort_by(f64::total_cmp);
                    let median = ratios[ratios.len() / 2];
                    let runs: Vec<String> = paired_floors
                        .iter()
                        .map(|p| {
                            format!(
                                "{:.2} µs / {:.2} µs = {:.2}",
                                p.p50_us,
                                p.floor_before_us.min(p.floor_after_us),
                                p.ratio
                            )
                        })
                        .collect();
                    checks.push(format!(
                        "echo C=1: ringline p50 = {median:.2} x the frame floor measured next to each run (median of {}: {}) (target <= 2: {})",
                        runs.len(),
                        runs.join("; "),
                        verdict(median <= 2.0)
                    ));
                }
            }
            floor_res = Some(f);
        }
        Scenario::Scale {
            counts,
            size,
            duration,
        } => {
            scenario_name = "scale";
            if counts.is_empty() || counts.contains(&0) {
                return Err("--counts: positive connection counts".into());
            }
            let mut jobs: Vec<Job> = Vec::new();
            for &c in counts {
                for &b in &a.backends {
                    let run = EchoRun {
                        scenario: "scale",
                        connections: c,
                        size: *size,
                        duration: *duration,
                        recv: RecvMode::Multishot,
                        epoll: EpollMode::Level,
                        in_flight: None,
                        segments: 1,
                        port: a.port,
                        wire_frames: a.wire_frames,
                        sqpoll: None,
                    };
                    // A point that cannot run is a row saying so, not the end of the curve.
                    jobs.push(Box::new(move || {
                        Ok(run_echo(b, &run).unwrap_or_else(|e| {
                            Row::unavailable("scale", b.name(), "", c, &format!("failed: {e}"))
                        }))
                    }));
                }
            }
            rows.extend(interleaved(a.repeat, jobs)?);
            print_rows(
                &format!(
                    "scale: echo at C = {counts:?}, {size} B requests, {duration} s per point"
                ),
                &rows,
            );
            println!("ns per request (wall, 1e9 / req/s):");
            for &b in &a.backends {
                let line: Vec<String> = rows
                    .iter()
                    .filter(|r| r.backend == b.name())
                    .map(|r| {
                        if r.rate > 0.0 {
                            format!("C={}: {:.0} ns", r.connections, r.ns_per_op)
                        } else {
                            format!("C={}: n/a", r.connections)
                        }
                    })
                    .collect();
                println!("  {:<13} {}", b.name(), line.join(", "));
                // Rows that ran (a run that completed nothing counts, at 0).
                let pts: Vec<&Row> = rows
                    .iter()
                    .filter(|r| r.backend == b.name() && !r.unit.is_empty())
                    .collect();
                if let (Some(lo), Some(hi)) = (pts.first(), pts.last()) {
                    if lo.connections < hi.connections && lo.rate > 0.0 {
                        let x = hi.rate / lo.rate;
                        checks.push(format!(
                            "scale {}: req/s at C={} = {x:.2} x req/s at C={} (target >= 0.8: {})",
                            b.name(),
                            hi.connections,
                            lo.connections,
                            verdict(x >= 0.8)
                        ));
                    }
                }
            }
            if has(Backend::Ringline) {
                let m = memory::measure(10_000, 4096)?;
                print_memory(&m);
                mem_res = Some(m);
            }
        }
        Scenario::AcceptStorm {
            clients,
            concurrency,
            size,
            server_accept,
        } => {
            scenario_name = "accept-storm";
            if *clients == 0 || *concurrency == 0 {
                return Err("--clients and --concurrency must be positive".into());
            }
            if kernel {
                kernel_uring::raise_nofile(2 * *concurrency as u64 + 4096);
            }
            let modes = match server_accept {
                AcceptSel::Multishot => vec![AcceptMode::Multishot],
                AcceptSel::Single => vec![AcceptMode::Single],
                AcceptSel::Both => vec![AcceptMode::Multishot, AcceptMode::Single],
            };
            let mut jobs: Vec<Job> = Vec::new();
            for &b in &a.backends {
                let ms = if b == Backend::KernelEpoll {
                    vec![AcceptMode::Multishot]
                } else {
                    modes.clone()
                };
                for m in ms {
                    let (clients, concurrency, size, port) =
                        (*clients, *concurrency, *size, a.port + 100);
                    jobs.push(Box::new(move || {
                        run_storm(b, clients, concurrency, size, m, port)
                    }));
                }
            }
            rows.extend(interleaved(a.repeat, jobs)?);
            print_rows(
                &format!("accept-storm: {clients} clients ({concurrency} at a time) each connect, send {size} B, read the echo, close"),
                &rows,
            );
            if let (Some(r), Some(k)) = (
                find(&rows, "ringline", "accept-multishot"),
                find(&rows, "kernel-uring", "accept-multishot"),
            ) {
                let x = r.rate / k.rate;
                checks.push(format!(
                    "accept-storm: ringline conn/s = {x:.2} x kernel-uring (target >= 5: {})",
                    verdict(x >= 5.0)
                ));
            }
            for b in ["ringline", "kernel-uring"] {
                if let (Some(m), Some(s)) = (
                    find(&rows, b, "accept-multishot"),
                    find(&rows, b, "accept-single"),
                ) {
                    checks.push(format!(
                        "accept-storm {b}: multishot / single accept = {:.3}",
                        m.rate / s.rate
                    ));
                }
            }
        }
        Scenario::Poll {
            connections,
            in_flight,
            segments,
            size,
            duration,
        } => {
            scenario_name = "poll";
            if kernel {
                kernel_uring::raise_nofile(2 * *connections as u64 + 4096);
            }
            let mut jobs: Vec<Job> = Vec::new();
            for &b in &a.backends {
                let variants: Vec<(RecvMode, EpollMode)> = match b {
                    Backend::KernelEpoll => vec![
                        (RecvMode::PollMulti, EpollMode::Level),
                        (RecvMode::PollMulti, EpollMode::Oneshot),
                    ],
                    Backend::KernelUring => {
                        vec![
                            (RecvMode::PollMulti, EpollMode::Level),
                            (RecvMode::PollOneshot, EpollMode::Level),
                        ]
                    }
                    Backend::Ringline => vec![
                        (RecvMode::PollMulti, EpollMode::Level),
                        (RecvMode::PollOneshot, EpollMode::Level),
                        (RecvMode::PollCoalesced, EpollMode::Level),
                    ],
                };
                for (m, e) in variants {
                    let run = EchoRun {
                        scenario: "poll",
                        connections: *connections,
                        size: *size,
                        duration: *duration,
                        recv: m,
                        epoll: e,
                        in_flight: Some(*in_flight),
                        segments: *segments,
                        port: a.port + 200,
                        wire_frames: a.wire_frames,
                        sqpoll: None,
                    };
                    jobs.push(Box::new(move || run_echo(b, &run)));
                }
                if b == Backend::KernelUring {
                    let c = *connections;
                    jobs.push(Box::new(move || Ok(Row::unavailable(
                        "poll",
                        "kernel-uring",
                        "poll-coalesced",
                        c,
                        "not available: a ringline extension (RINGLINE_POLL_COALESCED), Linux has no such mode",
                    ))));
                }
            }
            rows.extend(interleaved(a.repeat, jobs)?);
            print_rows(
                &format!("poll: {connections} connections, {in_flight} requests in flight round robin, {size} B in {segments} SEND(s), {duration} s per row"),
                &rows,
            );
            for b in ["ringline", "kernel-uring"] {
                if let (Some(m), Some(o)) = (
                    find(&rows, b, "poll-multishot"),
                    find(&rows, b, "poll-oneshot"),
                ) {
                    checks.push(format!(
                        "poll {b}: multishot / one-shot re-armed = {:.3}",
                        m.rate / o.rate
                    ));
                }
            }
            if let (Some(c), Some(o)) = (
                find(&rows, "ringline", "poll-coalesced"),
                find(&rows, "ringline", "poll-oneshot"),
            ) {
                checks.push(format!(
                    "poll ringline: coalesced persistent / one-shot re-armed = {:.3} (the uepoll seed: +15% in the kernel)",
                    c.rate / o.rate
                ));
            }
            if let (Some(l), Some(o)) = (
                find(&rows, "kernel-epoll", "level"),
                find(&rows, "kernel-epoll", "oneshot"),
            ) {
                checks.push(format!(
                    "poll kernel-epoll: persistent / one-shot re-armed = {:.3}",
                    l.rate / o.rate
                ));
            }
        }
        Scenario::Stream { duration, chunk } => {
            scenario_name = "stream";
            let (duration, chunk, port) = (*duration, *chunk, a.port + 300);
            let jobs: Vec<Job> = a
                .backends
                .iter()
                .map(|&b| -> Job { Box::new(move || run_stream(b, duration, chunk, port)) })
                .collect();
            rows.extend(interleaved(a.repeat, jobs)?);
            print_rows(
                &format!(
                    "stream: one connection, {} KiB sends, {duration} s",
                    chunk / 1024
                ),
                &rows,
            );
            if let Some(r) = find(&rows, "ringline", "") {
                for k in ["kernel-uring", "kernel-epoll"] {
                    if let Some(kr) = find(&rows, k, "") {
                        let x = r.rate / kr.rate;
                        checks.push(format!(
                            "stream: ringline Gbit/s = {x:.2} x {k} (target >= 1: {})",
                            verdict(x >= 1.0)
                        ));
                    }
                }
            }
        }
        Scenario::Floor { round_trips } => {
            scenario_name = "floor";
            let f = floor::measure(*round_trips, 14 + 40 + 128);
            println!(
                "floor: one {}-byte frame to the other core and back over the loopback wire, {} round trips: p50 {:.2} µs, p99 {:.2} µs, mean {:.2} µs",
                f.frame_len, f.round_trips, f.p50_us, f.p99_us, f.mean_us
            );
            floor_res = Some(f);
        }
        Scenario::Sqpoll {
            counts,
            size,
            duration,
            sq_thread_cpu,
            client_busy_poll_us,
            server_busy_poll_us,
            idle,
            rounds,
        } => {
            scenario_name = "sqpoll";
            if counts.contains(&0) || *size < 16 || *duration <= 0.0 || *idle <= 0.0 {
                return Err("--counts >= 1, --size >= 16, --duration > 0, --idle > 0".into());
            }
            let mut jobs: Vec<Job> = Vec::new();
            for &c in counts {
                for sq in [None, Some((*sq_thread_cpu, *client_busy_poll_us))] {
                    let run = EchoRun {
                        scenario: "sqpoll",
                        connections: c,
                        size: *size,
                        duration: *duration,
                        recv: RecvMode::Multishot,
                        epoll: EpollMode::Level,
                        in_flight: None,
                        segments: 1,
                        port: a.port,
                        wire_frames: a.wire_frames,
                        sqpoll: sq,
                    };
                    jobs.push(Box::new(move || run_echo(Backend::Ringline, &run)));
                }
            }
            let (idle, rounds, size, cpu, cbp, sbp) = (
                Duration::from_secs_f64(*idle),
                (*rounds).max(1),
                *size,
                *sq_thread_cpu,
                *client_busy_poll_us,
                *server_busy_poll_us,
            );
            for sq in [None, Some(cpu)] {
                jobs.push(Box::new(move || {
                    sqpoll::idle_row(sq, sbp, cbp, idle, rounds, size)
                }));
            }
            rows.extend(interleaved(a.repeat, jobs)?);
            print_rows(
                &format!("sqpoll: server engine inline vs SQPOLL (engine thread on CPU {cpu}), {size} B; idle rows: rate = % of a core while idle, p50/p99 = first request after idle (µs)"),
                &rows,
            );
            for &c in counts {
                let inline = rows
                    .iter()
                    .find(|r| r.connections == c && r.variant == "recv-multishot");
                let sq = rows
                    .iter()
                    .find(|r| r.connections == c && r.variant == "recv-multishot sqpoll");
                if let (Some(i), Some(s)) = (inline, sq) {
                    checks.push(format!(
                        "sqpoll C={c}: SQPOLL / inline req/s = {:.2}, p50 {:.1} µs vs {:.1} µs",
                        s.rate / i.rate.max(1e-9),
                        s.p50_us,
                        i.p50_us
                    ));
                }
            }
            for r in rows.iter().filter(|r| r.op == "idle") {
                checks.push(format!(
                    "{}: {:.2}% of a core while idle (target < 2%: {}), first request after idle {:.0} µs",
                    r.variant,
                    r.rate,
                    verdict(r.rate < 2.0),
                    r.p50_us
                ));
            }
        }
        Scenario::Memory { connections } => {
            scenario_name = "memory";
            let m = memory::measure(*connections, 4096)?;
            print_memory(&m);
            mem_res = Some(m);
        }
    }
    for c in &checks {
        println!("{c}");
    }
    let report = Report {
        scenario: scenario_name.into(),
        machine: Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            kernel: read_trim("/proc/sys/kernel/osrelease"),
            loadavg_before: machine_before,
            loadavg_after: read_trim("/proc/loadavg"),
        },
        rows,
        floor: floor_res,
        paired_floors,
        idle_memory: mem_res,
        checks,
    };
    println!(
        "load average before / after: {} / {}",
        report.machine.loadavg_before, report.machine.loadavg_after
    );
    if let Some(path) = &a.json {
        let s = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, s).map_err(|e| format!("{path}: {e}"))?;
    }
    if let Some(path) = &a.plot {
        let title = format!("ringline bench {}", report.scenario);
        if report.scenario == "scale" {
            plot::scale(path, &title, &report.rows)?;
        } else {
            plot::bars(path, &title, &report.rows)?;
        }
    }
    Ok(())
}

fn print_memory(m: &memory::IdleMemory) {
    println!(
        "memory per idle established ringline connection ({} connections, heap growth per engine step): server {:.0} B ({:.0} B without the {} B of socket buffers), client {:.0} B ({:.0} B without buffers)",
        m.connections, m.server_bytes, m.server_without_buffers, m.socket_buffers, m.client_bytes, m.client_without_buffers
    );
}
