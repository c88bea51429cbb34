//! strom's own client, `kafka-wire`.
//!
//! Produce: `Producer::send` per record; every `DeliveryFuture` is checked, either on
//! the sending task (default) or by a collector task (`--strom-collector`), and its
//! send-to-ack latency recorded.
//! Consume: `Consumer::assign` every partition from the beginning, `poll_batches`
//! until N records.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::{Admin, Client, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::mpsc;

use crate::common::{Latencies, Measured, Workload, payloads};

/// The properties of a strom client: `pairs` plus the workload's security
/// settings (`Security::java_properties`).
fn props(w: &Workload, pairs: &[(&str, String)]) -> Result<BTreeMap<String, String>> {
    let mut map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    map.extend(w.security.java_properties()?);
    Ok(map)
}

/// An admin client for the workload's broker and security settings (topics are
/// made and deleted through it).
pub async fn admin(w: &Workload) -> Result<Admin> {
    let config =
        ProducerConfig::from_properties(&props(w, &[("bootstrap.servers", w.bootstrap.clone())])?)?;
    Ok(Admin::new(Client::connect(config.client).await?))
}

/// Produces `w.records` records to `topic`.
pub async fn produce(w: &Workload, topic: &str, collector: bool) -> Result<Measured> {
    let config = ProducerConfig::from_properties(&props(
        w,
        &[
            ("bootstrap.servers", w.bootstrap.clone()),
            ("acks", "all".into()),
            ("enable.idempotence", "true".into()),
            ("compression.type", "lz4".into()),
            ("linger.ms", w.linger_ms.to_string()),
            ("batch.size", w.batch_size.to_string()),
        ],
    )?)?;
    let producer = Producer::new(config).await.context("strom producer")?;
    let values = payloads(w.record_size);

    let start = Instant::now();
    let (lat, errors, first_error) = if collector {
        send_with_collector(&producer, w, topic, &values).await?
    } else {
        send_inline(&producer, w, topic, &values).await?
    };
    let secs = start.elapsed().as_secs_f64();
    if errors > 0 {
        bail!("{errors} records failed, first: {first_error:?}");
    }
    producer
        .close(std::time::Duration::from_secs(10))
        .await
        .ok();
    let (p50_ms, p99_ms) = lat.percentiles();
    Ok(Measured {
        records: w.records,
        bytes: w.records * w.record_size as u64,
        secs,
        p50_ms,
        p99_ms,
    })
}

/// Consumes `w.records` records of `topic` from the beginning.
pub async fn consume(w: &Workload, topic: &str) -> Result<Measured> {
    let config = ConsumerConfig::from_properties(&props(
        w,
        &[
            ("bootstrap.servers", w.bootstrap.clone()),
            ("auto.offset.reset", "earliest".into()),
        ],
    )?)?;
    let mut consumer = Consumer::new(config).await.context("strom consumer")?;
    let start = Instant::now();
    consumer.assign((0..w.partitions).map(|p| (topic, p)));
    let (mut records, mut bytes) = (0u64, 0u64);
    while records < w.records {
        for fetched in consumer.poll_batches().await? {
            records += fetched.records.len() as u64;
            bytes += fetched
                .records
                .iter()
                .map(|r| r.value.as_ref().map_or(0, |v| v.len()) as u64)
                .sum::<u64>();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    consumer.close().await;
    Ok(Measured {
        records,
        bytes,
        secs,
        ..Default::default()
    })
}

type Outcome = (Latencies, u64, Option<String>);

/// The sending task checks the oldest outstanding `DeliveryFuture` after every
/// send (without waiting) and awaits the rest in order after `flush`: delivery
/// outcomes are served on the sending task, as the librdkafka run serves its
/// delivery callbacks from `poll` on the sending thread. A latency is taken when
/// the future is seen complete, so it can be later than the ack by up to the time
/// the older records still outstanding took.
async fn send_inline(
    producer: &Producer,
    w: &Workload,
    topic: &str,
    values: &[bytes::Bytes],
) -> Result<Outcome> {
    use futures::FutureExt;
    let mut lat = Latencies::default();
    let mut errors = 0u64;
    let mut first_error = None;
    let mut outstanding = VecDeque::new();
    let mut record = |sent: Instant, r: kafka_wire::Result<_>| match r {
        Ok(_) => lat.push(sent.elapsed()),
        Err(e) => {
            errors += 1;
            first_error.get_or_insert_with(|| e.to_string());
        }
    };
    for i in 0..w.records {
        let value = values[i as usize % values.len()].clone();
        let sent = Instant::now();
        let fut = producer
            .send(ProducerRecord::new(topic, value))
            .await
            .context("strom send")?;
        outstanding.push_back((sent, fut));
        while let Some((sent, fut)) = outstanding.front_mut() {
            match fut.now_or_never() {
                Some(r) => {
                    let sent = *sent;
                    outstanding.pop_front();
                    record(sent, r);
                }
                None => break,
            }
        }
    }
    producer.flush().await?;
    for (sent, fut) in outstanding {
        record(sent, fut.await);
    }
    Ok((lat, errors, first_error))
}

/// Every `DeliveryFuture` goes over a channel to a collector task that awaits them
/// in any order (`FuturesUnordered`): exact latencies, more work per record.
async fn send_with_collector(
    producer: &Producer,
    w: &Workload,
    topic: &str,
    values: &[bytes::Bytes],
) -> Result<Outcome> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, _)>();
    let collector = tokio::spawn(async move {
        let mut lat = Latencies::default();
        let mut errors = 0u64;
        let mut first_error = None;
        let mut inflight = FuturesUnordered::new();
        let mut open = true;
        loop {
            tokio::select! {
                item = rx.recv(), if open => match item {
                    Some((sent, fut)) => inflight.push(async move {
                        let r: kafka_wire::Result<_> = fut.await;
                        (sent, r)
                    }),
                    None => open = false,
                },
                Some((sent, r)) = inflight.next() => match r {
                    Ok(_) => lat.push(sent.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                },
                else => break,
            }
        }
        (lat, errors, first_error)
    });
    for i in 0..w.records {
        let value = values[i as usize % values.len()].clone();
        let sent = Instant::now();
        let fut = producer
            .send(ProducerRecord::new(topic, value))
            .await
            .context("strom send")?;
        if tx.send((sent, fut)).is_err() {
            bail!("latency collector stopped");
        }
    }
    drop(tx);
    producer.flush().await?;
    Ok(collector.await?)
}
