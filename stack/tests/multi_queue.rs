//! The multi-queue suite on the loopback wire: engines in groups, one per
//! queue pair of a `LoopbackWire::multi` wire, all stepped in turn on one
//! thread on a manual clock (deterministic; the demo runs them on threads).
//!
//! - connections from many source ports spread over both server engines,
//!   each accepted by the engine its flow hashes to, with listeners on both;
//! - an active open picks a port that brings the replies back to the opener;
//! - a neighbour learned by one engine is known to its siblings (ARP lands
//!   on queue 0 only);
//! - every byte echoed back, nothing refused, no segment without a socket.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ringline::{engine_group, open_in_group, Clock, EngineConfig, Runtime};
use ringline_dataplane::rss::queue_of_flow;
use ringline_dataplane::{LoopbackPort, LoopbackWire, WireConfig};
use ringline_ring::abi::Cqe;
use ringline_ring::opcode;
use ringline_ring::ring::RingConfig;
use ringline_testkit::pair::{sockaddr, CLIENT_IP, SERVER_IP};

const PORT: u16 = 8080;

struct Node {
    rt: Runtime<LoopbackPort>,
    cqes: Vec<Cqe>,
}

struct Net {
    servers: Vec<Node>,
    clients: Vec<Node>,
    clock: Arc<AtomicU64>,
}

/// `ns` server engines and `nc` client engines on one wire, none knowing
/// the other side's MAC (ARP finds it).
fn net(ns: u16, nc: u16) -> Net {
    let wire = WireConfig {
        frames_per_direction: 1024,
        ..WireConfig::default()
    };
    let (a, b) = LoopbackWire::multi(&wire, ns, nc);
    let (clock, t) = Clock::manual();
    let ring = RingConfig {
        sq_entries: 256,
        ..RingConfig::default()
    };
    let side = |ports: Vec<LoopbackPort>, ip: Ipv4Addr, seed: u64| {
        let n = ports.len() as u16;
        ports
            .into_iter()
            .zip(engine_group(n))
            .map(|(port, member)| {
                let cfg = EngineConfig {
                    ip,
                    rx_buffer: 16 * 1024,
                    tx_buffer: 16 * 1024,
                    seed: seed + u64::from(member.queue().0),
                    ..EngineConfig::default()
                };
                Node {
                    rt: open_in_group(port, &ring, cfg, clock.clone(), member).expect("open"),
                    cqes: Vec::new(),
                }
            })
            .collect()
    };
    Net {
        servers: side(a, SERVER_IP, 1),
        clients: side(b, CLIENT_IP, 100),
        clock: t,
    }
}

impl Net {
    fn step(&mut self) {
        let busy = self
            .servers
            .iter()
            .chain(&self.clients)
            .any(|n| n.rt.driver().has_pending_work());
        self.clock
            .fetch_add(if busy { 20 } else { 2_000 }, Ordering::Relaxed);
        for n in self.servers.iter_mut().chain(self.clients.iter_mut()) {
            n.rt.submit().expect("submit");
            n.cqes.extend(n.rt.completions());
        }
    }

    fn run_until(&mut self, max: usize, mut pred: impl FnMut(&Net) -> bool) -> bool {
        for _ in 0..max {
            if pred(self) {
                return true;
            }
            self.step();
        }
        pred(self)
    }
}

fn take(cqes: &mut Vec<Cqe>, ud: u64) -> Option<Cqe> {
    let i = cqes.iter().position(|c| c.user_data == ud)?;
    Some(cqes.remove(i))
}

fn push_safe(rt: &mut Runtime<LoopbackPort>, sqe: opcode::SafeSqe) {
    while rt.push_safe(&sqe).is_err() {
        rt.submit().expect("submit");
    }
}

/// Runs a local op on `node` and returns its result.
fn call(n: &mut Net, server: bool, i: usize, sqe: opcode::SafeSqe) -> i32 {
    let ud = sqe.user_data;
    fn node(n: &mut Net, server: bool, i: usize) -> &mut Node {
        if server {
            &mut n.servers[i]
        } else {
            &mut n.clients[i]
        }
    }
    push_safe(&mut node(n, server, i).rt, sqe);
    for _ in 0..1000 {
        n.step();
        if let Some(c) = take(&mut node(n, server, i).cqes, ud) {
            return c.res;
        }
    }
    panic!("no CQE for {ud}");
}

