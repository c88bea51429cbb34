//! The pseudo-random number generator of the reference generator: Java's
//! `java.util.Random`, a 48-bit linear congruential generator whose algorithm the
//! Java platform documentation specifies exactly (the multiplier, the addend, the
//! seed scrambling and how `nextInt(bound)`, `nextLong()` and `nextDouble()` are
//! built from `next(bits)`). Apache Beam's Nexmark generator seeds one of these with
//! each event's id, so implementing the same algorithm makes every event of this
//! generator draw the same numbers as Beam's.
//!
//! ```text
//! seed  = (seed * 0x5DEECE66D + 0xB) mod 2^48        one step
//! next(bits)  = the top `bits` of the 48-bit seed, as a Java int
//! nextInt(b)  = next(31) reduced to [0, b), rejecting the biased tail
//! nextLong()  = (next(32) << 32) + next(32)
//! nextDouble() = ((next(26) << 27) + next(27)) / 2^53
//! ```

/// The LCG multiplier of `java.util.Random`.
const MULTIPLIER: u64 = 0x5_DEEC_E66D;
/// The LCG addend of `java.util.Random`.
const ADDEND: u64 = 0xB;
/// The seed keeps 48 bits.
const MASK: u64 = (1 << 48) - 1;

/// A `java.util.Random` with the same output, call for call.
#[derive(Debug, Clone)]
pub(crate) struct JavaRandom {
    seed: u64,
}

impl JavaRandom {
    /// `new Random(seed)`: the seed is scrambled with the multiplier first.
    pub(crate) fn new(seed: i64) -> JavaRandom {
        JavaRandom {
            seed: (seed as u64 ^ MULTIPLIER) & MASK,
        }
    }

    /// `next(bits)`: advances the seed and returns its top `bits` bits (1..=32) as a
    /// Java `int` (negative when `bits` is 32 and the top bit is set).
    fn next(&mut self, bits: u32) -> i32 {
        self.seed = self.seed.wrapping_mul(MULTIPLIER).wrapping_add(ADDEND) & MASK;
        (self.seed >> (48 - bits)) as u32 as i32
    }

    /// `nextInt()`: a uniformly distributed `int`.
    pub(crate) fn next_int(&mut self) -> i32 {
        self.next(32)
    }

    /// `nextInt(bound)`: uniform in `[0, bound)`. `bound` must be positive (Java
    /// throws otherwise; the callers validate their bounds, and a bound below one is
    /// treated as one here so that nothing can panic).
    pub(crate) fn next_int_bounded(&mut self, bound: i32) -> i32 {
        let bound = bound.max(1);
        let mut r = self.next(31);
        let m = bound - 1;
        if bound & m == 0 {
            // A power of two: take the high bits, which are the better ones of an LCG.
            return ((i64::from(bound) * i64::from(r)) >> 31) as i32;
        }
        // Reject the values of the last, incomplete run of `bound` numbers below
        // 2^31; the test overflows (wraps negative) exactly for those.
        let mut u = r;
        loop {
            r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return r;
            }
            u = self.next(31);
        }
    }

    /// `nextLong()`: two 32-bit draws, the second added with its sign.
    pub(crate) fn next_long(&mut self) -> i64 {
        let high = i64::from(self.next(32));
        let low = i64::from(self.next(32));
        (high << 32).wrapping_add(low)
    }

    /// `nextDouble()`: 53 random bits scaled to `[0, 1)`.
    pub(crate) fn next_double(&mut self) -> f64 {
        let high = i64::from(self.next(26));
        let low = i64::from(self.next(27));
        ((high << 27) + low) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by OpenJDK 17's `java.util.Random` (jshell), e.g.
    /// `new Random(42).nextInt()`.
    #[test]
    fn draws_match_java_util_random() {
        let mut r = JavaRandom::new(0);
        assert_eq!(r.next_int(), -1_155_484_576);
        assert_eq!(r.next_int(), -723_955_400);
        let mut r = JavaRandom::new(42);
        assert_eq!(r.next_int(), -1_170_105_035);
        let mut r = JavaRandom::new(42);
        assert_eq!(r.next_int_bounded(10), 0);
        assert_eq!(r.next_int_bounded(10), 3);
        assert_eq!(r.next_int_bounded(10), 8);
        let mut r = JavaRandom::new(7);
        assert_eq!(r.next_int_bounded(16), 11);
        assert_eq!(r.next_int_bounded(1_000_000_007), 371_249_157);
        assert_eq!(r.next_long(), -4_627_004_027_837_150_407);
        assert_eq!(r.next_double(), 0.348_309_703_031_256_97);
        assert_eq!(r.next_int_bounded(i32::MAX - 3), 1_926_887_968);
        // A bound above 2^30 rejects often: the loop must draw again like Java does.
        let mut r = JavaRandom::new(-123_456_789_012);
        let draws: Vec<i32> = (0..5).map(|_| r.next_int_bounded(1_500_000_000)).collect();
        assert_eq!(
            draws,
            [
                1_085_650_470,
                1_236_768_205,
                639_381_211,
                709_463_538,
                930_715_419
            ]
        );
        assert_eq!(r.next_long(), -3_775_413_921_251_467_513);
    }
}
