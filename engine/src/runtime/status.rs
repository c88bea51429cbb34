//! [`JobStatus`]: the live status of a job, updated by its tasks, sources, sinks
//! and checkpoint coordinator, read by a status page or API as a
//! [`JobStatusSnapshot`].
//!
//! ```text
//!  caller: JobStatus::new(name) ──► PipelineConfig::status ──► every incarnation's job
//!   build:  operator graph (ids, names, kinds, parallelism, edges)
//!   tasks:  per operator subtask records in/out, busy / backpressured time (atomics)
//!   splits: per partition position, log end, watermark, idle (atomics + gauges)
//!   sinks:  records, transactions, flush time; recent result rows (bounded rings)
//!   coordinator: checkpoints (bounded history); errors (bounded); dead letters
//!  reader: snapshot() ──► rates over the last ~5 s, lag = log end - position
//! ```
//!
//! Updates are atomics or one short lock per batch or checkpoint; nothing is
//! allocated per record. The registry outlives job incarnations (the caller keeps
//! it), so totals keep counting across restarts.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::checkpoint::OperatorId;

/// Checkpoints kept in [`CheckpointsSnapshot::history`].
pub const CHECKPOINT_HISTORY: usize = 50;
/// Errors kept in [`JobStatusSnapshot::errors`].
pub const ERROR_HISTORY: usize = 20;
/// Rows kept per sink in [`ResultsSnapshot::rows`].
pub const RESULT_ROWS: usize = 200;
/// The window rates and ratios are computed over.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Unknown log end or watermark.
const UNKNOWN: i64 = i64::MIN;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum JobState {
    /// Connecting, joining a group, defining the pipeline.
    Starting,
    /// Reading state back (changelogs, a checkpoint).
    Restoring,
    /// Processing records.
    Running,
    /// Its bounded input ended.
    Finished,
    /// It failed.
    Failed,
    /// It was stopped.
    Stopped,
    /// Waiting while another process of its group runs the pipeline (one that
    /// runs as a single process), to take over when that one leaves.
    Standby,
}

impl JobState {
    fn from_u8(v: u8) -> JobState {
        match v {
            1 => JobState::Restoring,
            2 => JobState::Running,
            3 => JobState::Finished,
            4 => JobState::Failed,
            5 => JobState::Stopped,
            6 => JobState::Standby,
            _ => JobState::Starting,
        }
    }
}

/// What an operator is in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum OperatorKind {
    /// Reads from outside.
    Source,
    /// Transforms records.
    Operator,
    /// Writes outside.
    Sink,
}

/// How records travel along an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum EdgeKind {
    /// Same subtask, no exchange (fused or one channel per subtask).
    Forward,
    /// By key group of a key.
    Hash,
    /// Every record to every consumer.
    Broadcast,
    /// Round-robin over the consumers.
    Repartition,
}

/// An operator as defined.
#[derive(Debug, Clone)]
pub(crate) struct OperatorDef {
    pub(crate) name: String,
    pub(crate) kind: OperatorKind,
    pub(crate) parallelism: usize,
}

/// Counters of one operator subtask.
#[derive(Debug, Default)]
pub struct SubtaskStats {
    records_in: AtomicU64,
    records_out: AtomicU64,
    busy_ns: AtomicU64,
    backpressured_ns: AtomicU64,
}

impl SubtaskStats {
    /// Counts records taken in.
    #[inline]
    pub fn add_in(&self, n: u64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
    }
    /// Counts records handed on.
    #[inline]
    pub fn add_out(&self, n: u64) {
        self.records_out.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds time spent working.
    #[inline]
    pub fn add_busy(&self, d: Duration) {
        self.busy_ns.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }
    /// Adds time spent blocked sending downstream.
    #[inline]
    pub fn add_backpressured(&self, d: Duration) {
        self.backpressured_ns.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }
}

/// Busy and backpressured time of a task, shared by the operators fused in it.
///
/// Busy is the time between the end of one wait (for input, control or timers)
/// and the start of the next, minus the time blocked on full output channels.
#[derive(Debug)]
pub(crate) struct TaskTimer {
    members: Vec<Arc<SubtaskStats>>,
    last: Instant,
}

impl TaskTimer {
    pub(crate) fn new(members: Vec<Arc<SubtaskStats>>) -> TaskTimer {
        TaskTimer {
            members,
            last: Instant::now(),
        }
    }

    /// The task is about to wait for input: what ran since the last mark was work.
    pub(crate) fn wait_start(&mut self) {
        let now = Instant::now();
        let d = now.saturating_duration_since(self.last);
        for m in &self.members {
            m.add_busy(d);
        }
        self.last = now;
    }

