//! Golden bytes: record batches written by the Java producer and returned by a real
//! broker in Fetch v4 responses, one fixture per codec (see
//! `tests/fixtures/records/README.md` for how they were captured).
#![allow(clippy::unwrap_used)] // test crate: unwrap is the assertion

use bytes::Bytes;
use kafka_wire::compression::Compression;
use kafka_wire::records::{
    BatchBuilder, BatchParams, DecodeOptions, Header, Record, RecordBatch, TimestampType,
    decode_records,
};

fn fixture(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/fixtures/records/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap())
}

fn h(k: &'static str, v: &'static str) -> Header {
    Header::new(k, Some(v))
}

/// (offset, key, value, headers) of one produced record.
type Expected = (i64, Option<String>, Option<String>, Vec<Header>);

/// The records the capture script produced.
fn expected() -> Vec<Expected> {
    let long = vec!["stream"; 30].join(" ");
    vec![
        (0, Some("k1".into()), Some("hello".into()), vec![]),
        (1, Some("k2".into()), Some("world".into()), vec![]),
        (2, Some("k3".into()), Some(long), vec![]),
        (
            3,
            Some("k4".into()),
            Some("with-headers".into()),
            vec![h("h1", "v1"), h("h2", "v2")],
        ),
        (4, None, Some("null-key".into()), vec![h("h3", "x")]),
        (5, Some("k6".into()), None, vec![h("h4", "y")]),
    ]
}

fn check_batch_metadata(batch: &RecordBatch, codec: Compression) {
    assert_eq!(batch.magic(), 2);
    assert_eq!(batch.compression(), codec);
    assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
    assert!(!batch.is_transactional());
    assert!(!batch.is_control());
    assert!(batch.producer_id() >= 0, "idempotent Java producer");
    assert_eq!(batch.producer_epoch(), 0);
    assert_eq!(batch.header.base_sequence, 0);
    assert_eq!(batch.record_count(), 3);
    assert_eq!(batch.last_offset(), batch.base_offset() + 2);
}

fn decode_fixture(name: &str, codec: Compression) -> Vec<Record> {
    let set = decode_records(fixture(name), DecodeOptions::default()).unwrap();
    assert_eq!(set.truncated_bytes, 0, "{name}");
    assert_eq!(set.batches.len(), 2, "{name}");
    assert_eq!(set.next_offset(), Some(6));
    let mut records = Vec::new();
    for batch in &set.batches {
        check_batch_metadata(batch, codec);
        records.extend(batch.records().map(Result::unwrap));
    }
    let as_str = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8(b.to_vec()).unwrap());
    let expected = expected();
    assert_eq!(records.len(), expected.len(), "{name}");
    for (r, (offset, key, value, headers)) in records.iter().zip(expected) {
        assert_eq!(r.offset, offset, "{name}");
        assert_eq!(as_str(&r.key), key, "{name} offset {offset}");
        assert_eq!(as_str(&r.value), value, "{name} offset {offset}");
        assert_eq!(r.headers, headers, "{name} offset {offset}");
        assert!(
            r.timestamp > 1_577_836_800_000,
            "{name}: create time after 2020"
        );
    }
    records
}

#[test]
fn broker_batches_decode_uncompressed() {
    decode_fixture("none", Compression::None);
}

#[test]
fn broker_batches_decode_gzip() {
    decode_fixture("gzip", Compression::Gzip);
}

#[test]
fn broker_batches_decode_xerial_snappy_from_java() {
    assert!(fixture("snappy")[61..].starts_with(&kafka_wire::compression::snappy::XERIAL_MAGIC));
    decode_fixture("snappy", Compression::Snappy);
}

#[test]
fn broker_batches_decode_lz4() {
    decode_fixture("lz4", Compression::Lz4);
}

#[test]
fn broker_batches_decode_zstd() {
    decode_fixture("zstd", Compression::Zstd);
}

