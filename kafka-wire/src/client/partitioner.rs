//! The Java client's default partitioner: murmur2 of the key for keyed records,
//! sticky partitions for unkeyed ones (KIP-480).

/// Kafka's murmur2 hash (the Java client's `Utils.murmur2`), seed `0x9747b28c`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client picks for a key: `toPositive(murmur2(key)) % partitions`.
///
/// Returns 0 when `partitions` is not positive.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Sticky partitioning for unkeyed records (KIP-480): every unkeyed record of a
/// topic goes to the same partition until a batch for it is complete, then a new
/// partition is chosen, different from the last one when there is a choice.
#[derive(Debug, Default)]
pub struct StickyPartitioner {
    current: std::collections::HashMap<String, i32>,
    state: u64,
}

impl StickyPartitioner {
    /// A sticky partitioner seeded from the clock and process id.
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        StickyPartitioner {
            current: Default::default(),
            state: nanos ^ (u64::from(std::process::id()) << 32) | 1,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: cheap and good enough to spread partitions.
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The partition for the next unkeyed record of `topic`.
    pub fn partition(&mut self, topic: &str, partitions: i32) -> i32 {
        if partitions <= 0 {
            return 0;
        }
        if let Some(&p) = self.current.get(topic) {
            if p < partitions {
                return p;
            }
        }
        self.choose_new(topic, partitions, None)
    }

    /// Called when the batch of `topic` on `finished` was closed: moves to another partition.
    pub fn batch_complete(&mut self, topic: &str, finished: i32, partitions: i32) -> i32 {
        if self.current.get(topic) == Some(&finished) {
            self.choose_new(topic, partitions, Some(finished))
        } else {
            self.partition(topic, partitions)
        }
    }

    fn choose_new(&mut self, topic: &str, partitions: i32, avoid: Option<i32>) -> i32 {
        let n = partitions.max(1) as u64;
        let mut p = (self.next_random() % n) as i32;
        if let Some(avoid) = avoid {
            if p == avoid && partitions > 1 {
                p = (p + 1 + (self.next_random() % (n - 1)) as i32) % partitions;
            }
        }
        self.current.insert(topic.to_string(), p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values of org.apache.kafka.common.utils.Utils.murmur2 from the Java client of
        // Kafka 4.1.1.
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
            (b"", 275646681),
        ];
        for (key, want) in cases {
            assert_eq!(
                murmur2(key),
                *want,
                "key {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn keyed_partitions_match_the_java_client() {
        // (key, partition of 6, partition of 7) from the Java client's
        // BuiltInPartitioner.partitionForKey, Kafka 4.1.1.
        let cases: &[(&str, i32, i32)] = &[
            ("21", 0, 3),
            ("foobar", 0, 0),
            ("a-little-bit-long-string", 2, 1),
            ("a-little-bit-longer-string", 5, 0),
            ("abc", 3, 4),
            ("", 3, 2),
            ("key-0", 1, 0),
            ("key-1", 0, 5),
            ("user-42", 4, 1),
            ("order:1001", 4, 1),
            ("x", 4, 4),
        ];
        for (key, six, seven) in cases {
            assert_eq!(partition_for_key(key.as_bytes(), 6), *six, "{key}");
            assert_eq!(partition_for_key(key.as_bytes(), 7), *seven, "{key}");
        }
    }

    #[test]
    fn sticky_partitioner_sticks_then_moves() {
        let mut s = StickyPartitioner::new();
        let first = s.partition("t", 6);
        for _ in 0..100 {
            assert_eq!(s.partition("t", 6), first);
        }
        let next = s.batch_complete("t", first, 6);
        assert_ne!(next, first);
        assert_eq!(s.partition("t", 6), next);
        assert_eq!(s.partition("one", 1), 0);
    }
}
