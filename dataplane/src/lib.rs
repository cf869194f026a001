//! NICs behind one trait ([`Nic`]): the in-memory loopback wire, a seeded
//! fault-injecting wrapper for tests, and (feature `dpdk`) DPDK poll-mode ports.
#![warn(missing_docs)]

#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod fault;
pub mod loopback;
pub mod nic;
pub mod rss;

pub use fault::{FaultConfig, FaultFrame, FaultStats, FaultyNic};
pub use loopback::{LoopbackFrame, LoopbackPort, LoopbackWire, WireConfig};
pub use nic::{MacAddr, Nic, NicCaps, NicCounters, RxArm, TxError, RX_BURST};
