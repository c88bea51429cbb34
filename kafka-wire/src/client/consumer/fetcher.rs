//! One fetch loop per leader broker: builds a Fetch request for the partitions that
//! broker leads, keeps the fetch session, and hands the records to the consumer
//! through a channel. Decoding a response overlaps the next fetch.
//!
//! ```text
//!  fetch loop (task):
//!    wanted = my partitions in State (valid position, leader == me, not backing off)
//!    permit  <── Semaphore(PREFETCH_RESPONSES)     waits while the caller is behind
//!    plan    = session.plan(wanted)                full or incremental (session.rs)
//!    Fetch ──► broker (Lane::Fetch) ──► response
//!    per partition: next fetch offset from the batch headers (records::peek)
//!                   ─► State; errors ─► reset / leader update / backoff in State
//!    decode job (blocking thread: decompress, parse, isolation.rs) ──┐
//!    ... next Fetch goes out at once                                │
//!  forwarder (task), in response order:                             ▼
//!    await the decode ─► Event::Data { chunks, permit } ──► consumer's channel ──► poll()
//! ```
//!
//! The permit travels with the data and is released when `poll` has taken it, so a
//! broker never has more than [`PREFETCH_RESPONSES`] responses fetched but not yet
//! taken: the next fetch is in flight while the previous response is decoded and
//! the caller works on the one before, and memory stays bounded by about
//! `PREFETCH_RESPONSES * fetch.max.bytes` per broker.
//!
//! The fetch offset moves on before the records are decoded. If decoding then
//! finds a bad batch, the partition's generation is bumped and its fetch offset set
//! back to that batch: what was fetched after it is dropped, the records before it
//! are delivered, then the error. Data whose batch headers cannot be read this way
//! (legacy message formats, impossible lengths) is decoded before the next fetch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::{debug, info, instrument, warn};

use super::Fetched;
use super::isolation::{AbortedTxn, PartitionInput, decode_partition};
use super::session::{FetchSession, PartitionKey, Plan, SessionPartition};
use super::state::{Leader, Position, Shared};
use crate::client::backoff::Backoff;
use crate::client::cluster::{BrokerInfo, Lane};
use crate::client::config::OffsetReset;
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use crate::protocol::messages::fetch_response::{NodeEndpoint, PartitionData};
use crate::protocol::messages::{FetchRequest, FetchResponse};
use crate::protocol::{ApiKey, Uuid};
use crate::records::peek;

/// Responses a broker's fetcher may have fetched and not yet handed over, counting
/// the one being taken by the caller: with 3, one fetch is in flight while the
/// previous response is decoded and the caller consumes the one before.
pub(crate) const PREFETCH_RESPONSES: usize = 3;

/// How long an idle fetcher sleeps before looking at the state again unprompted.
const IDLE_RECHECK: Duration = Duration::from_millis(200);

/// One partition's share of a fetch response, stamped with its generation.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The partition.
    pub key: PartitionKey,
    /// The generation the fetch was made under.
    pub generation: u64,
    /// The records and offsets.
    pub fetched: Fetched,
}

/// What fetchers tell the consumer.
#[derive(Debug)]
pub(crate) enum Event {
    /// Records (and offset advances) from one response.
    Data {
        /// Per-partition results.
        chunks: Vec<Chunk>,
        /// Released when `poll` has taken the chunks.
        permit: OwnedSemaphorePermit,
    },
    /// An error the caller should see (bad records, authorization, ...).
    Error(Error),
    /// A partition needs a leader lookup or an offset reset: `poll` should act.
    Reroute,
}

/// The consumer's handle on one fetcher task.
#[derive(Debug)]
pub(crate) struct FetcherHandle {
    /// Wakes the fetcher when the assignment or positions changed.
    pub notify: Arc<Notify>,
    /// The task.
    pub task: tokio::task::JoinHandle<()>,
}

/// One partition of the request in flight.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    part: SessionPartition,
    generation: u64,
    /// Whether a response told where the partition's log ends.
    log_end_known: bool,
}

