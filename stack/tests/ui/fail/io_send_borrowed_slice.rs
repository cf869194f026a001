// A send through the safe layer takes an owned buffer, not a borrow the
// program could end (and free) before the engine reads it.
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
    let buf = vec![7u8; 64];
    io.push(op::Send::new(3, &buf[..]), ()).unwrap();
    drop(buf);
    io.submit().unwrap();
}
