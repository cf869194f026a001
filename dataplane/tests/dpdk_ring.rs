//! DPDK on the `net_ring` virtual device: `--vdev=net_ring0` creates a port
//! whose TX queue and RX queue share one ring, so every frame sent comes back.
//! Exercises the zero-copy path end to end: tx_frame -> tx_flush -> rx_burst,
//! a TX burst the device takes only partly, and that no mbuf leaks.
//!
//! The EAL can be initialised once per process, so this binary has one test.
#![cfg(feature = "dpdk")]

use ringline_dataplane::dpdk::{DpdkPort, Eal, Mempool, MempoolConfig, PortConfig};
use ringline_dataplane::{Nic, TxError, RX_BURST};

/// EAL options that need no hugepages, no PCI and no shared config (so
/// concurrent runs cannot collide: with --no-shconf the EAL opens no
/// multi-process channel and no lock file under its runtime directory).
fn eal_args() -> Vec<String> {
    [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--file-prefix=ringline-test",
        "--vdev=net_ring0",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// Length of frame `seq`: every size from 60 to 1514 bytes over the run.
fn frame_len(seq: u32) -> usize {
    60 + (seq as usize * 7919) % (1514 - 60 + 1)
}

/// Fills a frame with its sequence number and a pattern derived from it.
fn fill(seq: u32, buf: &mut [u8]) {
    buf[..4].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in buf[4..].iter_mut().enumerate() {
        *b = (seq as usize * 31 + i) as u8;
    }
}

/// Checks a received frame is frame `seq`, byte for byte.
fn check(seq: u32, frame: &[u8]) {
    assert_eq!(frame.len(), frame_len(seq), "length of frame {seq}");
    let mut want = vec![0u8; frame.len()];
    fill(seq, &mut want);
    assert!(frame == want.as_slice(), "bytes of frame {seq} differ");
}

/// Queues frame `seq` on the port.
fn send(port: &mut DpdkPort, seq: u32) -> Result<(), TxError> {
    port.tx_frame(frame_len(seq), &mut |buf| fill(seq, buf))
}

/// Receives everything available, checking order and contents; returns the
/// next sequence number expected.
fn drain(port: &mut DpdkPort, rx: &mut Vec<ringline_dataplane::dpdk::Mbuf>, mut next: u32) -> u32 {
    loop {
        let n = port.rx_burst(rx, RX_BURST);
        if n == 0 {
            return next;
        }
        for frame in rx.drain(..) {
            check(next, frame.as_ref());
            next += 1;
            port.rx_release(frame);
        }
    }
}

#[test]
fn net_ring_round_trip() {
    let eal = Eal::init(&eal_args()).expect("EAL init with --no-huge and net_ring0");
    assert_eq!(eal.port_count(), 1, "net_ring0 is the only port");
    assert!(
        Eal::init(&eal_args()).is_err(),
        "a second init must fail, not panic"
    );

    let pool_config = MempoolConfig {
        mbufs: 4095,
        cache_size: 32,
        ..MempoolConfig::default()
    };
    let pool = Mempool::new(&eal, "ringline_test", &pool_config).expect("mbuf pool");
    assert_eq!(pool.available(), 4095);

    let config = PortConfig {
        tx_batch: 64,
        ..PortConfig::default()
    };
    let mut port =
        DpdkPort::open_by_name(&eal, "net_ring0", &pool, &config).expect("open net_ring0");
    assert_eq!(port.driver(), "net_ring");
    let caps = port.caps();
    assert_eq!(caps.mtu, 1500);
    assert!(
        !caps.rx_checksum_offload && !caps.tx_checksum_offload,
        "net_ring has no checksum offload"
    );
    assert!(port.link().up);

    let mut rx = Vec::with_capacity(RX_BURST);

    // 1. 10,000 frames, in bursts of 32, each one back byte for byte.
    const FRAMES: u32 = 10_000;
    let mut next_tx = 0u32;
    let mut next_rx = 0u32;
    while next_tx < FRAMES {
        let burst = (FRAMES - next_tx).min(RX_BURST as u32);
        for _ in 0..burst {
            send(&mut port, next_tx).expect("room in the batch");
            next_tx += 1;
        }
        assert_eq!(
            port.tx_flush(),
            burst as usize,
            "an empty ring takes the whole burst"
        );
        next_rx = drain(&mut port, &mut rx, next_rx);
        assert_eq!(next_rx, next_tx, "every frame sent came back");
    }
    assert_eq!(
        pool.available(),
        4095,
        "all mbufs back in the pool after the round trip"
    );

    // 2. Fill the device's ring until it refuses frames: the TX burst is then
    //    partial, the unsent mbufs stay queued, and tx_frame reports Full once
    //    the batch is full too. Nothing is lost.
    //    `tx_ready` says so before `tx_frame` has to refuse: the engine asks
    //    it before every segment, so a segment is never built for a NIC that
    //    cannot take it (and lost until TCP's retransmission timer).
    let mut refused = false;
    for _ in 0..4 * 1024 {
        let ready = port.tx_ready();
        let r = send(&mut port, next_tx);
        assert_eq!(ready, r.is_ok(), "tx_ready said {ready}, tx_frame {r:?}");
        match r {
            Ok(()) => next_tx += 1,
            Err(TxError::Full) => {
                refused = true;
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(refused, "a full ring and a full batch must refuse frames");
    assert_eq!(port.pending_tx(), 64, "the unsent frames stay in the batch");
    assert!(!port.tx_ready(), "full batch, full ring: not ready");
    assert_eq!(port.tx_flush(), 0, "the ring is still full");
    next_rx = drain(&mut port, &mut rx, next_rx);
    assert_eq!(port.tx_flush(), 64, "once drained, the kept frames go out");
    next_rx = drain(&mut port, &mut rx, next_rx);
    assert_eq!(
        next_rx, next_tx,
        "no frame lost or reordered across the partial bursts"
    );
    assert_eq!(
        pool.available(),
        4094,
        "every mbuf back but the one tx_ready holds for the next frame"
    );

    // 3. Too big: refused before build runs.
    let mut called = false;
    let err = port.tx_frame(1515, &mut |_| called = true);
    assert_eq!(err, Err(TxError::TooBig(1515)));
    assert!(!called);

    let counters = port.counters();
    assert_eq!(counters.tx_frames, u64::from(next_tx));
    assert_eq!(counters.rx_frames, u64::from(next_rx));
    assert_eq!(counters.rx_dropped, 0);

    // 3b. An empty mbuf pool: `tx_ready` says no before `tx_frame` has to
    //     refuse (it holds the mbuf it promises). Everything but three mbufs
    //     is taken out of the pool first.
    let mut held = Vec::new();
    while let Some(m) = pool.alloc() {
        held.push(m);
    }
    held.truncate(held.len() - 3);
    let mut accepted = 0;
    loop {
        let ready = port.tx_ready();
        let r = send(&mut port, next_tx);
        assert_eq!(
            ready,
            r.is_ok(),
            "empty pool: tx_ready {ready}, tx_frame {r:?}"
        );
        if r.is_err() {
            break;
        }
        next_tx += 1;
        accepted += 1;
    }
    assert_eq!(
        accepted, 4,
        "the three left in the pool and the one tx_ready already held"
    );
    assert_eq!(port.tx_flush(), 4);
    next_rx = drain(&mut port, &mut rx, next_rx);
    assert_eq!(next_rx, next_tx);
    drop(held);

    // 4. Frames still queued (unflushed) and frames left in the device's ring
    //    are freed when the port is dropped.
    for _ in 0..10 {
        send(&mut port, next_tx).expect("room");
        next_tx += 1;
    }
    assert_eq!(port.tx_flush(), 10);
    for _ in 0..5 {
        send(&mut port, next_tx).expect("room");
        next_tx += 1;
    }
    assert!(pool.available() < 4095);
    drop(port);
    assert_eq!(
        pool.available(),
        4095,
        "dropping the port returns every mbuf"
    );
    assert_eq!(pool.in_use(), 0);

    // 5. An mbuf that outlives its pool's last handle keeps the pool (and
    //    the EAL) alive instead of dangling: it can still be written, read
    //    and freed.
    let mut survivor = pool.alloc().expect("an mbuf");
    drop(pool);
    survivor
        .append(4)
        .expect("tailroom")
        .copy_from_slice(b"live");
    assert_eq!(survivor.data(), b"live");
    drop(survivor);
    drop(eal);
}
