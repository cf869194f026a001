//! Loss recovery and congestion control beside smoltcp, in the spirit of
//! RACK-TLP (RFC 8985) and SACK-based recovery (RFC 6675).
//!
//! smoltcp 0.14 stays unmodified. Its own recovery is slow on a lossy path:
//! a 1 s minimum RTO, fast retransmit only after three *pure* duplicate ACKs
//! (never when data flows both ways), the peer's SACK blocks ignored, and a
//! congestion window cut on every retransmission. The engine sees every
//! segment in both directions, so this module keeps a small per-connection
//! view of the send side (`snd.una`, `snd.nxt`, an RTT estimate, a SACK
//! scoreboard, a congestion window) and decides, from what the wire shows,
//! when a segment is lost and how much may be in flight. smoltcp runs with
//! `CongestionControl::None`; the engine steers it through three levers that
//! need no change to smoltcp:
//!
//! - **The window the socket hears** ([`Recovery::window_field`]): every
//!   segment fed to the socket carries `min(peer's window, cwnd + SACKed
//!   bytes)`, so the socket keeps what is in the network (RFC 6675's pipe)
//!   within the engine's congestion window. Slow start, congestion avoidance
//!   and one reduction (β = 0.7, as CUBIC) per recovery episode, not one
//!   per lost segment.
//! - **What time the socket sees** ([`Repair::Walk`], [`Repair::Rto`]): each
//!   connection's socket runs on the engine's time plus an offset that only
//!   grows. Moving the offset to the socket's retransmission deadline makes
//!   it go back to `snd.una` and resend what is in its window. On the way
//!   out, the egress [`Filter`] drops the segments of that walk the peer
//!   has (SACKed) or that are still in flight (not deemed lost), so only
//!   the holes go on the wire: several holes repaired in one round trip.
//!   The filter stays on while the socket's send pointer is behind
//!   `snd.nxt` (a walk the window cut short goes on after its episode) and
//!   whenever the scoreboard holds blocks (the socket's own go-back-N on
//!   the peer's duplicate ACKs), so no resend the peer SACKed, or that is
//!   still in flight and not judged lost, goes out outside an episode either.
//!   Used when SACK marks data lost (RFC 6675's DupThresh: three segments'
//!   worth SACKed above it, or everything above it in a small flight; on a
//!   path seen to reorder, RACK's reordering window, checked on each ACK and
//!   by its own timer when none comes), when
//!   a retransmission itself is lost (still missing 5/4 SRTT after it was
//!   resent), and for the retransmission timeout (RFC 6298 with Linux's
//!   200 ms floor, not smoltcp's 1 s), after which every unSACKed segment
//!   is lost and the window restarts from one segment.
//! - **What the socket hears, made up** ([`Repair::DupAcks`]): three
//!   duplicate ACKs built to smoltcp's duplicate rule make it resend the
//!   segment at `snd.una`: the tail-loss probe, after `max(2·SRTT, 10 ms)`
//!   without progress outside recovery.
//!
//! Everything here is O(1) per segment (the scoreboard has a fixed number of
//! blocks) and allocates nothing.

use crate::config::Congestion;
use crate::stats::EngineStats;
use crate::tcpopt;

/// Floor of the engine's retransmission timeout (Linux's `TCP_RTO_MIN`).
const RTO_MIN_US: u64 = 200_000;
/// The retransmission timeout before the first RTT sample (RFC 6298).
const INITIAL_RTO_US: u64 = 1_000_000;
/// Floor of the probe timeout.
const PTO_MIN_US: u64 = 10_000;
/// Allowance for a peer delaying its ACK of a lone segment (Linux's
/// `TCP_DELACK_MAX`).
const DELACK_MAX_US: u64 = 200_000;
/// Timeouts the engine drives before it leaves a dead path to smoltcp's own
/// backed-off timer.
const MAX_BACKOFF: u8 = 6;
/// Initial congestion window, in segments (RFC 6928).
const IW_SEGS: u32 = 10;
/// Congestion window cap (bytes): the socket's own buffers bound it anyway.
const CWND_MAX: u32 = 1 << 30;
/// SACK blocks the scoreboard keeps in the connection itself.
const SB_BLOCKS: usize = 5;
/// SACK blocks it keeps once a flight has more holes than that (in a board
/// of its own, taken when the first one overflows; past this the highest
/// are forgotten). A receiver repeats only its latest three or four blocks,
/// so a block the sender forgets is never heard of again: its data looks
/// unSACKed and is resent once a later block marks it lost.
const SB_EXT: usize = 64;
/// SACK blocks one egress call's filter carries (the walk's lost range is
/// cut before the first block past these; the next walk goes on from there).
const FILTER_BLOCKS: usize = 8;
/// Segment size assumed until the peer's SYN or our first segment says.
const MSS_DEFAULT: u32 = 1460;

/// How long a smallest-RTT sample stands (µs): BBR's `min_rtt` window.
const MIN_RTT_WINDOW_US: u64 = 10_000_000;

/// `a` is after `b` in sequence space.
#[inline]
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The later of two sequence numbers.
#[inline]
fn seq_max(a: u32, b: u32) -> u32 {
    if after(a, b) {
        a
    } else {
        b
    }
}

/// Out-of-order blocks of received data remembered for the SACK option (RFC
/// 2018: as many as fit, the most recent first; four fit without
/// timestamps).
pub(crate) const RSB: usize = 4;

/// The earlier of two sequence numbers.
#[inline]
fn seq_min(a: u32, b: u32) -> u32 {
    if after(a, b) {
        b
    } else {
        a
    }
}

/// What one egress call sent, read from the segments as they were built.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sent {
    /// Segments carrying data (or FIN) that went out.
    pub(crate) segs: u32,
    /// Lowest sequence number among them.
    pub(crate) lo: u32,
    /// Highest end (`seq + len`, FIN counting one).
    pub(crate) hi: u32,
    /// Largest payload (an MSS estimate).
    pub(crate) max_len: u32,
    /// Segments that started below `base` and went out: resent.
    pub(crate) resent: u32,
    /// Segments the socket built below `base`, sent or not: it went back.
    pub(crate) rewound: u32,
    /// The highest end among the resent segments.
    resent_hi: u32,
    /// `snd.nxt` before the call, when tracking had started.
    base: Option<u32>,
    /// The sequence number of a SYN sent, if one was.
    pub(crate) syn: Option<u32>,
    /// During recovery: which of the socket's resends go on the wire.
    pub(crate) filter: Option<Filter>,
    /// The acknowledgment number of the last segment with ACK that went
    /// out (the peer's sequence space), and its window field as the socket
    /// built it (before [`Sent::shift`] took a unit off).
    pub(crate) ack: Option<u32>,
    pub(crate) win: Option<u16>,
    /// The window scale option of a SYN (or SYN-ACK) the socket sent.
    pub(crate) ws: Option<u8>,
    /// Our window scale on this connection (0: none): a window field going
    /// out is advertised one unit smaller, so no right edge the peer hears
    /// passes one the socket holds later (see [`Recovery::wire_shift`]).
    pub(crate) shift: u8,
    /// Blocks of the peer's data held out of order (most recent first),
    /// while there are any: an ACK carrying the socket's one SACK block gets
    /// the others too (see [`Recovery::note_rx`]).
    pub(crate) rsb: [(u32, u32); RSB],
    pub(crate) nrsb: u8,
    /// The SACK block the socket put in the last pure ACK that had one:
    /// data it holds out of order (see [`Recovery::note_rx`]).
    pub(crate) sacked: Option<(u32, u32)>,
}

/// Which resent segments go out during recovery (see the module docs): a
/// copy of the scoreboard taken before the egress call, and how far this
/// round of retransmissions got, handed back after it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Filter {
    /// `snd.una` and `snd.nxt` before the call.
    una: u32,
    nxt: u32,
    /// UnSACKed data below this is lost.
    lost_below: u32,
    /// Resent in this round up to here: not again.
    rxt_high: u32,
    /// The socket's send pointer (end of the last segment it built).
    ptr: u32,
    /// The segment at `una` goes out even if not deemed lost (a probe).
    force_una: bool,
    sb: [(u32, u32); FILTER_BLOCKS],
    nsb: u8,
}

impl Filter {
    /// The part of resend `[seq, end)` the peer has not SACKed at either
    /// edge: a walk cuts segments from `snd.una`, not at the hole's edges,
    /// so one hole is often resent in two segments, each partly SACKed.
    fn unsacked(&self, seq: u32, end: u32) -> (u32, u32) {
        let (mut s, mut e) = (seq_max(seq, self.una), end);
        let sb = &self.sb[..self.nsb as usize];
        for &(l, r) in sb {
            if !after(l, s) && after(r, s) {
                s = r;
            }
        }
        for &(l, r) in sb.iter().rev() {
            if after(e, l) && !after(e, r) {
                e = l;
            }
        }
        (s, e)
    }

    /// Whether `[seq, end)` is SACKed whole.
    fn sacked(&self, seq: u32, end: u32) -> bool {
        self.sb[..self.nsb as usize]
            .iter()
            .any(|&(l, r)| !after(l, seq) && !after(end, r))
    }

    /// Whether the socket's segment `[seq, end)` goes on the wire, noting
    /// it as built either way.
    fn keep(&mut self, seq: u32, end: u32) -> bool {
        if after(end, self.ptr) {
            self.ptr = end;
        }
        if after(end, self.nxt) {
            // New data (or partly): always.
            return true;
        }
        if self.force_una && !after(seq, self.una) && after(end, self.una) {
            self.force_una = false;
            self.rxt_high = seq_max(self.rxt_high, end);
            return true;
        }
        // A segment reaching past the round's resends goes, even if it
        // starts below them: the socket's segments need not start where the
        // engine's last one ended (a walk cut from an older `snd.una`), and
        // dropping one that straddles the mark would skip its bytes above it
        // (a hole of a few bytes that no round would resend).
        let keep =
            !self.sacked(seq, end) && after(self.lost_below, seq) && after(end, self.rxt_high);
        if keep {
            self.rxt_high = seq_max(self.rxt_high, end);
        }
        keep
    }
}

impl Sent {
    /// Takes in one data segment `[seq, seq + len)` (`len` counts FIN) the
    /// socket built; says whether it goes on the wire (the [`Filter`]'s
    /// word during recovery; always otherwise), and records it if so.
    #[inline]
    pub(crate) fn record(&mut self, seq: u32, len: u32, payload: u32) -> bool {
        let end = seq.wrapping_add(len);
        let old = matches!(self.base, Some(b) if after(b, seq));
        if old {
            self.rewound += 1;
        }
        if let Some(f) = &mut self.filter {
            if !f.keep(seq, end) {
                return false;
            }
        }
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
        if old {
            if self.resent == 0 || after(end, self.resent_hi) {
                self.resent_hi = end;
            }
            self.resent += 1;
        }
        true
    }
}

