//! Tests of the generated codecs: a round trip of every message at every valid
//! version, hostile bytes fed to every decoder, and known answers from the spec.

use std::fmt::Debug;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::messages::{self, for_all_messages};
use super::testing::{Arbitrary, Gen};
use super::*;

/// Encodes `value`, checks `encoded_len`, decodes, compares, and re-encodes the decoded
/// value to the same bytes.
fn round_trip_one<T: Message + PartialEq + Debug>(value: &T, version: i16) -> Result<(), String> {
    let mut buf = BytesMut::new();
    value
        .encode(&mut buf, version)
        .map_err(|e| format!("v{version}: encode failed: {e}\n{value:#?}"))?;
    let len = value.encoded_len(version).map_err(|e| e.to_string())?;
    if len != buf.len() {
        return Err(format!(
            "v{version}: encoded_len {len} but wrote {}",
            buf.len()
        ));
    }
    let bytes = buf.freeze();
    let mut input = bytes.clone();
    let decoded = T::decode(&mut input, version)
        .map_err(|e| format!("v{version}: decode failed: {e}\n{value:#?}\n{bytes:?}"))?;
    if !input.is_empty() {
        return Err(format!(
            "v{version}: {} bytes left after decode",
            input.len()
        ));
    }
    if &decoded != value {
        return Err(format!(
            "v{version}: decoded differs\n{value:#?}\n{decoded:#?}"
        ));
    }
    let mut again = BytesMut::new();
    decoded
        .encode(&mut again, version)
        .map_err(|e| e.to_string())?;
    if again != bytes {
        return Err(format!("v{version}: re-encoding differs"));
    }
    Ok(())
}

fn round_trips_at<T: Message + Arbitrary + Default + PartialEq + Debug>(
    seed: u64,
    version: i16,
) -> Result<(), TestCaseError> {
    let mut g = Gen::new(seed);
    let value = T::arbitrary(&mut g, version);
    round_trip_one(&value, version).map_err(TestCaseError::fail)?;
    round_trip_one(&T::default(), version)
        .map_err(|e| TestCaseError::fail(format!("default: {e}")))?;
    Ok(())
}

/// Feeds random bytes and mutated valid encodings to the decoder at every version: it
/// must return (Ok or Err), never panic or allocate from an unchecked length.
fn survives_hostile_bytes<T: Message + Arbitrary + Debug>(seed: u64) {
    for version in T::VALID_VERSIONS.iter() {
        let mut g = Gen::new(seed ^ (version as u64) << 40);
        let noise: Vec<u8> = (0..g.below(64)).map(|_| g.next_u64() as u8).collect();
        let _ = T::decode(&mut Bytes::from(noise), version);

        let mut buf = BytesMut::new();
        if T::arbitrary(&mut g, version)
            .encode(&mut buf, version)
            .is_err()
        {
            continue;
        }
        let valid = buf.freeze();
        for _ in 0..16 {
            let mut m = valid.to_vec();
            match g.below(4) {
                0 if !m.is_empty() => {
                    let at = g.below(m.len() as u64) as usize;
                    m[at] ^= 1 << g.below(8);
                }
                1 if !m.is_empty() => {
                    let at = g.below(m.len() as u64) as usize;
                    m[at] = [0x00, 0x7f, 0x80, 0xff][g.below(4) as usize];
                }
                2 => m.truncate(g.below(m.len() as u64 + 1) as usize),
                _ => {
                    let at = g.below(m.len() as u64 + 1) as usize;
                    m.splice(at..at, [0x7f, 0xff, 0xff, 0xff]);
                }
            }
            let _ = T::decode(&mut Bytes::from(m.clone()), version);
            if let Ok(value) = T::decode(&mut Bytes::from(m), version) {
                reencodes_stably(&value, version);
            }
        }
    }
}

