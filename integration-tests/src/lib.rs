//! Shared helpers for tests that run against a real Apache Kafka broker.
//!
//! The broker is started by `scripts/test` (or `scripts/kafka up`), which exports
//! `KAFKA_BOOTSTRAP`. Run by hand without a broker, broker tests skip with a loud
//! message; under `CI=true` they fail instead.
#![deny(missing_docs)]

use std::path::PathBuf;

/// The bootstrap address of the test broker, if one is configured.
///
/// Looks at `KAFKA_BOOTSTRAP` first, then at the env file that `scripts/kafka up`
/// writes (`target/kafka/env`). Returns `None` when neither names a broker, after
/// printing a loud skip message, and panics instead when `CI=true`, so CI can
/// never pass by skipping.
pub fn bootstrap() -> Option<String> {
    if let Ok(addr) = std::env::var("KAFKA_BOOTSTRAP") {
        if !addr.trim().is_empty() {
            return Some(addr.trim().to_string());
        }
    }
    if let Some(addr) = bootstrap_from_env_file() {
        return Some(addr);
    }
    let in_ci = std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false);
    if in_ci {
        panic!(
            "CI=true but no Kafka broker is configured: set KAFKA_BOOTSTRAP or run scripts/test"
        );
    }
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!! SKIPPING broker test: no Kafka broker configured.                      !!");
    eprintln!("!! Run `scripts/test`, or `scripts/kafka up` before `cargo test`.         !!");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    None
}

/// Reads `KAFKA_BOOTSTRAP=` from the env file of a broker that `scripts/kafka up` started.
fn bootstrap_from_env_file() -> Option<String> {
    // scripts/kafka keeps its state in STROM_KAFKA_DIR when set.
    let dir = std::env::var_os("STROM_KAFKA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/kafka"));
    let path = dir.join("env");
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("KAFKA_BOOTSTRAP="))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The connection string of the test PostgreSQL server, if one is configured:
/// `POSTGRES_URL`, else the env file `scripts/postgres up` writes
/// (`target/postgres/env`). Like [`bootstrap`], `None` after a loud skip message,
/// and a panic under `CI=true`.
pub fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("POSTGRES_URL") {
        if !url.trim().is_empty() {
            return Some(url.trim().to_string());
        }
    }
    let dir = std::env::var_os("STROM_POSTGRES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/postgres"));
    let from_file = std::fs::read_to_string(dir.join("env"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("POSTGRES_URL="))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        });
    if from_file.is_some() {
        return from_file;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true but no PostgreSQL is configured: set POSTGRES_URL or run scripts/test");
    }
    eprintln!(
        "!! SKIPPING PostgreSQL test: no server configured (POSTGRES_URL unset); run scripts/test !!"
    );
    None
}

/// The root of the cargo workspace (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Skips the calling test (by returning) when no broker is configured.
///
/// ```ignore
/// let bootstrap = require_broker!();
/// ```
#[macro_export]
macro_rules! require_broker {
    () => {
        match $crate::bootstrap() {
            Some(addr) => addr,
            None => return,
        }
    };
}

/// A topic name unique to this test run, so tests never collide on a shared broker.
pub fn random_topic(prefix: &str) -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Creates a fresh topic named after `prefix` ([`random_topic`]) with `partitions`
/// partitions and the broker's default replication; panics if the broker refuses.
pub async fn create_random_topic(
    client: &kafka_wire::client::Client,
    prefix: &str,
    partitions: i32,
) -> String {
    use kafka_wire::client::Admin;
    use kafka_wire::client::admin::NewTopic;
    let topic = random_topic(prefix);
    if let Err(e) = Admin::new(client.clone())
        .create_topics(&[NewTopic::new(&topic, partitions)])
        .await
    {
        panic!("creating topic {topic}: {e}");
    }
    topic
}

/// The metadata of `topic`, waiting (at most 10 s) while brokers do not know it
/// yet: CreateTopics answers before every metadata cache has the new topic.
pub async fn topic_metadata(
    client: &kafka_wire::client::Client,
    topic: &str,
) -> kafka_wire::client::cluster::TopicInfo {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match client.topic(topic).await {
            Ok(info) if !info.partitions.is_empty() => return info,
            Ok(_) => {}
            Err(e) if e.code() == Some(kafka_wire::ErrorCode::UnknownTopicOrPartition) => {}
            Err(e) => panic!("metadata of {topic}: {e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "topic {topic} not in metadata after 10 s"
        );
        client.invalidate_topic(topic);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Whether the broker at `bootstrap` is the one `scripts/kafka` runs here, so a
/// test may stop and restart it.
pub fn broker_is_ours(bootstrap: &str) -> bool {
    bootstrap_from_env_file().is_some_and(|addr| addr == bootstrap)
}

/// Runs `scripts/kafka ARGS...` (e.g. `stop-node 1 -9`) and panics if it fails.
pub fn kafka_script(args: &[&str]) {
    let status = std::process::Command::new(workspace_root().join("scripts/kafka"))
        .args(args)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!("scripts/kafka {args:?} failed: {other:?}"),
    }
}
