//! `TransactSession` against the real broker: records and a consumer group's
//! offsets committed together (with the session in another task than the
//! consumer, through a `GroupHandle`), an abort on purpose, an empty transaction,
//! fencing by a newer producer with the same `transactional.id`, and the two
//! membership policies while the group prepares a rebalance.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration_tests::proxy::KafkaProxy;
use integration_tests::{create_random_topic, random_topic, require_broker};
use kafka_wire::client::admin::OffsetSpec;
use kafka_wire::client::config::{ClientConfig, ConsumerConfig, IsolationLevel, ProducerConfig};
use kafka_wire::client::consumer::{Consumer, ConsumerRecord};
use kafka_wire::client::group::GroupConsumer;
use kafka_wire::client::group::assignor::TopicPartition;
use kafka_wire::client::transaction::{
    AbortReason, EndOutcome, EndPolicy, TransactSession, TransactionState, TransactionalProducer,
};
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};
use kafka_wire::protocol::ApiKey;
use kafka_wire::{Error, ErrorCode};

/// Upper bound for any wait on the broker in these tests.
const DEADLINE: Duration = Duration::from_secs(30);

async fn client(bootstrap: &str) -> Client {
    Client::connect(ClientConfig::new(bootstrap).unwrap())
        .await
        .unwrap()
}

async fn producer(bootstrap: &str, id: &str) -> TransactionalProducer {
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("transactional.id".to_string(), id.to_string()),
        ("linger.ms".to_string(), "1".to_string()),
        ("max.block.ms".to_string(), "15000".to_string()),
        ("request.timeout.ms".to_string(), "10000".to_string()),
        ("delivery.timeout.ms".to_string(), "12000".to_string()),
    ]);
    TransactionalProducer::new(ProducerConfig::from_properties(&props).unwrap())
        .await
        .unwrap()
}

fn consumer_config(bootstrap: &str, group: &str) -> ConsumerConfig {
    consumer_config_with(bootstrap, group, &[])
}

fn consumer_config_with(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> ConsumerConfig {
    let mut props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("group.id".to_string(), group.to_string()),
        ("isolation.level".to_string(), "read_committed".to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("fetch.max.wait.ms".to_string(), "100".to_string()),
        ("heartbeat.interval.ms".to_string(), "100".to_string()),
        ("session.timeout.ms".to_string(), "6000".to_string()),
        ("max.poll.interval.ms".to_string(), "20000".to_string()),
    ]);
    props.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ConsumerConfig::from_properties(&props).unwrap()
}

/// Writes `n` values `{prefix}-{i}` to partition 0 of `topic` (not transactional).
async fn fill(bootstrap: &str, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    let producer = Producer::with_client(
        client(bootstrap).await,
        ProducerConfig::new(bootstrap).unwrap(),
    )
    .await
    .unwrap();
    let values: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let mut pending = Vec::new();
    for v in &values {
        pending.push(
            producer
                .send(ProducerRecord::new(topic, v.clone()).partition(0))
                .await
                .unwrap(),
        );
    }
    for d in pending {
        d.await.unwrap();
    }
    values
}

/// A member of `group` subscribed to `topic`, polled until it holds `n` records.
async fn member_with_records(
    bootstrap: &str,
    group: &str,
    topic: &str,
    n: usize,
) -> (GroupConsumer, Vec<ConsumerRecord>) {
    let mut consumer = GroupConsumer::new(consumer_config(bootstrap, group))
        .await
        .unwrap();
    consumer.subscribe([topic.to_string()]);
    let mut records = Vec::new();
    let start = Instant::now();
    while records.len() < n {
        assert!(
            start.elapsed() < DEADLINE,
            "got {} of {n} records",
            records.len()
        );
        records.extend(consumer.poll_for(Duration::from_millis(200)).await.unwrap());
    }
    (consumer, records)
}

fn upper(records: &[ConsumerRecord], output: &str) -> Vec<ProducerRecord> {
    records
        .iter()
        .map(|r| {
            let value = String::from_utf8_lossy(r.value.as_deref().unwrap()).to_uppercase();
            ProducerRecord::new(output, value).partition(0)
        })
        .collect()
}

