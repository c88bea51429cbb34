//! Transactions: a producer whose writes (and consumer offsets) become visible
//! atomically, or never (KIP-98; consumer-group fencing of KIP-447).
//!
//! ```text
//!  TransactionalProducer
//!    init ──► FindCoordinator(key type 1) ──► InitProducerId(transactional.id)
//!    begin        (fences older producers, aborts what they left open)
//!    send ──► AddPartitionsToTxn (first record of a partition; version 1 only)
//!         └─► Producer::send ──► ProduceRequest(transactional_id, transactional batches)
//!    send_offsets_to_transaction ──► AddOffsetsToTxn (version 1 only) ──► TxnOffsetCommit (group coordinator)
//!    commit / abort ──► flush ──► EndTxn(commit | abort)
//! ```
//!
//! The state machine, its transitions and the error classes live in [`state`];
//! coordinator lookup and retries in [`coordinator`]; listing, describing and
//! aborting transactions in [`admin`]; a bounded set of reused transactional ids
//! and start-up fencing in [`pool`]; the consume-transform-produce loop (offsets,
//! membership check, commit or abort) as a [`TransactSession`] in [`session`].
//!
//! Transaction version: the broker's finalized feature `transaction.version` is read
//! from ApiVersions at init. Version 2 (KIP-890) is used when it is finalized at 2
//! or more and the broker offers Produce v12, TxnOffsetCommit v5 and EndTxn v5: the
//! produce request itself adds its partition and TxnOffsetCommit its group (no
//! AddPartitionsToTxn or AddOffsetsToTxn), and every EndTxn bumps the epoch, which
//! the producer takes from the response (so a late write of an ended transaction is
//! refused). Otherwise every transaction runs as version 1, and no request goes
//! above the last version-1 version, since the broker reads a higher one as a
//! version 2 client.
//!
//! Errors are the crate's [`Error`]: [`Error::Fenced`], [`Error::TransactionFatal`]
//! and [`Error::InvalidTransactionTimeout`] end the producer
//! ([`Error::is_fatal`]); [`Error::TransactionAbortable`] asks for `abort`;
//! [`Error::TransactionIncomplete`] leaves the state as it was (call again);
//! [`Error::InvalidTransactionState`] refuses a call out of order.

pub mod admin;
pub mod coordinator;
pub mod pool;
pub mod session;
pub mod state;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use self::coordinator::{Coordinator, CoordinatorType};
pub use self::session::{AbortReason, EndOutcome, EndPolicy, TransactSession};
pub use self::state::{ErrorClass, Operation, TransactionState};
use super::cluster::Client;
use super::config::ProducerConfig;
use super::connection::client_max_version;
use super::partitioner::partition_for_key;
use super::producer::{Producer, ProducerIdentity, ProducerRecord, RecordMetadata};
pub use crate::client::group::ConsumerGroupMetadata;
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use crate::protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use crate::protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey,
    ApiVersionsRequest, ApiVersionsResponse, EndTxnRequest, InitProducerIdRequest,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

/// What a record's delivery came to; see [`TransactionalProducer::send`].
#[derive(Debug)]
pub struct TxnDelivery {
    inner: crate::client::producer::DeliveryFuture,
}

impl std::future::Future for TxnDelivery {
    type Output = crate::error::Result<RecordMetadata>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.inner).poll(cx)
    }
}

/// A producer with a `transactional.id`: `begin`, `send`, `commit` or `abort`.
///
/// Operations take `&mut self`: a transaction is one sequence of steps, and with
/// transaction version 2 nothing may be produced while one transaction ends and
/// the next begins.
pub struct TransactionalProducer {
    producer: Producer,
    config: ProducerConfig,
    transactional_id: String,
    coordinator: Coordinator,
    group_coordinators: HashMap<String, Coordinator>,
    state: TransactionState,
    identity: ProducerIdentity,
    /// The broker's finalized `transaction.version` (0 when it reports none).
    broker_transaction_version: i16,
    tv2: bool,
    /// When the broker's features were last read.
    features_checked: Option<Instant>,
    /// Partitions added to the open transaction.
    partitions: BTreeSet<(String, i32)>,
    /// Whether offsets were added to the open transaction (AddOffsetsToTxn).
    offsets_added: bool,
    /// The first failure among the transaction's records (set by the producer).
    failures: Arc<crate::client::producer::delivery::FailureLatch>,
    /// The topics written in the open transaction (their partition counts read
    /// once per transaction), for the per-record check.
    topics: TopicsInTransaction,
    /// Records the producer partitioned went into the open transaction
    /// (transaction version 2).
    sent_unkeyed: bool,
    /// A record failed in an earlier transaction: bump the epoch before the next one,
    /// since its sequence may have left a gap.
    bump_epoch: bool,
    started: Option<Instant>,
    last_error: Option<String>,
}

impl std::fmt::Debug for TransactionalProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalProducer")
            .field("transactional_id", &self.transactional_id)
            .field("state", &self.state)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The last versions of the transaction version 1 protocol: a client must not send
