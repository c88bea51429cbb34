//! Kafka's request/response protocol: primitive types, headers, api keys and the
//! generated message codecs.
//!
//! ```text
//!  request frame:  i32 size | RequestHeader (v0-v2) | request body
//!  response frame: i32 size | ResponseHeader (v0-v1) | response body
//!
//!  ApiKey::request_header_version(version)   header version for a request
//!  ApiKey::response_header_version(version)  header version for its response
//!                                            (always v0 for ApiVersions)
//! ```
//!
//! Every message, header and data struct implements [`Message`]: versioned
//! `encode` / `decode` / `encoded_len` over `bytes::{Buf, BufMut}`. Requests also
//! implement [`Request`] (api key, response type), responses [`Response`].
//! [`encode_request_frame`] and [`decode_response_frame`] put the pieces together;
//! [`encode_response_frame`] and [`decode_request_frame_header`] are the broker side, for
//! fakes; [`decode_api_versions_response`] handles the v0 fallback of ApiVersions.
//!
//! Generated code (`messages/`, from Kafka's JSON specs by `kafka-wire-codegen`; run
//! `scripts/check-generated` to verify it is fresh):
//!
//! - one module per spec, `messages::metadata_response`, whose message struct is also
//!   re-exported as `messages::MetadataResponse`;
//! - nested structs keep their spec names inside that module
//!   (`metadata_response::MetadataResponseTopic`, `fetch_request::FetchTopic`), prefixed
//!   with the message name only where a spec name would clash with a name the generated
//!   code uses (`Bytes`, `Uuid`, `Result`, ...);
//! - fields are snake_case; `string` is `String`, `bytes` is `bytes::Bytes`, `records` is
//!   `Option<Bytes>` (raw batches; defaults to empty, never null), `uuid` is [`Uuid`],
//!   arrays are `Vec` (map-keyed ones too: duplicates survive), and a field nullable in
//!   any version is an `Option`;
//! - `Default` follows the spec defaults; every struct of a message with flexible versions
//!   keeps `unknown_tagged_fields`, so decode -> encode is lossless.

pub mod codec;
pub mod messages;
pub mod primitives;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};
pub use messages::{ApiKey, RequestHeader, ResponseHeader};

/// An inclusive range of message versions. Empty (`NONE`) when `min > max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Versions {
    /// Lowest version, inclusive.
    pub min: i16,
    /// Highest version, inclusive (`i16::MAX` for "and later").
    pub max: i16,
}

impl Versions {
    /// No version at all (`"none"` in the specs).
    pub const NONE: Versions = Versions { min: 0, max: -1 };

    /// The versions `min..=max`.
    pub const fn new(min: i16, max: i16) -> Self {
        Versions { min, max }
    }

    /// Whether `version` is in the range.
    pub const fn contains(self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }

    /// Whether the range holds no version.
    pub const fn is_empty(self) -> bool {
        self.min > self.max
    }

    /// The versions in both ranges.
    pub const fn intersect(self, other: Versions) -> Versions {
        let min = if self.min > other.min {
            self.min
        } else {
            other.min
        };
        let max = if self.max < other.max {
            self.max
        } else {
            other.max
        };
        if min > max {
            Versions::NONE
        } else {
            Versions { min, max }
        }
    }

    /// Iterates the versions (an open-ended range stops at `i16::MAX`).
    pub fn iter(self) -> impl Iterator<Item = i16> {
        self.min..=self.max
    }
}

/// A Kafka UUID (topic ids, directory ids, ...): 16 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID Kafka uses for "no id".
    pub const ZERO: Uuid = Uuid([0; 16]);
}

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Uuid({self})")
    }
}

/// A versioned Kafka message: a request or response body, a header, or a data struct
/// (consumer protocol, KRaft records, ...).
///
/// `Default` honours the spec's defaults; fields a version lacks keep them on decode.
pub trait Message:
    Sized + Default + Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static
{
    /// The spec name (`MetadataRequest`).
    const NAME: &'static str;
    /// The versions this crate encodes and decodes.
    const VALID_VERSIONS: Versions;
    /// The versions that use compact types and tagged fields.
    const FLEXIBLE_VERSIONS: Versions;

    /// Writes the message at `version`.
    ///
    /// Fails with [`Error::UnsupportedVersion`] outside [`Message::VALID_VERSIONS`],
    /// [`Error::FieldNotSupported`] when a non-ignorable field that `version` lacks holds
    /// a non-default value, [`Error::NullNotAllowed`] when a field is `None` at a version
    /// where it is not nullable. On error, `buf` may hold a partial encoding.
    fn encode<B: BufMut>(&self, buf: &mut B, version: i16) -> Result<()>;

    /// Reads the message at `version`; fields the version lacks keep their defaults.
    fn decode<B: Buf>(buf: &mut B, version: i16) -> Result<Self>;

    /// The number of bytes [`Message::encode`] writes at `version` (when it succeeds).
    fn encoded_len(&self, version: i16) -> Result<usize>;
}

