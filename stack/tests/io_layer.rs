//! The safe layer (`ringline::io`) on two real engines: an echo server
//! (multishot accept, multishot receive from a buffer pool, a SEND of each
//! received `PoolBuf`) and a client with one owned-`Vec` request in flight per
//! connection, both on this thread. Without `unsafe`. After a warm-up, a
//! counting global allocator watches 20,000 more round trips: the layer's
//! op slab, tokens, pool handles and owned buffers allocate nothing per
//! request.
#![forbid(unsafe_code)]

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use ringline::io::{op, Io};
use ringline::{Clock, EngineConfig};
use ringline_dataplane::LoopbackPort;
use ringline_ring::opcode;
use ringline_testkit::counting::{self, Counting};
use ringline_testkit::pair::{open_engines, PairOpts, SERVER_IP};

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONNS: usize = 32;
const SIZE: usize = 128;

#[derive(Clone, Copy, Debug)]
enum Srv {
    Setup,
    Accept,
    Recv(i32),
    Sent,
}

#[derive(Clone, Copy, Debug)]
enum Cli {
    Setup,
    Recv(usize),
    Sent(usize),
}

/// A client connection: its buffers are in `tx` / `rx` when no request holds them.
struct Conn {
    fd: i32,
    seq: u8,
    tx: Option<Vec<u8>>,
    rx: Option<Vec<u8>>,
    /// The echo came back before the SEND's completion: start when it does.
    waiting_for_tx: bool,
}

fn start(io: &mut Io<ringline::Runtime<LoopbackPort>, Cli>, i: usize, c: &mut Conn) {
    let (Some(mut tx), Some(rx)) = (c.tx.take(), c.rx.take()) else {
        panic!("connection {i} started with a buffer in flight");
    };
    c.seq = c.seq.wrapping_add(1);
    tx.fill(c.seq);
    tx[..8].copy_from_slice(&(i as u64).to_le_bytes());
    let recv = op::Recv::new(c.fd, rx).flags(libc::MSG_WAITALL);
    io.push(recv, Cli::Recv(i)).unwrap();
    io.push(op::Send::new(c.fd, tx), Cli::Sent(i)).unwrap();
}

#[test]
fn io_echo_steady_state_allocates_nothing() {
    let mut o = PairOpts::default();
    for e in [&mut o.server, &mut o.client] {
        *e = EngineConfig {
            prealloc_connections: CONNS,
            ..e.clone()
        };
    }
    let (s, c) = open_engines::<LoopbackPort>(o, Clock::monotonic()).expect("engines");
    let mut srv: Io<_, Srv> = Io::with_capacity(s, 1024, 4096);
    let mut cli: Io<_, Cli> = Io::with_capacity(c, 1024, 4096);
    let pool = srv.register_pool(0, 256, 2048).expect("pool");
    let second = Duration::from_secs(1);
    let tcp = || opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).build();

    let lfd = srv.call(tcp(), Srv::Setup, second).unwrap().res();
    let bind = op::Bind::new(lfd, SocketAddrV4::new(SERVER_IP, 7));
    assert_eq!(srv.call(bind, Srv::Setup, second).unwrap().res(), 0);
    let listen = opcode::Listen::new(lfd, 128).build();
    assert_eq!(srv.call(listen, Srv::Setup, second).unwrap().res(), 0);
    srv.push(opcode::AcceptMulti::new(lfd).build(), Srv::Accept)
        .unwrap();

    let mut conns: Vec<Conn> = (0..CONNS)
        .map(|_| {
            let fd = cli.call(tcp(), Cli::Setup, second).unwrap().res();
            assert!(fd >= 0);
            let connect = op::Connect::new(fd, SocketAddrV4::new(SERVER_IP, 7));
            cli.push(connect, Cli::Setup).unwrap();
            Conn {
                fd,
                seq: 0,
                tx: Some(vec![0; SIZE]),
                rx: Some(vec![0; SIZE]),
                waiting_for_tx: false,
            }
        })
        .collect();

    let mut done = 0u64;
    let mut connected = 0usize;
    let mut watched = None;
    const WARMUP: u64 = 5_000;
    const MEASURED: u64 = 20_000;
    let deadline = Instant::now() + Duration::from_secs(120);
    while done < WARMUP + MEASURED {
        assert!(
            Instant::now() < deadline,
            "echo stalled after {done} round trips"
        );
        if done >= WARMUP && watched.is_none() {
            watched = Some(done);
            counting::watch();
        }
        srv.wait(0, Duration::ZERO).unwrap();
        let (mut sub, completions) = srv.split();
        for mut c in completions {
            match c.data() {
                Srv::Accept => {
                    let fd = c.res();
                    assert!(fd >= 0, "accept: {fd}");
                    sub.push(
                        opcode::RecvMulti::new(fd, pool.bgid()).build(),
                        Srv::Recv(fd),
                    )
                    .unwrap();
                }
                Srv::Recv(fd) => {
                    assert!(c.res() > 0 && c.more(), "server recv: {}", c.res());
                    let data = c.take_buf().expect("received data");
                    let send = op::Send::new(fd, data).flags(libc::MSG_WAITALL);
                    sub.push(send, Srv::Sent).unwrap();
                }
                Srv::Sent => assert!(c.res() > 0, "server send: {}", c.res()),
                Srv::Setup => {}
            }
        }
        cli.wait(0, Duration::ZERO).unwrap();
        while let Some(mut c) = cli.next_completion() {
            match c.data() {
                Cli::Setup => {
                    assert_eq!(c.res(), 0, "connect");
                    connected += 1;
                    if connected == CONNS {
                        for (i, conn) in conns.iter_mut().enumerate() {
                            start(&mut cli, i, conn);
                        }
                    }
                }
                Cli::Recv(i) => {
                    assert_eq!(c.res(), SIZE as i32, "client recv");
                    let rx = c.take_buf().and_then(|b| b.into_vec()).expect("rx back");
                    let conn = &mut conns[i];
                    assert_eq!(&rx[..8], &(i as u64).to_le_bytes(), "echo of {i}");
                    assert!(rx[8..].iter().all(|&b| b == conn.seq), "echo of {i}");
                    conn.rx = Some(rx);
                    done += 1;
                    if conn.tx.is_some() {
                        start(&mut cli, i, conn);
                    } else {
                        conn.waiting_for_tx = true;
                    }
                }
                Cli::Sent(i) => {
                    assert_eq!(c.res(), SIZE as i32, "client send");
                    let conn = &mut conns[i];
                    conn.tx = c.take_buf().and_then(|b| b.into_vec());
                    if std::mem::take(&mut conn.waiting_for_tx) {
                        start(&mut cli, i, conn);
                    }
                }
            }
        }
    }
    counting::unwatch();
    let allocs = counting::allocations();
    assert_eq!(
        allocs,
        0,
        "{allocs} heap allocations in {} echo round trips through the io layer",
        done - watched.unwrap_or(0)
    );
    assert_eq!(srv.stats().stale + cli.stats().stale, 0);
}
