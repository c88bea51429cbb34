//! The sender task: drains ready batches into one ProduceRequest per leader and
//! handles the answers.
//!
//! Error handling, per partition batch:
//!
//! | answer | what happens |
//! |---|---|
//! | NONE | records complete with their offsets |
//! | DUPLICATE_SEQUENCE_NUMBER | the broker already has the batch: success, offset unknown (-1) |
//! | connection lost, request timeout, retriable code | retried with the same sequence after backoff; the partition first drains its in-flight batches so retries go out in order |
//! | NOT_LEADER_OR_FOLLOWER and friends | as above, after applying the leader hint (KIP-951) or refreshing metadata |
//! | OUT_OF_ORDER_SEQUENCE_NUMBER on a later batch | an earlier batch failed; retried in order |
//! | OUT_OF_ORDER_SEQUENCE_NUMBER on the head batch (or one behind it) | the broker lost data, or holds later data: the batch fails, the epoch is bumped |
//! | UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH | the epoch is bumped (KIP-360) once nothing is in flight; queued batches are renumbered from 0 |
//! | MESSAGE_TOO_LARGE on a batch of several records | split into parts of about half its bytes that take its place (and its sequences) at the front of the queue; sent again once the partition's in-flight batches are back (no retry counted, no epoch bump) |
//! | other codes (MESSAGE_TOO_LARGE on one record included) | the batch fails with the code; the broker wrote none of it, so once nothing is in flight the partition's queued batches are renumbered to close the gap its sequences leave (the epoch is bumped instead if an earlier attempt went unanswered) |
//!
//! Until the broker has acknowledged one batch of a partition under the current
//! epoch, only one batch of that partition is in flight: a broker with no sequence
//! state for the producer accepts any first sequence, so a later batch could
//! otherwise land ahead of an earlier one that failed (seen on a topic created a
//! moment before, whose first produce got NOT_LEADER_OR_FOLLOWER).
//!
//! A batch that was written but whose answer never came is never failed while a
//! retry can still resolve it: its outcome is unknown, and retrying with the same
//! sequence makes the broker either write it or report it as a duplicate. Only
//! `delivery.timeout.ms` ends the retries; such a batch fails as a timeout (it may
//! have been written) and the epoch is bumped, since its sequence now leaves a gap.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::accumulator::{Accumulator, Batch};
use super::{ProducerIdentity, Shared};
use crate::client::backoff::Backoff;
use crate::client::cluster::{BrokerInfo, Lane};
use crate::client::config::Acks;
use crate::client::connection::PendingResponse;
use crate::error::{Error, Result};
use crate::error_code::ErrorCode;
use crate::protocol::ApiKey;
use crate::protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use crate::protocol::messages::produce_response::PartitionProduceResponse;
use crate::protocol::messages::{InitProducerIdRequest, ProduceRequest, ProduceResponse};

/// Gets a new producer id, or bumps the epoch of `current` (KIP-360).
pub(crate) async fn init_producer_id(
    shared: &Shared,
    current: ProducerIdentity,
) -> Result<ProducerIdentity> {
    let request = InitProducerIdRequest {
        transactional_id: None,
        transaction_timeout_ms: shared
            .config
            .transaction_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32,
        producer_id: current.producer_id,
        producer_epoch: current.producer_epoch,
        ..Default::default()
    };
    let timeout = shared.config.max_block;
    let response = shared
        .client
        .retry("InitProducerId", timeout, || async {
            let conn = shared.client.any_connection(Lane::Control).await?;
            let version = conn.version_for::<InitProducerIdRequest>()?;
            // Bumping an existing id needs v3+; older brokers get a fresh id instead.
            let request = if version < 3 {
                InitProducerIdRequest {
                    producer_id: -1,
                    producer_epoch: -1,
                    ..request.clone()
                }
            } else {
                request.clone()
            };
            let r = conn.call_version(&request, version).await?;
            ErrorCode::from_code(r.error_code)
                .into_result()
                .map_err(|code| {
                    // CLUSTER_AUTHORIZATION_FAILED: no IdempotentWrite on the
                    // cluster and (Kafka 3.0+) no Write on any topic.
                    Error::from_refusal(code, "", "idempotent write", || "InitProducerId".into())
                        .with_api(ApiKey::InitProducerId)
                })?;
            Ok(r)
        })
        .await?;
    let identity = ProducerIdentity {
        producer_id: response.producer_id,
        producer_epoch: response.producer_epoch,
    };
    debug!(
        producer_id = identity.producer_id,
        epoch = identity.producer_epoch,
        "producer id"
    );
    Ok(identity)
}

