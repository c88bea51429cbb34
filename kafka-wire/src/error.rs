//! The one error type of kafka-wire.

use crate::client::TopicPartition;
use crate::client::transaction::state::{Operation, TransactionState};
use crate::error_code::ErrorCode;
use crate::protocol::ApiKey;

/// Everything that can go wrong in kafka-wire: bad bytes, unsupported versions,
/// compression failures, and (in the client) I/O and broker errors.
///
/// Decoders never panic on input: every malformed frame, batch or field comes back
/// as one of these, naming what was being read.
///
/// Errors clone without loss (an I/O error is shared behind an `Arc`), so one
/// failure handed to several waiters keeps its variant, and with it
/// [`Error::is_retriable`], [`Error::is_fatal`] and [`Error::is_abortable`].
/// Each variant's message names its cause; a cause kept as `source()` is part of
/// that message too, so print an error with `{}` (not the chain) to see it once.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes remained than the field or length prefix needs.
    #[error("truncated input reading {context}: needed {needed} bytes, {remaining} remain")]
    Truncated {
        /// What was being read.
        context: &'static str,
        /// Bytes the read needed.
        needed: usize,
        /// Bytes that remained.
        remaining: usize,
    },
    /// A length prefix was negative (where null is not allowed) or larger than allowed.
    #[error("invalid length {length} for {context}")]
    InvalidLength {
        /// What was being read.
        context: &'static str,
        /// The length found.
        length: i64,
    },
    /// A varint ran past its maximum width.
    #[error("malformed varint reading {context}")]
    InvalidVarint {
        /// What was being read.
        context: &'static str,
    },
    /// A string field did not hold valid UTF-8.
    #[error("invalid UTF-8 in {context}")]
    InvalidUtf8 {
        /// What was being read.
        context: &'static str,
    },
    /// A field that must not be null was null on the wire, or the caller set null at a
    /// version where the field is not nullable.
    #[error("{field} is null but is not nullable at version {version}")]
    NullNotAllowed {
        /// The field.
        field: &'static str,
        /// The message version.
        version: i16,
    },
    /// Encoding a non-default value in a field that the chosen version does not have
    /// (and which is not ignorable) would silently lose it.
    #[error("{field} is not supported at version {version} but holds a non-default value")]
    FieldNotSupported {
        /// The field.
        field: &'static str,
        /// The message version.
        version: i16,
    },
    /// The api key is not one Kafka defines (or this crate knows).
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// The version is outside the range a message supports.
    #[error("unsupported version {version} of {message}")]
    UnsupportedVersion {
        /// The message name.
        message: &'static str,
        /// The version asked for.
        version: i16,
    },
    /// A record batch CRC32C did not match its bytes.
    #[error(
        "record batch CRC mismatch at offset {base_offset}: stored {stored:#010x}, computed {computed:#010x}"
    )]
    CrcMismatch {
        /// Base offset of the batch.
        base_offset: i64,
        /// CRC stored in the batch.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// A record batch or record is malformed in a way the other variants do not cover.
    #[error("corrupt record data: {0}")]
    CorruptRecords(String),
    /// The message format (magic byte) is not 0, 1 or 2.
    #[error("unsupported record magic {0}")]
    UnsupportedMagic(i8),
    /// The compression codec id is not one Kafka defines.
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    /// A codec failed to compress or decompress.
    #[error("{codec} error: {message}")]
    Compression {
        /// The codec.
        codec: &'static str,
        /// What the codec said.
        message: String,
    },
    /// Decompressed output would pass the configured limit (decompression bomb guard).
    #[error("{codec} output exceeds the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The codec.
        codec: &'static str,
        /// The configured limit.
        limit: usize,
    },
    /// A value given by the caller cannot be encoded (too long, out of range).
    #[error("cannot encode {context}: {message}")]
    Encode {
        /// What was being encoded.
        context: &'static str,
        /// Why it cannot be encoded.
        message: String,
    },
    /// A configuration property is missing, unknown or has an invalid value.
    #[error("config {key}: {message}")]
    Config {
        /// The property name (Java client spelling), or the file that could not be read.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error (shared, so the error clones).
        #[source]
        source: std::sync::Arc<std::io::Error>,
    },
    /// The connection to a broker failed or was closed; requests on it did not complete.
    #[error("connection to {broker} lost: {reason}")]
    Disconnected {
        /// The broker's `host:port`.
        broker: String,
        /// Why the connection ended.
        reason: String,
    },
    /// The producer was closed or dropped, or an earlier fatal error stopped it:
    /// nothing more is sent through it (retrying on it cannot help).
    #[error("producer closed: {reason}")]
    Closed {
        /// Why it is closed.
        reason: String,
    },
    /// The TLS handshake with a broker failed (unknown CA, hostname mismatch, a
    /// peer that does not speak TLS, a bad client certificate). Not retriable:
    /// the same handshake fails the same way.
    #[error("TLS with {broker} failed: {reason}")]
    Tls {
        /// The broker's `host:port`.
        broker: String,
        /// Why the handshake failed.
        reason: String,
    },
    /// SASL authentication with a broker failed (wrong password, unknown user,
    /// a mechanism the broker does not enable, a rejected token). Not retriable.
    #[error("SASL {mechanism} authentication with {broker} failed: {reason}")]
    Authentication {
        /// The broker's `host:port`.
        broker: String,
        /// The SASL mechanism, e.g. `SCRAM-SHA-512`.
        mechanism: String,
        /// What the broker (or the client's check of the broker) said.
        reason: String,
    },
    /// The broker refused an operation on a resource the principal has no rights
    /// on (TOPIC_, GROUP_, TRANSACTIONAL_ID_ or CLUSTER_AUTHORIZATION_FAILED). Not
    /// retriable: grant the right (an ACL) and call again.
    #[error("not authorized to {operation} {resource_type} {resource_name}: {code}")]
    Authorization {
        /// The broker's code.
        code: ErrorCode,
        /// `topic`, `group`, `transactional id` or `cluster`.
        resource_type: &'static str,
        /// The resource's name (`kafka-cluster` for the cluster).
        resource_name: String,
        /// The operation that was refused, e.g. `write`, `read`, `describe`.
        operation: &'static str,
    },
    /// An operation did not finish in time.
    #[error("timed out: {context}")]
    Timeout {
        /// What timed out.
        context: String,
    },
    /// Producer: a record's `delivery.timeout.ms` ran out before the broker
    /// acknowledged it.
    #[error(
        "delivery.timeout.ms expired ({outcome}){}",
        last_error_suffix(last_error)
    )]
    DeliveryTimeout {
        /// `"not sent"`; `"not written"` when every attempt was refused;
        /// `"possibly written"` when an attempt went unanswered or timed out.
        outcome: &'static str,
        /// The error of the last failed attempt (or of the last metadata lookup for
        /// a record never sent), if any: why the retries did not succeed.
        last_error: Option<Box<Error>>,
    },
    /// The broker supports no version of an api that this crate supports.
    #[error("broker {broker} supports no version of {api} that kafka-wire supports")]
    NoCommonVersion {
        /// The message name.
        api: &'static str,
        /// The broker's `host:port`.
        broker: String,
    },
    /// The broker answered with an error code (or the client stands in for one, e.g.
    /// UNKNOWN_TOPIC_OR_PARTITION for a partition its metadata does not list). Build
    /// it with [`Error::broker`]; ask [`Error::api`], [`Error::topic_partition`] and
    /// [`Error::node`] what it concerns rather than reading the message.
    #[error("{context}: {code}")]
    Broker {
        /// The error code.
        code: crate::error_code::ErrorCode,
        /// The request that was answered with the code, when known.
        api: Option<ApiKey>,
        /// The topic-partition the code is about, when it is about one.
        topic_partition: Option<TopicPartition>,
        /// The broker node that answered, when known.
        node: Option<i32>,
        /// The request (and topic/partition) it was for, as the message says it.
        context: String,
    },
    /// Transactional producer: another producer with the same `transactional.id`
    /// took over (or, with transaction version 1, the coordinator aborted the open
    /// transaction on timeout and bumped the epoch). Fatal: nothing of the open
    /// transaction becomes visible; drop the producer.
    #[error("transactional.id {transactional_id} is fenced: {reason}")]
    Fenced {
        /// The transactional id.
        transactional_id: String,
        /// PRODUCER_FENCED or INVALID_PRODUCER_EPOCH.
        code: ErrorCode,
        /// What the producer was doing, and the likely cause.
        reason: String,
    },
    /// Transactional producer: the open transaction cannot commit; call `abort`,
    /// then begin a new one.
    #[error("the transaction must be aborted: {reason}")]
    TransactionAbortable {
        /// The broker's code, if the error came from a broker.
        code: Option<ErrorCode>,
        /// What failed.
        reason: String,
    },
    /// Transactional producer: it cannot continue (not authorized, unsupported, or
    /// an earlier fatal error); drop it.
    #[error("transactional producer failed: {reason}")]
    TransactionFatal {
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
    InvalidTransactionTimeout {
        /// The configured timeout in ms.
        timeout_ms: u128,
        /// Why it is invalid.
        reason: String,
    },
    /// Transactional producer: the operation is not allowed in the current state
    /// (e.g. `commit` with no transaction open, or `abort` while a commit's outcome
    /// is unknown).
    #[error("{operation:?} is not allowed in state {state:?}{hint}")]
    InvalidTransactionState {
        /// The operation attempted.
        operation: Operation,
        /// The state the producer was in.
        state: TransactionState,
        /// What to do instead, if anything.
        hint: &'static str,
    },
    /// Transactional producer: a request failed with a retriable error until its
    /// deadline; the state is unchanged, so the same operation may be called again
    /// (for commit and abort the outcome is unknown, and only the same decision may
    /// be retried).
    #[error("transaction operation did not complete (retry it): {source}")]
    TransactionIncomplete {
        /// The last failure.
        #[source]
        source: Box<Error>,
    },
}

