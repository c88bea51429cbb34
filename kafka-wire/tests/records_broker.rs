//! Batches we encode, sent to a real broker in hand-encoded Produce v7 requests and
//! read back with Fetch v4, for every codec. The broker validates each batch (CRC32C,
//! and for compressed batches it decompresses and checks every record with Java's
//! codecs), so this shows that Java accepts our xerial snappy, LZ4 frames, gzip and
//! zstd.
//!
//! Needs `KAFKA_BOOTSTRAP` (set by `scripts/test`). Without it the test skips loudly,
//! except under CI (`CI` set), where it fails.
#![allow(clippy::unwrap_used)] // test crate: unwrap is the assertion

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_wire::compression::Compression;
use kafka_wire::records::{
    BatchParams, DecodeOptions, Header, Record, decode_records, encode_batch,
};

fn bootstrap() -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(b) if !b.is_empty() => Some(b.split(',').next().unwrap().to_string()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "KAFKA_BOOTSTRAP is not set under CI: broker tests must run"
            );
            eprintln!(
                "\n*** SKIPPED records_broker: KAFKA_BOOTSTRAP not set (run scripts/test) ***\n"
            );
            None
        }
    }
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

/// Sends one request (header v1: api key, version, correlation id, client id) and
/// returns the response after its correlation id.
fn round_trip(conn: &mut TcpStream, api_key: i16, version: i16, body: &[u8]) -> Bytes {
    let mut req = BytesMut::new();
    req.put_i16(api_key);
    req.put_i16(version);
    req.put_i32(1);
    put_str(&mut req, "strom-records-test");
    req.put_slice(body);
    conn.write_all(&(req.len() as i32).to_be_bytes()).unwrap();
    conn.write_all(&req).unwrap();
    let mut size = [0u8; 4];
    conn.read_exact(&mut size).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(size) as usize];
    conn.read_exact(&mut resp).unwrap();
    let mut resp = Bytes::from(resp);
    assert_eq!(resp.get_i32(), 1, "correlation id");
    resp
}

fn skip_str(b: &mut Bytes) {
    let n = b.get_i16();
    b.advance(n.max(0) as usize);
}

/// Metadata v4 for `topic` with auto-creation allowed: creates the topic (Produce
/// alone does not).
fn create_by_metadata(conn: &mut TcpStream, topic: &str) {
    let mut body = BytesMut::new();
    body.put_i32(1);
    put_str(&mut body, topic);
    body.put_u8(1); // allow_auto_topic_creation
    round_trip(conn, 3, 4, &body);
}

/// Produce v7 (acks -1; zstd needs v7+, and v3-v8 share this layout) of `records` to
/// partition 0; returns the error code.
fn produce(conn: &mut TcpStream, topic: &str, records: &Bytes) -> i16 {
    let mut body = BytesMut::new();
    body.put_i16(-1); // transactional id: null
    body.put_i16(-1); // acks: all
    body.put_i32(10_000);
    body.put_i32(1);
    put_str(&mut body, topic);
    body.put_i32(1);
    body.put_i32(0);
    body.put_i32(records.len() as i32);
    body.put_slice(records);
    let mut resp = round_trip(conn, 0, 7, &body);
    assert_eq!(resp.get_i32(), 1);
    skip_str(&mut resp);
    assert_eq!(resp.get_i32(), 1);
    assert_eq!(resp.get_i32(), 0);
    resp.get_i16()
}

/// Fetch v4 of partition 0 from offset 0; returns (error code, records).
fn fetch(conn: &mut TcpStream, topic: &str) -> (i16, Bytes) {
    let mut body = BytesMut::new();
    body.put_i32(-1);
    body.put_i32(500);
    body.put_i32(1);
    body.put_i32(10 << 20);
    body.put_i8(0);
    body.put_i32(1);
    put_str(&mut body, topic);
    body.put_i32(1);
    body.put_i32(0);
    body.put_i64(0);
    body.put_i32(10 << 20);
    let mut resp = round_trip(conn, 1, 4, &body);
    resp.get_i32(); // throttle
    assert_eq!(resp.get_i32(), 1);
    skip_str(&mut resp);
    assert_eq!(resp.get_i32(), 1);
    assert_eq!(resp.get_i32(), 0);
    let error = resp.get_i16();
    resp.get_i64(); // high watermark
    resp.get_i64(); // last stable offset
    let aborted = resp.get_i32();
    resp.advance(aborted.max(0) as usize * 16);
    let len = resp.get_i32();
    (error, resp.split_to(len.max(0) as usize))
}

fn sample_records(n: usize) -> Vec<Record> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (0..n)
        .map(|i| Record {
            timestamp: now + i as i64,
            key: (i % 4 != 0).then(|| Bytes::from(format!("key-{i}"))),
            value: (i % 7 != 3).then(|| Bytes::from(format!("value {i} ").repeat(1 + i % 50))),
            headers: if i % 2 == 0 {
                vec![
                    Header::new("trace", Some(format!("t{i}"))),
                    Header::new("null", None::<Bytes>),
                ]
            } else {
                vec![]
            },
            ..Record::default()
        })
        .collect()
}

#[test]
fn broker_accepts_and_returns_our_batches_with_every_codec() {
    let Some(addr) = bootstrap() else { return };
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    for codec in Compression::ALL {
        let topic = format!("strom-records-{codec}-{nonce}");
        let records = sample_records(200);
        let batch = encode_batch(
            BatchParams {
                compression: codec,
                ..BatchParams::default()
            },
            &records,
        )
        .unwrap();
        // Metadata auto-creates the topic; retry the produce while its leader is elected.
        let mut error = -1;
        for _ in 0..50 {
            create_by_metadata(&mut conn, &topic);
            error = produce(&mut conn, &topic, &batch);
            if error == 0 {
                break;
            }
            assert!(matches!(error, 3 | 5 | 6), "{codec}: produce error {error}");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(error, 0, "{codec}: produce kept failing");
        let (error, fetched) = fetch(&mut conn, &topic);
        assert_eq!(error, 0, "{codec}: fetch error");
        let set = decode_records(fetched, DecodeOptions::default()).unwrap();
        assert_eq!(set.batches.len(), 1, "{codec}");
        assert_eq!(set.batches[0].compression(), codec);
        let got: Vec<Record> = set.batches[0].records().map(Result::unwrap).collect();
        assert_eq!(got.len(), records.len());
        for (i, (g, r)) in got.iter().zip(&records).enumerate() {
            assert_eq!(g.offset, i as i64);
            assert_eq!(
                (&g.key, &g.value, &g.headers, g.timestamp),
                (&r.key, &r.value, &r.headers, r.timestamp),
                "{codec} #{i}"
            );
        }
    }
}
