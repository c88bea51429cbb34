//! Decompressors under hostile input: claimed sizes never size an allocation, and the
//! configured output limit holds for every codec.
#![allow(clippy::unwrap_used)] // test crate: unwrap is the assertion

use kafka_wire::Error;
use kafka_wire::compression::{Compression, snappy};

fn bomb(codec: Compression, size: usize) -> Vec<u8> {
    let mut packed = Vec::new();
    codec.compress(&vec![0u8; size], &mut packed).unwrap();
    packed
}

#[test]
fn highly_compressible_input_stops_at_the_limit() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let packed = bomb(codec, 32 << 20);
        assert!(packed.len() < 2 << 20, "{codec}: {}", packed.len());
        assert!(
            matches!(codec.decompress(&packed, 1 << 20), Err(Error::DecompressedTooLarge { limit, .. }) if limit == 1 << 20),
            "{codec}"
        );
    }
}

#[test]
fn xerial_chunk_lengths_past_the_input_are_invalid() {
    let mut framed = Vec::new();
    snappy::compress(b"abc", &mut framed).unwrap();
    let n = framed.len();
    // The chunk length sits right after the 16-byte header.
    framed[16..20].copy_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert!(matches!(
        snappy::decompress(&framed, usize::MAX),
        Err(Error::InvalidLength { .. })
    ));
    framed.truncate(18);
    assert!(matches!(
        snappy::decompress(&framed, usize::MAX),
        Err(Error::Truncated { .. })
    ));
    assert!(n > 18);
}

#[test]
fn a_truncated_xerial_header_is_truncated() {
    assert!(matches!(
        snappy::decompress(&snappy::XERIAL_MAGIC, 100),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn garbage_is_a_codec_error() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        assert!(
            matches!(
                codec.decompress(b"\x01\x02 definitely not compressed", 1 << 20),
                Err(Error::Compression { .. })
            ),
            "{codec}"
        );
    }
}
