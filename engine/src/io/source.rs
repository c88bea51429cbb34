//! The source traits. A source is cut into splits (a Kafka source: one split per
//! partition); splits are spread over the source's parallel tasks; each split reports
//! its position (offset) into every checkpoint and restores from it.
//!
//! ```text
//! Source::create_splits -> [split 0, split 1, split 2]
//! task 0 polls splits 0 and 2, task 1 polls split 1 (index % parallelism)
//! each split: poll_next -> Records | End ; position() and checkpoint(n) at
//!             barrier n ; checkpoint_complete(n) once n is durable ; restore(pos)
//! ```
//!
//! A split whose position lives outside the engine (a Kafka partition's offset is
//! committed in the checkpoint's transaction) records it in [`SourceSplit::checkpoint`].
//! A split that is one partition of keyed data (Kafka's default partitioner puts a
//! record key in one partition) reports its partition as [`SourceSplit::key_group`],
//! which lets `key_by_source_partition` keep state with the partition.

use std::collections::BTreeSet;
use std::task::{Context, Poll};

use crate::checkpoint::CheckpointId;
use crate::error::Result;
use crate::record::Record;

/// What a split produced.
#[derive(Debug)]
pub enum SplitEvent<T> {
    /// A batch of records. Their `position` holds the offset; the task fills in the
    /// split index. Their `timestamp` is the source's own timestamp (or none).
    Records(Vec<Record<T>>),
    /// The split is exhausted (bounded input).
    End,
}

/// Event time as a split that carries it in its data reports it (see
/// [`SourceSplit::event_time`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitTime {
    /// Not known yet: the split holds the watermark back.
    Unknown,
    /// Every later record of the split is at or after this time (late records
    /// aside).
    Watermark(i64),
    /// Nothing is coming: the split does not hold the watermark back.
    Idle,
}

/// One independently readable part of a source.
pub trait SourceSplit<T>: Send {
    /// Polls for up to `max` records. `Pending` registers the waker, like a future.
    fn poll_next(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<Result<SplitEvent<T>>>;
    /// The offset of the next record this split will produce (stored at barriers).
    fn position(&self) -> u64;
    /// Moves the split to `position` (from a checkpoint) before the first poll.
    fn restore(&mut self, position: u64) -> Result<()>;
    /// Barrier `checkpoint` is being injected right after the records polled so
    /// far: a split that keeps its position elsewhere records it now.
    fn checkpoint(&mut self, _checkpoint: CheckpointId) -> Result<()> {
        Ok(())
    }
    /// Checkpoint `checkpoint` completed (its durable write succeeded).
    fn checkpoint_complete(&mut self, _checkpoint: CheckpointId) {}
    /// The key group records of this split belong to when the data is already
    /// partitioned by key at the source (a Kafka partition number); records then
    /// carry it as their split number.
    fn key_group(&self) -> Option<u16> {
        None
    }
    /// Where this split reports its position, log end, watermark and idleness
    /// (a Kafka partition); the source task sets the watermark and idleness.
    fn status(&self) -> Option<std::sync::Arc<crate::runtime::status::PartitionStatus>> {
        None
    }
    /// Event time the split reads from its data (a repartition topic's
    /// watermark markers), asked after every poll; `None` (the default) leaves
    /// the watermark to the source's [`crate::WatermarkStrategy`]. A split that
    /// reports it may return an empty batch to say only its time moved.
    fn event_time(&self) -> Option<SplitTime> {
        None
    }
    /// Whether the split has handed over all the input there is for now, asked
    /// when it returned `Pending`. The default says yes; a split that can be
    /// pending while more input waits (a Kafka partition whose next fetch is in
    /// flight behind the log end) says whether it reached the end it knows of.
    fn caught_up(&self) -> bool {
        true
    }
}

/// A source of records: creates its splits when the job starts.
pub trait Source<T>: Send + 'static {
    /// Name used in metrics and errors.
    fn name(&self) -> &str {
        "source"
    }
    /// Whether the source ends by itself (a source task without splits then
    /// finishes at once instead of idling, waiting for splits).
    fn is_bounded(&self) -> bool {
        false
    }
    /// Whether the checkpoint keeps the splits' positions (restored with
    /// [`SourceSplit::restore`]); `false` for a source whose positions live
    /// elsewhere (Kafka: the group's committed offsets).
    fn checkpoints_positions(&self) -> bool {
        true
    }
    /// Creates all splits; they are assigned to source subtasks by index.
    fn create_splits(&mut self) -> Result<Vec<Box<dyn SourceSplit<T>>>>;
    /// Creates the splits of `key_groups` that a running job takes on
    /// ([`crate::JobController::adopt`]); each must report its key group. Asked by
    /// every source task for the key groups it reads (`group % parallelism`).
    /// The default has none to give and refuses.
    fn adopt_splits(
        &mut self,
        _key_groups: &BTreeSet<u16>,
    ) -> Result<Vec<Box<dyn SourceSplit<T>>>> {
        Err(crate::EngineError::Unsupported(format!(
            "source '{}' cannot add splits while the job runs",
            self.name()
        )))
    }
}
