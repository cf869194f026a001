//! `ringline serve` (the daemon that owns the NIC and runs the engines of
//! applications in other processes), and two such applications:
//! `ringline serve-echo` (an echo server) and `ringline serve-load` (the echo
//! load generator), each attached to a running `serve` by instance name.
//!
//! On the loopback wire (no `--dpdk`/`--config`) the daemon has two NIC
//! ports, the wire's two ends: port 0 is 10.0.0.1, port 1 is 10.0.0.2, so an
//! application attached to port 1 is a client of one attached to port 0.
//! With DPDK it has the one port the config names.
//!
//! The echo here ([`serve_echo`]) runs on any [`Uring`] with no buffer ring
//! (an attached ring has none yet): single-shot RECV into a buffer per
//! connection from [`Uring::mem`], SEND of what came, RECV again. The bench
//! row runs the same code in-process ([`bench_row`]).
//!
//! Opts out of `#![deny(unsafe_code)]` for the echo's SQEs that name its
//! buffers (each `unsafe` block says why the memory outlives the request).
#![allow(unsafe_code)]

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use ringline::serve::{socket_path, Daemon, ServeConfig};
use ringline::{attach, AttachConfig, Clock, EngineConfig};
use ringline_dataplane::{LoopbackWire, WireConfig};
use ringline_ring::abi::{more, Cqe};
use ringline_ring::opcode;
use serde::Serialize;

use crate::loadgen::{self, LiveCounters, LoadOpts};
use crate::sys::{push, push_safe, AttachedUring, Uring};
use crate::transport::{self, NicArgs};

/// Address of the loopback wire's side A (daemon port 0).
pub const SIDE_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Address of side B (daemon port 1).
pub const SIDE_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Options of `ringline serve`.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub nic: NicArgs,
    /// Instance name: applications attach to it by this name (the socket is
    /// $RINGLINE_RUN_DIR/NAME.sock, $XDG_RUNTIME_DIR/ringline/NAME.sock,
    /// /run/ringline/NAME.sock for root, else /tmp/ringline-UID/NAME.sock);
    /// a path with a `/` is the socket itself.
    #[arg(long, default_value = "ringline")]
    pub name: String,
    /// Application slots per NIC port [default: serve.max_apps or 8].
    #[arg(long)]
    pub max_apps: Option<u16>,
    /// Most sockets per application [default: serve.max_sockets or 4096].
    #[arg(long)]
    pub max_sockets: Option<usize>,
    /// Largest buffer region per application, MiB [default: serve.max_buffer_mb or 256].
    #[arg(long)]
    pub max_buffer_mb: Option<usize>,
    /// Stop after this many seconds [default: until SIGINT/SIGTERM].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Answer Prometheus scrapes (`GET /metrics`: the engines' counters and
    /// the applications, as `ringline stat PID --prometheus` prints them) on
    /// this address, e.g. 127.0.0.1:9469 [default: serve.prometheus, or none].
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<String>,
    /// Do not let applications wake a napping daemon (it then sees an SQE
    /// up to 1 ms late after an idle spell): for comparison [default:
    /// serve.wakeup or true].
    #[arg(long)]
    pub no_wakeup: bool,
}

/// Options of the attached applications.
#[derive(Args, Clone, Debug)]
pub struct AttachArgs {
    /// The `ringline serve` instance to attach to.
    #[arg(long, default_value = "ringline")]
    pub name: String,
    /// The daemon's NIC port (loopback wire: 0 = 10.0.0.1, 1 = 10.0.0.2).
    #[arg(long, default_value_t = 0)]
    pub nic_port: u32,
    /// Buffer region to ask for, MiB.
    #[arg(long, default_value_t = 64)]
    pub buffer_mb: usize,
    /// The name `ringline stat` shows for this application [default: the
    /// process's name].
    #[arg(long, value_name = "NAME", default_value = "")]
    pub app_name: String,
}

/// Options of `ringline serve-echo`.
#[derive(Args, Clone, Debug)]
pub struct ServeEchoArgs {
    #[command(flatten)]
    pub attach: AttachArgs,
    /// TCP port to listen on.
    #[arg(long, default_value_t = 7)]
    pub listen: u16,
    /// Most connections at once (a 16 KiB buffer each from the region).
    #[arg(long, default_value_t = 1024)]
    pub connections: usize,
    /// Stop after this many seconds [default: until SIGINT/SIGTERM].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
}

/// Options of `ringline serve-load`.
#[derive(Args, Clone, Debug)]
pub struct ServeLoadArgs {
    #[command(flatten)]
    pub attach: AttachArgs,
    /// The echo server: ADDR:PORT.
    #[arg(long, value_name = "ADDR:PORT")]
    pub connect: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 2.0)]
    pub duration: f64,
    /// Request size, bytes (at least 16).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
}

fn serve_config(a: &ServeArgs, file: &transport::ServeSection) -> ServeConfig {
    let base = ServeConfig::default();
    ServeConfig {
        socket: socket_path(&a.name),
        max_apps: a.max_apps.or(file.max_apps).unwrap_or(base.max_apps),
        max_sockets: a
            .max_sockets
            .or(file.max_sockets)
            .unwrap_or(base.max_sockets),
        max_buffer_bytes: a
            .max_buffer_mb
            .or(file.max_buffer_mb)
            .map_or(base.max_buffer_bytes, |m| m << 20),
        max_sq_entries: file.max_sq_entries.unwrap_or(base.max_sq_entries),
        drain: file.drain_ms.map_or(base.drain, Duration::from_millis),
        stat: true,
        wakeup: !a.no_wakeup && file.wakeup.unwrap_or(true),
        ..base
    }
}

