//! A [`GroupHandle`]: the group side of a member, shared with another task.
//!
//! A consumer group member has two halves. The [`GroupConsumer`] polls: it joins,
//! rebalances, owns the partitions and their positions, and needs `&mut`. What a
//! transactional producer needs of the member is smaller: its identity for
//! TxnOffsetCommit (KIP-447), a heartbeat right before EndTxn, and the committed
//! offsets (and, outside transactions, a plain commit). A [`GroupHandle`] offers
//! exactly that, over the same member state
//! (an `Arc` of the protocol's member), so the producer may live in another task.
//!
//! ```text
//!  consumer task                               producer task
//!  GroupConsumer::poll_for ──records──────────► TransactSession::send ...
//!    joins, rebalances, positions               TransactSession::end(offsets)
//!        │ handle()                                  │
//!        └──► GroupHandle (Clone) ──────────────────►├─ group_metadata()   (TxnOffsetCommit)
//!               │ shares the member (Arc)            ├─ heartbeat_now() / check_membership()
//!               ▼                                    └─ committed()
//!         Membership (classic) | ConsumerMember (KIP-848)
//!               ▲
//!  heartbeat task
//! ```
//!
//! A heartbeat asked for through the handle waits a bounded time for the
//! member's coordinator connection: the consumer task may hold it through a
//! JoinGroup (the whole rebalance) or an OffsetFetch that waits for pending
//! transactional offsets. When it is busy, the member state, which those calls keep
//! current, answers instead.
//!
//! [`GroupConsumer`]: super::GroupConsumer

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::ConsumerGroupMetadata;
use super::consumer_protocol::ConsumerMember;
use super::membership::Membership;
use crate::client::TopicPartition;
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;

/// How often [`GroupHandle::commit_offsets_through_rebalance`] tries again while
/// no join of its member is in flight.
const REBALANCE_RETRY: Duration = Duration::from_millis(100);

/// How long a heartbeat asked for by the application waits for the member's
/// coordinator connection before the member state answers instead.
const ON_DEMAND_WAIT: Duration = Duration::from_secs(1);

/// How often [`GroupHandle::while_polling`] looks for a pending rebalance.
const WORK_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The member of one protocol (`group.protocol`); see the module doc of `group`.
#[derive(Clone)]
pub(super) enum Member {
    Classic(Arc<Membership>),
    Consumer(Arc<ConsumerMember>),
}

impl Member {
    pub(super) fn group_id(&self) -> &str {
        match self {
            Member::Classic(m) => &m.group_id,
            Member::Consumer(m) => &m.group_id,
        }
    }

    /// See [`ConsumerMember::owned_throughout`] and [`Membership::owned_throughout`].
    pub(super) fn owned_throughout(&self, partitions: &[TopicPartition], generation: i32) -> bool {
        match self {
            Member::Classic(m) => m.owned_throughout(partitions, generation),
            Member::Consumer(m) => m.owned_throughout(partitions, generation),
        }
    }

    /// Records that the application polled (for `max.poll.interval.ms`).
    pub(super) fn polled(&self) {
        match self {
            Member::Classic(m) => m.polled(),
            Member::Consumer(m) => m.polled(),
        }
    }

    pub(super) fn instance_id(&self) -> Option<String> {
        match self {
            Member::Classic(m) => m.instance_id.clone(),
            Member::Consumer(m) => m.instance_id.clone(),
        }
    }

    /// (generation or member epoch, member id).
    pub(super) fn identity(&self) -> (i32, String) {
        match self {
            Member::Classic(m) => {
                let s = m.lock();
                (s.generation, s.member_id.clone())
            }
            Member::Consumer(m) => {
                let s = m.lock();
                let epoch = if s.in_group { s.member_epoch } else { -1 };
                (epoch, s.member_id.clone())
            }
        }
    }

    pub(super) fn group_metadata(&self) -> ConsumerGroupMetadata {
        self.metadata_as(self.identity())
    }

    /// This member's identity under `generation_id` and `member_id`.
    fn metadata_as(&self, (generation_id, member_id): (i32, String)) -> ConsumerGroupMetadata {
        ConsumerGroupMetadata {
            group_id: self.group_id().to_string(),
            generation_id,
            member_id,
            group_instance_id: self.instance_id(),
        }
    }

