//! Interval join of two keyed streams: a left record `a` joins every right record
//! `b` of the same key with `a.ts + lower <= b.ts <= a.ts + upper`. Both sides are
//! buffered per key until the watermark guarantees no future partner can arrive.
//!
//! ```text
//! left  a@100, bounds [-5, +10]  joins right records in [95, 110]
//! watermark w: drop left with ts + upper < w, right with ts - lower < w
//! ```
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

use std::sync::Arc;

use crate::checkpoint::{CheckpointBarrier, OperatorState};
use crate::error::Result;
use crate::operators::pane_window::KeyFn;
use crate::operators::{Operator, OperatorInit, Output};
use crate::record::Record;
use crate::state::codec::{decode_exact, encode_to_vec};
use crate::state::keyed::{Key, KeyGroupedMap, StateValue};

/// A value from the left or the right input of a two-input operator.
#[derive(Clone, Debug, PartialEq)]
pub enum Either<A, B> {
    /// From the left (first) input.
    Left(A),
    /// From the right (second) input.
    Right(B),
}

/// Interval join operator over the union of both inputs.
pub struct IntervalJoinOperator<K, A, B, F> {
    key_fn: KeyFn<K, Either<A, B>>,
    lower: i64,
    upper: i64,
    f: Arc<F>,
    left: Option<KeyGroupedMap<K, Vec<(i64, A)>>>,
    right: Option<KeyGroupedMap<K, Vec<(i64, B)>>>,
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
        self.late_dropped = Some(metrics::counter!(
            "strom_late_records_dropped_total",
            "operator" => init.name.to_string()
        ));
        let mut left = KeyGroupedMap::for_init(init);
        let mut right = KeyGroupedMap::for_init(init);
        if let Some(s) = &init.restored {
            for bytes in s.key_groups.values() {
                let (l, r) = decode_exact::<(Vec<u8>, Vec<u8>)>(bytes)?;
                if !l.is_empty() {
                    left.restore_group(&l)?;
                }
                if !r.is_empty() {
                    right.restore_group(&r)?;
                }
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
                        for (bts, b) in bs {
                            if *bts >= ts + self.lower && *bts <= ts + self.upper {
                                out.collect((self.f)(&a, b), ts.max(*bts));
                            }
                        }
                    }
                    let kg = left.key_group(&key);
                    left.group_mut(kg).entry(key).or_default().push((ts, a));
                }
                Either::Right(b) => {
                    if let Some(as_) = left.get(&key) {
                        for (ats, a) in as_ {
                            if ts >= ats + self.lower && ts <= ats + self.upper {
                                out.collect((self.f)(a, &b), ts.max(*ats));
                            }
                        }
                    }
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
            l.retain(|_, v| {
                v.retain(|(ts, _)| ts.saturating_add(upper) >= watermark);
                !v.is_empty()
            });
        }
        if let Some(r) = self.right.as_mut() {
            r.retain(|_, v| {
                v.retain(|(ts, _)| ts.saturating_sub(lower) >= watermark);
                !v.is_empty()
            });
        }
        Ok(())
    }

    fn snapshot(&mut self, _barrier: &CheckpointBarrier) -> Result<OperatorState> {
        let mut groups: std::collections::BTreeMap<u16, (Vec<u8>, Vec<u8>)> = Default::default();
        if let Some(l) = &self.left {
            for (kg, b) in l.snapshot() {
                groups.entry(kg).or_default().0 = b;
            }
        }
        if let Some(r) = &self.right {
            for (kg, b) in r.snapshot() {
                groups.entry(kg).or_default().1 = b;
            }
        }
        Ok(OperatorState {
            key_groups: groups
                .into_iter()
                .map(|(k, v)| (k, encode_to_vec(&v)))
                .collect(),
            entries: Default::default(),
        })
    }
}
