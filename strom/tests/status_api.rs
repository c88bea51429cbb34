//! `strom run` serves its status while a Kafka → Kafka SQL pipeline runs against
//! the real broker: /metrics (parsed as Prometheus text) shows the partition lag
//! falling to 0 and checkpoints completing, /api/jobs has the contract's shape
//! (operators, edges, partitions, checkpoint history, result rows), /healthz and
//! /readyz answer 200, and a second `strom run` on the same port exits at once
//! with the one-line error.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use integration_tests::{random_topic, require_broker};
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::ProducerConfig;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

/// The longest any wait of this test lasts.
const WAIT: Duration = Duration::from_secs(60);

/// One HTTP/1.0 GET against the status server: (status code, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

/// The samples of /metrics.
fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let (code, body) = get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(v: &prometheus_parse::Value) -> f64 {
    match v {
        prometheus_parse::Value::Counter(x)
        | prometheus_parse::Value::Gauge(x)
        | prometheus_parse::Value::Untyped(x) => *x,
        _ => f64::NAN,
    }
}

/// Per partition of `topic`, the value of gauge `name`.
fn per_partition(scrape: &prometheus_parse::Scrape, name: &str, topic: &str) -> BTreeMap<i32, f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && s.labels.get("topic") == Some(topic))
        .map(|s| {
            (
                s.labels.get("partition").unwrap().parse().unwrap(),
                value(&s.value),
            )
        })
        .collect()
}

fn total(scrape: &prometheus_parse::Scrape, name: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| value(&s.value))
        .sum()
}

/// Kills the child on drop, so a failed assertion leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `strom run` on `sql` and returns it with the address of its status
/// server, read from its stderr line `strom: status at http://IP:PORT/`.
fn start_strom(bootstrap: &str, sql: &std::path::Path, http: &str) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["--bootstrap", bootstrap, "run"])
        .arg(sql)
        .args(["--checkpoint-interval-ms", "200", "--http-addr", http])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[strom] {line}");
            if let Some(rest) = line.strip_prefix("strom: status at http://") {
                let _ = tx.send(rest.trim_end_matches('/').to_string());
            }
        }
    });
    let running = Running(child);
    let addr = rx
        .recv_timeout(WAIT)
        .expect("strom printed no `strom: status at` line");
    (running, addr)
}

