//! The connectors' error type, and how Kafka client errors become engine errors
//! that keep their cause and say whether to retry, roll back or fail.

use engine::{EngineError, ErrorClass};
use kafka_wire::ErrorCode;

/// What can go wrong while setting up or running a connector.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// A setting is missing or invalid.
    #[error("config {key}: {message}")]
    Config {
        /// The property (or builder option) concerned.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The Kafka client failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: kafka_wire::Error,
    },
    /// The pipeline failed.
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// The pipeline cannot run the way it was asked to (e.g. a second process of
    /// a pipeline whose state is not partitioned like its input).
    #[error("{0}")]
    Refused(String),
}

impl ConnectorError {
    /// A Kafka client error with what was being done.
    pub fn kafka(context: impl Into<String>, source: kafka_wire::Error) -> ConnectorError {
        ConnectorError::Kafka {
            context: context.into(),
            source,
        }
    }
}

/// How the job gets past a Kafka client error met while running.
///
/// | error | class |
/// |---|---|
/// | authorization, unsupported version, invalid config or topic, no assignor shared with the group | fatal |
/// | fenced producer, failed or abortable transaction, bad fetched data | rollback |
/// | lost connection, timeout, retriable broker code | retriable |
pub fn classify(error: &kafka_wire::Error) -> ErrorClass {
    use kafka_wire::Error as E;
    if let Some(code) = error.code() {
        if matches!(
            code,
            ErrorCode::TopicAuthorizationFailed
                | ErrorCode::GroupAuthorizationFailed
                | ErrorCode::ClusterAuthorizationFailed
                | ErrorCode::TransactionalIdAuthorizationFailed
                | ErrorCode::UnsupportedVersion
                | ErrorCode::InvalidConfig
                | ErrorCode::InvalidTopicException
                | ErrorCode::UnsupportedForMessageFormat
                | ErrorCode::InvalidTransactionTimeout
                | ErrorCode::InconsistentGroupProtocol
        ) {
            return ErrorClass::Fatal;
        }
    }
    match error {
        E::Config { .. } | E::NoCommonVersion { .. } | E::UnknownApiKey(_) => ErrorClass::Fatal,
        // A TLS or SASL failure repeats on every reconnect: a setting or a
        // credential must change, restarting the pipeline cannot help.
        e if e.is_security_failure() => ErrorClass::Fatal,
        E::Fenced { .. }
        | E::TransactionAbortable { .. }
        | E::TransactionFatal { .. }
        | E::InvalidTransactionState { .. }
        | E::CrcMismatch { .. }
        | E::CorruptRecords(_) => ErrorClass::Rollback,
        e if e.is_retriable() => ErrorClass::Retriable,
        // Non-retriable broker codes and decode failures of an answer: the work of
        // the checkpoint cannot be trusted to have happened.
        _ => ErrorClass::Rollback,
    }
}

/// A Kafka client error as an engine error with its class.
pub(crate) fn engine_error(context: impl Into<String>, error: kafka_wire::Error) -> EngineError {
    let class = classify(&error);
    EngineError::external(context, error, class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_authentication_failures_fail_the_job() {
        let tls = kafka_wire::Error::Tls {
            broker: "127.0.0.1:9093".into(),
            reason: "certificate signed by an unknown authority".into(),
        };
        let auth = kafka_wire::Error::Authentication {
            broker: "127.0.0.1:9094".into(),
            mechanism: "SCRAM-SHA-512".into(),
            reason: "Authentication failed".into(),
        };
        assert_eq!(classify(&tls), ErrorClass::Fatal);
        assert_eq!(classify(&auth), ErrorClass::Fatal);
    }

    #[test]
    fn a_group_sharing_no_assignor_fails_the_job() {
        // Restarting rejoins with the same assignors and is refused again, for
        // as long as the group's other members run (a rolling upgrade that
        // changes the assignor needs the old one listed as a fallback).
        let refused = kafka_wire::Error::broker(
            ErrorCode::InconsistentGroupProtocol,
            "JoinGroup (group g)".to_string(),
        );
        assert_eq!(classify(&refused), ErrorClass::Fatal);
    }
}
