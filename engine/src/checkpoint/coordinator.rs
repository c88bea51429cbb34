//! Pure checkpoint decisions over typed values, unit-testable without any runtime.
//!
//! [`CheckpointTracker`] decides when to trigger, collects acknowledgements and says
//! when a checkpoint is complete; [`CheckpointGaps`] spaces periodic checkpoints;
//! the runtime performs the I/O they ask for.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::checkpoint::{Checkpoint, CheckpointId, Epoch, OperatorId, OperatorState};

/// The shortest gap [`CheckpointGaps`] ramps up from.
const RAMP_FLOOR: Duration = Duration::from_millis(100);

/// The gaps between periodic checkpoints: the first after an eighth of the
/// interval (at least 100 ms, at most the interval), each next gap twice the
/// last up to the interval. A transactional sink's output is visible only once
/// a checkpoint commits it, so the ramp makes a job's first output visible soon
/// after it starts (or restarts) at the cost of a few more checkpoints.
///
/// ```
/// use std::time::Duration;
/// use engine::checkpoint::CheckpointGaps;
/// let ms = |g: Duration| g.as_millis();
/// let mut gaps = CheckpointGaps::new(Duration::from_secs(1));
/// let first: Vec<u128> = (0..5).map(|_| ms(gaps.next_gap())).collect();
/// assert_eq!(first, [125, 250, 500, 1000, 1000]);
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointGaps {
    interval: Duration,
    gap: Duration,
}

impl CheckpointGaps {
    /// The gaps for checkpoints every `interval`.
    pub fn new(interval: Duration) -> Self {
        CheckpointGaps {
            interval,
            gap: early_checkpoint_gap(interval),
        }
    }

    /// The gap before the next checkpoint.
    pub fn next_gap(&mut self) -> Duration {
        let gap = self.gap;
        self.gap = (self.gap * 2).min(self.interval);
        gap
    }
}

/// The shortest gap between an early checkpoint (one taken because the
/// sources caught up, see [`crate::PipelineConfig::checkpoint_when_caught_up`])
/// and the checkpoint before it: an eighth of `interval`, at least 100 ms and at
/// most the interval.
///
/// ```
/// use std::time::Duration;
/// use engine::checkpoint::early_checkpoint_gap;
/// assert_eq!(early_checkpoint_gap(Duration::from_secs(1)), Duration::from_millis(125));
/// assert_eq!(early_checkpoint_gap(Duration::from_millis(400)), Duration::from_millis(100));
/// assert_eq!(early_checkpoint_gap(Duration::from_millis(50)), Duration::from_millis(50));
/// ```
pub fn early_checkpoint_gap(interval: Duration) -> Duration {
    (interval / 8).max(RAMP_FLOOR).min(interval)
}

/// Identity of a running task: stage index and subtask.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// Stage (group of parallel tasks) index.
    pub stage: u32,
    /// Subtask index within the stage.
    pub subtask: u32,
}

/// A triggered checkpoint waiting for acknowledgements.
#[derive(Debug, Clone)]
pub struct PendingCheckpoint {
    /// Its id.
    pub id: CheckpointId,
    /// Tasks that have not acknowledged yet.
    pub waiting: BTreeSet<TaskId>,
    /// State collected so far.
    pub state: BTreeMap<OperatorId, OperatorState>,
}

/// What an acknowledgement led to.
#[derive(Debug, PartialEq)]
pub enum AckOutcome {
    /// More acknowledgements are needed.
    Pending,
    /// Every task acknowledged: the checkpoint is complete.
    Complete(Checkpoint),
    /// The checkpoint is unknown (already completed, aborted or never triggered).
    Unknown,
}

/// The coordinator's state machine.
#[derive(Debug, Clone)]
pub struct CheckpointTracker {
    epoch: Epoch,
    next_id: CheckpointId,
    tasks: BTreeSet<TaskId>,
    sources: BTreeSet<TaskId>,
    finished: BTreeSet<TaskId>,
    /// Last state of finished tasks (e.g. end positions of exhausted splits); it is
    /// part of every later checkpoint.
    final_state: Vec<(OperatorId, OperatorState)>,
    pending: BTreeMap<CheckpointId, PendingCheckpoint>,
    last_completed: Option<CheckpointId>,
    max_concurrent: usize,
}