/// A listener on `PORT` on every server engine (the same port on each, as
/// with SO_REUSEPORT); returns their fds.
fn listen_everywhere(n: &mut Net) -> Vec<i32> {
    let sa = sockaddr(SERVER_IP, PORT);
    (0..n.servers.len())
        .map(|i| {
            let fd = call(
                n,
                true,
                i,
                opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                    .user_data(1)
                    .build(),
            );
            assert!(fd >= 0);
            let bind = opcode::Bind::new(fd, &*sa as *const _ as *const libc::sockaddr, 16)
                .user_data(2)
                .build();
            // SAFETY: `sa` lives to the end of this function, after the
            // BIND's only CQE (which `call_raw` waits for).
            unsafe { n.servers[i].rt.push(&bind) }.expect("sq");
            assert!(n.run_until(1000, |n| n.servers[i].cqes.iter().any(|c| c.user_data == 2)));
            assert_eq!(take(&mut n.servers[i].cqes, 2).unwrap().res, 0, "bind");
            let r = call(
                n,
                true,
                i,
                opcode::Listen::new(fd, 512).user_data(3).build(),
            );
            assert_eq!(r, 0, "listen on engine {i}");
            fd
        })
        .collect()
}

/// Each client engine opens `per` connections to the server's `PORT`;
/// returns each engine's fds once every CONNECT succeeded.
fn connect_all(n: &mut Net, per: usize, sa: &libc::sockaddr_in) -> Vec<Vec<i32>> {
    let mut fds = vec![Vec::new(); n.clients.len()];
    // The last engine first: with several, its ARP request goes out from
    // its own queue and the reply arrives on queue 0's engine.
    for (e, fds) in fds.iter_mut().enumerate().rev() {
        for k in 0..per {
            let fd = call(
                n,
                false,
                e,
                opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                    .user_data(10)
                    .build(),
            );
            assert!(fd >= 0);
            let c = opcode::Connect::new(fd, sa as *const _ as *const libc::sockaddr, 16)
                .user_data(1000 + k as u64)
                .build();
            // SAFETY: `sa` is borrowed for the whole of this function, which
            // returns only after every CONNECT's (only) CQE.
            unsafe { n.clients[e].rt.push(&c) }.expect("sq");
            fds.push(fd);
        }
    }
    let done = n.run_until(100_000, |n| {
        n.clients
            .iter()
            .all(|c| c.cqes.iter().filter(|c| c.user_data >= 1000).count() == per)
    });
    assert!(done, "connects did not complete");
    for c in &mut n.clients {
        for k in 0..per {
            let r = take(&mut c.cqes, 1000 + k as u64).unwrap().res;
            assert_eq!(r, 0, "connect {k}");
        }
    }
    fds
}

/// Accepts on every server engine until `total` connections are in; returns,
/// per engine, the accepted fds and the peers' ports.
fn accept_all(n: &mut Net, listeners: &[i32], total: usize) -> Vec<Vec<(i32, u16)>> {
    let ns = n.servers.len();
    let mut got: Vec<Vec<(i32, u16)>> = vec![Vec::new(); ns];
    // One boxed (address, length) per engine: each engine has one ACCEPT
    // armed at a time.
    let mut addrs: Vec<Box<(libc::sockaddr_in, libc::socklen_t)>> = (0..ns)
        .map(|_| Box::new((*sockaddr(SERVER_IP, 0), 16)))
        .collect();
    let arm =
        |rt: &mut Runtime<LoopbackPort>, l: i32, a: &mut (libc::sockaddr_in, libc::socklen_t)| {
            a.1 = 16;
            let sqe = opcode::Accept::new(l, &mut a.0 as *mut _ as *mut libc::sockaddr, &mut a.1)
                .user_data(77)
                .build();
            // An ACCEPT still armed at the end is cancelled, and its CQE
            // waited for, before the boxes drop.
            // SAFETY: the boxed address and length stay put and are not
            // touched until this ACCEPT's only CQE (read before re-arming).
            unsafe { rt.push(&sqe) }.expect("sq");
        };
    for i in 0..ns {
        arm(&mut n.servers[i].rt, listeners[i], &mut addrs[i]);
    }
    let mut rounds = 0;
    while got.iter().map(Vec::len).sum::<usize>() < total {
        rounds += 1;
        assert!(rounds < 100_000, "accepts did not complete: {got:?}");
        n.step();
        for i in 0..ns {
            if let Some(c) = take(&mut n.servers[i].cqes, 77) {
                assert!(c.res >= 0, "accept on engine {i}: {}", c.res);
                got[i].push((c.res, u16::from_be(addrs[i].0.sin_port)));
                arm(&mut n.servers[i].rt, listeners[i], &mut addrs[i]);
            }
        }
    }
    // Cancel the ACCEPTs still armed, and wait for their CQEs, before the
    // addresses go.
    for node in &mut n.servers {
        push_safe(
            &mut node.rt,
            opcode::AsyncCancel::new(77).user_data(78).build(),
        );
    }
    let ok = n.run_until(1000, |n| {
        n.servers
            .iter()
            .all(|s| s.cqes.iter().any(|c| c.user_data == 77))
    });
    assert!(ok, "cancelled ACCEPTs did not complete");
    for s in &mut n.servers {
        let c = take(&mut s.cqes, 77).unwrap();
        assert_eq!(c.res, -libc::ECANCELED);
        s.cqes.retain(|c| c.user_data != 78);
    }
    drop(addrs);
    got
}

