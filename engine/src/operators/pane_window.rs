//! Tumbling and sliding windows with incremental, pane-based aggregation.
//!
//! State is one accumulator per (pane, key). A record updates exactly one
//! accumulator, whatever `size / slide` is; when the watermark (or processing time)
//! passes a window's end, the window's panes are merged per key and one result per
//! key is emitted. A tumbling window is the special case of one pane per window, and
//! its pane is dropped right after it fires.
//!
//! ```text
//! record(ts) -> pane_end(ts) -> panes[pane_end][key].add(value)
//! watermark w -> for each window end e <= w + 1 not yet fired:
//!                  emit Windowed { key, [e - size, e), merge(panes in (e - size, e]) }
//!                drop panes no open window (incl. allowed lateness) still needs
//! ```
//!
//! Allowed lateness: a record whose windows fired but are within the lateness is
//! added and each affected window fires again for that key with the updated result
//! (as in Flink). A record later than that goes to the late-data side output, or is
//! dropped and counted in `strom_late_records_dropped_total`.
//!
//! ```
//! use std::time::Duration;
//! use engine::{CollectSink, Count, Pipeline, VecSource, WatermarkStrategy, Windows};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let p = Pipeline::new();
//! let sink = CollectSink::new();
//! p.source(VecSource::new(vec![("a", 1_000i64), ("a", 2_000), ("b", 61_000)]),
//!          WatermarkStrategy::monotonous().with_timestamp(|e: &(&str, i64)| e.1))
//!     .key_by(|e| e.0.to_string())
//!     .window(Windows::tumbling(Duration::from_secs(60)))
//!     .aggregate(Count)
//!     .map(|w| (w.key, w.window.start, w.value))
//!     .sink(sink.clone());
//! p.run().await.unwrap();
//! assert_eq!(sink.values(), vec![("a".to_string(), 0, 2), ("b".to_string(), 60_000, 1)]);
//! # });
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use metrics::Counter;

use crate::aggregate::AggregateFunction;
use crate::checkpoint::{CheckpointBarrier, OperatorState};
use crate::error::Result;
use crate::operators::windowing::{
    self, FireWindows, MISSING_TIMESTAMP, PaneStore, begin_advance, fire_due, for_each_timed,
    late_dropped_counter, restore_windows, snapshot_windows,
};
use crate::operators::{Operator, OperatorInit, Output, SideControl, SideOutput};
use crate::record::Record;
use crate::state::codec::{StateCodec, decode_exact};
use crate::state::key_group::{FastMap, KeyGroup};
use crate::state::keyed::{Key, KeyGroupedMap};
use crate::time::window::{Panes, TimeDomain, TimeWindow};

/// Extracts the key of a value.
pub type KeyFn<K, T> = Arc<dyn Fn(&T) -> K + Send + Sync>;

/// Results a window operator emits per call before it lets the task send them on,
/// about eight batches: bounds the memory of results in flight when a window of
/// many keys fires (a tumbling window's pane stops between key groups) or the
/// watermark jumps over many windows (e.g. at end of input). A window of 100,000
/// keys fired whole held its results and the rows made of them at once: 32 MB
/// of a SQL count's 125 MB peak.
pub(crate) const FIRE_BUDGET: usize = 8 * 1024;

/// One window result: the key, the window and the aggregated value.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Windowed<K, V> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: TimeWindow,
    /// The aggregate.
    pub value: V,
}

