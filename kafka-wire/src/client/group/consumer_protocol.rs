//! The consumer group protocol of KIP-848 (`group.protocol=consumer`): one
//! request, ConsumerGroupHeartbeat, carries the whole membership, and the broker
//! computes the assignment (`group.remote.assignor`, else its default).
//!
//! ```text
//!  heartbeat task (every HeartbeatIntervalMs the broker returns, or at once when woken)
//!    ConsumerGroupHeartbeat(member id, member epoch, changed fields only)
//!      ├─ epoch 0: join with every field (subscription, rebalance timeout,
//!      │           instance id, rack, server assignor, no owned partitions)
//!      ├─ answer: member epoch, interval, new target assignment (topic ids) ──► ConsumerMemberState.target
//!      ├─ FENCED_MEMBER_EPOCH / UNKNOWN_MEMBER_ID ──► lost; rejoin with epoch 0 once
//!      │           the application has dropped its partitions (next poll: Lost)
//!      ├─ NOT_COORDINATOR, COORDINATOR_* ──► find the coordinator again, retry
//!      ├─ UNRELEASED_INSTANCE_ID on a join ──► join again at the next heartbeat: a
//!      │           member of this group.instance.id that never left (a killed
//!      │           process) holds it until its session expires; fatal once
//!      │           refused for max.poll.interval.ms
//!      └─ GROUP_MAX_SIZE_REACHED, UNSUPPORTED_ASSIGNOR, ... ──► fatal
//!
//!  GroupConsumer::poll_for (mod.rs) reconciles owned with target:
//!    target ids ──► names (metadata) ──► reconcile(owned, target)
//!      0. acknowledge what the previous poll revoked: wake the heartbeat task
//!         (TopicPartitions)
//!      1. revoke what is no longer assigned: commit (auto-commit), stop fetching,
//!         event Revoked; the next poll acknowledges it (step 0), so the
//!         application commits its offsets in between
//!      2. add what is new: OffsetFetch, assign + seek, event Assigned; acknowledged
//!         by the next heartbeat
//! ```
//!
//! Rebalances are incremental: a member keeps fetching the partitions it keeps;
//! the broker hands a partition to its new owner only after the previous owner
//! has acknowledged giving it up, so a partition never has two owners. The member
//! epoch replaces the classic generation in OffsetCommit (v9), OffsetFetch (v9)
//! and TxnOffsetCommit (KIP-447 fencing).
//!
//! With ConsumerGroupHeartbeat v1 the member generates its own member id
//! (KIP-1082) and keeps it for its lifetime; with v0 the broker hands it out on
//! the first heartbeat. The session timeout and heartbeat interval are broker
//! settings (`group.consumer.*`): `session.timeout.ms`, `heartbeat.interval.ms`
//! (only the first heartbeat's delay) and `partition.assignment.strategy` are
//! classic settings. A member that does not poll for `max.poll.interval.ms` leaves
//! (epoch -1, or -2 for a static member); its next poll reports the partitions
//! lost and joins again. Topic subscriptions are by name; regular expressions
//! (`SubscribedTopicRegex`) are not supported.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::offsets::{self, group_error};
use crate::client::TopicPartition;
use crate::client::cluster::Client;
use crate::client::config::ConsumerConfig;
use crate::client::connection::ConnectionOptions;
use crate::client::transaction::coordinator::{Coordinator, CoordinatorType};
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::Uuid;
use crate::protocol::messages::ConsumerGroupHeartbeatRequest;
use crate::protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use crate::protocol::messages::consumer_group_heartbeat_response::ConsumerGroupHeartbeatResponse;
use crate::sync::lock;

/// The member epoch that joins (or rejoins) the group.
const JOIN_EPOCH: i32 = 0;
/// The member epoch of a dynamic member leaving the group.
const LEAVE_EPOCH: i32 = -1;
/// The member epoch of a static member leaving for now (it will rejoin).
const STATIC_LEAVE_EPOCH: i32 = -2;

/// A partition by topic id, as ConsumerGroupHeartbeat names them.
pub(crate) type IdPartition = (Uuid, i32);

/// What a member does to go from the partitions it owns to its target assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reconciliation {
    /// Owned but no longer assigned: commit, stop fetching, acknowledge.
    pub revoke: Vec<TopicPartition>,
    /// Owned and still assigned: untouched (the protocol is incremental).
    pub keep: Vec<TopicPartition>,
    /// Assigned but not owned yet: fetch committed offsets, start fetching.
    pub assign: Vec<TopicPartition>,
}

/// Compares the owned partitions with the target assignment (both by name).
pub(crate) fn reconcile(owned: &[TopicPartition], target: &[TopicPartition]) -> Reconciliation {
    let owned: BTreeSet<&TopicPartition> = owned.iter().collect();
    let target: BTreeSet<&TopicPartition> = target.iter().collect();
    Reconciliation {
        revoke: owned.difference(&target).map(|&tp| tp.clone()).collect(),
        keep: owned.intersection(&target).map(|&tp| tp.clone()).collect(),
        assign: target.difference(&owned).map(|&tp| tp.clone()).collect(),
    }
}

