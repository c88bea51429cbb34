//! Gzip (codec 1): RFC 1952 streams via `flate2`. Decoding accepts concatenated members.

use std::io::Write;

use flate2::{Compression as Level, read::MultiGzDecoder, write::GzEncoder};

use super::{bad_level, codec_error, read_bounded};
use crate::error::Result;

/// Default gzip level (zlib's and Java's default).
pub const DEFAULT_LEVEL: i32 = 6;

/// Appends the gzip compression of `input` to `out` at [`DEFAULT_LEVEL`].
pub fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    compress_level(input, None, out)
}

/// Appends the gzip compression of `input` to `out` at `level` (1..=9; `None`:
/// [`DEFAULT_LEVEL`]).
pub fn compress_level(input: &[u8], level: Option<i32>, out: &mut Vec<u8>) -> Result<()> {
    let level = level.unwrap_or(DEFAULT_LEVEL);
    if !(1..=9).contains(&level) {
        return Err(bad_level("gzip", level, "1..=9"));
    }
    let mut enc = GzEncoder::new(std::mem::take(out), Level::new(level as u32));
    let res = enc.write_all(input).and_then(|()| enc.try_finish());
    *out = enc.finish().map_err(|e| codec_error("gzip", e))?;
    res.map_err(|e| codec_error("gzip", e))
}

/// Decompresses a gzip stream, producing at most `limit` bytes
/// ([`crate::Error::DecompressedTooLarge`] past that).
pub fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    read_bounded(
        MultiGzDecoder::new(input),
        "gzip",
        limit,
        input.len().saturating_mul(4),
    )
}
