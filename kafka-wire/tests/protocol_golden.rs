//! Golden response frames captured from a real Apache Kafka broker, decoded through the
//! generated codecs and re-encoded byte for byte.
//!
//! The fixtures in `tests/fixtures/protocol/` were written by `capture_protocol_fixtures`
//! below (ignored by default; see the README there for the exact command). Each `.bin`
//! file is one frame without its 4-byte size prefix: response header, then body.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_wire::protocol::messages::{
    self, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse,
};
use kafka_wire::protocol::{
    ApiKey, Message, Request, Response, ResponseHeader, Uuid, decode_response_frame,
    encode_request_frame,
};

const TOPIC: &str = "strom-golden";
const API_VERSIONS_VERSION: i16 = 3;
const METADATA_VERSION: i16 = 12;
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protocol")
}

fn fixture(name: &str) -> Bytes {
    let path = fixtures().join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Decodes a captured frame as `R` at `version`, checks that re-encoding header and body
/// gives the captured bytes back, and returns them.
fn decode_lossless<R: Response + PartialEq + std::fmt::Debug>(
    name: &str,
    version: i16,
) -> (ResponseHeader, R) {
    let bytes = fixture(name);
    let (header, body) = decode_response_frame::<R>(&mut bytes.clone(), version).unwrap();
    let mut again = BytesMut::new();
    header
        .encode(&mut again, R::API_KEY.response_header_version(version))
        .unwrap();
    body.encode(&mut again, version).unwrap();
    assert_eq!(again.freeze(), bytes, "{name}: re-encoding differs");
    (header, body)
}

#[test]
fn api_versions_v3_response_from_the_broker_decodes() {
    let (header, resp) = decode_lossless::<ApiVersionsResponse>(
        "api_versions_v3_response.bin",
        API_VERSIONS_VERSION,
    );
    // Response header v0 even though the body is flexible: the first 4 bytes are the
    // correlation id, byte 5-6 the error code, then a compact array length.
    let raw = fixture("api_versions_v3_response.bin");
    assert_eq!(
        &raw[..4],
        &[0, 0, 0, 1],
        "correlation id 1, no tagged fields"
    );
    assert_eq!(&raw[4..6], &[0, 0], "error code NONE");
    assert_eq!(
        usize::from(raw[6]) - 1,
        resp.api_keys.len(),
        "compact array: N + 1"
    );
    assert_eq!(header.correlation_id, 1);
    assert_eq!(resp.error_code, 0);
    for (key, min_max) in [(0i16, 9), (3, 12), (18, 3)] {
        let api = resp
            .api_keys
            .iter()
            .find(|a| a.api_key == key)
            .unwrap_or_else(|| panic!("api key {key} missing"));
        assert!(api.min_version <= api.max_version);
        assert!(
            api.max_version >= min_max,
            "api key {key} max {}",
            api.max_version
        );
    }
    // The broker (Kafka 4.1) may list api keys newer than the specs this crate was
    // generated from; those are not `ApiKey`s, which a client must tolerate.
    let known = resp
        .api_keys
        .iter()
        .filter(|a| ApiKey::try_from(a.api_key).is_ok())
        .count();
    assert!(known >= 40, "only {known} known api keys");
    assert!(resp.finalized_features_epoch >= 0);
    assert!(
        resp.supported_features
            .iter()
            .any(|f| f.name == "metadata.version")
    );
}

#[test]
fn metadata_v12_response_from_the_broker_decodes() {
    let (header, resp) =
        decode_lossless::<MetadataResponse>("metadata_v12_response.bin", METADATA_VERSION);
    assert_eq!(header.correlation_id, 3);
    assert_eq!(resp.brokers.len(), 1);
    let broker = &resp.brokers[0];
    assert_eq!(broker.host, "127.0.0.1");
    assert_eq!(broker.port, 9092);
    assert!(resp.cluster_id.as_deref().is_some_and(|c| !c.is_empty()));
    assert_eq!(resp.controller_id, broker.node_id);
    assert_eq!(resp.topics.len(), 1);
    let topic = &resp.topics[0];
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.name.as_deref(), Some(TOPIC));
    assert_ne!(topic.topic_id, Uuid::ZERO);
    assert!(!topic.is_internal);
    assert_eq!(topic.partitions.len(), 1);
    let p = &topic.partitions[0];
    assert_eq!((p.error_code, p.partition_index), (0, 0));
    assert_eq!(p.leader_id, broker.node_id);
    assert_eq!(p.replica_nodes, vec![broker.node_id]);
    assert_eq!(p.isr_nodes, vec![broker.node_id]);
}