/// `ringline serve`
pub fn serve(a: &ServeArgs) -> Result<(), String> {
    let stop = crate::netcmd::stop_flag(a.duration)?;
    if a.nic.dpdk.is_none() && a.nic.config.is_none() {
        let file = transport::ServeSection::default();
        let cfg = serve_config(a, &file);
        let wire = WireConfig {
            frames_per_direction: 8192,
            ..WireConfig::default()
        };
        let (pa, pb) = LoopbackWire::pair(&wire);
        let side = |ip, peer, mac| EngineConfig {
            ip,
            static_neighbors: vec![(peer, mac)],
            max_connections: cfg.max_sockets,
            prealloc_connections: 0,
            rx_buffer: 256 << 10,
            tx_buffer: 256 << 10,
            // Each attached application's engine publishes its page for
            // `ringline stat` (as the DPDK path does from the config).
            stat: true,
            ..EngineConfig::default()
        };
        let ports = vec![
            (pa, side(SIDE_A, SIDE_B, wire.mac_b)),
            (pb, side(SIDE_B, SIDE_A, wire.mac_a)),
        ];
        let mut d = Daemon::new(ports, cfg, Clock::monotonic()).map_err(|e| e.to_string())?;
        let metrics = metrics_thread(
            a.prometheus.as_deref().or(file.prometheus.as_deref()),
            &stop,
        )?;
        println!(
            "ringline serve: {} on the loopback wire (port 0 = {SIDE_A}, port 1 = {SIDE_B})",
            d.socket().display()
        );
        d.run(&stop, &mut |l| eprintln!("ringline serve: {l}"));
        eprintln!(
            "ringline serve: stopped: {} naps, {} cut short by an application's wakeup",
            d.naps, d.woken
        );
        return join_metrics(metrics);
    }
    serve_dpdk(a, &stop)
}

/// `--prometheus ADDR`: a thread answering scrapes with this process's
/// stat pages (engines and applications), read as `ringline stat` reads
/// them; the daemon's thread is not involved. Stops with `stop`.
fn metrics_thread(
    addr: Option<&str>,
    stop: &Arc<AtomicBool>,
) -> Result<Option<std::thread::JoinHandle<Result<(), String>>>, String> {
    let Some(addr) = addr else { return Ok(None) };
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on {addr} for Prometheus: {e}"))?;
    let local = l.local_addr().map_err(|e| e.to_string())?;
    println!("ringline serve: Prometheus metrics on http://{local}/metrics");
    let stop = stop.clone();
    let pid = std::process::id();
    let h = std::thread::Builder::new()
        .name("rl-metrics".into())
        .spawn(move || {
            crate::stat::serve_metrics(&l, &stop, None, &|| crate::stat::prometheus_of(pid))
        })
        .map_err(|e| e.to_string())?;
    Ok(Some(h))
}

fn join_metrics(h: Option<std::thread::JoinHandle<Result<(), String>>>) -> Result<(), String> {
    match h {
        None => Ok(()),
        Some(h) => h.join().map_err(|_| "the metrics thread panicked")?,
    }
}

#[cfg(feature = "dpdk")]
fn serve_dpdk(a: &ServeArgs, stop: &Arc<AtomicBool>) -> Result<(), String> {
    let s = transport::resolve(&a.nic, "serve").map_err(|e| e.to_string())?;
    let file = match &a.nic.config {
        Some(p) => transport::load_config(p).map_err(|e| e.to_string())?.serve,
        None => transport::ServeSection::default(),
    };
    let cfg = serve_config(a, &file);
    let dev = transport::open_device(&s.device).map_err(|e| e.to_string())?;
    let info = transport::describe(&dev);
    let mut ecfg = s.engine.clone();
    ecfg.max_connections = cfg.max_sockets;
    ecfg.prealloc_connections = 0;
    let ip = ecfg.ip;
    let mut d =
        Daemon::new(vec![(dev, ecfg)], cfg, Clock::monotonic()).map_err(|e| e.to_string())?;
    let metrics = metrics_thread(a.prometheus.as_deref().or(file.prometheus.as_deref()), stop)?;
    println!("ringline serve: {} on {info}, {ip}", d.socket().display());
    d.run(stop, &mut |l| eprintln!("ringline serve: {l}"));
    eprintln!(
        "ringline serve: stopped: {} naps, {} cut short by an application's wakeup",
        d.naps, d.woken
    );
    join_metrics(metrics)
}

#[cfg(not(feature = "dpdk"))]
fn serve_dpdk(_a: &ServeArgs, _stop: &Arc<AtomicBool>) -> Result<(), String> {
    Err(transport::TransportError::NoDpdkSupport.to_string())
}

fn attach_to(a: &AttachArgs, sq_entries: u32) -> Result<AttachedUring, String> {
    let cfg = AttachConfig {
        port: a.nic_port,
        sq_entries,
        buffer_bytes: a.buffer_mb << 20,
        name: a.app_name.clone(),
        ..AttachConfig::default()
    };
    let (ring, region) = attach(&a.name, &cfg).map_err(|e| format!("attach {}: {e}", a.name))?;
    Ok(AttachedUring { ring, region })
}

/// The echo server's counters (printed as JSON on exit).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct EchoCounts {
    /// Connections accepted.
    pub accepted: u64,
    /// Bytes echoed.
    pub bytes: u64,
    /// Connections that ended with EOF.
    pub closed: u64,
    /// Connections reset by the peer.
    pub resets: u64,
    /// Other errors in CQEs.
    pub errors: u64,
}

const T_ACCEPT: u64 = 1;
const T_RECV: u64 = 2;
const T_SEND: u64 = 3;
const T_CLOSE: u64 = 4;
/// Receive buffer per connection.
const BUF: usize = 16 << 10;

