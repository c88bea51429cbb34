//! The input every system reads, and what each pipeline must write from it.
//!
//! A record's key is `k000123` (one of `keys`), its value the ASCII text
//! `key,event_time_ms,amount`. Event time rises evenly over `span_ms`; 5% of the
//! records are moved back by up to 20 s (less than the 30 s watermark bound and
//! grace, so no system drops one as late). After the records, one end marker per
//! partition (key `end`, event time 10 minutes past the last window) closes every
//! window of the count pipeline in every system; its own window never closes.
//!
//! The constants match `java/src/main/java/strom/bench/Records.java`.

use std::collections::HashMap;

use kafka_wire::client::partitioner;

/// filter+map keeps amounts below this.
pub const KEEP_BELOW: u64 = 700;
/// Tumbling window of the count pipeline.
pub const WINDOW_MS: i64 = 60_000;
/// Sliding window of the sliding pipeline, and its slide.
pub const SLIDING_SIZE_MS: i64 = 600_000;
/// The slide of the sliding pipeline's windows.
pub const SLIDING_SLIDE_MS: i64 = 10_000;
/// Watermark bound (strom, Flink) and grace (Kafka Streams) of the count pipeline.
pub const OUT_OF_ORDER_MS: i64 = 30_000;
/// How far back an out-of-order record is moved, at most.
const MAX_DISORDER_MS: u64 = 20_000;
/// Share of out-of-order records, percent.
const DISORDER_PERCENT: u64 = 5;

/// One input record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Partition to write to; `None`: by key (the default partitioner).
    pub partition: Option<i32>,
    /// The record key.
    pub key: String,
    /// Event time, ms.
    pub ts: i64,
    /// The amount filter+map filters on.
    pub amount: u64,
}

impl Record {
    /// The record value.
    pub fn value(&self) -> String {
        format!("{},{},{}", self.key, self.ts, self.amount)
    }
}

/// The input's shape.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Records (end markers not counted).
    pub records: usize,
    /// Distinct keys.
    pub keys: u64,
    /// Event time covered, ms.
    pub span_ms: i64,
    /// Event time of the first record, ms (a whole minute).
    pub base_ms: i64,
    /// Partitions of the input topic.
    pub partitions: i32,
}

/// xorshift64*: a fixed seed makes every run's input the same (up to `base_ms`).
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The records, in order, then the end markers.
pub fn records(spec: Spec) -> impl Iterator<Item = Record> {
    let mut rng = Rng(0x005E_ED0F_5720_0001);
    let n = spec.records.max(1) as i64;
    let body = (0..spec.records).map(move |i| {
        let r = rng.next();
        let key = format!("k{:06}", r % spec.keys);
        let amount = (r >> 20) % 1000;
        let mut ts = spec.base_ms + i as i64 * spec.span_ms / n;
        if (r >> 40) % 100 < DISORDER_PERCENT {
            ts -= (rng.next() % MAX_DISORDER_MS) as i64;
        }
        Record {
            partition: None,
            key,
            ts,
            amount,
        }
    });
    let end_ts = spec.base_ms + spec.span_ms + 15 * WINDOW_MS;
    let markers = (0..spec.partitions).map(move |p| Record {
        partition: Some(p),
        key: end_key(p, spec.partitions),
        ts: end_ts,
        amount: 0,
    });
    body.chain(markers)
}

/// The first of `end0`, `end1`, ... that the default partitioner sends to
/// `partition`: each end marker's key belongs to its partition, as every key of a
/// topic keyed for `key_by_source_partition` (and Kafka Streams' `groupByKey`) must.
fn end_key(partition: i32, partitions: i32) -> String {
    (0..)
        .map(|j| format!("end{j}"))
        .find(|k| partitioner::partition_for_key(k.as_bytes(), partitions) == partition)
        .unwrap_or_default()
}

/// The sliding pipeline's grouping key: `r` and the key's last three digits (1,000
/// regions), an end marker's own key (so the markers reach every partition of a
/// repartition topic too).
pub fn region(key: &str) -> String {
    match key.strip_prefix('k') {
        Some(digits) => format!("r{}", &digits[digits.len().saturating_sub(3)..]),
        None => key.to_string(),
    }
}