/// A request body, tied to its api key and response type.
pub trait Request: Message {
    /// The api key sent in the request header.
    const API_KEY: ApiKey;
    /// The response to this request.
    type Response: Response;
}

/// A response body, tied to its api key and request type.
pub trait Response: Message {
    /// The api key of the request this answers.
    const API_KEY: ApiKey;
    /// The request this answers.
    type Request: Request;
}

/// Encodes a whole request frame: the `i32` size, the request header at the version
/// [`ApiKey::request_header_version`] gives, then the body at `version`.
pub fn encode_request_frame<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
) -> Result<BytesMut> {
    let header = RequestHeader {
        request_api_key: R::API_KEY.code(),
        request_api_version: version,
        correlation_id,
        client_id: client_id.map(str::to_string),
        ..Default::default()
    };
    let header_version = R::API_KEY.request_header_version(version);
    let len = header.encoded_len(header_version)? + request.encoded_len(version)?;
    let size = i32::try_from(len).map_err(|_| Error::Encode {
        context: R::NAME,
        message: format!("request of {len} bytes is too large"),
    })?;
    let mut buf = BytesMut::with_capacity(4 + len);
    buf.put_i32(size);
    header.encode(&mut buf, header_version)?;
    request.encode(&mut buf, version)?;
    Ok(buf)
}

/// Decodes a response frame's content (everything after the `i32` size): the response
/// header at the version [`ApiKey::response_header_version`] gives, then the body at
/// `version`. Fails if bytes are left over (usually a version mismatch).
pub fn decode_response_frame<R: Response>(
    frame: &mut Bytes,
    version: i16,
) -> Result<(ResponseHeader, R)> {
    let header = ResponseHeader::decode(frame, R::API_KEY.response_header_version(version))?;
    let body = R::decode(frame, version)?;
    codec::ensure_consumed(frame, R::NAME)?;
    Ok((header, body))
}

/// Encodes a whole response frame (the broker side, for fakes and tests): the `i32`
/// size, the response header at the version [`ApiKey::response_header_version`] gives,
/// then the body at `version`.
pub fn encode_response_frame<R: Response>(
    response: &R,
    version: i16,
    correlation_id: i32,
) -> Result<BytesMut> {
    let header = ResponseHeader {
        correlation_id,
        ..Default::default()
    };
    let header_version = R::API_KEY.response_header_version(version);
    let len = header.encoded_len(header_version)? + response.encoded_len(version)?;
    let size = i32::try_from(len).map_err(|_| Error::Encode {
        context: R::NAME,
        message: format!("response of {len} bytes is too large"),
    })?;
    let mut buf = BytesMut::with_capacity(4 + len);
    buf.put_i32(size);
    header.encode(&mut buf, header_version)?;
    response.encode(&mut buf, version)?;
    Ok(buf)
}

/// Decodes the header of a request frame's content (after the `i32` size; the broker
/// side, for fakes and tests), choosing the header version from the api key and version
/// it starts with. `frame` is left at the start of the body.
pub fn decode_request_frame_header(frame: &mut Bytes) -> Result<RequestHeader> {
    let mut peek = &frame[..];
    let key = primitives::read_i16(&mut peek, "RequestHeader.RequestApiKey")?;
    let version = primitives::read_i16(&mut peek, "RequestHeader.RequestApiVersion")?;
    let header_version = ApiKey::try_from(key)?.request_header_version(version);
    RequestHeader::decode(frame, header_version)
}

/// Kafka's `UNSUPPORTED_VERSION` error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// Decodes an ApiVersions response body (after its header, which is always v0) sent in
/// answer to a request at `version`, and returns it with the version it was read at.
///
/// A broker that does not support the requested ApiVersions version answers at v0 with
/// `UNSUPPORTED_VERSION` and only api key 18 listed: the client should retry at the
/// highest version listed there. Such a body does not parse at the requested version (or
/// leaves bytes over), so this falls back to v0, as Kafka's own client does.
pub fn decode_api_versions_response(
    body: &Bytes,
    version: i16,
) -> Result<(messages::ApiVersionsResponse, i16)> {
    let mut input = body.clone();
    let first = messages::ApiVersionsResponse::decode(&mut input, version);
    match first {
        Ok(resp)
            if input.is_empty() && (resp.error_code != UNSUPPORTED_VERSION || version == 0) =>
        {
            Ok((resp, version))
        }
        _ if version != 0 => {
            let mut input = body.clone();
            let resp = messages::ApiVersionsResponse::decode(&mut input, 0)?;
            codec::ensure_consumed(&input, "ApiVersionsResponse")?;
            Ok((resp, 0))
        }
        Ok(_) => Err(Error::InvalidLength {
            context: "ApiVersionsResponse (bytes left over)",
            length: input.len() as i64,
        }),
        Err(e) => Err(e),
    }
}
