//! Consumer groups, classic protocol: a [`GroupConsumer`] subscribes to topics and
//! the group coordinator spreads their partitions over the group's members.
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
//! only `cooperative-sticky` configured they are cooperative (KIP-429): members
//! keep fetching their partitions through the rebalance, report them in
//! JoinGroup, give up only those that move (`Revoked`), and rejoin at once so a
//! second round hands those to their new owners (`Assigned` lists only additions). They happen inside
//! `poll_for`. A member that does not poll for `max.poll.interval.ms` leaves the
//! group from its heartbeat task (its partitions go to the others; its next poll
//! reports them lost and joins again), as the Java client does.
//!
//! Static members (`group.instance.id`, KIP-345) keep their identity across
//! restarts; `close` does not send LeaveGroup for them, so a restart within
//! `session.timeout.ms` causes no rebalance.

pub mod assignor;
mod membership;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use self::assignor::TopicPartition;
use self::membership::Membership;
use super::cluster::Client;
use super::config::{ConsumerConfig, GroupProtocol};
use super::consumer::{Consumer, ConsumerRecord};
use super::transaction::ConsumerGroupMetadata;
use crate::error::{Error, Result};

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

/// Aborts the heartbeat task when the consumer is dropped.
struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A consumer that is a member of a consumer group; see the module doc.
pub struct GroupConsumer {
    consumer: Consumer,
    membership: Arc<Membership>,
    topics: Vec<String>,
    assignment: Vec<TopicPartition>,
    events: VecDeque<RebalanceEvent>,
    auto_commit: Option<Duration>,
    last_commit: Instant,
    last_metadata_check: Instant,
    _heartbeat: TaskGuard,
}

