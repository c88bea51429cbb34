//! strom pipelines over Kafka against the real broker, judged by Kafka's own Java
//! console consumer (read_committed): exactly-once windowed counts under SIGKILL
//! and broker restarts, running statistics checked record by record (as Kafka
//! Streams' EosTestDriver does), two processes sharing partitions and state, a
//! fenced instance, at-least-once under kills, bounded reads and dead letters;
//! and the fault matrix of #16: SIGKILL and SIGTERM with a third of the
//! transactions aborted on purpose, a crash during scale-in, each output judged
//! by the checkers (`integration_tests::checkers`) against the transaction
//! markers of the output's own log (`integration_tests::txn_log`).
//!
//! The pipelines run as child processes (src/bin/strom_pipeline.rs). The CI sizes
//! are small; `scripts/soak` runs the full figures of the exactly-once issue.
#![allow(clippy::unwrap_used)] // test harness: a failed setup step should panic

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{
    Cluster, broker_is_ours, java_tool, kafka_script, random_topic, require_broker, signal,
};
use kafka_wire::client::admin::{NewTopic, OffsetSpec};
use kafka_wire::client::config::{ConsumerConfig, IsolationLevel, ProducerConfig};
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::group::GroupConsumer;
use kafka_wire::client::transaction::admin::TransactionAdmin;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

/// The pipelines are heavy (debug-build child processes): one test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PARTITIONS: i32 = 4;
const WINDOW_MS: i64 = 60_000;

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One record of the output as a reader saw it.
#[derive(Debug, Clone)]
struct OutputRecord {
    partition: i32,
    offset: i64,
    key: String,
    value: String,
}

/// Topics of one test run and clients to fill and check them.
struct Run {
    bootstrap: String,
    admin: Admin,
    producer: Producer,
    app: String,
    input: String,
    output: String,
}

impl Run {
    async fn new(bootstrap: &str, name: &str) -> Run {
        let client = Client::connect(ProducerConfig::new(bootstrap).unwrap().client)
            .await
            .unwrap();
        let admin = Admin::new(client.clone());
        let input = random_topic(&format!("{name}-in"));
        let output = random_topic(&format!("{name}-out"));
        admin
            .create_topics(&[
                NewTopic::new(&input, PARTITIONS),
                NewTopic::new(&output, PARTITIONS),
            ])
            .await
            .unwrap();
        for t in [&input, &output] {
            integration_tests::topic_metadata(&client, t).await;
        }
        let mut props = BTreeMap::from([
            ("bootstrap.servers".to_string(), bootstrap.to_string()),
            ("linger.ms".to_string(), "5".to_string()),
        ]);
        props.insert("compression.type".into(), "lz4".into());
        let producer =
            Producer::with_client(client, ProducerConfig::from_properties(&props).unwrap())
                .await
                .unwrap();
        Run {
            bootstrap: bootstrap.to_string(),
            admin,
            producer,
            app: random_topic(&format!("{name}-app")),
            input,
            output,
        }
    }

    async fn send_all(&self, records: Vec<ProducerRecord>) {
        let mut pending = Vec::with_capacity(records.len());
        for r in records {
            pending.push(self.producer.send(r).await.unwrap());
            if pending.len() >= 50_000 {
                for f in pending.drain(..) {
                    f.await.unwrap();
                }
            }
        }
        for f in pending {
            f.await.unwrap();
        }
    }

    /// `n` clicks (keyed by url, so the default partitioner puts a url in one
    /// partition), 5% of them up to 4 s out of order (within the 5 s watermark
    /// bound, so nothing is ever late), then one far-future click per partition
    /// that moves the watermark past every window. Returns the expected counts of
    /// status >= 500 per (url, window start).
    async fn clicks(&self, n: usize, seed: u64) -> BTreeMap<(String, i64), u64> {
        let (records, expected) = self.click_records(n, seed);
        self.send_all(records).await;
        expected
    }

    /// [`Run::clicks`] written in 20 slices over `over`, so a test can kill the
    /// pipeline while input keeps arriving.
    async fn clicks_paced(&self, records: Vec<ProducerRecord>, over: Duration) {
        let slice = records.len().div_ceil(20).max(1);
        let mut records = records.into_iter();
        loop {
            let part: Vec<ProducerRecord> = records.by_ref().take(slice).collect();
            if part.is_empty() {
                return;
            }
            self.send_all(part).await;
            tokio::time::sleep(over / 20).await;
        }
    }

    /// The records of [`Run::clicks`] and the expected counts.
    fn click_records(
        &self,
        n: usize,
        seed: u64,
    ) -> (Vec<ProducerRecord>, BTreeMap<(String, i64), u64>) {
        let mut rng = Rng(seed | 1);
        // Recent event times: the broker's retention deletes older ones.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let base = now - now.rem_euclid(WINDOW_MS) - 3 * 3_600_000;
        let mut expected = BTreeMap::new();
        let mut records = Vec::with_capacity(n + PARTITIONS as usize);
        for i in 0..n {
            let url = format!("/u{}", rng.next() % 50);
            let mut ts = base + i as i64 * 10;
            if rng.next() % 100 < 5 {
                ts -= (rng.next() % 4_000) as i64;
            }
            let status = if rng.next() % 10 < 3 {
                500 + (rng.next() % 4) as u16
            } else {
                200
            };
            if status >= 500 {
                *expected
                    .entry((url.clone(), ts - ts.rem_euclid(WINDOW_MS)))
                    .or_default() += 1;
            }
            let value = serde_json::json!({"url": url, "status": status, "ts": ts}).to_string();
            records.push(ProducerRecord::new(&self.input, value).key(url));
        }
        for p in 0..PARTITIONS {
            let value =
                serde_json::json!({"url": "/end", "status": 200, "ts": base + 400 * 86_400_000i64})
                    .to_string();
            records.push(ProducerRecord::new(&self.input, value).partition(p));
        }
        (records, expected)
    }

    /// The output's committed records as `key<TAB>value` lines, read with
    /// read_committed up to the last stable offsets.
    async fn read_output(&self) -> Vec<String> {
        self.read_output_at()
            .await
            .into_iter()
            .map(|r| format!("{}\t{}", r.key, r.value))
            .collect()
    }

    /// The output's committed records with their partitions and offsets, read
    /// with read_committed up to the last stable offsets.
    async fn read_output_at(&self) -> Vec<OutputRecord> {
        let parts: Vec<i32> = (0..PARTITIONS).collect();
        let ends = self
            .admin
            .list_offsets(
                &self.output,
                &parts,
                OffsetSpec::Latest,
                IsolationLevel::ReadCommitted,
            )
            .await
            .unwrap();
        let props = BTreeMap::from([
            ("bootstrap.servers".to_string(), self.bootstrap.clone()),
            ("auto.offset.reset".to_string(), "earliest".to_string()),
            ("isolation.level".to_string(), "read_committed".to_string()),
        ]);
        let mut consumer = Consumer::new(ConsumerConfig::from_properties(&props).unwrap())
            .await
            .unwrap();
        let mut todo: BTreeSet<i32> = parts
            .iter()
            .copied()
            .filter(|p| ends[p].offset > 0)
            .collect();
        consumer.assign(todo.iter().map(|p| (self.output.clone(), *p)));
        let mut out = Vec::new();
        let total: i64 = ends.values().map(|e| e.offset).sum();
        let deadline = Instant::now() + Duration::from_secs(30 + total as u64 / 20_000);
        let text = |v: &Option<bytes::Bytes>| {
            String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned()
        };
        while !todo.is_empty() {
            assert!(Instant::now() < deadline, "output not read to its end");
            let batches = tokio::time::timeout(Duration::from_secs(1), consumer.poll_batches())
                .await
                .unwrap_or(Ok(Vec::new()))
                .unwrap();
            for b in batches {
                let end = ends[&b.partition].offset;
                for r in b.records.iter().filter(|r| r.offset < end) {
                    out.push(OutputRecord {
                        partition: b.partition,
                        offset: r.offset,
                        key: text(&r.key),
                        value: text(&r.value),
                    });
                }
                if b.next_offset >= end {
                    todo.remove(&b.partition);
                }
            }
        }
        consumer.close().await;
        out
    }

    /// Records committed in the output.
    async fn committed_output(&self) -> i64 {
        self.read_output().await.len() as i64
    }

