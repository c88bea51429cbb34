//! `process`: a keyed function with keyed state, event- and processing-time timers
//! and side outputs (Flink's `KeyedProcessFunction`).
//!
//! ```
//! use engine::*;
//! /// Emits a running count per key and a "done" marker 10 ms (event time) after
//! /// each key's first record.
//! #[derive(Clone)]
//! struct Counter { count: Option<ValueState<u64>> }
//! impl KeyedProcessFunction<String, (String, i64)> for Counter {
//!     type Out = String;
//!     fn open(&mut self, state: &mut StateRegistry<'_, String>) -> Result<()> {
//!         self.count = Some(state.value());
//!         Ok(())
//!     }
//!     fn process_element(&mut self, v: (String, i64), ctx: &mut ProcessContext<'_, '_, String, String>) -> Result<()> {
//!         let Some(count) = self.count else { return Ok(()) };
//!         let n = ctx.state().get(count).copied().unwrap_or(0) + 1;
//!         ctx.state().set(count, n);
//!         if n == 1 { ctx.register_event_timer(v.1 + 10); }
//!         ctx.collect(format!("{}={n}", v.0));
//!         Ok(())
//!     }
//!     fn on_timer(&mut self, t: i64, _d: TimeDomain, ctx: &mut ProcessContext<'_, '_, String, String>) -> Result<()> {
//!         ctx.collect(format!("{} done at {t}", ctx.key()));
//!         Ok(())
//!     }
//! }
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let p = Pipeline::new();
//! let sink = CollectSink::new();
//! p.source(VecSource::new(vec![("a".to_string(), 1i64), ("a".to_string(), 2)]),
//!          WatermarkStrategy::monotonous().with_timestamp(|e: &(String, i64)| e.1))
//!     .key_by(|e| e.0.clone())
//!     .process(Counter { count: None })
//!     .sink(sink.clone());
//! p.run().await.unwrap();
//! assert_eq!(sink.values(), vec!["a=1", "a=2", "a done at 11"]);
//! # });
//! ```

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};

use crate::checkpoint::{CheckpointBarrier, OperatorState};
use crate::error::Result;
use crate::operators::pane_window::KeyFn;
use crate::operators::{Operator, OperatorInit, Output, SideControl, SideOutput};
use crate::record::{Position, Record};
use crate::state::codec::{decode_exact, encode_to_vec};
use crate::state::keyed::{Key, KeyedState, KeyedStateStore, StateRegistry};
use crate::time::timers::TimerQueue;
use crate::time::window::TimeDomain;

/// A keyed function with state and timers.
pub trait KeyedProcessFunction<K, T>: Send + 'static {
    /// Output type.
    type Out: Send + 'static;
    /// Declares the function's state (called once per subtask, before restore).
    fn open(&mut self, _state: &mut StateRegistry<'_, K>) -> Result<()> {
        Ok(())
    }
    /// Processes one record of the current key. An `Err` fails the record and goes
    /// through the pipeline's error policy.
    fn process_element(
        &mut self,
        value: T,
        ctx: &mut ProcessContext<'_, '_, K, Self::Out>,
    ) -> Result<()>;
    /// A timer of the current key fired.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _domain: TimeDomain,
        _ctx: &mut ProcessContext<'_, '_, K, Self::Out>,
    ) -> Result<()> {
        Ok(())
    }
}

/// Identifies a side output and its value type (Flink's `OutputTag`).
///
/// ```
/// use engine::OutputTag;
/// let late: OutputTag<u64> = OutputTag::new("late");
/// assert_eq!(late.name(), "late");
/// ```
pub struct OutputTag<S> {
    pub(crate) id: u64,
    name: String,
    _p: std::marker::PhantomData<fn(S)>,
}

impl<S> Clone for OutputTag<S> {
    fn clone(&self) -> Self {
        OutputTag {
            id: self.id,
            name: self.name.clone(),
            _p: std::marker::PhantomData,
        }
    }
}

impl<S> OutputTag<S> {
    /// A new tag; every tag is distinct, even with the same name.
    pub fn new(name: impl Into<String>) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        OutputTag {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            name: name.into(),
            _p: std::marker::PhantomData,
        }
    }
    /// The tag's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A side output with its type erased, so one operator can own several.
pub(crate) trait ErasedSide: SideControl {
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<S: Send + 'static> ErasedSide for SideOutput<S> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The side outputs of one operator subtask, by tag.
#[derive(Default)]
pub struct SideOutputs {
    pub(crate) outputs: Vec<(u64, Box<dyn ErasedSide>)>,
}

impl SideOutputs {
    /// The side output for `tag`, if anything consumes it.
    pub(crate) fn get<S: Send + 'static>(
        &mut self,
        tag: &OutputTag<S>,
    ) -> Option<&mut SideOutput<S>> {
        self.outputs
            .iter_mut()
            .find(|(id, _)| *id == tag.id)
            .and_then(|(_, s)| s.as_any_mut().downcast_mut::<SideOutput<S>>())
    }

