//! The exactly-once loop as a type: a [`TransactSession`] owns a
//! [`TransactionalProducer`] and, optionally, a [`GroupHandle`] on the consumer
//! group member whose input offsets the transactions commit (KIP-447). The
//! consumer may poll in another task; the session needs only the handle.
//!
//! ```text
//!  consumer (this task or another)          TransactSession
//!  records = poll_for(..)  ───────────────► begin()          local; notes the member's generation
//!                                           send(record)*    begins if needed
//!  offsets = positions()   ───────────────► end(&offsets, policy)
//!                                             1. offsets ──► AddOffsetsToTxn + TxnOffsetCommit
//!                                                            (under the generation noted at begin)
//!                                             2. policy  ──► AbortOnRebalance:  heartbeat_now
//!                                                            CommitWhileMember: check_membership
//!                                                            Abort:             abort on purpose
//!                                             3. commit  ──► EndTxn(commit)
//!  Aborted? seek_to_committed() ◄───────── Ok(Committed) | Ok(Aborted { reason }) | Err(fatal)
//! ```
//!
//! What [`TransactSession::end`] does with each failure:
//!
//! | step | error | outcome |
//! |---|---|---|
//! | offsets | ILLEGAL_GENERATION while the member's join completes, partitions owned throughout | sent again under the new generation |
//! | offsets | abortable, or outcome unknown | `abort`, `Aborted(Offsets)` |
//! | membership check | any failure, or a generation other than the offsets' | `abort`, `Aborted(Membership)` |
//! | commit | outcome unknown ([`Error::TransactionIncomplete`]) | commit again, at most 5 attempts within `transaction.timeout.ms`; then `Err` (state Committing: `end` again resumes the commit, never an abort) |
//! | commit | abortable (a record failed, INVALID_TXN_STATE) | `abort`, `Aborted(Commit)` |
//! | any | fatal ([`Error::is_fatal`]: fenced, not authorized) | `Err`: drop the session |
//! | abort | outcome unknown | `Err` (state Aborting: call `abort` again) |
//!
//! After `Aborted` the consumer must rewind to the committed offsets itself
//! ([`GroupConsumer::seek_to_committed`]): nothing rewinds it (KAFKA-17582).
//!
//! ```no_run
//! # async fn copy(
//! #     mut consumer: kafka_wire::client::group::GroupConsumer,
//! #     producer: kafka_wire::client::transaction::TransactionalProducer,
//! # ) -> kafka_wire::Result<()> {
//! use std::time::Duration;
//! use kafka_wire::client::ProducerRecord;
//! use kafka_wire::client::transaction::{EndOutcome, EndPolicy, TransactSession};
//!
//! let mut session = TransactSession::new(producer, Some(consumer.handle()));
//! loop {
//!     let records = consumer.poll_for(Duration::from_millis(200)).await?;
//!     if records.is_empty() {
//!         continue;
//!     }
//!     session.begin().await?;
//!     for r in &records {
//!         let value = r.value.clone().unwrap_or_default();
//!         session.send(ProducerRecord::new("output", value)).await?;
//!     }
//!     match session.end(&consumer.positions(), EndPolicy::AbortOnRebalance).await? {
//!         EndOutcome::Committed => {}
//!         EndOutcome::Aborted { .. } => consumer.seek_to_committed().await?,
//!     }
//! }
//! # }
//! ```
//!
//! ## Two tasks
//!
//! The session notes the member's identity (generation or KIP-848 member epoch,
//! member id) when it begins a transaction and sends the offsets under it, so a
//! consumer task that rebalanced meanwhile makes TxnOffsetCommit fail
//! (ILLEGAL_GENERATION, a stale epoch) and the transaction abort, instead of
//! committing offsets of partitions that moved under the new generation. The
//! membership check then also requires the member to still be in that generation.
//!
//! One exception: a member can move to a later generation (or KIP-848 member
//! epoch) and keep its partitions: a KIP-848 member whose epoch moves when it
//! only gains partitions, a classic member with a cooperative assignor through a
//! rebalance. The coordinator takes offsets only under the current one. When the
//! member has owned every partition of the offsets without a break since the
//! generation the transaction began under ([`GroupHandle::owned_throughout`]),
//! no other member can have read them meanwhile, so the offsets go under the
//! current generation and the transaction commits instead of aborting.
//!
//! The same holds in a race a classic member's join cannot avoid: the
//! coordinator moves to the next generation when the last member has joined,
//! while this member has yet to read the answer to its own JoinGroup. Offsets
//! sent in between come back ILLEGAL_GENERATION. The session then waits for the
//! join in flight ([`GroupHandle::generation_after`]) and, when the partitions
//! were owned throughout, sends them again under the new generation (counted in
//! `kafka_transaction_offsets_resent_total`).
//!
//! What the session cannot see: records polled under one generation and handed
//! over after the next transaction began. The consumer task should end the open
//! transaction (or drop such records) when it reports partitions `Revoked` or `Lost`.
//!
//! ## Metrics
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `kafka_transactions_committed_total` | counter | |
//! | `kafka_transactions_aborted_total` | counter | `reason`: `requested`, `offsets`, `membership`, `commit` |
//! | `kafka_transaction_commit_retries_total` | counter | |
//! | `kafka_transaction_offsets_resent_total` | counter | |
//!
//! [`GroupConsumer::seek_to_committed`]: crate::client::group::GroupConsumer::seek_to_committed

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{
    ConsumerGroupMetadata, Operation, TransactionState, TransactionalProducer, TxnDelivery,
};
use crate::client::TopicPartition;
use crate::client::group::GroupHandle;
use crate::client::producer::ProducerRecord;
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;

