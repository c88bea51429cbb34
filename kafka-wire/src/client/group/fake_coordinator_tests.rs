//! The group protocol of one member against a scripted fake coordinator on
//! loopback TCP, for answers a real broker gives only in rare races: a heartbeat
//! answered ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID or
//! NOT_COORDINATOR; and for the consumer protocol (KIP-848), a ConsumerGroupHeartbeat
//! answered FENCED_MEMBER_EPOCH, or a broker that does not offer it; and what a
//! [`GroupHandle`]'s membership checks make of those answers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::consumer_protocol::ConsumerMember;
use super::handle::Member;
use super::membership::Membership;
use super::{GroupConsumer, GroupHandle, RebalanceEvent};
use crate::client::cluster::Client;
use crate::client::config::ConsumerConfig;
use crate::client::fake_broker::{
    Answer, Request, api_versions, bind, frame_of, one_broker_metadata, serve_all,
};
use crate::error::Error;
use crate::error_code::ErrorCode;
use crate::protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use crate::protocol::messages::join_group_response::JoinGroupResponseMember;
use crate::protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, MetadataRequest, SyncGroupRequest, SyncGroupResponse,
};
use crate::protocol::{Message, Uuid};

struct Fake {
    port: u16,
    /// The code of the n-th heartbeat (0-based).
    heartbeat: Box<dyn Fn(usize) -> ErrorCode + Send + Sync>,
    joins: AtomicUsize,
    heartbeats: AtomicUsize,
    finds: AtomicUsize,
    /// Offers ConsumerGroupHeartbeat (answered with `heartbeat`'s codes).
    kip848: bool,
    /// The ConsumerGroupHeartbeat requests received.
    cgh: std::sync::Mutex<Vec<ConsumerGroupHeartbeatRequest>>,
}

impl Fake {
    async fn start(heartbeat: Box<dyn Fn(usize) -> ErrorCode + Send + Sync>) -> Arc<Fake> {
        Fake::start_with(heartbeat, false).await
    }

    async fn start_with(
        heartbeat: Box<dyn Fn(usize) -> ErrorCode + Send + Sync>,
        kip848: bool,
    ) -> Arc<Fake> {
        let (listener, port) = bind().await;
        let fake = Arc::new(Fake {
            port,
            heartbeat,
            joins: AtomicUsize::new(0),
            heartbeats: AtomicUsize::new(0),
            finds: AtomicUsize::new(0),
            kip848,
            cgh: std::sync::Mutex::new(Vec::new()),
        });
        serve_all(listener, &fake, Fake::answer);
        fake
    }

