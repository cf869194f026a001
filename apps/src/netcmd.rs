//! `ringline echo`, `ringline http` and `ringline loadgen`: one engine on one
//! DPDK port (see [`crate::transport`]), whose peer is a Linux host or
//! another ringline process. The engine runs on the main thread, which the
//! EAL pins to its first lcore. Servers run until SIGINT or SIGTERM (or
//! `--duration`), the load generator until its run ends or one of those
//! signals; then each shuts down cleanly: the port is stopped and the EAL
//! cleaned up, so no hugepage file and no EAL runtime directory outlives the
//! process. Every command prints the engine's counters on exit (and puts
//! them in its `--json` report). On `net_memif` the load generator, which
//! finishes first, closes its end only after the peer has closed its own
//! (at most 10 s; see [`transport::wait_for_memif_peer`]).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use ringline::{open, Clock, EngineConfig, Runtime};
use ringline_ring::ring::RingConfig;
use serde::Serialize;

use crate::echo::{self, EchoOpts, EchoStats};
use crate::http::{self, HttpOpts, HttpStats};
use crate::loadgen::{self, LiveCounters, LoadOpts};
use crate::report::{self, EngineReport, Engines, LoadReport};
use crate::transport::{self, Device, NicArgs, Settings};

/// Options of `ringline echo`.
#[derive(Args, Clone, Debug)]
pub struct EchoArgs {
    #[command(flatten)]
    pub nic: NicArgs,
    /// Where to listen: PORT or ADDR:PORT [default: 7, or server.listen in the config].
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub listen: Option<String>,
    /// Stop after this many seconds [default: run until SIGINT/SIGTERM].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Print the final report (counts and the engine's counters) as one JSON
    /// object on stdout; the "listening" line goes to stderr.
    #[arg(long)]
    pub json: bool,
}

/// Options of `ringline http`.
#[derive(Args, Clone, Debug)]
pub struct HttpArgs {
    #[command(flatten)]
    pub nic: NicArgs,
    /// Where to listen: PORT or ADDR:PORT [default: 80, or server.listen in the config].
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub listen: Option<String>,
    /// The body served on `GET /` [default: "hello from ringline\n", or server.body].
    #[arg(long)]
    pub body: Option<String>,
    /// Seconds a request head may take from its first byte; slower clients
    /// are closed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds a connection may sit idle between requests before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub idle_timeout: f64,
    /// Stop after this many seconds [default: run until SIGINT/SIGTERM].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Print the final report (counts and the engine's counters) as one JSON
    /// object on stdout; the "listening" line goes to stderr.
    #[arg(long)]
    pub json: bool,
}

/// Options of `ringline loadgen`.
#[derive(Args, Clone, Debug)]
pub struct LoadgenArgs {
    #[command(flatten)]
    pub nic: NicArgs,
    /// The echo server: ADDR:PORT.
    #[arg(long, value_name = "ADDR:PORT")]
    pub connect: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Measured seconds (after all connections are up).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Request (and echo) size in bytes (at least 16).
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Longest wait for the connections to come up before the measured run
    /// starts; a connection still without an answer at the end is an error
    /// (connect ETIMEDOUT).
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub connect_timeout: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn ring_config() -> RingConfig {
    RingConfig {
        sq_entries: 4096,
        cq_entries: Some(16384),
        ..RingConfig::default()
    }
}

/// A flag set by SIGINT or SIGTERM (a second SIGINT exits at once), or when
/// `duration` has passed.
pub(crate) fn stop_flag(duration: Option<f64>) -> Result<Arc<AtomicBool>, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Order matters: the conditional exit sees the flag before this
        // signal sets it, so only a second signal exits.
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    }
    if let Some(secs) = duration {
        if !secs.is_finite() || secs <= 0.0 {
            return Err("--duration must be positive".into());
        }
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("ringline-timer".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_secs_f64(secs));
                stop.store(true, Ordering::Relaxed);
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(stop)
}