/// How many times [`TransactSession::end`] sends a commit whose outcome stays
/// unknown before it gives up (each attempt retries within `max.block.ms` itself).
pub(super) const MAX_COMMIT_ATTEMPTS: u32 = 5;

/// How many times [`TransactSession::end`] sends offsets again under a later
/// generation of the same member (see [`send_offsets`]).
const MAX_OFFSET_RESENDS: u32 = 2;

/// How long offsets refused for a generation wait for the member's join in
/// flight to bring the next one (the coordinator has answered it already).
const JOIN_WAIT: Duration = Duration::from_secs(5);

/// What [`TransactSession::end`] checks of the group member before it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndPolicy {
    /// Abort when any rebalance is pending or the membership ended
    /// ([`GroupHandle::heartbeat_now`]): the strict choice, as the Java client's
    /// KIP-447 examples do.
    AbortOnRebalance,
    /// Commit while this member still belongs to the generation (or member epoch)
    /// the offsets were sent under, even with a rebalance pending
    /// ([`GroupHandle::check_membership`], whose doc says why that is safe): fewer
    /// transactions redone around rebalances.
    CommitWhileMember,
    /// Abort on purpose (after sending the offsets, so the abort covers them as a
    /// forced one would). To abort without sending offsets, call
    /// [`TransactSession::abort`].
    Abort,
}

/// Why [`TransactSession::end`] aborted the transaction.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AbortReason {
    /// [`EndPolicy::Abort`].
    Requested,
    /// The offsets were refused (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, a stale
    /// member epoch: KIP-447 fencing), or their outcome is unknown.
    Offsets(Error),
    /// The membership check of the [`EndPolicy`] failed.
    Membership(Error),
    /// The transaction could not commit: a record failed, the coordinator refused
    /// EndTxn, or an earlier step had already made the transaction abortable.
    Commit(Error),
}

impl AbortReason {
    /// The error behind the abort (none for [`AbortReason::Requested`]).
    pub fn error(&self) -> Option<&Error> {
        match self {
            AbortReason::Requested => None,
            AbortReason::Offsets(e) | AbortReason::Membership(e) | AbortReason::Commit(e) => {
                Some(e)
            }
        }
    }