/// Names the partitions of a target given by topic id; returns the named ones
/// and the ids `names` does not know (yet).
pub(crate) fn resolve(
    target: &BTreeSet<IdPartition>,
    names: &BTreeMap<Uuid, String>,
) -> (Vec<TopicPartition>, BTreeSet<Uuid>) {
    let mut named = Vec::with_capacity(target.len());
    let mut unknown = BTreeSet::new();
    for (id, p) in target {
        match names.get(id) {
            Some(name) => named.push((name.clone(), *p)),
            None => {
                unknown.insert(*id);
            }
        }
    }
    (named, unknown)
}

fn to_wire(partitions: &BTreeSet<IdPartition>) -> Vec<TopicPartitions> {
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (id, p) in partitions {
        by_topic.entry(*id).or_default().push(*p);
    }
    by_topic
        .into_iter()
        .map(|(topic_id, partitions)| TopicPartitions {
            topic_id,
            partitions,
            ..Default::default()
        })
        .collect()
}

/// A member id as KIP-1082 asks: unique per consumer, generated by it. A random
/// version-4 UUID in Kafka's textual form is what brokers expect to see.
fn generate_member_id() -> String {
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        // RandomState is seeded from the OS per process and per instance.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid(bytes).to_string()
}

/// The settings a member sends in full when it joins, else only when changed.
#[derive(Debug, Clone)]
struct Settings {
    group_id: String,
    instance_id: Option<String>,
    rack: Option<String>,
    server_assignor: Option<String>,
    rebalance_timeout_ms: i32,
}

/// The member's standing in the group, shared by the consumer and its heartbeat task.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerMemberState {
    /// Empty until generated (v1) or handed out by the broker (v0).
    pub member_id: String,
    /// 0 while joining; the broker's answer afterwards.
    pub member_epoch: i32,
    /// A heartbeat of the current membership succeeded (epoch > 0).
    pub in_group: bool,
    /// As the broker last said.
    pub heartbeat_interval: Duration,
    /// Subscribed topic names, sorted.
    pub subscription: Vec<String>,
    /// The partitions the application owns now (set by the poll side).
    pub owned: BTreeSet<IdPartition>,
    /// Per owned partition, the member epoch since which this membership has
    /// owned it without a break (see [`ConsumerMember::owned_throughout`]).
    owned_since: BTreeMap<IdPartition, i32>,
    /// The latest assignment the broker sent.
    pub target: Option<BTreeSet<IdPartition>>,
    /// What the coordinator knows from the last successful heartbeat; `None`
    /// forces the field into the next request.
    sent_subscription: Option<Vec<String>>,
    sent_owned: Option<BTreeSet<IdPartition>>,
    /// Send every field next time (joining, or the last heartbeat failed and the
    /// coordinator may not have seen it).
    full: bool,
    /// The membership ended (fenced, unknown member, left on poll timeout): the
    /// poll side reports the partitions lost, then the member rejoins.
    pub lost: bool,
    /// Joined since the poll side last looked: it reports an assignment even if empty.
    pub joined: bool,
    /// A fatal error: every poll returns it.
    pub fatal: Option<(ErrorCode, String)>,
    /// Since when joins are refused with UNRELEASED_INSTANCE_ID (another member
    /// of this `group.instance.id` has not left).
    unreleased_since: Option<Instant>,
    /// Closed: no more heartbeats.
    pub closed: bool,
}

impl ConsumerMemberState {
    fn new(heartbeat_interval: Duration) -> ConsumerMemberState {
        ConsumerMemberState {
            member_id: String::new(),
            member_epoch: JOIN_EPOCH,
            in_group: false,
            heartbeat_interval,
            subscription: Vec::new(),
            owned: BTreeSet::new(),
            owned_since: BTreeMap::new(),
            target: None,
            sent_subscription: None,
            sent_owned: None,
            full: true,
            lost: false,
            joined: false,
            fatal: None,
            unreleased_since: None,
            closed: false,
        }
    }

    /// Whether the heartbeat task should stay quiet: nothing to join for, the
    /// application still has to drop lost partitions, or the member is done.
    fn idle(&self) -> bool {
        self.closed
            || self.fatal.is_some()
            || self.lost
            || (self.member_epoch == JOIN_EPOCH
                && (self.subscription.is_empty() || !self.owned.is_empty()))
    }

    /// The next heartbeat: every field when joining or after a failure, else
    /// null (unchanged) for everything the coordinator already knows.
    fn request(&self, settings: &Settings) -> ConsumerGroupHeartbeatRequest {
        let full = self.full || self.member_epoch == JOIN_EPOCH;
        let mut request = ConsumerGroupHeartbeatRequest {
            group_id: settings.group_id.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.member_epoch,
            ..Default::default()
        };
        if full {
            request.instance_id = settings.instance_id.clone();
            request.rack_id = settings.rack.clone();
            request.rebalance_timeout_ms = settings.rebalance_timeout_ms;
            request.server_assignor = settings.server_assignor.clone();
        }
        if full || self.sent_subscription.as_ref() != Some(&self.subscription) {
            request.subscribed_topic_names = Some(self.subscription.clone());
        }
        if full || self.sent_owned.as_ref() != Some(&self.owned) {
            request.topic_partitions = Some(to_wire(&self.owned));
        }
        request
    }

