//! A fault-injecting [`Nic`] wrapper for tests: seeded loss, duplication and
//! reordering on the receive side of any NIC.
//!
//! [`FaultyNic`] pulls frames from the NIC it wraps and decides, for each one,
//! from a small PRNG seeded by [`FaultConfig::seed`]:
//!
//! 1. with probability `loss`, drop it;
//! 2. otherwise, with probability `duplicate`, deliver it twice;
//! 3. each copy, with probability `reorder`, is held back and delivered only
//!    after the next 1..=`max_delay_polls` calls to `rx_burst`, so frames
//!    that arrive later overtake it.
//!
//! Same seed and same frames from the inner NIC in the same polls give the
//! same delivered sequence, so a failing two-engine test replays exactly.
//! Transmit passes straight through; wrap the other end too for faults in
//! both directions.
//!
//! Duplicates and held frames need storage that outlives the inner NIC's
//! frame, so every surviving frame is copied into a buffer from the
//! wrapper's own pool (allocated by [`FaultyNic::new`]) and the inner frame
//! is released at once. The copy is the price of a test tool; nothing is
//! allocated per frame. When the pool runs low the wrapper takes fewer
//! frames from the inner NIC (they wait there, none is lost) and skips
//! duplication, so a small pool never turns into unplanned loss.

use std::collections::VecDeque;

use crate::nic::{Nic, NicCaps, NicCounters, TxError, RX_BURST};

/// Length of the Ethernet header, added to the MTU to size pool buffers.
const ETH_HEADER_LEN: usize = 14;

/// Pool size [`FaultyNic::new`] uses: frames the wrapper can hold at once,
/// counting those the engine has received and not yet released.
pub const DEFAULT_POOL_FRAMES: usize = 1024;

/// What faults a [`FaultyNic`] injects, and the seed that makes them
/// reproducible.
///
/// Build it from [`FaultConfig::default`] (no faults) and set what you need:
/// `FaultConfig { loss: 0.01, seed: 7, ..FaultConfig::default() }`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultConfig {
    /// Seed of the PRNG that takes every decision.
    pub seed: u64,
    /// Probability, in `0.0..=1.0`, that a received frame is dropped.
    pub loss: f64,
    /// Probability, in `0.0..=1.0`, that a frame that was not dropped is
    /// delivered twice.
    pub duplicate: f64,
    /// Probability, in `0.0..=1.0`, that a copy is held back (see
    /// `max_delay_polls`) rather than delivered in order.
    pub reorder: f64,
    /// A held copy is delivered after the next `1..=max_delay_polls`
    /// `rx_burst` calls, chosen uniformly. Zero counts as one.
    pub max_delay_polls: u32,
}

impl Default for FaultConfig {
    /// No faults; `max_delay_polls` 4 so that setting only `reorder` works.
    fn default() -> Self {
        FaultConfig {
            seed: 0x5EED,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            max_delay_polls: 4,
        }
    }
}

/// How many faults a [`FaultyNic`] has injected so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Frames dropped (they never reach the engine).
    pub dropped: u64,
    /// Extra copies delivered (a frame delivered twice counts once).
    pub duplicated: u64,
    /// Copies held back and delivered late.
    pub delayed: u64,
}

/// A frame received through a [`FaultyNic`]: a copy in one of the wrapper's
/// pool buffers. Give it back with [`Nic::rx_release`].
pub struct FaultFrame {
    buf: Box<[u8]>,
    len: u32,
}

impl FaultFrame {
    /// Length of the frame in bytes, Ethernet header included.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the frame has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for FaultFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// The engine rewrites a received segment's window field in place.
impl AsMut<[u8]> for FaultFrame {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len as usize]
    }
}

impl std::fmt::Debug for FaultFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultFrame")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to
/// decide faults; every output is a pure function of the seed and the
/// number of draws, which is all determinism needs.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p` (never for 0.0, always for 1.0).
    fn chance(&mut self, p: f64) -> bool {
        // The top 53 bits give a uniform f64 in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        unit < p
    }

    /// Uniform in `0..n` for `n >= 1` (multiply-shift, bias below 2^-32).
    fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// Wraps a [`Nic`] and injects seeded loss, duplication and reordering into
