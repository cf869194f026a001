//! The load generator's report (a table, or one JSON object) and its live
//! progress line, shared by `ringline demo` and `ringline loadgen`; and the
//! engines' counters every command prints on exit and puts in its JSON.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use ringline::Runtime;
use ringline_dataplane::Nic;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::loadgen::{LiveCounters, LoadResult};

/// Named counters in a fixed order, serialised as one JSON object in that
/// order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub Vec<(&'static str, u64)>);

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// One engine's counters at the end of a run: every field of
/// [`ringline::EngineStats`] (by [`ringline::EngineStats::fields`], so a new
/// counter appears here by itself) and its NIC's counters.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineReport {
    /// The engine's counters: frames dropped by cause (`malformed`,
    /// `not_for_us`, `unsupported`, `no_socket`, `tx_dropped`), SYNs
    /// dropped, ARP failures (`unreachable`), ...
    pub stats: Counters,
    /// The NIC's counters (`rx_dropped` includes frames the device found
    /// with a bad checksum).
    pub nic: Counters,
}

impl EngineReport {
    /// The counters of `rt`'s engine and NIC now.
    pub fn of<N: Nic>(rt: &Runtime<N>) -> EngineReport {
        let d = rt.driver();
        EngineReport::from_parts(d.stats(), d.nic().counters())
    }

    /// The counters of an SQPOLL runtime's engine and NIC now (read by the
    /// engine thread; zero if it is gone), and the CPU time of the engine
    /// thread so far (`sqpoll_thread_cpu_us`, among the engine's counters).
    pub fn of_sqpoll<N>(rt: &mut ringline::SqpollRuntime<N>) -> EngineReport
    where
        N: Nic + Send + 'static,
        N::Frame: Send,
    {
        match rt.driver_mut().snapshot() {
            Ok(s) => {
                let mut r = EngineReport::from_parts(s.stats, s.nic);
                r.stats.0.push(("sqpoll_thread_cpu_us", s.thread_cpu_us));
                r
            }
            Err(_) => EngineReport::default(),
        }
    }

    /// From an engine's and a NIC's counters.
    pub fn from_parts(stats: ringline::EngineStats, nic: ringline_dataplane::NicCounters) -> Self {
        EngineReport {
            stats: Counters(stats.fields()),
            nic: Counters(nic.fields().to_vec()),
        }
    }
}

impl EngineReport {
    /// The counters of several engines added up, counter by counter (every
    /// report lists the same counters in the same order).
    pub fn sum<'a>(reports: impl IntoIterator<Item = &'a EngineReport>) -> EngineReport {
        let add = |acc: &mut Counters, c: &Counters| {
            if acc.0.is_empty() {
                acc.0 = c.0.clone();
            } else {
                for (a, b) in acc.0.iter_mut().zip(&c.0) {
                    a.1 += b.1;
                }
            }
        };
        let mut out = EngineReport::default();
        for r in reports {
            add(&mut out.stats, &r.stats);
            add(&mut out.nic, &r.nic);
        }
        out
    }
}

/// The engines of a run by role (`"server"`, `"client"`; with several
/// engines a role, their sum under the role and each engine apart as
/// `"server.0"`, `"server.1"`, ...), serialised as one JSON object:
/// `{"server": {"stats": {...}, "nic": {...}}, "server.0": {...}}`.
#[derive(Clone, Debug, Default)]
pub struct Engines(pub Vec<(String, EngineReport)>);

impl Serialize for Engines {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Engines {
    /// One engine.
    pub fn one(role: &str, report: EngineReport) -> Engines {
        Engines(vec![(role.to_owned(), report)])
    }

    /// Adds the engines of `role`: one is listed under the role; several
    /// are listed summed under the role, then each as `role.i`.
    pub fn add_role(&mut self, role: &str, reports: Vec<EngineReport>) {
        if reports.len() == 1 {
            self.0
                .extend(reports.into_iter().map(|r| (role.to_owned(), r)));
            return;
        }
        self.0.push((role.to_owned(), EngineReport::sum(&reports)));
        for (i, r) in reports.into_iter().enumerate() {
            self.0.push((format!("{role}.{i}"), r));
        }
    }

    /// Prints the counters as a table: a row per counter (the NIC's
    /// prefixed `nic.`), a column per engine. Nothing if there is no engine.
    pub fn print(&self) {
        let Some((_, first)) = self.0.first() else {
            return;
        };
        print!("{:<22}", "engine counters");
        for (role, _) in &self.0 {
            print!(" {role:>14}");
        }
        println!();
        let rows = |part: fn(&EngineReport) -> &Counters, prefix: &str| {
            for (i, (name, _)) in part(first).0.iter().enumerate() {
                print!("{:<22}", format!("{prefix}{name}"));
                for (_, e) in &self.0 {
                    let v = part(e).0.get(i).map_or(0, |c| c.1);
                    print!(" {v:>14}");
                }
                println!();
            }
        };
        rows(|e| &e.stats, "");
        rows(|e| &e.nic, "nic.");
    }
}

/// The result of an echo load run, as printed with `--json`.
#[derive(Serialize, Debug)]
pub struct LoadReport {
    /// What carried the frames: "loopback", "dpdk:net_ring", "dpdk:net_memif", ...
    pub transport: String,
    /// Connections that came up.
    pub connections: usize,
    /// Measured seconds.
    pub duration_s: f64,
    /// Echo round trips completed.
    pub requests: u64,
    /// Errors.
    pub errors: u64,
    /// The errors by cause (`"connect ECONNREFUSED"`, `"echo short or wrong"`, ...).
    pub error_causes: BTreeMap<String, u64>,
    /// Round trips per second.
    pub req_per_sec: f64,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// What each engine did (one entry per engine, servers first).
    pub per_engine: Vec<EngineLoad>,
    /// The engines' counters at the end, by role.
    pub engines: Engines,
}

/// One engine's share of a load run.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct EngineLoad {
    /// `"server"` or `"client"`.
    pub role: &'static str,
    /// The engine's queue index.
    pub engine: usize,
    /// The CPU its thread was pinned to, if any.
    pub core: Option<usize>,
    /// Connections it accepted (server) or opened (client).
    pub connections: u64,
    /// Requests it served (server: bytes echoed / request size) or
    /// completed round trips (client).
    pub requests: u64,
    /// CPU seconds its thread used over the whole run (0 if unknown).
    pub cpu_s: f64,
}

