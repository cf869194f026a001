//! Loss recovery beside smoltcp, in the spirit of RACK-TLP (RFC 8985).
//!
//! smoltcp 0.14 stays unmodified. Its own recovery is slow on a lossy path:
//! a 1 s minimum RTO, fast retransmit only after three *pure* duplicate ACKs
//! (never when data flows both ways), and the peer's SACK blocks ignored.
//! The engine sees every segment in both directions, so this module keeps a
//! small per-connection view of the send side (`snd.una`, `snd.nxt`, an RTT
//! estimate, the peer's SACK blocks) and decides, from what the wire shows,
//! when a segment is lost. It then makes the socket repair it through two
//! levers that need no change to smoltcp:
//!
//! - **What the socket hears** ([`Repair::DupAcks`]): three synthetic
//!   duplicate ACKs, built exactly to smoltcp's duplicate rule (no payload,
//!   the ACK number it last accepted, the same window, an in-window
//!   sequence number), put it into fast retransmit: it resends the segment
//!   at `snd.una` at once and enters fast recovery (CUBIC's `on_loss`).
//!   Used when SACK shows data above a hole (three segments' worth, or any
//!   during recovery, RFC 6675's rule), and as the tail-loss probe.
//! - **What time the socket sees** ([`Repair::Rto`]): each connection's
//!   socket runs on the engine's time plus an offset that only grows. When
//!   the engine's retransmission timeout (RFC 6298 with Linux's 200 ms
//!   floor, not smoltcp's 1 s) expires, the pump moves that offset to the
//!   socket's own retransmission deadline, so it retransmits now.
//!
//! The timers: a probe after `max(2·SRTT, 10 ms)` without progress (more
//! when a single segment is in flight, for the peer's delayed ACK), then
//! RTOs backing off from `max(200 ms, SRTT + 4·RTTVAR)`. Everything here is
//! O(1) per segment and allocates nothing.

use crate::stats::EngineStats;
use crate::tcpopt;

/// Floor of the engine's retransmission timeout (Linux's `TCP_RTO_MIN`).
const RTO_MIN_US: u64 = 200_000;
/// Floor of the probe timeout.
const PTO_MIN_US: u64 = 10_000;
/// Allowance for a peer delaying its ACK of a lone segment (Linux's
/// `TCP_DELACK_MAX`).
const DELACK_MAX_US: u64 = 200_000;
/// Timeouts the engine drives before it leaves a dead path to smoltcp's own
/// backed-off timer.
const MAX_BACKOFF: u8 = 6;

/// `a` is after `b` in sequence space.
#[inline]
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// What one egress call sent, read from the segments as they were built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Segments carrying data (or FIN).
    pub(crate) segs: u32,
    /// Lowest sequence number among them.
    pub(crate) lo: u32,
    /// Highest end (`seq + len`, FIN counting one).
    pub(crate) hi: u32,
    /// Largest payload (an MSS estimate).
    pub(crate) max_len: u32,
    /// Segments that started below `base`: resent.
    pub(crate) resent: u32,
    /// `snd.nxt` before the call, when tracking had started.
    base: Option<u32>,
    /// The sequence number of a SYN sent, if one was.
    pub(crate) syn: Option<u32>,
}

impl Sent {
    /// Records one data segment `[seq, seq + len)` (`len` counts FIN).
    #[inline]
    pub(crate) fn record(&mut self, seq: u32, len: u32, payload: u32) {
        let end = seq.wrapping_add(len);
        if self.segs == 0 {
            self.lo = seq;
            self.hi = end;
        } else {
            if after(self.lo, seq) {
                self.lo = seq;
            }
            if after(end, self.hi) {
                self.hi = end;
            }
        }
        self.segs += 1;
        self.max_len = self.max_len.max(payload);
        if matches!(self.base, Some(b) if after(b, seq)) {
            self.resent += 1;
        }
    }
}

/// One received segment, as recovery needs it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Heard {
    pub(crate) seq: u32,
    /// Sequence space the segment covers (payload, +1 for FIN).
    pub(crate) len: u32,
    pub(crate) ack: u32,
    /// The raw (unscaled) window field.
    pub(crate) win: u16,
    /// SYN, FIN or RST: not a plain ACK to reason about.
    pub(crate) control: bool,
    /// SACK blocks (left, right), up to four.
    pub(crate) sack: [(u32, u32); 4],
    pub(crate) nsack: u8,
}

