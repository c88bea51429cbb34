//! Response frame decode for every api key and version: byte 0 picks the api key,
//! byte 1 the version, the rest is the frame after its size prefix (response header
//! at the version the api key prescribes, then the body).
#![no_main]

use bytes::Bytes;
use kafka_wire::protocol::messages::decode_response_body;
use kafka_wire::protocol::{ApiKey, Message, ResponseHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [key, version, rest @ ..] = data else {
        return;
    };
    let api_key = ApiKey::ALL[usize::from(*key) % ApiKey::ALL.len()];
    let version = i16::from(*version % 32);
    let mut frame = Bytes::copy_from_slice(rest);
    if ResponseHeader::decode(&mut frame, api_key.response_header_version(version)).is_ok() {
        let _ = decode_response_body(api_key, version, &mut frame);
    }
});
