//! What the time-window operators (pane, sliding, session) share: the counter of
//! late records they drop (the interval join counts its own there too), stamping
//! each record with the time it is windowed by, and the key-grouped maps per
//! window that their checkpoints hold.

use std::collections::BTreeMap;

use metrics::Counter;

use crate::error::Result;
use crate::operators::{OperatorInit, Output};
use crate::record::{NO_TIMESTAMP, Record};
use crate::state::codec::StateCodec;
use crate::state::keyed::{Key, KeyGroupedMap};
use crate::time::window::TimeDomain;

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
