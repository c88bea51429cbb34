//! The scale-out benchmark of #16: the running-stats pipeline
//! (`strom_pipeline running-stats`, or with `--pipeline
//! running-stats-repartition` the same keyed through a repartition topic;
//! exactly-once, 1 s checkpoints) as 1, 2 and 3 processes of one group on the
//! same broker.
//!
//! ```text
//!  throughput: preload RECORDS → start N processes → until the group committed
//!              the input's end: records/s, CPU s per M records (user+system of
//!              the processes from /proc/PID/stat, read before SIGTERM)
//!  pauses:     paced input (RATE/s) → one process; a read_committed reader notes
//!              when output arrives; a second process joins, then leaves (SIGTERM);
//!              the first is SIGKILLed and restarted. Pause = the longest time
//!              without output after the event; recovery = from the kill to the
//!              first output written after it (record timestamp past the kill)
//! ```
//!
//! Usage: `scale_bench [--records N] [--rate N] [--pauses-only] [--kafka-props K=V,..]
//! [--pipeline NAME] [--results FILE]` with
//! `KAFKA_BOOTSTRAP` (default 127.0.0.1:9092); `scripts/bench-scale` builds it in
//! release and appends to `bench/RESULTS-pipelines.md`. Needs the
//! `strom_pipeline` binary next to it.
#![allow(clippy::unwrap_used)] // a benchmark: a failed step should stop it

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use kafka_wire::client::admin::{NewTopic, OffsetSpec};
use kafka_wire::client::config::{ConsumerConfig, IsolationLevel, ProducerConfig};
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

/// Partitions of input and output: 6, so 1, 2 and 3 processes get equal shares.
const PARTITIONS: i32 = 6;
const KEYS: u64 = 20_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The topics and clients of one measurement.
struct Setup {
    bootstrap: String,
    admin: Admin,
    producer: Producer,
    app: String,
    input: String,
    output: String,
    /// `KAFKA_PROPS` of the processes.
    kafka_props: String,
    /// The `strom_pipeline` pipeline the processes run.
    pipeline: String,
}

