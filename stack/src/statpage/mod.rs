//! The engine's counters in shared memory, for `ringline stat` and any
//! other process that wants them without stopping the engine.
//!
//! With [`crate::EngineConfig::stat`] on, each engine creates one file,
//! `/dev/shm/ringline.<pid>.<engine>` (`engine`: the process's engines
//! numbered from 0 as they are opened), maps it shared and publishes into
//! it from its step ([`publish`]); the file is removed when the engine is
//! dropped. A reader ([`read`]) finds the files, skips (and removes) those
//! whose process is gone, maps one and copies a consistent snapshot out.
//!
//! # The page
//!
//! Every field is an atomic: the page is written by one process and read
//! by others, so no byte of it is ever read or written plainly.
//!
//! | part | written by | when |
//! |---|---|---|
//! | [`Ident`]: magic, version, sizes, pid, start time, process name, queue | creator | once, before `magic` (release) |
//! | [`Counters`]: a seqlock word, publish count, engine and wall time | engine | every `stat_interval` of engine time |
//! | [`CounterSlot`] × [`COUNTER_SLOTS`]: name, kind, value | names once; values under the seqlock | |
//! | [`Request`]: the connection-table request | readers | on `--conns` |
//! | [`ConnHeader`]: the table's seqlock, answered request, rows | engine | while it walks the table |
//! | [`ConnRow`] × `stat_connections` | engine, under the table's seqlock | |
//!
//! The counters' names are written once, at creation, in the order the
//! engine publishes them: [`crate::EngineStats::visit`] gives the engine's
//! (a counter added to [`crate::EngineStats`] appears without touching
//! this module), `NicCounters::fields` the NIC's, then the ring's and the
//! thread's. A reader needs no list of names.
//!
//! # Seqlocks
//!
//! The engine makes the sequence word odd, stores the values (relaxed),
//! and makes it even again (release); a fence (release) after the odd
//! store keeps the value stores after it. A reader loads the word
//! (acquire), copies the values (relaxed), fences (acquire) and loads the
//! word again: the copy is consistent if both loads saw the same even
//! number. The reader retries a bounded number of times.
#![allow(unsafe_code)]

pub mod apps;
pub mod prom;
pub(crate) mod publish;
pub mod read;

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

pub use apps::{apps_pages, AppStat, AppsReader, AppsSnapshot};
pub use read::{instances, ConnTable, EngineSnapshot, Instance, StatError, StatReader};

/// `"RLSTAT01"`: the page is complete (stored last at creation).
pub const MAGIC: u64 = u64::from_le_bytes(*b"RLSTAT01");
/// Layout version: a reader refuses another.
pub const VERSION: u64 = 1;
/// Where the pages live.
pub const STAT_DIR: &str = "/dev/shm";
/// Counter slots in a page (the engine, NIC, ring and thread counters take
/// about 65 today).
pub const COUNTER_SLOTS: usize = 128;
/// Longest counter name, bytes.
pub const NAME_LEN: usize = 48;
/// Words in one connection row.
pub const CONN_WORDS: usize = 16;
/// Most connection rows a page may hold (`stat_connections`).
pub const MAX_CONN_ROWS: usize = 65_536;

/// The file name of engine `engine` of process `pid`.
pub fn file_name(pid: u32, engine: u32) -> String {
    format!("ringline.{pid}.{engine}")
}

/// Written once by the creator before `magic`; read-only afterwards.
#[repr(C, align(64))]
pub(crate) struct Ident {
    /// [`MAGIC`] once the rest of the page is set up. Creator store-releases
    /// it last; readers load-acquire it before anything else.
    pub(crate) magic: AtomicU64,
    /// [`VERSION`]; creator only, before `magic`.
    pub(crate) version: AtomicU64,
    /// The page's length in bytes; creator only, before `magic`.
    pub(crate) len: AtomicU64,
    /// The creating process's pid; creator only, before `magic`.
    pub(crate) pid: AtomicU64,
    /// Its start time (field 22 of `/proc/<pid>/stat`, clock ticks since
    /// boot): a reader tells a reused pid from the creator; creator only.
    pub(crate) start_ticks: AtomicU64,
    /// Engine number in the process (bits 0..32), queue index (32..48) and
    /// the group's queues (48..64); creator only, before `magic`, and
    /// once more when the engine joins a group, before its first step.
    pub(crate) engine_queue: AtomicU64,
    /// Counter slots in use (bits 0..32) and connection rows (32..64);
    /// creator only, before `magic`.
    pub(crate) shape: AtomicU64,
    /// The publishing interval, µs; creator only, before `magic`.
    pub(crate) interval_us: AtomicU64,
    /// The process name (`/proc/self/comm`, 16 bytes); creator only.
    pub(crate) comm: [AtomicU64; 2],
}

