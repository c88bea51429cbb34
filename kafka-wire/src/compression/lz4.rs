//! LZ4 (codec 3): the standard LZ4 frame format (magic `04 22 4D 18`) via `lz4_flex`.
//!
//! Kafka clients before 0.10 (message format magic 0) wrote the frame descriptor's
//! header checksum over the magic number too; [`decompress_legacy`] repairs that
//! byte before decoding so those messages stay readable.

use bytes::Bytes;
use lz4_flex::frame::FrameDecoder;

use super::{codec_error, read_bounded};
use crate::error::{Error, Result};

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

/// FLG bits 7-6: the format version, which must be 01.
const FLG_VERSION: u8 = 0b1100_0000;
/// FLG bits that must be zero (bit 1, reserved).
const FLG_RESERVED: u8 = 0b0000_0010;
const FLG_INDEPENDENT_BLOCKS: u8 = 0b0010_0000;
const FLG_BLOCK_CHECKSUM: u8 = 0b0001_0000;
const FLG_CONTENT_SIZE: u8 = 0b0000_1000;
const FLG_CONTENT_CHECKSUM: u8 = 0b0000_0100;
const FLG_DICTIONARY_ID: u8 = 0b0000_0001;
/// BD bits that must be zero.
const BD_RESERVED: u8 = 0b1000_1111;

/// Decompresses LZ4 frames, producing at most `limit` bytes
/// ([`crate::Error::DecompressedTooLarge`] past that).
///
/// One frame of independent blocks (what Kafka clients write) is decoded here,
/// block by block straight into one output buffer sized from the block layout;
/// anything else (dependent blocks, a dictionary, several frames, a malformed
/// layout) goes through `lz4_flex`'s frame decoder, which says what is wrong.
pub fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    match decompress_frame(input, limit, Vec::with_capacity) {
        Some(result) => result,
        None => by_frame_decoder(input, limit),
    }
}

/// Like [`decompress`], into a buffer of the decompression pool, which it returns
/// to once the last [`Bytes`] into it is dropped.
pub(crate) fn decompress_bytes(input: &[u8], limit: usize) -> Result<Bytes> {
    let pool = super::decompression_pool();
    match decompress_frame(input, limit, |size| pool.take(size)) {
        Some(result) => result.map(|out| pool.freeze(out)),
        None => by_frame_decoder(input, limit).map(Bytes::from),
    }
}

fn by_frame_decoder(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    read_bounded(
        FrameDecoder::new(input),
        "lz4",
        limit,
        input.len().saturating_mul(4),
    )
}

/// The block size limit a frame descriptor's BD names.
fn block_max(bd: u8) -> Option<usize> {
    match (bd >> 4) & 0x07 {
        4 => Some(64 * 1024),
        5 => Some(256 * 1024),
        6 => Some(1024 * 1024),
        7 => Some(4 * 1024 * 1024),
        _ => None,
    }
}

