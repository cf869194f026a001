//! The relay's impairment of one direction, without I/O: frames and `now`
//! go in, frames due for transmission come out (the driver in
//! [`super::run`] owns the sockets and the clock).
//!
//! Each frame that is impaired draws the same six numbers from the
//! direction's seeded generator, whatever happens to it, so the fate of the
//! n-th frame of a direction depends only on the seed and n: loss,
//! duplication, corruption (and where), reordering, jitter. A frame that is
//! kept waits in a timed queue (a heap ordered by release time, then by
//! arrival), so a delay costs no throughput: nothing sleeps per frame.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use serde::Serialize;

use super::frame;

/// What one direction does to the frames it carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Spec {
    /// Frames dropped, in percent.
    pub loss: f64,
    /// Fixed delay of every frame, ms.
    pub delay_ms: f64,
    /// Extra delay of each frame, uniform in `0..=jitter_ms` (reorders
    /// frames closer together than the jitter).
    pub jitter_ms: f64,
    /// Frames held back by `gap_ms` more than the others, in percent: the
    /// frames that follow within the gap overtake them.
    pub reorder: f64,
    /// How long a reordered frame is held back, ms.
    pub gap_ms: f64,
    /// Frames sent twice, in percent.
    pub dup: f64,
    /// Frames with one byte flipped (inverted) after the Ethernet header, in
    /// percent; checksums catch it, so the receiver must drop the frame.
    pub corrupt: f64,
}

/// The default hold-back of a reordered frame.
pub const DEFAULT_GAP_MS: f64 = 2.0;

impl Spec {
    /// No impairment.
    pub const CLEAN: Spec = Spec {
        loss: 0.0,
        delay_ms: 0.0,
        jitter_ms: 0.0,
        reorder: 0.0,
        gap_ms: DEFAULT_GAP_MS,
        dup: 0.0,
        corrupt: 0.0,
    };

    /// Parses `loss=2,delay=5,jitter=1,reorder=25,gap=2,dup=1,corrupt=0.5`
    /// (percentages and milliseconds; any subset, any order), or `none`.
    /// Keys not given keep the value in `base`.
    pub fn parse(s: &str, base: Spec) -> Result<Spec, String> {
        let mut spec = base;
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(spec);
        }
        for item in s.split(',') {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?}: expected KEY=VALUE"))?;
            let v: f64 = value
                .trim()
                .trim_end_matches("ms")
                .trim_end_matches('%')
                .parse()
                .map_err(|_| format!("{item:?}: {value:?} is not a number"))?;
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{item:?}: must be a number >= 0"));
            }
            let pct = |v: f64| {
                if v > 100.0 {
                    Err(format!("{item:?}: a percentage must be <= 100"))
                } else {
                    Ok(v)
                }
            };
            let ms = |v: f64| {
                if v > 10_000.0 {
                    Err(format!("{item:?}: at most 10000 ms"))
                } else {
                    Ok(v)
                }
            };
            match key.trim() {
                "loss" => spec.loss = pct(v)?,
                "delay" => spec.delay_ms = ms(v)?,
                "jitter" => spec.jitter_ms = ms(v)?,
                "reorder" => spec.reorder = pct(v)?,
                "gap" => spec.gap_ms = ms(v)?,
                "dup" => spec.dup = pct(v)?,
                "corrupt" => spec.corrupt = pct(v)?,
                other => {
                    return Err(format!(
                        "unknown key {other:?} (loss, delay, jitter, reorder, gap, dup, corrupt)"
                    ))
                }
            }
        }
        Ok(spec)
    }

    /// True if this direction changes nothing.
    pub fn is_clean(&self) -> bool {
        self.loss == 0.0
            && self.delay_ms == 0.0
            && self.jitter_ms == 0.0
            && self.reorder == 0.0
            && self.dup == 0.0
            && self.corrupt == 0.0
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return f.write_str("clean");
        }
        write!(
            f,
            "loss {}%, delay {} ms, jitter {} ms, reorder {}% (gap {} ms), dup {}%, corrupt {}%",
            self.loss,
            self.delay_ms,
            self.jitter_ms,
            self.reorder,
            self.gap_ms,
            self.dup,
            self.corrupt
        )
    }
}

