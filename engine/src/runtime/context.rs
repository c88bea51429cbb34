//! Per-task context handed through the operator chain: deferred sends, clock,
//! current watermark, processing-time timer requests, the error policy and the
//! snapshot being collected at a barrier.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::checkpoint::{OperatorId, OperatorState, TaskId};
use crate::error::{DeadLetter, EngineError, ErrorPolicy, Result};
use crate::record::{Position, Record};
use crate::runtime::channel::{Message, Outlet};
use crate::runtime::status::{JobStatus, TaskTimer};
use crate::time::clock::Clock;

pub(crate) type SendFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// State shared by all operators of one task.
pub struct TaskCtx {
    pub(crate) task: TaskId,
    pub(crate) name: Arc<str>,
    pub(crate) subtask: usize,
    /// Incremented after every awaited step; see [`Outlet`].
    pub(crate) step: u64,
    deferred: Vec<SendFuture>,
    pub(crate) clock: Clock,
    pub(crate) watermark: i64,
    /// Earliest processing-time timer any operator of the chain asked for.
    pub(crate) processing_timer: Option<i64>,
    pub(crate) policy: ErrorPolicy,
    pub(crate) dead_letters: Option<Outlet<DeadLetter>>,
    pub(crate) snapshot: Vec<(OperatorId, OperatorState)>,
    pub(crate) batch_size: usize,
    /// Busy and backpressured time of the task's operators.
    pub(crate) timer: TaskTimer,
    /// The job's status (dead letters).
    pub(crate) status: Option<JobStatus>,
}

impl TaskCtx {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        task: TaskId,
        name: Arc<str>,
        subtask: usize,
        clock: Clock,
        policy: ErrorPolicy,
        dead_letters: Option<Outlet<DeadLetter>>,
        batch_size: usize,
    ) -> Self {
        TaskCtx {
            task,
            name,
            subtask,
            step: 0,
            deferred: Vec::new(),
            clock,
            watermark: crate::record::NO_TIMESTAMP,
            processing_timer: None,
            policy,
            dead_letters,
            snapshot: Vec::new(),
            batch_size: batch_size.max(1),
            timer: TaskTimer::new(Vec::new()),
            status: None,
        }
    }

    pub(crate) fn defer(&mut self, f: SendFuture) {
        self.deferred.push(f);
    }

    /// Awaits every deferred send in order (this is where backpressure waits), then
    /// starts a new step.
    pub(crate) async fn flush_deferred(&mut self) -> Result<()> {
        if !self.deferred.is_empty() {
            let since = std::time::Instant::now();
            for f in std::mem::take(&mut self.deferred) {
                f.await?;
            }
            self.timer.backpressured(since);
        }
        self.step += 1;
        Ok(())
    }

    pub(crate) fn request_processing_timer(&mut self, at: i64) {
        self.processing_timer = Some(self.processing_timer.map_or(at, |t| t.min(at)));
    }

    /// Applies the pipeline's error policy to a failed record.
    pub(crate) fn record_failed(
        &mut self,
        operator: &str,
        position: Position,
        timestamp: i64,
        message: String,
    ) -> Result<()> {
        metrics::counter!("strom_records_failed_total", "operator" => operator.to_string())
            .increment(1);
        match self.policy {
            ErrorPolicy::Fail => Err(EngineError::RecordFailed {
                operator: operator.to_string(),
                subtask: self.subtask,
                position,
                timestamp,
                message,
            }),
            ErrorPolicy::Drop => {
                tracing::debug!(operator, %position, error = %message, "record dropped");
                Ok(())
            }
            ErrorPolicy::DeadLetter => {
                if let Some(s) = &self.status {
                    s.dead_letter();
                }
                let dl = DeadLetter {
                    operator: operator.to_string(),
                    subtask: self.subtask,
                    position,
                    timestamp,
                    error: message,
                };
                if let Some(mut out) = self.dead_letters.take() {
                    let r = out.send(Message::Data(vec![Record::new(dl, timestamp)]), self);
                    self.dead_letters = Some(out);
                    r?;
                }
                Ok(())
            }
        }
    }
}
