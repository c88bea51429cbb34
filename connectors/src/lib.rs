//! Sources and sinks that connect the strom engine to the outside world, one
//! module per external system. Today: Kafka ([`kafka`]), where a pipeline reads
//! topics through a consumer group, keeps its state in changelog topics, and
//! makes every checkpoint one Kafka transaction; and files ([`file`](mod@file)), read line by
//! line and written as rolling files committed at checkpoints. Both share the
//! record formats of [`format`](mod@format). PostgreSQL tables ([`postgres`]) take rows
//! at-least-once or exactly-once through two-phase commit. [`nexmark`] generates
//! the Nexmark benchmark's auction events in process, as a source.
#![deny(missing_docs)]

pub mod blackhole;
pub mod error;
pub mod file;
pub mod format;
pub mod kafka;
pub mod nexmark;
pub mod postgres;
pub mod stdout;
mod sync;

pub use error::ConnectorError;