    fn spawn(&self, pipeline: &str, instance: u32, extra: &[(&str, String)]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strom_pipeline"));
        cmd.arg(pipeline)
            .env("KAFKA_BOOTSTRAP", &self.bootstrap)
            .env("APP", &self.app)
            .env("INSTANCE", instance.to_string())
            .env("INPUT", &self.input)
            .env("OUTPUT", &self.output)
            .env(
                "RUST_LOG",
                std::env::var("PIPELINE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    /// Waits until the pipeline's group has committed the input's end offsets
    /// (panics after `limit`): the input is all processed and committed, without
    /// reading the output (which a big soak cannot afford every 250 ms).
    async fn wait_for_consumed(&self, limit: Duration) {
        let parts: Vec<i32> = (0..PARTITIONS).collect();
        let ends = self
            .admin
            .list_offsets(
                &self.input,
                &parts,
                OffsetSpec::Latest,
                IsolationLevel::ReadUncommitted,
            )
            .await
            .unwrap();
        let started = Instant::now();
        loop {
            let committed = self.admin.list_group_offsets(&self.app).await.unwrap();
            let behind: i64 = parts
                .iter()
                .map(|p| {
                    let at = committed
                        .get(&(self.input.clone(), *p))
                        .copied()
                        .unwrap_or(0);
                    (ends[p].offset - at).max(0)
                })
                .sum();
            if behind == 0 {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "{behind} input records not committed after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until the output holds `want` committed records (panics after `limit`).
    async fn wait_for_output(&self, want: i64, limit: Duration) {
        let started = Instant::now();
        loop {
            let have = self.committed_output().await;
            if have >= want {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "output has {have} of {want} records after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Once the output holds every expected window: stops `child` with SIGTERM
    /// (it must exit 0), then checks the output read by the Java consumer
    /// against `expected` and that nothing is left open.
    async fn finish_windows(&self, child: &mut Child, expected: &BTreeMap<(String, i64), u64>) {
        let want = expected.len() as i64;
        self.wait_for_output(want, Duration::from_secs(300)).await;
        // Let a straggling duplicate show up, if there were one.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let status = terminate(child, Duration::from_secs(60));
        assert!(
            status.success(),
            "the pipeline exited with {status} on SIGTERM"
        );
        assert_eq!(self.committed_output().await, want, "output records");
        let lines = java_read_committed(&self.bootstrap, &self.output, want as usize);
        assert_eq!(
            &window_counts(&lines),
            expected,
            "window counts read by the Java consumer"
        );
        self.assert_nothing_hanging().await;
    }

    /// Every topic of the run (input, output, changelogs) has its read_committed
    /// end equal to its read_uncommitted end, and no transaction of the
    /// application is open.
    async fn assert_nothing_hanging(&self) {
        let client = self.admin.client().clone();
        let mut topics = vec![self.output.clone()];
        let internal = [
            format!("{}-error-counts-changelog", self.app),
            format!("{}-running-stats-changelog", self.app),
            format!("{}-by-url-repartition", self.app),
            format!("{}-sequence-changelog", self.app),
        ];
        for t in internal {
            if client.topic(&t).await.is_ok() {
                topics.push(t);
            }
        }
        for t in &topics {
            let n = client.topic(t).await.unwrap().partitions.len() as i32;
            let parts: Vec<i32> = (0..n).collect();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let lso = self
                    .admin
                    .list_offsets(t, &parts, OffsetSpec::Latest, IsolationLevel::ReadCommitted)
                    .await
                    .unwrap();
                let hw = self
                    .admin
                    .list_offsets(
                        t,
                        &parts,
                        OffsetSpec::Latest,
                        IsolationLevel::ReadUncommitted,
                    )
                    .await
                    .unwrap();
                if lso == hw {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{t}: read_committed ends {lso:?} != high watermarks {hw:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let open = TransactionAdmin::new(client)
            .list_transactions(
                &[
                    "Ongoing",
                    "PrepareCommit",
                    "PrepareAbort",
                    "PrepareEpochFence",
                ],
                None,
            )
            .await
            .unwrap();
        let mine: Vec<_> = open
            .iter()
            .filter(|t| t.transactional_id.starts_with(&self.app))
            .collect();
        assert!(
            mine.is_empty(),
            "open transactions of the pipeline: {mine:?}"
        );
    }
}

/// Everything in `topic` read with Kafka's Java console consumer (read_committed),
/// as `key<TAB>value` lines.
fn java_read_committed(bootstrap: &str, topic: &str, expected: usize) -> Vec<String> {
    java_console_consumer(bootstrap, topic, expected, &[])
}

/// [`java_read_committed`] with each record's partition and offset.
fn java_read_committed_at(bootstrap: &str, topic: &str, expected: usize) -> Vec<OutputRecord> {
    let props = [
        "--property",
        "print.partition=true",
        "--property",
        "print.offset=true",
    ];
    java_console_consumer(bootstrap, topic, expected, &props)
        .iter()
        .map(|line| {
            // Partition:P<TAB>Offset:O<TAB>key<TAB>value
            let mut fields = line.splitn(4, '\t');
            let mut next = || fields.next().unwrap_or_default();
            let partition = next().trim_start_matches("Partition:").parse().unwrap();
            let offset = next().trim_start_matches("Offset:").parse().unwrap();
            OutputRecord {
                partition,
                offset,
                key: next().to_string(),
                value: next().to_string(),
            }
        })
        .collect()
}

/// The lines the Java console consumer prints for `topic` (read_committed, keys
/// printed, `more` options added), stopping at `expected` + 1 records or 15 s
/// after the last.
fn java_console_consumer(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    more: &[&str],
) -> Vec<String> {
    let max = (expected + 1).to_string();
    let out = java_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--property",
            "print.key=true",
            "--max-messages",
            &max,
            "--timeout-ms",
            "15000",
        ]
        .into_iter()
        .chain(more.iter().copied())
        .collect::<Vec<_>>(),
        None,
        // The consumer stops itself 15 s after the last record; this bounds a
        // JVM that does not.
        Duration::from_secs(180 + expected as u64 / 10_000),
    );
    out.stdout.lines().map(str::to_string).collect()
}

/// Window counts from output lines `key<TAB>{"key","window":{"start","end"},"value"}`;
/// panics on a duplicate window.
fn window_counts(lines: &[String]) -> BTreeMap<(String, i64), u64> {
    let mut out = BTreeMap::new();
    for line in lines {
        let (_, json) = line.split_once('\t').unwrap_or(("", line));
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let key = v["key"].as_str().unwrap().to_string();
        let start = v["window"]["start"].as_i64().unwrap();
        let count = v["value"].as_u64().unwrap();
        assert!(
            out.insert((key.clone(), start), count).is_none(),
            "duplicate window {key} {start}: {line}"
        );
    }
    out
}

/// A size the soak script raises (`scripts/soak`), else the CI default.
fn soak_size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn terminate(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            kill(child);
            panic!("the pipeline did not stop within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `pipeline` (instance 0), writes `input` over a stretch of time and
/// meanwhile SIGKILLs and restarts the pipeline `kills` times at random moments
/// after 20% of it, killing and restarting the broker `broker_restarts` times
/// among them; returns the running pipeline.
async fn feed_under_kills(
    run: &Run,
    pipeline: &str,
    extra: &[(&str, String)],
    input: Vec<ProducerRecord>,
    kills: u32,
    broker_restarts: u32,
    seed: u64,
) -> Child {
    let mut child = run.spawn(pipeline, 0, extra);
    // The input arrives over the kills, so every kill lands mid-stream.
    let feeding = Duration::from_millis(u64::from(kills + 2 * broker_restarts) * 1_500 + 3_000);
    let kill_loop = async {
        let mut rng = Rng(seed ^ 0x5eed);
        tokio::time::sleep(feeding / 5).await;
        let started = Instant::now();
        let every = (kills / broker_restarts.max(1)).max(1);
        let mut broker_kills = 0;
        for k in 0..kills {
            tokio::time::sleep(Duration::from_millis(300 + rng.next() % 1_200)).await;
            kill(&mut child);
            child = run.spawn(pipeline, 0, extra);
            if broker_kills < broker_restarts && k % every == every - 1 {
                broker_kills += 1;
                kafka_script(&["stop-node", "1", "-9"]);
                tokio::time::sleep(Duration::from_millis(500)).await;
                kafka_script(&["start-node", "1"]);
            }
        }
        eprintln!(
            "{kills} kills, {broker_kills} broker restarts in {:?}",
            started.elapsed()
        );
    };
    tokio::join!(run.clicks_paced(input, feeding), kill_loop);
    child
}

/// Runs the window-count pipeline over `records` clicks, SIGKILLing it `kills`
/// times at random moments after 20% of the output, and checks the output.
async fn windowed_counts_under_kills(
    run: &Run,
    pipeline: &str,
    records: usize,
    kills: u32,
    broker_restarts: u32,
    seed: u64,
) {
    let (input, expected) = run.click_records(records, seed);
    let want = expected.len() as i64;
    eprintln!(
        "app {} input {} output {}: {want} windows expected",
        run.app, run.input, run.output
    );
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        ("CHECKPOINT_MS", "1000".to_string()),
    ];
    let mut child =
        feed_under_kills(run, pipeline, &extra, input, kills, broker_restarts, seed).await;
    run.finish_windows(&mut child, &expected).await;
}

#[tokio::test]
async fn exactly_once_window_counts_survive_sigkill() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-window").await;
    let records = soak_size("STROM_SOAK_RECORDS", 60_000);
    let kills = soak_size("STROM_SOAK_KILLS", 5) as u32;
    windowed_counts_under_kills(&run, "window-count", records, kills, 0, 11).await;
}

#[tokio::test]
async fn exactly_once_window_counts_survive_broker_restarts() {
    let bootstrap = require_broker!();
    if !broker_is_ours(&bootstrap) {
        eprintln!("skipping: the broker at {bootstrap} is not one scripts/kafka runs here");
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-broker").await;
    let records = soak_size("STROM_SOAK_RECORDS", 40_000);
    let kills = soak_size("STROM_SOAK_KILLS", 2) as u32;
    windowed_counts_under_kills(&run, "window-count", records, kills, 2, 23).await;
}

/// The window-count pipeline reaches the broker only through a proxy that, while
/// the input arrives, cycles through network faults: added latency, Produce and
/// EndTxn requests held back 1.5 s (control records arriving late, the
/// KAFKA-17754 pattern), Produce, EndTxn and TxnOffsetCommit requests cut in the
/// middle, every connection dropped, and connections hanging. The output, read
/// directly from the broker, must hold every window exactly once.
///
/// Multi-threaded: the proxy's tasks must keep running while the test blocks in
/// `terminate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_window_counts_survive_network_faults() {
    use integration_tests::proxy::KafkaProxy;
    use kafka_wire::protocol::ApiKey;
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-network").await;
    let proxy = KafkaProxy::start(&bootstrap).await.unwrap();
    let (input, expected) = run.click_records(soak_size("STROM_SOAK_RECORDS", 40_000), 31);
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        ("CHECKPOINT_MS", "1000".to_string()),
        ("KAFKA_BOOTSTRAP", proxy.bootstrap().to_string()),
    ];
    let mut child = run.spawn("window-count", 0, &extra);
    let feeding = Duration::from_secs(16);
    let faults = async {
        tokio::time::sleep(feeding / 5).await;
        for round in 0..2 {
            let steps: [(&str, &dyn Fn()); 9] = [
                ("latency", &|| proxy.set_latency(Duration::from_millis(40))),
                ("hold Produce", &|| {
                    proxy.hold(ApiKey::Produce, Duration::from_millis(1500))
                }),
                ("hold EndTxn", &|| {
                    proxy.hold(ApiKey::EndTxn, Duration::from_millis(1500))
                }),
                ("cut Produce", &|| proxy.cut_next(ApiKey::Produce)),
                ("cut EndTxn", &|| proxy.cut_next(ApiKey::EndTxn)),
                ("cut TxnOffsetCommit", &|| {
                    proxy.cut_next(ApiKey::TxnOffsetCommit)
                }),
                ("drop connections", &|| proxy.drop_connections()),
                ("hang", &|| proxy.hang(true)),
                ("heal", &|| proxy.heal()),
            ];
            for (name, fault) in steps {
                eprintln!("round {round}: {name}");
                fault();
                tokio::time::sleep(Duration::from_millis(900)).await;
                proxy.heal();
            }
        }
        eprintln!(
            "{} requests cut, {} connections accepted",
            proxy.cuts(),
            proxy.accepted()
        );
    };
    tokio::join!(run.clicks_paced(input, feeding), faults);
    proxy.heal();
    run.finish_windows(&mut child, &expected).await;
    assert!(proxy.cuts() >= 2, "the faults never cut a request");
}

/// The pipeline is stopped (SIGSTOP) for 12 s, past its `transaction.timeout.ms`
/// (2 s: the broker aborts its open transaction) and its session timeout (10 s:
/// the group expires it), then resumed: it finds its transaction aborted and its
/// membership gone, rolls back, rejoins, and the output still holds every
/// window exactly once.
#[tokio::test]
async fn exactly_once_window_counts_survive_a_stall_past_the_transaction_and_session_timeouts() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-stall").await;
    let (input, expected) = run.click_records(30_000, 53);
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        ("CHECKPOINT_MS", "1000".to_string()),
        ("KAFKA_PROPS", "transaction.timeout.ms=2000".to_string()),
    ];
    let mut child = run.spawn("window-count", 0, &extra);
    let feeding = Duration::from_secs(20);
    let stall = async {
        tokio::time::sleep(feeding / 4).await;
        signal(&child, "STOP");
        tokio::time::sleep(Duration::from_secs(12)).await;
        signal(&child, "CONT");
    };
    tokio::join!(run.clicks_paced(input, feeding), stall);
    run.finish_windows(&mut child, &expected).await;
}

/// The exactly-once window count against the secured broker: the pipeline
/// connects over SASL_SSL (SCRAM-SHA-512, the broker's certificate checked
/// against the test CA) and is SIGKILLed once mid-run; the output, read over
/// PLAINTEXT by the Java consumer, holds every window exactly once.
#[tokio::test]
async fn exactly_once_window_counts_over_sasl_ssl() {
    let broker = integration_tests::require_secure_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&broker.plaintext, "eos-sasl").await;
    let (input, expected) = run.click_records(20_000, 59);
    let security = [
        "security.protocol=SASL_SSL".to_string(),
        "sasl.mechanism=SCRAM-SHA-512".to_string(),
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
         username=\"admin\" password=\"admin-secret\";"
            .to_string(),
        "ssl.truststore.type=PEM".to_string(),
        format!("ssl.truststore.location={}", broker.cert("ca.pem")),
    ];
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        ("CHECKPOINT_MS", "1000".to_string()),
        ("KAFKA_BOOTSTRAP", broker.sasl_ssl.clone()),
        ("KAFKA_PROPS", security.join(",")),
    ];
    let mut child = feed_under_kills(&run, "window-count", &extra, input, 1, 0, 61).await;
    run.finish_windows(&mut child, &expected).await;
}

/// The leader of partition `partition` of `topic` in `bootstrap`'s cluster.
async fn leader(bootstrap: &str, topic: &str, partition: i32) -> i32 {
    let client = Client::connect(ProducerConfig::new(bootstrap).unwrap().client)
        .await
        .unwrap();
    client.topic(topic).await.unwrap().partitions[partition as usize].leader
}

/// The node id of the transaction coordinator of `transactional_id`.
async fn transaction_coordinator(bootstrap: &str, transactional_id: &str) -> i32 {
    use kafka_wire::client::connection::{Connection, ConnectionOptions};
    use kafka_wire::protocol::messages::FindCoordinatorRequest;
    for addr in bootstrap.split(',') {
        let Ok(conn) = Connection::connect(addr, ConnectionOptions::default()).await else {
            continue;
        };
        let request = FindCoordinatorRequest {
            key_type: 1,
            coordinator_keys: vec![transactional_id.to_string()],
            ..Default::default()
        };
        if let Some(c) = conn.call(&request).await.unwrap().coordinators.first() {
            return c.node_id;
        }
    }
    panic!("no transaction coordinator found for {transactional_id}");
}

/// On a cluster of three brokers (replication 3, min.insync.replicas 2), while
/// the input arrives: the leader of an input partition, the leader of an output
/// partition and the pipeline's transaction coordinator are each killed with -9
/// and restarted. Every window must be in the output exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_window_counts_survive_leader_and_coordinator_kills_on_three_brokers() {
    let _shared = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = tokio::task::spawn_blocking(|| Cluster::up("kafka-three", 3, "512m"))
        .await
        .unwrap();
    let run = Run::new(&cluster.bootstrap, "eos-three").await;
    let (input, expected) = run.click_records(soak_size("STROM_SOAK_RECORDS", 30_000), 47);
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        ("CHECKPOINT_MS", "1000".to_string()),
    ];
    let mut child = run.spawn("window-count", 0, &extra);
    let feeding = Duration::from_secs(24);
    let faults = async {
        tokio::time::sleep(feeding / 5).await;
        for what in ["input leader", "output leader", "transaction coordinator"] {
            let node = match what {
                "input leader" => leader(&run.bootstrap, &run.input, 0).await,
                "output leader" => leader(&run.bootstrap, &run.output, 1).await,
                _ => transaction_coordinator(&run.bootstrap, &format!("{}-0", run.app)).await,
            };
            eprintln!("killing node {node}, the {what}");
            let node = node.to_string();
            tokio::task::block_in_place(|| cluster.script(&["stop-node", &node, "-9"]));
            tokio::time::sleep(Duration::from_secs(2)).await;
            tokio::task::block_in_place(|| cluster.script(&["start-node", &node]));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::join!(run.clicks_paced(input, feeding), faults);
    run.finish_windows(&mut child, &expected).await;
}

#[tokio::test]
async fn a_stopped_pipeline_commits_and_a_second_run_resumes_without_duplicates() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-stop").await;
    let expected = run.clicks(20_000, 5).await;
    let extra = [("GUARANTEE", "eos".to_string())];
    let mut child = run.spawn("window-count", 0, &extra);
    run.wait_for_output(expected.len() as i64 / 3, Duration::from_secs(120))
        .await;
    assert!(terminate(&mut child, Duration::from_secs(60)).success());
    run.assert_nothing_hanging().await;
    let mut child = run.spawn("window-count", 0, &extra);
    run.wait_for_output(expected.len() as i64, Duration::from_secs(180))
        .await;
    assert!(terminate(&mut child, Duration::from_secs(60)).success());
    let lines = java_read_committed(&run.bootstrap, &run.output, expected.len());
    assert_eq!(window_counts(&lines), expected);
}

#[tokio::test]
async fn bounded_reads_what_was_there_at_start_and_ends() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "bounded").await;
    let expected = run.clicks(10_000, 7).await;
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        ("BOUNDED", "1".to_string()),
    ];
    let mut child = run.spawn("window-count", 0, &extra);
    // Once output appears the job has taken its end offsets: what is written
    // after that is not read.
    run.wait_for_output(1, Duration::from_secs(120)).await;
    let late =
        serde_json::json!({"url": "/late", "status": 500, "ts": 1_700_000_000_000i64}).to_string();
    run.send_all(vec![ProducerRecord::new(&run.input, late).key("/late")])
        .await;
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "bounded job did not end"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");
    let lines = java_read_committed(&run.bootstrap, &run.output, expected.len());
    let got = window_counts(&lines);
    // The far-future sentinels were read too: their windows are flushed at the
    // end of bounded input, but their status (200) filters them out.
    assert_eq!(got, expected);
    run.assert_nothing_hanging().await;
}

/// `[key, count, min, max, sum]` after every input record of each key, in input
/// order: what the running-stats pipeline must emit, record by record.
type Stats = BTreeMap<String, Vec<(u64, i64, i64, i64)>>;

impl Run {
    /// `n` records over `keys` keys (`k<i>`), values in -1000..1000; returns the
    /// records and the stats each must produce.
    fn stats_records(&self, n: usize, keys: u64, seed: u64) -> (Vec<ProducerRecord>, Stats) {
        let mut rng = Rng(seed | 1);
        let mut expected: Stats = BTreeMap::new();
        let mut records = Vec::with_capacity(n);
        for _ in 0..n {
            let key = format!("k{}", rng.next() % keys);
            let v = (rng.next() % 2001) as i64 - 1000;
            let seq = expected.entry(key.clone()).or_default();
            let next = match seq.last() {
                Some(&(c, lo, hi, sum)) => (c + 1, lo.min(v), hi.max(v), sum + v),
                None => (1, v, v, v),
            };
            seq.push(next);
            records.push(ProducerRecord::new(&self.input, v.to_string()).key(key));
        }
        (records, expected)
    }
}

/// Reads the output back with the Java console consumer (read_committed):
/// exactly `records` records, each the running stats recomputed from the
/// input; no transaction left open.
async fn read_back_exact_stats(run: &Run, records: usize, expected: &Stats) {
    let lines = java_read_committed(&run.bootstrap, &run.output, records);
    assert_eq!(
        lines.len(),
        records,
        "output records read by the Java consumer"
    );
    check_stats(&lines, expected);
    run.assert_nothing_hanging().await;
}

/// Checks running-stats output lines against `expected`: per key, exactly the
/// expected sequence (output keys share the input's partitioning, so per-key
/// order is input order).
fn check_stats(lines: &[String], expected: &Stats) {
    let mut got: Stats = BTreeMap::new();
    for line in lines {
        let (_, json) = line.split_once('\t').unwrap();
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let key = v[0].as_str().unwrap().to_string();
        let s = (
            v[1].as_u64().unwrap(),
            v[2].as_i64().unwrap(),
            v[3].as_i64().unwrap(),
            v[4].as_i64().unwrap(),
        );
        got.entry(key).or_default().push(s);
    }
    assert_eq!(got.len(), expected.len(), "keys in the output");
    for (key, want) in expected {
        let have = &got[key];
        assert_eq!(
            have.len(),
            want.len(),
            "{key}: {} outputs for {} inputs",
            have.len(),
            want.len()
        );
        for (i, (h, w)) in have.iter().zip(want).enumerate() {
            assert_eq!(h, w, "{key}: output {i} is not recomputed from the input");
        }
    }
}

#[tokio::test]
async fn running_stats_are_recomputed_exactly_from_the_input_under_kills() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-stats").await;
    let keys = soak_size("STROM_SOAK_KEYS", 2_000) as u64;
    let records = soak_size("STROM_SOAK_STATS_RECORDS", 40_000);
    let kills = soak_size("STROM_SOAK_KILLS", 4) as u32;
    let (input, expected) = run.stats_records(records, keys, 29);
    let extra = [("GUARANTEE", "eos".to_string())];
    let mut child = feed_under_kills(&run, "running-stats", &extra, input, kills, 0, 99).await;
    run.wait_for_output(records as i64, Duration::from_secs(300))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(terminate(&mut child, Duration::from_secs(60)).success());
    read_back_exact_stats(&run, records, &expected).await;
}

