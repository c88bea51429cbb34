//! Consumer groups: a [`GroupConsumer`] subscribes to topics and the group
//! coordinator spreads their partitions over the group's members. Two protocols,
//! chosen with `group.protocol`:
//!
//! | `group.protocol` | files | assignment | rebalances |
//! |---|---|---|---|
//! | `classic` (default) | `membership.rs`, `assignor.rs` | client side (leader) | eager or cooperative |
//! | `consumer` (KIP-848) | `consumer_protocol.rs` | broker side | incremental |
//!
//! Both share OffsetCommit/OffsetFetch (`offsets.rs`), the partition consumer
//! underneath, and the [`RebalanceEvent`]s.
//!
//! ## Classic protocol
//!
//! ```text
//!  GroupConsumer::poll_for
//!    ├─ rebalance needed? ──► revoke (commit first with auto-commit) ──► events: Revoked / Lost
//!    │                        JoinGroup ──► SyncGroup (membership.rs; the leader runs the assignor)
//!    │                        OffsetFetch ──► Consumer::assign + seek ──► events: Assigned
//!    └─ Consumer::poll_for (the partition consumer fetches the assigned partitions)
//!
//!  heartbeat task ──► Heartbeat every heartbeat.interval.ms ──► sets "rebalance needed"
//! ```
//!
//! Rebalances are eager with `range` and `roundrobin`: every member gives up all
//! its partitions before rejoining, so a partition never has two owners. With
//! only cooperative assignors configured (`cooperative-sticky`,
//! `cooperative-copartitioned`, `exclusive`) they are cooperative (KIP-429): members
//! keep fetching their partitions through the rebalance, report them in
//! JoinGroup, give up only those that move (`Revoked`), and rejoin at once so a
//! second round hands those to their new owners (`Assigned` lists only additions). They happen inside
//! `poll_for`; a member that owns partitions joins in a task of its own (JoinGroup
//! waits for every member), so its polls go on returning records meanwhile, and
//! the first poll after the join applies it. A member that does not poll for `max.poll.interval.ms` leaves the
//! group from its heartbeat task (its partitions go to the others; its next poll
//! reports them lost and joins again), as the Java client does.
//!
//! Static members (`group.instance.id`, KIP-345) keep their identity across
//! restarts; `close` does not send LeaveGroup for them, so a restart within
//! `session.timeout.ms` causes no rebalance.
//!
//! ## Consumer protocol (KIP-848)
//!
//! ```text
//!  heartbeat task ──► ConsumerGroupHeartbeat ──► member epoch, target assignment (topic ids)
//!  GroupConsumer::poll_for
//!    ├─ lost (fenced)? ──► events: Lost ──► rejoin with epoch 0
//!    ├─ revoked at the last poll? ──► ack
//!    ├─ target != owned? ──► revoke (commit first with auto-commit) ──► events: Revoked
//!    │                       (acknowledged at the next poll)
//!    │                       OffsetFetch ──► Consumer::assign + seek ──► events: Assigned ──► ack
//!    └─ Consumer::poll_for
//! ```
//!
//! The broker assigns and moves only what must move, and gives a revoked
//! partition to its next owner only once this member acknowledged it. That
//! happens at the poll after the one that reported it `Revoked` (the Java client
//! acknowledges after its revocation callback), so the application can commit
//! the partition's offsets, or end the transaction that carries them, before
//! anyone else reads it. The member epoch plays the
//! generation's part in commits and [`GroupConsumer::group_metadata`]. Static
//! members leave with epoch -2 on close. See `consumer_protocol.rs`.
//!
//! ## Sharing the member
//!
//! [`GroupConsumer::handle`] gives a [`GroupHandle`] (`handle.rs`): a cheap clone
//! over the same member, for a task that commits the member's offsets in a
//! transaction while another one polls (its identity, heartbeats on demand,
//! committed offsets). See `transaction::session` for the loop that uses it.
//!
//! ## Consume, transform, produce
//!
//! [`crate::client::transaction::TransactSession`] is the exactly-once loop: it
//! heartbeats before each commit (aborting when a rebalance began) and finishes
//! a commit whose outcome was unknown instead of aborting it. The transactional
//! producer and the group consumer may be created in either order; the producer
//! needs the member's identity only when a transaction carries offsets.
//! [`GroupConsumer::end_offsets`] against [`GroupConsumer::positions`] tells a
//! drained input, and [`GroupConsumer::admin`] gives an admin client over the
//! same connections:
//!
//! ```no_run
//! # async fn drained(consumer: &kafka_wire::client::group::GroupConsumer) -> kafka_wire::Result<bool> {
//! let ends = consumer.end_offsets().await?;
//! let positions = consumer.positions();
//! Ok(ends.iter().all(|(tp, end)| positions.get(tp).is_some_and(|p| p >= end)))
//! # }
//! ```

