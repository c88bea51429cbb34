//! The pipeline builder: [`Pipeline`], [`DataStream`], [`KeyedStream`],
//! [`WindowedStream`], and the plan that turns them into tasks.
//!
//! Building is lazy. Each stream holds a `connect` continuation: "given a factory
//! for the downstream chain of each subtask, build my tasks". A one-to-one operator
//! wraps the factory (so it runs fused in the same task); an exchange (`key_by`,
//! `rebalance`, `union`, sinks) creates channels and starts a new stage. Sinks
//! register terminals; [`Pipeline::start`] runs them all, then spawns the tasks.
//!
//! ```text
//! source ──map──filter──┐ key_by (hash into key groups)
//!   [stage 0, fused]    └────────────> window ──map──> sink
//!                                      [stage 1, fused]  [stage 2]
//! ```

pub(crate) mod keyed;
pub(crate) mod stream;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::checkpoint::{
    Checkpoint, CheckpointStore, CheckpointTracker, Epoch, InMemoryCheckpointStore, OperatorId,
    TaskId,
};
use crate::error::{DeadLetter, EngineError, ErrorPolicy, Result};
use crate::io::source::Source;
use crate::operators::OperatorInit;
use crate::operators::process::{ErasedSide, SideOutputs};
use crate::runtime::catch_up::SentWatermarks;
use crate::runtime::channel::{Outlet, Receiver, Sender, channel};
use crate::runtime::context::TaskCtx;
use crate::runtime::gate::InputGate;
use crate::runtime::job::{JobHandle, JobResult, JobSetup, TaskFuture, TaskSpec, spawn_job};
use crate::runtime::status::{
    EdgeKind, JobStatus, OperatorDef, OperatorKind, SubtaskStats, TaskTimer,
};
use crate::runtime::task::{
    AdoptSplits, JobEvent, SourceTask, TaskEnv, run_chain_task, run_source_task,
};
use crate::time::clock::Clock;
use crate::time::watermark::WatermarkStrategy;

pub use keyed::{KeyedStream, WindowedStream};
pub use stream::{AsyncOptions, DataStream};

/// Settings of a pipeline.
///
/// ```
/// use std::time::Duration;
/// use engine::{ErrorPolicy, PipelineConfig};
/// let c = PipelineConfig::default()
///     .parallelism(2)
///     .error_policy(ErrorPolicy::DeadLetter)
///     .checkpoint_interval(Duration::from_secs(10));
/// assert_eq!(c.parallelism, 2);
/// ```
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Default parallelism of sources and keyed operators.
    pub parallelism: usize,
    /// Number of key groups (upper bound for rescaling keyed state).
    pub max_parallelism: u16,
    /// Records per batch between tasks.
    pub batch_size: usize,
    /// Batches buffered per channel (bounds memory; backpressure beyond it).
    pub channel_capacity: usize,
    /// What happens to records a user function fails.
    pub error_policy: ErrorPolicy,
    /// Periodic checkpoints (none by default; trigger by hand with
    /// [`JobHandle::trigger_checkpoint`]). The first ones of a job come sooner
    /// and ramp up to the interval ([`CheckpointGaps`](crate::checkpoint::CheckpointGaps)).
    pub checkpoint_interval: Option<Duration>,
    /// Whether a periodic checkpoint also comes early, as soon as every source
    /// has read all its input so far and read something since the last
    /// checkpoint, but at most once per [`early_checkpoint_gap`](crate::checkpoint::early_checkpoint_gap) (an eighth of
    /// the interval, at least 100 ms): a transactional sink's output is then
    /// visible when the input pauses instead of at the interval's end, at the
    /// cost of more transactions while input trickles. `None`: off, unless the
    /// runner decides (a Kafka job with an exactly-once sink turns it on).
    pub checkpoint_when_caught_up: Option<bool>,
    /// Processing time at job start (ms); `None` follows the wall clock.
    pub processing_time_start: Option<i64>,
    /// Longest a sink may take to finish (flush and commit) at the end of input,
    /// and a stop's final checkpoint may take.
    pub close_timeout: Duration,
    /// How the source partitioned records by key, for
    /// [`DataStream::key_by_source_partition`] (a Kafka job sets Kafka's default
    /// partitioner over its input's partition count).
    pub source_partitioner: Option<crate::state::key_group::SourcePartitioner>,
    /// Where the job reports its live status (a new registry per start when unset;
    /// give one to keep it across restarts and read it from elsewhere).
    pub status: Option<JobStatus>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            parallelism: 1,
            max_parallelism: 128,
            batch_size: 1024,
            channel_capacity: 4,
            error_policy: ErrorPolicy::Fail,
            checkpoint_interval: None,
            checkpoint_when_caught_up: None,
            processing_time_start: None,
            close_timeout: Duration::from_secs(60),
            source_partitioner: None,
            status: None,
        }
    }
}

