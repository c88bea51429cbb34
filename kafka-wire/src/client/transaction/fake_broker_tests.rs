//! The transactional producer against a scripted fake broker on loopback TCP, for
//! what a real broker will not do on demand: lose the answer to an EndTxn, move
//! the coordinator, answer CONCURRENT_TRANSACTIONS; and what a [`TransactSession`]
//! makes of those answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::session::MAX_COMMIT_ATTEMPTS;
use super::*;
use crate::client::config::ProducerConfig;
use crate::client::fake_broker::{
    Answer, Request, api_versions, bind, client_props, frame_of, one_broker_metadata, serve_all,
};
use crate::protocol::Message;
use crate::protocol::messages::find_coordinator_response::Coordinator as FoundCoordinator;
use crate::protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use crate::protocol::messages::{
    AddOffsetsToTxnResponse, ApiKey, EndTxnResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, InitProducerIdResponse, MetadataRequest,
};

/// What the fake does with the n-th EndTxn (0-based).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EndTxnAnswer {
    /// Close the connection without answering: the outcome is unknown to the client.
    Drop,
    /// Answer with this code.
    Code(ErrorCode),
}

struct Fake {
    port: u16,
    end_txn: Box<dyn Fn(usize) -> EndTxnAnswer + Send + Sync>,
    /// How many AddOffsetsToTxn get CONCURRENT_TRANSACTIONS first.
    concurrent: usize,
    end_txns: Mutex<Vec<bool>>,
    add_offsets: AtomicUsize,
    find_coordinator: AtomicUsize,
}

impl Fake {
    async fn start(
        end_txn: Box<dyn Fn(usize) -> EndTxnAnswer + Send + Sync>,
        concurrent: usize,
    ) -> Arc<Fake> {
        let (listener, port) = bind().await;
        let fake = Arc::new(Fake {
            port,
            end_txn,
            concurrent,
            end_txns: Mutex::new(Vec::new()),
            add_offsets: AtomicUsize::new(0),
            find_coordinator: AtomicUsize::new(0),
        });
        serve_all(listener, &fake, Fake::answer);
        fake
    }

