//! [`DataStream`]: a typed stream under construction and its one-to-one operators,
//! exchanges, side outputs, async enrichment and sinks.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::OperatorId;
use crate::error::{EngineError, Result};
use crate::graph::keyed::KeyedStream;
use crate::graph::{BuildCtx, GraphRef};
use crate::io::sink::Sink;
use crate::operators::async_map::{AsyncMapSpec, run_async_task};
use crate::operators::filter::FilterOperator;
use crate::operators::flat_map::{FlatMapOperator, TryFlatMapOperator};
use crate::operators::map::{MapOperator, TryMapOperator};
use crate::operators::process::OutputTag;
use crate::operators::{Operator, SideOutput};
use crate::runtime::channel::{Receiver, Sender, channel};
use crate::runtime::emitter::{ChannelEmitter, Partitioner, Tee};
use crate::runtime::gate::InputGate;
use crate::runtime::node::{BoxNode, ChainNode};
use crate::runtime::status::{EdgeKind, OperatorKind};
use crate::runtime::task::{SinkTaskSpec, run_sink_task};
use crate::state::keyed::Key;

/// Builds the downstream chain of one subtask.
pub(crate) type ChainFactory<T> = Box<dyn FnMut(&mut BuildCtx, usize) -> Result<BoxNode<T>>>;
type Connect<T> = Box<dyn FnOnce(&mut BuildCtx, ChainFactory<T>) -> Result<()>>;

/// A stream of `T` values being defined (Flink's `DataStream`).
///
/// Operators applied with the same parallelism run fused in one task; `key_by`,
/// `rebalance`, `union` and sinks start new tasks connected by bounded channels.
pub struct DataStream<T> {
    pub(crate) graph: GraphRef,
    pub(crate) parallelism: usize,
    pub(crate) checkpointed: bool,
    pub(crate) last_op: Option<OperatorId>,
    /// The operators whose output this stream is, and how it reaches the next one
    /// (edges of the status graph).
    pub(crate) feeds: Vec<(OperatorId, EdgeKind)>,
    pub(crate) connect: Connect<T>,
}

/// Options of [`DataStream::async_map`].
#[derive(Clone, Copy, Debug)]
pub struct AsyncOptions {
    /// Maximum requests in flight per subtask.
    pub capacity: usize,
    /// Per-request timeout; a timed-out record is failed (error policy).
    pub timeout: Duration,
    /// Emit results in input order (`true`) or as they complete (`false`;
    /// watermarks are never overtaken either way).
    pub ordered: bool,
}

impl Default for AsyncOptions {
    fn default() -> Self {
        AsyncOptions {
            capacity: 100,
            timeout: Duration::from_secs(10),
            ordered: true,
        }
    }
}

