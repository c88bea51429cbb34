//! The chain's last node when the next stage runs in other tasks: partitions records
//! (forward, round-robin or by key group), batches them per target and sends them
//! over bounded channels. Control events are broadcast to every target after the
//! buffered data, so no record overtakes a watermark or barrier.

use std::sync::Arc;

use crate::checkpoint::{CheckpointBarrier, CheckpointId};
use crate::error::Result;
use crate::record::Record;
use crate::runtime::channel::{Message, Outlet, Sender};
use crate::runtime::context::TaskCtx;
use crate::runtime::node::Node;
use crate::state::key_group::{KeyGroup, key_group_for_hash, subtask_for_key_group};

/// Stable hash of a record's key.
pub(crate) type KeyHashFn<T> = Arc<dyn Fn(&T) -> u64 + Send + Sync>;

/// How records are spread over the downstream subtasks.
pub(crate) enum Partitioner<T> {
    /// One target.
    Forward,
    /// Whole batches to targets in turn.
    RoundRobin { next: usize },
    /// By key group of the key hash.
    Hash {
        hash: KeyHashFn<T>,
        max_parallelism: u16,
    },
    /// By the key group of the key's source partition (which must be the
    /// partition the record came from).
    SourcePartition {
        group: Arc<dyn Fn(&T) -> KeyGroup + Send + Sync>,
        max_parallelism: u16,
    },
}

impl<T> Clone for Partitioner<T> {
    fn clone(&self) -> Self {
        match self {
            Partitioner::Forward => Partitioner::Forward,
            Partitioner::RoundRobin { next } => Partitioner::RoundRobin { next: *next },
            Partitioner::Hash {
                hash,
                max_parallelism,
            } => Partitioner::Hash {
                hash: hash.clone(),
                max_parallelism: *max_parallelism,
            },
            Partitioner::SourcePartition {
                group,
                max_parallelism,
            } => Partitioner::SourcePartition {
                group: group.clone(),
                max_parallelism: *max_parallelism,
            },
        }
    }
}

pub(crate) struct ChannelEmitter<T> {
    outlets: Vec<Outlet<T>>,
    bufs: Vec<Vec<Record<T>>>,
    part: Partitioner<T>,
    batch_size: usize,
    ended: bool,
}

impl<T: Send + 'static> ChannelEmitter<T> {
    pub(crate) fn new(senders: Vec<Sender<T>>, part: Partitioner<T>, batch_size: usize) -> Self {
        let n = senders.len();
        ChannelEmitter {
            outlets: senders.into_iter().map(Outlet::new).collect(),
            bufs: (0..n).map(|_| Vec::new()).collect(),
            part,
            batch_size: batch_size.max(1),
            ended: false,
        }
    }

    /// Drops records instead of failing when a receiver is gone (side outputs).
    pub(crate) fn lenient(mut self) -> Self {
        for o in &mut self.outlets {
            o.lenient = true;
        }
        self
    }

    pub(crate) fn push(&mut self, r: Record<T>, ctx: &mut TaskCtx) -> Result<()> {
        let t = match &self.part {
            Partitioner::SourcePartition {
                group,
                max_parallelism,
            } => {
                let max = *max_parallelism;
                let kg = group(&r.value);
                let failure = if kg.0 >= max {
                    Some(format!(
                        "key_by_source_partition: partition {} is not below max_parallelism {max} (raise PipelineConfig::max_parallelism to the partition count)",
                        kg.0
                    ))
                } else {
                    match r.position.split() {
                        Some(split) if split != kg.0 => Some(format!(
                            "key_by_source_partition: the key belongs to partition {} but the record came from partition {split}: key by the record's Kafka key (written with the default partitioner), or use key_by",
                            kg.0
                        )),
                        _ => None,
                    }
                };
                if let Some(message) = failure {
                    return ctx.record_failed(
                        "key_by_source_partition",
                        r.position,
                        r.timestamp,
                        message,
                    );
                }
                subtask_for_key_group(kg, self.outlets.len(), max)
            }
            _ => self.target(&r.value),
        };
        self.bufs[t].push(r);
        if self.bufs[t].len() >= self.batch_size {
            self.send_buf(t, ctx)?;
        }
        Ok(())
    }

    #[inline]
    fn target(&mut self, v: &T) -> usize {
        let n = self.outlets.len();
        match &mut self.part {
            Partitioner::Forward => 0,
            Partitioner::RoundRobin { next } => {
                let t = *next % n;
                *next = (t + 1) % n;
                t
            }
            Partitioner::Hash {
                hash,
                max_parallelism,
            } => {
                let kg: KeyGroup = key_group_for_hash(hash(v), *max_parallelism);
                subtask_for_key_group(kg, n, *max_parallelism)
            }
            // Decided per record in `push`.
            Partitioner::SourcePartition { .. } => 0,
        }
    }

    fn send_buf(&mut self, t: usize, ctx: &mut TaskCtx) -> Result<()> {
        if self.bufs[t].is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.bufs[t], Vec::with_capacity(self.batch_size));
        self.outlets[t].send(Message::Data(batch), ctx)
    }

    fn broadcast(&mut self, make: impl Fn() -> Message<T>, ctx: &mut TaskCtx) -> Result<()> {
        self.flush(ctx)?;
        for o in &mut self.outlets {
            o.send(make(), ctx)?;
        }
        Ok(())
    }
}

