//! strom against Apache Flink and Kafka Streams: the same pipelines, on the same
//! broker, over the same pre-loaded input, in one run. A benchmark, not a test:
//! not in CI, not a workspace member.
//!
//! ```text
//!  driver (this binary, `run`)                     child process, one per run
//!  ───────────────────────────                     ──────────────────────────
//!  load the input topic once ───────────────────►  strom:     this binary `strom-child` (KafkaJob)
//!  per system × pipeline × guarantee: spawn ────►  strom-sql: `strom run` of a SQL file (strom_sql.rs)
//!                                                  Flink:     java strom.bench.Main flink (MiniCluster)
//!  read the output topic (read_committed) ◄──────  KStreams:  java strom.bench.Main kstreams
//!  at the expected count: /proc CPU, VmHWM; kill
//!  Markdown ──► stdout and RESULTS.md (appended)
//! ```
//!
//! Every child runs unbounded, from a fresh consumer group at the earliest
//! offsets; a run ends when the output holds as many records as the driver
//! computed from the input. Its figures are taken at that moment, before the
//! child is killed.
//!
//! `nexmark` (`nexmark.rs`) runs the Nexmark queries of `examples/nexmark/` on
//! `strom run` and Flink SQL instead.

mod data;
mod join;
mod nexmark;
mod procfs;
mod report;
mod strom_job;
mod strom_sql;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::{ConsumerConfig, ProducerConfig};
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

use crate::data::{Digest, Expected, Spec};
use crate::report::Row;

#[derive(Debug, Parser)]
#[command(about = "strom vs Apache Flink vs Kafka Streams on one broker")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Load the input, run every system × pipeline × guarantee, append the results.
    Run(RunArgs),
    /// Nexmark queries on strom (`strom run`) and Flink SQL over the same events.
    Nexmark(nexmark::Args),
    /// Internal: one strom pipeline process, run until killed.
    #[command(hide = true)]
    StromChild(strom_job::ChildArgs),
}

/// Options of `run`.
#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
    /// Bootstrap broker, host:port (never started or stopped here).
    #[arg(long, env = "KAFKA_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Input records (plus one end marker per partition).
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Event time the input covers, seconds.
    #[arg(long, default_value_t = 300)]
    span_secs: i64,
    /// Partitions of the input and output topics.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Parallelism of every system (strom and Flink subtasks, Kafka Streams threads).
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Systems, in this order: strom (Rust API), strom-sql (`strom run` of SQL),
    /// flink, kstreams.
    #[arg(long, value_delimiter = ',', default_values = ["strom", "strom-sql", "flink", "kstreams"])]
    systems: Vec<String>,
    /// Pipelines: passthrough, filtermap, count, sliding, join; `none` for the latency part only.
    #[arg(long, value_delimiter = ',', default_values = ["passthrough", "filtermap", "count"])]
    pipelines: Vec<String>,
    /// Guarantee and checkpoint (commit) interval: alo-1s, eos-1s, eos-10s, ...
    #[arg(long, value_delimiter = ',', default_values = ["alo-1s", "eos-1s", "eos-10s"])]
    guarantees: Vec<String>,
    /// Java classpath of bench/engines/java (its jar and dependencies).
    #[arg(long, default_value = "")]
    java_cp: String,
    /// The `strom` binary strom-sql runs (bench/engines/run builds it).
    #[arg(long)]
    strom: Option<PathBuf>,
    /// Maximum heap of each JVM.
    #[arg(long, default_value = "2g")]
    java_heap: String,
    /// Flink's state backend: hashmap or rocksdb.
    #[arg(long, default_value = "hashmap")]
    flink_state_backend: String,
    /// Seconds one run may take before it counts as failed.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// State directories and child logs (each run's removed after it, logs kept).
    #[arg(long, default_value = "/tmp/strom-engines")]
    work_dir: PathBuf,
    /// Where to append the results (Markdown).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md"))]
    results: PathBuf,
    /// Seconds of paced input per latency run (pass-through, every system and
    /// guarantee); 0 skips the latency part.
    #[arg(long, default_value_t = 0)]
    latency_secs: u64,
    /// Records per second of the latency runs.
    #[arg(long, default_value_t = 5_000)]
    latency_rate: usize,
    /// Run Kafka Streams on the sliding pipeline too (its output falls short: the
    /// stream time of the repartitioned window task runs ahead of the merge).
    #[arg(long)]
    kstreams_sliding: bool,
    /// An extra Kafka property for strom's pipeline (strom and strom-sql),
    /// `key=value` (repeatable), e.g. `max.partition.fetch.bytes=262144`.
    #[arg(long = "strom-property")]
    strom_properties: Vec<String>,
    /// Runs of each system × pipeline × guarantee, in rounds (each round runs
    /// every guarantee and system once, so the guarantees alternate); the
    /// tables show the run of median records/s and every run's records/s.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