impl<T: Send + 'static> DataStream<T> {
    pub(crate) fn new(
        graph: GraphRef,
        parallelism: usize,
        checkpointed: bool,
        last_op: Option<OperatorId>,
        connect: Connect<T>,
    ) -> Self {
        DataStream {
            graph,
            parallelism,
            checkpointed,
            last_op,
            feeds: last_op
                .map(|o| (o, EdgeKind::Forward))
                .into_iter()
                .collect(),
            connect,
        }
    }

    /// The parallelism of the operator producing this stream.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// Chains `make`'s operator (built per subtask) after this stream.
    pub(crate) fn chain_with<O: Operator<T>>(
        self,
        name: &str,
        mut make: impl FnMut(&mut BuildCtx, OperatorId, usize) -> O + 'static,
    ) -> DataStream<O::Out> {
        let id = {
            let mut g = self.graph.borrow_mut();
            let id = g.next_operator(name);
            if let Some(grouper) = g.pending_grouper.take() {
                g.groupers.insert(id, grouper);
            }
            g.define(id, OperatorKind::Operator, self.parallelism, &self.feeds);
            id
        };
        let name: Arc<str> = name.into();
        let par = self.parallelism;
        let up = self.connect;
        DataStream {
            graph: self.graph,
            parallelism: par,
            checkpointed: self.checkpointed,
            last_op: Some(id),
            feeds: vec![(id, EdgeKind::Forward)],
            connect: Box::new(move |b, mut down: ChainFactory<O::Out>| {
                up(
                    b,
                    Box::new(move |b: &mut BuildCtx, sub: usize| {
                        let next = down(b, sub)?;
                        let init = b.init(id, name.clone(), sub, par);
                        let op = make(b, id, sub);
                        if !op.can_adopt() {
                            b.not_adopting.insert(name.clone());
                        }
                        if !op.adopts_under_event_time() && b.event_time_from.contains_key(&id) {
                            b.not_adopting_event_time.insert(name.clone());
                        }
                        let stats = b.subtask_stats(id, sub);
                        Ok(Box::new(ChainNode::new(op, init, next, stats)) as BoxNode<T>)
                    }),
                )
            }),
        }
    }

    /// Names the operator that produced this stream (used in metrics labels, logs and
    /// errors such as "operator 'parse' failed on the record at split 0 offset 7").
    pub fn name(self, name: &str) -> Self {
        if let Some(op) = self.last_op {
            self.graph.borrow_mut().names.insert(op, name.into());
        }
        self
    }

    /// Applies a custom [`Operator`] (one instance per subtask), fused with the
    /// previous operator.
    pub fn transform<O: Operator<T>>(
        self,
        name: &str,
        mut make: impl FnMut(usize) -> O + 'static,
    ) -> DataStream<O::Out> {
        self.chain_with(name, move |_, _, sub| make(sub))
    }

    /// Gives the operator that produced this stream a stable uid: its state is
    /// stored and restored under this name, so the pipeline can change around it
    /// (operators added or removed before it) without orphaning its state. Without
    /// one, the uid is the operator's kind and definition index (`window-3`).
    pub fn uid(self, uid: &str) -> Self {
        if let Some(op) = self.last_op {
            self.graph.borrow_mut().uids.insert(op, uid.to_string());
        }
        self
    }

    /// Transforms every value.
    pub fn map<U: Send + 'static>(
        self,
        f: impl Fn(T) -> U + Send + Sync + 'static,
    ) -> DataStream<U> {
        let f = Arc::new(f);
        self.chain_with("map", move |_, _, _| MapOperator::new(f.clone()))
    }

    /// Transforms every value with a fallible function; failures follow the
    /// pipeline's [`crate::ErrorPolicy`].
    pub fn try_map<U: Send + 'static, E: Display + 'static>(
        self,
        f: impl Fn(T) -> std::result::Result<U, E> + Send + Sync + 'static,
    ) -> DataStream<U> {
        let f = Arc::new(f);
        self.chain_with("try_map", move |_, _, _| TryMapOperator::new(f.clone()))
    }

    /// Like [`DataStream::try_map`] with a name used in errors and metrics.
    pub fn try_map_named<U: Send + 'static, E: Display + 'static>(
        self,
        name: &str,
        f: impl Fn(T) -> std::result::Result<U, E> + Send + Sync + 'static,
    ) -> DataStream<U> {
        let f = Arc::new(f);
        self.chain_with(name, move |_, _, _| TryMapOperator::new(f.clone()))
    }

    /// Keeps the values `f` accepts.
    pub fn filter(self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> DataStream<T> {
        let f = Arc::new(f);
        self.chain_with("filter", move |_, _, _| FilterOperator::new(f.clone()))
    }

    /// Expands every value into zero or more values.
    pub fn flat_map<I>(self, f: impl Fn(T) -> I + Send + Sync + 'static) -> DataStream<I::Item>
    where
        I: IntoIterator + 'static,
        I::Item: Send + 'static,
    {
        let f = Arc::new(f);
        self.chain_with("flat_map", move |_, _, _| FlatMapOperator::new(f.clone()))
    }

    /// Expands every value with a fallible function; failures follow the pipeline's
    /// [`crate::ErrorPolicy`] (e.g. parsing a message into several records).
    pub fn try_flat_map<I, E: Display + 'static>(
        self,
        name: &str,
        f: impl Fn(T) -> std::result::Result<I, E> + Send + Sync + 'static,
    ) -> DataStream<I::Item>
    where
        I: IntoIterator + 'static,
        I::Item: Send + 'static,
    {
        let f = Arc::new(f);
        self.chain_with(name, move |_, _, _| TryFlatMapOperator::new(f.clone()))
    }

    /// Partitions the stream by key: records with equal keys go to the same subtask
    /// (via key groups), where keyed state, timers and windows live.
    pub fn key_by<K: Key>(self, f: impl Fn(&T) -> K + Send + Sync + 'static) -> KeyedStream<K, T> {
        let par = self.graph.borrow().config.parallelism;
        self.graph.borrow_mut().hash_keyed = true;
        KeyedStream::new(self, Arc::new(f), par, None)
    }

    /// Keys the stream by `f` when the source already partitioned it by that key
    /// (a Kafka topic keyed by it, written with the default partitioner): each
    /// record stays in its source partition's key group instead of being hashed, so
    /// keyed state belongs to source partitions and moves with them when processes
    /// share the partitions (see [`crate::Pipeline::is_partition_aligned`]). The
    /// source's splits must report [`crate::SourceSplit::key_group`]; a record
    /// without a source partition (made by a window, say) fails under the error
    /// policy.
    pub fn key_by_source_partition<K: Key + AsRef<[u8]>>(
        self,
        f: impl Fn(&T) -> K + Send + Sync + 'static,
    ) -> KeyedStream<K, T> {
        let (par, partitioner) = {
            let g = self.graph.borrow();
            (g.config.parallelism, g.config.source_partitioner.clone())
        };
        let grouper: crate::state::key_group::KeyGroupFn<K> = match partitioner {
            Some(p) => Arc::new(move |k: &K| crate::KeyGroup((p.0)(k.as_ref()))),
            None => {
                self.graph.borrow_mut().definition_error = Some(
                    "key_by_source_partition needs PipelineConfig::source_partitioner (a Kafka job sets it)".into(),
                );
                Arc::new(|_: &K| crate::KeyGroup(0))
            }
        };
        KeyedStream::new(self, Arc::new(f), par, Some(grouper))
    }

    /// The pipeline this stream belongs to (to add a source to it).
    pub fn pipeline(&self) -> crate::Pipeline {
        crate::Pipeline::from_graph(self.graph.clone())
    }

    /// Keys the stream by `f` when the source partitioned it by
    /// `partition_of(key)` (a repartition topic written with that function):
    /// like [`DataStream::key_by_source_partition`], for keys that are not
    /// bytes. Each record must come from the partition `partition_of` names.
    pub fn key_by_partitioned<K: Key>(
        self,
        f: impl Fn(&T) -> K + Send + Sync + 'static,
        partition_of: impl Fn(&K) -> u16 + Send + Sync + 'static,
    ) -> KeyedStream<K, T> {
        let par = self.graph.borrow().config.parallelism;
        let grouper: crate::state::key_group::KeyGroupFn<K> =
            Arc::new(move |k: &K| crate::KeyGroup(partition_of(k)));
        KeyedStream::new(self, Arc::new(f), par, Some(grouper))
    }

    /// Redistributes batches round-robin over `parallelism` new subtasks.
    pub fn rebalance(self, parallelism: usize) -> DataStream<T> {
        self.exchange(
            Partitioner::RoundRobin { next: 0 },
            parallelism.max(1),
            "rebalance",
        )
    }

    /// Merges two streams of the same type (watermark = minimum of both).
    pub fn union(self, other: DataStream<T>) -> DataStream<T> {
        let par = self.parallelism.max(other.parallelism);
        let graph = self.graph.clone();
        let cp = self.checkpointed && other.checkpointed;
        let feeds = self
            .feeds
            .iter()
            .chain(&other.feeds)
            .map(|(o, _)| (*o, EdgeKind::Repartition))
            .collect();
        let mut s = DataStream::new(
            graph,
            par,
            cp,
            None,
            Box::new(move |b, mut down| {
                let inputs = vec![
                    (self, Partitioner::RoundRobin { next: 0 }),
                    (other, Partitioner::RoundRobin { next: 0 }),
                ];
                let gates = gates_from(b, inputs, par)?;
                b.spawn_chain_stage("union", gates, cp, &mut down)
            }),
        );
        s.feeds = feeds;
        s
    }

    pub(crate) fn exchange(
        self,
        part: Partitioner<T>,
        par: usize,
        name: &'static str,
    ) -> DataStream<T> {
        let graph = self.graph.clone();
        let cp = self.checkpointed;
        let edge = match &part {
            Partitioner::Forward => EdgeKind::Forward,
            Partitioner::RoundRobin { .. } => EdgeKind::Repartition,
            Partitioner::Hash { .. } | Partitioner::SourcePartition { .. } => EdgeKind::Hash,
        };
        let feeds = self.feeds.iter().map(|(o, _)| (*o, edge)).collect();
        let mut s = DataStream::new(
            graph,
            par,
            cp,
            None,
            Box::new(move |b, mut down| {
                let gates = gates_from(b, vec![(self, part)], par)?;
                b.spawn_chain_stage(name, gates, cp, &mut down)
            }),
        );
        s.feeds = feeds;
        s
    }

    /// The side output `tag` of the operator that produced this stream (e.g. late
    /// data of a window with [`crate::WindowedStream::side_output_late_data`], or
    /// [`crate::ProcessContext::output`] in a process function).
    pub fn side_output<S: Send + 'static>(&self, tag: &OutputTag<S>) -> DataStream<S> {
        let cap = self.graph.borrow().config.channel_capacity;
        let (mut senders, mut stream) = channel_fed_stream(
            &self.graph,
            self.parallelism,
            self.checkpointed,
            cap,
            "side-output",
        );
        stream.feeds = self
            .last_op
            .map(|o| (o, EdgeKind::Forward))
            .into_iter()
            .collect();
        if let Some(op) = self.last_op {
            self.graph.borrow_mut().sides.insert(
                (op, tag.id),
                Box::new(move |sub: usize, batch: usize| {
                    let tx = senders.get_mut(sub).and_then(Option::take);
                    let emitter = tx.map(|tx| {
                        ChannelEmitter::new(vec![tx], Partitioner::Forward, batch).lenient()
                    });
                    Box::new(SideOutput { emitter })
                }),
            );
        }
        stream
    }

    /// Enriches every value with an async function (e.g. a lookup in an external
    /// service) without blocking the stream: up to `opts.capacity` calls run
    /// concurrently per subtask, each bounded by `opts.timeout`.
    ///
    /// ```
    /// use engine::{AsyncOptions, CollectSink, Pipeline, VecSource, WatermarkStrategy};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let p = Pipeline::new();
    /// let sink = CollectSink::new();
    /// p.source(VecSource::new(vec![1u64, 2, 3]), WatermarkStrategy::no_watermarks())
    ///     .async_map(AsyncOptions::default(), |x| async move { Ok::<_, String>(x * 100) })
    ///     .sink(sink.clone());
    /// p.run().await.unwrap();
    /// assert_eq!(sink.values(), vec![100, 200, 300]);
    /// # });
    /// ```
    pub fn async_map<U, E, Fut>(
        self,
        opts: AsyncOptions,
        f: impl Fn(T) -> Fut + Send + Sync + 'static,
    ) -> DataStream<U>
    where
        U: Send + 'static,
        E: Display + Send + 'static,
        Fut: Future<Output = std::result::Result<U, E>> + Send + 'static,
    {
        let id = {
            let mut g = self.graph.borrow_mut();
            let id = g.next_operator("async_map");
            g.define(id, OperatorKind::Operator, self.parallelism, &self.feeds);
            id
        };
        let par = self.parallelism;
        let cp = self.checkpointed;
        let f = Arc::new(f);
        let graph = self.graph.clone();
        DataStream::new(
            graph,
            par,
            cp,
            Some(id),
            Box::new(move |b, mut down| {
                let gates = gates_from(b, vec![(self, Partitioner::Forward)], par)?;
                let stage = b.new_stage();
                for (j, gate) in gates.into_iter().enumerate() {
                    let chain = down(b, j)?;
                    let stats = b.subtask_stats(id, j);
                    let spec = AsyncMapSpec {
                        name: "async_map".into(),
                        f: f.clone(),
                        opts,
                        stats,
                    };
                    b.spawn(stage, j, "async_map", false, cp, move |env| {
                        Box::pin(run_async_task(gate, spec, chain, env))
                    });
                }
                Ok(())
            }),
        )
    }

    /// Sends every record to two streams (fan-out), e.g. to write one stream to two
    /// sinks. Each branch is a new stage fed by its own bounded channels. Drop a
    /// branch you do not use (its copy is then discarded); a branch that is kept
    /// but never consumed would stall the job through backpressure.
    ///
    /// ```
    /// use engine::{CollectSink, Pipeline, VecSource, WatermarkStrategy};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let p = Pipeline::new();
    /// let (evens, all) = (CollectSink::new(), CollectSink::new());
    /// let (a, b) = p.source(VecSource::new(vec![1, 2, 3, 4]), WatermarkStrategy::no_watermarks()).fork();
    /// a.filter(|x| x % 2 == 0).sink(evens.clone());
    /// b.sink(all.clone());
    /// p.run().await.unwrap();
    /// assert_eq!((evens.values(), all.values()), (vec![2, 4], vec![1, 2, 3, 4]));
    /// # });
    /// ```
    pub fn fork(self) -> (DataStream<T>, DataStream<T>)
    where
        T: Clone,
    {
        let par = self.parallelism;
        let cp = self.checkpointed;
        let graph = self.graph.clone();
        let cap = graph.borrow().config.channel_capacity;
        let (tx_a, mut branch_a) = channel_fed_stream(&graph, par, cp, cap, "fork");
        let (tx_b, mut branch_b) = channel_fed_stream(&graph, par, cp, cap, "fork");
        let feeds: Vec<_> = self
            .feeds
            .iter()
            .map(|(o, _)| (*o, EdgeKind::Broadcast))
            .collect();
        branch_a.feeds = feeds.clone();
        branch_b.feeds = feeds;
        let mut txs = [tx_a, tx_b];
        graph.borrow_mut().add_terminal(Box::new(move |b| {
            let batch = b.config.batch_size;
            (self.connect)(
                b,
                Box::new(move |_b: &mut BuildCtx, sub: usize| {
                    let outputs = txs
                        .iter_mut()
                        .filter_map(|branch| branch.get_mut(sub).and_then(Option::take))
                        .map(|tx| {
                            ChannelEmitter::new(vec![tx], Partitioner::Forward, batch).lenient()
                        })
                        .collect();
                    Ok(Box::new(Tee { outputs }) as BoxNode<T>)
                }),
            )
        }));
        (branch_a, branch_b)
    }

    /// Writes the stream to `sink`; each subtask gets a clone.
    pub fn sink<S: Sink<T> + Clone>(self, sink: S) {
        self.sink_with(move |_| sink.clone())
    }

    /// Writes the stream to the sink `make` builds for each subtask.
    pub fn sink_with<S: Sink<T>>(self, mut make: impl FnMut(usize) -> S + 'static) {
        let graph = self.graph.clone();
        let par = self.parallelism;
        let id = {
            let mut g = graph.borrow_mut();
            let id = g.next_operator("sink");
            g.define(id, OperatorKind::Sink, par, &self.feeds);
            id
        };
        let cp = self.checkpointed;
        graph.borrow_mut().add_terminal(Box::new(move |b| {
            let gates = gates_from(b, vec![(self, Partitioner::Forward)], par)?;
            let stage = b.new_stage();
            for (j, gate) in gates.into_iter().enumerate() {
                let sink = make(j);
                let name = sink.name().to_string();
                let event_time = b.event_time_from.contains_key(&id);
                if !sink.adopts_under_event_time() && event_time {
                    b.not_adopting_event_time.insert(name.as_str().into());
                }
                let init = b.init(id, name.as_str().into(), j, par);
                b.status.name_operator(id, &name);
                let stats = b.subtask_stats(id, j);
                let status = b.status.sink(&name, sink.kind());
                let epoch = b.epoch;
                let close_timeout = b.config.close_timeout;
                b.spawn(stage, j, &name, false, cp, move |env| {
                    Box::pin(run_sink_task(
                        gate,
                        sink,
                        env,
                        SinkTaskSpec {
                            operator: id,
                            parallelism: par,
                            epoch,
                            restored: init.restored,
                            close_timeout,
                            event_time,
                            stats,
                            status,
                        },
                    ))
                });
            }
            Ok(())
        }));
    }
}