/// Reads a TCP header's SACK blocks into `h` (up to four).
pub(crate) fn read_sack(opts: &[u8], h: &mut Heard) {
    let Some(r) = tcpopt::find(opts, tcpopt::SACK) else {
        return;
    };
    for b in opts[r].chunks_exact(8).take(h.sack.len()) {
        let l = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let r = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        h.sack[h.nsack as usize] = (l, r);
        h.nsack += 1;
    }
}

/// What the socket must be made to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Repair {
    /// Feed it three duplicate ACKs of `ack` with window field `win` and
    /// sequence number `seq`: it fast-retransmits the segment at `ack`.
    DupAcks { seq: u32, ack: u32, win: u16 },
    /// Move its clock to its retransmission deadline.
    Rto,
}

/// A connection's send-side view. See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Recovery {
    /// Offset (µs) added to the engine's time for this connection's
    /// socket. Only grows.
    pub(crate) off_us: u64,
    /// Tracking started: data was sent since the connection was set up.
    active: bool,
    una: u32,
    nxt: u32,
    mss: u32,
    /// The peer's latest window field and sequence end (for synthetic ACKs).
    win: u16,
    peer_end: u32,
    /// SRTT and RTTVAR in µs; `srtt_us == 0` until the first sample.
    srtt_us: u64,
    rttvar_us: u64,
    /// The segment end being timed and when it was sent.
    timed: Option<(u32, u64)>,
    /// When `una` last advanced, or data went out into an empty pipe, or a
    /// repair was made: timeouts count from here.
    since_us: u64,
    /// Timeouts fired without progress since (0: the next one is a probe).
    backoff: u8,
    /// In recovery until `una` reaches `recover`.
    in_recovery: bool,
    recover: u32,
    /// The `una` a fast retransmit was last asked for (once per `una`).
    repaired: Option<u32>,
    /// When the peer was last heard from, in the socket's time.
    heard_us: u64,
    /// The next timeout (engine µs), kept by [`Recovery::rearm`] whenever
    /// what it depends on changes, so egress reads one field.
    due_us: Option<u64>,
    /// The first sequence numbers seen each way, for [`Recovery::moved`].
    tx_base: u32,
    rx_base: Option<u32>,
}

impl Recovery {
    /// Forgets everything (a new connection in the slot). The clock offset
    /// goes back to zero too: the new socket has no timers yet.
    pub(crate) fn reset(&mut self) {
        *self = Recovery::default();
    }

    /// The socket's time for engine time `now_us`.
    #[inline]
    pub(crate) fn socket_time(&self, now_us: u64) -> u64 {
        now_us + self.off_us
    }

    /// Whether more than `n` bytes went through the connection either way
    /// (counted from the first segments seen; its buffers' positions never
    /// passed `n` otherwise). Saturates after 2 GiB each way: then true.
    pub(crate) fn moved(&self, n: u32) -> bool {
        let rx = self
            .rx_base
            .map_or(0, |b| self.peer_end.wrapping_sub(b) as i32);
        let tx = self.nxt.wrapping_sub(self.tx_base) as i32;
        rx < 0 || tx < 0 || rx as u32 > n || tx as u32 > n
    }

    /// How long (µs, in the socket's time, which smoltcp's timeout uses)
    /// the peer has been silent at engine time `now_us`.
    pub(crate) fn silent_for(&self, now_us: u64) -> u64 {
        self.socket_time(now_us).saturating_sub(self.heard_us)
    }

    /// Data outstanding (sent, not acknowledged).
    #[inline]
    fn outstanding(&self) -> bool {
        self.active && self.una != self.nxt
    }

    /// A record for the next egress call's segments.
    #[inline]
    pub(crate) fn begin(&self) -> Sent {
        Sent {
            base: self.active.then_some(self.nxt),
            ..Sent::default()
        }
    }

