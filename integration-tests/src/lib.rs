//! Shared helpers for tests that run against a real Apache Kafka broker.
//!
//! The broker is started by `scripts/test` (or `scripts/kafka up`), which exports
//! `KAFKA_BOOTSTRAP`. Run by hand without a broker, broker tests skip with a loud
//! message; under `CI=true` they fail instead.
#![deny(missing_docs)]

pub mod checkers;
pub mod proxy;
pub mod txn_log;

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
    missing(
        "no Kafka broker configured",
        "set KAFKA_BOOTSTRAP, or run scripts/test or `scripts/kafka up` before `cargo test`",
    )
}

/// What a test helper returns when a server it needs is not configured: a panic
/// under `CI=true` (CI must never pass by skipping), else a loud skip message.
fn missing<T>(what: &str, fix: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true but {what}: {fix}");
    }
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!! SKIPPING test: {what}");
    eprintln!("!! {fix}");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    None
}

/// Reads `KAFKA_BOOTSTRAP=` from the env file of a broker that `scripts/kafka up` started.
fn bootstrap_from_env_file() -> Option<String> {
    env_file_value("KAFKA_BOOTSTRAP")
}

/// The value of `NAME=` in the env file `scripts/kafka up` writes (in
/// `STROM_KAFKA_DIR` when set, else `target/kafka`).
fn env_file_value(name: &str) -> Option<String> {
    let dir = std::env::var_os("STROM_KAFKA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/kafka"));
    let text = std::fs::read_to_string(dir.join("env")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The listeners and certificates of a broker started with `scripts/kafka up --secure`.
#[derive(Debug, Clone)]
pub struct SecureBroker {
    /// PLAINTEXT bootstrap; its principal, ANONYMOUS, is a super user.
    pub plaintext: String,
    /// SSL bootstrap: TLS with a client certificate required (principal = its CN).
    pub ssl: String,
    /// SASL_SSL bootstrap: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER over TLS.
    pub sasl_ssl: String,
    /// The folder of `ca.pem`, `other-ca.pem`, `admin.pem`/`admin.key`,
    /// `alice.pem`/`alice.key` and `admin.p12` (password `changeit`).
    pub certs: PathBuf,
}

impl SecureBroker {
    /// The path of a file in [`SecureBroker::certs`].
    pub fn cert(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }
}

/// The secured listeners of the test broker, if it was started with `--secure`.
///
/// Reads `KAFKA_SSL_BOOTSTRAP`, `KAFKA_SASL_SSL_BOOTSTRAP` and `KAFKA_CERTS` from the
/// environment, else from the env file of `scripts/kafka up --secure`. Like
/// [`bootstrap`], `None` after a loud skip message, and a panic under `CI=true`.
pub fn secure_broker() -> Option<SecureBroker> {
    let value = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .or_else(|| env_file_value(name))
    };
    let plaintext = bootstrap()?;
    if let (Some(ssl), Some(sasl_ssl), Some(certs)) = (
        value("KAFKA_SSL_BOOTSTRAP"),
        value("KAFKA_SASL_SSL_BOOTSTRAP"),
        value("KAFKA_CERTS"),
    ) {
        return Some(SecureBroker {
            plaintext,
            ssl,
            sasl_ssl,
            certs: PathBuf::from(certs),
        });
    }
    missing(
        "the broker has no secured listeners",
        "run scripts/test, or `scripts/kafka up --secure` before `cargo test`",
    )
}

/// Skips the calling test (by returning) when the broker has no secured listeners.
///
/// ```ignore
/// let broker = require_secure_broker!();
/// ```
#[macro_export]
macro_rules! require_secure_broker {
    () => {
        match $crate::secure_broker() {
            Some(broker) => broker,
            None => return,
        }
    };
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
    missing(
        "no PostgreSQL server configured",
        "set POSTGRES_URL, or run scripts/test or `scripts/postgres up` before `cargo test`",
    )
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

/// A Kafka cluster of its own for one test (`scripts/kafka up --brokers N` with
/// its state in `target/<name>`), beside the shared test broker; stopped when
/// dropped. For faults that need several brokers (leader and coordinator kills).
pub struct Cluster {
    dir: PathBuf,
    /// Its bootstrap servers.
    pub bootstrap: String,
}

impl Cluster {
    /// Starts `brokers` nodes (replication 3 and min.insync.replicas 2 from three
    /// nodes up), with `heap` per node (e.g. `512m`); panics if they do not start.
    pub fn up(name: &str, brokers: u32, heap: &str) -> Cluster {
        let dir = workspace_root().join("target").join(name);
        let out = std::process::Command::new(workspace_root().join("scripts/kafka"))
            .args(["up", "--brokers", &brokers.to_string()])
            .env("STROM_KAFKA_DIR", &dir)
            .env("STROM_KAFKA_HEAP", heap)
            .env_remove("STROM_KAFKA_PORT")
            .stderr(std::process::Stdio::inherit())
            .output();
        let bootstrap = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string(),
            other => panic!("scripts/kafka up --brokers {brokers} failed: {other:?}"),
        };
        Cluster { dir, bootstrap }
    }

    /// Runs `scripts/kafka ARGS...` on this cluster (e.g. `stop-node 2 -9`).
    pub fn script(&self, args: &[&str]) {
        let status = std::process::Command::new(workspace_root().join("scripts/kafka"))
            .args(args)
            .env("STROM_KAFKA_DIR", &self.dir)
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => panic!(
                "scripts/kafka {args:?} on {} failed: {other:?}",
                self.dir.display()
            ),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(workspace_root().join("scripts/kafka"))
            .arg("down")
            .env("STROM_KAFKA_DIR", &self.dir)
            .status();
    }
}

