//! `ringline demo`: the echo server and the load generator on two engines,
//! two threads, one wire: the in-memory loopback wire by default, or with
//! `--dpdk "<EAL args>"` a pair of DPDK `net_ring` ports joined back to back
//! inside the process (the same two engines, over mbufs and the ethdev API).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ringline::{open, open_sqpoll, Clock, EngineConfig, SqpollConfig};
use ringline_dataplane::{LoopbackPort, LoopbackWire, MacAddr, Nic, WireConfig};
use ringline_ring::ring::RingConfig;

use crate::echo::{self, EchoOpts};
use crate::loadgen::{self, LiveCounters, LoadOpts};
use crate::report::{self, EngineReport, Engines, LoadReport};

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
    match &a.dpdk {
        None => loopback(a),
        Some(line) => dpdk_pair(a, line),
    }
}

/// The default: the two engines on the in-memory loopback wire.
fn loopback(a: &DemoArgs) -> Result<(), String> {
    let wire_cfg = WireConfig {
        frames_per_direction: 32768,
        ..WireConfig::default()
    };
    let (port_a, port_b) = LoopbackWire::pair(&wire_cfg);
    run_pair(
        a,
        "loopback",
        move || Ok(port_a),
        move || Ok(port_b),
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
    let r = run_pair(
        a,
        "dpdk:net_ring",
        opener(eal.share(), server_port, "demo_server"),
        opener(eal.share(), client_port, "demo_client"),
        // net_ring ports have no MAC of their own (all zero) and filter
        // nothing: the engines find each other with ARP.
        None,
    );
    // The engine threads have ended, so this is the last handle unless a
    // pool had to be kept for stray mbufs; the EAL is cleaned up here.
    drop(eal);
    r
}

#[cfg(not(feature = "dpdk"))]
fn dpdk_pair(_a: &DemoArgs, _line: &str) -> Result<(), String> {
    Err(crate::transport::TransportError::NoDpdkSupport.to_string())
}

/// Runs the echo server and the load generator on two threads, each on the
/// NIC its `make_*` closure creates on that thread, and prints the report.
/// `macs` are the server's and client's MACs when the engines should use
/// static neighbours instead of ARP.
fn run_pair<N, FS, FC>(
    a: &DemoArgs,
    transport: &str,
    make_server: FS,
    make_client: FC,
    macs: Option<(MacAddr, MacAddr)>,
) -> Result<(), String>
where
    N: SqpollNic,
    FS: FnOnce() -> Result<N, String> + Send + 'static,
    FC: FnOnce() -> Result<N, String> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    // SIGINT or SIGTERM end the load early; the server stops after it, so
    // the engines (and a DPDK EAL) shut down cleanly.
    let signalled = crate::netcmd::stop_flag(None)?;
    let live = Arc::new(LiveCounters::default());
    let conns = a.connections;
    let engine = |ip: Ipv4Addr, peer: Ipv4Addr, peer_mac: Option<MacAddr>| EngineConfig {
        ip,
        static_neighbors: peer_mac.map(|m| vec![(peer, m)]).unwrap_or_default(),
        rx_buffer: 8 * 1024,
        tx_buffer: 8 * 1024,
        prealloc_connections: conns,
        max_connections: conns + 1024,
        busy_poll_us: a.busy_poll_us,
        ..EngineConfig::default()
    };
    let sqpoll = a.sqpoll.then(|| SqpollConfig {
        cpu: a.sq_thread_cpu,
        idle: Duration::from_millis(a.sq_thread_idle),
    });
    let ring_cfg = RingConfig {
        sq_entries: 4096,
        cq_entries: Some(16384),
        ..RingConfig::default()
    };

    let realtime = a.realtime;
    let srv_cfg = engine(SERVER_IP, CLIENT_IP, macs.map(|m| m.1));
    let srv_ring = ring_cfg.clone();
    let srv_stop = stop.clone();
    let ready = Arc::new(AtomicBool::new(false));
    let srv_ready = ready.clone();
    // Set by the server thread if it could not start (before `ready`).
    let failed = Arc::new(AtomicBool::new(false));
    let srv_failed = failed.clone();
    let server = std::thread::Builder::new()
        .name("ringline-server".into())
        .spawn(move || -> Result<(echo::EchoStats, EngineReport), String> {
            crate::sys::pin_to_cpu(0);
            let r = (|| {
                if let Some(p) = realtime {
                    crate::sys::set_realtime(p)?;
                }
                let nic = make_server()?;
                if let Some(sq) = sqpoll {
                    return nic.serve_sqpoll(SqpollServer {
                        ring: &srv_ring,
                        cfg: srv_cfg,
                        sq,
                        ready: &srv_ready,
                        stop: &srv_stop,
                    });
                }
                let mut rt =
                    open(nic, &srv_ring, srv_cfg, Clock::monotonic()).map_err(|e| e.to_string())?;
                let stats = echo::serve(
                    &mut rt,
                    SERVER_IP,
                    &EchoOpts {
                        port: 7,
                        ..EchoOpts::default()
                    },
                    &srv_ready,
                    &srv_stop,
                )?;
                Ok((stats, EngineReport::of(&rt)))
            })();
            // Unblock the client even if the server failed to start, and tell
            // it so (the flag is stored before `ready`, whose Release the
            // client's Acquire pairs with), so it does not wait out its connect
            // timeout.
            if r.is_err() {
                srv_failed.store(true, Ordering::Relaxed);
            }
            srv_ready.store(true, Ordering::Release);
            r
        })
        .map_err(|e| e.to_string())?;

    let cli_cfg = engine(CLIENT_IP, SERVER_IP, macs.map(|m| m.0));
    let cli_live = live.clone();
    let cli_ready = ready.clone();
    let cli_failed = failed;
    let load = LoadOpts {
        server: SERVER_IP,
        port: 7,
        connections: a.connections,
        duration: Duration::from_secs_f64(a.duration),
        size: a.size,
        connect_timeout: Duration::from_secs(60),
        stop: Some(signalled),
    };
    let client = std::thread::Builder::new()
        .name("ringline-client".into())
        .spawn(
            move || -> Result<(loadgen::LoadResult, EngineReport), String> {
                crate::sys::pin_to_cpu(1);
                if let Some(p) = realtime {
                    crate::sys::set_realtime(p)?;
                }
                let nic = make_client()?;
                let mut rt =
                    open(nic, &ring_cfg, cli_cfg, Clock::monotonic()).map_err(|e| e.to_string())?;
                // Start only once the server listens (its Release store pairs with this Acquire).
                while !cli_ready.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if cli_failed.load(Ordering::Relaxed) {
                    return Err("the server did not start".into());
                }
                let res = loadgen::run(&mut rt, &load, &cli_live);
                Ok((res, EngineReport::of(&rt)))
            },
        )
        .map_err(|e| e.to_string())?;

    report::show_progress(
        &live,
        a.connections,
        a.json,
        Duration::from_secs_f64(a.duration + 120.0),
        || client.is_finished(),
    );
    let res = client
        .join()
        .map_err(|_| "client thread panicked".to_string());
    // Stop the server whatever happened to the client.
    stop.store(true, Ordering::Relaxed);
    let (srv, srv_engine) = server
        .join()
        .map_err(|_| "server thread panicked".to_string())??;
    let (res, cli_engine) = res??;

    let engines = Engines(vec![("server", srv_engine), ("client", cli_engine)]);
    let report = LoadReport::new(transport.to_owned(), &res, srv.errors, engines);
    report.print(
        &format!(
            "ringline demo: echo over {} ({} B requests{})",
            if transport == "loopback" {
                "the loopback wire"
            } else {
                "a DPDK net_ring pair"
            },
            a.size,
            if a.sqpoll {
                ", server engine in SQPOLL mode"
            } else {
                ""
            }
        ),
        res.connect_s,
        Some(srv.accepted),
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
