//! Sliding windows without allowed lateness: pane-based, and organised per key once
//! panes are complete, so that firing costs O(1) amortised per key and window
//! instead of O(size / slide).
//!
//! Records update the accumulator of their (pane, key) in a pane-major map, exactly
//! like a tumbling window (one hash lookup per record). When the watermark passes a
//! pane's end, its accumulators move into per-key FIFOs that use the two-stack
//! aggregation trick:
//! the back stack holds the newest panes and their running aggregate, the front
//! stack holds the oldest panes, each with the aggregate of itself and every newer
//! pane in the front. A window result is `front.top.agg ⊕ back_agg`; sliding by one
//! pane pushes the newest pane to the back and pops the oldest from the front
//! (refilling the front from the back when it runs empty, so every pane is merged a
//! constant number of times over its life).
//!
//! ```text
//! record -> open[pane_end][key].add(value)                            O(1)
//! window end e fires -> open panes <= e move into their keys' FIFO backs
//!                       for every key: panes <= e - size leave the front,
//!                       emit front.top.agg ⊕ back_agg                    O(1) amortised
//! ```
//!
//! Invertible aggregates (count, integer sum and average) skip the FIFO: each key
//! keeps one running accumulator; a firing merges the entering pane into it and
//! retracts the leaving pane, walking the two pane maps sequentially, which is the
//! cheapest layout for memory and caches.
//!
//! Allowed lateness needs windows that already left the FIFO, so sliding windows with
//! allowed lateness use [`crate::operators::pane_window`] instead.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use metrics::Counter;

use crate::aggregate::AggregateFunction;
use crate::checkpoint::{CheckpointBarrier, OperatorState};
use crate::error::Result;
use crate::operators::pane_window::{KeyFn, Windowed};
use crate::operators::windowing::{
    self, FireWindows, MISSING_TIMESTAMP, PaneStore, begin_advance, fire_due, for_each_timed,
    key_grouped_map, late_dropped_counter, restore_windows, snapshot_windows,
};
use crate::operators::{Operator, OperatorInit, Output, SideControl, SideOutput};
use crate::record::Record;
use crate::state::codec::{decode_exact, encode_to_vec};
use crate::state::keyed::{Key, KeyGroupedMap};
use crate::time::window::{Panes, TimeDomain, TimeWindow};

/// The complete panes of one key, as a two-stack FIFO kept in one ring buffer:
/// entries `[0, front_len)` form the front stack (entry `i` carries the aggregate of
/// itself and all newer front entries), the rest form the back stack (whose running
/// aggregate is `back_agg`). One allocation per key keeps memory and cache misses low.
#[derive(Clone, Debug)]
pub struct KeyFifo<Acc> {
    /// `(pane end, pane accumulator, front aggregate)`, oldest first.
    q: VecDeque<(i64, Acc, Acc)>,
    front_len: usize,
    back_agg: Option<Acc>,
}

impl<Acc> Default for KeyFifo<Acc> {
    fn default() -> Self {
        KeyFifo {
            q: VecDeque::new(),
            front_len: 0,
            back_agg: None,
        }
    }
}

impl<Acc: Clone> KeyFifo<Acc> {
    fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// All panes, oldest first.
    fn all(&self) -> Vec<(i64, Acc)> {
        self.q.iter().map(|(e, a, _)| (*e, a.clone())).collect()
    }

    fn push<T, A: AggregateFunction<T, Acc = Acc>>(&mut self, end: i64, acc: Acc, agg: &A) {
        match &mut self.back_agg {
            Some(b) => agg.merge(b, &acc),
            None => self.back_agg = Some(acc.clone()),
        }
        // The third slot only means something once the entry is in the front stack.
        self.q.push_back((end, acc.clone(), acc));
    }