impl PipelineConfig {
    /// Sets the default parallelism.
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }
    /// Sets the number of key groups.
    pub fn max_parallelism(mut self, n: u16) -> Self {
        self.max_parallelism = n.max(1);
        self
    }
    /// Sets the batch size.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
    /// Sets the channel capacity in batches.
    pub fn channel_capacity(mut self, n: usize) -> Self {
        self.channel_capacity = n.max(1);
        self
    }
    /// Sets the error policy.
    pub fn error_policy(mut self, p: ErrorPolicy) -> Self {
        self.error_policy = p;
        self
    }
    /// Enables periodic checkpoints.
    pub fn checkpoint_interval(mut self, d: Duration) -> Self {
        self.checkpoint_interval = Some(d);
        self
    }
    /// Sets whether checkpoints come early once the sources caught up (see
    /// [`PipelineConfig::checkpoint_when_caught_up`]).
    pub fn checkpoint_when_caught_up(mut self, on: bool) -> Self {
        self.checkpoint_when_caught_up = Some(on);
        self
    }
    /// Sets how long a sink may take to finish at the end of input.
    pub fn close_timeout(mut self, d: Duration) -> Self {
        self.close_timeout = d;
        self
    }
    /// Sets how the source partitioned records by key.
    pub fn source_partitioner(mut self, f: impl Fn(&[u8]) -> u16 + Send + Sync + 'static) -> Self {
        self.source_partitioner = Some(crate::state::key_group::SourcePartitioner(Arc::new(f)));
        self
    }
    /// Reports the job's live status to `status`.
    pub fn status(mut self, status: JobStatus) -> Self {
        self.status = Some(status);
        self
    }
    /// Fixes processing time at job start (tests).
    pub fn processing_time_start(mut self, ms: i64) -> Self {
        self.processing_time_start = Some(ms);
        self
    }
}

type Terminal = Box<dyn FnOnce(&mut BuildCtx) -> Result<()>>;
type SideFactory = Box<dyn FnMut(usize, usize) -> Box<dyn ErasedSide>>;

pub(crate) struct Graph {
    pub(crate) config: PipelineConfig,
    next_op: u32,
    /// Kind of every operator ("map", "window", a source's name, ...), for default uids.
    kinds: HashMap<OperatorId, Arc<str>>,
    /// Uids given with [`DataStream::uid`].
    pub(crate) uids: HashMap<OperatorId, String>,
    /// Whether some exchange hashes keys into key groups (state then cannot follow
    /// source partitions).
    pub(crate) hash_keyed: bool,
    /// The sources that have event time.
    pub(crate) event_time_sources: BTreeSet<OperatorId>,
    /// A key-to-key-group function the next keyed operator takes (set by a
    /// source-partitioned keyed stream).
    pub(crate) pending_grouper: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// Key-to-key-group functions of keyed operators, by operator.
    pub(crate) groupers: HashMap<OperatorId, Arc<dyn std::any::Any + Send + Sync>>,
    /// A mistake found while the pipeline was defined, reported by `start`.
    pub(crate) definition_error: Option<String>,
    durable: Option<Arc<dyn CheckpointStore>>,
    terminals: Vec<Terminal>,
    pub(crate) sides: HashMap<(OperatorId, u64), SideFactory>,
    /// Names given with [`DataStream::name`].
    pub(crate) names: HashMap<OperatorId, Arc<str>>,
    dead_letter_tx: Option<Sender<DeadLetter>>,
    restore: Option<Checkpoint>,
    /// The operator graph as the status reports it.
    pub(crate) defs: BTreeMap<OperatorId, OperatorDef>,
    pub(crate) edges: BTreeSet<(OperatorId, OperatorId, EdgeKind)>,
}

