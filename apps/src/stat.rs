//! `ringline stat`: reads the counters running engines publish in shared
//! memory (`EngineConfig::stat`, on in every `ringline` command; see
//! `ringline::statpage`) without stopping them. Lists the instances, prints
//! an engine's counters (with rates under `--watch`), its connections like
//! `ss -ti` (`--conns`), JSON (`--json`) or Prometheus text
//! (`--prometheus`), and can serve the latter to a scraper (`--listen`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use ringline::statpage::{
    self, prom, AppsReader, AppsSnapshot, ConnTable, EngineSnapshot, Group, Instance, StatReader,
};
use serde_json::{json, Map, Value};

/// Options of `ringline stat`.
#[derive(Args, Clone, Debug)]
pub struct StatArgs {
    /// The process: its pid or its name (as `ps -o comm` shows it). Without
    /// it: the list of running instances, or with an output option every
    /// instance.
    #[arg(value_name = "NAME|PID")]
    pub target: Option<String>,
    /// Also each engine's connections (state, addresses, queues, bytes,
    /// RTT, retransmissions), like `ss -ti`.
    #[arg(long)]
    pub conns: bool,
    /// Print every counter, not only the summary.
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Refresh every SECS seconds (default 1) with rates, until SIGINT or
    /// --count. Put the target first, or write --watch=SECS.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1")]
    pub watch: Option<f64>,
    /// With --watch: stop after N refreshes.
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
    /// One JSON object per refresh.
    #[arg(long, conflicts_with = "prometheus")]
    pub json: bool,
    /// Prometheus text exposition (metrics `ringline_*`, labels pid,
    /// process, engine, queue).
    #[arg(long)]
    pub prometheus: bool,
    /// Serve the Prometheus text on this address (`GET /metrics`) until
    /// SIGINT/SIGTERM or --count requests, e.g. 127.0.0.1:9469.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["watch", "json", "conns"])]
    pub listen: Option<String>,
    /// Longest wait for an engine to answer --conns, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub timeout: f64,
}

/// The summary lines: a heading and the counters it shows, `group.name`.
const SUMMARY: &[(&str, &[&str])] = &[
    (
        "frames",
        &[
            "engine.rx_frames",
            "engine.tx_segments",
            "nic.rx_frames",
            "nic.tx_frames",
            "nic.rx_bytes",
            "nic.tx_bytes",
        ],
    ),
    (
        "drops",
        &[
            "engine.malformed",
            "engine.not_for_us",
            "engine.unsupported",
            "engine.no_socket",
            "engine.out_of_window",
            "engine.tx_dropped",
            "nic.rx_dropped",
            "nic.tx_dropped",
        ],
    ),
    ("checksum", &["engine.bad_checksum"]),
    (
        "retransmit",
        &[
            "engine.retransmits",
            "engine.fast_retransmits",
            "engine.tlp_probes",
            "engine.rto_fired",
            "engine.rack_timeouts",
            "engine.dsacks_sent",
            "engine.recovery_undos",
            "engine.resends_trimmed",
            "engine.sack_blocks_added",
            "engine.sack_reneging",
            "engine.user_timeouts",
        ],
    ),
    (
        "syn",
        &[
            "engine.syn_dropped",
            "engine.syn_cookies_sent",
            "engine.syn_cookies_ok",
        ],
    ),
    (
        "ring",
        &[
            "ring.cq_overflowed",
            "ring.cq_backlog",
            "engine.bufring_empty",
            "ring.sq_dropped",
            "engine.op_errors",
            "engine.op_cancelled",
            "engine.op_timeouts",
        ],
    ),
    (
        "arp",
        &["engine.unreachable", "engine.arp_rx", "engine.arp_tx"],
    ),
    (
        "conns",
        &[
            "engine.conns_live",
            "engine.accepted",
            "engine.connects",
            "engine.conns_created",
        ],
    ),
    (
        "memory",
        &[
            "engine.buffer_queued",
            "engine.buffer_queued_peak",
            "engine.send_budget_waits",
            "engine.rx_budget_drops",
            "engine.closed_window_acks",
            "engine.buffer_committed",
            "engine.buffer_trims",
            "engine.buffer_pressure_trims",
        ],
    ),
    (
        "cpu",
        &["engine.steps", "thread.cpu_us", "engine.idle_sleep_us"],
    ),
];

