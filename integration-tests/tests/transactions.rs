//! The transactional producer against the real broker: commit and abort
//! visibility (our consumer and Java's console consumer), zombie fencing, a
//! transaction timed out by the coordinator, and offsets committed in a transaction.
//!
//! Every test ends by checking that no transaction is left hanging: each output
//! partition's read_committed end offset (the last stable offset) equals its
//! read_uncommitted end offset (the high watermark).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use integration_tests::{create_random_topic, random_topic, require_broker, workspace_root};
use kafka_wire::client::admin::{NewTopic, OffsetSpec};
use kafka_wire::client::config::{ClientConfig, ConsumerConfig, IsolationLevel, ProducerConfig};
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::group::GroupConsumer;
use kafka_wire::client::transaction::admin::{AbortTransactionSpec, TransactionAdmin};
use kafka_wire::client::transaction::pool::{TransactionalIdPool, abort_lingering};
use kafka_wire::client::transaction::{
    ConsumerGroupMetadata, TransactionState, TransactionalProducer,
};
use kafka_wire::client::{Admin, Client, ProducerRecord};
use kafka_wire::protocol::messages::OffsetFetchRequest;
use kafka_wire::protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_wire::{Error, ErrorCode};

/// Upper bound for any wait on the broker in these tests.
const DEADLINE: Duration = Duration::from_secs(20);

async fn client(bootstrap: &str) -> Client {
    Client::connect(ClientConfig::new(bootstrap).unwrap())
        .await
        .unwrap()
}

fn producer_config(bootstrap: &str, id: &str, extra: &[(&str, &str)]) -> ProducerConfig {
    let mut props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("transactional.id".to_string(), id.to_string()),
        ("linger.ms".to_string(), "1".to_string()),
        ("max.block.ms".to_string(), "15000".to_string()),
        ("request.timeout.ms".to_string(), "10000".to_string()),
        ("delivery.timeout.ms".to_string(), "12000".to_string()),
    ]);
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    ProducerConfig::from_properties(&props).unwrap()
}

async fn producer(bootstrap: &str, id: &str) -> TransactionalProducer {
    TransactionalProducer::new(producer_config(bootstrap, id, &[]))
        .await
        .unwrap()
}

