//! The reader's side: find the pages, map one, copy a consistent snapshot
//! of its counters, ask for its connection table. Nothing here stops or
//! slows the engine: the counters are read under its seqlock, and the
//! connection table is filled by the engine at its own pace (bounded per
//! step) when a reader raises the request.

use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use super::{
    start_ticks, unpack, ConnInfo, Group, Kind, Mapping, CONN_WORDS, COUNTER_SLOTS, MAGIC,
    MAX_CONN_ROWS, STAT_DIR, VERSION,
};

/// Copies tried before a snapshot gives up (the engine rewrote the page
/// during every one: it would have to publish continuously).
const SEQ_TRIES: usize = 10_000;

/// Runs `copy` (relaxed loads of what the writer stores under `seq`)
/// between two loads of `seq` until both see the same even value, at most
/// [`SEQ_TRIES`] times; whether the last copy is consistent. The seqlock of
/// the module docs: the writer makes `seq` odd, stores, and makes it even
/// with a release store.
pub(crate) fn seq_read(seq: &std::sync::atomic::AtomicU64, mut copy: impl FnMut()) -> bool {
    for _ in 0..SEQ_TRIES {
        // Pairs with the writer's release store that made it even.
        let s1 = seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            std::hint::spin_loop();
            continue;
        }
        copy();
        // Keeps the copy's loads before the second load; pairs with the
        // writer's release fence after its odd store.
        fence(Ordering::Acquire);
        if seq.load(Ordering::Relaxed) == s1 {
            return true;
        }
    }
    false
}

/// Errors reading a page.
#[derive(Debug, thiserror::Error)]
pub enum StatError {
    /// The page file could not be opened or mapped.
    #[error("{path}: {err}")]
    Io {
        /// The page.
        path: PathBuf,
        /// What failed.
        err: std::io::Error,
    },
    /// Not a page of this version (or not finished being set up).
    #[error("{0}: not a ringline stat page of version {VERSION}")]
    Format(PathBuf),
    /// The engine rewrote the counters during every copy.
    #[error("{0}: no consistent copy (the engine kept rewriting it)")]
    Busy(PathBuf),
    /// The engine did not answer a connection-table request in time (it is
    /// not being stepped: an inline engine whose application is not in the
    /// ring, or a stopped process).
    #[error("{0}: the engine did not answer the connection request within {1:?}")]
    NoAnswer(PathBuf, Duration),
}

/// One running engine's page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The page file.
    pub path: PathBuf,
    /// The process.
    pub pid: u32,
    /// The engine's number in the process.
    pub engine: u32,
}

/// The pages in [`STAT_DIR`] of processes still running, by pid and
/// engine; pages of dead processes are removed (best effort).
pub fn instances() -> std::io::Result<Vec<Instance>> {
    instances_in(Path::new(STAT_DIR))
}

/// [`instances`] in `dir`.
pub fn instances_in(dir: &Path) -> std::io::Result<Vec<Instance>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let Ok(e) = e else { continue };
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((pid, engine)) = parse_name(name) else {
            continue;
        };
        let path = e.path();
        if !alive(&path, pid) {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        out.push(Instance { path, pid, engine });
    }
    out.sort_by_key(|i| (i.pid, i.engine));
    Ok(out)
}

/// `ringline.<pid>.<engine>` → `(pid, engine)`.
fn parse_name(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("ringline.")?;
    let (pid, engine) = rest.split_once('.')?;
    Some((pid.parse().ok()?, engine.parse().ok()?))
}

/// Whether the page's creator still runs: its pid exists with the start
/// time the page records (a pid reused by another process is not it).
/// A page that cannot be read as one counts as alive (never removed on a
/// guess) unless its pid is gone.
fn alive(path: &Path, pid: u32) -> bool {
    let Some(now) = start_ticks(&pid.to_string()) else {
        return false;
    };
    match Mapping::open(path) {
        Ok(m) => {
            let id = &m.header().ident;
            if id.magic.load(Ordering::Acquire) != MAGIC {
                return true;
            }
            let recorded = id.start_ticks.load(Ordering::Relaxed);
            recorded == 0 || recorded == now
        }
        Err(_) => true,
    }
}

/// One counter as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Where it comes from.
    pub group: Group,
    /// Its name (the field name in `EngineStats` / `NicCounters`).
    pub name: String,
    /// Total or level.
    pub kind: Kind,
    /// Its value.
    pub value: u64,
}

/// A consistent copy of an engine's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSnapshot {
    /// The process.
    pub pid: u32,
    /// Its name (`/proc/<pid>/comm`).
    pub process: String,
    /// The engine's number in the process.
    pub engine: u32,
    /// Its queue of the port, and the port's queues (0 of 1 alone).
    pub queue: u16,
    /// Queues of the engine group.
    pub queues: u16,
    /// Publications so far (0: none yet).
    pub publishes: u64,
    /// Engine time of the last one, µs.
    pub engine_us: u64,
    /// Wall-clock time of the last one, µs since the Unix epoch.
    pub wall_us: u64,
    /// The publishing interval, µs.
    pub interval_us: u64,
    /// The counters, in the page's order.
    pub counters: Vec<Counter>,
}