    async fn answer(self: Arc<Self>, request: Request) -> Answer {
        let (version, cid, mut frame) = (request.version, request.cid, request.body);
        let out = match request.api {
            ApiKey::ApiVersions => {
                let mut keys = vec![
                    (ApiKey::ApiVersions, 3),
                    (ApiKey::Metadata, MetadataRequest::VALID_VERSIONS.max),
                    (ApiKey::FindCoordinator, 3),
                    (ApiKey::JoinGroup, JoinGroupRequest::VALID_VERSIONS.max),
                    (ApiKey::SyncGroup, SyncGroupRequest::VALID_VERSIONS.max),
                    (ApiKey::Heartbeat, HeartbeatRequest::VALID_VERSIONS.max),
                ];
                if self.kip848 {
                    keys.push((ApiKey::ConsumerGroupHeartbeat, 1));
                }
                api_versions(&keys, version, cid)
            }
            ApiKey::Metadata => {
                let topics = [("t", Uuid([3; 16]), 2)];
                frame_of(&one_broker_metadata(self.port, &topics), version, cid)
            }
            ApiKey::FindCoordinator => {
                self.finds.fetch_add(1, Ordering::SeqCst);
                let _ = FindCoordinatorRequest::decode(&mut frame, version);
                let response = FindCoordinatorResponse {
                    node_id: 1,
                    host: "127.0.0.1".into(),
                    port: i32::from(self.port),
                    ..Default::default()
                };
                frame_of(&response, version, cid)
            }
            ApiKey::JoinGroup => {
                let request = JoinGroupRequest::decode(&mut frame, version).unwrap();
                let n = self.joins.fetch_add(1, Ordering::SeqCst);
                let response = if request.member_id.is_empty() {
                    // KIP-394: the first join of a dynamic member gets its id.
                    JoinGroupResponse {
                        error_code: ErrorCode::MemberIdRequired.code(),
                        member_id: format!("member-{n}"),
                        ..Default::default()
                    }
                } else {
                    JoinGroupResponse {
                        generation_id: n as i32 + 1,
                        protocol_type: Some("consumer".into()),
                        protocol_name: Some(request.protocols[0].name.clone()),
                        leader: request.member_id.clone(),
                        member_id: request.member_id.clone(),
                        members: vec![JoinGroupResponseMember {
                            member_id: request.member_id.clone(),
                            metadata: request.protocols[0].metadata.clone(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }
                };
                frame_of(&response, version, cid)
            }
            ApiKey::SyncGroup => {
                let request = SyncGroupRequest::decode(&mut frame, version).unwrap();
                let mine = request
                    .assignments
                    .iter()
                    .find(|a| a.member_id == request.member_id)
                    .map(|a| a.assignment.clone())
                    .unwrap_or_default();
                let response = SyncGroupResponse {
                    protocol_type: Some("consumer".into()),
                    protocol_name: request.protocol_name.clone(),
                    assignment: mine,
                    ..Default::default()
                };
                frame_of(&response, version, cid)
            }
            ApiKey::Heartbeat => {
                let n = self.heartbeats.fetch_add(1, Ordering::SeqCst);
                let response = HeartbeatResponse {
                    error_code: (self.heartbeat)(n).code(),
                    ..Default::default()
                };
                frame_of(&response, version, cid)
            }
            ApiKey::ConsumerGroupHeartbeat => {
                let request = ConsumerGroupHeartbeatRequest::decode(&mut frame, version).unwrap();
                let n = self.heartbeats.fetch_add(1, Ordering::SeqCst);
                self.cgh.lock().unwrap().push(request.clone());
                let code = (self.heartbeat)(n);
                let response = ConsumerGroupHeartbeatResponse {
                    error_code: code.code(),
                    member_id: Some(request.member_id.clone()),
                    member_epoch: if code.is_ok() { n as i32 + 1 } else { 0 },
                    heartbeat_interval_ms: 50,
                    assignment: (code.is_ok() && request.member_epoch == 0).then(|| Assignment {
                        topic_partitions: vec![TopicPartitions {
                            topic_id: Uuid([3; 16]),
                            partitions: vec![0, 1],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                frame_of(&response, version, cid)
            }
            other => panic!("fake coordinator got {other:?}"),
        };
        out.into()
    }
}

async fn member(fake: &Fake, instance: Option<&str>) -> Membership {
    let mut props = BTreeMap::from([
        (
            "bootstrap.servers".to_string(),
            format!("127.0.0.1:{}", fake.port),
        ),
        ("group.id".to_string(), "g".to_string()),
        ("retry.backoff.ms".to_string(), "10".to_string()),
        ("retry.backoff.max.ms".to_string(), "20".to_string()),
    ]);
    if let Some(i) = instance {
        props.insert("group.instance.id".to_string(), i.to_string());
    }
    let config = ConsumerConfig::from_properties(&props).unwrap();
    let client = Client::connect(config.client.clone()).await.unwrap();
    Membership::new(client, &config, "g".into()).unwrap()
}

#[tokio::test]
async fn a_dynamic_member_joins_after_member_id_required_and_gets_every_partition() {
    let fake = Fake::start(Box::new(|_| ErrorCode::NoError)).await;
    let m = member(&fake, None).await;
    let partitions = m.join(&["t".to_string()], &[]).await.unwrap();
    assert_eq!(partitions, vec![("t".to_string(), 0), ("t".to_string(), 1)]);
    let s = m.lock().clone();
    assert_eq!(s.member_id, "member-0");
    assert_eq!(s.generation, 2);
    assert!(s.stable && !s.rejoin && !s.lost);
    m.heartbeat().await.unwrap();
}

#[tokio::test]
async fn heartbeat_errors_set_rejoin_lost_or_fatal() {
    let fake = Fake::start(Box::new(|n| match n {
        0 => ErrorCode::RebalanceInProgress,
        1 => ErrorCode::IllegalGeneration,
        2 => ErrorCode::UnknownMemberId,
        _ => ErrorCode::FencedInstanceId,
    }))
    .await;
    let m = member(&fake, Some("i-1")).await;
    let topics = ["t".to_string()];

    m.join(&topics, &[]).await.unwrap();
    assert!(m.heartbeat().await.is_err());
    let s = m.lock().clone();
    assert!(
        s.rejoin && !s.lost,
        "REBALANCE_IN_PROGRESS: rejoin, keep partitions"
    );

    m.join(&topics, &[]).await.unwrap();
    assert!(m.heartbeat().await.is_err());
    let s = m.lock().clone();
    assert!(s.rejoin && s.lost, "ILLEGAL_GENERATION: partitions lost");

    m.join(&topics, &[]).await.unwrap();
    assert!(m.heartbeat().await.is_err());
    let s = m.lock().clone();
    assert!(s.rejoin && s.lost && s.member_id.is_empty() && s.generation == -1);

    m.join(&topics, &[]).await.unwrap();
    let e = m.heartbeat().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::FencedInstanceId));
    assert!(m.lock().fatal.is_some());
}

#[tokio::test]
async fn a_refused_heartbeat_names_the_group_and_is_not_retried() {
    let fake = Fake::start(Box::new(|_| ErrorCode::GroupAuthorizationFailed)).await;
    let m = member(&fake, None).await;
    m.join(&["t".to_string()], &[]).await.unwrap();
    let e = m.heartbeat().await.unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Authorization { resource_type: "group", resource_name, operation: "read", .. }
                if resource_name == "g"
        ),
        "{e:?}"
    );
    assert!(!e.is_retriable());
    assert_eq!(fake.heartbeats.load(Ordering::SeqCst), 1, "retried");
}

#[tokio::test]
async fn not_coordinator_on_a_heartbeat_finds_the_coordinator_again() {
    let fake = Fake::start(Box::new(|n| {
        if n == 0 {
            ErrorCode::NotCoordinator
        } else {
            ErrorCode::NoError
        }
    }))
    .await;
    let m = member(&fake, None).await;
    m.join(&["t".to_string()], &[]).await.unwrap();
    let finds = fake.finds.load(Ordering::SeqCst);
    m.heartbeat().await.unwrap();
    assert_eq!(fake.heartbeats.load(Ordering::SeqCst), 2);
    assert!(fake.finds.load(Ordering::SeqCst) > finds);
    assert!(m.lock().stable);
}

fn kip848_config(fake: &Fake) -> ConsumerConfig {
    ConsumerConfig::from_properties(&BTreeMap::from([
        (
            "bootstrap.servers".to_string(),
            format!("127.0.0.1:{}", fake.port),
        ),
        ("group.id".to_string(), "g".to_string()),
        ("group.protocol".to_string(), "consumer".to_string()),
        ("retry.backoff.ms".to_string(), "10".to_string()),
        ("retry.backoff.max.ms".to_string(), "20".to_string()),
    ]))
    .unwrap()
}

#[tokio::test]
async fn a_fenced_member_epoch_loses_the_partitions_and_rejoins_with_epoch_zero_and_its_id() {
    let fake = Fake::start_with(
        Box::new(|n| {
            if n == 1 {
                ErrorCode::FencedMemberEpoch
            } else {
                ErrorCode::NoError
            }
        }),
        true,
    )
    .await;
    let config = kip848_config(&fake);
    let client = Client::connect(config.client.clone()).await.unwrap();
    let m = ConsumerMember::new(client, &config, "g".into());
    m.subscribe(&["t".to_string()]);
    m.heartbeat().await.unwrap();
    {
        let s = m.lock();
        assert_eq!((s.member_epoch, s.in_group, s.joined), (1, true, true));
        assert_eq!(
            s.target,
            Some([(Uuid([3; 16]), 0), (Uuid([3; 16]), 1)].into())
        );
        assert_eq!(s.heartbeat_interval, std::time::Duration::from_millis(50));
    }
    let e = m.heartbeat().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::FencedMemberEpoch));
    assert!(m.lock().lost && m.lock().member_epoch == 0);
    // Quiet until the application has dropped the lost partitions.
    m.heartbeat().await.unwrap();
    assert_eq!(fake.heartbeats.load(Ordering::SeqCst), 2);
    m.release_lost();
    m.heartbeat().await.unwrap();
    assert_eq!(m.lock().member_epoch, 3);
    let sent = fake.cgh.lock().unwrap().clone();
    assert_eq!(
        sent.iter().map(|r| r.member_epoch).collect::<Vec<_>>(),
        vec![0, 1, 0]
    );
    // v1: one client-generated id, kept through the rejoin (KIP-1082).
    assert_eq!(sent[0].member_id.len(), 36);
    assert!(sent.iter().all(|r| r.member_id == sent[0].member_id));
    // The plain heartbeat carried no unchanged field; the rejoin carried all.
    assert_eq!(sent[1].subscribed_topic_names, None);
    assert_eq!(sent[2].subscribed_topic_names, Some(vec!["t".to_string()]));
    assert_eq!(sent[2].topic_partitions, Some(Vec::new()));
}

#[tokio::test]
async fn the_consumer_protocol_against_a_broker_without_it_is_a_clear_error() {
    let fake = Fake::start(Box::new(|_| ErrorCode::NoError)).await;
    let mut c = GroupConsumer::new(kip848_config(&fake)).await.unwrap();
    c.subscribe(["t"]);
    let mut result = Ok(Vec::new());
    for _ in 0..50 {
        result = c.poll_for(std::time::Duration::from_millis(20)).await;
        if result.is_err() {
            break;
        }
    }
    let e = result.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnsupportedVersion), "{e}");
    assert!(e.to_string().contains("group.protocol=classic"), "{e}");
    assert!(
        c.take_events()
            .iter()
            .all(|e| !matches!(e, RebalanceEvent::Lost(_)))
    );
}

