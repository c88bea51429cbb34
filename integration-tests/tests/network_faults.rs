//! Our clients through a loopback proxy that injects network faults between them
//! and the real broker: requests cut in the middle, dropped connections, added
//! latency, a hanging connection, and Produce or EndTxn requests held back so that
//! they arrive late (the KAFKA-17754 pattern). Every record is read back directly
//! from the broker and counted.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use integration_tests::checkers::{Outcome, Read, Reader, Write, check};
use integration_tests::proxy::KafkaProxy;
use integration_tests::{create_random_topic, random_topic, read_all, require_broker};
use kafka_wire::client::config::{ClientConfig, ConsumerConfig, ProducerConfig};
use kafka_wire::client::connection::{Connection, ConnectionOptions};
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::transaction::TransactionalProducer;
use kafka_wire::client::{Client, Producer, ProducerRecord};
use kafka_wire::protocol::ApiKey;
use kafka_wire::protocol::messages::MetadataRequest;

/// Upper bound for any wait in these tests.
const DEADLINE: Duration = Duration::from_secs(30);

fn props(bootstrap: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut p = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("linger.ms".to_string(), "2".to_string()),
        ("request.timeout.ms".to_string(), "3000".to_string()),
        ("delivery.timeout.ms".to_string(), "25000".to_string()),
        ("retry.backoff.ms".to_string(), "50".to_string()),
        ("reconnect.backoff.ms".to_string(), "20".to_string()),
    ]);
    p.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    p
}

async fn topic(bootstrap: &str, prefix: &str, partitions: i32) -> String {
    let client = Client::connect(ClientConfig::new(bootstrap).unwrap())
        .await
        .unwrap();
    create_random_topic(&client, prefix, partitions).await
}

/// An idempotent producer (acks=all) with short timeouts, bootstrapped at `bootstrap`.
async fn idempotent_producer(bootstrap: &str) -> Producer {
    let config = props(
        bootstrap,
        &[("enable.idempotence", "true"), ("acks", "all")],
    );
    Producer::new(ProducerConfig::from_properties(&config).unwrap())
        .await
        .unwrap()
}

/// The end offset of partition 0 of `topic` at `isolation`.
async fn end_offset(bootstrap: &str, topic: &str, isolation: &str) -> i64 {
    let p = props(bootstrap, &[("isolation.level", isolation)]);
    let consumer = Consumer::new(ConsumerConfig::from_properties(&p).unwrap())
        .await
        .unwrap();
    let tp = (topic.to_string(), 0);
    consumer
        .end_offsets(std::slice::from_ref(&tp))
        .await
        .unwrap()[&tp]
}

/// Asserts every value of `expected` was read exactly once, and nothing else.
fn assert_exactly_once(read: &[(i32, i64, String)], expected: &[String]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, _, v) in read {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "duplicates: {duplicates:?}");
    let missing: Vec<_> = expected
        .iter()
        .filter(|v| !counts.contains_key(v.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert_eq!(
        read.len(),
        expected.len(),
        "records that were never sent were read"
    );
}

#[tokio::test]
async fn metadata_through_the_proxy_names_only_proxy_addresses() {
    let bootstrap = require_broker!();
    let proxy = KafkaProxy::start(&bootstrap).await.unwrap();
    let conn = Connection::connect(proxy.bootstrap(), ConnectionOptions::default())
        .await
        .unwrap();
    let metadata = conn.call(&MetadataRequest::default()).await.unwrap();
    assert!(!metadata.brokers.is_empty());
    for b in &metadata.brokers {
        let addr = format!("{}:{}", b.host, b.port);
        assert!(
            !bootstrap.split(',').any(|real| real == addr),
            "broker {addr} reached the client unproxied"
        );
    }
    assert_eq!(proxy.accepted(), 1);
}

#[tokio::test]
async fn an_idempotent_producer_writes_each_record_once_through_cut_requests_and_dropped_connections()
 {
    let bootstrap = require_broker!();
    let topic = topic(&bootstrap, "proxy-idem", 3).await;
    let proxy = KafkaProxy::start(&bootstrap).await.unwrap();
    let producer = idempotent_producer(proxy.bootstrap()).await;
    let mut expected = Vec::new();
    for round in 0..6 {
        match round {
            1 => proxy.cut_next(ApiKey::Produce),
            2 => proxy.set_latency(Duration::from_millis(30)),
            3 => proxy.heal(),
            _ => {}
        }
        let mut deliveries = Vec::new();
        for i in 0..300 {
            let value = format!("r{round}-{i}");
            let record = ProducerRecord::new(&topic, value.clone()).key(value.clone());
            deliveries.push(producer.send(record).await.unwrap());
            expected.push(value);
            if round == 4 && i == 150 {
                proxy.drop_connections();
            }
        }
        for d in deliveries {
            d.await.unwrap();
        }
    }
    producer.close(Duration::from_secs(10)).await.unwrap();
    assert_eq!(proxy.cuts(), 1, "the cut never happened");
    let read = read_all(&bootstrap, &topic, 3, "read_uncommitted").await;
    assert_exactly_once(&read, &expected);
    // Per partition, records of one key keep their send order.
    let mut last: HashMap<i32, (i64, usize)> = HashMap::new();
    let index: HashMap<&str, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, v)| (v.as_str(), i))
        .collect();
    for (p, offset, v) in &read {
        let i = index[v.as_str()];
        if let Some((o, prev)) = last.get(p) {
            assert!(
                offset > o && i > *prev,
                "partition {p}: {v} at {offset} out of send order"
            );
        }
        last.insert(*p, (*offset, i));
    }
}

