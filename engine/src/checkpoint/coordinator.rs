//! Pure checkpoint decisions over typed values, unit-testable without any runtime.
//!
//! [`CheckpointTracker`] decides when to trigger, collects acknowledgements and says
//! when a checkpoint is complete; the runtime performs the I/O it asks for.

use std::collections::{BTreeMap, BTreeSet};

use crate::checkpoint::{Checkpoint, CheckpointId, Epoch, OperatorId, OperatorState};

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
    finished: BTreeSet<TaskId>,
    pending: BTreeMap<CheckpointId, PendingCheckpoint>,
    last_completed: Option<CheckpointId>,
    max_concurrent: usize,
}

impl CheckpointTracker {
    /// A tracker for `tasks`; ids continue after `restored_from` and the epoch is one
    /// past the restored checkpoint's.
    pub fn new(
        tasks: impl IntoIterator<Item = TaskId>,
        restored_from: Option<(CheckpointId, Epoch)>,
    ) -> Self {
        let (next_id, epoch) = match restored_from {
            Some((id, e)) => (id.next(), Epoch(e.0 + 1)),
            None => (CheckpointId(1), Epoch(0)),
        };
        CheckpointTracker {
            epoch,
            next_id,
            tasks: tasks.into_iter().collect(),
            finished: BTreeSet::new(),
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

    /// Whether a new checkpoint may start now: no task has finished (a finished source
    /// can no longer emit barriers) and fewer than the allowed number are in flight.
    pub fn can_trigger(&self) -> bool {
        self.finished.is_empty() && self.pending.len() < self.max_concurrent
    }

    /// Starts the next checkpoint if allowed and returns its id.
    pub fn trigger(&mut self) -> Option<CheckpointId> {
        if !self.can_trigger() {
            return None;
        }
        let id = self.next_id;
        self.next_id = id.next();
        self.pending.insert(
            id,
            PendingCheckpoint {
                id,
                waiting: self.tasks.clone(),
                state: BTreeMap::new(),
            },
        );
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
        })
    }

    /// Records that a task finished; pending checkpoints still waiting for it are
    /// aborted (returned), since it will never acknowledge.
    pub fn task_finished(&mut self, task: TaskId) -> Vec<CheckpointId> {
        self.finished.insert(task);
        let aborted: Vec<CheckpointId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.waiting.contains(&task))
            .map(|(id, _)| *id)
            .collect();
        for id in &aborted {
            self.pending.remove(id);
        }
        aborted
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
    fn completes_only_after_every_task_acked() {
        let mut tr = CheckpointTracker::new([t(0, 0), t(1, 0)], None);
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
        let mut tr = CheckpointTracker::new([t(0, 0)], None);
        let id = tr.trigger().unwrap();
        assert!(
            matches!(tr.ack(id, t(0, 0), vec![]), AckOutcome::Complete(c) if c.operators.is_empty())
        );
    }

    #[test]
    fn restore_continues_ids_and_bumps_epoch() {
        let mut tr = CheckpointTracker::new([t(0, 0)], Some((CheckpointId(7), Epoch(2))));
        assert_eq!(tr.epoch(), Epoch(3));
        assert_eq!(tr.trigger(), Some(CheckpointId(8)));
    }

    #[test]
    fn finished_task_aborts_pending_and_blocks_new_checkpoints() {
        let mut tr = CheckpointTracker::new([t(0, 0), t(1, 0)], None);
        let id = tr.trigger().unwrap();
        assert_eq!(tr.task_finished(t(0, 0)), vec![id]);
        assert!(!tr.can_trigger());
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