/// SplitMix64: small, fast, and the same sequence everywhere for a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// What happened to one direction's frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Frames read from the ingress interface (ours excluded).
    pub received: u64,
    /// Frames written to the egress interface (duplicates included).
    pub forwarded: u64,
    /// Frames dropped by the loss setting.
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Frames that left after a frame that arrived later than them.
    pub reordered: u64,
    /// Frames the reorder setting held back (not all get overtaken).
    pub held_back: u64,
    /// Frames sent with a byte flipped.
    pub corrupted: u64,
    /// ARP frames passed through unimpaired (unless `--impair-arp`).
    pub arp_passed: u64,
    /// Frames dropped because the timed queue was full.
    pub queue_full: u64,
    /// Frames longer than the relay's buffer (GSO super-frames), not sent.
    pub truncated: u64,
    /// Frames the egress interface refused (write error).
    pub send_errors: u64,
    /// Frames the kernel dropped before the relay could read them (its
    /// socket buffer was full): loss the settings did not ask for.
    pub socket_drops: u64,
}

/// A frame waiting in the timed queue.
#[derive(Debug)]
pub struct Held {
    /// When it may leave, µs on the driver's clock.
    pub at_us: u64,
    /// Insertion order: frames due at the same time leave in arrival order.
    order: u64,
    /// The arrival number of the original frame (a duplicate shares it).
    arrival: u64,
    /// The frame.
    pub frame: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.at_us, self.order) == (o.at_us, o.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at_us, self.order).cmp(&(o.at_us, o.order))
    }
}

/// One direction of the relay: its settings, generator, timed queue and
/// counters.
pub struct Impairer {
    spec: Spec,
    impair_arp: bool,
    rng: Rng,
    queue: BinaryHeap<Reverse<Held>>,
    limit: usize,
    /// Frame buffers given back after transmission, reused for new frames.
    pool: Vec<Vec<u8>>,
    orders: u64,
    arrivals: u64,
    /// The highest arrival number sent so far.
    last_sent: Option<u64>,
    /// What happened so far.
    pub counters: Counters,
}

/// What the driver does with a frame just received.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it as it is, now (ARP, not impaired).
    PassNow,
    /// It was queued (or dropped): send what [`Impairer::pop_due`] returns.
    Queued,
}

impl Impairer {
    /// A direction with `spec`, seeded by `seed`, holding at most `limit`
    /// frames; ARP is impaired too if `impair_arp`.
    pub fn new(spec: Spec, seed: u64, limit: usize, impair_arp: bool) -> Impairer {
        Impairer {
            spec,
            impair_arp,
            rng: Rng::new(seed),
            queue: BinaryHeap::new(),
            limit,
            pool: Vec::new(),
            orders: 0,
            arrivals: 0,
            last_sent: None,
            counters: Counters::default(),
        }
    }

