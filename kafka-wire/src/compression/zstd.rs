//! Zstandard (codec 4) via the `zstd` crate.

use super::{codec_error, read_bounded};
use crate::error::Result;

/// Compression level used for produced batches (Kafka's default, 3).
pub const DEFAULT_LEVEL: i32 = 3;

/// Appends the zstd compression of `input` (one frame, level [`DEFAULT_LEVEL`]) to `out`.
pub fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let packed =
        ::zstd::bulk::compress(input, DEFAULT_LEVEL).map_err(|e| codec_error("zstd", e))?;
    out.extend_from_slice(&packed);
    Ok(())
}

/// Decompresses zstd frames, producing at most `limit` bytes
/// ([`crate::Error::DecompressedTooLarge`] past that).
pub fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    let decoder =
        ::zstd::stream::read::Decoder::with_buffer(input).map_err(|e| codec_error("zstd", e))?;
    read_bounded(decoder, "zstd", limit, input.len().saturating_mul(4))
}