/// Under the consumer protocol (KIP-848) a SIGKILLed process leaves its static
/// member in the group until the broker's session timeout
/// (`group.consumer.session.timeout.ms`, 45 s by default). The process started
/// again with its instance is refused (UNRELEASED_INSTANCE_ID) and joins again
/// until the broker releases the instance, then goes on from the last
/// checkpoint; the running stats come out exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_consumer_protocol_a_killed_process_started_again_waits_for_its_instance() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-848-kill").await;
    let records = 20_000;
    let (input, expected) = run.stats_records(records, 2_000, 53);
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        ("KAFKA_PROPS", "group.protocol=consumer".to_string()),
    ];
    let started = Instant::now();
    let mut child = feed_under_kills(&run, "running-stats", &extra, input, 2, 0, 53).await;
    run.wait_for_output(records as i64, Duration::from_secs(300))
        .await;
    eprintln!("all output after {:?}", started.elapsed());
    assert!(
        child.try_wait().unwrap().is_none(),
        "the restarted process kept running"
    );
    assert!(terminate(&mut child, Duration::from_secs(60)).success());
    read_back_exact_stats(&run, records, &expected).await;
}

/// Scale out and back in while input arrives: one process of the running-stats
/// pipeline, then two more join (partitions and their state move to them), then
/// those two stop with SIGTERM (final checkpoint, exit 0) and the first takes
/// everything back. Every output record is recomputed from the input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_stats_stay_exact_while_the_pipeline_scales_from_one_to_three_processes_and_back() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-scale").await;
    let records = 30_000;
    let (input, expected) = run.stats_records(records, 2_000, 43);
    let extra = [("GUARANTEE", "eos".to_string())];
    let mut first = run.spawn("running-stats", 0, &extra);
    let feeding = Duration::from_secs(20);
    let scaler = async {
        tokio::time::sleep(feeding / 5).await;
        let added: Vec<Child> = (1..=2)
            .map(|i| run.spawn("running-stats", i, &extra))
            .collect();
        tokio::time::sleep(feeding * 2 / 5).await;
        for mut child in added {
            let status =
                tokio::task::spawn_blocking(move || terminate(&mut child, Duration::from_secs(60)))
                    .await
                    .unwrap();
            assert!(status.success(), "an added process exited with {status}");
        }
    };
    tokio::join!(run.clicks_paced(input, feeding), scaler);
    run.wait_for_output(records as i64, Duration::from_secs(300))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(terminate(&mut first, Duration::from_secs(60)).success());
    read_back_exact_stats(&run, records, &expected).await;
}

