//! Record batch encode/decode and CRC32C throughput.
//!
//! `cargo bench -p kafka-wire --bench records -- --warm-up-time 1 --measurement-time 3`
//!
//! Each case encodes (or decodes and iterates) one batch of ~100 KB: 1000 records with
//! 100-byte values or 100 records with 1 KiB values, 8-byte keys, no headers, for
//! every codec (gzip also at level 1). Values are pseudo-random words, so the codecs have something to do.
//! Every case runs twice: throughput in records (`elements`) and in value bytes.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kafka_wire::compression::Compression;
use kafka_wire::records::{BatchBuilder, BatchParams, BatchReader};

const WORDS: [&str; 16] = [
    "kafka",
    "stream",
    "record",
    "batch",
    "offset",
    "topic",
    "partition",
    "leader",
    "epoch",
    "commit",
    "window",
    "watermark",
    "state",
    "sink",
    "source",
    "event",
];

/// Deterministic text-like values of `size` bytes.
fn values(count: usize, size: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|_| {
            let mut v = Vec::with_capacity(size + 16);
            while v.len() < size {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.extend_from_slice(WORDS[(x % 16) as usize].as_bytes());
                v.push(b' ');
            }
            v.truncate(size);
            v
        })
        .collect()
}

/// (label, codec, level) of every case: each codec at its default level, and gzip at
/// level 1 as well (level 6 is slow on repetitive text).
const CASES: [(&str, Compression, Option<i32>); 6] = [
    ("none", Compression::None, None),
    ("gzip", Compression::Gzip, None),
    ("gzip-1", Compression::Gzip, Some(1)),
    ("snappy", Compression::Snappy, None),
    ("lz4", Compression::Lz4, None),
    ("zstd", Compression::Zstd, None),
];

fn encode(
    (codec, level): (Compression, Option<i32>),
    keys: &[Vec<u8>],
    values: &[Vec<u8>],
) -> Bytes {
    let size: usize = values.iter().map(|v| v.len() + 16).sum();
    let mut b = BatchBuilder::with_capacity(
        BatchParams {
            compression: codec,
            compression_level: level,
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: 0,
            ..BatchParams::default()
        },
        size,
    );
    let ts = 1_700_000_000_000i64;
    for (i, (k, v)) in keys.iter().zip(values).enumerate() {
        b.append(ts + i as i64, Some(k), Some(v), &[]).unwrap();
    }
    b.finish().unwrap()
}

fn decode(batch: &Bytes) -> usize {
    let mut n = 0;
    for b in BatchReader::new(batch.clone()) {
        for r in b.unwrap().records() {
            let r = r.unwrap();
            n += r.value.map_or(0, |v| v.len());
        }
    }
    n
}

fn bench_batches(c: &mut Criterion) {
    for (count, size) in [(1000usize, 100usize), (100, 1024)] {
        let keys: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("key-{i:04}").into_bytes())
            .collect();
        let vals = values(count, size);
        for unit in ["records", "bytes"] {
            let throughput = match unit {
                "records" => Throughput::Elements(count as u64),
                _ => Throughput::Bytes((count * size) as u64),
            };
            let mut g = c.benchmark_group(format!("encode/{size}B/{unit}"));
            g.throughput(throughput.clone());
            for (label, codec, level) in CASES {
                g.bench_with_input(
                    BenchmarkId::from_parameter(label),
                    &(codec, level),
                    |b, &c| b.iter(|| encode(c, black_box(&keys), black_box(&vals))),
                );
            }
            g.finish();
            let mut g = c.benchmark_group(format!("decode/{size}B/{unit}"));
            g.throughput(throughput);
            for (label, codec, level) in CASES {
                let batch = encode((codec, level), &keys, &vals);
                g.bench_with_input(BenchmarkId::from_parameter(label), &batch, |b, batch| {
                    b.iter(|| decode(black_box(batch)))
                });
            }
            g.finish();
        }
    }
}

fn bench_crc32c(c: &mut Criterion) {
    let mut g = c.benchmark_group("crc32c");
    for size in [4 * 1024usize, 64 * 1024, 1024 * 1024] {
        let data = values(1, size).pop().unwrap();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            b.iter(|| crc32c::crc32c(black_box(data)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_batches, bench_crc32c);
criterion_main!(benches);
