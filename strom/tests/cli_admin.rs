//! `strom topics`, `strom txns` and `strom cluster` against the real broker, run
//! as the built binary: what each prints, that the broker changed as asked, and
//! that a wrong name or an unreachable broker ends in one line naming the Kafka
//! error, with a non-zero exit.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration_tests::{create_random_topic, random_topic, require_broker, topic_metadata};
use kafka_wire::client::admin::OffsetSpec;
use kafka_wire::client::config::{ClientConfig, IsolationLevel, ProducerConfig};
use kafka_wire::client::transaction::TransactionalProducer;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

/// Upper bound for one run of the binary.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Runs `strom --bootstrap BOOTSTRAP ARGS` with no KAFKA_BOOTSTRAP in its environment.
async fn strom(bootstrap: &str, args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .arg("--bootstrap")
        .arg(bootstrap)
        .args(args)
        .env_remove("KAFKA_BOOTSTRAP")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(RUN_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("strom {args:?} did not end within {RUN_LIMIT:?}"))
        .unwrap()
}

/// The lines `strom ARGS` printed; panics if it failed.
async fn ok(bootstrap: &str, args: &[&str]) -> Vec<String> {
    let out = strom(bootstrap, args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "strom {args:?} failed: {stderr}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The one-line error of `strom ARGS`; panics if it succeeded or said more.
async fn fails(bootstrap: &str, args: &[&str]) -> String {
    let out = strom(bootstrap, args).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "strom {args:?} succeeded");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "strom {args:?}: not one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

/// Runs `check` on the output of `strom ARGS` until it holds, for at most 10 s:
/// brokers learn of created topics and changed configs through the metadata log.
async fn eventually(bootstrap: &str, args: &[&str], check: impl Fn(&[String]) -> bool) {
    let start = Instant::now();
    loop {
        let lines = ok(bootstrap, args).await;
        if check(&lines) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "strom {args:?} printed {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn client(bootstrap: &str) -> Client {
    Client::connect(ClientConfig::new(bootstrap).unwrap())
        .await
        .unwrap()
}

/// Writes `count` records `prefix-i` to a partition of `topic` and waits for them.
async fn produce(client: &Client, topic: &str, partition: i32, prefix: &str, count: usize) {
    let bootstrap = client.config().bootstrap_servers.join(",");
    let producer = Producer::with_client(client.clone(), ProducerConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(topic, format!("{prefix}-{i}")).partition(partition);
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close(Duration::from_secs(5)).await.unwrap();
}

async fn offsets(
    client: &Client,
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
    isolation: IsolationLevel,
) -> Vec<i64> {
    Admin::new(client.clone())
        .list_offsets(topic, partitions, spec, isolation)
        .await
        .unwrap()
        .values()
        .map(|o| o.offset)
        .collect()
}

#[tokio::test]
async fn topics_are_created_listed_described_altered_and_deleted() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("cli-topics");
    let created = ok(
        &bootstrap,
        &[
            "topics",
            "create",
            &topic,
            "--partitions",
            "2",
            "--topic-config",
            "retention.ms=3600000",
        ],
    )
    .await;
    assert_eq!(created, [format!("created topic {topic}")]);
    topic_metadata(&c, &topic).await;
    let again = fails(&bootstrap, &["topics", "create", &topic]).await;
    assert!(
        again.starts_with(&format!(
            "error: topic {topic} already exists (TOPIC_ALREADY_EXISTS): "
        )),
        "{again}"
    );

    eventually(&bootstrap, &["topics", "list"], |l| l.contains(&topic)).await;
    let internal = ok(&bootstrap, &["topics", "list", "--internal"]).await;
    let plain = ok(&bootstrap, &["topics", "list"]).await;
    for name in internal.iter().filter(|n| n.starts_with("__")) {
        assert!(!plain.contains(name), "{name} is internal");
    }
    let counts = ok(&bootstrap, &["topics", "list", "--counts"]).await;
    assert!(
        counts.contains(&format!("{topic}\tPartitionCount: 2\tReplicationFactor: 1")),
        "{counts:#?}"
    );

    // The layout of kafka-topics.sh --describe, with the configs set on the topic.
    let describe = ["topics", "describe", topic.as_str()];
    let lines = ok(&bootstrap, &describe).await;
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let head: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(head[0], format!("Topic: {topic}"));
    let id = head[1].strip_prefix("TopicId: ").unwrap();
    assert_eq!(id.len(), 22, "base64 of 16 bytes: {id}");
    assert_eq!(
        head[2..],
        [
            "PartitionCount: 2",
            "ReplicationFactor: 1",
            "Configs: retention.ms=3600000"
        ]
    );
    let info = c.topic(&topic).await.unwrap();
    for (line, p) in lines[1..].iter().zip(&info.partitions) {
        let n = p.leader;
        assert_eq!(
            *line,
            format!(
                "\tTopic: {topic}\tPartition: {}\tLeader: {n}\tReplicas: {n}\tIsr: {n}",
                p.partition
            )
        );
    }
    let everything = ok(&bootstrap, &["topics", "describe"]).await;
    assert!(everything.contains(&lines[0]), "{everything:#?}");

    let altered = ok(
        &bootstrap,
        &[
            "topics",
            "alter-config",
            &topic,
            "--set",
            "retention.ms=7200000",
            "--set",
            "cleanup.policy=compact",
        ],
    )
    .await;
    assert_eq!(altered.len(), 2, "{altered:#?}");
    eventually(&bootstrap, &describe, |l| {
        l[0].ends_with("\tConfigs: cleanup.policy=compact,retention.ms=7200000")
    })
    .await;
    ok(
        &bootstrap,
        &[
            "topics",
            "alter-config",
            &topic,
            "--delete",
            "cleanup.policy",
        ],
    )
    .await;
    eventually(&bootstrap, &describe, |l| {
        l[0].ends_with("\tConfigs: retention.ms=7200000")
    })
    .await;

    let deleted = ok(&bootstrap, &["topics", "delete", &topic]).await;
    assert_eq!(deleted, [format!("deleted topic {topic}")]);
    eventually(&bootstrap, &["topics", "list"], |l| !l.contains(&topic)).await;
}

#[tokio::test]
async fn delete_records_moves_the_log_start_offset() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "cli-delete-records", 2).await;
    topic_metadata(&c, &topic).await;
    produce(&c, &topic, 0, "p0", 10).await;
    produce(&c, &topic, 1, "p1", 6).await;

    let one = ok(
        &bootstrap,
        &[
            "topics",
            "delete-records",
            &topic,
            "--partition",
            "0",
            "--before-offset",
            "3",
        ],
    )
    .await;
    assert_eq!(
        one,
        [format!("Topic: {topic}\tPartition: 0\tLogStartOffset: 3")]
    );
    let earliest = |c: Client, topic: String| async move {
        offsets(
            &c,
            &topic,
            &[0, 1],
            OffsetSpec::Earliest,
            IsolationLevel::ReadUncommitted,
        )
        .await
    };
    assert_eq!(earliest(c.clone(), topic.clone()).await, [3, 0]);

    let all = ok(&bootstrap, &["topics", "delete-records", &topic, "--all"]).await;
    assert_eq!(
        all,
        [
            format!("Topic: {topic}\tPartition: 0\tLogStartOffset: 10"),
            format!("Topic: {topic}\tPartition: 1\tLogStartOffset: 6"),
        ]
    );
    assert_eq!(earliest(c.clone(), topic.clone()).await, [10, 6]);

    let past = fails(
        &bootstrap,
        &[
            "topics",
            "delete-records",
            &topic,
            "--partition",
            "1",
            "--before-offset",
            "100",
        ],
    )
    .await;
    assert!(past.contains("(OFFSET_OUT_OF_RANGE)"), "{past}");
    let missing = fails(
        &bootstrap,
        &[
            "topics",
            "delete-records",
            &topic,
            "--partition",
            "7",
            "--all",
        ],
    )
    .await;
    assert!(
        missing.contains(&format!(
            "partition 7 of topic {topic} does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
        )),
        "{missing}"
    );
    Admin::new(c)
        .delete_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_hanging_transaction_is_listed_described_found_and_aborted() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "cli-txns", 1).await;
    topic_metadata(&c, &topic).await;
    let id = random_topic("cli-txn-id");

    // A transaction left open: records written, then the producer dropped without
    // commit or abort. Its timeout is long, so only the CLI will end it.
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        ("transactional.id".to_string(), id.clone()),
        ("transaction.timeout.ms".to_string(), "300000".to_string()),
        ("linger.ms".to_string(), "1".to_string()),
    ]);
    let mut p = TransactionalProducer::new(ProducerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    p.begin().await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..3 {
        let record = ProducerRecord::new(&topic, format!("open-{i}")).partition(0);
        deliveries.push(p.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    let producer_id = p.identity().producer_id;
    drop(p);
    // A record after it, invisible to read_committed while the transaction hangs.
    produce(&c, &topic, 0, "after", 1).await;
    let read_committed = [
        "consume",
        "--topic",
        topic.as_str(),
        "--from-beginning",
        "--isolation-level",
        "read_committed",
        "--timeout-ms",
        "3000",
    ];
    assert!(ok(&bootstrap, &read_committed).await.is_empty());

    let listed = ok(&bootstrap, &["txns", "list", "--state", "Ongoing"]).await;
    assert_eq!(
        listed[0],
        "TransactionalId\tCoordinator\tProducerId\tTransactionState"
    );
    let mine: Vec<&String> = listed.iter().filter(|l| l.starts_with(&id)).collect();
    assert_eq!(mine.len(), 1, "{listed:#?}");
    let cols: Vec<&str> = mine[0].split('\t').collect();
    assert_eq!(cols[2..], [producer_id.to_string().as_str(), "Ongoing"]);
    let nodes = c.metadata().brokers;
    assert!(
        nodes.contains_key(&cols[1].parse::<i32>().unwrap()),
        "{cols:?}"
    );

    let described = ok(&bootstrap, &["txns", "describe", &id]).await;
    assert_eq!(described.len(), 2, "{described:#?}");
    let cols: Vec<&str> = described[1].split('\t').collect();
    assert_eq!(cols[1], id);
    assert_eq!(cols[2], producer_id.to_string());
    assert_eq!(cols[4], "Ongoing");
    assert_eq!(cols[5], "300000");
    assert_eq!(cols[8], format!("{topic}-0"));

    // Young and held open by its coordinator: not hanging by default; with no age
    // limit it is reported, starting at offset 0.
    let found = ["txns", "find-hanging", "--topic", topic.as_str()];
    assert_eq!(ok(&bootstrap, &found).await.len(), 1);
    let mut any_age = found.to_vec();
    any_age.extend(["--max-age-ms", "0"]);
    let hanging = ok(&bootstrap, &any_age).await;
    assert_eq!(hanging.len(), 2, "{hanging:#?}");
    let cols: Vec<&str> = hanging[1].split('\t').collect();
    assert_eq!(cols[..3], [topic.as_str(), "0", &producer_id.to_string()]);
    assert_eq!(cols[5], "0");
    assert_eq!(cols[8..], [id.as_str(), "Ongoing"]);

    let wrong = fails(
        &bootstrap,
        &[
            "txns",
            "abort",
            "--topic",
            &topic,
            "--partition",
            "0",
            "--start-offset",
            "1",
        ],
    )
    .await;
    assert!(
        wrong.contains("no open transaction starts at offset 1"),
        "{wrong}"
    );
    let aborted = ok(
        &bootstrap,
        &[
            "txns",
            "abort",
            "--topic",
            &topic,
            "--partition",
            "0",
            "--start-offset",
            "0",
        ],
    )
    .await;
    assert!(
        aborted[0].starts_with(&format!(
            "aborted the transaction of producer {producer_id}"
        )),
        "{aborted:#?}"
    );

    // The last stable offset passes the aborted records and the marker: the
    // read_committed reader gets the record behind them.
    let start = Instant::now();
    loop {
        let lso = offsets(
            &c,
            &topic,
            &[0],
            OffsetSpec::Latest,
            IsolationLevel::ReadCommitted,
        )
        .await;
        let hw = offsets(
            &c,
            &topic,
            &[0],
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await;
        if lso == hw {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "lso {lso:?} hw {hw:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ok(&bootstrap, &read_committed).await, ["after-0"]);
    assert_eq!(
        ok(&bootstrap, &any_age).await.len(),
        1,
        "nothing open any more"
    );
    Admin::new(c)
        .delete_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
}

#[tokio::test]
async fn cluster_describe_shows_the_brokers() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let cluster = Admin::new(c).describe_cluster().await.unwrap();
    let lines = ok(&bootstrap, &["cluster", "describe"]).await;
    assert_eq!(lines[0], format!("ClusterId: {}", cluster.cluster_id));
    assert_eq!(lines[1], format!("Controller: {}", cluster.controller_id));
    let mut brokers = cluster.brokers.clone();
    brokers.sort_by_key(|b| b.node_id);
    let expected: Vec<String> = brokers
        .iter()
        .map(|b| {
            format!(
                "Broker: {}\tAddress: {}\tRack: {}",
                b.node_id,
                b.address(),
                b.rack.as_deref().unwrap_or("none")
            )
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(lines[2..], expected);
}

#[tokio::test]
async fn a_missing_topic_or_transactional_id_is_one_line_naming_the_kafka_error() {
    let bootstrap = require_broker!();
    let missing = random_topic("cli-missing");
    let expected = format!(
        "error: topic {missing} does not exist (UNKNOWN_TOPIC_OR_PARTITION): check the name with `strom topics list`"
    );
    for args in [
        vec!["topics", "describe", missing.as_str()],
        vec!["topics", "delete", missing.as_str()],
        vec![
            "topics",
            "alter-config",
            missing.as_str(),
            "--set",
            "retention.ms=1000",
        ],
        vec!["topics", "delete-records", missing.as_str(), "--all"],
        vec!["txns", "find-hanging", "--topic", missing.as_str()],
    ] {
        assert_eq!(fails(&bootstrap, &args).await, expected, "{args:?}");
    }
    let id = random_topic("cli-missing-txn");
    let unknown = fails(&bootstrap, &["txns", "describe", &id]).await;
    assert_eq!(
        unknown,
        format!(
            "error: transactional id {id} is not known to its coordinator (TRANSACTIONAL_ID_NOT_FOUND): check the id with `strom txns list`"
        )
    );
}

#[tokio::test]
async fn a_refused_broker_address_fails_with_one_line_in_bounded_time() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let start = Instant::now();
    let runs = [
        vec!["topics", "list"],
        vec!["txns", "list"],
        vec!["cluster", "describe"],
    ]
    .map(|args| {
        let address = address.clone();
        tokio::spawn(async move { fails(&address, &args).await })
    });
    for run in runs {
        let line = run.await.unwrap();
        assert!(
            line.starts_with(&format!("error: cannot reach a broker at {address} (")),
            "{line}"
        );
        assert!(line.contains("refused"), "{line}");
        assert!(line.ends_with("check --bootstrap and that the brokers are running"));
    }
    // request.timeout.ms (30 s by default) bounds the retries.
    assert!(
        start.elapsed() < Duration::from_secs(45),
        "{:?}",
        start.elapsed()
    );
}