/// a higher one inside a version 1 transaction, since the broker reads Produce v12,
/// TxnOffsetCommit v5 and EndTxn v5 as "this client runs version 2" (KIP-890).
const LAST_TV1_PRODUCE: i16 = 11;
const LAST_TV1_TXN_OFFSET_COMMIT: i16 = 4;
const LAST_TV1_END_TXN: i16 = 4;

/// How often a producer running transaction version 1 looks again whether the
/// broker now offers version 2 (checked when a transaction begins).
const FEATURES_RECHECK: Duration = Duration::from_secs(30);

/// Whether to run transactions as version 2 (KIP-890): the broker has the feature
/// `transaction.version` finalized at 2 or more and offers Produce v12,
/// TxnOffsetCommit v5 and EndTxn v5 (all within this client's versions).
fn use_transaction_v2(finalized: i16, broker: &ApiVersionsResponse) -> bool {
    let offers = |api: ApiKey, version: i16| {
        broker.api_keys.iter().any(|k| {
            k.api_key == api.code() && k.min_version <= version && version <= k.max_version
        }) && version <= client_max_version(api)
    };
    finalized >= 2
        && offers(ApiKey::Produce, LAST_TV1_PRODUCE + 1)
        && offers(ApiKey::TxnOffsetCommit, LAST_TV1_TXN_OFFSET_COMMIT + 1)
        && offers(ApiKey::EndTxn, LAST_TV1_END_TXN + 1)
}

/// A failure that leaves the transaction's state as it was: the same operation may
/// be called again.
fn incomplete(error: Error) -> Error {
    Error::TransactionIncomplete {
        source: Box::new(error),
    }
}

/// The first non-zero per-partition code of an AddPartitionsToTxn (v3 and below) answer.
fn add_partitions_code(r: &AddPartitionsToTxnResponse) -> ErrorCode {
    ErrorCode::first_error(
        std::iter::once(r.error_code).chain(
            r.results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| &t.results_by_partition)
                .map(|p| p.partition_error_code),
        ),
    )
}

/// The first non-zero per-partition code of a TxnOffsetCommit answer.
fn txn_offset_commit_code(r: &TxnOffsetCommitResponse) -> ErrorCode {
    ErrorCode::first_error(
        r.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.error_code),
    )
}

impl TransactionalProducer {
    /// Connects, finds the transaction coordinator and initializes the producer id
    /// (fencing older producers with the same `transactional.id`, and finishing
    /// whatever transaction they left open).
    pub async fn new(config: ProducerConfig) -> Result<TransactionalProducer> {
        config.validate()?;
        let client = Client::connect(config.client.clone())
            .await
            .map_err(incomplete)?;
        Self::with_client(client, config).await
    }

    /// As [`TransactionalProducer::new`], over an existing client.
    pub async fn with_client(
        client: Client,
        config: ProducerConfig,
    ) -> Result<TransactionalProducer> {
        config.validate()?;
        let Some(transactional_id) = config.transactional_id.clone() else {
            return Err(Error::Config {
                key: "transactional.id".into(),
                message: "required for a transactional producer".into(),
            });
        };
        let timeout_ms = config.transaction_timeout.as_millis();
        if timeout_ms == 0 || timeout_ms > i32::MAX as u128 {
            return Err(Error::InvalidTransactionTimeout {
                timeout_ms,
                reason: "must be between 1 ms and 2^31-1 ms".into(),
            });
        }
        if config.delivery_timeout >= config.transaction_timeout {
            // Records retried past the transaction timeout would only meet a
            // transaction the coordinator has already aborted (PITFALLS).
            warn!(
                transactional_id,
                "delivery.timeout.ms >= transaction.timeout.ms: a slow record may outlive its transaction"
            );
        }
        let producer = Producer::with_client(client.clone(), config.clone()).await?;
        let failures = producer.failures().unwrap_or_default();
        let mut this = TransactionalProducer {
            config,
            coordinator: Coordinator::new(
                client,
                CoordinatorType::Transaction,
                transactional_id.clone(),
            ),
            producer,
            transactional_id,
            group_coordinators: HashMap::new(),
            state: TransactionState::Uninitialized,
            identity: ProducerIdentity::NONE,
            broker_transaction_version: 0,
            tv2: false,
            features_checked: None,
            partitions: BTreeSet::new(),
            offsets_added: false,
            failures,
            topics: TopicsInTransaction::default(),
            sent_unkeyed: false,
            bump_epoch: false,
            started: None,
            last_error: None,
        };
        this.init().await?;
        Ok(this)
    }

    /// The state the producer is in.
    pub fn state(&self) -> TransactionState {
        self.state
    }

    /// The producer id and epoch of the open (or next) transaction.
    pub fn identity(&self) -> ProducerIdentity {
        self.identity
    }

    /// The `transactional.id`.
    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    /// The broker's finalized `transaction.version` feature level (0 when not reported).
    pub fn broker_transaction_version(&self) -> i16 {
        self.broker_transaction_version
    }

