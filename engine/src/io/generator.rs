//! An unbounded (or limited), optionally rate-limited generator source. Rate limiting
//! uses tokio time, so a test with a paused clock is deterministic.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::error::Result;
use crate::io::source::{Source, SourceSplit, SplitEvent};
use crate::record::{NO_TIMESTAMP, Position, Record};

type GenFn<T> = Arc<dyn Fn(u64) -> T + Send + Sync>;

/// Generates `f(i)` for `i = split, split + splits, ...` in each split.
///
/// ```
/// use engine::GeneratorSource;
/// let g = GeneratorSource::new(|i| i * 2).splits(2).rate_per_second(10_000.0).limit(1_000);
/// # let _ = g;
/// ```
pub struct GeneratorSource<T> {
    f: GenFn<T>,
    splits: usize,
    rate: Option<f64>,
    limit: Option<u64>,
}

impl<T: Send + 'static> GeneratorSource<T> {
    /// An unbounded, unthrottled generator with one split.
    pub fn new(f: impl Fn(u64) -> T + Send + Sync + 'static) -> Self {
        GeneratorSource {
            f: Arc::new(f),
            splits: 1,
            rate: None,
            limit: None,
        }
    }
    /// Number of splits (records are interleaved over them).
    pub fn splits(mut self, n: usize) -> Self {
        self.splits = n.max(1);
        self
    }
    /// Records per second per split.
    pub fn rate_per_second(mut self, rate: f64) -> Self {
        self.rate = (rate > 0.0).then_some(rate);
        self
    }
    /// Total records over all splits; the source ends after them.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
}

impl<T: Send + 'static> Source<T> for GeneratorSource<T> {
    fn name(&self) -> &str {
        "generator"
    }
    fn is_bounded(&self) -> bool {
        self.limit.is_some()
    }
    fn create_splits(&mut self) -> Result<Vec<Box<dyn SourceSplit<T>>>> {
        let n = self.splits as u64;
        Ok((0..n)
            .map(|s| {
                let count = self.limit.map(|l| l / n + u64::from(s < l % n));
                Box::new(GenSplit {
                    f: self.f.clone(),
                    split: s,
                    stride: n,
                    produced: 0,
                    count,
                    rate: self.rate,
                    start: None,
                    sleep: None,
                }) as Box<dyn SourceSplit<T>>
            })
            .collect())
    }
}

struct GenSplit<T> {
    f: GenFn<T>,
    split: u64,
    stride: u64,
    produced: u64,
    count: Option<u64>,
    rate: Option<f64>,
    start: Option<(Instant, u64)>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<T: Send> SourceSplit<T> for GenSplit<T> {
    fn poll_next(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<Result<SplitEvent<T>>> {
        let remaining = self
            .count
            .map_or(u64::MAX, |c| c.saturating_sub(self.produced));
        if remaining == 0 {
            return Poll::Ready(Ok(SplitEvent::End));
        }
        let mut n = remaining.min(max as u64);
        if let Some(rate) = self.rate {
            let (start, base) = *self.start.get_or_insert((Instant::now(), self.produced));
            let allowed = base + (start.elapsed().as_secs_f64() * rate) as u64;
            let available = allowed.saturating_sub(self.produced);
            if available == 0 {
                let wait = Duration::from_secs_f64(1.0 / rate);
                let sleep = self
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
                // Woken: at least one record is due now.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            n = n.min(available);
        }
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let i = self.split + self.produced * self.stride;
            out.push(Record {
                value: (self.f)(i),
                timestamp: NO_TIMESTAMP,
                position: Position::offset_only(self.produced),
            });
            self.produced += 1;
        }
        Poll::Ready(Ok(SplitEvent::Records(out)))
    }
    fn position(&self) -> u64 {
        self.produced
    }
    fn restore(&mut self, position: u64) -> Result<()> {
        self.produced = position;
        self.start = None;
        Ok(())
    }
}
