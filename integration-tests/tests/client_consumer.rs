//! The partition-level consumer against the real broker.
//!
//! Data is produced with hand-built Produce requests (batches from `BatchBuilder`),
//! and transactions are driven by hand with the generated messages, so these tests
//! depend on nothing but the wire layer and the consumer.
// Helpers outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use integration_tests::{create_random_topic, random_topic, require_broker};
use kafka_wire::ErrorCode;
use kafka_wire::client::Client;
use kafka_wire::client::cluster::Lane;
use kafka_wire::client::config::{ClientConfig, ConsumerConfig};
use kafka_wire::client::connection::Connection;
use kafka_wire::client::consumer::{Consumer, ConsumerRecord};
use kafka_wire::compression::Compression;
use kafka_wire::protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_wire::protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_wire::protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest,
    ProduceRequest,
};
use kafka_wire::records::{BatchBuilder, BatchParams, Header};

/// Upper bound for any wait on the broker in these tests.
const DEADLINE: Duration = Duration::from_secs(15);

async fn client(bootstrap: &str) -> Client {
    Client::connect(ClientConfig::new(bootstrap).unwrap())
        .await
        .unwrap()
}

async fn create_topic(client: &Client, partitions: i32) -> String {
    create_random_topic(client, "consumer", partitions).await
}

fn consumer_config(bootstrap: &str, extra: &[(&str, &str)]) -> ConsumerConfig {
    let mut props = BTreeMap::from([
        ("bootstrap.servers".to_string(), bootstrap.to_string()),
        ("fetch.max.wait.ms".to_string(), "200".to_string()),
    ]);
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    ConsumerConfig::from_properties(&props).unwrap()
}

