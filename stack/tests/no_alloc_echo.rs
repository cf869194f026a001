//! The echo path allocates nothing per request in steady state: two engines
//! on this thread (the deterministic harness), an echo server with multishot
//! accept and multishot recv over a buffer ring sending straight out of the
//! provided buffers, and a client with one request in flight per connection,
//! as `ringline bench echo` runs them. After a warm-up (vectors, tables and
//! the op slab reach their steady sizes), a counting global allocator
//! watches this thread for 20,000 more round trips.

use ringline::EngineConfig;
use ringline_ring::abi::{buffer_id, more};
use ringline_ring::opcode;
use ringline_testkit::counting::{self, Counting};
use ringline_testkit::pair::{connect_n, listen, push, push_safe, Pair, PairOpts};

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONNS: usize = 32;
const SIZE: usize = 128;
const BUFS: u32 = 256;
const BUF_LEN: u32 = 2048;

const T_ACCEPT: u64 = 1;
const T_SRECV: u64 = 2;
const T_SSEND: u64 = 3;
const T_CRECV: u64 = 4;
const T_CSEND: u64 = 5;

fn ud(tag: u64, a: u64) -> u64 {
    (tag << 48) | a
}

#[test]
fn echo_steady_state_allocates_nothing() {
    let mut o = PairOpts::default();
    // Both engines publish their stat page (every 10 ms of the pair's
    // clock), and the server answers connection-table requests: neither
    // may allocate either.
    o.server = EngineConfig {
        prealloc_connections: CONNS,
        stat: true,
        stat_interval: std::time::Duration::from_millis(10),
        ..o.server
    };
    o.client = EngineConfig {
        prealloc_connections: CONNS,
        stat: true,
        ..o.client
    };
    let mut p = Pair::with(o);
    let lfd = listen(&mut p, 7, 128);
    let mut ring = p.s.register_buf_ring(BUFS, 0).expect("buffer ring");
    let mut arena = vec![0u8; (BUFS * BUF_LEN) as usize];
    let base = arena.as_mut_ptr() as u64;
    // The arena, `tx` and `rx` outlive both runtimes' use of them: the pair is
    // dropped before them at the end of the test. The SAFETY comments below
    // say why no request's memory is touched while it is in flight.
    for bid in 0..BUFS {
        // SAFETY: the arena outlives the pair (above); the test reads a buffer
        // only through the SEND it makes of it after a CQE handed it back.
        unsafe { ring.add_and_advance(base + (bid * BUF_LEN) as u64, BUF_LEN, bid as u16) };
    }
    push_safe(
        &mut p.s,
        opcode::AcceptMulti::new(lfd)
            .user_data(ud(T_ACCEPT, 0))
            .build(),
    );
    let fds = connect_n(&mut p, 7, CONNS, 1_000);
    let mut accepted = 0;
    assert!(p.run_until(10_000, |p| {
        for c in std::mem::take(&mut p.s_cqes) {
            if c.user_data == ud(T_ACCEPT, 0) && c.res >= 0 {
                accepted += 1;
                push_safe(
                    &mut p.s,
                    opcode::RecvMulti::new(c.res, 0)
                        .user_data(ud(T_SRECV, c.res as u64))
                        .build(),
                );
            }
        }
        accepted == CONNS
    }));
    p.c_cqes.clear();

    let mut tx = vec![0u8; CONNS * SIZE];
    let mut rx = vec![0u8; CONNS * SIZE];
    let mut seq = [0u64; CONNS];
    let start = |p: &mut Pair, i: usize, seq: &mut [u64; CONNS], tx: &mut [u8], rx: &mut [u8]| {
        seq[i] += 1;
        let t = &mut tx[i * SIZE..(i + 1) * SIZE];
        t.fill(seq[i] as u8);
        t[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let r = rx[i * SIZE..(i + 1) * SIZE].as_mut_ptr();
        let recv = opcode::Recv::new(fds[i], r, SIZE as u32)
            .flags(libc::MSG_WAITALL)
            .user_data(ud(T_CRECV, i as u64));
        // SAFETY: connection i's slice of `rx` is this RECV's until its CQE
        // (start runs again for i only after that CQE); `rx` outlives the pair.
        unsafe { push(&mut p.c, recv.build()) };
        let send =
            opcode::Send::new(fds[i], t.as_ptr(), SIZE as u32).user_data(ud(T_CSEND, i as u64));
        // SAFETY: connection i's slice of `tx` is rewritten only by the next
        // start for i, after the echo of these bytes came back (so this SEND
        // has read them all); `tx` outlives the pair.
        unsafe { push(&mut p.c, send.build()) };
    };
    for i in 0..CONNS {
        start(&mut p, i, &mut seq, &mut tx, &mut rx);
    }

    // A reader on another thread asks for the server's connection table
    // over and over while the engines run (its allocations are its own
    // thread's, not counted).
    let page = p.s.driver().stat_path().expect("stat page").to_owned();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let r = ringline::statpage::StatReader::open(&page).expect("open");
            let mut tables = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if r.connections(std::time::Duration::from_millis(200)).is_ok() {
                    tables += 1;
                }
            }
            tables
        })
    };
    let mut done = 0u64;
    let mut watched = None;
    let mut rounds = 0u64;
    let mut s_cqes = Vec::with_capacity(4096);
    let mut c_cqes = Vec::with_capacity(4096);
    const WARMUP: u64 = 5_000;
    const MEASURED: u64 = 20_000;
    while done < WARMUP + MEASURED {
        rounds += 1;
        assert!(rounds < 2_000_000, "echo stalled after {done} round trips");
        if done >= WARMUP && watched.is_none() {
            watched = Some(done);
            counting::watch();
        }
        p.step();
        std::mem::swap(&mut s_cqes, &mut p.s_cqes);
        for c in s_cqes.drain(..) {
            let tag = c.user_data >> 48;
            let fd = (c.user_data & 0xffff_ffff) as i32;
            match tag {
                T_SRECV => {
                    if c.res > 0 {
                        let bid = buffer_id(c.flags).expect("buffer");
                        let addr = base + (bid as u32 * BUF_LEN) as u64;
                        let send = opcode::Send::new(fd, addr as *const u8, c.res as u32)
                            .flags(libc::MSG_WAITALL)
                            .user_data(ud(T_SSEND, (bid as u64) << 32 | fd as u32 as u64));
                        // SAFETY: the CQE handed buffer `bid` back; it goes back to
                        // the ring only after this SEND's CQE (T_SSEND below), and
                        // the arena outlives the pair.
                        unsafe { push(&mut p.s, send.build()) };
                    }
                    assert!(c.res >= 0, "server recv: {}", c.res);
                    if !more(c.flags) {
                        push_safe(
                            &mut p.s,
                            opcode::RecvMulti::new(fd, 0)
                                .user_data(ud(T_SRECV, fd as u64))
                                .build(),
                        );
                    }
                }
                T_SSEND => {
                    assert!(c.res > 0, "server send: {}", c.res);
                    let bid = ((c.user_data >> 32) & 0xffff) as u16;
                    // SAFETY: the SEND of buffer `bid` completed, so the test
                    // no longer uses it; the arena outlives the pair.
                    unsafe {
                        ring.add_and_advance(base + (bid as u32 * BUF_LEN) as u64, BUF_LEN, bid)
                    };
                }
                _ => {}
            }
        }
        std::mem::swap(&mut c_cqes, &mut p.c_cqes);
        for c in c_cqes.drain(..) {
            let tag = c.user_data >> 48;
            let i = (c.user_data & 0xffff_ffff) as usize;
            match tag {
                T_CRECV => {
                    assert_eq!(c.res, SIZE as i32, "client recv");
                    assert_eq!(
                        rx[i * SIZE..(i + 1) * SIZE],
                        tx[i * SIZE..(i + 1) * SIZE],
                        "echo of {i}"
                    );
                    done += 1;
                    start(&mut p, i, &mut seq, &mut tx, &mut rx);
                }
                T_CSEND => assert_eq!(c.res, SIZE as i32, "client send"),
                _ => {}
            }
        }
    }
    counting::unwatch();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let tables = reader.join().expect("reader");
    assert!(
        tables > 0,
        "the engine answered no connection-table request"
    );
    let allocs = counting::allocations();
    assert_eq!(
        allocs,
        0,
        "{allocs} heap allocations in {} echo round trips in steady state",
        done - watched.unwrap_or(0)
    );
    drop(p);
    drop(arena);
}
