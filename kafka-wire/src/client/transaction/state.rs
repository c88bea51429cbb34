//! The transaction state machine and error classification, free of I/O.
//!
//! ```text
//!                 init()                       begin()
//!  Uninitialized ───────► Initializing ──ok──► Ready ───────► InTransaction
//!                              │                 ▲  ▲              │  │
//!                              │ fenced,         │  │ ok           │  │ send / offsets
//!                              │ bad timeout     │  │              │  │ failed (abortable)
//!                              ▼                 │  │ commit()     ▼  ▼
//!                          FatalError ◄──────────┼─ Committing ◄─── ─ AbortableError
//!                              ▲   fenced        │      │ record failed      │
//!                              │                 │      └──────────►─────────┤
//!                              │                 │ ok                        │ abort()
//!                              └──── fenced ── Aborting ◄────────────────────┘
//!                                                ▲ abort() from InTransaction
//! ```
//!
//! Committing and Aborting are left only by an answer from the coordinator. When
//! EndTxn's outcome is unknown (a timeout, a lost connection, retries exhausted) the
//! state stays where it is and only the same decision may be retried: `commit()`
//! again from Committing, `abort()` again from Aborting. The opposite call is an
//! invalid-state error, because the coordinator may already have acted on the
//! first one (franz-go #1207).

use crate::error_code::ErrorCode;

/// Where a transactional producer is in its life; see the module doc for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// Created; InitProducerId not sent yet.
    Uninitialized,
    /// InitProducerId in progress (fencing older producers, finishing their transaction).
    Initializing,
    /// No transaction open; `begin` may start one.
    Ready,
    /// A transaction is open: `send`, `send_offsets_to_transaction`, `commit`, `abort`.
    InTransaction,
    /// Commit started (records flushing, or EndTxn(commit) sent and not yet answered).
    Committing,
    /// Abort started (records flushing, or EndTxn(abort) sent and not yet answered).
    Aborting,
    /// The open transaction cannot commit; only `abort` is allowed.
    AbortableError,
    /// The producer cannot continue (fenced, misconfigured); drop it.
    FatalError,
}

/// The operations of a transactional producer, for transition checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `init` (InitProducerId).
    Init,
    /// `begin`.
    Begin,
    /// `send` or `send_offsets_to_transaction`.
    Send,
    /// `commit`.
    Commit,
    /// `abort`.
    Abort,
}

impl TransactionState {
    /// The state an operation moves to, or `None` when it is not allowed in `self`.
    ///
    /// Commit and abort may be repeated from their own in-progress state (retrying
    /// the same decision), never from the other one.
    pub fn start(self, op: Operation) -> Option<TransactionState> {
        use Operation as O;
        use TransactionState as S;
        match (self, op) {
            (S::Uninitialized, O::Init) => Some(S::Initializing),
            (S::Ready, O::Begin) => Some(S::InTransaction),
            (S::InTransaction, O::Send) => Some(S::InTransaction),
            (S::InTransaction | S::Committing, O::Commit) => Some(S::Committing),
            (S::InTransaction | S::AbortableError | S::Aborting, O::Abort) => Some(S::Aborting),
            _ => None,
        }
    }
}

/// How an error code affects the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth retrying the same request (the coordinator call already did, until its deadline).
    Retriable,
    /// The transaction must be aborted; the producer stays usable.
    Abortable,
    /// The producer is finished (fenced, not authorized).
    Fatal,
}

/// Classifies a broker error code met in a transaction (Java's TransactionManager
/// sorts them the same way).
pub fn classify(code: ErrorCode) -> ErrorClass {
    match code {
        ErrorCode::ProducerFenced
        | ErrorCode::InvalidProducerEpoch
        | ErrorCode::TransactionalIdAuthorizationFailed
        | ErrorCode::ClusterAuthorizationFailed
        | ErrorCode::TransactionCoordinatorFenced
        | ErrorCode::InvalidTransactionTimeout
        | ErrorCode::UnsupportedVersion
        | ErrorCode::UnsupportedForMessageFormat => ErrorClass::Fatal,
        c if c.is_retriable() => ErrorClass::Retriable,
        _ => ErrorClass::Abortable,
    }
}

/// Whether a code means another producer took over the transactional id (or the
/// coordinator bumped the epoch when it aborted a timed-out transaction).
pub fn is_fencing(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Operation as O;
    use TransactionState as S;

    #[test]
    fn a_transaction_goes_ready_begin_commit() {
        assert_eq!(S::Uninitialized.start(O::Init), Some(S::Initializing));
        assert_eq!(S::Ready.start(O::Begin), Some(S::InTransaction));
        assert_eq!(S::InTransaction.start(O::Send), Some(S::InTransaction));
        assert_eq!(S::InTransaction.start(O::Commit), Some(S::Committing));
        assert_eq!(S::InTransaction.start(O::Abort), Some(S::Aborting));
    }

    #[test]
    fn an_unknown_end_txn_outcome_is_retried_as_the_same_decision_only() {
        assert_eq!(S::Committing.start(O::Commit), Some(S::Committing));
        assert_eq!(S::Committing.start(O::Abort), None);
        assert_eq!(S::Aborting.start(O::Abort), Some(S::Aborting));
        assert_eq!(S::Aborting.start(O::Commit), None);
    }

    #[test]
    fn abortable_allows_only_abort_and_fatal_allows_nothing() {
        for op in [O::Init, O::Begin, O::Send, O::Commit] {
            assert_eq!(S::AbortableError.start(op), None, "{op:?}");
        }
        assert_eq!(S::AbortableError.start(O::Abort), Some(S::Aborting));
        for op in [O::Init, O::Begin, O::Send, O::Commit, O::Abort] {
            assert_eq!(S::FatalError.start(op), None, "{op:?}");
        }
    }

    #[test]
    fn nothing_but_begin_works_when_ready() {
        for op in [O::Init, O::Send, O::Commit, O::Abort] {
            assert_eq!(S::Ready.start(op), None, "{op:?}");
        }
    }

    #[test]
    fn fencing_is_fatal_and_transaction_abortable_is_abortable() {
        assert_eq!(classify(ErrorCode::ProducerFenced), ErrorClass::Fatal);
        assert_eq!(classify(ErrorCode::InvalidProducerEpoch), ErrorClass::Fatal);
        assert_eq!(
            classify(ErrorCode::InvalidTransactionTimeout),
            ErrorClass::Fatal
        );
        assert_eq!(
            classify(ErrorCode::TransactionAbortable),
            ErrorClass::Abortable
        );
        assert_eq!(classify(ErrorCode::InvalidTxnState), ErrorClass::Abortable);
        assert_eq!(classify(ErrorCode::UnknownMemberId), ErrorClass::Abortable);
        assert_eq!(
            classify(ErrorCode::ConcurrentTransactions),
            ErrorClass::Retriable
        );
        assert_eq!(
            classify(ErrorCode::CoordinatorLoadInProgress),
            ErrorClass::Retriable
        );
        assert_eq!(classify(ErrorCode::NotCoordinator), ErrorClass::Retriable);
    }
}
