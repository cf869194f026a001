//! One slab type for the engine's tables (connections, listeners, socket
//! numbers, ops, chains): values in a `Vec`, freed slots on a LIFO free list
//! so the most recently freed (cache-warm) slot is reused first. The slab
//! does not know which slots are occupied; each table marks that in its
//! values (a phase, a `live` flag). Freed values stay in place, so a table
//! can recycle what a slot holds (a connection's socket and buffers).

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    items: Vec<T>,
    free: Vec<u32>,
    live: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T> Slab<T> {
    /// A slab with room for `cap` values before it grows.
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Slab {
            items: Vec::with_capacity(cap),
            free: Vec::with_capacity(cap),
            live: 0,
        }
    }

    /// Adds `n` free slots made by `make`, handed out lowest first.
    pub(crate) fn prefill(&mut self, n: usize, mut make: impl FnMut(usize) -> T) {
        let base = self.items.len();
        self.items.reserve(n);
        for i in base..base + n {
            self.items.push(make(i));
        }
        self.free.extend((base..base + n).rev().map(|i| i as u32));
    }

    /// Stores `v` in a free slot (overwriting what it held) or a new one.
    pub(crate) fn insert(&mut self, v: T) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = v;
                i as usize
            }
            None => {
                self.items.push(v);
                self.items.len() - 1
            }
        }
    }

    /// Stores `make(previous)` in a free slot, where `previous` is what the
    /// slot held, or `make(None)` in a new slot: one write either way.
    #[inline]
    pub(crate) fn insert_with(&mut self, make: impl FnOnce(Option<&T>) -> T) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(i) => {
                let slot = &mut self.items[i as usize];
                *slot = make(Some(slot));
                i as usize
            }
            None => {
                self.items.push(make(None));
                self.items.len() - 1
            }
        }
    }

    /// Takes a free slot keeping what it holds, or a new slot made by `make`.
    pub(crate) fn recycle_or(&mut self, make: impl FnOnce(usize) -> T) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.items.push(make(self.items.len()));
                self.items.len() - 1
            }
        }
    }

    /// Returns slot `i` to the free list (its value stays until reused).
    pub(crate) fn release(&mut self, i: usize) {
        debug_assert!(i < self.items.len() && !self.free.contains(&(i as u32)));
        self.free.push(i as u32);
        self.live -= 1;
    }

    /// Occupied slots.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Slots made so far, occupied or free.
    pub(crate) fn slots(&self) -> usize {
        self.items.len()
    }

    /// The value at `i` (occupied or not).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        self.items.get(i)
    }

    /// The value at `i`; panics if `i` was never a slot.
    #[inline]
    pub(crate) fn at(&self, i: usize) -> &T {
        &self.items[i]
    }

    /// The value at `i`, mutably; panics if `i` was never a slot.
    #[inline]
    pub(crate) fn at_mut(&mut self, i: usize) -> &mut T {
        &mut self.items[i]
    }

    /// Every slot's value with its index, occupied or free, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.items.iter().enumerate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifo_reuse_and_counts() {
        let mut s = Slab::default();
        let a = s.insert('a');
        let b = s.insert('b');
        assert_eq!((a, b, s.live()), (0, 1, 2));
        s.release(a);
        assert_eq!(s.live(), 1);
        assert_eq!(s.insert('c'), a, "the freed slot first");
        assert_eq!(*s.at(a), 'c');
    }

    #[test]
    fn insert_with_sees_what_the_reused_slot_held() {
        let mut s = Slab::default();
        assert_eq!(s.insert_with(|old| old.copied().unwrap_or(0) + 1), 0);
        assert_eq!(*s.at(0), 1);
        s.release(0);
        assert_eq!(s.insert_with(|old| old.copied().unwrap_or(0) + 1), 0);
        assert_eq!(*s.at(0), 2, "made from the freed value");
        assert_eq!(s.live(), 1);
    }

    #[test]
    fn prefill_hands_out_lowest_first_and_recycle_keeps_values() {
        let mut s = Slab::default();
        let mut n = 0;
        s.prefill(3, |_| {
            n += 1;
            n
        });
        assert_eq!(s.live(), 0);
        assert_eq!(s.recycle_or(|_| 99), 0);
        assert_eq!(*s.at(0), 1, "recycled slot keeps its value");
        assert_eq!(s.recycle_or(|_| 99), 1);
        assert_eq!(s.recycle_or(|_| 99), 2);
        assert_eq!(s.recycle_or(|_| 99), 3);
        assert_eq!(*s.at(3), 99);
        assert_eq!(s.live(), 4);
    }
}
