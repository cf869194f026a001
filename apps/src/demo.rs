//! `ringline demo`: the echo server and the load generator on two engines,
//! two threads, one loopback wire.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ringline::{open, Clock, EngineConfig};
use ringline_dataplane::{LoopbackWire, WireConfig};
use ringline_ring::ring::RingConfig;
use serde::Serialize;

use crate::echo::{self, EchoOpts};
use crate::loadgen::{self, LiveCounters, LoadOpts};

/// Options of `ringline demo`.
#[derive(Args, Clone, Debug)]
pub struct DemoArgs {
    /// Concurrent client connections.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Measured seconds (after all connections are up).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Request (and echo) size in bytes (at least 16).
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The demo's result, as printed with `--json`.
#[derive(Serialize, Debug)]
pub struct DemoReport {
    /// Always "loopback".
    pub transport: &'static str,
    /// Connections that came up.
    pub connections: usize,
    /// Measured seconds.
    pub duration_s: f64,
    /// Echo round trips completed.
    pub requests: u64,
    /// Errors.
    pub errors: u64,
    /// Round trips per second.
    pub req_per_sec: f64,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
}

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Runs the demo and prints the report.
pub fn run(a: &DemoArgs) -> Result<(), String> {
    if a.connections == 0 || a.connections > 60_000 {
        return Err("--connections must be between 1 and 60000".into());
    }
    if a.size < 16 || a.size > 65_536 {
        return Err("--size must be between 16 and 65536".into());
    }
    if !(a.duration > 0.0) {
        return Err("--duration must be positive".into());
    }
    let wire_cfg = WireConfig { frames_per_direction: 32768, ..WireConfig::default() };
    let (port_a, port_b) = LoopbackWire::pair(&wire_cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(LiveCounters::default());
    let conns = a.connections;
    let engine = |ip: Ipv4Addr, peer: Ipv4Addr, peer_mac| EngineConfig {
        ip,
        static_neighbors: vec![(peer, peer_mac)],
        rx_buffer: 8 * 1024,
        tx_buffer: 8 * 1024,
        prealloc_connections: conns,
        max_connections: conns + 1024,
        ..EngineConfig::default()
    };
    let ring_cfg = RingConfig { sq_entries: 4096, cq_entries: Some(16384), ..RingConfig::default() };

    let srv_cfg = engine(SERVER_IP, CLIENT_IP, wire_cfg.mac_b);
    let srv_ring = ring_cfg.clone();
    let srv_stop = stop.clone();
    let ready = Arc::new(AtomicBool::new(false));
    let srv_ready = ready.clone();
    let server = std::thread::Builder::new()
        .name("ringline-server".into())
        .spawn(move || -> Result<echo::EchoStats, String> {
            crate::sys::pin_to_cpu(0);
            let mut rt = open(port_a, &srv_ring, srv_cfg, Clock::monotonic()).map_err(|e| e.to_string())?;
            let r = echo::serve(&mut rt, SERVER_IP, &EchoOpts { port: 7, ..EchoOpts::default() }, &srv_ready, &srv_stop);
            // Unblock the client even if the server failed to start.
            srv_ready.store(true, Ordering::Release);
            r
        })
        .map_err(|e| e.to_string())?;

    let cli_cfg = engine(CLIENT_IP, SERVER_IP, wire_cfg.mac_a);
    let cli_live = live.clone();
    let cli_ready = ready.clone();
    let load = LoadOpts {
        server: SERVER_IP,
        port: 7,
        connections: a.connections,
        duration: Duration::from_secs_f64(a.duration),
        size: a.size,
        connect_timeout: Duration::from_secs(60),
    };
    let client = std::thread::Builder::new()
        .name("ringline-client".into())
        .spawn(move || -> Result<loadgen::LoadResult, String> {
            crate::sys::pin_to_cpu(1);
            let mut rt = open(port_b, &ring_cfg, cli_cfg, Clock::monotonic()).map_err(|e| e.to_string())?;
            // Start only once the server listens (its Release store pairs with this Acquire).
            while !cli_ready.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(loadgen::run(&mut rt, &load, &cli_live))
        })
        .map_err(|e| e.to_string())?;

    let bar = if a.json { ProgressBar::hidden() } else { ProgressBar::new_spinner() };
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed}] {msg}").expect("template"));
    let t0 = Instant::now();
    let mut last = (Instant::now(), 0u64);
    while !client.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        let req = live.requests.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate = (req - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, req);
        if live.measuring.load(Ordering::Relaxed) == 0 {
            bar.set_message(format!(
                "connecting {}/{}",
                live.connected.load(Ordering::Relaxed),
                a.connections
            ));
        } else {
            bar.set_message(format!(
                "{} round trips, {:.0} req/s, {} errors",
                req,
                rate,
                live.errors.load(Ordering::Relaxed)
            ));
        }
        bar.tick();
        if t0.elapsed() > Duration::from_secs_f64(a.duration + 120.0) {
            break;
        }
    }
    bar.finish_and_clear();
    let res = client.join().map_err(|_| "client thread panicked".to_string())??;
    stop.store(true, Ordering::Relaxed);
    let srv = server.join().map_err(|_| "server thread panicked".to_string())??;

    let q = |p: f64| res.hist.value_at_quantile(p) as f64 / 1000.0;
    let report = DemoReport {
        transport: "loopback",
        connections: res.connected,
        duration_s: res.duration_s,
        requests: res.requests,
        errors: res.errors + srv.errors,
        req_per_sec: if res.duration_s > 0.0 { res.requests as f64 / res.duration_s } else { 0.0 },
        p50_us: q(0.5),
        p99_us: q(0.99),
        p999_us: q(0.999),
    };
    if a.json {
        println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    } else {
        println!("ringline demo: echo over the loopback wire ({} B requests)", a.size);
        println!("{:<14} {:>14}", "metric", "value");
        println!("{:<14} {:>14}", "connections", report.connections);
        println!("{:<14} {:>14.2}", "duration s", report.duration_s);
        println!("{:<14} {:>14}", "requests", report.requests);
        println!("{:<14} {:>14}", "errors", report.errors);
        println!("{:<14} {:>14.0}", "req/s", report.req_per_sec);
        println!("{:<14} {:>14.1}", "p50 µs", report.p50_us);
        println!("{:<14} {:>14.1}", "p99 µs", report.p99_us);
        println!("{:<14} {:>14.1}", "p999 µs", report.p999_us);
        println!("{:<14} {:>14.2}", "connect s", res.connect_s);
        println!("{:<14} {:>14}", "server accepts", srv.accepted);
    }
    if report.errors > 0 {
        return Err(format!("{} errors", report.errors));
    }
    Ok(())
}