/// Tumbling/sliding window operator (see the module docs).
pub struct PaneWindowOperator<K, T, A: AggregateFunction<T>> {
    key_fn: KeyFn<K, T>,
    agg: Arc<A>,
    geo: Panes,
    domain: TimeDomain,
    lateness: i64,
    panes: BTreeMap<i64, KeyGroupedMap<K, A::Acc>>,
    /// Every window with `end <= fired_until` has fired.
    fired_until: i64,
    /// Key groups restored with a later `fired_until` than this subtask's (state of
    /// a source partition that another process had advanced further): their
    /// windows up to that end fired there already.
    kg_fired: BTreeMap<u16, i64>,
    /// Key groups adopted under event time whose partitions have not caught up
    /// with the watermark: the end up to which each fired. Their windows wait,
    /// and their records are judged by that end rather than the watermark.
    lagging: BTreeMap<u16, i64>,
    /// Key groups whose panes were all dropped: checkpoints still write their
    /// fired mark, so a process adopting one knows what fired.
    emptied: BTreeSet<u16>,
    progress: i64,
    /// `advance` stopped after [`FIRE_BUDGET`] results; more windows are due.
    pending: bool,
    /// The window that stopped at the budget part-way, and the key group its
    /// firing goes on from.
    firing: Option<(i64, u16)>,
    /// Early firing: emit the current result of every open window this often
    /// (processing time, ms), like Flink's `ContinuousProcessingTimeTrigger`.
    early_every: Option<i64>,
    next_early: Option<i64>,
    late: SideOutput<T>,
    late_dropped: Option<Counter>,
    init: Option<OperatorInit>,
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> PaneWindowOperator<K, T, A> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key_fn: KeyFn<K, T>,
        agg: Arc<A>,
        size: i64,
        slide: i64,
        offset: i64,
        domain: TimeDomain,
        lateness: i64,
        late: SideOutput<T>,
    ) -> Self {
        PaneWindowOperator {
            key_fn,
            agg,
            geo: Panes::new(size, slide, offset),
            domain,
            lateness: lateness.max(0),
            panes: BTreeMap::new(),
            fired_until: i64::MIN,
            kg_fired: BTreeMap::new(),
            lagging: BTreeMap::new(),
            emptied: BTreeSet::new(),
            progress: i64::MIN,
            pending: false,
            firing: None,
            early_every: None,
            next_early: None,
            late,
            late_dropped: None,
            init: None,
        }
    }

    /// Loads the key groups of `state` (each: the end up to which its windows
    /// fired, and its panes); returns those ends.
    fn load(&mut self, init: &OperatorInit, state: &OperatorState) -> Result<BTreeMap<u16, i64>> {
        let mut fired = BTreeMap::new();
        for (kg, bytes) in &state.key_groups {
            let (f, panes) = decode_exact::<(i64, Vec<(i64, Vec<u8>)>)>(bytes)?;
            fired.insert(*kg, f);
            restore_windows(&mut self.panes, init, panes)?;
        }
        self.emptied.extend(fired.keys());
        Ok(fired)
    }

    /// The fired mark of `key`'s key group while it lags (see `lagging`).
    fn lagging_mark(&self, key: &K) -> Option<i64> {
        if self.lagging.is_empty() {
            return None;
        }
        let init = self.init.as_ref()?;
        let kg = crate::state::key_group::key_group_by(
            init.grouper::<K>().as_ref(),
            key,
            init.max_parallelism,
        );
        self.lagging.get(&kg.0).copied()
    }

    /// Takes on key groups that fired up to the ends in `fired`. Those that
    /// fired less far than this subtask (their windows up to its mark are
    /// still due) move the mark back to the earliest of them; the key groups
    /// held here skip what they fired already. Those that fired further skip
    /// what fired there.
    fn take_over(&mut self, fired: BTreeMap<u16, i64>) {
        let earliest = fired.values().copied().min().unwrap_or(self.fired_until);
        if earliest < self.fired_until {
            let held: BTreeSet<u16> = self
                .panes
                .values()
                .flat_map(KeyGroupedMap::non_empty_groups)
                .filter(|g| !fired.contains_key(g) && !self.lagging.contains_key(g))
                .collect();
            for g in held {
                let f = self.kg_fired.entry(g).or_insert(self.fired_until);
                *f = (*f).max(self.fired_until);
            }
            self.fired_until = earliest;
            // Fire them at the next watermark or timer, even at the same progress.
            self.pending = true;
        }
        for (g, f) in fired {
            self.kg_fired.remove(&g);
            if f > self.fired_until {
                self.kg_fired.insert(g, f);
            }
        }
    }

    /// Window result of `key` for the window ending at `end`.
    fn window_result_for_key(&self, key: &K, end: i64) -> Option<A::Acc> {
        let mut acc: Option<A::Acc> = None;
        for (_, pane) in self.panes.range(end - self.geo.size + 1..=end) {
            if let Some(a) = pane.get(key) {
                match &mut acc {
                    Some(x) => self.agg.merge(x, a),
                    None => acc = Some(a.clone()),
                }
            }
        }
        acc
    }

    /// Fires the window ending at `end` whole: every key's result.
    fn fire_window(&self, end: i64, out: &mut Output<'_, Windowed<K, A::Out>>) -> usize {
        self.fire_groups(end, 0, usize::MAX, out).0
    }

    /// Fires the window ending at `end` key group by key group, from key group
    /// `from` on, until `budget` results are out. Returns how many were, and
    /// the key group to go on from if it stopped before the last.
    fn fire_groups(
        &self,
        end: i64,
        from: u16,
        budget: usize,
        out: &mut Output<'_, Windowed<K, A::Out>>,
    ) -> (usize, Option<u16>) {
        let window = TimeWindow {
            start: end - self.geo.size,
            end,
        };
        let ts = window.max_timestamp();
        let panes: Vec<&KeyGroupedMap<K, A::Acc>> = self
            .panes
            .range(end - self.geo.size + 1..=end)
            .map(|(_, p)| p)
            .collect();
        let last = panes.iter().map(|p| p.range().end).max().unwrap_or(0);
        let mut n = 0;
        let mut merged: FastMap<&K, A::Acc> = FastMap::default();
        for g in from..last {
            if n >= budget {
                return (n, Some(g));
            }
            if self.lagging.contains_key(&g) || self.kg_fired.get(&g).is_some_and(|f| end <= *f) {
                continue;
            }
            let kg = KeyGroup(g);
            let mut emit = |k: &K, acc: &A::Acc| {
                out.emit(Record::new(
                    Windowed {
                        key: k.clone(),
                        window,
                        value: self.agg.result(acc),
                    },
                    ts,
                ))
            };
            if let [pane] = panes[..] {
                for (k, acc) in pane.group(kg).into_iter().flatten() {
                    n += 1;
                    emit(k, acc);
                }
                continue;
            }
            for pane in &panes {
                for (k, acc) in pane.group(kg).into_iter().flatten() {
                    match merged.get_mut(k) {
                        Some(m) => self.agg.merge(m, acc),
                        None => {
                            merged.insert(k, acc.clone());
                        }
                    }
                }
            }
            n += merged.len();
            for (k, acc) in merged.drain() {
                emit(k, &acc);
            }
        }
        (n, None)
    }

    fn process_record(
        &mut self,
        r: Record<T>,
        out: &mut Output<'_, Windowed<K, A::Out>>,
    ) -> Result<()> {
        let pane_end = self.geo.pane_end(r.timestamp);
        let key = (self.key_fn)(&r.value);
        // A key group still catching up is as far as its own windows fired.
        let (wm, fired_until) = match self.lagging_mark(&key) {
            Some(m) => (m.saturating_sub(1), m),
            None => (self.progress, self.fired_until),
        };
        if pane_end - 1 <= wm {
            // Some window of this pane already fired; is any still open?
            let last = self.geo.last_window_end_for_pane(pane_end);
            if (last - 1).saturating_add(self.lateness) <= wm {
                if let Some(c) = &self.late_dropped {
                    c.increment(1);
                }
                return self.late.emit(r, out.ctx);
            }
        }
        // Pre-size new panes like the newest one to avoid rehashing while they fill.
        let hint = self.panes.last_key_value().map_or(0, |(_, p)| p.len());
        let (range, max, grouper) = self
            .init
            .as_ref()
            .map_or((crate::KeyGroupRange { start: 0, end: 1 }, 1, None), |i| {
                (i.key_groups, i.max_parallelism, i.grouper::<K>())
            });
        let pane = self.panes.entry(pane_end).or_insert_with(|| {
            let mut p = KeyGroupedMap::with_grouper(range, max, grouper);
            p.reserve_total(hint);
            p
        });
        let kg: KeyGroup = pane.key_group(&key);
        let group = pane.group_mut(kg);
        match group.get_mut(&key) {
            Some(acc) => self.agg.add(acc, &r.value),
            None => {
                let mut acc = self.agg.create();
                self.agg.add(&mut acc, &r.value);
                group.insert(key.clone(), acc);
            }
        }
        if pane_end - 1 <= wm {
            // Late but allowed: fire the already-fired windows of this pane again.
            let mut e = self.geo.window_end_at_or_after(pane_end);
            while e <= fired_until {
                // Only windows still within the allowed lateness fire again.
                let open = (e - 1).saturating_add(self.lateness) > wm;
                if !open {
                    e += self.geo.slide;
                    continue;
                }
                if let Some(acc) = self.window_result_for_key(&key, e) {
                    let window = TimeWindow {
                        start: e - self.geo.size,
                        end: e,
                    };
                    let value = self.agg.result(&acc);
                    out.emit(Record::new(
                        Windowed {
                            key: key.clone(),
                            window,
                            value,
                        },
                        window.max_timestamp(),
                    ));
                }
                e += self.geo.slide;
            }
        }
        Ok(())
    }

    /// Enables early firing every `every_ms` of processing time.
    pub(crate) fn with_early_firing(mut self, every_ms: Option<i64>) -> Self {
        self.early_every = every_ms.filter(|ms| *ms > 0);
        self
    }

    /// Emits the current result of every window that has data and has not fired.
    fn fire_early(&mut self, out: &mut Output<'_, Windowed<K, A::Out>>) {
        let (Some((&first, _)), Some((&last, _))) =
            (self.panes.first_key_value(), self.panes.last_key_value())
        else {
            return;
        };
        let mut e = self.geo.next_window_end(first, self.fired_until);
        let end = self.geo.last_window_end_for_pane(last);
        while e <= end {
            if self.panes.range(e - self.geo.size + 1..=e).next().is_some() {
                self.fire_window(e, out);
            }
            e = e.saturating_add(self.geo.slide);
        }
    }
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> PaneStore<Windowed<K, A::Out>>
    for PaneWindowOperator<K, T, A>
{
    fn geo(&self) -> Panes {
        self.geo
    }

    fn first_pane(&self) -> Option<i64> {
        self.panes.first_key_value().map(|(&end, _)| end)
    }

    fn has_data_in(&self, end: i64) -> bool {
        self.panes
            .range(end - self.geo.size + 1..=end)
            .next()
            .is_some()
    }

    fn next_pane_after(&self, end: i64) -> Option<i64> {
        self.panes.range(end + 1..).next().map(|(&next, _)| next)
    }

    fn fire_at(
        &mut self,
        end: i64,
        budget: usize,
        out: &mut Output<'_, Windowed<K, A::Out>>,
    ) -> (usize, bool) {
        let from = match self.firing {
            Some((e, g)) if e == end => g,
            _ => 0,
        };
        let (n, rest) = self.fire_groups(end, from, budget, out);
        self.firing = rest.map(|g| (end, g));
        (n, rest.is_none())
    }

    fn fired_until(&mut self) -> &mut i64 {
        &mut self.fired_until
    }
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> FireWindows<Windowed<K, A::Out>>
    for PaneWindowOperator<K, T, A>
{
    fn domain(&self) -> TimeDomain {
        self.domain
    }

    /// Fires every window whose end is `<= progress + 1`, then evicts panes.
    fn advance(&mut self, progress: i64, out: &mut Output<'_, Windowed<K, A::Out>>) {
        if !begin_advance(&mut self.progress, &mut self.pending, progress) {
            return;
        }
        if !fire_due(self, progress, out) {
            self.pending = true;
            return;
        }
        let fired_until = self.fired_until;
        self.kg_fired.retain(|_, f| *f > fired_until);
        // Drop panes whose last window is past the allowed lateness (of every
        // key group: a lagging one is as far as its fired mark).
        let horizon = self
            .lagging
            .values()
            .map(|m| m.saturating_sub(1))
            .fold(progress, i64::min);
        while let Some((&end, _)) = self.panes.first_key_value() {
            let last = self.geo.last_window_end_for_pane(end);
            if (last - 1).saturating_add(self.lateness) <= horizon {
                if let Some((_, pane)) = self.panes.pop_first() {
                    self.emptied.extend(pane.non_empty_groups());
                }
            } else {
                break;
            }
        }
    }

    fn pending(&self) -> bool {
        self.pending
    }

    fn request_timer(&self, out: &mut Output<'_, Windowed<K, A::Out>>) {
        if let Some((&first, _)) = self.panes.first_key_value() {
            out.request_processing_timer(self.geo.next_window_end(first, self.fired_until));
        }
    }
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> Operator<T>
    for PaneWindowOperator<K, T, A>
{
    type Out = Windowed<K, A::Out>;

    fn open(&mut self, init: &OperatorInit) -> Result<()> {
        self.late_dropped = Some(late_dropped_counter(init));
        self.init = Some(init.clone());
        if let Some(state) = &init.restored {
            let fired = self.load(init, state)?;
            // Key groups may come from processes that had fired windows up to
            // different ends: fire from the earliest, skipping per key group what
            // fired already.
            if let Some(min) = fired.values().copied().min() {
                self.fired_until = min;
                self.kg_fired = fired.into_iter().filter(|(_, f)| *f > min).collect();
            }
        }
        Ok(())
    }

    fn can_adopt(&self) -> bool {
        true
    }

    /// Under processing time, takes the adopted key groups on at once (see
    /// `take_over`). Under event time their partitions may be behind the
    /// watermark: they lag (their windows wait) until
    /// [`Operator::on_key_group_caught_up`].
    fn adopt(&mut self, state: &OperatorState) -> Result<bool> {
        let Some(init) = self.init.clone() else {
            return Ok(false);
        };
        let fired = self.load(&init, state)?;
        if self.domain == TimeDomain::EventTime {
            for (g, f) in fired {
                self.kg_fired.remove(&g);
                self.lagging.insert(g, f);
            }
        } else {
            self.take_over(fired);
        }
        Ok(true)
    }

    fn adopts_under_event_time(&self) -> bool {
        true
    }

    /// Under event time a key group adopted without state lags too: none of
    /// its windows fired (or the snapshot would hold its mark).
    fn key_groups_adopted(&mut self, key_groups: &BTreeSet<u16>) -> Result<()> {
        if self.domain == TimeDomain::EventTime {
            for g in key_groups {
                self.lagging.entry(*g).or_insert(i64::MIN);
            }
        }
        Ok(())
    }

    /// Takes the key group on (see `take_over`) and fires its windows that
    /// the watermark has passed.
    fn on_key_group_caught_up(
        &mut self,
        key_group: u16,
        out: &mut Output<'_, Self::Out>,
    ) -> Result<()> {
        if let Some(f) = self.lagging.remove(&key_group) {
            self.take_over(BTreeMap::from([(key_group, f)]));
            windowing::on_watermark(self, self.progress, out);
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<Record<T>>,
        out: &mut Output<'_, Self::Out>,
    ) -> Result<()> {
        for_each_timed(self.domain, batch, out, MISSING_TIMESTAMP, |r, out| {
            self.process_record(r, out)
        })?;
        if self.domain == TimeDomain::ProcessingTime {
            self.request_timer(out);
        }
        if let (Some(every), None) = (self.early_every, self.next_early) {
            let at = out.processing_time() + every;
            self.next_early = Some(at);
            out.request_processing_timer(at);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, Self::Out>) -> Result<()> {
        windowing::on_watermark(self, watermark, out);
        Ok(())
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Output<'_, Self::Out>) -> Result<()> {
        windowing::on_processing_time(self, now, out);
        if let (Some(every), Some(due)) = (self.early_every, self.next_early) {
            if now >= due {
                self.fire_early(out);
                self.next_early = Some(now + every);
            }
            out.request_processing_timer(self.next_early.unwrap_or(now + every));
        }
        Ok(())
    }

    fn snapshot(&mut self, _barrier: &CheckpointBarrier) -> Result<OperatorState> {
        let mut per_group = snapshot_windows(&self.panes);
        // A key group that had windows keeps its fired mark in the checkpoint.
        self.emptied.retain(|g| !per_group.contains_key(g));
        for g in self.emptied.iter().chain(self.lagging.keys()) {
            per_group.entry(*g).or_default();
        }
        // Per key group: the end up to which its windows fired, and its panes.
        let mut state = OperatorState::default();
        for (kg, v) in per_group {
            let fired = match self.lagging.get(&kg) {
                Some(f) => *f,
                None => self
                    .kg_fired
                    .get(&kg)
                    .map_or(self.fired_until, |f| (*f).max(self.fired_until)),
            };
            let mut buf = Vec::new();
            (fired, v).encode(&mut buf);
            state.key_groups.insert(kg, buf);
        }
        Ok(state)
    }

    fn release(&mut self, key_groups: &BTreeSet<u16>) -> Result<bool> {
        for pane in self.panes.values_mut() {
            pane.release(key_groups);
        }
        self.kg_fired.retain(|g, _| !key_groups.contains(g));
        self.lagging.retain(|g, _| !key_groups.contains(g));
        self.emptied.retain(|g| !key_groups.contains(g));
        Ok(true)
    }

    fn end_of_input(&mut self, out: &mut Output<'_, Self::Out>) -> Result<()> {
        let lagging = std::mem::take(&mut self.lagging);
        self.take_over(lagging);
        windowing::end_of_input(self, out);
        Ok(())
    }

    fn watermark_pending(&self) -> bool {
        self.pending
    }

    fn side_outputs(&mut self) -> Vec<&mut dyn SideControl> {
        vec![&mut self.late]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::PaneWindowOperator;
    use crate::aggregate::Count;
    use crate::checkpoint::{OperatorId, TaskId};
    use crate::error::ErrorPolicy;
    use crate::operators::{Operator, OperatorInit, Output, SideOutput};
    use crate::record::Record;
    use crate::runtime::context::TaskCtx;
    use crate::state::key_group::key_group_of;
    use crate::time::clock::Clock;
    use crate::time::window::TimeDomain;

    /// A count over event-time tumbling windows of 10, and a task context.
    fn tumbling_count() -> (PaneWindowOperator<u8, u8, Count>, TaskCtx) {
        tumbling_count_of()
    }

    /// [`tumbling_count`] of records that are their own key.
    fn tumbling_count_of<K: crate::state::keyed::Key + Copy>()
    -> (PaneWindowOperator<K, K, Count>, TaskCtx) {
        let mut op: PaneWindowOperator<K, K, Count> = PaneWindowOperator::new(
            Arc::new(|k: &K| *k),
            Arc::new(Count),
            10,
            10,
            0,
            TimeDomain::EventTime,
            0,
            SideOutput::disconnected(),
        );
        op.open(&OperatorInit::new(
            OperatorId(1),
            "w".into(),
            0,
            1,
            128,
            None,
        ))
        .unwrap();
        let ctx = TaskCtx::new(
            TaskId {
                stage: 0,
                subtask: 0,
            },
            "w#0".into(),
            0,
            Clock::starting_at(0),
            ErrorPolicy::Fail,
            None,
            64,
        );
        (op, ctx)
    }

    /// A plain checkpoint barrier.
    fn barrier() -> crate::checkpoint::CheckpointBarrier {
        crate::checkpoint::CheckpointBarrier {
            id: crate::CheckpointId(1),
            timestamp: 0,
            stop: false,
            release: None,
            adopt: None,
        }
    }

    /// Takes the fired results out of `buf` as (key, window end, count).
    fn fired(buf: &mut Vec<Record<crate::Windowed<u8, u64>>>) -> Vec<(u8, i64, u64)> {
        buf.drain(..)
            .map(|r| (r.value.key, r.value.window.end, r.value.value))
            .collect()
    }

    /// Key group `kg`'s fired mark and pane count in a snapshot.
    fn mark_and_panes(state: &crate::checkpoint::OperatorState, kg: u16) -> (i64, usize) {
        let (mark, panes) =
            crate::state::codec::decode_exact::<(i64, Vec<(i64, Vec<u8>)>)>(&state.key_groups[&kg])
                .unwrap();
        (mark, panes.len())
    }

    /// Two keys of different key groups.
    fn two_groups() -> (u8, u8) {
        let a = 1u8;
        let b = (2..=255u8)
            .find(|k| key_group_of(k, 128) != key_group_of(&a, 128))
            .unwrap();
        (a, b)
    }

    #[test]
    fn a_window_of_more_keys_than_the_budget_fires_in_steps_each_key_once() {
        let (mut op, mut ctx) = tumbling_count_of::<u32>();
        let keys = 3 * super::FIRE_BUDGET as u32 + 7;
        let mut buf = Vec::new();
        let mut out = Output {
            buf: &mut buf,
            ctx: &mut ctx,
            name: "w",
        };
        let mut records: Vec<Record<u32>> = (0..keys).map(|k| Record::new(k, 1)).collect();
        records.extend((0..5).map(|k| Record::new(k, 12)));
        op.process_batch(records, &mut out).unwrap();
        let mut steps = Vec::new();
        let mut fired = std::collections::BTreeMap::new();
        for _ in 0..100 {
            op.on_watermark(100, &mut out).unwrap();
            steps.push(out.buf.len());
            for r in out.buf.drain(..) {
                let w = r.value.window.end;
                assert_eq!(r.value.value, 1, "key {} of window {w}", r.value.key);
                assert!(fired.insert((w, r.value.key), ()).is_none(), "fired twice");
            }
            if !op.watermark_pending() {
                break;
            }
        }
        assert!(!op.watermark_pending());
        assert_eq!(fired.len(), keys as usize + 5, "every key of both windows");
        assert!(steps.len() >= 3, "{steps:?}");
        // A step stops at the first key group boundary past the budget.
        let largest = *steps.iter().max().unwrap();
        assert!(
            largest < super::FIRE_BUDGET + keys as usize / 32,
            "{steps:?}"
        );
        // A later watermark fires nothing again.
        op.on_watermark(200, &mut out).unwrap();
        assert!(out.buf.is_empty());
    }

    #[test]
    fn a_released_key_group_fires_no_window() {
        let (mut op, mut ctx) = tumbling_count();
        // Two keys of different key groups, both in window [0, 10).
        let (a, b) = two_groups();
        let mut buf = Vec::new();
        let mut out = Output {
            buf: &mut buf,
            ctx: &mut ctx,
            name: "w",
        };
        let records = vec![Record::new(a, 1), Record::new(b, 2), Record::new(b, 3)];
        op.process_batch(records, &mut out).unwrap();
        let released = BTreeSet::from([key_group_of(&b, 128).0]);
        assert!(op.release(&released).unwrap());
        op.on_watermark(100, &mut out).unwrap();
        let fired: Vec<(u8, u64)> = buf.iter().map(|r| (r.value.key, r.value.value)).collect();
        assert_eq!(fired, vec![(a, 1)], "only the kept key group's window");
    }

    #[test]
    fn a_key_group_adopted_without_windows_lags_and_one_whose_windows_all_fired_keeps_its_mark() {
        let (a, b) = two_groups();
        let kg_a = key_group_of(&a, 128).0;
        let barrier = barrier();
        // Elsewhere a's only window fired and its pane was dropped: the
        // snapshot still says how far a's windows fired.
        let (mut there, mut ctx) = tumbling_count();
        let mut buf = Vec::new();
        let mut out = Output {
            buf: &mut buf,
            ctx: &mut ctx,
            name: "w",
        };
        there
            .process_batch(vec![Record::new(a, 3)], &mut out)
            .unwrap();
        there.on_watermark(15, &mut out).unwrap();
        assert_eq!(out.buf.len(), 1);
        let state = there.snapshot(&barrier).unwrap();
        assert_eq!(mark_and_panes(&state, kg_a), (10, 0));

        // Here the watermark is at 25 when a is taken on with no window
        // state: a's record at 16 is not late, and its window fires once a
        // catches up.
        let (mut here, mut ctx) = tumbling_count();
        let mut buf = Vec::new();
        let mut out = Output {
            buf: &mut buf,
            ctx: &mut ctx,
            name: "w",
        };
        here.process_batch(vec![Record::new(b, 21)], &mut out)
            .unwrap();
        here.on_watermark(25, &mut out).unwrap();
        here.key_groups_adopted(&BTreeSet::from([kg_a])).unwrap();
        here.process_batch(vec![Record::new(a, 16)], &mut out)
            .unwrap();
        here.on_watermark(27, &mut out).unwrap();
        assert!(out.buf.is_empty());
        here.on_key_group_caught_up(kg_a, &mut out).unwrap();
        assert_eq!(fired(out.buf), vec![(a, 20, 1)]);
    }

    #[test]
    fn adopted_windows_wait_for_their_partition_and_fire_once_whether_they_fired_less_or_further() {
        let (a, b) = two_groups();
        // Elsewhere, a's windows fired up to 10: [10, 20) holds two of a, not fired.
        let (mut there, mut ctx) = tumbling_count();
        let mut buf = Vec::new();
        let mut out = Output {
            buf: &mut buf,
            ctx: &mut ctx,
            name: "w",
        };
        let records = vec![Record::new(a, 1), Record::new(a, 11), Record::new(a, 12)];
        there.process_batch(records, &mut out).unwrap();
        there.on_watermark(15, &mut out).unwrap();
        assert_eq!(fired(out.buf), vec![(a, 10, 1)]);
        let barrier = barrier();
        let state = there.snapshot(&barrier).unwrap();

        // Here, b's windows fired up to 20; a's key group is adopted.
        let (mut here, mut ctx) = tumbling_count();
        let mut buf = Vec::new();
        let mut out = Output {
            buf: &mut buf,
            ctx: &mut ctx,
            name: "w",
        };
        let records = vec![Record::new(b, 1), Record::new(b, 13), Record::new(b, 25)];
        here.process_batch(records, &mut out).unwrap();
        here.on_watermark(25, &mut out).unwrap();
        assert_eq!(fired(out.buf), vec![(b, 10, 1), (b, 20, 1)]);
        assert!(here.can_adopt() && here.adopts_under_event_time());
        assert!(here.adopt(&state).unwrap());
        // a's partition is behind: its windows wait, and its records older
        // than the watermark count (a's own windows fired only up to 10).
        here.on_watermark(27, &mut out).unwrap();
        here.process_batch(vec![Record::new(a, 16), Record::new(a, 21)], &mut out)
            .unwrap();
        assert_eq!(fired(out.buf), vec![]);
        // Caught up: a's [10, 20) fires; b's does not fire again, and a's
        // [20, 30) waits for the watermark.
        here.on_key_group_caught_up(key_group_of(&a, 128).0, &mut out)
            .unwrap();
        assert_eq!(fired(out.buf), vec![(a, 20, 3)]);
        here.on_watermark(40, &mut out).unwrap();
        let mut last = fired(out.buf);
        last.sort();
        assert_eq!(last, vec![(a, 30, 1), (b, 30, 1)]);

        // The other way: the adopted key group fired further (to 20) than the
        // adopter (to 10), so its [10, 20) stays fired.
        let (mut behind, mut ctx) = tumbling_count();
        let mut buf = Vec::new();
        let mut out = Output {
            buf: &mut buf,
            ctx: &mut ctx,
            name: "w",
        };
        behind
            .process_batch(vec![Record::new(b, 12)], &mut out)
            .unwrap();
        behind.on_watermark(10, &mut out).unwrap();
        let (mut ahead, mut actx) = tumbling_count();
        let mut abuf = Vec::new();
        let mut aout = Output {
            buf: &mut abuf,
            ctx: &mut actx,
            name: "w",
        };
        ahead
            .process_batch(vec![Record::new(a, 14), Record::new(a, 22)], &mut aout)
            .unwrap();
        ahead.on_watermark(20, &mut aout).unwrap();
        assert_eq!(fired(aout.buf), vec![(a, 20, 1)]);
        let state = ahead.snapshot(&barrier).unwrap();
        assert!(behind.adopt(&state).unwrap());
        behind.on_watermark(40, &mut out).unwrap();
        assert_eq!(fired(out.buf), vec![(b, 20, 1)]);
        // A checkpoint while a lags keeps a's own mark.
        let lagging = behind.snapshot(&barrier).unwrap();
        let kg_a = key_group_of(&a, 128).0;
        assert_eq!(mark_and_panes(&lagging, kg_a).0, 20);
        behind.on_key_group_caught_up(kg_a, &mut out).unwrap();
        assert_eq!(fired(out.buf), vec![(a, 30, 1)]);
    }
}
