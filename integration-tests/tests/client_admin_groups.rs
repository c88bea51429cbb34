//! Consumer-group administration against the real broker, for a classic group
//! and a KIP-848 consumer group: listed and described while a member is alive,
//! committed offsets and lag, what the broker refuses while the group is active,
//! then offsets altered and deleted and the group deleted once it is empty.
//!
//! A KIP-848 member joins within a few broker-paced heartbeats (5 s each by
//! default): every wait is bounded by [`DEADLINE`].
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration_tests::{PollingMember, create_random_topic, random_topic, require_broker};
use kafka_wire::ErrorCode;
use kafka_wire::client::admin::{GroupDescription, GroupType};
use kafka_wire::client::config::{ClientConfig, ProducerConfig};
use kafka_wire::client::{Admin, Client, Producer, ProducerRecord};

const DEADLINE: Duration = Duration::from_secs(60);

async fn admin(bootstrap: &str) -> Admin {
    Admin::new(
        Client::connect(ClientConfig::new(bootstrap).unwrap())
            .await
            .unwrap(),
    )
}

/// Produces `counts[p]` records to partition `p` of `topic`.
async fn produce(bootstrap: &str, topic: &str, counts: &[usize]) {
    let producer = Producer::new(ProducerConfig::new(bootstrap).unwrap())
        .await
        .unwrap();
    let mut futures = Vec::new();
    for (p, &n) in counts.iter().enumerate() {
        for i in 0..n {
            let record = ProducerRecord::new(topic, format!("v{p}-{i}")).partition(p as i32);
            futures.push(producer.send(record).await.unwrap());
        }
    }
    for f in futures {
        f.await.unwrap();
    }
}

/// Waits until `check` holds for the group's description.
async fn wait_for(
    admin: &Admin,
    group: &str,
    what: &str,
    check: impl Fn(&GroupDescription) -> bool,
) -> GroupDescription {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < DEADLINE {
        match admin.describe_group(group).await {
            Ok(d) if check(&d) => return d,
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("group {group} never {what}; last: {last:?}");
}

fn tp(topic: &str, p: i32) -> (String, i32) {
    (topic.to_string(), p)
}

/// One group through its life, with members speaking `protocol`.
async fn a_group_through_its_life(protocol: &str, expected_type: GroupType) {
    let bootstrap = require_broker!();
    let admin = admin(&bootstrap).await;
    let topic = create_random_topic(admin.client(), "admin-groups", 2).await;
    integration_tests::topic_metadata(admin.client(), &topic).await;
    produce(&bootstrap, &topic, &[10, 6]).await;
    let group = random_topic(&format!("admin-groups-{protocol}"));
    let client_id = format!("member-{protocol}");
    let member = PollingMember::start(
        &bootstrap,
        &group,
        &[&topic],
        &[("group.protocol", protocol), ("client.id", &client_id)],
        Duration::from_secs(240),
    )
    .await;

    // Described while alive: one member owning both partitions.
    let d = wait_for(&admin, &group, "had one member with both partitions", |d| {
        d.state == "Stable" && d.members.len() == 1 && d.members[0].assignment.len() == 2
    })
    .await;
    assert_eq!(d.group_type, expected_type);
    assert_eq!(d.protocol_type, "consumer");
    assert!(!d.assignor.is_empty());
    assert!(!d.coordinator.is_empty());
    let m = &d.members[0];
    assert_eq!(m.client_id, client_id);
    assert!(m.client_host.contains("127.0.0.1"), "{}", m.client_host);
    assert_eq!(m.assignment, vec![tp(&topic, 0), tp(&topic, 1)]);
    assert_eq!(m.member_id, member.handle().member_id());
    assert_eq!(
        m.member_epoch.is_some(),
        expected_type == GroupType::Consumer
    );
    assert_eq!(
        d.group_epoch.is_some(),
        expected_type == GroupType::Consumer
    );

    // Listed, with its type and state.
    let listed = admin.list_groups().await.unwrap();
    let mine = listed
        .iter()
        .find(|g| g.group_id == group)
        .unwrap_or_else(|| panic!("{group} not listed in {listed:?}"));
    assert_eq!(mine.group_type, Some(expected_type.clone()));
    assert_eq!(mine.state.as_deref(), Some("Stable"));
    assert_eq!(mine.protocol_type, "consumer");

    // Committed offsets and lag: 10 and 6 records, 4 and 6 committed.
    assert!(admin.list_group_offsets(&group).await.unwrap().is_empty());
    let commits = BTreeMap::from([(tp(&topic, 0), 4), (tp(&topic, 1), 6)]);
    member.handle().commit_offsets(&commits).await.unwrap();
    assert_eq!(admin.list_group_offsets(&group).await.unwrap(), commits);
    let lag = admin.group_lag(&group).await.unwrap();
    let rows: Vec<_> = lag
        .partitions
        .iter()
        .map(|p| {
            (
                p.topic.clone(),
                p.partition,
                p.committed,
                p.log_end_offset,
                p.lag,
                p.member_id.clone(),
            )
        })
        .collect();
    let owner = Some(m.member_id.clone());
    assert_eq!(
        rows,
        vec![
            (topic.clone(), 0, Some(4), Some(10), Some(6), owner.clone()),
            (topic.clone(), 1, Some(6), Some(6), Some(0), owner),
        ]
    );

    // Refused while the group is active.
    let e = admin
        .alter_group_offsets(&group, &BTreeMap::from([(tp(&topic, 0), 1)]))
        .await
        .unwrap_err();
    // Kafka 4.1 answers UNKNOWN_MEMBER_ID for both protocols.
    assert_eq!(e.code(), Some(ErrorCode::UnknownMemberId), "{e}");
    assert!(e.to_string().contains("active members"), "{e}");
    let e = admin
        .delete_groups(std::slice::from_ref(&group))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NonEmptyGroup), "{e}");
    let e = admin
        .delete_group_offsets(&group, &[tp(&topic, 0)])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::GroupSubscribedToTopic), "{e}");
    assert_eq!(admin.list_group_offsets(&group).await.unwrap(), commits);

    // Once the member has left: altered, read back, deleted.
    member.stop().await;
    let d = wait_for(&admin, &group, "became empty", |d| d.members.is_empty()).await;
    assert_eq!(d.state, "Empty");
    assert_eq!(d.group_type, expected_type);
    let altered = BTreeMap::from([(tp(&topic, 0), 2), (tp(&topic, 1), 1)]);
    admin.alter_group_offsets(&group, &altered).await.unwrap();
    assert_eq!(admin.list_group_offsets(&group).await.unwrap(), altered);
    let lag = admin.group_lag(&group).await.unwrap();
    let lags: Vec<_> = lag
        .partitions
        .iter()
        .map(|p| (p.lag, p.member_id.clone()))
        .collect();
    assert_eq!(lags, vec![(Some(8), None), (Some(5), None)]);

    admin
        .delete_group_offsets(&group, &[tp(&topic, 1)])
        .await
        .unwrap();
    assert_eq!(
        admin.list_group_offsets(&group).await.unwrap(),
        BTreeMap::from([(tp(&topic, 0), 2)])
    );

    admin
        .delete_groups(std::slice::from_ref(&group))
        .await
        .unwrap();
    let e = admin.describe_group(&group).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::GroupIdNotFound), "{e}");
    assert!(admin.list_group_offsets(&group).await.unwrap().is_empty());
    assert!(
        !admin
            .list_groups()
            .await
            .unwrap()
            .iter()
            .any(|g| g.group_id == group)
    );
}

