//! End-to-end pipeline benchmark: strom Kafka pipelines (`connectors::kafka`) on
//! one broker, at-least-once against exactly-once, 1 s and 10 s checkpoints.
//!
//! ```text
//!  parent                                   child (this binary: `pipeline-child`)
//!  ──────                                   ─────────────────────────────────────
//!  preload the input topic ───────────────► KafkaJob: Kafka -> map | keyed count -> Kafka
//!  wait, cutime+cstime and broker CPU ◄──── bounded: ends when the input is read
//!  latency: paced input with send times ──► unbounded; the parent reads the output
//!  restart: 100 MB of state, SIGKILL ─────► restarted; restore logged on stderr
//! ```
//!
//! Throughput is the preloaded records over the child's wall time (start-up, group
//! join and the final commit included). Latency is from the record's append
//! (its embedded send time) to the result being readable with read_committed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args as ClapArgs;
use connectors::kafka::{DeliveryGuarantee, Json, KafkaConfig, KafkaJob, KafkaScope, Utf8};
use engine::{Count, Pipeline, PipelineConfig, WatermarkStrategy, Windowed, Windows};
use kafka_wire::client::admin::{NewTopic, OffsetSpec};
use kafka_wire::client::config::{ConsumerConfig, IsolationLevel, ProducerConfig};
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

/// Options of `pipelines`.
#[derive(Debug, Clone, ClapArgs)]
pub struct Args {
    /// Bootstrap broker, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Records preloaded for the throughput runs.
    #[arg(long, default_value_t = 2_000_000)]
    pub records: usize,
    /// Distinct keys of the restart run (about 70 bytes of state each).
    #[arg(long, default_value_t = 1_400_000)]
    pub state_keys: usize,
    /// Records per second of the latency runs.
    #[arg(long, default_value_t = 20_000)]
    pub latency_rate: usize,
    /// Seconds of input of the latency runs.
    #[arg(long, default_value_t = 15)]
    pub latency_secs: u64,
    /// Which parts to run.
    #[arg(long, value_delimiter = ',', default_values = ["throughput", "latency", "restart"])]
    pub parts: Vec<String>,
    /// Where to append the results (Markdown).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS-pipelines.md"))]
    pub results: std::path::PathBuf,
}

/// Options of the hidden `pipeline-child` command.
#[derive(Debug, Clone, ClapArgs)]
pub struct ChildArgs {
    #[arg(long)]
    bootstrap: String,
    #[arg(long)]
    app: String,
    #[arg(long)]
    input: String,
    #[arg(long)]
    output: String,
    /// map | count | stats
    #[arg(long)]
    pipeline: String,
    #[arg(long)]
    exactly_once: bool,
    #[arg(long, default_value_t = 1000)]
    checkpoint_ms: u64,
    #[arg(long)]
    bounded: bool,
}

/// A click of the input.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Click {
    url: String,
    status: u16,
    ts: i64,
}

