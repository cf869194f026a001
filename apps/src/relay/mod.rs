//! `ringline relay`: an impairing Ethernet bridge between two Linux
//! interfaces, for fault tests on a machine without `tc netem`.
//!
//! It reads every frame arriving on interface A or B with an AF_PACKET
//! socket ([`packet`]) and writes it out of the other, after the direction's
//! [`Impairer`] has decided its fate: lost, delayed (a timed queue, so the
//! delay costs no throughput), held back so later frames overtake it,
//! duplicated, or corrupted (one byte inverted; the receiver's checksum
//! must catch it). Each direction has its own settings and its own seeded
//! generator. ARP passes untouched unless `--impair-arp`, so a setup
//! resolves its neighbours the same way every run.
//!
//! Typical use (see `scripts/impaired.sh`): A is the kernel side of a DPDK
//! `net_tap` port, B one end of a veth pair whose other end is in the
//! namespace of a Linux program. The relay stops by itself after
//! `--duration` (or at SIGINT/SIGTERM) and prints each direction's counters.
//!
//! Frames sent with their TCP/UDP checksum left to offload (veth passes them
//! on unfinished) get it filled in before anything else happens; GSO
//! super-frames are not split, so the Linux end of a veth needs
//! `ip link set DEV gso_max_segs 1` (the script does it).

mod frame;
pub mod impair;
mod packet;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use impair::{Counters, Impairer, Rng, Spec, Verdict};
use packet::PacketSocket;

/// Options of `ringline relay`.
#[derive(Args, Clone, Debug)]
pub struct RelayArgs {
    /// Interface A (e.g. the kernel side of a DPDK net_tap port).
    #[arg(long, value_name = "IFACE")]
    pub a: String,
    /// Interface B (e.g. one end of a veth pair).
    #[arg(long, value_name = "IFACE")]
    pub b: String,
    /// Impairment of both directions: comma-separated KEY=VALUE from loss=PCT,
    /// delay=MS, jitter=MS, reorder=PCT, gap=MS (how long a reordered frame is
    /// held back, default 2), dup=PCT, corrupt=PCT; or "none".
    #[arg(long, value_name = "SPEC", default_value = "none")]
    pub impair: String,
    /// Impairment of A to B only, key by key over --impair.
    #[arg(long, value_name = "SPEC")]
    pub impair_ab: Option<String>,
    /// Impairment of B to A only, key by key over --impair.
    #[arg(long, value_name = "SPEC")]
    pub impair_ba: Option<String>,
    /// Seed of the generators (each direction derives its own from it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub duration: f64,
    /// Impair ARP too (by default it passes untouched and at once).
    #[arg(long)]
    pub impair_arp: bool,
    /// Most frames waiting in each direction's timed queue (more are dropped
    /// and counted as queue_full).
    #[arg(long, value_name = "FRAMES", default_value_t = 100_000)]
    pub limit: usize,
    /// Print the counters as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write the first 128 bytes (all the headers) of every frame the relay
    /// sends, both directions, after impairment (lost frames are missing) to
    /// this pcap file.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,
}

/// Bytes of each frame kept in the pcap: Ethernet, IPv4 and TCP headers with
/// options, a little payload.
const PCAP_SNAPLEN: usize = 128;

/// A pcap file (the classic format, microsecond timestamps, Ethernet).
struct Pcap {
    out: std::io::BufWriter<std::fs::File>,
    /// Wall-clock µs at the relay's clock zero.
    epoch_us: u64,
}

impl Pcap {
    fn create(path: &std::path::Path) -> Result<Pcap, String> {
        let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
        let mut hdr = Vec::with_capacity(24);
        hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        hdr.extend_from_slice(&2u16.to_le_bytes());
        hdr.extend_from_slice(&4u16.to_le_bytes());
        hdr.extend_from_slice(&0i32.to_le_bytes());
        hdr.extend_from_slice(&0u32.to_le_bytes());
        hdr.extend_from_slice(&(PCAP_SNAPLEN as u32).to_le_bytes());
        hdr.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        out.write_all(&hdr).map_err(|e| e.to_string())?;
        let epoch_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Ok(Pcap { out, epoch_us })
    }

