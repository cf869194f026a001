//! NICs behind one trait ([`Nic`]): the in-memory loopback wire, a seeded
//! fault-injecting wrapper for tests, and (feature `dpdk`) DPDK poll-mode ports.
#![warn(missing_docs)]

pub mod nic;

pub use nic::{MacAddr, Nic, NicCaps, NicCounters, TxError, RX_BURST};
