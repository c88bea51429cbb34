//! Seeded random values for the generated round-trip and fuzz tests.
//!
//! Generated structs implement [`Arbitrary`] (under `cfg(test)`) with values valid for
//! the version asked: fields the version lacks stay default, null only where nullable,
//! finite floats, unknown tagged fields only with tags the struct does not know. A plain
//! seeded generator instead of proptest strategies keeps the generated test code small
//! and quick to compile; proptest supplies (and persists) the seeds.

use bytes::Bytes;

use crate::protocol::Uuid;

/// A small deterministic random source with a depth budget for nested collections.
pub struct Gen {
    state: u64,
    depth: u32,
    /// Lowest tag used for unknown tagged fields (raised for cross-checks with Kafka's
    /// own codec, which may know tags newer than our specs).
    pub min_unknown_tag: u32,
}

impl Gen {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Gen {
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
            depth: 0,
            min_unknown_tag: 0,
        }
    }

    /// The next 64 random bits (splitmix64).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// `Some` value, or `None` sometimes when `nullable`.
    pub fn option<T: Arbitrary>(&mut self, nullable: bool, version: i16) -> Option<T> {
        if nullable && self.one_in(4) {
            None
        } else {
            Some(T::arbitrary(self, version))
        }
    }

    fn len(&mut self, max: u64) -> usize {
        if self.depth > 3 {
            0
        } else {
            self.below(max + 1) as usize
        }
    }

    /// Unknown tagged fields with tags from `first_free` up, in increasing order.
    pub fn unknown_tagged_fields(&mut self, first_free: u32) -> Vec<(u32, Bytes)> {
        if !self.one_in(3) {
            return Vec::new();
        }
        let mut tag = first_free.max(self.min_unknown_tag);
        let mut out = Vec::new();
        for _ in 0..=self.below(2) {
            tag += self.below(200) as u32;
            let data: Vec<u8> = (0..self.below(6)).map(|_| self.next_u64() as u8).collect();
            out.push((tag, Bytes::from(data)));
            tag += 1;
        }
        out
    }
}

/// A random value valid at `version`.
pub trait Arbitrary: Sized {
    /// A random value valid at `version`.
    fn arbitrary(g: &mut Gen, version: i16) -> Self;
}

macro_rules! int_arbitrary {
    ($($ty:ty),*) => {$(
        impl Arbitrary for $ty {
            fn arbitrary(g: &mut Gen, _version: i16) -> Self {
                match g.below(4) {
                    0 => 0,
                    1 => <$ty>::MAX,
                    2 => <$ty>::MIN,
                    _ => g.next_u64() as $ty,
                }
            }
        }
    )*};
}

int_arbitrary!(i8, i16, u16, i32, u32, i64);

impl Arbitrary for bool {
    fn arbitrary(g: &mut Gen, _version: i16) -> Self {
        g.one_in(2)
    }
}

impl Arbitrary for f64 {
    fn arbitrary(g: &mut Gen, _version: i16) -> Self {
        let f = f64::from_bits(g.next_u64());
        if f.is_finite() { f } else { 0.5 }
    }
}

impl Arbitrary for Uuid {
    fn arbitrary(g: &mut Gen, _version: i16) -> Self {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&g.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&g.next_u64().to_be_bytes());
        Uuid(id)
    }
}

impl Arbitrary for String {
    fn arbitrary(g: &mut Gen, _version: i16) -> Self {
        const CHARS: &[char] = &['a', 'Z', '0', '-', '_', '.', 'é', '日', '🦀', ' '];
        let n = g.len(8);
        (0..n)
            .map(|_| CHARS[g.below(CHARS.len() as u64) as usize])
            .collect()
    }
}

impl Arbitrary for Bytes {
    fn arbitrary(g: &mut Gen, _version: i16) -> Self {
        let n = g.len(12);
        Bytes::from((0..n).map(|_| g.next_u64() as u8).collect::<Vec<u8>>())
    }
}

impl<T: Arbitrary> Arbitrary for Vec<T> {
    fn arbitrary(g: &mut Gen, version: i16) -> Self {
        let n = g.len(3);
        g.depth += 1;
        let out = (0..n).map(|_| T::arbitrary(g, version)).collect();
        g.depth -= 1;
        out
    }
}
