//! Engine counters. Plain integers owned by the engine thread; read them with
//! [`crate::Inline::stats`], or from another process in the engine's
//! shared-memory page ([`crate::statpage`]).

/// What the engine has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Loop iterations.
    pub steps: u64,
    /// SQEs consumed.
    pub sqes: u64,
    /// CQEs posted (including multishot aux CQEs).
    pub cqes: u64,
    /// Requests completed with a negative errno, other than `-ECANCELED`
    /// and `-ETIME` (counted apart below). Includes `-ENOBUFS` from an
    /// empty buffer ring (`bufring_empty` says how many).
    pub op_errors: u64,
    /// Frames received from the NIC.
    pub rx_frames: u64,
    /// TCP segments handed to the NIC.
    pub tx_segments: u64,
    /// Frames the NIC could not take (retransmitted by TCP later).
    pub tx_dropped: u64,
    /// Egress attempts deferred because the NIC's transmit queue was full.
    pub tx_full: u64,
    /// Frames dropped as malformed (bad Ethernet, ARP, IPv4 or TCP header).
    pub malformed: u64,
    /// Of `malformed`, IPv4 headers whose checksum was wrong (checked
    /// unless offloaded to the NIC).
    pub bad_checksum: u64,
    /// Frames addressed to another MAC or IP.
    pub not_for_us: u64,
    /// Frames of a protocol we do not handle (non-TCP, fragments, IPv6).
    pub unsupported: u64,
    /// TCP segments with no socket (answered with RST unless they were RSTs).
    pub no_socket: u64,
    /// SYNs dropped: the listener's accept queue was full (or a cookie's
    /// ACK found it full).
    pub syn_dropped: u64,
    /// SYNs answered with a SYN cookie (the SYN queue was full).
    pub syn_cookies_sent: u64,
    /// Connections set up from a returning SYN cookie.
    pub syn_cookies_ok: u64,
    /// ARP packets received.
    pub arp_rx: u64,
    /// ARP packets sent.
    pub arp_tx: u64,
    /// Connections accepted by the application.
    pub accepted: u64,
    /// Active opens started.
    pub connects: u64,
    /// Connection slots taken (passive and active).
    pub conns_created: u64,
    /// Connection slots released.
    pub conns_freed: u64,
    /// Connection slots live now (filled in by `stats()`).
    pub conns_live: u64,
    /// Coalesced-poll wake-ups absorbed by a ready word that was already set
    /// (no CQE queued).
    pub polls_coalesced: u64,
    /// Wait-loop steps that handed the waiter its completions before timers
    /// and egress, leaving those to the next step ([`crate::Inline::step_wait`]).
    pub deferred_egress: u64,
    /// Requests in flight now (filled in by `stats()`).
    pub ops_in_flight: u64,
    /// Receives that found their provided-buffer ring empty and completed
    /// with `-ENOBUFS` (buffer-ring exhaustion).
    pub bufring_empty: u64,
    /// Connections failed because their next hop never answered ARP.
    pub unreachable: u64,
    /// Data segments sent again (any cause: fast retransmit, probe, RTO).
    pub retransmits: u64,
    /// Repairs the engine started from the peer's SACK blocks (the socket
    /// sent back to the holes the scoreboard marks lost).
    pub fast_retransmits: u64,
    /// Tail-loss probes (a timeout of about two round trips without progress).
    pub tlp_probes: u64,
    /// Congestion-window reductions undone: every retransmission of the
    /// episode was reported needless by a D-SACK (the path reordered).
    pub recovery_undos: u64,
    /// Retransmission timeouts the engine fired (its 200 ms floor, not smoltcp's 1 s).
    pub rto_fired: u64,
    /// RACK reordering timers that fired (a hole's reordering window
    /// passed with no ACK since; RFC 8985, 6.3): the scoreboard was judged
    /// again without waiting for the probe timeout.
    pub rack_timeouts: u64,
    /// Duplicate data segments (all below the acknowledgment we last sent)
    /// whose ACK carried a D-SACK block (RFC 2883), so the peer can tell a
    /// needless resend from a loss.
    pub dsacks_sent: u64,
    /// Segments of a repair the socket rebuilt and the engine did not send:
    /// the peer had them (SACKed) or they were still in flight.
    pub resends_skipped: u64,
    /// Resends cut to the part the peer had not SACKed (a walk's segments
    /// start at `snd.una`, not at the hole's edges).
    pub resends_trimmed: u64,
    /// ACKs sent with more SACK blocks than smoltcp's one (the receive
    /// side held data out of order in several blocks; RFC 2018).
    pub sack_blocks_added: u64,
    /// Neighbours taken from sibling engines of a group (learned by
    /// another queue's engine; filled in by `stats()`).
    pub arp_shared: u64,
    /// Times the driver blocked an idle engine (after `busy_poll_us`), for
    /// the next timer, a frame or the application.
    pub idle_sleeps: u64,
    /// Of those, the sleeps ended early by a wake-up (a frame from the
    /// NIC's notification, or the application) rather than by time.
    pub idle_wakeups: u64,
    /// Total time spent blocked, µs.
    pub idle_sleep_us: u64,
    /// Bytes queued in all socket buffers now (filled in by `stats()`;
    /// bounded by `EngineConfig::buffer_budget`).
    pub buffer_queued: u64,
    /// The most bytes ever queued in all socket buffers together (filled
    /// in by `stats()`).
    pub buffer_queued_peak: u64,
    /// Sends that copied less than they could because the buffer budget was
    /// used up (they wait for their connection's ACKs).
    pub send_budget_waits: u64,
    /// Data segments dropped (their ACK kept) because the buffer budget was
    /// used up and their connection already held 64 KiB unread.
    pub rx_budget_drops: u64,
    /// Segments whose ACK was fed to their socket alone, at `rcv.nxt`,
    /// because its receive window was closed (smoltcp would drop the ACK
    /// with the segment; RFC 9293 3.10.7.4).
    pub closed_window_acks: u64,
    /// Socket buffers whose unused pages the reclaimer gave back (an idle
    /// connection's, after it moved more than 64 KiB; a busy one's too
    /// under pressure).
    pub buffer_trims: u64,
    /// Of those, busy connections' buffers trimmed because
    /// `buffer_committed` had passed the buffer budget.
    pub buffer_pressure_trims: u64,
    /// Socket buffer pages the connections may have committed (bytes): an
    /// upper estimate the reclaimer refreshes as it goes round the table
    /// (filled in by `stats()`). Past the buffer budget, busy connections'
    /// buffers are trimmed too.
    pub buffer_committed: u64,
    /// Requests completed with `-ECANCELED`: cancelled by the application
    /// (ASYNC_CANCEL, a close), by a failed link, or when the engine shut
    /// down.
    pub op_cancelled: u64,
    /// Requests completed with `-ETIME`: timeouts that expired (how a
    /// TIMEOUT or LINK_TIMEOUT completes when its time comes).
    pub op_timeouts: u64,
    /// Segments of a connection outside its receive window (old copies far
    /// below it, data past its right edge, or forged): the socket drops
    /// them, answering with an ACK; loss recovery ignores their ACK and
    /// SACK blocks.
    pub out_of_window: u64,
    /// Retransmission timeouts that found the peer's cumulative ACK at the
    /// start of a block it had SACKed (it dropped data it reported, or the
    /// block was not its own): the SACK scoreboard was forgotten.
    pub sack_reneging: u64,
    /// Connections given up because data stayed unacknowledged longer than
    /// their `TCP_USER_TIMEOUT` (their requests fail with `-ETIMEDOUT`).
    pub user_timeouts: u64,
}

