use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

use super::scram::Hash;
use super::scram::test_server::Server;
use super::*;

fn reason(e: Error) -> String {
    match e {
        Error::Authentication {
            broker,
            mechanism: _,
            reason,
        } => {
            assert!(broker.is_empty());
            reason
        }
        other => panic!("expected an authentication error, got {other:?}"),
    }
}

fn text(bytes: Option<Vec<u8>>) -> String {
    String::from_utf8(bytes.expect("a message")).unwrap()
}

#[test]
fn mechanism_names_parse_in_any_case_and_the_error_names_all_four() {
    for m in SaslMechanism::ALL {
        assert_eq!(m.name().to_lowercase().parse::<SaslMechanism>().unwrap(), m);
        assert_eq!(format!(" {m} ").parse::<SaslMechanism>().unwrap(), m);
    }
    let err = "DIGEST-MD5"
        .parse::<SaslMechanism>()
        .unwrap_err()
        .to_string();
    for name in [
        "PLAIN",
        "SCRAM-SHA-256",
        "SCRAM-SHA-512",
        "OAUTHBEARER",
        "DIGEST-MD5",
    ] {
        assert!(err.contains(name), "{err}");
    }
    let err = "gssapi".parse::<SaslMechanism>().unwrap_err().to_string();
    assert!(err.contains("GSSAPI (Kerberos) is not supported"), "{err}");
}

#[tokio::test]
async fn plain_sends_empty_authzid_user_and_password_then_finishes() {
    let mut session = SaslConfig::plain("alice", "alice-secret")
        .session()
        .await
        .unwrap();
    assert_eq!(session.mechanism_name(), "PLAIN");
    assert_eq!(
        session.step(None).unwrap().unwrap(),
        b"\0alice\0alice-secret".to_vec()
    );
    assert_eq!(session.step(Some(b"")).unwrap(), None);
    assert!(reason(session.step(Some(b"")).unwrap_err()).contains("already finished"));
}

#[tokio::test]
async fn plain_refuses_a_nul_without_naming_the_password() {
    let err = SaslConfig::plain("alice", "se\0cret")
        .session()
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("NUL"), "{message}");
    assert!(!message.contains("se\0cret"));
}