    /// Applies an answer to `request`; returns the error code (NONE on success).
    fn apply(
        &mut self,
        request: &ConsumerGroupHeartbeatRequest,
        response: &ConsumerGroupHeartbeatResponse,
        release_wait: Duration,
    ) -> ErrorCode {
        let code = ErrorCode::from_code(response.error_code);
        let within_release_wait = self
            .unreleased_since
            .is_none_or(|since| since.elapsed() < release_wait);
        match code {
            ErrorCode::NoError => {
                self.unreleased_since = None;
                if let Some(id) = &response.member_id {
                    self.member_id = id.clone();
                }
                if self.member_epoch == JOIN_EPOCH && response.member_epoch > 0 {
                    self.joined = true;
                }
                self.member_epoch = response.member_epoch;
                self.in_group = response.member_epoch > 0;
                if response.heartbeat_interval_ms > 0 {
                    self.heartbeat_interval =
                        Duration::from_millis(response.heartbeat_interval_ms as u64);
                }
                if let Some(names) = &request.subscribed_topic_names {
                    self.sent_subscription = Some(names.clone());
                }
                if let Some(owned) = &request.topic_partitions {
                    self.sent_owned = Some(
                        owned
                            .iter()
                            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic_id, p)))
                            .collect(),
                    );
                }
                self.full = false;
                if let Some(assignment) = &response.assignment {
                    self.target = Some(
                        assignment
                            .topic_partitions
                            .iter()
                            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic_id, p)))
                            .collect(),
                    );
                }
            }
            ErrorCode::FencedMemberEpoch | ErrorCode::UnknownMemberId => self.fence(),
            ErrorCode::UnreleasedInstanceId
                if request.member_epoch == JOIN_EPOCH && within_release_wait =>
            {
                // A member of this instance that never left (a killed process)
                // holds it until its session times out: join again then.
                self.unreleased_since.get_or_insert_with(Instant::now);
                self.full = true;
            }
            ErrorCode::UnreleasedInstanceId
            | ErrorCode::GroupMaxSizeReached
            | ErrorCode::UnsupportedAssignor
            | ErrorCode::InvalidRequest
            | ErrorCode::InvalidRegularExpression
            | ErrorCode::GroupAuthorizationFailed
            | ErrorCode::TopicAuthorizationFailed
            | ErrorCode::FencedInstanceId
            | ErrorCode::UnsupportedVersion
            | ErrorCode::GroupIdNotFound => {
                let message = response.error_message.clone().unwrap_or_default();
                self.fatal = Some((code, fatal_context(code, &message)));
            }
            // Retriable codes come back as errors of Coordinator::call; anything
            // else: send everything again next time.
            _ => self.full = true,
        }
        code
    }

    /// The membership ended: the partitions are lost; rejoin with epoch 0.
    fn fence(&mut self) {
        self.member_epoch = JOIN_EPOCH;
        self.in_group = false;
        self.target = None;
        self.full = true;
        self.sent_subscription = None;
        self.sent_owned = None;
        self.owned_since.clear();
        self.lost = true;
    }

    /// Whether owned differs from the target (or a join is under way).
    pub fn reconciling(&self) -> bool {
        if self.lost {
            return true;
        }
        match &self.target {
            Some(target) => *target != self.owned,
            None => !self.subscription.is_empty(),
        }
    }
}

fn fatal_context(code: ErrorCode, message: &str) -> String {
    let why = match code {
        ErrorCode::UnreleasedInstanceId => {
            "group.instance.id is still used by another member, which has not left for max.poll.interval.ms"
        }
        ErrorCode::GroupMaxSizeReached => "the group has reached group.consumer.max.size",
        ErrorCode::UnsupportedAssignor => {
            "group.remote.assignor names an assignor the broker does not have (see group.consumer.assignors)"
        }
        ErrorCode::GroupIdNotFound | ErrorCode::UnsupportedVersion => {
            "the group cannot use the consumer protocol (a classic group of that id may exist)"
        }
        _ => "the coordinator refused the membership",
    };
    if message.is_empty() {
        format!("ConsumerGroupHeartbeat: {why}")
    } else {
        format!("ConsumerGroupHeartbeat: {why}: {message}")
    }
}

fn retriable_only(code: i16) -> ErrorCode {
    let code = ErrorCode::from_code(code);
    if code.is_retriable() {
        code
    } else {
        ErrorCode::NoError
    }
}