    /// Whether transactions run as version 2 (KIP-890); see the module doc.
    pub fn uses_transaction_v2(&self) -> bool {
        self.tv2
    }

    /// `transaction.timeout.ms`: how long the coordinator lets a transaction stay
    /// open before it aborts it.
    pub fn transaction_timeout(&self) -> Duration {
        self.config.transaction_timeout
    }

    /// The reason of the last fatal or abortable error, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The client underneath.
    pub fn client(&self) -> &Client {
        self.producer.client()
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.producer_config().max_block
    }

    fn producer_config(&self) -> &ProducerConfig {
        &self.config
    }

    fn transition(&mut self, op: Operation) -> Result<TransactionState> {
        let hint = match (self.state, op) {
            (TransactionState::Committing, Operation::Abort) => {
                ": a commit's outcome is unknown; call commit() again"
            }
            (TransactionState::Aborting, Operation::Commit) => {
                ": an abort is in progress; call abort() again"
            }
            (TransactionState::AbortableError, _) => ": the transaction must be aborted",
            (TransactionState::FatalError, _) => ": the producer failed; drop it",
            (TransactionState::Ready, Operation::Commit | Operation::Abort | Operation::Send) => {
                ": no transaction is open; call begin() first"
            }
            (TransactionState::InTransaction, Operation::Begin) => {
                ": a transaction is already open"
            }
            _ => "",
        };
        let next = self.state.start(op).ok_or(Error::InvalidTransactionState {
            operation: op,
            state: self.state,
            hint,
        })?;
        debug!(transactional_id = self.transactional_id, from = ?self.state, to = ?next, ?op, "transaction state");
        self.state = next;
        Ok(next)
    }

    /// Moves to FatalError or AbortableError per the error, recording why.
    fn fail(&mut self, what: &str, error: Error) -> Error {
        let code = error.code();
        let class = code.map(state::classify);
        let reason = format!("{what}: {error}");
        let out = match (code, class) {
            // Not authorized (the transactional id, the cluster): fatal, as the
            // Java client has it, and kept as Error::Authorization so the caller
            // sees which resource and operation were refused.
            _ if error.is_authorization() => {
                self.state = TransactionState::FatalError;
                error
            }
            (Some(code), _) if state::is_fencing(code) => {
                let mut reason = reason;
                if let Some(note) = self.timed_out_note() {
                    reason.push_str(&note);
                } else if self.started.is_some() {
                    reason.push_str(
                        "; another producer with the same transactional.id has taken over",
                    );
                }
                self.state = TransactionState::FatalError;
                Error::Fenced {
                    transactional_id: self.transactional_id.clone(),
                    code,
                    reason,
                }
            }
            (Some(ErrorCode::InvalidTransactionTimeout), _) => {
                self.state = TransactionState::FatalError;
                Error::InvalidTransactionTimeout {
                    timeout_ms: self.producer_config().transaction_timeout.as_millis(),
                    reason: "the broker rejected it".into(),
                }
            }
            (_, Some(ErrorClass::Fatal)) => {
                self.state = TransactionState::FatalError;
                Error::TransactionFatal { code, reason }
            }
            (_, Some(ErrorClass::Abortable)) => {
                let mut reason = reason;
                // Transaction version 2: the coordinator aborted it (and bumped the
                // epoch); aborting here completes that and the producer goes on.
                reason.push_str(&self.timed_out_note().unwrap_or_default());
                self.state = TransactionState::AbortableError;
                Error::TransactionAbortable { code, reason }
            }
            // Retriable codes and lost connections that outlived the deadline, and
            // local errors (encoding): the state stays, the call may be repeated.
            _ => incomplete(error),
        };
        warn!(transactional_id = self.transactional_id, state = ?self.state, error = %out, "transaction error");
        self.last_error = Some(out.to_string());
        out
    }

    /// Says so, when the open transaction has been open longer than its timeout.
    fn timed_out_note(&self) -> Option<String> {
        let open = self.started?.elapsed();
        let limit = self.producer_config().transaction_timeout;
        (open >= limit).then(|| {
            format!(
                "; the transaction was open for {open:?}, longer than transaction.timeout.ms ({limit:?}): the coordinator aborted it"
            )
        })
    }

    /// InitProducerId through the transaction coordinator. With `current` set, bumps
    /// that id's epoch (KIP-360) instead of fencing and starting over.
    async fn init_producer_id(&mut self, current: ProducerIdentity) -> Result<()> {
        let request = InitProducerIdRequest {
            transactional_id: Some(self.transactional_id.clone()),
            transaction_timeout_ms: self.producer_config().transaction_timeout.as_millis() as i32,
            producer_id: current.producer_id,
            producer_epoch: current.producer_epoch,
            ..Default::default()
        };
        let deadline = self.deadline();
        let response = self
            .coordinator
            .call(&request, None, deadline, |r| {
                ErrorCode::from_code(r.error_code)
            })
            .await?;
        self.identity = ProducerIdentity {
            producer_id: response.producer_id,
            producer_epoch: response.producer_epoch,
        };
        self.producer.set_transactional_identity(self.identity);
        info!(
            transactional_id = self.transactional_id,
            producer_id = self.identity.producer_id,
            epoch = self.identity.producer_epoch,
            "transactional producer id"
        );
        Ok(())
    }

