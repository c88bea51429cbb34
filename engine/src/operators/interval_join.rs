//! Interval join of two keyed streams: a left record `a` joins every right record
//! `b` of the same key with `a.ts + lower <= b.ts <= a.ts + upper`. Both sides are
//! buffered per key until the watermark guarantees no future partner can arrive.
//!
//! ```text
//! left  a@100, bounds [-5, +10]  joins right records in [95, 110]
//! watermark w: drop left with ts + upper < w, right with ts - lower < w
//! ```
//!
//! Each side keeps an index from expiry time to the keys holding an entry that
//! expires then, so a watermark visits only the keys with something to drop
//! instead of the whole state (a full scan per watermark made large states
//! quadratic).
//!
//! ```
//! use engine::{CollectSink, Pipeline, VecSource, WatermarkStrategy};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let p = Pipeline::new();
//! let sink = CollectSink::new();
//! let orders = p.source(VecSource::new(vec![(1u32, 100i64)]),
//!     WatermarkStrategy::monotonous().with_timestamp(|e: &(u32, i64)| e.1)).key_by(|e| e.0);
//! let payments = p.source(VecSource::new(vec![(1u32, 105i64), (1, 200)]),
//!     WatermarkStrategy::monotonous().with_timestamp(|e: &(u32, i64)| e.1)).key_by(|e| e.0);
//! orders.interval_join(payments, -5, 10, |o, pay| (o.1, pay.1)).sink(sink.clone());
//! p.run().await.unwrap();
//! assert_eq!(sink.values(), vec![(100, 105)]);
//! # });
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::checkpoint::{CheckpointBarrier, OperatorState};
use crate::error::Result;
use crate::operators::pane_window::KeyFn;
use crate::operators::windowing::late_dropped_counter;
use crate::operators::{Operator, OperatorInit, Output};
use crate::record::Record;
use crate::state::codec::decode_exact;
use crate::state::keyed::{Key, KeyGroupedMap, StateValue};

/// A value from the left or the right input of a two-input operator.
#[derive(Clone, Debug, PartialEq)]
pub enum Either<A, B> {
    /// From the left (first) input.
    Left(A),
    /// From the right (second) input.
    Right(B),
}

/// Notes that `key` has an entry expiring at `at`.
pub(crate) fn index<K: Clone + PartialEq>(expiry: &mut BTreeMap<i64, Vec<K>>, at: i64, key: &K) {
    let keys = expiry.entry(at).or_default();
    // A run of one key at one time is noted once.
    if keys.last() != Some(key) {
        keys.push(key.clone());
    }
}

/// `at` rounded up to a multiple of `tick` (saturating).
fn round_up(at: i64, tick: i64) -> i64 {
    match at.rem_euclid(tick) {
        0 => at,
        r => at.saturating_add(tick - r),
    }
}

/// Drops the entries whose expiry is below `watermark`, visiting only the keys
/// the index names for the expired times (one map lookup each).
pub(crate) fn expire<K: Key, V>(
    map: &mut KeyGroupedMap<K, Vec<(i64, V)>>,
    expiry: &mut BTreeMap<i64, Vec<K>>,
    watermark: i64,
    expires: impl Fn(i64) -> i64,
) {
    let keep = |v: &mut Vec<(i64, V)>| {
        v.retain(|(ts, _)| expires(*ts) >= watermark);
        !v.is_empty()
    };
    while let Some(entry) = expiry.first_entry() {
        if *entry.key() >= watermark {
            break;
        }
        for key in entry.remove() {
            map.update_or_remove(key, keep);
        }
    }
}

/// The state of a two-input keyed operator restored from `init`: per key group
/// the encoded left and right maps (what [`snapshot_sides`] writes).
#[allow(clippy::type_complexity)]
pub(crate) fn restore_sides<K: Key, L: StateValue, R: StateValue>(
    init: &OperatorInit,
) -> Result<(KeyGroupedMap<K, L>, KeyGroupedMap<K, R>)> {
    let mut left: KeyGroupedMap<K, L> = KeyGroupedMap::for_init(init);
    let mut right: KeyGroupedMap<K, R> = KeyGroupedMap::for_init(init);
    if let Some(s) = &init.restored {
        load_sides(&mut left, &mut right, s)?;
    }
    Ok((left, right))
}

/// Loads the key groups of `state` (written by [`snapshot_sides`]) into both
/// sides' maps; returns the keys loaded on each side.
pub(crate) fn load_sides<K: Key, L: StateValue, R: StateValue>(
    left: &mut KeyGroupedMap<K, L>,
    right: &mut KeyGroupedMap<K, R>,
    state: &OperatorState,
) -> Result<(Vec<K>, Vec<K>)> {
    let (mut lk, mut rk) = (Vec::new(), Vec::new());
    for bytes in state.key_groups.values() {
        let (l, r) = decode_exact::<(Vec<u8>, Vec<u8>)>(bytes)?;
        if !l.is_empty() {
            lk.extend(left.restore_group_keys(&l)?);
        }
        if !r.is_empty() {
            rk.extend(right.restore_group_keys(&r)?);
        }
    }
    Ok((lk, rk))
}