    /// The wait ended.
    pub(crate) fn wait_end(&mut self) {
        self.last = Instant::now();
    }

    /// The task was blocked sending downstream from `since` until now.
    pub(crate) fn backpressured(&mut self, since: Instant) {
        let now = Instant::now();
        let busy = since.saturating_duration_since(self.last);
        let blocked = now.saturating_duration_since(since);
        for m in &self.members {
            m.add_busy(busy);
            m.add_backpressured(blocked);
        }
        self.last = now;
    }
}

/// One source partition: position, log end, watermark, idleness; each update also
/// sets the partition's Prometheus gauges.
#[derive(Debug)]
pub struct PartitionStatus {
    topic: String,
    partition: i32,
    position: AtomicI64,
    log_end: AtomicI64,
    watermark: AtomicI64,
    idle: AtomicBool,
    offset_gauge: metrics::Gauge,
    lag_gauge: metrics::Gauge,
    watermark_gauge: metrics::Gauge,
    idle_gauge: metrics::Gauge,
}

impl PartitionStatus {
    fn new(topic: &str, partition: i32) -> PartitionStatus {
        let labels = [
            ("topic", topic.to_string()),
            ("partition", partition.to_string()),
        ];
        PartitionStatus {
            topic: topic.to_string(),
            partition,
            position: AtomicI64::new(UNKNOWN),
            log_end: AtomicI64::new(UNKNOWN),
            watermark: AtomicI64::new(UNKNOWN),
            idle: AtomicBool::new(false),
            offset_gauge: metrics::gauge!("strom_source_partition_offset", &labels),
            lag_gauge: metrics::gauge!("strom_source_partition_lag", &labels),
            watermark_gauge: metrics::gauge!("strom_source_partition_watermark_seconds", &labels),
            idle_gauge: metrics::gauge!("strom_source_partition_idle", &labels),
        }
    }

    /// The next offset to read.
    pub fn set_position(&self, offset: i64) {
        self.position.store(offset, Ordering::Relaxed);
        self.offset_gauge.set(offset as f64);
        self.update_lag();
    }

    /// Where the partition ends now (high watermark, or last stable offset under
    /// read_committed).
    pub fn set_log_end(&self, offset: i64) {
        if offset < 0 {
            return;
        }
        self.log_end.store(offset, Ordering::Relaxed);
        self.update_lag();
    }

    /// The partition's watermark (ms since the epoch).
    pub fn set_watermark(&self, ms: i64) {
        if self.watermark.swap(ms, Ordering::Relaxed) != ms {
            self.watermark_gauge.set(ms as f64 / 1000.0);
        }
    }

    /// Whether the partition is idle (no records for the idleness timeout).
    pub fn set_idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::Relaxed);
        self.idle_gauge.set(if idle { 1.0 } else { 0.0 });
    }

    /// Records between the position and the log end, if both are known.
    pub fn lag(&self) -> Option<i64> {
        lag(
            self.position.load(Ordering::Relaxed),
            self.log_end.load(Ordering::Relaxed),
        )
    }

    fn update_lag(&self) {
        if let Some(l) = self.lag() {
            self.lag_gauge.set(l as f64);
        }
    }

    fn snapshot(&self) -> PartitionSnapshot {
        let known = |v: i64| (v != UNKNOWN).then_some(v);
        PartitionSnapshot {
            topic: self.topic.clone(),
            partition: self.partition,
            position: known(self.position.load(Ordering::Relaxed)),
            log_end: known(self.log_end.load(Ordering::Relaxed)),
            lag: self.lag(),
            watermark: known(self.watermark.load(Ordering::Relaxed))
                .filter(|w| *w > i64::MIN + 1 && *w < i64::MAX),
            idle: self.idle.load(Ordering::Relaxed),
        }
    }
}

/// Lag of a partition: records from `position` to `log_end` (never negative).
fn lag(position: i64, log_end: i64) -> Option<i64> {
    (position != UNKNOWN && log_end != UNKNOWN).then(|| (log_end - position).max(0))
}

/// One sink's counters.
#[derive(Debug)]
pub struct SinkStatus {
    name: String,
    kind: String,
    records: AtomicU64,
    committed: AtomicU64,
    aborted: AtomicU64,
    records_counter: metrics::Counter,
    committed_counter: metrics::Counter,
    aborted_counter: metrics::Counter,
    flush: metrics::Histogram,
}