impl LoadReport {
    /// Summarises `res`; `other_errors` are errors seen elsewhere (the
    /// server's, counted under the cause `"server"`); `engines` the engines'
    /// counters.
    pub fn new(
        transport: String,
        res: &LoadResult,
        other_errors: u64,
        engines: Engines,
    ) -> LoadReport {
        let q = |p: f64| res.hist.value_at_quantile(p) as f64 / 1000.0;
        let mut error_causes = res.error_causes.clone();
        if other_errors > 0 {
            *error_causes.entry("server".to_owned()).or_default() += other_errors;
        }
        LoadReport {
            transport,
            connections: res.connected,
            duration_s: res.duration_s,
            requests: res.requests,
            errors: res.errors + other_errors,
            error_causes,
            req_per_sec: if res.duration_s > 0.0 {
                res.requests as f64 / res.duration_s
            } else {
                0.0
            },
            p50_us: q(0.5),
            p99_us: q(0.99),
            p999_us: q(0.999),
            per_engine: Vec::new(),
            engines,
        }
    }

    /// The errors by cause in one line: `"5 connect ECONNREFUSED
    /// (Connection refused)"`, several joined by `", "`.
    pub fn causes_line(&self) -> String {
        self.error_causes
            .iter()
            .map(|(cause, n)| format!("{n} {cause}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Prints the report: one JSON object, or a table under `title`, with
    /// the connect time and (if known) the server's accept count.
    pub fn print(
        &self,
        title: &str,
        connect_s: f64,
        server_accepts: Option<u64>,
        json: bool,
    ) -> Result<(), String> {
        if json {
            println!(
                "{}",
                serde_json::to_string(self).map_err(|e| e.to_string())?
            );
            return Ok(());
        }
        println!("{title}");
        println!("{:<14} {:>14}", "metric", "value");
        println!("{:<14} {:>14}", "transport", self.transport);
        println!("{:<14} {:>14}", "connections", self.connections);
        println!("{:<14} {:>14.2}", "duration s", self.duration_s);
        println!("{:<14} {:>14}", "requests", self.requests);
        println!("{:<14} {:>14}", "errors", self.errors);
        for (cause, n) in &self.error_causes {
            println!("  {n:>12} {cause}");
        }
        println!("{:<14} {:>14.0}", "req/s", self.req_per_sec);
        println!("{:<14} {:>14.1}", "p50 µs", self.p50_us);
        println!("{:<14} {:>14.1}", "p99 µs", self.p99_us);
        println!("{:<14} {:>14.1}", "p999 µs", self.p999_us);
        println!("{:<14} {:>14.2}", "connect s", connect_s);
        if let Some(a) = server_accepts {
            println!("{:<14} {:>14}", "server accepts", a);
        }
        if self.per_engine.len() > 2 {
            println!(
                "{:<8} {:>6} {:>5} {:>12} {:>12} {:>8}",
                "role", "engine", "core", "connections", "requests", "cpu s"
            );
            for e in &self.per_engine {
                println!(
                    "{:<8} {:>6} {:>5} {:>12} {:>12} {:>8.2}",
                    e.role,
                    e.engine,
                    e.core.map_or("-".to_owned(), |c| c.to_string()),
                    e.connections,
                    e.requests,
                    e.cpu_s
                );
            }
        }
        self.engines.print();
        Ok(())
    }
}

/// Shows a spinner with the live counters (on a terminal, unless `hidden`)
/// until `finished()` is true or `max` has passed.
pub fn show_progress(
    live: &LiveCounters,
    connections: usize,
    hidden: bool,
    max: Duration,
    finished: impl Fn() -> bool,
) {
    show_progress_all(&[live], connections, hidden, max, finished)
}

/// [`show_progress`] for several load threads, each with its own counters
/// (added up for the line).
pub fn show_progress_all(
    lives: &[&LiveCounters],
    connections: usize,
    hidden: bool,
    max: Duration,
    finished: impl Fn() -> bool,
) {
    let sum = |f: fn(&LiveCounters) -> &std::sync::atomic::AtomicU64| -> u64 {
        lives.iter().map(|l| f(l).load(Ordering::Relaxed)).sum()
    };
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed}] {msg}") {
        bar.set_style(style);
    }
    let t0 = Instant::now();
    let mut last = (Instant::now(), 0u64);
    while !finished() && t0.elapsed() < max {
        std::thread::sleep(Duration::from_millis(100));
        let req = sum(|l| &l.requests);
        let now = Instant::now();
        let rate = req.saturating_sub(last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, req);
        if lives
            .iter()
            .any(|l| l.measuring.load(Ordering::Relaxed) == 0)
        {
            bar.set_message(format!(
                "connecting {}/{}",
                sum(|l| &l.connected),
                connections
            ));
        } else {
            bar.set_message(format!(
                "{} round trips, {:.0} req/s, {} errors",
                req,
                rate,
                sum(|l| &l.errors)
            ));
        }
        bar.tick();
    }
    bar.finish_and_clear();
}
