//! The job driver: spawns every task, runs the checkpoint coordinator loop (the I/O
//! around [`CheckpointTracker`]) and reports the job's outcome.
//!
//! ```text
//! JobHandle --trigger/stop/abort--> coordinator --Trigger(barrier)--> source tasks
//!                                   coordinator <--Ack/Finished/Failed-- every task
//!   all acks in --> durable write (CheckpointStore) --ok--> Complete(n) --> every task
//!   stop: a stop barrier, its checkpoint completes, then Shutdown --> every task
//! ```
//!
//! A checkpoint is complete only after its durable write succeeded; while a write
//! is in flight no checkpoint is triggered. A failed write fails the job.

use futures::FutureExt;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::checkpoint::{
    AckOutcome, Adoption, Checkpoint, CheckpointBarrier, CheckpointGaps, CheckpointId,
    CheckpointStore, CheckpointTracker, Epoch, InMemoryCheckpointStore, OperatorId, OperatorState,
    StoreFuture, TaskId,
};
use crate::error::{EngineError, Result};
use crate::runtime::status::JobStatus;
use crate::runtime::task::{Control, JobEvent};
use crate::time::clock::Clock;

pub(crate) type TaskFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// A task ready to be spawned.
pub(crate) struct TaskSpec {
    pub(crate) id: TaskId,
    pub(crate) name: String,
    pub(crate) is_source: bool,
    pub(crate) checkpointed: bool,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    pub(crate) future: TaskFuture,
}

/// How a finished job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    /// The job incarnation's epoch.
    pub epoch: Epoch,
    /// The newest checkpoint that completed, if any.
    pub last_checkpoint: Option<CheckpointId>,
    /// Whether the job ended through [`JobHandle::stop`] (with a final checkpoint)
    /// rather than at the end of its input.
    pub stopped: bool,
}

/// Who waits for a checkpoint to complete.
type Waiter = oneshot::Sender<Result<CheckpointId>>;

enum Command {
    Trigger(oneshot::Sender<Result<CheckpointId>>),
    Release(BTreeSet<u16>, oneshot::Sender<Result<CheckpointId>>),
    Adopt(Box<Adoption>, oneshot::Sender<Result<CheckpointId>>),
    Stop,
    Abort,
}

/// Stops or checkpoints a running job from anywhere (a clone of the job's command
/// channel), while another task waits on its [`JobHandle`].
#[derive(Clone)]
pub struct JobController {
    commands: mpsc::UnboundedSender<Command>,
}

impl JobController {
    /// See [`JobHandle::stop`].
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// See [`JobHandle::abort`].
    pub fn abort(&self) {
        let _ = self.commands.send(Command::Abort);
    }

    /// Gives up `key_groups` at the next checkpoint, taken as soon as none is in
    /// flight: its snapshot holds their state as usual, then every operator drops
    /// them and the source splits of them read no more (their positions stay at
    /// that checkpoint's). Resolves with the checkpoint's id once it completed
    /// (durably written), or with its failure; [`Checkpoint::released`] carries
    /// the key groups to the durable store. A partition a process hands to
    /// another one leaves this way while the others go on.
    ///
    /// [`Checkpoint::released`]: crate::Checkpoint::released
    pub async fn release(&self, key_groups: BTreeSet<u16>) -> Result<CheckpointId> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Release(key_groups, tx))
            .map_err(|_| EngineError::ChannelClosed("job already finished".into()))?;
        rx.await
            .map_err(|_| EngineError::ChannelClosed("job finished before the checkpoint".into()))?
    }

    /// Takes on `key_groups` at the next checkpoint, taken as soon as none is in
    /// flight: its snapshot does not hold them, then every operator loads their
    /// state from `state` (a checkpoint of another process, matched to this
    /// job's operators by uid) and every source adds its splits of them
    /// ([`crate::Source::adopt_splits`]). Resolves with the checkpoint's id once it
    /// completed, or with its failure; [`Checkpoint::adopted`] carries the key
    /// groups to the durable store. A partition a process gains joins the
    /// running job this way. Under event time an adopted split lags: its task
    /// holds its watermark, and operators judge that key group's records by
    /// its own progress, until the split's watermark reaches every watermark
    /// downstream of its task ([`crate::Operator::on_key_group_caught_up`]). Refused at
    /// once (`Unsupported`) in a job with an operator that cannot load them
    /// ([`crate::Operator::can_adopt`]), and in one with event time where an
    /// operator or sink that reads it cannot hold a lagging key group back
    /// ([`crate::Operator::adopts_under_event_time`],
    /// [`crate::Sink::adopts_under_event_time`]) or reads from several
    /// sources with event time. Sinks fed by event time hear of the adoption
    /// ([`crate::Sink::adopted`]).
    ///
    /// [`Checkpoint::adopted`]: crate::Checkpoint::adopted
    pub async fn adopt(
        &self,
        key_groups: BTreeSet<u16>,
        state: Checkpoint,
    ) -> Result<CheckpointId> {
        let (tx, rx) = oneshot::channel();
        let adoption = Box::new(Adoption { key_groups, state });
        self.commands
            .send(Command::Adopt(adoption, tx))
            .map_err(|_| EngineError::ChannelClosed("job already finished".into()))?;
        rx.await
            .map_err(|_| EngineError::ChannelClosed("job finished before the checkpoint".into()))?
    }
}

