//! Admin operations against the real broker.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::collections::BTreeMap;

use integration_tests::{random_topic, require_broker};
use kafka_wire::ErrorCode;
use kafka_wire::client::admin::{AlterConfigOp, NewTopic, OffsetSpec};
use kafka_wire::client::config::{ClientConfig, IsolationLevel};
use kafka_wire::client::{Admin, Client};

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