impl EngineStats {
    /// Every counter with its field name, in declaration order: what the
    /// `ringline` command prints and puts in its JSON, so a counter added to
    /// the struct shows up there without touching the command. The pattern
    /// below names every field: a field added above and not to the list is
    /// a compile error (which rustc words, through the macro, as "pattern
    /// requires `..` due to inaccessible fields").
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        let mut v = Vec::with_capacity(Self::COUNT);
        self.visit(|name, value| v.push((name, value)));
        v
    }

    /// How many counters [`EngineStats::fields`] gives.
    pub const COUNT: usize = std::mem::size_of::<EngineStats>() / 8;

    /// The counters that are levels, not running totals (a rate of them
    /// means nothing): Prometheus gauges.
    pub const GAUGES: &'static [&'static str] = &[
        "conns_live",
        "ops_in_flight",
        "buffer_queued",
        "buffer_queued_peak",
        "buffer_committed",
    ];

    /// Calls `f` with every counter's name and value, in declaration order,
    /// without allocating ([`EngineStats::fields`] collects them; the
    /// shared-memory publisher writes them into its page).
    pub fn visit(&self, mut f: impl FnMut(&'static str, u64)) {
        macro_rules! named {
            ($($f:ident),* $(,)?) => {{
                let EngineStats { $($f),* } = *self;
                $(f(stringify!($f), $f);)*
            }};
        }
        named!(
            steps,
            sqes,
            cqes,
            op_errors,
            rx_frames,
            tx_segments,
            tx_dropped,
            tx_full,
            malformed,
            bad_checksum,
            not_for_us,
            unsupported,
            no_socket,
            syn_dropped,
            syn_cookies_sent,
            syn_cookies_ok,
            arp_rx,
            arp_tx,
            accepted,
            connects,
            conns_created,
            conns_freed,
            conns_live,
            polls_coalesced,
            deferred_egress,
            ops_in_flight,
            bufring_empty,
            unreachable,
            retransmits,
            fast_retransmits,
            tlp_probes,
            recovery_undos,
            rto_fired,
            rack_timeouts,
            dsacks_sent,
            resends_skipped,
            resends_trimmed,
            sack_blocks_added,
            arp_shared,
            idle_sleeps,
            idle_wakeups,
            idle_sleep_us,
            buffer_queued,
            buffer_queued_peak,
            send_budget_waits,
            rx_budget_drops,
            closed_window_acks,
            buffer_trims,
            buffer_pressure_trims,
            buffer_committed,
            op_cancelled,
            op_timeouts,
            out_of_window,
            sack_reneging,
            user_timeouts,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::EngineStats;

    #[test]
    fn fields_name_every_counter_in_order() {
        let s = EngineStats {
            steps: 1,
            syn_dropped: 7,
            ..EngineStats::default()
        };
        let f = s.fields();
        assert_eq!(f.first(), Some(&("steps", 1)));
        assert!(f.contains(&("syn_dropped", 7)));
        // One entry per field (all of them u64).
        assert_eq!(f.len() * 8, std::mem::size_of::<EngineStats>());
    }
}