impl EngineSnapshot {
    /// The value of counter `name` of `group`.
    pub fn get(&self, group: Group, name: &str) -> Option<u64> {
        self.counters
            .iter()
            .find(|c| c.group == group && c.name == name)
            .map(|c| c.value)
    }
}

/// A copy of an engine's connection table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnTable {
    /// Connections live when the engine filled the table.
    pub live: u64,
    /// Engine time it finished, µs.
    pub engine_us: u64,
    /// The rows (at most the page's `stat_connections`).
    pub rows: Vec<ConnInfo>,
}

/// A mapped page.
pub struct StatReader {
    map: Mapping,
    path: PathBuf,
    counters: usize,
}

impl std::fmt::Debug for StatReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StatReader {
    /// Maps the page at `path` and checks it.
    pub fn open(path: &Path) -> Result<StatReader, StatError> {
        let map = Mapping::open(path).map_err(|err| StatError::Io {
            path: path.to_owned(),
            err,
        })?;
        let id = &map.header().ident;
        let bad = || StatError::Format(path.to_owned());
        // Pairs with the creator's release store: everything in `Ident`
        // and the counter names are complete.
        if id.magic.load(Ordering::Acquire) != MAGIC
            || id.version.load(Ordering::Relaxed) != VERSION
        {
            return Err(bad());
        }
        let shape = id.shape.load(Ordering::Relaxed);
        let counters = (shape & 0xffff_ffff) as usize;
        let rows = (shape >> 32) as usize;
        if counters > COUNTER_SLOTS || rows > MAX_CONN_ROWS || map.rows().len() < rows {
            return Err(bad());
        }
        Ok(StatReader {
            map,
            path: path.to_owned(),
            counters,
        })
    }

    /// The page file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A consistent copy of the counters.
    pub fn snapshot(&self) -> Result<EngineSnapshot, StatError> {
        let h = self.map.header();
        let id = &h.ident;
        let eq = id.engine_queue.load(Ordering::Relaxed);
        let slots = &self.map.slots()[..self.counters];
        let mut counters: Vec<Counter> = slots
            .iter()
            .map(|s| {
                let meta = s.meta.load(Ordering::Relaxed);
                Counter {
                    group: Group::from_u8(meta as u8).unwrap_or(Group::Engine),
                    name: unpack(&s.name),
                    kind: if (meta >> 8) & 0xff == 1 {
                        Kind::Gauge
                    } else {
                        Kind::Counter
                    },
                    value: 0,
                }
            })
            .collect();
        let c = &h.counters;
        let (mut publishes, mut engine_us, mut wall_us) = (0, 0, 0);
        let consistent = seq_read(&c.seq, || {
            for (out, slot) in counters.iter_mut().zip(slots) {
                out.value = slot.value.load(Ordering::Relaxed);
            }
            publishes = c.publishes.load(Ordering::Relaxed);
            engine_us = c.engine_us.load(Ordering::Relaxed);
            wall_us = c.wall_us.load(Ordering::Relaxed);
        });
        if consistent {
            return Ok(EngineSnapshot {
                pid: id.pid.load(Ordering::Relaxed) as u32,
                process: unpack(&id.comm),
                engine: eq as u32,
                queue: (eq >> 32) as u16,
                queues: (eq >> 48) as u16,
                publishes,
                engine_us,
                wall_us,
                interval_us: id.interval_us.load(Ordering::Relaxed),
                counters,
            });
        }
        Err(StatError::Busy(self.path.clone()))
    }

    /// Asks the engine for its connection table and copies it once filled;
    /// waits at most `timeout`.
    pub fn connections(&self, timeout: Duration) -> Result<ConnTable, StatError> {
        let h = self.map.header();
        // Pairs with the engine's acquire load of the request word.
        let mine = h.request.conns.fetch_add(1, Ordering::Release) + 1;
        let deadline = Instant::now() + timeout;
        let rows = self.map.rows();
        loop {
            // Pairs with the engine's release store that ended the walk.
            let s1 = h.conn.seq.load(Ordering::Acquire);
            // A later reader's request answers ours too.
            let served = h.conn.served.load(Ordering::Relaxed);
            if s1 & 1 == 0 && served.wrapping_sub(mine) < u64::MAX / 2 {
                let n = (h.conn.rows.load(Ordering::Relaxed) as usize).min(rows.len());
                let live = h.conn.live.load(Ordering::Relaxed);
                let engine_us = h.conn.engine_us.load(Ordering::Relaxed);
                let copy: Vec<ConnInfo> = rows[..n]
                    .iter()
                    .map(|r| {
                        let mut w = [0u64; CONN_WORDS];
                        for (o, a) in w.iter_mut().zip(&r.words) {
                            *o = a.load(Ordering::Relaxed);
                        }
                        ConnInfo::from_words(w)
                    })
                    .collect();
                // As in `snapshot`.
                fence(Ordering::Acquire);
                if h.conn.seq.load(Ordering::Relaxed) == s1 {
                    return Ok(ConnTable {
                        live,
                        engine_us,
                        rows: copy,
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(StatError::NoAnswer(self.path.clone(), timeout));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(parse_name("ringline.123.4"), Some((123, 4)));
        assert_eq!(parse_name("ringline.x.4"), None);
        assert_eq!(parse_name("other.1.2"), None);
    }
}