/// Whatever a decoder accepts must encode again, and that encoding must be a fixed point
/// (compared as bytes: a float field may have decoded to NaN).
fn reencodes_stably<T: Message>(value: &T, version: i16) {
    let mut first = BytesMut::new();
    value
        .encode(&mut first, version)
        .unwrap_or_else(|e| panic!("v{version}: {e}: {value:?}"));
    assert_eq!(value.encoded_len(version).unwrap(), first.len());
    let again = T::decode(&mut first.clone().freeze(), version)
        .unwrap_or_else(|e| panic!("v{version}: {e}: {value:?}"));
    let mut second = BytesMut::new();
    again.encode(&mut second, version).unwrap();
    assert_eq!(first, second, "v{version}: {value:?}");
}

/// Runs `check` on `cases` random seeds through proptest (which reports and persists
/// failing seeds in `proptest-regressions/`). One non-generic runner for every message
/// keeps the per-message test code, and so the compile time, small.
fn run_seeds(cases: u32, version: i16, check: fn(u64, i16) -> Result<(), TestCaseError>) {
    use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
    // PROPTEST_CASES raises the count for a deeper run by hand.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&any::<u64>(), |seed| check(seed, version)) {
        panic!("{e}");
    }
}

macro_rules! round_trip_test {
    ($test:ident, $ty:ident, $version:literal) => {
        #[test]
        fn $test() {
            run_seeds(12, $version, round_trips_at::<messages::$ty>);
        }
    };
}

macro_rules! hostile_test {
    ($module:ident, $ty:ident) => {
        #[test]
        fn $module() {
            run_seeds(16, 0, |seed, _| {
                survives_hostile_bytes::<messages::$ty>(seed);
                Ok(())
            });
        }
    };
}

/// One test per message and version: values valid at that version survive encode ->
/// decode -> encode unchanged.
mod every_message_round_trips_at_every_version {
    use super::*;
    use crate::protocol::messages::for_all_message_versions;
    for_all_message_versions!(round_trip_test);
}

/// One test per message: random and mutated bytes never panic a decoder.
mod every_decoder_survives_hostile_bytes {
    use super::*;
    for_all_messages!(hostile_test);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// The runtime dispatch by api key never panics on noise.
    #[test]
    fn decoding_by_api_key_never_panics(seed in any::<u64>(), data in proptest::collection::vec(any::<u8>(), 0..96)) {
        for key in ApiKey::ALL {
            for version in key.valid_versions().iter() {
                let _ = messages::decode_request_body(key, version, &mut Bytes::from(data.clone()));
                let _ = messages::decode_response_body(key, version, &mut Bytes::from(data.clone()));
            }
        }
        let _ = seed;
    }
}

fn encode<T: Message>(value: &T, version: i16) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out, version).unwrap();
    out
}

#[test]
fn flexible_request_header_v2_matches_the_spec() {
    let header = RequestHeader {
        request_api_key: 18,
        request_api_version: 3,
        correlation_id: 7,
        client_id: Some("ab".into()),
        ..Default::default()
    };
    // api key, api version, correlation id, client id as a classic (non-compact)
    // nullable string even in v2, then an empty tagged-field section.
    assert_eq!(
        encode(&header, 2),
        [0, 18, 0, 3, 0, 0, 0, 7, 0, 2, b'a', b'b', 0]
    );
    let null_client = RequestHeader {
        client_id: None,
        ..header.clone()
    };
    assert_eq!(
        encode(&null_client, 1),
        [0, 18, 0, 3, 0, 0, 0, 7, 0xff, 0xff]
    );
    // Header v0 (no client id) is gone since Kafka 4.0.
    const { assert!(RequestHeader::VALID_VERSIONS.min >= 1) };
    let decoded = RequestHeader::decode(&mut &encode(&header, 2)[..], 2).unwrap();
    assert_eq!(decoded, header);
}

#[test]
fn empty_tagged_field_section_is_one_zero_byte() {
    let header = ResponseHeader {
        correlation_id: 1,
        ..Default::default()
    };
    assert_eq!(encode(&header, 1), [0, 0, 0, 1, 0]);
    assert_eq!(encode(&header, 0), [0, 0, 0, 1]);
}

