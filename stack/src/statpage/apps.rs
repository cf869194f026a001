//! `ringline serve`'s applications in shared memory: one page per daemon,
//! `/dev/shm/ringline.<pid>.apps`, with a row per attached (or draining)
//! application: its name and pid, sockets open and their limit, listeners,
//! memory (buffer region, ring), ring indices, overflows, CQEs posted and
//! requests in flight. The daemon rewrites the rows under a seqlock every
//! `stat_interval` from its housekeeping (never from an engine step);
//! `ringline stat` reads them without stopping it.
//!
//! # The page
//!
//! | part | written by | when |
//! |---|---|---|
//! | [`AppsIdent`]: magic, version, length, pid, start time, rows, process name | daemon | once, before `magic` (release) |
//! | [`AppsHeader`]: seqlock, publications, wall time, rows in use | daemon | every publication |
//! | [`AppRow`] × rows | daemon, under the seqlock | every publication |
//!
//! The seqlock is the engine page's (see [`super`]): odd while the daemon
//! stores, even (release) when done; a reader copies between two acquire
//! loads that agree.

use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::{pack, start_ticks, unpack, StatError, STAT_DIR};

/// `"RLAPPS01"`: the page is complete (stored last at creation).
pub const APPS_MAGIC: u64 = u64::from_le_bytes(*b"RLAPPS01");
/// Layout version of the applications page.
pub const APPS_VERSION: u64 = 1;
/// Numeric words of a row ([`AppStat`]'s fields in order).
pub const APP_WORDS: usize = 20;
/// Bytes of an application's name.
pub const APP_NAME_LEN: usize = 32;
/// Most rows a page holds.
pub const MAX_APP_ROWS: usize = 4096;

/// The file name of daemon `pid`'s applications page.
pub fn apps_file_name(pid: u32) -> String {
    format!("ringline.{pid}.apps")
}

/// Written once by the daemon before `magic`; read-only afterwards.
#[repr(C, align(64))]
pub(crate) struct AppsIdent {
    /// [`APPS_MAGIC`] once the rest is set up. Daemon store-releases it
    /// last; readers load-acquire it before anything else.
    magic: AtomicU64,
    /// [`APPS_VERSION`]; daemon only, before `magic`.
    version: AtomicU64,
    /// The page's length in bytes; daemon only, before `magic`.
    len: AtomicU64,
    /// The daemon's pid; daemon only, before `magic`.
    pid: AtomicU64,
    /// Its start time (`/proc/<pid>/stat` field 22): tells a reused pid
    /// apart; daemon only, before `magic`.
    start_ticks: AtomicU64,
    /// Rows the page holds; daemon only, before `magic`.
    capacity: AtomicU64,
    /// The daemon's process name; daemon only, before `magic`.
    comm: [AtomicU64; 2],
}

/// The rows' seqlock.
#[repr(C, align(64))]
pub(crate) struct AppsHeader {
    /// Daemon-only writer: odd while it stores the rows, even
    /// (store-release) when done; readers load-acquire it around their copy.
    seq: AtomicU64,
    /// Publications so far; daemon only, under `seq`.
    publishes: AtomicU64,
    /// Wall-clock time of the last one, µs since the epoch; under `seq`.
    wall_us: AtomicU64,
    /// Rows in use; daemon only, under `seq`.
    rows: AtomicU64,
}

/// One application; daemon-only writer, under `AppsHeader::seq`.
#[repr(C, align(64))]
pub(crate) struct AppRow {
    words: [AtomicU64; APP_WORDS],
    name: [AtomicU64; APP_NAME_LEN / 8],
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<AppsIdent>() == 64);
    assert!(offset_of!(AppsIdent, comm) == 48);
    assert!(size_of::<AppsHeader>() == 64);
    assert!(size_of::<AppRow>() == 192);
    assert!(offset_of!(AppRow, name) == APP_WORDS * 8);
};

/// Offset of the rows.
const ROWS_AT: usize = 128;

const fn apps_page_len(rows: usize) -> usize {
    ROWS_AT + rows * std::mem::size_of::<AppRow>()
}

