//! `ringline bulk`: a bulk-transfer client on the kernel's TCP (`std::net`),
//! for measuring any echo server (ringline's or Linux's) through a lossy
//! path.
//!
//! Each connection sends `--bytes` of a deterministic pattern (every 8-byte
//! word a hash of the seed, the connection and the word's position, so a
//! byte that is lost, repeated, misplaced or taken from another connection
//! shows), half-closes (`shutdown(SHUT_WR)`), and reads until EOF, checking
//! every byte it gets back as it arrives. Sending and receiving run on two
//! threads per connection, so neither side's window ever waits on the other.
//! It reports the throughput, the longest stall (the longest time between
//! two reads that returned data, or from the connect to the first one) and
//! pass or fail; everything is bounded by `--timeout`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

/// Options of `ringline bulk`.
#[derive(Args, Clone, Debug)]
pub struct BulkArgs {
    /// The echo server: ADDR:PORT.
    #[arg(long, value_name = "ADDR:PORT")]
    pub connect: SocketAddr,
    /// Bytes each connection sends and must get back (suffix K, M or G:
    /// KiB, MiB, GiB).
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = parse_size)]
    pub bytes: u64,
    /// Connections, all at once.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Give up (and fail) after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub timeout: f64,
    /// Seed of the byte pattern.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Parses `123`, `64K`, `16M`, `1G` (powers of 1024; `KiB`, `MiB`, `GiB` too).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{s:?}: expected a positive size like 65536, 64K, 16M or 1G"))
}

