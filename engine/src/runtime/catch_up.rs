//! How far an adopted split must catch up before it stops lagging: an upper
//! bound of the watermark of every operator that can see its records.
//!
//! ```text
//!  source task j ──forward──► chain of task j         watermark ≤ what j sent
//!  source task * ──exchange─► any keyed subtask        watermark ≤ the highest
//!                                                      min over the active tasks
//! ```
//!
//! The bound for a split of task j is the larger of the two. Every task records
//! a watermark or an idleness change here before it sends it down, so no
//! operator's watermark is ever past the bound. A task whose only partition
//! jumps far ahead raises its own watermark, not the others' bound.

use std::sync::Mutex;

use crate::record::NO_TIMESTAMP;

/// What the tasks of one source sent down, shared by them.
#[derive(Debug)]
pub(crate) struct SentWatermarks {
    inner: Mutex<Sent>,
}

#[derive(Debug)]
struct Sent {
    /// Per task: the last watermark it sent, and whether it is idle.
    tasks: Vec<(i64, bool)>,
    /// The highest the minimum over the active tasks has been.
    exchanged: i64,
}

impl SentWatermarks {
    /// For a source read by `parallelism` tasks, none of which sent anything.
    pub(crate) fn new(parallelism: usize) -> Self {
        SentWatermarks {
            inner: Mutex::new(Sent {
                tasks: vec![(NO_TIMESTAMP, false); parallelism.max(1)],
                exchanged: NO_TIMESTAMP,
            }),
        }
    }

    fn update(&self, task: usize, change: impl FnOnce(&mut (i64, bool))) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = s.tasks.get_mut(task) {
            change(t);
        }
        let active_min = s
            .tasks
            .iter()
            .filter(|(_, idle)| !idle)
            .map(|(w, _)| *w)
            .min();
        if let Some(m) = active_min {
            s.exchanged = s.exchanged.max(m);
        }
    }

    /// Task `task` sends watermark `w` down.
    pub(crate) fn sent(&self, task: usize, w: i64) {
        self.update(task, |t| t.0 = t.0.max(w));
    }

    /// Task `task` tells downstream that it is idle (or active again).
    pub(crate) fn idle(&self, task: usize, idle: bool) {
        self.update(task, |t| t.1 = idle);
    }

    /// The watermark a lagging split of task `task` must reach.
    pub(crate) fn bound(&self, task: usize) -> i64 {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let own = s.tasks.get(task).map_or(NO_TIMESTAMP, |t| t.0);
        own.max(s.exchanged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_far_ahead_raises_only_its_own_bound() {
        let s = SentWatermarks::new(3);
        s.sent(0, 100);
        s.sent(1, 120);
        assert_eq!(s.bound(0), 100, "task 2 sent nothing yet");
        s.sent(2, 1_000_000);
        assert_eq!(s.bound(0), 100);
        assert_eq!(s.bound(1), 120);
        assert_eq!(s.bound(2), 1_000_000);
    }

    #[test]
    fn the_exchanged_bound_skips_idle_tasks_and_never_goes_back() {
        let s = SentWatermarks::new(2);
        s.sent(0, 50);
        s.sent(1, 200);
        assert_eq!(s.bound(0), 50);
        // Task 0 goes idle: an exchange downstream follows task 1 alone.
        s.idle(0, true);
        assert_eq!(s.bound(0), 200);
        // Active again behind it: downstream does not go back, nor does the bound.
        s.idle(0, false);
        assert_eq!(s.bound(0), 200);
        s.sent(1, 300);
        s.sent(0, 250);
        assert_eq!(s.bound(0), 250);
        assert_eq!(s.bound(1), 300);
    }
}
