//! Cross-checks against rskafka's record batch codec (exposed by its
//! `unstable-fuzzing` feature): batches we encode decode with rskafka and vice versa,
//! for every codec. rskafka headers have non-null values and it writes control
//! batches without record framing, so both are left out of the comparison.
#![allow(clippy::unwrap_used)] // test crate: unwrap is the assertion

mod records_support;

use std::io::Cursor;

use bytes::Bytes;
use kafka_wire::compression::Compression;
use kafka_wire::records::{
    BatchParams, DecodeOptions, Header, Record, decode_records, encode_batch,
};
use proptest::prelude::*;
use records_support::*;
use rskafka::protocol::record::{
    ControlBatchOrRecords, Record as RsRecord, RecordBatch as RsBatch, RecordBatchCompression,
    RecordBatchTimestampType, RecordHeader,
};
use rskafka::protocol::traits::{ReadType, WriteType};

fn rs_codec(c: Compression) -> RecordBatchCompression {
    match c {
        Compression::None => RecordBatchCompression::NoCompression,
        Compression::Gzip => RecordBatchCompression::Gzip,
        Compression::Snappy => RecordBatchCompression::Snappy,
        Compression::Lz4 => RecordBatchCompression::Lz4,
        Compression::Zstd => RecordBatchCompression::Zstd,
    }
}

/// Records whose header values are never null (rskafka cannot express null).
fn rs_compatible(max: usize) -> impl Strategy<Value = Vec<Record>> {
    records(max).prop_map(|mut rs| {
        for r in &mut rs {
            for h in &mut r.headers {
                h.value.get_or_insert_with(Bytes::new);
            }
        }
        rs
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn rskafka_decodes_what_we_encode(
        records in rs_compatible(30),
        codec in codec(),
        transactional in any::<bool>(),
        pid in -1i64..1000,
        seq in -1i32..1000,
    ) {
        let params = BatchParams {
            base_offset: 77,
            partition_leader_epoch: 4,
            compression: codec,
            transactional,
            producer_id: pid,
            producer_epoch: 2,
            base_sequence: seq,
            ..BatchParams::default()
        };
        let bytes = encode_batch(params, &records).unwrap();
        let batch = RsBatch::read(&mut Cursor::new(bytes.to_vec())).unwrap();
        prop_assert_eq!(batch.base_offset, 77);
        prop_assert_eq!(batch.partition_leader_epoch, 4);
        prop_assert_eq!(batch.compression, rs_codec(codec));
        prop_assert_eq!(batch.is_transactional, transactional);
        prop_assert_eq!(batch.producer_id, pid);
        prop_assert_eq!(batch.producer_epoch, 2);
        prop_assert_eq!(batch.base_sequence, seq);
        prop_assert_eq!(batch.last_offset_delta, records.len() as i32 - 1);
        prop_assert_eq!(batch.first_timestamp, records[0].timestamp);
        let ControlBatchOrRecords::Records(rs) = batch.records else {
            panic!("not a data batch");
        };
        prop_assert_eq!(rs.len(), records.len());
        for (i, (theirs, ours)) in rs.iter().zip(&records).enumerate() {
            prop_assert_eq!(theirs.offset_delta, i as i32);
            prop_assert_eq!(batch.first_timestamp.wrapping_add(theirs.timestamp_delta), ours.timestamp);
            prop_assert_eq!(theirs.key.as_deref(), ours.key.as_deref());
            prop_assert_eq!(theirs.value.as_deref(), ours.value.as_deref());
            prop_assert_eq!(theirs.headers.len(), ours.headers.len());
            for (th, oh) in theirs.headers.iter().zip(&ours.headers) {
                prop_assert_eq!(th.key.as_bytes(), &oh.key[..]);
                prop_assert_eq!(&th.value[..], oh.value.as_deref().unwrap());
            }
        }
    }

    #[test]
    fn we_decode_what_rskafka_encodes(
        records in rs_compatible(30),
        codec in codec(),
        transactional in any::<bool>(),
        log_append in any::<bool>(),
    ) {
        let first = records[0].timestamp;
        let batch = RsBatch {
            base_offset: 5000,
            partition_leader_epoch: 9,
            last_offset_delta: records.len() as i32 - 1,
            first_timestamp: first,
            max_timestamp: records.iter().map(|r| r.timestamp).max().unwrap(),
            producer_id: 12,
            producer_epoch: 1,
            base_sequence: 100,
            records: ControlBatchOrRecords::Records(
                records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| RsRecord {
                        timestamp_delta: r.timestamp.wrapping_sub(first),
                        offset_delta: i as i32,
                        key: r.key.as_ref().map(|k| k.to_vec()),
                        value: r.value.as_ref().map(|v| v.to_vec()),
                        headers: r
                            .headers
                            .iter()
                            .map(|h| RecordHeader {
                                key: String::from_utf8(h.key.to_vec()).unwrap(),
                                value: h.value.as_ref().unwrap().to_vec(),
                            })
                            .collect(),
                    })
                    .collect(),
            ),
            compression: rs_codec(codec),
            is_transactional: transactional,
            timestamp_type: if log_append {
                RecordBatchTimestampType::LogAppendTime
            } else {
                RecordBatchTimestampType::CreateTime
            },
        };
        let mut bytes = Vec::new();
        batch.write(&mut bytes).unwrap();
        let set = decode_records(Bytes::from(bytes), DecodeOptions::default()).unwrap();
        prop_assert_eq!(set.batches.len(), 1);
        let ours = &set.batches[0];
        prop_assert_eq!(ours.base_offset(), 5000);
        prop_assert_eq!(ours.header.partition_leader_epoch, 9);
        prop_assert_eq!(ours.compression(), codec);
        prop_assert_eq!(ours.is_transactional(), transactional);
        prop_assert_eq!(ours.producer_id(), 12);
        prop_assert_eq!(ours.header.base_sequence, 100);
        let decoded: Vec<Record> = ours.records().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(decoded.len(), records.len());
        for (i, (d, s)) in decoded.iter().zip(&records).enumerate() {
            prop_assert_eq!(d.offset, 5000 + i as i64);
            let expected_ts = if log_append { batch.max_timestamp } else { s.timestamp };
            prop_assert_eq!(d.timestamp, expected_ts);
            prop_assert_eq!(&d.key, &s.key);
            prop_assert_eq!(&d.value, &s.value);
            prop_assert_eq!(&d.headers, &s.headers);
        }
    }
}

#[test]
fn both_codecs_produce_identical_uncompressed_bytes() {
    let records = vec![
        Record {
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![Header::new("h", Some("x"))],
            ..Record::default()
        },
        Record {
            timestamp: 1_700_000_000_000 + THIRTY_DAYS_MS,
            key: None,
            value: None,
            ..Record::default()
        },
    ];
    let ours = encode_batch(
        BatchParams {
            producer_id: 3,
            producer_epoch: 0,
            base_sequence: 0,
            ..BatchParams::default()
        },
        &records,
    )
    .unwrap();
    let theirs = RsBatch::read(&mut Cursor::new(ours.to_vec())).unwrap();
    let mut again = Vec::new();
    theirs.write(&mut again).unwrap();
    assert_eq!(&again[..], &ours[..]);
}