    fn flip<T, A: AggregateFunction<T, Acc = Acc>>(&mut self, agg: &A) {
        // Newest first, so each entry aggregates itself and all newer ones.
        let mut running: Option<Acc> = None;
        for (_, acc, total) in self.q.iter_mut().rev() {
            let mut t = acc.clone();
            if let Some(newer) = &running {
                agg.merge(&mut t, newer);
            }
            running = Some(t.clone());
            *total = t;
        }
        self.front_len = self.q.len();
        self.back_agg = None;
    }

    /// Drops panes ending at or before `until`.
    fn evict<T, A: AggregateFunction<T, Acc = Acc>>(&mut self, until: i64, agg: &A) {
        while self.q.front().is_some_and(|(e, _, _)| *e <= until) {
            if self.front_len == 0 {
                self.flip(agg);
            }
            self.q.pop_front();
            self.front_len -= 1;
        }
    }

    /// Aggregate of every pane in the FIFO.
    fn query<T, A: AggregateFunction<T, Acc = Acc>>(&self, agg: &A) -> Option<Acc> {
        let front = if self.front_len > 0 {
            self.q.front().map(|(_, _, f)| f)
        } else {
            None
        };
        match (front, &self.back_agg) {
            (Some(f), Some(b)) => {
                let mut r = f.clone();
                agg.merge(&mut r, b);
                Some(r)
            }
            (Some(f), None) => Some(f.clone()),
            (None, Some(b)) => Some(b.clone()),
            (None, None) => None,
        }
    }
}

