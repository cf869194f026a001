//! The loopback wire across two threads: numbered frames from one port to the
//! other arrive complete, intact and in order, with buffers recycled.

use std::thread;

use ringline_dataplane::{LoopbackWire, Nic, TxError, WireConfig, RX_BURST};

const FRAMES: u64 = 1_000_000;

#[test]
fn two_threads_in_order_and_complete() {
    // A small pool so buffers really recycle, and a wire queue shorter than
    // the pool so partial flushes happen too.
    let cfg = WireConfig {
        frames_per_direction: 512,
        wire_queue_len: Some(128),
        ..WireConfig::default()
    };
    let (mut a, mut b) = LoopbackWire::pair(&cfg);

    let sender = thread::spawn(move || {
        let mut seq = 0u64;
        while seq < FRAMES {
            let built = a.tx_frame(64, &mut |buf| {
                buf[..8].copy_from_slice(&seq.to_le_bytes());
                buf[8..].fill(seq as u8);
            });
            match built {
                Ok(()) => seq += 1,
                Err(TxError::Full) => {
                    if a.tx_flush() == 0 {
                        thread::yield_now();
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
        while a.tx_queued() > 0 {
            if a.tx_flush() == 0 {
                thread::yield_now();
            }
        }
        a.counters()
    });

    let receiver = thread::spawn(move || {
        let mut out = Vec::with_capacity(RX_BURST);
        let mut next = 0u64;
        while next < FRAMES {
            if b.rx_burst(&mut out, RX_BURST) == 0 {
                thread::yield_now();
                continue;
            }
            for f in out.drain(..) {
                let bytes = f.as_ref();
                assert_eq!(bytes.len(), 64);
                let seq = u64::from_le_bytes(bytes[..8].try_into().unwrap());
                assert_eq!(seq, next, "frames out of order or missing");
                assert!(
                    bytes[8..].iter().all(|&x| x == seq as u8),
                    "payload of {seq}"
                );
                next += 1;
                b.rx_release(f);
            }
        }
        b.counters()
    });

    let tx = sender.join().unwrap();
    let rx = receiver.join().unwrap();
    assert_eq!(tx.tx_frames, FRAMES);
    assert_eq!(rx.rx_frames, FRAMES);
    assert_eq!(rx.rx_bytes, FRAMES * 64);
    assert_eq!(rx.rx_dropped, 0);
}
