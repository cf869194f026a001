//! `ringline echo`, `http` and `loadgen` with `--cores LIST`: one engine per
//! CPU, each on its own RX/TX queue pair of one DPDK port
//! ([`ringline_dataplane::dpdk::MultiPort`]), its own thread and its own
//! ring. The EAL's main thread runs engine 0 on the first CPU; the others run
//! on scoped threads pinned to theirs, so every queue is gone before the port
//! stops. Frames reach the engine their flow hashes to by software dispatch
//! (see the multi-queue port's docs); active opens pick ports that hash back
//! to the opener; neighbours are shared within the group.

use crate::netcmd::{EchoArgs, HttpArgs, LoadgenArgs};
use crate::transport::Settings;

#[cfg(feature = "dpdk")]
pub use imp::{echo, http, loadgen};

/// Without DPDK there is no port (resolving the options already failed).
#[cfg(not(feature = "dpdk"))]
pub fn echo(_a: &EchoArgs, _s: &Settings) -> Result<(), String> {
    Err(crate::transport::TransportError::NoDpdkSupport.to_string())
}

/// Without DPDK there is no port.
#[cfg(not(feature = "dpdk"))]
pub fn http(_a: &HttpArgs, _s: &Settings) -> Result<(), String> {
    Err(crate::transport::TransportError::NoDpdkSupport.to_string())
}

/// Without DPDK there is no port.
#[cfg(not(feature = "dpdk"))]
pub fn loadgen(_a: &LoadgenArgs, _s: &Settings) -> Result<(), String> {
    Err(crate::transport::TransportError::NoDpdkSupport.to_string())
}

#[cfg(feature = "dpdk")]
mod imp {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use ringline::{engine_group, open_in_group, Clock, EngineConfig, Runtime};

    use super::*;
    use crate::echo::{self, EchoOpts, EchoStats};
    use crate::http::{self, HttpOpts, HttpStats};
    use crate::loadgen::{self, LiveCounters, LoadOpts, LoadResult};
    use crate::netcmd::ServerReport;
    use crate::netcmd::{announce, finish, listen_port, print_json, ring_config, stop_flag};
    use crate::report::{self, EngineLoad, EngineReport, Engines, LoadReport};
    use crate::transport::{self, DpdkQueue};

    /// Each engine's result and counters, the port's description, its driver.
    type Ran<T> = (Vec<(T, EngineReport)>, String, String);

