//! Our producer against the real broker, read back by rskafka (a second client) and by
//! our own consumer.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use integration_tests::{random_topic, require_broker};
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::ProducerConfig;
use kafka_wire::client::partitioner::partition_for_key;
use kafka_wire::client::{Admin, Producer, ProducerRecord};
use kafka_wire::error_code::ErrorCode;
use rskafka::client::ClientBuilder;
use rskafka::client::partition::UnknownTopicHandling;

fn producer_config(bootstrap: &str, compression: &str) -> ProducerConfig {
    producer_config_with(bootstrap, compression, &[])
}

/// [`producer_config`] with `extra` properties on top.
fn producer_config_with(
    bootstrap: &str,
    compression: &str,
    extra: &[(&str, &str)],
) -> ProducerConfig {
    let mut props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("compression.type".to_string(), compression.to_string()),
        ("linger.ms".to_string(), "5".to_string()),
        ("client.id".to_string(), "strom-it-producer".to_string()),
    ]);
    props.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ProducerConfig::from_properties(&props).unwrap()
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    create_topics(bootstrap, &[NewTopic::new(topic, partitions)]).await;
}

async fn create_topics(bootstrap: &str, topics: &[NewTopic]) {
    let producer_cfg = producer_config(bootstrap, "none");
    let client = kafka_wire::client::Client::connect(producer_cfg.client)
        .await
        .unwrap();
    Admin::new(client).create_topics(topics).await.unwrap();
}

/// Reads every record of `topic`/`partition` up to `count` records with rskafka.
async fn read_with_rskafka(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    count: usize,
) -> Vec<rskafka::record::RecordAndOffset> {
    let client = ClientBuilder::new(vec![bootstrap.to_string()])
        .build()
        .await
        .unwrap();
    let pc = client
        .partition_client(topic, partition, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut offset = 0;
    for _ in 0..1_000 {
        if out.len() >= count {
            break;
        }
        let (records, _hwm) = pc.fetch_records(offset, 1..4_000_000, 500).await.unwrap();
        if let Some(last) = records.last() {
            offset = last.offset + 1;
        }
        out.extend(records);
    }
    out
}

/// Reads `count` records from partitions `0..partitions` of `topic` with our consumer.
async fn read_with_our_consumer(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
) -> Vec<kafka_wire::client::consumer::ConsumerRecord> {
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("auto.offset.reset".to_string(), "earliest".to_string()),
    ]);
    let config = kafka_wire::client::ConsumerConfig::from_properties(&props).unwrap();
    let mut consumer = kafka_wire::client::consumer::Consumer::new(config)
        .await
        .unwrap();
    consumer.assign((0..partitions).map(|p| (topic.to_string(), p)));
    let mut out = Vec::new();
    for _ in 0..500 {
        if out.len() >= count {
            break;
        }
        out.extend(consumer.poll_for(Duration::from_secs(2)).await.unwrap());
    }
    consumer.close().await;
    out
}

#[tokio::test]
async fn keyed_records_in_every_codec_are_read_back_exactly_by_rskafka_and_our_consumer() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let bootstrap = require_broker!();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = random_topic(&format!("produce-{codec}"));
        create_topic(&bootstrap, &topic, 3).await;
        let producer = Producer::new(producer_config(&bootstrap, codec))
            .await
            .unwrap();
        assert!(
            producer.identity().producer_id >= 0,
            "idempotent by default"
        );
        let n = 3_000usize;
        let base_ts = 1_700_000_000_000i64;
        let mut futures = Vec::with_capacity(n);
        for i in 0..n {
            let key = format!("key-{}", i % 97);
            let record = ProducerRecord::new(&topic, format!("value-{i}"))
                .key(key)
                .header("seq", i.to_string())
                .timestamp(base_ts + i as i64 * 1_000);
            futures.push(producer.send(record).await.unwrap());
        }
        producer.flush().await.unwrap();
        let mut per_partition: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
        for (i, f) in futures.into_iter().enumerate() {
            let md = f.await.unwrap();
            let key = format!("key-{}", i % 97);
            assert_eq!(
                md.partition,
                partition_for_key(key.as_bytes(), 3),
                "murmur2 partition of {key}"
            );
            per_partition
                .entry(md.partition)
                .or_default()
                .push((md.offset, i));
        }
        for (partition, sent) in &per_partition {
            for (k, (offset, _)) in sent.iter().enumerate() {
                assert_eq!(
                    *offset, k as i64,
                    "offsets are contiguous in send order ({codec}, partition {partition})"
                );
            }
            let read = read_with_rskafka(&bootstrap, &topic, *partition, sent.len()).await;
            assert_eq!(read.len(), sent.len(), "{codec} partition {partition}");
            for (r, (offset, i)) in read.iter().zip(sent) {
                assert_eq!(r.offset, *offset);
                assert_eq!(
                    r.record.key.as_deref(),
                    Some(format!("key-{}", i % 97).as_bytes())
                );
                assert_eq!(
                    r.record.value.as_deref(),
                    Some(format!("value-{i}").as_bytes())
                );
                assert_eq!(
                    r.record.headers.get("seq").map(Vec::as_slice),
                    Some(i.to_string().as_bytes())
                );
                assert_eq!(
                    r.record.timestamp.timestamp_millis(),
                    base_ts + *i as i64 * 1_000
                );
            }
        }
        // And our own consumer reads the same, partition by partition.
        let ours = read_with_our_consumer(&bootstrap, &topic, 3, n).await;
        for (partition, sent) in &per_partition {
            let got: Vec<_> = ours.iter().filter(|r| r.partition == *partition).collect();
            assert_eq!(
                got.len(),
                sent.len(),
                "{codec} partition {partition} (our consumer)"
            );
            for (r, (offset, i)) in got.iter().zip(sent) {
                assert_eq!(r.offset, *offset);
                assert_eq!(r.key.as_deref(), Some(format!("key-{}", i % 97).as_bytes()));
                assert_eq!(r.value.as_deref(), Some(format!("value-{i}").as_bytes()));
                assert_eq!(
                    r.headers[0].value.as_deref(),
                    Some(i.to_string().as_bytes())
                );
                assert_eq!(r.timestamp, base_ts + *i as i64 * 1_000);
            }
        }
        producer.close(Duration::from_secs(5)).await.unwrap();
    }
}

