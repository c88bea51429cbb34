//! Key groups: the unit in which keyed state is partitioned, moved and snapshotted.
//!
//! A key is hashed with a stable hash (independent of the process and of Rust's
//! `RandomState`) into one of `max_parallelism` key groups; a contiguous range of key
//! groups belongs to each parallel subtask. Rescaling a job moves whole key groups, so
//! a snapshot is stored per key group. The formulas are Flink's, so a Flink user can
//! reason about them the same way:
//!
//! ```text
//! key --stable_hash--> h --mix % max_parallelism--> key group g
//! g --(g * parallelism / max_parallelism)--> subtask
//! ```

use std::hash::{BuildHasher, Hash, Hasher};

/// A key group index in `0..max_parallelism`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyGroup(pub u16);

/// A half-open range of key groups `[start, end)` owned by one subtask.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct KeyGroupRange {
    /// First key group in the range.
    pub start: u16,
    /// One past the last key group.
    pub end: u16,
}

impl KeyGroupRange {
    /// The key groups subtask `subtask` of `parallelism` owns.
    ///
    /// ```
    /// use engine::KeyGroupRange;
    /// let r0 = KeyGroupRange::for_subtask(0, 2, 128);
    /// let r1 = KeyGroupRange::for_subtask(1, 2, 128);
    /// assert_eq!((r0.start, r0.end, r1.start, r1.end), (0, 64, 64, 128));
    /// ```
    pub fn for_subtask(subtask: usize, parallelism: usize, max_parallelism: u16) -> Self {
        let max = usize::from(max_parallelism);
        let p = parallelism.max(1);
        let start = (subtask * max).div_ceil(p);
        let end = ((subtask + 1) * max).div_ceil(p);
        KeyGroupRange {
            start: start.min(max) as u16,
            end: end.min(max) as u16,
        }
    }

    /// Whether `kg` lies in the range.
    pub fn contains(&self, kg: KeyGroup) -> bool {
        kg.0 >= self.start && kg.0 < self.end
    }

    /// Number of key groups in the range.
    pub fn len(&self) -> usize {
        usize::from(self.end.saturating_sub(self.start))
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Maps a key to its key group when key groups are not key hashes (keys
/// partitioned at the source: the key group is the key's source partition).
pub type KeyGroupFn<K> = std::sync::Arc<dyn Fn(&K) -> KeyGroup + Send + Sync>;

/// How the source partitioned its records by key: the partition of a key's bytes
/// (for Kafka, the default partitioner: murmur2 of the key modulo the partition
/// count). Set with [`crate::PipelineConfig::source_partitioner`]; used by
/// [`crate::DataStream::key_by_source_partition`].
#[derive(Clone)]
pub struct SourcePartitioner(pub PartitionOf);

/// The partition of a key's bytes.
pub type PartitionOf = std::sync::Arc<dyn Fn(&[u8]) -> u16 + Send + Sync>;

impl std::fmt::Debug for SourcePartitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourcePartitioner")
    }
}

/// The subtask that owns key group `kg`.
#[inline]
pub fn subtask_for_key_group(kg: KeyGroup, parallelism: usize, max_parallelism: u16) -> usize {
    usize::from(kg.0) * parallelism / usize::from(max_parallelism)
}

/// The key group of a stable key hash.
#[inline]
pub fn key_group_for_hash(hash: u64, max_parallelism: u16) -> KeyGroup {
    KeyGroup((hash % u64::from(max_parallelism.max(1))) as u16)
}

/// The key group of a key.
#[inline]
pub fn key_group_of<K: Hash + ?Sized>(key: &K, max_parallelism: u16) -> KeyGroup {
    key_group_for_hash(stable_hash(key), max_parallelism)
}

/// The key group of a key: from `grouper` when keys follow source partitions,
/// else by hash.
#[inline]
pub fn key_group_by<K: Hash>(
    grouper: Option<&KeyGroupFn<K>>,
    key: &K,
    max_parallelism: u16,
) -> KeyGroup {
    match grouper {
        Some(g) => g(key),
        None => key_group_of(key, max_parallelism),
    }
}

/// Stable 64-bit hash of a key: same value in every process and run, so key groups
/// (and therefore snapshots) stay valid across restarts.
#[inline]
pub fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = StableHasher::default();
    key.hash(&mut h);
    h.finish()
}

/// A fast, deterministic, non-cryptographic hasher (multiply-rotate per word, murmur3
/// finalizer). Integers are hashed by value, not by native byte order.
#[derive(Default, Clone, Copy)]
pub struct StableHasher {
    state: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl StableHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for StableHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let mut k = self.state;
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^ (k >> 33)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            self.add(u64::from_le_bytes(a));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut a = [0u8; 8];
            a[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(a) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i))
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i))
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i))
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i)
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64)
    }
    #[inline]
    fn write_i8(&mut self, i: i8) {
        self.add(i as u64)
    }
    #[inline]
    fn write_i16(&mut self, i: i16) {
        self.add(i as u64)
    }
    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.add(i as u64)
    }
    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64)
    }
}

/// `BuildHasher` for the engine's internal hash maps: a [`StableHasher`] that
/// starts from its own seed. A map of one key group holds keys whose
/// [`stable_hash`] is the same modulo the max parallelism, so with that hash
/// the keys would share the low bits that pick their bucket and crowd a
/// fraction of the table.
#[derive(Default, Clone, Copy, Debug)]
pub struct FastBuildHasher;

/// The first state of a [`FastBuildHasher`]'s hashers.
const MAP_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

impl BuildHasher for FastBuildHasher {
    type Hasher = StableHasher;

    #[inline]
    fn build_hasher(&self) -> StableHasher {
        StableHasher { state: MAP_SEED }
    }
}

/// A `HashMap` using [`FastBuildHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastBuildHasher>;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_keys_of_one_key_group_spread_over_a_maps_low_bits() {
        let keys: Vec<u64> = (0..200_000u64)
            .filter(|k| key_group_of(k, 128) == KeyGroup(5))
            .collect();
        assert!(keys.len() > 1000);
        let low_bits = |hash: &dyn Fn(&u64) -> u64| {
            let seen: BTreeSet<u64> = keys.iter().map(|k| hash(k) & 127).collect();
            seen.len()
        };
        assert_eq!(low_bits(&|k| stable_hash(k)), 1);
        assert!(low_bits(&|k| FastBuildHasher.hash_one(k)) > 120);
    }

    #[test]
    fn every_key_group_has_exactly_one_owner() {
        for par in 1..=7 {
            for kg in 0..128u16 {
                let owner = subtask_for_key_group(KeyGroup(kg), par, 128);
                let owners: Vec<usize> = (0..par)
                    .filter(|s| KeyGroupRange::for_subtask(*s, par, 128).contains(KeyGroup(kg)))
                    .collect();
                assert_eq!(owners, vec![owner], "par {par} kg {kg}");
            }
        }
    }

    #[test]
    fn hash_is_stable_across_calls() {
        assert_eq!(stable_hash(&42u64), stable_hash(&42u64));
        assert_eq!(stable_hash("abc"), stable_hash(&String::from("abc")));
        assert_ne!(stable_hash(&1u64), stable_hash(&2u64));
    }
}
