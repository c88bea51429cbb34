//! Checkpoints: typed ids, the barrier, snapshots and the in-memory store.
//!
//! ```text
//!  coordinator --trigger(n)--> source tasks: record split positions, emit barrier n
//!  barrier n flows with the data; a task with several inputs aligns: it blocks each
//!  input that delivered barrier n until all have, then snapshots its operators
//!  every task --ack(n, snapshots)--> coordinator (sinks pre-commit before acking)
//!  all acks in --> completed checkpoint stored --> notify-complete(n) --> sinks commit
//! ```
//! The decisions (when to trigger, when a checkpoint is complete, what to commit) are
//! pure functions in [`coordinator`]; the runtime only moves messages.

pub mod coordinator;
pub mod store;

use std::collections::BTreeMap;
use std::fmt;

pub use coordinator::{AckOutcome, CheckpointTracker, PendingCheckpoint, TaskId};
pub use store::InMemoryCheckpointStore;

/// Monotonically increasing id of a checkpoint within a job (across restores).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CheckpointId(pub u64);

impl CheckpointId {
    /// The id after this one.
    pub fn next(self) -> CheckpointId {
        CheckpointId(self.0 + 1)
    }
}

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Incarnation of a job: 0 on a fresh start, +1 on every restore. Transactional sinks
/// use it to fence writers of earlier incarnations.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Epoch(pub u32);

/// The marker that flows with the data and cuts the stream into "before checkpoint n"
/// and "after".
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CheckpointBarrier {
    /// The checkpoint this barrier belongs to.
    pub id: CheckpointId,
    /// Processing time (ms) at which the coordinator triggered it.
    pub timestamp: i64,
}

/// Stable identity of an operator in a pipeline, assigned in definition order, so the
/// same program gets the same ids and can restore its state.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(pub u32);

/// State one operator subtask wrote at a barrier.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OperatorState {
    /// Keyed state: one byte string per key group.
    pub key_groups: BTreeMap<u16, Vec<u8>>,
    /// Non-keyed state entries (source split index -> position, sink subtask ->
    /// pending transaction, ...).
    pub entries: BTreeMap<u32, Vec<u8>>,
}

impl OperatorState {
    /// Whether the operator wrote nothing.
    pub fn is_empty(&self) -> bool {
        self.key_groups.is_empty() && self.entries.is_empty()
    }

    /// Merges the state of another subtask of the same operator.
    pub fn merge(&mut self, other: OperatorState) {
        self.key_groups.extend(other.key_groups);
        self.entries.extend(other.entries);
    }
}

/// A completed checkpoint: the state of every operator, merged over its subtasks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// Its id.
    pub id: CheckpointId,
    /// The epoch of the job incarnation that took it.
    pub epoch: Epoch,
    /// State per operator.
    pub operators: BTreeMap<OperatorId, OperatorState>,
}

impl Checkpoint {
    /// The state of `op` restricted to what one subtask needs: the key groups in
    /// `range` and the entries `e` with `e % parallelism == subtask`.
    pub fn state_for(
        &self,
        op: OperatorId,
        range: crate::KeyGroupRange,
        subtask: usize,
        parallelism: usize,
    ) -> Option<OperatorState> {
        let s = self.operators.get(&op)?;
        let key_groups = s
            .key_groups
            .iter()
            .filter(|(kg, _)| range.contains(crate::KeyGroup(**kg)))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let entries = s
            .entries
            .iter()
            .filter(|(e, _)| (**e as usize) % parallelism.max(1) == subtask)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        Some(OperatorState {
            key_groups,
            entries,
        })
    }
}