struct Fetcher {
    shared: Arc<Shared>,
    node: i32,
    /// The consumer's channel, to notice it closed.
    events: mpsc::Sender<Event>,
    /// To the forwarder, in response order.
    forward: mpsc::Sender<Forward>,
    notify: Arc<Notify>,
    permits: Arc<Semaphore>,
    session: FetchSession,
    backoff: Backoff,
}

/// Starts the fetch loop for broker `node`.
pub(crate) fn spawn(shared: Arc<Shared>, node: i32, events: mpsc::Sender<Event>) -> FetcherHandle {
    let notify = Arc::new(Notify::new());
    let backoff = shared.backoff();
    let (forward, forwarded) = mpsc::channel(PREFETCH_RESPONSES + 1);
    tokio::spawn(run_forwarder(forwarded, events.clone()));
    let fetcher = Fetcher {
        shared,
        node,
        events,
        forward,
        notify: notify.clone(),
        permits: Arc::new(Semaphore::new(PREFETCH_RESPONSES)),
        session: FetchSession::default(),
        backoff,
    };
    FetcherHandle {
        notify,
        task: tokio::spawn(fetcher.run()),
    }
}

impl Fetcher {
    async fn run(mut self) {
        debug!(node = self.node, "fetcher started");
        loop {
            if self.shared.closing.load(Ordering::Acquire) || self.events.is_closed() {
                self.close_session().await;
                debug!(node = self.node, "fetcher stopped");
                return;
            }
            let permit = tokio::select! {
                permit = self.permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                // The assignment or a position changed while waiting: look again.
                _ = self.notify.notified() => continue,
            };
            // Planned after the permit: positions may have moved while waiting for it.
            let wanted = self.wanted(Instant::now());
            if wanted.is_empty() {
                drop(permit);
                if self.session.id() != 0 {
                    self.close_session().await;
                }
                let _ = tokio::time::timeout(IDLE_RECHECK, self.notify.notified()).await;
                continue;
            }
            match self.fetch_once(&wanted).await {
                Ok(Outcome {
                    jobs,
                    errors,
                    reroute,
                }) => {
                    self.backoff.reset();
                    if !jobs.is_empty() {
                        let decoding = if jobs.iter().all(|j| j.claimed_records.is_some()) {
                            let shared = self.shared.clone();
                            Decoding::Running(tokio::task::spawn_blocking(move || {
                                decode_jobs(&shared, jobs)
                            }))
                        } else {
                            Decoding::Ready(decode_jobs(&self.shared, jobs))
                        };
                        let job = Forward::Data { decoding, permit };
                        if self.forward.send(job).await.is_err() {
                            return;
                        }
                    }
                    for e in errors {
                        if self
                            .forward
                            .send(Forward::Event(Event::Error(e)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    if reroute
                        && self
                            .forward
                            .send(Forward::Event(Event::Reroute))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                Err(e) if e.is_security_failure() => {
                    // A TLS or SASL failure repeats on every attempt: the caller
                    // hears of it at once, and the next attempt waits the longest
                    // backoff instead of reconnecting in a loop.
                    warn!(node = self.node, error = %e, "fetch connection refused; not retrying soon");
                    if self
                        .forward
                        .send(Forward::Event(Event::Error(e)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let delay = (0..16).fold(Duration::ZERO, |_, _| self.backoff.next_delay());
                    let _ = tokio::time::timeout(delay, self.notify.notified()).await;
                }
                Err(e) => {
                    let delay = self.backoff.next_delay();
                    warn!(node = self.node, error = %e, ?delay, "fetch failed; retrying");
                    self.shared.retried(&e);
                    let _ = tokio::time::timeout(delay, self.notify.notified()).await;
                }
            }
        }
    }

    /// The partitions this broker should be asked for now.
    fn wanted(&self, now: Instant) -> BTreeMap<PartitionKey, Wanted> {
        let max_bytes = self.shared.config.max_partition_fetch_bytes;
        let state = self.shared.lock();
        state
            .partitions
            .iter()
            .filter(|(_, p)| {
                p.leader.is_some_and(|l| l.node == self.node)
                    && matches!(p.position, Position::Valid(_))
                    && p.ready(now)
                    && !p.paused
            })
            .map(|(key, p)| {
                let part = SessionPartition {
                    topic_id: p.topic_id,
                    fetch_offset: p.fetch_offset,
                    leader_epoch: p.leader.map_or(-1, |l| l.epoch),
                    max_bytes,
                };
                (
                    key.clone(),
                    Wanted {
                        part,
                        generation: p.generation,
                        log_end_known: p.high_watermark >= 0,
                    },
                )
            })
            .collect()
    }

    /// Sends one Fetch request and applies its response to the state.
    #[instrument(level = "trace", skip_all, fields(node = self.node, partitions = wanted.len()))]
    async fn fetch_once(&mut self, wanted: &BTreeMap<PartitionKey, Wanted>) -> Result<Outcome> {
        let conn = self
            .shared
            .client
            .connection(self.node, Lane::Fetch)
            .await?;
        let mut version = conn.version_for::<FetchRequest>()?;
        if wanted.values().any(|w| w.part.topic_id == Uuid::ZERO) {
            version = version.min(12);
        }
        let uses_topic_ids = version >= 13;
        let parts: BTreeMap<PartitionKey, SessionPartition> =
            wanted.iter().map(|(k, w)| (k.clone(), w.part)).collect();
        // A partition assigned anew after the broker last reported it: an
        // incremental response would leave it out until it changes, so only a
        // full one tells where its log ends (its lag).
        if wanted
            .iter()
            .any(|(k, w)| !w.log_end_known && self.session.holds(k, &w.part))
        {
            self.session.restart();
        }
        let plan = self.session.plan(&parts, uses_topic_ids);
        let request = self.request(&plan);
        debug!(
            node = self.node,
            version,
            session_id = plan.session_id,
            session_epoch = plan.epoch,
            sent = plan.send.len(),
            forgotten = plan.forget.len(),
            "fetch"
        );
        let counter = if plan.full {
            &self.shared.stats.full
        } else {
            &self.shared.stats.incremental
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let response = match conn.call_version(&request, version).await {
            Ok(r) => r,
            Err(e) => {
                self.session.on_error();
                return Err(e);
            }
        };
        match ErrorCode::from_code(response.error_code) {
            code if code.is_ok() => self.session.on_response(&plan, response.session_id),
            code @ (ErrorCode::FetchSessionIdNotFound | ErrorCode::FetchSessionTopicIdError) => {
                info!(node = self.node, session_id = plan.session_id, %code, "fetch session lost; starting a full session");
                self.session.on_session_not_found();
                self.shared
                    .stats
                    .session_resets
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(Outcome::default());
            }
            ErrorCode::InvalidFetchSessionEpoch => {
                info!(
                    node = self.node,
                    session_id = plan.session_id,
                    epoch = plan.epoch,
                    "fetch session epoch refused; starting a full session"
                );
                self.session.on_error();
                self.shared
                    .stats
                    .session_resets
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(Outcome::default());
            }
            code => {
                self.session.on_error();
                return Err(
                    Error::broker(code, format!("fetch from node {}", self.node))
                        .with_api(ApiKey::Fetch)
                        .with_node(self.node),
                );
            }
        }
        Ok(self.apply(response, wanted, uses_topic_ids))
    }

    fn request(&self, plan: &Plan) -> FetchRequest {
        let config = &self.shared.config;
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (key, part) in &plan.send {
            let partition = FetchPartition {
                partition: key.1,
                current_leader_epoch: part.leader_epoch,
                fetch_offset: part.fetch_offset,
                partition_max_bytes: part.max_bytes,
                ..Default::default()
            };
            match topics.last_mut() {
                Some(t) if t.topic == *key.0 && t.topic_id == part.topic_id => {
                    t.partitions.push(partition)
                }
                _ => topics.push(FetchTopic {
                    topic: key.0.to_string(),
                    topic_id: part.topic_id,
                    partitions: vec![partition],
                    ..Default::default()
                }),
            }
        }
        let mut forgotten: Vec<ForgottenTopic> = Vec::new();
        for (key, topic_id) in &plan.forget {
            match forgotten.last_mut() {
                Some(t) if t.topic == *key.0 && t.topic_id == *topic_id => t.partitions.push(key.1),
                _ => forgotten.push(ForgottenTopic {
                    topic: key.0.to_string(),
                    topic_id: *topic_id,
                    partitions: vec![key.1],
                    ..Default::default()
                }),
            }
        }
        FetchRequest {
            max_wait_ms: duration_ms(config.fetch_max_wait),
            min_bytes: config.fetch_min_bytes,
            max_bytes: config.fetch_max_bytes,
            isolation_level: config.isolation_level.wire_value(),
            session_id: plan.session_id,
            session_epoch: plan.epoch,
            topics,
            forgotten_topics_data: forgotten,
            rack_id: config.client_rack.clone().unwrap_or_default(),
            ..Default::default()
        }
    }

    /// Applies a successful response: decodes records, advances fetch offsets, and
    /// turns partition errors into resets, leader changes or backoffs.
    fn apply(
        &self,
        response: FetchResponse,
        wanted: &BTreeMap<PartitionKey, Wanted>,
        uses_topic_ids: bool,
    ) -> Outcome {
        let names: HashMap<Uuid, Arc<str>> = wanted
            .iter()
            .map(|(k, w)| (w.part.topic_id, k.0.clone()))
            .collect();
        let by_name: HashMap<&str, Arc<str>> =
            wanted.keys().map(|k| (&*k.0, k.0.clone())).collect();
        self.shared.fetch_answered();
        let mut out = Outcome::default();
        let endpoints = response.node_endpoints;
        for topic in response.responses {
            let name = if uses_topic_ids {
                names.get(&topic.topic_id)
            } else {
                by_name.get(topic.topic.as_str())
            };
            let Some(name) = name.cloned() else {
                self.shared
                    .stats
                    .unrequested
                    .fetch_add(topic.partitions.len() as u64, Ordering::Relaxed);
                debug!(node = self.node, topic = topic.topic, topic_id = %topic.topic_id, "response for a topic not asked for");
                continue;
            };
            for p in topic.partitions {
                let key = (name.clone(), p.partition_index);
                let Some(w) = wanted.get(&key) else {
                    self.shared
                        .stats
                        .unrequested
                        .fetch_add(1, Ordering::Relaxed);
                    debug!(
                        node = self.node,
                        topic = &*name,
                        partition = p.partition_index,
                        "response for a partition not asked for"
                    );
                    continue;
                };
                let code = ErrorCode::from_code(p.error_code);
                if code.is_ok() {
                    self.apply_records(key, *w, p, &mut out);
                } else {
                    self.apply_error(key, *w, code, &p, &endpoints, &mut out);
                }
            }
        }
        out
    }

    /// Moves the partition's fetch offset past the complete batches (read from their
    /// headers) and queues the data for decoding.
    fn apply_records(&self, key: PartitionKey, w: Wanted, p: PartitionData, out: &mut Outcome) {
        let data = p.records.unwrap_or_default();
        let peeked = peek(&data);
        let mut state = self.shared.lock();
        let Some(ps) = state.partitions.get_mut(&key) else {
            return;
        };
        // Where the log ends holds whatever offset was asked for. An incremental
        // fetch session leaves an unchanged partition out of its next
        // responses, so this one may be the only word on it for a long time.
        ps.high_watermark = p.high_watermark;
        ps.last_stable_offset = p.last_stable_offset;
        ps.log_start_offset = p.log_start_offset;
        if ps.generation != w.generation || ps.fetch_offset != w.part.fetch_offset {
            debug!(
                topic = &*key.0,
                partition = key.1,
                "dropping a fetch that a seek or reset overtook"
            );
            return;
        }
        // Without a peek the offset moves once the data is decoded, before the next fetch.
        let assumed_next = match peeked {
            Some(peeked) => {
                if peeked.next_offset.is_none() && peeked.tail > 0 {
                    // Fetch v3+ always returns a first batch whole, so this is a broker
                    // that cut it anyway; asking again would loop forever.
                    warn!(
                        topic = &*key.0,
                        partition = key.1,
                        offset = w.part.fetch_offset,
                        "fetch returned only a partial batch"
                    );
                    ps.back_off();
                    out.errors
                        .push(partial_batch_error(&key, w.part.fetch_offset));
                    return;
                }
                let next = peeked
                    .next_offset
                    .map_or(w.part.fetch_offset, |n| n.max(w.part.fetch_offset));
                ps.fetch_offset = next;
                next
            }
            None => w.part.fetch_offset,
        };
        ps.succeeded();
        drop(state);
        if data.is_empty() {
            // Nothing new (a long poll that timed out): no decoding to wait for.
            return;
        }
        let config = &self.shared.config;
        let aborted: Vec<AbortedTxn> = p
            .aborted_transactions
            .iter()
            .flatten()
            .map(|a| AbortedTxn {
                producer_id: a.producer_id,
                first_offset: a.first_offset,
            })
            .collect();
        out.jobs.push(DecodeJob {
            key,
            generation: w.generation,
            fetch_offset: w.part.fetch_offset,
            assumed_next,
            claimed_records: peeked.map(|p| p.records),
            aborted,
            data,
            isolation: config.isolation_level,
            check_crcs: config.check_crcs,
            high_watermark: p.high_watermark,
            last_stable_offset: p.last_stable_offset,
            log_start_offset: p.log_start_offset,
        });
    }

    /// A partition's error code in this fetcher's answer, as an error that names
    /// the api, the node and the partition.
    fn partition_error(
        &self,
        code: ErrorCode,
        context: String,
        (topic, partition): (&str, i32),
    ) -> Error {
        Error::broker(code, context)
            .with_api(ApiKey::Fetch)
            .with_node(self.node)
            .with_partition(topic, partition)
    }

    fn apply_error(
        &self,
        key: PartitionKey,
        w: Wanted,
        code: ErrorCode,
        p: &PartitionData,
        endpoints: &[NodeEndpoint],
        out: &mut Outcome,
    ) {
        let (topic, partition) = (&*key.0, key.1);
        let mut state = self.shared.lock();
        let generation = state.bump();
        let Some(ps) = state.partitions.get_mut(&key) else {
            return;
        };
        if ps.generation != w.generation || ps.fetch_offset != w.part.fetch_offset {
            return;
        }
        match code {
            ErrorCode::OffsetOutOfRange => {
                let policy = self.shared.config.auto_offset_reset;
                info!(
                    topic,
                    partition,
                    offset = w.part.fetch_offset,
                    ?policy,
                    "offset out of range; resetting"
                );
                ps.generation = generation;
                ps.position = match policy {
                    OffsetReset::None => {
                        out.errors.push(self.partition_error(
                            code,
                            format!(
                                "fetch {topic}-{partition} at offset {}",
                                w.part.fetch_offset
                            ),
                            (topic, partition),
                        ));
                        Position::Failed
                    }
                    policy => Position::Reset(policy),
                };
                out.reroute = true;
            }
            // UNKNOWN_LEADER_EPOCH: our epoch is ahead of the broker's. Usually the
            // broker catches up, but a wrong cached epoch would never heal without
            // asking metadata again, so it is treated like a stale leader.
            ErrorCode::NotLeaderOrFollower
            | ErrorCode::FencedLeaderEpoch
            | ErrorCode::UnknownLeaderEpoch
            | ErrorCode::LeaderNotAvailable
            | ErrorCode::UnknownTopicOrPartition
            | ErrorCode::UnknownTopicId
            | ErrorCode::InconsistentTopicId
            | ErrorCode::ReplicaNotAvailable
            | ErrorCode::KafkaStorageError => {
                let hint = &p.current_leader;
                let known_epoch = ps.leader.map_or(-1, |l| l.epoch);
                if matches!(
                    code,
                    ErrorCode::NotLeaderOrFollower | ErrorCode::FencedLeaderEpoch
                ) && hint.leader_id >= 0
                    && hint.leader_epoch > known_epoch
                {
                    // KIP-951: the broker named the new leader; go there at once.
                    let endpoint = endpoints
                        .iter()
                        .find(|e| e.node_id == hint.leader_id)
                        .and_then(|e| {
                            Some(BrokerInfo {
                                node_id: e.node_id,
                                host: e.host.clone(),
                                port: u16::try_from(e.port).ok()?,
                                rack: e.rack.clone(),
                            })
                        });
                    info!(topic, partition, %code, leader = hint.leader_id, leader_epoch = hint.leader_epoch, "leader moved");
                    self.shared.client.update_leader(
                        topic,
                        partition,
                        hint.leader_id,
                        hint.leader_epoch,
                        endpoint,
                    );
                    ps.leader = Some(Leader {
                        node: hint.leader_id,
                        epoch: hint.leader_epoch,
                    });
                } else {
                    info!(topic, partition, %code, "stale leader; refreshing metadata");
                    self.shared.client.invalidate_topic(topic);
                    ps.leader = None;
                    ps.back_off();
                }
                out.reroute = true;
            }
            code if code.is_retriable() => {
                debug!(topic, partition, %code, "retriable fetch error; backing off");
                ps.back_off();
                let e = self.partition_error(
                    code,
                    format!("fetch {topic}-{partition}"),
                    (topic, partition),
                );
                self.shared.retried(&e);
            }
            code => {
                warn!(topic, partition, %code, "fetch error");
                ps.back_off();
                out.errors.push(
                    Error::from_refusal(code, topic, "read", || {
                        format!("fetch {topic}-{partition}")
                    })
                    .with_api(ApiKey::Fetch)
                    .with_node(self.node)
                    .with_partition(topic, partition),
                );
            }
        }
    }

    /// Closes the broker's fetch session (a request with epoch -1 and no partitions)
    /// so it does not hold a session slot until it expires. Best effort.
    async fn close_session(&mut self) {
        let Some(session_id) = self.session.take_for_close() else {
            return;
        };
        let request = FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: self.shared.config.fetch_max_bytes,
            isolation_level: self.shared.config.isolation_level.wire_value(),
            session_id,
            session_epoch: -1,
            ..Default::default()
        };
        let result = async {
            let conn = self
                .shared
                .client
                .connection(self.node, Lane::Fetch)
                .await?;
            conn.call(&request).await
        };
        match tokio::time::timeout(Duration::from_secs(5), result).await {
            Ok(Ok(_)) => debug!(node = self.node, session_id, "fetch session closed"),
            Ok(Err(e)) => {
                debug!(node = self.node, session_id, error = %e, "could not close fetch session")
            }
            Err(_) => debug!(
                node = self.node,
                session_id, "closing the fetch session timed out"
            ),
        }
    }
}

/// What one response produced.
#[derive(Debug, Default)]
struct Outcome {
    jobs: Vec<DecodeJob>,
    errors: Vec<Error>,
    reroute: bool,
}

/// One partition's data of a response, to decode.
#[derive(Debug)]
struct DecodeJob {
    key: PartitionKey,
    generation: u64,
    fetch_offset: i64,
    /// The fetch offset set from the batch headers (the fetch offset itself when
    /// they could not be read).
    assumed_next: i64,
    /// The batches' record counts summed, if their headers could be read ([`peek`]).
    claimed_records: Option<u64>,
    aborted: Vec<AbortedTxn>,
    data: bytes::Bytes,
    isolation: crate::client::config::IsolationLevel,
    check_crcs: bool,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

/// A response's decoded chunks and the errors found while decoding.
type Decoded = (Vec<Chunk>, Vec<Error>);

/// A response being decoded, or decoded already.
enum Decoding {
    Running(tokio::task::JoinHandle<Decoded>),
    Ready(Decoded),
}

/// What the fetch loop hands the forwarder.
enum Forward {
    Data {
        decoding: Decoding,
        permit: OwnedSemaphorePermit,
    },
    Event(Event),
}

/// Passes the fetch loop's output to the consumer in order, waiting for each
/// response's decoding; ends when either side is gone.
async fn run_forwarder(mut input: mpsc::Receiver<Forward>, events: mpsc::Sender<Event>) {
    while let Some(item) = input.recv().await {
        let (decoding, permit) = match item {
            Forward::Event(event) => {
                if events.send(event).await.is_err() {
                    return;
                }
                continue;
            }
            Forward::Data { decoding, permit } => (decoding, permit),
        };
        let (chunks, errors) = match decoding {
            Decoding::Ready(done) => done,
            Decoding::Running(task) => match task.await {
                Ok(done) => done,
                Err(e) => {
                    // A cancelled task means the runtime is shutting down; a panic is a
                    // decoder bug, reported rather than dropped.
                    warn!(error = %e, "decoding a fetch response failed");
                    if e.is_panic() {
                        let error = Error::CorruptRecords(format!(
                            "decoding a fetch response panicked: {e}"
                        ));
                        let _ = events.send(Event::Error(error)).await;
                    }
                    return;
                }
            },
        };
        if !chunks.is_empty() && events.send(Event::Data { chunks, permit }).await.is_err() {
            return;
        }
        for e in errors {
            if events.send(Event::Error(e)).await.is_err() {
                return;
            }
        }
    }
}

/// Decodes a response's partitions. A bad batch sets the partition's fetch offset
/// back to it under a new generation, so data fetched after it is dropped while
/// the records before it are kept.
fn decode_jobs(shared: &Shared, jobs: Vec<DecodeJob>) -> Decoded {
    let mut chunks = Vec::with_capacity(jobs.len());
    let mut errors = Vec::new();
    for job in jobs {
        let input = PartitionInput {
            topic: &job.key.0,
            partition: job.key.1,
            fetch_offset: job.fetch_offset,
            isolation: job.isolation,
            aborted: &job.aborted,
            check_crcs: job.check_crcs,
            claimed_records: job.claimed_records,
        };
        let bytes = job.data.len();
        let decoded = decode_partition(&input, job.data);
        crate::client::metrics::fetched(decoded.records.len(), bytes);
        let (topic, partition) = (&*job.key.0, job.key.1);
        let mut generation = job.generation;
        let failure = decoded.error.or_else(|| {
            decoded
                .only_partial_batch
                .then(|| partial_batch_error(&job.key, job.fetch_offset))
        });
        if failure.is_some() || decoded.next_offset != job.assumed_next {
            let mut state = shared.lock();
            let fresh = state.bump();
            if let Some(ps) = state
                .partitions
                .get_mut(&job.key)
                .filter(|ps| ps.generation == job.generation)
            {
                if let Some(e) = &failure {
                    warn!(topic, partition, offset = decoded.next_offset, error = %e, "bad record data");
                    ps.back_off();
                }
                if job.claimed_records.is_some() {
                    // The offset moved on already: take it back, and drop what was
                    // fetched from there.
                    ps.generation = fresh;
                    generation = fresh;
                    ps.fetch_offset = decoded.next_offset;
                } else if ps.fetch_offset == job.assumed_next {
                    ps.fetch_offset = decoded.next_offset;
                }
            }
        }
        errors.extend(failure);
        if !decoded.records.is_empty() || decoded.next_offset != job.fetch_offset {
            debug!(
                topic,
                partition,
                fetch_offset = job.fetch_offset,
                next_offset = decoded.next_offset,
                records = decoded.records.len(),
                high_watermark = job.high_watermark,
                "fetched"
            );
            chunks.push(Chunk {
                generation,
                fetched: Fetched {
                    topic: job.key.0.clone(),
                    partition,
                    records: decoded.records,
                    next_offset: decoded.next_offset,
                    high_watermark: job.high_watermark,
                    last_stable_offset: job.last_stable_offset,
                    log_start_offset: job.log_start_offset,
                },
                key: job.key,
            });
        }
    }
    (chunks, errors)
}

/// A fetch at `offset` that returned only part of a batch.
fn partial_batch_error(key: &PartitionKey, offset: i64) -> Error {
    Error::broker(
        ErrorCode::MessageTooLarge,
        format!(
            "fetch {}-{} at offset {offset}: only a partial batch fit in max.partition.fetch.bytes",
            key.0, key.1
        ),
    )
    .with_api(ApiKey::Fetch)
    .with_partition(&*key.0, key.1)
}

fn duration_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
