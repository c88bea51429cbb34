//! Round trips of record batches through the encoder and decoder, with every codec.
#![allow(clippy::unwrap_used)] // test crate: unwrap is the assertion

mod records_support;

use bytes::Bytes;
use kafka_wire::Error;
use kafka_wire::compression::Compression;
use kafka_wire::records::{
    BatchBuilder, BatchParams, BatchReader, ControlRecord, ControlRecordType, DecodeOptions,
    Header, Record, TimestampType, decode_records, encode_batch, encode_control_batch,
};
use proptest::prelude::*;
use records_support::*;

fn params(codec: Compression, transactional: bool, pid: i64, seq: i32) -> BatchParams {
    BatchParams {
        base_offset: 1000,
        partition_leader_epoch: 7,
        compression: codec,
        transactional,
        producer_id: pid,
        producer_epoch: 3,
        base_sequence: seq,
        ..BatchParams::default()
    }
}

fn assert_same_records(decoded: &[Record], sent: &[Record], base_offset: i64) {
    assert_eq!(decoded.len(), sent.len());
    for (i, (d, s)) in decoded.iter().zip(sent).enumerate() {
        assert_eq!(d.offset, base_offset + i as i64);
        assert_eq!(d.timestamp, s.timestamp);
        assert_eq!(d.key, s.key);
        assert_eq!(d.value, s.value);
        assert_eq!(d.headers, s.headers);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn batches_round_trip_with_every_codec(
        records in records(40),
        codec in codec(),
        transactional in any::<bool>(),
        pid in -1i64..1_000_000,
        seq in -1i32..i32::MAX,
    ) {
        let bytes = encode_batch(params(codec, transactional, pid, seq), &records).unwrap();
        let set = decode_records(bytes.clone(), DecodeOptions::default()).unwrap();
        prop_assert_eq!(set.truncated_bytes, 0);
        prop_assert_eq!(set.batches.len(), 1);
        let batch = &set.batches[0];
        prop_assert_eq!(batch.magic(), 2);
        prop_assert_eq!(batch.compression(), codec);
        prop_assert_eq!(batch.is_transactional(), transactional);
        prop_assert!(!batch.is_control());
        prop_assert_eq!(batch.producer_id(), pid);
        prop_assert_eq!(batch.producer_epoch(), 3);
        prop_assert_eq!(batch.header.base_sequence, seq);
        prop_assert_eq!(batch.header.partition_leader_epoch, 7);
        prop_assert_eq!(batch.base_offset(), 1000);
        prop_assert_eq!(batch.last_offset(), 1000 + records.len() as i64 - 1);
        prop_assert_eq!(batch.header.batch_length as usize, bytes.len() - 12);
        prop_assert_eq!(batch.header.base_timestamp, records[0].timestamp);
        prop_assert_eq!(
            batch.header.max_timestamp,
            records.iter().map(|r| r.timestamp).max().unwrap()
        );
        let decoded: Vec<Record> = batch.records().collect::<Result<_, _>>().unwrap();
        assert_same_records(&decoded, &records, 1000);
    }

    #[test]
    fn concatenated_batches_decode_and_a_truncated_tail_is_reported(
        batches in prop::collection::vec((records(10), codec()), 1..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut all = Vec::new();
        let mut next_offset = 0i64;
        let mut sizes = Vec::new();
        for (records, codec) in &batches {
            let p = BatchParams { base_offset: next_offset, compression: *codec, ..BatchParams::default() };
            let b = encode_batch(p, records).unwrap();
            sizes.push(b.len());
            all.extend_from_slice(&b);
            next_offset += records.len() as i64;
        }
        let all = Bytes::from(all);
        let set = decode_records(all.clone(), DecodeOptions::default()).unwrap();
        prop_assert_eq!(set.batches.len(), batches.len());
        prop_assert_eq!(set.next_offset(), Some(next_offset));
        let mut offset = 0;
        for (batch, (records, _)) in set.batches.iter().zip(&batches) {
            let decoded: Vec<Record> = batch.records().collect::<Result<_, _>>().unwrap();
            assert_same_records(&decoded, records, offset);
            offset += records.len() as i64;
        }

        // Cut inside the last batch: the complete ones come back, the rest is reported.
        let last = *sizes.last().unwrap();
        let keep_of_last = cut.index(last); // 0..last
        let cut_len = all.len() - last + keep_of_last;
        let set = decode_records(all.slice(..cut_len), DecodeOptions::default()).unwrap();
        prop_assert_eq!(set.batches.len(), batches.len() - 1);
        prop_assert_eq!(set.truncated_bytes, keep_of_last);
    }

    #[test]
    fn control_batches_round_trip(
        commit in any::<bool>(),
        epoch in any::<i32>(),
        pid in 0i64..i64::MAX,
        ts in any::<i64>(),
    ) {
        let marker = if commit { ControlRecord::commit(epoch) } else { ControlRecord::abort(epoch) };
        let p = BatchParams { base_offset: 42, transactional: true, producer_id: pid, producer_epoch: 1, ..BatchParams::default() };
        let bytes = encode_control_batch(p, ts, &marker).unwrap();
        let set = decode_records(bytes, DecodeOptions::default()).unwrap();
        let batch = &set.batches[0];
        prop_assert!(batch.is_control());
        prop_assert!(batch.is_transactional());
        prop_assert_eq!(batch.producer_id(), pid);
        prop_assert_eq!(batch.last_offset(), 42);
        let parsed = batch.control_record().unwrap().unwrap();
        prop_assert_eq!(parsed, marker);
        prop_assert_eq!(
            parsed.kind,
            if commit { ControlRecordType::Commit } else { ControlRecordType::Abort }
        );
    }

    #[test]
    fn legacy_message_sets_decode(
        records in records(12),
        magic in 0i8..=1,
        codec in codec(),
        base in 0i64..1_000_000,
        log_append_time in prop::option::of(0i64..2_000_000_000_000),
    ) {
        // Legacy messages have no headers; timestamps only in magic 1.
        let mut records = records;
        for (i, r) in records.iter_mut().enumerate() {
            r.offset = base + i as i64;
            r.headers.clear();
        }
        let bytes = Bytes::from(legacy_message_set(magic, codec, log_append_time, &records));
        let set = decode_records(bytes, DecodeOptions::default()).unwrap();
        prop_assert_eq!(set.truncated_bytes, 0);
        let expected_batches = if codec == Compression::None { records.len() } else { 1 };
        prop_assert_eq!(set.batches.len(), expected_batches);
        let mut decoded = Vec::new();
        for batch in &set.batches {
            prop_assert_eq!(batch.magic(), magic);
            prop_assert_eq!(batch.compression(), codec);
            prop_assert_eq!(batch.producer_id(), -1);
            for r in batch.records() {
                decoded.push(r.unwrap());
            }
        }
        prop_assert_eq!(set.batches.last().unwrap().last_offset(), records.last().unwrap().offset);
        prop_assert_eq!(decoded.len(), records.len());
        for (d, s) in decoded.iter().zip(&records) {
            prop_assert_eq!(d.offset, s.offset);
            let expected_ts = match (magic, log_append_time) {
                (0, _) => -1,
                (_, Some(t)) => t,
                _ => s.timestamp,
            };
            prop_assert_eq!(d.timestamp, expected_ts);
            prop_assert_eq!(&d.key, &s.key);
            prop_assert_eq!(&d.value, &s.value);
        }
    }
}

#[test]
fn timestamps_more_than_25_days_apart_survive() {
    let base = 1_700_000_000_000i64;
    let records: Vec<Record> = [
        base,
        base + THIRTY_DAYS_MS,
        base - THIRTY_DAYS_MS,
        base + 400 * THIRTY_DAYS_MS,
    ]
    .iter()
    .map(|&timestamp| Record {
        timestamp,
        value: Some(Bytes::from_static(b"v")),
        ..Record::default()
    })
    .collect();
    let set = decode_records(
        encode_batch(BatchParams::default(), &records).unwrap(),
        DecodeOptions::default(),
    )
    .unwrap();
    let ts: Vec<i64> = set.batches[0]
        .records()
        .map(|r| r.unwrap().timestamp)
        .collect();
    assert_eq!(ts, records.iter().map(|r| r.timestamp).collect::<Vec<_>>());
}

#[test]
fn log_append_time_batches_give_every_record_the_max_timestamp() {
    let mut b = BatchBuilder::new(BatchParams {
        timestamp_type: TimestampType::LogAppendTime,
        ..BatchParams::default()
    });
    b.append(10, None, Some(b"a"), &[]).unwrap();
    b.append(30, None, Some(b"b"), &[]).unwrap();
    b.append(20, None, Some(b"c"), &[]).unwrap();
    let set = decode_records(b.finish().unwrap(), DecodeOptions::default()).unwrap();
    let batch = &set.batches[0];
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    assert!(batch.records().all(|r| r.unwrap().timestamp == 30));
}

#[test]
fn null_keys_values_and_header_values_are_kept_apart_from_empty_ones() {
    let records = vec![
        Record {
            timestamp: 1,
            key: None,
            value: Some(Bytes::new()),
            headers: vec![
                Header::new("a", None::<Bytes>),
                Header::new("b", Some(Bytes::new())),
                Header::new("", Some("x")),
            ],
            ..Record::default()
        },
        Record {
            timestamp: 2,
            key: Some(Bytes::new()),
            value: None,
            ..Record::default()
        },
    ];
    let set = decode_records(
        encode_batch(BatchParams::default(), &records).unwrap(),
        DecodeOptions::default(),
    )
    .unwrap();
    let decoded: Vec<Record> = set.batches[0].records().map(Result::unwrap).collect();
    assert_same_records(&decoded, &records, 0);
    assert_eq!(decoded[0].headers[0].key_str(), Some("a"));
}

#[test]
fn empty_input_and_short_tails_are_not_errors() {
    for n in 0..12 {
        let set = decode_records(Bytes::from(vec![0u8; n]), DecodeOptions::default()).unwrap();
        assert!(set.batches.is_empty());
        assert_eq!(set.truncated_bytes, n);
    }
}

#[test]
fn a_batch_claiming_more_bytes_than_the_fetch_holds_is_a_partial_batch() {
    let b = encode_batch(
        BatchParams::default(),
        &[Record {
            value: Some(Bytes::from_static(b"x")),
            ..Record::default()
        }],
    )
    .unwrap();
    let mut reader = BatchReader::new(b.slice(..b.len() - 1));
    assert!(reader.next().is_none());
    assert_eq!(reader.remaining(), b.len() - 1);
}

#[test]
fn empty_batches_cannot_be_built() {
    assert!(matches!(
        BatchBuilder::new(BatchParams::default()).finish(),
        Err(Error::Encode { .. })
    ));
}

#[test]
fn decompressed_size_limit_is_enforced_per_batch_and_per_reader() {
    let records: Vec<Record> = (0..100)
        .map(|_| Record {
            value: Some(Bytes::from(vec![b'z'; 1000])),
            ..Record::default()
        })
        .collect();
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let one = encode_batch(
            BatchParams {
                compression: codec,
                ..BatchParams::default()
            },
            &records,
        )
        .unwrap();
        let opts = DecodeOptions {
            max_decompressed_bytes: 50_000,
            ..DecodeOptions::default()
        };
        assert!(
            matches!(
                decode_records(one.clone(), opts),
                Err(Error::DecompressedTooLarge { .. })
            ),
            "{codec}"
        );
        let two = Bytes::from([one.to_vec(), one.to_vec()].concat());
        let opts = DecodeOptions {
            max_total_decompressed_bytes: 150_000,
            ..DecodeOptions::default()
        };
        let mut reader = BatchReader::with_options(two, opts);
        assert!(reader.next().unwrap().is_ok());
        assert!(
            matches!(reader.next(), Some(Err(Error::DecompressedTooLarge { .. }))),
            "{codec}"
        );
    }
}

#[test]
fn legacy_wrappers_count_against_the_reader_budget() {
    let records: Vec<Record> = (0..50)
        .map(|i| Record {
            offset: i,
            value: Some(Bytes::from(vec![b'z'; 1000])),
            ..Record::default()
        })
        .collect();
    let one = legacy_message_set(1, Compression::Gzip, None, &records);
    let two = Bytes::from([one.clone(), one].concat());
    let opts = DecodeOptions {
        max_total_decompressed_bytes: 80_000,
        ..DecodeOptions::default()
    };
    let mut reader = BatchReader::with_options(two, opts);
    let first = reader.next().unwrap().unwrap();
    assert!(first.decompressed_len() > 50_000);
    assert!(matches!(
        reader.next(),
        Some(Err(Error::DecompressedTooLarge { .. }))
    ));
}

#[test]
fn decoding_does_not_copy_keys_and_values() {
    let records = vec![Record {
        key: Some(Bytes::from_static(b"key")),
        value: Some(Bytes::from_static(b"value")),
        ..Record::default()
    }];
    let bytes = encode_batch(BatchParams::default(), &records).unwrap();
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    let set = decode_records(bytes.clone(), DecodeOptions::default()).unwrap();
    let r = set.batches[0].records().next().unwrap().unwrap();
    assert!(range.contains(&(r.key.unwrap().as_ptr() as usize)));
    assert!(range.contains(&(r.value.unwrap().as_ptr() as usize)));
}
