//! The load generator's report (a table, or one JSON object) and its live
//! progress line; shared by `ringline demo` and `ringline loadgen`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::loadgen::{LiveCounters, LoadResult};

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
    /// Round trips per second.
    pub req_per_sec: f64,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
}

impl LoadReport {
    /// Summarises `res`; `other_errors` are errors seen elsewhere (the server's).
    pub fn new(transport: String, res: &LoadResult, other_errors: u64) -> LoadReport {
        let q = |p: f64| res.hist.value_at_quantile(p) as f64 / 1000.0;
        LoadReport {
            transport,
            connections: res.connected,
            duration_s: res.duration_s,
            requests: res.requests,
            errors: res.errors + other_errors,
            req_per_sec: if res.duration_s > 0.0 {
                res.requests as f64 / res.duration_s
            } else {
                0.0
            },
            p50_us: q(0.5),
            p99_us: q(0.99),
            p999_us: q(0.999),
        }
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
        println!("{:<14} {:>14.0}", "req/s", self.req_per_sec);
        println!("{:<14} {:>14.1}", "p50 µs", self.p50_us);
        println!("{:<14} {:>14.1}", "p99 µs", self.p99_us);
        println!("{:<14} {:>14.1}", "p999 µs", self.p999_us);
        println!("{:<14} {:>14.2}", "connect s", connect_s);
        if let Some(a) = server_accepts {
            println!("{:<14} {:>14}", "server accepts", a);
        }
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
        let req = live.requests.load(Ordering::Relaxed);
        let now = Instant::now();
        let rate = req.saturating_sub(last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, req);
        if live.measuring.load(Ordering::Relaxed) == 0 {
            bar.set_message(format!(
                "connecting {}/{}",
                live.connected.load(Ordering::Relaxed),
                connections
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
    }
    bar.finish_and_clear();
}