/// The allocator the `strom` binary uses, so the Rust-API child and `strom run`
/// compare on equal terms.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Run(args) => run(&args),
        Cmd::Nexmark(args) => nexmark::run(&args),
        Cmd::StromChild(args) => strom_job::run(&args),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A guarantee label as `alo-1s`: (exactly-once, checkpoint ms).
fn parse_guarantee(label: &str) -> Result<(bool, u64)> {
    let (g, interval) = label
        .split_once('-')
        .with_context(|| format!("guarantee {label}: expected alo-1s, eos-10s, ..."))?;
    let secs: f64 = interval
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("guarantee {label}: interval in seconds, e.g. 1s"))?;
    let eos = match g {
        "alo" => false,
        "eos" => true,
        _ => bail!("guarantee {label}: alo or eos"),
    };
    Ok((eos, (secs * 1000.0) as u64))
}

/// The classpath for `system`: Flink's RocksDB backend runs on its own fork of
/// RocksDB (`frocksdbjni`), Kafka Streams on `rocksdbjni`; both hold the
/// `org.rocksdb` classes, so each JVM gets only its own (with both, Flink's
/// checkpoints of RocksDB state fail with "streamStateHandle cannot be null").
fn java_classpath(all: &str, system: &str) -> String {
    let foreign = if system == "flink" {
        "/rocksdbjni-"
    } else {
        "/frocksdbjni-"
    };
    all.split(':')
        .filter(|entry| !entry.contains(foreign))
        .collect::<Vec<_>>()
        .join(":")
}