pub mod assignor;
mod consumer_protocol;
mod handle;
mod membership;
pub(crate) mod offsets;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use self::consumer_protocol::ConsumerMember;
pub use self::handle::GroupHandle;
use self::handle::Member;
use self::membership::Membership;
use super::admin::Admin;
use super::cluster::Client;
use super::config::{ConsumerConfig, GroupProtocol};
use super::consumer::{Consumer, ConsumerRecord, Fetched};
use crate::client::TopicPartition;
use crate::error::{Error, Result};

/// A consumer group member's identity, sent with offsets committed in a
/// transaction so the group coordinator fences zombies of a rebalanced member (KIP-447).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// `group.id`.
    pub group_id: String,
    /// The generation the member joined (-1 when not a group member).
    pub generation_id: i32,
    /// The member id the coordinator gave (empty when not a group member).
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata of a consumer that is not a live group member (manual assignment):
    /// the coordinator then checks no generation.
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// A change of the member's partitions, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// Partitions given to this member by a new generation (positions start at
    /// the committed offsets, else per `auto.offset.reset`).
    Assigned(Vec<TopicPartition>),
    /// Partitions given up in an orderly rebalance (offsets were committed first
    /// with `enable.auto.commit`).
    Revoked(Vec<TopicPartition>),
    /// Partitions lost: the generation ended without this member (session expired,
    /// ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID); another member may own them already,
    /// so nothing was committed.
    Lost(Vec<TopicPartition>),
}

/// Called with each [`RebalanceEvent`] inside the poll that caused it; see
/// [`GroupConsumer::set_rebalance_listener`].
pub type RebalanceListener = Box<dyn FnMut(&RebalanceEvent) + Send>;

/// A task of the consumer's own (the heartbeat, a join), aborted when dropped.
struct TaskGuard<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for TaskGuard<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A consumer that is a member of a consumer group; see the module doc.
pub struct GroupConsumer {
    consumer: Consumer,
    member: Member,
    topics: Vec<String>,
    assignment: Vec<TopicPartition>,
    events: VecDeque<RebalanceEvent>,
    listener: Option<RebalanceListener>,
    auto_commit: Option<Duration>,
    last_commit: Instant,
    last_metadata_check: Instant,
    /// A cooperative rejoin running in its own task (JoinGroup waits for every
    /// member), with what this member owned when it began: polls fetch on
    /// meanwhile, and the first poll after it finished applies its assignment.
    joining: Option<(Vec<TopicPartition>, JoinTask)>,
    /// Consumer protocol: partitions were revoked by the last poll and the
    /// broker has not been told yet; the next poll acknowledges it.
    revocation_unacknowledged: bool,
    _heartbeat: TaskGuard<()>,
}

/// A join in its own task: the partitions it assigns.
type JoinTask = TaskGuard<Result<Vec<TopicPartition>>>;

/// How often the leader compares subscribed topics' partition counts with the
/// ones its assignment used.
const METADATA_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group_id", &self.member.group_id())
            .field("assignment", &self.assignment)
            .finish_non_exhaustive()
    }
}