impl SinkStatus {
    fn new(name: &str, kind: &str) -> SinkStatus {
        let labels = [("sink", name.to_string())];
        SinkStatus {
            name: name.to_string(),
            kind: kind.to_string(),
            records: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            aborted: AtomicU64::new(0),
            records_counter: metrics::counter!("strom_sink_records_total", &labels),
            committed_counter: metrics::counter!(
                "strom_sink_transactions_committed_total",
                &labels
            ),
            aborted_counter: metrics::counter!("strom_sink_transactions_aborted_total", &labels),
            flush: metrics::histogram!("strom_sink_flush_seconds", &labels),
        }
    }

    /// Counts records written.
    pub fn add_records(&self, n: u64) {
        self.records.fetch_add(n, Ordering::Relaxed);
        self.records_counter.increment(n);
    }

    /// Counts a committed transaction (a completed checkpoint's commit).
    pub fn committed(&self) {
        self.committed.fetch_add(1, Ordering::Relaxed);
        self.committed_counter.increment(1);
    }

    /// Counts an aborted transaction (a rollback).
    pub fn aborted(&self) {
        self.aborted.fetch_add(1, Ordering::Relaxed);
        self.aborted_counter.increment(1);
    }

    /// Records how long a flush (the pre-commit at a barrier) took.
    pub fn flushed(&self, took: Duration) {
        self.flush.record(took.as_secs_f64());
    }
}

/// A value of a result row, as JSON understands it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(untagged))]
pub enum ResultValue {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (timestamps are ms since the epoch).
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text.
    Text(Arc<str>),
}

/// The recent rows one sink wrote (at most [`RESULT_ROWS`], newest last).
#[derive(Debug)]
pub struct ResultRing {
    columns: Vec<String>,
    types: Vec<String>,
    rows: Mutex<VecDeque<Vec<ResultValue>>>,
}

impl ResultRing {
    /// Adds the rows of one batch; only the last [`RESULT_ROWS`] of a batch are
    /// converted (`convert` is called for those alone).
    pub fn push_batch<T>(&self, batch: &[T], convert: impl Fn(&T) -> Vec<ResultValue>) {
        let tail = &batch[batch.len().saturating_sub(RESULT_ROWS)..];
        if tail.is_empty() {
            return;
        }
        let rows: Vec<Vec<ResultValue>> = tail.iter().map(convert).collect();
        let mut ring = lock(&self.rows);
        for r in rows {
            if ring.len() == RESULT_ROWS {
                ring.pop_front();
            }
            ring.push_back(r);
        }
    }
}

#[derive(Debug, Default)]
struct Checkpoints {
    completed: u64,
    failed: u64,
    last_id: Option<u64>,
    last_completed_at: Option<i64>,
    restore_ms: Option<u64>,
    /// Started but not yet completed or failed: id -> (wall ms, monotonic start).
    started: BTreeMap<u64, (i64, Instant)>,
    history: VecDeque<CheckpointEntry>,
}

impl Checkpoints {
    fn push(&mut self, e: CheckpointEntry) {
        if self.history.len() == CHECKPOINT_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(e);
    }
}

#[derive(Debug, Default)]
struct Graph {
    operators: BTreeMap<OperatorId, OperatorDef>,
    edges: BTreeSet<(OperatorId, OperatorId, EdgeKind)>,
    subtasks: BTreeMap<(OperatorId, usize), Arc<SubtaskStats>>,
}

/// Totals per operator at one time, for rates.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    records_in: u64,
    records_out: u64,
    busy_ns: u64,
    backpressured_ns: u64,
}

#[derive(Debug)]
struct Inner {
    name: Mutex<String>,
    state: AtomicU8,
    started_at: i64,
    incarnation: AtomicU64,
    dead_letters: AtomicU64,
    graph: Mutex<Graph>,
    partitions: Mutex<BTreeMap<(String, i32), Arc<PartitionStatus>>>,
    sinks: Mutex<BTreeMap<String, Arc<SinkStatus>>>,
    results: Mutex<BTreeMap<String, Arc<ResultRing>>>,
    checkpoints: Mutex<Checkpoints>,
    errors: Mutex<VecDeque<ErrorEntry>>,
    samples: Mutex<VecDeque<(Instant, HashMap<OperatorId, Totals>)>>,
}