/// One attached application as `ringline stat` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppStat {
    /// The name it attached with (its process name unless it gave one).
    pub name: String,
    /// The daemon's NIC port.
    pub port: u64,
    /// Its slot on the port.
    pub slot: u64,
    /// Its pid (0: unknown).
    pub pid: u64,
    /// 0 attached, 1 gone and closing its connections.
    pub state: u64,
    /// Sockets (connections) open.
    pub sockets: u64,
    /// The most it may have (`serve.max_sockets`).
    pub sockets_limit: u64,
    /// Listening ports.
    pub listeners: u64,
    /// Its buffer region, bytes.
    pub region_bytes: u64,
    /// Its ring memory, bytes.
    pub ring_bytes: u64,
    /// SQ entries.
    pub sq_entries: u64,
    /// SQEs the engine took (the SQ head, free-running u32).
    pub sq_head: u64,
    /// SQEs the application published (SQ tail).
    pub sq_tail: u64,
    /// CQEs the application consumed (CQ head).
    pub cq_head: u64,
    /// CQEs posted (CQ tail).
    pub cq_tail: u64,
    /// CQEs that went to the overflow backlog.
    pub cq_overflowed: u64,
    /// CQEs posted in all (64-bit).
    pub cqes: u64,
    /// SQEs taken in all (64-bit).
    pub sqes: u64,
    /// Requests in flight.
    pub in_flight: u64,
    /// Its engine's stat page number (`ringline.<daemon pid>.<engine>`),
    /// `u64::MAX` if it has none.
    pub engine: u64,
}

impl AppStat {
    fn to_words(&self) -> [u64; APP_WORDS] {
        [
            self.port,
            self.slot,
            self.pid,
            self.state,
            self.sockets,
            self.sockets_limit,
            self.listeners,
            self.region_bytes,
            self.ring_bytes,
            self.sq_entries,
            self.sq_head,
            self.sq_tail,
            self.cq_head,
            self.cq_tail,
            self.cq_overflowed,
            self.cqes,
            self.sqes,
            self.in_flight,
            self.engine,
            0,
        ]
    }

    fn from_words(w: &[u64; APP_WORDS], name: String) -> AppStat {
        AppStat {
            name,
            port: w[0],
            slot: w[1],
            pid: w[2],
            state: w[3],
            sockets: w[4],
            sockets_limit: w[5],
            listeners: w[6],
            region_bytes: w[7],
            ring_bytes: w[8],
            sq_entries: w[9],
            sq_head: w[10],
            sq_tail: w[11],
            cq_head: w[12],
            cq_tail: w[13],
            cq_overflowed: w[14],
            cqes: w[15],
            sqes: w[16],
            in_flight: w[17],
            engine: w[18],
        }
    }

    /// `attached` or `closing`.
    pub fn state_name(&self) -> &'static str {
        if self.state == 0 {
            "attached"
        } else {
            "closing"
        }
    }

    /// The numeric fields by name, in row order, with whether each is a
    /// running total (a counter) or a level (a gauge): what `--json` and
    /// `--prometheus` print.
    pub fn fields(&self) -> [(&'static str, bool, u64); APP_WORDS - 5] {
        [
            ("sockets", false, self.sockets),
            ("sockets_limit", false, self.sockets_limit),
            ("listeners", false, self.listeners),
            ("region_bytes", false, self.region_bytes),
            ("ring_bytes", false, self.ring_bytes),
            ("sq_entries", false, self.sq_entries),
            ("sq_head", false, self.sq_head),
            ("sq_tail", false, self.sq_tail),
            ("cq_head", false, self.cq_head),
            ("cq_tail", false, self.cq_tail),
            ("cq_overflowed", true, self.cq_overflowed),
            ("cqes", true, self.cqes),
            ("sqes", true, self.sqes),
            ("in_flight", false, self.in_flight),
            ("state", false, self.state),
        ]
    }
}

/// The daemon's page.
pub(crate) struct AppsPublisher {
    map: PageMap,
    path: PathBuf,
    capacity: usize,
}

impl AppsPublisher {
    /// Creates `/dev/shm/ringline.<pid>.apps` with room for `rows`.
    pub(crate) fn create(rows: usize) -> std::io::Result<AppsPublisher> {
        let rows = rows.clamp(1, MAX_APP_ROWS);
        let pid = std::process::id();
        let path = PathBuf::from(STAT_DIR).join(apps_file_name(pid));
        // A page left by a dead process with our pid (reused) is stale.
        let _ = std::fs::remove_file(&path);
        let len = apps_page_len(rows);
        let map = PageMap::create(&path, len)?;
        let id = map.ident();
        // The creator's stores, all before the release store of `magic`.
        id.version.store(APPS_VERSION, Ordering::Relaxed);
        id.len.store(len as u64, Ordering::Relaxed);
        id.pid.store(u64::from(pid), Ordering::Relaxed);
        id.start_ticks
            .store(start_ticks("self").unwrap_or(0), Ordering::Relaxed);
        id.capacity.store(rows as u64, Ordering::Relaxed);
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
        for (w, v) in id.comm.iter().zip(pack::<2>(comm.trim_end())) {
            w.store(v, Ordering::Relaxed);
        }
        // Readers load-acquire `magic` before anything above.
        id.magic.store(APPS_MAGIC, Ordering::Release);
        Ok(AppsPublisher {
            map,
            path,
            capacity: rows,
        })
    }