struct Sent {
    leader: i32,
    batches: Vec<Batch>,
}

/// The sender loop; runs until the producer is dropped.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut broker_in_flight: HashMap<i32, usize> = HashMap::new();
    let (done_tx, mut done_rx) =
        tokio::sync::mpsc::unbounded_channel::<(i32, Vec<Batch>, Result<Option<ProduceResponse>>)>(
        );
    loop {
        // Answers that came back since the last round.
        while let Ok((leader, batches, result)) = done_rx.try_recv() {
            if let Some(n) = broker_in_flight.get_mut(&leader) {
                *n = n.saturating_sub(1);
            }
            handle_response(&shared, batches, result);
        }
        bump_epoch_if_needed(&shared).await;
        expire(&shared);
        let (requests, deadline) = drain(&shared, &broker_in_flight);
        for Sent { leader, batches } in requests {
            *broker_in_flight.entry(leader).or_default() += 1;
            // Written here, in drain order: an idempotent partition's batches must
            // reach the broker in sequence order. Only the answers are awaited apart.
            let pending = write_request(&shared, leader, &batches).await;
            let shared = shared.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                let result = match pending {
                    Ok(Some(pending)) => pending.response().await.map(Some),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                };
                let _ = done.send((leader, batches, result));
                shared.wake.notify_one();
            });
        }
        let wake = shared.wake.notified();
        match deadline {
            Some(at) => {
                tokio::select! {
                    _ = wake => {}
                    _ = tokio::time::sleep_until(at.into()) => {}
                }
            }
            None => wake.await,
        }
    }
}

async fn bump_epoch_if_needed(shared: &Shared) {
    let current = {
        let mut acc = shared.lock();
        if !acc.bump_epoch || acc.in_flight_requests > 0 {
            return;
        }
        if shared.config.transactional_id.is_some() {
            // The transaction coordinator owns a transactional producer's epoch: the
            // failed record fails the transaction, and `client::transaction` bumps
            // the epoch before the next one.
            acc.bump_epoch = false;
            return;
        }
        acc.identity
    };
    warn!(
        producer_id = current.producer_id,
        epoch = current.producer_epoch,
        "bumping producer epoch"
    );
    match init_producer_id(shared, current).await {
        Ok(identity) => {
            let mut acc = shared.lock();
            acc.identity = identity;
            acc.reset_sequences();
            acc.bump_epoch = false;
        }
        Err(e) => {
            let mut acc = shared.lock();
            acc.fatal = Some(format!("could not bump the producer epoch: {e}"));
            acc.fail_queued(|| {
                Error::broker(ErrorCode::UnknownProducerId, "producer epoch bump failed")
            });
            drop(acc);
            shared.progress.notify_waiters();
        }
    }
}

/// Fails queued batches older than `delivery.timeout.ms`.
fn expire(shared: &Shared) {
    let limit = shared.config.delivery_timeout;
    let now = Instant::now();
    let mut acc = shared.lock();
    let mut expired = Vec::new();
    for q in acc.queues_mut() {
        // Most rounds expire nothing: only then is the queue rebuilt.
        if !q
            .batches
            .iter()
            .any(|b| now.duration_since(b.created) > limit)
        {
            continue;
        }
        let mut keep = std::collections::VecDeque::with_capacity(q.batches.len());
        while let Some(b) = q.batches.pop_front() {
            if now.duration_since(b.created) > limit {
                expired.push(b);
            } else {
                keep.push_back(b);
            }
        }
        q.batches = keep;
    }
    if expired.is_empty() {
        return;
    }
    let mut gap = false;
    for mut b in expired {
        gap |= b.sent && b.base_sequence >= 0;
        acc.finished(&mut b);
        let what = if b.sent {
            "possibly written"
        } else {
            "not sent"
        };
        let last_error = b
            .last_error
            .take()
            .or_else(|| (!b.sent).then(|| acc.metadata_error.clone()).flatten());
        b.complete(Err(&Error::DeliveryTimeout {
            outcome: what,
            last_error: last_error.map(Box::new),
        }));
    }
    if gap && acc.identity != ProducerIdentity::NONE {
        acc.bump_epoch = true;
    }
    drop(acc);
    shared.progress.notify_waiters();
}

