//! The producer against a fake broker that refuses one topic's metadata
//! (TOPIC_AUTHORIZATION_FAILED: no Describe) and another topic's writes (no
//! Write): both fail the caller at once with [`Error::Authorization`], with no
//! retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::*;
use crate::client::fake_broker::{
    accept_all, api_versions, bind, client_props, frame_of, one_broker_metadata, read_request,
};
use crate::error_code::ErrorCode;
use crate::protocol::messages::metadata_response::MetadataResponseTopic;
use crate::protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use crate::protocol::messages::{ApiKey, MetadataRequest, ProduceRequest, ProduceResponse};
use crate::protocol::{Message, Uuid};

/// Readable metadata, refused writes.
const OPEN: &str = "open";
/// Refused metadata.
const CLOSED: &str = "closed";

#[derive(Default)]
struct Fake {
    port: u16,
    metadata: AtomicUsize,
    produces: AtomicUsize,
}

impl Fake {
    async fn serve(self: Arc<Self>, mut stream: TcpStream) {
        while let Some(request) = read_request(&mut stream).await {
            let (version, cid, mut body) = (request.version, request.cid, request.body);
            let out = match request.api {
                ApiKey::ApiVersions => api_versions(
                    &[
                        (ApiKey::ApiVersions, 3),
                        (ApiKey::Metadata, MetadataRequest::VALID_VERSIONS.max),
                        (ApiKey::Produce, 11),
                    ],
                    version,
                    cid,
                ),
                ApiKey::Metadata => {
                    self.metadata.fetch_add(1, Ordering::SeqCst);
                    let mut metadata = one_broker_metadata(self.port, &[(OPEN, Uuid::ZERO, 1)]);
                    metadata.topics.push(MetadataResponseTopic {
                        name: Some(CLOSED.into()),
                        error_code: ErrorCode::TopicAuthorizationFailed.code(),
                        ..Default::default()
                    });
                    frame_of(&metadata, version, cid)
                }
                ApiKey::Produce => {
                    self.produces.fetch_add(1, Ordering::SeqCst);
                    let request = ProduceRequest::decode(&mut body, version).unwrap();
                    let response = ProduceResponse {
                        responses: request
                            .topic_data
                            .iter()
                            .map(|t| TopicProduceResponse {
                                name: t.name.clone(),
                                partition_responses: t
                                    .partition_data
                                    .iter()
                                    .map(|p| PartitionProduceResponse {
                                        index: p.index,
                                        error_code: ErrorCode::TopicAuthorizationFailed.code(),
                                        base_offset: -1,
                                        ..Default::default()
                                    })
                                    .collect(),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    };
                    frame_of(&response, version, cid)
                }
                other => panic!("fake broker got {other:?}"),
            };
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

async fn producer() -> (Producer, Arc<Fake>) {
    let (listener, port) = bind().await;
    let fake = Arc::new(Fake {
        port,
        ..Default::default()
    });
    accept_all(listener, &fake, Fake::serve);
    let mut props = client_props(port);
    props.insert("enable.idempotence".into(), "false".into());
    props.insert("acks".into(), "all".into());
    let config = ProducerConfig::from_properties(&props).unwrap();
    (Producer::new(config).await.unwrap(), fake)
}

fn refusal(e: &Error) -> (&'static str, &str, &'static str) {
    match e {
        Error::Authorization {
            resource_type,
            resource_name,
            operation,
            ..
        } => (*resource_type, resource_name.as_str(), *operation),
        other => panic!("expected Error::Authorization, got {other:?}"),
    }
}

#[tokio::test]
async fn a_topic_the_broker_refuses_to_describe_fails_the_send_at_once() {
    let (producer, fake) = producer().await;
    let start = Instant::now();
    let e = producer
        .send(ProducerRecord::new(CLOSED, "v"))
        .await
        .unwrap_err();
    assert_eq!(refusal(&e), ("topic", CLOSED, "describe"));
    assert!(!e.is_retriable());
    // max.block.ms (60 s) would be the bound of a retried lookup.
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(fake.metadata.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn a_refused_write_fails_the_batch_after_one_produce_request() {
    let (producer, fake) = producer().await;
    let start = Instant::now();
    let delivery = producer.send(ProducerRecord::new(OPEN, "v")).await.unwrap();
    let e = delivery.await.unwrap_err();
    assert_eq!(refusal(&e), ("topic", OPEN, "write"));
    assert_eq!(fake.produces.load(Ordering::SeqCst), 1, "retried");
    assert!(start.elapsed() < Duration::from_secs(5));
}
