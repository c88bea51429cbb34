//! Admin operations against the real broker.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::collections::BTreeMap;

use integration_tests::{random_topic, require_broker};
use kafka_wire::ErrorCode;
use kafka_wire::client::admin::{AlterConfigOp, DELETE_ALL_RECORDS, NewTopic, OffsetSpec};
use kafka_wire::client::config::{ClientConfig, IsolationLevel, ProducerConfig};
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

#[tokio::test]
async fn topics_partitions_configs_and_offsets_round_trip_through_the_broker() {
    let bootstrap = require_broker!();
    let client = Client::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let admin = Admin::new(client.clone());

    let cluster = admin.describe_cluster().await.unwrap();
    assert!(!cluster.brokers.is_empty());
    assert!(!cluster.cluster_id.is_empty());

    let topic = random_topic("admin");
    let ids = admin
        .create_topics(&[NewTopic::new(&topic, 3).config("retention.ms", "3600000")])
        .await
        .unwrap();
    assert!(ids.contains_key(&topic));

    let again = admin
        .create_topics(&[NewTopic::new(&topic, 3)])
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some(ErrorCode::TopicAlreadyExists), "{again}");

    // CreateTopics answers before every broker's metadata cache has the topic.
    let info = integration_tests::topic_metadata(&client, &topic).await;
    assert_eq!(info.partitions.len(), 3);

    let configs = admin.describe_topic_configs(&topic).await.unwrap();
    assert_eq!(configs["retention.ms"].value.as_deref(), Some("3600000"));
    let changes = BTreeMap::from([(
        "retention.ms".to_string(),
        AlterConfigOp::Set("7200000".into()),
    )]);
    admin.alter_topic_configs(&topic, &changes).await.unwrap();
    // KRaft applies the change through the metadata log: brokers see it shortly after.
    let mut value = None;
    for _ in 0..100 {
        let configs = admin.describe_topic_configs(&topic).await.unwrap();
        value = configs["retention.ms"].value.clone();
        if value.as_deref() == Some("7200000") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(value.as_deref(), Some("7200000"));

    let latest = admin
        .list_offsets(
            &topic,
            &[0, 1, 2],
            OffsetSpec::Latest,
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
    assert_eq!(latest.len(), 3);
    assert!(latest.values().all(|o| o.offset == 0));
    let earliest = admin
        .list_offsets(
            &topic,
            &[0],
            OffsetSpec::Earliest,
            IsolationLevel::ReadCommitted,
        )
        .await
        .unwrap();
    assert_eq!(earliest[&0].offset, 0);

    admin.create_partitions(&topic, 5).await.unwrap();
    // As with configs, brokers learn of the new partitions through the metadata log.
    let mut partitions = 0;
    for _ in 0..100 {
        client.invalidate_topic(&topic);
        partitions = client.topic(&topic).await.unwrap().partitions.len();
        if partitions == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(partitions, 5);

    admin
        .delete_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_topic_is_a_typed_error() {
    let bootstrap = require_broker!();
    let client = Client::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let err = client.topic(&random_topic("missing")).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::UnknownTopicOrPartition),
        "{err}"
    );
}

#[tokio::test]
async fn delete_records_moves_the_log_start_offset() {
    let bootstrap = require_broker!();
    let client = Client::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let admin = Admin::new(client.clone());
    let topic = integration_tests::create_random_topic(&client, "delete-records", 2).await;
    integration_tests::topic_metadata(&client, &topic).await;

    let producer = Producer::with_client(client.clone(), ProducerConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let mut deliveries = Vec::new();
    for (partition, count) in [(0, 10), (1, 5)] {
        for i in 0..count {
            let record = ProducerRecord::new(&topic, format!("r{i}")).partition(partition);
            deliveries.push(producer.send(record).await.unwrap());
        }
    }
    for d in deliveries {
        d.await.unwrap();
    }

    let before = BTreeMap::from([
        ((topic.clone(), 0), 4),
        ((topic.clone(), 1), DELETE_ALL_RECORDS),
    ]);
    let low = admin.delete_records(&before).await.unwrap();
    assert_eq!(
        low,
        BTreeMap::from([((topic.clone(), 0), 4), ((topic.clone(), 1), 5)])
    );
    let earliest = admin
        .list_offsets(
            &topic,
            &[0, 1],
            OffsetSpec::Earliest,
            IsolationLevel::ReadUncommitted,
        )
        .await
        .unwrap();
    assert_eq!(earliest[&0].offset, 4);
    assert_eq!(earliest[&1].offset, 5);

    // Deleting before an offset the log already starts after changes nothing.
    let again = admin
        .delete_records(&BTreeMap::from([((topic.clone(), 0), 2)]))
        .await
        .unwrap();
    assert_eq!(again[&(topic.clone(), 0)], 4);

    // Past the high watermark is refused.
    let past = admin
        .delete_records(&BTreeMap::from([((topic.clone(), 0), 11)]))
        .await
        .unwrap_err();
    assert_eq!(past.code(), Some(ErrorCode::OffsetOutOfRange), "{past}");

    producer
        .close(std::time::Duration::from_secs(5))
        .await
        .unwrap();
    admin
        .delete_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
}

#[tokio::test]
async fn list_topics_returns_every_topic_with_its_partitions() {
    let bootstrap = require_broker!();
    let client = Client::connect(ClientConfig::new(&bootstrap).unwrap())
        .await
        .unwrap();
    let topic = integration_tests::create_random_topic(&client, "list-topics", 3).await;
    integration_tests::topic_metadata(&client, &topic).await;
    let mut listed = None;
    for _ in 0..100 {
        let all = client.list_topics().await.unwrap();
        assert!(all.windows(2).all(|w| w[0].name < w[1].name));
        listed = all.into_iter().find(|t| t.name == topic);
        if listed.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let listed = listed.unwrap();
    assert_eq!(listed.partitions.len(), 3);
    assert!(!listed.is_internal);
    Admin::new(client)
        .delete_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();
}