impl CheckpointTracker {
    /// A tracker for `tasks`; ids continue after `restored_from` and the epoch is one
    /// past the restored checkpoint's.
    pub fn new(
        tasks: impl IntoIterator<Item = (TaskId, bool)>,
        restored_from: Option<(CheckpointId, Epoch)>,
    ) -> Self {
        let tasks: Vec<(TaskId, bool)> = tasks.into_iter().collect();
        let (next_id, epoch) = match restored_from {
            Some((id, e)) => (id.next(), Epoch(e.0 + 1)),
            None => (CheckpointId(1), Epoch(0)),
        };
        CheckpointTracker {
            epoch,
            next_id,
            sources: tasks.iter().filter(|(_, s)| *s).map(|(t, _)| *t).collect(),
            tasks: tasks.iter().map(|(t, _)| *t).collect(),
            finished: BTreeSet::new(),
            final_state: Vec::new(),
            pending: BTreeMap::new(),
            last_completed: restored_from.map(|(id, _)| id),
            max_concurrent: 1,
        }
    }

    /// The epoch of this incarnation.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The newest completed checkpoint.
    pub fn last_completed(&self) -> Option<CheckpointId> {
        self.last_completed
    }

    /// Whether a new checkpoint may start now: some source task still runs (only
    /// sources inject barriers) and fewer than the allowed number are in flight.
    pub fn can_trigger(&self) -> bool {
        self.sources.iter().any(|s| !self.finished.contains(s))
            && self.pending.len() < self.max_concurrent
    }

    /// Starts the next checkpoint if allowed and returns its id.
    pub fn trigger(&mut self) -> Option<CheckpointId> {
        if !self.can_trigger() {
            return None;
        }
        let id = self.next_id;
        self.next_id = id.next();
        let waiting = self.tasks.difference(&self.finished).copied().collect();
        let mut state: BTreeMap<OperatorId, OperatorState> = BTreeMap::new();
        for (op, s) in &self.final_state {
            state.entry(*op).or_default().merge(s.clone());
        }
        self.pending
            .insert(id, PendingCheckpoint { id, waiting, state });
        Some(id)
    }

    /// Records a task's acknowledgement with the state its operators wrote.
    pub fn ack(
        &mut self,
        id: CheckpointId,
        task: TaskId,
        state: Vec<(OperatorId, OperatorState)>,
    ) -> AckOutcome {
        let Some(p) = self.pending.get_mut(&id) else {
            return AckOutcome::Unknown;
        };
        if !p.waiting.remove(&task) {
            return AckOutcome::Pending;
        }
        for (op, s) in state {
            p.state.entry(op).or_default().merge(s);
        }
        if !p.waiting.is_empty() {
            return AckOutcome::Pending;
        }
        let Some(done) = self.pending.remove(&id) else {
            return AckOutcome::Unknown;
        };
        // A newer complete checkpoint subsumes every older pending one.
        self.pending.retain(|pid, _| *pid > id);
        self.last_completed = Some(id);
        AckOutcome::Complete(Checkpoint {
            id,
            epoch: self.epoch,
            operators: done.state,
            uids: BTreeMap::new(),
            released: Default::default(),
            adopted: Default::default(),
        })
    }

    /// Records that a task finished with its final state. It will never acknowledge
    /// a barrier, so pending checkpoints take its final state instead (it processed
    /// everything before its end, which aligned barriers downstream also wait for);
    /// returns the checkpoints this completed.
    pub fn task_finished(
        &mut self,
        task: TaskId,
        final_state: Vec<(OperatorId, OperatorState)>,
    ) -> Vec<Checkpoint> {
        self.finished.insert(task);
        self.final_state.extend(final_state.iter().cloned());
        let waiting: Vec<CheckpointId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.waiting.contains(&task))
            .map(|(id, _)| *id)
            .collect();
        let mut done = Vec::new();
        for id in waiting {
            if let AckOutcome::Complete(c) = self.ack(id, task, final_state.clone()) {
                done.push(c);
            }
        }
        done
    }

    /// Checkpoints in flight.
    pub fn pending(&self) -> impl Iterator<Item = CheckpointId> + '_ {
        self.pending.keys().copied()
    }
}

