//! `strom consume` against the real broker: the user's properties decide unless a
//! flag is given. Aborted transactions stay invisible when read_committed comes
//! from `-X`, from `--config` or from the flag; `auto.offset.reset` in a
//! properties file is honoured without `--from-beginning`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::{create_random_topic, random_topic, require_broker};
use kafka_wire::client::config::{ClientConfig, ProducerConfig};
use kafka_wire::client::transaction::TransactionalProducer;
use kafka_wire::client::{Client, ProducerRecord};

/// Writes `committed-0..3`, then `aborted-0..3` in an aborted transaction, then
/// `late-0..3` committed, to partition 0 of a new topic.
async fn topic_with_an_aborted_transaction(bootstrap: &str) -> String {
    let client = Client::connect(ClientConfig::new(bootstrap).unwrap())
        .await
        .unwrap();
    let topic = create_random_topic(&client, "cli-isolation", 1).await;
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("transactional.id".to_string(), random_topic("cli-txn")),
        ("linger.ms".to_string(), "1".to_string()),
    ]);
    let mut p = TransactionalProducer::new(ProducerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    for (prefix, commit) in [("committed", true), ("aborted", false), ("late", true)] {
        p.begin().await.unwrap();
        let mut deliveries = Vec::new();
        for i in 0..3 {
            let record = ProducerRecord::new(&topic, format!("{prefix}-{i}")).partition(0);
            deliveries.push(p.send(record).await.unwrap());
        }
        for d in deliveries {
            d.await.unwrap();
        }
        if commit {
            p.commit().await.unwrap();
        } else {
            p.abort().await.unwrap();
        }
    }
    topic
}

/// Runs `strom ARGS` (with no KAFKA_BOOTSTRAP in its environment) and returns
/// the values it printed; panics if it fails.
async fn strom_consume(args: &[&str]) -> Vec<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_strom"))
            .env("STROM_HTTP_ADDR", "127.0.0.1:0")
            .args(args)
            .env_remove("KAFKA_BOOTSTRAP")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("strom consume did not end")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "strom {args:?} failed: {stderr}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn committed_only() -> Vec<String> {
    [
        "committed-0",
        "committed-1",
        "committed-2",
        "late-0",
        "late-1",
        "late-2",
    ]
    .map(String::from)
    .to_vec()
}

fn everything() -> Vec<String> {
    [
        "committed-0",
        "committed-1",
        "committed-2",
        "aborted-0",
        "aborted-1",
        "aborted-2",
        "late-0",
        "late-1",
        "late-2",
    ]
    .map(String::from)
    .to_vec()
}

/// A properties file under `target/cli-tests`, removed on drop.
struct PropertiesFile(std::path::PathBuf);

impl PropertiesFile {
    fn new(lines: &[String]) -> PropertiesFile {
        let dir = integration_tests::workspace_root().join("target/cli-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.properties", random_topic("props")));
        std::fs::write(&path, lines.join("\n")).unwrap();
        PropertiesFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for PropertiesFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const QUICK: &[&str] = &["--timeout-ms", "3000"];

#[tokio::test]
async fn read_committed_from_dash_x_hides_aborted_records() {
    let bootstrap = require_broker!();
    let topic = topic_with_an_aborted_transaction(&bootstrap).await;
    let mut args = vec![
        "--bootstrap",
        &bootstrap,
        "-X",
        "isolation.level=read_committed",
    ];
    args.extend(["consume", "--topic", &topic, "--from-beginning"]);
    args.extend(QUICK);
    assert_eq!(strom_consume(&args).await, committed_only());
}

#[tokio::test]
async fn read_committed_from_a_properties_file_hides_aborted_records() {
    let bootstrap = require_broker!();
    let topic = topic_with_an_aborted_transaction(&bootstrap).await;
    let file = PropertiesFile::new(&[
        format!("bootstrap.servers={bootstrap}"),
        "isolation.level=read_committed".into(),
    ]);
    let mut args = vec!["--config", file.path()];
    args.extend(["consume", "--topic", &topic, "--from-beginning"]);
    args.extend(QUICK);
    assert_eq!(strom_consume(&args).await, committed_only());
}

#[tokio::test]
async fn the_isolation_flag_wins_over_the_property() {
    let bootstrap = require_broker!();
    let topic = topic_with_an_aborted_transaction(&bootstrap).await;
    let base = ["--bootstrap", &bootstrap];
    let mut committed = base.to_vec();
    committed.extend(["consume", "--topic", &topic, "--from-beginning"]);
    committed.extend(["--isolation-level", "read_committed"]);
    committed.extend(QUICK);
    assert_eq!(strom_consume(&committed).await, committed_only());

    let mut uncommitted = base.to_vec();
    uncommitted.extend(["-X", "isolation.level=read_committed"]);
    uncommitted.extend(["consume", "--topic", &topic, "--from-beginning"]);
    uncommitted.extend(["--isolation-level", "read_uncommitted"]);
    uncommitted.extend(QUICK);
    assert_eq!(strom_consume(&uncommitted).await, everything());

    // No flag, no property: the Java default, read_uncommitted.
    let mut default = base.to_vec();
    default.extend(["consume", "--topic", &topic, "--from-beginning"]);
    default.extend(QUICK);
    assert_eq!(strom_consume(&default).await, everything());
}

#[tokio::test]
async fn auto_offset_reset_from_a_properties_file_needs_no_flag() {
    let bootstrap = require_broker!();
    let topic = topic_with_an_aborted_transaction(&bootstrap).await;
    let file = PropertiesFile::new(&[
        format!("bootstrap.servers={bootstrap}"),
        "auto.offset.reset=earliest".into(),
        "isolation.level=read_committed".into(),
    ]);
    let mut args = vec!["--config", file.path()];
    args.extend(["consume", "--topic", &topic]);
    args.extend(QUICK);
    assert_eq!(strom_consume(&args).await, committed_only());

    // Without the property the Java default (latest) applies: nothing is old enough.
    let mut latest = vec!["--bootstrap", &bootstrap];
    latest.extend(["consume", "--topic", &topic]);
    latest.extend(QUICK);
    assert_eq!(strom_consume(&latest).await, Vec::<String>::new());
}

#[tokio::test]
async fn bootstrap_servers_from_the_file_wins_over_kafka_bootstrap_in_the_environment() {
    let bootstrap = require_broker!();
    let topic = topic_with_an_aborted_transaction(&bootstrap).await;
    let file = PropertiesFile::new(&[format!("bootstrap.servers={bootstrap}")]);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .env("STROM_HTTP_ADDR", "127.0.0.1:0")
        .args(["--config", file.path(), "consume", "--topic", &topic])
        .args(["--from-beginning", "--max-messages", "1"])
        // Nothing listens on port 1: used only if the file were ignored.
        .env("KAFKA_BOOTSTRAP", "127.0.0.1:1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "committed-0");
}