    /// The metrics label.
    fn label(&self) -> &'static str {
        match self {
            AbortReason::Requested => "requested",
            AbortReason::Offsets(_) => "offsets",
            AbortReason::Membership(_) => "membership",
            AbortReason::Commit(_) => "commit",
        }
    }
}

impl std::fmt::Display for AbortReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbortReason::Requested => f.write_str("aborted on request"),
            AbortReason::Offsets(e) => write!(f, "offsets refused: {e}"),
            AbortReason::Membership(e) => write!(f, "membership check failed: {e}"),
            AbortReason::Commit(e) => write!(f, "commit refused: {e}"),
        }
    }
}

/// How a transaction ended; see [`TransactSession::end`].
#[derive(Debug, Clone)]
#[must_use = "an aborted transaction's input must be consumed again (seek_to_committed)"]
pub enum EndOutcome {
    /// Committed: its records and offsets are visible.
    Committed,
    /// Aborted: nothing of it becomes visible; rewind the consumer.
    Aborted {
        /// Why.
        reason: AbortReason,
    },
}

/// A transactional producer and the group member whose offsets its transactions
/// carry; see the module doc.
#[derive(Debug)]
pub struct TransactSession {
    producer: TransactionalProducer,
    group: Option<GroupHandle>,
    /// The member's identity when this session began the open transaction.
    begun_as: Option<ConsumerGroupMetadata>,
    /// When this session began the open transaction.
    begun_at: Option<Instant>,
}

/// Fails unless the member is still in the generation (or member epoch) and
/// member id the offsets were sent under, or (`kept`) a later one of the same
/// member that has held the offsets' partitions without a break since then.
fn same_member(
    sent: &ConsumerGroupMetadata,
    now: &ConsumerGroupMetadata,
    kept: impl FnOnce() -> bool,
) -> Result<()> {
    if sent.member_id == now.member_id
        && (sent.generation_id == now.generation_id
            || (now.generation_id > sent.generation_id && kept()))
    {
        return Ok(());
    }
    Err(Error::broker(
        ErrorCode::IllegalGeneration,
        format!(
            "group {}: the offsets were sent under generation {} (member {:?}); the member is now in generation {} (member {:?})",
            sent.group_id, sent.generation_id, sent.member_id, now.generation_id, now.member_id
        ),
    ))
}

/// Sends `offsets` under `member` with TxnOffsetCommit. When the coordinator
/// answers ILLEGAL_GENERATION while this member's join is in flight, waits for
/// the join's generation and sends them again under it, provided the member
/// id is the same and `still_owned` holds then (at most [`MAX_OFFSET_RESENDS`] times). Returns the
/// identity the coordinator accepted them under; an error is the last refusal,
/// not yet applied to the transaction's state.
async fn send_offsets(
    producer: &mut TransactionalProducer,
    group: &GroupHandle,
    offsets: &BTreeMap<TopicPartition, i64>,
    mut member: ConsumerGroupMetadata,
    still_owned: impl Fn() -> bool,
) -> Result<ConsumerGroupMetadata> {
    let mut resends = 0;
    loop {
        let error = match producer.txn_offset_commit(offsets, &member).await {
            Ok(()) => return Ok(member),
            Err(e) => e,
        };
        let stale = error
            .code()
            .is_some_and(ErrorCode::is_stale_member_identity);
        if !stale || resends >= MAX_OFFSET_RESENDS {
            return Err(error);
        }
        let wait = producer.producer_config().max_block.min(JOIN_WAIT);
        match group.generation_after(member.generation_id, wait).await {
            Some(next) if next.member_id == member.member_id && still_owned() => {
                debug!(
                    group = next.group_id,
                    from = member.generation_id,
                    to = next.generation_id,
                    "offsets refused while this member's join completed; sent again under the new generation"
                );
                metrics::counter!("kafka_transaction_offsets_resent_total").increment(1);
                member = next;
                resends += 1;
            }
            _ => return Err(error),
        }
    }
}

