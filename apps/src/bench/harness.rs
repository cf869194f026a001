//! Running one server and one client on two pinned threads (server on core
//! 0, client on core 1) for every backend, with a progress bar, and the ring
//! each backend's threads drive.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use ringline::{open, Clock, EngineConfig};
use ringline_dataplane::{LoopbackPort, LoopbackWire, WireConfig};
use ringline_ring::ring::RingConfig;

use crate::echo::{self, EchoOpts, EchoStats};
use crate::loadgen::{
    self, LiveCounters, LoadOpts, LoadResult, Shape, StormOpts, StormResult, StreamOpts,
    StreamResult,
};
use crate::report::{EngineReport, Engines};
use crate::sys::{pin_to_cpu, thread_cpu_clock, Uring};

use super::kernel_uring::KernelRing;

/// Core of the server thread.
pub const SERVER_CORE: usize = 0;
/// Core of the client thread.
pub const CLIENT_CORE: usize = 1;

/// ringline addresses (on the in-memory wire only).
pub const RL_SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The client engine's address.
pub const RL_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Kernel backends: everything on 127.0.0.1.
pub const KERNEL_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// SCHED_FIFO priority of the bench threads, 0 for none. Written once by
/// [`set_realtime`] before any bench thread starts, read by those threads
/// (Relaxed: spawning the thread orders the write before the read).
static REALTIME: AtomicU8 = AtomicU8::new(0);

/// Makes every bench thread started from now on run under SCHED_FIFO at
/// `priority`; fails at once (on a throwaway thread) if that is not permitted.
pub fn set_realtime(priority: u8) -> Result<(), String> {
    std::thread::spawn(move || crate::sys::set_realtime(priority))
        .join()
        .map_err(|_| "realtime probe thread panicked".to_string())??;
    REALTIME.store(priority, Ordering::Relaxed);
    Ok(())
}

/// Pins the calling bench thread to `core` and, if [`set_realtime`] asked
/// for it, puts it under SCHED_FIFO.
pub fn bench_thread(core: usize) {
    pin_to_cpu(core);
    let p = REALTIME.load(Ordering::Relaxed);
    if p > 0 {
        // Checked by `set_realtime`; a failure here leaves the thread as it was.
        let _ = crate::sys::set_realtime(p);
    }
}

/// What the two threads share.
#[derive(Clone, Default)]
pub struct Ctx {
    /// Set by the server once it listens (Release; the client Acquires).
    pub ready: Arc<AtomicBool>,
    /// Set by the harness once the client is done.
    pub stop: Arc<AtomicBool>,
    /// The client's live counters and the CPU clocks of both threads.
    pub live: Arc<LiveCounters>,
}

/// Runs `server` on [`SERVER_CORE`] and `client` on [`CLIENT_CORE`]; the
/// client starts once the server is ready and the server stops once the
/// client returns. `status` renders the progress line. Returns both results
/// and the CPU ns each thread used in the client's measured phase.
pub fn run_pair<SO, CO>(
    title: &str,
    status: impl Fn(&LiveCounters) -> String,
    server: impl FnOnce(&Ctx) -> Result<SO, String> + Send + 'static,
    client: impl FnOnce(&Ctx) -> Result<CO, String> + Send + 'static,
) -> Result<(SO, CO, [u64; 2]), String>
where
    SO: Send + 'static,
    CO: Send + 'static,
{
    let ctx = Ctx::default();
    let sctx = ctx.clone();
    let server = std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || {
            bench_thread(SERVER_CORE);
            sctx.live.cpu_clocks[0].store(thread_cpu_clock(), Ordering::Release);
            let r = server(&sctx);
            // Unblock the client even if the server failed to start.
            sctx.ready.store(true, Ordering::Release);
            r
        })
        .map_err(|e| e.to_string())?;
    let cctx = ctx.clone();
    let client = std::thread::Builder::new()
        .name("bench-client".into())
        .spawn(move || {
            bench_thread(CLIENT_CORE);
            cctx.live.cpu_clocks[1].store(thread_cpu_clock(), Ordering::Release);
            while !cctx.ready.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            client(&cctx)
        })
        .map_err(|e| e.to_string())?;

    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {prefix}: {msg}").expect("template"),
    );
    bar.set_prefix(title.to_string());
    let t0 = Instant::now();
    while !client.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        bar.set_message(status(&ctx.live));
        bar.tick();
        if server.is_finished() && !client.is_finished() && t0.elapsed() > Duration::from_secs(600)
        {
            break;
        }
    }
    bar.finish_and_clear();
    let c = client
        .join()
        .map_err(|_| "client thread panicked".to_string());
    ctx.stop.store(true, Ordering::Relaxed);
    let s = server
        .join()
        .map_err(|_| "server thread panicked".to_string())?;
    let c = c?;
    Ok((s?, c?, ctx.live.cpu_ns()))
}

