// Filling an SQE in place is submitting it: `get_sqe` is `unsafe` too.
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
    *ring.get_sqe().unwrap() = opcode::Recv::new(3, buf.as_mut_ptr(), 64).build();
    drop(buf);
    ring.submit().unwrap();
}