impl TransactSession {
    /// A session over `producer` (initialized, with no transaction open). With
    /// `group`, [`TransactSession::end`] commits offsets for that member's group;
    /// without, the session only produces (its input positions are kept elsewhere).
    pub fn new(producer: TransactionalProducer, group: Option<GroupHandle>) -> Self {
        TransactSession {
            producer,
            group,
            begun_as: None,
            begun_at: None,
        }
    }

    /// The group member, if any.
    pub fn group(&self) -> Option<&GroupHandle> {
        self.group.as_ref()
    }

    /// The producer's transaction state.
    pub fn state(&self) -> TransactionState {
        self.producer.state()
    }

    /// The producer underneath (its identity, `add_partitions_to_transaction`,
    /// ...). A transaction begun or ended through it directly bypasses the
    /// session: `end` then sends offsets under the member's current identity.
    pub fn producer(&mut self) -> &mut TransactionalProducer {
        &mut self.producer
    }

    /// Begins a transaction, unless one is open already; notes the member's
    /// identity for the offsets (see the module doc). Local: nothing is sent until
    /// the first record or the offsets. After a fatal error it fails with
    /// [`Error::TransactionFatal`].
    pub async fn begin(&mut self) -> Result<()> {
        match self.producer.state() {
            TransactionState::InTransaction => return Ok(()),
            TransactionState::FatalError => return Err(self.fatal()),
            _ => {}
        }
        self.producer.begin().await?;
        self.begun_at = Some(Instant::now());
        self.begun_as = self.group.as_ref().map(GroupHandle::group_metadata);
        Ok(())
    }

    /// Sends a record in the open transaction, beginning one if needed. Errors are
    /// the producer's: an abortable one makes `end` abort.
    pub async fn send(&mut self, record: ProducerRecord) -> Result<TxnDelivery> {
        self.begin().await?;
        self.producer.send(record).await
    }