pub(crate) type GraphRef = Rc<RefCell<Graph>>;

impl Graph {
    pub(crate) fn next_operator(&mut self, kind: &str) -> OperatorId {
        let id = OperatorId(self.next_op);
        self.next_op += 1;
        self.kinds.insert(id, kind.into());
        id
    }

    /// Every operator's uid: the one given, else `kind-index`.
    fn uid_table(&self) -> Result<BTreeMap<OperatorId, String>> {
        let mut table = BTreeMap::new();
        let mut seen: HashMap<&str, OperatorId> = HashMap::new();
        for (id, uid) in &self.uids {
            if let Some(other) = seen.insert(uid.as_str(), *id) {
                return Err(EngineError::InvalidPipeline(format!(
                    "uid {uid:?} is given to two operators (#{} and #{})",
                    other.0, id.0
                )));
            }
        }
        for n in 0..self.next_op {
            let id = OperatorId(n);
            let uid = match self.uids.get(&id) {
                Some(uid) => uid.clone(),
                None => {
                    let kind = self.kinds.get(&id).map_or("operator", |k| &**k);
                    format!("{kind}-{n}")
                }
            };
            table.insert(id, uid);
        }
        Ok(table)
    }
    /// For each operator, the sources with event time upstream of it (edges
    /// run from lower ids to higher ones: an operator is defined after what
    /// feeds it).
    fn event_time_from(&self) -> BTreeMap<OperatorId, BTreeSet<OperatorId>> {
        let mut from: BTreeMap<OperatorId, BTreeSet<OperatorId>> = self
            .event_time_sources
            .iter()
            .map(|s| (*s, BTreeSet::from([*s])))
            .collect();
        for (up, down, _) in &self.edges {
            if let Some(sources) = from.get(up).cloned() {
                from.entry(*down).or_default().extend(sources);
            }
        }
        from
    }

    /// Records operator `id` for the status, fed by `feeds`.
    pub(crate) fn define(
        &mut self,
        id: OperatorId,
        kind: OperatorKind,
        parallelism: usize,
        feeds: &[(OperatorId, EdgeKind)],
    ) {
        let name = self.kinds.get(&id).map_or("operator", |k| &**k).to_string();
        self.defs.insert(
            id,
            OperatorDef {
                name,
                kind,
                parallelism,
            },
        );
        for (from, edge) in feeds {
            self.edges.insert((*from, id, *edge));
        }
    }

    pub(crate) fn add_terminal(&mut self, t: Terminal) {
        self.terminals.push(t);
    }
}

/// Everything tasks are built from, at [`Pipeline::start`].
pub(crate) struct BuildCtx {
    pub(crate) config: PipelineConfig,
    pub(crate) restore: Option<Checkpoint>,
    pub(crate) epoch: Epoch,
    pub(crate) clock: Clock,
    next_stage: u32,
    tasks: Vec<TaskSpec>,
    events_tx: mpsc::UnboundedSender<JobEvent>,
    dead_letter_tx: Option<Sender<DeadLetter>>,
    sides: HashMap<(OperatorId, u64), SideFactory>,
    names: HashMap<OperatorId, Arc<str>>,
    groupers: HashMap<OperatorId, Arc<dyn std::any::Any + Send + Sync>>,
    pub(crate) status: JobStatus,
    /// Counters of the operators of the task being built (its chain), taken by
    /// the next `spawn`.
    members: Vec<Arc<SubtaskStats>>,
    /// Operators that cannot take on key groups while the job runs.
    pub(crate) not_adopting: std::collections::BTreeSet<Arc<str>>,
    /// Operators and sinks fed by a source with event time that cannot take
    /// key groups on while the job runs.
    pub(crate) not_adopting_event_time: std::collections::BTreeSet<Arc<str>>,
    /// For each operator and sink, the sources with event time it reads from
    /// (directly or through other operators).
    pub(crate) event_time_from: BTreeMap<OperatorId, BTreeSet<OperatorId>>,
}

