//! Which NIC a new ring's engine runs on, and with which address.
//!
//! **No configuration: the in-memory loopback wire.** Rings are paired in the
//! order they are made, in one process. The first ring of a pair is side A
//! (`10.0.0.1`), the second side B (`10.0.0.2`), each knowing the other's MAC;
//! the third ring starts a new wire (A again), and so on. So a program with a
//! server ring and a client ring (made in that order) talks to itself over the
//! wire, the client connecting to `10.0.0.1`.
//!
//! **`RINGLINE_DPDK`: a DPDK port** (a build with the `dpdk` feature):
//! `RINGLINE_DPDK` holds the EAL arguments (split on whitespace), `RINGLINE_IP`
//! the address with its prefix (`192.0.2.10/24`, required), `RINGLINE_GATEWAY`
//! an optional default gateway, `RINGLINE_DPDK_PORT` the port's name or id
//! (default 0). The EAL starts with the first ring; one ring per process may
//! use the port (the next gets a clear error). A build without the feature
//! refuses `RINGLINE_DPDK` (and `RINGLINE_CONFIG`, reserved for the `ringline`
//! command's TOML) with a message rather than silently using the loopback wire.

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

/// Why no NIC could be had (the message says what to change).
#[derive(Debug)]
pub enum NicError {
    /// The environment asks for something wrong or unavailable.
    Config(String),
}

/// A ring's NIC. Made once per ring and moved into its engine: the size of
/// the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Port {
    /// One end of a loopback wire.
    Loopback(LoopbackPort),
    /// A DPDK port.
    #[cfg(feature = "dpdk")]
    Dpdk(Box<ringline_dataplane::dpdk::DpdkPort>),
}

/// The NIC and engine configuration for a new ring (with
/// [`engine_tuning`] applied).
pub fn next_nic() -> Result<(Port, EngineConfig), NicError> {
    let (port, mut cfg) = pick_nic()?;
    engine_tuning(&mut cfg)?;
    Ok((port, cfg))
}

/// `RINGLINE_BUSY_POLL_US`: how long an idle engine polls before it blocks
/// ([`EngineConfig::busy_poll_us`], default 1000; 0 blocks at once, which
/// suits machines with fewer cores than busy threads).
fn engine_tuning(cfg: &mut EngineConfig) -> Result<(), NicError> {
    if let Ok(v) = std::env::var("RINGLINE_BUSY_POLL_US") {
        cfg.busy_poll_us = v.parse().map_err(|_| {
            NicError::Config(format!(
                "RINGLINE_BUSY_POLL_US={v}: expected microseconds (an integer)"
            ))
        })?;
    }
    Ok(())
}

fn pick_nic() -> Result<(Port, EngineConfig), NicError> {
    if let Ok(v) = std::env::var("RINGLINE_CONFIG") {
        return Err(NicError::Config(format!(
            "RINGLINE_CONFIG={v}: not supported by libringline; set RINGLINE_DPDK, RINGLINE_IP \
             (see docs/capi.md), or unset it to run on the loopback wire"
        )));
    }
    if let Ok(v) = std::env::var("RINGLINE_DPDK") {
        return dpdk(&v);
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
    Ok((Port::Loopback(port), cfg))
}

#[cfg(not(feature = "dpdk"))]
fn dpdk(v: &str) -> Result<(Port, EngineConfig), NicError> {
    Err(NicError::Config(format!(
        "RINGLINE_DPDK={v}: this libringline was built without DPDK (cargo feature `dpdk`); \
         unset RINGLINE_DPDK to run on the loopback wire (see docs/capi.md)"
    )))
}

/// `RINGLINE_IP` as (address, prefix length).
#[cfg(feature = "dpdk")]
fn ip_and_prefix() -> Result<(Ipv4Addr, u8), NicError> {
    let v = std::env::var("RINGLINE_IP").map_err(|_| {
        NicError::Config(
            "RINGLINE_DPDK is set but RINGLINE_IP is not (e.g. RINGLINE_IP=192.0.2.10/24)".into(),
        )
    })?;
    let bad = || {
        NicError::Config(format!(
            "RINGLINE_IP={v}: expected an IPv4 address with a prefix length, e.g. 192.0.2.10/24"
        ))
    };
    let (ip, len) = v.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| (1..=32).contains(l))
        .ok_or_else(bad)?;
    Ok((ip, len))
}

#[cfg(feature = "dpdk")]
fn dpdk(v: &str) -> Result<(Port, EngineConfig), NicError> {
    use ringline_dataplane::dpdk::{DpdkPort, Eal, Mempool, MempoolConfig, PortConfig};
    use std::sync::atomic::{AtomicBool, Ordering};

    static TAKEN: AtomicBool = AtomicBool::new(false);
    let (ip, prefix_len) = ip_and_prefix()?;
    let gateway =
        match std::env::var("RINGLINE_GATEWAY") {
            Ok(g) => Some(g.parse::<Ipv4Addr>().map_err(|_| {
                NicError::Config(format!("RINGLINE_GATEWAY={g}: not an IPv4 address"))
            })?),
            Err(_) => None,
        };
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Err(NicError::Config(
            "RINGLINE_DPDK: the DPDK port already serves another ring of this process (one ring per port)".into(),
        ));
    }
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        NicError::Config(format!("RINGLINE_DPDK={v}: {what}: {e}"))
    };
    let args: Vec<String> = v.split_whitespace().map(str::to_string).collect();
    let eal = Eal::init(&args).map_err(|e| fail("EAL", &e))?;
    let port_id = match std::env::var("RINGLINE_DPDK_PORT") {
        Err(_) => 0,
        Ok(p) => match p.parse::<u16>() {
            Ok(id) => id,
            Err(_) => eal.port_by_name(&p).map_err(|e| fail("port", &e))?,
        },
    };
    let pool = Mempool::new(
        &eal,
        "libringline",
        &MempoolConfig {
            socket: DpdkPort::socket_of(port_id),
            ..MempoolConfig::default()
        },
    )
    .map_err(|e| fail("mbuf pool", &e))?;
    let port = DpdkPort::open(&eal, port_id, &pool, &PortConfig::default())
        .map_err(|e| fail("port", &e))?;
    let cfg = EngineConfig {
        ip,
        prefix_len,
        gateway,
        ..EngineConfig::default()
    };
    Ok((Port::Dpdk(Box::new(port)), cfg))
}
