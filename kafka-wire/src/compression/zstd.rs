//! Zstandard (codec 4) via the `zstd` crate.
//!
//! A zstd frame header declares the window the decoder must allocate, independent of
//! the bytes that follow: a 60-byte frame can ask for 128 MiB. The decoder's window
//! is therefore capped at [`max_window_log`] of the output limit.

use super::{bad_level, codec_error, read_bounded};
use crate::error::Result;

/// Compression level used for produced batches (Kafka's default, 3).
pub const DEFAULT_LEVEL: i32 = 3;

/// Smallest window log accepted whatever the limit: 2^23 = 8 MiB covers the windows
/// streaming writers declare at the usual levels (Java's default level 3 declares 2 MiB).
pub const MIN_WINDOW_LOG: u32 = 23;
/// zstd's own default cap (2^27 = 128 MiB).
pub const MAX_WINDOW_LOG: u32 = 27;

/// Appends the zstd compression of `input` (one frame, level [`DEFAULT_LEVEL`]) to `out`.
pub fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    compress_level(input, None, out)
}

/// Appends one zstd frame of `input` at `level` (-131072..=22; `None`:
/// [`DEFAULT_LEVEL`]) to `out`.
pub fn compress_level(input: &[u8], level: Option<i32>, out: &mut Vec<u8>) -> Result<()> {
    let level = level.unwrap_or(DEFAULT_LEVEL);
    if !(-131_072..=22).contains(&level) {
        return Err(bad_level("zstd", level, "-131072..=22"));
    }
    let packed = ::zstd::bulk::compress(input, level).map_err(|e| codec_error("zstd", e))?;
    out.extend_from_slice(&packed);
    Ok(())
}

/// The largest window log a frame may declare when at most `limit` bytes may come
/// out: `ceil(log2(limit))`, kept within [`MIN_WINDOW_LOG`]..=[`MAX_WINDOW_LOG`].
pub fn max_window_log(limit: usize) -> u32 {
    let log = usize::BITS - limit.saturating_sub(1).leading_zeros();
    log.clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG)
}

/// Decompresses zstd frames, producing at most `limit` bytes
/// ([`crate::Error::DecompressedTooLarge`] past that). Frames declaring a window
/// above 2^[`max_window_log`] are refused with [`crate::Error::Compression`].
pub fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut decoder =
        ::zstd::stream::read::Decoder::with_buffer(input).map_err(|e| codec_error("zstd", e))?;
    decoder
        .window_log_max(max_window_log(limit))
        .map_err(|e| codec_error("zstd", e))?;
    read_bounded(decoder, "zstd", limit, input.len().saturating_mul(4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_log_follows_the_limit_within_bounds() {
        assert_eq!(max_window_log(0), MIN_WINDOW_LOG);
        assert_eq!(max_window_log(1 << 20), MIN_WINDOW_LOG);
        assert_eq!(max_window_log(64 << 20), 26);
        assert_eq!(max_window_log((64 << 20) + 1), 27);
        assert_eq!(max_window_log(usize::MAX), MAX_WINDOW_LOG);
    }

    #[test]
    fn a_tiny_frame_declaring_a_huge_window_is_refused() {
        // Found by the decompress_zstd fuzz target: a 68-byte frame whose header
        // declares a window of ~84 MB, which the decoder would allocate up front.
        let frame: [u8; 68] = [
            0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x82, 0xc4, 0x01, 0x00, 0x04, 0x03, 0x1a, 0x00, 0x00,
            0x00, 0x04, 0x6b, 0x31, 0x0a, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00, 0x1c, 0x00, 0x84,
            0x01, 0x02, 0x04, 0x6b, 0x32, 0x0a, 0x77, 0x6f, 0x72, 0x6c, 0x64, 0x00, 0xb6, 0x03,
            0x00, 0x84, 0x01, 0x04, 0x04, 0x6b, 0x32, 0xa2, 0x03, 0x73, 0x74, 0x72, 0x65, 0x61,
            0x6d, 0x20, 0x00, 0x01, 0x00, 0x3f, 0x8f, 0x2a, 0x65, 0x01, 0x00, 0x00,
        ];
        assert!(matches!(
            decompress(&frame, 1 << 20),
            Err(crate::Error::Compression { codec: "zstd", .. })
        ));
    }
}
