//! An in-memory store of completed checkpoints; a later issue adds durable stores
//! behind the same shape.

use std::sync::{Arc, Mutex};

use crate::checkpoint::{Checkpoint, CheckpointId};

/// Completed checkpoints kept in memory, newest last. Cloning shares the store.
#[derive(Clone, Debug, Default)]
pub struct InMemoryCheckpointStore {
    inner: Arc<Mutex<Vec<Checkpoint>>>,
    retain: usize,
}

impl InMemoryCheckpointStore {
    /// A store keeping the newest `retain` checkpoints (at least one).
    pub fn new(retain: usize) -> Self {
        InMemoryCheckpointStore {
            inner: Arc::default(),
            retain: retain.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Checkpoint>> {
        // A panic while holding the lock cannot leave a half-written Vec behind, so a
        // poisoned lock still holds consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a completed checkpoint, dropping the oldest beyond the retention.
    pub fn add(&self, checkpoint: Checkpoint) {
        let mut v = self.lock();
        v.push(checkpoint);
        v.sort_by_key(|c| c.id);
        let retain = self.retain.max(1);
        if v.len() > retain {
            let drop = v.len() - retain;
            v.drain(..drop);
        }
    }

    /// The newest completed checkpoint.
    pub fn latest(&self) -> Option<Checkpoint> {
        self.lock().last().cloned()
    }

    /// A checkpoint by id, if still retained.
    pub fn get(&self, id: CheckpointId) -> Option<Checkpoint> {
        self.lock().iter().find(|c| c.id == id).cloned()
    }

    /// Ids of the retained checkpoints, oldest first.
    pub fn ids(&self) -> Vec<CheckpointId> {
        self.lock().iter().map(|c| c.id).collect()
    }
}
