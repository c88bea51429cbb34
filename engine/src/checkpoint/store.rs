//! Where completed checkpoints go: a durable [`CheckpointStore`] (its write decides
//! whether a checkpoint completed), and the in-memory list of the newest ones that
//! every job keeps ([`InMemoryCheckpointStore`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::checkpoint::{Checkpoint, CheckpointId};
use crate::error::Result;

/// The future a [`CheckpointStore`] write returns.
pub type StoreFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Durable storage for checkpoints (a Kafka transaction, files, a database).
///
/// The coordinator calls [`CheckpointStore::write`] once every task acknowledged a
/// checkpoint, and counts the checkpoint as complete (sinks commit, sources are
/// told) only after the write succeeded. A failed write fails the job; its error's
/// [`crate::ErrorClass`] says whether rolling back to the last completed checkpoint
/// can help. No new checkpoint starts while a write is in flight.
pub trait CheckpointStore: Send + Sync + 'static {
    /// Makes `checkpoint` durable. The job keeps no other reference to it, so
    /// the store may take its state out (`Arc::unwrap_or_clone`) rather than
    /// copy it.
    fn write(&self, checkpoint: Arc<Checkpoint>) -> StoreFuture;
}

/// Completed checkpoints kept in memory, newest last. Cloning shares the store. As a
/// [`CheckpointStore`] its writes always succeed (and add the checkpoint).
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

impl CheckpointStore for InMemoryCheckpointStore {
    fn write(&self, checkpoint: Arc<Checkpoint>) -> StoreFuture {
        self.add(Checkpoint::clone(&checkpoint));
        Box::pin(async { Ok(()) })
    }
}