/// RFC 7677 section 3: user "user", password "pencil".
#[test]
fn scram_sha_256_matches_the_rfc_7677_test_vector() {
    let config = SaslConfig::scram(SaslMechanism::ScramSha256, "user", "pencil").unwrap();
    let mut session = config.scram_session_with_nonce("rOprNGfwEbeRWgbNEkqO");
    assert_eq!(session.mechanism_name(), "SCRAM-SHA-256");
    assert_eq!(
        text(session.step(None).unwrap()),
        "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    );
    let server_first =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    assert_eq!(
        text(session.step(Some(server_first)).unwrap()),
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    let server_final = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
    assert_eq!(session.step(Some(server_final)).unwrap(), None);
    assert!(reason(session.step(Some(server_final)).unwrap_err()).contains("already finished"));
}

#[tokio::test]
async fn scram_sha_512_round_trips_against_a_server_computation() {
    let config = SaslConfig::scram(SaslMechanism::ScramSha512, "admin", "admin-secret").unwrap();
    let server = Server::new(Hash::Sha512, "admin-secret", b"some salt bytes", 4096);
    let mut session = config.session().await.unwrap();
    let client_first = text(session.step(None).unwrap());
    assert!(client_first.starts_with("n,,n=admin,r="), "{client_first}");
    let server_first = server.first(&client_first, "server-part");
    let client_final = text(session.step(Some(server_first.as_bytes())).unwrap());
    let server_final = server
        .last(&client_first, &server_first, &client_final)
        .expect("the server accepts the proof");
    assert_eq!(session.step(Some(server_final.as_bytes())).unwrap(), None);
}

#[tokio::test]
async fn scram_with_the_wrong_password_is_refused_by_the_server_computation() {
    let config = SaslConfig::scram(SaslMechanism::ScramSha256, "admin", "wrong").unwrap();
    let server = Server::new(Hash::Sha256, "admin-secret", b"salt", 4096);
    let mut session = config.session().await.unwrap();
    let client_first = text(session.step(None).unwrap());
    let server_first = server.first(&client_first, "s");
    let client_final = text(session.step(Some(server_first.as_bytes())).unwrap());
    assert!(
        server
            .last(&client_first, &server_first, &client_final)
            .is_none()
    );
}

#[tokio::test]
async fn scram_nonces_are_fresh_for_each_session() {
    let config = SaslConfig::scram(SaslMechanism::ScramSha256, "u", "p").unwrap();
    let a = text(config.session().await.unwrap().step(None).unwrap());
    let b = text(config.session().await.unwrap().step(None).unwrap());
    assert_ne!(a, b);
    assert!(a.len() >= "n,,n=u,r=".len() + 32, "{a}");
}

#[test]
fn scram_escapes_equals_and_comma_in_the_user_name_and_marks_delegation_tokens() {
    let config = SaslConfig::scram(SaslMechanism::ScramSha256, "a=b,c", "p").unwrap();
    let mut session = config.scram_session_with_nonce("N");
    assert_eq!(text(session.step(None).unwrap()), "n,,n=a=3Db=2Cc,r=N");
    let config =
        SaslConfig::scram_delegation_token(SaslMechanism::ScramSha512, "tokenid", "hmac").unwrap();
    let mut session = config.scram_session_with_nonce("N");
    assert_eq!(
        text(session.step(None).unwrap()),
        "n,,n=tokenid,r=N,tokenauth=true"
    );
}

#[test]
fn scram_ignores_extensions_the_server_adds() {
    let config = SaslConfig::scram(SaslMechanism::ScramSha256, "user", "pencil").unwrap();
    let mut session = config.scram_session_with_nonce("rOprNGfwEbeRWgbNEkqO");
    session.step(None).unwrap();
    let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,tokenauth=true";
    let client_final = text(session.step(Some(server_first)).unwrap());
    assert!(client_final.starts_with("c=biws,r="), "{client_final}");
}

#[test]
fn the_session_future_can_move_to_another_task() {
    fn assert_send<T: Send>(_: &T) {}
    let config = SaslConfig::oauthbearer(Arc::new(UnsecuredJwsToken::new("admin")));
    let future = config.session();
    assert_send(&future);
    assert_send(&SaslConfig::plain("u", "p"));
}

#[test]
fn scram_only_accepts_scram_mechanisms() {
    let err = SaslConfig::scram(SaslMechanism::Plain, "u", "p").unwrap_err();
    assert!(err.to_string().contains("not SCRAM"), "{err}");
}

/// A session that has sent client-first with nonce `N`.
fn scram_after_client_first() -> SaslSession {
    let config = SaslConfig::scram(SaslMechanism::ScramSha256, "user", "pencil").unwrap();
    let mut session = config.scram_session_with_nonce("N");
    session.step(None).unwrap();
    session
}

#[test]
fn malformed_server_first_messages_each_give_a_clear_error() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "malformed: attribute 1"),
        (b"s=c2FsdA==,i=4096", "no nonce (r=)"),
        (b"r=NS,i=4096", "no salt (s=)"),
        (b"r=NS,s=c2FsdA==", "no iteration count (i=)"),
        (
            b"r=XS,s=c2FsdA==,i=4096",
            "does not extend the client nonce",
        ),
        (b"r=N,s=c2FsdA==,i=4096", "does not extend the client nonce"),
        (b"r=NS,s=%%%,i=4096", "salt (s=) is not valid base64"),
        (b"r=NS,s=,i=4096", "salt (s=) is empty"),
        (b"r=NS,s=c2FsdA==,i=4095", "below Kafka's minimum of 4096"),
        (b"r=NS,s=c2FsdA==,i=1000001", "above the limit of 1000000"),
        (b"r=NS,s=c2FsdA==,i=99999999999", "not a number"),
        (b"r=NS,s=c2FsdA==,i=-1", "not a number"),
        (b"r=NS,s=c2FsdA==,i=+4096", "not a number"),
        (
            b"m=ext,r=NS,s=c2FsdA==,i=4096",
            "requires an extension (m=)",
        ),
        (
            b"e=unknown-user",
            "refused the client-first message: unknown-user",
        ),
        (b"r=NS,,i=4096", "attribute 2"),
        (b"r=NS,s=c2FsdA==,i=4096,=x", "attribute 4"),
        (b"\xff\xfe", "not UTF-8"),
    ];
    for (message, expected) in cases {
        let mut session = scram_after_client_first();
        let err = reason(session.step(Some(message)).unwrap_err());
        assert!(
            err.contains(expected),
            "{:?}: {err}",
            String::from_utf8_lossy(message)
        );
        // An error ends the exchange.
        assert!(reason(session.step(Some(b"v=")).unwrap_err()).contains("already failed"));
    }
    let err = reason(scram_after_client_first().step(None).unwrap_err());
    assert!(err.contains("no server-first message"), "{err}");
}

