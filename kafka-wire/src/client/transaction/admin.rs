//! Transaction administration: list and describe transactions, see which
//! producers hold a transaction open on a partition, and abort one (KIP-664).
//!
//! ```text
//!  list_transactions ──► ListTransactions to every broker (each lists what it coordinates)
//!  describe_transactions ──► FindCoordinator(key type 1) ──► DescribeTransactions
//!  open_transactions(topic, partition) ──► DescribeProducers to the leader
//!  abort_transaction(spec) ──► WriteTxnMarkers(ABORT) to the leader
//! ```
//!
//! A transaction "hangs" when a partition holds its records but no coordinator
//! will ever write its marker (a lost marker, a coordinator bug): the partition's
//! last stable offset stops there and every read_committed reader stalls.
//! `open_transactions` shows the producer and the offset where it started;
//! `abort_transaction` writes the abort marker the coordinator never wrote.
//! Aborting a transaction that a live coordinator still tracks is allowed but
//! leaves that producer to be fenced by its coordinator later; use it for
//! transactions the coordinator does not know (see `describe_transactions`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::coordinator::{Coordinator, CoordinatorType};
use crate::client::TopicPartition;
use crate::client::cluster::{Client, Lane};
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::ApiKey;
use crate::protocol::messages::describe_producers_request::TopicRequest;
use crate::protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use crate::protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest,
    WriteTxnMarkersRequest,
};

/// A transaction as a coordinator lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id.
    pub producer_id: i64,
    /// The coordinator's state name (`Ongoing`, `PrepareCommit`, `CompleteAbort`, `Empty`, ...).
    pub state: String,
    /// The node id of the broker that coordinates it (the one that listed it).
    pub coordinator_id: i32,
}

/// A transaction as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// The coordinator's state name.
    pub state: String,
    /// `transaction.timeout.ms` of the producer.
    pub timeout_ms: i32,
    /// When the open transaction started (ms since the epoch; -1 when none is open).
    pub start_time_ms: i64,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// Partitions in the open transaction.
    pub partitions: Vec<TopicPartition>,
    /// The node id of its coordinator (-1 when its address is not in the metadata).
    pub coordinator_id: i32,
}

/// A producer with state on a partition (DescribeProducers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i32,
    /// The last sequence number written.
    pub last_sequence: i32,
    /// The timestamp of the last write (ms since the epoch).
    pub last_timestamp: i64,
    /// The epoch of the coordinator that wrote the producer's last marker.
    pub coordinator_epoch: i32,
    /// Where its open transaction starts in the partition (-1: none open).
    pub current_txn_start_offset: i64,
}

/// What [`TransactionAdmin::abort_transaction`] aborts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortTransactionSpec {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The producer id holding the transaction open.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
    /// The coordinator epoch to write the marker with (from [`ProducerState`]).
    pub coordinator_epoch: i32,
}

/// Transaction administration over a client; see the module doc.
#[derive(Debug, Clone)]
pub struct TransactionAdmin {
    client: Client,
}

impl TransactionAdmin {
    /// An admin over `client`.
    pub fn new(client: Client) -> Self {
        TransactionAdmin { client }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.client.config().request_timeout
    }