/// One engine as read this refresh.
struct EngineRead {
    snap: EngineSnapshot,
    conns: Option<Result<ConnTable, String>>,
}

/// Everything read this refresh: the engines, and the applications of any
/// `ringline serve` daemon among the targets.
struct Reads {
    engines: Vec<EngineRead>,
    daemons: Vec<AppsSnapshot>,
}

impl Reads {
    /// The Prometheus text of all of it.
    fn prometheus(&self) -> String {
        let snaps: Vec<EngineSnapshot> = self.engines.iter().map(|r| r.snap.clone()).collect();
        prom::render(&snaps) + &prom::render_apps(&self.daemons)
    }
}

pub fn run(a: &StatArgs) -> Result<(), String> {
    let output = a.conns || a.json || a.prometheus || a.watch.is_some() || a.all;
    if a.target.is_none() && !output && a.listen.is_none() {
        return list();
    }
    if let Some(addr) = &a.listen {
        return listen(a, addr);
    }
    let stop = crate::netcmd::stop_flag(None)?;
    let every = match a.watch {
        Some(s) if !s.is_finite() || s <= 0.0 => return Err("--watch must be positive".into()),
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    let mut prev: HashMap<(u32, u32), EngineSnapshot> = HashMap::new();
    let mut prev_apps: Vec<AppsSnapshot> = Vec::new();
    let mut n = 0u64;
    loop {
        let reads = read_all(a)?;
        n += 1;
        if a.prometheus {
            print!("{}", reads.prometheus());
        } else if a.json {
            println!("{}", to_json(&reads, &prev, &prev_apps));
        } else {
            print_human(a, &reads.engines, &prev);
            print_apps(&reads.daemons, &prev_apps);
        }
        let _ = std::io::stdout().flush();
        prev_apps = reads.daemons;
        prev = reads
            .engines
            .into_iter()
            .map(|r| ((r.snap.pid, r.snap.engine), r.snap))
            .collect();
        let Some(every) = every else { return Ok(()) };
        if a.count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        let until = Instant::now() + every;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20).min(every));
        }
    }
}

/// The instances `target` names (all without one); may be empty.
fn select(target: Option<&str>) -> Result<Vec<(Instance, StatReader)>, String> {
    let all =
        statpage::instances().map_err(|e| format!("cannot list {}: {e}", statpage::STAT_DIR))?;
    let mut out = Vec::new();
    for i in all {
        let r = match StatReader::open(&i.path) {
            Ok(r) => r,
            // Another version's page, or one being set up: skip it.
            Err(_) => continue,
        };
        let keep = match target {
            None => true,
            Some(t) => match t.parse::<u32>() {
                Ok(pid) => i.pid == pid,
                Err(_) => r.snapshot().is_ok_and(|s| name_matches(&s.process, t)),
            },
        };
        if keep {
            out.push((i, r));
        }
    }
    Ok(out)
}

/// The applications pages of the `ringline serve` daemons `target` names
/// (all without one).
fn select_daemons(target: Option<&str>) -> Vec<AppsReader> {
    let Ok(pages) = statpage::apps_pages() else {
        return Vec::new();
    };
    pages
        .into_iter()
        .filter_map(|(pid, path)| {
            let r = AppsReader::open(&path).ok()?;
            let keep = match target {
                None => true,
                Some(t) => match t.parse::<u32>() {
                    Ok(want) => pid == want,
                    Err(_) => r.snapshot().is_ok_and(|s| name_matches(&s.process, t)),
                },
            };
            keep.then_some(r)
        })
        .collect()
}