/// How often the leader compares subscribed topics' partition counts with the
/// ones its assignment used.
const METADATA_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group_id", &self.membership.group_id)
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
        let client = Client::connect(config.client.clone()).await?;
        Self::with_client(client, config)
    }

    /// As [`GroupConsumer::new`], over an existing client.
    pub fn with_client(client: Client, config: ConsumerConfig) -> Result<GroupConsumer> {
        let Some(group_id) = config.group_id.clone() else {
            return Err(Error::Config {
                key: "group.id".into(),
                message: "required for a group consumer".into(),
            });
        };
        if config.group_protocol != GroupProtocol::Classic {
            return Err(Error::Config {
                key: "group.protocol".into(),
                message: "only the classic protocol is implemented".into(),
            });
        }
        let membership = Arc::new(Membership::new(client.clone(), &config, group_id)?);
        let heartbeat = tokio::spawn(heartbeat_loop(membership.clone()));
        let auto_commit = config
            .enable_auto_commit
            .then_some(config.auto_commit_interval);
        Ok(GroupConsumer {
            consumer: Consumer::with_client(client, config),
            membership,
            topics: Vec::new(),
            assignment: Vec::new(),
            events: VecDeque::new(),
            auto_commit,
            last_commit: Instant::now(),
            last_metadata_check: Instant::now(),
            _heartbeat: TaskGuard(heartbeat),
        })
    }

    /// Subscribes to `topics` (replacing the previous subscription); the group
    /// rebalances at the next poll.
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
            self.membership.lock().rejoin = true;
        }
    }

    /// The partitions this member owns in the current generation.
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.assignment
    }

    /// The current generation (-1 before the first join).
    pub fn generation(&self) -> i32 {
        self.membership.lock().generation
    }

    /// The member id the coordinator gave (empty before the first join).
    pub fn member_id(&self) -> String {
        self.membership.lock().member_id.clone()
    }

    /// The member's identity for offsets committed in a transaction (KIP-447).
    pub fn group_metadata(&self) -> ConsumerGroupMetadata {
        let s = self.membership.lock();
        ConsumerGroupMetadata {
            group_id: self.membership.group_id.clone(),
            generation_id: s.generation,
            member_id: s.member_id.clone(),
            group_instance_id: self.membership.instance_id.clone(),
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

    /// Whether a rebalance is pending (the next poll rejoins).
    pub fn rebalance_pending(&self) -> bool {
        self.membership.lock().rejoin
    }

    /// Joins or rejoins the group when needed; see the module doc.
    async fn ensure_active(&mut self) -> Result<()> {
        let (rejoin, lost, fatal) = {
            let s = self.membership.lock();
            (s.rejoin, s.lost, s.fatal.clone())
        };
        if let Some(reason) = fatal {
            return Err(Error::Broker {
                code: crate::error_code::ErrorCode::FencedInstanceId,
                context: reason,
            });
        }
        if !rejoin || self.topics.is_empty() {
            return Ok(());
        }
        let cooperative = self.membership.cooperative();
        if !self.assignment.is_empty() && (lost || !cooperative) {
            // Eager: give everything up before joining. Lost: it is gone already.
            let old = std::mem::take(&mut self.assignment);
            if lost {
                self.events.push_back(RebalanceEvent::Lost(old));
            } else {
                if self.auto_commit.is_some() {
                    if let Err(e) = self.commit_positions_of(&old).await {
                        warn!(error = %e, "commit before the rebalance failed");
                    }
                }
                self.events.push_back(RebalanceEvent::Revoked(old));
            }
            self.consumer.assign(Vec::<(String, i32)>::new());
        }
        // Cooperative: keep fetching what is owned, and tell the leader about it.
        let owned = self.assignment.clone();
        let partitions = self.membership.join(&self.topics, &owned).await?;
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
            self.events.push_back(RebalanceEvent::Revoked(revoked));
            self.membership.lock().rejoin = true;
        }
        let committed = self.membership.committed(&added).await?;
        self.consumer
            .assign(partitions.iter().map(|(t, p)| (t.as_str(), *p)));
        for (tp, offset) in &committed {
            self.consumer.seek(&tp.0, tp.1, *offset);
        }
        debug!(
            group = self.membership.group_id,
            assigned = partitions.len(),
            added = added.len(),
            committed = committed.len(),
            "assignment applied"
        );
        self.assignment = partitions;
        if !added.is_empty() || owned.is_empty() {
            self.events.push_back(RebalanceEvent::Assigned(added));
        }
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Rebalances if needed, then returns the records fetched within `timeout`.
    pub async fn poll_for(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        self.membership.polled();
        if self.last_metadata_check.elapsed() >= METADATA_CHECK_INTERVAL {
            self.last_metadata_check = Instant::now();
            self.membership.check_metadata().await;
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
        if self.assignment.is_empty() {
            // Nothing to fetch: wait (bounded), so the caller's loop does not spin.
            tokio::time::sleep(timeout.min(Duration::from_millis(100))).await;
            return Ok(Vec::new());
        }
        self.consumer.poll_for(timeout).await
    }

    async fn commit_positions_of(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        let positions = self.consumer.positions();
        let offsets: BTreeMap<TopicPartition, i64> = partitions
            .iter()
            .filter_map(|tp| positions.get(tp).map(|&o| (tp.clone(), o)))
            .collect();
        self.membership.commit(&offsets).await
    }

    /// Commits the positions of every owned partition (the next record each would
    /// hand out) under the current generation.
    pub async fn commit(&mut self) -> Result<()> {
        let owned = self.assignment.clone();
        self.commit_positions_of(&owned).await
    }

    /// Commits explicit offsets (`(topic, partition)` -> next offset to consume).
    pub async fn commit_offsets(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        self.membership.commit(offsets).await
    }

    /// Moves every owned partition back to the group's committed offset (per
    /// `auto.offset.reset` when none is committed). Needed after aborting a
    /// transaction that carried this consumer's offsets: the records consumed in it
    /// must be consumed again, and nothing rewinds the consumer by itself (KAFKA-17582).
    pub async fn seek_to_committed(&mut self) -> Result<()> {
        let owned = self.assignment.clone();
        let committed = self.membership.committed(&owned).await?;
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
        self.membership.committed(partitions).await
    }

    /// Leaves the group (committing first with auto-commit) and closes the consumer.
    /// Static members do not send LeaveGroup; see the module doc.
    pub async fn close(mut self) -> Result<()> {
        let mut result = Ok(());
        if self.auto_commit.is_some() && !self.assignment.is_empty() {
            result = self.commit().await;
        }
        if self.membership.instance_id.is_none() {
            if let Err(e) = self.membership.leave("consumer closed").await {
                warn!(error = %e, "LeaveGroup failed");
            }
        }
        self.consumer.close().await;
        result
    }
}

#[cfg(test)]
mod fake_coordinator_tests;
