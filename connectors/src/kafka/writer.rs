//! The process's one producer, shared by its Kafka sinks, its changelogs and its
//! dead letters, and the commit of a checkpoint through it.
//!
//! | mode | sinks write | a checkpoint commits |
//! |---|---|---|
//! | exactly-once | into the open transaction; after barrier n a sink waits until checkpoint n committed | changelog and dead letters into the transaction, then its offsets (TxnOffsetCommit under the member's generation), then EndTxn |
//! | at-least-once | with the idempotent producer | sinks flushed at the barrier; changelog and dead letters flushed; then the offsets (OffsetCommit; refused while the member's join completes, sent again after it for the partitions it kept) |

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use engine::{CheckpointId, EngineError, ErrorClass};
use kafka_wire::client::group::GroupHandle;
use kafka_wire::client::group::assignor::TopicPartition;
use kafka_wire::client::producer::{DeliveryFuture, RecordMetadata};
use kafka_wire::client::transaction::TxnDelivery;
use kafka_wire::client::transaction::session::{EndOutcome, EndPolicy, TransactSession};
use kafka_wire::client::{Producer, ProducerRecord};
use tokio::sync::watch;

use crate::error::engine_error;

/// How long an at-least-once commit refused during a rebalance waits for the
/// member's join to complete, in all.
const JOIN_WAIT: Duration = Duration::from_secs(10);

/// The outcome of one record sent through the [`Writer`].
pub(crate) enum Delivery {
    Transactional(TxnDelivery),
    Idempotent(DeliveryFuture),
}

impl Future for Delivery {
    type Output = kafka_wire::Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Delivery::Transactional(d) => Pin::new(d).poll(cx),
            Delivery::Idempotent(d) => Pin::new(d).poll(cx),
        }
    }
}

enum Kind {
    Transactional(Box<tokio::sync::Mutex<TransactSession>>),
    Idempotent(Producer),
}

/// The producer of one process (see the module doc).
pub(crate) struct Writer {
    kind: Kind,
    group: Option<GroupHandle>,
    /// The newest checkpoint whose transaction committed.
    committed: watch::Sender<u64>,
}

impl Writer {
    /// Exactly-once: every checkpoint is one transaction of `session`.
    pub(crate) fn transactional(session: TransactSession, restored: CheckpointId) -> Writer {
        let group = session.group().cloned();
        Writer {
            kind: Kind::Transactional(Box::new(tokio::sync::Mutex::new(session))),
            group,
            committed: watch::Sender::new(restored.0),
        }
    }

    /// At-least-once with an idempotent producer; offsets committed for `group`.
    pub(crate) fn idempotent(producer: Producer, group: Option<GroupHandle>) -> Writer {
        Writer {
            kind: Kind::Idempotent(producer),
            group,
            committed: watch::Sender::new(0),
        }
    }

    pub(crate) fn exactly_once(&self) -> bool {
        matches!(self.kind, Kind::Transactional(_))
    }

    /// Whether checkpoint `checkpoint` committed (always, when not exactly-once).
    pub(crate) fn is_committed(&self, checkpoint: CheckpointId) -> bool {
        !self.exactly_once() || *self.committed.borrow() >= checkpoint.0
    }

    /// Waits until checkpoint `checkpoint` committed (exactly-once; at once otherwise).
    pub(crate) async fn wait_committed(&self, checkpoint: CheckpointId) {
        if !self.exactly_once() {
            return;
        }
        let mut rx = self.committed.subscribe();
        // The sender lives as long as `self`: the wait ends with a commit.
        let _ = rx.wait_for(|c| *c >= checkpoint.0).await;
    }

    /// Sends `records`, in order.
    pub(crate) async fn send_all(
        &self,
        records: Vec<ProducerRecord>,
    ) -> kafka_wire::Result<Vec<Delivery>> {
        let mut out = Vec::with_capacity(records.len());
        match &self.kind {
            Kind::Transactional(session) => {
                let mut s = session.lock().await;
                for r in records {
                    out.push(Delivery::Transactional(s.send(r).await?));
                }
            }
            Kind::Idempotent(p) => {
                for r in records {
                    out.push(Delivery::Idempotent(p.send(r).await?));
                }
            }
        }
        Ok(out)
    }

