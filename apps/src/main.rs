//! The `ringline` command.
#![deny(unsafe_code)]

mod bench;
mod bulk;
mod demo;
mod doctor;
mod echo;
mod http;
mod kecho;
mod loadgen;
mod multicmd;
mod netcmd;
mod relay;
mod report;
mod serve;
mod stat;
mod sys;
mod transport;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ringline",
    version,
    about = "A kernel-bypass TCP stack driven through an io_uring-compatible ring"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Echo server and load generator, each on its own engine and thread,
    /// joined by the in-memory loopback wire (no NIC, no DPDK), or with
    /// --dpdk by a pair of DPDK net_ring ports.
    Demo(demo::DemoArgs),
    /// One scenario on ringline and on the kernel (io_uring, epoll), same
    /// client logic and core pinning; a table, JSON and an SVG plot.
    Bench(bench::BenchArgs),
    /// Echo server on one engine and a DPDK port (--dpdk or --config), until SIGINT/SIGTERM.
    Echo(netcmd::EchoArgs),
    /// Minimal HTTP/1.1 server (GET / returns a fixed body, keep-alive) on a DPDK port.
    Http(netcmd::HttpArgs),
    /// Echo load generator on one engine and a DPDK port, against any echo server.
    Loadgen(netcmd::LoadgenArgs),
    /// Checks hugepages, DPDK, IOMMU/vfio, bound NICs and permissions; prints fixes (reports only).
    Doctor(doctor::DoctorArgs),
    /// Impairing Ethernet bridge between two Linux interfaces (AF_PACKET):
    /// loss, delay, reordering, duplication, corruption, per direction, seeded.
    Relay(relay::RelayArgs),
    /// Bulk-transfer client on the kernel's TCP: sends a pattern, half-closes,
    /// checks every byte echoed back; throughput and longest stall.
    Bulk(bulk::BulkArgs),
    /// Echo server on the kernel's TCP (std::net, a thread per connection),
    /// the Linux side of side-by-side measurements.
    KernelEcho(kecho::KernelEchoArgs),
    /// Reads the counters of running engines (any ringline command, or an
    /// application with `EngineConfig::stat`) without stopping them: lists
    /// them, or prints one's counters, connections (--conns), rates
    /// (--watch), JSON or Prometheus text.
    Stat(stat::StatArgs),
    /// Daemon that owns the NIC (loopback wire, or DPDK with --dpdk/--config)
    /// and runs the engines of applications in other processes, which attach
    /// by name over a unix socket and drive rings in shared memory.
    Serve(serve::ServeArgs),
    /// Echo server attached to a running `ringline serve`.
    ServeEcho(serve::ServeEchoArgs),
    /// Echo load generator attached to a running `ringline serve`; checks
    /// every echo byte for byte; JSON line with req/s, p50, p99, errors.
    ServeLoad(serve::ServeLoadArgs),
    /// The same echo linked in-process vs attached to `ringline serve`:
    /// req/s and latency at each connection count.
    ServeBench(serve::ServeBenchArgs),
    /// A hostile application for tests: attaches to `ringline serve` and
    /// submits requests naming memory outside its region; each must fail
    /// with -EFAULT and touch nothing.
    #[command(hide = true)]
    ServeFault(serve::ServeFaultArgs),
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Demo(a) => demo::run(&a),
        Cmd::Bench(a) => bench::run(&a),
        Cmd::Echo(a) => netcmd::echo(&a),
        Cmd::Http(a) => netcmd::http(&a),
        Cmd::Loadgen(a) => netcmd::loadgen(&a),
        Cmd::Doctor(a) => doctor::run(&a),
        Cmd::Relay(a) => relay::run(&a),
        Cmd::Bulk(a) => bulk::run(&a),
        Cmd::KernelEcho(a) => kecho::run(&a),
        Cmd::Stat(a) => stat::run(&a),
        Cmd::Serve(a) => serve::serve(&a),
        Cmd::ServeEcho(a) => serve::echo(&a),
        Cmd::ServeLoad(a) => serve::serve_load(&a),
        Cmd::ServeBench(a) => serve::serve_bench(&a),
        Cmd::ServeFault(a) => serve::serve_fault(&a),
    };
    if let Err(e) = r {
        eprintln!("ringline: {e}");
        std::process::exit(1);
    }
}
