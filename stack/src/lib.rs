//! # ringline
//!
//! A kernel-bypass TCP stack driven through an io_uring-compatible ring.
//!
//! An application fills io_uring SQEs (same 64-byte layout, opcode numbers and
//! flags as Linux) in shared memory; the engine consumes them, runs TCP over
//! smoltcp on a NIC (the in-memory loopback wire, or DPDK), and posts CQEs with
//! the kernel's semantics: multishot accept and recv with provided buffer rings,
//! multishot poll, CQ overflow without loss or reordering.
//!
//! ```no_run
//! use ringline::{open, Clock, EngineConfig};
//! use ringline_dataplane::{LoopbackWire, WireConfig};
//! use ringline_ring::ring::RingConfig;
//!
//! let (a, _b) = LoopbackWire::pair(&WireConfig::default());
//! let mut ring = open(a, &RingConfig::default(), EngineConfig::default(), Clock::monotonic()).unwrap();
//! let nop = ringline_ring::opcode::Nop::new().user_data(7).build();
//! ring.push_safe(&nop).unwrap(); // a NOP names no memory: no `unsafe`
//! ring.submit_and_wait(1).unwrap();
//! assert_eq!(ring.wait_cqe().unwrap().user_data, 7);
//! ```
//!
//! Requests that name application memory (a receive buffer, a `sockaddr`, a
//! timespec) are pushed with the `unsafe` [`Ring::push`], whose contract is
//! io_uring's: the memory outlives the engine's use of it. Safe code cannot
//! make the engine read or write memory it does not own; see
//! `ringline_ring::app`.
//!
//! # The safe layer: an echo server
//!
//! Most programs should use [`io`] (`ringline_ring::io`, re-exported) instead of
//! raw SQEs: requests own their memory until their final completion, received
//! data comes in [`io::PoolBuf`] handles that go back to the buffer ring when
//! dropped, completions carry the program's own token type, multishot requests
//! are re-armed by the layer, and [`io::Io::split`] reads completions while
//! pushing. No `unsafe` anywhere. An echo server and its client, on the two ends
//! of the loopback wire:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! #![forbid(unsafe_code)]
//! use std::net::{Ipv4Addr, SocketAddrV4};
//! use std::time::{Duration, Instant};
//!
//! use ringline::io::{op, Io};
//! use ringline::{open, Clock, EngineConfig};
//! use ringline_dataplane::{LoopbackWire, WireConfig};
//! use ringline_ring::opcode;
//! use ringline_ring::ring::RingConfig;
//!
//! /// What each request was for: the token every completion carries.
//! #[derive(Clone, Copy, Debug)]
//! enum Ev {
//!     Setup,
//!     Accept,
//!     Recv(i32),
//!     Sent,
//! }
//!
//! let wire = WireConfig::default();
//! let (a, b) = LoopbackWire::pair(&wire);
//! let (server_ip, client_ip) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
//! let engine = |ip, peer, peer_mac| EngineConfig {
//!     ip,
//!     static_neighbors: vec![(peer, peer_mac)],
//!     ..EngineConfig::default()
//! };
//! let (server_cfg, client_cfg) = (
//!     engine(server_ip, client_ip, wire.mac_b),
//!     engine(client_ip, server_ip, wire.mac_a),
//! );
//! let second = Duration::from_secs(1);
//! let tcp = || opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).build();
//! let (listening, wait_listening) = std::sync::mpsc::channel();
//!
//! let server = std::thread::spawn(move || -> Result<usize, ringline_ring::Errno> {
//!     let rt = open(a, &RingConfig::default(), server_cfg, Clock::monotonic()).unwrap();
//!     let mut io = Io::new(rt);
//!     let pool = io.register_pool(0, 64, 2048)?; // 64 provided buffers of 2 KiB
//!     let lfd = io.call(tcp(), Ev::Setup, second)?.result()? as i32;
//!     io.call(op::Bind::new(lfd, SocketAddrV4::new(server_ip, 7)), Ev::Setup, second)?.result()?;
//!     io.call(opcode::Listen::new(lfd, 16).build(), Ev::Setup, second)?.result()?;
//!     listening.send(()).unwrap();
//!     io.push(opcode::AcceptMulti::new(lfd).build(), Ev::Accept).unwrap();
//!     let (mut echoed, mut done) = (0, false);
//!     let deadline = Instant::now() + 10 * second;
//!     while !done && Instant::now() < deadline {
//!         io.wait(1, Duration::from_millis(10))?;
//!         let (mut submit, completions) = io.split();
//!         for mut c in completions {
//!             match c.data() {
//!                 Ev::Accept => {
//!                     let fd = c.result()? as i32;
//!                     let recv = opcode::RecvMulti::new(fd, pool.bgid()).build();
//!                     submit.push(recv, Ev::Recv(fd)).unwrap();
//!                 }
//!                 // Data: send the very buffer back. It belongs to the SEND until
//!                 // its completion, and returns to the pool when that is dropped.
//!                 Ev::Recv(fd) => match c.take_buf() {
//!                     Some(data) => {
//!                         echoed += data.len();
//!                         submit.push(op::Send::new(fd, data), Ev::Sent).unwrap();
//!                     }
//!                     None if !c.more() => {
//!                         // EOF (or an error): the stream ended.
//!                         submit.push_detached(opcode::Close::new(fd).build());
//!                         done = true;
//!                     }
//!                     None => {}
//!                 },
//!                 Ev::Sent | Ev::Setup => {}
//!             }
//!         }
//!     }
//!     Ok(echoed)
//! });
//!
//! let rt = open(b, &RingConfig::default(), client_cfg, Clock::monotonic())?;
//! let mut io = Io::new(rt);
//! let fd = io.call(tcp(), (), second)?.result()? as i32;
//! wait_listening.recv_timeout(10 * second)?;
//! let server_addr = SocketAddrV4::new(server_ip, 7);
//! io.call(op::Connect::new(fd, server_addr), (), second)?.result()?;
//! io.call(op::Send::new(fd, b"hello, ring".to_vec()), (), second)?.result()?;
//! let mut reply = io.call(op::Recv::new(fd, vec![0; 64]), (), second)?;
//! let n = reply.result()? as usize;
//! assert_eq!(&reply.take_buf().unwrap()[..n], b"hello, ring");
//! io.call(opcode::Close::new(fd).build(), (), second)?;
//! assert_eq!(server.join().unwrap()?, 11);
//! # Ok(())
//! # }
//! ```
//!
//! # Statistics
//!
//! The engine's counters (connections, segments, drops, CQ backlog, ...) are
//! read with [`Inline::stats`] (`ring.driver().stats()`, an [`EngineStats`]),
//! the ring's with [`Inline::ring_stats`]; an SQPOLL engine's with
//! [`SqpollRuntime`]'s snapshot. The safe layer's own counters (re-arms,
//! stale completions, leaked requests) are [`io::Io::stats`].
//!
//! Sockets are ringline's own small integers, not kernel file descriptors.
//!
//! Operators read a running engine's counters and connections from another
//! process through [`statpage`] (`EngineConfig::stat`; the `ringline stat`
//! command), without stopping it.
//!
//! Inside (none of it public): `engine` orders each step's stages;
//! `core` holds every table and executor, NIC-independent; `net` is the NIC
//! pump, the only code compiled per NIC type. `docs/design.md` walks
//! through them.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod affinity;
mod attach;
mod bufmem;
mod clock;
mod config;
mod core;
mod driver;
mod engine;
mod errno;
mod fxhash;
mod group;
mod hint;
mod idle;
mod ids;
mod ipc;
mod l2;
mod legacy;
mod msgring;
mod net;
mod numbers;
pub mod serve;
mod slab;
mod sqpoll;
pub mod statpage;
mod stats;
mod tcpopt;
mod timer;
mod usermem;
pub use usermem::check_mapped;