/// Sends `values` to `topic` (keyed by value, so spread over partitions) and waits for each.
async fn send_all(p: &mut TransactionalProducer, topic: &str, values: &[String]) {
    let mut deliveries = Vec::new();
    for v in values {
        let record = ProducerRecord::new(topic, v.clone()).key(v.clone());
        deliveries.push(p.send(record).await.unwrap());
    }
    for d in deliveries {
        if let Err(e) = d.await {
            panic!("record not delivered: {e}");
        }
    }
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The values of `topic` up to its end offsets at `isolation`, sorted.
async fn read_all(bootstrap: &str, topic: &str, partitions: i32, isolation: &str) -> Vec<String> {
    let mut out: Vec<String> = integration_tests::read_all(bootstrap, topic, partitions, isolation)
        .await
        .into_iter()
        .map(|(_, _, value)| value)
        .collect();
    out.sort();
    out
}

/// `Admin::list_offsets`, retried while leadership of a new topic settles.
async fn end_offsets(
    admin: &Admin,
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
    level: IsolationLevel,
) -> kafka_wire::Result<BTreeMap<i32, kafka_wire::client::admin::ListedOffset>> {
    let mut last = None;
    for _ in 0..50 {
        match admin.list_offsets(topic, partitions, spec, level).await {
            Ok(o) => return Ok(o),
            Err(e) if e.is_retriable() => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap())
}

/// The end offset of partition 0 of `topic` at `level` (the last stable offset
/// under read_committed, the high watermark under read_uncommitted).
async fn end_of_first_partition(admin: &Admin, topic: &str, level: IsolationLevel) -> i64 {
    end_offsets(admin, topic, &[0], OffsetSpec::Latest, level)
        .await
        .unwrap()[&0]
        .offset
}

/// Asserts that no transaction hangs on `topic`: the last stable offset of every
/// partition equals its high watermark.
async fn assert_no_hanging_transaction(bootstrap: &str, topic: &str, partitions: i32) {
    let admin = Admin::new(client(bootstrap).await);
    let all: Vec<i32> = (0..partitions).collect();
    let start = Instant::now();
    loop {
        let committed = end_offsets(
            &admin,
            topic,
            &all,
            OffsetSpec::Latest,
            IsolationLevel::ReadCommitted,
        )
        .await
        .unwrap();
        let uncommitted = end_offsets(
            &admin,
            topic,
            &all,
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
        let lso: Vec<i64> = committed.values().map(|o| o.offset).collect();
        let hw: Vec<i64> = uncommitted.values().map(|o| o.offset).collect();
        if lso == hw {
            return;
        }
        // Markers are written asynchronously after EndTxn answers; give them a moment.
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "hanging transaction on {topic}: last stable offsets {lso:?}, high watermarks {hw:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn aborted_records_are_invisible_to_read_committed() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "txn-abort", 3).await;
    let mut p = producer(&bootstrap, &random_topic("txn-id")).await;
    assert_eq!(p.state(), TransactionState::Ready);
    assert!(p.identity().producer_id >= 0);

    // Transaction version 2 (KIP-890) whenever the broker finalizes it (the pinned
    // Kafka does on a new cluster): every EndTxn then bumps the epoch.
    let v2 = p.uses_transaction_v2();
    assert_eq!(v2, p.broker_transaction_version() >= 2);
    eprintln!(
        "transaction.version finalized {}, protocol version {}",
        p.broker_transaction_version(),
        if v2 { 2 } else { 1 }
    );
    let epoch0 = p.identity().producer_epoch;

    p.begin().await.unwrap();
    let committed1 = values("committed-a", 30);
    send_all(&mut p, &topic, &committed1).await;
    p.commit().await.unwrap();
    let epoch1 = p.identity().producer_epoch;

    p.begin().await.unwrap();
    let aborted = values("aborted", 30);
    send_all(&mut p, &topic, &aborted).await;
    p.abort().await.unwrap();
    let epoch2 = p.identity().producer_epoch;
    if v2 {
        assert_eq!((epoch1, epoch2), (epoch0 + 1, epoch0 + 2));
    } else {
        assert_eq!((epoch1, epoch2), (epoch0, epoch0));
    }

    p.begin().await.unwrap();
    // All three partitions up front, in one request.
    let all: Vec<(String, i32)> = (0..3).map(|i| (topic.clone(), i)).collect();
    p.add_partitions_to_transaction(&all).await.unwrap();
    let committed2 = values("committed-b", 30);
    send_all(&mut p, &topic, &committed2).await;
    p.commit().await.unwrap();
    assert_eq!(p.state(), TransactionState::Ready);

    let expected_committed = sorted([committed1.clone(), committed2.clone()].concat());
    let expected_all = sorted([committed1, aborted, committed2].concat());
    assert_eq!(
        read_all(&bootstrap, &topic, 3, "read_committed").await,
        expected_committed
    );
    assert_eq!(
        read_all(&bootstrap, &topic, 3, "read_uncommitted").await,
        expected_all
    );
    assert_no_hanging_transaction(&bootstrap, &topic, 3).await;
}

#[tokio::test]
async fn java_console_consumer_read_committed_skips_aborted_records() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "txn-java", 2).await;
    let mut p = producer(&bootstrap, &random_topic("txn-id")).await;
    p.begin().await.unwrap();
    send_all(&mut p, &topic, &values("gone", 10)).await;
    p.abort().await.unwrap();
    p.begin().await.unwrap();
    let kept = values("kept", 10);
    send_all(&mut p, &topic, &kept).await;
    p.commit().await.unwrap();
    assert_no_hanging_transaction(&bootstrap, &topic, 2).await;

    let out = Command::new(workspace_root().join("scripts/kafka"))
        .args([
            "run",
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            &topic,
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--max-messages",
            "10",
            "--timeout-ms",
            "15000",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let seen: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(sorted(seen), sorted(kept));
}

/// A partition that ends in an aborted transaction: `poll_batches` under
/// read_committed reports the position moving past the aborted records and the
/// abort marker (a `Fetched` without records), so a reader waiting for the end
/// offset gets there (a changelog restore waited 300 s for it).
#[tokio::test]
async fn read_committed_batches_move_past_an_aborted_tail() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "txn-tail", 1).await;
    let admin = Admin::new(c.clone());
    let mut p = producer(&bootstrap, &random_topic("txn-id")).await;
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        ("isolation.level".to_string(), "read_committed".to_string()),
    ]);
    let mut consumer = Consumer::new(ConsumerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    consumer.assign([(topic.as_str(), 0)]);
    consumer.seek(&topic, 0, 0);
    let mut seen = Vec::new();
    // First a committed transaction (5 records and a marker), then an aborted
    // one, which the reader meets on its own, as the only data of a fetch.
    for (prefix, commit) in [("kept", true), ("gone", false)] {
        p.begin().await.unwrap();
        send_all(&mut p, &topic, &values(prefix, 5)).await;
        if commit {
            p.commit().await.unwrap();
        } else {
            p.abort().await.unwrap();
        }
        assert_no_hanging_transaction(&bootstrap, &topic, 1).await;
        let end = end_of_first_partition(&admin, &topic, IsolationLevel::ReadCommitted).await;
        let deadline = Instant::now() + DEADLINE;
        let mut next = 0;
        while next < end {
            assert!(Instant::now() < deadline, "at {next} of {end}: {seen:?}");
            let batches = tokio::time::timeout(Duration::from_secs(1), consumer.poll_batches())
                .await
                .unwrap_or(Ok(Vec::new()))
                .unwrap();
            for b in batches {
                seen.extend(b.records.iter().map(|r| {
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
                }));
                next = next.max(b.next_offset);
            }
        }
        assert_eq!(next, end);
    }
    consumer.close().await;
    assert_eq!(sorted(seen), sorted(values("kept", 5)));
}

#[tokio::test]
async fn an_older_producer_is_fenced_and_its_records_never_become_visible() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "txn-zombie", 2).await;
    let id = random_topic("txn-id");

    let mut zombie = producer(&bootstrap, &id).await;
    zombie.begin().await.unwrap();
    send_all(&mut zombie, &topic, &values("zombie", 10)).await;
    let old = zombie.identity();

    // The new incarnation fences the zombie and aborts its open transaction.
    let mut fresh = producer(&bootstrap, &id).await;
    assert_eq!(fresh.identity().producer_id, old.producer_id);
    assert!(fresh.identity().producer_epoch > old.producer_epoch);

    let err = zombie.commit().await.unwrap_err();
    assert!(
        matches!(err, Error::Fenced { .. }),
        "expected fencing, got {err}"
    );
    assert!(err.is_fatal());
    assert_eq!(zombie.state(), TransactionState::FatalError);
    // A fenced producer refuses everything afterwards.
    assert!(matches!(
        zombie.begin().await.unwrap_err(),
        Error::InvalidTransactionState { .. }
    ));

    fresh.begin().await.unwrap();
    let good = values("fresh", 10);
    send_all(&mut fresh, &topic, &good).await;
    fresh.commit().await.unwrap();

    assert_eq!(
        read_all(&bootstrap, &topic, 2, "read_committed").await,
        sorted(good)
    );
    assert_no_hanging_transaction(&bootstrap, &topic, 2).await;
}

