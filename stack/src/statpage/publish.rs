//! The engine's side: creates the page, then publishes into it from the
//! step. A step pays one comparison ([`Publisher::due`]); the rest runs at
//! most every [`REQUEST_POLL_US`] (look for a connection-table request)
//! and every `stat_interval` (counters), and a table walk takes at most
//! [`WALK_PER_STEP`] connection slots per step. Nothing here allocates
//! after creation.

use std::path::PathBuf;
use std::sync::atomic::{fence, AtomicU32, Ordering};

use ringline_dataplane::NicCounters;
use ringline_ring::ring::RingStats;

use super::{
    file_name, pack, page_len, start_ticks, ConnInfo, CounterSlot, Group, Kind, Mapping,
    CONN_WORDS, MAGIC, MAX_CONN_ROWS, NAME_LEN, STAT_DIR, VERSION,
};
use crate::stats::EngineStats;

/// How often (engine µs) the engine looks for a connection-table request.
pub(crate) const REQUEST_POLL_US: u64 = 1000;
/// Connection slots a table walk looks at per step.
pub(crate) const WALK_PER_STEP: usize = 256;

/// The process's engines, numbered as they are opened.
static NEXT_ENGINE: AtomicU32 = AtomicU32::new(0);

/// Every value the page publishes, in slot order: `f(group, name, kind,
/// value)`. Called with zeros at creation to name the slots.
pub(crate) fn each_counter(
    s: &EngineStats,
    nic: &NicCounters,
    ring: &RingStats,
    thread_cpu_us: u64,
    mut f: impl FnMut(Group, &'static str, Kind, u64),
) {
    s.visit(|name, v| {
        let kind = if EngineStats::GAUGES.contains(&name) {
            Kind::Gauge
        } else {
            Kind::Counter
        };
        f(Group::Engine, name, kind, v);
    });
    for (name, v) in nic.fields() {
        f(Group::Nic, name, Kind::Counter, v);
    }
    f(
        Group::Ring,
        "cq_overflowed",
        Kind::Counter,
        ring.overflowed_total,
    );
    f(
        Group::Ring,
        "cq_backlog",
        Kind::Gauge,
        ring.backlog_len as u64,
    );
    f(
        Group::Ring,
        "cq_backlog_high_water",
        Kind::Gauge,
        ring.backlog_high_water as u64,
    );
    f(
        Group::Ring,
        "sq_dropped",
        Kind::Counter,
        u64::from(ring.sq_dropped),
    );
    f(
        Group::Ring,
        "sq_entries",
        Kind::Gauge,
        u64::from(ring.sq_entries),
    );
    f(
        Group::Ring,
        "cq_entries",
        Kind::Gauge,
        u64::from(ring.cq_entries),
    );
    f(Group::Thread, "cpu_us", Kind::Counter, thread_cpu_us);
}

/// The values the engine hands to [`Publisher::publish_counters`].
pub(crate) struct Values<'a> {
    pub(crate) stats: &'a EngineStats,
    pub(crate) nic: &'a NicCounters,
    pub(crate) ring: &'a RingStats,
}

/// An engine's page.
pub(crate) struct Publisher {
    map: Mapping,
    path: PathBuf,
    interval_us: u64,
    /// The next step at or after this engine time does something.
    pub(crate) due_us: u64,
    next_counters_us: u64,
    next_poll_us: u64,
    /// The request being answered and the walk's next slot and row.
    walk: Option<Walk>,
    rows: usize,
}

#[derive(Clone, Copy)]
struct Walk {
    request: u64,
    slot: usize,
    row: usize,
}

impl Publisher {
    /// Creates this engine's page: `rows` connection rows, counters every
    /// `interval_us`, `queue` of `queues`.
    pub(crate) fn create(
        rows: usize,
        interval_us: u64,
        (queue, queues): (u16, u16),
    ) -> std::io::Result<Publisher> {
        let rows = rows.min(MAX_CONN_ROWS);
        let pid = std::process::id();
        let engine = NEXT_ENGINE.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(STAT_DIR).join(file_name(pid, engine));
        // A page left by a dead process with our pid (reused) is stale.
        if std::fs::metadata(&path).is_ok() {
            let _ = std::fs::remove_file(&path);
        }
        let len = page_len(rows);
        let map = Mapping::create(&path, len)?;
        let p = Publisher {
            map,
            path,
            interval_us: interval_us.max(1),
            due_us: 0,
            next_counters_us: 0,
            next_poll_us: 0,
            walk: None,
            rows,
        };
        let id = &p.map.header().ident;
        // The creator's stores, all before the release store of `magic`.
        id.version.store(VERSION, Ordering::Relaxed);
        id.len.store(len as u64, Ordering::Relaxed);
        id.pid.store(u64::from(pid), Ordering::Relaxed);
        id.start_ticks
            .store(start_ticks("self").unwrap_or(0), Ordering::Relaxed);
        id.engine_queue.store(
            u64::from(engine) | (u64::from(queue) << 32) | (u64::from(queues) << 48),
            Ordering::Relaxed,
        );
        id.interval_us.store(p.interval_us, Ordering::Relaxed);
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
        for (w, v) in id.comm.iter().zip(pack::<2>(comm.trim_end())) {
            w.store(v, Ordering::Relaxed);
        }
        let slots = p.map.slots();
        let mut n = 0;
        let zero = (
            EngineStats::default(),
            NicCounters::default(),
            ring_with_overflows(0),
        );
        each_counter(&zero.0, &zero.1, &zero.2, 0, |group, name, kind, _| {
            // More counters than slots: the rest are not published (the
            // unit test below keeps today's set well inside).
            if let Some(slot) = slots.get(n) {
                name_slot(slot, group, name, kind);
                n += 1;
            }
        });
        id.shape
            .store(n as u64 | ((rows as u64) << 32), Ordering::Relaxed);
        // Readers load-acquire `magic` before reading anything above.
        id.magic.store(MAGIC, Ordering::Release);
        Ok(p)
    }

