//! The sink trait with its two-phase commit hooks.
//!
//! ```text
//! write(batch)*  --barrier n-->  pre_commit(n) (flush; returns state kept in checkpoint n)
//! checkpoint n complete      -->  commit(n)     (make checkpoint n's writes visible)
//! restore from checkpoint n  -->  open(ctx.restored = state of n): finish what n pre-committed
//! end of bounded input       -->  finish()      (flush and commit the rest)
//! ```
//! A Kafka sink maps pre-commit to flushing the transaction and commit to
//! committing it; committing a checkpoint with no writes must succeed.

use std::collections::BTreeSet;
use std::future::Future;

use crate::checkpoint::{CheckpointId, Epoch};
use crate::error::Result;
use crate::record::Record;

/// What a sink instance knows when it opens.
#[derive(Clone, Debug)]
pub struct SinkContext {
    /// Sink subtask index.
    pub subtask: usize,
    /// Sink parallelism.
    pub parallelism: usize,
    /// Incarnation of the job (fences writers of earlier incarnations).
    pub epoch: Epoch,
    /// The states `pre_commit` returned in the restored checkpoint that this subtask
    /// now owns (more than one after scaling in): finish what they describe.
    pub restored: Vec<Vec<u8>>,
}

/// A destination for records. Each parallel subtask gets its own clone.
pub trait Sink<T>: Send + 'static {
    /// Name used in metrics and errors.
    fn name(&self) -> &str {
        "sink"
    }
    /// What the sink writes to, for the status API: kafka, postgres, file,
    /// stdout, blackhole, ...
    fn kind(&self) -> &str {
        "custom"
    }
    /// Called once before the first write; on restore, commit what
    /// `ctx.restored` describes.
    fn open(&mut self, _ctx: &SinkContext) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
    /// Writes a batch.
    fn write(&mut self, batch: Vec<Record<T>>) -> impl Future<Output = Result<()>> + Send;
    /// Barrier `checkpoint` reached the sink: flush and prepare to commit; the
    /// returned bytes are stored in the checkpoint.
    fn pre_commit(
        &mut self,
        _checkpoint: CheckpointId,
    ) -> impl Future<Output = Result<Vec<u8>>> + Send {
        async { Ok(Vec::new()) }
    }
    /// The watermark of the sink's input advanced to `watermark` (`i64::MAX`
    /// when bounded input ends): a sink that carries event time on (a
    /// repartition topic) records it.
    fn watermark(&mut self, _watermark: i64) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
    /// Whether the job may take on key groups while it runs when its input has
    /// event time. The default says yes.
    fn adopts_under_event_time(&self) -> bool {
        true
    }
    /// The job takes on `key_groups` at barrier `checkpoint` (called before
    /// that checkpoint's [`Sink::pre_commit`]) while the sink's input has event
    /// time. Until [`Sink::caught_up`] names one of them, records of its
    /// partitions may be older than the watermark the sink was given: the
    /// adopted partition catches up from its last checkpoint while the others'
    /// watermark is held where it was. A sink that carries the watermark on (a
    /// repartition topic's markers) must not let it run past them meanwhile.
    /// Every subtask of the sink is told of every adoption.
    fn adopted(&mut self, _checkpoint: CheckpointId, _key_groups: &BTreeSet<u16>) -> Result<()> {
        Ok(())
    }
    /// An adopted key group's partition caught up with the watermark (see
    /// [`Sink::adopted`]). Only the subtasks that its source task feeds are
    /// told.
    fn caught_up(&mut self, _key_group: u16) -> Result<()> {
        Ok(())
    }
    /// The job gave up `key_groups` at a barrier (called after that
    /// checkpoint's [`Sink::pre_commit`]); no record of them follows.
    fn released(&mut self, _key_groups: &BTreeSet<u16>) -> Result<()> {
        Ok(())
    }
    /// The sink's input became idle (`true`) or active again.
    fn idle(&mut self, _idle: bool) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
    /// Checkpoint `checkpoint` completed: commit everything pre-committed up to it.
    fn commit(&mut self, _checkpoint: CheckpointId) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
    /// The bounded input ended: flush and commit everything.
    fn finish(&mut self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}
