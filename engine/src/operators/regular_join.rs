//! Regular (unbounded) inner equi-join of two keyed streams: every left record
//! joins every right record of the same key, whatever their order of arrival and
//! their event times (Flink SQL's regular join of two append-only inputs).
//!
//! ```text
//! left a1 ──┐                         right b1 arrives: emit (a1, b1), (a2, b1); keep b1
//! left a2 ──┼── key k: left [a1, a2]  left  a3 arrives: emit (a3, b1);           keep a3
//! right b1 ─┘          right [b1]
//! ```
//!
//! Both sides are kept per key until their state TTL expires them, or forever
//! without one. Watermarks play no part: nothing is late and nothing is evicted
//! by event time, so inputs without watermarks join the same way.
//!
//! ```
//! use engine::{CollectSink, Pipeline, VecSource, WatermarkStrategy};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let p = Pipeline::new();
//! let sink = CollectSink::new();
//! let none = WatermarkStrategy::no_watermarks;
//! let people = p.source(VecSource::new(vec![(1u32, 7u64)]), none()).key_by(|e| e.0);
//! let auctions = p.source(VecSource::new(vec![(1u32, 10u64), (2, 11)]), none()).key_by(|e| e.0);
//! people.regular_join(auctions, None, |p, a| (p.1, a.1)).sink(sink.clone());
//! p.run().await.unwrap();
//! assert_eq!(sink.values(), vec![(7, 10)]);
//! # });
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::{CheckpointBarrier, OperatorState};
use crate::error::Result;
use crate::operators::interval_join::{
    Either, expire, index, load_sides, release_sides, restore_sides, snapshot_sides,
};
use crate::operators::pane_window::KeyFn;
use crate::operators::{Operator, OperatorInit, Output};
use crate::record::Record;
use crate::state::keyed::{Key, KeyGroupedMap, StateValue};

/// One side's rows of a key: (processing time stored, (event time, value)).
type Side<K, V> = KeyGroupedMap<K, Vec<(i64, (i64, V))>>;

/// The last processing time a row stored at `stored` is alive under `ttl`.
fn alive_until(ttl: Option<i64>, stored: i64) -> i64 {
    ttl.map_or(i64::MAX, |ttl| stored.saturating_add(ttl).saturating_sub(1))
}

/// Regular join operator over the union of both inputs.
pub struct RegularJoinOperator<K, A, B, F> {
    key_fn: KeyFn<K, Either<A, B>>,
    /// State TTL in ms (`None`: rows are kept forever).
    ttl: Option<i64>,
    f: Arc<F>,
    left: Option<Side<K, A>>,
    right: Option<Side<K, B>>,
    /// Last processing time a left row is alive (stored + ttl - 1) -> keys.
    left_expiry: BTreeMap<i64, Vec<K>>,
    /// The same for right rows.
    right_expiry: BTreeMap<i64, Vec<K>>,
}

impl<K, A, B, F> RegularJoinOperator<K, A, B, F> {
    /// A join whose rows expire `ttl` of processing time after they arrived (never
    /// with `None`).
    ///
    /// Processing time, as Flink's state TTL: the join has no watermark to rely
    /// on (its inputs may have none), and a row's expiry should not depend on
    /// how far the other input's event time has got. A row is written once and
    /// never updated (append-only inputs), and a match does not extend it
    /// (Flink's default `OnCreateAndWrite`), so it lives `ttl` from its arrival.
    pub(crate) fn new(key_fn: KeyFn<K, Either<A, B>>, ttl: Option<Duration>, f: Arc<F>) -> Self {
        RegularJoinOperator {
            key_fn,
            ttl: ttl.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)),
            f,
            left: None,
            right: None,
            left_expiry: BTreeMap::new(),
            right_expiry: BTreeMap::new(),
        }
    }
}

impl<K: Key, A, B, F> RegularJoinOperator<K, A, B, F> {
    /// Drops every row whose TTL ran out by `now`; asks for a timer at the next
    /// expiry so idle state is freed too.
    fn expire_until<O>(&mut self, now: i64, out: &mut Output<'_, O>) {
        let Some(ttl) = self.ttl else {
            return;
        };
        let until = |stored: i64| alive_until(Some(ttl), stored);
        if let Some(l) = self.left.as_mut() {
            expire(l, &mut self.left_expiry, now, until);
        }
        if let Some(r) = self.right.as_mut() {
            expire(r, &mut self.right_expiry, now, until);
        }
        if let Some(t) = self.next_expiry() {
            out.request_processing_timer(t);
        }
    }