/// A running job.
pub struct JobHandle {
    commands: mpsc::UnboundedSender<Command>,
    done: JoinHandle<Result<JobResult>>,
    store: InMemoryCheckpointStore,
    status: JobStatus,
}

impl JobHandle {
    /// The job's live status registry (see [`JobStatus::snapshot`]).
    pub fn status(&self) -> JobStatus {
        self.status.clone()
    }

    /// Triggers a checkpoint and waits until it completed (all tasks acknowledged
    /// and its durable write succeeded) or failed.
    pub async fn trigger_checkpoint(&self) -> Result<CheckpointId> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Trigger(tx))
            .map_err(|_| EngineError::ChannelClosed("job already finished".into()))?;
        rx.await
            .map_err(|_| EngineError::ChannelClosed("job finished before the checkpoint".into()))?
    }

    /// Stops the job gracefully: sources stop reading at a final (stop) barrier,
    /// its checkpoint completes (and is written durably), sinks commit, and every
    /// task ends without flushing open windows (their state is in the checkpoint).
    /// [`JobHandle::wait`] then returns a result with `stopped` set. If the final
    /// checkpoint cannot be taken within the pipeline's `close_timeout`, the tasks
    /// are aborted and `wait` returns the error.
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// The same as [`JobHandle::stop`]: a cancelled job drains to a final
    /// checkpoint instead of dropping its tasks (use [`JobHandle::abort`] for that).
    pub fn cancel(&self) {
        self.stop();
    }

    /// Stops the job at once: every task is aborted without a final checkpoint (as a
    /// crash would); [`JobHandle::wait`] then returns [`EngineError::Cancelled`].
    pub fn abort(&self) {
        let _ = self.commands.send(Command::Abort);
    }

    /// A controller that stops or aborts this job while [`JobHandle::wait`] runs.
    pub fn controller(&self) -> JobController {
        JobController {
            commands: self.commands.clone(),
        }
    }

    /// The newest completed checkpoints, kept in memory; empty when the pipeline
    /// writes them to a durable store ([`crate::Pipeline::checkpoint_store`]),
    /// which then holds them.
    pub fn checkpoints(&self) -> InMemoryCheckpointStore {
        self.store.clone()
    }

    /// Waits for the job to finish (bounded inputs), stop, fail or be aborted.
    pub async fn wait(self) -> Result<JobResult> {
        match self.done.await {
            Ok(r) => r,
            Err(e) => Err(EngineError::Operator {
                operator: "job".into(),
                subtask: 0,
                message: e.to_string(),
            }),
        }
    }
}

