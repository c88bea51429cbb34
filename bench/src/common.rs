//! What every client run shares: the workload parameters, the payloads, the result
//! line a child prints for the parent, and latency percentiles.

use std::time::Duration;

use bytes::Bytes;

/// The workload one child process runs (passed on its command line).
#[derive(Debug, Clone, clap::Args)]
pub struct Workload {
    /// Bootstrap broker, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Records to produce, then to consume back.
    #[arg(long, default_value_t = 5_000_000)]
    pub records: u64,
    /// Value size in bytes (records have no key).
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Partitions of each fresh topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// `batch.size` for every producer (rskafka: the uncompressed bytes of values per request and partition).
    #[arg(long, default_value_t = 65_536)]
    pub batch_size: usize,
    /// `linger.ms` for every producer.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// strom producer: await every DeliveryFuture in a collector task
    /// (FuturesUnordered) instead of on the sending task.
    #[arg(long)]
    pub strom_collector: bool,
}

/// How many distinct payloads to cycle through. Large enough that a batch never
/// repeats a value (so LZ4 sees no cross-record repeats), small enough to build fast.
const PAYLOAD_POOL: usize = 4096;

/// Values of `size` random upper-case ASCII letters, as Java's ProducerPerformance
/// makes them (`random.nextInt(26) + 65`), so every client compresses the same kind
/// of data. A fixed-seed xorshift keeps runs comparable.
pub fn payloads(size: usize) -> Vec<Bytes> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..PAYLOAD_POOL)
        .map(|_| {
            let v: Vec<u8> = (0..size).map(|_| b'A' + (next() % 26) as u8).collect();
            Bytes::from(v)
        })
        .collect()
}

/// What a child measured, printed as one `BENCH-RESULT` line on stdout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    /// Records produced (acknowledged) or consumed.
    pub records: u64,
    /// Value bytes of those records.
    pub bytes: u64,
    /// Wall time of the measured phase (first send to last ack; assign to last record).
    pub secs: f64,
    /// Send-to-ack latency median, ms.
    pub p50_ms: Option<f64>,
    /// Send-to-ack latency 99th percentile, ms.
    pub p99_ms: Option<f64>,
}

const PREFIX: &str = "BENCH-RESULT";

impl Measured {
    /// The line the child prints.
    pub fn to_line(&self) -> String {
        let mut s = format!(
            "{PREFIX} records={} bytes={} secs={:.6}",
            self.records, self.bytes, self.secs
        );
        if let (Some(p50), Some(p99)) = (self.p50_ms, self.p99_ms) {
            s.push_str(&format!(" p50_ms={p50:.3} p99_ms={p99:.3}"));
        }
        s
    }

    /// Finds and parses the result line in a child's stdout.
    pub fn from_output(out: &str) -> Option<Measured> {
        let line = out.lines().rev().find(|l| l.starts_with(PREFIX))?;
        let mut m = Measured::default();
        for field in line.split_whitespace().skip(1) {
            let (k, v) = field.split_once('=')?;
            match k {
                "records" => m.records = v.parse().ok()?,
                "bytes" => m.bytes = v.parse().ok()?,
                "secs" => m.secs = v.parse().ok()?,
                "p50_ms" => m.p50_ms = v.parse().ok(),
                "p99_ms" => m.p99_ms = v.parse().ok(),
                _ => {}
            }
        }
        Some(m)
    }
}

/// Send-to-ack latencies in microseconds.
#[derive(Debug, Default)]
pub struct Latencies(pub Vec<u32>);

impl Latencies {
    /// Records one latency.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u32::MAX as u128) as u32);
    }

    /// Records the same latency `n` times (every record of one batch).
    pub fn push_n(&mut self, d: Duration, n: usize) {
        let us = d.as_micros().min(u32::MAX as u128) as u32;
        self.0.extend(std::iter::repeat_n(us, n));
    }

    /// (p50, p99) in ms, or `None` when nothing was recorded.
    pub fn percentiles(mut self) -> (Option<f64>, Option<f64>) {
        if self.0.is_empty() {
            return (None, None);
        }
        self.0.sort_unstable();
        let at = |q: f64| {
            let i = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len()) - 1;
            self.0[i] as f64 / 1000.0
        };
        (Some(at(0.50)), Some(at(0.99)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_round_trips() {
        let m = Measured {
            records: 10,
            bytes: 1000,
            secs: 1.5,
            p50_ms: Some(2.0),
            p99_ms: Some(9.5),
        };
        let out = format!("noise\n{}\n", m.to_line());
        assert_eq!(Measured::from_output(&out), Some(m));
    }

    #[test]
    fn percentiles_pick_nearest_rank() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.push(Duration::from_millis(ms));
        }
        assert_eq!(l.percentiles(), (Some(50.0), Some(99.0)));
    }
}