/// The error for a target with neither engines nor applications.
fn none_running(target: Option<&str>) -> String {
    match target {
        Some(t) => format!(
            "no running ringline engine of process {t} (looked in {}; is `stat` on in its engine config?)",
            statpage::STAT_DIR
        ),
        None => format!("no running ringline engine (looked in {})", statpage::STAT_DIR),
    }
}

/// `comm` is the kernel's process name, cut at 15 bytes.
fn name_matches(comm: &str, want: &str) -> bool {
    comm == want || (comm.len() == 15 && want.starts_with(comm))
}

fn read_all(a: &StatArgs) -> Result<Reads, String> {
    read_target(a.target.as_deref(), a.conns, a.timeout)
}

/// The engines and daemons `target` names (all without one), with each
/// engine's connections if `conns` (waiting `timeout_s` at most).
fn read_target(target: Option<&str>, conns: bool, timeout_s: f64) -> Result<Reads, String> {
    let timeout = Duration::from_secs_f64(timeout_s.clamp(0.01, 600.0));
    let mut engines = Vec::new();
    for (_, r) in select(target)? {
        let snap = r.snapshot().map_err(|e| e.to_string())?;
        let conns = conns.then(|| r.connections(timeout).map_err(|e| e.to_string()));
        engines.push(EngineRead { snap, conns });
    }
    let mut daemons = Vec::new();
    for r in select_daemons(target) {
        daemons.push(r.snapshot().map_err(|e| e.to_string())?);
    }
    if engines.is_empty() && daemons.is_empty() {
        return Err(none_running(target));
    }
    Ok(Reads { engines, daemons })
}

