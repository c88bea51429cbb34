//! The Kafka client: configuration, connections, metadata, producer, consumer and admin.

pub mod admin;
pub mod backoff;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod consumer;
#[cfg(any(test, feature = "test-util"))]
pub mod fake_broker;
pub mod group;
pub mod metrics;
pub mod partitioner;
pub mod producer;
pub mod properties;
pub mod security;
pub mod transaction;

pub use admin::Admin;
pub use cluster::Client;
pub use config::{ConsumerConfig, ProducerConfig};
pub use producer::{Producer, ProducerRecord, RecordMetadata};

/// A topic and a partition of it: the one name for a partition across the
/// consumer, groups, fetch sessions and transactions.
pub type TopicPartition = (String, i32);