#[test]
fn null_arrays_are_zero_compact_and_minus_one_classic() {
    use messages::MetadataRequest;
    let all_topics = MetadataRequest {
        topics: None,
        ..Default::default()
    };
    // v1 (classic): topics null = INT32 -1, then nothing else at v1.
    assert_eq!(encode(&all_topics, 1), [0xff, 0xff, 0xff, 0xff]);
    // v9 (flexible): topics null = uvarint 0; then allow_auto_topic_creation (true),
    // include_cluster_authorized_operations and include_topic_authorized_operations
    // (false), and an empty tagged-field section.
    assert_eq!(encode(&all_topics, 9), [0, 1, 0, 0, 0]);
    let back = MetadataRequest::decode(&mut &[0u8, 1, 0, 0, 0][..], 9).unwrap();
    assert_eq!(back.topics, None);
}

#[test]
fn null_where_not_nullable_is_an_error() {
    use messages::MetadataRequest;
    // Topics is nullable ("all topics") only from v1.
    let all_topics = MetadataRequest {
        topics: None,
        ..Default::default()
    };
    assert!(matches!(
        all_topics.encode(&mut Vec::new(), 0),
        Err(Error::NullNotAllowed {
            field: "MetadataRequest.Topics",
            version: 0
        })
    ));
    assert!(all_topics.encode(&mut Vec::new(), 1).is_ok());
    // And a null on the wire where the version does not allow it is a decode error.
    assert!(matches!(
        MetadataRequest::decode(&mut &[0xffu8, 0xff, 0xff, 0xff][..], 0),
        Err(Error::NullNotAllowed {
            field: "MetadataRequest.Topics",
            version: 0
        })
    ));
    // Records are nullable: None encodes as a null (-1) length.
    let partition = messages::produce_request::PartitionProduceData {
        records: None,
        ..Default::default()
    };
    let topic = messages::produce_request::TopicProduceData {
        name: "t".into(),
        partition_data: vec![partition],
        ..Default::default()
    };
    let produce = messages::ProduceRequest {
        topic_data: vec![topic],
        ..Default::default()
    };
    let bytes = encode(&produce, 3);
    assert_eq!(&bytes[bytes.len() - 4..], [0xff, 0xff, 0xff, 0xff]);
}

#[test]
fn non_ignorable_field_missing_from_a_version_is_an_error() {
    // FindCoordinator: KeyType exists from v1 and is not ignorable.
    let req = messages::FindCoordinatorRequest {
        key_type: 1,
        ..Default::default()
    };
    assert!(matches!(
        req.encode(&mut Vec::new(), 0),
        Err(Error::FieldNotSupported { version: 0, .. })
    ));
    assert!(req.encode(&mut Vec::new(), 1).is_ok());
    // ThrottleTimeMs is ignorable: dropped silently at v0.
    let resp = messages::ApiVersionsResponse {
        throttle_time_ms: 5,
        ..Default::default()
    };
    assert_eq!(encode(&resp, 0), [0, 0, 0, 0, 0, 0]);
}

#[test]
fn unsupported_versions_are_errors() {
    let req = messages::ApiVersionsRequest::default();
    let too_new = messages::ApiVersionsRequest::VALID_VERSIONS.max + 1;
    assert!(matches!(
        req.encode(&mut Vec::new(), too_new),
        Err(Error::UnsupportedVersion { .. })
    ));
    assert!(matches!(
        messages::ApiVersionsRequest::decode(&mut &[][..], -1),
        Err(Error::UnsupportedVersion { .. })
    ));
}

