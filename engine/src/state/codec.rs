//! [`StateCodec`]: how state values, keys and accumulators become snapshot bytes.
//!
//! The engine uses its own small binary codec instead of serde so that snapshots need
//! no format crate and the hot path never touches a serializer: encoding happens only at
//! a checkpoint barrier. Integers are little-endian fixed width, lengths are `u32`.

use crate::error::{EngineError, Result};

/// Serialization for anything kept in state (keys, values, accumulators, timers).
///
/// ```
/// use engine::StateCodec;
/// let mut buf = Vec::new();
/// (7u64, String::from("k")).encode(&mut buf);
/// let back = <(u64, String)>::decode(&mut buf.as_slice()).unwrap();
/// assert_eq!(back, (7, "k".to_string()));
/// ```
pub trait StateCodec: Sized {
    /// Appends the encoding of `self` to `buf`.
    fn encode(&self, buf: &mut Vec<u8>);
    /// Reads one value from the front of `buf`, advancing it.
    fn decode(buf: &mut &[u8]) -> Result<Self>;
    /// Appends the encodings of `items` one after another (how a `Vec<Self>`
    /// writes its items; bytes override it with one copy).
    fn encode_all(items: &[Self], buf: &mut Vec<u8>) {
        for v in items {
            v.encode(buf);
        }
    }
    /// Reads `n` values written by [`StateCodec::encode_all`].
    fn decode_n(n: usize, buf: &mut &[u8]) -> Result<Vec<Self>> {
        // Never size an allocation from untrusted length alone: cap by remaining bytes.
        let mut out = Vec::with_capacity(n.min(buf.len()));
        for _ in 0..n {
            out.push(Self::decode(buf)?);
        }
        Ok(out)
    }
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if buf.len() < n {
        return Err(EngineError::Codec(format!(
            "need {n} bytes, {} left",
            buf.len()
        )));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl StateCodec for $t {
            fn encode(&self, buf: &mut Vec<u8>) {
                buf.extend_from_slice(&self.to_le_bytes());
            }
            fn decode(buf: &mut &[u8]) -> Result<Self> {
                let bytes = take(buf, std::mem::size_of::<$t>())?;
                let mut arr = [0u8; std::mem::size_of::<$t>()];
                arr.copy_from_slice(bytes);
                Ok(<$t>::from_le_bytes(arr))
            }
        }
    )*};
}
int_codec!(u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64);

/// A byte is itself; a byte string is copied whole, not byte by byte.
impl StateCodec for u8 {
    fn encode(&self, buf: &mut Vec<u8>) {
        buf.push(*self);
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        Ok(take(buf, 1)?[0])
    }
    fn encode_all(items: &[u8], buf: &mut Vec<u8>) {
        buf.extend_from_slice(items);
    }
    fn decode_n(n: usize, buf: &mut &[u8]) -> Result<Vec<u8>> {
        Ok(take(buf, n)?.to_vec())
    }
}

impl StateCodec for usize {
    fn encode(&self, buf: &mut Vec<u8>) {
        (*self as u64).encode(buf)
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        usize::try_from(u64::decode(buf)?).map_err(|e| EngineError::Codec(e.to_string()))
    }
}

impl StateCodec for bool {
    fn encode(&self, buf: &mut Vec<u8>) {
        buf.push(u8::from(*self))
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        Ok(u8::decode(buf)? != 0)
    }
}

impl StateCodec for () {
    fn encode(&self, _: &mut Vec<u8>) {}
    fn decode(_: &mut &[u8]) -> Result<Self> {
        Ok(())
    }
}

fn encode_len(len: usize, buf: &mut Vec<u8>) {
    // Lengths above u32::MAX cannot occur in practice for in-memory state.
    (len as u32).encode(buf)
}

fn decode_len(buf: &mut &[u8]) -> Result<usize> {
    Ok(u32::decode(buf)? as usize)
}

/// A string's text as [`StateCodec`] writes it: its length, then its bytes.
fn encode_str(text: &str, buf: &mut Vec<u8>) {
    encode_len(text.len(), buf);
    buf.extend_from_slice(text.as_bytes());
}

/// Reads the text [`encode_str`] wrote, refusing bytes that are not UTF-8.
fn decode_str<'a>(buf: &mut &'a [u8]) -> Result<&'a str> {
    let n = decode_len(buf)?;
    std::str::from_utf8(take(buf, n)?).map_err(|e| EngineError::Codec(e.to_string()))
}

impl StateCodec for String {
    fn encode(&self, buf: &mut Vec<u8>) {
        encode_str(self, buf)
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        decode_str(buf).map(str::to_string)
    }
}