/// Creates the channels from the given upstream streams into `par` downstream
/// subtasks, connects the upstreams with channel emitters, and returns one input
/// gate per downstream subtask.
pub(crate) fn gates_from<T: Send + 'static>(
    b: &mut BuildCtx,
    inputs: Vec<(DataStream<T>, Partitioner<T>)>,
    par: usize,
) -> Result<Vec<InputGate<T>>> {
    if par == 0 {
        return Err(EngineError::InvalidPipeline(
            "parallelism must be at least 1".into(),
        ));
    }
    let cap = b.config.channel_capacity;
    let batch = b.config.batch_size;
    let mut rx_per: Vec<Vec<Receiver<T>>> = (0..par).map(|_| Vec::new()).collect();
    for (stream, part) in inputs {
        let up = stream.parallelism;
        let forward = matches!(part, Partitioner::Forward) && up == par;
        let part = match part {
            Partitioner::Forward if !forward => Partitioner::RoundRobin { next: 0 },
            p => p,
        };
        let mut tx_per: Vec<Option<Vec<Sender<T>>>> = Vec::with_capacity(up);
        for i in 0..up {
            let mut txs = Vec::new();
            if forward {
                let (tx, rx) = channel(cap);
                txs.push(tx);
                rx_per[i].push(rx);
            } else {
                for rx_list in rx_per.iter_mut() {
                    let (tx, rx) = channel(cap);
                    txs.push(tx);
                    rx_list.push(rx);
                }
            }
            tx_per.push(Some(txs));
        }
        (stream.connect)(
            b,
            Box::new(move |_b: &mut BuildCtx, sub: usize| {
                let senders = tx_per
                    .get_mut(sub)
                    .and_then(Option::take)
                    .unwrap_or_default();
                Ok(Box::new(ChannelEmitter::new(senders, part.clone(), batch)) as BoxNode<T>)
            }),
        )?;
    }
    Ok(rx_per.into_iter().map(InputGate::new).collect())
}