/// The counters' seqlock and when they were last published.
#[repr(C, align(64))]
pub(crate) struct Counters {
    /// Engine-only writer: odd while it stores the slot values, even
    /// (store-release) when done; readers load-acquire it around their copy
    /// (see the module docs).
    pub(crate) seq: AtomicU64,
    /// Publications so far; engine-only writer, under `seq`.
    pub(crate) publishes: AtomicU64,
    /// Engine time of the last publication, µs; engine-only, under `seq`.
    pub(crate) engine_us: AtomicU64,
    /// Wall-clock time of the last publication, µs since the Unix epoch;
    /// engine-only, under `seq`.
    pub(crate) wall_us: AtomicU64,
}

/// One counter: its name (written once, at creation, before `magic`) and
/// its value (engine-only writer, under `Counters::seq`).
#[repr(C, align(64))]
pub(crate) struct CounterSlot {
    /// The name, NUL-padded, little-endian words; creator only.
    pub(crate) name: [AtomicU64; NAME_LEN / 8],
    /// [`Group`] (bits 0..8) and [`Kind`] (bits 8..16); creator only.
    pub(crate) meta: AtomicU64,
    /// The value; engine-only writer under `Counters::seq`, relaxed.
    pub(crate) value: AtomicU64,
}

/// What readers ask of the engine. On its own cache line: the engine only
/// loads it, the readers store.
#[repr(C, align(64))]
pub(crate) struct Request {
    /// Connection-table requests: a reader increments it (fetch_add,
    /// release) and waits for `ConnHeader::served` to reach its number;
    /// the engine loads it (acquire) every millisecond or so.
    pub(crate) conns: AtomicU64,
}

/// The connection table's seqlock and what it answers.
#[repr(C, align(64))]
pub(crate) struct ConnHeader {
    /// Engine-only writer: odd while it walks the connections and fills the
    /// rows (which takes several steps), even (release) when the table is
    /// complete. Readers pair as with `Counters::seq`.
    pub(crate) seq: AtomicU64,
    /// The request number the table answers (`Request::conns` when the walk
    /// started); engine-only writer, stored before `seq` turns even.
    pub(crate) served: AtomicU64,
    /// Rows filled; engine-only, under `seq`.
    pub(crate) rows: AtomicU64,
    /// Connections live when the walk ended (more than `rows` when the
    /// table is full); engine-only, under `seq`.
    pub(crate) live: AtomicU64,
    /// Engine time the walk ended, µs; engine-only, under `seq`.
    pub(crate) engine_us: AtomicU64,
}

/// One connection, [`CONN_WORDS`] words; engine-only writer, under
/// `ConnHeader::seq`. The words are [`ConnInfo`]'s fields in order.
#[repr(C, align(64))]
pub(crate) struct ConnRow {
    pub(crate) words: [AtomicU64; CONN_WORDS],
}

/// The fixed part of a page; counter slots and connection rows follow.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) ident: Ident,
    pub(crate) counters: Counters,
    pub(crate) request: Request,
    pub(crate) conn: ConnHeader,
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<Ident>() == 128);
    assert!(size_of::<Counters>() == 64);
    assert!(size_of::<CounterSlot>() == 64);
    assert!(size_of::<Request>() == 64);
    assert!(size_of::<ConnHeader>() == 64);
    assert!(size_of::<ConnRow>() == 128);
    assert!(offset_of!(Header, counters) == 128);
    assert!(offset_of!(Header, request) == 192);
    assert!(offset_of!(Header, conn) == 256);
    assert!(size_of::<Header>() == 320);
    assert!(offset_of!(Ident, comm) == 64);
    assert!(offset_of!(CounterSlot, meta) == NAME_LEN);
    assert!(offset_of!(CounterSlot, value) == NAME_LEN + 8);
};

/// Offset of the counter slots.
const SLOTS_AT: usize = std::mem::size_of::<Header>();
/// Offset of the connection rows.
const ROWS_AT: usize = SLOTS_AT + COUNTER_SLOTS * std::mem::size_of::<CounterSlot>();

/// The length of a page with `rows` connection rows.
pub(crate) const fn page_len(rows: usize) -> usize {
    ROWS_AT + rows * std::mem::size_of::<ConnRow>()
}

/// Where a counter comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// [`crate::EngineStats`].
    Engine,
    /// The NIC queue's `NicCounters`.
    Nic,
    /// The ring (`RingStats`: CQ overflow, SQ drops, sizes).
    Ring,
    /// The thread stepping the engine.
    Thread,
}