/// Polls `f` every 100 ms until it returns `Some`, for at most [`WAIT`].
fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_api_reports_a_running_kafka_pipeline() {
    let bootstrap = require_broker!();
    let (input, output, app) = (
        random_topic("status-clicks"),
        random_topic("status-counts"),
        random_topic("status-app"),
    );
    let client = Client::connect(ProducerConfig::new(&bootstrap).unwrap().client)
        .await
        .unwrap();
    Admin::new(client)
        .create_topics(&[NewTopic::new(&input, 2), NewTopic::new(&output, 1)])
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(random_topic("status-api"));
    std::fs::create_dir_all(&dir).unwrap();
    let sql = dir.join("counts.sql");
    std::fs::write(
        &sql,
        format!(
            "CREATE TABLE clicks (ts TIMESTAMP(3), page STRING,
               WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
             ) WITH ('connector' = 'kafka', 'topic' = '{input}', 'format' = 'json',
               'properties.group.id' = '{app}', 'scan.startup.mode' = 'earliest-offset',
               'properties.max.partition.fetch.bytes' = '2048', 'properties.max.poll.records' = '20');
             CREATE TABLE page_counts (window_start TIMESTAMP(3), page STRING, clicks BIGINT)
               WITH ('connector' = 'kafka', 'topic' = '{output}', 'format' = 'json');
             INSERT INTO page_counts
             SELECT window_start, page, COUNT(*)
             FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '1' SECOND))
             GROUP BY window_start, window_end, page;"
        ),
    )
    .unwrap();

    // The whole input is written before strom starts: each partition's log end
    // is then fixed, and its lag can only fall. Small fetches make the backlog
    // take a while to read.
    let records = 30_000i64;
    let producer = Producer::new(ProducerConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..records {
        let value =
            serde_json::json!({"ts": 1_796_292_000_000i64 + i, "page": format!("/p{}", i % 4)});
        pending.push(
            producer
                .send(ProducerRecord::new(&input, value.to_string()).partition((i % 2) as i32))
                .await
                .unwrap(),
        );
    }
    for p in pending {
        p.await.unwrap();
    }

    let (strom, addr) = start_strom(&bootstrap, &sql, "127.0.0.1:0");
    assert_eq!(get(&addr, "/healthz"), (200, "ok".to_string()));
    let (code, page) = get(&addr, "/");
    assert_eq!(code, 200);
    assert!(page.contains("<html"), "{page}");

    let mut lags: Vec<f64> = Vec::new();
    let final_scrape = poll("the lag to reach 0 on both partitions", || {
        let s = scrape(&addr);
        let offsets = per_partition(&s, "strom_source_partition_offset", &input);
        let lag = per_partition(&s, "strom_source_partition_lag", &input);
        if lag.len() < 2 {
            return None;
        }
        let sum: f64 = lag.values().sum();
        // Only once the log end a fetch saw is the final one (offset + lag = all
        // records): an older log end could make the lag look smaller for a while.
        if offsets.values().sum::<f64>() + sum != records as f64 {
            return None;
        }
        lags.push(sum);
        (sum == 0.0 && offsets.values().sum::<f64>() == records as f64).then_some(s)
    });
    eprintln!("lag per scrape: {lags:?}");
    assert!(
        lags.windows(2).all(|w| w[1] <= w[0]),
        "the lag rose while no input was written: {lags:?}"
    );
    assert_eq!(
        per_partition(&final_scrape, "strom_source_partition_offset", &input)
            .values()
            .sum::<f64>(),
        records as f64
    );
    assert!(
        lags[0] > 0.0,
        "the backlog was read before the first scrape: {lags:?}"
    );
    poll("/readyz 200", || {
        (get(&addr, "/readyz").0 == 200).then_some(())
    });
    // The backlog may drain before the first checkpoint completes (a loaded machine).
    let completed = poll("a completed checkpoint", || {
        let n = total(&scrape(&addr), "strom_checkpoints_completed_total");
        (n >= 1.0).then_some(n)
    });
    poll("more checkpoints to complete", || {
        (total(&scrape(&addr), "strom_checkpoints_completed_total") > completed).then_some(())
    });
    let s = scrape(&addr);
    for name in [
        "strom_checkpoint_last_completed_id",
        "strom_checkpoint_last_completed_timestamp_seconds",
        "strom_checkpoint_size_bytes",
        "strom_sink_records_total",
        "strom_records_in_total",
        "strom_operator_busy_seconds_total",
        "kafka_client_requests_total",
    ] {
        assert!(
            s.samples.iter().any(|x| x.metric == name),
            "{name} missing from /metrics"
        );
    }

    // Windows up to the last watermark have fired into the sink's result rows.
    let job = poll("result rows of page_counts", || {
        let (code, body) = get(&addr, "/api/jobs");
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let job = v["jobs"][0].clone();
        let rows = job["results"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["sink"] == "page_counts"))
            .and_then(|r| r["rows"].as_array())
            .map_or(0, Vec::len);
        (rows > 0).then_some(job)
    });
    eprintln!("{}", serde_json::to_string_pretty(&job).unwrap());
    assert_eq!(job["name"], app.as_str());
    assert_eq!(job["state"], "running");
    assert_eq!(job["incarnation"], 1);
    assert!(job["started_at"].as_i64().unwrap() > 0);
    let operators = job["operators"].as_array().unwrap();
    assert!(!operators.is_empty());
    let ids: Vec<&str> = operators
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    for kind in ["source", "operator", "sink"] {
        assert!(operators.iter().any(|o| o["kind"] == kind), "no {kind}");
    }
    let source = operators.iter().find(|o| o["kind"] == "source").unwrap();
    assert_eq!(source["records_out"], records);
    assert_eq!(source["parallelism"], 1);
    for o in operators {
        for f in [
            "records_in_per_s",
            "records_out_per_s",
            "busy_ratio",
            "backpressured_ratio",
        ] {
            assert!(o[f].is_null() || o[f].is_number(), "{f}: {o}");
        }
    }
    let edges = job["edges"].as_array().unwrap();
    assert!(!edges.is_empty());
    assert!(
        edges.iter().any(|e| e["kind"] == "hash"),
        "the GROUP BY exchanges by key"
    );
    for e in edges {
        assert!(
            ids.contains(&e["from"].as_str().unwrap()) && ids.contains(&e["to"].as_str().unwrap()),
            "{e}"
        );
    }
    let partitions = job["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2);
    for p in partitions {
        assert_eq!(p["topic"], input.as_str());
        assert_eq!(p["lag"], 0, "{p}");
        assert_eq!(p["position"], p["log_end"], "{p}");
        assert!(p["watermark"].as_i64().unwrap() >= 1_796_292_000_000, "{p}");
        assert_eq!(p["idle"], false);
    }
    let sink = &job["sinks"][0];
    assert_eq!(sink["name"], "page_counts");
    assert_eq!(sink["kind"], "kafka");
    assert!(sink["records"].as_u64().unwrap() > 0);
    assert!(sink["transactions_committed"].as_u64().unwrap() > 0);
    let checkpoints = &job["checkpoints"];
    assert!(checkpoints["completed"].as_u64().unwrap() >= 2);
    assert_eq!(checkpoints["failed"], 0);
    assert!(checkpoints["restore_ms"].is_number());
    let history = checkpoints["history"].as_array().unwrap();
    assert!(!history.is_empty() && history.len() <= 50);
    assert_eq!(history.last().unwrap()["outcome"], "completed");
    assert_eq!(checkpoints["last_id"], history.last().unwrap()["id"]);
    let results = job["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["sink"] == "page_counts")
        .unwrap();
    assert_eq!(
        results["columns"],
        serde_json::json!(["window_start", "page", "clicks"])
    );
    assert_eq!(
        results["types"],
        serde_json::json!(["timestamp", "string", "number"])
    );
    let row = &results["rows"][0];
    assert!(row[0].as_i64().unwrap() >= 1_796_292_000_000, "{row}");
    assert!(row[1].as_str().unwrap().starts_with("/p"), "{row}");
    assert!(row[2].as_i64().unwrap() > 0, "{row}");
    assert_eq!(job["dead_letters"], 0);
    assert!(job["errors"].as_array().unwrap().is_empty());

    // A second process on the same port ends at once with the one-line error.
    let second = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["--bootstrap", &bootstrap, "run"])
        .arg(&sql)
        .args(["--http-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut second = Running(second);
    let status = poll("the second strom to exit", || second.0.try_wait().unwrap());
    assert!(!status.success());
    let mut stderr = String::new();
    second
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: cannot serve status on {addr}: address in use (pass --http-addr HOST:PORT or off)"
        )
    );
    // The first one still serves.
    assert_eq!(get(&addr, "/healthz").0, 200);
    drop(strom);
    let _ = std::fs::remove_dir_all(&dir);
}
