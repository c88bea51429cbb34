//! The consumer against a scripted fake cluster of two brokers on loopback TCP, for
//! what a single real broker cannot show: a lost fetch session and a KIP-951 leader
//! hint that moves a partition to another broker.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::client::fake_broker::{Answer, Request, api_versions, bind, frame_of, serve_all};
use crate::protocol::Message;
use crate::protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use crate::protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use crate::protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use crate::protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse,
};
use crate::records::{BatchBuilder, BatchParams};

const TOPIC_ID: Uuid = Uuid([7; 16]);

/// What the fetch script sees: the brokers' ports, the node id of the broker asked,
/// the request, and how many fetches the cluster answered before.
type Script = dyn Fn(&[u16], i32, &FetchRequest, usize) -> FetchResponse + Send + Sync;

struct Fake {
    ports: Vec<u16>,
    /// Highest Fetch version offered (13+ identifies topics by id, 12 by name).
    fetch_max: i16,
    script: Box<Script>,
    fetches: Mutex<Vec<(i32, FetchRequest)>>,
    metadata_requests: AtomicUsize,
}

impl Fake {
    /// Starts brokers 1 and 2; metadata says broker 1 leads `t-0` at epoch 0.
    async fn start(fetch_max: i16, script: Box<Script>) -> Arc<Fake> {
        let mut listeners = Vec::new();
        let mut ports = Vec::new();
        for _ in 0..2 {
            let (listener, port) = bind().await;
            listeners.push(listener);
            ports.push(port);
        }
        let fake = Arc::new(Fake {
            ports,
            fetch_max,
            script,
            fetches: Mutex::new(Vec::new()),
            metadata_requests: AtomicUsize::new(0),
        });
        for (i, listener) in listeners.into_iter().enumerate() {
            serve_all(listener, &fake, move |f, request| {
                f.answer(i as i32 + 1, request)
            });
        }
        fake
    }

    fn fetches(&self) -> Vec<(i32, FetchRequest)> {
        self.fetches.lock().unwrap().clone()
    }