/// Takes the ready batches off their queues, grouped into one request per leader.
/// Returns the requests and when to look again.
fn drain(
    shared: &Arc<Shared>,
    broker_in_flight: &HashMap<i32, usize>,
) -> (Vec<Sent>, Option<Instant>) {
    let config = &shared.config;
    let now = Instant::now();
    let mut acc = shared.lock();
    if acc.bump_epoch {
        return (Vec::new(), Some(now + Duration::from_millis(10)));
    }
    let idempotent = config.enable_idempotence;
    let identity = acc.identity;
    let mut by_leader: HashMap<i32, (usize, Vec<Batch>)> = HashMap::new();
    let mut missing_metadata = Vec::new();
    let keys: Vec<(usize, usize)> = acc
        .topics
        .iter()
        .enumerate()
        .flat_map(|(t, topic)| (0..topic.queues.len()).map(move |p| (t, p)))
        .collect();
    for (t, p) in keys {
        let Some(front) = acc.topics[t].queues[p].batches.front() else {
            continue;
        };
        if !acc.is_ready(front, now) {
            continue;
        }
        let name = acc.topics[t].name.clone();
        let partition = p as i32;
        let Some(leader) = shared.client.cached_leader(&name, partition) else {
            missing_metadata.push(name.to_string());
            continue;
        };
        if broker_in_flight.get(&leader).copied().unwrap_or(0) >= config.max_in_flight {
            continue;
        }
        let q = &mut acc.topics[t].queues[p];
        if q.draining {
            if q.in_flight > 0 {
                continue;
            }
            q.draining = false;
            if q.renumber {
                q.renumber();
            }
        }
        let limit = if idempotent && !q.confirmed {
            1
        } else {
            config.max_in_flight
        };
        if q.in_flight >= limit {
            continue;
        }
        let entry = by_leader.entry(leader).or_default();
        // Compressed outside the lock (below); until then its size is bounded.
        let bound = q.batches.front().map_or(0, Batch::size_bound);
        if entry.0 > 0 && entry.0 + bound > config.max_request_size {
            // Full request: the batch waits for the next round, open to appends
            // (its records, and so its sequence, are not fixed yet).
            continue;
        }
        let Some(mut batch) = q.batches.pop_front() else {
            continue;
        };
        if idempotent && batch.base_sequence < 0 {
            batch.base_sequence = q.next_sequence;
            q.next_sequence = q.next_sequence.wrapping_add(batch.record_count() as i32) & i32::MAX;
        }
        entry.0 += bound;
        q.in_flight += 1;
        batch.sent = true;
        batch.retry_at = None;
        entry.1.push(batch);
    }
    let picked: Vec<(i32, Vec<Batch>)> = by_leader
        .into_iter()
        .filter(|(_, (_, b))| !b.is_empty())
        .map(|(leader, (_, batches))| (leader, batches))
        .collect();
    // Counted now, so an epoch bump waits for these requests too.
    acc.in_flight_requests += picked.len();
    let deadline = acc.next_deadline(now);
    drop(acc);
    // Compression and the header stamp run without the lock, so the application
    // keeps appending meanwhile.
    let mut spare = Vec::new();
    let mut failed = Vec::new();
    let mut requests: Vec<Sent> = Vec::with_capacity(picked.len());
    for (leader, batches) in picked {
        let mut ready = Vec::with_capacity(batches.len());
        for mut batch in batches {
            match batch.seal(identity) {
                Ok((bytes, buffer)) => {
                    spare.extend(buffer);
                    crate::client::metrics::batch_sent(batch.record_count(), bytes.len());
                    ready.push(batch);
                }
                Err(e) => failed.push((batch, e)),
            }
        }
        requests.push(Sent {
            leader,
            batches: ready,
        });
    }
    let empty = requests.iter().filter(|r| r.batches.is_empty()).count();
    if !spare.is_empty() || !failed.is_empty() || empty > 0 {
        let mut acc = shared.lock();
        for buffer in spare {
            acc.spare.put(buffer);
        }
        for (mut batch, e) in failed {
            if let Some(q) = acc.queue_mut(&batch.topic, batch.partition) {
                q.in_flight = q.in_flight.saturating_sub(1);
            }
            acc.finished(&mut batch);
            batch.complete(Err(&e));
        }
        acc.in_flight_requests = acc.in_flight_requests.saturating_sub(empty);
        requests.retain(|r| !r.batches.is_empty());
        drop(acc);
        if empty > 0 {
            shared.progress.notify_waiters();
        }
    }
    if !missing_metadata.is_empty() {
        missing_metadata.sort();
        missing_metadata.dedup();
        let retry_backoff = shared.config.client.retry_backoff;
        let shared = shared.clone();
        tokio::spawn(async move {
            let result = shared.client.refresh_metadata(&missing_metadata).await;
            if let Err(e) = &result {
                debug!(error = %e, "metadata refresh for producer failed");
            }
            shared.lock().metadata_error = result.err();
        });
        return (requests, Some(now + retry_backoff));
    }
    (requests, deadline)
}

