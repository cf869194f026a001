//! `ringline demo`: the echo server and the load generator, each on one
//! engine (or with `--engines N`, on N engines, one per queue pair, each on
//! its own thread), over one wire: the in-memory loopback wire by default
//! (with N queue pairs a side and symmetric RSS), or with `--dpdk "<EAL
//! args>"` a pair of DPDK `net_ring` ports joined back to back inside the
//! process (one engine a side, over mbufs and the ethdev API).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ringline::{engine_group, open_in_group, open_sqpoll, Clock, EngineConfig, SqpollConfig};
use ringline_dataplane::{LoopbackPort, LoopbackWire, MacAddr, Nic, WireConfig};
use ringline_ring::ring::RingConfig;

use crate::echo::{self, EchoOpts};
use crate::loadgen::{self, LiveCounters, LoadOpts};
use crate::report::{self, EngineLoad, EngineReport, Engines, LoadReport};

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
    /// Instead of the loopback wire, join the two engines with a pair of DPDK
    /// net_ring ports created inside this process, with these EAL arguments,
    /// e.g. "--no-huge -m 512 --no-pci" (needs --features dpdk).
    #[arg(long, value_name = "EAL_ARGS", allow_hyphen_values = true)]
    pub dpdk: Option<String>,
    /// Run both engine threads under SCHED_FIFO at this priority (1-99): a
    /// busy-polling engine preempted by other work on its core loses its
    /// tail latency (needs CAP_SYS_NICE).
    #[arg(long, value_name = "PRIO", value_parser = clap::value_parser!(u8).range(1..=99))]
    pub realtime: Option<u8>,
    /// Engines on each side (server and load generator), one per queue pair
    /// of the loopback wire, each on its own thread with its own ring; the
    /// wire spreads connections over them by a symmetric RSS hash.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub engines: u16,
    /// CPUs to pin the engine threads to, e.g. "0,1" or "0-3": the server's
    /// engines first, then the load generator's, reusing the list from its
    /// start if it is shorter [default: CPU i for the i-th thread, modulo
    /// the CPUs online].
    #[arg(long, value_name = "LIST")]
    pub cores: Option<String>,
    /// Run the server's engine in SQPOLL mode: on a thread of its own, the
    /// echo server submitting by publishing SQEs (loopback wire only).
    #[arg(long)]
    pub sqpoll: bool,
    /// With --sqpoll: pin the server's engine thread to this CPU
    /// (`sq_thread_cpu`); by default the scheduler places it.
    #[arg(long, value_name = "CPU", requires = "sqpoll")]
    pub sq_thread_cpu: Option<usize>,
    /// With --sqpoll: ms without work before the engine sets
    /// IORING_SQ_NEED_WAKEUP and sleeps (`sq_thread_idle`).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub sq_thread_idle: u64,
    /// µs an idle engine keeps polling before it blocks (both engines).
    #[arg(long, value_name = "US", default_value_t = ringline::DEFAULT_BUSY_POLL_US)]
    pub busy_poll_us: u64,
    /// Do not publish the engines' counters for `ringline stat` (on by
    /// default: a page per engine in /dev/shm, removed on exit).
    #[arg(long)]
    pub no_stat: bool,
}

/// Opens the demo's server engine in SQPOLL mode, where the NIC can move to
/// the engine's thread, and serves on it.
trait SqpollNic: Nic + Sized {
    /// Serves echo on an SQPOLL runtime on `self`.
    fn serve_sqpoll(self, s: SqpollServer<'_>) -> Result<(echo::EchoStats, EngineReport), String>;
}

/// What the SQPOLL server needs.
struct SqpollServer<'a> {
    ring: &'a RingConfig,
    cfg: EngineConfig,
    sq: SqpollConfig,
    ready: &'a AtomicBool,
    stop: &'a AtomicBool,
}

