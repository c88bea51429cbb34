//! Every pipeline of `examples/` run by `strom run --bounded` against the real
//! broker (and PostgreSQL), its output compared with a reference computed
//! independently: `scripts/logdemo.py` for the log-processing pipelines, the
//! test itself for click analytics. And the log-processing pipeline killed with
//! SIGKILL ten times: its Kafka output (Java console consumer, read_committed)
//! and PostgreSQL tables still equal the reference, nothing left prepared. And a
//! filter over an updating GROUP BY whose deletes arrive as tombstones and as
//! deleted PostgreSQL rows. And a generator writing Kafka exactly once (no
//! Kafka source) under SIGKILLs.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integration_tests::{postgres_url, random_topic, require_broker, workspace_root};
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::ProducerConfig;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};
use sql::time::format_timestamp;

/// A seeded xorshift64 generator, so every run draws the same inputs.
fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

fn strom() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strom"));
    c.current_dir(workspace_root());
    // A free port each: several runs at once must not collide on the default.
    c.env("STROM_HTTP_ADDR", "127.0.0.1:0");
    c
}

/// Runs a command to completion (within 5 min), panicking with its stderr if it fails.
fn run(mut cmd: Command, what: &str) -> String {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `strom run --instance INSTANCE SQL` with `env`, stdout discarded, stderr piped.
fn spawn_run(
    bootstrap: &str,
    sql: &std::path::Path,
    instance: &str,
    env: &[(&str, &str)],
) -> std::process::Child {
    let mut c = strom();
    c.args([
        "--bootstrap",
        bootstrap,
        "run",
        "--instance",
        instance,
        sql.to_str().unwrap(),
    ])
    .envs(env.iter().copied())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    c.spawn().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(random_topic(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    let client = Client::connect(ProducerConfig::new(bootstrap).unwrap().client)
        .await
        .unwrap();
    let new: Vec<NewTopic> = topics.iter().map(|(t, p)| NewTopic::new(*t, *p)).collect();
    Admin::new(client).create_topics(&new).await.unwrap();
}

fn consume(bootstrap: &str, topic: &str) -> String {
    consume_with(bootstrap, topic, &[])
}

/// `strom consume` of what `topic` holds (read_committed), with `extra` flags.
fn consume_with(bootstrap: &str, topic: &str, extra: &[&str]) -> String {
    let mut c = strom();
    c.args([
        "--bootstrap",
        bootstrap,
        "consume",
        "--topic",
        topic,
        "--from-beginning",
        "--isolation-level",
        "read_committed",
        "--timeout-ms",
        "3000",
    ]);
    c.args(extra);
    run(c, "strom consume")
}

fn psql(url: &str, query: &str) -> String {
    let mut c = Command::new("psql");
    c.args([url, "-At", "-F", "\t", "-c", query]);
    run(c, "psql")
}

fn logdemo(args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg(workspace_root().join("scripts/logdemo.py"))
        .args(args);
    c
}

fn generate_log(dir: &Path, lines: usize) -> PathBuf {
    let path = dir.join("access.log");
    let text = run(
        logdemo(&["generate", &lines.to_string(), "42"]),
        "logdemo generate",
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// One run of examples/log-processing.sql: its topics, tables and input.
struct LogRun {
    bootstrap: String,
    pg: String,
    dir: PathBuf,
    input: String,
    output: String,
    dlq: String,
    app: String,
    status_table: String,
    hits_table: String,
}

impl LogRun {
    /// Fresh topics holding `lines` generated log lines.
    async fn new(bootstrap: &str, pg: &str, lines: usize) -> LogRun {
        let dir = temp_dir("sql-example-logs");
        let log = generate_log(&dir, lines);
        let (input, output, dlq) = (
            random_topic("log-topic"),
            random_topic("log-processed"),
            random_topic("log-dlq"),
        );
        create_topics(bootstrap, &[(&input, 3), (&output, 3), (&dlq, 1)]).await;
        let mut produce = strom();
        produce
            .args(["--bootstrap", bootstrap, "produce", "--topic", &input])
            .stdin(std::fs::File::open(&log).unwrap());
        run(produce, "strom produce");
        let suffix = input.replace(['-', '.'], "_");
        LogRun {
            bootstrap: bootstrap.to_string(),
            pg: pg.to_string(),
            dir,
            app: random_topic("log-app"),
            status_table: format!("sb_{suffix}"),
            hits_table: format!("uh_{suffix}"),
            input,
            output,
            dlq,
        }
    }

    /// `strom run --bounded examples/log-processing.sql` with this run's names.
    fn command(&self) -> Command {
        let mut c = strom();
        c.args([
            "--bootstrap",
            &self.bootstrap,
            "run",
            "--bounded",
            "--checkpoint-interval-ms",
            "500",
            "examples/log-processing.sql",
        ])
        .env("LOG_TOPIC", &self.input)
        .env("OUTPUT_TOPIC", &self.output)
        .env("DEAD_LETTER_TOPIC", &self.dlq)
        .env("APP", &self.app)
        .env("POSTGRES_URL", &self.pg)
        .env("STATUS_TABLE", &self.status_table)
        .env("HITS_TABLE", &self.hits_table);
        c
    }

    /// Compares the outputs with scripts/logdemo.py's reference (panics on a
    /// difference) and checks that no prepared transaction is left.
    fn check(&self, errors_jsonl: String) {
        let dir = &self.dir;
        std::fs::write(dir.join("errors.jsonl"), errors_jsonl).unwrap();
        let dead = consume(&self.bootstrap, &self.dlq).lines().count();
        let status = psql(
            &self.pg,
            &format!(
                "SELECT window_end, status_class, requests, bytes FROM \"{}\"",
                self.status_table
            ),
        );
        std::fs::write(dir.join("status.tsv"), status).unwrap();
        let hits = psql(
            &self.pg,
            &format!("SELECT window_end, url, hits FROM \"{}\"", self.hits_table),
        );
        std::fs::write(dir.join("hits.tsv"), hits).unwrap();
        let d = |f: &str| dir.join(f).display().to_string();
        let report = run(
            logdemo(&[
                "check",
                &d("access.log"),
                &d("errors.jsonl"),
                &d("status.tsv"),
                &d("hits.tsv"),
                &dead.to_string(),
            ]),
            "logdemo check (strom's output differs from the reference)",
        );
        eprintln!("{report}");
        let left = psql(
            &self.pg,
            &format!(
                "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE '%{}%' OR gid LIKE '%{}%'",
                self.status_table, self.hits_table
            ),
        );
        assert_eq!(left.trim(), "0", "prepared transactions left behind");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_processing_example_matches_an_independent_computation() {
    let bootstrap = require_broker!();
    let Some(pg) = postgres_url() else { return };
    let job = LogRun::new(&bootstrap, &pg, 20_000).await;
    run(job.command(), "strom run examples/log-processing.sql");
    job.check(consume(&bootstrap, &job.output));
}

/// The output topic read with Kafka's Java console consumer, read_committed.
fn java_read_committed(bootstrap: &str, topic: &str) -> String {
    let mut c = Command::new(workspace_root().join("scripts/kafka"));
    c.args([
        "run",
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--isolation-level",
        "read_committed",
        "--timeout-ms",
        "15000",
    ])
    .stdin(std::process::Stdio::null());
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The console consumer exits non-zero when its timeout ends the read.
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_processing_killed_ten_times_still_writes_everything_exactly_once() {
    let bootstrap = require_broker!();
    let Some(pg) = postgres_url() else { return };
    // Enough input to outlast ten runs: a restart takes well under a second
    // now, so every run gets through more of it.
    let job = LogRun::new(&bootstrap, &pg, 600_000).await;
    let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
    let started = std::time::Instant::now();
    let (mut kills, mut runs) = (0, 0);
    // Kill a running pipeline at a random moment (0.6-2.2 s after its start)
    // ten times; a run that finished before its kill ends the killing early.
    let mut finished = false;
    while kills < 10 && runs < 20 {
        runs += 1;
        let mut child = job
            .command()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let wait = Duration::from_millis(600 + next() % 1600);
        tokio::time::sleep(wait).await;
        if child.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    // The last run goes to the end of the input.
    run(job.command(), "strom run after the kills");
    eprintln!(
        "{kills} SIGKILLs in {runs} runs (input finished before a kill: {finished}), {:?} in all",
        started.elapsed()
    );
    assert!(
        kills >= 10,
        "only {kills} kills landed while the pipeline ran"
    );
    job.check(java_read_committed(&bootstrap, &job.output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_file_example_matches_an_independent_computation() {
    let dir = temp_dir("sql-example-file");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    generate_log(&logs, 20_000);
    let out = dir.join("out");
    let mut pipeline = strom();
    pipeline
        .args(["run", "examples/log-file.sql"])
        .env("LOG_DIR", &logs)
        .env("OUT_DIR", &out);
    run(pipeline, "strom run examples/log-file.sql");
    let reference = dir.join("reference");
    std::fs::create_dir_all(&reference).unwrap();
    run(
        logdemo(&[
            "reference",
            &logs.join("access.log").display().to_string(),
            &reference.display().to_string(),
        ]),
        "logdemo reference",
    );
    let parse = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!("{} {} {}", v["window_end"], v["url"], v["errors"])
            })
            .collect()
    };
    let mut got = BTreeSet::new();
    let mut files = 0;
    for f in std::fs::read_dir(&out).unwrap() {
        let f = f.unwrap().path();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("part-"),
            "unexpected file {name} in the output"
        );
        got.extend(parse(&std::fs::read_to_string(&f).unwrap()));
        files += 1;
    }
    let want = parse(&std::fs::read_to_string(reference.join("error_counts.jsonl")).unwrap());
    assert!(files > 0);
    assert_eq!(got.len(), want.len(), "error-count rows");
    assert_eq!(got, want);
}

/// One click of the click-analytics example.
struct Click {
    ts: i64,
    user: u64,
    page: String,
    country: Option<&'static str>,
    dwell: i32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_analytics_example_matches_a_reference() {
    let bootstrap = require_broker!();
    let (clicks_topic, totals_topic) = (random_topic("clicks"), random_topic("country-totals"));
    create_topics(&bootstrap, &[(&clicks_topic, 2), (&totals_topic, 2)]).await;
    // 6,000 clicks over 10 minutes, 10% up to 1.5 s out of order (bound: 2 s).
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
    let start = 1_796_292_000_000i64;
    let countries = [Some("de"), Some("fr"), Some("us"), Some("jp"), None];
    let clicks: Vec<Click> = (0..6000)
        .map(|i| {
            let mut ts = start + i * 100;
            if next() % 10 == 0 {
                ts -= (next() % 1500) as i64;
            }
            Click {
                ts,
                user: next() % 300,
                page: format!("/page/{}", next() % 12),
                country: countries[(next() % 5) as usize],
                dwell: (next() % 30_000) as i32,
            }
        })
        .collect();
    let producer = Producer::new(ProducerConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let mut pending = Vec::new();
    for c in &clicks {
        let value = serde_json::json!({
            "ts": format_timestamp(c.ts), "user_id": c.user, "page": c.page, "country": c.country, "dwell_ms": c.dwell,
        });
        pending.push(
            producer
                .send(ProducerRecord::new(&clicks_topic, value.to_string()))
                .await
                .unwrap(),
        );
    }
    for p in pending {
        p.await.unwrap();
    }
    let mut pipeline = strom();
    pipeline
        .args([
            "--bootstrap",
            &bootstrap,
            "run",
            "--bounded",
            "examples/click-analytics.sql",
        ])
        .env("CLICK_TOPIC", &clicks_topic)
        .env("COUNTRY_TOPIC", &totals_topic)
        .env("APP", random_topic("clicks-app"));
    let stdout = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::task::spawn_blocking(move || {
            run(pipeline, "strom run examples/click-analytics.sql")
        }),
    )
    .await
    .unwrap()
    .unwrap();

    // HOP(10 s slide, 1 min size) per page: clicks, distinct users, AVG(INT) truncated.
    let mut windows: BTreeMap<(i64, String), (u64, BTreeSet<u64>, i64)> = BTreeMap::new();
    for c in &clicks {
        let last = c.ts - c.ts.rem_euclid(10_000);
        let mut s = last;
        while s > c.ts - 60_000 {
            let e = windows.entry((s, c.page.clone())).or_default();
            e.0 += 1;
            e.1.insert(c.user);
            e.2 += i64::from(c.dwell);
            s -= 10_000;
        }
    }
    let want: BTreeSet<String> = windows
        .iter()
        .map(|((s, page), (n, users, sum))| {
            format!(
                "pages> +I[{}, {}, {page}, {n}, {}, {}]",
                format_timestamp(*s),
                format_timestamp(s + 60_000),
                users.len(),
                sum / *n as i64
            )
        })
        .collect();
    let got: BTreeSet<String> = stdout
        .lines()
        .filter(|l| l.starts_with("pages> "))
        .map(str::to_string)
        .collect();
    assert_eq!(got.len(), want.len(), "page-stat windows");
    assert_eq!(got, want);

    // Running totals per country: the last update of each key is the total.
    let mut totals: HashMap<&str, u64> = HashMap::new();
    for c in &clicks {
        if let Some(k) = c.country {
            *totals.entry(k).or_default() += 1;
        }
    }
    let mut last: HashMap<String, u64> = HashMap::new();
    for line in consume(&bootstrap, &totals_topic).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (k, n) = (
            v["country"].as_str().unwrap().to_string(),
            v["clicks"].as_u64().unwrap(),
        );
        let e = last.entry(k).or_default();
        *e = (*e).max(n);
    }
    let want: HashMap<String, u64> = totals
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(last, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_payments_example_joins_like_a_reference() {
    let bootstrap = require_broker!();
    let (orders_topic, payments_topic, paid_topic) = (
        random_topic("orders"),
        random_topic("payments"),
        random_topic("paid-orders"),
    );
    create_topics(
        &bootstrap,
        &[(&orders_topic, 2), (&payments_topic, 2), (&paid_topic, 2)],
    )
    .await;
    let mut next = xorshift(0x1234_5678_9abc_def1u64);
    let start = 1_796_292_000_000i64;
    let methods = ["card", "paypal", "invoice"];
    // 2,000 orders over 30 minutes; each paid 0-2 times, 0-15 minutes later,
    // in full or (one time in five) short.
    let mut orders = Vec::new();
    let mut payments = Vec::new();
    for id in 0..2000i64 {
        let ts = start + id * 900;
        let cents = 100 + (next() % 100_000) as i64;
        orders.push((ts, id, format!("c{}", next() % 50), cents));
        for _ in 0..next() % 3 {
            let pts = ts + (next() % 900_000) as i64;
            let paid = if next() % 5 == 0 { cents - 1 } else { cents };
            payments.push((pts, id, paid, methods[(next() % 3) as usize]));
        }
    }
    payments.sort();
    let money = |c: i64| format!("{}.{:02}", c / 100, c % 100);
    let producer = Producer::new(ProducerConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let mut pending = Vec::new();
    for (ts, id, customer, cents) in &orders {
        let v = format!(
            r#"{{"ts":"{}","order_id":{id},"customer":"{customer}","amount":{}}}"#,
            format_timestamp(*ts),
            money(*cents)
        );
        pending.push(
            producer
                .send(ProducerRecord::new(&orders_topic, v))
                .await
                .unwrap(),
        );
    }
    for (ts, id, paid, method) in &payments {
        let v = format!(
            r#"{{"ts":"{}","order_id":{id},"paid":{},"method":"{method}"}}"#,
            format_timestamp(*ts),
            money(*paid)
        );
        pending.push(
            producer
                .send(ProducerRecord::new(&payments_topic, v))
                .await
                .unwrap(),
        );
    }
    for p in pending {
        p.await.unwrap();
    }
    let mut pipeline = strom();
    pipeline
        .args([
            "--bootstrap",
            &bootstrap,
            "run",
            "--bounded",
            "examples/order-payments.sql",
        ])
        .env("ORDER_TOPIC", &orders_topic)
        .env("PAYMENT_TOPIC", &payments_topic)
        .env("PAID_TOPIC", &paid_topic)
        .env("APP", random_topic("orders-app"));
    let stdout =
        tokio::task::spawn_blocking(move || run(pipeline, "strom run examples/order-payments.sql"))
            .await
            .unwrap();

    let mut want_paid = Vec::new();
    let mut want_same = BTreeSet::new();
    for (ots, id, customer, cents) in &orders {
        for (pts, pid, paid, method) in &payments {
            if pid != id {
                continue;
            }
            if *pts >= *ots && *pts - *ots <= 600_000 && paid >= cents {
                let v: serde_json::Value = serde_json::from_str(&format!(
                    r#"{{"order_id":{id},"customer":"{customer}","amount":{},"method":"{method}","seconds_to_pay":{}}}"#,
                    money(*cents),
                    (pts - ots) / 1000
                ))
                .unwrap();
                want_paid.push(v.to_string());
            }
            if ots - ots.rem_euclid(60_000) == pts - pts.rem_euclid(60_000) {
                let end = ots - ots.rem_euclid(60_000) + 60_000;
                want_same.insert(format!(
                    "same-minute> +I[{}, {id}, {method}]",
                    format_timestamp(end)
                ));
            }
        }
    }
    want_paid.sort();
    let mut got_paid: Vec<String> = consume(&bootstrap, &paid_topic)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap()
                .to_string()
        })
        .collect();
    got_paid.sort();
    assert!(!want_paid.is_empty());
    assert_eq!(got_paid.len(), want_paid.len(), "paid orders");
    assert_eq!(got_paid, want_paid);
    let got_same: BTreeSet<String> = stdout
        .lines()
        .filter(|l| l.starts_with("same-minute> "))
        .map(str::to_string)
        .collect();
    assert_eq!(got_same, want_same);
}

/// Event time, user, page, country, and the partition of a far-future click.
type ScaleOutClick = (i64, u64, String, Option<&'static str>, Option<i32>);

/// A windowed count and a running total keyed by columns that are not the Kafka
/// key, with `strom.scale.out=true`: two `strom run` processes of one pipeline
/// share the input through repartition topics, and the exactly-once output read
/// with read_committed holds every window once with the reference's counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_pipeline_keyed_by_columns_scales_out_to_two_processes_through_repartition_topics() {
    let bootstrap = require_broker!();
    let (clicks_topic, pages_topic, totals_topic) = (
        random_topic("so-clicks"),
        random_topic("so-pages"),
        random_topic("so-totals"),
    );
    create_topics(
        &bootstrap,
        &[(&clicks_topic, 2), (&pages_topic, 2), (&totals_topic, 2)],
    )
    .await;
    let dir = temp_dir("scale-out");
    let sql = dir.join("scale-out.sql");
    std::fs::write(
        &sql,
        "CREATE TABLE clicks (
  ts TIMESTAMP(3), user_id BIGINT, page STRING, country STRING,
  WATERMARK FOR ts AS ts - INTERVAL '2' SECOND
) WITH (
  'connector' = 'kafka', 'topic' = '${CLICK_TOPIC}', 'format' = 'json',
  'properties.group.id' = '${APP}', 'scan.startup.mode' = 'earliest-offset',
  'properties.strom.scale.out' = 'true'
);
CREATE TABLE page_counts (window_start TIMESTAMP(3), page STRING, clicks BIGINT) WITH (
  'connector' = 'kafka', 'topic' = '${PAGE_TOPIC}', 'format' = 'json',
  'sink.delivery-guarantee' = 'exactly-once'
);
CREATE TABLE country_totals (country STRING, clicks BIGINT, PRIMARY KEY (country) NOT ENFORCED) WITH (
  'connector' = 'kafka', 'topic' = '${COUNTRY_TOPIC}', 'format' = 'json',
  'sink.delivery-guarantee' = 'exactly-once'
);
INSERT INTO page_counts
SELECT window_start, page, COUNT(*)
FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, page;
INSERT INTO country_totals
SELECT country, COUNT(*) FROM clicks WHERE country IS NOT NULL GROUP BY country;
",
    )
    .unwrap();
    let explained = {
        let mut c = strom();
        c.args(["explain", sql.to_str().unwrap()])
            .env("CLICK_TOPIC", &clicks_topic)
            .env("PAGE_TOPIC", &pages_topic)
            .env("COUNTRY_TOPIC", &totals_topic)
            .env("APP", "x");
        run(c, "strom explain")
    };
    assert!(
        explained.contains("keyed exchanges: through repartition topics"),
        "{explained}"
    );

    // 4,000 clicks over 400 s, 10% up to 1.5 s out of order, keyed by user (the
    // pipeline keys by page and by country), then one far-future click per
    // partition that fires every window.
    let mut next = xorshift(0x5ca1_e007_0000_0001u64);
    let start = 1_796_292_000_000i64;
    let countries = [Some("de"), Some("fr"), Some("us"), None];
    let mut clicks: Vec<ScaleOutClick> = (0..4000)
        .map(|i| {
            let mut ts = start + i * 100;
            if next() % 10 == 0 {
                ts -= (next() % 1500) as i64;
            }
            let user = next() % 300;
            let page = format!("/page/{}", next() % 12);
            (ts, user, page, countries[(next() % 4) as usize], None)
        })
        .collect();
    for p in 0..2 {
        clicks.push((start + 86_400_000, 0, "/end".into(), None, Some(p)));
    }
    let producer = Producer::new(ProducerConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let mut pending = Vec::new();
    for (ts, user, page, country, partition) in &clicks {
        let value = serde_json::json!({
            "ts": format_timestamp(*ts), "user_id": user, "page": page, "country": country,
        })
        .to_string();
        let mut r = ProducerRecord::new(&clicks_topic, value).key(user.to_string());
        if let Some(p) = partition {
            r = r.partition(*p);
        }
        pending.push(producer.send(r).await.unwrap());
    }
    for p in pending {
        p.await.unwrap();
    }

    let mut windows: BTreeMap<(i64, String), u64> = BTreeMap::new();
    let mut totals: HashMap<String, u64> = HashMap::new();
    // The far-future clicks' own windows never fire.
    for (ts, _, page, country, _) in clicks.iter().filter(|c| c.4.is_none()) {
        *windows
            .entry((ts - ts.rem_euclid(60_000), page.clone()))
            .or_default() += 1;
        if let Some(c) = country {
            *totals.entry(c.to_string()).or_default() += 1;
        }
    }
    let app = random_topic("scale-out-app");
    let spawn = |instance: &str| {
        spawn_run(
            &bootstrap,
            &sql,
            instance,
            &[
                ("CLICK_TOPIC", &clicks_topic),
                ("PAGE_TOPIC", &pages_topic),
                ("COUNTRY_TOPIC", &totals_topic),
                ("APP", &app),
            ],
        )
    };
    let mut processes = [spawn("0"), spawn("1")];
    let read_windows = || -> Vec<String> {
        consume(&bootstrap, &pages_topic)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let mut got = read_windows();
    while got.len() < windows.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        got = read_windows();
    }
    for p in &mut processes {
        let _ = Command::new("kill")
            .args(["-TERM", &p.id().to_string()])
            .status();
    }
    for p in processes {
        let out = p.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "strom run exited with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got_windows: BTreeMap<(i64, String), u64> = read_windows()
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let start = sql::time::parse_timestamp(v["window_start"].as_str().unwrap()).unwrap();
            (
                (start, v["page"].as_str().unwrap().to_string()),
                v["clicks"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(read_windows().len(), windows.len(), "each window once");
    assert_eq!(got_windows, windows);
    let mut last: HashMap<String, u64> = HashMap::new();
    for line in consume(&bootstrap, &totals_topic).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let e = last
            .entry(v["country"].as_str().unwrap().to_string())
            .or_default();
        *e = (*e).max(v["clicks"].as_u64().unwrap());
    }
    assert_eq!(last, totals);
}

/// A processing-time GROUP BY on a column that is not the Kafka key, with
/// `strom.scale.out=true`: a second `strom run` process joins while the input
/// flows and leaves again. The first hands it half of the partition numbers of
/// the input and repartition topics at a checkpoint and takes them back the
/// same way, without a restart; the upserted totals read with read_committed
/// are the reference's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_group_by_moves_partitions_in_place_when_a_process_joins_and_leaves() {
    let bootstrap = require_broker!();
    let (clicks_topic, totals_topic) = (random_topic("ip-clicks"), random_topic("ip-totals"));
    create_topics(&bootstrap, &[(&clicks_topic, 4), (&totals_topic, 4)]).await;
    let dir = temp_dir("in-place");
    let sql = dir.join("in-place.sql");
    std::fs::write(
        &sql,
        "CREATE TABLE clicks (user_id BIGINT, country STRING) WITH (
  'connector' = 'kafka', 'topic' = '${CLICK_TOPIC}', 'format' = 'json',
  'properties.group.id' = '${APP}', 'scan.startup.mode' = 'earliest-offset',
  'properties.strom.scale.out' = 'true'
);
CREATE TABLE country_totals (country STRING, clicks BIGINT, PRIMARY KEY (country) NOT ENFORCED) WITH (
  'connector' = 'kafka', 'topic' = '${COUNTRY_TOPIC}', 'format' = 'json',
  'sink.delivery-guarantee' = 'exactly-once'
);
INSERT INTO country_totals SELECT country, COUNT(*) FROM clicks GROUP BY country;
",
    )
    .unwrap();
    let app = random_topic("in-place-app");
    let spawn = |instance: &str| {
        spawn_run(
            &bootstrap,
            &sql,
            instance,
            &[
                ("CLICK_TOPIC", &clicks_topic),
                ("COUNTRY_TOPIC", &totals_topic),
                ("APP", &app),
                ("RUST_LOG", "warn,connectors::kafka::job=info"),
            ],
        )
    };
    let terminate = |p: std::process::Child| {
        let _ = Command::new("kill")
            .args(["-TERM", &p.id().to_string()])
            .status();
        let out = p.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "strom run exited with {}:\n{log}",
            out.status
        );
        log
    };
    let producer = Producer::new(ProducerConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let mut next = xorshift(0x01a9_1ace_0000_0001_u64);
    let countries = ["de", "fr", "us", "nl", "pl", "se"];
    let mut totals: HashMap<String, u64> = HashMap::new();
    let mut send_batch = async |n: usize| {
        let mut pending = Vec::new();
        for _ in 0..n {
            let user = next() % 1000;
            let country = countries[(next() % 6) as usize];
            *totals.entry(country.to_string()).or_default() += 1;
            let value = format!(r#"{{"user_id":{user},"country":"{country}"}}"#);
            let r = ProducerRecord::new(&clicks_topic, value).key(user.to_string());
            pending.push(producer.send(r).await.unwrap());
        }
        for p in pending {
            p.await.unwrap();
        }
    };
    // 24 batches of 500, one every 500 ms: the second process runs for the
    // middle third.
    let first = spawn("0");
    let mut second = None;
    for batch in 0..24 {
        if batch == 8 {
            second = Some(spawn("1"));
        }
        if batch == 16 {
            terminate(second.take().unwrap());
        }
        send_batch(500).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let read_totals = || -> HashMap<String, u64> {
        let mut last: HashMap<String, u64> = HashMap::new();
        for line in consume(&bootstrap, &totals_topic).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let e = last
                .entry(v["country"].as_str().unwrap().to_string())
                .or_default();
            *e = (*e).max(v["clicks"].as_u64().unwrap());
        }
        last
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut got = read_totals();
    while got != totals && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        got = read_totals();
    }
    let log = terminate(first);
    assert_eq!(got, totals);
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    assert_eq!(count("state restored"), 1, "one incarnation:\n{log}");
    assert_eq!(count("partitions released at a checkpoint"), 1, "{log}");
    assert_eq!(count("partitions adopted at a checkpoint"), 1, "{log}");
}

/// A HAVING over a GROUP BY into an exactly-once Kafka table and an exactly-once
/// PostgreSQL table: a key whose count reaches the bound ends as a tombstone in
/// the topic (read_committed) and as no row in the table; the other keys keep
/// their last count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_having_that_drops_a_key_writes_a_tombstone_and_deletes_its_row() {
    let bootstrap = require_broker!();
    let pg = postgres_url();
    let (input, output) = (random_topic("having-in"), random_topic("having-out"));
    create_topics(&bootstrap, &[(&input, 2), (&output, 2)]).await;
    // `gone` counts up to 5 (deleted at its 3rd row, once), `kept` to 2, `once` to 1.
    let keys = [
        "gone", "kept", "gone", "once", "gone", "kept", "gone", "gone",
    ];
    let values = keys.map(|k| serde_json::json!({ "k": k }).to_string());
    produce_values(&bootstrap, &input, values).await;
    let table = random_topic("having_counts").replace('-', "_");
    let pg_sink = match &pg {
        Some(url) => format!(
            "CREATE TABLE pg_counts (k STRING, c BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH (
  'connector' = 'postgres', 'url' = '{url}', 'table-name' = '{table}',
  'sink.delivery-guarantee' = 'exactly-once');
INSERT INTO pg_counts SELECT k, COUNT(*) AS c FROM events GROUP BY k HAVING COUNT(*) < 3;\n"
        ),
        None => String::new(),
    };
    let script = format!(
        "CREATE TABLE events (k STRING) WITH ('connector' = 'kafka', 'topic' = '{input}',
  'format' = 'json', 'properties.group.id' = '{}', 'scan.startup.mode' = 'earliest-offset');
CREATE TABLE counts (k STRING, c BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH (
  'connector' = 'kafka', 'topic' = '{output}', 'format' = 'json',
  'sink.delivery-guarantee' = 'exactly-once');
INSERT INTO counts SELECT k, c FROM (SELECT k, COUNT(*) AS c FROM events GROUP BY k) WHERE c < 3;
{pg_sink}",
        random_topic("having-app")
    );
    let dir = temp_dir("having");
    let path = dir.join("having.sql");
    std::fs::write(&path, script).unwrap();
    let mut pipeline = strom();
    pipeline.args([
        "--bootstrap",
        &bootstrap,
        "run",
        "--bounded",
        path.to_str().unwrap(),
    ]);
    tokio::time::timeout(
        Duration::from_secs(300),
        tokio::task::spawn_blocking(move || run(pipeline, "strom run having.sql")),
    )
    .await
    .unwrap()
    .unwrap();

    // Per key, in offset order (one key, one partition): its counts, None for a
    // tombstone.
    let mut c = strom();
    c.args([
        "--bootstrap",
        &bootstrap,
        "consume",
        "--topic",
        &output,
        "--from-beginning",
        "--isolation-level",
        "read_committed",
        "--timeout-ms",
        "3000",
        "--json",
    ]);
    let mut got: BTreeMap<String, Vec<Option<u64>>> = BTreeMap::new();
    let mut records: Vec<serde_json::Value> = run(c, "strom consume --json")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    records.sort_by_key(|r| (r["partition"].as_i64(), r["offset"].as_i64()));
    for r in &records {
        let key: serde_json::Value = serde_json::from_str(r["key"].as_str().unwrap()).unwrap();
        let k = key["k"].as_str().unwrap().to_string();
        let count = r["value"].as_str().map(|v| {
            let v: serde_json::Value = serde_json::from_str(v).unwrap();
            assert_eq!(v["k"].as_str(), Some(k.as_str()), "{r}");
            v["c"].as_u64().unwrap()
        });
        got.entry(k).or_default().push(count);
    }
    let want = BTreeMap::from([
        ("gone".to_string(), vec![Some(1), Some(2), None]),
        ("kept".to_string(), vec![Some(1), Some(2)]),
        ("once".to_string(), vec![Some(1)]),
    ]);
    assert_eq!(got, want, "updates and tombstones per key");

    if let Some(url) = pg {
        let rows = psql(&url, &format!("SELECT k, c FROM \"{table}\" ORDER BY k"));
        assert_eq!(rows, "kept\t2\nonce\t1\n", "the PostgreSQL table");
        let left = psql(
            &url,
            "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE '%pg_counts%'",
        );
        assert_eq!(left.trim(), "0", "prepared transactions left behind");
    }
}

/// Writes `values` (no key) to `topic` and waits until each is acknowledged.
async fn produce_values(bootstrap: &str, topic: &str, values: impl IntoIterator<Item = String>) {
    let producer = Producer::new(ProducerConfig::new(bootstrap).unwrap())
        .await
        .unwrap();
    let mut pending = Vec::new();
    for value in values {
        pending.push(
            producer
                .send(ProducerRecord::new(topic, value))
                .await
                .unwrap(),
        );
    }
    for p in pending {
        p.await.unwrap();
    }
}

/// Writes `script` to a file and runs it with `strom run --bounded`.
async fn run_bounded(bootstrap: &str, name: &str, script: String) {
    let path = temp_dir(name).join(format!("{name}.sql"));
    std::fs::write(&path, script).unwrap();
    let mut pipeline = strom();
    pipeline.args([
        "--bootstrap",
        bootstrap,
        "run",
        "--bounded",
        path.to_str().unwrap(),
    ]);
    let what = format!("strom run {name}.sql");
    tokio::time::timeout(
        Duration::from_secs(300),
        tokio::task::spawn_blocking(move || run(pipeline, &what)),
    )
    .await
    .unwrap()
    .unwrap();
}

/// `strom consume --json` of `topic`: (key, value) per record, in offset order.
fn consume_pairs(bootstrap: &str, topic: &str) -> Vec<(Option<String>, Option<String>)> {
    let mut records: Vec<serde_json::Value> = consume_with(bootstrap, topic, &["--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    records.sort_by_key(|r| (r["partition"].as_i64(), r["offset"].as_i64()));
    records
        .iter()
        .map(|r| {
            (
                r["key"].as_str().map(str::to_string),
                r["value"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_raw_key_format_writes_bare_keys_and_reads_them_back_with_except_key() {
    let bootstrap = require_broker!();
    let (input, keyed, output) = (
        random_topic("rawkey-in"),
        random_topic("rawkey-keyed"),
        random_topic("rawkey-out"),
    );
    create_topics(&bootstrap, &[(&input, 1), (&keyed, 1), (&output, 1)]).await;
    let values = [("a", 1), ("b", 2), ("a", 3)]
        .map(|(k, n)| serde_json::json!({ "k": k, "n": n }).to_string());
    produce_values(&bootstrap, &input, values).await;

    run_bounded(
        &bootstrap,
        "rawkey-write",
        format!(
            "CREATE TABLE events (k STRING, n BIGINT) WITH ('connector' = 'kafka', 'topic' = '{input}',
  'format' = 'json', 'properties.group.id' = '{}', 'scan.startup.mode' = 'earliest-offset');
CREATE TABLE keyed (k STRING, n BIGINT) WITH ('connector' = 'kafka', 'topic' = '{keyed}',
  'key.fields' = 'k', 'key.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY', 'format' = 'json');
INSERT INTO keyed SELECT k, n FROM events;",
            random_topic("rawkey-app1")
        ),
    )
    .await;
    let written = consume_pairs(&bootstrap, &keyed);
    let text = |k: &str, v: &str| (Some(k.to_string()), Some(v.to_string()));
    assert_eq!(
        written,
        vec![
            text("a", r#"{"n":1}"#),
            text("b", r#"{"n":2}"#),
            text("a", r#"{"n":3}"#),
        ],
        "bare keys, values without the key column"
    );

    run_bounded(
        &bootstrap,
        "rawkey-read",
        format!(
            "CREATE TABLE keyed (k STRING, n BIGINT) WITH ('connector' = 'kafka', 'topic' = '{keyed}',
  'key.fields' = 'k', 'key.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY', 'format' = 'json',
  'properties.group.id' = '{}', 'scan.startup.mode' = 'earliest-offset');
CREATE TABLE out (k STRING, n BIGINT) WITH ('connector' = 'kafka', 'topic' = '{output}', 'format' = 'csv');
INSERT INTO out SELECT k, n FROM keyed;",
            random_topic("rawkey-app2")
        ),
    )
    .await;
    let values: Vec<Option<String>> = consume_pairs(&bootstrap, &output)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        values,
        vec![Some("a,1".into()), Some("b,2".into()), Some("a,3".into())],
        "the key column read back from the record key"
    );
}

/// A script writing `events` Nexmark events' bids to `topic`, exactly once.
fn bids_to_kafka(bootstrap: &str, topic: &str, events: usize) -> String {
    format!(
        "CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  dateTime TIMESTAMP(3), extra STRING
) WITH ('connector' = 'nexmark', 'events.num' = '{events}');
CREATE TABLE out_bids (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  dateTime TIMESTAMP(3), extra STRING
) WITH ('connector' = 'kafka', 'topic' = '{topic}', 'format' = 'json',
        'properties.bootstrap.servers' = '{bootstrap}',
        'sink.delivery-guarantee' = 'exactly-once');
INSERT INTO out_bids SELECT * FROM bid;
"
    )
}

/// A pipeline that reads no Kafka topic (a generator) and writes one exactly
/// once keeps its generator's position in its checkpoints: SIGKILLed again and
/// again, it still writes exactly what one uninterrupted run writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_writing_kafka_exactly_once_survives_kills() {
    let bootstrap = require_broker!();
    let (reference, output) = (random_topic("gen-ref"), random_topic("gen-out"));
    // The records keep the generator's event times (2015 by default): without
    // this the broker's time retention deletes them within a check interval.
    let client = Client::connect(ProducerConfig::new(&bootstrap).unwrap().client)
        .await
        .unwrap();
    let topics: Vec<NewTopic> = [&reference, &output]
        .into_iter()
        .map(|t| NewTopic::new(t.as_str(), 2).config("retention.ms", "-1"))
        .collect();
    Admin::new(client).create_topics(&topics).await.unwrap();
    let events = 300_000;
    run_bounded(
        &bootstrap,
        &random_topic("gen-reference"),
        bids_to_kafka(&bootstrap, &reference, events),
    )
    .await;
    let dir = temp_dir("gen-killed");
    let script = dir.join("gen-killed.sql");
    std::fs::write(&script, bids_to_kafka(&bootstrap, &output, events)).unwrap();
    // Its state (the generator's position) lives in changelog topics named
    // after the application id: one of its own.
    let app = random_topic("gen-killed");
    let command = || {
        let mut c = strom();
        c.args([
            "--bootstrap",
            &bootstrap,
            "run",
            "--application-id",
            &app,
            "--checkpoint-interval-ms",
            "300",
            script.to_str().unwrap(),
        ]);
        c
    };
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let (mut kills, mut runs) = (0, 0);
    while kills < 5 && runs < 10 {
        runs += 1;
        let mut child = command()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400 + next() % 1200)).await;
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    run(command(), "strom run after the kills");
    eprintln!("{kills} SIGKILLs in {runs} runs");
    let sorted = |text: String| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    let expected = sorted(consume(&bootstrap, &reference));
    assert!(expected.len() > events / 2, "{} bids", expected.len());
    let got = sorted(java_read_committed(&bootstrap, &output));
    assert_eq!(
        got.len(),
        expected.len(),
        "bids written after {kills} kills"
    );
    assert!(
        got == expected,
        "the bids differ from the uninterrupted run's"
    );
}

/// Records of `topic` (partitions `0..partitions`) visible to read_committed
/// once there are `n`, or `None` after `limit`.
async fn wait_committed(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    n: usize,
    limit: Duration,
) -> Option<Duration> {
    use kafka_wire::client::config::ConsumerConfig;
    use kafka_wire::client::consumer::Consumer;
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("isolation.level".to_string(), "read_committed".to_string()),
        ("fetch.max.wait.ms".to_string(), "100".to_string()),
    ]);
    let mut consumer = Consumer::new(ConsumerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    let parts: Vec<(String, i32)> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
    consumer.assign(parts.clone());
    consumer.seek_to_beginning(parts).await.unwrap();
    let start = std::time::Instant::now();
    let mut seen = 0;
    while start.elapsed() < limit {
        seen += consumer
            .poll_for(Duration::from_millis(100))
            .await
            .unwrap()
            .len();
        if seen >= n {
            return Some(start.elapsed());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_output_shows_once_the_input_pauses_not_at_the_interval_end() {
    let bootstrap = require_broker!();
    let (input, output) = (random_topic("caughtup-in"), random_topic("caughtup-out"));
    create_topics(&bootstrap, &[(&input, 2), (&output, 2)]).await;
    produce_values(&bootstrap, &input, (0..10).map(|i| i.to_string())).await;
    let dir = temp_dir("caughtup");
    let path = dir.join("caughtup.sql");
    std::fs::write(
        &path,
        format!(
            "CREATE TABLE input (n BIGINT) WITH ('connector' = 'kafka', 'topic' = '{input}',
  'format' = 'csv', 'scan.startup.mode' = 'earliest-offset');
CREATE TABLE output (n BIGINT) WITH ('connector' = 'kafka', 'topic' = '{output}',
  'format' = 'csv', 'sink.delivery-guarantee' = 'exactly-once');
INSERT INTO output SELECT n FROM input;"
        ),
    )
    .unwrap();
    // Checkpoints every 30 s: the first comes 3.75 s after the start, the next
    // periodic one 7.5 s after that; an early one 3.75 s after the first.
    let mut pipeline = strom();
    pipeline
        .args(["--bootstrap", &bootstrap, "run", "--checkpoint-interval-ms"])
        .arg("30000")
        .args(["--application-id", &random_topic("caughtup-app")])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("strom.log")).unwrap());
    let mut child = pipeline.spawn().unwrap();
    let first = wait_committed(&bootstrap, &output, 2, 10, Duration::from_secs(60)).await;
    let second = match first {
        Some(_) => {
            produce_values(&bootstrap, &input, (10..20).map(|i| i.to_string())).await;
            wait_committed(&bootstrap, &output, 2, 20, Duration::from_secs(30)).await
        }
        None => None,
    };
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("strom.log")).unwrap_or_default();
    assert!(first.is_some(), "the first records never showed:\n{log}");
    let second = second.unwrap_or_else(|| panic!("the second records never showed:\n{log}"));
    assert!(
        second < Duration::from_secs(6),
        "the second records took {second:?}, as if waiting for the periodic checkpoint:\n{log}"
    );
}
