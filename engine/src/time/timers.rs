//! Per-key timers (event time or processing time), deduplicated per key and
//! timestamp like Flink's timer service, snapshotted by key group.

use std::collections::{BTreeMap, HashSet};

use crate::error::Result;
use crate::state::codec::StateCodec;
use crate::state::key_group::{FastBuildHasher, key_group_of};
use crate::state::keyed::Key;

/// A queue of `(timestamp, key)` timers.
#[derive(Debug)]
pub struct TimerQueue<K> {
    by_time: BTreeMap<i64, HashSet<K, FastBuildHasher>>,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue {
            by_time: BTreeMap::new(),
        }
    }
}

impl<K: Key> TimerQueue<K> {
    /// Registers a timer; registering the same `(time, key)` twice keeps one.
    pub fn register(&mut self, time: i64, key: K) {
        self.by_time.entry(time).or_default().insert(key);
    }

    /// Deletes a timer if present.
    pub fn delete(&mut self, time: i64, key: &K) {
        if let Some(set) = self.by_time.get_mut(&time) {
            set.remove(key);
            if set.is_empty() {
                self.by_time.remove(&time);
            }
        }
    }

    /// Keeps the timers of the keys `keep` says yes to.
    pub fn retain_keys(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.by_time.retain(|_, keys| {
            keys.retain(|k| keep(k));
            !keys.is_empty()
        });
    }

    /// The earliest timer time.
    pub fn next_time(&self) -> Option<i64> {
        self.by_time.keys().next().copied()
    }

    /// Removes and returns the earliest timers with time `<= up_to`, in time order.
    pub fn pop_due(&mut self, up_to: i64) -> Vec<(i64, K)> {
        let mut out = Vec::new();
        while let Some(entry) = self.by_time.first_entry() {
            if *entry.key() > up_to {
                break;
            }
            let (t, keys) = entry.remove_entry();
            out.extend(keys.into_iter().map(|k| (t, k)));
        }
        out
    }

    /// Number of timers.
    pub fn len(&self) -> usize {
        self.by_time.values().map(|s| s.len()).sum()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }

    /// One byte string per key group (groups by key hash).
    pub fn snapshot(&self, max_parallelism: u16) -> BTreeMap<u16, Vec<u8>> {
        self.snapshot_by(|k| key_group_of(k, max_parallelism).0)
    }

    /// One byte string per key group, `group` naming each key's.
    pub fn snapshot_by(&self, group: impl Fn(&K) -> u16) -> BTreeMap<u16, Vec<u8>> {
        let mut per: BTreeMap<u16, Vec<(i64, K)>> = BTreeMap::new();
        for (t, keys) in &self.by_time {
            for k in keys {
                per.entry(group(k)).or_default().push((*t, k.clone()));
            }
        }
        per.into_iter()
            .map(|(kg, v)| {
                let mut buf = Vec::new();
                v.encode(&mut buf);
                (kg, buf)
            })
            .collect()
    }

    /// Restores timers of one key group.
    pub fn restore_group(&mut self, mut bytes: &[u8]) -> Result<()> {
        for (t, k) in Vec::<(i64, K)>::decode(&mut bytes)? {
            self.register(t, k);
        }
        Ok(())
    }
}