/// The echo: listen on `port`, accept (multishot), RECV into a buffer per
/// connection, SEND what came (MSG_WAITALL), again, until `stop`.
pub fn serve_echo<R: Uring>(
    rt: &mut R,
    ip: Ipv4Addr,
    port: u16,
    max_conns: usize,
    ready: &AtomicBool,
    stop: &AtomicBool,
) -> Result<EchoCounts, String> {
    let mut c = EchoCounts::default();
    let mut cqes: Vec<Cqe> = Vec::with_capacity(4096);
    let lfd = listen_on(rt, &mut cqes, ip, port, 4096, 0)?;
    let mut bufs = rt.mem(max_conns * BUF);
    let base = bufs.as_mut_ptr();
    let mut fds: Vec<i32> = vec![-1; max_conns];
    let mut free: Vec<usize> = (0..max_conns).rev().collect();
    let ud = |tag: u64, slot: usize| (tag << 56) | slot as u64;
    let arm_accept = |rt: &mut R| {
        push_safe(
            rt,
            opcode::AcceptMulti::new(lfd)
                .user_data(ud(T_ACCEPT, 0))
                .build(),
        )
    };
    let recv = |rt: &mut R, fd: i32, slot: usize| {
        // SAFETY: slot's BUF bytes of `bufs` are this connection's alone and are read
        // (by a SEND) only after this RECV's CQE; `bufs` lives until after the final
        // drain below.
        let sqe = opcode::Recv::new(fd, unsafe { base.add(slot * BUF) }, BUF as u32)
            .user_data(ud(T_RECV, slot));
        // SAFETY: as above.
        unsafe { push(rt, sqe.build()) };
    };
    arm_accept(rt);
    ready.store(true, Ordering::Release);
    let close = |rt: &mut R, fds: &mut [i32], free: &mut Vec<usize>, slot: usize| {
        push_safe(
            rt,
            opcode::Close::new(fds[slot])
                .user_data(ud(T_CLOSE, slot))
                .build(),
        );
        fds[slot] = -1;
        free.push(slot);
    };
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) {
        match rt.submit_and_wait_timeout(1, Duration::from_millis(20)) {
            Ok(_) => {}
            Err(e) if e.0 == libc::ETIME || e.0 == libc::EINTR || e.0 == libc::EBUSY => {}
            Err(e) => {
                result = Err(format!("ring: {e}"));
                break;
            }
        }
        cqes.clear();
        rt.reap(&mut cqes);
        for cqe in &cqes {
            let (tag, slot) = (cqe.user_data >> 56, (cqe.user_data & 0xff_ffff) as usize);
            match tag {
                T_ACCEPT => {
                    if cqe.res >= 0 {
                        c.accepted += 1;
                        match free.pop() {
                            Some(s) => {
                                fds[s] = cqe.res;
                                recv(rt, cqe.res, s);
                            }
                            None => push_safe(rt, opcode::Close::new(cqe.res).build()),
                        }
                    } else {
                        c.errors += 1;
                    }
                    if !more(cqe.flags) {
                        arm_accept(rt);
                    }
                }
                T_RECV if cqe.res > 0 => {
                    // The RECV's CQE came: `res` bytes of the slot's buffer are the data;
                    // the SEND reads them until its CQE, before which no RECV of this slot
                    // is armed.
                    let sqe =
                        opcode::Send::new(fds[slot], base.wrapping_add(slot * BUF), cqe.res as u32)
                            .flags(libc::MSG_WAITALL)
                            .user_data(ud(T_SEND, slot));
                    // SAFETY: the SEND names `res` received bytes of the slot's buffer (ring
                    // memory, which outlives the ring's use), read until its CQE.
                    unsafe { push(rt, sqe.build()) };
                }
                T_RECV | T_SEND => {
                    if cqe.res == 0 {
                        c.closed += 1;
                    } else if cqe.res == -libc::ECONNRESET || cqe.res == -libc::EPIPE {
                        c.resets += 1;
                    } else if cqe.res < 0 {
                        c.errors += 1;
                    } else {
                        // A SEND done: all of it (MSG_WAITALL); receive again.
                        c.bytes += cqe.res as u64;
                        recv(rt, fds[slot], slot);
                        continue;
                    }
                    if fds[slot] >= 0 {
                        close(rt, &mut fds, &mut free, slot);
                    }
                }
                _ => {}
            }
        }
    }
    // Cancel everything and wait for the last CQEs before `bufs` goes.
    push_safe(
        rt,
        opcode::AsyncCancel::new(0)
            .any()
            .all()
            .user_data(ud(T_CLOSE, 0))
            .build(),
    );
    let _ = rt.submit();
    for _ in 0..50 {
        let _ = rt.submit_and_wait_timeout(1, Duration::from_millis(10));
        cqes.clear();
        rt.reap(&mut cqes);
    }
    drop(bufs);
    result.map(|()| c)
}

/// `ringline serve-echo`
pub fn echo(a: &ServeEchoArgs) -> Result<(), String> {
    let stop = crate::netcmd::stop_flag(a.duration)?;
    let mut rt = attach_to(&a.attach, 1024)?;
    let ready = Arc::new(AtomicBool::new(false));
    let port = a.listen;
    let line = format!(
        "serve-echo: attached to {} (slot {}), listening on port {port}",
        a.attach.name,
        rt.ring.driver().slot()
    );
    crate::netcmd::announce(ready.clone(), stop.clone(), line, true)?;
    let c = serve_echo(
        &mut rt,
        Ipv4Addr::UNSPECIFIED,
        port,
        a.connections,
        &ready,
        &stop,
    )?;
    println!("{}", serde_json::to_string(&c).map_err(|e| e.to_string())?);
    Ok(())
}

/// What `serve-load` prints.
#[derive(Clone, Debug, Serialize)]
pub struct LoadLine {
    /// Connections.
    pub connections: usize,
    /// Requests completed (echoes checked byte for byte).
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Errors (failed or mismatched echoes, connect failures).
    pub errors: u64,
}