/// Every client connection sends `MSG` bytes (its own pattern); every
/// server connection echoes what it reads; every client checks its echo.
fn echo_everything(n: &mut Net, clients: &[Vec<i32>], servers: &[Vec<(i32, u16)>]) {
    const MSG: usize = 200;
    let errors_before: Vec<u64> = n
        .servers
        .iter()
        .chain(&n.clients)
        .map(|s| s.rt.driver().stats().op_errors)
        .collect();
    let pattern = |e: usize, k: usize| -> Vec<u8> {
        (0..MSG).map(|i| (i + 13 * k + 101 * e) as u8).collect()
    };
    let sent: Vec<Vec<Vec<u8>>> = clients
        .iter()
        .enumerate()
        .map(|(e, fds)| (0..fds.len()).map(|k| pattern(e, k)).collect())
        .collect();
    let mut sbufs: Vec<Vec<Vec<u8>>> = servers
        .iter()
        .map(|fds| vec![vec![0u8; 4096]; fds.len()])
        .collect();
    let mut cbufs: Vec<Vec<Vec<u8>>> = clients
        .iter()
        .map(|fds| vec![vec![0u8; 4096]; fds.len()])
        .collect();
    // Server RECVs (user_data 10_000 + k) and client SENDs (20_000 + k).
    for (j, fds) in servers.iter().enumerate() {
        for (k, &(fd, _)) in fds.iter().enumerate() {
            let buf = &mut sbufs[j][k];
            let sqe = opcode::Recv::new(fd, buf.as_mut_ptr(), 4096)
                .user_data(10_000 + k as u64)
                .build();
            // SAFETY: `sbufs` is not touched (or moved: its Vecs' heap
            // buffers stay put) until this RECV's only CQE; it lives until
            // the end of this function, by which every request completed.
            unsafe { n.servers[j].rt.push(&sqe) }.expect("sq");
        }
    }
    for (e, fds) in clients.iter().enumerate() {
        for (k, &fd) in fds.iter().enumerate() {
            let msg = &sent[e][k];
            let sqe = opcode::Send::new(fd, msg.as_ptr(), MSG as u32)
                .user_data(20_000 + k as u64)
                .build();
            // SAFETY: `sent` is read-only and lives to the end of the
            // function, after this SEND's CQE.
            unsafe { n.clients[e].rt.push(&sqe) }.expect("sq");
            let buf = &mut cbufs[e][k];
            let sqe = opcode::Recv::new(fd, buf.as_mut_ptr(), 4096)
                .user_data(30_000 + k as u64)
                .build();
            // SAFETY: as the server's RECVs: `cbufs` stays put and untouched
            // until this RECV's CQE, before the function returns.
            unsafe { n.clients[e].rt.push(&sqe) }.expect("sq");
        }
    }
    // Echo each server RECV back as it completes (SEND 40_000 + k).
    let mut echoed = vec![0usize; servers.len()];
    let total_srv: usize = servers.iter().map(Vec::len).sum();
    let ok = {
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds > 100_000 {
                break false;
            }
            n.step();
            for (j, fds) in servers.iter().enumerate() {
                for k in 0..fds.len() {
                    if let Some(c) = take(&mut n.servers[j].cqes, 10_000 + k as u64) {
                        assert_eq!(c.res as usize, MSG, "server {j} conn {k} read");
                        let sqe = opcode::Send::new(fds[k].0, sbufs[j][k].as_ptr(), MSG as u32)
                            .user_data(40_000 + k as u64)
                            .build();
                        // SAFETY: `sbufs[j][k]` is only read from now on and
                        // lives to the end of the function, after this
                        // SEND's CQE.
                        unsafe { n.servers[j].rt.push(&sqe) }.expect("sq");
                        echoed[j] += 1;
                    }
                }
            }
            let back = n
                .clients
                .iter()
                .map(|c| c.cqes.iter().filter(|c| c.user_data >= 30_000).count())
                .sum::<usize>();
            if back == total_srv && echoed.iter().sum::<usize>() == total_srv {
                break true;
            }
        }
    };
    assert!(ok, "echoes did not come back");
    for (e, fds) in clients.iter().enumerate() {
        for k in 0..fds.len() {
            let r = take(&mut n.clients[e].cqes, 30_000 + k as u64).unwrap().res;
            assert_eq!(r as usize, MSG, "client {e} conn {k}");
            assert_eq!(
                &cbufs[e][k][..MSG],
                &sent[e][k][..],
                "client {e} conn {k} echo"
            );
        }
    }
    // Let the SENDs' CQEs arrive before the buffers go.
    let ok = n.run_until(10_000, |n| {
        n.servers
            .iter()
            .chain(&n.clients)
            .all(|s| s.rt.driver().stats().ops_in_flight == 0)
    });
    assert!(ok, "SENDs still in flight");
    for (node, before) in n.servers.iter().chain(&n.clients).zip(errors_before) {
        assert_eq!(
            node.rt.driver().stats().op_errors,
            before,
            "a request failed"
        );
    }
}