/// The `REPORT` file a `strom_pipeline` process wrote at its end, as
/// `(incarnations, released partitions)`.
/// What a pipeline process reported at its end.
struct PipelineReport {
    incarnations: u32,
    rollbacks: u32,
    released: u32,
    adopted: u32,
}

fn pipeline_report(path: &std::path::Path) -> PipelineReport {
    let text = std::fs::read_to_string(path).unwrap();
    let field = |name: &str| -> u32 {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap()
            .parse()
            .unwrap()
    };
    PipelineReport {
        incarnations: field("incarnations"),
        rollbacks: field("rollbacks"),
        released: field("released"),
        adopted: field("adopted"),
    }
}

/// Cooperative rebalancing: when a second process joins, the first gives it
/// half of the partitions at a checkpoint and goes on with the others in the
/// same incarnation (no restart); when the second leaves, the first takes them
/// back the same way; the output stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_hands_partitions_to_a_newcomer_and_takes_them_back_without_a_restart() {
    hand_partitions_over_and_back("running-stats", "eos", None).await;
}

/// The same under the consumer protocol (KIP-848): the broker revokes and
/// assigns, the first process acknowledges a revocation only after the
/// checkpoint that released the partitions. A member learns of its new target
/// at its next heartbeat (the broker's `group.consumer.heartbeat.interval.ms`,
/// 5 s by default), so the run is longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_consumer_protocol_partitions_move_over_and_back_without_a_restart() {
    hand_partitions_over_and_back("running-stats", "eos", Some("group.protocol=consumer")).await;
}

/// The same at-least-once: its offset commits refused while the group
/// completes a rebalance go again after the join, so nothing restarts and, with
/// no failure, nothing is read twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_hands_partitions_over_and_back_without_a_restart() {
    hand_partitions_over_and_back("running-stats", "alo", None).await;
}

/// The same through a repartition topic (state keyed by anything, over two
/// topics): the `cooperative-copartitioned` assignor moves a partition number
/// of the input and of the repartition topic together, in two rounds, and the
/// job releases and adopts both at one checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_repartition_topic_partitions_move_over_and_back_without_a_restart() {
    hand_partitions_over_and_back("running-stats-repartition", "eos", None).await;
}

async fn hand_partitions_over_and_back(pipeline: &str, guarantee: &str, kafka_props: Option<&str>) {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let protocol = if kafka_props.is_some() { "-848" } else { "" };
    let repartition = pipeline.ends_with("repartition");
    let through = if repartition { "-repartition" } else { "" };
    let run = Run::new(
        &bootstrap,
        &format!("in-place-{guarantee}{protocol}{through}"),
    )
    .await;
    // Each partition number moves with its partition of every topic read.
    let topics = if repartition { 2 } else { 1 };
    let records = 20_000;
    let (input, expected) = run.stats_records(records, 2_000, 47);
    let mut env = vec![("GUARANTEE", guarantee.to_string())];
    if let Some(props) = kafka_props {
        env.push(("KAFKA_PROPS", props.to_string()));
    }
    // KIP-848 members learn of a new target at their next heartbeat (5 s).
    let feeding = Duration::from_secs(if kafka_props.is_some() { 36 } else { 15 });
    let handing = HandOver::start(&run, pipeline, env, input, feeding).await;
    run.wait_for_output(records as i64, Duration::from_secs(300))
        .await;
    let mut first = handing.first;
    assert!(terminate(&mut first, Duration::from_secs(60)).success());
    handing.reports.check(topics);
    read_back_exact_stats(&run, records, &expected).await;
}

