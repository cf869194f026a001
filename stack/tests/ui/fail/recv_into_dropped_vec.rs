// A RECV into a Vec that is dropped before the engine writes to it: pushing
// an SQE that names memory is `unsafe`, so safe code cannot submit it.
#![forbid(unsafe_code)]

use ringline::{open, Clock, EngineConfig};
use ringline_dataplane::{LoopbackWire, WireConfig};
use ringline_ring::opcode;
use ringline_ring::ring::RingConfig;

fn main() {
    let (nic, _peer) = LoopbackWire::pair(&WireConfig::default());
    let cfg = EngineConfig::default();
    let mut ring = open(nic, &RingConfig::default(), cfg, Clock::monotonic()).unwrap();
    let mut buf = vec![0u8; 64];
    let recv = opcode::Recv::new(3, buf.as_mut_ptr(), 64).build();
    ring.push(&recv).unwrap();
    drop(buf);
    ring.submit().unwrap();
}
