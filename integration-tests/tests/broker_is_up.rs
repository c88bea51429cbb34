//! Proves that a real broker is there: a raw ApiVersions v0 exchange over TCP.
//!
//! Hand-built bytes on purpose: this test does not depend on the codec it is
//! meant to give a broker to.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use integration_tests::require_broker;

fn api_versions_v0_request(correlation_id: i32, client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // api key: ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // api version
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[test]
fn broker_answers_api_versions_v0() {
    let bootstrap = require_broker!();
    let addr = bootstrap.split(',').next().unwrap().to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(&api_versions_v0_request(7, "strom-it"))
        .unwrap();

    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let len = i32::from_be_bytes(len);
    assert!(
        (10..1_000_000).contains(&len),
        "implausible response size {len}"
    );
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).unwrap();

    assert_eq!(i32_at(&body, 0), 7, "correlation id echoed");
    assert_eq!(i16_at(&body, 4), 0, "error code");
    let count = i32_at(&body, 6);
    assert!(count > 0);
    assert_eq!(
        body.len(),
        10 + count as usize * 6,
        "v0 body is exactly the array"
    );
    let keys: Vec<(i16, i16, i16)> = (0..count as usize)
        .map(|i| {
            let at = 10 + i * 6;
            (
                i16_at(&body, at),
                i16_at(&body, at + 2),
                i16_at(&body, at + 4),
            )
        })
        .collect();
    for needed in [0i16, 1, 3, 18] {
        let (_, min, max) = keys
            .iter()
            .find(|(k, _, _)| *k == needed)
            .unwrap_or_else(|| panic!("broker lacks api key {needed}"));
        assert!(min <= max);
    }
}