impl BuildCtx {
    /// The counters of subtask `sub` of operator `id`, which belongs to the task
    /// spawned next.
    pub(crate) fn subtask_stats(&mut self, id: OperatorId, sub: usize) -> Arc<SubtaskStats> {
        let s = self.status.subtask(id, sub);
        self.members.push(s.clone());
        s
    }

    pub(crate) fn new_stage(&mut self) -> u32 {
        self.next_stage += 1;
        self.next_stage - 1
    }

    pub(crate) fn init(
        &self,
        id: OperatorId,
        name: Arc<str>,
        subtask: usize,
        parallelism: usize,
    ) -> OperatorInit {
        let name = self.names.get(&id).cloned().unwrap_or(name);
        let mut init = OperatorInit::new(
            id,
            name,
            subtask,
            parallelism,
            self.config.max_parallelism,
            self.restore.as_ref(),
        );
        init.grouper = self.groupers.get(&id).cloned();
        init
    }

    /// The side outputs some stream consumes from operator `op`.
    pub(crate) fn side_outputs(&mut self, op: OperatorId, subtask: usize) -> SideOutputs {
        let batch = self.config.batch_size;
        let mut outs = SideOutputs::default();
        for ((o, tag), f) in self.sides.iter_mut() {
            if *o == op {
                outs.outputs.push((*tag, f(subtask, batch)));
            }
        }
        outs
    }

    pub(crate) fn spawn(
        &mut self,
        stage: u32,
        subtask: usize,
        name: &str,
        is_source: bool,
        checkpointed: bool,
        make: impl FnOnce(TaskEnv) -> TaskFuture,
    ) {
        let id = TaskId {
            stage,
            subtask: subtask as u32,
        };
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let task_name: Arc<str> = format!("{name}#{subtask}").into();
        let dead_letters = if checkpointed {
            self.dead_letter_tx.clone().map(Outlet::new)
        } else {
            None
        };
        let mut ctx = TaskCtx::new(
            id,
            task_name.clone(),
            subtask,
            self.clock,
            self.config.error_policy,
            dead_letters,
            self.config.batch_size,
        );
        ctx.timer = TaskTimer::new(std::mem::take(&mut self.members));
        ctx.status = Some(self.status.clone());
        let env = TaskEnv {
            ctx,
            control: ctl_rx,
            events: self.events_tx.clone(),
            checkpointed,
            pending_control: std::collections::VecDeque::new(),
        };
        let future = make(env);
        self.tasks.push(TaskSpec {
            id,
            name: task_name.to_string(),
            is_source,
            checkpointed,
            control: ctl_tx,
            future,
        });
    }

    /// Spawns one chain task per gate.
    pub(crate) fn spawn_chain_stage<T: Send + 'static>(
        &mut self,
        name: &str,
        gates: Vec<InputGate<T>>,
        checkpointed: bool,
        down: &mut stream::ChainFactory<T>,
    ) -> Result<()> {
        let stage = self.new_stage();
        for (j, gate) in gates.into_iter().enumerate() {
            let chain = down(self, j)?;
            self.spawn(stage, j, name, false, checkpointed, move |env| {
                Box::pin(run_chain_task(gate, chain, env))
            });
        }
        Ok(())
    }
}