    /// Takes one frame received at `now_us`.
    pub fn ingress(&mut self, now_us: u64, f: &[u8]) -> Verdict {
        self.counters.received += 1;
        if !self.impair_arp && frame::is_arp(f) {
            self.counters.arp_passed += 1;
            return Verdict::PassNow;
        }
        // The same six draws for every frame (see the module docs).
        let lose = self.rng.unit() * 100.0 < self.spec.loss;
        let dup = self.rng.unit() * 100.0 < self.spec.dup;
        let corrupt = self.rng.unit() * 100.0 < self.spec.corrupt;
        let corrupt_at = self.rng.next_u64();
        let reorder = self.rng.unit() * 100.0 < self.spec.reorder;
        let jitter = self.rng.unit() * self.spec.jitter_ms;
        let arrival = self.arrivals;
        self.arrivals += 1;
        if lose {
            self.counters.dropped += 1;
            return Verdict::Queued;
        }
        let mut delay_ms = self.spec.delay_ms + jitter;
        if reorder {
            delay_ms += self.spec.gap_ms;
            self.counters.held_back += 1;
        }
        let at_us = now_us + (delay_ms * 1000.0).round() as u64;
        let copies = if dup { 2 } else { 1 };
        for copy in 0..copies {
            if self.queue.len() >= self.limit {
                self.counters.queue_full += 1;
                continue;
            }
            let mut buf = self.pool.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(f);
            if copy == 0 && corrupt && frame::corrupt(&mut buf, corrupt_at) {
                self.counters.corrupted += 1;
            }
            if copy == 1 {
                self.counters.duplicated += 1;
            }
            self.orders += 1;
            self.queue.push(Reverse(Held {
                at_us,
                order: self.orders,
                arrival,
                frame: buf,
            }));
        }
        Verdict::Queued
    }

    /// The next frame due at `now_us`, if any; the driver writes it out and
    /// hands it back with [`Impairer::sent`].
    pub fn pop_due(&mut self, now_us: u64) -> Option<Held> {
        if self.queue.peek()?.0.at_us > now_us {
            return None;
        }
        let Reverse(h) = self.queue.pop()?;
        match self.last_sent {
            Some(last) if h.arrival < last => self.counters.reordered += 1,
            Some(last) if h.arrival == last => {}
            _ => self.last_sent = Some(h.arrival),
        }
        Some(h)
    }

    /// Counts a frame from [`Impairer::pop_due`] as forwarded (`ok`) or as a
    /// send error, and keeps its buffer for reuse.
    pub fn sent(&mut self, h: Held, ok: bool) {
        if ok {
            self.counters.forwarded += 1;
        } else {
            self.counters.send_errors += 1;
        }
        // Bounded: at most as many buffers as the queue can hold.
        if self.pool.len() < self.limit {
            self.pool.push(h.frame);
        }
    }

    /// When the next queued frame is due, µs.
    pub fn next_due(&self) -> Option<u64> {
        self.queue.peek().map(|h| h.0.at_us)
    }

    /// Frames waiting.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal IPv4/TCP frame: 14 + 20 + 20 bytes, with `tag` in the IP id.
    fn tcp_frame(tag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[18..20].copy_from_slice(&tag.to_be_bytes());
        f[23] = 6;
        f
    }

    fn tag(f: &[u8]) -> u16 {
        u16::from_be_bytes([f[18], f[19]])
    }

    fn drain(d: &mut Impairer, now: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(h) = d.pop_due(now) {
            out.push(h.frame.clone());
            d.sent(h, true);
        }
        out
    }

    #[test]
    fn specs_parse_and_reject_nonsense() {
        let s = Spec::parse("loss=2, delay=5ms,reorder=25%,dup=1", Spec::CLEAN).unwrap();
        assert_eq!(s.loss, 2.0);
        assert_eq!(s.delay_ms, 5.0);
        assert_eq!(s.reorder, 25.0);
        assert_eq!(s.dup, 1.0);
        assert_eq!(s.gap_ms, DEFAULT_GAP_MS);
        assert!(Spec::parse("none", Spec::CLEAN).unwrap().is_clean());
        // A per-direction spec overrides the shared one key by key.
        let ab = Spec::parse("loss=0", s).unwrap();
        assert_eq!((ab.loss, ab.delay_ms), (0.0, 5.0));
        assert!(Spec::parse("loss=101", Spec::CLEAN).is_err());
        assert!(Spec::parse("loss=-1", Spec::CLEAN).is_err());
        assert!(Spec::parse("lose=1", Spec::CLEAN)
            .unwrap_err()
            .contains("unknown key"));
        assert!(Spec::parse("loss", Spec::CLEAN).is_err());
        assert!(Spec::parse("delay=x", Spec::CLEAN).is_err());
    }