    async fn answer(self: Arc<Self>, node: i32, request: Request) -> Answer {
        let (version, cid, mut frame) = (request.version, request.cid, request.body);
        let out = match request.api {
            ApiKey::ApiVersions => {
                // Answer at v0, which every client reads.
                let _ = ApiVersionsRequest::decode(&mut frame, version);
                let keys = [
                    (
                        ApiKey::ApiVersions,
                        ApiVersionsRequest::VALID_VERSIONS.max.min(3),
                    ),
                    (ApiKey::Metadata, MetadataRequest::VALID_VERSIONS.max),
                    (ApiKey::ListOffsets, ListOffsetsRequest::VALID_VERSIONS.max),
                    (ApiKey::Fetch, self.fetch_max),
                ];
                api_versions(&keys, version, cid)
            }
            ApiKey::Metadata => {
                self.metadata_requests.fetch_add(1, Ordering::SeqCst);
                frame_of(&self.metadata(), version, cid)
            }
            ApiKey::ListOffsets => {
                let request = ListOffsetsRequest::decode(&mut frame, version).unwrap();
                let response = ListOffsetsResponse {
                    topics: request
                        .topics
                        .iter()
                        .map(|t| ListOffsetsTopicResponse {
                            name: t.name.clone(),
                            partitions: vec![ListOffsetsPartitionResponse {
                                partition_index: 0,
                                offset: 0,
                                timestamp: -1,
                                ..Default::default()
                            }],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                };
                frame_of(&response, version, cid)
            }
            ApiKey::Fetch => {
                let request = FetchRequest::decode(&mut frame, version).unwrap();
                let nth = {
                    let mut fetches = self.fetches.lock().unwrap();
                    fetches.push((node, request.clone()));
                    fetches.len() - 1
                };
                let response = (self.script)(&self.ports, node, &request, nth);
                if response.throttle_time_ms < 0 {
                    // "Nothing new": long-poll like a broker would.
                    tokio::time::sleep(Duration::from_millis(request.max_wait_ms as u64)).await;
                }
                frame_of(
                    &FetchResponse {
                        throttle_time_ms: 0,
                        ..response
                    },
                    version,
                    cid,
                )
            }
            other => panic!("fake broker got {other:?}"),
        };
        out.into()
    }

    fn metadata(&self) -> MetadataResponse {
        MetadataResponse {
            brokers: self
                .ports
                .iter()
                .enumerate()
                .map(|(i, port)| MetadataResponseBroker {
                    node_id: i as i32 + 1,
                    host: "127.0.0.1".into(),
                    port: i32::from(*port),
                    ..Default::default()
                })
                .collect(),
            cluster_id: Some("fake".into()),
            controller_id: 1,
            topics: vec![MetadataResponseTopic {
                name: Some("t".into()),
                topic_id: TOPIC_ID,
                partitions: vec![MetadataResponsePartition {
                    partition_index: 0,
                    leader_id: 1,
                    leader_epoch: 0,
                    replica_nodes: vec![1, 2],
                    isr_nodes: vec![1, 2],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }
}

/// A batch of `count` records starting at `base` (values are the offsets as text).
fn records(base: i64, count: i64) -> Bytes {
    let mut b = BatchBuilder::new(BatchParams {
        base_offset: base,
        ..BatchParams::default()
    });
    for o in base..base + count {
        b.append(0, None, Some(o.to_string().as_bytes()), &[])
            .unwrap();
    }
    b.finish().unwrap()
}

/// A response for `t-0` carrying `data`, in session `session_id`.
fn partition_response(session_id: i32, p: PartitionData) -> FetchResponse {
    FetchResponse {
        session_id,
        responses: vec![FetchableTopicResponse {
            topic: "t".into(),
            topic_id: TOPIC_ID,
            partitions: vec![PartitionData {
                partition_index: 0,
                high_watermark: 100,
                ..p
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// "Nothing new" in `session_id`, after a long poll.
fn idle(session_id: i32) -> FetchResponse {
    FetchResponse {
        session_id,
        throttle_time_ms: -1,
        ..Default::default()
    }
}

fn fetch_offset(request: &FetchRequest) -> Option<i64> {
    request
        .topics
        .first()?
        .partitions
        .first()
        .map(|p| p.fetch_offset)
}

async fn consumer(fake: &Fake) -> Consumer {
    let mut props = std::collections::BTreeMap::new();
    props.insert(
        "bootstrap.servers".to_string(),
        format!("127.0.0.1:{}", fake.ports[0]),
    );
    props.insert("fetch.max.wait.ms".to_string(), "50".to_string());
    props.insert("auto.offset.reset".to_string(), "earliest".to_string());
    props.insert("retry.backoff.ms".to_string(), "10".to_string());
    let config = ConsumerConfig::from_properties(&props).unwrap();
    let client = Client::connect(config.client.clone()).await.unwrap();
    let mut c = Consumer::with_client(client, config);
    c.assign([("t", 0)]);
    c
}

async fn offsets(c: &mut Consumer, count: usize) -> Vec<i64> {
    let mut out = Vec::new();
    for _ in 0..50 {
        if out.len() >= count {
            break;
        }
        out.extend(
            c.poll_for(Duration::from_millis(200))
                .await
                .unwrap()
                .iter()
                .map(|r| r.offset),
        );
    }
    out
}

#[tokio::test]
async fn a_lost_fetch_session_restarts_with_a_full_fetch_at_the_current_offset() {
    for fetch_max in [FetchRequest::VALID_VERSIONS.max, 12] {
        lost_session_restarts_full(fetch_max).await;
    }
}

async fn lost_session_restarts_full(fetch_max: i16) {
    let fake = Fake::start(
        fetch_max,
        Box::new(move |_, _, request, nth| match nth {
            0 => {
                assert_eq!((request.session_id, request.session_epoch), (0, 0), "full");
                let t = &request.topics[0];
                if fetch_max >= 13 {
                    assert_eq!(t.topic_id, TOPIC_ID, "v13+ names topics by id");
                } else {
                    assert_eq!(t.topic, "t", "v12 names topics by name");
                }
                partition_response(
                    77,
                    PartitionData {
                        records: Some(records(0, 3)),
                        ..Default::default()
                    },
                )
            }
            1 => {
                assert_eq!(
                    (request.session_id, request.session_epoch),
                    (77, 1),
                    "incremental"
                );
                assert_eq!(fetch_offset(request), Some(3), "moved offsets are resent");
                FetchResponse {
                    error_code: ErrorCode::FetchSessionIdNotFound.code(),
                    ..Default::default()
                }
            }
            2 => {
                assert_eq!(
                    (request.session_id, request.session_epoch),
                    (0, 0),
                    "full again"
                );
                assert_eq!(fetch_offset(request), Some(3));
                partition_response(
                    78,
                    PartitionData {
                        records: Some(records(3, 2)),
                        ..Default::default()
                    },
                )
            }
            _ => {
                assert_eq!(request.session_id, 78);
                idle(78)
            }
        }),
    )
    .await;
    let mut c = consumer(&fake).await;
    assert_eq!(offsets(&mut c, 5).await, [0, 1, 2, 3, 4]);
    let stats = c.fetch_stats();
    assert_eq!(
        (stats.full_fetches, stats.session_resets),
        (2, 1),
        "{stats:?}"
    );
    // An unchanged partition is not resent in later incremental fetches.
    assert!(
        c.poll_for(Duration::from_millis(150))
            .await
            .unwrap()
            .is_empty()
    );
    let fetches = fake.fetches();
    assert!(fetches.len() >= 5, "{}", fetches.len());
    assert_eq!(fetch_offset(&fetches[3].1), Some(5));
    assert!(
        fetches[4..]
            .iter()
            .all(|(_, r)| r.topics.is_empty() && r.session_epoch >= 2)
    );
    c.close().await;
}

#[tokio::test]
async fn a_leader_hint_moves_the_partition_to_the_new_broker_without_metadata() {
    let fake = Fake::start(
        FetchRequest::VALID_VERSIONS.max,
        Box::new(|ports, node, request, _| {
            let offset = fetch_offset(request);
            match (node, offset) {
                (1, Some(0)) => partition_response(
                    11,
                    PartitionData {
                        records: Some(records(0, 2)),
                        ..Default::default()
                    },
                ),
                (1, Some(_)) => {
                    let mut r = partition_response(
                        11,
                        PartitionData {
                            error_code: ErrorCode::NotLeaderOrFollower.code(),
                            current_leader: LeaderIdAndEpoch {
                                leader_id: 2,
                                leader_epoch: 1,
                                ..Default::default()
                            },
                            ..Default::default()
                        },
                    );
                    r.node_endpoints = vec![NodeEndpoint {
                        node_id: 2,
                        host: "127.0.0.1".into(),
                        port: i32::from(ports[1]),
                        ..Default::default()
                    }];
                    r
                }
                (2, Some(2)) => {
                    let p = &request.topics[0].partitions[0];
                    assert_eq!(p.current_leader_epoch, 1, "the hinted epoch is sent");
                    partition_response(
                        21,
                        PartitionData {
                            records: Some(records(2, 3)),
                            ..Default::default()
                        },
                    )
                }
                (_, _) => idle(request.session_id),
            }
        }),
    )
    .await;
    let mut c = consumer(&fake).await;
    let before = fake.metadata_requests.load(Ordering::SeqCst);
    assert_eq!(offsets(&mut c, 5).await, [0, 1, 2, 3, 4]);
    assert_eq!(
        fake.metadata_requests.load(Ordering::SeqCst),
        before,
        "no metadata refresh"
    );
    let fetches = fake.fetches();
    let nodes: Vec<i32> = fetches.iter().map(|(n, _)| *n).collect();
    assert_eq!(&nodes[..2], [1, 1]);
    let first_on_2 = fetches
        .iter()
        .find(|(n, _)| *n == 2)
        .map(|(_, r)| fetch_offset(r));
    assert_eq!(first_on_2, Some(Some(2)));
    // Broker 1 is not asked for the partition again (its session is closed).
    assert!(
        fetches[2..]
            .iter()
            .filter(|(n, _)| *n == 1)
            .all(|(_, r)| r.topics.is_empty())
    );
    c.close().await;
}

/// `records(base, count)` with its last byte flipped, so its CRC no longer matches.
fn corrupt_records(base: i64, count: i64) -> Bytes {
    let mut bytes = records(base, count).to_vec();
    if let Some(last) = bytes.last_mut() {
        *last ^= 0xff;
    }
    Bytes::from(bytes)
}

#[tokio::test]
async fn a_bad_batch_found_after_the_next_fetch_left_is_refetched_without_gaps_or_duplicates() {
    // The good batch before the bad one is large, so decoding takes longer than the
    // next fetch's round trip: that fetch (at BAD + 10, from the batch headers) is
    // answered before the bad batch is found.
    const BAD: i64 = 20_000;
    let served_bad = Arc::new(AtomicUsize::new(0));
    let bad = served_bad.clone();
    let fake = Fake::start(
        FetchRequest::VALID_VERSIONS.max,
        Box::new(move |_, _, request, _| {
            let data = match fetch_offset(request) {
                Some(0) if bad.fetch_add(1, Ordering::SeqCst) == 0 => {
                    let mut b = records(0, BAD).to_vec();
                    b.extend_from_slice(&corrupt_records(BAD, 5));
                    b.extend_from_slice(&records(BAD + 5, 5));
                    b
                }
                Some(BAD) => {
                    let mut b = records(BAD, 10).to_vec();
                    b.extend_from_slice(&records(BAD + 10, 5));
                    b
                }
                Some(offset @ (BAD..)) if offset == BAD + 10 => records(BAD + 10, 5).to_vec(),
                _ => return idle(5),
            };
            partition_response(
                5,
                PartitionData {
                    records: Some(Bytes::from(data)),
                    ..Default::default()
                },
            )
        }),
    )
    .await;
    let mut c = consumer(&fake).await;
    let mut seen = Vec::new();
    let mut errors = Vec::new();
    for _ in 0..50 {
        if seen.len() >= (BAD + 15) as usize {
            break;
        }
        match c.poll_for(Duration::from_millis(200)).await {
            Ok(records) => seen.extend(records.iter().map(|r| r.offset)),
            Err(e) => errors.push(e),
        }
    }
    assert!(
        seen.iter().copied().eq(0..BAD + 15),
        "{} records, first out of place: {:?}",
        seen.len(),
        seen.iter().zip(0..).find(|(s, i)| **s != *i)
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        matches!(
            errors[0],
            Error::CrcMismatch {
                base_offset: BAD,
                ..
            }
        ),
        "{:?}",
        errors[0]
    );
    let asked: Vec<Option<i64>> = fake
        .fetches()
        .iter()
        .map(|(_, r)| fetch_offset(r))
        .collect();
    assert!(
        asked.starts_with(&[Some(0), Some(BAD + 10)]),
        "the next fetch left before the bad batch was found: {asked:?}"
    );
    assert!(
        asked.contains(&Some(BAD)),
        "refetched from the bad batch: {asked:?}"
    );
    c.close().await;
}