    /// Takes in an egress call's data segments, sent at `now_us`.
    pub(crate) fn on_sent(&mut self, s: &Sent, now_us: u64, stats: &mut EngineStats) {
        if s.segs == 0 {
            return;
        }
        if !self.active {
            self.active = true;
            self.una = s.lo;
            self.nxt = s.lo;
            self.tx_base = s.lo;
        }
        self.mss = self.mss.max(s.max_len);
        if s.resent > 0 {
            // Some of it went out before: a retransmission (Karn: a sample
            // spanning it would be ambiguous).
            stats.retransmits += u64::from(s.resent);
            self.timed = None;
        }
        if after(s.hi, self.nxt) {
            if self.una == self.nxt {
                self.since_us = now_us;
                self.backoff = 0;
            }
            if self.timed.is_none() {
                self.timed = Some((s.hi, now_us));
            }
            self.nxt = s.hi;
        }
        self.rearm();
    }

    /// Takes in a segment from the peer (before the socket processes it)
    /// and says which repair, if any, follows it.
    pub(crate) fn on_heard(&mut self, h: &Heard, now_us: u64) -> Option<Repair> {
        self.heard_us = self.socket_time(now_us);
        if h.control {
            return None;
        }
        let end = h.seq.wrapping_add(h.len);
        let first = self.rx_base.is_none();
        if first {
            self.rx_base = Some(h.seq);
        }
        if first || after(end, self.peer_end) {
            self.peer_end = end;
        }
        self.win = h.win;
        if !self.active {
            return None;
        }
        let ack = h.ack;
        if after(ack, self.una) && !after(ack, self.nxt) {
            self.una = ack;
            self.since_us = now_us;
            self.backoff = 0;
            if let Some((e, sent)) = self.timed {
                if !after(e, ack) {
                    self.sample(now_us.saturating_sub(sent));
                    self.timed = None;
                }
            }
            if self.in_recovery && !after(self.recover, ack) {
                self.in_recovery = false;
            }
            self.rearm();
        }
        if ack != self.una || !self.outstanding() {
            return None;
        }
        // SACKed octets above the hole at `una`.
        let mut sacked: u32 = 0;
        for &(l, r) in &h.sack[..h.nsack as usize] {
            if after(r, self.una) && !after(r, self.nxt) && after(r, l) {
                let from = if after(l, self.una) { l } else { self.una };
                sacked = sacked.saturating_add(r.wrapping_sub(from));
            }
        }
        // Three segments' worth SACKed above the hole (RFC 6675's DupThresh),
        // or, when fewer are in flight, everything above it (early
        // retransmit, RFC 5827): a small flight never gets three.
        let mss = self.mss.max(1);
        let flight = self.nxt.wrapping_sub(self.una);
        let thresh = (3 * mss).min(flight.saturating_sub(mss)).max(1);
        let lost = sacked > 0 && (self.in_recovery || sacked >= thresh);
        if !lost || self.repaired == Some(self.una) {
            return None;
        }
        if !self.in_recovery {
            self.in_recovery = true;
            self.recover = self.nxt;
        }
        self.repaired = Some(self.una);
        self.since_us = now_us;
        self.rearm();
        Some(Repair::DupAcks {
            seq: end,
            ack: self.una,
            win: h.win,
        })
    }

    fn sample(&mut self, rtt: u64) {
        let rtt = rtt.max(1);
        if self.srtt_us == 0 {
            self.srtt_us = rtt;
            self.rttvar_us = rtt / 2;
        } else {
            let diff = self.srtt_us.abs_diff(rtt);
            self.rttvar_us = (3 * self.rttvar_us + diff) / 4;
            self.srtt_us = (7 * self.srtt_us + rtt) / 8;
        }
    }

    /// When the next timeout fires (engine µs), if one is armed. None until
    /// the first RTT sample: smoltcp's own timer covers that.
    #[inline]
    pub(crate) fn deadline(&self) -> Option<u64> {
        self.due_us
    }

    fn rearm(&mut self) {
        self.due_us = self.compute_deadline();
    }