#[tokio::test]
async fn a_produce_held_past_its_abort_never_becomes_visible() {
    let bootstrap = require_broker!();
    let topic = topic(&bootstrap, "proxy-held-produce", 1).await;
    let proxy = KafkaProxy::start(&bootstrap).await.unwrap();
    let config = props(
        proxy.bootstrap(),
        &[
            ("transactional.id", &random_topic("proxy-txn")),
            ("max.block.ms", "20000"),
        ],
    );
    let mut producer =
        TransactionalProducer::new(ProducerConfig::from_properties(&config).unwrap())
            .await
            .unwrap();
    producer.begin().await.unwrap();
    proxy.hold(ApiKey::Produce, Duration::from_millis(1500));
    let mut aborted = Vec::new();
    for i in 0..20 {
        aborted.push(
            producer
                .send(ProducerRecord::new(&topic, format!("aborted-{i}")))
                .await
                .unwrap(),
        );
    }
    producer.abort().await.unwrap();
    proxy.heal();
    for d in aborted {
        // Aborted records fail or succeed; neither may make them visible.
        let _ = d.await;
    }
    producer.begin().await.unwrap();
    let committed: Vec<String> = (0..20).map(|i| format!("committed-{i}")).collect();
    let mut deliveries = Vec::new();
    for v in &committed {
        deliveries.push(
            producer
                .send(ProducerRecord::new(&topic, v.clone()))
                .await
                .unwrap(),
        );
    }
    proxy.hold(ApiKey::EndTxn, Duration::from_millis(1000));
    let start = Instant::now();
    producer.commit().await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "the EndTxn was not held"
    );
    for d in deliveries {
        d.await.unwrap();
    }
    proxy.heal();
    producer.close(Duration::from_secs(10)).await.unwrap();
    let read = read_all(&bootstrap, &topic, 1, "read_committed").await;
    let all = read_all(&bootstrap, &topic, 1, "read_uncommitted").await;
    // Ids: aborted-i is i, committed-i is 1000 + i.
    let id = |v: &str| -> u64 {
        let (kind, i) = v.split_once('-').unwrap();
        i.parse::<u64>().unwrap() + if kind == "committed" { 1000 } else { 0 }
    };
    let writes: Vec<Write> = (0..20)
        .map(|i| (i, Outcome::Aborted))
        .chain((1000..1020).map(|i| (i, Outcome::Committed)))
        .map(|(id, outcome)| Write {
            id,
            partition: 0,
            outcome,
        })
        .collect();
    let reads = |records: &[(i32, i64, String)]| -> Vec<Read> {
        records
            .iter()
            .map(|(partition, offset, v)| Read {
                partition: *partition,
                offset: *offset,
                id: id(v),
            })
            .collect()
    };
    let readers = [
        Reader {
            read_committed: true,
            drained: true,
            reads: reads(&read),
        },
        Reader {
            read_committed: false,
            drained: false,
            reads: reads(&all),
        },
    ];
    let report = check(&writes, &readers);
    assert!(report.is_clean(), "{report}");
    assert_exactly_once(&read, &committed);
    // No transaction hangs: the last stable offset reaches the high watermark.
    assert_eq!(
        end_offset(&bootstrap, &topic, "read_committed").await,
        end_offset(&bootstrap, &topic, "read_uncommitted").await
    );
}

#[tokio::test]
async fn a_hanging_connection_times_out_and_the_producer_delivers_after_it() {
    let bootstrap = require_broker!();
    let topic = topic(&bootstrap, "proxy-hang", 1).await;
    let proxy = KafkaProxy::start(&bootstrap).await.unwrap();
    let producer = idempotent_producer(proxy.bootstrap()).await;
    producer
        .send(ProducerRecord::new(&topic, "before"))
        .await
        .unwrap()
        .await
        .unwrap();
    let accepted = proxy.accepted();
    proxy.hang(true);
    let during = producer
        .send(ProducerRecord::new(&topic, "during"))
        .await
        .unwrap();
    // Past request.timeout.ms (3 s): the client gives up on the hung connection.
    tokio::time::sleep(Duration::from_millis(4000)).await;
    proxy.hang(false);
    tokio::time::timeout(DEADLINE, during)
        .await
        .unwrap()
        .unwrap();
    assert!(
        proxy.accepted() > accepted,
        "the producer never opened a new connection"
    );
    producer.close(Duration::from_secs(10)).await.unwrap();
    let read = read_all(&bootstrap, &topic, 1, "read_uncommitted").await;
    assert_exactly_once(&read, &["before".to_string(), "during".to_string()]);
}
