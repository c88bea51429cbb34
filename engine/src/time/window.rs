//! Window assigners: tumbling, sliding, session and global-with-count-trigger windows
//! in event or processing time, and the pane arithmetic that makes sliding windows
//! cost the same per record as tumbling ones.
//!
//! A sliding window of size 10 min and slide 10 s is cut into 10 s panes; each record
//! updates exactly one pane accumulator; a window result merges its 60 panes:
//!
//! ```text
//! panes:   |p0|p1|p2|...|p59|p60|
//! window A: p0 ............ p59     (fires when the watermark passes its end)
//! window B:    p1 ............ p60
//! ```

use std::time::Duration;

/// A time window `[start, end)` in milliseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TimeWindow {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

impl TimeWindow {
    /// The window of all time (global windows).
    pub const GLOBAL: TimeWindow = TimeWindow {
        start: i64::MIN,
        end: i64::MAX,
    };

    /// The largest timestamp inside the window; results carry it as their timestamp.
    pub fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }
}

impl crate::StateCodec for TimeWindow {
    fn encode(&self, buf: &mut Vec<u8>) {
        self.start.encode(buf);
        self.end.encode(buf);
    }
    fn decode(buf: &mut &[u8]) -> crate::Result<Self> {
        Ok(TimeWindow {
            start: i64::decode(buf)?,
            end: i64::decode(buf)?,
        })
    }
}

/// Whether a window follows event time (watermarks) or processing time (the clock).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TimeDomain {
    /// Driven by record timestamps and watermarks.
    EventTime,
    /// Driven by the processing-time clock of the task.
    ProcessingTime,
}

/// The kind of window.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed-size, non-overlapping windows.
    Tumbling {
        /// Window length (ms).
        size: i64,
        /// Shift of window boundaries from the epoch (ms).
        offset: i64,
    },
    /// Fixed-size windows starting every `slide`.
    Sliding {
        /// Window length (ms).
        size: i64,
        /// Distance between window starts (ms).
        slide: i64,
        /// Shift of window boundaries from the epoch (ms).
        offset: i64,
    },
    /// Per-key windows that close after `gap` without records.
    Session {
        /// Inactivity gap (ms).
        gap: i64,
    },
    /// One global window per key, fired (and purged) every `count` records.
    Count {
        /// Records per firing.
        count: u64,
    },
}

/// A window assigner: what [`crate::KeyedStream::window`] takes.
///
/// ```
/// use std::time::Duration;
/// use engine::Windows;
/// let w = Windows::sliding(Duration::from_secs(600), Duration::from_secs(10));
/// assert_eq!(w.pane_size(), Some(10_000));
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Windows {
    /// The kind of window.
    pub kind: WindowKind,
    /// Event or processing time.
    pub domain: TimeDomain,
}

fn ms(d: Duration) -> i64 {
    (d.as_millis() as i64).max(1)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Windows {
    /// Tumbling event-time windows of `size`.
    pub fn tumbling(size: Duration) -> Self {
        Windows {
            kind: WindowKind::Tumbling {
                size: ms(size),
                offset: 0,
            },
            domain: TimeDomain::EventTime,
        }
    }
    /// Sliding event-time windows of `size` every `slide`.
    pub fn sliding(size: Duration, slide: Duration) -> Self {
        Windows {
            kind: WindowKind::Sliding {
                size: ms(size),
                slide: ms(slide),
                offset: 0,
            },
            domain: TimeDomain::EventTime,
        }
    }
    /// Event-time session windows closing after `gap` of inactivity.
    pub fn session(gap: Duration) -> Self {
        Windows {
            kind: WindowKind::Session { gap: ms(gap) },
            domain: TimeDomain::EventTime,
        }
    }
    /// A global window per key firing every `count` records (Flink's `countWindow`).
    pub fn count(count: u64) -> Self {
        Windows {
            kind: WindowKind::Count {
                count: count.max(1),
            },
            domain: TimeDomain::EventTime,
        }
    }
    /// The same windows in processing time.
    pub fn processing_time(mut self) -> Self {
        self.domain = TimeDomain::ProcessingTime;
        self
    }
    /// Shifts window boundaries by `offset` (e.g. for time zones).
    pub fn with_offset(mut self, offset: Duration) -> Self {
        let o = offset.as_millis() as i64;
        match &mut self.kind {
            WindowKind::Tumbling { offset, .. } | WindowKind::Sliding { offset, .. } => *offset = o,
            _ => {}
        }
        self
    }

    /// Pane length for tumbling and sliding windows: `gcd(size, slide)`.
    pub fn pane_size(&self) -> Option<i64> {
        match self.kind {
            WindowKind::Tumbling { size, .. } => Some(size),
            WindowKind::Sliding { size, slide, .. } => Some(gcd(size, slide)),
            _ => None,
        }
    }
}

/// Pane geometry of a tumbling or sliding window (all in ms).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Panes {
    pub size: i64,
    pub slide: i64,
    pub pane: i64,
    pub offset: i64,
}

impl Panes {
    pub(crate) fn new(size: i64, slide: i64, offset: i64) -> Self {
        Panes {
            size,
            slide,
            pane: gcd(size, slide).max(1),
            offset,
        }
    }

    /// End of the pane holding `ts`.
    #[inline]
    pub(crate) fn pane_end(&self, ts: i64) -> i64 {
        let start = ts - (ts - self.offset).rem_euclid(self.pane);
        start.saturating_add(self.pane)
    }

    /// The first window end at or after `t`.
    #[inline]
    pub(crate) fn window_end_at_or_after(&self, t: i64) -> i64 {
        let r = (t - self.offset).rem_euclid(self.slide);
        if r == 0 { t } else { t + (self.slide - r) }
    }

    /// The end of the next window to fire over panes starting with the one that
    /// ends at `first_pane`: the first window containing it, but never one at or
    /// before `fired_until` (`i64::MIN`: none fired yet).
    #[inline]
    pub(crate) fn next_window_end(&self, first_pane: i64, fired_until: i64) -> i64 {
        let e = self.window_end_at_or_after(first_pane);
        if fired_until == i64::MIN {
            e
        } else {
            e.max(fired_until.saturating_add(self.slide))
        }
    }

    /// The last window end that contains the pane ending at `pane_end`.
    #[inline]
    pub(crate) fn last_window_end_for_pane(&self, pane_end: i64) -> i64 {
        let first = self.window_end_at_or_after(pane_end);
        // Windows ending in [first, pane_end - pane + size] contain the pane.
        let limit = pane_end - self.pane + self.size;
        first + ((limit - first).div_euclid(self.slide)) * self.slide
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pane_arithmetic_for_sliding_windows() {
        let p = Panes::new(30, 10, 0);
        assert_eq!(p.pane, 10);
        assert_eq!(p.pane_end(0), 10);
        assert_eq!(p.pane_end(9), 10);
        assert_eq!(p.pane_end(-1), 0);
        assert_eq!(p.window_end_at_or_after(11), 20);
        // Pane [0,10) is in windows ending at 10, 20, 30.
        assert_eq!(p.last_window_end_for_pane(10), 30);
        let q = Panes::new(10, 4, 0);
        assert_eq!(q.pane, 2);
        // Pane [0,2) is in windows [-8,2)? no: ends 4 and 8 ([−6,4), [−2,8)).
        assert_eq!(q.window_end_at_or_after(2), 4);
        assert_eq!(q.last_window_end_for_pane(2), 8);
    }
}