/// Writes the pattern of connection `key` for stream offsets
/// `off .. off + out.len()` into `out`.
fn pattern(key: u64, off: u64, out: &mut [u8]) {
    let mut word = off / 8;
    let mut skip = (off % 8) as usize;
    let mut done = 0;
    while done < out.len() {
        let bytes = mix(key ^ word.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes();
        let take = (8 - skip).min(out.len() - done);
        out[done..done + take].copy_from_slice(&bytes[skip..skip + take]);
        done += take;
        skip = 0;
        word += 1;
    }
}

/// SplitMix64's finaliser: a cheap, well-spread hash of a word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The pattern key of connection `conn` under `seed`.
fn conn_key(seed: u64, conn: usize) -> u64 {
    mix(seed ^ ((conn as u64 + 1) << 48))
}

const CHUNK: usize = 64 * 1024;
/// How often blocked reads and writes look at the deadline.
const POLL: Duration = Duration::from_millis(100);

/// One connection's outcome.
#[derive(Serialize, Debug, Default, Clone)]
pub struct ConnReport {
    /// Bytes written.
    pub sent: u64,
    /// Bytes read back.
    pub received: u64,
    /// The offset of the first byte that came back different, if any.
    pub first_mismatch: Option<u64>,
    /// The read side saw EOF.
    pub eof: bool,
    /// The longest time without data, seconds.
    pub longest_stall_s: f64,
    /// Seconds from the start of the run to EOF (or to the end).
    pub done_s: f64,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// The run's outcome, as printed with `--json`.
#[derive(Serialize, Debug)]
pub struct BulkReport {
    /// Every connection got every byte back, identical, then EOF, in time.
    pub pass: bool,
    /// The server.
    pub server: String,
    /// Connections.
    pub connections: usize,
    /// Bytes each connection sent.
    pub bytes_per_conn: u64,
    /// Bytes read back, all connections.
    pub received: u64,
    /// Seconds from the first connect to the last EOF (or to the end).
    pub seconds: f64,
    /// Bytes read back per second, in MB (10^6 bytes).
    pub mb_per_s: f64,
    /// The longest stall of any connection, seconds.
    pub longest_stall_s: f64,
    /// Each connection.
    pub conns: Vec<ConnReport>,
}

/// Sends `bytes` of the pattern, then half-closes.
fn send_side(
    mut s: TcpStream,
    key: u64,
    bytes: u64,
    deadline: Instant,
    abort: &AtomicBool,
) -> (u64, Option<String>) {
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    while off < bytes {
        let n = CHUNK.min((bytes - off) as usize);
        pattern(key, off, &mut buf[..n]);
        let mut at = 0;
        while at < n {
            if Instant::now() >= deadline || abort.load(Ordering::Relaxed) {
                return (off + at as u64, Some("timed out sending".into()));
            }
            match s.write(&buf[at..n]) {
                Ok(0) => return (off + at as u64, Some("write returned 0".into())),
                Ok(k) => at += k,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return (off + at as u64, Some(format!("write: {e}"))),
            }
        }
        off += n as u64;
    }
    if let Err(e) = s.shutdown(Shutdown::Write) {
        return (off, Some(format!("shutdown(SHUT_WR): {e}")));
    }
    (off, None)
}

/// Reads until EOF, checking every byte; fills in the read side of `r`.
fn recv_side(
    mut s: TcpStream,
    key: u64,
    bytes: u64,
    t0: Instant,
    deadline: Instant,
    abort: &AtomicBool,
    r: &mut ConnReport,
) {
    let mut buf = vec![0u8; CHUNK];
    let mut want = vec![0u8; CHUNK];
    let mut last = Instant::now();
    let mut stall = Duration::ZERO;
    loop {
        if Instant::now() >= deadline || abort.load(Ordering::Relaxed) {
            r.error.get_or_insert_with(|| {
                format!("timed out with {} of {bytes} bytes back", r.received)
            });
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => {
                r.eof = true;
                break;
            }
            Ok(n) => {
                let now = Instant::now();
                stall = stall.max(now - last);
                last = now;
                if r.first_mismatch.is_none() {
                    pattern(key, r.received, &mut want[..n]);
                    if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
                        r.first_mismatch = Some(r.received + i as u64);
                    }
                }
                r.received += n as u64;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                r.error.get_or_insert_with(|| format!("read: {e}"));
                break;
            }
        }
    }
    // A connection that is still waiting at the end has been stalled since
    // its last data.
    if !r.eof {
        stall = stall.max(last.elapsed());
    }
    r.longest_stall_s = stall.as_secs_f64();
    r.done_s = t0.elapsed().as_secs_f64();
}

/// One connection, start to end.
fn one_conn(
    a: &BulkArgs,
    conn: usize,
    t0: Instant,
    deadline: Instant,
    abort: &AtomicBool,
) -> ConnReport {
    let mut r = ConnReport::default();
    let key = conn_key(a.seed, conn);
    let left = deadline.saturating_duration_since(Instant::now());
    let s = match TcpStream::connect_timeout(&a.connect, left.max(Duration::from_millis(1))) {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(format!("connect {}: {e}", a.connect));
            r.done_s = t0.elapsed().as_secs_f64();
            return r;
        }
    };
    let setup = (|| -> std::io::Result<TcpStream> {
        s.set_read_timeout(Some(POLL))?;
        s.set_write_timeout(Some(POLL))?;
        s.try_clone()
    })();
    let w = match setup {
        Ok(w) => w,
        Err(e) => {
            r.error = Some(format!("socket setup: {e}"));
            return r;
        }
    };
    let bytes = a.bytes;
    let (sent, send_err) = std::thread::scope(|sc| {
        let sender = sc.spawn(move || send_side(w, key, bytes, deadline, abort));
        recv_side(s, key, bytes, t0, deadline, abort, &mut r);
        sender.join().unwrap_or((0, Some("sender panicked".into())))
    });
    r.sent = sent;
    if let Some(e) = send_err {
        r.error.get_or_insert(e);
    }
    if r.error.is_none() {
        if r.received != bytes {
            r.error = Some(format!("got {} bytes back, sent {bytes}", r.received));
        } else if let Some(at) = r.first_mismatch {
            r.error = Some(format!("byte {at} came back different"));
        }
    }
    r
}