async fn heartbeat_loop(membership: Arc<Membership>) {
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(membership.heartbeat_interval).await;
        let stable = {
            let s = membership.lock();
            if s.fatal.is_some() {
                return;
            }
            s.stable
        };
        if !stable {
            last_ok = Instant::now();
            continue;
        }
        if membership.poll_expired() {
            membership.leave_for_poll_timeout().await;
            continue;
        }
        match membership.heartbeat().await {
            Ok(()) => last_ok = Instant::now(),
            Err(e) => {
                debug!(group = membership.group_id, error = %e, "heartbeat failed");
                if e.code().is_none() && last_ok.elapsed() >= membership.session_timeout() {
                    membership.session_expired();
                }
            }
        }
    }
}

impl GroupConsumer {
    /// Connects a client and creates a member of `group.id` (not joined until the
    /// first poll after [`GroupConsumer::subscribe`]).
    pub async fn new(config: ConsumerConfig) -> Result<GroupConsumer> {
        config.validate()?;
        let client = Client::connect(config.client.clone()).await?;
        Self::with_client(client, config)
    }

    /// As [`GroupConsumer::new`], over an existing client. With
    /// `group.protocol=consumer` the member speaks KIP-848 (the broker must offer
    /// ConsumerGroupHeartbeat, as Kafka 4.x brokers do).
    pub fn with_client(client: Client, config: ConsumerConfig) -> Result<GroupConsumer> {
        config.validate()?;
        let Some(group_id) = config.group_id.clone() else {
            return Err(Error::Config {
                key: "group.id".into(),
                message: "required for a group consumer".into(),
            });
        };
        let (member, heartbeat) = match config.group_protocol {
            GroupProtocol::Classic => {
                let membership = Arc::new(Membership::new(client.clone(), &config, group_id)?);
                let heartbeat = tokio::spawn(heartbeat_loop(membership.clone()));
                (Member::Classic(membership), heartbeat)
            }
            GroupProtocol::Consumer => {
                let member = Arc::new(ConsumerMember::new(client.clone(), &config, group_id));
                let heartbeat = tokio::spawn(consumer_protocol::heartbeat_loop(member.clone()));
                (Member::Consumer(member), heartbeat)
            }
        };
        let auto_commit = config
            .enable_auto_commit
            .then_some(config.auto_commit_interval);
        Ok(GroupConsumer {
            consumer: Consumer::with_client(client, config),
            member,
            topics: Vec::new(),
            assignment: Vec::new(),
            events: VecDeque::new(),
            listener: None,
            auto_commit,
            last_commit: Instant::now(),
            last_metadata_check: Instant::now(),
            joining: None,
            revocation_unacknowledged: false,
            _heartbeat: TaskGuard(heartbeat),
        })
    }

