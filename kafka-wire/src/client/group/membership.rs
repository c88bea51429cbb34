//! The classic group protocol of one member: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit and OffsetFetch against the group coordinator.
//!
//! ```text
//!  join ──► JoinGroup ──MEMBER_ID_REQUIRED──► JoinGroup (with the given member id)
//!             │ leader: run the assignor over every member's subscription
//!             ▼
//!           SyncGroup ──► this member's partitions      (REBALANCE_IN_PROGRESS,
//!             │                                          ILLEGAL_GENERATION,
//!  heartbeat task: Heartbeat every heartbeat.interval.ms UNKNOWN_MEMBER_ID: join again)
//!             └─► REBALANCE_IN_PROGRESS ─► rejoin at the next poll
//!                 ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID ─► partitions lost, rejoin
//!                 FENCED_INSTANCE_ID ─► fatal
//! ```
//!
//! Requests go to the coordinator over a connection of the member's own, whose
//! request timeout covers a JoinGroup waiting out the rebalance timeout
//! (`max.poll.interval.ms`). Coordinator moves (NOT_COORDINATOR,
//! COORDINATOR_NOT_AVAILABLE) and other retriable codes are retried by
//! [`Coordinator::call`]; the group codes above are handled here. OffsetCommit
//! and OffsetFetch are shared with the consumer protocol (`offsets.rs`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::assignor::{self, Assignor, MemberSubscription};
use super::offsets::{self, group_error};
use crate::client::TopicPartition;
use crate::client::cluster::Client;
use crate::client::config::ConsumerConfig;
use crate::client::connection::ConnectionOptions;
use crate::client::transaction::coordinator::{Coordinator, CoordinatorType};
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::messages::join_group_request::JoinGroupRequestProtocol;
use crate::protocol::messages::leave_group_request::MemberIdentity;
use crate::protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use crate::protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use crate::sync::lock;

/// The member's standing in the group.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClassicMemberState {
    pub member_id: String,
    pub generation: i32,
    /// Joined and synced; heartbeats run.
    pub stable: bool,
    /// A rebalance is needed (heartbeat said so, or a commit failed with a generation error).
    pub rejoin: bool,
    /// The generation was lost (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, session
    /// expired): the partitions may already belong to someone else.
    pub lost: bool,
    pub fatal: Option<String>,
    /// The partitions this member holds, since which generation without a break
    /// (see [`Membership::owned_throughout`]).
    pub held: BTreeMap<TopicPartition, Held>,
    /// A JoinGroup or SyncGroup is in flight (it holds the coordinator connection
    /// until every member has joined).
    pub joining: bool,
}

/// Marks a join in flight for as long as it lives (also when the join is dropped).
struct Joining<'a>(&'a Membership);

impl Drop for Joining<'_> {
    fn drop(&mut self) {
        self.0.lock().joining = false;
        self.0.notify_join_progress();
    }
}

/// How long a member has held a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    /// The generation since which it holds it without a break.
    pub since: i32,
    /// Revoked by this generation's assignment (cooperative): still held, since no
    /// other member gets it before this member joins again.
    pub until: Option<i32>,
}

/// One member's protocol state, shared by the consumer and its heartbeat task.
pub(crate) struct Membership {
    pub group_id: String,
    pub instance_id: Option<String>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
    assignors: Vec<Assignor>,
    rack: Option<String>,
    client: Client,
    pub coordinator: tokio::sync::Mutex<Coordinator>,
    pub state: Mutex<ClassicMemberState>,
    /// The partition counts the last assignment used, when this member led it:
    /// a change (topic created, partitions added) calls for a new assignment.
    pub assigned_counts: Mutex<Option<BTreeMap<String, i32>>>,
    subscribed: Mutex<Vec<String>>,
    /// When the application last polled (for `max.poll.interval.ms`).
    last_poll: Mutex<Instant>,
    /// Woken when a join sets a generation and when it ends.
    join_progress: tokio::sync::Notify,
}