fn read_u32(input: &[u8], at: usize) -> Option<u32> {
    let b = input.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// See [`decompress`]; `alloc(n)` gives the empty output buffer with room for `n`
/// bytes. `None` hands the input to the frame decoder.
fn decompress_frame(
    input: &[u8],
    limit: usize,
    alloc: impl FnOnce(usize) -> Vec<u8>,
) -> Option<Result<Vec<u8>>> {
    if input.len() < 7 || input[..4] != MAGIC {
        return None;
    }
    let (flg, bd) = (input[4], input[5]);
    if flg & FLG_VERSION != 0b0100_0000
        || flg & (FLG_RESERVED | FLG_DICTIONARY_ID) != 0
        || flg & FLG_INDEPENDENT_BLOCKS == 0
        || bd & BD_RESERVED != 0
    {
        return None;
    }
    let block_max = block_max(bd)?;
    let block_checksum = flg & FLG_BLOCK_CHECKSUM != 0;
    let mut pos = if flg & FLG_CONTENT_SIZE != 0 { 14 } else { 6 };
    let hc = *input.get(pos)?;
    if hc != (twox_hash::XxHash32::oneshot(0, &input[4..pos]) >> 8) as u8 {
        return None;
    }
    pos += 1;
    // First pass: the block layout, to size the output once.
    let blocks = pos;
    let mut bound = 0usize;
    loop {
        let word = read_u32(input, pos)?;
        pos += 4;
        if word == 0 {
            break;
        }
        let size = (word & !UNCOMPRESSED) as usize;
        if size > block_max {
            return None;
        }
        pos = pos.checked_add(size + if block_checksum { 4 } else { 0 })?;
        bound = bound.saturating_add(if word & UNCOMPRESSED != 0 {
            size
        } else {
            block_max
        });
    }
    let content_checksum = (flg & FLG_CONTENT_CHECKSUM != 0).then_some(pos);
    if content_checksum.is_some() {
        pos += 4;
    }
    if pos != input.len() {
        return None;
    }
    let too_large = || Error::DecompressedTooLarge {
        codec: "lz4",
        limit,
    };
    let mut out = alloc(bound.min(limit));
    let mut pos = blocks;
    loop {
        let word = read_u32(input, pos)?;
        pos += 4;
        if word == 0 {
            break;
        }
        let size = (word & !UNCOMPRESSED) as usize;
        let data = input.get(pos..pos + size)?;
        pos += size;
        if block_checksum {
            let sum = read_u32(input, pos)?;
            pos += 4;
            if sum != twox_hash::XxHash32::oneshot(0, data) {
                return Some(Err(codec_error("lz4", "block checksum mismatch")));
            }
        }
        let start = out.len();
        if word & UNCOMPRESSED != 0 {
            if start + size > limit {
                return Some(Err(too_large()));
            }
            out.extend_from_slice(data);
            continue;
        }
        out.resize(start + block_max, 0);
        match lz4_flex::block::decompress_into(data, &mut out[start..]) {
            Ok(n) => out.truncate(start + n),
            Err(e) => return Some(Err(codec_error("lz4", e))),
        }
        if out.len() > limit {
            return Some(Err(too_large()));
        }
    }
    if let Some(at) = content_checksum {
        if read_u32(input, at)? != twox_hash::XxHash32::oneshot(0, &out) {
            return Some(Err(codec_error("lz4", "content checksum mismatch")));
        }
    }
    Some(Ok(out))
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

    /// Frames as `lz4_flex`'s encoder writes them with the given options.
    fn frame(input: &[u8], info: lz4_flex::frame::FrameInfo) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        encoder.write_all(input).unwrap();
        encoder.finish().unwrap()
    }

    fn sample(len: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_u32;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 3 == 0 {
                    x as u8
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect()
    }

    #[test]
    fn frames_with_every_option_decode_as_the_frame_decoder_decodes_them() {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameInfo};
        let input = sample(300_000);
        for size in [BlockSize::Max64KB, BlockSize::Max256KB, BlockSize::Max1MB] {
            for (block_checksums, content_checksum, content_size) in [
                (false, false, None),
                (true, true, Some(300_000)),
                (true, false, None),
            ] {
                for mode in [BlockMode::Independent, BlockMode::Linked] {
                    let info = FrameInfo::new()
                        .block_size(size)
                        .block_mode(mode)
                        .block_checksums(block_checksums)
                        .content_checksum(content_checksum)
                        .content_size(content_size);
                    let packed = frame(&input, info);
                    assert_eq!(decompress(&packed, 1 << 20).unwrap(), input);
                    let fast = decompress_frame(&packed, 1 << 20, Vec::with_capacity);
                    assert_eq!(fast.is_some(), mode == BlockMode::Independent);
                }
            }
        }
    }

    #[test]
    fn the_limit_holds_and_bad_checksums_fail() {
        use lz4_flex::frame::FrameInfo;
        let input = sample(200_000);
        let mut packed = Vec::new();
        compress(&input, &mut packed).unwrap();
        assert!(matches!(
            decompress(&packed, 199_999),
            Err(Error::DecompressedTooLarge { limit: 199_999, .. })
        ));
        assert_eq!(decompress(&packed, 200_000).unwrap(), input);

        let info = FrameInfo::new()
            .block_checksums(true)
            .content_checksum(true);
        let good = frame(&input, info);
        let mut bad_block = good.clone();
        let last_block_sum = good.len() - 4 - 4 - 4;
        bad_block[last_block_sum] ^= 1;
        assert!(decompress(&bad_block, 1 << 20).is_err());
        let mut bad_content = good.clone();
        let n = bad_content.len();
        bad_content[n - 1] ^= 1;
        assert!(decompress(&bad_content, 1 << 20).is_err());
        // Two frames back to back go to the frame decoder.
        let mut two = good.clone();
        two.extend_from_slice(&good);
        assert!(decompress_frame(&two, 1 << 20, Vec::with_capacity).is_none());
        assert_eq!(
            decompress(&two, 1 << 20).ok(),
            by_frame_decoder(&two, 1 << 20).ok()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Mangled frames: never a panic, never past the limit, and whatever the
        /// frame decoder accepts decodes the same here.
        #[test]
        fn mangled_frames_decode_as_the_frame_decoder_decodes_them(
            len in 0usize..150_000,
            checksums in proptest::bool::ANY,
            cuts in proptest::collection::vec((0usize..200_000, 0u8..=255), 0..4),
            truncate in proptest::option::of(0usize..200_000),
            limit in 1usize..200_000,
        ) {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_checksums(checksums)
                .content_checksum(checksums);
            let mut packed = frame(&sample(len), info);
            for (at, byte) in cuts {
                let n = packed.len();
                packed[at % n] = byte;
            }
            if let Some(t) = truncate {
                packed.truncate(t.min(packed.len()));
            }
            let ours = decompress(&packed, limit);
            if let Ok(out) = &ours {
                proptest::prop_assert!(out.len() <= limit);
            }
            let pooled = decompress_bytes(&packed, limit);
            proptest::prop_assert_eq!(pooled.ok().map(|b| b.to_vec()), ours.as_ref().ok().cloned());
            if let Ok(theirs) = by_frame_decoder(&packed, limit) {
                proptest::prop_assert_eq!(ours.ok(), Some(theirs));
            }
        }
    }
}
