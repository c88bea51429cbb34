//! [`KeyedStream`] and [`WindowedStream`]: keyed operators, windows and joins.

use std::sync::Arc;
use std::time::Duration;

use crate::aggregate::{AggregateFunction, Reduce};
use crate::error::Result;
use crate::graph::stream::{DataStream, gates_from, key_hasher};
use crate::operators::count_window::CountWindowOperator;
use crate::operators::interval_join::{Either, IntervalJoinOperator};
use crate::operators::pane_window::{KeyFn, PaneWindowOperator, Windowed};
use crate::operators::process::{KeyedProcessFunction, OutputTag, ProcessContext, ProcessOperator};
use crate::operators::regular_join::RegularJoinOperator;
use crate::operators::session_window::SessionWindowOperator;
use crate::operators::sliding_window::SlidingWindowOperator;
use crate::runtime::emitter::Partitioner;
use crate::state::codec::StateCodec;
use crate::state::key_group::KeyGroupFn;
use crate::state::keyed::{Key, StateRegistry, StateValue, ValueState};
use crate::time::window::{WindowKind, Windows};

/// A stream partitioned by key (Flink's `KeyedStream`).
pub struct KeyedStream<K, T> {
    stream: DataStream<T>,
    key_fn: KeyFn<K, T>,
    parallelism: usize,
    /// Key groups are source partitions (this maps a key to its partition), not
    /// key hashes.
    grouper: Option<KeyGroupFn<K>>,
}