pub(crate) struct JobSetup {
    pub(crate) tasks: Vec<TaskSpec>,
    pub(crate) events_tx: mpsc::UnboundedSender<JobEvent>,
    pub(crate) events_rx: mpsc::UnboundedReceiver<JobEvent>,
    pub(crate) tracker: CheckpointTracker,
    pub(crate) store: InMemoryCheckpointStore,
    pub(crate) durable: Option<Arc<dyn CheckpointStore>>,
    pub(crate) uids: BTreeMap<OperatorId, String>,
    pub(crate) interval: Option<Duration>,
    /// Checkpoints come early, at most this often, once every source caught up.
    pub(crate) early_gap: Option<Duration>,
    pub(crate) stop_timeout: Duration,
    pub(crate) clock: Clock,
    pub(crate) status: JobStatus,
    /// Why the job cannot take on key groups while it runs, if it cannot (see
    /// [`JobController::adopt`]).
    pub(crate) adopt_refused: Option<String>,
}

/// Spawns all tasks and the coordinator on the current tokio runtime.
pub(crate) fn spawn_job(setup: JobSetup) -> JobHandle {
    let JobSetup {
        tasks,
        events_tx,
        events_rx,
        tracker,
        store,
        durable,
        uids,
        interval,
        early_gap,
        stop_timeout,
        clock,
        status,
        adopt_refused,
    } = setup;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let mut controls = Vec::new();
    let mut aborts = Vec::new();
    for t in tasks {
        let events = events_tx.clone();
        let id = t.id;
        let name = t.name.clone();
        controls.push((t.id, t.is_source, t.control));
        let fut = t.future;
        let h = tokio::spawn(async move {
            let r = match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
                Ok(r) => r,
                Err(panic) => Err(EngineError::Panicked {
                    task: name.clone(),
                    message: panic_message(panic.as_ref()),
                }),
            };
            match r {
                Ok(()) => {
                    tracing::debug!(task = %name, "task finished");
                    let _ = events.send(JobEvent::Finished(id));
                }
                Err(e) => {
                    // A closed channel follows another task's end or failure, which
                    // the coordinator reports.
                    if matches!(e, EngineError::ChannelClosed(_)) {
                        tracing::debug!(task = %name, error = %e, "task ended");
                    } else {
                        tracing::warn!(task = %name, error = %e, "task failed");
                    }
                    let _ = events.send(JobEvent::Failed(id, e));
                }
            }
        });
        aborts.push(h.abort_handle());
    }
    drop(events_tx);
    let early = early_gap.map(|gap| EarlyCheckpoints {
        gap,
        behind: controls
            .iter()
            .filter(|(_, is_source, _)| *is_source)
            .map(|(id, _, _)| *id)
            .collect(),
        read: false,
    });
    let coord = Coordinator {
        controls,
        aborts,
        tracker,
        store: store.clone(),
        durable,
        uids,
        clock,
        waiters: BTreeMap::new(),
        writing: None,
        stop: StopState::Running,
        stop_timeout,
        status: status.clone(),
        early,
        last_trigger: tokio::time::Instant::now(),
        reshape: None,
        reshaping: BTreeMap::new(),
        adopt_refused,
    };
    let done = tokio::spawn(coord.run(events_rx, cmd_rx, interval));
    JobHandle {
        commands: cmd_tx,
        done,
        store,
        status,
    }
}

/// Where a graceful stop stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopState {
    Running,
    /// Asked for; the stop barrier goes out once no checkpoint is in flight.
    Requested,
    /// The stop barrier of this checkpoint is out.
    Triggered(CheckpointId),
    /// Its checkpoint completed; tasks were told to shut down.
    ShuttingDown,
}

/// A durable write in flight. The store holds the checkpoint's state alone, so
/// it can hand the bytes on (a changelog's records) rather than copy them.
struct Writing {
    done: Done,
    future: StoreFuture,
}

/// What completing a checkpoint reports of it once its state went to the store.
#[derive(Clone, Copy, Debug)]
struct Done {
    id: CheckpointId,
    state_bytes: usize,
}

impl Done {
    fn of(cp: &Checkpoint) -> Done {
        Done {
            id: cp.id,
            state_bytes: cp.state_bytes(),
        }
    }
}