#[test]
fn hostile_lengths_fail_without_allocating() {
    // An ApiVersions v0 response claiming 2^31-1 api keys with 6 bytes behind it.
    let frame = [0u8, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 3];
    assert!(matches!(
        messages::ApiVersionsResponse::decode(&mut &frame[..], 0),
        Err(Error::Truncated { .. })
    ));
    // A compact string claiming 2^32-2 bytes (ApiVersions v3 ClientSoftwareName).
    let name = [0xffu8, 0xff, 0xff, 0xff, 0x0f, b'x'];
    assert!(matches!(
        messages::ApiVersionsRequest::decode(&mut &name[..], 3),
        Err(Error::Truncated {
            needed: 0xffff_fffe,
            ..
        })
    ));
    // A tagged field claiming more bytes than remain (request header v2, null client id).
    let mut buf = BytesMut::new();
    buf.put_i16(18);
    buf.put_i16(3);
    buf.put_i32(1);
    buf.put_i16(-1);
    buf.put_slice(&[0x01, 0x00, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(
        RequestHeader::decode(&mut buf.freeze(), 2),
        Err(Error::Truncated {
            context: "tagged field value",
            ..
        })
    ));
    // A classic nullable string of length -1 is null, -2 is null as well (any negative).
    let header = [0u8, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xfe];
    assert_eq!(
        RequestHeader::decode(&mut &header[..], 1)
            .unwrap()
            .client_id,
        None
    );
}

#[test]
fn unknown_tagged_fields_survive_a_round_trip() {
    // Response header v1 with tags 5 and 9 that this crate does not know.
    let wire = [0u8, 0, 0, 42, 2, 5, 1, 0xaa, 9, 2, 0xbb, 0xcc];
    let header = ResponseHeader::decode(&mut &wire[..], 1).unwrap();
    assert_eq!(header.correlation_id, 42);
    assert_eq!(
        header.unknown_tagged_fields,
        vec![
            (5, Bytes::from_static(&[0xaa])),
            (9, Bytes::from_static(&[0xbb, 0xcc]))
        ]
    );
    assert_eq!(encode(&header, 1), wire);
}

#[test]
fn header_versions_follow_flexible_versions_except_api_versions_response() {
    assert_eq!(ApiKey::Metadata.request_header_version(8), 1);
    assert_eq!(ApiKey::Metadata.request_header_version(9), 2);
    assert_eq!(ApiKey::Metadata.response_header_version(8), 0);
    assert_eq!(ApiKey::Metadata.response_header_version(9), 1);
    assert_eq!(ApiKey::ApiVersions.request_header_version(3), 2);
    assert_eq!(ApiKey::ApiVersions.response_header_version(3), 0);
    assert_eq!(ApiKey::ApiVersions.response_header_version(4), 0);
    assert_eq!(ApiKey::Produce.code(), 0);
    assert_eq!(ApiKey::try_from(18).unwrap(), ApiKey::ApiVersions);
    assert!(matches!(
        ApiKey::try_from(-5),
        Err(Error::UnknownApiKey(-5))
    ));
    for key in ApiKey::ALL {
        assert_eq!(ApiKey::try_from(key.code()).unwrap(), key);
    }
}

#[test]
fn defaults_follow_the_spec() {
    let r = messages::ApiVersionsResponse::default();
    assert_eq!(r.finalized_features_epoch, -1);
    let m = messages::MetadataRequest::default();
    assert!(m.allow_auto_topic_creation);
    let p = messages::ProduceRequest::default();
    assert_eq!(p.transactional_id, None);
}

#[test]
fn unstable_latest_versions_are_not_offered() {
    // The specs mark these latest versions unstable: the crate stops one below.
    for key in [ApiKey::StreamsGroupHeartbeat, ApiKey::StreamsGroupDescribe] {
        assert!(
            key.valid_versions().is_empty(),
            "{key}: {:?}",
            key.valid_versions()
        );
    }
    assert_eq!(ApiKey::InitProducerId.valid_versions().max, 5);
    assert_eq!(ApiKey::OffsetCommit.valid_versions().max, 9);
    // Transaction version 2 (KIP-890) is stable in the pinned Kafka.
    assert_eq!(ApiKey::EndTxn.valid_versions().max, 5);
    assert!(ApiKey::Produce.valid_versions().contains(12));
}

#[test]
fn request_frame_carries_size_header_and_body() {
    let frame =
        encode_request_frame(&messages::ApiVersionsRequest::default(), 0, 9, Some("x")).unwrap();
    assert_eq!(
        &frame[..],
        [0, 0, 0, 11, 0, 18, 0, 0, 0, 0, 0, 9, 0, 1, b'x']
    );
}

#[test]
fn api_versions_falls_back_to_v0_when_the_broker_lacks_the_version() {
    // What a broker that does not know ApiVersions v3 answers: header v0 (correlation
    // id 5) and a v0 body: UNSUPPORTED_VERSION (35), api keys [18: 0..2].
    let frame: &[u8] = &[0, 0, 0, 5, 0, 35, 0, 0, 0, 1, 0, 18, 0, 0, 0, 2];
    let mut frame = Bytes::from_static(frame);
    let header =
        ResponseHeader::decode(&mut frame, ApiKey::ApiVersions.response_header_version(3)).unwrap();
    assert_eq!(header.correlation_id, 5);
    let (resp, read_at) = decode_api_versions_response(&frame, 3).unwrap();
    assert_eq!(read_at, 0);
    assert_eq!(resp.error_code, 35);
    assert_eq!(resp.api_keys.len(), 1);
    let listed = &resp.api_keys[0];
    assert_eq!(
        (listed.api_key, listed.min_version, listed.max_version),
        (18, 0, 2)
    );
    // The retry version: the highest the broker lists, capped by ours.
    let retry = listed
        .max_version
        .min(ApiKey::ApiVersions.valid_versions().max);
    assert_eq!(retry, 2);

    // A proper v3 answer is read at v3.
    let ok = messages::ApiVersionsResponse {
        api_keys: vec![messages::api_versions_response::ApiVersion {
            api_key: 18,
            min_version: 0,
            max_version: 4,
            ..Default::default()
        }],
        ..Default::default()
    };
    let body = Bytes::from(encode(&ok, 3));
    assert_eq!(decode_api_versions_response(&body, 3).unwrap(), (ok, 3));
}

#[test]
fn every_request_spec_has_an_api_key() {
    // Set by scripts/test to the pinned Kafka's specs (`scripts/kafka messages`).
    let Some(dir) = std::env::var_os("KAFKA_MESSAGES_DIR").map(std::path::PathBuf::from) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "KAFKA_MESSAGES_DIR is not set (scripts/test sets it)"
        );
        eprintln!("!! SKIPPING: KAFKA_MESSAGES_DIR is not set (run scripts/test)");
        return;
    };
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no Kafka message specs at {}: {e}", dir.display()));
    let mut codes = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with("Request.json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("\"validVersions\": \"none\"") {
            // A removed API (e.g. LeaderAndIsr in Kafka 4.0): no codec, no ApiKey.
            continue;
        }
        let key_line = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("//"))
            .find(|l| l.starts_with("\"apiKey\""));
        if let Some(line) = key_line {
            let digits: String = line.chars().filter(|c| c.is_ascii_digit()).collect();
            codes.push((digits.parse::<i16>().unwrap(), name));
        }
    }
    assert_eq!(
        codes.len(),
        ApiKey::ALL.len(),
        "request specs vs ApiKey variants"
    );
    for (code, name) in codes {
        let key = ApiKey::try_from(code).unwrap_or_else(|_| panic!("{name}: no ApiKey {code}"));
        assert_eq!(format!("{key}Request.json"), name);
    }
}

