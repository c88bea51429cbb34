//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::task::{Context, Poll};

use engine::{NO_TIMESTAMP, Position, Record, Result, Source, SourceSplit, SplitEvent, SplitTime};

/// A split that emits scripted batches, then stays pending forever (an unbounded
/// split that went quiet) unless `end` is set.
pub struct ScriptedSplit<T> {
    pub batches: VecDeque<Vec<T>>,
    pub offset: u64,
    pub end: bool,
    /// Reported as [`SourceSplit::key_group`] (a partition of keyed data).
    pub key_group: Option<u16>,
    /// Event time the split reads from its data, one per batch (a repartition
    /// topic's markers); empty: the strategy's watermarks.
    pub times: VecDeque<SplitTime>,
    now: Option<SplitTime>,
}

impl<T: Send> SourceSplit<T> for ScriptedSplit<T> {
    fn poll_next(&mut self, _cx: &mut Context<'_>, _max: usize) -> Poll<Result<SplitEvent<T>>> {
        match self.batches.pop_front() {
            Some(b) => {
                if let Some(t) = self.times.pop_front() {
                    self.now = Some(t);
                }
                let mut out = Vec::new();
                for v in b {
                    out.push(Record {
                        value: v,
                        timestamp: NO_TIMESTAMP,
                        position: Position::offset_only(self.offset),
                    });
                    self.offset += 1;
                }
                Poll::Ready(Ok(SplitEvent::Records(out)))
            }
            None if self.end => Poll::Ready(Ok(SplitEvent::End)),
            // Never woken: behaves like a partition without new data.
            None => Poll::Pending,
        }
    }
    fn position(&self) -> u64 {
        self.offset
    }
    fn restore(&mut self, position: u64) -> Result<()> {
        self.offset = position;
        Ok(())
    }
    fn key_group(&self) -> Option<u16> {
        self.key_group
    }
    fn event_time(&self) -> Option<SplitTime> {
        self.now
    }
}

/// A source made of scripted splits (unbounded unless every split ends).
pub struct ScriptedSource<T> {
    pub splits: Vec<ScriptedSplit<T>>,
    /// Splits it gives only to a job that adopts their key groups.
    pub later: Vec<ScriptedSplit<T>>,
}

impl<T: Send + 'static> ScriptedSource<T> {
    /// Splits with one batch per inner vec; `end` says whether they end.
    pub fn new(splits: Vec<Vec<Vec<T>>>, end: bool) -> Self {
        ScriptedSource {
            splits: splits
                .into_iter()
                .map(|b| ScriptedSplit {
                    batches: b.into(),
                    offset: 0,
                    end,
                    key_group: None,
                    times: VecDeque::new(),
                    now: None,
                })
                .collect(),
            later: Vec::new(),
        }
    }
}

impl<T: Send + 'static> ScriptedSource<T> {
    /// Split `i` reports `times[i][b]` as its event time after batch `b`.
    pub fn with_times(mut self, times: Vec<Vec<SplitTime>>) -> Self {
        for (s, t) in self.splits.iter_mut().zip(times) {
            s.times = t.into();
            s.now = Some(SplitTime::Unknown);
        }
        self
    }

    /// Split `i` reports key group `groups[i]`.
    pub fn with_key_groups(mut self, groups: &[u16]) -> Self {
        for (s, g) in self.splits.iter_mut().zip(groups) {
            s.key_group = Some(*g);
        }
        self
    }

    /// A split of key group `group` with one batch, made only when a running
    /// job adopts that key group.
    pub fn with_later_split(mut self, group: u16, batch: Vec<T>) -> Self {
        self.later.push(ScriptedSplit {
            batches: VecDeque::from([batch]),
            offset: 0,
            end: false,
            key_group: Some(group),
            times: VecDeque::new(),
            now: None,
        });
        self
    }
}

impl<T: Send + 'static> Source<T> for ScriptedSource<T> {
    fn create_splits(&mut self) -> Result<Vec<Box<dyn SourceSplit<T>>>> {
        Ok(std::mem::take(&mut self.splits)
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn SourceSplit<T>>)
            .collect())
    }

    fn adopt_splits(
        &mut self,
        key_groups: &std::collections::BTreeSet<u16>,
    ) -> Result<Vec<Box<dyn SourceSplit<T>>>> {
        let (taken, kept) = std::mem::take(&mut self.later)
            .into_iter()
            .partition(|s| s.key_group.is_some_and(|g| key_groups.contains(&g)));
        self.later = kept;
        Ok(taken
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn SourceSplit<T>>)
            .collect::<Vec<_>>())
    }
}

/// `(key, start, end, value)` tuples, sorted, for comparing window output.
pub fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}