    /// The page's file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the rows: `fill` calls its argument once per application
    /// (beyond the page's rows they are left out). No allocation.
    pub(crate) fn publish(&mut self, fill: impl FnOnce(&mut dyn FnMut(&AppStat, &[u8]))) {
        let h = self.map.header();
        let rows = self.map.rows(self.capacity);
        // Daemon-only writer: odd, then the rows.
        let seq = h.seq.load(Ordering::Relaxed);
        h.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Keeps the row stores after the odd store; pairs with the reader's
        // acquire fence before its second load of `seq`.
        fence(Ordering::Release);
        let mut n = 0;
        fill(&mut |a: &AppStat, name: &[u8]| {
            let Some(row) = rows.get(n) else { return };
            for (w, v) in row.words.iter().zip(a.to_words()) {
                w.store(v, Ordering::Relaxed);
            }
            let mut packed = [0u64; APP_NAME_LEN / 8];
            for (i, &b) in name.iter().take(APP_NAME_LEN).enumerate() {
                packed[i / 8] |= u64::from(b) << ((i % 8) * 8);
            }
            for (w, v) in row.name.iter().zip(packed) {
                w.store(v, Ordering::Relaxed);
            }
            n += 1;
        });
        h.rows.store(n as u64, Ordering::Relaxed);
        h.publishes.fetch_add(1, Ordering::Relaxed);
        h.wall_us
            .store(super::publish::wall_us(), Ordering::Relaxed);
        // Even again: pairs with the reader's acquire load of `seq`.
        h.seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

impl Drop for AppsPublisher {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A consistent copy of a daemon's applications.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppsSnapshot {
    /// The daemon's pid.
    pub pid: u32,
    /// Its process name.
    pub process: String,
    /// Publications so far (0: none yet).
    pub publishes: u64,
    /// Wall-clock time of the last one, µs since the epoch.
    pub wall_us: u64,
    /// The applications.
    pub apps: Vec<AppStat>,
}

/// A daemon's mapped applications page.
pub struct AppsReader {
    map: PageMap,
    path: PathBuf,
    capacity: usize,
}

impl std::fmt::Debug for AppsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppsReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AppsReader {
    /// Maps the page at `path` and checks it.
    pub fn open(path: &Path) -> Result<AppsReader, StatError> {
        let map = PageMap::open(path).map_err(|err| StatError::Io {
            path: path.to_owned(),
            err,
        })?;
        let id = map.ident();
        // Pairs with the daemon's release store: the identity is complete.
        if id.magic.load(Ordering::Acquire) != APPS_MAGIC
            || id.version.load(Ordering::Relaxed) != APPS_VERSION
        {
            return Err(StatError::Format(path.to_owned()));
        }
        let capacity = id.capacity.load(Ordering::Relaxed) as usize;
        if capacity > MAX_APP_ROWS || apps_page_len(capacity) > map.shm.len {
            return Err(StatError::Format(path.to_owned()));
        }
        Ok(AppsReader {
            map,
            path: path.to_owned(),
            capacity,
        })
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.map.ident().pid.load(Ordering::Relaxed) as u32
    }

    /// A consistent copy of the rows.
    pub fn snapshot(&self) -> Result<AppsSnapshot, StatError> {
        let h = self.map.header();
        let rows = self.map.rows(self.capacity);
        let mut words = vec![[0u64; APP_WORDS]; rows.len()];
        let mut names = vec![[0u8; APP_NAME_LEN]; rows.len()];
        let (mut n, mut publishes, mut wall_us) = (0, 0, 0);
        let consistent = super::read::seq_read(&h.seq, || {
            n = (h.rows.load(Ordering::Relaxed) as usize).min(rows.len());
            for i in 0..n {
                for (o, a) in words[i].iter_mut().zip(&rows[i].words) {
                    *o = a.load(Ordering::Relaxed);
                }
                for (j, w) in rows[i].name.iter().enumerate() {
                    let b = w.load(Ordering::Relaxed).to_le_bytes();
                    names[i][j * 8..j * 8 + 8].copy_from_slice(&b);
                }
            }
            publishes = h.publishes.load(Ordering::Relaxed);
            wall_us = h.wall_us.load(Ordering::Relaxed);
        });
        if consistent {
            let id = self.map.ident();
            let apps = (0..n)
                .map(|i| {
                    let end = names[i]
                        .iter()
                        .position(|&b| b == 0)
                        .unwrap_or(APP_NAME_LEN);
                    let name = String::from_utf8_lossy(&names[i][..end]).into_owned();
                    AppStat::from_words(&words[i], name)
                })
                .collect();
            return Ok(AppsSnapshot {
                pid: id.pid.load(Ordering::Relaxed) as u32,
                process: unpack(&id.comm),
                publishes,
                wall_us,
                apps,
            });
        }
        Err(StatError::Busy(self.path.clone()))
    }
}

/// The applications pages in [`STAT_DIR`] of daemons still running; pages
/// of dead ones are removed (best effort).
pub fn apps_pages() -> std::io::Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(STAT_DIR)? {
        let Ok(e) = e else { continue };
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ringline."))
            .and_then(|n| n.strip_suffix(".apps"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let path = e.path();
        let Some(now) = start_ticks(&pid.to_string()) else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        // A reused pid: the page records another start time.
        if let Ok(m) = PageMap::open(&path) {
            let id = m.ident();
            if id.magic.load(Ordering::Acquire) == APPS_MAGIC {
                let t = id.start_ticks.load(Ordering::Relaxed);
                if t != 0 && t != now {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
            }
        }
        out.push((pid, path));
    }
    out.sort();
    Ok(out)
}

/// The applications page mapped: at least `apps_page_len(0)` bytes.
struct PageMap {
    shm: super::Shm,
}

impl PageMap {
    fn create(path: &Path, len: usize) -> std::io::Result<PageMap> {
        Ok(PageMap {
            shm: super::Shm::create(path, len, apps_page_len(0))?,
        })
    }

    fn open(path: &Path) -> std::io::Result<PageMap> {
        Ok(PageMap {
            shm: super::Shm::open(path, apps_page_len(0))?,
        })
    }

    fn ident(&self) -> &AppsIdent {
        // SAFETY: the mapping is >= ROWS_AT bytes (checked by Shm::map), page-aligned, lives as
        // long as `self`; AppsIdent is atomics only: any bit pattern is valid.
        unsafe { &*self.shm.ptr.as_ptr().cast::<AppsIdent>() }
    }

    fn header(&self) -> &AppsHeader {
        // SAFETY: as for `ident`: offset 64 (a multiple of 64) of at least ROWS_AT bytes.
        unsafe { &*self.shm.ptr.as_ptr().add(64).cast::<AppsHeader>() }
    }

    /// The first `n` rows, as many as fit in the mapping.
    fn rows(&self, n: usize) -> &[AppRow] {
        let fit = (self.shm.len - ROWS_AT) / std::mem::size_of::<AppRow>();
        // SAFETY: `n.min(fit)` rows lie in the mapping past ROWS_AT (a multiple of 64); rows
        // are atomics only.
        unsafe {
            std::slice::from_raw_parts(
                self.shm.ptr.as_ptr().add(ROWS_AT).cast::<AppRow>(),
                n.min(fit),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_the_page() {
        let mut p = AppsPublisher::create(4).expect("create");
        let r = AppsReader::open(p.path()).expect("open");
        assert_eq!(r.snapshot().unwrap().apps, vec![]);
        let a = AppStat {
            name: "echo-a".into(),
            pid: 42,
            sockets: 3,
            sqes: 1 << 40,
            engine: 7,
            ..AppStat::default()
        };
        let b = AppStat {
            name: "x".repeat(40),
            slot: 1,
            ..AppStat::default()
        };
        p.publish(|f| {
            f(&a, a.name.as_bytes());
            f(&b, b.name.as_bytes());
        });
        let s = r.snapshot().unwrap();
        assert_eq!(s.pid, std::process::id());
        assert_eq!(s.publishes, 1);
        assert_eq!(s.apps[0], a);
        assert_eq!(s.apps[1].name, "x".repeat(APP_NAME_LEN));
        assert_eq!(s.apps[1].slot, 1);
        // More than the page holds: the rest left out.
        p.publish(|f| {
            for _ in 0..6 {
                f(&a, b"a");
            }
        });
        assert_eq!(r.snapshot().unwrap().apps.len(), 4);
        let path = p.path().to_owned();
        assert!(apps_pages().unwrap().iter().any(|(_, q)| *q == path));
        drop(p);
        assert!(!path.exists());
    }
}
