//! Side-by-side Kafka client benchmark: strom's `kafka-wire` against librdkafka
//! (`rdkafka`), `rskafka` and the Java `ProducerPerformance` / `ConsumerPerformance`
//! tools, on the same broker and workload. A benchmark, not a test: not in CI.
//!
//! ```text
//!  parent (this binary)                    child (this binary again, or the JVM)
//!  ───────────────────                     ─────────────────────────────────────
//!  create a fresh topic per client ──────► `child --client X --phase produce`
//!  wait, read own cutime+cstime delta ◄─── prints one BENCH-RESULT line
//!  ... then every client consumes one topic back ...
//!  Markdown table ──► stdout and bench/RESULTS.md (appended)
//! ```
//!
//! CPU time is the child's whole-process user+system time, read by the parent from
//! its own `/proc/self/stat` children counters (cutime, cstime) before and after
//! waiting for each child, so Rust and Java clients are measured the same way.

mod common;
mod java;
mod pipelines;
mod rdk;
mod report;
mod rsk;
mod strom;
mod tls;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use kafka_wire::client::admin::NewTopic;

use crate::common::{Measured, Workload};
use crate::report::{Machine, Row};

#[derive(Debug, Parser)]
#[command(about = "Kafka client benchmark: strom vs librdkafka vs rskafka vs Java")]
struct Cli {
    #[command(flatten)]
    workload: Workload,
    /// Clients to run, in this order.
    #[arg(long, value_delimiter = ',', default_values = ["strom", "rdkafka", "rskafka", "rskafka-batching", "java"])]
    clients: Vec<ClientKind>,
    /// Whose produced topic every consumer reads back (all read the same data).
    #[arg(long, default_value = "rdkafka")]
    consume_from: ClientKind,
    /// Skip the consume phase.
    #[arg(long)]
    no_consume: bool,
    /// Keep the topics instead of deleting them at the end.
    #[arg(long)]
    keep_topics: bool,
    /// Where to append the results (Markdown).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md"))]
    results: PathBuf,
    #[command(subcommand)]
    child: Option<ChildCmd>,
}

#[derive(Debug, Subcommand)]
enum ChildCmd {
    /// End-to-end strom pipelines over Kafka (see `pipelines.rs`).
    Pipelines(pipelines::Args),
    /// Producer and consumer throughput over TLS against PLAINTEXT, strom and
    /// librdkafka (see `tls.rs`).
    Tls(tls::Args),
    /// Internal: one pipeline process of `pipelines`.
    #[command(hide = true)]
    PipelineChild(pipelines::ChildArgs),
    /// Internal: run one client's phase in this process and print BENCH-RESULT.
    #[command(hide = true)]
    Child {
        #[arg(long)]
        client: ClientKind,
        #[arg(long)]
        phase: Phase,
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        workload: Workload,
    },
}

/// A client under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientKind {
    /// strom's kafka-wire.
    Strom,
    /// librdkafka via the rdkafka crate.
    Rdkafka,
    /// rskafka's `PartitionClient`, batches built by the bench.
    Rskafka,
    /// rskafka's record-level API: `BatchProducer` (linger) and `StreamConsumer`.
    RskafkaBatching,
    /// Java ProducerPerformance / ConsumerPerformance.
    Java,
}

impl ClientKind {
    /// Name in topics and tables.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Strom => "strom",
            ClientKind::Rdkafka => "librdkafka",
            ClientKind::Rskafka => "rskafka",
            ClientKind::RskafkaBatching => "rskafka-batching",
            ClientKind::Java => "java",
        }
    }
}

/// Which half of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    /// Produce N records.
    Produce,
    /// Consume N records from the beginning.
    Consume,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match &cli.child {
        Some(ChildCmd::Child {
            client,
            phase,
            topic,
            workload,
        }) => {
            let m = run_in_process(*client, *phase, topic, workload)?;
            println!("{}", m.to_line());
            Ok(())
        }
        Some(ChildCmd::Pipelines(args)) => pipelines::run(args),
        Some(ChildCmd::Tls(args)) => tls::run(args),
        Some(ChildCmd::PipelineChild(args)) => pipelines::child(args),
        None => run_parent(&cli),
    }
}