/// What decides an early checkpoint (see
/// [`crate::PipelineConfig::checkpoint_when_caught_up`]).
struct EarlyCheckpoints {
    /// The shortest time from the last trigger.
    gap: Duration,
    /// Source tasks that have not caught up.
    behind: std::collections::BTreeSet<TaskId>,
    /// Whether a source read records the last checkpoint does not hold.
    read: bool,
}

struct Coordinator {
    controls: Vec<(TaskId, bool, mpsc::UnboundedSender<Control>)>,
    aborts: Vec<tokio::task::AbortHandle>,
    tracker: CheckpointTracker,
    store: InMemoryCheckpointStore,
    durable: Option<Arc<dyn CheckpointStore>>,
    uids: BTreeMap<OperatorId, String>,
    clock: Clock,
    waiters: BTreeMap<CheckpointId, Vec<oneshot::Sender<Result<CheckpointId>>>>,
    writing: Option<Writing>,
    stop: StopState,
    stop_timeout: Duration,
    status: JobStatus,
    early: Option<EarlyCheckpoints>,
    last_trigger: tokio::time::Instant,
    /// Key groups to release and adopt, waiting for their checkpoint to be
    /// triggered.
    reshape: Option<Reshape>,
    /// The key groups released and adopted at each triggered checkpoint.
    reshaping: BTreeMap<CheckpointId, (BTreeSet<u16>, BTreeSet<u16>)>,
    adopt_refused: Option<String>,
}

/// Key groups to give up and to take on at the next checkpoint, and who waits
/// for it.
#[derive(Default)]
struct Reshape {
    release: BTreeSet<u16>,
    adopt: Option<Adoption>,
    waiters: Vec<Waiter>,
}

impl Reshape {
    fn add_adoption(&mut self, a: Adoption) {
        match &mut self.adopt {
            None => self.adopt = Some(a),
            Some(queued) => {
                queued.key_groups.extend(a.key_groups);
                for (op, state) in a.state.operators {
                    queued.state.operators.entry(op).or_default().merge(state);
                }
                queued.state.uids.extend(a.state.uids);
            }
        }
    }
}

impl Coordinator {
    fn trigger(&mut self, stop: bool) -> Option<CheckpointId> {
        self.trigger_reshaping(stop, None, None)
    }

    fn trigger_reshaping(
        &mut self,
        stop: bool,
        release: Option<Arc<BTreeSet<u16>>>,
        adopt: Option<Arc<Adoption>>,
    ) -> Option<CheckpointId> {
        if self.writing.is_some() {
            return None;
        }
        let id = self.tracker.trigger()?;
        self.last_trigger = tokio::time::Instant::now();
        if let Some(e) = self.early.as_mut() {
            e.read = false;
        }
        if release.is_some() || adopt.is_some() {
            let released = release.as_deref().cloned().unwrap_or_default();
            let adopted = adopt.as_ref().map(|a| a.key_groups.clone());
            self.reshaping
                .insert(id, (released, adopted.unwrap_or_default()));
        }
        let barrier = CheckpointBarrier {
            id,
            timestamp: self.clock.now_ms(),
            stop,
            release,
            adopt,
        };
        tracing::debug!(checkpoint = id.0, stop, "triggering checkpoint");
        self.status.checkpoint_started(id.0);
        for (_, is_source, tx) in &self.controls {
            if *is_source {
                let _ = tx.send(Control::Trigger(barrier.clone()));
            }
        }
        Some(id)
    }

    /// Every task acknowledged `cp`: write it durably (or complete it at once).
    fn acknowledged(&mut self, mut cp: Checkpoint) {
        cp.uids = self.uids.clone();
        self.reshaping.retain(|id, _| *id >= cp.id);
        if let Some((released, adopted)) = self.reshaping.remove(&cp.id) {
            cp.released = released;
            cp.adopted = adopted;
        }
        let done = Done::of(&cp);
        match &self.durable {
            Some(store) => {
                // A durable store has it; a copy here would double the state held.
                let future = store.write(Arc::new(cp));
                self.writing = Some(Writing { done, future });
            }
            None => {
                self.store.add(cp);
                self.complete(done);
            }
        }
    }