    /// Subscribes to `topics` (replacing the previous subscription); the group
    /// rebalances at the next poll (classic) or heartbeat (consumer protocol).
    pub fn subscribe<I, T>(&mut self, topics: I)
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let mut topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        topics.sort();
        topics.dedup();
        if topics != self.topics {
            self.topics = topics;
            match &self.member {
                Member::Classic(m) => m.lock().rejoin = true,
                Member::Consumer(m) => m.subscribe(&self.topics),
            }
        }
    }

    /// The partitions this member owns in the current generation.
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.assignment
    }

    /// A cheap, cloneable handle on this member for another task: the group
    /// identity, heartbeats and committed offsets, without the partitions and
    /// positions (see [`GroupHandle`]).
    pub fn handle(&self) -> GroupHandle {
        GroupHandle::new(self.member.clone())
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

    /// An admin client over this consumer's connections (cheap: it shares them).
    pub fn admin(&self) -> Admin {
        Admin::new(self.consumer.client().clone())
    }

    /// The end offsets of the owned partitions at the consumer's isolation level
    /// (see [`Consumer::end_offsets`]); compare with [`GroupConsumer::positions`]
    /// to tell a drained input.
    pub async fn end_offsets(&self) -> Result<BTreeMap<TopicPartition, i64>> {
        self.consumer.end_offsets(&self.assignment).await
    }

    /// Calls `listener` with every assignment change from now on, in order,
    /// inside the poll that made it (after the offsets of revoked partitions were
    /// committed with auto-commit, before records of assigned ones are fetched).
    /// With a listener the changes are not also queued for
    /// [`GroupConsumer::take_events`].
    pub fn set_rebalance_listener(
        &mut self,
        listener: impl FnMut(&RebalanceEvent) + Send + 'static,
    ) {
        self.listener = Some(Box::new(listener));
        for e in std::mem::take(&mut self.events) {
            self.emit(e);
        }
    }

    fn emit(&mut self, event: RebalanceEvent) {
        match &mut self.listener {
            Some(listener) => listener(&event),
            None => self.events.push_back(event),
        }
    }

    /// Takes the assignment changes since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<RebalanceEvent> {
        self.events.drain(..).collect()
    }

    /// The partition consumer underneath (positions, pause/resume, fetch stats).
    pub fn consumer(&mut self) -> &mut Consumer {
        &mut self.consumer
    }

    /// Whether a rebalance moves only the partitions that change owner while this
    /// member keeps fetching the others: always with the consumer protocol, and
    /// with the classic one when every configured assignor is cooperative. Either
    /// way the partitions a poll reports `Revoked` go to their next owner only
    /// after the next poll, so their offsets can be committed in between.
    pub fn incremental(&self) -> bool {
        match &self.member {
            Member::Classic(m) => m.cooperative(),
            Member::Consumer(_) => true,
        }
    }

    /// Whether a rebalance is pending: the next poll rejoins (classic), a join
    /// runs in its own task or its assignment is not applied yet (classic,
    /// cooperative), or the owned partitions differ from the broker's target
    /// assignment (consumer protocol).
    pub fn rebalance_pending(&self) -> bool {
        self.joining.is_some() || self.member.rebalance_pending()
    }

    /// Heartbeats now and fails unless this member still holds its partitions in a
    /// settled group. Call it just before committing a transaction that carries
    /// this member's offsets, and abort instead when it fails: a rebalance has
    /// begun or the membership has ended (the KIP-447 practice of a successful
    /// heartbeat right before EndTxn). See [`GroupHandle::heartbeat_now`].
    pub async fn heartbeat_now(&self) -> Result<()> {
        self.member.heartbeat_now().await
    }

    /// Joins or rejoins the group when needed; see the module doc.
    async fn ensure_active(&mut self) -> Result<()> {
        match &self.member {
            Member::Classic(m) => {
                let m = m.clone();
                self.ensure_active_classic(&m).await
            }
            Member::Consumer(m) => {
                let m = m.clone();
                self.reconcile(&m).await
            }
        }
    }

    async fn ensure_active_classic(&mut self, membership: &Arc<Membership>) -> Result<()> {
        if let Some((owned, task)) = self.joining.take() {
            if !task.0.is_finished() {
                self.joining = Some((owned, task));
                return Ok(());
            }
            let mut task = task;
            let joined = match (&mut task.0).await {
                Ok(r) => r?,
                Err(e) => match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(_) => {
                        // Cancelled: join again at the next poll.
                        membership.lock().rejoin = true;
                        return Ok(());
                    }
                },
            };
            return self.apply_join(membership, owned, joined).await;
        }
        let (rejoin, lost, fatal) = {
            let s = membership.lock();
            (s.rejoin, s.lost, s.fatal.clone())
        };
        if let Some(reason) = fatal {
            return Err(Error::broker(
                crate::error_code::ErrorCode::FencedInstanceId,
                reason,
            ));
        }
        if !rejoin || self.topics.is_empty() {
            return Ok(());
        }
        let cooperative = membership.cooperative();
        if !self.assignment.is_empty() && (lost || !cooperative) {
            // Eager: give everything up before joining. Lost: it is gone already.
            let old = std::mem::take(&mut self.assignment);
            if lost {
                self.emit(RebalanceEvent::Lost(old));
            } else {
                if self.auto_commit.is_some() {
                    if let Err(e) = self.commit_positions_of(&old).await {
                        warn!(error = %e, "commit before the rebalance failed");
                    }
                }
                self.emit(RebalanceEvent::Revoked(old));
            }
            self.consumer.assign(Vec::<(String, i32)>::new());
        }
        // Cooperative: keep fetching what is owned, and tell the leader about it.
        let owned = self.assignment.clone();
        if cooperative && !owned.is_empty() {
            // JoinGroup waits until every member has joined: fetch on meanwhile.
            let m = membership.clone();
            let topics = self.topics.clone();
            let join_owned = owned.clone();
            let task = tokio::spawn(async move { m.join(&topics, &join_owned).await });
            self.joining = Some((owned, TaskGuard(task)));
            return Ok(());
        }
        let partitions = membership.join(&self.topics, &owned).await?;
        self.apply_join(membership, owned, partitions).await
    }

    /// Applies the assignment of a join made while owning `owned`.
    async fn apply_join(
        &mut self,
        membership: &Membership,
        owned: Vec<TopicPartition>,
        partitions: Vec<TopicPartition>,
    ) -> Result<()> {
        let revoked: Vec<TopicPartition> = owned
            .iter()
            .filter(|tp| !partitions.contains(tp))
            .cloned()
            .collect();
        let added: Vec<TopicPartition> = partitions
            .iter()
            .filter(|tp| !owned.contains(tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            // KIP-429: give up what moves, then rejoin so it can be reassigned.
            if self.auto_commit.is_some() {
                if let Err(e) = self.commit_positions_of(&revoked).await {
                    warn!(error = %e, "commit of revoked partitions failed");
                }
            }
            self.emit(RebalanceEvent::Revoked(revoked));
            membership.lock().rejoin = true;
        }
        let committed = membership.committed(&added).await?;
        self.consumer
            .assign(partitions.iter().map(|(t, p)| (t.as_str(), *p)));
        for (tp, offset) in &committed {
            self.consumer.seek(&tp.0, tp.1, *offset);
        }
        debug!(
            group = membership.group_id,
            assigned = partitions.len(),
            added = added.len(),
            committed = committed.len(),
            "assignment applied"
        );
        self.assignment = partitions;
        if !added.is_empty() || owned.is_empty() {
            self.emit(RebalanceEvent::Assigned(added));
        }
        self.last_commit = Instant::now();
        Ok(())
    }

    /// KIP-848: brings the owned partitions to the broker's target assignment,
    /// revoking first (acknowledged at the next poll), then adding; see `consumer_protocol.rs`.
    async fn reconcile(&mut self, member: &ConsumerMember) -> Result<()> {
        let (fatal, lost, target, joined) = {
            let s = member.lock();
            (s.fatal.clone(), s.lost, s.target.clone(), s.joined)
        };
        if let Some((code, context)) = fatal {
            return Err(offsets::member_fatal(code, context, self.member.group_id()));
        }
        if lost {
            // Fenced or expired: another member may own them already; no commit.
            self.revocation_unacknowledged = false;
            let old = std::mem::take(&mut self.assignment);
            if !old.is_empty() {
                self.emit(RebalanceEvent::Lost(old));
                self.consumer.assign(Vec::<(String, i32)>::new());
            }
            member.release_lost();
            return Ok(());
        }
        if std::mem::take(&mut self.revocation_unacknowledged) {
            // The application had a poll's time to commit what it gave up.
            member.set_owned(&self.assignment);
        }
        let Some(target) = target else {
            return Ok(());
        };
        let (target, unknown) = member.resolve(&target, &self.topics).await;
        let plan = consumer_protocol::reconcile(&self.assignment, &target);
        if !plan.revoke.is_empty() {
            if self.auto_commit.is_some() {
                if let Err(e) = self.commit_positions_of(&plan.revoke).await {
                    warn!(error = %e, "commit of revoked partitions failed");
                }
            }
            self.consumer
                .assign(plan.keep.iter().map(|(t, p)| (t.as_str(), *p)));
            self.assignment = plan.keep.clone();
            // The broker hands them on only once acknowledged: at the next poll,
            // as a classic cooperative member rejoins, so their offsets can be
            // committed first (outside auto-commit, or in a transaction).
            self.revocation_unacknowledged = true;
            debug!(
                group = member.group_id,
                revoked = plan.revoke.len(),
                kept = plan.keep.len(),
                "partitions revoked"
            );
            self.emit(RebalanceEvent::Revoked(plan.revoke));
            // The broker adds nothing before the acknowledgement.
            return Ok(());
        }
        if !plan.assign.is_empty() {
            let committed = match member.committed(&plan.assign).await {
                Ok(committed) => committed,
                Err(e) => {
                    // The target stays; the next poll tries again (or handles the
                    // fencing the error may have revealed).
                    warn!(group = member.group_id, error = %e, "committed offsets of new partitions");
                    return Ok(());
                }
            };
            let mut owned = plan.keep;
            owned.extend(plan.assign.iter().cloned());
            owned.sort();
            self.consumer
                .assign(owned.iter().map(|(t, p)| (t.as_str(), *p)));
            for (tp, offset) in &committed {
                self.consumer.seek(&tp.0, tp.1, *offset);
            }
            self.assignment = owned;
            member.set_owned(&self.assignment);
            debug!(
                group = member.group_id,
                assigned = self.assignment.len(),
                added = plan.assign.len(),
                committed = committed.len(),
                unknown_topic_ids = unknown.len(),
                "assignment applied"
            );
            self.emit(RebalanceEvent::Assigned(plan.assign));
            self.last_commit = Instant::now();
        } else if joined && self.assignment.is_empty() {
            self.emit(RebalanceEvent::Assigned(Vec::new()));
        }
        if joined {
            member.lock().joined = false;
        }
        Ok(())
    }

    /// Rebalances if needed, then returns the records fetched within `timeout`.
    pub async fn poll_for(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if !self.before_fetch(timeout).await? {
            return Ok(Vec::new());
        }
        self.consumer.poll_for(timeout).await
    }

    /// As [`GroupConsumer::poll_for`], but hands out everything fetched so far as
    /// it came, one [`Fetched`] per partition and response (ignoring
    /// `max.poll.records`): each carries the partition's position after it, which
    /// also moves past transaction markers and aborted records.
    pub async fn poll_batches_for(&mut self, timeout: Duration) -> Result<Vec<Fetched>> {
        if !self.before_fetch(timeout).await? {
            return Ok(Vec::new());
        }
        tokio::time::timeout(timeout, self.consumer.poll_batches())
            .await
            .unwrap_or_else(|_| Ok(Vec::new()))
    }

    /// The group's part of a poll: records the poll, rebalances when needed,
    /// auto-commits. False (after a bounded wait) when nothing is assigned or
    /// every assigned partition is paused.
    async fn before_fetch(&mut self, timeout: Duration) -> Result<bool> {
        match &self.member {
            Member::Classic(m) => {
                m.polled();
                if self.last_metadata_check.elapsed() >= METADATA_CHECK_INTERVAL {
                    self.last_metadata_check = Instant::now();
                    m.check_metadata().await;
                }
            }
            // The broker watches partition counts itself.
            Member::Consumer(m) => m.polled(),
        }
        self.ensure_active().await?;
        if let Some(interval) = self.auto_commit {
            if self.last_commit.elapsed() >= interval {
                self.last_commit = Instant::now();
                if let Err(e) = self.commit().await {
                    warn!(error = %e, "auto-commit failed");
                }
            }
        }
        if self.assignment.is_empty() || self.consumer.nothing_to_fetch() {
            // Nothing to fetch (nothing assigned, or all of it paused): wait
            // (bounded), so the caller's loop does not spin.
            tokio::time::sleep(timeout.min(Duration::from_millis(100))).await;
            return Ok(false);
        }
        Ok(true)
    }

    async fn commit_positions_of(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let positions = self.consumer.positions();
        let offsets: BTreeMap<TopicPartition, i64> = partitions
            .iter()
            .filter_map(|tp| positions.get(tp).map(|&o| (tp.clone(), o)))
            .collect();
        self.member.commit(&offsets).await
    }

    /// Commits the positions of every owned partition (the next record each would
    /// hand out) under the current generation or member epoch.
    pub async fn commit(&mut self) -> Result<()> {
        let owned = self.assignment.clone();
        self.commit_positions_of(&owned).await
    }

    /// Commits explicit offsets (`(topic, partition)` -> next offset to consume).
    pub async fn commit_offsets(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        self.member.commit(offsets).await
    }

    /// Moves every owned partition back to the group's committed offset (per
    /// `auto.offset.reset` when none is committed). Needed after aborting a
    /// transaction that carried this consumer's offsets: the records consumed in it
    /// must be consumed again, and nothing rewinds the consumer by itself (KAFKA-17582).
    pub async fn seek_to_committed(&mut self) -> Result<()> {
        let owned = self.assignment.clone();
        let committed = self.member.committed(&owned).await?;
        let (with, without): (Vec<_>, Vec<_>) =
            owned.iter().partition(|tp| committed.contains_key(*tp));
        if !without.is_empty() {
            // Unassigning and reassigning resets their positions to the policy.
            self.consumer
                .assign(with.iter().map(|(t, p)| (t.as_str(), *p)));
            self.consumer
                .assign(owned.iter().map(|(t, p)| (t.as_str(), *p)));
        }
        for (tp, offset) in &committed {
            self.consumer.seek(&tp.0, tp.1, *offset);
        }
        Ok(())
    }

    /// The positions of the owned partitions (the next offset each hands out):
    /// what [`GroupConsumer::commit`] commits, and what a transactional
    /// producer sends with `send_offsets_to_transaction`.
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        let positions = self.consumer.positions();
        self.assignment
            .iter()
            .filter_map(|tp| positions.get(tp).map(|&o| (tp.clone(), o)))
            .collect()
    }

    /// The group's committed offsets for `partitions` (absent: none committed).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        self.member.committed(partitions).await
    }

    /// Leaves the group (committing first with auto-commit) and closes the consumer.
    /// Classic static members do not send LeaveGroup; with the consumer protocol a
    /// static member leaves with epoch -2 (the broker keeps its partitions for the
    /// session timeout); see the module doc.
    pub async fn close(self) -> Result<()> {
        self.close_with(false).await
    }

    /// As [`GroupConsumer::close`], but a static member (`group.instance.id`)
    /// leaves the group too, so its partitions move to the other members now
    /// rather than after `session.timeout.ms`: for a process that is removed for
    /// good (scale-in), not one about to restart.
    pub async fn close_and_leave(self) -> Result<()> {
        self.close_with(true).await
    }

    async fn close_with(mut self, static_leaves: bool) -> Result<()> {
        // A join in flight holds the coordinator connection: drop it first.
        self.joining = None;
        let mut result = Ok(());
        if self.auto_commit.is_some() && !self.assignment.is_empty() {
            result = self.commit().await;
        }
        match &self.member {
            Member::Classic(m) => {
                if m.instance_id.is_none() || static_leaves {
                    if let Err(e) = m.leave("consumer closed").await {
                        warn!(error = %e, "LeaveGroup failed");
                    }
                }
            }
            Member::Consumer(m) => {
                if let Err(e) = m.leave(static_leaves).await {
                    warn!(error = %e, "leaving the group failed");
                }
            }
        }
        self.consumer.close().await;
        result
    }
}

#[cfg(test)]
mod fake_coordinator_tests;