fn run_in_process(client: ClientKind, phase: Phase, topic: &str, w: &Workload) -> Result<Measured> {
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match (client, phase) {
        (ClientKind::Strom, Phase::Produce) => {
            rt()?.block_on(strom::produce(w, topic, w.strom_collector))
        }
        (ClientKind::Strom, Phase::Consume) => rt()?.block_on(strom::consume(w, topic)),
        (ClientKind::Rskafka, Phase::Produce) => rt()?.block_on(rsk::produce(w, topic)),
        (ClientKind::Rskafka, Phase::Consume) => rt()?.block_on(rsk::consume(w, topic)),
        (ClientKind::RskafkaBatching, Phase::Produce) => {
            rt()?.block_on(rsk::produce_batching(w, topic))
        }
        (ClientKind::RskafkaBatching, Phase::Consume) => {
            rt()?.block_on(rsk::consume_stream(w, topic))
        }
        (ClientKind::Rdkafka, Phase::Produce) => rdk::produce(w, topic),
        (ClientKind::Rdkafka, Phase::Consume) => rdk::consume(w, topic),
        (ClientKind::Java, _) => bail!("the Java tools run as their own processes"),
    }
}

/// Repository root (`bench/..`), where `scripts/kafka` lives.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// CPU seconds (user + system) of this process's waited-for children so far.
fn children_cpu_secs(clk_tck: f64) -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the parenthesised command name; cutime and cstime are fields 16
    // and 17 of the whole line, i.e. 14th and 15th after ") ".
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("odd /proc/self/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let cutime: f64 = f.get(13).context("no cutime")?.parse()?;
    let cstime: f64 = f.get(14).context("no cstime")?.parse()?;
    Ok((cutime + cstime) / clk_tck)
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The process listening on the bootstrap address's port (the broker), found
/// through the socket inode in `/proc/net/tcp{,6}` and the processes' open fds.
fn broker_pid(bootstrap: &str) -> Option<u32> {
    let port: u16 = bootstrap.rsplit_once(':')?.1.parse().ok()?;
    let port_hex = format!(":{port:04X}");
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|f| {
        std::fs::read_to_string(f)
            .ok()?
            .lines()
            .skip(1)
            .find_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                let listening = cols.get(3) == Some(&"0A");
                (listening && cols.get(1)?.ends_with(&port_hex))
                    .then(|| cols.get(9).map(|s| s.to_string()))?
            })
    })?;
    let target = format!("socket:[{inode}]");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(e.path().join("fd")).ok()?;
            fds.filter_map(|f| f.ok())
                .any(|f| std::fs::read_link(f.path()).is_ok_and(|l| l.to_string_lossy() == target))
                .then_some(pid)
        })
}

/// CPU seconds (user + system) process `pid` has used so far.
fn process_cpu_secs(pid: u32, clk_tck: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck)
}

struct Runner {
    workload: Workload,
    broker_pid: Option<u32>,
    clk_tck: f64,
    root: PathBuf,
    run_id: String,
}