/// what it receives (see the [module docs](self)).
///
/// Counters: `rx_frames` and `rx_bytes` count what this wrapper hands to the
/// engine (duplicates included, dropped frames not); `rx_dropped` is the
/// inner NIC's plus the frames dropped here; transmit counters are the inner
/// NIC's. [`FaultyNic::stats`] breaks the faults down.
pub struct FaultyNic<N: Nic> {
    inner: N,
    cfg: FaultConfig,
    rng: SplitMix64,
    /// Length of every pool buffer: the inner NIC's MTU plus the Ethernet header.
    buf_len: usize,
    /// Number of pool buffers; the capacity of `free`, `ready` and `held`.
    pool_frames: usize,
    /// Empty pool buffers (a stack: the warmest buffer is reused first).
    free: Vec<Box<[u8]>>,
    /// Copies due for delivery, in delivery order.
    ready: VecDeque<FaultFrame>,
    /// Held copies and the poll number at which each becomes ready, in the
    /// order they were held.
    held: Vec<(u64, FaultFrame)>,
    /// Frames just taken from the inner NIC; capacity [`RX_BURST`].
    scratch: Vec<N::Frame>,
    /// Number of `rx_burst` calls so far: the clock that delays run on.
    polls: u64,
    stats: FaultStats,
    rx_frames: u64,
    rx_bytes: u64,
    /// Inner frames longer than a pool buffer, dropped (the inner NIC broke
    /// its own MTU); counted in `rx_dropped`.
    oversize: u64,
}

impl<N: Nic> FaultyNic<N> {
    /// Wraps `inner` with a pool of [`DEFAULT_POOL_FRAMES`] buffers.
    ///
    /// # Panics
    ///
    /// If a probability in `cfg` is outside `0.0..=1.0` or NaN.
    pub fn new(inner: N, cfg: FaultConfig) -> Self {
        Self::with_pool_frames(inner, cfg, DEFAULT_POOL_FRAMES)
    }

    /// Wraps `inner` with a pool of `pool_frames` buffers of the inner MTU
    /// plus 14 bytes each, all allocated now. The pool bounds the frames the
    /// wrapper holds at once (ready, held back, or out with the engine); a
    /// smaller pool only slows intake, it never loses frames.
    ///
    /// # Panics
    ///
    /// If a probability in `cfg` is outside `0.0..=1.0` or NaN, or
    /// `pool_frames` is zero.
    pub fn with_pool_frames(inner: N, cfg: FaultConfig, pool_frames: usize) -> Self {
        for (name, p) in [
            ("loss", cfg.loss),
            ("duplicate", cfg.duplicate),
            ("reorder", cfg.reorder),
        ] {
            assert!(
                (0.0..=1.0).contains(&p),
                "fault probability {name} = {p} is outside 0..=1"
            );
        }
        assert!(pool_frames > 0, "FaultyNic needs at least one pool buffer");
        let buf_len = inner.caps().mtu + ETH_HEADER_LEN;
        let mut free = Vec::with_capacity(pool_frames);
        free.extend((0..pool_frames).map(|_| vec![0u8; buf_len].into_boxed_slice()));
        FaultyNic {
            inner,
            cfg,
            rng: SplitMix64(cfg.seed),
            buf_len,
            pool_frames,
            free,
            ready: VecDeque::with_capacity(pool_frames),
            held: Vec::with_capacity(pool_frames),
            scratch: Vec::with_capacity(RX_BURST),
            polls: 0,
            stats: FaultStats::default(),
            rx_frames: 0,
            rx_bytes: 0,
            oversize: 0,
        }
    }

    /// Faults injected so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// The configuration this wrapper was built with.
    pub fn config(&self) -> &FaultConfig {
        &self.cfg
    }