    /// When the next stored row expires.
    fn next_expiry(&self) -> Option<i64> {
        [&self.left_expiry, &self.right_expiry]
            .iter()
            .filter_map(|e| e.keys().next().copied())
            .min()
            .map(|t| t.saturating_add(1))
    }
}

impl<K, A, B, O, F> Operator<Either<A, B>> for RegularJoinOperator<K, A, B, F>
where
    K: Key,
    A: StateValue + Sync,
    B: StateValue + Sync,
    O: Send + 'static,
    F: Fn(&A, &B) -> O + Send + Sync + 'static,
{
    type Out = O;

    fn open(&mut self, init: &OperatorInit) -> Result<()> {
        let (left, right) = restore_sides::<K, Vec<(i64, (i64, A))>, Vec<(i64, (i64, B))>>(init)?;
        if let Some(ttl) = self.ttl {
            for (k, v) in left.iter() {
                for (stored, _) in v {
                    index(&mut self.left_expiry, alive_until(Some(ttl), *stored), k);
                }
            }
            for (k, v) in right.iter() {
                for (stored, _) in v {
                    index(&mut self.right_expiry, alive_until(Some(ttl), *stored), k);
                }
            }
        }
        self.left = Some(left);
        self.right = Some(right);
        Ok(())
    }

    fn restored_processing_timer(&self) -> Option<i64> {
        self.next_expiry()
    }

    fn can_adopt(&self) -> bool {
        true
    }

    fn adopts_under_event_time(&self) -> bool {
        true
    }

    fn process_batch(
        &mut self,
        batch: Vec<Record<Either<A, B>>>,
        out: &mut Output<'_, O>,
    ) -> Result<()> {
        let now = out.processing_time();
        self.expire_until(now, out);
        let alive = alive_until(self.ttl, now);
        let ttl = self.ttl.is_some();
        let (Some(left), Some(right)) = (self.left.as_mut(), self.right.as_mut()) else {
            return Ok(());
        };
        for r in batch {
            let key = (self.key_fn)(&r.value);
            let ts = r.timestamp;
            match r.value {
                Either::Left(a) => {
                    if let Some(bs) = right.get(&key) {
                        for (_, (bts, b)) in bs {
                            out.collect((self.f)(&a, b), ts.max(*bts));
                        }
                    }
                    if ttl {
                        index(&mut self.left_expiry, alive, &key);
                    }
                    let kg = left.key_group(&key);
                    left.group_mut(kg)
                        .entry(key)
                        .or_default()
                        .push((now, (ts, a)));
                }
                Either::Right(b) => {
                    if let Some(as_) = left.get(&key) {
                        for (_, (ats, a)) in as_ {
                            out.collect((self.f)(a, &b), ts.max(*ats));
                        }
                    }
                    if ttl {
                        index(&mut self.right_expiry, alive, &key);
                    }
                    let kg = right.key_group(&key);
                    right
                        .group_mut(kg)
                        .entry(key)
                        .or_default()
                        .push((now, (ts, b)));
                }
            }
        }
        if ttl {
            out.request_processing_timer(alive.saturating_add(1));
        }
        Ok(())
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Output<'_, O>) -> Result<()> {
        self.expire_until(now, out);
        Ok(())
    }

    fn snapshot(&mut self, _barrier: &CheckpointBarrier) -> Result<OperatorState> {
        Ok(snapshot_sides(self.left.as_ref(), self.right.as_ref()))
    }

    fn release(&mut self, key_groups: &std::collections::BTreeSet<u16>) -> Result<bool> {
        release_sides(self.left.as_mut(), self.right.as_mut(), key_groups);
        Ok(true)
    }

    fn adopt(&mut self, state: &OperatorState) -> Result<bool> {
        let (Some(left), Some(right)) = (self.left.as_mut(), self.right.as_mut()) else {
            return Ok(false);
        };
        let (lk, rk) = load_sides(left, right, state)?;
        if let Some(ttl) = self.ttl {
            for k in &lk {
                for (stored, _) in left.get(k).into_iter().flatten() {
                    index(&mut self.left_expiry, alive_until(Some(ttl), *stored), k);
                }
            }
            for k in &rk {
                for (stored, _) in right.get(k).into_iter().flatten() {
                    index(&mut self.right_expiry, alive_until(Some(ttl), *stored), k);
                }
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::Duration;

    use super::RegularJoinOperator;
    use crate::checkpoint::{CheckpointBarrier, CheckpointId, OperatorId, OperatorState, TaskId};
    use crate::error::ErrorPolicy;
    use crate::operators::interval_join::Either;
    use crate::operators::pane_window::KeyFn;
    use crate::operators::{Operator, OperatorInit, Output};
    use crate::record::Record;
    use crate::runtime::context::TaskCtx;
    use crate::time::clock::Clock;
    use crate::{CollectSink, Pipeline, VecSource, WatermarkStrategy};

    type Row = (u8, String);
    type Op = RegularJoinOperator<u8, Row, Row, fn(&Row, &Row) -> (String, String)>;

    fn pair(a: &Row, b: &Row) -> (String, String) {
        (a.1.clone(), b.1.clone())
    }

    /// The operator alone, driven record by record, with a paused tokio clock.
    struct Harness {
        op: Op,
        ctx: TaskCtx,
    }

    impl Harness {
        fn new(ttl: Option<Duration>, restored: Option<OperatorState>) -> Harness {
            let key: KeyFn<u8, Either<Row, Row>> = Arc::new(|e: &Either<Row, Row>| match e {
                Either::Left(a) => a.0,
                Either::Right(b) => b.0,
            });
            let mut op: Op = RegularJoinOperator::new(key, ttl, Arc::new(pair));
            let mut init = OperatorInit::new(OperatorId(1), "join".into(), 0, 1, 128, None);
            init.restored = restored;
            op.open(&init).unwrap();
            let ctx = TaskCtx::new(
                TaskId {
                    stage: 0,
                    subtask: 0,
                },
                "join#0".into(),
                0,
                Clock::starting_at(0),
                ErrorPolicy::Fail,
                None,
                64,
            );
            Harness { op, ctx }
        }

        fn push(&mut self, e: Either<Row, Row>) -> Vec<(String, String)> {
            let mut buf = Vec::new();
            let mut out = Output {
                buf: &mut buf,
                ctx: &mut self.ctx,
                name: "join",
            };
            self.op
                .process_batch(vec![Record::new(e, 0)], &mut out)
                .unwrap();
            buf.into_iter().map(|r| r.value).collect()
        }

        fn timer(&mut self) {
            let now = self.ctx.clock.now_ms();
            let mut buf = Vec::new();
            let mut out = Output {
                buf: &mut buf,
                ctx: &mut self.ctx,
                name: "join",
            };
            self.op.on_processing_time(now, &mut out).unwrap();
        }

        fn rows(&self) -> usize {
            let l = self.op.left.as_ref().map_or(0, |m| m.iter().count());
            let r = self.op.right.as_ref().map_or(0, |m| m.iter().count());
            l + r
        }

        fn snapshot(&mut self) -> OperatorState {
            let barrier = CheckpointBarrier {
                id: CheckpointId(1),
                timestamp: 0,
                stop: false,
                release: None,
                adopt: None,
            };
            self.op.snapshot(&barrier).unwrap()
        }
    }

    fn l(k: u8, v: &str) -> Either<Row, Row> {
        Either::Left((k, v.to_string()))
    }

    fn r(k: u8, v: &str) -> Either<Row, Row> {
        Either::Right((k, v.to_string()))
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn joins_in_either_order_of_arrival() {
        let mut h = Harness::new(None, None);
        assert!(h.push(l(1, "a1")).is_empty());
        assert_eq!(h.push(r(1, "b1")), pairs(&[("a1", "b1")]));
        assert!(h.push(r(2, "b2")).is_empty());
        assert_eq!(h.push(l(2, "a2")), pairs(&[("a2", "b2")]));
        assert!(h.push(l(3, "a3")).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_on_both_sides_join_every_pair_once() {
        let mut h = Harness::new(None, None);
        h.push(l(1, "a"));
        h.push(l(1, "a"));
        assert_eq!(h.push(r(1, "b")), pairs(&[("a", "b"), ("a", "b")]));
        assert_eq!(h.push(r(1, "b")), pairs(&[("a", "b"), ("a", "b")]));
        assert_eq!(h.push(l(1, "a")), pairs(&[("a", "b"), ("a", "b")]));
    }

    #[tokio::test(start_paused = true)]
    async fn restored_state_joins_later_rows() {
        let mut h = Harness::new(None, None);
        h.push(l(1, "a1"));
        h.push(r(2, "b2"));
        let state = h.snapshot();
        let mut again = Harness::new(None, Some(state));
        assert_eq!(again.rows(), 2);
        assert_eq!(again.push(r(1, "b1")), pairs(&[("a1", "b1")]));
        assert_eq!(again.push(l(2, "a2")), pairs(&[("a2", "b2")]));
    }

    #[tokio::test(start_paused = true)]
    async fn adopted_rows_join_later_rows_and_expire_with_their_ttl() {
        let ttl = Some(Duration::from_secs(10));
        let mut other = Harness::new(ttl, None);
        other.push(l(1, "a1"));
        other.push(r(2, "b2"));
        let state = other.snapshot();
        let mut h = Harness::new(ttl, None);
        h.push(l(3, "a3"));
        assert!(h.op.adopt(&state).unwrap());
        assert_eq!(h.rows(), 3, "its own row and the two adopted");
        assert_eq!(h.push(r(1, "b1")), pairs(&[("a1", "b1")]));
        assert_eq!(h.push(l(2, "a2")), pairs(&[("a2", "b2")]));
        tokio::time::advance(Duration::from_secs(30)).await;
        h.timer();
        assert_eq!(h.rows(), 0, "adopted rows expire too");
    }

    #[tokio::test(start_paused = true)]
    async fn rows_expire_their_ttl_after_arrival() {
        let mut h = Harness::new(Some(Duration::from_secs(10)), None);
        h.push(l(1, "old"));
        tokio::time::advance(Duration::from_secs(6)).await;
        h.push(l(1, "new"));
        tokio::time::advance(Duration::from_millis(3_999)).await;
        // 9.999 s after "old" arrived: both still join.
        assert_eq!(h.push(r(1, "b")), pairs(&[("old", "b"), ("new", "b")]));
        tokio::time::advance(Duration::from_millis(1)).await;
        // 10 s after "old": it is gone, "new" (4 s old) and "b" stay.
        assert_eq!(h.push(r(1, "c")), pairs(&[("new", "c")]));
        tokio::time::advance(Duration::from_secs(30)).await;
        h.timer();
        assert_eq!(h.rows(), 0, "the timer frees idle state");
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_applies_to_restored_rows() {
        let mut h = Harness::new(Some(Duration::from_secs(10)), None);
        h.push(l(1, "a"));
        let state = h.snapshot();
        let mut again = Harness::new(Some(Duration::from_secs(10)), Some(state));
        assert_eq!(again.push(r(1, "b")), pairs(&[("a", "b")]));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(again.push(r(1, "c")).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_restored_join_asks_for_its_first_expiry_before_any_input() {
        let mut h = Harness::new(Some(Duration::from_secs(10)), None);
        assert_eq!(h.op.restored_processing_timer(), None);
        h.push(l(1, "a"));
        let state = h.snapshot();
        let again = Harness::new(Some(Duration::from_secs(10)), Some(state));
        // "a" arrived at 0: gone at 10 s.
        assert_eq!(again.op.restored_processing_timer(), Some(10_000));
        let forever = Harness::new(None, Some(h.snapshot()));
        assert_eq!(forever.op.restored_processing_timer(), None);
    }

    /// Through a pipeline whose sources have no watermark: the right rows come
    /// first (one source ends before the other starts) and still join.
    #[tokio::test]
    async fn joins_without_watermarks_like_a_nested_loop() {
        let left: Vec<(u8, i64)> = (0..200).map(|i| ((i % 7) as u8, i)).collect();
        let right: Vec<(u8, i64)> = (0..150).map(|i| ((i % 5) as u8, 1000 - i)).collect();
        let mut want = Vec::new();
        for a in &left {
            for b in &right {
                if a.0 == b.0 {
                    want.push((a.1, b.1));
                }
            }
        }
        let p = Pipeline::new();
        let sink = CollectSink::new();
        let none = WatermarkStrategy::no_watermarks;
        let ls = p.source(VecSource::new(left), none()).key_by(|e| e.0);
        let rs = p.source(VecSource::new(right), none()).key_by(|e| e.0);
        ls.regular_join(rs, None, |a, b| (a.1, b.1))
            .sink(sink.clone());
        p.run().await.unwrap();
        let mut got = sink.values();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
}
