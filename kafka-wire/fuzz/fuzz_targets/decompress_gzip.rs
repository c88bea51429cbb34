//! Gzip decompression of arbitrary bytes: never panics, never returns more than the
//! limit, never allocates from a claimed size.
#![no_main]

use kafka_wire::compression::Compression;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = Compression::Gzip.decompress(data, LIMIT) {
        assert!(out.len() <= LIMIT);
    }
});