impl Group {
    /// Its name in reports and metric names.
    pub fn name(self) -> &'static str {
        match self {
            Group::Engine => "engine",
            Group::Nic => "nic",
            Group::Ring => "ring",
            Group::Thread => "thread",
        }
    }

    fn from_u8(v: u8) -> Option<Group> {
        Some(match v {
            0 => Group::Engine,
            1 => Group::Nic,
            2 => Group::Ring,
            3 => Group::Thread,
            _ => return None,
        })
    }
}

/// Whether a value only grows or is a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A running total (a rate makes sense).
    Counter,
    /// A level (connections live, backlog length).
    Gauge,
}

/// One connection as `ss -ti` would show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// TCP state, numbered as Linux's (`TCP_ESTABLISHED` = 1 ...; see
    /// [`ConnInfo::state_name`]).
    pub state: u64,
    /// Local address and port.
    pub local_ip: u64,
    /// Local port.
    pub local_port: u64,
    /// Remote address (IPv4 as a number) and port.
    pub remote_ip: u64,
    /// Remote port.
    pub remote_port: u64,
    /// The application's socket number (-1 as `u64::MAX`: none yet, or
    /// closed by the application while TCP finishes).
    pub fd: u64,
    /// Bytes sent and received, in sequence space: modulo 2^32.
    pub bytes_out: u64,
    /// Bytes received, modulo 2^32.
    pub bytes_in: u64,
    /// Smoothed round-trip time, µs (0: no sample yet).
    pub srtt_us: u64,
    /// Its variation, µs.
    pub rttvar_us: u64,
    /// Smallest RTT sample, µs.
    pub min_rtt_us: u64,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Data segments sent again.
    pub retransmits: u64,
    /// Bytes queued to send (not yet acknowledged).
    pub send_queue: u64,
    /// Bytes received and not yet read by the application.
    pub recv_queue: u64,
    /// Time since the slot was taken, µs.
    pub age_us: u64,
}

impl ConnInfo {
    fn to_words(self) -> [u64; CONN_WORDS] {
        [
            self.state,
            self.local_ip,
            self.local_port,
            self.remote_ip,
            self.remote_port,
            self.fd,
            self.bytes_out,
            self.bytes_in,
            self.srtt_us,
            self.rttvar_us,
            self.min_rtt_us,
            self.cwnd,
            self.retransmits,
            self.send_queue,
            self.recv_queue,
            self.age_us,
        ]
    }

    fn from_words(w: [u64; CONN_WORDS]) -> ConnInfo {
        ConnInfo {
            state: w[0],
            local_ip: w[1],
            local_port: w[2],
            remote_ip: w[3],
            remote_port: w[4],
            fd: w[5],
            bytes_out: w[6],
            bytes_in: w[7],
            srtt_us: w[8],
            rttvar_us: w[9],
            min_rtt_us: w[10],
            cwnd: w[11],
            retransmits: w[12],
            send_queue: w[13],
            recv_queue: w[14],
            age_us: w[15],
        }
    }

    /// The state as `ss` prints it.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            1 => "ESTAB",
            2 => "SYN-SENT",
            3 => "SYN-RECV",
            4 => "FIN-WAIT-1",
            5 => "FIN-WAIT-2",
            6 => "TIME-WAIT",
            7 => "CLOSED",
            8 => "CLOSE-WAIT",
            9 => "LAST-ACK",
            10 => "LISTEN",
            11 => "CLOSING",
            _ => "UNKNOWN",
        }
    }

    /// The local address as `ADDR:PORT`.
    pub fn local(&self) -> std::net::SocketAddrV4 {
        std::net::SocketAddrV4::new((self.local_ip as u32).into(), self.local_port as u16)
    }

    /// The remote address as `ADDR:PORT`.
    pub fn remote(&self) -> std::net::SocketAddrV4 {
        std::net::SocketAddrV4::new((self.remote_ip as u32).into(), self.remote_port as u16)
    }
}

/// Linux's number for a smoltcp TCP state (`include/net/tcp_states.h`).
pub(crate) fn linux_state(s: smoltcp::socket::tcp::State) -> u64 {
    use smoltcp::socket::tcp::State;
    match s {
        State::Established => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::FinWait1 => 4,
        State::FinWait2 => 5,
        State::TimeWait => 6,
        State::Closed => 7,
        State::CloseWait => 8,
        State::LastAck => 9,
        State::Listen => 10,
        State::Closing => 11,
    }
}

/// A file mapped shared, read-write, at least as long as its user asked
/// (`min`). Unmapped on drop. The pages ([`Mapping`], the applications
/// page) view its bytes as atomics only.
pub(crate) struct Shm {
    pub(crate) ptr: NonNull<u8>,
    pub(crate) len: usize,
}

// SAFETY: the mapping is owned like a Box<[u8]>; every access to its bytes
// goes through atomics (the pages' views), which are Sync, and munmap may run
// on any thread.
unsafe impl Send for Shm {}
// SAFETY: as above: shared references only hand out atomics.
unsafe impl Sync for Shm {}