#[test]
fn server_final_must_carry_the_right_signature_or_surfaces_the_error() {
    let cases: &[(&[u8], &str)] = &[
        (
            b"e=invalid-proof",
            "refused the client proof: invalid-proof",
        ),
        (b"v=!!!", "not valid base64"),
        (b"v=AAAA", "signature does not match"),
        (
            b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
            "signature does not match",
        ),
        (b"x=1", "neither v= nor e="),
    ];
    for (message, expected) in cases {
        let config = SaslConfig::scram(SaslMechanism::ScramSha256, "user", "pencil").unwrap();
        let mut session = config.scram_session_with_nonce("rOprNGfwEbeRWgbNEkqO");
        session.step(None).unwrap();
        session
            .step(Some(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            ))
            .unwrap();
        let err = reason(session.step(Some(message)).unwrap_err());
        assert!(
            err.contains(expected),
            "{:?}: {err}",
            String::from_utf8_lossy(message)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_server_bytes_never_panic(
        first in proptest::collection::vec(any::<u8>(), 0..64),
        last in proptest::collection::vec(any::<u8>(), 0..64),
        server_nonce in "[a-z]{1,8}",
        iterations in 0u32..5000,
    ) {
        for mechanism in SaslMechanism::ALL {
            let config = match mechanism {
                SaslMechanism::Plain => SaslConfig::plain("u", "p"),
                SaslMechanism::OAuthBearer => SaslConfig::oauthbearer(Arc::new(StaticToken::new("t"))),
                m => SaslConfig::scram(m, "u", "p").unwrap(),
            };
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut session = runtime.block_on(config.session()).unwrap();
            let _ = session.step(Some(&first));
            let _ = session.step(Some(&last));
            let _ = session.step(None);
        }
        // A well-formed server-first with a random iteration count, then random bytes.
        let mut session = scram_after_client_first();
        let server_first = format!("r=N{server_nonce},s=c2FsdA==,i={iterations}");
        let result = session.step(Some(server_first.as_bytes()));
        prop_assert_eq!(result.is_ok(), iterations >= 4096);
        let _ = session.step(Some(&last));
    }
}

#[tokio::test]
async fn oauthbearer_sends_the_token_and_extensions_then_finishes_on_an_empty_answer() {
    let token = StaticToken::new("abc.def.")
        .with_extension("traceId", "123")
        .with_extension("logicalCluster", "lkc-1");
    let mut session = SaslConfig::oauthbearer(Arc::new(token))
        .session()
        .await
        .unwrap();
    assert_eq!(session.mechanism_name(), "OAUTHBEARER");
    assert_eq!(
        text(session.step(None).unwrap()),
        "n,,\u{1}auth=Bearer abc.def.\u{1}logicalCluster=lkc-1\u{1}traceId=123\u{1}\u{1}"
    );
    assert_eq!(session.step(Some(b"")).unwrap(), None);
}

#[tokio::test]
async fn oauthbearer_answers_a_server_error_with_the_dummy_then_fails_with_its_status() {
    let mut session = SaslConfig::oauthbearer(Arc::new(StaticToken::new("abc")))
        .session()
        .await
        .unwrap();
    session.step(None).unwrap();
    let challenge = br#"{"status":"invalid_token","scope":"kafka"}"#;
    assert_eq!(session.step(Some(challenge)).unwrap(), Some(vec![1]));
    let expected = "the broker refused the token: status invalid_token, scope kafka";
    assert_eq!(session.server_error(), Some(expected));
    assert_eq!(reason(session.step(Some(b"")).unwrap_err()), expected);

    let mut session = SaslConfig::oauthbearer(Arc::new(StaticToken::new("abc")))
        .session()
        .await
        .unwrap();
    session.step(None).unwrap();
    assert_eq!(session.step(Some(b"not json\x01")).unwrap(), Some(vec![1]));
    assert_eq!(
        reason(session.step(None).unwrap_err()),
        "the broker refused the token: not json\\u{1}"
    );
}

#[tokio::test]
async fn a_garbled_token_or_extension_fails_before_anything_is_sent() {
    for token in ["", "has space", "ctl\u{1}char", "="] {
        let err = SaslConfig::oauthbearer(Arc::new(StaticToken::new(token)))
            .session()
            .await
            .unwrap_err();
        assert!(reason(err).contains("RFC 6750"), "{token:?}");
    }
    let token = StaticToken::new("abc").with_extension("auth", "x");
    let err = SaslConfig::oauthbearer(Arc::new(token))
        .session()
        .await
        .unwrap_err();
    assert!(reason(err).contains("not \"auth\""));
}

fn decode_part(part: &str) -> serde_json::Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn unsecured_jws_tokens_have_kafkas_shape() {
    let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
    let token = UnsecuredJwsToken::new("admin")
        .with_lifetime(Duration::from_secs(60))
        .with_scope(["read", "write"])
        .with_extension("traceId", "7")
        .token_at(now);
    let parts: Vec<&str> = token.value().split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2], "", "no signature");
    assert!(!token.value().contains('='), "no padding");
    assert_eq!(decode_part(parts[0]), serde_json::json!({"alg": "none"}));
    assert_eq!(
        decode_part(parts[1]),
        serde_json::json!({"sub": "admin", "iat": 1_700_000_000.25, "exp": 1_700_000_060.25,
                           "scope": ["read", "write"]})
    );
    assert_eq!(token.principal, "admin");
    assert_eq!(token.expires_at, Some(now + Duration::from_secs(60)));
    assert_eq!(
        token.extensions.get("traceId").map(String::as_str),
        Some("7")
    );
}

