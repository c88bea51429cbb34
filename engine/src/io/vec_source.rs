//! A bounded source over in-memory values, for tests and batch jobs.

use std::task::{Context, Poll};

use crate::error::{EngineError, Result};
use crate::io::source::{Source, SourceSplit, SplitEvent};
use crate::record::{NO_TIMESTAMP, Position, Record};

/// A bounded source: one split per inner `Vec`, offsets are indexes.
///
/// ```
/// use engine::VecSource;
/// let one_split = VecSource::new(vec![1, 2, 3]);
/// let two_splits = VecSource::with_splits(vec![vec![1, 2], vec![3]]);
/// # let _ = (one_split, two_splits);
/// ```
pub struct VecSource<T> {
    splits: Vec<Vec<T>>,
    name: String,
}

impl<T: Send + 'static> VecSource<T> {
    /// One split holding `values`.
    pub fn new(values: Vec<T>) -> Self {
        Self::with_splits(vec![values])
    }

    /// One split per inner vector.
    pub fn with_splits(splits: Vec<Vec<T>>) -> Self {
        VecSource {
            splits,
            name: "vec-source".into(),
        }
    }

    /// Sets the name used in metrics and errors.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl<T: Send + 'static> Source<T> for VecSource<T> {
    fn name(&self) -> &str {
        &self.name
    }
    fn is_bounded(&self) -> bool {
        true
    }
    fn create_splits(&mut self) -> Result<Vec<Box<dyn SourceSplit<T>>>> {
        Ok(std::mem::take(&mut self.splits)
            .into_iter()
            .map(|v| {
                Box::new(VecSplit {
                    values: v.into_iter(),
                    offset: 0,
                }) as Box<dyn SourceSplit<T>>
            })
            .collect())
    }
}

struct VecSplit<T> {
    values: std::vec::IntoIter<T>,
    offset: u64,
}

impl<T: Send> SourceSplit<T> for VecSplit<T> {
    fn poll_next(&mut self, _cx: &mut Context<'_>, max: usize) -> Poll<Result<SplitEvent<T>>> {
        let mut out = Vec::with_capacity(max.min(self.values.len()));
        for v in self.values.by_ref().take(max) {
            out.push(Record {
                value: v,
                timestamp: NO_TIMESTAMP,
                position: Position::offset_only(self.offset),
            });
            self.offset += 1;
        }
        Poll::Ready(Ok(if out.is_empty() {
            SplitEvent::End
        } else {
            SplitEvent::Records(out)
        }))
    }
    fn position(&self) -> u64 {
        self.offset
    }
    fn restore(&mut self, position: u64) -> Result<()> {
        if position < self.offset {
            return Err(EngineError::Unsupported(format!(
                "a vec source cannot rewind from {} to {position}",
                self.offset
            )));
        }
        let skip = (position - self.offset) as usize;
        if skip > 0 {
            self.values.nth(skip - 1);
        }
        self.offset = position;
        Ok(())
    }
}