/// The live status of one job (cheap to clone: every clone is the same registry).
///
/// ```
/// use engine::{CollectSink, JobStatus, Pipeline, PipelineConfig, VecSource, WatermarkStrategy};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let status = JobStatus::new("demo");
/// let p = Pipeline::with_config(PipelineConfig::default().status(status.clone()));
/// p.source(VecSource::new(vec![1, 2, 3]), WatermarkStrategy::no_watermarks())
///     .map(|x| x * 2)
///     .sink(CollectSink::new());
/// p.run().await.unwrap();
/// let s = status.snapshot();
/// assert_eq!(s.operators.len(), 3);
/// assert_eq!(s.operators[1].records_in, 3);
/// # });
/// ```
#[derive(Clone)]
pub struct JobStatus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStatus")
            .field("name", &self.name())
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl JobStatus {
    /// A new registry for the job `name` (its application id), state `starting`.
    pub fn new(name: &str) -> JobStatus {
        JobStatus {
            inner: Arc::new(Inner {
                name: Mutex::new(name.to_string()),
                state: AtomicU8::new(0),
                started_at: now_ms(),
                incarnation: AtomicU64::new(0),
                dead_letters: AtomicU64::new(0),
                graph: Mutex::default(),
                partitions: Mutex::default(),
                sinks: Mutex::default(),
                results: Mutex::default(),
                checkpoints: Mutex::default(),
                errors: Mutex::default(),
                samples: Mutex::default(),
            }),
        }
    }

    /// The job's name.
    pub fn name(&self) -> String {
        lock(&self.inner.name).clone()
    }

    /// Renames the job (once its application id is known).
    pub fn set_name(&self, name: &str) {
        name.clone_into(&mut lock(&self.inner.name));
    }

    /// Where the job is.
    pub fn state(&self) -> JobState {
        JobState::from_u8(self.inner.state.load(Ordering::Relaxed))
    }

    /// Moves the job to `state`.
    pub fn set_state(&self, state: JobState) {
        self.inner.state.store(state as u8, Ordering::Relaxed);
    }

    /// `Ok` once state is restored and partitions assigned (the job runs), else
    /// why not.
    pub fn ready(&self) -> Result<(), String> {
        match self.state() {
            JobState::Running => Ok(()),
            JobState::Starting => Err("starting: joining the group, waiting for partitions".into()),
            JobState::Restoring => Err("restoring state".into()),
            JobState::Finished => Err("finished".into()),
            JobState::Failed => Err("failed".into()),
            JobState::Stopped => Err("stopped".into()),
            JobState::Standby => Err("standing by: another process runs the pipeline".into()),
        }
    }

    /// Counts a new incarnation (a start, or a restart after a rebalance or rollback).
    pub fn next_incarnation(&self) -> u64 {
        self.inner.incarnation.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Sets the operator graph (called when a job starts; counters of operators
    /// with the same ids carry on).
    pub(crate) fn set_graph(
        &self,
        operators: BTreeMap<OperatorId, OperatorDef>,
        edges: BTreeSet<(OperatorId, OperatorId, EdgeKind)>,
    ) {
        let mut g = lock(&self.inner.graph);
        g.operators = operators;
        g.edges = edges;
        drop(g);
        let mut samples = lock(&self.inner.samples);
        if samples.is_empty() {
            samples.push_back((Instant::now(), self.totals()));
        }
    }

    /// An operator's name as the status shows it.
    pub(crate) fn operator_name(&self, id: OperatorId) -> Option<String> {
        lock(&self.inner.graph)
            .operators
            .get(&id)
            .map(|op| op.name.clone())
    }

    /// Names an operator (a sink learns its name when built).
    pub(crate) fn name_operator(&self, id: OperatorId, name: &str) {
        if let Some(op) = lock(&self.inner.graph).operators.get_mut(&id) {
            name.clone_into(&mut op.name);
        }
    }

    /// The counters of subtask `subtask` of operator `id` (the same ones across
    /// incarnations).
    pub(crate) fn subtask(&self, id: OperatorId, subtask: usize) -> Arc<SubtaskStats> {
        lock(&self.inner.graph)
            .subtasks
            .entry((id, subtask))
            .or_default()
            .clone()
    }

    /// The status of a source partition, created on first use.
    pub fn partition(&self, topic: &str, partition: i32) -> Arc<PartitionStatus> {
        lock(&self.inner.partitions)
            .entry((topic.to_string(), partition))
            .or_insert_with(|| Arc::new(PartitionStatus::new(topic, partition)))
            .clone()
    }

    /// Forgets the partitions not in `keep` (they moved to another process).
    pub fn retain_partitions(&self, keep: &BTreeSet<(String, i32)>) {
        lock(&self.inner.partitions).retain(|k, _| keep.contains(k));
    }

    /// The status of the sink `name` of kind `kind`, created on first use.
    pub fn sink(&self, name: &str, kind: &str) -> Arc<SinkStatus> {
        lock(&self.inner.sinks)
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(SinkStatus::new(name, kind)))
            .clone()
    }

    /// Counts an aborted transaction on every sink (a rollback of the open checkpoint).
    pub fn sinks_aborted(&self) {
        for s in lock(&self.inner.sinks).values() {
            s.aborted();
        }
    }

    /// The ring of recent result rows of the sink `sink`, with its columns and
    /// their types (`timestamp`, `number`, `string`, `boolean`), created on first use.
    pub fn results(&self, sink: &str, columns: Vec<String>, types: Vec<String>) -> Arc<ResultRing> {
        lock(&self.inner.results)
            .entry(sink.to_string())
            .or_insert_with(|| {
                Arc::new(ResultRing {
                    columns,
                    types,
                    rows: Mutex::default(),
                })
            })
            .clone()
    }

    /// Counts a record sent to the dead letters.
    pub fn dead_letter(&self) {
        self.inner.dead_letters.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps an error (the newest [`ERROR_HISTORY`]).
    pub fn error(&self, message: impl Into<String>) {
        let mut errors = lock(&self.inner.errors);
        if errors.len() == ERROR_HISTORY {
            errors.pop_front();
        }
        errors.push_back(ErrorEntry {
            at: now_ms(),
            message: message.into(),
        });
    }

    /// A checkpoint was triggered.
    pub(crate) fn checkpoint_started(&self, id: u64) {
        let mut c = lock(&self.inner.checkpoints);
        c.started.insert(id, (now_ms(), Instant::now()));
        // A checkpoint never acknowledged (its incarnation ended) is dropped.
        while c.started.len() > CHECKPOINT_HISTORY {
            c.started.pop_first();
        }
    }

    /// Checkpoint `id`, of `size` bytes of state, completed (durably written).
    pub(crate) fn checkpoint_completed(&self, id: u64, size: usize) {
        let now = now_ms();
        let mut c = lock(&self.inner.checkpoints);
        let (started_at, duration) = match c.started.remove(&id) {
            Some((at, t)) => (Some(at), Some(t.elapsed())),
            None => (None, None),
        };
        c.completed += 1;
        c.last_id = Some(id);
        c.last_completed_at = Some(now);
        c.push(CheckpointEntry {
            id,
            started_at,
            duration_ms: duration.map(|d| d.as_millis() as u64),
            size_bytes: size as u64,
            outcome: CheckpointOutcome::Completed,
        });
        drop(c);
        metrics::counter!("strom_checkpoints_completed_total").increment(1);
        if let Some(d) = duration {
            metrics::histogram!("strom_checkpoint_duration_seconds").record(d.as_secs_f64());
        }
        metrics::gauge!("strom_checkpoint_size_bytes").set(size as f64);
        metrics::gauge!("strom_checkpoint_last_completed_id").set(id as f64);
        metrics::gauge!("strom_checkpoint_last_completed_timestamp_seconds")
            .set(now as f64 / 1000.0);
    }

    /// A checkpoint failed.
    pub(crate) fn checkpoint_failed(&self, id: u64) {
        let mut c = lock(&self.inner.checkpoints);
        let (started_at, duration) = match c.started.remove(&id) {
            Some((at, t)) => (Some(at), Some(t.elapsed())),
            None => (None, None),
        };
        c.failed += 1;
        c.push(CheckpointEntry {
            id,
            started_at,
            duration_ms: duration.map(|d| d.as_millis() as u64),
            size_bytes: 0,
            outcome: CheckpointOutcome::Failed,
        });
        drop(c);
        metrics::counter!("strom_checkpoints_failed_total").increment(1);
    }

    /// State was restored in `took`.
    pub fn restored(&self, took: Duration) {
        lock(&self.inner.checkpoints).restore_ms = Some(took.as_millis() as u64);
    }

    /// Busy and backpressured seconds of every operator subtask, for metrics.
    pub fn subtask_times(&self) -> Vec<SubtaskTimes> {
        let g = lock(&self.inner.graph);
        g.subtasks
            .iter()
            .map(|((id, sub), s)| SubtaskTimes {
                operator: g
                    .operators
                    .get(id)
                    .map_or_else(|| id.0.to_string(), |o| o.name.clone()),
                subtask: *sub,
                busy_seconds: s.busy_ns.load(Ordering::Relaxed) as f64 / 1e9,
                backpressured_seconds: s.backpressured_ns.load(Ordering::Relaxed) as f64 / 1e9,
            })
            .collect()
    }

    fn totals(&self) -> HashMap<OperatorId, Totals> {
        let g = lock(&self.inner.graph);
        let mut out: HashMap<OperatorId, Totals> = HashMap::new();
        for ((id, _), s) in &g.subtasks {
            let t = out.entry(*id).or_default();
            t.records_in += s.records_in.load(Ordering::Relaxed);
            t.records_out += s.records_out.load(Ordering::Relaxed);
            t.busy_ns += s.busy_ns.load(Ordering::Relaxed);
            t.backpressured_ns += s.backpressured_ns.load(Ordering::Relaxed);
        }
        out
    }

    /// Totals now and the totals of about [`RATE_WINDOW`] ago with the time between.
    fn sample(
        &self,
    ) -> (
        HashMap<OperatorId, Totals>,
        HashMap<OperatorId, Totals>,
        Duration,
    ) {
        let now = Instant::now();
        let current = self.totals();
        let mut samples = lock(&self.inner.samples);
        samples.push_back((now, current.clone()));
        while samples.len() > 2
            && samples
                .get(1)
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= RATE_WINDOW)
        {
            samples.pop_front();
        }
        // Bound the samples of a reader that polls very often.
        while samples.len() > 256 {
            samples.remove(1);
        }
        match samples.front() {
            Some((t, base)) => (current, base.clone(), now.saturating_duration_since(*t)),
            None => (current, HashMap::new(), Duration::ZERO),
        }
    }

    /// The status now, in the shape of the status API's `jobs[i]`.
    pub fn snapshot(&self) -> JobStatusSnapshot {
        let (current, base, dt) = self.sample();
        let secs = dt.as_secs_f64();
        let g = lock(&self.inner.graph);
        let operators = g
            .operators
            .iter()
            .map(|(id, def)| {
                let now = current.get(id).copied().unwrap_or_default();
                let then = base.get(id).copied().unwrap_or_default();
                let rate =
                    |a: u64, b: u64| (secs >= 0.05).then(|| a.saturating_sub(b) as f64 / secs);
                let ratio = |a: u64, b: u64| {
                    (secs >= 0.05).then(|| {
                        (a.saturating_sub(b) as f64 / (secs * 1e9 * def.parallelism.max(1) as f64))
                            .clamp(0.0, 1.0)
                    })
                };
                OperatorSnapshot {
                    id: id.0.to_string(),
                    name: def.name.clone(),
                    kind: def.kind,
                    parallelism: def.parallelism,
                    records_in: now.records_in,
                    records_out: now.records_out,
                    records_in_per_s: rate(now.records_in, then.records_in),
                    records_out_per_s: rate(now.records_out, then.records_out),
                    busy_ratio: ratio(now.busy_ns, then.busy_ns),
                    backpressured_ratio: ratio(now.backpressured_ns, then.backpressured_ns),
                }
            })
            .collect();
        let edges = g
            .edges
            .iter()
            .map(|(from, to, kind)| EdgeSnapshot {
                from: from.0.to_string(),
                to: to.0.to_string(),
                kind: *kind,
            })
            .collect();
        drop(g);
        let partitions = lock(&self.inner.partitions)
            .values()
            .map(|p| p.snapshot())
            .collect();
        let sinks = lock(&self.inner.sinks)
            .values()
            .map(|s| SinkSnapshot {
                name: s.name.clone(),
                kind: s.kind.clone(),
                records: s.records.load(Ordering::Relaxed),
                transactions_committed: s.committed.load(Ordering::Relaxed),
                transactions_aborted: s.aborted.load(Ordering::Relaxed),
            })
            .collect();
        let c = lock(&self.inner.checkpoints);
        let checkpoints = CheckpointsSnapshot {
            completed: c.completed,
            failed: c.failed,
            last_id: c.last_id,
            last_completed_at: c.last_completed_at,
            restore_ms: c.restore_ms,
            history: c.history.iter().cloned().collect(),
        };
        drop(c);
        let results = lock(&self.inner.results)
            .iter()
            .map(|(sink, r)| ResultsSnapshot {
                sink: sink.clone(),
                columns: r.columns.clone(),
                types: r.types.clone(),
                rows: lock(&r.rows).iter().cloned().collect(),
            })
            .collect();
        JobStatusSnapshot {
            name: self.name(),
            state: self.state(),
            started_at: self.inner.started_at,
            incarnation: self.inner.incarnation.load(Ordering::Relaxed),
            operators,
            edges,
            partitions,
            sinks,
            checkpoints,
            errors: lock(&self.inner.errors).iter().cloned().collect(),
            dead_letters: self.inner.dead_letters.load(Ordering::Relaxed),
            results,
        }
    }
}

/// Busy and backpressured seconds of one operator subtask.
#[derive(Debug, Clone, PartialEq)]
pub struct SubtaskTimes {
    /// Operator name.
    pub operator: String,
    /// Subtask index.
    pub subtask: usize,
    /// Seconds spent working.
    pub busy_seconds: f64,
    /// Seconds spent blocked sending downstream.
    pub backpressured_seconds: f64,
}

/// A job's status at one time (the status API's `jobs[i]`).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct JobStatusSnapshot {
    /// Job (application) name.
    pub name: String,
    /// Where it is.
    pub state: JobState,
    /// When the registry was made (ms since the epoch).
    pub started_at: i64,
    /// Incarnations started so far.
    pub incarnation: u64,
    /// Operators in definition order.
    pub operators: Vec<OperatorSnapshot>,
    /// Edges between operators.
    pub edges: Vec<EdgeSnapshot>,
    /// Source partitions this process reads.
    pub partitions: Vec<PartitionSnapshot>,
    /// Sinks.
    pub sinks: Vec<SinkSnapshot>,
    /// Checkpoints.
    pub checkpoints: CheckpointsSnapshot,
    /// Recent errors, newest last.
    pub errors: Vec<ErrorEntry>,
    /// Records sent to dead letters.
    pub dead_letters: u64,
    /// Recent result rows per sink.
    pub results: Vec<ResultsSnapshot>,
}

