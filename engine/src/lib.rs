//! strom's streaming runtime.
//!
//! A typed dataflow API (sources, operators, sinks), event time with watermarks,
//! windows, keyed state and the checkpoint barrier flow. Sources and sinks are
//! traits: this crate never talks to Kafka itself.
//!
//! ```
//! use std::time::Duration;
//! use engine::*;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // Per-user click counts in 1-minute event-time windows.
//! let clicks = vec![("ann", 1_000i64), ("bob", 2_000), ("ann", 59_000), ("ann", 61_000)];
//! let p = Pipeline::new();
//! let sink = CollectSink::new();
//! p.source(
//!     VecSource::new(clicks),
//!     WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
//!         .with_timestamp(|c: &(&str, i64)| c.1),
//! )
//! .filter(|c| !c.0.is_empty())
//! .key_by(|c| c.0.to_string())
//! .window(Windows::tumbling(Duration::from_secs(60)))
//! .aggregate(Count)
//! .map(|w| format!("{} {}..{}: {}", w.key, w.window.start, w.window.end, w.value))
//! .sink(sink.clone());
//! p.run().await.unwrap(); // bounded input: runs to completion, flushing all windows
//! let mut out = sink.values();
//! out.sort();
//! assert_eq!(out, vec!["ann 0..60000: 2", "ann 60000..120000: 1", "bob 0..60000: 1"]);
//! # });
//! ```
#![deny(missing_docs)]

pub mod aggregate;
pub mod checkpoint;
pub mod error;
pub mod graph;
pub mod io;
pub mod operators;
pub mod record;
mod runtime;
pub mod state;
pub mod time;

pub use aggregate::{AggregateFunction, Avg, Collect, Count, Max, Min, Numeric, Reduce, Sum};
pub use checkpoint::{
    Adoption, Checkpoint, CheckpointBarrier, CheckpointId, CheckpointStore, Epoch,
    InMemoryCheckpointStore, OperatorId, OperatorState, StoreFuture,
};
pub use error::{DeadLetter, EngineError, ErrorClass, ErrorPolicy, Result};
pub use graph::{AsyncOptions, DataStream, KeyedStream, Pipeline, PipelineConfig, WindowedStream};
pub use io::collect::CollectSink;
pub use io::generator::GeneratorSource;
pub use io::sink::{Sink, SinkContext};
pub use io::source::{Source, SourceSplit, SplitEvent, SplitTime};
pub use io::vec_source::VecSource;
pub use operators::interval_join::Either;
pub use operators::pane_window::Windowed;
pub use operators::process::{KeyedProcessFunction, OutputTag, ProcessContext};
pub use operators::{Operator, OperatorInit, Output, SideControl, SideOutput};
pub use record::{NO_TIMESTAMP, Position, Record};
pub use runtime::status;
pub use runtime::status::{
    EdgeKind, JobState, JobStatusSnapshot, OperatorKind, PartitionStatus, ResultRing, ResultValue,
    SinkStatus,
};
pub use runtime::{JobController, JobHandle, JobResult, JobStatus};
pub use state::codec::StateCodec;
pub use state::key_group::{KeyGroup, KeyGroupRange, stable_hash};
pub use state::keyed::{
    Key, KeyGroupedMap, KeyedState, ListState, MapState, StateRegistry, StateValue, ValueState,
};
pub use time::clock::Clock;
pub use time::watermark::{WatermarkStrategy, WatermarkValve};
pub use time::window::{TimeDomain, TimeWindow, WindowKind, Windows};
