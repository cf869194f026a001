//! Two `net_ring` ports joined back to back ([`net_ring_pair`]), the second
//! one driven from another thread through [`EalShare`]: frames cross in both
//! directions, in order, byte for byte, and a port's MAC can be set.
//!
//! The EAL can be initialised once per process, so this binary has one test.
#![cfg(feature = "dpdk")]

use std::sync::mpsc;

use ringline_dataplane::dpdk::{
    net_ring_pair, DpdkError, DpdkPort, Eal, Mempool, MempoolConfig, PortConfig,
};
use ringline_dataplane::{Nic, RX_BURST};

fn eal_args() -> Vec<String> {
    [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--file-prefix=ringline-pair-test",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn pool_config() -> MempoolConfig {
    MempoolConfig {
        mbufs: 4095,
        cache_size: 0,
        ..MempoolConfig::default()
    }
}

/// Sends `n` numbered frames of 100 bytes.
fn send(port: &mut DpdkPort, from: u32, n: u32) {
    for seq in from..from + n {
        // A full ring (the peer is behind) refuses frames: retry.
        while port
            .tx_frame(100, &mut |b| {
                b.fill(seq as u8);
                b[..4].copy_from_slice(&seq.to_be_bytes());
            })
            .is_err()
        {
            std::thread::yield_now();
        }
    }
    while port.pending_tx() > 0 {
        port.tx_flush();
    }
}

/// Receives `n` frames, checking they are `from..from + n` in order.
fn receive(port: &mut DpdkPort, from: u32, n: u32) {
    let mut rx = Vec::with_capacity(RX_BURST);
    let mut next = from;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while next < from + n {
        assert!(
            std::time::Instant::now() < deadline,
            "frame {next} never came"
        );
        port.rx_burst(&mut rx, RX_BURST);
        for f in rx.drain(..) {
            let b = f.as_ref();
            assert_eq!(b.len(), 100);
            assert_eq!(u32::from_be_bytes([b[0], b[1], b[2], b[3]]), next);
            assert!(b[4..].iter().all(|&x| x == next as u8));
            next += 1;
            port.rx_release(f);
        }
    }
}

#[test]
fn ring_pair_across_threads() {
    let eal = Eal::init(&eal_args()).expect("EAL init");
    assert!(net_ring_pair(&eal, "", 1024).is_err(), "empty name");
    assert!(
        net_ring_pair(&eal, "p", 1000).is_err(),
        "slots not a power of two"
    );
    let [a, b] = net_ring_pair(&eal, "t", 1024).expect("ring pair");
    assert_eq!(eal.port_count(), 2);
    assert_eq!(eal.port_by_name("net_ring_t_b").expect("by name"), b);
    assert!(net_ring_pair(&eal, "t", 1024).is_err(), "names are unique");

    let pool = Mempool::new(&eal, "pair_a", &pool_config()).expect("pool a");
    let mut port_a = DpdkPort::open(&eal, a, &pool, &PortConfig::default()).expect("port a");
    // net_ring cannot change its MAC: a typed error, and the caps keep the old one.
    let before = port_a.caps().mac;
    assert!(matches!(
        port_a.set_mac([0x02, 0, 0, 0, 0, 0xaa]),
        Err(DpdkError::Port { errno: 95, .. })
    ));
    assert_eq!(port_a.caps().mac, before);
    assert!(
        matches!(
            port_a.set_mac([0x01, 0, 0, 0, 0, 1]),
            Err(DpdkError::Config(_))
        ),
        "multicast refused"
    );

    let share = eal.share();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let eal = share.attach();
        let pool = Mempool::new(&eal, "pair_b", &pool_config()).expect("pool b");
        let mut port_b = DpdkPort::open(&eal, b, &pool, &PortConfig::default()).expect("port b");
        ready_tx.send(()).expect("main waits");
        // Echo: receive 5,000 frames from a, send 5,000 back.
        receive(&mut port_b, 0, 5_000);
        send(&mut port_b, 100_000, 5_000);
        done_rx.recv().expect("main says done");
        drop(port_b);
        assert_eq!(pool.in_use(), 0, "b's mbufs all back");
    });
    ready_rx.recv().expect("peer ready");
    for chunk in 0..50 {
        send(&mut port_a, chunk * 100, 100);
    }
    receive(&mut port_a, 100_000, 5_000);
    done_tx.send(()).expect("peer waits");
    peer.join().expect("peer thread");
    drop(port_a);
    assert_eq!(pool.in_use(), 0, "a's mbufs all back");
}
