//! The join pipeline: its second input ("payments") and what it must write.
//!
//! The main input plays the orders. The join is inner, on the record key, with
//! `order.ts + JOIN_LOWER_MS <= payment.ts <= order.ts + JOIN_UPPER_MS` (both
//! bounds inclusive), one output per joined pair. One draw per order decides its
//! payment, of the same key, at `order.ts + d`:
//!
//! ```text
//!  45%  d uniform in [lower, upper]              joins
//!   5%  d = lower or upper exactly               joins (the bounds are inclusive)
//!   5%  d = lower - 1 or upper + 1               misses by 1 ms
//!   5%  d 1..=5,000 ms further outside a bound   misses
//!  40%  no payment
//! ```
//!
//! A payment may join other orders of its key too (a key has about 10 orders over
//! 300 s), so the expected output is the whole join, computed per key from the
//! records. The topic is in event-time order except that 5% of the payments are
//! written up to 20 s later than their time says (their time unchanged), so it is
//! out of order by less than 20 s, like the orders. After them, one end marker per
//! partition with the key and time of the orders' marker there: each joins its
//! twin, and together they move every watermark past the last record.
//!
//! The constants match `java/src/main/java/strom/bench/Records.java`.

use std::collections::HashMap;

use crate::data::{Digest, Record, Rng};

/// Lower bound of `payment.ts - order.ts`, ms (inclusive).
pub const JOIN_LOWER_MS: i64 = -5_000;
/// Upper bound of `payment.ts - order.ts`, ms (inclusive).
pub const JOIN_UPPER_MS: i64 = 10_000;
/// How much later than its time a held-back payment is written, at most.
const MAX_HOLD_BACK_MS: u64 = 20_000;
/// Share of held-back payments, percent.
const HOLD_BACK_PERCENT: u64 = 5;

/// The join's output value for one pair:
/// `key,order_ts,order_amount,payment_ts,payment_amount`.
pub fn joined(key: &str, order: (i64, u64), payment: (i64, u64)) -> String {
    format!("{key},{},{},{},{}", order.0, order.1, payment.0, payment.1)
}

/// The payments for `orders` (the main input, end markers last), in the order
/// they are written.
pub fn payments(orders: &[Record]) -> Vec<Record> {
    let mut rng = Rng(0x005E_ED0F_5720_0002);
    let mut body: Vec<(i64, Record)> = Vec::with_capacity(orders.len());
    for o in orders.iter().filter(|o| o.partition.is_none()) {
        let r = rng.next();
        let outside = 1 + (rng.next() % 5_000) as i64;
        let below = r & (1 << 32) == 0;
        let d = match r % 100 {
            0..45 => JOIN_LOWER_MS + ((r >> 8) % (JOIN_UPPER_MS - JOIN_LOWER_MS + 1) as u64) as i64,
            45..50 if below => JOIN_LOWER_MS,
            45..50 => JOIN_UPPER_MS,
            50..55 if below => JOIN_LOWER_MS - 1,
            50..55 => JOIN_UPPER_MS + 1,
            55..60 if below => JOIN_LOWER_MS - outside,
            55..60 => JOIN_UPPER_MS + outside,
            _ => continue,
        };
        let ts = o.ts + d;
        let written_at = if (r >> 40) % 100 < HOLD_BACK_PERCENT {
            ts + (rng.next() % MAX_HOLD_BACK_MS) as i64
        } else {
            ts
        };
        body.push((
            written_at,
            Record {
                partition: None,
                key: o.key.clone(),
                ts,
                amount: (r >> 20) % 1000,
            },
        ));
    }
    body.sort_by_key(|(at, _)| *at);
    let markers = orders.iter().filter(|o| o.partition.is_some()).cloned();
    body.into_iter().map(|(_, p)| p).chain(markers).collect()
}

/// The join's output over `orders` and `payments`.
pub fn expected(orders: &[Record], payments: &[Record]) -> Digest {
    let mut by_key: HashMap<&str, Vec<&Record>> = HashMap::new();
    for o in orders {
        by_key.entry(o.key.as_str()).or_default().push(o);
    }
    let mut digest = Digest::default();
    for p in payments {
        for o in by_key.get(p.key.as_str()).into_iter().flatten() {
            if o.ts + JOIN_LOWER_MS <= p.ts && p.ts <= o.ts + JOIN_UPPER_MS {
                let value = joined(&p.key, (o.ts, o.amount), (p.ts, p.amount));
                digest.add(p.key.as_bytes(), value.as_bytes());
            }
        }
    }
    digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Spec, records};

    #[test]
    fn payments_hit_both_bounds_miss_by_one_and_stay_within_the_disorder_bound() {
        let spec = Spec {
            records: 20_000,
            keys: 1_000,
            span_ms: 300_000,
            base_ms: 1_800_000_000_000,
            partitions: 4,
        };
        let orders: Vec<Record> = records(spec).collect();
        let pays = payments(&orders);
        assert_eq!(pays, payments(&orders));
        let body = &pays[..pays.len() - 4];
        assert!(body.len() > 11_000 && body.len() < 13_000, "{}", body.len());
        assert_eq!(&pays[body.len()..], &orders[orders.len() - 4..]);

        let mut max = body[0].ts;
        for p in body {
            assert!(p.ts > max - 20_000, "{} behind {max}", p.ts);
            max = max.max(p.ts);
        }

        let mut by_key: HashMap<&str, Vec<&Record>> = HashMap::new();
        for o in &orders {
            by_key.entry(o.key.as_str()).or_default().push(o);
        }
        let mut gaps: HashMap<i64, usize> = HashMap::new();
        for p in body {
            for o in &by_key[p.key.as_str()] {
                *gaps.entry(p.ts - o.ts).or_default() += 1;
            }
        }
        for d in [
            JOIN_LOWER_MS - 1,
            JOIN_LOWER_MS,
            JOIN_UPPER_MS,
            JOIN_UPPER_MS + 1,
        ] {
            assert!(gaps.get(&d).copied().unwrap_or(0) > 50, "gap {d}");
        }
        let e = expected(&orders, &pays);
        let within: usize = gaps
            .iter()
            .filter(|(d, _)| (JOIN_LOWER_MS..=JOIN_UPPER_MS).contains(*d))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(e.count, within as u64 + 4);
    }
}