    async fn generation_after(
        &self,
        generation: i32,
        wait: Duration,
    ) -> Option<ConsumerGroupMetadata> {
        let identity = match self {
            Member::Classic(m) => m.generation_after(generation, wait).await?,
            Member::Consumer(m) => m.epoch_after(generation, wait).await?,
        };
        Some(self.metadata_as(identity))
    }

    pub(super) fn rebalance_pending(&self) -> bool {
        match self {
            Member::Classic(m) => m.lock().rejoin,
            Member::Consumer(m) => m.lock().reconciling(),
        }
    }

    /// The fatal error the member met (FENCED_INSTANCE_ID, a refused membership),
    /// if any: every poll returns it.
    fn fatal(&self) -> Option<Error> {
        match self {
            Member::Classic(m) => m
                .lock()
                .fatal
                .clone()
                .map(|context| Error::broker(ErrorCode::FencedInstanceId, context)),
            Member::Consumer(m) => m.lock().fatal.clone().map(|(code, context)| {
                super::offsets::member_fatal(code, context, self.group_id())
            }),
        }
    }

    /// Why the member holds no generation (or member epoch) any more, if it does not:
    /// never joined, left, or lost it (the partitions may belong to another member).
    fn membership_ended(&self) -> Option<Error> {
        let group = self.group_id();
        let (code, why) = match self {
            Member::Classic(m) => {
                let s = m.lock();
                if s.generation < 0 || s.member_id.is_empty() {
                    (
                        ErrorCode::UnknownMemberId,
                        "not a member of a generation (not joined yet, or left)".to_string(),
                    )
                } else if s.lost {
                    (
                        ErrorCode::IllegalGeneration,
                        format!(
                            "generation {} ended without this member; its partitions are lost",
                            s.generation
                        ),
                    )
                } else {
                    return None;
                }
            }
            Member::Consumer(m) => {
                let s = m.lock();
                if s.lost {
                    (
                        ErrorCode::FencedMemberEpoch,
                        "the membership ended (fenced or expired); its partitions are lost"
                            .to_string(),
                    )
                } else if !s.in_group {
                    (
                        ErrorCode::UnknownMemberId,
                        "not a member (not joined yet, or left)".to_string(),
                    )
                } else {
                    return None;
                }
            }
        };
        Some(Error::broker(code, format!("group {group}: {why}")))
    }

    async fn heartbeat_on_demand(&self, while_rebalancing: bool) -> Result<()> {
        match self {
            Member::Classic(m) => {
                m.heartbeat_on_demand(while_rebalancing, ON_DEMAND_WAIT)
                    .await
            }
            Member::Consumer(m) => m.heartbeat_on_demand(ON_DEMAND_WAIT).await,
        }
    }

    pub(super) async fn heartbeat_now(&self) -> Result<()> {
        self.heartbeat_on_demand(false).await?;
        if let Some(fatal) = self.fatal() {
            return Err(fatal);
        }
        if self.rebalance_pending() || self.identity().0 < 0 {
            return Err(Error::broker(
                ErrorCode::RebalanceInProgress,
                format!(
                    "group {}: this member's partitions are moving",
                    self.group_id()
                ),
            ));
        }
        Ok(())
    }

    pub(super) async fn check_membership(&self) -> Result<()> {
        if let Some(e) = self.fatal().or_else(|| self.membership_ended()) {
            return Err(e);
        }
        match self.heartbeat_on_demand(true).await {
            Ok(()) => {}
            // Classic: the group is preparing a rebalance; this member's generation
            // is still the group's until it joins again.
            Err(e) if e.code() == Some(ErrorCode::RebalanceInProgress) => {}
            Err(e) => return Err(e),
        }
        match self.fatal().or_else(|| self.membership_ended()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(super) async fn commit(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        match self {
            Member::Classic(m) => m.commit(offsets).await,
            Member::Consumer(m) => m.commit(offsets).await,
        }
    }

    pub(super) async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        match self {
            Member::Classic(m) => m.committed(partitions).await,
            Member::Consumer(m) => m.committed(partitions).await,
        }
    }
}

/// A cheap, cloneable handle on a [`GroupConsumer`]'s membership, for a task other
/// than the one that polls (typically the one that owns a transactional producer);
/// see the module doc. Obtained with [`GroupConsumer::handle`]. It stays usable
/// after the consumer is closed, and then reports the member as gone (after a
/// drop without `close`, once the coordinator has expired the member's session).
///
/// [`GroupConsumer`]: super::GroupConsumer
/// [`GroupConsumer::handle`]: super::GroupConsumer::handle
#[derive(Clone)]
pub struct GroupHandle {
    member: Member,
}

impl std::fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (generation, member_id) = self.member.identity();
        f.debug_struct("GroupHandle")
            .field("group_id", &self.member.group_id())
            .field("generation", &generation)
            .field("member_id", &member_id)
            .finish()
    }
}

