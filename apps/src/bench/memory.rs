//! Memory per idle established connection in a ringline engine.
//!
//! Method: two engines on this one thread, joined by a loopback wire, with
//! nothing preallocated. The client opens N connections, the server accepts
//! them with a multishot ACCEPT and arms a multishot RECV on each (an idle
//! echo connection, as `echo::serve` leaves it). The heap in use
//! (`mallinfo2`: `uordblks + hblkhd`, all arenas; nothing else runs while it
//! is read) is sampled before and after every engine step, and each step's
//! difference is charged to the engine that ran it, so the application's own
//! vectors are not counted. Per connection = growth / N, which includes
//! container slack (vectors and hash tables grown by doubling) and malloc's
//! chunk headers; "without buffers" subtracts the socket buffers (rx + tx),
//! which are sized by configuration.
//!
//! Opts out of `#![deny(unsafe_code)]` for `mallinfo2` and for the SQEs and
//! provided buffers that name the buffer arena and the server address.
#![allow(unsafe_code)]

use std::time::{Duration, Instant};

use ringline::{open, Clock, EngineConfig, Runtime};
use ringline_dataplane::{LoopbackPort, LoopbackWire, WireConfig};
use ringline_ring::abi::{more, Cqe};
use ringline_ring::opcode;
use ringline_ring::ring::RingConfig;
use serde::Serialize;

use super::harness::{RL_CLIENT_IP, RL_SERVER_IP};
use crate::sys::{push, push_safe, Uring};

/// Heap bytes in use by the whole process.
fn heap_in_use() -> i64 {
    // SAFETY: mallinfo2 only reads allocator statistics (it takes the arena
    // locks itself) and returns a plain struct.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as i64
}

/// The result of [`measure`].
#[derive(Serialize, Clone, Debug)]
pub struct IdleMemory {
    /// Idle connections measured.
    pub connections: usize,
    /// Socket buffer bytes per connection per side (rx + tx).
    pub socket_buffers: usize,
    /// Server engine heap growth per connection, bytes.
    pub server_bytes: f64,
    /// Client engine heap growth per connection, bytes.
    pub client_bytes: f64,
    /// Server, without the socket buffers.
    pub server_without_buffers: f64,
    /// Client, without the socket buffers.
    pub client_without_buffers: f64,
}

fn step(rt: &mut Runtime<LoopbackPort>, charged: &mut i64) {
    let before = heap_in_use();
    let _ = rt.submit();
    *charged += heap_in_use() - before;
}

