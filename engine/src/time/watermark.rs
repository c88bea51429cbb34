//! Watermarks: generation per source split with bounded out-of-orderness and
//! idleness, and combination over several inputs as the minimum of the active ones.
//!
//! ```text
//! split 0: max ts 10_000, bound 2_000  -> wm 7_999 ─┐
//! split 1: idle (no data for `idleness`)  -> ignored ├─ min over active = 7_999
//! split 2: max ts 12_000, bound 2_000  -> wm 9_999 ─┘
//! all splits idle (or none assigned)  -> the task reports idle downstream
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::record::NO_TIMESTAMP;

/// Extracts the event timestamp (ms) from a value; the second argument is the
/// timestamp the source attached (e.g. the Kafka record timestamp), or
/// [`NO_TIMESTAMP`].
pub type TimestampFn<T> = Arc<dyn Fn(&T, i64) -> i64 + Send + Sync>;

/// How a source assigns event timestamps and generates watermarks (Flink's
/// `WatermarkStrategy`).
///
/// ```
/// use std::time::Duration;
/// use engine::WatermarkStrategy;
/// let s = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
///     .with_timestamp(|e: &(u64, i64)| e.1)
///     .with_idleness(Duration::from_secs(30));
/// # let _ = s;
/// ```
pub struct WatermarkStrategy<T> {
    pub(crate) timestamp: Option<TimestampFn<T>>,
    pub(crate) out_of_orderness_ms: i64,
    pub(crate) idleness: Option<Duration>,
    pub(crate) watermarks: bool,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            timestamp: self.timestamp.clone(),
            out_of_orderness_ms: self.out_of_orderness_ms,
            idleness: self.idleness,
            watermarks: self.watermarks,
        }
    }
}

impl<T> WatermarkStrategy<T> {
    /// Watermarks trail the highest timestamp seen by `bound`.
    pub fn bounded_out_of_orderness(bound: Duration) -> Self {
        WatermarkStrategy {
            timestamp: None,
            out_of_orderness_ms: bound.as_millis() as i64,
            idleness: None,
            watermarks: true,
        }
    }

    /// Timestamps only increase: watermarks follow the highest timestamp.
    pub fn monotonous() -> Self {
        Self::bounded_out_of_orderness(Duration::ZERO)
    }

    /// No watermarks (processing-time pipelines). Sources still end with a final
    /// watermark when their input ends.
    pub fn no_watermarks() -> Self {
        WatermarkStrategy {
            timestamp: None,
            out_of_orderness_ms: 0,
            idleness: None,
            watermarks: false,
        }
    }

    /// Uses `f` to read each value's event timestamp in milliseconds.
    pub fn with_timestamp(mut self, f: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        self.timestamp = Some(Arc::new(move |v, _| f(v)));
        self
    }

    /// Marks a split idle when it produced nothing for `timeout`, so it does not hold
    /// back the watermark.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }
}

/// Watermark state of one split.
#[derive(Clone, Debug)]
pub(crate) struct SplitWatermark {
    max_ts: i64,
    bound: i64,
}

impl SplitWatermark {
    pub(crate) fn new(bound: i64) -> Self {
        SplitWatermark {
            max_ts: NO_TIMESTAMP,
            bound,
        }
    }
    #[inline]
    pub(crate) fn observe(&mut self, ts: i64) {
        if ts > self.max_ts {
            self.max_ts = ts;
        }
    }
    /// The largest timestamp seen (what a checkpoint keeps).
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_ts
    }
    pub(crate) fn current(&self) -> i64 {
        if self.max_ts == NO_TIMESTAMP {
            NO_TIMESTAMP
        } else {
            self.max_ts.saturating_sub(self.bound).saturating_sub(1)
        }
    }
}

/// Status of one input of a [`WatermarkValve`].
#[derive(Clone, Copy, Debug, PartialEq)]
struct InputState {
    watermark: i64,
    idle: bool,
    ended: bool,
}

/// What changed after an input update.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ValveOutput {
    /// The combined watermark advanced to this value.
    pub watermark: Option<i64>,
    /// The combined status changed to idle (`true`) or active (`false`).
    pub idle: Option<bool>,
}

