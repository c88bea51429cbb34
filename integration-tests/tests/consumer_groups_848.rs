//! Consumer groups with the KIP-848 consumer protocol (`group.protocol=consumer`)
//! against the real broker: incremental rebalances as members leave and join,
//! committed offsets, offsets committed in a transaction under the member epoch,
//! and fencing of stale members.
//!
//! The broker sets the heartbeat interval (`group.consumer.heartbeat.interval.ms`,
//! 5 s by default) and the session timeout, so a rebalance takes a few seconds:
//! waits are bounded by [`DEADLINE`], never by sleeps.
#![allow(clippy::unwrap_used)]

mod group_members;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use group_members::*;
use integration_tests::{create_random_topic, random_topic, require_broker};
use kafka_wire::client::admin::OffsetSpec;
use kafka_wire::client::cluster::Lane;
use kafka_wire::client::config::{ConsumerConfig, IsolationLevel, ProducerConfig};
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::group::{GroupConsumer, RebalanceEvent};
use kafka_wire::client::transaction::TransactionalProducer;
use kafka_wire::client::transaction::coordinator::{Coordinator, CoordinatorType};
use kafka_wire::client::{Admin, Producer, ProducerRecord};
use kafka_wire::protocol::messages::ConsumerGroupHeartbeatRequest;
use kafka_wire::{Error, ErrorCode};

/// Upper bound for any wait on the broker in these tests (a rebalance needs a
/// few broker-paced heartbeats of 5 s each).
const DEADLINE: Duration = Duration::from_secs(60);

/// The members' shared reports, with this file's bounds (a member runs at most
/// 240 s).
fn new_shared() -> Arc<Shared> {
    Shared::new(DEADLINE, Duration::from_secs(240))
}

fn config(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> ConsumerConfig {
    let mut props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("group.id".to_string(), group.to_string()),
        ("group.protocol".to_string(), "consumer".to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("fetch.max.wait.ms".to_string(), "100".to_string()),
        ("max.poll.interval.ms".to_string(), "30000".to_string()),
    ]);
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    ConsumerConfig::from_properties(&props).unwrap()
}

/// Produces `values` to partitions 0, 1, .., `partitions - 1` in turn.
async fn produce(bootstrap: &str, topic: &str, values: &[String], partitions: i32) {
    let producer = Producer::new(ProducerConfig::new(bootstrap).unwrap())
        .await
        .unwrap();
    let mut futures = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let record = ProducerRecord::new(topic, v.clone()).partition(i as i32 % partitions);
        futures.push(producer.send(record).await.unwrap());
    }
    for f in futures {
        f.await.unwrap();
    }
}

#[tokio::test]
async fn the_broker_offers_the_consumer_group_heartbeat() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let conn = c.any_connection(Lane::Control).await.unwrap();
    let version = conn
        .version_for::<ConsumerGroupHeartbeatRequest>()
        .expect("Kafka 4.x offers ConsumerGroupHeartbeat");
    assert!(version >= 0);
}