impl Sent {
    /// For a resend `[seq, end)` (payload only, no FIN) the filter kept:
    /// the smaller part of it to send instead, when its head or tail is
    /// SACKed.
    #[inline]
    pub(crate) fn trim(&self, seq: u32, end: u32) -> Option<(u32, u32)> {
        let f = self.filter.as_ref()?;
        if !after(f.nxt, seq) || after(end, f.nxt) {
            return None;
        }
        let (s, e) = f.unsacked(seq, end);
        ((s, e) != (seq, end) && after(e, s)).then_some((s, e))
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
    for b in tcpopt::sack_blocks(opts).take(h.sack.len()) {
        h.sack[h.nsack as usize] = b;
        h.nsack += 1;
    }
}

/// What the socket must be made to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Repair {
    /// Feed it three duplicate ACKs of `ack` with window field `win` and
    /// sequence number `seq`: it fast-retransmits the segment at `ack`.
    DupAcks { seq: u32, ack: u32, win: u16 },
    /// Move its clock to its retransmission deadline: it goes back to
    /// `snd.una`, and the egress filter lets the lost segments out.
    Walk,
    /// The same after a retransmission timeout (everything unSACKed lost).
    Rto,
    /// `TCP_USER_TIMEOUT` ran out: data stayed outstanding that long with
    /// nothing of it acknowledged. The connection is given up; its requests
    /// fail with `-ETIMEDOUT` (Linux's `tcp_write_err`).
    GiveUp,
}

/// A connection's send-side view. See the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recovery {
    /// Offset (µs) added to the engine's time for this connection's
    /// socket. Only grows.
    pub(crate) off_us: u64,
    /// How much of the offset was added since the peer last acknowledged
    /// new data (the socket's timeouts are stretched by it).
    jumped_us: u64,
    /// Tracking started: data was sent since the connection was set up.
    active: bool,
    una: u32,
    nxt: u32,
    mss: u32,
    /// The peer's latest window field and sequence end (for synthetic ACKs).
    win: u16,
    peer_end: u32,
    /// The window field last fed to the socket (synthetic duplicates repeat
    /// it: smoltcp counts no duplicate that changes the window).
    fed_win: u16,
    /// The peer's window scale (from its SYN) and MSS option.
    wscale: u8,
    peer_mss: u32,
    /// The controller, and the rate model's bandwidth maximum of the
    /// current and the previous ten rounds, and rounds measured.
    cc: Congestion,
    bw_hi: u64,
    bw_prev: u64,
    rounds: u32,
    /// Congestion window and slow-start threshold, bytes (0: not set yet).
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged in congestion avoidance toward the next segment.
    ca_acc: u32,
    /// The smallest RTT sample (µs), the bandwidth estimate (bytes/s), and
    /// the delivery count of the round being measured: bytes delivered
    /// since it started, when, and `una + sacked` when last counted.
    min_rtt_us: u64,
    bwe: u64,
    dlv_acc: u32,
    dlv_start_us: u64,
    dlv_mark: u32,
    /// SRTT and RTTVAR in µs; `srtt_us == 0` until the first sample.
    srtt_us: u64,
    rttvar_us: u64,
    /// The segment end being timed and when it was sent.
    timed: Option<(u32, u64)>,
    /// Something below the timed segment was resent since it was sent: a
    /// cumulative ACK of it may have waited for that resend (Karn), so only
    /// a SACK of it times it.
    timed_behind: bool,
    /// When `una` last advanced, or data went out into an empty pipe, or a
    /// repair was made: timeouts count from here.
    since_us: u64,
    /// Timeouts fired without progress since (0: the next one is a probe).
    backoff: u8,
    /// In recovery until `una` reaches `recover`.
    in_recovery: bool,
    recover: u32,
    /// After a timeout: every unSACKed segment below `recover` is lost.
    rto_lost: bool,
    /// The `una` a probe was last made for (once per `una`).
    repaired: Option<u32>,
    /// The SACK scoreboard: blocks above `una`, sorted, disjoint, here
    /// while they fit, in `ext` (all of them) while `on_ext`.
    sb: [(u32, u32); SB_BLOCKS],
    /// When each block was first SACKed (engine µs, low 32 bits; a merged
    /// block keeps the earliest): the hole below it has been a hole since.
    sb_t: [u32; SB_BLOCKS],
    nsb: u8,
    on_ext: bool,
    /// The larger board, taken the first time this slot's blocks overflow
    /// and kept for the slot (one allocation per slot, not per episode;
    /// [`Recovery::shed_board`] gives it back when the connection is idle).
    ext: Option<Box<ExtBoard>>,
    /// Reordering seen on this path (a D-SACK, or a hole that filled
    /// without a retransmission): loss is then judged by time, RACK's
    /// reordering window, instead of by three segments SACKed above.
    reo_seen: bool,
    /// Undoing a spurious reduction (Linux's `undo_marker`/`undo_retrans`,
    /// RFC 2883 section 4.3): the window and threshold before the episode's
    /// reduction (`undo_cwnd` 0: nothing to undo), and how many of the
    /// episode's retransmissions no D-SACK has yet shown needless. When
    /// every one has, the reduction was for reordering, not loss, and is
    /// undone.
    undo_cwnd: u32,
    undo_ssthresh: u32,
    undo_retrans: u32,
    /// Reductions undone so far (the caller adds them up in
    /// `EngineStats::recovery_undos`).
    pub(crate) undos: u16,
    /// When (engine µs, wrapping) `min_rtt_us` was taken: a minimum older
    /// than [`MIN_RTT_WINDOW_US`] gives way to the next sample (BBR's
    /// 10 s window), so a path whose delay grew is not judged by its past.
    min_rtt_at: u32,
    /// The reordering window in quarters of the smallest RTT (RFC 8985's
    /// `reo_wnd_mult`), raised once per round trip by D-SACKs.
    reo_mult: u8,
    /// Recovery episodes since `reo_mult` was last raised (after 16 it
    /// starts over at 1).
    reo_quiet: u8,
    /// When `reo_mult` was last raised (engine µs, low 32 bits).
    reo_bump_us: u32,
    /// Bytes in the scoreboard.
    sacked: u32,
    /// Resent in this round up to here, and when the round started.
    rxt_high: u32,
    round_us: u64,
    /// The socket's send pointer as the engine last saw it.
    ptr: u32,
    /// The segment at `una` goes out in the next walk (a probe in recovery).
    force_una: bool,
    /// A walk is due at the next egress.
    walk: bool,
    /// The socket's timeouts must be set back to their base (a stretch
    /// ended by the peer acknowledging new data).
    refit: bool,
    /// When the peer was last heard from, in the socket's time.
    heard_us: u64,
    /// The next timeout (engine µs), kept by [`Recovery::rearm`] whenever
    /// what it depends on changes, so egress reads one field.
    due_us: Option<u64>,
    /// The first sequence numbers seen each way, for [`Recovery::moved`].
    tx_base: u32,
    rx_base: Option<u32>,
    /// The acknowledgment number we last sent (see [`Recovery::rx_beyond`]),
    /// and the window field the socket put beside it.
    ack_out: Option<u32>,
    win_out: Option<u16>,
    /// Our window scale (from the SYN the socket sent) and whether the peer
    /// offered scaling too (its SYN had the option): see
    /// [`Recovery::wire_shift`].
    our_ws: u8,
    peer_ws: bool,
    /// The receive side's out-of-order blocks, most recent first (see
    /// [`Recovery::note_rx`]).
    rsb: [(u32, u32); RSB],
    nrsb: u8,
    /// Data segments this connection sent again (its share of
    /// `EngineStats::retransmits`).
    resent: u32,
    /// `TCP_USER_TIMEOUT` (ms; 0 off): how long data may stay outstanding
    /// without the peer acknowledging any of it before the connection is
    /// given up ([`Repair::GiveUp`]).
    user_timeout_ms: u32,
    /// When (engine ms, wrapping) the peer last acknowledged new data, or
    /// data became outstanding with none before: where the user timeout
    /// counts from.
    progress_ms: u32,
}

/// Engine µs as wrapping ms (for `Recovery::progress_ms`).
#[inline]
fn ms(us: u64) -> u32 {
    (us / 1000) as u32
}

/// The scoreboard of a flight with many holes (see [`SB_EXT`]).
#[derive(Clone, Debug)]
struct ExtBoard {
    sb: [(u32, u32); SB_EXT],
    sb_t: [u32; SB_EXT],
}

/// A connection's send-side numbers for an operator (`ringline stat
/// --conns`, like `ss -ti`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RecoveryReport {
    /// Bytes sent and received, counted in sequence space from the first
    /// segment each way: modulo 2^32.
    pub(crate) bytes_out: u32,
    pub(crate) bytes_in: u32,
    /// Smoothed RTT, its variation and the smallest sample, µs (0: none yet).
    pub(crate) srtt_us: u64,
    pub(crate) rttvar_us: u64,
    pub(crate) min_rtt_us: u64,
    /// Congestion window, bytes (0: not set yet).
    pub(crate) cwnd: u32,
    /// Data segments sent again.
    pub(crate) retransmits: u32,
}

impl Recovery {
    /// Forgets everything (a new connection in the slot). The clock offset
    /// goes back to zero too: the new socket has no timers yet.
    pub(crate) fn reset(&mut self, cc: Congestion) {
        let ext = self.ext.take();
        *self = Recovery {
            cc,
            ext,
            ..Recovery::default()
        };
    }

    /// Gives back the larger scoreboard if it holds nothing, or whatever it
    /// holds if `free` (the slot's connection is gone). The buffer
    /// reclaimer asks, for idle connections and free slots.
    pub(crate) fn shed_board(&mut self, free: bool) {
        if self.ext.is_some() && (free || self.nsb == 0) {
            if self.on_ext {
                self.nsb = 0;
                self.sacked = 0;
            }
            self.on_ext = false;
            self.ext = None;
        }
    }

    /// The scoreboard's blocks and their times.
    #[inline]
    fn board(&self) -> (&[(u32, u32)], &[u32]) {
        let n = self.nsb as usize;
        match &self.ext {
            Some(e) if self.on_ext => (&e.sb[..n], &e.sb_t[..n]),
            _ => (&self.sb[..n], &self.sb_t[..n]),
        }
    }

    /// The scoreboard's whole arrays (not only the blocks in use), writable.
    #[inline]
    fn board_mut(&mut self) -> (&mut [(u32, u32)], &mut [u32]) {
        match &mut self.ext {
            Some(e) if self.on_ext => (&mut e.sb[..], &mut e.sb_t[..]),
            _ => (&mut self.sb[..], &mut self.sb_t[..]),
        }
    }