/// A stream whose tasks read from channels created now (one per subtask); returns
/// the sending halves for the producing side.
fn channel_fed_stream<T: Send + 'static>(
    graph: &GraphRef,
    par: usize,
    checkpointed: bool,
    capacity: usize,
    name: &'static str,
) -> (Vec<Option<Sender<T>>>, DataStream<T>) {
    let mut senders = Vec::with_capacity(par);
    let mut receivers = Vec::with_capacity(par);
    for _ in 0..par {
        let (tx, rx) = channel(capacity);
        senders.push(Some(tx));
        receivers.push(rx);
    }
    let mut receivers = Some(receivers);
    let stream = DataStream::new(
        graph.clone(),
        par,
        checkpointed,
        None,
        Box::new(move |b: &mut BuildCtx, mut down: ChainFactory<T>| {
            let gates = receivers
                .take()
                .unwrap_or_default()
                .into_iter()
                .map(|rx| InputGate::new(vec![rx]))
                .collect();
            b.spawn_chain_stage(name, gates, checkpointed, &mut down)
        }),
    );
    (senders, stream)
}

/// Key hash used by keyed exchanges.
pub(crate) fn key_hasher<K: Hash + 'static, T>(
    f: Arc<dyn Fn(&T) -> K + Send + Sync>,
) -> Arc<dyn Fn(&T) -> u64 + Send + Sync>
where
    T: 'static,
{
    Arc::new(move |v| crate::state::key_group::stable_hash(&f(v)))
}