/// One operator.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct OperatorSnapshot {
    /// Its id in the graph.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Source, operator or sink.
    pub kind: OperatorKind,
    /// Subtasks.
    pub parallelism: usize,
    /// Records taken in (all subtasks, all incarnations).
    pub records_in: u64,
    /// Records handed on.
    pub records_out: u64,
    /// Input rate over the last ~5 s.
    pub records_in_per_s: Option<f64>,
    /// Output rate over the last ~5 s.
    pub records_out_per_s: Option<f64>,
    /// Share of time working over the last ~5 s (0..1).
    pub busy_ratio: Option<f64>,
    /// Share of time blocked sending downstream over the last ~5 s (0..1).
    pub backpressured_ratio: Option<f64>,
}

/// An edge.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct EdgeSnapshot {
    /// Upstream operator id.
    pub from: String,
    /// Downstream operator id.
    pub to: String,
    /// How records travel.
    pub kind: EdgeKind,
}

/// One source partition.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PartitionSnapshot {
    /// Topic (or source).
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to read.
    pub position: Option<i64>,
    /// High watermark (last stable offset under read_committed) at the last fetch.
    pub log_end: Option<i64>,
    /// `log_end - position`.
    pub lag: Option<i64>,
    /// Watermark, ms since the epoch.
    pub watermark: Option<i64>,
    /// Idle (no records for the idleness timeout).
    pub idle: bool,
}