    async fn answer(self: Arc<Self>, request: Request) -> Answer {
        let (version, cid, mut frame) = (request.version, request.cid, request.body);
        let out = match request.api {
            ApiKey::ApiVersions => {
                let keys = [
                    (ApiKey::ApiVersions, 3),
                    (ApiKey::Metadata, MetadataRequest::VALID_VERSIONS.max),
                    (
                        ApiKey::FindCoordinator,
                        FindCoordinatorRequest::VALID_VERSIONS.max,
                    ),
                    (
                        ApiKey::InitProducerId,
                        InitProducerIdRequest::VALID_VERSIONS.max,
                    ),
                    (
                        ApiKey::AddOffsetsToTxn,
                        AddOffsetsToTxnRequest::VALID_VERSIONS.max,
                    ),
                    (
                        ApiKey::TxnOffsetCommit,
                        TxnOffsetCommitRequest::VALID_VERSIONS.max,
                    ),
                    (ApiKey::EndTxn, EndTxnRequest::VALID_VERSIONS.max),
                ];
                api_versions(&keys, version, cid)
            }
            ApiKey::Metadata => frame_of(&one_broker_metadata(self.port, &[]), version, cid),
            ApiKey::FindCoordinator => {
                self.find_coordinator.fetch_add(1, Ordering::SeqCst);
                let request = FindCoordinatorRequest::decode(&mut frame, version).unwrap();
                let response = if version < 4 {
                    FindCoordinatorResponse {
                        node_id: 1,
                        host: "127.0.0.1".into(),
                        port: i32::from(self.port),
                        ..Default::default()
                    }
                } else {
                    FindCoordinatorResponse {
                        coordinators: request
                            .coordinator_keys
                            .iter()
                            .map(|k| FoundCoordinator {
                                key: k.clone(),
                                node_id: 1,
                                host: "127.0.0.1".into(),
                                port: i32::from(self.port),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    }
                };
                frame_of(&response, version, cid)
            }
            ApiKey::InitProducerId => {
                let response = InitProducerIdResponse {
                    producer_id: 7,
                    producer_epoch: 3,
                    ..Default::default()
                };
                frame_of(&response, version, cid)
            }
            ApiKey::AddOffsetsToTxn => {
                let n = self.add_offsets.fetch_add(1, Ordering::SeqCst);
                let code = if n < self.concurrent {
                    ErrorCode::ConcurrentTransactions
                } else {
                    ErrorCode::NoError
                };
                let response = AddOffsetsToTxnResponse {
                    error_code: code.code(),
                    ..Default::default()
                };
                frame_of(&response, version, cid)
            }
            ApiKey::TxnOffsetCommit => {
                let request = TxnOffsetCommitRequest::decode(&mut frame, version).unwrap();
                let response = TxnOffsetCommitResponse {
                    topics: request
                        .topics
                        .iter()
                        .map(|t| TxnOffsetCommitResponseTopic {
                            name: t.name.clone(),
                            partitions: t
                                .partitions
                                .iter()
                                .map(|p| TxnOffsetCommitResponsePartition {
                                    partition_index: p.partition_index,
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                };
                frame_of(&response, version, cid)
            }
            ApiKey::EndTxn => {
                let request = EndTxnRequest::decode(&mut frame, version).unwrap();
                let n = {
                    let mut seen = self.end_txns.lock().unwrap();
                    seen.push(request.committed);
                    seen.len() - 1
                };
                match (self.end_txn)(n) {
                    EndTxnAnswer::Drop => return Answer::HangUp,
                    EndTxnAnswer::Code(code) => {
                        let response = EndTxnResponse {
                            error_code: code.code(),
                            producer_id: -1,
                            producer_epoch: -1,
                            ..Default::default()
                        };
                        frame_of(&response, version, cid)
                    }
                }
            }
            other => panic!("fake broker got {other:?}"),
        };
        out.into()
    }
}

async fn producer(fake: &Fake, max_block_ms: u64) -> TransactionalProducer {
    let mut props = client_props(fake.port);
    props.insert("transactional.id".to_string(), "t1".to_string());
    props.insert("max.block.ms".to_string(), max_block_ms.to_string());
    TransactionalProducer::new(ProducerConfig::from_properties(&props).unwrap())
        .await
        .unwrap()
}

/// Opens a transaction holding offsets (so EndTxn has something to end).
async fn begin_with_offsets(p: &mut TransactionalProducer) {
    p.begin().await.unwrap();
    let offsets = BTreeMap::from([(("in".to_string(), 0), 5_i64)]);
    p.send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new("g"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lost_end_txn_answer_is_retried_as_the_same_decision() {
    let fake = Fake::start(
        Box::new(|n| {
            if n == 0 {
                EndTxnAnswer::Drop
            } else {
                EndTxnAnswer::Code(ErrorCode::NoError)
            }
        }),
        0,
    )
    .await;
    let mut p = producer(&fake, 5_000).await;
    assert_eq!(
        p.identity(),
        ProducerIdentity {
            producer_id: 7,
            producer_epoch: 3
        }
    );
    begin_with_offsets(&mut p).await;
    p.commit().await.unwrap();
    assert_eq!(p.state(), TransactionState::Ready);
    assert_eq!(*fake.end_txns.lock().unwrap(), vec![true, true]);
}

#[tokio::test]
async fn an_unknown_commit_outcome_refuses_abort_and_commits_on_retry() {
    // Every EndTxn's answer is lost until the thirteenth; max.block.ms (50 ms)
    // ends each commit call after a few of them.
    let fake = Fake::start(
        Box::new(|n| {
            if n < 12 {
                EndTxnAnswer::Drop
            } else {
                EndTxnAnswer::Code(ErrorCode::NoError)
            }
        }),
        0,
    )
    .await;
    let mut p = producer(&fake, 50).await;
    begin_with_offsets(&mut p).await;
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts <= 20, "commit never completed");
        match p.commit().await {
            Ok(()) => break,
            Err(e) => {
                assert!(matches!(e, Error::TransactionIncomplete { .. }), "{e}");
                assert_eq!(p.state(), TransactionState::Committing);
                // The coordinator may already have committed: aborting is refused.
                let refused = p.abort().await.unwrap_err();
                assert!(
                    matches!(refused, Error::InvalidTransactionState { .. }),
                    "{refused}"
                );
            }
        }
    }
    assert!(attempts >= 2);
    assert_eq!(p.state(), TransactionState::Ready);
    let decisions = fake.end_txns.lock().unwrap().clone();
    assert!(decisions.len() >= 13 && decisions.iter().all(|&c| c));
}

#[tokio::test]
async fn not_coordinator_and_concurrent_transactions_are_retried() {
    let fake = Fake::start(
        Box::new(|n| {
            if n == 0 {
                EndTxnAnswer::Code(ErrorCode::NotCoordinator)
            } else {
                EndTxnAnswer::Code(ErrorCode::NoError)
            }
        }),
        2,
    )
    .await;
    let mut p = producer(&fake, 5_000).await;
    begin_with_offsets(&mut p).await;
    assert_eq!(fake.add_offsets.load(Ordering::SeqCst), 3);
    let finds = fake.find_coordinator.load(Ordering::SeqCst);
    p.abort().await.unwrap();
    assert_eq!(*fake.end_txns.lock().unwrap(), vec![false, false]);
    assert!(fake.find_coordinator.load(Ordering::SeqCst) > finds);
}

#[tokio::test]
async fn fencing_on_end_txn_is_fatal() {
    let fake = Fake::start(
        Box::new(|_| EndTxnAnswer::Code(ErrorCode::ProducerFenced)),
        0,
    )
    .await;
    let mut p = producer(&fake, 5_000).await;
    begin_with_offsets(&mut p).await;
    let e = p.commit().await.unwrap_err();
    assert!(matches!(e, Error::Fenced { .. }), "{e}");
    assert_eq!(p.state(), TransactionState::FatalError);
    assert!(p.begin().await.is_err());
}

async fn session(fake: &Fake, max_block_ms: u64) -> TransactSession {
    TransactSession::new(producer(fake, max_block_ms).await, None)
}

#[tokio::test]
async fn a_session_commits_an_empty_transaction_without_asking_the_coordinator() {
    let fake = Fake::start(Box::new(|_| EndTxnAnswer::Code(ErrorCode::NoError)), 0).await;
    let mut s = session(&fake, 5_000).await;
    // Without begin(): end() opens one.
    let outcome = s.end(&BTreeMap::new(), EndPolicy::AbortOnRebalance).await;
    assert!(matches!(outcome, Ok(EndOutcome::Committed)), "{outcome:?}");
    s.begin().await.unwrap();
    s.begin().await.unwrap(); // idempotent
    let outcome = s.end(&BTreeMap::new(), EndPolicy::CommitWhileMember).await;
    assert!(matches!(outcome, Ok(EndOutcome::Committed)), "{outcome:?}");
    assert!(fake.end_txns.lock().unwrap().is_empty());
    assert_eq!(s.state(), TransactionState::Ready);
    s.abort().await.unwrap(); // nothing open: a no-op
}

#[tokio::test]
async fn offsets_without_a_group_are_refused_and_leave_the_transaction_open() {
    let fake = Fake::start(Box::new(|_| EndTxnAnswer::Code(ErrorCode::NoError)), 0).await;
    let mut s = session(&fake, 5_000).await;
    s.begin().await.unwrap();
    let offsets = BTreeMap::from([(("in".to_string(), 0), 5_i64)]);
    let e = s
        .end(&offsets, EndPolicy::AbortOnRebalance)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidTransactionState { .. }), "{e}");
    assert!(!e.is_fatal() && !e.is_abortable());
    assert_eq!(s.state(), TransactionState::InTransaction);
    assert_eq!(fake.add_offsets.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn end_with_the_abort_policy_aborts_on_purpose() {
    let fake = Fake::start(Box::new(|_| EndTxnAnswer::Code(ErrorCode::NoError)), 0).await;
    let mut s = session(&fake, 5_000).await;
    begin_with_offsets(s.producer()).await;
    let outcome = s.end(&BTreeMap::new(), EndPolicy::Abort).await.unwrap();
    assert!(
        matches!(
            outcome,
            EndOutcome::Aborted {
                reason: AbortReason::Requested
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(*fake.end_txns.lock().unwrap(), vec![false]);
    assert_eq!(s.state(), TransactionState::Ready);
}

#[tokio::test]
async fn a_session_commits_again_while_the_outcome_is_unknown_and_never_aborts() {
    // EndTxn answers are lost until `answer` is set.
    let answer = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = answer.clone();
    let fake = Fake::start(
        Box::new(move |_| {
            if flag.load(Ordering::SeqCst) {
                EndTxnAnswer::Code(ErrorCode::NoError)
            } else {
                EndTxnAnswer::Drop
            }
        }),
        0,
    )
    .await;
    let mut s = session(&fake, 50).await;
    s.begin().await.unwrap();
    let offsets = BTreeMap::from([(("in".to_string(), 0), 5_i64)]);
    s.producer()
        .send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new("g"))
        .await
        .unwrap();
    // Every attempt is lost: end() gives up after its bounded retries ...
    let e = s
        .end(&BTreeMap::new(), EndPolicy::AbortOnRebalance)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TransactionIncomplete { .. }), "{e}");
    assert_eq!(s.state(), TransactionState::Committing);
    let tried = fake.end_txns.lock().unwrap().len();
    assert!(tried >= MAX_COMMIT_ATTEMPTS as usize, "{tried} EndTxn sent");
    // ... an abort is refused, since the coordinator may have committed ...
    let refused = s.abort().await.unwrap_err();
    assert!(
        matches!(refused, Error::InvalidTransactionState { .. }),
        "{refused}"
    );
    // ... and end() resumes the commit (whatever the policy says now).
    answer.store(true, Ordering::SeqCst);
    let outcome = s.end(&BTreeMap::new(), EndPolicy::Abort).await.unwrap();
    assert!(matches!(outcome, EndOutcome::Committed), "{outcome:?}");
    assert!(fake.end_txns.lock().unwrap().iter().all(|&commit| commit));
    assert_eq!(s.state(), TransactionState::Ready);
}

#[tokio::test]
async fn fencing_ends_the_session_with_a_fatal_error() {
    let fake = Fake::start(
        Box::new(|_| EndTxnAnswer::Code(ErrorCode::ProducerFenced)),
        0,
    )
    .await;
    let mut s = session(&fake, 5_000).await;
    begin_with_offsets(s.producer()).await;
    let e = s
        .end(&BTreeMap::new(), EndPolicy::CommitWhileMember)
        .await
        .unwrap_err();
    assert!(e.is_fatal(), "{e}");
    assert_eq!(s.state(), TransactionState::FatalError);
    // Every later call says so too.
    let e = s.begin().await.unwrap_err();
    assert!(e.is_fatal() && e.to_string().contains("fenced"), "{e}");
    let e = s.end(&BTreeMap::new(), EndPolicy::Abort).await.unwrap_err();
    assert!(e.is_fatal(), "{e}");
}

#[tokio::test]
async fn an_abortable_commit_is_aborted_and_reported() {
    let fake = Fake::start(
        Box::new(|n| {
            if n == 0 {
                EndTxnAnswer::Code(ErrorCode::InvalidTxnState)
            } else {
                EndTxnAnswer::Code(ErrorCode::NoError)
            }
        }),
        0,
    )
    .await;
    let mut s = session(&fake, 5_000).await;
    begin_with_offsets(s.producer()).await;
    let outcome = s
        .end(&BTreeMap::new(), EndPolicy::AbortOnRebalance)
        .await
        .unwrap();
    let EndOutcome::Aborted {
        reason: AbortReason::Commit(e),
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(e.code(), Some(ErrorCode::InvalidTxnState), "{e}");
    assert_eq!(*fake.end_txns.lock().unwrap(), vec![true, false]);
    assert_eq!(s.state(), TransactionState::Ready);
}