    fn compute_deadline(&self) -> Option<u64> {
        if !self.outstanding() || self.srtt_us == 0 || self.backoff >= MAX_BACKOFF {
            return None;
        }
        let wait = if self.backoff == 0 {
            let mut pto = (2 * self.srtt_us).max(PTO_MIN_US);
            if self.nxt.wrapping_sub(self.una) <= self.mss {
                pto = pto.max(self.srtt_us * 3 / 2 + DELACK_MAX_US);
            }
            pto
        } else {
            let rto = (self.srtt_us + 4 * self.rttvar_us).max(RTO_MIN_US);
            rto << (self.backoff - 1)
        };
        Some(self.since_us + wait)
    }

    /// The repair due at `now_us`, if the timeout expired: a probe first
    /// (unless this `una` was already fast-retransmitted), then RTOs.
    #[inline]
    pub(crate) fn on_timeout(&mut self, now_us: u64, stats: &mut EngineStats) -> Option<Repair> {
        match self.due_us {
            Some(due) if now_us >= due => self.timeout(now_us, stats),
            _ => None,
        }
    }

    #[cold]
    fn timeout(&mut self, now_us: u64, stats: &mut EngineStats) -> Option<Repair> {
        let probe = self.backoff == 0 && self.repaired != Some(self.una);
        self.backoff += 1;
        self.since_us = now_us;
        self.timed = None;
        self.rearm();
        if probe {
            stats.tlp_probes += 1;
            self.repaired = Some(self.una);
            Some(Repair::DupAcks {
                seq: self.peer_end,
                ack: self.una,
                win: self.win,
            })
        } else {
            stats.rto_fired += 1;
            // Go-back-N from `una` (smoltcp's RTO): recovery starts over.
            self.in_recovery = false;
            self.repaired = None;
            Some(Repair::Rto)
        }
    }