/// Runs the echo load on `rt` and sums it up.
pub fn load<R: Uring>(
    rt: &mut R,
    server: std::net::SocketAddrV4,
    conns: usize,
    secs: f64,
    size: usize,
) -> LoadLine {
    let opts = LoadOpts {
        server: *server.ip(),
        port: server.port(),
        connections: conns,
        duration: Duration::from_secs_f64(secs),
        size,
        connect_timeout: Duration::from_secs(10),
        stop: None,
    };
    let live = LiveCounters::default();
    let r = loadgen::run(rt, &opts, &live);
    let secs = r.duration_s.max(1e-9);
    LoadLine {
        connections: conns,
        requests: r.requests,
        rps: r.requests as f64 / secs,
        p50_us: r.hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_us: r.hist.value_at_quantile(0.99) as f64 / 1000.0,
        errors: r.errors,
    }
}

/// `ringline serve-load`
pub fn serve_load(a: &ServeLoadArgs) -> Result<(), String> {
    let server = transport::parse_connect(&a.connect).map_err(|e| e.to_string())?;
    let mut rt = attach_to(&a.attach, 4096)?;
    let line = load(&mut rt, server, a.connections, a.duration, a.size);
    println!(
        "{}",
        serde_json::to_string(&line).map_err(|e| e.to_string())?
    );
    if line.errors > 0 || line.requests == 0 {
        return Err(format!(
            "{} errors, {} requests",
            line.errors, line.requests
        ));
    }
    Ok(())
}

/// The bench row: the same echo ([`serve_echo`]) and load, in-process (two
/// SQPOLL engines on a loopback wire, one per side) and attached to a
/// `ringline serve` at `name` (the caller started it; port 0 echo, port 1
/// load), at each of `conns`.
pub fn bench_row(
    name: Option<&str>,
    conns: &[usize],
    secs: f64,
) -> Result<Vec<(String, LoadLine)>, String> {
    let mut out = Vec::new();
    let wire = WireConfig {
        frames_per_direction: 8192,
        ..WireConfig::default()
    };
    for &n in conns {
        // In-process: the same echo on a SQPOLL ring, the load on another.
        let (pa, pb) = LoopbackWire::pair(&wire);
        let cfg = |ip, peer, mac| EngineConfig {
            ip,
            static_neighbors: vec![(peer, mac)],
            max_connections: 4096,
            rx_buffer: 256 << 10,
            tx_buffer: 256 << 10,
            ..EngineConfig::default()
        };
        let rcfg = crate::netcmd::ring_config();
        let sq = ringline::SqpollConfig::default();
        let srv = ringline::open_sqpoll(
            pa,
            &rcfg,
            cfg(SIDE_A, SIDE_B, wire.mac_b),
            &sq,
            Clock::monotonic(),
        )
        .map_err(|e| e.to_string())?;
        let mut cli = ringline::open_sqpoll(
            pb,
            &rcfg,
            cfg(SIDE_B, SIDE_A, wire.mac_a),
            &sq,
            Clock::monotonic(),
        )
        .map_err(|e| e.to_string())?;
        out.push((
            "in-process".to_string(),
            echo_and_load(srv, &mut cli, n, secs)?,
        ));
        if let Some(name) = name {
            let a = AttachArgs {
                name: name.to_string(),
                nic_port: 0,
                buffer_mb: 64,
                app_name: "bench-echo".into(),
            };
            let srv = attach_to(&a, 1024)?;
            let b = AttachArgs {
                nic_port: 1,
                app_name: "bench-load".into(),
                ..a
            };
            let mut cli = attach_to(&b, 4096)?;
            out.push((
                "attached".to_string(),
                echo_and_load(srv, &mut cli, n, secs)?,
            ));
        }
    }
    Ok(out)
}

/// [`serve_echo`] on `srv` (on a thread of its own) on port 7 of 10.0.0.1,
/// [`load`] on `cli` against it with `n` connections for `secs`.
fn echo_and_load<S: Uring + Send + 'static, C: Uring>(
    srv: S,
    cli: &mut C,
    n: usize,
    secs: f64,
) -> Result<LoadLine, String> {
    with_echo(srv, 2048, || {
        load(cli, std::net::SocketAddrV4::new(SIDE_A, 7), n, secs, 64)
    })
}

/// Runs [`serve_echo`] on `srv` (a thread of its own, port 7, `max_conns`)
/// and, once it listens, `f`; then stops the echo.
fn with_echo<S: Uring + Send + 'static, T>(
    mut srv: S,
    max_conns: usize,
    f: impl FnOnce() -> T,
) -> Result<T, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let (st, rd) = (stop.clone(), ready.clone());
    let h = std::thread::spawn(move || {
        serve_echo(&mut srv, Ipv4Addr::UNSPECIFIED, 7, max_conns, &rd, &st).map(|_| ())
    });
    while !ready.load(Ordering::Acquire) && !h.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let out = ready.load(Ordering::Acquire).then(f);
    stop.store(true, Ordering::Relaxed);
    h.join().map_err(|_| "echo panicked")??;
    out.ok_or_else(|| "the echo did not start".into())
}

/// Options of `ringline serve-bench`.
#[derive(Args, Clone, Debug)]
pub struct ServeBenchArgs {
    /// A running `ringline serve` on the loopback wire to attach to (omit:
    /// in-process rows only).
    #[arg(long)]
    pub name: Option<String>,
    /// Connection counts.
    #[arg(long, value_delimiter = ',', default_value = "1,1000")]
    pub connections: Vec<usize>,
    /// Seconds per row.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Idle-gap mode (needs --name): N single round trips of 64 bytes on one
    /// connection, each after --gap-ms of silence (the daemon goes idle and
    /// naps), instead of the load rows; prints their latency.
    #[arg(long, value_name = "N")]
    pub gaps: Option<usize>,
    /// Silence before each round trip of --gaps, ms.
    #[arg(long, default_value_t = 20)]
    pub gap_ms: u64,
}

