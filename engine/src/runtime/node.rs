//! A fused chain: each [`ChainNode`] runs one operator and hands its output batch to
//! the next node with a plain call; the last node is a channel emitter or a sink
//! hand-off.

use std::sync::Arc;

use metrics::Counter;

use crate::checkpoint::{Adoption, CheckpointBarrier, CheckpointId};
use crate::error::{EngineError, Result};
use crate::operators::{Operator, OperatorInit, Output};
use crate::record::Record;
use crate::runtime::context::TaskCtx;
use crate::runtime::status::SubtaskStats;

/// One element of a fused chain, type-erased over the operator.
pub(crate) trait Node<T>: Send {
    fn open(&mut self, ctx: &mut TaskCtx) -> Result<()>;
    fn process_batch(&mut self, batch: Vec<Record<T>>, ctx: &mut TaskCtx) -> Result<()>;
    /// Returns `false` while some operator still has watermark work pending (it fired
    /// a bounded amount of windows); the task then sends what was produced and calls
    /// again with the same watermark, so a large jump never buffers every result.
    fn on_watermark(&mut self, wm: i64, ctx: &mut TaskCtx) -> Result<bool>;
    fn on_idle(&mut self, idle: bool, ctx: &mut TaskCtx) -> Result<()>;
    fn on_caught_up(&mut self, key_group: u16, ctx: &mut TaskCtx) -> Result<()>;
    fn on_processing_time(&mut self, now: i64, ctx: &mut TaskCtx) -> Result<()>;
    fn on_barrier(&mut self, barrier: CheckpointBarrier, ctx: &mut TaskCtx) -> Result<()>;
    fn on_checkpoint_complete(&mut self, id: CheckpointId, ctx: &mut TaskCtx) -> Result<()>;
    fn flush(&mut self, ctx: &mut TaskCtx) -> Result<()>;
    fn end_of_input(&mut self, ctx: &mut TaskCtx) -> Result<()>;
    fn close(&mut self) -> Result<()>;
}

pub(crate) type BoxNode<T> = Box<dyn Node<T>>;

/// Runs operator `O` and forwards its output and all control events to `next`.
pub(crate) struct ChainNode<In, O: Operator<In>> {
    op: O,
    init: OperatorInit,
    next: BoxNode<O::Out>,
    buf: Vec<Record<O::Out>>,
    records_in: Counter,
    records_out: Counter,
    stats: Arc<SubtaskStats>,
    /// The last watermark this node's operator finished (see `Node::on_watermark`).
    watermark_done: Option<i64>,
    _in: std::marker::PhantomData<fn(In)>,
}

impl<In: Send + 'static, O: Operator<In>> ChainNode<In, O> {
    pub(crate) fn new(
        op: O,
        init: OperatorInit,
        next: BoxNode<O::Out>,
        stats: Arc<SubtaskStats>,
    ) -> Self {
        let labels = [
            ("operator", init.name.to_string()),
            ("subtask", init.subtask.to_string()),
        ];
        ChainNode {
            records_in: metrics::counter!("strom_records_in_total", &labels),
            records_out: metrics::counter!("strom_records_out_total", &labels),
            op,
            init,
            next,
            stats,
            buf: Vec::new(),
            watermark_done: None,
            _in: std::marker::PhantomData,
        }
    }

    fn name(&self) -> Arc<str> {
        self.init.name.clone()
    }

    /// Calls the operator with an output into this node's buffer, then sends
    /// what it emitted down the chain.
    #[inline]
    fn call(
        &mut self,
        ctx: &mut TaskCtx,
        f: impl FnOnce(&mut O, &mut Output<'_, O::Out>) -> Result<()>,
    ) -> Result<()> {
        let name = self.name();
        let mut out = Output {
            buf: &mut self.buf,
            ctx,
            name: &name,
        };
        f(&mut self.op, &mut out)?;
        self.push_out(ctx)
    }

    #[inline]
    fn push_out(&mut self, ctx: &mut TaskCtx) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.buf);
        self.records_out.increment(batch.len() as u64);
        self.stats.add_out(batch.len() as u64);
        self.next.process_batch(batch, ctx)
    }

    fn sides(
        &mut self,
        mut f: impl FnMut(&mut dyn crate::operators::SideControl) -> Result<()>,
    ) -> Result<()> {
        for s in self.op.side_outputs() {
            f(s)?;
        }
        Ok(())
    }
}