impl GroupHandle {
    pub(super) fn new(member: Member) -> GroupHandle {
        GroupHandle { member }
    }

    /// `group.id`.
    pub fn group_id(&self) -> &str {
        self.member.group_id()
    }

    /// The current generation (classic) or member epoch (consumer protocol);
    /// -1 while not in the group.
    pub fn generation(&self) -> i32 {
        self.member.identity().0
    }

    /// The member id (empty before the first join with the classic protocol, and
    /// with ConsumerGroupHeartbeat v0).
    pub fn member_id(&self) -> String {
        self.member.identity().1
    }

    /// The member's identity for offsets committed in a transaction (KIP-447):
    /// with the consumer protocol the generation is the member epoch.
    pub fn group_metadata(&self) -> ConsumerGroupMetadata {
        self.member.group_metadata()
    }

    /// Whether a rebalance is pending: the next poll rejoins (classic), or the
    /// owned partitions differ from the broker's target assignment (consumer protocol).
    pub fn rebalance_pending(&self) -> bool {
        self.member.rebalance_pending()
    }

    /// Whether this member has owned `partitions` without a break since member
    /// epoch (consumer protocol) or generation (classic) `generation` and owns
    /// them now: offsets read under it may then be committed under the current
    /// one. A classic member keeps partitions across generations only with a
    /// cooperative assignor, and still owns a partition that the current
    /// generation revoked until it joins again (no other member gets it before).
    pub fn owned_throughout(&self, partitions: &[TopicPartition], generation: i32) -> bool {
        self.member.owned_throughout(partitions, generation)
    }

    /// Waits (at most `wait`) for a join in flight to move this member past
    /// `generation` (classic protocol), or for a heartbeat in flight to end
    /// (consumer protocol), and returns its identity then; `None` when nothing
    /// in flight moved it past `generation`, the membership was lost, or the
    /// wait ran out.
    ///
    /// For offsets refused with ILLEGAL_GENERATION (or STALE_MEMBER_EPOCH): the
    /// coordinator moves to the new generation when the last member has joined,
    /// before this member has read the answer to its own JoinGroup; a KIP-848
    /// coordinator moves the member epoch while answering a heartbeat this
    /// member has not read yet.
    pub async fn generation_after(
        &self,
        generation: i32,
        wait: Duration,
    ) -> Option<ConsumerGroupMetadata> {
        self.member.generation_after(generation, wait).await
    }

    /// Heartbeats now and fails unless this member still holds its partitions in a
    /// settled group: no rebalance pending, a generation held, nothing fatal. Call
    /// it just before committing a transaction that carries this member's offsets,
    /// and abort instead when it fails (the KIP-447 practice of a successful
    /// heartbeat right before EndTxn). This is the strict check: any rebalance,
    /// even one that will not move this member's partitions, fails it; see
    /// [`GroupHandle::check_membership`] for the lenient one.
    ///
    /// The heartbeat waits at most a second for the member's coordinator
    /// connection (see the module doc); the member state then answers alone.
    pub async fn heartbeat_now(&self) -> Result<()> {
        self.member.heartbeat_now().await
    }

    /// Heartbeats now and succeeds while this member still belongs to its current
    /// generation (classic) or member epoch (consumer protocol), even when a
    /// rebalance is pending: REBALANCE_IN_PROGRESS is fine, since the member has not
    /// given up its partitions yet. Fails when the membership has ended:
    /// ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
    /// FENCED_MEMBER_EPOCH, partitions lost (session expired, poll timeout), or no
    /// generation at all (-1); and when the heartbeat itself fails (the membership
    /// cannot be confirmed).
    ///
    /// Why committing during a pending rebalance is safe (KIP-447): offsets added to
    /// a transaction go to the group coordinator in TxnOffsetCommit carrying this
    /// member's generation (or epoch) and member id, and the coordinator refuses them
    /// (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, a stale epoch)
    /// unless they are the group's current ones. A classic group preparing a
    /// rebalance keeps its generation until the members have joined again, and a
    /// KIP-848 member keeps its epoch until it has given up what it must revoke; so
    /// offsets accepted under them come from the partitions' owner. Once accepted
    /// they are pending until EndTxn. The next owner of a partition starts from its
    /// committed offset, read with OffsetFetch and `require_stable` (this crate
    /// always sets it), which waits for pending transactional offsets: it starts
    /// only once this transaction has ended, from the offsets it committed, so the
    /// input it consumed is not processed again. Aborting is safe too; committing
    /// just avoids redoing the work.
    ///
    /// The check is what its name says: it does not know which generation the
    /// caller's offsets were sent under. `TransactSession::end` also compares that.
    pub async fn check_membership(&self) -> Result<()> {
        self.member.check_membership().await
    }

