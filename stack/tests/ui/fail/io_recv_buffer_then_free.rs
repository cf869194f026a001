// Through the safe layer a receive owns its buffer: the Vec moves into the
// request, so the program cannot free (or touch) it while the engine writes.
#![forbid(unsafe_code)]

use ringline::io::{op, Io};
use ringline::{open, Clock, EngineConfig};
use ringline_dataplane::{LoopbackWire, WireConfig};
use ringline_ring::ring::RingConfig;

fn main() {
    let (nic, _peer) = LoopbackWire::pair(&WireConfig::default());
    let cfg = EngineConfig::default();
    let ring = open(nic, &RingConfig::default(), cfg, Clock::monotonic()).unwrap();
    let mut io = Io::new(ring);
    let buf = vec![0u8; 64];
    io.push(op::Recv::new(3, buf), ()).unwrap();
    drop(buf);
    io.submit().unwrap();
}
