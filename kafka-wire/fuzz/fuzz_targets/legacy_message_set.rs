//! Legacy (magic 0/1) message set decode: the magic byte of the first message is
//! forced to 0 or 1 so that random input reaches the legacy parser, including
//! compressed wrappers (attribute bits 0-2) and their inner message sets.
#![no_main]

use bytes::Bytes;
use kafka_wire::records::{BatchReader, DecodeOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut input = rest.to_vec();
    if input.len() > 16 {
        input[16] = flags & 1;
    }
    let opts = DecodeOptions {
        max_decompressed_bytes: 1 << 20,
        max_total_decompressed_bytes: 4 << 20,
        verify_crc: flags & 2 == 2,
    };
    for batch in BatchReader::with_options(Bytes::from(input), opts) {
        let Ok(batch) = batch else { break };
        for record in batch.records() {
            if record.is_err() {
                break;
            }
        }
    }
});