    /// Whether a recovery episode is open (until `una` passes `recover`).
    #[cfg(test)]
    fn in_recovery(&self) -> bool {
        self.in_recovery
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(lo: u32, n: u32, mss: u32) -> Sent {
        let mut s = Sent::default();
        for i in 0..n {
            s.record(lo + i * mss, mss, mss);
        }
        s
    }

    fn ack(a: u32, sack: &[(u32, u32)]) -> Heard {
        let mut h = Heard {
            seq: 7,
            ack: a,
            win: 1000,
            ..Heard::default()
        };
        for &b in sack {
            h.sack[h.nsack as usize] = b;
            h.nsack += 1;
        }
        h
    }

    #[test]
    fn three_segments_sacked_above_a_hole_repair_it_once() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(1000, 10, 100), 0, &mut st);
        assert_eq!(r.on_heard(&ack(1100, &[]), 10), None);
        // 1100..1200 lost; 1200.. arrive.
        assert_eq!(r.on_heard(&ack(1100, &[(1200, 1300)]), 11), None);
        assert_eq!(r.on_heard(&ack(1100, &[(1200, 1400)]), 12), None);
        let rep = r.on_heard(&ack(1100, &[(1200, 1500)]), 13);
        assert_eq!(
            rep,
            Some(Repair::DupAcks {
                seq: 7,
                ack: 1100,
                win: 1000
            })
        );
        assert!(r.in_recovery());
        assert_eq!(r.on_heard(&ack(1100, &[(1200, 1600)]), 14), None, "once");
        // A partial ACK with SACKed data above: the next hole is lost too.
        let rep = r.on_heard(&ack(1600, &[(1700, 1800)]), 15);
        assert!(matches!(rep, Some(Repair::DupAcks { ack: 1600, .. })));
        // The whole flight acknowledged: recovery ends.
        assert_eq!(r.on_heard(&ack(2000, &[]), 16), None);
        assert!(!r.in_recovery());
        assert_eq!(st.retransmits, 0);
    }

    #[test]
    fn a_small_flight_repairs_when_everything_above_the_hole_is_sacked() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(1000, 3, 100), 0, &mut st);
        // 1000..1100 lost; 1100..1200 SACKed: one more still out, wait.
        assert_eq!(r.on_heard(&ack(1000, &[(1100, 1200)]), 1), None);
        // All of the rest SACKed: the hole is lost (early retransmit).
        let rep = r.on_heard(&ack(1000, &[(1100, 1300)]), 2);
        assert!(matches!(rep, Some(Repair::DupAcks { ack: 1000, .. })));
    }

    #[test]
    fn sack_blocks_below_una_or_beyond_nxt_count_for_nothing() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(1000, 10, 100), 0, &mut st);
        assert_eq!(r.on_heard(&ack(1500, &[(900, 1000)]), 1), None);
        assert_eq!(r.on_heard(&ack(1500, &[(5000, 9000)]), 1), None);
    }

    #[test]
    fn timeouts_probe_then_back_off_and_progress_rearms() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(0, 4, 100), 0, &mut st);
        assert_eq!(r.deadline(), None, "no RTT sample yet: smoltcp's timer");
        r.on_heard(&ack(400, &[]), 20_000);
        assert_eq!(r.srtt_us, 20_000);
        r.on_sent(&sent(400, 4, 100), 20_000, &mut st);
        r.on_heard(&ack(500, &[]), 21_000);
        // Three segments still out: PTO = 2 * SRTT = 40 ms after the ACK.
        assert_eq!(r.deadline(), Some(61_000));
        assert_eq!(r.on_timeout(60_999, &mut st), None);
        let p = r.on_timeout(61_000, &mut st);
        assert!(matches!(p, Some(Repair::DupAcks { ack: 500, .. })));
        // Then the RTO: max(200 ms, SRTT + 4 RTTVAR) = 200 ms, doubling.
        assert_eq!(r.deadline(), Some(261_000));
        assert_eq!(r.on_timeout(261_000, &mut st), Some(Repair::Rto));
        assert_eq!(r.deadline(), Some(661_000));
        assert_eq!((st.tlp_probes, st.rto_fired), (1, 1));
        // The resend is counted and not timed; the ACK of everything disarms.
        let mut s = r.begin();
        s.record(500, 100, 100);
        r.on_sent(&s, 661_000, &mut st);
        assert_eq!(st.retransmits, 1);
        r.on_heard(&ack(800, &[]), 700_000);
        assert_eq!(r.srtt_us, 20_000, "no sample across a retransmission");
        assert_eq!(r.deadline(), None, "nothing outstanding");
    }

    #[test]
    fn a_lone_segment_waits_for_the_delayed_ack() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(0, 1, 100), 0, &mut st);
        r.on_heard(&ack(100, &[]), 1_000);
        r.on_sent(&sent(100, 1, 100), 2_000, &mut st);
        assert_eq!(r.deadline(), Some(2_000 + 1_500 + DELACK_MAX_US));
        r.on_sent(&sent(200, 1, 100), 2_100, &mut st);
        assert_eq!(r.deadline(), Some(2_000 + PTO_MIN_US), "two in flight");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        let base = u32::MAX - 250;
        let mut s = Sent::default();
        for i in 0..10u32 {
            s.record(base.wrapping_add(i * 100), 100, 100);
        }
        r.on_sent(&s, 0, &mut st);
        let una = base.wrapping_add(100);
        let sack = |k: u32| (base.wrapping_add(200), base.wrapping_add(200 + k * 100));
        assert_eq!(r.on_heard(&ack(una, &[sack(2)]), 1), None);
        assert!(r.on_heard(&ack(una, &[sack(3)]), 2).is_some());
    }

    #[test]
    fn sack_option_parsing_skips_other_options() {
        let mut h = Heard::default();
        // NOP NOP TS(10) NOP NOP SACK(2 blocks) then junk after EOL.
        let mut o = vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 18];
        o.extend_from_slice(&1u32.to_be_bytes());
        o.extend_from_slice(&2u32.to_be_bytes());
        o.extend_from_slice(&3u32.to_be_bytes());
        o.extend_from_slice(&4u32.to_be_bytes());
        o.extend_from_slice(&[0, 5, 10]);
        read_sack(&o, &mut h);
        assert_eq!(h.nsack, 2);
        assert_eq!(&h.sack[..2], &[(1, 2), (3, 4)]);
        let mut h = Heard::default();
        read_sack(&[5, 40, 0, 0], &mut h);
        assert_eq!(h.nsack, 0, "a length past the end is ignored");
    }
}