fn assert_nothing_lost(n: &Net) {
    for (role, nodes) in [("server", &n.servers), ("client", &n.clients)] {
        for (i, node) in nodes.iter().enumerate() {
            let st = node.rt.driver().stats();
            assert_eq!(
                st.no_socket, 0,
                "{role} {i}: a segment reached the wrong engine"
            );
            assert_eq!(
                st.retransmits, 0,
                "{role} {i}: retransmits on a lossless wire"
            );
            assert_eq!(
                st.not_for_us + st.malformed + st.unsupported,
                0,
                "{role} {i}"
            );
        }
    }
}

#[test]
fn two_engines_each_serve_the_flows_that_hash_to_them_and_get_their_opens_back() {
    let mut n = net(2, 2);
    let listeners = listen_everywhere(&mut n);
    let sa = sockaddr(SERVER_IP, PORT);
    let clients = connect_all(&mut n, 24, &sa);
    let servers = accept_all(&mut n, &listeners, 48);
    for (j, got) in servers.iter().enumerate() {
        // Each client engine's connections came back to it, so each server
        // engine got exactly the client engine of its own queue's.
        assert_eq!(got.len(), 24, "server engine {j}");
        for &(_, peer_port) in got {
            let q = queue_of_flow(CLIENT_IP.octets(), SERVER_IP.octets(), peer_port, PORT, 2);
            assert_eq!(usize::from(q), j, "port {peer_port} served by engine {j}");
        }
    }
    echo_everything(&mut n, &clients, &servers);
    assert_nothing_lost(&n);
    // ARP: only queue 0 hears it; engine 1 of each side knows the peer from
    // its sibling (the server's engine 1 may also learn it from a segment).
    let c1 = n.clients[1].rt.driver().stats();
    assert_eq!(c1.arp_rx, 0, "ARP only reaches queue 0");
    assert!(
        c1.arp_shared >= 1,
        "client engine 1 learned the server's MAC from engine 0"
    );
    assert!(c1.arp_tx >= 1, "it asked itself first");
    assert_eq!(n.clients[0].rt.driver().stats().arp_shared, 0);
    for node in n.servers.iter().chain(&n.clients) {
        assert_eq!(
            node.rt.driver().stats().accepted + node.rt.driver().stats().connects,
            24
        );
    }
}

#[test]
fn a_one_queue_client_spreads_its_ports_over_both_server_engines() {
    // A client that knows nothing of the server's queues (like Linux): its
    // ephemeral ports hash over both server engines, each serves its own.
    let mut n = net(2, 1);
    let listeners = listen_everywhere(&mut n);
    let sa = sockaddr(SERVER_IP, PORT);
    let clients = connect_all(&mut n, 40, &sa);
    let servers = accept_all(&mut n, &listeners, 40);
    for (j, got) in servers.iter().enumerate() {
        assert!(
            !got.is_empty(),
            "server engine {j} got no connection: {servers:?}"
        );
        for &(_, peer_port) in got {
            let q = queue_of_flow(CLIENT_IP.octets(), SERVER_IP.octets(), peer_port, PORT, 2);
            assert_eq!(usize::from(q), j);
        }
    }
    echo_everything(&mut n, &clients, &servers);
    assert_nothing_lost(&n);
    // The server's engine 1 never saw ARP (it answered from a MAC learned
    // from the SYN's source, or from engine 0).
    assert_eq!(n.servers[1].rt.driver().stats().arp_rx, 0);
}
