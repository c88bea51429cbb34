//! What the time-window operators (pane, sliding, session) share: the counter of
//! late records they drop (the interval join counts its own there too), stamping
//! each record with the time it is windowed by, firing due windows over panes,
//! and the key-grouped maps per window that their checkpoints hold.

use std::collections::BTreeMap;

use metrics::Counter;

use crate::error::Result;
use crate::operators::pane_window::FIRE_BUDGET;
use crate::operators::{OperatorInit, Output};
use crate::record::{NO_TIMESTAMP, Record};
use crate::state::codec::StateCodec;
use crate::state::keyed::{Key, KeyGroupedMap};
use crate::time::window::{Panes, TimeDomain};

/// Why a record without an event timestamp fails in an event-time window.
pub(crate) const MISSING_TIMESTAMP: &str =
    "record has no event timestamp (set one in the WatermarkStrategy)";

/// `strom_late_records_dropped_total` of one operator.
pub(crate) fn late_dropped_counter(init: &OperatorInit) -> Counter {
    metrics::counter!(
        "strom_late_records_dropped_total",
        "operator" => init.name.to_string()
    )
}

/// An empty map for the subtask's key groups; before `open` (no `init`), one
/// key group of one.
pub(crate) fn key_grouped_map<K: Key, V>(init: Option<&OperatorInit>) -> KeyGroupedMap<K, V> {
    match init {
        Some(i) => KeyGroupedMap::for_init(i),
        None => KeyGroupedMap::new(crate::KeyGroupRange { start: 0, end: 1 }, 1),
    }
}

