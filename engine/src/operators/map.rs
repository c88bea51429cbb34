//! `map` and `try_map`: one output per input record.
//!
//! ```
//! use engine::{CollectSink, Pipeline, VecSource, WatermarkStrategy};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let p = Pipeline::new();
//! let sink = CollectSink::new();
//! p.source(VecSource::new(vec![1, 2, 3]), WatermarkStrategy::no_watermarks())
//!     .map(|x| x * 10)
//!     .sink(sink.clone());
//! p.run().await.unwrap();
//! assert_eq!(sink.values(), vec![10, 20, 30]);
//! # });
//! ```

use std::fmt::Display;
use std::sync::Arc;

use crate::error::Result;
use crate::operators::{Operator, Output};
use crate::record::Record;

/// Applies a function to every value.
pub struct MapOperator<F> {
    f: Arc<F>,
}

impl<F> MapOperator<F> {
    pub(crate) fn new(f: Arc<F>) -> Self {
        MapOperator { f }
    }
}

impl<T: Send + 'static, U: Send + 'static, F: Fn(T) -> U + Send + Sync + 'static> Operator<T>
    for MapOperator<F>
{
    type Out = U;
    #[inline]
    fn can_adopt(&self) -> bool {
        true
    }

    fn adopts_under_event_time(&self) -> bool {
        true
    }

    fn process_batch(&mut self, batch: Vec<Record<T>>, out: &mut Output<'_, U>) -> Result<()> {
        let f = &*self.f;
        // Collecting from `into_iter` reuses the allocation when sizes allow.
        out.emit_batch(
            batch
                .into_iter()
                .map(|r| Record {
                    value: f(r.value),
                    timestamp: r.timestamp,
                    position: r.position,
                })
                .collect(),
        );
        Ok(())
    }
}

/// Applies a fallible function; failures go through the pipeline's error policy.
pub struct TryMapOperator<F> {
    f: Arc<F>,
}

impl<F> TryMapOperator<F> {
    pub(crate) fn new(f: Arc<F>) -> Self {
        TryMapOperator { f }
    }
}

impl<T, U, E, F> Operator<T> for TryMapOperator<F>
where
    T: Send + 'static,
    U: Send + 'static,
    E: Display + 'static,
    F: Fn(T) -> std::result::Result<U, E> + Send + Sync + 'static,
{
    type Out = U;
    fn can_adopt(&self) -> bool {
        true
    }

    fn adopts_under_event_time(&self) -> bool {
        true
    }

    fn process_batch(&mut self, batch: Vec<Record<T>>, out: &mut Output<'_, U>) -> Result<()> {
        for r in batch {
            let (ts, pos) = (r.timestamp, r.position);
            match (self.f)(r.value) {
                Ok(v) => out.emit(Record {
                    value: v,
                    timestamp: ts,
                    position: pos,
                }),
                Err(e) => out.fail(pos, ts, e)?,
            }
        }
        Ok(())
    }
}