impl<K: Key, T: Send + 'static> KeyedStream<K, T> {
    pub(crate) fn new(
        stream: DataStream<T>,
        key_fn: KeyFn<K, T>,
        parallelism: usize,
        grouper: Option<KeyGroupFn<K>>,
    ) -> Self {
        KeyedStream {
            stream,
            key_fn,
            parallelism,
            grouper,
        }
    }

    /// Parallelism of the keyed operator that follows (default: the pipeline's).
    pub fn set_parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }

    /// The exchange into the keyed operator; with a source partitioner, also hands
    /// the key-to-key-group function to that operator.
    fn exchanged(self) -> (DataStream<T>, KeyFn<K, T>) {
        let max_parallelism = self.stream.graph.borrow().config.max_parallelism;
        let part = match &self.grouper {
            Some(grouper) => {
                let (g, k) = (grouper.clone(), self.key_fn.clone());
                self.stream.graph.borrow_mut().pending_grouper = Some(Arc::new(grouper.clone()));
                Partitioner::SourcePartition {
                    group: Arc::new(move |v: &T| g(&k(v))),
                    max_parallelism,
                }
            }
            None => Partitioner::Hash {
                hash: key_hasher(self.key_fn.clone()),
                max_parallelism,
            },
        };
        let s = self.stream.exchange(part, self.parallelism, "keyed");
        (s, self.key_fn)
    }

    /// Windows each key's records.
    pub fn window(self, windows: Windows) -> WindowedStream<K, T> {
        WindowedStream {
            keyed: self,
            windows,
            lateness: 0,
            late_tag: None,
            early_every: None,
        }
    }

    /// Runs a keyed process function (state, timers, side outputs); each subtask
    /// gets a clone of `f`.
    pub fn process<F: KeyedProcessFunction<K, T> + Clone>(self, f: F) -> DataStream<F::Out> {
        let (s, key_fn) = self.exchanged();
        s.chain_with("process", move |b, id, sub| {
            ProcessOperator::new(key_fn.clone(), f.clone(), b.side_outputs(id, sub))
        })
    }

    /// Rolling reduce: emits the running reduction of each key after every record.
    pub fn reduce(self, f: impl Fn(&T, &T) -> T + Send + Sync + 'static) -> DataStream<T>
    where
        T: StateValue,
    {
        self.process(RollingReduce {
            f: Arc::new(f),
            state: None,
        })
    }

    fn connect<B: Send + 'static>(self, other: KeyedStream<K, B>) -> Connected<K, T, B> {
        let (kl, kr) = (self.key_fn.clone(), other.key_fn.clone());
        let key_fn: KeyFn<K, Either<T, B>> = Arc::new(move |e: &Either<T, B>| match e {
            Either::Left(a) => kl(a),
            Either::Right(b) => kr(b),
        });
        let par = self.parallelism;
        let max = self.stream.graph.borrow().config.max_parallelism;
        let grouper = match (&self.grouper, &other.grouper) {
            (Some(g), Some(_)) => Some(g.clone()),
            _ => None,
        };
        let left = self.stream.map(Either::Left);
        let right = other.stream.map(Either::Right);
        let graph = left.graph.clone();
        let cp = left.checkpointed && right.checkpointed;
        let hash = key_hasher(key_fn.clone());
        match &grouper {
            Some(g) => graph.borrow_mut().pending_grouper = Some(Arc::new(g.clone())),
            None => graph.borrow_mut().hash_keyed = true,
        }
        let join_key = key_fn.clone();
        let feeds: Vec<_> = left
            .feeds
            .iter()
            .chain(&right.feeds)
            .map(|(o, _)| (*o, crate::runtime::status::EdgeKind::Hash))
            .collect();
        let mut joined = DataStream::new(
            graph,
            par,
            cp,
            None,
            Box::new(move |b, mut down| {
                let part = if let Some(g) = grouper {
                    Partitioner::SourcePartition {
                        group: Arc::new(move |e: &Either<T, B>| g(&join_key(e))),
                        max_parallelism: max,
                    }
                } else {
                    Partitioner::Hash {
                        hash,
                        max_parallelism: max,
                    }
                };
                let gates = gates_from(b, vec![(left, part.clone()), (right, part)], par)?;
                b.spawn_chain_stage("join", gates, cp, &mut down)
            }),
        );
        joined.feeds = feeds;
        (joined, key_fn)
    }

    /// Interval join: joins `a` with every `b` of the same key where
    /// `a.ts + lower_ms <= b.ts <= a.ts + upper_ms`.
    pub fn interval_join<B, O>(
        self,
        other: KeyedStream<K, B>,
        lower_ms: i64,
        upper_ms: i64,
        f: impl Fn(&T, &B) -> O + Send + Sync + 'static,
    ) -> DataStream<O>
    where
        T: StateValue + Sync,
        B: StateValue + Sync,
        O: Send + 'static,
    {
        let (joined, key_fn) = self.connect(other);
        let f = Arc::new(f);
        joined.chain_with("interval_join", move |_, _, _| {
            IntervalJoinOperator::new(key_fn.clone(), lower_ms, upper_ms, f.clone())
        })
    }

    /// Regular join: joins `a` with every `b` of the same key, in whichever order
    /// they arrive and whatever their event times; both sides are kept until `ttl`
    /// of processing time after their arrival (forever with `None`). Output records
    /// carry the later of the two timestamps.
    pub fn regular_join<B, O>(
        self,
        other: KeyedStream<K, B>,
        ttl: Option<Duration>,
        f: impl Fn(&T, &B) -> O + Send + Sync + 'static,
    ) -> DataStream<O>
    where
        T: StateValue + Sync,
        B: StateValue + Sync,
        O: Send + 'static,
    {
        let (joined, key_fn) = self.connect(other);
        let f = Arc::new(f);
        joined.chain_with("regular_join", move |_, _, _| {
            RegularJoinOperator::new(key_fn.clone(), ttl, f.clone())
        })
    }

    /// Window join: joins every pair `(a, b)` of the same key in the same window.
    pub fn window_join<B, O>(
        self,
        other: KeyedStream<K, B>,
        windows: Windows,
        f: impl Fn(&T, &B) -> O + Send + Sync + 'static,
    ) -> DataStream<O>
    where
        T: StateValue + Sync,
        B: StateValue + Sync,
        O: Send + 'static,
    {
        let (joined, key_fn) = self.connect(other);
        let par = joined.parallelism;
        let keyed = KeyedStream {
            stream: joined,
            key_fn,
            parallelism: par,
            grouper: None,
        };
        // The union is already partitioned by key; windowing it adds no exchange.
        let ws = WindowedStream {
            keyed,
            windows,
            lateness: 0,
            late_tag: None,
            early_every: None,
        };
        ws.aggregate_on(JoinBuffer, false)
            .flat_map(move |w: Windowed<K, (Vec<T>, Vec<B>)>| {
                let (l, r) = w.value;
                let mut out = Vec::with_capacity(l.len() * r.len());
                for a in &l {
                    for b in &r {
                        out.push(f(a, b));
                    }
                }
                out
            })
    }
}