#[tokio::test]
async fn a_transaction_open_past_its_timeout_is_aborted_and_reported() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "txn-timeout", 1).await;
    let id = random_topic("txn-id");
    let config = producer_config(
        &bootstrap,
        &id,
        &[
            ("transaction.timeout.ms", "2000"),
            ("delivery.timeout.ms", "1500"),
            ("request.timeout.ms", "1000"),
            ("linger.ms", "0"),
        ],
    );
    let mut p = TransactionalProducer::new(config.clone()).await.unwrap();
    p.begin().await.unwrap();
    send_all(&mut p, &topic, &values("late", 5)).await;
    // The broker checks for expired transactions every
    // transaction.abort.timed.out.transaction.cleanup.interval.ms (10 s by default).
    let start = Instant::now();
    let admin = Admin::new(c.clone());
    loop {
        let lso = end_of_first_partition(&admin, &topic, IsolationLevel::ReadCommitted).await;
        let hw = end_of_first_partition(&admin, &topic, IsolationLevel::ReadUncommitted).await;
        if lso == hw {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the coordinator never aborted the timed-out transaction"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let err = p.commit().await.unwrap_err();
    assert!(
        err.to_string().contains("transaction.timeout.ms"),
        "the error should name the timeout: {err}"
    );
    let kept = values("after-timeout", 5);
    if p.uses_transaction_v2() {
        // Version 2 (KIP-890): the coordinator's abort bumped the epoch; the commit
        // is refused as abortable, the abort completes it, and the same producer
        // goes on under the new epoch.
        assert!(err.is_abortable(), "{err}");
        assert_eq!(err.code(), Some(ErrorCode::InvalidTxnState), "{err}");
        let epoch = p.identity().producer_epoch;
        p.abort().await.unwrap();
        assert!(p.identity().producer_epoch > epoch);
        p.begin().await.unwrap();
        send_all(&mut p, &topic, &kept).await;
        p.commit().await.unwrap();
    } else {
        // Version 1: the timeout fenced this producer; a new incarnation recovers.
        assert!(err.is_fatal(), "{err}");
        assert!(
            matches!(
                err.code(),
                Some(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch)
            ),
            "{err}"
        );
        let mut again = TransactionalProducer::new(config).await.unwrap();
        again.begin().await.unwrap();
        send_all(&mut again, &topic, &kept).await;
        again.commit().await.unwrap();
    }
    assert_eq!(
        read_all(&bootstrap, &topic, 1, "read_committed").await,
        sorted(kept)
    );
    assert_no_hanging_transaction(&bootstrap, &topic, 1).await;
}

#[tokio::test]
async fn a_timeout_above_the_broker_maximum_is_a_clear_error() {
    let bootstrap = require_broker!();
    let config = producer_config(
        &bootstrap,
        &random_topic("txn-id"),
        &[("transaction.timeout.ms", "86400000")],
    );
    let err = TransactionalProducer::new(config).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidTransactionTimeout { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("transaction.max.timeout.ms"),
        "{err}"
    );
}

#[tokio::test]
async fn empty_transactions_commit_and_state_errors_are_reported() {
    let bootstrap = require_broker!();
    let mut p = producer(&bootstrap, &random_topic("txn-id")).await;
    assert!(matches!(
        p.commit().await.unwrap_err(),
        Error::InvalidTransactionState { .. }
    ));
    p.begin().await.unwrap();
    assert!(matches!(
        p.begin().await.unwrap_err(),
        Error::InvalidTransactionState { .. }
    ));
    p.commit().await.unwrap();
    p.begin().await.unwrap();
    p.abort().await.unwrap();
    assert_eq!(p.state(), TransactionState::Ready);

    // A partition the topic does not have is refused up front; the transaction goes on.
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "txn-bad-partition", 1).await;
    p.begin().await.unwrap();
    let err = p
        .send(ProducerRecord::new(&topic, "x").partition(5))
        .await
        .unwrap_err();
    // Refused before anything was sent: neither abortable nor fatal.
    assert!(
        matches!(
            err,
            Error::Broker {
                code: ErrorCode::UnknownTopicOrPartition,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_abortable() && !err.is_fatal(), "{err}");
    assert_eq!(p.state(), TransactionState::InTransaction);
    send_all(&mut p, &topic, &values("ok", 2)).await;
    p.commit().await.unwrap();
    assert_no_hanging_transaction(&bootstrap, &topic, 1).await;
}

#[tokio::test]
async fn offsets_sent_to_a_transaction_are_committed_only_with_it() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "txn-offsets", 1).await;
    let input = create_random_topic(&c, "txn-input", 1).await;
    let group = random_topic("txn-group");
    let mut p = producer(&bootstrap, &random_topic("txn-id")).await;
    let meta = ConsumerGroupMetadata::new(&group);

    p.begin().await.unwrap();
    send_all(&mut p, &topic, &values("x", 3)).await;
    let offsets = BTreeMap::from([((input.clone(), 0), 17_i64)]);
    p.send_offsets_to_transaction(&offsets, &meta)
        .await
        .unwrap();
    p.abort().await.unwrap();
    assert_eq!(committed_offset(&c, &group, &input).await, -1);

    p.begin().await.unwrap();
    send_all(&mut p, &topic, &values("y", 3)).await;
    let offsets = BTreeMap::from([((input.clone(), 0), 42_i64)]);
    p.send_offsets_to_transaction(&offsets, &meta)
        .await
        .unwrap();
    p.commit().await.unwrap();
    assert_eq!(committed_offset(&c, &group, &input).await, 42);
    assert_no_hanging_transaction(&bootstrap, &topic, 1).await;
}

