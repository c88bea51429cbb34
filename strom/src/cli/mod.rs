//! Command-line parsing and the Kafka tool commands.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kafka_wire::client::config::IsolationLevel;
use kafka_wire::client::properties;

/// strom: Kafka stream processing in pure Rust.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Exit status: 0 on success; 1 on an error, printed as one line on stderr \
                  (`error: <what failed>: <cause> (hint: <what to do>)`); 2 on bad usage."
)]
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
    /// Log lines on stderr as text or as one JSON object per line; which lines
    /// is set by RUST_LOG (e.g. `info`, `kafka_wire=debug,warn`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
        /// Whether a checkpoint also comes as soon as every source has read all
        /// its input, at most every eighth of the interval (default: when a sink
        /// is exactly-once, whose output then shows without waiting for the
        /// interval).
        #[arg(long, value_name = "BOOL")]
        checkpoint_when_caught_up: Option<bool>,
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
        /// Where to serve the status page, /metrics, /healthz, /readyz and /api/jobs
        /// (HOST:PORT; port 0 picks a free one; `off` serves nothing).
        #[arg(long, env = "STROM_HTTP_ADDR", default_value = "127.0.0.1:8081")]
        http_addr: String,
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
    /// Manage consumer groups: list, describe (lag), delete, reset or delete offsets.
    Groups {
        #[command(subcommand)]
        action: GroupsAction,
    },
    /// Inspect transactions and abort hanging ones (kafka-transactions.sh).
    Txns {
        #[command(subcommand)]
        action: TxnsAction,
    },
    /// List, create and delete ACLs (kafka-acls.sh).
    Acls {
        #[command(subcommand)]
        action: AclsAction,
    },
    /// Describe the cluster.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Produce lines from stdin (or --file), one record per line.
    Produce {
        /// Topic to write to.
        #[arg(long)]
        topic: String,
        /// Split each line at the first occurrence of this separator into key and value.
        #[arg(long, short = 'K')]
        key_separator: Option<String>,
        /// A header `key=value` on every record (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Write every record to this partition (default: the partitioner's choice).
        #[arg(long, short = 'p')]
        partition: Option<i32>,
        /// Read the lines from this file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Send at most this many records per second.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Consume records and print them, one per line: from every partition (or
    /// those given), or as a member of a consumer group (`--group`, or `group.id`
    /// in the properties) that commits the offsets of what it printed.
    Consume {
        /// Topic to read.
        #[arg(long)]
        topic: String,
        /// Start at the earliest offset (the same as `--from beginning`).
        #[arg(long)]
        from_beginning: bool,
        /// Where to start: `beginning`, `end`, an offset, `-N` (N before the end),
        /// `@MS` (epoch ms) or a UTC time `2026-12-03T10:00:00Z`. Without it
        /// `auto.offset.reset` decides (default `latest`); in a group, the group's
        /// committed offsets come first.
        #[arg(long, allow_hyphen_values = true)]
        from: Option<StartAt>,
        /// Read only these partitions (repeatable; not with a group).
        #[arg(long = "partition", short = 'p')]
        partitions: Vec<i32>,
        /// Consume as a member of this consumer group and commit what was printed.
        #[arg(long, short = 'g')]
        group: Option<String>,
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
        /// Print with a format string, as kcat's -f: %t topic, %p partition,
        /// %o offset, %k key, %K key length, %s value, %S value length, %T
        /// timestamp (ms), %h headers, %%; \n \t \r \\ escapes. No newline is
        /// added.
        #[arg(long = "format", short = 'f', conflicts_with_all = ["json", "print_key"])]
        format: Option<String>,
        /// Print one JSON object per record: topic, partition, offset, timestamp,
        /// timestamp_type, key, value, headers (non-UTF-8 bytes in base64).
        #[arg(long, conflicts_with = "print_key")]
        json: bool,
    },
}

