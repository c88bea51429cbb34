//! Kafka's primitive wire types: fixed-width integers, varints, zigzag varints.
//!
//! Every reader checks the bytes that remain before reading and returns
//! [`Error::Truncated`] instead of panicking. `context` names the field for the error.

use bytes::{Buf, BufMut};

use crate::error::{Error, Result};

/// Fails with [`Error::Truncated`] unless `buf` holds at least `needed` bytes.
#[inline]
pub fn ensure<B: Buf>(buf: &B, needed: usize, context: &'static str) -> Result<()> {
    if buf.remaining() < needed {
        return Err(Error::Truncated {
            context,
            needed,
            remaining: buf.remaining(),
        });
    }
    Ok(())
}

macro_rules! fixed_reader {
    ($(#[$doc:meta] $name:ident, $ty:ty, $get:ident, $n:expr;)*) => {$(
        #[$doc]
        #[inline]
        pub fn $name<B: Buf>(buf: &mut B, context: &'static str) -> Result<$ty> {
            ensure(buf, $n, context)?;
            Ok(buf.$get())
        }
    )*};
}

fixed_reader! {
    /// Reads an INT8.
    read_i8, i8, get_i8, 1;
    /// Reads an INT16 (big-endian).
    read_i16, i16, get_i16, 2;
    /// Reads an INT32 (big-endian).
    read_i32, i32, get_i32, 4;
    /// Reads an INT64 (big-endian).
    read_i64, i64, get_i64, 8;
    /// Reads a UINT8.
    read_u8, u8, get_u8, 1;
    /// Reads a UINT16 (big-endian).
    read_u16, u16, get_u16, 2;
    /// Reads a UINT32 (big-endian).
    read_u32, u32, get_u32, 4;
    /// Reads a FLOAT64 (big-endian IEEE 754).
    read_f64, f64, get_f64, 8;
}

/// Reads an UNSIGNED_VARINT (at most 5 bytes, LEB128).
#[inline]
pub fn read_uvarint<B: Buf>(buf: &mut B, context: &'static str) -> Result<u32> {
    let mut value: u32 = 0;
    for i in 0..5 {
        ensure(buf, 1, context)?;
        let byte = buf.get_u8();
        if i == 4 && byte > 0x0f {
            return Err(Error::InvalidVarint { context });
        }
        value |= u32::from(byte & 0x7f) << (i * 7);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Error::InvalidVarint { context })
}

/// Reads an unsigned varlong (at most 10 bytes, LEB128).
#[inline]
pub fn read_uvarlong<B: Buf>(buf: &mut B, context: &'static str) -> Result<u64> {
    let mut value: u64 = 0;
    for i in 0..10 {
        ensure(buf, 1, context)?;
        let byte = buf.get_u8();
        if i == 9 && byte > 0x01 {
            return Err(Error::InvalidVarint { context });
        }
        value |= u64::from(byte & 0x7f) << (i * 7);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Error::InvalidVarint { context })
}

/// Reads a VARINT (zigzag-encoded signed 32-bit).
#[inline]
pub fn read_varint<B: Buf>(buf: &mut B, context: &'static str) -> Result<i32> {
    let raw = read_uvarint(buf, context)?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a VARLONG (zigzag-encoded signed 64-bit).
#[inline]
pub fn read_varlong<B: Buf>(buf: &mut B, context: &'static str) -> Result<i64> {
    let raw = read_uvarlong(buf, context)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Writes an UNSIGNED_VARINT.
#[inline]
pub fn put_uvarint<B: BufMut>(buf: &mut B, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Writes an unsigned varlong.
#[inline]
pub fn put_uvarlong<B: BufMut>(buf: &mut B, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Writes a VARINT (zigzag).
#[inline]
pub fn put_varint<B: BufMut>(buf: &mut B, value: i32) {
    put_uvarint(buf, ((value << 1) ^ (value >> 31)) as u32);
}

/// Writes a VARLONG (zigzag).
#[inline]
pub fn put_varlong<B: BufMut>(buf: &mut B, value: i64) {
    put_uvarlong(buf, ((value << 1) ^ (value >> 63)) as u64);
}

/// Bytes an UNSIGNED_VARINT of `value` takes.
#[inline]
pub fn uvarint_len(value: u32) -> usize {
    match value {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0xfff_ffff => 4,
        _ => 5,
    }
}

/// Bytes an unsigned varlong of `value` takes.
#[inline]
pub fn uvarlong_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Bytes a VARINT (zigzag) of `value` takes.
#[inline]
pub fn varint_len(value: i32) -> usize {
    uvarint_len(((value << 1) ^ (value >> 31)) as u32)
}

/// Bytes a VARLONG (zigzag) of `value` takes.
#[inline]
pub fn varlong_len(value: i64) -> usize {
    uvarlong_len(((value << 1) ^ (value >> 63)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn uvarint_round_trips(v in any::<u32>()) {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            prop_assert_eq!(out.len(), uvarint_len(v));
            prop_assert_eq!(read_uvarint(&mut &out[..], "t").unwrap(), v);
        }

        #[test]
        fn varint_round_trips(v in any::<i32>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            prop_assert_eq!(read_varint(&mut &out[..], "t").unwrap(), v);
        }

        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_len(v));
            prop_assert_eq!(read_varlong(&mut &out[..], "t").unwrap(), v);
        }

        #[test]
        fn varint_readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = read_uvarint(&mut &bytes[..], "t");
            let _ = read_uvarlong(&mut &bytes[..], "t");
            let _ = read_varint(&mut &bytes[..], "t");
            let _ = read_varlong(&mut &bytes[..], "t");
        }
    }

    #[test]
    fn zigzag_matches_the_spec_examples() {
        for (v, enc) in [
            (0i64, 0u64),
            (-1, 1),
            (1, 2),
            (-2, 3),
            (i64::MAX, u64::MAX - 1),
            (i64::MIN, u64::MAX),
        ] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(read_uvarlong(&mut &out[..], "t").unwrap(), enc);
        }
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let bytes = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(
            read_uvarint(&mut &bytes[..], "t"),
            Err(Error::InvalidVarint { .. })
        ));
        let truncated = [0x80u8];
        assert!(matches!(
            read_uvarint(&mut &truncated[..], "t"),
            Err(Error::Truncated { .. })
        ));
    }
}