/// The usual progress line of an echo-style load.
pub fn echo_status(l: &LiveCounters) -> String {
    if l.measuring.load(Ordering::Relaxed) == 0 {
        format!("connecting {}", l.connected.load(Ordering::Relaxed))
    } else {
        format!(
            "{} round trips, {} errors",
            l.requests.load(Ordering::Relaxed),
            l.errors.load(Ordering::Relaxed)
        )
    }
}

/// A ring for one side of a ringline or kernel-uring pair, built inside the
/// thread that drives it.
pub enum RingSpec {
    /// ringline: an inline engine on one end of the loopback wire.
    Ringline(Box<RinglineSide>),
    /// ringline with the engine on its own thread (SQPOLL), pinned to the
    /// CPU given.
    RinglineSqpoll(Box<RinglineSide>, usize),
    /// The kernel's io_uring.
    Kernel {
        /// SQ entries.
        sq: u32,
        /// CQ entries.
        cq: u32,
    },
}

/// One side of a ringline pair.
pub struct RinglineSide {
    /// The wire port.
    pub nic: LoopbackPort,
    /// Engine configuration.
    pub engine: EngineConfig,
    /// Ring sizes.
    pub ring: RingConfig,
}

/// Work that runs on any [`Uring`] (generic closures do not exist).
pub trait RingJob: Send + 'static {
    /// The result.
    type Out: Send + 'static;
    /// Runs on `rt`.
    fn run<R: Uring>(self, rt: &mut R) -> Result<Self::Out, String>;
}

impl RingSpec {
    /// Sets a ringline spec's `busy_poll_us` (nothing for the kernel).
    pub fn set_busy_poll_us(&mut self, us: u64) {
        match self {
            RingSpec::Ringline(side) | RingSpec::RinglineSqpoll(side, _) => {
                side.engine.busy_poll_us = us;
            }
            RingSpec::Kernel { .. } => {}
        }
    }

    /// This spec with its engine on its own thread pinned to `cpu` (SQPOLL),
    /// if it is a ringline spec.
    pub fn sqpoll(self, cpu: usize) -> RingSpec {
        match self {
            RingSpec::Ringline(side) => RingSpec::RinglineSqpoll(side, cpu),
            other => other,
        }
    }

    /// Builds the ring and runs `job` on it; with the engine's counters at
    /// the end for a ringline ring.
    pub fn run<J: RingJob>(self, job: J) -> Result<(J::Out, Option<EngineReport>), String> {
        match self {
            RingSpec::Ringline(side) => {
                let RinglineSide { nic, engine, ring } = *side;
                let mut rt =
                    open(nic, &ring, engine, Clock::monotonic()).map_err(|e| e.to_string())?;
                let out = job.run(&mut rt)?;
                Ok((out, Some(EngineReport::of(&rt))))
            }
            RingSpec::RinglineSqpoll(side, cpu) => {
                let RinglineSide { nic, engine, ring } = *side;
                let sq = ringline::SqpollConfig {
                    cpu: Some(cpu),
                    ..ringline::SqpollConfig::default()
                };
                let mut rt = ringline::open_sqpoll(nic, &ring, engine, &sq, Clock::monotonic())
                    .map_err(|e| e.to_string())?;
                let out = job.run(&mut rt)?;
                Ok((out, Some(EngineReport::of_sqpoll(&mut rt))))
            }
            RingSpec::Kernel { sq, cq } => {
                let mut rt = KernelRing::new(sq, cq)?;
                Ok((job.run(&mut rt)?, None))
            }
        }
    }
}

/// Sizes of a ringline pair.
#[derive(Clone, Debug)]
pub struct RinglineShape {
    /// Connections each engine must hold at once.
    pub connections: usize,
    /// Per-connection socket buffers, bytes.
    pub socket_buffer: usize,
    /// Wire MTU.
    pub mtu: usize,
    /// Frame buffers per wire direction.
    pub frames: usize,
}

impl RinglineShape {
    /// An echo-style pair for `connections` connections: 4 KiB socket
    /// buffers, 1500-byte MTU, a wire with room for a frame per connection.
    pub fn echo(connections: usize) -> Self {
        RinglineShape {
            connections,
            socket_buffer: 4096,
            mtu: 1500,
            frames: connections + 16384,
        }
    }
}