/// Everything in partition 0 of `topic` up to its end at `isolation`, and that end.
async fn read_partition(
    bootstrap: &str,
    topic: &str,
    isolation: IsolationLevel,
) -> (Vec<String>, i64) {
    let admin = Admin::new(client(bootstrap).await);
    let end = loop {
        match admin
            .list_offsets(topic, &[0], OffsetSpec::Latest, isolation)
            .await
        {
            Ok(ends) => break ends[&0].offset,
            Err(e) if e.is_retriable() => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("list_offsets: {e}"),
        }
    };
    let level = match isolation {
        IsolationLevel::ReadCommitted => "read_committed",
        _ => "read_uncommitted",
    };
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("isolation.level".to_string(), level.to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("fetch.max.wait.ms".to_string(), "100".to_string()),
    ]);
    let mut consumer = Consumer::new(ConsumerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    consumer.assign([(topic.to_string(), 0)]);
    let mut out = Vec::new();
    let start = Instant::now();
    while consumer
        .partition_offsets(topic, 0)
        .and_then(|o| o.position)
        .is_none_or(|position| position < end)
    {
        assert!(
            start.elapsed() < DEADLINE,
            "did not reach offset {end} of {topic}"
        );
        for r in consumer.poll_for(Duration::from_millis(200)).await.unwrap() {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    consumer.close().await;
    (out, end)
}

/// The last stable offset equals the high watermark: no transaction left open.
async fn assert_no_open_transaction(bootstrap: &str, topic: &str) {
    let admin = Admin::new(client(bootstrap).await);
    let start = Instant::now();
    loop {
        let stable = admin
            .list_offsets(
                topic,
                &[0],
                OffsetSpec::Latest,
                IsolationLevel::ReadCommitted,
            )
            .await
            .unwrap()[&0]
            .offset;
        let high = admin
            .list_offsets(
                topic,
                &[0],
                OffsetSpec::Latest,
                IsolationLevel::ReadUncommitted,
            )
            .await
            .unwrap()[&0]
            .offset;
        if stable == high {
            return;
        }
        // Markers are written after EndTxn answers; give them a moment.
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{topic}: last stable offset {stable}, high watermark {high}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An input topic of two partitions with 7 records in partition 0, an output
/// topic and a group name, all named after `name`.
async fn two_partitions_of_seven(bootstrap: &str, name: &str) -> (String, String, String) {
    let c = client(bootstrap).await;
    let input = create_random_topic(&c, &format!("{name}-in"), 2).await;
    let output = create_random_topic(&c, &format!("{name}-out"), 1).await;
    fill(bootstrap, &input, "v", 7).await;
    (input, output, random_topic(&format!("{name}-group")))
}

/// Polls `a` until it holds both input partitions in a settled group.
async fn poll_until_both_partitions(a: &mut GroupConsumer) {
    let start = Instant::now();
    while a.assignment().len() != 2 || a.rebalance_pending() {
        assert!(start.elapsed() < DEADLINE, "a never got both partitions");
        a.poll_for(Duration::from_millis(100)).await.unwrap();
    }
}

/// Polls `a` until it holds both input partitions in a settled group, then
/// opens a session on its handle with one record, "kept", in `output`.
async fn holding_both_partitions(
    bootstrap: &str,
    a: &mut GroupConsumer,
    output: &str,
) -> TransactSession {
    poll_until_both_partitions(a).await;
    let mut session = TransactSession::new(
        producer(bootstrap, &random_topic("session-txn")).await,
        Some(a.handle()),
    );
    session.begin().await.unwrap();
    session
        .send(ProducerRecord::new(output, "kept").partition(0))
        .await
        .unwrap();
    session
}

/// A second member (b) of `config`'s group, joining in its own task until it
/// holds a partition of `topic`: its JoinGroup waits until the others join again.
fn join_until_assigned(
    config: ConsumerConfig,
    topic: &str,
) -> tokio::task::JoinHandle<GroupConsumer> {
    let topic = topic.to_string();
    tokio::spawn(async move {
        let mut b = GroupConsumer::new(config).await.unwrap();
        b.subscribe([topic]);
        let start = Instant::now();
        while b.assignment().is_empty() {
            assert!(start.elapsed() < DEADLINE, "b never got a partition");
            b.poll_for(Duration::from_millis(100)).await.unwrap();
        }
        b
    })
}

/// Ends `session` (CommitWhileMember) with offsets 7 and 0 for partitions 0
/// and 1 of `input`, asserts it committed, and returns those offsets.
async fn commit_both_partitions(
    session: &mut TransactSession,
    input: &str,
) -> BTreeMap<TopicPartition, i64> {
    let offsets = BTreeMap::from([
        ((input.to_string(), 0), 7_i64),
        ((input.to_string(), 1), 0_i64),
    ]);
    let outcome = session
        .end(&offsets, EndPolicy::CommitWhileMember)
        .await
        .unwrap();
    assert!(matches!(outcome, EndOutcome::Committed), "{outcome:?}");
    offsets
}

const COOPERATIVE: [(&str, &str); 1] = [("partition.assignment.strategy", "cooperative-sticky")];

/// A cooperative member of `group` subscribed to `input`, talking to the
/// broker through `proxy`.
async fn cooperative_member_through(proxy: &KafkaProxy, group: &str, input: &str) -> GroupConsumer {
    let mut a = GroupConsumer::new(consumer_config_with(proxy.bootstrap(), group, &COOPERATIVE))
        .await
        .unwrap();
    a.subscribe([input.to_string()]);
    a
}

/// Starts a second member (b) of `group` while `proxy` holds JoinGroup answers
/// for 2 s, and returns once `a` heard of the rebalance and joins in the
/// background: b is waiting in its JoinGroup, so a's completes the group's next
/// generation at once, and a does not know it yet.
async fn join_held_back(
    bootstrap: &str,
    proxy: &KafkaProxy,
    a: &mut GroupConsumer,
    group: &str,
    input: &str,
) -> tokio::task::JoinHandle<GroupConsumer> {
    let generation = a.generation();
    proxy.hold_responses(ApiKey::JoinGroup, Duration::from_secs(2));
    let b = join_until_assigned(consumer_config_with(bootstrap, group, &COOPERATIVE), input);
    wait_for_rebalance(a).await;
    a.poll_for(Duration::from_millis(10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.generation(), generation, "the answer is held back");
    b
}

/// Lets the held-back rebalance complete (a keeps one partition, b gets the
/// other), checks that the group's committed offsets are `offsets`, and returns b.
async fn rebalance_completes_with(
    a: &mut GroupConsumer,
    b: tokio::task::JoinHandle<GroupConsumer>,
    input: &str,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> GroupConsumer {
    let start = Instant::now();
    while a.assignment().len() != 1 || a.rebalance_pending() {
        assert!(start.elapsed() < DEADLINE, "the rebalance never completed");
        a.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    let b = b.await.unwrap();
    let all = [input_partition(input), (input.to_string(), 1)];
    assert_eq!(&b.committed(&all).await.unwrap(), offsets);
    b
}

/// Waits until `a`'s heartbeat has heard of a rebalance.
async fn wait_for_rebalance(a: &GroupConsumer) {
    let start = Instant::now();
    while !a.rebalance_pending() {
        assert!(start.elapsed() < DEADLINE, "a never heard of the rebalance");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn input_partition(topic: &str) -> TopicPartition {
    (topic.to_string(), 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_another_task_commits_records_and_the_groups_offsets_together() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let input = create_random_topic(&c, "session-in", 1).await;
    let output = create_random_topic(&c, "session-out", 1).await;
    let group = random_topic("session-group");
    let values = fill(&bootstrap, &input, "v", 20).await;
    let (consumer, records) = member_with_records(&bootstrap, &group, &input, 20).await;
    let handle = consumer.handle();
    assert_eq!(handle.group_id(), group);
    assert!(handle.generation() >= 1);
    assert_eq!(handle.group_metadata(), consumer.group_metadata());

    // The producer lives in its own task and knows the member only by its handle.
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<(Vec<ProducerRecord>, BTreeMap<TopicPartition, i64>)>(1);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(1);
    let mut session = TransactSession::new(
        producer(&bootstrap, &random_topic("session-txn")).await,
        Some(handle.clone()),
    );
    let producer_task = tokio::spawn(async move {
        while let Some((batch, offsets)) = rx.recv().await {
            session.begin().await.unwrap();
            for record in batch {
                session.send(record).await.unwrap();
            }
            let outcome = session
                .end(&offsets, EndPolicy::CommitWhileMember)
                .await
                .unwrap();
            done_tx.send(outcome).await.unwrap();
        }
        session.close(Duration::from_secs(5)).await.unwrap();
    });
    tx.send((upper(&records, &output), consumer.positions()))
        .await
        .unwrap();
    let outcome = done_rx.recv().await.unwrap();
    assert!(matches!(outcome, EndOutcome::Committed), "{outcome:?}");
    drop(tx);
    producer_task.await.unwrap();

    let (seen, _) = read_partition(&bootstrap, &output, IsolationLevel::ReadCommitted).await;
    let expected: Vec<String> = values.iter().map(|v| v.to_uppercase()).collect();
    assert_eq!(seen, expected);
    let tp = input_partition(&input);
    let committed = handle.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(committed.get(&tp), Some(&20));
    assert_eq!(
        consumer
            .committed(std::slice::from_ref(&tp))
            .await
            .unwrap()
            .get(&tp),
        Some(&20)
    );
    assert_no_open_transaction(&bootstrap, &output).await;
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn the_abort_policy_leaves_nothing_visible_and_the_offsets_unchanged() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let input = create_random_topic(&c, "session-abort-in", 1).await;
    let output = create_random_topic(&c, "session-abort-out", 1).await;
    let group = random_topic("session-abort-group");
    fill(&bootstrap, &input, "v", 10).await;
    let (mut consumer, records) = member_with_records(&bootstrap, &group, &input, 10).await;
    let mut session = TransactSession::new(
        producer(&bootstrap, &random_topic("session-txn")).await,
        Some(consumer.handle()),
    );
    for record in upper(&records, &output) {
        session.send(record).await.unwrap();
    }
    let positions = consumer.positions();
    assert_eq!(positions.get(&input_partition(&input)), Some(&10));
    let outcome = session.end(&positions, EndPolicy::Abort).await.unwrap();
    assert!(
        matches!(
            outcome,
            EndOutcome::Aborted {
                reason: AbortReason::Requested
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(session.state(), TransactionState::Ready);

    let (seen, _) = read_partition(&bootstrap, &output, IsolationLevel::ReadCommitted).await;
    assert!(seen.is_empty(), "aborted records visible: {seen:?}");
    let (written, high) =
        read_partition(&bootstrap, &output, IsolationLevel::ReadUncommitted).await;
    assert_eq!(written.len(), 10, "the records were written, then aborted");
    assert!(high > 10, "an abort marker follows them");
    let tp = input_partition(&input);
    assert_eq!(
        consumer
            .committed(std::slice::from_ref(&tp))
            .await
            .unwrap()
            .get(&tp),
        None
    );
    // As after any abort, the consumer goes back to the committed offsets (none:
    // auto.offset.reset) and hands the same records out again.
    consumer.seek_to_committed().await.unwrap();
    let start = Instant::now();
    let again = loop {
        let records = consumer.poll_for(Duration::from_millis(200)).await.unwrap();
        if !records.is_empty() {
            break records;
        }
        assert!(start.elapsed() < DEADLINE, "nothing consumed again");
    };
    assert_eq!(again[0].offset, 0);
    assert_no_open_transaction(&bootstrap, &output).await;
    session.close(Duration::from_secs(5)).await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn an_empty_transaction_commits_with_or_without_a_group() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let input = create_random_topic(&c, "session-empty-in", 1).await;
    let group = random_topic("session-empty-group");
    fill(&bootstrap, &input, "v", 1).await;
    let (consumer, _) = member_with_records(&bootstrap, &group, &input, 1).await;

    let mut alone = TransactSession::new(
        producer(&bootstrap, &random_topic("session-txn")).await,
        None,
    );
    alone.begin().await.unwrap();
    let outcome = alone
        .end(&BTreeMap::new(), EndPolicy::AbortOnRebalance)
        .await
        .unwrap();
    assert!(matches!(outcome, EndOutcome::Committed), "{outcome:?}");
    // end() without begin() opens and commits an empty one too.
    let outcome = alone
        .end(&BTreeMap::new(), EndPolicy::CommitWhileMember)
        .await
        .unwrap();
    assert!(matches!(outcome, EndOutcome::Committed), "{outcome:?}");

    let mut member = TransactSession::new(
        producer(&bootstrap, &random_topic("session-txn")).await,
        Some(consumer.handle()),
    );
    for policy in [EndPolicy::AbortOnRebalance, EndPolicy::CommitWhileMember] {
        member.begin().await.unwrap();
        let outcome = member.end(&BTreeMap::new(), policy).await.unwrap();
        assert!(
            matches!(outcome, EndOutcome::Committed),
            "{policy:?}: {outcome:?}"
        );
    }
    // The session goes on with a real transaction afterwards.
    let outcome = member
        .end(&consumer.positions(), EndPolicy::AbortOnRebalance)
        .await
        .unwrap();
    assert!(matches!(outcome, EndOutcome::Committed), "{outcome:?}");
    let tp = input_partition(&input);
    assert_eq!(
        consumer
            .committed(std::slice::from_ref(&tp))
            .await
            .unwrap()
            .get(&tp),
        Some(&1)
    );
    alone.close(Duration::from_secs(5)).await.unwrap();
    member.close(Duration::from_secs(5)).await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn a_newer_producer_with_the_same_transactional_id_makes_end_fail_fatally() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let input = create_random_topic(&c, "session-fence-in", 1).await;
    let output = create_random_topic(&c, "session-fence-out", 1).await;
    let group = random_topic("session-fence-group");
    fill(&bootstrap, &input, "v", 5).await;
    let (consumer, records) = member_with_records(&bootstrap, &group, &input, 5).await;
    let id = random_topic("session-txn");
    let mut zombie = TransactSession::new(producer(&bootstrap, &id).await, Some(consumer.handle()));
    for record in upper(&records, &output) {
        zombie.send(record).await.unwrap();
    }
    // The successor's InitProducerId fences the zombie and aborts its transaction.
    let successor = producer(&bootstrap, &id).await;
    let e = zombie
        .end(&consumer.positions(), EndPolicy::AbortOnRebalance)
        .await
        .unwrap_err();
    assert!(e.is_fatal(), "{e}");
    assert!(matches!(e, Error::Fenced { .. }), "{e}");
    assert_eq!(zombie.state(), TransactionState::FatalError);

    let (seen, _) = read_partition(&bootstrap, &output, IsolationLevel::ReadCommitted).await;
    assert!(
        seen.is_empty(),
        "a fenced transaction's records are visible: {seen:?}"
    );
    let tp = input_partition(&input);
    assert_eq!(
        consumer
            .committed(std::slice::from_ref(&tp))
            .await
            .unwrap()
            .get(&tp),
        None
    );
    assert_no_open_transaction(&bootstrap, &output).await;
    successor.close(Duration::from_secs(5)).await.unwrap();
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_a_rebalance_is_pending_commit_while_member_commits_and_abort_on_rebalance_aborts() {
    let bootstrap = require_broker!();
    let (input, output, group) = two_partitions_of_seven(&bootstrap, "session-rebalance").await;
    let (mut a, _) = member_with_records(&bootstrap, &group, &input, 0).await;
    let mut session = holding_both_partitions(&bootstrap, &mut a, &output).await;
    let generation = a.generation();

    // b joins; its JoinGroup waits until a joins again, which a does only when it
    // polls: until then a's generation is still the group's.
    let b = join_until_assigned(consumer_config(&bootstrap, &group), &input);
    wait_for_rebalance(&a).await;
    let offsets = commit_both_partitions(&mut session, &input).await;
    assert_eq!(a.generation(), generation, "still the same generation");

    session
        .send(ProducerRecord::new(&output, "dropped").partition(0))
        .await
        .unwrap();
    let outcome = session
        .end(&offsets, EndPolicy::AbortOnRebalance)
        .await
        .unwrap();
    let EndOutcome::Aborted {
        reason: AbortReason::Membership(e),
    } = &outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(e.code(), Some(ErrorCode::RebalanceInProgress), "{e}");

    // a joins again; the rebalance completes and b starts from what a committed.
    let start = Instant::now();
    while a.assignment().len() != 1 || a.rebalance_pending() {
        assert!(start.elapsed() < DEADLINE, "the rebalance never completed");
        a.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    let mut b = b.await.unwrap();
    assert!(a.generation() > generation);
    let all = [input_partition(&input), (input.clone(), 1)];
    let committed = b.committed(&all).await.unwrap();
    assert_eq!(committed, offsets);
    let (seen, _) = read_partition(&bootstrap, &output, IsolationLevel::ReadCommitted).await;
    assert_eq!(seen, vec!["kept".to_string()]);
    session.close(Duration::from_secs(5)).await.unwrap();
    b.poll_for(Duration::from_millis(10)).await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// The coordinator moves a classic group to its next generation when the last
/// member has joined, before this member has read the answer to its own
/// JoinGroup (held back here by the proxy). Offsets sent in between come back
/// ILLEGAL_GENERATION; a cooperative member that keeps its partitions sends them
/// again under the new generation once its join has it, and the transaction
/// commits. (Seen once in CI as a rolled-back checkpoint while a second process
/// joined a pipeline.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_refused_while_the_members_join_completes_go_again_under_the_new_generation() {
    let bootstrap = require_broker!();
    let (input, output, group) = two_partitions_of_seven(&bootstrap, "session-join-race").await;
    let proxy = KafkaProxy::start(&bootstrap).await.unwrap();
    let mut a = cooperative_member_through(&proxy, &group, &input).await;
    let mut session = holding_both_partitions(&bootstrap, &mut a, &output).await;
    let generation = a.generation();
    let b = join_held_back(&bootstrap, &proxy, &mut a, &group, &input).await;

    let offsets = commit_both_partitions(&mut session, &input).await;
    assert!(
        a.generation() > generation,
        "committed under the new generation"
    );
    proxy.heal();
    let mut b = rebalance_completes_with(&mut a, b, &input, &offsets).await;
    let (seen, _) = read_partition(&bootstrap, &output, IsolationLevel::ReadCommitted).await;
    assert_eq!(seen, vec!["kept".to_string()]);
    session.close(Duration::from_secs(5)).await.unwrap();
    b.poll_for(Duration::from_millis(10)).await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// The same race outside a transaction (at-least-once): a plain OffsetCommit
/// sent while the member's JoinGroup answer is on its way is refused; sent
/// through a rebalance it goes again once the member's join has its new
/// generation, and the offsets of the partitions it held throughout commit
/// (the one it keeps always; the one it gives up only while it still holds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_offsets_refused_while_the_members_join_completes_go_again_after_it() {
    let bootstrap = require_broker!();
    let (input, _, group) = two_partitions_of_seven(&bootstrap, "commit-join-race").await;
    let proxy = KafkaProxy::start(&bootstrap).await.unwrap();
    let mut a = cooperative_member_through(&proxy, &group, &input).await;
    poll_until_both_partitions(&mut a).await;
    let generation = a.generation();
    let b = join_held_back(&bootstrap, &proxy, &mut a, &group, &input).await;

    let offsets = BTreeMap::from([
        ((input.to_string(), 0), 7_i64),
        ((input.to_string(), 1), 0_i64),
    ]);
    let refused = a.handle().commit_offsets(&offsets).await.unwrap_err();
    assert!(
        matches!(
            refused.code(),
            Some(ErrorCode::IllegalGeneration | ErrorCode::RebalanceInProgress)
        ),
        "{refused}"
    );
    let handle = a.handle();
    let sent = offsets.clone();
    let commit = tokio::spawn(async move {
        handle
            .commit_offsets_through_rebalance(&sent, Duration::from_secs(10))
            .await
    });
    // The member keeps polling, as a job's fetch task does.
    let start = Instant::now();
    while !commit.is_finished() {
        assert!(start.elapsed() < DEADLINE, "the commit never returned");
        a.poll_for(Duration::from_millis(50)).await.unwrap();
    }
    let committed = commit.await.unwrap().unwrap();
    // Partition 0 stays with a. Partition 1 is revoked by the new generation and
    // held through it: its offset commits if the retry lands before a's
    // follow-up join gives it to b, and is dropped (not sent) after that.
    assert_eq!(
        committed.get(&input_partition(&input)),
        Some(&7),
        "{committed:?}"
    );
    assert!(
        committed.iter().all(|(tp, o)| offsets.get(tp) == Some(o)),
        "{committed:?}"
    );
    assert!(
        a.generation() > generation,
        "committed under the new generation"
    );
    proxy.heal();
    let mut b = rebalance_completes_with(&mut a, b, &input, &committed).await;
    b.poll_for(Duration::from_millis(10)).await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// KIP-848: a member's epoch moves on when it only gains partitions (another
/// member left). A transaction begun under the old epoch still commits offsets of
/// partitions the member owned throughout (under the current epoch, the only one
/// the coordinator takes); offsets of a partition gained since it began abort it.
#[tokio::test]
async fn under_the_consumer_protocol_an_epoch_moved_on_by_gains_alone_keeps_the_transaction() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let input = create_random_topic(&c, "session-848-in", 2).await;
    let output = create_random_topic(&c, "session-848-out", 1).await;
    let group = random_topic("session-848-group");
    let config = || {
        ConsumerConfig::from_properties(&BTreeMap::from([
            ("bootstrap.servers".to_string(), bootstrap.clone()),
            ("group.id".to_string(), group.clone()),
            ("group.protocol".to_string(), "consumer".to_string()),
            ("isolation.level".to_string(), "read_committed".to_string()),
            ("auto.offset.reset".to_string(), "earliest".to_string()),
            ("fetch.max.wait.ms".to_string(), "100".to_string()),
            ("max.poll.interval.ms".to_string(), "20000".to_string()),
        ]))
        .unwrap()
    };
    let mut a = GroupConsumer::new(config()).await.unwrap();
    a.subscribe([input.clone()]);
    let mut b = GroupConsumer::new(config()).await.unwrap();
    b.subscribe([input.clone()]);
    let start = Instant::now();
    while a.assignment().len() != 1
        || b.assignment().len() != 1
        || a.rebalance_pending()
        || b.rebalance_pending()
    {
        assert!(start.elapsed() < DEADLINE, "the two members never settled");
        a.poll_for(Duration::from_millis(50)).await.unwrap();
        b.poll_for(Duration::from_millis(50)).await.unwrap();
    }
    let kept = a.assignment()[0].clone();
    let gained = b.assignment()[0].clone();
    let epoch = a.generation();
    let mut owned_throughout = TransactSession::new(
        producer(&bootstrap, &random_topic("session-848-txn")).await,
        Some(a.handle()),
    );
    owned_throughout.begin().await.unwrap();
    owned_throughout
        .send(ProducerRecord::new(&output, "kept").partition(0))
        .await
        .unwrap();
    let mut with_gained = TransactSession::new(
        producer(&bootstrap, &random_topic("session-848-txn")).await,
        Some(a.handle()),
    );
    with_gained.begin().await.unwrap();
    with_gained
        .send(ProducerRecord::new(&output, "dropped").partition(0))
        .await
        .unwrap();

    b.close_and_leave().await.unwrap();
    let start = Instant::now();
    while a.assignment().len() != 2 || a.rebalance_pending() {
        assert!(
            start.elapsed() < DEADLINE,
            "a never took over the second partition"
        );
        a.poll_for(Duration::from_millis(50)).await.unwrap();
    }
    assert!(a.generation() > epoch, "{} -> {}", epoch, a.generation());

    let offsets = BTreeMap::from([(kept.clone(), 0_i64)]);
    let outcome = owned_throughout
        .end(&offsets, EndPolicy::CommitWhileMember)
        .await
        .unwrap();
    assert!(matches!(outcome, EndOutcome::Committed), "{outcome:?}");
    let outcome = with_gained
        .end(
            &BTreeMap::from([(kept.clone(), 0_i64), (gained.clone(), 0_i64)]),
            EndPolicy::CommitWhileMember,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, EndOutcome::Aborted { .. }), "{outcome:?}");
    assert_eq!(a.committed(&[kept.clone(), gained]).await.unwrap(), offsets);
    let (seen, _) = read_partition(&bootstrap, &output, IsolationLevel::ReadCommitted).await;
    assert_eq!(seen, vec!["kept".to_string()]);
    owned_throughout
        .close(Duration::from_secs(5))
        .await
        .unwrap();
    with_gained.close(Duration::from_secs(5)).await.unwrap();
    a.close().await.unwrap();
}