#[tokio::test]
async fn partitions_move_incrementally_with_one_owner_through_a_leave_and_a_join_and_offsets_resume()
 {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "g848", 6).await;
    let group = random_topic("g848-id");
    let first = values("a", 60);
    produce(&bootstrap, &topic, &first, 6).await;

    let shared = new_shared();
    let cfg = || config(&bootstrap, &group, &[]);
    let m1 = start_member("m1", cfg(), &topic, shared.clone());
    let m2 = start_member("m2", cfg(), &topic, shared.clone());
    let m3 = start_member("m3", cfg(), &topic, shared.clone());
    let e1 = wait_balanced(&shared, &["m1", "m2", "m3"], &topic, 6, 0).await;
    wait_consumed(&shared, &first.iter().cloned().collect()).await;
    let (a1, a3) = (owned(&shared, "m1"), owned(&shared, "m3"));

    // m2 leaves: m1 and m3 keep theirs and take over m2's.
    let m2_events = m2.stop().await;
    assert!(
        matches!(m2_events.first(), Some(RebalanceEvent::Assigned(_))),
        "{m2_events:?}"
    );
    let e2 = wait_balanced(&shared, &["m1", "m3"], &topic, 6, e1).await;
    let (b1, b3) = (owned(&shared, "m1"), owned(&shared, "m3"));
    assert!(
        b1.is_superset(&a1) && b3.is_superset(&a3),
        "{a1:?} {b1:?} {a3:?} {b3:?}"
    );

    // m4 joins: m1 and m3 give some up and keep the rest.
    let second = values("b", 60);
    produce(&bootstrap, &topic, &second, 6).await;
    let m4 = start_member("m4", cfg(), &topic, shared.clone());
    wait_balanced(&shared, &["m1", "m3", "m4"], &topic, 6, e2).await;
    let (c1, c3, c4) = (
        owned(&shared, "m1"),
        owned(&shared, "m3"),
        owned(&shared, "m4"),
    );
    assert!(
        c1.is_subset(&b1) && c3.is_subset(&b3),
        "{b1:?} {c1:?} {b3:?} {c3:?}"
    );
    assert!(!c4.is_empty());
    wait_consumed(&shared, &second.iter().cloned().collect()).await;

    let mut events = Vec::new();
    for m in [m1, m3, m4] {
        events.extend(m.stop().await);
    }
    // The join revoked partitions in order; nothing was lost.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RebalanceEvent::Revoked(p) if !p.is_empty()))
    );
    assert!(!events.iter().any(|e| matches!(e, RebalanceEvent::Lost(_))));

    // Every record was consumed; the committed offsets are the end offsets.
    let consumed: BTreeSet<String> = shared.consumed.lock().unwrap().iter().cloned().collect();
    let all: BTreeSet<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(consumed, all);
    let mut checker = GroupConsumer::new(cfg()).await.unwrap();
    assert_eq!(
        committed_offsets(&checker, &topic, 6).await,
        end_offsets(&c, &topic, 6).await
    );

    // A new member resumes at the committed offsets: it sees only new records.
    checker.subscribe([topic.clone()]);
    let third = values("c", 12);
    produce(&bootstrap, &topic, &third, 6).await;
    let mut seen = BTreeSet::new();
    let start = Instant::now();
    while seen.len() < third.len() && start.elapsed() < DEADLINE {
        for r in checker.poll_for(Duration::from_millis(200)).await.unwrap() {
            seen.insert(text(&r));
        }
    }
    assert_eq!(seen, third.iter().cloned().collect());
    assert_eq!(checker.assignment().len(), 6);
    assert!(checker.generation() > 0);
    checker.close().await.unwrap();
}

fn txn_producer_config(bootstrap: &str, id: &str) -> ProducerConfig {
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("transactional.id".to_string(), id.to_string()),
        ("linger.ms".to_string(), "1".to_string()),
        ("request.timeout.ms".to_string(), "10000".to_string()),
        ("delivery.timeout.ms".to_string(), "12000".to_string()),
    ]);
    ProducerConfig::from_properties(&props).unwrap()
}

/// Reads `topic` (read_committed) up to its last stable offset.
async fn read_committed(bootstrap: &str, topic: &str, partitions: i32) -> Vec<String> {
    let c = client(bootstrap).await;
    let all: Vec<i32> = (0..partitions).collect();
    let ends = Admin::new(c.clone())
        .list_offsets(
            topic,
            &all,
            OffsetSpec::Latest,
            IsolationLevel::ReadCommitted,
        )
        .await
        .unwrap();
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("isolation.level".to_string(), "read_committed".to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
        ("fetch.max.wait.ms".to_string(), "100".to_string()),
    ]);
    let mut consumer = Consumer::with_client(c, ConsumerConfig::from_properties(&props).unwrap());
    consumer.assign(all.iter().map(|&p| (topic.to_string(), p)));
    let mut out = Vec::new();
    let start = Instant::now();
    while !ends.iter().all(|(&p, end)| {
        consumer
            .partition_offsets(topic, p)
            .and_then(|o| o.position)
            .is_some_and(|pos| pos >= end.offset)
    }) {
        assert!(start.elapsed() < DEADLINE, "did not reach {ends:?}");
        out.extend(
            consumer
                .poll_for(Duration::from_millis(200))
                .await
                .unwrap()
                .iter()
                .map(text),
        );
    }
    consumer.close().await;
    out.sort();
    out
}