/// What a member holds after the assignment `assigned` of `generation`, having
/// joined with `owned` (empty for eager assignors, which give everything up
/// first): what it kept keeps its `since`, what is new starts at `generation`,
/// and what it owned but was not assigned stays held through `generation` only.
fn held_after(
    before: &BTreeMap<TopicPartition, Held>,
    owned: &[TopicPartition],
    assigned: &[TopicPartition],
    generation: i32,
) -> BTreeMap<TopicPartition, Held> {
    let kept = |tp: &TopicPartition| {
        before
            .get(tp)
            .filter(|h| h.until.is_none() && owned.contains(tp))
            .map(|h| h.since)
    };
    let mut held: BTreeMap<TopicPartition, Held> = assigned
        .iter()
        .map(|tp| {
            let since = kept(tp).unwrap_or(generation);
            (tp.clone(), Held { since, until: None })
        })
        .collect();
    for tp in owned.iter().filter(|tp| !assigned.contains(tp)) {
        if let Some(since) = kept(tp) {
            held.insert(
                tp.clone(),
                Held {
                    since,
                    until: Some(generation),
                },
            );
        }
    }
    held
}

/// Codes the coordinator call retries by itself; group codes come back in the response.
fn retriable_only(code: i16) -> ErrorCode {
    let code = ErrorCode::from_code(code);
    if code.is_retriable() {
        code
    } else {
        ErrorCode::NoError
    }
}

