//! Kafka's wire protocol and client, in pure Rust.
//!
//! ```text
//!  protocol/   generated request/response codecs, headers, api keys
//!  error_code  Kafka error codes (generated table), retriable flags
//!  records/    record batches (magic v2) and legacy message sets
//!  compression gzip, snappy, lz4, zstd
//!  client/     connections, metadata, producer, consumer, groups, transactions, admin
//! ```
//!
//! This crate knows nothing of the strom engine; it is usable on its own.
#![deny(missing_docs)]

mod buffer_pool;
pub mod client;
pub mod compression;
pub mod error;
pub mod error_code;
pub mod protocol;
pub mod records;
mod sync;

pub use error::{Error, Result};
pub use error_code::ErrorCode;
