// A provided buffer is memory the engine writes later: adding one to a
// buffer ring is `unsafe`, so a safe multishot RECV cannot reach a dropped Vec.
#![forbid(unsafe_code)]

use ringline::{open, Clock, EngineConfig};
use ringline_dataplane::{LoopbackWire, WireConfig};
use ringline_ring::opcode;
use ringline_ring::ring::RingConfig;

fn main() {
    let (nic, _peer) = LoopbackWire::pair(&WireConfig::default());
    let cfg = EngineConfig::default();
    let mut ring = open(nic, &RingConfig::default(), cfg, Clock::monotonic()).unwrap();
    let mut group = ring.register_buf_ring(8, 0).unwrap();
    let mut buf = vec![0u8; 64];
    group.add_and_advance(buf.as_mut_ptr() as u64, 64, 0);
    drop(buf);
    ring.push_safe(&opcode::RecvMulti::new(3, 0).build()).unwrap();
    ring.submit().unwrap();
}