    fn complete(&mut self, done: Done) {
        let id = done.id;
        tracing::info!(
            checkpoint = id.0,
            state_bytes = done.state_bytes,
            "checkpoint complete"
        );
        self.status.checkpoint_completed(id.0, done.state_bytes);
        for (_, _, tx) in &self.controls {
            let _ = tx.send(Control::Complete(id));
        }
        let done: Vec<CheckpointId> = self.waiters.range(..=id).map(|(k, _)| *k).collect();
        for k in done {
            for w in self.waiters.remove(&k).unwrap_or_default() {
                let _ = w.send(if k == id {
                    Ok(id)
                } else {
                    Err(EngineError::checkpoint(k, "subsumed", None))
                });
            }
        }
        if self.stop == StopState::Triggered(id) {
            self.stop = StopState::ShuttingDown;
            tracing::info!(
                checkpoint = id.0,
                "final checkpoint complete; shutting down"
            );
            for (_, _, tx) in &self.controls {
                let _ = tx.send(Control::Shutdown);
            }
        }
    }

    /// Sends the stop barrier once nothing is in flight (when no source can take
    /// one, they all ended and the job ends by itself).
    fn advance_stop(&mut self) {
        if self.stop != StopState::Requested
            || self.writing.is_some()
            || self.tracker.pending().next().is_some()
        {
            return;
        }
        match self.trigger(true) {
            Some(id) => self.stop = StopState::Triggered(id),
            None => {
                tracing::debug!("stop requested but no source runs; waiting for the end")
            }
        }
    }

    /// Sends a queued release's or adoption's barrier once nothing is in flight.
    fn advance_reshape(&mut self) {
        if self.reshape.is_none()
            || self.writing.is_some()
            || self.tracker.pending().next().is_some()
        {
            return;
        }
        if self.stop != StopState::Running {
            for w in self.reshape.take().map(|r| r.waiters).unwrap_or_default() {
                let _ = w.send(Err(EngineError::checkpoint(
                    CheckpointId(0),
                    "the job is stopping",
                    None,
                )));
            }
            return;
        }
        let Some(Reshape {
            release,
            adopt,
            waiters,
        }) = self.reshape.take()
        else {
            return;
        };
        let release = (!release.is_empty()).then(|| Arc::new(release));
        match self.trigger_reshaping(false, release, adopt.map(Arc::new)) {
            Some(id) => self.waiters.entry(id).or_default().extend(waiters),
            None => {
                for w in waiters {
                    let _ = w.send(Err(EngineError::checkpoint(
                        CheckpointId(0),
                        "no source runs",
                        None,
                    )));
                }
            }
        }
    }

    /// `a` with its state renumbered to this job's operators and cut to its key
    /// groups; refused in a job that cannot take them on (`adopt_refused`).
    fn adoption(&self, a: Adoption) -> Result<Adoption> {
        if let Some(why) = &self.adopt_refused {
            return Err(EngineError::Unsupported(format!(
                "this job cannot take on key groups while it runs: {why}"
            )));
        }
        let current: BTreeMap<String, OperatorId> = self
            .uids
            .iter()
            .map(|(id, uid)| (uid.clone(), *id))
            .collect();
        let (mut state, orphaned) = a.state.remap(&current);
        for uid in orphaned {
            tracing::warn!(
                uid,
                "adopted state of an operator this pipeline does not have; it is dropped"
            );
        }
        for s in state.operators.values_mut() {
            s.key_groups.retain(|g, _| a.key_groups.contains(g));
            s.entries.clear();
        }
        state.operators.retain(|_, s| !s.is_empty());
        Ok(Adoption {
            key_groups: a.key_groups,
            state,
        })
    }

    /// When an early checkpoint is due: every source caught up after reading
    /// something the last checkpoint lacks, none is in flight, and one can be
    /// taken (not once every source has ended).
    fn early_due(&self) -> Option<tokio::time::Instant> {
        let e = self.early.as_ref()?;
        (e.read
            && e.behind.is_empty()
            && self.stop == StopState::Running
            && self.writing.is_none()
            && self.tracker.pending().next().is_none()
            && self.tracker.can_trigger())
        .then_some(self.last_trigger + e.gap)
    }