/// The committed offset of partition 0 of `topic` for `group` (-1: none), read
/// with OffsetFetch v7 (`require_stable`) from the group coordinator.
async fn committed_offset(c: &Client, group: &str, topic: &str) -> i64 {
    use kafka_wire::client::transaction::coordinator::{Coordinator, CoordinatorType};
    let mut coordinator = Coordinator::new(c.clone(), CoordinatorType::Group, group);
    let request = OffsetFetchRequest {
        group_id: group.to_string(),
        topics: Some(vec![OffsetFetchRequestTopic {
            name: topic.to_string(),
            partition_indexes: vec![0],
            ..Default::default()
        }]),
        require_stable: true,
        ..Default::default()
    };
    let response = coordinator
        .call(&request, Some(7), Instant::now() + DEADLINE, |r| {
            // UNSTABLE_OFFSET_COMMIT (retried) until the commit marker is in.
            let partition = r.topics.iter().flat_map(|t| &t.partitions).next();
            match partition.map(|p| ErrorCode::from_code(p.error_code)) {
                Some(code) if !code.is_ok() => code,
                _ => ErrorCode::from_code(r.error_code),
            }
        })
        .await
        .unwrap();
    response.topics[0].partitions[0].committed_offset
}

#[tokio::test]
async fn a_failed_record_makes_the_transaction_abortable_and_the_next_one_commits() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = random_topic("txn-too-large");
    Admin::new(c.clone())
        .create_topics(&[NewTopic::new(&topic, 1).config("max.message.bytes", "2000")])
        .await
        .unwrap();
    let mut p = producer(&bootstrap, &random_topic("txn-id")).await;
    let epoch = p.identity().producer_epoch;
    p.begin().await.unwrap();
    send_all(&mut p, &topic, &values("before", 3)).await;
    let big = p
        .send(ProducerRecord::new(&topic, vec![7_u8; 10_000]).partition(0))
        .await
        .unwrap();
    assert_eq!(
        big.await.unwrap_err().code(),
        Some(ErrorCode::MessageTooLarge)
    );
    let err = p.commit().await.unwrap_err();
    assert!(err.is_abortable(), "{err}");
    assert_eq!(p.state(), TransactionState::AbortableError);
    assert!(matches!(
        p.send(ProducerRecord::new(&topic, "no")).await.unwrap_err(),
        Error::InvalidTransactionState { .. }
    ));
    p.abort().await.unwrap();

    // The failed record may have left a sequence gap: the next transaction runs
    // under a bumped epoch.
    p.begin().await.unwrap();
    assert!(p.identity().producer_epoch > epoch);
    let kept = values("after", 3);
    send_all(&mut p, &topic, &kept).await;
    p.commit().await.unwrap();
    assert_eq!(
        read_all(&bootstrap, &topic, 1, "read_committed").await,
        sorted(kept)
    );
    assert_no_hanging_transaction(&bootstrap, &topic, 1).await;
}