impl Membership {
    pub fn new(client: Client, config: &ConsumerConfig, group_id: String) -> Result<Membership> {
        let assignors: Vec<Assignor> = config
            .partition_assignment_strategy
            .iter()
            .filter_map(|s| Assignor::from_name(s))
            .collect();
        if assignors.is_empty() {
            return Err(Error::Config {
                key: "partition.assignment.strategy".into(),
                message: "none of the configured assignors is implemented (range, roundrobin, cooperative-sticky, cooperative-copartitioned, exclusive)"
                    .into(),
            });
        }
        let c = client.config();
        let options = ConnectionOptions {
            client_id: c.client_id.clone(),
            request_timeout: config.max_poll_interval.max(c.request_timeout)
                + Duration::from_secs(5),
            connect_timeout: c.connection_setup_timeout,
            max_in_flight: c.max_in_flight_per_connection,
            max_response_size: c.max_response_size,
            security: c.security.clone(),
        };
        Ok(Membership {
            coordinator: tokio::sync::Mutex::new(Coordinator::dedicated(
                client.clone(),
                CoordinatorType::Group,
                group_id.clone(),
                options,
            )),
            group_id,
            instance_id: config.group_instance_id.clone(),
            session_timeout: config.session_timeout,
            rebalance_timeout: config.max_poll_interval,
            heartbeat_interval: config.heartbeat_interval,
            assignors,
            rack: config.client_rack.clone(),
            client,
            assigned_counts: Mutex::new(None),
            subscribed: Mutex::new(Vec::new()),
            last_poll: Mutex::new(Instant::now()),
            join_progress: tokio::sync::Notify::new(),
            state: Mutex::new(ClassicMemberState {
                generation: -1,
                rejoin: true,
                ..Default::default()
            }),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, ClassicMemberState> {
        lock(&self.state)
    }

    /// Whether this member has held every one of `partitions` without a break
    /// since `generation` (or earlier) and still holds them in its current one:
    /// kept through cooperative rebalances, or revoked by the current
    /// generation's assignment and not yet given up by joining again. No other
    /// member can have owned them since, so offsets of records read under
    /// `generation` may be committed under the current one.
    pub fn owned_throughout(&self, partitions: &[TopicPartition], generation: i32) -> bool {
        let s = self.lock();
        s.generation >= 0
            && !s.lost
            && s.fatal.is_none()
            && partitions.iter().all(|tp| {
                s.held.get(tp).is_some_and(|h| {
                    h.since <= generation && h.until.is_none_or(|u| u == s.generation)
                })
            })
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.rebalance_timeout + self.session_timeout
    }

    /// Wakes [`Membership::generation_after`]: a join set a generation or ended.
    pub fn notify_join_progress(&self) {
        self.join_progress.notify_waiters();
    }

    /// Waits (at most `wait`) for the join in flight to move this member past
    /// `generation`, and returns its generation and member id then. `None` when
    /// no join is in flight, the join ended without a later generation, the
    /// generation was lost, or the wait ran out.
    ///
    /// The coordinator answers every member's JoinGroup once all have joined, and
    /// from then on refuses the old generation: a TxnOffsetCommit sent in between
    /// comes back ILLEGAL_GENERATION although this member is in the new one.
    pub async fn generation_after(&self, generation: i32, wait: Duration) -> Option<(i32, String)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let progress = self.join_progress.notified();
            let mut progress = std::pin::pin!(progress);
            progress.as_mut().enable();
            {
                let s = self.lock();
                if s.lost || s.fatal.is_some() || s.member_id.is_empty() {
                    return None;
                }
                if s.generation > generation {
                    return Some((s.generation, s.member_id.clone()));
                }
                if !s.joining {
                    return None;
                }
            }
            tokio::time::timeout_at(deadline, progress).await.ok()?;
        }
    }

    /// Joins (or rejoins) the group and returns this member's partitions for the
    /// new generation. Loops through MEMBER_ID_REQUIRED, UNKNOWN_MEMBER_ID and
    /// rebalances that restart while joining, up to the rebalance timeout.
    pub async fn join(
        &self,
        topics: &[String],
        owned: &[TopicPartition],
    ) -> Result<Vec<TopicPartition>> {
        let deadline = self.deadline();
        *lock(&self.assigned_counts) = None;
        *lock(&self.subscribed) = topics.to_vec();
        self.lock().joining = true;
        let _joining = Joining(self);
        for attempt in 0..50 {
            if Instant::now() >= deadline {
                break;
            }
            let (member_id, generation) = {
                let s = self.lock();
                (s.member_id.clone(), s.generation)
            };
            let metadata =
                assignor::encode_subscription(topics, owned, generation, self.rack.as_deref())?;
            let request = JoinGroupRequest {
                group_id: self.group_id.clone(),
                session_timeout_ms: self.session_timeout.as_millis() as i32,
                rebalance_timeout_ms: self.rebalance_timeout.as_millis() as i32,
                member_id: member_id.clone(),
                group_instance_id: self.instance_id.clone(),
                protocol_type: "consumer".into(),
                protocols: self
                    .assignors
                    .iter()
                    .map(|a| JoinGroupRequestProtocol {
                        name: a.name().into(),
                        metadata: metadata.clone(),
                        ..Default::default()
                    })
                    .collect(),
                reason: Some(if attempt == 0 {
                    "joining".into()
                } else {
                    "rejoining".into()
                }),
                ..Default::default()
            };
            let mut coordinator = self.coordinator.lock().await;
            let response = coordinator
                .call(&request, None, deadline, |r| retriable_only(r.error_code))
                .await?;
            let code = ErrorCode::from_code(response.error_code);
            if code == ErrorCode::NoError {
                // Still holding the coordinator connection: a heartbeat the
                // application asks for after this answer carries the new
                // generation (`heartbeat_on_demand` reads it under that lock);
                // one with the old generation would be ILLEGAL_GENERATION.
                let mut s = self.lock();
                s.member_id = response.member_id.clone();
                s.generation = response.generation_id;
                self.notify_join_progress();
            }
            drop(coordinator);
            match code {
                ErrorCode::NoError => {}
                ErrorCode::MemberIdRequired => {
                    // KIP-394: the coordinator hands out the id; join again with it.
                    self.lock().member_id = response.member_id;
                    continue;
                }
                ErrorCode::UnknownMemberId => {
                    let mut s = self.lock();
                    s.member_id.clear();
                    s.generation = -1;
                    continue;
                }
                ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration => continue,
                ErrorCode::FencedInstanceId => {
                    let e = group_error(code, "JoinGroup", &self.group_id);
                    self.lock().fatal = Some(e.to_string());
                    return Err(e);
                }
                ErrorCode::InconsistentGroupProtocol => {
                    let names: Vec<&str> = self.assignors.iter().map(|a| a.name()).collect();
                    return Err(Error::broker(
                        code,
                        format!(
                            "JoinGroup (group {}): the group's members support none of this member's assignors ({}), or it is not a consumer group; to change assignors while members run, list the old one after the new (e.g. partition.assignment.strategy={},range) until no member lacks the new one",
                            self.group_id,
                            names.join(", "),
                            names.first().copied().unwrap_or("cooperative-sticky"),
                        ),
                    ));
                }
                other => return Err(group_error(other, "JoinGroup", &self.group_id)),
            }
            let generation = response.generation_id;
            let member_id = response.member_id.clone();
            {
                let mut s = self.lock();
                s.member_id = member_id.clone();
                s.generation = generation;
            }
            let protocol = response.protocol_name.clone().unwrap_or_default();
            let assignments = if response.leader == member_id && !response.skip_assignment {
                self.assign(&protocol, &response.members).await?
            } else {
                Vec::new()
            };
            debug!(
                group = self.group_id,
                member_id,
                generation,
                leader = response.leader == member_id,
                "joined; syncing"
            );
            let sync = SyncGroupRequest {
                group_id: self.group_id.clone(),
                generation_id: generation,
                member_id: member_id.clone(),
                group_instance_id: self.instance_id.clone(),
                protocol_type: Some("consumer".into()),
                protocol_name: Some(protocol),
                assignments,
                ..Default::default()
            };
            let response = self
                .coordinator
                .lock()
                .await
                .call(&sync, None, deadline, |r| retriable_only(r.error_code))
                .await?;
            match ErrorCode::from_code(response.error_code) {
                ErrorCode::NoError => {
                    let partitions = assignor::decode_assignment(&response.assignment)?;
                    let mut s = self.lock();
                    s.stable = true;
                    s.rejoin = false;
                    s.lost = false;
                    s.held = held_after(&s.held, owned, &partitions, generation);
                    info!(
                        group = self.group_id,
                        member_id,
                        generation,
                        partitions = partitions.len(),
                        "group joined"
                    );
                    return Ok(partitions);
                }
                ErrorCode::RebalanceInProgress | ErrorCode::IllegalGeneration => continue,
                ErrorCode::UnknownMemberId => {
                    let mut s = self.lock();
                    s.member_id.clear();
                    s.generation = -1;
                    continue;
                }
                code @ ErrorCode::FencedInstanceId => {
                    let e = group_error(code, "SyncGroup", &self.group_id);
                    self.lock().fatal = Some(e.to_string());
                    return Err(e);
                }
                other => return Err(group_error(other, "SyncGroup", &self.group_id)),
            }
        }
        Err(Error::Timeout {
            context: format!("joining group {}", self.group_id),
        })
    }

    /// The leader's assignment for every member.
    async fn assign(
        &self,
        protocol: &str,
        members: &[crate::protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let assignor = Assignor::from_name(protocol).ok_or_else(|| {
            Error::broker(
                ErrorCode::InconsistentGroupProtocol,
                format!("the group chose assignor {protocol}, which is not implemented"),
            )
        })?;
        let mut subscriptions = Vec::with_capacity(members.len());
        for m in members {
            let sub = assignor::decode_subscription(&m.metadata)?;
            subscriptions.push(MemberSubscription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                topics: sub.topics,
                owned: sub
                    .owned_partitions
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.clone(), p)))
                    .collect(),
                generation: sub.generation_id,
            });
        }
        let mut counts = BTreeMap::new();
        let topics: std::collections::BTreeSet<&String> =
            subscriptions.iter().flat_map(|s| &s.topics).collect();
        for topic in topics {
            // Fresh metadata: the leader must see partitions added since the last
            // look. A topic just created may take a moment to appear everywhere.
            self.client.invalidate_topic(topic);
            let wait = self.session_timeout.min(Duration::from_secs(10));
            let found = self
                .client
                .retry("subscribed topic metadata", wait, || async {
                    let info = self.client.topic(topic).await?;
                    if info.partitions.is_empty() {
                        self.client.invalidate_topic(topic);
                        return Err(Error::broker(
                            ErrorCode::LeaderNotAvailable,
                            format!("topic {topic} has no partitions yet"),
                        ));
                    }
                    Ok(info.partitions.len() as i32)
                })
                .await;
            match found {
                Ok(count) => {
                    counts.insert(topic.clone(), count);
                }
                // Not allowed to describe a subscribed topic: the member's poll
                // fails naming it, rather than leaving the topic unassigned.
                Err(e) if e.is_authorization() => return Err(e),
                Err(e) => {
                    warn!(topic, error = %e, "subscribed topic has no metadata; not assigned")
                }
            }
        }
        *lock(&self.assigned_counts) = Some(counts.clone());
        let plan = assignor.assign(&subscriptions, &counts);
        plan.into_iter()
            .map(|(member_id, partitions)| {
                Ok(SyncGroupRequestAssignment {
                    member_id,
                    assignment: assignor::encode_assignment(&partitions)?,
                    ..Default::default()
                })
            })
            .collect()
    }

    /// One heartbeat; updates the member state from the answer. Sent only while
    /// the member is stable (joined and synced).
    pub async fn heartbeat(&self) -> Result<()> {
        let mut coordinator = self.coordinator.lock().await;
        // Read under the lock: a join that held it may have moved the generation.
        let Some(request) = self.heartbeat_request(false) else {
            return Ok(());
        };
        self.send_heartbeat(&mut coordinator, request).await
    }

    /// A heartbeat the application asks for (`GroupHandle::heartbeat_now`,
    /// `GroupHandle::check_membership`). With `while_rebalancing` it is sent even
    /// while a rejoin is pending: until this member joins again, its generation is
    /// still the group's, and the answer (REBALANCE_IN_PROGRESS, or
    /// ILLEGAL_GENERATION once the group moved on without it) says whether it still
    /// belongs to it.
    ///
    /// Waits at most `wait` for the coordinator connection. The consumer's own task
    /// may hold it for long: a JoinGroup waits out the rebalance, and an OffsetFetch
    /// with `require_stable` waits for pending transactional offsets, possibly those
    /// of the transaction the caller is about to end. Then nothing is sent and the
    /// member state (which that call keeps current) is the answer: `Ok` here.
    pub async fn heartbeat_on_demand(&self, while_rebalancing: bool, wait: Duration) -> Result<()> {
        if while_rebalancing && self.lock().joining {
            // The join holds the connection until every member has joined (a
            // cooperative member keeps working meanwhile): the state answers.
            debug!(group = self.group_id, "join in flight; no heartbeat sent");
            return Ok(());
        }
        let Ok(mut coordinator) = tokio::time::timeout(wait, self.coordinator.lock()).await else {
            debug!(
                group = self.group_id,
                "coordinator connection busy (join or offset fetch in flight); no heartbeat sent"
            );
            return Ok(());
        };
        // Read under the lock: a join that just finished has set the new generation.
        let Some(request) = self.heartbeat_request(while_rebalancing) else {
            return Ok(());
        };
        self.send_heartbeat(&mut coordinator, request).await
    }

    /// The heartbeat of the current generation, if one is due: while stable, or
    /// (with `while_rebalancing`) while the member still holds a generation it has
    /// not lost. None when fatal.
    fn heartbeat_request(&self, while_rebalancing: bool) -> Option<HeartbeatRequest> {
        let s = self.lock();
        let in_generation = if while_rebalancing {
            s.generation >= 0 && !s.member_id.is_empty() && !s.lost
        } else {
            s.stable
        };
        if !in_generation || s.fatal.is_some() {
            return None;
        }
        Some(HeartbeatRequest {
            group_id: self.group_id.clone(),
            generation_id: s.generation,
            member_id: s.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
            ..Default::default()
        })
    }

    async fn send_heartbeat(
        &self,
        coordinator: &mut Coordinator,
        request: HeartbeatRequest,
    ) -> Result<()> {
        let deadline = Instant::now() + self.heartbeat_interval;
        let response = coordinator
            .call(&request, None, deadline, |r| retriable_only(r.error_code))
            .await?;
        let code = ErrorCode::from_code(response.error_code);
        if code != ErrorCode::NoError && self.lock().generation != request.generation_id {
            // A join finished meanwhile: the answer is about a generation this
            // member has already left behind.
            return Ok(());
        }
        self.on_generation_error(code, "Heartbeat");
        match code {
            ErrorCode::NoError => Ok(()),
            other => Err(group_error(other, "Heartbeat", &self.group_id)),
        }
    }

    /// Applies a group error code met by a heartbeat or a commit.
    fn on_generation_error(&self, code: ErrorCode, what: &str) {
        let mut s = self.lock();
        match code {
            ErrorCode::RebalanceInProgress => {
                s.rejoin = true;
                s.stable = false;
            }
            ErrorCode::IllegalGeneration => {
                s.rejoin = true;
                s.stable = false;
                s.lost = true;
            }
            ErrorCode::UnknownMemberId => {
                s.rejoin = true;
                s.stable = false;
                s.lost = true;
                s.member_id.clear();
                s.generation = -1;
            }
            ErrorCode::FencedInstanceId => {
                s.stable = false;
                s.fatal = Some(format!(
                    "{what}: group.instance.id {:?} was taken over by another member (FENCED_INSTANCE_ID)",
                    self.instance_id
                ));
            }
            _ => return,
        }
        debug!(group = self.group_id, %code, what, "group generation changed");
    }

    /// Marks the session as expired (no heartbeat answered for `session.timeout.ms`).
    pub fn session_expired(&self) {
        let mut s = self.lock();
        if s.stable {
            warn!(
                group = self.group_id,
                "no heartbeat answer within session.timeout.ms; partitions lost"
            );
            s.stable = false;
            s.rejoin = true;
            s.lost = true;
        }
    }

    /// Whether rebalances are cooperative (KIP-429): only when every configured
    /// assignor is, as in the Java client.
    pub fn cooperative(&self) -> bool {
        self.assignors.iter().all(|a| a.is_cooperative())
    }

    /// Records that the application polled.
    pub fn polled(&self) {
        *lock(&self.last_poll) = Instant::now();
    }

    /// Whether the application has not polled for longer than `max.poll.interval.ms`.
    pub fn poll_expired(&self) -> bool {
        lock(&self.last_poll).elapsed() > self.rebalance_timeout
    }

    /// Gives up the membership because the application stopped polling: a
    /// dynamic member sends LeaveGroup so the group rebalances now (a static
    /// member just stops heartbeating, as the Java client does). The next poll
    /// reports the partitions lost and joins again.
    pub async fn leave_for_poll_timeout(&self) {
        warn!(
            group = self.group_id,
            "no poll within max.poll.interval.ms; leaving the group"
        );
        if self.instance_id.is_none() {
            if let Err(e) = self.leave("consumer poll timeout has expired").await {
                debug!(error = %e, "LeaveGroup after the poll timeout failed");
            }
        }
        let mut s = self.lock();
        s.stable = false;
        s.rejoin = true;
        s.lost = true;
        s.generation = -1;
    }

    /// The session timeout.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// As leader, asks for a new assignment when a subscribed topic's partition
    /// count differs from the one the current assignment used (metadata as cached,
    /// refreshed every `metadata.max.age.ms`). Returns whether a rebalance was requested.
    pub async fn check_metadata(&self) -> bool {
        let Some(counts) = lock(&self.assigned_counts).clone() else {
            return false;
        };
        let mut topics: Vec<String> = counts.keys().cloned().collect();
        // Subscribed topics without metadata at assignment time count as 0 partitions.
        let subscribed = lock(&self.subscribed).clone();
        for t in subscribed {
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
        for topic in topics {
            let now = match self.client.topic(&topic).await {
                Ok(info) => info.partitions.len() as i32,
                Err(_) => 0,
            };
            if now != counts.get(&topic).copied().unwrap_or(0) {
                info!(
                    group = self.group_id,
                    topic,
                    partitions = now,
                    "subscribed topic changed; rebalancing"
                );
                self.lock().rejoin = true;
                return true;
            }
        }
        false
    }

    /// OffsetCommit (v8 at most: topics by name) under the current generation.
    pub async fn commit(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let (member_id, generation) = {
            let s = self.lock();
            (s.member_id.clone(), s.generation)
        };
        let who = offsets::Committer {
            group_id: &self.group_id,
            member_id,
            generation_or_epoch: generation,
            instance_id: self.instance_id.clone(),
        };
        let deadline = Instant::now() + self.client.config().request_timeout;
        let code = offsets::commit(
            &mut *self.coordinator.lock().await,
            who,
            offsets,
            8,
            deadline,
        )
        .await?;
        self.on_generation_error(code, "OffsetCommit");
        code.into_result()
            .map_err(|code| group_error(code, "OffsetCommit", &self.group_id))
    }

    /// OffsetFetch (v7: `require_stable`, so offsets of open transactions are
    /// waited for). Partitions without a committed offset are left out.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let deadline = Instant::now() + self.rebalance_timeout;
        offsets::fetch(
            &mut *self.coordinator.lock().await,
            &self.group_id,
            None,
            partitions,
            deadline,
        )
        .await
    }

    /// LeaveGroup, so the group rebalances now instead of after the session timeout.
    pub async fn leave(&self, reason: &str) -> Result<()> {
        let member_id = {
            let mut s = self.lock();
            s.stable = false;
            std::mem::take(&mut s.member_id)
        };
        if member_id.is_empty() {
            return Ok(());
        }
        let request = LeaveGroupRequest {
            group_id: self.group_id.clone(),
            member_id: member_id.clone(),
            members: vec![MemberIdentity {
                member_id,
                group_instance_id: self.instance_id.clone(),
                reason: Some(reason.to_string()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let deadline = Instant::now() + self.client.config().request_timeout;
        let mut coordinator = self.coordinator.lock().await;
        // v0-2 carry one member id, v3+ the member list.
        let version = coordinator
            .connection()
            .await?
            .version_for::<LeaveGroupRequest>()?;
        let request = if version >= 3 {
            LeaveGroupRequest {
                member_id: String::new(),
                ..request
            }
        } else {
            LeaveGroupRequest {
                members: Vec::new(),
                ..request
            }
        };
        let response = coordinator
            .call(&request, None, deadline, |r| {
                ErrorCode::from_code(r.error_code)
            })
            .await?;
        info!(group = self.group_id, "left the group");
        let _ = response;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Held, held_after};
    use crate::client::TopicPartition;
    use std::collections::BTreeMap;

    fn tp(p: i32) -> TopicPartition {
        ("t".to_string(), p)
    }

    fn held(since: i32, until: Option<i32>) -> Held {
        Held { since, until }
    }

    #[test]
    fn a_partition_is_held_from_its_assignment_until_the_join_after_its_revocation() {
        // Generation 3: partitions 0..3 assigned to a member that owned nothing.
        let g3 = held_after(&BTreeMap::new(), &[], &[tp(0), tp(1), tp(2)], 3);
        assert_eq!(g3[&tp(1)], held(3, None));
        // Generation 4 (cooperative): 1 is revoked, 0 and 2 are kept.
        let g4 = held_after(&g3, &[tp(0), tp(1), tp(2)], &[tp(0), tp(2)], 4);
        assert_eq!(g4[&tp(0)], held(3, None));
        assert_eq!(g4[&tp(1)], held(3, Some(4)), "still held through 4");
        // Generation 5: joined again without 1, which is gone; 3 is new.
        let g5 = held_after(&g4, &[tp(0), tp(2)], &[tp(0), tp(2), tp(3)], 5);
        assert_eq!(g5.get(&tp(1)), None);
        assert_eq!(g5[&tp(0)], held(3, None));
        assert_eq!(g5[&tp(3)], held(5, None));
        // 1 comes back later: a new stretch, not the old one.
        let g6 = held_after(&g5, &[tp(0), tp(2), tp(3)], &[tp(0), tp(1)], 6);
        assert_eq!(g6[&tp(1)], held(6, None));
        // Eager (joined owning nothing): everything starts again.
        let g7 = held_after(&g6, &[], &[tp(0), tp(1)], 7);
        assert_eq!(g7[&tp(0)], held(7, None));
        assert_eq!(g7.len(), 2);
    }
}