fn handle_of(m: Membership) -> (Arc<Membership>, GroupHandle) {
    let m = Arc::new(m);
    (m.clone(), GroupHandle::new(Member::Classic(m)))
}

#[tokio::test]
async fn check_membership_passes_while_a_rebalance_is_pending_and_fails_once_the_generation_ended()
{
    let fake = Fake::start(Box::new(|n| match n {
        0 => ErrorCode::NoError,
        1 | 2 => ErrorCode::RebalanceInProgress,
        _ => ErrorCode::IllegalGeneration,
    }))
    .await;
    let (m, handle) = handle_of(member(&fake, None).await);
    let sent = || fake.heartbeats.load(Ordering::SeqCst);

    // Not joined yet: no generation to check, nothing sent.
    let e = handle.check_membership().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownMemberId), "{e}");
    assert_eq!(sent(), 0);

    m.join(&["t".to_string()], &[]).await.unwrap();
    assert_eq!(
        (handle.generation(), handle.member_id()),
        (2, "member-0".into())
    );
    handle.check_membership().await.unwrap();
    assert_eq!(sent(), 1);

    // The group starts a rebalance: the strict check fails ...
    let e = handle.heartbeat_now().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RebalanceInProgress), "{e}");
    assert!(handle.rebalance_pending());
    // ... the lenient one heartbeats the unchanged generation and passes ...
    handle.check_membership().await.unwrap();
    assert_eq!(sent(), 3, "sent although a rejoin is pending");
    // ... and heartbeat_now keeps failing without asking the coordinator.
    assert!(handle.heartbeat_now().await.is_err());
    assert_eq!(sent(), 3);

    // The group moved on without this member.
    let e = handle.check_membership().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::IllegalGeneration), "{e}");
    assert!(m.lock().lost);
    let e = handle.check_membership().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::IllegalGeneration), "{e}");
    assert!(e.to_string().contains("partitions are lost"), "{e}");
    assert_eq!(sent(), 4, "a lost generation is not heartbeated again");
}