fn last_error_suffix(last_error: &Option<Box<Error>>) -> String {
    last_error
        .as_ref()
        .map_or_else(String::new, |e| format!("; last error: {e}"))
}

/// Result with kafka-wire's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A broker error code with the text that names what it was for; add what it
    /// concerns with [`Error::with_api`], [`Error::with_partition`] and
    /// [`Error::with_node`].
    pub fn broker(code: ErrorCode, context: impl Into<String>) -> Error {
        Error::Broker {
            code,
            api: None,
            topic_partition: None,
            node: None,
            context: context.into(),
        }
    }

    /// The same error, marked as the answer to `api` (only [`Error::Broker`] keeps it).
    #[must_use]
    pub fn with_api(mut self, api: ApiKey) -> Error {
        if let Error::Broker { api: a, .. } = &mut self {
            *a = Some(api);
        }
        self
    }

    /// The same error, marked as about `topic`-`partition` (only [`Error::Broker`]
    /// keeps it).
    #[must_use]
    pub fn with_partition(mut self, topic: impl Into<String>, partition: i32) -> Error {
        if let Error::Broker {
            topic_partition, ..
        } = &mut self
        {
            *topic_partition = Some((topic.into(), partition));
        }
        self
    }

    /// The same error, marked as answered by broker node `node` (only
    /// [`Error::Broker`] keeps it).
    #[must_use]
    pub fn with_node(mut self, node: i32) -> Error {
        if let Error::Broker { node: n, .. } = &mut self {
            *n = Some(node);
        }
        self
    }

    /// The request a broker error code answered, when known.
    pub fn api(&self) -> Option<ApiKey> {
        match self {
            Error::Broker { api, .. } => *api,
            Error::TransactionIncomplete { source } => source.api(),
            _ => None,
        }
    }

    /// The topic-partition a broker error code is about, when it is about one.
    pub fn topic_partition(&self) -> Option<(&str, i32)> {
        match self {
            Error::Broker {
                topic_partition: Some((topic, partition)),
                ..
            } => Some((topic.as_str(), *partition)),
            Error::TransactionIncomplete { source } => source.topic_partition(),
            _ => None,
        }
    }

    /// The broker node that answered with an error code, when known.
    pub fn node(&self) -> Option<i32> {
        match self {
            Error::Broker { node, .. } => *node,
            Error::TransactionIncomplete { source } => source.node(),
            _ => None,
        }
    }

    /// Whether retrying the same operation may succeed: lost connections, timeouts,
    /// and broker error codes Kafka marks retriable (a stale leader, a loading coordinator).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io { .. }
            | Error::Disconnected { .. }
            | Error::Timeout { .. }
            | Error::DeliveryTimeout { .. }
            | Error::TransactionIncomplete { .. } => true,
            Error::Broker { code, .. } => code.is_retriable(),
            _ => false,
        }
    }

    /// Whether a connection could not be secured or authenticated ([`Error::Tls`],
    /// [`Error::Authentication`]): a setting or a credential is wrong, and
    /// reconnecting fails the same way, so clients report it at once.
    pub fn is_security_failure(&self) -> bool {
        match self {
            Error::Tls { .. } | Error::Authentication { .. } => true,
            Error::DeliveryTimeout {
                last_error: Some(e),
                ..
            } => e.is_security_failure(),
            Error::TransactionIncomplete { source } => source.is_security_failure(),
            _ => false,
        }
    }

    /// The Kafka error code, when the broker answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { code, .. }
            | Error::Fenced { code, .. }
            | Error::Authorization { code, .. } => Some(*code),
            Error::TransactionAbortable { code, .. } | Error::TransactionFatal { code, .. } => {
                *code
            }
            Error::InvalidTransactionTimeout { .. } => Some(ErrorCode::InvalidTransactionTimeout),
            Error::TransactionIncomplete { source } => source.code(),
            _ => None,
        }
    }

    /// The error for a broker's refusal `code` of an operation on a resource:
    /// [`Error::Authorization`] for TOPIC_, GROUP_, TRANSACTIONAL_ID_ and
    /// CLUSTER_AUTHORIZATION_FAILED (naming `resource_name` and `operation`; the
    /// cluster is `kafka-cluster`), [`Error::Broker`] with `context` for any other
    /// code. The caller passes the name that matches the code it met.
    pub fn from_refusal(
        code: ErrorCode,
        resource_name: &str,
        operation: &'static str,
        context: impl FnOnce() -> String,
    ) -> Error {
        let resource_type = match code {
            ErrorCode::TopicAuthorizationFailed => "topic",
            ErrorCode::GroupAuthorizationFailed => "group",
            ErrorCode::TransactionalIdAuthorizationFailed => "transactional id",
            ErrorCode::ClusterAuthorizationFailed => "cluster",
            _ => {
                return Error::broker(code, context());
            }
        };
        let resource_name = if code == ErrorCode::ClusterAuthorizationFailed {
            "kafka-cluster".to_string()
        } else {
            resource_name.to_string()
        };
        Error::Authorization {
            code,
            resource_type,
            resource_name,
            operation,
        }
    }

    /// Whether the broker refused the operation for lack of rights (an ACL).
    pub fn is_authorization(&self) -> bool {
        matches!(self, Error::Authorization { .. })
    }

    /// Transactional producer: whether the caller should `abort`, and may then go
    /// on with a new transaction.
    pub fn is_abortable(&self) -> bool {
        matches!(self, Error::TransactionAbortable { .. })
    }

    /// Transactional producer: whether it is finished and must be dropped (an
    /// authorization refusal included: grant the right, then make a new one).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Fenced { .. }
                | Error::Authorization { .. }
                | Error::TransactionFatal { .. }
                | Error::InvalidTransactionTimeout { .. }
                | Error::Config { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_failure_reads_as_one_and_clones_unchanged() {
        let e = Error::Truncated {
            context: "tagged field value",
            needed: 9,
            remaining: 2,
        };
        let copy = e.clone().clone();
        assert_eq!(
            copy.to_string(),
            "truncated input reading tagged field value: needed 9 bytes, 2 remain"
        );
        assert!(!copy.is_retriable());
    }

    #[test]
    fn a_delivery_timeout_names_the_last_failure_once() {
        let e = Error::DeliveryTimeout {
            outcome: "possibly written",
            last_error: Some(Box::new(Error::Disconnected {
                broker: "127.0.0.1:9092".into(),
                reason: "response size 2147483632 outside [4, 268435456] (max response size)"
                    .into(),
            })),
        };
        assert_eq!(
            e.to_string(),
            "delivery.timeout.ms expired (possibly written); last error: connection to \
             127.0.0.1:9092 lost: response size 2147483632 outside [4, 268435456] (max response size)"
        );
        let quiet = Error::DeliveryTimeout {
            outcome: "not sent",
            last_error: None,
        };
        assert_eq!(quiet.to_string(), "delivery.timeout.ms expired (not sent)");
        assert!(e.clone().is_retriable());
    }

    #[test]
    fn a_broker_error_reads_as_before_and_answers_what_it_concerns() {
        let e = Error::broker(ErrorCode::NotLeaderOrFollower, "fetch t-3 at offset 7")
            .with_api(ApiKey::Fetch)
            .with_partition("t", 3)
            .with_node(2);
        assert_eq!(
            e.to_string(),
            format!("fetch t-3 at offset 7: {}", ErrorCode::NotLeaderOrFollower)
        );
        let wrapped = Error::TransactionIncomplete {
            source: Box::new(e.clone()),
        };
        for e in [e, wrapped] {
            assert_eq!(e.api(), Some(ApiKey::Fetch));
            assert_eq!(e.topic_partition(), Some(("t", 3)));
            assert_eq!(e.node(), Some(2));
            assert_eq!(e.code(), Some(ErrorCode::NotLeaderOrFollower));
        }
        let plain = Error::broker(ErrorCode::CoordinatorNotAvailable, "FindCoordinator");
        assert_eq!(
            (plain.api(), plain.topic_partition(), plain.node()),
            (None, None, None)
        );
        let other = Error::Timeout {
            context: "x".into(),
        }
        .with_api(ApiKey::Fetch);
        assert_eq!(other.api(), None);
    }

    #[test]
    fn the_four_authorization_codes_name_the_resource_and_the_operation() {
        let topic = Error::from_refusal(
            ErrorCode::TopicAuthorizationFailed,
            "orders",
            "write",
            || unreachable!(),
        );
        assert_eq!(
            topic.to_string(),
            "not authorized to write topic orders: TOPIC_AUTHORIZATION_FAILED (29): Topic authorization failed."
        );
        assert!(topic.is_authorization() && !topic.is_retriable());
        assert_eq!(topic.code(), Some(ErrorCode::TopicAuthorizationFailed));
        let cases = [
            (ErrorCode::GroupAuthorizationFailed, "group", "g1"),
            (
                ErrorCode::TransactionalIdAuthorizationFailed,
                "transactional id",
                "g1",
            ),
            (
                ErrorCode::ClusterAuthorizationFailed,
                "cluster",
                "kafka-cluster",
            ),
        ];
        for (code, kind, name) in cases {
            match Error::from_refusal(code, "g1", "read", String::new) {
                Error::Authorization {
                    resource_type,
                    resource_name,
                    operation,
                    ..
                } => {
                    assert_eq!(
                        (resource_type, resource_name.as_str(), operation),
                        (kind, name, "read")
                    );
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        let other = Error::from_refusal(ErrorCode::NotLeaderOrFollower, "t", "write", || {
            "produce to t-0".into()
        });
        assert!(
            matches!(other, Error::Broker { code: ErrorCode::NotLeaderOrFollower, ref context, .. } if context == "produce to t-0")
        );
    }

    #[test]
    fn an_io_error_keeps_its_variant_when_cloned() {
        let e = Error::Io {
            context: "connecting to 127.0.0.1:1".into(),
            source: std::sync::Arc::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            )),
        };
        let copy = e.clone();
        assert!(matches!(copy, Error::Io { .. }));
        assert_eq!(
            copy.to_string(),
            "connecting to 127.0.0.1:1: connection refused"
        );
        assert!(copy.is_retriable());
    }
}
