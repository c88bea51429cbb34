//! Sources and sinks that connect the strom engine to the outside world, one
//! module per external system. Today: Kafka ([`kafka`]), where a pipeline reads
//! topics through a consumer group, keeps its state in changelog topics, and
//! makes every checkpoint one Kafka transaction.
#![deny(missing_docs)]

pub mod error;
pub mod kafka;

pub use error::ConnectorError;
