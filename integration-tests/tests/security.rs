//! TLS and SASL against the secured real broker (`scripts/kafka up --secure`):
//! produce, consume, a consumer group, a transaction and admin calls over SASL_SSL
//! with each mechanism and over mutual TLS; each misconfiguration failing fast with
//! its cause named and few connection attempts; a SASL session re-authenticated on
//! the same connections while traffic flows.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration_tests::{SecureBroker, random_topic, require_secure_broker};
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::{ClientConfig, ConsumerConfig, ProducerConfig};
use kafka_wire::client::consumer::Consumer;
use kafka_wire::client::group::GroupConsumer;
use kafka_wire::client::metrics::connection_attempts;
use kafka_wire::client::security::{SecurityConfig, TlsConfig};
use kafka_wire::client::transaction::TransactionalProducer;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

/// Upper bound for any wait on the broker in these tests.
const DEADLINE: Duration = Duration::from_secs(30);

type Props = BTreeMap<String, String>;

fn unique(prefix: &str) -> String {
    random_topic(prefix)
}

fn with(base: &Props, extra: &[(&str, &str)]) -> Props {
    let mut p = base.clone();
    for (k, v) in extra {
        p.insert(k.to_string(), v.to_string());
    }
    p
}

/// SASL_SSL with `mechanism` and `jaas` (the CA of the test certificates trusted).
fn sasl_ssl(broker: &SecureBroker, client_id: &str, mechanism: &str, jaas: &str) -> Props {
    with(
        &Props::new(),
        &[
            ("bootstrap.servers", &broker.sasl_ssl),
            ("client.id", client_id),
            ("security.protocol", "SASL_SSL"),
            ("ssl.truststore.location", &broker.cert("ca.pem")),
            ("ssl.truststore.type", "PEM"),
            ("sasl.mechanism", mechanism),
            ("sasl.jaas.config", jaas),
        ],
    )
}

fn plain_jaas(user: &str, password: &str) -> String {
    format!(
        "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"{user}\" password=\"{password}\";"
    )
}

fn scram_jaas(user: &str, password: &str) -> String {
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{user}\" password=\"{password}\";"
    )
}

/// SSL with admin's client certificate, given inline as PEM.
fn mtls(broker: &SecureBroker, client_id: &str) -> Props {
    let chain = std::fs::read_to_string(broker.cert("admin.pem")).unwrap();
    let key = std::fs::read_to_string(broker.cert("admin.key")).unwrap();
    with(
        &Props::new(),
        &[
            ("bootstrap.servers", &broker.ssl),
            ("client.id", client_id),
            ("security.protocol", "SSL"),
            ("ssl.truststore.location", &broker.cert("ca.pem")),
            ("ssl.keystore.certificate.chain", &chain),
            ("ssl.keystore.key", &key),
        ],
    )
}

