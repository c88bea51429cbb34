//! [`BlackholeSink`]: drops every record (Flink's `blackhole` connector), for
//! benchmarks that measure a pipeline without its output.

use engine::{Record, Sink};

/// A sink that discards what it receives.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlackholeSink;

impl<T: Send + 'static> Sink<T> for BlackholeSink {
    fn name(&self) -> &str {
        "blackhole"
    }

    fn kind(&self) -> &str {
        "blackhole"
    }

    async fn write(&mut self, _batch: Vec<Record<T>>) -> engine::Result<()> {
        Ok(())
    }
}
