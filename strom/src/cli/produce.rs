//! `strom produce`: one record per line from stdin or a file, with keys, headers,
//! a fixed partition and a rate limit; progress on stderr when it is a terminal.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use kafka_wire::client::config::ProducerConfig;
use kafka_wire::client::{Producer, ProducerRecord};
use kafka_wire::records::Header;

use super::{Cli, split_pair};

/// `strom produce`'s flags.
pub(super) struct ProduceFlags {
    pub(super) key_separator: Option<String>,
    pub(super) headers: Vec<String>,
    pub(super) partition: Option<i32>,
    pub(super) file: Option<PathBuf>,
    pub(super) rate: Option<f64>,
}

/// Deliveries awaited before more are sent, so memory stays bounded.
const IN_FLIGHT: usize = 10_000;

pub(super) async fn produce(cli: &Cli, topic: &str, flags: ProduceFlags) -> anyhow::Result<()> {
    let headers = flags
        .headers
        .iter()
        .map(|h| split_pair(h).map(|(k, v)| Header::new(k, Some(v))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(rate) = flags.rate {
        anyhow::ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate must be a positive number of records per second, got {rate}"
        );
    }
    let file = match &flags.file {
        Some(path) => {
            Some(std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?)
        }
        None => None,
    };
    let props = cli.properties()?;
    let producer = Producer::new(ProducerConfig::from_properties(&props)?).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1024);
    let reader = std::thread::spawn(move || -> std::io::Result<()> {
        let input: Box<dyn BufRead> = match file {
            Some(f) => Box::new(std::io::BufReader::new(f)),
            None => Box::new(std::io::stdin().lock()),
        };
        for line in input.lines() {
            if tx.blocking_send(line?).is_err() {
                break;
            }
        }
        Ok(())
    });
    let mut progress = Progress::new(topic);
    let mut pending = Vec::new();
    let mut sent = 0u64;
    while let Some(line) = rx.recv().await {
        if let Some(rate) = flags.rate {
            let due = progress.started + Duration::from_secs_f64(sent as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let mut record = ProducerRecord {
            topic: topic.to_string(),
            partition: flags.partition,
            headers: headers.clone(),
            ..Default::default()
        };
        match flags
            .key_separator
            .as_deref()
            .and_then(|sep| line.split_once(sep))
        {
            Some((k, v)) => {
                record.key = Some(Bytes::from(k.to_string()));
                record.value = Some(Bytes::from(v.to_string()));
            }
            None => record.value = Some(Bytes::from(line)),
        }
        let delivery = producer.send(record).await;
        pending.push(delivery.with_context(|| format!("producing to {topic}"))?);
        sent += 1;
        if pending.len() >= IN_FLIGHT {
            for f in pending.drain(..) {
                f.await.with_context(|| format!("producing to {topic}"))?;
            }
        }
        progress.tick(sent);
    }
    for f in pending {
        f.await.with_context(|| format!("producing to {topic}"))?;
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("input reader panicked"))?
        .context("reading the input")?;
    producer
        .close(Duration::from_secs(30))
        .await
        .context("closing the producer")?;
    progress.done(sent);
    Ok(())
}

/// A progress line on stderr, rewritten about once a second, for runs longer
/// than two seconds and only when stderr is a terminal.
struct Progress {
    topic: String,
    started: Instant,
    last: Instant,
    shown: bool,
    terminal: bool,
}

impl Progress {
    fn new(topic: &str) -> Progress {
        let now = Instant::now();
        Progress {
            topic: topic.to_string(),
            started: now,
            last: now,
            shown: false,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn tick(&mut self, sent: u64) {
        if !self.terminal
            || self.started.elapsed() < Duration::from_secs(2)
            || self.last.elapsed() < Duration::from_secs(1)
        {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let secs = self.started.elapsed().as_secs_f64();
        eprint!(
            "\r{sent} records to {} in {secs:.0} s ({:.0} records/s)   ",
            self.topic,
            sent as f64 / secs
        );
    }

    fn done(&self, sent: u64) {
        if self.shown {
            eprintln!();
        }
        let took = self.started.elapsed();
        eprintln!(
            "produced {sent} records to {} in {took:.2?} ({:.0} records/s)",
            self.topic,
            sent as f64 / took.as_secs_f64().max(1e-9)
        );
    }
}