#[tokio::test]
async fn null_keys_tombstones_and_explicit_partitions() {
    let bootstrap = require_broker!();
    let topic = random_topic("produce-nulls");
    create_topic(&bootstrap, &topic, 4).await;
    let producer = Producer::new(producer_config(&bootstrap, "lz4"))
        .await
        .unwrap();
    let tombstone = ProducerRecord {
        topic: topic.clone(),
        key: Some(Bytes::from_static(b"gone")),
        value: None,
        partition: Some(2),
        ..Default::default()
    };
    let md = producer.send(tombstone).await.unwrap().await.unwrap();
    assert_eq!((md.partition, md.offset), (2, 0));
    let no_key = ProducerRecord {
        topic: topic.clone(),
        value: Some(Bytes::from_static(b"v")),
        partition: Some(2),
        ..Default::default()
    };
    let md = producer.send(no_key).await.unwrap().await.unwrap();
    assert_eq!((md.partition, md.offset), (2, 1));
    let read = read_with_rskafka(&bootstrap, &topic, 2, 2).await;
    assert_eq!(read[0].record.key.as_deref(), Some(&b"gone"[..]));
    assert_eq!(read[0].record.value, None);
    assert_eq!(read[1].record.key, None);
    assert_eq!(read[1].record.value.as_deref(), Some(&b"v"[..]));

    // Unkeyed records stick to one partition per batch (KIP-480).
    let mut partitions = Vec::new();
    for i in 0..10 {
        let f = producer
            .send(ProducerRecord::new(&topic, format!("u{i}")))
            .await
            .unwrap();
        partitions.push(f);
    }
    let mut seen = Vec::new();
    for f in partitions {
        seen.push(f.await.unwrap().partition);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "sticky: {seen:?}");

    let err = producer
        .send(ProducerRecord::new(&topic, "x").partition(99))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("99"), "{err}");
}

#[tokio::test]
async fn buffer_memory_applies_backpressure_instead_of_growing() {
    let bootstrap = require_broker!();
    let topic = random_topic("produce-backpressure");
    create_topic(&bootstrap, &topic, 1).await;
    let props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.clone()),
        ("buffer.memory".to_string(), "65536".to_string()),
        ("batch.size".to_string(), "16384".to_string()),
        ("linger.ms".to_string(), "50".to_string()),
    ]);
    let producer = Producer::new(ProducerConfig::from_properties(&props).unwrap())
        .await
        .unwrap();
    let value = Bytes::from(vec![7u8; 1_000]);
    let mut futures = Vec::new();
    for _ in 0..2_000 {
        futures.push(
            producer
                .send(ProducerRecord {
                    topic: topic.clone(),
                    value: Some(value.clone()),
                    ..Default::default()
                })
                .await
                .unwrap(),
        );
    }
    for f in futures {
        f.await.unwrap();
    }
    // 2 MB went through a 64 KiB buffer: send() waited for acknowledgements.
    let read = read_with_rskafka(&bootstrap, &topic, 0, 2_000).await;
    assert_eq!(read.len(), 2_000);
}

