//! strom's SQL: Flink-dialect pipelines planned onto the engine's operators.
#![deny(missing_docs)]

pub mod aggregate;
pub mod connect;
pub mod error;
pub mod expr;
pub mod format;
pub mod functions;
pub mod join;
pub mod parse;
pub mod plan;
pub mod run;
mod tap;
pub mod time;
pub mod types;
pub mod vars;

pub use error::{Result, SqlError};
pub use run::{RunOptions, RunSummary, SqlJob, StopSignal};
