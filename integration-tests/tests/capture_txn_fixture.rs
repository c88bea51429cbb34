//! Captures `kafka-wire/tests/fixtures/records/txn.bin`: the records of a partition
//! holding one committed and one aborted transaction, with their control batches,
//! as the broker returns them (Fetch v12, read_uncommitted). Run by hand:
//! `KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo test -p integration-tests --test capture_txn_fixture -- --ignored`
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::collections::BTreeMap;

use integration_tests::{random_topic, require_broker, workspace_root};
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::cluster::Lane;
use kafka_wire::client::config::ProducerConfig;
use kafka_wire::client::transaction::TransactionalProducer;
use kafka_wire::client::{Admin, Client, ProducerRecord};
use kafka_wire::protocol::messages::FetchRequest;
use kafka_wire::protocol::messages::fetch_request::{FetchPartition, FetchTopic};

#[tokio::test]
#[ignore = "captures a fixture; run by hand"]
async fn capture_transactional_fixture() {
    let bootstrap = require_broker!();
    let client = Client::connect(ProducerConfig::new(&bootstrap).unwrap().client)
        .await
        .unwrap();
    let topic = random_topic("golden-txn");
    Admin::new(client.clone())
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .unwrap();
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        (
            "transactional.id".to_string(),
            random_topic("golden-txn-id"),
        ),
    ]);
    let mut p = TransactionalProducer::new(ProducerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    for (values, commit) in [(vec!["c1", "c2", "c3"], true), (vec!["a1", "a2"], false)] {
        p.begin().await.unwrap();
        let mut pending = Vec::new();
        for v in values {
            pending.push(
                p.send(ProducerRecord::new(&topic, v).key(v).partition(0))
                    .await
                    .unwrap(),
            );
        }
        for d in pending {
            d.await.unwrap();
        }
        if commit {
            p.commit().await.unwrap()
        } else {
            p.abort().await.unwrap()
        }
    }
    let (leader, _) = client.leader(&topic, 0).await.unwrap();
    let conn = client.connection(leader, Lane::Fetch).await.unwrap();
    let request = FetchRequest {
        replica_id: -1,
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes: 1 << 20,
        isolation_level: 0,
        session_id: 0,
        session_epoch: -1,
        topics: vec![FetchTopic {
            topic: topic.clone(),
            partitions: vec![FetchPartition {
                partition: 0,
                current_leader_epoch: -1,
                fetch_offset: 0,
                last_fetched_epoch: -1,
                log_start_offset: -1,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let response = conn.call_version(&request, 12).await.unwrap();
    let records = response.responses[0].partitions[0].records.clone().unwrap();
    let path = workspace_root().join("kafka-wire/tests/fixtures/records/txn.bin");
    std::fs::write(&path, &records).unwrap();
    eprintln!("wrote {} bytes to {}", records.len(), path.display());
}
