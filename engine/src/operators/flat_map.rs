//! `flat_map`: zero or more outputs per input record, each keeping the input's
//! timestamp and position.
//!
//! ```
//! use engine::{CollectSink, Pipeline, VecSource, WatermarkStrategy};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let p = Pipeline::new();
//! let sink = CollectSink::new();
//! p.source(VecSource::new(vec!["a b", "c"]), WatermarkStrategy::no_watermarks())
//!     .flat_map(|s| s.split(' ').map(str::to_string).collect::<Vec<_>>())
//!     .sink(sink.clone());
//! p.run().await.unwrap();
//! assert_eq!(sink.values(), vec!["a", "b", "c"]);
//! # });
//! ```

use std::sync::Arc;

use crate::error::Result;
use crate::operators::{Operator, Output};
use crate::record::Record;

/// Expands each value into an iterator of values.
pub struct FlatMapOperator<F> {
    f: Arc<F>,
}

impl<F> FlatMapOperator<F> {
    pub(crate) fn new(f: Arc<F>) -> Self {
        FlatMapOperator { f }
    }
}

impl<T, I, F> Operator<T> for FlatMapOperator<F>
where
    T: Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(T) -> I + Send + Sync + 'static,
{
    type Out = I::Item;
    fn can_adopt(&self) -> bool {
        true
    }

    fn adopts_under_event_time(&self) -> bool {
        true
    }

    fn process_batch(
        &mut self,
        batch: Vec<Record<T>>,
        out: &mut Output<'_, I::Item>,
    ) -> Result<()> {
        for r in batch {
            let (ts, pos) = (r.timestamp, r.position);
            for v in (self.f)(r.value) {
                out.emit(Record {
                    value: v,
                    timestamp: ts,
                    position: pos,
                });
            }
        }
        Ok(())
    }
}

/// Expands each value with a fallible function; failures follow the pipeline's
/// error policy.
pub struct TryFlatMapOperator<F> {
    f: Arc<F>,
}

impl<F> TryFlatMapOperator<F> {
    pub(crate) fn new(f: Arc<F>) -> Self {
        TryFlatMapOperator { f }
    }
}

impl<T, I, E, F> Operator<T> for TryFlatMapOperator<F>
where
    T: Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
    E: std::fmt::Display + 'static,
    F: Fn(T) -> std::result::Result<I, E> + Send + Sync + 'static,
{
    type Out = I::Item;
    fn can_adopt(&self) -> bool {
        true
    }

    fn adopts_under_event_time(&self) -> bool {
        true
    }

    fn process_batch(
        &mut self,
        batch: Vec<Record<T>>,
        out: &mut Output<'_, I::Item>,
    ) -> Result<()> {
        for r in batch {
            let (ts, pos) = (r.timestamp, r.position);
            match (self.f)(r.value) {
                Ok(items) => {
                    for v in items {
                        out.emit(Record {
                            value: v,
                            timestamp: ts,
                            position: pos,
                        });
                    }
                }
                Err(e) => out.fail(pos, ts, e)?,
            }
        }
        Ok(())
    }
}