/// Under the consumer protocol a process can join with no partition (the
/// broker had not assigned the input yet, or another member holds it all) and
/// then be given partitions that no checkpoint has committed. It adopts them in
/// place, starting them per `auto.offset.reset` as a new incarnation would,
/// without a restart; the output stays exact. Here a plain member of the
/// pipeline's group holds every partition first, commits nothing and leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_consumer_protocol_partitions_never_committed_are_adopted_without_a_restart() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "adopt-fresh-848").await;
    let records = 4_000;
    let (input, expected) = run.stats_records(records, 500, 59);
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), run.bootstrap.clone()),
        ("group.id".to_string(), run.app.clone()),
        ("group.protocol".to_string(), "consumer".to_string()),
        ("enable.auto.commit".to_string(), "false".to_string()),
    ]);
    let mut holder = GroupConsumer::new(ConsumerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    holder.subscribe([run.input.clone()]);
    let holds = |holder: &GroupConsumer| holder.assignment().len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while holds(&holder) < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "the holder never got the input");
        let _ = holder.poll_batches_for(Duration::from_millis(100)).await;
    }
    let reports = HandOverReports::new(&run.app);
    let env = [
        ("GUARANTEE", "eos".to_string()),
        ("KAFKA_PROPS", "group.protocol=consumer".to_string()),
        ("REPORT", reports.path(0).display().to_string()),
    ];
    let mut child = run.spawn("running-stats", 0, &env);
    // The broker moves half of the input to the process (the holder gives it
    // up at a heartbeat, 5 s apart), then the holder leaves with the rest.
    let deadline = Instant::now() + Duration::from_secs(60);
    while holds(&holder) > PARTITIONS as usize / 2 {
        assert!(
            Instant::now() < deadline,
            "the process never got a partition"
        );
        let _ = holder.poll_batches_for(Duration::from_millis(100)).await;
    }
    holder.close_and_leave().await.unwrap();
    run.send_all(input).await;
    run.wait_for_output(records as i64, Duration::from_secs(120))
        .await;
    assert!(terminate(&mut child, Duration::from_secs(60)).success());
    let report = pipeline_report(&reports.path(0));
    eprintln!(
        "{} incarnations, {} rollbacks, {} adopted",
        report.incarnations, report.rollbacks, report.adopted
    );
    assert_eq!(report.incarnations, 1, "the process never restarted");
    assert_eq!(report.rollbacks, 0, "nor rolled back");
    assert!(
        report.adopted >= PARTITIONS as u32 / 2,
        "it adopted the partitions the holder left"
    );
    let _ = std::fs::remove_dir_all(&reports.dir);
    read_back_exact_stats(&run, records, &expected).await;
}

/// A first process, and a second that runs for the middle third of the input
/// (joining, then leaving on SIGTERM); both write their end reports.
struct HandOver {
    first: Child,
    reports: HandOverReports,
}

impl HandOver {
    /// Feeds `input` over `feeding` while the second process comes and goes;
    /// returns once the input is written, the first still running.
    async fn start(
        run: &Run,
        pipeline: &str,
        env: Vec<(&'static str, String)>,
        input: Vec<ProducerRecord>,
        feeding: Duration,
    ) -> HandOver {
        let reports = HandOverReports::new(&run.app);
        let with_report = |i: u32| {
            let mut env = env.clone();
            env.push(("REPORT", reports.path(i).display().to_string()));
            env
        };
        let first = run.spawn(pipeline, 0, &with_report(0));
        let joins_and_leaves = async {
            tokio::time::sleep(feeding / 3).await;
            let mut second = run.spawn(pipeline, 1, &with_report(1));
            tokio::time::sleep(feeding / 3).await;
            assert!(terminate(&mut second, Duration::from_secs(60)).success());
        };
        tokio::join!(run.clicks_paced(input, feeding), joins_and_leaves);
        HandOver { first, reports }
    }
}

/// Where the processes of a [`HandOver`] write their end reports.
struct HandOverReports {
    dir: std::path::PathBuf,
}

impl HandOverReports {
    fn new(app: &str) -> HandOverReports {
        let dir = std::env::temp_dir().join(format!("strom-in-place-{app}"));
        std::fs::create_dir_all(&dir).unwrap();
        HandOverReports { dir }
    }

    fn path(&self, i: u32) -> std::path::PathBuf {
        self.dir.join(format!("{i}.txt"))
    }

    /// Both processes ended: the first never restarted nor rolled back, and
    /// moved half of the partitions of each of its `topics` out and back.
    fn check(&self, topics: u32) {
        let first = pipeline_report(&self.path(0));
        let second = pipeline_report(&self.path(1));
        eprintln!(
            "first: {} incarnations, {} rollbacks, {} released, {} adopted; second: {} incarnations, {} adopted",
            first.incarnations,
            first.rollbacks,
            first.released,
            first.adopted,
            second.incarnations,
            second.adopted
        );
        assert_eq!(first.incarnations, 1, "the first process never restarted");
        assert_eq!(first.rollbacks, 0, "nor rolled back");
        assert_eq!(
            first.released,
            topics * PARTITIONS as u32 / 2,
            "it released half its partitions"
        );
        // Under the consumer protocol the first process can settle before the
        // broker assigns it the input, and then adopts all of it in place once.
        let back = topics * PARTITIONS as u32 / 2;
        assert!(
            first.adopted == back || first.adopted == back + topics * PARTITIONS as u32,
            "it took them back when the second left (adopted {})",
            first.adopted
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Event time: the hand-over with tumbling windows keyed through a
/// repartition topic. An adopted input partition is behind the adopter's
/// watermark: until it catches up, the adopter's markers hold the readers'
/// watermark, so its records are not late behind the topic. An adopted
/// repartition partition lags the same way before the windows (they wait, its
/// records are not late). The windows stay exact without a restart.
/// `STROM_TEST_HAND_OVER_PIPELINE=window-count-aligned` runs it keyed by
/// source partition instead (the second path alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_time_windows_move_partitions_in_place_when_a_process_joins_and_leaves() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "in-place-windows").await;
    let (input, expected) = run.click_records(30_000, 43);
    let env = vec![("GUARANTEE", "eos".to_string())];
    let feeding = Duration::from_secs(15);
    let pipeline = std::env::var("STROM_TEST_HAND_OVER_PIPELINE")
        .unwrap_or_else(|_| "window-count-repartition".to_string());
    let topics = if pipeline.ends_with("repartition") {
        2
    } else {
        1
    };
    let mut handing = HandOver::start(&run, &pipeline, env, input, feeding).await;
    run.finish_windows(&mut handing.first, &expected).await;
    handing.reports.check(topics);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_keyed_through_a_repartition_topic_stay_exact_while_processes_die_and_join() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-repartition").await;
    let (input, expected) = run.click_records(40_000, 37);
    eprintln!(
        "app {} input {} output {}: {} windows expected",
        run.app,
        run.input,
        run.output,
        expected.len()
    );
    // STROM_TEST_KAFKA_PROPS adds properties (e.g. group.protocol=consumer).
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        (
            "KAFKA_PROPS",
            std::env::var("STROM_TEST_KAFKA_PROPS").map_or_else(
                |_| "strom.repartition.purge.interval.ms=1000".to_string(),
                |p| format!("strom.repartition.purge.interval.ms=1000,{p}"),
            ),
        ),
    ];
    let pipeline = "window-count-repartition";
    let mut a = run.spawn(pipeline, 0, &extra);
    let mut b = run.spawn(pipeline, 1, &extra);
    let feeding = Duration::from_secs(15);
    let mut c = None;
    let faults = async {
        // Both run their share; one dies mid-transaction; a third joins later.
        tokio::time::sleep(feeding / 3).await;
        kill(&mut b);
        tokio::time::sleep(feeding / 3).await;
        c = Some(run.spawn(pipeline, 2, &extra));
    };
    tokio::join!(run.clicks_paced(input, feeding), faults);
    let mut c = c.unwrap();
    run.wait_for_output(expected.len() as i64, Duration::from_secs(240))
        .await;
    let status = terminate(&mut c, Duration::from_secs(60));
    assert!(status.success(), "the third process exited with {status}");
    run.finish_windows(&mut a, &expected).await;
    // What the checkpoints consumed was deleted from the repartition topic.
    let repartition = format!("{}-by-url-repartition", run.app);
    let parts: Vec<i32> = (0..PARTITIONS).collect();
    let starts = run
        .admin
        .list_offsets(
            &repartition,
            &parts,
            OffsetSpec::Earliest,
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
    assert!(
        starts.values().all(|s| s.offset > 0),
        "{repartition} was not purged: {starts:?}"
    );
}

#[tokio::test]
async fn a_surviving_process_takes_over_the_partitions_and_state_of_a_killed_one() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-two").await;
    let (input, expected) = run.click_records(40_000, 31);
    let extra = [("GUARANTEE", "eos".to_string())];
    let mut a = run.spawn("window-count-aligned", 0, &extra);
    let mut b = run.spawn("window-count-aligned", 1, &extra);
    let feeding = Duration::from_secs(12);
    let killer = async {
        // Both process their share for a while, then one dies for good.
        tokio::time::sleep(feeding / 3).await;
        kill(&mut b);
    };
    tokio::join!(run.clicks_paced(input, feeding), killer);
    // The survivor gets b's partitions after b's session times out, and reads
    // their state from the changelog.
    run.finish_windows(&mut a, &expected).await;
}

#[tokio::test]
async fn a_process_fenced_by_one_with_its_instance_stops_and_its_late_writes_stay_invisible() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-fence").await;
    let (input, expected) = run.click_records(30_000, 37);
    let extra = [("GUARANTEE", "eos".to_string())];
    let mut old = run.spawn("window-count", 0, &extra);
    let feeding = Duration::from_secs(10);
    let mut new = None;
    let takeover = async {
        tokio::time::sleep(feeding / 3).await;
        // Same application and instance: the newcomer fences the running one.
        new = Some(run.spawn("window-count", 0, &extra));
    };
    tokio::join!(run.clicks_paced(input, feeding), takeover);
    let mut new = new.unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = old.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the fenced process still runs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !status.success(),
        "the fenced process should stop with an error"
    );
    run.finish_windows(&mut new, &expected).await;
}

