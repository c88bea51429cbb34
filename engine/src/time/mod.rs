//! Time: processing-time clock, watermark generation and combination, window
//! assigners and per-key timers.

pub mod clock;
pub mod timers;
pub mod watermark;
pub mod window;
