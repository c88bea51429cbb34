//! `strom acls` as the built binary against the real broker: a create, list and
//! delete round trip on the secured broker (over PLAINTEXT, whose principal
//! ANONYMOUS is a super user), the one-line SECURITY_DISABLED error of a broker
//! without an authorizer, and a principal without rights (alice over SASL_SSL)
//! refused at once until `strom acls create` grants it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration_tests::{SecureBroker, random_topic, require_broker, require_secure_broker};
use kafka_wire::client::admin::NewTopic;
use kafka_wire::client::config::{ClientConfig, ConsumerConfig, ProducerConfig};
use kafka_wire::client::group::GroupConsumer;
use kafka_wire::client::transaction::TransactionalProducer;
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

/// Upper bound for one run of the binary.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Runs `strom --bootstrap BOOTSTRAP ARGS` with no KAFKA_BOOTSTRAP in its environment.
async fn strom(bootstrap: &str, args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .arg("--bootstrap")
        .arg(bootstrap)
        .args(args)
        .env_remove("KAFKA_BOOTSTRAP")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(RUN_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("strom {args:?} did not end within {RUN_LIMIT:?}"))
        .unwrap()
}

/// What `strom ARGS` printed; panics if it failed.
async fn ok(bootstrap: &str, args: &[&str]) -> String {
    let out = strom(bootstrap, args).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "strom {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `strom ARGS` until its output satisfies `check`, for at most 10 s: the
/// brokers' authorizers learn of ACL changes through the metadata log.
async fn eventually(bootstrap: &str, args: &[&str], check: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let out = ok(bootstrap, args).await;
        if check(&out) {
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "strom {args:?} printed {out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn acls_created_from_the_command_line_list_in_kafka_acls_layout_and_delete_with_force() {
    let broker = require_secure_broker!();
    let b = broker.plaintext.as_str();
    let user = format!("User:{}", random_topic("cli-acl-user"));
    let topic = random_topic("cli-acl-topic");
    let prefix = &topic[..topic.len() - 4];
    let group = random_topic("cli-acl-group");

    let created = ok(
        b,
        &[
            "acls",
            "create",
            "--allow-principal",
            &user,
            "--operation",
            "Read",
            "--operation",
            "Describe",
            "--topic",
            &topic,
        ],
    )
    .await;
    let literal = format!("ResourcePattern(resourceType=TOPIC, name={topic}, patternType=LITERAL)");
    assert!(
        created.starts_with(&format!("Adding ACLs for resource `{literal}`:\n")),
        "{created}"
    );
    ok(
        b,
        &[
            "acls",
            "create",
            "--allow-principal",
            &user,
            "--producer",
            "--topic",
            prefix,
            "--resource-pattern-type",
            "prefixed",
        ],
    )
    .await;
    ok(
        b,
        &[
            "acls",
            "create",
            "--deny-principal",
            &user,
            "--deny-host",
            "10.0.0.9",
            "--operation",
            "Read",
            "--group",
            &group,
        ],
    )
    .await;

    let listed = eventually(b, &["acls", "list", "--topic", &topic], |out| {
        out.contains("DESCRIBE")
    })
    .await;
    assert_eq!(
        listed,
        format!(
            "Current ACLs for resource `{literal}`:\n\
             \t(principal={user}, host=*, operation=READ, permissionType=ALLOW)\n\
             \t(principal={user}, host=*, operation=DESCRIBE, permissionType=ALLOW)\n\n"
        )
    );
    // match: the prefixed ACLs apply to the topic too.
    let matched = eventually(
        b,
        &[
            "acls",
            "list",
            "--topic",
            &topic,
            "--resource-pattern-type",
            "match",
            "--principal",
            &user,
        ],
        |out| out.contains("PREFIXED"),
    )
    .await;
    assert!(
        matched.starts_with(&format!("ACLs for principal `{user}`\n")),
        "{matched}"
    );
    assert!(matched.contains(&format!(
        "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name={prefix}, patternType=PREFIXED)`:\n\
         \t(principal={user}, host=*, operation=WRITE, permissionType=ALLOW)\n\
         \t(principal={user}, host=*, operation=CREATE, permissionType=ALLOW)\n\
         \t(principal={user}, host=*, operation=DESCRIBE, permissionType=ALLOW)\n\n"
    )), "{matched}");
    let json = eventually(
        b,
        &["acls", "list", "--principal", &user, "--json"],
        |out| out.lines().count() == 6,
    )
    .await;
    let deny: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["permission"] == "DENY")
        .collect();
    assert_eq!(deny.len(), 1, "{json}");
    assert_eq!(deny[0]["resource_type"], "GROUP");
    assert_eq!(deny[0]["host"], "10.0.0.9");
    assert_eq!(deny[0]["name"], group.as_str());

    // Without --force: the plan, and nothing deleted.
    let plan = ok(
        b,
        &[
            "acls",
            "delete",
            "--topic",
            prefix,
            "--resource-pattern-type",
            "prefixed",
        ],
    )
    .await;
    assert!(plan.contains("Would delete ACLs for resource"), "{plan}");
    assert!(
        plan.ends_with("3 ACL(s) match; nothing deleted: pass --force to delete them\n"),
        "{plan}"
    );
    let still = ok(b, &["acls", "list", "--principal", &user, "--json"]).await;
    assert_eq!(still.lines().count(), 6, "{still}");

    // With --force, the deleted ACLs exactly; the principal filter keeps others'.
    let deleted = ok(
        b,
        &[
            "acls",
            "delete",
            "--force",
            "--topic",
            &topic,
            "--topic",
            prefix,
            "--group",
            &group,
            "--resource-pattern-type",
            "any",
        ],
    )
    .await;
    assert!(deleted.ends_with("deleted 6 ACL(s)\n"), "{deleted}");
    assert!(
        deleted.contains(&format!("Deleted ACLs for resource `{literal}`:\n")),
        "{deleted}"
    );
    eventually(b, &["acls", "list", "--principal", &user], |out| {
        out.lines().count() == 1
    })
    .await;
}

/// Runs against whatever broker `KAFKA_BOOTSTRAP` names; the shared plain broker
/// (127.0.0.1:9092 on the development machine) has no authorizer.
#[tokio::test]
async fn acls_on_a_broker_without_an_authorizer_fail_on_one_line_naming_security_disabled() {
    let bootstrap = require_broker!();
    let list = strom(&bootstrap, &["acls", "list"]).await;
    if list.status.success() {
        eprintln!("SKIPPED: the broker at {bootstrap} has an authorizer");
        return;
    }
    let out = strom(
        &bootstrap,
        &[
            "acls",
            "create",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "t",
        ],
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: 1 of 1 ACLs not created: create ACL "),
        "{stderr}"
    );
    assert!(lines[0].contains("SECURITY_DISABLED"), "{stderr}");
    assert!(
        lines[0].contains("(hint: the broker has no authorizer"),
        "{stderr}"
    );
}

/// alice's client properties over SASL_SSL with SCRAM-SHA-512.
fn alice(broker: &SecureBroker) -> BTreeMap<String, String> {
    [
        ("bootstrap.servers", broker.sasl_ssl.clone()),
        ("security.protocol", "SASL_SSL".into()),
        ("sasl.mechanism", "SCRAM-SHA-512".into()),
        (
            "sasl.jaas.config",
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"alice-secret\";".into(),
        ),
        ("ssl.truststore.location", broker.cert("ca.pem")),
        ("ssl.truststore.type", "PEM".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn with(mut props: BTreeMap<String, String>, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    props
}

/// The error of `attempt`, which must fail with Error::Authorization within 5 s
/// (a refusal is not retried); returns (resource type, resource name, operation).
async fn refused<T: std::fmt::Debug>(
    what: &str,
    attempt: impl std::future::Future<Output = kafka_wire::Result<T>>,
) -> (&'static str, String, &'static str) {
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .unwrap_or_else(|_| panic!("{what}: not refused within 5 s (retried?)"));
    match result {
        Err(kafka_wire::Error::Authorization {
            resource_type,
            resource_name,
            operation,
            ..
        }) => {
            eprintln!(
                "{what}: refused in {:?}: {operation} {resource_type} {resource_name}",
                start.elapsed()
            );
            (resource_type, resource_name, operation)
        }
        other => panic!("{what}: expected Error::Authorization, got {other:?}"),
    }
}

#[tokio::test]
async fn a_principal_without_acls_is_refused_at_once_and_served_after_strom_acls_create() {
    let broker = require_secure_broker!();
    let topic = random_topic("alice-topic");
    let group = random_topic("alice-group");
    let txn = random_topic("alice-txn");
    let admin = Admin::new(
        Client::connect(ClientConfig::new(&broker.plaintext).unwrap())
            .await
            .unwrap(),
    );
    admin
        .create_topics(&[NewTopic::new(&topic, 1)])
        .await
        .unwrap();
    let props = alice(&broker);

    // Produce: the topic's metadata is refused (describe), or the write.
    let plain = with(
        props.clone(),
        &[("enable.idempotence", "false"), ("acks", "all")],
    );
    let producer = Producer::new(ProducerConfig::from_properties(&plain).unwrap())
        .await
        .unwrap();
    let send = async {
        producer
            .send(ProducerRecord::new(topic.clone(), "v"))
            .await?
            .await
    };
    let (kind, name, _) = refused("produce", send).await;
    assert_eq!((kind, name.as_str()), ("topic", topic.as_str()));
    // An idempotent producer needs Write on some topic (KIP-679) or IdempotentWrite.
    let idempotent = ProducerConfig::from_properties(&props).unwrap();
    let (kind, _, op) = refused("idempotent producer", Producer::new(idempotent)).await;
    assert_eq!((kind, op), ("cluster", "idempotent write"));

    // Consume in a group: the group (FindCoordinator) or the topic is refused.
    let consumer_props = with(
        props.clone(),
        &[("group.id", &group), ("auto.offset.reset", "earliest")],
    );
    let mut consumer =
        GroupConsumer::new(ConsumerConfig::from_properties(&consumer_props).unwrap())
            .await
            .unwrap();
    consumer.subscribe([topic.clone()]);
    let (kind, name, _) = refused("group consume", consumer.poll_for(Duration::from_secs(3))).await;
    assert!(
        (kind, name.as_str()) == ("group", group.as_str())
            || (kind, name.as_str()) == ("topic", topic.as_str()),
        "{kind} {name}"
    );
    drop(consumer);

    // A transactional producer: the transactional id is refused.
    let txn_props = with(props.clone(), &[("transactional.id", &txn)]);
    let (kind, name, _) = refused(
        "transactional producer",
        TransactionalProducer::new(ProducerConfig::from_properties(&txn_props).unwrap()),
    )
    .await;
    assert_eq!((kind, name.as_str()), ("transactional id", txn.as_str()));

    // Grant with the binary, over PLAINTEXT as ANONYMOUS (a super user).
    ok(
        &broker.plaintext,
        &[
            "acls",
            "create",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--consumer",
            "--topic",
            &topic,
            "--group",
            &group,
            "--transactional-id",
            &txn,
        ],
    )
    .await;

    // The same calls now succeed (the grant reaches the authorizer through the
    // metadata log: a few tries, bounded).
    let deadline = Instant::now() + Duration::from_secs(15);
    let producer = loop {
        match Producer::new(ProducerConfig::from_properties(&props).unwrap()).await {
            Ok(p) => break p,
            Err(e) if e.is_authorization() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await
            }
            Err(e) => panic!("idempotent producer after the grant: {e}"),
        }
    };
    producer
        .send(ProducerRecord::new(topic.clone(), "granted"))
        .await
        .unwrap()
        .await
        .unwrap();

    let mut consumer =
        GroupConsumer::new(ConsumerConfig::from_properties(&consumer_props).unwrap())
            .await
            .unwrap();
    consumer.subscribe([topic.clone()]);
    let mut got = Vec::new();
    while got.is_empty() {
        assert!(
            Instant::now() < deadline + Duration::from_secs(15),
            "nothing consumed after the grant"
        );
        got = consumer.poll_for(Duration::from_secs(1)).await.unwrap();
    }
    assert_eq!(got[0].value.as_deref(), Some(&b"granted"[..]));
    consumer.commit().await.unwrap();

    let mut txp = TransactionalProducer::new(ProducerConfig::from_properties(&txn_props).unwrap())
        .await
        .unwrap();
    txp.begin().await.unwrap();
    txp.send(ProducerRecord::new(topic.clone(), "in a transaction"))
        .await
        .unwrap();
    txp.commit().await.unwrap();
}