#[tokio::test]
async fn admin_lists_describes_and_aborts_an_open_transaction() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "txn-admin", 1).await;
    let id = random_topic("txn-id");
    let mut p = producer(&bootstrap, &id).await;
    p.begin().await.unwrap();
    send_all(&mut p, &topic, &values("stuck", 5)).await;
    let identity = p.identity();

    let admin = TransactionAdmin::new(c.clone());
    let listed = admin.list_transactions(&["Ongoing"], None).await.unwrap();
    let mine = listed.iter().find(|t| t.transactional_id == id).unwrap();
    assert_eq!(mine.producer_id, identity.producer_id);
    assert_eq!(mine.state, "Ongoing");
    let described = admin.describe_transactions(&[&id]).await.unwrap();
    let d = &described[&id];
    assert_eq!(d.state, "Ongoing");
    assert_eq!(d.producer_epoch, identity.producer_epoch);
    assert_eq!(d.partitions, vec![(topic.clone(), 0)]);
    assert!(d.start_time_ms > 0);

    // The open transaction holds the last stable offset at its first record.
    let open = admin.open_transactions(&topic, 0).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].producer_id, identity.producer_id);
    assert_eq!(open[0].current_txn_start_offset, 0);
    admin
        .abort_transaction(&AbortTransactionSpec {
            topic: topic.clone(),
            partition: 0,
            producer_id: open[0].producer_id,
            producer_epoch: open[0].producer_epoch as i16,
            coordinator_epoch: open[0].coordinator_epoch,
        })
        .await
        .unwrap();
    assert!(admin.open_transactions(&topic, 0).await.unwrap().is_empty());
    assert_no_hanging_transaction(&bootstrap, &topic, 1).await;
    assert!(
        read_all(&bootstrap, &topic, 1, "read_committed")
            .await
            .is_empty()
    );

    // The producer's own abort still completes, and it carries on.
    p.abort().await.unwrap();
    p.begin().await.unwrap();
    let kept = values("after-admin-abort", 3);
    send_all(&mut p, &topic, &kept).await;
    p.commit().await.unwrap();
    assert_eq!(
        read_all(&bootstrap, &topic, 1, "read_committed").await,
        sorted(kept)
    );
    assert_no_hanging_transaction(&bootstrap, &topic, 1).await;
}