/// Sliding window operator (see module docs).
pub struct SlidingWindowOperator<K, T, A: AggregateFunction<T>> {
    key_fn: KeyFn<K, T>,
    agg: Arc<A>,
    geo: Panes,
    domain: TimeDomain,
    /// Panes the watermark has not passed, pane-major.
    open: BTreeMap<i64, KeyGroupedMap<K, A::Acc>>,
    /// Complete panes, key-major.
    fifo: Option<KeyGroupedMap<K, KeyFifo<A::Acc>>>,
    /// Ends of complete panes some key still holds (to skip empty stretches of time).
    fifo_ends: BTreeMap<i64, ()>,
    /// Size of the last completed pane: new panes are pre-sized to it.
    last_pane_len: usize,
    /// Invertible aggregates (count, integer sums): one running accumulator per key
    /// and the number of panes contributing to it; panes stay pane-major.
    invertible: bool,
    running: Option<KeyGroupedMap<K, (A::Acc, u32)>>,
    /// Panes merged into `running` and not yet retracted (invertible mode).
    included: BTreeMap<i64, KeyGroupedMap<K, A::Acc>>,
    /// Newest pane end merged into `running`.
    included_upto: i64,
    fired_until: i64,
    progress: i64,
    /// `advance` stopped after [`FIRE_BUDGET`] results; more windows are due.
    pending: bool,
    late: SideOutput<T>,
    late_dropped: Option<Counter>,
    init: Option<OperatorInit>,
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> SlidingWindowOperator<K, T, A> {
    pub(crate) fn new(
        key_fn: KeyFn<K, T>,
        agg: Arc<A>,
        size: i64,
        slide: i64,
        offset: i64,
        domain: TimeDomain,
        late: SideOutput<T>,
    ) -> Self {
        SlidingWindowOperator {
            key_fn,
            invertible: agg.invertible(),
            agg,
            geo: Panes::new(size, slide, offset),
            domain,
            open: BTreeMap::new(),
            fifo: None,
            fifo_ends: BTreeMap::new(),
            last_pane_len: 0,
            running: None,
            included: BTreeMap::new(),
            included_upto: i64::MIN,
            fired_until: i64::MIN,
            progress: i64::MIN,
            pending: false,
            late,
            late_dropped: None,
            init: None,
        }
    }

    fn new_map<V>(&self) -> KeyGroupedMap<K, V> {
        key_grouped_map(self.init.as_ref())
    }

    fn add(&mut self, r: Record<T>, out: &mut Output<'_, Windowed<K, A::Out>>) -> Result<()> {
        let pane_end = self.geo.pane_end(r.timestamp);
        if pane_end - 1 <= self.progress {
            let last = self.geo.last_window_end_for_pane(pane_end);
            if last - 1 <= self.progress {
                if let Some(c) = &self.late_dropped {
                    c.increment(1);
                }
                return self.late.emit(r, out.ctx);
            }
            if !self.invertible && pane_end <= self.fired_until {
                return self.add_to_complete_pane(r, pane_end);
            }
        }
        let key = (self.key_fn)(&r.value);
        // Behind the watermark but in windows not fired yet, with a running aggregate
        // that already includes this pane: update both.
        let late_key = (self.invertible && pane_end <= self.included_upto).then(|| key.clone());
        let (range, max, grouper) = self
            .init
            .as_ref()
            .map_or((crate::KeyGroupRange { start: 0, end: 1 }, 1, None), |i| {
                (i.key_groups, i.max_parallelism, i.grouper::<K>())
            });
        let hint = self.last_pane_len;
        let target = if late_key.is_some() {
            &mut self.included
        } else {
            &mut self.open
        };
        let pane = target.entry(pane_end).or_insert_with(|| {
            let mut m = KeyGroupedMap::with_grouper(range, max, grouper);
            m.reserve_total(hint);
            m
        });
        let kg = pane.key_group(&key);
        let group = pane.group_mut(kg);
        let new_entry = match group.get_mut(&key) {
            Some(acc) => {
                self.agg.add(acc, &r.value);
                false
            }
            None => {
                let mut acc = self.agg.create();
                self.agg.add(&mut acc, &r.value);
                group.insert(key, acc);
                true
            }
        };
        if let (Some(k), Some(running)) = (late_key, self.running.as_mut()) {
            let kg = running.key_group(&k);
            let e = running
                .group_mut(kg)
                .entry(k)
                .or_insert_with(|| (self.agg.create(), 0));
            self.agg.add(&mut e.0, &r.value);
            if new_entry {
                e.1 += 1;
            }
        }
        Ok(())
    }

    /// Firing for invertible aggregates: merge entering panes into the running
    /// accumulators, retract leaving panes, emit one result per key.
    fn fire_invertible(&mut self, end: i64, out: &mut Output<'_, Windowed<K, A::Out>>) -> usize {
        if self.running.is_none() {
            let m = self.new_map();
            self.running = Some(m);
        }
        let Some(running) = self.running.as_mut() else {
            return 0;
        };
        let agg = &*self.agg;
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() > end {
                break;
            }
            let (pane_end, pane) = entry.remove_entry();
            self.last_pane_len = pane.len();
            for (k, acc) in pane.iter() {
                let kg = running.key_group(k);
                let g = running.group_mut(kg);
                match g.get_mut(k) {
                    Some(e) => {
                        agg.merge(&mut e.0, acc);
                        e.1 += 1;
                    }
                    None => {
                        g.insert(k.clone(), (acc.clone(), 1));
                    }
                }
            }
            self.included.insert(pane_end, pane);
        }
        self.included_upto = self.included_upto.max(end);
        let evict_until = end - self.geo.size;
        while let Some(entry) = self.included.first_entry() {
            if *entry.key() > evict_until {
                break;
            }
            let (_, pane) = entry.remove_entry();
            for (k, acc) in pane.into_groups() {
                let kg = running.key_group(&k);
                let g = running.group_mut(kg);
                let empty = match g.get_mut(&k) {
                    Some(e) => {
                        agg.retract(&mut e.0, &acc);
                        e.1 = e.1.saturating_sub(1);
                        e.1 == 0
                    }
                    None => false,
                };
                if empty {
                    g.remove(&k);
                }
            }
        }
        let window = TimeWindow {
            start: end - self.geo.size,
            end,
        };
        let ts = window.max_timestamp();
        for (k, (acc, _)) in running.iter() {
            out.emit(Record::new(
                Windowed {
                    key: k.clone(),
                    window,
                    value: agg.result(acc),
                },
                ts,
            ));
        }
        running.len()
    }

