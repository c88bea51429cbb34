//! Cross-checks with other clients against the real broker: the Java console
//! consumer reads what our producer writes, we read what rskafka writes, and the
//! Java producer's keyed partitioning agrees with ours.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::{java_tool, random_topic, require_broker};
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::{ConsumerConfig, ProducerConfig};
use kafka_wire::client::consumer::{Consumer, ConsumerRecord};
use kafka_wire::client::partitioner::partition_for_key;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let client = Client::connect(ProducerConfig::new(bootstrap).unwrap().client)
        .await
        .unwrap();
    Admin::new(client)
        .create_topics(&[NewTopic::new(topic, partitions)])
        .await
        .unwrap();
}

/// Reads `count` records from every partition of `topic` with our consumer.
async fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
) -> Vec<ConsumerRecord> {
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
    ]);
    let mut consumer = Consumer::new(ConsumerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    consumer.assign((0..partitions).map(|p| (topic.to_string(), p)));
    let mut out = Vec::new();
    for _ in 0..200 {
        if out.len() >= count {
            break;
        }
        out.extend(consumer.poll_for(Duration::from_secs(2)).await.unwrap());
    }
    consumer.close().await;
    out
}

fn kafka_tool(class: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = java_tool(class, args, stdin, Duration::from_secs(120));
    assert!(out.success(), "{class} failed: {}", out.stderr);
    out.stdout
}

#[tokio::test]
async fn java_console_consumer_reads_what_we_produce() {
    let bootstrap = require_broker!();
    let topic = random_topic("to-java");
    create_topic(&bootstrap, &topic, 3).await;
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        ("compression.type".to_string(), "snappy".to_string()),
    ]);
    let producer = Producer::new(ProducerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    let mut expected = BTreeMap::new();
    let mut futures = Vec::new();
    for i in 0..300 {
        let (k, v) = (format!("k{}", i % 17), format!("value {i}"));
        futures.push((
            k.clone(),
            v.clone(),
            producer
                .send(ProducerRecord::new(&topic, v).key(k))
                .await
                .unwrap(),
        ));
    }
    for (k, v, f) in futures {
        let md = f.await.unwrap();
        expected.insert((md.partition, md.offset), (k, v));
    }
    let out = kafka_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "300",
            "--timeout-ms",
            "30000",
            "--property",
            "print.partition=true",
            "--property",
            "print.offset=true",
            "--property",
            "print.key=true",
            "--property",
            "key.separator=|",
        ],
        None,
    );
    let mut seen = BTreeMap::new();
    for line in out.lines() {
        // Partition:N|Offset:M|key|value
        let parts: Vec<&str> = line.splitn(4, '|').collect();
        assert_eq!(parts.len(), 4, "{line}");
        let partition: i32 = parts[0].trim_start_matches("Partition:").parse().unwrap();
        let offset: i64 = parts[1].trim_start_matches("Offset:").parse().unwrap();
        seen.insert(
            (partition, offset),
            (parts[2].to_string(), parts[3].to_string()),
        );
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn we_read_what_rskafka_produces_in_every_codec() {
    use rskafka::client::ClientBuilder;
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    let bootstrap = require_broker!();
    let topic = random_topic("from-rskafka");
    create_topic(&bootstrap, &topic, 1).await;
    let rs = ClientBuilder::new(vec![bootstrap.clone()])
        .build()
        .await
        .unwrap();
    let pc = rs
        .partition_client(topic.clone(), 0, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    let mut expected = Vec::new();
    for (c, codec) in [
        Compression::NoCompression,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Snappy,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let records: Vec<rskafka::record::Record> = (0..50)
            .map(|i| rskafka::record::Record {
                key: Some(format!("c{c}-k{i}").into_bytes()),
                value: if i % 10 == 9 {
                    None
                } else {
                    Some(format!("c{c}-v{i}").into_bytes())
                },
                headers: BTreeMap::from([("h".to_string(), format!("{i}").into_bytes())]),
                timestamp: chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + i).unwrap(),
            })
            .collect();
        expected.extend(records.clone());
        pc.produce(records, codec).await.unwrap();
    }
    let read = read_all(&bootstrap, &topic, 1, expected.len()).await;
    assert_eq!(read.len(), expected.len());
    for (i, (r, e)) in read.iter().zip(&expected).enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.key.as_deref(), e.key.as_deref());
        assert_eq!(r.value.as_deref(), e.value.as_deref());
        assert_eq!(r.timestamp, e.timestamp.timestamp_millis());
        assert_eq!(r.headers.len(), 1);
        assert_eq!(
            r.headers[0].value.as_deref(),
            e.headers.get("h").map(Vec::as_slice)
        );
    }
}

#[tokio::test]
async fn java_producer_partitions_keys_like_our_partitioner() {
    let bootstrap = require_broker!();
    let topic = random_topic("java-keys");
    create_topic(&bootstrap, &topic, 6).await;
    let input: String = (0..200).map(|i| format!("user-{i}:v{i}\n")).collect();
    kafka_tool(
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            &topic,
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ],
        Some(&input),
    );
    let read = read_all(&bootstrap, &topic, 6, 200).await;
    assert_eq!(read.len(), 200);
    for r in &read {
        let key = r.key.as_deref().unwrap();
        assert_eq!(
            r.partition,
            partition_for_key(key, 6),
            "key {}",
            String::from_utf8_lossy(key)
        );
    }
}