impl<T: Send + 'static> Node<T> for ChannelEmitter<T> {
    fn open(&mut self, _ctx: &mut TaskCtx) -> Result<()> {
        Ok(())
    }

    #[inline]
    fn process_batch(&mut self, batch: Vec<Record<T>>, ctx: &mut TaskCtx) -> Result<()> {
        if self.outlets.is_empty() {
            return Ok(());
        }
        match &mut self.part {
            Partitioner::Forward | Partitioner::RoundRobin { .. } => {
                let t = self.target_for_batch();
                if self.bufs[t].is_empty() && batch.len() * 2 >= self.batch_size {
                    // Big enough: hand the batch over as it is, no copy.
                    return self.outlets[t].send(Message::Data(batch), ctx);
                }
                self.bufs[t].extend(batch);
                if self.bufs[t].len() >= self.batch_size {
                    self.send_buf(t, ctx)?;
                }
                Ok(())
            }
            Partitioner::Hash { .. } | Partitioner::SourcePartition { .. } => {
                for r in batch {
                    self.push(r, ctx)?;
                }
                Ok(())
            }
        }
    }

    fn on_watermark(&mut self, wm: i64, ctx: &mut TaskCtx) -> Result<bool> {
        self.broadcast(|| Message::Watermark(wm), ctx)?;
        Ok(true)
    }

    fn on_idle(&mut self, idle: bool, ctx: &mut TaskCtx) -> Result<()> {
        self.broadcast(|| Message::Idle(idle), ctx)
    }

    fn on_caught_up(&mut self, key_group: u16, ctx: &mut TaskCtx) -> Result<()> {
        self.broadcast(|| Message::CaughtUp(key_group), ctx)
    }

    fn on_processing_time(&mut self, _now: i64, _ctx: &mut TaskCtx) -> Result<()> {
        Ok(())
    }

    fn on_barrier(&mut self, barrier: CheckpointBarrier, ctx: &mut TaskCtx) -> Result<()> {
        self.broadcast(|| Message::Barrier(barrier.clone()), ctx)
    }

    fn on_checkpoint_complete(&mut self, _id: CheckpointId, _ctx: &mut TaskCtx) -> Result<()> {
        Ok(())
    }

    fn flush(&mut self, ctx: &mut TaskCtx) -> Result<()> {
        for t in 0..self.bufs.len() {
            self.send_buf(t, ctx)?;
        }
        Ok(())
    }

    fn end_of_input(&mut self, ctx: &mut TaskCtx) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        self.broadcast(|| Message::End, ctx)
    }

    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<T> ChannelEmitter<T> {
    #[inline]
    fn target_for_batch(&mut self) -> usize {
        let n = self.outlets.len().max(1);
        match &mut self.part {
            Partitioner::RoundRobin { next } => {
                let t = *next % n;
                *next = (t + 1) % n;
                t
            }
            _ => 0,
        }
    }
}

/// Copies every batch and control event to several emitters (stream fan-out).
pub(crate) struct Tee<T> {
    pub(crate) outputs: Vec<ChannelEmitter<T>>,
}

impl<T: Clone + Send + 'static> Node<T> for Tee<T> {
    fn open(&mut self, _ctx: &mut TaskCtx) -> Result<()> {
        Ok(())
    }

    fn process_batch(&mut self, batch: Vec<Record<T>>, ctx: &mut TaskCtx) -> Result<()> {
        let n = self.outputs.len();
        let mut batch = Some(batch);
        for (i, o) in self.outputs.iter_mut().enumerate() {
            let b = if i + 1 == n {
                batch.take().unwrap_or_default()
            } else {
                batch.clone().unwrap_or_default()
            };
            o.process_batch(b, ctx)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, wm: i64, ctx: &mut TaskCtx) -> Result<bool> {
        for o in &mut self.outputs {
            o.on_watermark(wm, ctx)?;
        }
        Ok(true)
    }

    fn on_idle(&mut self, idle: bool, ctx: &mut TaskCtx) -> Result<()> {
        self.outputs
            .iter_mut()
            .try_for_each(|o| o.on_idle(idle, ctx))
    }

    fn on_caught_up(&mut self, key_group: u16, ctx: &mut TaskCtx) -> Result<()> {
        self.outputs
            .iter_mut()
            .try_for_each(|o| o.on_caught_up(key_group, ctx))
    }

    fn on_processing_time(&mut self, _now: i64, _ctx: &mut TaskCtx) -> Result<()> {
        Ok(())
    }

    fn on_barrier(&mut self, barrier: CheckpointBarrier, ctx: &mut TaskCtx) -> Result<()> {
        self.outputs
            .iter_mut()
            .try_for_each(|o| o.on_barrier(barrier.clone(), ctx))
    }

    fn on_checkpoint_complete(&mut self, _id: CheckpointId, _ctx: &mut TaskCtx) -> Result<()> {
        Ok(())
    }

    fn flush(&mut self, ctx: &mut TaskCtx) -> Result<()> {
        self.outputs.iter_mut().try_for_each(|o| o.flush(ctx))
    }

    fn end_of_input(&mut self, ctx: &mut TaskCtx) -> Result<()> {
        self.outputs
            .iter_mut()
            .try_for_each(|o| o.end_of_input(ctx))
    }

    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
