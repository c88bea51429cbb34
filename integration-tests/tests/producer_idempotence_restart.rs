//! Idempotence across a broker crash: 100,000 records with 5 requests in flight while
//! the broker is killed (SIGKILL) and restarted; afterwards every record is in the
//! log exactly once, in send order per partition.
//!
//! Needs a broker that `scripts/kafka` started (it restarts it); skips otherwise.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use integration_tests::{broker_is_ours, kafka_script, random_topic, require_broker};
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::ProducerConfig;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};
use rskafka::client::ClientBuilder;
use rskafka::client::partition::UnknownTopicHandling;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gaps_and_no_duplicates_when_the_broker_is_killed_mid_run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let bootstrap = require_broker!();
    if !broker_is_ours(&bootstrap) {
        eprintln!(
            "!! SKIPPING: the broker at {bootstrap} was not started by scripts/kafka, so this test cannot restart it"
        );
        return;
    }
    let topic = random_topic("idempotence-restart");
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        (
            "max.in.flight.requests.per.connection".to_string(),
            "5".to_string(),
        ),
        ("linger.ms".to_string(), "5".to_string()),
        ("batch.size".to_string(), "4096".to_string()),
        ("request.timeout.ms".to_string(), "10000".to_string()),
        ("delivery.timeout.ms".to_string(), "180000".to_string()),
        ("retry.backoff.ms".to_string(), "100".to_string()),
    ]);
    let config = ProducerConfig::from_properties(&props).unwrap();
    let client = Client::connect(config.client.clone()).await.unwrap();
    Admin::new(client.clone())
        .create_topics(&[NewTopic::new(&topic, 3)])
        .await
        .unwrap();
    let producer = Producer::with_client(client, config).await.unwrap();

    const N: usize = 100_000;
    let acked = Arc::new(AtomicUsize::new(0));
    let restarter = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            while acked.load(Ordering::Relaxed) < N / 4
                && start.elapsed() < Duration::from_secs(120)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let at = acked.load(Ordering::Relaxed);
            tokio::task::spawn_blocking(|| {
                kafka_script(&["stop-node", "1", "-9"]);
                kafka_script(&["start-node", "1"]);
            })
            .await
            .unwrap();
            at
        })
    };
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    let mut results = Vec::with_capacity(N);
    for i in 0..N {
        let record = ProducerRecord::new(&topic, i.to_string()).key(format!("k{}", i % 1000));
        pending.push_back(producer.send(record).await.unwrap());
        // Keep the number of unresolved futures bounded, resolving in order.
        while pending.len() > 20_000 {
            let f = pending.pop_front().unwrap();
            results.push(f.await);
            acked.fetch_add(1, Ordering::Relaxed);
        }
        if i % 1_000 == 0 {
            acked.store(
                acked.load(Ordering::Relaxed).max(results.len()),
                Ordering::Relaxed,
            );
        }
    }
    for f in pending {
        results.push(f.await);
        acked.fetch_add(1, Ordering::Relaxed);
    }
    let restarted_at = restarter.await.unwrap();
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} sends failed, first: {}",
        failures.len(),
        failures[0]
    );
    eprintln!(
        "sent {N} records in {:?}; broker killed after {restarted_at} acks",
        started.elapsed()
    );

    // Read everything back: each value exactly once, in send order per partition.
    let rs = ClientBuilder::new(vec![bootstrap.clone()])
        .build()
        .await
        .unwrap();
    let mut seen = vec![0u8; N];
    let mut total = 0;
    for partition in 0..3 {
        let pc = rs
            .partition_client(topic.clone(), partition, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let mut offset = 0;
        let mut last = -1i64;
        for _ in 0..10_000 {
            let (records, hwm) = pc.fetch_records(offset, 1..8_000_000, 1_000).await.unwrap();
            for r in &records {
                let v: i64 = std::str::from_utf8(r.record.value.as_deref().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(
                    v > last,
                    "partition {partition}: {v} after {last} (reordered or duplicated)"
                );
                last = v;
                seen[v as usize] += 1;
                total += 1;
            }
            if let Some(r) = records.last() {
                offset = r.offset + 1;
            }
            if offset >= hwm {
                break;
            }
        }
    }
    let missing = seen.iter().filter(|&&c| c == 0).count();
    let duplicated = seen.iter().filter(|&&c| c > 1).count();
    eprintln!("read back {total} records: {missing} missing, {duplicated} duplicated");
    assert_eq!((missing, duplicated, total), (0, 0, N));
}