/// What an output topic must hold: a record count and an order-independent
/// checksum of the (key, value) pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Digest {
    /// Records.
    pub count: u64,
    /// Wrapping sum of FNV-1a of key, a 0xff byte and value.
    pub sum: u64,
}

impl Digest {
    /// Adds one output record.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.iter().chain(&[0xff]).chain(value) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.count += 1;
        self.sum = self.sum.wrapping_add(h);
    }
}

/// The expected output of each pipeline.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Every record, key and value as read.
    pub passthrough: Digest,
    /// Amounts below [`KEEP_BELOW`], doubled.
    pub filtermap: Digest,
    /// `key,window_start,count` of every window the end markers close.
    pub count: Digest,
    /// `region,window_start,sum of amounts` of every sliding window they close.
    pub sliding: Digest,
    /// Every joined order and payment (`crate::join`).
    pub join: Digest,
}

impl Expected {
    /// Computes the outputs from the records.
    pub fn of(records: &[Record]) -> Expected {
        let mut e = Expected::default();
        let mut windows: HashMap<(&str, i64), u64> = HashMap::new();
        let mut sliding: HashMap<(String, i64), u64> = HashMap::new();
        let end_ts = records.iter().map(|r| r.ts).max().unwrap_or(0);
        for r in records {
            let value = r.value();
            e.passthrough.add(r.key.as_bytes(), value.as_bytes());
            if r.amount < KEEP_BELOW {
                let mapped = format!("{},{},{}", r.key, r.ts, r.amount * 2);
                e.filtermap.add(r.key.as_bytes(), mapped.as_bytes());
            }
            let start = r.ts.div_euclid(WINDOW_MS) * WINDOW_MS;
            // Windows close once the watermark (max ts - bound) reaches their end.
            if start + WINDOW_MS + OUT_OF_ORDER_MS <= end_ts {
                *windows.entry((r.key.as_str(), start)).or_default() += 1;
            }
            let last = r.ts.div_euclid(SLIDING_SLIDE_MS) * SLIDING_SLIDE_MS;
            let mut start = last;
            while start > r.ts - SLIDING_SIZE_MS {
                if start + SLIDING_SIZE_MS + OUT_OF_ORDER_MS <= end_ts {
                    *sliding.entry((region(&r.key), start)).or_default() += r.amount;
                }
                start -= SLIDING_SLIDE_MS;
            }
        }
        for ((region, start), sum) in sliding {
            e.sliding.add(
                region.as_bytes(),
                format!("{region},{start},{sum}").as_bytes(),
            );
        }
        for ((key, start), n) in windows {
            e.count
                .add(key.as_bytes(), format!("{key},{start},{n}").as_bytes());
        }
        e
    }

    /// The digest of `pipeline`.
    pub fn of_pipeline(&self, pipeline: &str) -> Digest {
        match pipeline {
            "passthrough" => self.passthrough,
            "filtermap" => self.filtermap,
            "sliding" => self.sliding,
            "join" => self.join,
            _ => self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_is_the_same_every_time_and_closes_every_window() {
        let spec = Spec {
            records: 10_000,
            keys: 100,
            span_ms: 300_000,
            base_ms: 1_800_000_000_000,
            partitions: 4,
        };
        let a: Vec<Record> = records(spec).collect();
        let b: Vec<Record> = records(spec).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 10_004);
        let e = Expected::of(&a);
        for r in &a[10_000..] {
            let p = partitioner::partition_for_key(r.key.as_bytes(), 4);
            assert_eq!(Some(p), r.partition, "{}", r.key);
        }
        let windowed: u64 = a.iter().filter(|r| !r.key.starts_with("end")).count() as u64;
        assert!(e.count.count > 0 && e.count.count <= windowed);
        assert!(e.sliding.count > 0);
        assert_eq!(region("k012345"), "r345");
        assert_eq!(region("end3"), "end3");
        let late = a.windows(2).filter(|w| w[1].ts < w[0].ts).count();
        assert!(late > 200 && late < 1_000, "{late} out of order");
    }
}
