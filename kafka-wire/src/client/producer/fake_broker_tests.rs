//! The producer against a fake broker on loopback TCP that enforces a topic's
//! `max.message.bytes` and the idempotent sequence checks, for what a real broker
//! only does with special topic settings: refuse batches as too large, and answer
//! the in-flight batches behind them OUT_OF_ORDER_SEQUENCE_NUMBER.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::*;
use crate::client::fake_broker::{
    Answer, Request, api_versions, bind, client_props, frame_of, one_broker_metadata, serve_all,
};
use crate::compression::Compression;
use crate::error_code::ErrorCode;
use crate::protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use crate::protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, MetadataRequest, ProduceRequest,
    ProduceResponse,
};
use crate::protocol::{Message, Uuid};
use crate::records::{DecodeOptions, decode_records};

const TOPIC: &str = "t";
const PARTITIONS: i32 = 2;

/// One partition's log and the producer state the broker keeps for it.
#[derive(Default)]
struct PartitionLog {
    values: Vec<Bytes>,
    /// (first, last) sequence of the last batch written.
    last: Option<(i32, i32)>,
}

#[derive(Default)]
struct Fake {
    port: u16,
    max_message_bytes: usize,
    logs: Mutex<HashMap<i32, PartitionLog>>,
    too_large: AtomicUsize,
    init_producer_ids: AtomicUsize,
    /// Codecs of the batches written.
    codecs: Mutex<Vec<Compression>>,
}

impl Fake {
    async fn start(max_message_bytes: usize) -> Arc<Fake> {
        let (listener, port) = bind().await;
        let fake = Arc::new(Fake {
            port,
            max_message_bytes,
            ..Default::default()
        });
        serve_all(listener, &fake, Fake::answer);
        fake
    }

    async fn answer(self: Arc<Self>, request: Request) -> Answer {
        let (version, cid, mut body) = (request.version, request.cid, request.body);
        let out = match request.api {
            ApiKey::ApiVersions => {
                let keys = [
                    (ApiKey::ApiVersions, 3),
                    (ApiKey::Metadata, MetadataRequest::VALID_VERSIONS.max),
                    (
                        ApiKey::InitProducerId,
                        InitProducerIdRequest::VALID_VERSIONS.max,
                    ),
                    // Topic names, not ids.
                    (ApiKey::Produce, 11),
                ];
                api_versions(&keys, version, cid)
            }
            ApiKey::Metadata => {
                let topics = [(TOPIC, Uuid::default(), PARTITIONS)];
                frame_of(&one_broker_metadata(self.port, &topics), version, cid)
            }
            ApiKey::InitProducerId => {
                self.init_producer_ids.fetch_add(1, Ordering::SeqCst);
                let response = InitProducerIdResponse {
                    producer_id: 7,
                    producer_epoch: 0,
                    ..Default::default()
                };
                frame_of(&response, version, cid)
            }
            ApiKey::Produce => {
                // Slow answers keep several batches of a partition in flight.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                let request = ProduceRequest::decode(&mut body, version).unwrap();
                frame_of(&self.produce(&request), version, cid)
            }
            other => panic!("fake broker got {other:?}"),
        };
        out.into()
    }

    /// Appends each partition's batch as a broker would: size check first, then the
    /// sequence check against the last batch written.
    fn produce(&self, request: &ProduceRequest) -> ProduceResponse {
        let mut logs = self.logs.lock().unwrap();
        let mut responses = Vec::new();
        for t in &request.topic_data {
            let mut partition_responses = Vec::new();
            for p in &t.partition_data {
                let bytes = p.records.clone().unwrap_or_default();
                let log = logs.entry(p.index).or_default();
                let mut answer = PartitionProduceResponse {
                    index: p.index,
                    base_offset: -1,
                    log_append_time_ms: -1,
                    ..Default::default()
                };
                let code = if bytes.len() > self.max_message_bytes {
                    self.too_large.fetch_add(1, Ordering::SeqCst);
                    ErrorCode::MessageTooLarge
                } else {
                    let set = decode_records(bytes, DecodeOptions::default()).unwrap();
                    let batch = &set.batches[0];
                    let first = batch.header.base_sequence;
                    let last = batch.header.last_sequence();
                    match log.last {
                        Some(seen) if seen == (first, last) => ErrorCode::DuplicateSequenceNumber,
                        Some((_, prev)) if first != prev.wrapping_add(1) => {
                            ErrorCode::OutOfOrderSequenceNumber
                        }
                        _ => {
                            answer.base_offset = log.values.len() as i64;
                            for r in batch.records() {
                                log.values.push(r.unwrap().value.unwrap_or_default());
                            }
                            log.last = Some((first, last));
                            self.codecs.lock().unwrap().push(batch.compression());
                            ErrorCode::NoError
                        }
                    }
                };
                answer.error_code = code.code();
                partition_responses.push(answer);
            }
            responses.push(TopicProduceResponse {
                name: t.name.clone(),
                partition_responses,
                ..Default::default()
            });
        }
        ProduceResponse {
            responses,
            ..Default::default()
        }
    }
}