    fn record(&mut self, now_us: u64, frame: &[u8]) {
        let t = self.epoch_us + now_us;
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        let kept = &frame[..frame.len().min(PCAP_SNAPLEN)];
        rec[8..12].copy_from_slice(&(kept.len() as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        // A capture that cannot be written is not worth stopping the relay.
        let _ = self
            .out
            .write_all(&rec)
            .and_then(|_| self.out.write_all(kept));
    }
}

/// One direction in the report.
#[derive(Serialize)]
struct DirReport {
    from: String,
    to: String,
    spec: Spec,
    #[serde(flatten)]
    counters: Counters,
    /// Frames the ingress interface dropped before the relay could see them
    /// (its `rx_dropped` grew: a full backlog queue).
    ingress_dropped: u64,
    /// Frames the egress interface itself dropped (its `tx_dropped` grew):
    /// a receiver that did not keep up.
    egress_dropped: u64,
}

/// The report.
#[derive(Serialize)]
struct Report {
    seed: u64,
    seconds: f64,
    a_to_b: DirReport,
    b_to_a: DirReport,
}

/// How long one frame may be: a jumbo frame and then some (anything longer
/// is a GSO super-frame, counted as truncated).
const FRAME_BUF: usize = 65_536;
/// Frames read from one interface before looking at the other.
const RX_BURST: usize = 256;
/// Receive buffer of each socket: a burst of the peer must not be lost
/// while the relay is busy with the other side.
const SOCKET_BUFFER: usize = 16 << 20;

/// An interface's `rx_dropped` and `tx_dropped` (0 if unreadable).
fn iface_drops(iface: &str) -> (u64, u64) {
    let read = |c: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{iface}/statistics/{c}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    (read("rx_dropped"), read("tx_dropped"))
}

/// Writes out every frame of `dir` due at `now_us`.
fn flush(dir: &mut Impairer, out: &PacketSocket, now_us: u64, pcap: &mut Option<Pcap>) {
    while let Some(h) = dir.pop_due(now_us) {
        let ok = out.send(&h.frame).is_ok();
        if let (true, Some(p)) = (ok, pcap.as_mut()) {
            p.record(now_us, &h.frame);
        }
        dir.sent(h, ok);
    }
}

/// Reads up to a burst of frames from `inp` into `dir`; ARP that passes at
/// once goes straight out of `out`.
fn receive(
    dir: &mut Impairer,
    inp: &PacketSocket,
    out: &PacketSocket,
    buf: &mut [u8],
    now_us: u64,
    pcap: &mut Option<Pcap>,
) -> Result<(), String> {
    for _ in 0..RX_BURST {
        let Some(r) = inp.recv(buf).map_err(|e| e.to_string())? else {
            return Ok(());
        };
        if r.truncated {
            dir.counters.received += 1;
            dir.counters.truncated += 1;
            continue;
        }
        let f = &mut buf[..r.len];
        if r.csum_not_ready {
            frame::fill_l4_checksum(f);
        }
        if dir.ingress(now_us, f) == Verdict::PassNow {
            if out.send(f).is_ok() {
                if let Some(p) = pcap.as_mut() {
                    p.record(now_us, f);
                }
                dir.counters.forwarded += 1;
            } else {
                dir.counters.send_errors += 1;
            }
        }
    }
    Ok(())
}

/// Runs the relay until `--duration` passes or SIGINT/SIGTERM, then prints
/// the counters.
pub fn run(a: &RelayArgs) -> Result<(), String> {
    if !a.duration.is_finite() || a.duration <= 0.0 {
        return Err("--duration must be positive".into());
    }
    if a.limit == 0 {
        return Err("--limit must be at least 1".into());
    }
    if a.a == a.b {
        return Err("--a and --b must be different interfaces".into());
    }
    let both = Spec::parse(&a.impair, Spec::CLEAN).map_err(|e| format!("--impair: {e}"))?;
    let spec_ab = match &a.impair_ab {
        Some(s) => Spec::parse(s, both).map_err(|e| format!("--impair-ab: {e}"))?,
        None => both,
    };
    let spec_ba = match &a.impair_ba {
        Some(s) => Spec::parse(s, both).map_err(|e| format!("--impair-ba: {e}"))?,
        None => both,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    }
    let sa = PacketSocket::open(&a.a, SOCKET_BUFFER).map_err(|e| e.to_string())?;
    let sb = PacketSocket::open(&a.b, SOCKET_BUFFER).map_err(|e| e.to_string())?;
    let mut seeds = Rng::new(a.seed);
    let mut ab = Impairer::new(spec_ab, seeds.next_u64(), a.limit, a.impair_arp);
    let mut ba = Impairer::new(spec_ba, seeds.next_u64(), a.limit, a.impair_arp);
    let (drops_a, drops_b) = (iface_drops(&a.a), iface_drops(&a.b));
    let mut pcap = a.pcap.as_deref().map(Pcap::create).transpose()?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "relay: ready; {} -> {}: {spec_ab}; {} -> {}: {spec_ba}; seed {}, {} s",
            a.a, a.b, a.b, a.a, a.seed, a.duration
        );
        let _ = out.flush();
    }

