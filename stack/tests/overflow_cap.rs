//! The CQ overflow backlog is bounded: past `max_cq_backlog` the engine takes
//! no new SQE and `submit` answers `EBUSY`; once the application reaps,
//! submission resumes, and no CQE is lost or reordered on the way.

use ringline::{open, Clock, EngineConfig};
use ringline_dataplane::{LoopbackWire, WireConfig};
use ringline_ring::abi::Cqe;
use ringline_ring::opcode;
use ringline_ring::ring::RingConfig;

#[test]
fn a_full_backlog_refuses_submission_until_the_application_reaps() {
    let (nic, _peer) = LoopbackWire::pair(&WireConfig::default());
    let (clock, _time) = Clock::manual();
    let ring = RingConfig {
        sq_entries: 8,
        cq_entries: Some(8),
        ..RingConfig::default()
    };
    let cfg = EngineConfig {
        max_cq_backlog: 32,
        ..EngineConfig::default()
    };
    let mut rt = open(nic, &ring, cfg, clock).expect("runtime");
    const TOTAL: u64 = 200;
    let mut pushed = 0u64;
    let mut refused = false;
    // Submit without reaping until the engine refuses.
    while pushed < TOTAL && !refused {
        while pushed < TOTAL && rt.sq_space_left() > 0 {
            let nop = opcode::Nop::new().user_data(pushed).build();
            rt.push_safe(&nop).expect("SQ has room");
            pushed += 1;
        }
        match rt.submit() {
            Ok(_) => {}
            Err(e) if e.0 == libc::EBUSY => refused = true,
            Err(e) => panic!("submit: {e:?}"),
        }
    }
    assert!(refused, "the backlog never filled");
    let st = rt.driver().ring_stats();
    assert!(
        (32..=32 + 8).contains(&st.backlog_len),
        "backlog {} (cap 32)",
        st.backlog_len
    );
    assert!(rt.sq_space_left() < 8, "refused SQEs wait in the SQ");

    // Reap everything; submission resumes and the rest completes.
    let mut got: Vec<Cqe> = Vec::new();
    for _ in 0..1000 {
        got.extend(rt.completions());
        while pushed < TOTAL && rt.sq_space_left() > 0 {
            let nop = opcode::Nop::new().user_data(pushed).build();
            rt.push_safe(&nop).expect("SQ has room");
            pushed += 1;
        }
        rt.submit().expect("reaped: submission accepted");
        if got.len() as u64 == TOTAL {
            break;
        }
    }
    got.extend(rt.completions());
    let uds: Vec<u64> = got.iter().map(|c| c.user_data).collect();
    assert_eq!(uds, (0..TOTAL).collect::<Vec<_>>(), "all, in order");
    assert_eq!(rt.driver().ring_stats().backlog_len, 0);
}