#[tokio::test]
async fn at_least_once_loses_nothing_under_kills() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "alo").await;
    let (input, expected) = run.click_records(40_000, 41);
    let extra = [("GUARANTEE", "alo".to_string())];
    let mut child = feed_under_kills(&run, "window-count", &extra, input, 4, 0, 7).await;
    // Every window appears at least once, with at least its count (a window
    // replayed after a kill may count some records twice).
    let started = Instant::now();
    let (seen, duplicates) = loop {
        let lines = run.read_output().await;
        let mut seen: BTreeMap<(String, i64), u64> = BTreeMap::new();
        let mut duplicates = 0;
        for line in &lines {
            let (_, json) = line.split_once('\t').unwrap();
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            let key = (
                v["key"].as_str().unwrap().to_string(),
                v["window"]["start"].as_i64().unwrap(),
            );
            let count = v["value"].as_u64().unwrap();
            match seen.get_mut(&key) {
                Some(c) => {
                    duplicates += 1;
                    *c = (*c).max(count);
                }
                None => {
                    seen.insert(key, count);
                }
            }
        }
        let complete = expected
            .iter()
            .all(|(k, n)| seen.get(k).is_some_and(|c| c >= n));
        if complete {
            break (seen, duplicates);
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "windows missing after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(terminate(&mut child, Duration::from_secs(60)).success());
    eprintln!(
        "at-least-once: {} windows, {duplicates} duplicate outputs",
        seen.len()
    );
    assert_eq!(
        seen.len(),
        expected.len(),
        "no window appears that should not"
    );
}

#[tokio::test]
async fn records_that_do_not_decode_go_to_the_dead_letter_topic_with_their_origin() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "dlq").await;
    let dlq = random_topic("dlq-dead");
    run.admin
        .create_topics(&[NewTopic::new(&dlq, 1)])
        .await
        .unwrap();
    integration_tests::topic_metadata(run.admin.client(), &dlq).await;
    let (mut input, expected) = run.click_records(5_000, 43);
    let poison: Vec<String> = (0..5).map(|i| format!("{{not json {i}")).collect();
    for (i, p) in poison.iter().enumerate() {
        let mut r = ProducerRecord::new(&run.input, p.clone()).key(format!("bad-{i}"));
        r.headers
            .push(kafka_wire::records::Header::new("origin", Some("test")));
        input.insert(i * 700, r);
    }
    run.send_all(input).await;
    let extra = [("GUARANTEE", "eos".to_string()), ("DLQ", dlq.clone())];
    let mut child = run.spawn("window-count", 0, &extra);
    run.wait_for_output(expected.len() as i64, Duration::from_secs(180))
        .await;
    assert!(child.try_wait().unwrap().is_none(), "the job keeps running");
    assert!(terminate(&mut child, Duration::from_secs(60)).success());
    let lines = java_read_committed(&run.bootstrap, &run.output, expected.len());
    assert_eq!(
        window_counts(&lines),
        expected,
        "bad records are not counted"
    );

    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("isolation.level".to_string(), "read_committed".to_string()),
    ]);
    let mut consumer = Consumer::new(ConsumerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    consumer.assign([(dlq.clone(), 0)]);
    let mut dead = Vec::new();
    let started = Instant::now();
    while dead.len() < poison.len() && started.elapsed() < Duration::from_secs(30) {
        dead.extend(consumer.poll_for(Duration::from_secs(1)).await.unwrap());
    }
    assert_eq!(dead.len(), poison.len(), "one dead letter per bad record");
    // One dead-letter partition, several input partitions: order by key.
    dead.sort_by(|a, b| a.key.cmp(&b.key));
    for (i, r) in dead.iter().enumerate() {
        assert_eq!(
            r.value.as_deref(),
            Some(poison[i].as_bytes()),
            "original value"
        );
        assert_eq!(
            r.key.as_deref(),
            Some(format!("bad-{i}").as_bytes()),
            "original key"
        );
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|h| h.key.as_ref() == name.as_bytes())
                .and_then(|h| h.value.clone())
                .map(|v| String::from_utf8_lossy(&v).into_owned())
        };
        assert_eq!(
            header("origin").as_deref(),
            Some("test"),
            "original headers"
        );
        assert_eq!(
            header("strom.source.topic").as_deref(),
            Some(run.input.as_str())
        );
        assert!(
            header("strom.source.offset").is_some() && header("strom.source.partition").is_some()
        );
        assert!(
            header("strom.error").unwrap().starts_with("json: "),
            "{:?}",
            header("strom.error")
        );
    }
    consumer.close().await;
    run.assert_nothing_hanging().await;
}

/// A pipeline keyed by hash runs in one process of its group: a second process
/// stands by (the `exclusive` assignor gives it nothing), and when the first is
/// killed mid-input it takes over every partition and the state from the last
/// checkpoint; the windows come out exact.
#[tokio::test]
async fn a_second_process_of_a_hash_keyed_pipeline_stands_by_and_takes_over() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "standby-keyed").await;
    let (input, expected) = run.click_records(6_000, 47);
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        (
            "KAFKA_PROPS",
            "session.timeout.ms=6000,heartbeat.interval.ms=500".to_string(),
        ),
    ];
    let mut first = run.spawn("window-count", 0, &extra);
    // Running once its first checkpoint committed offsets for every partition.
    let started = Instant::now();
    while run.admin.list_group_offsets(&run.app).await.unwrap().len() < PARTITIONS as usize {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first never ran"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut second = run.spawn("window-count", 1, &extra);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(second.try_wait().unwrap().is_none(), "the second stands by");
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first keeps running"
    );
    let feeding = run.clicks_paced(input, Duration::from_secs(8));
    let killing = async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        kill(&mut first);
    };
    tokio::join!(feeding, killing);
    run.finish_windows(&mut second, &expected).await;
}

/// With `group.protocol=consumer` the broker assigns the partitions, so no
/// process can stand by: a second process of a pipeline keyed by hash sees the
/// running member (ConsumerGroupDescribe) and is refused before it joins, so the
/// broker takes no partition from the running one; the windows come out exact.
#[tokio::test]
async fn a_second_process_of_a_hash_keyed_pipeline_is_refused_under_the_consumer_protocol() {
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "refuse-848").await;
    let (mut input, expected) = run.click_records(2_000, 47);
    // The clicks that close every window come after the second process.
    let closing = input.split_off(input.len() - PARTITIONS as usize);
    run.send_all(input).await;
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        ("KAFKA_PROPS", "group.protocol=consumer".to_string()),
    ];
    let mut first = run.spawn("window-count", 0, &extra);
    run.wait_for_consumed(Duration::from_secs(120)).await;
    let second = Command::new(env!("CARGO_BIN_EXE_strom_pipeline"))
        .arg("window-count")
        .env("KAFKA_BOOTSTRAP", &run.bootstrap)
        .env("APP", &run.app)
        .env("INSTANCE", "1")
        .env("INPUT", &run.input)
        .env("OUTPUT", &run.output)
        .env("GUARANTEE", "eos")
        .env("KAFKA_PROPS", "group.protocol=consumer")
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(stderr.contains("runs as one process"), "{stderr}");
    assert!(
        stderr.contains("already has"),
        "refused before joining the group: {stderr}"
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first process keeps running"
    );
    run.send_all(closing).await;
    run.finish_windows(&mut first, &expected).await;
}

