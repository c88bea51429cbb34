//! Command-line parsing and the Kafka tool commands.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::{ConsumerConfig, IsolationLevel, OffsetReset, ProducerConfig};
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::properties;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

/// strom: Kafka stream processing in pure Rust.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// Bootstrap servers (host:port,...). Without it: `bootstrap.servers` from the
    /// properties, else $KAFKA_BOOTSTRAP.
    #[arg(long, global = true)]
    bootstrap: Option<String>,
    /// A Java-style .properties file with client settings (Java property names).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Extra client properties, `key=value` (repeatable); they override --config.
    /// A command's own flags override both when given; when a flag is left out,
    /// the property decides.
    #[arg(long = "property", short = 'X', global = true)]
    properties: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version of strom.
    Version,
    /// Run the pipeline of a SQL file until it is stopped (SIGTERM or Ctrl-C: a
    /// final checkpoint, then exit 0) or, with --bounded, until its input ends.
    Run {
        /// The SQL file (CREATE TABLE .. WITH (..), CREATE VIEW, INSERT INTO .. SELECT).
        file: PathBuf,
        /// Read what the sources hold now, flush every window, and end.
        #[arg(long)]
        bounded: bool,
        /// Checkpoint interval in milliseconds.
        #[arg(long, default_value_t = 1000)]
        checkpoint_interval_ms: u64,
        /// Parallelism of the operators.
        #[arg(long, default_value_t = 1)]
        parallelism: usize,
        /// `application.id` (consumer group, transactional ids, internal topics)
        /// when the Kafka properties set none; default `strom-<file name>`.
        #[arg(long)]
        application_id: Option<String>,
        /// This process's `strom.instance` (processes of one pipeline differ in it).
        #[arg(long)]
        instance: Option<u32>,
    },
    /// Print the operator graph of a SQL file's pipeline.
    Explain {
        /// The SQL file.
        file: PathBuf,
    },
    /// Manage topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Produce lines from stdin, one record per line.
    Produce {
        /// Topic to write to.
        #[arg(long)]
        topic: String,
        /// Split each line at the first occurrence of this separator into key and value.
        #[arg(long)]
        key_separator: Option<String>,
    },
    /// Consume records and print them, one per line.
    Consume {
        /// Topic to read.
        #[arg(long)]
        topic: String,
        /// Start at the earliest offset (overrides `auto.offset.reset`, which
        /// otherwise decides; its default is `latest`).
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this many records.
        #[arg(long)]
        max_messages: Option<usize>,
        /// Stop after this long without a record (ms).
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// Overrides `isolation.level`, which otherwise decides (default
        /// read_uncommitted).
        #[arg(long, value_enum)]
        isolation_level: Option<Isolation>,
        /// Print `key<TAB>value` instead of the value alone.
        #[arg(long)]
        print_key: bool,
    },
}

/// `--isolation-level` values (the Java property's spelling).
#[derive(Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
enum Isolation {
    ReadUncommitted,
    ReadCommitted,
}