    /// Takes the side output for `tag` (or a disconnected one).
    pub(crate) fn take<S: Send + 'static>(&mut self, tag: Option<&OutputTag<S>>) -> SideOutput<S> {
        let Some(tag) = tag else {
            return SideOutput::disconnected();
        };
        match self.get(tag) {
            Some(s) => std::mem::replace(s, SideOutput::disconnected()),
            None => SideOutput::disconnected(),
        }
    }

    pub(crate) fn controls(&mut self) -> Vec<&mut dyn SideControl> {
        self.outputs
            .iter_mut()
            .map(|(_, s)| &mut **s as &mut dyn SideControl)
            .collect()
    }
}

/// Per-subtask timer queues.
struct Timers<K> {
    event: TimerQueue<K>,
    processing: TimerQueue<K>,
}

/// What a [`KeyedProcessFunction`] can do while handling a record or timer.
pub struct ProcessContext<'a, 'o, K, O> {
    state: KeyedState<'a, K>,
    timers: &'a mut Timers<K>,
    out: &'a mut Output<'o, O>,
    sides: &'a mut SideOutputs,
    timestamp: i64,
    position: Position,
}

impl<'a, K: Key, O> ProcessContext<'a, '_, K, O> {
    /// The current key.
    pub fn key(&self) -> &K {
        self.state.key()
    }
    /// The keyed state of the current key.
    pub fn state(&mut self) -> &mut KeyedState<'a, K> {
        &mut self.state
    }
    /// Timestamp of the current record (or of the firing timer).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// Emits a value with the current timestamp.
    pub fn collect(&mut self, value: O) {
        let ts = self.timestamp;
        self.out.emit(Record {
            value,
            timestamp: ts,
            position: self.position,
        });
    }
    /// Emits a value with an explicit timestamp.
    pub fn collect_with_timestamp(&mut self, value: O, timestamp: i64) {
        self.out.emit(Record {
            value,
            timestamp,
            position: self.position,
        });
    }
    /// Sends a value to the side output `tag` (dropped if nothing consumes it).
    pub fn output<S: Send + 'static>(&mut self, tag: &OutputTag<S>, value: S) -> Result<()> {
        let r = Record {
            value,
            timestamp: self.timestamp,
            position: self.position,
        };
        match self.sides.get(tag) {
            Some(s) => s.emit(r, self.out.ctx),
            None => Ok(()),
        }
    }
    /// Registers an event-time timer for the current key.
    pub fn register_event_timer(&mut self, at: i64) {
        self.timers.event.register(at, self.state.key().clone());
    }
    /// Deletes an event-time timer of the current key.
    pub fn delete_event_timer(&mut self, at: i64) {
        self.timers.event.delete(at, self.state.key());
    }
    /// Registers a processing-time timer for the current key.
    pub fn register_processing_timer(&mut self, at: i64) {
        self.timers
            .processing
            .register(at, self.state.key().clone());
        self.out.request_processing_timer(at);
    }
    /// Deletes a processing-time timer of the current key.
    pub fn delete_processing_timer(&mut self, at: i64) {
        self.timers.processing.delete(at, self.state.key());
    }
    /// The current event-time watermark.
    pub fn current_watermark(&self) -> i64 {
        self.out.current_watermark()
    }
    /// The current processing time.
    pub fn processing_time(&self) -> i64 {
        self.out.processing_time()
    }
}

/// Snapshot of one key group: state, event timers, processing timers.
type GroupBytes = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Runs a [`KeyedProcessFunction`].
pub struct ProcessOperator<K, T, F> {
    key_fn: KeyFn<K, T>,
    f: F,
    store: Option<KeyedStateStore<K>>,
    timers: Timers<K>,
    sides: SideOutputs,
    max_parallelism: u16,
    /// Key groups from the source partitioner (else key hashes).
    grouper: Option<crate::state::key_group::KeyGroupFn<K>>,
}

