//! Session windows: per key, records closer than `gap` form one session; sessions
//! merge when a record bridges them; a session fires when the watermark passes its
//! end (`last record + gap`). Accumulators are merged incrementally, no records are
//! buffered.
//!
//! ```text
//! gap 10: records at 0, 5  -> session [0, 15)
//!         record at 24      -> session [24, 34)
//!         record at 14      -> [14, 24) touches both: [0, 34) (accumulators merged)
//! (windows that touch merge, as in Flink)
//! ```
//!
//! ```
//! use std::time::Duration;
//! use engine::{CollectSink, Count, Pipeline, VecSource, WatermarkStrategy, Windows};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let p = Pipeline::new();
//! let sink = CollectSink::new();
//! p.source(VecSource::new(vec![0i64, 5, 24, 14, 100]),
//!          WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(50)).with_timestamp(|t: &i64| *t))
//!     .key_by(|_| 0u8)
//!     .window(Windows::session(Duration::from_millis(10)))
//!     .aggregate(Count)
//!     .map(|w| (w.window.start, w.window.end, w.value))
//!     .sink(sink.clone());
//! p.run().await.unwrap();
//! assert_eq!(sink.values(), vec![(0, 34, 4), (100, 110, 1)]);
//! # });
//! ```

use std::sync::Arc;

use metrics::Counter;

use crate::aggregate::AggregateFunction;
use crate::checkpoint::{CheckpointBarrier, OperatorState};
use crate::error::Result;
use crate::operators::pane_window::{KeyFn, Windowed};
use crate::operators::windowing::{self, FireWindows, for_each_timed, late_dropped_counter};
use crate::operators::{Operator, OperatorInit, Output, SideControl, SideOutput};
use crate::record::Record;
use crate::state::codec::StateCodec;
use crate::state::keyed::{Key, KeyGroupedMap};
use crate::time::timers::TimerQueue;
use crate::time::window::{TimeDomain, TimeWindow};

/// One session of one key.
#[derive(Clone, Debug)]
struct Session<Acc> {
    start: i64,
    end: i64,
    acc: Acc,
    fired: bool,
}

impl<Acc: StateCodec> StateCodec for Session<Acc> {
    fn encode(&self, buf: &mut Vec<u8>) {
        self.start.encode(buf);
        self.end.encode(buf);
        self.acc.encode(buf);
        self.fired.encode(buf);
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        Ok(Session {
            start: i64::decode(buf)?,
            end: i64::decode(buf)?,
            acc: Acc::decode(buf)?,
            fired: bool::decode(buf)?,
        })
    }
}

