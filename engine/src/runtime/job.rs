//! The job driver: spawns every task, runs the checkpoint coordinator loop (the I/O
//! around [`CheckpointTracker`]) and reports the job's outcome.
//!
//! ```text
//! JobHandle --trigger/cancel--> coordinator --Trigger(barrier)--> source tasks
//!                               coordinator <--Ack/Finished/Failed-- every task
//!                               coordinator --Complete(n)--> every task (sinks commit)
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::checkpoint::{
    AckOutcome, Checkpoint, CheckpointBarrier, CheckpointId, CheckpointTracker, Epoch,
    InMemoryCheckpointStore, OperatorId, OperatorState, TaskId,
};
use crate::error::{EngineError, Result};
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
}

enum Command {
    Trigger(oneshot::Sender<Result<CheckpointId>>),
    Cancel,
}

/// A running job.
pub struct JobHandle {
    commands: mpsc::UnboundedSender<Command>,
    done: JoinHandle<Result<JobResult>>,
    store: InMemoryCheckpointStore,
}

impl JobHandle {
    /// Triggers a checkpoint and waits until it completed (all tasks acknowledged
    /// and it is in the store) or was aborted.
    pub async fn trigger_checkpoint(&self) -> Result<CheckpointId> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Trigger(tx))
            .map_err(|_| EngineError::ChannelClosed("job already finished".into()))?;
        rx.await
            .map_err(|_| EngineError::ChannelClosed("job finished before the checkpoint".into()))?
    }

    /// Stops the job: every task is aborted; [`JobHandle::wait`] then returns
    /// [`EngineError::Cancelled`].
    pub fn cancel(&self) {
        let _ = self.commands.send(Command::Cancel);
    }

    /// The store completed checkpoints go to.
    pub fn checkpoints(&self) -> InMemoryCheckpointStore {
        self.store.clone()
    }

    /// Waits for the job to finish (bounded inputs), fail or be cancelled.
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
    pub(crate) interval: Option<Duration>,
    pub(crate) clock: Clock,
}

/// Spawns all tasks and the coordinator on the current tokio runtime.
pub(crate) fn spawn_job(setup: JobSetup) -> JobHandle {
    let JobSetup {
        tasks,
        events_tx,
        events_rx,
        tracker,
        store,
        interval,
        clock,
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
            let r = fut.await;
            match r {
                Ok(()) => {
                    tracing::debug!(task = %name, "task finished");
                    let _ = events.send(JobEvent::Finished(id));
                }
                Err(e) => {
                    tracing::warn!(task = %name, error = %e, "task failed");
                    let _ = events.send(JobEvent::Failed(id, e));
                }
            }
        });
        aborts.push(h.abort_handle());
    }
    drop(events_tx);
    let coord = Coordinator {
        controls,
        aborts,
        tracker,
        store: store.clone(),
        clock,
        waiters: BTreeMap::new(),
    };
    let done = tokio::spawn(coord.run(events_rx, cmd_rx, interval));
    JobHandle {
        commands: cmd_tx,
        done,
        store,
    }
}

struct Coordinator {
    controls: Vec<(TaskId, bool, mpsc::UnboundedSender<Control>)>,
    aborts: Vec<tokio::task::AbortHandle>,
    tracker: CheckpointTracker,
    store: InMemoryCheckpointStore,
    clock: Clock,
    waiters: BTreeMap<CheckpointId, Vec<oneshot::Sender<Result<CheckpointId>>>>,
}

impl Coordinator {
    fn trigger(&mut self) -> Option<CheckpointId> {
        let id = self.tracker.trigger()?;
        let barrier = CheckpointBarrier {
            id,
            timestamp: self.clock.now_ms(),
        };
        tracing::debug!(checkpoint = id.0, "triggering checkpoint");
        for (_, is_source, tx) in &self.controls {
            if *is_source {
                let _ = tx.send(Control::Trigger(barrier));
            }
        }
        Some(id)
    }

    fn complete(&mut self, cp: Checkpoint) {
        let id = cp.id;
        tracing::info!(
            checkpoint = id.0,
            operators = cp.operators.len(),
            "checkpoint complete"
        );
        metrics::counter!("strom_checkpoints_completed_total").increment(1);
        self.store.add(cp);
        for (_, _, tx) in &self.controls {
            let _ = tx.send(Control::Complete(id));
        }
        let done: Vec<CheckpointId> = self.waiters.range(..=id).map(|(k, _)| *k).collect();
        for k in done {
            for w in self.waiters.remove(&k).unwrap_or_default() {
                let _ = w.send(if k == id {
                    Ok(id)
                } else {
                    Err(EngineError::Checkpoint {
                        checkpoint: k,
                        message: "subsumed".into(),
                    })
                });
            }
        }
    }

    fn abort_all(&self) {
        for a in &self.aborts {
            a.abort();
        }
    }

    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<JobEvent>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        interval: Option<Duration>,
    ) -> Result<JobResult> {
        let mut running = self.controls.len();
        let mut ticker = interval.map(|d| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut commands_open = true;
        let mut final_states: BTreeMap<TaskId, Vec<(OperatorId, OperatorState)>> = BTreeMap::new();
        if running == 0 {
            return Ok(JobResult {
                epoch: self.tracker.epoch(),
                last_checkpoint: self.tracker.last_completed(),
            });
        }
        loop {
            tokio::select! {
                c = commands.recv(), if commands_open => match c {
                    Some(Command::Trigger(reply)) => match self.trigger() {
                        Some(id) => self.waiters.entry(id).or_default().push(reply),
                        None => {
                            let _ = reply.send(Err(EngineError::Checkpoint {
                                checkpoint: CheckpointId(0),
                                message: "cannot trigger now (a checkpoint is in flight or a task finished)".into(),
                            }));
                        }
                    },
                    Some(Command::Cancel) => {
                        self.abort_all();
                        return Err(EngineError::Cancelled);
                    }
                    None => commands_open = false,
                },
                _ = async { match ticker.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending::<()>().await } } => {
                    self.trigger();
                }
                ev = events.recv() => match ev {
                    Some(JobEvent::Ack { task, checkpoint, state }) => {
                        let o = self.tracker.ack(checkpoint, task, state);
                        if let AckOutcome::Complete(cp) = o {
                            self.complete(cp);
                        }
                    }
                    Some(JobEvent::FinalState { task, state }) => {
                        final_states.insert(task, state);
                    }
                    Some(JobEvent::Finished(task)) => {
                        running -= 1;
                        let state = final_states.remove(&task).unwrap_or_default();
                        for cp in self.tracker.task_finished(task, state) {
                            self.complete(cp);
                        }
                        if running == 0 {
                            return Ok(JobResult { epoch: self.tracker.epoch(), last_checkpoint: self.tracker.last_completed() });
                        }
                    }
                    Some(JobEvent::Failed(task, e)) => {
                        tracing::error!(stage = task.stage, subtask = task.subtask, error = %e, "job failed");
                        self.abort_all();
                        return Err(e);
                    }
                    None => {
                        return Ok(JobResult { epoch: self.tracker.epoch(), last_checkpoint: self.tracker.last_completed() });
                    }
                },
            }
        }
    }
}
