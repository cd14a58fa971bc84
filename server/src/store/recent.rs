//! A few seconds' memory of hot rows that change rarely and are read on every API call
//! (which secret key belongs to whom, which rails a merchant switched on).
//!
//! Each entry lives at most [`FRESH_FOR`]: a change made through this process clears the
//! whole memory once it is written, and one made elsewhere (another instance, the CLI)
//! is seen within that time. A reading that began before a clear is never remembered
//! after it (the clear moves the generation on, and a reading carries the generation it
//! began in), so a revoked key cannot slip back in from a request that raced the revoke.
//! Only secret keys that exist are remembered, never a miss, so a caller trying made-up
//! keys cannot fill it; and it is bounded anyway.

use std::{
    borrow::Borrow,
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long a remembered row is believed without asking the database again.
pub const FRESH_FOR: Duration = Duration::from_secs(2);

/// Entries kept at most (then the stale ones go, or all of them).
const CAPACITY: usize = 10_000;

pub(crate) struct Recent<K, V> {
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    rows: HashMap<K, (V, Instant)>,
    /// Moved on by every [`Recent::clear`].
    generation: u64,
}

/// When a reading of the database began: what [`Recent::put`] needs to know that no
/// change through this process came since, and how long the row may be kept.
#[derive(Clone, Copy)]
pub(crate) struct Reading {
    generation: u64,
    began: Instant,
}

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent {
            inner: Mutex::new(Inner {
                rows: HashMap::new(),
                generation: 0,
            }),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The row, while it is fresh.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock()
            .rows
            .get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(v, _)| v.clone())
    }

    /// Call before reading the database for a row to [`Recent::put`].
    pub(crate) fn begin(&self) -> Reading {
        Reading {
            generation: self.lock().generation,
            began: Instant::now(),
        }
    }

    /// Remembers a row read since `reading` began, for at most [`FRESH_FOR`] from then
    /// and never past `at_most` from then (a key's end, say) — unless something was
    /// cleared meanwhile.
    pub(crate) fn put(&self, reading: Reading, key: K, value: V, at_most: Option<Duration>) {
        let life = at_most.map_or(FRESH_FOR, |d| d.min(FRESH_FOR));
        let until = reading.began + life;
        let now = Instant::now();
        if until <= now {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != reading.generation {
            return; // a change came while it was read: the reading may be the old row
        }
        if inner.rows.len() >= CAPACITY {
            inner.rows.retain(|_, (_, until)| now < *until);
            if inner.rows.len() >= CAPACITY {
                inner.rows.clear();
            }
        }
        inner.rows.insert(key, (value, until));
    }

    /// Forgets everything, and any reading under way (after a change through this
    /// process is written).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.rows.clear();
        inner.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_believed_only_while_fresh_and_never_past_its_end() {
        let recent: Recent<&str, u32> = Recent::default();
        recent.put(recent.begin(), "a", 1, None);
        assert_eq!(recent.get(&"a"), Some(1));
        recent.put(recent.begin(), "b", 2, Some(Duration::ZERO));
        assert_eq!(
            recent.get(&"b"),
            None,
            "a key already at its end is not kept"
        );
        recent.put(recent.begin(), "c", 3, Some(Duration::from_millis(20)));
        assert_eq!(recent.get(&"c"), Some(3));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(recent.get(&"c"), None, "kept no longer than the key lives");
        assert_eq!(recent.get(&"a"), Some(1));
        recent.clear();
        assert_eq!(recent.get(&"a"), None);
    }

    #[test]
    fn a_reading_that_raced_a_change_is_not_remembered() {
        let recent: Recent<&str, u32> = Recent::default();
        // A request reads the key's row; the key is revoked (and the memory cleared)
        // before the request gets to remember what it read.
        let reading = recent.begin();
        recent.clear();
        recent.put(reading, "key", 1, None);
        assert_eq!(recent.get(&"key"), None);
        // A key's end is counted from when the reading began, not when it finished.
        let reading = recent.begin();
        std::thread::sleep(Duration::from_millis(30));
        recent.put(reading, "late", 2, Some(Duration::from_millis(20)));
        assert_eq!(recent.get(&"late"), None);
    }

    #[test]
    fn it_stays_bounded() {
        let recent: Recent<usize, usize> = Recent::default();
        for i in 0..CAPACITY + 10 {
            recent.put(recent.begin(), i, i, None);
        }
        assert!(recent.lock().rows.len() <= CAPACITY);
        assert_eq!(recent.get(&(CAPACITY + 9)), Some(CAPACITY + 9));
    }
}