    /// Commits checkpoint `checkpoint`: `records` (changelog, dead letters) and
    /// the input `offsets`, as the module doc's table says. An exactly-once
    /// transaction that aborted is a rollback-class error.
    pub(crate) async fn commit(
        &self,
        checkpoint: CheckpointId,
        records: Vec<ProducerRecord>,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> engine::Result<()> {
        let started = Instant::now();
        let sent = self
            .send_all(records)
            .await
            .map_err(|e| engine_error(format!("checkpoint {checkpoint}: writing state"), e))?;
        match &self.kind {
            Kind::Transactional(session) => {
                let mut s = session.lock().await;
                let outcome = s
                    .end(offsets, EndPolicy::CommitWhileMember)
                    .await
                    .map_err(|e| engine_error(format!("checkpoint {checkpoint}: commit"), e))?;
                drop(s);
                for d in sent {
                    // Their transaction committed: each delivery succeeded.
                    let _ = d.await;
                }
                match outcome {
                    EndOutcome::Committed => {
                        metrics::counter!("strom_kafka_transactions_committed_total").increment(1);
                    }
                    EndOutcome::Aborted { reason } => {
                        metrics::counter!("strom_kafka_transactions_aborted_total").increment(1);
                        return Err(EngineError::external(
                            format!("checkpoint {checkpoint}: the transaction aborted"),
                            std::io::Error::other(reason.to_string()),
                            ErrorClass::Rollback,
                        ));
                    }
                }
            }
            Kind::Idempotent(p) => {
                for d in sent {
                    d.await.map_err(|e| {
                        engine_error(format!("checkpoint {checkpoint}: writing state"), e)
                    })?;
                }
                p.flush().await.map_err(|e| {
                    engine_error(format!("checkpoint {checkpoint}: flushing the producer"), e)
                })?;
                if let (Some(group), false) = (&self.group, offsets.is_empty()) {
                    let committed = group
                        .commit_offsets_through_rebalance(offsets, JOIN_WAIT)
                        .await;
                    committed.map_err(|e| {
                        engine_error(format!("checkpoint {checkpoint}: committing offsets"), e)
                    })?;
                }
            }
        }
        self.committed.send_replace(checkpoint.0);
        metrics::histogram!("strom_checkpoint_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Aborts the open transaction (exactly-once); nothing to do otherwise. Fails
    /// when the producer is in its fatal state, so that the caller replaces it.
    pub(crate) async fn abort(&self) -> kafka_wire::Result<()> {
        use kafka_wire::client::transaction::TransactionState as S;
        if let Kind::Transactional(session) = &self.kind {
            let mut s = session.lock().await;
            match s.state() {
                S::InTransaction | S::AbortableError => s.abort().await?,
                // Fenced (by a successor, or by the coordinator aborting a
                // transaction open past transaction.timeout.ms): this producer
                // can do nothing more; the caller replaces it.
                S::FatalError => {
                    return Err(kafka_wire::Error::TransactionFatal {
                        code: None,
                        reason: "the transactional producer failed earlier; it must be replaced"
                            .into(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Closes the producer (flushing an idempotent one).
    pub(crate) async fn close(self, timeout: std::time::Duration) -> kafka_wire::Result<()> {
        match self.kind {
            Kind::Transactional(session) => session.into_inner().close(timeout).await,
            Kind::Idempotent(p) => p.close(timeout).await,
        }
    }

    /// The newest checkpoint committed through this writer (or set after a restore).
    pub(crate) fn last_committed(&self) -> u64 {
        *self.committed.borrow()
    }

    /// Moves the committed mark to `checkpoint` (after a restore).
    pub(crate) fn set_committed(&self, checkpoint: CheckpointId) {
        self.committed.send_replace(checkpoint.0);
    }
}