    #[test]
    fn a_clean_direction_forwards_everything_at_once_in_order() {
        let mut d = Impairer::new(Spec::CLEAN, 1, 100, false);
        for i in 0..10 {
            assert_eq!(d.ingress(5, &tcp_frame(i)), Verdict::Queued);
        }
        let out = drain(&mut d, 5);
        assert_eq!(
            out.iter().map(|f| tag(f)).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(d.counters.forwarded, 10);
        assert_eq!(d.counters.reordered, 0);
    }

    #[test]
    fn delay_holds_frames_until_due_without_blocking_later_ones() {
        let spec = Spec::parse("delay=5", Spec::CLEAN).unwrap();
        let mut d = Impairer::new(spec, 1, 100, false);
        d.ingress(0, &tcp_frame(1));
        d.ingress(1_000, &tcp_frame(2));
        assert_eq!(d.next_due(), Some(5_000));
        assert!(drain(&mut d, 4_999).is_empty());
        assert_eq!(drain(&mut d, 5_000).len(), 1);
        assert_eq!(drain(&mut d, 6_000).len(), 1);
        assert_eq!(d.queued(), 0);
    }

    #[test]
    fn rates_come_out_near_their_settings_and_are_counted() {
        let spec = Spec::parse("loss=10,dup=5,corrupt=3,reorder=20", Spec::CLEAN).unwrap();
        let mut d = Impairer::new(spec, 42, 1_000_000, false);
        let n = 100_000u64;
        for i in 0..n {
            // One frame every 100 µs: a held-back frame (2 ms) is overtaken.
            d.ingress(i * 100, &tcp_frame(i as u16));
            drain(&mut d, i * 100);
        }
        drain(&mut d, u64::MAX);
        let c = d.counters;
        let near = |x: u64, pct: f64, base: u64| {
            let want = base as f64 * pct / 100.0;
            (x as f64 - want).abs() < want * 0.1
        };
        assert!(near(c.dropped, 10.0, n), "{c:?}");
        let kept = n - c.dropped;
        assert!(near(c.duplicated, 5.0, kept), "{c:?}");
        assert!(near(c.corrupted, 3.0, kept), "{c:?}");
        assert!(near(c.held_back, 20.0, kept), "{c:?}");
        assert!(
            c.reordered > 0 && c.reordered <= c.held_back + c.duplicated,
            "{c:?}"
        );
        assert_eq!(c.forwarded, kept + c.duplicated);
        assert_eq!(c.received, n);
    }

    #[test]
    fn the_same_seed_gives_the_same_fates() {
        let spec = Spec::parse("loss=30,dup=10,corrupt=10,jitter=3", Spec::CLEAN).unwrap();
        let run = |seed| {
            let mut d = Impairer::new(spec, seed, 1000, false);
            let mut out = Vec::new();
            for i in 0..500u64 {
                d.ingress(i * 250, &tcp_frame(i as u16));
                out.extend(drain(&mut d, i * 250));
            }
            out.extend(drain(&mut d, u64::MAX));
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn arp_passes_untouched_unless_asked() {
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let spec = Spec::parse("loss=100", Spec::CLEAN).unwrap();
        let mut d = Impairer::new(spec, 1, 10, false);
        assert_eq!(d.ingress(0, &arp), Verdict::PassNow);
        assert_eq!(d.counters.arp_passed, 1);
        let mut d = Impairer::new(spec, 1, 10, true);
        assert_eq!(d.ingress(0, &arp), Verdict::Queued);
        assert_eq!(d.counters.dropped, 1);
    }

    #[test]
    fn the_queue_limit_drops_and_counts() {
        let spec = Spec::parse("delay=10", Spec::CLEAN).unwrap();
        let mut d = Impairer::new(spec, 1, 3, false);
        for i in 0..5 {
            d.ingress(0, &tcp_frame(i));
        }
        assert_eq!(d.queued(), 3);
        assert_eq!(d.counters.queue_full, 2);
    }
}