/// Both inputs of a join, unioned and partitioned by key, with the combined key.
type Connected<K, A, B> = (DataStream<Either<A, B>>, KeyFn<K, Either<A, B>>);

/// A reduce function.
type ReduceFn<T> = Arc<dyn Fn(&T, &T) -> T + Send + Sync>;

/// Collects both sides of a window join.
struct JoinBuffer;

impl<A: StateValue + Sync, B: StateValue + Sync> AggregateFunction<Either<A, B>> for JoinBuffer {
    type Acc = (Vec<A>, Vec<B>);
    type Out = (Vec<A>, Vec<B>);
    fn create(&self) -> Self::Acc {
        (Vec::new(), Vec::new())
    }
    fn add(&self, acc: &mut Self::Acc, value: &Either<A, B>) {
        match value {
            Either::Left(a) => acc.0.push(a.clone()),
            Either::Right(b) => acc.1.push(b.clone()),
        }
    }
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
        acc.0.extend(other.0.iter().cloned());
        acc.1.extend(other.1.iter().cloned());
    }
    fn result(&self, acc: &Self::Acc) -> Self::Out {
        acc.clone()
    }
}

/// Keyed rolling reduce, as a process function.
struct RollingReduce<T> {
    f: ReduceFn<T>,
    state: Option<ValueState<T>>,
}

impl<T> Clone for RollingReduce<T> {
    fn clone(&self) -> Self {
        RollingReduce {
            f: self.f.clone(),
            state: None,
        }
    }
}

impl<K: Key, T: StateValue> KeyedProcessFunction<K, T> for RollingReduce<T> {
    type Out = T;
    fn open(&mut self, state: &mut StateRegistry<'_, K>) -> Result<()> {
        self.state = Some(state.value());
        Ok(())
    }
    fn process_element(&mut self, value: T, ctx: &mut ProcessContext<'_, '_, K, T>) -> Result<()> {
        let Some(s) = self.state else {
            return Ok(());
        };
        let next = match ctx.state().get(s) {
            Some(acc) => (self.f)(acc, &value),
            None => value,
        };
        ctx.state().set(s, next.clone());
        ctx.collect(next);
        Ok(())
    }
}

/// A keyed stream cut into windows (Flink's `WindowedStream`).
pub struct WindowedStream<K, T> {
    keyed: KeyedStream<K, T>,
    windows: Windows,
    lateness: i64,
    late_tag: Option<OutputTag<T>>,
    early_every: Option<i64>,
}