impl SqpollNic for LoopbackPort {
    fn serve_sqpoll(self, s: SqpollServer<'_>) -> Result<(echo::EchoStats, EngineReport), String> {
        let mut rt = open_sqpoll(self, s.ring, s.cfg, &s.sq, Clock::monotonic())
            .map_err(|e| e.to_string())?;
        let stats = echo::serve(
            &mut rt,
            SERVER_IP,
            &EchoOpts {
                port: 7,
                ..EchoOpts::default()
            },
            s.ready,
            s.stop,
        )?;
        Ok((stats, EngineReport::of_sqpoll(&mut rt)))
    }
}

#[cfg(feature = "dpdk")]
impl SqpollNic for ringline_dataplane::dpdk::DpdkPort {
    fn serve_sqpoll(self, _: SqpollServer<'_>) -> Result<(echo::EchoStats, EngineReport), String> {
        Err(
            "--sqpoll runs on the loopback wire (a DPDK port stays on the thread that opened it)"
                .into(),
        )
    }
}

#[cfg(feature = "dpdk")]
impl SqpollNic for ringline_dataplane::dpdk::DpdkQueue<'_> {
    fn serve_sqpoll(self, _: SqpollServer<'_>) -> Result<(echo::EchoStats, EngineReport), String> {
        Err(
            "--sqpoll runs on the loopback wire (a DPDK queue stays on the thread that opened it)"
                .into(),
        )
    }
}

/// The start of an engine thread: pinned to `core`, its CPU clock published
/// in `clock` for the load report, under SCHED_FIFO at `realtime` if given.
fn start_engine_thread(
    core: usize,
    clock: &std::sync::atomic::AtomicI32,
    realtime: Option<u8>,
) -> Result<(), String> {
    crate::sys::pin_to_cpu(core);
    // Written once by this thread (Release); read by the load run's `mark`
    // (Acquire).
    clock.store(crate::sys::thread_cpu_clock(), Ordering::Release);
    if let Some(p) = realtime {
        crate::sys::set_realtime(p)?;
    }
    Ok(())
}

/// Parses a CPU list: numbers and ranges joined by commas ("0,2,4-7").
pub fn parse_cores(s: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("invalid CPU list {s:?} (expected e.g. 0,1 or 0-3)");
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (
                    a.trim().parse().map_err(|_| bad())?,
                    b.trim().parse().map_err(|_| bad())?,
                );
                if a > b || b - a >= 1024 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    let online = crate::sys::online_cpus();
    if let Some(c) = out.iter().find(|&&c| c >= online) {
        return Err(format!(
            "CPU {c} in {s:?} is not online (CPUs 0-{} are)",
            online - 1
        ));
    }
    Ok(out)
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
    if !a.duration.is_finite() || a.duration <= 0.0 {
        return Err("--duration must be positive".into());
    }
    if a.connections < usize::from(a.engines) {
        return Err("--connections must be at least --engines".into());
    }
    if let Some(c) = &a.cores {
        parse_cores(c)?;
    }
    match &a.dpdk {
        None => loopback(a),
        Some(_) if a.engines > 10 => {
            Err("--engines with --dpdk: at most 10 (queues of a net_ring pair)".into())
        }
        Some(line) => dpdk_pair(a, line),
    }
}

/// The default: the two engines on the in-memory loopback wire.
fn loopback(a: &DemoArgs) -> Result<(), String> {
    let n = a.engines;
    let wire_cfg = WireConfig {
        // Each queue's port owns its buffers: the same total as one queue.
        frames_per_direction: (32768 / usize::from(n)).max(4096),
        ..WireConfig::default()
    };
    let (ports_a, ports_b) = LoopbackWire::multi(&wire_cfg, n, n);
    let makers = |ports: Vec<_>| {
        ports
            .into_iter()
            .map(|p| move || -> Result<_, String> { Ok(p) })
            .collect::<Vec<_>>()
    };
    run_group(
        a,
        "loopback",
        makers(ports_a),
        makers(ports_b),
        Some((wire_cfg.mac_a, wire_cfg.mac_b)),
    )
}