fn list() -> Result<(), String> {
    let all =
        statpage::instances().map_err(|e| format!("cannot list {}: {e}", statpage::STAT_DIR))?;
    if all.is_empty() && select_daemons(None).is_empty() {
        println!(
            "no running ringline engine (looked in {})",
            statpage::STAT_DIR
        );
        return Ok(());
    }
    println!(
        "{:>8} {:>6} {:>6} {:<16} {:>10} {:>10}  page",
        "pid", "engine", "queue", "process", "published", "ago"
    );
    for i in all {
        match StatReader::open(&i.path).and_then(|r| r.snapshot()) {
            Ok(s) => println!(
                "{:>8} {:>6} {:>6} {:<16} {:>10} {:>10}  {}",
                s.pid,
                s.engine,
                format!("{}/{}", s.queue, s.queues),
                s.process,
                s.publishes,
                age(&s),
                i.path.display()
            ),
            Err(e) => println!("{:>8} {:>6}  unreadable: {e}", i.pid, i.engine),
        }
    }
    for d in select_daemons(None) {
        if let Ok(s) = d.snapshot() {
            println!(
                "{:>8} {:>6} {:>6} {:<16} {:>10} {:>10}  serve: {} applications",
                s.pid,
                "-",
                "-",
                s.process,
                s.publishes,
                "",
                s.apps.len()
            );
        }
    }
    Ok(())
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// How long ago the engine last published, for people.
fn age(s: &EngineSnapshot) -> String {
    if s.publishes == 0 {
        return "never".into();
    }
    let us = now_us().saturating_sub(s.wall_us);
    if us < 10_000_000 {
        format!("{} ms", us / 1000)
    } else {
        format!("{} s", us / 1_000_000)
    }
}

/// The counter `key` (`group.name`) of `s`.
fn value(s: &EngineSnapshot, key: &str) -> Option<u64> {
    let (g, name) = key.split_once('.')?;
    let group = match g {
        "engine" => Group::Engine,
        "nic" => Group::Nic,
        "ring" => Group::Ring,
        "thread" => Group::Thread,
        _ => return None,
    };
    s.get(group, name)
}

/// Per second, from `p` (an earlier publication) to `s`; `None` without an
/// earlier one or if none was published between.
fn rate(s: &EngineSnapshot, p: Option<&EngineSnapshot>, now: u64, then: u64) -> Option<f64> {
    let p = p?;
    let dt = s.wall_us.checked_sub(p.wall_us).filter(|&d| d > 0)?;
    Some(now.wrapping_sub(then) as f64 * 1e6 / dt as f64)
}

fn print_human(a: &StatArgs, reads: &[EngineRead], prev: &HashMap<(u32, u32), EngineSnapshot>) {
    for r in reads {
        let s = &r.snap;
        let p = prev.get(&(s.pid, s.engine));
        let stale = s.publishes > 0
            && now_us().saturating_sub(s.wall_us) > (10 * s.interval_us).max(2_000_000);
        println!(
            "pid {} ({}) engine {} queue {}/{}: {} publications, last {} ago{}",
            s.pid,
            s.process,
            s.engine,
            s.queue,
            s.queues,
            s.publishes,
            age(s),
            if stale {
                " (stale: the engine is not being stepped)"
            } else {
                ""
            }
        );
        let show = |key: &str, v: u64, kind_counter: bool| -> String {
            let short = key.strip_prefix("engine.").unwrap_or(key);
            let then = p.and_then(|p| value(p, key));
            match (kind_counter, then.and_then(|t| rate(s, p, v, t))) {
                (true, Some(r)) if r > 0.0 => format!("{short} {v} ({r:.0}/s)"),
                _ => format!("{short} {v}"),
            }
        };
        if a.all {
            for group in [Group::Engine, Group::Nic, Group::Ring, Group::Thread] {
                let items: Vec<String> = s
                    .counters
                    .iter()
                    .filter(|c| c.group == group)
                    .map(|c| {
                        let key = format!("{}.{}", group.name(), c.name);
                        show(&key, c.value, c.kind == statpage::Kind::Counter)
                    })
                    .collect();
                print_wrapped(group.name(), &items);
            }
        } else {
            for (head, keys) in SUMMARY {
                let items: Vec<String> = keys
                    .iter()
                    .filter_map(|k| {
                        let kind = s
                            .counters
                            .iter()
                            .find(|c| format!("{}.{}", c.group.name(), c.name) == *k)
                            .map(|c| c.kind);
                        value(s, k).map(|v| show(k, v, kind == Some(statpage::Kind::Counter)))
                    })
                    .collect();
                print_wrapped(head, &items);
            }
        }
        match &r.conns {
            None => {}
            Some(Err(e)) => println!("  connections: {e}"),
            Some(Ok(t)) => print_conns(t),
        }
        println!();
    }
}

fn print_wrapped(head: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let mut line = format!("  {head:<10}");
    for it in items {
        if line.len() + it.len() + 2 > 110 && line.len() > 12 {
            println!("{line}");
            line = " ".repeat(12);
        }
        line.push_str("  ");
        line.push_str(it);
    }
    println!("{line}");
}

fn print_conns(t: &ConnTable) {
    println!("  connections: {} live, {} shown", t.live, t.rows.len());
    println!(
        "  {:<11} {:>21} {:>21} {:>8} {:>8} {:>12} {:>12} {:>14} {:>9} {:>8} {:>7} {:>6} {:>9}",
        "State",
        "Local",
        "Peer",
        "Send-Q",
        "Recv-Q",
        "bytes_out",
        "bytes_in",
        "rtt/var ms",
        "minrtt",
        "cwnd",
        "retrans",
        "fd",
        "age s"
    );
    for c in &t.rows {
        println!(
            "  {:<11} {:>21} {:>21} {:>8} {:>8} {:>12} {:>12} {:>14} {:>9} {:>8} {:>7} {:>6} {:>9.1}",
            c.state_name(),
            c.local().to_string(),
            c.remote().to_string(),
            c.send_queue,
            c.recv_queue,
            c.bytes_out,
            c.bytes_in,
            format!(
                "{:.3}/{:.3}",
                c.srtt_us as f64 / 1000.0,
                c.rttvar_us as f64 / 1000.0
            ),
            format!("{:.3}", c.min_rtt_us as f64 / 1000.0),
            c.cwnd,
            c.retransmits,
            c.fd as i64,
            c.age_us as f64 / 1e6
        );
    }
}

fn to_json(
    reads: &Reads,
    prev: &HashMap<(u32, u32), EngineSnapshot>,
    prev_apps: &[AppsSnapshot],
) -> Value {
    let engines: Vec<Value> = reads
        .engines
        .iter()
        .map(|r| {
            let s = &r.snap;
            let p = prev.get(&(s.pid, s.engine));
            let mut groups = Map::new();
            let mut rates = Map::new();
            for c in &s.counters {
                let g = groups
                    .entry(c.group.name())
                    .or_insert_with(|| Value::Object(Map::new()));
                g[&c.name] = json!(c.value);
                if c.kind == statpage::Kind::Counter {
                    let then = p.and_then(|p| p.get(c.group, &c.name));
                    if let Some(r) = then.and_then(|t| rate(s, p, c.value, t)) {
                        let g = rates
                            .entry(c.group.name())
                            .or_insert_with(|| Value::Object(Map::new()));
                        g[&c.name] = json!(r);
                    }
                }
            }
            let mut e = json!({
                "pid": s.pid,
                "process": s.process,
                "engine": s.engine,
                "queue": s.queue,
                "queues": s.queues,
                "publishes": s.publishes,
                "interval_us": s.interval_us,
                "age_us": now_us().saturating_sub(s.wall_us),
                "engine_us": s.engine_us,
                "counters": groups,
            });
            if p.is_some() {
                e["rates"] = Value::Object(rates);
            }
            match &r.conns {
                None => {}
                Some(Err(err)) => e["connections"] = json!({ "error": err }),
                Some(Ok(t)) => {
                    let rows: Vec<Value> = t
                        .rows
                        .iter()
                        .map(|c| {
                            json!({
                                "state": c.state_name(),
                                "local": c.local().to_string(),
                                "remote": c.remote().to_string(),
                                "fd": c.fd as i64,
                                "bytes_out": c.bytes_out,
                                "bytes_in": c.bytes_in,
                                "srtt_us": c.srtt_us,
                                "rttvar_us": c.rttvar_us,
                                "min_rtt_us": c.min_rtt_us,
                                "cwnd": c.cwnd,
                                "retransmits": c.retransmits,
                                "send_queue": c.send_queue,
                                "recv_queue": c.recv_queue,
                                "age_us": c.age_us,
                            })
                        })
                        .collect();
                    e["connections"] = json!({
                        "live": t.live,
                        "engine_us": t.engine_us,
                        "rows": rows,
                    });
                }
            }
            e
        })
        .collect();
    let daemons: Vec<Value> = reads
        .daemons
        .iter()
        .map(|d| {
            let apps: Vec<Value> = d
                .apps
                .iter()
                .map(|app| {
                    let mut o = json!({
                        "name": app.name,
                        "pid": app.pid,
                        "port": app.port,
                        "slot": app.slot,
                        "state": app.state_name(),
                    });
                    if app.engine != u64::MAX {
                        o["engine"] = json!(app.engine);
                    }
                    for (field, _, v) in app.fields() {
                        if field != "state" {
                            o[field] = json!(v);
                        }
                    }
                    if let Some(r) = app_rate(d, app, prev_apps) {
                        o["sqes_per_s"] = json!(r);
                    }
                    o
                })
                .collect();
            json!({
                "pid": d.pid,
                "process": d.process,
                "publishes": d.publishes,
                "age_us": now_us().saturating_sub(d.wall_us),
                "apps": apps,
            })
        })
        .collect();
    json!({ "time_us": now_us(), "engines": engines, "serve": daemons })
}

/// SQEs per second of `app` since the previous refresh (the same daemon,
/// port and slot, and pid: not a successor in the slot).
fn app_rate(d: &AppsSnapshot, app: &statpage::AppStat, prev: &[AppsSnapshot]) -> Option<f64> {
    let p = prev.iter().find(|p| p.pid == d.pid)?;
    let then = p
        .apps
        .iter()
        .find(|o| o.port == app.port && o.slot == app.slot && o.pid == app.pid)?;
    let dt = d.wall_us.checked_sub(p.wall_us).filter(|&t| t > 0)?;
    Some(app.sqes.wrapping_sub(then.sqes) as f64 * 1e6 / dt as f64)
}

/// The applications of each `ringline serve` daemon, a line each.
fn print_apps(daemons: &[AppsSnapshot], prev: &[AppsSnapshot]) {
    for d in daemons {
        println!(
            "serve pid {} ({}): {} applications",
            d.pid,
            d.process,
            d.apps.len()
        );
        if d.apps.is_empty() {
            println!();
            continue;
        }
        println!(
            "  {:<16} {:>8} {:>5} {:<8} {:>11} {:>6} {:>9} {:>8} {:>21} {:>21} {:>6} {:>10} {:>10} {:>7} {:>9}",
            "name", "pid", "slot", "state", "sockets", "listen", "region", "ring",
            "sq head/tail", "cq head/tail", "ovfl", "cqes", "sqes", "flight", "sqes/s"
        );
        for a in &d.apps {
            let rate = app_rate(d, a, prev).map_or_else(|| "-".into(), |r| format!("{r:.0}"));
            println!(
                "  {:<16} {:>8} {:>5} {:<8} {:>11} {:>6} {:>9} {:>8} {:>21} {:>21} {:>6} {:>10} {:>10} {:>7} {:>9}",
                a.name,
                a.pid,
                format!("{}/{}", a.port, a.slot),
                a.state_name(),
                format!("{}/{}", a.sockets, a.sockets_limit),
                a.listeners,
                format!("{}K", a.region_bytes >> 10),
                format!("{}K", a.ring_bytes >> 10),
                format!("{}/{}", a.sq_head, a.sq_tail),
                format!("{}/{}", a.cq_head, a.cq_tail),
                a.cq_overflowed,
                a.cqes,
                a.sqes,
                a.in_flight,
                rate
            );
        }
        println!();
    }
}

/// `--listen`: [`serve_metrics`] with the selected instances' text until
/// SIGINT/SIGTERM or `--count` requests.
fn listen(a: &StatArgs, addr: &str) -> Result<(), String> {
    let stop = crate::netcmd::stop_flag(None)?;
    let l = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = l.local_addr().map_err(|e| e.to_string())?;
    eprintln!("ringline stat: serving Prometheus metrics on http://{local}/metrics");
    serve_metrics(&l, &stop, a.count, &|| read_all(a).map(|r| r.prometheus()))
}

/// The Prometheus text of process `pid`'s engines and applications (what
/// `ringline serve --prometheus` answers with: its own pages, read as
/// `ringline stat PID --prometheus` reads them).
pub fn prometheus_of(pid: u32) -> Result<String, String> {
    read_target(Some(&pid.to_string()), false, 1.0).map(|r| r.prometheus())
}

/// A small HTTP/1.0 server on `l` answering `GET /metrics` (or `/`) with
/// `render`'s text, one connection at a time (each read and write bounded
/// by a 2 s timeout, a request head by 8 KiB), until `stop` or `count`
/// requests.
pub fn serve_metrics(
    l: &TcpListener,
    stop: &std::sync::atomic::AtomicBool,
    count: Option<u64>,
    render: &dyn Fn() -> Result<String, String>,
) -> Result<(), String> {
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut served = 0u64;
    while !stop.load(Ordering::Relaxed) && count.is_none_or(|c| served < c) {
        let (mut conn, _) = match l.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(format!("accept: {e}")),
        };
        served += 1;
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let path_ok = head.starts_with(b"GET /metrics ") || head.starts_with(b"GET / ");
        let (status, body) = if !path_ok {
            ("404 Not Found", "not found: GET /metrics\n".to_owned())
        } else {
            match render() {
                Ok(text) => ("200 OK", text),
                Err(e) => ("503 Service Unavailable", format!("{e}\n")),
            }
        };
        let ctype = if status.starts_with("200") {
            prom::CONTENT_TYPE
        } else {
            "text/plain"
        };
        let _ = write!(
            conn,
            "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    Ok(())
}
