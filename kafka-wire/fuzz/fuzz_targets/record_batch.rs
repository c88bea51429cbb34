//! Record batch decode: any bytes as a Fetch `records` field. The first byte picks
//! whether CRCs are checked (unchecked reaches the record parser with random bytes).
//! `records::peek` must agree with the reader wherever the reader reads every batch.
#![no_main]

use bytes::Bytes;
use kafka_wire::records::{BatchReader, DecodeOptions, peek};
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
    let peeked = peek(rest);
    let mut reader = BatchReader::with_options(Bytes::copy_from_slice(rest), opts);
    let mut next_offset: Option<i64> = None;
    let mut all_read = true;
    for batch in reader.by_ref() {
        let Ok(batch) = batch else {
            all_read = false;
            break;
        };
        if batch.header.magic != 2 {
            all_read = false;
        }
        next_offset = Some(next_offset.map_or(batch.next_offset(), |n| n.max(batch.next_offset())));
        let _ = batch.control_record();
        let _ = batch.header.last_sequence();
        for record in batch.records() {
            if record.is_err() {
                break;
            }
        }
    }
    if all_read {
        if let Some(p) = peeked {
            assert_eq!(p.next_offset, next_offset);
            assert_eq!(p.tail, reader.remaining());
        }
    }
});
