//! Record headers: an ordered list of (key, nullable value) pairs on each v2 record.

use bytes::Bytes;

/// One record header. Kafka writes the key as UTF-8 text; it is kept as bytes here so
/// that decoding never copies or rejects it ([`Header::key_str`] checks the UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Header key (UTF-8 on the wire as Kafka writes it).
    pub key: Bytes,
    /// Header value; `None` is a null value (length -1 on the wire).
    pub value: Option<Bytes>,
}

impl Header {
    /// A header from a key and a nullable value.
    pub fn new(key: impl Into<Bytes>, value: Option<impl Into<Bytes>>) -> Self {
        Header {
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    /// The key as text, or `None` if it is not valid UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }
}