/// One KIP-848 member: its state, its coordinator, and topic id <-> name lookups.
pub(crate) struct ConsumerMember {
    pub group_id: String,
    pub instance_id: Option<String>,
    settings: Settings,
    rebalance_timeout: Duration,
    client: Client,
    pub(super) coordinator: tokio::sync::Mutex<Coordinator>,
    state: Mutex<ConsumerMemberState>,
    /// Wakes the heartbeat task (subscription changed, partitions released).
    wake: tokio::sync::Notify,
    /// Topic ids met so far, by id and by name.
    names: Mutex<(BTreeMap<Uuid, String>, BTreeMap<String, Uuid>)>,
    /// When metadata was last refreshed for an unknown topic id.
    last_refresh: Mutex<Option<Instant>>,
    /// When the application last polled (for `max.poll.interval.ms`).
    last_poll: Mutex<Instant>,
}

/// How often an unknown topic id may force a metadata refresh.
const REFRESH_INTERVAL: Duration = Duration::from_millis(500);

impl ConsumerMember {
    pub fn new(client: Client, config: &ConsumerConfig, group_id: String) -> ConsumerMember {
        let c = client.config();
        let options = ConnectionOptions {
            client_id: c.client_id.clone(),
            request_timeout: c.request_timeout,
            connect_timeout: c.connection_setup_timeout,
            max_in_flight: c.max_in_flight_per_connection,
            max_response_size: c.max_response_size,
            security: c.security.clone(),
        };
        let rebalance_timeout_ms =
            i32::try_from(config.max_poll_interval.as_millis()).unwrap_or(i32::MAX);
        ConsumerMember {
            coordinator: tokio::sync::Mutex::new(Coordinator::dedicated(
                client.clone(),
                CoordinatorType::Group,
                group_id.clone(),
                options,
            )),
            settings: Settings {
                group_id: group_id.clone(),
                instance_id: config.group_instance_id.clone(),
                rack: config.client_rack.clone(),
                server_assignor: config.group_remote_assignor.clone(),
                rebalance_timeout_ms,
            },
            group_id,
            instance_id: config.group_instance_id.clone(),
            rebalance_timeout: config.max_poll_interval,
            client,
            state: Mutex::new(ConsumerMemberState::new(config.heartbeat_interval)),
            wake: tokio::sync::Notify::new(),
            names: Mutex::new((BTreeMap::new(), BTreeMap::new())),
            last_refresh: Mutex::new(None),
            last_poll: Mutex::new(Instant::now()),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, ConsumerMemberState> {
        lock(&self.state)
    }

    /// Replaces the subscription; the next heartbeat (sent now) carries it.
    pub fn subscribe(&self, topics: &[String]) {
        self.lock().subscription = topics.to_vec();
        self.wake.notify_one();
    }

    /// Records what the application owns now and wakes the heartbeat task to
    /// acknowledge it.
    pub fn set_owned(&self, owned: &[TopicPartition]) {
        let ids: BTreeSet<IdPartition> = {
            let names = lock(&self.names);
            owned
                .iter()
                .filter_map(|(t, p)| names.1.get(t).map(|id| (*id, *p)))
                .collect()
        };
        {
            let mut s = self.lock();
            // A partition gained while joining or after the membership ended
            // has no epoch to count from.
            let epoch = (s.in_group && !s.lost && s.member_epoch > 0).then_some(s.member_epoch);
            let before = std::mem::take(&mut s.owned_since);
            s.owned_since = ids
                .iter()
                .filter_map(|id| Some((*id, before.get(id).copied().or(epoch)?)))
                .collect();
            s.owned = ids;
        }
        self.wake.notify_one();
    }

    /// Whether this membership has owned every one of `partitions` without a
    /// break since member epoch `epoch` (or earlier) and owns them now: then no
    /// other member can have owned them since, and offsets of records read from
    /// them under `epoch` may be committed under the current epoch (the
    /// coordinator takes offsets only with the member's current epoch).
    pub fn owned_throughout(&self, partitions: &[TopicPartition], epoch: i32) -> bool {
        let ids: Option<Vec<IdPartition>> = {
            let names = lock(&self.names);
            partitions
                .iter()
                .map(|(t, p)| names.1.get(t).map(|id| (*id, *p)))
                .collect()
        };
        let Some(ids) = ids else {
            return false;
        };
        let s = self.lock();
        s.in_group
            && !s.lost
            && ids
                .iter()
                .all(|id| s.owned_since.get(id).is_some_and(|since| *since <= epoch))
    }

    /// Waits (at most `wait`) for a heartbeat in flight, then returns this
    /// member's identity if its epoch is past `epoch` (and it is still in the
    /// group). The coordinator moves a member's epoch only in answer to its
    /// heartbeat, so afterwards the member knows the epoch the coordinator holds.
    pub async fn epoch_after(&self, epoch: i32, wait: Duration) -> Option<(i32, String)> {
        let _in_flight_done = tokio::time::timeout(wait, self.coordinator.lock()).await;
        let s = self.lock();
        (s.in_group && !s.lost && s.member_epoch > epoch)
            .then(|| (s.member_epoch, s.member_id.clone()))
    }

    /// The application dropped the lost partitions: rejoin now.
    pub fn release_lost(&self) {
        {
            let mut s = self.lock();
            s.owned.clear();
            s.owned_since.clear();
            s.lost = false;
        }
        self.wake.notify_one();
    }

    /// Records that the application polled.
    pub fn polled(&self) {
        *lock(&self.last_poll) = Instant::now();
    }

    fn poll_expired(&self) -> bool {
        lock(&self.last_poll).elapsed() > self.rebalance_timeout
    }

    /// Names a target given by topic id, looking the subscribed topics up (again,
    /// at most every [`REFRESH_INTERVAL`]) when an id is unknown. Unknown ids
    /// are returned; the caller tries again at its next poll.
    pub async fn resolve(
        &self,
        target: &BTreeSet<IdPartition>,
        subscription: &[String],
    ) -> (Vec<TopicPartition>, BTreeSet<Uuid>) {
        let (named, unknown) = resolve(target, &lock(&self.names).0);
        if unknown.is_empty() {
            return (named, unknown);
        }
        {
            let mut last = lock(&self.last_refresh);
            if last.is_some_and(|t| t.elapsed() < REFRESH_INTERVAL) {
                return (named, unknown);
            }
            *last = Some(Instant::now());
        }
        for topic in subscription {
            // The cached id may be stale (topic deleted and created again).
            self.client.invalidate_topic(topic);
            match self.client.topic(topic).await {
                Ok(info) => {
                    let mut names = lock(&self.names);
                    if let Some(old) = names.1.insert(topic.clone(), info.id) {
                        names.0.remove(&old);
                    }
                    names.0.insert(info.id, topic.clone());
                }
                Err(e) => debug!(topic, error = %e, "no metadata for a subscribed topic"),
            }
        }
        let (named, unknown) = resolve(target, &lock(&self.names).0);
        if !unknown.is_empty() {
            debug!(
                group = self.group_id,
                ?unknown,
                "assigned topic ids not in metadata yet"
            );
        }
        (named, unknown)
    }

    /// One heartbeat under the coordinator lock (so a commit never reads an
    /// epoch the broker has already replaced); see the module doc.
    pub async fn heartbeat(&self) -> Result<()> {
        let coordinator = self.coordinator.lock().await;
        self.heartbeat_locked(coordinator).await
    }

    /// A heartbeat the application asks for (`GroupHandle::heartbeat_now`,
    /// `GroupHandle::check_membership`), waiting at most `wait` for the coordinator
    /// connection. The consumer's own task may hold it for long (an OffsetFetch
    /// with `require_stable` waits for pending transactional offsets, possibly
    /// those of the transaction the caller is about to end); then nothing is sent
    /// and the member state is the answer: `Ok` here.
    pub async fn heartbeat_on_demand(&self, wait: Duration) -> Result<()> {
        match tokio::time::timeout(wait, self.coordinator.lock()).await {
            Ok(coordinator) => self.heartbeat_locked(coordinator).await,
            Err(_) => {
                debug!(
                    group = self.group_id,
                    "coordinator connection busy (offset request in flight); no heartbeat sent"
                );
                Ok(())
            }
        }
    }

    async fn heartbeat_locked(
        &self,
        mut coordinator: tokio::sync::MutexGuard<'_, Coordinator>,
    ) -> Result<()> {
        let version = match coordinator
            .connection()
            .await?
            .version_for::<ConsumerGroupHeartbeatRequest>()
        {
            Ok(version) => version,
            Err(e @ Error::NoCommonVersion { .. }) => {
                // A broker before Kafka 4.0 (or with the protocol disabled): no
                // retry can help, so every poll reports it.
                self.lock().fatal = Some((
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "{e}: the group coordinator does not offer the consumer group protocol (KIP-848); use group.protocol=classic"
                    ),
                ));
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let request = {
            let mut s = self.lock();
            if s.idle() {
                return Ok(());
            }
            if s.member_id.is_empty() && version >= 1 {
                // KIP-1082: from v1 on the member names itself, for its lifetime.
                s.member_id = generate_member_id();
            }
            s.request(&self.settings)
        };
        let interval = self.lock().heartbeat_interval;
        let deadline = Instant::now() + interval.max(Duration::from_secs(1));
        let result = coordinator
            .call(&request, Some(version), deadline, |r| {
                retriable_only(r.error_code)
            })
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                // The coordinator may or may not have seen it: resend every field.
                self.lock().full = true;
                return Err(e);
            }
        };
        let (code, epoch, member_id, target, first_unreleased) = {
            let mut s = self.lock();
            let before = s.unreleased_since.is_none();
            let code = s.apply(&request, &response, self.rebalance_timeout);
            let first_unreleased = before && s.unreleased_since.is_some();
            (
                code,
                s.member_epoch,
                s.member_id.clone(),
                s.target.clone(),
                first_unreleased,
            )
        };
        drop(coordinator);
        if first_unreleased {
            warn!(
                group = self.group_id,
                instance_id = self.instance_id,
                "group.instance.id held by a member that has not left (a killed process?); joining again until the broker's session timeout releases it"
            );
        }
        match code {
            ErrorCode::NoError => {
                if request.member_epoch == JOIN_EPOCH {
                    info!(
                        group = self.group_id,
                        member_id, epoch, version, "group joined (consumer protocol)"
                    );
                }
                debug!(
                    group = self.group_id,
                    epoch,
                    target = target.as_ref().map(BTreeSet::len),
                    acknowledged = request.topic_partitions.as_ref().map(Vec::len),
                    "heartbeat"
                );
                Ok(())
            }
            ErrorCode::FencedMemberEpoch | ErrorCode::UnknownMemberId => {
                warn!(
                    group = self.group_id,
                    member_id,
                    %code,
                    "membership lost; partitions lost, rejoining"
                );
                Err(group_error(code, "ConsumerGroupHeartbeat", &self.group_id))
            }
            other => {
                let context = self
                    .lock()
                    .fatal
                    .as_ref()
                    .map(|(_, c)| c.clone())
                    .unwrap_or_else(|| format!("ConsumerGroupHeartbeat (group {})", self.group_id));
                Err(Error::broker(other, context))
            }
        }
    }

    /// Leaves the group: member epoch -1 (dynamic, or static when `static_leaves`)
    /// or -2 (static: the broker keeps its partitions for the session timeout,
    /// waiting for it to come back).
    async fn send_leave(&self, static_leaves: bool) -> Result<()> {
        let mut coordinator = self.coordinator.lock().await;
        let (member_id, epoch) = {
            let s = self.lock();
            (s.member_id.clone(), s.member_epoch)
        };
        if member_id.is_empty() || epoch == JOIN_EPOCH {
            return Ok(());
        }
        let request = ConsumerGroupHeartbeatRequest {
            group_id: self.group_id.clone(),
            member_id,
            member_epoch: if self.instance_id.is_some() && !static_leaves {
                STATIC_LEAVE_EPOCH
            } else {
                LEAVE_EPOCH
            },
            instance_id: self.instance_id.clone(),
            ..Default::default()
        };
        let deadline = Instant::now() + self.client.config().request_timeout;
        let response = coordinator
            .call(&request, None, deadline, |r| retriable_only(r.error_code))
            .await?;
        let code = ErrorCode::from_code(response.error_code);
        info!(group = self.group_id, %code, epoch = request.member_epoch, "left the group");
        code.into_result()
            .map_err(|code| group_error(code, "ConsumerGroupHeartbeat (leave)", &self.group_id))
    }

    /// Leaves the group for good (the consumer closes); a static member only
    /// when `static_leaves`, else the broker keeps its assignment for its return.
    pub async fn leave(&self, static_leaves: bool) -> Result<()> {
        self.lock().closed = true;
        let result = self.send_leave(static_leaves).await;
        let mut s = self.lock();
        s.member_epoch = LEAVE_EPOCH;
        s.in_group = false;
        result
    }

    /// Gives up the membership because the application stopped polling; its
    /// next poll reports the partitions lost and joins again.
    async fn leave_for_poll_timeout(&self) {
        warn!(
            group = self.group_id,
            "no poll within max.poll.interval.ms; leaving the group"
        );
        if let Err(e) = self.send_leave(false).await {
            debug!(error = %e, "leaving after the poll timeout failed");
        }
        self.lock().fence();
    }

    /// The member id and epoch an offset request is checked against: none (a
    /// plain commit, as by a consumer outside the group) while not in the group.
    fn identity(&self) -> Option<(String, i32)> {
        let s = self.lock();
        s.in_group.then(|| (s.member_id.clone(), s.member_epoch))
    }

    /// OffsetCommit v9 under the current member epoch.
    pub async fn commit(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.client.config().request_timeout;
        let mut coordinator = self.coordinator.lock().await;
        let (member_id, epoch) = self.identity().unwrap_or((String::new(), -1));
        let who = offsets::Committer {
            group_id: &self.group_id,
            member_id,
            generation_or_epoch: epoch,
            instance_id: self.instance_id.clone(),
        };
        let code = offsets::commit(&mut coordinator, who, offsets, 9, deadline).await?;
        drop(coordinator);
        if matches!(
            code,
            ErrorCode::FencedMemberEpoch | ErrorCode::UnknownMemberId
        ) && epoch > 0
        {
            let mut s = self.lock();
            if s.member_epoch == epoch {
                s.fence();
            }
        }
        code.into_result()
            .map_err(|code| group_error(code, "OffsetCommit", &self.group_id))
    }

    /// OffsetFetch v9 with the member id and epoch (partitions without a
    /// committed offset are left out).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let deadline = Instant::now() + self.client.config().request_timeout;
        let mut coordinator = self.coordinator.lock().await;
        let member = self
            .identity()
            .map(|(member_id, member_epoch)| offsets::FetchingMember {
                member_id,
                member_epoch,
            });
        offsets::fetch(
            &mut coordinator,
            &self.group_id,
            member,
            partitions,
            deadline,
        )
        .await
    }
}

