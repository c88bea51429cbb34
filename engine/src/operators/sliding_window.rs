//! Sliding windows without allowed lateness, organised per key so that firing costs
//! O(1) amortised per key and window instead of O(size / slide).
//!
//! Each key keeps its complete panes in a FIFO with the two-stack aggregation trick:
//! the back stack holds the newest panes and their running aggregate, the front
//! stack holds the oldest panes, each with the aggregate of itself and every newer
//! pane in the front. A window result is `front.top.agg ⊕ back_agg`; sliding by one
//! pane pushes the newest pane to the back and pops the oldest from the front
//! (refilling the front from the back when it runs empty, so every pane is merged a
//! constant number of times over its life).
//!
//! ```text
//! record -> key -> open pane (usually the newest one) .add(value)     O(1)
//! window end e fires -> for every key: complete panes <= e enter the back,
//!                       panes <= e - size leave the front,
//!                       emit front.top.agg ⊕ back_agg                    O(1) amortised
//! ```
//!
//! Allowed lateness needs windows that already left the FIFO, so sliding windows with
//! allowed lateness use [`crate::operators::pane_window`] instead.

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics::Counter;

use crate::aggregate::AggregateFunction;
use crate::checkpoint::{CheckpointBarrier, OperatorState};
use crate::error::Result;
use crate::operators::pane_window::{KeyFn, Windowed};
use crate::operators::{Operator, OperatorInit, Output, SideControl, SideOutput};
use crate::record::{NO_TIMESTAMP, Record};
use crate::state::codec::{StateCodec, decode_exact, encode_to_vec};
use crate::state::keyed::{Key, KeyGroupedMap};
use crate::time::window::{Panes, TimeDomain, TimeWindow};

/// The panes of one key.
#[derive(Clone, Debug)]
pub struct KeyPanes<Acc> {
    /// Panes the watermark has not passed yet, sorted by end.
    open: Vec<(i64, Acc)>,
    /// Oldest complete panes; last = oldest. `(end, pane, aggregate of it and all newer in front)`.
    front: Vec<(i64, Acc, Acc)>,
    /// Newest complete panes, oldest first.
    back: Vec<(i64, Acc)>,
    back_agg: Option<Acc>,
}

impl<Acc> Default for KeyPanes<Acc> {
    fn default() -> Self {
        KeyPanes {
            open: Vec::new(),
            front: Vec::new(),
            back: Vec::new(),
            back_agg: None,
        }
    }
}

impl<Acc: Clone> KeyPanes<Acc> {
    fn is_empty(&self) -> bool {
        self.open.is_empty() && self.front.is_empty() && self.back.is_empty()
    }

    /// All panes, oldest first.
    fn all(&self) -> Vec<(i64, Acc)> {
        let mut v: Vec<(i64, Acc)> = self
            .front
            .iter()
            .rev()
            .map(|(e, a, _)| (*e, a.clone()))
            .collect();
        v.extend(self.back.iter().cloned());
        v.extend(self.open.iter().cloned());
        v
    }

    fn flip<T, A: AggregateFunction<T, Acc = Acc>>(&mut self, agg: &A) {
        // Newest first, so each pushed entry aggregates itself and all newer ones.
        let mut running: Option<Acc> = None;
        let back = std::mem::take(&mut self.back);
        for (end, acc) in back.into_iter().rev() {
            let total = match &running {
                Some(newer) => {
                    let mut t = acc.clone();
                    agg.merge(&mut t, newer);
                    t
                }
                None => acc.clone(),
            };
            running = Some(total.clone());
            self.front.push((end, acc, total));
        }
        self.back_agg = None;
    }
}

impl<Acc: StateCodec + Clone> StateCodec for KeyPanes<Acc> {
    fn encode(&self, buf: &mut Vec<u8>) {
        self.all().encode(buf)
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        // Restored panes start open; the next firing moves them into the FIFO in order.
        Ok(KeyPanes {
            open: Vec::decode(buf)?,
            ..KeyPanes::default()
        })
    }
}