#[tokio::test]
async fn generation_after_waits_for_the_join_in_flight_and_only_for_it() {
    let fake = Fake::start(Box::new(|_| ErrorCode::NoError)).await;
    let (m, handle) = handle_of(member(&fake, None).await);
    let topics = ["t".to_string()];
    m.join(&topics, &[]).await.unwrap();
    let wait = std::time::Duration::from_secs(5);
    let started = std::time::Instant::now();

    // No join in flight: nothing to wait for.
    assert!(handle.generation_after(2, wait).await.is_none());
    // Already past it.
    assert_eq!(
        handle
            .generation_after(1, wait)
            .await
            .unwrap()
            .generation_id,
        2
    );

    // A join in flight (as a cooperative member's background join): the answer
    // comes when it sets the next generation.
    m.lock().joining = true;
    let joiner = {
        let m = m.clone();
        let topics = topics.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            m.join(&topics, &[]).await.unwrap();
        })
    };
    let next = handle.generation_after(2, wait).await.unwrap();
    assert_eq!(
        (next.generation_id, next.member_id.as_str()),
        (3, "member-0")
    );
    joiner.await.unwrap();
    assert!(
        started.elapsed() < wait,
        "woken by the join, not by the timeout"
    );

    // A join that ends without a later generation (here: dropped) ends the wait.
    m.lock().joining = true;
    let quitter = {
        let m = m.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            m.lock().joining = false;
            m.notify_join_progress();
        })
    };
    assert!(handle.generation_after(3, wait).await.is_none());
    quitter.await.unwrap();
    assert!(started.elapsed() < wait);

    // A lost generation is never waited past.
    m.lock().lost = true;
    assert!(handle.generation_after(1, wait).await.is_none());
}