/// The two engines on a DPDK net_ring pair. The EAL is initialised here, on
/// the main thread; each engine thread attaches to it and creates its own
/// pool and port, which never leave that thread.
#[cfg(feature = "dpdk")]
fn dpdk_pair(a: &DemoArgs, line: &str) -> Result<(), String> {
    use ringline_dataplane::dpdk::{
        net_ring_pair, DpdkPort, Eal, EalShare, Mempool, MempoolConfig, PortConfig,
    };

    let args = crate::transport::with_default_eal_args(crate::transport::split_eal_args(line));
    let eal = Eal::init(&args).map_err(|e| e.to_string())?;
    if a.engines > 1 {
        let r = dpdk_multi(a, &eal);
        drop(eal);
        return r;
    }
    // Each direction's ring holds a few bursts per connection at most.
    let [server_port, client_port] =
        net_ring_pair(&eal, "demo", 16384).map_err(|e| e.to_string())?;
    let opener = |share: EalShare, port_id: u16, pool_name: &'static str| {
        move || -> Result<DpdkPort, String> {
            let eal = share.attach();
            let pool = Mempool::new(
                &eal,
                pool_name,
                &MempoolConfig {
                    mbufs: 32767,
                    // Engine threads are not EAL lcores: no per-lcore cache.
                    cache_size: 0,
                    ..MempoolConfig::default()
                },
            )
            .map_err(|e| e.to_string())?;
            DpdkPort::open(&eal, port_id, &pool, &PortConfig::default()).map_err(|e| e.to_string())
        }
    };
    let r = run_group(
        a,
        "dpdk:net_ring",
        vec![opener(eal.share(), server_port, "demo_server")],
        vec![opener(eal.share(), client_port, "demo_client")],
        // net_ring ports have no MAC of their own (all zero) and filter
        // nothing: the engines find each other with ARP.
        None,
    );
    // The engine threads have ended, so this is the last handle unless a
    // pool had to be kept for stray mbufs; the EAL is cleaned up here.
    drop(eal);
    r
}

/// `--engines N` on DPDK: a `net_ring` pair with N queue pairs a port
/// (TX queue i of one feeds RX queue i of the other), each port a
/// [`MultiPort`](ringline_dataplane::dpdk::MultiPort) opened here, on the
/// EAL's thread, whose queues the engine threads borrow. The net_ring ports
/// have no MAC: the engines find each other with ARP, which arrives on
/// whatever queue the sender used and is handed to queue 0.
#[cfg(feature = "dpdk")]
fn dpdk_multi(a: &DemoArgs, eal: &ringline_dataplane::dpdk::Eal) -> Result<(), String> {
    use ringline_dataplane::dpdk::{
        net_ring_pair_queues, Mempool, MempoolConfig, MultiPort, PortConfig, HANDOFF_SLOTS,
    };

    let n = a.engines;
    const SLOTS: u32 = 4096;
    let [server_port, client_port] =
        net_ring_pair_queues(eal, "demo", SLOTS, n).map_err(|e| e.to_string())?;
    let config = PortConfig::default();
    let q = u32::from(n);
    // A port's mbufs: its rings toward the peer full, every queue's
    // descriptors and batch, the hand-over queues, and room.
    let needed = q * SLOTS
        + (u32::from(config.rx_descriptors)
            + u32::from(config.tx_descriptors)
            + config.tx_batch as u32)
            * q
        + q * (q - 1) * HANDOFF_SLOTS as u32
        + 8192;
    let pool = |name: &str| {
        Mempool::new(
            eal,
            name,
            &MempoolConfig {
                mbufs: needed.next_power_of_two() - 1,
                // Engine threads are not EAL lcores: no per-lcore cache.
                cache_size: 0,
                ..MempoolConfig::default()
            },
        )
        .map_err(|e| e.to_string())
    };
    let (spool, cpool) = (pool("demo_server")?, pool("demo_client")?);
    let mut sport =
        MultiPort::open(eal, server_port, &spool, &config, n).map_err(|e| e.to_string())?;
    let mut cport =
        MultiPort::open(eal, client_port, &cpool, &config, n).map_err(|e| e.to_string())?;
    fn makers<'p>(
        qs: Vec<ringline_dataplane::dpdk::DpdkQueue<'p>>,
    ) -> Vec<impl FnOnce() -> Result<ringline_dataplane::dpdk::DpdkQueue<'p>, String> + Send> {
        qs.into_iter().map(|q| move || Ok(q)).collect()
    }
    let (sq, cq) = (sport.queues(), cport.queues());
    run_group(a, "dpdk:net_ring", makers(sq), makers(cq), None)
}