/// A dataflow program: define sources, transformations and sinks, then run it.
///
/// ```
/// use engine::{CollectSink, Pipeline, PipelineConfig, VecSource, WatermarkStrategy};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let p = Pipeline::with_config(PipelineConfig::default().parallelism(2));
/// let sink = CollectSink::new();
/// p.source(VecSource::with_splits(vec![vec![1, 2], vec![3, 4]]), WatermarkStrategy::no_watermarks())
///     .map(|x| x + 1)
///     .sink(sink.clone());
/// p.run().await.unwrap();
/// let mut out = sink.values();
/// out.sort();
/// assert_eq!(out, vec![2, 3, 4, 5]);
/// # });
/// ```
pub struct Pipeline {
    graph: GraphRef,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipeline {
    /// A pipeline with the default configuration.
    pub fn new() -> Self {
        Self::with_config(PipelineConfig::default())
    }

    /// A pipeline with `config`.
    pub fn with_config(config: PipelineConfig) -> Self {
        Pipeline {
            graph: Rc::new(RefCell::new(Graph {
                config,
                next_op: 0,
                kinds: HashMap::new(),
                uids: HashMap::new(),
                hash_keyed: false,
                event_time_sources: BTreeSet::new(),
                pending_grouper: None,
                groupers: HashMap::new(),
                definition_error: None,
                durable: None,
                terminals: Vec::new(),
                sides: HashMap::new(),
                names: HashMap::new(),
                dead_letter_tx: None,
                restore: None,
                defs: BTreeMap::new(),
                edges: BTreeSet::new(),
            })),
        }
    }

    pub(crate) fn from_graph(graph: GraphRef) -> Self {
        Pipeline { graph }
    }

    /// Whether a source defined so far has event time (a watermark strategy
    /// with watermarks).
    pub fn has_event_time(&self) -> bool {
        !self.graph.borrow().event_time_sources.is_empty()
    }

    /// The configuration.
    pub fn config(&self) -> PipelineConfig {
        self.graph.borrow().config.clone()
    }

    /// Restores every operator's state, source positions and sink transactions from
    /// `checkpoint` when the job starts. State is matched to operators by uid
    /// ([`DataStream::uid`]); state whose uid this pipeline lacks is dropped with a
    /// warning. A checkpoint without uids is matched by definition order.
    pub fn restore_from(&self, checkpoint: Checkpoint) {
        self.graph.borrow_mut().restore = Some(checkpoint);
    }

    /// Writes every checkpoint durably to `store`; a checkpoint completes only once
    /// that write succeeded.
    pub fn checkpoint_store(&self, store: Arc<dyn CheckpointStore>) {
        self.graph.borrow_mut().durable = Some(store);
    }

    /// Whether all keyed state of the pipeline belongs to source partitions: no
    /// `key_by` hashes keys into key groups (only
    /// [`DataStream::key_by_source_partition`] is used, or nothing is keyed). Only
    /// such a pipeline can run as several processes that share the source's
    /// partitions, each keeping the state of its own partitions.
    pub fn is_partition_aligned(&self) -> bool {
        !self.graph.borrow().hash_keyed
    }

    /// The uid of every operator defined so far (see [`DataStream::uid`]).
    pub fn uids(&self) -> Result<BTreeMap<OperatorId, String>> {
        self.graph.borrow().uid_table()
    }

    /// Adds a source with the default parallelism.
    pub fn source<T: Send + 'static, S: Source<T>>(
        &self,
        source: S,
        strategy: WatermarkStrategy<T>,
    ) -> DataStream<T> {
        let p = self.graph.borrow().config.parallelism;
        self.source_with_parallelism(source, strategy, p)
    }