impl Runner {
    /// Runs one client phase in a child process; returns what it measured, its CPU
    /// seconds and the broker's CPU seconds over the same span.
    fn run(
        &self,
        client: ClientKind,
        phase: Phase,
        topic: &str,
    ) -> Result<(Measured, f64, Option<f64>)> {
        let w = &self.workload;
        let broker_cpu = || {
            self.broker_pid
                .and_then(|pid| process_cpu_secs(pid, self.clk_tck))
        };
        let broker_before = broker_cpu();
        let before = children_cpu_secs(self.clk_tck)?;
        let wall = Instant::now();
        let measured = match client {
            ClientKind::Java => match phase {
                Phase::Produce => java::produce(&self.root, w, topic),
                Phase::Consume => {
                    java::consume(&self.root, w, topic, &format!("bench-java-{}", self.run_id))
                }
            },
            _ => {
                let exe = std::env::current_exe()?;
                let out = Command::new(exe)
                    .arg("child")
                    .arg("--client")
                    .arg(
                        client
                            .to_possible_value()
                            .map(|v| v.get_name().to_string())
                            .unwrap_or_default(),
                    )
                    .arg("--phase")
                    .arg(match phase {
                        Phase::Produce => "produce",
                        Phase::Consume => "consume",
                    })
                    .arg("--topic")
                    .arg(topic)
                    .args(["--bootstrap", &w.bootstrap])
                    .args(["--records", &w.records.to_string()])
                    .args(["--record-size", &w.record_size.to_string()])
                    .args(["--partitions", &w.partitions.to_string()])
                    .args(["--batch-size", &w.batch_size.to_string()])
                    .args(["--linger-ms", &w.linger_ms.to_string()])
                    .args(w.strom_collector.then_some("--strom-collector"))
                    .args(w.security.to_args())
                    .output()?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                if !out.status.success() {
                    bail!(
                        "{} {phase:?} exited with {}:\n{stdout}\n{}",
                        client.name(),
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                Measured::from_output(&stdout).context("child printed no BENCH-RESULT line")
            }
        }?;
        let cpu = children_cpu_secs(self.clk_tck)? - before;
        let broker = broker_before.zip(broker_cpu()).map(|(b, a)| a - b);
        eprintln!(
            "[bench] {} {phase:?}: {} records in {:.2}s ({:.0}/s), cpu {:.2}s, broker cpu {}, process wall {:.2}s",
            client.name(),
            measured.records,
            measured.secs,
            measured.records as f64 / measured.secs,
            cpu,
            broker.map_or("n/a".into(), |b| format!("{b:.2}s")),
            wall.elapsed().as_secs_f64()
        );
        Ok((measured, cpu, broker))
    }
}

fn run_parent(cli: &Cli) -> Result<()> {
    let w = cli.workload.clone();
    if w.security.is_secured()
        && let Some(c) = cli
            .clients
            .iter()
            .find(|c| !matches!(c, ClientKind::Strom | ClientKind::Rdkafka))
    {
        bail!(
            "{} runs over PLAINTEXT only in this bench; with --security-protocol {} pick --clients strom,rdkafka",
            c.name(),
            w.security.protocol()
        );
    }
    let machine = Machine::now(&repo_root());
    let broker_pid = broker_pid(&w.bootstrap);
    if broker_pid.is_none() {
        eprintln!(
            "[bench] no local process listens on {}: broker CPU not measured",
            w.bootstrap
        );
    }
    let runner = Runner {
        workload: w.clone(),
        broker_pid,
        clk_tck: clk_tck(),
        root: repo_root(),
        run_id: format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs()
        ),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let admin = rt.block_on(strom::admin(&w))?;
    let topic_of = |c: ClientKind| format!("bench-{}-{}", c.name(), runner.run_id);

    let mut rows: Vec<Row> = Vec::new();
    let mut produced: Vec<ClientKind> = Vec::new();
    let mut created: Vec<String> = Vec::new();
    for &client in &cli.clients {
        let topic = topic_of(client);
        rt.block_on(admin.create_topics(&[NewTopic::new(&topic, w.partitions)]))
            .with_context(|| format!("creating {topic}"))?;
        created.push(topic.clone());
        match runner.run(client, Phase::Produce, &topic) {
            Ok((m, cpu, broker)) => {
                produced.push(client);
                rows.push(Row::ok(client, Phase::Produce, m, cpu, broker));
            }
            Err(e) => {
                eprintln!("[bench] {} produce failed: {e:#}", client.name());
                rows.push(Row::failed(client, Phase::Produce, format!("{e:#}")));
            }
        }
    }

    let mut consume_topic = None;
    if !cli.no_consume {
        let source = if produced.contains(&cli.consume_from) {
            Some(cli.consume_from)
        } else {
            produced.first().copied()
        };
        if let Some(source) = source {
            let topic = topic_of(source);
            consume_topic = Some(topic.clone());
            for &client in &cli.clients {
                match runner.run(client, Phase::Consume, &topic) {
                    Ok((m, cpu, broker)) => {
                        rows.push(Row::ok(client, Phase::Consume, m, cpu, broker))
                    }
                    Err(e) => {
                        eprintln!("[bench] {} consume failed: {e:#}", client.name());
                        rows.push(Row::failed(client, Phase::Consume, format!("{e:#}")));
                    }
                }
            }
        }
    }

    if !cli.keep_topics
        && let Err(e) = rt.block_on(admin.delete_topics(&created))
    {
        eprintln!("[bench] could not delete topics {created:?}: {e}");
    }

    let command: Vec<String> = std::env::args().skip(1).collect();
    let text = report::render(
        &machine,
        &Machine::load_average(),
        &w,
        &command,
        consume_topic.as_deref(),
        &rows,
    );
    println!("{text}");
    report::append(&cli.results, &text)?;
    eprintln!("[bench] appended to {}", cli.results.display());
    Ok(())
}