/// `len` pseudo-random bytes (no codec shrinks them) that start with `i`.
fn incompressible(i: u64, len: usize) -> Bytes {
    let mut x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = i.to_be_bytes().to_vec();
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out.into()
}

#[tokio::test]
async fn batches_over_max_message_bytes_are_split_and_every_record_lands_once_in_order() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let bootstrap = require_broker!();
    for codec in ["lz4", "none"] {
        let topic = random_topic(&format!("too-large-{codec}"));
        create_topics(
            &bootstrap,
            &[NewTopic::new(&topic, 3).config("max.message.bytes", "20000")],
        )
        .await;
        let config = producer_config_with(
            &bootstrap,
            codec,
            &[("batch.size", "262144"), ("linger.ms", "50")],
        );
        let producer = Producer::new(config).await.unwrap();
        assert!(producer.identity().producer_id >= 0);
        let n = 5_000u64;
        // One record larger than max.message.bytes, in the middle of the others.
        let big = 2_500u64;
        let mut futures = Vec::with_capacity(n as usize);
        for i in 0..n {
            let len = if i == big { 50_000 } else { 1_000 };
            let record =
                ProducerRecord::new(&topic, incompressible(i, len)).key(format!("key-{}", i % 101));
            futures.push(producer.send(record).await.unwrap());
        }
        // (partition, offset) -> record index, from the delivery futures.
        let mut landed = std::collections::HashMap::new();
        for (i, future) in (0..n).zip(futures) {
            match future.await {
                Ok(m) if i != big => assert!(landed.insert((m.partition, m.offset), i).is_none()),
                Err(e) if i == big => {
                    assert_eq!(e.code(), Some(ErrorCode::MessageTooLarge), "{e}");
                    let text = e.to_string();
                    let partition = partition_for_key(format!("key-{}", big % 101).as_bytes(), 3);
                    assert!(text.contains(&format!("{topic}-{partition}")), "{text}");
                    assert!(
                        text.contains("1 record(s)") && text.contains("bytes"),
                        "{text}"
                    );
                }
                other => panic!("{codec} record {i}: {other:?}"),
            }
        }
        let records = read_with_our_consumer(&bootstrap, &topic, 3, n as usize - 1).await;
        assert_eq!(records.len(), n as usize - 1, "{codec}: every record once");
        let mut last = std::collections::HashMap::new();
        for r in &records {
            let value = r.value.as_deref().unwrap();
            let i = u64::from_be_bytes(value[..8].try_into().unwrap());
            assert_eq!(value, &incompressible(i, 1_000)[..], "{codec}");
            assert_eq!(
                landed.get(&(r.partition, r.offset)),
                Some(&i),
                "{codec}: offset from the future"
            );
            // Send order within each partition.
            if let Some(prev) = last.insert(r.partition, i) {
                assert!(
                    prev < i,
                    "{codec} partition {}: {prev} before {i}",
                    r.partition
                );
            }
        }
        producer.close(Duration::from_secs(5)).await.unwrap();
    }
}

/// Large compressible batches of several partitions that do not all fit one
/// request (by their size bound before compression): the batch left for the next
/// round keeps taking records, and every partition's sequence stays in order, so
/// the idempotent producer delivers everything, exactly once and in order.
#[tokio::test]
async fn batches_left_out_of_a_full_request_keep_their_partition_in_sequence() {
    let bootstrap = require_broker!();
    let topic = random_topic("producer-full-request");
    create_topic(&bootstrap, &topic, 4).await;
    let config = producer_config_with(
        &bootstrap,
        "lz4",
        &[("batch.size", "262144"), ("max.request.size", "300000")],
    );
    let producer = Producer::new(config).await.unwrap();
    let per_partition = 40_000;
    let mut pending = Vec::new();
    // In bursts with pauses about the linger: batches fall ready half full, and a
    // request holds one of them at most.
    for burst in 0..per_partition / 1_000 {
        for i in burst * 1_000..(burst + 1) * 1_000 {
            for p in 0..4 {
                let value = format!("partition {p} record {i:08} of a compressible run of text");
                pending.push(
                    producer
                        .send(ProducerRecord::new(&topic, value).partition(p))
                        .await
                        .unwrap(),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    for d in pending {
        d.await.unwrap();
    }
    producer.close(Duration::from_secs(10)).await.unwrap();
    for p in 0..4 {
        let records = read_with_rskafka(&bootstrap, &topic, p, per_partition).await;
        assert_eq!(records.len(), per_partition, "partition {p}");
        for (i, r) in records.iter().enumerate() {
            let want = format!("partition {p} record {i:08} of a compressible run of text");
            assert_eq!(
                r.record.value.as_deref(),
                Some(want.as_bytes()),
                "partition {p}"
            );
        }
    }
}