    /// Moves the blocks to the larger board (taking it if the slot has
    /// none yet). False if they are there already.
    #[cold]
    fn grow_board(&mut self) -> bool {
        if self.on_ext {
            return false;
        }
        let e = self.ext.get_or_insert_with(|| {
            Box::new(ExtBoard {
                sb: [(0, 0); SB_EXT],
                sb_t: [0; SB_EXT],
            })
        });
        let n = self.nsb as usize;
        e.sb[..n].copy_from_slice(&self.sb[..n]);
        e.sb_t[..n].copy_from_slice(&self.sb_t[..n]);
        self.on_ext = true;
        true
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

    /// The numbers an operator reads (see [`RecoveryReport`]).
    pub(crate) fn report(&self) -> RecoveryReport {
        RecoveryReport {
            bytes_out: if self.active {
                self.nxt.wrapping_sub(self.tx_base)
            } else {
                0
            },
            bytes_in: self.rx_base.map_or(0, |b| self.peer_end.wrapping_sub(b)),
            srtt_us: self.srtt_us,
            rttvar_us: self.rttvar_us,
            min_rtt_us: if self.min_rtt_us == u64::MAX {
                0
            } else {
                self.min_rtt_us
            },
            cwnd: self.cwnd,
            retransmits: self.resent,
        }
    }

    /// How long (µs, in the socket's time, which smoltcp's timeout uses)
    /// the peer has been silent at engine time `now_us`.
    pub(crate) fn silent_for(&self, now_us: u64) -> u64 {
        self.socket_time(now_us).saturating_sub(self.heard_us)
    }

    /// Takes in the options of the peer's SYN (or SYN-ACK): its window
    /// scale and MSS.
    pub(crate) fn on_syn(&mut self, opts: &[u8]) {
        if let Some(r) = tcpopt::find(opts, tcpopt::WSCALE) {
            self.peer_ws = true;
            if let Some(&s) = opts[r].first() {
                // RFC 7323: larger shifts are taken as 14.
                self.wscale = s.min(14);
            }
        }
        if let Some(r) = tcpopt::find(opts, tcpopt::MSS) {
            if let [a, b] = opts[r] {
                self.peer_mss = u32::from(u16::from_be_bytes([a, b]));
            }
        }
    }

    /// The segment size the window counts in.
    #[inline]
    fn smss(&self) -> u32 {
        if self.mss > 0 {
            self.mss
        } else if self.peer_mss > 0 {
            self.peer_mss.clamp(64, MSS_DEFAULT)
        } else {
            MSS_DEFAULT
        }
    }

    /// The congestion window (bytes).
    #[inline]
    fn cwnd(&self) -> u32 {
        if self.cwnd == 0 {
            IW_SEGS * self.smss()
        } else {
            self.cwnd
        }
    }

    /// The window field to feed the socket for a segment from the peer
    /// whose field is `field` (`syn`: a SYN segment, whose window is never
    /// scaled): at most what the congestion window allows beyond `una`,
    /// counting SACKed bytes as out of the network. Remembered for the
    /// synthetic duplicates.
    #[inline]
    pub(crate) fn window_field(&mut self, field: u16, syn: bool) -> u16 {
        let allowed = u64::from(self.cwnd()) + u64::from(self.sacked);
        let shift = if syn { 0 } else { self.wscale };
        // Rounded up, so the socket never sees less than the window.
        let units = (allowed + (1u64 << shift) - 1) >> shift;
        let w = units.min(u64::from(field)) as u16;
        self.fed_win = w;
        w
    }

    /// Data outstanding (sent, not acknowledged).
    #[inline]
    fn outstanding(&self) -> bool {
        self.active && self.una != self.nxt
    }

    /// A record for the next egress call's segments, with the recovery
    /// filter when an episode is open.
    #[inline]
    pub(crate) fn begin(&mut self, now_us: u64) -> Sent {
        // Also while the socket's send pointer is behind `snd.nxt` after an
        // episode ended: the rest of its walk back would otherwise go out
        // whole (segments the peer SACKed, or that are still in flight).
        // A probe's `force_una` is for this call only.
        let force_una = std::mem::take(&mut self.force_una);
        let mut s = self.reply_sent();
        s.base = self.active.then_some(self.nxt);
        if self.in_recovery || self.nsb > 0 || (self.active && after(self.nxt, self.ptr)) {
            s.filter = Some(self.filter(now_us, force_una));
        }
        s
    }

    /// A record for segments the socket sends in reply to input (no data
    /// of ours to track): the window scale and the receive side's SACK
    /// blocks its ACKs need.
    #[inline]
    pub(crate) fn reply_sent(&self) -> Sent {
        let mut s = Sent {
            shift: self.wire_shift(),
            ..Sent::default()
        };
        if self.nrsb > 0 {
            s.rsb = self.rsb;
            s.nrsb = self.nrsb;
        }
        s
    }

    /// Takes in a block `[l, r)` the socket reported in an ACK's
    /// SACK option: data it holds out of order (read from its own ACKs, not
    /// from the segments received, so a segment the socket dropped is never
    /// reported). The block goes first in the receive side's list (merged
    /// with the blocks it touches; the oldest falls off). smoltcp's ACKs
    /// carry one SACK block, the one holding the segment that triggered
    /// them; the others are added on the way out (`device::add_blocks`), so
    /// a sender that lost an ACK still hears of every block in the next
    /// ones, as from Linux.
    #[inline]
    pub(crate) fn note_rx(&mut self, (mut l, mut r): (u32, u32)) {
        let Some(ack) = self.ack_out else {
            return;
        };
        if !after(l, ack) || !after(r, l) {
            return;
        }
        let mut keep = [(0u32, 0u32); RSB];
        let mut n = 0;
        for &(bl, br) in &self.rsb[..usize::from(self.nrsb)] {
            if !after(bl, r) && !after(l, br) {
                l = seq_min(l, bl);
                r = seq_max(r, br);
            } else if n < RSB - 1 {
                keep[n] = (bl, br);
                n += 1;
            }
        }
        self.rsb[0] = (l, r);
        self.rsb[1..=n].copy_from_slice(&keep[..n]);
        self.nrsb = (n + 1) as u8;
    }

    /// Forgets the receive side's blocks at or below `ack` (data the peer
    /// has now been told arrived in order).
    #[inline]
    fn prune_rx(&mut self, ack: u32) {
        let mut n = 0;
        for i in 0..usize::from(self.nrsb) {
            let b = self.rsb[i];
            if after(b.0, ack) {
                self.rsb[n] = b;
                n += 1;
            }
        }
        self.nrsb = n as u8;
    }

    /// The window scale our window fields are in on the wire (0: none, or
    /// not known yet).
    ///
    /// smoltcp advertises its free receive space rounded down to a unit of
    /// `1 << shift`, so its right edge (`ack + window`) can move back by up
    /// to a unit when data arrives: a peer that filled the earlier edge
    /// then has data outside the window. With the window closed that way,
    /// smoltcp drops such segments whole, their ACKs too, and both ends
    /// can wait on each other for good. Advertising one unit less than
    /// smoltcp's window keeps every edge the peer hears at or below every
    /// edge smoltcp holds later (its free space only grows by reads, and a
    /// rounded edge is never a unit below it): the peer may see its edge
    /// move back by less than a unit, as RFC 7323 (section 2.4) allows for
    /// rounding, but what it was allowed to send is always taken. Linux's
    /// `tcp_select_window` keeps its edges from moving back by rounding up
    /// into slack its buffer has; smoltcp's buffer has none to give.
    #[inline]
    pub(crate) fn wire_shift(&self) -> u8 {
        if self.peer_ws {
            self.our_ws
        } else {
            0
        }
    }

    /// Whether a segment `[seq, seq + len)` from the peer lies where the
    /// peer may send (RFC 9293 3.10.7.4's acceptability test, with room for
    /// old copies): not past the right edge the socket last advertised
    /// (plus one unit of the window scale: the peer may have heard an edge
    /// rounded up), and not wholly below `rcv.nxt` by more than the largest
    /// window the scale can say (a resend of data already had, a keep-alive
    /// or a zero-window probe just below `rcv.nxt`). smoltcp and Linux drop
    /// a segment outside without reading its ACK; recovery must not read it
    /// either, or anyone who knows the connection's addresses and ports
    /// could move its `snd.una` or mark data SACKed with one forged segment.
    /// Before the socket has sent an ACK every segment is.
    #[inline(always)]
    pub(crate) fn acceptable(&self, seq: u32, len: u32) -> bool {
        let (Some(rcv), Some(win)) = (self.ack_out, self.win_out) else {
            return true;
        };
        let shift = self.wire_shift();
        let edge = rcv
            .wrapping_add(u32::from(win) << shift)
            .wrapping_add(1 << shift);
        let floor = rcv.wrapping_sub(0xffff << shift);
        !after(seq, edge) && !after(floor, seq.wrapping_add(len))
    }

    /// A segment [`Recovery::acceptable`] refused that the socket may still
    /// store: it takes data up to its free space, which grows past the
    /// edge it last advertised as the application reads, and a peer that
    /// does not keep to the edge may send there. Only its end is noted
    /// (so [`Recovery::rx_beyond`] knows the socket may hold data out of
    /// order, and the buffer reclaimer keeps that part of the ring); its
    /// ACK and SACK blocks are not read. A segment past `rcv.nxt` plus the
    /// whole buffer (`cap`) is one the socket cannot store: ignored.
    #[cold]
    pub(crate) fn note_outside(&mut self, seq: u32, len: u32, cap: u32) {
        let Some(rcv) = self.ack_out else {
            return;
        };
        let end = seq.wrapping_add(len);
        if after(end, rcv) && !after(end, rcv.wrapping_add(cap)) && after(end, self.peer_end) {
            self.peer_end = end;
        }
    }

    /// `rcv.nxt` while the socket's receive window is closed (the last
    /// window it sent was zero), when it takes only a pure ACK at exactly
    /// `rcv.nxt`: any other segment is dropped whole, its acknowledgment
    /// with it. RFC 9293 (3.10.7.4) asks that ACKs be taken even then, and
    /// Linux does (`tcp_sequence` accepts a segment that starts at the
    /// window's right edge); the caller feeds the socket such a segment's
    /// ACK alone first (see `net::device::ack_at`).
    #[inline]
    pub(crate) fn closed_at(&self) -> Option<u32> {
        if self.win_out == Some(0) {
            self.ack_out
        } else {
            None
        }
    }

    /// The egress filter: the blocks that can matter to a resend this call
    /// (those reaching above the round's resends), at most
    /// [`FILTER_BLOCKS`]; the lost range ends before the first block past
    /// those.
    #[cold]
    fn filter(&self, now_us: u64, force_una: bool) -> Filter {
        let rxt_high = seq_max(self.rxt_high, self.una);
        let mut lost_below = self.lost_below(now_us);
        let mut sb = [(0u32, 0u32); FILTER_BLOCKS];
        let mut n = 0;
        // Blocks past what is lost count too: a resend that starts in the
        // lost range may end inside one (it is cut there).
        for &(l, r) in self.board().0 {
            if !after(r, rxt_high) {
                continue;
            }
            if n == FILTER_BLOCKS {
                lost_below = seq_min(lost_below, l);
                break;
            }
            sb[n] = (l, r);
            n += 1;
        }
        Filter {
            una: self.una,
            nxt: self.nxt,
            lost_below,
            rxt_high,
            ptr: self.ptr,
            force_una,
            sb,
            nsb: n as u8,
        }
    }

    /// Notes that the socket goes back to `una` (a walk or its RTO).
    pub(crate) fn rewind(&mut self, sent: &mut Sent) {
        self.ptr = self.una;
        if let Some(f) = &mut sent.filter {
            f.ptr = self.una;
        }
    }

    /// Takes in the acknowledgment number of what went out (any segment:
    /// an egress call's, or a reply to input).
    #[inline]
    pub(crate) fn note_ack(&mut self, s: &Sent) {
        if let Some(a) = s.ack {
            self.ack_out = s.ack;
            self.win_out = s.win;
            if self.nrsb > 0 {
                self.prune_rx(a);
            }
        }
        if let Some(b) = s.sacked {
            self.note_rx(b);
        }
        if let Some(ws) = s.ws {
            self.our_ws = ws.min(14);
        }
    }

    /// The edges of received data `[seq, seq + len)` if all of it lies
    /// below the acknowledgment number we last sent: a duplicate (the peer
    /// resent it needlessly, or the network duplicated it).
    #[inline]
    pub(crate) fn duplicate(&self, seq: u32, len: u32) -> Option<(u32, u32)> {
        let end = seq.wrapping_add(len);
        self.ack_out
            .filter(|&ack| !after(end, ack))
            .map(|_| (seq, end))
    }

    /// Whether data starting at `seq` lies past the acknowledgment number
    /// last sent (out of order, or in order ahead of a delayed ACK).
    #[inline]
    pub(crate) fn ahead_of_ack(&self, seq: u32) -> bool {
        self.ack_out.is_some_and(|a| after(seq, a))
    }

    /// How far past the acknowledgment number last sent the peer's data
    /// reaches: what the socket may hold out of order past its receive
    /// queue (it holds nothing past that, so the rest of its receive buffer
    /// is unused). 0 when everything the engine saw is acknowledged; `None`
    /// before anything was acknowledged (unknown).
    pub(crate) fn rx_beyond(&self) -> Option<u32> {
        match (self.rx_base, self.ack_out) {
            (None, _) => Some(0),
            (Some(_), None) => None,
            (Some(_), Some(a)) => Some(if after(self.peer_end, a) {
                self.peer_end.wrapping_sub(a)
            } else {
                0
            }),
        }
    }

    /// Sequence positions each way (received end, sent end): how far the
    /// connection has moved, for the buffer reclaimer's marks.
    pub(crate) fn marks(&self) -> (u32, u32) {
        (self.peer_end, self.nxt)
    }

    /// The first sequence positions each way (received, sent): the
    /// [`Recovery::marks`] of a connection that has moved nothing.
    pub(crate) fn bases(&self) -> (u32, u32) {
        (self.rx_base.unwrap_or(self.peer_end), self.tx_base)
    }

    /// Takes in an egress call's data segments, sent at `now_us`.
    pub(crate) fn on_sent(&mut self, s: &Sent, now_us: u64, stats: &mut EngineStats) {
        self.note_ack(s);
        if let Some(f) = &s.filter {
            self.rxt_high = f.rxt_high;
            self.ptr = f.ptr;
        }
        if s.segs == 0 {
            return;
        }
        if !self.active {
            self.active = true;
            self.una = s.lo;
            self.nxt = s.lo;
            self.tx_base = s.lo;
            self.ptr = s.lo;
            self.rxt_high = s.lo;
        }
        self.mss = self.mss.max(s.max_len);
        if s.filter.is_none() && after(s.hi, self.ptr) {
            self.ptr = s.hi;
        }
        if s.resent > 0 {
            // Some of it went out before: a retransmission (Karn: a sample
            // spanning it would be ambiguous).
            stats.retransmits += u64::from(s.resent);
            self.resent = self.resent.wrapping_add(s.resent);
            if self.undo_cwnd > 0 {
                self.undo_retrans = self.undo_retrans.saturating_add(s.resent);
            }
            if let Some((e, _)) = self.timed {
                if after(e, s.resent_hi) {
                    // Resent below it: a SACK of it still times it.
                    self.timed_behind = true;
                } else {
                    self.timed = None;
                }
            }
        }
        if after(s.hi, self.nxt) {
            if self.una == self.nxt {
                self.since_us = now_us;
                self.progress_ms = ms(now_us);
                self.backoff = 0;
            }
            if self.timed.is_none() {
                self.timed = Some((s.hi, now_us));
                self.timed_behind = false;
            }
            self.nxt = s.hi;
        }
        self.rearm(now_us);
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
        // Only data moves the peer's end: a pure ACK (or a segment whose data
        // the memory budget stripped) brings nothing the socket may hold.
        if first || (h.len > 0 && after(end, self.peer_end)) {
            self.peer_end = end;
        }
        self.win = h.win;
        if !self.active {
            return None;
        }
        let ack = h.ack;
        let advanced = after(ack, self.una) && !after(ack, self.nxt);
        if advanced {
            // Growth continues in recovery for what is delivered in order
            // (congestion avoidance, as after the reduction; slow start
            // again after a timeout).
            let may_grow = true;
            let acked = ack.wrapping_sub(self.una);
            let flight = self.nxt.wrapping_sub(self.una);
            if !self.in_recovery
                && self.nsb > 0
                && self.repaired != Some(self.una)
                && !after(self.rxt_high, self.una)
            {
                // The hole at `una` filled with SACKed data above it, and
                // nothing was resent (no probe, no resend of the last
                // round at `una`): it was late, not lost.
                self.reo_seen = true;
            }
            self.una = ack;
            if self.jumped_us > 0 {
                // Heard from (smoltcp takes an ACK of new data as heard):
                // its timeouts count from now again, unstretched.
                self.jumped_us = 0;
                self.refit = true;
            }
            self.since_us = now_us;
            self.progress_ms = ms(now_us);
            self.backoff = 0;
            if let Some((e, sent)) = self.timed {
                if !after(e, ack) {
                    if !self.timed_behind {
                        self.sample(now_us.saturating_sub(sent), now_us);
                    }
                    self.timed = None;
                }
            }
            if after(ack, self.ptr) {
                self.ptr = ack;
            }
            self.trim_scoreboard();
            if self.in_recovery && !after(self.recover, ack) {
                self.in_recovery = false;
                self.rto_lost = false;
            }
            if may_grow {
                self.grow(acked, flight);
            }
        }
        let sacks = &h.sack[..h.nsack as usize];
        if let Some(&(l, r)) = sacks.first() {
            // RFC 2883: a first block below the cumulative ACK, or inside
            // the second, reports a duplicate: a resend that was not needed.
            let inside = sacks
                .get(1)
                .is_some_and(|&(l2, r2)| !after(l2, l) && !after(r, r2));
            if !after(r, ack) || inside {
                self.on_dsack(now_us);
            }
        }
        for &(l, r) in sacks {
            self.add_sack(l, r, now_us);
        }
        if let (Some((e, sent)), false) = (self.timed, sacks.is_empty()) {
            // RACK's RTT from a SACK (RFC 8985): the timed segment arrived,
            // though a hole below it keeps the cumulative ACK back. This is
            // what keeps SRTT current through recovery, where the queue the
            // flight builds is what the next round must wait out.
            let last = e.wrapping_sub(1);
            if self
                .board()
                .0
                .iter()
                .any(|&(l, r)| !after(l, last) && after(r, last))
            {
                self.sample(now_us.saturating_sub(sent), now_us);
                self.timed = None;
            }
        }
        if advanced && self.reneged() {
            // As Linux's `tcp_check_sack_reneging`: the next timeout is a
            // retransmission timeout (no probe), which forgets the blocks.
            self.repaired = Some(self.una);
        }
        self.measure_delivery(now_us);
        let repair = self.detect(now_us);
        if advanced || !sacks.is_empty() {
            // The timeouts count from the progress; RACK's timer depends on
            // the blocks not yet judged lost.
            self.rearm(now_us);
        }
        repair
    }

    /// Judges what is lost from the scoreboard now (entering recovery with
    /// one reduction on the first loss) and says whether a walk follows.
    #[inline(always)]
    fn detect(&mut self, now_us: u64) -> Option<Repair> {
        // No blocks and no episode open: nothing is judged lost (a flight
        // without SACKs is repaired by the timeouts alone).
        if !self.outstanding() || (self.nsb == 0 && !self.in_recovery && !self.rto_lost) {
            return None;
        }
        self.detect_loss(now_us)
    }

    /// [`Recovery::detect`] with blocks or an episode.
    #[inline(never)]
    fn detect_loss(&mut self, now_us: u64) -> Option<Repair> {
        let lost = self.lost_below(now_us);
        if !self.in_recovery && after(lost, self.una) {
            // Loss: one reduction for the episode (β = 0.7, as CUBIC).
            let flight = self.nxt.wrapping_sub(self.una);
            self.enter_recovery(now_us);
            self.mark_undo();
            // One reduction for the episode, to the controller's threshold.
            self.ssthresh = self.loss_threshold(flight);
            self.cwnd = self.cwnd().min(self.ssthresh);
            self.ca_acc = 0;
        }
        if !self.in_recovery {
            return None;
        }
        // A retransmission still missing 5/4 SRTT after it went out is lost
        // too (RACK's rule for retransmissions): a new round.
        if after(self.rxt_high, self.una)
            && now_us.saturating_sub(self.round_us) > self.srtt_us * 5 / 4 + 1_000
        {
            self.rxt_high = self.una;
            self.round_us = now_us;
        }
        // A lost segment not resent this round that the socket's send
        // pointer has passed: walk back to it.
        let from = seq_max(self.rxt_high, self.una);
        let hole = self.first_unsacked(from);
        if after(lost, hole) && after(self.ptr, hole) {
            self.walk = true;
            return Some(Repair::Walk);
        }
        None
    }

    /// Whether the socket's timeouts must be set back to their base, once.
    #[inline]
    pub(crate) fn take_refit(&mut self) -> bool {
        std::mem::take(&mut self.refit)
    }

    /// Moves the socket's clock forward by `d_us` (a walk or an RTO); its
    /// timeouts are meant in real time, so they stretch by as much until
    /// the peer is heard from. Returns the stretch.
    pub(crate) fn jump(&mut self, d_us: u64) -> u64 {
        self.off_us += d_us;
        self.jumped_us += d_us;
        self.refit = false;
        self.jumped_us
    }

    /// A walk asked for by the segments heard since the last egress.
    #[inline]
    pub(crate) fn take_walk(&mut self) -> Option<Repair> {
        std::mem::take(&mut self.walk).then_some(Repair::Walk)
    }

    /// Counts what the peer has newly received (cumulatively acknowledged
    /// or SACKed) and, once per round trip, folds the delivery rate of the
    /// round into the bandwidth estimate (Westwood+'s filter).
    #[inline]
    fn measure_delivery(&mut self, now_us: u64) {
        let mark = self.una.wrapping_add(self.sacked);
        let d = mark.wrapping_sub(self.dlv_mark) as i32;
        if d > 0 {
            self.dlv_acc = self.dlv_acc.saturating_add(d as u32);
            self.dlv_mark = mark;
        } else if d < 0 && self.dlv_acc == 0 {
            self.dlv_mark = mark;
        }
        if self.dlv_start_us == 0 {
            self.dlv_start_us = now_us.max(1);
            self.dlv_acc = 0;
            return;
        }
        let span = now_us.saturating_sub(self.dlv_start_us);
        if self.srtt_us == 0 || span < self.srtt_us.max(1_000) {
            return;
        }
        self.fold_rate(span, now_us);
    }

    /// The end of a round in [`Recovery::measure_delivery`]: its delivery
    /// rate into the estimate.
    #[inline(never)]
    fn fold_rate(&mut self, span: u64, now_us: u64) {
        let rate = u64::from(self.dlv_acc) * 1_000_000 / span;
        self.dlv_acc = 0;
        self.dlv_start_us = now_us;
        match self.cc {
            Congestion::Westwood => {
                self.bwe = if self.bwe == 0 {
                    rate
                } else {
                    (7 * self.bwe + rate) / 8
                };
            }
            Congestion::Rate => {
                // BBR's windowed maximum (about ten rounds, in two halves).
                self.bw_hi = self.bw_hi.max(rate);
                self.rounds = self.rounds.wrapping_add(1);
                if self.rounds.is_multiple_of(10) {
                    self.bw_prev = self.bw_hi;
                    self.bw_hi = 0;
                }
            }
        }
    }

    /// The rate model's bottleneck bandwidth (bytes/s).
    #[inline]
    fn bw(&self) -> u64 {
        self.bw_hi.max(self.bw_prev)
    }

    /// The slow-start threshold after a loss out of `flight`, at least two
    /// segments. Westwood+: the estimated bandwidth times the smallest RTT
    /// (0.7 of the flight before there is an estimate). Rate: the larger of
    /// 0.7 of the flight and twice the bandwidth-delay product measured
    /// with BBR's max filter, so random loss on a path the flight does not
    /// fill takes nothing away, and a full bottleneck keeps at most about
    /// one BDP queued.
    fn loss_threshold(&self, flight: u32) -> u32 {
        let cut = u64::from(flight / 10 * 7);
        let t = match self.cc {
            Congestion::Westwood if self.bwe > 0 && self.min_rtt_us > 0 => {
                self.bwe.saturating_mul(self.min_rtt_us) / 1_000_000
            }
            Congestion::Westwood => cut,
            Congestion::Rate => cut.max(2 * self.bw().saturating_mul(self.min_rtt_us) / 1_000_000),
        };
        (t.min(u64::from(CWND_MAX)) as u32).max(2 * self.smss())
    }

    /// Remembers the window and threshold before an episode's reduction,
    /// for [`Recovery::on_dsack`] to restore if it proves spurious.
    fn mark_undo(&mut self) {
        self.undo_cwnd = self.cwnd();
        self.undo_ssthresh = self.ssthresh;
        self.undo_retrans = 0;
    }

    /// Opens a recovery episode over the current flight.
    fn enter_recovery(&mut self, now_us: u64) {
        self.reo_quiet = self.reo_quiet.saturating_add(1);
        if self.reo_quiet >= 16 {
            self.reo_mult = 1;
            self.reo_quiet = 0;
        }
        self.in_recovery = true;
        self.recover = self.nxt;
        if !after(self.rxt_high, self.una) {
            // A new round; one still running (resends made since the last
            // episode ended, while the socket finished its walk) goes on.
            self.rxt_high = self.una;
            self.round_us = now_us;
        }
    }

    /// Grows the congestion window for `acked` new bytes acknowledged out
    /// of a flight of `flight` (only while the window is what limits it).
    fn grow(&mut self, acked: u32, flight: u32) {
        let cwnd = self.cwnd();
        if 2 * u64::from(flight) < u64::from(cwnd) {
            return;
        }
        let mss = self.smss();
        let ssthresh = if self.ssthresh == 0 {
            u32::MAX
        } else {
            self.ssthresh
        };
        let next = if cwnd < ssthresh {
            // Slow start, at most two segments per ACK (RFC 3465, L = 2).
            cwnd.saturating_add(acked.min(2 * mss))
        } else {
            // Congestion avoidance: one segment per window.
            self.ca_acc = self.ca_acc.saturating_add(acked);
            if self.ca_acc >= cwnd {
                self.ca_acc -= cwnd;
                cwnd.saturating_add(mss)
            } else {
                cwnd
            }
        };
        self.cwnd = next.min(CWND_MAX);
    }

    /// Drops scoreboard blocks (and parts) at or below `una`.
    fn trim_scoreboard(&mut self) {
        if self.nsb == 0 {
            return;
        }
        let una = self.una;
        let count = self.nsb as usize;
        let (sb, sb_t) = self.board_mut();
        let mut n = 0;
        let mut sacked = 0u32;
        for i in 0..count {
            let (l, r) = sb[i];
            if !after(r, una) {
                continue;
            }
            let l = seq_max(l, una);
            sb[n] = (l, r);
            sb_t[n] = sb_t[i];
            sacked = sacked.wrapping_add(r.wrapping_sub(l));
            n += 1;
        }
        self.nsb = n as u8;
        self.sacked = sacked;
        if n == 0 {
            // Back to the inline board (the larger one stays for the slot).
            self.on_ext = false;
        }
    }

    /// Merges SACK block `[l, r)` into the scoreboard (parts outside
    /// `(una, nxt]` ignored: D-SACKs and nonsense), in place.
    fn add_sack(&mut self, l: u32, r: u32, now_us: u64) {
        if !after(r, l) || !after(r, self.una) || after(r, self.nxt) {
            return;
        }
        let now = now_us as u32;
        let mut l = seq_max(l, self.una);
        let mut r = r;
        let mut t = now;
        let mut n = self.nsb as usize;
        // Blocks i..j touch [l, r) and merge with it; the rest stay.
        let (i, j) = {
            let sb = self.board().0;
            let i = sb.iter().position(|&(_, br)| !after(l, br)).unwrap_or(n);
            let j = i + sb[i..]
                .iter()
                .position(|&(bl, _)| after(bl, r))
                .unwrap_or(n - i);
            (i, j)
        };
        if i == j && n == self.board_mut().0.len() && !self.grow_board() {
            // Full: the highest block is forgotten.
            if i == n {
                return;
            }
            n -= 1;
        }
        let (sb, sb_t) = self.board_mut();
        for k in i..j {
            let (bl, br) = sb[k];
            if after(l, bl) {
                l = bl;
            }
            if after(br, r) {
                r = br;
            }
            // The merged block is as old as its oldest part.
            if now.wrapping_sub(sb_t[k]) > now.wrapping_sub(t) {
                t = sb_t[k];
            }
        }
        if j != i + 1 {
            // Shift the blocks above into place (one slot up or down).
            sb.copy_within(j..n, i + 1);
            sb_t.copy_within(j..n, i + 1);
        }
        sb[i] = (l, r);
        sb_t[i] = t;
        let n = n + 1 + i - j;
        let sacked = sb[..n]
            .iter()
            .fold(0u32, |a, &(l, r)| a.wrapping_add(r.wrapping_sub(l)));
        self.nsb = n as u8;
        self.sacked = sacked;
    }

    /// The first sequence number at or after `from` the scoreboard does not
    /// cover.
    fn first_unsacked(&self, from: u32) -> u32 {
        let mut x = from;
        for &(l, r) in self.board().0 {
            if !after(l, x) && after(r, x) {
                x = r;
            }
        }
        x
    }

    /// A D-SACK arrived: a resend was not needed, so the path reorders.
    /// The reordering window grows by a quarter of the smallest RTT, at most
    /// once per round trip (RFC 8985, 6.2).
    fn on_dsack(&mut self, now_us: u64) {
        self.reo_seen = true;
        if self.undo_cwnd > 0 && self.undo_retrans > 0 {
            self.undo_retrans -= 1;
            if self.undo_retrans == 0 {
                // Every retransmission of the episode arrived twice: the
                // reduction was for reordering. Back to where it was.
                self.cwnd = self.cwnd().max(self.undo_cwnd);
                self.ssthresh = self.ssthresh.max(self.undo_ssthresh);
                self.undo_cwnd = 0;
                self.undos = self.undos.wrapping_add(1);
            }
        }
        if self.reo_mult == 0 {
            self.reo_mult = 1;
        }
        let since = (now_us as u32).wrapping_sub(self.reo_bump_us);
        if self.reo_mult == 1 || u64::from(since) >= self.srtt_us.max(1) {
            self.reo_mult = self.reo_mult.saturating_add(1);
            self.reo_bump_us = now_us as u32;
            self.reo_quiet = 0;
        }
    }

    /// RACK's reordering window (µs): `reo_mult` quarters of the smallest
    /// RTT, at most SRTT.
    fn reo_wnd(&self) -> u64 {
        (u64::from(self.reo_mult.max(1)) * self.min_rtt_us / 4).min(self.srtt_us)
    }

    /// UnSACKed data below the returned sequence number is lost: everything
    /// outstanding after a timeout. Otherwise, on a path not seen to
    /// reorder, up to where three segments' worth is SACKed above (RFC
    /// 6675's DupThresh), or, in a flight too small for that, where
    /// everything above is SACKed (RFC 5827); on a path that reorders,
    /// below every block SACKed longer ago than the reordering window (RACK,
    /// RFC 8985: a segment is lost once one sent after it was delivered and
    /// the window passed without it).
    fn lost_below(&self, now_us: u64) -> u32 {
        if self.rto_lost {
            return self.recover;
        }
        if self.nsb == 0 {
            return self.una;
        }
        if self.reo_seen {
            let now = now_us as u32;
            let wnd = self.reo_wnd().min(u64::from(u32::MAX >> 1)) as u32;
            let (sb, sb_t) = self.board();
            return sb
                .iter()
                .zip(sb_t)
                .rev()
                .find(|&(_, &t)| now.wrapping_sub(t) >= wnd)
                .map_or(self.una, |(&(l, _), _)| l);
        }
        let mss = self.smss();
        let flight = self.nxt.wrapping_sub(self.una);
        let thresh = (3 * mss).min(flight.saturating_sub(mss)).max(1);
        let mut above = 0u32;
        for &(l, r) in self.board().0.iter().rev() {
            let len = r.wrapping_sub(l);
            if above + len >= thresh {
                // Data below the point in this block where `thresh` is met.
                return r.wrapping_sub(thresh - above);
            }
            above += len;
        }
        self.una
    }

    fn sample(&mut self, rtt: u64, now_us: u64) {
        let rtt = rtt.max(1);
        let age = (now_us as u32).wrapping_sub(self.min_rtt_at);
        if self.min_rtt_us == 0 || rtt <= self.min_rtt_us || u64::from(age) > MIN_RTT_WINDOW_US {
            self.min_rtt_us = rtt;
            self.min_rtt_at = now_us as u32;
        }
        if self.srtt_us == 0 {
            self.srtt_us = rtt;
            self.rttvar_us = rtt / 2;
        } else {
            let diff = self.srtt_us.abs_diff(rtt);
            self.rttvar_us = (3 * self.rttvar_us + diff) / 4;
            self.srtt_us = (7 * self.srtt_us + rtt) / 8;
        }
    }

    /// When the next timeout fires (engine µs), if one is armed: data is
    /// outstanding and fewer than `MAX_BACKOFF` timeouts fired in a row.
    #[inline]
    pub(crate) fn deadline(&self) -> Option<u64> {
        self.due_us
    }

    #[inline]
    fn rearm(&mut self, now_us: u64) {
        let t = self.timer_deadline();
        // RACK's timer only with blocks on a reordering path (rare).
        let due = if self.reo_seen && self.nsb > 0 {
            match (t, self.rack_deadline(now_us)) {
                (Some(t), Some(r)) => Some(t.min(r)),
                (t, r) => t.or(r),
            }
        } else {
            t
        };
        self.due_us = if self.user_timeout_ms != 0 {
            self.with_user_deadline(due, now_us)
        } else {
            due
        };
    }

    /// Sets `TCP_USER_TIMEOUT` (ms; 0 off). It counts from the last
    /// acknowledgment of new data (or from when data became outstanding),
    /// whenever it was set.
    pub(crate) fn set_user_timeout(&mut self, ms: u32, now_us: u64) {
        if self.user_timeout_ms != ms {
            self.user_timeout_ms = ms;
            self.rearm(now_us);
        }
    }

    /// `due` or, if earlier, when the user timeout runs out (data
    /// outstanding only).
    #[cold]
    fn with_user_deadline(&self, due: Option<u64>, now_us: u64) -> Option<u64> {
        if !self.outstanding() {
            return due;
        }
        let u = now_us + u64::from(self.user_left_ms(now_us)) * 1000;
        Some(due.map_or(u, |d| d.min(u)))
    }

    /// What is left of the user timeout at `now_us` (ms; 0: it ran out).
    fn user_left_ms(&self, now_us: u64) -> u32 {
        let elapsed = ms(now_us).wrapping_sub(self.progress_ms);
        self.user_timeout_ms.saturating_sub(elapsed)
    }

    /// RACK's reordering timer (RFC 8985, 6.3): on a path that reorders, a
    /// hole below a SACKed block is lost once the block is older than the
    /// reordering window. Without a later ACK nothing would look again
    /// until the probe timeout (2·SRTT); this is the earliest time a block
    /// not yet old enough becomes so after `now_us`.
    #[cold]
    fn rack_deadline(&self, now_us: u64) -> Option<u64> {
        if !self.reo_seen || self.nsb == 0 || self.rto_lost || !self.outstanding() {
            return None;
        }
        let wnd = self.reo_wnd().min(u64::from(u32::MAX >> 1)) as u32;
        let now = now_us as u32;
        self.board()
            .1
            .iter()
            .map(|&t| now.wrapping_sub(t))
            .filter(|&age| age < wnd)
            .map(|age| now_us + u64::from(wnd - age))
            .min()
    }

    /// The probe or retransmission timeout, from the last progress.
    #[inline]
    fn timer_deadline(&self) -> Option<u64> {
        if !self.outstanding() || self.backoff >= MAX_BACKOFF {
            return None;
        }
        let wait = if self.srtt_us == 0 {
            // No RTT sample yet (the first flight, or every sample so far
            // spanned a retransmission): RFC 6298's initial RTO, no probe.
            INITIAL_RTO_US << self.backoff
        } else if self.backoff == 0 {
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
    /// (unless this `una` was already probed), then RTOs.
    #[inline]
    pub(crate) fn on_timeout(&mut self, now_us: u64, stats: &mut EngineStats) -> Option<Repair> {
        match self.due_us {
            Some(due) if now_us >= due => self.timeout(now_us, stats),
            _ => None,
        }
    }

    #[cold]
    fn timeout(&mut self, now_us: u64, stats: &mut EngineStats) -> Option<Repair> {
        if self.user_timeout_ms != 0 && self.outstanding() && self.user_left_ms(now_us) == 0 {
            stats.user_timeouts += 1;
            self.due_us = None;
            return Some(Repair::GiveUp);
        }
        if self.timer_deadline().is_none_or(|d| now_us < d) {
            // RACK's reordering timer, not the probe or RTO: judge the
            // scoreboard again (a walk if a hole is now lost).
            stats.rack_timeouts += 1;
            self.detect(now_us);
            self.rearm(now_us);
            return self.take_walk();
        }
        let probe = self.backoff == 0 && self.srtt_us > 0 && self.repaired != Some(self.una);
        self.backoff += 1;
        self.since_us = now_us;
        self.timed = None;
        if probe {
            stats.tlp_probes += 1;
            self.repaired = Some(self.una);
            self.rearm(now_us);
            if self.in_recovery {
                // In recovery the socket's send pointer is the engine's to
                // steer: a new round, starting with the segment at `una`.
                self.rxt_high = self.una;
                self.round_us = now_us;
                self.force_una = true;
                return Some(Repair::Walk);
            }
            // The socket's resend of `una` passes the filter (which is on
            // while the scoreboard holds blocks) even though the hole is not
            // judged lost.
            self.force_una = true;
            return Some(Repair::DupAcks {
                seq: self.peer_end,
                ack: self.una,
                win: self.fed_win,
            });
        }
        stats.rto_fired += 1;
        if self.reneged() {
            // Forget every block (RFC 2018, section 8): everything from
            // `una` is resent.
            stats.sack_reneging += 1;
            self.nsb = 0;
            self.sacked = 0;
            self.on_ext = false;
        }
        // Everything unSACKed is lost; the window starts over from one
        // segment (RFC 5681), once per episode for the threshold.
        let flight = self.nxt.wrapping_sub(self.una);
        if !self.in_recovery {
            self.mark_undo();
            self.ssthresh = self.loss_threshold(flight);
        }
        self.enter_recovery(now_us);
        // Everything from `una` again, whatever round was running.
        self.rxt_high = self.una;
        self.round_us = now_us;
        self.rto_lost = true;
        self.cwnd = self.smss();
        self.ca_acc = 0;
        self.repaired = None;
        self.rearm(now_us);
        Some(Repair::Rto)
    }

    /// The peer's cumulative ACK stopped where a block it SACKed starts:
    /// it no longer holds what it reported (reneging: RFC 2018 allows a
    /// receiver to drop such data), or the block was never its own. A
    /// receiver that holds the data acknowledges past it.
    #[inline]
    fn reneged(&self) -> bool {
        self.nsb != 0
            && self
                .board()
                .0
                .first()
                .is_some_and(|&(l, _)| !after(l, self.una))
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

    /// The segments of a walk over `[lo, lo + n·mss)` the filter lets out.
    fn walk(r: &mut Recovery, lo: u32, n: u32, mss: u32) -> Vec<u32> {
        let mut s = r.begin(0);
        r.rewind(&mut s);
        let mut out = vec![];
        for i in 0..n {
            let seq = lo + i * mss;
            if s.record(seq, mss, mss) {
                out.push(seq);
            }
        }
        let mut st = EngineStats::default();
        r.on_sent(&s, 0, &mut st);
        out
    }

    #[test]
    fn three_segments_sacked_above_a_hole_start_one_reduction_and_a_walk_to_it() {
        let (mut r, _) = first_flight(Congestion::Westwood);
        assert_eq!(r.on_heard(&ack(1100, &[]), 10), None);
        let before = r.cwnd();
        // 1100..1200 lost; 1200.. arrive.
        assert_eq!(r.on_heard(&ack(1100, &[(1200, 1300)]), 11), None);
        assert_eq!(r.on_heard(&ack(1100, &[(1200, 1400)]), 12), None);
        assert!(!r.in_recovery());
        let rep = r.on_heard(&ack(1100, &[(1200, 1500)]), 13);
        assert_eq!(rep, Some(Repair::Walk));
        assert!(r.in_recovery());
        let cut = r.cwnd();
        assert!(cut < before, "one reduction: {before} -> {cut}");
        // The walk resends the hole only: 1200..1500 SACKed, 1500.. in flight.
        assert_eq!(r.take_walk(), Some(Repair::Walk));
        assert_eq!(walk(&mut r, 1100, 9, 100), vec![1100]);
        // More SACKs above the same hole: nothing new is lost, no walk.
        assert_eq!(r.on_heard(&ack(1100, &[(1200, 1600)]), 14), None);
        // A second hole (1600..1700) with three segments SACKed above it:
        // walked to in the same round trip, no second reduction.
        let rep = r.on_heard(&ack(1100, &[(1700, 2000), (1200, 1600)]), 15);
        assert_eq!(rep, Some(Repair::Walk));
        assert_eq!(walk(&mut r, 1100, 9, 100), vec![1600]);
        assert_eq!(r.cwnd(), cut);
        // The whole flight acknowledged: recovery ends.
        assert_eq!(r.on_heard(&ack(2000, &[]), 16), None);
        assert!(!r.in_recovery());
        assert!(r.cwnd() >= cut, "no second reduction");
    }

    /// A fresh connection with `cc` that sent ten 100-byte segments from
    /// 1000 at time 0.
    fn first_flight(cc: Congestion) -> (Recovery, EngineStats) {
        let mut r = Recovery::default();
        r.reset(cc);
        let mut st = EngineStats::default();
        r.on_sent(&sent(1000, 10, 100), 0, &mut st);
        (r, st)
    }

    /// A path with an RTT of 4 ms (µs clock) that a D-SACK at 5 ms showed
    /// to reorder; 2000..3000 sent at 4 ms, nothing of it acknowledged.
    fn reordering_path() -> (Recovery, EngineStats) {
        let (mut r, mut st) = first_flight(Congestion::Rate);
        // Acknowledged whole.
        assert_eq!(r.on_heard(&ack(2000, &[]), 4_000), None);
        assert!(!r.reo_seen);
        // A D-SACK (a block below the cumulative ACK): the path reorders.
        r.on_sent(&sent(2000, 10, 100), 4_000, &mut st);
        assert_eq!(r.on_heard(&ack(2000, &[(1500, 1600)]), 5_000), None);
        assert!(r.reo_seen);
        (r, st)
    }

    #[test]
    fn after_a_dsack_a_hole_is_lost_only_once_the_reordering_window_passed() {
        let (mut r, _) = reordering_path();
        let wnd = r.reo_wnd();
        assert!((1_000..=4_000).contains(&wnd), "{wnd}");
        // 2000..2100 late; five segments SACKed above it at once: not lost
        // yet (DupThresh alone would say lost).
        assert_eq!(r.on_heard(&ack(2000, &[(2100, 2600)]), 6_000), None);
        assert!(!r.in_recovery());
        // It arrives within the window: no recovery, no resend.
        assert_eq!(r.on_heard(&ack(2600, &[]), 6_000 + wnd / 2), None);
        assert!(!r.in_recovery());
        // 2600..2700 really lost: SACKs above it, then the window passes.
        assert_eq!(r.on_heard(&ack(2600, &[(2700, 2900)]), 7_000), None);
        assert!(!r.in_recovery());
        let rep = r.on_heard(&ack(2600, &[(2700, 3000)]), 7_000 + wnd);
        assert_eq!(rep, Some(Repair::Walk));
        assert!(r.in_recovery());
        assert_eq!(walk(&mut r, 2600, 4, 100), vec![2600]);
    }

    /// RFC 8985, 6.3: on a path that reorders, a hole with a block SACKed
    /// above it and no ACK after is judged lost when the block's reordering
    /// window passes (RACK's timer), not at the probe timeout 2·SRTT later.
    #[test]
    fn a_hole_with_no_later_ack_is_lost_when_its_reordering_window_passes() {
        let (mut r, mut st) = reordering_path();
        // 2000..2100 missing, the rest of the flight SACKed at 6 ms (which
        // times the flight's last segment); then nothing more comes.
        assert_eq!(r.on_heard(&ack(2000, &[(2100, 3000)]), 6_000), None);
        assert!(!r.in_recovery());
        let wnd = r.reo_wnd();
        let due = r.deadline().expect("armed");
        assert_eq!(due, 6_000 + wnd, "RACK's timer, before the probe's");
        assert!(due < 5_000 + 2 * r.srtt_us);
        assert_eq!(r.on_timeout(due - 1, &mut st), None);
        assert_eq!(r.on_timeout(due, &mut st), Some(Repair::Walk));
        assert!(r.in_recovery());
        assert_eq!((st.rack_timeouts, st.tlp_probes, st.rto_fired), (1, 0, 0));
        assert_eq!(walk(&mut r, 2000, 10, 100), vec![2000]);
        // From there the probe and RTO timers run as before.
        assert!(r.deadline().is_some_and(|d| d > due));
    }

    /// A flight of ten 100-byte segments from 1000 whose second (1100)
    /// has three segments SACKed above it: one reduction, and the walk
    /// resends 1100. Returns the recovery and its window before the cut.
    fn one_hole_resent() -> (Recovery, u32) {
        let (mut r, _) = first_flight(Congestion::Westwood);
        assert_eq!(r.on_heard(&ack(1100, &[]), 10), None);
        let before = r.cwnd();
        let rep = r.on_heard(&ack(1100, &[(1200, 1500)]), 13);
        assert_eq!(rep, Some(Repair::Walk));
        assert!(r.cwnd() < before, "one reduction");
        assert_eq!(r.take_walk(), Some(Repair::Walk));
        assert_eq!(walk(&mut r, 1100, 9, 100), vec![1100]);
        (r, before)
    }

    #[test]
    fn a_reduction_whose_every_resend_is_dsacked_is_undone() {
        let (mut r, before) = one_hole_resent();
        // 1100..1200 was late, not lost: the original arrives, then the
        // resend, reported by a D-SACK.
        assert_eq!(r.on_heard(&ack(1500, &[]), 14), None);
        assert_eq!(r.on_heard(&ack(1500, &[(1100, 1200)]), 15), None);
        assert!(r.cwnd() >= before, "undone: {} < {before}", r.cwnd());
        assert_eq!(r.undos, 1);
        // A second D-SACK undoes nothing more.
        assert_eq!(r.on_heard(&ack(1500, &[(1100, 1200)]), 16), None);
        assert_eq!(r.undos, 1);
    }

    #[test]
    fn a_reduction_with_a_resend_not_dsacked_stays() {
        let (mut r, _) = one_hole_resent();
        let cut = r.cwnd();
        // A second hole walked to in the same episode: two resends.
        let rep = r.on_heard(&ack(1100, &[(1600, 1900), (1200, 1500)]), 14);
        assert_eq!(rep, Some(Repair::Walk));
        assert_eq!(walk(&mut r, 1100, 9, 100), vec![1500]);
        // Only the first was needless: the reduction stands.
        assert_eq!(r.on_heard(&ack(1900, &[(1100, 1200)]), 15), None);
        assert!(r.cwnd() <= cut + 100, "{} > {cut}", r.cwnd());
        assert_eq!(r.undos, 0);
    }

    #[test]
    fn the_smallest_rtt_gives_way_after_ten_seconds() {
        let mut r = Recovery::default();
        r.sample(10_000, 0);
        r.sample(30_000, 5_000_000);
        assert_eq!(
            r.min_rtt_us, 10_000,
            "within the window: the minimum stands"
        );
        r.sample(30_000, 10_500_000);
        assert_eq!(
            r.min_rtt_us, 30_000,
            "the path's delay grew: the old minimum expired"
        );
        r.sample(25_000, 11_000_000);
        assert_eq!(r.min_rtt_us, 25_000);
    }

    #[test]
    fn a_hole_that_fills_by_itself_marks_the_path_as_reordering() {
        let (mut r, _) = first_flight(Congestion::Rate);
        assert_eq!(r.on_heard(&ack(1000, &[(1100, 1200)]), 1_000), None);
        assert_eq!(r.on_heard(&ack(1300, &[]), 1_100), None);
        assert!(r.reo_seen);
    }

    #[test]
    fn the_rate_model_keeps_twice_the_measured_bdp_through_random_loss() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        // A path of 10 ms that delivers 100 segments of 1000 bytes a round
        // trip (10 MB/s): the sender keeps 100 in flight.
        let mut t = 0u64;
        let mut next = 0u32;
        r.on_sent(&sent(next, 100, 1000), t, &mut st);
        next += 100_000;
        let mut after_two = 0;
        for round in 0..12u32 {
            for k in 1..=100u32 {
                let a = round * 100_000 + k * 1000;
                t += 100;
                // One segment in fifty lost and SACKed around (then repaired).
                let sack = if k % 50 == 0 {
                    vec![(a + 1000, a + 5000)]
                } else {
                    vec![]
                };
                r.on_heard(&ack(a, &sack), t);
                r.on_sent(&sent(next, 1, 1000), t, &mut st);
                next += 1000;
            }
            if round == 2 {
                after_two = r.cwnd();
            }
        }
        assert_eq!(r.min_rtt_us, 10_000);
        let bw = r.bw();
        assert!((9_000_000..=11_000_000).contains(&bw), "bw {bw}");
        // Once the bandwidth is known, losses do not cut below twice the
        // BDP (2 x 10 MB/s x 10 ms = 200 kB): the window only grew.
        assert!(r.cwnd() >= after_two, "{} < {after_two}", r.cwnd());
        assert!(r.ssthresh >= 180_000, "ssthresh {}", r.ssthresh);
        // Westwood+ on the same path cuts to one BDP at each episode.
        let mut w = Recovery::default();
        w.reset(Congestion::Westwood);
        w.bwe = bw;
        w.min_rtt_us = 10_000;
        assert_eq!(w.loss_threshold(150_000), (bw / 100) as u32);
        // A timeout restarts from one segment.
        let mut r2 = r;
        r2.backoff = 1;
        r2.repaired = Some(r2.una);
        let rto_at = r2.timer_deadline().expect("data outstanding");
        assert_eq!(r2.timeout(rto_at, &mut st), Some(Repair::Rto));
        assert_eq!(r2.cwnd(), 1000);
    }

    /// A walk the window cut short goes on after the episode ends (the
    /// socket's send pointer is still behind `snd.nxt`); the rest of it is
    /// filtered like the start: nothing the peer SACKed or that is still in
    /// flight goes out again. Without it, the whole tail was resent.
    #[test]
    fn the_rest_of_a_walk_after_its_episode_ends_resends_nothing_in_flight() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(1000, 20, 100), 0, &mut st);
        assert_eq!(
            r.on_heard(&ack(1000, &[(1100, 1500)]), 10_000),
            Some(Repair::Walk)
        );
        // The window lets two segments of the walk out: the hole, and one
        // SACKed segment the filter drops.
        assert_eq!(walk(&mut r, 1000, 2, 100), vec![1000]);
        // New data, then an ACK past the episode's end with one block.
        let new = {
            let mut s = r.begin(11_000);
            for i in 0..10 {
                assert!(s.record(3000 + i * 100, 100, 100));
            }
            s
        };
        r.on_sent(&new, 11_000, &mut st);
        assert_eq!(r.on_heard(&ack(3000, &[(3100, 3200)]), 20_000), None);
        assert!(!r.in_recovery());
        // The socket's walk goes on from 3000 (it thinks 3000..4000 unsent).
        let mut s = r.begin(20_000);
        for i in 0..10 {
            assert!(!s.record(3000 + i * 100, 100, 100), "{}", 3000 + i * 100);
        }
        r.on_sent(&s, 20_000, &mut st);
        assert_eq!(st.retransmits, 0);
    }

    /// In recovery the RTT is still measured: a SACK of the timed segment
    /// times it even though a hole below it was resent (only its cumulative
    /// ACK, which waited for the resend, would be ambiguous), so SRTT
    /// follows the queue a flight builds while the next round must wait.
    #[test]
    fn a_sack_times_the_flight_through_recovery() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(0, 10, 100), 0, &mut st);
        r.on_heard(&ack(1000, &[]), 10_000);
        assert_eq!(r.srtt_us, 10_000);
        r.on_sent(&sent(1000, 10, 100), 20_000, &mut st);
        assert_eq!(
            r.on_heard(&ack(1000, &[(1100, 1500)]), 25_000),
            Some(Repair::Walk)
        );
        assert_eq!(walk(&mut r, 1000, 1, 100), vec![1000]);
        // The flight's last segment arrives 30 ms after it went out.
        r.on_heard(&ack(1000, &[(1100, 2000)]), 50_000);
        assert_eq!(r.srtt_us, (7 * 10_000 + 30_000) / 8);
        // The cumulative ACK that the resend let through times nothing.
        r.on_heard(&ack(2000, &[]), 60_000);
        assert_eq!(r.srtt_us, (7 * 10_000 + 30_000) / 8);
    }

    /// A segment of the socket's that starts below the round's resends but
    /// reaches past them goes out (trimmed to what the peer lacks): dropping
    /// it left the bytes above the mark unsent in any round (seen through
    /// the relay: a 20-byte hole, and the connection stalled).
    #[test]
    fn a_resend_straddling_the_rounds_mark_still_goes() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(0, 20, 100), 0, &mut st);
        assert_eq!(
            r.on_heard(&ack(900, &[(1020, 2000)]), 10_000),
            Some(Repair::Walk)
        );
        // The window lets one segment of the walk out: the round reaches 1000.
        assert_eq!(walk(&mut r, 900, 1, 100), vec![900]);
        // The socket's next segment is cut from elsewhere: [950, 1050).
        let mut s = r.begin(11_000);
        assert!(s.record(950, 100, 100), "[1000, 1020) is in it");
        assert_eq!(s.trim(950, 1050), Some((950, 1020)));
    }

    /// The tail-loss probe outside recovery still gets its segment out
    /// while the scoreboard holds a block too small to judge the hole lost
    /// (the filter is on whenever there are blocks).
    #[test]
    fn a_probe_with_a_block_below_dupthresh_still_resends_una() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(0, 10, 100), 0, &mut st);
        r.on_heard(&ack(100, &[]), 10_000);
        r.on_heard(&ack(100, &[(900, 1000)]), 11_000);
        assert!(!r.in_recovery());
        let due = r.deadline().expect("armed");
        assert!(matches!(
            r.on_timeout(due, &mut st),
            Some(Repair::DupAcks { ack: 100, .. })
        ));
        let mut s = r.begin(due);
        assert!(s.filter.is_some());
        assert!(s.record(100, 100, 100), "the probe's segment");
        assert!(!s.record(200, 100, 100), "in flight");
        // The next call is filtered as before.
        let mut s = r.begin(due + 1);
        assert!(!s.record(100, 100, 100));
    }

    /// A flight with more holes than the connection's own board holds
    /// keeps every block (the larger board): a walk resends only the holes,
    /// none of the SACKed data between them.
    #[test]
    fn a_flight_with_many_holes_keeps_every_block_and_resends_only_holes() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(0, 200, 100), 0, &mut st);
        // Every tenth segment lost: 20 holes, 19 blocks between them and one
        // above, reported a few at a time as a receiver does (the newest
        // first, then the ones before it).
        let blocks: Vec<(u32, u32)> = (0..20).map(|k| (k * 1000 + 100, k * 1000 + 1000)).collect();
        for (i, _) in blocks.iter().enumerate() {
            let lo = i.saturating_sub(2);
            let recent: Vec<_> = blocks[lo..=i].iter().rev().copied().collect();
            r.on_heard(&ack(0, &recent), 1_000 + i as u64);
        }
        assert_eq!(r.board().0, &blocks[..]);
        assert_eq!(r.sacked, 20 * 900);
        let mut resent = vec![];
        for _ in 0..4 {
            let out = walk(&mut r, 0, 200, 100);
            resent.extend(out);
        }
        let holes: Vec<u32> = (0..20)
            .map(|k| k * 1000)
            .filter(|&h| h < 19_000 + 100)
            .collect();
        // Everything below the last point three segments' worth is SACKed
        // above is lost: every hole but none of the blocks.
        assert!(resent.iter().all(|s| s % 1000 == 0), "{resent:?}");
        assert_eq!(resent, holes[..resent.len()]);
        assert!(resent.len() >= 19, "{resent:?}");
        // Everything acknowledged: back to the connection's own board, and
        // the larger one is given back when idle.
        r.on_heard(&ack(20_000, &[]), 50_000);
        assert_eq!(r.board().0.len(), 0);
        assert!(r.ext.is_some());
        r.shed_board(false);
        assert!(r.ext.is_none());
    }

    /// A flight of `segs` 10-byte segments from 1000, and the peer's SACKs of
    /// `blocks` (first segment, segments), one per ACK: the recovery state and
    /// which bytes (from 1000) the peer has.
    fn sacked_flight(segs: u32, blocks: &[(u32, u32)]) -> (Recovery, Vec<bool>) {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(1000, segs, 10), 0, &mut st);
        let end = 1000 + segs * 10;
        let mut have = vec![false; (segs * 10) as usize];
        for (i, &(at, n)) in blocks.iter().enumerate() {
            let (l, e) = (1000 + at * 10, (1000 + (at + n) * 10).min(end));
            r.on_heard(&ack(1000, &[(l, e)]), i as u64);
            for x in (l - 1000)..(e - 1000) {
                have[x as usize] = true;
            }
        }
        (r, have)
    }

    proptest::proptest! {
        /// A resend cut by the filter keeps every byte of it the peer lacks
        /// and drops only SACKed bytes at its edges.
        #[test]
        fn a_cut_resend_keeps_every_unsacked_byte(
            blocks in proptest::collection::vec((1u32..200, 1u32..10), 1..8),
            at in 0u32..200,
            len in 1u32..30,
        ) {
            let (mut r, have) = sacked_flight(200, &blocks);
            let mut s = r.begin(1_000_000);
            let (seq, end) = (1000 + at * 10, (1000 + (at + len) * 10).min(3000));
            // Only a resend the filter keeps is cut (the rest never goes out).
            if s.record(seq, end - seq, end - seq) {
                if let Some((a, b)) = s.trim(seq, end) {
                    proptest::prop_assert!(!after(seq, a) && !after(b, end) && after(b, a));
                    for x in seq..end {
                        let inside = !after(a, x) && after(b, x);
                        if !have[(x - 1000) as usize] {
                            proptest::prop_assert!(inside, "byte {} lost by the cut {:?}", x, (a, b));
                        }
                    }
                    // It starts and ends with bytes the peer lacks.
                    proptest::prop_assert!(!have[(a - 1000) as usize]);
                    proptest::prop_assert!(!have[(b - 1001) as usize]);
                }
            }
        }

        /// The scoreboard is the union of the blocks heard, within
        /// `(una, nxt]`, sorted and disjoint, whichever board holds it.
        #[test]
        fn the_scoreboard_is_the_union_of_the_blocks_heard(
            blocks in proptest::collection::vec((0u32..300, 1u32..20), 1..60),
        ) {
            let (r, have) = sacked_flight(300, &blocks);
            let mut want = vec![];
            let mut b = 0;
            while b < 3000 {
                if have[b] {
                    let s = b;
                    while b < 3000 && have[b] {
                        b += 1;
                    }
                    want.push((1000 + s as u32, 1000 + b as u32));
                } else {
                    b += 1;
                }
            }
            if want.len() <= SB_EXT {
                proptest::prop_assert_eq!(r.board().0, &want[..]);
                let total: u32 = want.iter().map(|&(l, r)| r - l).sum();
                proptest::prop_assert_eq!(r.sacked, total);
            }
        }
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
        assert_eq!(rep, Some(Repair::Walk));
        assert_eq!(walk(&mut r, 1000, 3, 100), vec![1000]);
    }

    #[test]
    fn a_lost_retransmission_is_resent_after_five_quarters_of_srtt() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(0, 1, 100), 0, &mut st);
        r.on_sent(&sent(100, 9, 100), 5_000, &mut st);
        r.on_heard(&ack(100, &[]), 10_000);
        assert_eq!(r.srtt_us, 10_000);
        let rep = r.on_heard(&ack(100, &[(200, 500)]), 10_100);
        assert_eq!(rep, Some(Repair::Walk));
        assert_eq!(walk(&mut r, 100, 9, 100), vec![100]);
        // Still missing soon after: nothing.
        assert_eq!(r.on_heard(&ack(100, &[(200, 600)]), 15_000), None);
        // Missing 5/4 SRTT after: a new round resends it.
        let rep = r.on_heard(&ack(100, &[(200, 700)]), 10_100 + 14_000);
        assert_eq!(rep, Some(Repair::Walk));
        assert_eq!(walk(&mut r, 100, 9, 100), vec![100]);
    }

    #[test]
    fn the_window_fed_to_the_socket_is_the_congestion_window_plus_sacked_bytes() {
        let mut r = Recovery::default();
        let mut opts = vec![3, 3, 7, 2, 4];
        opts.extend_from_slice(&1000u16.to_be_bytes());
        r.on_syn(&opts);
        assert_eq!((r.wscale, r.peer_mss), (7, 1000));
        // Initial window: 10 segments, in 128-byte units, rounded up.
        assert_eq!(r.window_field(u16::MAX, false), 10_000u16.div_ceil(128));
        assert_eq!(r.window_field(u16::MAX, true), 10_000, "SYNs unscaled");
        assert_eq!(r.window_field(20, false), 20, "never above the peer's");
        let mut st = EngineStats::default();
        r.on_sent(&sent(0, 10, 1000), 0, &mut st);
        r.on_heard(&ack(0, &[(1000, 3000)]), 10);
        assert_eq!(r.window_field(u16::MAX, false), 12_000u16.div_ceil(128));
        // Slow start: a whole window acknowledged doubles it (two segments
        // per ACK at most).
        let mut r = Recovery::default();
        r.on_sent(&sent(0, 10, 1000), 0, &mut st);
        for i in 1..=10 {
            r.on_heard(&ack(i * 1000, &[]), 10);
            // The window is what limits the sender: it refills it.
            r.on_sent(&sent(8000 + i * 2000, 2, 1000), 10, &mut st);
        }
        assert_eq!(r.cwnd(), 20_000);
    }

    #[test]
    fn a_timeout_probes_then_resends_everything_unsacked_from_one_segment() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(0, 1, 100), 0, &mut st);
        r.on_sent(&sent(100, 3, 100), 1, &mut st);
        r.on_heard(&ack(100, &[]), 20_000);
        r.on_heard(&ack(100, &[(300, 400)]), 20_001);
        let probe = r.on_timeout(r.deadline().unwrap(), &mut st);
        assert!(matches!(probe, Some(Repair::DupAcks { ack: 100, .. })));
        let rto = r.on_timeout(r.deadline().unwrap(), &mut st);
        assert_eq!(rto, Some(Repair::Rto));
        assert_eq!(r.cwnd(), 100);
        assert_eq!(walk(&mut r, 100, 3, 100), vec![100, 200], "300.. SACKed");
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
        assert_eq!(r.deadline(), Some(1_000_000), "no RTT sample yet: 1 s");
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
        let mut s = r.begin(0);
        s.record(500, 100, 100);
        r.on_sent(&s, 661_000, &mut st);
        assert_eq!(st.retransmits, 1);
        r.on_heard(&ack(800, &[]), 700_000);
        assert_eq!(r.srtt_us, 20_000, "no sample across a retransmission");
        assert_eq!(r.deadline(), None, "nothing outstanding");
    }

    #[test]
    fn the_user_timeout_gives_up_on_data_unacknowledged_that_long() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.set_user_timeout(500, 0);
        assert_eq!(r.deadline(), None, "nothing outstanding: nothing armed");
        r.on_sent(&sent(0, 1, 100), 10_000, &mut st);
        r.on_heard(&ack(100, &[]), 30_000);
        r.on_sent(&sent(100, 3, 100), 30_000, &mut st);
        // Outstanding from 30 ms (an RTT sample of 20 ms): the user timeout
        // runs out at 530 ms, after the probe (70 ms) and the first RTO
        // (270 ms), before the second (670 ms).
        let mut seen = vec![];
        loop {
            let due = r.deadline().expect("armed while data is outstanding");
            let rep = r.on_timeout(due, &mut st);
            seen.push((due, rep));
            if rep == Some(Repair::GiveUp) {
                break;
            }
            assert!(seen.len() < 10, "{seen:?}");
        }
        let (due, _) = *seen.last().unwrap();
        assert_eq!(due, 530_000, "{seen:?}");
        assert_eq!(st.user_timeouts, 1);
        assert!(
            st.tlp_probes + st.rto_fired >= 2,
            "probe and RTO first: {seen:?}"
        );
        assert_eq!(r.deadline(), None, "given up: nothing more armed");

        // An acknowledgment of new data starts it again; so does the first
        // data outstanding after none.
        let mut r = Recovery::default();
        r.set_user_timeout(500, 0);
        r.on_sent(&sent(0, 4, 100), 0, &mut st);
        r.on_heard(&ack(100, &[]), 400_000);
        assert_eq!(
            r.deadline(),
            Some(900_000),
            "500 ms after the ACK at 400 ms"
        );
        assert_ne!(r.on_timeout(899_000, &mut st), Some(Repair::GiveUp));
        r.on_heard(&ack(400, &[]), 450_000);
        assert_eq!(r.deadline(), None);
        r.on_sent(&sent(400, 1, 100), 2_000_000, &mut st);
        let until_give_up = |r: &mut Recovery, st: &mut EngineStats| loop {
            let due = r.deadline().unwrap();
            if r.on_timeout(due, st) == Some(Repair::GiveUp) {
                break due;
            }
        };
        assert_eq!(until_give_up(&mut r, &mut st), 2_500_000);

        // Off (0): the engine backs off as before and never gives up.
        let mut r = Recovery::default();
        r.on_sent(&sent(0, 4, 100), 0, &mut st);
        for _ in 0..20 {
            let Some(due) = r.deadline() else { break };
            assert_ne!(r.on_timeout(due, &mut st), Some(Repair::GiveUp));
        }
    }

    #[test]
    fn without_an_rtt_sample_the_engine_still_times_out_from_one_second() {
        let mut r = Recovery::default();
        let mut st = EngineStats::default();
        r.on_sent(&sent(0, 4, 100), 5, &mut st);
        assert_eq!(r.deadline(), Some(1_000_005));
        // No probe without an RTT: an RTO, everything unSACKed lost.
        assert_eq!(r.on_timeout(1_000_005, &mut st), Some(Repair::Rto));
        // All lost; the window fed to the socket (one segment) decides how
        // many it builds at once.
        assert_eq!(r.cwnd(), 100);
        assert_eq!(walk(&mut r, 0, 4, 100), vec![0, 100, 200, 300]);
        assert_eq!(r.deadline(), Some(1_000_005 + 2_000_000), "doubling");
        assert_eq!((st.tlp_probes, st.rto_fired), (0, 1));
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

    /// A segment outside the advertised window that the socket could still
    /// store (within its buffer past `rcv.nxt`) keeps the receive side
    /// unsettled; one past the buffer, or wholly below `rcv.nxt`, does not.
    #[test]
    fn a_segment_the_socket_may_store_outside_the_window_unsettles_the_receive_side() {
        let mut r = Recovery::default();
        r.on_heard(&ack(0, &[]), 0);
        let s = Sent {
            ack: Some(5_000),
            win: Some(100),
            ..Sent::default()
        };
        r.note_ack(&s);
        r.on_heard(
            &Heard {
                seq: 4_000,
                len: 1_000,
                ..Heard::default()
            },
            0,
        );
        assert_eq!(r.rx_beyond(), Some(0));
        assert!(!r.acceptable(5_200, 100), "past the advertised edge");
        r.note_outside(1 << 30, 100, 1 << 20);
        assert_eq!(
            r.rx_beyond(),
            Some(0),
            "past the whole buffer: never stored"
        );
        r.note_outside(1_000, 100, 1 << 20);
        assert_eq!(r.rx_beyond(), Some(0), "below rcv.nxt");
        r.note_outside(5_200, 100, 1 << 20);
        assert_eq!(
            r.rx_beyond(),
            Some(300),
            "the socket may hold it out of order, up to 5,300"
        );
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
        assert_eq!(r.on_heard(&ack(una, &[sack(3)]), 2), Some(Repair::Walk));
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
