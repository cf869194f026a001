// Requests that name no memory need no `unsafe`: a program under
// `#![forbid(unsafe_code)]` opens a listener, accepts, polls, cancels and
// closes.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ringline::{open, Clock, EngineConfig, Runtime};
use ringline_dataplane::{LoopbackPort, LoopbackWire, WireConfig};
use ringline_ring::opcode;
use ringline_ring::ring::RingConfig;
use ringline_ring::SafeSqe;

/// Pushes `sqes` and waits (at most 5 s) until each has a CQE; records the
/// results by user_data.
fn run(ring: &mut Runtime<LoopbackPort>, sqes: &[SafeSqe], results: &mut HashMap<u64, i32>) {
    for s in sqes {
        ring.push_safe(s).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while sqes.iter().any(|s| !results.contains_key(&s.user_data)) {
        assert!(Instant::now() < deadline, "CQEs missing: {results:?}");
        let _ = ring.submit_and_wait_timeout(1, Duration::from_millis(10));
        for c in ring.completions() {
            results.insert(c.user_data, c.res);
        }
    }
}

fn main() {
    let (nic, _peer) = LoopbackWire::pair(&WireConfig::default());
    let cfg = EngineConfig::default();
    let mut ring = open(nic, &RingConfig::default(), cfg, Clock::monotonic()).unwrap();
    let mut results = HashMap::new();

    let socket = opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0);
    let first = [opcode::Nop::new().user_data(1).build(), socket.user_data(2).build()];
    run(&mut ring, &first, &mut results);
    assert_eq!(results[&1], 0);
    let fd = results[&2];
    assert!(fd >= 0, "socket: {fd}");

    // No BIND (it names a sockaddr): LISTEN picks a port. The buffer group
    // has no buffers (adding one is `unsafe`).
    let _group = ring.register_buf_ring(8, 5).unwrap();
    let poll = opcode::PollAdd::new(fd, libc::POLLIN as u32).multi();
    let rest = [
        opcode::Listen::new(fd, 16).user_data(3).build(),
        opcode::AcceptMulti::new(fd).user_data(4).build(),
        poll.user_data(5).build(),
        opcode::AsyncCancel::new(4).user_data(6).build(),
        opcode::PollRemove::new(5).user_data(7).build(),
        opcode::RecvSelect::new(fd, 5, 0).user_data(8).build(),
        opcode::Close::new(fd).user_data(9).build(),
    ];
    run(&mut ring, &rest, &mut results);
    for ud in [3, 6, 7, 9] {
        assert_eq!(results[&ud], 0, "{ud}: {results:?}");
    }
    for ud in [4, 5] {
        assert_eq!(results[&ud], -libc::ECANCELED, "{ud}: {results:?}");
    }
    assert!(results[&8] < 0, "a receive on a listener fails: {}", results[&8]);
}