/// Runs the transfer; returns the report (pass or fail).
pub fn transfer(a: &BulkArgs) -> BulkReport {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(a.timeout);
    let abort = AtomicBool::new(false);
    let conns: Vec<ConnReport> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..a.connections)
            .map(|i| {
                let abort = &abort;
                sc.spawn(move || {
                    let r = one_conn(a, i, t0, deadline, abort);
                    // One connection that failed for good ends the run.
                    if r.error.is_some() && !r.eof {
                        abort.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| ConnReport {
                    error: Some("connection thread panicked".into()),
                    ..ConnReport::default()
                })
            })
            .collect()
    });
    let received: u64 = conns.iter().map(|c| c.received).sum();
    let seconds = conns.iter().map(|c| c.done_s).fold(0.0, f64::max);
    let pass = conns
        .iter()
        .all(|c| c.error.is_none() && c.eof && c.received == a.bytes && c.first_mismatch.is_none());
    BulkReport {
        pass,
        server: a.connect.to_string(),
        connections: a.connections,
        bytes_per_conn: a.bytes,
        received,
        seconds,
        mb_per_s: if seconds > 0.0 {
            received as f64 / seconds / 1e6
        } else {
            0.0
        },
        longest_stall_s: conns.iter().map(|c| c.longest_stall_s).fold(0.0, f64::max),
        conns,
    }
}

/// `ringline bulk`
pub fn run(a: &BulkArgs) -> Result<(), String> {
    if a.connections == 0 || a.connections > 1024 {
        return Err("--connections must be between 1 and 1024".into());
    }
    if !a.timeout.is_finite() || a.timeout <= 0.0 {
        return Err("--timeout must be positive".into());
    }
    let r = transfer(a);
    if a.json {
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    } else {
        println!(
            "bulk: {}: {} x {} B to {} and back in {:.3} s, {:.1} MB/s, longest stall {:.3} s",
            if r.pass { "PASS" } else { "FAIL" },
            r.connections,
            r.bytes_per_conn,
            r.server,
            r.seconds,
            r.mb_per_s,
            r.longest_stall_s
        );
        for (i, c) in r.conns.iter().enumerate() {
            if let Some(e) = &c.error {
                println!(
                    "bulk: connection {i}: {e} (sent {}, received {}, eof {})",
                    c.sent, c.received, c.eof
                );
            }
        }
    }
    if r.pass {
        Ok(())
    } else {
        Err("bulk transfer failed".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn the_pattern_is_the_same_however_it_is_cut() {
        let mut whole = vec![0u8; 1000];
        pattern(9, 3, &mut whole);
        let mut pieces = vec![0u8; 1000];
        let mut off = 0;
        for len in [1, 7, 8, 13, 500, 471] {
            pattern(9, 3 + off as u64, &mut pieces[off..off + len]);
            off += len;
        }
        assert_eq!(whole, pieces);
        // Another connection, or a shift by one segment, differs.
        let mut other = vec![0u8; 1000];
        pattern(10, 3, &mut other);
        assert_ne!(whole, other);
        pattern(9, 3 + 1448, &mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn a_transfer_through_a_kernel_echo_server_passes() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let server = std::thread::spawn(move || crate::kecho::serve(l, &st));
        let a = BulkArgs {
            connect: addr,
            bytes: 3 << 20,
            connections: 3,
            timeout: 30.0,
            seed: 5,
            json: false,
        };
        let r = transfer(&a);
        stop.store(true, Ordering::Relaxed);
        let stats = server.join().unwrap().unwrap();
        assert!(r.pass, "{r:?}");
        assert_eq!(r.received, 9 << 20);
        assert_eq!(stats.accepted, 3);
        assert_eq!(stats.bytes, 9 << 20);
    }

    #[test]
    fn a_server_that_changes_a_byte_fails_the_transfer() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).unwrap();
            all[100_000] ^= 1;
            c.write_all(&all).unwrap();
        });
        let a = BulkArgs {
            connect: addr,
            bytes: 200_000,
            connections: 1,
            timeout: 30.0,
            seed: 5,
            json: false,
        };
        let r = transfer(&a);
        server.join().unwrap();
        assert!(!r.pass);
        assert_eq!(r.conns[0].first_mismatch, Some(100_000));
        assert!(r.conns[0].error.as_deref().unwrap().contains("byte 100000"));
    }
}
