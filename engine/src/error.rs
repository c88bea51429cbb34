//! The crate's one error type.
//!
//! Every failure the runtime reports is an [`EngineError`]; a failed job names the
//! operator, its subtask and, for a record-level failure, the record's source position.

use std::sync::Arc;

use crate::checkpoint::CheckpointId;
use crate::record::Position;

/// Result alias used across the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// How a job gets past an error: what [`EngineError::class`] answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient (a lost connection, a timeout): the same operation may succeed
    /// when tried again; nothing was lost.
    Retriable,
    /// The work since the last completed checkpoint is lost or cannot complete (an
    /// aborted or fenced transaction, a failed checkpoint write): roll the job back
    /// to its last completed checkpoint and run again.
    Rollback,
    /// Retrying cannot help (bad configuration, a bug, a record the policy says must
    /// stop the job, authorization): fail the job.
    Fatal,
}

fn cause_suffix(cause: &Option<Box<EngineError>>) -> String {
    cause
        .as_ref()
        .map_or_else(String::new, |c| format!(": {c}"))
}

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
    #[error("source '{source_name}' split {split} failed: {cause}")]
    Source {
        /// Name of the source.
        source_name: String,
        /// Split index within the source.
        split: usize,
        /// What went wrong.
        #[source]
        cause: Box<EngineError>,
    },
    /// A sink failed to write, pre-commit or commit.
    #[error("sink '{sink}' (subtask {subtask}) failed: {cause}")]
    Sink {
        /// Name of the sink.
        sink: String,
        /// Parallel subtask index.
        subtask: usize,
        /// What went wrong.
        #[source]
        cause: Box<EngineError>,
    },
    /// An external system (a broker, a file, a database) failed; the error keeps
    /// its cause and says how the job can get past it.
    #[error("{context}: {source}")]
    External {
        /// What was being done.
        context: String,
        /// The external system's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
        /// Whether retrying, rolling back or failing is the way out.
        class: ErrorClass,
    },
    /// A component was asked for something it cannot do (e.g. rewind a source that
    /// only reads forward).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// State bytes could not be decoded.
    #[error("state codec: {0}")]
    Codec(String),
    /// A checkpoint could not be taken, stored or restored.
    #[error("checkpoint {checkpoint}: {message}{}", cause_suffix(cause))]
    Checkpoint {
        /// The checkpoint concerned.
        checkpoint: CheckpointId,
        /// What went wrong.
        message: String,
        /// The failure behind it (e.g. the durable write's error).
        #[source]
        cause: Option<Box<EngineError>>,
    },
    /// The pipeline definition is invalid (no sink, zero parallelism, ...).
    #[error("invalid pipeline: {0}")]
    InvalidPipeline(String),
    /// A channel between tasks closed while a task still needed it (a peer task ended early).
    #[error("channel closed: {0}")]
    ChannelClosed(String),
    /// A task panicked (a bug in an operator, source or sink).
    #[error("task {task} panicked: {message}")]
    Panicked {
        /// The task's name.
        task: String,
        /// The panic's message.
        message: String,
    },
    /// The job was cancelled.
    #[error("job cancelled")]
    Cancelled,
}

impl EngineError {
    /// An error from an external system, keeping it as the cause.
    pub fn external(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
        class: ErrorClass,
    ) -> EngineError {
        EngineError::External {
            context: context.into(),
            source: Arc::new(source),
            class,
        }
    }

    /// A checkpoint failure with its cause.
    pub fn checkpoint(
        checkpoint: CheckpointId,
        message: impl Into<String>,
        cause: Option<EngineError>,
    ) -> EngineError {
        EngineError::Checkpoint {
            checkpoint,
            message: message.into(),
            cause: cause.map(Box::new),
        }
    }

    /// How the job gets past this error. Source and sink failures take their
    /// cause's class; a failed checkpoint, or a channel closed because a peer task
    /// failed, rolls back; everything else is fatal.
    pub fn class(&self) -> ErrorClass {
        match self {
            EngineError::External { class, .. } => *class,
            EngineError::Source { cause, .. } | EngineError::Sink { cause, .. } => cause.class(),
            EngineError::Checkpoint { cause, .. } => match cause.as_deref().map(EngineError::class)
            {
                Some(ErrorClass::Fatal) => ErrorClass::Fatal,
                _ => ErrorClass::Rollback,
            },
            EngineError::ChannelClosed(_) => ErrorClass::Rollback,
            _ => ErrorClass::Fatal,
        }
    }

    /// Whether trying the same operation again may succeed.
    pub fn is_retriable(&self) -> bool {
        self.class() == ErrorClass::Retriable
    }
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