fn jwt(claims: serde_json::Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[tokio::test]
async fn a_static_jwt_gives_principal_and_expiry_and_an_expired_one_fails_fast() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = StaticToken::new(jwt(serde_json::json!({"sub": "alice", "exp": now + 600})))
        .token()
        .await
        .unwrap();
    assert_eq!(token.principal, "alice");
    assert_eq!(
        token.expires_at,
        Some(UNIX_EPOCH + Duration::from_secs(now + 600))
    );
    let err = StaticToken::new(jwt(serde_json::json!({"sub": "alice", "exp": now - 100})))
        .token()
        .await
        .unwrap_err();
    assert!(reason(err).contains("expired"));
    let opaque = StaticToken::new("opaque-token").token().await.unwrap();
    assert_eq!((opaque.principal.as_str(), opaque.expires_at), ("", None));
}

fn props<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |key| {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    }
}

fn from(pairs: &[(&str, &str)]) -> Result<Option<SaslConfig>> {
    SaslConfig::from_properties(&props(pairs))
}

fn config_message(result: Result<Option<SaslConfig>>) -> (String, String) {
    match result {
        Err(Error::Config { key, message }) => (key, message),
        other => panic!("expected a config error, got {other:?}"),
    }
}

const PLAIN_JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret";"#;
const SCRAM_JAAS: &str = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="admin-secret";"#;