impl<K: Key, T: Send + 'static> WindowedStream<K, T> {
    /// Keeps windows open for `lateness` after they fired; late records within it
    /// update and re-fire the window.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = lateness.as_millis() as i64;
        self
    }

    /// Sends records too late for any window to the side output `tag` instead of
    /// dropping them; read it with [`DataStream::side_output`] on the result.
    pub fn side_output_late_data(mut self, tag: &OutputTag<T>) -> Self {
        self.late_tag = Some(tag.clone());
        self
    }

    /// Early firing (Flink's `ContinuousProcessingTimeTrigger`): every `interval` of
    /// processing time, emit the current result of each open tumbling or sliding
    /// window; the final result still comes when the watermark passes the window.
    pub fn trigger_every(mut self, interval: Duration) -> Self {
        self.early_every = Some(interval.as_millis() as i64);
        self
    }

    /// Aggregates each window incrementally with `agg`.
    pub fn aggregate<A: AggregateFunction<T>>(self, agg: A) -> DataStream<Windowed<K, A::Out>> {
        self.aggregate_on(agg, true)
    }

    fn aggregate_on<A: AggregateFunction<T>>(
        self,
        agg: A,
        exchange: bool,
    ) -> DataStream<Windowed<K, A::Out>> {
        let WindowedStream {
            keyed,
            windows,
            lateness,
            late_tag,
            early_every,
        } = self;
        // State that moves with source partitions needs per-key-group firing
        // marks, which the pane operator keeps.
        let by_partition = keyed.grouper.is_some();
        let (stream, key_fn) = if exchange {
            keyed.exchanged()
        } else {
            (keyed.stream, keyed.key_fn)
        };
        let agg = Arc::new(agg);
        let domain = windows.domain;
        match windows.kind {
            WindowKind::Tumbling { size, offset } => {
                stream.chain_with("window", move |b, id, sub| {
                    let late = b.side_outputs(id, sub).take(late_tag.as_ref());
                    PaneWindowOperator::new(
                        key_fn.clone(),
                        agg.clone(),
                        size,
                        size,
                        offset,
                        domain,
                        lateness,
                        late,
                    )
                    .with_early_firing(early_every)
                })
            }
            WindowKind::Sliding {
                size,
                slide,
                offset,
            } if lateness > 0 || early_every.is_some() || by_partition => {
                stream.chain_with("window", move |b, id, sub| {
                    let late = b.side_outputs(id, sub).take(late_tag.as_ref());
                    PaneWindowOperator::new(
                        key_fn.clone(),
                        agg.clone(),
                        size,
                        slide,
                        offset,
                        domain,
                        lateness,
                        late,
                    )
                    .with_early_firing(early_every)
                })
            }
            WindowKind::Sliding {
                size,
                slide,
                offset,
            } => stream.chain_with("window", move |b, id, sub| {
                let late = b.side_outputs(id, sub).take(late_tag.as_ref());
                SlidingWindowOperator::new(
                    key_fn.clone(),
                    agg.clone(),
                    size,
                    slide,
                    offset,
                    domain,
                    late,
                )
            }),
            WindowKind::Session { gap } => {
                stream.chain_with("session_window", move |b, id, sub| {
                    let late = b.side_outputs(id, sub).take(late_tag.as_ref());
                    SessionWindowOperator::new(
                        key_fn.clone(),
                        agg.clone(),
                        gap,
                        domain,
                        lateness,
                        late,
                    )
                })
            }
            WindowKind::Count { count } => stream.chain_with("count_window", move |_, _, _| {
                CountWindowOperator::new(key_fn.clone(), agg.clone(), count)
            }),
        }
    }

    /// Reduces each window with `f`.
    pub fn reduce(
        self,
        f: impl Fn(&T, &T) -> T + Send + Sync + 'static,
    ) -> DataStream<Windowed<K, T>>
    where
        T: Clone + StateCodec,
    {
        let windowed = self.aggregate(Reduce::new(f));
        let window_op = windowed.last_op;
        let mut out = windowed.flat_map(|w| {
            w.value.map(|value| Windowed {
                key: w.key,
                window: w.window,
                value,
            })
        });
        // Side outputs (late data) belong to the window operator, not the adapter.
        out.last_op = window_op;
        out
    }

    /// Applies `f` to all records of each window (buffers the window's records:
    /// prefer [`WindowedStream::aggregate`] when the function is incremental).
    pub fn apply<O: Send + 'static>(
        self,
        f: impl Fn(&K, crate::TimeWindow, Vec<T>) -> O + Send + Sync + 'static,
    ) -> DataStream<O>
    where
        T: Clone + StateCodec,
    {
        let windowed = self.aggregate(crate::aggregate::Collect);
        let window_op = windowed.last_op;
        let mut out = windowed.map(move |w| f(&w.key, w.window, w.value));
        out.last_op = window_op;
        out
    }
}