/// A consume-transform-produce worker in a KIP-848 group: upper-cases `input`
/// into `output` and commits its offsets in the same transaction, under its
/// member epoch. Every third transaction is aborted on purpose (and the consumer
/// rewound). Returns (transactions, aborted, highest member epoch seen).
async fn eos_worker(
    bootstrap: String,
    group: String,
    input: String,
    output: String,
    id: String,
    stop: Arc<AtomicBool>,
) -> (usize, usize, i32) {
    let cfg = config(
        &bootstrap,
        &group,
        &[
            ("isolation.level", "read_committed"),
            ("max.poll.records", "10"),
        ],
    );
    let mut consumer = GroupConsumer::new(cfg).await.unwrap();
    consumer.subscribe([input]);
    let mut producer = TransactionalProducer::new(txn_producer_config(&bootstrap, &id))
        .await
        .unwrap();
    let (mut transactions, mut aborted, mut epoch) = (0, 0, -1);
    let start = Instant::now();
    while !stop.load(Ordering::Acquire) && start.elapsed() < Duration::from_secs(120) {
        let records = consumer.poll_for(Duration::from_millis(100)).await.unwrap();
        consumer.take_events();
        if records.is_empty() {
            continue;
        }
        transactions += 1;
        producer.begin().await.unwrap();
        for r in &records {
            let out = ProducerRecord::new(&output, text(r).to_uppercase()).partition(r.partition);
            producer.send(out).await.unwrap();
        }
        let metadata = consumer.group_metadata();
        assert!(metadata.generation_id > 0 && !metadata.member_id.is_empty());
        epoch = epoch.max(metadata.generation_id);
        let offered = producer
            .send_offsets_to_transaction(&consumer.positions(), &metadata)
            .await;
        if offered.is_err() || consumer.rebalance_pending() || transactions % 3 == 1 {
            aborted += 1;
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
    (transactions, aborted, epoch)
}

#[tokio::test]
async fn consume_transform_produce_commits_offsets_in_the_transaction_under_the_member_epoch() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let input = create_random_topic(&c, "eos848-in", 3).await;
    let output = create_random_topic(&c, "eos848-out", 3).await;
    let group = random_topic("eos848-group");
    let inputs = values("record", 90);
    produce(&bootstrap, &input, &inputs, 3).await;

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|i| {
            tokio::spawn(eos_worker(
                bootstrap.clone(),
                group.clone(),
                input.clone(),
                output.clone(),
                format!("{group}-worker-{i}"),
                stop.clone(),
            ))
        })
        .collect();
    // Done when the group's committed offsets reach the input's end offsets.
    let ends = end_offsets(&c, &input, 3).await;
    let checker = GroupConsumer::new(config(&bootstrap, &group, &[]))
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        if committed_offsets(&checker, &input, 3).await == ends {
            break;
        }
        assert!(start.elapsed() < DEADLINE * 2, "workers did not finish");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Release);
    let (mut transactions, mut aborted, mut epoch) = (0, 0, -1);
    for w in workers {
        let (t, a, e) = w.await.unwrap();
        transactions += t;
        aborted += a;
        epoch = epoch.max(e);
    }
    eprintln!("{aborted} of {transactions} transactions aborted; member epoch up to {epoch}");
    assert!(aborted >= 1 && transactions > aborted);
    assert!(epoch > 0);
    // Exactly once: every input once in the committed output, despite the aborts.
    let expected: Vec<String> = {
        let mut v: Vec<String> = inputs.iter().map(|v| v.to_uppercase()).collect();
        v.sort();
        v
    };
    assert_eq!(read_committed(&bootstrap, &output, 3).await, expected);
    checker.close().await.unwrap();
}

/// Polls `member` until it owns `n` partitions and is not reconciling.
async fn poll_until_owning(member: &mut GroupConsumer, n: usize) {
    let start = Instant::now();
    while member.assignment().len() != n || member.rebalance_pending() {
        assert!(
            start.elapsed() < DEADLINE,
            "owns {:?}, reconciling {}",
            member.assignment(),
            member.rebalance_pending()
        );
        member.poll_for(Duration::from_millis(100)).await.unwrap();
    }
}