async fn producer(fake: &Fake, compression: &str) -> Producer {
    let mut props = client_props(fake.port);
    props.extend(
        [
            ("compression.type", compression),
            ("batch.size", "16384"),
            ("linger.ms", "20"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Producer::new(ProducerConfig::from_properties(&props).unwrap())
        .await
        .unwrap()
}

/// Bytes that do not compress: a codec cannot hide a batch's size.
fn noise(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test]
async fn batches_refused_as_too_large_are_split_and_every_record_lands_once_in_order() {
    for (codec, compression) in [("none", Compression::None), ("lz4", Compression::Lz4)] {
        let fake = Fake::start(5_000).await;
        let producer = producer(&fake, codec).await;
        let mut sent = Vec::new();
        for i in 0..300u64 {
            let value = noise(i, 900);
            let record = ProducerRecord::new(TOPIC, value.clone())
                .partition((i % PARTITIONS as u64) as i32)
                .key(i.to_string());
            sent.push((value, producer.send(record).await.unwrap()));
            if i % 8 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        let mut next = HashMap::new();
        for (value, future) in sent {
            let m = future.await.unwrap();
            let logs = fake.logs.lock().unwrap();
            let log = &logs[&m.partition].values;
            assert_eq!(log[m.offset as usize], value, "{codec}: offset of a record");
            // Offsets come back in send order per partition.
            let expected = next.entry(m.partition).or_insert(0);
            assert_eq!(m.offset, *expected, "{codec}");
            *expected += 1;
        }
        let logs = fake.logs.lock().unwrap();
        assert_eq!(logs.values().map(|l| l.values.len()).sum::<usize>(), 300);
        assert!(
            fake.too_large.load(Ordering::SeqCst) > 0,
            "{codec}: no split"
        );
        assert_eq!(fake.init_producer_ids.load(Ordering::SeqCst), 1, "no bump");
        assert!(
            fake.codecs
                .lock()
                .unwrap()
                .iter()
                .all(|&c| c == compression),
            "{codec}: split parts keep the codec"
        );
    }
}

#[tokio::test]
async fn a_single_record_too_large_fails_alone_and_later_records_are_renumbered() {
    let fake = Fake::start(5_000).await;
    let producer = producer(&fake, "none").await;
    let mut futures = Vec::new();
    for i in 0..40u64 {
        let len = if i == 17 { 8_000 } else { 500 };
        let record = ProducerRecord::new(TOPIC, noise(i, len)).partition(0);
        futures.push((i, producer.send(record).await.unwrap()));
    }
    let mut offsets = Vec::new();
    for (i, future) in futures {
        match future.await {
            Ok(m) => offsets.push(m.offset),
            Err(e) => {
                assert_eq!(i, 17, "{e}");
                assert_eq!(e.code(), Some(ErrorCode::MessageTooLarge));
                let text = e.to_string();
                assert!(text.contains("t-0") && text.contains("1 record"), "{text}");
            }
        }
    }
    assert_eq!(offsets, (0..39).collect::<Vec<i64>>());
    let logs = fake.logs.lock().unwrap();
    let expected: Vec<Bytes> = (0..40u64)
        .filter(|&i| i != 17)
        .map(|i| noise(i, 500))
        .collect();
    assert_eq!(logs[&0].values, expected);
    assert_eq!(fake.init_producer_ids.load(Ordering::SeqCst), 1, "no bump");
}