impl<K: Key, T: Send + 'static, F: KeyedProcessFunction<K, T>> ProcessOperator<K, T, F> {
    pub(crate) fn new(key_fn: KeyFn<K, T>, f: F, sides: SideOutputs) -> Self {
        ProcessOperator {
            key_fn,
            f,
            store: None,
            timers: Timers {
                event: TimerQueue::default(),
                processing: TimerQueue::default(),
            },
            sides,
            max_parallelism: 128,
            grouper: None,
        }
    }

    /// Loads the key groups of `state` (as [`Operator::snapshot`] wrote them)
    /// next to what the operator holds.
    fn load(&mut self, state: &OperatorState) -> Result<()> {
        for bytes in state.key_groups.values() {
            let (st, ev, pr) = decode_exact::<(Vec<u8>, Vec<u8>, Vec<u8>)>(bytes)?;
            if let (false, Some(store)) = (st.is_empty(), self.store.as_mut()) {
                store.restore_group(&st)?;
            }
            if !ev.is_empty() {
                self.timers.event.restore_group(&ev)?;
            }
            if !pr.is_empty() {
                self.timers.processing.restore_group(&pr)?;
            }
        }
        Ok(())
    }

    fn fire(
        &mut self,
        due: Vec<(i64, K)>,
        domain: TimeDomain,
        out: &mut Output<'_, F::Out>,
    ) -> Result<()> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        for (t, key) in due {
            let mut ctx = ProcessContext {
                state: KeyedState { store, key: &key },
                timers: &mut self.timers,
                out,
                sides: &mut self.sides,
                timestamp: t,
                position: Position::NONE,
            };
            self.f.on_timer(t, domain, &mut ctx)?;
        }
        Ok(())
    }
}

impl<K: Key, T: Send + 'static, F: KeyedProcessFunction<K, T>> Operator<T>
    for ProcessOperator<K, T, F>
{
    type Out = F::Out;

    fn open(&mut self, init: &OperatorInit) -> Result<()> {
        self.max_parallelism = init.max_parallelism;
        self.grouper = init.grouper::<K>();
        let mut store = KeyedStateStore::for_init(init);
        self.f.open(&mut store.registry())?;
        self.store = Some(store);
        if let Some(s) = &init.restored {
            self.load(s)?;
        }
        Ok(())
    }

    fn restored_processing_timer(&self) -> Option<i64> {
        self.timers.processing.next_time()
    }

    fn can_adopt(&self) -> bool {
        true
    }

    fn process_batch(&mut self, batch: Vec<Record<T>>, out: &mut Output<'_, F::Out>) -> Result<()> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        for r in batch {
            let key = (self.key_fn)(&r.value);
            let (ts, pos) = (r.timestamp, r.position);
            let mut ctx = ProcessContext {
                state: KeyedState { store, key: &key },
                timers: &mut self.timers,
                out,
                sides: &mut self.sides,
                timestamp: ts,
                position: pos,
            };
            if let Err(e) = self.f.process_element(r.value, &mut ctx) {
                out.fail(pos, ts, e)?;
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, F::Out>) -> Result<()> {
        let due = self.timers.event.pop_due(watermark);
        self.fire(due, TimeDomain::EventTime, out)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Output<'_, F::Out>) -> Result<()> {
        let due = self.timers.processing.pop_due(now);
        self.fire(due, TimeDomain::ProcessingTime, out)?;
        if let Some(t) = self.timers.processing.next_time() {
            out.request_processing_timer(t);
        }
        Ok(())
    }

    fn snapshot(&mut self, _barrier: &CheckpointBarrier) -> Result<OperatorState> {
        let mut groups: BTreeMap<u16, GroupBytes> = BTreeMap::new();
        if let Some(store) = &self.store {
            for (kg, b) in store.snapshot() {
                groups.entry(kg).or_default().0 = b;
            }
        }
        let grouper = self.grouper.clone();
        let max = self.max_parallelism;
        let group = |k: &K| crate::state::key_group::key_group_by(grouper.as_ref(), k, max).0;
        for (kg, b) in self.timers.event.snapshot_by(group) {
            groups.entry(kg).or_default().1 = b;
        }
        for (kg, b) in self.timers.processing.snapshot_by(group) {
            groups.entry(kg).or_default().2 = b;
        }
        Ok(OperatorState {
            key_groups: groups
                .into_iter()
                .map(|(kg, v)| (kg, encode_to_vec(&v)))
                .collect(),
            entries: Default::default(),
        })
    }

    fn release(&mut self, key_groups: &BTreeSet<u16>) -> Result<bool> {
        if let Some(store) = &mut self.store {
            store.release(key_groups);
        }
        let grouper = self.grouper.clone();
        let max = self.max_parallelism;
        let keep = |k: &K| {
            let g = crate::state::key_group::key_group_by(grouper.as_ref(), k, max).0;
            !key_groups.contains(&g)
        };
        self.timers.event.retain_keys(keep);
        self.timers.processing.retain_keys(keep);
        Ok(true)
    }

    fn adopt(&mut self, state: &OperatorState) -> Result<bool> {
        self.load(state)?;
        Ok(true)
    }

    fn side_outputs(&mut self) -> Vec<&mut dyn SideControl> {
        self.sides.controls()
    }
}