/// One consume-transform-produce worker: reads `input` in group `group`, writes
/// each value upper-cased to `output`, and commits its offsets in the same
/// transaction. The first and then every `abort_every`-th transaction is aborted on purpose (and the
/// consumer rewound) to show that nothing of it survives.
async fn eos_worker(
    bootstrap: String,
    group: String,
    input: String,
    output: String,
    id: String,
    abort_every: usize,
    stop: Arc<AtomicBool>,
) -> (usize, usize) {
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        ("group.id".to_string(), group),
        ("isolation.level".to_string(), "read_committed".to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("fetch.max.wait.ms".to_string(), "100".to_string()),
        ("heartbeat.interval.ms".to_string(), "100".to_string()),
        ("session.timeout.ms".to_string(), "6000".to_string()),
        ("max.poll.interval.ms".to_string(), "10000".to_string()),
        ("max.poll.records".to_string(), "10".to_string()),
    ]);
    let mut consumer = GroupConsumer::new(ConsumerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    consumer.subscribe([input]);
    let mut producer = producer(&bootstrap, &id).await;
    let (mut transactions, mut aborted) = (0, 0);
    let start = Instant::now();
    while !stop.load(Ordering::Acquire) && start.elapsed() < Duration::from_secs(60) {
        let records = consumer.poll_for(Duration::from_millis(100)).await.unwrap();
        consumer.take_events();
        if records.is_empty() {
            continue;
        }
        transactions += 1;
        producer.begin().await.unwrap();
        for r in &records {
            let value = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            let out = ProducerRecord::new(&output, value.to_uppercase()).partition(r.partition);
            producer.send(out).await.unwrap();
        }
        let positions = consumer.positions();
        let offered = producer
            .send_offsets_to_transaction(&positions, &consumer.group_metadata())
            .await;
        let rebalanced = consumer.rebalance_pending();
        if offered.is_err() || rebalanced || transactions % abort_every == 1 {
            aborted += 1;
            // A rebalance during the transaction (its partitions may move), a fenced
            // offset commit, or the deliberate abort: abort and rewind.
            producer.abort().await.unwrap();
            consumer.seek_to_committed().await.unwrap();
        } else if let Err(e) = producer.commit().await {
            assert!(e.is_abortable(), "{e}");
            aborted += 1;
            producer.abort().await.unwrap();
            consumer.seek_to_committed().await.unwrap();
        }
    }
    producer.close(Duration::from_secs(5)).await.unwrap();
    consumer.close().await.unwrap();
    (transactions, aborted)
}

