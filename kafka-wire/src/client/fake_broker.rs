//! Pieces of the fake brokers that tests run on loopback TCP: the serving loop
//! (accept, read a request frame, write the fake's answer), and the ApiVersions and Metadata answers
//! most fakes give. Built for kafka-wire's unit tests, and for other crates' tests
//! with the `test-util` feature (a misbehaving peer; never a stand-in for the real
//! broker of an integration test).
#![allow(clippy::unwrap_used)] // test helpers: a malformed frame should panic

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::protocol::messages::api_versions_response::ApiVersion;
use crate::protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use crate::protocol::messages::{ApiKey, ApiVersionsResponse, MetadataResponse};
use crate::protocol::{Response, Uuid, decode_request_frame_header, encode_response_frame};

/// One request a fake broker read: what to answer, and the body to decode.
pub struct Request {
    /// The request's api.
    pub api: ApiKey,
    /// The request's version.
    pub version: i16,
    /// The correlation id to answer with.
    pub cid: i32,
    /// The request body after the header.
    pub body: Bytes,
}

/// Client properties for a fake at `port`: short retry and reconnect backoffs.
pub fn client_props(port: u16) -> BTreeMap<String, String> {
    [
        ("bootstrap.servers", format!("127.0.0.1:{port}")),
        ("retry.backoff.ms", "10".into()),
        ("retry.backoff.max.ms", "20".into()),
        ("reconnect.backoff.ms", "10".into()),
        ("reconnect.backoff.max.ms", "20".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A listener on a free loopback port, and the port.
pub async fn bind() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Serves every connection `listener` accepts with `serve(fake, stream)`, each in
/// its own task.
pub fn accept_all<T, F, Fut>(listener: TcpListener, fake: &Arc<T>, serve: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>, TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fake = fake.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(fake.clone(), stream));
        }
    });
}

/// What a fake does with one request it read.
pub enum Answer {
    /// Writes this frame back.
    Frame(Bytes),
    /// Writes nothing and reads the next request (a broker that never answers).
    Silence,
    /// Closes the connection (a broker that drops it).
    HangUp,
}

impl From<Bytes> for Answer {
    fn from(frame: Bytes) -> Self {
        Answer::Frame(frame)
    }
}

/// Serves every connection `listener` accepts, each in its own task: each request
/// read goes to `answer`, and what it returns is done, until the client hangs up,
/// the fake does, or a write fails.
pub fn serve_all<T, F, Fut>(listener: TcpListener, fake: &Arc<T>, answer: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>, Request) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Answer> + Send + 'static,
{
    accept_all(listener, fake, move |fake, mut stream| {
        let answer = answer.clone();
        async move {
            while let Some(request) = read_request(&mut stream).await {
                match answer(fake.clone(), request).await {
                    Answer::Frame(out) => {
                        if stream.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                    Answer::Silence => {}
                    Answer::HangUp => return,
                }
            }
        }
    });
}

/// The next request on `stream`; None once the client hangs up.
pub async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let size = stream.read_i32().await.ok()?;
    let mut frame = BytesMut::zeroed(size as usize);
    stream.read_exact(&mut frame).await.ok()?;
    let mut body = frame.freeze();
    let header = decode_request_frame_header(&mut body).unwrap();
    Some(Request {
        api: ApiKey::try_from(header.request_api_key).unwrap(),
        version: header.request_api_version,
        cid: header.correlation_id,
        body,
    })
}

/// `response` as a frame answering correlation id `cid`.
pub fn frame_of<R: Response>(response: &R, version: i16, cid: i32) -> Bytes {
    encode_response_frame(response, version, cid)
        .unwrap()
        .freeze()
}

/// An ApiVersions answer offering versions 0 to `max` of each key (at most v3,
/// which every client reads).
pub fn api_versions(keys: &[(ApiKey, i16)], version: i16, cid: i32) -> Bytes {
    let response = ApiVersionsResponse {
        api_keys: keys
            .iter()
            .map(|(k, max)| ApiVersion {
                api_key: k.code(),
                min_version: 0,
                max_version: *max,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    frame_of(&response, version.min(3), cid)
}

/// Metadata of one broker, node 1 at `port`, leading every partition of `topics`
/// (name, id, partition count).
pub fn one_broker_metadata(port: u16, topics: &[(&str, Uuid, i32)]) -> MetadataResponse {
    MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: i32::from(port),
            ..Default::default()
        }],
        controller_id: 1,
        topics: topics
            .iter()
            .map(|&(name, topic_id, partitions)| MetadataResponseTopic {
                name: Some(name.into()),
                topic_id,
                partitions: (0..partitions)
                    .map(|p| MetadataResponsePartition {
                        partition_index: p,
                        leader_id: 1,
                        replica_nodes: vec![1],
                        isr_nodes: vec![1],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