#[tokio::test]
async fn a_member_with_a_stale_epoch_is_fenced() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "g848-fence", 2).await;
    let group = random_topic("g848-fence-id");
    let mut a = GroupConsumer::new(config(&bootstrap, &group, &[]))
        .await
        .unwrap();
    a.subscribe([topic.clone()]);
    poll_until_owning(&mut a, 2).await;
    let stale = a.group_metadata();
    assert!(stale.generation_id > 0, "{stale:?}");
    assert_eq!(stale.member_id.len(), 36, "v1: a client-generated UUID");

    // A second member joins: the group moves on and a's epoch with it.
    let mut b = GroupConsumer::new(config(&bootstrap, &group, &[]))
        .await
        .unwrap();
    b.subscribe([topic.clone()]);
    let start = Instant::now();
    while a.assignment().len() != 1 || b.assignment().len() != 1 || a.rebalance_pending() {
        assert!(start.elapsed() < DEADLINE, "never split over two members");
        a.poll_for(Duration::from_millis(50)).await.unwrap();
        b.poll_for(Duration::from_millis(50)).await.unwrap();
    }
    let current = a.group_metadata();
    assert!(current.generation_id > stale.generation_id);

    // Offsets under the stale epoch are refused (KIP-447 fencing of a zombie;
    // Kafka 4.1.1 answers TxnOffsetCommit with ILLEGAL_GENERATION, as for a
    // classic generation); under the current one they are accepted.
    let offsets = BTreeMap::from([(a.assignment()[0].clone(), 0_i64)]);
    let mut p =
        TransactionalProducer::new(txn_producer_config(&bootstrap, &random_topic("txn848")))
            .await
            .unwrap();
    p.begin().await.unwrap();
    let err = p
        .send_offsets_to_transaction(&offsets, &stale)
        .await
        .unwrap_err();
    assert!(err.is_abortable(), "{err}");
    eprintln!("stale epoch in TxnOffsetCommit: {err}");
    assert!(
        matches!(
            err.code(),
            Some(
                ErrorCode::StaleMemberEpoch
                    | ErrorCode::FencedMemberEpoch
                    | ErrorCode::IllegalGeneration
            )
        ),
        "{err}"
    );
    p.abort().await.unwrap();
    p.begin().await.unwrap();
    p.send_offsets_to_transaction(&offsets, &a.group_metadata())
        .await
        .unwrap();
    p.commit().await.unwrap();
    p.close(Duration::from_secs(5)).await.unwrap();

    // A zombie heartbeating with a's member id and the stale epoch is fenced;
    // a itself is not.
    let mut coordinator = Coordinator::new(c.clone(), CoordinatorType::Group, &group);
    let zombie = ConsumerGroupHeartbeatRequest {
        group_id: group.clone(),
        member_id: stale.member_id.clone(),
        member_epoch: stale.generation_id,
        ..Default::default()
    };
    let answer = coordinator
        .call(&zombie, None, Instant::now() + DEADLINE, |_| {
            ErrorCode::NoError
        })
        .await
        .unwrap();
    assert_eq!(
        ErrorCode::from_code(answer.error_code),
        ErrorCode::FencedMemberEpoch,
        "{answer:?}"
    );

    // Removed behind its back (its id leaves with epoch -1), a's next heartbeat
    // is answered UNKNOWN_MEMBER_ID: its partition is lost, and it rejoins with
    // epoch 0 under the same member id and gets a partition again.
    let leave = ConsumerGroupHeartbeatRequest {
        member_epoch: -1,
        ..zombie
    };
    let answer = coordinator
        .call(&leave, None, Instant::now() + DEADLINE, |_| {
            ErrorCode::NoError
        })
        .await
        .unwrap();
    assert_eq!(answer.error_code, 0, "{answer:?}");
    a.take_events();
    let start = Instant::now();
    let mut events = Vec::new();
    loop {
        a.poll_for(Duration::from_millis(50)).await.unwrap();
        b.poll_for(Duration::from_millis(50)).await.unwrap();
        events.extend(a.take_events());
        let lost = events.iter().any(|e| matches!(e, RebalanceEvent::Lost(_)));
        if lost && a.assignment().len() == 1 && b.assignment().len() == 1 && !a.rebalance_pending()
        {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "a never rejoined: {events:?}");
    }
    assert!(
        matches!(events.last(), Some(RebalanceEvent::Assigned(p)) if p.len() == 1),
        "{events:?}"
    );
    assert_eq!(a.member_id(), stale.member_id);
    let owners: BTreeSet<_> = a.assignment().iter().chain(b.assignment()).collect();
    assert_eq!(owners.len(), 2);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn an_assignor_the_broker_does_not_have_is_a_clear_error() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "g848-assignor", 1).await;
    let group = random_topic("g848-assignor-id");
    let cfg = config(&bootstrap, &group, &[("group.remote.assignor", "no-such")]);
    let mut m = GroupConsumer::new(cfg).await.unwrap();
    m.subscribe([topic]);
    let start = Instant::now();
    let err = loop {
        match m.poll_for(Duration::from_millis(100)).await {
            Ok(_) => assert!(start.elapsed() < DEADLINE, "never refused"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            Error::Broker {
                code: ErrorCode::UnsupportedAssignor,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("group.remote.assignor"), "{err}");
}

#[tokio::test]
async fn a_static_member_restarting_gets_its_partitions_back_and_the_others_keep_theirs() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "g848-static", 4).await;
    let group = random_topic("g848-static-id");
    let shared = new_shared();
    let s1 = config(&bootstrap, &group, &[("group.instance.id", "s1")]);
    let s2 = config(&bootstrap, &group, &[("group.instance.id", "s2")]);
    let m1 = start_member("s1", s1.clone(), &topic, shared.clone());
    let m2 = start_member("s2", s2, &topic, shared.clone());
    let e1 = wait_balanced(&shared, &["s1", "s2"], &topic, 4, 0).await;
    let (a1, a2) = (owned(&shared, "s1"), owned(&shared, "s2"));

    // s1 leaves with epoch -2: the broker keeps its partitions for it, so the
    // restarted s1 gets the same ones back and s2 is never rebalanced.
    let events = m1.stop().await;
    assert!(!events.iter().any(|e| matches!(e, RebalanceEvent::Lost(_))));
    let m1 = start_member("s1", s1, &topic, shared.clone());
    let start = Instant::now();
    loop {
        let reports = shared.reports.lock().unwrap().clone();
        if let Some((_, p, false)) = reports.get("s1") {
            if p.iter().cloned().collect::<BTreeSet<_>>() == a1 {
                break;
            }
        }
        assert_eq!(owned(&shared, "s2"), a2, "s2 was rebalanced");
        assert!(
            start.elapsed() < DEADLINE,
            "s1 never got {a1:?} back: {reports:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(shared.reports.lock().unwrap()["s2"].0 >= e1);
    let s1_events = m1.stop().await;
    let s2_events = m2.stop().await;
    assert!(
        !s2_events
            .iter()
            .any(|e| matches!(e, RebalanceEvent::Revoked(_))),
        "{s2_events:?}"
    );
    assert!(
        matches!(s1_events.first(), Some(RebalanceEvent::Assigned(p)) if p.len() == a1.len()),
        "{s1_events:?}"
    );
}

#[tokio::test]
async fn a_member_that_stops_polling_leaves_and_reports_its_partitions_lost_when_it_returns() {
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "g848-poll", 2).await;
    let group = random_topic("g848-poll-id");
    let cfg = || config(&bootstrap, &group, &[("max.poll.interval.ms", "2000")]);
    let mut slow = GroupConsumer::new(cfg()).await.unwrap();
    slow.subscribe([topic.clone()]);
    poll_until_owning(&mut slow, 2).await;
    let mut busy = GroupConsumer::new(cfg()).await.unwrap();
    busy.subscribe([topic.clone()]);
    let start = Instant::now();
    while slow.assignment().len() != 1 || busy.assignment().len() != 1 || slow.rebalance_pending() {
        assert!(start.elapsed() < DEADLINE, "never split over two members");
        slow.poll_for(Duration::from_millis(50)).await.unwrap();
        busy.poll_for(Duration::from_millis(50)).await.unwrap();
    }
    slow.take_events();

    // slow stops polling: after max.poll.interval.ms it leaves, and busy takes all.
    poll_until_owning(&mut busy, 2).await;
    // Back: it reports the partition lost and joins again.
    let start = Instant::now();
    let mut events = Vec::new();
    while !events.iter().any(|e| matches!(e, RebalanceEvent::Lost(_)))
        || slow.assignment().len() != 1
        || busy.assignment().len() != 1
    {
        assert!(
            start.elapsed() < DEADLINE,
            "slow never rejoined: {events:?}"
        );
        slow.poll_for(Duration::from_millis(50)).await.unwrap();
        busy.poll_for(Duration::from_millis(50)).await.unwrap();
        events.extend(slow.take_events());
    }
    assert!(
        matches!(events.first(), Some(RebalanceEvent::Lost(p)) if p.len() == 1),
        "{events:?}"
    );
    slow.close().await.unwrap();
    busy.close().await.unwrap();
}

#[tokio::test]
async fn a_static_member_that_closes_and_leaves_hands_its_partitions_over_at_once() {
    let bootstrap = require_broker!();
    static_member_leaves_at_once(&bootstrap, "group848-static-leave", |group, extra| {
        config(&bootstrap, group, extra)
    })
    .await;
}

/// A partition a poll reports revoked stays the member's until its next poll:
/// the broker hands it on only once acknowledged, so offsets committed in
/// between (what a revocation callback does in the Java client) are where its
/// next owner starts, and nothing is read twice.
#[tokio::test]
async fn a_revoked_partition_moves_only_after_the_next_poll_so_its_offsets_can_be_committed_first()
{
    let bootstrap = require_broker!();
    let c = client(&bootstrap).await;
    let topic = create_random_topic(&c, "g848-ack", 2).await;
    let group = random_topic("g848-ack-id");
    produce(&bootstrap, &topic, &values("a", 20), 2).await;
    let cfg = || config(&bootstrap, &group, &[("enable.auto.commit", "false")]);
    let mut a = GroupConsumer::new(cfg()).await.unwrap();
    a.subscribe([topic.clone()]);
    poll_until_owning(&mut a, 2).await;
    let start = Instant::now();
    while a.positions().values().sum::<i64>() < 20 {
        assert!(start.elapsed() < DEADLINE, "read {:?} of 20", a.positions());
        a.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    a.take_events();

    let mut b = GroupConsumer::new(cfg()).await.unwrap();
    b.subscribe([topic.clone()]);
    let start = Instant::now();
    let revoked = loop {
        assert!(start.elapsed() < DEADLINE, "a never gave a partition up");
        b.poll_for(Duration::from_millis(50)).await.unwrap();
        a.poll_for(Duration::from_millis(50)).await.unwrap();
        let events = a.take_events();
        if let Some(RebalanceEvent::Revoked(p)) = events.first() {
            break p.clone();
        }
        assert!(events.is_empty(), "{events:?}");
    };
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    // a does not poll: b gets nothing for more than two heartbeat intervals.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(11) {
        assert!(
            b.poll_for(Duration::from_millis(100))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(b.assignment().is_empty(), "{:?}", b.assignment());
    }
    // Still a's: its offsets go under its member epoch.
    let offsets = BTreeMap::from([(revoked[0].clone(), 10)]);
    a.commit_offsets(&offsets).await.unwrap();

    // a polls (acknowledging); b takes the partition from the committed offset.
    let start = Instant::now();
    while b.assignment() != revoked.as_slice() {
        assert!(start.elapsed() < DEADLINE, "b never got {revoked:?}");
        a.poll_for(Duration::from_millis(50)).await.unwrap();
        assert!(
            b.poll_for(Duration::from_millis(50))
                .await
                .unwrap()
                .is_empty()
        );
    }
    let (t, p) = &revoked[0];
    let producer = Producer::new(ProducerConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let ack = producer
        .send(ProducerRecord::new(t.as_str(), "after").partition(*p))
        .await
        .unwrap();
    ack.await.unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    while got.is_empty() {
        assert!(start.elapsed() < DEADLINE, "b read nothing");
        a.poll_for(Duration::from_millis(50)).await.unwrap();
        got = b.poll_for(Duration::from_millis(100)).await.unwrap();
    }
    let values: Vec<_> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_string())
        .collect();
    assert_eq!(values, ["after"], "b starts at the offset a committed");
    assert_eq!(got[0].offset, 10);
    a.close().await.unwrap();
    b.close().await.unwrap();
}