/// Builds the ProduceRequest for `batches` and writes it to `leader`. Returns the
/// pending answer (None with `acks=0`, which gets no answer).
async fn write_request(
    shared: &Shared,
    leader: i32,
    batches: &[Batch],
) -> Result<Option<PendingResponse<ProduceResponse>>> {
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for b in batches {
        let records = b.peek_encoded();
        let data = PartitionProduceData {
            index: b.partition,
            records,
            ..Default::default()
        };
        match topics.iter_mut().find(|t| *t.name == *b.topic) {
            Some(t) => t.partition_data.push(data),
            None => topics.push(TopicProduceData {
                name: b.topic.to_string(),
                partition_data: vec![data],
                ..Default::default()
            }),
        }
    }
    let request = ProduceRequest {
        transactional_id: shared.config.transactional_id.clone(),
        acks: shared.config.acks.wire_value(),
        timeout_ms: shared
            .config
            .client
            .request_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32,
        topic_data: topics,
        ..Default::default()
    };
    let conn = shared.client.connection(leader, Lane::Produce).await?;
    let version = conn.version_at_most::<ProduceRequest>(
        shared
            .max_produce_version
            .load(std::sync::atomic::Ordering::Relaxed),
    )?;
    if shared.config.acks == Acks::None {
        conn.send_without_response(&request, version).await?;
        return Ok(None);
    }
    conn.send(&request, version).await.map(Some)
}