    /// Frames taken from the inner NIC (copies, with duplicates) and not yet
    /// delivered: ready ones plus held-back ones. A test that drains a wire
    /// keeps polling until this is zero.
    pub fn pending_rx(&self) -> usize {
        self.ready.len() + self.held.len()
    }

    /// The wrapped NIC.
    pub fn inner(&self) -> &N {
        &self.inner
    }

    /// The wrapped NIC, mutably (e.g. to send through it directly).
    pub fn inner_mut(&mut self) -> &mut N {
        &mut self.inner
    }

    /// Decides the fate of one frame from the inner NIC. `later` is how many
    /// frames of this burst still wait for a buffer after this one.
    fn admit(&mut self, frame: N::Frame, later: usize) {
        // Draw every decision whether or not it can be honoured, so the
        // stream of draws depends only on the frames, not on pool pressure.
        if self.rng.chance(self.cfg.loss) {
            self.stats.dropped += 1;
            self.inner.rx_release(frame);
            return;
        }
        let twice = self.rng.chance(self.cfg.duplicate);
        let bytes = frame.as_ref();
        let len = bytes.len();
        let Some(mut buf) = (len <= self.buf_len).then(|| self.free.pop()).flatten() else {
            // Oversize (the intake is sized so a buffer is always free).
            debug_assert!(len > self.buf_len, "intake exceeded the pool");
            self.oversize += 1;
            self.inner.rx_release(frame);
            return;
        };
        buf[..len].copy_from_slice(bytes);
        self.inner.rx_release(frame);
        // `len <= buf_len`, and an MTU beyond u32 is not a NIC.
        let first = FaultFrame {
            buf,
            len: len as u32,
        };

        // A duplicate may only take a buffer the rest of the burst will not need.
        let second = if twice && self.free.len() > later {
            self.free.pop().map(|mut buf| {
                buf[..len].copy_from_slice(first.as_ref());
                self.stats.duplicated += 1;
                FaultFrame {
                    buf,
                    len: len as u32,
                }
            })
        } else {
            None
        };
        self.place(first);
        if let Some(second) = second {
            self.place(second);
        }
    }

    /// Queues a copy for delivery now, or holds it back for a few polls.
    fn place(&mut self, copy: FaultFrame) {
        if self.rng.chance(self.cfg.reorder) {
            let delay = 1 + u64::from(self.rng.below(self.cfg.max_delay_polls.max(1)));
            self.stats.delayed += 1;
            self.held.push((self.polls + delay, copy));
        } else {
            self.ready.push_back(copy);
        }
    }
}

