//! Proves that a real broker is there: an ApiVersions exchange over a plain TCP socket,
//! encoded and decoded by kafka-wire's generated codecs.
//!
//! ```text
//!  i32 size | RequestHeader v2 | ApiVersionsRequest v3 (flexible)   ──►  broker
//!  i32 size | ResponseHeader v0 | ApiVersionsResponse v3            ◄──  (header v0 always)
//! ```
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use integration_tests::require_broker;
use kafka_wire::protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_wire::protocol::{
    ApiKey, Message, RequestHeader, ResponseHeader, decode_api_versions_response,
};

const UNSUPPORTED_VERSION: i16 = 35;

/// Sends ApiVersions at `version` and returns the response header, the body and the
/// version the body was read at (v0 when the broker did not support `version`).
fn api_versions(
    stream: &mut TcpStream,
    version: i16,
    correlation_id: i32,
) -> (ResponseHeader, ApiVersionsResponse, i16) {
    let header = RequestHeader {
        request_api_key: ApiKey::ApiVersions.code(),
        request_api_version: version,
        correlation_id,
        client_id: Some("strom-it".into()),
        ..Default::default()
    };
    let request = ApiVersionsRequest {
        client_software_name: "strom-integration-tests".into(),
        client_software_version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    let mut body = BytesMut::new();
    header
        .encode(
            &mut body,
            ApiKey::ApiVersions.request_header_version(version),
        )
        .unwrap();
    request.encode(&mut body, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    stream.write_all(&frame).unwrap();

    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let len = i32::from_be_bytes(len);
    assert!(
        (10..1_000_000).contains(&len),
        "implausible response size {len}"
    );
    let mut raw = vec![0u8; len as usize];
    stream.read_exact(&mut raw).unwrap();
    let mut raw = Bytes::from(raw);
    let header = ResponseHeader::decode(
        &mut raw,
        ApiKey::ApiVersions.response_header_version(version),
    )
    .unwrap();
    let (body, read_at) = decode_api_versions_response(&raw, version).unwrap();
    (header, body, read_at)
}

#[test]
fn broker_answers_api_versions() {
    let bootstrap = require_broker!();
    let addr = bootstrap.split(',').next().unwrap().to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let ours = ApiKey::ApiVersions.valid_versions().max.min(3);
    let (header, mut resp, mut read_at) = api_versions(&mut stream, ours, 7);
    assert_eq!(header.correlation_id, 7, "correlation id echoed");
    if resp.error_code == UNSUPPORTED_VERSION {
        // An older broker answered at v0 listing only ApiVersions: retry at its version.
        let theirs = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions.code())
            .map(|k| k.max_version)
            .expect("an UNSUPPORTED_VERSION answer lists api key 18");
        let (header, retried, at) = api_versions(&mut stream, theirs.min(ours), 8);
        assert_eq!(header.correlation_id, 8);
        (resp, read_at) = (retried, at);
    }
    assert_eq!(resp.error_code, 0, "error code");
    assert!(read_at >= 1, "read at v{read_at}");
    assert!(!resp.api_keys.is_empty());
    for needed in [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
    ] {
        let api = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == needed.code())
            .unwrap_or_else(|| panic!("broker lacks api key {needed}"));
        assert!(api.min_version <= api.max_version);
    }
}

/// Sends a request frame and returns the response frame after its size prefix.
fn exchange(stream: &mut TcpStream, frame: &[u8]) -> Bytes {
    stream.write_all(frame).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let len = i32::from_be_bytes(len);
    assert!(
        (4..10_000_000).contains(&len),
        "implausible frame size {len}"
    );
    let mut raw = vec![0u8; len as usize];
    stream.read_exact(&mut raw).unwrap();
    Bytes::from(raw)
}

/// A default-valued request frame for the read-only apis this test exercises.
fn default_request(key: ApiKey, version: i16, correlation_id: i32) -> Option<BytesMut> {
    use kafka_wire::protocol::encode_request_frame;
    use kafka_wire::protocol::messages as m;
    macro_rules! frame {
        ($($k:ident => $req:expr),* $(,)?) => {
            match key {
                $(ApiKey::$k => Some(
                    encode_request_frame(&$req, version, correlation_id, Some("strom-it")).unwrap(),
                ),)*
                _ => None,
            }
        };
    }
    frame! {
        Metadata => m::MetadataRequest::default(),
        ListOffsets => m::ListOffsetsRequest::default(),
        DescribeGroups => m::DescribeGroupsRequest::default(),
        ListGroups => m::ListGroupsRequest::default(),
        FindCoordinator => m::FindCoordinatorRequest::default(),
        OffsetFetch => m::OffsetFetchRequest::default(),
        DescribeConfigs => m::DescribeConfigsRequest::default(),
        // Filters must be valid enum values (1 = ANY), or the broker drops the connection.
        DescribeAcls => m::DescribeAclsRequest {
            resource_type_filter: 1,
            pattern_type_filter: 1,
            operation: 1,
            permission_type: 1,
            ..Default::default()
        },
        DescribeLogDirs => m::DescribeLogDirsRequest::default(),
        DescribeCluster => m::DescribeClusterRequest::default(),
        DescribeProducers => m::DescribeProducersRequest::default(),
        DescribeTransactions => m::DescribeTransactionsRequest::default(),
        ListTransactions => m::ListTransactionsRequest::default(),
        DescribeClientQuotas => m::DescribeClientQuotasRequest::default(),
        DescribeUserScramCredentials => m::DescribeUserScramCredentialsRequest::default(),
        DescribeTopicPartitions => m::DescribeTopicPartitionsRequest::default(),
        ListPartitionReassignments => m::ListPartitionReassignmentsRequest::default(),
        ConsumerGroupDescribe => m::ConsumerGroupDescribeRequest::default(),
        DescribeDelegationToken => m::DescribeDelegationTokenRequest::default(),
        GetTelemetrySubscriptions => m::GetTelemetrySubscriptionsRequest::default(),
    }
}

/// Every read-only api the broker lists, at the highest version both sides speak: the
/// request (all defaults) is accepted and the response decodes with no byte left over.
#[test]
fn broker_responses_to_read_only_apis_decode_exactly() {
    let bootstrap = require_broker!();
    let addr = bootstrap.split(',').next().unwrap().to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (_, versions, _) = api_versions(&mut stream, 3, 1);
    assert_eq!(versions.error_code, 0);
    let mut checked = Vec::new();
    for (i, api) in versions.api_keys.iter().enumerate() {
        let Ok(key) = ApiKey::try_from(api.api_key) else {
            continue; // newer than our specs
        };
        let ours = key.valid_versions();
        let version = api.max_version.min(ours.max);
        if version < api.min_version.max(ours.min) {
            continue;
        }
        let correlation_id = 100 + i as i32;
        let Some(frame) = default_request(key, version, correlation_id) else {
            continue;
        };
        let mut raw = exchange(&mut stream, &frame);
        let header = ResponseHeader::decode(&mut raw, key.response_header_version(version))
            .unwrap_or_else(|e| panic!("{key} v{version}: header: {e}"));
        assert_eq!(header.correlation_id, correlation_id, "{key} v{version}");
        kafka_wire::protocol::messages::decode_response_body(key, version, &mut raw)
            .unwrap_or_else(|e| panic!("{key} v{version}: body: {e}"));
        checked.push(format!("{key} v{version}"));
    }
    eprintln!("decoded: {}", checked.join(", "));
    assert!(checked.len() >= 10, "only {checked:?}");
}