impl<In: Send + 'static, O: Operator<In>> Node<In> for ChainNode<In, O> {
    fn open(&mut self, ctx: &mut TaskCtx) -> Result<()> {
        self.op.open(&self.init)?;
        if let Some(t) = self.op.restored_processing_timer() {
            ctx.request_processing_timer(t);
        }
        self.init.restored = None;
        self.next.open(ctx)
    }

    #[inline]
    fn process_batch(&mut self, batch: Vec<Record<In>>, ctx: &mut TaskCtx) -> Result<()> {
        self.records_in.increment(batch.len() as u64);
        self.stats.add_in(batch.len() as u64);
        self.call(ctx, |op, out| op.process_batch(batch, out))
    }

    fn on_watermark(&mut self, wm: i64, ctx: &mut TaskCtx) -> Result<bool> {
        if self.watermark_done != Some(wm) {
            self.call(ctx, |op, out| op.on_watermark(wm, out))?;
            if self.op.watermark_pending() {
                return Ok(false);
            }
            self.sides(|s| s.forward_watermark(wm, ctx))?;
            self.watermark_done = Some(wm);
        }
        self.next.on_watermark(wm, ctx)
    }

    fn on_idle(&mut self, idle: bool, ctx: &mut TaskCtx) -> Result<()> {
        self.sides(|s| s.forward_idle(idle, ctx))?;
        self.next.on_idle(idle, ctx)
    }

    fn on_caught_up(&mut self, key_group: u16, ctx: &mut TaskCtx) -> Result<()> {
        self.call(ctx, |op, out| op.on_key_group_caught_up(key_group, out))?;
        self.next.on_caught_up(key_group, ctx)
    }

    fn on_processing_time(&mut self, now: i64, ctx: &mut TaskCtx) -> Result<()> {
        self.call(ctx, |op, out| op.on_processing_time(now, out))?;
        self.next.on_processing_time(now, ctx)
    }

    fn on_barrier(&mut self, barrier: CheckpointBarrier, ctx: &mut TaskCtx) -> Result<()> {
        self.push_out(ctx)?;
        let state = self
            .op
            .snapshot(&barrier)
            .map_err(|e| wrap(&self.init, e))?;
        if let Some(groups) = &barrier.release {
            let dropped = self.op.release(groups).map_err(|e| wrap(&self.init, e))?;
            if !dropped && state.key_groups.keys().any(|g| groups.contains(g)) {
                // A rollback: the job restarts without those key groups instead.
                return Err(EngineError::checkpoint(
                    barrier.id,
                    format!(
                        "operator '{}' (subtask {}) keeps keyed state of the key groups to release but cannot release them",
                        self.init.name, self.init.subtask
                    ),
                    None,
                ));
            }
        }
        if !state.is_empty() {
            ctx.snapshot.push((self.init.id, state));
        }
        if let Some(adoption) = &barrier.adopt {
            self.adopt(adoption, barrier.id, ctx)?;
        }
        self.sides(|s| s.forward_barrier(barrier.clone(), ctx))?;
        self.next.on_barrier(barrier, ctx)
    }

    fn on_checkpoint_complete(&mut self, id: CheckpointId, ctx: &mut TaskCtx) -> Result<()> {
        self.op.notify_checkpoint_complete(id)?;
        self.next.on_checkpoint_complete(id, ctx)
    }

    fn flush(&mut self, ctx: &mut TaskCtx) -> Result<()> {
        self.push_out(ctx)?;
        self.sides(|s| s.flush(ctx))?;
        self.next.flush(ctx)
    }

    fn end_of_input(&mut self, ctx: &mut TaskCtx) -> Result<()> {
        self.call(ctx, |op, out| op.end_of_input(out))?;
        self.sides(|s| s.forward_end(ctx))?;
        self.next.end_of_input(ctx)
    }

    fn close(&mut self) -> Result<()> {
        self.op.close()?;
        self.next.close()
    }
}

impl<In: Send + 'static, O: Operator<In>> ChainNode<In, O> {
    /// Loads this subtask's part of an adoption's state into the operator, after
    /// the snapshot of checkpoint `id`; an operator that cannot fails that
    /// checkpoint (a rollback: the job restarts with the key groups instead).
    fn adopt(&mut self, adoption: &Adoption, id: CheckpointId, ctx: &mut TaskCtx) -> Result<()> {
        let range = self.init.key_groups;
        let mine: std::collections::BTreeSet<u16> = adoption
            .key_groups
            .iter()
            .copied()
            .filter(|g| range.contains(crate::KeyGroup(*g)))
            .collect();
        let state = adoption
            .state
            .state_for(
                self.init.id,
                range,
                self.init.subtask,
                self.init.parallelism,
            )
            .filter(|s| !s.key_groups.is_empty());
        if let Some(state) = state {
            let loaded = self.op.adopt(&state).map_err(|e| wrap(&self.init, e))?;
            if !loaded {
                return Err(EngineError::checkpoint(
                    id,
                    format!(
                        "operator '{}' (subtask {}) cannot take on the keyed state of adopted key groups",
                        self.init.name, self.init.subtask
                    ),
                    None,
                ));
            }
            if let Some(t) = self.op.restored_processing_timer() {
                ctx.request_processing_timer(t);
            }
        }
        if !mine.is_empty() {
            self.op
                .key_groups_adopted(&mine)
                .map_err(|e| wrap(&self.init, e))?;
        }
        Ok(())
    }
}

fn wrap(init: &OperatorInit, e: EngineError) -> EngineError {
    match e {
        EngineError::Codec(m) => EngineError::Operator {
            operator: init.name.to_string(),
            subtask: init.subtask,
            message: m,
        },
        other => other,
    }
}
