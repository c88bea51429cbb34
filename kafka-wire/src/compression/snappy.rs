//! Snappy (codec 2): raw snappy blocks and the xerial framing Java clients write.
//!
//! ```text
//!  xerial: 82 'S' 'N' 'A' 'P' 'P' 'Y' 00 | version i32 | compat i32 | { len i32 | raw block }*
//!  raw:    uvarint uncompressed length | snappy elements
//! ```
//!
//! Decoding accepts both (xerial is recognised by its magic). Encoding writes xerial
//! with 32 KiB chunks, as Java's `SnappyOutputStream` does, so Java consumers can read it.

use super::codec_error;
use crate::error::{Error, Result};

/// The 8-byte magic that starts an xerial-framed snappy stream.
pub const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Uncompressed bytes per xerial chunk when encoding (Java's default block size).
pub const XERIAL_CHUNK: usize = 32 * 1024;
const XERIAL_HEADER_LEN: usize = 16;

/// The largest output one input byte of a raw snappy block can produce: a 3-byte
/// copy element yields at most 64 bytes. Claimed lengths above `22 * input` are lies.
const MAX_EXPANSION: usize = 22;

/// Appends `input` as an xerial-framed snappy stream (version 1, compat 1) to `out`.
pub fn compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut enc = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_CHUNK) {
        let len_pos = out.len();
        out.extend_from_slice(&[0; 4]);
        let start = out.len();
        out.resize(start + snap::raw::max_compress_len(chunk.len()), 0);
        let n = enc
            .compress(chunk, &mut out[start..])
            .map_err(|e| codec_error("snappy", e))?;
        out.truncate(start + n);
        let n = i32::try_from(n).map_err(|e| codec_error("snappy", e))?;
        out[len_pos..start].copy_from_slice(&n.to_be_bytes());
    }
    Ok(())
}

/// Appends `input` as one raw snappy block (no framing) to `out`.
pub fn compress_raw(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.resize(start + snap::raw::max_compress_len(input.len()), 0);
    let n = snap::raw::Encoder::new()
        .compress(input, &mut out[start..])
        .map_err(|e| codec_error("snappy", e))?;
    out.truncate(start + n);
    Ok(())
}

/// Decompresses an xerial-framed stream or a raw snappy block, producing at most
/// `limit` bytes ([`Error::DecompressedTooLarge`] past that).
pub fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if input.starts_with(&XERIAL_MAGIC) {
        if input.len() < XERIAL_HEADER_LEN {
            return Err(Error::Truncated {
                context: "snappy xerial header",
                needed: XERIAL_HEADER_LEN,
                remaining: input.len(),
            });
        }
        // Version and compat ints are not checked: readers in the wild ignore them.
        let mut rest = &input[XERIAL_HEADER_LEN..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(Error::Truncated {
                    context: "snappy xerial chunk length",
                    needed: 4,
                    remaining: rest.len(),
                });
            }
            let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
            rest = &rest[4..];
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= rest.len())
                .ok_or(Error::InvalidLength {
                    context: "snappy xerial chunk",
                    length: i64::from(len),
                })?;
            decompress_raw_into(&rest[..len], limit, &mut out)?;
            rest = &rest[len..];
        }
    } else {
        decompress_raw_into(input, limit, &mut out)?;
    }
    Ok(out)
}

/// Decompresses one raw snappy block onto the end of `out`, keeping `out` within `limit`.
fn decompress_raw_into(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<()> {
    let claimed = snap::raw::decompress_len(block).map_err(|e| codec_error("snappy", e))?;
    if claimed > block.len().saturating_mul(MAX_EXPANSION) {
        return Err(Error::Compression {
            codec: "snappy",
            message: format!(
                "block of {} bytes claims {claimed} uncompressed bytes",
                block.len()
            ),
        });
    }
    let start = out.len();
    if claimed > limit.saturating_sub(start) {
        return Err(Error::DecompressedTooLarge {
            codec: "snappy",
            limit,
        });
    }
    out.resize(start + claimed, 0);
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| codec_error("snappy", e))?;
    out.truncate(start + n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_xerial_both_decode() {
        let input = b"snappy snappy snappy".repeat(5000);
        let mut raw = Vec::new();
        compress_raw(&input, &mut raw).unwrap();
        assert_eq!(decompress(&raw, input.len()).unwrap(), input);
        let mut framed = Vec::new();
        compress(&input, &mut framed).unwrap();
        assert!(framed.starts_with(&XERIAL_MAGIC));
        assert_eq!(decompress(&framed, input.len()).unwrap(), input);
    }

    #[test]
    fn a_chunk_claiming_4_gb_with_38_bytes_left_is_refused_without_allocating() {
        let mut bytes = XERIAL_MAGIC.to_vec();
        bytes.extend_from_slice(&1i32.to_be_bytes());
        bytes.extend_from_slice(&1i32.to_be_bytes());
        bytes.extend_from_slice(&(-1i32).to_be_bytes());
        bytes.extend_from_slice(&[0u8; 38]);
        assert!(matches!(
            decompress(&bytes, usize::MAX),
            Err(Error::InvalidLength { .. })
        ));
        // A raw block whose varint header claims ~4.2 GB.
        let raw = [0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0];
        assert!(decompress(&raw, usize::MAX).is_err());
        assert!(decompress(&raw, 100).is_err());
    }
}