/// `--log-format` values.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
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
    /// List the cluster's topics, one name per line.
    List {
        /// Include internal topics (`__consumer_offsets`, `__transaction_state`).
        #[arg(long)]
        internal: bool,
        /// Follow each name with its partition count and replication factor.
        #[arg(long)]
        counts: bool,
    },
    /// Describe topics as kafka-topics.sh --describe does: the topic (with its own
    /// configs), then one line per partition.
    Describe {
        /// Names (all topics when none is given).
        topics: Vec<String>,
        /// With no names: include internal topics.
        #[arg(long)]
        internal: bool,
    },
    /// Delete topics.
    Delete {
        /// Names.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Change a topic's configs; the others stay as they are.
    AlterConfig {
        /// Name.
        topic: String,
        /// Set a config, `key=value` (repeatable).
        #[arg(long = "set", required_unless_present = "delete")]
        set: Vec<String>,
        /// Revert a config to its default (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Delete the records before an offset: the partitions' log start offsets
    /// move forward to it.
    DeleteRecords {
        /// Name.
        topic: String,
        /// Partitions (repeatable; all partitions when none is given).
        #[arg(long = "partition")]
        partitions: Vec<i32>,
        /// Delete the records before this offset.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        before_offset: Option<i64>,
        /// Delete every record up to the high watermark.
        #[arg(long)]
        all: bool,
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
    /// How log lines are written.
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// The properties of the `--config` file (none without one).
    fn config_file(&self) -> anyhow::Result<BTreeMap<String, String>> {
        match &self.config {
            Some(path) => Ok(properties::parse(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )),
            None => Ok(BTreeMap::new()),
        }
    }

    fn properties(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut props = self.config_file()?;
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

    /// The Kafka properties of `strom run`: (defaults the tables' properties may
    /// override, overrides that win over them). `--config` and $KAFKA_BOOTSTRAP
    /// are defaults; `-X` and `--bootstrap`, given for this run, are overrides.
    fn run_properties(
        &self,
    ) -> anyhow::Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
        let mut defaults = self.config_file()?;
        if !defaults.contains_key("bootstrap.servers") {
            if let Ok(b) = std::env::var("KAFKA_BOOTSTRAP") {
                if !b.trim().is_empty() {
                    defaults.insert("bootstrap.servers".to_string(), b.trim().to_string());
                }
            }
        }
        let mut overrides = BTreeMap::new();
        for p in &self.properties {
            let (k, v) = split_pair(p)?;
            overrides.insert(k, v);
        }
        if let Some(b) = &self.bootstrap {
            overrides.insert("bootstrap.servers".to_string(), b.clone());
        }
        Ok((defaults, overrides))
    }
}

mod acls;
mod admin;
mod advice;
mod cluster;
mod consume;
mod groups;
mod output;
mod produce;
mod topics;
mod txns;

use acls::{AclsAction, acls};
pub use advice::advice;
use cluster::{ClusterAction, cluster};
use consume::{ConsumeFlags, StartAt, consume};
use groups::{GroupsAction, groups};
use output::RecordOutput;
use produce::{ProduceFlags, produce};
use topics::topics;
use txns::{TxnsAction, txns};

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Version => println!("strom {}", env!("CARGO_PKG_VERSION")),
        Command::Explain { file } => crate::pipeline::explain(file)?,
        Command::Run {
            file,
            bounded,
            checkpoint_interval_ms,
            checkpoint_when_caught_up,
            parallelism,
            application_id,
            instance,
            http_addr,
        } => {
            // Explicit flags (-X, then --bootstrap) win over the tables'
            // properties, which win over the --config file and $KAFKA_BOOTSTRAP.
            let (defaults, overrides) = cli.run_properties()?;
            crate::pipeline::run(
                file,
                crate::pipeline::RunFlags {
                    bounded: *bounded,
                    checkpoint_interval: Duration::from_millis(*checkpoint_interval_ms),
                    checkpoint_when_caught_up: *checkpoint_when_caught_up,
                    parallelism: *parallelism,
                    application_id: application_id.clone(),
                    instance: *instance,
                    http_addr: crate::http::parse_addr(http_addr),
                },
                defaults,
                overrides,
            )
            .await?
        }
        Command::Topics { action } => topics(&cli, action).await?,
        Command::Groups { action } => groups(&cli, action).await?,
        Command::Txns { action } => txns(&cli, action).await?,
        Command::Cluster { action } => cluster(&cli, action).await?,
        Command::Acls { action } => acls(&cli, action).await?,
        Command::Produce {
            topic,
            key_separator,
            headers,
            partition,
            file,
            rate,
        } => {
            produce(
                &cli,
                topic,
                ProduceFlags {
                    key_separator: key_separator.clone(),
                    headers: headers.clone(),
                    partition: *partition,
                    file: file.clone(),
                    rate: *rate,
                },
            )
            .await?
        }
        Command::Consume {
            topic,
            from_beginning,
            from,
            partitions,
            group,
            max_messages,
            timeout_ms,
            isolation_level,
            print_key,
            format,
            json,
        } => {
            let output = match (format, json, print_key) {
                (Some(f), _, _) => RecordOutput::format(f)?,
                (None, true, _) => RecordOutput::Json,
                (None, false, true) => RecordOutput::KeyValue,
                (None, false, false) => RecordOutput::Value,
            };
            consume(
                &cli,
                topic,
                ConsumeFlags {
                    from_beginning: *from_beginning,
                    from: *from,
                    partitions: partitions.clone(),
                    group: group.clone(),
                    max_messages: *max_messages,
                    idle_timeout: Duration::from_millis(*timeout_ms),
                    isolation: isolation_level.map(IsolationLevel::from),
                    output,
                },
            )
            .await?
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