/// A pipeline without Kafka input (a generator) runs in one process of its
/// group: a second process stands by, takes over from the last checkpoint when
/// the first is killed, and hands over to a third when stopped; the output holds
/// every number once.
#[tokio::test]
async fn a_pipeline_without_kafka_input_runs_once_and_a_standby_takes_over() {
    const COUNT: i64 = 4_000;
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "standby").await;
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        ("COUNT", COUNT.to_string()),
        ("RATE", "200".to_string()),
        (
            "KAFKA_PROPS",
            "session.timeout.ms=6000,heartbeat.interval.ms=500".to_string(),
        ),
    ];
    let numbers = |lines: &[String]| -> BTreeMap<i64, usize> {
        let mut seen = BTreeMap::new();
        for l in lines {
            let v = l.rsplit('\t').next().unwrap_or_default();
            let n: i64 = v.parse().unwrap_or_else(|_| panic!("not a number: {l:?}"));
            *seen.entry(n).or_insert(0) += 1;
        }
        seen
    };
    let mut first = run.spawn("sequence", 0, &extra);
    run.wait_for_output(400, Duration::from_secs(60)).await;
    let mut second = run.spawn("sequence", 1, &extra);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(second.try_wait().unwrap().is_none(), "the standby waits");
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first keeps running"
    );
    kill(&mut first);
    let killed = Instant::now();
    let killed_at = run.committed_output().await;
    assert!(killed_at < COUNT / 2, "killed at {killed_at}: too late");
    // The standby takes over once the session (6 s) expired; its producer shares
    // the transactional id, so it aborts the killed process's open transaction
    // at once instead of read_committed waiting for transaction.timeout.ms (10 s)
    // and the broker's scan for expired transactions (up to 10 s more).
    // Output moved on: every number up to 200 past the kill point is visible (a
    // partition held back by an open transaction hides the numbers after it).
    loop {
        let seen = numbers(&run.read_output().await);
        let prefix = (0..).take_while(|n| seen.contains_key(n)).count() as i64;
        if prefix >= killed_at + 200 {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(120), "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failover = killed.elapsed();
    assert!(
        failover < Duration::from_secs(14),
        "output moved on {failover:?} after the kill"
    );
    run.wait_for_output(killed_at + 600, Duration::from_secs(120))
        .await;
    let mut third = run.spawn("sequence", 2, &extra);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(third.try_wait().unwrap().is_none(), "the new standby waits");
    let handed_at = run.committed_output().await;
    assert!(handed_at < COUNT, "the second process finished too soon");
    assert!(terminate(&mut second, Duration::from_secs(60)).success());
    let stopped = Instant::now();
    loop {
        if let Some(status) = third.try_wait().unwrap() {
            assert!(status.success(), "the third process failed: {status}");
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(120),
            "the third process did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "killed at {killed_at}, output moved on {failover:?} after the kill, handed over at {handed_at}, third finished {:?} after the stop",
        stopped.elapsed()
    );
    run.wait_for_output(COUNT, Duration::from_secs(60)).await;
    let seen = numbers(&run.read_output().await);
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "duplicates: {twice:?}");
    let missing: Vec<i64> = (0..COUNT).filter(|n| !seen.contains_key(n)).collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
    assert_eq!(seen.len() as i64, COUNT);
    run.assert_nothing_hanging().await;
}

/// What [`judge_stats`] found in the output log.
struct Judged {
    /// Data records in the log, committed and aborted.
    records: usize,
    /// Records of aborted transactions.
    aborted: usize,
    /// ABORT and COMMIT markers.
    aborts: usize,
    commits: usize,
}

/// Judges a running-stats output of `records` records: the Java console consumer
/// (read_committed) and our consumer (read_committed) must each read exactly
/// the records that the log's own markers say committed (no aborted read, no
/// lost write, nothing unseen, one record per offset, offsets rising), every
/// expected `(key, count)` exactly once, and every output recomputed from the
/// input ([`check_stats`]). Prints the checkers' counts.
async fn judge_stats(run: &Run, expected: &Stats, records: usize) -> Judged {
    use integration_tests::checkers::{Outcome, Read, Reader, Write, check};
    use integration_tests::txn_log::read_log;
    use kafka_wire::client::partitioner::partition_for_key;
    let java = java_read_committed_at(&run.bootstrap, &run.output, records);
    let ours = run.read_output_at().await;
    let log = read_log(run.admin.client(), &run.output, PARTITIONS).await;
    let judged = Judged {
        records: log.records.len(),
        aborted: log.count(Outcome::Aborted),
        aborts: log.aborts,
        commits: log.commits,
    };
    eprintln!(
        "output log: {} records ({} committed, {} aborted, {} open), {} commit and {} abort markers",
        judged.records,
        log.count(Outcome::Committed),
        judged.aborted,
        log.count(Outcome::Unknown),
        judged.commits,
        judged.aborts
    );
    // Physical: one id per (partition, offset), outcomes from the markers.
    let at = |p: i32, o: i64| (u64::from(p as u32) << 40) | o as u64;
    let writes: Vec<Write> = log
        .records
        .iter()
        .map(|r| Write {
            id: at(r.partition, r.offset),
            partition: r.partition,
            outcome: r.outcome,
        })
        .collect();
    let reader = |read_committed: bool, drained: bool, reads: Vec<Read>| Reader {
        read_committed,
        drained,
        reads,
    };
    let physical = |rs: &[OutputRecord]| -> Vec<Read> {
        rs.iter()
            .map(|r| Read {
                partition: r.partition,
                offset: r.offset,
                id: at(r.partition, r.offset),
            })
            .collect()
    };
    let raw: Vec<Read> = log
        .records
        .iter()
        .map(|r| Read {
            partition: r.partition,
            offset: r.offset,
            id: at(r.partition, r.offset),
        })
        .collect();
    let by_offset = check(
        &writes,
        &[
            reader(true, true, physical(&java)),
            reader(true, true, physical(&ours)),
            reader(false, false, raw),
        ],
    );
    eprintln!("checkers by offset (Java, ours, the raw log):\n{by_offset}");
    // Logical: one id per expected output (key k<n>, count c).
    let logical_id = |key: &str, count: u64| {
        let n: u64 = key.trim_start_matches('k').parse().unwrap();
        (n << 32) | count
    };
    let mut wanted = Vec::new();
    for (key, seq) in expected {
        let partition = partition_for_key(key.as_bytes(), PARTITIONS);
        for (count, ..) in seq {
            wanted.push(Write {
                id: logical_id(key, *count),
                partition,
                outcome: Outcome::Committed,
            });
        }
    }
    let logical = |rs: &[OutputRecord]| -> Vec<Read> {
        rs.iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(&r.value).unwrap();
                Read {
                    partition: r.partition,
                    offset: r.offset,
                    id: logical_id(v[0].as_str().unwrap(), v[1].as_u64().unwrap()),
                }
            })
            .collect()
    };
    let by_output = check(
        &wanted,
        &[
            reader(true, true, logical(&java)),
            reader(true, true, logical(&ours)),
        ],
    );
    eprintln!("checkers by output (key, count) (Java, ours):\n{by_output}");
    assert!(by_offset.is_clean(), "{by_offset}");
    assert!(by_output.is_clean(), "{by_output}");
    assert_eq!(
        log.count(Outcome::Unknown),
        0,
        "records of open transactions"
    );
    assert_eq!(
        java.len(),
        records,
        "output records read by the Java consumer"
    );
    let lines: Vec<String> = java
        .iter()
        .map(|r| format!("{}\t{}", r.key, r.value))
        .collect();
    check_stats(&lines, expected);
    judged
}

/// Starts network fault number `pick` (modulo the kinds) on `proxy`; returns its name.
fn network_fault(proxy: &integration_tests::proxy::KafkaProxy, pick: u64) -> &'static str {
    use kafka_wire::protocol::ApiKey;
    let hold = Duration::from_millis(1_500);
    match pick % 8 {
        0 => proxy.set_latency(Duration::from_millis(40)),
        1 => proxy.hold(ApiKey::Produce, hold),
        2 => proxy.hold(ApiKey::EndTxn, hold),
        3 => proxy.cut_next(ApiKey::Produce),
        4 => proxy.cut_next(ApiKey::EndTxn),
        5 => proxy.cut_next(ApiKey::TxnOffsetCommit),
        6 => proxy.drop_connections(),
        _ => proxy.hang(true),
    }
    [
        "latency",
        "hold Produce",
        "hold EndTxn",
        "cut Produce",
        "cut EndTxn",
        "cut TxnOffsetCommit",
        "drop connections",
        "hang",
    ][(pick % 8) as usize]
}

/// How long the fault matrix waits, after every other SIGTERM, before it starts
/// the stopped process again: the others have taken over its partitions by
/// then, so the newcomer's join makes them release partitions while they run.
const SETTLE_BEFORE_RESPAWN: Duration = Duration::from_secs(3);

/// Picks the kind of each fault: SIGKILL and SIGTERM alternately.
fn fault_kind(k: u32) -> &'static str {
    if k % 2 == 0 { "KILL" } else { "TERM" }
}