/// Session window operator (see the module docs).
pub struct SessionWindowOperator<K, T, A: AggregateFunction<T>> {
    key_fn: KeyFn<K, T>,
    agg: Arc<A>,
    gap: i64,
    domain: TimeDomain,
    lateness: i64,
    sessions: Option<KeyGroupedMap<K, Vec<Session<A::Acc>>>>,
    timers: TimerQueue<K>,
    progress: i64,
    late: SideOutput<T>,
    late_dropped: Option<Counter>,
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> SessionWindowOperator<K, T, A> {
    pub(crate) fn new(
        key_fn: KeyFn<K, T>,
        agg: Arc<A>,
        gap: i64,
        domain: TimeDomain,
        lateness: i64,
        late: SideOutput<T>,
    ) -> Self {
        SessionWindowOperator {
            key_fn,
            agg,
            gap,
            domain,
            lateness: lateness.max(0),
            sessions: None,
            timers: TimerQueue::default(),
            progress: i64::MIN,
            late,
            late_dropped: None,
        }
    }

    fn emit(&self, key: &K, s: &Session<A::Acc>, out: &mut Output<'_, Windowed<K, A::Out>>) {
        let window = TimeWindow {
            start: s.start,
            end: s.end,
        };
        out.emit(Record::new(
            Windowed {
                key: key.clone(),
                window,
                value: self.agg.result(&s.acc),
            },
            window.max_timestamp(),
        ));
    }

    fn add(&mut self, r: Record<T>, out: &mut Output<'_, Windowed<K, A::Out>>) -> Result<()> {
        let ts = r.timestamp;
        let (start, end) = (ts, ts.saturating_add(self.gap));
        let key = (self.key_fn)(&r.value);
        let existing = self
            .sessions
            .as_mut()
            .and_then(|m| m.remove(&key))
            .unwrap_or_default();
        let overlaps = existing.iter().any(|s| s.start <= end && start <= s.end);
        if !overlaps && (end - 1).saturating_add(self.lateness) <= self.progress {
            if !existing.is_empty() {
                if let Some(m) = self.sessions.as_mut() {
                    m.insert(key, existing);
                }
            }
            if let Some(c) = &self.late_dropped {
                c.increment(1);
            }
            return self.late.emit(r, out.ctx);
        }
        let mut merged = Session {
            start,
            end,
            acc: self.agg.create(),
            fired: false,
        };
        self.agg.add(&mut merged.acc, &r.value);
        let mut kept = Vec::with_capacity(existing.len() + 1);
        for s in existing {
            if s.start <= merged.end && merged.start <= s.end {
                merged.start = merged.start.min(s.start);
                merged.end = merged.end.max(s.end);
                self.agg.merge(&mut merged.acc, &s.acc);
            } else {
                kept.push(s);
            }
        }
        if merged.end - 1 <= self.progress {
            // Late but within the allowed lateness: fire the updated session now.
            self.emit(&key, &merged, out);
            merged.fired = true;
            self.timers
                .register((merged.end - 1).saturating_add(self.lateness), key.clone());
        } else {
            self.timers.register(merged.end - 1, key.clone());
        }
        kept.push(merged);
        kept.sort_by_key(|s| s.start);
        if let Some(m) = self.sessions.as_mut() {
            m.insert(key, kept);
        }
        Ok(())
    }
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> FireWindows<Windowed<K, A::Out>>
    for SessionWindowOperator<K, T, A>
{
    fn domain(&self) -> TimeDomain {
        self.domain
    }

    fn advance(&mut self, progress: i64, out: &mut Output<'_, Windowed<K, A::Out>>) {
        if progress <= self.progress {
            return;
        }
        self.progress = progress;
        let due = self.timers.pop_due(progress);
        let Some(mut map) = self.sessions.take() else {
            return;
        };
        for (_, key) in due {
            let Some(mut list) = map.remove(&key) else {
                continue;
            };
            for s in &mut list {
                if !s.fired && s.end - 1 <= progress {
                    self.emit(&key, s, out);
                    s.fired = true;
                    if self.lateness > 0 {
                        self.timers
                            .register((s.end - 1).saturating_add(self.lateness), key.clone());
                    }
                }
            }
            list.retain(|s| (s.end - 1).saturating_add(self.lateness) > progress);
            if !list.is_empty() {
                map.insert(key, list);
            }
        }
        self.sessions = Some(map);
    }

    fn request_timer(&self, out: &mut Output<'_, Windowed<K, A::Out>>) {
        if let Some(t) = self.timers.next_time() {
            out.request_processing_timer(t.saturating_add(1));
        }
    }
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> Operator<T>
    for SessionWindowOperator<K, T, A>
{
    type Out = Windowed<K, A::Out>;

    fn open(&mut self, init: &OperatorInit) -> Result<()> {
        self.late_dropped = Some(late_dropped_counter(init));
        let map: KeyGroupedMap<K, Vec<Session<A::Acc>>> = KeyGroupedMap::restored(init)?;
        if init.restored.is_some() {
            for (k, list) in map.iter() {
                for s in list {
                    let t = if s.fired {
                        (s.end - 1).saturating_add(self.lateness)
                    } else {
                        s.end - 1
                    };
                    self.timers.register(t, k.clone());
                }
            }
        }
        self.sessions = Some(map);
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<Record<T>>,
        out: &mut Output<'_, Self::Out>,
    ) -> Result<()> {
        for_each_timed(
            self.domain,
            batch,
            out,
            "record has no event timestamp",
            |r, out| self.add(r, out),
        )?;
        if self.domain == TimeDomain::ProcessingTime {
            FireWindows::request_timer(self, out);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, Self::Out>) -> Result<()> {
        windowing::on_watermark(self, watermark, out);
        Ok(())
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Output<'_, Self::Out>) -> Result<()> {
        windowing::on_processing_time(self, now, out);
        Ok(())
    }

    fn snapshot(&mut self, _barrier: &CheckpointBarrier) -> Result<OperatorState> {
        Ok(OperatorState {
            key_groups: self
                .sessions
                .as_ref()
                .map(|m| m.snapshot())
                .unwrap_or_default(),
            entries: Default::default(),
        })
    }

    fn release(&mut self, key_groups: &std::collections::BTreeSet<u16>) -> Result<bool> {
        if let Some(m) = &mut self.sessions {
            m.release(key_groups);
            self.timers
                .retain_keys(|k| !key_groups.contains(&m.key_group(k).0));
        }
        Ok(true)
    }

    fn end_of_input(&mut self, out: &mut Output<'_, Self::Out>) -> Result<()> {
        windowing::end_of_input(self, out);
        Ok(())
    }

    fn side_outputs(&mut self) -> Vec<&mut dyn SideControl> {
        vec![&mut self.late]
    }
}