/// Sliding window operator with per-key two-stack aggregation (see module docs).
pub struct SlidingWindowOperator<K, T, A: AggregateFunction<T>> {
    key_fn: KeyFn<K, T>,
    agg: Arc<A>,
    geo: Panes,
    domain: TimeDomain,
    state: Option<KeyGroupedMap<K, KeyPanes<A::Acc>>>,
    /// Number of keys holding a pane, per pane end (to skip empty stretches of time).
    pane_ends: BTreeMap<i64, usize>,
    fired_until: i64,
    progress: i64,
    late: SideOutput<T>,
    late_dropped: Option<Counter>,
    subtask: usize,
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
            agg,
            geo: Panes::new(size, slide, offset),
            domain,
            state: None,
            pane_ends: BTreeMap::new(),
            fired_until: i64::MIN,
            progress: i64::MIN,
            late,
            late_dropped: None,
            subtask: 0,
        }
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
        }
        let key = (self.key_fn)(&r.value);
        let Some(state) = self.state.as_mut() else {
            return Ok(());
        };
        let kg = state.key_group(&key);
        let group = state.group_mut(kg);
        let panes = match group.get_mut(&key) {
            Some(p) => p,
            None => group.entry(key).or_default(),
        };
        if let Some((_, acc)) = panes.open.iter_mut().find(|(e, _)| *e == pane_end) {
            self.agg.add(acc, &r.value);
            return Ok(());
        }
        if pane_end - 1 <= self.progress {
            // The pane is complete (in the FIFO): a record behind the watermark that
            // still belongs to unfired windows. Rare: update and rebuild this key.
            let mut all = panes.all();
            match all.iter_mut().find(|(e, _)| *e == pane_end) {
                Some((_, acc)) => self.agg.add(acc, &r.value),
                None => {
                    let mut acc = self.agg.create();
                    self.agg.add(&mut acc, &r.value);
                    all.push((pane_end, acc));
                    all.sort_by_key(|(e, _)| *e);
                    *self.pane_ends.entry(pane_end).or_default() += 1;
                }
            }
            let (done, open): (Vec<_>, Vec<_>) =
                all.into_iter().partition(|(e, _)| e - 1 <= self.progress);
            *panes = KeyPanes {
                open,
                back: done,
                ..KeyPanes::default()
            };
            let mut back_agg: Option<A::Acc> = None;
            for (_, a) in &panes.back {
                match &mut back_agg {
                    Some(b) => self.agg.merge(b, a),
                    None => back_agg = Some(a.clone()),
                }
            }
            panes.back_agg = back_agg;
            return Ok(());
        }
        let mut acc = self.agg.create();
        self.agg.add(&mut acc, &r.value);
        panes.open.push((pane_end, acc));
        panes.open.sort_by_key(|(e, _)| *e);
        *self.pane_ends.entry(pane_end).or_default() += 1;
        Ok(())
    }

    fn fire(&mut self, end: i64, out: &mut Output<'_, Windowed<K, A::Out>>) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let agg = &*self.agg;
        let window = TimeWindow {
            start: end - self.geo.size,
            end,
        };
        let ts = window.max_timestamp();
        let evict_until = end - self.geo.size;
        let pane_ends = &mut self.pane_ends;
        state.retain(|key, p| {
            // Complete panes enter the FIFO in order.
            while p.open.first().is_some_and(|(e, _)| *e <= end) {
                let (e, acc) = p.open.remove(0);
                match &mut p.back_agg {
                    Some(b) => agg.merge(b, &acc),
                    None => p.back_agg = Some(acc.clone()),
                }
                p.back.push((e, acc));
            }
            // Panes that left the window leave the FIFO.
            loop {
                if p.front.is_empty() {
                    if p.back.first().is_none_or(|(e, _)| *e > evict_until) {
                        break;
                    }
                    p.flip(agg);
                }
                match p.front.last() {
                    Some((e, _, _)) if *e <= evict_until => {
                        let e = *e;
                        p.front.pop();
                        if let Some(c) = pane_ends.get_mut(&e) {
                            *c -= 1;
                            if *c == 0 {
                                pane_ends.remove(&e);
                            }
                        }
                    }
                    _ => break,
                }
            }
            let result = match (p.front.last(), &p.back_agg) {
                (Some((_, _, f)), Some(b)) => {
                    let mut r = f.clone();
                    agg.merge(&mut r, b);
                    Some(r)
                }
                (Some((_, _, f)), None) => Some(f.clone()),
                (None, Some(b)) => Some(b.clone()),
                (None, None) => None,
            };
            if let Some(acc) = result {
                out.emit(Record::new(
                    Windowed {
                        key: key.clone(),
                        window,
                        value: agg.result(&acc),
                    },
                    ts,
                ));
            }
            !p.is_empty()
        });
    }

    fn advance(&mut self, progress: i64, out: &mut Output<'_, Windowed<K, A::Out>>) {
        if progress <= self.progress {
            return;
        }
        self.progress = progress;
        let limit = progress.saturating_add(1);
        if let Some((&first, _)) = self.pane_ends.first_key_value() {
            let mut e = self.geo.window_end_at_or_after(first);
            if self.fired_until != i64::MIN {
                e = e.max(self.fired_until.saturating_add(self.geo.slide));
            }
            while e <= limit {
                let has = self
                    .pane_ends
                    .range(e - self.geo.size + 1..=e)
                    .next()
                    .is_some();
                if has {
                    self.fire(e, out);
                }
                if e == i64::MAX {
                    break;
                }
                if has {
                    e = e.saturating_add(self.geo.slide);
                } else {
                    match self.pane_ends.range(e + 1..).next() {
                        Some((&next, _)) => e = self.geo.window_end_at_or_after(next),
                        None => break,
                    }
                }
            }
        }
        let r = (limit - self.geo.offset).rem_euclid(self.geo.slide);
        self.fired_until = self.fired_until.max(limit - r);
    }

    fn request_timer(&self, out: &mut Output<'_, Windowed<K, A::Out>>) {
        if let Some((&first, _)) = self.pane_ends.first_key_value() {
            let mut e = self.geo.window_end_at_or_after(first);
            if self.fired_until != i64::MIN {
                e = e.max(self.fired_until.saturating_add(self.geo.slide));
            }
            out.request_processing_timer(e);
        }
    }
}

