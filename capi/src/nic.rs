//! Which NIC a new ring's engine runs on, and with which address.
//!
//! With no configuration, the in-memory loopback wire: rings are paired in the
//! order they are made, in one process. The first ring of a pair is side A
//! (`10.0.0.1`), the second side B (`10.0.0.2`), each knowing the other's MAC;
//! the third ring starts a new wire (A again), and so on. So a program with a
//! server ring and a client ring (made in that order) talks to itself over the
//! wire, the client connecting to `10.0.0.1`.
//!
//! `RINGLINE_CONFIG` or `RINGLINE_DPDK` name a DPDK port; this build of the
//! library has no DPDK, so it refuses them with a message on stderr rather than
//! silently running on the loopback wire.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use ringline_dataplane::{LoopbackPort, LoopbackWire, WireConfig};
use stack::EngineConfig;

/// Side A's address.
pub const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Side B's address.
pub const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// The B end of the wire whose A end the last odd ring took.
static WAITING_B: Mutex<Option<LoopbackPort>> = Mutex::new(None);

/// Why no NIC could be had.
#[derive(Debug)]
pub enum NicError {
    /// The environment asks for something this build cannot do.
    Config(String),
}

/// The NIC and engine configuration for a new ring.
pub fn next_nic() -> Result<(LoopbackPort, EngineConfig), NicError> {
    for var in ["RINGLINE_CONFIG", "RINGLINE_DPDK"] {
        if let Ok(v) = std::env::var(var) {
            return Err(NicError::Config(format!(
                "{var}={v}: this libringline was built without DPDK; unset {var} to run on \
                 the loopback wire (see docs/capi.md)"
            )));
        }
    }
    let wire = WireConfig::default();
    let mut waiting = WAITING_B.lock().unwrap_or_else(|e| e.into_inner());
    let (port, ip, peer, peer_mac) = match waiting.take() {
        Some(b) => (b, IP_B, IP_A, wire.mac_a),
        None => {
            let (a, b) = LoopbackWire::pair(&wire);
            *waiting = Some(b);
            (a, IP_A, IP_B, wire.mac_b)
        }
    };
    let cfg = EngineConfig {
        ip,
        static_neighbors: vec![(peer, peer_mac)],
        ..EngineConfig::default()
    };
    Ok((port, cfg))
}