#[tokio::test]
async fn a_classic_group_is_listed_described_measured_altered_and_deleted() {
    a_group_through_its_life("classic", GroupType::Classic).await;
}

#[tokio::test]
async fn a_consumer_protocol_group_is_listed_described_measured_altered_and_deleted() {
    a_group_through_its_life("consumer", GroupType::Consumer).await;
}

#[tokio::test]
async fn an_unknown_group_is_not_found() {
    let bootstrap = require_broker!();
    let admin = admin(&bootstrap).await;
    let group = random_topic("no-such-group");
    let e = admin.describe_group(&group).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::GroupIdNotFound), "{e}");
    let e = admin.group_lag(&group).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::GroupIdNotFound), "{e}");
    let e = admin
        .delete_groups(std::slice::from_ref(&group))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::GroupIdNotFound), "{e}");
    // OffsetFetch answers an unknown group with no offsets, not an error.
    assert!(admin.list_group_offsets(&group).await.unwrap().is_empty());
}

#[tokio::test]
async fn offsets_set_for_a_new_group_create_it() {
    let bootstrap = require_broker!();
    let admin = admin(&bootstrap).await;
    let topic = create_random_topic(admin.client(), "admin-groups-new", 1).await;
    integration_tests::topic_metadata(admin.client(), &topic).await;
    produce(&bootstrap, &topic, &[5]).await;
    let group = random_topic("admin-groups-new");
    let offsets = BTreeMap::from([(tp(&topic, 0), 3)]);
    admin.alter_group_offsets(&group, &offsets).await.unwrap();
    let d = admin.describe_group(&group).await.unwrap();
    assert_eq!(d.state, "Empty");
    assert_eq!(d.group_type, GroupType::Classic);
    let lag = admin.group_lag(&group).await.unwrap();
    assert_eq!(lag.partitions.len(), 1);
    assert_eq!(lag.partitions[0].lag, Some(2));
    admin.delete_groups(&[group]).await.unwrap();
}