/// Both sides' maps as one byte string per key group: (left bytes, right bytes),
/// each side encoded in place (no intermediate copy of either).
/// Drops both sides' keys of `key_groups`. The expiry indexes keep them:
/// expiring a key that is not in its map does nothing.
pub(crate) fn release_sides<K: Key, L, R>(
    left: Option<&mut KeyGroupedMap<K, L>>,
    right: Option<&mut KeyGroupedMap<K, R>>,
    key_groups: &std::collections::BTreeSet<u16>,
) {
    if let Some(l) = left {
        l.release(key_groups);
    }
    if let Some(r) = right {
        r.release(key_groups);
    }
}

pub(crate) fn snapshot_sides<K: Key, L: StateValue, R: StateValue>(
    left: Option<&KeyGroupedMap<K, L>>,
    right: Option<&KeyGroupedMap<K, R>>,
) -> OperatorState {
    let mut groups = std::collections::BTreeSet::new();
    groups.extend(left.into_iter().flat_map(|l| l.non_empty_groups()));
    groups.extend(right.into_iter().flat_map(|r| r.non_empty_groups()));
    // What `encode_to_vec(&(left bytes, right bytes))` writes: each side as a
    // byte string, its u32 length first (empty for a side without the key group).
    fn side(buf: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) {
        let at = buf.len();
        buf.extend_from_slice(&[0; 4]);
        encode(buf);
        let len = u32::try_from(buf.len() - at - 4).unwrap_or(u32::MAX);
        buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    let key_groups = groups
        .into_iter()
        .map(|kg| {
            let mut buf = Vec::new();
            side(&mut buf, |b| {
                left.into_iter().for_each(|l| l.encode_group(kg, b))
            });
            side(&mut buf, |b| {
                right.into_iter().for_each(|r| r.encode_group(kg, b))
            });
            (kg, buf)
        })
        .collect();
    OperatorState {
        key_groups,
        entries: Default::default(),
    }
}

/// Interval join operator over the union of both inputs.
pub struct IntervalJoinOperator<K, A, B, F> {
    key_fn: KeyFn<K, Either<A, B>>,
    lower: i64,
    upper: i64,
    f: Arc<F>,
    left: Option<KeyGroupedMap<K, Vec<(i64, A)>>>,
    right: Option<KeyGroupedMap<K, Vec<(i64, B)>>>,
    /// Expiry time (ts + upper) -> keys with a left entry expiring then.
    left_expiry: BTreeMap<i64, Vec<K>>,
    /// Expiry time (ts - lower) -> keys with a right entry expiring then.
    right_expiry: BTreeMap<i64, Vec<K>>,
    /// Expiry times are rounded up to a multiple of this (ms): an entry may stay
    /// up to a tick past its expiry, and the index holds one slot per tick
    /// instead of one per millisecond.
    tick: i64,
    watermark: i64,
    late_dropped: Option<metrics::Counter>,
}

impl<K, A, B, F> IntervalJoinOperator<K, A, B, F> {
    pub(crate) fn new(key_fn: KeyFn<K, Either<A, B>>, lower: i64, upper: i64, f: Arc<F>) -> Self {
        IntervalJoinOperator {
            key_fn,
            lower,
            upper,
            f,
            left: None,
            right: None,
            left_expiry: BTreeMap::new(),
            right_expiry: BTreeMap::new(),
            tick: (upper.saturating_sub(lower) / 16).clamp(1, 1000),
            watermark: i64::MIN,
            late_dropped: None,
        }
    }
}

impl<K, A, B, O, F> Operator<Either<A, B>> for IntervalJoinOperator<K, A, B, F>
where
    K: Key,
    A: StateValue + Sync,
    B: StateValue + Sync,
    O: Send + 'static,
    F: Fn(&A, &B) -> O + Send + Sync + 'static,
{
    type Out = O;

    fn open(&mut self, init: &OperatorInit) -> Result<()> {
        self.late_dropped = Some(late_dropped_counter(init));
        let (left, right) = restore_sides::<K, Vec<(i64, A)>, Vec<(i64, B)>>(init)?;
        let (upper, lower, tick) = (self.upper, self.lower, self.tick);
        for (k, v) in left.iter() {
            for (ts, _) in v.iter() {
                let ts: i64 = *ts;
                index(
                    &mut self.left_expiry,
                    round_up(ts.saturating_add(upper), tick),
                    k,
                );
            }
        }
        for (k, v) in right.iter() {
            for (ts, _) in v.iter() {
                let ts: i64 = *ts;
                index(
                    &mut self.right_expiry,
                    round_up(ts.saturating_sub(lower), tick),
                    k,
                );
            }
        }
        self.left = Some(left);
        self.right = Some(right);
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<Record<Either<A, B>>>,
        out: &mut Output<'_, O>,
    ) -> Result<()> {
        let (Some(left), Some(right)) = (self.left.as_mut(), self.right.as_mut()) else {
            return Ok(());
        };
        for r in batch {
            let key = (self.key_fn)(&r.value);
            let ts = r.timestamp;
            if ts < self.watermark {
                // Late: every partner it could have had is already gone (as in Flink).
                if let Some(c) = &self.late_dropped {
                    c.increment(1);
                }
                continue;
            }
            match r.value {
                Either::Left(a) => {
                    if let Some(bs) = right.get(&key) {
                        let (lo, hi) =
                            (ts.saturating_add(self.lower), ts.saturating_add(self.upper));
                        for (bts, b) in bs {
                            if (lo..=hi).contains(bts) {
                                out.collect((self.f)(&a, b), ts.max(*bts));
                            }
                        }
                    }
                    let at = round_up(ts.saturating_add(self.upper), self.tick);
                    index(&mut self.left_expiry, at, &key);
                    let kg = left.key_group(&key);
                    left.group_mut(kg).entry(key).or_default().push((ts, a));
                }
                Either::Right(b) => {
                    if let Some(as_) = left.get(&key) {
                        for (ats, a) in as_ {
                            if ts >= ats.saturating_add(self.lower)
                                && ts <= ats.saturating_add(self.upper)
                            {
                                out.collect((self.f)(a, &b), ts.max(*ats));
                            }
                        }
                    }
                    let at = round_up(ts.saturating_sub(self.lower), self.tick);
                    index(&mut self.right_expiry, at, &key);
                    let kg = right.key_group(&key);
                    right.group_mut(kg).entry(key).or_default().push((ts, b));
                }
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, _out: &mut Output<'_, O>) -> Result<()> {
        self.watermark = watermark;
        let (upper, lower) = (self.upper, self.lower);
        if let Some(l) = self.left.as_mut() {
            expire(l, &mut self.left_expiry, watermark, |ts| {
                ts.saturating_add(upper)
            });
        }
        if let Some(r) = self.right.as_mut() {
            expire(r, &mut self.right_expiry, watermark, |ts| {
                ts.saturating_sub(lower)
            });
        }
        Ok(())
    }

    fn snapshot(&mut self, _barrier: &CheckpointBarrier) -> Result<OperatorState> {
        Ok(snapshot_sides(self.left.as_ref(), self.right.as_ref()))
    }

    fn release(&mut self, key_groups: &std::collections::BTreeSet<u16>) -> Result<bool> {
        release_sides(self.left.as_mut(), self.right.as_mut(), key_groups);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::{CollectSink, Pipeline, VecSource, WatermarkStrategy};

    /// The sides are encoded in place, in the layout of a `(Vec<u8>, Vec<u8>)`
    /// of each side's snapshot (what snapshots written before held).
    #[test]
    fn both_sides_snapshot_as_a_pair_of_byte_strings() {
        use super::{KeyGroupedMap, snapshot_sides};
        use crate::state::codec::encode_to_vec;
        use crate::state::key_group::KeyGroupRange;
        let range = KeyGroupRange::for_subtask(0, 1, 16);
        let mut left: KeyGroupedMap<u64, Vec<(i64, u64)>> = KeyGroupedMap::new(range, 16);
        let mut right: KeyGroupedMap<u64, Vec<(i64, String)>> = KeyGroupedMap::new(range, 16);
        for k in 0..40u64 {
            left.insert(k, vec![(k as i64, k * 3)]);
            if k % 3 == 0 {
                right.insert(k + 100, vec![(1, format!("r{k}")), (2, String::new())]);
            }
        }
        let state = snapshot_sides(Some(&left), Some(&right));
        let (l, r) = (left.snapshot(), right.snapshot());
        let groups: std::collections::BTreeSet<u16> = l.keys().chain(r.keys()).copied().collect();
        assert_eq!(state.key_groups.len(), groups.len());
        for kg in groups {
            let pair = (
                l.get(&kg).cloned().unwrap_or_default(),
                r.get(&kg).cloned().unwrap_or_default(),
            );
            assert_eq!(
                state.key_groups[&kg],
                encode_to_vec(&pair),
                "key group {kg}"
            );
        }
        assert!(
            snapshot_sides::<u64, u64, u64>(None, None)
                .key_groups
                .is_empty()
        );
    }

    /// Joins with the expiry index equal a brute-force join over the same
    /// records (in time order, so nothing is late).
    #[tokio::test]
    async fn indexed_expiry_joins_like_brute_force() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut left: Vec<(u8, i64)> = (0..3000).map(|i| ((next() % 7) as u8, i * 3)).collect();
        let mut right: Vec<(u8, i64)> =
            (0..3000).map(|i| ((next() % 7) as u8, i * 3 + 1)).collect();
        left.sort_by_key(|e| e.1);
        right.sort_by_key(|e| e.1);
        let (lower, upper) = (-20, 35);
        let mut want = Vec::new();
        for a in &left {
            for b in &right {
                if a.0 == b.0 && b.1 >= a.1 + lower && b.1 <= a.1 + upper {
                    want.push((a.1, b.1));
                }
            }
        }
        let p = Pipeline::new();
        let sink = CollectSink::new();
        let wm = || WatermarkStrategy::monotonous().with_timestamp(|e: &(u8, i64)| e.1);
        let l = p.source(VecSource::new(left), wm()).key_by(|e| e.0);
        let r = p.source(VecSource::new(right), wm()).key_by(|e| e.0);
        l.interval_join(r, lower, upper, |a, b| (a.1, b.1))
            .sink(sink.clone());
        p.run().await.expect("runs");
        let mut got = sink.values();
        got.sort();
        want.sort();
        assert_eq!(got.len(), want.len());
        assert_eq!(got, want);
    }

    /// Whether a watermark expires a few keys or jumps past most of them, every
    /// entry whose slot passed goes, every entry not yet expired stays, and the
    /// index keeps only slots still ahead.
    #[test]
    fn expiry_drops_the_entries_whose_slot_passed_and_keeps_the_rest() {
        use super::{KeyGroupedMap, expire, index, round_up};
        use crate::state::key_group::KeyGroupRange;
        use std::collections::BTreeMap;
        let (upper, tick) = (10, 4);
        let slot = |ts: i64| round_up(ts + upper, tick);
        // Watermarks that expire a few keys each, then one that jumps past most.
        for watermarks in [&[5, 9, 14, 30][..], &[5, 200], &[i64::MAX]] {
            let range = KeyGroupRange::for_subtask(0, 1, 8);
            let mut map: KeyGroupedMap<u32, Vec<(i64, u32)>> = KeyGroupedMap::new(range, 8);
            let mut expiry = BTreeMap::new();
            let mut all = Vec::new();
            for i in 0..400u32 {
                let (key, ts) = (i % 97, i64::from(i / 2));
                index(&mut expiry, slot(ts), &key);
                map.group_mut(map.key_group(&key))
                    .entry(key)
                    .or_default()
                    .push((ts, i));
                all.push((key, ts, i));
            }
            for &w in watermarks {
                expire(&mut map, &mut expiry, w, |ts| ts + upper);
                assert!(expiry.keys().all(|&at| at >= w), "index behind {w}");
                for &(key, ts, i) in &all {
                    let held = map.get(&key).is_some_and(|v| v.contains(&(ts, i)));
                    if slot(ts) < w {
                        assert!(!held, "{key}@{ts} kept past {w}");
                    }
                    if ts + upper >= w {
                        assert!(held, "{key}@{ts} dropped at {w}");
                    }
                }
                assert!(map.iter().all(|(_, v)| !v.is_empty()));
            }
        }
    }

    #[test]
    fn expiry_slots_round_up_and_saturate() {
        use super::round_up;
        assert_eq!(round_up(5, 3), 6);
        assert_eq!(round_up(6, 3), 6);
        assert_eq!(round_up(-5, 3), -3);
        assert_eq!(round_up(i64::MAX - 1, 1000), i64::MAX);
        assert_eq!(round_up(i64::MIN, 1000), i64::MIN + 808);
    }

    /// Bounds around timestamps at the ends of the i64 range saturate instead
    /// of overflowing.
    #[tokio::test]
    async fn bounds_at_the_ends_of_time_do_not_overflow() {
        let left = vec![(1u8, i64::MIN + 5), (2, i64::MAX - 10)];
        let right = vec![(1u8, i64::MIN + 10), (1, i64::MAX - 3), (2, i64::MAX - 1)];
        let p = Pipeline::new();
        let sink = CollectSink::new();
        let wm = || WatermarkStrategy::monotonous().with_timestamp(|e: &(u8, i64)| e.1);
        let l = p.source(VecSource::new(left), wm()).key_by(|e| e.0);
        let r = p.source(VecSource::new(right), wm()).key_by(|e| e.0);
        l.interval_join(r, -20, 35, |a, b| (a.1, b.1))
            .sink(sink.clone());
        p.run().await.expect("runs");
        let mut got = sink.values();
        got.sort();
        assert_eq!(
            got,
            vec![(i64::MIN + 5, i64::MIN + 10), (i64::MAX - 10, i64::MAX - 1)]
        );
    }
}