/// Running min, max, sum and count per key, every output recomputed from the
/// input, while two processes of the pipeline are SIGKILLed and SIGTERMed in
/// turn at random moments after 20% of the input (3 of each in CI) and about a
/// third of the checkpoints abort their transaction on purpose
/// (`STROM_ABORT_FRACTION`). With `STROM_SOAK_PROXY=1` (the soak) the processes
/// reach the broker through the fault proxy, and before each kill a network
/// fault (latency, Produce or EndTxn held back, a request cut, connections
/// dropped or hanging) lasts a while. Every other SIGTERMed process starts
/// again only once the others have taken over its partitions, so that they hand
/// partitions to it while they run. Judged by the Java console consumer and the
/// checkers against the log's own transaction markers: aborted records exist and
/// none is ever read, nothing committed is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_stats_stay_exact_under_sigkill_sigterm_and_aborted_transactions() {
    use integration_tests::proxy::KafkaProxy;
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-faults").await;
    let keys = soak_size("STROM_SOAK_KEYS", 2_000) as u64;
    let records = soak_size("STROM_SOAK_FAULT_RECORDS", 20_000);
    let faults = soak_size("STROM_SOAK_FAULT_KILLS", 6) as u32;
    let processes = soak_size("STROM_SOAK_PROCESSES", 2) as u32;
    eprintln!(
        "app {} input {} output {}: {records} records, {keys} keys, {faults} faults, {processes} processes",
        run.app, run.input, run.output
    );
    let (input, expected) = run.stats_records(records, keys, 67);
    let proxy = if soak_size("STROM_SOAK_PROXY", 0) == 1 {
        Some(KafkaProxy::start(&bootstrap).await.unwrap())
    } else {
        None
    };
    let mut extra = vec![
        ("GUARANTEE", "eos".to_string()),
        ("CHECKPOINT_MS", "500".to_string()),
        ("STROM_ABORT_FRACTION", "0.33".to_string()),
    ];
    if let Some(proxy) = &proxy {
        extra.push(("KAFKA_BOOTSTRAP", proxy.bootstrap().to_string()));
    }
    // STROM_TEST_KAFKA_PROPS adds properties (e.g. group.protocol=consumer);
    // STROM_SOAK_PIPELINE=running-stats-repartition keys through a repartition topic.
    if let Ok(props) = std::env::var("STROM_TEST_KAFKA_PROPS") {
        extra.push(("KAFKA_PROPS", props));
    }
    let pipeline =
        std::env::var("STROM_SOAK_PIPELINE").unwrap_or_else(|_| "running-stats".to_string());
    let mut children: Vec<Child> = (0..processes)
        .map(|i| run.spawn(&pipeline, i, &extra))
        .collect();
    let feeding = Duration::from_millis(u64::from(faults) * 1_500 + 4_000)
        .max(Duration::from_secs_f64(records as f64 / 20_000.0));
    let started = Instant::now();
    let fault_loop = async {
        let mut rng = Rng(0xfa17);
        tokio::time::sleep(feeding / 5).await;
        let mut done = BTreeMap::<&str, u32>::new();
        let pause = (feeding * 4 / 5).as_millis() as u64 / u64::from(faults.max(1));
        for k in 0..faults {
            let wait = Duration::from_millis(pause / 3 + rng.next() % pause);
            if let Some(proxy) = &proxy {
                let fault = network_fault(proxy, rng.next());
                *done.entry(fault).or_default() += 1;
                tokio::time::sleep(wait / 2).await;
                proxy.heal();
                tokio::time::sleep(wait / 2).await;
            } else {
                tokio::time::sleep(wait).await;
            }
            let i = (rng.next() % u64::from(processes)) as usize;
            let kind = fault_kind(k);
            let child = &mut children[i];
            if kind == "KILL" {
                kill(child);
            } else {
                let status =
                    tokio::task::block_in_place(|| terminate(child, Duration::from_secs(60)));
                assert!(
                    status.success(),
                    "instance {i} exited with {status} on SIGTERM"
                );
            }
            *done.entry(kind).or_default() += 1;
            if kind == "TERM" && k % 4 == 1 {
                // The others take over the whole input first, then give part of
                // it back to the newcomer while they run (the release path).
                tokio::time::sleep(SETTLE_BEFORE_RESPAWN).await;
                *done.entry("respawn after settling").or_default() += 1;
            }
            *child = run.spawn(&pipeline, i as u32, &extra);
        }
        eprintln!("faults {done:?} in {:?}", started.elapsed());
    };
    tokio::join!(run.clicks_paced(input, feeding), fault_loop);
    if let Some(proxy) = &proxy {
        proxy.heal();
        eprintln!(
            "proxy: {} requests cut, {} connections accepted",
            proxy.cuts(),
            proxy.accepted()
        );
    }
    run.wait_for_consumed(Duration::from_secs(300 + records as u64 / 5_000))
        .await;
    eprintln!("input consumed after {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, child) in children.iter_mut().enumerate() {
        let status = tokio::task::block_in_place(|| terminate(child, Duration::from_secs(60)));
        assert!(status.success(), "instance {i} exited with {status}");
    }
    let judged = judge_stats(&run, &expected, records).await;
    assert!(
        judged.aborted > 0 && judged.aborts > 0,
        "no transaction was aborted: the faults did not bite"
    );
    run.assert_nothing_hanging().await;
}

/// Crash during scale-in: three processes share the running-stats pipeline
/// while input flows; then one is SIGTERMed and another SIGKILLed at the same
/// moment, and the third takes everything over. At the end no transaction of a
/// removed process is open (DescribeTransactions), every partition's
/// read_committed end equals its read_uncommitted end (the last stable offset
/// advanced past the killed process's open transaction), and the output passes
/// the checkers and is recomputed exactly from the input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_scale_in_leaves_no_transaction_open_and_the_last_stable_offsets_advance() {
    use kafka_wire::client::transaction::admin::TransactionAdmin;
    let bootstrap = require_broker!();
    let _one = ONE_AT_A_TIME.lock().await;
    let run = Run::new(&bootstrap, "eos-scale-in").await;
    let records = soak_size("STROM_SOAK_SCALE_IN_RECORDS", 20_000);
    let keys = soak_size("STROM_SOAK_KEYS", 2_000) as u64;
    let (input, expected) = run.stats_records(records, keys, 71);
    // Transactions open for the whole interval (not ended early whenever the
    // paced input pauses), so that the SIGKILL below lands inside one.
    let extra = [
        ("GUARANTEE", "eos".to_string()),
        ("EARLY_CHECKPOINTS", "0".to_string()),
    ];
    let mut children: Vec<Child> = (0..3)
        .map(|i| run.spawn("running-stats", i, &extra))
        .collect();
    let feeding = Duration::from_secs(12).max(Duration::from_secs_f64(records as f64 / 20_000.0));
    let started = Instant::now();
    let txns = TransactionAdmin::new(run.admin.client().clone());
    let crash = async {
        tokio::time::sleep(feeding * 2 / 5).await;
        // The SIGKILL lands inside an open transaction of instance 2.
        let killed = format!("{}-2", run.app);
        let waiting = Instant::now();
        while waiting.elapsed() < Duration::from_secs(10) {
            let state = txns.describe_transactions(&[&killed]).await.ok();
            if state.is_some_and(|d| d.values().any(|t| t.state == "Ongoing")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The SIGKILL first: signalling goes through a `kill` process, which
        // takes long enough for the transaction to end in between.
        let _ = children[2].kill();
        signal(&children[1], "TERM");
        let _ = children[2].wait();
        eprintln!(
            "SIGTERM to instance 1 and SIGKILL to instance 2 at {:?}",
            started.elapsed()
        );
        let status =
            tokio::task::block_in_place(|| terminate(&mut children[1], Duration::from_secs(60)));
        assert!(
            status.success(),
            "instance 1 exited with {status} on SIGTERM"
        );
    };
    tokio::join!(run.clicks_paced(input, feeding), crash);
    run.wait_for_consumed(Duration::from_secs(300 + records as u64 / 5_000))
        .await;
    eprintln!("output complete after {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status =
        tokio::task::block_in_place(|| terminate(&mut children[0], Duration::from_secs(60)));
    assert!(status.success(), "instance 0 exited with {status}");
    let removed = [format!("{}-1", run.app), format!("{}-2", run.app)];
    let ids: Vec<&str> = removed.iter().map(String::as_str).collect();
    // The killed process's transaction ends when the coordinator aborts it:
    // transaction.timeout.ms (10 s) after its last write, found by a scan that
    // runs every transaction.abort.timed.out.transaction.cleanup.interval.ms
    // (10 s). Nothing may keep it open past both.
    let limit = Duration::from_secs(45);
    let since = Instant::now();
    let killed_aborted = loop {
        let described = txns.describe_transactions(&ids).await.unwrap();
        let open: Vec<String> = described
            .iter()
            .filter(|(_, t)| {
                matches!(
                    t.state.as_str(),
                    "Ongoing" | "PrepareCommit" | "PrepareAbort"
                )
            })
            .map(|(id, t)| format!("{id}: {}", t.state))
            .collect();
        if open.is_empty() {
            for (id, t) in &described {
                eprintln!(
                    "{id}: {} (producer {} epoch {}) {:?} after instance 0 stopped",
                    t.state,
                    t.producer_id,
                    t.producer_epoch,
                    since.elapsed()
                );
            }
            break described
                .get(removed[1].as_str())
                .is_some_and(|t| t.state == "CompleteAbort");
        }
        assert!(
            since.elapsed() < limit,
            "transactions of removed processes still open {limit:?} after the run: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    run.assert_nothing_hanging().await;
    let judged = judge_stats(&run, &expected, records).await;
    // The kill landed inside an open transaction: the coordinator aborted it
    // (its output records, if it had written any yet, are aborted ones).
    assert!(
        killed_aborted || judged.aborted > 0,
        "the killed process had no open transaction"
    );
}