/// The same bytes as a `String`, written without a copy of the text.
impl StateCodec for std::sync::Arc<str> {
    fn encode(&self, buf: &mut Vec<u8>) {
        encode_str(self, buf)
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        decode_str(buf).map(std::sync::Arc::from)
    }
}

impl<T: StateCodec> StateCodec for Vec<T> {
    fn encode(&self, buf: &mut Vec<u8>) {
        encode_len(self.len(), buf);
        T::encode_all(self, buf);
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        let n = decode_len(buf)?;
        T::decode_n(n, buf)
    }
}

impl<T: StateCodec> StateCodec for Option<T> {
    fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            None => buf.push(0),
            Some(v) => {
                buf.push(1);
                v.encode(buf);
            }
        }
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        match u8::decode(buf)? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(buf)?)),
            t => Err(EngineError::Codec(format!("bad option tag {t}"))),
        }
    }
}

impl<T: StateCodec> StateCodec for Box<T> {
    fn encode(&self, buf: &mut Vec<u8>) {
        (**self).encode(buf)
    }
    fn decode(buf: &mut &[u8]) -> Result<Self> {
        Ok(Box::new(T::decode(buf)?))
    }
}

macro_rules! tuple_codec {
    ($($n:ident),+) => {
        impl<$($n: StateCodec),+> StateCodec for ($($n,)+) {
            #[allow(non_snake_case)]
            fn encode(&self, buf: &mut Vec<u8>) {
                let ($($n,)+) = self;
                $($n.encode(buf);)+
            }
            fn decode(buf: &mut &[u8]) -> Result<Self> {
                Ok(($($n::decode(buf)?,)+))
            }
        }
    };
}
tuple_codec!(A);
tuple_codec!(A, B);
tuple_codec!(A, B, C);
tuple_codec!(A, B, C, D);
tuple_codec!(A, B, C, D, E);

/// Encodes one value into a fresh buffer.
pub fn encode_to_vec<T: StateCodec>(value: &T) -> Vec<u8> {
    let mut buf = Vec::new();
    value.encode(&mut buf);
    buf
}

/// Decodes one value that must span all of `bytes`.
pub fn decode_exact<T: StateCodec>(bytes: &[u8]) -> Result<T> {
    let mut buf = bytes;
    let v = T::decode(&mut buf)?;
    if !buf.is_empty() {
        return Err(EngineError::Codec(format!("{} trailing bytes", buf.len())));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = encode_to_vec(&vec![1u64, 2, 3]);
        assert!(decode_exact::<Vec<u64>>(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_exact::<Vec<u64>>(&[255, 255, 255, 255]).is_err());
    }

    #[test]
    fn nested_values_round_trip() {
        let v: Vec<(String, Option<i64>, f64)> =
            vec![("a".into(), Some(-5), 1.5), ("".into(), None, -0.0)];
        assert_eq!(
            decode_exact::<Vec<(String, Option<i64>, f64)>>(&encode_to_vec(&v)).unwrap(),
            v
        );
    }

    #[test]
    fn byte_strings_are_their_length_and_bytes() {
        let v: (Vec<u8>, Vec<u8>) = (vec![7, 0, 255], Vec::new());
        let bytes = encode_to_vec(&v);
        assert_eq!(bytes, [3, 0, 0, 0, 7, 0, 255, 0, 0, 0, 0]);
        assert_eq!(decode_exact::<(Vec<u8>, Vec<u8>)>(&bytes).unwrap(), v);
        assert!(decode_exact::<Vec<u8>>(&bytes[..6]).is_err());
        assert!(decode_exact::<Vec<u8>>(&[255, 255, 255, 255, 1]).is_err());
        assert_eq!(
            decode_exact::<Vec<Vec<u8>>>(&encode_to_vec(&vec![vec![1u8], vec![]])).unwrap(),
            vec![vec![1u8], vec![]]
        );
    }

    #[test]
    fn shared_strings_encode_as_strings() {
        let shared: std::sync::Arc<str> = std::sync::Arc::from("kö");
        let bytes = encode_to_vec(&shared);
        assert_eq!(bytes, encode_to_vec(&String::from("kö")));
        assert_eq!(decode_exact::<std::sync::Arc<str>>(&bytes).unwrap(), shared);
        assert!(decode_exact::<std::sync::Arc<str>>(&[2, 0, 0, 0, 0xff, 0xfe]).is_err());
        assert!(decode_exact::<std::sync::Arc<str>>(&bytes[..4]).is_err());
    }
}
