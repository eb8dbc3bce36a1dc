//! Loaded (compiled and pre-linked) components in memory, by content hash. Bounded: past [`CAPACITY`] entries the
//! least recently used ones that nobody holds are dropped — an author rebuilding a component against a
//! long-running server would otherwise keep every version's machine code (tens of MB for a Python policy). A
//! dropped component comes back from the disk cache in milliseconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Components kept in memory beyond those in use.
pub(crate) const CAPACITY: usize = 32;

pub(crate) struct Loaded<T> {
    entries: Mutex<Entries<T>>,
}

/// The entries and the use counter.
type Entries<T> = (u64, HashMap<[u8; 32], Entry<T>>);

struct Entry<T> {
    component: Arc<T>,
    /// When it was last asked for (a counter, not a clock).
    used: u64,
}

impl<T> Default for Loaded<T> {
    fn default() -> Self {
        Loaded { entries: Mutex::new((0, HashMap::new())) }
    }
}

impl<T> Loaded<T> {
    pub(crate) fn get(&self, digest: &[u8; 32]) -> Option<Arc<T>> {
        let mut guard = self.entries.lock().unwrap();
        let (clock, entries) = &mut *guard;
        *clock += 1;
        let entry = entries.get_mut(digest)?;
        entry.used = *clock;
        Some(entry.component.clone())
    }

    pub(crate) fn insert(&self, digest: [u8; 32], component: Arc<T>) {
        let mut guard = self.entries.lock().unwrap();
        let (clock, entries) = &mut *guard;
        *clock += 1;
        entries.insert(digest, Entry { component, used: *clock });
        if entries.len() > CAPACITY {
            let mut idle: Vec<([u8; 32], u64)> = entries
                .iter()
                .filter(|(_, e)| Arc::strong_count(&e.component) == 1)
                .map(|(d, e)| (*d, e.used))
                .collect();
            idle.sort_by_key(|(_, used)| *used);
            let excess = entries.len() - CAPACITY;
            for (digest, _) in idle.into_iter().take(excess) {
                entries.remove(&digest);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().1.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_capacity_the_least_recently_used_idle_components_go() {
        let loaded = Loaded::default();
        let held: Vec<Arc<u32>> = (0..4).map(Arc::new).collect();
        for (i, h) in held.iter().enumerate() {
            loaded.insert([i as u8; 32], h.clone());
        }
        for i in 4..CAPACITY as u8 + 10 {
            loaded.insert([i; 32], Arc::new(i as u32));
            // The first idle one stays in use by being asked for.
            assert!(loaded.get(&[4; 32]).is_some());
        }
        assert_eq!(loaded.len(), CAPACITY);
        for i in 0..4u8 {
            assert!(loaded.get(&[i; 32]).is_some(), "held components stay");
        }
        assert!(loaded.get(&[4; 32]).is_some(), "recently used stays");
        assert!(loaded.get(&[5; 32]).is_none(), "the oldest idle one went");
        assert!(loaded.get(&[CAPACITY as u8 + 9; 32]).is_some(), "the newest stays");
    }
}
