//! Command-line parsing and the Kafka tool commands.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::{ConsumerConfig, IsolationLevel, ProducerConfig};
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::properties;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

/// strom: Kafka stream processing in pure Rust.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// Bootstrap servers (host:port,...); defaults to $KAFKA_BOOTSTRAP.
    #[arg(long, global = true, env = "KAFKA_BOOTSTRAP")]
    bootstrap: Option<String>,
    /// A Java-style .properties file with client settings (Java property names).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Extra client properties, `key=value` (repeatable); they override --config.
    #[arg(long = "property", short = 'X', global = true)]
    properties: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version of strom.
    Version,
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
        /// Start at the earliest offset instead of the end.
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this many records.
        #[arg(long)]
        max_messages: Option<usize>,
        /// Stop after this long without a record (ms).
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// read_uncommitted or read_committed.
        #[arg(long, default_value = "read_uncommitted")]
        isolation_level: String,
        /// Print `key<TAB>value` instead of the value alone.
        #[arg(long)]
        print_key: bool,
    },
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
            bail!(
                "no broker: pass --bootstrap host:port, set KAFKA_BOOTSTRAP, or bootstrap.servers in --config"
            );
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
            let isolation = match isolation_level.as_str() {
                "read_committed" => IsolationLevel::ReadCommitted,
                "read_uncommitted" => IsolationLevel::ReadUncommitted,
                other => {
                    bail!("--isolation-level: {other:?} is not read_committed or read_uncommitted")
                }
            };
            consume(
                &cli,
                topic,
                *from_beginning,
                *max_messages,
                Duration::from_millis(*timeout_ms),
                isolation,
                *print_key,
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
        pending.push(producer.send(record).await?);
        sent += 1;
        if pending.len() >= 10_000 {
            for f in pending.drain(..) {
                f.await?;
            }
        }
    }
    for f in pending {
        f.await?;
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("stdin reader panicked"))??;
    producer.close(Duration::from_secs(30)).await?;
    eprintln!(
        "produced {sent} records to {topic} in {:.2?}",
        started.elapsed()
    );
    Ok(())
}

async fn consume(
    cli: &Cli,
    topic: &str,
    from_beginning: bool,
    max_messages: Option<usize>,
    idle_timeout: Duration,
    isolation: IsolationLevel,
    print_key: bool,
) -> anyhow::Result<()> {
    let mut props = cli.properties()?;
    props.insert(
        "auto.offset.reset".into(),
        if from_beginning { "earliest" } else { "latest" }.into(),
    );
    props.insert(
        "isolation.level".into(),
        match isolation {
            IsolationLevel::ReadCommitted => "read_committed",
            IsolationLevel::ReadUncommitted => "read_uncommitted",
        }
        .into(),
    );
    let mut consumer = Consumer::new(ConsumerConfig::from_properties(&props)?).await?;
    let partitions = consumer.client().topic(topic).await?.partitions.len() as i32;
    consumer.assign((0..partitions).map(|p| (topic.to_string(), p)));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0usize;
    let limit = max_messages.unwrap_or(usize::MAX);
    while count < limit {
        let records = match consumer.poll_for(idle_timeout).await {
            Ok(r) if r.is_empty() => break,
            Ok(r) => r,
            Err(e) => return Err(e.into()),
        };
        for r in records {
            if count >= limit {
                break;
            }
            let value = r
                .value
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            if print_key {
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