/// Base64url without padding, for unsecured JWS tokens.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An unsecured JWS (`alg: none`) for `sub`, issued at `iat`, expiring at `exp`.
fn unsecured_token(sub: &str, iat: u64, exp: u64) -> String {
    format!(
        "{}.{}.",
        base64url(br#"{"alg":"none"}"#),
        base64url(format!(r#"{{"sub":"{sub}","iat":{iat},"exp":{exp}}}"#).as_bytes())
    )
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The client settings of `props`.
fn client_config(props: &Props) -> ClientConfig {
    ConsumerConfig::from_properties(props).unwrap().client
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Reads `topic` (one partition) from the start until `n` records came.
async fn read_n(props: &Props, topic: &str, n: usize, isolation: &str) -> Vec<String> {
    let config = ConsumerConfig::from_properties(&with(
        props,
        &[
            ("isolation.level", isolation),
            ("auto.offset.reset", "earliest"),
            ("fetch.max.wait.ms", "100"),
        ],
    ))
    .unwrap();
    let mut consumer = Consumer::new(config).await.unwrap();
    consumer.assign([(topic.to_string(), 0)]);
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < n {
        assert!(
            start.elapsed() < DEADLINE,
            "read {} of {n} records",
            out.len()
        );
        for r in consumer.poll_for(Duration::from_millis(200)).await.unwrap() {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    consumer.close().await;
    out
}

/// Admin, produce, consume, a consumer group and a transaction with `props`.
async fn all_clients_work(props: Props) {
    // Admin: create a topic and find it in the listing.
    let client = Client::connect(client_config(&props)).await.unwrap();
    let admin = Admin::new(client.clone());
    let topic = unique("sec");
    admin
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .unwrap();
    let start = Instant::now();
    while !client
        .list_topics()
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == topic && !t.partitions.is_empty())
    {
        assert!(start.elapsed() < DEADLINE, "{topic} not listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Produce.
    let producer = Producer::new(
        ProducerConfig::from_properties(&with(&props, &[("linger.ms", "1")])).unwrap(),
    )
    .await
    .unwrap();
    let sent = values("plain", 10);
    let mut deliveries = Vec::new();
    for v in &sent {
        deliveries.push(
            producer
                .send(ProducerRecord::new(&topic, v.clone()))
                .await
                .unwrap(),
        );
    }
    for d in deliveries {
        d.await.unwrap();
    }

    // Consume.
    assert_eq!(read_n(&props, &topic, 10, "read_uncommitted").await, sent);

    // A consumer group: consume, commit, and read the commit back.
    let group = unique("sec-group");
    let group_props = with(
        &props,
        &[
            ("group.id", &group),
            ("auto.offset.reset", "earliest"),
            ("fetch.max.wait.ms", "100"),
        ],
    );
    let mut member = GroupConsumer::new(ConsumerConfig::from_properties(&group_props).unwrap())
        .await
        .unwrap();
    member.subscribe([topic.as_str()]);
    let mut seen = 0;
    let start = Instant::now();
    while seen < 10 {
        assert!(start.elapsed() < DEADLINE, "group member read {seen} of 10");
        seen += member
            .poll_for(Duration::from_millis(200))
            .await
            .unwrap()
            .len();
    }
    member.commit().await.unwrap();
    let tp = (topic.clone(), 0);
    let committed = member.committed(std::slice::from_ref(&tp)).await.unwrap();
    assert_eq!(committed.get(&tp), Some(&10));
    member.close().await.unwrap();

    // A transaction, read with read_committed.
    let txn_props = with(
        &props,
        &[("transactional.id", &unique("sec-txn")), ("linger.ms", "1")],
    );
    let mut txn = TransactionalProducer::new(ProducerConfig::from_properties(&txn_props).unwrap())
        .await
        .unwrap();
    txn.begin().await.unwrap();
    let mut deliveries = Vec::new();
    for v in values("txn", 5) {
        deliveries.push(txn.send(ProducerRecord::new(&topic, v)).await.unwrap());
    }
    txn.commit().await.unwrap();
    for d in deliveries {
        d.await.unwrap();
    }
    txn.close(Duration::from_secs(5)).await.unwrap();
    let committed_read = read_n(&props, &topic, 15, "read_committed").await;
    assert_eq!(committed_read[10..], values("txn", 5)[..]);

    admin.delete_topics(&[topic]).await.unwrap();
}

#[tokio::test]
async fn everything_works_over_sasl_ssl_with_plain() {
    let broker = require_secure_broker!();
    let id = unique("sec-plain");
    all_clients_work(sasl_ssl(
        &broker,
        &id,
        "PLAIN",
        &plain_jaas("admin", "admin-secret"),
    ))
    .await;
}

#[tokio::test]
async fn everything_works_over_sasl_ssl_with_scram_sha_256() {
    let broker = require_secure_broker!();
    let id = unique("sec-scram256");
    all_clients_work(sasl_ssl(
        &broker,
        &id,
        "SCRAM-SHA-256",
        &scram_jaas("admin", "admin-secret"),
    ))
    .await;
}

#[tokio::test]
async fn everything_works_over_sasl_ssl_with_scram_sha_512() {
    let broker = require_secure_broker!();
    let id = unique("sec-scram512");
    all_clients_work(sasl_ssl(
        &broker,
        &id,
        "SCRAM-SHA-512",
        &scram_jaas("admin", "admin-secret"),
    ))
    .await;
}

#[tokio::test]
async fn everything_works_over_sasl_ssl_with_oauthbearer() {
    let broker = require_secure_broker!();
    let id = unique("sec-oauth");
    all_clients_work(sasl_ssl(
        &broker,
        &id,
        "OAUTHBEARER",
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"admin\";",
    ))
    .await;
}

#[tokio::test]
async fn everything_works_over_mutual_tls() {
    let broker = require_secure_broker!();
    let id = unique("sec-mtls");
    all_clients_work(mtls(&broker, &id)).await;
}

#[tokio::test]
async fn a_pkcs12_keystore_and_a_pem_keystore_file_work_for_mutual_tls() {
    let broker = require_secure_broker!();
    // PKCS12 (password changeit).
    let id = unique("sec-p12");
    let props = with(
        &Props::new(),
        &[
            ("bootstrap.servers", &broker.ssl),
            ("client.id", &id),
            ("security.protocol", "SSL"),
            ("ssl.truststore.location", &broker.cert("ca.pem")),
            ("ssl.keystore.location", &broker.cert("admin.p12")),
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.password", "changeit"),
        ],
    );
    let client = Client::connect(client_config(&props)).await.unwrap();
    client.list_topics().await.unwrap();
    // A PEM keystore: certificate and key in one file.
    let dir = std::env::temp_dir().join(unique("sec-keystore"));
    std::fs::create_dir_all(&dir).unwrap();
    let keystore = dir.join("admin-keystore.pem");
    let mut both = std::fs::read(broker.cert("admin.pem")).unwrap();
    both.extend(std::fs::read(broker.cert("admin.key")).unwrap());
    std::fs::write(&keystore, both).unwrap();
    let props = with(
        &props,
        &[
            ("ssl.keystore.location", &keystore.display().to_string()),
            ("ssl.keystore.type", "PEM"),
        ],
    );
    let client = Client::connect(client_config(&props)).await.unwrap();
    client.list_topics().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A client configured in code (no properties): mutual TLS from PEM files.
#[tokio::test]
async fn a_security_config_built_in_code_connects() {
    let broker = require_secure_broker!();
    let tls = TlsConfig::new()
        .with_trusted_pem_file(broker.cert("ca.pem"))
        .unwrap()
        .with_client_identity_pem_files(broker.cert("admin.pem"), broker.cert("admin.key"), None)
        .unwrap();
    let mut config = ClientConfig::new(&broker.ssl).unwrap();
    config.security = SecurityConfig::ssl(tls);
    let client = Client::connect(config).await.unwrap();
    client.list_topics().await.unwrap();
}

/// Connects a client with `props`, expecting a failure within two seconds whose
/// message contains every one of `causes`; returns the message. At most three
/// connection attempts may have been made to the bootstrap broker.
async fn fails_fast(props: Props, causes: &[&str]) -> String {
    let config = client_config(&props);
    let client_id = config.client_id.clone();
    let address = config.bootstrap_servers[0].clone();
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), Client::connect(config)).await;
    let elapsed = start.elapsed();
    let error = match result {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(_)) => panic!("connected, expected a failure naming {causes:?}"),
        Err(_) => panic!("still trying after 10 s, expected a failure naming {causes:?}"),
    };
    let attempts = connection_attempts(&client_id, &address);
    eprintln!("failed in {elapsed:?} after {attempts} connection attempt(s): {error}");
    assert!(
        elapsed < Duration::from_secs(2),
        "took {elapsed:?}: {error}"
    );
    for cause in causes {
        assert!(error.contains(cause), "{error:?} does not name {cause:?}");
    }
    assert!(
        (1..=3).contains(&attempts),
        "{attempts} connection attempts: {error}"
    );
    error
}

#[tokio::test]
async fn a_wrong_password_fails_fast_naming_the_cause() {
    let broker = require_secure_broker!();
    for (mechanism, jaas) in [
        ("PLAIN", plain_jaas("alice", "wrong-secret")),
        ("SCRAM-SHA-256", scram_jaas("alice", "wrong-secret")),
        ("SCRAM-SHA-512", scram_jaas("admin", "wrong-secret")),
    ] {
        let id = unique("sec-badpw");
        let error = fails_fast(
            sasl_ssl(&broker, &id, mechanism, &jaas),
            &["authentication", mechanism],
        )
        .await;
        assert!(
            !error.contains("wrong-secret"),
            "the password leaked: {error}"
        );
    }
}

#[tokio::test]
async fn an_unknown_ca_fails_fast_naming_the_cause() {
    let broker = require_secure_broker!();
    let id = unique("sec-ca");
    let props = with(
        &mtls(&broker, &id),
        &[("ssl.truststore.location", &broker.cert("other-ca.pem"))],
    );
    fails_fast(props, &["TLS", "unknown authority"]).await;
}

#[tokio::test]
async fn no_client_certificate_on_the_mutual_tls_port_fails_fast() {
    let broker = require_secure_broker!();
    let id = unique("sec-nocert");
    let mut props = mtls(&broker, &id);
    props.remove("ssl.keystore.certificate.chain");
    props.remove("ssl.keystore.key");
    fails_fast(props, &["TLS", "client certificate"]).await;
}

/// A PKCS#8 key encrypted with a password (`ssl.key.password`), made with openssl.
#[tokio::test]
async fn an_encrypted_private_key_is_opened_with_ssl_key_password() {
    let broker = require_secure_broker!();
    let dir = std::env::temp_dir().join(unique("sec-encrypted"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("admin-encrypted.key");
    let status = std::process::Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:key-pw-42",
        ])
        .arg("-in")
        .arg(broker.cert("admin.key"))
        .arg("-out")
        .arg(&key)
        .status()
        .expect("openssl");
    assert!(status.success());
    let id = unique("sec-encrypted");
    let props = with(
        &mtls(&broker, &id),
        &[
            ("ssl.keystore.key", &std::fs::read_to_string(&key).unwrap()),
            ("ssl.key.password", "key-pw-42"),
        ],
    );
    let client = Client::connect(client_config(&props)).await.unwrap();
    client.list_topics().await.unwrap();
    // A wrong password is a configuration error naming ssl.key.password.
    let wrong = with(&props, &[("ssl.key.password", "nope")]);
    let error = ConsumerConfig::from_properties(&wrong)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("ssl.key.password") && !error.contains("nope"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_hostname_mismatch_fails_fast_and_can_be_turned_off() {
    let broker = require_secure_broker!();
    let port = broker.ssl.rsplit_once(':').unwrap().1;
    let localhost = format!("localhost:{port}");
    let id = unique("sec-host");
    let props = with(&mtls(&broker, &id), &[("bootstrap.servers", &localhost)]);
    fails_fast(props.clone(), &["TLS", "does not cover", "localhost"]).await;
    // Without the host name check the chain alone is verified and the client works.
    let unchecked = with(&props, &[("ssl.endpoint.identification.algorithm", "")]);
    // The broker advertises 127.0.0.1, which its certificate covers.
    let client = Client::connect(client_config(&unchecked)).await.unwrap();
    client.list_topics().await.unwrap();
}

#[tokio::test]
async fn a_garbled_or_expired_oauth_token_fails_fast() {
    let broker = require_secure_broker!();
    let now = now_secs();
    for (what, token) in [
        ("garbled", "not.a-token".to_string()),
        ("expired", unsecured_token("admin", now - 7200, now - 3600)),
    ] {
        let id = unique("sec-token");
        let mut props = sasl_ssl(&broker, &id, "OAUTHBEARER", "");
        props.remove("sasl.jaas.config");
        props.insert("sasl.oauthbearer.token".into(), token.clone());
        let error = fails_fast(props, &["OAUTHBEARER"]).await;
        eprintln!("{what} token: {error}");
        assert!(!error.contains(&token), "the token leaked: {error}");
    }
}

#[tokio::test]
async fn a_plaintext_client_on_the_ssl_port_fails_fast() {
    let broker = require_secure_broker!();
    let id = unique("sec-plain-on-ssl");
    let props = with(
        &Props::new(),
        &[("bootstrap.servers", &broker.ssl), ("client.id", &id)],
    );
    fails_fast(props, &["SSL listener", "security.protocol"]).await;
}

#[tokio::test]
async fn an_ssl_client_on_the_plaintext_port_fails_fast() {
    let broker = require_secure_broker!();
    let id = unique("sec-ssl-on-plain");
    let props = with(
        &mtls(&broker, &id),
        &[("bootstrap.servers", &broker.plaintext)],
    );
    fails_fast(props, &["TLS", "PLAINTEXT listener"]).await;
}

/// The listener ends sessions after 15 s (`connections.max.reauth.ms`): a client
/// that keeps producing and fetching for 35 s re-authenticates on its connections
/// at least twice, without an error and without opening a new connection.
#[tokio::test]
async fn sessions_are_reauthenticated_on_the_same_connections() {
    let broker = require_secure_broker!();
    let id = unique("sec-reauth");
    let props = sasl_ssl(
        &broker,
        &id,
        "SCRAM-SHA-512",
        &scram_jaas("admin", "admin-secret"),
    );
    let client = Client::connect(client_config(&props)).await.unwrap();
    let topic = unique("sec-reauth");
    Admin::new(client.clone())
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .unwrap();
    let producer = Producer::with_client(
        client.clone(),
        ProducerConfig::from_properties(&with(&props, &[("linger.ms", "1")])).unwrap(),
    )
    .await
    .unwrap();
    let consumer_config = ConsumerConfig::from_properties(&with(
        &props,
        &[
            ("auto.offset.reset", "earliest"),
            ("fetch.max.wait.ms", "200"),
        ],
    ))
    .unwrap();
    let mut consumer = Consumer::new(consumer_config).await.unwrap();
    consumer.assign([(topic.clone(), 0)]);
    // Warm up: every connection the loop needs is open.
    producer
        .send(ProducerRecord::new(&topic, "warm-up"))
        .await
        .unwrap()
        .await
        .unwrap();
    let start = Instant::now();
    let mut read = 0usize;
    while read < 1 {
        assert!(start.elapsed() < DEADLINE, "warm-up record not read");
        read += consumer
            .poll_for(Duration::from_millis(200))
            .await
            .unwrap()
            .len();
    }
    let attempts_before = connection_attempts(&id, &broker.sasl_ssl);
    let start = Instant::now();
    let mut sent = 1usize;
    while start.elapsed() < Duration::from_secs(35) {
        producer
            .send(ProducerRecord::new(&topic, format!("r-{sent}")))
            .await
            .unwrap()
            .await
            .unwrap();
        sent += 1;
        read += consumer
            .poll_for(Duration::from_millis(100))
            .await
            .unwrap()
            .len();
    }
    let deadline = Instant::now() + DEADLINE;
    while read < sent {
        assert!(Instant::now() < deadline, "read {read} of {sent}");
        read += consumer
            .poll_for(Duration::from_millis(200))
            .await
            .unwrap()
            .len();
    }
    let attempts_after = connection_attempts(&id, &broker.sasl_ssl);
    eprintln!("{sent} records in 35 s; connection attempts {attempts_before} -> {attempts_after}");
    assert_eq!(
        attempts_before, attempts_after,
        "connections were reopened instead of re-authenticated"
    );
    consumer.close().await;
}
