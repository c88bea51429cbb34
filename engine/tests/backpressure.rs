//! Backpressure: a sink that accepts one batch per 10 ms slows a fast source down
//! instead of letting records pile up in memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use engine::*;

/// Accepts one batch per 10 ms and records the largest number of records that were
/// produced but not yet written at any write.
#[derive(Clone)]
struct SlowSink {
    produced: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    max_in_flight: Arc<AtomicU64>,
}

impl Sink<u64> for SlowSink {
    async fn write(&mut self, batch: Vec<Record<u64>>) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let written =
            self.written.fetch_add(batch.len() as u64, Ordering::SeqCst) + batch.len() as u64;
        let in_flight = self.produced.load(Ordering::SeqCst).saturating_sub(written);
        self.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_sink_bounds_the_records_in_flight() {
    let batch = 256;
    let capacity = 2;
    let produced = Arc::new(AtomicU64::new(0));
    let sink = SlowSink {
        produced: produced.clone(),
        written: Arc::default(),
        max_in_flight: Arc::default(),
    };
    let p = Pipeline::with_config(
        PipelineConfig::default()
            .parallelism(2)
            .batch_size(batch)
            .channel_capacity(capacity),
    );
    let counter = produced.clone();
    p.source_with_parallelism(
        GeneratorSource::new(move |i| {
            counter.fetch_add(1, Ordering::SeqCst);
            i
        }),
        WatermarkStrategy::no_watermarks(),
        1,
    )
    .map(|x| x + 1)
    .rebalance(2)
    .filter(|x| x % 2 == 0 || x % 2 == 1)
    .sink(sink.clone());
    let job = p.start().unwrap();
    // 1 s of virtual time: the sinks accept ~100 batches each.
    tokio::time::sleep(Duration::from_secs(1)).await;
    job.cancel();
    let _ = job.wait().await;

    let written = sink.written.load(Ordering::SeqCst);
    let max_in_flight = sink.max_in_flight.load(Ordering::SeqCst);
    eprintln!(
        "written {written}, max in flight {max_in_flight}, produced {}",
        produced.load(Ordering::SeqCst)
    );
    assert!(
        written >= 2 * 90 * batch as u64,
        "sinks kept busy: {written}"
    );
    // Per channel at most `capacity` queued batches, plus the batch each task holds
    // while it waits to send: 2 hops x 2 channels x (capacity + 2) batches.
    let bound = (2 * 2 * (capacity as u64 + 2)) * batch as u64;
    assert!(
        max_in_flight <= bound,
        "in flight {max_in_flight} > bound {bound}"
    );
    // The unthrottled source did not run ahead of the sinks.
    assert!(produced.load(Ordering::SeqCst) <= written + bound);
}