    /// Adds a source read by `parallelism` tasks; split `i` goes to task
    /// `i % parallelism`.
    pub fn source_with_parallelism<T: Send + 'static, S: Source<T>>(
        &self,
        source: S,
        strategy: WatermarkStrategy<T>,
        parallelism: usize,
    ) -> DataStream<T> {
        let par = parallelism.max(1);
        let id = {
            let mut g = self.graph.borrow_mut();
            let id = g.next_operator(source.name());
            g.define(id, OperatorKind::Source, par, &[]);
            if strategy.watermarks {
                g.event_time_sources.insert(id);
            }
            id
        };
        let name: Arc<str> = source.name().into();
        let mut source = source;
        DataStream::new(
            self.graph.clone(),
            par,
            true,
            Some(id),
            Box::new(move |b: &mut BuildCtx, mut down: stream::ChainFactory<T>| {
                let splits = source.create_splits()?;
                let bounded = source.is_bounded();
                let keep_positions = source.checkpoints_positions();
                if splits.len() > usize::from(u16::MAX) {
                    return Err(EngineError::InvalidPipeline(format!(
                        "source '{name}' has too many splits"
                    )));
                }
                let mut per: Vec<Vec<_>> = (0..par).map(|_| Vec::new()).collect();
                for (i, s) in splits.into_iter().enumerate() {
                    per[i % par].push((i as u16, s));
                }
                // Kept for splits of key groups adopted while the job runs.
                let source: AdoptSplits<T> = Arc::new(std::sync::Mutex::new(source));
                let sent = Arc::new(SentWatermarks::new(par));
                let stage = b.new_stage();
                for (sub, splits) in per.into_iter().enumerate() {
                    let stats = b.subtask_stats(id, sub);
                    let chain = down(b, sub)?;
                    // Split positions are stored per split index, not per subtask.
                    let restored = b
                        .restore
                        .as_ref()
                        .and_then(|c| c.operators.get(&id).cloned());
                    let spec = SourceTask {
                        name: name.clone(),
                        operator: id,
                        splits,
                        strategy: strategy.clone(),
                        restored,
                        bounded,
                        keep_positions,
                        stats,
                        source: source.clone(),
                        parallelism: par,
                        sent: sent.clone(),
                    };
                    b.spawn(stage, sub, &name, true, true, move |env| {
                        Box::pin(run_source_task(spec, chain, env))
                    });
                }
                Ok(())
            }),
        )
    }

    /// The stream of records failed by user functions under
    /// [`ErrorPolicy::DeadLetter`] (parallelism 1, not part of checkpoints).
    pub fn dead_letters(&self) -> DataStream<DeadLetter> {
        let cap = self.graph.borrow().config.channel_capacity;
        let (tx, rx) = channel::<DeadLetter>(cap * 16);
        self.graph.borrow_mut().dead_letter_tx = Some(tx);
        let mut rx: Option<Receiver<DeadLetter>> = Some(rx);
        DataStream::new(
            self.graph.clone(),
            1,
            false,
            None,
            Box::new(move |b: &mut BuildCtx, mut down| {
                let gates = vec![InputGate::ended_by_close(rx.take().into_iter().collect())];
                b.spawn_chain_stage("dead-letters", gates, false, &mut down)
            }),
        )
    }

    /// Builds every task and starts the job on the current tokio runtime.
    pub fn start(self) -> Result<JobHandle> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(EngineError::InvalidPipeline(
                "start() must be called inside a tokio runtime".into(),
            ));
        }
        let mut g = self.graph.borrow_mut();
        if let Some(e) = g.definition_error.take() {
            return Err(EngineError::InvalidPipeline(e));
        }
        if g.terminals.is_empty() {
            return Err(EngineError::InvalidPipeline(
                "the pipeline has no sink".into(),
            ));
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let uids = g.uid_table()?;
        let event_time_from = g.event_time_from();
        let restore = g.restore.take().map(|cp| {
            let current: BTreeMap<String, OperatorId> =
                uids.iter().map(|(id, uid)| (uid.clone(), *id)).collect();
            let (cp, orphaned) = cp.remap(&current);
            for uid in orphaned {
                tracing::warn!(
                    uid,
                    checkpoint = cp.id.0,
                    "the checkpoint holds state of an operator this pipeline does not have; it is dropped"
                );
            }
            cp
        });
        let epoch = restore.as_ref().map_or(Epoch(0), |c| Epoch(c.epoch.0 + 1));
        let status = g
            .config
            .status
            .clone()
            .unwrap_or_else(|| JobStatus::new("job"));
        let mut defs = g.defs.clone();
        for (id, d) in defs.iter_mut() {
            if let Some(n) = g.names.get(id) {
                d.name = n.to_string();
            }
        }
        status.set_graph(defs, g.edges.clone());
        let clock = match g.config.processing_time_start {
            Some(ms) => Clock::starting_at(ms),
            None => Clock::system(),
        };
        let mut b = BuildCtx {
            config: g.config.clone(),
            restore: restore.clone(),
            epoch,
            clock,
            next_stage: 0,
            tasks: Vec::new(),
            events_tx: events_tx.clone(),
            dead_letter_tx: g.dead_letter_tx.take(),
            sides: std::mem::take(&mut g.sides),
            names: std::mem::take(&mut g.names),
            groupers: std::mem::take(&mut g.groupers),
            status: status.clone(),
            members: Vec::new(),
            not_adopting: Default::default(),
            not_adopting_event_time: Default::default(),
            event_time_from,
        };
        let terminals = std::mem::take(&mut g.terminals);
        let durable = g.durable.clone();
        drop(g);
        for t in terminals {
            t(&mut b)?;
        }
        // Unconsumed side outputs and the builder's dead-letter sender must not keep
        // channels open.
        b.dead_letter_tx = None;
        b.sides.clear();
        let tasks = std::mem::take(&mut b.tasks);
        let tracker = CheckpointTracker::new(
            tasks
                .iter()
                .filter(|t| t.checkpointed)
                .map(|t| (t.id, t.is_source)),
            restore.as_ref().map(|c| (c.id, c.epoch)),
        );
        let list = |names: &std::collections::BTreeSet<Arc<str>>| {
            names.iter().map(|n| &**n).collect::<Vec<&str>>().join(", ")
        };
        let adopt_refused = if !b.not_adopting.is_empty() {
            Some(format!("operator(s) {} cannot", list(&b.not_adopting)))
        } else if let Some((op, _)) = b.event_time_from.iter().find(|(_, from)| from.len() > 1) {
            // Each source tells when its adopted split of a key group caught
            // up; an operator would not know how many to wait for.
            let name = b
                .status
                .operator_name(*op)
                .unwrap_or_else(|| format!("operator #{}", op.0));
            Some(format!("{name} reads from several sources with event time"))
        } else if !b.not_adopting_event_time.is_empty() {
            Some(format!(
                "its sources have event time, and {} cannot hold an adopted partition's records back until it catches up",
                list(&b.not_adopting_event_time)
            ))
        } else {
            None
        };
        tracing::info!(tasks = tasks.len(), epoch = epoch.0, "starting job");
        status.set_state(crate::runtime::status::JobState::Running);
        Ok(spawn_job(JobSetup {
            tasks,
            events_tx,
            events_rx,
            tracker,
            store: InMemoryCheckpointStore::new(3),
            durable,
            uids,
            interval: b.config.checkpoint_interval,
            early_gap: b
                .config
                .checkpoint_interval
                .filter(|_| b.config.checkpoint_when_caught_up == Some(true))
                .map(crate::checkpoint::early_checkpoint_gap),
            stop_timeout: b.config.close_timeout,
            clock,
            status,
            adopt_refused,
        }))
    }

    /// Starts the job and waits until it ends (bounded inputs run to completion).
    pub fn run(self) -> impl Future<Output = Result<JobResult>> + Send {
        let handle = self.start();
        async move { handle?.wait().await }
    }

    /// Runs the job to completion on a new multi-threaded tokio runtime.
    pub fn execute(self) -> Result<JobResult> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| EngineError::InvalidPipeline(format!("cannot build runtime: {e}")))?;
        rt.block_on(async move { self.run().await })
    }
}