/// The two sides of a ringline pair joined by a fresh loopback wire.
pub fn ringline_pair(shape: &RinglineShape) -> (RingSpec, RingSpec) {
    let wire = WireConfig {
        mtu: shape.mtu,
        frames_per_direction: shape.frames,
        ..WireConfig::default()
    };
    let (a, b) = LoopbackWire::pair(&wire);
    let engine = |ip, peer, peer_mac| EngineConfig {
        ip,
        static_neighbors: vec![(peer, peer_mac)],
        rx_buffer: shape.socket_buffer,
        tx_buffer: shape.socket_buffer,
        prealloc_connections: shape.connections,
        max_connections: shape.connections + 1024,
        ..EngineConfig::default()
    };
    let ring = RingConfig {
        sq_entries: 4096,
        cq_entries: Some(16384),
        ..RingConfig::default()
    };
    (
        RingSpec::Ringline(Box::new(RinglineSide {
            nic: a,
            engine: engine(RL_SERVER_IP, RL_CLIENT_IP, wire.mac_b),
            ring: ring.clone(),
        })),
        RingSpec::Ringline(Box::new(RinglineSide {
            nic: b,
            engine: engine(RL_CLIENT_IP, RL_SERVER_IP, wire.mac_a),
            ring,
        })),
    )
}

/// The two sides of a kernel-uring pair.
pub fn kernel_pair() -> (RingSpec, RingSpec) {
    (
        RingSpec::Kernel {
            sq: 4096,
            cq: 16384,
        },
        RingSpec::Kernel {
            sq: 4096,
            cq: 16384,
        },
    )
}

/// The ring-backed shape of every scenario: `echo::serve` on the `server`
/// ring at `ip`, against the client job that `job` builds from the pair's
/// context on the `client` ring (see [`run_pair`]). Also returns the
/// engines' counters (none for the kernel).
pub fn serve_pair<J: RingJob>(
    title: &str,
    status: impl Fn(&LiveCounters) -> String,
    (server, client): (RingSpec, RingSpec),
    ip: Ipv4Addr,
    opts: EchoOpts,
    job: impl FnOnce(Ctx) -> J + Send + 'static,
) -> Result<(EchoStats, J::Out, [u64; 2], Engines), String> {
    let ((srv, srv_engine), (out, cli_engine), cpu) = run_pair(
        title,
        status,
        move |ctx| {
            server.run(ServeJob {
                ip,
                opts,
                ctx: ctx.clone(),
            })
        },
        move |ctx| client.run(job(ctx.clone())),
    )?;
    let engines = [
        ("server".to_owned(), srv_engine),
        ("client".to_owned(), cli_engine),
    ]
    .into_iter()
    .filter_map(|(role, e)| Some((role, e?)))
    .collect();
    Ok((srv, out, cpu, Engines(engines)))
}

/// `echo::serve` as a job.
pub struct ServeJob {
    /// Listen address.
    pub ip: Ipv4Addr,
    /// Server options.
    pub opts: EchoOpts,
    /// The pair's context.
    pub ctx: Ctx,
}

impl RingJob for ServeJob {
    type Out = EchoStats;
    fn run<R: Uring>(self, rt: &mut R) -> Result<EchoStats, String> {
        echo::serve(rt, self.ip, &self.opts, &self.ctx.ready, &self.ctx.stop)
    }
}

/// `loadgen::run_shaped` as a job.
pub struct LoadJob {
    /// Load options.
    pub opts: LoadOpts,
    /// Ports and sparseness.
    pub shape: Shape,
    /// The pair's context.
    pub ctx: Ctx,
}

impl RingJob for LoadJob {
    type Out = LoadResult;
    fn run<R: Uring>(self, rt: &mut R) -> Result<LoadResult, String> {
        Ok(loadgen::run_shaped(
            rt,
            &self.opts,
            &self.shape,
            &self.ctx.live,
        ))
    }
}

/// `loadgen::storm` as a job.
pub struct StormJob {
    /// Storm options.
    pub opts: StormOpts,
    /// The pair's context.
    pub ctx: Ctx,
}

impl RingJob for StormJob {
    type Out = StormResult;
    fn run<R: Uring>(self, rt: &mut R) -> Result<StormResult, String> {
        Ok(loadgen::storm(rt, &self.opts, &self.ctx.live))
    }
}

/// `loadgen::stream` as a job.
pub struct StreamJob {
    /// Stream options.
    pub opts: StreamOpts,
    /// The pair's context.
    pub ctx: Ctx,
}

impl RingJob for StreamJob {
    type Out = StreamResult;
    fn run<R: Uring>(self, rt: &mut R) -> Result<StreamResult, String> {
        Ok(loadgen::stream(rt, &self.opts, &self.ctx.live))
    }
}