/// `ringline serve-bench`
pub fn serve_bench(a: &ServeBenchArgs) -> Result<(), String> {
    if let Some(n) = a.gaps {
        let name = a.name.as_deref().ok_or("--gaps needs --name")?;
        let (mut send, mut rtt) = idle_round_trips(name, n, Duration::from_millis(a.gap_ms))?;
        rtt.sort_by(f64::total_cmp);
        send.sort_by(f64::total_cmp);
        let q = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        println!(
            "{}",
            serde_json::json!({
                "round_trips": rtt.len(),
                "gap_ms": a.gap_ms,
                "send_p50_us": q(&send, 0.5),
                "send_p90_us": q(&send, 0.9),
                "p50_us": q(&rtt, 0.5),
                "p90_us": q(&rtt, 0.9),
                "max_us": q(&rtt, 1.0),
            })
        );
        return Ok(());
    }
    let rows = bench_row(a.name.as_deref(), &a.connections, a.duration)?;
    println!(
        "{:<11} {:>6} {:>12} {:>9} {:>9} {:>7}",
        "mode", "conns", "req/s", "p50 us", "p99 us", "errors"
    );
    for (mode, l) in &rows {
        println!(
            "{:<11} {:>6} {:>12.0} {:>9.1} {:>9.1} {:>7}",
            mode, l.connections, l.rps, l.p50_us, l.p99_us, l.errors
        );
    }
    Ok(())
}

/// SEND completion and round-trip times, µs.
type Latencies = (Vec<f64>, Vec<f64>);

/// The echo attached on port 0 (port 7), a client attached on port 1: `n`
/// round trips of 64 bytes on one connection, each after `gap` of silence:
/// how long each SEND took to complete (the first SQE after the silence:
/// the daemon's wake-up) and each round trip, µs.
fn idle_round_trips(name: &str, n: usize, gap: Duration) -> Result<Latencies, String> {
    let a = AttachArgs {
        name: name.to_string(),
        nic_port: 0,
        buffer_mb: 4,
        app_name: "gap-echo".into(),
    };
    let srv = attach_to(&a, 256)?;
    let mut cli = attach_to(
        &AttachArgs {
            nic_port: 1,
            app_name: "gap-client".into(),
            ..a
        },
        256,
    )?;
    let run = || -> Result<Latencies, String> {
        let fd = tcp_socket(&mut cli, 1)?;
        let mut sa = cli.mem(16);
        sa.sockaddrs()[0] = ringline_ring::app::sockaddr_in(SIDE_A.octets(), 7);
        let r = one(
            &mut cli,
            opcode::Connect::new(fd, sa.as_ptr().cast(), 16)
                .user_data(2)
                .build(),
        )?;
        if r != 0 {
            return Err(format!("connect: {r}"));
        }
        let mut out = cli.mem(64);
        out.fill(0x42);
        let mut back = cli.mem(64);
        let mut rtt = Vec::with_capacity(n);
        let mut sent = Vec::with_capacity(n);
        for _ in 0..n {
            std::thread::sleep(gap);
            let t = Instant::now();
            let r = one(
                &mut cli,
                opcode::Send::new(fd, out.as_ptr(), 64).user_data(3).build(),
            )?;
            if r != 64 {
                return Err(format!("send: {r}"));
            }
            sent.push(t.elapsed().as_secs_f64() * 1e6);
            let got = recv_exact(&mut cli, fd, &mut back, 4)?;
            if got < 64 {
                return Err(format!("recv: EOF after {got} bytes"));
            }
            rtt.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Ok((sent, rtt))
    };
    with_echo(srv, 4, run)?
}

/// Options of `ringline serve-fault`.
#[derive(Args, Clone, Debug)]
pub struct ServeFaultArgs {
    /// The `ringline serve` instance (on the loopback wire) to attach to.
    #[arg(long, default_value = "ringline")]
    pub name: String,
    /// A TCP port free on port 0 of the daemon, for its own connection.
    #[arg(long, default_value_t = 9)]
    pub port: u16,
}

/// What `serve-fault` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultReport {
    /// Requests naming memory outside the region that completed -EFAULT.
    pub efault: u32,
    /// Such requests that did anything else (each a failure), by name.
    pub wrong: Vec<String>,
    /// Bytes outside the region that changed (must be 0).
    pub outside_written: usize,
    /// Whether the connection still echoed correctly afterwards.
    pub connection_ok: bool,
    /// Buffer-ring cases that completed -EFAULT (a ring outside the
    /// region at registration, through the ring's API and through
    /// `io_uring_register`; a RECV into an entry naming the heap).
    pub bufring_efault: u32,
    /// Bytes a multishot RECV received into a buffer ring in the region,
    /// each checked.
    pub multishot_bytes: usize,
}

/// RECVs on `fd` until `buf` is full or the connection ends (EOF or an
/// error); the bytes received. `buf` must be the ring's memory.
fn recv_exact(rt: &mut AttachedUring, fd: i32, buf: &mut [u8], ud: u64) -> Result<usize, String> {
    let mut n = 0;
    while n < buf.len() {
        let rest = &mut buf[n..];
        let r = one(
            rt,
            opcode::Recv::new(fd, rest.as_mut_ptr(), rest.len() as u32)
                .user_data(ud)
                .build(),
        )?;
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    Ok(n)
}

/// A TCP socket (SOCKET, waited for).
fn tcp_socket(rt: &mut AttachedUring, ud: u64) -> Result<i32, String> {
    let sqe = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).user_data(ud);
    one(rt, sqe.build().into_sqe())
}

/// Submits one SQE and waits (5 s at most) for its CQE's result.
fn one(rt: &mut AttachedUring, sqe: ringline_ring::abi::Sqe) -> Result<i32, String> {
    // SAFETY: every SQE here names memory that outlives the call (the caller's
    // locals, the heap, the region) and this waits for the request's CQE; the
    // engine refuses (EFAULT) what lies outside the region anyway.
    unsafe { push(rt, sqe) };
    let mut cqes = Vec::new();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        let _ = rt.submit_and_wait_timeout(1, Duration::from_millis(50));
        rt.reap(&mut cqes);
        if let Some(c) = cqes.iter().find(|c| c.user_data == sqe.user_data) {
            return Ok(c.res);
        }
    }
    Err(format!("no CQE for opcode {}", sqe.opcode))
}