pub use attach::{attach, AppRegion, AttachConfig, AttachError, Attached, AttachedRing};
pub use clock::{Clock, Monotonic};
pub use config::{Congestion, EngineConfig, DEFAULT_BUSY_POLL_US};
pub use core::sockopt::{
    option_bytes, option_len, option_value, setsockopt_checks, socket_constant, SocketOptions,
};
pub use driver::Inline;
pub use engine::EngineError;
pub use group::{engine_group, GroupMember};
pub use numbers::{Adopted, SocketNumbers, SocketNumbersHook};
pub use sqpoll::{open_sqpoll, Snapshot, SocketCloser, Sqpoll, SqpollConfig, SqpollRuntime};
pub use stats::EngineStats;

/// Whether the engine implements io_uring opcode `op` (what
/// `IORING_REGISTER_PROBE` reports as `IO_URING_OP_SUPPORTED`).
pub fn opcode_supported(op: u8) -> bool {
    crate::core::request::supported(op)
}

use ringline_dataplane::Nic;
pub use ringline_ring::app::Ring;
/// The safe, owning layer above a [`Ring`] (`ringline_ring::io`).
pub use ringline_ring::io;
use ringline_ring::ring::{new_ring, RingConfig, SetupError};

/// A ring whose `io_uring_enter` runs an inline engine on `N`: a [`Ring`]
/// (liburing's calls: `push_safe`, `push`, `submit`, `submit_and_wait`,
/// `wait_cqe`, `completions`, `register_buf_ring`, ...) with the [`Inline`]
/// driver ([`Ring::driver`] gives its [`Inline::stats`]). For safe, owning
/// requests wrap it in an [`io::Io`].
pub type Runtime<N> = Ring<Inline<N>>;

/// Errors opening a runtime.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Ring sizes or memory.
    #[error("ring setup: {0}")]
    Ring(#[from] SetupError),
    /// Engine configuration.
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// The SQPOLL thread could not be started or pinned.
    #[error("SQPOLL thread: {0}")]
    Thread(String),
}

/// Opens a ring on `nic` with an inline engine: the io_uring_setup of ringline.
pub fn open<N: Nic>(
    nic: N,
    ring: &RingConfig,
    cfg: EngineConfig,
    clock: Clock,
) -> Result<Runtime<N>, OpenError> {
    let (app, eng) = new_ring(ring)?;
    let busy_poll_us = cfg.busy_poll_us;
    let engine = engine::Engine::new(nic, eng, cfg, clock.clone())?;
    Ok(Ring::new(app, Inline::new(engine, clock, busy_poll_us)))
}

/// Like [`open`], for one engine of a group sharing a port, one engine per
/// queue pair ([`engine_group`]): `nic` is the queue pair `member` names.
/// The engine picks the source port of an active open so that its flow
/// hashes back to this queue, and shares the neighbours it learns with its
/// siblings.
pub fn open_in_group<N: Nic>(
    nic: N,
    ring: &RingConfig,
    cfg: EngineConfig,
    clock: Clock,
    member: GroupMember,
) -> Result<Runtime<N>, OpenError> {
    let (app, eng) = new_ring(ring)?;
    let busy_poll_us = cfg.busy_poll_us;
    let mut engine = engine::Engine::new(nic, eng, cfg, clock.clone())?;
    engine.join(member);
    Ok(Ring::new(app, Inline::new(engine, clock, busy_poll_us)))
}