/// One sink.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SinkSnapshot {
    /// Its name.
    pub name: String,
    /// kafka, postgres, file, stdout, blackhole, ...
    pub kind: String,
    /// Records written.
    pub records: u64,
    /// Transactions (checkpoint commits) committed, summed over subtasks.
    pub transactions_committed: u64,
    /// Transactions aborted (rollbacks).
    pub transactions_aborted: u64,
}

/// How a checkpoint ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum CheckpointOutcome {
    /// Written durably.
    Completed,
    /// Failed.
    Failed,
}

/// One checkpoint of the history.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CheckpointEntry {
    /// Its id.
    pub id: u64,
    /// When it was triggered (ms since the epoch), if this process saw it.
    pub started_at: Option<i64>,
    /// Trigger to completion.
    pub duration_ms: Option<u64>,
    /// Bytes of state it holds.
    pub size_bytes: u64,
    /// Completed or failed.
    pub outcome: CheckpointOutcome,
}

/// Checkpoints.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CheckpointsSnapshot {
    /// Completed.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// The last completed id.
    pub last_id: Option<u64>,
    /// When the last one completed (ms since the epoch).
    pub last_completed_at: Option<i64>,
    /// How long the last restore took.
    pub restore_ms: Option<u64>,
    /// The newest [`CHECKPOINT_HISTORY`], newest last.
    pub history: Vec<CheckpointEntry>,
}