    /// Sets the engine's queue of a group (once, before its first step).
    pub(crate) fn set_queue(&self, queue: u16, queues: u16) {
        let id = &self.map.header().ident;
        let engine = id.engine_queue.load(Ordering::Relaxed) & 0xffff_ffff;
        id.engine_queue.store(
            engine | (u64::from(queue) << 32) | (u64::from(queues) << 48),
            Ordering::Relaxed,
        );
    }

    /// The page's file.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Whether the counters are due at `now_us`, and then pushes their due
    /// time on.
    pub(crate) fn counters_due(&mut self, now_us: u64) -> bool {
        if now_us < self.next_counters_us {
            return false;
        }
        self.next_counters_us = now_us.saturating_add(self.interval_us);
        true
    }

    /// Stores the counters under the seqlock.
    pub(crate) fn publish_counters(&mut self, v: &Values<'_>, now_us: u64, thread_cpu_us: u64) {
        let c = &self.map.header().counters;
        let slots = self.map.slots();
        // Engine-only writer (see `Counters::seq`): odd, then the values.
        let seq = c.seq.load(Ordering::Relaxed);
        c.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // Keeps the value stores below after the odd store; pairs with the
        // reader's acquire fence before its second load of `seq`.
        fence(Ordering::Release);
        let mut i = 0;
        each_counter(v.stats, v.nic, v.ring, thread_cpu_us, |_, _, _, value| {
            if let Some(slot) = slots.get(i) {
                slot.value.store(value, Ordering::Relaxed);
            }
            i += 1;
        });
        c.publishes.fetch_add(1, Ordering::Relaxed);
        c.engine_us.store(now_us, Ordering::Relaxed);
        c.wall_us.store(wall_us(), Ordering::Relaxed);
        // Even again: pairs with the reader's acquire load of `seq`.
        c.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Whether a reader asked for the connection table (looked at every
    /// [`REQUEST_POLL_US`]); starts a walk if so. Returns whether a walk is
    /// in progress.
    pub(crate) fn poll_request(&mut self, now_us: u64) -> bool {
        if self.walk.is_some() {
            return true;
        }
        if now_us < self.next_poll_us {
            return false;
        }
        self.next_poll_us = now_us.saturating_add(REQUEST_POLL_US);
        let h = self.map.header();
        // Pairs with the readers' fetch_add (release).
        let request = h.request.conns.load(Ordering::Acquire);
        if request == h.conn.served.load(Ordering::Relaxed) {
            return false;
        }
        // Engine-only writer: odd for the whole walk.
        let seq = h.conn.seq.load(Ordering::Relaxed);
        h.conn.seq.store(seq | 1, Ordering::Relaxed);
        // Keeps the row stores of the walk after the odd store.
        fence(Ordering::Release);
        self.walk = Some(Walk {
            request,
            slot: 0,
            row: 0,
        });
        true
    }

    /// Walks on through up to [`WALK_PER_STEP`] connection slots, `describe`
    /// giving each slot's connection (`None`: free; past the last slot the
    /// walk ends). `live`: connections live now.
    pub(crate) fn walk(
        &mut self,
        slots: usize,
        live: usize,
        now_us: u64,
        mut describe: impl FnMut(usize) -> Option<ConnInfo>,
    ) {
        let Some(mut w) = self.walk else { return };
        let rows = self.map.rows();
        let end = slots.min(w.slot + WALK_PER_STEP);
        while w.slot < end && w.row < self.rows {
            if let Some(c) = describe(w.slot) {
                for (word, v) in rows[w.row].words.iter().zip(c.to_words()) {
                    word.store(v, Ordering::Relaxed);
                }
                w.row += 1;
            }
            w.slot += 1;
        }
        if w.slot < slots && w.row < self.rows {
            self.walk = Some(w);
            return;
        }
        let h = &self.map.header().conn;
        h.rows.store(w.row as u64, Ordering::Relaxed);
        h.live.store(live as u64, Ordering::Relaxed);
        h.engine_us.store(now_us, Ordering::Relaxed);
        h.served.store(w.request, Ordering::Relaxed);
        // Even: the table is complete. Pairs with the reader's acquire load.
        let seq = h.seq.load(Ordering::Relaxed);
        h.seq.store(seq.wrapping_add(1), Ordering::Release);
        self.walk = None;
    }

    /// Sets the next due time after a publication at `now_us`.
    pub(crate) fn reschedule(&mut self, now_us: u64) {
        self.due_us = if self.walk.is_some() {
            now_us
        } else {
            self.next_counters_us.min(self.next_poll_us)
        };
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn name_slot(slot: &CounterSlot, group: Group, name: &str, kind: Kind) {
    for (w, v) in slot.name.iter().zip(pack::<{ NAME_LEN / 8 }>(name)) {
        w.store(v, Ordering::Relaxed);
    }
    let kind = match kind {
        Kind::Counter => 0u64,
        Kind::Gauge => 1,
    };
    slot.meta
        .store(group as u64 | (kind << 8), Ordering::Relaxed);
}

/// Ring statistics of zeros but for `overflowed_total` (the slots' names
/// at creation; tests).
fn ring_with_overflows(overflowed_total: u64) -> RingStats {
    RingStats {
        backing: ringline_ring::mem::Backing::Normal,
        sq_entries: 0,
        cq_entries: 0,
        overflowed_total,
        backlog_len: 0,
        backlog_high_water: 0,
        sq_dropped: 0,
    }
}

/// Wall-clock µs since the Unix epoch (read at most every `stat_interval`:
/// a vDSO call).
pub(crate) fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

const _: () = assert!(CONN_WORDS == 16);

#[cfg(test)]
mod tests {
    use super::super::COUNTER_SLOTS;
    use super::*;

    #[test]
    fn every_counter_fits_in_the_page() {
        let mut n = 0;
        let zero = ring_with_overflows(0);
        each_counter(
            &EngineStats::default(),
            &NicCounters::default(),
            &zero,
            0,
            |_, name, _, _| {
                assert!(name.len() <= NAME_LEN, "{name}");
                n += 1;
            },
        );
        // Room for more: three quarters of the slots at most.
        assert!(n <= COUNTER_SLOTS * 3 / 4, "{n} counters");
    }

    /// A reader copying while the engine rewrites: every copy it accepts
    /// is one publication (all the values written together are equal).
    #[test]
    fn a_reader_never_sees_a_torn_publication() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let mut p = Publisher::create(4, 1, (0, 1)).expect("create");
        let path = p.path().to_owned();
        let reader = super::super::StatReader::open(&path).expect("open");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let r = std::thread::spawn(move || {
            let (mut ok, mut last) = (0u64, 0u64);
            while !stop2.load(Ordering::Relaxed) {
                // A writer that never pauses may outrun every try: Busy,
                // never a torn copy.
                let Ok(s) = reader.snapshot() else { continue };
                let v = s.get(Group::Engine, "steps").unwrap();
                for (g, n) in [
                    (Group::Engine, "sqes"),
                    (Group::Engine, "rx_frames"),
                    (Group::Engine, "idle_sleep_us"),
                    (Group::Nic, "tx_bytes"),
                    (Group::Ring, "cq_overflowed"),
                    (Group::Thread, "cpu_us"),
                ] {
                    assert_eq!(s.get(g, n), Some(v), "{n} torn from steps");
                }
                assert!(v >= last, "went back");
                last = v;
                ok += 1;
            }
            ok
        });
        for v in 1..=200_000u64 {
            let stats = EngineStats {
                steps: v,
                sqes: v,
                rx_frames: v,
                idle_sleep_us: v,
                ..EngineStats::default()
            };
            let nic = NicCounters {
                tx_bytes: v,
                ..NicCounters::default()
            };
            let ring = ring_with_overflows(v);
            let values = Values {
                stats: &stats,
                nic: &nic,
                ring: &ring,
            };
            assert!(p.counters_due(v));
            p.publish_counters(&values, v, v);
            if v % 512 == 0 {
                std::thread::yield_now();
            }
        }
        // Let the reader make a copy of the last publication at least.
        std::thread::sleep(std::time::Duration::from_millis(20));
        stop.store(true, Ordering::Relaxed);
        let copies = r.join().expect("reader");
        assert!(copies > 0);
        drop(p);
        assert!(!path.exists());
    }
}