/// Encodes `values` as one batch; `timestamp(i)` gives each record's timestamp.
fn batch(values: &[String], params: BatchParams, timestamp: impl Fn(usize) -> i64) -> Bytes {
    let mut b = BatchBuilder::new(params);
    for (i, v) in values.iter().enumerate() {
        let headers = [Header::new("i", Some(Bytes::from(i.to_string())))];
        b.append(
            timestamp(i),
            Some(v.as_bytes()),
            Some(v.as_bytes()),
            &headers,
        )
        .unwrap();
    }
    b.finish().unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sends one batch to the partition's leader, retrying while a new topic's
/// leadership settles; returns the base offset.
async fn produce_batch(
    client: &Client,
    topic: &str,
    partition: i32,
    records: Bytes,
    transactional_id: Option<&str>,
) -> i64 {
    let request = ProduceRequest {
        transactional_id: transactional_id.map(str::to_string),
        acks: -1,
        timeout_ms: 10_000,
        topic_data: vec![TopicProduceData {
            name: topic.to_string(),
            partition_data: vec![PartitionProduceData {
                index: partition,
                records: Some(records),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let deadline = Instant::now() + DEADLINE;
    loop {
        let attempt = async {
            let (leader, _) = client.leader(topic, partition).await?;
            let conn = client.connection(leader, Lane::Produce).await?;
            // v11 at most: these transactions are driven as version 1, and a
            // broker reads Produce v12 in a transaction as a version 2 client.
            let version = conn.version_at_most::<ProduceRequest>(11)?;
            conn.call_version(&request, version).await
        };
        let code = match attempt.await {
            Ok(response) => {
                let p = &response.responses[0].partition_responses[0];
                let code = ErrorCode::from_code(p.error_code);
                if code.is_ok() {
                    return p.base_offset;
                }
                code
            }
            Err(e) => e.code().unwrap_or(ErrorCode::LeaderNotAvailable),
        };
        assert!(
            code.is_retriable() && Instant::now() < deadline,
            "produce to {topic}-{partition}: {code}"
        );
        client.invalidate_topic(topic);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn produce(client: &Client, topic: &str, partition: i32, values: &[String]) -> i64 {
    let ts = now_ms();
    produce_batch(
        client,
        topic,
        partition,
        batch(values, BatchParams::default(), |_| ts),
        None,
    )
    .await
}

fn values(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

fn text(r: &ConsumerRecord) -> String {
    String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).unwrap()
}

/// Polls until `count` records arrived (or fails after `DEADLINE`).
async fn consume(consumer: &mut Consumer, count: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    while out.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "got {} of {count} records: {out:?}",
            out.len()
        );
        let records = consumer.poll_for(left).await.unwrap();
        assert!(records.len() <= consumer.config().max_poll_records);
        out.extend(records);
    }
    out
}

#[tokio::test]
async fn every_record_arrives_in_order_with_contiguous_offsets() {
    let bootstrap = require_broker!();
    let client = client(&bootstrap).await;
    let topic = create_topic(&client, 3).await;
    // One uncompressed, one gzip and one zstd batch per partition.
    let codecs = [Compression::None, Compression::Gzip, Compression::Zstd];
    let ts = now_ms();
    for p in 0..3 {
        for (b, compression) in codecs.into_iter().enumerate() {
            let params = BatchParams {
                compression,
                ..BatchParams::default()
            };
            let data = batch(
                &values(&format!("p{p}-"), b * 50..(b + 1) * 50),
                params,
                |_| ts,
            );
            produce_batch(&client, &topic, p, data, None).await;
        }
    }
    let config = consumer_config(
        &bootstrap,
        &[
            ("auto.offset.reset", "earliest"),
            ("max.poll.records", "37"),
        ],
    );
    let mut consumer = Consumer::with_client(client.clone(), config);
    consumer.assign((0..3).map(|p| (topic.as_str(), p)));
    let records = consume(&mut consumer, 450).await;
    assert_eq!(records.len(), 450);
    let mut by_partition: HashMap<i32, Vec<&ConsumerRecord>> = HashMap::new();
    for r in &records {
        assert_eq!(&*r.topic, topic);
        by_partition.entry(r.partition).or_default().push(r);
    }
    for p in 0..3 {
        let rs = &by_partition[&p];
        let offsets: Vec<i64> = rs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..150).collect::<Vec<i64>>(), "partition {p}");
        let got: Vec<String> = rs.iter().map(|r| text(r)).collect();
        assert_eq!(got, values(&format!("p{p}-"), 0..150));
        assert!(rs.iter().all(|r| r.key == r.value && r.headers.len() == 1));
        assert!(rs.iter().all(|r| r.leader_epoch.is_some()));
    }
    let positions = consumer.positions();
    assert!(
        (0..3).all(|p| positions[&(topic.clone(), p)] == 150),
        "{positions:?}"
    );
    let offsets = consumer.partition_offsets(&topic, 0).unwrap();
    assert_eq!(offsets.high_watermark, 150);
    assert!(
        consumer
            .poll_for(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    consumer.close().await;
}

#[tokio::test]
async fn tiny_fetch_limits_still_return_one_whole_batch_per_fetch() {
    let bootstrap = require_broker!();
    let client = client(&bootstrap).await;
    let topic = create_topic(&client, 1).await;
    for b in 0..5 {
        produce(&client, &topic, 0, &values("v", b * 10..(b + 1) * 10)).await;
    }
    let config = consumer_config(
        &bootstrap,
        &[
            ("auto.offset.reset", "earliest"),
            ("fetch.max.bytes", "1"),
            ("max.partition.fetch.bytes", "1"),
        ],
    );
    let mut consumer = Consumer::with_client(client.clone(), config);
    consumer.assign([(topic.as_str(), 0)]);
    let deadline = Instant::now() + DEADLINE;
    let mut offsets = Vec::new();
    while offsets.len() < 50 {
        assert!(Instant::now() < deadline, "got {offsets:?}");
        let batches = tokio::time::timeout(DEADLINE, consumer.poll_batches())
            .await
            .unwrap()
            .unwrap();
        for f in batches {
            assert_eq!(f.records.len(), 10, "one batch per fetch (KIP-74)");
            offsets.extend(f.records.iter().map(|r| r.offset));
        }
    }
    assert_eq!(offsets, (0..50).collect::<Vec<i64>>());
    consumer.close().await;
}

#[tokio::test]
async fn a_wrong_leader_epoch_is_corrected_from_metadata() {
    let bootstrap = require_broker!();
    let client = client(&bootstrap).await;
    let topic = create_topic(&client, 1).await;
    produce(&client, &topic, 0, &values("v", 0..5)).await;
    // Poison the cached leader epoch: the broker answers UNKNOWN_LEADER_EPOCH to
    // fetches (and list offsets) that carry it, until metadata is asked again.
    let (leader, epoch) = client.leader(&topic, 0).await.unwrap();
    client.update_leader(&topic, 0, leader, epoch + 5, None);
    assert_eq!(client.leader(&topic, 0).await.unwrap(), (leader, epoch + 5));

    let config = consumer_config(&bootstrap, &[("auto.offset.reset", "earliest")]);
    let mut consumer = Consumer::with_client(client.clone(), config);
    // The reset (ListOffsets) and the fetch both meet the wrong epoch.
    consumer.assign([(topic.as_str(), 0)]);
    let got = consume(&mut consumer, 5).await;
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(client.leader(&topic, 0).await.unwrap(), (leader, epoch));
    consumer.close().await;
}

#[tokio::test]
async fn seeks_to_offsets_beginning_end_and_timestamps() {
    let bootstrap = require_broker!();
    let client = client(&bootstrap).await;
    let topic = create_topic(&client, 1).await;
    let t0 = now_ms() - 60_000;
    let ten = values("v", 0..10);
    let data = batch(&ten, BatchParams::default(), |i| t0 + i as i64 * 1_000);
    produce_batch(&client, &topic, 0, data, None).await;

    let config = consumer_config(&bootstrap, &[("auto.offset.reset", "latest")]);
    let mut consumer = Consumer::with_client(client.clone(), config);
    consumer.assign([(topic.as_str(), 0)]);
    assert_eq!(
        consumer.position(&topic, 0).await.unwrap(),
        Some(10),
        "latest"
    );
    assert!(
        consumer
            .poll_for(Duration::from_millis(400))
            .await
            .unwrap()
            .is_empty()
    );

    assert!(consumer.seek(&topic, 0, 5));
    let got = consume(&mut consumer, 5).await;
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [5, 6, 7, 8, 9]
    );

    consumer
        .seek_to_beginning([(topic.as_str(), 0)])
        .await
        .unwrap();
    assert_eq!(consumer.position(&topic, 0).await.unwrap(), Some(0));
    let got = consume(&mut consumer, 10).await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ten);

    consumer
        .seek_to_timestamp([(topic.as_str(), 0)], t0 + 3_500)
        .await
        .unwrap();
    let got = consume(&mut consumer, 6).await;
    assert_eq!(got[0].offset, 4);
    assert_eq!(got[0].timestamp, t0 + 4_000);

    // No record that late: the end.
    let none: [(&str, i32); 0] = [];
    consumer
        .seek_to_timestamp(none, now_ms() + 3_600_000)
        .await
        .unwrap();
    assert_eq!(consumer.position(&topic, 0).await.unwrap(), Some(10));

    consumer.seek(&topic, 0, 2);
    consumer.seek_to_end(none).await.unwrap();
    assert_eq!(consumer.position(&topic, 0).await.unwrap(), Some(10));
    produce(&client, &topic, 0, &values("late", 0..2)).await;
    let got = consume(&mut consumer, 2).await;
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [10, 11]);
    assert_eq!(consumer.positions()[&(topic.clone(), 0)], 12);

    // Unassigned partitions are not sought.
    assert!(!consumer.seek(&topic, 7, 0));
    consumer.close().await;
}

#[tokio::test]
async fn offset_out_of_range_follows_auto_offset_reset() {
    let bootstrap = require_broker!();
    let client = client(&bootstrap).await;
    let topic = create_topic(&client, 1).await;
    produce(&client, &topic, 0, &values("r", 0..10)).await;

    // earliest: back to offset 0.
    let mut earliest = Consumer::with_client(
        client.clone(),
        consumer_config(&bootstrap, &[("auto.offset.reset", "earliest")]),
    );
    earliest.assign([(topic.as_str(), 0)]);
    earliest.seek(&topic, 0, 1_000);
    let got = consume(&mut earliest, 10).await;
    assert_eq!(got[0].offset, 0);
    assert_eq!(got.len(), 10);
    earliest.close().await;

    // latest: to the end, then only new records.
    let mut latest = Consumer::with_client(
        client.clone(),
        consumer_config(&bootstrap, &[("auto.offset.reset", "latest")]),
    );
    latest.assign([(topic.as_str(), 0)]);
    latest.seek(&topic, 0, 1_000);
    let deadline = Instant::now() + DEADLINE;
    while latest.positions().get(&(topic.clone(), 0)) != Some(&10) {
        assert!(
            Instant::now() < deadline,
            "never reset: {:?}",
            latest.positions()
        );
        assert!(
            latest
                .poll_for(Duration::from_millis(100))
                .await
                .unwrap()
                .is_empty()
        );
    }
    produce(&client, &topic, 0, &values("new", 0..1)).await;
    let got = consume(&mut latest, 1).await;
    assert_eq!((got[0].offset, text(&got[0])), (10, "new0".to_string()));
    latest.close().await;

    // none: an error to the caller, for an out-of-range seek and for no position.
    let mut none = Consumer::with_client(
        client.clone(),
        consumer_config(&bootstrap, &[("auto.offset.reset", "none")]),
    );
    none.assign([(topic.as_str(), 0)]);
    let err = tokio::time::timeout(DEADLINE, none.poll())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::OffsetOutOfRange), "{err}");
    none.seek(&topic, 0, 1_000);
    let err = tokio::time::timeout(DEADLINE, none.poll())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::OffsetOutOfRange), "{err}");
    assert!(err.to_string().contains("1000"), "{err}");
    assert!(none.position(&topic, 0).await.is_err());
    none.seek(&topic, 0, 9);
    let got = consume(&mut none, 1).await;
    assert_eq!(got[0].offset, 9);
    none.close().await;
}