#[test]
fn fake_broker_helpers_mirror_the_client_helpers() {
    let req = messages::MetadataRequest {
        topics: None,
        ..Default::default()
    };
    let frame = encode_request_frame(&req, 12, 77, Some("c")).unwrap();
    let mut content = frame.freeze().slice(4..);
    let header = decode_request_frame_header(&mut content).unwrap();
    assert_eq!(header.request_api_key, ApiKey::Metadata.code());
    assert_eq!(
        (header.request_api_version, header.correlation_id),
        (12, 77)
    );
    assert_eq!(header.client_id.as_deref(), Some("c"));
    assert_eq!(
        messages::MetadataRequest::decode(&mut content, 12).unwrap(),
        req
    );

    let resp = messages::MetadataResponse {
        controller_id: 3,
        ..Default::default()
    };
    let frame = encode_response_frame(&resp, 12, 77).unwrap();
    let mut content = frame.freeze().slice(4..);
    let (h, back) = decode_response_frame::<messages::MetadataResponse>(&mut content, 12).unwrap();
    assert_eq!((h.correlation_id, back), (77, resp));
}

/// The jars of the Kafka broker `scripts/kafka` fetched: `STROM_KAFKA_LIBS`, or the
/// newest `<cache>/strom/kafka-*/libs` holding a kafka-clients jar.
fn kafka_libs() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("STROM_KAFKA_LIBS") {
        return Some(dir.into());
    }
    let cache = std::env::var_os("STROM_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache"))
                })?;
            Some(base.join("strom"))
        })?;
    let mut dirs: Vec<_> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("libs")))
        .filter(|libs| {
            std::fs::read_dir(libs).is_ok_and(|mut it| {
                it.any(|e| {
                    e.is_ok_and(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with("kafka-clients-")
                    })
                })
            })
        })
        .collect();
    dirs.sort();
    dirs.pop()
}