    let t0 = Instant::now();
    let end_us = (a.duration * 1e6) as u64;
    let mut buf = vec![0u8; FRAME_BUF];
    let result = loop {
        // The clock is read once per pass (and once after the wait).
        let now = t0.elapsed().as_micros() as u64;
        if now >= end_us || stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        flush(&mut ab, &sb, now, &mut pcap);
        flush(&mut ba, &sa, now, &mut pcap);
        let next = [ab.next_due(), ba.next_due(), Some(end_us)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end_us);
        // Wake at least every 50 ms to notice a signal.
        let wait = Duration::from_micros(next.saturating_sub(now).min(50_000));
        let ready = match packet::wait([&sa, &sb], wait) {
            Ok(r) => r,
            Err(e) => break Err(e.to_string()),
        };
        let now = t0.elapsed().as_micros() as u64;
        if ready[0] {
            if let Err(e) = receive(&mut ab, &sa, &sb, &mut buf, now, &mut pcap) {
                break Err(e);
            }
        }
        if ready[1] {
            if let Err(e) = receive(&mut ba, &sb, &sa, &mut buf, now, &mut pcap) {
                break Err(e);
            }
        }
        // Frames due now (no delay) leave without another wait.
        flush(&mut ab, &sb, now, &mut pcap);
        flush(&mut ba, &sa, now, &mut pcap);
    };
    if let Some(p) = pcap.as_mut() {
        p.out.flush().map_err(|e| format!("pcap: {e}"))?;
    }
    let seconds = t0.elapsed().as_secs_f64();
    ab.counters.socket_drops = sa.drops().unwrap_or(0);
    ba.counters.socket_drops = sb.drops().unwrap_or(0);
    let (now_a, now_b) = (iface_drops(&a.a), iface_drops(&a.b));
    let report = Report {
        seed: a.seed,
        seconds,
        a_to_b: DirReport {
            from: a.a.clone(),
            to: a.b.clone(),
            spec: spec_ab,
            counters: ab.counters,
            ingress_dropped: now_a.0.saturating_sub(drops_a.0),
            egress_dropped: now_b.1.saturating_sub(drops_b.1),
        },
        b_to_a: DirReport {
            from: a.b.clone(),
            to: a.a.clone(),
            spec: spec_ba,
            counters: ba.counters,
            ingress_dropped: now_b.0.saturating_sub(drops_b.0),
            egress_dropped: now_a.1.saturating_sub(drops_a.1),
        },
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        println!("relay: stopped after {seconds:.1} s");
        for d in [&report.a_to_b, &report.b_to_a] {
            let c = &d.counters;
            println!(
                "relay: {} -> {}: received {}, forwarded {}, dropped {}, duplicated {}, \
                 reordered {} (held back {}), corrupted {}, arp {}, queue full {}, \
                 truncated {}, send errors {}, socket drops {}, ingress drops {}, egress drops {}",
                d.from,
                d.to,
                c.received,
                c.forwarded,
                c.dropped,
                c.duplicated,
                c.reordered,
                c.held_back,
                c.corrupted,
                c.arp_passed,
                c.queue_full,
                c.truncated,
                c.send_errors,
                c.socket_drops,
                d.ingress_dropped,
                d.egress_dropped
            );
        }
    }
    result
}
