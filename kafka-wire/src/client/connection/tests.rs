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

/// Options of a SASL_PLAINTEXT connection authenticating as `admin` with PLAIN.
fn sasl_options() -> ConnectionOptions {
    use crate::client::security::{SaslConfig, SecurityConfig};
    let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                username=\"admin\" password=\"admin-secret\";";
    let sasl = SaslConfig::from_properties(&|key| match key {
        "security.protocol" => Some("SASL_PLAINTEXT".into()),
        "sasl.mechanism" => Some("PLAIN".into()),
        "sasl.jaas.config" => Some(jaas.into()),
        _ => None,
    })
    .unwrap()
    .unwrap();
    ConnectionOptions {
        security: SecurityConfig::sasl_plaintext(sasl),
        ..options()
    }
}

fn sasl_api_versions_body(version: i16) -> Bytes {
    let api = |key: ApiKey, max_version| ApiVersion {
        api_key: key.code(),
        min_version: 0,
        max_version,
        ..Default::default()
    };
    let response = ApiVersionsResponse {
        api_keys: vec![
            api(ApiKey::ApiVersions, 4),
            api(ApiKey::Metadata, 12),
            api(ApiKey::SaslHandshake, 1),
            api(ApiKey::SaslAuthenticate, 2),
        ],
        ..Default::default()
    };
    encode(&response, version)
}

/// Plays a broker's side of SaslHandshake + one SaslAuthenticate round (PLAIN),
/// granting `lifetime_ms`, or failing with `error`.
async fn serve_sasl(peer: &mut DuplexStream, lifetime_ms: i64, error: Option<&str>) {
    use crate::protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};
    let (key, version, cid) = read_request(peer).await.unwrap();
    assert_eq!(key, ApiKey::SaslHandshake.code());
    assert_eq!(version, 1);
    let handshake = SaslHandshakeResponse {
        mechanisms: vec!["PLAIN".into(), "SCRAM-SHA-512".into()],
        ..Default::default()
    };
    write_response(peer, cid, false, &encode(&handshake, version)).await;
    let (key, version, cid) = read_request(peer).await.unwrap();
    assert_eq!(key, ApiKey::SaslAuthenticate.code());
    let response = SaslAuthenticateResponse {
        error_code: if error.is_some() {
            ErrorCode::SaslAuthenticationFailed.code()
        } else {
            0
        },
        error_message: error.map(str::to_string),
        session_lifetime_ms: lifetime_ms,
        ..Default::default()
    };
    write_response(peer, cid, version >= 2, &encode(&response, version)).await;
}

#[tokio::test]
async fn a_refused_sasl_authentication_is_an_authentication_error_with_the_brokers_words() {
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(client, "duplex", sasl_options());
    let server = tokio::spawn(async move {
        let (_, version, cid) = read_request(&mut peer).await.unwrap();
        write_response(&mut peer, cid, false, &sasl_api_versions_body(version)).await;
        serve_sasl(&mut peer, 0, Some("Invalid username or password")).await;
        peer
    });
    let error = conn.establish().await.unwrap_err();
    let _peer = server.await.unwrap();
    assert!(
        matches!(&error, Error::Authentication { mechanism, .. } if mechanism == "PLAIN"),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("Invalid username or password"), "{text}");
    assert!(!text.contains("admin-secret"), "{text}");
    assert!(error.is_security_failure() && !error.is_retriable());
}

#[tokio::test]
async fn a_mechanism_the_listener_does_not_enable_is_named_with_the_enabled_ones() {
    use crate::protocol::messages::SaslHandshakeResponse;
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(client, "duplex", sasl_options());
    let server = tokio::spawn(async move {
        let (_, version, cid) = read_request(&mut peer).await.unwrap();
        write_response(&mut peer, cid, false, &sasl_api_versions_body(version)).await;
        let (_, version, cid) = read_request(&mut peer).await.unwrap();
        let handshake = SaslHandshakeResponse {
            error_code: ErrorCode::UnsupportedSaslMechanism.code(),
            mechanisms: vec!["SCRAM-SHA-512".into()],
        };
        write_response(&mut peer, cid, false, &encode(&handshake, version)).await;
        peer
    });
    let error = conn.establish().await.unwrap_err().to_string();
    let _peer = server.await.unwrap();
    assert!(
        error.contains("does not enable PLAIN") && error.contains("SCRAM-SHA-512"),
        "{error}"
    );
}

