//! Compression codecs for record batches: gzip, snappy, lz4, zstd (one file each).
//!
//! ```text
//!  producer: records region --compress(codec)--> compressed region --> batch
//!  consumer: batch --> compressed region --decompress(codec, limit)--> records region
//! ```
//!
//! Every decompressor is bounded: output past `limit` bytes is
//! [`Error::DecompressedTooLarge`], and no buffer is sized from a length the input
//! claims before the bytes that back it have been produced.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;

use crate::buffer_pool::BufferPool;
use crate::error::{Error, Result};

pub mod gzip;
pub mod lz4;
pub mod snappy;
pub mod zstd;

/// Decompressed batches' buffers kept for reuse, process-wide: a fetch response of
/// a few MiB holds about a hundred batches of 64 KiB, and the records of the
/// previous responses are usually dropped just before the next are decoded.
const DECOMPRESSED_KEPT: usize = 128;
/// Decompressed buffers smaller than this are left to the allocator.
const MIN_POOLED_DECOMPRESSED: usize = 16 * 1024;
/// Decompressed buffers larger than this are freed rather than kept.
const MAX_POOLED_DECOMPRESSED: usize = 256 * 1024;

/// The pool decompressed batches are written to (at most
/// `DECOMPRESSED_KEPT * MAX_POOLED_DECOMPRESSED` = 32 MiB kept).
fn decompression_pool() -> &'static Arc<BufferPool> {
    static POOL: LazyLock<Arc<BufferPool>> = LazyLock::new(|| {
        Arc::new(BufferPool::new(
            DECOMPRESSED_KEPT,
            MIN_POOLED_DECOMPRESSED,
            MAX_POOLED_DECOMPRESSED,
        ))
    });
    &POOL
}

/// Default upper bound on the decompressed size of one batch (64 MiB).
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// A record batch compression codec, as coded in bits 0-2 of the batch attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (code 0).
    #[default]
    None,
    /// Gzip (code 1).
    Gzip,
    /// Snappy (code 2); written in the xerial framing Java clients use.
    Snappy,
    /// LZ4 frame format (code 3).
    Lz4,
    /// Zstandard (code 4).
    Zstd,
}

impl Compression {
    /// Every codec, in attribute-code order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The attribute code (0..=4).
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for an attribute code; [`Error::UnknownCompression`] for codes above 4.
    pub fn from_code(code: u8) -> Result<Self> {
        Ok(match code {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(Error::UnknownCompression(other)),
        })
    }

    /// Kafka's name for the codec (`compression.type`): none, gzip, snappy, lz4, zstd.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Appends `input` compressed with this codec at its default level to `out` (a
    /// plain copy for `None`).
    pub fn compress(self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.compress_with_level(input, None, out)
    }

    /// Like [`Compression::compress`] at `level` (`None`: the codec's default, as
    /// Kafka's `compression.<codec>.level`): gzip 1..=9 (default 6), zstd
    /// -131072..=22 (default 3). Snappy has no levels and LZ4 is always written in
    /// its fast mode, so both ignore `level`. A level out of range is [`Error::Encode`].
    pub fn compress_with_level(
        self,
        input: &[u8],
        level: Option<i32>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        match self {
            Compression::None => {
                out.extend_from_slice(input);
                Ok(())
            }
            Compression::Gzip => gzip::compress_level(input, level, out),
            Compression::Snappy => snappy::compress(input, out),
            Compression::Lz4 => lz4::compress(input, out),
            Compression::Zstd => zstd::compress_level(input, level, out),
        }
    }