fn handle_response(shared: &Shared, batches: Vec<Batch>, result: Result<Option<ProduceResponse>>) {
    let mut acc = shared.lock();
    acc.in_flight_requests = acc.in_flight_requests.saturating_sub(1);
    let mut answers: HashMap<(String, i32), PartitionProduceResponse> = HashMap::new();
    if let Ok(Some(response)) = &result {
        for t in &response.responses {
            for p in &t.partition_responses {
                answers.insert((t.name.clone(), p.index), p.clone());
            }
        }
        for e in &response.node_endpoints {
            if let Ok(port) = u16::try_from(e.port) {
                shared.client.add_broker(BrokerInfo {
                    node_id: e.node_id,
                    host: e.host.clone(),
                    port,
                    rack: e.rack.clone(),
                });
            }
        }
    }
    for mut batch in batches {
        let key = (batch.topic.to_string(), batch.partition);
        if let Some(q) = acc.queue_mut(&batch.topic, batch.partition) {
            q.in_flight = q.in_flight.saturating_sub(1);
        }
        // Whether the broker answered for this partition (so an error means it wrote nothing).
        let mut answered = false;
        let outcome: std::result::Result<(i64, i64), Error> = match &result {
            Ok(None) => Ok((-1, -1)),
            Ok(Some(_)) => match answers.remove(&key) {
                None => Err(Error::broker(
                    ErrorCode::UnknownServerError,
                    format!("no answer for {}-{}", key.0, key.1),
                )
                .with_api(ApiKey::Produce)
                .with_partition(&*key.0, key.1)),
                Some(p) => {
                    answered = true;
                    let code = ErrorCode::from_code(p.error_code);
                    match code {
                        ErrorCode::NoError => Ok((p.base_offset, p.log_append_time_ms)),
                        ErrorCode::DuplicateSequenceNumber => Ok((-1, -1)),
                        _ => {
                            if p.current_leader.leader_id >= 0 {
                                shared.client.update_leader(
                                    &key.0,
                                    key.1,
                                    p.current_leader.leader_id,
                                    p.current_leader.leader_epoch,
                                    None,
                                );
                            } else if matches!(
                                code,
                                ErrorCode::NotLeaderOrFollower
                                    | ErrorCode::UnknownTopicOrPartition
                                    | ErrorCode::LeaderNotAvailable
                                    | ErrorCode::FencedLeaderEpoch
                            ) {
                                shared.client.invalidate_topic(&key.0);
                            }
                            let mut context = format!("produce to {}-{}", key.0, key.1);
                            if let Some(m) = p.error_message.as_deref().filter(|m| !m.is_empty()) {
                                context.push_str(": ");
                                context.push_str(m);
                            }
                            if code == ErrorCode::MessageTooLarge {
                                context.push_str(&format!(
                                    " (batch of {} record(s), {} bytes, larger than the topic's max.message.bytes)",
                                    batch.record_count(),
                                    batch.encoded_len()
                                ));
                            }
                            // Not authorized to write the topic: Error::Authorization,
                            // not retriable, so Action::of fails the batch at once.
                            Err(Error::from_refusal(code, &key.0, "write", || context)
                                .with_api(ApiKey::Produce)
                                .with_partition(&*key.0, key.1))
                        }
                    }
                }
            },
            Err(e) => Err(e.clone()),
        };
        match outcome {
            Ok(done) => {
                if batch.base_sequence >= 0 {
                    if let Some(q) = acc.queue_mut(&batch.topic, batch.partition) {
                        q.acked_next = batch
                            .base_sequence
                            .wrapping_add(batch.record_count() as i32)
                            & i32::MAX;
                        q.confirmed = true;
                    }
                }
                acc.finished(&mut batch);
                batch.complete(Ok(done));
            }
            Err(e) => {
                let code = e.code();
                if code == Some(ErrorCode::MessageTooLarge) && answered && batch.record_count() > 1
                {
                    batch = match split(&mut acc, batch) {
                        None => continue,
                        Some(batch) => batch,
                    };
                }
                // A request timeout on the broker, or one after the append, may leave
                // the batch written.
                batch.unanswered |= !answered
                    || matches!(
                        code,
                        Some(ErrorCode::RequestTimedOut | ErrorCode::NotEnoughReplicasAfterAppend)
                    );
                let idempotent = acc.identity != ProducerIdentity::NONE;
                // The head batch is the one the broker expects next: every earlier
                // sequence of the partition was acknowledged.
                // A batch behind it can never be accepted: later sequences are in.
                let (head, behind) =
                    acc.queue(&batch.topic, batch.partition)
                        .map_or((false, false), |q| {
                            let ahead = q.acked_next.wrapping_sub(batch.base_sequence);
                            (ahead == 0, q.confirmed && ahead > 0 && ahead < (1 << 30))
                        });
                let action = Action::of(
                    code,
                    e.is_retriable(),
                    Producing {
                        idempotent,
                        transactional: shared.config.transactional_id.is_some(),
                        head,
                        behind,
                    },
                );
                let expired = batch.created.elapsed() >= shared.config.delivery_timeout;
                let exhausted = batch.attempts >= shared.config.retries || expired;
                match action {
                    Action::Retry | Action::RetryAfterBump if !exhausted => {
                        if action == Action::RetryAfterBump {
                            acc.bump_epoch = true;
                        }
                        crate::client::metrics::retry(ApiKey::Produce);
                        debug!(topic = key.0, partition = key.1, error = %e, attempt = batch.attempts, "retrying batch");
                        batch.attempts += 1;
                        batch.last_error = Some(e);
                        let mut backoff = Backoff::new(
                            shared.config.client.retry_backoff,
                            shared.config.client.retry_backoff_max,
                        );
                        let mut delay = backoff.next_delay();
                        for _ in 1..batch.attempts.min(16) {
                            delay = backoff.next_delay();
                        }
                        batch.retry_at = Some(Instant::now() + delay);
                        requeue(&mut acc, vec![batch]);
                    }
                    _ => {
                        let failed = FailedBatch {
                            sent: batch.sent,
                            sequenced: idempotent && batch.base_sequence >= 0,
                            unanswered: batch.unanswered,
                            answered,
                        };
                        match failed.aftermath(action, idempotent, exhausted) {
                            Aftermath::BumpEpoch => acc.bump_epoch = true,
                            Aftermath::Renumber => {
                                if let Some(q) = acc.queue_mut(&batch.topic, batch.partition) {
                                    q.draining = true;
                                    q.renumber = true;
                                }
                            }
                            Aftermath::Nothing => {}
                        }
                        let retriable = matches!(action, Action::Retry | Action::RetryAfterBump);
                        let e = if retriable && expired {
                            Error::DeliveryTimeout {
                                outcome: if batch.unanswered {
                                    "possibly written"
                                } else {
                                    "not written"
                                },
                                last_error: Some(Box::new(e)),
                            }
                        } else {
                            e
                        };
                        warn!(topic = key.0, partition = key.1, error = %e, "batch failed");
                        acc.finished(&mut batch);
                        batch.complete(Err(&e));
                    }
                }
            }
        }
    }
    drop(acc);
    shared.progress.notify_waiters();
}