fn add_cross_check_corpus<T: Message + Arbitrary>(out: &mut String, name: &str) {
    use std::fmt::Write as _;
    for version in T::VALID_VERSIONS.iter() {
        for seed in 0..6u64 {
            let mut g = Gen::new(seed.wrapping_mul(0x1234_5678_9abc) ^ version as u64);
            g.min_unknown_tag = 10_000;
            let value = if seed == 0 {
                T::default()
            } else {
                T::arbitrary(&mut g, version)
            };
            let mut buf = Vec::new();
            value.encode(&mut buf, version).unwrap();
            let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(out, "{name} {version} {hex}");
        }
    }
}

/// Kafka's own Java message classes (from the broker jars) read every encoding we make,
/// of every message at every version both know, and write it back byte for byte
/// (unknown tagged fields included: they use tags from 10000, which Kafka keeps raw).
#[test]
fn kafka_java_codec_reads_and_rewrites_our_bytes() {
    use std::process::Command;
    let libs = kafka_libs();
    let javac_ok = Command::new("javac")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    let (Some(libs), true) = (libs, javac_ok) else {
        eprintln!(
            "!! SKIPPING the Java cross-check: needs javac and the Kafka jars (scripts/kafka fetch)"
        );
        return;
    };
    let mut corpus = String::new();
    macro_rules! corpus {
        ($module:ident, $ty:ident) => {
            add_cross_check_corpus::<messages::$ty>(&mut corpus, stringify!($ty));
        };
    }
    for_all_messages!(corpus);

    let work = std::env::temp_dir().join(format!("strom-wire-cross-check-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let corpus_file = work.join("corpus.txt");
    std::fs::write(&corpus_file, corpus).unwrap();
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/WireCrossCheck.java");
    let classpath = format!("{}/*", libs.display());
    let javac = Command::new("javac")
        .args(["-nowarn", "-d"])
        .arg(&work)
        .arg("-cp")
        .arg(&classpath)
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        javac.status.success(),
        "javac: {}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let run = Command::new("java")
        .arg("-cp")
        .arg(format!("{}:{classpath}", work.display()))
        .arg("WireCrossCheck")
        .arg(&corpus_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        run.status.success(),
        "Kafka's codec disagrees:\n{}\n{}",
        stdout.lines().take(40).collect::<Vec<_>>().join("\n"),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("Java cross-check: {}", stdout.trim());
}