#[test]
fn produce_v9_response_from_the_broker_decodes() {
    let (header, resp) =
        decode_lossless::<ProduceResponse>("produce_v9_response.bin", PRODUCE_VERSION);
    assert_eq!(header.correlation_id, 4);
    assert_eq!(resp.responses.len(), 1);
    let topic = &resp.responses[0];
    assert_eq!(topic.name, TOPIC);
    assert_eq!(topic.partition_responses.len(), 1);
    let p = &topic.partition_responses[0];
    assert_eq!((p.index, p.error_code), (0, 0));
    assert!(p.base_offset >= 0);
    assert_eq!(p.log_append_time_ms, -1, "CreateTime topic");
    assert_eq!(p.error_message, None);
    assert!(p.record_errors.is_empty());
}

#[test]
fn produce_v9_request_encodes_to_the_captured_bytes() {
    let frame = encode_request_frame(&produce_request(), PRODUCE_VERSION, 4, Some(CLIENT)).unwrap();
    assert_eq!(frame.freeze().slice(4..), fixture("produce_v9_request.bin"));
}

const CLIENT: &str = "strom-capture";

/// A one-record, uncompressed record batch (magic 2), built by hand so that this test
/// does not depend on the records module.
fn record_batch() -> Bytes {
    let timestamp: i64 = 1_700_000_000_000;
    let mut record = BytesMut::new();
    record.put_i8(0); // attributes
    put_varint(&mut record, 0); // timestamp delta (a varlong; 0 is one byte either way)
    put_varint(&mut record, 0); // offset delta
    put_varint(&mut record, 1); // key length
    record.put_slice(b"k");
    put_varint(&mut record, 6); // value length
    record.put_slice(b"golden");
    put_varint(&mut record, 0); // header count
    let mut records = BytesMut::new();
    put_varint(&mut records, record.len() as i64);
    records.put_slice(&record);

    let mut after_crc = BytesMut::new();
    after_crc.put_i16(0); // attributes: no compression, CreateTime
    after_crc.put_i32(0); // last offset delta
    after_crc.put_i64(timestamp); // base timestamp
    after_crc.put_i64(timestamp); // max timestamp
    after_crc.put_i64(-1); // producer id
    after_crc.put_i16(-1); // producer epoch
    after_crc.put_i32(-1); // base sequence
    after_crc.put_i32(1); // record count
    after_crc.put_slice(&records);

    let mut batch = BytesMut::new();
    batch.put_i64(0); // base offset
    batch.put_i32((4 + 1 + 4 + after_crc.len()) as i32); // batch length
    batch.put_i32(-1); // partition leader epoch
    batch.put_i8(2); // magic
    batch.put_u32(crc32c(&after_crc));
    batch.put_slice(&after_crc);
    batch.freeze()
}

fn put_varint(buf: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

/// CRC-32C (Castagnoli), bit by bit: slow and obviously right.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
}