/// Puts `batches` (consecutive, in sequence order) back at the front of their
/// partition's queue, ahead of batches with later sequences, and holds the
/// partition until its in-flight batches are back, so everything goes out again in
/// sequence order.
fn requeue(acc: &mut Accumulator, batches: Vec<Batch>) {
    let Some(first) = batches.first() else {
        return;
    };
    let (topic, partition, base) = (first.topic.clone(), first.partition, first.base_sequence);
    let Some(q) = acc.queue_mut(&topic, partition) else {
        return;
    };
    q.draining = true;
    let at = q
        .batches
        .iter()
        .position(|b| b.base_sequence < 0 || b.base_sequence > base)
        .unwrap_or(q.batches.len());
    for (i, b) in batches.into_iter().enumerate() {
        q.batches.insert(at + i, b);
    }
}

/// Splits a batch the broker refused as too large and requeues the parts; gives
/// the batch back if it cannot be split.
fn split(acc: &mut Accumulator, batch: Batch) -> Option<Batch> {
    let parts = match acc.split_parts(&batch) {
        Ok(parts) => parts,
        Err(e) => {
            warn!(topic = &*batch.topic, partition = batch.partition, error = %e, "could not split a batch");
            return Some(batch);
        }
    };
    crate::client::metrics::batch_split();
    debug!(
        topic = &*batch.topic,
        partition = batch.partition,
        records = batch.record_count(),
        bytes = batch.encoded_len(),
        parts = parts.len(),
        "MESSAGE_TOO_LARGE: batch split"
    );
    let parts = acc.split(batch, parts);
    requeue(acc, parts);
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Retry,
    RetryAfterBump,
    FailAndBump,
    Fail,
}

/// What the producer knows of a failed batch's partition when it decides.
#[derive(Debug, Clone, Copy)]
struct Producing {
    /// The producer has an id (idempotence or transactions).
    idempotent: bool,
    /// It is transactional: the coordinator, not the producer, bumps its epoch.
    transactional: bool,
    /// The batch is the one the broker expects next in its partition.
    head: bool,
    /// The batch is behind sequences the broker already took: never accepted.
    behind: bool,
}

impl Action {
    /// What to do with a batch the broker refused with `code` (or that failed
    /// without an answer, `None`).
    ///
    /// | error | producer | action |
    /// |---|---|---|
    /// | OUT_OF_ORDER_SEQUENCE_NUMBER | idempotent, batch at or behind the head | fail, bump the epoch |
    /// | OUT_OF_ORDER_SEQUENCE_NUMBER | idempotent, batch ahead | retry (an earlier batch failed) |
    /// | UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH | idempotent, not transactional | retry after bumping the epoch |
    /// | any retriable error | | retry |
    /// | anything else | | fail |
    fn of(code: Option<ErrorCode>, retriable: bool, p: Producing) -> Action {
        match code {
            Some(ErrorCode::OutOfOrderSequenceNumber) if p.idempotent && (p.head || p.behind) => {
                Action::FailAndBump
            }
            Some(ErrorCode::OutOfOrderSequenceNumber) if p.idempotent => Action::Retry,
            Some(ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerEpoch)
                if p.idempotent && !p.transactional =>
            {
                Action::RetryAfterBump
            }
            _ if retriable => Action::Retry,
            _ => Action::Fail,
        }
    }
}

