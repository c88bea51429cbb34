//! [`KafkaMessage`]: a decoded record value with everything Kafka knows about the
//! record (key, headers, timestamp, topic, partition, offset). The value formats
//! themselves live in [`crate::format`].

use std::sync::Arc;

use bytes::Bytes;

/// A decoded record with everything Kafka knows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaMessage<T> {
    /// The decoded value.
    pub value: T,
    /// The key bytes.
    pub key: Option<Bytes>,
    /// Headers in wire order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The record timestamp (ms).
    pub timestamp: i64,
    /// Topic read from.
    pub topic: Arc<str>,
    /// Partition read from.
    pub partition: i32,
    /// Offset read from.
    pub offset: i64,
}
