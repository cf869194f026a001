// A SafeSqe cannot be changed into one that names memory.
#![forbid(unsafe_code)]

use ringline::{open, Clock, EngineConfig};
use ringline_dataplane::{LoopbackWire, WireConfig};
use ringline_ring::abi::IORING_OP_RECV;
use ringline_ring::opcode;
use ringline_ring::ring::RingConfig;

fn main() {
    let (nic, _peer) = LoopbackWire::pair(&WireConfig::default());
    let cfg = EngineConfig::default();
    let mut ring = open(nic, &RingConfig::default(), cfg, Clock::monotonic()).unwrap();
    let mut buf = vec![0u8; 64];
    let mut sqe = opcode::Nop::new().build();
    sqe.opcode = IORING_OP_RECV;
    sqe.addr = buf.as_mut_ptr() as u64;
    ring.push_safe(&sqe).unwrap();
    drop(buf);
    ring.submit().unwrap();
}
