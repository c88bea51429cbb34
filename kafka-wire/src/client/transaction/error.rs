//! The transactional producer's errors: what went wrong, and what the caller may
//! do next (retry, abort, or drop the producer).

use super::state::{Operation, TransactionState};
use crate::error::Error;
use crate::error_code::ErrorCode;

/// Errors of the transactional producer: what went wrong and what the caller may do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// Another producer with the same `transactional.id` took over (or the coordinator
    /// aborted this producer's transaction on timeout and bumped the epoch). Fatal:
    /// nothing of the open transaction becomes visible; drop the producer.
    #[error("transactional.id {transactional_id} is fenced: {reason}")]
    Fenced {
        /// The transactional id.
        transactional_id: String,
        /// PRODUCER_FENCED or INVALID_PRODUCER_EPOCH.
        code: ErrorCode,
        /// What the producer was doing, and the likely cause.
        reason: String,
    },
    /// The open transaction cannot commit; call `abort`, then start a new one.
    #[error("the transaction must be aborted: {reason}")]
    Abortable {
        /// The broker's code, if the error came from a broker.
        code: Option<ErrorCode>,
        /// What failed.
        reason: String,
    },
    /// The producer cannot continue (not authorized, unsupported, or an earlier fatal error).
    #[error("transactional producer failed: {reason}")]
    Fatal {
        /// The broker's code, if the error came from a broker.
        code: Option<ErrorCode>,
        /// What failed.
        reason: String,
    },
    /// `transaction.timeout.ms` is not accepted (above the broker's
    /// `transaction.max.timeout.ms`, or not positive).
    #[error(
        "transaction.timeout.ms = {timeout_ms} is invalid: {reason} (the broker caps it with transaction.max.timeout.ms, 15 minutes by default)"
    )]
    InvalidTimeout {
        /// The configured timeout in ms.
        timeout_ms: u128,
        /// Why it is invalid.
        reason: String,
    },
    /// The operation is not allowed in the current state (e.g. `commit` with no
    /// transaction open, or `abort` while a commit's outcome is unknown).
    #[error("{operation:?} is not allowed in state {state:?}{hint}")]
    InvalidState {
        /// The operation attempted.
        operation: Operation,
        /// The state the producer was in.
        state: TransactionState,
        /// What to do instead, if anything.
        hint: &'static str,
    },
    /// A request failed with a retriable error until its deadline; the state is
    /// unchanged, so the same operation may be called again (for commit and abort:
    /// the outcome is unknown and only the same decision may be retried).
    #[error("transaction operation did not complete (retry it): {0}")]
    Retriable(#[source] Error),
    /// The configuration is not that of a transactional producer.
    #[error(transparent)]
    Config(Error),
    /// The record was refused before anything was sent (a partition the topic
    /// does not have); the transaction is unaffected.
    #[error("record refused: {0}")]
    InvalidRecord(#[source] Error),
}

impl TransactionError {
    /// Whether the caller should `abort` and may then continue with a new transaction.
    pub fn is_abortable(&self) -> bool {
        matches!(self, TransactionError::Abortable { .. })
    }

    /// Whether the producer is finished and must be dropped.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            TransactionError::Fenced { .. }
                | TransactionError::Fatal { .. }
                | TransactionError::InvalidTimeout { .. }
                | TransactionError::Config(_)
        )
    }

    /// The broker's error code behind this error, if any.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            TransactionError::Fenced { code, .. } => Some(*code),
            TransactionError::Abortable { code, .. } | TransactionError::Fatal { code, .. } => {
                *code
            }
            TransactionError::Retriable(e)
            | TransactionError::Config(e)
            | TransactionError::InvalidRecord(e) => e.code(),
            TransactionError::InvalidTimeout { .. } => Some(ErrorCode::InvalidTransactionTimeout),
            TransactionError::InvalidState { .. } => None,
        }
    }
}

/// Result of transactional operations.
pub type TxnResult<T> = std::result::Result<T, TransactionError>;