/// Creates `topic` and waits (up to 30 s) until the metadata knows it.
async fn create_topic(client: &Client, admin: &Admin, topic: &str, partitions: i32) -> Result<()> {
    admin
        .create_topics(&[NewTopic::new(topic, partitions)])
        .await
        .with_context(|| format!("creating {topic}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.topic(topic).await.is_err() {
        if Instant::now() > deadline {
            bail!("{topic} not in metadata after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Deletes every topic whose name starts with `prefix`; failures are printed.
async fn delete_topics(client: &Client, admin: &Admin, prefix: &str) {
    let names: Vec<String> = match client.list_topics().await {
        Ok(topics) => topics
            .into_iter()
            .map(|t| t.name)
            .filter(|n| n.starts_with(prefix))
            .collect(),
        Err(e) => {
            eprintln!("[engines] listing topics: {e}");
            return;
        }
    };
    if !names.is_empty()
        && let Err(e) = admin.delete_topics(&names).await
    {
        eprintln!("[engines] deleting {names:?}: {e}");
    }
}

/// One child to start.
struct Launch<'a> {
    system: &'a str,
    input: String,
    pipeline: &'a str,
    eos: bool,
    checkpoint_ms: u64,
    app: String,
    output: String,
    /// Checkpoints or state stores (JVMs).
    state: PathBuf,
    /// Its stdout and stderr.
    log: PathBuf,
}

/// The driver's clients, the input and what it must produce.
struct Driver {
    args: RunArgs,
    run_id: String,
    client: Client,
    admin: Admin,
    input: String,
    /// The join's second input topic.
    payments: String,
    /// Its records, end markers not counted.
    payment_records: usize,
    expected: Expected,
    broker: Option<u32>,
    clk_tck: f64,
    producer: Producer,
}

impl Driver {
    async fn create_topic(&self, topic: &str) -> Result<()> {
        create_topic(&self.client, &self.admin, topic, self.args.partitions).await
    }

    /// Deletes every topic whose name starts with `prefix` (output and internal topics).
    async fn delete_topics(&self, prefix: &str) {
        delete_topics(&self.client, &self.admin, prefix).await
    }

    /// Starts `run`'s child, its stdout and stderr into `run.log`.
    fn spawn(&self, run: &Launch) -> Result<Child> {
        let (system, state, log) = (run.system, &run.state, &run.log);
        let common = [
            ("--bootstrap", self.args.bootstrap.clone()),
            ("--input", run.input.clone()),
            ("--output", run.output.clone()),
            ("--app", run.app.clone()),
            ("--pipeline", run.pipeline.to_string()),
            (
                "--guarantee",
                if run.eos { "eos" } else { "alo" }.to_string(),
            ),
            ("--checkpoint-ms", run.checkpoint_ms.to_string()),
            ("--parallelism", self.args.parallelism.to_string()),
        ];
        let mut cmd = match system {
            "strom" => {
                let mut c = wrapped(&std::env::current_exe()?);
                c.arg("strom-child");
                for p in &self.args.strom_properties {
                    c.args(["--property", p]);
                }
                c
            }
            "strom-sql" => self.strom_sql(run)?,
            "flink" | "kstreams" => {
                if self.args.java_cp.is_empty() {
                    bail!("{system} needs --java-cp (bench/engines/run builds it)");
                }
                let mut c = Command::new("java");
                c.arg(format!("-Xmx{}", self.args.java_heap))
                    .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
                    .args([
                        "-cp",
                        &java_classpath(&self.args.java_cp, system),
                        "strom.bench.Main",
                        system,
                    ])
                    .args(["--state-dir", &state.display().to_string()])
                    .args(["--state-backend", &self.args.flink_state_backend]);
                c
            }
            other => bail!("unknown system {other}"),
        };
        if system != "strom-sql" {
            for (flag, value) in common {
                cmd.args([flag, &value]);
            }
            if run.pipeline == "join" {
                cmd.args(["--payments", &self.payments]);
            }
        }
        let log_file = std::fs::File::create(log)?;
        cmd.stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        Ok(cmd.spawn()?)
    }

    /// `strom run` of `run`'s pipeline, its SQL written beside its log.
    fn strom_sql(&self, run: &Launch) -> Result<Command> {
        let Some(strom) = &self.args.strom else {
            bail!("strom-sql needs --strom, the strom binary (bench/engines/run builds it)");
        };
        let script = strom_sql::Tables {
            bootstrap: &self.args.bootstrap,
            input: &run.input,
            payments: &self.payments,
            output: &run.output,
            eos: run.eos,
            properties: &self.args.strom_properties,
        }
        .script(run.pipeline)?;
        let sql = run.log.with_extension("sql");
        std::fs::write(&sql, script).with_context(|| format!("writing {}", sql.display()))?;
        let mut c = wrapped(strom);
        c.args(strom_sql::run_args(
            &sql,
            &run.app,
            self.args.parallelism,
            run.checkpoint_ms,
            false,
        ));
        Ok(c)
    }

    /// Send-to-visible latency of the pass-through pipeline under a paced input:
    /// each value carries its send time as its event time; the latency is from
    /// then to the record being readable with read_committed. (p50 ms, p99 ms,
    /// records seen).
    async fn latency(&self, system: &str, guarantee: &str) -> Result<report::Latency> {
        let (eos, checkpoint_ms) = parse_guarantee(guarantee)?;
        let name = format!("latency-{system}-{guarantee}");
        let prefix = format!("engines-{}-{name}", self.run_id);
        let input = format!("{prefix}-in");
        let output = format!("{prefix}-out");
        self.create_topic(&input).await?;
        self.create_topic(&output).await?;
        let run_dir = self.args.work_dir.join(&self.run_id);
        let state = run_dir.join(&name);
        std::fs::create_dir_all(&state)?;
        let log = run_dir.join(format!("{name}.log"));
        let props = BTreeMap::from([
            ("bootstrap.servers".to_string(), self.args.bootstrap.clone()),
            ("isolation.level".to_string(), "read_committed".to_string()),
            ("auto.offset.reset".to_string(), "earliest".to_string()),
            ("fetch.max.wait.ms".to_string(), "20".to_string()),
        ]);
        let mut out = Consumer::new(ConsumerConfig::from_properties(&props)?).await?;
        let parts: Vec<(String, i32)> = (0..self.args.partitions)
            .map(|p| (output.clone(), p))
            .collect();
        out.assign(parts.clone());
        out.seek_to_beginning(parts).await?;
        let mut child = self.spawn(&Launch {
            system,
            input: input.clone(),
            pipeline: "passthrough",
            eos,
            checkpoint_ms,
            app: format!("{prefix}-app"),
            output: output.clone(),
            state: state.clone(),
            log,
        })?;
        let result = self.paced(&input, &mut out, &mut child).await;
        let _ = child.kill();
        let _ = child.wait();
        drop(out);
        self.delete_topics(&prefix).await;
        let _ = std::fs::remove_dir_all(&state);
        let mut latencies = match result {
            Ok(l) => l,
            Err(e) => {
                eprintln!("[engines] {name} failed: {e:#}");
                return Ok(report::Latency {
                    system: system.into(),
                    guarantee: guarantee.into(),
                    p50: None,
                    p99: None,
                    records: 0,
                    error: Some(format!("{e:#}")),
                });
            }
        };
        latencies.sort_unstable();
        let pct = |q: f64| {
            let i =
                ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
            latencies.get(i).map(|&ms| ms as f64)
        };
        let l = report::Latency {
            system: system.into(),
            guarantee: guarantee.into(),
            p50: pct(0.5),
            p99: pct(0.99),
            records: latencies.len(),
            error: None,
        };
        eprintln!(
            "[engines] {name}: p50 {:?} ms, p99 {:?} ms over {} records",
            l.p50, l.p99, l.records
        );
        Ok(l)
    }

    /// Warms the child up (one record every 500 ms until one comes out), then
    /// sends `latency_rate` records/s for `latency_secs` and collects latencies (ms).
    async fn paced(&self, input: &str, out: &mut Consumer, child: &mut Child) -> Result<Vec<i64>> {
        let send = |key: &str| {
            let value = format!("{key},{},1", now_ms());
            ProducerRecord::new(input, value).key(key.to_string())
        };
        let warm = Instant::now();
        loop {
            self.producer.send(send("warm")).await?.await?;
            if !out.poll_for(Duration::from_millis(500)).await?.is_empty() {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!("exited with {status}");
            }
            if warm.elapsed() > Duration::from_secs(120) {
                bail!("no output within 120 s");
            }
        }
        let total = self.args.latency_rate * self.args.latency_secs as usize;
        let per_tick = (self.args.latency_rate / 100).max(1);
        let producer = self.producer.clone();
        let topic = input.to_string();
        let sender = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut pending = Vec::new();
            let mut sent = 0;
            while sent < total {
                tick.tick().await;
                for i in 0..per_tick {
                    let key = format!("k{:06}", (sent + i) % 100_000);
                    let value = format!("{key},{},1", now_ms());
                    if let Ok(f) = producer
                        .send(ProducerRecord::new(&topic, value).key(key))
                        .await
                    {
                        pending.push(f);
                    }
                }
                sent += per_tick;
            }
            for f in pending {
                let _ = f.await;
            }
        });
        let mut latencies = Vec::with_capacity(total);
        let deadline = Instant::now() + Duration::from_secs(self.args.latency_secs + 60);
        while latencies.len() < total && Instant::now() < deadline {
            for r in out.poll_for(Duration::from_millis(200)).await? {
                let seen = now_ms();
                let value = r.value.as_deref().unwrap_or_default();
                let text = String::from_utf8_lossy(value);
                let mut fields = text.split(',');
                if fields.next() == Some("warm") {
                    continue;
                }
                if let Some(ts) = fields.next().and_then(|t| t.parse::<i64>().ok()) {
                    latencies.push(seen - ts);
                }
            }
        }
        sender.await?;
        Ok(latencies)
    }

    /// One system × pipeline × guarantee.
    /// One run; `round` (of `--repeat`) names its own topics, group and state.
    async fn measure(
        &self,
        system: &str,
        pipeline: &str,
        guarantee: &str,
        round: usize,
    ) -> Result<Row> {
        let (eos, checkpoint_ms) = parse_guarantee(guarantee)?;
        let name = match round {
            0 => format!("{system}-{pipeline}-{guarantee}"),
            r => format!("{system}-{pipeline}-{guarantee}-r{r}"),
        };
        let prefix = format!("engines-{}-{name}", self.run_id);
        let output = format!("{prefix}-out");
        let app = format!("{prefix}-app");
        self.create_topic(&output).await?;
        let run_dir = self.args.work_dir.join(&self.run_id);
        let state = run_dir.join(&name);
        std::fs::create_dir_all(&state)?;
        let log = run_dir.join(format!("{name}.log"));
        let expected = self.expected.of_pipeline(pipeline);

        let props = BTreeMap::from([
            ("bootstrap.servers".to_string(), self.args.bootstrap.clone()),
            ("isolation.level".to_string(), "read_committed".to_string()),
            ("auto.offset.reset".to_string(), "earliest".to_string()),
            ("fetch.max.wait.ms".to_string(), "100".to_string()),
        ]);
        let mut out = Consumer::new(ConsumerConfig::from_properties(&props)?).await?;
        let parts: Vec<(String, i32)> = (0..self.args.partitions)
            .map(|p| (output.clone(), p))
            .collect();
        out.assign(parts.clone());
        out.seek_to_beginning(parts).await?;

        let broker_before = self
            .broker
            .and_then(|pid| procfs::cpu_secs(pid, self.clk_tck));
        let started = Instant::now();
        let mut child = self.spawn(&Launch {
            system,
            input: self.input.clone(),
            pipeline,
            eos,
            checkpoint_ms,
            app,
            output: output.clone(),
            state: state.clone(),
            log: log.clone(),
        })?;
        let pid = child.id();
        let mut got = Digest::default();
        let mut first = None;
        let deadline = started + Duration::from_secs(self.args.timeout_secs);
        let outcome: Result<()> = loop {
            match out.poll_for(Duration::from_millis(100)).await {
                Ok(records) => {
                    for r in records {
                        first.get_or_insert_with(|| started.elapsed().as_secs_f64());
                        got.add(
                            r.key.as_deref().unwrap_or_default(),
                            r.value.as_deref().unwrap_or_default(),
                        );
                    }
                }
                Err(e) => break Err(e.into()),
            }
            if got.count >= expected.count {
                break Ok(());
            }
            if let Some(status) = child.try_wait()? {
                break Err(anyhow::anyhow!("exited with {status}"));
            }
            if Instant::now() > deadline {
                break Err(anyhow::anyhow!(
                    "{} of {} records after {} s",
                    got.count,
                    expected.count,
                    self.args.timeout_secs
                ));
            }
        };
        let secs = started.elapsed().as_secs_f64();
        let cpu = procfs::cpu_secs(pid, self.clk_tck);
        let rss = procfs::peak_rss(pid);
        let broker_cpu = broker_before
            .zip(
                self.broker
                    .and_then(|pid| procfs::cpu_secs(pid, self.clk_tck)),
            )
            .map(|(b, a)| a - b);
        let _ = child.kill();
        let _ = child.wait();
        drop(out);
        self.delete_topics(&prefix).await;
        let _ = std::fs::remove_dir_all(&state);

        let error = outcome.err().map(|e| {
            let tail = std::fs::read_to_string(&log)
                .map(|t| {
                    t.lines()
                        .rev()
                        .take(15)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            eprintln!("[engines] {name} failed: {e:#}\n{tail}");
            format!("{e:#}")
        });
        let row = Row {
            system: system.to_string(),
            pipeline: pipeline.to_string(),
            guarantee: guarantee.to_string(),
            records: self.args.records
                + if pipeline == "join" {
                    self.payment_records
                } else {
                    0
                },
            secs,
            first_output: first,
            cpu,
            broker_cpu,
            rss,
            got,
            expected,
            error,
        };
        eprintln!("[engines] {}", row.summary());
        Ok(row)
    }
}

/// `program` under STROM_CHILD_WRAPPER when it is set, a profiler for
/// example (`heaptrack -o /tmp/strom-child`, `perf record -g -o /tmp/perf.data`).
fn wrapped(program: &Path) -> Command {
    let wrapper = std::env::var("STROM_CHILD_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    match words.next() {
        Some(w) => {
            let mut c = Command::new(w);
            c.args(words).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// This process's arguments, the Java classpath shortened.
fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        *first = "strom-engines-bench".into();
    }
    for i in 1..args.len() {
        if args[i - 1] == "--java-cp" {
            args[i] = "<bench/engines/java classpath>".into();
        }
    }
    args.join(" ")
}

/// Writes `records` to `topic`, each to its own partition or by key.
async fn load(producer: &Producer, topic: &str, records: &[data::Record]) -> Result<()> {
    let mut pending = Vec::new();
    for r in records {
        let mut rec = ProducerRecord::new(topic, r.value()).key(r.key.clone());
        if let Some(p) = r.partition {
            rec = rec.partition(p);
        }
        pending.push(producer.send(rec).await?);
        if pending.len() >= 100_000 {
            for f in pending.drain(..) {
                f.await?;
            }
        }
    }
    for f in pending {
        f.await?;
    }
    Ok(())
}

/// Loads the input, runs the matrix, appends the report.
fn run(args: &RunArgs) -> Result<()> {
    for g in &args.guarantees {
        parse_guarantee(g)?;
    }
    if args.systems.iter().any(|s| s == "strom-sql") && args.strom.is_none() {
        bail!("strom-sql needs --strom, the strom binary (bench/engines/run builds it)");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let load_before = procfs::load_average();
        let run_id = format!("{:x}", now_ms());
        let client = Client::connect(ProducerConfig::new(&args.bootstrap)?.client).await?;
        let props = BTreeMap::from([
            ("bootstrap.servers".to_string(), args.bootstrap.clone()),
            ("linger.ms".to_string(), "5".to_string()),
            ("batch.size".to_string(), "262144".to_string()),
            ("compression.type".to_string(), "lz4".to_string()),
        ]);
        let producer = Producer::with_client(client.clone(), ProducerConfig::from_properties(&props)?).await?;
        let port: u16 = args
            .bootstrap
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .context("--bootstrap host:port")?;
        let broker = procfs::listening_pid(port);
        if broker.is_none() {
            eprintln!("[engines] no local process listens on {}: broker CPU not measured", args.bootstrap);
        }
        let now = now_ms();
        let spec = Spec {
            records: args.records,
            keys: args.keys,
            span_ms: args.span_secs * 1000,
            // Two hours back, on a whole minute: within every retention, never in the future.
            base_ms: (now - 2 * 3_600_000) / 60_000 * 60_000,
            partitions: args.partitions,
        };
        let mut driver = Driver {
            args: args.clone(),
            input: format!("engines-{run_id}-input"),
            payments: format!("engines-{run_id}-payments"),
            payment_records: 0,
            run_id,
            admin: Admin::new(client.clone()),
            client,
            expected: Expected::default(),
            broker,
            clk_tck: procfs::clk_tck(),
            producer: producer.clone(),
        };
        driver.create_topic(&driver.input).await?;
        let loaded = Instant::now();
        let records: Vec<data::Record> = data::records(spec).collect();
        driver.expected = Expected::of(&records);
        load(&producer, &driver.input, &records).await?;
        if args.pipelines.iter().any(|p| p == "join") {
            let payments = join::payments(&records);
            driver.expected.join = join::expected(&records, &payments);
            driver.payment_records = payments.iter().filter(|p| p.partition.is_none()).count();
            driver.create_topic(&driver.payments).await?;
            load(&producer, &driver.payments, &payments).await?;
        }
        drop(records);
        eprintln!(
            "[engines] {} records in {} ({} in {}) in {:.1} s; expected outputs: passthrough {}, filtermap {}, count {}, sliding {}, join {}",
            args.records,
            driver.input,
            driver.payment_records,
            driver.payments,
            loaded.elapsed().as_secs_f64(),
            driver.expected.passthrough.count,
            driver.expected.filtermap.count,
            driver.expected.count.count,
            driver.expected.sliding.count,
            driver.expected.join.count
        );

        let mut rows = Vec::new();
        let mut failure = None;
        'matrix: for pipeline in args.pipelines.iter().filter(|p| p.as_str() != "none") {
            for round in 0..args.repeat.max(1) {
                for guarantee in &args.guarantees {
                    for system in &args.systems {
                        if system == "kstreams" && pipeline == "sliding" && !args.kstreams_sliding {
                            eprintln!("[engines] kstreams sliding skipped (see README: it drops records after the repartition)");
                            continue;
                        }
                        match driver.measure(system, pipeline, guarantee, round).await {
                            Ok(row) => rows.push(row),
                            Err(e) => {
                                failure = Some(e);
                                break 'matrix;
                            }
                        }
                    }
                }
            }
        }
        // Everything of this run: the input, and anything a run's own sweep missed.
        driver.delete_topics(&format!("engines-{}-", driver.run_id)).await;
        let mut latencies = Vec::new();
        if args.latency_secs > 0 && failure.is_none() {
            for guarantee in &args.guarantees {
                for system in &args.systems {
                    latencies.push(driver.latency(system, guarantee).await?);
                }
            }
        }
        driver.delete_topics(&format!("engines-{}-", driver.run_id)).await;
        let md = report::render(&report::Header {
            command: command_line(),
            machine: procfs::machine(),
            load_before,
            load_after: procfs::load_average(),
            records: args.records,
            keys: args.keys,
            span_secs: args.span_secs,
            partitions: args.partitions,
            parallelism: args.parallelism,
            java_heap: args.java_heap.clone(),
            flink_state_backend: args.flink_state_backend.clone(),
            broker_measured: broker.is_some(),
            latency_rate: args.latency_rate,
            repeat: args.repeat.max(1),
        }, &rows, &latencies);
        print!("{md}");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&args.results)?;
        std::io::Write::write_all(&mut f, md.as_bytes())?;
        eprintln!("[engines] appended to {}", args.results.display());
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
}