/// Prints `line` once `ready` is set (the server listens), on stdout, or on
/// stderr when stdout is for the JSON report; gives up when `stop` is set
/// first.
pub(crate) fn announce(
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    line: String,
    to_stderr: bool,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name("ringline-announce".into())
        .spawn(move || {
            while !ready.load(Ordering::Acquire) {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if to_stderr {
                eprintln!("{line}");
                return;
            }
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        })
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Opens the device and an engine on it, on this thread.
/// Returns it with a line describing the port and the driver's name.
fn engine(
    s: &Settings,
    tune: impl FnOnce(&mut EngineConfig),
) -> Result<(Runtime<Device>, String, String), String> {
    let dev = transport::open_device(&s.device).map_err(|e| e.to_string())?;
    let info = transport::describe(&dev);
    let driver = transport::driver_name(&dev);
    let mut cfg = s.engine.clone();
    tune(&mut cfg);
    let rt = open(dev, &ring_config(), cfg, Clock::monotonic()).map_err(|e| e.to_string())?;
    if let Some(p) = s.realtime {
        crate::sys::set_realtime(p)?;
    }
    Ok((rt, info, driver))
}

pub(crate) fn listen_port(arg: &Option<String>, s: &Settings, default: u16) -> Result<u16, String> {
    let given = arg
        .clone()
        .or_else(|| s.server.listen.as_ref().map(transport::ListenRef::as_arg));
    match given {
        Some(l) => transport::parse_listen(&l, s.engine.ip).map_err(|e| e.to_string()),
        None => Ok(default),
    }
}

/// `ringline echo`
pub fn echo(a: &EchoArgs) -> Result<(), String> {
    let s = transport::resolve(&a.nic, "echo").map_err(|e| e.to_string())?;
    if s.cores.len() > 1 {
        return crate::multicmd::echo(a, &s);
    }
    let port = listen_port(&a.listen, &s, 7)?;
    let stop = stop_flag(a.duration)?;
    let ip = s.engine.ip;
    let (mut rt, info, _) = engine(&s, |_| {})?;
    let ready = Arc::new(AtomicBool::new(false));
    announce(
        ready.clone(),
        stop.clone(),
        format!("ringline echo: listening on {ip}:{port} ({info})"),
        a.json,
    )?;
    let r = echo::serve(
        &mut rt,
        ip,
        &EchoOpts {
            port,
            ..EchoOpts::default()
        },
        &ready,
        &stop,
    );
    let engines = Engines::one("server", EngineReport::of(&rt));
    drop(rt);
    let stats: EchoStats = finish(r, &engines, a.json)?;
    if a.json {
        return print_json(&ServerReport {
            command: "echo",
            stats,
            per_engine: Vec::new(),
            engines,
        });
    }
    println!(
        "ringline echo: stopped; {} connections, {} bytes echoed, {} errors",
        stats.accepted, stats.bytes, stats.errors
    );
    engines.print();
    Ok(())
}

/// What `ringline echo --json` and `ringline http --json` print: the
/// server's counts, then its engine's counters.
#[derive(Serialize)]
pub(crate) struct ServerReport<S: Serialize> {
    pub(crate) command: &'static str,
    #[serde(flatten)]
    pub(crate) stats: S,
    /// Each engine's counts, with several engines (`--cores`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) per_engine: Vec<S>,
    pub(crate) engines: Engines,
}

/// A server's result, with the engine's counters printed first if it
/// failed (the JSON report is only for a clean stop).
pub(crate) fn finish<T>(r: Result<T, String>, engines: &Engines, json: bool) -> Result<T, String> {
    if r.is_err() && !json {
        engines.print();
    }
    r
}

pub(crate) fn print_json<T: Serialize>(report: &T) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string(report).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// `ringline http`
pub fn http(a: &HttpArgs) -> Result<(), String> {
    let s = transport::resolve(&a.nic, "http").map_err(|e| e.to_string())?;
    if s.cores.len() > 1 {
        return crate::multicmd::http(a, &s);
    }
    let port = listen_port(&a.listen, &s, 80)?;
    let body = a
        .body
        .clone()
        .or_else(|| s.server.body.clone())
        .unwrap_or_else(|| "hello from ringline\n".to_owned());
    let stop = stop_flag(a.duration)?;
    let ip = s.engine.ip;
    let (mut rt, info, _) = engine(&s, |_| {})?;
    let ready = Arc::new(AtomicBool::new(false));
    announce(
        ready.clone(),
        stop.clone(),
        format!("ringline http: listening on {ip}:{port} ({info})"),
        a.json,
    )?;
    let opts = HttpOpts {
        header_timeout: Duration::from_secs_f64(a.header_timeout),
        idle_timeout: Duration::from_secs_f64(a.idle_timeout),
        ..HttpOpts::new(port, body)
    };
    let r = http::serve(&mut rt, ip, &opts, &ready, &stop);
    let engines = Engines::one("server", EngineReport::of(&rt));
    drop(rt);
    let stats: HttpStats = finish(r, &engines, a.json)?;
    if a.json {
        return print_json(&ServerReport {
            command: "http",
            stats,
            per_engine: Vec::new(),
            engines,
        });
    }
    println!(
        "ringline http: stopped; {} connections, {} requests ({} ok, {} not found, {} bad), {} timeouts, {} errors",
        stats.accepted, stats.requests, stats.ok, stats.not_found, stats.bad, stats.timeouts, stats.errors
    );
    engines.print();
    Ok(())
}

/// `ringline loadgen`
pub fn loadgen(a: &LoadgenArgs) -> Result<(), String> {
    if a.connections == 0 || a.connections > 60_000 {
        return Err("--connections must be between 1 and 60000".into());
    }
    if a.size < 16 || a.size > 65_536 {
        return Err("--size must be between 16 and 65536".into());
    }
    if !a.duration.is_finite() || a.duration <= 0.0 {
        return Err("--duration must be positive".into());
    }
    if !a.connect_timeout.is_finite() || a.connect_timeout <= 0.0 {
        return Err("--connect-timeout must be positive".into());
    }
    let s = transport::resolve(&a.nic, "loadgen").map_err(|e| e.to_string())?;
    if s.cores.len() > 1 {
        return crate::multicmd::loadgen(a, &s);
    }
    // SIGINT or SIGTERM end the run early, and the EAL is still cleaned up.
    let stop = stop_flag(None)?;
    let server = transport::parse_connect(&a.connect).map_err(|e| e.to_string())?;
    let conns = a.connections;
    let (mut rt, info, driver) = engine(&s, |cfg| {
        cfg.prealloc_connections = cfg.prealloc_connections.max(conns);
        cfg.max_connections = cfg.max_connections.max(conns + 1024);
    })?;
    if !a.json {
        println!("ringline loadgen: {} -> {server} ({info})", s.engine.ip);
    }
    let transport_name = format!("dpdk:{driver}");
    let live = Arc::new(LiveCounters::default());
    let done = Arc::new(AtomicBool::new(false));
    let progress = {
        let (live, done, json) = (live.clone(), done.clone(), a.json);
        let max = Duration::from_secs_f64(a.duration + 120.0);
        std::thread::Builder::new()
            .name("ringline-progress".into())
            .spawn(move || {
                report::show_progress(&live, conns, json, max, || done.load(Ordering::Relaxed))
            })
            .map_err(|e| e.to_string())?
    };
    let t0 = Instant::now();
    let res = loadgen::run(
        &mut rt,
        &LoadOpts {
            server: *server.ip(),
            port: server.port(),
            connections: a.connections,
            duration: Duration::from_secs_f64(a.duration),
            size: a.size,
            connect_timeout: Duration::from_secs_f64(a.connect_timeout),
            stop: Some(stop),
        },
        &live,
    );
    done.store(true, Ordering::Relaxed);
    let _ = progress.join();
    let engines = Engines::one("client", EngineReport::of(&rt));
    let report = LoadReport::new(transport_name, &res, 0, engines);
    report.print(
        &format!(
            "ringline loadgen: echo against {server} ({} B requests, {:.1} s in all{})",
            a.size,
            t0.elapsed().as_secs_f64(),
            if res.interrupted { ", interrupted" } else { "" }
        ),
        res.connect_s,
        None,
        a.json,
    )?;
    // The report is out; on net_memif, let the peer close its end first
    // (see `transport::wait_for_memif_peer`), then close ours.
    transport::wait_for_memif_peer(rt.driver().nic());
    drop(rt);
    if res.connected == 0 && !res.interrupted {
        return Err(format!(
            "no connection to {server} came up: {}",
            report.causes_line()
        ));
    }
    if report.errors > 0 {
        return Err(format!(
            "{} errors: {}",
            report.errors,
            report.causes_line()
        ));
    }
    Ok(())
}
