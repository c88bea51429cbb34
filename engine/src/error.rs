//! The crate's one error type.
//!
//! Every failure the runtime reports is an [`EngineError`]; a failed job names the
//! operator, its subtask and, for a record-level failure, the record's source position.

use crate::checkpoint::CheckpointId;
use crate::record::Position;

/// Result alias used across the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Everything that can go wrong in a pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A user function failed a record and the pipeline's policy is [`crate::ErrorPolicy::Fail`].
    #[error(
        "operator '{operator}' (subtask {subtask}) failed on the record at {position} (event time {timestamp}): {message}"
    )]
    RecordFailed {
        /// Name of the operator whose function failed.
        operator: String,
        /// Parallel subtask index of that operator.
        subtask: usize,
        /// Where the record came from (source split and offset), if known.
        position: Position,
        /// The record's event timestamp in milliseconds (`i64::MIN` if none).
        timestamp: i64,
        /// The user function's error message.
        message: String,
    },
    /// An operator failed outside a single record (open, snapshot, close, ...).
    #[error("operator '{operator}' (subtask {subtask}) failed: {message}")]
    Operator {
        /// Name of the operator.
        operator: String,
        /// Parallel subtask index.
        subtask: usize,
        /// What went wrong.
        message: String,
    },
    /// A source split failed to produce records or to restore its position.
    #[error("source '{source_name}' split {split} failed: {message}")]
    Source {
        /// Name of the source.
        source_name: String,
        /// Split index within the source.
        split: usize,
        /// What went wrong.
        message: String,
    },
    /// A sink failed to write, pre-commit or commit.
    #[error("sink '{sink}' (subtask {subtask}) failed: {message}")]
    Sink {
        /// Name of the sink.
        sink: String,
        /// Parallel subtask index.
        subtask: usize,
        /// What went wrong.
        message: String,
    },
    /// State bytes could not be decoded.
    #[error("state codec: {0}")]
    Codec(String),
    /// A checkpoint could not be taken, stored or restored.
    #[error("checkpoint {checkpoint}: {message}")]
    Checkpoint {
        /// The checkpoint concerned.
        checkpoint: CheckpointId,
        /// What went wrong.
        message: String,
    },
    /// The pipeline definition is invalid (no sink, zero parallelism, ...).
    #[error("invalid pipeline: {0}")]
    InvalidPipeline(String),
    /// A channel between tasks closed while a task still needed it (a peer task ended early).
    #[error("channel closed: {0}")]
    ChannelClosed(String),
    /// The job was cancelled.
    #[error("job cancelled")]
    Cancelled,
}

/// What happens when a user function fails a record (set per pipeline with
/// [`crate::PipelineConfig::error_policy`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Fail the job with [`EngineError::RecordFailed`] naming the operator and position.
    #[default]
    Fail,
    /// Drop the record and count it (`strom_records_failed_total`).
    Drop,
    /// Count it and send a [`DeadLetter`] to [`crate::Pipeline::dead_letters`].
    DeadLetter,
}

/// A record a user function failed, as routed to the dead-letter stream.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// Operator whose function failed.
    pub operator: String,
    /// Its subtask.
    pub subtask: usize,
    /// Source position of the record.
    pub position: Position,
    /// Event timestamp of the record.
    pub timestamp: i64,
    /// The function's error message.
    pub error: String,
}
