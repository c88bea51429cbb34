//! Hostile input to the batch decoder: random and mutated bytes must give clear
//! errors (or partial results), never a panic or an allocation sized by a lie.
#![allow(clippy::unwrap_used)] // test crate: unwrap is the assertion

mod records_support;

use bytes::Bytes;
use kafka_wire::Error;
use kafka_wire::compression::Compression;
use kafka_wire::records::{
    BatchParams, BatchReader, DecodeOptions, Record, decode_records, encode_batch,
};
use proptest::prelude::*;
use records_support::*;

/// Decodes everything reachable in `bytes`, records included; never panics.
fn drain(bytes: Bytes, opts: DecodeOptions) -> usize {
    let mut n = 0;
    for batch in BatchReader::with_options(bytes, opts) {
        let Ok(batch) = batch else { break };
        let _ = batch.control_record();
        for r in batch.records() {
            if r.is_err() {
                break;
            }
            n += 1;
        }
    }
    n
}

fn small_limits(verify_crc: bool) -> DecodeOptions {
    DecodeOptions {
        max_decompressed_bytes: 1 << 20,
        max_total_decompressed_bytes: 4 << 20,
        verify_crc,
    }
}

fn sample_batches(codec: Compression) -> Vec<u8> {
    let records: Vec<Record> = (0..20)
        .map(|i| Record {
            timestamp: 1_700_000_000_000 + i * 1000,
            key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; i as usize * 3])),
            headers: vec![kafka_wire::records::Header::new(
                "h",
                Some(Bytes::from_static(b"v")),
            )],
            ..Record::default()
        })
        .collect();
    let mut out = encode_batch(
        BatchParams {
            compression: codec,
            ..BatchParams::default()
        },
        &records[..10],
    )
    .unwrap()
    .to_vec();
    out.extend_from_slice(
        &encode_batch(
            BatchParams {
                base_offset: 10,
                compression: codec,
                ..BatchParams::default()
            },
            &records[10..],
        )
        .unwrap(),
    );
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), verify in any::<bool>()) {
        drain(Bytes::from(bytes), small_limits(verify));
    }

    #[test]
    fn random_bytes_behind_a_valid_v2_header_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..400),
        attrs in any::<u16>(),
        count in any::<i32>(),
    ) {
        let mut b = vec![0u8; 61];
        b[8..12].copy_from_slice(&((49 + body.len()) as i32).to_be_bytes());
        b[16] = 2;
        b[21..23].copy_from_slice(&attrs.to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        b.extend_from_slice(&body);
        drain(Bytes::from(b), small_limits(false));
    }

    #[test]
    fn mutated_batches_never_panic(
        codec in codec(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        verify in any::<bool>(),
    ) {
        let mut b = sample_batches(codec);
        for (i, v) in &edits {
            let at = i.index(b.len());
            b[at] = *v;
        }
        let keep = b.len() - cut.index(b.len() / 4 + 1);
        b.truncate(keep);
        drain(Bytes::from(b), small_limits(verify));
    }

    #[test]
    fn mutated_legacy_sets_never_panic(
        codec in codec(),
        magic in 0i8..=1,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        verify in any::<bool>(),
    ) {
        let records: Vec<Record> = (0..6)
            .map(|i| Record { offset: 100 + i, timestamp: i, key: Some(Bytes::from(vec![b'k'; i as usize])), value: Some(Bytes::from(vec![b'v'; 10])), ..Record::default() })
            .collect();
        let mut b = legacy_message_set(magic, codec, None, &records);
        for (i, v) in &edits {
            let at = i.index(b.len());
            b[at] = *v;
        }
        drain(Bytes::from(b), small_limits(verify));
    }

    #[test]
    fn decompressors_never_panic_on_random_or_mutated_input(
        codec in codec(),
        random in prop::collection::vec(any::<u8>(), 0..300),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let _ = codec.decompress(&random, 1 << 20);
        let mut packed = Vec::new();
        codec.compress(&b"hello hello hello hello kafka".repeat(40), &mut packed).unwrap();
        for (i, v) in &edits {
            let at = i.index(packed.len());
            packed[at] = *v;
        }
        if let Ok(out) = codec.decompress(&packed, 4096) {
            prop_assert!(out.len() <= 4096);
        }
    }
}

#[test]
fn a_flipped_byte_is_a_crc_mismatch() {
    for codec in Compression::ALL {
        let mut b = sample_batches(codec);
        let last = b.len() - 1;
        b[last] ^= 0x40;
        let mut reader = BatchReader::new(Bytes::from(b));
        assert!(reader.next().unwrap().is_ok());
        assert!(
            matches!(
                reader.next(),
                Some(Err(Error::CrcMismatch {
                    base_offset: 10,
                    ..
                }))
            ),
            "{codec}"
        );
        assert!(reader.next().is_none());
    }
}

#[test]
fn a_flipped_legacy_byte_is_a_crc_mismatch() {
    let records = vec![Record {
        offset: 5,
        value: Some(Bytes::from_static(b"v")),
        ..Record::default()
    }];
    for magic in [0, 1] {
        let mut b = legacy_message_set(magic, Compression::None, None, &records);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            decode_records(Bytes::from(b), DecodeOptions::default()),
            Err(Error::CrcMismatch { base_offset: 5, .. })
        ));
    }
}

#[test]
fn unknown_magic_and_codec_are_named() {
    let mut b = sample_batches(Compression::None);
    b[16] = 3;
    assert!(matches!(
        decode_records(Bytes::from(b), DecodeOptions::default()),
        Err(Error::UnsupportedMagic(3))
    ));
    let mut b = sample_batches(Compression::None);
    b[22] |= 0x07;
    let opts = DecodeOptions {
        verify_crc: false,
        ..DecodeOptions::default()
    };
    assert!(matches!(
        decode_records(Bytes::from(b), opts),
        Err(Error::UnknownCompression(7))
    ));
}

#[test]
fn a_record_count_the_bytes_cannot_hold_is_refused_before_iterating() {
    let mut b = sample_batches(Compression::None);
    b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let opts = DecodeOptions {
        verify_crc: false,
        ..DecodeOptions::default()
    };
    assert!(matches!(
        decode_records(Bytes::from(b), opts),
        Err(Error::CorruptRecords(_))
    ));
}

#[test]
fn a_negative_batch_length_is_invalid() {
    let mut b = sample_batches(Compression::None);
    b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(
        decode_records(Bytes::from(b), DecodeOptions::default()),
        Err(Error::InvalidLength { .. })
    ));
}

#[test]
fn a_v2_batch_length_below_the_header_size_is_invalid() {
    let mut b = sample_batches(Compression::None);
    b[8..12].copy_from_slice(&20i32.to_be_bytes());
    assert!(matches!(
        decode_records(Bytes::from(b), DecodeOptions::default()),
        Err(Error::InvalidLength { length: 20, .. })
    ));
}