#[tokio::test]
async fn fetch_sessions_stay_incremental_and_forget_removed_partitions() {
    let bootstrap = require_broker!();
    let client = client(&bootstrap).await;
    let topic = create_topic(&client, 2).await;
    let config = consumer_config(
        &bootstrap,
        &[
            ("auto.offset.reset", "earliest"),
            ("fetch.max.wait.ms", "100"),
        ],
    );
    let mut consumer = Consumer::with_client(client.clone(), config);
    consumer.assign([(topic.as_str(), 0), (topic.as_str(), 1)]);
    let started = Instant::now();
    for round in 0..15 {
        for p in 0..2 {
            produce(&client, &topic, p, &values(&format!("{p}-{round}-"), 0..3)).await;
        }
        let got = consume(&mut consumer, 6).await;
        assert_eq!(got.len(), 6, "round {round}");
    }
    let stats = consumer.fetch_stats();
    assert!(stats.incremental_fetches >= 15, "{stats:?}");
    assert!(stats.full_fetches <= 2, "{stats:?}");
    assert_eq!(stats.session_resets, 0, "{stats:?}");

    // Drop partition 1: it must be forgotten in the session, not served any more.
    consumer.assign([(topic.as_str(), 0)]);
    for round in 0..5 {
        produce(&client, &topic, 1, &values("ignored", 0..5)).await;
        produce(&client, &topic, 0, &values(&format!("kept{round}-"), 0..2)).await;
        let got = consume(&mut consumer, 2).await;
        assert!(got.iter().all(|r| r.partition == 0), "{got:?}");
    }
    assert!(
        consumer
            .poll_for(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    let after = consumer.fetch_stats();
    // Idle fetches long-poll for fetch.max.wait.ms: no busy loop.
    let bound = 4 * 20 + started.elapsed().as_millis() as u64 / 50;
    assert!(after.incremental_fetches <= bound, "{after:?} > {bound}");
    assert_eq!(after.unrequested_partitions, 0, "{after:?}");
    assert_eq!(after.full_fetches, stats.full_fetches, "{after:?}");
    assert!(after.incremental_fetches > stats.incremental_fetches);
    assert_eq!(consumer.positions().len(), 1);
    consumer.close().await;
}

/// Polls until the consumer knows where `partition` ends (at most 3 s).
async fn log_end_of(consumer: &mut Consumer, topic: &str, partition: i32) -> i64 {
    let started = Instant::now();
    loop {
        let hw = consumer
            .partition_offsets(topic, partition)
            .map_or(-1, |o| o.high_watermark);
        if hw >= 0 || started.elapsed() > Duration::from_secs(3) {
            return hw;
        }
        consumer.poll_for(Duration::from_millis(100)).await.unwrap();
    }
}

#[tokio::test]
async fn an_idle_partition_assigned_again_still_learns_where_its_log_ends() {
    let bootstrap = require_broker!();
    let client = client(&bootstrap).await;
    let topic = create_topic(&client, 2).await;
    produce(&client, &topic, 0, &values("a", 0..3)).await;
    let config = consumer_config(
        &bootstrap,
        &[
            ("auto.offset.reset", "earliest"),
            ("fetch.max.wait.ms", "100"),
        ],
    );
    let mut consumer = Consumer::with_client(client.clone(), config);
    let both = [(topic.as_str(), 0), (topic.as_str(), 1)];
    consumer.assign(both);
    assert_eq!(consume(&mut consumer, 3).await.len(), 3);
    assert_eq!(log_end_of(&mut consumer, &topic, 1).await, 0);
    // Taken away and given back (a rebalance): the partition's state is new,
    // while the broker's fetch session still holds it unchanged and would not
    // report it in an incremental response.
    consumer.assign(Vec::<(&str, i32)>::new());
    consumer.assign(both);
    assert_eq!(consume(&mut consumer, 3).await.len(), 3);
    assert_eq!(log_end_of(&mut consumer, &topic, 1).await, 0);
    assert_eq!(log_end_of(&mut consumer, &topic, 0).await, 3);
    consumer.close().await;
}

#[tokio::test]
async fn paused_partitions_are_not_fetched_until_resumed() {
    let bootstrap = require_broker!();
    let client = client(&bootstrap).await;
    let topic = create_topic(&client, 2).await;
    for p in 0..2 {
        produce(&client, &topic, p, &values(&format!("a{p}-"), 0..5)).await;
    }
    let config = consumer_config(&bootstrap, &[("auto.offset.reset", "earliest")]);
    let mut consumer = Consumer::with_client(client.clone(), config);
    consumer.assign([(topic.as_str(), 0), (topic.as_str(), 1)]);
    consumer.pause([(topic.as_str(), 0)]);
    assert_eq!(consumer.paused(), [(topic.clone(), 0)]);
    let got = consume(&mut consumer, 5).await;
    assert!(got.iter().all(|r| r.partition == 1), "{got:?}");
    produce(&client, &topic, 1, &values("b1-", 0..3)).await;
    let got = consume(&mut consumer, 3).await;
    assert!(got.iter().all(|r| r.partition == 1), "{got:?}");
    assert!(
        consumer
            .poll_for(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );

    consumer.resume([(topic.as_str(), 0)]);
    let got = consume(&mut consumer, 5).await;
    let seen: Vec<(i32, i64)> = got.iter().map(|r| (r.partition, r.offset)).collect();
    assert_eq!(seen, (0..5).map(|o| (0, o)).collect::<Vec<_>>());

    // Everything paused: poll returns at once instead of waiting.
    consumer.pause([(topic.as_str(), 0), (topic.as_str(), 1)]);
    let quick = tokio::time::timeout(Duration::from_secs(1), consumer.poll()).await;
    assert!(quick.unwrap().unwrap().is_empty());
    consumer.close().await;
}

/// A transactional producer driven by hand with the generated messages
/// (transaction protocol v1: AddPartitionsToTxn, then EndTxn).
struct Txn {
    client: Client,
    coordinator: Connection,
    id: String,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
}

/// Retries `op` while it reports a retriable error code (coordinator loading,
/// concurrent transactions), for at most `DEADLINE`; returns the successful result.
async fn retry_code<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (i16, T)>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (code, value) = op().await;
        let code = ErrorCode::from_code(code);
        if code.is_ok() {
            return value;
        }
        assert!(
            code.is_retriable() && Instant::now() < deadline,
            "{what}: {code}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls `request` at `version` (the highest common one when `None`) until it
/// answers without a retriable error; `code` picks the error out of the response.
async fn call_until_ok<R, C>(
    conn: &Connection,
    request: &R,
    version: Option<i16>,
    code: C,
) -> R::Response
where
    R: kafka_wire::protocol::Request,
    C: Fn(&R::Response) -> i16,
{
    retry_code(R::NAME, || async {
        let r = match version {
            Some(v) => conn.call_version(request, v).await.unwrap(),
            None => conn.call(request).await.unwrap(),
        };
        (code(&r), r)
    })
    .await
}

fn add_partitions_code(r: &kafka_wire::protocol::messages::AddPartitionsToTxnResponse) -> i16 {
    let partition_codes = r.results_by_topic_v3_and_below.iter().flat_map(|t| {
        t.results_by_partition
            .iter()
            .map(|p| p.partition_error_code)
    });
    partition_codes
        .chain([r.error_code])
        .find(|c| *c != 0)
        .unwrap_or(0)
}

impl Txn {
    async fn init(client: &Client, id: String) -> Txn {
        let find = FindCoordinatorRequest {
            key: id.clone(),
            key_type: 1,
            ..Default::default()
        };
        let control = client.any_connection(Lane::Control).await.unwrap();
        let r = call_until_ok(&control, &find, Some(3), |r| r.error_code).await;
        let address = format!("{}:{}", r.host, r.port);
        let coordinator = client.connection_to(&address, Lane::Control).await.unwrap();
        let init = InitProducerIdRequest {
            transactional_id: Some(id.clone()),
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        };
        let r = call_until_ok(&coordinator, &init, None, |r| r.error_code).await;
        Txn {
            client: client.clone(),
            coordinator,
            id,
            producer_id: r.producer_id,
            epoch: r.producer_epoch,
            sequence: 0,
        }
    }

    /// One transaction writing `values` to `topic-0`, committed or aborted.
    async fn run(&mut self, topic: &str, values: &[String], commit: bool) {
        self.write(topic, values).await;
        self.end(commit).await;
    }

    /// Adds `topic-0` to the transaction and writes `values` there.
    async fn write(&mut self, topic: &str, values: &[String]) {
        let add = AddPartitionsToTxnRequest {
            v3_and_below_transactional_id: self.id.clone(),
            v3_and_below_producer_id: self.producer_id,
            v3_and_below_producer_epoch: self.epoch,
            v3_and_below_topics: vec![AddPartitionsToTxnTopic {
                name: topic.to_string(),
                partitions: vec![0],
                ..Default::default()
            }],
            ..Default::default()
        };
        call_until_ok(&self.coordinator, &add, Some(3), add_partitions_code).await;
        let params = BatchParams {
            transactional: true,
            producer_id: self.producer_id,
            producer_epoch: self.epoch,
            base_sequence: self.sequence,
            ..BatchParams::default()
        };
        let ts = now_ms();
        let data = batch(values, params, |_| ts);
        produce_batch(&self.client, topic, 0, data, Some(&self.id)).await;
        self.sequence += values.len() as i32;
    }

    /// EndTxn: commits or aborts the open transaction.
    async fn end(&self, commit: bool) {
        let end = EndTxnRequest {
            transactional_id: self.id.clone(),
            producer_id: self.producer_id,
            producer_epoch: self.epoch,
            committed: commit,
            ..Default::default()
        };
        // EndTxn v4: v5 is transaction version 2, which bumps the epoch.
        call_until_ok(&self.coordinator, &end, Some(4), |r| r.error_code).await;
    }
}

#[tokio::test]
async fn aborted_records_are_invisible_to_read_committed() {
    let bootstrap = require_broker!();
    let client = client(&bootstrap).await;
    let topic = create_topic(&client, 1).await;
    let mut txn = Txn::init(&client, random_topic("txn")).await;
    txn.run(&topic, &values("aborted", 0..3), false).await; // offsets 0-2, marker 3
    txn.run(&topic, &values("committed", 0..2), true).await; // offsets 4-5, marker 6
    txn.run(&topic, &values("aborted-again", 0..2), false).await; // offsets 7-8
    // EndTxn answers before the coordinator has written the marker, so this plain
    // record lands at 9 or 10, on either side of the last abort marker.
    produce(&client, &topic, 0, &values("plain", 0..1)).await;

    let committed_config = consumer_config(
        &bootstrap,
        &[
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
        ],
    );
    let mut committed = Consumer::with_client(client.clone(), committed_config);
    committed.assign([(topic.as_str(), 0)]);
    let got = consume(&mut committed, 3).await;
    let seen: Vec<String> = got.iter().map(text).collect();
    assert_eq!(seen, ["committed0", "committed1", "plain0"]);
    assert_eq!((got[0].offset, got[1].offset), (4, 5));
    assert!([9, 10].contains(&got[2].offset), "{got:?}");
    let plain_offset = got[2].offset;
    assert!(
        committed
            .poll_for(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    // Past every marker: 8 data records and 3 markers.
    assert_eq!(committed.positions()[&(topic.clone(), 0)], 11);
    committed.close().await;

    let uncommitted_config = consumer_config(&bootstrap, &[("auto.offset.reset", "earliest")]);
    let mut uncommitted = Consumer::with_client(client.clone(), uncommitted_config);
    uncommitted.assign([(topic.as_str(), 0)]);
    let got = consume(&mut uncommitted, 8).await;
    let seen: Vec<String> = got.iter().map(text).collect();
    let expected: Vec<String> = [
        values("aborted", 0..3),
        values("committed", 0..2),
        values("aborted-again", 0..2),
        values("plain", 0..1),
    ]
    .concat();
    assert_eq!(seen, expected, "aborted records, and no control records");
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [0, 1, 2, 4, 5, 7, 8, plain_offset]);
    assert!(
        uncommitted
            .poll_for(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(uncommitted.positions()[&(topic.clone(), 0)], 11);
    uncommitted.close().await;
}

#[tokio::test]
async fn read_committed_stops_at_an_open_transaction() {
    let bootstrap = require_broker!();
    let client = client(&bootstrap).await;
    let topic = create_topic(&client, 1).await;
    produce(&client, &topic, 0, &values("before", 0..2)).await; // offsets 0-1
    let mut txn = Txn::init(&client, random_topic("txn-open")).await;
    // Open a transaction and leave it open: write without EndTxn.
    txn.write(&topic, &values("open", 0..2)).await;
    produce(&client, &topic, 0, &values("after", 0..1)).await; // offset 4, above the LSO

    let config = consumer_config(
        &bootstrap,
        &[
            ("auto.offset.reset", "earliest"),
            ("isolation.level", "read_committed"),
        ],
    );
    let mut consumer = Consumer::with_client(client.clone(), config);
    consumer.assign([(topic.as_str(), 0)]);
    let got = consume(&mut consumer, 2).await;
    assert_eq!(
        got.iter().map(text).collect::<Vec<_>>(),
        ["before0", "before1"]
    );
    assert!(
        consumer
            .poll_for(Duration::from_millis(500))
            .await
            .unwrap()
            .is_empty()
    );
    let offsets = consumer.partition_offsets(&topic, 0).unwrap();
    assert_eq!(offsets.last_stable_offset, 2, "{offsets:?}");
    assert_eq!(offsets.high_watermark, 5, "{offsets:?}");

    // Committing releases the rest.
    txn.end(true).await;
    let got = consume(&mut consumer, 3).await;
    let seen: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(seen, [2, 3, 4]);
    consumer.close().await;
}

#[tokio::test]
async fn end_offsets_and_at_end_tell_a_drained_partition() {
    let bootstrap = require_broker!();
    let client = client(&bootstrap).await;
    let topic = create_topic(&client, 2).await;
    produce(&client, &topic, 0, &values("a", 0..5)).await;
    produce(&client, &topic, 1, &values("b", 0..3)).await;
    let config = consumer_config(&bootstrap, &[("auto.offset.reset", "earliest")]);
    let mut consumer = Consumer::with_client(client.clone(), config);
    consumer.assign((0..2).map(|p| (topic.as_str(), p)));
    assert_eq!(consumer.at_end(&topic, 0), None, "nothing fetched yet");
    let partitions = [(topic.clone(), 0), (topic.clone(), 1)];
    let ends = consumer.end_offsets(&partitions).await.unwrap();
    assert_eq!(
        ends,
        BTreeMap::from([(partitions[0].clone(), 5), (partitions[1].clone(), 3)])
    );
    consume(&mut consumer, 8).await;
    assert_eq!(consumer.at_end(&topic, 0), Some(true));
    assert_eq!(consumer.at_end(&topic, 1), Some(true));
    produce(&client, &topic, 0, &values("c", 0..2)).await;
    let ends = consumer.end_offsets(&partitions[..1]).await.unwrap();
    assert_eq!(ends[&partitions[0]], 7);
    consumer.close().await;
}