/// Which pre-committed checkpoints a sink commits when `completed` is notified:
/// every one up to and including it (a notification may be skipped when a newer
/// checkpoint subsumes an older one).
pub fn to_commit(
    pre_committed: &BTreeSet<CheckpointId>,
    completed: CheckpointId,
) -> Vec<CheckpointId> {
    pre_committed.range(..=completed).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(stage: u32, subtask: u32) -> TaskId {
        TaskId { stage, subtask }
    }

    #[test]
    fn checkpoint_gaps_ramp_up_from_a_floor_and_never_exceed_the_interval() {
        let gaps = |interval_ms: u64, n: usize| -> Vec<u128> {
            let mut g = CheckpointGaps::new(Duration::from_millis(interval_ms));
            (0..n).map(|_| g.next_gap().as_millis()).collect()
        };
        assert_eq!(
            gaps(10_000, 9),
            [
                1250, 2500, 5000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000
            ]
        );
        assert_eq!(gaps(400, 4), [100, 200, 400, 400]);
        assert_eq!(gaps(100, 2), [100, 100]);
        assert_eq!(gaps(5, 2), [5, 5], "an interval under the floor is kept");
    }

    #[test]
    fn completes_only_after_every_task_acked() {
        let mut tr = CheckpointTracker::new([(t(0, 0), true), (t(1, 0), false)], None);
        let id = tr.trigger().unwrap();
        assert_eq!(id, CheckpointId(1));
        assert_eq!(tr.trigger(), None, "one checkpoint in flight at a time");
        assert_eq!(tr.ack(id, t(0, 0), vec![]), AckOutcome::Pending);
        assert_eq!(
            tr.ack(id, t(0, 0), vec![]),
            AckOutcome::Pending,
            "duplicate ack ignored"
        );
        match tr.ack(id, t(1, 0), vec![]) {
            AckOutcome::Complete(c) => assert_eq!(c.id, id),
            o => panic!("{o:?}"),
        }
        assert_eq!(tr.last_completed(), Some(id));
        assert_eq!(tr.ack(id, t(1, 0), vec![]), AckOutcome::Unknown);
    }

    #[test]
    fn empty_checkpoint_completes() {
        let mut tr = CheckpointTracker::new([(t(0, 0), true)], None);
        let id = tr.trigger().unwrap();
        assert!(
            matches!(tr.ack(id, t(0, 0), vec![]), AckOutcome::Complete(c) if c.operators.is_empty())
        );
    }

    #[test]
    fn restore_continues_ids_and_bumps_epoch() {
        let mut tr = CheckpointTracker::new([(t(0, 0), true)], Some((CheckpointId(7), Epoch(2))));
        assert_eq!(tr.epoch(), Epoch(3));
        assert_eq!(tr.trigger(), Some(CheckpointId(8)));
    }

    #[test]
    fn finished_task_contributes_its_final_state_and_sources_gate_triggering() {
        let (src_a, src_b, sink) = (t(0, 0), t(0, 1), t(1, 0));
        let mut tr = CheckpointTracker::new([(src_a, true), (src_b, true), (sink, false)], None);
        let id = tr.trigger().unwrap();
        let end = OperatorState {
            entries: [(1, vec![9])].into(),
            ..Default::default()
        };
        assert!(
            tr.task_finished(src_b, vec![(OperatorId(0), end.clone())])
                .is_empty()
        );
        tr.ack(id, src_a, vec![]);
        match tr.ack(id, sink, vec![]) {
            AckOutcome::Complete(c) => assert_eq!(c.operators[&OperatorId(0)], end),
            o => panic!("{o:?}"),
        }
        // The next checkpoint no longer waits for the finished task but keeps its state.
        let id2 = tr.trigger().unwrap();
        tr.ack(id2, src_a, vec![]);
        assert!(
            matches!(tr.ack(id2, sink, vec![]), AckOutcome::Complete(c) if c.operators[&OperatorId(0)] == end)
        );
        tr.task_finished(src_a, vec![]);
        assert!(!tr.can_trigger(), "no source left to inject barriers");
    }

    #[test]
    fn commit_covers_all_older_pre_commits() {
        let pre: BTreeSet<_> = [CheckpointId(3), CheckpointId(4), CheckpointId(6)].into();
        assert_eq!(
            to_commit(&pre, CheckpointId(4)),
            vec![CheckpointId(3), CheckpointId(4)]
        );
    }
}