/// Combines the watermarks of several inputs: the minimum over inputs that are
/// neither idle nor ended; monotonic; idle when every remaining input is idle.
///
/// ```
/// use engine::WatermarkValve;
/// let mut v = WatermarkValve::new(2);
/// assert_eq!(v.watermark(0, 10).watermark, None); // input 1 still at -inf
/// assert_eq!(v.watermark(1, 5).watermark, Some(5));
/// assert_eq!(v.idle(1, true).watermark, Some(10)); // idle input no longer holds back
/// ```
#[derive(Clone, Debug)]
pub struct WatermarkValve {
    inputs: Vec<InputState>,
    emitted: i64,
    idle: bool,
}

impl WatermarkValve {
    /// A valve over `n` inputs, all active at -infinity.
    pub fn new(n: usize) -> Self {
        WatermarkValve {
            inputs: vec![
                InputState {
                    watermark: NO_TIMESTAMP,
                    idle: false,
                    ended: false
                };
                n
            ],
            emitted: NO_TIMESTAMP,
            idle: false,
        }
    }

    /// The last combined watermark.
    pub fn current(&self) -> i64 {
        self.emitted
    }

    /// Whether the combined status is idle.
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// Input `i` reports watermark `wm`.
    pub fn watermark(&mut self, i: usize, wm: i64) -> ValveOutput {
        if let Some(s) = self.inputs.get_mut(i) {
            s.watermark = s.watermark.max(wm);
            s.idle = false;
        }
        self.recompute()
    }

    /// Input `i` becomes idle or active.
    pub fn idle(&mut self, i: usize, idle: bool) -> ValveOutput {
        if let Some(s) = self.inputs.get_mut(i) {
            s.idle = idle;
        }
        self.recompute()
    }

    /// Adds an input, active at -infinity (a split adopted while the job runs);
    /// an idle valve becomes active.
    pub fn add_input(&mut self) -> ValveOutput {
        self.inputs.push(InputState {
            watermark: NO_TIMESTAMP,
            idle: false,
            ended: false,
        });
        self.recompute()
    }

    /// Input `i` ended: it no longer holds back the watermark.
    pub fn end(&mut self, i: usize) -> ValveOutput {
        if let Some(s) = self.inputs.get_mut(i) {
            s.ended = true;
        }
        self.recompute()
    }

    fn recompute(&mut self) -> ValveOutput {
        let mut out = ValveOutput::default();
        let active = self.inputs.iter().filter(|s| !s.ended && !s.idle);
        let min = active.map(|s| s.watermark).min();
        let any_open = self.inputs.iter().any(|s| !s.ended);
        match min {
            Some(m) => {
                if self.idle {
                    self.idle = false;
                    out.idle = Some(false);
                }
                if m > self.emitted {
                    self.emitted = m;
                    out.watermark = Some(m);
                }
            }
            None if any_open => {
                if !self.idle {
                    // As in Flink: when every input is idle, first advance to the
                    // highest watermark any input reached, then report idle.
                    let m = self
                        .inputs
                        .iter()
                        .map(|s| s.watermark)
                        .max()
                        .unwrap_or(NO_TIMESTAMP);
                    if m > self.emitted {
                        self.emitted = m;
                        out.watermark = Some(m);
                    }
                    self.idle = true;
                    out.idle = Some(true);
                }
            }
            None => {
                // Every input ended: the final watermark has already been forwarded by
                // each of them; report the maximum of what they reached.
                let m = self
                    .inputs
                    .iter()
                    .map(|s| s.watermark)
                    .max()
                    .unwrap_or(NO_TIMESTAMP);
                if m > self.emitted {
                    self.emitted = m;
                    out.watermark = Some(m);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_min_of_active_inputs_and_monotonic() {
        let mut v = WatermarkValve::new(3);
        v.watermark(0, 100);
        v.watermark(1, 50);
        assert_eq!(v.watermark(2, 70).watermark, Some(50));
        assert_eq!(v.watermark(1, 40).watermark, None, "never goes back");
        assert_eq!(v.watermark(1, 200).watermark, Some(70));
    }

    #[test]
    fn all_idle_reports_idle_and_data_reactivates() {
        let mut v = WatermarkValve::new(2);
        assert_eq!(v.idle(0, true).idle, None);
        assert_eq!(v.idle(1, true).idle, Some(true));
        let o = v.watermark(0, 9);
        assert_eq!(
            o,
            ValveOutput {
                watermark: Some(9),
                idle: Some(false)
            }
        );
    }

    #[test]
    fn split_watermark_trails_max_by_bound() {
        let mut s = SplitWatermark::new(1000);
        assert_eq!(s.current(), NO_TIMESTAMP);
        s.observe(5000);
        s.observe(3000);
        assert_eq!(s.current(), 3999);
    }
}