impl Setup {
    async fn new(bootstrap: &str, name: &str) -> Result<Setup> {
        let client = Client::connect(ProducerConfig::new(bootstrap)?.client).await?;
        let admin = Admin::new(client.clone());
        let tag = format!("{}-{:x}", std::process::id(), now_ms());
        let input = format!("scale-{name}-in-{tag}");
        let output = format!("scale-{name}-out-{tag}");
        admin
            .create_topics(&[
                NewTopic::new(&input, PARTITIONS),
                NewTopic::new(&output, PARTITIONS),
            ])
            .await?;
        for t in [&input, &output] {
            let deadline = Instant::now() + Duration::from_secs(10);
            while client
                .topic(t)
                .await
                .map_or(true, |i| i.partitions.is_empty())
            {
                anyhow::ensure!(Instant::now() < deadline, "{t} not in metadata");
                client.invalidate_topic(t);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let props = BTreeMap::from([
            ("bootstrap.servers".to_string(), bootstrap.to_string()),
            ("linger.ms".to_string(), "5".to_string()),
            ("compression.type".to_string(), "lz4".to_string()),
        ]);
        let producer =
            Producer::with_client(client, ProducerConfig::from_properties(&props)?).await?;
        Ok(Setup {
            bootstrap: bootstrap.to_string(),
            admin,
            producer,
            app: format!("scale-{name}-app-{tag}"),
            input,
            output,
            kafka_props: String::new(),
            pipeline: "running-stats".to_string(),
        })
    }

    /// Sends records `from..to` (key `k<i mod KEYS>`, a small integer value).
    async fn send(&self, from: u64, to: u64) -> Result<()> {
        let mut pending = Vec::new();
        for i in from..to {
            let record = ProducerRecord::new(&self.input, (i % 1000).to_string())
                .key(format!("k{}", (i * 7919) % KEYS));
            pending.push(self.producer.send(record).await?);
            if pending.len() >= 50_000 {
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

    fn spawn(&self, instance: u32) -> Result<Child> {
        let exe = std::env::current_exe()?
            .parent()
            .context("no folder")?
            .join("strom_pipeline");
        Ok(Command::new(exe)
            .arg(&self.pipeline)
            .env("KAFKA_BOOTSTRAP", &self.bootstrap)
            .env("APP", &self.app)
            .env("INSTANCE", instance.to_string())
            .env("INPUT", &self.input)
            .env("OUTPUT", &self.output)
            .env("GUARANTEE", "eos")
            .env("CHECKPOINT_MS", "1000")
            .env("KAFKA_PROPS", &self.kafka_props)
            .env(
                "RUST_LOG",
                std::env::var("PIPELINE_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::null())
            .spawn()?)
    }

    /// Input records the group has not committed yet.
    async fn behind(&self, ends: &BTreeMap<i32, i64>) -> Result<i64> {
        let committed = self.admin.list_group_offsets(&self.app).await?;
        Ok(ends
            .iter()
            .map(|(p, end)| {
                let at = committed
                    .get(&(self.input.clone(), *p))
                    .copied()
                    .unwrap_or(0);
                (end - at).max(0)
            })
            .sum())
    }

    async fn input_ends(&self) -> Result<BTreeMap<i32, i64>> {
        let parts: Vec<i32> = (0..PARTITIONS).collect();
        let ends = self
            .admin
            .list_offsets(
                &self.input,
                &parts,
                OffsetSpec::Latest,
                IsolationLevel::ReadUncommitted,
            )
            .await?;
        Ok(ends.into_iter().map(|(p, o)| (p, o.offset)).collect())
    }
}

/// User+system CPU seconds of a live process, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name "(...)": state is field 3; utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status();
}

fn terminate(child: &mut Child) {
    signal(child, "TERM");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Throughput and CPU of `processes` processes over `records` preloaded records.
async fn throughput(
    bootstrap: &str,
    processes: u32,
    records: u64,
    pipeline: &str,
) -> Result<(f64, f64)> {
    let mut setup = Setup::new(bootstrap, &format!("tp{processes}")).await?;
    setup.pipeline = pipeline.to_string();
    setup.send(0, records).await?;
    let ends = setup.input_ends().await?;
    let started = Instant::now();
    let mut children: Vec<Child> = (0..processes)
        .map(|i| setup.spawn(i))
        .collect::<Result<_>>()?;
    let mut cpu = vec![0.0; children.len()];
    loop {
        for (c, child) in cpu.iter_mut().zip(&children) {
            *c = cpu_seconds(child.id()).max(*c);
        }
        if setup.behind(&ends).await? == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "not done in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed().as_secs_f64();
    for (c, child) in cpu.iter_mut().zip(&children) {
        *c = cpu_seconds(child.id()).max(*c);
    }
    for child in &mut children {
        terminate(child);
    }
    let cpu: f64 = cpu.iter().sum();
    Ok((records as f64 / took, cpu / (records as f64 / 1e6)))
}

/// When output arrived at a read_committed reader: (local time, record timestamps).
/// When output arrived: (when, newest record timestamp, output partition).
type Arrivals = Arc<Mutex<Vec<(Instant, i64, i32)>>>;

/// Reads the output with read_committed until `stop`, noting each arrival.
async fn watch_output(
    setup: &Setup,
    arrivals: Arrivals,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), setup.bootstrap.clone()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("isolation.level".to_string(), "read_committed".to_string()),
        ("fetch.max.wait.ms".to_string(), "20".to_string()),
    ]);
    let mut consumer = Consumer::new(ConsumerConfig::from_properties(&props)?).await?;
    consumer.assign((0..PARTITIONS).map(|p| (setup.output.clone(), p)));
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let records = consumer.poll_for(Duration::from_millis(50)).await?;
        let at = Instant::now();
        let mut newest: BTreeMap<i32, i64> = BTreeMap::new();
        for r in &records {
            let ts = newest.entry(r.partition).or_insert(r.timestamp);
            *ts = (*ts).max(r.timestamp);
        }
        let mut all = arrivals.lock().unwrap();
        all.extend(newest.into_iter().map(|(p, ts)| (at, ts, p)));
    }
    consumer.close().await;
    Ok(())
}

/// The longest time without output in `from..from+window`, counted from `from`
/// (of output partition `partition` only, when given).
fn pause_after(
    arrivals: &[(Instant, i64, i32)],
    from: Instant,
    window: Duration,
    partition: Option<i32>,
) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for (at, _, _) in arrivals.iter().filter(|(at, _, p)| {
        *at > from && *at < from + window && partition.is_none_or(|want| want == *p)
    }) {
        longest = longest.max(*at - last);
        last = *at;
    }
    longest.max((from + window).min(Instant::now()) - last)
}

/// Rebalance pauses (join, leave) and the recovery after a kill, under `rate` records/s.
async fn pauses(
    bootstrap: &str,
    rate: u64,
    kafka_props: &str,
    pipeline: &str,
) -> Result<Vec<(String, Duration)>> {
    let mut setup = Setup::new(bootstrap, "pause").await?;
    setup.kafka_props = kafka_props.to_string();
    setup.pipeline = pipeline.to_string();
    let setup = Arc::new(setup);
    let arrivals: Arrivals = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut first = setup.spawn(0)?;
    let feeder = {
        let setup = setup.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let tick = Instant::now();
                setup.send(i, i + rate / 10).await?;
                i += rate / 10;
                tokio::time::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed())).await;
            }
            anyhow::Ok(())
        })
    };
    let reader = {
        let setup = setup.clone();
        let arrivals = arrivals.clone();
        let stop = stop.clone();
        tokio::spawn(async move { watch_output(&setup, arrivals, stop).await })
    };
    let window = Duration::from_secs(15);
    // Steady state first: the normal gap between outputs (the checkpoint interval).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let steady_from = Instant::now();
    tokio::time::sleep(window).await;
    let mut out = vec![(
        "steady state (longest gap, 1 s checkpoints)".to_string(),
        pause_after(&arrivals.lock().unwrap(), steady_from, window, None),
    )];
    let joined = Instant::now();
    let mut second = setup.spawn(1)?;
    tokio::time::sleep(window).await;
    out.push((
        "a second process joins".to_string(),
        pause_after(&arrivals.lock().unwrap(), joined, window, None),
    ));
    // Per output partition (the pipeline keeps keys in their input partition's
    // number): the half with the shortest gaps are the ones the first process
    // kept, the others moved to the second.
    let mut gaps: Vec<Duration> = (0..PARTITIONS)
        .map(|p| pause_after(&arrivals.lock().unwrap(), joined, window, Some(p)))
        .collect();
    gaps.sort();
    let half = gaps.len() / 2;
    out.push((
        format!("a second process joins: the {half} partitions with the shortest gaps (kept), the longest of them"),
        gaps[half - 1],
    ));
    out.push((
        format!(
            "a second process joins: the other {} (moved), the longest",
            gaps.len() - half
        ),
        gaps[gaps.len() - 1],
    ));
    let left = Instant::now();
    tokio::task::block_in_place(|| terminate(&mut second));
    tokio::time::sleep(window).await;
    out.push((
        "the second process leaves (SIGTERM)".to_string(),
        pause_after(&arrivals.lock().unwrap(), left, window, None),
    ));
    let killed = Instant::now();
    let killed_ms = now_ms();
    let _ = first.kill();
    let _ = first.wait();
    let mut first = setup.spawn(0)?;
    // KIP-848: the killed static member holds its instance until the broker's
    // session timeout (45 s by default).
    let after_kill = if kafka_props.contains("group.protocol=consumer") {
        Duration::from_secs(75)
    } else {
        window
    };
    tokio::time::sleep(after_kill).await;
    let recovery = arrivals
        .lock()
        .unwrap()
        .iter()
        .find(|(at, ts, _)| *at > killed && *ts > killed_ms)
        .map_or(after_kill, |(at, _, _)| *at - killed);
    out.push((
        "SIGKILL and restart: first output after the kill".to_string(),
        recovery,
    ));
    stop.store(true, std::sync::atomic::Ordering::Release);
    feeder.await??;
    reader.await??;
    tokio::task::block_in_place(|| terminate(&mut first));
    Ok(out)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut records: u64 = 1_000_000;
    let mut rate: u64 = 20_000;
    let mut pauses_only = false;
    let mut kafka_props = String::new();
    let mut pipeline = "running-stats".to_string();
    let mut results = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bench/RESULTS-pipelines.md"
    ));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().context("a value is missing");
        match a.as_str() {
            "--records" => records = value()?.parse()?,
            "--rate" => rate = value()?.parse()?,
            "--results" => results = PathBuf::from(value()?),
            "--pauses-only" => pauses_only = true,
            "--kafka-props" => kafka_props = value()?,
            "--pipeline" => pipeline = value()?,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    let bootstrap =
        std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_string());
    let mut text = format!(
        "\n## {} — scale-out (#16): {pipeline}, exactly-once, 1 s checkpoints, {PARTITIONS} partitions, {KEYS} keys, {} cores{}\n\n",
        chrono_like_now(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if kafka_props.is_empty() {
            String::new()
        } else {
            format!(", `{kafka_props}`")
        }
    );
    if !pauses_only {
        text.push_str("| processes | records | records/s | CPU s / M records (processes, user+system) |\n|---|---|---|---|\n");
    }
    for n in (1..=3).filter(|_| !pauses_only) {
        let (per_s, cpu) = throughput(&bootstrap, n, records, &pipeline).await?;
        let row = format!("| {n} | {records} | {per_s:.0} | {cpu:.2} |\n");
        eprint!("{row}");
        text.push_str(&row);
    }
    text.push_str(&format!(
        "\n| event (input {rate} records/s, one process) | time without output |\n|---|---|\n"
    ));
    for (what, took) in pauses(&bootstrap, rate, &kafka_props, &pipeline).await? {
        let row = format!("| {what} | {} ms |\n", took.as_millis());
        eprint!("{row}");
        text.push_str(&row);
    }
    print!("{text}");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&results)
        .with_context(|| format!("opening {}", results.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// The UTC date and time to the minute, from the system clock.
fn chrono_like_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    out.unwrap_or_default()
}