impl<N: Nic> std::fmt::Debug for FaultyNic<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyNic")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats)
            .field("pool_frames", &self.pool_frames)
            .field("free", &self.free.len())
            .field("ready", &self.ready.len())
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl<N: Nic> Nic for FaultyNic<N> {
    type Frame = FaultFrame;

    /// The inner NIC's capabilities: faults never corrupt bytes, so its
    /// checksum offload still holds.
    fn caps(&self) -> NicCaps {
        self.inner.caps()
    }

    /// Each call is one tick of the delay clock: held copies that are due
    /// become ready first, then new frames are taken from the inner NIC (only
    /// as many as fit in `max` beside what is ready, and in the pool), then
    /// up to `max` (capped at [`RX_BURST`]) ready copies are delivered.
    fn rx_burst(&mut self, out: &mut Vec<FaultFrame>, max: usize) -> usize {
        let max = max.min(RX_BURST);
        self.polls += 1;
        let now = self.polls;
        for (_, copy) in self.held.extract_if(.., |(due, _)| *due <= now) {
            self.ready.push_back(copy);
        }

        let intake = max.saturating_sub(self.ready.len()).min(self.free.len());
        if intake > 0 {
            // Taken out of `self` so `admit` can borrow `self` mutably;
            // `mem::take` leaves an empty Vec, which does not allocate.
            let mut scratch = std::mem::take(&mut self.scratch);
            let n = self.inner.rx_burst(&mut scratch, intake);
            for (i, frame) in scratch.drain(..).enumerate() {
                self.admit(frame, n - i - 1);
            }
            self.scratch = scratch;
        }

        let mut delivered = 0;
        while delivered < max {
            let Some(copy) = self.ready.pop_front() else {
                break;
            };
            self.rx_frames += 1;
            self.rx_bytes += u64::from(copy.len);
            out.push(copy);
            delivered += 1;
        }
        delivered
    }

    /// A frame may be waiting: one is ready or held here (held copies come
    /// due only as `rx_burst` is called), or the inner NIC has one.
    fn rx_pending(&self) -> bool {
        self.pending_rx() > 0 || self.inner.rx_pending()
    }

    /// Returns the copy's buffer to the wrapper's pool.
    fn rx_release(&mut self, frame: FaultFrame) {
        // A frame from another wrapper is freed rather than adopted, so the
        // pool never outgrows its preallocated capacity.
        if frame.buf.len() == self.buf_len && self.free.len() < self.pool_frames {
            self.free.push(frame.buf);
        }
    }

    fn tx_frame(&mut self, len: usize, build: &mut dyn FnMut(&mut [u8])) -> Result<(), TxError> {
        self.inner.tx_frame(len, build)
    }

    fn tx_ready(&mut self) -> bool {
        self.inner.tx_ready()
    }

    fn tx_flush(&mut self) -> usize {
        self.inner.tx_flush()
    }

    /// Pending while a copy is ready or held here (held copies come due only
    /// as `rx_burst` ticks, so a driver must keep polling); otherwise the
    /// inner NIC's arming.
    fn rx_arm(&mut self, waker: &std::task::Waker) -> crate::nic::RxArm {
        if self.pending_rx() > 0 {
            return crate::nic::RxArm::Pending;
        }
        self.inner.rx_arm(waker)
    }

    fn rx_disarm(&mut self) {
        self.inner.rx_disarm();
    }

    fn counters(&self) -> NicCounters {
        let mut c = self.inner.counters();
        c.rx_frames = self.rx_frames;
        c.rx_bytes = self.rx_bytes;
        c.rx_dropped += self.stats.dropped + self.oversize;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback::{LoopbackPort, LoopbackWire, WireConfig};

    fn wire(frames: usize) -> (LoopbackPort, LoopbackPort) {
        LoopbackWire::pair(&WireConfig {
            frames_per_direction: frames,
            ..WireConfig::default()
        })
    }

    fn send_seq(port: &mut impl Nic, seq: u32) {
        port.tx_frame(64, &mut |b| {
            b.fill(0xAB);
            b[..4].copy_from_slice(&seq.to_le_bytes());
        })
        .unwrap();
    }

    fn seq_of(frame: &FaultFrame) -> u32 {
        let b = frame.as_ref();
        assert_eq!(b.len(), 64);
        assert!(b[4..].iter().all(|&x| x == 0xAB), "payload intact");
        u32::from_le_bytes(b[..4].try_into().unwrap())
    }

    /// Sends `count` numbered frames A -> B and returns what B's wrapper
    /// delivers, in order, and the wrapper.
    fn run(cfg: FaultConfig, count: u32) -> (Vec<u32>, FaultyNic<LoopbackPort>) {
        let (mut a, b) = wire(count as usize + 1);
        let mut b = FaultyNic::new(b, cfg);
        for seq in 0..count {
            send_seq(&mut a, seq);
        }
        a.tx_flush();
        let got = drain(&mut b, u64::from(count));
        (got, b)
    }

    /// Polls until every one of `count` sent frames is accounted for
    /// (delivered, possibly twice, or dropped) and nothing is left inside.
    fn drain<N: Nic>(b: &mut FaultyNic<N>, count: u64) -> Vec<u32> {
        let mut got = Vec::new();
        let mut out = Vec::with_capacity(RX_BURST);
        for _ in 0..1_000_000 {
            let s = b.stats();
            if got.len() as u64 + s.dropped == count + s.duplicated && b.pending_rx() == 0 {
                return got;
            }
            b.rx_burst(&mut out, RX_BURST);
            for f in out.drain(..) {
                got.push(seq_of(&f));
                b.rx_release(f);
            }
        }
        panic!(
            "frames went missing: got {} of {count}, {:?}",
            got.len(),
            b.stats()
        );
    }

    #[test]
    fn no_faults_is_transparent() {
        let (got, b) = run(FaultConfig::default(), 5000);
        assert_eq!(got, (0..5000).collect::<Vec<_>>());
        assert_eq!(b.stats(), FaultStats::default());
        let c = b.counters();
        assert_eq!(
            (c.rx_frames, c.rx_bytes, c.rx_dropped),
            (5000, 5000 * 64, 0)
        );
        assert_eq!(
            b.free.len(),
            DEFAULT_POOL_FRAMES,
            "every buffer back in the pool"
        );
    }

    #[test]
    fn rx_pending_sees_the_wire_and_held_copies() {
        let (mut a, b) = wire(8);
        let mut b = FaultyNic::new(
            b,
            FaultConfig {
                seed: 3,
                reorder: 1.0,
                max_delay_polls: 3,
                ..FaultConfig::default()
            },
        );
        assert!(!b.rx_pending(), "nothing sent");
        send_seq(&mut a, 0);
        a.tx_flush();
        assert!(b.rx_pending(), "on the wire");
        let mut out = Vec::new();
        b.rx_burst(&mut out, RX_BURST);
        assert!(out.is_empty() && b.rx_pending(), "held, still pending");
        let got = drain(&mut b, 1);
        assert_eq!(got, vec![0]);
        assert!(!b.rx_pending(), "all delivered");
    }

    #[test]
    fn loss_drops_about_the_right_share() {
        let cfg = FaultConfig {
            seed: 42,
            loss: 0.1,
            ..FaultConfig::default()
        };
        let (got, b) = run(cfg, 10_000);
        let dropped = b.stats().dropped;
        // Binomial(10000, 0.1): mean 1000, sd 30.
        assert!((850..=1150).contains(&dropped), "dropped {dropped}");
        assert_eq!(
            got.len() as u64,
            10_000 - dropped,
            "drop count equals frames missing"
        );
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "loss alone keeps order, no repeats"
        );
        assert_eq!(b.counters().rx_dropped, dropped);
        assert_eq!(b.stats().duplicated + b.stats().delayed, 0);
    }

    #[test]
    fn same_seed_same_sequence() {
        let cfg = FaultConfig {
            seed: 9,
            loss: 0.05,
            duplicate: 0.05,
            reorder: 0.1,
            max_delay_polls: 5,
        };
        let (first, s1) = run(cfg, 10_000);
        let (second, s2) = run(cfg, 10_000);
        assert_eq!(first, second);
        assert_eq!(s1.stats(), s2.stats());
        let (other, _) = run(FaultConfig { seed: 10, ..cfg }, 10_000);
        assert_ne!(first, other, "a different seed gives different faults");
    }

    #[test]
    fn duplication_and_reorder_deliver_every_frame() {
        let cfg = FaultConfig {
            seed: 3,
            loss: 0.0,
            duplicate: 0.1,
            reorder: 0.1,
            max_delay_polls: 8,
        };
        let (got, b) = run(cfg, 10_000);
        let s = b.stats();
        assert!(s.duplicated > 800 && s.delayed > 800, "{s:?}");
        assert_eq!(got.len() as u64, 10_000 + s.duplicated);
        let mut times = vec![0u32; 10_000];
        for &seq in &got {
            times[seq as usize] += 1;
        }
        assert!(
            times.iter().all(|&t| t == 1 || t == 2),
            "every frame once or twice"
        );
        assert_eq!(
            times.iter().filter(|&&t| t == 2).count() as u64,
            s.duplicated
        );
        assert!(
            got.windows(2).any(|w| w[1] < w[0]),
            "some frames arrive out of order"
        );
        assert_eq!(b.free.len(), DEFAULT_POOL_FRAMES);
    }

    #[test]
    fn delay_is_bounded_in_polls() {
        // One frame per poll, every copy delayed: each must arrive 1..=3
        // polls after the poll that took it.
        let cfg = FaultConfig {
            seed: 1,
            reorder: 1.0,
            max_delay_polls: 3,
            ..FaultConfig::default()
        };
        let (mut a, b) = wire(64);
        let mut b = FaultyNic::new(b, cfg);
        let mut out = Vec::with_capacity(RX_BURST);
        let mut seen_delays = [0u32; 4];
        for poll in 0..200u32 {
            if poll < 190 {
                send_seq(&mut a, poll);
                a.tx_flush();
            }
            b.rx_burst(&mut out, RX_BURST);
            for f in out.drain(..) {
                let delay = poll - seq_of(&f);
                assert!((1..=3).contains(&delay), "delay {delay}");
                seen_delays[delay as usize] += 1;
                b.rx_release(f);
            }
        }
        assert!(seen_delays[1..].iter().all(|&n| n > 30), "{seen_delays:?}");
        assert_eq!(b.stats().delayed, 190);
        assert_eq!(b.pending_rx(), 0);
    }

    #[test]
    fn small_pool_backpressures_without_loss() {
        let cfg = FaultConfig {
            seed: 5,
            duplicate: 0.5,
            reorder: 0.3,
            max_delay_polls: 4,
            ..FaultConfig::default()
        };
        let (mut a, b) = wire(3000);
        let mut b = FaultyNic::with_pool_frames(b, cfg, 3);
        for seq in 0..2000 {
            send_seq(&mut a, seq);
        }
        a.tx_flush();
        let got = drain(&mut b, 2000);
        let mut seen = vec![false; 2000];
        for &s in &got {
            seen[s as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every frame delivered");
        assert_eq!(got.len() as u64, 2000 + b.stats().duplicated);
        assert_eq!(b.free.len(), 3);
    }

    #[test]
    fn rx_burst_honours_max() {
        let cfg = FaultConfig {
            seed: 2,
            duplicate: 1.0,
            ..FaultConfig::default()
        };
        let (mut a, b) = wire(64);
        let mut b = FaultyNic::new(b, cfg);
        for seq in 0..10 {
            send_seq(&mut a, seq);
        }
        a.tx_flush();
        let mut out = Vec::with_capacity(RX_BURST);
        assert_eq!(b.rx_burst(&mut out, 3), 3);
        assert_eq!(b.rx_burst(&mut out, 3), 3);
        assert_eq!(
            out.iter().map(seq_of).collect::<Vec<_>>(),
            [0, 0, 1, 1, 2, 2]
        );
    }

    #[test]
    fn transmit_passes_through() {
        let (a, mut b) = wire(16);
        let mut a = FaultyNic::new(
            a,
            FaultConfig {
                loss: 1.0,
                ..FaultConfig::default()
            },
        );
        assert_eq!(a.caps(), a.inner().caps());
        send_seq(&mut a, 7);
        assert_eq!(a.tx_frame(1515, &mut |_| ()), Err(TxError::TooBig(1515)));
        assert_eq!(a.tx_flush(), 1);
        let mut out = Vec::with_capacity(RX_BURST);
        assert_eq!(b.rx_burst(&mut out, RX_BURST), 1);
        assert_eq!(&out[0].as_ref()[..4], 7u32.to_le_bytes());
        assert_eq!(a.counters().tx_frames, 1);
        assert_eq!(a.counters().tx_dropped, 1);
    }

    #[test]
    #[should_panic(expected = "loss")]
    fn bad_probability() {
        let (a, _b) = wire(4);
        FaultyNic::new(
            a,
            FaultConfig {
                loss: 1.5,
                ..FaultConfig::default()
            },
        );
    }
}
