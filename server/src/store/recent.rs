//! A few seconds' memory of hot rows that change rarely and are read on every API call
//! (which secret key belongs to whom, which rails a merchant switched on).
//!
//! Each entry lives at most [`FRESH_FOR`]: a change made through this process clears the
//! whole memory at once, and one made elsewhere (another instance, the CLI) is seen
//! within that time. Only rows that exist are remembered, never a miss, so a caller
//! trying made-up keys cannot fill it; and it is bounded anyway.

use std::{
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
    rows: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent {
            rows: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    /// The row, while it is fresh.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(v, _)| v.clone())
    }

    /// Remembers a row read from the database, for at most [`FRESH_FOR`] and never
    /// past `at_most` (a key's end, say).
    pub(crate) fn put(&self, key: K, value: V, at_most: Option<Duration>) {
        let life = at_most.map_or(FRESH_FOR, |d| d.min(FRESH_FOR));
        if life.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if rows.len() >= CAPACITY {
            rows.retain(|_, (_, until)| now < *until);
            if rows.len() >= CAPACITY {
                rows.clear();
            }
        }
        rows.insert(key, (value, now + life));
    }

    /// Forgets everything (after a change through this process).
    pub(crate) fn clear(&self) {
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_believed_only_while_fresh_and_never_past_its_end() {
        let recent: Recent<&str, u32> = Recent::default();
        recent.put("a", 1, None);
        assert_eq!(recent.get(&"a"), Some(1));
        recent.put("b", 2, Some(Duration::ZERO));
        assert_eq!(
            recent.get(&"b"),
            None,
            "a key already at its end is not kept"
        );
        recent.put("c", 3, Some(Duration::from_millis(20)));
        assert_eq!(recent.get(&"c"), Some(3));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(recent.get(&"c"), None, "kept no longer than the key lives");
        assert_eq!(recent.get(&"a"), Some(1));
        recent.clear();
        assert_eq!(recent.get(&"a"), None);
    }

    #[test]
    fn it_stays_bounded() {
        let recent: Recent<usize, usize> = Recent::default();
        for i in 0..CAPACITY + 10 {
            recent.put(i, i, None);
        }
        assert!(recent.rows.lock().unwrap().len() <= CAPACITY);
        assert_eq!(recent.get(&(CAPACITY + 9)), Some(CAPACITY + 9));
    }
}
