//! The shared-memory stat page end to end: two engines on the deterministic
//! pair publish (`EngineConfig::stat`), a reader maps the server's page and
//! sees its counters move while data flows, and a reader on another thread
//! gets the connection table (with bytes moving) while the engines step.

use std::time::Duration;

use ringline::statpage::{Group, StatReader};
use ringline::EngineConfig;
use ringline_ring::opcode;
use ringline_testkit::pair::{connect_n, listen, push, push_safe, take, Pair, PairOpts};

const CHUNK: usize = 4096;
const CONNS: usize = 4;

#[test]
fn a_reader_sees_counters_and_connections_move_while_data_flows() {
    let mut o = PairOpts::default();
    o.server = EngineConfig {
        stat: true,
        stat_interval: Duration::from_millis(10),
        ..o.server
    };
    o.client = EngineConfig {
        stat: true,
        ..o.client
    };
    let mut p = Pair::with(o);
    let path = p.s.driver().stat_path().expect("a page").to_owned();
    let client_path = p.c.driver().stat_path().expect("a page").to_owned();
    assert_ne!(path, client_path);
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with(&format!("ringline.{}.", std::process::id())),
        "{name}"
    );
    let found = ringline::statpage::instances().expect("list /dev/shm");
    assert!(found.iter().any(|i| i.path == path), "{found:?}");

    let lfd = listen(&mut p, 7, 16);
    push_safe(&mut p.s, opcode::AcceptMulti::new(lfd).user_data(1).build());
    let fds = connect_n(&mut p, 7, CONNS, 100);
    let mut sfds = Vec::new();
    assert!(p.run_until(10_000, |p| {
        while let Some(c) = take(&mut p.s_cqes, 1) {
            assert!(c.res >= 0, "accept {}", c.res);
            sfds.push(c.res);
        }
        sfds.len() == CONNS
    }));

    let tx = vec![7u8; CHUNK];
    let mut rx = vec![0u8; CHUNK];
    // Connection 0 carries a stream: the client sends CHUNK after CHUNK,
    // the server receives into `rx`.
    let send = |p: &mut Pair| {
        let sqe = opcode::Send::new(fds[0], tx.as_ptr(), CHUNK as u32).user_data(10);
        // SAFETY: `tx` is never written and outlives the pair (dropped last
        // below); it is only read by SENDs.
        unsafe { push(&mut p.c, sqe.build()) };
    };
    let recv = |p: &mut Pair, rx: &mut [u8]| {
        let sqe = opcode::Recv::new(sfds[0], rx.as_mut_ptr(), CHUNK as u32).user_data(20);
        // SAFETY: one RECV at a time owns `rx` (the next is pushed after its
        // CQE); `rx` outlives the pair.
        unsafe { push(&mut p.s, sqe.build()) };
    };
    send(&mut p);
    recv(&mut p, &mut rx);
    let received = std::cell::Cell::new(0usize);
    let mut flow = |p: &mut Pair, rounds: usize, rx: &mut Vec<u8>| {
        for _ in 0..rounds {
            p.step();
            if let Some(c) = take(&mut p.c_cqes, 10) {
                assert!(c.res > 0, "send {}", c.res);
                send(p);
            }
            if let Some(c) = take(&mut p.s_cqes, 20) {
                assert!(c.res > 0, "recv {}", c.res);
                received.set(received.get() + c.res as usize);
                recv(p, rx);
            }
        }
    };

    let reader = StatReader::open(&path).expect("open the server's page");
    flow(&mut p, 2_000, &mut rx);
    let a = reader.snapshot().expect("snapshot");
    flow(&mut p, 2_000, &mut rx);
    let b = reader.snapshot().expect("snapshot");
    assert!(received.get() > 0);
    assert_eq!(a.pid, std::process::id());
    assert!(
        b.publishes > a.publishes,
        "{} -> {}",
        a.publishes,
        b.publishes
    );
    for (g, name) in [
        (Group::Engine, "rx_frames"),
        (Group::Engine, "tx_segments"),
        (Group::Engine, "steps"),
        (Group::Nic, "rx_bytes"),
    ] {
        let (x, y) = (a.get(g, name).unwrap(), b.get(g, name).unwrap());
        assert!(y > x, "{name}: {x} -> {y}");
    }
    assert_eq!(b.get(Group::Engine, "conns_live"), Some(CONNS as u64));
    assert!(b.get(Group::Ring, "cq_overflowed").is_some());
    assert!(b.get(Group::Engine, "bad_checksum").is_some());

    // The connection table: asked from another thread, answered by the
    // engine as it steps.
    let table =
        |p: &mut Pair, rx: &mut Vec<u8>, flow: &mut dyn FnMut(&mut Pair, usize, &mut Vec<u8>)| {
            let path = path.clone();
            let h = std::thread::spawn(move || {
                StatReader::open(&path)
                    .expect("open")
                    .connections(Duration::from_secs(30))
            });
            let mut rounds = 0;
            while !h.is_finished() {
                flow(p, 10, rx);
                rounds += 1;
                assert!(rounds < 1_000_000, "no answer");
                std::thread::yield_now();
            }
            h.join().expect("reader").expect("connection table")
        };
    let t1 = table(&mut p, &mut rx, &mut flow);
    flow(&mut p, 2_000, &mut rx);
    let t2 = table(&mut p, &mut rx, &mut flow);
    assert_eq!(t1.live, CONNS as u64);
    assert_eq!(t1.rows.len(), CONNS);
    let row = |t: &ringline::statpage::ConnTable| {
        *t.rows
            .iter()
            .find(|r| r.bytes_in > 0)
            .expect("the streaming connection")
    };
    let (r1, r2) = (row(&t1), row(&t2));
    assert_eq!(r1.state_name(), "ESTAB");
    assert_eq!(r1.local().port(), 7);
    assert_eq!(r1.remote(), r2.remote());
    assert!(r2.bytes_in > r1.bytes_in, "{r1:?} -> {r2:?}");
    assert!(r2.age_us > r1.age_us);
    drop(reader);
    drop(p);
    assert!(!path.exists(), "the page outlived its engine");
    assert!(!client_path.exists());
}