#[test]
fn without_a_sasl_protocol_there_is_no_sasl_config() {
    assert!(from(&[]).unwrap().is_none());
    assert!(
        from(&[
            ("sasl.mechanism", "PLAIN"),
            ("sasl.jaas.config", PLAIN_JAAS)
        ])
        .unwrap()
        .is_none()
    );
    assert!(
        from(&[("security.protocol", "SSL"), ("sasl.mechanism", "PLAIN")])
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_sasl_protocol_needs_one_of_the_four_mechanisms() {
    let (key, message) = config_message(from(&[("security.protocol", "sasl_ssl")]));
    assert_eq!(key, "sasl.mechanism");
    for name in [
        "PLAIN",
        "SCRAM-SHA-256",
        "SCRAM-SHA-512",
        "OAUTHBEARER",
        "GSSAPI",
    ] {
        assert!(message.contains(name), "{message}");
    }
    let (_, message) = config_message(from(&[
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "GSSAPI"),
    ]));
    assert!(message.contains("not supported"), "{message}");
}

#[tokio::test]
async fn plain_and_scram_read_the_jaas_config() {
    let plain = from(&[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.jaas.config", PLAIN_JAAS),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(plain.mechanism(), SaslMechanism::Plain);
    let mut session = plain.session().await.unwrap();
    assert_eq!(
        session.step(None).unwrap().unwrap(),
        b"\0alice\0alice-secret".to_vec()
    );
    for name in ["SCRAM-SHA-256", "scram-sha-512"] {
        let scram = from(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", name),
            ("sasl.jaas.config", SCRAM_JAAS),
        ])
        .unwrap()
        .unwrap();
        assert!(scram.mechanism().is_scram());
        let first = text(scram.session().await.unwrap().step(None).unwrap());
        assert!(first.starts_with("n,,n=admin,r="), "{first}");
    }
    let token = from(&[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        (
            "sasl.jaas.config",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="id" password="hmac" tokenauth="true";"#,
        ),
    ])
    .unwrap()
    .unwrap();
    let first = text(token.session().await.unwrap().step(None).unwrap());
    assert!(first.ends_with(",tokenauth=true"), "{first}");
}

#[test]
fn jaas_mistakes_are_named_without_the_password() {
    let cases = [
        ("PLAIN", "", "required for PLAIN"),
        (
            "PLAIN",
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice";"#,
            "PlainLoginModule needs a password option",
        ),
        (
            "SCRAM-SHA-256",
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required password="alice-secret";"#,
            "ScramLoginModule needs a username option",
        ),
        (
            "SCRAM-SHA-256",
            PLAIN_JAAS,
            "SCRAM-SHA-256 needs the login module org.apache.kafka.common.security.scram.ScramLoginModule, not org.apache.kafka.common.security.plain.PlainLoginModule",
        ),
        (
            "PLAIN",
            r#"com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;"#,
            "Kerberos",
        ),
        (
            "PLAIN",
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret"#,
            "unterminated quoted string starting at character 92",
        ),
        (
            "PLAIN",
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="alice-secret"; again"#,
            "second login module",
        ),
    ];
    for (mechanism, jaas, expected) in cases {
        let (key, message) = config_message(from(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", mechanism),
            ("sasl.jaas.config", jaas),
        ]));
        assert_eq!(key, "sasl.jaas.config");
        assert!(message.contains(expected), "{jaas}: {message}");
        assert!(!message.contains("alice-secret"), "{message}");
    }
}

#[tokio::test]
async fn oauthbearer_builds_unsecured_tokens_from_the_jaas_options() {
    let config = from(&[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "OAUTHBEARER"),
        (
            "sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredLoginStringClaim_sub=\"admin\" unsecuredLoginLifetimeSeconds=\"30\" \
             unsecuredLoginListClaim_scope=\",read,,write\" unsecuredLoginNumberClaim_n=\"2.5\" \
             unsecuredLoginExtension_traceId=\"abc\";",
        ),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(config.mechanism(), SaslMechanism::OAuthBearer);
    let first = text(config.session().await.unwrap().step(None).unwrap());
    let token = first
        .strip_prefix("n,,\u{1}auth=Bearer ")
        .and_then(|rest| rest.strip_suffix("\u{1}traceId=abc\u{1}\u{1}"))
        .unwrap_or_else(|| panic!("{first:?}"));
    let claims = decode_part(token.split('.').nth(1).unwrap());
    assert_eq!(claims["sub"], "admin");
    assert_eq!(claims["scope"], serde_json::json!(["read", "write"]));
    assert_eq!(claims["n"], 2.5);
    let lifetime = claims["exp"].as_f64().unwrap() - claims["iat"].as_f64().unwrap();
    assert!((lifetime - 30.0).abs() < 0.01, "{lifetime}");
}

#[tokio::test]
async fn oauthbearer_takes_a_static_token_property_with_or_without_jaas() {
    let bare = from(&[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "OAUTHBEARER"),
        ("sasl.oauthbearer.token", "tok.en"),
    ])
    .unwrap()
    .unwrap();
    let first = text(bare.session().await.unwrap().step(None).unwrap());
    assert_eq!(first, "n,,\u{1}auth=Bearer tok.en\u{1}\u{1}");
    let with_jaas = from(&[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "OAUTHBEARER"),
        ("sasl.oauthbearer.token", "tok.en"),
        (
            "sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required extension_x=\"1\";",
        ),
    ])
    .unwrap()
    .unwrap();
    let first = text(with_jaas.session().await.unwrap().step(None).unwrap());
    assert_eq!(first, "n,,\u{1}auth=Bearer tok.en\u{1}x=1\u{1}\u{1}");
}

