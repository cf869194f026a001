//! The echo server: multishot accept, multishot recv into a shared buffer
//! ring, and a SEND straight out of each received buffer (the buffer goes back
//! to the ring when its SEND completes). Runs on any NIC.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ringline::Runtime;
use ringline_dataplane::Nic;
use ringline_ring::abi::{buffer_id, more, Cqe};
use ringline_ring::bufring::BufRing;
use ringline_ring::opcode;

use crate::sys::push;

/// Buffer group the server's multishot receives draw from.
const BGID: u16 = 0;

/// User-data tags (top byte).
const T_ACCEPT: u64 = 1;
const T_RECV: u64 = 2;
const T_SEND: u64 = 3;
const T_CLOSE: u64 = 4;
const T_SETUP: u64 = 5;

fn ud(tag: u64, bid: u16, fd: i32) -> u64 {
    (tag << 56) | ((bid as u64) << 32) | fd as u32 as u64
}

fn split(ud: u64) -> (u64, u16, i32) {
    (ud >> 56, (ud >> 32) as u16, ud as u32 as i32)
}

/// Server counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Bytes echoed.
    pub bytes: u64,
    /// Errors seen in CQEs (other than EOF and expected resets).
    pub errors: u64,
}

/// Options for the echo server.
#[derive(Clone, Debug)]
pub struct EchoOpts {
    /// Port to listen on.
    pub port: u16,
    /// Provided buffers in the ring (power of two).
    pub buffers: u32,
    /// Size of each provided buffer.
    pub buffer_size: u32,
}

impl Default for EchoOpts {
    fn default() -> Self {
        EchoOpts { port: 7, buffers: 8192, buffer_size: 2048 }
    }
}


/// Runs the echo server until `stop` is set; sets `ready` once it listens.
/// Returns its counters.
pub fn serve<N: Nic>(
    rt: &mut Runtime<N>,
    ip: Ipv4Addr,
    opts: &EchoOpts,
    ready: &AtomicBool,
    stop: &AtomicBool,
) -> Result<EchoStats, String> {
    let mut stats = EchoStats::default();
    let mut ring: BufRing =
        rt.register_buf_ring(opts.buffers, BGID).map_err(|e| format!("buffer ring: {e}"))?;
    let size = opts.buffer_size as usize;
    let mut mem = vec![0u8; opts.buffers as usize * size];
    let base = mem.as_mut_ptr() as u64;
    for bid in 0..opts.buffers {
        ring.add_and_advance(base + bid as u64 * size as u64, opts.buffer_size, bid as u16);
    }
    let mut free_bufs = opts.buffers as usize;

    // socket / bind / listen, synchronously.
    let sa = ringline_ring::app::sockaddr_in(ip.octets(), opts.port);
    let setup = |rt: &mut Runtime<N>, sqe| -> Result<i32, String> {
        push(rt, sqe);
        rt.submit_and_wait(1).map_err(|e| e.to_string())?;
        let c = rt.wait_cqe().map_err(|e| e.to_string())?;
        rt.cqe_seen();
        if c.res < 0 {
            return Err(format!("setup op failed: {}", ringline_ring::app::Errno(-c.res)));
        }
        Ok(c.res)
    };
    let lfd = setup(rt, opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).user_data(ud(T_SETUP, 0, 0)).build())?;
    setup(
        rt,
        opcode::Bind::new(lfd, &sa as *const libc::sockaddr_in as *const libc::sockaddr, 16)
            .user_data(ud(T_SETUP, 0, 0))
            .build(),
    )?;
    setup(rt, opcode::Listen::new(lfd, 65535).user_data(ud(T_SETUP, 0, 0)).build())?;
    push(rt, opcode::AcceptMulti::new(lfd).user_data(ud(T_ACCEPT, 0, lfd)).build());
    // The load may start now (pairs with the Acquire load in the caller).
    ready.store(true, Ordering::Release);

    // Connections whose multishot recv ended for lack of buffers.
    let mut starved: Vec<i32> = Vec::new();
    let mut cqes: Vec<Cqe> = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        match rt.submit_and_wait_timeout(1, Duration::from_millis(5)) {
            Ok(_) => {}
            Err(e) if e.0 == libc::ETIME => {}
            Err(e) => return Err(format!("enter: {e}")),
        }
        cqes.clear();
        cqes.extend(rt.completions());
        for c in &cqes {
            let (tag, bid, fd) = split(c.user_data);
            match tag {
                T_ACCEPT => {
                    if c.res >= 0 {
                        stats.accepted += 1;
                        push(rt, opcode::RecvMulti::new(c.res, BGID).user_data(ud(T_RECV, 0, c.res)).build());
                    } else {
                        stats.errors += 1;
                    }
                    if !more(c.flags) {
                        push(rt, opcode::AcceptMulti::new(lfd).user_data(ud(T_ACCEPT, 0, lfd)).build());
                    }
                }
                T_RECV => {
                    if c.res > 0 {
                        let b = buffer_id(c.flags).expect("recv CQE with data has a buffer");
                        free_bufs -= 1;
                        let addr = base + b as u64 * size as u64;
                        stats.bytes += c.res as u64;
                        push(
                            rt,
                            opcode::Send::new(fd, addr as *const u8, c.res as u32)
                                .flags(libc::MSG_WAITALL)
                                .user_data(ud(T_SEND, b, fd))
                                .build(),
                        );
                    }
                    if !more(c.flags) {
                        if c.res > 0 {
                            push(rt, opcode::RecvMulti::new(fd, BGID).user_data(ud(T_RECV, 0, fd)).build());
                        } else if c.res == -libc::ENOBUFS {
                            starved.push(fd);
                        } else {
                            if c.res < 0 && c.res != -libc::ECONNRESET && c.res != -libc::ECANCELED {
                                stats.errors += 1;
                            }
                            push(rt, opcode::Close::new(fd).user_data(ud(T_CLOSE, 0, fd)).build());
                        }
                    }
                }
                T_SEND => {
                    // The buffer is free again: back to the ring.
                    ring.add_and_advance(base + bid as u64 * size as u64, opts.buffer_size, bid);
                    free_bufs += 1;
                    if c.res < 0 && c.res != -libc::ECONNRESET && c.res != -libc::EPIPE {
                        stats.errors += 1;
                    }
                }
                _ => {}
            }
        }
        if !starved.is_empty() && free_bufs > opts.buffers as usize / 4 {
            for fd in starved.drain(..) {
                push(rt, opcode::RecvMulti::new(fd, BGID).user_data(ud(T_RECV, 0, fd)).build());
            }
        }
    }
    // Nothing may reference `mem` after it is freed: cancel every request in
    // flight (parked SENDs point into it) and take the ring away.
    push(rt, opcode::AsyncCancel::new(0).any().user_data(ud(T_SETUP, 0, 0)).build());
    let _ = rt.submit();
    let _ = rt.unregister_buf_ring(BGID);
    drop(mem);
    Ok(stats)
}