#[test]
fn a_fetch_cut_by_the_broker_gives_the_complete_batch_and_the_tail_size() {
    let bytes = fixture("none-truncated");
    let set = decode_records(bytes.clone(), DecodeOptions::default()).unwrap();
    assert_eq!(set.batches.len(), 1);
    assert_eq!(set.truncated_bytes, bytes.len() - 309);
    assert_eq!(set.next_offset(), Some(3));
}

#[test]
fn re_encoding_the_uncompressed_broker_batches_gives_the_same_bytes() {
    let bytes = fixture("none");
    let set = decode_records(bytes.clone(), DecodeOptions::default()).unwrap();
    let mut out = Vec::new();
    for batch in &set.batches {
        let hdr = &batch.header;
        let mut b = BatchBuilder::new(BatchParams {
            base_offset: hdr.base_offset,
            partition_leader_epoch: hdr.partition_leader_epoch,
            compression: Compression::None,
            compression_level: None,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            control: false,
            producer_id: hdr.producer_id,
            producer_epoch: hdr.producer_epoch,
            base_sequence: hdr.base_sequence,
        });
        for r in batch.records() {
            b.append_record(&r.unwrap()).unwrap();
        }
        out.extend_from_slice(&b.finish().unwrap());
    }
    assert_eq!(&out[..], &bytes[..]);
}

#[test]
fn re_encoded_broker_records_round_trip_with_every_codec() {
    let records = decode_fixture("none", Compression::None);
    for codec in Compression::ALL {
        let mut b = BatchBuilder::new(BatchParams {
            compression: codec,
            ..BatchParams::default()
        });
        for r in &records {
            b.append_record(r).unwrap();
        }
        let set = decode_records(b.finish().unwrap(), DecodeOptions::default()).unwrap();
        let again: Vec<Record> = set.batches[0].records().map(Result::unwrap).collect();
        for (a, r) in again.iter().zip(&records) {
            assert_eq!(
                (&a.key, &a.value, &a.headers, a.timestamp),
                (&r.key, &r.value, &r.headers, r.timestamp),
                "{codec}"
            );
        }
    }
}

/// `txn.bin`: one committed transaction (c1..c3), its COMMIT marker, one aborted
/// transaction (a1, a2) and its ABORT marker, written by our transactional producer
/// and returned by the broker (captured by `integration-tests/tests/capture_txn_fixture.rs`).
#[test]
fn transactional_batches_and_their_control_markers_decode() {
    use kafka_wire::records::ControlRecordType;
    let set = decode_records(fixture("txn"), DecodeOptions::default()).unwrap();
    assert_eq!(set.truncated_bytes, 0);
    assert_eq!(set.batches.len(), 4);
    let (data1, commit, data2, abort) = (
        &set.batches[0],
        &set.batches[1],
        &set.batches[2],
        &set.batches[3],
    );
    for b in &set.batches {
        assert!(b.is_transactional());
        assert_eq!(b.producer_id(), data1.producer_id());
        assert!(b.producer_id() >= 0);
    }
    assert!(!data1.is_control() && !data2.is_control());
    assert!(commit.is_control() && abort.is_control());
    let values = |b: &RecordBatch| -> Vec<String> {
        b.records()
            .map(|r| String::from_utf8(r.unwrap().value.unwrap().to_vec()).unwrap())
            .collect()
    };
    assert_eq!(values(data1), ["c1", "c2", "c3"]);
    assert_eq!(values(data2), ["a1", "a2"]);
    assert_eq!(
        commit.control_record().unwrap().unwrap().kind,
        ControlRecordType::Commit
    );
    assert_eq!(
        abort.control_record().unwrap().unwrap().kind,
        ControlRecordType::Abort
    );
    // Offsets: 3 records, the marker, 2 records, the marker.
    assert_eq!(
        set.batches
            .iter()
            .map(|b| (b.base_offset(), b.last_offset()))
            .collect::<Vec<_>>(),
        [(0, 2), (3, 3), (4, 5), (6, 6)]
    );
}