/// Hands each record of `batch` to `each` with the time it is windowed by: now,
/// under processing time; its event timestamp otherwise, failing (per the error
/// policy) a record that has none with `missing` as the reason.
pub(crate) fn for_each_timed<T, O>(
    domain: TimeDomain,
    batch: Vec<Record<T>>,
    out: &mut Output<'_, O>,
    missing: &str,
    mut each: impl FnMut(Record<T>, &mut Output<'_, O>) -> Result<()>,
) -> Result<()> {
    let processing = domain == TimeDomain::ProcessingTime;
    let now = if processing { out.processing_time() } else { 0 };
    for mut r in batch {
        if processing {
            r.timestamp = now;
        } else if r.timestamp == NO_TIMESTAMP {
            out.fail(r.position, r.timestamp, missing)?;
            continue;
        }
        each(r, out)?;
    }
    Ok(())
}

/// Restores one key group's part of per-window maps (`(window end, group
/// bytes)` pairs, as the snapshot wrote them), creating the maps of windows not
/// seen yet.
pub(crate) fn restore_windows<K: Key, V: StateCodec>(
    windows: &mut BTreeMap<i64, KeyGroupedMap<K, V>>,
    init: &OperatorInit,
    parts: Vec<(i64, Vec<u8>)>,
) -> Result<()> {
    for (end, group) in parts {
        windows
            .entry(end)
            .or_insert_with(|| KeyGroupedMap::for_init(init))
            .restore_group(&group)?;
    }
    Ok(())
}

/// The firing half of a time-window operator, which [`on_watermark`],
/// [`on_processing_time`] and [`end_of_input`] drive the same way for each.
pub(crate) trait FireWindows<O> {
    /// The time the windows are defined in.
    fn domain(&self) -> TimeDomain;
    /// Fires (a bounded number of) the windows that end at or before `progress`.
    fn advance(&mut self, progress: i64, out: &mut Output<'_, O>);
    /// Whether [`FireWindows::advance`] left windows up to its progress unfired.
    fn pending(&self) -> bool {
        false
    }
    /// Asks for the processing-time timer of the next window to fire.
    fn request_timer(&self, out: &mut Output<'_, O>);
}

/// A pane-based window operator (pane, sliding) as [`fire_due`] walks it: where
/// its panes are, and how it fires one window.
pub(crate) trait PaneStore<O> {
    /// The pane geometry.
    fn geo(&self) -> Panes;
    /// The end of the first pane held, if any.
    fn first_pane(&self) -> Option<i64>;
    /// Whether the window ending at `end` holds any pane.
    fn has_data_in(&self, end: i64) -> bool;
    /// The end of the first pane held after `end`, if any.
    fn next_pane_after(&self, end: i64) -> Option<i64>;
    /// Fires the window ending at `end`, or as much of it as about `budget`
    /// results allow: how many results it sent, and whether the window fired
    /// whole (else the next call for `end` goes on where this one stopped).
    fn fire_at(&mut self, end: i64, budget: usize, out: &mut Output<'_, O>) -> (usize, bool);
    /// The end of the last window fired (every window ending at or before it has).
    fn fired_until(&mut self) -> &mut i64;
}

/// Whether an `advance` to `progress` has anything to do: the progress moved on,
/// or the last call stopped at the budget. If so, records `progress` in `last`
/// and clears `pending`.
pub(crate) fn begin_advance(last: &mut i64, pending: &mut bool, progress: i64) -> bool {
    if progress < *last || (progress == *last && !*pending) {
        return false;
    }
    *last = progress;
    *pending = false;
    true
}

/// Fires, in end order, each window that ends at or before `progress + 1`, ends
/// after the last one fired and holds a pane, skipping the empty stretches
/// between panes. Stops after about [`FIRE_BUDGET`] results, between windows or
/// inside one, and returns false (call again with the same progress: it goes on
/// where it stopped); once all fired, moves the fired mark to the last window end
/// at or before `progress + 1` and returns true.
pub(crate) fn fire_due<O>(
    op: &mut impl PaneStore<O>,
    progress: i64,
    out: &mut Output<'_, O>,
) -> bool {
    let geo = op.geo();
    let limit = progress.saturating_add(1);
    let mut emitted = 0;
    if let Some(first) = op.first_pane() {
        let mut e = geo.next_window_end(first, *op.fired_until());
        while e <= limit {
            let has = op.has_data_in(e);
            if has {
                if emitted >= FIRE_BUDGET {
                    // Let the task send what we have; it calls again with `progress`.
                    return false;
                }
                let (n, whole) = op.fire_at(e, FIRE_BUDGET - emitted, out);
                emitted += n;
                if !whole {
                    return false;
                }
                let fired = op.fired_until();
                *fired = (*fired).max(e);
            }
            if e == i64::MAX {
                break;
            }
            if has {
                e = e.saturating_add(geo.slide);
            } else {
                match op.next_pane_after(e) {
                    Some(next) => e = geo.window_end_at_or_after(next),
                    None => break,
                }
            }
        }
    }
    // Every window end <= limit has now fired.
    let r = (limit - geo.offset).rem_euclid(geo.slide);
    let fired = op.fired_until();
    *fired = (*fired).max(limit - r);
    true
}

/// Fires the windows a watermark completes (event time only); windows beyond the
/// operator's budget stay pending for the task to offer again.
pub(crate) fn on_watermark<O>(
    op: &mut impl FireWindows<O>,
    watermark: i64,
    out: &mut Output<'_, O>,
) {
    if op.domain() == TimeDomain::EventTime {
        op.advance(watermark, out);
    }
}

/// Fires every window that ended before `now` (processing time only), then asks
/// for the next timer.
pub(crate) fn on_processing_time<O>(
    op: &mut impl FireWindows<O>,
    now: i64,
    out: &mut Output<'_, O>,
) {
    if op.domain() == TimeDomain::ProcessingTime {
        op.advance(now - 1, out);
        while op.pending() {
            op.advance(now - 1, out);
        }
        op.request_timer(out);
    }
}

/// Fires every window left at the end of a bounded input.
pub(crate) fn end_of_input<O>(op: &mut impl FireWindows<O>, out: &mut Output<'_, O>) {
    op.advance(i64::MAX - 1, out);
    while op.pending() {
        op.advance(i64::MAX - 1, out);
    }
}

/// The key groups of per-window maps, pane-major as [`restore_windows`] reads
/// them: per key group, `(window end, that group's snapshot bytes)` in end order.
pub(crate) fn snapshot_windows<K: Key, V: StateCodec>(
    windows: &BTreeMap<i64, KeyGroupedMap<K, V>>,
) -> BTreeMap<u16, Vec<(i64, Vec<u8>)>> {
    let mut per_group: BTreeMap<u16, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
    for (end, map) in windows {
        for (kg, bytes) in map.snapshot() {
            per_group.entry(kg).or_default().push((*end, bytes));
        }
    }
    per_group
}
