//! Connection tests over an in-memory duplex stream: a scripted peer plays the broker.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::protocol::messages::api_versions_response::ApiVersion;
use crate::protocol::messages::{MetadataRequest, MetadataResponse};

fn options() -> ConnectionOptions {
    ConnectionOptions {
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// Reads one request frame: (api key, version, correlation id, whole frame).
async fn read_request(peer: &mut DuplexStream) -> Option<(i16, i16, i32)> {
    let size = peer.read_i32().await.ok()?;
    let mut body = vec![0u8; size as usize];
    peer.read_exact(&mut body).await.ok()?;
    let mut b = &body[..];
    Some((b.get_i16(), b.get_i16(), b.get_i32()))
}

/// Writes a response frame with header v0 (or v1 with an empty tag section) and `body`.
async fn write_response(
    peer: &mut DuplexStream,
    correlation_id: i32,
    header_v1: bool,
    body: &[u8],
) {
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32 + 4 + i32::from(header_v1));
    frame.put_i32(correlation_id);
    if header_v1 {
        frame.put_u8(0);
    }
    frame.put_slice(body);
    peer.write_all(&frame).await.unwrap();
}

fn encode<M: Message>(m: &M, version: i16) -> Bytes {
    let mut b = BytesMut::new();
    m.encode(&mut b, version).unwrap();
    b.freeze()
}

fn api_versions_body(version: i16) -> Bytes {
    let response = ApiVersionsResponse {
        api_keys: vec![
            ApiVersion {
                api_key: ApiKey::ApiVersions.code(),
                min_version: 0,
                max_version: 4,
                ..Default::default()
            },
            ApiVersion {
                api_key: ApiKey::Metadata.code(),
                min_version: 0,
                max_version: 12,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    encode(&response, version)
}

#[tokio::test]
async fn negotiates_versions_and_pipelines_out_of_order_responses() {
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(client, "duplex", options());
    let server = tokio::spawn(async move {
        let (key, version, cid) = read_request(&mut peer).await.unwrap();
        assert_eq!(key, ApiKey::ApiVersions.code());
        write_response(&mut peer, cid, false, &api_versions_body(version)).await;
        // Two pipelined metadata requests, answered in reverse order.
        let a = read_request(&mut peer).await.unwrap();
        let b = read_request(&mut peer).await.unwrap();
        for (_, version, cid) in [b, a] {
            let response = MetadataResponse {
                throttle_time_ms: cid,
                ..Default::default()
            };
            write_response(&mut peer, cid, version >= 9, &encode(&response, version)).await;
        }
        peer
    });
    conn.negotiate_api_versions().await.unwrap();
    assert_eq!(
        conn.broker_versions(ApiKey::Metadata),
        Some(Versions::new(0, 12))
    );
    let version = conn.version_for::<MetadataRequest>().unwrap();
    assert_eq!(version, 12.min(MetadataRequest::VALID_VERSIONS.max));
    let request = MetadataRequest::default();
    let (r1, r2) = tokio::join!(conn.call(&request), conn.call(&request));
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    // Each caller got the response carrying its own correlation id.
    assert_ne!(r1.throttle_time_ms, r2.throttle_time_ms);
    assert!(r1.throttle_time_ms < r2.throttle_time_ms);
    drop(server.await.unwrap());
}

#[tokio::test]
async fn retries_api_versions_at_the_version_an_old_broker_lists() {
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(client, "duplex", options());
    let server = tokio::spawn(async move {
        let (_, version, cid) = read_request(&mut peer).await.unwrap();
        assert_eq!(version, ApiVersionsRequest::VALID_VERSIONS.max);
        // An old broker: UNSUPPORTED_VERSION with a v0 body listing ApiVersions 0..2.
        let old = ApiVersionsResponse {
            error_code: ErrorCode::UnsupportedVersion.code(),
            api_keys: vec![ApiVersion {
                api_key: 18,
                min_version: 0,
                max_version: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        write_response(&mut peer, cid, false, &encode(&old, 0)).await;
        let (_, version, cid) = read_request(&mut peer).await.unwrap();
        assert_eq!(version, 2);
        write_response(&mut peer, cid, false, &api_versions_body(2)).await;
        peer
    });
    conn.negotiate_api_versions().await.unwrap();
    assert_eq!(
        conn.broker_versions(ApiKey::ApiVersions),
        Some(Versions::new(0, 4))
    );
    drop(server.await.unwrap());
}

#[tokio::test]
async fn a_dying_connection_fails_every_pending_request() {
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(client, "duplex", options());
    let request = MetadataRequest::default();
    let calls = (0..3)
        .map(|_| conn.call_version(&request, 1))
        .collect::<Vec<_>>();
    let server = tokio::spawn(async move {
        for _ in 0..3 {
            read_request(&mut peer).await.unwrap();
        }
        drop(peer);
    });
    let results = futures_join_all(calls).await;
    server.await.unwrap();
    for r in results {
        assert!(matches!(r, Err(Error::Disconnected { .. })), "{r:?}");
    }
    assert!(conn.is_closed());
    assert!(matches!(
        conn.call_version(&request, 1).await,
        Err(Error::Disconnected { .. })
    ));
}

#[tokio::test]
async fn an_oversized_response_poisons_the_connection() {
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(
        client,
        "duplex",
        ConnectionOptions {
            max_response_size: 1024,
            ..options()
        },
    );
    let server = tokio::spawn(async move {
        read_request(&mut peer).await.unwrap();
        peer.write_all(&i32::MAX.to_be_bytes()).await.unwrap();
        peer
    });
    let r = conn.call_version(&MetadataRequest::default(), 1).await;
    match r {
        Err(Error::Disconnected { reason, .. }) => {
            assert!(reason.contains("max response size"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    drop(server.await.unwrap());
}

#[tokio::test]
async fn a_wrong_correlation_id_is_an_error_not_a_hang() {
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(client, "duplex", options());
    let server = tokio::spawn(async move {
        let (_, version, cid) = read_request(&mut peer).await.unwrap();
        let body = encode(&MetadataResponse::default(), version);
        write_response(&mut peer, cid + 1000, false, &body).await;
        peer
    });
    let r = conn.call_version(&MetadataRequest::default(), 1).await;
    match r {
        Err(Error::Disconnected { reason, .. }) => {
            assert!(reason.contains("correlation id"), "{reason}")
        }
        other => panic!("unexpected {other:?}"),
    }
    drop(server.await.unwrap());
}

#[tokio::test]
async fn a_truncated_or_garbled_body_is_a_decode_error() {
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(client, "duplex", options());
    let server = tokio::spawn(async move {
        let (_, _, cid) = read_request(&mut peer).await.unwrap();
        write_response(&mut peer, cid, false, &[0xff, 0xff, 0xff]).await;
        peer
    });
    let r = conn.call_version(&MetadataRequest::default(), 1).await;
    assert!(r.is_err(), "{r:?}");
    assert!(!matches!(r, Err(Error::Disconnected { .. })));
    drop(server.await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_request_that_times_out_fails_and_closes_the_connection() {
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(
        client,
        "duplex",
        ConnectionOptions {
            request_timeout: Duration::from_millis(200),
            ..options()
        },
    );
    let server = tokio::spawn(async move {
        read_request(&mut peer).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        peer
    });
    let r = conn.call_version(&MetadataRequest::default(), 1).await;
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(conn.is_closed());
    drop(server.await.unwrap());
}

#[tokio::test]
async fn in_flight_requests_are_bounded() {
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(
        client,
        "duplex",
        ConnectionOptions {
            max_in_flight: 2,
            ..options()
        },
    );
    let c2 = conn.clone();
    let calls = tokio::spawn(async move {
        let request = MetadataRequest::default();
        let calls = (0..3)
            .map(|_| c2.call_version(&request, 1))
            .collect::<Vec<_>>();
        futures_join_all(calls).await
    });
    let a = read_request(&mut peer).await.unwrap();
    let b = read_request(&mut peer).await.unwrap();
    // The third request is not written while two are unanswered.
    let third = tokio::time::timeout(Duration::from_millis(100), read_request(&mut peer)).await;
    assert!(third.is_err(), "a third request was written");
    let body = encode(&MetadataResponse::default(), 1);
    write_response(&mut peer, a.2, false, &body).await;
    let c = read_request(&mut peer).await.unwrap();
    write_response(&mut peer, b.2, false, &body).await;
    write_response(&mut peer, c.2, false, &body).await;
    for r in calls.await.unwrap() {
        r.unwrap();
    }
}

async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    futures::future::join_all(futures).await
}

#[tokio::test]
async fn a_refused_connection_reads_as_the_io_error_it_was() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let e = Connection::connect(&addr, ConnectionOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("connecting to {addr}: Connection refused (os error 111)")
    );
    assert!(matches!(e.clone(), Error::Io { .. }));
}