impl Shm {
    /// Maps `len` bytes of `file` (which must be at least that long);
    /// refuses fewer than `min`.
    fn map(file: &File, len: usize, min: usize) -> io::Result<Shm> {
        if len < min {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too short for a ringline stat page",
            ));
        }
        // SAFETY: a fresh shared mapping of an open file descriptor; the
        // kernel picks the address, so nothing existing is replaced.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Shm { ptr, len })
    }

    /// Creates the file at `path` (it must not exist), `len` bytes of
    /// zeros, and maps it.
    pub(crate) fn create(path: &std::path::Path, len: usize, min: usize) -> io::Result<Shm> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.set_len(len as u64)?;
        Shm::map(&file, len, min)
    }

    /// Maps an existing file, as long as it is.
    pub(crate) fn open(path: &std::path::Path, min: usize) -> io::Result<Shm> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "page too large"))?;
        Shm::map(&file, len, min)
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; no reference into it
        // outlives `self` (they all borrow it).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// An engine's page mapped: at least `page_len(0)` bytes.
pub(crate) struct Mapping {
    shm: Shm,
}

impl Mapping {
    /// Creates the page file at `path` (it must not exist), `len` bytes of
    /// zeros, and maps it.
    pub(crate) fn create(path: &std::path::Path, len: usize) -> io::Result<Mapping> {
        Ok(Mapping {
            shm: Shm::create(path, len, page_len(0))?,
        })
    }

    /// Maps an existing page file, as long as the file is.
    pub(crate) fn open(path: &std::path::Path) -> io::Result<Mapping> {
        Ok(Mapping {
            shm: Shm::open(path, page_len(0))?,
        })
    }

    /// The fixed part.
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is >= `page_len(0)` bytes (checked by Shm::map), page-aligned,
        // lives as long as `self`; `Header` is atomics only: any bit pattern is valid and
        // another process's concurrent writes are atomic ones.
        unsafe { &*self.shm.ptr.as_ptr().cast::<Header>() }
    }

    /// The counter slots.
    pub(crate) fn slots(&self) -> &[CounterSlot] {
        // SAFETY: as for `header`: `page_len(0)` covers the slots, the
        // offset is a multiple of 64, and the slots are atomics only.
        unsafe {
            std::slice::from_raw_parts(
                self.shm.ptr.as_ptr().add(SLOTS_AT).cast::<CounterSlot>(),
                COUNTER_SLOTS,
            )
        }
    }

    /// The connection rows the mapping holds (as many as fit in it).
    pub(crate) fn rows(&self) -> &[ConnRow] {
        let n = (self.shm.len - ROWS_AT) / std::mem::size_of::<ConnRow>();
        // SAFETY: `n` rows fit in the mapping past ROWS_AT (a multiple of
        // 64); rows are atomics only.
        unsafe {
            std::slice::from_raw_parts(self.shm.ptr.as_ptr().add(ROWS_AT).cast::<ConnRow>(), n)
        }
    }
}

/// Packs `s` into NUL-padded little-endian words (cut at `N * 8` bytes).
fn pack<const N: usize>(s: &str) -> [u64; N] {
    let mut out = [0u64; N];
    for (i, b) in s.bytes().take(N * 8).enumerate() {
        out[i / 8] |= u64::from(b) << ((i % 8) * 8);
    }
    out
}

/// The string [`pack`] packed (up to the first NUL; invalid UTF-8 replaced).
fn unpack(words: &[AtomicU64]) -> String {
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Field 22 of `/proc/<pid>/stat` (the process's start time, clock ticks
/// after boot); `None` if the process is gone.
pub(crate) fn start_ticks(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) is in parentheses and may hold spaces: count from
    // the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pack_and_unpack() {
        let w: [u64; 6] = pack("syn_cookies_sent");
        let atoms = w.map(AtomicU64::new);
        assert_eq!(unpack(&atoms), "syn_cookies_sent");
        let long = "x".repeat(60);
        let w: [u64; 6] = pack(&long);
        assert_eq!(unpack(&w.map(AtomicU64::new)), "x".repeat(48));
    }

    #[test]
    fn conn_info_round_trips_through_words() {
        let c = ConnInfo {
            state: 1,
            remote_port: 4242,
            age_us: 9,
            ..ConnInfo::default()
        };
        assert_eq!(ConnInfo::from_words(c.to_words()), c);
        assert_eq!(c.state_name(), "ESTAB");
    }

    #[test]
    fn own_start_time_is_readable() {
        assert!(start_ticks("self").is_some());
        assert!(start_ticks("999999999").is_none());
    }
}