/// `ringline serve-fault`: a hostile application. It attaches twice (port 0
/// listens, port 1 connects to it, so it has a connection of its own and
/// bothers no other application), then submits requests naming memory
/// outside the submitting ring's region: its stack, its heap, the other
/// attachment's region, the control page, a range straddling the region's
/// end. Each must complete with -EFAULT and leave that memory as it was.
pub fn serve_fault(a: &ServeFaultArgs) -> Result<(), String> {
    use ringline_ring::abi::{self, Sqe};
    let mk = |nic_port| AttachArgs {
        name: a.name.clone(),
        nic_port,
        buffer_mb: 1,
        app_name: "serve-fault".into(),
    };
    let mut srv = attach_to(&mk(0), 64)?;
    let mut cli = attach_to(&mk(1), 64)?;
    let mut cqes = Vec::new();
    let lfd = listen_on(&mut srv, &mut cqes, Ipv4Addr::UNSPECIFIED, a.port, 16, 1)?;
    let cfd = tcp_socket(&mut cli, 2)?;
    let mut sa = cli.mem(16);
    sa.sockaddrs()[0] = ringline_ring::app::sockaddr_in(SIDE_A.octets(), a.port);
    push_safe(
        &mut srv,
        opcode::AcceptNoAddr::new(lfd).user_data(3).build(),
    );
    let _ = srv.submit();
    let r = one(
        &mut cli,
        opcode::Connect::new(cfd, sa.as_ptr().cast(), 16)
            .user_data(4)
            .build(),
    )?;
    if r != 0 {
        return Err(format!("connect: {r}"));
    }
    let mut sfd = -1;
    for _ in 0..100 {
        let _ = srv.submit_and_wait_timeout(1, Duration::from_millis(50));
        cqes.clear();
        srv.reap(&mut cqes);
        if let Some(c) = cqes.iter().find(|c| c.user_data == 3) {
            sfd = c.res;
            break;
        }
    }
    if sfd < 0 {
        return Err(format!("accept: {sfd}"));
    }
    // The server side sends data the faulty RECVs would receive.
    let mut data = srv.mem(4096);
    data.fill(0xAB);
    let r = one(
        &mut srv,
        opcode::Send::new(sfd, data.as_ptr(), 4096)
            .user_data(5)
            .build(),
    )?;
    if r != 4096 {
        return Err(format!("send: {r}"));
    }

    let mut rep = FaultReport::default();
    let mut stack = [0x5Au8; 256];
    let mut heap = vec![0x5Au8; 256];
    let mut other = srv.mem(256);
    other.fill(0x5A);
    let region_end = cli.region.base() as u64 + cli.region.len() as u64;
    let control = cli.region.base() as u64 - ringline::serve::CONTROL_LEN as u64;
    let ts_heap = Box::new(ringline_ring::app::Timespec {
        tv_sec: 0,
        tv_nsec: 1,
    });
    let heap_sa = Box::new(ringline_ring::app::sockaddr_in(SIDE_A.octets(), a.port));
    // A msghdr in the region whose iovec points at the heap.
    let mut iov_mem = cli.mem(16 + 56);
    let iov = libc::iovec {
        iov_base: heap.as_mut_ptr().cast(),
        iov_len: 64,
    };
    let hdr_addr = iov_mem.as_ptr() as u64 + 16;
    // SAFETY: iov_mem is 72 bytes of the region, 64-aligned: an iovec (16 bytes) then
    // a msghdr (56 bytes), plain data written with unaligned-safe writes.
    unsafe {
        iov_mem
            .as_mut_ptr()
            .cast::<libc::iovec>()
            .write_unaligned(iov);
        let mut m: libc::msghdr = core::mem::zeroed();
        m.msg_iov = iov_mem.as_mut_ptr().cast();
        m.msg_iovlen = 1;
        (hdr_addr as *mut libc::msghdr).write_unaligned(m);
    }
    let raw = |op: u8, fd: i32, addr: u64, len: u32, ud: u64| Sqe {
        opcode: op,
        fd,
        addr,
        len,
        user_data: ud,
        ..Sqe::default()
    };
    // CONNECT reads its address only on a socket not yet connected.
    let fresh = tcp_socket(&mut cli, 6)?;
    let stack_a = stack.as_mut_ptr() as u64;
    let heap_a = heap.as_mut_ptr() as u64;
    let cases: Vec<(&str, Sqe)> = vec![
        (
            "RECV into the stack",
            raw(abi::IORING_OP_RECV, cfd, stack_a, 256, 10),
        ),
        (
            "RECV into the heap",
            raw(abi::IORING_OP_RECV, cfd, heap_a, 256, 11),
        ),
        (
            "RECV into the other attachment's region",
            raw(abi::IORING_OP_RECV, cfd, other.as_ptr() as u64, 256, 12),
        ),
        (
            "RECV into the control page",
            raw(abi::IORING_OP_RECV, cfd, control, 64, 13),
        ),
        (
            "RECV straddling the region's end",
            raw(abi::IORING_OP_RECV, cfd, region_end - 8, 64, 14),
        ),
        (
            "SEND from the heap",
            raw(abi::IORING_OP_SEND, cfd, heap_a, 64, 15),
        ),
        (
            "SEND from the stack",
            raw(abi::IORING_OP_SEND, cfd, stack_a, 64, 16),
        ),
        (
            "RECVMSG with its iovec on the heap",
            raw(abi::IORING_OP_RECVMSG, cfd, hdr_addr, 0, 17),
        ),
        (
            "SENDMSG with its iovec on the heap",
            raw(abi::IORING_OP_SENDMSG, cfd, hdr_addr, 0, 18),
        ),
        (
            "SENDMSG with its msghdr on the heap",
            raw(abi::IORING_OP_SENDMSG, cfd, heap_a, 0, 19),
        ),
        (
            "TIMEOUT with its timespec on the heap",
            raw(
                abi::IORING_OP_TIMEOUT,
                -1,
                &*ts_heap as *const _ as u64,
                1,
                20,
            ),
        ),
        (
            "CONNECT with its sockaddr on the heap",
            raw(
                abi::IORING_OP_CONNECT,
                fresh,
                &*heap_sa as *const _ as u64,
                0,
                21,
            ),
        ),
        (
            "POLL_ADD with its ready word on the heap",
            opcode::PollAddWord::new(cfd, libc::POLLIN as u32, heap.as_ptr().cast())
                .user_data(22)
                .build(),
        ),
        (
            "PROVIDE_BUFFERS on the heap",
            opcode::ProvideBuffers::new(heap.as_mut_ptr(), 64, 4, 3, 0)
                .user_data(23)
                .build(),
        ),
    ];
    for (what, mut sqe) in cases {
        if sqe.opcode == abi::IORING_OP_CONNECT {
            sqe.off = 16; // addrlen
        }
        let r = one(&mut cli, sqe)?;
        if sqe.opcode == abi::IORING_OP_PROVIDE_BUFFERS {
            // Linux checks only that provided buffers lie in user space
            // (`access_ok`); it is the receive that uses one outside the
            // region that fails, before a byte is taken from the socket.
            if r != 0 {
                rep.wrong.push(format!("{what}: {r} (Linux takes it: 0)"));
            }
            let recv = opcode::Recv::new(cfd, std::ptr::null_mut(), 64)
                .buf_group(3)
                .user_data(24)
                .build()
                .into_sqe();
            let r = one(&mut cli, recv)?;
            if r == -libc::EFAULT {
                rep.efault += 1;
            } else {
                rep.wrong
                    .push(format!("RECV into a provided buffer on the heap: {r}"));
            }
            continue;
        }
        if r == -libc::EFAULT {
            rep.efault += 1;
        } else {
            rep.wrong.push(format!("{what}: {r}"));
        }
    }
    rep.outside_written = stack
        .iter()
        .chain(heap.iter())
        .chain(other.iter())
        .filter(|&&b| b != 0x5A)
        .count();
    // The connection is intact: the 4096 bytes are all there, in the region.
    let mut got = cli.mem(4096);
    let n = recv_exact(&mut cli, cfd, &mut got, 30).unwrap_or(0);
    rep.connection_ok = n == 4096 && got.iter().all(|&b| b == 0xAB);
    bufring_cases(&mut srv, sfd, &mut cli, cfd, &mut rep)?;
    drop((ts_heap, heap_sa));
    println!(
        "{}",
        serde_json::to_string(&rep).map_err(|e| e.to_string())?
    );
    if rep.wrong.is_empty() && rep.outside_written == 0 && rep.connection_ok {
        Ok(())
    } else {
        Err("isolation failed".into())
    }
}