    /// Reads the finalized `transaction.version` from ApiVersions on the coordinator
    /// and picks the protocol version for the next transactions.
    async fn choose_transaction_version(&mut self) {
        let first = self.features_checked.replace(Instant::now()).is_none();
        let features = async {
            let conn = self.coordinator.connection().await?;
            conn.call(&ApiVersionsRequest {
                client_software_name: "strom".into(),
                client_software_version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            })
            .await
        }
        .await;
        let tv2 = match features {
            Ok(r) => {
                self.broker_transaction_version = r
                    .finalized_features
                    .iter()
                    .find(|f| f.name == "transaction.version")
                    .map_or(0, |f| f.max_version_level);
                use_transaction_v2(self.broker_transaction_version, &r)
            }
            Err(e) => {
                debug!(error = %e, "ApiVersions for features failed; assuming transaction.version 0");
                false
            }
        };
        if first || tv2 != self.tv2 {
            info!(
                transactional_id = self.transactional_id,
                finalized = self.broker_transaction_version,
                version_2 = tv2,
                "transaction protocol"
            );
        }
        self.tv2 = tv2;
        self.producer
            .set_max_produce_version(if tv2 { i16::MAX } else { LAST_TV1_PRODUCE });
    }

    async fn init(&mut self) -> Result<()> {
        self.transition(Operation::Init)?;
        self.choose_transaction_version().await;
        if let Err(e) = self.init_producer_id(ProducerIdentity::NONE).await {
            let out = self.fail("InitProducerId", e);
            if matches!(out, Error::TransactionIncomplete { .. }) {
                self.state = TransactionState::Uninitialized;
            }
            return Err(out);
        }
        self.state = TransactionState::Ready;
        Ok(())
    }

    /// Retries initialization after [`Error::TransactionIncomplete`] from `new`... or
    /// after it was left Uninitialized; a no-op when already initialized.
    pub async fn ensure_initialized(&mut self) -> Result<()> {
        if self.state == TransactionState::Uninitialized {
            self.init().await?;
        }
        Ok(())
    }

    /// Starts a transaction (local only: nothing is sent until the first record).
    pub async fn begin(&mut self) -> Result<()> {
        if self.state == TransactionState::Ready && self.bump_epoch {
            // A record of an earlier transaction failed, possibly leaving a gap in
            // its partition's sequence: start the next one under a new epoch.
            let current = self.identity;
            if let Err(e) = self.init_producer_id(current).await {
                return Err(self.fail("InitProducerId (epoch bump)", e));
            }
            self.bump_epoch = false;
        }
        if self.state == TransactionState::Ready
            && !self.tv2
            && self
                .features_checked
                .is_none_or(|at| at.elapsed() >= FEATURES_RECHECK)
        {
            // A broker that has just started may report no finalized features yet;
            // the Java client too re-reads them from every ApiVersions answer.
            self.choose_transaction_version().await;
        }
        self.transition(Operation::Begin)?;
        self.partitions.clear();
        self.offsets_added = false;
        self.failures.reset();
        self.topics.clear();
        self.sent_unkeyed = false;
        self.started = Some(Instant::now());
        Ok(())
    }

