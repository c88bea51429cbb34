//! Helpers shared by the records_* tests: proptest strategies and a hand-written
//! encoder for legacy (magic 0/1) message sets, built from the layout documented in
//! Kafka's implementation docs.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use bytes::Bytes;
use kafka_wire::compression::Compression;
use kafka_wire::records::{Header, Record};
use proptest::prelude::*;

/// 30 days in ms: more than the ~24.8 days a varint timestamp delta could hold.
pub const THIRTY_DAYS_MS: i64 = 30 * 24 * 3600 * 1000;

pub fn codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

fn bytes_field(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    prop::option::weighted(
        0.8,
        prop::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from),
    )
}

pub fn header() -> impl Strategy<Value = Header> {
    ("[a-z-]{0,12}", bytes_field(24)).prop_map(|(k, v)| Header {
        key: Bytes::from(k),
        value: v,
    })
}

/// Records whose timestamps spread over +-30 days around a base (or anywhere in i64).
pub fn records(max: usize) -> impl Strategy<Value = Vec<Record>> {
    let ts = prop_oneof![
        4 => (0i64..2_000_000_000_000, -THIRTY_DAYS_MS..THIRTY_DAYS_MS).prop_map(|(b, d)| b + d),
        1 => any::<i64>(),
    ];
    prop::collection::vec(
        (
            ts,
            bytes_field(64),
            bytes_field(200),
            prop::collection::vec(header(), 0..3),
        ),
        1..max,
    )
    .prop_map(|rs| {
        rs.into_iter()
            .map(|(timestamp, key, value, headers)| Record {
                offset: 0,
                timestamp,
                key,
                value,
                headers,
            })
            .collect()
    })
}

/// One legacy message (offset, size, crc, magic, attributes, [timestamp], key, value).
pub fn legacy_message(
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Vec<u8> {
    let mut body = vec![magic as u8, attributes as u8];
    if magic == 1 {
        body.extend_from_slice(&timestamp.to_be_bytes());
    }
    for field in [key, value] {
        match field {
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                body.extend_from_slice(&(b.len() as i32).to_be_bytes());
                body.extend_from_slice(b);
            }
        }
    }
    let crc = crc32fast::hash(&body);
    let mut out = offset.to_be_bytes().to_vec();
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A legacy message set for `records` (absolute offsets from each record), plain or
/// wrapped in one compressed wrapper message as old producers/brokers wrote it.
pub fn legacy_message_set(
    magic: i8,
    codec: Compression,
    log_append_time: Option<i64>,
    records: &[Record],
) -> Vec<u8> {
    let ts_bit: i8 = if log_append_time.is_some() && magic == 1 {
        0x08
    } else {
        0
    };
    let mut inner = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let offset = match codec {
            Compression::None => r.offset,
            // Magic 1 inner offsets are relative; magic 0 are absolute.
            _ if magic == 1 => i as i64,
            _ => r.offset,
        };
        // Plain log-append-time messages carry the append time themselves.
        let (attrs, ts) = if codec == Compression::None {
            (ts_bit, log_append_time.unwrap_or(r.timestamp))
        } else {
            (0, r.timestamp)
        };
        inner.extend(legacy_message(
            offset,
            magic,
            attrs,
            ts,
            r.key.as_deref(),
            r.value.as_deref(),
        ));
    }
    if codec == Compression::None {
        return inner;
    }
    let mut packed = Vec::new();
    codec.compress(&inner, &mut packed).unwrap();
    let wrapper_offset = records.last().map_or(0, |r| r.offset);
    let wrapper_ts =
        log_append_time.unwrap_or_else(|| records.iter().map(|r| r.timestamp).max().unwrap_or(0));
    legacy_message(
        wrapper_offset,
        magic,
        codec.code() as i8 | ts_bit,
        wrapper_ts,
        None,
        Some(&packed),
    )
}
