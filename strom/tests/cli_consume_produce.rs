//! `strom produce` and `strom consume` against the real broker: keys, headers,
//! a fixed partition, input from a file, a rate limit; output as a kcat-style
//! format string or JSON; starting points (offset, N before the end, time);
//! group mode committing exactly what was printed; bad input refused in one line.
#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::time::{Duration, Instant};

use integration_tests::{create_random_topic, random_topic, require_broker};
use kafka_wire::client::Client;
use kafka_wire::client::config::ClientConfig;

/// Runs `strom --bootstrap B ARGS` with `stdin` and returns its output.
async fn strom(bootstrap: &str, args: &[&str], stdin: &str) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .arg("--bootstrap")
        .arg(bootstrap)
        .args(args)
        .env_remove("KAFKA_BOOTSTRAP")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("strom did not end within 60 s")
        .unwrap()
}

/// Runs `strom` and returns its stdout lines; panics when it fails.
async fn strom_ok(bootstrap: &str, args: &[&str], stdin: &str) -> Vec<String> {
    let out = strom(bootstrap, args, stdin).await;
    assert!(
        out.status.success(),
        "strom {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `strom`, expects it to fail, and returns its `error: ` line.
async fn strom_err(bootstrap: &str, args: &[&str]) -> String {
    let out = strom(bootstrap, args, "").await;
    assert!(!out.status.success(), "strom {args:?} succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected in: {stderr}");
    errors[0].to_string()
}

async fn topic(bootstrap: &str, partitions: i32) -> String {
    let client = Client::connect(ClientConfig::new(bootstrap).unwrap())
        .await
        .unwrap();
    create_random_topic(&client, "cli-cp", partitions).await
}

const QUICK: &[&str] = &["--timeout-ms", "3000"];

#[tokio::test]
async fn keys_headers_and_a_partition_come_back_as_json() {
    let bootstrap = require_broker!();
    let topic = topic(&bootstrap, 3).await;
    let dir = integration_tests::workspace_root().join("target/cli-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.txt", random_topic("lines")));
    std::fs::write(&file, "k1:v1\nk2:v2\nno-key-here\n").unwrap();
    let file_arg = file.to_str().unwrap();
    strom_ok(
        &bootstrap,
        &[
            "produce",
            "--topic",
            &topic,
            "-K",
            ":",
            "-H",
            "source=test",
            "-H",
            "n=1",
            "--partition",
            "2",
            "--file",
            file_arg,
        ],
        "",
    )
    .await;
    let _ = std::fs::remove_file(&file);
    let lines = strom_ok(
        &bootstrap,
        &[
            "consume",
            "--topic",
            &topic,
            "--from",
            "beginning",
            "--partition",
            "2",
            "--json",
            "--timeout-ms",
            "3000",
        ],
        "",
    )
    .await;
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{lines:?}");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["topic"], topic.as_str());
        assert_eq!(r["partition"], 2);
        assert_eq!(r["offset"], i as i64);
        assert!(r["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
        assert_eq!(r["headers"][0]["key"], "source");
        assert_eq!(r["headers"][0]["value"], "test");
        assert_eq!(r["headers"][1]["key"], "n");
    }
    assert_eq!(records[0]["key"], "k1");
    assert_eq!(records[0]["value"], "v1");
    assert_eq!(records[1]["key"], "k2");
    assert!(records[2]["key"].is_null());
    assert_eq!(records[2]["value"], "no-key-here");
    // The other partitions got nothing.
    let rest = strom_ok(
        &bootstrap,
        &[
            "consume",
            "--topic",
            &topic,
            "--from",
            "beginning",
            "-p",
            "0",
            "-p",
            "1",
            "--timeout-ms",
            "2000",
        ],
        "",
    )
    .await;
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn a_format_string_and_the_starting_points() {
    let bootstrap = require_broker!();
    let topic = topic(&bootstrap, 1).await;
    let input: String = (0..10).map(|i| format!("k{i}=v{i}\n")).collect();
    strom_ok(
        &bootstrap,
        &["produce", "--topic", &topic, "--key-separator", "="],
        &input,
    )
    .await;
    let consume = |from: String| {
        let bootstrap = bootstrap.clone();
        let topic = topic.clone();
        async move {
            let mut args = vec![
                "consume".to_string(),
                "--topic".into(),
                topic,
                "-f".into(),
                "%t %p %o %k=%s (%S)\\n".into(),
                "--from".into(),
                from,
            ];
            args.extend(QUICK.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            strom_ok(&bootstrap, &args, "").await
        }
    };
    let all = consume("beginning".into()).await;
    assert_eq!(all.len(), 10);
    assert_eq!(all[3], format!("{topic} 0 3 k3=v3 (2)"));
    let from_offset = consume("7".into()).await;
    assert_eq!(from_offset.len(), 3);
    assert!(from_offset[0].contains(" 0 7 k7=v7"), "{from_offset:?}");
    let last_two = consume("-2".into()).await;
    assert_eq!(last_two.len(), 2);
    assert!(last_two[0].contains(" 0 8 k8=v8"), "{last_two:?}");
    // Every record is older than now + 1 min, none newer: from a future time, nothing.
    let future = format!(
        "@{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + 60_000
    );
    assert!(consume(future).await.is_empty());
    assert_eq!(consume("@0".into()).await.len(), 10);
    assert_eq!(consume("2000-01-01T00:00:00Z".into()).await.len(), 10);
}

#[tokio::test]
async fn a_group_commits_exactly_what_it_printed() {
    let bootstrap = require_broker!();
    let topic = topic(&bootstrap, 2).await;
    let input: String = (0..20).map(|i| format!("{i}\n")).collect();
    strom_ok(&bootstrap, &["produce", "--topic", &topic], &input).await;
    let group = random_topic("cli-group");
    let read = |max: &'static str| {
        let (bootstrap, topic, group) = (bootstrap.clone(), topic.clone(), group.clone());
        async move {
            strom_ok(
                &bootstrap,
                &[
                    "consume",
                    "--topic",
                    &topic,
                    "--group",
                    &group,
                    "--from",
                    "beginning",
                    "--max-messages",
                    max,
                    "--timeout-ms",
                    "4000",
                ],
                "",
            )
            .await
        }
    };
    let first = read("7").await;
    assert_eq!(first.len(), 7);
    let second = read("100").await;
    assert_eq!(
        second.len(),
        13,
        "the group resumes after the printed records"
    );
    let mut seen: Vec<u32> = first
        .iter()
        .chain(&second)
        .map(|v| v.parse().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    assert!(read("100").await.is_empty(), "everything was committed");
}

#[tokio::test]
async fn a_rate_limit_paces_the_records() {
    let bootstrap = require_broker!();
    let topic = topic(&bootstrap, 1).await;
    let input: String = (0..26).map(|i| format!("{i}\n")).collect();
    let started = Instant::now();
    strom_ok(
        &bootstrap,
        &["produce", "--topic", &topic, "--rate", "50"],
        &input,
    )
    .await;
    // 26 records at 50/s: the last one is due 0.5 s after the first.
    assert!(started.elapsed() >= Duration::from_millis(500));
    let all = strom_ok(
        &bootstrap,
        &[
            "consume",
            "--topic",
            &topic,
            "--from-beginning",
            "--timeout-ms",
            "3000",
        ],
        "",
    )
    .await;
    assert_eq!(all.len(), 26);
}

#[tokio::test]
async fn bad_input_is_refused_in_one_line() {
    let bootstrap = require_broker!();
    let topic = topic(&bootstrap, 1).await;
    let e = strom_err(&bootstrap, &["consume", "--topic", &topic, "-f", "%q"]).await;
    assert!(e.contains("unknown format token %q"), "{e}");
    let e = strom_err(
        &bootstrap,
        &["consume", "--topic", &topic, "--group", "g", "--from", "5"],
    )
    .await;
    assert!(e.contains("strom groups reset-offsets"), "{e}");
    let e = strom_err(&bootstrap, &["consume", "--topic", &topic, "-p", "4"]).await;
    assert!(e.contains("has no partition 4"), "{e}");
    let e = strom_err(&bootstrap, &["produce", "--topic", &topic, "--rate", "0"]).await;
    assert!(e.contains("--rate"), "{e}");
    let e = strom_err(
        &bootstrap,
        &[
            "produce",
            "--topic",
            &topic,
            "--file",
            "/nonexistent/strom-input.txt",
        ],
    )
    .await;
    assert!(e.contains("/nonexistent/strom-input.txt"), "{e}");
    assert!(e.contains("hint: check the path"), "{e}");
    let e = strom_err(
        &bootstrap,
        &[
            "consume",
            "--topic",
            &random_topic("missing"),
            "--timeout-ms",
            "2000",
        ],
    )
    .await;
    assert!(e.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{e}");
    assert!(e.contains("strom topics list"), "{e}");
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    // A closed loopback port: the client logs its retries, then the command fails.
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_strom"))
            .args([
                "--log-format",
                "json",
                "--bootstrap",
                "127.0.0.1:1",
                "-X",
                "request.timeout.ms=2000",
                "cluster",
                "describe",
            ])
            .env("RUST_LOG", "warn")
            .env_remove("KAFKA_BOOTSTRAP")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("strom did not end within 60 s")
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.starts_with("error: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(!logs.is_empty(), "no log lines in {stderr}");
    for l in &logs {
        assert_eq!(l["level"], "WARN", "{l}");
        assert!(l["fields"]["message"].is_string(), "{l}");
        assert!(
            l["target"].as_str().unwrap().starts_with("kafka_wire"),
            "{l}"
        );
    }
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{stderr}"
    );
}