    fn abort_all(&self) {
        for a in &self.aborts {
            a.abort();
        }
    }

    fn result(&self, stopped: bool) -> JobResult {
        JobResult {
            epoch: self.tracker.epoch(),
            last_checkpoint: self.tracker.last_completed(),
            stopped,
        }
    }

    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<JobEvent>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        interval: Option<Duration>,
    ) -> Result<JobResult> {
        let mut running = self.controls.len();
        let mut gaps = interval.map(CheckpointGaps::new);
        let mut next_tick = gaps
            .as_mut()
            .map(|g| tokio::time::Instant::now() + g.next_gap());
        let mut commands_open = true;
        let mut final_states: BTreeMap<TaskId, Vec<(OperatorId, OperatorState)>> = BTreeMap::new();
        let mut stop_deadline: Option<tokio::time::Instant> = None;
        if running == 0 {
            return Ok(self.result(false));
        }
        loop {
            let early_at = self.early_due();
            let writing = self.writing.as_mut().map(|w| &mut w.future);
            tokio::select! {
                written = async { match writing { Some(f) => f.await, None => std::future::pending().await } } => {
                    let Some(w) = self.writing.take() else { continue };
                    match written {
                        Ok(()) => self.complete(w.done),
                        Err(e) => {
                            let id = w.done.id;
                            tracing::error!(checkpoint = id.0, error = %e, "durable checkpoint write failed");
                            self.status.checkpoint_failed(id.0);
                            self.status.error(format!("checkpoint {} failed: durable write failed: {e}", id.0));
                            self.abort_all();
                            return Err(EngineError::checkpoint(id, "durable write failed", Some(e)));
                        }
                    }
                    self.advance_stop();
                    self.advance_reshape();
                }
                c = commands.recv(), if commands_open => match c {
                    Some(Command::Trigger(reply)) => match self.trigger(false) {
                        Some(id) => self.waiters.entry(id).or_default().push(reply),
                        None => {
                            let _ = reply.send(Err(EngineError::checkpoint(
                                CheckpointId(0),
                                "cannot trigger now (a checkpoint is in flight, a task finished, or the job is stopping)",
                                None,
                            )));
                        }
                    },
                    Some(Command::Release(groups, reply)) => {
                        let r = self.reshape.get_or_insert_with(Reshape::default);
                        r.release.extend(groups);
                        r.waiters.push(reply);
                        self.advance_reshape();
                    }
                    Some(Command::Adopt(adoption, reply)) => {
                        match self.adoption(*adoption) {
                            Ok(a) => {
                                let r = self.reshape.get_or_insert_with(Reshape::default);
                                r.add_adoption(a);
                                r.waiters.push(reply);
                                self.advance_reshape();
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                    Some(Command::Stop) => {
                        if self.stop == StopState::Running {
                            self.stop = StopState::Requested;
                            stop_deadline = Some(tokio::time::Instant::now() + self.stop_timeout);
                            self.advance_stop();
                        self.advance_reshape();
                        }
                    }
                    Some(Command::Abort) => {
                        self.abort_all();
                        return Err(EngineError::Cancelled);
                    }
                    None => commands_open = false,
                },
                _ = async { match next_tick { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending::<()>().await } } => {
                    if self.stop == StopState::Running {
                        self.trigger(false);
                    }
                    // A tick missed (a slow checkpoint) delays the ones after it.
                    if let (Some(t), Some(g)) = (next_tick.as_mut(), gaps.as_mut()) {
                        let gap = g.next_gap();
                        let now = tokio::time::Instant::now();
                        *t = if *t + gap < now { now + gap } else { *t + gap };
                    }
                }
                _ = async { match early_at { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                    match self.trigger(false) {
                        Some(id) => {
                            tracing::debug!(checkpoint = id.0, "sources caught up: checkpoint early");
                            // The next periodic checkpoint counts from this one.
                            if let (Some(t), Some(g)) = (next_tick.as_mut(), gaps.as_mut()) {
                                *t = tokio::time::Instant::now() + g.next_gap();
                            }
                        }
                        // Not now: wait for more input rather than ask again at once.
                        None => {
                            if let Some(e) = self.early.as_mut() {
                                e.read = false;
                            }
                        }
                    }
                }
                _ = async { match stop_deadline { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                    tracing::error!(timeout = ?self.stop_timeout, "final checkpoint did not complete in time; aborting the job");
                    self.abort_all();
                    return Err(EngineError::checkpoint(
                        self.tracker.last_completed().unwrap_or_default(),
                        format!("the final checkpoint of a stop did not complete within {:?}", self.stop_timeout),
                        None,
                    ));
                }
                ev = events.recv() => match ev {
                    Some(JobEvent::Ack { task, checkpoint, state }) => {
                        let o = self.tracker.ack(checkpoint, task, state);
                        if let AckOutcome::Complete(cp) = o {
                            self.acknowledged(cp);
                        }
                        self.advance_stop();
                        self.advance_reshape();
                    }
                    Some(JobEvent::FinalState { task, state }) => {
                        final_states.insert(task, state);
                    }
                    Some(JobEvent::CaughtUp { task, caught_up, read }) => {
                        if let Some(e) = self.early.as_mut() {
                            e.read |= read;
                            if caught_up {
                                e.behind.remove(&task);
                            } else {
                                e.behind.insert(task);
                            }
                        }
                    }
                    Some(JobEvent::Finished(task)) => {
                        if let Some(e) = self.early.as_mut() {
                            e.behind.remove(&task);
                        }
                        running -= 1;
                        let state = final_states.remove(&task).unwrap_or_default();
                        for cp in self.tracker.task_finished(task, state) {
                            self.acknowledged(cp);
                        }
                        if running == 0 {
                            if let Some(w) = self.writing.take() {
                                // The last task ended while its final checkpoint was
                                // being written: that write decides the outcome.
                                let id = w.done.id;
                                w.future.await.map_err(|e| {
                                    EngineError::checkpoint(id, "durable write failed", Some(e))
                                })?;
                                self.complete(w.done);
                            }
                            let stopped = self.stop != StopState::Running;
                            return Ok(self.result(stopped));
                        }
                        self.advance_stop();
                        self.advance_reshape();
                    }
                    Some(JobEvent::Failed(task, EngineError::ChannelClosed(what)))
                        if self.stop == StopState::ShuttingDown =>
                    {
                        // Shutting down after the final checkpoint: a peer that
                        // already ended closed this task's channel. Nothing is lost.
                        tracing::debug!(stage = task.stage, subtask = task.subtask, what, "task ended by a closed channel during shutdown");
                        running -= 1;
                        if running == 0 {
                            return Ok(self.result(true));
                        }
                    }
                    Some(JobEvent::Failed(task, e)) => {
                        self.abort_all();
                        // A closed channel follows the failure of a peer task, whose
                        // own report may come just after: that one is the cause.
                        let e = match e {
                            EngineError::ChannelClosed(_) => cause_after(&mut events, e).await,
                            e => e,
                        };
                        tracing::error!(stage = task.stage, subtask = task.subtask, error = %e, "job failed");
                        self.status.error(e.to_string());
                        for id in self.tracker.pending().collect::<Vec<_>>() {
                            self.status.checkpoint_failed(id.0);
                        }
                        return Err(e);
                    }
                    None => {
                        let stopped = self.stop != StopState::Running;
                        return Ok(self.result(stopped));
                    }
                },
            }
        }
    }
}

/// How long a job that failed by a closed channel waits for the failure behind it.
const CAUSE_WAIT: Duration = Duration::from_millis(500);

/// The first failure other than a closed channel reported within [`CAUSE_WAIT`],
/// else `closed`.
async fn cause_after(
    events: &mut mpsc::UnboundedReceiver<JobEvent>,
    closed: EngineError,
) -> EngineError {
    let deadline = tokio::time::Instant::now() + CAUSE_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(JobEvent::Failed(_, e))) if !matches!(e, EngineError::ChannelClosed(_)) => {
                return e;
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return closed,
        }
    }
}

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