fn produce_request() -> ProduceRequest {
    use messages::produce_request::{PartitionProduceData, TopicProduceData};
    ProduceRequest {
        acks: -1,
        timeout_ms: 10_000,
        topic_data: vec![TopicProduceData {
            name: TOPIC.into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(record_batch()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Sends one request and returns the response frame without its size prefix.
fn exchange<R: Request>(
    stream: &mut TcpStream,
    request: &R,
    version: i16,
    correlation_id: i32,
) -> (Bytes, Bytes) {
    let frame = encode_request_frame(request, version, correlation_id, Some(CLIENT)).unwrap();
    stream.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let len = i32::from_be_bytes(len);
    assert!(
        (4..10_000_000).contains(&len),
        "implausible frame size {len}"
    );
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).unwrap();
    (frame.freeze().slice(4..), Bytes::from(body))
}

/// Captures the fixtures from the broker at `KAFKA_BOOTSTRAP` (default 127.0.0.1:9092).
/// Run by hand: see tests/fixtures/protocol/README.md.
#[test]
#[ignore = "writes fixtures from a live broker; run by hand"]
fn capture_protocol_fixtures() {
    let addr = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let addr = addr.split(',').next().unwrap().to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let dir = fixtures();
    std::fs::create_dir_all(&dir).unwrap();

    let api_versions = ApiVersionsRequest {
        client_software_name: CLIENT.into(),
        client_software_version: "0.1.0".into(),
        ..Default::default()
    };
    let (_, resp) = exchange(&mut stream, &api_versions, API_VERSIONS_VERSION, 1);
    std::fs::write(dir.join("api_versions_v3_response.bin"), &resp).unwrap();

    // Start from a fresh topic, so offsets in the captures are always 0.
    use messages::delete_topics_request::DeleteTopicState;
    let delete = messages::DeleteTopicsRequest {
        topics: vec![DeleteTopicState {
            name: Some(TOPIC.into()),
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let (_, resp) = exchange(&mut stream, &delete, 6, 2);
    let (_, deleted) =
        decode_response_frame::<messages::DeleteTopicsResponse>(&mut resp.clone(), 6).unwrap();
    let code = deleted.responses[0].error_code;
    assert!(code == 0 || code == 3, "DeleteTopics error {code}"); // 3: unknown topic

    use messages::create_topics_request::CreatableTopic;
    let create = CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: TOPIC.into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let mut created_ok = false;
    for _ in 0..50 {
        let (_, resp) = exchange(&mut stream, &create, 7, 2);
        let (_, created) =
            decode_response_frame::<messages::CreateTopicsResponse>(&mut resp.clone(), 7).unwrap();
        match created.topics[0].error_code {
            0 => {
                created_ok = true;
                break;
            }
            36 => std::thread::sleep(Duration::from_millis(200)), // deletion still running
            code => panic!("CreateTopics error {code}"),
        }
    }
    assert!(created_ok, "topic {TOPIC} could not be re-created");

    use messages::metadata_request::MetadataRequestTopic;
    let metadata = MetadataRequest {
        topics: Some(vec![MetadataRequestTopic {
            name: Some(TOPIC.into()),
            ..Default::default()
        }]),
        allow_auto_topic_creation: false,
        ..Default::default()
    };
    // Wait until the new partition has a leader, so the capture shows a settled topic.
    let mut captured = None;
    for _ in 0..50 {
        let (_, resp) = exchange(&mut stream, &metadata, METADATA_VERSION, 3);
        let (_, m) =
            decode_response_frame::<MetadataResponse>(&mut resp.clone(), METADATA_VERSION).unwrap();
        if m.topics[0].error_code == 0
            && m.topics[0]
                .partitions
                .first()
                .is_some_and(|p| p.leader_id >= 0)
        {
            captured = Some(resp);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let resp = captured.expect("topic never got a leader");
    std::fs::write(dir.join("metadata_v12_response.bin"), &resp).unwrap();

    let (req, resp) = exchange(&mut stream, &produce_request(), PRODUCE_VERSION, 4);
    std::fs::write(dir.join("produce_v9_request.bin"), &req).unwrap();
    std::fs::write(dir.join("produce_v9_response.bin"), &resp).unwrap();

    let (_, resp) = exchange(&mut stream, &fetch_request(), FETCH_VERSION, 5);
    std::fs::write(dir.join("fetch_v12_response.bin"), &resp).unwrap();
}

fn fetch_request() -> messages::FetchRequest {
    use messages::fetch_request::{FetchPartition, FetchTopic};
    messages::FetchRequest {
        max_wait_ms: 100,
        min_bytes: 1,
        topics: vec![FetchTopic {
            topic: TOPIC.into(),
            partitions: vec![FetchPartition {
                partition: 0,
                fetch_offset: 0,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn fetch_v12_response_from_the_broker_carries_the_produced_batch() {
    let (header, resp) =
        decode_lossless::<messages::FetchResponse>("fetch_v12_response.bin", FETCH_VERSION);
    assert_eq!(header.correlation_id, 5);
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.responses.len(), 1);
    let topic = &resp.responses[0];
    assert_eq!(topic.topic, TOPIC);
    let p = &topic.partitions[0];
    assert_eq!((p.partition_index, p.error_code), (0, 0));
    assert_eq!(p.high_watermark, 1);
    assert_eq!(p.last_stable_offset, 1);
    assert_eq!(p.aborted_transactions, None, "read_uncommitted: null list");
    // The broker hands back the batch we produced, with the partition leader epoch
    // (bytes 12..16, outside the CRC) set to the leader's epoch.
    let records = p.records.clone().expect("records");
    let sent = record_batch();
    assert_eq!(records.len(), sent.len());
    assert_eq!(records[..12], sent[..12], "base offset 0 and batch length");
    assert_eq!(records[12..16], [0, 0, 0, 0], "partition leader epoch 0");
    assert_eq!(
        records[16..],
        sent[16..],
        "magic, CRC and records unchanged"
    );
}

#[test]
fn produce_v9_response_bytes_annotated_field_by_field() {
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0, 0, 0, 4,             // response header v1: correlation id 4
        0,                      //   header tagged fields: none
        2,                      // responses: compact array, 1 topic (N + 1)
        13,                     //   name: compact string, 12 bytes (N + 1)
        b's', b't', b'r', b'o', b'm', b'-', b'g', b'o', b'l', b'd', b'e', b'n',
        2,                      //   partition_responses: 1 partition
        0, 0, 0, 0,             //     index 0
        0, 0,                   //     error code NONE
        0, 0, 0, 0, 0, 0, 0, 0, //     base offset 0 (first batch of a new topic)
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // log append time -1 (CreateTime)
        0, 0, 0, 0, 0, 0, 0, 0, //     log start offset 0
        1,                      //     record_errors: empty compact array (0 + 1)
        0,                      //     error_message: null compact string
        0,                      //     partition tagged fields: none
        0,                      //   topic tagged fields: none
        0, 0, 0, 0,             // throttle time 0 ms
        0,                      // body tagged fields: none
    ];
    assert_eq!(fixture("produce_v9_response.bin"), expected);
    let (_, resp) =
        decode_response_frame::<ProduceResponse>(&mut Bytes::from_static(expected), 9).unwrap();
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 0);
}

mod mutated_golden_frames {
    use proptest::prelude::*;

    use super::*;

    fn mutate(frame: &Bytes, at: usize, byte: u8, cut: usize) -> Bytes {
        let mut m = frame.to_vec();
        if !m.is_empty() {
            let i = at % m.len();
            m[i] = byte;
        }
        let cut = cut % (m.len() + 1);
        m.truncate(m.len() - cut.min(m.len() / 4));
        Bytes::from(m)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        /// Real frames with one byte changed (and maybe a tail cut) never panic the
        /// response decoders.
        #[test]
        fn never_panic_the_decoders(at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
            for (name, key, version) in [
                ("api_versions_v3_response.bin", ApiKey::ApiVersions, API_VERSIONS_VERSION),
                ("metadata_v12_response.bin", ApiKey::Metadata, METADATA_VERSION),
                ("produce_v9_response.bin", ApiKey::Produce, PRODUCE_VERSION),
                ("fetch_v12_response.bin", ApiKey::Fetch, FETCH_VERSION),
            ] {
                let mut m = mutate(&fixture(name), at, byte, cut);
                if ResponseHeader::decode(&mut m, key.response_header_version(version)).is_ok() {
                    let _ = messages::decode_response_body(key, version, &mut m);
                }
            }
        }
    }
}
