//! The one error type of kafka-wire.

use crate::client::transaction::state::{Operation, TransactionState};
use crate::error_code::ErrorCode;

/// Everything that can go wrong in kafka-wire: bad bytes, unsupported versions,
/// compression failures, and (in the client) I/O and broker errors.
///
/// Decoders never panic on input: every malformed frame, batch or field comes back
/// as one of these, naming what was being read.
#[derive(Debug, thiserror::Error)]
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
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The connection to a broker failed or was closed; requests on it did not complete.
    #[error("connection to {broker} lost: {reason}")]
    Disconnected {
        /// The broker's `host:port`.
        broker: String,
        /// Why the connection ended.
        reason: String,
    },
    /// An operation did not finish in time.
    #[error("timed out: {context}")]
    Timeout {
        /// What timed out.
        context: String,
    },
    /// The broker supports no version of an api that this crate supports.
    #[error("broker {broker} supports no version of {api} that kafka-wire supports")]
    NoCommonVersion {
        /// The message name.
        api: &'static str,
        /// The broker's `host:port`.
        broker: String,
    },
    /// The broker answered with an error code.
    #[error("{context}: {code}")]
    Broker {
        /// The error code.
        code: crate::error_code::ErrorCode,
        /// The request (and topic/partition) it was for.
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

/// Result with kafka-wire's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether retrying the same operation may succeed: lost connections, timeouts,
    /// and broker error codes Kafka marks retriable (a stale leader, a loading coordinator).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Io { .. }
            | Error::Disconnected { .. }
            | Error::Timeout { .. }
            | Error::TransactionIncomplete { .. } => true,
            Error::Broker { code, .. } => code.is_retriable(),
            _ => false,
        }
    }

    /// A copy for handing one failure to several waiters (`Error` is not `Clone`: it
    /// can hold an `io::Error`). I/O errors become [`Error::Disconnected`], which is
    /// what they mean to a request; other variants without a cheap copy become
    /// [`Error::Encode`] with the original message, keeping them non-retriable.
    pub fn clone_lossy(&self) -> Error {
        match self {
            Error::Broker { code, context } => Error::Broker {
                code: *code,
                context: context.clone(),
            },
            Error::Timeout { context } => Error::Timeout {
                context: context.clone(),
            },
            Error::Disconnected { broker, reason } => Error::Disconnected {
                broker: broker.clone(),
                reason: reason.clone(),
            },
            Error::Io { context, source } => Error::Disconnected {
                broker: context.clone(),
                reason: source.to_string(),
            },
            Error::Config { key, message } => Error::Config {
                key: key.clone(),
                message: message.clone(),
            },
            other => Error::Encode {
                context: "copied error",
                message: other.to_string(),
            },
        }
    }

    /// The Kafka error code, when the broker answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Broker { code, .. } | Error::Fenced { code, .. } => Some(*code),
            Error::TransactionAbortable { code, .. } | Error::TransactionFatal { code, .. } => {
                *code
            }
            Error::InvalidTransactionTimeout { .. } => Some(ErrorCode::InvalidTransactionTimeout),
            Error::TransactionIncomplete { source } => source.code(),
            _ => None,
        }
    }

    /// Transactional producer: whether the caller should `abort`, and may then go
    /// on with a new transaction.
    pub fn is_abortable(&self) -> bool {
        matches!(self, Error::TransactionAbortable { .. })
    }

    /// Transactional producer: whether it is finished and must be dropped.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Fenced { .. }
                | Error::TransactionFatal { .. }
                | Error::InvalidTransactionTimeout { .. }
                | Error::Config { .. }
        )
    }
}