    /// Opens the port with a queue pair per CPU of `s.cores` and runs
    /// `f(i, runtime)` on engine i's thread for every engine; returns each
    /// engine's result and counters, the port's description and driver.
    /// An engine that fails (to open, or while it runs) sets `stop`, so the
    /// others end too instead of serving on alone.
    fn run_engines<T: Send>(
        s: &Settings,
        stop: &AtomicBool,
        tune: impl Fn(usize, &mut EngineConfig) + Sync,
        f: impl for<'a> Fn(usize, &mut Runtime<DpdkQueue<'a>>) -> Result<T, String> + Sync,
    ) -> Result<Ran<T>, String> {
        let mut port = transport::open_multi(&s.device).map_err(|e| e.to_string())?;
        let n = s.cores.len();
        let info = format!(
            "DPDK port {} ({}), MAC {}, {n} engines on CPUs {:?}, frames dispatched to their flow's engine in software",
            port.port_id(),
            port.driver(),
            transport::format_mac(port.caps().mac),
            s.cores
        );
        let driver = port.driver().to_owned();
        let queues = port.queues();
        let members = engine_group(n as u16);
        let run_one = |i: usize, q: DpdkQueue<'_>, m| -> Result<(T, EngineReport), String> {
            if i > 0 {
                crate::sys::pin_to_cpu(s.cores[i]);
            }
            if let Some(p) = s.realtime {
                crate::sys::set_realtime(p)?;
            }
            let mut cfg = s.engine.clone();
            // Each engine its own ISN seed.
            cfg.seed = cfg.seed.wrapping_add(i as u64 * 0x9e37_79b9);
            tune(i, &mut cfg);
            let mut rt = open_in_group(q, &ring_config(), cfg, Clock::monotonic(), m)
                .map_err(|e| e.to_string())?;
            let r = f(i, &mut rt)?;
            Ok((r, EngineReport::of(&rt)))
        };
        let run_one = |i: usize, q: DpdkQueue<'_>, m| {
            let r = run_one(i, q, m);
            if r.is_err() {
                // Read by the other engines' loops (Relaxed: a plain flag,
                // nothing is published with it).
                stop.store(true, Ordering::Relaxed);
            }
            r
        };
        let results: Vec<Result<(T, EngineReport), String>> = std::thread::scope(|sc| {
            let mut it = queues.into_iter().zip(members).enumerate();
            let first = it.next();
            let handles: Vec<_> = it
                .map(|(i, (q, m))| {
                    let run_one = &run_one;
                    std::thread::Builder::new()
                        .name(format!("ringline-engine-{i}"))
                        .spawn_scoped(sc, move || run_one(i, q, m))
                })
                .collect();
            let mut out = Vec::with_capacity(n);
            if let Some((i, (q, m))) = first {
                out.push(run_one(i, q, m));
            }
            for h in handles {
                out.push(match h {
                    Ok(h) => h
                        .join()
                        .unwrap_or_else(|_| Err("engine thread panicked".into())),
                    Err(e) => Err(e.to_string()),
                });
            }
            out
        });
        let mut ok = Vec::with_capacity(n);
        for r in results {
            ok.push(r?);
        }
        drop(port);
        Ok((ok, info, driver))
    }

    /// A flag set once every flag of `flags` is (its Release store pairs
    /// with `announce`'s Acquire load; the loads of `flags` are Acquire,
    /// pairing with their setters' Release stores). Gives up if `stop` is set.
    fn all_set(flags: &Arc<Vec<AtomicBool>>, stop: &Arc<AtomicBool>) -> Arc<AtomicBool> {
        let all = Arc::new(AtomicBool::new(false));
        let (flags, stop, out) = (flags.clone(), stop.clone(), all.clone());
        std::thread::spawn(move || {
            while !flags.iter().all(|f| f.load(Ordering::Acquire)) {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            out.store(true, Ordering::Release);
        });
        all
    }

    /// `ringline echo --cores LIST`
    pub fn echo(a: &EchoArgs, s: &Settings) -> Result<(), String> {
        let port = listen_port(&a.listen, s, 7)?;
        let stop = stop_flag(a.duration)?;
        let ip = s.engine.ip;
        let n = s.cores.len();
        let ready: Arc<Vec<AtomicBool>> =
            Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
        announce(
            all_set(&ready, &stop),
            stop.clone(),
            format!("ringline echo: listening on {ip}:{port} ({n} engines)"),
            a.json,
        )?;
        let opts = EchoOpts {
            port,
            ..EchoOpts::default()
        };
        let r = run_engines(
            s,
            &stop,
            |_, _| {},
            |i, rt| echo::serve(rt, ip, &opts, &ready[i], &stop),
        );
        let (per, _info, _) = r?;
        let mut engines = Engines::default();
        let mut stats = EchoStats::default();
        let mut per_engine = Vec::with_capacity(n);
        let mut reports = Vec::with_capacity(n);
        for (st, rep) in per {
            stats.accepted += st.accepted;
            stats.bytes += st.bytes;
            stats.errors += st.errors;
            per_engine.push(st);
            reports.push(rep);
        }
        engines.add_role("server", reports);
        let stats = finish(Ok(stats), &engines, a.json)?;
        if a.json {
            return print_json(&ServerReport {
                command: "echo",
                stats,
                per_engine,
                engines,
            });
        }
        println!(
            "ringline echo: stopped; {} connections, {} bytes echoed, {} errors",
            stats.accepted, stats.bytes, stats.errors
        );
        for (i, st) in per_engine.iter().enumerate() {
            println!(
                "  engine {i} (CPU {}): {} connections, {} bytes",
                s.cores[i], st.accepted, st.bytes
            );
        }
        engines.print();
        Ok(())
    }

    /// `ringline http --cores LIST`
    pub fn http(a: &HttpArgs, s: &Settings) -> Result<(), String> {
        let port = listen_port(&a.listen, s, 80)?;
        let body = a
            .body
            .clone()
            .or_else(|| s.server.body.clone())
            .unwrap_or_else(|| "hello from ringline\n".to_owned());
        let stop = stop_flag(a.duration)?;
        let ip = s.engine.ip;
        let n = s.cores.len();
        let ready: Arc<Vec<AtomicBool>> =
            Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
        announce(
            all_set(&ready, &stop),
            stop.clone(),
            format!("ringline http: listening on {ip}:{port} ({n} engines)"),
            a.json,
        )?;
        let opts = HttpOpts {
            header_timeout: Duration::from_secs_f64(a.header_timeout),
            idle_timeout: Duration::from_secs_f64(a.idle_timeout),
            ..HttpOpts::new(port, body)
        };
        let (per, _, _) = run_engines(
            s,
            &stop,
            |_, _| {},
            |i, rt| http::serve(rt, ip, &opts, &ready[i], &stop),
        )?;
        let mut engines = Engines::default();
        let mut stats = HttpStats::default();
        let mut per_engine = Vec::with_capacity(n);
        let mut reports = Vec::with_capacity(n);
        for (st, rep) in per {
            stats.accepted += st.accepted;
            stats.requests += st.requests;
            stats.ok += st.ok;
            stats.not_found += st.not_found;
            stats.bad += st.bad;
            stats.errors += st.errors;
            stats.timeouts += st.timeouts;
            per_engine.push(st);
            reports.push(rep);
        }
        engines.add_role("server", reports);
        if a.json {
            return print_json(&ServerReport {
                command: "http",
                stats,
                per_engine,
                engines,
            });
        }
        println!(
            "ringline http: stopped; {} connections, {} requests ({} ok, {} not found, {} bad), {} timeouts, {} errors",
            stats.accepted, stats.requests, stats.ok, stats.not_found, stats.bad, stats.timeouts, stats.errors
        );
        for (i, st) in per_engine.iter().enumerate() {
            println!(
                "  engine {i} (CPU {}): {} connections, {} requests",
                s.cores[i], st.accepted, st.requests
            );
        }
        engines.print();
        Ok(())
    }

    /// `ringline loadgen --cores LIST`: the connections split evenly over
    /// the engines.
    pub fn loadgen(a: &LoadgenArgs, s: &Settings) -> Result<(), String> {
        let stop = stop_flag(None)?;
        let server = transport::parse_connect(&a.connect).map_err(|e| e.to_string())?;
        let n = s.cores.len();
        if a.connections < n {
            return Err("--connections must be at least the number of engines".into());
        }
        let share = |i: usize| a.connections / n + usize::from(i < a.connections % n);
        let lives: Vec<Arc<LiveCounters>> = (0..n).map(|_| Arc::default()).collect();
        let done = Arc::new(AtomicBool::new(false));
        let progress = {
            let (lives, done, json, conns) = (lives.clone(), done.clone(), a.json, a.connections);
            let max = Duration::from_secs_f64(a.duration + 120.0);
            std::thread::Builder::new()
                .name("ringline-progress".into())
                .spawn(move || {
                    let refs: Vec<&LiveCounters> = lives.iter().map(|l| &**l).collect();
                    report::show_progress_all(&refs, conns, json, max, || {
                        done.load(Ordering::Relaxed)
                    })
                })
                .map_err(|e| e.to_string())?
        };
        let t0 = Instant::now();
        let r = run_engines(
            s,
            &stop,
            |i, cfg| {
                cfg.prealloc_connections = cfg.prealloc_connections.max(share(i));
                cfg.max_connections = cfg.max_connections.max(share(i) + 1024);
            },
            |i, rt| {
                // This engine thread's CPU clock, written once here (Release)
                // and read by its own load run's `mark` (Acquire).
                lives[i].cpu_clocks[0].store(crate::sys::thread_cpu_clock(), Ordering::Release);
                let opts = LoadOpts {
                    server: *server.ip(),
                    port: server.port(),
                    connections: share(i),
                    duration: Duration::from_secs_f64(a.duration),
                    size: a.size,
                    connect_timeout: Duration::from_secs_f64(a.connect_timeout),
                    stop: Some(stop.clone()),
                };
                Ok(loadgen::run(rt, &opts, &lives[i]))
            },
        );
        done.store(true, Ordering::Relaxed);
        let _ = progress.join();
        let (per, info, driver) = r?;
        if !a.json {
            println!("ringline loadgen: {} -> {server} ({info})", s.engine.ip);
        }
        let mut results: Vec<LoadResult> = Vec::with_capacity(n);
        let mut reports = Vec::with_capacity(n);
        let mut per_engine = Vec::with_capacity(n);
        for (i, (res, rep)) in per.into_iter().enumerate() {
            per_engine.push(EngineLoad {
                role: "client",
                engine: i,
                core: Some(s.cores[i]),
                connections: res.connected as u64,
                requests: res.requests,
                cpu_s: lives[i].cpu_ns()[0] as f64 / 1e9,
            });
            results.push(res);
            reports.push(rep);
        }
        let mut engines = Engines::default();
        engines.add_role("client", reports);
        let res = LoadResult::merge(results);
        let mut report = LoadReport::new(format!("dpdk:{driver}"), &res, 0, engines);
        report.per_engine = per_engine;
        report.print(
            &format!(
                "ringline loadgen: echo against {server} ({} B requests, {n} engines, {:.1} s in all{})",
                a.size,
                t0.elapsed().as_secs_f64(),
                if res.interrupted { ", interrupted" } else { "" }
            ),
            res.connect_s,
            None,
            a.json,
        )?;
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
}
