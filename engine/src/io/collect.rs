//! A collecting sink for tests. In transactional mode it behaves like a two-phase
//! commit sink: records become visible only when their checkpoint commits (or at the
//! end of a bounded input), and a restored job commits what the checkpoint
//! pre-committed, so tests can prove exactly-once output.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::checkpoint::CheckpointId;
use crate::error::Result;
use crate::io::sink::{Sink, SinkContext};
use crate::record::Record;
use crate::state::codec::{decode_exact, encode_to_vec};

struct Shared<T> {
    committed: Vec<Record<T>>,
    pre_committed: BTreeMap<(usize, CheckpointId), Vec<Record<T>>>,
    batches: u64,
}

/// Collects records in memory. Clones share the collected data.
///
/// ```
/// use engine::CollectSink;
/// let sink = CollectSink::<u64>::new();
/// assert!(sink.values().is_empty());
/// ```
pub struct CollectSink<T> {
    shared: Arc<Mutex<Shared<T>>>,
    transactional: bool,
    subtask: usize,
    staged: Vec<Record<T>>,
}

impl<T> Clone for CollectSink<T> {
    fn clone(&self) -> Self {
        CollectSink {
            shared: self.shared.clone(),
            transactional: self.transactional,
            subtask: self.subtask,
            staged: Vec::new(),
        }
    }
}

impl<T: Clone + Send + 'static> Default for CollectSink<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Send + 'static> CollectSink<T> {
    /// Records become visible as soon as they are written.
    pub fn new() -> Self {
        CollectSink {
            shared: Arc::new(Mutex::new(Shared {
                committed: Vec::new(),
                pre_committed: BTreeMap::new(),
                batches: 0,
            })),
            transactional: false,
            subtask: 0,
            staged: Vec::new(),
        }
    }

    /// Records become visible only when their checkpoint commits.
    pub fn transactional() -> Self {
        CollectSink {
            transactional: true,
            ..Self::new()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared<T>> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Visible (committed) values, in arrival order.
    pub fn values(&self) -> Vec<T> {
        self.lock()
            .committed
            .iter()
            .map(|r| r.value.clone())
            .collect()
    }

    /// Visible records with timestamps.
    pub fn records(&self) -> Vec<Record<T>> {
        self.lock().committed.clone()
    }

    /// Number of batches written so far.
    pub fn batches(&self) -> u64 {
        self.lock().batches
    }
}

impl<T: Clone + Send + 'static> Sink<T> for CollectSink<T> {
    fn name(&self) -> &str {
        "collect"
    }

    async fn open(&mut self, ctx: &SinkContext) -> Result<()> {
        self.subtask = ctx.subtask;
        // Finish the transactions the restored checkpoint pre-committed, including
        // those of subtasks that no longer exist after a rescale.
        for bytes in &ctx.restored {
            let (subtask, id) = decode_exact::<(u64, u64)>(bytes)?;
            self.commit_up_to(subtask as usize, CheckpointId(id));
        }
        Ok(())
    }

    async fn write(&mut self, batch: Vec<Record<T>>) -> Result<()> {
        if self.transactional {
            self.staged.extend(batch);
            self.lock().batches += 1;
        } else {
            let mut s = self.lock();
            s.batches += 1;
            s.committed.extend(batch);
        }
        Ok(())
    }

    async fn pre_commit(&mut self, checkpoint: CheckpointId) -> Result<Vec<u8>> {
        if !self.transactional {
            return Ok(Vec::new());
        }
        let staged = std::mem::take(&mut self.staged);
        self.lock()
            .pre_committed
            .insert((self.subtask, checkpoint), staged);
        Ok(encode_to_vec(&(self.subtask as u64, checkpoint.0)))
    }

    async fn commit(&mut self, checkpoint: CheckpointId) -> Result<()> {
        self.commit_up_to(self.subtask, checkpoint);
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        self.commit_up_to(self.subtask, CheckpointId(u64::MAX));
        let staged = std::mem::take(&mut self.staged);
        self.lock().committed.extend(staged);
        Ok(())
    }
}

impl<T> CollectSink<T> {
    fn commit_up_to(&self, subtask: usize, id: CheckpointId) {
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<(usize, CheckpointId)> = s
            .pre_committed
            .keys()
            .filter(|(sub, c)| *sub == subtask && *c <= id)
            .copied()
            .collect();
        for k in keys {
            if let Some(v) = s.pre_committed.remove(&k) {
                s.committed.extend(v);
            }
        }
    }
}
