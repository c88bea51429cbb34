//! Operators: the lifecycle trait every operator implements and one file per
//! built-in operator.
//!
//! An operator sees batches of records and control events; it never sees the next
//! operator. The runtime chains operators of equal parallelism into one task and
//! passes each operator's output batch straight to the next one.
//!
//! ```text
//! open -> (process_batch | on_watermark | on_processing_time | snapshot
//!          | notify_checkpoint_complete)* -> end_of_input -> close
//! ```

pub mod async_map;
pub mod count_window;
pub mod filter;
pub mod flat_map;
pub mod interval_join;
pub mod map;
pub mod pane_window;
pub mod process;
pub mod regular_join;
pub mod session_window;
pub mod sliding_window;
mod windowing;

use std::collections::BTreeSet;
use std::fmt::Display;
use std::sync::Arc;

use crate::checkpoint::{Checkpoint, CheckpointBarrier, CheckpointId, OperatorId, OperatorState};
use crate::error::Result;
use crate::record::{Position, Record};
use crate::runtime::context::TaskCtx;
use crate::runtime::emitter::ChannelEmitter;
use crate::runtime::node::Node;
use crate::state::key_group::KeyGroupRange;

/// What an operator instance knows about itself when it opens.
#[derive(Clone, Debug)]
pub struct OperatorInit {
    /// Stable operator id (for state).
    pub id: OperatorId,
    /// Operator name (metrics, errors).
    pub name: Arc<str>,
    /// This instance's subtask index.
    pub subtask: usize,
    /// The operator's parallelism.
    pub parallelism: usize,
    /// Maximum parallelism = number of key groups.
    pub max_parallelism: u16,
    /// Key groups this subtask owns.
    pub key_groups: KeyGroupRange,
    /// State restored from a checkpoint, if the job was restored.
    pub restored: Option<OperatorState>,
    /// The keyed stream's key-to-key-group function (a `KeyGroupFn<K>`), when key
    /// groups are source partitions rather than key hashes.
    pub(crate) grouper: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl OperatorInit {
    pub(crate) fn new(
        id: OperatorId,
        name: Arc<str>,
        subtask: usize,
        parallelism: usize,
        max_parallelism: u16,
        restore: Option<&Checkpoint>,
    ) -> Self {
        let key_groups = KeyGroupRange::for_subtask(subtask, parallelism, max_parallelism);
        let restored = restore.and_then(|c| c.state_for(id, key_groups, subtask, parallelism));
        OperatorInit {
            id,
            name,
            subtask,
            parallelism,
            max_parallelism,
            key_groups,
            restored,
            grouper: None,
        }
    }

    /// How this keyed operator maps keys of type `K` to key groups (`None`: by hash).
    pub fn grouper<K: 'static>(&self) -> Option<crate::state::key_group::KeyGroupFn<K>> {
        self.grouper
            .as_ref()
            .and_then(|g| g.downcast_ref::<crate::state::key_group::KeyGroupFn<K>>())
            .cloned()
    }
}

/// Where an operator emits its results; also gives access to time and the error policy.
pub struct Output<'a, T> {
    pub(crate) buf: &'a mut Vec<Record<T>>,
    pub(crate) ctx: &'a mut TaskCtx,
    pub(crate) name: &'a str,
}

impl<T> Output<'_, T> {
    /// Emits one record.
    #[inline]
    pub fn emit(&mut self, record: Record<T>) {
        self.buf.push(record);
    }

    /// Emits a value with a timestamp.
    #[inline]
    pub fn collect(&mut self, value: T, timestamp: i64) {
        self.buf.push(Record::new(value, timestamp));
    }

    /// Emits a whole batch (without copying when nothing was emitted before).
    #[inline]
    pub fn emit_batch(&mut self, batch: Vec<Record<T>>) {
        if self.buf.is_empty() {
            *self.buf = batch;
        } else {
            self.buf.extend(batch);
        }
    }

    /// Reports that the user function failed a record; applies the pipeline's
    /// [`crate::ErrorPolicy`] (returns the job-failing error under `Fail`).
    pub fn fail(&mut self, position: Position, timestamp: i64, error: impl Display) -> Result<()> {
        self.ctx
            .record_failed(self.name, position, timestamp, error.to_string())
    }

    /// The task's current event-time watermark.
    pub fn current_watermark(&self) -> i64 {
        self.ctx.watermark
    }

    /// Current processing time (ms).
    pub fn processing_time(&self) -> i64 {
        self.ctx.clock.now_ms()
    }

    /// Asks for [`Operator::on_processing_time`] once processing time reaches `at`.
    pub fn request_processing_timer(&mut self, at: i64) {
        self.ctx.request_processing_timer(at)
    }

    /// This task's subtask index.
    pub fn subtask(&self) -> usize {
        self.ctx.subtask
    }

    /// Sends a record to a side output.
    pub fn emit_side<S: Send + 'static>(
        &mut self,
        side: &mut SideOutput<S>,
        record: Record<S>,
    ) -> Result<()> {
        side.emit(record, self.ctx)
    }
}