#[cfg(not(feature = "dpdk"))]
fn dpdk_pair(_a: &DemoArgs, _line: &str) -> Result<(), String> {
    Err(crate::transport::TransportError::NoDpdkSupport.to_string())
}

/// Runs the echo server's engines and the load generator's engines, one
/// thread each, each on the NIC its `make_*` closure creates on that thread
/// (one closure per engine: the queue pairs of one port, in queue order),
/// and prints the report. `macs` are the server's and client's MACs when the
/// engines should use static neighbours instead of ARP.
fn run_group<N, FS, FC>(
    a: &DemoArgs,
    transport: &str,
    make_servers: Vec<FS>,
    make_clients: Vec<FC>,
    macs: Option<(MacAddr, MacAddr)>,
) -> Result<(), String>
where
    N: SqpollNic,
    FS: FnOnce() -> Result<N, String> + Send,
    FC: FnOnce() -> Result<N, String> + Send,
{
    let n = make_servers.len();
    if a.sqpoll && n > 1 {
        return Err("--sqpoll runs one engine a side (drop --engines)".into());
    }
    let sqpoll = a.sqpoll.then(|| SqpollConfig {
        cpu: a.sq_thread_cpu,
        idle: Duration::from_millis(a.sq_thread_idle),
    });
    debug_assert_eq!(n, make_clients.len());
    let stop = Arc::new(AtomicBool::new(false));
    // SIGINT or SIGTERM end the load early; the server stops after it, so
    // the engines (and a DPDK EAL) shut down cleanly.
    let signalled = crate::netcmd::stop_flag(None)?;
    // One set of live counters per load thread (each writes its own).
    let lives: Vec<Arc<LiveCounters>> = (0..n).map(|_| Arc::default()).collect();
    // The connections, spread evenly over the load generator's engines.
    let share = |i: usize| a.connections / n + usize::from(i < a.connections % n);
    let engine =
        |ip: Ipv4Addr, peer: Ipv4Addr, peer_mac: Option<MacAddr>, conns: usize| EngineConfig {
            ip,
            static_neighbors: peer_mac.map(|m| vec![(peer, m)]).unwrap_or_default(),
            rx_buffer: 8 * 1024,
            tx_buffer: 8 * 1024,
            prealloc_connections: conns,
            max_connections: conns + 1024,
            busy_poll_us: a.busy_poll_us,
            // Both sides publish for `ringline stat` unless told not to.
            stat: !a.no_stat,
            ..EngineConfig::default()
        };
    let ring_cfg = RingConfig {
        sq_entries: 4096,
        cq_entries: Some(16384),
        ..RingConfig::default()
    };
    // The i-th engine thread's CPU: servers 0..n, then clients n..2n.
    let cores = match &a.cores {
        Some(c) => Some(parse_cores(c)?),
        None => None,
    };
    let online = crate::sys::online_cpus();
    let core_of = |t: usize| cores.as_ref().map_or(t % online, |c| c[t % c.len()]);
    let realtime = a.realtime;

    // Each server's flag: set once it listens (or failed to start); the load
    // starts once all are set.
    let ready: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    // Set by a server thread that could not start (before its `ready`).
    let failed = Arc::new(AtomicBool::new(false));
    // Every engine thread is scoped: the NICs may borrow from this frame
    // (the queues of a multi-queue DPDK port). An error before the servers
    // are told to stop sets `stop` first, or the scope would wait for them.
    let stop_all = stop.clone();
    let fail = |e: std::io::Error| {
        stop_all.store(true, Ordering::Relaxed);
        e.to_string()
    };
    type Served = (echo::EchoStats, EngineReport);
    type Loaded = (loadgen::LoadResult, EngineReport);
    let (srv_stats, cli) =
        std::thread::scope(|sc| -> Result<(Vec<Served>, Vec<Loaded>), String> {
            let mut servers = Vec::with_capacity(n);
            let members = engine_group(n as u16);
            for (i, (make, member)) in make_servers.into_iter().zip(members).enumerate() {
                // Each server engine may be sent up to every connection (a peer
                // that does not pick its ports by queue): size for all.
                let cfg = engine(SERVER_IP, CLIENT_IP, macs.map(|m| m.1), a.connections);
                let ring = ring_cfg.clone();
                let (stop, ready, failed) = (stop.clone(), ready.clone(), failed.clone());
                let live = lives[i].clone();
                let core = core_of(i);
                let sqpoll = sqpoll.clone();
                let t = std::thread::Builder::new()
                    .name(format!("ringline-server-{i}"))
                    .spawn_scoped(
                        sc,
                        move || -> Result<(echo::EchoStats, EngineReport), String> {
                            let r = (|| {
                                // Its CPU time over the matching load thread's measured
                                // phase.
                                start_engine_thread(core, &live.cpu_clocks[0], realtime)?;
                                let nic = make()?;
                                if let Some(sq) = sqpoll {
                                    return nic.serve_sqpoll(SqpollServer {
                                        ring: &ring,
                                        cfg,
                                        sq,
                                        ready: &ready[i],
                                        stop: &stop,
                                    });
                                }
                                let mut rt =
                                    open_in_group(nic, &ring, cfg, Clock::monotonic(), member)
                                        .map_err(|e| e.to_string())?;
                                let stats = echo::serve(
                                    &mut rt,
                                    SERVER_IP,
                                    &EchoOpts {
                                        port: 7,
                                        ..EchoOpts::default()
                                    },
                                    &ready[i],
                                    &stop,
                                )?;
                                Ok((stats, EngineReport::of(&rt)))
                            })();
                            // Unblock the clients even if this server failed to start,
                            // and tell them so (the flag is stored before `ready`, whose
                            // Release the clients' Acquire pairs with), so they do not
                            // wait out their connect timeout.
                            if r.is_err() {
                                failed.store(true, Ordering::Relaxed);
                            }
                            ready[i].store(true, Ordering::Release);
                            r
                        },
                    )
                    .map_err(fail)?;
                servers.push(t);
            }

            let mut clients = Vec::with_capacity(n);
            let members = engine_group(n as u16);
            for (i, (make, member)) in make_clients.into_iter().zip(members).enumerate() {
                let conns = share(i);
                let cfg = engine(CLIENT_IP, SERVER_IP, macs.map(|m| m.0), conns);
                let ring = ring_cfg.clone();
                let (ready, failed) = (ready.clone(), failed.clone());
                let live = lives[i].clone();
                let core = core_of(n + i);
                let load = LoadOpts {
                    server: SERVER_IP,
                    port: 7,
                    connections: conns,
                    duration: Duration::from_secs_f64(a.duration),
                    size: a.size,
                    connect_timeout: Duration::from_secs(60),
                    stop: Some(signalled.clone()),
                };
                let t = std::thread::Builder::new()
                    .name(format!("ringline-client-{i}"))
                    .spawn_scoped(
                        sc,
                        move || -> Result<(loadgen::LoadResult, EngineReport), String> {
                            start_engine_thread(core, &live.cpu_clocks[1], realtime)?;
                            let nic = make()?;
                            let mut rt = open_in_group(nic, &ring, cfg, Clock::monotonic(), member)
                                .map_err(|e| e.to_string())?;
                            // Start only once every server listens (their Release
                            // stores of `ready` pair with these Acquire loads).
                            while !ready.iter().all(|r| r.load(Ordering::Acquire)) {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            if failed.load(Ordering::Relaxed) {
                                return Err("the server did not start".into());
                            }
                            let res = loadgen::run(&mut rt, &load, &live);
                            Ok((res, EngineReport::of(&rt)))
                        },
                    )
                    .map_err(fail)?;
                clients.push(t);
            }

            let live_refs: Vec<&LiveCounters> = lives.iter().map(|l| &**l).collect();
            report::show_progress_all(
                &live_refs,
                a.connections,
                a.json,
                Duration::from_secs_f64(a.duration + 120.0),
                || clients.iter().all(|c| c.is_finished()),
            );
            let results: Vec<Result<(loadgen::LoadResult, EngineReport), String>> = clients
                .into_iter()
                .map(|c| {
                    c.join()
                        .map_err(|_| "client thread panicked".to_string())
                        .and_then(|r| r)
                })
                .collect();
            // Stop the servers whatever happened to the clients.
            stop.store(true, Ordering::Relaxed);
            let mut srv_stats = Vec::with_capacity(n);
            for s in servers {
                srv_stats.push(
                    s.join()
                        .map_err(|_| "server thread panicked".to_string())??,
                );
            }
            let mut cli = Vec::with_capacity(n);
            for r in results {
                cli.push(r?);
            }
            Ok((srv_stats, cli))
        })?;

    let mut per_engine = Vec::with_capacity(2 * n);
    for (i, (st, _)) in srv_stats.iter().enumerate() {
        per_engine.push(EngineLoad {
            role: "server",
            engine: i,
            core: Some(core_of(i)),
            connections: st.accepted,
            requests: st.bytes / a.size as u64,
            cpu_s: lives[i].cpu_ns()[0] as f64 / 1e9,
        });
    }
    for (i, (res, _)) in cli.iter().enumerate() {
        per_engine.push(EngineLoad {
            role: "client",
            engine: i,
            core: Some(core_of(n + i)),
            connections: res.connected as u64,
            requests: res.requests,
            cpu_s: lives[i].cpu_ns()[1] as f64 / 1e9,
        });
    }
    let srv_errors: u64 = srv_stats.iter().map(|(s, _)| s.errors).sum();
    let accepted: u64 = srv_stats.iter().map(|(s, _)| s.accepted).sum();
    let mut engines = Engines::default();
    engines.add_role("server", srv_stats.into_iter().map(|(_, e)| e).collect());
    let mut results = Vec::with_capacity(n);
    let mut cli_engines = Vec::with_capacity(n);
    for (r, e) in cli {
        results.push(r);
        cli_engines.push(e);
    }
    engines.add_role("client", cli_engines);
    let res = loadgen::LoadResult::merge(results);
    let mut report = LoadReport::new(transport.to_owned(), &res, srv_errors, engines);
    report.per_engine = per_engine;
    report.print(
        &format!(
            "ringline demo: echo over {} ({} B requests, {} engine{} a side{})",
            if transport == "loopback" {
                "the loopback wire"
            } else {
                "a DPDK net_ring pair"
            },
            a.size,
            n,
            if n == 1 { "" } else { "s" },
            if a.sqpoll {
                ", server engine in SQPOLL mode"
            } else {
                ""
            }
        ),
        res.connect_s,
        Some(accepted),
        a.json,
    )?;
    if report.errors > 0 {
        return Err(format!(
            "{} errors: {}",
            report.errors,
            report.causes_line()
        ));
    }
    Ok(())
}