/// The heartbeat task of a KIP-848 member: heartbeats at the broker's interval,
/// or at once when woken; leaves when the application stops polling.
pub(crate) async fn heartbeat_loop(member: std::sync::Arc<ConsumerMember>) {
    loop {
        let (idle, done, in_group) = {
            let s = member.lock();
            (s.idle(), s.closed || s.fatal.is_some(), s.in_group)
        };
        if done {
            return;
        }
        if !idle {
            if in_group && member.poll_expired() {
                member.leave_for_poll_timeout().await;
                continue;
            }
            if let Err(e) = member.heartbeat().await {
                debug!(group = member.group_id, error = %e, "heartbeat failed");
            }
        }
        let interval = member.lock().heartbeat_interval;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = member.wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::consumer_group_heartbeat_response::{
        Assignment, TopicPartitions as ResponsePartitions,
    };

    /// How long joins refused with UNRELEASED_INSTANCE_ID are retried.
    const WAIT: Duration = Duration::from_secs(300);

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_string(), p)
    }

    #[test]
    fn reconcile_revokes_what_moved_keeps_the_rest_and_adds_the_new() {
        let owned = [tp("a", 0), tp("a", 1), tp("b", 0)];
        let target = [tp("a", 1), tp("b", 0), tp("b", 1), tp("c", 2)];
        let plan = reconcile(&owned, &target);
        assert_eq!(plan.revoke, vec![tp("a", 0)]);
        assert_eq!(plan.keep, vec![tp("a", 1), tp("b", 0)]);
        assert_eq!(plan.assign, vec![tp("b", 1), tp("c", 2)]);
    }

    #[test]
    fn reconcile_of_an_unchanged_assignment_does_nothing() {
        let owned = [tp("a", 0), tp("a", 1)];
        let plan = reconcile(&owned, &[tp("a", 1), tp("a", 0)]);
        assert!(plan.revoke.is_empty() && plan.assign.is_empty());
        assert_eq!(plan.keep.len(), 2);
    }

    #[test]
    fn reconcile_to_nothing_revokes_everything_and_from_nothing_assigns_everything() {
        let all = [tp("a", 0), tp("a", 1)];
        let plan = reconcile(&all, &[]);
        assert_eq!(
            (plan.revoke.len(), plan.keep.len(), plan.assign.len()),
            (2, 0, 0)
        );
        let plan = reconcile(&[], &all);
        assert_eq!(
            (plan.revoke.len(), plan.keep.len(), plan.assign.len()),
            (0, 0, 2)
        );
    }

    #[test]
    fn resolve_names_known_ids_and_returns_unknown_ones() {
        let (a, b) = (Uuid([1; 16]), Uuid([2; 16]));
        let names = BTreeMap::from([(a, "a".to_string())]);
        let target = BTreeSet::from([(a, 0), (a, 3), (b, 1)]);
        let (named, unknown) = resolve(&target, &names);
        assert_eq!(named, vec![tp("a", 0), tp("a", 3)]);
        assert_eq!(unknown, BTreeSet::from([b]));
    }

    fn settings() -> Settings {
        Settings {
            group_id: "g".into(),
            instance_id: Some("i".into()),
            rack: None,
            server_assignor: Some("uniform".into()),
            rebalance_timeout_ms: 10_000,
        }
    }

    fn ok(epoch: i32, target: Option<Vec<(Uuid, Vec<i32>)>>) -> ConsumerGroupHeartbeatResponse {
        ConsumerGroupHeartbeatResponse {
            member_epoch: epoch,
            heartbeat_interval_ms: 5000,
            assignment: target.map(|t| Assignment {
                topic_partitions: t
                    .into_iter()
                    .map(|(topic_id, partitions)| ResponsePartitions {
                        topic_id,
                        partitions,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn joining_sends_every_field_and_later_heartbeats_only_what_changed() {
        let t = Uuid([7; 16]);
        let mut s = ConsumerMemberState::new(Duration::from_millis(100));
        s.member_id = "m".into();
        s.subscription = vec!["a".into()];
        let join = s.request(&settings());
        assert_eq!(join.member_epoch, 0);
        assert_eq!(join.subscribed_topic_names, Some(vec!["a".to_string()]));
        assert_eq!(join.topic_partitions, Some(Vec::new()));
        assert_eq!(join.rebalance_timeout_ms, 10_000);
        assert_eq!(join.server_assignor.as_deref(), Some("uniform"));
        assert_eq!(join.instance_id.as_deref(), Some("i"));

        assert_eq!(
            s.apply(&join, &ok(3, Some(vec![(t, vec![0, 1])])), WAIT),
            ErrorCode::NoError
        );
        assert_eq!(s.member_epoch, 3);
        assert!(s.joined && s.in_group);
        assert_eq!(s.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(s.target, Some(BTreeSet::from([(t, 0), (t, 1)])));
        assert!(s.reconciling());

        // Nothing changed: every optional field null.
        let quiet = s.request(&settings());
        assert_eq!(quiet.member_epoch, 3);
        assert_eq!(quiet.subscribed_topic_names, None);
        assert_eq!(quiet.topic_partitions, None);
        assert_eq!(quiet.rebalance_timeout_ms, -1);
        assert_eq!((quiet.instance_id, quiet.server_assignor), (None, None));

        // The application took its partitions: the next heartbeat acknowledges them.
        s.owned = BTreeSet::from([(t, 0), (t, 1)]);
        assert!(!s.reconciling());
        let ack = s.request(&settings());
        let acked = ack.topic_partitions.clone().unwrap();
        assert_eq!((acked.len(), acked[0].partitions.clone()), (1, vec![0, 1]));
        assert_eq!(ack.subscribed_topic_names, None);
        s.apply(&ack, &ok(3, None), WAIT);
        assert_eq!(s.request(&settings()).topic_partitions, None);
        assert_eq!(s.target, Some(BTreeSet::from([(t, 0), (t, 1)])), "kept");
    }

    #[test]
    fn a_failed_heartbeat_makes_the_next_one_full() {
        let mut s = ConsumerMemberState::new(Duration::from_millis(100));
        s.subscription = vec!["a".into()];
        let join = s.request(&settings());
        s.apply(&join, &ok(1, Some(Vec::new())), WAIT);
        s.full = true; // what heartbeat() does when the call fails
        let next = s.request(&settings());
        assert_eq!(next.member_epoch, 1);
        assert!(next.subscribed_topic_names.is_some() && next.topic_partitions.is_some());
        assert_eq!(next.rebalance_timeout_ms, 10_000);
    }

    #[test]
    fn fenced_or_unknown_member_loses_the_partitions_and_rejoins_with_epoch_zero() {
        for code in [ErrorCode::FencedMemberEpoch, ErrorCode::UnknownMemberId] {
            let t = Uuid([1; 16]);
            let mut s = ConsumerMemberState::new(Duration::from_millis(100));
            s.subscription = vec!["a".into()];
            let join = s.request(&settings());
            s.apply(&join, &ok(4, Some(vec![(t, vec![0])])), WAIT);
            s.owned = BTreeSet::from([(t, 0)]);
            let hb = s.request(&settings());
            let fenced = ConsumerGroupHeartbeatResponse {
                error_code: code.code(),
                ..Default::default()
            };
            assert_eq!(s.apply(&hb, &fenced, WAIT), code);
            assert!(s.lost && s.reconciling());
            assert_eq!(s.member_epoch, 0);
            assert!(s.idle(), "waits until the application drops the partitions");
            s.owned.clear();
            s.lost = false;
            assert!(!s.idle());
            let rejoin = s.request(&settings());
            assert_eq!(rejoin.member_epoch, 0);
            assert_eq!(rejoin.topic_partitions, Some(Vec::new()));
        }
    }

    #[test]
    fn membership_errors_are_fatal_with_a_clear_message() {
        let mut s = ConsumerMemberState::new(Duration::from_millis(100));
        s.subscription = vec!["a".into()];
        let join = s.request(&settings());
        let refused = ConsumerGroupHeartbeatResponse {
            error_code: ErrorCode::UnsupportedAssignor.code(),
            error_message: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(
            s.apply(&join, &refused, WAIT),
            ErrorCode::UnsupportedAssignor
        );
        let (code, context) = s.fatal.clone().unwrap();
        assert_eq!(code, ErrorCode::UnsupportedAssignor);
        assert!(context.contains("group.remote.assignor") && context.contains("nope"));
        assert!(s.idle());
    }

    #[test]
    fn an_unreleased_instance_id_is_joined_again_until_the_wait_runs_out() {
        let mut s = ConsumerMemberState::new(Duration::from_millis(100));
        s.subscription = vec!["a".into()];
        let join = s.request(&settings());
        let refused = ConsumerGroupHeartbeatResponse {
            error_code: ErrorCode::UnreleasedInstanceId.code(),
            ..Default::default()
        };
        // A killed process of this instance has not left: join again later.
        assert_eq!(
            s.apply(&join, &refused, WAIT),
            ErrorCode::UnreleasedInstanceId
        );
        assert!(s.fatal.is_none() && !s.idle());
        assert_eq!(s.request(&settings()).member_epoch, JOIN_EPOCH);
        assert_eq!(s.apply(&join, &ok(5, None), WAIT), ErrorCode::NoError);
        assert!(s.in_group && s.unreleased_since.is_none());
        // Refused for longer than the wait: another live member holds it.
        let mut s = ConsumerMemberState::new(Duration::from_millis(100));
        s.subscription = vec!["a".into()];
        let short = Duration::from_millis(20);
        s.apply(&join, &refused, short);
        std::thread::sleep(short * 2);
        s.apply(&join, &refused, short);
        let (code, context) = s.fatal.clone().unwrap();
        assert_eq!(code, ErrorCode::UnreleasedInstanceId);
        assert!(context.contains("has not left"), "{context}");
    }

    #[test]
    fn a_member_with_no_subscription_does_not_join() {
        let s = ConsumerMemberState::new(Duration::from_millis(100));
        assert!(s.idle());
        assert!(!s.reconciling());
    }

    #[test]
    fn generated_member_ids_are_uuids_and_differ() {
        let a = generate_member_id();
        let b = generate_member_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
    }
}