impl<K: Key, T: Send + 'static, A: AggregateFunction<T>> Operator<T>
    for SlidingWindowOperator<K, T, A>
{
    type Out = Windowed<K, A::Out>;

    fn open(&mut self, init: &OperatorInit) -> Result<()> {
        self.subtask = init.subtask;
        self.late_dropped = Some(metrics::counter!(
            "strom_late_records_dropped_total",
            "operator" => init.name.to_string()
        ));
        let mut map: KeyGroupedMap<K, KeyPanes<A::Acc>> =
            KeyGroupedMap::new(init.key_groups, init.max_parallelism);
        if let Some(s) = &init.restored {
            for bytes in s.key_groups.values() {
                map.restore_group(bytes)?;
            }
            for (_, p) in map.iter() {
                for (e, _) in &p.open {
                    *self.pane_ends.entry(*e).or_default() += 1;
                }
            }
            if let Some(f) = s
                .entries
                .values()
                .filter_map(|b| decode_exact::<i64>(b).ok())
                .min()
            {
                self.fired_until = f;
            }
        }
        self.state = Some(map);
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<Record<T>>,
        out: &mut Output<'_, Self::Out>,
    ) -> Result<()> {
        let processing = self.domain == TimeDomain::ProcessingTime;
        let now = if processing { out.processing_time() } else { 0 };
        for mut r in batch {
            if processing {
                r.timestamp = now;
            } else if r.timestamp == NO_TIMESTAMP {
                out.fail(
                    r.position,
                    r.timestamp,
                    "record has no event timestamp (set one in the WatermarkStrategy)",
                )?;
                continue;
            }
            self.add(r, out)?;
        }
        if processing {
            self.request_timer(out);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, Self::Out>) -> Result<()> {
        if self.domain == TimeDomain::EventTime {
            self.advance(watermark, out);
        }
        Ok(())
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Output<'_, Self::Out>) -> Result<()> {
        if self.domain == TimeDomain::ProcessingTime {
            self.advance(now - 1, out);
            self.request_timer(out);
        }
        Ok(())
    }

    fn snapshot(&mut self, _barrier: &CheckpointBarrier) -> Result<OperatorState> {
        let mut state = OperatorState {
            key_groups: self
                .state
                .as_ref()
                .map(|m| m.snapshot())
                .unwrap_or_default(),
            entries: Default::default(),
        };
        state
            .entries
            .insert(self.subtask as u32, encode_to_vec(&self.fired_until));
        Ok(state)
    }

    fn end_of_input(&mut self, out: &mut Output<'_, Self::Out>) -> Result<()> {
        self.advance(i64::MAX - 1, out);
        Ok(())
    }

    fn side_outputs(&mut self) -> Vec<&mut dyn SideControl> {
        vec![&mut self.late]
    }
}
