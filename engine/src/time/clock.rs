//! The processing-time clock. It reads tokio's clock, so a test that calls
//! `tokio::time::pause()` controls processing time exactly.

use std::time::Duration;

use tokio::time::Instant;

/// Processing time in milliseconds: a base wall-clock value plus tokio time elapsed
/// since the job started.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_ms: i64,
    start: Instant,
}

impl Clock {
    /// A clock whose time is `base_ms` now.
    pub fn starting_at(base_ms: i64) -> Self {
        Clock {
            base_ms,
            start: Instant::now(),
        }
    }

    /// A clock following the system wall clock.
    pub fn system() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Self::starting_at(ms)
    }

    /// Current processing time in milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.base_ms + self.start.elapsed().as_millis() as i64
    }

    /// The tokio instant at which processing time reaches `ms`.
    pub fn instant_at(&self, ms: i64) -> Instant {
        let delta = ms.saturating_sub(self.base_ms).max(0) as u64;
        self.start + Duration::from_millis(delta)
    }
}
