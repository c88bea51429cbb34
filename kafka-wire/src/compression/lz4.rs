//! LZ4 (codec 3): the standard LZ4 frame format (magic `04 22 4D 18`) via `lz4_flex`.
//!
//! Kafka clients before 0.10 (message format magic 0) wrote the frame descriptor's
//! header checksum over the magic number too; [`decompress_legacy`] repairs that
//! byte before decoding so those messages stay readable.

use lz4_flex::frame::FrameDecoder;

use super::{codec_error, read_bounded};
use crate::error::Result;

const MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];

/// Frame descriptor FLG: version 01, independent blocks, no checksums, no content size.
const FLG: u8 = 0b0110_0000;
/// Frame descriptor BD: 64 KiB maximum block size.
const BD: u8 = 0b0100_0000;
const BLOCK_SIZE: usize = 64 * 1024;
/// A block's size word with this bit set holds the block's bytes uncompressed.
const UNCOMPRESSED: u32 = 0x8000_0000;

/// Appends one LZ4 frame of `input` (64 KiB independent blocks, like Java's producer) to `out`.
///
/// The frame is written here, block by block straight into `out`, rather than
/// through `lz4_flex`'s frame encoder, which copies the input into a buffer of its
/// own and allocates a block buffer per frame: a producer compresses every batch.
pub fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let blocks = input.len().div_ceil(BLOCK_SIZE);
    out.reserve(
        7 + 4 + blocks * 4 + lz4_flex::block::get_maximum_output_size(input.len().min(BLOCK_SIZE)),
    );
    out.extend_from_slice(&MAGIC);
    out.push(FLG);
    out.push(BD);
    out.push((twox_hash::XxHash32::oneshot(0, &[FLG, BD]) >> 8) as u8);
    for block in input.chunks(BLOCK_SIZE) {
        let size_at = out.len();
        let start = size_at + 4;
        out.resize(
            start + lz4_flex::block::get_maximum_output_size(block.len()),
            0,
        );
        let packed = lz4_flex::block::compress_into(block, &mut out[start..])
            .map_err(|e| codec_error("lz4", e))?;
        // A block that does not shrink is stored as it is, as the frame format allows.
        let word = if packed < block.len() {
            out.truncate(start + packed);
            packed as u32
        } else {
            out.truncate(start);
            out.extend_from_slice(block);
            block.len() as u32 | UNCOMPRESSED
        };
        out[size_at..start].copy_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    Ok(())
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
    fn frames_decode_with_lz4_flex_for_every_block_layout() {
        let text = b"kafka records compress well, kafka records compress well".repeat(3000);
        let mut noise = Vec::new();
        let mut x = 0x2545_f491_u32;
        for _ in 0..70_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noise.push(x as u8);
        }
        // Empty, one block, several blocks, and blocks that do not shrink.
        for input in [&b""[..], b"x", &text[..1000], &text[..], &noise[..]] {
            let mut packed = vec![9, 9];
            compress(input, &mut packed).unwrap();
            assert_eq!(packed[..2], [9, 9], "appends to what is there");
            assert_eq!(packed[2..9], [0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82]);
            let mut decoded = Vec::new();
            std::io::Read::read_to_end(&mut FrameDecoder::new(&packed[2..]), &mut decoded).unwrap();
            assert_eq!(decoded, input);
            assert_eq!(decompress(&packed[2..], 1 << 20).unwrap(), input);
        }
    }

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