/// KIP-368: before the session ends the connection re-authenticates, after the
/// request in flight got its answer and before the next request is written.
#[tokio::test(start_paused = true)]
async fn reauthentication_waits_for_requests_in_flight_and_holds_back_new_ones() {
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(client, "duplex", sasl_options());
    let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let (_, version, cid) = read_request(&mut peer).await.unwrap();
        write_response(&mut peer, cid, false, &sasl_api_versions_body(version)).await;
        serve_sasl(&mut peer, 1_000, None).await;
        // The first Metadata request: answered only after the session's end
        // passed, so re-authentication has to wait for it.
        let (key, version, cid) = read_request(&mut peer).await.unwrap();
        assert_eq!(key, ApiKey::Metadata.code());
        order_tx.send("metadata 1 read").unwrap();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let response = MetadataResponse::default();
        write_response(&mut peer, cid, version >= 9, &encode(&response, version)).await;
        order_tx.send("metadata 1 answered").unwrap();
        // Then the re-authentication, before any other request.
        serve_sasl(&mut peer, 1_000, None).await;
        order_tx.send("re-authenticated").unwrap();
        let (key, version, cid) = read_request(&mut peer).await.unwrap();
        assert_eq!(key, ApiKey::Metadata.code());
        order_tx.send("metadata 2 read").unwrap();
        write_response(&mut peer, cid, version >= 9, &encode(&response, version)).await;
        peer
    });
    conn.establish().await.unwrap();
    let request = MetadataRequest::default();
    let first = {
        let conn = conn.clone();
        let request = request.clone();
        tokio::spawn(async move { conn.call_version(&request, 12).await })
    };
    assert_eq!(order.recv().await, Some("metadata 1 read"));
    // Past 95% of the session: re-authentication is due, waiting for request 1.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let second = conn.call_version(&request, 12).await;
    first.await.unwrap().unwrap();
    second.unwrap();
    assert_eq!(order.recv().await, Some("metadata 1 answered"));
    assert_eq!(order.recv().await, Some("re-authenticated"));
    assert_eq!(order.recv().await, Some("metadata 2 read"));
    let _peer = server.await.unwrap();
    assert!(!conn.is_closed());
}

#[tokio::test(start_paused = true)]
async fn a_failed_reauthentication_poisons_the_connection_with_the_authentication_error() {
    let (client, mut peer) = tokio::io::duplex(1 << 16);
    let conn = Connection::from_stream(client, "duplex", sasl_options());
    let server = tokio::spawn(async move {
        let (_, version, cid) = read_request(&mut peer).await.unwrap();
        write_response(&mut peer, cid, false, &sasl_api_versions_body(version)).await;
        serve_sasl(&mut peer, 1_000, None).await;
        serve_sasl(&mut peer, 0, Some("password changed")).await;
        peer
    });
    conn.establish().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let _peer = server.await.unwrap();
    assert!(conn.is_closed());
    let error = conn
        .call_version(&MetadataRequest::default(), 12)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Authentication { reason, .. } if reason.contains("password changed")),
        "{error:?}"
    );
}

#[test]
fn a_tls_record_in_place_of_a_response_size_is_recognised() {
    // An alert (0x15) or handshake (0x16) record of TLS 1.2.
    assert!(looks_like_tls_record(i32::from_be_bytes([
        0x15, 0x03, 0x03, 0x00
    ])));
    assert!(looks_like_tls_record(i32::from_be_bytes([
        0x16, 0x03, 0x01, 0x02
    ])));
    assert!(!looks_like_tls_record(64));
}