const PARTITIONS: i32 = 4;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The child: one pipeline process.
pub fn child(args: &ChildArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "warn,connectors::kafka::job=info",
        ))
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let kafka = KafkaConfig::new(&args.bootstrap, &args.app)
            .set("fetch.max.wait.ms", "100")
            .set("compression.type", "lz4")
            .set("linger.ms", "5");
        let config = PipelineConfig::default()
            .checkpoint_interval(Duration::from_millis(args.checkpoint_ms))
            .parallelism(2);
        let job = KafkaJob::new(kafka, config);
        let stop = job.stop_handle();
        tokio::spawn(async move {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                term.recv().await;
                stop.stop();
            }
        });
        let a = args.clone();
        let guarantee = if a.exactly_once {
            DeliveryGuarantee::ExactlyOnce
        } else {
            DeliveryGuarantee::AtLeastOnce
        };
        job.run(move |p: &Pipeline, k: &KafkaScope| {
            let mut source = k.source().topics([a.input.clone()]);
            if a.bounded {
                source = source.bounded();
            }
            match a.pipeline.as_str() {
                "map" => p
                    .source(source.format(Json::<Click>::new()), WatermarkStrategy::no_watermarks())
                    .map(|c| (c.url, c.status, c.ts))
                    .sink(k.sink(&a.output).delivery(guarantee)),
                "count" => p
                    .source(
                        source.format(Json::<Click>::new()),
                        WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
                            .with_timestamp(|c: &Click| c.ts),
                    )
                    .filter(|c| c.status >= 500)
                    .key_by_source_partition(|c| c.url.clone())
                    .window(Windows::tumbling(Duration::from_secs(60)))
                    .aggregate(Count)
                    .sink(
                        k.sink(&a.output)
                            .key(|w: &Windowed<String, u64>| Some(Bytes::from(w.key.clone())))
                            .delivery(guarantee),
                    ),
                "stats" => p
                    .source(source.format(Utf8).with_metadata(), WatermarkStrategy::no_watermarks())
                    .map(|m| {
                        let key = String::from_utf8_lossy(m.key.as_deref().unwrap_or_default())
                            .into_owned();
                        let v: i64 = m.value.trim().parse().unwrap_or(0);
                        (key, 1u64, v, v, v)
                    })
                    .key_by_source_partition(|s: &(String, u64, i64, i64, i64)| s.0.clone())
                    .reduce(|a, b| (a.0.clone(), a.1 + b.1, a.2.min(b.2), a.3.max(b.3), a.4 + b.4))
                    .sink(
                        k.sink(&a.output)
                            .key(|s: &(String, u64, i64, i64, i64)| Some(Bytes::from(s.0.clone())))
                            .delivery(guarantee),
                    ),
                other => {
                    return Err(engine::EngineError::InvalidPipeline(format!(
                        "unknown pipeline {other}"
                    )));
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    })
}

/// The parent's clients and topics.
struct Bench {
    args: Args,
    admin: Admin,
    producer: Producer,
    run: String,
    broker: Option<u32>,
    clk_tck: f64,
}

/// One row of the throughput table.
struct Row {
    pipeline: &'static str,
    exactly_once: bool,
    checkpoint_ms: u64,
    records: usize,
    secs: f64,
    cpu: f64,
    broker_cpu: Option<f64>,
}

impl Bench {
    async fn topic(&self, name: &str) -> Result<String> {
        let topic = format!("bench-{name}-{}", self.run);
        self.admin
            .create_topics(&[NewTopic::new(&topic, PARTITIONS)])
            .await
            .with_context(|| format!("creating {topic}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.admin.client().topic(&topic).await.is_err() {
            if Instant::now() > deadline {
                bail!("{topic} not in metadata");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(topic)
    }

    async fn send_all(&self, records: impl Iterator<Item = ProducerRecord>) -> Result<()> {
        let mut pending = Vec::new();
        for r in records {
            pending.push(self.producer.send(r).await?);
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

    /// `n` clicks over 10,000 urls, one every 10 ms of event time, then a
    /// far-future click per partition so every window closes.
    async fn preload_clicks(&self, topic: &str, n: usize) -> Result<()> {
        let base = now_ms() - 6 * 3_600_000;
        let clicks = (0..n).map(|i| {
            let url = format!("/u{}", (i * 7919) % 10_000);
            let click = Click {
                url: url.clone(),
                status: if i % 10 < 3 { 503 } else { 200 },
                ts: base + (i as i64 * 10) % (5 * 3_600_000),
            };
            ProducerRecord::new(topic, serde_json::to_vec(&click).unwrap_or_default()).key(url)
        });
        self.send_all(clicks).await?;
        let end = (0..PARTITIONS).map(|p| {
            let click = Click {
                url: "/end".into(),
                status: 200,
                ts: now_ms() + 86_400_000,
            };
            ProducerRecord::new(topic, serde_json::to_vec(&click).unwrap_or_default()).partition(p)
        });
        self.send_all(end).await
    }

    fn spawn(&self, app: &str, input: &str, output: &str, pipeline: &str, eos: bool, checkpoint_ms: u64, bounded: bool) -> Result<Child> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("pipeline-child")
            .args(["--bootstrap", &self.args.bootstrap])
            .args(["--app", app, "--input", input, "--output", output])
            .args(["--pipeline", pipeline])
            .args(["--checkpoint-ms", &checkpoint_ms.to_string()])
            .args(eos.then_some("--exactly-once"))
            .args(bounded.then_some("--bounded"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Ok(cmd.spawn()?)
    }

    fn broker_cpu(&self) -> Option<f64> {
        self.broker
            .and_then(|pid| crate::process_cpu_secs(pid, self.clk_tck))
    }

    async fn throughput(&self, pipeline: &'static str, input: &str, eos: bool, checkpoint_ms: u64) -> Result<Row> {
        let name = format!("{pipeline}-{}-{checkpoint_ms}", if eos { "eos" } else { "alo" });
        let output = self.topic(&format!("{name}-out")).await?;
        let app = format!("bench-{name}-{}", self.run);
        let broker_before = self.broker_cpu();
        let before = crate::children_cpu_secs(self.clk_tck)?;
        let started = Instant::now();
        let child = self.spawn(&app, input, &output, pipeline, eos, checkpoint_ms, true)?;
        let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        let secs = started.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!("{name} exited with {}: {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        let cpu = crate::children_cpu_secs(self.clk_tck)? - before;
        let broker_cpu = broker_before.zip(self.broker_cpu()).map(|(b, a)| a - b);
        let row = Row {
            pipeline,
            exactly_once: eos,
            checkpoint_ms,
            records: self.args.records,
            secs,
            cpu,
            broker_cpu,
        };
        eprintln!(
            "[pipelines] {name}: {:.0} records/s, {:.2} CPU s/M (broker {})",
            row.records as f64 / secs,
            cpu / (row.records as f64 / 1e6),
            broker_cpu.map_or("n/a".into(), |b| format!("{:.2}", b / (row.records as f64 / 1e6)))
        );
        Ok(row)
    }

    /// A consumer of `topic` from its current end, read_committed.
    async fn tail(&self, topic: &str) -> Result<Consumer> {
        let props = BTreeMap::from([
            ("bootstrap.servers".to_string(), self.args.bootstrap.clone()),
            ("isolation.level".to_string(), "read_committed".to_string()),
            ("auto.offset.reset".to_string(), "latest".to_string()),
            ("fetch.max.wait.ms".to_string(), "20".to_string()),
        ]);
        let mut c = Consumer::new(ConsumerConfig::from_properties(&props)?).await?;
        c.assign((0..PARTITIONS).map(|p| (topic.to_string(), p)));
        for p in 0..PARTITIONS {
            c.position(topic, p).await?;
        }
        Ok(c)
    }

    /// Send-to-visible latency percentiles (ms) of the map pipeline.
    async fn latency(&self, eos: bool, checkpoint_ms: u64) -> Result<(f64, f64, usize)> {
        let name = format!("latency-{}-{checkpoint_ms}", if eos { "eos" } else { "alo" });
        let input = self.topic(&format!("{name}-in")).await?;
        let output = self.topic(&format!("{name}-out")).await?;
        let app = format!("bench-{name}-{}", self.run);
        let mut out = self.tail(&output).await?;
        let mut child = self.spawn(&app, &input, &output, "map", eos, checkpoint_ms, false)?;
        // Warm up: the first result shows the group was joined.
        let warm = Instant::now();
        loop {
            let click = Click { url: "/warm".into(), status: 200, ts: now_ms() };
            self.send_all(std::iter::once(ProducerRecord::new(&input, serde_json::to_vec(&click)?))).await?;
            if !out.poll_for(Duration::from_secs(2)).await?.is_empty() {
                break;
            }
            if warm.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                bail!("{name}: no output within 60 s");
            }
        }
        let total = self.args.latency_rate * self.args.latency_secs as usize;
        let per_tick = (self.args.latency_rate / 100).max(1);
        let producer = self.producer.clone();
        let sender = tokio::spawn({
            let input = input.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                let mut sent = 0;
                let mut pending = Vec::new();
                while sent < total {
                    tick.tick().await;
                    for i in 0..per_tick {
                        let click = Click { url: format!("/u{}", (sent + i) % 1000), status: 200, ts: now_ms() };
                        let bytes = serde_json::to_vec(&click).unwrap_or_default();
                        if let Ok(f) = producer.send(ProducerRecord::new(&input, bytes)).await {
                            pending.push(f);
                        }
                    }
                    sent += per_tick;
                }
                for f in pending {
                    let _ = f.await;
                }
            }
        });
        let mut latencies = Vec::with_capacity(total);
        let deadline = Instant::now() + Duration::from_secs(self.args.latency_secs + 60);
        while latencies.len() < total && Instant::now() < deadline {
            for r in out.poll_for(Duration::from_millis(500)).await? {
                let seen = now_ms();
                let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap_or_default())?;
                if v[0] == "/warm" {
                    continue;
                }
                if let Some(ts) = v[2].as_i64() {
                    latencies.push((seen - ts) as f64);
                }
            }
        }
        sender.await?;
        terminate(&mut child)?;
        latencies.sort_by(|a, b| a.total_cmp(b));
        let pct = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(f64::NAN);
        eprintln!("[pipelines] {name}: p50 {:.0} ms, p99 {:.0} ms over {} records", pct(0.5), pct(0.99), latencies.len());
        Ok((pct(0.5), pct(0.99), latencies.len()))
    }

    /// Restore and restart-to-first-output with `state_keys` keys of state.
    async fn restart(&self) -> Result<(u64, usize, f64)> {
        let input = self.topic("restart-in").await?;
        let output = self.topic("restart-out").await?;
        let app = format!("bench-restart-{}", self.run);
        let n = self.args.state_keys;
        self.send_all((0..n).map(|i| ProducerRecord::new(&input, (i % 1000).to_string()).key(format!("key-{i:09}")))).await?;
        let mut child = self.spawn(&app, &input, &output, "stats", true, 1000, false)?;
        let started = Instant::now();
        let parts: Vec<i32> = (0..PARTITIONS).collect();
        loop {
            let ends = self.admin.list_offsets(&output, &parts, OffsetSpec::Latest, IsolationLevel::ReadCommitted).await?;
            if ends.values().map(|o| o.offset).sum::<i64>() >= n as i64 {
                break;
            }
            if started.elapsed() > Duration::from_secs(900) {
                let _ = child.kill();
                bail!("the state load did not finish in 900 s");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!("[pipelines] {n} keys of state loaded in {:.1} s", started.elapsed().as_secs_f64());
        // A few idle checkpoints, then a crash.
        tokio::time::sleep(Duration::from_secs(3)).await;
        child.kill()?;
        child.wait()?;
        let mut out = self.tail(&output).await?;
        let restarted = Instant::now();
        let mut child = self.spawn(&app, &input, &output, "stats", true, 1000, false)?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                eprintln!("[restarted] {line}");
                if line.contains("state restored") {
                    let _ = tx.send(line);
                }
            }
        });
        self.send_all(std::iter::once(ProducerRecord::new(&input, "1").key("probe"))).await?;
        let first_output = loop {
            let records = out.poll_for(Duration::from_millis(200)).await?;
            if records.iter().any(|r| r.key.as_deref() == Some(b"probe".as_slice())) {
                break restarted.elapsed().as_secs_f64();
            }
            if restarted.elapsed() > Duration::from_secs(300) {
                let _ = child.kill();
                bail!("no output within 300 s of the restart");
            }
        };
        let line = rx.recv_timeout(Duration::from_secs(10)).context("no restore line")?;
        let field = |name: &str| -> Option<u64> {
            line.split_whitespace().find_map(|w| w.strip_prefix(name)).and_then(|v| v.parse().ok())
        };
        let took = field("took_ms=").unwrap_or(0);
        let bytes = field("bytes_read=").unwrap_or(0) as usize;
        terminate(&mut child)?;
        eprintln!("[pipelines] restart: restore {took} ms for {bytes} bytes, first output after {first_output:.2} s");
        Ok((took, bytes, first_output))
    }
}

fn terminate(child: &mut Child) -> Result<()> {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            bail!("the pipeline did not stop within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The parent: every run, then the table.
pub fn run(args: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let client = Client::connect(ProducerConfig::new(&args.bootstrap)?.client).await?;
        let mut props = BTreeMap::from([
            ("bootstrap.servers".to_string(), args.bootstrap.clone()),
            ("linger.ms".to_string(), "5".to_string()),
            ("compression.type".to_string(), "lz4".to_string()),
        ]);
        props.insert("batch.size".into(), "262144".into());
        let bench = Bench {
            args: args.clone(),
            admin: Admin::new(client.clone()),
            producer: Producer::with_client(client, ProducerConfig::from_properties(&props)?).await?,
            run: format!("{:x}", now_ms()),
            broker: crate::broker_pid(&args.bootstrap),
            clk_tck: crate::clk_tck(),
        };
        let part = |p: &str| args.parts.iter().any(|x| x == p);
        let mut rows = Vec::new();
        for pipeline in ["map", "count"].into_iter().filter(|_| part("throughput")) {
            let input = bench.topic(&format!("{pipeline}-in")).await?;
            bench.preload_clicks(&input, args.records).await?;
            for (eos, checkpoint_ms) in [(false, 1000), (true, 1000), (false, 10_000), (true, 10_000)] {
                rows.push(bench.throughput(pipeline, &input, eos, checkpoint_ms).await?);
            }
        }
        let mut latencies = Vec::new();
        for (eos, checkpoint_ms) in [(false, 1000), (true, 1000), (true, 10_000)]
            .into_iter()
            .filter(|_| part("latency"))
        {
            latencies.push((eos, checkpoint_ms, bench.latency(eos, checkpoint_ms).await?));
        }
        let restart = if part("restart") {
            Some(bench.restart().await?)
        } else {
            None
        };

        let mut md = format!(
            "\n## {} — {} records, {} partitions, parallelism 2\n\n| pipeline | guarantee | checkpoint | records/s | vs at-least-once | CPU s / M records | broker CPU s / M |\n|---|---|---|---|---|---|---|\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            args.records,
            PARTITIONS
        );
        for r in &rows {
            let rate = r.records as f64 / r.secs;
            let base = rows
                .iter()
                .find(|b| b.pipeline == r.pipeline && b.checkpoint_ms == r.checkpoint_ms && !b.exactly_once)
                .map_or(f64::NAN, |b| b.records as f64 / b.secs);
            let per_m = r.records as f64 / 1e6;
            md.push_str(&format!(
                "| {} | {} | {} s | {:.0} | {:.2} | {:.2} | {} |\n",
                r.pipeline,
                if r.exactly_once { "exactly-once" } else { "at-least-once" },
                r.checkpoint_ms / 1000,
                rate,
                rate / base,
                r.cpu / per_m,
                r.broker_cpu.map_or("n/a".into(), |b| format!("{:.2}", b / per_m)),
            ));
        }
        md.push_str("\n| latency (map) | checkpoint | p50 ms | p99 ms | records |\n|---|---|---|---|---|\n");
        for (eos, checkpoint_ms, (p50, p99, n)) in &latencies {
            md.push_str(&format!(
                "| {} | {} s | {p50:.0} | {p99:.0} | {n} |\n",
                if *eos { "exactly-once" } else { "at-least-once" },
                checkpoint_ms / 1000
            ));
        }
        if let Some((took, bytes, first)) = restart {
            let per_100mb = if bytes > 0 { took as f64 * 100e6 / bytes as f64 } else { f64::NAN };
            md.push_str(&format!(
                "\nRestart ({} keys of running stats, exactly-once, SIGKILL): restore {took} ms for {:.1} MB read from the changelog ({per_100mb:.0} ms per 100 MB); first output {first:.2} s after the restart began.\n",
                args.state_keys,
                bytes as f64 / 1e6
            ));
        }
        print!("{md}");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&args.results)?;
        std::io::Write::write_all(&mut f, md.as_bytes())?;
        Ok(())
    })
}
