//! `filter`: keeps the records a predicate accepts.
//!
//! ```
//! use engine::{CollectSink, Pipeline, VecSource, WatermarkStrategy};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let p = Pipeline::new();
//! let sink = CollectSink::new();
//! p.source(VecSource::new(vec![1, 2, 3, 4]), WatermarkStrategy::no_watermarks())
//!     .filter(|x| x % 2 == 0)
//!     .sink(sink.clone());
//! p.run().await.unwrap();
//! assert_eq!(sink.values(), vec![2, 4]);
//! # });
//! ```

use std::sync::Arc;

use crate::error::Result;
use crate::operators::{Operator, Output};
use crate::record::Record;

/// Keeps records for which the predicate returns true.
pub struct FilterOperator<F> {
    f: Arc<F>,
}

impl<F> FilterOperator<F> {
    pub(crate) fn new(f: Arc<F>) -> Self {
        FilterOperator { f }
    }
}

impl<T: Send + 'static, F: Fn(&T) -> bool + Send + Sync + 'static> Operator<T>
    for FilterOperator<F>
{
    type Out = T;
    #[inline]
    fn can_adopt(&self) -> bool {
        true
    }

    fn adopts_under_event_time(&self) -> bool {
        true
    }

    fn process_batch(&mut self, mut batch: Vec<Record<T>>, out: &mut Output<'_, T>) -> Result<()> {
        let f = &*self.f;
        batch.retain(|r| f(&r.value));
        out.emit_batch(batch);
        Ok(())
    }
}