/// What a Java tool printed, and how it ended.
#[derive(Debug)]
pub struct JavaToolOutput {
    /// The exit status (a tool killed at its time limit has none).
    pub status: Option<std::process::ExitStatus>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl JavaToolOutput {
    /// Whether the tool exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs a Java class of the Kafka distribution that `scripts/kafka` fetches (e.g.
/// `org.apache.kafka.tools.consumer.group.ConsumerGroupCommand`), with `args`,
/// `stdin` fed to it when given, through `scripts/kafka run CLASS ARGS...` (the
/// broker's classpath and Java). Killed after `limit`; panics if it cannot start.
pub fn java_tool(
    class: &str,
    args: &[&str],
    stdin: Option<&str>,
    limit: std::time::Duration,
) -> JavaToolOutput {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(workspace_root().join("scripts/kafka"))
        .arg("run")
        .arg(class)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start scripts/kafka run {class}: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    JavaToolOutput {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// A group member that polls in a task of its own until stopped, committing
/// nothing by itself: a live member for tests of group administration.
pub struct PollingMember {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    handle: kafka_wire::client::group::GroupHandle,
}

impl PollingMember {
    /// Joins `group` with `properties` (e.g. `group.protocol`, `client.id`) over
    /// `bootstrap`, subscribed to `topics`, and polls every 100 ms for at most
    /// `limit`; auto-commit is off. Panics if the consumer cannot be created.
    pub async fn start(
        bootstrap: &str,
        group: &str,
        topics: &[&str],
        properties: &[(&str, &str)],
        limit: std::time::Duration,
    ) -> PollingMember {
        use kafka_wire::client::config::ConsumerConfig;
        use kafka_wire::client::group::GroupConsumer;
        use std::sync::atomic::Ordering;
        let mut props = std::collections::BTreeMap::from([
            ("bootstrap.servers".to_string(), bootstrap.to_string()),
            ("group.id".to_string(), group.to_string()),
            ("enable.auto.commit".to_string(), "false".to_string()),
            ("auto.offset.reset".to_string(), "earliest".to_string()),
            ("fetch.max.wait.ms".to_string(), "100".to_string()),
        ]);
        for (k, v) in properties {
            props.insert(k.to_string(), v.to_string());
        }
        let config = match ConsumerConfig::from_properties(&props) {
            Ok(c) => c,
            Err(e) => panic!("consumer config {props:?}: {e}"),
        };
        let mut consumer = match GroupConsumer::new(config).await {
            Ok(c) => c,
            Err(e) => panic!("group consumer of {group}: {e}"),
        };
        consumer.subscribe(topics.iter().copied());
        let handle = consumer.handle();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            while !flag.load(Ordering::Acquire) && started.elapsed() < limit {
                if let Err(e) = consumer
                    .poll_for(std::time::Duration::from_millis(100))
                    .await
                {
                    eprintln!("polling member: {e}");
                }
            }
            if let Err(e) = consumer.close().await {
                eprintln!("closing polling member: {e}");
            }
        });
        PollingMember { stop, task, handle }
    }

    /// The member, seen from outside its task (identity, commits).
    pub fn handle(&self) -> &kafka_wire::client::group::GroupHandle {
        &self.handle
    }

    /// Stops polling and leaves the group (close); waits for the task.
    pub async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Err(e) = self.task.await {
            panic!("polling member task: {e}");
        }
    }
}

/// Every record of `topic` (partitions `0..partitions`) up to its end offsets at
/// `isolation` (`read_committed`: the last stable offsets; `read_uncommitted`:
/// the high watermarks), read directly from the broker: `(partition, offset,
/// value)` in read order. Panics on an error or after 30 s.
pub async fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> Vec<(i32, i64, String)> {
    use kafka_wire::client::config::ConsumerConfig;
    use kafka_wire::client::consumer::Consumer;
    use std::time::{Duration, Instant};
    let limit = Duration::from_secs(30);
    let props = std::collections::BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("isolation.level".to_string(), isolation.to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("fetch.max.wait.ms".to_string(), "100".to_string()),
    ]);
    let config = match ConsumerConfig::from_properties(&props) {
        Ok(c) => c,
        Err(e) => panic!("consumer config {props:?}: {e}"),
    };
    let mut consumer = match Consumer::new(config).await {
        Ok(c) => c,
        Err(e) => panic!("consumer of {topic}: {e}"),
    };
    let all: Vec<(String, i32)> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
    consumer.assign(all.clone());
    let start = Instant::now();
    // Retried while the leadership of a new topic settles.
    let ends = loop {
        match consumer.end_offsets(&all).await {
            Ok(ends) => break ends,
            Err(e) if e.is_retriable() && start.elapsed() < limit => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("end offsets of {topic}: {e}"),
        }
    };
    let mut out = Vec::new();
    while !ends.iter().all(|((t, p), end)| {
        consumer
            .partition_offsets(t, *p)
            .and_then(|o| o.position)
            .is_some_and(|pos| pos >= *end)
    }) {
        assert!(
            start.elapsed() < limit,
            "{topic}: did not reach the end offsets {ends:?} in {limit:?}"
        );
        let records = match consumer.poll_for(Duration::from_millis(200)).await {
            Ok(r) => r,
            Err(e) => panic!("reading {topic}: {e}"),
        };
        for r in records {
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
            out.push((r.partition, r.offset, value.into_owned()));
        }
    }
    consumer.close().await;
    out
}

/// Sends `SIG<name>` (e.g. `TERM`, `STOP`, `CONT`) to `child`; panics if `kill` fails.
pub fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
}