    /// Lists transactions on every broker, optionally only those in `states`
    /// (e.g. `["Ongoing"]`) and running longer than `min_duration`.
    pub async fn list_transactions(
        &self,
        states: &[&str],
        min_duration: Option<Duration>,
    ) -> Result<Vec<TransactionListing>> {
        self.client.refresh_metadata(&[]).await?;
        let mut nodes: Vec<i32> = self.client.metadata().brokers.keys().copied().collect();
        nodes.sort_unstable();
        let mut out = Vec::new();
        for node in nodes {
            let conn = self.client.connection(node, Lane::Control).await?;
            let version = conn.version_for::<ListTransactionsRequest>()?;
            let request = ListTransactionsRequest {
                state_filters: states.iter().map(|s| s.to_string()).collect(),
                producer_id_filters: Vec::new(),
                duration_filter: match (min_duration, version) {
                    (Some(d), v) if v >= 1 => d.as_millis().min(i64::MAX as u128) as i64,
                    _ => -1,
                },
                ..Default::default()
            };
            let response = conn.call_version(&request, version).await?;
            ErrorCode::from_code(response.error_code)
                .into_result()
                .map_err(|code| {
                    Error::broker(code, format!("ListTransactions on node {node}"))
                        .with_api(ApiKey::ListTransactions)
                        .with_node(node)
                })?;
            out.extend(
                response
                    .transaction_states
                    .into_iter()
                    .map(|t| TransactionListing {
                        transactional_id: t.transactional_id,
                        producer_id: t.producer_id,
                        state: t.transaction_state,
                        coordinator_id: node,
                    }),
            );
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// Describes transactional ids through their coordinators. Unknown ids fail
    /// with TRANSACTIONAL_ID_NOT_FOUND.
    pub async fn describe_transactions(
        &self,
        ids: &[&str],
    ) -> Result<BTreeMap<String, TransactionDescription>> {
        let mut out = BTreeMap::new();
        for id in ids {
            let mut coordinator =
                Coordinator::new(self.client.clone(), CoordinatorType::Transaction, *id);
            let request = DescribeTransactionsRequest {
                transactional_ids: vec![id.to_string()],
                ..Default::default()
            };
            let response = coordinator
                .call(&request, None, self.deadline(), |r| {
                    ErrorCode::first_error(r.transaction_states.iter().map(|t| t.error_code))
                })
                .await?;
            let address = coordinator.connection().await?.broker().to_string();
            let coordinator_id = self
                .client
                .metadata()
                .brokers
                .values()
                .find(|b| b.address() == address)
                .map_or(-1, |b| b.node_id);
            for t in response.transaction_states {
                let partitions = t
                    .topics
                    .iter()
                    .flat_map(|topic| {
                        topic
                            .partitions
                            .iter()
                            .map(move |p| (topic.topic.clone(), *p))
                    })
                    .collect();
                out.insert(
                    t.transactional_id.clone(),
                    TransactionDescription {
                        transactional_id: t.transactional_id,
                        state: t.transaction_state,
                        timeout_ms: t.transaction_timeout_ms,
                        start_time_ms: t.transaction_start_time_ms,
                        producer_id: t.producer_id,
                        producer_epoch: t.producer_epoch,
                        partitions,
                        coordinator_id,
                    },
                );
            }
        }
        Ok(out)
    }

    /// The producers with state on a partition (DescribeProducers to its leader).
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerState>> {
        let (leader, _) = self.client.leader(topic, partition).await?;
        let conn = self.client.connection(leader, Lane::Control).await?;
        let request = DescribeProducersRequest {
            topics: vec![TopicRequest {
                name: topic.to_string(),
                partition_indexes: vec![partition],
                ..Default::default()
            }],
            ..Default::default()
        };
        let response = conn.call(&request).await?;
        let p = response
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                Error::broker(
                    ErrorCode::UnknownServerError,
                    format!("DescribeProducers: no answer for {topic}-{partition}"),
                )
                .with_api(ApiKey::DescribeProducers)
                .with_partition(topic, partition)
            })?;
        ErrorCode::from_code(p.error_code)
            .into_result()
            .map_err(|code| {
                Error::broker(code, format!("DescribeProducers {topic}-{partition}"))
                    .with_api(ApiKey::DescribeProducers)
                    .with_partition(topic, partition)
            })?;
        Ok(p.active_producers
            .into_iter()
            .map(|s| ProducerState {
                producer_id: s.producer_id,
                producer_epoch: s.producer_epoch,
                last_sequence: s.last_sequence,
                last_timestamp: s.last_timestamp,
                coordinator_epoch: s.coordinator_epoch,
                current_txn_start_offset: s.current_txn_start_offset,
            })
            .collect())
    }

    /// Producers holding a transaction open on a partition (those that keep its
    /// last stable offset back), oldest first.
    pub async fn open_transactions(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerState>> {
        let mut open: Vec<ProducerState> = self
            .describe_producers(topic, partition)
            .await?
            .into_iter()
            .filter(|p| p.current_txn_start_offset >= 0)
            .collect();
        open.sort_by_key(|p| p.current_txn_start_offset);
        Ok(open)
    }

    /// Writes an abort marker for `spec`'s transaction on its partition
    /// (WriteTxnMarkers to the leader), ending a hanging transaction.
    pub async fn abort_transaction(&self, spec: &AbortTransactionSpec) -> Result<()> {
        let (leader, _) = self.client.leader(&spec.topic, spec.partition).await?;
        let conn = self.client.connection(leader, Lane::Control).await?;
        let request = WriteTxnMarkersRequest {
            markers: vec![WritableTxnMarker {
                producer_id: spec.producer_id,
                producer_epoch: spec.producer_epoch,
                transaction_result: false,
                topics: vec![WritableTxnMarkerTopic {
                    name: spec.topic.clone(),
                    partition_indexes: vec![spec.partition],
                    ..Default::default()
                }],
                coordinator_epoch: spec.coordinator_epoch,
                ..Default::default()
            }],
            ..Default::default()
        };
        let response = conn.call(&request).await?;
        let code = ErrorCode::first_error(
            response
                .markers
                .iter()
                .flat_map(|m| &m.topics)
                .flat_map(|t| &t.partitions)
                .map(|p| p.error_code),
        );
        code.into_result().map_err(|code| {
            Error::broker(
                code,
                format!(
                    "WriteTxnMarkers(abort) for producer {} on {}-{}",
                    spec.producer_id, spec.topic, spec.partition
                ),
            )
            .with_api(ApiKey::WriteTxnMarkers)
            .with_partition(spec.topic.as_str(), spec.partition)
        })
    }
}