    /// Decompresses `input`, failing with [`Error::DecompressedTooLarge`] if the output
    /// would exceed `limit` bytes (for `None`, if `input` itself does).
    pub fn decompress(self, input: &[u8], limit: usize) -> Result<Vec<u8>> {
        match self {
            Compression::None => {
                if input.len() > limit {
                    return Err(Error::DecompressedTooLarge {
                        codec: "none",
                        limit,
                    });
                }
                Ok(input.to_vec())
            }
            Compression::Gzip => gzip::decompress(input, limit),
            Compression::Snappy => snappy::decompress(input, limit),
            Compression::Lz4 => lz4::decompress(input, limit),
            Compression::Zstd => zstd::decompress(input, limit),
        }
    }

    /// [`Compression::decompress`] as [`Bytes`]; LZ4 output goes to a buffer that
    /// is reused once every `Bytes` into it is dropped.
    pub(crate) fn decompress_bytes(self, input: &[u8], limit: usize) -> Result<Bytes> {
        match self {
            Compression::Lz4 => lz4::decompress_bytes(input, limit),
            codec => codec.decompress(input, limit).map(Bytes::from),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<u8> for Compression {
    type Error = Error;

    fn try_from(code: u8) -> Result<Self> {
        Compression::from_code(code)
    }
}

/// Reads all of `reader` into a vector, stopping with [`Error::DecompressedTooLarge`]
/// once more than `limit` bytes come out. The vector grows with the bytes actually
/// produced (starting from `hint`, capped at `limit`), never from a claimed size.
pub(crate) fn read_bounded<R: std::io::Read>(
    reader: R,
    codec: &'static str,
    limit: usize,
    hint: usize,
) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(hint.min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| codec_error(codec, e))?;
    if out.len() > limit {
        return Err(Error::DecompressedTooLarge { codec, limit });
    }
    Ok(out)
}

/// The error for a compression level outside `range`.
pub(crate) fn bad_level(codec: &'static str, level: i32, range: &str) -> Error {
    Error::Encode {
        context: codec,
        message: format!("compression level {level} is outside {range}"),
    }
}

/// Wraps a codec's own error as [`Error::Compression`].
pub(crate) fn codec_error(codec: &'static str, err: impl std::fmt::Display) -> Error {
    Error::Compression {
        codec,
        message: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_fail() {
        for c in Compression::ALL {
            assert_eq!(Compression::from_code(c.code()).unwrap(), c);
        }
        for code in 5..=7 {
            assert!(matches!(
                Compression::from_code(code),
                Err(Error::UnknownCompression(c)) if c == code
            ));
        }
    }

    #[test]
    fn every_codec_round_trips_and_respects_the_limit() {
        let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for c in Compression::ALL {
            let mut packed = Vec::new();
            c.compress(&input, &mut packed).unwrap();
            assert_eq!(c.decompress(&packed, input.len()).unwrap(), input, "{c}");
            assert!(
                matches!(
                    c.decompress(&packed, input.len() - 1),
                    Err(Error::DecompressedTooLarge { .. })
                ),
                "{c}"
            );
        }
    }

    #[test]
    fn levels_are_applied_and_checked() {
        let input = b"level level level level".repeat(100);
        for (codec, level) in [
            (Compression::Gzip, 1),
            (Compression::Gzip, 9),
            (Compression::Zstd, -5),
            (Compression::Zstd, 19),
        ] {
            let mut packed = Vec::new();
            codec
                .compress_with_level(&input, Some(level), &mut packed)
                .unwrap();
            assert_eq!(codec.decompress(&packed, input.len()).unwrap(), input);
        }
        for (codec, level) in [
            (Compression::Gzip, 0),
            (Compression::Gzip, 10),
            (Compression::Zstd, 23),
        ] {
            assert!(matches!(
                codec.compress_with_level(&input, Some(level), &mut Vec::new()),
                Err(Error::Encode { .. })
            ));
        }
    }

    #[test]
    fn every_codec_round_trips_empty_input() {
        for c in Compression::ALL {
            let mut packed = Vec::new();
            c.compress(&[], &mut packed).unwrap();
            assert!(c.decompress(&packed, 0).unwrap().is_empty(), "{c}");
        }
    }
}