    /// Sends a record in the open transaction.
    ///
    /// Before the first record of a partition, adds the partition to the
    /// transaction (AddPartitionsToTxn, transaction version 1). Returns a future of
    /// the record's offset; a record that fails makes `commit` fail (abortable).
    pub async fn send(&mut self, mut record: ProducerRecord) -> Result<TxnDelivery> {
        self.transition(Operation::Send)?;
        let unkeyed = record.partition.is_none()
            && (record.key.is_none() || self.producer_config().partitioner_ignore_keys);
        if self.tv2 && unkeyed {
            // Transaction version 2 adds partitions with the produce request: the
            // producer's sticky partitioner spreads unkeyed records over the
            // partitions batch by batch, as it does outside transactions.
            self.sent_unkeyed = true;
            return self.hand_to_producer(record).await;
        }
        let topic = match self.topics.find(&record.topic) {
            Some(t) => t,
            None => {
                // Boxed, as the producer's waits: the common path's future stays small.
                let n = Box::pin(self.partition_count(&record.topic)).await?;
                self.topics.insert(&record.topic, n)
            }
        };
        let partitions = self.topics.partitions(topic);
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) if !self.producer_config().partitioner_ignore_keys => {
                partition_for_key(key, partitions)
            }
            _ => {
                let seed = self.partitions.len() as u64
                    ^ crate::client::producer::now_ms() as u64
                    ^ self.identity.producer_epoch as u64;
                self.topics.sticky(topic, (seed % partitions as u64) as i32)
            }
        };
        if partition < 0 || partition >= partitions {
            // Refused before anything reaches the coordinator: the transaction is intact.
            return Err(Error::broker(
                ErrorCode::UnknownTopicOrPartition,
                format!(
                    "{}-{partition}: the topic has {partitions} partitions",
                    record.topic
                ),
            )
            .with_partition(record.topic.as_str(), partition));
        }
        record.partition = Some(partition);
        // Most records go to a partition already in the transaction: checked
        // without building a key.
        if !self.topics.mark_added(topic, partition) {
            let key = (record.topic.clone(), partition);
            if self.partitions.contains(&key) {
                // Added with add_partitions_to_transaction.
            } else if self.tv2 {
                // Transaction version 2: the produce request adds the partition.
                self.partitions.insert(key);
            } else {
                Box::pin(self.add_partitions(std::slice::from_ref(&key))).await?;
            }
        }
        self.hand_to_producer(record).await
    }

    /// Appends a record to the producer; a record it cannot take for good makes
    /// the transaction abortable.
    async fn hand_to_producer(&mut self, record: ProducerRecord) -> Result<TxnDelivery> {
        let delivery = match self.producer.send(record).await {
            Ok(delivery) => delivery,
            // Not queued for a passing reason (buffer full, metadata): send again.
            Err(e) if e.is_retriable() => return Err(incomplete(e)),
            // Not queued for good (too large, producer closed): as the Java client
            // does, the transaction can no longer commit what the caller meant.
            Err(e) => {
                let error = Error::TransactionAbortable {
                    code: e.code(),
                    reason: format!("record not sent: {e}"),
                };
                self.state = TransactionState::AbortableError;
                self.last_error = Some(error.to_string());
                return Err(error);
            }
        };
        Ok(TxnDelivery { inner: delivery })
    }

    /// The partition count of `topic`, retrying retriable metadata errors until
    /// `max.block.ms` (a topic just created, a leader moving, a broker restarting).
    async fn partition_count(&self, topic: &str) -> Result<i32> {
        let client = self.producer.client().clone();
        let result = client
            .retry(
                "topic metadata",
                self.producer_config().max_block,
                || async {
                    let info = client.topic(topic).await?;
                    if info.partitions.is_empty() {
                        client.invalidate_topic(topic);
                        return Err(Error::broker(
                            ErrorCode::LeaderNotAvailable,
                            format!("topic {topic} has no partitions yet"),
                        ));
                    }
                    Ok(info.partitions.len() as i32)
                },
            )
            .await;
        // A refusal (TOPIC_AUTHORIZATION_FAILED) is no passing trouble: as it is.
        result.map_err(|e| {
            if e.is_authorization() {
                e
            } else {
                incomplete(e)
            }
        })
    }

    /// Adds partitions to the open transaction in one AddPartitionsToTxn, ahead of
    /// the records: `send` then skips the round trip per new partition. Partitions
    /// already added are skipped (with transaction version 2 nothing is sent).
    pub async fn add_partitions_to_transaction(
        &mut self,
        partitions: &[(String, i32)],
    ) -> Result<()> {
        self.transition(Operation::Send)?;
        let mut new: Vec<(String, i32)> = partitions
            .iter()
            .filter(|k| !self.partitions.contains(*k))
            .cloned()
            .collect();
        new.sort();
        new.dedup();
        if new.is_empty() {
            return Ok(());
        }
        if self.tv2 {
            self.partitions.extend(new);
            return Ok(());
        }
        self.add_partitions(&new).await
    }

    /// AddPartitionsToTxn for `keys` (v3: the last version for clients).
    async fn add_partitions(&mut self, keys: &[(String, i32)]) -> Result<()> {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in keys {
            topics.entry(t).or_default().push(*p);
        }
        let request = AddPartitionsToTxnRequest {
            v3_and_below_transactional_id: self.transactional_id.clone(),
            v3_and_below_producer_id: self.identity.producer_id,
            v3_and_below_producer_epoch: self.identity.producer_epoch,
            v3_and_below_topics: topics
                .into_iter()
                .map(|(name, partitions)| AddPartitionsToTxnTopic {
                    name: name.to_string(),
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let deadline = self.deadline();
        match self
            .coordinator
            .call(&request, Some(3), deadline, add_partitions_code)
            .await
        {
            Ok(_) => {
                self.partitions.extend(keys.iter().cloned());
                Ok(())
            }
            Err(e) => Err(self.fail("AddPartitionsToTxn", e)),
        }
    }

    /// Adds consumed offsets to the open transaction: they are committed for
    /// `group` exactly when the transaction commits (AddOffsetsToTxn, then
    /// TxnOffsetCommit to the group coordinator with the member's generation, KIP-447).
    ///
    /// `offsets` maps `(topic, partition)` to the next offset to consume.
    pub async fn send_offsets_to_transaction(
        &mut self,
        offsets: &BTreeMap<(String, i32), i64>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        if !self.add_offsets(offsets, group).await? {
            return Ok(());
        }
        match self.txn_offset_commit(offsets, group).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.offsets_refused(e)),
        }
    }

    /// The first half of [`TransactionalProducer::send_offsets_to_transaction`]:
    /// checks the state and adds the group to the transaction (AddOffsetsToTxn,
    /// before transactions v2). `false` when there are no offsets to send.
    pub(super) async fn add_offsets(
        &mut self,
        offsets: &BTreeMap<(String, i32), i64>,
        group: &ConsumerGroupMetadata,
    ) -> Result<bool> {
        self.transition(Operation::Send)?;
        if offsets.is_empty() {
            return Ok(false);
        }
        if !self.tv2 {
            // Version 2: TxnOffsetCommit v5 adds the group to the transaction itself.
            let add = AddOffsetsToTxnRequest {
                transactional_id: self.transactional_id.clone(),
                producer_id: self.identity.producer_id,
                producer_epoch: self.identity.producer_epoch,
                group_id: group.group_id.clone(),
                ..Default::default()
            };
            let deadline = self.deadline();
            if let Err(e) = self
                .coordinator
                .call(&add, None, deadline, |r| ErrorCode::from_code(r.error_code))
                .await
            {
                return Err(self.fail("AddOffsetsToTxn", e));
            }
        }
        self.offsets_added = true;
        Ok(true)
    }

    /// The second half: one TxnOffsetCommit under `group`'s generation and member
    /// id. An error leaves the transaction's state as it was: the offsets may be
    /// sent again (under a later generation), else the error goes through
    /// [`TransactionalProducer::offsets_refused`].
    pub(super) async fn txn_offset_commit(
        &mut self,
        offsets: &BTreeMap<(String, i32), i64>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let mut topics: BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            topics
                .entry(topic)
                .or_default()
                .push(TxnOffsetCommitRequestPartition {
                    partition_index: *partition,
                    committed_offset: *offset,
                    committed_leader_epoch: -1,
                    committed_metadata: Some(String::new()),
                    ..Default::default()
                });
        }
        let commit = TxnOffsetCommitRequest {
            transactional_id: self.transactional_id.clone(),
            group_id: group.group_id.clone(),
            producer_id: self.identity.producer_id,
            producer_epoch: self.identity.producer_epoch,
            generation_id: group.generation_id,
            member_id: group.member_id.clone(),
            group_instance_id: group.group_instance_id.clone(),
            topics: topics
                .into_iter()
                .map(|(name, partitions)| TxnOffsetCommitRequestTopic {
                    name: name.to_string(),
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let deadline = self.deadline();
        let client = self.producer.client().clone();
        let coordinator = self
            .group_coordinators
            .entry(group.group_id.clone())
            .or_insert_with(|| Coordinator::new(client, CoordinatorType::Group, &group.group_id));
        let max_version = (!self.tv2).then_some(LAST_TV1_TXN_OFFSET_COMMIT);
        coordinator
            .call(&commit, max_version, deadline, txn_offset_commit_code)
            .await
            .map(|_| ())
    }

    /// Applies a TxnOffsetCommit error that is not retried to the transaction's
    /// state (abortable, or fatal when fenced) and returns the error to report.
    pub(super) fn offsets_refused(&mut self, error: Error) -> Error {
        self.fail("TxnOffsetCommit", error)
    }

    /// Waits until every record of the transaction is acknowledged or failed.
    async fn drain_sends(&mut self) -> Result<()> {
        let config = self.producer_config();
        let limit = config.delivery_timeout + config.client.request_timeout;
        let drained = tokio::time::timeout(limit, self.producer.flush()).await;
        match drained {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(incomplete(e)),
            Err(_) => Err(incomplete(Error::Timeout {
                context: "waiting for the transaction's records".into(),
            })),
        }
    }

    /// Commits the open transaction: flushes its records, then EndTxn(commit).
    ///
    /// A record that failed makes the commit fail with
    /// [`Error::TransactionAbortable`] (call `abort`). When EndTxn's outcome is
    /// unknown the error is [`Error::TransactionIncomplete`] and the state stays
    /// Committing: call `commit` again (never `abort`).
    pub async fn commit(&mut self) -> Result<()> {
        self.transition(Operation::Commit)?;
        self.drain_sends().await?;
        if let Some(failed) = self.failures.get() {
            self.bump_epoch = true;
            let error = Error::TransactionAbortable {
                code: failed.code(),
                reason: format!("a record of the transaction failed: {failed}"),
            };
            self.state = TransactionState::AbortableError;
            self.last_error = Some(error.to_string());
            return Err(error);
        }
        self.end(true).await
    }

    /// Aborts the open transaction: waits for its in-flight records, then
    /// EndTxn(abort). Nothing it wrote becomes visible to read_committed consumers.
    ///
    /// After an abort, a consumer feeding this producer must seek back to its last
    /// committed offsets itself (KAFKA-17582).
    pub async fn abort(&mut self) -> Result<()> {
        self.transition(Operation::Abort)?;
        self.drain_sends().await?;
        if self.failures.get().is_some() {
            self.bump_epoch = true;
        }
        self.end(false).await
    }

    /// EndTxn with `commit`, retried as the same decision; Ready on success.
    async fn end(&mut self, commit: bool) -> Result<()> {
        if self.partitions.is_empty() && !self.sent_unkeyed && !self.offsets_added {
            // Nothing was added: the coordinator has no transaction to end (an
            // empty transaction commits trivially, FLINK-31363).
            self.finish();
            return Ok(());
        }
        let request = EndTxnRequest {
            transactional_id: self.transactional_id.clone(),
            producer_id: self.identity.producer_id,
            producer_epoch: self.identity.producer_epoch,
            committed: commit,
            ..Default::default()
        };
        let deadline = self.deadline();
        let what = if commit {
            "EndTxn(commit)"
        } else {
            "EndTxn(abort)"
        };
        let max_version = (!self.tv2).then_some(LAST_TV1_END_TXN);
        match self
            .coordinator
            .call(&request, max_version, deadline, |r| {
                ErrorCode::from_code(r.error_code)
            })
            .await
        {
            Ok(response) => {
                if self.tv2 && response.producer_id >= 0 {
                    // KIP-890: every transaction ends with an epoch bump, which also
                    // covers a sequence gap a failed record may have left.
                    self.identity = ProducerIdentity {
                        producer_id: response.producer_id,
                        producer_epoch: response.producer_epoch,
                    };
                    self.producer.set_transactional_identity(self.identity);
                    self.bump_epoch = false;
                }
                debug!(
                    transactional_id = self.transactional_id,
                    commit, "transaction ended"
                );
                self.finish();
                Ok(())
            }
            Err(e) => {
                let out = self.fail(what, e);
                if matches!(out, Error::TransactionAbortable { .. }) && !commit {
                    // An abort that the coordinator refuses for a non-fencing reason
                    // (INVALID_TXN_STATE) cannot be retried into success.
                    self.state = TransactionState::FatalError;
                    return Err(Error::TransactionFatal {
                        code: out.code(),
                        reason: out.to_string(),
                    });
                }
                if matches!(out, Error::TransactionAbortable { .. })
                    && out.code() == Some(ErrorCode::InvalidTxnState)
                {
                    // The coordinator no longer holds this transaction open for
                    // commit; it cannot be committed, and aborting is the way out.
                    self.state = TransactionState::AbortableError;
                }
                Err(out)
            }
        }
    }

    fn finish(&mut self) {
        self.state = TransactionState::Ready;
        self.partitions.clear();
        self.sent_unkeyed = false;
        self.offsets_added = false;
        self.started = None;
    }

    /// Aborts an open transaction (if any) and flushes, waiting at most `timeout`.
    pub async fn close(mut self, timeout: Duration) -> Result<()> {
        let result = tokio::time::timeout(timeout, async {
            match self.state {
                TransactionState::InTransaction
                | TransactionState::AbortableError
                | TransactionState::Aborting => self.abort().await,
                _ => Ok(()),
            }
        })
        .await;
        let _ = self.producer.close(Duration::from_millis(100)).await;
        match result {
            Ok(r) => r,
            Err(_) => Err(incomplete(Error::Timeout {
                context: "closing the transactional producer".into(),
            })),
        }
    }
}

/// The topics a transaction writes: each one's partition count and which of its
/// partitions are in the transaction. A record's topic is looked up by name
/// only when it differs from the previous record's (hashing the name per record
/// cost the exactly-once pass-through about 6% of its CPU).
#[derive(Debug, Default)]
struct TopicsInTransaction {
    entries: Vec<TopicEntry>,
    by_name: HashMap<String, usize>,
    last: usize,
}

#[derive(Debug)]
struct TopicEntry {
    name: String,
    partitions: i32,
    added: Vec<bool>,
    /// The partition for unkeyed records without one (transaction version 1).
    sticky: Option<i32>,
}

impl TopicsInTransaction {
    fn clear(&mut self) {
        self.entries.clear();
        self.by_name.clear();
        self.last = 0;
    }

    /// The index of `name`, if the transaction has written it.
    fn find(&mut self, name: &str) -> Option<usize> {
        if self.entries.get(self.last).is_some_and(|e| e.name == name) {
            return Some(self.last);
        }
        let i = *self.by_name.get(name)?;
        self.last = i;
        Some(i)
    }

    /// Adds `name` with `partitions` partitions, none in the transaction yet.
    fn insert(&mut self, name: &str, partitions: i32) -> usize {
        let i = self.entries.len();
        self.entries.push(TopicEntry {
            name: name.to_string(),
            partitions,
            added: vec![false; usize::try_from(partitions).unwrap_or(0)],
            sticky: None,
        });
        self.by_name.insert(name.to_string(), i);
        self.last = i;
        i
    }

    fn partitions(&self, topic: usize) -> i32 {
        self.entries.get(topic).map_or(0, |e| e.partitions)
    }

    /// The sticky partition of `topic` for this transaction, `first` if none yet.
    fn sticky(&mut self, topic: usize, first: i32) -> i32 {
        match self.entries.get_mut(topic) {
            Some(e) => *e.sticky.get_or_insert(first),
            None => first,
        }
    }

    /// Marks `partition` of `topic` as in the transaction; whether it was already.
    fn mark_added(&mut self, topic: usize, partition: i32) -> bool {
        let slot = self
            .entries
            .get_mut(topic)
            .and_then(|e| e.added.get_mut(usize::try_from(partition).ok()?));
        match slot {
            Some(slot) => std::mem::replace(slot, true),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_in_a_transaction_track_added_partitions_across_topic_switches() {
        let mut t = TopicsInTransaction::default();
        assert_eq!(t.find("a"), None);
        let a = t.insert("a", 3);
        let b = t.insert("b", 2);
        assert_eq!((t.partitions(a), t.partitions(b)), (3, 2));
        assert!(!t.mark_added(a, 1), "first record of a-1");
        assert!(t.mark_added(a, 1));
        assert_eq!(t.find("b"), Some(b));
        assert_eq!(t.find("a"), Some(a));
        assert!(t.mark_added(a, 1), "still added after switching topics");
        assert!(!t.mark_added(b, 1));
        assert!(!t.mark_added(b, 5), "out of range is never added");
        assert_eq!(t.sticky(a, 2), 2);
        assert_eq!(t.sticky(a, 0), 2, "the first choice sticks");
        assert_eq!(t.sticky(b, 1), 1, "per topic");
        t.clear();
        assert_eq!(t.find("a"), None);
    }
    use crate::protocol::messages::add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
    };
    use crate::protocol::messages::api_versions_response::ApiVersion;

    fn broker(versions: &[(ApiKey, i16)]) -> ApiVersionsResponse {
        ApiVersionsResponse {
            api_keys: versions
                .iter()
                .map(|&(api, max)| ApiVersion {
                    api_key: api.code(),
                    min_version: 0,
                    max_version: max,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn transaction_v2_needs_the_feature_and_every_version_2_request() {
        use ApiKey::{EndTxn, Produce, TxnOffsetCommit};
        let full = broker(&[(Produce, 13), (TxnOffsetCommit, 5), (EndTxn, 5)]);
        assert!(use_transaction_v2(2, &full));
        assert!(!use_transaction_v2(1, &full));
        assert!(!use_transaction_v2(0, &full));
        for missing in [
            broker(&[(Produce, 11), (TxnOffsetCommit, 5), (EndTxn, 5)]),
            broker(&[(Produce, 12), (TxnOffsetCommit, 4), (EndTxn, 5)]),
            broker(&[(Produce, 12), (TxnOffsetCommit, 5), (EndTxn, 4)]),
            broker(&[(Produce, 12), (TxnOffsetCommit, 5)]),
        ] {
            assert!(!use_transaction_v2(2, &missing));
        }
    }

    #[test]
    fn add_partitions_reports_the_first_partition_error() {
        let mut r = AddPartitionsToTxnResponse::default();
        assert_eq!(add_partitions_code(&r), ErrorCode::NoError);
        r.results_by_topic_v3_and_below = vec![AddPartitionsToTxnTopicResult {
            name: "t".into(),
            results_by_partition: vec![
                AddPartitionsToTxnPartitionResult {
                    partition_index: 0,
                    partition_error_code: 0,
                    ..Default::default()
                },
                AddPartitionsToTxnPartitionResult {
                    partition_index: 1,
                    partition_error_code: ErrorCode::ConcurrentTransactions.code(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }];
        assert_eq!(add_partitions_code(&r), ErrorCode::ConcurrentTransactions);
    }

    #[test]
    fn errors_say_whether_to_abort_or_give_up() {
        let abortable = Error::TransactionAbortable {
            code: Some(ErrorCode::TransactionAbortable),
            reason: "x".into(),
        };
        assert!(abortable.is_abortable() && !abortable.is_fatal());
        let fenced = Error::Fenced {
            transactional_id: "t".into(),
            code: ErrorCode::ProducerFenced,
            reason: "x".into(),
        };
        assert!(fenced.is_fatal() && !fenced.is_abortable());
        assert_eq!(fenced.code(), Some(ErrorCode::ProducerFenced));
    }
}

#[cfg(test)]
mod fake_broker_tests;

#[cfg(test)]
mod future_size {
    use super::*;
    use crate::client::producer::Producer;

    /// The size of the future `f` returns, without calling it.
    fn returned<'a, A: 'a, B, R>(_: fn(&'a mut A, B) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    fn returned_shared<'a, A: 'a, B, R>(_: fn(&'a A, B) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// Every record's send builds these futures and moves them: with the
    /// metadata and memory waits inline they were 3.4-3.9 KB, and copying them
    /// cost a tenth of an exactly-once pass-through's CPU.
    #[test]
    fn send_futures_stay_small() {
        let sizes = [
            ("Producer::send", returned_shared(Producer::send)),
            (
                "TransactionalProducer::hand_to_producer",
                returned(TransactionalProducer::hand_to_producer),
            ),
            (
                "TransactionalProducer::send",
                returned(TransactionalProducer::send),
            ),
        ];
        for (name, size) in sizes {
            assert!(size <= 1024, "{name}'s future is {size} bytes");
        }
    }
}