    /// Commits explicit offsets (`(topic, partition)` -> next offset to consume)
    /// with OffsetCommit under the current generation or member epoch, outside any
    /// transaction (at-least-once); see [`GroupConsumer::commit_offsets`].
    ///
    /// [`GroupConsumer::commit_offsets`]: super::GroupConsumer::commit_offsets
    pub async fn commit_offsets(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        self.member.commit(offsets).await
    }

    /// [`GroupHandle::commit_offsets`] for a member that keeps polling in
    /// another task while the group rebalances (a cooperative member goes on
    /// with its partitions during the join). The coordinator refuses a commit
    /// while the group completes a rebalance (REBALANCE_IN_PROGRESS, or
    /// ILLEGAL_GENERATION before this member has read its new generation;
    /// STALE_MEMBER_EPOCH with the consumer protocol): this then waits for the
    /// member's join or heartbeat in flight, keeps the offsets of the partitions it
    /// held throughout and commits them under the new generation, for at most
    /// `wait` in all. Offsets of partitions that moved are dropped: their new
    /// owner reads them again from the last commit (at-least-once), and
    /// committing them would move its position. Returns the offsets committed.
    pub async fn commit_offsets_through_rebalance(
        &self,
        offsets: &BTreeMap<TopicPartition, i64>,
        wait: Duration,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let read_under = self.generation();
        let deadline = tokio::time::Instant::now() + wait;
        let mut offsets = offsets.clone();
        loop {
            let error = match self.commit_offsets(&offsets).await {
                Ok(()) => return Ok(offsets),
                Err(e) => e,
            };
            let rebalancing = error.code().is_some_and(|c| {
                c == ErrorCode::RebalanceInProgress || c.is_stale_member_identity()
            });
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !rebalancing || left.is_zero() {
                return Err(error);
            }
            if self
                .generation_after(self.generation(), left)
                .await
                .is_none()
            {
                // No join in flight yet (the next poll starts it), or its
                // generation is not synced yet.
                tokio::time::sleep(REBALANCE_RETRY.min(left)).await;
            }
            offsets.retain(|tp, _| self.owned_throughout(std::slice::from_ref(tp), read_under));
            tracing::debug!(
                group = self.group_id(),
                from = read_under,
                to = self.generation(),
                partitions = offsets.len(),
                "offsets refused during a rebalance; committing the kept ones again"
            );
            metrics::counter!("kafka_consumer_offsets_recommitted_total").increment(1);
            if offsets.is_empty() {
                return Ok(offsets);
            }
        }
    }

    /// The group's committed offsets for `partitions` (absent: none committed),
    /// read with `require_stable`: offsets of open transactions are waited for.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.member.committed(partitions).await
    }

    /// Runs `work` that belongs to the poll loop but does not poll (restoring the
    /// state of partitions just assigned, as Kafka Streams does between polls).
    /// While it runs the member counts as polling, so a long `work` does not
    /// exceed `max.poll.interval.ms`; as soon as a rebalance is pending, `work` is
    /// dropped and this returns `None`, so the application polls and rejoins
    /// instead of holding up the group's rebalance (the other members wait for it
    /// up to the rebalance timeout). `work` must therefore be safe to drop.
    pub async fn while_polling<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let mut work = std::pin::pin!(work);
        loop {
            if self.member.rebalance_pending() {
                return None;
            }
            self.member.polled();
            tokio::select! {
                done = &mut work => return Some(done),
                () = tokio::time::sleep(WORK_CHECK_INTERVAL) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_is_cheap_to_share_between_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<GroupHandle>();
    }
}
