//! librdkafka through the `rdkafka` crate (librdkafka built from the crate's bundled
//! source with cmake).
//!
//! Produce: `BaseProducer` with a delivery callback (the opaque carries the send
//! time), polled on QUEUE_FULL and every 1,000 sends, as librdkafka's own
//! rdkafka_performance does. Consume: `BaseConsumer` with `assign` from the beginning.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::common::{Latencies, Measured, Workload, payloads};

struct Ctx {
    start: Instant,
    latencies: Mutex<Latencies>,
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Ctx {}

impl ProducerContext for Ctx {
    /// Send time in µs since `start`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_us: usize) {
        match result {
            Ok(_) => {
                let now = self.start.elapsed().as_micros() as usize;
                let d = Duration::from_micros(now.saturating_sub(sent_us) as u64);
                if let Ok(mut l) = self.latencies.lock() {
                    l.push(d);
                }
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A librdkafka config with the workload's security settings.
fn config(w: &Workload) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in w.security.librdkafka_properties() {
        config.set(key, value);
    }
    config
}

/// Produces `w.records` records to `topic`.
pub fn produce(w: &Workload, topic: &str) -> Result<Measured> {
    let ctx = Ctx {
        start: Instant::now(),
        latencies: Mutex::new(Latencies::default()),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    };
    let producer: BaseProducer<Ctx> = config(w)
        .set("bootstrap.servers", &w.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", w.linger_ms.to_string())
        .set("batch.size", w.batch_size.to_string())
        .create_with_context(ctx)?;
    let values = payloads(w.record_size);

    let start = Instant::now();
    for i in 0..w.records {
        let value = &values[i as usize % values.len()];
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(
            topic,
            producer.context().start.elapsed().as_micros() as usize,
        )
        .payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(100));
                }
                Err((e, _)) => bail!("rdkafka send: {e}"),
            }
        }
        if i % 1000 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(300))?;
    let secs = start.elapsed().as_secs_f64();
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    let delivered = ctx.delivered.load(Ordering::Relaxed);
    if failed > 0 || delivered != w.records {
        bail!("rdkafka: {delivered} delivered, {failed} failed");
    }
    let lat = std::mem::take(
        &mut *ctx
            .latencies
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?,
    );
    let (p50_ms, p99_ms) = lat.percentiles();
    Ok(Measured {
        records: delivered,
        bytes: delivered * w.record_size as u64,
        secs,
        p50_ms,
        p99_ms,
    })
}

/// Consumes `w.records` records of `topic` from the beginning.
pub fn consume(w: &Workload, topic: &str) -> Result<Measured> {
    let consumer: BaseConsumer = config(w)
        .set("bootstrap.servers", &w.bootstrap)
        .set("group.id", format!("bench-rdkafka-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let start = Instant::now();
    let mut tpl = TopicPartitionList::new();
    for p in 0..w.partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let (mut records, mut bytes) = (0u64, 0u64);
    while records < w.records {
        match consumer.poll(Duration::from_secs(1)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => bail!("rdkafka poll: {e}"),
            None => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Measured {
        records,
        bytes,
        secs,
        ..Default::default()
    })
}
