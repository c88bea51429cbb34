//! ACLs through the admin client against the real broker: created, listed with
//! filters and deleted on the secured broker (its PLAINTEXT principal, ANONYMOUS,
//! is a super user), and SECURITY_DISABLED from a broker without an authorizer.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use integration_tests::{random_topic, require_broker, require_secure_broker};
use kafka_wire::ErrorCode;
use kafka_wire::client::admin::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, PatternType, PatternTypeFilter,
    ResourcePattern, ResourceType,
};
use kafka_wire::client::config::ClientConfig;
use kafka_wire::client::{Admin, Client};

async fn admin(bootstrap: &str) -> Admin {
    Admin::new(
        Client::connect(ClientConfig::new(bootstrap).unwrap())
            .await
            .unwrap(),
    )
}

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    operation: AclOperation,
    permission: AclPermission,
) -> AclBinding {
    AclBinding::new(
        ResourcePattern::new(resource_type, name, pattern_type),
        principal,
        operation,
        permission,
    )
}

/// The ACLs `filter` matches once they equal `want`, polled for at most 10 s:
/// the brokers' authorizers learn of changes through the metadata log.
async fn eventually_described(
    admin: &Admin,
    filter: &AclBindingFilter,
    want: &BTreeSet<AclBinding>,
) {
    let start = Instant::now();
    loop {
        let found: BTreeSet<AclBinding> = admin
            .describe_acls(filter)
            .await
            .unwrap()
            .into_iter()
            .collect();
        if &found == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{filter} matched {found:#?}, want {want:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn acls_created_literal_and_prefixed_are_listed_by_filter_and_deleted_exactly() {
    let broker = require_secure_broker!();
    let admin = admin(&broker.plaintext).await;
    // A principal of this test only, so other tests' ACLs never match.
    let principal = format!("User:{}", random_topic("acl-user"));
    let topic = random_topic("acl-orders");
    let prefix = &topic[..topic.len() - 4];
    let group = random_topic("acl-group");
    let txn = random_topic("acl-txn");

    let read_topic = acl(
        ResourceType::Topic,
        &topic,
        PatternType::Literal,
        &principal,
        AclOperation::Read,
        AclPermission::Allow,
    );
    let write_prefix = acl(
        ResourceType::Topic,
        prefix,
        PatternType::Prefixed,
        &principal,
        AclOperation::Write,
        AclPermission::Allow,
    );
    let deny_group = acl(
        ResourceType::Group,
        &group,
        PatternType::Literal,
        &principal,
        AclOperation::Read,
        AclPermission::Deny,
    );
    let write_txn = acl(
        ResourceType::TransactionalId,
        &txn,
        PatternType::Literal,
        &principal,
        AclOperation::Write,
        AclPermission::Allow,
    );
    let all = [
        read_topic.clone(),
        write_prefix.clone(),
        deny_group.clone(),
        write_txn.clone(),
    ];

    let results = admin.create_acls(&all).await.unwrap();
    assert_eq!(results.len(), 4);
    for (b, r) in all.iter().zip(&results) {
        assert!(r.is_ok(), "{b}: {r:?}");
    }

    let of_principal = AclBindingFilter {
        principal: Some(principal.clone()),
        ..AclBindingFilter::any()
    };
    eventually_described(&admin, &of_principal, &all.iter().cloned().collect()).await;

    // MATCH: every ACL that applies to the topic, the prefixed one included.
    let matching = AclBindingFilter {
        resource_type: Some(ResourceType::Topic),
        name: Some(topic.clone()),
        pattern_type: PatternTypeFilter::Match,
        principal: Some(principal.clone()),
        ..Default::default()
    };
    eventually_described(
        &admin,
        &matching,
        &[read_topic.clone(), write_prefix.clone()].into(),
    )
    .await;
    // LITERAL: the name exactly, as a literal pattern.
    let literal = AclBindingFilter {
        pattern_type: PatternTypeFilter::Literal,
        ..matching.clone()
    };
    eventually_described(&admin, &literal, &[read_topic.clone()].into()).await;
    let denials = AclBindingFilter {
        permission: Some(AclPermission::Deny),
        ..of_principal.clone()
    };
    eventually_described(&admin, &denials, &[deny_group.clone()].into()).await;

    // Deleting the principal's topic ACLs (any pattern type) returns exactly them.
    let topic_acls = AclBindingFilter {
        resource_type: Some(ResourceType::Topic),
        principal: Some(principal.clone()),
        ..AclBindingFilter::any()
    };
    let deleted = admin
        .delete_acls(std::slice::from_ref(&topic_acls))
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    let deleted: BTreeSet<AclBinding> = deleted
        .into_iter()
        .next()
        .unwrap()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(deleted, [read_topic, write_prefix].into());
    eventually_described(
        &admin,
        &of_principal,
        &[deny_group.clone(), write_txn.clone()].into(),
    )
    .await;

    // One filter per remaining ACL: each answer is that ACL.
    let exact = [
        AclBindingFilter::exactly(&deny_group),
        AclBindingFilter::exactly(&write_txn),
    ];
    let deleted = admin.delete_acls(&exact).await.unwrap();
    let deleted: Vec<Vec<AclBinding>> = deleted.into_iter().map(Result::unwrap).collect();
    assert_eq!(deleted, [vec![deny_group], vec![write_txn]]);
    eventually_described(&admin, &of_principal, &BTreeSet::new()).await;
}

/// Runs against whatever broker `KAFKA_BOOTSTRAP` names: the shared plain broker
/// (127.0.0.1:9092 on the development machine) has no authorizer, and then every
/// ACL call is refused with SECURITY_DISABLED; a broker with an authorizer (the
/// `--secure` one of `scripts/test`) is covered by the test above instead.
#[tokio::test]
async fn acl_calls_to_a_broker_without_an_authorizer_fail_with_security_disabled() {
    let bootstrap = require_broker!();
    let admin = admin(&bootstrap).await;
    let described = admin.describe_acls(&AclBindingFilter::any()).await;
    let Err(e) = described else {
        eprintln!(
            "SKIPPED: the broker at {bootstrap} has an authorizer; SECURITY_DISABLED is not reachable there"
        );
        return;
    };
    assert_eq!(e.code(), Some(ErrorCode::SecurityDisabled), "{e}");
    assert!(e.to_string().contains("describe ACLs"), "{e}");

    let binding = acl(
        ResourceType::Topic,
        "t",
        PatternType::Literal,
        "User:alice",
        AclOperation::Read,
        AclPermission::Allow,
    );
    let results = admin
        .create_acls(std::slice::from_ref(&binding))
        .await
        .unwrap();
    let e = results.into_iter().next().unwrap().unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::SecurityDisabled), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("create ACL (pattern=ResourcePattern(resourceType=TOPIC, name=t"),
        "{text}"
    );
    assert!(!e.is_retriable());

    let deleted = admin
        .delete_acls(&[AclBindingFilter::exactly(&binding)])
        .await
        .unwrap();
    let e = deleted.into_iter().next().unwrap().unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::SecurityDisabled), "{e}");
}
