//! Global windows with a count trigger (Flink's `countWindow(n)`): per key, every
//! `n` records fire one result and the window is purged. Results keep the event
//! timestamp of the record that completed the window.

use std::sync::Arc;

use crate::aggregate::AggregateFunction;
use crate::checkpoint::{CheckpointBarrier, OperatorState};
use crate::error::Result;
use crate::operators::pane_window::{KeyFn, Windowed};
use crate::operators::{Operator, OperatorInit, Output};
use crate::record::Record;
use crate::state::keyed::{Key, KeyGroupedMap};
use crate::time::window::TimeWindow;

/// Count-triggered global window operator.
///
/// ```
/// use engine::{CollectSink, Pipeline, Sum, VecSource, WatermarkStrategy, Windows};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let p = Pipeline::new();
/// let sink = CollectSink::new();
/// p.source(VecSource::new(vec![1u64, 2, 3, 4, 5]), WatermarkStrategy::no_watermarks())
///     .key_by(|_| 0u8)
///     .window(Windows::count(2))
///     .aggregate(Sum::of(|x: &u64| *x))
///     .map(|w| w.value)
///     .sink(sink.clone());
/// p.run().await.unwrap();
/// assert_eq!(sink.values(), vec![3, 7]); // the incomplete window [5] never fires
/// # });
/// ```
pub struct CountWindowOperator<K, T, A: AggregateFunction<T>> {
    key_fn: KeyFn<K, T>,
    agg: Arc<A>,
    count: u64,
    state: Option<KeyGroupedMap<K, (u64, A::Acc)>>,
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> CountWindowOperator<K, T, A> {
    pub(crate) fn new(key_fn: KeyFn<K, T>, agg: Arc<A>, count: u64) -> Self {
        CountWindowOperator {
            key_fn,
            agg,
            count: count.max(1),
            state: None,
        }
    }
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> Operator<T>
    for CountWindowOperator<K, T, A>
{
    type Out = Windowed<K, A::Out>;

    fn open(&mut self, init: &OperatorInit) -> Result<()> {
        self.state = Some(KeyGroupedMap::restored(init)?);
        Ok(())
    }

    fn can_adopt(&self) -> bool {
        true
    }

    fn adopts_under_event_time(&self) -> bool {
        true
    }

    fn process_batch(
        &mut self,
        batch: Vec<Record<T>>,
        out: &mut Output<'_, Self::Out>,
    ) -> Result<()> {
        let Some(map) = self.state.as_mut() else {
            return Ok(());
        };
        for r in batch {
            let key = (self.key_fn)(&r.value);
            let kg = map.key_group(&key);
            let group = map.group_mut(kg);
            let entry = group
                .entry(key.clone())
                .or_insert_with(|| (0, self.agg.create()));
            entry.0 += 1;
            self.agg.add(&mut entry.1, &r.value);
            if entry.0 >= self.count {
                let value = self.agg.result(&entry.1);
                group.remove(&key);
                out.emit(Record::new(
                    Windowed {
                        key,
                        window: TimeWindow::GLOBAL,
                        value,
                    },
                    r.timestamp,
                ));
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, _barrier: &CheckpointBarrier) -> Result<OperatorState> {
        Ok(OperatorState {
            key_groups: self
                .state
                .as_ref()
                .map(|m| m.snapshot())
                .unwrap_or_default(),
            entries: Default::default(),
        })
    }

    fn release(&mut self, key_groups: &std::collections::BTreeSet<u16>) -> Result<bool> {
        if let Some(m) = &mut self.state {
            m.release(key_groups);
        }
        Ok(true)
    }

    fn adopt(&mut self, state: &OperatorState) -> Result<bool> {
        let Some(m) = &mut self.state else {
            return Ok(false);
        };
        for bytes in state.key_groups.values() {
            m.restore_group(bytes)?;
        }
        Ok(true)
    }
}
