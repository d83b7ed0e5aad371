//! [`IdMap`]: the context table's map from context id to context, made for the ids a host
//! hands out.
//!
//! Envoy numbers contexts with one counter per VM, so the live ones are mostly a run of
//! consecutive ids. Open addressing with the id's low bits as its slot puts such a run in
//! consecutive slots: a lookup is one probe and a compare, where a general hash map hashes
//! and scans a control group (about five times the work in wasm, where it runs on every
//! phase of every stream). Collisions (a long-lived stream whose id the counter has lapped)
//! probe linearly; the table stays at most half full, and a removal shifts the entries after
//! it back, so there are no tombstones and a probe always ends at an empty slot.

/// A map from `u32` ids to `V`.
#[derive(Debug)]
pub(super) struct IdMap<V> {
    /// Empty, or a power of two long.
    slots: Vec<Option<(u32, V)>>,
    len: usize,
}

/// The first capacity (a root and a few streams fit without growing).
const MIN_SLOTS: usize = 16;

impl<V> IdMap<V> {
    pub(super) const fn new() -> Self {
        IdMap {
            slots: Vec::new(),
            len: 0,
        }
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    #[inline(always)]
    fn home(&self, id: u32) -> usize {
        usize::try_from(id).unwrap_or(usize::MAX) & self.mask()
    }

    /// The slot holding `id`.
    #[inline(always)]
    fn find(&self, id: u32) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(id);
        // Never full, so an empty slot ends the probe.
        loop {
            match self.slots.get(i)? {
                Some((k, _)) if *k == id => return Some(i),
                Some(_) => i = (i + 1) & mask,
                None => return None,
            }
        }
    }

    #[inline(always)]
    pub(super) fn get(&self, id: u32) -> Option<&V> {
        let i = self.find(id)?;
        self.slots.get(i)?.as_ref().map(|(_, v)| v)
    }

    #[cfg(test)]
    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut V> {
        let i = self.find(id)?;
        self.slots.get_mut(i)?.as_mut().map(|(_, v)| v)
    }

    /// Inserts or replaces; answers the value replaced.
    #[inline(always)] // once per stream: the probe is a few instructions, the call was more
    pub(super) fn insert(&mut self, id: u32, value: V) -> Option<V> {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.mask();
        let mut i = self.home(id);
        loop {
            let slot = self.slots.get_mut(i)?;
            match slot {
                Some((k, v)) if *k == id => return Some(std::mem::replace(v, value)),
                Some(_) => i = (i + 1) & mask,
                None => {
                    *slot = Some((id, value));
                    self.len += 1;
                    return None;
                }
            }
        }
    }

    /// Removes `id`, shifting back the entries that probed past its slot.
    pub(super) fn remove(&mut self, id: u32) -> Option<V> {
        let mut hole = self.find(id)?;
        let (_, removed) = self.slots.get_mut(hole)?.take()?;
        self.len -= 1;
        let mask = self.mask();
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            let home = match self.slots.get(next) {
                Some(Some((k, _))) => self.home(*k),
                _ => break,
            };
            // The entry at `next` may fill the hole if the hole lies on its probe path,
            // i.e. between its home slot and `next` (cyclically).
            if hole.wrapping_sub(home) & mask < next.wrapping_sub(home) & mask {
                let moved = self.slots.get_mut(next).and_then(Option::take);
                if let Some(slot) = self.slots.get_mut(hole) {
                    *slot = moved;
                }
                hole = next;
            }
        }
        Some(removed)
    }

    /// Removes every entry; answers their values.
    pub(super) fn take_all(&mut self) -> Vec<V> {
        self.len = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .map(|(_, v)| v)
            .collect()
    }

    /// Doubles the slots (at least [`MIN_SLOTS`]) and re-homes every entry.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, Vec::with_capacity(size));
        self.slots.resize_with(size, || None);
        self.len = 0;
        for (id, value) in old.into_iter().flatten() {
            let _ = self.insert(id, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IdMap;
    use std::collections::HashMap;

    #[test]
    fn sequential_ids_and_reuse_of_slots() {
        let mut m = IdMap::new();
        assert_eq!(m.get(1), None);
        assert_eq!(m.remove(1), None);
        for id in 1..=100u32 {
            assert_eq!(m.insert(id, id * 10), None);
        }
        assert_eq!(m.insert(7, 7), Some(70));
        assert_eq!(m.get(7), Some(&7));
        for id in 2..=100u32 {
            assert!(m.remove(id).is_some());
        }
        assert_eq!(m.get(1), Some(&10));
        assert_eq!(m.get(50), None);
        if let Some(v) = m.get_mut(1) {
            *v = 11;
        }
        assert_eq!(m.get(1), Some(&11));
    }

    /// Against std's map, with ids that collide (multiples of the table size), wrap around
    /// the end of the table, and a long-lived entry the others lap.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut m = IdMap::new();
        let mut want = HashMap::new();
        let mut x: u32 = 12345;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let id = match x % 4 {
                0 => step,
                1 => (x % 8) * 16,
                2 => u32::MAX - (x % 40),
                _ => x % 64,
            };
            if x % 3 == 0 {
                assert_eq!(m.remove(id), want.remove(&id), "remove {id} at {step}");
            } else {
                assert_eq!(m.insert(id, step), want.insert(id, step), "insert {id}");
            }
            assert_eq!(m.len, want.len());
        }
        for (id, v) in &want {
            assert_eq!(m.get(*id), Some(v));
        }
        for id in 0..200u32 {
            assert_eq!(m.get(id), want.get(&id));
        }
    }
}