/// Measures `n` idle connections with `socket_buffer`-byte rx and tx buffers.
pub fn measure(n: usize, socket_buffer: usize) -> Result<IdleMemory, String> {
    let wire = WireConfig {
        frames_per_direction: 4096,
        ..WireConfig::default()
    };
    let (a, b) = LoopbackWire::pair(&wire);
    let engine = |ip, peer, mac| EngineConfig {
        ip,
        static_neighbors: vec![(peer, mac)],
        rx_buffer: socket_buffer,
        tx_buffer: socket_buffer,
        prealloc_connections: 0,
        max_connections: n + 1024,
        ..EngineConfig::default()
    };
    let ring = RingConfig {
        sq_entries: 4096,
        cq_entries: Some(16384),
        ..RingConfig::default()
    };
    let mut s = open(
        a,
        &ring,
        engine(RL_SERVER_IP, RL_CLIENT_IP, wire.mac_b),
        Clock::monotonic(),
    )
    .map_err(|e| e.to_string())?;
    let mut c = open(
        b,
        &ring,
        engine(RL_CLIENT_IP, RL_SERVER_IP, wire.mac_a),
        Clock::monotonic(),
    )
    .map_err(|e| e.to_string())?;
    let mut bufs = s.register_buf_ring(1024, 0).map_err(|e| e.to_string())?;
    let mut arena = vec![0u8; 1024 * 2048];
    let base = arena.as_mut_ptr() as u64;
    for bid in 0..1024u32 {
        // The engines run only inside this function's steps; `arena` is freed
        // after the receives are cancelled and the ring unregistered (or on an
        // early error return, after which the runtimes are dropped unrun).
        // SAFETY: so the buffers outlive every use; the data is never read.
        unsafe { bufs.add_and_advance(base + bid as u64 * 2048, 2048, bid as u16) };
    }
    let sa = ringline_ring::app::sockaddr_in(RL_SERVER_IP.octets(), 7);
    let mut cqes: Vec<Cqe> = Vec::with_capacity(n + 16384);
    let mut fds: Vec<i32> = Vec::with_capacity(n);
    let (mut sc, mut cc) = (0i64, 0i64);

    // Listener, set up before measuring.
    push_safe(
        &mut s,
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
            .user_data(0)
            .build(),
    );
    let _ = s.submit();
    cqes.clear();
    s.reap(&mut cqes);
    let lfd = cqes.first().map(|c| c.res).ok_or("no SOCKET CQE")?;
    let bind = opcode::Bind::new(lfd, (&sa as *const libc::sockaddr_in).cast(), 16);
    // SAFETY: `sa` lives until this function returns; the engines run only
    // inside it.
    unsafe { push(&mut s, bind.user_data(0).build()) };
    push_safe(&mut s, opcode::Listen::new(lfd, 65535).user_data(0).build());
    push_safe(&mut s, opcode::AcceptMulti::new(lfd).user_data(1).build());
    let _ = s.submit();
    cqes.clear();
    s.reap(&mut cqes);
    // Warm both engines' fixed structures with one step each.
    let _ = c.submit();

    let (mut accepted, mut connected, mut issued) = (0usize, 0usize, 0usize);
    let t0 = Instant::now();
    while (accepted < n || connected < n) && t0.elapsed() < Duration::from_secs(120) {
        // Open connections in batches the SQ can take.
        let batch = (n - issued).min(1024);
        for i in issued..issued + batch {
            push_safe(
                &mut c,
                opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                    .user_data(2 << 32 | i as u64)
                    .build(),
            );
        }
        issued += batch;
        step(&mut c, &mut cc);
        cqes.clear();
        c.reap(&mut cqes);
        for q in &cqes {
            match q.user_data >> 32 {
                2 if q.res >= 0 => {
                    let sa = (&sa as *const libc::sockaddr_in).cast();
                    let connect = opcode::Connect::new(q.res, sa, 16);
                    // SAFETY: `sa` lives until this function returns; the engines
                    // run only inside it.
                    unsafe { push(&mut c, connect.user_data(3 << 32 | q.res as u64).build()) };
                }
                3 if q.res == 0 => connected += 1,
                2 | 3 => return Err(format!("connect failed: {}", q.res)),
                _ => {}
            }
        }
        step(&mut s, &mut sc);
        cqes.clear();
        s.reap(&mut cqes);
        for q in &cqes {
            if q.user_data == 1 {
                if q.res >= 0 {
                    accepted += 1;
                    fds.push(q.res);
                    push_safe(
                        &mut s,
                        opcode::RecvMulti::new(q.res, 0)
                            .user_data(4 << 32 | q.res as u64)
                            .build(),
                    );
                }
                if !more(q.flags) {
                    push_safe(&mut s, opcode::AcceptMulti::new(lfd).user_data(1).build());
                }
            }
        }
    }
    // Let both sides settle (handshake ACKs, the receives parked).
    for _ in 0..100 {
        step(&mut c, &mut cc);
        step(&mut s, &mut sc);
        cqes.clear();
        c.reap(&mut cqes);
        s.reap(&mut cqes);
    }
    if accepted < n || connected < n {
        return Err(format!(
            "only {accepted} accepted / {connected} connected of {n}"
        ));
    }
    let per = |b: i64| b as f64 / n as f64;
    let buffers = 2 * socket_buffer;
    let r = IdleMemory {
        connections: n,
        socket_buffers: buffers,
        server_bytes: per(sc),
        client_bytes: per(cc),
        server_without_buffers: per(sc) - buffers as f64,
        client_without_buffers: per(cc) - buffers as f64,
    };
    // Tear down: cancel the receives before the arena goes.
    push_safe(
        &mut s,
        opcode::AsyncCancel::new(0).any().user_data(0).build(),
    );
    let _ = s.submit();
    let _ = s.unregister_buf_ring(0);
    drop(arena);
    Ok(r)
}
