//! rskafka.
//!
//! rskafka has no idempotent producer and no accumulator with `linger.ms` on
//! `PartitionClient`: the bench builds the batches itself. Produce: one task per
//! partition, each sending its share of the records as `produce` calls of
//! `batch.size` bytes of values (LZ4, acks=all, which rskafka always uses), one
//! request in flight per partition. Latency is per request (every record of a batch
//! gets the batch's send-to-ack time). Consume: one task per partition calling
//! `fetch_records` from offset 0 up to the partition's end offset.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::record::Record;

use crate::common::{Latencies, Measured, Workload, payloads};

async fn partition_clients(w: &Workload, topic: &str) -> Result<Vec<Arc<PartitionClient>>> {
    let client = ClientBuilder::new(vec![w.bootstrap.clone()])
        .build()
        .await
        .context("rskafka client")?;
    let mut out = Vec::new();
    for p in 0..w.partitions {
        out.push(Arc::new(
            client
                .partition_client(topic, p, UnknownTopicHandling::Retry)
                .await?,
        ));
    }
    Ok(out)
}

/// Produces `w.records` records to `topic`.
pub async fn produce(w: &Workload, topic: &str) -> Result<Measured> {
    let clients = partition_clients(w, topic).await?;
    let values = Arc::new(payloads(w.record_size));
    let per_batch = (w.batch_size / w.record_size.max(1)).max(1);
    let parts = w.partitions as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (p, client) in clients.into_iter().enumerate() {
        let share = w.records / parts + u64::from((p as u64) < w.records % parts);
        let values = values.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut sent = 0u64;
            let mut next_value = p;
            while sent < share {
                let n = per_batch.min((share - sent) as usize);
                let now = Utc::now();
                let batch: Vec<Record> = (0..n)
                    .map(|_| {
                        next_value = (next_value + 1) % values.len();
                        Record {
                            key: None,
                            value: Some(values[next_value].to_vec()),
                            headers: Default::default(),
                            timestamp: now,
                        }
                    })
                    .collect();
                let t = Instant::now();
                client.produce(batch, Compression::Lz4).await?;
                lat.push_n(t.elapsed(), n);
                sent += n as u64;
            }
            anyhow::Ok((sent, lat))
        }));
    }
    let mut total = 0u64;
    let mut all = Latencies::default();
    for t in tasks {
        let (sent, lat) = t.await??;
        total += sent;
        all.0.extend(lat.0);
    }
    let secs = start.elapsed().as_secs_f64();
    let (p50_ms, p99_ms) = all.percentiles();
    Ok(Measured {
        records: total,
        bytes: total * w.record_size as u64,
        secs,
        p50_ms,
        p99_ms,
    })
}

/// Consumes `w.records` records of `topic` from the beginning.
pub async fn consume(w: &Workload, topic: &str) -> Result<Measured> {
    let clients = partition_clients(w, topic).await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        tasks.push(tokio::spawn(async move {
            let end = client.get_offset(OffsetAt::Latest).await?;
            let mut offset = client.get_offset(OffsetAt::Earliest).await?;
            let (mut records, mut bytes) = (0u64, 0u64);
            while offset < end {
                // Same per-partition byte limit as the Java and strom defaults
                // (max.partition.fetch.bytes = 1 MiB), fetch.max.wait.ms = 500.
                let (got, _hwm) = client.fetch_records(offset, 1..1_048_576, 500).await?;
                for r in &got {
                    records += 1;
                    bytes += r.record.value.as_ref().map_or(0, |v| v.len()) as u64;
                    offset = r.offset + 1;
                }
            }
            anyhow::Ok((records, bytes))
        }));
    }
    let (mut records, mut bytes) = (0u64, 0u64);
    for t in tasks {
        let (r, b) = t.await??;
        records += r;
        bytes += b;
    }
    let secs = start.elapsed().as_secs_f64();
    if records < w.records {
        bail!("rskafka consumed {records} of {}", w.records);
    }
    Ok(Measured {
        records,
        bytes,
        secs,
        ..Default::default()
    })
}

/// Produces `w.records` records through rskafka's record-level API: one
/// `BatchProducer` per partition (`RecordAggregator` of `batch.size` bytes,
/// `linger.ms`, LZ4), records sent one by one from one task, round robin over the
/// partitions, every `produce` future awaited through a `FuturesUnordered` of at
/// most [`OUTSTANDING`] records. This is the workload as the issue states it
/// (record by record, with linger), which the pre-batched [`produce`] skips.
pub async fn produce_batching(w: &Workload, topic: &str) -> Result<Measured> {
    use futures::StreamExt;
    use futures::stream::FuturesUnordered;
    use rskafka::client::producer::BatchProducerBuilder;
    use rskafka::client::producer::aggregator::RecordAggregator;

    let producers: Vec<_> = partition_clients(w, topic)
        .await?
        .into_iter()
        .map(|c| {
            BatchProducerBuilder::new(c)
                .with_linger(std::time::Duration::from_millis(w.linger_ms))
                .with_compression(Compression::Lz4)
                .build(RecordAggregator::new(w.batch_size))
        })
        .collect();
    let values = payloads(w.record_size);
    let mut lat = Latencies::default();
    let mut inflight = FuturesUnordered::new();
    let mut acked = 0u64;
    let start = Instant::now();
    for i in 0..w.records {
        let producer = &producers[i as usize % producers.len()];
        let record = Record {
            key: None,
            value: Some(values[i as usize % values.len()].to_vec()),
            headers: Default::default(),
            timestamp: Utc::now(),
        };
        let sent = Instant::now();
        inflight.push(async move { producer.produce(record).await.map(|_| sent) });
        while inflight.len() >= OUTSTANDING {
            if let Some(r) = inflight.next().await {
                lat.push(r?.elapsed());
                acked += 1;
            }
        }
    }
    while let Some(r) = inflight.next().await {
        lat.push(r?.elapsed());
        acked += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let (p50_ms, p99_ms) = lat.percentiles();
    Ok(Measured {
        records: acked,
        bytes: acked * w.record_size as u64,
        secs,
        p50_ms,
        p99_ms,
    })
}

/// Records outstanding at most in [`produce_batching`]: enough for several full
/// batches on every partition.
const OUTSTANDING: usize = 20_000;

/// Consumes `w.records` records of `topic` through rskafka's `StreamConsumer`, one
/// per partition (1 MiB per fetch, `fetch.max.wait.ms` 500), polled together.
pub async fn consume_stream(w: &Workload, topic: &str) -> Result<Measured> {
    use futures::StreamExt;
    use rskafka::client::consumer::{StartOffset, StreamConsumerBuilder};

    let clients = partition_clients(w, topic).await?;
    let start = Instant::now();
    let streams = clients.into_iter().map(|c| {
        StreamConsumerBuilder::new(c, StartOffset::Earliest)
            .with_max_batch_size(1_048_576)
            .with_max_wait_ms(500)
            .build()
    });
    let mut all = futures::stream::select_all(streams);
    let (mut records, mut bytes) = (0u64, 0u64);
    while records < w.records {
        match all.next().await {
            Some(item) => {
                let (r, _hwm) = item?;
                records += 1;
                bytes += r.record.value.as_ref().map_or(0, |v| v.len()) as u64;
            }
            None => bail!("rskafka streams ended after {records} records"),
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
