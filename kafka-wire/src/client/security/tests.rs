//! Reading security settings from properties, and keeping secrets out of `Debug`.

use std::collections::BTreeMap;

use super::*;
use crate::client::config::ConsumerConfig;

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn protocols_are_read_with_their_java_names() {
    for (name, protocol) in [
        ("PLAINTEXT", SecurityProtocol::Plaintext),
        ("ssl", SecurityProtocol::Ssl),
        ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext),
        ("SASL_SSL", SecurityProtocol::SaslSsl),
    ] {
        assert_eq!(name.parse::<SecurityProtocol>().unwrap(), protocol);
    }
    let err = "TLS".parse::<SecurityProtocol>().unwrap_err().to_string();
    assert!(err.contains("security.protocol"), "{err}");
}

#[test]
fn sasl_protocols_need_a_mechanism() {
    let err = ConsumerConfig::from_properties(&props(&[
        ("bootstrap.servers", "127.0.0.1:9092"),
        ("security.protocol", "SASL_PLAINTEXT"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(err.contains("sasl"), "{err}");
}

#[test]
fn ssl_uses_the_system_roots_without_a_truststore() {
    let c = ConsumerConfig::from_properties(&props(&[
        ("bootstrap.servers", "127.0.0.1:9092"),
        ("security.protocol", "SSL"),
    ]))
    .unwrap();
    let security = &c.client.security;
    assert_eq!(security.protocol(), SecurityProtocol::Ssl);
    let tls = security.tls().unwrap();
    assert!(tls.verifies_hostname());
    assert!(format!("{tls:?}").contains("system roots"));
}

#[test]
fn an_empty_endpoint_identification_algorithm_turns_the_host_check_off() {
    let c = ConsumerConfig::from_properties(&props(&[
        ("bootstrap.servers", "127.0.0.1:9092"),
        ("security.protocol", "SSL"),
        ("ssl.endpoint.identification.algorithm", ""),
    ]))
    .unwrap();
    assert!(!c.client.security.tls().unwrap().verifies_hostname());
}

#[test]
fn a_missing_truststore_file_names_its_key() {
    let err = ConsumerConfig::from_properties(&props(&[
        ("bootstrap.servers", "127.0.0.1:9092"),
        ("security.protocol", "SSL"),
        ("ssl.truststore.location", "/nonexistent/ca.pem"),
        ("ssl.truststore.type", "PEM"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(err.contains("ssl.truststore.location"), "{err}");
}

#[test]
fn a_truststore_without_certificates_is_refused() {
    let err = ConsumerConfig::from_properties(&props(&[
        ("bootstrap.servers", "127.0.0.1:9092"),
        ("security.protocol", "SSL"),
        ("ssl.truststore.certificates", "not a certificate"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(err.contains("ssl.truststore.certificates"), "{err}");
}

#[test]
fn debug_output_shows_no_secret() {
    let c = ConsumerConfig::from_properties(&props(&[
        ("bootstrap.servers", "127.0.0.1:9092"),
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "PLAIN"),
        (
            "sasl.jaas.config",
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"alice\" password=\"s3cr3t-pw\";",
        ),
    ]))
    .unwrap();
    let shown = format!("{c:?} {:#?}", c.client.security);
    assert!(!shown.contains("s3cr3t-pw"), "{shown}");
    assert!(shown.contains("SaslSsl"), "{shown}");
}
