//! The floor of a ringline round trip: one frame passed over the loopback
//! wire's queues to a thread on the other core, which sends it straight
//! back, with no engine, no TCP and no ring in between. An echo over
//! ringline cannot beat this; `echo --connections 1` is judged against it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringline_dataplane::{LoopbackWire, Nic, WireConfig, RX_BURST};
use serde::Serialize;

use super::harness::{bench_thread, CLIENT_CORE, SERVER_CORE};
use crate::loadgen::new_histogram;

/// Frame ping-pong latency.
#[derive(Serialize, Clone, Debug)]
pub struct Floor {
    /// Round trips measured.
    pub round_trips: u64,
    /// Frame length in bytes (Ethernet + IPv4 + TCP + a 128-byte payload).
    pub frame_len: usize,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
}

/// Ping-pongs one `frame_len`-byte frame `round_trips` times between a
/// thread on the client core and one on the server core (after a warm-up).
pub fn measure(round_trips: u64, frame_len: usize) -> Floor {
    let (mut ping, mut pong) = LoopbackWire::pair(&WireConfig {
        frames_per_direction: 64,
        ..WireConfig::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let echo = std::thread::spawn(move || {
        bench_thread(SERVER_CORE);
        let mut out = Vec::with_capacity(RX_BURST);
        while !stop2.load(Ordering::Relaxed) {
            if pong.rx_burst(&mut out, RX_BURST) == 0 {
                std::hint::spin_loop();
                continue;
            }
            for f in out.drain(..) {
                let len = f.len();
                let _ = pong.tx_frame(len, &mut |b| b.copy_from_slice(f.as_ref()));
                pong.rx_release(f);
            }
            pong.tx_flush();
        }
    });
    let r = std::thread::spawn(move || {
        bench_thread(CLIENT_CORE);
        let mut out = Vec::with_capacity(RX_BURST);
        let mut hist = new_histogram();
        let warmup = round_trips / 10;
        for k in 0..warmup + round_trips {
            let t = Instant::now();
            let _ = ping.tx_frame(frame_len, &mut |b| {
                b.fill(0);
                b[..8].copy_from_slice(&k.to_le_bytes());
            });
            ping.tx_flush();
            let deadline = t + Duration::from_secs(1);
            loop {
                if ping.rx_burst(&mut out, RX_BURST) > 0 {
                    break;
                }
                if Instant::now() > deadline {
                    break;
                }
                std::hint::spin_loop();
            }
            let dt = t.elapsed();
            for f in out.drain(..) {
                ping.rx_release(f);
            }
            if k >= warmup {
                let _ = hist.record(dt.as_nanos() as u64);
            }
        }
        hist
    })
    .join()
    .expect("ping thread");
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();
    Floor {
        round_trips,
        frame_len,
        p50_us: r.value_at_quantile(0.5) as f64 / 1000.0,
        p99_us: r.value_at_quantile(0.99) as f64 / 1000.0,
        mean_us: r.mean() / 1000.0,
    }
}