/// The lifecycle every operator implements; every hook but `process_batch` has a
/// no-op default.
///
/// ```
/// use engine::{Operator, Output, Record, Result};
/// /// Doubles every value.
/// struct Double;
/// impl Operator<u64> for Double {
///     type Out = u64;
///     fn process_batch(&mut self, batch: Vec<Record<u64>>, out: &mut Output<'_, u64>) -> Result<()> {
///         out.emit_batch(batch.into_iter().map(|r| { let v = r.value * 2; r.with_value(v) }).collect());
///         Ok(())
///     }
/// }
/// ```
pub trait Operator<In>: Send + 'static {
    /// Output value type.
    type Out: Send + 'static;
    /// Called once before any record; restore state from `init.restored` here.
    fn open(&mut self, _init: &OperatorInit) -> Result<()> {
        Ok(())
    }
    /// The first processing-time timer the state restored by
    /// [`Operator::open`] needs, asked for before any record arrives (so a
    /// restored timer fires even if no input follows).
    fn restored_processing_timer(&self) -> Option<i64> {
        None
    }
    /// Processes a batch of records.
    fn process_batch(
        &mut self,
        batch: Vec<Record<In>>,
        out: &mut Output<'_, Self::Out>,
    ) -> Result<()>;
    /// The event-time watermark advanced to `watermark` (fire timers/windows here).
    fn on_watermark(&mut self, _watermark: i64, _out: &mut Output<'_, Self::Out>) -> Result<()> {
        Ok(())
    }
    /// Whether the last [`Operator::on_watermark`] stopped early (it fires a bounded
    /// number of results per call); the runtime sends them on and calls it again
    /// with the same watermark before forwarding it.
    fn watermark_pending(&self) -> bool {
        false
    }
    /// A processing-time timer requested with [`Output::request_processing_timer`] is due.
    fn on_processing_time(&mut self, _now: i64, _out: &mut Output<'_, Self::Out>) -> Result<()> {
        Ok(())
    }
    /// Checkpoint barrier: write this subtask's state (snapshot and pre-commit).
    fn snapshot(&mut self, _barrier: &CheckpointBarrier) -> Result<OperatorState> {
        Ok(OperatorState::default())
    }
    /// Drops the state of `key_groups` (and its timers), right after the snapshot
    /// of a checkpoint that gives them up ([`CheckpointBarrier::release`]): another
    /// process restores them from that snapshot. Returns whether it did; the
    /// default keeps everything and returns false. When the snapshot held any of
    /// those key groups, that fails the checkpoint ([`crate::ErrorClass::Rollback`]):
    /// a Kafka job then restarts without them.
    fn release(&mut self, _key_groups: &BTreeSet<u16>) -> Result<bool> {
        Ok(false)
    }
    /// Whether this operator can take on key groups while the job runs: it keeps
    /// no keyed state, or loads it in [`Operator::adopt`]. A job with an
    /// operator that says no refuses [`crate::JobController::adopt`] before any
    /// barrier (a Kafka job then restarts with the new partitions). The default
    /// says no.
    fn can_adopt(&self) -> bool {
        false
    }
    /// Loads the keyed state of key groups this subtask takes on while the job
    /// runs ([`CheckpointBarrier::adopt`]), right after the snapshot of that
    /// checkpoint: `state` holds only those key groups, in the form
    /// [`Operator::snapshot`] writes. Returns whether it did; the default
    /// returns false, which fails that checkpoint (a rollback).
    fn adopt(&mut self, _state: &OperatorState) -> Result<bool> {
        Ok(false)
    }
    /// Whether this operator can take on key groups in a job with event time.
    /// An adopted key group's partition may be behind the job's watermark: its
    /// source leaves it out of the watermark until it catches up, and then
    /// calls [`Operator::on_key_group_caught_up`]. Until then the operator must
    /// judge that key group's records by its own progress, not the watermark
    /// (a pane window holds its windows back). Operators that ignore event
    /// time say yes; the default says no.
    fn adopts_under_event_time(&self) -> bool {
        false
    }
    /// This subtask took on `key_groups` (all of them, with state or not),
    /// right after [`Operator::adopt`] loaded the state of those that have
    /// some. Under event time each lags until
    /// [`Operator::on_key_group_caught_up`].
    fn key_groups_adopted(&mut self, _key_groups: &BTreeSet<u16>) -> Result<()> {
        Ok(())
    }
    /// The partition of adopted key group `key_group` caught up with the
    /// watermark (or went idle, or ended); its records are judged by the
    /// watermark again.
    fn on_key_group_caught_up(
        &mut self,
        _key_group: u16,
        _out: &mut Output<'_, Self::Out>,
    ) -> Result<()> {
        Ok(())
    }
    /// The checkpoint completed everywhere (commit side effects here).
    fn notify_checkpoint_complete(&mut self, _id: CheckpointId) -> Result<()> {
        Ok(())
    }
    /// The input ended (bounded input): emit everything still held.
    fn end_of_input(&mut self, _out: &mut Output<'_, Self::Out>) -> Result<()> {
        Ok(())
    }
    /// Called once at the end.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
    /// Side outputs owned by this operator, so the runtime forwards watermarks,
    /// barriers and end-of-input to them.
    fn side_outputs(&mut self) -> Vec<&mut dyn SideControl> {
        Vec::new()
    }
}