#[tokio::test]
async fn consume_transform_produce_is_exactly_once_with_group_offsets_in_the_transaction() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let input = create_random_topic(&c, "eos-in", 3).await;
    let output = create_random_topic(&c, "eos-out", 3).await;
    let group = random_topic("eos-group");
    let inputs = values("record", 90);
    {
        let mut p = producer(&bootstrap, &random_topic("txn-id")).await;
        p.begin().await.unwrap();
        send_all(&mut p, &input, &inputs).await;
        p.commit().await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|i| {
            tokio::spawn(eos_worker(
                bootstrap.clone(),
                group.clone(),
                input.clone(),
                output.clone(),
                format!("{group}-worker-{i}"),
                3 + i,
                stop.clone(),
            ))
        })
        .collect();
    let expected: Vec<String> = sorted(inputs.iter().map(|v| v.to_uppercase()).collect());
    let admin = Admin::new(c.clone());
    let start = Instant::now();
    loop {
        let ends = end_offsets(
            &admin,
            &output,
            &[0, 1, 2],
            OffsetSpec::Latest,
            IsolationLevel::ReadCommitted,
        )
        .await
        .unwrap();
        let lso: i64 = ends.values().map(|o| o.offset).sum();
        // Committed data plus one marker per transaction: at least 90 + markers.
        if lso > 90
            && read_all(&bootstrap, &output, 3, "read_committed")
                .await
                .len()
                >= 90
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "workers did not finish"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Release);
    let (mut transactions, mut aborted) = (0, 0);
    for w in workers {
        let (t, a) = w.await.unwrap();
        transactions += t;
        aborted += a;
    }
    eprintln!("{aborted} of {transactions} transactions aborted");
    assert!(
        aborted >= 1 && transactions > aborted,
        "{aborted} of {transactions} transactions aborted"
    );
    // Exactly once: every input once in the committed output, despite the aborts.
    assert_eq!(
        read_all(&bootstrap, &output, 3, "read_committed").await,
        expected
    );
    assert_no_hanging_transaction(&bootstrap, &output, 3).await;
}