/// A batch that fails for good, as far as its partition's sequences care.
#[derive(Debug, Clone, Copy)]
struct FailedBatch {
    /// It went out at least once.
    sent: bool,
    /// It carries sequence numbers (an idempotent producer numbered it).
    sequenced: bool,
    /// It may have been written (an attempt went unanswered or timed out).
    unanswered: bool,
    /// The broker answered this attempt for its partition.
    answered: bool,
}

/// What a batch failing for good leaves to do to its partition's sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aftermath {
    /// The broker's view of the sequences is unknown or wrong: bump the epoch, so
    /// every partition starts again at sequence 0.
    BumpEpoch,
    /// The broker refused it and wrote nothing: drain the partition's in-flight
    /// batches and renumber the ones behind it.
    Renumber,
    /// No sequences to mend.
    Nothing,
}

impl FailedBatch {
    /// The sequence repair after failing this batch with `action`.
    fn aftermath(self, action: Action, idempotent: bool, exhausted: bool) -> Aftermath {
        if action == Action::FailAndBump
            || (self.sent && idempotent && exhausted)
            || (self.sequenced && self.unanswered)
        {
            Aftermath::BumpEpoch
        } else if self.sequenced && self.answered {
            Aftermath::Renumber
        } else {
            Aftermath::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Producing = Producing {
        idempotent: false,
        transactional: false,
        head: false,
        behind: false,
    };

    #[test]
    fn out_of_order_fails_at_the_head_or_behind_it_and_retries_ahead_of_it() {
        let ooo = Some(ErrorCode::OutOfOrderSequenceNumber);
        let idem = Producing {
            idempotent: true,
            ..PLAIN
        };
        let at = |head, behind| {
            Action::of(
                ooo,
                false,
                Producing {
                    head,
                    behind,
                    ..idem
                },
            )
        };
        assert_eq!(at(true, false), Action::FailAndBump);
        assert_eq!(at(false, true), Action::FailAndBump);
        assert_eq!(at(false, false), Action::Retry);
        assert_eq!(Action::of(ooo, false, PLAIN), Action::Fail);
    }

    #[test]
    fn a_lost_producer_id_is_bumped_only_without_a_transactional_id() {
        let idem = Producing {
            idempotent: true,
            ..PLAIN
        };
        for code in [
            ErrorCode::UnknownProducerId,
            ErrorCode::InvalidProducerEpoch,
        ] {
            assert_eq!(Action::of(Some(code), false, idem), Action::RetryAfterBump);
            let txn = Producing {
                transactional: true,
                ..idem
            };
            assert_eq!(Action::of(Some(code), false, txn), Action::Fail);
        }
    }

    #[test]
    fn other_errors_retry_exactly_when_retriable() {
        let code = Some(ErrorCode::NotLeaderOrFollower);
        assert_eq!(Action::of(code, true, PLAIN), Action::Retry);
        assert_eq!(Action::of(None, true, PLAIN), Action::Retry);
        assert_eq!(
            Action::of(Some(ErrorCode::MessageTooLarge), false, PLAIN),
            Action::Fail
        );
    }

    #[test]
    fn a_failed_batch_bumps_when_the_sequences_are_in_doubt_and_renumbers_when_refused() {
        let refused = FailedBatch {
            sent: true,
            sequenced: true,
            unanswered: false,
            answered: true,
        };
        assert_eq!(
            refused.aftermath(Action::Fail, true, false),
            Aftermath::Renumber
        );
        assert_eq!(
            refused.aftermath(Action::FailAndBump, true, false),
            Aftermath::BumpEpoch
        );
        assert_eq!(
            refused.aftermath(Action::Retry, true, true),
            Aftermath::BumpEpoch,
            "retries ran out on a sent batch"
        );
        let maybe_written = FailedBatch {
            unanswered: true,
            answered: false,
            ..refused
        };
        assert_eq!(
            maybe_written.aftermath(Action::Fail, true, false),
            Aftermath::BumpEpoch
        );
        let unsequenced = FailedBatch {
            sequenced: false,
            unanswered: true,
            ..refused
        };
        assert_eq!(
            unsequenced.aftermath(Action::Fail, false, false),
            Aftermath::Nothing
        );
    }
}