/// Buffer rings from an attached application (`serve-fault`'s last part):
/// a ring whose memory lies outside the region is refused at registration
/// (-EFAULT); a ring in the region serves a multishot RECV (every byte
/// checked); an entry naming the heap makes the RECV that would use it
/// -EFAULT and leaves the heap as it was.
fn bufring_cases(
    srv: &mut AttachedUring,
    sfd: i32,
    cli: &mut AttachedUring,
    cfd: i32,
    rep: &mut FaultReport,
) -> Result<(), String> {
    use ringline_ring::abi::{buffer_id, more};
    use ringline_ring::app::Driver;
    use ringline_ring::bufring::BufRing;
    let mut cqes = Vec::new();
    // 1. The ring itself outside the region.
    let (_outside, consumer) =
        BufRing::new(8, ringline_ring::mem::HugePolicy::Never).map_err(|e| e.to_string())?;
    match cli.ring.driver_mut().register_buf_ring(40, consumer) {
        Err(e) if e.0 == libc::EFAULT => rep.bufring_efault += 1,
        r => rep
            .wrong
            .push(format!("a buffer ring outside the region: {r:?}")),
    }
    // The same through io_uring_register(IORING_REGISTER_PBUF_RING), as a
    // liburing program registers a ring it mapped itself: here on the heap.
    let heap_ring = vec![0u64; 16];
    let reg = ringline_ring::abi::IoUringBufReg {
        ring_addr: heap_ring.as_ptr() as u64,
        ring_entries: 8,
        bgid: 43,
        ..Default::default()
    };
    // SAFETY: `reg` is a live io_uring_buf_reg read during the call; the ring it names
    // (`heap_ring`, 128 bytes) outlives the call, and the daemon refuses it anyway.
    let r = unsafe {
        cli.ring.driver_mut().register(
            ringline_ring::abi::IORING_REGISTER_PBUF_RING,
            &reg as *const _ as u64,
            1,
        )
    };
    match r {
        Err(e) if e.0 == libc::EFAULT => rep.bufring_efault += 1,
        r => rep
            .wrong
            .push(format!("IORING_REGISTER_PBUF_RING of a heap ring: {r:?}")),
    }
    drop(heap_ring);
    // 2. Multishot RECV into a ring in the region.
    const N: usize = 8;
    const SZ: usize = 1024;
    let mut ring = cli
        .register_buf_ring(N as u32, 41)
        .map_err(|e| format!("register a ring in the region: {e}"))?;
    let bufs = cli.mem(N * SZ);
    for i in 0..N {
        // SAFETY: buffer i is SZ bytes of the region, the engine's until a CQE hands
        // it back; read below only after its CQE; the region outlives the ring.
        unsafe {
            ring.add_and_advance(bufs.as_ptr() as u64 + (i * SZ) as u64, SZ as u32, i as u16)
        };
    }
    push_safe(cli, opcode::RecvMulti::new(cfd, 41).user_data(50).build());
    let _ = cli.submit();
    let mut data = srv.mem(3000);
    data.fill(0xCD);
    let r = one(
        srv,
        opcode::Send::new(sfd, data.as_ptr(), 3000)
            .user_data(51)
            .build(),
    )?;
    if r != 3000 {
        return Err(format!("send: {r}"));
    }
    let t0 = Instant::now();
    while rep.multishot_bytes < 3000 && t0.elapsed() < Duration::from_secs(5) {
        let _ = cli.submit_and_wait_timeout(1, Duration::from_millis(50));
        cqes.clear();
        cli.reap(&mut cqes);
        for c in cqes.iter().filter(|c| c.user_data == 50) {
            let Some(bid) = buffer_id(c.flags).filter(|_| c.res > 0) else {
                rep.wrong.push(format!(
                    "multishot RECV: res {} flags {:#x}",
                    c.res, c.flags
                ));
                continue;
            };
            let got = &bufs[usize::from(bid) * SZ..][..c.res as usize];
            if !more(c.flags) || got.iter().any(|&b| b != 0xCD) {
                rep.wrong
                    .push(format!("multishot RECV: buffer {bid} wrong"));
            }
            rep.multishot_bytes += c.res as usize;
        }
    }
    push_safe(cli, opcode::AsyncCancel::new(50).user_data(52).build());
    let _ = cli.submit();
    for _ in 0..20 {
        let _ = cli.submit_and_wait_timeout(1, Duration::from_millis(20));
        cqes.clear();
        cli.reap(&mut cqes);
    }
    // 3. A hostile entry: the heap.
    let heap = vec![0x5Au8; 256];
    let mut evil = cli
        .register_buf_ring(2, 42)
        .map_err(|e| format!("register a second ring: {e}"))?;
    // SAFETY: the entry names the heap, which the engine refuses (EFAULT); `heap`
    // outlives every request here either way.
    unsafe { evil.add_and_advance(heap.as_ptr() as u64, 256, 0) };
    let r = one(
        srv,
        opcode::Send::new(sfd, data.as_ptr(), 64)
            .user_data(53)
            .build(),
    )?;
    if r != 64 {
        return Err(format!("send: {r}"));
    }
    let recv = opcode::RecvSelect::new(cfd, 42, 0).user_data(54).build();
    let r = one(cli, recv.into_sqe())?;
    if r == -libc::EFAULT {
        rep.bufring_efault += 1;
    } else {
        rep.wrong
            .push(format!("RECV into a ring entry naming the heap: {r}"));
    }
    rep.outside_written += heap.iter().filter(|&&b| b != 0x5A).count();
    for g in [41, 42] {
        if let Err(e) = cli.unregister_buf_ring(g) {
            rep.wrong.push(format!("unregister {g}: {e}"));
        }
    }
    drop((ring, evil, bufs));
    Ok(())
}