impl From<Isolation> for IsolationLevel {
    fn from(i: Isolation) -> IsolationLevel {
        match i {
            Isolation::ReadUncommitted => IsolationLevel::ReadUncommitted,
            Isolation::ReadCommitted => IsolationLevel::ReadCommitted,
        }
    }
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create a topic.
    Create {
        /// Name.
        topic: String,
        /// Partitions.
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Replication factor (-1: the broker's default).
        #[arg(long, default_value_t = -1)]
        replication_factor: i16,
        /// Topic configs, `key=value` (repeatable).
        #[arg(long = "topic-config")]
        configs: Vec<String>,
    },
    /// List topics known to metadata (those given, with partition leaders).
    Describe {
        /// Names.
        topics: Vec<String>,
    },
    /// Delete topics.
    Delete {
        /// Names.
        topics: Vec<String>,
    },
}

/// An error and its causes on one line, each cause once: a cause whose text the
/// message already holds (kafka-wire's messages include their sources) is skipped.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn split_pair(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("expected key=value, got {s:?}"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

impl Cli {
    fn properties(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut props = match &self.config {
            Some(path) => properties::parse(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            ),
            None => BTreeMap::new(),
        };
        for p in &self.properties {
            let (k, v) = split_pair(p)?;
            props.insert(k, v);
        }
        if let Some(b) = &self.bootstrap {
            props.insert("bootstrap.servers".into(), b.clone());
        }
        if !props.contains_key("bootstrap.servers") {
            match std::env::var("KAFKA_BOOTSTRAP") {
                Ok(b) if !b.trim().is_empty() => {
                    props.insert("bootstrap.servers".into(), b.trim().to_string());
                }
                _ => bail!(
                    "no broker: pass --bootstrap host:port, set bootstrap.servers in --config or -X, or set KAFKA_BOOTSTRAP"
                ),
            }
        }
        props
            .entry("client.id".into())
            .or_insert_with(|| "strom-cli".into());
        Ok(props)
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Version => println!("strom {}", env!("CARGO_PKG_VERSION")),
        Command::Explain { file } => crate::pipeline::explain(file)?,
        Command::Run {
            file,
            bounded,
            checkpoint_interval_ms,
            parallelism,
            application_id,
            instance,
        } => {
            // An explicit --bootstrap wins over the tables' properties, which win
            // over $KAFKA_BOOTSTRAP.
            let mut defaults = BTreeMap::new();
            let mut overrides = BTreeMap::new();
            if let Some(b) = &cli.bootstrap {
                overrides.insert("bootstrap.servers".to_string(), b.clone());
            } else if let Ok(b) = std::env::var("KAFKA_BOOTSTRAP") {
                defaults.insert("bootstrap.servers".to_string(), b);
            }
            crate::pipeline::run(
                file,
                crate::pipeline::RunFlags {
                    bounded: *bounded,
                    checkpoint_interval: Duration::from_millis(*checkpoint_interval_ms),
                    parallelism: *parallelism,
                    application_id: application_id.clone(),
                    instance: *instance,
                },
                defaults,
                overrides,
            )
            .await?
        }
        Command::Topics { action } => topics(&cli, action).await?,
        Command::Produce {
            topic,
            key_separator,
        } => produce(&cli, topic, key_separator.as_deref()).await?,
        Command::Consume {
            topic,
            from_beginning,
            max_messages,
            timeout_ms,
            isolation_level,
            print_key,
        } => {
            consume(
                &cli,
                topic,
                ConsumeFlags {
                    from_beginning: *from_beginning,
                    max_messages: *max_messages,
                    idle_timeout: Duration::from_millis(*timeout_ms),
                    isolation: isolation_level.map(IsolationLevel::from),
                    print_key: *print_key,
                },
            )
            .await?
        }
    }
    Ok(())
}

async fn topics(cli: &Cli, action: &TopicsAction) -> anyhow::Result<()> {
    let props = cli.properties()?;
    let config = ProducerConfig::from_properties(&props)?;
    let client = Client::connect(config.client).await?;
    let admin = Admin::new(client.clone());
    match action {
        TopicsAction::Create {
            topic,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut new = NewTopic::new(topic, *partitions).replication_factor(*replication_factor);
            for c in configs {
                let (k, v) = split_pair(c)?;
                new = new.config(k, v);
            }
            admin.create_topics(&[new]).await?;
            println!("created topic {topic}");
        }
        TopicsAction::Describe { topics } => {
            for t in topics {
                let info = client.topic(t).await?;
                println!(
                    "{} id={} partitions={}",
                    info.name,
                    info.id,
                    info.partitions.len()
                );
                for p in &info.partitions {
                    println!(
                        "  partition {} leader {} epoch {} replicas {:?} isr {:?}",
                        p.partition, p.leader, p.leader_epoch, p.replicas, p.isr
                    );
                }
            }
        }
        TopicsAction::Delete { topics } => {
            admin.delete_topics(topics).await?;
            println!("deleted {}", topics.join(", "));
        }
    }
    Ok(())
}

async fn produce(cli: &Cli, topic: &str, key_separator: Option<&str>) -> anyhow::Result<()> {
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

/// `strom consume`'s own flags; `None` and `false` leave the properties in charge.
struct ConsumeFlags {
    from_beginning: bool,
    max_messages: Option<usize>,
    idle_timeout: Duration,
    isolation: Option<IsolationLevel>,
    print_key: bool,
}

async fn consume(cli: &Cli, topic: &str, flags: ConsumeFlags) -> anyhow::Result<()> {
    let mut config = ConsumerConfig::from_properties(&cli.properties()?)?;
    if flags.from_beginning {
        config.auto_offset_reset = OffsetReset::Earliest;
    }
    if let Some(level) = flags.isolation {
        config.isolation_level = level;
    }
    let isolation = config.isolation_level;
    let mut consumer = Consumer::new(config).await?;
    let partitions = consumer.client().topic(topic).await?.partitions.len() as i32;
    consumer.assign((0..partitions).map(|p| (topic.to_string(), p)));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0usize;
    let limit = flags.max_messages.unwrap_or(usize::MAX);
    while count < limit {
        let records = consumer.poll_for(flags.idle_timeout).await?;
        if records.is_empty() {
            out.flush()?;
            if let Err(e) = caught_up(&consumer, topic, partitions, isolation, flags.idle_timeout) {
                eprintln!("consumed {count} records from {topic}");
                return Err(e);
            }
            break;
        }
        for r in records {
            if count >= limit {
                break;
            }
            let value = r
                .value
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            if flags.print_key {
                let key = r
                    .key
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                writeln!(out, "{key}\t{value}")?;
            } else {
                writeln!(out, "{value}")?;
            }
            count += 1;
        }
        out.flush()?;
    }
    eprintln!("consumed {count} records from {topic}");
    consumer.close().await;
    Ok(())
}

/// After `idle` without a record: Ok when every partition was fetched and its
/// position reached the end (the high watermark, or the last stable offset under
/// read_committed), so the topic simply had nothing new; otherwise the error that
/// kept the consumer from reading.
fn caught_up(
    consumer: &Consumer,
    topic: &str,
    partitions: i32,
    isolation: IsolationLevel,
    idle: Duration,
) -> anyhow::Result<()> {
    if let Some(e) = consumer.last_error() {
        bail!("reading {topic} failed for {} ms: {e}", idle.as_millis());
    }
    for p in 0..partitions {
        let Some(o) = consumer.partition_offsets(topic, p) else {
            continue;
        };
        let end = match isolation {
            IsolationLevel::ReadCommitted if o.last_stable_offset >= 0 => o.last_stable_offset,
            _ => o.high_watermark,
        };
        match o.position {
            _ if o.high_watermark < 0 => bail!(
                "no fetch of {topic}-{p} was answered within {} ms",
                idle.as_millis()
            ),
            Some(position) if position < end => bail!(
                "{topic}-{p} stayed at offset {position} below its end offset {end} for {} ms",
                idle.as_millis()
            ),
            None => bail!(
                "{topic}-{p} has no position after {} ms (offset reset not answered)",
                idle.as_millis()
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_and_its_causes_read_once_on_one_line() {
        let inner = kafka_wire::Error::TransactionIncomplete {
            source: Box::new(kafka_wire::Error::Timeout {
                context: "EndTxn to 127.0.0.1:9092".into(),
            }),
        };
        let e = anyhow::Error::from(inner).context("committing");
        assert_eq!(
            one_line(&e),
            "committing: transaction operation did not complete (retry it): timed out: EndTxn to 127.0.0.1:9092"
        );
    }

    #[test]
    fn a_file_error_keeps_the_path_and_the_os_reason() {
        let e = std::fs::read_to_string("/nonexistent/strom.properties")
            .with_context(|| "reading /nonexistent/strom.properties")
            .unwrap_err();
        assert_eq!(
            one_line(&e),
            "reading /nonexistent/strom.properties: No such file or directory (os error 2)"
        );
    }
}
