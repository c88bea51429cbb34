//! `strom produce`: records from stdin.

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use kafka_wire::client::config::ProducerConfig;
use kafka_wire::client::{Producer, ProducerRecord};

use super::Cli;

pub(super) async fn produce(
    cli: &Cli,
    topic: &str,
    key_separator: Option<&str>,
) -> anyhow::Result<()> {
    let props = cli.properties()?;
    let producer = Producer::new(ProducerConfig::from_properties(&props)?).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1024);
    let reader = std::thread::spawn(move || -> std::io::Result<()> {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line?).is_err() {
                break;
            }
        }
        Ok(())
    });
    let started = Instant::now();
    let mut pending = Vec::new();
    let mut sent = 0usize;
    while let Some(line) = rx.recv().await {
        let mut record = ProducerRecord {
            topic: topic.to_string(),
            ..Default::default()
        };
        match key_separator.and_then(|sep| line.split_once(sep)) {
            Some((k, v)) => {
                record.key = Some(Bytes::from(k.to_string()));
                record.value = Some(Bytes::from(v.to_string()));
            }
            None => record.value = Some(Bytes::from(line)),
        }
        let delivery = producer.send(record).await;
        pending.push(delivery.with_context(|| format!("producing to {topic}"))?);
        sent += 1;
        if pending.len() >= 10_000 {
            for f in pending.drain(..) {
                f.await.with_context(|| format!("producing to {topic}"))?;
            }
        }
    }
    for f in pending {
        f.await.with_context(|| format!("producing to {topic}"))?;
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("stdin reader panicked"))??;
    producer
        .close(Duration::from_secs(30))
        .await
        .context("closing the producer")?;
    eprintln!(
        "produced {sent} records to {topic} in {:.2?}",
        started.elapsed()
    );
    Ok(())
}