/// Opens a listening socket on `ip:port` synchronously (SOCKET, BIND, LISTEN,
/// each waited for), tagging the SQEs with `setup_ud`. `cqes` is scratch space.
/// The attached apps' listener: its address is in the ring's memory (an
/// attached ring may name only its region), unlike the safe layer's `echo::listen`.
fn listen_on<R: Uring + ?Sized>(
    rt: &mut R,
    cqes: &mut Vec<Cqe>,
    ip: Ipv4Addr,
    port: u16,
    backlog: i32,
    setup_ud: u64,
) -> Result<i32, String> {
    let socket = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).user_data(setup_ud);
    // SAFETY: a SOCKET names no memory.
    let lfd = unsafe { run_setup_op(rt, cqes, socket.build().into_sqe()) }?;
    rt.tune_socket(lfd, true);
    let mut sa = rt.mem(size_of::<libc::sockaddr_in>());
    sa.sockaddrs()[0] = ringline_ring::app::sockaddr_in(ip.octets(), port);
    let sa_ptr = sa.as_ptr() as *const libc::sockaddr;
    let bind = opcode::Bind::new(lfd, sa_ptr, 16).user_data(setup_ud);
    // SAFETY: `sa` is the ring's memory and freed only once the BIND is done: when
    // run_setup_op returns `Ok` its CQE came; on an error it may not have, and
    // `sa` is leaked instead (below).
    let bound = unsafe { run_setup_op(rt, cqes, bind.build()) };
    if bound.is_err() {
        // The engine may not have read the address yet: keep it.
        std::mem::forget(sa);
    }
    bound?;
    let listen = opcode::Listen::new(lfd, backlog).user_data(setup_ud);
    // SAFETY: a LISTEN names no memory.
    unsafe { run_setup_op(rt, cqes, listen.build().into_sqe()) }?;
    Ok(lfd)
}

/// Submits one setup SQE and waits (at most 5 s) for its CQE; a negative
/// result is an error. Nothing else may be in flight on `rt`.
///
/// # Safety
///
/// As [`push`]: the memory `sqe` names stays valid until its CQE, which has
/// come when this returns `Ok` (and may not have on an error).
unsafe fn run_setup_op<R: Uring + ?Sized>(
    rt: &mut R,
    cqes: &mut Vec<Cqe>,
    sqe: ringline_ring::abi::Sqe,
) -> Result<i32, String> {
    // SAFETY: the caller upholds the push contract (this function's).
    unsafe { push(rt, sqe) };
    let t0 = Instant::now();
    loop {
        match rt.submit_and_wait_timeout(1, Duration::from_millis(100)) {
            Ok(_) => {}
            Err(e) if e.0 == libc::ETIME || e.0 == libc::EINTR => {}
            Err(e) => return Err(e.to_string()),
        }
        cqes.clear();
        rt.reap(cqes);
        if let Some(c) = cqes.first() {
            if c.res < 0 {
                return Err(format!(
                    "setup op failed: {}",
                    ringline_ring::app::Errno(-c.res)
                ));
            }
            return Ok(c.res);
        }
        if t0.elapsed() > Duration::from_secs(5) {
            return Err("setup op timed out".into());
        }
    }
}