    /// Ends the open transaction (beginning one if none is open, so an empty
    /// transaction commits too): sends `offsets` (next offset to consume per
    /// partition) for the group, if any; checks the member per `policy` (when
    /// offsets were sent: without them the transaction carries nothing of the
    /// group's); commits. See the module doc for what each failure leads to.
    ///
    /// `Ok(Aborted)` means aborted as a whole, so the consumer must rewind; `Err`
    /// is either fatal ([`Error::is_fatal`]: drop the session) or an unknown
    /// outcome ([`Error::TransactionIncomplete`]): call `end` again, which resumes
    /// a commit (Committing) or retries an abort (Aborting).
    ///
    /// Offsets without a group are refused with [`Error::InvalidTransactionState`]
    /// before anything is sent; the transaction stays open.
    #[tracing::instrument(level = "debug", skip_all, fields(transactional_id = self.producer.transactional_id(), offsets = offsets.len(), ?policy))]
    pub async fn end(
        &mut self,
        offsets: &BTreeMap<TopicPartition, i64>,
        policy: EndPolicy,
    ) -> Result<EndOutcome> {
        match self.producer.state() {
            // An earlier end() left the commit's outcome unknown: the same decision.
            TransactionState::Committing => return self.commit().await,
            TransactionState::FatalError => return Err(self.fatal()),
            TransactionState::AbortableError | TransactionState::Aborting => {
                let error = Error::TransactionAbortable {
                    code: None,
                    reason: self
                        .producer
                        .last_error()
                        .unwrap_or("an earlier step of the transaction failed")
                        .to_string(),
                };
                return self.abort_for(AbortReason::Commit(error)).await;
            }
            _ => {}
        }
        if !offsets.is_empty() && self.group.is_none() {
            return Err(Error::InvalidTransactionState {
                operation: Operation::Send,
                state: self.producer.state(),
                hint: ": offsets need a group member; create the session with a GroupHandle",
            });
        }
        self.begin().await?;

        let mut sent_under = None;
        if let (Some(group), false) = (&self.group, offsets.is_empty()) {
            let now = group.group_metadata();
            let member = match self.begun_as.clone() {
                Some(begun)
                    if begun.member_id == now.member_id
                        && begun.generation_id >= 0
                        && now.generation_id > begun.generation_id
                        && group.owned_throughout(
                            &offsets.keys().cloned().collect::<Vec<_>>(),
                            begun.generation_id,
                        ) =>
                {
                    debug!(
                        group = now.group_id,
                        from = begun.generation_id,
                        to = now.generation_id,
                        "the member epoch moved on while the partitions stayed: offsets under the current epoch"
                    );
                    now
                }
                Some(begun) => begun,
                None => now,
            };
            if member.generation_id < 0 {
                // Offsets without a generation would not be fenced (KIP-447 checks
                // nothing then); the member was not in the group when it began.
                let error = Error::broker(
                    ErrorCode::UnknownMemberId,
                    format!(
                        "group {}: the member held no generation when the transaction began",
                        member.group_id
                    ),
                );
                let reason = match policy {
                    EndPolicy::Abort => AbortReason::Requested,
                    _ => AbortReason::Membership(error),
                };
                return self.abort_for(reason).await;
            }
            // The generation the offsets' records were read under, at the latest
            // (`member` is `begun_as` or, for the same member, a later generation).
            let read_under = match &self.begun_as {
                Some(begun) if begun.member_id == member.member_id => begun.generation_id,
                _ => member.generation_id,
            };
            let partitions: Vec<TopicPartition> = offsets.keys().cloned().collect();
            let sent = match self.producer.add_offsets(offsets, &member).await {
                Ok(_) => send_offsets(&mut self.producer, group, offsets, member, || {
                    group.owned_throughout(&partitions, read_under)
                })
                .await
                .map_err(|e| self.producer.offsets_refused(e)),
                Err(e) => Err(e),
            };
            match sent {
                Ok(member) => sent_under = Some(member),
                Err(e) if e.is_fatal() => return Err(e),
                // Refused, or unknown (the transaction is still open): abort covers both.
                Err(e) => return self.abort_for(AbortReason::Offsets(e)).await,
            }
        }

        if policy == EndPolicy::Abort {
            return self.abort_for(AbortReason::Requested).await;
        }
        if let (Some(group), Some(sent)) = (&self.group, &sent_under) {
            let checked = match policy {
                EndPolicy::AbortOnRebalance => group.heartbeat_now().await,
                _ => group.check_membership().await,
            };
            let partitions: Vec<TopicPartition> = offsets.keys().cloned().collect();
            let kept = || group.owned_throughout(&partitions, sent.generation_id);
            if let Err(e) = checked.and_then(|()| same_member(sent, &group.group_metadata(), kept))
            {
                return self.abort_for(AbortReason::Membership(e)).await;
            }
        }
        self.commit().await
    }