/// An error.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ErrorEntry {
    /// When (ms since the epoch).
    pub at: i64,
    /// What.
    pub message: String,
}

/// The recent rows of one sink.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ResultsSnapshot {
    /// The sink (table) name.
    pub sink: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Column types: timestamp, number, string, boolean.
    pub types: Vec<String>,
    /// Rows, newest last.
    pub rows: Vec<Vec<ResultValue>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, kind: OperatorKind, parallelism: usize) -> OperatorDef {
        OperatorDef {
            name: name.into(),
            kind,
            parallelism,
        }
    }

    #[test]
    fn lag_is_log_end_minus_position_and_never_negative() {
        assert_eq!(lag(10, 25), Some(15));
        assert_eq!(lag(30, 25), Some(0));
        assert_eq!(lag(UNKNOWN, 25), None);
        assert_eq!(lag(3, UNKNOWN), None);
        let s = JobStatus::new("t");
        let p = s.partition("logs", 0);
        assert_eq!(p.lag(), None);
        p.set_log_end(100);
        p.set_position(40);
        assert_eq!(p.lag(), Some(60));
        p.set_log_end(-1); // a fetch that did not say: the old log end stays
        p.set_position(100);
        assert_eq!(p.lag(), Some(0));
        let snap = s.snapshot();
        assert_eq!(snap.partitions[0].lag, Some(0));
        assert_eq!(snap.partitions[0].watermark, None);
    }

    #[test]
    fn rings_are_bounded_and_keep_the_newest() {
        let s = JobStatus::new("t");
        for i in 0..(ERROR_HISTORY + 5) {
            s.error(format!("e{i}"));
        }
        let errors = s.snapshot().errors;
        assert_eq!(errors.len(), ERROR_HISTORY);
        assert_eq!(
            errors[ERROR_HISTORY - 1].message,
            format!("e{}", ERROR_HISTORY + 4)
        );

        let r = s.results("out", vec!["n".into()], vec!["number".into()]);
        let rows: Vec<i64> = (0..500).collect();
        r.push_batch(&rows[..150], |n| vec![ResultValue::Int(*n)]);
        r.push_batch(&rows[150..], |n| vec![ResultValue::Int(*n)]);
        let res = &s.snapshot().results[0];
        assert_eq!(res.rows.len(), RESULT_ROWS);
        assert_eq!(res.rows[0], vec![ResultValue::Int(300)]);
        assert_eq!(res.rows[RESULT_ROWS - 1], vec![ResultValue::Int(499)]);

        for id in 0..(CHECKPOINT_HISTORY as u64 + 7) {
            s.checkpoint_started(id);
            s.checkpoint_completed(id, 0);
        }
        let c = s.snapshot().checkpoints;
        assert_eq!(c.history.len(), CHECKPOINT_HISTORY);
        assert_eq!(
            c.history.last().map(|e| e.id),
            Some(CHECKPOINT_HISTORY as u64 + 6)
        );
        assert_eq!(c.completed, CHECKPOINT_HISTORY as u64 + 7);
        assert_eq!(c.last_id, Some(CHECKPOINT_HISTORY as u64 + 6));
    }

    #[test]
    fn rates_and_ratios_cover_the_time_since_the_oldest_sample() {
        let s = JobStatus::new("t");
        let op = OperatorId(0);
        let mut ops = BTreeMap::new();
        ops.insert(op, def("map", OperatorKind::Operator, 2));
        s.set_graph(ops, BTreeSet::new());
        // Pretend the first sample was taken 2 s ago.
        {
            let mut samples = lock(&s.inner.samples);
            samples.clear();
            samples.push_back((Instant::now() - Duration::from_secs(2), HashMap::new()));
        }
        let a = s.subtask(op, 0);
        let b = s.subtask(op, 1);
        a.add_in(1000);
        b.add_in(1000);
        a.add_out(500);
        a.add_busy(Duration::from_secs(1));
        b.add_busy(Duration::from_secs(1));
        b.add_backpressured(Duration::from_millis(400));
        let o = &s.snapshot().operators[0];
        assert_eq!((o.records_in, o.records_out), (2000, 500));
        let near = |v: Option<f64>, want: f64| (v.unwrap_or(-1.0) - want).abs() < want * 0.05;
        assert!(near(o.records_in_per_s, 1000.0), "{:?}", o.records_in_per_s);
        assert!(
            near(o.records_out_per_s, 250.0),
            "{:?}",
            o.records_out_per_s
        );
        // 2 s of busy time over 2 subtasks x 2 s.
        assert!(near(o.busy_ratio, 0.5), "{:?}", o.busy_ratio);
        assert!(
            near(o.backpressured_ratio, 0.1),
            "{:?}",
            o.backpressured_ratio
        );
    }

    #[test]
    fn ready_only_while_running() {
        let s = JobStatus::new("t");
        assert!(s.ready().is_err());
        s.set_state(JobState::Restoring);
        assert_eq!(s.ready(), Err("restoring state".into()));
        s.set_state(JobState::Running);
        assert_eq!(s.ready(), Ok(()));
        assert_eq!(s.next_incarnation(), 1);
        assert_eq!(s.next_incarnation(), 2);
    }
}