#[tokio::test]
async fn offsets_from_a_stale_generation_make_the_transaction_abortable() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let input = create_random_topic(&c, "txn-kip447", 1).await;
    let group = random_topic("txn-group");
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        ("group.id".to_string(), group.clone()),
        ("heartbeat.interval.ms".to_string(), "100".to_string()),
    ]);
    let mut member = GroupConsumer::new(ConsumerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    member.subscribe([input.clone()]);
    let start = Instant::now();
    while member.assignment().is_empty() && start.elapsed() < DEADLINE {
        member.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    let mut stale = member.group_metadata();
    assert!(stale.generation_id >= 1);
    // A zombie of an earlier generation (KIP-447): its offsets are refused.
    stale.generation_id -= 1;
    let mut p = producer(&bootstrap, &random_topic("txn-id")).await;
    p.begin().await.unwrap();
    let offsets = BTreeMap::from([((input.clone(), 0), 1_i64)]);
    let err = p
        .send_offsets_to_transaction(&offsets, &stale)
        .await
        .unwrap_err();
    assert!(err.is_abortable(), "{err}");
    assert_eq!(err.code(), Some(ErrorCode::IllegalGeneration));
    p.abort().await.unwrap();

    // The current generation's offsets are accepted.
    p.begin().await.unwrap();
    p.send_offsets_to_transaction(&offsets, &member.group_metadata())
        .await
        .unwrap();
    p.commit().await.unwrap();
    assert_eq!(committed_offset(&c, &group, &input).await, 1);
    member.close().await.unwrap();
}

#[tokio::test]
async fn a_pool_reuses_its_ids_and_start_up_fences_what_an_earlier_incarnation_left_open() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "txn-pool", 1).await;
    let prefix = random_topic("job");
    let mut pool = TransactionalIdPool::new(&prefix, 0, 2).unwrap();

    // An earlier incarnation crashed with a transaction open on every id of its pool.
    for id in pool.ids() {
        let mut p = producer(&bootstrap, &id).await;
        p.begin().await.unwrap();
        send_all(&mut p, &topic, &values(&id, 3)).await;
        drop(p);
    }
    // Another job whose prefix only starts like ours has one open too.
    let other_id = format!("{prefix}0-0-0");
    let mut other = producer(&bootstrap, &other_id).await;
    other.begin().await.unwrap();
    let other_values = values("other", 3);
    send_all(&mut other, &topic, &other_values).await;

    let admin = Admin::new(c.clone());
    let lso = |level| {
        let admin = &admin;
        let topic = &topic;
        async move {
            end_offsets(admin, topic, &[0], OffsetSpec::Latest, level)
                .await
                .unwrap()[&0]
                .offset
        }
    };
    assert!(lso(IsolationLevel::ReadCommitted).await < lso(IsolationLevel::ReadUncommitted).await);

    // Start-up: fence and abort everything of this job's prefix, and nothing else.
    let mut fenced = abort_lingering(&c, &producer_config(&bootstrap, "unused", &[]), &prefix)
        .await
        .unwrap();
    fenced.sort();
    assert_eq!(fenced, pool.ids());
    other.commit().await.unwrap();
    assert_no_hanging_transaction(&bootstrap, &topic, 1).await;

    // Four transactions over two ids: each id is reused, least recently released first.
    let mut used = Vec::new();
    let mut expected = other_values.clone();
    for round in 0..4 {
        let id = pool.acquire().unwrap();
        let mut p = producer(&bootstrap, &id).await;
        p.begin().await.unwrap();
        let batch = values(&format!("round{round}"), 2);
        send_all(&mut p, &topic, &batch).await;
        p.commit().await.unwrap();
        pool.release(&id).unwrap();
        expected.extend(batch);
        used.push(id);
    }
    assert_eq!(used, [pool.id(0), pool.id(1), pool.id(0), pool.id(1)]);
    assert_eq!(
        read_all(&bootstrap, &topic, 1, "read_committed").await,
        sorted(expected)
    );
}