    /// Commits, sending the same decision again while its outcome is unknown (at
    /// most [`MAX_COMMIT_ATTEMPTS`] times, within the transaction timeout): never
    /// an abort once a commit may have reached the coordinator.
    async fn commit(&mut self) -> Result<EndOutcome> {
        let deadline =
            self.begun_at.unwrap_or_else(Instant::now) + self.producer.transaction_timeout();
        let backoff = self.producer.producer_config().client.retry_backoff;
        let mut attempt = 1;
        loop {
            match self.producer.commit().await {
                Ok(()) => {
                    metrics::counter!("kafka_transactions_committed_total").increment(1);
                    debug!(
                        transactional_id = self.producer.transactional_id(),
                        attempt, "transaction committed"
                    );
                    self.finish();
                    return Ok(EndOutcome::Committed);
                }
                Err(e @ Error::TransactionIncomplete { .. }) => {
                    if attempt >= MAX_COMMIT_ATTEMPTS || Instant::now() >= deadline {
                        warn!(
                            transactional_id = self.producer.transactional_id(),
                            attempt,
                            error = %e,
                            "commit outcome still unknown; giving up for now (end() resumes it)"
                        );
                        return Err(e);
                    }
                    attempt += 1;
                    metrics::counter!("kafka_transaction_commit_retries_total").increment(1);
                    warn!(
                        transactional_id = self.producer.transactional_id(),
                        attempt,
                        error = %e,
                        "commit outcome unknown; committing again"
                    );
                    tokio::time::sleep(backoff.min(Duration::from_secs(1))).await;
                }
                Err(e) if e.is_abortable() => {
                    return self.abort_for(AbortReason::Commit(e)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn abort_for(&mut self, reason: AbortReason) -> Result<EndOutcome> {
        info!(
            transactional_id = self.producer.transactional_id(),
            %reason,
            "aborting the transaction"
        );
        self.abort().await?;
        metrics::counter!("kafka_transactions_aborted_total", "reason" => reason.label())
            .increment(1);
        Ok(EndOutcome::Aborted { reason })
    }

    /// Aborts the open transaction (a no-op when none is open): nothing it wrote
    /// becomes visible, and its offsets are not committed. Refused while a
    /// commit's outcome is unknown (Committing): call `end` instead.
    pub async fn abort(&mut self) -> Result<()> {
        if self.producer.state() != TransactionState::Ready {
            self.producer.abort().await?;
        }
        self.finish();
        Ok(())
    }

    /// The error of a producer that failed for good, for calls after the failure.
    fn fatal(&self) -> Error {
        Error::TransactionFatal {
            code: None,
            reason: self
                .producer
                .last_error()
                .unwrap_or("the producer failed earlier")
                .to_string(),
        }
    }

    fn finish(&mut self) {
        self.begun_as = None;
        self.begun_at = None;
    }

    /// Aborts an open transaction (if any) and closes the producer, waiting at
    /// most `timeout`; see [`TransactionalProducer::close`].
    pub async fn close(self, timeout: Duration) -> Result<()> {
        self.producer.close(timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(generation_id: i32, member_id: &str) -> ConsumerGroupMetadata {
        ConsumerGroupMetadata {
            group_id: "g".into(),
            generation_id,
            member_id: member_id.into(),
            group_instance_id: None,
        }
    }

    #[test]
    fn the_member_must_still_be_in_the_generation_of_its_offsets() {
        assert!(same_member(&member(4, "m"), &member(4, "m"), || false).is_ok());
        for now in [member(5, "m"), member(-1, ""), member(4, "other")] {
            let e = same_member(&member(4, "m"), &now, || false).unwrap_err();
            assert_eq!(e.code(), Some(ErrorCode::IllegalGeneration));
            assert!(e.to_string().contains("generation 4"), "{e}");
        }
        // A later generation of the member that kept the partitions throughout.
        assert!(same_member(&member(4, "m"), &member(5, "m"), || true).is_ok());
        for now in [member(3, "m"), member(-1, ""), member(5, "other")] {
            assert!(same_member(&member(4, "m"), &now, || true).is_err());
        }
    }

    #[test]
    fn abort_reasons_name_their_step_and_keep_their_error() {
        let e = Error::broker(ErrorCode::IllegalGeneration, "TxnOffsetCommit");
        let reason = AbortReason::Offsets(e);
        assert!(reason.to_string().starts_with("offsets refused: "));
        assert_eq!(
            reason.error().and_then(Error::code),
            Some(ErrorCode::IllegalGeneration)
        );
        assert_eq!(reason.label(), "offsets");
        assert!(AbortReason::Requested.error().is_none());
    }
}
