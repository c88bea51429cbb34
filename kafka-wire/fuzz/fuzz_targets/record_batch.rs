//! Record batch decode: any bytes as a Fetch `records` field. The first byte picks
//! whether CRCs are checked (unchecked reaches the record parser with random bytes).
#![no_main]

use bytes::Bytes;
use kafka_wire::records::{BatchReader, DecodeOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let opts = DecodeOptions {
        max_decompressed_bytes: 1 << 20,
        max_total_decompressed_bytes: 4 << 20,
        verify_crc: flags & 1 == 1,
    };
    for batch in BatchReader::with_options(Bytes::copy_from_slice(rest), opts) {
        let Ok(batch) = batch else { break };
        let _ = batch.control_record();
        let _ = batch.header.last_sequence();
        for record in batch.records() {
            if record.is_err() {
                break;
            }
        }
    }
});
