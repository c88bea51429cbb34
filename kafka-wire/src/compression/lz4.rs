//! LZ4 (codec 3): the standard LZ4 frame format (magic `04 22 4D 18`) via `lz4_flex`.
//!
//! Kafka clients before 0.10 (message format magic 0) wrote the frame descriptor's
//! header checksum over the magic number too; [`decompress_legacy`] repairs that
//! byte before decoding so those messages stay readable.

use std::io::Write;

use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use super::{codec_error, read_bounded};
use crate::error::Result;

const MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];

/// Appends one LZ4 frame of `input` (64 KiB independent blocks, like Java's producer) to `out`.
pub fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let info = FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent);
    let mut enc = FrameEncoder::with_frame_info(info, std::mem::take(out));
    let res = enc.write_all(input);
    *out = enc.finish().map_err(|e| codec_error("lz4", e))?;
    res.map_err(|e| codec_error("lz4", e))
}

/// Decompresses LZ4 frames, producing at most `limit` bytes
/// ([`crate::Error::DecompressedTooLarge`] past that).
pub fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    read_bounded(
        FrameDecoder::new(input),
        "lz4",
        limit,
        input.len().saturating_mul(4),
    )
}

/// Like [`decompress`], for message format magic 0, whose writers computed the header
/// checksum over the frame magic as well: the checksum byte is recomputed first.
pub fn decompress_legacy(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    match fixed_header_checksum(input) {
        Some(fixed) => decompress(&fixed, limit),
        None => decompress(input, limit),
    }
}

/// Returns a copy of `input` with a correct frame header checksum, or `None` if the
/// input is not an LZ4 frame with a readable descriptor.
fn fixed_header_checksum(input: &[u8]) -> Option<Vec<u8>> {
    if input.len() < 7 || input[..4] != MAGIC {
        return None;
    }
    let flg = input[4];
    // FLG bit 3: 8-byte content size follows BD; bit 0: 4-byte dictionary id.
    let mut hc_pos = 6;
    if flg & 0x08 != 0 {
        hc_pos += 8;
    }
    if flg & 0x01 != 0 {
        hc_pos += 4;
    }
    if input.len() <= hc_pos {
        return None;
    }
    let hc = (twox_hash::XxHash32::oneshot(0, &input[4..hc_pos]) >> 8) as u8;
    let mut fixed = input.to_vec();
    fixed[hc_pos] = hc;
    Some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_frames_with_the_old_header_checksum_decode() {
        let input = b"kafka 0.8 lz4 framing".repeat(10);
        let mut packed = Vec::new();
        compress(&input, &mut packed).unwrap();
        // Old Kafka: checksum over magic + descriptor.
        packed[6] = (twox_hash::XxHash32::oneshot(0, &packed[..6]) >> 8) as u8;
        assert!(decompress(&packed, 1 << 20).is_err());
        assert_eq!(decompress_legacy(&packed, 1 << 20).unwrap(), input);
    }
}