/// Control-event forwarding of a side output (type-erased).
pub trait SideControl: Send {
    /// Forwards a watermark.
    #[doc(hidden)]
    fn forward_watermark(&mut self, wm: i64, ctx: &mut TaskCtx) -> Result<()>;
    /// Forwards an idleness change.
    #[doc(hidden)]
    fn forward_idle(&mut self, idle: bool, ctx: &mut TaskCtx) -> Result<()>;
    /// Forwards a barrier.
    #[doc(hidden)]
    fn forward_barrier(&mut self, b: CheckpointBarrier, ctx: &mut TaskCtx) -> Result<()>;
    /// Forwards end of input.
    #[doc(hidden)]
    fn forward_end(&mut self, ctx: &mut TaskCtx) -> Result<()>;
    /// Sends buffered records.
    #[doc(hidden)]
    fn flush(&mut self, ctx: &mut TaskCtx) -> Result<()>;
}

/// A secondary output of an operator (late data, user side outputs). Records sent to
/// a side output nobody consumes are dropped.
pub struct SideOutput<S> {
    pub(crate) emitter: Option<ChannelEmitter<S>>,
}

impl<S: Send + 'static> SideOutput<S> {
    /// A side output that drops everything.
    pub fn disconnected() -> Self {
        SideOutput { emitter: None }
    }
    pub(crate) fn emit(&mut self, record: Record<S>, ctx: &mut TaskCtx) -> Result<()> {
        match &mut self.emitter {
            Some(e) => e.push(record, ctx),
            None => Ok(()),
        }
    }
}

impl<S: Send + 'static> SideControl for SideOutput<S> {
    fn forward_watermark(&mut self, wm: i64, ctx: &mut TaskCtx) -> Result<()> {
        self.emitter
            .as_mut()
            .map_or(Ok(()), |e| e.on_watermark(wm, ctx).map(|_| ()))
    }
    fn forward_idle(&mut self, idle: bool, ctx: &mut TaskCtx) -> Result<()> {
        self.emitter
            .as_mut()
            .map_or(Ok(()), |e| e.on_idle(idle, ctx))
    }
    fn forward_barrier(&mut self, b: CheckpointBarrier, ctx: &mut TaskCtx) -> Result<()> {
        self.emitter
            .as_mut()
            .map_or(Ok(()), |e| e.on_barrier(b, ctx))
    }
    fn forward_end(&mut self, ctx: &mut TaskCtx) -> Result<()> {
        self.emitter
            .as_mut()
            .map_or(Ok(()), |e| e.end_of_input(ctx))
    }
    fn flush(&mut self, ctx: &mut TaskCtx) -> Result<()> {
        self.emitter.as_mut().map_or(Ok(()), |e| e.flush(ctx))
    }
}