    /// A record behind the watermark whose pane already moved into the FIFO but
    /// still belongs to windows that have not fired. Rare: rebuild that key's FIFO.
    fn add_to_complete_pane(&mut self, r: Record<T>, pane_end: i64) -> Result<()> {
        let key = (self.key_fn)(&r.value);
        let agg = &*self.agg;
        let Some(fifo) = self.fifo.as_mut() else {
            return Ok(());
        };
        let mut all = fifo.get(&key).map(|f| f.all()).unwrap_or_default();
        match all.iter_mut().find(|(e, _)| *e == pane_end) {
            Some((_, acc)) => agg.add(acc, &r.value),
            None => {
                let mut acc = agg.create();
                agg.add(&mut acc, &r.value);
                all.push((pane_end, acc));
                all.sort_by_key(|(e, _)| *e);
                self.fifo_ends.insert(pane_end, ());
            }
        }
        let mut rebuilt = KeyFifo::default();
        for (e, acc) in all {
            rebuilt.push(e, acc, agg);
        }
        fifo.insert(key, rebuilt);
        Ok(())
    }

    fn fire(&mut self, end: i64, out: &mut Output<'_, Windowed<K, A::Out>>) -> usize {
        if self.invertible {
            return self.fire_invertible(end, out);
        }
        if self.fifo.is_none() {
            let m = self.new_map();
            self.fifo = Some(m);
        }
        let Some(fifo) = self.fifo.as_mut() else {
            return 0;
        };
        let agg = &*self.agg;
        // Complete panes move into their keys' FIFOs, oldest first.
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() > end {
                break;
            }
            let (pane_end, pane) = entry.remove_entry();
            self.last_pane_len = pane.len();
            self.fifo_ends.insert(pane_end, ());
            for (k, acc) in pane.into_groups() {
                let kg = fifo.key_group(&k);
                let g = fifo.group_mut(kg);
                match g.get_mut(&k) {
                    Some(f) => f.push(pane_end, acc, agg),
                    None => {
                        let mut f = KeyFifo::default();
                        f.push(pane_end, acc, agg);
                        g.insert(k, f);
                    }
                }
            }
        }
        let window = TimeWindow {
            start: end - self.geo.size,
            end,
        };
        let ts = window.max_timestamp();
        let evict_until = end - self.geo.size;
        let n = fifo.len();
        fifo.retain(|key, f| {
            f.evict(evict_until, agg);
            if let Some(acc) = f.query(agg) {
                out.emit(Record::new(
                    Windowed {
                        key: key.clone(),
                        window,
                        value: agg.result(&acc),
                    },
                    ts,
                ));
            }
            !f.is_empty()
        });
        // Every FIFO dropped its panes ending at or before `evict_until`.
        while self
            .fifo_ends
            .first_key_value()
            .is_some_and(|(e, _)| *e <= evict_until)
        {
            self.fifo_ends.pop_first();
        }
        n
    }
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> PaneStore<Windowed<K, A::Out>>
    for SlidingWindowOperator<K, T, A>
{
    fn geo(&self) -> Panes {
        self.geo
    }

    fn has_data_in(&self, e: i64) -> bool {
        let lo = e - self.geo.size + 1;
        self.open.range(lo..=e).next().is_some()
            || self.included.range(lo..=e).next().is_some()
            || self.fifo_ends.range(lo..=e).next().is_some()
    }

    fn next_pane_after(&self, e: i64) -> Option<i64> {
        let a = self.open.range(e + 1..).next().map(|(k, _)| *k);
        let b = self.fifo_ends.range(e + 1..).next().map(|(k, _)| *k);
        let c = self.included.range(e + 1..).next().map(|(k, _)| *k);
        [a, b, c].into_iter().flatten().min()
    }

    fn first_pane(&self) -> Option<i64> {
        let a = self.open.first_key_value().map(|(k, _)| *k);
        let b = self.fifo_ends.first_key_value().map(|(k, _)| *k);
        let c = self.included.first_key_value().map(|(k, _)| *k);
        [a, b, c].into_iter().flatten().min()
    }

    fn fire_at(
        &mut self,
        end: i64,
        _budget: usize,
        out: &mut Output<'_, Windowed<K, A::Out>>,
    ) -> (usize, bool) {
        (self.fire(end, out), true)
    }

    fn fired_until(&mut self) -> &mut i64 {
        &mut self.fired_until
    }
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> FireWindows<Windowed<K, A::Out>>
    for SlidingWindowOperator<K, T, A>
{
    fn domain(&self) -> TimeDomain {
        self.domain
    }

    fn advance(&mut self, progress: i64, out: &mut Output<'_, Windowed<K, A::Out>>) {
        if begin_advance(&mut self.progress, &mut self.pending, progress) {
            self.pending = !fire_due(self, progress, out);
        }
    }

    fn pending(&self) -> bool {
        self.pending
    }

    fn request_timer(&self, out: &mut Output<'_, Windowed<K, A::Out>>) {
        if let Some(first) = self.first_pane() {
            out.request_processing_timer(self.geo.next_window_end(first, self.fired_until));
        }
    }
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> Operator<T>
    for SlidingWindowOperator<K, T, A>
{
    type Out = Windowed<K, A::Out>;

    fn open(&mut self, init: &OperatorInit) -> Result<()> {
        self.late_dropped = Some(late_dropped_counter(init));
        self.init = Some(init.clone());
        if let Some(state) = &init.restored {
            // Every restored pane starts open (pane-major); the first firing moves the
            // complete ones into the FIFOs in order.
            for bytes in state.key_groups.values() {
                let panes = decode_exact::<Vec<(i64, Vec<u8>)>>(bytes)?;
                restore_windows(&mut self.open, init, panes)?;
            }
            if let Some(f) = state
                .entries
                .values()
                .filter_map(|b| decode_exact::<i64>(b).ok())
                .min()
            {
                self.fired_until = f;
            }
        }
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<Record<T>>,
        out: &mut Output<'_, Self::Out>,
    ) -> Result<()> {
        for_each_timed(self.domain, batch, out, MISSING_TIMESTAMP, |r, out| {
            self.add(r, out)
        })?;
        if self.domain == TimeDomain::ProcessingTime {
            self.request_timer(out);
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
        // Pane-major like the pane window operator: per key group, (pane end, entries).
        let mut panes: BTreeMap<i64, KeyGroupedMap<K, A::Acc>> = BTreeMap::new();
        for (end, pane) in self.open.iter().chain(self.included.iter()) {
            let m = panes.entry(*end).or_insert_with(|| self.new_map());
            for (k, a) in pane.iter() {
                m.insert(k.clone(), a.clone());
            }
        }
        if let Some(fifo) = &self.fifo {
            for (k, f) in fifo.iter() {
                for (end, a) in f.all() {
                    panes
                        .entry(end)
                        .or_insert_with(|| self.new_map())
                        .insert(k.clone(), a);
                }
            }
        }
        let per_group = snapshot_windows(&panes);
        let mut state = OperatorState::default();
        for (kg, v) in per_group {
            state.key_groups.insert(kg, encode_to_vec(&v));
        }
        let subtask = self.init.as_ref().map_or(0, |i| i.subtask as u32);
        state
            .entries
            .insert(subtask, encode_to_vec(&self.fired_until));
        Ok(state)
    }

    fn release(&mut self, key_groups: &std::collections::BTreeSet<u16>) -> Result<bool> {
        for pane in self.open.values_mut().chain(self.included.values_mut()) {
            pane.release(key_groups);
        }
        for m in [&mut self.fifo].into_iter().flatten() {
            m.release(key_groups);
        }
        if let Some(m) = &mut self.running {
            m.release(key_groups);
        }
        Ok(true)
    }

    fn end_of_input(&mut self, out: &mut Output<'_, Self::Out>) -> Result<()> {
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
