//! Gzip (codec 1): RFC 1952 streams via `flate2`. Decoding accepts concatenated members.

use std::io::Write;

use flate2::{Compression as Level, read::MultiGzDecoder, write::GzEncoder};

use super::{codec_error, read_bounded};
use crate::error::Result;

/// Appends the gzip compression of `input` to `out` (default level, as Java's producer).
pub fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let mut enc = GzEncoder::new(std::mem::take(out), Level::default());
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