#[tokio::test]
async fn check_membership_fails_on_unknown_member_and_fenced_instance() {
    let fake = Fake::start(Box::new(|n| match n {
        0 => ErrorCode::UnknownMemberId,
        _ => ErrorCode::FencedInstanceId,
    }))
    .await;
    let (m, handle) = handle_of(member(&fake, Some("i-1")).await);
    let topics = ["t".to_string()];
    m.join(&topics, &[]).await.unwrap();
    let e = handle.check_membership().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownMemberId), "{e}");
    assert_eq!(handle.generation(), -1);

    m.join(&topics, &[]).await.unwrap();
    let e = handle.check_membership().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::FencedInstanceId), "{e}");
    // Fatal from now on, for both checks, without another heartbeat.
    let e = handle.heartbeat_now().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::FencedInstanceId), "{e}");
    let e = handle.check_membership().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::FencedInstanceId), "{e}");
    assert_eq!(fake.heartbeats.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_busy_coordinator_connection_leaves_the_answer_to_the_member_state() {
    let fake = Fake::start(Box::new(|_| ErrorCode::NoError)).await;
    let (m, handle) = handle_of(member(&fake, None).await);
    m.join(&["t".to_string()], &[]).await.unwrap();
    // The consumer task holds the connection (a JoinGroup, or an OffsetFetch
    // waiting for this very transaction's offsets): no deadlock, no heartbeat.
    let busy = m.coordinator.lock().await;
    let started = std::time::Instant::now();
    handle.check_membership().await.unwrap();
    handle.heartbeat_now().await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    m.lock().rejoin = true;
    assert!(
        handle.heartbeat_now().await.is_err(),
        "the state says: rebalancing"
    );
    handle.check_membership().await.unwrap();
    drop(busy);
    assert_eq!(fake.heartbeats.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn with_the_consumer_protocol_check_membership_passes_while_reconciling_until_fenced() {
    let fake = Fake::start_with(
        Box::new(|n| {
            if n < 3 {
                ErrorCode::NoError
            } else {
                ErrorCode::FencedMemberEpoch
            }
        }),
        true,
    )
    .await;
    let config = kip848_config(&fake);
    let client = Client::connect(config.client.clone()).await.unwrap();
    let m = Arc::new(ConsumerMember::new(client, &config, "g".into()));
    let handle = GroupHandle::new(Member::Consumer(m.clone()));
    assert!(handle.check_membership().await.is_err(), "not joined");
    m.subscribe(&["t".to_string()]);
    m.heartbeat().await.unwrap();
    assert_eq!(handle.generation(), 1);
    // The broker assigned partitions this member has not taken yet: a rebalance
    // is pending, but the member epoch is its own.
    assert!(handle.rebalance_pending());
    handle.check_membership().await.unwrap();
    let e = handle.heartbeat_now().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::RebalanceInProgress), "{e}");
    let e = handle.check_membership().await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::FencedMemberEpoch), "{e}");
    assert_eq!(handle.generation(), -1);
    assert_eq!(handle.group_metadata().generation_id, -1);
    assert_eq!(fake.heartbeats.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn with_the_consumer_protocol_generation_after_waits_for_the_heartbeat_in_flight() {
    let fake = Fake::start_with(Box::new(|_| ErrorCode::NoError), true).await;
    let config = kip848_config(&fake);
    let client = Client::connect(config.client.clone()).await.unwrap();
    let m = Arc::new(ConsumerMember::new(client, &config, "g".into()));
    let handle = GroupHandle::new(Member::Consumer(m.clone()));
    m.subscribe(&["t".to_string()]);
    m.heartbeat().await.unwrap();
    assert_eq!(handle.generation(), 1);
    let wait = std::time::Duration::from_secs(5);
    // Nothing in flight: no later epoch, answered at once.
    let started = std::time::Instant::now();
    assert!(handle.generation_after(1, wait).await.is_none());
    assert!(started.elapsed() < wait);
    // A heartbeat in flight (it holds the coordinator connection) that moves
    // the epoch: the answer comes once it has ended.
    let in_flight = m.coordinator.lock().await;
    let waiting = tokio::spawn({
        let handle = handle.clone();
        async move { handle.generation_after(1, wait).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    m.lock().member_epoch = 2;
    drop(in_flight);
    let next = waiting.await.unwrap().expect("the epoch moved");
    assert_eq!(next.generation_id, 2);
    assert_eq!(next.member_id, handle.member_id());
    // Fenced: no identity to send offsets under.
    m.lock().lost = true;
    assert!(handle.generation_after(1, wait).await.is_none());
}
