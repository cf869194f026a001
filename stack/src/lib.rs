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
//! timespec) are pushed with the `unsafe` `Ring::push`, whose contract is
//! io_uring's: the memory outlives the engine's use of it. Safe code cannot
//! make the engine read or write memory it does not own; see
//! `ringline_ring::app`.
//!
//! Sockets are ringline's own small integers, not kernel file descriptors.
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
mod net;
pub mod serve;
mod slab;
mod sqpoll;
mod stats;
mod tcpopt;
mod timer;
mod usermem;

pub use attach::{attach, AppRegion, AttachConfig, AttachError, Attached, AttachedRing};
pub use clock::{Clock, Monotonic};
pub use config::{Congestion, EngineConfig, DEFAULT_BUSY_POLL_US};
pub use driver::Inline;
pub use engine::EngineError;
pub use group::{engine_group, GroupMember};
pub use sqpoll::{open_sqpoll, Snapshot, Sqpoll, SqpollConfig, SqpollRuntime};
pub use stats::EngineStats;

use ringline_dataplane::Nic;
use ringline_ring::app::Ring;
use ringline_ring::ring::{new_ring, RingConfig, SetupError};

/// A ring whose `io_uring_enter` runs an inline engine on `N`.
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
