//! Record formats shared by the connectors: how the bytes of one Kafka record
//! value, or of one line of a file, become a value of the stream and back. Raw
//! bytes ([`Raw`]), UTF-8 text ([`Utf8`]) and JSON through serde ([`Json`]).
//!
//! ```text
//!  bytes (record value, file line) --Format::deserialize--> T --Format::serialize--> bytes
//! ```
//!
//! ```
//! use connectors::format::{Format, Json, Utf8};
//! let f = Json::<Vec<u32>>::new();
//! assert_eq!(f.deserialize(Some(b"[1,2]")).unwrap(), vec![1, 2]);
//! assert_eq!(Utf8.serialize(&"hi".to_string()).unwrap().unwrap(), "hi");
//! ```

use std::marker::PhantomData;

use bytes::Bytes;
use engine::StateCodec;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A record that did not decode (or a value that did not encode).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{format}: {message}")]
pub struct FormatError {
    /// The format that failed (`json`, `utf8`, ...).
    pub format: &'static str,
    /// Why.
    pub message: String,
}

/// How values of type `T` are stored in a record's bytes (a Kafka record value, one
/// line of a file).
pub trait Format<T>: Send + Sync + 'static {
    /// Decodes a value (`None`: a null value, a tombstone).
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, FormatError>;
    /// Encodes a value (`None` writes a null).
    fn serialize(&self, value: &T) -> Result<Option<Bytes>, FormatError>;
}

/// The bytes as they are (a null value reads as empty).
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Format<Bytes> for Raw {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Bytes, FormatError> {
        Ok(bytes.map(Bytes::copy_from_slice).unwrap_or_default())
    }
    fn serialize(&self, value: &Bytes) -> Result<Option<Bytes>, FormatError> {
        Ok(Some(value.clone()))
    }
}

/// UTF-8 text (a null value reads as empty; invalid UTF-8 is a bad record).
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl Format<String> for Utf8 {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<String, FormatError> {
        let bytes = bytes.unwrap_or_default();
        String::from_utf8(bytes.to_vec()).map_err(|e| FormatError {
            format: "utf8",
            message: e.to_string(),
        })
    }
    fn serialize(&self, value: &String) -> Result<Option<Bytes>, FormatError> {
        Ok(Some(Bytes::from(value.clone())))
    }
}

/// JSON through serde: one JSON document per record.
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> Json<T> {
    /// The JSON format for `T`.
    pub fn new() -> Json<T> {
        Json(PhantomData)
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Json::new()
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Json::new()
    }
}

impl<T> std::fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Json")
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Format<T> for Json<T> {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, FormatError> {
        let Some(bytes) = bytes else {
            return Err(FormatError {
                format: "json",
                message: "null value".into(),
            });
        };
        serde_json::from_slice(bytes).map_err(|e| FormatError {
            format: "json",
            message: e.to_string(),
        })
    }
    fn serialize(&self, value: &T) -> Result<Option<Bytes>, FormatError> {
        to_json(value)
    }
}

/// The engine's own compact encoding ([`StateCodec`], as keyed state is
/// stored): for topics only strom reads, such as repartition topics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Codec;

impl<T: StateCodec + 'static> Format<T> for Codec {
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, FormatError> {
        let mut buf = bytes.unwrap_or_default();
        let value = T::decode(&mut buf).map_err(|e| FormatError {
            format: "codec",
            message: e.to_string(),
        })?;
        if !buf.is_empty() {
            return Err(FormatError {
                format: "codec",
                message: format!("{} bytes left after the value", buf.len()),
            });
        }
        Ok(value)
    }
    fn serialize(&self, value: &T) -> Result<Option<Bytes>, FormatError> {
        let mut buf = Vec::new();
        value.encode(&mut buf);
        Ok(Some(Bytes::from(buf)))
    }
}

/// `value` as one JSON document.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Option<Bytes>, FormatError> {
    serde_json::to_vec(value)
        .map(|v| Some(Bytes::from(v)))
        .map_err(|e| FormatError {
            format: "json",
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_round_trips_and_refuses_short_or_long_bytes() {
        let v = (String::from("k"), vec![1i64, -2]);
        let bytes = Codec.serialize(&v).unwrap().unwrap();
        let back: (String, Vec<i64>) = Codec.deserialize(Some(&bytes)).unwrap();
        assert_eq!(back, v);
        assert!(
            <Codec as Format<(String, Vec<i64>)>>::deserialize(&Codec, Some(&bytes[..3])).is_err()
        );
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(<Codec as Format<(String, Vec<i64>)>>::deserialize(&Codec, Some(&long)).is_err());
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Click {
        url: String,
        status: u16,
    }

    #[test]
    fn json_round_trips_and_names_what_is_wrong() {
        let f = Json::<Click>::new();
        let c = Click {
            url: "/a".into(),
            status: 503,
        };
        let bytes = f.serialize(&c).unwrap().unwrap();
        assert_eq!(f.deserialize(Some(&bytes)).unwrap(), c);
        let e = f.deserialize(Some(b"{\"url\": 1}")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "json: invalid type: integer `1`, expected a string at line 1 column 9"
        );
        assert_eq!(
            f.deserialize(None).unwrap_err().to_string(),
            "json: null value"
        );
    }

    #[test]
    fn utf8_refuses_invalid_bytes() {
        assert!(Utf8.deserialize(Some(&[0xff, 0xfe])).is_err());
        assert_eq!(Utf8.deserialize(Some(b"ok")).unwrap(), "ok");
    }
}