#[test]
fn oauthbearer_config_mistakes_are_named() {
    const MODULE: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
    // (extra properties, the key named, the message)
    type Case = (Vec<(&'static str, String)>, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (vec![], "sasl.jaas.config", "OAUTHBEARER needs a token"),
        (
            vec![("sasl.jaas.config", format!("{MODULE} required;"))],
            "sasl.jaas.config",
            "OAUTHBEARER needs a token",
        ),
        (
            vec![(
                "sasl.jaas.config",
                format!("{MODULE} required unsecuredLoginStringClaim_scope=\"x\";"),
            )],
            "sasl.jaas.config",
            "needs unsecuredLoginStringClaim_sub",
        ),
        (
            vec![(
                "sasl.jaas.config",
                format!(
                    "{MODULE} required unsecuredLoginStringClaim_sub=\"a\" unsecuredLoginNumberClaim_exp=\"1\";"
                ),
            )],
            "sasl.jaas.config",
            "the exp claim is set from the clock",
        ),
        (
            vec![(
                "sasl.jaas.config",
                format!(
                    "{MODULE} required unsecuredLoginStringClaim_sub=\"a\" unsecuredLoginLifetimeSeconds=\"soon\";"
                ),
            )],
            "sasl.jaas.config",
            "not a whole number of seconds",
        ),
        (
            vec![(
                "sasl.jaas.config",
                format!(
                    "{MODULE} required unsecuredLoginStringClaim_sub=\"a\" unsecuredLoginExtension_auth=\"x\";"
                ),
            )],
            "sasl.jaas.config",
            "extension name \"auth\" is invalid",
        ),
        (
            vec![
                ("sasl.oauthbearer.token", "t".into()),
                (
                    "sasl.jaas.config",
                    format!("{MODULE} required unsecuredLoginStringClaim_sub=\"a\";"),
                ),
            ],
            "sasl.oauthbearer.token",
            "keep one",
        ),
        (
            vec![(
                "sasl.oauthbearer.token.endpoint.url",
                "https://idp/token".into(),
            )],
            "sasl.oauthbearer.token.endpoint.url",
            "client-credentials flow are not supported",
        ),
        (
            vec![("sasl.jaas.config", PLAIN_JAAS.into())],
            "sasl.jaas.config",
            "needs the login module org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
        ),
    ];
    for (extra, expected_key, expected) in cases {
        let mut pairs = vec![
            ("security.protocol", "SASL_SSL".to_string()),
            ("sasl.mechanism", "OAUTHBEARER".to_string()),
        ];
        pairs.extend(extra);
        let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (key, message) = config_message(from(&borrowed));
        assert_eq!(key, expected_key, "{message}");
        assert!(message.contains(expected), "{message}");
    }
}

#[tokio::test]
async fn secrets_never_appear_in_debug_display_or_errors() {
    let secrets = ["alice-secret", "admin-secret", "tok.en.secret"];
    let mut shown = Vec::new();
    let plain = SaslConfig::plain("alice", "alice-secret");
    let scram = SaslConfig::scram(SaslMechanism::ScramSha512, "admin", "admin-secret").unwrap();
    let oauth = SaslConfig::oauthbearer(Arc::new(
        StaticToken::new("tok.en.secret").with_extension("x", "1"),
    ));
    let unsecured = UnsecuredJwsToken::new("admin");
    for config in [&plain, &scram, &oauth] {
        shown.push(format!("{config:?}"));
        let mut session = config.session().await.unwrap();
        shown.push(format!("{session:?}"));
        session.step(None).unwrap();
        shown.push(format!("{session:?}"));
        if let Err(e) = session.step(Some(b"r=x,s=%,i=1")) {
            shown.push(format!("{e} {e:?}"));
        }
        shown.push(format!("{session:?}"));
    }
    let token = StaticToken::new("tok.en.secret").token().await.unwrap();
    shown.push(format!(
        "{token:?} {unsecured:?} {:?}",
        unsecured.token_at(SystemTime::now())
    ));
    shown.push(format!("{:?}", StaticToken::new("tok.en.secret")));
    let unsecured_value = unsecured.token_at(SystemTime::now()).value().to_string();
    for result in [
        from(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "PLAIN"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required password=\"alice-secret\";",
            ),
        ]),
        from(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "PLAIN"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"alice-secret",
            ),
        ]),
        from(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.token", "tok.en.secret"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"a\";",
            ),
        ]),
    ] {
        let e = result.unwrap_err();
        shown.push(format!("{e} {e:?}"));
    }
    let all = shown.join("\n");
    assert!(all.contains("<redacted>"), "{all}");
    for secret in secrets.iter().copied().chain([unsecured_value.as_str()]) {
        assert!(!all.contains(secret), "{secret} shown in:\n{all}");
    }
}

#[test]
fn with_broker_fills_in_only_an_empty_broker() {
    let e = with_broker(
        authentication_error(SaslMechanism::Plain, "refused".into()),
        "127.0.0.1:9093",
    );
    assert_eq!(
        e.to_string(),
        "SASL PLAIN authentication with 127.0.0.1:9093 failed: refused"
    );
    let again = with_broker(e, "other:1");
    assert!(again.to_string().contains("127.0.0.1:9093"));
    let other = with_broker(Error::UnknownApiKey(99), "x:1");
    assert!(matches!(other, Error::UnknownApiKey(99)));
}

#[test]
fn extension_checks_follow_kafka() {
    let ok: BTreeMap<&str, &str> = [("traceId", "a b\tc"), ("x", "!~")].into();
    for (k, v) in ok {
        assert!(oauthbearer::check_extension(k, v).is_ok(), "{k}");
    }
    for (k, v) in [
        ("", "v"),
        ("a1", "v"),
        ("auth", "v"),
        ("a", ""),
        ("a", "\u{1}"),
        ("a", "é"),
    ] {
        assert!(oauthbearer::check_extension(k, v).is_err(), "{k:?} {v:?}");
    }
}
